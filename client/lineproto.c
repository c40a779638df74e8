/*
 * lineproto.c — the line protocol parser of lineproto.h.
 *
 * Shape: one left-to-right pass over the line with a cursor, one function
 * per section (measurement, tags, fields, timestamp).  Each token is scanned
 * with a byte-class table; the common case (a name of plain name characters,
 * a tag value of printable ASCII without escapes, a short decimal number)
 * stays in a tight loop and falls to a slower, careful path only when it
 * meets something unusual.  Nothing is copied unless it must be.
 *
 * Invariants:
 *   - every read of s[i] is guarded by i < len: the line is not NUL-terminated
 *     and may end at the last byte of readable memory;
 *   - scratch grows at most once per call, before any view into it is taken,
 *     to len + 2 bytes: unescaped tag values are shorter than their escaped
 *     form and come from disjoint parts of the line, and the temporary
 *     NUL-terminated copy of a long number comes from yet another part, so
 *     their sum plus a terminator fits and views never move;
 *   - a valid name cannot contain an escapable byte (',', '=', ' '), so names
 *     are validated on the raw bytes and are always views into the line.
 *
 * Floats: a decimal with at most 19 significant digits, m * 10^e, is
 * converted without strtod when that is cheap and provably exact: for
 * m <= 2^53 and |e| <= 22 as one correctly rounded IEEE multiplication or
 * division of two exact doubles (Clinger, "How to read floating point numbers
 * accurately", PLDI 1990); for larger m and -22 <= e <= 19 by 128-bit integer
 * multiplication or division with round-half-even done by hand (a quotient of
 * at least 54 bits plus a sticky remainder decides the rounding exactly).
 * That covers the 15-17 digit shortest forms other tools print; anything else
 * (more digits, larger exponents) goes to strtod on a NUL-terminated copy.
 */
#include "lineproto.h"

#include "vg_error.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Byte classes. */
enum {
	C_NAME = 1,   /* [A-Za-z0-9_.:-]: may appear in a name */
	C_START = 2,  /* [A-Za-z_]: may start a name */
	C_MSTOP = 4,  /* ',' ' ': ends a measurement or a field value; escapable there */
	C_KSTOP = 8,  /* ',' '=' ' ': ends a key or tag value; escapable there */
	C_PLAIN = 16, /* printable ASCII other than ',' '=' ' ' '\\': plain tag value byte */
	C_DIGIT = 32,
};

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define CLS(c)                                                                                     \
	((IS_ALPHA(c) || IS_DIGIT(c) || (c) == '_' || (c) == '.' || (c) == ':' || (c) == '-'       \
	      ? C_NAME                                                                             \
	      : 0) |                                                                               \
	 (IS_ALPHA(c) || (c) == '_' ? C_START : 0) | ((c) == ',' || (c) == ' ' ? C_MSTOP : 0) |    \
	 ((c) == ',' || (c) == '=' || (c) == ' ' ? C_KSTOP : 0) |                                  \
	 ((c) > ' ' && (c) < 0x7f && (c) != ',' && (c) != '=' && (c) != '\\' ? C_PLAIN : 0) |      \
	 (IS_DIGIT(c) ? C_DIGIT : 0))
#define CLS4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define CLS16(c) CLS4(c), CLS4((c) + 4), CLS4((c) + 8), CLS4((c) + 12)
#define CLS64(c) CLS16(c), CLS16((c) + 16), CLS16((c) + 32), CLS16((c) + 48)

static const uint8_t cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

#define NO_POS ((size_t)-1)
#define EXACT_INT_MAX (UINT64_C(1) << 53) /* largest magnitude a double holds exactly */
#define SHOW_MAX 48                       /* bytes of a token quoted in a message */
#define NUMBER_COPY_MAX 64                /* longer numbers are copied into scratch */

/* The state of one vg_lp_parse() call. */
typedef struct parser {
	const uint8_t *s;
	size_t len;
	vg_buf_t *scratch;
	bool scratch_ready;
	char *errstr;
	size_t errstr_size;
} parser_t;

