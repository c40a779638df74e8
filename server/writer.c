/*
 * writer.c — group commit.
 *
 * The loop queues validated write jobs; the writer thread takes the jobs
 * queued at that moment (up to VG_GROUP_MAX_SERIES series writes), applies
 * them all in one write transaction and commits once (one fsync under
 * --sync full for the whole group), then hands them back to the loop,
 * which acknowledges each.  While a commit is
 * in progress new jobs pile up and form the next group, so the number of
 * fsyncs adapts to the load with no timer and no added latency when idle.
 * Inside the group each series is resolved once and put once (its points
 * from every job concatenated; see put_group()), because pipelined
 * requests name the same series again and again.
 *
 * A group whose transaction fails is retried job by job, so one client's
 * failure (say, a store limit) never fails another's write.  Nothing is
 * acknowledged before its commit returned.
 *
 * The writer also runs the maintenance passes (retention, sealing idle
 * heads), which are write transactions too, and seals every head once
 * writes have paused for VG_IDLE_SEAL_NS, then compacts the file when
 * most of it is free pages.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A group stops growing once its jobs write this many series.  LMDB keeps
 * every page a write transaction dirtied in a pool of its own for later
 * transactions and never gives it back, so the pool is as large as the
 * largest transaction ever was (and so are the group's tables here).
 * Unbounded, 4 connections pipelining 16 writes of 1,000 series made
 * groups of 64 k series, and at 1 M series the pool and tables held ~20 B
 * of heap per series (bench/RESULTS.md, "series creation and memory");
 * 16 k series still make few commits (one fsync each under --sync full).
 */
#define VG_GROUP_MAX_SERIES 16384

#define VG_IDLE_SEAL_MIN_POINTS 1
#define VG_IDLE_SEAL_NS INT64_C(2000000000) /* quiet time before heads are sealed */

/* Compaction after the idle seal: when the free pages are at least this
 * many bytes and a quarter of the bytes in use, and the store is small
 * enough that the copy (writes wait for it) takes a moment, not minutes. */
#define VG_COMPACT_MIN_FREE ((uint64_t)16 << 20)
#define VG_COMPACT_MAX_USED ((uint64_t)1 << 30)

static void on_done(struct ev_loop *loop, ev_async *w, int revents);

void vg_write_job_free(vg_write_job_t *job)
{
	if (!job)
		return;
	vg_frame_free_envelope(job->envelope);
	vg_free(job->ids);
	vg_free(job->created);
	vg_free(job);
}

/*
 * One series' points of one job, waiting to be put: a group's puts are
 * gathered first, then each series gets one put for the whole group.
 */
typedef struct {
	vg_series_id_t id;
	uint32_t order; /* position in the group: write order */
	const int64_t *times;
	const double *values;
	size_t n;
} group_put_t;

/* A series key as sent (measurement, tags in the order sent, field; each
 * length-prefixed) already resolved in this group, in group_t.keys. */
typedef struct {
	uint64_t hash;
	uint32_t off, len; /* len 0: empty slot */
	vg_series_id_t id;
} key_slot_t;

typedef struct {
	group_put_t *puts;
	size_t len, cap;
	/* Scratch for one series' concatenated points. */
	int64_t *times;
	double *values;
	size_t points_cap;
	/*
	 * The series the group's jobs named so far, by key as sent: a group's
	 * jobs name the same series over and over (pipelined windows of the
	 * same hosts), and resolving a key in the store (canonical form: tags
	 * sorted and checked, then two B-tree lookups) costs ~8,000
	 * instructions against a few hundred for hashing it here.  Valid for
	 * one transaction only: nothing else can drop or create a series while
	 * it holds the write lock.  A key as sent maps to one canonical key, so
	 * a hit means the same checks passed and the same id came back.
	 */
	vg_buf_t key;   /* the key being looked up */
	vg_buf_t keys;  /* every resolved key, one after another */
	key_slot_t *slots;
	size_t nslots, nkeys; /* nslots: 0 or a power of two */
} group_t;

