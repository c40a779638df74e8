/*
 * queries.c — the BENCH.md queries: their random arguments, and their text
 * in InfluxQL (Vigil, InfluxDB) and in MetricsQL (VictoriaMetrics).
 *
 * InfluxQL.  Vigil's language follows InfluxQL, so one statement serves both
 * Vigil and InfluxDB 1.6 (bare integers compared with `time` are ns since
 * the epoch in both).
 *
 * MetricsQL.  VictoriaMetrics stores an InfluxDB field `usage_user` of
 * measurement `cpu` as the metric `cpu_usage_user` with the line's tags as
 * labels, and timestamps in milliseconds.  A rollup `f(m[d])` evaluated at
 * time T covers the samples in (T-d, T]; the dataset's timestamps are whole
 * multiples of 10 s, so evaluating at T = b + d - 1 ms covers exactly
 * [b, b + d), the bucket InfluxQL means.  Hence (h a host, [t, t+S) the
 * drawn window, D the dataset's day [2026-01-01, 2026-01-02)):
 *
 *   raw-360                query_range  cpu_usage_user{hostname="h"}
 *                          start=t end=t+1h-10s step=10s
 *                          (an instant selector at a sample's own timestamp
 *                          returns that sample: the raw points)
 *   single-groupby-1-1-1   query_range  max_over_time(cpu_usage_user{hostname="h"}[1m])
 *                          start=t+1m-1ms end=t+1h-1ms step=1m
 *   single-groupby-5-1-12  query_range  max_over_time({__name__=~"cpu_usage_(user|system|
 *                          idle|nice|iowait)",hostname="h"}[1m]) keep_metric_names
 *                          start=t+1m-1ms end=t+12h-1ms step=1m
 *   double-groupby-1       query_range  avg by (hostname) (avg_over_time(cpu_usage_user[1h]))
 *                          start=t+1h-1ms end=t+12h-1ms step=1h
 *   lastpoint              query        max by (hostname) (last_over_time(cpu_usage_user[1d]))
 *                          time=end of D - 1ms (the window covers all of D)
 *   high-cpu-1             query_range  cpu_usage_user{hostname="h"} > 90
 *                          start=t end=t+12h-10s step=10s
 *   full-scan              query        sum(sum_over_time(cpu_usage_user[1d]))
 *                                       / sum(count_over_time(cpu_usage_user[1d]))
 *                          time=end of D - 1ms
 *
 * Every request also carries nocache=1 (VictoriaMetrics runs with
 * -search.disableCache as well): its rollup-result cache would otherwise
 * answer repeated windows from memory.
 *
 * One difference is deliberate: double-groupby-1's hour buckets start at the
 * drawn minute t for VictoriaMetrics, where InfluxQL aligns them to whole
 * hours (13 buckets, the first and last partial).  Both read exactly the
 * points of [t, t+12h); a range query cannot clip its first and last window,
 * and aligning VictoriaMetrics to whole hours would make it read up to two
 * hours more.  On an hour-aligned window the three answers are identical.
 * The other queries return the same values as Vigil (checked, RESULTS.md);
 * only the form differs (timestamps at bucket ends, JSON).
 */
#include "queries.h"

#include "vg_error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const bench_query_t bench_queries[BENCH_Q_COUNT] = {
    {BENCH_Q_RAW_360, "raw-360", BENCH_HOUR_NS, true},
    {BENCH_Q_SINGLE_1_1_1, "single-groupby-1-1-1", BENCH_HOUR_NS, true},
    {BENCH_Q_SINGLE_5_1_12, "single-groupby-5-1-12", 12 * BENCH_HOUR_NS, true},
    {BENCH_Q_DOUBLE_GROUPBY_1, "double-groupby-1", 12 * BENCH_HOUR_NS, false},
    {BENCH_Q_LASTPOINT, "lastpoint", 0, false},
    {BENCH_Q_HIGH_CPU_1, "high-cpu-1", 12 * BENCH_HOUR_NS, true},
    {BENCH_Q_FULL_SCAN, "full-scan", 0, false},
};

void bench_query_draw(const bench_query_t *q, vg_rng_t *rng, bench_query_args_t *a)
{
	*a = (bench_query_args_t){0, VG_DATASET_START_NS, VG_DATASET_START_NS + BENCH_DAY_NS};
	if (q->span > 0) {
		int64_t slots = (BENCH_DAY_NS - q->span) / BENCH_MINUTE_NS;
		a->start = VG_DATASET_START_NS +
		           (int64_t)vg_rng_below(rng, (uint64_t)slots) * BENCH_MINUTE_NS;
		a->end = a->start + q->span;
	}
	if (q->host)
		a->host = (unsigned)vg_rng_below(rng, 100);
}

static int fit(int n, size_t len)
{
	return n < 0 || (size_t)n >= len ? VG_EOVERFLOW : n;
}

