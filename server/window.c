/*
 * window.c — windowed subscriptions: `SUBSCRIBE SELECT <agg>(<field>)[, ...]
 * FROM m [WHERE ...] GROUP BY time(d[, offset])[, <tags>|*] [LATENESS l]`.
 *
 * State per subscription: a hash table of groups (one per combination of
 * group-by tag values); per group, its watermark (the latest event time
 * seen) and a short list of windows [start, start + d), each with one
 * accumulator per column.  Everything is updated from the points of
 * committed writes as they are published: no storage read per write.
 *
 *   close   a window is pushed once, when the group's watermark reaches
 *           its end plus the lateness, or when the wall clock does (the
 *           server's tick, so idle groups still emit);
 *   update  a point that lands in a window already pushed changes it: the
 *           window is pushed again, marked as an update, with the same time
 *           and group;
 *   horizon the last VG_WINDOW_KEEP pushed windows of a group are kept for
 *           such corrections; a point older than all of them is counted as
 *           too late and dropped (reported in the log at debug level).
 *
 * Aggregates follow the query language: NaN is skipped; count is the
 * number of numbers; stddev is the sample deviation (Welford's update);
 * median and percentile keep the window's values; rate is (last - first)
 * over the time between them, per the column's unit.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VG_WINDOW_KEEP 16 /* pushed windows kept per group for corrections */
#define GROUP_BUCKETS 1024

typedef struct {
	uint64_t count;
	double sum, min, max;
	int64_t first_time, last_time;
	double first, last;
	double mean, m2; /* Welford */
	double *values;  /* median / percentile only */
	size_t nvalues, cap;
} acc_t;

typedef struct window {
	int64_t start;
	uint64_t points;  /* points of any selected field, NaN included */
	bool pushed;
	bool dirty;       /* changed since it was pushed */
	acc_t *acc;       /* one per column */
	struct window *next; /* ascending start */
} window_t;

typedef struct group {
	char *key; /* tag values joined by 0x00 */
	size_t keylen;
	size_t ntags;
	char **tag_keys, **tag_values;
	int64_t watermark;
	window_t *windows;
	struct group *next;
} group_t;

struct vg_window_state {
	const vg_select_t *sel;
	size_t ncols;
	char **fields; /* field of each column */
	int64_t lateness;
	group_t **buckets;
	size_t ngroups;
	uint64_t dropped_late;
};

/* ---- accumulators ---------------------------------------------------- */

static bool needs_values(vg_agg_fn_t fn) { return fn == VG_AGG_MEDIAN || fn == VG_AGG_PERCENTILE; }

static int acc_add(acc_t *a, vg_agg_fn_t fn, int64_t t, double v)
{
	if (isnan(v))
		return 0;
	if (a->count == 0 || t < a->first_time) {
		a->first = v;
		a->first_time = t;
	}
	if (a->count == 0 || t >= a->last_time) {
		a->last = v;
		a->last_time = t;
	}
	if (a->count == 0 || v < a->min)
		a->min = v;
	if (a->count == 0 || v > a->max)
		a->max = v;
	a->count++;
	a->sum += v;
	double delta = v - a->mean;
	a->mean += delta / (double)a->count;
	a->m2 += delta * (v - a->mean);
	if (needs_values(fn)) {
		if (a->nvalues == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 16;
			double *values = vg_reallocarray(a->values, cap, sizeof *values);
			if (!values)
				return VG_ENOMEM;
			a->values = values;
			a->cap = cap;
		}
		a->values[a->nvalues++] = v;
	}
	return 0;
}

/* The column's value (query language rules, vg_agg_final()); false when
 * it is empty. */
static bool acc_value(acc_t *a, uint64_t points, const vg_select_column_t *col, double *out)
{
	vg_agg_summary_t s = {points,  a->count, a->sum,        a->min,       a->max,
			      a->first, a->last, a->first_time, a->last_time, a->m2,
			      a->values, a->nvalues, false};
	return vg_agg_final(col->agg, col->percentile, col->rate_unit_ns, &s, out);
}

/* ---- groups and windows ---------------------------------------------- */

static void window_free(vg_window_state_t *w, window_t *win)
{
	for (size_t c = 0; c < w->ncols; c++)
		vg_free(win->acc[c].values);
	vg_free(win->acc);
	vg_free(win);
}

static void group_free(vg_window_state_t *w, group_t *g)
{
	while (g->windows) {
		window_t *next = g->windows->next;
		window_free(w, g->windows);
		g->windows = next;
	}
	for (size_t t = 0; t < g->ntags; t++) {
		vg_free(g->tag_keys[t]);
		vg_free(g->tag_values[t]);
	}
	vg_free(g->tag_keys);
	vg_free(g->tag_values);
	vg_free(g->key);
	vg_free(g);
}

