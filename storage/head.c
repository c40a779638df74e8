/*
 * head.c — unsealed points: durable, compact blocks of each series' writes.
 *
 * Each vg_wtxn_put() of a series appends a head block (or extends the
 * newest one, see below) under key (u32 id, u32 seq), seq counting up per
 * series from 0 after each seal.  A block (store format 2) is
 *
 *   size      field
 *   1         value encoding (bits 0-1): 1 decimal, 2 raw; bits 2-6: k
 *   1         decimal exponent e (0 for raw)
 *   varint    count n >= 1
 *   varint    bytes of the points below
 *   8         min time, the first (host byte order, as LMDB's own)
 *   varint    interval / 10^k, where the interval is the second time - the
 *             first (0 while n is 1) and k the most it allows (<= 18)
 *   varint    zigzag(max time - min time - (n - 1) * interval): 0 at a
 *             steady rate
 *   varint    decimal only: zigzag of the last value's decimal d[n-1]
 *   points    the first point's value, then for each later point its time
 *             residual and its value:
 *     time    zigzag((t[i] - t[i-1]) - interval), varint: 1 byte for a
 *             series at a steady rate
 *     value   decimal: zigzag(d[i] - d[i-1]), varint, with d[-1] = 0 and
 *             the value exactly d / 10^e (the chunk codec's ALP test,
 *             decimal.h); raw: the 8 bytes of the float64
 *   zeros     room for more points (see merge_block)
 *
 * Decimals are chosen when every value of the block is one; a value of 1
 * decimal place then costs a byte or two instead of 8.  The header keeps
 * what an append needs (the last time, interval and decimal), so a write
 * that comes after everything in the series' newest block appends its
 * points to that block's bytes without decoding them; only a value that
 * is not a decimal at the block's exponent makes the block encoded again
 * (at a larger exponent, or raw).  One point per series per write — the
 * usual shape of time-major ingest — costs 2 to 10 bytes this way instead
 * of a key, a node and a header; a reader decodes a handful of blocks.  A
 * block stays under VG_HEAD_BLOCK_MAX bytes (well inside an LMDB node, no
 * overflow page) and VG_HEAD_MERGE_POINTS points (what encoding it again
 * costs).
 *
 * A block is sorted and deduplicated when written (last write wins inside
 * the batch), so a reader only merges blocks: when each block starts after
 * the previous one ends (in-order writes) they are simply concatenated;
 * otherwise they are merged pairwise, a later block winning on equal times.
 * Blocks are written in the same LMDB transaction as everything else, so a
 * committed write is durable and visible at once; sealing (seal.c) later
 * moves them into chunks.  LMDB values are only 2-byte aligned, hence the
 * memcpy()s.  Decoding checks every field against the header and the
 * block's end, so a damaged block reads as VG_ECORRUPT.
 */
#include "store_int.h"

#include "decimal.h"

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

/* ---- the block format ----------------------------------------------- */

enum { HEAD_DEC = 1, HEAD_RAW = 2 };

/* A block's header fields (see the top of the file). */
typedef struct {
	uint8_t kind, exp;
	uint8_t k; /* interval = its stored multiple * 10^k */
	uint32_t count;
	int64_t min, max;
	uint64_t interval;
	int64_t last_d; /* HEAD_DEC: the last value's decimal */
} block_head_t;

/* Most bytes of a header: kind, exponent, count, points' bytes, min,
 * interval, span, last decimal. */
#define HEAD_HEADER_MAX (2 + 5 + 10 + 8 + 10 + 10 + 10)
/* Most bytes of a point: time residual and value. */
#define HEAD_POINT_MAX 20

/* The interval as m * 10^k with the largest k (0 for 0): 10 s is 1 * 10^10,
 * one byte instead of five. */
static unsigned interval_scale(uint64_t interval)
{
	unsigned k = 0;
	while (interval != 0 && interval % 10 == 0 && k < VG_ALP_MAX_EXPONENT) {
		interval /= 10;
		k++;
	}
	return k;
}

