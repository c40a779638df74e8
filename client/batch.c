/*
 * batch.c — the batch builder: points in, vigil.v1.Write blocks out.
 *
 * The wire format is columnar: a WriteBlock is one measurement and tag set
 * with a list of timestamps, and each of its fields carries one value per
 * timestamp.  Users, though, hand us points one at a time or one series at
 * a time, in whatever order their data comes.  The builder bridges the two
 * with one rule per point (measurement M, tags T, field F, time t):
 *
 *   In the open block of (M, T) — its newest block —
 *     F present, behind the block's times, times[n_F] == t  -> append to F
 *     F present, level with the block's times               -> append t, append to F
 *     F absent, times[0] == t                               -> F joins the block
 *     anything else (or no open block)                      -> open a new block
 *
 * so field F's values always belong to a prefix of the block's timestamps.
 * Row-wise input (every field at t1, then every field at t2) and column-wise
 * input (each field with the same times array) both build exactly one block
 * per series; any other order still encodes correctly, only less compactly.
 * A field that ends behind its block (added at t1 and t2 while its block
 * went on to t3) is sent in a WriteBlock of its own over the prefix of
 * times it covers — see vg_batch_to_write().  Points of one series stay in
 * the order they were added (only the newest block of a group receives
 * points, and blocks are sent in order), so last-write-wins at equal
 * timestamps means the point added last wins.
 *
 * Groups are found by their canonical key — the measurement and the tags
 * sorted by key, NUL-separated — in an open-addressing hash table.  Names
 * are validated with vg_write_block_check(), the server's own check, on a
 * one-point WriteBlock, so the client and the server refuse exactly the
 * same input with the same message; a group and field seen before are not
 * checked again.
 *
 * vg_batch_add_row() takes every field of one point at once: the key is
 * built, hashed and looked up once per row rather than once per value, and
 * when the group and every field are known the names are not checked
 * again, so a row costs one lookup plus one append per field.  It behaves
 * exactly as vg_batch_add() called for each field in turn, atomically.
 *
 * Failure atomicity: a call records a snapshot (counts of groups, blocks,
 * the open block's lengths, and the length of each of its fields the call
 * may extend) and on VG_ENOMEM truncates back to it, which is possible
 * because every structure only grows by appending.
 */
#include "client_int.h"

#include "vg_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX

static int batch_fail(vg_batch_t *b, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int batch_fail(vg_batch_t *b, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->errstr, sizeof b->errstr, fmt, ap);
	va_end(ap);
	return code;
}

/* Grows the array whose pointer is at `array` (any T **) to hold at least
 * `need` elements of `size` bytes.  The pointer is read and written with
 * memcpy so that no T * is accessed as a void *. */
static int grow(void *array, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap < 4 ? 8 : *cap * 2;
	if (n < need)
		n = need;
	void *p;
	memcpy(&p, array, sizeof p);
	void *q = vg_reallocarray(p, n, size);
	if (!q)
		return VG_ENOMEM;
	memcpy(array, &q, sizeof q);
	*cap = n;
	return 0;
}

/* ---- canonical keys and the group table ----------------------------------- */

/* The hash of a canonical key (~100-300 bytes, hashed once per add), eight
 * bytes per step; the last word overlaps the one before (or, for a short
 * key, is gathered in a register), and MurmurHash3's fmix64 finishes so that
 * the low bits the table uses depend on every byte.  Only ever compared
 * within one process, so the host byte order does not matter. */
static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n, w = 0;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&w, s + i, 8);
			h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
			h ^= h >> 32;
		}
		memcpy(&w, s + n - 8, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)s[i] << (8 * i);
	}
	h = (h ^ w) * UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* order[] = indexes of tags sorted by key (insertion sort: ntags <= 64). */
