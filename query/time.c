/*
 * time.c — times in the query language: RFC 3339 text, now()-relative
 * expressions, the scan range of a WHERE clause, and the point-at-a-time
 * condition evaluator used by subscriptions.
 *
 * Calendar arithmetic is the proleptic Gregorian "days from civil" of
 * H. Hinnant (chrono-Compatible Low-Level Date Algorithms): exact for every
 * year, no tables, no libc time zone state (timegm is not thread-safe on
 * every libc and knows nothing of nanoseconds).
 *
 * Every addition and multiplication that can leave the int64 ns range is
 * checked: such a time is VG_ELIMIT, never a wrapped value.
 */
#include "query_int.h"

#include "vg_error.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_S INT64_C(1000000000)

int vg_time_add(int64_t a, int64_t b, int64_t *out)
{
	if (__builtin_add_overflow(a, b, out))
		return VG_ELIMIT;
	return 0;
}

int vg_time_expr_eval(const vg_time_expr_t *t, int64_t now_ns, int64_t *out)
{
	if (!t->now) {
		*out = t->ns;
		return 0;
	}
	return vg_time_add(now_ns, t->ns, out);
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Exactly n digits at *p (advanced): 0 or -1. */
static int digits(const char **p, const char *end, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || **p < '0' || **p > '9')
			return -1;
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

static int fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return VG_EINVAL;
}

int vg_query_parse_time(const char *s, size_t len, int64_t *ns, const char **why)
{
	const char *p = s, *end = s + len;
	unsigned year, month, day, hour = 0, minute = 0, second = 0;
	int64_t frac = 0;
	if (digits(&p, end, 4, &year) || p >= end || *p++ != '-' || digits(&p, end, 2, &month) ||
	    p >= end || *p++ != '-' || digits(&p, end, 2, &day))
		return fail(why, "expected YYYY-MM-DD");
	if (month < 1 || month > 12)
		return fail(why, "month out of range");
	if (day < 1 || day > days_in_month(year, month))
		return fail(why, "day out of range");
	int64_t offset_s = 0;
	if (p < end) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return fail(why, "expected 'T' after the date");
		p++;
		if (digits(&p, end, 2, &hour) || p >= end || *p++ != ':' ||
		    digits(&p, end, 2, &minute) || p >= end || *p++ != ':' ||
		    digits(&p, end, 2, &second))
			return fail(why, "expected hh:mm:ss");
		if (hour > 23 || minute > 59 || second > 59)
			return fail(why, "time of day out of range");
		if (p < end && *p == '.') {
			p++;
			int n = 0;
			while (p < end && *p >= '0' && *p <= '9') {
				if (n == 9)
					return fail(why, "more than 9 fractional digits");
				frac = frac * 10 + (*p - '0');
				n++;
				p++;
			}
			if (n == 0)
				return fail(why, "expected digits after '.'");
			while (n++ < 9)
				frac *= 10;
		}
		if (p < end && (*p == 'Z' || *p == 'z')) {
			p++;
		} else if (p < end && (*p == '+' || *p == '-')) {
			int sign = *p++ == '-' ? -1 : 1;
			unsigned oh, om;
			if (digits(&p, end, 2, &oh) || p >= end || *p++ != ':' ||
			    digits(&p, end, 2, &om))
				return fail(why, "expected a zone offset +hh:mm");
			if (oh > 23 || om > 59)
				return fail(why, "zone offset out of range");
			offset_s = sign * (int64_t)(oh * 3600 + om * 60);
		}
	}
	if (p != end)
		return fail(why, "unexpected text after the time");
	int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
	               second - offset_s;
	/* Before the epoch, fold the fraction into the seconds first so that
	 * the bottom of the range (a negative second plus a fraction) fits. */
	if (secs < 0 && frac > 0) {
		secs += 1;
		frac -= NS_PER_S;
	}
	int64_t out;
	if (__builtin_mul_overflow(secs, NS_PER_S, &out) || __builtin_add_overflow(out, frac, &out))
		return VG_ELIMIT;
	*ns = out;
	return 0;
}

size_t vg_query_format_time(int64_t ns, char *buf, size_t len)
{
	int64_t secs = ns / NS_PER_S, frac = ns % NS_PER_S;
	if (frac < 0) {
		frac += NS_PER_S;
		secs--;
	}
	int64_t days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	char fbuf[16] = "";
	if (frac) {
		snprintf(fbuf, sizeof fbuf, ".%09lld", (long long)frac);
		size_t n = strlen(fbuf);
		while (n > 1 && fbuf[n - 1] == '0')
			fbuf[--n] = 0;
	}
	int n =
	    snprintf(buf, len, "%04lld-%02u-%02uT%02u:%02u:%02u%sZ", (long long)y, m, d,
	             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60), (unsigned)(rem % 60), fbuf);
	return n < 0 ? 0 : (size_t)n;
}

/* ---- the range of time conditions ------------------------------------- */