/* Writes the header of a block whose points take `used` bytes. */
static size_t header_put(uint8_t *o, const block_head_t *h, size_t used)
{
	uint8_t *p = o;
	*p++ = (uint8_t)(h->kind | h->k << 2);
	*p++ = h->exp;
	p = vg_uvarint_store(p, h->count);
	p = vg_uvarint_store(p, used);
	memcpy(p, &h->min, 8);
	p += 8;
	p = vg_uvarint_store(p, h->interval / (uint64_t)vg_pow10[h->k]);
	/* The span as its difference from what a steady rate gives. */
	uint64_t steady = (uint64_t)(h->count - 1) * h->interval;
	p = vg_uvarint_store(p, vg_zigzag((uint64_t)h->max - (uint64_t)h->min - steady));
	if (h->kind == HEAD_DEC)
		p = vg_uvarint_store(p, vg_zigzag((uint64_t)h->last_d));
	return (size_t)(p - o);
}

/*
 * Writes n points at o that follow the h->count points already in the
 * block (none: the block's first), updating h, and returns the end; NULL
 * when a value is not a decimal at the block's exponent (HEAD_DEC), with h
 * then half updated.  Room: HEAD_POINT_MAX bytes per point.
 */
static uint8_t *points_put(uint8_t *o, block_head_t *h, const int64_t *times,
			   const double *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (h->count == 0) {
			h->min = h->max = times[i];
		} else {
			uint64_t delta = (uint64_t)times[i] - (uint64_t)h->max;
			if (h->count == 1) {
				h->interval = delta;
				h->k = (uint8_t)interval_scale(delta);
			}
			o = vg_uvarint_store(o, vg_zigzag(delta - h->interval));
			h->max = times[i];
		}
		if (h->kind == HEAD_DEC) {
			int64_t d;
			if (!vg_alp_fits(values[i], h->exp, &d))
				return NULL;
			o = vg_uvarint_store(o, vg_zigzag((uint64_t)d - (uint64_t)h->last_d));
			h->last_d = d;
		} else {
			memcpy(o, &values[i], 8);
			o += 8;
		}
		h->count++;
	}
	return o;
}

/*
 * Past this many decimal places a value is a full-precision float that
 * happens to round-trip (most doubles do at 15 or 16 places): its decimals
 * would take as many bytes as its bits, and the next value would likely
 * need one place more, encoding the block again.
 */
#define HEAD_DEC_MAX_EXPONENT 9

/* Decimals at the largest exponent any value needs, when every value is
 * one with few places; raw bits otherwise. */
static void choose_encoding(const double *values, size_t n, block_head_t *h)
{
	int e = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t d;
		if (vg_alp_fits(values[i], e, &d))
			continue;
		int need = vg_alp_min_exponent(values[i]);
		if (need < 0 || need > HEAD_DEC_MAX_EXPONENT) {
			*h = (block_head_t){.kind = HEAD_RAW};
			return;
		}
		e = need > e ? need : e;
	}
	*h = (block_head_t){.kind = HEAD_DEC, .exp = (uint8_t)e};
}

/* Encodes n sorted unique points as a new block's points into s (replaced),
 * and its header fields into *h. */
static int encode_points(vg_buf_t *s, block_head_t *h, const int64_t *times,
			 const double *values, size_t n)
{
	vg_buf_clear(s);
	if (n > SIZE_MAX / HEAD_POINT_MAX || vg_buf_reserve(s, HEAD_POINT_MAX * n))
		return VG_ENOMEM;
	choose_encoding(values, n, h);
	uint8_t *end = points_put(s->data, h, times, values, n);
	if (!end) {
		/* A decimal that does not round-trip at the larger exponent. */
		*h = (block_head_t){.kind = HEAD_RAW};
		end = points_put(s->data, h, times, values, n);
	}
	s->len = (size_t)(end - s->data);
	return 0;
}

/* A new block's room: what a few more points take, so that the next
 * writes of one point extend it in place (see merge_block). */
#define HEAD_FIRST_ROOM 64

/* Puts header h and the points in s as the value of key (id, seq), padded
 * with zeros to `room` bytes when that is more, reserved in place; flags
 * as mdb_cursor_put's. */
static int block_put(MDB_cursor *cur, vg_series_id_t id, uint32_t seq, const block_head_t *h,
		     const vg_buf_t *s, size_t room, unsigned flags)
{
	uint8_t header[HEAD_HEADER_MAX], key[8];
	size_t hlen = header_put(header, h, s->len), len = hlen + s->len;
	size_t size = room > len ? room : len;
	head_key(key, id, seq);
	MDB_val k = {8, key}, v = {size, NULL};
	int rc = mdb_cursor_put(cur, &k, &v, flags | MDB_RESERVE);
	if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
		/* Not the last key after all: an ordinary put. */
		v = (MDB_val){size, NULL};
		rc = mdb_cursor_put(cur, &k, &v, (flags & ~(unsigned)MDB_APPEND) | MDB_RESERVE);
	}
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t *p = v.mv_data;
	memcpy(p, header, hlen);
	if (s->len)
		memcpy(p + hlen, s->data, s->len);
	memset(p + len, 0, size - len);
	return 0;
}