static void group_release(group_t *g)
{
	vg_free(g->puts);
	vg_free(g->times);
	vg_free(g->values);
	vg_buf_release(&g->key);
	vg_buf_release(&g->keys);
	vg_free(g->slots);
}

/* Appends s (n bytes) length-prefixed at p; returns the end. */
static uint8_t *key_part(uint8_t *p, const char *s, size_t n)
{
	uint32_t len = (uint32_t)n;
	memcpy(p, &len, sizeof len);
	memcpy(p + sizeof len, s, n);
	return p + sizeof len + n;
}

/* Sets b to the part of a block's keys as sent that its fields share: the
 * measurement and the tags in the order sent, each length-prefixed. */
static int key_prefix(vg_buf_t *b, vg_str_t measurement, const vg_tag_t *tags, size_t ntags)
{
	size_t total = 4 + measurement.len;
	for (size_t t = 0; t < ntags; t++)
		total += 8 + tags[t].key.len + tags[t].value.len;
	if (total > UINT32_MAX / 2)
		return VG_ELIMIT;
	vg_buf_clear(b);
	int code = vg_buf_reserve(b, total);
	if (code)
		return code;
	uint8_t *p = key_part(b->data, measurement.data, measurement.len);
	for (size_t t = 0; t < ntags; t++) {
		p = key_part(p, tags[t].key.data, tags[t].key.len);
		p = key_part(p, tags[t].value.data, tags[t].value.len);
	}
	b->len = total;
	return 0;
}

/* Sets b, holding a key prefix of `prefix` bytes, to the whole key of
 * field name (n bytes). */
static int key_field(vg_buf_t *b, size_t prefix, const char *name, size_t n)
{
	if (n > UINT32_MAX / 2)
		return VG_ELIMIT;
	b->len = prefix;
	int code = vg_buf_reserve(b, 4 + n);
	if (code)
		return code;
	b->len = (size_t)(key_part(b->data + prefix, name, n) - b->data);
	return 0;
}

/* The slot of g->key (hash h): its entry, or the empty slot for it. */
static key_slot_t *key_find(group_t *g, uint64_t h)
{
	size_t mask = g->nslots - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		key_slot_t *slot = &g->slots[i];
		if (slot->len == 0 ||
		    (slot->hash == h && slot->len == g->key.len &&
		     memcmp(g->keys.data + slot->off, g->key.data, g->key.len) == 0))
			return slot;
	}
}

/* Remembers g->key (hash h) as series id. */
static int key_insert(group_t *g, uint64_t h, vg_series_id_t id)
{
	if ((g->nkeys + 1) * 2 > g->nslots) {
		size_t n = g->nslots ? g->nslots * 2 : 1024;
		key_slot_t *slots = vg_calloc(n, sizeof *slots);
		if (!slots)
			return VG_ENOMEM;
		for (size_t i = 0; i < g->nslots; i++) {
			if (g->slots[i].len == 0)
				continue;
			size_t j = (size_t)g->slots[i].hash & (n - 1);
			while (slots[j].len)
				j = (j + 1) & (n - 1);
			slots[j] = g->slots[i];
		}
		vg_free(g->slots);
		g->slots = slots;
		g->nslots = n;
	}
	if (g->keys.len > UINT32_MAX - g->key.len)
		return 0; /* not remembered: looked up again next time */
	key_slot_t *slot = key_find(g, h);
	if (slot->len)
		return 0;
	*slot = (key_slot_t){h, (uint32_t)g->keys.len, (uint32_t)g->key.len, id};
	g->nkeys++;
	return vg_buf_append(&g->keys, g->key.data, g->key.len);
}

static int group_add(group_t *g, vg_series_id_t id, const int64_t *times, const double *values,
		     size_t n)
{
	if (g->len == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 1024;
		group_put_t *puts = vg_reallocarray(g->puts, cap, sizeof *puts);
		if (!puts)
			return VG_ENOMEM;
		g->puts = puts;
		g->cap = cap;
	}
	if (g->len >= UINT32_MAX)
		return VG_ELIMIT;
	g->puts[g->len] = (group_put_t){id, (uint32_t)g->len, times, values, n};
	g->len++;
	return 0;
}

