/*
 * series.c — the series index: series keys to ids and back, the tag
 * postings, and the listings of measurements, tags and fields.
 *
 * Canonical key (the value stored under an id):
 *
 *   u8 ntags | measurement 0x00 | field 0x00 | (key 0x00 value 0x00) * ntags
 *
 * with the tags sorted by key bytes.  Names and values never contain 0x00,
 * so the layout is unambiguous.  Example: cpu,host=a usage=1 ->
 * 01 "cpu" 00 "usage" 00 "host" 00 "a" 00.
 *
 * The `ids` record of most series is not their whole canonical key but what
 * differs from that of a nearby series (see "ids records" below): a series
 * of `cpu,host=h7 usage_user` created after `cpu,host=h7 usage_idle` takes
 * a few bytes instead of a few dozen.
 *
 * Keys to ids: LMDB keys are at most 511 bytes and a series key may be far
 * longer, so the `series` database holds hashes: under the 32-bit hash of
 * the series' entity — its measurement and its tags but the last (the only
 * one, if one) — an 8-byte duplicate per series, the 32-bit hash of the
 * whole canonical key then the id (series_hash_key).  A lookup compares the
 * canonical key stored under each candidate id, so collisions are harmless.
 *
 * Why entities.  Series that are created together mostly belong to one new
 * entity (a host and its metrics, a patient and their vitals).  Under one
 * 64-bit hash of the whole key each new series landed on a leaf page of its
 * own: at 1 M series a transaction creating 64 k series dirtied (copied,
 * wrote out and kept in LMDB's page pool) every one of the ~7,900 leaves.
 * Under the entity's hash an entity's series share one node, whose fixed-
 * size duplicates LMDB packs as a bare array (8 bytes a series, against a
 * 22-byte node each before).  The order is a coarse version of the sorted
 * series indexes of other stores (measurement, then tags).  Nothing depends
 * on it but speed and size.
 *
 * Postings keys embed the tag value; a value too long for a key is cut and
 * followed by 0xFF (a byte that never occurs in UTF-8) and its 64-bit hash,
 * so equal long values still share a key.  Listings that meet such a key
 * read the full value back from one of its series.
 *
 * The postings of the series a write transaction creates are not put one by
 * one: four or more dupsort puts per series, each a B-tree descent, were
 * half of the writer's cost of a new series.  They are gathered per key
 * (struct vg_postings_pending) and put at commit with one MDB_MULTIPLE put
 * per key: a batch of 1,000 series of one measurement makes ~100 puts, not
 * 4,000.  Nothing reads postings through a write transaction, and the one
 * writer path that deletes them (vg_series_unindex) flushes first.
 */
#include "store_int.h"

#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_hash.h"

#include <stdlib.h>
#include <string.h>

#define VG_LMDB_KEY_MAX 511


static bool has_nul(vg_str_t s) { return s.len && memchr(s.data, 0, s.len) != NULL; }

static bool name_ok(vg_str_t s) { return s.len >= 1 && s.len <= VG_STORE_NAME_MAX && !has_nul(s); }

static int compare_tags(const void *a, const void *b)
{
	const vg_tag_t *x = *(const vg_tag_t *const *)a, *y = *(const vg_tag_t *const *)b;
	size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
	int c = memcmp(x->key.data, y->key.data, n);
	return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/*
 * The hashes of canonical key ck (len bytes) into hk: big-endian
 * hash32(entity), the `series` key, then hash32(ck), which begins the
 * duplicate; the entity is the measurement (m_len bytes at ck + 1) and the
 * tags in [tags_off, entity_end): all but the last (the only one, if one).
 * See the top of the file.
 */
static void series_hash_key(const uint8_t *ck, size_t len, size_t m_len, size_t tags_off,
			    size_t entity_end, uint8_t hk[8])
{
	uint64_t entity = vg_hash64(ck + 1, m_len) ^
	                  (vg_hash64(ck + tags_off, entity_end - tags_off) *
	                   UINT64_C(0x9E3779B97F4A7C15));
	vg_store_be32(hk, (uint32_t)(entity >> 32));
	vg_store_be32(hk + 4, (uint32_t)vg_hash64(ck, len));
}

/* Validates key and builds its canonical form into out (replaced) and its
 * `series` key into hk. */
static int canonical_key(const vg_series_key_t *key, vg_buf_t *out, uint8_t hk[8])
{
	if (!name_ok(key->measurement) || !name_ok(key->field) || key->ntags > VG_STORE_MAX_TAGS)
		return VG_EINVAL;
	const vg_tag_t *sorted[VG_STORE_MAX_TAGS];
	for (size_t i = 0; i < key->ntags; i++) {
		const vg_tag_t *t = &key->tags[i];
		if (!name_ok(t->key) || t->value.len < 1 || t->value.len > VG_STORE_TAG_VALUE_MAX ||
		    has_nul(t->value))
			return VG_EINVAL;
		sorted[i] = t;
	}
	/* Usually a handful of tags: insertion sort, which beats qsort's call
	 * overhead there (this runs for every write of every series). */
	if (key->ntags > 16) {
		qsort(sorted, key->ntags, sizeof sorted[0], compare_tags);
	} else {
		for (size_t i = 1; i < key->ntags; i++) {
			const vg_tag_t *t = sorted[i];
			size_t j = i;
			while (j > 0 && compare_tags(&sorted[j - 1], &t) > 0) {
				sorted[j] = sorted[j - 1];
				j--;
			}
			sorted[j] = t;
		}
	}
	size_t total = 3 + key->measurement.len + key->field.len;
	for (size_t i = 0; i < key->ntags; i++) {
		if (i > 0 && compare_tags(&sorted[i - 1], &sorted[i]) == 0)
			return VG_EINVAL;
		total += sorted[i]->key.len + sorted[i]->value.len + 2;
	}
	/* Sized once, then copied (lengths are bounded above: no overflow). */
	vg_buf_clear(out);
	int code = vg_buf_reserve(out, total);
	if (code)
		return code;
	uint8_t *p = out->data;
	*p++ = (uint8_t)key->ntags;
	memcpy(p, key->measurement.data, key->measurement.len);
	p += key->measurement.len;
	*p++ = 0;
	memcpy(p, key->field.data, key->field.len);
	p += key->field.len;
	*p++ = 0;
	for (size_t i = 0; i < key->ntags; i++) {
		memcpy(p, sorted[i]->key.data, sorted[i]->key.len);
		p += sorted[i]->key.len;
		*p++ = 0;
		memcpy(p, sorted[i]->value.data, sorted[i]->value.len);
		p += sorted[i]->value.len;
		*p++ = 0;
	}
	out->len = total;
	size_t tags_off = 3 + key->measurement.len + key->field.len, entity_end = total;
	if (key->ntags >= 2) {
		const vg_tag_t *last = sorted[key->ntags - 1];
		entity_end -= last->key.len + last->value.len + 2;
	}
	series_hash_key(out->data, total, key->measurement.len, tags_off, entity_end, hk);
	return 0;
}

/* Scans one 0x00-terminated field of a canonical key. */
static int next_part(const uint8_t **p, const uint8_t *end, vg_str_t *part)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	if (!nul)
		return VG_ECORRUPT;
	part->data = (const char *)*p;
	part->len = (size_t)(nul - *p);
	*p = nul + 1;
	return 0;
}