/* A token quoted for an error message: printable ASCII as is, other bytes as
 * \xNN, cut after SHOW_MAX bytes with "...". */
typedef struct shown {
	char text[SHOW_MAX * 4 + 4];
} shown_t;

static const char *show(shown_t *out, const uint8_t *p, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n && i < SHOW_MAX; i++) {
		if (p[i] >= ' ' && p[i] < 0x7f) {
			out->text[j++] = (char)p[i];
		} else {
			snprintf(out->text + j, 5, "\\x%02x", p[i]);
			j += 4;
		}
	}
	if (n > SHOW_MAX) {
		memcpy(out->text + j, "...", 3);
		j += 3;
	}
	out->text[j] = '\0';
	return out->text;
}

/* Fills errstr with "column <pos + 1>: <message>" and returns VG_EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(parser_t *p, size_t pos, const char *fmt, ...)
{
	if (p->errstr_size == 0)
		return VG_EINVAL;
	int n = snprintf(p->errstr, p->errstr_size, "column %zu: ", pos + 1);
	if (n >= 0 && (size_t)n < p->errstr_size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->errstr + n, p->errstr_size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return VG_EINVAL;
}

/* Grows scratch once for the whole call (see the invariants above). */
static int need_scratch(parser_t *p, size_t pos)
{
	if (p->scratch_ready)
		return 0;
	if (vg_buf_reserve(p->scratch, p->len + 1) != 0) {
		fail(p, pos, "out of memory");
		return VG_ENOMEM;
	}
	p->scratch_ready = true;
	return 0;
}

/*
 * Reports what is wrong with the name at `start` that scan_name() refused:
 * rescans it in full (escapes included) so that the message shows the whole
 * token and points at its first bad byte.
 */
static int name_error(parser_t *p, const char *kind, size_t start, unsigned stop)
{
	const uint8_t *s = p->s;
	size_t i = start, bad = NO_POS;
	shown_t a;
	while (i < p->len && !(cls[s[i]] & stop)) {
		if (!(cls[s[i]] & C_NAME) && bad == NO_POS)
			bad = i;
		if (s[i] == '\\' && i + 1 < p->len && (cls[s[i + 1]] & stop))
			i++;
		i++;
	}
	if (i == start)
		return fail(p, start, "missing %s", kind);
	if ((cls[s[start]] & C_NAME) && !(cls[s[start]] & C_START))
		return fail(p, start, "%s '%s' must start with a letter or '_'", kind,
		            show(&a, s + start, i - start));
	if (bad != NO_POS) {
		char c[8];
		if (s[bad] >= ' ' && s[bad] < 0x7f)
			snprintf(c, sizeof c, "'%c'", s[bad]);
		else
			snprintf(c, sizeof c, "0x%02x", s[bad]);
		return fail(p, bad,
		            "invalid character %s in %s '%s' (names are [A-Za-z_][A-Za-z0-9_.:-]*)",
		            c, kind, show(&a, s + start, i - start));
	}
	return fail(p, start, "%s '%s' is %zu bytes, longer than %d", kind,
	            show(&a, s + start, i - start), i - start, VG_LP_MAX_NAME);
}

/*
 * Scans the name of the given kind ("measurement", "tag key", "field key")
 * at *pos, which ends at a byte of class `stop` or at the end of the line, and
 * moves *pos past it.  A valid name is plain name characters only, so any
 * other byte (an escape included) sends it to name_error().
 */
static inline int scan_name(parser_t *p, size_t *pos, unsigned stop, const char *kind)
{
	const uint8_t *s = p->s;
	size_t start = *pos, i = start;
	while (i < p->len && (cls[s[i]] & C_NAME))
		i++;
	if ((i < p->len && !(cls[s[i]] & stop)) || i == start || !(cls[s[start]] & C_START) ||
	    i - start > VG_LP_MAX_NAME)
		return name_error(p, kind, start, stop);
	*pos = i;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available), 0 if invalid
 * (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t utf8_sequence(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < need; k++)
		if (s[k] < 0x80 || s[k] > 0xbf)
			return 0;
	return need;
}

