/*
 * test_group_commit.c — the writer's group commit (server/writer.c) stores
 * exactly what applying its jobs one transaction at a time stores.
 *
 * vg_writer_commit() gathers every job's points per series and puts each
 * series once, the pieces ordered by time when they do not overlap and in
 * write order when they do.  Random groups of jobs — windows of in-order
 * points handed out of order (pipelined requests from several
 * connections), overlapping and unsorted writes with repeated times,
 * several blocks of one series in a job — go into one store as groups and
 * into another job by job; every series must then read back the same, bit
 * for bit, and each job must report the same ids and counts.
 */
#include "server_int.h"

#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_store.h"
#include "vg_test.h"

#define NSERIES 5
#define MAX_BLOCKS 4
#define MAX_TIMES 40

/* A hand-built Write of up to MAX_BLOCKS blocks, one field each. */
typedef struct {
	Vigil__V1__Envelope envelope;
	Vigil__V1__Write write;
	Vigil__V1__WriteBlock blocks[MAX_BLOCKS];
	Vigil__V1__WriteBlock *block_ptrs[MAX_BLOCKS];
	Vigil__V1__Tag tag[MAX_BLOCKS];
	Vigil__V1__Tag *tag_ptr[MAX_BLOCKS];
	Vigil__V1__WriteField field[MAX_BLOCKS];
	Vigil__V1__WriteField *field_ptr[MAX_BLOCKS];
	char host[MAX_BLOCKS][16];
	int64_t times[MAX_BLOCKS][MAX_TIMES];
	double values[MAX_BLOCKS][MAX_TIMES];
	vg_write_job_t job;
} test_job_t;

static char measurement[] = "m", tag_key[] = "host", field_name[] = "v";

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

/* Fills job j with random blocks; next_t[] is each series' next in-order
 * time (windows of in-order points). */
static void make_job(test_job_t *t, vg_test_rng_t *rng, int64_t *next_t)
{
	memset(t, 0, sizeof *t);
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	t->envelope = env;
	t->write = write;
	t->envelope.write = &t->write;
	size_t nblocks = 1 + vg_test_below(rng, MAX_BLOCKS);
	for (size_t b = 0; b < nblocks; b++) {
		Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
		Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
		Vigil__V1__WriteField field = VIGIL__V1__WRITE_FIELD__INIT;
		int s = (int)vg_test_below(rng, NSERIES);
		snprintf(t->host[b], sizeof t->host[b], "h%d", s);
		/* New series keep appearing, some first named in a group. */
		if (next_t[s] > 1000 + 400 * (int64_t)(s + 1) && vg_test_below(rng, 4) == 0)
			snprintf(t->host[b], sizeof t->host[b], "h%d-%d", s,
				 (int)vg_test_below(rng, 1000));
		tag.key = tag_key;
		tag.value = t->host[b];
		t->tag[b] = tag;
		t->tag_ptr[b] = &t->tag[b];
		size_t n = 1 + vg_test_below(rng, MAX_TIMES);
		int shape = (int)vg_test_below(rng, 5);
		int64_t back = next_t[s] - (int64_t)vg_test_below(rng, 30);
		for (size_t i = 0; i < n; i++) {
			if (shape < 2) {
				/* A window of in-order points (most writes). */
				t->times[b][i] = next_t[s];
				next_t[s] += 1 + (int64_t)vg_test_below(rng, 3);
			} else if (shape == 2) {
				/* Anywhere in the past, in any order, repeats too. */
				t->times[b][i] = (int64_t)vg_test_below(rng, (uint64_t)next_t[s] + 10);
			} else if (shape == 3) {
				/* A few times over and over. */
				t->times[b][i] = next_t[s] - (int64_t)vg_test_below(rng, 6);
			} else {
				/* In order, but over times written before: a
				 * rewrite that overlaps other pieces. */
				t->times[b][i] = back;
				back += 1 + (int64_t)vg_test_below(rng, 2);
			}
			t->values[b][i] = (double)vg_test_below(rng, 1000000) / 7.0;
		}
		field.name = field_name;
		field.n_values = n;
		field.values = t->values[b];
		t->field[b] = field;
		t->field_ptr[b] = &t->field[b];
		block.measurement = measurement;
		block.n_tags = 1;
		block.tags = &t->tag_ptr[b];
		block.n_times = n;
		block.times = t->times[b];
		block.n_fields = 1;
		block.fields = &t->field_ptr[b];
		t->blocks[b] = block;
		t->block_ptrs[b] = &t->blocks[b];
	}
	t->write.n_blocks = nblocks;
	t->write.blocks = t->block_ptrs;
	t->job.envelope = &t->envelope;
}

