/*
 * test_store.c — the storage engine against a brute-force reference model:
 * writes in and out of order, overwrites, NaN payloads, aborts, seals,
 * deletes and reopens, then every read path (cursor forwards and
 * backwards, aggregate fast path) compared point by point and bit by bit.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_store.h"

#include <errno.h>
#include <lmdb.h>

#include <math.h>

#define NSERIES 4
#define MAXPTS 60000

/* The reference: per series a sorted array of unique times. */
typedef struct {
	int64_t t[MAXPTS];
	uint64_t v[MAXPTS]; /* value bits */
	size_t n;
} ref_series_t;

static ref_series_t *ref;

static uint64_t bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	return u;
}

static double from_bits(uint64_t u)
{
	double d;
	memcpy(&d, &u, 8);
	return d;
}

static void ref_put(ref_series_t *s, int64_t t, double v)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->t[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->n && s->t[lo] == t) {
		s->v[lo] = bits(v);
		return;
	}
	cr_assert_lt(s->n, MAXPTS);
	memmove(s->t + lo + 1, s->t + lo, (s->n - lo) * sizeof s->t[0]);
	memmove(s->v + lo + 1, s->v + lo, (s->n - lo) * sizeof s->v[0]);
	s->t[lo] = t;
	s->v[lo] = bits(v);
	s->n++;
}

static void ref_delete(ref_series_t *s, int64_t t0, int64_t t1)
{
	size_t m = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->t[i] >= t0 && s->t[i] < t1)
			continue;
		s->t[m] = s->t[i];
		s->v[m++] = s->v[i];
	}
	s->n = m;
}

static double random_value(vg_test_rng_t *rng)
{
	switch (vg_test_below(rng, 20)) {
	case 0:
		return from_bits(UINT64_C(0x7ff8000000000000) | vg_test_below(rng, 1000)); /* NaN */
	case 1:
		return -0.0;
	case 2:
		return INFINITY;
	case 3:
		return from_bits(vg_test_below(rng, 1000)); /* denormal */
	case 4:
	case 5:
	case 6:
		return (double)(int64_t)vg_test_below(rng, 2000) / 10.0;
	default:
		return (double)vg_test_next(rng) / 1e17;
	}
}

static vg_store_t *open_store(const char *dir)
{
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store = NULL;
	char err[256] = "";
	int rc = vg_store_open(dir, &opts, &store, err, sizeof err);
	cr_assert_eq(rc, 0, "open: %s", err);
	return store;
}