static void sort_tags(const vg_tag_t *tags, size_t ntags, size_t *order)
{
	for (size_t i = 0; i < ntags; i++) {
		size_t j = i;
		const char *key = str_or_empty(tags[i].key);
		while (j > 0 && strcmp(str_or_empty(tags[order[j - 1]].key), key) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
}

/* The canonical key "m\0k1\0v1\0...kn\0vn\0" into out, in one reservation. */
static int build_key(vg_buf_t *out, const char *measurement, const vg_tag_t *tags,
                     const size_t *order, size_t ntags)
{
	size_t lens[1 + 2 * VG_MAX_TAGS];
	const char *parts[1 + 2 * VG_MAX_TAGS];
	size_t nparts = 1 + 2 * ntags, total = 0;
	parts[0] = measurement;
	for (size_t i = 0; i < ntags; i++) {
		parts[1 + 2 * i] = str_or_empty(tags[order[i]].key);
		parts[2 + 2 * i] = str_or_empty(tags[order[i]].value);
	}
	for (size_t i = 0; i < nparts; i++) {
		lens[i] = strlen(parts[i]) + 1;
		total += lens[i];
	}
	vg_buf_clear(out);
	if (vg_buf_reserve(out, total))
		return VG_ENOMEM;
	uint8_t *p = out->data;
	for (size_t i = 0; i < nparts; i++) {
		memcpy(p, parts[i], lens[i]);
		p += lens[i];
	}
	out->len = total;
	return 0;
}

static size_t find_group(const vg_batch_t *b, const void *key, size_t len, uint64_t hash)
{
	if (!b->nslots)
		return NONE;
	size_t mask = b->nslots - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		size_t s = b->slots[i];
		if (!s)
			return NONE;
		const vg_batch_group_t *g = &b->groups[s - 1];
		if (g->hash == hash && g->keylen == len && !memcmp(g->key, key, len))
			return s - 1;
	}
}

static void table_insert(vg_batch_t *b, size_t gi)
{
	size_t mask = b->nslots - 1;
	size_t i = b->groups[gi].hash & mask;
	while (b->slots[i])
		i = (i + 1) & mask;
	b->slots[i] = gi + 1;
}

static void table_rebuild(vg_batch_t *b)
{
	if (b->nslots)
		memset(b->slots, 0, b->nslots * sizeof b->slots[0]);
	for (size_t gi = 0; gi < b->ngroups; gi++)
		table_insert(b, gi);
}

/* Makes room for `groups` groups at a load factor of at most 1/2. */
static int table_reserve(vg_batch_t *b, size_t groups)
{
	if (groups <= b->nslots / 2)
		return 0;
	size_t n = b->nslots ? b->nslots : 16;
	while (n / 2 < groups) {
		if (n > SIZE_MAX / 2)
			return VG_ENOMEM;
		n *= 2;
	}
	size_t *slots = vg_reallocarray(NULL, n, sizeof *slots);
	if (!slots)
		return VG_ENOMEM;
	vg_free(b->slots);
	b->slots = slots;
	b->nslots = n;
	table_rebuild(b);
	return 0;
}

/* Adds the group whose key is in b->scratch; *gi = its index. */
static int add_group(vg_batch_t *b, uint64_t hash, size_t ntags, size_t *gi)
{
	int rc = grow(&b->groups, &b->gcap, b->ngroups + 1, sizeof b->groups[0]);
	if (!rc)
		rc = table_reserve(b, b->ngroups + 1);
	if (rc)
		return rc;
	char *key = vg_malloc(b->scratch.len);
	if (!key)
		return VG_ENOMEM;
	memcpy(key, b->scratch.data, b->scratch.len);
	*gi = b->ngroups++;
	b->groups[*gi] = (vg_batch_group_t){
	    .key = key, .keylen = b->scratch.len, .hash = hash, .ntags = ntags, .open_block = NONE};
	table_insert(b, *gi);
	return 0;
}

/* ---- blocks and fields ------------------------------------------------------ */

static void block_release(vg_batch_block_t *k)
{
	for (size_t i = 0; i < k->nfields; i++) {
		vg_free(k->fields[i].name);
		vg_free(k->fields[i].values);
	}
	vg_free(k->fields);
	vg_free(k->times);
}

/* The index of field `name` in block k, trying `guess` first; NONE if absent. */
static size_t find_field(vg_batch_block_t *k, const char *name, size_t guess)
{
	if (guess < k->nfields && !strcmp(k->fields[guess].name, name))
		return k->hint = guess;
	for (size_t i = 0; i < k->nfields; i++)
		if (!strcmp(k->fields[i].name, name))
			return k->hint = i;
	return NONE;
}

static int add_field(vg_batch_block_t *k, const char *name, size_t *fi)
{
	int rc = grow(&k->fields, &k->fcap, k->nfields + 1, sizeof k->fields[0]);
	if (rc)
		return rc;
	char *copy = vg_strndup(name, strlen(name));
	if (!copy)
		return VG_ENOMEM;
	*fi = k->hint = k->nfields++;
	k->fields[*fi] = (vg_batch_field_t){.name = copy};
	return 0;
}

/* Adds an empty block to group gi and makes it the group's open block. */
static int open_block(vg_batch_t *b, size_t gi, vg_batch_block_t **out)
{
	int rc = grow(&b->blocks, &b->bcap, b->nblocks + 1, sizeof b->blocks[0]);
	if (rc)
		return rc;
	b->blocks[b->nblocks] = (vg_batch_block_t){.group = gi};
	b->groups[gi].open_block = b->nblocks;
	*out = &b->blocks[b->nblocks++];
	return 0;
}

/* Appends one point to group gi by the rule in the file comment; fi is the
 * field's index in the group's open block, NONE if it is not there (or the
 * group has no open block yet). */
static int add_at(vg_batch_t *b, size_t gi, size_t fi, const char *field, int64_t t, double v)
{
	vg_batch_group_t *g = &b->groups[gi];
	vg_batch_block_t *k = g->open_block == NONE ? NULL : &b->blocks[g->open_block];
	bool new_time;
	int rc;
	if (fi != NONE && k->fields[fi].n < k->ntimes && k->times[k->fields[fi].n] == t) {
		new_time = false;
	} else if (fi != NONE && k->fields[fi].n == k->ntimes) {
		new_time = true;
	} else if (fi == NONE && k && k->times[0] == t) {
		new_time = false;
		rc = add_field(k, field, &fi);
		if (rc)
			return rc;
	} else {
		rc = open_block(b, gi, &k);
		if (!rc)
			rc = add_field(k, field, &fi);
		if (rc)
			return rc;
		new_time = true;
	}
	vg_batch_field_t *f = &k->fields[fi];
	rc = grow(&f->values, &f->cap, f->n + 1, sizeof f->values[0]);
	if (!rc && new_time)
		rc = grow(&k->times, &k->tcap, k->ntimes + 1, sizeof k->times[0]);
	if (rc)
		return rc;
	if (new_time)
		k->times[k->ntimes++] = t;
	f->values[f->n++] = v;
	b->points++;
	return 0;
}

/* add_at() for a field looked up in the group's current open block. */
static int add_one(vg_batch_t *b, size_t gi, const char *field, int64_t t, double v)
{
	size_t ob = b->groups[gi].open_block;
	size_t fi = ob == NONE ? NONE : find_field(&b->blocks[ob], field, b->blocks[ob].hint);
	return add_at(b, gi, fi, field, t, v);
}

/*
 * Finds each of the n field names in block ob (NONE: there is none), trying
 * the index after the previous name's first, since rows usually come in
 * the block's order.  marks[i] = the index (NONE if absent) and its length
 * now.  Returns true if there is at least one name and all were found.
 */
static bool mark_fields(vg_batch_t *b, size_t ob, const char *const *names, size_t n,
                        vg_batch_mark_t *marks)
{
	vg_batch_block_t *k = ob == NONE ? NULL : &b->blocks[ob];
	bool all = n > 0;
	size_t guess = k ? k->hint : 0;
	for (size_t i = 0; i < n; i++) {
		size_t fi = k ? find_field(k, str_or_empty(names[i]), guess) : NONE;
		marks[i] = (vg_batch_mark_t){.field = fi, .n = fi == NONE ? 0 : k->fields[fi].n};
		if (fi == NONE)
			all = false;
		else
			guess = fi + 1;
	}
	return all;
}

/* Whether two of n marked fields (all found in a block of nfields fields)
 * may be the same.  Rising indexes — a row in the block's order — cannot;
 * otherwise a bitmap tells, or, for very wide blocks, "maybe" sends the row
 * to validate(), which names the repeated field. */
static bool may_repeat(const vg_batch_mark_t *marks, size_t n, size_t nfields)
{
	size_t i = 1;
	while (i < n && marks[i].field > marks[i - 1].field)
		i++;
	if (i >= n)
		return false;
	enum { BITMAP_FIELDS = 1024 };
	if (nfields > BITMAP_FIELDS)
		return true;
	uint64_t seen[BITMAP_FIELDS / 64] = {0};
	for (i = 0; i < n; i++) {
		size_t f = marks[i].field;
		if (seen[f / 64] >> (f % 64) & 1)
			return true;
		seen[f / 64] |= UINT64_C(1) << (f % 64);
	}
	return false;
}

/* ---- validation ------------------------------------------------------------- */

/* Checks the names of a point (nfields fields at one time) as the server
 * will, on a one-row block. */
static int validate(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                    const char *const *fields, size_t nfields)
{
	Vigil__V1__Tag tag[VG_MAX_TAGS];
	Vigil__V1__Tag *tag_ptrs[VG_MAX_TAGS];
	for (size_t i = 0; i < ntags; i++) {
		vigil__v1__tag__init(&tag[i]);
		tag[i].key = (char *)tags[i].key;
		tag[i].value = (char *)tags[i].value;
		tag_ptrs[i] = &tag[i];
	}
	Vigil__V1__WriteField wf_stack[VG_MAX_TAGS];
	Vigil__V1__WriteField *wf_ptr_stack[VG_MAX_TAGS];
	Vigil__V1__WriteField *wf = wf_stack, **wf_ptr = wf_ptr_stack;
	if (nfields > VG_MAX_TAGS) {
		wf = vg_reallocarray(NULL, nfields, sizeof *wf);
		wf_ptr = vg_reallocarray(NULL, nfields, sizeof *wf_ptr);
		if (!wf || !wf_ptr) {
			vg_free(wf);
			vg_free(wf_ptr);
			return batch_fail(b, VG_ENOMEM, "out of memory checking %zu fields",
			                  nfields);
		}
	}
	int64_t time = 0;
	double value = 0;
	for (size_t i = 0; i < nfields; i++) {
		vigil__v1__write_field__init(&wf[i]);
		wf[i].name = (char *)fields[i];
		wf[i].n_values = 1;
		wf[i].values = &value;
		wf_ptr[i] = &wf[i];
	}
	Vigil__V1__WriteBlock wb = VIGIL__V1__WRITE_BLOCK__INIT;
	wb.measurement = (char *)measurement;
	wb.n_tags = ntags;
	wb.tags = tag_ptrs;
	wb.n_times = 1;
	wb.times = &time;
	wb.n_fields = nfields;
	wb.fields = wf_ptr;
	int rc = vg_write_block_check(&wb, b->errstr, sizeof b->errstr);
	if (wf != wf_stack) {
		vg_free(wf);
		vg_free(wf_ptr);
	}
	return rc;
}

/* ---- public API ------------------------------------------------------------- */

int vg_batch_new(vg_batch_t **out)
{
	*out = vg_calloc(1, sizeof **out);
	return *out ? 0 : VG_ENOMEM;
}

void vg_batch_clear(vg_batch_t *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nblocks; i++)
		block_release(&b->blocks[i]);
	for (size_t i = 0; i < b->ngroups; i++)
		vg_free(b->groups[i].key);
	b->nblocks = b->ngroups = b->points = 0;
	table_rebuild(b);
	b->errstr[0] = '\0';
}

