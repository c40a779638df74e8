/*
 * frame.c — length-prefixed framing of vigil.v1.Envelope.
 *
 * A frame is a 4-byte big-endian length N, then N bytes of one Envelope (see
 * vg_proto.h for a worked example).  A length prefix rather than protobuf's
 * own varint delimiting so that a reader learns the size from a fixed
 * number of bytes and can refuse an oversized frame before buffering any of
 * it; big-endian as is usual for network lengths.
 *
 * Parsing is a pure function over the caller's bytes so that the server's
 * event loop and the client's blocking reader share it: it either finds a
 * whole frame at the front of what has been read, or says how it failed —
 * "need more" (VG_EAGAIN), "too big to ever accept" (VG_ELIMIT, from the
 * header alone), "a whole frame, but not a usable envelope" (VG_EPROTO, with
 * the boundary known, so the conversation can go on) or VG_ENOMEM.  To tell
 * the last two apart, protobuf-c allocates from an arena that notes
 * failures (arena_t.failed), since protobuf-c itself reports both as NULL.
 *
 * All allocation, including protobuf-c's, goes through vg_malloc/vg_free so
 * tests can fail it at will (common/vg_alloc.h).
 *
 * A parsed envelope lives in an arena of its own: protobuf-c's unpack makes
 * ~14 allocations per WriteBlock (structs, arrays, strings), and with
 * malloc that, plus free_unpacked's walk to free them one by one, was about
 * a third of the server's instructions per written series.  Here protobuf-c
 * bump-allocates from a few large chunks (the first sized from the frame,
 * each next one twice the last) and frees nothing; vg_frame_free_envelope()
 * frees the chunks.  To find the arena from the envelope pointer alone (the
 * callers hold only that), the envelope sits in a slot reserved right after
 * the first chunk's header: protobuf-c allocates the top message first, and
 * should a version not do so, the envelope struct is copied into the slot
 * (a shallow copy: messages hold no pointers back to their parent).
 */
#include "vg_proto.h"

#include "proto_private.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

static void *proto_alloc(void *allocator_data, size_t size)
{
	(void)allocator_data;
	return vg_malloc(size);
}

static void proto_free(void *allocator_data, void *pointer)
{
	(void)allocator_data;
	vg_free(pointer);
}

/* Not declared const so that handing it to protobuf-c's non-const parameters
 * is well-defined; nothing ever writes to it. */
static ProtobufCAllocator allocator = {.alloc = proto_alloc, .free = proto_free};

const ProtobufCAllocator *vg_proto_allocator(void)
{
	return &allocator;
}

int vg_frame_append(vg_buf_t *out, const Vigil__V1__Envelope *env)
{
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY__NOT_SET)
		return VG_EINVAL;
	size_t size = vigil__v1__envelope__get_packed_size(env);
	if (size > UINT32_MAX || size > SIZE_MAX - VG_FRAME_HEADER)
		return VG_ELIMIT;
	int rc = vg_buf_reserve(out, VG_FRAME_HEADER + size);
	if (rc)
		return rc;
	uint8_t *frame = out->data + out->len;
	vg_store_be32(frame, (uint32_t)size);
	size_t packed = vigil__v1__envelope__pack(env, frame + VG_FRAME_HEADER);
	assert(packed == size);
	(void)packed;
	out->len += VG_FRAME_HEADER + size;
	return 0;
}

int vg_frame_peek_length(const uint8_t *data, size_t len, size_t max_frame, size_t *payload_len)
{
	if (len < VG_FRAME_HEADER)
		return VG_EAGAIN;
	*payload_len = vg_load_be32(data);
	return *payload_len > max_frame ? VG_ELIMIT : 0;
}

/* ---- per-frame arena ----------------------------------------------------- */

/* Enough for every field type of vigil.proto (pointers, 64-bit integers,
 * doubles); a larger alignment costs ~25% more bytes per WriteBlock. */
#define ARENA_ALIGN 8

typedef struct arena_chunk {
	struct arena_chunk *next; /* in the first chunk: the newest; then older */
	size_t cap;               /* bytes of data[] */
	size_t used;
	_Alignas(ARENA_ALIGN) unsigned char data[];
} arena_chunk_t;

#define SLOT_SIZE ((sizeof(Vigil__V1__Envelope) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))
/* Most of the first arena chunk beyond the frame's own size (vg_frame_parse). */
#define FIRST_MARGIN_MAX ((size_t)1 << 20)