/* The series writes (fields of blocks) of a job's Write. */
static size_t job_series(const vg_write_job_t *job)
{
	const Vigil__V1__Write *write = job->envelope->write;
	size_t n = 0;
	for (size_t b = 0; b < write->n_blocks; b++)
		n += write->blocks[b]->n_fields;
	return n;
}

/* Resolves the series of one job (creating new ones) and puts its points,
 * or with g, queues them there. */
static int apply_job(vg_wtxn_t *txn, vg_write_job_t *job, group_t *g)
{
	const Vigil__V1__Write *write = job->envelope->write;
	uint64_t points = 0;
	uint32_t series = 0;
	vg_tag_t tags[VG_MAX_TAGS];
	/* The series ids, for subscriptions (a retried job fills them again). */
	size_t nids = job_series(job);
	if (!job->ids) {
		job->ids = vg_malloc((nids ? nids : 1) * sizeof *job->ids);
		job->created = vg_malloc(nids ? nids : 1);
		if (!job->ids || !job->created)
			return VG_ENOMEM;
	}
	size_t k = 0;
	for (size_t b = 0; b < write->n_blocks; b++) {
		const Vigil__V1__WriteBlock *block = write->blocks[b];
		if (block->n_tags > VG_MAX_TAGS)
			return VG_EINVAL;
		for (size_t t = 0; t < block->n_tags; t++) {
			tags[t].key = (vg_str_t){block->tags[t]->key, strlen(block->tags[t]->key)};
			tags[t].value = (vg_str_t){block->tags[t]->value, strlen(block->tags[t]->value)};
		}
		vg_str_t measurement = {block->measurement, strlen(block->measurement)};
		/* The block's part of the key as sent: measurement and tags. */
		size_t prefix = 0;
		if (g) {
			int code = key_prefix(&g->key, measurement, tags, block->n_tags);
			if (code)
				return code;
			prefix = g->key.len;
		}
		for (size_t f = 0; f < block->n_fields; f++) {
			const Vigil__V1__WriteField *field = block->fields[f];
			vg_series_key_t key = {measurement, tags, block->n_tags,
					       {field->name, strlen(field->name)}};
			vg_series_id_t id;
			bool created = false;
			int rc = 0;
			key_slot_t *slot = NULL;
			uint64_t h = 0;
			if (g) {
				rc = key_field(&g->key, prefix, key.field.data, key.field.len);
				if (rc)
					return rc;
				h = vg_hash64(g->key.data, g->key.len);
				slot = g->nslots ? key_find(g, h) : NULL;
			}
			if (slot && slot->len) {
				id = slot->id;
			} else {
				rc = vg_wtxn_series(txn, &key, &id, &created);
				if (rc == 0 && g)
					rc = key_insert(g, h, id);
			}
			if (rc == 0)
				rc = g ? group_add(g, id, block->times, field->values, block->n_times)
				       : vg_wtxn_put(txn, id, block->times, field->values,
						     block->n_times);
			if (rc)
				return rc;
			job->ids[k] = id;
			job->created[k++] = created;
			points += block->n_times;
			series++;
		}
	}
	job->points = points;
	job->series = series;
	return 0;
}

int vg_writer_apply(vg_wtxn_t *txn, vg_write_job_t *job) { return apply_job(txn, job, NULL); }

static int compare_puts(const void *a, const void *b)
{
	const group_put_t *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

static bool strictly_increasing(const int64_t *t, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (t[i] <= t[i - 1])
			return false;
	return true;
}

/* Orders the pieces p[0..n) by their first time when each is in order and,
 * so ordered, they do not overlap: their concatenation is then in order.
 * Otherwise leaves write order, which the put sorts (the last write of a
 * time wins). */
static void order_pieces(group_put_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].n == 0 || !strictly_increasing(p[i].times, p[i].n))
			return;
	/* Insertion sort: a series rarely has more than a few dozen pieces,
	 * and they mostly come in time order already. */
	group_put_t *sorted = p;
	bool moved = false;
	for (size_t i = 1; i < n; i++) {
		group_put_t x = sorted[i];
		size_t j = i;
		while (j > 0 && sorted[j - 1].times[0] > x.times[0]) {
			sorted[j] = sorted[j - 1];
			j--;
			moved = true;
		}
		sorted[j] = x;
	}
	bool disjoint = true;
	for (size_t i = 1; i < n && disjoint; i++)
		disjoint = sorted[i].times[0] > sorted[i - 1].times[sorted[i - 1].n - 1];
	if (!disjoint && moved) {
		/* Back to write order. */
		for (size_t i = 1; i < n; i++) {
			group_put_t x = p[i];
			size_t j = i;
			while (j > 0 && p[j - 1].order > x.order) {
				p[j] = p[j - 1];
				j--;
			}
			p[j] = x;
		}
	}
}

