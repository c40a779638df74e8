/*
 * test_parser.c — query/lexer.c, query/parser.c and query/time.c: every
 * statement form parses into the structure it says, every malformed
 * statement in a table fails with the exact code, line, column and
 * message, and RFC 3339 / duration edge cases.
 */
#include "vg_test.h"

#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_query.h"

#include <math.h>

static vg_statement_t *parse_ok(const char *text)
{
	vg_statement_t *st = NULL;
	vg_query_error_t err;
	int rc = vg_query_parse(text, strlen(text), &st, &err);
	cr_assert_eq(rc, 0, "parse of \"%s\" failed: %s", text, err.message);
	cr_assert_not_null(st);
	return st;
}

static bool str_is(vg_str_t s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

#define assert_str(s, want)                                                                        \
	cr_assert(str_is((s), (want)), "got '%.*s', want '%s'", (int)(s).len, (s).data, (want))

Test(parser, select_full)
{
	vg_statement_t *st = parse_ok(
	    "select MAX(usage_user), min(\"usage system\") AS lo, percentile(x, 99.5), rate(c, 1m) "
	    "FROM cpu WHERE host = 'a' AND (region =~ /us-.*/ OR dc != 'x') AND time >= "
	    "'2026-01-01T00:00:00Z' and time < now() - 1h AND usage_user > -5.5 "
	    "GROUP BY time(1m, -10s), host, \"rack id\" FILL(linear) ORDER BY time DESC LIMIT 10;");
	cr_assert_eq(vg_statement_kind(st), VG_STMT_SELECT);
	const vg_select_t *s = vg_statement_select(st);
	cr_assert_not_null(s);
	assert_str(s->measurement, "cpu");
	cr_assert_eq(s->ncolumns, 4);
	cr_assert(s->aggregate);
	cr_assert_eq(s->columns[0].agg, VG_AGG_MAX);
	assert_str(s->columns[0].field, "usage_user");
	assert_str(s->columns[0].name, "max_usage_user");
	cr_assert_eq(s->columns[1].agg, VG_AGG_MIN);
	assert_str(s->columns[1].field, "usage system");
	assert_str(s->columns[1].alias, "lo");
	assert_str(s->columns[1].name, "lo");
	cr_assert_eq(s->columns[2].agg, VG_AGG_PERCENTILE);
	cr_assert_float_eq(s->columns[2].percentile, 99.5, 1e-12);
	assert_str(s->columns[2].name, "percentile_x");
	cr_assert_eq(s->columns[3].agg, VG_AGG_RATE);
	cr_assert_eq(s->columns[3].rate_unit_ns, INT64_C(60000000000));
	cr_assert_eq(s->interval_ns, INT64_C(60000000000));
	cr_assert_eq(s->offset_ns, INT64_C(50000000000), "offset -10s normalises to 50s");
	cr_assert_eq(s->ngroup_tags, 2);
	assert_str(s->group_tags[0], "host");
	assert_str(s->group_tags[1], "rack id");
	cr_assert_not(s->group_all_tags);
	cr_assert_eq(s->fill, VG_FILL_LINEAR);
	cr_assert(s->order_desc);
	cr_assert_eq(s->limit, 10);
	/* WHERE: ((((host='a' AND (re OR ne)) AND time>=) AND time<) AND field>) */
	const vg_cond_t *w = s->where;
	cr_assert_eq(w->kind, VG_COND_AND);
	cr_assert_eq(w->right->kind, VG_COND_FIELD);
	assert_str(w->right->name, "usage_user");
	cr_assert_eq(w->right->op, VG_CMP_GT);
	cr_assert_float_eq(w->right->number, -5.5, 1e-12);
	const vg_cond_t *lt = w->left->right;
	cr_assert_eq(lt->kind, VG_COND_TIME);
	cr_assert_eq(lt->op, VG_CMP_LT);
	cr_assert(lt->time.now);
	cr_assert_eq(lt->time.ns, -INT64_C(3600000000000));
	const vg_cond_t *ge = w->left->left->right;
	cr_assert_eq(ge->kind, VG_COND_TIME);
	cr_assert_eq(ge->op, VG_CMP_GE);
	cr_assert_not(ge->time.now);
	cr_assert_eq(ge->time.ns, INT64_C(1767225600000000000));
	const vg_cond_t *a = w->left->left->left;
	cr_assert_eq(a->kind, VG_COND_AND);
	cr_assert_eq(a->left->kind, VG_COND_TAG);
	assert_str(a->left->name, "host");
	assert_str(a->left->value, "a");
	cr_assert_eq(a->left->op, VG_CMP_EQ);
	cr_assert_eq(a->right->kind, VG_COND_OR);
	cr_assert_eq(a->right->left->op, VG_CMP_RE);
	cr_assert_not_null(a->right->left->regex);
	assert_str(a->right->left->value, "us-.*");
	cr_assert_eq(a->right->right->op, VG_CMP_NE);
	cr_assert_eq(a->left->line, 1);
	cr_assert_eq(a->left->column, 100);
	/* The time range at a given now. */
	int64_t t0, t1;
	int64_t now = INT64_C(1767229200000000000) + 5;
	cr_assert_eq(vg_select_time_range(s, now, &t0, &t1), 0);
	cr_assert_eq(t0, INT64_C(1767225600000000000));
	cr_assert_eq(t1, now - INT64_C(3600000000000));
	vg_query_free(st);
}

Test(parser, select_raw_and_wildcards)
{
	vg_statement_t *st = parse_ok("SELECT * FROM \"my m\"");
	const vg_select_t *s = vg_statement_select(st);
	cr_assert_eq(s->ncolumns, 1);
	cr_assert(s->columns[0].wildcard);
	cr_assert_eq(s->columns[0].agg, VG_AGG_NONE);
	cr_assert_not(s->aggregate);
	assert_str(s->measurement, "my m");
	cr_assert_null(s->where);
	cr_assert_eq(s->limit, 0);
	cr_assert_eq(s->interval_ns, 0);
	vg_query_free(st);

	st =
	    parse_ok("SELECT time, a, b AS bee FROM m WHERE time = 5 GROUP BY * ORDER BY time asc");
	s = vg_statement_select(st);
	cr_assert_eq(s->ncolumns, 2, "time is skipped");
	assert_str(s->columns[0].name, "a");
	assert_str(s->columns[1].name, "bee");
	cr_assert(s->group_all_tags);
	cr_assert_not(s->order_desc);
	int64_t t0, t1;
	cr_assert_eq(vg_select_time_range(s, 0, &t0, &t1), 0);
	cr_assert_eq(t0, 5);
	cr_assert_eq(t1, 6);
	vg_query_free(st);

	st = parse_ok("SELECT mean(*), count(*) FROM m GROUP BY time(5m) fill(-1.5)");
	s = vg_statement_select(st);
	cr_assert(s->columns[0].wildcard);
	cr_assert_eq(s->columns[0].agg, VG_AGG_MEAN);
	cr_assert_eq(s->fill, VG_FILL_VALUE);
	cr_assert_float_eq(s->fill_value, -1.5, 0);
	vg_query_free(st);

	/* A keyword-named field reads as a field where a field is expected. */
	st = parse_ok("select count from m where count > 1e3 and \"time\" <= 10");
	s = vg_statement_select(st);
	assert_str(s->columns[0].field, "count");
	cr_assert_float_eq(s->where->left->number, 1000, 0);
	cr_assert_eq(s->where->right->kind, VG_COND_TIME);
	vg_query_free(st);

	/* Names with . : - and every function. */
	st =
	    parse_ok("SELECT count(a), sum(a), min(a), max(a), mean(a), first(a), last(a), "
	             "spread(a), stddev(a), median(a), percentile(a, 0), rate(a) FROM disk.io:x-1");
	s = vg_statement_select(st);
	assert_str(s->measurement, "disk.io:x-1");
	cr_assert_eq(s->ncolumns, 12);
	for (size_t i = 0; i < 12; i++)
		cr_assert_eq(s->columns[i].agg, (vg_agg_fn_t)(VG_AGG_COUNT + i));
	cr_assert_eq(s->columns[11].rate_unit_ns, INT64_C(1000000000));
	assert_str(s->columns[8].name, "stddev_a");
	vg_query_free(st);
}

Test(parser, subscribe_and_cq)
{
	vg_statement_t *st = parse_ok(
	    "SUBSCRIBE SELECT heart_rate FROM vitals WHERE heart_rate > 120 SINCE now() - 5m "
	    "LATENESS 10s");
	cr_assert_eq(vg_statement_kind(st), VG_STMT_SUBSCRIBE);
	vg_subscribe_view_t v;
	cr_assert_eq(vg_statement_subscribe(st, &v), 0);
	cr_assert(v.has_since);
	cr_assert(v.since.now);
	cr_assert_eq(v.since.ns, -INT64_C(300000000000));
	cr_assert_eq(v.lateness_ns, INT64_C(10000000000));
	assert_str(v.select->measurement, "vitals");
	cr_assert_eq(v.select->where->kind, VG_COND_FIELD);
	int64_t t;
	cr_assert_eq(vg_time_expr_eval(&v.since, INT64_C(1000000000000), &t), 0);
	cr_assert_eq(t, INT64_C(700000000000));
	vg_query_free(st);

	st = parse_ok("SUBSCRIBE SELECT mean(x) FROM m GROUP BY time(1m)");
	cr_assert_eq(vg_statement_subscribe(st, &v), 0);
	cr_assert_not(v.has_since);
	cr_assert_eq(v.lateness_ns, 0);
	vg_query_free(st);

	st = parse_ok("CREATE CONTINUOUS QUERY cq1 AS SELECT mean(x) AS x INTO m_1m FROM m "
	              "GROUP BY time(1m), host");
	cr_assert_eq(vg_statement_kind(st), VG_STMT_CREATE_CQ);
	assert_str(vg_statement_cq_name(st), "cq1");
	assert_str(vg_statement_select(st)->into, "m_1m");
	cr_assert_eq(vg_statement_subscribe(st, &v), VG_EINVAL);
	vg_query_free(st);

	st = parse_ok("drop continuous query \"cq 1\"");
	cr_assert_eq(vg_statement_kind(st), VG_STMT_DROP_CQ);
	assert_str(vg_statement_cq_name(st), "cq 1");
	cr_assert_null(vg_statement_select(st));
	vg_query_free(st);
}

Test(parser, other_statements)
{
	static const struct {
		const char *text;
		vg_statement_kind_t kind;
	} cases[] = {
	    {"SHOW CONTINUOUS QUERIES", VG_STMT_SHOW_CQS},
	    {"show measurements;", VG_STMT_SHOW_MEASUREMENTS},
	    {"SHOW SERIES", VG_STMT_SHOW_SERIES},
	    {"SHOW SERIES FROM cpu WHERE host =~ /a/ OR host = 'b'", VG_STMT_SHOW_SERIES},
	    {"SHOW TAG KEYS", VG_STMT_SHOW_TAG_KEYS},
	    {"SHOW TAG KEYS FROM cpu", VG_STMT_SHOW_TAG_KEYS},
	    {"SHOW TAG VALUES WITH KEY = host", VG_STMT_SHOW_TAG_VALUES},
	    {"SHOW TAG VALUES FROM cpu WITH KEY = \"host\"", VG_STMT_SHOW_TAG_VALUES},
	    {"SHOW FIELD KEYS", VG_STMT_SHOW_FIELD_KEYS},
	    {"SHOW FIELD KEYS FROM cpu", VG_STMT_SHOW_FIELD_KEYS},
	    {"SHOW STATS", VG_STMT_SHOW_STATS},
	    {"SHOW RETENTION", VG_STMT_SHOW_RETENTION},
	    {"DELETE FROM cpu", VG_STMT_DELETE},
	    {"DELETE FROM cpu WHERE host = 'a' AND time < '2026-01-01'", VG_STMT_DELETE},
	    {"SET RETENTION 30d", VG_STMT_SET_RETENTION},
	    {"SET RETENTION INF ON cpu", VG_STMT_SET_RETENTION},
	    {"  \n select x from y ; \n ", VG_STMT_SELECT},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		vg_statement_t *st = parse_ok(cases[i].text);
		cr_assert_eq(vg_statement_kind(st), cases[i].kind, "%s", cases[i].text);
		cr_assert_str_not_empty(vg_statement_kind_name(vg_statement_kind(st)));
		vg_query_free(st);
	}
}

static const struct bad_case {
	const char *text;
	int code;
	uint32_t line, column;
	const char *message;
} bad_cases[] = {
    {"SELECT usage_user FORM cpu", VG_ESYNTAX, 1, 19,
     "line 1, column 19: expected FROM, found 'FORM'"},
    {"", VG_ESYNTAX, 1, 1,
     "line 1, column 1: expected SELECT, SUBSCRIBE, SHOW, CREATE, DROP, DELETE or SET, found "
     "end of input"},
    {"SELEC x FROM m", VG_ESYNTAX, 1, 1,
     "line 1, column 1: expected SELECT, SUBSCRIBE, SHOW, CREATE, DROP, DELETE or SET, found "
     "'SELEC'"},
    {"SELECT FROM m", VG_ESYNTAX, 1, 13, "line 1, column 13: expected FROM, found 'm'"},
    {"SELECT x FROM", VG_ESYNTAX, 1, 14,
     "line 1, column 14: expected measurement, found end of input"},
    {"SELECT x FROM m\nWHERE host = 'a' AND", VG_ESYNTAX, 2, 21,
     "line 2, column 21: expected condition, found end of input"},
    {"SELECT x FROM m WHERE host = 'a", VG_ESYNTAX, 1, 30,
     "line 1, column 30: unterminated string"},
    {"SELECT x FROM m WHERE host = 'a\\qb'", VG_ESYNTAX, 1, 32,
     "line 1, column 32: invalid escape '\\q' in string"},
    {"SELECT x FROM m WHERE host =~ /a(/", VG_EINVAL, 1, 31, NULL},
    {"SELECT x FROM m WHERE host =~ 'a'", VG_ESYNTAX, 1, 31,
     "line 1, column 31: expected regex /.../, found 'a'"},
    {"SELECT x FROM m WHERE host = /a/", VG_EINVAL, 1, 28,
     "line 1, column 28: a regex needs =~ or !~"},
    {"SELECT x FROM m WHERE host < 'a'", VG_EINVAL, 1, 28,
     "line 1, column 28: tag conditions support =, !=, =~ and !~"},
    {"SELECT x FROM m WHERE x > y", VG_ESYNTAX, 1, 27,
     "line 1, column 27: expected string, regex or number, found 'y'"},
    {"SELECT x FROM m WHERE time > 1 OR host = 'a'", VG_EINVAL, 1, 23,
     "line 1, column 23: time conditions cannot be combined with OR"},
    {"SELECT x FROM m WHERE time != 1", VG_EINVAL, 1, 28,
     "line 1, column 28: time conditions support =, <, <=, > and >="},
    {"SELECT x FROM m WHERE time > '2026-13-01T00:00:00Z'", VG_EINVAL, 1, 30,
     "line 1, column 30: invalid time '2026-13-01T00:00:00Z': month out of range"},
    {"SELECT x FROM m WHERE time > now() - 5", VG_ESYNTAX, 1, 38,
     "line 1, column 38: expected duration, found '5'"},
    {"SELECT x FROM m WHERE time > 10x", VG_ESYNTAX, 1, 30,
     "line 1, column 30: invalid duration '10x' (units: ns, us, ms, s, m, h, d, w)"},
    {"SELECT x FROM m WHERE time > 99999999999w", VG_EINVAL, 1, 30,
     "line 1, column 30: duration '99999999999w' is out of range"},
    {"SELECT x FROM m WHERE time > 99999999999999999999", VG_EINVAL, 1, 30,
     "line 1, column 30: time out of range"},
    {"SELECT foo(x) FROM m", VG_EINVAL, 1, 8, "line 1, column 8: unknown function 'foo'"},
    {"SELECT mean(x), y FROM m", VG_EINVAL, 1, 17,
     "line 1, column 17: cannot mix aggregate functions and raw fields"},
    {"SELECT percentile(x, 101) FROM m", VG_EINVAL, 1, 22,
     "line 1, column 22: percentile must be between 0 and 100"},
    {"SELECT percentile(x) FROM m", VG_ESYNTAX, 1, 20,
     "line 1, column 20: expected ',', found ')'"},
    {"SELECT rate(x, 0s) FROM m", VG_EINVAL, 1, 16,
     "line 1, column 16: rate duration must be positive"},
    {"SELECT mean(*) AS m FROM m", VG_EINVAL, 1, 16,
     "line 1, column 16: a wildcard cannot have an alias"},
    {"SELECT x FROM m GROUP BY time(1m)", VG_EINVAL, 1, 26,
     "line 1, column 26: GROUP BY time(...) needs aggregate functions in SELECT"},
    {"SELECT mean(x) FROM m GROUP BY time(0s)", VG_EINVAL, 1, 37,
     "line 1, column 37: GROUP BY time interval must be positive"},
    {"SELECT mean(x) FROM m GROUP BY time(1m), time(2m)", VG_EINVAL, 1, 42,
     "line 1, column 42: GROUP BY time(...) appears twice"},
    {"SELECT mean(x) FROM m GROUP BY host, host", VG_EINVAL, 1, 38,
     "line 1, column 38: tag appears twice in GROUP BY"},
    {"SELECT mean(x) FROM m FILL(null)", VG_EINVAL, 1, 23,
     "line 1, column 23: FILL needs GROUP BY time(...)"},
    {"SELECT mean(x) FROM m GROUP BY time(1m) FILL(zero)", VG_ESYNTAX, 1, 46,
     "line 1, column 46: expected none, null, previous, linear or a number, found 'zero'"},
    {"SELECT x FROM m ORDER BY host", VG_ESYNTAX, 1, 26,
     "line 1, column 26: expected time, found 'host'"},
    {"SELECT x FROM m LIMIT -1", VG_ESYNTAX, 1, 23,
     "line 1, column 23: expected integer, found '-'"},
    {"SELECT x FROM m LIMIT 5 extra", VG_ESYNTAX, 1, 25,
     "line 1, column 25: expected end of statement, found 'extra'"},
    {"SELECT x FROM m;;", VG_ESYNTAX, 1, 17,
     "line 1, column 17: expected end of statement, found ';'"},
    {"SELECT x INTO y FROM m", VG_EINVAL, 1, 10,
     "line 1, column 10: INTO is only allowed in CREATE CONTINUOUS QUERY"},
    {"CREATE CONTINUOUS QUERY q AS SELECT mean(x) FROM m GROUP BY time(1m)", VG_EINVAL, 1, 30,
     "line 1, column 30: a continuous query needs INTO <measurement>"},
    {"CREATE CONTINUOUS QUERY q AS SELECT mean(x) INTO y FROM m", VG_EINVAL, 1, 30,
     "line 1, column 30: a continuous query needs aggregate functions and GROUP BY time(...)"},
    {"SHOW TAG VALUES FROM m", VG_ESYNTAX, 1, 23,
     "line 1, column 23: expected WITH, found end of input"},
    {"SHOW SERIES WHERE x > 1", VG_EINVAL, 1, 19,
     "line 1, column 19: SHOW SERIES supports only tag conditions"},
    {"DELETE FROM m WHERE x > 1", VG_EINVAL, 1, 21,
     "line 1, column 21: DELETE supports only tag and time conditions"},
    {"SET RETENTION 0s", VG_EINVAL, 1, 15,
     "line 1, column 15: retention must be positive (or INF)"},
    {"SHOW", VG_ESYNTAX, 1, 5,
     "line 1, column 5: expected MEASUREMENTS, SERIES, TAG KEYS, TAG VALUES, FIELD KEYS, STATS, "
     "RETENTION or CONTINUOUS QUERIES, found end of input"},
    {"SELECT x FROM m WHERE h = 'é' AND § ", VG_ESYNTAX, 1, 35,
     "line 1, column 35: unexpected character '§'"},
    {"SELECT \"\" FROM m", VG_ESYNTAX, 1, 8, "line 1, column 8: empty quoted identifier"},
    {"SELECT x FROM m WHERE (a = 'b'", VG_ESYNTAX, 1, 31,
     "line 1, column 31: expected ')', found end of input"},
    {"SUBSCRIBE SELECT x FROM m SINCE", VG_ESYNTAX, 1, 32,
     "line 1, column 32: expected time (integer ns, 'RFC 3339' or now()), found end of input"},
    {"SELECT x FROM m WHERE a = 1.5.3", VG_ESYNTAX, 1, 27,
     "line 1, column 27: invalid number '1.5.'"},
};

Test(parser, invalid)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const struct bad_case *c = &bad_cases[i];
		vg_statement_t *st = (vg_statement_t *)1;
		vg_query_error_t err;
		int rc = vg_query_parse(c->text, strlen(c->text), &st, &err);
		cr_expect_eq(rc, c->code, "\"%s\": rc %d (%s)", c->text, rc, err.message);
		cr_expect_null(st);
		cr_expect_eq(err.code, c->code);
		cr_expect_eq(err.line, c->line, "\"%s\": line %u (%s)", c->text, err.line,
		             err.message);
		cr_expect_eq(err.column, c->column, "\"%s\": column %u (%s)", c->text, err.column,
		             err.message);
		if (c->message)
			cr_expect_str_eq(err.message, c->message, "\"%s\"", c->text);
		else
			cr_expect(strstr(err.message, "invalid regex /a(/: ") != NULL, "%s",
			          err.message);
	}
}

