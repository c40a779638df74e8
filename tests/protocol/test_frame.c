/*
 * test_frame.c — protocol/frame.c, wire.c and errors.c: framing, parsing,
 * diagnostics, Error frames and the error-code mapping.
 *
 * Every parse here reads from a heap block of exactly the bytes it is given
 * (or from the end of an mmap'd page), so an over-read is an ASan or SIGSEGV
 * failure, not silent luck.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "proto_private.h"
#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_proto.h"
#include "vg_test.h"

/* ---- helpers -------------------------------------------------------------- */

/* Fails if anything allocated so far is no longer reachable.  Only
 * LeakSanitizer can say so reliably (glibc's own counters include freed
 * chunks parked in per-thread caches), so this checks in the VG_SANITIZE
 * build and is a no-op otherwise. */
static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

/* Parses from an exact-size heap copy of data[0..len). */
static int parse_exact(const uint8_t *data, size_t len, size_t max_frame, Vigil__V1__Envelope **out,
                       size_t *consumed)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	if (len)
		memcpy(copy, data, len);
	int rc = vg_frame_parse(copy, len, max_frame, out, consumed);
	memset(copy, 0xAA, len); /* the envelope must not point into the input */
	free(copy);
	return rc;
}

static void pack_envelope(const Vigil__V1__Envelope *env, vg_buf_t *b)
{
	size_t n = vigil__v1__envelope__get_packed_size(env);
	cr_assert_eq(vg_buf_reserve(b, n), 0);
	cr_assert_eq(vigil__v1__envelope__pack(env, b->data + b->len), n);
	b->len += n;
}

/* The envelopes are equal if they pack to the same bytes (protobuf-c packs
 * deterministically, fields in number order). */
static void assert_same_envelope(const Vigil__V1__Envelope *a, const Vigil__V1__Envelope *b)
{
	vg_buf_t pa = VG_BUF_INIT, pb = VG_BUF_INIT;
	pack_envelope(a, &pa);
	pack_envelope(b, &pb);
	cr_assert_eq(pa.len, pb.len, "packed sizes differ: %zu vs %zu", pa.len, pb.len);
	cr_assert_eq(memcmp(pa.data, pb.data, pa.len), 0, "packed bytes differ");
	vg_buf_release(&pa);
	vg_buf_release(&pb);
}

/* Protobuf wire-format writers for hand-made frames. */
static void pb_varint(vg_buf_t *b, uint64_t v)
{
	cr_assert_eq(vg_buf_put_uvarint(b, v), 0);
}
static void pb_key(vg_buf_t *b, unsigned field, unsigned wt)
{
	pb_varint(b, (uint64_t)field << 3 | wt);
}
static void pb_fixed64(vg_buf_t *b, unsigned field, uint64_t v)
{
	pb_key(b, field, 1);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(vg_buf_putc(b, (uint8_t)(v >> (8 * i))), 0);
}
static void pb_bytes(vg_buf_t *b, unsigned field, const void *p, size_t n)
{
	pb_key(b, field, 2);
	pb_varint(b, n);
	cr_assert_eq(vg_buf_append(b, p, n), 0);
}
/* Wraps payload into a frame. */
static void frame_of(vg_buf_t *frame, const vg_buf_t *payload)
{
	cr_assert_eq(vg_buf_put_be32(frame, (uint32_t)payload->len), 0);
	cr_assert_eq(vg_buf_append(frame, payload->data, payload->len), 0);
}

/* ---- one envelope of every kind -------------------------------------------- */

