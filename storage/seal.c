/*
 * seal.c — writing points, sealing heads into chunks, deletion and
 * retention.
 *
 * Sealing a series gathers its head (merged, deduplicated), decodes the
 * chunks it overlaps — and the chunk just before it when the two fit in one
 * chunk, so that heads sealed early (VG_SEAL_POINTS, or by age) grow the
 * last chunk to full size instead of leaving a string of small ones —
 * merges the two (head wins on equal times), deletes the old
 * chunks and head blocks and writes the result back as chunks of at most
 * VG_CHUNK_MAX_POINTS points, each cut to fill whole LMDB pages when it is
 * too large for a leaf page (see encode_fitted()).  This keeps the invariant that the
 * chunks of a series never overlap, so readers never merge chunks with each
 * other.  All of it happens in one write transaction: readers keep their
 * snapshot and are never blocked.
 *
 * Deleting a range drops the chunks wholly inside it and rewrites the ones
 * that straddle its ends; the freed pages go back to LMDB's free list and
 * are reused, so space is reclaimed rather than tombstoned.
 */
#include "store_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <string.h>

#define VG_SEAL_BATCH 256 /* series per write transaction in bulk passes */

typedef struct {
	uint8_t bytes[12];
} chunk_key_t;

typedef struct {
	chunk_key_t *keys;
	size_t len, cap;
} key_list_t;

static void chunk_key(chunk_key_t *k, vg_series_id_t id, int64_t min_time)
{
	vg_store_be32(k->bytes, id);
	vg_store_be64(k->bytes + 4, vg_time_flip(min_time));
}

static int key_list_add(key_list_t *list, const void *key)
{
	if (list->len == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		chunk_key_t *keys = vg_reallocarray(list->keys, cap, sizeof *keys);
		if (!keys)
			return VG_ENOMEM;
		list->keys = keys;
		list->cap = cap;
	}
	memcpy(list->keys[list->len++].bytes, key, 12);
	return 0;
}

/* True when a chunk value of `size` bytes sits in overflow pages it fills
 * to within 1/16. */
static bool chunk_fills_pages(size_t size, size_t psize)
{
	size_t need = size + VG_OVERFLOW_HEADER;
	size_t pages = (need + psize - 1) / psize;
	return need >= psize && (pages * psize - need) * 16 <= pages * psize;
}

static size_t leaf_value_max(size_t psize) { return vg_leaf_value_max(psize); }

/* A chunk that seals no longer merge into: it fills its pages and is big
 * (half the point limit, or half the page limit).  Smaller chunks at the
 * end of a series are its tail, re-merged with new points until they add
 * up to a finished chunk. */
static bool chunk_is_finished(const vg_chunk_header_t *h, size_t size, size_t psize)
{
	if (h->count >= VG_CHUNK_MAX_POINTS)
		return true;
	size_t pages = (size + VG_OVERFLOW_HEADER + psize - 1) / psize;
	return chunk_fills_pages(size, psize) &&
	       (h->count >= VG_CHUNK_MAX_POINTS / 2 || pages >= VG_FIT_PAGES / 2);
}

/* At most this many tail chunks are gathered back by a seal (a tail is at
 * most a page-filling chunk and two leaf-sized ones). */
#define VG_TAIL_CHUNKS 4

/*
 * Lists the chunks of series id overlapping [lo, hi] (inclusive), in time
 * order; with room > 0 also the unfinished chunks just before lo (the
 * series' tail) while they hold fewer than `room` points together, so that
 * they and the new points are laid out again.
 */
static int find_chunks(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, int64_t lo, int64_t hi,
		       size_t room, key_list_t *out)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, store->dbi_chunks, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	chunk_key_t seek;
	chunk_key(&seek, id, lo);
	MDB_val k = {12, seek.bytes}, v;
	int code = 0;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* The chunk before the seek position may reach into [lo, hi]; before
	 * it may lie the unfinished tail. */
	MDB_val pk, pv;
	int prc = rc == 0 ? mdb_cursor_get(cur, &pk, &pv, MDB_PREV)
			  : mdb_cursor_get(cur, &pk, &pv, MDB_LAST);
	chunk_key_t tail[VG_TAIL_CHUNKS];
	size_t ntail = 0, tail_points = 0;
	while (code == 0 && prc == 0 && ntail < VG_TAIL_CHUNKS && pk.mv_size == 12 &&
	       vg_load_be32(pk.mv_data) == id) {
		vg_chunk_header_t h;
		code = vg_chunk_header_read(pv.mv_data, pv.mv_size, &h);
		if (code)
			break;
		bool overlaps = ntail == 0 && h.max_time >= lo;
		if (!overlaps && (tail_points + h.count >= room ||
				  chunk_is_finished(&h, pv.mv_size, store->page_size)))
			break;
		memcpy(tail[ntail++].bytes, pk.mv_data, 12);
		tail_points += h.count;
		prc = mdb_cursor_get(cur, &pk, &pv, MDB_PREV);
	}
	while (code == 0 && ntail > 0)
		code = key_list_add(out, tail[--ntail].bytes);
	if (code == 0 && rc == 0) {
		/* Back to the seek position. */
		k.mv_size = 12;
		k.mv_data = seek.bytes;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	for (; code == 0 && rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 12 || vg_load_be32(k.mv_data) != id)
			break;
		if (vg_time_unflip(vg_load_be64((const uint8_t *)k.mv_data + 4)) > hi)
			break;
		code = key_list_add(out, k.mv_data);
	}
	mdb_cursor_close(cur);
	if (code)
		return code;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
}