Test(parser, limits)
{
	/* Deep nesting and long chains are refused before they cost stack. */
	char *text = malloc(20000);
	strcpy(text, "SELECT x FROM m WHERE ");
	for (int i = 0; i < 40; i++)
		strcat(text, "(");
	vg_statement_t *st;
	vg_query_error_t err;
	cr_assert_eq(vg_query_parse(text, strlen(text), &st, &err), VG_EINVAL);
	cr_assert_str_eq(err.message, "line 1, column 55: conditions nested too deeply (limit 32)");
	strcpy(text, "SELECT x FROM m WHERE a = 'b'");
	for (int i = 0; i < 300; i++)
		strcat(text, " OR a = 'b'");
	cr_assert_eq(vg_query_parse(text, strlen(text), &st, &err), VG_EINVAL);
	cr_assert(strstr(err.message, "too many conditions (limit 256)"), "%s", err.message);
	strcpy(text, "SELECT x FROM m WHERE a = 'b'");
	for (int i = 0; i < 255; i++)
		strcat(text, " AND a = 'b'");
	st = parse_ok(text);
	vg_query_free(st);
	/* Names are limited like the store's. */
	memset(text, 0, 20000);
	strcpy(text, "SELECT ");
	memset(text + 7, 'x', 256);
	strcat(text, " FROM m");
	cr_assert_eq(vg_query_parse(text, strlen(text), &st, &err), VG_EINVAL);
	cr_assert_str_eq(err.message, "line 1, column 8: name longer than 255 bytes");
	free(text);
}