static uint64_t bits_of(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

static double double_of(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

#define KIND_COUNT 18

/* Fills envs[0..KIND_COUNT) with one envelope of each body kind, all with
 * non-default contents.  Everything lives in static storage. */
static void make_all(Vigil__V1__Envelope *envs)
{
	static Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	static Vigil__V1__HelloOk hello_ok = VIGIL__V1__HELLO_OK__INIT;
	static Vigil__V1__Tag tag_host = VIGIL__V1__TAG__INIT, tag_ward = VIGIL__V1__TAG__INIT;
	static Vigil__V1__Tag *tags[2];
	static int64_t times[4] = {INT64_MIN, -1, 0, INT64_MAX};
	static double values_a[4], values_b[4];
	static Vigil__V1__WriteField field_a = VIGIL__V1__WRITE_FIELD__INIT,
	                             field_b = VIGIL__V1__WRITE_FIELD__INIT;
	static Vigil__V1__WriteField *fields[2];
	static Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT,
	                             block2 = VIGIL__V1__WRITE_BLOCK__INIT;
	static Vigil__V1__WriteBlock *blocks[2];
	static Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	static Vigil__V1__WriteOk write_ok = VIGIL__V1__WRITE_OK__INIT;
	static Vigil__V1__Query query = VIGIL__V1__QUERY__INIT;
	static Vigil__V1__ResultSet result_set = VIGIL__V1__RESULT_SET__INIT;
	static char *columns[3] = {"time", "max_hr", "note"};
	static Vigil__V1__ColumnType types[3] = {VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME,
	                                         VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_FLOAT,
	                                         VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_STRING};
	static Vigil__V1__Column col_f = VIGIL__V1__COLUMN__INIT, col_s = VIGIL__V1__COLUMN__INIT;
	static Vigil__V1__Column *cols[2];
	static double floats[3] = {121.5, 0, -3};
	static char *strings[3] = {"a", "", "ünïcödé ✓"};
	static uint8_t nulls[1] = {0x02};
	static int64_t row_times[3] = {1000, 2000, 3000};
	static Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
	static Vigil__V1__ResultEnd result_end = VIGIL__V1__RESULT_END__INIT;
	static Vigil__V1__Error error = VIGIL__V1__ERROR__INIT;
	static Vigil__V1__Pong pong = VIGIL__V1__PONG__INIT;
	static Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	static Vigil__V1__Subscribe subscribe = VIGIL__V1__SUBSCRIBE__INIT;
	static Vigil__V1__SubscribeOk subscribe_ok = VIGIL__V1__SUBSCRIBE_OK__INIT;
	static char *tag_keys[1] = {"ward"};
	static Vigil__V1__Push push = VIGIL__V1__PUSH__INIT;
	static Vigil__V1__SubscriptionEnd subscription_end = VIGIL__V1__SUBSCRIPTION_END__INIT;
	static Vigil__V1__Error overflow = VIGIL__V1__ERROR__INIT;
	static Vigil__V1__Unsubscribe unsubscribe = VIGIL__V1__UNSUBSCRIBE__INIT;
	static Vigil__V1__Cancel cancel = VIGIL__V1__CANCEL__INIT;

	hello.protocol_version = VG_PROTOCOL_VERSION;
	hello.client_name = "test_frame";
	hello.user = "nurse";
	hello.password = "s3cret";
	hello_ok.protocol_version = VG_PROTOCOL_VERSION;
	hello_ok.server_version = "0.1.0";
	hello_ok.max_frame = VG_DEFAULT_MAX_FRAME;

	tag_host.key = "host";
	tag_host.value = "server01";
	tag_ward.key = "ward";
	tag_ward.value = "Intensivstation Süd";
	tags[0] = &tag_host;
	tags[1] = &tag_ward;
	values_a[0] = double_of(UINT64_C(0x7ff8000000000123)); /* NaN with payload */
	values_a[1] = -0.0;
	values_a[2] = INFINITY;
	values_a[3] = -INFINITY;
	values_b[0] = 1.5;
	values_b[1] = 5e-324;
	values_b[2] = 1.7976931348623157e308;
	values_b[3] = -2.25;
	field_a.name = "heart_rate";
	field_a.n_values = 4;
	field_a.values = values_a;
	field_b.name = "spo2";
	field_b.n_values = 4;
	field_b.values = values_b;
	fields[0] = &field_a;
	fields[1] = &field_b;
	block.measurement = "vitals";
	block.n_tags = 2;
	block.tags = tags;
	block.n_times = 4;
	block.times = times;
	block.n_fields = 2;
	block.fields = fields;
	block2 = block;
	block2.measurement = "vitals_copy";
	block2.n_tags = 0;
	block2.tags = NULL;
	blocks[0] = &block;
	blocks[1] = &block2;
	write.n_blocks = 2;
	write.blocks = blocks;
	write_ok.points = 16;
	write_ok.series = 4;
	query.statement = "SELECT max(heart_rate) FROM vitals GROUP BY time(1m), ward";
	result_set.name = "vitals";
	result_set.n_tags = 1;
	result_set.tags = &tags[1];
	result_set.n_columns = 3;
	result_set.columns = columns;
	result_set.n_types = 3;
	result_set.types = types;
	result_set.has_time = 1;
	col_f.n_floats = 3;
	col_f.floats = floats;
	col_f.nulls.len = 1;
	col_f.nulls.data = nulls;
	col_s.n_strings = 3;
	col_s.strings = strings;
	cols[0] = &col_f;
	cols[1] = &col_s;
	rows.n_times = 3;
	rows.times = row_times;
	rows.n_columns = 2;
	rows.columns = cols;
	result_end.rows = 3;
	result_end.points_scanned = UINT64_MAX;
	result_end.elapsed_ns = 123456789;
	error.code = VIGIL__V1__ERROR_CODE__ERROR_SYNTAX;
	error.message = "error: line 1, column 23: expected FROM, found 'FORM'";
	error.line = 1;
	error.column = 23;
	error.fatal = 0;
	ping.nonce = UINT64_MAX;
	pong.nonce = 42;
	subscribe.statement = "SUBSCRIBE SELECT heart_rate FROM vitals WHERE heart_rate > 120";
	subscribe_ok.name = "vitals";
	subscribe_ok.n_tag_keys = 1;
	subscribe_ok.tag_keys = tag_keys;
	subscribe_ok.n_columns = 3;
	subscribe_ok.columns = columns;
	subscribe_ok.n_types = 3;
	subscribe_ok.types = types;
	push.n_tags = 1;
	push.tags = &tags[1];
	push.rows = &rows;
	push.update = 1;
	overflow.code = VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW;
	overflow.message = "subscription output buffer overflowed";
	subscription_end.error = &overflow;
	unsubscribe.subscription_id = 7;
	cancel.request_id = 8;

	struct {
		Vigil__V1__Envelope__BodyCase body;
		void *message;
	} kinds[KIND_COUNT] = {
	    {VIGIL__V1__ENVELOPE__BODY_HELLO, &hello},
	    {VIGIL__V1__ENVELOPE__BODY_WRITE, &write},
	    {VIGIL__V1__ENVELOPE__BODY_QUERY, &query},
	    {VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE, &subscribe},
	    {VIGIL__V1__ENVELOPE__BODY_UNSUBSCRIBE, &unsubscribe},
	    {VIGIL__V1__ENVELOPE__BODY_CANCEL, &cancel},
	    {VIGIL__V1__ENVELOPE__BODY_PING, &ping},
	    {VIGIL__V1__ENVELOPE__BODY_HELLO_OK, &hello_ok},
	    {VIGIL__V1__ENVELOPE__BODY_WRITE_OK, &write_ok},
	    {VIGIL__V1__ENVELOPE__BODY_RESULT_SET, &result_set},
	    {VIGIL__V1__ENVELOPE__BODY_RESULT_ROWS, &rows},
	    {VIGIL__V1__ENVELOPE__BODY_RESULT_END, &result_end},
	    {VIGIL__V1__ENVELOPE__BODY_ERROR, &error},
	    {VIGIL__V1__ENVELOPE__BODY_PONG, &pong},
	    {VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK, &subscribe_ok},
	    {VIGIL__V1__ENVELOPE__BODY_PUSH, &push},
	    {VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END, &subscription_end},
	    {VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END, NULL}, /* clean end */
	};
	static Vigil__V1__SubscriptionEnd clean_end = VIGIL__V1__SUBSCRIPTION_END__INIT;
	kinds[KIND_COUNT - 1].message = &clean_end;
	for (int i = 0; i < KIND_COUNT; i++) {
		Vigil__V1__Envelope init = VIGIL__V1__ENVELOPE__INIT;
		envs[i] = init;
		envs[i].id = i == 0 ? UINT64_MAX : (uint64_t)i * 1000003u;
		envs[i].body_case = kinds[i].body;
		/* Every member of the oneof is a pointer in the same union. */
		envs[i].hello = kinds[i].message;
	}
}

/* ---- round trips ------------------------------------------------------------ */

Test(frame, every_kind_round_trips)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	/* Every oneof member of Envelope (all fields but id) is covered. */
	bool seen[64] = {false};
	for (int i = 0; i < KIND_COUNT; i++)
		seen[envs[i].body_case] = true;
	const ProtobufCMessageDescriptor *d = &vigil__v1__envelope__descriptor;
	for (unsigned f = 0; f < d->n_fields; f++)
		if (d->fields[f].id != 1)
			cr_assert(seen[d->fields[f].id], "body field %s not covered",
			          d->fields[f].name);

	for (int i = 0; i < KIND_COUNT; i++) {
		vg_buf_t b = VG_BUF_INIT;
		cr_assert_eq(vg_buf_append(&b, "junk", 4), 0); /* appends, never overwrites */
		cr_assert_eq(vg_frame_append(&b, &envs[i]), 0);
		size_t n = vigil__v1__envelope__get_packed_size(&envs[i]);
		cr_assert_eq(b.len, 4 + VG_FRAME_HEADER + n);
		cr_assert_eq(memcmp(b.data, "junk", 4), 0);
		cr_assert_eq(vg_load_be32(b.data + 4), n);
		Vigil__V1__Envelope *got = NULL;
		size_t consumed = 0;
		cr_assert_eq(
		    parse_exact(b.data + 4, b.len - 4, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0,
		    "kind %d", envs[i].body_case);
		cr_assert_eq(consumed, VG_FRAME_HEADER + n);
		cr_assert_eq(got->id, envs[i].id);
		cr_assert_eq(got->body_case, envs[i].body_case);
		assert_same_envelope(&envs[i], got);
		vg_frame_free_envelope(got);
		vg_buf_release(&b);
	}
}

Test(frame, values_are_bit_exact_and_strings_owned)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&b, &envs[1]), 0);  /* the Write */
	cr_assert_eq(vg_frame_append(&b, &envs[10]), 0); /* the ResultRows */
	Vigil__V1__Envelope *w = NULL, *r = NULL;
	size_t c1, c2;
	cr_assert_eq(parse_exact(b.data, b.len, VG_DEFAULT_MAX_FRAME, &w, &c1), 0);
	cr_assert_eq(parse_exact(b.data + c1, b.len - c1, VG_DEFAULT_MAX_FRAME, &r, &c2), 0);
	cr_assert_eq(c1 + c2, b.len);
	vg_buf_release(&b); /* the envelopes must not depend on the input */

	const Vigil__V1__WriteBlock *blk = w->write->blocks[0];
	cr_assert_str_eq(blk->measurement, "vitals");
	cr_assert_str_eq(blk->tags[1]->value, "Intensivstation Süd");
	cr_assert_eq(blk->times[0], INT64_MIN);
	cr_assert_eq(blk->times[3], INT64_MAX);
	const double *v = blk->fields[0]->values;
	cr_assert_eq(bits_of(v[0]), UINT64_C(0x7ff8000000000123), "NaN payload kept");
	cr_assert_eq(bits_of(v[1]), bits_of(-0.0), "negative zero kept");
	cr_assert(isinf(v[2]) && v[2] > 0);
	cr_assert(isinf(v[3]) && v[3] < 0);
	cr_assert_eq(bits_of(blk->fields[1]->values[1]), bits_of(5e-324));

	const Vigil__V1__Column *col = r->result_rows->columns[0];
	cr_assert_eq(col->nulls.len, 1);
	cr_assert_eq(col->nulls.data[0], 0x02);
	cr_assert_str_eq(r->result_rows->columns[1]->strings[2], "ünïcödé ✓");
	vg_frame_free_envelope(w);
	vg_frame_free_envelope(r);
}

Test(frame, ping_golden_bytes)
{
	/* The worked example of vg_proto.h and docs/protocol.md. */
	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	ping.nonce = 42;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&b, &env), 0);
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x06, 0x08, 0x01, 0x42, 0x02, 0x08, 0x2a};
	cr_assert_eq(b.len, sizeof want);
	cr_assert_eq(memcmp(b.data, want, sizeof want), 0);
	vg_buf_release(&b);

	/* A Ping whose nonce is 0 still carries its (empty) body. */
	ping.nonce = 0;
	env.id = 2;
	cr_assert_eq(vg_frame_append(&b, &env), 0);
	static const uint8_t empty[] = {0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x42, 0x00};
	cr_assert_eq(b.len, sizeof empty);
	cr_assert_eq(memcmp(b.data, empty, sizeof empty), 0);
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(parse_exact(b.data, b.len, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0);
	cr_assert_eq(got->body_case, VIGIL__V1__ENVELOPE__BODY_PING);
	vg_frame_free_envelope(got);
	vg_buf_release(&b);
}

