/*
 * test_exec_select.c — SELECT semantics on small hand-checked data: every
 * FILL mode (ascending, descending, with LIMIT, up to now), the edge cases
 * of median/percentile/stddev/rate/count, ties between tag sets, raw rows
 * across fields and tag sets, field conditions, column naming, the header
 * path over sealed chunks, and the limits: unknown measurement, cancel,
 * deadline, a failing sink, allocation failure.
 */
#include "collect.h"

#include "vg_alloc.h"

#define S INT64_C(1000000000)

static char dir[256];
static vg_store_t *store;

/*
 * cpu,host=a u: 10s=1 20s=3 30s=NaN 50s=7 70s=2     v: 20s=100 60s=200
 * cpu,host=b u: 10s=5 40s=6
 */
static void setup(void)
{
	store = open_store(dir, sizeof dir);
	vg_tag_t a[1] = {TAG("host", "a")}, b[1] = {TAG("host", "b")};
	int64_t ta[] = {70 * S, 10 * S, 30 * S, 20 * S, 50 * S}; /* out of order */
	double va[] = {2, 1, NAN, 3, 7};
	put_points(store, "cpu", a, 1, "u", ta, va, 5);
	int64_t tv[] = {20 * S, 60 * S};
	double vv[] = {100, 200};
	put_points(store, "cpu", a, 1, "v", tv, vv, 2);
	int64_t tb[] = {10 * S, 40 * S};
	double vb[] = {5, 6};
	put_points(store, "cpu", b, 1, "u", tb, vb, 2);
}

static void teardown(void)
{
	vg_store_close(store);
	vg_test_rmdir(dir);
}

TestSuite(exec_select, .init = setup, .fini = teardown);

#define N (-1e308) /* null in expectations; NAN means a NaN value */

/* Checks one float column of set s: times and values (NAN = null). */
static void expect_rows(const collect_t *c, size_t s, size_t col, const int64_t *times,
                        const double *values, size_t n, const char *what)
{
	cr_assert_lt(s, c->nsets, "%s: no set %zu", what, s);
	const col_set_t *set = &c->sets[s];
	size_t nd = col_ndata(set);
	cr_assert_eq(set->nrows, n, "%s: %zu rows, want %zu", what, set->nrows, n);
	for (size_t r = 0; r < n; r++) {
		cr_assert_eq(set->times[r], times[r], "%s: row %zu time %lld", what, r,
		             (long long)set->times[r]);
		bool null = set->null[r * nd + col];
		if (values[r] == N) {
			cr_assert(null, "%s: row %zu: %g, want null", what, r,
			          set->f[r * nd + col]);
		} else if (isnan(values[r])) {
			cr_assert_not(null, "%s: row %zu: null, want NaN", what, r);
			cr_assert(isnan(set->f[r * nd + col]), "%s: row %zu: want NaN", what, r);
		} else {
			cr_assert_not(null, "%s: row %zu: null, want %g", what, r, values[r]);
			cr_assert_float_eq(set->f[r * nd + col], values[r], 1e-9,
			                   "%s: row %zu: %.17g, want %.17g", what, r,
			                   set->f[r * nd + col], values[r]);
		}
	}
}

static void query(const char *text, collect_t *c, int64_t now)
{
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.now_ns = now;
	opts.max_rows = 4;
	memset(c, 0, sizeof *c);
	c->abort_after_blocks = -1;
	vg_query_error_t err;
	int rc = run_query(store, text, &opts, c, NULL, &err);
	cr_assert_eq(rc, 0, "%s: %s", text, err.message);
}