static vg_series_id_t series_id(vg_store_t *store, int which)
{
	char field[16];
	snprintf(field, sizeof field, "f%d", which);
	vg_tag_t tag = {{"host", 4}, {"a", 1}};
	vg_series_key_t key = {{"m", 1}, &tag, 1, {field, strlen(field)}};
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	vg_series_id_t id;
	cr_assert_eq(vg_wtxn_series(txn, &key, &id, NULL), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	return id;
}

/* Writes n points of series id in a transaction of their own. */
static void put_committed(vg_store_t *store, vg_series_id_t id, const int64_t *times,
			  const double *values, size_t n)
{
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_put(txn, id, times, values, n), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
}

/* Compares a cursor walk over [t0, t1) with the reference. */
static void check_range(vg_store_t *store, vg_series_id_t id, const ref_series_t *s, int64_t t0,
			int64_t t1, bool reverse)
{
	size_t lo = 0;
	while (lo < s->n && s->t[lo] < t0)
		lo++;
	size_t hi = lo;
	while (hi < s->n && s->t[hi] < t1)
		hi++;
	vg_rtxn_t *txn;
	cr_assert_eq(vg_store_read_begin(store, &txn), 0);
	vg_cursor_t *c;
	cr_assert_eq(vg_cursor_open(txn, id, t0, t1, reverse ? VG_CURSOR_REVERSE : 0, &c), 0);
	size_t seen = 0;
	for (;;) {
		const int64_t *times;
		const double *values;
		size_t n;
		cr_assert_eq(vg_cursor_next(c, &times, &values, &n), 0);
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++, seen++) {
			cr_assert_lt(seen, hi - lo, "more points than expected in [%ld,%ld)",
				     (long)t0, (long)t1);
			size_t j = reverse ? hi - 1 - seen : lo + seen;
			cr_assert_eq(times[i], s->t[j], "time %zu of [%ld,%ld) rev=%d", seen,
				     (long)t0, (long)t1, reverse);
			cr_assert_eq(bits(values[i]), s->v[j], "value at t=%ld", (long)times[i]);
		}
	}
	cr_assert_eq(seen, hi - lo, "points in [%ld,%ld) rev=%d", (long)t0, (long)t1, reverse);
	vg_cursor_close(c);

	/* Aggregate fast path against brute force. */
	vg_agg_t agg, want;
	vg_agg_init(&agg);
	vg_agg_init(&want);
	cr_assert_eq(vg_rtxn_aggregate(txn, id, t0, t1, &agg), 0);
	for (size_t j = lo; j < hi; j++) {
		double v = from_bits(s->v[j]);
		vg_agg_add(&want, &s->t[j], &v, 1);
	}
	cr_assert_eq(agg.points, want.points);
	cr_assert_eq(agg.count, want.count);
	if (want.count) {
		cr_assert_eq(bits(agg.min), bits(want.min));
		cr_assert_eq(bits(agg.max), bits(want.max));
		cr_assert_eq(bits(agg.first), bits(want.first));
		cr_assert_eq(bits(agg.last), bits(want.last));
		cr_assert_eq(agg.first_time, want.first_time);
		cr_assert_eq(agg.last_time, want.last_time);
		if (isfinite(want.sum))
			cr_assert(fabs(agg.sum - want.sum) <= 1e-9 * (fabs(want.sum) + 1),
				  "sum %.17g vs %.17g", agg.sum, want.sum);
	}
	vg_rtxn_end(txn);
}

static void check_all(vg_store_t *store, const vg_series_id_t *ids, vg_test_rng_t *rng)
{
	for (int s = 0; s < NSERIES; s++) {
		check_range(store, ids[s], &ref[s], INT64_MIN, INT64_MAX, false);
		check_range(store, ids[s], &ref[s], INT64_MIN, INT64_MAX, true);
		for (int k = 0; k < 6; k++) {
			int64_t a = (int64_t)vg_test_below(rng, 120000) - 10000;
			int64_t b = a + (int64_t)vg_test_below(rng, 40000);
			check_range(store, ids[s], &ref[s], a * 1000, b * 1000, k & 1);
		}
	}
}