static void job_reset(vg_write_job_t *job)
{
	vg_free(job->ids);
	vg_free(job->created);
	job->ids = NULL;
	job->created = NULL;
	job->next = NULL;
}

/* Every point of series h<s> in both stores, compared bit for bit. */
static void compare_series(vg_store_t *a, vg_store_t *b, int s)
{
	char host[16];
	snprintf(host, sizeof host, "h%d", s);
	vg_tag_t tag = {{tag_key, 4}, {host, strlen(host)}};
	vg_series_key_t key = {{measurement, 1}, &tag, 1, {field_name, 1}};
	vg_rtxn_t *ta, *tb;
	cr_assert_eq(vg_store_read_begin(a, &ta), 0);
	cr_assert_eq(vg_store_read_begin(b, &tb), 0);
	vg_series_id_t ia, ib;
	int fa = vg_rtxn_series_find(ta, &key, &ia), fb = vg_rtxn_series_find(tb, &key, &ib);
	cr_assert_eq(fa, fb);
	if (fa == 0) {
		cr_assert_eq(ia, ib, "series ids differ");
		vg_cursor_t *ca, *cb;
		cr_assert_eq(vg_cursor_open(ta, ia, INT64_MIN, INT64_MAX, 0, &ca), 0);
		cr_assert_eq(vg_cursor_open(tb, ib, INT64_MIN, INT64_MAX, 0, &cb), 0);
		const int64_t *at = NULL, *bt = NULL;
		const double *av = NULL, *bv = NULL;
		size_t an = 0, bn = 0, ai = 0, bi = 0, total = 0;
		for (;;) {
			if (ai == an) {
				cr_assert_eq(vg_cursor_next(ca, &at, &av, &an), 0);
				ai = 0;
			}
			if (bi == bn) {
				cr_assert_eq(vg_cursor_next(cb, &bt, &bv, &bn), 0);
				bi = 0;
			}
			if (an == 0 || bn == 0) {
				cr_assert_eq(an, bn, "series h%d: one store has more points (%zu)", s,
					     total);
				break;
			}
			cr_assert_eq(at[ai], bt[bi], "series h%d point %zu", s, total);
			uint64_t x, y;
			memcpy(&x, &av[ai], 8);
			memcpy(&y, &bv[bi], 8);
			cr_assert_eq(x, y, "series h%d value at t=%ld", s, (long)at[ai]);
			ai++;
			bi++;
			total++;
		}
		vg_cursor_close(ca);
		vg_cursor_close(cb);
	}
	vg_rtxn_end(ta);
	vg_rtxn_end(tb);
}

