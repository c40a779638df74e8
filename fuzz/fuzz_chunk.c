/*
 * fuzz_chunk.c — libFuzzer harness for the chunk codec (storage/chunk.c).
 *
 * A chunk read from disk may be anything: decoding arbitrary bytes must
 * give VG_ECORRUPT / VG_EVERSION / VG_ELIMIT or valid points, never a
 * crash, an out-of-bounds read or an unbounded allocation.  Since random
 * bytes rarely get past the two CRC32C checks and zstd, the first input
 * byte picks how the rest is used (bits 0-1), so that every layer is
 * reached:
 *
 *   0  raw       the bytes are the chunk, decoded as they are (header
 *                checks, CRCs);
 *   1  resealed  the bytes are a chunk whose magic, version and both CRCs
 *                the harness repairs first (header field checks, zstd on
 *                damaged frames);
 *   2  payload   84 bytes of header, then the *uncompressed* payload: the
 *                harness compresses it as the encoder would (magicless
 *                zstd frame), fills in raw_len and the CRCs (the
 *                timestamp, ALP and XOR stream decoders);
 *   3  points    the bytes describe points (times by delta, values as
 *                repeats, decimal steps, raw bit patterns and specials):
 *                encode, decode, and compare bit-exact.
 *
 * Bit 2 of the first byte shrinks the caller's capacity to 16 points (the
 * VG_ELIMIT path).  Whenever a decode succeeds the points must be
 * well-formed (count from the header, times strictly increasing from
 * min_time to max_time, first and last value as the header says) and must
 * survive encode + decode bit-exact.  Any crash, leak, sanitizer report or
 * broken property is a bug.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_format: the chunk payload is magicless */
#include "chunk.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <zstd.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void require(int ok)
{
	if (!ok)
		__builtin_trap();
}

/* The harness's own state, made once: the codec is meant to be reused. */
static vg_codec_t *codec;
static ZSTD_CCtx *cctx;
static int64_t times[VG_CHUNK_MAX_POINTS], times2[VG_CHUNK_MAX_POINTS];
static double values[VG_CHUNK_MAX_POINTS], values2[VG_CHUNK_MAX_POINTS];

static uint64_t bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void reseal(uint8_t *chunk, size_t len)
{
	memcpy(chunk, "VGC1", 4);
	chunk[4] = VG_CHUNK_VERSION;
	put_le32(chunk + 76,
	         vg_crc32c(0, chunk + VG_CHUNK_HEADER_SIZE, len - VG_CHUNK_HEADER_SIZE));
	put_le32(chunk + 80, vg_crc32c(0, chunk, 80));
}

/* Encodes n points, decodes them, and requires the very same bits back. */
static void round_trip(const int64_t *t, const double *v, size_t n)
{
	vg_buf_t buf = VG_BUF_INIT;
	int rc = vg_chunk_encode(codec, t, v, n, &buf);
	if (rc == VG_ENOMEM)
		return;
	require(rc == 0);
	vg_chunk_header_t h;
	require(vg_chunk_header_read(buf.data, buf.len, &h) == 0);
	require(h.count == n && h.min_time == t[0] && h.max_time == t[n - 1]);
	require(bits(h.first_value) == bits(v[0]) && bits(h.last_value) == bits(v[n - 1]));
	size_t count = 0;
	rc =
	    vg_chunk_decode(codec, buf.data, buf.len, times2, values2, VG_CHUNK_MAX_POINTS, &count);
	require(rc == 0 && count == n);
	for (size_t i = 0; i < n; i++)
		require(times2[i] == t[i] && bits(values2[i]) == bits(v[i]));
	vg_buf_release(&buf);
}

static void decode(const uint8_t *chunk, size_t len, size_t capacity)
{
	size_t count = (size_t)-1;
	int rc = vg_chunk_decode(codec, chunk, len, times, values, capacity, &count);
	vg_chunk_header_t h;
	int hrc = vg_chunk_header_read(chunk, len, &h);
	if (rc != 0) {
		require(rc == VG_ECORRUPT || rc == VG_EVERSION || rc == VG_ELIMIT ||
		        rc == VG_ENOMEM);
		require(count == (size_t)-1);
		if (rc == VG_ELIMIT)
			require(hrc == 0 && h.count > capacity);
		return;
	}
	require(hrc == 0 && count == h.count && count >= 1 && count <= capacity);
	require(times[0] == h.min_time && times[count - 1] == h.max_time);
	for (size_t i = 1; i < count; i++)
		require(times[i] > times[i - 1]);
	require(bits(values[0]) == bits(h.first_value));
	require(bits(values[count - 1]) == bits(h.last_value));
	require(h.value_count <= h.count);
	round_trip(times, values, count);
}