static void run_random_operations(uint64_t seed)
{
	ref = calloc(NSERIES, sizeof *ref);
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t ids[NSERIES];
	for (int s = 0; s < NSERIES; s++)
		ids[s] = series_id(store, s);
	vg_test_rng_t rng = {seed};
	int64_t next_t[NSERIES] = {0};
	int64_t times[600];
	double values[600];
	for (int round = 0; round < 300; round++) {
		int op = (int)vg_test_below(&rng, 100);
		if (op < 80) {
			/* A transaction of several puts. */
			vg_wtxn_t *txn;
			cr_assert_eq(vg_store_write_begin(store, &txn), 0);
			int puts = 1 + (int)vg_test_below(&rng, 4);
			bool abort = vg_test_below(&rng, 10) == 0;
			for (int p = 0; p < puts; p++) {
				int s = (int)vg_test_below(&rng, NSERIES);
				/* Half small writes, which extend the newest head
				 * block when in order (head.c). */
				size_t n = vg_test_below(&rng, 2) ? 1 + vg_test_below(&rng, 8)
								  : 1 + vg_test_below(&rng, 300);
				bool in_order = vg_test_below(&rng, 4) != 0;
				for (size_t i = 0; i < n; i++) {
					if (in_order) {
						next_t[s] += 1 + (int64_t)vg_test_below(&rng, 3);
						times[i] = next_t[s] * 1000;
					} else {
						times[i] = ((int64_t)vg_test_below(&rng, 110000) - 5000) * 1000;
					}
					values[i] = random_value(&rng);
				}
				cr_assert_eq(vg_wtxn_put(txn, ids[s], times, values, n), 0);
				if (!abort)
					for (size_t i = 0; i < n; i++)
						ref_put(&ref[s], times[i], values[i]);
				if (vg_test_below(&rng, 8) == 0) {
					/* A delete between the puts of one transaction:
					 * the head cursor the puts keep (head.c) must
					 * follow the blocks it removes and rewrites. */
					int d = (int)vg_test_below(&rng, NSERIES);
					int64_t a = ((int64_t)vg_test_below(&rng, 110000) - 5000) * 1000;
					int64_t b = a + (int64_t)vg_test_below(&rng, 20000) * 1000;
					uint64_t removed = 0;
					cr_assert_eq(vg_wtxn_delete(txn, ids[d], a, b, &removed), 0);
					if (!abort)
						ref_delete(&ref[d], a, b);
				}
			}
			if (abort)
				vg_wtxn_abort(txn);
			else
				cr_assert_eq(vg_wtxn_commit(txn), 0);
		} else if (op < 87) {
			cr_assert_eq(vg_store_seal(store, 1 + (uint32_t)vg_test_below(&rng, 3000)), 0);
		} else if (op < 94) {
			int s = (int)vg_test_below(&rng, NSERIES);
			int64_t a = ((int64_t)vg_test_below(&rng, 110000) - 5000) * 1000;
			int64_t b = a + (int64_t)vg_test_below(&rng, 20000) * 1000;
			vg_wtxn_t *txn;
			cr_assert_eq(vg_store_write_begin(store, &txn), 0);
			uint64_t removed = 0;
			cr_assert_eq(vg_wtxn_delete(txn, ids[s], a, b, &removed), 0);
			size_t before = ref[s].n;
			ref_delete(&ref[s], a, b);
			cr_assert_eq(removed, before - ref[s].n, "removed count %lu want %zu range [%ld,%ld) round %d", (unsigned long)removed, before - ref[s].n, (long)a, (long)b, round);
			cr_assert_eq(vg_wtxn_commit(txn), 0);
		} else if (op < 97) {
			vg_store_close(store);
			store = open_store(dir);
		} else {
			check_all(store, ids, &rng);
		}
	}
	check_all(store, ids, &rng);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	check_all(store, ids, &rng);
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points, 0, "everything sealed");
	size_t total = 0;
	for (int s = 0; s < NSERIES; s++)
		total += ref[s].n;
	cr_assert_eq(st.chunk_points, total);
	cr_assert_eq(st.series, NSERIES);
	vg_store_close(store);
	vg_test_rmdir(dir);
	free(ref);
}

Test(store, random_operations_match_reference, .timeout = 300)
{
	static const uint64_t seeds[] = {0x5eed1234abcdULL, 7, 0xdeadbeefULL, 99991};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		run_random_operations(seeds[i]);
}

Test(store, last_write_wins_within_and_across_batches)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	int64_t t[] = {30, 10, 20, 10, 30};
	double v[] = {1, 2, 3, 4, 5};
	put_committed(store, id, t, v, 5);
	int64_t t2[] = {20};
	double v2[] = {9};
	put_committed(store, id, t2, v2, 1);
	for (int sealed = 0; sealed < 2; sealed++) {
		vg_rtxn_t *r;
		cr_assert_eq(vg_store_read_begin(store, &r), 0);
		vg_cursor_t *c;
		cr_assert_eq(vg_cursor_open(r, id, INT64_MIN, INT64_MAX, 0, &c), 0);
		const int64_t *times;
		const double *values;
		size_t n;
		cr_assert_eq(vg_cursor_next(c, &times, &values, &n), 0);
		cr_assert_eq(n, 3);
		cr_assert_eq(times[0], 10);
		cr_assert_eq(values[0], 4);
		cr_assert_eq(times[1], 20);
		cr_assert_eq(values[1], 9);
		cr_assert_eq(times[2], 30);
		cr_assert_eq(values[2], 5);
		vg_cursor_close(c);
		vg_rtxn_end(r);
		cr_assert_eq(vg_store_seal(store, 1), 0);
	}
	/* INT64_MAX is outside every half-open range, so it is refused. */
	int64_t bad = INT64_MAX;
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_put(txn, id, &bad, v, 1), VG_EINVAL);
	vg_wtxn_abort(txn);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* One point per write, in order: each write extends the newest head block
 * until it is full; an aborted extension leaves the block as it was, and
 * reopening (which rebuilds the head table) and sealing keep every point. */
