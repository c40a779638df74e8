/*
 * collect.h — a result sink for the query tests that keeps every result
 * set in memory (plain malloc: test machinery, not under the allocation
 * hook), checks the sink contract as it goes (a set is begun before rows,
 * every block has 1..max_rows rows, column counts agree), and helpers to
 * open a temporary store and run a statement.
 */
#ifndef VG_TEST_COLLECT_H
#define VG_TEST_COLLECT_H

#include "vg_test.h"

#include "vg_error.h"
#include "vg_query.h"

#include <math.h>

typedef struct col_set {
	char *name;
	size_t ntags;
	char **tag_keys, **tag_values;
	size_t ncols; /* as in the ResultSet: time included */
	char **cols;
	vg_column_type_t *types;
	bool has_time;
	size_t nrows, cap;
	int64_t *times;
	double *f; /* [row * ndata + c], c over non-time columns */
	char **s;
	bool *null;
} col_set_t;

typedef struct collect {
	col_set_t *sets;
	size_t nsets;
	size_t max_rows;
	long abort_after_blocks; /* < 0: never; else the sink fails then */
	int abort_code;
	long blocks;
} collect_t;

static inline char *collect_dup(vg_str_t s)
{
	char *p = malloc(s.len + 1);
	cr_assert_not_null(p);
	memcpy(p, s.data, s.len);
	p[s.len] = 0;
	return p;
}

static inline size_t col_ndata(const col_set_t *set)
{
	return set->ncols - (set->has_time ? 1 : 0);
}

static inline int collect_begin(void *ctx, const vg_result_set_t *rs)
{
	collect_t *c = ctx;
	c->sets = realloc(c->sets, (c->nsets + 1) * sizeof *c->sets);
	cr_assert_not_null(c->sets);
	col_set_t *set = &c->sets[c->nsets++];
	memset(set, 0, sizeof *set);
	set->name = collect_dup(rs->name);
	set->ntags = rs->ntags;
	set->tag_keys = calloc(rs->ntags + 1, sizeof(char *));
	set->tag_values = calloc(rs->ntags + 1, sizeof(char *));
	for (size_t i = 0; i < rs->ntags; i++) {
		set->tag_keys[i] = collect_dup(rs->tags[i].key);
		set->tag_values[i] = collect_dup(rs->tags[i].value);
	}
	set->ncols = rs->ncolumns;
	set->cols = calloc(rs->ncolumns + 1, sizeof(char *));
	set->types = calloc(rs->ncolumns + 1, sizeof *set->types);
	for (size_t i = 0; i < rs->ncolumns; i++) {
		set->cols[i] = collect_dup(rs->columns[i]);
		set->types[i] = rs->types[i];
	}
	set->has_time = rs->has_time;
	if (rs->has_time) {
		cr_assert_gt(rs->ncolumns, 0);
		cr_assert_str_eq(set->cols[0], "time");
		cr_assert_eq(set->types[0], VG_COLUMN_TIME);
	}
	return 0;
}