/*
 * Regression (fuzz/fuzz_query.c): glibc's regcomp copies repeated parts of
 * the pattern, so stacked and nested repetitions cost memory exponential in
 * their number — /x+++...+/ with 36 '+' took gigabytes and seconds.  Such
 * regexes are refused before regcomp, with a reason; ordinary ones pass.
 */
static void expect_regex_refused(const char *regex, const char *reason)
{
	char text[4200];
	snprintf(text, sizeof text, "SELECT v FROM m WHERE a =~ /%s/", regex);
	vg_statement_t *st = (vg_statement_t *)1;
	vg_query_error_t err;
	cr_assert_eq(vg_query_parse(text, strlen(text), &st, &err), VG_EINVAL, "/%s/: %s", regex,
		     err.message);
	cr_assert_null(st);
	cr_assert_eq(err.column, 28);
	cr_assert(strstr(err.message, reason) != NULL, "/%s/: %s", regex, err.message);
}

Test(parser, costly_regexes_are_refused, .timeout = 10)
{
	expect_regex_refused("x++++++++++++++++++++++++++++++++++++",
			     "repetition operator at byte 2 follows another repetition");
	expect_regex_refused("a*{2}", "follows another repetition");
	expect_regex_refused("((((((((((((((((((((x+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)+",
			     "too many repetitions");
	expect_regex_refused("((a{99}){99}){99}", "too many repetitions");
	expect_regex_refused("a{1001}", "repetition count at byte 6 is over 1000");
	/* glibc reads {,n} as {0,n} (found by fuzz_frame: 2 GB in regcomp). */
	expect_regex_refused("^db2{,00017001}55044", "repetition count at byte 14 is over 1000");
	expect_regex_refused("(a)\\1", "back-reference \\1 at byte 3 is not supported");
	char big[1100];
	memset(big, 'a', 1025);
	big[1025] = '\0';
	expect_regex_refused(big, "1025 bytes, more than 1024");

	static const char *fine[] = {"^db[0-9]{1,3}$", "(eu|us)-(west|east)-[0-9]+", "a{1000}",
				     "[+*]+x?", "[]{}]*", "[[:alpha:]]+\\+", "x{,2}", "(a+|b*)c?"};
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		char text[200];
		snprintf(text, sizeof text, "SELECT v FROM m WHERE a =~ /%s/", fine[i]);
		vg_query_free(parse_ok(text));
	}
}