Test(exec_select, fills)
{
	static const int64_t t[] = {0,      10 * S, 20 * S, 30 * S, 40 * S,
	                            50 * S, 60 * S, 70 * S, 80 * S};
	static const struct {
		const char *fill;
		double a[9], b[9];
		size_t n;
	} cases[] = {
	    {"null", {N, 1, 3, N, N, 7, N, 2, N}, {N, 5, N, N, 6, N, N, N, N}, 9},
	    {"previous", {N, 1, 3, 3, 3, 7, 7, 2, 2}, {N, 5, 5, 5, 6, 6, 6, 6, 6}, 9},
	    {"linear",
	     {N, 1, 3, 3 + 4.0 / 3, 3 + 8.0 / 3, 7, 4.5, 2, N},
	     {N, 5, 5 + 1.0 / 3, 5 + 2.0 / 3, 6, N, N, N, N},
	     9},
	    {"-1", {-1, 1, 3, -1, -1, 7, -1, 2, -1}, {-1, 5, -1, -1, 6, -1, -1, -1, -1}, 9},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256];
		snprintf(
		    text, sizeof text,
		    "SELECT mean(u) FROM cpu WHERE time >= 0 AND time < 90s GROUP BY time(10s), "
		    "host FILL(%s)",
		    cases[i].fill);
		collect_t c;
		query(text, &c, 1000 * S);
		cr_assert_eq(c.nsets, 2, "%s", text);
		cr_assert_str_eq(c.sets[0].tag_values[0], "a");
		cr_assert_str_eq(c.sets[1].tag_values[0], "b");
		cr_assert_str_eq(c.sets[0].cols[1], "mean_u");
		expect_rows(&c, 0, 0, t, cases[i].a, cases[i].n, text);
		expect_rows(&c, 1, 0, t, cases[i].b, cases[i].n, text);
		collect_release(&c);
	}
	/* FILL(none): buckets with points only (30s holds only NaN: mean null). */
	collect_t c;
	query("SELECT mean(u), count(u) FROM cpu WHERE host = 'a' GROUP BY time(10s)", &c, 0);
	static const int64_t tn[] = {10 * S, 20 * S, 30 * S, 50 * S, 70 * S};
	static const double mean[] = {1, 3, N, 7, 2}, count[] = {1, 1, 0, 1, 1};
	expect_rows(&c, 0, 0, tn, mean, 5, "fill none mean");
	expect_rows(&c, 0, 1, tn, count, 5, "fill none count");
	collect_release(&c);
}

Test(exec_select, fill_order_limit_now)
{
	collect_t c;
	/* Previous in output order when descending. */
	query("SELECT mean(u) FROM cpu WHERE host = 'a' AND time >= 0 AND time <= 80s GROUP BY "
	      "time(10s) FILL(previous) ORDER BY time DESC",
	      &c, 1000 * S);
	static const int64_t td[] = {80 * S, 70 * S, 60 * S, 50 * S, 40 * S,
	                             30 * S, 20 * S, 10 * S, 0};
	static const double vd[] = {N, 2, 2, 7, 7, 7, 3, 1, 1};
	expect_rows(&c, 0, 0, td, vd, 9, "previous desc");
	collect_release(&c);
	/* Linear descending, with LIMIT counting filled rows. */
	query("SELECT mean(u) FROM cpu WHERE host = 'a' AND time >= 0 AND time <= 80s GROUP BY "
	      "time(10s) FILL(linear) ORDER BY time DESC LIMIT 4",
	      &c, 1000 * S);
	static const double vl[] = {N, 2, 4.5, 7};
	expect_rows(&c, 0, 0, td, vl, 4, "linear desc limit");
	collect_release(&c);
	/* No upper bound: the range ends at now, later points are not read. */
	query("SELECT max(u) FROM cpu WHERE time >= 0 GROUP BY time(20s) FILL(0)", &c, 45 * S);
	cr_assert_eq(c.nsets, 1);
	static const int64_t tu[] = {0, 20 * S, 40 * S};
	static const double vu[] = {5, 3, 6};
	expect_rows(&c, 0, 0, tu, vu, 3, "fill to now");
	collect_release(&c);
	/* An offset moves the buckets. */
	query("SELECT count(u) FROM cpu WHERE time >= 0 AND time < 60s AND host =~ /a|c/ GROUP BY "
	      "time(30s, 5s), host FILL(null)",
	      &c, 0);
	cr_assert_eq(c.nsets, 1);
	static const int64_t to[] = {-25 * S, 5 * S, 35 * S};
	static const double vo[] = {N, 2, 1};
	expect_rows(&c, 0, 0, to, vo, 3, "offset");
	collect_release(&c);
	/* A group without points in the range gets no fill rows. */
	query("SELECT count(u) FROM cpu WHERE time >= 45s AND time < 80s GROUP BY time(10s), host "
	      "FILL(null)",
	      &c, 0);
	cr_assert_eq(c.nsets, 1);
	cr_assert_str_eq(c.sets[0].tag_values[0], "a");
	static const int64_t te[] = {40 * S, 50 * S, 60 * S, 70 * S};
	static const double ve[] = {N, 1, N, 1};
	expect_rows(&c, 0, 0, te, ve, 4, "empty group");
	collect_release(&c);
	/* FILL needs a lower bound. */
	vg_query_error_t err;
	c.abort_after_blocks = -1;
	cr_assert_eq(run_query(store, "SELECT max(u) FROM cpu GROUP BY time(1m) FILL(null)", NULL,
	                       &c, NULL, &err),
	             VG_EINVAL);
	cr_assert_str_eq(err.message, "FILL(null) needs a lower time bound (WHERE time >= ...)");
	collect_release(&c);
}

