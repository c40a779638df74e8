/*
 * load.c — `vigil-bench ingest` and `vigil-bench query`: load against a
 * running vigild over the binary protocol (libvigil), per BENCH.md.
 *
 *   ingest   the dataset is cut into batches (one entity's fields over
 *            --points timestamps, --batch-series series per batch, time-
 *            major), built before the clock starts; --connections threads
 *            each send their share pipelined (--pipeline batches in flight)
 *            and the figure is points over the wall time from the first
 *            byte sent to the last acknowledgement.
 *   query    the BENCH.md queries on cpu-full (which must be loaded), each
 *            --runs times after --warmup runs, a random host and window per
 *            run; prints p50/p99 round trip per query and the scan rate of
 *            full-scan.
 */
#include "bench.h"

#include "dataset.h"
#include "queries.h"
#include "vigil.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- ingest ---------------------------------------------------------- */

typedef struct {
	const char *addr;
	vg_batch_t **batches;
	size_t nbatches;
	int pipeline;
	int timeout_ms;
	uint64_t points;
	int rc;
	char err[VG_CLIENT_ERRLEN];
} ingest_conn_t;

static void *ingest_thread(void *p)
{
	ingest_conn_t *ic = p;
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	if ((ic->rc = vg_client_connect(ic->addr, ic->timeout_ms, &c, err, sizeof err))) {
		snprintf(ic->err, sizeof ic->err, "%s", err);
		return NULL;
	}
	size_t sent = 0;
	while (sent < ic->nbatches || vg_client_pending_writes(c)) {
		if (sent < ic->nbatches && vg_client_pending_writes(c) < (size_t)ic->pipeline) {
			uint64_t id;
			if ((ic->rc = vg_client_write_async(c, ic->batches[sent++], &id)))
				break;
			continue;
		}
		uint64_t id, points;
		if ((ic->rc = vg_client_wait_ack(c, &id, &points)))
			break;
		ic->points += points;
	}
	if (ic->rc)
		snprintf(ic->err, sizeof ic->err, "%s", vg_client_errstr(c));
	vg_client_close(c);
	return NULL;
}

static int ingest_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"dataset", required_argument, NULL, 'd'},
		{"connections", required_argument, NULL, 'c'},
		{"points", required_argument, NULL, 'p'},
		{"batch-series", required_argument, NULL, 's'},
		{"pipeline", required_argument, NULL, 'P'},
		{"scale", required_argument, NULL, 'n'},
		/* Long enough for a server under valgrind (callgrind profiles). */
		{"timeout-ms", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	const char *addr = VG_CLIENT_DEFAULT_ADDR, *name = "cpu-full";
	int conns = 4, pipeline = 4, timeout_ms = 10000;
	size_t per = 10, batch_series = 1000;
	uint64_t scale = 100000;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'd':
			name = optarg;
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'p':
			per = (size_t)atol(optarg);
			break;
		case 's':
			batch_series = (size_t)atol(optarg);
			break;
		case 'P':
			pipeline = atoi(optarg);
			break;
		case 'n':
			scale = strtoull(optarg, NULL, 10);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: vigil-bench ingest [--addr A] [--dataset NAME] "
					"[--connections N] [--points N] [--batch-series N] [--pipeline N] "
					"[--timeout-ms MS]\n");
			return BENCH_EXIT_USAGE;
		}
	}
	if (conns < 1 || conns > 64 || per < 1 || batch_series < 1 || pipeline < 1 ||
	    timeout_ms < 1) {
		fprintf(stderr, "vigil-bench ingest: bad option value\n");
		return BENCH_EXIT_USAGE;
	}
	vg_dataset_t *d;
	if (vg_dataset_generate(name, VG_DATASET_DEFAULT_SEED, scale, &d)) {
		fprintf(stderr, "vigil-bench: unknown dataset %s (%s)\n", name, vg_dataset_names());
		return BENCH_EXIT_USAGE;
	}
	/* Build the batches: time-major windows of `per` timestamps, each
	 * window cut into groups of batch_series series. */
	size_t nseries = vg_dataset_series_count(d);
	size_t nbatches = ((d->npoints + per - 1) / per) * ((nseries + batch_series - 1) / batch_series);
	vg_batch_t **batches = calloc(nbatches, sizeof *batches);
	size_t k = 0;
	vg_tag_t tags[16];
	for (size_t j = 0; j < d->npoints; j += per) {
		size_t n = d->npoints - j < per ? d->npoints - j : per;
		for (size_t s0 = 0; s0 < nseries; s0 += batch_series) {
			vg_batch_new(&batches[k]);
			for (size_t s = s0; s < nseries && s < s0 + batch_series; s++) {
				size_t e = s / d->nfields, f = s % d->nfields;
				for (size_t t = 0; t < d->ntag_keys; t++)
					tags[t] = (vg_tag_t){d->tag_keys[t], vg_dataset_tag_value(d, e, t)};
				vg_batch_add_points(batches[k], d->measurement, tags, d->ntag_keys,
						    d->fields[f], d->times + j,
						    vg_dataset_series_values(d, e, f) + j, n);
			}
			k++;
		}
	}
	ingest_conn_t *ic = calloc((size_t)conns, sizeof *ic);
	pthread_t *threads = calloc((size_t)conns, sizeof *threads);
	/* Interleave batches across connections so each sends time-ordered data. */
	vg_batch_t **lists = calloc(nbatches, sizeof *lists);
	size_t at = 0;
	for (int c = 0; c < conns; c++) {
		ic[c].addr = addr;
		ic[c].pipeline = pipeline;
		ic[c].timeout_ms = timeout_ms;
		ic[c].batches = lists + at;
		for (size_t b = (size_t)c; b < nbatches; b += (size_t)conns)
			lists[at++] = batches[b];
		ic[c].nbatches = (size_t)(lists + at - ic[c].batches);
	}
	double t0 = now_s();
	for (int c = 0; c < conns; c++)
		pthread_create(&threads[c], NULL, ingest_thread, &ic[c]);
	uint64_t points = 0;
	int status = BENCH_EXIT_OK;
	for (int c = 0; c < conns; c++) {
		pthread_join(threads[c], NULL);
		points += ic[c].points;
		if (ic[c].rc) {
			fprintf(stderr, "vigil-bench: connection %d: %s\n", c, ic[c].err);
			status = BENCH_EXIT_ERROR;
		}
	}
	double elapsed = now_s() - t0;
	printf("ingest %s: %" PRIu64 " points in %.3f s = %.2f M points/s (%d connections, "
	       "batches of %zu series x %zu points, pipeline %d)\n",
	       d->name, points, elapsed, points / elapsed / 1e6, conns, batch_series, per, pipeline);
	for (size_t b = 0; b < nbatches; b++)
		vg_batch_free(batches[b]);
	free(batches);
	free(lists);
	free(ic);
	free(threads);
	vg_dataset_free(d);
	return status;
}