/* Decodes the chunk under key and appends its points to run. */
static int decode_into(vg_wtxn_t *txn, const chunk_key_t *key, vg_run_t *run)
{
	MDB_val k = {12, (void *)key->bytes}, v;
	int rc = mdb_get(txn->txn, txn->store->dbi_chunks, &k, &v);
	if (rc)
		return vg_store_lmdb_error(rc);
	int code = vg_run_reserve(run, run->len + VG_CHUNK_MAX_POINTS);
	size_t n = 0;
	code = code ? code
		    : vg_chunk_decode(txn->store->write_codec, v.mv_data, v.mv_size,
				      run->times + run->len, run->values + run->len,
				      VG_CHUNK_MAX_POINTS, &n);
	if (code == 0)
		run->len += n;
	return code;
}

static int delete_chunk(vg_wtxn_t *txn, const chunk_key_t *key)
{
	MDB_val k = {12, (void *)key->bytes};
	int rc = mdb_del(txn->txn, txn->store->dbi_chunks, &k, NULL);
	return vg_store_lmdb_error(rc);
}

/*
 * Encodes the chunk that starts at run[start], choosing its point count.
 * LMDB keeps a value too large for a leaf page in whole overflow pages, so
 * a chunk that overshoots a page boundary by a little wastes most of a
 * page.  The first candidate is everything left (at most
 * VG_CHUNK_MAX_POINTS points); when that is too large for a leaf page and
 * does not fill its pages, the chunk is cut to the largest point count that
 * fits in the whole pages below the boundary, to within FIT_SLACK bytes
 * (vg_chunk_encode_fit), and the rest starts the next chunk.  (Compaction
 * re-cuts the leaf-sized tails again to fill leaf pages: store.c.)  A candidate smaller than a page
 * becomes two leaf-sized chunks instead, which share leaf pages with
 * others.  The chunk is left in txn->scratch; *n gets its count.
 */
#define FIT_SLACK 8 /* bytes left below a page boundary that end the search */

static int encode_fitted(vg_wtxn_t *txn, const vg_run_t *run, size_t start, size_t *n)
{
	vg_codec_t *codec = txn->store->write_codec;
	size_t psize = txn->store->page_size;
	size_t count = run->len - start < VG_CHUNK_MAX_POINTS ? run->len - start : VG_CHUNK_MAX_POINTS;
	vg_buf_clear(&txn->scratch);
	int code = vg_chunk_encode(codec, run->times + start, run->values + start, count,
				   &txn->scratch);
	if (code)
		return code;
	size_t len = txn->scratch.len, need = len + VG_OVERFLOW_HEADER;
	*n = count;
	if (len <= leaf_value_max(psize) || count < 64 || psize - need % psize <= FIT_SLACK ||
	    need % psize == 0)
		return 0;
	if (need < psize) {
		/* Between a leaf value and a page: two leaf values. */
		*n = (count + 1) / 2;
		vg_buf_clear(&txn->scratch);
		return vg_chunk_encode(codec, run->times + start, run->values + start, *n,
				       &txn->scratch);
	}
	/* The whole pages below the boundary, to within FIT_SLACK bytes or
	 * 1/128 of them: nearer costs encodes for a few bytes.  An unfinished
	 * tail sealed at commit is laid out again by the series' next seal
	 * (if it has one: the tail may also stay), so it is fitted only to
	 * within 1/32, which the first estimate nearly always is: one or two
	 * encodes instead of up to a dozen at every seal.  The idle seal
	 * (vg_store_seal) fits the tails it seals closely. */
	bool complete = count == VG_CHUNK_MAX_POINTS || need >= VG_FIT_PAGES * psize;
	size_t target = (need / psize) * psize - VG_OVERFLOW_HEADER;
	size_t slack = target / (complete || txn->fit_tails ? 128 : 32);
	if (slack < FIT_SLACK)
		slack = FIT_SLACK;
	vg_buf_clear(&txn->scratch);
	code = vg_chunk_encode_fit(codec, run->times + start, run->values + start, count, target,
				   slack, &txn->scratch, n);
	if (code == 0 && *n == 0)
		code = VG_EINVAL; /* cannot happen: one point is far below a page */
	return code;
}