Test(exec_select, aggregates)
{
	collect_t c;
	query("SELECT count(u), sum(u), min(u), max(u), mean(u), first(u), last(u), spread(u), "
	      "stddev(u), median(u), percentile(u, 50), percentile(u, 0), percentile(u, 100), "
	      "rate(u), rate(u, 1m) FROM cpu WHERE host = 'a'",
	      &c, 0);
	cr_assert_eq(c.nsets, 1);
	cr_assert_str_eq(c.sets[0].name, "cpu");
	cr_assert_eq(c.sets[0].ntags, 0);
	static const double want[] = {4,   13, 1, 7, 3.25,     1, 2, 6, 2.6299556396765835,
	                              2.5, 2,  N, 7, 1.0 / 60, 1};
	static const char *names[] = {
	    "count_u",      "sum_u",          "min_u",          "max_u",    "mean_u",
	    "first_u",      "last_u",         "spread_u",       "stddev_u", "median_u",
	    "percentile_u", "percentile_u_1", "percentile_u_2", "rate_u",   "rate_u_1"};
	static const int64_t t0[] = {0};
	for (size_t k = 0; k < 15; k++) {
		cr_assert_str_eq(c.sets[0].cols[k + 1], names[k]);
		expect_rows(&c, 0, k, t0, &want[k], 1, names[k]);
	}
	collect_release(&c);
	/* One point: stddev and rate are empty, median is the point. */
	query(
	    "SELECT stddev(u), rate(u), median(u), percentile(u, 1) FROM cpu WHERE host = 'b' AND "
	    "time > 20s",
	    &c, 0);
	static const int64_t t1[] = {20 * S + 1};
	static const double one[4] = {N, N, 6, N}; /* floor(1 * 1/100 + 0.5) - 1 = -1 */
	for (size_t k = 0; k < 4; k++)
		expect_rows(&c, 0, k, t1, &one[k], 1, c.sets[0].cols[k + 1]);
	collect_release(&c);
	/* Equal times across tag sets: rate empty, first/last from the first tag set. */
	query("SELECT rate(u), first(u), last(u), count(u), median(u) FROM cpu WHERE time < 11s",
	      &c, 0);
	static const double tie[] = {N, 1, 1, 2, 3};
	for (size_t k = 0; k < 5; k++)
		expect_rows(&c, 0, k, t0, &tie[k], 1, "tie");
	collect_release(&c);
	/* Only NaN: count 0, the rest empty. */
	query("SELECT count(u), sum(u), max(u) FROM cpu WHERE time = 30s", &c, 0);
	static const int64_t t30[] = {30 * S};
	static const double nan_only[] = {0, N, N};
	for (size_t k = 0; k < 3; k++)
		expect_rows(&c, 0, k, t30, &nan_only[k], 1, "nan only");
	collect_release(&c);
	/* Nothing in range: no set at all. */
	query("SELECT count(u) FROM cpu WHERE time > 1000s", &c, 0);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
	/* Field conditions filter points before aggregation, across tag sets. */
	query("SELECT mean(u), count(v) FROM cpu WHERE u > 2 OR host = 'b'", &c, 0);
	static const double filt[] = {5.25, 1};
	expect_rows(&c, 0, 0, t0, &filt[0], 1, "filtered mean");
	expect_rows(&c, 0, 1, t0, &filt[1], 1, "filtered count of v: the row at 20s");
	collect_release(&c);
	/* A wildcard aggregate. */
	query("SELECT max(*) FROM cpu", &c, 0);
	cr_assert_eq(c.sets[0].ncols, 3);
	cr_assert_str_eq(c.sets[0].cols[1], "max_u");
	cr_assert_str_eq(c.sets[0].cols[2], "max_v");
	static const double mx[] = {7, 200};
	expect_rows(&c, 0, 0, t0, &mx[0], 1, "max(*) u");
	expect_rows(&c, 0, 1, t0, &mx[1], 1, "max(*) v");
	collect_release(&c);
}