/* Keys already seen in this line: a 64-bit filter before the linear search. */
static uint64_t key_bit(const uint8_t *k, size_t n)
{
	return UINT64_C(1) << ((n + k[0] * 7u + k[n - 1] * 13u + k[n / 2] * 3u) & 63u);
}

static bool view_eq(vg_lp_view_t a, const uint8_t *k, size_t n)
{
	return a.len == n && memcmp(a.ptr, k, n) == 0;
}

static int parse_tag_value(parser_t *p, size_t *pos, const vg_lp_view_t *key, vg_lp_view_t *out)
{
	const uint8_t *s = p->s;
	size_t len = p->len, start = *pos, i = start, escapes = 0;
	shown_t a;
	for (;;) {
		while (i < len && (cls[s[i]] & C_PLAIN))
			i++;
		if (i == len || s[i] == ',' || s[i] == ' ')
			break;
		if (s[i] == '\\') {
			if (i + 1 < len && (cls[s[i + 1]] & C_KSTOP))
				escapes++, i++;
			i++;
		} else if (s[i] == '=') {
			return fail(p, i, "unescaped '=' in the value of tag '%s' (write '\\=')",
			            show(&a, (const uint8_t *)key->ptr, key->len));
		} else if (s[i] < 0x80) {
			return fail(p, i, "control character 0x%02x in the value of tag '%s'", s[i],
			            show(&a, (const uint8_t *)key->ptr, key->len));
		} else {
			size_t n = utf8_sequence(s + i, len - i);
			if (n == 0)
				return fail(p, i, "invalid UTF-8 in the value of tag '%s'",
				            show(&a, (const uint8_t *)key->ptr, key->len));
			i += n;
		}
	}
	if (i == start)
		return fail(p, start, "empty value for tag '%s'",
		            show(&a, (const uint8_t *)key->ptr, key->len));
	size_t value_len = i - start - escapes;
	if (value_len > VG_LP_MAX_TAG_VALUE)
		return fail(p, start, "the value of tag '%s' is %zu bytes, longer than %d",
		            show(&a, (const uint8_t *)key->ptr, key->len), value_len,
		            VG_LP_MAX_TAG_VALUE);
	if (escapes == 0) {
		out->ptr = (const char *)s + start;
		out->len = value_len;
	} else {
		int rc = need_scratch(p, start);
		if (rc)
			return rc;
		uint8_t *dst = p->scratch->data + p->scratch->len;
		size_t j = 0;
		for (size_t k = start; k < i; k++) {
			if (s[k] == '\\' && k + 1 < i && (cls[s[k + 1]] & C_KSTOP))
				k++;
			dst[j++] = s[k];
		}
		p->scratch->len += j;
		out->ptr = (const char *)dst;
		out->len = j;
	}
	*pos = i;
	return 0;
}

static int parse_tags(parser_t *p, size_t *pos, vg_lp_line_t *out)
{
	const uint8_t *s = p->s;
	size_t i = *pos;
	uint64_t seen = 0;
	shown_t a;
	while (i < p->len && s[i] == ',') {
		size_t start = ++i;
		int rc = scan_name(p, &i, C_KSTOP, "tag key");
		if (rc)
			return rc;
		if (out->tag_count == VG_LP_MAX_TAGS)
			return fail(p, start, "more than %d tags", VG_LP_MAX_TAGS);
		size_t n = i - start;
		uint64_t bit = key_bit(s + start, n);
		if (seen & bit) {
			for (size_t t = 0; t < out->tag_count; t++)
				if (view_eq(out->tags[t].key, s + start, n))
					return fail(p, start, "duplicate tag key '%s'",
					            show(&a, s + start, n));
		}
		seen |= bit;
		if (i == p->len || s[i] != '=')
			return fail(p, i, "expected '=' after tag key '%s'",
			            show(&a, s + start, n));
		vg_lp_tag_t *tag = &out->tags[out->tag_count];
		tag->key.ptr = (const char *)s + start;
		tag->key.len = n;
		i++;
		rc = parse_tag_value(p, &i, &tag->key, &tag->value);
		if (rc)
			return rc;
		out->tag_count++;
	}
	*pos = i;
	return 0;
}

