/*
 * cursor.c — reading one series over a time range, and aggregates over
 * chunk headers.
 *
 * A cursor walks the series' chunks in key (= time) order, forwards or
 * backwards, with the head points of the range gathered once at open.  It
 * emits one block per step:
 *   - head points that fall before the next chunk (after it, in reverse);
 *   - otherwise the next chunk, decoded, cut to [t0, t1) and merged with the
 *     head points inside the chunk's span (head wins on equal times).
 * Chunks never overlap each other (see seal.c), so no chunk-to-chunk merge
 * is needed and every block is already in final order.
 *
 * vg_cursor_skip_chunk() lets an aggregator take a whole chunk's header
 * instead of its points when the chunk lies inside the range and no head
 * point falls within its span.
 */
#include "store_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <math.h>
#include <string.h>

struct vg_cursor {
	vg_rtxn_t *txn;
	vg_series_id_t id;
	int64_t t0, t1;
	bool reverse;
	MDB_cursor *chunks;
	bool have_chunk;     /* chunk/header below are the next chunk */
	bool chunks_done;
	MDB_val chunk;
	vg_chunk_header_t header;
	vg_run_t head;       /* head points in [t0, t1), ascending */
	size_t head_lo, head_hi; /* head points not yet emitted: [lo, hi) */
	vg_run_t decoded;
	vg_run_t out;
	/* The block vg_cursor_next() hands out: views into head (forward head
	 * points), decoded (a chunk that no head point overlaps, reversed in
	 * place when the cursor is) or out (merged or reversed points), so
	 * that the common case copies nothing after decoding. */
	const int64_t *block_times;
	const double *block_values;
	size_t block_len;
};

static bool ours(const vg_cursor_t *c, const MDB_val *k)
{
	return k->mv_size == 12 && vg_load_be32(k->mv_data) == c->id;
}

/* Positions on the first chunk to visit, or marks chunks_done.  Forward:
 * the last chunk starting before t0 if it reaches t0, else the first one
 * starting at or after t0.  Reverse: the last chunk starting before t1. */
static int seek_first(vg_cursor_t *c)
{
	uint8_t key[12];
	vg_store_be32(key, c->id);
	vg_store_be64(key + 4, vg_time_flip(c->reverse ? c->t1 : c->t0));
	MDB_val k = {12, key}, v, pk, pv;
	int rc = mdb_cursor_get(c->chunks, &k, &v, MDB_SET_RANGE);
	if (rc && rc != MDB_NOTFOUND)
		return vg_store_lmdb_error(rc);
	bool at_seek = rc == 0 && ours(c, &k);
	int prc = mdb_cursor_get(c->chunks, &pk, &pv, rc == 0 ? MDB_PREV : MDB_LAST);
	if (prc && prc != MDB_NOTFOUND)
		return vg_store_lmdb_error(prc);
	bool have_prev = prc == 0 && ours(c, &pk);
	if (have_prev && !c->reverse) {
		vg_chunk_header_t h;
		int code = vg_chunk_header_read(pv.mv_data, pv.mv_size, &h);
		if (code)
			return code;
		have_prev = h.max_time >= c->t0;
	}
	if (have_prev) {
		c->chunk = pv;
		return 0;
	}
	if (c->reverse || !at_seek) {
		c->chunks_done = true;
		return 0;
	}
	/* Step back onto the record found at the seek position. */
	k.mv_size = 12;
	k.mv_data = key;
	rc = mdb_cursor_get(c->chunks, &k, &v, MDB_SET_RANGE);
	if (rc)
		return vg_store_lmdb_error(rc);
	c->chunk = v;
	return 0;
}

/* Loads the header of the current chunk, ending the walk when it lies
 * outside the range. */
static int load_chunk(vg_cursor_t *c)
{
	int code = vg_chunk_header_read(c->chunk.mv_data, c->chunk.mv_size, &c->header);
	if (code)
		return code;
	if (c->reverse ? c->header.max_time < c->t0 : c->header.min_time >= c->t1)
		c->chunks_done = true;
	else
		c->have_chunk = true;
	return 0;
}

static int advance_chunk(vg_cursor_t *c)
{
	c->have_chunk = false;
	MDB_val k, v;
	int rc = mdb_cursor_get(c->chunks, &k, &v, c->reverse ? MDB_PREV : MDB_NEXT);
	if (rc == MDB_NOTFOUND || (rc == 0 && !ours(c, &k))) {
		c->chunks_done = true;
		return 0;
	}
	if (rc)
		return vg_store_lmdb_error(rc);
	c->chunk = v;
	return load_chunk(c);
}