Test(exec_select, raw)
{
	collect_t c;
	query("SELECT u, v FROM cpu WHERE host = 'a'", &c, 0);
	static const int64_t t[] = {10 * S, 20 * S, 30 * S, 50 * S, 60 * S, 70 * S};
	static const double u[] = {1, 3, NAN, 7, N, 2}, v[] = {N, 100, N, N, 200, N};
	cr_assert_eq(c.nsets, 1);
	cr_assert_eq(c.sets[0].ntags, 0);
	expect_rows(&c, 0, 0, t, u, 6, "u");
	expect_rows(&c, 0, 1, t, v, 6, "v");
	/* The NaN point is a NaN value, not a null. */
	cr_assert(isnan(c.sets[0].f[2 * 2]));
	cr_assert_not(c.sets[0].null[2 * 2]);
	collect_release(&c);
	/* Tag sets merged by time, ties in tag-set order. */
	query("SELECT u FROM cpu", &c, 0);
	static const int64_t tm[] = {10 * S, 10 * S, 20 * S, 30 * S, 40 * S, 50 * S, 70 * S};
	static const double um[] = {1, 5, 3, NAN, 6, 7, 2};
	cr_assert_eq(c.sets[0].nrows, 7);
	for (size_t r = 0; r < 7; r++) {
		cr_assert_eq(c.sets[0].times[r], tm[r]);
		if (!isnan(um[r]))
			cr_assert_float_eq(c.sets[0].f[r], um[r], 0);
	}
	collect_release(&c);
	query("SELECT u FROM cpu ORDER BY time DESC LIMIT 3", &c, 0);
	static const int64_t td[] = {70 * S, 50 * S, 40 * S};
	static const double ud[] = {2, 7, 6};
	expect_rows(&c, 0, 0, td, ud, 3, "desc limit");
	collect_release(&c);
	/* GROUP BY *: one set per tag set, tags sorted. */
	query("SELECT * FROM cpu GROUP BY * LIMIT 1", &c, 0);
	cr_assert_eq(c.nsets, 2);
	cr_assert_eq(c.sets[0].ntags, 1);
	cr_assert_str_eq(c.sets[0].tag_keys[0], "host");
	cr_assert_str_eq(c.sets[1].tag_values[0], "b");
	cr_assert_eq(c.sets[0].ncols, 3);
	cr_assert_str_eq(c.sets[0].cols[1], "u");
	cr_assert_str_eq(c.sets[0].cols[2], "v");
	collect_release(&c);
	/* A row needs a selected field; the condition may use another. */
	query("SELECT u FROM cpu WHERE v > 150", &c, 0);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
	query("SELECT u, v AS vee FROM cpu WHERE v > 150", &c, 0);
	static const int64_t t60[] = {60 * S};
	static const double u60[] = {N}, v60[] = {200};
	cr_assert_str_eq(c.sets[0].cols[2], "vee");
	expect_rows(&c, 0, 0, t60, u60, 1, "u at 60");
	expect_rows(&c, 0, 1, t60, v60, 1, "v at 60");
	collect_release(&c);
	/* Grouping by a tag nobody has: one group with an empty value. */
	query("SELECT u FROM cpu WHERE host = 'b' GROUP BY rack", &c, 0);
	cr_assert_eq(c.nsets, 1);
	cr_assert_str_eq(c.sets[0].tag_keys[0], "rack");
	cr_assert_str_eq(c.sets[0].tag_values[0], "");
	collect_release(&c);
}

/*
 * Two tag equalities AND-ed, in either order, where the left one has more
 * than 256 series (counted, the right one read and the left one probed)
 * and where it has few (read at once); and under an OR with a value
 * condition, where the probed tag's cut set must not change any row.
 * pair: series i < 600 big=x small=s<i/2>, i >= 600 big=y small=s<(i-600)/2>;
 * field v: one point, time (i+1) s, value i.
 */