void vg_batch_free(vg_batch_t *b)
{
	if (!b)
		return;
	vg_batch_clear(b);
	vg_free(b->groups);
	vg_free(b->slots);
	vg_free(b->blocks);
	vg_free(b->marks);
	vg_buf_release(&b->scratch);
	vg_free(b);
}

/* What a call may change, to undo it on failure. */
typedef struct snapshot {
	size_t ngroups, nblocks, points;
	size_t group;      /* the point's group, if it existed */
	size_t open_block; /* its open block then, or NONE */
	size_t ntimes, nfields;
	const vg_batch_mark_t *marks; /* fields of open_block the call may lengthen */
	size_t nmarks;
} snapshot_t;

static void take_snapshot(const vg_batch_t *b, size_t gi, const vg_batch_mark_t *marks,
                          size_t nmarks, snapshot_t *s)
{
	*s = (snapshot_t){.ngroups = b->ngroups,
	                  .nblocks = b->nblocks,
	                  .points = b->points,
	                  .group = gi,
	                  .open_block = NONE,
	                  .marks = marks,
	                  .nmarks = nmarks};
	if (gi == NONE || b->groups[gi].open_block == NONE)
		return;
	const vg_batch_block_t *k = &b->blocks[b->groups[gi].open_block];
	s->open_block = b->groups[gi].open_block;
	s->ntimes = k->ntimes;
	s->nfields = k->nfields;
}

