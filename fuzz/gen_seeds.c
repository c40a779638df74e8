/*
 * gen_seeds.c — writes the binary seeds of fuzz/corpus/ reproducibly:
 *
 *   fuzz_gen_seeds DIR      writes DIR/fuzz_frame/seed-* and DIR/fuzz_chunk/seed-*
 *
 * The text harnesses' seeds (fuzz_query, fuzz_lineproto) are committed as
 * written.  Frame seeds are connection streams as a client sends them: one
 * valid frame of each request type, a pipelined stream, and a few refused
 * frames (a NUL in a string, an unknown field, a truncated varint, an
 * oversized length).  Chunk seeds are encoded with vg_chunk_encode() from
 * deterministic series of several shapes (ALP and XOR encodings,
 * exceptions, extreme times, one point, many points) and prefixed with the
 * mode byte of fuzz_chunk.c: mode 0 (as stored), mode 2 (header plus the
 * decompressed payload) and mode 3 (point descriptions).
 */
#define ZSTD_STATIC_LINKING_ONLY
#include "chunk.h"
#include "vg_proto.h"

#include <zstd.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_gen_seeds: %s\n", what);
	exit(1);
}

static void write_seed(const char *harness, const char *name, const void *data, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", root, harness);
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
		die("cannot create the corpus directory");
	snprintf(path, sizeof path, "%s/%s/seed-%s", root, harness, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die("cannot write a seed");
}

/* ---- frames ------------------------------------------------------------- */

static void append(vg_buf_t *b, Vigil__V1__Envelope *env)
{
	if (vg_frame_append(b, env) != 0)
		die("vg_frame_append failed");
}

static void frame_seed(const char *name, Vigil__V1__Envelope *env)
{
	vg_buf_t b = VG_BUF_INIT;
	append(&b, env);
	write_seed("fuzz_frame", name, b.data, b.len);
	vg_buf_release(&b);
}

static void gen_frames(void)
{
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;

	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = VG_PROTOCOL_VERSION;
	hello.client_name = "vigil-cli/0.1";
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	frame_seed("hello", &env);

	Vigil__V1__Tag tag_host = VIGIL__V1__TAG__INIT, tag_region = VIGIL__V1__TAG__INIT;
	tag_host.key = "host";
	tag_host.value = "db1";
	tag_region.key = "region";
	tag_region.value = "eu-west \xc3\xa9t\xc3\xa9"; /* UTF-8 */
	Vigil__V1__Tag *tags[] = {&tag_host, &tag_region};
	int64_t times[] = {1767225600000000000, 1767225601000000000, 1767225602000000000};
	double user[] = {12.5, 13.0, NAN};
	double idle[] = {80.0, -0.0, INFINITY};
	Vigil__V1__WriteField f_user = VIGIL__V1__WRITE_FIELD__INIT,
	                      f_idle = VIGIL__V1__WRITE_FIELD__INIT;
	f_user.name = "usage_user";
	f_user.n_values = 3;
	f_user.values = user;
	f_idle.name = "usage_idle";
	f_idle.n_values = 3;
	f_idle.values = idle;
	Vigil__V1__WriteField *fields[] = {&f_user, &f_idle};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = "cpu";
	block.n_tags = 2;
	block.tags = tags;
	block.n_times = 3;
	block.times = times;
	block.n_fields = 2;
	block.fields = fields;
	Vigil__V1__WriteBlock block2 = VIGIL__V1__WRITE_BLOCK__INIT;
	block2.measurement = "mem";
	block2.n_times = 1;
	block2.times = times;
	block2.n_fields = 1;
	block2.fields = fields;
	Vigil__V1__WriteBlock *blocks[] = {&block, &block2};
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	write.n_blocks = 1;
	write.blocks = blocks;
	env.id = 2;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &write;
	frame_seed("write", &env);
	/* A refused write: the second block's field has 3 values for 1 time. */
	write.n_blocks = 2;
	frame_seed("write-bad-count", &env);
	/* A refused write: duplicate tag key, bad names. */
	tag_region.key = "host";
	write.n_blocks = 1;
	frame_seed("write-dup-tag", &env);
	tag_region.key = "re gion";
	block.measurement = "9cpu";
	frame_seed("write-bad-name", &env);
	block.measurement = "cpu";
	tag_region.key = "region";

	static const char *queries[] = {
	    ("SELECT mean(usage_user) FROM cpu WHERE host = 'db1' AND time > now() - 1h "
	     "GROUP BY time(5m), region FILL(previous) LIMIT 10"),
	    "SHOW TAG VALUES FROM cpu WITH KEY = host",
	    "SELECT * FROM cpu WHERE host =~ /^db[0-9]+$/ ORDER BY time DESC",
	};
	Vigil__V1__Query query = VIGIL__V1__QUERY__INIT;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_QUERY;
	env.query = &query;
	for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
		char name[32];
		snprintf(name, sizeof name, "query-%zu", i);
		query.statement = (char *)queries[i];
		env.id = 10 + i;
		frame_seed(name, &env);
	}

	Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
	sub.statement = "SUBSCRIBE SELECT max(heart_rate) FROM vitals WHERE patient = 'p1' "
	                "GROUP BY time(10s) SINCE now() - 1m LATENESS 2s";
	env.id = 20;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &sub;
	frame_seed("subscribe", &env);
	sub.statement = "SUBSCRIBE SELECT heart_rate FROM vitals WHERE heart_rate > 120";
	sub.has_since = true;
	sub.since = 1767225600000000000;
	frame_seed("subscribe-since", &env);

	Vigil__V1__Unsubscribe unsub = VIGIL__V1__UNSUBSCRIBE__INIT;
	unsub.subscription_id = 20;
	env.id = 21;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_UNSUBSCRIBE;
	env.unsubscribe = &unsub;
	frame_seed("unsubscribe", &env);

	Vigil__V1__Cancel cancel = VIGIL__V1__CANCEL__INIT;
	cancel.request_id = 10;
	env.id = 22;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_CANCEL;
	env.cancel = &cancel;
	frame_seed("cancel", &env);

	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	ping.nonce = 42;
	env.id = 23;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	frame_seed("ping", &env);

	/* A pipelined stream: Hello, Write, Query, Ping, then half a frame. */
	vg_buf_t b = VG_BUF_INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	append(&b, &env);
	env.id = 2;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &write;
	append(&b, &env);
	env.id = 3;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_QUERY;
	query.statement = "SELECT usage_user FROM cpu";
	env.query = &query;
	append(&b, &env);
	env.id = 4;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	append(&b, &env);
	size_t whole = b.len;
	append(&b, &env);
	write_seed("fuzz_frame", "stream", b.data, whole + 5);
	vg_buf_release(&b);

	/* Refused frames, as raw bytes. */
	static const uint8_t nul_in_string[] = {0,    0,    0,    9,   0x08, 0x05, 0x22,
	                                        0x05, 0x0a, 0x03, 'a', 0,    'b'};
	write_seed("fuzz_frame", "nul-in-string", nul_in_string, sizeof nul_in_string);
	static const uint8_t unknown_field[] = {0, 0, 0, 6, 0x08, 0x07, 0xfa, 0x01, 0x01, 0x00};
	write_seed("fuzz_frame", "unknown-field", unknown_field, sizeof unknown_field);
	static const uint8_t truncated[] = {0, 0, 0, 4, 0x08, 0xff, 0xff, 0xff};
	write_seed("fuzz_frame", "truncated-varint", truncated, sizeof truncated);
	static const uint8_t oversized[] = {0x7f, 0xff, 0xff, 0xff, 0x08, 0x01};
	write_seed("fuzz_frame", "oversized", oversized, sizeof oversized);
	/* A response type sent as a request (the server answers PROTOCOL). */
	static const uint8_t pong[] = {0, 0, 0, 6, 0x08, 0x01, 0xb2, 0x01, 0x01, 0x00};
	write_seed("fuzz_frame", "response-type", pong, sizeof pong);
}

