/*
 * proto_private.h — internals shared by the files of protocol/, not installed.
 *
 * Three small tools the public functions are built from:
 *  - vg_msg_t, a fixed-capacity writer for the human-readable messages the
 *    checkers produce into caller-supplied `char *err, size_t errlen`
 *    buffers (it truncates, never allocates, and keeps the text
 *    NUL-terminated);
 *  - a strict UTF-8 decoder (text.c) used by tag-value checks, by the
 *    quoting of bad input in messages and by the sanitising of Error text;
 *  - the protobuf wire-format walker (wire.c) that vg_frame_parse() runs
 *    before protobuf-c, to refuse what protobuf-c would silently alter.
 */
#ifndef VG_PROTO_PRIVATE_H
#define VG_PROTO_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg_buf.h"
#include "vg_error.h"

/* ---- message writer -------------------------------------------------------
 * Invariants: len < cap whenever cap > 0, and p[len] == '\0'.  With cap == 0
 * (no buffer: the caller only wants the return code) every call is a no-op.
 * Text that does not fit is dropped at the end.
 */
typedef struct vg_msg {
	char *p;
	size_t cap;
	size_t len;
} vg_msg_t;

static inline void vg_msg_init(vg_msg_t *m, char *p, size_t cap)
{
	m->p = cap ? p : NULL;
	m->cap = m->p ? cap : 0;
	m->len = 0;
	if (m->cap)
		m->p[0] = '\0';
}

void vg_msg_printf(vg_msg_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends 's' quoted: printable ASCII and well-formed UTF-8 as is, \ and '
 * backslash-escaped, other bytes as \xNN; cut after 64 bytes with "...". */
void vg_msg_quote(vg_msg_t *m, const char *s, size_t len);
/* Describes the unit at s[i] for "invalid ... at byte i": "character 'x'"
 * for printable ASCII or a well-formed UTF-8 sequence, else "byte 0xNN". */
void vg_msg_unit(vg_msg_t *m, const char *s, size_t len, size_t i);

/* ---- UTF-8 ---------------------------------------------------------------- */

enum {
	VG_UTF8_TRUNCATED = -1,          /* input ends inside a sequence */
	VG_UTF8_BAD_CONTINUATION = -2,   /* a byte after the lead is not 10xxxxxx */
	VG_UTF8_STRAY_CONTINUATION = -3, /* 10xxxxxx where a character starts */
	VG_UTF8_BAD_BYTE = -4,           /* 0xF8..0xFF never occur in UTF-8 */
	VG_UTF8_OVERLONG = -5,           /* e.g. C0 80 for U+0000 */
	VG_UTF8_SURROGATE = -6,          /* U+D800..U+DFFF */
	VG_UTF8_TOO_LARGE = -7,          /* above U+10FFFF */
};

/*
 * Decodes the sequence at s (len > 0 bytes readable; never reads more).
 * Returns its length 1..4 with *cp set, or a VG_UTF8_* status; *cp is also
 * set for VG_UTF8_SURROGATE and VG_UTF8_TOO_LARGE.  NUL decodes as U+0000:
 * callers that forbid it check *cp.
 */
int vg_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);
/* "truncated sequence", "overlong encoding", ... for a VG_UTF8_* status. */
const char *vg_utf8_reason(int status);
/* True if s[0..len) is well-formed UTF-8 without NUL. */
bool vg_utf8_is_clean(const char *s, size_t len);
/*
 * Appends s[0..len) to out as well-formed UTF-8 without NUL: each invalid
 * sequence and each NUL becomes U+FFFD.  Output stops before exceeding
 * `max` bytes (at a character boundary) and then ends in "...".  Returns 0
 * or VG_ENOMEM (out unchanged).
 */
int vg_utf8_sanitize(vg_buf_t *out, const char *s, size_t len, size_t max);

/* ---- wire-format walker ---------------------------------------------------- */

/* Reads a varint of at most `max` bytes (10 for a value; protobuf-c reads
 * field keys and length prefixes in at most 5) at p[*pos..n): 0,
 * VG_EAGAIN (cut short) or VG_EPROTO (longer than max).  Shared by the
 * walker (wire.c) and the hand decoders (frame.c). */
static inline int vg_wire_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *value,
				 unsigned max)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < max; i++) {
		if (*pos >= n)
			return VG_EAGAIN;
		uint8_t b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			*value = v;
			return 0;
		}
	}
	return VG_EPROTO;
}

typedef struct vg_wire_report {
	uint64_t id;            /* Envelope.id, when it was read (else 0) */
	bool has_body;          /* a body field this version knows was seen */
	uint32_t unknown_field; /* first unknown top-level field number, or 0 */
} vg_wire_report_t;

/*
 * Walks the Envelope encoded in p[0..n) without allocating: every field key,
 * varint and length must be well-formed and in bounds, known fields must
 * have their declared wire type (or be packed when repeated), packed arrays
 * must hold whole elements, and no string field may contain a NUL byte.
 * Fills *r as far as it got.  Returns 0 or VG_EPROTO, describing the fault
 * into m (which may have cap 0).
 */
int vg_wire_scan_envelope(const uint8_t *p, size_t n, vg_wire_report_t *r, vg_msg_t *m);

#endif
