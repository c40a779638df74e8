/*
 * test_chunk.c — the chunk codec (storage/chunk.c) and CRC32C.
 *
 * Every round trip is compared bit by bit (memcmp of the 64-bit patterns,
 * so NaN payloads and -0.0 count) and every header against a brute-force
 * computation.  Damaged input is fed three ways: truncated and bit-flipped
 * chunks (the CRCs must catch them), chunks whose payload or header was
 * altered and then re-checksummed (the structural checks must catch them or
 * decode cleanly), and chunks that end exactly where readable memory ends.
 * Allocation failure is injected at every allocation the codec makes.
 */
#include "vg_test.h"

#include "chunk.h"
#include "vg_alloc.h"
#include "vg_error.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_format, to build damaged payloads */
#include <zstd.h>

#include <float.h>
#include <math.h>
#include <sys/mman.h>

#define MAXN VG_CHUNK_MAX_POINTS
#define HDR VG_CHUNK_HEADER_SIZE

static uint64_t bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	return u;
}

static double from_bits(uint64_t u)
{
	double d;
	memcpy(&d, &u, 8);
	return d;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static double uniform(vg_test_rng_t *rng)
{
	return (double)(vg_test_next(rng) >> 11) * 0x1p-53;
}

static double gaussian(vg_test_rng_t *rng)
{
	double u = uniform(rng), v = uniform(rng);
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* ---- the reference ----------------------------------------------------- */

/* What the header must say, computed the obvious way. */
static vg_chunk_header_t expected_header(const int64_t *t, const double *v, size_t n)
{
	vg_chunk_header_t h = {0};
	h.count = (uint32_t)n;
	h.min_time = t[0];
	h.max_time = t[n - 1];
	h.min_value = NAN;
	h.max_value = NAN;
	h.sum = 0.0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		if (h.value_count == 0 || v[i] < h.min_value)
			h.min_value = v[i];
		if (h.value_count == 0 || v[i] > h.max_value)
			h.max_value = v[i];
		h.sum += v[i];
		h.value_count++;
	}
	h.first_value = v[0];
	h.last_value = v[n - 1];
	return h;
}

static bool value_in(double x, const double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bits(v[i]) == bits(x))
			return true;
	return false;
}

static void check_header(const vg_chunk_header_t *got, const int64_t *t, const double *v, size_t n)
{
	vg_chunk_header_t want = expected_header(t, v, n);
	cr_assert_eq(got->count, want.count);
	cr_assert_eq(got->value_count, want.value_count);
	cr_assert_eq(got->min_time, want.min_time);
	cr_assert_eq(got->max_time, want.max_time);
	if (want.value_count == 0) {
		cr_assert(isnan(got->min_value) && isnan(got->max_value));
	} else {
		/* Numerically equal; which zero represents ±0 ties is free. */
		cr_assert(got->min_value == want.min_value, "min %a want %a", got->min_value,
		          want.min_value);
		cr_assert(got->max_value == want.max_value, "max %a want %a", got->max_value,
		          want.max_value);
		cr_assert(value_in(got->min_value, v, n) && value_in(got->max_value, v, n));
	}
	cr_assert_eq(bits(got->sum), bits(want.sum), "sum %a want %a", got->sum, want.sum);
	cr_assert_eq(bits(got->first_value), bits(want.first_value));
	cr_assert_eq(bits(got->last_value), bits(want.last_value));
	cr_assert(got->encoding == VG_CHUNK_ENC_ALP || got->encoding == VG_CHUNK_ENC_XOR);
}

/* Encodes, checks the header, decodes and compares bit by bit; the chunk is
 * left in *out (appended after whatever it held). */