static void run_groups(uint64_t seed)
{
	char dir_a[256], dir_b[256];
	vg_test_tmpdir(dir_a, sizeof dir_a);
	vg_test_tmpdir(dir_b, sizeof dir_b);
	vg_store_t *grouped = open_store(dir_a), *single = open_store(dir_b);
	vg_test_rng_t rng = {seed};
	int64_t next_t[NSERIES];
	for (int s = 0; s < NSERIES; s++)
		next_t[s] = 1000;
	enum { MAX_GROUP = 24 };
	test_job_t *jobs = calloc(MAX_GROUP, sizeof *jobs);
	cr_assert_not_null(jobs);
	for (int round = 0; round < 60; round++) {
		size_t njobs = 1 + vg_test_below(&rng, MAX_GROUP);
		for (size_t j = 0; j < njobs; j++)
			make_job(&jobs[j], &rng, next_t);
		/* Pipelined windows arrive out of order: swap some jobs. */
		for (size_t j = 0; j + 1 < njobs; j++) {
			if (vg_test_below(&rng, 3) == 0) {
				test_job_t tmp = jobs[j];
				jobs[j] = jobs[j + 1];
				jobs[j + 1] = tmp;
			}
		}
		/* Pointers inside a job point into it: rebuild them after the
		 * swaps. */
		for (size_t j = 0; j < njobs; j++) {
			test_job_t *t = &jobs[j];
			t->envelope.write = &t->write;
			t->write.blocks = t->block_ptrs;
			for (size_t b = 0; b < t->write.n_blocks; b++) {
				t->block_ptrs[b] = &t->blocks[b];
				t->tag[b].value = t->host[b];
				t->tag_ptr[b] = &t->tag[b];
				t->blocks[b].tags = &t->tag_ptr[b];
				t->blocks[b].times = t->times[b];
				t->field_ptr[b] = &t->field[b];
				t->blocks[b].fields = &t->field_ptr[b];
				t->field[b].values = t->values[b];
			}
			t->job.envelope = &t->envelope;
		}
		/* One at a time first: record what each job reports. */
		vg_series_id_t ids[MAX_GROUP][MAX_BLOCKS];
		uint8_t created[MAX_GROUP][MAX_BLOCKS];
		uint64_t points[MAX_GROUP];
		for (size_t j = 0; j < njobs; j++) {
			job_reset(&jobs[j].job);
			int rc = vg_writer_commit(single, &jobs[j].job);
			cr_assert_eq(rc, 0, "job %zu of round %d: %s", j, round, vg_strerror(rc));
			for (size_t b = 0; b < jobs[j].write.n_blocks; b++) {
				ids[j][b] = jobs[j].job.ids[b];
				created[j][b] = jobs[j].job.created[b];
			}
			points[j] = jobs[j].job.points;
			job_reset(&jobs[j].job);
		}
		/* Then as one group. */
		for (size_t j = 0; j + 1 < njobs; j++)
			jobs[j].job.next = &jobs[j + 1].job;
		cr_assert_eq(vg_writer_commit(grouped, &jobs[0].job), 0);
		for (size_t j = 0; j < njobs; j++) {
			cr_assert_eq(jobs[j].job.points, points[j]);
			for (size_t b = 0; b < jobs[j].write.n_blocks; b++) {
				/* The group resolves a series once (writer.c): the
				 * ids and who created a series must not change. */
				cr_assert_eq(jobs[j].job.ids[b], ids[j][b]);
				cr_assert_eq(jobs[j].job.created[b], created[j][b]);
			}
			cr_assert_eq(jobs[j].job.commit, jobs[0].job.commit, "one transaction");
		}
		for (size_t j = 0; j < njobs; j++)
			job_reset(&jobs[j].job);
		if (round % 10 == 9)
			for (int s = 0; s < NSERIES; s++)
				compare_series(grouped, single, s);
	}
	for (int s = 0; s < NSERIES; s++)
		compare_series(grouped, single, s);
	cr_assert_eq(vg_store_seal(grouped, 1), 0);
	cr_assert_eq(vg_store_seal(single, 1), 0);
	for (int s = 0; s < NSERIES; s++)
		compare_series(grouped, single, s);
	free(jobs);
	vg_store_close(grouped);
	vg_store_close(single);
	vg_test_rmdir(dir_a);
	vg_test_rmdir(dir_b);
}

Test(group_commit, groups_store_what_jobs_one_by_one_store, .timeout = 120)
{
	static const uint64_t seeds[] = {1, 0x9e3779b97f4a7c15ULL, 4242, 0xfeedULL};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		run_groups(seeds[i]);
}

/* A failing job fails the whole group and writes nothing. */
Test(group_commit, a_bad_job_fails_the_group)
{
	char dir[256];
	vg_test_tmpdir(dir, sizeof dir);
	vg_store_t *store = open_store(dir);
	vg_test_rng_t rng = {77};
	int64_t next_t[NSERIES] = {10, 10, 10, 10, 10};
	test_job_t *jobs = calloc(2, sizeof *jobs);
	cr_assert_not_null(jobs);
	make_job(&jobs[0], &rng, next_t);
	make_job(&jobs[1], &rng, next_t);
	jobs[1].times[0][0] = INT64_MAX; /* not a valid time */
	jobs[0].job.next = &jobs[1].job;
	cr_assert_eq(vg_writer_commit(store, &jobs[0].job), VG_EINVAL);
	vg_store_stats_t st;
	cr_assert_eq(vg_store_stats(store, &st), 0);
	cr_assert_eq(st.head_points + st.chunk_points, 0, "nothing written");
	job_reset(&jobs[0].job);
	job_reset(&jobs[1].job);
	free(jobs);
	vg_store_close(store);
	vg_test_rmdir(dir);
}