static bool is_bool(const uint8_t *t, size_t n)
{
	static const char *const words[] = {"t", "T", "true",  "True",  "TRUE",
	                                    "f", "F", "false", "False", "FALSE"};
	for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
		if (strlen(words[k]) == n && memcmp(words[k], t, n) == 0)
			return true;
	return false;
}

static size_t token_end(const parser_t *p, size_t i)
{
	while (i < p->len && !(cls[p->s[i]] & C_MSTOP))
		i++;
	return i;
}

static const double exact_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const uint64_t exact_pow10_u64[] = {1,
                                           10,
                                           100,
                                           1000,
                                           10000,
                                           100000,
                                           1000000,
                                           10000000,
                                           100000000,
                                           1000000000,
                                           10000000000,
                                           100000000000,
                                           1000000000000,
                                           10000000000000,
                                           100000000000000,
                                           1000000000000000,
                                           10000000000000000,
                                           100000000000000000,
                                           1000000000000000000,
                                           10000000000000000000u};

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 u128_t;

/* v * 2^exp2 rounded to the nearest double, ties to even, where v > 2^53 and
 * `sticky` says that nonzero bits below v were dropped; the result must be a
 * normal number. */
static double round_u128(u128_t v, bool sticky, int exp2)
{
	uint64_t hi = (uint64_t)(v >> 64);
	int bits = hi ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll((uint64_t)v);
	int shift = bits - 53;
	uint64_t mant = (uint64_t)(v >> shift);
	u128_t rest = v & (((u128_t)1 << shift) - 1), half = (u128_t)1 << (shift - 1);
	if (rest > half || (rest == half && (sticky || (mant & 1))))
		mant++;
	if (mant == UINT64_C(1) << 53) {
		mant >>= 1;
		shift++;
	}
	return ldexp((double)mant, shift + exp2);
}
#endif

/*
 * The exact value of mant * 10^exp10 (mant < 10^19) when it can be had
 * cheaply: one IEEE operation on exact doubles (Clinger) when mant <= 2^53
 * and |exp10| <= 22, else 128-bit integer arithmetic with explicit rounding
 * for -22 <= exp10 <= 19.  Returns false to ask for strtod.
 */
static bool parse_float_fast(uint64_t mant, int exp10, bool inexact, double *out)
{
	if (inexact || exp10 < -22 || exp10 > 22)
		return false;
	if (mant == 0) {
		*out = 0.0;
		return true;
	}
#if FLT_EVAL_METHOD == 0
	if (mant <= EXACT_INT_MAX) {
		*out = exp10 >= 0 ? (double)mant * exact_pow10[exp10]
		                  : (double)mant / exact_pow10[-exp10];
		return true;
	}
#endif
#if defined(__SIZEOF_INT128__)
	if (exp10 >= 0 && exp10 <= 19) {
		/* below 10^19 * 10^19 < 2^128: the product is exact */
		*out = round_u128((u128_t)mant * exact_pow10_u64[exp10], false, 0);
		return true;
	}
	if (exp10 < 0) {
		/* the quotient of (mant << s) >= 2^127 by 10^k < 2^74 has at least 54
		 * bits; the remainder only says whether it is exact */
		int s = 64 + __builtin_clzll(mant);
		u128_t n = (u128_t)mant << s, d = exact_pow10_u64[-exp10 < 19 ? -exp10 : 19];
		for (int k = 19; k < -exp10; k++)
			d *= 10;
		u128_t q = n / d;
		*out = round_u128(q, n - q * d != 0, -s);
		return true;
	}
#endif
	return false;
}

/* strtod on a NUL-terminated copy of [start, end), which is known to match
 * the float grammar without its sign. */