/* ---- chunks ------------------------------------------------------------- */

#define MAX_SEED_POINTS 1024

static vg_codec_t *codec;
static int64_t t[MAX_SEED_POINTS];
static double v[MAX_SEED_POINTS];

/* A deterministic generator (xorshift64*), so the seeds never change. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static double from_bits(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

static void chunk_seed(const char *name, size_t n)
{
	vg_buf_t b = VG_BUF_INIT;
	if (vg_buf_putc(&b, 0) != 0 || vg_chunk_encode(codec, t, v, n, &b) != 0)
		die("vg_chunk_encode failed");
	char full[64];
	snprintf(full, sizeof full, "raw-%s", name);
	write_seed("fuzz_chunk", full, b.data, b.len);

	/* Mode 2: the same header, then the decompressed payload. */
	const uint8_t *chunk = b.data + 1;
	size_t len = b.len - 1;
	uint32_t raw_len = (uint32_t)chunk[72] | (uint32_t)chunk[73] << 8 |
	                   (uint32_t)chunk[74] << 16 | (uint32_t)chunk[75] << 24;
	uint8_t *out = malloc(1 + VG_CHUNK_HEADER_SIZE + raw_len);
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!out || !d ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_format, ZSTD_f_zstd1_magicless)))
		die("zstd setup failed");
	out[0] = 2;
	memcpy(out + 1, chunk, VG_CHUNK_HEADER_SIZE);
	size_t got = ZSTD_decompressDCtx(d, out + 1 + VG_CHUNK_HEADER_SIZE, raw_len,
	                                 chunk + VG_CHUNK_HEADER_SIZE, len - VG_CHUNK_HEADER_SIZE);
	if (ZSTD_isError(got) || got != raw_len)
		die("cannot decompress a fresh chunk");
	snprintf(full, sizeof full, "payload-%s", name);
	write_seed("fuzz_chunk", full, out, 1 + VG_CHUNK_HEADER_SIZE + raw_len);
	ZSTD_freeDCtx(d);
	free(out);
	vg_buf_release(&b);
}

