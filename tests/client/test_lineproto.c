/*
 * test_lineproto.c — the line protocol parser and line splitter of
 * client/lineproto.h.
 *
 * Every table line is parsed from a copy that ends exactly at the end of a
 * readable page followed by a PROT_NONE page, so any read past the line
 * crashes the test.  Floats are checked bit for bit against strtod on random
 * decimals, integers against the 2^53 limit, splitting against every chunk
 * size, and each allocation is made to fail in turn.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lineproto.h"
#include "vg_alloc.h"
#include "vg_buf.h"
#include "vg_error.h"

#define DEFAULT_TIME INT64_C(1234567890123456789)
#define GUARD_PAGES 16

/* ---- memory that ends at a PROT_NONE page ---- */

typedef struct guard {
	char *base;
	size_t size; /* readable bytes before the guard page */
} guard_t;

static guard_t guard;

static void guard_setup(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	guard.size = GUARD_PAGES * page;
	guard.base = mmap(NULL, guard.size + page, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(guard.base, MAP_FAILED);
	cr_assert_eq(mprotect(guard.base + guard.size, page, PROT_NONE), 0);
}

static void guard_teardown(void)
{
	munmap(guard.base, guard.size + (size_t)sysconf(_SC_PAGESIZE));
}

/* Copies n bytes so that they end at the guard page; returns the copy. */
static const char *at_page_end(const char *s, size_t n)
{
	cr_assert_leq(n, guard.size);
	char *dst = guard.base + guard.size - n;
	memcpy(dst, s, n);
	return dst;
}

static bool bits_eq(double a, double b)
{
	return memcmp(&a, &b, sizeof a) == 0;
}

static bool view_is(vg_lp_view_t v, const char *s)
{
	return v.len == strlen(s) && memcmp(v.ptr, s, v.len) == 0;
}

static bool inside(const void *p, size_t n, const void *base, size_t base_len)
{
	const char *c = p, *b = base;
	return c >= b && c + n <= b + base_len;
}

static vg_lp_line_t line_out; /* 8 KiB: kept off the stack */

/* ---- valid lines ---- */

typedef struct {
	const char *key;
	const char *value;
} kv_t;

typedef struct {
	const char *key;
	double value;
} fv_t;

typedef struct {
	const char *line;
	vg_lp_precision_t precision;
	const char *measurement;
	kv_t tags[4];   /* ends at the first NULL key */
	fv_t fields[9]; /* ends at the first NULL key */
	bool has_time;
	int64_t time;
} valid_case_t;

/* clang-format off */
static const valid_case_t valid_cases[] = {
	{"cpu value=1", 0, "cpu", {{0}}, {{"value", 1}}, false, DEFAULT_TIME},
	{"cpu,host=a,region=eu usage_user=12.5,usage_idle=80i 1700000000000000000",
	 0,
	 "cpu",
	 {{"host", "a"}, {"region", "eu"}},
	 {{"usage_user", 12.5}, {"usage_idle", 80}},
	 true,
	 INT64_C(1700000000000000000)},
	/* tags stay in the order written */
	{"cpu,zone=b,host=a,az=c v=-1e10,w=1.5E-3,x=-0.5,y=.5,z=5. 1",
	 0,
	 "cpu",
	 {{"zone", "b"}, {"host", "a"}, {"az", "c"}},
	 {{"v", -1e10}, {"w", 1.5e-3}, {"x", -0.5}, {"y", 0.5}, {"z", 5.0}},
	 true,
	 1},
	/* precision scaling */
	{"m v=1 1700000000", VG_LP_PRECISION_S, "m", {{0}}, {{"v", 1}}, true,
	 INT64_C(1700000000000000000)},
	{"m v=1 1700000000123", VG_LP_PRECISION_MS, "m", {{0}}, {{"v", 1}}, true,
	 INT64_C(1700000000123000000)},
	{"m v=1 1700000000123456", VG_LP_PRECISION_US, "m", {{0}}, {{"v", 1}}, true,
	 INT64_C(1700000000123456000)},
	{"m v=1 -1000", VG_LP_PRECISION_S, "m", {{0}}, {{"v", 1}}, true, INT64_C(-1000000000000)},
	{"m v=1 9223372036", VG_LP_PRECISION_S, "m", {{0}}, {{"v", 1}}, true,
	 INT64_C(9223372036000000000)},
	{"m v=1 9223372036854775807", 0, "m", {{0}}, {{"v", 1}}, true, INT64_MAX},
	{"m v=1 -9223372036854775808", 0, "m", {{0}}, {{"v", 1}}, true, INT64_MIN},
	{"m v=1 -0", 0, "m", {{0}}, {{"v", 1}}, true, 0},
	/* escapes in tag values; a backslash before anything else is literal */
	{"m,host=a\\,b\\ c\\=d v=1", 0, "m", {{"host", "a,b c=d"}}, {{"v", 1}}, false, DEFAULT_TIME},
	{"m,path=C:\\dir\\x v=1", 0, "m", {{"path", "C:\\dir\\x"}}, {{"v", 1}}, false, DEFAULT_TIME},
	{"m,p=a\\\\\\,b,q=\\\\x v=1", 0, "m", {{"p", "a\\\\,b"}, {"q", "\\\\x"}}, {{"v", 1}}, false,
	 DEFAULT_TIME},
	{"m,a=\\ x,b=y\\= v=2", 0, "m", {{"a", " x"}, {"b", "y="}}, {{"v", 2}}, false, DEFAULT_TIME},
	{"m,q=say\"hi\" v=1", 0, "m", {{"q", "say\"hi\""}}, {{"v", 1}}, false, DEFAULT_TIME},
	/* UTF-8 tag values */
	{"m,city=Z\xc3\xbcrich,e=\xf0\x9f\x98\x80,k=\xe2\x82\xac v=1", 0, "m",
	 {{"city", "Z\xc3\xbcrich"}, {"e", "\xf0\x9f\x98\x80"}, {"k", "\xe2\x82\xac"}}, {{"v", 1}},
	 false, DEFAULT_TIME},
	/* whitespace */
	{"  \tm,t=a   v=1,w=2   123   ", 0, "m", {{"t", "a"}}, {{"v", 1}, {"w", 2}}, true, 123},
	{"m v=1 5\r\n", 0, "m", {{0}}, {{"v", 1}}, true, 5},
	{"m v=1\n", 0, "m", {{0}}, {{"v", 1}}, false, DEFAULT_TIME},
	{"m v=1 5\t", 0, "m", {{0}}, {{"v", 1}}, true, 5},
	/* integers: exactly up to 2^53 */
	{"m a=9007199254740992i,b=-9007199254740992i,c=9007199254740992u,d=0i,e=-0i,f=007i,g=0u", 0,
	 "m", {{0}},
	 {{"a", 9007199254740992.0}, {"b", -9007199254740992.0}, {"c", 9007199254740992.0},
	  {"d", 0.0}, {"e", 0.0}, {"f", 7.0}, {"g", 0.0}},
	 false, DEFAULT_TIME},
	/* floats: exponents, extremes, more digits than the fast path takes */
	{"m a=1e0,b=1E+2,c=1e-2,d=-1.5e-300,e=1.7976931348623157e308,f=4.9e-324,g=0.1,h=-0", 0, "m",
	 {{0}},
	 {{"a", 1}, {"b", 100}, {"c", 0.01}, {"d", -1.5e-300}, {"e", 1.7976931348623157e308},
	  {"f", 4.9e-324}, {"g", 0.1}, {"h", -0.0}},
	 false, DEFAULT_TIME},
	{"m a=123456789012345678901234567890,b=0.30000000000000004,c=1e-400,d=00012.50,e=9007199254740993",
	 0, "m", {{0}},
	 {{"a", 123456789012345678901234567890.0}, {"b", 0.30000000000000004}, {"c", 0.0},
	  {"d", 12.5}, {"e", 9007199254740992.0}},
	 false, DEFAULT_TIME},
	/* every name character; a field may share a tag's key */
	{"m.x:y-z_1,_t.k:1-2=v,a=x f_1.a:b-c=1,a=2", 0, "m.x:y-z_1", {{"_t.k:1-2", "v"}, {"a", "x"}},
	 {{"f_1.a:b-c", 1}, {"a", 2}}, false, DEFAULT_TIME},
	{"_ _=3", 0, "_", {{0}}, {{"_", 3}}, false, DEFAULT_TIME},
};
/* clang-format on */

static void check_valid(const valid_case_t *c, const char *line, size_t len, vg_buf_t *scratch)
{
	char err[VG_LP_ERRSTR_SIZE];
	int rc =
	    vg_lp_parse(&line_out, line, len, c->precision, DEFAULT_TIME, scratch, err, sizeof err);
	cr_assert_eq(rc, 0, "%s: rc %d: %s", c->line, rc, err);
	cr_assert_str_eq(err, "");
	cr_assert(view_is(line_out.measurement, c->measurement), "%s: measurement", c->line);
	size_t ntags = 0;
	while (ntags < 4 && c->tags[ntags].key)
		ntags++;
	cr_assert_eq(line_out.tag_count, ntags, "%s: tag count", c->line);
	for (size_t t = 0; t < ntags; t++) {
		const vg_lp_tag_t *tag = &line_out.tags[t];
		cr_assert(view_is(tag->key, c->tags[t].key), "%s: tag %zu key", c->line, t);
		cr_assert(view_is(tag->value, c->tags[t].value), "%s: tag %zu value", c->line, t);
		cr_assert(inside(tag->key.ptr, tag->key.len, line, len),
		          "keys are views into the line");
		/* zero-copy unless the value had an escape */
		bool in_line = inside(tag->value.ptr, tag->value.len, line, len);
		bool in_scratch = scratch->data && inside(tag->value.ptr, tag->value.len,
		                                          scratch->data, scratch->len);
		cr_assert(in_line || in_scratch, "%s: tag %zu value points elsewhere", c->line, t);
	}
	if (!memchr(c->line, '\\', strlen(c->line)))
		cr_assert_eq(scratch->len, 0, "%s: scratch used without an escape", c->line);
	size_t nfields = 0;
	while (nfields < 9 && c->fields[nfields].key)
		nfields++;
	cr_assert_eq(line_out.field_count, nfields, "%s: field count", c->line);
	for (size_t f = 0; f < nfields; f++) {
		const vg_lp_field_t *field = &line_out.fields[f];
		cr_assert(view_is(field->key, c->fields[f].key), "%s: field %zu key", c->line, f);
		cr_assert(inside(field->key.ptr, field->key.len, line, len));
		cr_assert(bits_eq(field->value, c->fields[f].value),
		          "%s: field %zu = %.17g, want %.17g", c->line, f, field->value,
		          c->fields[f].value);
	}
	cr_assert_eq(line_out.has_timestamp, c->has_time, "%s: has_timestamp", c->line);
	cr_assert_eq(line_out.timestamp, c->time, "%s: timestamp %lld", c->line,
	             (long long)line_out.timestamp);
}

Test(lineproto, valid_lines, .init = guard_setup, .fini = guard_teardown)
{
	vg_buf_t scratch = VG_BUF_INIT;
	for (size_t k = 0; k < sizeof valid_cases / sizeof valid_cases[0]; k++) {
		const valid_case_t *c = &valid_cases[k];
		size_t len = strlen(c->line);
		check_valid(c, c->line, len, &scratch);
		check_valid(c, at_page_end(c->line, len), len, &scratch);
	}
	vg_buf_release(&scratch);
}

Test(lineproto, no_escape_means_no_allocation)
{
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	const char *line = "cpu,host=db1,path=C:\\x usage=12.5,idle=3i 1700000000";
	cr_assert_eq(vg_lp_parse(&line_out, line, strlen(line), VG_LP_PRECISION_S, 0, &scratch, err,
	                         sizeof err),
	             0);
	cr_assert_null(scratch.data, "the parser allocated without an escape");
}

Test(lineproto, skipped_lines, .init = guard_setup, .fini = guard_teardown)
{
	static const char *const lines[] = {
	    "",          " ", "\t \t",       "\r\n",
	    "\n",        "#", "# a comment", "   # indented, comma, = \\",
	    "\t#x y=1 2"};
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
		size_t len = strlen(lines[k]);
		const char *line = at_page_end(lines[k], len);
		int rc =
		    vg_lp_parse(&line_out, line, len, 0, DEFAULT_TIME, &scratch, err, sizeof err);
		cr_assert_eq(rc, VG_LP_SKIPPED, "'%s': rc %d", lines[k], rc);
		cr_assert_eq(line_out.field_count, 0);
	}
	vg_buf_release(&scratch);
}