/* ---- reading the format ---------------------------------------------- */

typedef struct {
	block_head_t h;
	const uint8_t *points;
	size_t len;   /* bytes of points */
	const uint8_t *room_end; /* the block's end: zeros from points + len */
	size_t order; /* write order among the blocks read (vg_head_collect) */
} block_view_t;

/* Reads one LEB128 varint of at most 10 bytes before end; NULL if cut. */
static const uint8_t *get_uvarint(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; p < end && shift < 70; shift += 7) {
		uint8_t b = *p++;
		v |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
		if (b < 0x80) {
			*out = v;
			return p;
		}
	}
	return NULL;
}

static int block_parse(const void *data, size_t size, block_view_t *b)
{
	const uint8_t *p = data, *end = p + size;
	if (size < 2 + 1 + 8 + 1 + 1)
		return VG_ECORRUPT;
	block_head_t *h = &b->h;
	unsigned k = p[0] >> 2;
	*h = (block_head_t){.kind = p[0] & 3, .exp = p[1], .k = (uint8_t)k};
	if ((h->kind != HEAD_DEC && h->kind != HEAD_RAW) || h->exp > VG_ALP_MAX_EXPONENT ||
	    (h->kind == HEAD_RAW && h->exp != 0) || k > VG_ALP_MAX_EXPONENT)
		return VG_ECORRUPT;
	uint64_t count, used, interval, zspan, zd = 0;
	p = get_uvarint(p + 2, end, &count);
	p = p ? get_uvarint(p, end, &used) : NULL;
	if (!p || count == 0 || count > UINT32_MAX || end - p < 8)
		return VG_ECORRUPT;
	memcpy(&h->min, p, 8);
	p = get_uvarint(p + 8, end, &interval);
	p = p ? get_uvarint(p, end, &zspan) : NULL;
	if (p && h->kind == HEAD_DEC)
		p = get_uvarint(p, end, &zd);
	if (!p || interval > UINT64_MAX / (uint64_t)vg_pow10[k])
		return VG_ECORRUPT;
	h->interval = interval * (uint64_t)vg_pow10[k];
	uint64_t span = (count - 1) * h->interval + vg_unzigzag(zspan);
	/* The span may pass 2^63 (INT64_MIN to now), but not INT64_MAX. */
	if ((count == 1) != (span == 0) || span > (uint64_t)INT64_MAX - (uint64_t)h->min)
		return VG_ECORRUPT;
	h->count = (uint32_t)count;
	h->max = (int64_t)((uint64_t)h->min + span);
	h->last_d = (int64_t)vg_unzigzag(zd);
	if (used > (size_t)(end - p))
		return VG_ECORRUPT;
	b->points = p;
	b->len = (size_t)used;
	b->room_end = end;
	return 0;
}

/* Decodes the b->h.count points of block b into times and values;
 * VG_ECORRUPT unless they are exactly what the header says. */
static int block_decode(const block_view_t *b, int64_t *times, double *values)
{
	const block_head_t *h = &b->h;
	const uint8_t *p = b->points, *end = p + b->len;
	uint64_t t = (uint64_t)h->min, d = 0;
	for (uint32_t i = 0; i < h->count; i++) {
		uint64_t z;
		if (i > 0) {
			if (!(p = get_uvarint(p, end, &z)))
				return VG_ECORRUPT;
			uint64_t next = t + h->interval + vg_unzigzag(z);
			if ((int64_t)next <= (int64_t)t)
				return VG_ECORRUPT;
			t = next;
		}
		times[i] = (int64_t)t;
		if (h->kind == HEAD_DEC) {
			if (!(p = get_uvarint(p, end, &z)))
				return VG_ECORRUPT;
			d += vg_unzigzag(z);
			values[i] = (double)(int64_t)d / vg_pow10[h->exp];
		} else {
			if (end - p < 8)
				return VG_ECORRUPT;
			memcpy(&values[i], p, 8);
			p += 8;
		}
	}
	if (p != end || (int64_t)t != h->max || (h->kind == HEAD_DEC && (int64_t)d != h->last_d))
		return VG_ECORRUPT;
	/* The rest is room for more points, zeros.  Checked here, where the
	 * block is read, not at every append, which overwrites the room. */
	for (; p < b->room_end; p++)
		if (*p)
			return VG_ECORRUPT;
	return 0;
}