static void rollback(vg_batch_t *b, const snapshot_t *s)
{
	while (b->nblocks > s->nblocks)
		block_release(&b->blocks[--b->nblocks]);
	if (s->open_block != NONE) {
		vg_batch_block_t *k = &b->blocks[s->open_block];
		while (k->nfields > s->nfields) {
			k->nfields--;
			vg_free(k->fields[k->nfields].name);
			vg_free(k->fields[k->nfields].values);
		}
		k->ntimes = s->ntimes;
		for (size_t i = 0; i < s->nmarks; i++)
			if (s->marks[i].field != NONE)
				k->fields[s->marks[i].field].n = s->marks[i].n;
		k->hint = 0;
		b->groups[s->group].open_block = s->open_block;
	}
	if (b->ngroups > s->ngroups) {
		while (b->ngroups > s->ngroups)
			vg_free(b->groups[--b->ngroups].key);
		table_rebuild(b);
	}
	b->points = s->points;
}

/* The checks every adder starts with. */
static int check_series(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags)
{
	if (!b)
		return VG_EINVAL;
	b->errstr[0] = '\0';
	if (ntags > VG_MAX_TAGS) {
		if (measurement && !vg_name_check(measurement, strlen(measurement)))
			return batch_fail(b, VG_EINVAL, "measurement '%s': %zu tags, more than %d",
			                  measurement, ntags, VG_MAX_TAGS);
		return batch_fail(b, VG_EINVAL, "%zu tags, more than %d", ntags, VG_MAX_TAGS);
	}
	if (ntags && !tags)
		return batch_fail(b, VG_EINVAL, "tags is NULL but ntags is %zu", ntags);
	return 0;
}