/* ---- invalid lines ---- */

typedef struct {
	const char *line;
	vg_lp_precision_t precision;
	int column;
	const char *message; /* a fragment of what follows "column N: " */
} invalid_case_t;

/* clang-format off */
static const invalid_case_t invalid_cases[] = {
	/* structure */
	{"cpu", 0, 4, "missing fields"},
	{"cpu,host=a", 0, 11, "missing fields"},
	{"cpu   ", 0, 4, "missing fields"},
	{"cpu,host=a\\", 0, 12, "missing fields"}, /* trailing backslash is literal */
	{",host=a v=1", 0, 1, "missing measurement"},
	{"cpu,=a v=1", 0, 5, "missing tag key"},
	{"cpu, v=1", 0, 5, "missing tag key"},
	{"cpu,host v=1", 0, 9, "expected '=' after tag key 'host'"},
	{"cpu,host", 0, 9, "expected '=' after tag key 'host'"},
	{"cpu,host= v=1", 0, 10, "empty value for tag 'host'"},
	{"cpu,host=a,region= v=1", 0, 19, "empty value for tag 'region'"},
	{"cpu,host=a=b v=1", 0, 11, "unescaped '=' in the value of tag 'host'"},
	{"cpu =1", 0, 5, "missing field key"},
	{"cpu v=1,", 0, 9, "missing field key"},
	{"cpu v=1, w=2", 0, 9, "missing field key"},
	{"cpu usage", 0, 10, "expected '=' after field key 'usage'"},
	{"cpu,host=a usage 1", 0, 17, "expected '=' after field key 'usage'"},
	{"cpu v=", 0, 7, "missing value for field 'v'"},
	{"cpu v=,w=1", 0, 7, "missing value for field 'v'"},
	{"cpu v= 1", 0, 7, "missing value for field 'v'"},
	/* names */
	{"1cpu v=1", 0, 1, "measurement '1cpu' must start with a letter or '_'"},
	{"cpu,.host=a v=1", 0, 5, "tag key '.host' must start with a letter or '_'"},
	{"cpu -v=1", 0, 5, "field key '-v' must start with a letter or '_'"},
	{"cp$u v=1", 0, 3, "invalid character '$' in measurement 'cp$u'"},
	{"my\\ cpu v=1", 0, 3, "invalid character '\\' in measurement 'my\\ cpu'"},
	{"my\\,cpu v=1", 0, 3, "invalid character '\\' in measurement 'my\\,cpu'"},
	{"cpu\\", 0, 4, "invalid character '\\' in measurement"},
	{"cpu,ho-st!=a v=1", 0, 10, "invalid character '!' in tag key 'ho-st!'"},
	{"cpu,a\\=b=c v=1", 0, 6, "invalid character '\\' in tag key 'a\\=b'"},
	{"cpu us\xc3\xa9=1", 0, 7, "invalid character 0xc3 in field key 'us\\xc3\\xa9'"},
	{"cpu\tx v=1", 0, 4, "invalid character 0x09 in measurement"},
	/* tag values */
	{"cpu,host=\xff v=1", 0, 10, "invalid UTF-8 in the value of tag 'host'"},
	{"cpu,host=a\xc3 v=1", 0, 11, "invalid UTF-8 in the value of tag 'host'"},
	{"cpu,host=a\xc3", 0, 11, "invalid UTF-8 in the value of tag 'host'"},
	{"cpu,host=\xc0\xaf v=1", 0, 10, "invalid UTF-8"},         /* overlong '/' */
	{"cpu,host=\xed\xa0\x80 v=1", 0, 10, "invalid UTF-8"},     /* surrogate */
	{"cpu,host=\xf4\x90\x80\x80 v=1", 0, 10, "invalid UTF-8"}, /* past U+10FFFF */
	{"cpu,host=ab\xe2\x82", 0, 12, "invalid UTF-8"},           /* cut at the end */
	{"cpu,host=a\tb v=1", 0, 11, "control character 0x09 in the value of tag 'host'"},
	{"cpu,host=a\x7f v=1", 0, 11, "control character 0x7f"},
	/* duplicates */
	{"cpu,a=1,b=2,a=3 v=1", 0, 13, "duplicate tag key 'a'"},
	{"cpu v=1,w=2,v=3", 0, 13, "duplicate field key 'v'"},
	/* numbers */
	{"cpu v=1.2.3", 0, 7, "invalid number '1.2.3' for field 'v'"},
	{"cpu v=1x", 0, 7, "invalid number '1x' for field 'v'"},
	{"cpu v=-", 0, 7, "invalid number '-' for field 'v'"},
	{"cpu v=.", 0, 7, "invalid number '.'"},
	{"cpu v=-.", 0, 7, "invalid number '-.'"},
	{"cpu v=1e", 0, 7, "invalid number '1e'"},
	{"cpu v=1e+", 0, 7, "invalid number '1e+'"},
	{"cpu v=1e+ 5", 0, 7, "invalid number '1e+'"},
	{"cpu v=1.5i", 0, 7, "invalid number '1.5i'"},
	{"cpu v=1e3i", 0, 7, "invalid number '1e3i'"},
	{"cpu v=-1u", 0, 7, "invalid number '-1u'"},
	{"cpu v=1ii", 0, 7, "invalid number '1ii'"},
	{"cpu v=i", 0, 7, "invalid value 'i' for field 'v'"},
	{"cpu v=0x10", 0, 7, "invalid number '0x10'"},
	{"cpu v=1_000", 0, 7, "invalid number '1_000'"},
	{"cpu v=1\tw=2", 0, 7, "invalid number '1\\x09w=2'"},
	{"cpu v=+1", 0, 7, "invalid value '+1' for field 'v'"},
	{"cpu v=inf", 0, 7, "invalid value 'inf' for field 'v'"},
	{"cpu v=-inf", 0, 7, "invalid number '-inf'"},
	{"cpu v=NaN", 0, 7, "invalid value 'NaN'"},
	{"cpu v=1e400", 0, 7, "number '1e400' for field 'v' is out of the float64 range"},
	{"cpu v=-1.8e308", 0, 7, "out of the float64 range"},
	{"cpu x=9007199254740993i", 0, 7, "integer field 'x' out of the exact float range"},
	{"cpu x=-9007199254740993i", 0, 7, "integer field 'x' out of the exact float range"},
	{"cpu x=9007199254740993u", 0, 7, "integer field 'x' out of the exact float range"},
	{"cpu x=99999999999999999999999i", 0, 7, "integer field 'x' out of the exact float range"},
	{"cpu x=18446744073709551617u", 0, 7, "integer field 'x' out of the exact float range"},
	/* strings and booleans are refused */
	{"cpu msg=\"hello\"", 0, 9, "field 'msg': string values are not supported"},
	{"cpu v=1,msg=\"a \\\" b\" 5", 0, 13, "field 'msg': string values are not supported"},
	{"cpu msg=\"hel\\\"lo", 0, 9, "unterminated string value for field 'msg'"},
	{"cpu msg=\"abc\\", 0, 9, "unterminated string value for field 'msg'"},
	{"cpu msg=\"", 0, 9, "unterminated string value for field 'msg'"},
	{"cpu ok=true", 0, 8, "field 'ok': boolean values are not supported"},
	{"cpu ok=T", 0, 8, "field 'ok': boolean values are not supported"},
	{"cpu ok=FALSE 5", 0, 8, "field 'ok': boolean values are not supported"},
	{"cpu v=1,ok=f", 0, 12, "field 'ok': boolean values are not supported"},
	{"cpu ok=tru", 0, 8, "invalid value 'tru' for field 'ok'"},
	{"cpu ok=fAlse", 0, 8, "invalid value 'fAlse'"},
	/* timestamps */
	{"cpu v=1 123a", 0, 9, "invalid timestamp '123a'"},
	{"cpu v=1 1.5", 0, 9, "invalid timestamp '1.5'"},
	{"cpu v=1 -", 0, 9, "invalid timestamp '-'"},
	{"cpu v=1 +5", 0, 9, "invalid timestamp '+5'"},
	{"cpu v=1 abc", 0, 9, "invalid timestamp 'abc'"},
	{"cpu v=1 1 2", 0, 11, "unexpected text after the timestamp"},
	{"cpu v=1 1\tx", 0, 11, "unexpected text after the timestamp"},
	{"cpu v=1 9223372036854775808", 0, 9, "timestamp '9223372036854775808' is out of the int64 range"},
	{"cpu v=1 -9223372036854775809", 0, 9, "is out of the int64 range"},
	{"cpu v=1 99999999999999999999999", 0, 9, "is out of the int64 range"},
	{"cpu v=1 9223372037", VG_LP_PRECISION_S, 9,
	 "timestamp '9223372037' with precision s is out of the int64 ns range"},
	{"cpu v=1 -9223372037", VG_LP_PRECISION_S, 9, "with precision s is out of the int64 ns range"},
	{"cpu v=1 9223372036855", VG_LP_PRECISION_MS, 9, "with precision ms is out"},
	{"cpu v=1 9223372036854776", VG_LP_PRECISION_US, 9, "with precision us is out"},
};
/* clang-format on */

