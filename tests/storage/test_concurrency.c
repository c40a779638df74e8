/*
 * test_concurrency.c — readers in several threads while one thread writes:
 * every reader sees a consistent snapshot (all series of one commit or
 * none), in time order, and never waits for the writer.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_store.h"

#include <pthread.h>
#include <stdatomic.h>

#define NSERIES 8
#define COMMITS 300
#define PER_COMMIT 50
#define READERS 3

typedef struct {
	vg_store_t *store;
	vg_series_id_t ids[NSERIES];
	atomic_bool done;
	atomic_int reads;
} shared_t;

static void *writer(void *arg)
{
	shared_t *sh = arg;
	int64_t t[PER_COMMIT];
	double v[PER_COMMIT];
	for (int c = 0; c < COMMITS; c++) {
		vg_wtxn_t *txn;
		cr_assert_eq(vg_store_write_begin(sh->store, &txn), 0);
		for (int s = 0; s < NSERIES; s++) {
			for (int i = 0; i < PER_COMMIT; i++) {
				t[i] = (int64_t)(c * PER_COMMIT + i) * 1000;
				v[i] = (double)t[i] + s;
			}
			cr_assert_eq(vg_wtxn_put(txn, sh->ids[s], t, v, PER_COMMIT), 0);
		}
		cr_assert_eq(vg_wtxn_commit(txn), 0);
	}
	atomic_store(&sh->done, true);
	return NULL;
}

static void *reader(void *arg)
{
	shared_t *sh = arg;
	size_t last_total = 0;
	for (int iter = 0; iter < 100000; iter++) {
		bool finished = atomic_load(&sh->done);
		vg_rtxn_t *txn;
		cr_assert_eq(vg_store_read_begin(sh->store, &txn), 0);
		size_t counts[NSERIES];
		for (int s = 0; s < NSERIES; s++) {
			vg_cursor_t *c;
			cr_assert_eq(vg_cursor_open(txn, sh->ids[s], INT64_MIN, INT64_MAX, 0, &c), 0);
			size_t seen = 0;
			for (;;) {
				const int64_t *times;
				const double *values;
				size_t n;
				cr_assert_eq(vg_cursor_next(c, &times, &values, &n), 0);
				if (n == 0)
					break;
				for (size_t i = 0; i < n; i++, seen++) {
					cr_assert_eq(times[i], (int64_t)seen * 1000);
					cr_assert_eq(values[i], (double)times[i] + s);
				}
			}
			vg_cursor_close(c);
			counts[s] = seen;
		}
		vg_rtxn_end(txn);
		for (int s = 1; s < NSERIES; s++)
			cr_assert_eq(counts[s], counts[0], "snapshot mixes commits");
		cr_assert_eq(counts[0] % PER_COMMIT, 0);
		cr_assert_geq(counts[0], last_total, "time went backwards");
		last_total = counts[0];
		atomic_fetch_add(&sh->reads, 1);
		if (finished)
			break;
	}
	cr_assert_eq(last_total, (size_t)COMMITS * PER_COMMIT);
	return NULL;
}

Test(concurrency, readers_see_consistent_snapshots, .timeout = 120)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	shared_t sh = {0};
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &sh.store, err, sizeof err), 0, "%s", err);
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(sh.store, &txn), 0);
	for (int s = 0; s < NSERIES; s++) {
		char host[16];
		snprintf(host, sizeof host, "h%d", s);
		vg_tag_t tag = {{"host", 4}, {host, strlen(host)}};
		vg_series_key_t key = {{"m", 1}, &tag, 1, {"v", 1}};
		cr_assert_eq(vg_wtxn_series(txn, &key, &sh.ids[s], NULL), 0);
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	pthread_t w, r[READERS];
	for (int i = 0; i < READERS; i++)
		pthread_create(&r[i], NULL, reader, &sh);
	pthread_create(&w, NULL, writer, &sh);
	pthread_join(w, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	cr_assert_geq(atomic_load(&sh.reads), READERS);
	vg_store_close(sh.store);
	vg_test_rmdir(dir);
}