Test(frame, append_refuses_envelope_without_body)
{
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 3;
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&b, "x", 1), 0);
	cr_assert_eq(vg_frame_append(&b, &env), VG_EINVAL);
	cr_assert_eq(b.len, 1);
	vg_buf_release(&b);
}

/* ---- incremental input ----------------------------------------------------- */

Test(frame, every_prefix_is_incomplete)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	for (int i = 0; i < KIND_COUNT; i++) {
		vg_buf_t b = VG_BUF_INIT;
		cr_assert_eq(vg_frame_append(&b, &envs[i]), 0);
		for (size_t k = 0; k < b.len; k++) {
			Vigil__V1__Envelope *got = (void *)&got;
			size_t consumed = 99;
			cr_assert_eq(parse_exact(b.data, k, VG_DEFAULT_MAX_FRAME, &got, &consumed),
			             VG_EAGAIN, "kind %d, %zu of %zu bytes", envs[i].body_case, k,
			             b.len);
			cr_assert_null(got);
			cr_assert_eq(consumed, 0);
		}
		vg_buf_release(&b);
	}
}

Test(frame, byte_by_byte_stream_of_frames)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	vg_buf_t wire = VG_BUF_INIT;
	for (int i = 0; i < KIND_COUNT; i++)
		cr_assert_eq(vg_frame_append(&wire, &envs[i]), 0);

	/* A reader that receives one byte at a time and parses what it can. */
	vg_buf_t in = VG_BUF_INIT;
	int next = 0;
	for (size_t i = 0; i < wire.len; i++) {
		cr_assert_eq(vg_buf_putc(&in, wire.data[i]), 0);
		for (;;) {
			Vigil__V1__Envelope *got;
			size_t consumed;
			int rc =
			    vg_frame_parse(in.data, in.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
			if (rc == VG_EAGAIN)
				break;
			cr_assert_eq(rc, 0);
			cr_assert_lt(next, KIND_COUNT);
			cr_assert_eq(got->id, envs[next].id);
			assert_same_envelope(&envs[next], got);
			vg_frame_free_envelope(got);
			vg_buf_consume(&in, consumed);
			next++;
		}
	}
	cr_assert_eq(next, KIND_COUNT, "all frames, in order");
	cr_assert_eq(in.len, 0);
	vg_buf_release(&in);
	vg_buf_release(&wire);
}

Test(frame, two_frames_back_to_back)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&b, &envs[6]), 0); /* Ping */
	size_t first = b.len;
	cr_assert_eq(vg_frame_append(&b, &envs[2]), 0); /* Query */
	Vigil__V1__Envelope *a, *c;
	size_t ca, cc;
	cr_assert_eq(parse_exact(b.data, b.len, VG_DEFAULT_MAX_FRAME, &a, &ca), 0);
	cr_assert_eq(ca, first, "consumes exactly the first frame");
	cr_assert_eq(a->body_case, VIGIL__V1__ENVELOPE__BODY_PING);
	cr_assert_eq(parse_exact(b.data + ca, b.len - ca, VG_DEFAULT_MAX_FRAME, &c, &cc), 0);
	cr_assert_eq(cc, b.len - first);
	cr_assert_eq(c->body_case, VIGIL__V1__ENVELOPE__BODY_QUERY);
	cr_assert_str_eq(c->query->statement, envs[2].query->statement);
	vg_frame_free_envelope(a);
	vg_frame_free_envelope(c);
	vg_buf_release(&b);
}

/* ---- limits ------------------------------------------------------------------- */

Test(frame, oversized_refused_from_header_alone)
{
	uint8_t header[4];
	vg_store_be32(header, VG_DEFAULT_MAX_FRAME + 1);
	Vigil__V1__Envelope *got = (void *)&got;
	size_t consumed = 99, n = 0;
	cr_assert_eq(parse_exact(header, 4, VG_DEFAULT_MAX_FRAME, &got, &consumed), VG_ELIMIT);
	cr_assert_null(got);
	cr_assert_eq(consumed, 0);
	cr_assert_eq(vg_frame_peek_length(header, 4, VG_DEFAULT_MAX_FRAME, &n), VG_ELIMIT);
	cr_assert_eq(n, VG_DEFAULT_MAX_FRAME + 1, "the size is reported for the error");

	vg_store_be32(header, UINT32_MAX);
	cr_assert_eq(parse_exact(header, 4, VG_DEFAULT_MAX_FRAME, &got, &consumed), VG_ELIMIT);

	uint64_t id = 1;
	char err[128];
	vg_store_be32(header, 20000000);
	vg_frame_diagnose(header, 4, VG_DEFAULT_MAX_FRAME, &id, err, sizeof err);
	cr_assert_str_eq(err, "frame of 20000000 bytes exceeds the limit of 16777216 bytes");
	cr_assert_eq(id, 0);

	/* Fewer than 4 bytes is incomplete, whatever they say. */
	cr_assert_eq(parse_exact(header, 3, VG_DEFAULT_MAX_FRAME, &got, &consumed), VG_EAGAIN);
	cr_assert_eq(vg_frame_peek_length(header, 3, VG_DEFAULT_MAX_FRAME, &n), VG_EAGAIN);
}

Test(frame, max_frame_is_inclusive)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&b, &envs[2]), 0);
	size_t n = b.len - VG_FRAME_HEADER, peeked = 0;
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(vg_frame_peek_length(b.data, b.len, n, &peeked), 0);
	cr_assert_eq(peeked, n);
	cr_assert_eq(parse_exact(b.data, b.len, n, &got, &consumed), 0);
	vg_frame_free_envelope(got);
	cr_assert_eq(parse_exact(b.data, b.len, n - 1, &got, &consumed), VG_ELIMIT);
	/* Refused even when only the header has arrived. */
	cr_assert_eq(parse_exact(b.data, VG_FRAME_HEADER, n - 1, &got, &consumed), VG_ELIMIT);
	vg_buf_release(&b);
}

/* ---- bad envelopes ----------------------------------------------------------- */

/* Parses the frame made of payload; expects VG_EPROTO with the boundary kept,
 * and returns the diagnosis. */
static void expect_proto(const uint8_t *payload, size_t n, uint64_t want_id, const char *want_err)
{
	vg_buf_t p = VG_BUF_INIT, f = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&p, payload, n), 0);
	frame_of(&f, &p);
	Vigil__V1__Envelope *got = (void *)&got;
	size_t consumed = 0;
	cr_assert_eq(parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed), VG_EPROTO);
	cr_assert_null(got);
	cr_assert_eq(consumed, f.len, "the frame boundary is known: skip it and go on");
	uint64_t id = 12345;
	char err[256];
	vg_frame_diagnose(f.data, f.len, VG_DEFAULT_MAX_FRAME, &id, err, sizeof err);
	cr_assert_eq(id, want_id);
	cr_assert_str_eq(err, want_err);
	vg_buf_release(&p);
	vg_buf_release(&f);
}

Test(frame, envelope_without_body)
{
	static const uint8_t id_only[] = {0x08, 0x05};
	expect_proto(id_only, sizeof id_only, 5, "envelope carries no message");
	expect_proto(NULL, 0, 0, "envelope carries no message");
	/* A body this version does not know (field 31, from a newer peer). */
	static const uint8_t newer[] = {0x08, 0x07, 0xfa, 0x01, 0x00};
	expect_proto(
	    newer, sizeof newer, 7,
	    "envelope carries no known message (field 31 is not part of protocol version 1)");
}