static arena_chunk_t *chunk_new(size_t cap)
{
	if (cap > SIZE_MAX - sizeof(arena_chunk_t))
		return NULL;
	arena_chunk_t *c = vg_malloc(sizeof(arena_chunk_t) + cap);
	if (!c)
		return NULL;
	c->next = NULL;
	c->cap = cap;
	c->used = 0;
	return c;
}

static void chunks_free(arena_chunk_t *c)
{
	while (c) {
		arena_chunk_t *next = c->next;
		vg_free(c);
		c = next;
	}
}

/* Chunks: the first holds the envelope slot at data[0]; first->next is the
 * newest chunk, which allocations come from, and older ones follow it. */
static void *chunk_alloc(arena_chunk_t *first, size_t size)
{
	if (size > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	arena_chunk_t *c = first->next ? first->next : first;
	if (c->cap - c->used < need) {
		size_t cap = c->cap <= SIZE_MAX / 4 ? c->cap * 2 : c->cap;
		if (cap < need)
			cap = need;
		arena_chunk_t *n = chunk_new(cap);
		if (!n)
			return NULL;
		n->next = first->next;
		first->next = c = n;
	}
	void *p = c->data + c->used;
	c->used += need;
	return p;
}

typedef struct arena {
	arena_chunk_t *first;
	bool failed;     /* an allocation failed (VG_ENOMEM, not VG_EPROTO) */
	bool allocated;  /* an allocation was asked for */
	bool slot_used;  /* the first allocation took the envelope slot */
} arena_t;

static void *arena_alloc(void *allocator_data, size_t size)
{
	arena_t *a = allocator_data;
	/* Only the very first allocation can be the envelope's. */
	bool first_call = !a->allocated;
	a->allocated = true;
	if (first_call && size == sizeof(Vigil__V1__Envelope)) {
		a->slot_used = true;
		return a->first->data;
	}
	void *p = chunk_alloc(a->first, size);
	if (!p)
		a->failed = true;
	return p;
}

/* protobuf-c frees its scratch arrays, and a partly built message when
 * unpacking fails; all of it goes with the arena. */
static void arena_free(void *allocator_data, void *pointer)
{
	(void)allocator_data;
	(void)pointer;
}

/* The first chunk of the arena whose envelope slot is env. */
static arena_chunk_t *first_chunk_of(Vigil__V1__Envelope *env)
{
	return (arena_chunk_t *)(void *)((unsigned char *)env - offsetof(arena_chunk_t, data));
}

/* ---- the Write fast path ------------------------------------------------
 *
 * protobuf-c's generic unpack walks descriptors for every field and made
 * ~3.7 k instructions per series of a WriteBlock.  Writes are nearly all the
 * server decodes, so the plain shape of one is decoded here by hand into the
 * same structs, in the same arena: an Envelope of an id and one Write; a
 * Write of blocks; each block, tag and field with every singular field at
 * most once, packed arrays at most once and non-empty, nothing unknown.
 * Anything else (repeated singular fields, unpacked arrays, unknown fields,
 * other messages) is left to protobuf-c, so the result never differs from
 * its (tests/protocol/test_frame.c compares the two).  It runs before the
 * wire walker, and whatever it takes passes the walker's checks: only known
 * fields with their declared wire types, well-formed varints and lengths
 * inside their message, packed arrays of whole elements, strings without a
 * NUL byte.  Anything else it leaves to the walker and protobuf-c.
 */

typedef struct fw_field {
	uint64_t number;
	unsigned wt;
	uint64_t value;      /* wire type 0 */
	const uint8_t *body; /* wire type 2 */
	size_t len;
} fw_field_t;

/* A varint of at most `max` bytes: protobuf-c reads field keys and length
 * prefixes in at most 5 (FW_SHORT) and refuses longer ones, values in 10. */
#define FW_SHORT 5
#define FW_LONG 10

static bool fw_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v, unsigned max)
{
	return vg_wire_varint(p, n, pos, v, max) == 0;
}

/* The next field at p[*pos..n); false for what the fast path does not take
 * (wire types other than varint and length-delimited) or bad bytes. */
static bool fw_next(const uint8_t *p, size_t n, size_t *pos, fw_field_t *f)
{
	uint64_t key;
	if (!fw_varint(p, n, pos, &key, FW_SHORT))
		return false;
	f->number = key >> 3;
	f->wt = (unsigned)(key & 7);
	if (f->wt == 0)
		return fw_varint(p, n, pos, &f->value, FW_LONG);
	if (f->wt != 2)
		return false;
	uint64_t len;
	if (!fw_varint(p, n, pos, &len, FW_SHORT) || len > n - *pos)
		return false;
	f->body = p + *pos;
	f->len = (size_t)len;
	*pos += (size_t)len;
	return true;
}