static void check_invalid(const invalid_case_t *c, const char *line, size_t len, vg_buf_t *scratch)
{
	char err[VG_LP_ERRSTR_SIZE];
	int rc =
	    vg_lp_parse(&line_out, line, len, c->precision, DEFAULT_TIME, scratch, err, sizeof err);
	cr_assert_eq(rc, VG_EINVAL, "'%s': rc %d, want VG_EINVAL", c->line, rc);
	char prefix[32];
	snprintf(prefix, sizeof prefix, "column %d: ", c->column);
	cr_assert_eq(strncmp(err, prefix, strlen(prefix)), 0, "'%s': got \"%s\", want column %d",
	             c->line, err, c->column);
	cr_assert_not_null(strstr(err, c->message), "'%s': got \"%s\", want \"%s\"", c->line, err,
	                   c->message);
}

Test(lineproto, invalid_lines, .init = guard_setup, .fini = guard_teardown)
{
	vg_buf_t scratch = VG_BUF_INIT;
	for (size_t k = 0; k < sizeof invalid_cases / sizeof invalid_cases[0]; k++) {
		const invalid_case_t *c = &invalid_cases[k];
		size_t len = strlen(c->line);
		check_invalid(c, c->line, len, &scratch);
		check_invalid(c, at_page_end(c->line, len), len, &scratch);
	}
	vg_buf_release(&scratch);
}

