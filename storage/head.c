/*
 * head.c — unsealed points: durable raw blocks of each series' writes.
 *
 * Each vg_wtxn_put() of a series appends a head block (or extends the
 * newest one, see below) under key (u32 id, u32 seq), seq counting up per
 * series from 0 after each seal:
 *
 *   offset size        field
 *   0      4           count n (host byte order, as the whole block)
 *   4      4           reserved, 0
 *   8      8           min time
 *   16     8           max time
 *   24     8n          times, ascending, no duplicates
 *   24+8n  8n          values (raw float64 bits)
 *
 * A write that comes after everything in the series' newest block extends
 * that block instead while it stays under VG_HEAD_MERGE_POINTS points: one
 * point per series per write (the usual shape of time-major ingest) would
 * otherwise cost a key, a node and a 24-byte header per point — 58 bytes of
 * B-tree for 16 bytes of data — and a reader would merge hundreds of tiny
 * blocks.  The limit keeps a block well inside an LMDB node (no overflow
 * page) and bounds the copy that rewriting it costs.
 *
 * A block is sorted and deduplicated when written (last write wins inside
 * the batch), so a reader only merges blocks: when each block starts after
 * the previous one ends (in-order writes) they are simply concatenated;
 * otherwise they are merged pairwise, a later block winning on equal times.
 * Blocks are written in the same LMDB transaction as everything else, so a
 * committed write is durable and visible at once; sealing (seal.c) later
 * moves them into chunks.  LMDB values are only 2-byte aligned, hence the
 * memcpy()s.
 */
#include "store_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <stdlib.h>
#include <string.h>

/* ---- runs ------------------------------------------------------------ */

void vg_run_release(vg_run_t *run)
{
	vg_free(run->times);
	vg_free(run->values);
	run->times = NULL;
	run->values = NULL;
	run->len = run->cap = 0;
}

int vg_run_reserve(vg_run_t *run, size_t n)
{
	if (n <= run->cap)
		return 0;
	size_t cap = run->cap ? run->cap : 256;
	while (cap < n)
		cap *= 2;
	int64_t *times = vg_reallocarray(run->times, cap, sizeof *times);
	if (!times)
		return VG_ENOMEM;
	run->times = times;
	double *values = vg_reallocarray(run->values, cap, sizeof *values);
	if (!values)
		return VG_ENOMEM;
	run->values = values;
	run->cap = cap;
	return 0;
}

int vg_run_merge(const vg_run_t *a, const vg_run_t *b, vg_run_t *dst)
{
	int code = vg_run_reserve(dst, a->len + b->len);
	if (code)
		return code;
	size_t i = 0, j = 0, n = 0;
	if (a->len && b->len && a->times[a->len - 1] < b->times[0]) {
		/* In-order data, the common case: b follows a. */
		vg_points_copy(dst->times, dst->values, a->times, a->values, a->len);
		vg_points_copy(dst->times + a->len, dst->values + a->len, b->times, b->values,
			       b->len);
		dst->len = a->len + b->len;
		return 0;
	}
	while (i < a->len && j < b->len) {
		if (a->times[i] < b->times[j]) {
			dst->times[n] = a->times[i];
			dst->values[n++] = a->values[i++];
		} else {
			if (a->times[i] == b->times[j])
				i++;
			dst->times[n] = b->times[j];
			dst->values[n++] = b->values[j++];
		}
	}
	/* The tails only when not empty: an empty run may have NULL arrays,
	 * and even NULL + 0 is undefined (found by fuzz/fuzz_query.c). */
	if (i < a->len) {
		vg_points_copy(dst->times + n, dst->values + n, a->times + i, a->values + i,
		               a->len - i);
		n += a->len - i;
	}
	if (j < b->len) {
		vg_points_copy(dst->times + n, dst->values + n, b->times + j, b->values + j,
		               b->len - j);
		n += b->len - j;
	}
	dst->len = n;
	return 0;
}

/* ---- writing blocks -------------------------------------------------- */