/* Results: 1 decoded, 0 not the plain shape, VG_ENOMEM. */
#define FW_OK 1
#define FW_NO 0

static int fw_string(arena_chunk_t *a, const fw_field_t *f, char **out)
{
	if (f->len && memchr(f->body, 0, f->len))
		return FW_NO; /* refused, with its reason, by the walker */
	char *s = chunk_alloc(a, f->len + 1);
	if (!s)
		return VG_ENOMEM;
	if (f->len)
		memcpy(s, f->body, f->len);
	s[f->len] = '\0';
	*out = s;
	return FW_OK;
}

/* A packed array of 8-byte elements (sfixed64, double): little-endian on
 * the wire, so a copy on a little-endian host. */
static int fw_packed8(arena_chunk_t *a, const fw_field_t *f, void **out, size_t *count)
{
	if (f->len == 0 || f->len % 8)
		return FW_NO;
	void *v = chunk_alloc(a, f->len);
	if (!v)
		return VG_ENOMEM;
	memcpy(v, f->body, f->len);
	*out = v;
	*count = f->len / 8;
	return FW_OK;
}

static int fw_tag(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__Tag **out)
{
	Vigil__V1__Tag *t = chunk_alloc(a, sizeof *t);
	if (!t)
		return VG_ENOMEM;
	vigil__v1__tag__init(t);
	bool have_key = false, have_value = false;
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2)
			return FW_NO;
		int rc;
		if (f.number == 1 && !have_key) {
			have_key = true;
			rc = fw_string(a, &f, &t->key);
		} else if (f.number == 2 && !have_value) {
			have_value = true;
			rc = fw_string(a, &f, &t->value);
		} else {
			return FW_NO;
		}
		if (rc != FW_OK)
			return rc;
	}
	*out = t;
	return FW_OK;
}

static int fw_field(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__WriteField **out)
{
	Vigil__V1__WriteField *wf = chunk_alloc(a, sizeof *wf);
	if (!wf)
		return VG_ENOMEM;
	vigil__v1__write_field__init(wf);
	bool have_name = false, have_values = false;
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2)
			return FW_NO;
		int rc;
		if (f.number == 1 && !have_name) {
			have_name = true;
			rc = fw_string(a, &f, &wf->name);
		} else if (f.number == 2 && !have_values) {
			have_values = true;
			void *v = NULL;
			rc = fw_packed8(a, &f, &v, &wf->n_values);
			wf->values = v;
		} else {
			return FW_NO;
		}
		if (rc != FW_OK)
			return rc;
	}
	*out = wf;
	return FW_OK;
}

static int fw_block(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__WriteBlock **out)
{
	/* First pass: the shape, and the sizes of the repeated fields. */
	size_t ntags = 0, nfields = 0;
	bool have_measurement = false, have_times = false;
	fw_field_t measurement = {0}, times = {0};
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2)
			return FW_NO;
		if (f.number == 1 && !have_measurement) {
			have_measurement = true;
			measurement = f;
		} else if (f.number == 2) {
			ntags++;
		} else if (f.number == 3 && !have_times) {
			have_times = true;
			times = f;
		} else if (f.number == 4) {
			nfields++;
		} else {
			return FW_NO;
		}
	}
	Vigil__V1__WriteBlock *b = chunk_alloc(a, sizeof *b);
	if (!b)
		return VG_ENOMEM;
	vigil__v1__write_block__init(b);
	int rc = FW_OK;
	if (have_measurement)
		rc = fw_string(a, &measurement, &b->measurement);
	if (rc == FW_OK && have_times) {
		void *v = NULL;
		rc = fw_packed8(a, &times, &v, &b->n_times);
		b->times = v;
	}
	if (rc == FW_OK && ntags) {
		b->tags = chunk_alloc(a, ntags * sizeof *b->tags);
		rc = b->tags ? FW_OK : VG_ENOMEM;
	}
	if (rc == FW_OK && nfields) {
		b->fields = chunk_alloc(a, nfields * sizeof *b->fields);
		rc = b->fields ? FW_OK : VG_ENOMEM;
	}
	/* Second pass: the sub-messages, in wire order. */
	for (size_t pos = 0; pos < n && rc == FW_OK;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		if (f.number == 2)
			rc = fw_tag(a, f.body, f.len, &b->tags[b->n_tags++]);
		else if (f.number == 4)
			rc = fw_field(a, f.body, f.len, &b->fields[b->n_fields++]);
	}
	if (rc == FW_OK)
		*out = b;
	return rc;
}

