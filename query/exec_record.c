/*
 * exec_record.c — a result sink that keeps what it is given, to pass it on
 * later.
 *
 * A helper thread that reads part of a statement's groups cannot hand its
 * rows to the statement's sink, which belongs to the calling thread and
 * must see the groups in order; it records them here instead, and the
 * caller replays the record into the real sink after its own groups.
 *
 * Each begin_set and each rows call becomes one entry, a single allocation
 * holding a deep copy of everything the call lent (names, tags, column
 * arrays, null bitmaps, string bytes), in a singly linked list in call
 * order.  Memory is the size of the recorded rows; the caller bounds it the
 * way it bounds the rows themselves.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <string.h>

typedef enum { ENTRY_SET, ENTRY_ROWS } entry_kind_t;

struct vg_record_entry {
	vg_record_entry_t *next;
	entry_kind_t kind;
	vg_result_set_t set;            /* ENTRY_SET */
	const int64_t *times;           /* ENTRY_ROWS; NULL without a time column */
	vg_result_column_t *columns;    /* ENTRY_ROWS */
	size_t ncols, nrows;
};

/* Bump allocation inside one entry's block, 8-byte aligned. */
typedef struct carve {
	unsigned char *at;
	size_t used;
} carve_t;

static void *carve(carve_t *c, size_t size)
{
	void *p = c->at ? c->at + c->used : NULL;
	c->used += (size + 7) & ~(size_t)7;
	return p;
}

static vg_str_t carve_str(carve_t *c, vg_str_t s)
{
	char *p = carve(c, s.len);
	if (p && s.len)
		memcpy(p, s.data, s.len);
	return (vg_str_t){p ? p : "", s.len};
}

static void *carve_copy(carve_t *c, const void *src, size_t size)
{
	void *p = carve(c, size);
	if (p && size)
		memcpy(p, src, size);
	return p;
}

/* Lays out (at == NULL: measures) a copy of `set` in the block. */
static void lay_set(carve_t *c, vg_result_set_t *dst, const vg_result_set_t *set)
{
	vg_tag_t *tags = carve(c, set->ntags * sizeof *tags);
	vg_str_t *columns = carve(c, set->ncolumns * sizeof *columns);
	vg_column_type_t *types = carve_copy(c, set->types, set->ncolumns * sizeof *types);
	vg_str_t name = carve_str(c, set->name);
	for (size_t i = 0; i < set->ntags; i++) {
		vg_str_t k = carve_str(c, set->tags[i].key), v = carve_str(c, set->tags[i].value);
		if (tags)
			tags[i] = (vg_tag_t){k, v};
	}
	for (size_t i = 0; i < set->ncolumns; i++) {
		vg_str_t s = carve_str(c, set->columns[i]);
		if (columns)
			columns[i] = s;
	}
	if (dst)
		*dst = (vg_result_set_t){name,    tags,          set->ntags, columns,
		                         types,   set->ncolumns, set->has_time};
}

/* Lays out (at == NULL: measures) a copy of one rows call in the block. */
static void lay_rows(carve_t *c, vg_record_entry_t *e, const int64_t *times,
                     const vg_result_column_t *columns, size_t ncols, size_t nrows)
{
	const int64_t *t = times ? carve_copy(c, times, nrows * sizeof *times) : NULL;
	vg_result_column_t *cols = carve(c, ncols * sizeof *cols);
	for (size_t i = 0; i < ncols; i++) {
		const vg_result_column_t *src = &columns[i];
		vg_result_column_t col = {src->type, NULL, NULL, NULL};
		if (src->nulls)
			col.nulls = carve_copy(c, src->nulls, (nrows + 7) / 8);
		if (src->floats)
			col.floats = carve_copy(c, src->floats, nrows * sizeof *src->floats);
		if (src->strings) {
			vg_str_t *strings = carve(c, nrows * sizeof *strings);
			for (size_t r = 0; r < nrows; r++) {
				vg_str_t s = carve_str(c, src->strings[r]);
				if (strings)
					strings[r] = s;
			}
			col.strings = strings;
		}
		if (cols)
			cols[i] = col;
	}
	if (e) {
		e->times = t;
		e->columns = cols;
		e->ncols = ncols;
		e->nrows = nrows;
	}
}

#define ENTRY_HEAD ((sizeof(vg_record_entry_t) + 7) & ~(size_t)7)

/* A new entry of `kind` with `body` bytes behind it, *c set to carve them;
 * NULL when out of memory. */
static vg_record_entry_t *entry_new(entry_kind_t kind, size_t body, carve_t *c)
{
	vg_record_entry_t *e = vg_malloc(ENTRY_HEAD + body);
	if (!e)
		return NULL;
	memset(e, 0, sizeof *e);
	e->kind = kind;
	*c = (carve_t){(unsigned char *)e + ENTRY_HEAD, 0};
	return e;
}

static void append(vg_record_t *rec, vg_record_entry_t *e, const carve_t *c)
{
	*rec->tail = e;
	rec->tail = &e->next;
	rec->bytes += ENTRY_HEAD + c->used;
}

static int record_begin_set(void *ctx, const vg_result_set_t *set)
{
	vg_record_t *rec = ctx;
	carve_t c = {NULL, 0};
	lay_set(&c, NULL, set);
	vg_record_entry_t *e = entry_new(ENTRY_SET, c.used, &c);
	if (!e)
		return VG_ENOMEM;
	lay_set(&c, &e->set, set);
	append(rec, e, &c);
	return 0;
}

static int record_rows(void *ctx, const int64_t *times, const vg_result_column_t *columns,
                       size_t ncols, size_t nrows)
{
	vg_record_t *rec = ctx;
	carve_t c = {NULL, 0};
	lay_rows(&c, NULL, times, columns, ncols, nrows);
	vg_record_entry_t *e = entry_new(ENTRY_ROWS, c.used, &c);
	if (!e)
		return VG_ENOMEM;
	lay_rows(&c, e, times, columns, ncols, nrows);
	append(rec, e, &c);
	return 0;
}

void vg_record_init(vg_record_t *rec)
{
	rec->first = NULL;
	rec->tail = &rec->first;
	rec->bytes = 0;
	rec->sink = (vg_result_sink_t){record_begin_set, record_rows, rec};
}

void vg_record_release(vg_record_t *rec)
{
	vg_record_entry_t *e = rec->first;
	while (e) {
		vg_record_entry_t *next = e->next;
		vg_free(e);
		e = next;
	}
	vg_record_init(rec);
}

int vg_record_replay(const vg_record_t *rec, const vg_result_sink_t *sink)
{
	for (const vg_record_entry_t *e = rec->first; e; e = e->next) {
		int code = e->kind == ENTRY_SET
		               ? sink->begin_set(sink->ctx, &e->set)
		               : sink->rows(sink->ctx, e->times, e->columns, e->ncols, e->nrows);
		if (code)
			return code;
	}
	return 0;
}