static void head_key(uint8_t key[8], vg_series_id_t id, uint32_t seq)
{
	vg_store_be32(key, id);
	vg_store_be32(key + 4, seq);
}

typedef struct {
	int64_t time;
	size_t index;
} order_t;

static int compare_order(const void *a, const void *b)
{
	const order_t *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/* The transaction's head cursor (see struct vg_wtxn), opened on first use. */
static int head_cursor(vg_wtxn_t *txn, MDB_cursor **out)
{
	if (!txn->head_cur) {
		int rc = mdb_cursor_open(txn->txn, txn->store->dbi_head, &txn->head_cur);
		if (rc) {
			txn->head_cur = NULL;
			return vg_store_lmdb_error(rc);
		}
	}
	*out = txn->head_cur;
	return 0;
}

/* Writes the block bytes for n sorted unique points into an LMDB value
 * reserved in place (MDB_RESERVE), avoiding a staging copy. */
static int put_block(vg_wtxn_t *txn, vg_series_id_t id, uint32_t seq, const int64_t *times,
		     const double *values, size_t n)
{
	MDB_cursor *cur = NULL;
	int code = head_cursor(txn, &cur);
	if (code)
		return code;
	uint8_t key[8];
	head_key(key, id, seq);
	MDB_val k = {8, key}, v = {VG_HEAD_BLOCK_HEADER + 16 * n, NULL};
	int rc = mdb_cursor_put(cur, &k, &v, MDB_RESERVE);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t *p = v.mv_data;
	uint32_t count = (uint32_t)n, zero = 0;
	memcpy(p, &count, 4);
	memcpy(p + 4, &zero, 4);
	memcpy(p + 8, &times[0], 8);
	memcpy(p + 16, &times[n - 1], 8);
	memcpy(p + VG_HEAD_BLOCK_HEADER, times, 8 * n);
	memcpy(p + VG_HEAD_BLOCK_HEADER + 8 * n, values, 8 * n);
	return 0;
}

/*
 * Extends the newest head block of series id (seq) with n sorted unique
 * points that all come after it, when the result stays small: *merged says
 * whether it did.  The old block is copied out first because the put
 * rewrites the node in its page; the put replaces the record the cursor
 * stands on (MDB_CURRENT), so the block is found once, not twice.
 */
static int merge_block(vg_wtxn_t *txn, vg_series_id_t id, uint32_t seq, const int64_t *times,
		       const double *values, size_t n, bool *merged)
{
	*merged = false;
	if (n >= VG_HEAD_MERGE_POINTS)
		return 0;
	MDB_cursor *cur = NULL;
	int code = head_cursor(txn, &cur);
	if (code)
		return code;
	uint8_t key[8];
	head_key(key, id, seq);
	MDB_val k = {8, key}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return vg_store_lmdb_error(rc);
	uint32_t count;
	int64_t max;
	if (v.mv_size < VG_HEAD_BLOCK_HEADER)
		return VG_ECORRUPT;
	memcpy(&count, v.mv_data, 4);
	memcpy(&max, (const uint8_t *)v.mv_data + 16, 8);
	if (v.mv_size != VG_HEAD_BLOCK_HEADER + 16 * (size_t)count)
		return VG_ECORRUPT;
	if (count + n > VG_HEAD_MERGE_POINTS || max >= times[0])
		return 0;
	uint8_t old[VG_HEAD_BLOCK_HEADER + 16 * VG_HEAD_MERGE_POINTS];
	memcpy(old, v.mv_data, v.mv_size);
	size_t total = count + n;
	k = (MDB_val){8, key};
	v = (MDB_val){VG_HEAD_BLOCK_HEADER + 16 * total, NULL};
	rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT | MDB_RESERVE);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t *p = v.mv_data;
	uint32_t c32 = (uint32_t)total;
	memcpy(p, old, VG_HEAD_BLOCK_HEADER);
	memcpy(p, &c32, 4);
	memcpy(p + 16, &times[n - 1], 8);
	p += VG_HEAD_BLOCK_HEADER;
	memcpy(p, old + VG_HEAD_BLOCK_HEADER, 8 * (size_t)count);
	memcpy(p + 8 * (size_t)count, times, 8 * n);
	p += 8 * total;
	memcpy(p, old + VG_HEAD_BLOCK_HEADER + 8 * (size_t)count, 8 * (size_t)count);
	memcpy(p + 8 * (size_t)count, values, 8 * n);
	*merged = true;
	return 0;
}