/* ---- writing blocks -------------------------------------------------- */

/* Writes n sorted unique points as block (id, seq). */
static int put_block(vg_wtxn_t *txn, vg_series_id_t id, uint32_t seq, const int64_t *times,
		     const double *values, size_t n)
{
	MDB_cursor *cur = NULL;
	int code = head_cursor(txn, &cur);
	block_head_t h;
	code = code ? code : encode_points(&txn->scratch, &h, times, values, n);
	if (code)
		return code;
	/* The newest series' first block is the database's last key: appended,
	 * it fills its page instead of splitting it in half. */
	bool last = seq == 0 && id + 1 == txn->store->next_id;
	return block_put(cur, id, seq, &h, &txn->scratch, HEAD_FIRST_ROOM,
			 last ? MDB_APPEND : 0);
}

/*
 * Extends the newest head block of series id (seq) with n sorted unique
 * points that all come after it, when the result stays small: *merged says
 * whether it did.  The new points are appended to the block's encoded
 * points as they are; only a value that is not a decimal at the block's
 * exponent makes the whole block encoded again.
 *
 * A block has room for more points (zeros after its points), so most
 * appends keep its size: the put then hands back the block where it lies
 * (MDB_CURRENT | MDB_RESERVE of an unchanged size), and the new header and
 * points are written in place — no node moved, no page split.  A block
 * that outgrows its room is written again with twice the room, up to
 * VG_HEAD_BLOCK_MAX.  The cursor stands on the block from the lookup, so it
 * is found once, not twice.
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
	block_view_t b;
	code = block_parse(v.mv_data, v.mv_size, &b);
	if (code)
		return code;
	if (b.h.count + n > VG_HEAD_MERGE_POINTS || b.h.max >= times[0] ||
	    b.len + HEAD_POINT_MAX * n > VG_HEAD_BLOCK_MAX)
		return 0;
	size_t room = v.mv_size, old_hlen = (size_t)(b.points - (const uint8_t *)v.mv_data);
	uint8_t added[HEAD_POINT_MAX * VG_HEAD_MERGE_POINTS], header[HEAD_HEADER_MAX];
	block_head_t h = b.h;
	uint8_t *end = points_put(added, &h, times, values, n);
	if (end) {
		size_t alen = (size_t)(end - added), used = b.len + alen;
		size_t hlen = header_put(header, &h, used), len = hlen + used;
		if (len > VG_HEAD_BLOCK_MAX)
			return 0;
		if (len <= room) {
			/* In place: same size, LMDB hands back the block itself. */
			v = (MDB_val){room, NULL};
			rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT | MDB_RESERVE);
			if (rc)
				return vg_store_lmdb_error(rc);
			uint8_t *p = v.mv_data;
			if (hlen != old_hlen)
				memmove(p + hlen, p + old_hlen, b.len);
			memcpy(p, header, hlen);
			memcpy(p + hlen + b.len, added, alen);
			if (len < room)
				memset(p + len, 0, room - len);
			*merged = true;
			return 0;
		}
		/* Outgrown: copied out first, the put rewrites the node. */
		vg_buf_t *s = &txn->scratch;
		vg_buf_clear(s);
		if (vg_buf_reserve(s, used))
			return VG_ENOMEM;
		memcpy(s->data, b.points, b.len);
		memcpy(s->data + b.len, added, alen);
		s->len = used;
	} else {
		/* Every point again, at the exponent the new values need. */
		vg_run_t all = {0};
		code = vg_run_reserve(&all, b.h.count + n);
		code = code ? code : block_decode(&b, all.times, all.values);
		if (code == 0) {
			vg_points_copy(all.times + b.h.count, all.values + b.h.count, times,
				       values, n);
			code = encode_points(&txn->scratch, &h, all.times, all.values,
					     b.h.count + n);
		}
		vg_run_release(&all);
		if (code)
			return code;
		if (header_put(header, &h, txn->scratch.len) + txn->scratch.len > VG_HEAD_BLOCK_MAX)
			return 0;
	}
	size_t grown = 2 * room < VG_HEAD_BLOCK_MAX ? 2 * room : VG_HEAD_BLOCK_MAX;
	code = block_put(cur, id, seq, &h, &txn->scratch, grown, MDB_CURRENT);
	*merged = code == 0;
	return code;
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

