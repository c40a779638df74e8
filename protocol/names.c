/*
 * names.c — what the data model accepts as a name, a tag value and a write.
 *
 * Rules (SPEC "Data model"):
 *   measurement, tag key, field key   [A-Za-z_][A-Za-z0-9_.:-]*, 1..255 bytes
 *   tag value                         well-formed UTF-8, no NUL, 1..1024 bytes
 *   tags per point                    at most 64, keys unique
 *
 * The server refuses writes with these functions and the client library
 * checks with the same ones before sending, so a client never learns a rule
 * the hard way and the two can never drift apart.  Names are ASCII so that
 * they can be used unquoted in queries, line protocol and CSV headers; tag
 * values carry the free text.
 *
 * Every refusal says what was wrong and where, as the spec asks of every
 * error that reaches a user: the kind of thing ("tag key"), its text
 * (quoted, escaped, cut), its measurement, and the byte offset (0-based).
 * Checks run in the order the block is laid out, so the first fault in
 * reading order is the one reported.
 */
#include "vg_proto.h"

#include "proto_private.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <stdlib.h>
#include <string.h>

/* Room for one reason ("invalid UTF-8 at byte 1023 (surrogate U+D800)"). */
#define REASON_MAX 128

static bool is_name_start(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_rest(uint8_t c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '-';
}

static int name_check(const char *s, size_t len, vg_msg_t *m)
{
	const uint8_t *u = (const uint8_t *)s;
	if (len == 0) {
		vg_msg_printf(m, "empty");
		return VG_EINVAL;
	}
	if (len > VG_NAME_MAX) {
		vg_msg_printf(m, "%zu bytes, more than %d", len, VG_NAME_MAX);
		return VG_EINVAL;
	}
	if (!is_name_start(u[0])) {
		vg_msg_printf(m, "invalid ");
		vg_msg_unit(m, s, len, 0);
		vg_msg_printf(m, " at byte 0 (a name starts with a letter or '_')");
		return VG_EINVAL;
	}
	for (size_t i = 1; i < len; i++) {
		if (!is_name_rest(u[i])) {
			vg_msg_printf(m, "invalid ");
			vg_msg_unit(m, s, len, i);
			vg_msg_printf(m, " at byte %zu", i);
			return VG_EINVAL;
		}
	}
	return 0;
}

static int tag_value_check(const char *s, size_t len, vg_msg_t *m)
{
	const uint8_t *u = (const uint8_t *)s;
	if (len == 0) {
		vg_msg_printf(m, "empty");
		return VG_EINVAL;
	}
	if (len > VG_TAG_VALUE_MAX) {
		vg_msg_printf(m, "%zu bytes, more than %d", len, VG_TAG_VALUE_MAX);
		return VG_EINVAL;
	}
	size_t i = 0;
	while (i < len) {
		uint32_t cp = 0;
		int n = vg_utf8_decode(u + i, len - i, &cp);
		if (n > 0 && cp == 0) {
			vg_msg_printf(m, "NUL byte at byte %zu", i);
			return VG_EINVAL;
		}
		if (n == VG_UTF8_SURROGATE) {
			vg_msg_printf(m, "invalid UTF-8 at byte %zu (surrogate U+%04X)", i,
			              (unsigned)cp);
			return VG_EINVAL;
		}
		if (n < 0) {
			vg_msg_printf(m, "invalid UTF-8 at byte %zu (%s)", i, vg_utf8_reason(n));
			return VG_EINVAL;
		}
		i += (size_t)n;
	}
	return 0;
}

int vg_name_check(const char *s, size_t len)
{
	vg_msg_t m;
	vg_msg_init(&m, NULL, 0);
	return name_check(s, len, &m);
}

int vg_tag_value_check(const char *s, size_t len)
{
	vg_msg_t m;
	vg_msg_init(&m, NULL, 0);
	return tag_value_check(s, len, &m);
}

int vg_name_diagnose(const char *s, size_t len, char *err, size_t errlen)
{
	vg_msg_t m;
	vg_msg_init(&m, err, errlen);
	return name_check(s, len, &m);
}

int vg_tag_value_diagnose(const char *s, size_t len, char *err, size_t errlen)
{
	vg_msg_t m;
	vg_msg_init(&m, err, errlen);
	return tag_value_check(s, len, &m);
}

/* ---- write blocks ---------------------------------------------------------- */

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* Writes "<what> '<text>'[ in measurement '<m>']: <reason>" into m. */
static int refuse(vg_msg_t *m, const char *what, const char *text, const char *measurement,
                  const char *reason)
{
	vg_msg_printf(m, "%s ", what);
	vg_msg_quote(m, text, strlen(text));
	if (measurement) {
		vg_msg_printf(m, " in measurement ");
		vg_msg_quote(m, measurement, strlen(measurement));
	}
	vg_msg_printf(m, ": %s", reason);
	return VG_EINVAL;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Finds a name that occurs twice among names[0..n) (sorting the array in
 * place) and returns it, or NULL.  O(n log n), so a frame of a million
 * fields cannot make the server spin.
 */
static const char *find_duplicate(const char **names, size_t n)
{
	qsort(names, n, sizeof names[0], compare_strings);
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			return names[i];
	return NULL;
}

static int check_tags(const Vigil__V1__WriteBlock *b, const char *measurement, vg_msg_t *m)
{
	char reason[REASON_MAX];
	vg_msg_t r;
	if (b->n_tags > VG_MAX_TAGS) {
		vg_msg_printf(m, "measurement ");
		vg_msg_quote(m, measurement, strlen(measurement));
		vg_msg_printf(m, ": %zu tags, more than %d", b->n_tags, VG_MAX_TAGS);
		return VG_EINVAL;
	}
	const char *keys[VG_MAX_TAGS];
	for (size_t i = 0; i < b->n_tags; i++) {
		const char *key = str_or_empty(b->tags[i]->key);
		const char *value = str_or_empty(b->tags[i]->value);
		vg_msg_init(&r, reason, sizeof reason);
		if (name_check(key, strlen(key), &r))
			return refuse(m, "tag key", key, measurement, reason);
		if (tag_value_check(value, strlen(value), &r))
			return refuse(m, "tag value of", key, measurement, reason);
		keys[i] = key;
	}
	const char *dup = find_duplicate(keys, b->n_tags);
	if (dup)
		return refuse(m, "tag key", dup, measurement, "appears twice");
	return 0;
}

static int check_fields(const Vigil__V1__WriteBlock *b, const char *measurement, vg_msg_t *m)
{
	char reason[REASON_MAX];
	vg_msg_t r;
	for (size_t i = 0; i < b->n_fields; i++) {
		const Vigil__V1__WriteField *f = b->fields[i];
		const char *name = str_or_empty(f->name);
		vg_msg_init(&r, reason, sizeof reason);
		if (name_check(name, strlen(name), &r))
			return refuse(m, "field", name, measurement, reason);
		if (f->n_values != b->n_times) {
			vg_msg_printf(&r, "%zu value%s for %zu timestamp%s", f->n_values,
			              f->n_values == 1 ? "" : "s", b->n_times,
			              b->n_times == 1 ? "" : "s");
			return refuse(m, "field", name, measurement, reason);
		}
	}
	const char *stack_names[VG_MAX_TAGS];
	const char **names = stack_names;
	if (b->n_fields > VG_MAX_TAGS) {
		names = vg_reallocarray(NULL, b->n_fields, sizeof names[0]);
		if (!names) {
			vg_msg_printf(m, "out of memory checking %zu fields", b->n_fields);
			return VG_ENOMEM;
		}
	}
	for (size_t i = 0; i < b->n_fields; i++)
		names[i] = str_or_empty(b->fields[i]->name);
	const char *dup = find_duplicate(names, b->n_fields);
	int rc = dup ? refuse(m, "field", dup, measurement, "appears twice") : 0;
	if (names != stack_names)
		vg_free(names);
	return rc;
}

int vg_write_block_check(const Vigil__V1__WriteBlock *b, char *err, size_t errlen)
{
	char reason[REASON_MAX];
	vg_msg_t m, r;
	vg_msg_init(&m, err, errlen);
	vg_msg_init(&r, reason, sizeof reason);
	const char *measurement = str_or_empty(b->measurement);
	if (name_check(measurement, strlen(measurement), &r))
		return refuse(&m, "measurement", measurement, NULL, reason);
	int rc = check_tags(b, measurement, &m);
	if (rc)
		return rc;
	if (b->n_times == 0 || b->n_fields == 0) {
		vg_msg_printf(&m, "measurement ");
		vg_msg_quote(&m, measurement, strlen(measurement));
		vg_msg_printf(&m, ": %s", b->n_times == 0 ? "no timestamps" : "no fields");
		return VG_EINVAL;
	}
	return check_fields(b, measurement, &m);
}