int vg_series_decode(const uint8_t *data, size_t len, vg_series_desc_t *desc)
{
	if (len < 1 || data[0] > VG_STORE_MAX_TAGS)
		return VG_ECORRUPT;
	const uint8_t *p = data + 1, *end = data + len;
	desc->ntags = data[0];
	int code = next_part(&p, end, &desc->measurement);
	code = code ? code : next_part(&p, end, &desc->field);
	for (size_t i = 0; i < desc->ntags && !code; i++) {
		code = next_part(&p, end, &desc->tags[i].key);
		code = code ? code : next_part(&p, end, &desc->tags[i].value);
	}
	if (code == 0 && p != end)
		code = VG_ECORRUPT;
	return code;
}

/* ---- postings keys --------------------------------------------------- */

typedef struct {
	uint8_t bytes[VG_LMDB_KEY_MAX];
	size_t len;
} pkey_t;

static void pkey_measurement(pkey_t *k, vg_str_t m)
{
	k->bytes[0] = 'M';
	memcpy(k->bytes + 1, m.data, m.len);
	k->len = 1 + m.len;
}

/* 'F' m 0 f, or with f empty the prefix of every field of m. */
static void pkey_field(pkey_t *k, vg_str_t m, vg_str_t f)
{
	k->bytes[0] = 'F';
	memcpy(k->bytes + 1, m.data, m.len);
	k->bytes[1 + m.len] = 0;
	if (f.len)
		memcpy(k->bytes + 2 + m.len, f.data, f.len);
	k->len = 2 + m.len + f.len;
}

/* 'T' m 0 key 0 value (value possibly cut + 0xFF + hash).  With value NULL:
 * the prefix of all values of key. */
static void pkey_tag(pkey_t *k, vg_str_t m, vg_str_t key, const vg_str_t *value)
{
	uint8_t *p = k->bytes;
	*p++ = 'T';
	memcpy(p, m.data, m.len);
	p += m.len;
	*p++ = 0;
	memcpy(p, key.data, key.len);
	p += key.len;
	*p++ = 0;
	if (value) {
		size_t room = VG_LMDB_KEY_MAX - (size_t)(p - k->bytes);
		if (value->len <= room) {
			memcpy(p, value->data, value->len);
			p += value->len;
		} else {
			size_t cut = room - 9;
			memcpy(p, value->data, cut);
			p += cut;
			*p++ = 0xFF;
			vg_store_be64(p, vg_hash64((const uint8_t *)value->data, value->len));
			p += 8;
		}
	}
	k->len = (size_t)(p - k->bytes);
}

static int posting_del(MDB_txn *txn, MDB_dbi dbi, const pkey_t *k, vg_series_id_t id)
{
	uint8_t v[4];
	vg_store_be32(v, id);
	MDB_val key = {k->len, (void *)k->bytes}, val = {4, v};
	int rc = mdb_del(txn, dbi, &key, &val);
	return rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
}

/* Every id under one postings key, appended to out (kept sorted if out was
 * empty or all its ids are smaller). */
static int posting_read(MDB_cursor *cur, const pkey_t *k, vg_idset_t *out)
{
	MDB_val key = {k->len, (void *)k->bytes}, val;
	int rc = mdb_cursor_get(cur, &key, &val, MDB_SET);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0)
		rc = mdb_cursor_get(cur, &key, &val, MDB_GET_MULTIPLE);
	while (rc == 0) {
		if (val.mv_size % 4)
			return VG_ECORRUPT;
		size_t n = val.mv_size / 4;
		if (out->len + n > out->cap) {
			size_t cap = out->cap ? out->cap : 64;
			while (cap < out->len + n)
				cap *= 2;
			vg_series_id_t *ids = vg_reallocarray(out->ids, cap, sizeof *ids);
			if (!ids)
				return VG_ENOMEM;
			out->ids = ids;
			out->cap = cap;
		}
		const uint8_t *p = val.mv_data;
		for (size_t i = 0; i < n; i++)
			out->ids[out->len++] = vg_load_be32(p + 4 * i);
		rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT_MULTIPLE);
	}
	return rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
}

/* ---- ids records ----------------------------------------------------- */

/*
 * A series' record in `ids` is either its canonical key ("full"; the first
 * byte is the tag count, at most VG_STORE_MAX_TAGS), or a record that
 * shares parts with the full record of a reference series ("shared"):
 *
 *   0xFF | varint (id - ref) | mask | own parts, each 0x00-terminated
 *
 * The parts of a key are its measurement, its field, then each tag's key
 * and value (n tags, in canonical order); the reference has the same n, and
 * bit i of mask (ceil((2 + 2n) / 8) bytes, bit 0 the low bit of the first)
 * says that part i is the reference's; the other parts follow in order.  A
 * new series takes as its reference the series whose id is its own rounded
 * down to a multiple of IDS_GROUP, when that one's record is full and has
 * as many tags (creation writes full records at those ids); consecutive
 * series of one agent share their measurement, most tags and the tag keys.
 * Dropping a reference series first writes its dependents out in full.
 * Decoded parts point into the two records, both in the map, so a
 * description costs no copy.
 */
#define IDS_SHARED 0xFF
#define IDS_GROUP 16

static inline bool ids_part_bit(const uint8_t *mask, size_t i) { return mask[i / 8] >> (i % 8) & 1; }

static vg_str_t *desc_part(vg_series_desc_t *d, size_t i)
{
	if (i == 0)
		return &d->measurement;
	if (i == 1)
		return &d->field;
	i -= 2;
	return i % 2 ? &d->tags[i / 2].value : &d->tags[i / 2].key;
}

/* Part i of d, read only. */
static vg_str_t desc_get(const vg_series_desc_t *d, size_t i)
{
	return *desc_part((vg_series_desc_t *)d, i);
}