int vg_cursor_open(vg_rtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, unsigned flags,
		   vg_cursor_t **out)
{
	vg_cursor_t *c = vg_calloc(1, sizeof *c);
	if (!c)
		return VG_ENOMEM;
	c->txn = txn;
	c->id = id;
	c->t0 = t0;
	c->t1 = t1;
	c->reverse = (flags & VG_CURSOR_REVERSE) != 0;
	int code = 0;
	if (!txn->codec)
		code = vg_store_take_codec(txn->store, &txn->codec);
	if (code == 0 && t0 < t1) {
		int rc = mdb_cursor_open(txn->txn, txn->store->dbi_chunks, &c->chunks);
		code = vg_store_lmdb_error(rc);
		code = code ? code : vg_head_collect(txn->txn, txn->store, id, t0, t1, &c->head);
		code = code ? code : seek_first(c);
		if (code == 0 && !c->chunks_done)
			code = load_chunk(c);
	} else {
		c->chunks_done = true;
	}
	c->head_hi = c->head.len;
	if (code) {
		vg_cursor_close(c);
		return code;
	}
	*out = c;
	return 0;
}

void vg_cursor_close(vg_cursor_t *c)
{
	if (!c)
		return;
	if (c->chunks)
		mdb_cursor_close(c->chunks);
	vg_run_release(&c->head);
	vg_run_release(&c->decoded);
	vg_run_release(&c->out);
	vg_free(c);
}