static void round_trip_into(vg_codec_t *codec, const int64_t *t, const double *v, size_t n,
                            vg_buf_t *out)
{
	size_t before = out->len;
	cr_assert_eq(vg_chunk_encode(codec, t, v, n, out), 0, "encode n=%zu", n);
	cr_assert_gt(out->len, before + HDR);
	cr_assert_lt(out->len, out->cap, "vg_buf invariant");
	const uint8_t *chunk = out->data + before;
	size_t len = out->len - before;

	vg_chunk_header_t h;
	cr_assert_eq(vg_chunk_header_read(chunk, len, &h), 0);
	check_header(&h, t, v, n);

	static int64_t times[MAXN];
	static double values[MAXN];
	size_t count = 0;
	cr_assert_eq(vg_chunk_decode(codec, chunk, len, times, values, MAXN, &count), 0,
	             "decode n=%zu", n);
	cr_assert_eq(count, n);
	cr_assert_eq(memcmp(times, t, n * sizeof *t), 0, "times differ, n=%zu", n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(bits(values[i]), bits(v[i]), "value %zu of %zu: %016llx want %016llx",
		             i, n, (unsigned long long)bits(values[i]),
		             (unsigned long long)bits(v[i]));
}

/* Round trip; returns the encoding chosen and the chunk size. */
static uint8_t round_trip(vg_codec_t *codec, const int64_t *t, const double *v, size_t n,
                          size_t *size)
{
	vg_buf_t out = VG_BUF_INIT;
	round_trip_into(codec, t, v, n, &out);
	uint8_t encoding = out.data[5];
	if (size)
		*size = out.len;
	vg_buf_release(&out);
	return encoding;
}

static vg_codec_t *new_codec(void)
{
	vg_codec_t *codec = NULL;
	cr_assert_eq(vg_codec_new(&codec), 0);
	cr_assert_not_null(codec);
	return codec;
}

/* ---- generators -------------------------------------------------------- */

static int64_t T[MAXN];
static double V[MAXN];

static void regular_times(int64_t *t, size_t n, int64_t start, int64_t step)
{
	for (size_t i = 0; i < n; i++)
		t[i] = start + (int64_t)i * step;
}

/* Strictly increasing, gaps drawn from 1 ns to ~1 s, some repeated. */
static void irregular_times(vg_test_rng_t *rng, int64_t *t, size_t n)
{
	t[0] = (int64_t)vg_test_next(rng) >> 2;
	int64_t gap = 1 + (int64_t)vg_test_below(rng, 1000000000);
	for (size_t i = 1; i < n; i++) {
		if (vg_test_below(rng, 3) == 0)
			gap = 1 + (int64_t)vg_test_below(rng, 1000000000);
		t[i] = t[i - 1] + gap;
	}
}

/* INT64_MIN first and INT64_MAX last, random distinct times between. */
static void extreme_times(vg_test_rng_t *rng, int64_t *t, size_t n)
{
	t[0] = INT64_MIN;
	for (size_t i = 1; i < n; i++) {
		uint64_t room = (uint64_t)INT64_MAX - (uint64_t)t[i - 1]; /* to INT64_MAX */
		uint64_t left = n - 1 - i;                                /* still to place */
		uint64_t step = 1 + vg_test_below(rng, (room - left) / (left + 1) * 2 + 1);
		if (step > room - left)
			step = room - left;
		t[i] = (int64_t)((uint64_t)t[i - 1] + step);
	}
	if (n > 1)
		t[n - 1] = INT64_MAX;
}

/* A random walk, sd 1 per step, clamped to [0, 100], rounded to `digits`
 * decimals (digits < 0: full precision). */
static void walk(vg_test_rng_t *rng, double *v, size_t n, int digits)
{
	double x = 50.0;
	for (size_t i = 0; i < n; i++) {
		x += gaussian(rng);
		x = x < 0 ? 0 : x > 100 ? 100 : x;
		if (digits < 0) {
			v[i] = x;
		} else {
			double scale = pow(10.0, digits);
			v[i] = round(x * scale) / scale;
		}
	}
}

static const uint64_t special_bits[] = {
    0x7ff8000000000000ull, /* the default quiet NaN */
    0x7ff8000000000123ull, /* quiet NaN with a payload */
    0x7ff0000000000001ull, /* signalling NaN */
    0x7ff4000000000abcull, /* signalling NaN with a payload */
    0xfff8000000000000ull, /* negative NaN */
    0xffffffffffffffffull, /* negative NaN, all payload bits */
    0x7ff0000000000000ull, /* +Inf */
    0xfff0000000000000ull, /* -Inf */
    0x8000000000000000ull, /* -0.0 */
    0x0000000000000000ull, /* +0.0 */
    0x0000000000000001ull, /* smallest denormal */
    0x800fffffffffffffull, /* largest negative denormal */
    0x000ffffffffffffeull, /* denormal */
    0x7fefffffffffffffull, /* DBL_MAX */
    0xffefffffffffffffull, /* -DBL_MAX */
    0x0010000000000000ull, /* DBL_MIN */
};
#define NSPECIAL (sizeof special_bits / sizeof special_bits[0])

static double special(vg_test_rng_t *rng)
{
	return from_bits(special_bits[vg_test_below(rng, NSPECIAL)]);
}

/* One of many kinds of values, with specials sprinkled in at some rate. */
static void random_values(vg_test_rng_t *rng, double *v, size_t n)
{
	double c = round(uniform(rng) * 1000) / 10;
	switch (vg_test_below(rng, 9)) {
	case 0: /* constant */
		for (size_t i = 0; i < n; i++)
			v[i] = c;
		break;
	case 1: /* monotonic */
		for (size_t i = 0; i < n; i++)
			v[i] = (double)i * 0.25 - 100;
		break;
	case 2: /* any 64 bits, NaNs included */
		for (size_t i = 0; i < n; i++)
			v[i] = from_bits(vg_test_next(rng));
		break;
	case 3: /* magnitudes from 1e-20 to 1e20 */
		for (size_t i = 0; i < n; i++)
			v[i] =
			    (uniform(rng) - 0.5) * pow(10.0, (double)vg_test_below(rng, 40) - 20);
		break;
	case 4: /* decimals of 0..6 digits */
		walk(rng, v, n, (int)vg_test_below(rng, 7));
		break;
	case 5:
		walk(rng, v, n, -1);
		break;
	case 6: /* integers of every size */
		for (size_t i = 0; i < n; i++) {
			int64_t x = (int64_t)(vg_test_next(rng) >> (11 + vg_test_below(rng, 50)));
			v[i] = (double)(vg_test_below(rng, 2) ? x : -x);
		}
		break;
	case 7: /* decimals whose d comes close to 2^53 */
		for (size_t i = 0; i < n; i++)
			v[i] = (double)(int64_t)vg_test_below(rng, 9007199254740991ull) / 1e4;
		break;
	default:
		for (size_t i = 0; i < n; i++)
			v[i] = special(rng);
		break;
	}
	uint64_t special_rate = vg_test_below(rng, 4) == 0 ? 0 : 1 + vg_test_below(rng, 50);
	if (special_rate)
		for (size_t i = 0; i < n; i++)
			if (vg_test_below(rng, special_rate) == 0)
				v[i] = special(rng);
}

static void random_times(vg_test_rng_t *rng, int64_t *t, size_t n)
{
	switch (vg_test_below(rng, 4)) {
	case 0:
		regular_times(t, n, (int64_t)(vg_test_next(rng) >> 3),
		              1 + (int64_t)vg_test_below(rng, 60000000000));
		break;
	case 1:
		irregular_times(rng, t, n);
		break;
	case 2:
		extreme_times(rng, t, n);
		break;
	default:
		regular_times(t, n, -(int64_t)(vg_test_next(rng) >> 2), 10000000000);
		for (size_t i = 1; i < n; i++) /* jitter of up to ±1 ms */
			t[i] += (int64_t)vg_test_below(rng, 2000001) - 1000000;
		break;
	}
}

/* ---- CRC32C ------------------------------------------------------------ */

static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* White box: this file's own copy of crc32c.c, renamed, so that both back
 * ends can be checked whatever the CPU running the test has. */
#define vg_crc32c crc32c_whitebox_copy
#include "crc32c.c"
#undef vg_crc32c

Test(crc32c, both_back_ends_match_the_reference)
{
	pthread_once(&tables_once, build_tables);
	static uint8_t buf[5000];
	vg_test_rng_t rng = {43};
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)vg_test_next(&rng);
	for (size_t len = 0; len < 2400; len += 1 + len / 64) {
		for (size_t off = 0; off < 9; off++) {
			uint32_t want = crc32c_bitwise(buf + off, len);
			cr_assert_eq(~crc32c_portable(~0u, buf + off, len), want, "len %zu", len);
#ifdef HAVE_CRC32C_SSE42
			if (have_sse42)
				cr_assert_eq(~crc32c_sse42(~0u, buf + off, len), want, "len %zu",
				             len);
#endif
		}
	}
}

