/*
 * test_names.c — protocol/names.c and text.c: names, tag values (UTF-8),
 * whole write blocks and the messages that explain a refusal.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto_private.h"
#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_proto.h"

typedef struct {
	const char *s;
	size_t len;      /* 0: strlen(s) */
	const char *why; /* expected reason; NULL: valid */
} case_t;

static size_t case_len(const case_t *c)
{
	return c->len ? c->len : strlen(c->s);
}

static void run_cases(const case_t *cases, size_t n, int (*check)(const char *, size_t),
                      int (*diagnose)(const char *, size_t, char *, size_t))
{
	for (size_t i = 0; i < n; i++) {
		const case_t *c = &cases[i];
		size_t len = case_len(c);
		/* From an exact-size heap copy, so an over-read is caught. */
		char *copy = malloc(len ? len : 1);
		memcpy(copy, c->s, len);
		char err[160] = "untouched";
		int want = c->why ? VG_EINVAL : 0;
		cr_assert_eq(check(copy, len), want, "case %zu", i);
		cr_assert_eq(diagnose(copy, len, err, sizeof err), want, "case %zu", i);
		if (c->why)
			cr_assert_str_eq(err, c->why, "case %zu", i);
		else
			cr_assert_str_eq(err, "", "success leaves err empty (case %zu)", i);
		cr_assert_eq(diagnose(copy, len, NULL, 0), want, "no buffer is fine");
		free(copy);
	}
}

static char name255[256], name256[257], value1024[1025], value1025[1026], value1024_utf8[1025];

static void fill(void)
{
	memset(name255, 'n', 255);
	memset(name256, 'n', 256);
	memset(value1024, 'v', 1024);
	memset(value1025, 'v', 1025);
	/* 341 three-byte characters and one ASCII byte: 1024 bytes. */
	for (int i = 0; i < 341; i++)
		memcpy(value1024_utf8 + 3 * i, "\xe2\x82\xac", 3);
	value1024_utf8[1023] = 'x';
}

Test(names, name_table, .init = fill)
{
	const case_t cases[] = {
	    {"cpu", 0, NULL},
	    {"_", 0, NULL},
	    {"A", 0, NULL},
	    {"heart_rate", 0, NULL},
	    {"a.b:c-d_9", 0, NULL},
	    {"node:cpu_seconds:rate5m", 0, NULL},
	    {"Z9", 0, NULL},
	    {name255, 0, NULL},
	    {"", 0, "empty"},
	    {name256, 0, "256 bytes, more than 255"},
	    {"9cpu", 0, "invalid character '9' at byte 0 (a name starts with a letter or '_')"},
	    {"-x", 0, "invalid character '-' at byte 0 (a name starts with a letter or '_')"},
	    {".x", 0, "invalid character '.' at byte 0 (a name starts with a letter or '_')"},
	    {"ho st", 0, "invalid character ' ' at byte 2"},
	    {"a/b", 0, "invalid character '/' at byte 1"},
	    {"a=b", 0, "invalid character '=' at byte 1"},
	    {"a,b", 0, "invalid character ',' at byte 1"},
	    {"a\"b", 0, "invalid character '\"' at byte 1"},
	    {"cpu\0", 4, "invalid byte 0x00 at byte 3"},
	    {"temp\xc3\xa9rature", 0, "invalid character '\xc3\xa9' at byte 4"},
	    {"x\xff", 0, "invalid byte 0xff at byte 1"},
	    {"x\tb", 0, "invalid byte 0x09 at byte 1"},
	    {"\xe2\x82\xac", 0,
	     "invalid character '\xe2\x82\xac' at byte 0 (a name starts with a letter or '_')"},
	};
	run_cases(cases, sizeof cases / sizeof cases[0], vg_name_check, vg_name_diagnose);
}