/* Builds the series' canonical key in b->scratch; *hash = its hash and *gi =
 * its group, or NONE if the batch has none yet. */
static int find_series(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                       uint64_t *hash, size_t *gi)
{
	size_t order[VG_MAX_TAGS];
	sort_tags(tags, ntags, order);
	if (build_key(&b->scratch, measurement, tags, order, ntags))
		return batch_fail(b, VG_ENOMEM, "out of memory");
	*hash = hash_bytes(b->scratch.data, b->scratch.len);
	*gi = find_group(b, b->scratch.data, b->scratch.len, *hash);
	return 0;
}

int vg_batch_add_points(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                        const char *field, const int64_t *times_ns, const double *values, size_t n)
{
	int rc = check_series(b, measurement, tags, ntags);
	if (rc)
		return rc;
	if (n && (!times_ns || !values))
		return batch_fail(b, VG_EINVAL, "times or values is NULL but n is %zu", n);
	measurement = str_or_empty(measurement);
	field = str_or_empty(field);

	uint64_t hash;
	size_t gi;
	rc = find_series(b, measurement, tags, ntags, &hash, &gi);
	if (rc)
		return rc;
	vg_batch_mark_t mark;
	if (!mark_fields(b, gi == NONE ? NONE : b->groups[gi].open_block, &field, 1, &mark)) {
		rc = validate(b, measurement, tags, ntags, &field, 1);
		if (rc)
			return rc;
	}
	if (n == 0)
		return 0;

	snapshot_t snap;
	take_snapshot(b, gi, &mark, 1, &snap);
	if (gi == NONE)
		rc = add_group(b, hash, ntags, &gi);
	for (size_t i = 0; i < n && !rc; i++)
		rc = add_one(b, gi, field, times_ns[i], values[i]);
	if (rc) {
		rollback(b, &snap);
		return batch_fail(b, rc, "out of memory adding %zu points of field '%s'", n, field);
	}
	return 0;
}

int vg_batch_add(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                 const char *field, int64_t time_ns, double value)
{
	return vg_batch_add_points(b, measurement, tags, ntags, field, &time_ns, &value, 1);
}

