/*
 * bench.h — the commands of `vigil-bench`.
 *
 * Each command is one function with a main()-like signature, registered in
 * the table of main.c.  argv[0] is the command's own name ("gen"), so a
 * command parses its options with getopt_long as a program would.  A command
 * returns the process exit status: BENCH_EXIT_OK, BENCH_EXIT_ERROR (a run
 * failed: I/O, server, out of memory) or BENCH_EXIT_USAGE (bad options),
 * the same convention as the `vigil` CLI.  Results go to stdout, progress
 * and diagnostics to stderr.
 */
#ifndef VG_BENCH_H
#define VG_BENCH_H

#include <stddef.h>

enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_ERROR = 1,
	BENCH_EXIT_USAGE = 2,
};

/* vigil-bench gen --dataset NAME [--seed N] [--scale N] [--out FILE|-] (gen.c) */
int bench_gen_main(int argc, char **argv);

/* vigil-bench storage [--dataset NAME|all] [--sync full|none] [--dir DIR] (storage.c) */
int bench_storage_main(int argc, char **argv);

/* vigil-bench ingest|query [--addr A] ... against a running vigild (load.c) */
int bench_ingest_main(int argc, char **argv);
int bench_query_main(int argc, char **argv);

/* vigil-bench push [--subscribers N] [--background P/S] (push.c) */
int bench_push_main(int argc, char **argv);

/* vigil-bench scale [--series N,N,...] [--startup] (scale.c) */
int bench_scale_main(int argc, char **argv);
/* Writes nseries x npoints sealed scale series into the store at dir unless
 * a complete one is there already; 0 or -1 (message on stderr).
 * (scale_store.c) */
int bench_scale_build_store(const char *dir, size_t nseries, size_t npoints);

/* vigil-bench compact --dir DIR: seal and compact a stopped server's store (compact.c) */
int bench_compact_main(int argc, char **argv);

/* vigil-bench http-write|http-query: InfluxDB and VictoriaMetrics over HTTP
 * for bench/peers (peers.c, with the client of http.c) */
int bench_http_write_main(int argc, char **argv);
int bench_http_query_main(int argc, char **argv);

#endif