/* Every prefix of every table line, ending at the guard page: any answer is
 * fine as long as nothing reads past the end and errors name a column. */
Test(lineproto, prefixes_never_overread, .init = guard_setup, .fini = guard_teardown)
{
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	for (size_t k = 0; k < sizeof invalid_cases / sizeof invalid_cases[0] +
	                           sizeof valid_cases / sizeof valid_cases[0];
	     k++) {
		size_t nvalid = sizeof valid_cases / sizeof valid_cases[0];
		const char *full =
		    k < nvalid ? valid_cases[k].line : invalid_cases[k - nvalid].line;
		for (size_t len = 0; len <= strlen(full); len++) {
			const char *line = at_page_end(full, len);
			int rc = vg_lp_parse(&line_out, line, len, 0, 0, &scratch, err, sizeof err);
			cr_assert(rc == 0 || rc == VG_LP_SKIPPED || rc == VG_EINVAL);
			if (rc == VG_EINVAL)
				cr_assert_eq(strncmp(err, "column ", 7), 0, "%s", err);
		}
	}
	vg_buf_release(&scratch);
}

/* ---- limits ---- */

static size_t append(char *buf, size_t at, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + at, cap - at, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && at + (size_t)n < cap);
	return at + (size_t)n;
}

static int parse_guarded(const char *text, size_t len, vg_buf_t *scratch, char *err)
{
	return vg_lp_parse(&line_out, at_page_end(text, len), len, 0, DEFAULT_TIME, scratch, err,
	                   VG_LP_ERRSTR_SIZE);
}