/* Writes a sorted, deduplicated run as chunks fitted to pages. */
static int write_chunks(vg_wtxn_t *txn, vg_series_id_t id, const vg_run_t *run)
{
	size_t start = 0;
	while (start < run->len) {
		size_t n;
		int code = encode_fitted(txn, run, start, &n);
		if (code)
			return code;
		chunk_key_t key;
		chunk_key(&key, id, run->times[start]);
		MDB_val k = {12, key.bytes}, v = {txn->scratch.len, txn->scratch.data};
		int rc = mdb_put(txn->txn, txn->store->dbi_chunks, &k, &v, 0);
		if (rc)
			return vg_store_lmdb_error(rc);
		start += n;
	}
	return 0;
}

int vg_seal_series(vg_wtxn_t *txn, vg_series_id_t id)
{
	vg_store_t *store = txn->store;
	vg_run_t head = {0}, chunks = {0}, merged = {0};
	key_list_t keys = {0};
	int code = vg_head_collect(txn->txn, store, id, INT64_MIN, INT64_MAX, &head);
	if (code == 0 && head.len > 0)
		code = find_chunks(txn->txn, store, id, head.times[0], head.times[head.len - 1],
				   head.len < VG_CHUNK_MAX_POINTS ? VG_CHUNK_MAX_POINTS - head.len : 0,
				   &keys);
	for (size_t i = 0; code == 0 && i < keys.len; i++)
		code = decode_into(txn, &keys.keys[i], &chunks);
	for (size_t i = 0; code == 0 && i < keys.len; i++)
		code = delete_chunk(txn, &keys.keys[i]);
	code = code ? code : vg_run_merge(&chunks, &head, &merged);
	code = code ? code : vg_head_clear(txn, id);
	code = code ? code : write_chunks(txn, id, &merged);
	vg_run_release(&head);
	vg_run_release(&chunks);
	vg_run_release(&merged);
	vg_free(keys.keys);
	return code;
}

/* ---- writing --------------------------------------------------------- */

int vg_wtxn_put(vg_wtxn_t *txn, vg_series_id_t id, const int64_t *times, const double *values,
		size_t n)
{
	if (id == 0 || id >= txn->store->next_id)
		return VG_ENOTFOUND;
	for (size_t i = 0; i < n; i++)
		if (times[i] == INT64_MAX)
			return VG_EINVAL;
	return vg_head_append(txn, id, times, values, n);
}

/* ---- deleting -------------------------------------------------------- */

int vg_wtxn_delete(vg_wtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, uint64_t *removed)
{
	if (t0 >= t1)
		return 0;
	/* Count what readers see in the range (a head point that replaces a
	 * chunk point is one point, not two) through a read view of this
	 * transaction. */
	vg_rtxn_t view = {txn->store, txn->txn, txn->store->write_codec};
	vg_agg_t before;
	vg_agg_init(&before);
	int code = vg_rtxn_aggregate(&view, id, t0, t1, &before);
	if (code || before.points == 0)
		return code;
	code = vg_head_delete_range(txn, id, t0, t1, NULL);
	key_list_t keys = {0};
	vg_run_t run = {0};
	code = code ? code : find_chunks(txn->txn, txn->store, id, t0, t1 - 1, 0, &keys);
	for (size_t i = 0; code == 0 && i < keys.len; i++) {
		MDB_val k = {12, keys.keys[i].bytes}, v;
		int rc = mdb_get(txn->txn, txn->store->dbi_chunks, &k, &v);
		vg_chunk_header_t h;
		code = rc ? vg_store_lmdb_error(rc) : vg_chunk_header_read(v.mv_data, v.mv_size, &h);
		if (code)
			break;
		if (h.min_time >= t0 && h.max_time < t1) {
			code = delete_chunk(txn, &keys.keys[i]);
			continue;
		}
		/* Straddles an end of the range: keep the points outside it. */
		run.len = 0;
		code = decode_into(txn, &keys.keys[i], &run);
		code = code ? code : delete_chunk(txn, &keys.keys[i]);
		if (code)
			break;
		size_t m = 0;
		for (size_t j = 0; j < run.len; j++) {
			if (run.times[j] >= t0 && run.times[j] < t1)
				continue;
			run.times[m] = run.times[j];
			run.values[m++] = run.values[j];
		}
		run.len = m;
		code = write_chunks(txn, id, &run);
	}
	vg_free(keys.keys);
	vg_run_release(&run);
	if (code == 0 && removed)
		*removed += before.points;
	return code;
}

