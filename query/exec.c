/*
 * exec.c — running a parsed statement: dispatch, the limits every
 * statement obeys (cancel flag, deadline, held values), and the emitter.
 *
 * The emitter is the one place rows become sink calls.  It gathers rows of
 * the current result set in columnar blocks of max_rows (times, one float
 * or string array per column, a null bitmap per column), begins the set
 * lazily before its first block (so an empty group produces nothing), and
 * counts LIMIT.  Strings are copied into a per-block buffer because the
 * listings that produce them lend their views only for one callback.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_duration.h"
#include "vg_error.h"

#include <string.h>
#include <time.h>

#define VG_DEFAULT_MAX_ROWS 1024
#define VG_DEFAULT_MAX_VALUES ((size_t)32 << 20)
#define VG_DEFAULT_DELETE_BATCH 64
#define VG_DEFAULT_MAX_OPEN 64
#define VG_DEFAULT_PARALLEL_MIN_SERIES 16

void vg_exec_options_init(vg_exec_options_t *opts)
{
	memset(opts, 0, sizeof *opts);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	opts->now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	opts->max_rows = VG_DEFAULT_MAX_ROWS;
	opts->max_values = VG_DEFAULT_MAX_VALUES;
	opts->delete_batch = VG_DEFAULT_DELETE_BATCH;
	opts->max_open = VG_DEFAULT_MAX_OPEN;
	opts->parallel_min_series = VG_DEFAULT_PARALLEL_MIN_SERIES;
	opts->range_t0 = INT64_MIN;
	opts->range_t1 = INT64_MAX;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int vg_exec_check(vg_exec_t *x)
{
	if ((x->opts.cancel && atomic_load(x->opts.cancel)) || (x->stop && atomic_load(x->stop)))
		return vg_query_error_set(x->err, VG_ECANCELED, "query cancelled");
	if (x->opts.deadline_ns && (x->ticks++ & 15) == 0 &&
	    monotonic_ns() >= x->opts.deadline_ns) {
		if (x->opts.timeout_ns > 0) {
			char d[32];
			vg_duration_format(x->opts.timeout_ns, d, sizeof d);
			return vg_query_error_set(x->err, VG_ETIMEOUT,
			                          "query exceeded the time limit of %s "
			                          "(--query-timeout)",
			                          d);
		}
		return vg_query_error_set(x->err, VG_ETIMEOUT,
		                          "query exceeded its time limit (--query-timeout)");
	}
	return 0;
}

int vg_exec_hold(vg_exec_t *x, size_t n)
{
	if (n > x->opts.max_values || x->values_held > x->opts.max_values - n)
		return vg_query_error_set(x->err, VG_ELIMIT,
		                          "query holds more than %zu values at once (median, "
		                          "percentile or FILL(linear) over too many points)",
		                          x->opts.max_values);
	x->values_held += n;
	return 0;
}

void vg_exec_unhold(vg_exec_t *x, size_t n)
{
	x->values_held = n > x->values_held ? 0 : x->values_held - n;
}

/* ---- the emitter --------------------------------------------------------- */

int vg_emit_init(vg_emit_t *e, vg_exec_t *x, size_t ncols, const vg_column_type_t *types,
                 bool has_time)
{
	memset(e, 0, sizeof *e);
	e->x = x;
	e->ncols = ncols;
	e->types = types;
	e->has_time = has_time;
	size_t cap = x->opts.max_rows;
	e->cap = cap;
	size_t nb = (cap + 7) / 8;
	bool any_string = false;
	for (size_t c = 0; c < ncols; c++)
		any_string |= types[c] == VG_COLUMN_STRING;
	e->times = vg_reallocarray(NULL, cap, sizeof *e->times);
	e->floats = vg_reallocarray(NULL, cap, (ncols ? ncols : 1) * sizeof *e->floats);
	e->nulls = vg_calloc(ncols ? ncols : 1, nb);
	e->col_has_null = vg_calloc(ncols ? ncols : 1, sizeof *e->col_has_null);
	e->cols = vg_calloc(ncols ? ncols : 1, sizeof *e->cols);
	bool ok = e->times && e->floats && e->nulls && e->col_has_null && e->cols;
	if (ok && any_string) {
		e->str_off = vg_reallocarray(NULL, cap, ncols * sizeof *e->str_off);
		e->str_len = vg_reallocarray(NULL, cap, ncols * sizeof *e->str_len);
		e->str_views = vg_reallocarray(NULL, cap, ncols * sizeof *e->str_views);
		ok = e->str_off && e->str_len && e->str_views;
	}
	if (!ok) {
		vg_emit_release(e);
		return vg_query_error_set(x->err, VG_ENOMEM, "out of memory");
	}
	return 0;
}

void vg_emit_release(vg_emit_t *e)
{
	vg_free(e->times);
	vg_free(e->floats);
	vg_free(e->nulls);
	vg_free(e->col_has_null);
	vg_free(e->cols);
	vg_free(e->str_off);
	vg_free(e->str_len);
	vg_free(e->str_views);
	vg_buf_release(&e->strings);
	memset(e, 0, sizeof *e);
}