static bool str_eq(vg_str_t a, vg_str_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* The reference of shared record rec (first byte IDS_SHARED) of series id:
 * one byte of offset, since it is less than IDS_GROUP. */
static int ids_shared_ref(const MDB_val *rec, vg_series_id_t id, vg_series_id_t *ref)
{
	const uint8_t *p = rec->mv_data;
	if (rec->mv_size < 2 || p[1] == 0 || p[1] >= 0x80 || p[1] > id)
		return VG_ECORRUPT;
	*ref = id - p[1];
	return 0;
}

/* Decodes shared record rec given its reference's (full) record ref. */
static int ids_shared_decode(const MDB_val *rec, const uint8_t *ref, size_t ref_len,
			     vg_series_desc_t *desc)
{
	if (ref_len < 1 || ref[0] == IDS_SHARED)
		return VG_ECORRUPT;
	int code = vg_series_decode(ref, ref_len, desc);
	if (code)
		return code;
	const uint8_t *p = rec->mv_data, *end = p + rec->mv_size;
	size_t parts = 2 + 2 * desc->ntags, mask_len = (parts + 7) / 8;
	const uint8_t *mask = p + 2;
	if ((size_t)(end - mask) < mask_len)
		return VG_ECORRUPT;
	p = mask + mask_len;
	for (size_t i = 0; i < parts && code == 0; i++)
		if (!ids_part_bit(mask, i))
			code = next_part(&p, end, desc_part(desc, i));
	if (code == 0 && p != end)
		code = VG_ECORRUPT;
	return code;
}

static bool ids_is_shared(const MDB_val *rec)
{
	return rec->mv_size >= 1 && ((const uint8_t *)rec->mv_data)[0] == IDS_SHARED;
}

/* Decodes the `ids` record rec of series id into desc (views into the
 * records of the map). */
static int ids_record_decode(MDB_txn *txn, vg_store_t *store, vg_series_id_t id,
			     const MDB_val *rec, vg_series_desc_t *desc)
{
	if (!ids_is_shared(rec))
		return vg_series_decode(rec->mv_data, rec->mv_size, desc);
	vg_series_id_t ref;
	int code = ids_shared_ref(rec, id, &ref);
	if (code)
		return code;
	MDB_val rk = {sizeof ref, &ref}, rv;
	int rc = mdb_get(txn, store->dbi_ids, &rk, &rv);
	if (rc)
		return rc == MDB_NOTFOUND ? VG_ECORRUPT : vg_store_lmdb_error(rc);
	return ids_shared_decode(rec, rv.mv_data, rv.mv_size, desc);
}

/* The `ids` record of series id through *cur, a cursor kept for the
 * transaction (opened here on first use): the ids a writer names one after
 * another, and those a query describes, are mostly on one page, which the
 * cursor searches without descending from the root. */
static int cursor_ids_get(MDB_txn *txn, vg_store_t *store, MDB_cursor **cur, vg_series_id_t id,
			  MDB_val *rec)
{
	if (!*cur) {
		int rc = mdb_cursor_open(txn, store->dbi_ids, cur);
		if (rc) {
			*cur = NULL;
			return vg_store_lmdb_error(rc);
		}
	}
	MDB_val k = {sizeof id, &id};
	return vg_store_lmdb_error(mdb_cursor_get(*cur, &k, rec, MDB_SET_KEY));
}

static int ids_get(vg_wtxn_t *txn, vg_series_id_t id, MDB_val *rec)
{
	return cursor_ids_get(txn->txn, txn->store, &txn->ids_cur, id, rec);
}

/* The full record of reference series ref, copied — the transaction's puts
 * may move its page — and kept for the next series that shares it. */
static int ids_ref(vg_wtxn_t *txn, vg_series_id_t ref, MDB_val *out)
{
	if (!txn->ref_cached || txn->ref_id != ref) {
		txn->ref_cached = false;
		MDB_val rv;
		int code = ids_get(txn, ref, &rv);
		if (code == 0 && (rv.mv_size < 1 || ids_is_shared(&rv)))
			code = VG_ECORRUPT;
		if (code == 0) {
			vg_buf_clear(&txn->ref_key);
			code = vg_buf_append(&txn->ref_key, rv.mv_data, rv.mv_size);
		}
		if (code)
			return code;
		txn->ref_id = ref;
		txn->ref_cached = true;
	}
	*out = (MDB_val){txn->ref_key.len, txn->ref_key.data};
	return 0;
}

/* Writes into out the record of a new series with canonical key ck (which
 * decodes into key) whose reference, `delta` ids before it, is described
 * by ref; a full record when sharing saves nothing. */
static int ids_record_encode(const vg_buf_t *ck, const vg_series_desc_t *key,
			     const vg_series_desc_t *ref, unsigned delta, vg_buf_t *out)
{
	vg_buf_clear(out);
	size_t parts = 2 + 2 * key->ntags, mask_len = (parts + 7) / 8;
	if (!ref || ref->ntags != key->ntags)
		return vg_buf_append(out, ck->data, ck->len);
	int code = vg_buf_reserve(out, 2 + mask_len + ck->len);
	if (code)
		return code;
	uint8_t *p = out->data;
	*p++ = IDS_SHARED;
	*p++ = (uint8_t)delta;
	uint8_t *mask = p;
	memset(mask, 0, mask_len);
	p += mask_len;
	for (size_t i = 0; i < parts; i++) {
		vg_str_t mine = desc_get(key, i);
		if (str_eq(mine, desc_get(ref, i))) {
			mask[i / 8] |= (uint8_t)(1u << (i % 8));
		} else {
			memcpy(p, mine.data, mine.len);
			p += mine.len;
			*p++ = 0;
		}
	}
	out->len = (size_t)(p - out->data);
	if (out->len >= ck->len) {
		vg_buf_clear(out);
		return vg_buf_append(out, ck->data, ck->len);
	}
	return 0;
}

/* Whether desc is the series of canonical key ck. */
static bool desc_is(const vg_series_desc_t *desc, const vg_buf_t *ck)
{
	vg_series_desc_t want;
	if (vg_series_decode(ck->data, ck->len, &want) || want.ntags != desc->ntags)
		return false;
	for (size_t i = 0; i < 2 + 2 * want.ntags; i++)
		if (!str_eq(desc_get(&want, i), desc_get(desc, i)))
			return false;
	return true;
}

/* Whether the `ids` record rec of series id holds canonical key ck: 1, 0,
 * or an error. */
static int ids_record_is(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, const MDB_val *rec,
			 const vg_buf_t *ck)
{
	if (rec->mv_size < 1 || ((const uint8_t *)rec->mv_data)[0] != IDS_SHARED)
		return rec->mv_size == ck->len && memcmp(rec->mv_data, ck->data, ck->len) == 0;
	vg_series_desc_t desc;
	int code = ids_record_decode(txn, store, id, rec, &desc);
	return code ? code : desc_is(&desc, ck);
}

/* ids_record_is() in a write transaction, through its cursor and its copy
 * of the last reference record. */
static int wtxn_record_is(vg_wtxn_t *txn, vg_series_id_t id, const MDB_val *rec,
			  const vg_buf_t *ck)
{
	if (!ids_is_shared(rec))
		return rec->mv_size == ck->len && memcmp(rec->mv_data, ck->data, ck->len) == 0;
	vg_series_id_t ref;
	MDB_val rv;
	vg_series_desc_t desc;
	int code = ids_shared_ref(rec, id, &ref);
	code = code ? code : ids_ref(txn, ref, &rv);
	code = code ? code : ids_shared_decode(rec, rv.mv_data, rv.mv_size, &desc);
	return code ? code : desc_is(&desc, ck);
}

/* ---- lookup and creation --------------------------------------------- */

/* Finds the id of canonical key `ck` (hashes hk) with cur, a cursor on the
 * `series` database: 0, VG_ENOTFOUND or an error.  The writer puts a new
 * series through the same cursor, which LMDB then searches from the page
 * this lookup ended on when the key falls within it. */
static int find_canonical(MDB_cursor *cur, vg_store_t *store, const vg_buf_t *ck,
			  const uint8_t hk[8], vg_series_id_t *id)
{
	MDB_txn *txn = mdb_cursor_txn(cur);
	uint8_t probe[8];
	memcpy(probe, hk + 4, 4);
	memset(probe + 4, 0, 4);
	MDB_val key = {4, (void *)hk}, val = {8, probe};
	/* The first of the entity's series at or after the key's hash. */
	int rc = mdb_cursor_get(cur, &key, &val, MDB_GET_BOTH_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT_DUP)) {
		if (val.mv_size != 8)
			return VG_ECORRUPT;
		if (memcmp(val.mv_data, hk + 4, 4) != 0)
			return VG_ENOTFOUND; /* past the key's hash */
		/* This hash (another key's, on a collision): compare the keys. */
		vg_series_id_t candidate = vg_load_be32((const uint8_t *)val.mv_data + 4);
		MDB_val ik = {sizeof candidate, &candidate}, iv;
		int rc2 = mdb_get(txn, store->dbi_ids, &ik, &iv);
		if (rc2)
			return vg_store_lmdb_error(rc2);
		int is = ids_record_is(txn, store, candidate, &iv, ck);
		if (is < 0)
			return is;
		if (is) {
			*id = candidate;
			return 0;
		}
	}
	return rc == MDB_NOTFOUND ? VG_ENOTFOUND : vg_store_lmdb_error(rc);
}

/* ---- deferred postings ----------------------------------------------- */

/* One postings key of the transaction and its new ids, in creation (so
 * increasing) order: a chain through the entries. */
typedef struct pp_group {
	uint64_t hash;
	uint32_t key_off, key_len; /* in keys */
	uint32_t first, last;      /* entry indexes */
	uint32_t count;
	const uint8_t *key;        /* set at flush, when keys no longer moves */
} pp_group_t;

