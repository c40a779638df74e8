/*
 * exec_raw.c — raw SELECTs: points out as rows, no aggregation.
 *
 * Per group, each tag set is a row source (its fields merged by time) and
 * the tag sets are merged by time in turn, ties going to the earlier tag
 * set; with ORDER BY time DESC every cursor runs backwards, so LIMIT n
 * reads about n points per field and stops.  A row is output when its
 * condition holds and at least one selected field has a point there.
 *
 * A group of one tag set with one field (the common "one series over a
 * range", with or without a test on its values) skips the row machinery:
 * cursor blocks go to the emitter as they come, each point tested when the
 * condition needs it.  With LIMIT, row sources take chunk edges from
 * headers (exec_source.c), so "the latest point of every host" reads one
 * chunk header per series instead of decoding a chunk per series.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <string.h>

typedef struct raw {
	vg_exec_t *x;
	vg_plan_t *plan;
	const vg_select_t *sel;
	bool reverse;
	vg_emit_t emit;
	double *values; /* per plan field */
	bool *present;
	double *row; /* per column */
	bool *nulls;
} raw_t;

/* One series (of plan field `field`, tag set ts) straight to the emitter,
 * each point tested against the condition when the tag set needs it. */
static int run_series(raw_t *r, const vg_tagset_t *ts, vg_series_id_t id, size_t field)
{
	vg_plan_t *plan = r->plan;
	bool selected = false;
	for (size_t c = 0; c < plan->ncolumns; c++) {
		r->nulls[c] = plan->columns[c].field != field;
		r->row[c] = 0;
		selected |= !r->nulls[c];
	}
	/* A series only tested, never selected, yields no rows. */
	if (!selected)
		return 0;
	/* The other fields have no series here: absent at every point. */
	for (size_t f = 0; f < plan->nfields; f++)
		r->present[f] = f == field;
	/* The condition as a span of values when it is one (a test inline),
	 * else evaluated per point. */
	vg_value_range_t range = vg_plan_value_range(plan, ts, field);
	if (range.kind == VG_RANGE_NONE)
		return 0;
	vg_cursor_t *cursor;
	int code = vg_cursor_open(r->x->txn, id, plan->t0, plan->t1,
	                          r->reverse ? VG_CURSOR_REVERSE : 0, &cursor);
	if (code)
		return vg_query_error_set(r->x->err, code, "reading series failed: %s",
		                          vg_strerror(code));
	for (;;) {
		const int64_t *times;
		const double *values;
		size_t n;
		code = vg_cursor_next(cursor, &times, &values, &n);
		if (code) {
			code = vg_query_error_set(r->x->err, code, "reading series failed: %s",
			                          vg_strerror(code));
			break;
		}
		if (n == 0)
			break;
		if (r->x->stats)
			r->x->stats->points_scanned += n;
		for (size_t i = 0; i < n && code == 0; i++) {
			if (range.kind == VG_RANGE_SPAN) {
				if (!vg_value_in_range(&range, values[i]))
					continue;
			} else if (range.kind == VG_RANGE_COMPLEX) {
				r->values[field] = values[i];
				if (!vg_plan_row_matches(plan, ts, r->values, r->present))
					continue;
			}
			for (size_t c = 0; c < plan->ncolumns; c++)
				if (!r->nulls[c])
					r->row[c] = values[i];
			code = vg_emit_floats(&r->emit, times[i], r->row, r->nulls);
		}
		if (code == 0)
			code = vg_exec_check(r->x);
		if (code)
			break;
	}
	vg_cursor_close(cursor);
	return code;
}