void vg_emit_start(vg_emit_t *e, const vg_result_set_t *set, uint64_t limit)
{
	e->set = *set;
	e->begun = false;
	e->limit = limit;
	e->set_rows = 0;
	e->nrows = 0;
}

static int flush(vg_emit_t *e)
{
	if (e->nrows == 0)
		return 0;
	const vg_result_sink_t *sink = e->x->sink;
	int code = 0;
	if (!e->begun) {
		e->begun = true;
		code = sink->begin_set(sink->ctx, &e->set);
		if (code)
			return code;
	}
	size_t nb = (e->cap + 7) / 8;
	for (size_t c = 0; c < e->ncols; c++) {
		vg_result_column_t *col = &e->cols[c];
		col->type = e->types[c];
		col->nulls = e->col_has_null[c] ? e->nulls + c * nb : NULL;
		col->floats = NULL;
		col->strings = NULL;
		if (col->type == VG_COLUMN_STRING) {
			vg_str_t *views = e->str_views + c * e->cap;
			for (size_t r = 0; r < e->nrows; r++)
				views[r] = (vg_str_t){(const char *)e->strings.data +
				                          e->str_off[c * e->cap + r],
				                      e->str_len[c * e->cap + r]};
			col->strings = views;
		} else {
			col->floats = e->floats + c * e->cap;
		}
	}
	code = sink->rows(sink->ctx, e->has_time ? e->times : NULL, e->cols, e->ncols, e->nrows);
	if (e->x->stats)
		e->x->stats->rows_emitted += e->nrows;
	e->nrows = 0;
	memset(e->nulls, 0, (e->ncols ? e->ncols : 1) * nb);
	memset(e->col_has_null, 0, (e->ncols ? e->ncols : 1) * sizeof *e->col_has_null);
	vg_buf_clear(&e->strings);
	if (code == 0)
		code = vg_exec_check(e->x);
	return code;
}

/* After a row is stored: flush a full block, report LIMIT. */
static int row_added(vg_emit_t *e)
{
	e->nrows++;
	e->set_rows++;
	if (e->nrows == e->cap) {
		int code = flush(e);
		if (code)
			return code;
	}
	return e->limit && e->set_rows >= e->limit ? VG_QDONE : 0;
}

static void set_null(vg_emit_t *e, size_t c, size_t r)
{
	size_t nb = (e->cap + 7) / 8;
	e->nulls[c * nb + r / 8] |= (uint8_t)(1u << (r % 8));
	e->col_has_null[c] = true;
}

int vg_emit_row(vg_emit_t *e, int64_t time, const vg_cell_t *cells)
{
	if (e->limit && e->set_rows >= e->limit)
		return VG_QDONE;
	size_t r = e->nrows;
	e->times[r] = time;
	for (size_t c = 0; c < e->ncols; c++) {
		if (e->types[c] == VG_COLUMN_STRING) {
			size_t off = e->strings.len;
			size_t len = cells[c].null ? 0 : cells[c].s.len;
			if (len && vg_buf_append(&e->strings, cells[c].s.data, len))
				return vg_query_error_set(e->x->err, VG_ENOMEM, "out of memory");
			e->str_off[c * e->cap + r] = off;
			e->str_len[c * e->cap + r] = len;
		} else {
			e->floats[c * e->cap + r] = cells[c].null ? 0 : cells[c].f;
		}
		if (cells[c].null)
			set_null(e, c, r);
	}
	return row_added(e);
}

int vg_emit_floats(vg_emit_t *e, int64_t time, const double *values, const bool *nulls)
{
	if (e->limit && e->set_rows >= e->limit)
		return VG_QDONE;
	size_t r = e->nrows;
	e->times[r] = time;
	for (size_t c = 0; c < e->ncols; c++) {
		if (nulls && nulls[c]) {
			e->floats[c * e->cap + r] = 0;
			set_null(e, c, r);
		} else {
			e->floats[c * e->cap + r] = values[c];
		}
	}
	return row_added(e);
}

int vg_emit_end(vg_emit_t *e)
{
	return flush(e);
}

/* ---- dispatch -------------------------------------------------------------- */

static int exec_select(vg_exec_t *x)
{
	const vg_select_t *sel = x->opts.select_only && x->opts.select_override
					 ? x->opts.select_override
					 : &x->st->select;
	int code = vg_store_read_begin(x->store, &x->txn);
	if (code)
		return vg_query_error_set(x->err, code, "cannot begin a read transaction: %s",
		                          vg_strerror(code));
	x->stats->snapshot = vg_rtxn_id(x->txn);
	/* Forked at once, while a commit landing in between is unlikely; a
	 * failed fork only means no helper. */
	if (x->opts.helpers && sel->aggregate && vg_rtxn_fork(x->txn, &x->fork) != 0)
		x->fork = NULL;
	vg_plan_t plan;
	code = vg_plan_build(x, sel, &plan);
	if (code == 0)
		code = sel->aggregate ? vg_exec_aggregate(x, &plan) : vg_exec_raw(x, &plan);
	vg_plan_release(&plan);
	vg_rtxn_end(x->fork);
	x->fork = NULL;
	vg_rtxn_end(x->txn);
	x->txn = NULL;
	return code;
}

