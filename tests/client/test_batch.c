/*
 * test_batch.c — the batch builder of client/batch.c: grouping into
 * blocks, validation, encoding, size estimate and failure atomicity.
 *
 * Every check of what was encoded goes through the real wire path: the
 * batch becomes a Write envelope, vg_frame_append() frames it and
 * vg_frame_parse() (from an exact-size heap copy) decodes it again, so the
 * test sees what a server would see.  A property test drives random mixes
 * of adds against a brute-force reference (the list of points in add
 * order) and calls the invariant checker after each operation; the
 * allocation-failure loop fails every allocation in turn and checks the
 * batch is left exactly as before the failed call.  Rows
 * (vg_batch_add_row) are held to the per-field adds they stand for: the
 * same random script through both must encode to the same bytes.
 */
#include "vigil.h" /* first: its copy of the error codes is what users see */

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "client_int.h"
#include "vg_alloc.h"
#include "vg_proto.h"
#include "vg_test.h"

/* ---- helpers -------------------------------------------------------------- */

static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

static vg_batch_t *new_batch(void)
{
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	return b;
}

static void assert_valid(const vg_batch_t *b)
{
	char err[256];
	int rc = vg_batch_check(b, err, sizeof err);
	cr_assert_eq(rc, 0, "batch invariant broken: %s", err);
}

/* The batch as one framed Write envelope with id 1. */
static void encode(const vg_batch_t *b, vg_buf_t *out)
{
	vg_write_msg_t m;
	cr_assert_eq(vg_batch_to_write(b, &m), 0);
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &m.write;
	vg_buf_clear(out);
	cr_assert_eq(vg_frame_append(out, &env), 0);
	vg_write_msg_release(&m);
}

/* Encodes, frames and parses the batch back: the Write a server receives.
 * Free with vg_frame_free_envelope(). */
static Vigil__V1__Envelope *roundtrip(const vg_batch_t *b, size_t *frame_len)
{
	vg_buf_t frame = VG_BUF_INIT;
	encode(b, &frame);
	uint8_t *copy = malloc(frame.len);
	cr_assert_not_null(copy);
	memcpy(copy, frame.data, frame.len);
	Vigil__V1__Envelope *env;
	size_t consumed;
	int rc = vg_frame_parse(copy, frame.len, SIZE_MAX, &env, &consumed);
	cr_assert_eq(rc, 0, "the encoded batch does not parse: %s", vg_strerror(rc));
	cr_assert_eq(consumed, frame.len);
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_WRITE);
	for (size_t i = 0; i < env->write->n_blocks; i++) {
		char err[256];
		cr_assert_eq(vg_write_block_check(env->write->blocks[i], err, sizeof err), 0,
		             "block %zu fails the server's check: %s", i, err);
	}
	if (frame_len)
		*frame_len = frame.len;
	free(copy);
	vg_buf_release(&frame);
	return env;
}

static const Vigil__V1__WriteField *field_of(const Vigil__V1__WriteBlock *wb, const char *name)
{
	for (size_t i = 0; i < wb->n_fields; i++)
		if (!strcmp(wb->fields[i]->name, name))
			return wb->fields[i];
	return NULL;
}

static bool same_bits(double a, double b)
{
	return !memcmp(&a, &b, sizeof a);
}

/* ---- error codes ------------------------------------------------------------ */