/*
 * Puts a group's queued points: one put per series, its pieces from every
 * job of the group concatenated.  Pipelined requests from several
 * connections carry consecutive time windows of the same series, so a group
 * of 25 jobs otherwise extends each series' head block 25 times (each a
 * B-tree search and a rewrite of the block and its page); ordered by id the
 * puts also walk the head table in key order.  Exactness: pieces that
 * overlap in time keep their write order and the put keeps the last write
 * of a time, as separate puts would.
 */
static int put_group(vg_wtxn_t *txn, group_t *g)
{
	if (g->len > 1)
		qsort(g->puts, g->len, sizeof *g->puts, compare_puts);
	for (size_t i = 0; i < g->len;) {
		size_t j = i + 1;
		size_t total = g->puts[i].n;
		while (j < g->len && g->puts[j].id == g->puts[i].id) {
			if (g->puts[j].n > SIZE_MAX / 2 - total)
				return VG_ELIMIT;
			total += g->puts[j].n;
			j++;
		}
		int rc;
		if (j == i + 1) {
			rc = vg_wtxn_put(txn, g->puts[i].id, g->puts[i].times, g->puts[i].values,
					 g->puts[i].n);
		} else {
			if (total > g->points_cap) {
				size_t cap = g->points_cap ? g->points_cap : 1024;
				while (cap < total)
					cap *= 2;
				int64_t *times = vg_reallocarray(g->times, cap, sizeof *times);
				if (!times)
					return VG_ENOMEM;
				g->times = times;
				double *values = vg_reallocarray(g->values, cap, sizeof *values);
				if (!values)
					return VG_ENOMEM;
				g->values = values;
				g->points_cap = cap;
			}
			order_pieces(g->puts + i, j - i);
			size_t at = 0;
			for (size_t k = i; k < j; k++) {
				if (g->puts[k].n) {
					memcpy(g->times + at, g->puts[k].times,
					       g->puts[k].n * sizeof *g->times);
					memcpy(g->values + at, g->puts[k].values,
					       g->puts[k].n * sizeof *g->values);
				}
				at += g->puts[k].n;
			}
			rc = vg_wtxn_put(txn, g->puts[i].id, g->times, g->values, total);
		}
		if (rc)
			return rc;
		i = j;
	}
	return 0;
}

int vg_writer_commit(vg_store_t *store, vg_write_job_t *jobs)
{
	vg_wtxn_t *txn;
	int rc = vg_store_write_begin(store, &txn);
	if (rc)
		return rc;
	uint64_t commit = vg_wtxn_id(txn);
	group_t g = {0};
	for (vg_write_job_t *job = jobs; job && rc == 0; job = job->next) {
		rc = apply_job(txn, job, &g);
		job->commit = commit;
	}
	rc = rc ? rc : put_group(txn, &g);
	group_release(&g);
	if (rc) {
		vg_wtxn_abort(txn);
		return rc;
	}
	return vg_wtxn_commit(txn);
}

/* LMDB keeps freed pages in its file for reuse; heavy ingest (head blocks
 * written and freed by every seal) can leave the file several times larger
 * than the data.  Once writes pause, give that space back. */