/* Index of the first of n ascending times that is >= t. */
static size_t times_lower(const int64_t *times, size_t n, int64_t t)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (times[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first head point in [lo, hi) with time >= t. */
static size_t head_lower(const vg_cursor_t *c, size_t lo, size_t hi, int64_t t)
{
	return lo < hi ? lo + times_lower(c->head.times + lo, hi - lo, t) : lo;
}

static void set_block(vg_cursor_t *c, const int64_t *times, const double *values, size_t n)
{
	c->block_times = times;
	c->block_values = values;
	c->block_len = n;
}

/* Emits head points [a, b): a view of them, or a reversed copy in out. */
static int emit_head(vg_cursor_t *c, size_t a, size_t b)
{
	size_t n = b - a;
	if (n == 0) { /* an empty head may be NULL: no NULL + 0 */
		set_block(c, NULL, NULL, 0);
		return 0;
	}
	if (!c->reverse) {
		set_block(c, c->head.times + a, c->head.values + a, n);
		return 0;
	}
	int code = vg_run_reserve(&c->out, n);
	if (code)
		return code;
	for (size_t i = 0; i < n; i++) {
		c->out.times[i] = c->head.times[b - 1 - i];
		c->out.values[i] = c->head.values[b - 1 - i];
	}
	set_block(c, c->out.times, c->out.values, n);
	return 0;
}

/* Reverses n points in place. */
static void reverse_points(int64_t *times, double *values, size_t n)
{
	for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
		int64_t t = times[i];
		times[i] = times[j - 1];
		times[j - 1] = t;
		double v = values[i];
		values[i] = values[j - 1];
		values[j - 1] = v;
	}
}

/* Decodes the current chunk, cuts it to the range, merges the head points
 * of its span into it and leaves the block in out. */
static int emit_chunk(vg_cursor_t *c)
{
	int code = vg_run_reserve(&c->decoded, VG_CHUNK_MAX_POINTS);
	size_t n = 0;
	if (code == 0 && !c->txn->codec)
		code = vg_store_take_codec(c->txn->store, &c->txn->codec);
	code = code ? code
		    : vg_chunk_decode(c->txn->codec, c->chunk.mv_data, c->chunk.mv_size,
				      c->decoded.times, c->decoded.values, VG_CHUNK_MAX_POINTS, &n);
	if (code)
		return code;
	/* Cut to [t0, t1). */
	size_t lo = c->header.min_time < c->t0 ? times_lower(c->decoded.times, n, c->t0) : 0;
	size_t hi = c->header.max_time >= c->t1 ? times_lower(c->decoded.times, n, c->t1) : n;
	if (hi < lo)
		hi = lo;
	vg_run_t part = {c->decoded.times + lo, c->decoded.values + lo, hi - lo, hi - lo};
	/* Head points within the chunk's span. */
	size_t a = head_lower(c, c->head_lo, c->head_hi, c->header.min_time);
	size_t b = head_lower(c, a, c->head_hi, c->header.max_time);
	if (b < c->head_hi && c->head.times[b] == c->header.max_time)
		b++;
	vg_run_t head = {0}; /* no pointer arithmetic on an empty (maybe NULL) head */
	if (b > a)
		head = (vg_run_t){c->head.times + a, c->head.values + a, b - a, b - a};
	if (c->reverse)
		c->head_hi = a;
	else
		c->head_lo = b;
	if (head.len == 0) {
		/* The decoded points themselves: decoded is the cursor's own
		 * scratch and is not touched again before the next call. */
		set_block(c, part.times, part.values, part.len);
	} else {
		code = vg_run_merge(&part, &head, &c->out);
		if (code)
			return code;
		set_block(c, c->out.times, c->out.values, c->out.len);
	}
	if (c->reverse && c->block_len > 1)
		reverse_points((int64_t *)c->block_times, (double *)c->block_values, c->block_len);
	return advance_chunk(c);
}

int vg_cursor_next(vg_cursor_t *c, const int64_t **times, const double **values, size_t *n)
{
	for (;;) {
		int code;
		set_block(c, NULL, NULL, 0);
		if (!c->have_chunk) {
			/* No chunks left: the rest of the head. */
			code = emit_head(c, c->head_lo, c->head_hi);
			c->head_lo = c->head_hi;
		} else if (!c->reverse && c->head_lo < c->head_hi &&
			   c->head.times[c->head_lo] < c->header.min_time) {
			size_t b = head_lower(c, c->head_lo, c->head_hi, c->header.min_time);
			code = emit_head(c, c->head_lo, b);
			c->head_lo = b;
		} else if (c->reverse && c->head_lo < c->head_hi &&
			   c->head.times[c->head_hi - 1] > c->header.max_time) {
			size_t a = head_lower(c, c->head_lo, c->head_hi, c->header.max_time);
			if (a < c->head_hi && c->head.times[a] == c->header.max_time)
				a++;
			code = emit_head(c, a, c->head_hi);
			c->head_hi = a;
		} else {
			code = emit_chunk(c);
		}
		if (code)
			return code;
		/* A chunk cut entirely away by the range yields nothing: go on. */
		if (c->block_len > 0 || (!c->have_chunk && c->head_lo >= c->head_hi))
			break;
	}
	*times = c->block_times;
	*values = c->block_values;
	*n = c->block_len;
	return 0;
}

int vg_cursor_skip_chunk(vg_cursor_t *c, int64_t limit, vg_chunk_header_t *summary)
{
	if (!c->have_chunk)
		return 0;
	const vg_chunk_header_t *h = &c->header;
	if (h->min_time < c->t0 || h->max_time >= c->t1)
		return 0;
	if (c->reverse ? h->min_time < limit : h->max_time >= limit)
		return 0;
	if (h->value_count > 0 && (isnan(h->first_value) || isnan(h->last_value)))
		return 0;
	/* Head points still to emit on the chunk's near side come first, and
	 * none may fall within its span. */
	if (c->head_lo < c->head_hi) {
		if (c->reverse ? c->head.times[c->head_hi - 1] >= h->min_time
			       : c->head.times[c->head_lo] <= h->max_time)
			return 0;
	}
	*summary = *h;
	int code = advance_chunk(c);
	return code ? code : 1;
}

/* ---- aggregates ------------------------------------------------------ */

void vg_agg_init(vg_agg_t *agg)
{
	memset(agg, 0, sizeof *agg);
	agg->min = INFINITY;
	agg->max = -INFINITY;
	agg->first = agg->last = NAN;
}

void vg_agg_add(vg_agg_t *agg, const int64_t *times, const double *values, size_t n)
{
	agg->points += n;
	for (size_t i = 0; i < n; i++) {
		double v = values[i];
		if (isnan(v))
			continue;
		if (agg->count == 0 || times[i] < agg->first_time) {
			agg->first = v;
			agg->first_time = times[i];
		}
		if (agg->count == 0 || times[i] >= agg->last_time) {
			agg->last = v;
			agg->last_time = times[i];
		}
		agg->count++;
		agg->sum += v;
		if (v < agg->min)
			agg->min = v;
		if (v > agg->max)
			agg->max = v;
	}
}

void vg_agg_add_header(vg_agg_t *agg, const vg_chunk_header_t *h)
{
	agg->points += h->count;
	if (h->value_count == 0)
		return;
	if (agg->count == 0 || h->min_time < agg->first_time) {
		agg->first = h->first_value;
		agg->first_time = h->min_time;
	}
	if (agg->count == 0 || h->max_time > agg->last_time) {
		agg->last = h->last_value;
		agg->last_time = h->max_time;
	}
	agg->count += h->value_count;
	agg->sum += h->sum;
	if (h->min_value < agg->min)
		agg->min = h->min_value;
	if (h->max_value > agg->max)
		agg->max = h->max_value;
}

int vg_rtxn_aggregate(vg_rtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, vg_agg_t *agg)
{
	vg_cursor_t *c;
	int code = vg_cursor_open(txn, id, t0, t1, 0, &c);
	if (code)
		return code;
	for (;;) {
		vg_chunk_header_t h;
		code = vg_cursor_skip_chunk(c, t1, &h);
		if (code == 1) {
			vg_agg_add_header(agg, &h);
			continue;
		}
		if (code)
			break;
		const int64_t *times;
		const double *values;
		size_t n;
		code = vg_cursor_next(c, &times, &values, &n);
		if (code || n == 0)
			break;
		vg_agg_add(agg, times, values, n);
	}
	vg_cursor_close(c);
	return code;
}
