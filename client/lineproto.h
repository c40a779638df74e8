/*
 * lineproto.h — the InfluxDB line protocol parser behind `vigil write`.
 *
 * One line of line protocol names one point:
 *
 *   cpu,host=db1,region=eu usage_user=12.5,usage_idle=80i 1700000000000000000
 *   ^measurement ^tags (0..64)     ^fields (1..256)       ^timestamp (optional)
 *
 * The parser does no I/O and copies nothing it does not have to: it reads the
 * caller's bytes once and fills a vg_lp_line_t whose names are views (pointer
 * plus length) into those bytes.  Only a tag value that contains an escape
 * sequence is unescaped, into a scratch buffer the caller lends.  Splitting a
 * stream into lines is a separate helper, vg_lp_next_line(), so a reader can
 * feed the parser chunk by chunk without either of them owning the stream.
 *
 * Accepted syntax (InfluxDB 1.x/2.x line protocol, restricted to what Vigil
 * stores — float64 fields, the names of SPEC.md "Data model"):
 *
 *   - Leading spaces and tabs are skipped; a line that is then empty or starts
 *     with '#' is skipped (VG_LP_SKIPPED).  One trailing "\n" or "\r\n" is
 *     ignored.  Sections are separated by one or more spaces; trailing spaces
 *     and tabs after the last section are allowed.
 *   - Escapes: in the measurement "\," and "\ "; in tag keys, tag values and
 *     field keys "\,", "\=" and "\ ".  A backslash before any other byte is
 *     a literal backslash (so "a\\,b" is the value "a\,b").
 *   - measurement, tag keys, field keys: [A-Za-z_][A-Za-z0-9_.:-]*, at most
 *     VG_LP_MAX_NAME bytes.  No valid name contains an escapable byte, so
 *     names are always views into the line.
 *   - tag values: 1..VG_LP_MAX_TAG_VALUE bytes (after unescaping) of valid
 *     UTF-8 without control bytes (0x00-0x1f, 0x7f); an unescaped '=' is an
 *     error.  Tag and field keys must not repeat within a line.
 *   - field values: floats ("1", "-1.5", ".5", "1.", "1.5E-3") parsed exactly
 *     as strtod would (correctly rounded); integers "12i" and unsigned "12u",
 *     accepted when |v| <= 2^53 so the float64 holds them exactly.  Booleans
 *     (t, T, true, True, TRUE, f, F, false, False, FALSE) and "strings" are
 *     recognised and refused; inf and nan are not line protocol.
 *   - timestamp: [-]digits, scaled from the given precision to nanoseconds
 *     with overflow checked; absent means the caller's default time.
 *
 * Not supported: string values spanning several lines (the splitter ends a
 * line at every '\n'), which Vigil would refuse anyway.
 *
 * Numbers are parsed with the C library's strtod when the exact fast path
 * does not apply; the program must keep LC_NUMERIC as "C" (the default).
 */
#ifndef VG_LINEPROTO_H
#define VG_LINEPROTO_H

#include "vg_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VG_LP_MAX_TAGS 64         /* tags per line (data model limit) */
#define VG_LP_MAX_FIELDS 256      /* fields per line */
#define VG_LP_MAX_NAME 255        /* bytes in a measurement, tag key or field key */
#define VG_LP_MAX_TAG_VALUE 1024  /* bytes in a tag value after unescaping */
#define VG_LP_MAX_LINE (1u << 20) /* bytes in a line, for vg_lp_next_line() */
/* A comfortable size for errstr: messages quote at most 48 bytes of any token
 * (non-ASCII bytes as \xNN), so only pathological input is truncated. */
#define VG_LP_ERRSTR_SIZE 256

/* Returned by vg_lp_parse() for a blank or comment line: nothing to write. */
#define VG_LP_SKIPPED 1

typedef enum vg_lp_precision {
	VG_LP_PRECISION_NS = 0,
	VG_LP_PRECISION_US,
	VG_LP_PRECISION_MS,
	VG_LP_PRECISION_S
} vg_lp_precision_t;

/* A byte range, not NUL-terminated.  Borrowed; see vg_lp_parse(). */
typedef struct vg_lp_view {
	const char *ptr;
	size_t len;
} vg_lp_view_t;

typedef struct vg_lp_tag {
	vg_lp_view_t key;
	vg_lp_view_t value;
} vg_lp_tag_t;

typedef struct vg_lp_field {
	vg_lp_view_t key;
	double value;
} vg_lp_field_t;

/*
 * One parsed line.  Tags are in the order written (not sorted); fields too.
 * The struct is large (about 8 KiB): allocate it once and reuse it.
 */
typedef struct vg_lp_line {
	vg_lp_view_t measurement;
	size_t tag_count;
	size_t field_count;
	int64_t timestamp;  /* ns since the epoch; the default if !has_timestamp */
	bool has_timestamp; /* whether the line carried one */
	vg_lp_tag_t tags[VG_LP_MAX_TAGS];
	vg_lp_field_t fields[VG_LP_MAX_FIELDS];
} vg_lp_line_t;

/*
 * Parses one line (without its newline; a trailing "\n" or "\r\n" is
 * ignored) of `len` bytes at `line`, which need not be NUL-terminated:
 * no byte outside line[0, len) is ever read.
 *
 * `precision` scales the timestamp; `default_time` (ns) is used when the
 * line has none.  `scratch` is emptied and receives unescaped tag values; it
 * grows at most once per call, to len + 2 bytes, and only when the line needs
 * it (an escape in a tag value, or a number longer than 63 bytes).
 *
 * Returns 0 with *out filled; VG_LP_SKIPPED for a blank or comment line
 * (*out has no fields); VG_EINVAL for a malformed line, with `errstr` set to
 * "column C: what was wrong" (C is the 1-based byte position in the line; the
 * caller adds the line number); VG_ENOMEM if scratch could not grow (errstr
 * says so).  errstr (errstr_size bytes, VG_LP_ERRSTR_SIZE recommended) is
 * always NUL-terminated when errstr_size > 0 and may be NULL when
 * errstr_size is 0.  On an error *out is unspecified.
 *
 * Ownership: every view in *out points either into `line` or into
 * scratch->data; both stay owned by the caller, and the views are valid until
 * the next call with the same scratch or until the caller changes or frees
 * either.
 */
int vg_lp_parse(vg_lp_line_t *out, const char *line, size_t len, vg_lp_precision_t precision,
                int64_t default_time, vg_buf_t *scratch, char *errstr, size_t errstr_size);

/*
 * Finds the first line in data[0, len): the bytes before the first '\n',
 * without a '\r' right before it.  With `final` (the caller has reached the
 * end of its input) a last line without '\n' counts as complete.
 *
 * Returns 0 with *line_len (bytes of the line, which starts at data) and
 * *consumed (bytes to drop before the next call, newline included); VG_EAGAIN
 * when data holds no complete line (append more input and call again; with
 * `final` this means data is empty); VG_ELIMIT when the line is longer than
 * VG_LP_MAX_LINE bytes (*consumed is 0: the stream cannot be resynchronised
 * and the caller should report the line and stop).  Reads at most
 * VG_LP_MAX_LINE + 2 bytes of data.
 */
int vg_lp_next_line(const char *data, size_t len, bool final, size_t *line_len, size_t *consumed);

/* Parses "ns", "us", "ms" or "s" (the --precision argument) into *out.
 * Returns 0 or VG_EINVAL. */
int vg_lp_precision_parse(const char *name, vg_lp_precision_t *out);

#endif