static inline int collect_rows(void *ctx, const int64_t *times, const vg_result_column_t *cols,
                               size_t ncols, size_t nrows)
{
	collect_t *c = ctx;
	cr_assert_gt(c->nsets, 0, "rows before any set");
	col_set_t *set = &c->sets[c->nsets - 1];
	cr_assert_eq(ncols, col_ndata(set));
	cr_assert_gt(nrows, 0);
	if (c->max_rows)
		cr_assert_leq(nrows, c->max_rows);
	cr_assert_eq(times != NULL, set->has_time);
	if (c->abort_after_blocks >= 0 && c->blocks++ >= c->abort_after_blocks)
		return c->abort_code;
	size_t nd = ncols ? ncols : 1;
	if (set->nrows + nrows > set->cap) {
		size_t cap = set->cap ? set->cap : 16;
		while (cap < set->nrows + nrows)
			cap *= 2;
		set->times = realloc(set->times, cap * sizeof *set->times);
		set->f = realloc(set->f, cap * nd * sizeof *set->f);
		set->s = realloc(set->s, cap * nd * sizeof *set->s);
		set->null = realloc(set->null, cap * nd * sizeof *set->null);
		cr_assert(set->times && set->f && set->s && set->null);
		set->cap = cap;
	}
	for (size_t r = 0; r < nrows; r++) {
		size_t row = set->nrows + r;
		set->times[row] = times ? times[r] : 0;
		for (size_t k = 0; k < ncols; k++) {
			const vg_result_column_t *col = &cols[k];
			cr_assert_eq(col->type, set->types[k + (set->has_time ? 1 : 0)]);
			bool isnull = col->nulls && (col->nulls[r / 8] >> (r % 8) & 1);
			set->null[row * nd + k] = isnull;
			set->f[row * nd + k] = 0;
			set->s[row * nd + k] = NULL;
			if (col->type == VG_COLUMN_STRING) {
				cr_assert_not_null(col->strings);
				set->s[row * nd + k] = collect_dup(col->strings[r]);
			} else {
				cr_assert_not_null(col->floats);
				set->f[row * nd + k] = col->floats[r];
			}
		}
	}
	set->nrows += nrows;
	return 0;
}

static inline void collect_init(collect_t *c, vg_result_sink_t *sink)
{
	memset(c, 0, sizeof *c);
	c->abort_after_blocks = -1;
	sink->begin_set = collect_begin;
	sink->rows = collect_rows;
	sink->ctx = c;
}

static inline void collect_release(collect_t *c)
{
	for (size_t i = 0; i < c->nsets; i++) {
		col_set_t *set = &c->sets[i];
		size_t nd = col_ndata(set) ? col_ndata(set) : 1;
		for (size_t r = 0; r < set->nrows * nd; r++)
			free(set->s[r]);
		for (size_t k = 0; k < set->ntags; k++) {
			free(set->tag_keys[k]);
			free(set->tag_values[k]);
		}
		for (size_t k = 0; k < set->ncols; k++)
			free(set->cols[k]);
		free(set->name);
		free(set->tag_keys);
		free(set->tag_values);
		free(set->cols);
		free(set->types);
		free(set->times);
		free(set->f);
		free(set->s);
		free(set->null);
	}
	free(c->sets);
	memset(c, 0, sizeof *c);
	c->abort_after_blocks = -1;
}

/* Runs text; returns the code; results in *c (initialised here). */
static inline int run_query(vg_store_t *store, const char *text, const vg_exec_options_t *opts,
                            collect_t *c, vg_exec_stats_t *stats, vg_query_error_t *err)
{
	vg_statement_t *st;
	vg_query_error_t local;
	if (!err)
		err = &local;
	int rc = vg_query_parse(text, strlen(text), &st, err);
	cr_assert_eq(rc, 0, "parse \"%s\": %s", text, err->message);
	vg_result_sink_t sink;
	long abort_after = c->abort_after_blocks;
	int abort_code = c->abort_code;
	collect_init(c, &sink);
	c->abort_after_blocks = abort_after;
	c->abort_code = abort_code;
	c->max_rows = opts ? opts->max_rows : 1024;
	rc = vg_query_exec(st, store, opts, &sink, stats, err);
	vg_query_free(st);
	return rc;
}

static inline vg_store_t *open_store(char *dir, size_t len)
{
	vg_test_tmpdir(dir, len);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	return store;
}

/* Writes n points of measurement/tags/field. */
static inline vg_series_id_t put_points(vg_store_t *store, const char *m, const vg_tag_t *tags,
                                        size_t ntags, const char *field, const int64_t *times,
                                        const double *values, size_t n)
{
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	vg_series_key_t key = {{m, strlen(m)}, tags, ntags, {field, strlen(field)}};
	vg_series_id_t id;
	cr_assert_eq(vg_wtxn_series(txn, &key, &id, NULL), 0);
	if (n)
		cr_assert_eq(vg_wtxn_put(txn, id, times, values, n), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	return id;
}

#define TAG(k, v) ((vg_tag_t){{(k), sizeof(k) - 1}, {(v), sizeof(v) - 1}})

#endif
