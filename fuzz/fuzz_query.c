/*
 * fuzz_query.c — libFuzzer harness for the query language front end
 * (query/lexer.c, query/parser.c, query/time.c).
 *
 * Input: the text of one statement, as a Query or Subscribe request
 * carries it.  vg_query_parse() must return 0 with a statement or an error
 * code with a positioned, NUL-terminated message — never crash, leak or
 * loop.  A parsed statement is then inspected the way the server and the
 * executor do without a store: its kind, its SELECT (every column and
 * group-by name a valid view), the scan range at a fixed now
 * (vg_select_time_range), the WHERE tree evaluated on a fixed row
 * (vg_cond_match: tag equality, compiled regexes, field comparisons, time
 * leaves), a SUBSCRIBE's view and SINCE time, a continuous query's name.
 *
 * Statements that only read (SELECT, SHOW) are then executed with
 * vg_query_exec() against a small store made once at start-up in a
 * temporary directory (two measurements, a few series with tags, NaN and
 * +-Inf values, sealed chunks and head points), under the limits the
 * server sets: a 250 ms deadline (VG_ETIMEOUT), a bound on held values and
 * on the rows a sink takes.  Whatever it returns, the sink's calls must be
 * well-formed (a set begun before its rows, column counts that agree).
 *
 * The same bytes also go through vg_query_parse_time(), the RFC 3339
 * reader: a time it accepts must print (vg_query_format_time) as a string
 * that parses back to the same nanosecond.  Any crash, leak, sanitizer
 * report or broken property is a bug.
 */
#include "vg_error.h"
#include "vg_query.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void require(int ok)
{
	if (!ok)
		__builtin_trap();
}

static void check_str(vg_str_t s)
{
	require(s.len == 0 || s.data != NULL);
	/* Every byte of the view is readable (ASan checks the loads). */
	for (size_t i = 0; i < s.len; i++)
		(void)*(volatile const char *)(s.data + i);
}

static bool lookup(void *ctx, vg_str_t field, double *value)
{
	(void)ctx;
	if (field.len == 0 || field.data[0] == 'x')
		return false; /* an absent field */
	*value = (double)field.len - 3.5;
	return true;
}

static void check_select(const vg_select_t *sel)
{
	require(sel->ncolumns >= 1 && sel->columns != NULL);
	check_str(sel->measurement);
	check_str(sel->into);
	for (size_t i = 0; i < sel->ncolumns; i++) {
		const vg_select_column_t *c = &sel->columns[i];
		check_str(c->field);
		check_str(c->alias);
		check_str(c->name);
		require(c->wildcard || c->field.len > 0);
		require((const char *)vg_agg_fn_name(c->agg) != NULL);
	}
	for (size_t i = 0; i < sel->ngroup_tags; i++)
		check_str(sel->group_tags[i]);
	require(sel->interval_ns >= 0);
	require(sel->interval_ns == 0 ||
	        (sel->offset_ns >= 0 && sel->offset_ns < sel->interval_ns));

	int64_t now = 1767225600000000000; /* 2026-01-01T00:00:00Z */
	int64_t t0, t1;
	int rc = vg_select_time_range(sel, now, &t0, &t1);
	require(rc == 0 || rc == VG_ELIMIT);

	static const vg_tag_t tags[] = {
	    {{"host", 4}, {"db1", 3}},
	    {{"region", 6}, {"eu-west", 7}},
	    {{"path", 4}, {"/var/log/a b", 12}},
	};
	(void)vg_cond_match(sel->where, tags, 3, now - 1000, now, lookup, NULL);
	(void)vg_cond_match(sel->where, tags, 0, INT64_MIN, now, lookup, NULL);
	if (sel->interval_ns)
		(void)vg_bucket_start(now, sel->interval_ns, sel->offset_ns);
}

static void check_time(const char *s, size_t len)
{
	int64_t ns;
	const char *why = NULL;
	int rc = vg_query_parse_time(s, len, &ns, &why);
	if (rc != 0) {
		require(rc == VG_EINVAL || rc == VG_ELIMIT);
		return;
	}
	char buf[64];
	size_t n = vg_query_format_time(ns, buf, sizeof buf);
	require(n > 0 && n < 40);
	int64_t again;
	require(vg_query_parse_time(buf, n, &again, &why) == 0 && again == ns);
}

/* ---- execution against a small store ----------------------------------- */

static vg_store_t *store;
static char store_dir[64];

static void put(const char *m, const vg_tag_t *tags, size_t ntags, const char *field,
                const int64_t *times, const double *values, size_t n)
{
	vg_wtxn_t *txn;
	require(vg_store_write_begin(store, &txn) == 0);
	vg_series_key_t key = {{m, strlen(m)}, tags, ntags, {field, strlen(field)}};
	vg_series_id_t id;
	require(vg_wtxn_series(txn, &key, &id, NULL) == 0);
	require(vg_wtxn_put(txn, id, times, values, n) == 0);
	require(vg_wtxn_commit(txn) == 0);
}