static int exec_show(vg_exec_t *x)
{
	int code = vg_store_read_begin(x->store, &x->txn);
	if (code)
		return vg_query_error_set(x->err, code, "cannot begin a read transaction: %s",
		                          vg_strerror(code));
	code = vg_exec_show(x);
	vg_rtxn_end(x->txn);
	x->txn = NULL;
	return code;
}

static int discard_set(void *ctx, const vg_result_set_t *set)
{
	(void)ctx;
	(void)set;
	return 0;
}

static int discard_rows(void *ctx, const int64_t *times, const vg_result_column_t *columns,
                        size_t ncols, size_t nrows)
{
	(void)ctx;
	(void)times;
	(void)columns;
	(void)ncols;
	(void)nrows;
	return 0;
}

int vg_select_series(vg_store_t *store, const vg_select_t *sel, vg_idset_t *out)
{
	vg_query_error_t err;
	vg_exec_t x = {0};
	x.store = store;
	x.err = &err;
	vg_exec_options_init(&x.opts);
	int code = vg_store_read_begin(store, &x.txn);
	if (code)
		return code;
	vg_idset_t tags = VG_IDSET_INIT, fields = VG_IDSET_INIT, one = VG_IDSET_INIT,
		   merged = VG_IDSET_INIT;
	code = vg_resolve_tag_cond(&x, sel->measurement, sel->where, &tags);
	bool wildcard = false;
	for (size_t c = 0; c < sel->ncolumns; c++)
		wildcard = wildcard || sel->columns[c].wildcard;
	if (code == 0 && !wildcard) {
		/* Only the series of the selected fields. */
		for (size_t c = 0; code == 0 && c < sel->ncolumns; c++) {
			code = vg_rtxn_field_series(x.txn, sel->measurement, sel->columns[c].field,
						    &one);
			code = code ? code : vg_idset_union(&fields, &one, &merged);
			vg_idset_t tmp = fields;
			fields = merged;
			merged = tmp;
		}
		code = code ? code : vg_idset_intersect(&tags, &fields, out);
	} else if (code == 0) {
		vg_idset_t tmp = *out;
		*out = tags;
		tags = tmp;
	}
	vg_rtxn_end(x.txn);
	vg_idset_release(&tags);
	vg_idset_release(&fields);
	vg_idset_release(&one);
	vg_idset_release(&merged);
	return code;
}

int vg_query_exec(const vg_statement_t *st, vg_store_t *store, const vg_exec_options_t *opts,
                  const vg_result_sink_t *sink, vg_exec_stats_t *stats, vg_query_error_t *err)
{
	vg_query_error_t local_err;
	vg_exec_stats_t local_stats;
	if (!err)
		err = &local_err;
	if (!stats)
		stats = &local_stats;
	memset(err, 0, sizeof *err);
	memset(stats, 0, sizeof *stats);
	static const vg_result_sink_t discard = {discard_set, discard_rows, NULL};
	vg_exec_t x = {0};
	x.st = st;
	x.store = store;
	x.sink = sink ? sink : &discard;
	x.stats = stats;
	x.err = err;
	if (opts)
		x.opts = *opts;
	else
		vg_exec_options_init(&x.opts);
	if (x.opts.max_rows == 0)
		x.opts.max_rows = VG_DEFAULT_MAX_ROWS;
	if (x.opts.max_values == 0)
		x.opts.max_values = VG_DEFAULT_MAX_VALUES;
	if (x.opts.delete_batch == 0)
		x.opts.delete_batch = VG_DEFAULT_DELETE_BATCH;
	if (x.opts.max_open == 0)
		x.opts.max_open = VG_DEFAULT_MAX_OPEN;
	int code = vg_exec_check(&x);
	if (code == 0) {
		switch (st->kind) {
		case VG_STMT_SELECT:
			code = exec_select(&x);
			break;
		case VG_STMT_SUBSCRIBE:
			if (x.opts.select_only)
				code = exec_select(&x);
			else
				code = vg_query_error_set(err, VG_EINVAL,
				                          "SUBSCRIBE is not a query; send it as a "
				                          "Subscribe request");
			break;
		case VG_STMT_CREATE_CQ:
			if (x.opts.select_only) {
				code = exec_select(&x);
				break;
			}
			/* fall through */
		case VG_STMT_DROP_CQ:
		case VG_STMT_SHOW_CQS:
			code = vg_query_error_set(err, VG_EINVAL,
			                          "continuous queries are kept by the server; send the statement to vigild");
			break;
		case VG_STMT_DELETE:
			code = vg_exec_delete(&x);
			break;
		case VG_STMT_SET_RETENTION:
			code = vg_exec_set_retention(&x);
			break;
		default:
			code = exec_show(&x);
			break;
		}
	}
	if (code == VG_QDONE)
		code = 0;
	if (code && !err->message[0])
		vg_query_error_set(err, code, "%s", vg_strerror(code));
	if (code)
		err->code = code;
	return code;
}