void vg_window_free(vg_window_state_t *w)
{
	if (!w)
		return;
	for (size_t b = 0; w->buckets && b < GROUP_BUCKETS; b++)
		while (w->buckets[b]) {
			group_t *next = w->buckets[b]->next;
			group_free(w, w->buckets[b]);
			w->buckets[b] = next;
		}
	vg_free(w->buckets);
	for (size_t c = 0; c < w->ncols; c++)
		vg_free(w->fields[c]);
	vg_free(w->fields);
	vg_free(w);
}

int vg_window_new(const vg_select_t *sel, int64_t lateness, vg_window_state_t **out, char *err,
		  size_t errlen)
{
	for (size_t c = 0; c < sel->ncolumns; c++)
		if (sel->columns[c].wildcard || sel->columns[c].agg == VG_AGG_NONE) {
			snprintf(err, errlen, "a windowed subscription names one field per aggregate "
					      "(no *, no raw fields)");
			return VG_EINVAL;
		}
	vg_window_state_t *w = vg_calloc(1, sizeof *w);
	if (!w)
		return VG_ENOMEM;
	w->sel = sel;
	w->lateness = lateness;
	w->ncols = sel->ncolumns;
	w->fields = vg_calloc(w->ncols, sizeof *w->fields);
	w->buckets = vg_calloc(GROUP_BUCKETS, sizeof *w->buckets);
	int rc = w->fields && w->buckets ? 0 : VG_ENOMEM;
	for (size_t c = 0; rc == 0 && c < w->ncols; c++) {
		w->fields[c] = vg_strndup(sel->columns[c].field.data, sel->columns[c].field.len);
		if (!w->fields[c])
			rc = VG_ENOMEM;
	}
	if (rc) {
		vg_window_free(w);
		return rc;
	}
	*out = w;
	return 0;
}

size_t vg_window_field_count(const vg_window_state_t *w) { return w->ncols; }

const char *vg_window_field(const vg_window_state_t *w, size_t c) { return w->fields[c]; }

static int compare_tags(const void *a, const void *b)
{
	const Vigil__V1__Tag *x = *(Vigil__V1__Tag *const *)a, *y = *(Vigil__V1__Tag *const *)b;
	return strcmp(x->key, y->key);
}

/* Finds or creates the group of a block's tags. */
static int find_group(vg_window_state_t *w, const Vigil__V1__WriteBlock *block, group_t **out)
{
	const vg_select_t *sel = w->sel;
	const char *keys[VG_MAX_TAGS], *values[VG_MAX_TAGS];
	size_t n = 0;
	if (sel->group_all_tags) {
		Vigil__V1__Tag *sorted[VG_MAX_TAGS];
		for (size_t t = 0; t < block->n_tags && t < VG_MAX_TAGS; t++)
			sorted[t] = block->tags[t];
		qsort(sorted, block->n_tags, sizeof sorted[0], compare_tags);
		for (size_t t = 0; t < block->n_tags; t++) {
			keys[n] = sorted[t]->key;
			values[n++] = sorted[t]->value;
		}
	} else {
		static char empty[] = "";
		for (size_t g = 0; g < sel->ngroup_tags && g < VG_MAX_TAGS; g++) {
			keys[n] = NULL;
			values[n] = empty;
			for (size_t t = 0; t < block->n_tags; t++)
				if (strlen(block->tags[t]->key) == sel->group_tags[g].len &&
				    memcmp(block->tags[t]->key, sel->group_tags[g].data,
					   sel->group_tags[g].len) == 0)
					values[n] = block->tags[t]->value;
			n++;
		}
	}
	/* Key: (key 0x00 value 0x00)*; keys matter only for GROUP BY *. */
	char stack[4096];
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (keys[i] ? strlen(keys[i]) : 0) + strlen(values[i]) + 2;
	char *key = len <= sizeof stack ? stack : vg_malloc(len);
	if (!key)
		return VG_ENOMEM;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		size_t kl = keys[i] ? strlen(keys[i]) : 0, vl = strlen(values[i]);
		memcpy(key + at, keys[i] ? keys[i] : "", kl);
		key[at + kl] = 0;
		memcpy(key + at + kl + 1, values[i], vl);
		key[at + kl + 1 + vl] = 0;
		at += kl + vl + 2;
	}
	uint64_t h = vg_hash_bytes(key, len) % GROUP_BUCKETS;
	for (group_t *g = w->buckets[h]; g; g = g->next)
		if (g->keylen == len && memcmp(g->key, key, len) == 0) {
			if (key != stack)
				vg_free(key);
			*out = g;
			return 0;
		}
	group_t *g = vg_calloc(1, sizeof *g);
	int rc = g ? 0 : VG_ENOMEM;
	if (rc == 0) {
		g->key = vg_malloc(len ? len : 1);
		g->tag_keys = vg_calloc(n + 1, sizeof *g->tag_keys);
		g->tag_values = vg_calloc(n + 1, sizeof *g->tag_values);
		g->watermark = INT64_MIN;
		rc = g->key && g->tag_keys && g->tag_values ? 0 : VG_ENOMEM;
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *k = keys[i];
		char name[VG_NAME_MAX + 1];
		if (!k) {
			size_t kl = sel->group_tags[i].len;
			memcpy(name, sel->group_tags[i].data, kl);
			name[kl] = 0;
			k = name;
		}
		g->tag_keys[i] = vg_strndup(k, strlen(k));
		g->tag_values[i] = vg_strndup(values[i], strlen(values[i]));
		g->ntags = i + 1;
		if (!g->tag_keys[i] || !g->tag_values[i])
			rc = VG_ENOMEM;
	}
	if (rc) {
		if (g)
			group_free(w, g);
		if (key != stack)
			vg_free(key);
		return rc;
	}
	memcpy(g->key, key, len);
	g->keylen = len;
	if (key != stack)
		vg_free(key);
	g->next = w->buckets[h];
	w->buckets[h] = g;
	w->ngroups++;
	*out = g;
	return 0;
}