Test(batch, public_error_codes_are_the_librarys)
{
	/* vg_strerror() and vg_error_to_wire() were compiled with
	 * common/vg_error.h; this file sees vigil.h's copy.  Equal messages
	 * and mappings mean equal values. */
	static const struct {
		int code;
		const char *message;
	} codes[] = {
	    {VG_ENOMEM, "out of memory"},
	    {VG_EINVAL, "invalid argument"},
	    {VG_ECORRUPT, "corrupt data"},
	    {VG_EVERSION, "unsupported format version"},
	    {VG_ENOTFOUND, "not found"},
	    {VG_ELIMIT, "limit exceeded"},
	    {VG_ESTORE, "storage error"},
	    {VG_EAGAIN, "incomplete input"},
	    {VG_ESYNTAX, "syntax error"},
	    {VG_EPROTO, "protocol error"},
	    {VG_ECLOSED, "closed"},
	    {VG_ETIMEOUT, "timed out"},
	    {VG_ECANCELED, "cancelled"},
	    {VG_EEXIST, "already exists"},
	    {VG_EOVERFLOW, "buffer overflow"},
	    {VG_EAUTH, "authentication failed"},
	    {VG_EPERM, "permission denied"},
	    {VG_ETLS, "TLS error"},
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		cr_assert_str_eq(vg_strerror(codes[i].code), codes[i].message);
	cr_assert_eq(VG_ELAST, VG_EBASE - 19);
	cr_assert_eq(vg_error_to_wire(VG_EAUTH), VIGIL__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
	cr_assert_eq(vg_error_to_wire(VG_EPERM), VIGIL__V1__ERROR_CODE__ERROR_PERMISSION_DENIED);
	cr_assert_eq(vg_error_from_wire(VIGIL__V1__ERROR_CODE__ERROR_PERMISSION_DENIED), VG_EPERM);
	cr_assert_eq(vg_error_to_wire(VG_ESYNTAX), VIGIL__V1__ERROR_CODE__ERROR_SYNTAX);
	cr_assert_eq(vg_error_to_wire(VG_EOVERFLOW), VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW);
	cr_assert_eq(vg_error_to_wire(VG_EEXIST), VIGIL__V1__ERROR_CODE__ERROR_EXISTS);
	cr_assert_eq((int)VG_COLUMN_STRING, (int)VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_STRING);
	cr_assert_eq((int)VG_COLUMN_INTEGER, (int)VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_INTEGER);
}

/* ---- grouping ---------------------------------------------------------------- */

Test(batch, row_wise_points_become_one_block_per_series)
{
	vg_batch_t *b = new_batch();
	const vg_tag_t web1[] = {{"host", "web1"}, {"dc", "eu"}};
	const vg_tag_t web1_swapped[] = {{"dc", "eu"}, {"host", "web1"}};
	const vg_tag_t web2[] = {{"host", "web2"}, {"dc", "eu"}};
	for (int t = 0; t < 3; t++) {
		/* Tag order must not matter; fields in varying order too. */
		cr_assert_eq(
		    vg_batch_add(b, "cpu", t % 2 ? web1 : web1_swapped, 2, "user", t, t + 0.5), 0);
		cr_assert_eq(vg_batch_add(b, "cpu", web2, 2, "idle", t, 90 - t), 0);
		cr_assert_eq(vg_batch_add(b, "cpu", web1, 2, "idle", t, 80 - t), 0);
		cr_assert_eq(vg_batch_add(b, "cpu", web2, 2, "user", t, t + 0.25), 0);
		assert_valid(b);
	}
	cr_assert_eq(vg_batch_points(b), 12);
	cr_assert_eq(vg_batch_block_count(b), 2);

	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	cr_assert_eq(env->write->n_blocks, 2);
	for (size_t i = 0; i < 2; i++) {
		const Vigil__V1__WriteBlock *wb = env->write->blocks[i];
		cr_assert_str_eq(wb->measurement, "cpu");
		cr_assert_eq(wb->n_tags, 2);
		cr_assert_str_eq(wb->tags[0]->key, "dc"); /* sorted by key */
		cr_assert_str_eq(wb->tags[1]->key, "host");
		cr_assert_str_eq(wb->tags[1]->value, i == 0 ? "web1" : "web2");
		cr_assert_eq(wb->n_times, 3);
		cr_assert_eq(wb->n_fields, 2);
		const Vigil__V1__WriteField *user = field_of(wb, "user");
		const Vigil__V1__WriteField *idle = field_of(wb, "idle");
		cr_assert(user && idle);
		for (int t = 0; t < 3; t++) {
			cr_assert_eq(wb->times[t], t);
			cr_assert_eq(user->values[t], t + (i == 0 ? 0.5 : 0.25));
			cr_assert_eq(idle->values[t], (i == 0 ? 80 : 90) - t);
		}
	}
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, column_wise_fields_share_times_and_other_times_open_a_block)
{
	vg_batch_t *b = new_batch();
	const vg_tag_t tags[] = {{"sensor", "s1"}};
	int64_t times[100], other[100];
	double a[100], c[100];
	for (int i = 0; i < 100; i++) {
		times[i] = 1000 + i * 10;
		other[i] = 1005 + i * 10;
		a[i] = i;
		c[i] = -i;
	}
	cr_assert_eq(vg_batch_add_points(b, "temp", tags, 1, "a", times, a, 100), 0);
	cr_assert_eq(vg_batch_add_points(b, "temp", tags, 1, "b", times, c, 100), 0);
	cr_assert_eq(vg_batch_block_count(b), 1);
	cr_assert_eq(vg_batch_add_points(b, "temp", tags, 1, "c", other, c, 100), 0);
	cr_assert_eq(vg_batch_block_count(b), 2);
	assert_valid(b);

	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	cr_assert_eq(env->write->n_blocks, 2);
	const Vigil__V1__WriteBlock *first = env->write->blocks[0], *second = env->write->blocks[1];
	cr_assert_eq(first->n_times, 100);
	cr_assert_eq(first->n_fields, 2);
	cr_assert_eq(memcmp(first->times, times, sizeof times), 0);
	cr_assert_eq(memcmp(field_of(first, "b")->values, c, sizeof c), 0);
	cr_assert_eq(second->n_fields, 1);
	cr_assert_eq(memcmp(second->times, other, sizeof other), 0);
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, a_lagging_field_is_sent_over_its_prefix_of_times)
{
	vg_batch_t *b = new_batch();
	for (int t = 1; t <= 3; t++)
		cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "long", t, t), 0);
	for (int t = 1; t <= 2; t++)
		cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "short", t, -t), 0);
	cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "tiny", 1, 100), 0);
	cr_assert_eq(vg_batch_block_count(b), 1);
	assert_valid(b);

	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	cr_assert_eq(env->write->n_blocks, 3);
	const Vigil__V1__WriteBlock *const *wb =
	    (const Vigil__V1__WriteBlock *const *)env->write->blocks;
	cr_assert_eq(wb[0]->n_times, 3);
	cr_assert_str_eq(wb[0]->fields[0]->name, "long");
	cr_assert_eq(wb[1]->n_times, 2);
	cr_assert_str_eq(wb[1]->fields[0]->name, "short");
	cr_assert_eq(wb[1]->fields[0]->values[1], -2);
	cr_assert_eq(wb[2]->n_times, 1);
	cr_assert_str_eq(wb[2]->fields[0]->name, "tiny");
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, repeated_timestamps_keep_add_order)
{
	vg_batch_t *b = new_batch();
	cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "f", 5, 1.0), 0);
	cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "f", 5, 2.0), 0);
	cr_assert_eq(vg_batch_add(b, "m", NULL, 0, "f", 4, 3.0), 0); /* out of order */
	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	const Vigil__V1__WriteBlock *wb = env->write->blocks[0];
	cr_assert_eq(wb->n_times, 3);
	cr_assert_eq(wb->times[0], 5);
	cr_assert_eq(wb->times[1], 5);
	cr_assert_eq(wb->times[2], 4);
	cr_assert_eq(wb->fields[0]->values[1], 2.0);
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, values_and_times_round_trip_bit_exact)
{
	uint64_t payload_nan = UINT64_C(0x7ff8000000000123);
	double special[6] = {0, -0.0, INFINITY, -INFINITY, 4.9406564584124654e-324, 0};
	memcpy(&special[5], &payload_nan, sizeof payload_nan);
	int64_t times[6] = {INT64_MIN, -1, 0, 1, INT64_MAX, 42};
	vg_batch_t *b = new_batch();
	cr_assert_eq(vg_batch_add_points(b, "m", NULL, 0, "f", times, special, 6), 0);
	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	const Vigil__V1__WriteBlock *wb = env->write->blocks[0];
	for (int i = 0; i < 6; i++) {
		cr_assert_eq(wb->times[i], times[i]);
		cr_assert(same_bits(wb->fields[0]->values[i], special[i]), "value %d changed", i);
	}
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, clear_empties_and_the_batch_is_reusable)
{
	vg_batch_t *b = new_batch();
	for (int i = 0; i < 40; i++) {
		char m[16];
		snprintf(m, sizeof m, "m%d", i);
		cr_assert_eq(vg_batch_add(b, m, NULL, 0, "f", i, i), 0);
	}
	vg_batch_clear(b);
	assert_valid(b);
	cr_assert_eq(vg_batch_points(b), 0);
	cr_assert_eq(vg_batch_block_count(b), 0);
	cr_assert_eq(vg_batch_add(b, "m1", NULL, 0, "f", 1, 1), 0);
	cr_assert_eq(vg_batch_block_count(b), 1);
	assert_valid(b);
	vg_batch_free(b);
	vg_batch_free(NULL);
	vg_batch_clear(NULL);
}