typedef struct pp_entry {
	vg_series_id_t id;
	uint32_t next; /* next entry of the same key, or UINT32_MAX */
} pp_entry_t;

struct vg_postings_pending {
	vg_buf_t keys;      /* the groups' key bytes, back to back */
	pp_group_t *groups;
	size_t ngroups, groups_cap;
	uint32_t *table;    /* open addressing: group index + 1, 0 = empty */
	size_t table_cap;   /* a power of two, > 2 x ngroups */
	pp_entry_t *entries;
	size_t nentries, entries_cap;
	uint8_t *ids;       /* flush scratch: one key's ids, big-endian */
	size_t ids_cap;
};

void vg_series_pending_free(vg_wtxn_t *txn)
{
	struct vg_postings_pending *pp = txn->pending;
	if (!pp)
		return;
	vg_buf_release(&pp->keys);
	vg_free(pp->groups);
	vg_free(pp->table);
	vg_free(pp->entries);
	vg_free(pp->ids);
	vg_free(pp);
	txn->pending = NULL;
}

static int pending_rehash(struct vg_postings_pending *pp)
{
	size_t cap = pp->table_cap ? pp->table_cap * 2 : 256;
	uint32_t *table = vg_calloc(cap, sizeof *table);
	if (!table)
		return VG_ENOMEM;
	for (size_t g = 0; g < pp->ngroups; g++) {
		size_t i = (size_t)pp->groups[g].hash & (cap - 1);
		while (table[i])
			i = (i + 1) & (cap - 1);
		table[i] = (uint32_t)g + 1;
	}
	vg_free(pp->table);
	pp->table = table;
	pp->table_cap = cap;
	return 0;
}

/* Records that id goes under postings key k. */
static int pending_add(vg_wtxn_t *txn, const pkey_t *k, vg_series_id_t id)
{
	struct vg_postings_pending *pp = txn->pending;
	if (!pp) {
		pp = vg_calloc(1, sizeof *pp);
		if (!pp)
			return VG_ENOMEM;
		txn->pending = pp;
	}
	if (pp->nentries >= UINT32_MAX - 1 || pp->keys.len > UINT32_MAX - VG_LMDB_KEY_MAX)
		return VG_ELIMIT;
	if (pp->nentries == pp->entries_cap) {
		size_t cap = pp->entries_cap ? pp->entries_cap * 2 : 1024;
		pp_entry_t *e = vg_reallocarray(pp->entries, cap, sizeof *e);
		if (!e)
			return VG_ENOMEM;
		pp->entries = e;
		pp->entries_cap = cap;
	}
	if (2 * (pp->ngroups + 1) >= pp->table_cap) {
		int code = pending_rehash(pp);
		if (code)
			return code;
	}
	uint64_t h = vg_hash64(k->bytes, k->len);
	size_t i = (size_t)h & (pp->table_cap - 1);
	pp_group_t *g = NULL;
	for (; pp->table[i]; i = (i + 1) & (pp->table_cap - 1)) {
		pp_group_t *c = &pp->groups[pp->table[i] - 1];
		if (c->hash == h && c->key_len == k->len &&
		    memcmp(pp->keys.data + c->key_off, k->bytes, k->len) == 0) {
			g = c;
			break;
		}
	}
	uint32_t e = (uint32_t)pp->nentries;
	if (!g) {
		if (pp->ngroups == pp->groups_cap) {
			size_t cap = pp->groups_cap ? pp->groups_cap * 2 : 64;
			pp_group_t *groups = vg_reallocarray(pp->groups, cap, sizeof *groups);
			if (!groups)
				return VG_ENOMEM;
			pp->groups = groups;
			pp->groups_cap = cap;
		}
		uint32_t off = (uint32_t)pp->keys.len;
		int code = vg_buf_append(&pp->keys, k->bytes, k->len);
		if (code)
			return code;
		g = &pp->groups[pp->ngroups];
		*g = (pp_group_t){.hash = h, .key_off = off, .key_len = (uint32_t)k->len,
		                  .first = e, .last = e, .count = 0};
		pp->table[i] = (uint32_t)pp->ngroups + 1;
		pp->ngroups++;
	} else {
		pp->entries[g->last].next = e;
		g->last = e;
	}
	pp->entries[e] = (pp_entry_t){id, UINT32_MAX};
	pp->nentries++;
	g->count++;
	return 0;
}