static int fw_write(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__Write **out)
{
	size_t nblocks = 0;
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2 || f.number != 1)
			return FW_NO;
		nblocks++;
	}
	Vigil__V1__Write *w = chunk_alloc(a, sizeof *w);
	if (!w)
		return VG_ENOMEM;
	vigil__v1__write__init(w);
	if (nblocks) {
		w->blocks = chunk_alloc(a, nblocks * sizeof *w->blocks);
		if (!w->blocks)
			return VG_ENOMEM;
	}
	int rc = FW_OK;
	for (size_t pos = 0; pos < n && rc == FW_OK;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		rc = fw_block(a, f.body, f.len, &w->blocks[w->n_blocks++]);
	}
	if (rc == FW_OK)
		*out = w;
	return rc;
}

/* ---- the result fast path ------------------------------------------------
 *
 * The same for the frames a client reads most: ResultSet and ResultRows
 * (an answer grouped by a tag is two frames per group).  Plain shape only:
 * every singular field at most once, packed arrays non-empty, enum values
 * known, booleans 0 or 1; anything else goes to the walker and protobuf-c.
 */

static int fw_bytes(arena_chunk_t *a, const fw_field_t *f, ProtobufCBinaryData *out)
{
	if (f->len == 0)
		return FW_NO;
	uint8_t *d = chunk_alloc(a, f->len);
	if (!d)
		return VG_ENOMEM;
	memcpy(d, f->body, f->len);
	out->data = d;
	out->len = f->len;
	return FW_OK;
}

static int fw_column(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__Column **out)
{
	size_t nstrings = 0;
	bool have_floats = false, have_nulls = false;
	fw_field_t floats = {0}, nulls = {0};
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2)
			return FW_NO;
		if (f.number == 1 && !have_floats) {
			have_floats = true;
			floats = f;
		} else if (f.number == 2) {
			nstrings++;
		} else if (f.number == 3 && !have_nulls) {
			have_nulls = true;
			nulls = f;
		} else {
			return FW_NO;
		}
	}
	Vigil__V1__Column *c = chunk_alloc(a, sizeof *c);
	if (!c)
		return VG_ENOMEM;
	vigil__v1__column__init(c);
	int rc = FW_OK;
	if (have_floats) {
		void *v = NULL;
		rc = fw_packed8(a, &floats, &v, &c->n_floats);
		c->floats = v;
	}
	if (rc == FW_OK && have_nulls)
		rc = fw_bytes(a, &nulls, &c->nulls);
	if (rc == FW_OK && nstrings) {
		c->strings = chunk_alloc(a, nstrings * sizeof *c->strings);
		rc = c->strings ? FW_OK : VG_ENOMEM;
		for (size_t pos = 0; pos < n && rc == FW_OK;) {
			fw_field_t f;
			if (!fw_next(p, n, &pos, &f))
				return FW_NO;
			if (f.number == 2)
				rc = fw_string(a, &f, &c->strings[c->n_strings++]);
		}
	}
	if (rc == FW_OK)
		*out = c;
	return rc;
}

static int fw_result_rows(arena_chunk_t *a, const uint8_t *p, size_t n,
                          Vigil__V1__ResultRows **out)
{
	size_t ncols = 0;
	bool have_times = false;
	fw_field_t times = {0};
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f) || f.wt != 2)
			return FW_NO;
		if (f.number == 1 && !have_times) {
			have_times = true;
			times = f;
		} else if (f.number == 2) {
			ncols++;
		} else {
			return FW_NO;
		}
	}
	Vigil__V1__ResultRows *r = chunk_alloc(a, sizeof *r);
	if (!r)
		return VG_ENOMEM;
	vigil__v1__result_rows__init(r);
	int rc = FW_OK;
	if (have_times) {
		void *v = NULL;
		rc = fw_packed8(a, &times, &v, &r->n_times);
		r->times = v;
	}
	if (rc == FW_OK && ncols) {
		r->columns = chunk_alloc(a, ncols * sizeof *r->columns);
		rc = r->columns ? FW_OK : VG_ENOMEM;
	}
	for (size_t pos = 0; pos < n && rc == FW_OK;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		if (f.number == 2)
			rc = fw_column(a, f.body, f.len, &r->columns[r->n_columns++]);
	}
	if (rc == FW_OK)
		*out = r;
	return rc;
}