Test(parser, escapes)
{
	vg_statement_t *st =
	    parse_ok("SELECT \"we\\\"ird\" FROM m WHERE h = 'it\\'s\\\\' AND p =~ /a\\/b\\.c/");
	const vg_select_t *s = vg_statement_select(st);
	assert_str(s->columns[0].field, "we\"ird");
	assert_str(s->where->left->value, "it's\\");
	assert_str(s->where->right->value, "a/b\\.c");
	/* The regex matches what it says: a literal dot, a slash. */
	vg_tag_t tags[1] = {{{"p", 1}, {"xa/b.cx", 7}}};
	vg_tag_t tags2[1] = {{{"p", 1}, {"a/bxc", 5}}};
	vg_tag_t tags3[2] = {{{"p", 1}, {"a/b.c", 5}}, {{"h", 1}, {"it's\\", 5}}};
	cr_assert_not(vg_cond_match(s->where, tags, 1, 0, 0, NULL, NULL));
	cr_assert_not(vg_cond_match(s->where, tags2, 1, 0, 0, NULL, NULL));
	cr_assert(vg_cond_match(s->where, tags3, 2, 0, 0, NULL, NULL));
	vg_query_free(st);
}

static bool lookup_x(void *ctx, vg_str_t field, double *v)
{
	(void)field;
	const double *x = ctx;
	if (isnan(*x))
		return false;
	*v = *x;
	return true;
}