static int compare_groups(const void *a, const void *b)
{
	const pp_group_t *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Puts one key's ids (increasing, all new): one MDB_MULTIPLE put that
 * appends them (ids are handed out in increasing order, so a new id is the
 * last duplicate of its key and MDB_APPENDDUP skips searching the
 * duplicates), or, should any not sort after the key's present ids
 * (MDB_KEYEXIST), the rest one by one. */
static int flush_group(MDB_cursor *cur, const pp_group_t *g, uint8_t *ids)
{
	MDB_val key = {g->key_len, (void *)g->key};
	MDB_val data[2] = {{4, ids}, {g->count, NULL}};
	int rc = mdb_cursor_put(cur, &key, data, MDB_MULTIPLE | MDB_APPENDDUP);
	if (rc != MDB_KEYEXIST)
		return vg_store_lmdb_error(rc);
	size_t done = data[1].mv_size;
	for (size_t i = done; i < g->count; i++) {
		MDB_val val = {4, ids + 4 * i};
		rc = mdb_cursor_put(cur, &key, &val, 0);
		if (rc)
			return vg_store_lmdb_error(rc);
	}
	return 0;
}

int vg_series_flush_postings(vg_wtxn_t *txn)
{
	struct vg_postings_pending *pp = txn->pending;
	if (!pp || pp->ngroups == 0)
		return 0;
	for (size_t g = 0; g < pp->ngroups; g++)
		pp->groups[g].key = pp->keys.data + pp->groups[g].key_off;
	/* In key order, so that consecutive puts mostly land on the page the
	 * cursor is already on. */
	qsort(pp->groups, pp->ngroups, sizeof pp->groups[0], compare_groups);
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	int code = 0;
	for (size_t g = 0; g < pp->ngroups && code == 0; g++) {
		const pp_group_t *grp = &pp->groups[g];
		if (grp->count > pp->ids_cap) {
			uint8_t *ids = vg_reallocarray(pp->ids, grp->count, 4);
			if (!ids) {
				code = VG_ENOMEM;
				break;
			}
			pp->ids = ids;
			pp->ids_cap = grp->count;
		}
		size_t n = 0;
		for (uint32_t e = grp->first; e != UINT32_MAX; e = pp->entries[e].next)
			vg_store_be32(pp->ids + 4 * n++, pp->entries[e].id);
		code = flush_group(cur, grp, pp->ids);
	}
	mdb_cursor_close(cur);
	if (code)
		return code;
	/* Emptied, capacity kept (a transaction may create more series). */
	vg_buf_clear(&pp->keys);
	pp->ngroups = 0;
	pp->nentries = 0;
	memset(pp->table, 0, pp->table_cap * sizeof pp->table[0]);
	return 0;
}

/* Defers the postings of a new series (see the top of the file). */
static int index_new_series(vg_wtxn_t *txn, vg_series_id_t id, const vg_series_desc_t *d)
{
	pkey_t k;
	pkey_measurement(&k, d->measurement);
	int code = pending_add(txn, &k, id);
	if (code == 0) {
		pkey_field(&k, d->measurement, d->field);
		code = pending_add(txn, &k, id);
	}
	for (size_t i = 0; i < d->ntags && code == 0; i++) {
		pkey_tag(&k, d->measurement, d->tags[i].key, &d->tags[i].value);
		code = pending_add(txn, &k, id);
	}
	return code;
}

/* Deletes the postings of series id (flushed first). */
static int unindex_postings(MDB_txn *txn, vg_store_t *store, vg_series_id_t id,
			    const vg_series_desc_t *d)
{
	int (*op)(MDB_txn *, MDB_dbi, const pkey_t *, vg_series_id_t) = posting_del;
	pkey_t k;
	pkey_measurement(&k, d->measurement);
	int code = op(txn, store->dbi_postings, &k, id);
	if (code == 0) {
		pkey_field(&k, d->measurement, d->field);
		code = op(txn, store->dbi_postings, &k, id);
	}
	for (size_t i = 0; i < d->ntags && code == 0; i++) {
		pkey_tag(&k, d->measurement, d->tags[i].key, &d->tags[i].value);
		code = op(txn, store->dbi_postings, &k, id);
	}
	return code;
}

/*
 * Writers name their series in a steady order, mostly the order they were
 * created in: an agent reports the same series in the same order every
 * time.  So the series after the one resolved last is tried first, by its
 * `ids` record — a page the previous lookup has just read — before the
 * hash lookup, whose page is a random one of the `series` database (at a
 * million series, a cache miss per level).  After a wrong guess the next
 * few lookups go straight to the hash, then guessing is tried again, so a
 * writer in random order pays one extra lookup in eight.
 */
#define GUESS_PAUSE 8

static bool guess_next_series(vg_wtxn_t *txn, const vg_buf_t *ck, vg_series_id_t *id)
{
	if (!txn->has_last || txn->last_series + 1 >= txn->store->next_id)
		return false;
	if (txn->guess_misses > 0 && ++txn->guess_misses <= GUESS_PAUSE)
		return false;
	vg_series_id_t next = txn->last_series + 1;
	MDB_val iv;
	if (ids_get(txn, next, &iv) == 0 && wtxn_record_is(txn, next, &iv, ck) == 1) {
		txn->guess_misses = 0;
		*id = next;
		return true;
	}
	txn->guess_misses = 1;
	return false;
}

static void resolved(vg_wtxn_t *txn, vg_series_id_t id)
{
	txn->last_series = id;
	txn->has_last = true;
}

int vg_wtxn_series(vg_wtxn_t *txn, const vg_series_key_t *key, vg_series_id_t *id, bool *created)
{
	vg_store_t *store = txn->store;
	uint8_t hk[8];
	int code = canonical_key(key, &txn->scratch, hk);
	if (code)
		return code;
	if (created)
		*created = false;
	if (guess_next_series(txn, &txn->scratch, id)) {
		resolved(txn, *id);
		return 0;
	}
	if (!txn->series_cur) {
		int rc = mdb_cursor_open(txn->txn, store->dbi_series, &txn->series_cur);
		if (rc)
			return vg_store_lmdb_error(rc);
	}
	code = find_canonical(txn->series_cur, store, &txn->scratch, hk, id);
	if (code == 0)
		resolved(txn, *id);
	if (code != VG_ENOTFOUND)
		return code;
	if (store->next_id == UINT32_MAX)
		return VG_ELIMIT;
	vg_series_id_t new_id = store->next_id;
	vg_series_desc_t desc, ref_desc;
	const vg_series_desc_t *ref = NULL;
	code = vg_series_decode(txn->scratch.data, txn->scratch.len, &desc);
	if (code)
		return code;
	unsigned delta = new_id % IDS_GROUP;
	if (delta) {
		/* A reference that is gone or damaged leaves the record full. */
		MDB_val rv;
		code = ids_ref(txn, new_id - delta, &rv);
		if (code == 0 && vg_series_decode(rv.mv_data, rv.mv_size, &ref_desc) == 0)
			ref = &ref_desc;
		else if (code != 0 && code != VG_ENOTFOUND && code != VG_ECORRUPT)
			return code;
	}
	code = ids_record_encode(&txn->scratch, &desc, ref, delta, &txn->record);
	if (code)
		return code;
	MDB_val ik = {sizeof new_id, &new_id}, iv = {txn->record.len, txn->record.data};
	int rc = mdb_put(txn->txn, store->dbi_ids, &ik, &iv, MDB_APPEND);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t dup[8];
	memcpy(dup, hk + 4, 4);
	vg_store_be32(dup + 4, new_id);
	MDB_val sk = {4, hk}, sv = {8, dup};
	rc = mdb_cursor_put(txn->series_cur, &sk, &sv, 0);
	if (rc)
		return vg_store_lmdb_error(rc);
	code = index_new_series(txn, new_id, &desc);
	code = code ? code : vg_wtxn_head_touch(txn, new_id);
	if (code)
		return code;
	store->next_id++;
	*id = new_id;
	resolved(txn, new_id);
	if (created)
		*created = true;
	return 0;
}

/* Builds the canonical key of desc into out (replaced). */
static int desc_canonical(const vg_series_desc_t *desc, vg_buf_t *out)
{
	vg_series_key_t key = {desc->measurement, desc->tags, desc->ntags, desc->field};
	uint8_t hk[8];
	return canonical_key(&key, out, hk);
}

/* Writes in full the records that share parts with series ref's (before
 * it goes). */
static int ids_unshare(vg_wtxn_t *txn, vg_series_id_t ref)
{
	vg_store_t *store = txn->store;
	for (vg_series_id_t id = ref + 1; id < ref + IDS_GROUP && id < store->next_id; id++) {
		MDB_val ik = {sizeof id, &id}, iv;
		int rc = mdb_get(txn->txn, store->dbi_ids, &ik, &iv);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc)
			return vg_store_lmdb_error(rc);
		const uint8_t *p = iv.mv_data;
		if (iv.mv_size < 2 || p[0] != IDS_SHARED || id - p[1] != ref)
			continue;
		vg_series_desc_t desc;
		int code = ids_record_decode(txn->txn, store, id, &iv, &desc);
		code = code ? code : desc_canonical(&desc, &txn->record);
		if (code)
			return code;
		iv = (MDB_val){txn->record.len, txn->record.data};
		rc = mdb_put(txn->txn, store->dbi_ids, &ik, &iv, 0);
		if (rc)
			return vg_store_lmdb_error(rc);
	}
	return 0;
}

/* The `series` key of canonical key ck (len bytes), decoded into desc. */
static void decoded_hash_key(const uint8_t *ck, size_t len, const vg_series_desc_t *desc,
			     uint8_t hk[8])
{
	/* The bounds of the entity, from the decoded parts. */
	size_t tags_off = desc->ntags ? (size_t)((const uint8_t *)desc->tags[0].key.data - ck) : len;
	size_t entity_end =
	    desc->ntags >= 2 ? (size_t)((const uint8_t *)desc->tags[desc->ntags - 1].key.data - ck)
			     : len;
	series_hash_key(ck, len, desc->measurement.len, tags_off, entity_end, hk);
}