Test(frame, garbage_is_a_protocol_error)
{
	static const uint8_t ff[] = {0xff, 0xff, 0xff};
	expect_proto(ff, sizeof ff, 0,
	             "undecodable envelope: truncated field key at byte 0 of the envelope (in "
	             "vigil.v1.Envelope)");
	/* Write (field 3) sent as a varint: the wrong wire type. */
	static const uint8_t wrong_type[] = {0x08, 0x01, 0x18, 0x05};
	expect_proto(wrong_type, sizeof wrong_type, 1,
	             "undecodable envelope: field vigil.v1.Envelope.write: wrong wire type at byte "
	             "2 of the envelope");
	/* A Query whose length runs past the end of the envelope. */
	static const uint8_t overrun[] = {0x08, 0x02, 0x22, 0x09, 0x0a, 0x01, 0x61};
	expect_proto(overrun, sizeof overrun, 2,
	             "undecodable envelope: field vigil.v1.Envelope.query: length runs past the "
	             "end of its message at byte 2 of the envelope");
	/* Field number 0. */
	static const uint8_t zero[] = {0x00, 0x01};
	expect_proto(zero, sizeof zero, 0,
	             "undecodable envelope: invalid field number at byte 0 of the envelope (in "
	             "vigil.v1.Envelope)");
	/* A group (wire type 3), which vigil.v1 never uses. */
	static const uint8_t group[] = {0x08, 0x04, 0x4b, 0x4c};
	expect_proto(group, sizeof group, 4,
	             "undecodable envelope: group wire type not supported at byte 2 of the "
	             "envelope (in vigil.v1.Envelope)");
	/* An 11-byte varint. */
	static const uint8_t long_varint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                      0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	expect_proto(long_varint, sizeof long_varint, 0,
	             "undecodable envelope: field vigil.v1.Envelope.id: varint longer than 10 "
	             "bytes at byte 0 of the envelope");
}

Test(frame, nul_in_string_is_refused_not_truncated)
{
	/* Envelope{id: 9, query: {statement: "a\0b"}} — protobuf-c alone would
	 * hand back "a". */
	static const uint8_t nul[] = {0x08, 0x09, 0x22, 0x05, 0x0a, 0x03, 0x61, 0x00, 0x62};
	expect_proto(nul, sizeof nul, 9,
	             "undecodable envelope: field vigil.v1.Query.statement: string holds a NUL "
	             "byte at byte 7 of the envelope");
	/* Deeper: a tag value inside Write → WriteBlock → Tag. */
	vg_buf_t tag = VG_BUF_INIT, block = VG_BUF_INIT, write = VG_BUF_INIT, env = VG_BUF_INIT;
	pb_bytes(&tag, 1, "host", 4);
	pb_bytes(&tag, 2, "a\0b", 3);
	pb_bytes(&block, 1, "cpu", 3);
	pb_bytes(&block, 2, tag.data, tag.len);
	pb_bytes(&write, 1, block.data, block.len);
	pb_key(&env, 1, 0);
	pb_varint(&env, 3);
	pb_bytes(&env, 3, write.data, write.len);
	expect_proto(env.data, env.len, 3,
	             "undecodable envelope: field vigil.v1.Tag.value: string holds a NUL byte at "
	             "byte 22 of the envelope");
	vg_buf_release(&tag);
	vg_buf_release(&block);
	vg_buf_release(&write);
	vg_buf_release(&env);
}

Test(frame, unpacked_repeated_fields_are_accepted)
{
	/* proto3 parsers must accept repeated scalars packed or not; other
	 * implementations may send either. */
	vg_buf_t field = VG_BUF_INIT, block = VG_BUF_INIT, write = VG_BUF_INIT, env = VG_BUF_INIT,
	         frame = VG_BUF_INIT;
	pb_bytes(&field, 1, "f", 1);
	pb_fixed64(&field, 2, bits_of(1.0));
	pb_fixed64(&field, 2, bits_of(2.0));
	pb_bytes(&block, 1, "m", 1);
	pb_fixed64(&block, 3, 10);
	pb_fixed64(&block, 3, 20);
	pb_bytes(&block, 4, field.data, field.len);
	pb_bytes(&write, 1, block.data, block.len);
	pb_key(&env, 1, 0);
	pb_varint(&env, 11);
	pb_bytes(&env, 3, write.data, write.len);
	frame_of(&frame, &env);
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(parse_exact(frame.data, frame.len, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0);
	const Vigil__V1__WriteBlock *b = got->write->blocks[0];
	cr_assert_eq(b->n_times, 2);
	cr_assert_eq(b->times[1], 20);
	cr_assert_eq(b->fields[0]->n_values, 2);
	cr_assert_eq(b->fields[0]->values[1], 2.0);
	vg_frame_free_envelope(got);

	/* A packed array that is not a whole number of elements is refused. */
	vg_buf_t bad = VG_BUF_INIT, bad_write = VG_BUF_INIT, bad_env = VG_BUF_INIT;
	pb_bytes(&bad, 1, "m", 1);
	pb_bytes(&bad, 3, "1234567", 7);
	pb_bytes(&bad_write, 1, bad.data, bad.len);
	pb_bytes(&bad_env, 3, bad_write.data, bad_write.len);
	expect_proto(bad_env.data, bad_env.len, 0,
	             "undecodable envelope: field vigil.v1.WriteBlock.times: packed array is not a "
	             "whole number of elements at byte 9 of the envelope");
	vg_buf_t *all[] = {&field, &block, &write, &env, &frame, &bad, &bad_write, &bad_env};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		vg_buf_release(all[i]);
}

Test(frame, two_bodies_last_wins_without_leak)
{
	/* ping{42} then pong{43}: proto3 says the last oneof member wins. */
	static const uint8_t two[] = {0x08, 0x01, 0x42, 0x02, 0x08, 0x2a,
	                              0xb2, 0x01, 0x02, 0x08, 0x2b};
	vg_buf_t p = VG_BUF_INIT, f = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&p, two, sizeof two), 0);
	frame_of(&f, &p);
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0);
	cr_assert_eq(got->body_case, VIGIL__V1__ENVELOPE__BODY_PONG);
	cr_assert_eq(got->pong->nonce, 43);
	vg_frame_free_envelope(got);
	vg_buf_release(&p);
	vg_buf_release(&f);
}

Test(frame, random_and_mutated_input_never_crashes)
{
	vg_test_rng_t rng = {UINT64_C(0x9e3779b97f4a7c15)};
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	vg_buf_t valid[KIND_COUNT];
	for (int i = 0; i < KIND_COUNT; i++) {
		vg_buf_init(&valid[i]);
		cr_assert_eq(vg_frame_append(&valid[i], &envs[i]), 0);
	}
	int ok = 0, proto = 0;
	for (int round = 0; round < 20000; round++) {
		vg_buf_t f = VG_BUF_INIT;
		if (round % 2) {
			size_t n = vg_test_below(&rng, 48);
			cr_assert_eq(vg_buf_put_be32(&f, (uint32_t)n), 0);
			for (size_t i = 0; i < n; i++)
				cr_assert_eq(vg_buf_putc(&f, (uint8_t)vg_test_next(&rng)), 0);
		} else {
			const vg_buf_t *src = &valid[vg_test_below(&rng, KIND_COUNT)];
			cr_assert_eq(vg_buf_append(&f, src->data, src->len), 0);
			int flips = 1 + (int)vg_test_below(&rng, 4);
			for (int k = 0; k < flips; k++) {
				size_t at =
				    VG_FRAME_HEADER + vg_test_below(&rng, f.len - VG_FRAME_HEADER);
				f.data[at] ^= (uint8_t)(1u << vg_test_below(&rng, 8));
			}
		}
		Vigil__V1__Envelope *got;
		size_t consumed;
		int rc = parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
		cr_assert(rc == 0 || rc == VG_EPROTO, "round %d: rc %d", round, rc);
		cr_assert_eq(consumed, f.len);
		if (rc == 0) {
			ok++;
			/* Whatever decoded re-encodes and decodes again. */
			vg_buf_t again = VG_BUF_INIT;
			cr_assert_eq(vg_frame_append(&again, got), 0);
			Vigil__V1__Envelope *twice;
			cr_assert_eq(parse_exact(again.data, again.len, VG_DEFAULT_MAX_FRAME,
			                         &twice, &consumed),
			             0);
			assert_same_envelope(got, twice);
			vg_frame_free_envelope(twice);
			vg_frame_free_envelope(got);
			vg_buf_release(&again);
		} else {
			proto++;
			uint64_t id;
			char err[256];
			vg_frame_diagnose(f.data, f.len, VG_DEFAULT_MAX_FRAME, &id, err,
			                  sizeof err);
			cr_assert_gt(strlen(err), 0);
		}
		vg_buf_release(&f);
	}
	assert_no_leaks();
	cr_assert_gt(ok, 100, "mutations that still decode were exercised");
	cr_assert_gt(proto, 100);
	for (int i = 0; i < KIND_COUNT; i++)
		vg_buf_release(&valid[i]);
}