/* ---- query ----------------------------------------------------------- */

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int query_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"runs", required_argument, NULL, 'r'},
		{"warmup", required_argument, NULL, 'w'},
		{"only", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	const char *addr = VG_CLIENT_DEFAULT_ADDR, *only = NULL;
	int runs = 1000, warmup = 50;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			addr = optarg;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: vigil-bench query [--addr A] [--runs N] [--warmup N] "
					"[--only NAME]\n");
			return BENCH_EXIT_USAGE;
		}
	}
	if (runs < 1 || warmup < 0) {
		fprintf(stderr, "vigil-bench query: --runs must be positive\n");
		return BENCH_EXIT_USAGE;
	}
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	if (vg_client_connect(addr, 10000, &c, err, sizeof err)) {
		fprintf(stderr, "vigil-bench: %s\n", err);
		return BENCH_EXIT_ERROR;
	}
	double *lat = calloc((size_t)runs, sizeof *lat);
	double *srv = calloc((size_t)runs, sizeof *srv);
	vg_rng_t rng;
	vg_rng_seed(&rng, 42);
	printf("%-24s %10s %10s %12s %8s %14s\n", "query", "p50 ms", "p99 ms", "server p50", "rows",
	       "points/s");
	int status = BENCH_EXIT_OK;
	for (size_t q = 0; q < BENCH_Q_COUNT; q++) {
		const bench_query_t *bq = &bench_queries[q];
		if (only && strcmp(only, bq->name))
			continue;
		char stmt[1024];
		uint64_t rows = 0, scanned = 0;
		double total = 0;
		for (int i = -warmup; i < runs; i++) {
			bench_query_args_t qa;
			bench_query_draw(bq, &rng, &qa);
			bench_query_influxql(bq, &qa, stmt, sizeof stmt);
			vg_result_t *r;
			double t0 = now_s();
			int rc = vg_client_query(c, stmt, &r);
			double dt = now_s() - t0;
			if (rc) {
				fprintf(stderr, "vigil-bench: %s: %s\n", bq->name, vg_client_errstr(c));
				status = BENCH_EXIT_ERROR;
				break;
			}
			if (i >= 0) {
				lat[i] = dt;
				vg_query_stats_t st;
				vg_result_stats(r, &st);
				srv[i] = (double)st.elapsed_ns / 1e9;
				rows = st.rows;
				scanned += st.points_scanned;
				total += dt;
			}
			vg_result_free(r);
		}
		if (status)
			break;
		qsort(lat, (size_t)runs, sizeof *lat, compare_double);
		qsort(srv, (size_t)runs, sizeof *srv, compare_double);
		printf("%-24s %10.3f %10.3f %12.3f %8" PRIu64 " %14.0f\n", bq->name,
		       lat[runs / 2] * 1e3, lat[(size_t)(runs * 0.99)] * 1e3, srv[runs / 2] * 1e3, rows,
		       scanned / total);
		fflush(stdout);
	}
	free(lat);
	free(srv);
	vg_client_close(c);
	return status;
}

int bench_ingest_main(int argc, char **argv) { return ingest_main(argc, argv); }
int bench_query_main(int argc, char **argv) { return query_main(argc, argv); }