static void remove_store(void)
{
	char path[128];
	vg_store_close(store);
	snprintf(path, sizeof path, "%s/data.mdb", store_dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock.mdb", store_dir);
	unlink(path);
	rmdir(store_dir);
}

static void make_store(void)
{
	snprintf(store_dir, sizeof store_dir, "/tmp/vg-fuzz-query.XXXXXX");
	require(mkdtemp(store_dir) != NULL);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	char err[256];
	require(vg_store_open(store_dir, &opts, &store, err, sizeof err) == 0);
	atexit(remove_store);

	enum { N = 600 };
	static int64_t times[N];
	static double values[N];
	const int64_t t0 = 1767225600000000000 - 3600000000000; /* an hour before "now" */
	static const vg_tag_t tags[][2] = {
	    {{{"host", 4}, {"db1", 3}}, {{"region", 6}, {"eu-west", 7}}},
	    {{{"host", 4}, {"db2", 3}}, {{"region", 6}, {"us-east", 7}}},
	    {{{"host", 4}, {"db3", 3}}, {{"path", 4}, {"/var/log/a b", 12}}},
	};
	for (size_t s = 0; s < 3; s++) {
		for (size_t i = 0; i < N; i++) {
			times[i] = t0 + (int64_t)i * 6000000000 + (int64_t)(s * 1000);
			values[i] = (double)((i * 37 + s * 11) % 101) / 10.0;
		}
		values[7] = __builtin_nan("");
		values[100] = __builtin_inf();
		values[101] = -__builtin_inf();
		put("cpu", tags[s], 2, "usage_user", times, values, N);
		put("cpu", tags[s], s == 2 ? 2 : 1, "usage_idle", times, values, N / 2);
	}
	for (size_t i = 0; i < 10; i++) {
		times[i] = -5 + (int64_t)i;
		values[i] = -(double)i;
	}
	put("mem", NULL, 0, "used", times, values, 10);
	require(vg_store_seal(store, 100) == 0); /* part in chunks, part in heads */
	put("cpu", tags[0], 2, "usage_user", times, values, 3);
}

typedef struct sink_state {
	bool in_set;
	size_t ncolumns; /* non-time columns of the open set */
	bool has_time;
	size_t rows;
} sink_state_t;

static int begin_set(void *ctx, const vg_result_set_t *set)
{
	sink_state_t *st = ctx;
	require(set->ncolumns >= (set->has_time ? 1u : 0u));
	for (size_t i = 0; i < set->ncolumns; i++)
		check_str(set->columns[i]);
	for (size_t i = 0; i < set->ntags; i++) {
		check_str(set->tags[i].key);
		check_str(set->tags[i].value);
	}
	st->in_set = true;
	st->has_time = set->has_time;
	st->ncolumns = set->ncolumns - (set->has_time ? 1 : 0);
	return 0;
}

static int rows(void *ctx, const int64_t *times, const vg_result_column_t *columns, size_t ncols,
                size_t nrows)
{
	sink_state_t *st = ctx;
	require(st->in_set && ncols == st->ncolumns && nrows >= 1);
	require((times != NULL) == st->has_time);
	for (size_t c = 0; c < ncols; c++)
		for (size_t r = 0; r < nrows; r++)
			if (columns[c].type == VG_COLUMN_STRING)
				check_str(columns[c].strings[r]);
			else
				(void)*(volatile const double *)&columns[c].floats[r];
	st->rows += nrows;
	return st->rows > 100000 ? VG_ELIMIT : 0; /* the server's output bound */
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void execute(const vg_statement_t *st)
{
	vg_statement_kind_t kind = vg_statement_kind(st);
	if (kind == VG_STMT_DELETE || kind == VG_STMT_SET_RETENTION)
		return; /* they would change the store the next input reads */
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.now_ns = 1767225600000000000;
	opts.deadline_ns = monotonic_ns() + 250000000;
	opts.max_values = 1u << 20;
	opts.max_rows = 97;
	sink_state_t state = {0};
	vg_result_sink_t sink = {begin_set, rows, &state};
	vg_exec_stats_t stats;
	vg_query_error_t err;
	int rc = vg_query_exec(st, store, &opts, &sink, &stats, &err);
	if (rc)
		require(memchr(err.message, 0, sizeof err.message) != NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	make_store();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	vg_statement_t *st = NULL;
	vg_query_error_t err;
	memset(&err, 0xAA, sizeof err);
	int rc = vg_query_parse(text, size, &st, &err);
	if (rc != 0) {
		require(st == NULL && err.code == rc);
		require(memchr(err.message, 0, sizeof err.message) != NULL);
		require(err.message[0] != '\0');
		require(rc == VG_ESYNTAX || rc == VG_EINVAL || rc == VG_ENOMEM);
		if (rc == VG_ESYNTAX)
			require(err.line >= 1 && err.column >= 1);
	} else {
		require(st != NULL);
		vg_statement_kind_t kind = vg_statement_kind(st);
		require(vg_statement_kind_name(kind) != NULL);
		const vg_select_t *sel = vg_statement_select(st);
		if (sel)
			check_select(sel);
		vg_subscribe_view_t view;
		if (vg_statement_subscribe(st, &view) == 0) {
			require(kind == VG_STMT_SUBSCRIBE && view.select == sel);
			require(view.lateness_ns >= 0);
			int64_t since;
			if (view.has_since)
				(void)vg_time_expr_eval(&view.since, 1767225600000000000, &since);
		} else {
			require(kind != VG_STMT_SUBSCRIBE);
		}
		check_str(vg_statement_cq_name(st));
		execute(st);
		vg_query_free(st);
	}
	check_time(text, size);
	return 0;
}