Test(exec_select, two_tags_either_order, .timeout = 60)
{
	for (int i = 0; i < 610; i++) {
		char small[16];
		snprintf(small, sizeof small, "s%d", (i % 600) / 2);
		vg_tag_t tags[2] = {TAG("big", "x"), {{"small", 5}, {small, strlen(small)}}};
		if (i >= 600)
			tags[0] = TAG("big", "y");
		int64_t t = (i + 1) * S;
		double v = i;
		put_points(store, "pair", tags, 2, "v", &t, &v, 1);
	}
	static const char *const x2[] = {
	    "SELECT v FROM pair WHERE big = 'x' AND small = 's2'",
	    "SELECT v FROM pair WHERE small = 's2' AND big = 'x'",
	    "SELECT v FROM pair WHERE time >= 0 AND (small = 's2' AND big = 'x')",
	};
	static const int64_t tx[] = {5 * S, 6 * S};
	static const double vx[] = {4, 5};
	collect_t c;
	for (size_t q = 0; q < sizeof x2 / sizeof x2[0]; q++) {
		query(x2[q], &c, 0);
		cr_assert_eq(c.nsets, 1, "%s", x2[q]);
		expect_rows(&c, 0, 0, tx, vx, 2, x2[q]);
		collect_release(&c);
	}
	static const char *const y2[] = {
	    "SELECT v FROM pair WHERE big = 'y' AND small = 's2'",
	    "SELECT v FROM pair WHERE small = 's2' AND big = 'y'",
	};
	static const int64_t ty[] = {605 * S, 606 * S};
	static const double vy[] = {604, 605};
	for (size_t q = 0; q < sizeof y2 / sizeof y2[0]; q++) {
		query(y2[q], &c, 0);
		expect_rows(&c, 0, 0, ty, vy, 2, y2[q]);
		collect_release(&c);
	}
	static const char *const or2[] = {
	    "SELECT v FROM pair WHERE (big = 'x' AND small = 's2') OR v = 300",
	    "SELECT v FROM pair WHERE v = 300 OR (small = 's2' AND big = 'x')",
	};
	static const int64_t to[] = {5 * S, 6 * S, 301 * S};
	static const double vo[] = {4, 5, 300};
	for (size_t q = 0; q < sizeof or2 / sizeof or2[0]; q++) {
		query(or2[q], &c, 0);
		expect_rows(&c, 0, 0, to, vo, 3, or2[q]);
		collect_release(&c);
	}
	/* A third tag leaf after the pair: numbered after both. */
	static const char *const or3[] = {
	    "SELECT v FROM pair WHERE (big = 'x' AND small = 's2') OR small = 's150'",
	    "SELECT v FROM pair WHERE (small = 's2' AND big = 'x') OR small = 's150'",
	};
	static const int64_t t3[] = {5 * S, 6 * S, 301 * S, 302 * S};
	static const double v3[] = {4, 5, 300, 301};
	for (size_t q = 0; q < sizeof or3 / sizeof or3[0]; q++) {
		query(or3[q], &c, 0);
		expect_rows(&c, 0, 0, t3, v3, 4, or3[q]);
		collect_release(&c);
	}
	/* No such value, on either side. */
	query("SELECT v FROM pair WHERE big = 'x' AND small = 'nope'", &c, 0);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
	query("SELECT v FROM pair WHERE big = 'nope' AND small = 's2'", &c, 0);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
}

Test(exec_select, errors_and_limits)
{
	collect_t c = {0};
	c.abort_after_blocks = -1;
	vg_query_error_t err;
	cr_assert_eq(run_query(store, "SELECT x FROM nope", NULL, &c, NULL, &err), VG_ENOTFOUND);
	cr_assert_str_eq(err.message, "measurement 'nope' not found");
	cr_assert_eq(err.line, 0);
	collect_release(&c);
	cr_assert_eq(run_query(store, "SUBSCRIBE SELECT u FROM cpu", NULL, &c, NULL, &err),
	             VG_EINVAL);
	cr_assert_str_eq(err.message, "SUBSCRIBE is not a query; send it as a Subscribe request");
	collect_release(&c);
	cr_assert_eq(run_query(store, "SHOW CONTINUOUS QUERIES", NULL, &c, NULL, &err), VG_EINVAL);
	cr_assert_str_eq(err.message,
			 "continuous queries are kept by the server; send the statement to vigild");
	collect_release(&c);

	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	atomic_bool cancel = true;
	opts.cancel = &cancel;
	cr_assert_eq(run_query(store, "SELECT u FROM cpu", &opts, &c, NULL, &err), VG_ECANCELED);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
	vg_exec_options_init(&opts);
	opts.deadline_ns = 1;
	opts.timeout_ns = 5 * S;
	cr_assert_eq(run_query(store, "SELECT mean(u) FROM cpu", &opts, &c, NULL, &err),
	             VG_ETIMEOUT);
	cr_assert_str_eq(err.message, "query exceeded the time limit of 5s (--query-timeout)");
	collect_release(&c);

	/* A sink's failure stops the query and is returned. */
	vg_exec_options_init(&opts);
	opts.max_rows = 1;
	c.abort_after_blocks = 2;
	c.abort_code = VG_ELIMIT;
	vg_exec_stats_t stats;
	cr_assert_eq(run_query(store, "SELECT u FROM cpu", &opts, &c, &stats, &err), VG_ELIMIT);
	cr_assert_eq(c.sets[0].nrows, 2);
	collect_release(&c);

	/* Values held for median are bounded. */
	vg_exec_options_init(&opts);
	opts.max_values = 2;
	c.abort_after_blocks = -1;
	cr_assert_eq(run_query(store, "SELECT median(u) FROM cpu", &opts, &c, NULL, &err),
	             VG_ELIMIT);
	collect_release(&c);
}