static int narrow(const vg_cond_t *c, int64_t now_ns, int64_t *t0, int64_t *t1)
{
	if (c->kind == VG_COND_AND) {
		int code = narrow(c->left, now_ns, t0, t1);
		return code ? code : narrow(c->right, now_ns, t0, t1);
	}
	if (c->kind != VG_COND_TIME)
		return 0;
	int64_t x;
	int code = vg_time_expr_eval(&c->time, now_ns, &x);
	if (code)
		return code;
	int64_t after = x == INT64_MAX ? INT64_MAX : x + 1;
	switch (c->op) {
	case VG_CMP_GT:
		if (x == INT64_MAX)
			*t0 = INT64_MAX, *t1 = INT64_MIN; /* nothing is later */
		else if (after > *t0)
			*t0 = after;
		break;
	case VG_CMP_GE:
		if (x > *t0)
			*t0 = x;
		break;
	case VG_CMP_LT:
		if (x < *t1)
			*t1 = x;
		break;
	case VG_CMP_LE:
		if (after < *t1)
			*t1 = after;
		break;
	case VG_CMP_EQ:
		if (x > *t0)
			*t0 = x;
		if (after < *t1)
			*t1 = after;
		break;
	default:
		break;
	}
	return 0;
}

int vg_select_time_range(const vg_select_t *sel, int64_t now_ns, int64_t *t0, int64_t *t1)
{
	*t0 = INT64_MIN;
	*t1 = INT64_MAX;
	return sel->where ? narrow(sel->where, now_ns, t0, t1) : 0;
}

/* ---- point-at-a-time evaluation ---------------------------------------- */

static bool tag_equals(const vg_tag_t *tags, size_t ntags, vg_str_t key, vg_str_t value)
{
	for (size_t i = 0; i < ntags; i++)
		if (tags[i].key.len == key.len && memcmp(tags[i].key.data, key.data, key.len) == 0)
			return tags[i].value.len == value.len &&
			       memcmp(tags[i].value.data, value.data, value.len) == 0;
	return value.len == 0;
}

static bool tag_matches(const vg_tag_t *tags, size_t ntags, vg_str_t key, const regex_t *re)
{
	vg_str_t value = {"", 0};
	for (size_t i = 0; i < ntags; i++)
		if (tags[i].key.len == key.len && memcmp(tags[i].key.data, key.data, key.len) == 0)
			value = tags[i].value;
	regmatch_t m[1];
	m[0].rm_so = 0;
	m[0].rm_eo = (regoff_t)value.len;
	return regexec(re, value.data, 1, m, REG_STARTEND) == 0;
}

bool vg_cmp_number(double a, vg_cmp_op_t op, double b)
{
	switch (op) {
	case VG_CMP_EQ:
		return a == b;
	case VG_CMP_NE:
		return a != b;
	case VG_CMP_LT:
		return a < b;
	case VG_CMP_LE:
		return a <= b;
	case VG_CMP_GT:
		return a > b;
	case VG_CMP_GE:
		return a >= b;
	default:
		return false;
	}
}

bool vg_cond_match(const vg_cond_t *c, const vg_tag_t *tags, size_t ntags, int64_t time,
                   int64_t now_ns, vg_field_lookup_fn lookup, void *ctx)
{
	if (!c)
		return true;
	switch (c->kind) {
	case VG_COND_AND:
		return vg_cond_match(c->left, tags, ntags, time, now_ns, lookup, ctx) &&
		       vg_cond_match(c->right, tags, ntags, time, now_ns, lookup, ctx);
	case VG_COND_OR:
		return vg_cond_match(c->left, tags, ntags, time, now_ns, lookup, ctx) ||
		       vg_cond_match(c->right, tags, ntags, time, now_ns, lookup, ctx);
	case VG_COND_TAG:
		switch (c->op) {
		case VG_CMP_EQ:
			return tag_equals(tags, ntags, c->name, c->value);
		case VG_CMP_NE:
			return !tag_equals(tags, ntags, c->name, c->value);
		case VG_CMP_RE:
			return tag_matches(tags, ntags, c->name, c->regex);
		case VG_CMP_NRE:
			return !tag_matches(tags, ntags, c->name, c->regex);
		default:
			return false;
		}
	case VG_COND_FIELD: {
		double v;
		if (!lookup || !lookup(ctx, c->name, &v))
			return false;
		return vg_cmp_number(v, c->op, c->number);
	}
	case VG_COND_TIME: {
		int64_t x;
		if (vg_time_expr_eval(&c->time, now_ns, &x))
			return false;
		switch (c->op) {
		case VG_CMP_EQ:
			return time == x;
		case VG_CMP_LT:
			return time < x;
		case VG_CMP_LE:
			return time <= x;
		case VG_CMP_GT:
			return time > x;
		case VG_CMP_GE:
			return time >= x;
		default:
			return false;
		}
	}
	}
	return false;
}