/* ---- validation ---------------------------------------------------------------- */

typedef struct bad_input {
	const char *measurement;
	vg_tag_t tags[3];
	size_t ntags;
	const char *field;
	const char *message; /* a substring of the expected errstr */
} bad_input_t;

Test(batch, bad_names_are_refused_naming_the_input_and_change_nothing)
{
	static const bad_input_t cases[] = {
	    {"9cpu",
	     {{"host", "a"}},
	     1,
	     "f",
	     "measurement '9cpu': invalid character '9' at byte 0"},
	    {"", {{0}}, 0, "f", "measurement '': empty"},
	    {NULL, {{0}}, 0, "f", "measurement '': empty"},
	    {"cpu", {{"ho st", "a"}}, 1, "f", "tag key 'ho st' in measurement 'cpu'"},
	    {"cpu", {{"host", ""}}, 1, "f", "tag value of 'host' in measurement 'cpu'"},
	    {"cpu", {{"host", "\xff"}}, 1, "f", "invalid UTF-8"},
	    {"cpu",
	     {{"host", "a"}, {"dc", "x"}, {"host", "b"}},
	     3,
	     "f",
	     "tag key 'host' in measurement 'cpu': appears twice"},
	    {"cpu", {{NULL, "a"}}, 1, "f", "tag key ''"},
	    {"cpu", {{"host", "a"}}, 1, "bad field", "field 'bad field' in measurement 'cpu'"},
	    {"cpu", {{"host", "a"}}, 1, NULL, "field '' in measurement 'cpu': empty"},
	};
	vg_batch_t *b = new_batch();
	const vg_tag_t good[] = {{"host", "a"}};
	cr_assert_eq(vg_batch_add(b, "cpu", good, 1, "f", 1, 1), 0);
	vg_buf_t before = VG_BUF_INIT, after = VG_BUF_INIT;
	encode(b, &before);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const bad_input_t *c = &cases[i];
		int64_t t = 2;
		double v = 2;
		int rc = vg_batch_add(b, c->measurement, c->tags, c->ntags, c->field, t, v);
		cr_assert_eq(rc, VG_EINVAL, "case %zu accepted", i);
		cr_assert(strstr(vg_batch_errstr(b), c->message),
		          "case %zu: errstr \"%s\" lacks \"%s\"", i, vg_batch_errstr(b),
		          c->message);
		rc = vg_batch_add_points(b, c->measurement, c->tags, c->ntags, c->field, &t, &v, 1);
		cr_assert_eq(rc, VG_EINVAL, "case %zu accepted by add_points", i);
		rc = vg_batch_add_points(b, c->measurement, c->tags, c->ntags, c->field, NULL, NULL,
		                         0);
		cr_assert_eq(rc, VG_EINVAL, "case %zu with n = 0 accepted", i);
		assert_valid(b);
		encode(b, &after);
		cr_assert_eq(after.len, before.len);
		cr_assert_eq(memcmp(after.data, before.data, after.len), 0,
		             "case %zu changed the batch", i);
	}
	cr_assert_eq(vg_batch_points(b), 1);
	vg_buf_release(&before);
	vg_buf_release(&after);
	vg_batch_free(b);
}

Test(batch, counts_and_null_arrays_are_refused)
{
	vg_batch_t *b = new_batch();
	vg_tag_t many[65];
	char keys[65][8];
	for (int i = 0; i < 65; i++) {
		snprintf(keys[i], sizeof keys[i], "k%d", i);
		many[i] = (vg_tag_t){keys[i], "v"};
	}
	cr_assert_eq(vg_batch_add(b, "cpu", many, 64, "f", 1, 1), 0); /* 64 is the limit */
	cr_assert_eq(vg_batch_add(b, "cpu", many, 65, "f", 1, 1), VG_EINVAL);
	cr_assert_str_eq(vg_batch_errstr(b), "measurement 'cpu': 65 tags, more than 64");
	cr_assert_eq(vg_batch_add(b, "cpu", NULL, 1, "f", 1, 1), VG_EINVAL);
	cr_assert(strstr(vg_batch_errstr(b), "tags is NULL"));
	cr_assert_eq(vg_batch_add_points(b, "cpu", NULL, 0, "f", NULL, NULL, 3), VG_EINVAL);
	cr_assert_eq(vg_batch_add(NULL, "cpu", NULL, 0, "f", 1, 1), VG_EINVAL);

	char long_name[257];
	memset(long_name, 'a', 256);
	long_name[256] = '\0';
	cr_assert_eq(vg_batch_add(b, "cpu", NULL, 0, long_name, 1, 1), VG_EINVAL);
	cr_assert(strstr(vg_batch_errstr(b), "256 bytes, more than 255"), "%s", vg_batch_errstr(b));
	long_name[255] = '\0';
	cr_assert_eq(vg_batch_add(b, "cpu", NULL, 0, long_name, 1, 1), 0);
	cr_assert_eq(vg_batch_points(b), 2);
	assert_valid(b);
	vg_batch_free(b);
}

