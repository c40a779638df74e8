/*
 * test_compact.c — vg_store_compact gives free pages back to the file
 * system and changes nothing else: the same points, transaction ids that
 * keep increasing, writes and reopening afterwards, readers running during
 * the copy.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_store.h"

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