Test(store, small_in_order_writes_extend_the_head_block)
{
	ref = calloc(1, sizeof *ref);
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	vg_test_rng_t rng = {42};
	for (int64_t t = 1; t <= 150; t++) {
		double v = random_value(&rng);
		bool abort = t % 37 == 0;
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		cr_assert_eq(vg_wtxn_put(txn, id, &t, &v, 1), 0);
		if (abort) {
			vg_wtxn_abort(txn);
		} else {
			cr_assert_eq(vg_wtxn_commit(txn), 0);
			ref_put(&ref[0], t, v);
		}
		if (t % 50 == 0) {
			vg_store_close(store);
			store = open_store(dir);
		}
	}
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points, ref[0].n);
	for (int sealed = 0; sealed < 2; sealed++) {
		check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, false);
		check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, true);
		check_range(store, id, &ref[0], 30, 95, false);
		cr_assert_eq(vg_store_seal(store, 1), 0);
	}
	vg_store_close(store);
	vg_test_rmdir(dir);
	free(ref);
}

/* Opening reads no head; the seal pass still finds the unsealed points of
 * series that nobody wrote since, and a write after reopening continues the
 * head it finds. */
Test(store, heads_left_unsealed_are_found_after_reopening)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t ids[3];
	for (int s = 0; s < 3; s++)
		ids[s] = series_id(store, s);
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int s = 0; s < 3; s += 2) {
		int64_t t[] = {10, 20};
		double v[] = {1, 2};
		cr_assert_eq(vg_wtxn_put(txn, ids[s], t, v, 2), 0);
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_store_close(store);
	store = open_store(dir);
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	int64_t t = 30;
	double v = 3;
	cr_assert_eq(vg_wtxn_put(txn, ids[2], &t, &v, 1), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points, 5);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points, 0, "every head sealed");
	cr_assert_eq(st.chunk_points, 5);
	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	vg_agg_t agg;
	vg_agg_init(&agg);
	cr_assert_eq(vg_rtxn_aggregate(r, ids[2], INT64_MIN, INT64_MAX, &agg), 0);
	cr_assert_eq(agg.count, 3);
	cr_assert_eq(agg.last, 3);
	vg_rtxn_end(r);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

Test(store, format_version_mismatch_is_a_clear_error)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_store_close(store);
	/* Rewrite the format record with raw LMDB. */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	cr_assert_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
	cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	uint8_t v[4] = {0, 0, 0, 99};
	MDB_val k = {6, "format"}, val = {4, v};
	cr_assert_eq(mdb_put(txn, dbi, &k, &val, 0), 0);
	cr_assert_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	char err[256] = "";
	vg_store_t *again = NULL;
	cr_assert_eq(vg_store_open(dir, NULL, &again, err, sizeof err), VG_EVERSION);
	cr_assert_null(again);
	cr_assert(strstr(err, "version 99") != NULL, "message: %s", err);
	vg_test_rmdir(dir);
}