/* Writes n sorted unique points as the series' next head block, or into
 * its newest block (see merge_block). */
static int write_points(vg_wtxn_t *txn, vg_series_id_t id, vg_head_state_t *head,
			const int64_t *times, const double *values, size_t n)
{
	bool merged = false;
	int code = 0;
	if (head->next_seq > 0)
		code = merge_block(txn, id, head->next_seq - 1, times, values, n, &merged);
	if (code == 0 && !merged) {
		code = put_block(txn, id, head->next_seq, times, values, n);
		if (code == 0)
			head->next_seq++;
	}
	return code;
}

int vg_head_append(vg_wtxn_t *txn, vg_series_id_t id, const int64_t *times, const double *values,
		   size_t n)
{
	if (n == 0)
		return 0;
	if (n > UINT32_MAX / 2)
		return VG_ELIMIT;
	vg_store_t *store = txn->store;
	bool sorted = true;
	for (size_t i = 1; i < n && sorted; i++)
		sorted = times[i] > times[i - 1];
	int code = vg_wtxn_head_touch(txn, id);
	if (code)
		return code;
	vg_head_state_t *head = &store->heads[id];
	if (head->next_seq >= VG_HEAD_UNKNOWN - 1)
		return VG_ELIMIT;
	if (sorted) {
		code = write_points(txn, id, head, times, values, n);
	} else {
		/* Sort by time, keeping the last of equal times. */
		order_t *order = vg_reallocarray(NULL, n, sizeof *order);
		vg_run_t run = {0};
		if (!order || vg_run_reserve(&run, n)) {
			vg_free(order);
			vg_run_release(&run);
			return VG_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			order[i] = (order_t){times[i], i};
		qsort(order, n, sizeof *order, compare_order);
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			if (i + 1 < n && order[i + 1].time == order[i].time)
				continue;
			run.times[m] = order[i].time;
			run.values[m++] = values[order[i].index];
		}
		code = write_points(txn, id, head, run.times, run.values, m);
		n = m;
		vg_free(order);
		vg_run_release(&run);
	}
	if (code)
		return code;
	head->points += (uint32_t)(n < UINT32_MAX - head->points ? n : UINT32_MAX - head->points);
	return vg_wtxn_mark_touched(txn, id);
}

/* ---- reading blocks -------------------------------------------------- */

typedef struct {
	uint32_t count;
	int64_t min, max;
	const uint8_t *times, *values;
} block_view_t;

static int block_parse(const MDB_val *v, block_view_t *b)
{
	if (v->mv_size < VG_HEAD_BLOCK_HEADER)
		return VG_ECORRUPT;
	const uint8_t *p = v->mv_data;
	memcpy(&b->count, p, 4);
	memcpy(&b->min, p + 8, 8);
	memcpy(&b->max, p + 16, 8);
	if (b->count == 0 || (v->mv_size - VG_HEAD_BLOCK_HEADER) / 16 != b->count ||
	    (v->mv_size - VG_HEAD_BLOCK_HEADER) % 16 != 0 || b->min > b->max)
		return VG_ECORRUPT;
	b->times = p + VG_HEAD_BLOCK_HEADER;
	b->values = b->times + 8 * (size_t)b->count;
	return 0;
}

/* Appends the points of block b within [t0, t1) to run (which must already
 * have room). */