static void gen_chunks(void)
{
	if (vg_codec_new(&codec) != 0)
		die("vg_codec_new failed");
	const int64_t t0 = 1767225600000000000;

	/* Regular 10 s series of one-decimal temperatures: ALP, e = 1. */
	for (size_t i = 0; i < 256; i++) {
		t[i] = t0 + (int64_t)i * 10000000000;
		v[i] = round((20.0 + (double)(rng() % 100) / 10.0) * 10) / 10;
	}
	chunk_seed("alp-regular", 256);

	/* Jittered times, full-precision random walk: XOR. */
	double x = 1.0;
	for (size_t i = 0; i < 200; i++) {
		t[i] = t0 + (int64_t)i * 1000000000 + (int64_t)(rng() % 1000);
		x += ((double)(rng() % 2000001) - 1000000.0) / 3e6;
		v[i] = x;
	}
	chunk_seed("xor-walk", 200);

	/* Decimals with exceptions: NaN payloads, infinities, -0.0, a denormal. */
	for (size_t i = 0; i < 64; i++) {
		t[i] = t0 + (int64_t)i * 1000;
		v[i] = (double)(int64_t)(rng() % 10000) / 100.0;
	}
	v[3] = NAN;
	v[10] = from_bits(0x7ff0000000000001ull);
	v[20] = INFINITY;
	v[21] = -INFINITY;
	v[40] = -0.0;
	v[63] = from_bits(1);
	chunk_seed("alp-exceptions", 64);

	/* One point. */
	t[0] = t0;
	v[0] = 42.0;
	chunk_seed("one-point", 1);

	/* Extreme times: INT64_MIN, INT64_MAX and large irregular gaps. */
	t[0] = INT64_MIN;
	t[1] = -1;
	t[2] = 0;
	t[3] = 1;
	t[4] = INT64_MAX - 5;
	t[5] = INT64_MAX;
	for (size_t i = 0; i < 6; i++)
		v[i] = (double)i * 1e300;
	chunk_seed("extreme-times", 6);

	/* Integers (heart rate), 1 s apart with a few gaps: ALP, e = 0. */
	int64_t tt = t0;
	for (size_t i = 0; i < MAX_SEED_POINTS; i++) {
		tt += i % 97 == 0 ? 7000000000 : 1000000000;
		t[i] = tt;
		v[i] = (double)(60 + rng() % 40);
	}
	chunk_seed("alp-integers", MAX_SEED_POINTS);

	/* All NaN (value_count 0, min and max NaN). */
	for (size_t i = 0; i < 16; i++) {
		t[i] = t0 + (int64_t)i;
		v[i] = NAN;
	}
	chunk_seed("all-nan", 16);
	vg_codec_free(codec);

	/* Mode 3 seeds: point descriptions (see derive_points in fuzz_chunk.c). */
	static const uint8_t decimals[] = {3,    0,    0,    0,    0,    0,    0,    0,    0x60,
	                                   0x05, 0x11, 0x12, 0x13, 0x10, 0xff, 0x11, 0x01, 0x00,
	                                   0x00, 0x00, 0x30, 0x31, 0x32, 0x33, 0x11, 0x05};
	write_seed("fuzz_chunk", "points-decimals", decimals, sizeof decimals);
	static const uint8_t rawvals[] = {3,    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	                                  0x80, 0x60, 0x8f, 0x01, 0x02, 0x03, 0x04, 0x05,
	                                  0x06, 0x07, 0x08, 0x20, 0xff, 0xff, 0xff, 0xff,
	                                  0xff, 0xff, 0xff, 0x7f, 0x40, 0xbe, 0x00, 0x00};
	write_seed("fuzz_chunk", "points-raw", rawvals, sizeof rawvals);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_gen_seeds CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	gen_frames();
	gen_chunks();
	return 0;
}