Test(store, map_grows_on_demand)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	opts.map_size = 1 << 20; /* 1 MiB: must grow many times */
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	vg_series_id_t id = series_id(store, 0);
	vg_test_rng_t rng = {42};
	static int64_t t[20000];
	static double v[20000];
	for (int batch = 0; batch < 40; batch++) {
		for (int i = 0; i < 20000; i++) {
			t[i] = (int64_t)batch * 20000 + i;
			v[i] = (double)vg_test_next(&rng); /* incompressible */
		}
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		cr_assert_eq(vg_wtxn_put(txn, id, t, v, 20000), 0);
		cr_assert_eq(vg_wtxn_commit(txn), 0, "batch %d", batch);
	}
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_gt(st.map_bytes, 1 << 20);
	cr_assert_eq(st.chunk_points + st.head_points, 800000);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* A data directory belongs to one process at a time (compaction replaces
 * the data file under anyone else).  flock() locks belong to the open file,
 * so a second open in this process stands for a second process. */
Test(store, a_data_directory_is_opened_by_one_store_at_a_time)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *first, *second = NULL;
	char err[256] = "";
	cr_assert_eq(vg_store_open(dir, NULL, &first, err, sizeof err), 0, "%s", err);
	cr_assert_eq(vg_store_open(dir, NULL, &second, err, sizeof err), -EBUSY);
	cr_assert_null(second);
	cr_assert(strstr(err, "in use by another process"), "%s", err);
	vg_store_close(first);
	cr_assert_eq(vg_store_open(dir, NULL, &second, err, sizeof err), 0, "%s", err);
	vg_store_close(second);
	vg_test_rmdir(dir);
}

/*
 * Regression (fuzz/fuzz_query.c, clang UBSan): sealing a series that has
 * head points but no chunk merged an empty run whose arrays are NULL, and
 * reading a chunk with no head points in its span built a run at NULL + 0
 * — undefined behaviour that gcc's sanitizers do not report.  The points
 * must come back exactly, in both directions, after each step.
 */
static void expect_points(vg_store_t *store, vg_series_id_t id, const int64_t *t, const double *v,
			  size_t n)
{
	for (int reverse = 0; reverse < 2; reverse++) {
		vg_rtxn_t *r;
		cr_assert_eq(vg_store_read_begin(store, &r), 0);
		vg_cursor_t *c;
		cr_assert_eq(vg_cursor_open(r, id, INT64_MIN, INT64_MAX, reverse ? VG_CURSOR_REVERSE : 0, &c), 0);
		size_t seen = 0;
		const int64_t *times;
		const double *values;
		size_t got;
		while (vg_cursor_next(c, &times, &values, &got) == 0 && got > 0) {
			for (size_t i = 0; i < got; i++, seen++) {
				size_t k = reverse ? n - 1 - seen : seen;
				cr_assert_lt(seen, n);
				cr_assert_eq(times[i], t[k]);
				cr_assert_eq(values[i], v[k]);
			}
		}
		cr_assert_eq(seen, n);
		vg_cursor_close(c);
		vg_rtxn_end(r);
	}
}

Test(store, seal_without_chunks_and_read_without_head)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	int64_t t[] = {10, 20, 30, 40};
	double v[] = {1, 2, 3, 4};
	put_committed(store, id, t, v, 3);
	expect_points(store, id, t, v, 3); /* head only */
	cr_assert_eq(vg_store_seal(store, 1), 0);
	expect_points(store, id, t, v, 3); /* chunk only: no head in its span */
	put_committed(store, id, t + 3, v + 3, 1);
	expect_points(store, id, t, v, 4); /* a chunk, then a head point after it */
	cr_assert_eq(vg_store_seal(store, 1), 0);
	expect_points(store, id, t, v, 4);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* ---- the head block format ------------------------------------------- */

/* A value of the kind `kind` for write t: integers, one decimal place,
 * three, full precision, NaN payloads and -0.0 (head.c stores decimals
 * compactly and the others raw). */
static double kind_value(int kind, int64_t t)
{
	switch (kind) {
	case 0:
		return (double)(t % 97) - 40;
	case 1:
		return (double)(t % 997) / 10.0;
	case 2:
		return (double)(t % 100003 * 7919 % 100003) / 1000.0;
	case 3:
		return 1.0 / 3.0 + (double)t;
	case 4:
		return from_bits(UINT64_C(0x7ff8000000000000) | (uint64_t)t);
	default:
		return -0.0;
	}
}