/* Mode 2: header bytes + an uncompressed payload, sealed as the encoder would. */
static void decode_payload(const uint8_t *data, size_t size, size_t capacity)
{
	if (size < VG_CHUNK_HEADER_SIZE)
		return;
	size_t raw_len = size - VG_CHUNK_HEADER_SIZE;
	size_t bound = ZSTD_compressBound(raw_len);
	uint8_t *chunk = vg_malloc(VG_CHUNK_HEADER_SIZE + bound);
	require(chunk != NULL);
	memcpy(chunk, data, VG_CHUNK_HEADER_SIZE);
	size_t packed = ZSTD_compress2(cctx, chunk + VG_CHUNK_HEADER_SIZE, bound,
	                               data + VG_CHUNK_HEADER_SIZE, raw_len);
	require(!ZSTD_isError(packed));
	put_le32(chunk + 72, (uint32_t)raw_len);
	reseal(chunk, VG_CHUNK_HEADER_SIZE + packed);
	decode(chunk, VG_CHUNK_HEADER_SIZE + packed, capacity);
	vg_free(chunk);
}

/* Mode 3: points derived from the bytes.  Per point a control byte c:
 * bit 6 set: a new time delta from the next byte (0x80 | k: 2^k), else the
 * previous delta; bits 4-5: the value — 0 the previous one, 1 the previous
 * plus (int8 next byte) / 10^(c & 3), 2 the next 8 raw bytes, 3 a special
 * (NaN with payload, +-Inf, -0.0, a denormal) picked by c & 3. */
static void derive_points(const uint8_t *p, size_t size)
{
	size_t n = 0, pos = 0;
	uint64_t t = size >= 8 ? get_le64(p) : 1767225600000000000ull;
	pos = size >= 8 ? 8 : size;
	uint64_t delta = 1000000000;
	double v = 21.5;
	while (pos < size && n < VG_CHUNK_MAX_POINTS) {
		uint8_t c = p[pos++];
		if (c & 0x40) {
			if (pos >= size)
				break;
			uint8_t d = p[pos++];
			delta = d & 0x80 ? (uint64_t)1 << (d & 63) : (uint64_t)d + 1;
		}
		switch ((c >> 4) & 3) {
		case 0:
			break;
		case 1:
			if (pos >= size)
				return;
			v = isfinite(v) ? v + (double)(int8_t)p[pos++] / pow(10, c & 3) : 0.0;
			break;
		case 2:
			if (size - pos < 8)
				return;
			{
				uint64_t b = get_le64(p + pos);
				memcpy(&v, &b, sizeof v);
			}
			pos += 8;
			break;
		default: {
			static const uint64_t specials[] = {
			    0x7ff8000000000123ull, 0xfff0000000000000ull, 0x8000000000000000ull,
			    0x0000000000000001ull};
			uint64_t b = specials[c & 3];
			memcpy(&v, &b, sizeof v);
			break;
		}
		}
		if (n > 0) {
			uint64_t next = t + delta;
			if ((int64_t)next <= (int64_t)t)
				break; /* times must increase without wrapping */
			t = next;
		}
		times[n] = (int64_t)t;
		values[n] = v;
		n++;
	}
	if (n > 0)
		round_trip(times, values, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	require(vg_codec_new(&codec) == 0);
	cctx = ZSTD_createCCtx();
	require(cctx != NULL);
	require(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_format, ZSTD_f_zstd1_magicless)));
	require(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)));
	require(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1)));
	require(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1)));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	size_t capacity = mode & 4 ? 16 : VG_CHUNK_MAX_POINTS;
	data++;
	size--;
	switch (mode & 3) {
	case 0:
		decode(data, size, capacity);
		break;
	case 1:
		if (size > VG_CHUNK_HEADER_SIZE) {
			uint8_t *chunk = vg_malloc(size);
			require(chunk != NULL);
			memcpy(chunk, data, size);
			reseal(chunk, size);
			decode(chunk, size, capacity);
			vg_free(chunk);
		}
		break;
	case 2:
		decode_payload(data, size, capacity);
		break;
	default:
		derive_points(data, size);
		break;
	}
	return 0;
}