/* ---- encoded size ------------------------------------------------------------- */

Test(batch, encoded_size_is_a_tight_upper_bound)
{
	vg_batch_t *b = new_batch();
	vg_test_rng_t rng = {UINT64_C(0x9e3779b97f4a7c15)};
	size_t len;
	Vigil__V1__Envelope *env = roundtrip(b, &len);
	vg_frame_free_envelope(env);
	cr_assert(vg_batch_encoded_size(b) >= len && vg_batch_encoded_size(b) <= len + 11);
	for (int round = 0; round < 300; round++) {
		char m[32], v[32];
		snprintf(m, sizeof m, "measurement_%d", (int)vg_test_below(&rng, 5));
		snprintf(v, sizeof v, "value-%d", (int)vg_test_below(&rng, 300));
		vg_tag_t tag = {"tag", v};
		int64_t t = (int64_t)vg_test_below(&rng, 1000);
		cr_assert_eq(
		    vg_batch_add(b, m, &tag, 1, vg_test_below(&rng, 2) ? "x" : "yy", t, 1.5), 0);
		env = roundtrip(b, &len);
		size_t estimate = vg_batch_encoded_size(b);
		cr_assert(estimate >= len, "estimate %zu below the real %zu", estimate, len);
		if (env->write->n_blocks == vg_batch_block_count(b))
			cr_assert(estimate <= len + 11, "estimate %zu vs real %zu", estimate, len);
		vg_frame_free_envelope(env);
	}
	vg_batch_free(b);
}

/* ---- property test against a reference ------------------------------------------ */

#define REF_MAX 4096

typedef struct ref_point {
	char series[96]; /* "measurement,k=v,...#field" with tags sorted */
	int64_t time;
	double value;
	size_t seq;
} ref_point_t;

typedef struct reference {
	ref_point_t points[REF_MAX];
	size_t n;
} reference_t;

static const char *const measurements[] = {"cpu", "mem"};
static const char *const fields[] = {"a", "b", "c"};
/* Three tag sets, each given in two orders. */
static const vg_tag_t tagsets[3][2][2] = {
    {{{"host", "h1"}, {"dc", "eu"}}, {{"dc", "eu"}, {"host", "h1"}}},
    {{{"host", "h2"}, {"dc", "eu"}}, {{"dc", "eu"}, {"host", "h2"}}},
    {{{"host", "h1"}, {"dc", "us"}}, {{"dc", "us"}, {"host", "h1"}}},
};

static void series_name(char *out, size_t len, const char *m, int tagset, const char *field)
{
	const vg_tag_t *t = tagsets[tagset][1]; /* the sorted order */
	snprintf(out, len, "%s,%s=%s,%s=%s#%s", m, t[0].key, t[0].value, t[1].key, t[1].value,
	         field);
}

static void ref_add(reference_t *r, const char *m, int tagset, const char *field, int64_t t,
                    double v)
{
	cr_assert_lt(r->n, REF_MAX);
	ref_point_t *p = &r->points[r->n];
	series_name(p->series, sizeof p->series, m, tagset, field);
	p->time = t;
	p->value = v;
	p->seq = r->n++;
}

