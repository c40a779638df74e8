/*
 * test_compact.c — vg_store_compact gives free pages back to the file
 * system and changes nothing else: the same points, transaction ids that
 * keep increasing, writes and reopening afterwards, readers running during
 * the copy.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_store.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define NSERIES 200
#define NPTS 2000

static vg_store_t *open_store(const char *dir)
{
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	return store;
}

static vg_series_id_t series_id(vg_wtxn_t *txn, int i)
{
	char name[32];
	snprintf(name, sizeof name, "s%d", i);
	vg_series_key_t key = {{"m", 1}, NULL, 0, {name, strlen(name)}};
	vg_series_id_t id;
	cr_assert_eq(vg_wtxn_series(txn, &key, &id, NULL), 0);
	return id;
}

/* Writes NPTS points to each series in batches of 100 (so heads are
 * written, sealed and freed many times), value = series * 1e6 + time. */
static void fill(vg_store_t *store, int64_t t_base)
{
	static int64_t t[100];
	static double v[100];
	for (int batch = 0; batch < NPTS / 100; batch++) {
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		for (int i = 0; i < NSERIES; i++) {
			vg_series_id_t id = series_id(txn, i);
			for (int j = 0; j < 100; j++) {
				t[j] = t_base + batch * 100 + j;
				v[j] = i * 1e6 + (double)t[j];
			}
			cr_assert_eq(vg_wtxn_put(txn, id, t, v, 100), 0);
		}
		cr_assert_eq(vg_wtxn_commit(txn), 0);
	}
}

static void check(vg_store_t *store, uint64_t points_per_series, int64_t t_last)
{
	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	for (int i = 0; i < NSERIES; i++) {
		char name[32];
		snprintf(name, sizeof name, "s%d", i);
		vg_series_key_t key = {{"m", 1}, NULL, 0, {name, strlen(name)}};
		vg_series_id_t id;
		cr_assert_eq(vg_rtxn_series_find(r, &key, &id), 0);
		vg_agg_t agg;
		vg_agg_init(&agg);
		cr_assert_eq(vg_rtxn_aggregate(r, id, INT64_MIN, INT64_MAX, &agg), 0);
		cr_assert_eq(agg.count, points_per_series);
		cr_assert_eq(agg.last_time, t_last);
		cr_assert_eq(agg.last, i * 1e6 + (double)t_last);
	}
	vg_rtxn_end(r);
}