static int parse_float_slow(parser_t *p, size_t start, size_t end, double *out)
{
	size_t n = end - start;
	char local[NUMBER_COPY_MAX];
	char *copy = local;
	if (n >= sizeof local) {
		int rc = need_scratch(p, start);
		if (rc)
			return rc;
		copy = (char *)p->scratch->data + p->scratch->len;
	}
	memcpy(copy, p->s + start, n);
	copy[n] = '\0';
	char *endp;
	errno = 0;
	double v = strtod(copy, &endp);
	if (endp != copy + n)
		return VG_EINVAL; /* a non-"C" LC_NUMERIC; reported by the caller */
	if (isinf(v))
		return VG_ELIMIT;
	*out = v;
	return 0;
}

/*
 * Parses a number field value at *pos: [-]digits[.digits][e[+-]digits], or
 * [-]digits followed by i, or digits followed by u.
 */
static int parse_number(parser_t *p, size_t *pos, const uint8_t *key, size_t key_len, double *out)
{
	const uint8_t *s = p->s;
	size_t len = p->len, start = *pos, i = start;
	shown_t a, b;
	bool neg = false, inexact = false;
	uint64_t mant = 0;
	int digits = 0, exp10 = 0;

	if (s[i] == '-')
		neg = true, i++;
	size_t int_start = i;
	for (; i < len && (cls[s[i]] & C_DIGIT); i++) {
		unsigned d = s[i] - '0';
		if (digits < 19) {
			mant = mant * 10 + d;
			digits += mant != 0;
		} else {
			inexact = true;
		}
	}
	size_t int_digits = i - int_start;
	if (int_digits > 0 && i < len && (s[i] == 'i' || s[i] == 'u') &&
	    (i + 1 == len || (cls[s[i + 1]] & C_MSTOP))) {
		if (s[i] == 'u' && neg)
			goto invalid;
		if (inexact || mant > EXACT_INT_MAX)
			return fail(p, start,
			            "integer field '%s' out of the exact float range (|v| <= 2^53)",
			            show(&a, key, key_len));
		*out = mant == 0 ? 0.0 : neg ? -(double)mant : (double)mant;
		*pos = i + 1;
		return 0;
	}
	size_t frac_digits = 0;
	if (i < len && s[i] == '.') {
		size_t frac_start = ++i;
		for (; i < len && (cls[s[i]] & C_DIGIT); i++) {
			unsigned d = s[i] - '0';
			if (digits < 19) {
				mant = mant * 10 + d;
				digits += mant != 0;
				exp10--;
			} else {
				inexact = true;
			}
		}
		frac_digits = i - frac_start;
	}
	if (int_digits + frac_digits == 0)
		goto invalid;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		bool exp_neg = false;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			exp_neg = s[i] == '-', i++;
		if (i == len || !(cls[s[i]] & C_DIGIT))
			goto invalid;
		int e = 0;
		for (; i < len && (cls[s[i]] & C_DIGIT); i++)
			if (e < 100000)
				e = e * 10 + (s[i] - '0');
		exp10 += exp_neg ? -e : e;
	}
	if (i < len && !(cls[s[i]] & C_MSTOP))
		goto invalid;

	double v;
	int rc = parse_float_fast(mant, exp10, inexact, &v)
	             ? 0
	             : parse_float_slow(p, start + neg, i, &v);
	if (rc == VG_ELIMIT)
		return fail(p, start, "number '%s' for field '%s' is out of the float64 range",
		            show(&a, s + start, i - start), show(&b, key, key_len));
	if (rc == VG_EINVAL)
		goto invalid;
	if (rc)
		return rc;
	*out = neg ? -v : v;
	*pos = i;
	return 0;

invalid:
	return fail(p, start, "invalid number '%s' for field '%s'",
	            show(&a, s + start, token_end(p, start) - start), show(&b, key, key_len));
}

