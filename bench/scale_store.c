/*
 * scale_store.c — the store `vigil-bench scale --startup` starts vigild on.
 *
 * Written straight through the storage library (no server, no fsync), one
 * write transaction per 10,000 series, each series' points as one block,
 * sealed after every transaction, so the result is what a server leaves
 * after its idle seal: every point in chunks, an empty head.  Series are
 * scale-N's (measurement `scale`, host=host_<e/100>, metric=m<e%100>, field
 * `value`), points every 10 s from VG_DATASET_START_NS, values a random
 * walk in steps of 0.1.  A "complete" file marks a finished store, so a run
 * that was cut short is rebuilt rather than timed; it names the store
 * format version, so a store of another version is rebuilt too.
 */
#include "bench.h"

#include "dataset.h"
#include "vg_error.h"
#include "vg_store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define STEP_NS INT64_C(10000000000)

#define GROUP 10000 /* series per write transaction */

int bench_scale_build_store(const char *dir, size_t nseries, size_t npoints)
{
	char marker[PATH_MAX + 16];
	snprintf(marker, sizeof marker, "%s/complete", dir);
	char expected[64], found[64] = "";
	snprintf(expected, sizeof expected, "format %d: %zu series x %zu points\n",
	         VG_STORE_FORMAT_VERSION, nseries, npoints);
	FILE *m = fopen(marker, "r");
	if (m) {
		if (!fgets(found, sizeof found, m))
			found[0] = 0;
		fclose(m);
	}
	if (strcmp(found, expected) == 0)
		return 0;
	unlink(marker);
	fprintf(stderr, "vigil-bench scale: building the start-up store in %s (once)\n", dir);
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	unlink(path);
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", dir);
	for (char *p = parent + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(parent, 0755);
			*p = '/';
		}
	}
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[512];
	if (vg_store_open(dir, &opts, &store, err, sizeof err)) {
		fprintf(stderr, "vigil-bench scale: %s\n", err);
		return -1;
	}
	int64_t *times = malloc(npoints * sizeof *times);
	double *values = malloc(npoints * sizeof *values);
	if (!times || !values) {
		free(times);
		free(values);
		vg_store_close(store);
		return -1;
	}
	for (size_t j = 0; j < npoints; j++)
		times[j] = VG_DATASET_START_NS + (int64_t)j * STEP_NS;
	vg_rng_t rng;
	vg_rng_seed(&rng, VG_DATASET_DEFAULT_SEED);
	double t0 = now_s();
	int rc = 0;
	for (size_t s0 = 0; s0 < nseries && rc == 0; s0 += GROUP) {
		vg_wtxn_t *txn;
		rc = vg_store_write_begin(store, &txn);
		for (size_t e = s0; e < s0 + GROUP && rc == 0; e++) {
			char host[32], metric[16];
			snprintf(host, sizeof host, "host_%zu", e / 100);
			snprintf(metric, sizeof metric, "m%zu", e % 100);
			vg_tag_t tags[2] = {{{"host", 4}, {host, strlen(host)}},
			                    {{"metric", 6}, {metric, strlen(metric)}}};
			vg_series_key_t key = {{"scale", 5}, tags, 2, {"value", 5}};
			double v = (double)vg_rng_below(&rng, 1000) / 10;
			for (size_t j = 0; j < npoints; j++) {
				v += (double)((int)vg_rng_below(&rng, 21) - 10) / 10;
				values[j] = v;
			}
			vg_series_id_t id;
			rc = vg_wtxn_series(txn, &key, &id, NULL);
			rc = rc ? rc : vg_wtxn_put(txn, id, times, values, npoints);
		}
		if (rc) {
			vg_wtxn_abort(txn);
			break;
		}
		rc = vg_wtxn_commit(txn);
		rc = rc ? rc : vg_store_seal(store, 1);
		if ((s0 / GROUP) % 10 == 9)
			fprintf(stderr, "  %zu series, %.0f s\n", s0 + GROUP, now_s() - t0);
	}
	vg_store_close(store);
	free(times);
	free(values);
	if (rc) {
		fprintf(stderr, "vigil-bench scale: building the start-up store: %s\n",
		        vg_strerror(rc));
		return -1;
	}
	FILE *f = fopen(marker, "w");
	if (!f)
		return -1;
	fputs(expected, f);
	fclose(f);
	return 0;
}
