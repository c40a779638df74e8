/*
 * text.c — UTF-8 and the text of error messages.
 *
 * Tag values must be well-formed UTF-8 (RFC 3629), and error messages quote
 * the input at fault, which may be anything but must reach peers in other
 * languages as valid proto3 strings.  Both rest on one strict decoder.
 *
 * Well-formed sequences (RFC 3629 §4):
 *
 *     U+0000..U+007F     0xxxxxxx
 *     U+0080..U+07FF     110xxxxx 10xxxxxx
 *     U+0800..U+FFFF     1110xxxx 10xxxxxx 10xxxxxx       minus U+D800..U+DFFF
 *     U+10000..U+10FFFF  11110xxx 10xxxxxx 10xxxxxx 10xxxxxx
 *
 * A sequence longer than needed for its code point (C0 80 for U+0000,
 * E0 80 AF for '/') is "overlong" and refused: such forms are the classic
 * way to smuggle a character past a byte-level check.  The decoder first
 * checks the shape (lead byte, continuation bytes present and 10xxxxxx),
 * then the value, so the reason it reports is the most specific one.  It
 * never reads past the length it is given.
 */
#include "proto_private.h"

#include "vg_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes of input vg_msg_quote() shows before cutting with "...". */
#define QUOTE_MAX 64

int vg_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
	uint8_t b0 = s[0];
	if (b0 < 0x80) {
		*cp = b0;
		return 1;
	}
	if (b0 < 0xC0)
		return VG_UTF8_STRAY_CONTINUATION;
	if (b0 >= 0xF8)
		return VG_UTF8_BAD_BYTE;
	int n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
	uint32_t v = b0 & (0x7Fu >> n);
	for (int k = 1; k < n; k++) {
		if ((size_t)k >= len)
			return VG_UTF8_TRUNCATED;
		if ((s[k] & 0xC0) != 0x80)
			return VG_UTF8_BAD_CONTINUATION;
		v = v << 6 | (s[k] & 0x3Fu);
	}
	static const uint32_t min_for_length[5] = {0, 0, 0x80, 0x800, 0x10000};
	if (v < min_for_length[n])
		return VG_UTF8_OVERLONG;
	*cp = v;
	if (v >= 0xD800 && v <= 0xDFFF)
		return VG_UTF8_SURROGATE;
	if (v > 0x10FFFF)
		return VG_UTF8_TOO_LARGE;
	return n;
}

const char *vg_utf8_reason(int status)
{
	switch (status) {
	case VG_UTF8_TRUNCATED:
		return "truncated sequence";
	case VG_UTF8_BAD_CONTINUATION:
		return "missing continuation byte";
	case VG_UTF8_STRAY_CONTINUATION:
		return "unexpected continuation byte";
	case VG_UTF8_BAD_BYTE:
		return "byte never used in UTF-8";
	case VG_UTF8_OVERLONG:
		return "overlong encoding";
	case VG_UTF8_SURROGATE:
		return "surrogate";
	case VG_UTF8_TOO_LARGE:
		return "code point above U+10FFFF";
	default:
		return "invalid";
	}
}

bool vg_utf8_is_clean(const char *s, size_t len)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		int n = vg_utf8_decode(u + i, len - i, &cp);
		if (n < 0 || cp == 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

/* The text that stands for the sequence at s[i]: itself when it is a
 * well-formed non-NUL character, else U+FFFD.  Returns the bytes consumed. */
static size_t sanitized_piece(const char *s, size_t len, size_t i, const char **piece,
                              size_t *piece_len)
{
	static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
	uint32_t cp = 0;
	int n = vg_utf8_decode((const uint8_t *)s + i, len - i, &cp);
	if (n > 0 && cp != 0) {
		*piece = s + i;
		*piece_len = (size_t)n;
		return (size_t)n;
	}
	*piece = replacement;
	*piece_len = sizeof replacement - 1;
	return n > 0 ? (size_t)n : 1;
}

int vg_utf8_sanitize(vg_buf_t *out, const char *s, size_t len, size_t max)
{
	static const char ellipsis[] = "...";
	const char *piece;
	size_t piece_len, total = 0;
	for (size_t i = 0; i < len;) {
		i += sanitized_piece(s, len, i, &piece, &piece_len);
		total += piece_len;
	}
	bool cut = total > max;
	size_t limit = !cut ? max : max > sizeof ellipsis - 1 ? max - (sizeof ellipsis - 1) : 0;
	size_t start = out->len, used = 0;
	int rc = 0;
	for (size_t i = 0; i < len && rc == 0;) {
		i += sanitized_piece(s, len, i, &piece, &piece_len);
		if (used + piece_len > limit)
			break;
		rc = vg_buf_append(out, piece, piece_len);
		used += piece_len;
	}
	if (rc == 0 && cut)
		rc = vg_buf_append(out, ellipsis, sizeof ellipsis - 1);
	if (rc)
		out->len = start;
	return rc;
}

void vg_msg_printf(vg_msg_t *m, const char *fmt, ...)
{
	if (m->cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(m->p + m->len, m->cap - m->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		m->p[m->len] = '\0';
	else if ((size_t)n >= m->cap - m->len)
		m->len = m->cap - 1;
	else
		m->len += (size_t)n;
}

void vg_msg_quote(vg_msg_t *m, const char *s, size_t len)
{
	if (m->cap == 0)
		return;
	const uint8_t *u = (const uint8_t *)s;
	vg_msg_printf(m, "'");
	size_t i = 0;
	while (i < len && i < QUOTE_MAX) {
		uint32_t cp = 0;
		int n = vg_utf8_decode(u + i, len - i, &cp);
		if (n > 1) {
			vg_msg_printf(m, "%.*s", n, s + i);
			i += (size_t)n;
			continue;
		}
		if (u[i] == '\\' || u[i] == '\'')
			vg_msg_printf(m, "\\%c", u[i]);
		else if (u[i] >= 0x20 && u[i] < 0x7F)
			vg_msg_printf(m, "%c", u[i]);
		else
			vg_msg_printf(m, "\\x%02x", u[i]);
		i++;
	}
	vg_msg_printf(m, i < len ? "'..." : "'");
}

void vg_msg_unit(vg_msg_t *m, const char *s, size_t len, size_t i)
{
	const uint8_t *u = (const uint8_t *)s;
	uint32_t cp = 0;
	int n = vg_utf8_decode(u + i, len - i, &cp);
	if (n > 1)
		vg_msg_printf(m, "character '%.*s'", n, s + i);
	else if (u[i] >= 0x20 && u[i] < 0x7F)
		vg_msg_printf(m, "character '%c'", u[i]);
	else
		vg_msg_printf(m, "byte 0x%02x", u[i]);
}