Test(lineproto, tag_count_limit, .init = guard_setup, .fini = guard_teardown)
{
	static char text[8192];
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	size_t n = append(text, 0, sizeof text, "cpu");
	for (int t = 0; t < VG_LP_MAX_TAGS; t++)
		n = append(text, n, sizeof text, ",tag%02d=value%d", 63 - t, t);
	size_t with_64 = n;
	n = append(text, n, sizeof text, " v=1");
	cr_assert_eq(parse_guarded(text, n, &scratch, err), 0, "%s", err);
	cr_assert_eq(line_out.tag_count, 64);
	cr_assert(view_is(line_out.tags[0].key, "tag63"));
	cr_assert(view_is(line_out.tags[63].value, "value63"));

	n = append(text, with_64, sizeof text, ",extra=1 v=1");
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	char want[64];
	snprintf(want, sizeof want, "column %zu: more than 64 tags", with_64 + 2);
	cr_assert_str_eq(err, want);
	vg_buf_release(&scratch);
}

Test(lineproto, field_count_limit, .init = guard_setup, .fini = guard_teardown)
{
	static char text[16384];
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	size_t n = append(text, 0, sizeof text, "cpu f0=0");
	for (int f = 1; f < VG_LP_MAX_FIELDS; f++)
		n = append(text, n, sizeof text, ",f%d=%d.5", f, f);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), 0, "%s", err);
	cr_assert_eq(line_out.field_count, 256);
	cr_assert(view_is(line_out.fields[255].key, "f255"));
	cr_assert(bits_eq(line_out.fields[255].value, 255.5));

	size_t with_256 = n;
	n = append(text, n, sizeof text, ",g=1");
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	char want[64];
	snprintf(want, sizeof want, "column %zu: more than 256 fields", with_256 + 2);
	cr_assert_str_eq(err, want);
	vg_buf_release(&scratch);
}