Test(exec_select, allocation_failures)
{
	static const char *queries[] = {
	    "SELECT median(u), mean(v) FROM cpu WHERE time >= 0 AND time < 90s GROUP BY "
	    "time(10s), host FILL(linear)",
	    "SELECT u, v FROM cpu WHERE u > 1 OR host =~ /b/",
	    "SELECT count(*) FROM cpu",
	};
	for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
		vg_statement_t *st;
		cr_assert_eq(vg_query_parse(queries[q], strlen(queries[q]), &st, NULL), 0);
		for (long n = 0;; n++) {
			collect_t c;
			vg_result_sink_t sink;
			collect_init(&c, &sink);
			vg_query_error_t err;
			vg_alloc_fail_after(n);
			int rc = vg_query_exec(st, store, NULL, &sink, NULL, &err);
			vg_alloc_fail_after(-1);
			collect_release(&c);
			if (rc == 0)
				break;
			cr_assert_eq(rc, VG_ENOMEM, "%s at %ld: %s", queries[q], n, err.message);
			cr_assert_lt(n, 5000);
		}
		vg_query_free(st);
	}
}

/* Whole sealed chunks are read from their headers, and agree with points. */
Test(exec_select, sealed_headers)
{
	enum { NP = 20000 };
	int64_t *t = malloc(NP * sizeof *t);
	double *v = malloc(NP * sizeof *v);
	double sum = 0, mx = -INFINITY;
	for (int i = 0; i < NP; i++) {
		t[i] = (int64_t)i * S;
		v[i] = (double)((i * 7919) % 1000) / 10.0;
		sum += v[i];
		mx = v[i] > mx ? v[i] : mx;
	}
	vg_tag_t tags[1] = {TAG("host", "s")};
	put_points(store, "sealed", tags, 1, "x", t, v, NP);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	collect_t c;
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	vg_exec_stats_t stats;
	vg_query_error_t err;
	c.abort_after_blocks = -1;
	cr_assert_eq(
	    run_query(store,
	              "SELECT count(x), sum(x), max(x), first(x), last(x), mean(x) FROM sealed",
	              &opts, &c, &stats, &err),
	    0, "%s", err.message);
	double want[] = {NP, sum, mx, v[0], v[NP - 1], sum / NP};
	static const int64_t t0[] = {0};
	for (size_t k = 0; k < 6; k++)
		expect_rows(&c, 0, k, t0, &want[k], 1, "sealed");
	cr_assert_eq(stats.points_scanned, NP);
	cr_assert_eq(stats.series_matched, 1);
	collect_release(&c);
	/* Hour buckets: some chunks fall wholly inside one. */
	cr_assert_eq(run_query(store,
	                       "SELECT count(x), max(x), last(x) FROM sealed GROUP BY time(1h)",
	                       &opts, &c, &stats, &err),
	             0);
	cr_assert_eq(c.sets[0].nrows, (NP + 3599) / 3600);
	for (size_t b = 0; b < c.sets[0].nrows; b++) {
		int lo = (int)b * 3600, hi = lo + 3600 < NP ? lo + 3600 : NP;
		double bmx = -INFINITY;
		for (int i = lo; i < hi; i++)
			bmx = v[i] > bmx ? v[i] : bmx;
		cr_assert_eq(c.sets[0].times[b], (int64_t)lo * S);
		cr_assert_float_eq(c.sets[0].f[b * 3], hi - lo, 0);
		cr_assert_float_eq(c.sets[0].f[b * 3 + 1], bmx, 0);
		cr_assert_float_eq(c.sets[0].f[b * 3 + 2], v[hi - 1], 0);
	}
	collect_release(&c);
	/* LIMIT takes chunk edges from headers, decoding only when it must. */
	static const struct {
		const char *q;
		int first, step, n;
		uint64_t scanned_max;
	} lim[] = {
	    {"SELECT x FROM sealed ORDER BY time DESC LIMIT 1", NP - 1, -1, 1, 1},
	    {"SELECT x FROM sealed LIMIT 1", 0, 1, 1, 1},
	    {"SELECT x FROM sealed ORDER BY time DESC LIMIT 3", NP - 1, -1, 3,
	     1 + VG_CHUNK_MAX_POINTS},
	    {"SELECT x FROM sealed WHERE time >= 100s LIMIT 2", 100, 1, 2, NP},
	    {"SELECT * FROM sealed GROUP BY * ORDER BY time DESC LIMIT 2", NP - 1, -1, 2,
	     1 + VG_CHUNK_MAX_POINTS},
	};
	for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
		cr_assert_eq(run_query(store, lim[i].q, &opts, &c, &stats, &err), 0, "%s",
		             err.message);
		cr_assert_eq(c.nsets, 1);
		cr_assert_eq(c.sets[0].nrows, (size_t)lim[i].n, "%s", lim[i].q);
		for (int r = 0; r < lim[i].n; r++) {
			int k = lim[i].first + r * lim[i].step;
			cr_assert_eq(c.sets[0].times[r], (int64_t)k * S, "%s row %d", lim[i].q, r);
			cr_assert_float_eq(c.sets[0].f[r], v[k], 0, "%s row %d", lim[i].q, r);
		}
		cr_assert_leq(stats.points_scanned, lim[i].scanned_max, "%s: %llu", lim[i].q,
		              (unsigned long long)stats.points_scanned);
		collect_release(&c);
	}
	free(t);
	free(v);
}