static int by_series_then_seq(const void *pa, const void *pb)
{
	const ref_point_t *a = pa, *b = pb;
	int c = strcmp(a->series, b->series);
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Flattens the decoded Write into points in the order a server applies them. */
static void flatten(const Vigil__V1__Write *w, reference_t *out)
{
	out->n = 0;
	for (size_t i = 0; i < w->n_blocks; i++) {
		const Vigil__V1__WriteBlock *wb = w->blocks[i];
		cr_assert_eq(wb->n_tags, 2);
		for (size_t f = 0; f < wb->n_fields; f++)
			for (size_t j = 0; j < wb->n_times; j++) {
				cr_assert_lt(out->n, REF_MAX);
				ref_point_t *p = &out->points[out->n];
				snprintf(p->series, sizeof p->series, "%s,%s=%s,%s=%s#%s",
				         wb->measurement, wb->tags[0]->key, wb->tags[0]->value,
				         wb->tags[1]->key, wb->tags[1]->value, wb->fields[f]->name);
				p->time = wb->times[j];
				p->value = wb->fields[f]->values[j];
				p->seq = out->n++;
			}
	}
}

Test(batch, random_adds_encode_every_point_in_order)
{
	static reference_t want, got;
	for (uint64_t seed = 1; seed <= 150; seed++) {
		vg_test_rng_t rng = {seed * UINT64_C(0x2545F4914F6CDD1D)};
		vg_batch_t *b = new_batch();
		want.n = 0;
		double next_value = 0;
		for (int op = 0; op < 40; op++) {
			const char *m = measurements[vg_test_below(&rng, 2)];
			int ts = (int)vg_test_below(&rng, 3);
			const vg_tag_t *tags = tagsets[ts][vg_test_below(&rng, 2)];
			int64_t base = (int64_t)vg_test_below(&rng, 6);
			int64_t times[8];
			double values[8];
			size_t n = 1 + vg_test_below(&rng, 8);
			for (size_t i = 0; i < n; i++) {
				/* Mostly increasing, sometimes repeated or going back. */
				times[i] = base + (int64_t)i - (vg_test_below(&rng, 6) == 0);
				values[i] = next_value++;
			}
			switch (vg_test_below(&rng, 4)) {
			case 0: { /* one point */
				const char *f = fields[vg_test_below(&rng, 3)];
				cr_assert_eq(vg_batch_add(b, m, tags, 2, f, times[0], values[0]),
				             0);
				ref_add(&want, m, ts, f, times[0], values[0]);
				break;
			}
			case 1: { /* one series, several points */
				const char *f = fields[vg_test_below(&rng, 3)];
				cr_assert_eq(
				    vg_batch_add_points(b, m, tags, 2, f, times, values, n), 0);
				for (size_t i = 0; i < n; i++)
					ref_add(&want, m, ts, f, times[i], values[i]);
				break;
			}
			case 2: /* row by row */
				for (size_t i = 0; i < n; i++)
					for (int f = 0; f < 3; f++) {
						double v = values[i] + f / 4.0;
						cr_assert_eq(vg_batch_add(b, m, tags, 2, fields[f],
						                          times[i], v),
						             0);
						ref_add(&want, m, ts, fields[f], times[i], v);
					}
				break;
			default: /* column by column */
				for (int f = 0; f < 3; f++) {
					cr_assert_eq(vg_batch_add_points(b, m, tags, 2, fields[f],
					                                 times, values, n),
					             0);
					for (size_t i = 0; i < n; i++)
						ref_add(&want, m, ts, fields[f], times[i],
						        values[i]);
				}
			}
			assert_valid(b);
		}
		cr_assert_eq(vg_batch_points(b), want.n);
		size_t len;
		Vigil__V1__Envelope *env = roundtrip(b, &len);
		cr_assert_geq(vg_batch_encoded_size(b), len);
		flatten(env->write, &got);
		vg_frame_free_envelope(env);
		cr_assert_eq(got.n, want.n, "seed %llu: %zu points encoded, %zu added",
		             (unsigned long long)seed, got.n, want.n);
		qsort(want.points, want.n, sizeof want.points[0], by_series_then_seq);
		qsort(got.points, got.n, sizeof got.points[0], by_series_then_seq);
		for (size_t i = 0; i < want.n; i++) {
			const ref_point_t *w = &want.points[i], *g = &got.points[i];
			cr_assert_str_eq(g->series, w->series, "seed %llu point %zu",
			                 (unsigned long long)seed, i);
			cr_assert(g->time == w->time && same_bits(g->value, w->value),
			          "seed %llu: series %s point %zu differs",
			          (unsigned long long)seed, w->series, i);
		}
		vg_batch_free(b);
	}
}

/* ---- rows ------------------------------------------------------------------------ */

/* "f0".."f1199": field names for wide rows. */
#define WIDE 1200
static char wide_text[WIDE][8];
static const char *wide[WIDE];

static void init_wide(void)
{
	for (int i = 0; i < WIDE; i++) {
		snprintf(wide_text[i], sizeof wide_text[i], "f%d", i);
		wide[i] = wide_text[i];
	}
}

static void assert_same_encoding(const vg_batch_t *a, const vg_batch_t *b, const char *what)
{
	vg_buf_t ea = VG_BUF_INIT, eb = VG_BUF_INIT;
	encode(a, &ea);
	encode(b, &eb);
	cr_assert(ea.len == eb.len && !memcmp(ea.data, eb.data, ea.len),
	          "%s: encodings differ (%zu and %zu bytes)", what, ea.len, eb.len);
	vg_buf_release(&ea);
	vg_buf_release(&eb);
}

Test(batch, a_row_per_line_builds_one_block_per_series)
{
	init_wide();
	vg_batch_t *b = new_batch();
	const vg_tag_t h1[] = {{"host", "h1"}, {"dc", "eu"}};
	const vg_tag_t h2[] = {{"dc", "eu"}, {"host", "h2"}};
	double values[10];
	for (int t = 0; t < 50; t++) {
		for (int f = 0; f < 10; f++)
			values[f] = t * 10 + f;
		cr_assert_eq(vg_batch_add_row(b, "cpu", h1, 2, wide, values, 10, t), 0);
		cr_assert_eq(vg_batch_add_row(b, "cpu", h2, 2, wide, values, 10, t), 0);
		assert_valid(b);
	}
	cr_assert_eq(vg_batch_points(b), 1000);
	cr_assert_eq(vg_batch_block_count(b), 2);
	Vigil__V1__Envelope *env = roundtrip(b, NULL);
	cr_assert_eq(env->write->n_blocks, 2);
	for (size_t i = 0; i < 2; i++) {
		const Vigil__V1__WriteBlock *wb = env->write->blocks[i];
		cr_assert_eq(wb->n_times, 50);
		cr_assert_eq(wb->n_fields, 10);
		cr_assert_str_eq(wb->tags[1]->value, i ? "h2" : "h1");
		for (int f = 0; f < 10; f++) {
			cr_assert_str_eq(wb->fields[f]->name, wide[f]);
			cr_assert_eq(wb->fields[f]->values[49], 490 + f);
		}
	}
	vg_frame_free_envelope(env);
	vg_batch_free(b);
}

Test(batch, rows_build_the_same_batch_as_per_field_adds)
{
	static const char *const names[] = {"a", "b", "c", "d"};
	for (uint64_t seed = 1; seed <= 200; seed++) {
		vg_test_rng_t rng = {seed * UINT64_C(0x9E3779B97F4A7C15)};
		vg_batch_t *rows = new_batch(), *singles = new_batch();
		int64_t t = 0;
		double next_value = 0;
		for (int op = 0; op < 60; op++) {
			const char *m = measurements[vg_test_below(&rng, 2)];
			const vg_tag_t *tags =
			    tagsets[vg_test_below(&rng, 3)][vg_test_below(&rng, 2)];
			/* Mostly forward, sometimes repeated or going back. */
			t += (int64_t)vg_test_below(&rng, 3) - (vg_test_below(&rng, 8) == 0) * 3;
			/* A subset of the fields, in order or shuffled. */
			const char *row[4] = {names[0], names[1], names[2], names[3]};
			if (vg_test_below(&rng, 2))
				for (size_t i = 3; i > 0; i--) {
					size_t j = vg_test_below(&rng, i + 1);
					const char *x = row[i];
					row[i] = row[j];
					row[j] = x;
				}
			size_t first = vg_test_below(&rng, 4);
			size_t n = 1 + vg_test_below(&rng, 4 - first);
			double values[4];
			for (size_t i = 0; i < n; i++)
				values[i] = next_value++;
			if (vg_test_below(&rng, 6) == 0) {
				/* A lone per-field add, through both, to make fields lag. */
				cr_assert_eq(
				    vg_batch_add(rows, m, tags, 2, row[first], t, values[0]), 0);
				cr_assert_eq(
				    vg_batch_add(singles, m, tags, 2, row[first], t, values[0]), 0);
			} else {
				cr_assert_eq(
				    vg_batch_add_row(rows, m, tags, 2, row + first, values, n, t),
				    0, "seed %llu op %d: %s", (unsigned long long)seed, op,
				    vg_batch_errstr(rows));
				for (size_t i = 0; i < n; i++)
					cr_assert_eq(vg_batch_add(singles, m, tags, 2,
					                          row[first + i], t, values[i]),
					             0);
			}
			assert_valid(rows);
			cr_assert_eq(vg_batch_points(rows), vg_batch_points(singles));
			cr_assert_eq(vg_batch_block_count(rows), vg_batch_block_count(singles),
			             "seed %llu op %d", (unsigned long long)seed, op);
		}
		assert_same_encoding(rows, singles, "rows vs per-field adds");
		vg_batch_free(rows);
		vg_batch_free(singles);
	}
}

typedef struct bad_row {
	const char *measurement;
	vg_tag_t tags[2];
	size_t ntags;
	const char *fields[3];
	size_t nfields;
	const char *message; /* a substring of the expected errstr */
} bad_row_t;

Test(batch, bad_rows_are_refused_naming_the_input_and_change_nothing)
{
	static const bad_row_t cases[] = {
	    {"9cpu",
	     {{"host", "a"}},
	     1,
	     {"f"},
	     1,
	     "measurement '9cpu': invalid character '9' at byte 0"},
	    {NULL, {{0}}, 0, {"f"}, 1, "measurement '': empty"},
	    {"cpu", {{"ho st", "a"}}, 1, {"f"}, 1, "tag key 'ho st' in measurement 'cpu'"},
	    {"cpu",
	     {{"host", "a"}, {"host", "b"}},
	     2,
	     {"f"},
	     1,
	     "tag key 'host' in measurement 'cpu': appears twice"},
	    /* A bad field anywhere in the row is named. */
	    {"cpu",
	     {{"host", "a"}},
	     1,
	     {"f", "g", "bad field"},
	     3,
	     "field 'bad field' in measurement 'cpu'"},
	    {"cpu", {{"host", "a"}}, 1, {"f", NULL}, 2, "field '' in measurement 'cpu': empty"},
	    /* Repeats: of new fields, and of fields the open block already
	     * holds (which are not validated again), adjacent or not. */
	    {"cpu",
	     {{"host", "a"}},
	     1,
	     {"x", "y", "x"},
	     3,
	     "field 'x' in measurement 'cpu': appears twice"},
	    {"cpu",
	     {{"host", "a"}},
	     1,
	     {"f", "f"},
	     2,
	     "field 'f' in measurement 'cpu': appears twice"},
	    {"cpu",
	     {{"host", "a"}},
	     1,
	     {"g", "h", "g"},
	     3,
	     "field 'g' in measurement 'cpu': appears twice"},
	    {"cpu",
	     {{"host", "b"}},
	     1,
	     {"f", "g", "f"},
	     3,
	     "field 'f' in measurement 'cpu': appears twice"},
	    {"cpu", {{"host", "a"}}, 1, {NULL}, 0, "measurement 'cpu': no fields"},
	};
	vg_batch_t *b = new_batch();
	const vg_tag_t good[] = {{"host", "a"}};
	const char *const known[] = {"f", "g", "h"};
	const double values[3] = {1, 2, 3};
	cr_assert_eq(vg_batch_add_row(b, "cpu", good, 1, known, values, 3, 1), 0);
	vg_buf_t before = VG_BUF_INIT, after = VG_BUF_INIT;
	encode(b, &before);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const bad_row_t *c = &cases[i];
		for (int64_t t = 1; t <= 2; t++) { /* at the block's time and at a new one */
			int rc = vg_batch_add_row(b, c->measurement, c->tags, c->ntags, c->fields,
			                          values, c->nfields, t);
			cr_assert_eq(rc, VG_EINVAL, "case %zu accepted", i);
			cr_assert(strstr(vg_batch_errstr(b), c->message),
			          "case %zu: errstr \"%s\" lacks \"%s\"", i, vg_batch_errstr(b),
			          c->message);
			assert_valid(b);
			encode(b, &after);
			cr_assert(after.len == before.len &&
			              !memcmp(after.data, before.data, after.len),
			          "case %zu changed the batch", i);
		}
	}
	cr_assert_str_eq(vg_batch_errstr(b), "measurement 'cpu': no fields");

	/* Counts and NULL arrays. */
	cr_assert_eq(vg_batch_add_row(b, "cpu", good, 1, NULL, values, 2, 1), VG_EINVAL);
	cr_assert_str_eq(vg_batch_errstr(b), "fields or values is NULL but nfields is 2");
	cr_assert_eq(vg_batch_add_row(b, "cpu", good, 1, known, NULL, 2, 1), VG_EINVAL);
	cr_assert_eq(vg_batch_add_row(b, "cpu", NULL, 1, known, values, 2, 1), VG_EINVAL);
	cr_assert(strstr(vg_batch_errstr(b), "tags is NULL"));
	vg_tag_t many[65];
	for (int i = 0; i < 65; i++)
		many[i] = (vg_tag_t){"k", "v"};
	cr_assert_eq(vg_batch_add_row(b, "cpu", many, 65, known, values, 1, 1), VG_EINVAL);
	cr_assert_str_eq(vg_batch_errstr(b), "measurement 'cpu': 65 tags, more than 64");
	cr_assert_eq(vg_batch_add_row(NULL, "cpu", good, 1, known, values, 1, 1), VG_EINVAL);
	encode(b, &after);
	cr_assert(after.len == before.len && !memcmp(after.data, before.data, after.len));

	/* A good row after all that clears the message. */
	cr_assert_eq(vg_batch_add_row(b, "cpu", good, 1, known, values, 3, 2), 0);
	cr_assert_str_eq(vg_batch_errstr(b), "");
	cr_assert_eq(vg_batch_points(b), 6);
	vg_buf_release(&before);
	vg_buf_release(&after);
	vg_batch_free(b);
}