/* The window of `start` in g, created if within the horizon; NULL with
 * *too_late when it was dropped already. */
static int find_window(vg_window_state_t *w, group_t *g, int64_t start, window_t **out)
{
	window_t **p = &g->windows;
	while (*p && (*p)->start < start)
		p = &(*p)->next;
	if (*p && (*p)->start == start) {
		*out = *p;
		return 0;
	}
	/* Older than every kept window while some were pushed: too late. */
	if (p == &g->windows && g->windows && g->windows->pushed) {
		size_t pushed = 0;
		for (window_t *x = g->windows; x; x = x->next)
			pushed += x->pushed;
		if (pushed >= VG_WINDOW_KEEP) {
			*out = NULL;
			return 0;
		}
	}
	window_t *win = vg_calloc(1, sizeof *win);
	acc_t *acc = win ? vg_calloc(w->ncols, sizeof *acc) : NULL;
	if (!acc) {
		vg_free(win);
		return VG_ENOMEM;
	}
	win->start = start;
	win->acc = acc;
	win->next = *p;
	*p = win;
	*out = win;
	return 0;
}

/* ---- pushes ---------------------------------------------------------- */

/* Encodes the windows of g selected by `which` (closing or dirty) as one
 * Push; marks them pushed/clean.  update: the rows replace earlier ones. */
static int push_windows(vg_window_state_t *w, group_t *g, uint64_t sub_id, int64_t close_mark,
			bool update, vg_buf_t *out)
{
	size_t n = 0;
	for (window_t *win = g->windows; win; win = win->next)
		if (update ? win->pushed && win->dirty
			   : !win->pushed && win->start + w->sel->interval_ns <= close_mark)
			n++;
	if (n == 0)
		return 0;
	int64_t *times = vg_malloc(n * sizeof *times);
	double *values = vg_malloc(n * w->ncols * sizeof *values);
	uint8_t *nulls = vg_calloc(w->ncols, (n + 7) / 8);
	Vigil__V1__Column *colv = vg_calloc(w->ncols, sizeof *colv);
	Vigil__V1__Column **colp = vg_calloc(w->ncols, sizeof *colp);
	Vigil__V1__Tag *tagv = vg_calloc(g->ntags + 1, sizeof *tagv);
	Vigil__V1__Tag **tagp = vg_calloc(g->ntags + 1, sizeof *tagp);
	int rc = times && values && nulls && colv && colp && tagv && tagp ? 0 : VG_ENOMEM;
	size_t row = 0, nbytes = (n + 7) / 8;
	for (window_t *win = g->windows; rc == 0 && win; win = win->next) {
		bool take = update ? win->pushed && win->dirty
				   : !win->pushed && win->start + w->sel->interval_ns <= close_mark;
		if (!take)
			continue;
		times[row] = win->start;
		for (size_t c = 0; c < w->ncols; c++) {
			double v;
			if (acc_value(&win->acc[c], win->points, &w->sel->columns[c], &v))
				values[c * n + row] = v;
			else {
				values[c * n + row] = 0;
				nulls[c * nbytes + row / 8] |= (uint8_t)(1u << (row % 8));
			}
		}
		win->pushed = true;
		win->dirty = false;
		row++;
	}
	if (rc == 0) {
		for (size_t c = 0; c < w->ncols; c++) {
			vigil__v1__column__init(&colv[c]);
			colv[c].n_floats = n;
			colv[c].floats = values + c * n;
			bool any_null = false;
			for (size_t b = 0; b < nbytes; b++)
				any_null = any_null || nulls[c * nbytes + b];
			if (any_null) {
				colv[c].nulls.len = nbytes;
				colv[c].nulls.data = nulls + c * nbytes;
			}
			colp[c] = &colv[c];
		}
		for (size_t t = 0; t < g->ntags; t++) {
			vigil__v1__tag__init(&tagv[t]);
			tagv[t].key = g->tag_keys[t];
			tagv[t].value = g->tag_values[t];
			tagp[t] = &tagv[t];
		}
		Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
		rows.n_times = n;
		rows.times = times;
		rows.n_columns = w->ncols;
		rows.columns = colp;
		Vigil__V1__Push push = VIGIL__V1__PUSH__INIT;
		push.n_tags = g->ntags;
		push.tags = tagp;
		push.rows = &rows;
		push.update = update;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = sub_id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_PUSH;
		env.push = &push;
		rc = vg_frame_append(out, &env);
	}
	vg_free(times);
	vg_free(values);
	vg_free(nulls);
	vg_free(colv);
	vg_free(colp);
	vg_free(tagv);
	vg_free(tagp);
	return rc;
}