Test(names, tag_value_table, .init = fill)
{
	const case_t cases[] = {
	    {"a", 0, NULL},
	    {"server 01", 0, NULL},
	    {"with,comma=and spaces", 0, NULL},
	    {"caf\xc3\xa9", 0, NULL},              /* 2-byte é */
	    {"\xe6\x97\xa5\xe6\x9c\xac", 0, NULL}, /* 3-byte 日本 */
	    {"\xf0\x9f\x98\x80", 0, NULL},         /* 4-byte U+1F600 */
	    {"\xc2\x80", 0, NULL},                 /* U+0080, smallest 2-byte */
	    {"\xe0\xa0\x80", 0, NULL},             /* U+0800, smallest 3-byte */
	    {"\xf0\x90\x80\x80", 0, NULL},         /* U+10000, smallest 4-byte */
	    {"\xed\x9f\xbf", 0, NULL},             /* U+D7FF, below the surrogates */
	    {"\xee\x80\x80", 0, NULL},             /* U+E000, above the surrogates */
	    {"\xef\xbf\xbf", 0, NULL},             /* U+FFFF */
	    {"\xf4\x8f\xbf\xbf", 0, NULL},         /* U+10FFFF, the last code point */
	    {"\x7f", 0, NULL},
	    {value1024, 0, NULL},
	    {value1024_utf8, 0, NULL},
	    {"", 0, "empty"},
	    {value1025, 0, "1025 bytes, more than 1024"},
	    {"a\0b", 3, "NUL byte at byte 1"},
	    {"\0", 1, "NUL byte at byte 0"},
	    {"\xc0\x80", 0, "invalid UTF-8 at byte 0 (overlong encoding)"}, /* overlong NUL */
	    {"x\xc1\xbf", 0, "invalid UTF-8 at byte 1 (overlong encoding)"},
	    {"\xe0\x80\xaf", 0, "invalid UTF-8 at byte 0 (overlong encoding)"}, /* overlong '/' */
	    {"\xe0\x9f\xbf", 0, "invalid UTF-8 at byte 0 (overlong encoding)"},
	    {"\xf0\x80\x80\xaf", 0, "invalid UTF-8 at byte 0 (overlong encoding)"},
	    {"\xf0\x8f\xbf\xbf", 0, "invalid UTF-8 at byte 0 (overlong encoding)"},
	    {"\xed\xa0\x80", 0, "invalid UTF-8 at byte 0 (surrogate U+D800)"},
	    {"ab\xed\xbf\xbf", 0, "invalid UTF-8 at byte 2 (surrogate U+DFFF)"},
	    {"\xed\xa0\xbd\xed\xb8\x80", 0,
	     "invalid UTF-8 at byte 0 (surrogate U+D83D)"}, /* CESU-8 pair */
	    {"\xf4\x90\x80\x80", 0, "invalid UTF-8 at byte 0 (code point above U+10FFFF)"},
	    {"\xf7\xbf\xbf\xbf", 0, "invalid UTF-8 at byte 0 (code point above U+10FFFF)"},
	    {"\xf8\x88\x80\x80\x80", 0, "invalid UTF-8 at byte 0 (byte never used in UTF-8)"},
	    {"\xff", 0, "invalid UTF-8 at byte 0 (byte never used in UTF-8)"},
	    {"\xfe", 0, "invalid UTF-8 at byte 0 (byte never used in UTF-8)"},
	    {"a\x80", 0, "invalid UTF-8 at byte 1 (unexpected continuation byte)"},
	    {"\xe2\x82", 0, "invalid UTF-8 at byte 0 (truncated sequence)"},
	    {"ok\xf0\x9f\x98", 0, "invalid UTF-8 at byte 2 (truncated sequence)"},
	    {"\xc3", 0, "invalid UTF-8 at byte 0 (truncated sequence)"},
	    {"\xe2\x28\xa1", 0, "invalid UTF-8 at byte 0 (missing continuation byte)"},
	    {"\xf0\x9f\x98\x41", 0, "invalid UTF-8 at byte 0 (missing continuation byte)"},
	};
	run_cases(cases, sizeof cases / sizeof cases[0], vg_tag_value_check, vg_tag_value_diagnose);
}

Test(names, exhaustive_two_and_three_byte_sequences)
{
	/* Against a brute-force reference: a sequence is valid iff it is the
	 * shortest encoding of a non-surrogate scalar value. */
	for (unsigned b0 = 0xC0; b0 <= 0xFF; b0++) {
		for (unsigned b1 = 0; b1 <= 0xFF; b1++) {
			char s[2] = {(char)b0, (char)b1};
			bool want = b0 >= 0xC2 && b0 <= 0xDF && (b1 & 0xC0) == 0x80;
			cr_assert_eq(vg_tag_value_check(s, 2) == 0, want, "%02x %02x", b0, b1);
		}
	}
	for (unsigned b0 = 0xE0; b0 <= 0xEF; b0++) {
		for (unsigned b1 = 0x80; b1 <= 0xBF; b1++) {
			char s[3] = {(char)b0, (char)b1, (char)0x80};
			unsigned cp = (b0 & 0x0F) << 12 | (b1 & 0x3F) << 6;
			bool want = cp >= 0x800 && !(cp >= 0xD800 && cp <= 0xDFFF);
			cr_assert_eq(vg_tag_value_check(s, 3) == 0, want, "%02x %02x 80", b0, b1);
		}
	}
	for (unsigned b0 = 0xF0; b0 <= 0xF7; b0++) {
		for (unsigned b1 = 0x80; b1 <= 0xBF; b1++) {
			char s[4] = {(char)b0, (char)b1, (char)0x80, (char)0x80};
			unsigned cp = (b0 & 0x07) << 18 | (b1 & 0x3F) << 12;
			bool want = cp >= 0x10000 && cp <= 0x10FFFF;
			cr_assert_eq(vg_tag_value_check(s, 4) == 0, want, "%02x %02x 80 80", b0,
			             b1);
		}
	}
}