Test(crc32c, check_value_and_reference)
{
	cr_assert_eq(vg_crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(vg_crc32c(0, "", 0), 0u);
	static uint8_t buf[20000];
	vg_test_rng_t rng = {42};
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)vg_test_next(&rng);
	/* Every length to 1100 (past the interleaved 768-byte blocks) and
	 * every alignment, then long buffers; and split computations. */
	for (size_t len = 0; len < 1100; len++) {
		size_t off = len % 16;
		cr_assert_eq(vg_crc32c(0, buf + off, len), crc32c_bitwise(buf + off, len),
		             "len %zu", len);
	}
	for (int k = 0; k < 50; k++) {
		size_t off = vg_test_below(&rng, 64), len = vg_test_below(&rng, sizeof buf - 64);
		size_t cut = vg_test_below(&rng, len + 1);
		uint32_t whole = vg_crc32c(0, buf + off, len);
		cr_assert_eq(whole, crc32c_bitwise(buf + off, len));
		cr_assert_eq(vg_crc32c(vg_crc32c(0, buf + off, cut), buf + off + cut, len - cut),
		             whole);
	}
}

/* ---- round trips ------------------------------------------------------- */

Test(chunk, single_point)
{
	vg_codec_t *codec = new_codec();
	const int64_t times[] = {INT64_MIN, -1, 0, 1, INT64_MAX};
	for (size_t ti = 0; ti < sizeof times / sizeof times[0]; ti++) {
		for (size_t s = 0; s < NSPECIAL; s++) {
			double v = from_bits(special_bits[s]);
			round_trip(codec, &times[ti], &v, 1, NULL);
		}
		double plain[] = {21.5, -3.0, 1e300, 0.1, 123456.789};
		for (size_t s = 0; s < sizeof plain / sizeof plain[0]; s++)
			round_trip(codec, &times[ti], &plain[s], 1, NULL);
	}
	vg_codec_free(codec);
}

Test(chunk, full_chunk_of_each_kind)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {7};
	regular_times(T, MAXN, 1700000000000000000, 10000000000);
	for (size_t i = 0; i < MAXN; i++)
		V[i] = 42.0; /* constant */
	cr_assert_eq(round_trip(codec, T, V, MAXN, NULL), VG_CHUNK_ENC_ALP);
	for (size_t i = 0; i < MAXN; i++)
		V[i] = (double)i; /* monotonic */
	round_trip(codec, T, V, MAXN, NULL);
	for (size_t i = 0; i < MAXN; i++)
		V[i] = (double)i * 1e-3 + 0.5;
	round_trip(codec, T, V, MAXN, NULL);
	for (int digits = 0; digits <= 4; digits++) {
		walk(&rng, V, MAXN, digits);
		cr_assert_eq(round_trip(codec, T, V, MAXN, NULL), VG_CHUNK_ENC_ALP, "%d digits",
		             digits);
	}
	walk(&rng, V, MAXN, -1);
	cr_assert_eq(round_trip(codec, T, V, MAXN, NULL), VG_CHUNK_ENC_XOR);
	for (size_t i = 0; i < MAXN; i++)
		V[i] = from_bits(vg_test_next(&rng));
	round_trip(codec, T, V, MAXN, NULL);
	vg_codec_free(codec);
}

Test(chunk, special_values_among_decimals_and_full_precision)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {11};
	for (int round = 0; round < 40; round++) {
		size_t n = 1 + vg_test_below(&rng, MAXN);
		irregular_times(&rng, T, n);
		walk(&rng, V, n, round % 2 ? 2 : -1);
		size_t every = 1 + vg_test_below(&rng, 20);
		for (size_t i = 0; i < n; i += every)
			V[i] = special(&rng);
		V[0] = special(&rng); /* the first value is the base of both encodings */
		round_trip(codec, T, V, n, NULL);
	}
	/* Zero of both signs alternating, and all specials in a row. */
	regular_times(T, 64, 0, 1);
	for (size_t i = 0; i < 64; i++)
		V[i] = i % 3 ? 0.0 : -0.0;
	round_trip(codec, T, V, 64, NULL);
	for (size_t i = 0; i < NSPECIAL; i++)
		V[i] = from_bits(special_bits[i]);
	round_trip(codec, T, V, NSPECIAL, NULL);
	/* Only NaNs: value_count 0, min and max NaN. */
	regular_times(T, 100, 0, 1);
	for (size_t i = 0; i < 100; i++)
		V[i] = from_bits(0x7ff8000000000000ull + i);
	round_trip(codec, T, V, 100, NULL);
	vg_codec_free(codec);
}

Test(chunk, extreme_and_irregular_times)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {13};
	int64_t two[] = {INT64_MIN, INT64_MAX};
	double vals[] = {1.0, 2.0};
	round_trip(codec, two, vals, 2, NULL);
	for (int round = 0; round < 30; round++) {
		size_t n = 2 + vg_test_below(&rng, MAXN - 1);
		extreme_times(&rng, T, n);
		walk(&rng, V, n, 1);
		round_trip(codec, T, V, n, NULL);
	}
	/* Huge jumps: steps alternating between 1 ns and 2^61 ns. */
	T[0] = INT64_MIN + 5;
	for (size_t i = 1; i < 16; i++)
		T[i] = T[i - 1] + (i % 2 ? 1 : INT64_C(1) << 61);
	walk(&rng, V, 16, 0);
	round_trip(codec, T, V, 16, NULL);
	/* Regular with a gap and a stretch of 1 ns steps. */
	regular_times(T, MAXN, 0, 15000000000);
	for (size_t i = 1000; i < MAXN; i++)
		T[i] += 86400000000000;
	for (size_t i = 1500; i < 1600; i++)
		T[i] = T[1499] + (int64_t)(i - 1499);
	walk(&rng, V, MAXN, 1);
	round_trip(codec, T, V, MAXN, NULL);
	vg_codec_free(codec);
}

Test(chunk, random_property)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {0x5eed};
	for (int round = 0; round < 400; round++) {
		size_t n = vg_test_below(&rng, 4) == 0 ? 1 + vg_test_below(&rng, 40)
		                                       : 1 + vg_test_below(&rng, MAXN);
		random_times(&rng, T, n);
		random_values(&rng, V, n);
		round_trip(codec, T, V, n, NULL);
	}
	vg_codec_free(codec);
}

