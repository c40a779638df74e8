/*
 * fuzz_lineproto.c — libFuzzer harness for the InfluxDB line protocol
 * parser behind `vigil write` (client/lineproto.c).
 *
 * Input: a stream of line protocol, as `vigil write` reads it from a file
 * or stdin.  It is cut into lines with vg_lp_next_line() (first as if more
 * input might follow, then as the end of the input) and every line goes
 * through vg_lp_parse() twice, at precision ns and s, with one scratch
 * buffer reused across lines as the CLI does.  Whatever the bytes, the
 * parser must return 0, VG_LP_SKIPPED or VG_EINVAL with a "column C: ..."
 * message, and never read outside the line.
 *
 * For every accepted line the harness checks what the rest of the system
 * relies on: each view lies inside the line or the scratch buffer; the
 * counts are within the limits; the point, turned into a WriteBlock, passes
 * vg_write_block_check() — what the CLI accepts, the server accepts; and the
 * timestamp read at precision s is the one read at ns times 10^9 unless that
 * overflows.  Any crash, leak, sanitizer report or broken property is a bug.
 */
#include "lineproto.h"
#include "vg_alloc.h"
#include "vg_proto.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void require(int ok)
{
	if (!ok)
		__builtin_trap();
}

static void check_view(vg_lp_view_t v, const char *line, size_t len, const vg_buf_t *scratch)
{
	const uint8_t *p = (const uint8_t *)v.ptr;
	bool in_line = v.ptr >= line && v.ptr + v.len <= line + len;
	bool in_scratch =
	    scratch->data && p >= scratch->data && p + v.len <= scratch->data + scratch->len;
	require(v.len > 0 && (in_line || in_scratch));
}

static char *copy(vg_lp_view_t v)
{
	char *s = vg_strndup(v.ptr, v.len);
	require(s != NULL);
	return s;
}

/* The accepted point as the CLI sends it must pass the server's checks. */
static void check_as_write(const vg_lp_line_t *l)
{
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	Vigil__V1__Tag tags[VG_LP_MAX_TAGS];
	Vigil__V1__Tag *tagp[VG_LP_MAX_TAGS];
	Vigil__V1__WriteField fields[VG_LP_MAX_FIELDS];
	Vigil__V1__WriteField *fieldp[VG_LP_MAX_FIELDS];
	double values[VG_LP_MAX_FIELDS];
	int64_t time = l->timestamp;

	block.measurement = copy(l->measurement);
	for (size_t i = 0; i < l->tag_count; i++) {
		vigil__v1__tag__init(&tags[i]);
		tags[i].key = copy(l->tags[i].key);
		tags[i].value = copy(l->tags[i].value);
		tagp[i] = &tags[i];
	}
	for (size_t i = 0; i < l->field_count; i++) {
		vigil__v1__write_field__init(&fields[i]);
		fields[i].name = copy(l->fields[i].key);
		values[i] = l->fields[i].value;
		fields[i].n_values = 1;
		fields[i].values = &values[i];
		fieldp[i] = &fields[i];
	}
	block.n_tags = l->tag_count;
	block.tags = tagp;
	block.n_fields = l->field_count;
	block.fields = fieldp;
	block.n_times = 1;
	block.times = &time;

	char err[512];
	int rc = vg_write_block_check(&block, err, sizeof err);
	require(rc == 0 || rc == VG_ENOMEM);

	vg_free(block.measurement);
	for (size_t i = 0; i < l->tag_count; i++) {
		vg_free(tags[i].key);
		vg_free(tags[i].value);
	}
	for (size_t i = 0; i < l->field_count; i++)
		vg_free(fields[i].name);
}

static void check_line(const vg_lp_line_t *l, const char *line, size_t len, const vg_buf_t *scratch)
{
	require(l->tag_count <= VG_LP_MAX_TAGS);
	require(l->field_count >= 1 && l->field_count <= VG_LP_MAX_FIELDS);
	check_view(l->measurement, line, len, scratch);
	for (size_t i = 0; i < l->tag_count; i++) {
		check_view(l->tags[i].key, line, len, scratch);
		check_view(l->tags[i].value, line, len, scratch);
	}
	for (size_t i = 0; i < l->field_count; i++)
		check_view(l->fields[i].key, line, len, scratch);
	check_as_write(l);
}

static vg_lp_line_t parsed;

static void parse_line(const char *line, size_t len, vg_buf_t *scratch)
{
	char err[VG_LP_ERRSTR_SIZE];
	const int64_t default_time = 1767225600000000000;
	int rc = vg_lp_parse(&parsed, line, len, VG_LP_PRECISION_NS, default_time, scratch, err,
	                     sizeof err);
	require(rc == 0 || rc == VG_LP_SKIPPED || rc == VG_EINVAL || rc == VG_ENOMEM);
	require(memchr(err, 0, sizeof err) != NULL);
	if (rc == VG_EINVAL)
		require(strncmp(err, "column ", 7) == 0);
	if (rc != 0)
		return;
	check_line(&parsed, line, len, scratch);
	bool has_ts = parsed.has_timestamp;
	int64_t ns = parsed.timestamp;

	rc = vg_lp_parse(&parsed, line, len, VG_LP_PRECISION_S, default_time, scratch, err,
	                 sizeof err);
	require(rc == 0 || rc == VG_EINVAL || rc == VG_ENOMEM);
	if (rc != 0)
		return;
	check_line(&parsed, line, len, scratch);
	require(parsed.has_timestamp == has_ts);
	int64_t scaled;
	if (has_ts && !__builtin_mul_overflow(ns, (int64_t)1000000000, &scaled))
		require(parsed.timestamp == scaled);
	if (!has_ts)
		require(parsed.timestamp == default_time);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	vg_buf_t scratch = VG_BUF_INIT;
	size_t offset = 0;
	while (offset < size) {
		size_t line_len = 0, consumed = 0;
		int rc = vg_lp_next_line(text + offset, size - offset, false, &line_len, &consumed);
		if (rc == VG_EAGAIN)
			rc = vg_lp_next_line(text + offset, size - offset, true, &line_len,
			                     &consumed);
		if (rc == VG_ELIMIT || rc == VG_EAGAIN)
			break;
		require(rc == 0 && consumed > 0 && line_len <= consumed &&
		        consumed <= size - offset);
		parse_line(text + offset, line_len, &scratch);
		offset += consumed;
	}
	vg_buf_release(&scratch);
	return 0;
}