/* ---- the Write fast path ------------------------------------------------------ */

/* A random string field: absent, empty, or a few letters. */
static void rand_string(vg_test_rng_t *rng, vg_buf_t *b, unsigned field)
{
	static const char letters[] = "abcxyz_0";
	char s[12];
	size_t n = vg_test_below(rng, sizeof s);
	for (size_t i = 0; i < n; i++)
		s[i] = letters[vg_test_below(rng, sizeof letters - 1)];
	pb_bytes(b, field, s, n);
}

/* count 8-byte elements, packed (one field or, rarely, two or an empty
 * one) or not packed. */
static void rand_array8(vg_test_rng_t *rng, vg_buf_t *b, unsigned field, size_t count)
{
	uint8_t raw[8 * 8];
	for (size_t i = 0; i < 8 * count; i++)
		raw[i] = (uint8_t)vg_test_next(rng);
	unsigned how = (unsigned)vg_test_below(rng, 12);
	if (how == 0) {
		for (size_t i = 0; i < count; i++) {
			uint64_t v;
			memcpy(&v, raw + 8 * i, 8);
			pb_fixed64(b, field, v);
		}
	} else if (how == 1) {
		pb_bytes(b, field, raw, 8 * (count / 2));
		pb_bytes(b, field, raw + 8 * (count / 2), 8 * (count - count / 2));
	} else {
		pb_bytes(b, field, raw, 8 * count);
	}
}

/* A Write envelope: mostly the plain shape the fast path takes, sometimes
 * with what it leaves to protobuf-c (repeated singular fields, unpacked or
 * split arrays, unknown fields, fields out of order, empty messages). */
static void rand_write(vg_test_rng_t *rng, vg_buf_t *env)
{
	vg_buf_t write = VG_BUF_INIT;
	size_t nblocks = vg_test_below(rng, 5);
	for (size_t bi = 0; bi < nblocks; bi++) {
		vg_buf_t block = VG_BUF_INIT;
		size_t ntimes = vg_test_below(rng, 8);
		if (vg_test_below(rng, 8))
			rand_string(rng, &block, 1);
		if (vg_test_below(rng, 20) == 0)
			rand_string(rng, &block, 1); /* twice: the last wins */
		size_t ntags = vg_test_below(rng, 4);
		for (size_t t = 0; t < ntags; t++) {
			vg_buf_t tag = VG_BUF_INIT;
			if (vg_test_below(rng, 10))
				rand_string(rng, &tag, 1);
			if (vg_test_below(rng, 10))
				rand_string(rng, &tag, 2);
			if (vg_test_below(rng, 30) == 0)
				rand_string(rng, &tag, 1 + (unsigned)vg_test_below(rng, 3));
			pb_bytes(&block, 2, tag.data, tag.len);
			vg_buf_release(&tag);
		}
		if (vg_test_below(rng, 10))
			rand_array8(rng, &block, 3, ntimes);
		size_t nfields = vg_test_below(rng, 3);
		for (size_t fi = 0; fi < nfields; fi++) {
			vg_buf_t field = VG_BUF_INIT;
			if (vg_test_below(rng, 10))
				rand_string(rng, &field, 1);
			rand_array8(rng, &field, 2, ntimes);
			if (vg_test_below(rng, 30) == 0)
				pb_bytes(&field, 9, "?", 1); /* unknown */
			pb_bytes(&block, 4, field.data, field.len);
			vg_buf_release(&field);
		}
		if (vg_test_below(rng, 30) == 0)
			rand_string(rng, &block, 1); /* measurement after the rest */
		if (vg_test_below(rng, 30) == 0) {
			pb_key(&block, 7, 0); /* unknown varint */
			pb_varint(&block, 5);
		}
		pb_bytes(&write, 1, block.data, block.len);
		vg_buf_release(&block);
	}
	if (vg_test_below(rng, 4)) {
		pb_key(env, 1, 0);
		pb_varint(env, vg_test_next(rng) >> vg_test_below(rng, 64));
	}
	pb_bytes(env, 3, write.data, write.len);
	if (vg_test_below(rng, 20) == 0) {
		pb_key(env, 1, 0); /* a second id: the last wins */
		pb_varint(env, 7);
	}
	vg_buf_release(&write);
}

/* Envelopes from gen with one to three bits flipped: whatever the parser
 * takes, the walker and protobuf-c take too, with the same result; whatever
 * it refuses, one of them does.  Both must happen often. */
static void check_mutated(vg_test_rng_t *rng, void (*gen)(vg_test_rng_t *, vg_buf_t *))
{
	int taken = 0, refused = 0;
	for (int round = 0; round < 20000; round++) {
		vg_buf_t env = VG_BUF_INIT, f = VG_BUF_INIT;
		gen(rng, &env);
		if (env.len == 0) {
			vg_buf_release(&env);
			continue;
		}
		int flips = 1 + (int)vg_test_below(rng, 3);
		for (int k = 0; k < flips; k++)
			env.data[vg_test_below(rng, env.len)] ^= (uint8_t)(1u << vg_test_below(rng, 8));
		frame_of(&f, &env);
		Vigil__V1__Envelope *got;
		size_t consumed;
		int rc = parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
		cr_assert(rc == 0 || rc == VG_EPROTO, "round %d: rc %d", round, rc);
		vg_wire_report_t report;
		vg_msg_t quiet;
		vg_msg_init(&quiet, NULL, 0);
		bool walker_ok = vg_wire_scan_envelope(env.data, env.len, &report, &quiet) == 0 &&
		                 report.has_body;
		Vigil__V1__Envelope *ref =
		    walker_ok ? vigil__v1__envelope__unpack(NULL, env.len, env.data) : NULL;
		if (ref && ref->body_case == VIGIL__V1__ENVELOPE__BODY__NOT_SET) {
			vigil__v1__envelope__free_unpacked(ref, NULL);
			ref = NULL;
		}
		if (rc == 0) {
			taken++;
			cr_assert_not_null(ref, "round %d: taken, but the reference refuses it", round);
			assert_same_envelope(got, ref);
			vg_frame_free_envelope(got);
		} else {
			refused++;
			cr_assert_null(ref, "round %d: refused, but the reference takes it", round);
		}
		if (ref)
			vigil__v1__envelope__free_unpacked(ref, NULL);
		vg_buf_release(&env);
		vg_buf_release(&f);
	}
	cr_assert_gt(taken, 1000);
	cr_assert_gt(refused, 1000);
}

Test(frame, write_fast_path_matches_protobuf_c)
{
	vg_test_rng_t rng = {UINT64_C(0x243f6a8885a308d3)};
	int decoded = 0;
	for (int round = 0; round < 20000; round++) {
		vg_buf_t env = VG_BUF_INIT, f = VG_BUF_INIT;
		rand_write(&rng, &env);
		frame_of(&f, &env);
		Vigil__V1__Envelope *got;
		size_t consumed;
		int rc = parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
		cr_assert_eq(rc, 0, "round %d: rc %d", round, rc);
		cr_assert_eq(consumed, f.len);
		Vigil__V1__Envelope *ref = vigil__v1__envelope__unpack(NULL, env.len, env.data);
		cr_assert_not_null(ref, "round %d: protobuf-c refuses what the server took", round);
		cr_assert_eq(got->body_case, VIGIL__V1__ENVELOPE__BODY_WRITE);
		cr_assert_eq(got->id, ref->id);
		assert_same_envelope(got, ref);
		/* Field by field too: packing drops nothing a reader sees, but
		 * says nothing of NULL vs "" strings. */
		cr_assert_eq(got->write->n_blocks, ref->write->n_blocks);
		for (size_t b = 0; b < ref->write->n_blocks; b++) {
			const Vigil__V1__WriteBlock *x = got->write->blocks[b],
			                            *y = ref->write->blocks[b];
			cr_assert_str_eq(x->measurement, y->measurement);
			cr_assert_eq(x->n_tags, y->n_tags);
			for (size_t t = 0; t < y->n_tags; t++) {
				cr_assert_str_eq(x->tags[t]->key, y->tags[t]->key);
				cr_assert_str_eq(x->tags[t]->value, y->tags[t]->value);
			}
			cr_assert_eq(x->n_times, y->n_times);
			if (y->n_times)
				cr_assert_eq(memcmp(x->times, y->times, y->n_times * 8), 0);
			cr_assert_eq(x->n_fields, y->n_fields);
			for (size_t i = 0; i < y->n_fields; i++) {
				cr_assert_str_eq(x->fields[i]->name, y->fields[i]->name);
				cr_assert_eq(x->fields[i]->n_values, y->fields[i]->n_values);
				if (y->fields[i]->n_values)
					cr_assert_eq(memcmp(x->fields[i]->values, y->fields[i]->values,
					                    y->fields[i]->n_values * 8),
					             0, "values bit-exact");
			}
		}
		decoded++;
		vigil__v1__envelope__free_unpacked(ref, NULL);
		vg_frame_free_envelope(got);
		vg_buf_release(&env);
		vg_buf_release(&f);
	}
	cr_assert_eq(decoded, 20000);

	check_mutated(&rng, rand_write);
	assert_no_leaks();
}