Test(names, checks_stop_at_the_end_of_readable_memory)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t *base =
	    mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(base, MAP_FAILED);
	cr_assert_eq(mprotect(base + page, page, PROT_NONE), 0);
	const char *values[] = {"ok\xe2\x82", "\xf0", "\xf0\x9f\x98", "abc", "\xc3\xa9"};
	const int want[] = {VG_EINVAL, VG_EINVAL, VG_EINVAL, 0, 0};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		size_t n = strlen(values[i]);
		char *at = (char *)base + page - n;
		memcpy(at, values[i], n);
		cr_assert_eq(vg_tag_value_check(at, n), want[i], "value %zu", i);
		char err[128];
		vg_tag_value_diagnose(at, n, err, sizeof err);
		vg_name_diagnose(at, n, err, sizeof err);
	}
	munmap(base, 2 * page);
}

Test(names, messages_are_truncated_safely)
{
	char err[8];
	cr_assert_eq(vg_name_diagnose("ho st", 5, err, sizeof err), VG_EINVAL);
	cr_assert_str_eq(err, "invalid");
	char one[1] = {'x'};
	cr_assert_eq(vg_name_diagnose("", 0, one, 1), VG_EINVAL);
	cr_assert_eq(one[0], '\0');
}

/* ---- write blocks ------------------------------------------------------------ */

typedef struct {
	Vigil__V1__WriteBlock block;
	Vigil__V1__Tag tag_storage[80];
	Vigil__V1__Tag *tags[80];
	Vigil__V1__WriteField field_storage[200];
	Vigil__V1__WriteField *fields[200];
	int64_t times[4];
	double values[4];
	char names[200][16];
} block_t;

/* A valid block: cpu,host=server01,region=eu usage_user,usage_system at 4 times. */
static block_t *valid_block(void)
{
	block_t *b = calloc(1, sizeof *b);
	Vigil__V1__WriteBlock init = VIGIL__V1__WRITE_BLOCK__INIT;
	b->block = init;
	b->block.measurement = "cpu";
	for (int i = 0; i < 80; i++) {
		Vigil__V1__Tag t = VIGIL__V1__TAG__INIT;
		b->tag_storage[i] = t;
		b->tags[i] = &b->tag_storage[i];
	}
	b->tag_storage[0].key = "host";
	b->tag_storage[0].value = "server01";
	b->tag_storage[1].key = "region";
	b->tag_storage[1].value = "eu";
	b->block.tags = b->tags;
	b->block.n_tags = 2;
	for (int i = 0; i < 4; i++) {
		b->times[i] = 1000 * i;
		b->values[i] = i * 0.5;
	}
	b->block.times = b->times;
	b->block.n_times = 4;
	for (int i = 0; i < 200; i++) {
		Vigil__V1__WriteField f = VIGIL__V1__WRITE_FIELD__INIT;
		b->field_storage[i] = f;
		snprintf(b->names[i], sizeof b->names[i], "f%d", i);
		b->field_storage[i].name = b->names[i];
		b->field_storage[i].n_values = 4;
		b->field_storage[i].values = b->values;
		b->fields[i] = &b->field_storage[i];
	}
	b->field_storage[0].name = "usage_user";
	b->field_storage[1].name = "usage_system";
	b->block.fields = b->fields;
	b->block.n_fields = 2;
	return b;
}

static void expect_refusal(block_t *b, const char *want)
{
	char err[256] = "";
	cr_assert_eq(vg_write_block_check(&b->block, err, sizeof err), VG_EINVAL, "want: %s", want);
	cr_assert_str_eq(err, want);
	cr_assert_eq(vg_write_block_check(&b->block, NULL, 0), VG_EINVAL);
	free(b);
}

