/*
 * encode.c — the result frames written by hand.
 *
 * A query answer is a ResultSet frame per group and ResultRows frames of up
 * to a block of rows each: for GROUP BY tags over many series, hundreds of
 * small frames per answer.  Building protobuf-c structs for them costs a
 * copy of every name into a NUL-terminated string and a reflective walk
 * over the descriptors to size and pack them — several thousand
 * instructions per frame, about a tenth of an answer like
 * double-groupby-1's.  These encoders write the same bytes straight from
 * the caller's views: a frame header, the Envelope's id and body field, and
 * the nested messages with their lengths computed first.
 *
 * The output is byte-for-byte what vg_frame_append() gives for the same
 * Envelope (tests/protocol/test_encode.c checks it against protobuf-c):
 * fields in number order; proto3 defaults (empty strings, false, id 0,
 * empty repeated fields) left out; repeated scalars packed (one
 * length-delimited run); every element of a repeated string written, empty
 * or not.
 */
#include "vg_proto.h"

#include "proto_private.h"

#include <string.h>

enum {
	WIRE_VARINT = 0,
	WIRE_FIXED64 = 1,
	WIRE_LEN = 2,
};

/* Envelope, ResultSet, Tag, ResultRows and Column field numbers
 * (protocol/vigil.proto). */
enum {
	ENVELOPE_ID = 1,
	ENVELOPE_RESULT_SET = 18,
	ENVELOPE_RESULT_ROWS = 19,
	SET_NAME = 1,
	SET_TAGS = 2,
	SET_COLUMNS = 3,
	SET_TYPES = 4,
	SET_HAS_TIME = 5,
	TAG_KEY = 1,
	TAG_VALUE = 2,
	ROWS_TIMES = 1,
	ROWS_COLUMNS = 2,
	COLUMN_FLOATS = 1,
	COLUMN_STRINGS = 2,
	COLUMN_NULLS = 3,
};

static size_t key_size(unsigned field) { return vg_uvarint_size((uint64_t)field << 3); }

static uint8_t *put_key(uint8_t *p, unsigned field, unsigned wire)
{
	return vg_uvarint_store(p, (uint64_t)field << 3 | wire);
}

/* A length-delimited field of `len` bytes, key and length included. */
static size_t len_field_size(unsigned field, size_t len)
{
	return key_size(field) + vg_uvarint_size(len) + len;
}

static uint8_t *put_len_header(uint8_t *p, unsigned field, size_t len)
{
	p = put_key(p, field, WIRE_LEN);
	return vg_uvarint_store(p, len);
}

