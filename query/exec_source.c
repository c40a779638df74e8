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
 * output.  It never uses headers: rows need every point.
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

static void row_next(vg_row_src_t *src)
{
	bool any = false;
	int64_t best = 0;
	for (size_t f = 0; f < src->nfields; f++) {
		if (src->pos[f] >= src->n[f])
			continue;
		int64_t t = src->times[f][src->pos[f]];
		if (!any || (src->reverse ? t > best : t < best))
			best = t;
		any = true;
	}
	src->done = !any;
	src->next = best;
}

/* Fetches the next block of field f (n[f] = 0 at its end). */
static int field_fetch(vg_exec_t *x, vg_row_src_t *src, size_t f)
{
	src->pos[f] = 0;
	src->n[f] = 0;
	if (!src->cursors[f])
		return 0;
	int code = vg_cursor_next(src->cursors[f], &src->times[f], &src->values[f], &src->n[f]);
	if (code)
		return store_error(x, code);
	if (src->n[f] == 0) {
		vg_cursor_close(src->cursors[f]);
		src->cursors[f] = NULL;
		return 0;
	}
	if (x->stats)
		x->stats->points_scanned += src->n[f];
	return vg_exec_check(x);
}

int vg_row_src_open(vg_exec_t *x, vg_row_src_t *src, const vg_tagset_t *ts, size_t nfields,
		    int64_t t0, int64_t t1, bool reverse)
{
	memset(src, 0, sizeof *src);
	src->nfields = nfields;
	src->reverse = reverse;
	src->done = true;
	src->cursors = vg_calloc(nfields, sizeof *src->cursors);
	src->times = vg_calloc(nfields, sizeof *src->times);
	src->values = vg_calloc(nfields, sizeof *src->values);
	src->n = vg_calloc(nfields, sizeof *src->n);
	src->pos = vg_calloc(nfields, sizeof *src->pos);
	if (!src->cursors || !src->times || !src->values || !src->n || !src->pos) {
		vg_row_src_close(src);
		return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
	}
	for (size_t f = 0; f < nfields; f++) {
		if (ts->series[f] < 0)
			continue;
		int code = vg_cursor_open(x->txn, (vg_series_id_t)ts->series[f], t0, t1,
					  reverse ? VG_CURSOR_REVERSE : 0, &src->cursors[f]);
		code = code ? store_error(x, code) : field_fetch(x, src, f);
		if (code) {
			vg_row_src_close(src);
			return code;
		}
	}
	row_next(src);
	return 0;
}

void vg_row_src_close(vg_row_src_t *src)
{
	for (size_t f = 0; src->cursors && f < src->nfields; f++)
		vg_cursor_close(src->cursors[f]);
	vg_free(src->cursors);
	vg_free(src->times);
	vg_free(src->values);
	vg_free(src->n);
	vg_free(src->pos);
	memset(src, 0, sizeof *src);
	src->done = true;
}

int vg_row_src_take(vg_exec_t *x, vg_row_src_t *src, double *values, bool *present)
{
	int64_t t = src->next;
	for (size_t f = 0; f < src->nfields; f++) {
		present[f] = false;
		if (src->pos[f] >= src->n[f] || src->times[f][src->pos[f]] != t)
			continue;
		present[f] = true;
		values[f] = src->values[f][src->pos[f]++];
		if (src->pos[f] == src->n[f]) {
			int code = field_fetch(x, src, f);
			if (code)
				return code;
		}
	}
	row_next(src);
	return 0;
}