Test(lineproto, name_length_limit, .init = guard_setup, .fini = guard_teardown)
{
	static char text[2048], name[300];
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	memset(name, 'n', sizeof name);
	/* 255 bytes in every name position */
	size_t n = append(text, 0, sizeof text, "%.255s,%.255s=x %.255s=1", name, name, name);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), 0, "%s", err);
	cr_assert_eq(line_out.measurement.len, 255);
	cr_assert_eq(line_out.tags[0].key.len, 255);
	cr_assert_eq(line_out.fields[0].key.len, 255);

	n = append(text, 0, sizeof text, "%.256s v=1", name);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	cr_assert(strstr(err, "column 1: measurement 'nnn") &&
	              strstr(err, "is 256 bytes, longer than 255"),
	          "%s", err);
	n = append(text, 0, sizeof text, "m,%.256s=x v=1", name);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	cr_assert(strstr(err, "column 3: tag key") && strstr(err, "256 bytes"), "%s", err);
	n = append(text, 0, sizeof text, "m %.256s=1", name);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	cr_assert(strstr(err, "column 3: field key") && strstr(err, "256 bytes"), "%s", err);
	vg_buf_release(&scratch);
}

Test(lineproto, tag_value_length_limit, .init = guard_setup, .fini = guard_teardown)
{
	static char text[4096], value[2048];
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	memset(value, 'v', sizeof value);
	size_t n = append(text, 0, sizeof text, "m,t=%.1024s v=1", value);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), 0, "%s", err);
	cr_assert_eq(line_out.tags[0].value.len, 1024);

	n = append(text, 0, sizeof text, "m,t=%.1025s v=1", value);
	cr_assert_eq(parse_guarded(text, n, &scratch, err), VG_EINVAL);
	cr_assert_str_eq(err, "column 5: the value of tag 't' is 1025 bytes, longer than 1024");

	/* the limit counts unescaped bytes: 1024 escaped spaces are 2048 bytes */
	n = append(text, 0, sizeof text, "m,t=");
	for (int k = 0; k < 1024; k++)
		n = append(text, n, sizeof text, "\\ ");
	n = append(text, n, sizeof text, " v=1");
	cr_assert_eq(parse_guarded(text, n, &scratch, err), 0, "%s", err);
	cr_assert_eq(line_out.tags[0].value.len, 1024);
	cr_assert_eq(line_out.tags[0].value.ptr[1023], ' ');
	vg_buf_release(&scratch);
}

/* ---- numbers against references ---- */

/* Random decimals in every shape the grammar allows, parsed by the line
 * parser and by strtod: the bits must agree. */
Test(lineproto, floats_match_strtod)
{
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE], text[160], number[128];
	srand(12345);
	for (int iter = 0; iter < 200000; iter++) {
		size_t n = 0;
		if (rand() % 2)
			number[n++] = '-';
		int int_digits = rand() % 4 == 0 ? 0 : rand() % 22;
		int frac_digits = rand() % 3 == 0 ? -1 : rand() % 22; /* -1: no '.' */
		if (int_digits == 0 && frac_digits <= 0)
			int_digits = 1;
		for (int k = 0; k < int_digits; k++)
			number[n++] = (char)('0' + rand() % 10);
		if (frac_digits >= 0) {
			number[n++] = '.';
			for (int k = 0; k < frac_digits; k++)
				number[n++] = (char)('0' + rand() % 10);
		}
		int shape = rand() % 4; /* none, small (the fast paths), any, huge */
		int e = shape == 1   ? rand() % 50 - 25
		        : shape == 2 ? rand() % 700 - 350
		                     : (rand() % 2 ? 100000 : -100000);
		if (shape > 0)
			n += (size_t)snprintf(number + n, sizeof number - n, "%s%s%d",
			                      rand() % 2 ? "e" : "E",
			                      e >= 0 && rand() % 4 == 0 ? "+" : "", e);
		number[n] = '\0';
		double want = strtod(number, NULL);
		size_t len = (size_t)snprintf(text, sizeof text, "m v=%s", number);
		int rc = vg_lp_parse(&line_out, text, len, 0, 0, &scratch, err, sizeof err);
		if (isinf(want)) {
			cr_assert_eq(rc, VG_EINVAL, "%s", number);
			cr_assert_not_null(strstr(err, "out of the float64 range"), "%s", err);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", number, err);
		cr_assert(bits_eq(line_out.fields[0].value, want), "%s: got %.17g, strtod %.17g",
		          number, line_out.fields[0].value, want);
	}
	vg_buf_release(&scratch);
}

Test(lineproto, integers_exact_up_to_2_pow_53)
{
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE], text[64];
	const int64_t limit = INT64_C(1) << 53;
	const int64_t probes[] = {0, 1, limit - 1, limit, limit + 1, limit + 2, INT64_MAX};
	for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
		for (int neg = 0; neg < 2; neg++) {
			int64_t v = neg ? -probes[k] : probes[k];
			for (int u = 0; u < 2; u++) {
				size_t len = (size_t)snprintf(text, sizeof text, "m x=%lld%c",
				                              (long long)v, u ? 'u' : 'i');
				int rc = vg_lp_parse(&line_out, text, len, 0, 0, &scratch, err,
				                     sizeof err);
				bool ok = probes[k] <= limit && !(u && neg && v != 0);
				if (u && neg && v == 0)
					ok = true; /* "0u": snprintf writes no sign */
				if (!ok) {
					cr_assert_eq(rc, VG_EINVAL, "%s", text);
					continue;
				}
				cr_assert_eq(rc, 0, "%s: %s", text, err);
				cr_assert(bits_eq(line_out.fields[0].value, (double)v), "%s", text);
			}
		}
	}
	vg_buf_release(&scratch);
}

/* ---- errors, allocation, scratch ---- */