int vg_batch_add_row(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                     const char *const *fields, const double *values, size_t nfields,
                     int64_t time_ns)
{
	int rc = check_series(b, measurement, tags, ntags);
	if (rc)
		return rc;
	if (nfields && (!fields || !values))
		return batch_fail(b, VG_EINVAL, "fields or values is NULL but nfields is %zu",
		                  nfields);
	measurement = str_or_empty(measurement);

	uint64_t hash;
	size_t gi;
	rc = find_series(b, measurement, tags, ntags, &hash, &gi);
	if (rc)
		return rc;
	if (grow(&b->marks, &b->mcap, nfields, sizeof b->marks[0]))
		return batch_fail(b, VG_ENOMEM, "out of memory adding %zu fields", nfields);
	/* A known group whose open block holds every field, each once, was
	 * checked when they were first added. */
	size_t ob = gi == NONE ? NONE : b->groups[gi].open_block;
	if (!mark_fields(b, ob, fields, nfields, b->marks) ||
	    may_repeat(b->marks, nfields, b->blocks[ob].nfields)) {
		rc = validate(b, measurement, tags, ntags, fields, nfields);
		if (rc)
			return rc;
	}

	snapshot_t snap;
	take_snapshot(b, gi, b->marks, nfields, &snap);
	if (gi == NONE)
		rc = add_group(b, hash, ntags, &gi);
	/* Once a field has opened a new block, the fields after it are not in
	 * it yet: the row has no repeats. */
	for (size_t i = 0; i < nfields && !rc; i++) {
		size_t fi = b->groups[gi].open_block == ob ? b->marks[i].field : NONE;
		rc = add_at(b, gi, fi, str_or_empty(fields[i]), time_ns, values[i]);
	}
	if (rc) {
		rollback(b, &snap);
		return batch_fail(b, rc, "out of memory adding %zu fields to measurement '%s'",
		                  nfields, measurement);
	}
	return 0;
}

size_t vg_batch_points(const vg_batch_t *b)
{
	return b ? b->points : 0;
}

size_t vg_batch_block_count(const vg_batch_t *b)
{
	return b ? b->nblocks : 0;
}

const char *vg_batch_errstr(const vg_batch_t *b)
{
	return b ? b->errstr : "";
}

/* ---- encoding ---------------------------------------------------------------- */

/* Sizes of protobuf encodings, for vg_batch_encoded_size().  Every field of
 * vigil.v1 used here has a number below 16, so each key is one byte. */
static size_t len_field(size_t len)
{
	return 1 + vg_uvarint_size(len) + len;
}

static size_t packed64(size_t n)
{
	return n ? len_field(8 * n) : 0;
}

/* proto3 omits empty strings. */
static size_t str_field(size_t len)
{
	return len ? len_field(len) : 0;
}

/* The size of a block's measurement and tags fields. */
static size_t header_size(const vg_batch_group_t *g)
{
	const char *p = g->key;
	size_t len = strlen(p);
	size_t size = str_field(len);
	p += len + 1;
	for (size_t i = 0; i < g->ntags; i++) {
		size_t klen = strlen(p);
		size_t vlen = strlen(p + klen + 1);
		size = size + len_field(str_field(klen) + str_field(vlen));
		p += klen + vlen + 2;
	}
	return size;
}

static size_t field_size(const vg_batch_field_t *f)
{
	return len_field(str_field(strlen(f->name)) + packed64(f->n));
}

size_t vg_batch_encoded_size(const vg_batch_t *b)
{
	if (!b)
		return 0;
	size_t write = 0;
	for (size_t i = 0; i < b->nblocks; i++) {
		const vg_batch_block_t *k = &b->blocks[i];
		size_t header = header_size(&b->groups[k->group]);
		size_t main = 0;
		bool any_main = false;
		for (size_t j = 0; j < k->nfields; j++) {
			const vg_batch_field_t *f = &k->fields[j];
			if (f->n == k->ntimes) {
				main += field_size(f);
				any_main = true;
			} else {
				/* Upper bound: as if this lagging field went alone. */
				write += len_field(header + packed64(f->n) + field_size(f));
			}
		}
		if (any_main)
			write += len_field(header + packed64(k->ntimes) + main);
	}
	/* Length prefix; Envelope.id (at most 1 + 10 bytes); the write field. */
	return VG_FRAME_HEADER + 11 + len_field(write);
}

void vg_write_msg_release(vg_write_msg_t *m)
{
	vg_free(m->blocks);
	vg_free(m->block_ptrs);
	vg_free(m->tags);
	vg_free(m->tag_ptrs);
	vg_free(m->fields);
	vg_free(m->field_ptrs);
	memset(m, 0, sizeof *m);
}

/* Longer fields first, then in the order they were added. */
static int by_length_desc(const void *pa, const void *pb)
{
	const vg_batch_field_t *a = *(const vg_batch_field_t *const *)pa;
	const vg_batch_field_t *b = *(const vg_batch_field_t *const *)pb;
	if (a->n != b->n)
		return a->n > b->n ? -1 : 1;
	return a < b ? -1 : a > b;
}