int vg_series_unindex(vg_wtxn_t *txn, vg_series_id_t id)
{
	vg_store_t *store = txn->store;
	int flushed = vg_series_flush_postings(txn);
	if (flushed)
		return flushed;
	txn->ref_cached = false;
	int code = id % IDS_GROUP == 0 ? ids_unshare(txn, id) : 0;
	if (code)
		return code;
	MDB_val ik = {sizeof id, &id}, iv;
	int rc = mdb_get(txn->txn, store->dbi_ids, &ik, &iv);
	if (rc)
		return vg_store_lmdb_error(rc);
	/* The canonical key, copied: the records live in pages this
	 * transaction is about to change. */
	vg_series_desc_t desc;
	code = ids_record_decode(txn->txn, store, id, &iv, &desc);
	code = code ? code : desc_canonical(&desc, &txn->scratch);
	code = code ? code : vg_series_decode(txn->scratch.data, txn->scratch.len, &desc);
	code = code ? code : unindex_postings(txn->txn, store, id, &desc);
	if (code)
		return code;
	uint8_t hk[8];
	decoded_hash_key(txn->scratch.data, txn->scratch.len, &desc, hk);
	uint8_t dup[8];
	memcpy(dup, hk + 4, 4);
	vg_store_be32(dup + 4, id);
	MDB_val sk = {4, hk}, sv = {8, dup};
	rc = mdb_del(txn->txn, store->dbi_series, &sk, &sv);
	if (rc == 0)
		rc = mdb_del(txn->txn, store->dbi_ids, &ik, NULL);
	return vg_store_lmdb_error(rc);
}

int vg_rtxn_series_find(vg_rtxn_t *txn, const vg_series_key_t *key, vg_series_id_t *id)
{
	vg_buf_t ck = VG_BUF_INIT;
	uint8_t hk[8];
	int code = canonical_key(key, &ck, hk);
	MDB_cursor *cur = NULL;
	if (code == 0)
		code = vg_store_lmdb_error(mdb_cursor_open(txn->txn, txn->store->dbi_series, &cur));
	if (code == 0)
		code = find_canonical(cur, txn->store, &ck, hk, id);
	if (cur)
		mdb_cursor_close(cur);
	vg_buf_release(&ck);
	return code;
}

static int rtxn_ids_get(vg_rtxn_t *txn, vg_series_id_t id, MDB_val *rec)
{
	return cursor_ids_get(txn->txn, txn->store, &txn->ids_cur, id, rec);
}

int vg_rtxn_series_describe(vg_rtxn_t *txn, vg_series_id_t id, vg_series_desc_t *desc)
{
	MDB_val iv;
	int code = rtxn_ids_get(txn, id, &iv);
	if (code)
		return code;
	if (!ids_is_shared(&iv))
		return vg_series_decode(iv.mv_data, iv.mv_size, desc);
	vg_series_id_t ref;
	code = ids_shared_ref(&iv, id, &ref);
	if (code)
		return code;
	if (!txn->ref.mv_data || txn->ref_id != ref) {
		/* Fifteen series in a row share a reference. */
		MDB_val rv;
		code = rtxn_ids_get(txn, ref, &rv);
		if (code)
			return code == VG_ENOTFOUND ? VG_ECORRUPT : code;
		txn->ref = rv;
		txn->ref_id = ref;
	}
	return ids_shared_decode(&iv, txn->ref.mv_data, txn->ref.mv_size, desc);
}

/* ---- id sets --------------------------------------------------------- */

void vg_idset_release(vg_idset_t *set)
{
	vg_free(set->ids);
	set->ids = NULL;
	set->len = set->cap = 0;
}

static int idset_reserve(vg_idset_t *set, size_t n)
{
	if (n <= set->cap)
		return 0;
	size_t cap = set->cap ? set->cap : 16;
	while (cap < n)
		cap *= 2;
	vg_series_id_t *ids = vg_reallocarray(set->ids, cap, sizeof *ids);
	if (!ids)
		return VG_ENOMEM;
	set->ids = ids;
	set->cap = cap;
	return 0;
}

int vg_idset_add(vg_idset_t *set, vg_series_id_t id)
{
	int code = idset_reserve(set, set->len + 1);
	if (code == 0)
		set->ids[set->len++] = id;
	return code;
}

bool vg_idset_contains(const vg_idset_t *set, vg_series_id_t id)
{
	size_t lo = 0, hi = set->len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < set->len && set->ids[lo] == id;
}

/* The three set operations share one merge walk; `keep` says which of
 * (only in a, in both, only in b) go to the output. */
enum { KEEP_A = 1, KEEP_BOTH = 2, KEEP_B = 4 };

static int idset_merge(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out, int keep)
{
	int code = idset_reserve(out, a->len + b->len);
	if (code)
		return code;
	size_t i = 0, j = 0, n = 0;
	while (i < a->len || j < b->len) {
		if (j == b->len || (i < a->len && a->ids[i] < b->ids[j])) {
			if (keep & KEEP_A)
				out->ids[n++] = a->ids[i];
			i++;
		} else if (i == a->len || b->ids[j] < a->ids[i]) {
			if (keep & KEEP_B)
				out->ids[n++] = b->ids[j];
			j++;
		} else {
			if (keep & KEEP_BOTH)
				out->ids[n++] = a->ids[i];
			i++;
			j++;
		}
	}
	out->len = n;
	return 0;
}

int vg_idset_intersect(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out)
{
	return idset_merge(a, b, out, KEEP_BOTH);
}

int vg_idset_union(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out)
{
	return idset_merge(a, b, out, KEEP_A | KEEP_BOTH | KEEP_B);
}

int vg_idset_subtract(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out)
{
	return idset_merge(a, b, out, KEEP_A);
}

static int compare_ids(const void *a, const void *b)
{
	vg_series_id_t x = *(const vg_series_id_t *)a, y = *(const vg_series_id_t *)b;
	return (x > y) - (x < y);
}

/* Sorts and deduplicates a set built by appending unsorted runs. */
static void idset_normalize(vg_idset_t *set)
{
	if (set->len < 2)
		return;
	qsort(set->ids, set->len, sizeof set->ids[0], compare_ids);
	size_t n = 0;
	for (size_t i = 0; i < set->len; i++)
		if (n == 0 || set->ids[n - 1] != set->ids[i])
			set->ids[n++] = set->ids[i];
	set->len = n;
}

/* ---- matching -------------------------------------------------------- */

static int read_one(vg_rtxn_t *txn, const pkey_t *k, vg_idset_t *out)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	out->len = 0;
	int code = posting_read(cur, k, out);
	mdb_cursor_close(cur);
	return code;
}

int vg_rtxn_measurement_series(vg_rtxn_t *txn, vg_str_t measurement, vg_idset_t *out)
{
	if (!name_ok(measurement)) {
		out->len = 0;
		return 0;
	}
	pkey_t k;
	pkey_measurement(&k, measurement);
	return read_one(txn, &k, out);
}

int vg_rtxn_field_series(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t field, vg_idset_t *out)
{
	if (!name_ok(measurement) || !name_ok(field)) {
		out->len = 0;
		return 0;
	}
	pkey_t k;
	pkey_field(&k, measurement, field);
	return read_one(txn, &k, out);
}

int vg_rtxn_measurement_exists(vg_rtxn_t *txn, vg_str_t measurement, bool *exists)
{
	*exists = false;
	if (!name_ok(measurement))
		return 0;
	pkey_t k;
	pkey_measurement(&k, measurement);
	MDB_val key = {k.len, k.bytes}, val;
	int rc = mdb_get(txn->txn, txn->store->dbi_postings, &key, &val);
	if (rc == MDB_NOTFOUND)
		return 0;
	*exists = rc == 0;
	return vg_store_lmdb_error(rc);
}

/* A leapfrog seek costs a B-tree descent (at most one per candidate);
 * reading costs 4 bytes per posting. */
#define VG_PROBE_RATIO 32

/* The first index >= from of set whose id is >= id (set->len if none):
 * galloping, so a skip of d ids costs O(log d). */