/* One point per write, the kind of value changing every few writes, at a
 * steady rate with jitter: each write extends the newest block, which is
 * encoded again at a larger exponent or raw when a value needs it; every
 * point comes back bit for bit, before and after sealing and reopening. */
Test(store, head_blocks_follow_the_values_they_hold)
{
	ref = calloc(1, sizeof *ref);
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	vg_test_rng_t rng = {7};
	int64_t t = INT64_C(1767225600000000000);
	for (int w = 0; w < 600; w++) {
		t += 10000000000 + (int64_t)vg_test_below(&rng, 3) - 1;
		int kind = (w / 7) % 6 < 3 ? (w / 7) % 3 : (int)vg_test_below(&rng, 6);
		double v = kind_value(kind, t);
		put_committed(store, id, &t, &v, 1);
		ref_put(&ref[0], t, v);
		if (w % 97 == 0)
			check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, w & 1);
	}
	check_range(store, id, &ref[0], ref[0].t[100], ref[0].t[350], false);
	vg_store_close(store);
	store = open_store(dir);
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points, ref[0].n);
	check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, false);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, true);
	vg_store_close(store);
	vg_test_rmdir(dir);
	free(ref);
}

/* Raw LMDB access to a closed store's databases. */
typedef struct {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi head, meta;
} raw_store_t;

static void raw_open(raw_store_t *r, const char *dir)
{
	cr_assert_eq(mdb_env_create(&r->env), 0);
	mdb_env_set_maxdbs(r->env, 8);
	cr_assert_eq(mdb_env_open(r->env, dir, 0, 0644), 0);
	cr_assert_eq(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
	cr_assert_eq(mdb_dbi_open(r->txn, "head", 0, &r->head), 0);
	cr_assert_eq(mdb_dbi_open(r->txn, "meta", 0, &r->meta), 0);
}

static void raw_close(raw_store_t *r)
{
	cr_assert_eq(mdb_txn_commit(r->txn), 0);
	mdb_env_close(r->env);
}

/* Puts a format-1 head block (u32 count, u32 0, i64 min, i64 max, times,
 * values) under (id, seq). */
static void raw_put_v1_block(raw_store_t *r, vg_series_id_t id, uint32_t seq,
			     const int64_t *times, const double *values, uint32_t n)
{
	uint8_t key[8] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id,
			  (uint8_t)(seq >> 24), (uint8_t)(seq >> 16), (uint8_t)(seq >> 8),
			  (uint8_t)seq};
	uint8_t block[24 + 16 * 16] = {0};
	cr_assert_leq(n, 16);
	memcpy(block, &n, 4);
	memcpy(block + 8, &times[0], 8);
	memcpy(block + 16, &times[n - 1], 8);
	memcpy(block + 24, times, 8 * n);
	memcpy(block + 24 + 8 * n, values, 8 * n);
	MDB_val k = {8, key}, v = {24 + 16 * (size_t)n, block};
	cr_assert_eq(mdb_put(r->txn, r->head, &k, &v, 0), 0);
}

/* A store of format 1 (raw head blocks) is converted when opened: its
 * points read back the same, overlapping blocks still merge in write
 * order, and the format record says 2 afterwards. */