Test(parser, cond_match)
{
	vg_statement_t *st = parse_ok("SELECT x FROM m WHERE (host = '' OR dc !~ /^eu/) AND x >= 2 "
	                              "AND time > now() - 1s");
	const vg_select_t *s = vg_statement_select(st);
	vg_tag_t eu[1] = {{{"dc", 2}, {"eu-1", 4}}};
	vg_tag_t us[1] = {{{"dc", 2}, {"us-1", 4}}};
	vg_tag_t hosted[2] = {{{"dc", 2}, {"eu-1", 4}}, {{"host", 4}, {"a", 1}}};
	double two = 2, one = 1, absent = NAN;
	int64_t now = 10000000000;
	cr_assert(vg_cond_match(s->where, eu, 1, now, now, lookup_x, &two), "no host tag: ''");
	cr_assert(vg_cond_match(s->where, us, 1, now, now, lookup_x, &two));
	cr_assert_not(vg_cond_match(s->where, hosted, 2, now, now, lookup_x, &two));
	cr_assert_not(vg_cond_match(s->where, us, 1, now, now, lookup_x, &one));
	cr_assert_not(vg_cond_match(s->where, us, 1, now, now, lookup_x, &absent));
	cr_assert_not(vg_cond_match(s->where, us, 1, now - 1000000000, now, lookup_x, &two));
	vg_query_free(st);
}