static void block_slice(const block_view_t *b, int64_t t0, int64_t t1, vg_run_t *run)
{
	size_t lo = 0, hi = b->count;
	int64_t t;
	/* Binary searches over the unaligned arrays. */
	size_t a = 0, z = b->count;
	while (a < z) {
		size_t mid = a + (z - a) / 2;
		memcpy(&t, b->times + 8 * mid, 8);
		if (t < t0)
			a = mid + 1;
		else
			z = mid;
	}
	lo = a;
	z = b->count;
	while (a < z) {
		size_t mid = a + (z - a) / 2;
		memcpy(&t, b->times + 8 * mid, 8);
		if (t < t1)
			a = mid + 1;
		else
			z = mid;
	}
	hi = a;
	size_t n = hi - lo;
	if (n) {
		memcpy(run->times + run->len, b->times + 8 * lo, 8 * n);
		memcpy(run->values + run->len, b->values + 8 * lo, 8 * n);
	}
	run->len += n;
}

static int compare_views(const void *a, const void *b)
{
	const block_view_t *x = a, *y = b;
	if (x->min != y->min)
		return x->min < y->min ? -1 : 1;
	return (x->times > y->times) - (x->times < y->times);
}

/* True when the views, in their current order, follow each other in time
 * without overlapping. */
static bool views_disjoint(const block_view_t *views, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (views[i].min <= views[i - 1].max)
			return false;
	return true;
}

/*
 * Head blocks come in write order (seq).  Writes of one series from several
 * connections commit in any order, so blocks are often not in time order,
 * yet rarely overlap: sorted by time they can simply be concatenated.
 * Only blocks that really overlap are merged, in write order, so that the
 * later write wins.
 */
int vg_head_collect(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, int64_t t0, int64_t t1,
		    vg_run_t *out)
{
	out->len = 0;
	if (t0 >= t1)
		return 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, store->dbi_head, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t key[8];
	head_key(key, id, 0);
	MDB_val k = {8, key}, v;
	int code = 0;
	block_view_t *views = NULL;
	size_t nviews = 0, cap = 0, points = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || vg_load_be32(k.mv_data) != id)
			break;
		block_view_t b;
		code = block_parse(&v, &b);
		if (code)
			break;
		if (b.max < t0 || b.min >= t1)
			continue;
		if (nviews == cap) {
			cap = cap ? cap * 2 : 64;
			block_view_t *grown = vg_reallocarray(views, cap, sizeof *views);
			if (!grown) {
				code = VG_ENOMEM;
				break;
			}
			views = grown;
		}
		views[nviews++] = b;
		points += b.count;
	}
	if (code == 0 && rc != 0 && rc != MDB_NOTFOUND)
		code = vg_store_lmdb_error(rc);
	mdb_cursor_close(cur);
	code = code ? code : vg_run_reserve(out, points);
	if (code == 0 && !views_disjoint(views, nviews)) {
		/* Write order is kept in a copy for the overlapping case. */
		block_view_t *sorted = vg_reallocarray(NULL, nviews ? nviews : 1, sizeof *sorted);
		if (!sorted) {
			code = VG_ENOMEM;
		} else {
			memcpy(sorted, views, nviews * sizeof *views);
			qsort(sorted, nviews, sizeof *sorted, compare_views);
			if (views_disjoint(sorted, nviews)) {
				vg_free(views);
				views = sorted;
			} else {
				vg_free(sorted);
				/* Overlapping writes: merge in write order. */
				vg_run_t block = {0}, merged = {0};
				for (size_t i = 0; code == 0 && i < nviews; i++) {
					block.len = 0;
					code = vg_run_reserve(&block, views[i].count);
					if (code)
						break;
					block_slice(&views[i], t0, t1, &block);
					code = vg_run_merge(out, &block, &merged);
					vg_run_t tmp = *out;
					*out = merged;
					merged = tmp;
				}
				vg_run_release(&block);
				vg_run_release(&merged);
				vg_free(views);
				return code;
			}
		}
	}
	for (size_t i = 0; code == 0 && i < nviews; i++)
		block_slice(&views[i], t0, t1, out);
	vg_free(views);
	return code;
}