static int fw_result_set(arena_chunk_t *a, const uint8_t *p, size_t n, Vigil__V1__ResultSet **out)
{
	size_t ntags = 0, ncols = 0;
	bool have_name = false, have_types = false, have_time = false;
	fw_field_t name = {0}, types = {0};
	uint64_t has_time = 0;
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		if (f.number == 5 && f.wt == 0 && !have_time && f.value <= 1) {
			have_time = true;
			has_time = f.value;
		} else if (f.wt != 2) {
			return FW_NO;
		} else if (f.number == 1 && !have_name) {
			have_name = true;
			name = f;
		} else if (f.number == 2) {
			ntags++;
		} else if (f.number == 3) {
			ncols++;
		} else if (f.number == 4 && !have_types && f.len) {
			have_types = true;
			types = f;
		} else {
			return FW_NO;
		}
	}
	/* The types: one-byte varints of known values only. */
	for (size_t i = 0; i < types.len; i++)
		if (types.body[i] > VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_INTEGER)
			return FW_NO;
	Vigil__V1__ResultSet *s = chunk_alloc(a, sizeof *s);
	if (!s)
		return VG_ENOMEM;
	vigil__v1__result_set__init(s);
	s->has_time = has_time != 0;
	int rc = have_name ? fw_string(a, &name, &s->name) : FW_OK;
	if (rc == FW_OK && types.len) {
		s->types = chunk_alloc(a, types.len * sizeof *s->types);
		rc = s->types ? FW_OK : VG_ENOMEM;
		for (size_t i = 0; rc == FW_OK && i < types.len; i++)
			s->types[s->n_types++] = (Vigil__V1__ColumnType)types.body[i];
	}
	if (rc == FW_OK && ntags) {
		s->tags = chunk_alloc(a, ntags * sizeof *s->tags);
		rc = s->tags ? FW_OK : VG_ENOMEM;
	}
	if (rc == FW_OK && ncols) {
		s->columns = chunk_alloc(a, ncols * sizeof *s->columns);
		rc = s->columns ? FW_OK : VG_ENOMEM;
	}
	for (size_t pos = 0; pos < n && rc == FW_OK;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		if (f.number == 2)
			rc = fw_tag(a, f.body, f.len, &s->tags[s->n_tags++]);
		else if (f.number == 3)
			rc = fw_string(a, &f, &s->columns[s->n_columns++]);
	}
	if (rc == FW_OK)
		*out = s;
	return rc;
}

/* Decodes a plain Write, ResultSet or ResultRows envelope into the slot of
 * arena a. */
static int fw_envelope(arena_chunk_t *a, const uint8_t *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	Vigil__V1__Envelope *env = (Vigil__V1__Envelope *)(void *)a->data;
	vigil__v1__envelope__init(env);
	bool have_id = false;
	const uint8_t *body = NULL;
	size_t body_len = 0;
	uint64_t which = 0;
	for (size_t pos = 0; pos < n;) {
		fw_field_t f;
		if (!fw_next(p, n, &pos, &f))
			return FW_NO;
		if (f.number == 1 && f.wt == 0 && !have_id) {
			have_id = true;
			env->id = f.value;
		} else if ((f.number == 3 || f.number == 18 || f.number == 19) && f.wt == 2 &&
		           !body) {
			body = f.body;
			body_len = f.len;
			which = f.number;
		} else {
			return FW_NO;
		}
	}
	int rc = FW_NO;
	if (which == 3) {
		rc = fw_write(a, body, body_len, &env->write);
		if (rc == FW_OK)
			env->body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	} else if (which == 18) {
		rc = fw_result_set(a, body, body_len, &env->result_set);
		if (rc == FW_OK)
			env->body_case = VIGIL__V1__ENVELOPE__BODY_RESULT_SET;
	} else if (which == 19) {
		rc = fw_result_rows(a, body, body_len, &env->result_rows);
		if (rc == FW_OK)
			env->body_case = VIGIL__V1__ENVELOPE__BODY_RESULT_ROWS;
	}
	return rc;
#else
	(void)a;
	(void)p;
	(void)n;
	return FW_NO;
#endif
}