Test(parser, rfc3339)
{
	static const struct {
		const char *text;
		int code;
		int64_t ns;
	} cases[] = {
	    {"1970-01-01T00:00:00Z", 0, 0},
	    {"1970-01-01", 0, 0},
	    {"1970-01-01 00:00:01", 0, 1000000000},
	    {"1970-01-01t00:00:00.5z", 0, 500000000},
	    {"1970-01-01T00:00:00.000000001Z", 0, 1},
	    {"1969-12-31T23:59:59.999999999Z", 0, -1},
	    {"2026-01-01T00:00:00Z", 0, INT64_C(1767225600000000000)},
	    {"2026-01-01T02:00:00+02:00", 0, INT64_C(1767225600000000000)},
	    {"2025-12-31T19:30:00-04:30", 0, INT64_C(1767225600000000000)},
	    {"2024-02-29T12:00:00Z", 0, INT64_C(1709208000000000000)},
	    {"2000-02-29", 0, INT64_C(951782400000000000)},
	    {"2262-04-11T23:47:16.854775807Z", 0, INT64_MAX},
	    {"1677-09-21T00:12:43.145224192Z", 0, INT64_MIN},
	    {"2262-04-11T23:47:16.854775808Z", VG_ELIMIT, 0},
	    {"1677-09-21T00:12:43.145224191Z", VG_ELIMIT, 0},
	    {"2023-02-29", VG_EINVAL, 0},
	    {"1900-02-29", VG_EINVAL, 0},
	    {"2026-04-31", VG_EINVAL, 0},
	    {"2026-00-10", VG_EINVAL, 0},
	    {"2026-01-01T24:00:00Z", VG_EINVAL, 0},
	    {"2026-01-01T23:60:00Z", VG_EINVAL, 0},
	    {"2026-01-01T23:59:60Z", VG_EINVAL, 0},
	    {"2026-01-01T00:00:00.Z", VG_EINVAL, 0},
	    {"2026-01-01T00:00:00.1234567891Z", VG_EINVAL, 0},
	    {"2026-01-01T00:00:00+2:00", VG_EINVAL, 0},
	    {"2026-01-01T00:00:00Zx", VG_EINVAL, 0},
	    {"2026-1-01", VG_EINVAL, 0},
	    {"", VG_EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ns = 12345;
		const char *why = NULL;
		int rc = vg_query_parse_time(cases[i].text, strlen(cases[i].text), &ns, &why);
		cr_assert_eq(rc, cases[i].code, "%s: rc %d (%s)", cases[i].text, rc,
		             why ? why : "");
		if (rc == 0)
			cr_assert_eq(ns, cases[i].ns, "%s: %lld", cases[i].text, (long long)ns);
		if (rc == VG_EINVAL)
			cr_assert_not_null(why);
	}
	/* Formatting round-trips through parsing. */
	vg_test_rng_t rng = {0x9e3779b97f4a7c15ULL};
	for (int i = 0; i < 20000; i++) {
		int64_t ns = (int64_t)vg_test_next(&rng);
		if (i % 3 == 0)
			ns -= ns % 1000000000;
		char buf[64];
		size_t n = vg_query_format_time(ns, buf, sizeof buf);
		cr_assert_lt(n, 40);
		int64_t back;
		cr_assert_eq(vg_query_parse_time(buf, n, &back, NULL), 0, "%s", buf);
		cr_assert_eq(back, ns, "%s", buf);
	}
	char buf[64];
	vg_query_format_time(INT64_C(1767225600500000000), buf, sizeof buf);
	cr_assert_str_eq(buf, "2026-01-01T00:00:00.5Z");
}

Test(parser, durations_and_times)
{
	static const struct {
		const char *text;
		int64_t t0, t1;
	} cases[] = {
	    {"time > 1ns", 2, INT64_MAX},
	    {"time >= 1us", 1000, INT64_MAX},
	    {"time < 1ms", INT64_MIN, 1000000},
	    {"time <= 1s", INT64_MIN, 1000000001},
	    {"time > 1m AND time < 1h", 60000000001, INT64_C(3600000000000)},
	    {"time >= 1d", INT64_C(86400000000000), INT64_MAX},
	    {"time >= 1w", INT64_C(604800000000000), INT64_MAX},
	    {"time >= -5", -5, INT64_MAX},
	    {"time >= '1970-01-02' - 1d + 1s", 1000000000, INT64_MAX},
	    {"time >= 10 AND time >= 20 AND time < 100 AND time <= 50", 20, 51},
	    {"time = 7 AND time > 9", 10, 8},
	    {"time > now()", 1001, INT64_MAX},
	    {"time < now() + 1us", INT64_MIN, 2000},
	    {"time <= 9223372036854775807", INT64_MIN, INT64_MAX},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "SELECT x FROM m WHERE %s", cases[i].text);
		vg_statement_t *st = parse_ok(text);
		int64_t t0, t1;
		cr_assert_eq(vg_select_time_range(vg_statement_select(st), 1000, &t0, &t1), 0);
		cr_assert_eq(t0, cases[i].t0, "%s: t0 %lld", cases[i].text, (long long)t0);
		cr_assert_eq(t1, cases[i].t1, "%s: t1 %lld", cases[i].text, (long long)t1);
		vg_query_free(st);
	}
	/* now() far in the future overflows at evaluation, not at parse. */
	vg_statement_t *st = parse_ok("SELECT x FROM m WHERE time > now() + 100000d");
	int64_t t0, t1;
	cr_assert_eq(vg_select_time_range(vg_statement_select(st), INT64_MAX - 5, &t0, &t1),
	             VG_ELIMIT);
	vg_query_free(st);
}

Test(parser, no_leaks_on_alloc_failure)
{
	const char *text = "SELECT mean(x), max(y) AS z FROM m WHERE h =~ /a|b/ AND (x > 1 OR "
	                   "g = 'q') GROUP BY time(1m), h FILL(0) LIMIT 3";
	for (long n = 0;; n++) {
		vg_alloc_fail_after(n);
		vg_statement_t *st;
		vg_query_error_t err;
		int rc = vg_query_parse(text, strlen(text), &st, &err);
		vg_alloc_fail_after(-1);
		if (rc == 0) {
			vg_query_free(st);
			break;
		}
		cr_assert_eq(rc, VG_ENOMEM, "%ld: %s", n, err.message);
		cr_assert_lt(n, 1000);
	}
}