int vg_wtxn_drop_series(vg_wtxn_t *txn, vg_series_id_t id, uint64_t *removed)
{
	int code = vg_wtxn_delete(txn, id, INT64_MIN, INT64_MAX, removed);
	code = code ? code : vg_head_clear(txn, id);
	return code ? code : vg_series_unindex(txn, id);
}

/* ---- bulk passes ----------------------------------------------------- */

int vg_store_seal(vg_store_t *store, uint32_t min_points)
{
	if (min_points == 0)
		min_points = 1;
	vg_series_id_t next = 1;
	for (;;) {
		vg_wtxn_t *txn;
		int code = vg_store_write_begin(store, &txn);
		if (code)
			return code;
		/* Series not touched since the store was opened have no slot yet. */
		if (store->heads_unknown_below > 1)
			code = vg_store_heads_reserve(store, store->heads_unknown_below - 1);
		txn->fit_tails = true; /* what this seal leaves stays */
		size_t done = 0;
		while (code == 0 && done < VG_SEAL_BATCH && next < store->heads_cap) {
			code = vg_head_resolve(txn->txn, store, next);
			if (code == 0 && store->heads[next].points >= min_points) {
				code = vg_seal_series(txn, next);
				done++;
			}
			next++;
		}
		bool finished = next >= store->heads_cap;
		if (code) {
			vg_wtxn_abort(txn);
			return code;
		}
		code = vg_wtxn_commit(txn);
		if (code || finished)
			return code;
	}
}

typedef struct {
	vg_str_t *names;
	size_t len, cap;
	vg_buf_t text;
} name_list_t;

static int add_name(void *ctx, vg_str_t name)
{
	name_list_t *list = ctx;
	if (list->len == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		vg_str_t *names = vg_reallocarray(list->names, cap, sizeof *names);
		if (!names)
			return VG_ENOMEM;
		list->names = names;
		list->cap = cap;
	}
	/* Offsets into text until the list is complete (text may move). */
	list->names[list->len++] = (vg_str_t){(const char *)(uintptr_t)list->text.len, name.len};
	return vg_buf_append(&list->text, name.data, name.len);
}

/* Deletes from every series of one measurement the points before cutoff. */
static int expire_measurement(vg_store_t *store, vg_str_t measurement, int64_t cutoff,
			      uint64_t *removed)
{
	vg_rtxn_t *rtxn;
	vg_idset_t ids = VG_IDSET_INIT;
	int code = vg_store_read_begin(store, &rtxn);
	if (code)
		return code;
	code = vg_rtxn_measurement_series(rtxn, measurement, &ids);
	vg_rtxn_end(rtxn);
	for (size_t i = 0; code == 0 && i < ids.len; i += VG_SEAL_BATCH) {
		vg_wtxn_t *txn;
		code = vg_store_write_begin(store, &txn);
		if (code)
			break;
		for (size_t j = i; code == 0 && j < ids.len && j < i + VG_SEAL_BATCH; j++)
			code = vg_wtxn_delete(txn, ids.ids[j], INT64_MIN, cutoff, removed);
		if (code)
			vg_wtxn_abort(txn);
		else
			code = vg_wtxn_commit(txn);
	}
	vg_idset_release(&ids);
	return code;
}

int vg_store_enforce_retention(vg_store_t *store, int64_t now_ns, uint64_t *removed)
{
	uint64_t count = 0;
	name_list_t list = {0};
	vg_rtxn_t *rtxn;
	int code = vg_store_read_begin(store, &rtxn);
	if (code)
		return code;
	code = vg_rtxn_list_measurements(rtxn, add_name, &list);
	int64_t *durations = NULL;
	if (code == 0 && list.len) {
		durations = vg_reallocarray(NULL, list.len, sizeof *durations);
		if (!durations)
			code = VG_ENOMEM;
	}
	for (size_t i = 0; code == 0 && i < list.len; i++) {
		list.names[i].data = (const char *)list.text.data + (uintptr_t)list.names[i].data;
		code = vg_store_retention_in_txn(rtxn->txn, store, list.names[i], &durations[i]);
	}
	vg_rtxn_end(rtxn);
	for (size_t i = 0; code == 0 && i < list.len; i++) {
		if (durations[i] <= 0)
			continue;
		int64_t cutoff = now_ns - durations[i];
		if (cutoff > now_ns) /* underflow */
			cutoff = INT64_MIN;
		code = expire_measurement(store, list.names[i], cutoff, &count);
	}
	vg_free(durations);
	vg_free(list.names);
	vg_buf_release(&list.text);
	if (removed)
		*removed = count;
	return code;
}