int vg_head_block_points(const void *data, size_t size, uint32_t *count)
{
	block_view_t b;
	int code = block_parse(data, size, &b);
	if (code == 0)
		*count = b.h.count;
	return code;
}

/* Appends the points of block b within [t0, t1) to run (which must already
 * have room for all of b's). */
static int block_slice(const block_view_t *b, int64_t t0, int64_t t1, vg_run_t *run)
{
	int64_t *times = run->times + run->len;
	double *values = run->values + run->len;
	int code = block_decode(b, times, values);
	if (code)
		return code;
	size_t lo = 0, hi = b->h.count;
	while (lo < hi && times[lo] < t0)
		lo++;
	while (hi > lo && times[hi - 1] >= t1)
		hi--;
	if (lo > 0 && hi > lo) {
		memmove(times, times + lo, (hi - lo) * sizeof *times);
		memmove(values, values + lo, (hi - lo) * sizeof *values);
	}
	run->len += hi - lo;
	return 0;
}

static int compare_views(const void *a, const void *b)
{
	const block_view_t *x = a, *y = b;
	if (x->h.min != y->h.min)
		return x->h.min < y->h.min ? -1 : 1;
	return (x->order > y->order) - (x->order < y->order);
}

/* True when the views, in their current order, follow each other in time
 * without overlapping. */
static bool views_disjoint(const block_view_t *views, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (views[i].h.min <= views[i - 1].h.max)
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
		code = block_parse(v.mv_data, v.mv_size, &b);
		if (code)
			break;
		if (b.h.max < t0 || b.h.min >= t1)
			continue;
		b.order = nviews;
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
		points += b.h.count;
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
					code = vg_run_reserve(&block, views[i].h.count);
					if (code)
						break;
					code = block_slice(&views[i], t0, t1, &block);
					if (code)
						break;
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
		code = block_slice(&views[i], t0, t1, out);
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
		if (block_parse(v.mv_data, v.mv_size, &b) != 0 || seq >= VG_HEAD_UNKNOWN - 1) {
			code = VG_ECORRUPT;
			break;
		}
		state.points += b.h.count;
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

/* ---- format 1 -------------------------------------------------------- */

/*
 * Format 1 stored a block as u32 count, u32 0, i64 min, i64 max, then the
 * count times and the count values raw.  Opening such a store rewrites
 * each block in place, in the transaction that also writes the new format
 * record, so a store is never half converted.
 */
int vg_head_upgrade_v1(MDB_txn *txn, vg_store_t *store)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, store->dbi_head, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	vg_run_t run = {0};
	vg_buf_t points = VG_BUF_INIT;
	int code = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && code == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *p = v.mv_data;
		uint32_t count = 0;
		if (k.mv_size == 8 && v.mv_size >= 24)
			memcpy(&count, p, 4);
		if (count == 0 || (v.mv_size - 24) / 16 != count || (v.mv_size - 24) % 16 != 0) {
			code = VG_ECORRUPT;
			break;
		}
		code = vg_run_reserve(&run, count);
		if (code)
			break;
		memcpy(run.times, p + 24, 8 * (size_t)count);
		memcpy(run.values, p + 24 + 8 * (size_t)count, 8 * (size_t)count);
		for (uint32_t i = 1; i < count; i++)
			if (run.times[i] <= run.times[i - 1])
				code = VG_ECORRUPT;
		block_head_t h;
		code = code ? code : encode_points(&points, &h, run.times, run.values, count);
		code = code ? code
			    : block_put(cur, vg_load_be32(k.mv_data),
					vg_load_be32((const uint8_t *)k.mv_data + 4), &h, &points, 0,
					MDB_CURRENT);
	}
	mdb_cursor_close(cur);
	vg_run_release(&run);
	vg_buf_release(&points);
	if (code == 0 && rc != 0 && rc != MDB_NOTFOUND)
		code = vg_store_lmdb_error(rc);
	return code;
}