Test(batch, repeats_are_found_in_rows_of_any_width_and_order)
{
	init_wide();
	double values[WIDE];
	for (int i = 0; i < WIDE; i++)
		values[i] = i;
	/* Blocks narrow enough for the bitmap and too wide for it. */
	static const size_t widths[] = {100, WIDE};
	for (size_t w = 0; w < 2; w++) {
		size_t n = widths[w];
		vg_batch_t *b = new_batch();
		cr_assert_eq(vg_batch_add_row(b, "m", NULL, 0, wide, values, n, 1), 0);
		assert_valid(b);
		const char *last = wide[n - 1];
		/* Known fields out of order: a repeat is refused, naming it... */
		const char *dup[] = {last, wide[3], last};
		cr_assert_eq(vg_batch_add_row(b, "m", NULL, 0, dup, values, 3, 2), VG_EINVAL);
		char want[64];
		snprintf(want, sizeof want, "field '%s' in measurement 'm': appears twice", last);
		cr_assert_str_eq(vg_batch_errstr(b), want);
		/* ...and without repeats the row is added. */
		const char *shuffled[] = {last, wide[3], wide[0]};
		cr_assert_eq(vg_batch_add_row(b, "m", NULL, 0, shuffled, values, 3, 2), 0);
		cr_assert_eq(vg_batch_points(b), n + 3);
		/* A whole row in reverse order. */
		const char **reversed = malloc(n * sizeof *reversed);
		cr_assert_not_null(reversed);
		for (size_t i = 0; i < n; i++)
			reversed[i] = wide[n - 1 - i];
		cr_assert_eq(vg_batch_add_row(b, "m", NULL, 0, reversed, values, n, 3), 0);
		reversed[n / 2] = reversed[0];
		cr_assert_eq(vg_batch_add_row(b, "m", NULL, 0, reversed, values, n, 4), VG_EINVAL);
		free(reversed);
		assert_valid(b);
		cr_assert_eq(vg_batch_points(b), 2 * n + 3);
		vg_batch_free(b);
	}
}

