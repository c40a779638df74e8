/*
 * exec_fill.c — FILL between the bucket loop and the emitter.
 *
 * The bucket loop hands over every row of a group in output order: rows of
 * buckets with data, and all-null rows for empty buckets of the fill range.
 * Fills then work column by column on null cells:
 *
 *   none, null   pass rows through;
 *   <number>     null cells become the number;
 *   previous     null cells take the column's last non-null value seen in
 *                output order (none yet: stay null);
 *   linear       a null cell after a non-null value waits for the column's
 *                next non-null value and is interpolated by time between
 *                the two; one never followed by a value stays null.
 *
 * Linear needs lookahead, so rows with waiting cells (and every row behind
 * them, to keep the order) wait in a ring; memory is bounded by the longest
 * run of nulls in any column, counted against max_values.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <string.h>

static int nomem(vg_fill_t *f)
{
	return vg_query_error_set(f->x->err, VG_ENOMEM, "out of memory");
}

int vg_fill_init(vg_fill_t *f, vg_exec_t *x, vg_emit_t *emit, vg_fill_mode_t mode, double value,
                 size_t ncols)
{
	memset(f, 0, sizeof *f);
	f->x = x;
	f->emit = emit;
	f->mode = mode;
	f->value = value;
	f->ncols = ncols;
	size_t n = ncols ? ncols : 1;
	f->row = vg_calloc(n, sizeof *f->row);
	f->row_nulls = vg_calloc(n, sizeof *f->row_nulls);
	f->prev = vg_calloc(n, sizeof *f->prev);
	f->have_prev = vg_calloc(n, sizeof *f->have_prev);
	f->prev_time = vg_calloc(n, sizeof *f->prev_time);
	f->pending = vg_calloc(n, sizeof *f->pending);
	if (!f->row || !f->row_nulls || !f->prev || !f->have_prev || !f->prev_time || !f->pending) {
		vg_fill_release(f);
		return nomem(f);
	}
	return 0;
}

void vg_fill_release(vg_fill_t *f)
{
	vg_exec_unhold(f->x, f->qlen * f->ncols);
	vg_free(f->row);
	vg_free(f->row_nulls);
	vg_free(f->prev);
	vg_free(f->have_prev);
	vg_free(f->prev_time);
	vg_free(f->pending);
	vg_free(f->q_time);
	vg_free(f->q_values);
	vg_free(f->q_nulls);
	vg_free(f->q_pending);
	vg_free(f->q_npending);
	vg_exec_t *x = f->x;
	memset(f, 0, sizeof *f);
	f->x = x;
}

void vg_fill_reset(vg_fill_t *f)
{
	vg_exec_unhold(f->x, f->qlen * f->ncols);
	f->qhead = f->qlen = 0;
	for (size_t c = 0; c < f->ncols; c++) {
		f->have_prev[c] = false;
		f->pending[c] = 0;
	}
}

/* Grows the ring to hold one more row, unwrapping it into the new arrays. */
static int queue_grow(vg_fill_t *f)
{
	size_t cap = f->qcap ? f->qcap * 2 : 64, nc = f->ncols;
	int64_t *t = vg_reallocarray(NULL, cap, sizeof *t);
	double *v = vg_reallocarray(NULL, cap, nc * sizeof *v);
	bool *nu = vg_reallocarray(NULL, cap, nc * sizeof *nu);
	bool *pe = vg_reallocarray(NULL, cap, nc * sizeof *pe);
	size_t *np = vg_reallocarray(NULL, cap, sizeof *np);
	if (!t || !v || !nu || !pe || !np) {
		vg_free(t);
		vg_free(v);
		vg_free(nu);
		vg_free(pe);
		vg_free(np);
		return nomem(f);
	}
	for (size_t i = 0; i < f->qlen; i++) {
		size_t s = (f->qhead + i) % f->qcap;
		t[i] = f->q_time[s];
		np[i] = f->q_npending[s];
		memcpy(v + i * nc, f->q_values + s * nc, nc * sizeof *v);
		memcpy(nu + i * nc, f->q_nulls + s * nc, nc * sizeof *nu);
		memcpy(pe + i * nc, f->q_pending + s * nc, nc * sizeof *pe);
	}
	vg_free(f->q_time);
	vg_free(f->q_values);
	vg_free(f->q_nulls);
	vg_free(f->q_pending);
	vg_free(f->q_npending);
	f->q_time = t;
	f->q_values = v;
	f->q_nulls = nu;
	f->q_pending = pe;
	f->q_npending = np;
	f->qhead = 0;
	f->qcap = cap;
	return 0;
}