static bool block_is_level(const vg_batch_block_t *k)
{
	for (size_t j = 0; j < k->nfields; j++)
		if (k->fields[j].n != k->ntimes)
			return false;
	return true;
}

/* Fills order[] with the block's fields sorted by by_length_desc and returns
 * the number of distinct lengths (the WriteBlocks the block becomes). */
static size_t order_fields(const vg_batch_block_t *k, const vg_batch_field_t **order)
{
	for (size_t j = 0; j < k->nfields; j++)
		order[j] = &k->fields[j];
	if (block_is_level(k))
		return 1;
	qsort(order, k->nfields, sizeof order[0], by_length_desc);
	size_t runs = 1;
	for (size_t j = 1; j < k->nfields; j++)
		runs += order[j]->n != order[j - 1]->n;
	return runs;
}

/* Fills one WriteBlock over `group`, the first ntimes times of `times`, and
 * the fields order[0..nfields); tags and fields come from the cursors. */
static void fill_block(vg_write_msg_t *m, Vigil__V1__WriteBlock *wb, const vg_batch_group_t *g,
                       const int64_t *times, size_t ntimes, const vg_batch_field_t *const *order,
                       size_t nfields, size_t *tag_at, size_t *field_at)
{
	vigil__v1__write_block__init(wb);
	const char *p = g->key;
	wb->measurement = (char *)p;
	p += strlen(p) + 1;
	wb->n_tags = g->ntags;
	wb->tags = m->tag_ptrs + *tag_at;
	for (size_t i = 0; i < g->ntags; i++) {
		Vigil__V1__Tag *t = &m->tags[*tag_at];
		vigil__v1__tag__init(t);
		t->key = (char *)p;
		p += strlen(p) + 1;
		t->value = (char *)p;
		p += strlen(p) + 1;
		m->tag_ptrs[(*tag_at)++] = t;
	}
	wb->n_times = ntimes;
	wb->times = (int64_t *)times;
	wb->n_fields = nfields;
	wb->fields = m->field_ptrs + *field_at;
	for (size_t j = 0; j < nfields; j++) {
		Vigil__V1__WriteField *f = &m->fields[*field_at];
		vigil__v1__write_field__init(f);
		f->name = order[j]->name;
		f->n_values = order[j]->n;
		f->values = order[j]->values;
		m->field_ptrs[(*field_at)++] = f;
	}
}

int vg_batch_to_write(const vg_batch_t *b, vg_write_msg_t *m)
{
	memset(m, 0, sizeof *m);
	vigil__v1__write__init(&m->write);
	size_t max_fields = 0, nfields = 0;
	for (size_t i = 0; i < b->nblocks; i++) {
		nfields += b->blocks[i].nfields;
		if (b->blocks[i].nfields > max_fields)
			max_fields = b->blocks[i].nfields;
	}
	const vg_batch_field_t **order = vg_reallocarray(NULL, max_fields, sizeof *order);
	if (!order)
		return VG_ENOMEM;
	size_t nwb = 0, ntags = 0;
	for (size_t i = 0; i < b->nblocks; i++) {
		size_t runs = order_fields(&b->blocks[i], order);
		nwb += runs;
		ntags += runs * b->groups[b->blocks[i].group].ntags;
	}
	m->blocks = vg_reallocarray(NULL, nwb, sizeof *m->blocks);
	m->block_ptrs = vg_reallocarray(NULL, nwb, sizeof *m->block_ptrs);
	m->tags = vg_reallocarray(NULL, ntags, sizeof *m->tags);
	m->tag_ptrs = vg_reallocarray(NULL, ntags, sizeof *m->tag_ptrs);
	m->fields = vg_reallocarray(NULL, nfields, sizeof *m->fields);
	m->field_ptrs = vg_reallocarray(NULL, nfields, sizeof *m->field_ptrs);
	if (!m->blocks || !m->block_ptrs || !m->tags || !m->tag_ptrs || !m->fields ||
	    !m->field_ptrs) {
		vg_free(order);
		vg_write_msg_release(m);
		vigil__v1__write__init(&m->write);
		return VG_ENOMEM;
	}
	size_t wb = 0, tag_at = 0, field_at = 0;
	for (size_t i = 0; i < b->nblocks; i++) {
		const vg_batch_block_t *k = &b->blocks[i];
		const vg_batch_group_t *g = &b->groups[k->group];
		order_fields(k, order);
		for (size_t j = 0; j < k->nfields;) {
			size_t end = j + 1;
			while (end < k->nfields && order[end]->n == order[j]->n)
				end++;
			fill_block(m, &m->blocks[wb], g, k->times, order[j]->n, order + j, end - j,
			           &tag_at, &field_at);
			m->block_ptrs[wb] = &m->blocks[wb];
			wb++;
			j = end;
		}
	}
	vg_free(order);
	m->write.n_blocks = nwb;
	m->write.blocks = m->block_ptrs;
	return 0;
}