int vg_frame_parse(const uint8_t *data, size_t len, size_t max_frame, Vigil__V1__Envelope **out,
                   size_t *consumed)
{
	*out = NULL;
	*consumed = 0;
	size_t n;
	int rc = vg_frame_peek_length(data, len, max_frame, &n);
	if (rc)
		return rc;
	if (len - VG_FRAME_HEADER < n)
		return VG_EAGAIN;
	const uint8_t *payload = data + VG_FRAME_HEADER;

	/* Decoded structs take ~4-5 x the wire bytes for ordinary writes (304
	 * bytes for a 72-byte block of 2 tags, 1 field, 1 point), so one chunk
	 * holds them; more (up to ~55 x, see vg_proto.h) comes from further
	 * chunks.  Frames in flight (connections x pipeline) hold this much
	 * each, so it is not rounded up generously, and the margin above the
	 * frame's own size stops at FIRST_MARGIN_MAX: a big frame (a result
	 * of packed floats decodes to about its own size) or a malformed one
	 * does not reserve 5 x 16 MiB before anything is checked. */
	size_t margin = n < FIRST_MARGIN_MAX / 4 ? 4 * n : FIRST_MARGIN_MAX;
	size_t first_cap = SLOT_SIZE + 256 + n + margin;
	arena_t a = {.first = chunk_new(first_cap)};
	if (a.first) {
		a.first->used = SLOT_SIZE;
		/* A plain Write: the fast path checks all the walker would (it
		 * takes known fields of the right wire types only, whole packed
		 * arrays, strings without NUL), so it runs alone. */
		rc = fw_envelope(a.first, payload, n);
		if (rc == FW_OK) {
			*consumed = VG_FRAME_HEADER + n;
			*out = (Vigil__V1__Envelope *)(void *)a.first->data;
			return 0;
		}
		if (rc == FW_NO) {
			/* Start the arena over for protobuf-c. */
			chunks_free(a.first->next);
			a.first->next = NULL;
			a.first->used = SLOT_SIZE;
		} else {
			chunks_free(a.first);
			a.first = NULL;
		}
	}

	/* Refuse what protobuf-c would refuse or silently alter, before it
	 * decodes anything; a malformed frame is VG_EPROTO even when memory
	 * is short. */
	vg_wire_report_t report;
	vg_msg_t quiet;
	vg_msg_init(&quiet, NULL, 0);
	if (vg_wire_scan_envelope(payload, n, &report, &quiet) || !report.has_body) {
		chunks_free(a.first);
		*consumed = VG_FRAME_HEADER + n;
		return VG_EPROTO;
	}
	if (!a.first)
		return VG_ENOMEM;
	/* Not plain: protobuf-c decodes it. */
	ProtobufCAllocator arena_allocator = {
	    .alloc = arena_alloc, .free = arena_free, .allocator_data = &a};
	Vigil__V1__Envelope *env = vigil__v1__envelope__unpack(&arena_allocator, n, payload);
	if (!env || env->body_case == VIGIL__V1__ENVELOPE__BODY__NOT_SET) {
		chunks_free(a.first);
		if (!env && a.failed)
			return VG_ENOMEM;
		*consumed = VG_FRAME_HEADER + n;
		return VG_EPROTO;
	}
	Vigil__V1__Envelope *slot = (Vigil__V1__Envelope *)(void *)a.first->data;
	if (env != slot && a.slot_used) {
		/* The slot went to something else: a new first chunk holds the
		 * envelope and, through it, all the others. */
		arena_chunk_t *c = chunk_new(SLOT_SIZE);
		if (!c) {
			chunks_free(a.first);
			return VG_ENOMEM;
		}
		c->used = SLOT_SIZE;
		c->next = a.first;
		a.first = c;
		slot = (Vigil__V1__Envelope *)(void *)c->data;
	}
	if (env != slot)
		memcpy(slot, env, sizeof *slot);
	*consumed = VG_FRAME_HEADER + n;
	*out = slot;
	return 0;
}

Vigil__V1__Envelope *vg_envelope_new(void)
{
	arena_chunk_t *c = chunk_new(SLOT_SIZE + 4096);
	if (!c)
		return NULL;
	c->used = SLOT_SIZE;
	Vigil__V1__Envelope *env = (Vigil__V1__Envelope *)(void *)c->data;
	vigil__v1__envelope__init(env);
	return env;
}

void *vg_envelope_alloc(Vigil__V1__Envelope *env, size_t size)
{
	return chunk_alloc(first_chunk_of(env), size);
}

void vg_frame_free_envelope(Vigil__V1__Envelope *env)
{
	if (env)
		chunks_free(first_chunk_of(env));
}