Test(chunk, appends_after_existing_bytes)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {17};
	vg_buf_t out = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&out, "prefix", 6), 0);
	regular_times(T, 500, 0, 1000);
	walk(&rng, V, 500, 1);
	round_trip_into(codec, T, V, 500, &out);
	size_t first_end = out.len;
	walk(&rng, V, 500, -1);
	round_trip_into(codec, T, V, 500, &out);
	cr_assert_eq(memcmp(out.data, "prefix", 6), 0);
	vg_chunk_header_t h;
	cr_assert_eq(vg_chunk_header_read(out.data + 6, first_end - 6, &h), 0);
	vg_buf_release(&out);
	vg_codec_free(codec);
}

/* ---- what encode refuses ----------------------------------------------- */

Test(chunk, encode_rejects_bad_input_and_leaves_out_unchanged)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t out = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&out, "xyz", 3), 0);
	uint8_t *data = out.data;
	size_t cap = out.cap;
	static int64_t big_t[MAXN + 1];
	static double big_v[MAXN + 1];
	regular_times(big_t, MAXN + 1, 0, 1);

	cr_assert_eq(vg_chunk_encode(codec, big_t, big_v, 0, &out), VG_EINVAL);
	cr_assert_eq(vg_chunk_encode(codec, big_t, big_v, MAXN + 1, &out), VG_EINVAL);
	int64_t equal[] = {5, 6, 6, 7};
	int64_t down[] = {5, 6, 4};
	int64_t wrap[] = {INT64_MAX, INT64_MIN};
	double v4[] = {1, 2, 3, 4};
	cr_assert_eq(vg_chunk_encode(codec, equal, v4, 4, &out), VG_EINVAL);
	cr_assert_eq(vg_chunk_encode(codec, down, v4, 3, &out), VG_EINVAL);
	cr_assert_eq(vg_chunk_encode(codec, wrap, v4, 2, &out), VG_EINVAL);
	cr_assert_eq(out.len, 3);
	cr_assert_eq(out.cap, cap);
	cr_assert_eq(out.data, data);
	cr_assert_eq(memcmp(out.data, "xyz", 3), 0);
	vg_buf_release(&out);
	vg_codec_free(codec);
}

/* ---- damaged chunks ---------------------------------------------------- */

static int decode_copy(vg_codec_t *codec, const uint8_t *chunk, size_t len)
{
	/* Exact-size heap copies of the input and, once the header tells the
	 * count, of the outputs, so that ASan sees any access past them. */
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, chunk, len);
	vg_chunk_header_t h;
	int hrc = vg_chunk_header_read(copy, len, &h);
	size_t capacity = hrc == 0 ? h.count : MAXN;
	int64_t *times = malloc(capacity * sizeof *times);
	double *values = malloc(capacity * sizeof *values);
	cr_assert(times && values);
	size_t count = 0;
	int rc = vg_chunk_decode(codec, copy, len, times, values, capacity, &count);
	if (rc == 0) {
		/* What a clean decode promises, even of re-checksummed damage. */
		cr_assert_eq(hrc, 0);
		cr_assert_eq(count, h.count);
		cr_assert_eq(times[0], h.min_time);
		cr_assert_eq(times[count - 1], h.max_time);
		for (size_t i = 1; i < count; i++)
			cr_assert_gt(times[i], times[i - 1]);
		cr_assert_eq(bits(values[0]), bits(h.first_value));
		cr_assert_eq(bits(values[count - 1]), bits(h.last_value));
	} else if (hrc) {
		cr_assert_eq(rc, hrc, "decode and header_read agree on a bad header");
	}
	free(copy);
	free(times);
	free(values);
	return rc;
}

/* A few chunks of different shapes, for the damage tests. */
static size_t sample_chunks(vg_codec_t *codec, vg_buf_t *chunks, size_t max)
{
	vg_test_rng_t rng = {23};
	size_t k = 0;
	for (int shape = 0; shape < 6 && k < max; shape++, k++) {
		size_t n = shape == 0 ? 1 : shape == 1 ? 17 : 300 + 300 * (size_t)shape;
		if (shape % 2)
			irregular_times(&rng, T, n);
		else
			regular_times(T, n, 1000, 10);
		walk(&rng, V, n, shape == 4 ? -1 : shape == 5 ? 3 : 1);
		if (shape >= 3)
			for (size_t i = 0; i < n; i += 37)
				V[i] = special(&rng);
		vg_buf_init(&chunks[k]);
		round_trip_into(codec, T, V, n, &chunks[k]);
	}
	return k;
}

Test(chunk, every_truncation_is_corrupt)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunks[6];
	size_t k = sample_chunks(codec, chunks, 6);
	for (size_t c = 0; c < k; c++) {
		for (size_t len = 0; len < chunks[c].len; len++)
			cr_assert_eq(decode_copy(codec, chunks[c].data, len), VG_ECORRUPT,
			             "chunk %zu cut to %zu of %zu", c, len, chunks[c].len);
		vg_chunk_header_t h;
		for (size_t len = 0; len < HDR; len++)
			cr_assert_eq(vg_chunk_header_read(chunks[c].data, len, &h), VG_ECORRUPT);
		vg_buf_release(&chunks[c]);
	}
	vg_codec_free(codec);
}

Test(chunk, every_bit_flip_is_corrupt)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunks[6];
	size_t k = sample_chunks(codec, chunks, 6);
	vg_test_rng_t rng = {29};
	for (size_t c = 0; c < k; c++) {
		uint8_t *p = chunks[c].data;
		size_t len = chunks[c].len;
		/* Every bit of the small chunks, a sample of the large ones. */
		size_t stride = len < 2000 ? 1 : 7;
		for (size_t i = 0; i < len; i += stride)
			for (int b = 0; b < 8; b++) {
				p[i] ^= (uint8_t)(1u << b);
				cr_assert_eq(decode_copy(codec, p, len), VG_ECORRUPT,
				             "chunk %zu byte %zu bit %d", c, i, b);
				p[i] ^= (uint8_t)(1u << b);
			}
		for (int round = 0; round < 300; round++) {
			size_t i = vg_test_below(&rng, len);
			uint8_t old = p[i];
			p[i] = (uint8_t)(old + 1 + vg_test_below(&rng, 255));
			cr_assert_eq(decode_copy(codec, p, len), VG_ECORRUPT, "byte %zu", i);
			p[i] = old;
		}
		cr_assert_eq(decode_copy(codec, p, len), 0);
		vg_buf_release(&chunks[c]);
	}
	vg_codec_free(codec);
}