/* A ResultSet or ResultRows envelope: mostly the shape vigild writes
 * (protocol/encode.c), sometimes what the fast path leaves to protobuf-c
 * (repeated singular fields, unpacked arrays, unknown enum values or
 * fields, a boolean of 2, empty packed fields). */
static void rand_result(vg_test_rng_t *rng, vg_buf_t *env)
{
	vg_buf_t body = VG_BUF_INIT;
	bool rows = vg_test_below(rng, 2);
	if (!rows) {
		if (vg_test_below(rng, 8))
			rand_string(rng, &body, 1);
		size_t ntags = vg_test_below(rng, 4);
		for (size_t t = 0; t < ntags; t++) {
			vg_buf_t tag = VG_BUF_INIT;
			if (vg_test_below(rng, 10))
				rand_string(rng, &tag, 1);
			if (vg_test_below(rng, 10))
				rand_string(rng, &tag, 2);
			pb_bytes(&body, 2, tag.data, tag.len);
			vg_buf_release(&tag);
		}
		size_t ncols = vg_test_below(rng, 5);
		for (size_t c = 0; c < ncols; c++)
			rand_string(rng, &body, 3);
		if (ncols && vg_test_below(rng, 10)) {
			uint8_t types[8];
			for (size_t c = 0; c < ncols; c++)
				types[c] = (uint8_t)vg_test_below(rng, vg_test_below(rng, 20) ? 5 : 9);
			pb_bytes(&body, 4, types, ncols);
		} else if (ncols) {
			pb_key(&body, 4, 0); /* unpacked */
			pb_varint(&body, 2);
		}
		if (vg_test_below(rng, 2)) {
			pb_key(&body, 5, 0);
			pb_varint(&body, vg_test_below(rng, 20) ? 1 : 2);
		}
		if (vg_test_below(rng, 30) == 0)
			rand_string(rng, &body, 1); /* a second name: the last wins */
	} else {
		size_t nrows = 1 + vg_test_below(rng, 7);
		if (vg_test_below(rng, 6))
			rand_array8(rng, &body, 1, nrows);
		size_t ncols = vg_test_below(rng, 4);
		for (size_t c = 0; c < ncols; c++) {
			vg_buf_t col = VG_BUF_INIT;
			if (vg_test_below(rng, 4)) {
				rand_array8(rng, &col, 1, nrows);
			} else {
				for (size_t r = 0; r < nrows; r++)
					rand_string(rng, &col, 2);
			}
			if (vg_test_below(rng, 3)) {
				uint8_t nulls[2] = {(uint8_t)vg_test_next(rng), 0};
				pb_bytes(&col, 3, nulls, vg_test_below(rng, 20) ? 1 : 0);
			}
			if (vg_test_below(rng, 40) == 0)
				pb_bytes(&col, 9, "?", 1); /* unknown */
			pb_bytes(&body, 2, col.data, col.len);
			vg_buf_release(&col);
		}
	}
	if (vg_test_below(rng, 4)) {
		pb_key(env, 1, 0);
		pb_varint(env, vg_test_next(rng) >> vg_test_below(rng, 64));
	}
	pb_bytes(env, rows ? 19 : 18, body.data, body.len);
	vg_buf_release(&body);
}

/* A varint padded to `len` bytes (continuation bits on zero groups). */
static void pb_long_varint(vg_buf_t *b, uint64_t v, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++, v >>= 7)
		cr_assert_eq(vg_buf_putc(b, (uint8_t)(0x80 | (v & 0x7F))), 0);
	cr_assert_eq(vg_buf_putc(b, (uint8_t)v), 0);
}

/* A plain Write whose block has its field key or its length prefix in
 * `len` bytes: protobuf-c reads keys and lengths in at most 5 bytes, so
 * at 6 the frame is refused, fast path or not; at 5 it is taken. */
static int parse_padded_write(size_t len, bool pad_key)
{
	vg_buf_t block = VG_BUF_INIT, write = VG_BUF_INIT, env = VG_BUF_INIT, f = VG_BUF_INIT;
	pb_bytes(&block, 1, "m", 1);
	if (pad_key)
		pb_long_varint(&write, 1 << 3 | 2, len);
	else
		pb_key(&write, 1, 2);
	pb_long_varint(&write, block.len, pad_key ? 1 : len);
	cr_assert_eq(vg_buf_append(&write, block.data, block.len), 0);
	pb_bytes(&env, 3, write.data, write.len);
	frame_of(&f, &env);
	Vigil__V1__Envelope *got = NULL;
	size_t consumed;
	int rc = parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
	Vigil__V1__Envelope *ref = vigil__v1__envelope__unpack(NULL, env.len, env.data);
	cr_assert_eq(rc == 0, ref != NULL, "len %zu, key %d: parser %d, protobuf-c %s", len,
		     pad_key, rc, ref ? "takes it" : "refuses it");
	if (ref)
		vigil__v1__envelope__free_unpacked(ref, NULL);
	if (got)
		vg_frame_free_envelope(got);
	vg_buf_release(&block);
	vg_buf_release(&write);
	vg_buf_release(&env);
	vg_buf_release(&f);
	return rc;
}

Test(frame, overlong_keys_and_lengths_are_refused_as_protobuf_c_does)
{
	for (int pad_key = 0; pad_key < 2; pad_key++) {
		cr_assert_eq(parse_padded_write(5, pad_key), 0);
		cr_assert_eq(parse_padded_write(6, pad_key), VG_EPROTO);
	}
	assert_no_leaks();
}

Test(frame, result_fast_path_matches_protobuf_c)
{
	vg_test_rng_t rng = {UINT64_C(0x13198a2e03707344)};
	for (int round = 0; round < 20000; round++) {
		vg_buf_t env = VG_BUF_INIT, f = VG_BUF_INIT;
		rand_result(&rng, &env);
		frame_of(&f, &env);
		Vigil__V1__Envelope *got;
		size_t consumed;
		int rc = parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed);
		cr_assert_eq(rc, 0, "round %d: rc %d", round, rc);
		Vigil__V1__Envelope *ref = vigil__v1__envelope__unpack(NULL, env.len, env.data);
		cr_assert_not_null(ref, "round %d", round);
		cr_assert_eq(got->body_case, ref->body_case);
		cr_assert_eq(got->id, ref->id);
		assert_same_envelope(got, ref);
		if (ref->body_case == VIGIL__V1__ENVELOPE__BODY_RESULT_SET) {
			const Vigil__V1__ResultSet *x = got->result_set, *y = ref->result_set;
			cr_assert_str_eq(x->name, y->name);
			cr_assert_eq(x->n_tags, y->n_tags);
			for (size_t t = 0; t < y->n_tags; t++) {
				cr_assert_str_eq(x->tags[t]->key, y->tags[t]->key);
				cr_assert_str_eq(x->tags[t]->value, y->tags[t]->value);
			}
			cr_assert_eq(x->n_columns, y->n_columns);
			for (size_t c = 0; c < y->n_columns; c++)
				cr_assert_str_eq(x->columns[c], y->columns[c]);
			cr_assert_eq(x->n_types, y->n_types);
			for (size_t c = 0; c < y->n_types; c++)
				cr_assert_eq(x->types[c], y->types[c]);
			cr_assert_eq(x->has_time, y->has_time);
		} else {
			const Vigil__V1__ResultRows *x = got->result_rows, *y = ref->result_rows;
			cr_assert_eq(x->n_times, y->n_times);
			if (y->n_times)
				cr_assert_eq(memcmp(x->times, y->times, 8 * y->n_times), 0);
			cr_assert_eq(x->n_columns, y->n_columns);
			for (size_t c = 0; c < y->n_columns; c++) {
				const Vigil__V1__Column *a = x->columns[c], *b = y->columns[c];
				cr_assert_eq(a->n_floats, b->n_floats);
				if (b->n_floats)
					cr_assert_eq(memcmp(a->floats, b->floats, 8 * b->n_floats), 0);
				cr_assert_eq(a->n_strings, b->n_strings);
				for (size_t r = 0; r < b->n_strings; r++)
					cr_assert_str_eq(a->strings[r], b->strings[r]);
				cr_assert_eq(a->nulls.len, b->nulls.len);
				if (b->nulls.len)
					cr_assert_eq(memcmp(a->nulls.data, b->nulls.data, b->nulls.len), 0);
			}
		}
		vigil__v1__envelope__free_unpacked(ref, NULL);
		vg_frame_free_envelope(got);
		vg_buf_release(&env);
		vg_buf_release(&f);
	}

	check_mutated(&rng, rand_result);
	assert_no_leaks();
}