/* Drops pushed windows beyond the horizon. */
static void prune(vg_window_state_t *w, group_t *g)
{
	size_t pushed = 0;
	for (window_t *x = g->windows; x; x = x->next)
		pushed += x->pushed;
	while (pushed > VG_WINDOW_KEEP && g->windows && g->windows->pushed) {
		window_t *old = g->windows;
		g->windows = old->next;
		window_free(w, old);
		pushed--;
	}
}

/* Pushes what closed (and what changed) in g. */
static int emit(vg_window_state_t *w, group_t *g, uint64_t sub_id, int64_t mark, vg_buf_t *out)
{
	int64_t close_mark = mark == INT64_MIN || mark - w->lateness > mark ? INT64_MIN
									  : mark - w->lateness;
	int rc = push_windows(w, g, sub_id, 0, true, out);
	rc = rc ? rc : push_windows(w, g, sub_id, close_mark, false, out);
	prune(w, g);
	return rc;
}

int vg_window_add_block(vg_window_state_t *w, uint64_t sub_id, const Vigil__V1__WriteBlock *block,
			int64_t now, vg_buf_t *out)
{
	const vg_select_t *sel = w->sel;
	const Vigil__V1__WriteField *cols[VG_MAX_PUSH_FIELDS];
	vg_tag_t tags[VG_MAX_TAGS];
	if (!vg_write_block_view(block, w->fields, w->ncols, cols, tags))
		return 0;
	group_t *g = NULL;
	int rc = find_group(w, block, &g);
	for (size_t i = 0; rc == 0 && i < block->n_times; i++) {
		vg_window_row_t row = {block, i};
		if (!vg_cond_match(sel->where, tags, block->n_tags, block->times[i], now,
				   vg_window_lookup, &row))
			continue;
		int64_t t = block->times[i];
		window_t *win = NULL;
		rc = find_window(w, g, vg_bucket_start(t, sel->interval_ns, sel->offset_ns), &win);
		if (rc)
			break;
		if (!win) {
			w->dropped_late++;
			continue;
		}
		win->points++;
		for (size_t c = 0; c < w->ncols && rc == 0; c++)
			if (cols[c])
				rc = acc_add(&win->acc[c], sel->columns[c].agg, t, cols[c]->values[i]);
		if (win->pushed)
			win->dirty = true;
		if (t > g->watermark)
			g->watermark = t;
	}
	return rc ? rc : emit(w, g, sub_id, g->watermark, out);
}

int vg_window_tick(vg_window_state_t *w, uint64_t sub_id, int64_t now, vg_buf_t *out)
{
	int rc = 0;
	for (size_t b = 0; b < GROUP_BUCKETS && rc == 0; b++)
		for (group_t *g = w->buckets[b]; g && rc == 0; g = g->next)
			rc = push_windows(w, g, sub_id,
					  now - w->lateness > now ? INT64_MIN : now - w->lateness,
					  false, out);
	return rc;
}

bool vg_window_lookup(void *ctx, vg_str_t field, double *value)
{
	vg_window_row_t *r = ctx;
	for (size_t f = 0; f < r->block->n_fields; f++) {
		const Vigil__V1__WriteField *wf = r->block->fields[f];
		if (strlen(wf->name) == field.len && memcmp(wf->name, field.data, field.len) == 0) {
			*value = wf->values[r->row];
			return true;
		}
	}
	return false;
}