/* Replaces a chunk's payload by `raw` compressed afresh and fixes raw_len
 * and both checksums: damage that only the structural checks can see. */
static void reseal(vg_buf_t *chunk, const uint8_t *raw, size_t raw_len)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	cr_assert_not_null(cctx);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_format, ZSTD_f_zstd1_magicless);
	size_t bound = ZSTD_compressBound(raw_len);
	cr_assert_eq(vg_buf_reserve(chunk, bound), 0);
	chunk->len = HDR;
	size_t packed = ZSTD_compress2(cctx, chunk->data + HDR, bound, raw, raw_len);
	cr_assert(!ZSTD_isError(packed));
	chunk->len = HDR + packed;
	ZSTD_freeCCtx(cctx);
	put_le32(chunk->data + 72, (uint32_t)raw_len);
	put_le32(chunk->data + 76, vg_crc32c(0, chunk->data + HDR, packed));
	put_le32(chunk->data + 80, vg_crc32c(0, chunk->data, 80));
}

static size_t unpack(const vg_buf_t *chunk, uint8_t *raw, size_t cap)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	cr_assert_not_null(dctx);
	ZSTD_DCtx_setParameter(dctx, ZSTD_d_format, ZSTD_f_zstd1_magicless);
	size_t r = ZSTD_decompressDCtx(dctx, raw, cap, chunk->data + HDR, chunk->len - HDR);
	cr_assert(!ZSTD_isError(r));
	cr_assert_eq(r, le32(chunk->data + 72));
	ZSTD_freeDCtx(dctx);
	return r;
}

Test(chunk, damaged_payload_with_valid_checksums)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunks[6];
	size_t k = sample_chunks(codec, chunks, 6);
	vg_test_rng_t rng = {31};
	static uint8_t raw[200000], bad[200000];
	vg_buf_t work = VG_BUF_INIT;
	size_t clean = 0, corrupt = 0;
	for (size_t c = 0; c < k; c++) {
		size_t raw_len = unpack(&chunks[c], raw, sizeof raw);
		for (int round = 0; round < 400; round++) {
			size_t len = raw_len;
			memcpy(bad, raw, raw_len);
			switch (round % 5) {
			case 0: /* a random byte */
				bad[vg_test_below(&rng, len)] = (uint8_t)vg_test_next(&rng);
				break;
			case 1: /* a run of continuation bytes */
			{
				size_t at = vg_test_below(&rng, len);
				size_t run = 1 + vg_test_below(&rng, 40);
				for (size_t i = at; i < len && i < at + run; i++)
					bad[i] = 0x80 | (uint8_t)vg_test_next(&rng);
				break;
			}
			case 2: /* shorter */
				len = vg_test_below(&rng, len);
				break;
			case 3: /* longer */
			{
				size_t more = 1 + vg_test_below(&rng, 100);
				for (size_t i = 0; i < more; i++)
					bad[len + i] = (uint8_t)vg_test_next(&rng);
				len += more;
				break;
			}
			default: /* several bytes */
				for (int i = 0; i < 8; i++)
					bad[vg_test_below(&rng, len)] = (uint8_t)vg_test_next(&rng);
				break;
			}
			work.len = 0;
			cr_assert_eq(vg_buf_append(&work, chunks[c].data, HDR), 0);
			reseal(&work, bad, len);
			int rc = decode_copy(codec, work.data, work.len);
			cr_assert(rc == 0 || rc == VG_ECORRUPT, "rc %d", rc);
			if (rc == 0)
				clean++;
			else
				corrupt++;
		}
		vg_buf_release(&chunks[c]);
	}
	cr_assert_gt(corrupt, clean, "the structural checks catch most damage");
	vg_buf_release(&work);
	vg_codec_free(codec);
}

Test(chunk, damaged_header_with_valid_checksum)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunks[6];
	size_t k = sample_chunks(codec, chunks, 6);
	vg_test_rng_t rng = {37};
	for (size_t c = 0; c < k; c++) {
		uint8_t *p = chunks[c].data;
		uint8_t saved[HDR];
		memcpy(saved, p, HDR);
		for (int round = 0; round < 2000; round++) {
			/* Random bytes anywhere in the header's fields, sometimes
			 * a field set to an edge value. */
			size_t at = 4 + vg_test_below(&rng, 76);
			p[at] = (uint8_t)vg_test_next(&rng);
			if (round % 4 == 0)
				put_le32(p + 8, (uint32_t)vg_test_below(&rng, 2 * MAXN + 2));
			if (round % 4 == 1)
				put_le32(p + 72, (uint32_t)vg_test_below(&rng, 100000));
			put_le32(p + 80, vg_crc32c(0, p, 80));
			int rc = decode_copy(codec, p, chunks[c].len);
			cr_assert(rc == 0 || rc == VG_ECORRUPT || rc == VG_EVERSION, "rc %d", rc);
			memcpy(p, saved, HDR);
		}
		/* A future version with a valid checksum is a version error. */
		p[4] = VG_CHUNK_VERSION + 1;
		put_le32(p + 80, vg_crc32c(0, p, 80));
		vg_chunk_header_t h;
		cr_assert_eq(vg_chunk_header_read(p, chunks[c].len, &h), VG_EVERSION);
		cr_assert_eq(decode_copy(codec, p, chunks[c].len), VG_EVERSION);
		vg_buf_release(&chunks[c]);
	}
	vg_codec_free(codec);
}

/* The worked example of chunk.c, byte for byte: pins the payload layout. */
static const int64_t example_t[] = {1000, 1010, 1020, 1031};
static const uint8_t example_raw[] = {
    0x00, 0x00, 0x02,                               /* dd 0, 0, +1 */
    0x00, 0x00, 0x00, 0x04,                         /* d deltas from 215 */
    0x01,                                           /* one exception */
    0x02,                                           /* at position 2 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x7f, /* the NaN */
};

/* Byte runs for the hand-made payloads below. */
#define NAN8 0, 0, 0, 0, 0, 0, 0xf8, 0x7f
#define FF9 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff

static void example_chunk(vg_codec_t *codec, vg_buf_t *out)
{
	double v[] = {21.5, 21.5, NAN, 21.7};
	v[2] = from_bits(0x7ff8000000000000ull);
	vg_buf_init(out);
	cr_assert_eq(vg_chunk_encode(codec, example_t, v, 4, out), 0);
}

static void set_field(vg_buf_t *chunk, size_t offset, const void *bytes, size_t n)
{
	memcpy(chunk->data + offset, bytes, n);
	put_le32(chunk->data + 80, vg_crc32c(0, chunk->data, 80));
}

Test(chunk, worked_example_matches_the_documented_layout)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunk;
	example_chunk(codec, &chunk);
	cr_assert_eq(memcmp(chunk.data, "VGC1", 4), 0);
	cr_assert_eq(chunk.data[4], VG_CHUNK_VERSION);
	cr_assert_eq(chunk.data[5], VG_CHUNK_ENC_ALP);
	cr_assert_eq(chunk.data[6], 1, "decimal exponent");
	cr_assert_eq(chunk.data[7], 0);
	uint8_t raw[256];
	size_t raw_len = unpack(&chunk, raw, sizeof raw);
	cr_assert_eq(raw_len, sizeof example_raw);
	cr_assert_eq(memcmp(raw, example_raw, raw_len), 0);
	cr_assert_eq(le32(chunk.data + 8), 4);
	cr_assert_eq(le32(chunk.data + 12), 3);
	cr_assert_eq(le32(chunk.data + 76), vg_crc32c(0, chunk.data + HDR, chunk.len - HDR));
	cr_assert_eq(le32(chunk.data + 80), vg_crc32c(0, chunk.data, 80));
	vg_buf_release(&chunk);
	vg_codec_free(codec);
}

/* Hand-made payloads, each wrong in one way the CRC cannot see. */
Test(chunk, crafted_payloads)
{
	/* One case per line, the streams apart:
	 * times | d deltas | k | gaps | raw values. */
	// clang-format off
	static const struct {
		const char *what;
		uint8_t bytes[40];
		size_t len;
		int rc;
	} cases[] = {
	{"valid", {0, 0, 2,  0, 0, 0, 4,  1,  2,  NAN8}, 17, 0},
	{"exception count above n", {0, 0, 2,  0, 0, 0, 4,  5,  2,  NAN8}, 17, VG_ECORRUPT},
	{"gap beyond n", {0, 0, 2,  0, 0, 0, 4,  1,  4,  NAN8}, 17, VG_ECORRUPT},
	{"second position beyond n", {0, 0, 2,  0, 0, 0, 4,  2,  2, 1,  NAN8, NAN8}, 26, VG_ECORRUPT},
	{"huge gap", {0, 0, 2,  0, 0, 0, 4,  1,  FF9, 1,  NAN8}, 26, VG_ECORRUPT},
	{"second gap wraps around to the first position",
	 {0, 0, 2,  0, 0, 0, 4,  2,  2, FF9, 1,  NAN8, NAN8}, 35, VG_ECORRUPT},
	{"d beyond 2^53 and back",
	 {0, 0, 2,  0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 4,  1,  2,  NAN8}, 31, VG_ECORRUPT},
	{"exception value short", {0, 0, 2,  0, 0, 0, 4,  1,  2,  0, 0, 0, 0, 0, 0, 0xf8}, 16, VG_ECORRUPT},
	{"trailing byte", {0, 0, 2,  0, 0, 0, 4,  1,  2,  NAN8, 0}, 18, VG_ECORRUPT},
	{"no exception count", {0, 0, 2,  0, 0, 0, 4}, 7, VG_ECORRUPT},
	{"values missing", {0, 0, 2,  0, 0}, 5, VG_ECORRUPT},
	{"varint of 11 bytes",
	 {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 2,
	  0, 0, 0, 4,  1,  2,  NAN8}, 27, VG_ECORRUPT},
	{"varint above 2^64",
	 {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0, 2,
	  0, 0, 0, 4,  1,  2,  NAN8}, 26, VG_ECORRUPT},
	{"time goes back", {19, 0, 2,  0, 0, 0, 4,  1,  2,  NAN8}, 17, VG_ECORRUPT},
	{"last time is not max_time", {0, 0, 4,  0, 0, 0, 4,  1,  2,  NAN8}, 17, VG_ECORRUPT},
	{"d of 2^53",
	 {0, 0, 2,  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0, 0, 4,  1,  2,  NAN8},
	 24, VG_ECORRUPT},
	{"first value is not first_value", {0, 0, 2,  2, 0, 0, 2,  1,  2,  NAN8}, 17, VG_ECORRUPT},
	{"last value is not last_value", {0, 0, 2,  0, 0, 0, 6,  1,  2,  NAN8}, 17, VG_ECORRUPT},
	};
	// clang-format on
	vg_codec_t *codec = new_codec();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		vg_buf_t chunk;
		example_chunk(codec, &chunk);
		reseal(&chunk, cases[i].bytes, cases[i].len);
		cr_assert_eq(decode_copy(codec, chunk.data, chunk.len), cases[i].rc, "%s",
		             cases[i].what);
		vg_buf_release(&chunk);
	}

	/* The same points as XOR planes: valid, one byte short, and with the
	 * first difference not 0. */
	vg_buf_t chunk;
	example_chunk(codec, &chunk);
	uint8_t xor_raw[3 + 32] = {0, 0, 2};
	uint64_t v[] = {bits(21.5), bits(21.5), 0x7ff8000000000000ull, bits(21.7)};
	for (size_t i = 0; i < 4; i++) {
		uint64_t x = v[i] ^ v[i ? i - 1 : 0];
		for (size_t b = 0; b < 8; b++)
			xor_raw[3 + b * 4 + i] = (uint8_t)(x >> (8 * b));
	}
	uint8_t xor_encoding[2] = {VG_CHUNK_ENC_XOR, 0};
	set_field(&chunk, 5, xor_encoding, 2);
	reseal(&chunk, xor_raw, sizeof xor_raw);
	cr_assert_eq(decode_copy(codec, chunk.data, chunk.len), 0);
	reseal(&chunk, xor_raw, sizeof xor_raw - 1);
	cr_assert_eq(decode_copy(codec, chunk.data, chunk.len), VG_ECORRUPT);
	xor_raw[3] ^= 1;
	reseal(&chunk, xor_raw, sizeof xor_raw);
	cr_assert_eq(decode_copy(codec, chunk.data, chunk.len), VG_ECORRUPT);
	vg_buf_release(&chunk);
	vg_codec_free(codec);
}

