/*
 * test_retention.c — per-measurement and global retention: old points go,
 * chunks are dropped or rewritten (not tombstoned), settings persist.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_store.h"

#define HOUR (INT64_C(3600) * 1000000000)
#define NPTS 10000

static vg_series_id_t add_series(vg_store_t *store, const char *m)
{
	vg_series_key_t key = {{m, strlen(m)}, NULL, 0, {"v", 1}};
	vg_wtxn_t *txn;
	vg_series_id_t id;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_series(txn, &key, &id, NULL), 0);
	/* 10,000 points one per 36 s over 100 hours. */
	static int64_t t[NPTS];
	static double v[NPTS];
	for (int i = 0; i < NPTS; i++) {
		t[i] = (int64_t)i * (HOUR / 100);
		v[i] = i;
	}
	cr_assert_eq(vg_wtxn_put(txn, id, t, v, NPTS), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	return id;
}

static uint64_t count_points(vg_store_t *store, vg_series_id_t id, int64_t *first)
{
	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	vg_agg_t agg;
	vg_agg_init(&agg);
	cr_assert_eq(vg_rtxn_aggregate(r, id, INT64_MIN, INT64_MAX, &agg), 0);
	vg_rtxn_end(r);
	*first = agg.first_time;
	return agg.count;
}

Test(retention, per_measurement_and_global)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	vg_series_id_t a = add_series(store, "short");
	vg_series_id_t b = add_series(store, "long");
	cr_assert_eq(vg_store_seal(store, 1), 0);
	vg_store_stats_t before;
	cr_assert_eq(vg_store_stats(store, &before), 0);

	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_set_retention(txn, (vg_str_t){"short", 5}, 10 * HOUR), 0);
	cr_assert_eq(vg_wtxn_set_retention(txn, (vg_str_t){NULL, 0}, 50 * HOUR), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	/* Settings survive a reopen. */
	vg_store_close(store);
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	vg_rtxn_t *r;
	int64_t d;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	cr_assert_eq(vg_rtxn_retention(r, (vg_str_t){"short", 5}, &d), 0);
	cr_assert_eq(d, 10 * HOUR);
	cr_assert_eq(vg_rtxn_retention(r, (vg_str_t){"long", 4}, &d), 0);
	cr_assert_eq(d, 50 * HOUR, "falls back to the global setting");
	vg_rtxn_end(r);

	int64_t now = 100 * HOUR; /* the last point is at 99.99 h */
	uint64_t removed = 0;
	cr_assert_eq(vg_store_enforce_retention(store, now, &removed), 0);
	int64_t first;
	cr_assert_eq(count_points(store, a, &first), 1000);
	cr_assert_eq(first, 90 * HOUR);
	cr_assert_eq(count_points(store, b, &first), 5000);
	cr_assert_eq(first, 50 * HOUR);
	cr_assert_eq(removed, 9000 + 5000);

	vg_store_stats_t after;
	cr_assert_eq(vg_store_stats(store, &after), 0);
	cr_assert_eq(after.chunk_points, 6000, "no tombstones: chunks hold only live points");
	cr_assert_lt(after.chunks, before.chunks);

	/* Clearing the measurement's own setting falls back to global. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_set_retention(txn, (vg_str_t){"short", 5}, 0), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	cr_assert_eq(vg_rtxn_retention(r, (vg_str_t){"short", 5}, &d), 0);
	cr_assert_eq(d, 50 * HOUR);
	vg_rtxn_end(r);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

Test(retention, freed_space_is_reused)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	vg_series_id_t id = add_series(store, "m");
	cr_assert_eq(vg_store_seal(store, 1), 0);
	vg_store_stats_t first;
	cr_assert_eq(vg_store_stats(store, &first), 0);
	/* Delete everything and write it again, many times: the file must
	 * not keep growing. */
	for (int round = 0; round < 10; round++) {
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		uint64_t removed = 0;
		cr_assert_eq(vg_wtxn_delete(txn, id, INT64_MIN, INT64_MAX, &removed), 0);
		cr_assert_eq(removed, NPTS);
		cr_assert_eq(vg_wtxn_commit(txn), 0);
		add_series(store, "m");
		cr_assert_eq(vg_store_seal(store, 1), 0);
	}
	vg_store_stats_t last;
	cr_assert_eq(vg_store_stats(store, &last), 0);
	cr_assert_lt(last.file_bytes, first.file_bytes * 3, "file %lu vs %lu",
		     (unsigned long)last.file_bytes, (unsigned long)first.file_bytes);
	vg_store_close(store);
	vg_test_rmdir(dir);
}