/* ---- invariant checker ------------------------------------------------------ */

static int check_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int check_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return VG_ECORRUPT;
}

int vg_batch_check(const vg_batch_t *b, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	if (b->nslots && (b->nslots & (b->nslots - 1)))
		return check_fail(err, errlen, "table size %zu is not a power of two", b->nslots);
	if (b->ngroups > b->nslots / 2)
		return check_fail(err, errlen, "%zu groups in %zu slots", b->ngroups, b->nslots);
	size_t used = 0;
	for (size_t i = 0; i < b->nslots; i++) {
		if (b->slots[i] > b->ngroups)
			return check_fail(err, errlen, "slot %zu names group %zu of %zu", i,
			                  b->slots[i] - 1, b->ngroups);
		used += b->slots[i] != 0;
	}
	if (used != b->ngroups)
		return check_fail(err, errlen, "%zu slots used for %zu groups", used, b->ngroups);
	for (size_t gi = 0; gi < b->ngroups; gi++) {
		const vg_batch_group_t *g = &b->groups[gi];
		size_t parts = 0;
		for (size_t i = 0; i < g->keylen; i++)
			parts += g->key[i] == '\0';
		if (!g->keylen || g->key[g->keylen - 1] != '\0' || parts != 1 + 2 * g->ntags)
			return check_fail(err, errlen, "group %zu: malformed key", gi);
		if (g->hash != hash_bytes(g->key, g->keylen) ||
		    find_group(b, g->key, g->keylen, g->hash) != gi)
			return check_fail(err, errlen, "group %zu: not found by its key", gi);
		if (g->open_block >= b->nblocks || b->blocks[g->open_block].group != gi)
			return check_fail(err, errlen, "group %zu: bad open block", gi);
		const char *p = g->key + strlen(g->key) + 1;
		const char *prev = NULL;
		for (size_t t = 0; t < g->ntags; t++) {
			if (prev && strcmp(prev, p) >= 0)
				return check_fail(err, errlen, "group %zu: tags not sorted", gi);
			prev = p;
			p += strlen(p) + 1;
			p += strlen(p) + 1;
		}
	}
	size_t points = 0;
	for (size_t i = 0; i < b->nblocks; i++) {
		const vg_batch_block_t *k = &b->blocks[i];
		if (k->group >= b->ngroups)
			return check_fail(err, errlen, "block %zu: bad group", i);
		if (b->groups[k->group].open_block < i)
			return check_fail(err, errlen, "block %zu: newer than its group's open one",
			                  i);
		if (!k->ntimes || !k->nfields)
			return check_fail(err, errlen, "block %zu: empty", i);
		size_t longest = 0;
		for (size_t j = 0; j < k->nfields; j++) {
			const vg_batch_field_t *f = &k->fields[j];
			if (f->n < 1 || f->n > k->ntimes)
				return check_fail(err, errlen,
				                  "block %zu field '%s': %zu values for %zu times",
				                  i, f->name, f->n, k->ntimes);
			for (size_t l = 0; l < j; l++)
				if (!strcmp(k->fields[l].name, f->name))
					return check_fail(
					    err, errlen, "block %zu: field '%s' twice", i, f->name);
			points += f->n;
			if (f->n > longest)
				longest = f->n;
		}
		/* Times are only appended with a value of a field level with them. */
		if (longest != k->ntimes)
			return check_fail(err, errlen, "block %zu: %zu times, longest field %zu", i,
			                  k->ntimes, longest);
	}
	if (points != b->points)
		return check_fail(err, errlen, "%zu points counted, %zu recorded", points,
		                  b->points);
	return 0;
}