/* ---- allocation failure ------------------------------------------------------------ */

/* A fixed script touching every allocation: 20 groups (the table grows),
 * new fields, lagging fields, new blocks, long columns, and calls that
 * extend an existing block and fail half-way. */
#define STEPS 32

static int run_step(vg_batch_t *b, int step)
{
	char m[16];
	snprintf(m, sizeof m, "m%d", step % 20);
	const vg_tag_t tags[] = {{"host", step % 3 ? "a" : "b"}, {"dc", "eu"}};
	int64_t times[300];
	double values[300];
	for (int i = 0; i < 300; i++) {
		times[i] = step * 7 + i;
		values[i] = step + i / 8.0;
	}
	if (step % 5 == 4) /* extends one block by 300 times: growth mid-call */
		return vg_batch_add_points(b, "ext", NULL, 0, "f", times, values, 300);
	switch (step % 4) {
	case 0:
		return vg_batch_add(b, m, tags, 2, "f", times[0], values[0]);
	case 1:
		return vg_batch_add_points(b, "cpu", tags, 2, step % 8 == 1 ? "x" : "y", times,
		                           values, 300);
	case 2:
		return vg_batch_add_points(b, "cpu", tags, 2, "z", times, values, 1 + step % 5);
	default:
		return vg_batch_add(b, "cpu", tags, 1, "w", times[step % 3], values[0]);
	}
}

static bool same_encoding(const vg_batch_t *b, const vg_buf_t *want)
{
	vg_buf_t got = VG_BUF_INIT;
	encode(b, &got);
	bool same = got.len == want->len && !memcmp(got.data, want->data, got.len);
	vg_buf_release(&got);
	return same;
}