/* Header fields out of their range, each with a valid header checksum. */
Test(chunk, crafted_headers)
{
	vg_codec_t *codec = new_codec();
	const struct {
		const char *what;
		size_t offset, width;
		uint64_t value; /* written little-endian, `width` bytes */
	} cases[] = {
	    {"encoding 0", 5, 1, 0},
	    {"encoding 3", 5, 1, 3},
	    {"exponent 19", 6, 1, 19},
	    {"reserved byte", 7, 1, 1},
	    {"count 0", 8, 4, 0},
	    {"count above the maximum", 8, 4, MAXN + 1},
	    {"count 3", 8, 4, 3},
	    {"count 5", 8, 4, 5},
	    {"value_count above count", 12, 4, 5},
	    {"min_time above max_time", 16, 8, 2000},
	    {"span too short for count", 24, 8, 1002},
	    {"max_time changed", 24, 8, 1032},
	    {"min_value NaN", 32, 8, bits(NAN)},
	    {"min above max", 32, 8, bits(30.0)},
	    {"first_value changed", 56, 8, bits(21.6)},
	    {"last_value changed", 64, 8, bits(21.6)},
	    {"raw_len + 1", 72, 4, sizeof example_raw + 1},
	    {"raw_len - 1", 72, 4, sizeof example_raw - 1},
	    {"raw_len huge", 72, 4, 0xffffffffu},
	    {"raw_len 0", 72, 4, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		vg_buf_t chunk;
		example_chunk(codec, &chunk);
		uint8_t le[8];
		for (size_t b = 0; b < 8; b++)
			le[b] = (uint8_t)(cases[i].value >> (8 * b));
		set_field(&chunk, cases[i].offset, le, cases[i].width);
		cr_assert_eq(decode_copy(codec, chunk.data, chunk.len), VG_ECORRUPT, "%s",
		             cases[i].what);
		vg_buf_release(&chunk);
	}
	/* value_count, min, max and sum are guarded by the header checksum
	 * alone: checking them would cost a pass over the values. */
	vg_codec_free(codec);
}

Test(chunk, capacity_too_small)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t out = VG_BUF_INIT;
	vg_test_rng_t rng = {41};
	regular_times(T, 100, 0, 1);
	walk(&rng, V, 100, 1);
	cr_assert_eq(vg_chunk_encode(codec, T, V, 100, &out), 0);
	int64_t times[100];
	double values[100];
	size_t count = 12345;
	cr_assert_eq(vg_chunk_decode(codec, out.data, out.len, times, values, 99, &count),
	             VG_ELIMIT);
	cr_assert_eq(count, 12345);
	cr_assert_eq(vg_chunk_decode(codec, out.data, out.len, times, values, 100, &count), 0);
	cr_assert_eq(count, 100);
	vg_buf_release(&out);
	vg_codec_free(codec);
}

/* The chunk placed so that its last byte is the last readable byte before
 * a PROT_NONE page: any read past the end faults. */
Test(chunk, decode_at_the_end_of_readable_memory)
{
	vg_codec_t *codec = new_codec();
	vg_buf_t chunks[6];
	size_t k = sample_chunks(codec, chunks, 6);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (MAXN * 10 / page + 2) * page;
	uint8_t *base =
	    mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(base, MAP_FAILED);
	cr_assert_eq(mprotect(base + span, page, PROT_NONE), 0);
	static int64_t times[MAXN];
	static double values[MAXN];
	for (size_t c = 0; c < k; c++) {
		size_t len = chunks[c].len;
		cr_assert_leq(len, span);
		uint8_t *at = base + span - len;
		memcpy(at, chunks[c].data, len);
		size_t count;
		cr_assert_eq(vg_chunk_decode(codec, at, len, times, values, MAXN, &count), 0);
		vg_chunk_header_t h;
		cr_assert_eq(vg_chunk_header_read(at, len, &h), 0);
		cr_assert_eq(count, h.count);
		for (size_t cut = 0; cut < len; cut += 1 + cut / 8) {
			memcpy(base + span - cut, chunks[c].data, cut);
			cr_assert_eq(vg_chunk_decode(codec, base + span - cut, cut, times, values,
			                             MAXN, &count),
			             VG_ECORRUPT);
		}
		vg_buf_release(&chunks[c]);
	}
	munmap(base, span + page);
	vg_codec_free(codec);
}

/* ---- allocation failure ------------------------------------------------ */

Test(chunk, allocation_failure_at_every_step)
{
	vg_test_rng_t rng = {43};
	regular_times(T, MAXN, 0, 1000);
	walk(&rng, V, MAXN, 1);
	static double full[MAXN];
	walk(&rng, full, MAXN, -1);
	static int64_t times[MAXN];
	static double values[MAXN];
	for (long k = 0; k <= 20; k++) {
		vg_alloc_fail_after(k);
		vg_codec_t *codec = NULL;
		int rc = vg_codec_new(&codec);
		if (rc) {
			vg_alloc_fail_after(-1);
			cr_assert_eq(rc, VG_ENOMEM, "k=%ld rc=%d", k, rc);
			cr_assert_null(codec);
			continue;
		}
		vg_buf_t out = VG_BUF_INIT;
		for (int which = 0; which < 2; which++) {
			size_t before = out.len;
			rc = vg_chunk_encode(codec, T, which ? full : V, MAXN, &out);
			cr_assert(rc == 0 || rc == VG_ENOMEM, "k=%ld rc=%d", k, rc);
			if (rc) {
				cr_assert_eq(out.len, before);
				continue;
			}
			size_t count;
			rc = vg_chunk_decode(codec, out.data + before, out.len - before, times,
			                     values, MAXN, &count);
			cr_assert(rc == 0 || rc == VG_ENOMEM, "k=%ld rc=%d", k, rc);
		}
		/* With allocation back, the same codec works. */
		vg_alloc_fail_after(-1);
		out.len = 0;
		round_trip_into(codec, T, V, MAXN, &out);
		out.len = 0;
		round_trip_into(codec, T, full, MAXN, &out);
		vg_buf_release(&out);
		vg_codec_free(codec);
	}
}

