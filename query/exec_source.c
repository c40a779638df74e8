/*
 * exec_source.c — where the executor's points come from.
 *
 * A series source wraps one store cursor.  Its one trick is choosing the
 * limit for vg_cursor_skip_chunk: the edge of the bucket holding the first
 * time not yet consumed.  A chunk that ends before that edge lies wholly in
 * that bucket (it cannot start before the consumed position), so its header
 * can stand in for its points.  A chunk that starts in a later bucket is
 * decoded instead — the one case the limit cannot see, and only at gaps in
 * the data.  Without GROUP BY time the limit is the range's end, and every
 * whole chunk inside the range is read from its header.
 *
 * A row source merges the cursors of one tag set's fields by time, giving
 * rows (time, value or absent per field) for field conditions and raw
 * output.  Rows need every point, with one exception: a raw query with
 * LIMIT often needs only the newest (or oldest) point of a chunk, which the
 * header holds (last_value at max_time, first_value at min_time), so such a
 * source takes that point from the header and decodes the chunk only if
 * the merge comes back for more ("edges").  Fetching is lazy for the same
 * reason: nothing is read past the row that meets the LIMIT.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <string.h>

static int store_error(vg_exec_t *x, int code)
{
	if (code == VG_ENOMEM)
		return vg_query_error_set(x->err, code, "out of memory");
	return vg_query_error_set(x->err, code, "reading series failed: %s", vg_strerror(code));
}

int vg_series_src_open(vg_exec_t *x, vg_series_src_t *src, int64_t t0, int64_t t1)
{
	src->cursor = NULL;
	src->done = false;
	src->have_header = false;
	src->n = src->pos = 0;
	int code = vg_cursor_open(x->txn, src->id, t0, t1, src->reverse ? VG_CURSOR_REVERSE : 0,
	                          &src->cursor);
	if (code)
		return store_error(x, code);
	return vg_series_src_fetch(x, src, src->reverse ? t1 - 1 : t0);
}

int vg_series_src_fetch(vg_exec_t *x, vg_series_src_t *src, int64_t p)
{
	src->have_header = false;
	int code;
	if (src->headers) {
		code = vg_cursor_skip_chunk(src->cursor, src->limit(src->lctx, p), &src->header);
		if (code == 1) {
			src->have_header = true;
			src->next = src->reverse ? src->header.max_time : src->header.min_time;
			if (x->stats)
				x->stats->points_scanned += src->header.count;
			return 0;
		}
		if (code)
			return store_error(x, code);
	}
	code = vg_cursor_next(src->cursor, &src->times, &src->values, &src->n);
	if (code)
		return store_error(x, code);
	src->pos = 0;
	if (src->n == 0) {
		src->done = true;
		vg_cursor_close(src->cursor);
		src->cursor = NULL;
		return 0;
	}
	src->next = src->times[0];
	if (x->stats)
		x->stats->points_scanned += src->n;
	return vg_exec_check(x);
}

void vg_series_src_close(vg_series_src_t *src)
{
	vg_cursor_close(src->cursor);
	src->cursor = NULL;
	src->done = true;
}

/* ---- row sources ----------------------------------------------------------- */

static int open_field(vg_exec_t *x, vg_row_src_t *src, vg_row_field_t *f, int64_t t0, int64_t t1)
{
	int code = vg_cursor_open(x->txn, (vg_series_id_t)f->id, t0, t1,
	                          src->reverse ? VG_CURSOR_REVERSE : 0, &f->cursor);
	return code ? store_error(x, code) : 0;
}

/* Fills field f's next block (n = 0 and no cursor at its end). */
static int field_fetch(vg_exec_t *x, vg_row_src_t *src, vg_row_field_t *f)
{
	f->pos = f->n = 0;
	int code;
	if (f->edge) {
		/* The header point is used: read the rest of its chunk. */
		f->edge = false;
		vg_cursor_close(f->cursor);
		f->cursor = NULL;
		if (src->reverse ? f->edge_time > src->t0 : f->edge_time < src->t1 - 1) {
			code = src->reverse ? open_field(x, src, f, src->t0, f->edge_time)
			                    : open_field(x, src, f, f->edge_time + 1, src->t1);
			if (code)
				return code;
		}
	}
	if (!f->cursor)
		return 0;
	if (src->edges) {
		vg_chunk_header_t h;
		code = vg_cursor_skip_chunk(f->cursor, src->reverse ? src->t0 : src->t1, &h);
		if (code < 0)
			return store_error(x, code);
		if (code == 1) {
			f->edge = true;
			f->edge_time = src->reverse ? h.max_time : h.min_time;
			f->edge_value = src->reverse ? h.last_value : h.first_value;
			f->times = &f->edge_time;
			f->values = &f->edge_value;
			f->n = 1;
			if (x->stats)
				x->stats->points_scanned++;
			return 0;
		}
	}
	code = vg_cursor_next(f->cursor, &f->times, &f->values, &f->n);
	if (code)
		return store_error(x, code);
	if (f->n == 0) {
		vg_cursor_close(f->cursor);
		f->cursor = NULL;
		return 0;
	}
	if (x->stats)
		x->stats->points_scanned += f->n;
	return vg_exec_check(x);
}

int vg_row_src_open(vg_exec_t *x, vg_row_src_t *src, const vg_tagset_t *ts, size_t nfields,
                    int64_t t0, int64_t t1, bool reverse, bool edges)
{
	memset(src, 0, sizeof *src);
	src->nfields = nfields;
	src->reverse = reverse;
	src->edges = edges;
	src->t0 = t0;
	src->t1 = t1;
	src->done = true;
	src->fields = vg_calloc(nfields ? nfields : 1, sizeof *src->fields);
	if (!src->fields)
		return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
	for (size_t f = 0; f < nfields; f++) {
		vg_row_field_t *rf = &src->fields[f];
		rf->id = ts->series[f];
		if (rf->id < 0 || t0 >= t1)
			continue;
		int code = open_field(x, src, rf, t0, t1);
		if (code) {
			vg_row_src_close(src);
			return code;
		}
		rf->pos = rf->n = 0; /* fetched at the first peek */
	}
	src->stale = true;
	return 0;
}

void vg_row_src_close(vg_row_src_t *src)
{
	for (size_t f = 0; src->fields && f < src->nfields; f++)
		vg_cursor_close(src->fields[f].cursor);
	vg_free(src->fields);
	memset(src, 0, sizeof *src);
	src->done = true;
}

int vg_row_src_peek(vg_exec_t *x, vg_row_src_t *src)
{
	if (!src->stale)
		return 0;
	bool any = false;
	int64_t best = 0;
	for (size_t i = 0; i < src->nfields; i++) {
		vg_row_field_t *f = &src->fields[i];
		if (f->pos >= f->n && f->cursor) {
			int code = field_fetch(x, src, f);
			if (code)
				return code;
		}
		if (f->pos >= f->n)
			continue;
		int64_t t = f->times[f->pos];
		if (!any || (src->reverse ? t > best : t < best))
			best = t;
		any = true;
	}
	src->done = !any;
	src->next = best;
	src->stale = false;
	return 0;
}

void vg_row_src_take(vg_row_src_t *src, double *values, bool *present)
{
	int64_t t = src->next;
	for (size_t i = 0; i < src->nfields; i++) {
		vg_row_field_t *f = &src->fields[i];
		present[i] = f->pos < f->n && f->times[f->pos] == t;
		if (present[i])
			values[i] = f->values[f->pos++];
	}
	src->stale = true;
}