Test(batch, every_allocation_failure_leaves_the_batch_unchanged)
{
	vg_buf_t ref[STEPS + 1];
	vg_batch_t *r = new_batch();
	for (int i = 0; i <= STEPS; i++) {
		vg_buf_init(&ref[i]);
		encode(r, &ref[i]);
		if (i < STEPS)
			cr_assert_eq(run_step(r, i), 0);
	}
	vg_batch_free(r);

	bool failed = true;
	long k;
	for (k = 0; failed; k++) {
		failed = false;
		vg_batch_t *b = NULL;
		vg_alloc_fail_after(k);
		int rc = vg_batch_new(&b);
		if (rc) {
			vg_alloc_fail_after(-1);
			cr_assert_eq(rc, VG_ENOMEM);
			cr_assert_null(b);
			failed = true;
			continue;
		}
		for (int i = 0; i < STEPS; i++) {
			rc = run_step(b, i);
			if (!rc)
				continue;
			vg_alloc_fail_after(-1);
			cr_assert_eq(rc, VG_ENOMEM, "k=%ld step %d: %s", k, i, vg_strerror(rc));
			failed = true;
			assert_valid(b);
			cr_assert(same_encoding(b, &ref[i]), "k=%ld: step %d changed the batch", k,
			          i);
			cr_assert_eq(run_step(b, i), 0, "k=%ld: step %d fails on retry", k, i);
		}
		vg_alloc_fail_after(-1);
		cr_assert(same_encoding(b, &ref[STEPS]), "k=%ld: final batch differs", k);

		/* Encoding under failure too. */
		vg_write_msg_t m;
		vg_alloc_fail_after(k % 8);
		rc = vg_batch_to_write(b, &m);
		vg_alloc_fail_after(-1);
		if (rc)
			cr_assert_eq(rc, VG_ENOMEM);
		else
			vg_write_msg_release(&m);
		vg_batch_free(b);
		assert_no_leaks();
	}
	cr_assert_gt(k, 20, "the script made only %ld allocations", k);
	for (int i = 0; i <= STEPS; i++)
		vg_buf_release(&ref[i]);
	assert_no_leaks();
}

/* The same for rows: new groups (the table grows), new fields joining, rows
 * extending a block in order and out of order, a row of 80 fields (checked
 * with allocated arrays), a row that starts in one block and opens another
 * half-way, and other adders in between. */
#define ROW_STEPS 40

static int run_row_step(vg_batch_t *b, int step)
{
	char m[16];
	snprintf(m, sizeof m, "m%d", step);
	const vg_tag_t tags[] = {{"host", step % 3 ? "a" : "b"}, {"dc", "eu"}};
	const vg_tag_t swapped[] = {{"dc", "eu"}, {"host", "a"}};
	static const char *const lag[] = {"a", "b"};
	const char *some[] = {wide[9], wide[0], wide[5]};
	double values[WIDE];
	int64_t times[300];
	for (int i = 0; i < 300; i++) {
		times[i] = 1000 + step * 300 + i;
		values[i] = step + i / 8.0;
	}
	switch (step % 10) {
	case 0:
		return vg_batch_add_row(b, m, tags, 2, wide, values, 3, step);
	case 1:
		return vg_batch_add_row(b, m, swapped, 2, wide + 1, values, 2, step);
	case 2:
		return vg_batch_add_row(b, "cpu", tags, 2, wide, values, 10, step);
	case 3:
		return vg_batch_add_row(b, "cpu", tags, 2, some, values, 3, step);
	case 4:
	case 8:
		return vg_batch_add_row(b, "wide", NULL, 0, wide, values, 80, step);
	case 5: /* a and b at one time */
		return vg_batch_add_row(b, "lag", NULL, 0, lag, values, 2, 100 + step);
	case 6: /* a moves on, b lags */
		return vg_batch_add(b, "lag", NULL, 0, "a", 101 + step, values[0]);
	case 7: /* a moves on again in the block; b cannot and opens a new one */
		return vg_batch_add_row(b, "lag", NULL, 0, lag, values, 2, 102 + step);
	default:
		return vg_batch_add_points(b, "cpu", tags, 2, "f3", times, values, 300);
	}
}

Test(batch, every_allocation_failure_in_a_row_leaves_the_batch_unchanged)
{
	init_wide();
	vg_buf_t ref[ROW_STEPS + 1];
	size_t points[ROW_STEPS + 1];
	vg_batch_t *r = new_batch();
	for (int i = 0; i <= ROW_STEPS; i++) {
		vg_buf_init(&ref[i]);
		encode(r, &ref[i]);
		points[i] = vg_batch_points(r);
		if (i < ROW_STEPS)
			cr_assert_eq(run_row_step(r, i), 0, "step %d: %s", i, vg_batch_errstr(r));
		assert_valid(r);
	}
	/* The script does what it says: the lagging row spans two blocks. */
	cr_assert_gt(vg_batch_block_count(r), 13);
	vg_batch_free(r);

	bool failed = true;
	long k;
	for (k = 0; failed; k++) {
		failed = false;
		vg_batch_t *b = new_batch();
		vg_alloc_fail_after(k);
		for (int i = 0; i < ROW_STEPS; i++) {
			int rc = run_row_step(b, i);
			if (!rc)
				continue;
			vg_alloc_fail_after(-1);
			cr_assert_eq(rc, VG_ENOMEM, "k=%ld step %d: %s", k, i, vg_strerror(rc));
			cr_assert(strstr(vg_batch_errstr(b), "out of memory"), "k=%ld step %d: %s",
			          k, i, vg_batch_errstr(b));
			failed = true;
			assert_valid(b);
			cr_assert_eq(vg_batch_points(b), points[i], "k=%ld step %d", k, i);
			cr_assert(same_encoding(b, &ref[i]), "k=%ld: step %d changed the batch", k,
			          i);
			cr_assert_eq(run_row_step(b, i), 0, "k=%ld: step %d fails on retry", k, i);
			vg_alloc_fail_after(k);
		}
		vg_alloc_fail_after(-1);
		cr_assert(same_encoding(b, &ref[ROW_STEPS]), "k=%ld: final batch differs", k);
		vg_batch_free(b);
		if (k % 16 == 0) /* a leak check per run is slow under ASan */
			assert_no_leaks();
	}
	cr_assert_gt(k, 100, "the script made only %ld allocations", k);
	for (int i = 0; i <= ROW_STEPS; i++)
		vg_buf_release(&ref[i]);
	assert_no_leaks();
}