Test(lineproto, error_buffer_sizes)
{
	vg_buf_t scratch = VG_BUF_INIT;
	const char *line = "cpu v=1.2.3";
	char small[12];
	memset(small, 'X', sizeof small);
	cr_assert_eq(
	    vg_lp_parse(&line_out, line, strlen(line), 0, 0, &scratch, small, sizeof small),
	    VG_EINVAL);
	cr_assert_str_eq(small, "column 7: i");
	cr_assert_eq(vg_lp_parse(&line_out, line, strlen(line), 0, 0, &scratch, NULL, 0),
	             VG_EINVAL);
	char one[1] = {'X'};
	cr_assert_eq(vg_lp_parse(&line_out, line, strlen(line), 0, 0, &scratch, one, 1), VG_EINVAL);
	cr_assert_eq(one[0], '\0');
	vg_buf_release(&scratch);
}

Test(lineproto, scratch_is_reused_per_call)
{
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	const char *a = "m,t=a\\ b,u=c\\,d v=1";
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(vg_lp_parse(&line_out, a, strlen(a), 0, 0, &scratch, err, sizeof err),
		             0);
		cr_assert_eq(scratch.len, strlen("a bc,d"),
		             "scratch holds only this line's values");
		cr_assert(view_is(line_out.tags[0].value, "a b"));
		cr_assert(view_is(line_out.tags[1].value, "c,d"));
	}
	vg_buf_release(&scratch);
}

/* Each allocation the parser makes fails in turn: it reports VG_ENOMEM with a
 * message and leaves scratch usable, then succeeds once allocation works. */
Test(lineproto, allocation_failure)
{
	static char long_number[200];
	memset(long_number, 0, sizeof long_number);
	size_t n = (size_t)snprintf(long_number, sizeof long_number, "m v=0.");
	memset(long_number + n, '3', 100);
	const char *lines[] = {"m,host=a\\,b v=1", "m,a=\\ ,b=\\=,c=\\, v=1 5", long_number};
	for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
		for (int pre = 0; pre < 2; pre++) {
			int successes = 0;
			for (long fail_after = 0; fail_after < 4; fail_after++) {
				vg_buf_t scratch = VG_BUF_INIT;
				if (pre)
					cr_assert_eq(vg_buf_reserve(&scratch, 2), 0);
				char err[VG_LP_ERRSTR_SIZE];
				vg_alloc_fail_after(fail_after);
				int rc = vg_lp_parse(&line_out, lines[k], strlen(lines[k]), 0, 0,
				                     &scratch, err, sizeof err);
				vg_alloc_fail_after(-1);
				if (!pre && fail_after == 0)
					cr_assert_eq(rc, VG_ENOMEM, "%s", lines[k]);
				if (rc == VG_ENOMEM) {
					cr_assert_eq(fail_after, 0);
					cr_assert_not_null(strstr(err, "out of memory"), "%s", err);
					rc = vg_lp_parse(&line_out, lines[k], strlen(lines[k]), 0,
					                 0, &scratch, err, sizeof err);
				}
				cr_assert_eq(rc, 0, "%s: %s", lines[k], err);
				successes++;
				vg_buf_release(&scratch);
			}
			cr_assert_eq(successes, 4);
		}
	}
	cr_assert(bits_eq(line_out.fields[0].value, strtod(long_number + 4, NULL)));
}

Test(lineproto, precision_names)
{
	vg_lp_precision_t p;
	cr_assert_eq(vg_lp_precision_parse("ns", &p), 0);
	cr_assert_eq(p, VG_LP_PRECISION_NS);
	cr_assert_eq(vg_lp_precision_parse("us", &p), 0);
	cr_assert_eq(p, VG_LP_PRECISION_US);
	cr_assert_eq(vg_lp_precision_parse("ms", &p), 0);
	cr_assert_eq(p, VG_LP_PRECISION_MS);
	cr_assert_eq(vg_lp_precision_parse("s", &p), 0);
	cr_assert_eq(p, VG_LP_PRECISION_S);
	cr_assert_eq(vg_lp_precision_parse("h", &p), VG_EINVAL);
	cr_assert_eq(vg_lp_precision_parse("", &p), VG_EINVAL);
	cr_assert_eq(vg_lp_precision_parse("nss", &p), VG_EINVAL);
}

/* ---- line splitting ---- */

static const char split_text[] = "a v=1\r\nb v=2\n\n# c\r\nd v=3\re v=4\n\r\nlast v=5\r";
static const char *const split_lines[] = {"a v=1",        "b v=2", "",        "# c",
                                          "d v=3\re v=4", "",      "last v=5"};

/* Feeds split_text in chunks of `chunk` bytes through a buffer, as a
 * streaming reader would, and checks the lines that come out. */
static void split_in_chunks(size_t chunk)
{
	vg_buf_t buf = VG_BUF_INIT;
	size_t fed = 0, got = 0, total = sizeof split_text - 1;
	bool final = false;
	for (;;) {
		size_t line_len, consumed;
		int rc =
		    vg_lp_next_line((const char *)buf.data, buf.len, final, &line_len, &consumed);
		if (rc == 0) {
			cr_assert_lt(got, sizeof split_lines / sizeof split_lines[0]);
			cr_assert_eq(line_len, strlen(split_lines[got]), "chunk %zu line %zu",
			             chunk, got);
			cr_assert_eq(memcmp(buf.data, split_lines[got], line_len), 0);
			cr_assert_geq(consumed, line_len);
			got++;
			vg_buf_consume(&buf, consumed);
			continue;
		}
		cr_assert_eq(rc, VG_EAGAIN);
		if (final)
			break;
		size_t n = total - fed < chunk ? total - fed : chunk;
		cr_assert_eq(vg_buf_append(&buf, split_text + fed, n), 0);
		fed += n;
		final = fed == total;
	}
	cr_assert_eq(got, sizeof split_lines / sizeof split_lines[0], "chunk %zu", chunk);
	cr_assert_eq(buf.len, 0);
	vg_buf_release(&buf);
}