static size_t idset_seek(const vg_idset_t *set, size_t from, vg_series_id_t id)
{
	if (from >= set->len || set->ids[from] >= id)
		return from;
	/* ids[lo] < id; find hi with ids[hi] >= id or hi = len. */
	size_t lo = from, step = 1, hi;
	for (;;) {
		hi = lo + step;
		if (hi >= set->len) {
			hi = set->len;
			break;
		}
		if (set->ids[hi] >= id)
			break;
		lo = hi;
		step *= 2;
	}
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (set->ids[mid] < id)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/*
 * Appends to out the ids of `in` among the duplicates of the postings key
 * the cursor is on (out has room for in->len), leapfrogging: the postings
 * are sought (MDB_GET_BOTH_RANGE) to the next candidate, and the candidates
 * skipped (galloping) to the id found there; after a hit the next posting
 * is one MDB_NEXT_DUP away.  A run of candidates between two postings is
 * crossed in one seek, so a host's 100 consecutive ids among a metric's
 * postings cost about two cursor moves, not 100 descents.
 */
static int postings_leapfrog(MDB_cursor *cur, const pkey_t *k, const vg_idset_t *in,
			     vg_idset_t *out)
{
	size_t i = 0;
	while (i < in->len) {
		uint8_t v[4];
		vg_store_be32(v, in->ids[i]);
		MDB_val key = {k->len, (void *)k->bytes}, val = {4, v};
		int rc = mdb_cursor_get(cur, &key, &val, MDB_GET_BOTH_RANGE);
		for (;;) {
			if (rc == MDB_NOTFOUND)
				return 0; /* no posting >= in->ids[i] */
			if (rc)
				return vg_store_lmdb_error(rc);
			if (val.mv_size != 4)
				return VG_ECORRUPT;
			vg_series_id_t p = vg_load_be32(val.mv_data);
			i = idset_seek(in, i, p);
			if (i == in->len || in->ids[i] != p)
				break; /* seek the postings to in->ids[i] */
			out->ids[out->len++] = p;
			if (++i == in->len)
				return 0;
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT_DUP);
		}
	}
	return 0;
}

/* out = the ids of `in` under postings key k: leapfrogging through the
 * postings when `in` is much smaller than them, else the postings read and
 * intersected. */
static int postings_filter(vg_rtxn_t *txn, const pkey_t *k_in, const vg_idset_t *in,
			   vg_idset_t *out)
{
	pkey_t k = *k_in;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	MDB_val key = {k.len, k.bytes}, val;
	size_t count = 0;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET);
	if (rc == 0)
		rc = mdb_cursor_count(cur, &count);
	int code = 0;
	if (rc) {
		code = rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
	} else if ((uint64_t)in->len * VG_PROBE_RATIO < (uint64_t)count) {
		code = idset_reserve(out, in->len);
		code = code ? code : postings_leapfrog(cur, &k, in, out);
	} else {
		vg_idset_t all = VG_IDSET_INIT;
		code = posting_read(cur, &k, &all);
		code = code ? code : vg_idset_intersect(&all, in, out);
		vg_idset_release(&all);
	}
	mdb_cursor_close(cur);
	return code;
}

int vg_rtxn_field_filter(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t field,
			 const vg_idset_t *in, vg_idset_t *out)
{
	out->len = 0;
	if (!name_ok(measurement) || !name_ok(field) || in->len == 0)
		return 0;
	pkey_t k;
	pkey_field(&k, measurement, field);
	return postings_filter(txn, &k, in, out);
}

int vg_rtxn_match_filter(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *m,
			 const vg_idset_t *in, vg_idset_t *out)
{
	if (m->op != VG_MATCH_EQ || m->value.len == 0) {
		/* Not a single postings key: the general lookup. */
		vg_idset_t part = VG_IDSET_INIT;
		int code = vg_rtxn_match(txn, measurement, m, &part);
		code = code ? code : vg_idset_intersect(&part, in, out);
		vg_idset_release(&part);
		return code;
	}
	out->len = 0;
	if (!name_ok(measurement) || !name_ok(m->key) || m->value.len > VG_STORE_TAG_VALUE_MAX ||
	    in->len == 0)
		return 0;
	pkey_t k;
	pkey_tag(&k, measurement, m->key, &m->value);
	return postings_filter(txn, &k, in, out);
}

int vg_rtxn_match_upto(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *m, size_t limit,
		       vg_idset_t *out, size_t *count)
{
	*count = 0;
	out->len = 0;
	if (m->op != VG_MATCH_EQ || m->value.len == 0)
		return VG_EINVAL;
	if (!name_ok(measurement) || !name_ok(m->key) || m->value.len > VG_STORE_TAG_VALUE_MAX)
		return 0;
	pkey_t k;
	pkey_tag(&k, measurement, m->key, &m->value);
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	MDB_val key = {k.len, k.bytes}, val;
	rc = mdb_cursor_get(cur, &key, &val, MDB_SET);
	if (rc == 0)
		rc = mdb_cursor_count(cur, count);
	int code = rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
	if (rc == 0 && *count <= limit)
		code = posting_read(cur, &k, out);
	mdb_cursor_close(cur);
	return code;
}

/* Reads the full tag value of a postings key whose value was cut, from the
 * first series under that key. */
static int full_tag_value(vg_rtxn_t *txn, MDB_val *dup, vg_str_t key, vg_str_t *value)
{
	if (dup->mv_size != 4)
		return VG_ECORRUPT;
	vg_series_desc_t desc;
	int code = vg_rtxn_series_describe(txn, vg_load_be32(dup->mv_data), &desc);
	if (code)
		return code;
	for (size_t i = 0; i < desc.ntags; i++)
		if (desc.tags[i].key.len == key.len &&
		    memcmp(desc.tags[i].key.data, key.data, key.len) == 0) {
			*value = desc.tags[i].value;
			return 0;
		}
	return VG_ECORRUPT;
}

/*
 * Walks the values of tag `key` in `measurement`.  For each value, calls
 * visit(ctx, value, cursor positioned on its postings key).  With
 * want_values false the value passed may be a cut key (cheaper).
 */
typedef int (*tag_value_fn)(void *ctx, vg_rtxn_t *txn, vg_str_t value, MDB_cursor *cur,
			    MDB_val *key);

static int walk_tag_values(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t key, tag_value_fn visit,
			   void *ctx)
{
	pkey_t prefix;
	pkey_tag(&prefix, measurement, key, NULL);
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	MDB_val k = {prefix.len, prefix.bytes}, v;
	int code = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
		if (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.bytes, prefix.len) != 0)
			break;
		vg_str_t value = {(const char *)k.mv_data + prefix.len, k.mv_size - prefix.len};
		if (memchr(value.data, 0xFF, value.len)) {
			code = full_tag_value(txn, &v, key, &value);
			if (code)
				break;
		}
		MDB_val here = k;
		code = visit(ctx, txn, value, cur, &here);
		if (code)
			break;
	}
	mdb_cursor_close(cur);
	if (code)
		return code;
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : vg_store_lmdb_error(rc);
}

typedef struct {
	const regex_t *regex; /* NULL: take every value */
	vg_idset_t *out;
	vg_buf_t text;
} collect_t;

static int collect_value(void *ctx, vg_rtxn_t *txn, vg_str_t value, MDB_cursor *cur, MDB_val *key)
{
	(void)txn;
	collect_t *c = ctx;
	if (c->regex) {
		vg_buf_clear(&c->text);
		int code = vg_buf_append(&c->text, value.data, value.len);
		if (code)
			return code;
		if (regexec(c->regex, vg_buf_cstr(&c->text), 0, NULL, 0) != 0)
			return 0;
	}
	pkey_t k;
	k.len = key->mv_size;
	memcpy(k.bytes, key->mv_data, key->mv_size);
	int code = posting_read(cur, &k, c->out);
	/* posting_read moved the cursor within this key's duplicates only; the
	 * walk continues with MDB_NEXT_NODUP from here. */
	return code;
}