Test(store, a_format_1_store_is_converted_when_opened)
{
	ref = calloc(1, sizeof *ref);
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	vg_store_close(store);

	int64_t t0[] = {10, 20, 30, 40, 50}, t1[] = {5, 20, 45};
	double v0[] = {1.5, NAN, -0.0, 1e300, 4}, v1[] = {7, 8.25, 1.0 / 3.0};
	raw_store_t r;
	raw_open(&r, dir);
	raw_put_v1_block(&r, id, 0, t0, v0, 5);
	raw_put_v1_block(&r, id, 1, t1, v1, 3);
	uint8_t one[4] = {0, 0, 0, 1};
	MDB_val k = {6, "format"}, v = {4, one};
	cr_assert_eq(mdb_put(r.txn, r.meta, &k, &v, 0), 0);
	raw_close(&r);
	for (int i = 0; i < 5; i++)
		ref_put(&ref[0], t0[i], v0[i]);
	for (int i = 0; i < 3; i++)
		ref_put(&ref[0], t1[i], v1[i]);

	store = open_store(dir);
	check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, false);
	check_range(store, id, &ref[0], 15, 46, true);
	/* The `series` database, rebuilt, still finds the series by key. */
	cr_assert_eq(series_id(store, 0), id);
	/* The converted head takes appends like any other. */
	int64_t t = 60;
	double x = 2.5;
	put_committed(store, id, &t, &x, 1);
	ref_put(&ref[0], t, x);
	check_range(store, id, &ref[0], INT64_MIN, INT64_MAX, false);
	vg_store_close(store);

	raw_open(&r, dir);
	cr_assert_eq(mdb_get(r.txn, r.meta, &k, &v), 0);
	cr_assert_eq(v.mv_size, 4);
	cr_assert_eq(((const uint8_t *)v.mv_data)[3], VG_STORE_FORMAT_VERSION);
	raw_close(&r);
	vg_test_rmdir(dir);
	free(ref);
}

/* Every damaged form of a head block — each byte changed, the block cut
 * short or grown — reads as VG_ECORRUPT or as some points, never as a
 * crash or a read past the block (the sanitizer build checks that). */
Test(store, damaged_head_blocks_read_as_corrupt)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_series_id_t id = series_id(store, 0);
	int64_t times[6] = {INT64_MIN, 100, 200, 300, 401, 1000000};
	double values[6] = {0.5, 1.5, 2.25, 3, 4, 5};
	put_committed(store, id, times, values, 6);
	vg_store_close(store);

	raw_store_t r;
	raw_open(&r, dir);
	MDB_cursor *cur;
	cr_assert_eq(mdb_cursor_open(r.txn, r.head, &cur), 0);
	MDB_val k, v;
	cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
	uint8_t key[8], good[128];
	cr_assert_leq(v.mv_size, sizeof good - 8);
	size_t len = v.mv_size;
	memcpy(key, k.mv_data, 8);
	memcpy(good, v.mv_data, len);
	mdb_cursor_close(cur);
	raw_close(&r);

	int corrupt = 0;
	for (size_t variant = 0; variant < 3 * len + 8; variant++) {
		uint8_t bad[128];
		memcpy(bad, good, len);
		size_t blen = len;
		if (variant < 3 * len) {
			static const uint8_t with[3] = {0x00, 0xff, 0x80};
			bad[variant / 3] = (uint8_t)(bad[variant / 3] ^ with[variant % 3]) |
					   (variant % 3 == 0 ? 0x01 : 0);
		} else if (variant - 3 * len < 4) {
			blen = len - 1 - (variant - 3 * len);
		} else {
			blen = len + 1 + (variant - 3 * len - 4);
			memset(bad + len, 0x81, blen - len);
		}
		raw_open(&r, dir);
		MDB_val bk = {8, key}, bv = {blen, bad};
		cr_assert_eq(mdb_put(r.txn, r.head, &bk, &bv, 0), 0);
		raw_close(&r);
		store = open_store(dir);
		vg_rtxn_t *rt;
		cr_assert_eq(vg_store_read_begin(store, &rt), 0);
		vg_cursor_t *c;
		int rc = vg_cursor_open(rt, id, INT64_MIN, INT64_MAX, 0, &c);
		if (rc == 0) {
			const int64_t *ts;
			const double *vs;
			size_t n;
			do
				rc = vg_cursor_next(c, &ts, &vs, &n);
			while (rc == 0 && n > 0);
			vg_cursor_close(c);
		}
		cr_assert(rc == 0 || rc == VG_ECORRUPT, "variant %zu: %d", variant, rc);
		corrupt += rc == VG_ECORRUPT;
		vg_rtxn_end(rt);
		vg_store_close(store);
	}
	cr_assert_gt(corrupt, (int)len, "most damage is detected (%d of %zu)", corrupt, 3 * len + 8);
	vg_test_rmdir(dir);
}