static int run_rows(raw_t *r, const vg_group_t *g)
{
	vg_plan_t *plan = r->plan;
	const vg_tagset_t *ts = plan->tagsets + g->first;
	vg_row_src_t *src = vg_calloc(g->count, sizeof *src);
	if (!src)
		return vg_query_error_set(r->x->err, VG_ENOMEM, "out of memory");
	int code = 0;
	size_t opened = 0;
	for (; opened < g->count && code == 0; opened++)
		code = vg_row_src_open(r->x, &src[opened], &ts[opened], plan->nfields, plan->t0,
		                       plan->t1, r->reverse, r->sel->limit > 0);
	unsigned n = 0;
	while (code == 0) {
		size_t best = g->count;
		for (size_t i = 0; i < g->count && code == 0; i++) {
			code = vg_row_src_peek(r->x, &src[i]);
			if (code || src[i].done)
				continue;
			if (best == g->count || (r->reverse ? src[i].next > src[best].next
			                                    : src[i].next < src[best].next))
				best = i;
		}
		if (code || best == g->count)
			break;
		int64_t t = src[best].next;
		vg_row_src_take(&src[best], r->values, r->present);
		if ((++n & 1023) == 0 && (code = vg_exec_check(r->x)))
			break;
		if (!vg_plan_row_matches(plan, &ts[best], r->values, r->present))
			continue;
		bool any = false;
		for (size_t c = 0; c < plan->ncolumns; c++) {
			size_t f = plan->columns[c].field;
			r->nulls[c] = !r->present[f];
			r->row[c] = r->present[f] ? r->values[f] : 0;
			any |= r->present[f];
		}
		if (any)
			code = vg_emit_floats(&r->emit, t, r->row, r->nulls);
	}
	for (size_t i = 0; i < opened; i++)
		vg_row_src_close(&src[i]);
	vg_free(src);
	return code;
}

static int run_group(raw_t *r, const vg_group_t *g)
{
	vg_plan_t *plan = r->plan;
	vg_result_set_t set = {0};
	set.name = r->sel->measurement;
	set.tags = g->tags;
	set.ntags = g->ntags;
	set.columns = plan->column_names;
	set.types = plan->column_types;
	set.ncolumns = plan->ncolumns + 1;
	set.has_time = true;
	vg_emit_start(&r->emit, &set, r->sel->limit);
	const vg_tagset_t *ts = &plan->tagsets[g->first];
	int code;
	/* The one-series fast path: one tag set with one field.  Rows there
	 * are that series' points, the other fields absent, so the condition
	 * can be tested point by point without merging sources. */
	size_t only = 0, nseries = 0;
	for (size_t f = 0; f < plan->nfields; f++)
		if (ts->series[f] >= 0) {
			only = f;
			nseries++;
		}
	if (g->count == 1 && nseries == 1 && r->sel->limit == 0)
		code = run_series(r, ts, (vg_series_id_t)ts->series[only], only);
	else
		code = run_rows(r, g);
	if (code == 0 || code == VG_QDONE)
		code = vg_emit_end(&r->emit);
	return code;
}

int vg_exec_raw(vg_exec_t *x, vg_plan_t *plan)
{
	raw_t r = {0};
	r.x = x;
	r.plan = plan;
	r.sel = plan->sel;
	r.reverse = r.sel->order_desc;
	size_t nf = plan->nfields ? plan->nfields : 1, nc = plan->ncolumns ? plan->ncolumns : 1;
	r.values = vg_calloc(nf, sizeof *r.values);
	r.present = vg_calloc(nf, sizeof *r.present);
	r.row = vg_calloc(nc, sizeof *r.row);
	r.nulls = vg_calloc(nc, sizeof *r.nulls);
	int code = r.values && r.present && r.row && r.nulls
	               ? 0
	               : vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
	code = code ? code : vg_emit_init(&r.emit, x, plan->ncolumns, plan->column_types + 1, true);
	bool emit_ok = code == 0;
	for (size_t g = 0; code == 0 && g < plan->ngroups; g++)
		code = run_group(&r, &plan->groups[g]);
	if (emit_ok)
		vg_emit_release(&r.emit);
	vg_free(r.values);
	vg_free(r.present);
	vg_free(r.row);
	vg_free(r.nulls);
	return code;
}