Test(frame, built_envelope_in_its_arena)
{
	/* vg_envelope_new/alloc: a hand-built Write, many parts (more than
	 * the first chunk holds), freed at once; it packs like a parsed one. */
	Vigil__V1__Envelope *env = vg_envelope_new();
	cr_assert_not_null(env);
	Vigil__V1__Write *w = vg_envelope_alloc(env, sizeof *w);
	cr_assert_not_null(w);
	vigil__v1__write__init(w);
	env->body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env->write = w;
	env->id = 99;
	size_t n = 3000;
	w->blocks = vg_envelope_alloc(env, n * sizeof *w->blocks);
	cr_assert_not_null(w->blocks);
	for (size_t i = 0; i < n; i++) {
		Vigil__V1__WriteBlock *b = vg_envelope_alloc(env, sizeof *b);
		cr_assert_not_null(b);
		cr_assert_eq((uintptr_t)b % 8, 0, "aligned");
		vigil__v1__write_block__init(b);
		char *m = vg_envelope_alloc(env, 3);
		cr_assert_not_null(m);
		memcpy(m, "m", 2);
		b->measurement = m;
		b->times = vg_envelope_alloc(env, sizeof *b->times);
		cr_assert_not_null(b->times);
		b->times[0] = (int64_t)i;
		b->n_times = 1;
		w->blocks[w->n_blocks++] = b;
	}
	vg_buf_t f = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&f, env), 0);
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(parse_exact(f.data, f.len, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0);
	assert_same_envelope(env, got);
	cr_assert_eq(got->write->blocks[n - 1]->times[0], (int64_t)(n - 1));
	vg_frame_free_envelope(got);
	vg_frame_free_envelope(env);
	vg_buf_release(&f);
	assert_no_leaks();
}

/* ---- the end of readable memory --------------------------------------------- */

typedef struct guarded {
	uint8_t *base;
	size_t page;
} guarded_t;

/* Two pages, the second PROT_NONE: bytes placed to end at base + page end
 * exactly at the last readable byte. */
static guarded_t guarded_open(void)
{
	guarded_t g;
	g.page = (size_t)sysconf(_SC_PAGESIZE);
	g.base = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(g.base, MAP_FAILED);
	cr_assert_eq(mprotect(g.base + g.page, g.page, PROT_NONE), 0);
	return g;
}

static const uint8_t *guarded_place(guarded_t *g, const uint8_t *bytes, size_t n)
{
	cr_assert_leq(n, g->page);
	uint8_t *at = g->base + g->page - n;
	memcpy(at, bytes, n);
	return at;
}

static void guarded_close(guarded_t *g)
{
	munmap(g->base, 2 * g->page);
}

Test(frame, input_ending_at_unreadable_memory)
{
	guarded_t g = guarded_open();
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	for (int i = 0; i < KIND_COUNT; i++) {
		vg_buf_t b = VG_BUF_INIT;
		cr_assert_eq(vg_frame_append(&b, &envs[i]), 0);
		for (size_t k = 0; k <= b.len; k++) {
			const uint8_t *at = guarded_place(&g, b.data, k);
			Vigil__V1__Envelope *got;
			size_t consumed;
			int rc = vg_frame_parse(at, k, VG_DEFAULT_MAX_FRAME, &got, &consumed);
			cr_assert_eq(rc, k == b.len ? 0 : VG_EAGAIN);
			vg_frame_free_envelope(got);
			uint64_t id;
			char err[256];
			vg_frame_diagnose(at, k, VG_DEFAULT_MAX_FRAME, &id, err, sizeof err);
		}
		vg_buf_release(&b);
	}
	/* Broken envelopes whose fault is in their last byte. */
	static const uint8_t cut_varint[] = {0x00, 0x00, 0x00, 0x02, 0x08, 0xff};
	static const uint8_t cut_key[] = {0x00, 0x00, 0x00, 0x03, 0x08, 0x01, 0xb2};
	static const uint8_t nul_last[] = {0x00, 0x00, 0x00, 0x06, 0x22,
	                                   0x04, 0x0a, 0x02, 0x61, 0x00};
	const uint8_t *bad[] = {cut_varint, cut_key, nul_last};
	size_t bad_len[] = {sizeof cut_varint, sizeof cut_key, sizeof nul_last};
	for (int i = 0; i < 3; i++) {
		const uint8_t *at = guarded_place(&g, bad[i], bad_len[i]);
		Vigil__V1__Envelope *got;
		size_t consumed;
		cr_assert_eq(vg_frame_parse(at, bad_len[i], VG_DEFAULT_MAX_FRAME, &got, &consumed),
		             VG_EPROTO);
		cr_assert_eq(consumed, bad_len[i]);
		uint64_t id;
		char err[256];
		vg_frame_diagnose(at, bad_len[i], VG_DEFAULT_MAX_FRAME, &id, err, sizeof err);
		cr_assert_gt(strlen(err), 0);
	}
	guarded_close(&g);
}

/* ---- allocation failure --------------------------------------------------- */

Test(frame, allocation_failures_never_crash_or_leak)
{
	Vigil__V1__Envelope envs[KIND_COUNT];
	make_all(envs);
	/* A small Write: one block, one tag, one field. */
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = "host";
	tag.value = "a";
	Vigil__V1__Tag *tags[] = {&tag};
	double values[] = {1.0};
	int64_t times[] = {1};
	Vigil__V1__WriteField field = VIGIL__V1__WRITE_FIELD__INIT;
	field.name = "v";
	field.n_values = 1;
	field.values = values;
	Vigil__V1__WriteField *fields[] = {&field};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = "m";
	block.n_tags = 1;
	block.tags = tags;
	block.n_times = 1;
	block.times = times;
	block.n_fields = 1;
	block.fields = fields;
	Vigil__V1__WriteBlock *blocks[] = {&block};
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	write.n_blocks = 1;
	write.blocks = blocks;
	Vigil__V1__Envelope small = VIGIL__V1__ENVELOPE__INIT;
	small.id = 1;
	small.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	small.write = &write;

	int full_success = 0;
	for (long k = 0; k <= 30; k++) {
		for (int e = -1; e < KIND_COUNT; e++) {
			const Vigil__V1__Envelope *env = e < 0 ? &small : &envs[e];
			vg_buf_t b = VG_BUF_INIT;
			vg_alloc_fail_after(k);
			int rc = vg_frame_append(&b, env);
			cr_assert(rc == 0 || rc == VG_ENOMEM);
			int rc2 = -1, rc3 = -1;
			if (rc == 0) {
				cr_assert_eq(b.len, VG_FRAME_HEADER +
				                        vigil__v1__envelope__get_packed_size(env));
				Vigil__V1__Envelope *got = (void *)&got;
				size_t consumed = 99;
				rc2 = vg_frame_parse(b.data, b.len, VG_DEFAULT_MAX_FRAME, &got,
				                     &consumed);
				cr_assert(rc2 == 0 || rc2 == VG_ENOMEM, "k=%ld kind %d: rc %d", k,
				          e, rc2);
				if (rc2 == VG_ENOMEM) {
					cr_assert_null(got);
					cr_assert_eq(consumed, 0, "nothing consumed: retry later");
				} else {
					cr_assert_eq(consumed, b.len);
				}
				vg_frame_free_envelope(got);
			} else {
				cr_assert_eq(b.len, 0);
			}
			size_t before = b.len;
			rc3 =
			    vg_frame_append_error(&b, 5, VG_EINVAL, "bad \xff input", 0, 0, false);
			cr_assert(rc3 == 0 || rc3 == VG_ENOMEM);
			if (rc3)
				cr_assert_eq(b.len, before,
				             "a failed append leaves the buffer as it was");
			vg_alloc_fail_after(-1);
			if (e < 0 && rc == 0 && rc2 == 0 && rc3 == 0)
				full_success++;
			vg_buf_release(&b);
		}
	}
	assert_no_leaks();
	cr_assert_gt(full_success, 0, "the small write needs at most 30 allocations");
}