static uint8_t *put_bytes(uint8_t *p, unsigned field, const void *data, size_t len)
{
	p = put_len_header(p, field, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

/* Little-endian 8-byte words, as fixed64 and double are on the wire. */
static uint8_t *put_words(uint8_t *p, const void *words, size_t n)
{
	const uint8_t *w = words;
	for (size_t i = 0; i < n; i++, w += 8, p += 8) {
		uint64_t v;
		memcpy(&v, w, 8);
		for (int b = 0; b < 8; b++)
			p[b] = (uint8_t)(v >> (8 * b));
	}
	return p;
}

/* Reserves room for a frame whose Envelope holds `id` and a body of
 * body_len bytes in field `field`; returns where the body goes, or NULL
 * (and *code) when the frame is too large or out of memory. */
static uint8_t *begin_frame(vg_buf_t *out, uint64_t id, unsigned field, size_t body_len,
                            int *code)
{
	size_t env = (id ? key_size(ENVELOPE_ID) + vg_uvarint_size(id) : 0) +
	             len_field_size(field, body_len);
	if (env > UINT32_MAX || env > SIZE_MAX - VG_FRAME_HEADER) {
		*code = VG_ELIMIT;
		return NULL;
	}
	*code = vg_buf_reserve(out, VG_FRAME_HEADER + env);
	if (*code)
		return NULL;
	uint8_t *p = out->data + out->len;
	vg_store_be32(p, (uint32_t)env);
	p += VG_FRAME_HEADER;
	if (id) {
		p = put_key(p, ENVELOPE_ID, WIRE_VARINT);
		p = vg_uvarint_store(p, id);
	}
	out->len += VG_FRAME_HEADER + env;
	return put_len_header(p, field, body_len);
}

static size_t tag_size(vg_wire_text_t key, vg_wire_text_t value)
{
	return (key.len ? len_field_size(TAG_KEY, key.len) : 0) +
	       (value.len ? len_field_size(TAG_VALUE, value.len) : 0);
}

int vg_frame_append_result_set(vg_buf_t *out, uint64_t id, const vg_wire_result_set_t *set)
{
	size_t types_len = 0;
	for (size_t i = 0; i < set->ncolumns; i++)
		types_len += vg_uvarint_size((uint64_t)set->types[i]);
	size_t body = set->name.len ? len_field_size(SET_NAME, set->name.len) : 0;
	for (size_t i = 0; i < set->ntags; i++)
		body += len_field_size(SET_TAGS, tag_size(set->tags[2 * i], set->tags[2 * i + 1]));
	for (size_t i = 0; i < set->ncolumns; i++)
		body += len_field_size(SET_COLUMNS, set->columns[i].len);
	if (set->ncolumns)
		body += len_field_size(SET_TYPES, types_len);
	if (set->has_time)
		body += key_size(SET_HAS_TIME) + 1;
	int code;
	uint8_t *p = begin_frame(out, id, ENVELOPE_RESULT_SET, body, &code);
	if (!p)
		return code;
	if (set->name.len)
		p = put_bytes(p, SET_NAME, set->name.data, set->name.len);
	for (size_t i = 0; i < set->ntags; i++) {
		vg_wire_text_t key = set->tags[2 * i], value = set->tags[2 * i + 1];
		p = put_len_header(p, SET_TAGS, tag_size(key, value));
		if (key.len)
			p = put_bytes(p, TAG_KEY, key.data, key.len);
		if (value.len)
			p = put_bytes(p, TAG_VALUE, value.data, value.len);
	}
	for (size_t i = 0; i < set->ncolumns; i++)
		p = put_bytes(p, SET_COLUMNS, set->columns[i].data, set->columns[i].len);
	if (set->ncolumns) {
		p = put_len_header(p, SET_TYPES, types_len);
		for (size_t i = 0; i < set->ncolumns; i++)
			p = vg_uvarint_store(p, (uint64_t)set->types[i]);
	}
	if (set->has_time) {
		p = put_key(p, SET_HAS_TIME, WIRE_VARINT);
		*p++ = 1;
	}
	return 0;
}

static size_t column_size(const vg_wire_column_t *c, size_t nrows)
{
	size_t n = 0;
	if (c->floats && nrows)
		n += len_field_size(COLUMN_FLOATS, 8 * nrows);
	if (c->strings)
		for (size_t r = 0; r < nrows; r++)
			n += len_field_size(COLUMN_STRINGS, c->strings[r].len);
	if (c->nulls && nrows)
		n += len_field_size(COLUMN_NULLS, (nrows + 7) / 8);
	return n;
}

int vg_frame_append_result_rows(vg_buf_t *out, uint64_t id, const int64_t *times,
                                const vg_wire_column_t *columns, size_t ncols, size_t nrows)
{
	if (nrows > (SIZE_MAX - 64) / 8 / (ncols + 1))
		return VG_ELIMIT;
	size_t body = times && nrows ? len_field_size(ROWS_TIMES, 8 * nrows) : 0;
	for (size_t c = 0; c < ncols; c++)
		body += len_field_size(ROWS_COLUMNS, column_size(&columns[c], nrows));
	int code;
	uint8_t *p = begin_frame(out, id, ENVELOPE_RESULT_ROWS, body, &code);
	if (!p)
		return code;
	if (times && nrows) {
		p = put_len_header(p, ROWS_TIMES, 8 * nrows);
		p = put_words(p, times, nrows);
	}
	for (size_t c = 0; c < ncols; c++) {
		const vg_wire_column_t *col = &columns[c];
		p = put_len_header(p, ROWS_COLUMNS, column_size(col, nrows));
		if (col->floats && nrows) {
			p = put_len_header(p, COLUMN_FLOATS, 8 * nrows);
			p = put_words(p, col->floats, nrows);
		}
		if (col->strings)
			for (size_t r = 0; r < nrows; r++)
				p = put_bytes(p, COLUMN_STRINGS, col->strings[r].data,
				              col->strings[r].len);
		if (col->nulls && nrows)
			p = put_bytes(p, COLUMN_NULLS, col->nulls, (nrows + 7) / 8);
	}
	return 0;
}