/* ---- compression ------------------------------------------------------- */

Test(chunk, compression_of_a_random_walk)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {47};
	static double rounded[MAXN];
	regular_times(T, MAXN, 1700000000000000000, 10000000000);
	walk(&rng, V, MAXN, -1);
	for (size_t i = 0; i < MAXN; i++)
		rounded[i] = round(V[i] * 10) / 10;
	size_t size;
	cr_assert_eq(round_trip(codec, T, rounded, MAXN, &size), VG_CHUNK_ENC_ALP);
	cr_assert_lt((double)size / MAXN, 0.75, "1 decimal: %.3f bytes/point", (double)size / MAXN);
	cr_assert_eq(round_trip(codec, T, V, MAXN, &size), VG_CHUNK_ENC_XOR);
	cr_assert_lt((double)size / MAXN, 7.0, "full precision: %.3f bytes/point",
	             (double)size / MAXN);
	vg_codec_free(codec);
}

/* ---- fitting to a byte budget ------------------------------------------- */

Test(chunk, encode_fit_takes_the_longest_prefix_that_fits)
{
	vg_codec_t *codec = new_codec();
	vg_test_rng_t rng = {53};
	regular_times(T, MAXN, 1700000000000000000, 10000000000);
	walk(&rng, V, MAXN, 1);
	static int64_t dt[MAXN];
	static double dv[MAXN];
	const size_t budgets[] = {150, 333, 1000, 2000, 4080};
	vg_buf_t out = VG_BUF_INIT, probe = VG_BUF_INIT;
	for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
		out.len = 0;
		cr_assert_eq(vg_buf_append(&out, "xy", 2), 0); /* appends after what is there */
		size_t n = 0;
		cr_assert_eq(vg_chunk_encode_fit(codec, T, V, MAXN, budgets[b], 4, &out, &n), 0);
		cr_assert_gt(n, 0);
		cr_assert_lt(n, MAXN);
		size_t len = out.len - 2;
		cr_assert_leq(len, budgets[b], "budget %zu: %zu bytes", budgets[b], len);
		cr_assert_eq(memcmp(out.data, "xy", 2), 0);
		/* Within the slack, or one more point would not fit. */
		if (budgets[b] - len > 4) {
			probe.len = 0;
			cr_assert_eq(vg_chunk_encode(codec, T, V, n + 1, &probe), 0);
			cr_assert_gt(probe.len, budgets[b], "budget %zu: %zu points stop short", budgets[b], n);
		}
		size_t got = 0;
		cr_assert_eq(vg_chunk_decode(codec, out.data + 2, len, dt, dv, MAXN, &got), 0);
		cr_assert_eq(got, n);
		cr_assert_eq(memcmp(dt, T, n * sizeof *dt), 0);
		cr_assert_eq(memcmp(dv, V, n * sizeof *dv), 0);
	}
	/* Everything fits: all points, as vg_chunk_encode gives them. */
	out.len = 0;
	size_t n = 0;
	cr_assert_eq(vg_chunk_encode_fit(codec, T, V, 100, 1 << 20, 4, &out, &n), 0);
	cr_assert_eq(n, 100);
	probe.len = 0;
	cr_assert_eq(vg_chunk_encode(codec, T, V, 100, &probe), 0);
	cr_assert_eq(out.len, probe.len);
	cr_assert_eq(memcmp(out.data, probe.data, out.len), 0);
	/* Not even one point fits: nothing is written. */
	out.len = 0;
	n = 99;
	cr_assert_eq(vg_chunk_encode_fit(codec, T, V, MAXN, 20, 4, &out, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(out.len, 0);
	/* Unsorted times are refused and leave out unchanged. */
	int64_t bad[3] = {5, 4, 6};
	cr_assert_eq(vg_chunk_encode_fit(codec, bad, V, 3, 1000, 4, &out, &n), VG_EINVAL);
	cr_assert_eq(out.len, 0);
	vg_buf_release(&out);
	vg_buf_release(&probe);
	vg_codec_free(codec);
}

/* ---- thorough codecs ----------------------------------------------------- */

Test(chunk, a_thorough_codec_writes_chunks_any_codec_reads)
{
	vg_codec_t *normal = new_codec(), *thorough = new_codec();
	vg_codec_set_thorough(thorough, true);
	vg_test_rng_t rng = {59};
	static double ints[MAXN];
	static int64_t dt[MAXN];
	static double dv[MAXN];
	regular_times(T, 3600, 1700000000000000000, 1000000000);
	walk(&rng, ints, 3600, 0);
	for (size_t i = 0; i < 3600; i += 97) /* exceptions too */
		ints[i] = special(&rng);
	vg_buf_t a = VG_BUF_INIT, b = VG_BUF_INIT;
	cr_assert_eq(vg_chunk_encode(normal, T, ints, 3600, &a), 0);
	cr_assert_eq(vg_chunk_encode(thorough, T, ints, 3600, &b), 0);
	cr_assert_leq(b.len, a.len, "thorough %zu bytes, normal %zu", b.len, a.len);
	size_t n = 0;
	cr_assert_eq(vg_chunk_decode(normal, b.data, b.len, dt, dv, MAXN, &n), 0);
	cr_assert_eq(n, 3600);
	cr_assert_eq(memcmp(dt, T, n * sizeof *dt), 0);
	cr_assert_eq(memcmp(dv, ints, n * sizeof *dv), 0, "bit-exact, NaN payloads included");
	vg_chunk_header_t ha, hb;
	cr_assert_eq(vg_chunk_header_read(a.data, a.len, &ha), 0);
	cr_assert_eq(vg_chunk_header_read(b.data, b.len, &hb), 0);
	cr_assert_eq(ha.count, hb.count);
	cr_assert_eq(ha.value_count, hb.value_count);
	cr_assert_eq(memcmp(&ha.sum, &hb.sum, sizeof ha.sum), 0);
	/* Back to normal, it writes what a new codec writes. */
	vg_codec_set_thorough(thorough, false);
	b.len = 0;
	cr_assert_eq(vg_chunk_encode(thorough, T, ints, 3600, &b), 0);
	cr_assert_eq(b.len, a.len);
	cr_assert_eq(memcmp(a.data, b.data, a.len), 0);
	vg_buf_release(&a);
	vg_buf_release(&b);
	vg_codec_free(normal);
	vg_codec_free(thorough);
}