/* A statement over many groups may share them with a helper thread: the sink
 * sees the same sets in the same order, and a failure on either side stops
 * both and is returned. */
Test(exec_select, shared_with_a_helper)
{
	enum { HOSTS = 40, NP = 50 };
	int64_t t[NP];
	double v[NP];
	for (int h = 0; h < HOSTS; h++) {
		char host[16];
		snprintf(host, sizeof host, "h%02d", h);
		for (int i = 0; i < NP; i++) {
			t[i] = (int64_t)i * S;
			v[i] = h * 100 + i;
		}
		vg_tag_t tags[1] = {{{"host", 4}, {host, strlen(host)}}};
		put_points(store, "shared", tags, 1, "x", t, v, NP);
	}
	vg_query_helpers_t *helpers;
	cr_assert_eq(vg_query_helpers_new(1, &helpers), 0);
	static const char *text =
	    "SELECT mean(x), median(x) FROM shared GROUP BY time(10s), host";
	vg_query_error_t err;
	vg_exec_stats_t alone_stats, shared_stats;
	collect_t alone = {0}, shared = {0};
	alone.abort_after_blocks = shared.abort_after_blocks = -1;
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.max_rows = 3;
	cr_assert_eq(run_query(store, text, &opts, &alone, &alone_stats, &err), 0, "%s",
	             err.message);
	opts.helpers = helpers;
	cr_assert_eq(run_query(store, text, &opts, &shared, &shared_stats, &err), 0, "%s",
	             err.message);
	cr_assert_eq(alone_stats.groups_shared, 0);
	/* How many the helper takes depends on when it starts... */
	cr_assert_leq(shared_stats.groups_shared, HOSTS);
	cr_assert_eq(shared_stats.rows_emitted, alone_stats.rows_emitted);
	cr_assert_eq(shared_stats.points_scanned, alone_stats.points_scanned);
	cr_assert_eq(shared.nsets, HOSTS);
	cr_assert_eq(alone.nsets, HOSTS);
	for (size_t s = 0; s < HOSTS; s++) {
		const col_set_t *a = &alone.sets[s], *b = &shared.sets[s];
		cr_assert_str_eq(a->tag_values[0], b->tag_values[0], "set %zu in order", s);
		cr_assert_eq(a->nrows, b->nrows);
		for (size_t r = 0; r < a->nrows; r++) {
			cr_assert_eq(a->times[r], b->times[r]);
			for (size_t c = 0; c < 2; c++)
				cr_assert_eq(a->f[r * 2 + c], b->f[r * 2 + c]);
		}
	}
	collect_release(&shared);
	/* ...unless the split is even. */
	shared = (collect_t){0};
	shared.abort_after_blocks = -1;
	opts.helpers_even = true;
	cr_assert_eq(run_query(store, text, &opts, &shared, &shared_stats, &err), 0, "%s",
	             err.message);
	opts.helpers_even = false;
	cr_assert_eq(shared_stats.groups_shared, HOSTS / 2);
	cr_assert_eq(shared.nsets, HOSTS);
	for (size_t s = 0; s < HOSTS; s++)
		cr_assert_str_eq(alone.sets[s].tag_values[0], shared.sets[s].tag_values[0]);
	collect_release(&alone);
	collect_release(&shared);

	/* One group of 40 series, GROUP BY time: the helper opens some of them. */
	static const char *one_group = "SELECT max(x), count(x) FROM shared GROUP BY time(10s)";
	alone = (collect_t){0};
	shared = (collect_t){0};
	alone.abort_after_blocks = shared.abort_after_blocks = -1;
	opts.helpers = NULL;
	cr_assert_eq(run_query(store, one_group, &opts, &alone, &alone_stats, &err), 0);
	opts.helpers = helpers;
	cr_assert_eq(run_query(store, one_group, &opts, &shared, &shared_stats, &err), 0);
	cr_assert_leq(shared_stats.sources_shared, HOSTS);
	collect_t even = {0};
	even.abort_after_blocks = -1;
	opts.helpers_even = true;
	vg_exec_stats_t even_stats;
	cr_assert_eq(run_query(store, one_group, &opts, &even, &even_stats, &err), 0);
	opts.helpers_even = false;
	cr_assert_eq(even_stats.sources_shared, HOSTS / 2);
	cr_assert_eq(even.sets[0].nrows, 5);
	for (size_t r = 0; r < 5; r++)
		cr_assert_eq(even.sets[0].f[r * 2], alone.sets[0].f[r * 2]);
	collect_release(&even);
	cr_assert_eq(shared_stats.points_scanned, alone_stats.points_scanned);
	cr_assert_eq(alone.nsets, 1);
	cr_assert_eq(shared.nsets, 1);
	cr_assert_eq(shared.sets[0].nrows, 5);
	cr_assert_eq(alone.sets[0].nrows, 5);
	for (size_t r = 0; r < 5; r++) {
		cr_assert_eq(alone.sets[0].f[r * 2], shared.sets[0].f[r * 2]);
		cr_assert_eq(shared.sets[0].f[r * 2], (HOSTS - 1) * 100 + r * 10 + 9);
		cr_assert_eq(shared.sets[0].f[r * 2 + 1], HOSTS * 10);
	}
	collect_release(&alone);
	collect_release(&shared);

	/* The sink fails while the helper is reading its groups. */
	collect_t c = {0};
	c.abort_after_blocks = 3;
	c.abort_code = VG_ELIMIT;
	cr_assert_eq(run_query(store, text, &opts, &c, NULL, &err), VG_ELIMIT);
	collect_release(&c);
	/* The sink fails late: maybe while the helper's rows are replayed. */
	c = (collect_t){0};
	c.abort_after_blocks = HOSTS * 2 - 3;
	c.abort_code = VG_ELIMIT;
	cr_assert_eq(run_query(store, text, &opts, &c, NULL, &err), VG_ELIMIT);
	collect_release(&c);
	/* Either thread running out of room for median's values fails it. */
	c = (collect_t){0};
	c.abort_after_blocks = -1;
	opts.max_values = 9;
	cr_assert_eq(run_query(store, text, &opts, &c, NULL, &err), VG_ELIMIT);
	cr_assert(strstr(err.message, "holds more than"), "%s", err.message);
	collect_release(&c);
	/* A cancelled statement stops on both sides. */
	atomic_bool cancel = true;
	opts.max_values = 1000;
	opts.cancel = &cancel;
	c = (collect_t){0};
	c.abort_after_blocks = -1;
	cr_assert_eq(run_query(store, text, &opts, &c, NULL, &err), VG_ECANCELED);
	collect_release(&c);
	vg_query_helpers_free(helpers);
}