/* Union of the series of every value of tag key (matching regex if set). */
static int tag_union(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t key, const regex_t *regex,
		     vg_idset_t *out)
{
	collect_t c = {regex, out, VG_BUF_INIT};
	out->len = 0;
	int code = walk_tag_values(txn, measurement, key, collect_value, &c);
	vg_buf_release(&c.text);
	if (code == 0)
		idset_normalize(out);
	return code;
}

int vg_rtxn_match(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *m, vg_idset_t *out)
{
	out->len = 0;
	if (!name_ok(measurement))
		return 0;
	/* A key that cannot exist is a tag no series has: its postings are
	 * empty and only the complement logic below applies. */
	bool key_ok = name_ok(m->key);
	vg_idset_t all = VG_IDSET_INIT, part = VG_IDSET_INIT;
	int code = 0;
	/* part: the series the matcher's positive form selects among those
	 * that have the key; absent_match: whether series without the key
	 * satisfy the positive form ('' or a regex matching ''). */
	bool absent_match;
	if (m->op == VG_MATCH_EQ || m->op == VG_MATCH_NE) {
		absent_match = m->value.len == 0;
		if (key_ok && m->value.len > 0 && m->value.len <= VG_STORE_TAG_VALUE_MAX) {
			pkey_t k;
			pkey_tag(&k, measurement, m->key, &m->value);
			code = read_one(txn, &k, &part);
		}
	} else {
		absent_match = regexec(m->regex, "", 0, NULL, 0) == 0;
		if (key_ok)
			code = tag_union(txn, measurement, m->key, m->regex, &part);
	}
	if (code == 0 && absent_match) {
		/* Add the series that lack the key: all minus those having it. */
		vg_idset_t have = VG_IDSET_INIT, missing = VG_IDSET_INIT, both = VG_IDSET_INIT;
		code = key_ok ? tag_union(txn, measurement, m->key, NULL, &have) : 0;
		code = code ? code : vg_rtxn_measurement_series(txn, measurement, &all);
		code = code ? code : vg_idset_subtract(&all, &have, &missing);
		code = code ? code : vg_idset_union(&part, &missing, &both);
		vg_idset_t tmp = part;
		part = both;
		both = tmp;
		vg_idset_release(&have);
		vg_idset_release(&missing);
		vg_idset_release(&both);
	}
	bool positive = m->op == VG_MATCH_EQ || m->op == VG_MATCH_RE;
	if (code == 0 && !positive) {
		if (!absent_match)
			code = vg_rtxn_measurement_series(txn, measurement, &all);
		code = code ? code : vg_idset_subtract(&all, &part, out);
	} else if (code == 0) {
		vg_idset_t tmp = *out;
		*out = part;
		part = tmp;
	}
	vg_idset_release(&all);
	vg_idset_release(&part);
	return code;
}

/* ---- listings -------------------------------------------------------- */

/* Walks distinct postings keys with `prefix`, reporting the part after the
 * prefix up to the first 0x00 (or the end); then skips the rest of that
 * name.  Used for measurements, fields and tag keys. */
static int list_names(vg_rtxn_t *txn, const uint8_t *prefix, size_t plen, vg_name_fn fn, void *ctx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn->txn, txn->store->dbi_postings, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	uint8_t seek[VG_LMDB_KEY_MAX + 1];
	memcpy(seek, prefix, plen);
	MDB_val k = {plen, seek}, v;
	int code = 0;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		const uint8_t *rest = (const uint8_t *)k.mv_data + plen;
		size_t rlen = k.mv_size - plen;
		const uint8_t *nul = memchr(rest, 0, rlen);
		size_t nlen = nul ? (size_t)(nul - rest) : rlen;
		if (nlen > VG_STORE_NAME_MAX) {
			code = VG_ECORRUPT;
			break;
		}
		code = fn(ctx, (vg_str_t){(const char *)rest, nlen});
		if (code)
			break;
		if (!nul) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
			continue;
		}
		/* Skip every key "prefix name 0x00 ...": seek to "prefix name 0x01". */
		memcpy(seek + plen, rest, nlen);
		seek[plen + nlen] = 1;
		k.mv_size = plen + nlen + 1;
		k.mv_data = seek;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	if (code)
		return code;
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : vg_store_lmdb_error(rc);
}

int vg_rtxn_list_measurements(vg_rtxn_t *txn, vg_name_fn fn, void *ctx)
{
	return list_names(txn, (const uint8_t *)"M", 1, fn, ctx);
}

int vg_rtxn_list_field_keys(vg_rtxn_t *txn, vg_str_t measurement, vg_name_fn fn, void *ctx)
{
	if (!name_ok(measurement))
		return 0;
	pkey_t k;
	pkey_field(&k, measurement, (vg_str_t){NULL, 0});
	return list_names(txn, k.bytes, k.len, fn, ctx);
}

int vg_rtxn_list_tag_keys(vg_rtxn_t *txn, vg_str_t measurement, vg_name_fn fn, void *ctx)
{
	if (!name_ok(measurement))
		return 0;
	pkey_t k;
	k.bytes[0] = 'T';
	memcpy(k.bytes + 1, measurement.data, measurement.len);
	k.bytes[1 + measurement.len] = 0;
	k.len = 2 + measurement.len;
	return list_names(txn, k.bytes, k.len, fn, ctx);
}

typedef struct {
	vg_name_fn fn;
	void *ctx;
} name_visit_t;

static int visit_value(void *ctx, vg_rtxn_t *txn, vg_str_t value, MDB_cursor *cur, MDB_val *key)
{
	(void)txn;
	(void)cur;
	(void)key;
	name_visit_t *visit = ctx;
	return visit->fn(visit->ctx, value);
}

int vg_rtxn_list_tag_values(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t key, vg_name_fn fn,
			    void *ctx)
{
	if (!name_ok(measurement) || !name_ok(key))
		return 0;
	name_visit_t visit = {fn, ctx};
	return walk_tag_values(txn, measurement, key, visit_value, &visit);
}

/* ---- format 1 -------------------------------------------------------- */

/* Format 1 keyed `series` by a 64-bit hash of the whole key; its `ids`
 * records are all full, as format 2 reads them.  Rebuilt from `ids`. */
int vg_series_upgrade_v1(MDB_txn *txn, vg_store_t *store)
{
	int rc = mdb_drop(txn, store->dbi_series, 0);
	if (rc)
		return vg_store_lmdb_error(rc);
	MDB_cursor *cur;
	rc = mdb_cursor_open(txn, store->dbi_ids, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	int code = 0;
	MDB_val k, v;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && code == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		vg_series_desc_t desc;
		if (k.mv_size != sizeof(vg_series_id_t) || ids_is_shared(&v) ||
		    vg_series_decode(v.mv_data, v.mv_size, &desc) != 0) {
			code = VG_ECORRUPT;
			break;
		}
		vg_series_id_t id;
		memcpy(&id, k.mv_data, sizeof id);
		uint8_t hk[8], dup[8];
		decoded_hash_key(v.mv_data, v.mv_size, &desc, hk);
		memcpy(dup, hk + 4, 4);
		vg_store_be32(dup + 4, id);
		MDB_val sk = {4, hk}, sv = {8, dup};
		code = vg_store_lmdb_error(mdb_put(txn, store->dbi_series, &sk, &sv, 0));
	}
	mdb_cursor_close(cur);
	if (code == 0 && rc != 0 && rc != MDB_NOTFOUND)
		code = vg_store_lmdb_error(rc);
	return code;
}