/* ---- Error frames and codes -------------------------------------------------- */

static Vigil__V1__Envelope *parse_one(const vg_buf_t *b)
{
	Vigil__V1__Envelope *got;
	size_t consumed;
	cr_assert_eq(parse_exact(b->data, b->len, VG_DEFAULT_MAX_FRAME, &got, &consumed), 0);
	cr_assert_eq(consumed, b->len);
	cr_assert_eq(got->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	return got;
}

Test(errors, append_error_frame)
{
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(
	    vg_frame_append_error(&b, 77, VG_ESYNTAX, "expected FROM, found 'FORM'", 1, 23, false),
	    0);
	Vigil__V1__Envelope *got = parse_one(&b);
	cr_assert_eq(got->id, 77);
	cr_assert_eq(got->error->code, VIGIL__V1__ERROR_CODE__ERROR_SYNTAX);
	cr_assert_str_eq(got->error->message, "expected FROM, found 'FORM'");
	cr_assert_eq(got->error->line, 1);
	cr_assert_eq(got->error->column, 23);
	cr_assert_eq(got->error->fatal, 0);
	vg_frame_free_envelope(got);
	vg_buf_release(&b);

	cr_assert_eq(vg_frame_append_error(&b, 0, VG_ELIMIT, NULL, 0, 0, true), 0);
	got = parse_one(&b);
	cr_assert_eq(got->id, 0);
	cr_assert_eq(got->error->code, VIGIL__V1__ERROR_CODE__ERROR_LIMIT);
	cr_assert_str_eq(got->error->message, "limit exceeded", "NULL means vg_strerror(code)");
	cr_assert_eq(got->error->fatal, 1);
	vg_frame_free_envelope(got);
	vg_buf_release(&b);
}

Test(errors, messages_are_valid_utf8_and_bounded)
{
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(
	    vg_frame_append_error(&b, 1, VG_EINVAL, "tag 'a\xff\xc0\x80z' \xe2\x82", 0, 0, false),
	    0);
	Vigil__V1__Envelope *got = parse_one(&b);
	cr_assert_str_eq(got->error->message,
	                 "tag 'a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz' \xEF\xBF\xBD\xEF\xBF\xBD");
	vg_frame_free_envelope(got);
	vg_buf_release(&b);

	/* 10000 bytes of 3-byte characters: cut at a character boundary. */
	char *long_msg = malloc(10001);
	for (int i = 0; i < 10000; i += 4)
		memcpy(long_msg + i, "a\xe2\x9c\x93", 4);
	long_msg[10000] = '\0';
	cr_assert_eq(vg_frame_append_error(&b, 1, VG_EINVAL, long_msg, 0, 0, false), 0);
	got = parse_one(&b);
	size_t n = strlen(got->error->message);
	cr_assert_leq(n, VG_ERROR_MESSAGE_MAX);
	cr_assert_gt(n, VG_ERROR_MESSAGE_MAX - 8);
	cr_assert_eq(strcmp(got->error->message + n - 3, "..."), 0);
	cr_assert(vg_utf8_is_clean(got->error->message, n));
	vg_frame_free_envelope(got);
	vg_buf_release(&b);

	/* Exactly the limit passes untouched. */
	memset(long_msg, 'x', VG_ERROR_MESSAGE_MAX);
	long_msg[VG_ERROR_MESSAGE_MAX] = '\0';
	cr_assert_eq(vg_frame_append_error(&b, 1, VG_EINVAL, long_msg, 0, 0, false), 0);
	got = parse_one(&b);
	cr_assert_str_eq(got->error->message, long_msg);
	vg_frame_free_envelope(got);
	vg_buf_release(&b);
	free(long_msg);
}

Test(errors, code_mapping)
{
	cr_assert_eq(vg_error_to_wire(0), VIGIL__V1__ERROR_CODE__ERROR_UNSPECIFIED);
	cr_assert_eq(vg_error_to_wire(VG_EINVAL), VIGIL__V1__ERROR_CODE__ERROR_INVALID);
	cr_assert_eq(vg_error_to_wire(VG_ESYNTAX), VIGIL__V1__ERROR_CODE__ERROR_SYNTAX);
	cr_assert_eq(vg_error_to_wire(VG_ENOTFOUND), VIGIL__V1__ERROR_CODE__ERROR_NOT_FOUND);
	cr_assert_eq(vg_error_to_wire(VG_ELIMIT), VIGIL__V1__ERROR_CODE__ERROR_LIMIT);
	cr_assert_eq(vg_error_to_wire(VG_EPROTO), VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	cr_assert_eq(vg_error_to_wire(VG_EVERSION), VIGIL__V1__ERROR_CODE__ERROR_VERSION);
	cr_assert_eq(vg_error_to_wire(VG_ESTORE), VIGIL__V1__ERROR_CODE__ERROR_STORAGE);
	cr_assert_eq(vg_error_to_wire(VG_ECORRUPT), VIGIL__V1__ERROR_CODE__ERROR_STORAGE);
	cr_assert_eq(vg_error_to_wire(VG_ETIMEOUT), VIGIL__V1__ERROR_CODE__ERROR_TIMEOUT);
	cr_assert_eq(vg_error_to_wire(VG_ECANCELED), VIGIL__V1__ERROR_CODE__ERROR_CANCELED);
	cr_assert_eq(vg_error_to_wire(VG_EOVERFLOW), VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW);
	cr_assert_eq(vg_error_to_wire(VG_ECLOSED), VIGIL__V1__ERROR_CODE__ERROR_SHUTDOWN);
	cr_assert_eq(vg_error_to_wire(VG_EEXIST), VIGIL__V1__ERROR_CODE__ERROR_EXISTS);
	cr_assert_eq(vg_error_to_wire(VG_ENOMEM), VIGIL__V1__ERROR_CODE__ERROR_INTERNAL);
	cr_assert_eq(vg_error_to_wire(VG_EAGAIN), VIGIL__V1__ERROR_CODE__ERROR_INTERNAL);
	cr_assert_eq(vg_error_to_wire(-ENOSPC), VIGIL__V1__ERROR_CODE__ERROR_INTERNAL);

	/* Every wire code this schema defines maps back, and round-trips when
	 * it has a unique source; a new code without a mapping fails here. */
	const ProtobufCEnumDescriptor *d = &vigil__v1__error_code__descriptor;
	for (unsigned i = 0; i < d->n_values; i++) {
		Vigil__V1__ErrorCode wire = d->values[i].value;
		int code = vg_error_from_wire(wire);
		if (wire == VIGIL__V1__ERROR_CODE__ERROR_UNSPECIFIED ||
		    wire == VIGIL__V1__ERROR_CODE__ERROR_INTERNAL) {
			cr_assert_eq(code, VG_EPROTO);
			continue;
		}
		cr_assert_eq(vg_error_to_wire(code), wire, "%s does not round-trip",
		             d->values[i].name);
	}
	cr_assert_eq(vg_error_from_wire((Vigil__V1__ErrorCode)999), VG_EPROTO,
	             "a newer server's code is not guessed at");
	cr_assert_eq(vg_error_from_wire(VIGIL__V1__ERROR_CODE__ERROR_STORAGE), VG_ESTORE);
}

Test(errors, allocator_routes_through_hook)
{
	const ProtobufCAllocator *a = vg_proto_allocator();
	cr_assert_not_null(a);
	cr_assert_eq(a, vg_proto_allocator(), "one shared object");
	vg_alloc_fail_after(0);
	void *p = a->alloc(a->allocator_data, 16);
	vg_alloc_fail_after(-1);
	cr_assert_null(p, "vg_alloc_fail_after reaches protobuf-c allocations");
	p = a->alloc(a->allocator_data, 16);
	cr_assert_not_null(p);
	a->free(a->allocator_data, p);
}
