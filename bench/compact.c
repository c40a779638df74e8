/*
 * compact.c — `vigil-bench compact --dir DIR`: Vigil's own compaction of a
 * stopped server's data directory, for bench/peers.
 *
 * vigild compacts by itself after its idle seal only when most of the file
 * is free pages (server/writer.c); a directory can therefore hold much free
 * space after a load.  bench/peers reports the directory as the server left
 * it, and beside it the size after this command: the store opened offline,
 * every head sealed (vg_store_seal), and vg_store_compact(), the repacked
 * copy the server would swap in.  Prints the file and used bytes before
 * and after.  The server must not be running on DIR.
 */
#include "bench.h"

#include "vg_error.h"
#include "vg_store.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

int bench_compact_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
			        "usage: vigil-bench compact --dir DIR\n");
			return opt == 'h' ? BENCH_EXIT_OK : BENCH_EXIT_USAGE;
		}
	}
	if (!dir) {
		fprintf(stderr, "vigil-bench compact: --dir is required\n");
		return BENCH_EXIT_USAGE;
	}
	vg_store_t *store;
	char err[256];
	int rc = vg_store_open(dir, NULL, &store, err, sizeof err);
	if (rc) {
		fprintf(stderr, "vigil-bench compact: %s\n", err);
		return BENCH_EXIT_ERROR;
	}
	uint64_t file0 = 0, used0 = 0, file1 = 0, used1 = 0;
	if ((rc = vg_store_space(store, &file0, &used0)) == 0 &&
	    (rc = vg_store_seal(store, 1)) == 0 && (rc = vg_store_compact(store)) == 0)
		rc = vg_store_space(store, &file1, &used1);
	vg_store_close(store);
	if (rc) {
		fprintf(stderr, "vigil-bench compact: %s: %s\n", dir, vg_strerror(rc));
		return BENCH_EXIT_ERROR;
	}
	printf("compact %s: file %" PRIu64 " -> %" PRIu64 " bytes (used %" PRIu64 " -> %" PRIu64
	       ")\n",
	       dir, file0, file1, used0, used1);
	return BENCH_EXIT_OK;
}
