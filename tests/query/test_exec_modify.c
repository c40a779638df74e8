/*
 * test_exec_modify.c — query/exec_modify.c: DELETE (time ranges, tag
 * conditions, whole series dropped, batches) and SET RETENTION with its
 * effect once the store enforces it; SHOW RETENTION reflects the settings.
 */
#include "collect.h"

#define S INT64_C(1000000000)

static char dir[256];
static vg_store_t *store;

static void setup(void)
{
	store = open_store(dir, sizeof dir);
	vg_tag_t a[1] = {TAG("host", "a")}, b[1] = {TAG("host", "b")}, c[1] = {TAG("host", "c")};
	int64_t t[] = {10 * S, 20 * S, 30 * S, 50 * S, 70 * S};
	double v[] = {1, 2, 3, 4, 5};
	put_points(store, "cpu", a, 1, "u", t, v, 5);
	put_points(store, "cpu", a, 1, "v", t, v, 1);
	put_points(store, "cpu", b, 1, "u", t, v, 2);
	put_points(store, "cpu", c, 1, "u", t, v, 3);
	put_points(store, "mem", a, 1, "free", t, v, 5);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	put_points(store, "cpu", a, 1, "u", t + 4, v, 1); /* 70s: head */
}

static void teardown(void)
{
	vg_store_close(store);
	vg_test_rmdir(dir);
}

TestSuite(exec_modify, .init = setup, .fini = teardown);

static int run(const char *text, vg_exec_options_t *opts, collect_t *c, vg_exec_stats_t *stats,
               vg_query_error_t *err)
{
	memset(c, 0, sizeof *c);
	c->abort_after_blocks = -1;
	return run_query(store, text, opts, c, stats, err);
}

static size_t count_rows(const char *text)
{
	collect_t c;
	vg_query_error_t err;
	int rc = run(text, NULL, &c, NULL, &err);
	cr_assert_eq(rc, 0, "%s: %s", text, err.message);
	size_t n = 0;
	for (size_t s = 0; s < c.nsets; s++)
		n += c.sets[s].nrows;
	collect_release(&c);
	return n;
}

Test(exec_modify, delete_range)
{
	collect_t c;
	vg_exec_stats_t stats;
	vg_query_error_t err;
	cr_assert_eq(run("DELETE FROM cpu WHERE host = 'a' AND time >= 20s AND time < 60s", NULL,
	                 &c, &stats, &err),
	             0, "%s", err.message);
	cr_assert_eq(c.nsets, 0);
	cr_assert_eq(stats.points_deleted, 3, "u at 20s, 30s, 50s (v has only 10s)");
	cr_assert_eq(stats.series_matched, 2);
	collect_release(&c);
	cr_assert_eq(count_rows("SELECT u FROM cpu WHERE host = 'a'"), 2);
	cr_assert_eq(count_rows("SELECT u FROM cpu WHERE host = 'b'"), 2);
	cr_assert_eq(count_rows("SHOW SERIES FROM cpu"), 3, "series stay");
}

Test(exec_modify, delete_series)
{
	collect_t c;
	vg_exec_stats_t stats;
	vg_query_error_t err;
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.delete_batch = 1;
	cr_assert_eq(run("DELETE FROM cpu WHERE host =~ /^[ab]$/", &opts, &c, &stats, &err), 0,
	             "%s", err.message);
	cr_assert_eq(stats.points_deleted, 5 + 1 + 2);
	cr_assert_eq(stats.series_matched, 3);
	collect_release(&c);
	cr_assert_eq(count_rows("SHOW SERIES FROM cpu"), 1);
	cr_assert_eq(count_rows("SELECT u FROM cpu"), 3);
	/* Every series of a measurement: the measurement is gone. */
	cr_assert_eq(run("DELETE FROM mem", NULL, &c, &stats, &err), 0);
	cr_assert_eq(stats.points_deleted, 5);
	collect_release(&c);
	cr_assert_eq(run("SELECT free FROM mem", NULL, &c, NULL, &err), VG_ENOTFOUND);
	collect_release(&c);
	cr_assert_eq(run("DELETE FROM mem", NULL, &c, NULL, &err), VG_ENOTFOUND);
	cr_assert_str_eq(err.message, "measurement 'mem' not found");
	collect_release(&c);
	cr_assert_eq(count_rows("SHOW MEASUREMENTS"), 1);
	/* A condition nothing satisfies deletes nothing. */
	cr_assert_eq(run("DELETE FROM cpu WHERE host = 'zz'", NULL, &c, &stats, &err), 0);
	cr_assert_eq(stats.points_deleted, 0);
	collect_release(&c);
	cr_assert_eq(run("DELETE FROM cpu WHERE time > 1000s", NULL, &c, &stats, &err), 0);
	cr_assert_eq(stats.points_deleted, 0);
	collect_release(&c);
}

static void expect_retention(const char *const *cells, size_t nrows)
{
	collect_t c;
	vg_query_error_t err;
	cr_assert_eq(run("SHOW RETENTION", NULL, &c, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(c.nsets, 1);
	const col_set_t *set = &c.sets[0];
	cr_assert_str_eq(set->name, "retention");
	cr_assert_str_eq(set->cols[0], "measurement");
	cr_assert_str_eq(set->cols[1], "duration");
	cr_assert_eq(set->nrows, nrows);
	for (size_t i = 0; i < nrows * 2; i++)
		cr_assert_str_eq(set->s[i], cells[i], "cell %zu", i);
	collect_release(&c);
}

Test(exec_modify, retention)
{
	expect_retention((const char *[]){"", "INF"}, 1);
	collect_t c;
	vg_query_error_t err;
	cr_assert_eq(run("SET RETENTION 30d", NULL, &c, NULL, &err), 0, "%s", err.message);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
	cr_assert_eq(run("SET RETENTION 40s ON cpu", NULL, &c, NULL, &err), 0, "%s", err.message);
	collect_release(&c);
	expect_retention((const char *[]){"", "30d", "cpu", "40s"}, 2);
	int64_t ns;
	vg_rtxn_t *txn;
	cr_assert_eq(vg_store_read_begin(store, &txn), 0);
	cr_assert_eq(vg_rtxn_retention(txn, (vg_str_t){"cpu", 3}, &ns), 0);
	cr_assert_eq(ns, 40 * S);
	vg_rtxn_end(txn);
	/* Enforced at now = 80s: cpu keeps time >= 40s, mem keeps all. */
	uint64_t removed = 0;
	cr_assert_eq(vg_store_enforce_retention(store, 80 * S, &removed), 0);
	cr_assert_eq(count_rows("SELECT u FROM cpu"), 2);
	cr_assert_eq(count_rows("SELECT free FROM mem"), 5);
	cr_assert_eq(run("SET RETENTION INF", NULL, &c, NULL, &err), 0);
	collect_release(&c);
	cr_assert_eq(run("SET RETENTION INF ON cpu", NULL, &c, NULL, &err), 0);
	collect_release(&c);
	cr_assert_eq(vg_store_read_begin(store, &txn), 0);
	cr_assert_eq(vg_rtxn_retention(txn, (vg_str_t){"cpu", 3}, &ns), 0);
	cr_assert_eq(ns, 0);
	vg_rtxn_end(txn);
}