Test(lineproto, split_across_chunks)
{
	for (size_t chunk = 1; chunk <= sizeof split_text; chunk++)
		split_in_chunks(chunk);
}

Test(lineproto, split_edges, .init = guard_setup, .fini = guard_teardown)
{
	size_t line_len = 99, consumed = 99;
	cr_assert_eq(vg_lp_next_line("", 0, true, &line_len, &consumed), VG_EAGAIN);
	cr_assert_eq(vg_lp_next_line("", 0, false, &line_len, &consumed), VG_EAGAIN);
	cr_assert_eq(vg_lp_next_line("\n", 1, false, &line_len, &consumed), 0);
	cr_assert_eq(line_len, 0);
	cr_assert_eq(consumed, 1);
	/* a "\r" at the end of a chunk may be the start of "\r\n": wait */
	cr_assert_eq(vg_lp_next_line("ab\r", 3, false, &line_len, &consumed), VG_EAGAIN);
	cr_assert_eq(vg_lp_next_line("ab\r", 3, true, &line_len, &consumed), 0);
	cr_assert_eq(line_len, 2);
	cr_assert_eq(consumed, 3);

	/* at the end of readable memory */
	const char *p = at_page_end("x v=1", 5);
	cr_assert_eq(vg_lp_next_line(p, 5, false, &line_len, &consumed), VG_EAGAIN);
	cr_assert_eq(vg_lp_next_line(p, 5, true, &line_len, &consumed), 0);
	cr_assert_eq(line_len, 5);
	cr_assert_eq(consumed, 5);
	p = at_page_end("x v=1\r\n", 7);
	cr_assert_eq(vg_lp_next_line(p, 7, false, &line_len, &consumed), 0);
	cr_assert_eq(line_len, 5);
	cr_assert_eq(consumed, 7);
}

Test(lineproto, split_line_length_limit)
{
	size_t max = VG_LP_MAX_LINE, line_len, consumed;
	char *data = malloc(max + 3);
	cr_assert_not_null(data);
	memset(data, 'x', max + 3);

	/* exactly the limit, with "\n" or "\r\n" */
	data[max] = '\n';
	cr_assert_eq(vg_lp_next_line(data, max + 3, false, &line_len, &consumed), 0);
	cr_assert_eq(line_len, max);
	cr_assert_eq(consumed, max + 1);
	data[max] = '\r';
	data[max + 1] = '\n';
	cr_assert_eq(vg_lp_next_line(data, max + 3, false, &line_len, &consumed), 0);
	cr_assert_eq(line_len, max);
	cr_assert_eq(consumed, max + 2);
	cr_assert_eq(vg_lp_next_line(data, max, true, &line_len, &consumed), 0);
	cr_assert_eq(line_len, max);

	/* one byte more */
	data[max] = 'x';
	data[max + 1] = '\n';
	cr_assert_eq(vg_lp_next_line(data, max + 3, false, &line_len, &consumed), VG_ELIMIT);
	cr_assert_eq(consumed, 0);
	cr_assert_eq(vg_lp_next_line(data, max + 1, true, &line_len, &consumed), VG_ELIMIT);
	data[max + 1] = 'x';
	cr_assert_eq(vg_lp_next_line(data, max + 3, false, &line_len, &consumed), VG_ELIMIT);
	/* not yet known to be too long */
	cr_assert_eq(vg_lp_next_line(data, max + 1, false, &line_len, &consumed), VG_EAGAIN);
	free(data);
}

/* The splitter and the parser together over a buffer that ends at the guard
 * page, the way `vigil write` will use them. */
Test(lineproto, split_then_parse, .init = guard_setup, .fini = guard_teardown)
{
	static const char text[] =
	    "# header\r\ncpu,host=a v=1 1\r\n\r\ncpu,host=b v=2 2\ncpu v=3 3";
	const char *data = at_page_end(text, sizeof text - 1);
	size_t len = sizeof text - 1, line_len, consumed, points = 0, skipped = 0;
	vg_buf_t scratch = VG_BUF_INIT;
	char err[VG_LP_ERRSTR_SIZE];
	while (vg_lp_next_line(data, len, true, &line_len, &consumed) == 0) {
		int rc = vg_lp_parse(&line_out, data, line_len, VG_LP_PRECISION_S, 0, &scratch, err,
		                     sizeof err);
		cr_assert(rc == 0 || rc == VG_LP_SKIPPED, "%s", err);
		if (rc == 0) {
			points++;
			cr_assert_eq(line_out.timestamp, (int64_t)points * 1000000000);
			cr_assert(bits_eq(line_out.fields[0].value, (double)points));
		} else {
			skipped++;
		}
		data += consumed;
		len -= consumed;
	}
	cr_assert_eq(points, 3);
	cr_assert_eq(skipped, 2);
	cr_assert_eq(len, 0);
	vg_buf_release(&scratch);
}
