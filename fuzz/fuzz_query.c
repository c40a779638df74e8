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
 * The same bytes also go through vg_query_parse_time(), the RFC 3339
 * reader: a time it accepts must print (vg_query_format_time) as a string
 * that parses back to the same nanosecond.  Any crash, leak, sanitizer
 * report or broken property is a bug.
 */
#include "vg_error.h"
#include "vg_query.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
	require(sel->interval_ns == 0 || (sel->offset_ns >= 0 && sel->offset_ns < sel->interval_ns));

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		vg_query_free(st);
	}
	check_time(text, size);
	return 0;
}