static void compact_if_worthwhile(vg_server_t *server)
{
	uint64_t file = 0, used = 0;
	if (vg_store_space(server->store, &file, &used) != 0)
		return;
	uint64_t free_bytes = file - used;
	if (free_bytes < VG_COMPACT_MIN_FREE || free_bytes < used / 4 || used > VG_COMPACT_MAX_USED)
		return;
	int64_t start = vg_monotonic_ns();
	int rc = vg_store_compact(server->store);
	if (rc) {
		vg_log(VG_LOG_ERROR, "compaction failed: %s", vg_strerror(rc));
		return;
	}
	vg_store_space(server->store, &file, &used);
	vg_log(VG_LOG_INFO, "compacted the store: %.1f MB free space given back, file now %.1f MB (%.0f ms)",
	       (double)free_bytes / 1e6, (double)file / 1e6,
	       (double)(vg_monotonic_ns() - start) / 1e6);
}

static void run_maintenance(vg_server_t *server)
{
	uint64_t removed = 0;
	int rc = vg_store_enforce_retention(server->store, vg_now_ns(), &removed);
	if (rc)
		vg_log(VG_LOG_ERROR, "retention pass failed: %s", vg_strerror(rc));
	else if (removed)
		vg_log(VG_LOG_INFO, "retention removed %llu points", (unsigned long long)removed);
	rc = vg_store_seal(server->store, VG_IDLE_SEAL_MIN_POINTS);
	if (rc)
		vg_log(VG_LOG_ERROR, "sealing failed: %s", vg_strerror(rc));
	else
		compact_if_worthwhile(server);
}

/* Takes the next group off the queue (under w->lock): the queued jobs in
 * order, up to the first that brings it to VG_GROUP_MAX_SERIES series
 * writes (always one job at least). */
static vg_write_job_t *take_group(vg_writer_t *w)
{
	vg_write_job_t *group = w->pending, *last = group;
	size_t series = job_series(last);
	while (last->next && series < VG_GROUP_MAX_SERIES) {
		last = last->next;
		series += job_series(last);
	}
	w->pending = last->next;
	last->next = NULL;
	if (!w->pending)
		w->pending_tail = &w->pending;
	return group;
}