int bench_query_influxql(const bench_query_t *q, const bench_query_args_t *a, char *buf, size_t len)
{
	int n = -1;
	switch (q->id) {
	case BENCH_Q_RAW_360:
		n = snprintf(
		    buf, len,
		    "SELECT usage_user FROM cpu WHERE hostname = 'host_%u' AND time >= %" PRId64
		    " AND time < %" PRId64,
		    a->host, a->start, a->end);
		break;
	case BENCH_Q_SINGLE_1_1_1:
		n = snprintf(buf, len,
		             "SELECT max(usage_user) FROM cpu WHERE hostname = 'host_%u' AND time "
		             ">= %" PRId64 " AND time < %" PRId64 " GROUP BY time(1m)",
		             a->host, a->start, a->end);
		break;
	case BENCH_Q_SINGLE_5_1_12:
		n = snprintf(
		    buf, len,
		    "SELECT max(usage_user), max(usage_system), max(usage_idle), "
		    "max(usage_nice), max(usage_iowait) FROM cpu WHERE hostname = 'host_%u' "
		    "AND time >= %" PRId64 " AND time < %" PRId64 " GROUP BY time(1m)",
		    a->host, a->start, a->end);
		break;
	case BENCH_Q_DOUBLE_GROUPBY_1:
		n = snprintf(buf, len,
		             "SELECT mean(usage_user) FROM cpu WHERE time >= %" PRId64
		             " AND time < %" PRId64 " GROUP BY time(1h), hostname",
		             a->start, a->end);
		break;
	case BENCH_Q_LASTPOINT:
		n = snprintf(buf, len, "SELECT last(usage_user) FROM cpu GROUP BY hostname");
		break;
	case BENCH_Q_HIGH_CPU_1:
		n = snprintf(
		    buf, len,
		    "SELECT usage_user FROM cpu WHERE hostname = 'host_%u' AND usage_user > 90 "
		    "AND time >= %" PRId64 " AND time < %" PRId64,
		    a->host, a->start, a->end);
		break;
	case BENCH_Q_FULL_SCAN:
		n = snprintf(buf, len, "SELECT mean(usage_user) FROM cpu");
		break;
	case BENCH_Q_COUNT:
		break;
	}
	return fit(n, len);
}

int bench_url_encode(const char *s, char *buf, size_t len, size_t *at)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		             (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
		if (*at + (plain ? 1 : 3) >= len)
			return VG_EOVERFLOW;
		if (plain) {
			buf[(*at)++] = (char)c;
		} else {
			buf[(*at)++] = '%';
			buf[(*at)++] = hex[c >> 4];
			buf[(*at)++] = hex[c & 15];
		}
	}
	buf[*at] = '\0';
	return 0;
}

/* ns -> "seconds.mmm", the time form VictoriaMetrics' API takes. */
static void vm_time(int64_t ns, char *out, size_t len)
{
	int64_t ms = ns / 1000000;
	snprintf(out, len, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
}

int bench_query_metricsql(const bench_query_t *q, const bench_query_args_t *a, char *buf,
                          size_t len)
{
	const int64_t ms = 1000000, s10 = 10000000000;
	char expr[512];
	int64_t start = 0, end = 0, step = 0, at = 0; /* step 0: an instant query at `at` */
	int n = -1;
	switch (q->id) {
	case BENCH_Q_RAW_360:
		n = snprintf(expr, sizeof expr, "cpu_usage_user{hostname=\"host_%u\"}", a->host);
		start = a->start, end = a->end - s10, step = s10;
		break;
	case BENCH_Q_SINGLE_1_1_1:
		n = snprintf(expr, sizeof expr,
		             "max_over_time(cpu_usage_user{hostname=\"host_%u\"}[1m])", a->host);
		start = a->start + BENCH_MINUTE_NS - ms, end = a->end - ms, step = BENCH_MINUTE_NS;
		break;
	case BENCH_Q_SINGLE_5_1_12:
		n = snprintf(
		    expr, sizeof expr,
		    "max_over_time({__name__=~\"cpu_usage_(user|system|idle|nice|iowait)\","
		    "hostname=\"host_%u\"}[1m]) keep_metric_names",
		    a->host);
		start = a->start + BENCH_MINUTE_NS - ms, end = a->end - ms, step = BENCH_MINUTE_NS;
		break;
	case BENCH_Q_DOUBLE_GROUPBY_1:
		n = snprintf(expr, sizeof expr,
		             "avg by (hostname) (avg_over_time(cpu_usage_user[1h]))");
		start = a->start + BENCH_HOUR_NS - ms, end = a->end - ms, step = BENCH_HOUR_NS;
		break;
	case BENCH_Q_LASTPOINT:
		n = snprintf(expr, sizeof expr,
		             "max by (hostname) (last_over_time(cpu_usage_user[1d]))");
		at = a->end - ms;
		break;
	case BENCH_Q_HIGH_CPU_1:
		n = snprintf(expr, sizeof expr, "cpu_usage_user{hostname=\"host_%u\"} > 90",
		             a->host);
		start = a->start, end = a->end - s10, step = s10;
		break;
	case BENCH_Q_FULL_SCAN:
		n = snprintf(expr, sizeof expr,
		             "sum(sum_over_time(cpu_usage_user[1d])) / "
		             "sum(count_over_time(cpu_usage_user[1d]))");
		at = a->end - ms;
		break;
	case BENCH_Q_COUNT:
		break;
	}
	if (fit(n, sizeof expr) < 0)
		return VG_EOVERFLOW;
	size_t off = 0;
	n = snprintf(buf, len, "/api/v1/%s?nocache=1&query=", step ? "query_range" : "query");
	if (fit(n, len) < 0)
		return VG_EOVERFLOW;
	off = (size_t)n;
	if (bench_url_encode(expr, buf, len, &off))
		return VG_EOVERFLOW;
	char t0[32], t1[32];
	if (step) {
		vm_time(start, t0, sizeof t0);
		vm_time(end, t1, sizeof t1);
		n = snprintf(buf + off, len - off, "&start=%s&end=%s&step=%" PRId64, t0, t1,
		             step / (1000 * ms));
	} else {
		vm_time(at, t0, sizeof t0);
		n = snprintf(buf + off, len - off, "&time=%s", t0);
	}
	if (fit(n, len - off) < 0)
		return VG_EOVERFLOW;
	return (int)(off + (size_t)n);
}