/* Emits queued rows from the head while they wait for nothing (all of
 * them when `all`: what still waits stays null). */
static int queue_flush(vg_fill_t *f, bool all)
{
	while (f->qlen > 0) {
		size_t s = f->qhead;
		if (!all && f->q_npending[s] > 0)
			return 0;
		for (size_t c = 0; c < f->ncols; c++)
			if (f->q_pending[s * f->ncols + c])
				f->pending[c]--;
		int code = vg_emit_floats(f->emit, f->q_time[s], f->q_values + s * f->ncols,
		                          f->q_nulls + s * f->ncols);
		f->qhead = (f->qhead + 1) % f->qcap;
		f->qlen--;
		vg_exec_unhold(f->x, f->ncols);
		if (code)
			return code;
	}
	return 0;
}

static int push_linear(vg_fill_t *f, int64_t time, const double *values, const bool *nulls)
{
	size_t nc = f->ncols;
	/* Values resolve the cells waiting for them. */
	for (size_t c = 0; c < nc; c++) {
		if (nulls[c])
			continue;
		for (size_t i = 0; f->pending[c] > 0 && i < f->qlen; i++) {
			size_t s = (f->qhead + i) % f->qcap;
			if (!f->q_pending[s * nc + c])
				continue;
			double ratio = ((double)f->q_time[s] - (double)f->prev_time[c]) /
			               ((double)time - (double)f->prev_time[c]);
			f->q_values[s * nc + c] = f->prev[c] + (values[c] - f->prev[c]) * ratio;
			f->q_nulls[s * nc + c] = false;
			f->q_pending[s * nc + c] = false;
			f->q_npending[s]--;
			f->pending[c]--;
		}
		f->prev[c] = values[c];
		f->prev_time[c] = time;
		f->have_prev[c] = true;
	}
	size_t waits = 0;
	for (size_t c = 0; c < nc; c++)
		waits += nulls[c] && f->have_prev[c];
	int code;
	if (waits == 0 && f->qlen == 0)
		return vg_emit_floats(f->emit, time, values, nulls);
	if (waits == 0 && (code = queue_flush(f, false)))
		return code;
	if (waits == 0 && f->qlen == 0)
		return vg_emit_floats(f->emit, time, values, nulls);
	if ((code = vg_exec_hold(f->x, nc)))
		return code;
	if (f->qlen == f->qcap && (code = queue_grow(f))) {
		vg_exec_unhold(f->x, nc);
		return code;
	}
	size_t s = (f->qhead + f->qlen) % f->qcap;
	f->qlen++;
	f->q_time[s] = time;
	f->q_npending[s] = waits;
	for (size_t c = 0; c < nc; c++) {
		bool wait = nulls[c] && f->have_prev[c];
		f->q_values[s * nc + c] = nulls[c] ? 0 : values[c];
		f->q_nulls[s * nc + c] = nulls[c];
		f->q_pending[s * nc + c] = wait;
		f->pending[c] += wait;
	}
	return queue_flush(f, false);
}

int vg_fill_push(vg_fill_t *f, int64_t time, const double *values, const bool *nulls)
{
	size_t nc = f->ncols;
	switch (f->mode) {
	case VG_FILL_VALUE:
		for (size_t c = 0; c < nc; c++) {
			f->row[c] = nulls[c] ? f->value : values[c];
			f->row_nulls[c] = false;
		}
		return vg_emit_floats(f->emit, time, f->row, f->row_nulls);
	case VG_FILL_PREVIOUS:
		for (size_t c = 0; c < nc; c++) {
			if (!nulls[c]) {
				f->prev[c] = values[c];
				f->have_prev[c] = true;
			}
			f->row[c] = f->have_prev[c] ? f->prev[c] : 0;
			f->row_nulls[c] = !f->have_prev[c];
		}
		return vg_emit_floats(f->emit, time, f->row, f->row_nulls);
	case VG_FILL_LINEAR:
		return push_linear(f, time, values, nulls);
	default:
		return vg_emit_floats(f->emit, time, values, nulls);
	}
}

int vg_fill_finish(vg_fill_t *f)
{
	int code = queue_flush(f, true);
	vg_fill_reset(f);
	return code;
}