int vg_head_clear(vg_wtxn_t *txn, vg_series_id_t id)
{
	vg_store_t *store = txn->store;
	/* Touched first: its state must be read before the blocks go. */
	int code = vg_wtxn_head_touch(txn, id);
	if (code)
		return code;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, store->dbi_head, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t key[8];
	head_key(key, id, 0);
	MDB_val k = {8, key}, v;
	/* After mdb_cursor_del() the cursor stands on the next record, and
	 * MDB_NEXT returns that record rather than skipping it. */
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || vg_load_be32(k.mv_data) != id)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return vg_store_lmdb_error(rc);
	store->heads[id].points = 0;
	store->heads[id].next_seq = 0;
	return 0;
}

int vg_head_delete_range(vg_wtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1,
			 uint64_t *removed)
{
	/* Gather what survives, clear the head, write it back as one block:
	 * simple, and a delete is rare next to writes. */
	vg_store_t *store = txn->store;
	vg_run_t all = {0}, keep = {0};
	int code = vg_head_collect(txn->txn, store, id, INT64_MIN, INT64_MAX, &all);
	size_t cut = 0;
	if (code == 0)
		code = vg_run_reserve(&keep, all.len);
	for (size_t i = 0; code == 0 && i < all.len; i++) {
		if (all.times[i] >= t0 && all.times[i] < t1) {
			cut++;
			continue;
		}
		keep.times[keep.len] = all.times[i];
		keep.values[keep.len++] = all.values[i];
	}
	if (code == 0 && cut > 0) {
		code = vg_head_clear(txn, id);
		if (code == 0 && keep.len > 0) {
			code = put_block(txn, id, 0, keep.times, keep.values, keep.len);
			if (code == 0) {
				store->heads[id].next_seq = 1;
				store->heads[id].points = (uint32_t)keep.len;
			}
		}
		if (removed)
			*removed += cut;
	}
	vg_run_release(&all);
	vg_run_release(&keep);
	return code;
}

int vg_head_read_state(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, vg_head_state_t *out)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, store->dbi_head, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t key[8];
	head_key(key, id, 0);
	MDB_val k = {8, key}, v;
	vg_head_state_t state = {0, 0};
	int code = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || vg_load_be32(k.mv_data) != id)
			break;
		block_view_t b;
		uint32_t seq = vg_load_be32((const uint8_t *)k.mv_data + 4);
		if (block_parse(&v, &b) != 0 || seq >= VG_HEAD_UNKNOWN - 1) {
			code = VG_ECORRUPT;
			break;
		}
		state.points += b.count;
		state.next_seq = seq + 1;
	}
	mdb_cursor_close(cur);
	if (code == 0 && rc != 0 && rc != MDB_NOTFOUND)
		code = vg_store_lmdb_error(rc);
	if (code == 0)
		*out = state;
	return code;
}

int vg_head_resolve(MDB_txn *txn, vg_store_t *store, vg_series_id_t id)
{
	if (store->heads[id].next_seq != VG_HEAD_UNKNOWN)
		return 0;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, store->dbi_head, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t key[8];
	head_key(key, id, 0);
	MDB_val k = {8, key}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	size_t next = store->heads_cap; /* the next series with head blocks */
	int code = 0;
	if (rc == 0 && k.mv_size != 8)
		code = VG_ECORRUPT;
	else if (rc == 0)
		next = vg_load_be32(k.mv_data);
	else if (rc != MDB_NOTFOUND)
		code = vg_store_lmdb_error(rc);
	mdb_cursor_close(cur);
	if (code)
		return code;
	for (size_t i = id; i < next && i < store->heads_cap; i++)
		if (store->heads[i].next_seq == VG_HEAD_UNKNOWN)
			store->heads[i] = (vg_head_state_t){0, 0};
	if (next < store->heads_cap && store->heads[next].next_seq == VG_HEAD_UNKNOWN)
		code = vg_head_read_state(txn, store, (vg_series_id_t)next, &store->heads[next]);
	return code;
}