/* Parses the field value at *pos (known to be inside the line). */
static int parse_field_value(parser_t *p, size_t *pos, const uint8_t *key, size_t key_len,
                             double *out)
{
	const uint8_t *s = p->s;
	size_t start = *pos;
	uint8_t c = s[start];
	shown_t a, b;
	if ((cls[c] & C_DIGIT) || c == '-' || c == '.')
		return parse_number(p, pos, key, key_len, out);
	if (c == '"') {
		size_t i = start + 1;
		while (i < p->len && s[i] != '"')
			i += s[i] == '\\' && i + 1 < p->len ? 2 : 1;
		if (i >= p->len)
			return fail(p, start, "unterminated string value for field '%s'",
			            show(&a, key, key_len));
		return fail(p, start, "field '%s': string values are not supported",
		            show(&a, key, key_len));
	}
	size_t end = token_end(p, start);
	if (is_bool(s + start, end - start))
		return fail(p, start, "field '%s': boolean values are not supported",
		            show(&a, key, key_len));
	return fail(p, start, "invalid value '%s' for field '%s'", show(&a, s + start, end - start),
	            show(&b, key, key_len));
}

static int parse_fields(parser_t *p, size_t *pos, vg_lp_line_t *out)
{
	const uint8_t *s = p->s;
	size_t i = *pos, len = p->len;
	uint64_t seen = 0;
	shown_t a;
	for (;;) {
		size_t start = i;
		int rc = scan_name(p, &i, C_KSTOP, "field key");
		if (rc)
			return rc;
		if (out->field_count == VG_LP_MAX_FIELDS)
			return fail(p, start, "more than %d fields", VG_LP_MAX_FIELDS);
		size_t n = i - start;
		uint64_t bit = key_bit(s + start, n);
		if (seen & bit) {
			for (size_t f = 0; f < out->field_count; f++)
				if (view_eq(out->fields[f].key, s + start, n))
					return fail(p, start, "duplicate field key '%s'",
					            show(&a, s + start, n));
		}
		seen |= bit;
		if (i == len || s[i] != '=')
			return fail(p, i, "expected '=' after field key '%s'",
			            show(&a, s + start, n));
		i++;
		if (i == len || (cls[s[i]] & C_MSTOP))
			return fail(p, i, "missing value for field '%s'", show(&a, s + start, n));
		vg_lp_field_t *field = &out->fields[out->field_count];
		rc = parse_field_value(p, &i, s + start, n, &field->value);
		if (rc)
			return rc;
		field->key.ptr = (const char *)s + start;
		field->key.len = n;
		out->field_count++;
		if (i == len || s[i] == ' ')
			break;
		i++; /* ',' */
	}
	*pos = i;
	return 0;
}

static const int64_t precision_scale[] = {1, 1000, 1000000, 1000000000};
static const int64_t precision_max[] = {INT64_MAX, INT64_MAX / 1000, INT64_MAX / 1000000,
                                        INT64_MAX / 1000000000};
static const int64_t precision_min[] = {INT64_MIN, INT64_MIN / 1000, INT64_MIN / 1000000,
                                        INT64_MIN / 1000000000};
static const char *const precision_names[] = {"ns", "us", "ms", "s"};