Test(write_block, valid_blocks_pass)
{
	block_t *b = valid_block();
	char err[64] = "untouched";
	cr_assert_eq(vg_write_block_check(&b->block, err, sizeof err), 0);
	cr_assert_str_eq(err, "");
	/* No tags, one time, unsorted and repeated timestamps are fine. */
	b->block.n_tags = 0;
	b->times[1] = b->times[0];
	cr_assert_eq(vg_write_block_check(&b->block, err, sizeof err), 0);
	/* Exactly 64 tags, and 200 fields (the heap path for duplicates). */
	static char keys[64][8];
	for (int i = 0; i < 64; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		b->tag_storage[i].key = keys[i];
		b->tag_storage[i].value = "v";
	}
	b->block.n_tags = 64;
	b->block.n_fields = 200;
	cr_assert_eq(vg_write_block_check(&b->block, err, sizeof err), 0);
	free(b);
}

Test(write_block, refusals_name_the_input)
{
	block_t *b;

	b = valid_block();
	b->block.measurement = "cp u";
	expect_refusal(b, "measurement 'cp u': invalid character ' ' at byte 2");

	b = valid_block();
	b->block.measurement = NULL;
	expect_refusal(b, "measurement '': empty");

	b = valid_block();
	b->tag_storage[1].key = "ho st";
	expect_refusal(b, "tag key 'ho st' in measurement 'cpu': invalid character ' ' at byte 2");

	b = valid_block();
	b->tag_storage[1].value = "";
	expect_refusal(b, "tag value of 'region' in measurement 'cpu': empty");

	b = valid_block();
	b->tag_storage[0].value = "bad\xed\xa0\x80";
	expect_refusal(
	    b,
	    "tag value of 'host' in measurement 'cpu': invalid UTF-8 at byte 3 (surrogate U+D800)");

	b = valid_block();
	b->tag_storage[1].key = "host";
	expect_refusal(b, "tag key 'host' in measurement 'cpu': appears twice");

	b = valid_block();
	b->block.n_tags = 65;
	expect_refusal(b, "measurement 'cpu': 65 tags, more than 64");

	b = valid_block();
	b->block.n_times = 0;
	b->field_storage[0].n_values = 0;
	b->field_storage[1].n_values = 0;
	expect_refusal(b, "measurement 'cpu': no timestamps");

	b = valid_block();
	b->block.n_fields = 0;
	expect_refusal(b, "measurement 'cpu': no fields");

	b = valid_block();
	b->field_storage[0].n_values = 3;
	expect_refusal(b, "field 'usage_user' in measurement 'cpu': 3 values for 4 timestamps");

	b = valid_block();
	b->block.n_times = 1;
	b->field_storage[0].n_values = 1;
	b->field_storage[1].n_values = 2;
	expect_refusal(b, "field 'usage_system' in measurement 'cpu': 2 values for 1 timestamp");

	b = valid_block();
	b->field_storage[1].name = "9lives";
	expect_refusal(b, "field '9lives' in measurement 'cpu': invalid character '9' at byte 0 (a "
	                  "name starts with a letter or '_')");

	b = valid_block();
	b->field_storage[1].name = "usage_user";
	expect_refusal(b, "field 'usage_user' in measurement 'cpu': appears twice");

	b = valid_block();
	b->block.n_fields = 200;
	b->field_storage[150].name = "f7";
	expect_refusal(b, "field 'f7' in measurement 'cpu': appears twice");
}

Test(write_block, quoting_escapes_and_cuts)
{
	block_t *b = valid_block();
	b->tag_storage[0].key = "a'b\\c\x01\xff\xc3\xa9";
	expect_refusal(b, "tag key 'a\\'b\\\\c\\x01\\xff\xc3\xa9' in measurement 'cpu': invalid "
	                  "character ''' at byte 1");

	static char long_name[300], want[400];
	memset(long_name, 'm', 299);
	b = valid_block();
	b->block.measurement = long_name;
	snprintf(want, sizeof want, "measurement '%.64s'...: 299 bytes, more than 255", long_name);
	expect_refusal(b, want);
}

Test(write_block, first_fault_in_reading_order)
{
	block_t *b = valid_block();
	b->block.measurement = "bad name";
	b->tag_storage[0].key = "bad key";
	b->field_storage[0].n_values = 1;
	expect_refusal(b, "measurement 'bad name': invalid character ' ' at byte 3");
}

Test(write_block, duplicate_search_out_of_memory)
{
	block_t *b = valid_block();
	b->block.n_fields = 100; /* more than fit the stack array */
	char err[128];
	vg_alloc_fail_after(0);
	int rc = vg_write_block_check(&b->block, err, sizeof err);
	vg_alloc_fail_after(-1);
	cr_assert_eq(rc, VG_ENOMEM);
	cr_assert_eq(vg_write_block_check(&b->block, err, sizeof err), 0);
	free(b);
}
