/*
 * queries.h — the BENCH.md queries on cpu-full, drawn once and written in
 * three languages: Vigil's (InfluxQL, which InfluxDB runs unchanged) and
 * VictoriaMetrics' MetricsQL.
 *
 * A run of a query first draws its random arguments (a host, a window start)
 * from the caller's generator, then formats them.  `vigil-bench query` (for
 * Vigil, load.c) and `vigil-bench http-query` (for the peers, peers.c) both
 * walk bench_queries[] in order from the same seed, so with the same --runs
 * and --warmup every system is asked exactly the same questions in the same
 * order.  The draw order is fixed: the window start first, then the host.
 *
 * Windows start on a whole minute inside the dataset's day (so that a window
 * of `span` fits), hosts are host_0 .. host_99.
 */
#ifndef VG_BENCH_QUERIES_H
#define VG_BENCH_QUERIES_H

#include "dataset.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MINUTE_NS INT64_C(60000000000)
#define BENCH_HOUR_NS (60 * BENCH_MINUTE_NS)
#define BENCH_DAY_NS (24 * BENCH_HOUR_NS)

typedef enum bench_query_id {
	BENCH_Q_RAW_360,
	BENCH_Q_SINGLE_1_1_1,
	BENCH_Q_SINGLE_5_1_12,
	BENCH_Q_DOUBLE_GROUPBY_1,
	BENCH_Q_LASTPOINT,
	BENCH_Q_HIGH_CPU_1,
	BENCH_Q_FULL_SCAN,
	BENCH_Q_COUNT
} bench_query_id_t;

typedef struct bench_query {
	bench_query_id_t id;
	const char *name; /* the TSBS name, "single-groupby-1-1-1" */
	int64_t span;     /* window length in ns; 0: the whole dataset, nothing drawn */
	bool host;        /* draws one host */
} bench_query_t;

/* The queries in the order every benchmark runs them. */
extern const bench_query_t bench_queries[BENCH_Q_COUNT];

/* The drawn arguments of one run. */
typedef struct bench_query_args {
	unsigned host; /* host_<host>, if the query has one */
	int64_t start; /* window [start, end) in ns, if it has a span */
	int64_t end;
} bench_query_args_t;

/* Draws the arguments of one run of q from rng (start first, then host). */
void bench_query_draw(const bench_query_t *q, vg_rng_t *rng, bench_query_args_t *a);

/*
 * Writes the InfluxQL statement of one run into buf (len bytes, NUL-
 * terminated): the statement Vigil runs, and InfluxDB runs the same text.
 * Returns the length, or a negative VG_EOVERFLOW if it does not fit.
 */
int bench_query_influxql(const bench_query_t *q, const bench_query_args_t *a, char *buf,
                         size_t len);

/*
 * Writes the VictoriaMetrics request of one run into buf: a path with its
 * URL-encoded query string ("/api/v1/query_range?query=...&start=...").
 * The translations, and why each gives Vigil's answer, are in queries.c.
 * Returns the length, or a negative VG_EOVERFLOW if it does not fit.
 */
int bench_query_metricsql(const bench_query_t *q, const bench_query_args_t *a, char *buf,
                          size_t len);

/* Percent-encodes s (RFC 3986 unreserved characters pass) onto buf at *at;
 * returns 0 or VG_EOVERFLOW. */
int bench_url_encode(const char *s, char *buf, size_t len, size_t *at);

#endif