static int parse_timestamp(parser_t *p, size_t *pos, vg_lp_precision_t precision, int64_t *out)
{
	const uint8_t *s = p->s;
	size_t len = p->len, start = *pos, i = start;
	shown_t a;
	bool neg = false, overflow = false;
	uint64_t v = 0;
	if (s[i] == '-')
		neg = true, i++;
	size_t digits_start = i;
	for (; i < len && (cls[s[i]] & C_DIGIT); i++) {
		unsigned d = s[i] - '0';
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	size_t end = i;
	while (end < len && s[end] != ' ' && s[end] != '\t')
		end++;
	if (i == digits_start || i != end)
		return fail(p, start, "invalid timestamp '%s'", show(&a, s + start, end - start));
	uint64_t limit = neg ? UINT64_C(1) << 63 : INT64_MAX;
	if (overflow || v > limit)
		return fail(p, start, "timestamp '%s' is out of the int64 range",
		            show(&a, s + start, end - start));
	int64_t t = !neg ? (int64_t)v : v == limit ? INT64_MIN : -(int64_t)v;
	if (t > precision_max[precision] || t < precision_min[precision])
		return fail(p, start,
		            "timestamp '%s' with precision %s is out of the int64 ns range",
		            show(&a, s + start, end - start), precision_names[precision]);
	*out = t * precision_scale[precision];
	*pos = end;
	return 0;
}

int vg_lp_parse(vg_lp_line_t *out, const char *line, size_t len, vg_lp_precision_t precision,
                int64_t default_time, vg_buf_t *scratch, char *errstr, size_t errstr_size)
{
	parser_t p = {(const uint8_t *)line, len, scratch, false, errstr, errstr_size};
	const uint8_t *s = p.s;
	if (errstr_size > 0)
		errstr[0] = '\0';
	vg_buf_clear(scratch);
	out->tag_count = 0;
	out->field_count = 0;
	out->has_timestamp = false;
	out->timestamp = default_time;
	if ((unsigned)precision > VG_LP_PRECISION_S)
		return fail(&p, 0, "unknown precision %d", (int)precision);

	/* Trailing whitespace is never significant in a valid line: the last
	 * section is a field value or a timestamp, neither of which has escapes. */
	while (p.len > 0 && (s[p.len - 1] == ' ' || s[p.len - 1] == '\t' || s[p.len - 1] == '\n' ||
	                     s[p.len - 1] == '\r'))
		p.len--;
	size_t i = 0;
	while (i < p.len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == p.len || s[i] == '#') {
		out->measurement.ptr = line + i;
		out->measurement.len = 0;
		return VG_LP_SKIPPED;
	}

	size_t start = i;
	int rc = scan_name(&p, &i, C_MSTOP, "measurement");
	if (rc)
		return rc;
	out->measurement.ptr = line + start;
	out->measurement.len = i - start;

	rc = parse_tags(&p, &i, out);
	if (rc)
		return rc;
	while (i < p.len && s[i] == ' ')
		i++;
	if (i == p.len)
		return fail(&p, i, "missing fields (expected ' ' then key=value)");

	rc = parse_fields(&p, &i, out);
	if (rc)
		return rc;
	while (i < p.len && s[i] == ' ')
		i++;
	if (i == p.len)
		return 0;

	rc = parse_timestamp(&p, &i, precision, &out->timestamp);
	if (rc)
		return rc;
	out->has_timestamp = true;
	while (i < p.len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i != p.len)
		return fail(&p, i, "unexpected text after the timestamp");
	return 0;
}

int vg_lp_next_line(const char *data, size_t len, bool final, size_t *line_len, size_t *consumed)
{
	if (len == 0) {
		*consumed = 0;
		return VG_EAGAIN;
	}
	size_t window = len < (size_t)VG_LP_MAX_LINE + 2 ? len : (size_t)VG_LP_MAX_LINE + 2;
	const char *nl = memchr(data, '\n', window);
	size_t n;
	if (nl) {
		n = (size_t)(nl - data);
		*consumed = n + 1;
	} else if (window == (size_t)VG_LP_MAX_LINE + 2) {
		*consumed = 0;
		return VG_ELIMIT;
	} else if (!final) {
		*consumed = 0;
		return VG_EAGAIN;
	} else {
		n = len;
		*consumed = len;
	}
	if (n > 0 && data[n - 1] == '\r')
		n--;
	if (n > VG_LP_MAX_LINE) {
		*consumed = 0;
		return VG_ELIMIT;
	}
	*line_len = n;
	return 0;
}

int vg_lp_precision_parse(const char *name, vg_lp_precision_t *out)
{
	for (int k = 0; k <= VG_LP_PRECISION_S; k++) {
		if (strcmp(name, precision_names[k]) == 0) {
			*out = (vg_lp_precision_t)k;
			return 0;
		}
	}
	return VG_EINVAL;
}