static void *writer_main(void *arg)
{
	vg_server_t *server = arg;
	vg_writer_t *w = &server->writer;
	/* Writes since the last idle seal; true at start, for the heads a
	 * previous run left unsealed. */
	bool unsealed = true;
	int64_t last_write = vg_monotonic_ns(); /* CLOCK_MONOTONIC of the last commit */
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->pending && !w->stopping && !w->maintenance_due) {
			/* Continuous queries come due with the clock: wake at
			 * least every 200 ms while there are any. */
			pthread_mutex_unlock(&w->lock);
			bool cqs = vg_cq_any(server);
			vg_write_job_t *done = NULL;
			if (cqs)
				vg_cq_run(server, &done);
			/* Idle for a moment after writes: seal the heads, so that
			 * reads meet compact chunks rather than many raw blocks. */
			if (unsealed && vg_monotonic_ns() - last_write >= VG_IDLE_SEAL_NS) {
				int rc = vg_store_seal(server->store, VG_IDLE_SEAL_MIN_POINTS);
				if (rc)
					vg_log(VG_LOG_ERROR, "sealing failed: %s", vg_strerror(rc));
				else
					compact_if_worthwhile(server);
				unsealed = false;
			}
			pthread_mutex_lock(&w->lock);
			if (done) {
				vg_write_job_t *last = done;
				while (last->next)
					last = last->next;
				*w->done_tail = done;
				w->done_tail = &last->next;
				ev_async_send(server->loop, &w->done_async);
			}
			if (w->pending || w->stopping || w->maintenance_due)
				break;
			if (!cqs && !unsealed) {
				pthread_cond_wait(&w->wake, &w->lock);
				continue;
			}
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += (cqs ? 200 : 500) * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&w->wake, &w->lock, &until);
		}
		if (!w->pending && w->maintenance_due) {
			w->maintenance_due = false;
			pthread_mutex_unlock(&w->lock);
			run_maintenance(server);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (!w->pending && w->stopping)
			break;
		vg_write_job_t *group = take_group(w);
		pthread_mutex_unlock(&w->lock);

		int rc = vg_writer_commit(server->store, group);
		unsealed = true;
		last_write = vg_monotonic_ns();
		if (rc == 0) {
			for (vg_write_job_t *job = group; job; job = job->next)
				job->result = 0;
		} else {
			/* Retry alone so the failure lands on the job it belongs to. */
			vg_log(VG_LOG_WARN, "group commit failed (%s); retrying jobs one by one",
			       vg_strerror(rc));
			for (vg_write_job_t *job = group; job; job = job->next) {
				vg_write_job_t *next = job->next;
				job->next = NULL;
				job->result = vg_writer_commit(server->store, job);
				job->next = next;
			}
		}
		uint64_t points = 0;
		vg_write_job_t *last = group;
		for (vg_write_job_t *job = group; job; job = job->next) {
			if (job->result == 0)
				points += job->points;
			last = job;
		}
		pthread_mutex_lock(&w->lock);
		w->commits++;
		w->points += points;
		*w->done_tail = group;
		w->done_tail = &last->next;
		pthread_mutex_unlock(&w->lock);
		ev_async_send(server->loop, &w->done_async);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int vg_writer_start(vg_server_t *server)
{
	vg_writer_t *w = &server->writer;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->pending_tail = &w->pending;
	w->done_tail = &w->done;
	ev_async_init(&w->done_async, on_done);
	ev_async_start(server->loop, &w->done_async);
	int rc = pthread_create(&w->thread, NULL, writer_main, server);
	w->running = rc == 0;
	return rc ? -rc : 0;
}

void vg_writer_submit(vg_server_t *server, vg_write_job_t *job)
{
	vg_writer_t *w = &server->writer;
	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->pending_tail = job;
	w->pending_tail = &job->next;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void vg_writer_request_maintenance(vg_server_t *server)
{
	vg_writer_t *w = &server->writer;
	pthread_mutex_lock(&w->lock);
	w->maintenance_due = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

bool vg_writer_idle(vg_server_t *server)
{
	vg_writer_t *w = &server->writer;
	pthread_mutex_lock(&w->lock);
	bool idle = !w->pending && !w->done;
	pthread_mutex_unlock(&w->lock);
	return idle;
}

/* Loop thread: acknowledges committed jobs. */
static void on_done(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	vg_writer_t *w = container_of(a, vg_writer_t, done_async);
	pthread_mutex_lock(&w->lock);
	vg_write_job_t *jobs = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	pthread_mutex_unlock(&w->lock);
	while (jobs) {
		vg_write_job_t *job = jobs;
		jobs = job->next;
		vg_conn_t *conn = job->conn;
		if (!conn) {
			/* A continuous query's window: nobody to acknowledge. */
			vg_subs_publish(container_of(w, vg_server_t, writer), job);
			vg_write_job_free(job);
			continue;
		}
		if (job->result == 0) {
			Vigil__V1__WriteOk ok = VIGIL__V1__WRITE_OK__INIT;
			ok.points = job->points;
			ok.series = job->series;
			Vigil__V1__Envelope reply = VIGIL__V1__ENVELOPE__INIT;
			reply.id = job->request_id;
			reply.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE_OK;
			reply.write_ok = &ok;
			vg_buf_t frame = VG_BUF_INIT;
			if (vg_frame_append(&frame, &reply) == 0)
				vg_conn_send(conn, &frame);
			vg_buf_release(&frame);
			/* In commit order, after the acknowledgement. */
			vg_subs_publish(conn->server, job);
		} else {
			char msg[160];
			snprintf(msg, sizeof msg, "write failed in the store: %s; nothing was written",
				 vg_strerror(job->result));
			vg_conn_send_error(conn, job->request_id, VG_ESTORE, msg, false);
		}
		vg_write_job_free(job);
		vg_conn_write_done(conn);
		vg_conn_unref(conn);
	}
}

void vg_writer_stop(vg_server_t *server)
{
	vg_writer_t *w = &server->writer;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->running = false;
	/* Acknowledge what the last commits finished. */
	on_done(server->loop, &w->done_async, 0);
	ev_async_stop(server->loop, &w->done_async);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
}