static uint64_t file_size(const char *dir)
{
	char path[300];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

Test(compact, gives_free_pages_back_and_keeps_every_point)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	fill(store, 0);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	uint64_t file0, used0;
	cr_assert_eq(vg_store_space(store, &file0, &used0), 0);
	cr_assert_lt(used0, file0, "the churn of head pages leaves free pages");

	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	uint64_t id_before = vg_rtxn_id(r);
	vg_rtxn_end(r);

	cr_assert_eq(vg_store_compact(store), 0);
	uint64_t file1, used1;
	cr_assert_eq(vg_store_space(store, &file1, &used1), 0);
	cr_assert_eq(file1, used1, "a compacted file has no free pages");
	cr_assert_leq(used1, used0);
	cr_assert_lt(file_size(dir), file0);
	check(store, NPTS, NPTS - 1);

	/* Ids go on increasing: a reader sees the last commit's id, the next
	 * writer a larger one. */
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	cr_assert_eq(vg_rtxn_id(r), id_before);
	vg_rtxn_end(r);
	vg_wtxn_t *w;
	cr_assert_eq(vg_store_write_begin(store, &w), 0);
	cr_assert_gt(vg_wtxn_id(w), id_before);
	vg_wtxn_abort(w);

	/* Writes go on, and everything survives a reopen. */
	fill(store, NPTS);
	vg_store_close(store);
	store = open_store(dir);
	check(store, 2 * NPTS, 2 * NPTS - 1);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

typedef struct {
	vg_store_t *store;
	atomic_bool stop;
	atomic_int reads;
	atomic_int errors;
} reader_ctx_t;

static void *reader(void *arg)
{
	reader_ctx_t *ctx = arg;
	while (!atomic_load(&ctx->stop)) {
		vg_rtxn_t *r;
		if (vg_store_read_begin(ctx->store, &r) != 0) {
			atomic_fetch_add(&ctx->errors, 1);
			continue;
		}
		vg_series_key_t key = {{"m", 1}, NULL, 0, {"s7", 2}};
		vg_series_id_t id;
		vg_agg_t agg;
		vg_agg_init(&agg);
		if (vg_rtxn_series_find(r, &key, &id) != 0 ||
		    vg_rtxn_aggregate(r, id, INT64_MIN, INT64_MAX, &agg) != 0 || agg.count != NPTS)
			atomic_fetch_add(&ctx->errors, 1);
		vg_rtxn_end(r);
		atomic_fetch_add(&ctx->reads, 1);
	}
	return NULL;
}

Test(compact, readers_run_through_a_compaction)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	fill(store, 0);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	reader_ctx_t ctx = {.store = store};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, reader, &ctx), 0);
	for (int round = 0; round < 3; round++)
		cr_assert_eq(vg_store_compact(store), 0);
	atomic_store(&ctx.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(atomic_load(&ctx.errors), 0);
	cr_assert_gt(atomic_load(&ctx.reads), 0);
	check(store, NPTS, NPTS - 1);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

Test(compact, a_leftover_copy_is_removed_at_open)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	fill(store, 0);
	vg_store_close(store);
	/* What a crash during the copy leaves behind. */
	char path[400];
	snprintf(path, sizeof path, "%s/compact.tmp", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/compact.tmp/data.mdb", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("half a copy", f);
	fclose(f);
	store = open_store(dir);
	struct stat st;
	snprintf(path, sizeof path, "%s/compact.tmp", dir);
	cr_assert_neq(stat(path, &st), 0);
	check(store, NPTS, NPTS - 1);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* ---- re-cut tails ------------------------------------------------------ */

#define RAGGED_SERIES 120
#define RAGGED_MAX 6000

static size_t ragged_points(int i) { return 900 + (size_t)i * 41 % 5000; }

/* Series i: ragged_points(i) points of a 1-decimal random walk (whose
 * chunks are partly leaf-sized tails) with a NaN now and then. */
static void ragged_series(int i, int64_t *t, double *v, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
	double level = 50;
	for (size_t j = 0; j < n; j++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		level += (double)(int)(x % 21) - 10;
		t[j] = 1000000 + (int64_t)j * 10 + (int64_t)(x >> 61); /* 0..7: increasing */
		v[j] = x % 997 == 0 ? NAN : round(level) / 10;
	}
}

static void check_ragged(vg_store_t *store)
{
	static int64_t t[RAGGED_MAX];
	static double v[RAGGED_MAX];
	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	for (int i = 0; i < RAGGED_SERIES; i++) {
		size_t n = ragged_points(i), at = 0;
		ragged_series(i, t, v, n);
		char name[32];
		snprintf(name, sizeof name, "s%d", i);
		vg_series_key_t key = {{"m", 1}, NULL, 0, {name, strlen(name)}};
		vg_series_id_t id;
		cr_assert_eq(vg_rtxn_series_find(r, &key, &id), 0);
		vg_cursor_t *c;
		cr_assert_eq(vg_cursor_open(r, id, INT64_MIN, INT64_MAX, 0, &c), 0);
		const int64_t *ct;
		const double *cv;
		size_t m;
		while (vg_cursor_next(c, &ct, &cv, &m) == 0 && m > 0) {
			cr_assert_leq(at + m, n);
			cr_assert_eq(memcmp(ct, t + at, m * sizeof *ct), 0, "series %d", i);
			cr_assert_eq(memcmp(cv, v + at, m * sizeof *cv), 0, "series %d", i);
			at += m;
		}
		cr_assert_eq(at, n, "series %d: %zu of %zu points", i, at, n);
		vg_cursor_close(c);
	}
	vg_rtxn_end(r);
}

Test(compact, recut_tails_keep_every_point_bit_for_bit)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	static int64_t t[RAGGED_MAX];
	static double v[RAGGED_MAX];
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int i = 0; i < RAGGED_SERIES; i++) {
		size_t n = ragged_points(i);
		ragged_series(i, t, v, n);
		cr_assert_eq(vg_wtxn_put(txn, series_id(txn, i), t, v, n), 0);
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	vg_store_stats_t before, after, again;
	cr_assert_eq(vg_store_stats(store, &before), 0);
	check_ragged(store);

	cr_assert_eq(vg_store_compact(store), 0);
	cr_assert_eq(vg_store_stats(store, &after), 0);
	cr_assert_eq(after.chunk_points, before.chunk_points);
	cr_assert_eq(after.head_points, 0);
	cr_assert_leq(after.used_bytes, before.used_bytes);
	check_ragged(store);
	/* A second compaction finds the tails already fitted. */
	cr_assert_eq(vg_store_compact(store), 0);
	cr_assert_eq(vg_store_stats(store, &again), 0);
	cr_assert_eq(again.used_bytes, after.used_bytes);
	cr_assert_eq(again.chunks, after.chunks);
	check_ragged(store);
	/* Seals merge new points into the re-cut tails; all survives a reopen. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	int64_t t_new = 1000000 + 10 * RAGGED_MAX + 100;
	double v_new = 1.5;
	for (int i = 0; i < RAGGED_SERIES; i++)
		cr_assert_eq(vg_wtxn_put(txn, series_id(txn, i), &t_new, &v_new, 1), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	cr_assert_eq(vg_store_seal(store, 1), 0);
	vg_store_close(store);
	store = open_store(dir);
	vg_store_stats_t last;
	cr_assert_eq(vg_store_stats(store, &last), 0);
	cr_assert_eq(last.chunk_points + last.head_points, before.chunk_points + RAGGED_SERIES);
	vg_store_close(store);
	vg_test_rmdir(dir);
}
