/*
 * chunk.c — the chunk codec of chunk.h: Gorilla-style timestamps, ALP or
 * XOR/byte-stream-split values, one magicless zstd frame, CRC32C checks.
 *
 * Why this shape.  The light-weight transforms (delta-of-delta, ALP, XOR)
 * turn typical monitoring data into long runs of small or repeated bytes;
 * zstd then does the entropy coding.  Each transform is a single pass with no
 * bit-level packing, so both directions are simple byte loops, and decoding
 * a 2048-point chunk costs one zstd call plus two short loops.
 *
 * Papers: Gorilla (Pelkonen et al., VLDB 2015) for delta-of-delta and XOR;
 * ALP (Afroozeh, Kuffo, Boncz, SIGMOD 2024) for decimal floats; byte-stream
 * split as in Apache Parquet's BYTE_STREAM_SPLIT encoding.
 *
 * Payload (before zstd), for n points:
 *
 *   timestamp stream  n-1 varints: zigzag(delta_i - delta_{i-1}), with
 *                     delta_0 counted from 0 so the first one is the plain
 *                     first delta.  All arithmetic is modulo 2^64, which is
 *                     why INT64_MIN and INT64_MAX can share a chunk.
 *   value stream      ALP: n varints zigzag(d_i - d_{i-1}) (d_{-1} = 0),
 *                         then varint k (exceptions), then k varints of
 *                         position gaps (first position, then
 *                         pos_j - pos_{j-1} - 1), then k raw 8-byte
 *                         little-endian values.  An exception's d repeats
 *                         the previous d (delta 0) so it does not disturb
 *                         its neighbours' deltas.
 *                     XOR: plane b (b = 0..7) holds byte b (little-endian
 *                         order) of x_i = bits(v_i) ^ bits(v_{i-1}),
 *                         bits(v_{-1}) = 0; 8n bytes in all.
 *
 * Worked example: times 1000, 1010, 1020, 1031; values 21.5, 21.5, NaN, 21.7.
 *   deltas 10, 10, 11 -> dd 10, 0, 1 -> zigzag 20, 0, 2: 14 00 02
 *   ALP with e = 1: d = 215, 215, (215), 217 -> deltas 215, 0, 0, 2
 *   -> zigzag 430, 0, 0, 4: ae 03 00 00 04; k = 1: 01; gap 2: 02;
 *   then the 8 bytes of that NaN: 00 00 00 00 00 00 f8 7f.
 *
 * ALP exactness.  A value v is encoded as d only if (double)d / 10^e has
 * exactly v's 64 bits; the decoder computes the very same expression, so the
 * round trip is bit-exact by construction (division is correctly rounded,
 * and (double)d is exact for |d| < 2^53).  -0.0, NaN, ±Inf, denormals and
 * values with too many digits fail that test and become exceptions.
 *
 * Choosing.  The encoder samples up to 64 values, finds for each the
 * smallest exponent that round-trips, and picks the e that minimises an
 * estimated size (each exception ~96 bits, each extra digit ~3.3 bits per
 * value).  When most samples fit it builds the ALP stream; if that stream is
 * clearly small it is kept, otherwise the XOR candidate is compressed too
 * and the smaller chunk wins.
 *
 * Decoder safety.  Every length comes from validated header fields; zstd
 * writes at most raw_len bytes into our scratch buffer and must produce
 * exactly raw_len.  The varint readers may look up to 10 bytes past the
 * current position without checking each byte: the scratch buffer has
 * DECODE_SLACK spare bytes behind the largest possible payload, and every
 * loop checks its position against the payload end when it finishes.  The
 * caller's bytes are read only by the CRC and by zstd, both within len.
 */
#include "chunk.h"

#include "vg_alloc.h"
#include "vg_error.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_format, ZSTD_d_format, custom allocators */
#include <zstd.h>
#include <zstd_errors.h>

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#endif

/* zstd level: measured on 2048-point chunks (see the report of the change
 * that introduced it); higher levels gain under 2% on this data but cost
 * encode speed. */
#define ZSTD_LEVEL 3

#define MAX_POINTS VG_CHUNK_MAX_POINTS
#define ALP_MAX_EXPONENT 18
/* Largest |d| that ALP accepts: 2^53 - 1, so that (double)d is exact. */
#define ALP_MAX_D 9007199254740991.0
#define ALP_MAX_D_INT 9007199254740991ull
/* Upper bound of raw_len (generous: 10-byte varints everywhere). */
#define RAW_MAX (40 * MAX_POINTS)
/* Bytes a varint reader may look ahead of the last checked position. */
#define DECODE_SLACK (10 * MAX_POINTS + 64)
#define RAW_CAP (RAW_MAX + DECODE_SLACK)
#define PACKED_CAP ZSTD_COMPRESSBOUND(RAW_MAX)
#define ALP_SAMPLES 64
/* An ALP value stream at most this many bytes per point is kept without
 * trying XOR: XOR of such data does not come close after zstd. */
#define ALP_SURE_BYTES_PER_POINT 4

struct vg_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	uint8_t *raw;        /* RAW_CAP: payload being built or decoded */
	uint8_t *raw_alt;    /* RAW_CAP: the XOR candidate while both are tried */
	uint8_t *packed;     /* PACKED_CAP: compressed candidate */
	uint8_t *packed_alt; /* PACKED_CAP */
	uint16_t *exc_pos;   /* MAX_POINTS: ALP exception positions */
	uint64_t *exc_bits;  /* MAX_POINTS: ALP exception values */
};

static const double pow10_table[ALP_MAX_EXPONENT + 1] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
};

/* ---- little helpers ---------------------------------------------------- */

static inline uint64_t double_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b;
}

static inline double bits_double(uint64_t b)
{
	double v;
	memcpy(&v, &b, 8);
	return v;
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

static inline uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t zigzag(uint64_t v) { return (v << 1) ^ (0 - (v >> 63)); }
static inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

static inline uint8_t *put_uvarint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Packs the low 7 bits of each of the 8 bytes of x into 56 bits. */
static inline uint64_t pack7(uint64_t x)
{
	x &= 0x7f7f7f7f7f7f7f7full;
	x = (x & 0x007f007f007f007full) | ((x & 0x7f007f007f007f00ull) >> 1);
	x = (x & 0x00003fff00003fffull) | ((x & 0x3fff00003fff0000ull) >> 2);
	return (x & 0x000000000fffffffull) | ((x & 0x0fffffff00000000ull) >> 4);
}

/* Varints of 9 or 10 bytes (values >= 2^56); a 10th byte above 1 would
 * overflow 64 bits and marks the input bad. */
static const uint8_t *get_uvarint_long(const uint8_t *p, uint64_t *out, uint64_t *bad)
{
	uint64_t v = pack7(load_le64(p));
	if (p[8] < 0x80) {
		*out = v | (uint64_t)p[8] << 56;
		return p + 9;
	}
	*bad |= p[9] > 1;
	*out = v | (uint64_t)(p[8] & 0x7f) << 56 | (uint64_t)p[9] << 63;
	return p + 10;
}

/* Reads one LEB128 varint; may look 10 bytes ahead (see DECODE_SLACK). */
static inline const uint8_t *get_uvarint(const uint8_t *p, uint64_t *out, uint64_t *bad)
{
	uint64_t w = load_le64(p);
	uint64_t stops = ~w & 0x8080808080808080ull;
	if (__builtin_expect(stops != 0, 1)) {
		*out = pack7(w & (stops ^ (stops - 1)));
		return p + (__builtin_ctzll(stops) + 1) / 8;
	}
	return get_uvarint_long(p, out, bad);
}

/* ---- codec lifecycle --------------------------------------------------- */

static void *zstd_alloc(void *opaque, size_t size)
{
	(void)opaque;
	return vg_malloc(size);
}

static void zstd_free(void *opaque, void *address)
{
	(void)opaque;
	vg_free(address);
}

int vg_codec_new(vg_codec_t **out)
{
	const ZSTD_customMem mem = {zstd_alloc, zstd_free, NULL};
	vg_codec_t *c = vg_calloc(1, sizeof *c);
	if (!c)
		return VG_ENOMEM;
	/* calloc: the decode slack is read (never trusted) before first written. */
	c->raw = vg_calloc(1, RAW_CAP);
	c->raw_alt = vg_malloc(RAW_CAP);
	c->packed = vg_malloc(PACKED_CAP);
	c->packed_alt = vg_malloc(PACKED_CAP);
	c->exc_pos = vg_malloc(MAX_POINTS * sizeof *c->exc_pos);
	c->exc_bits = vg_malloc(MAX_POINTS * sizeof *c->exc_bits);
	c->cctx = ZSTD_createCCtx_advanced(mem);
	c->dctx = ZSTD_createDCtx_advanced(mem);
	if (!c->raw || !c->raw_alt || !c->packed || !c->packed_alt || !c->exc_pos ||
	    !c->exc_bits || !c->cctx || !c->dctx) {
		vg_codec_free(c);
		return VG_ENOMEM;
	}
	/* Setting valid parameters cannot fail; the checks guard a zstd
	 * built without these (experimental) parameters. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_format, ZSTD_f_zstd1_magicless)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_dictIDFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(c->dctx, ZSTD_d_format, ZSTD_f_zstd1_magicless))) {
		vg_codec_free(c);
		return VG_EINVAL;
	}
	*out = c;
	return 0;
}

void vg_codec_free(vg_codec_t *c)
{
	if (!c)
		return;
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	vg_free(c->raw);
	vg_free(c->raw_alt);
	vg_free(c->packed);
	vg_free(c->packed_alt);
	vg_free(c->exc_pos);
	vg_free(c->exc_bits);
	vg_free(c);
}

/* ---- encoding ---------------------------------------------------------- */

static uint8_t *put_times(uint8_t *o, const int64_t *times, size_t n)
{
	uint64_t prev = (uint64_t)times[0], prev_delta = 0;
	for (size_t i = 1; i < n; i++) {
		uint64_t delta = (uint64_t)times[i] - prev;
		uint64_t z = zigzag(delta - prev_delta);
		if (z == 0)
			*o++ = 0;
		else
			o = put_uvarint(o, z);
		prev = (uint64_t)times[i];
		prev_delta = delta;
	}
	return o;
}

static inline int64_t round_to_int64(double x)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	return _mm_cvtsd_si64(_mm_set_sd(x)); /* round to nearest, no libm call */
#else
	return llrint(x);
#endif
}

/* Whether v == (double)d / 10^e for the d it rounds to; sets *d. */
static inline bool alp_fits(double v, int e, int64_t *d)
{
	double x = v * pow10_table[e];
	if (!(fabs(x) <= ALP_MAX_D)) /* also false for NaN */
		return false;
	*d = round_to_int64(x);
	return double_bits((double)*d / pow10_table[e]) == double_bits(v);
}

/* The smallest exponent at which v round-trips, or -1. */
static int alp_min_exponent(double v)
{
	for (int e = 0; e <= ALP_MAX_EXPONENT; e++) {
		int64_t d;
		if (alp_fits(v, e, &d))
			return e;
		/* |v * 10^e| only grows with e: once past 2^53 nothing fits. */
		if (!(fabs(v * pow10_table[e]) <= ALP_MAX_D))
			return -1;
	}
	return -1;
}

/* The ALP exponent for this chunk, or -1 if too few values are decimals. */
static int alp_choose_exponent(const double *values, size_t n)
{
	size_t samples = n < ALP_SAMPLES ? n : ALP_SAMPLES;
	size_t at_exponent[ALP_MAX_EXPONENT + 1] = {0};
	for (size_t s = 0; s < samples; s++) {
		int e = alp_min_exponent(values[s * n / samples]);
		if (e >= 0)
			at_exponent[e]++;
	}
	/* Cost in tenths of bits: an exception ~96 bits (raw value + position),
	 * each extra digit ~3.3 bits on every value that fits. */
	size_t fit = 0, best_fit = 0;
	size_t best_cost = SIZE_MAX;
	int best = -1;
	for (int e = 0; e <= ALP_MAX_EXPONENT; e++) {
		fit += at_exponent[e];
		size_t cost = (samples - fit) * 960 + fit * 33 * (size_t)e;
		if (cost < best_cost) {
			best_cost = cost;
			best = e;
			best_fit = fit;
		}
	}
	return best_fit * 2 >= samples && best_fit > 0 ? best : -1;
}

/* Writes the ALP value stream at o; returns its length, or 0 if it would
 * exceed `limit` bytes (the caller then uses XOR). */
static size_t put_alp(vg_codec_t *c, uint8_t *o, const double *values, size_t n, int e,
		      size_t limit)
{
	uint8_t *start = o, *stop = o + limit;
	uint64_t prev = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t d;
		if (!alp_fits(values[i], e, &d)) {
			c->exc_pos[k] = (uint16_t)i;
			c->exc_bits[k++] = double_bits(values[i]);
			d = (int64_t)prev;
		}
		o = put_uvarint(o, zigzag((uint64_t)d - prev));
		prev = (uint64_t)d;
		if (o > stop)
			return 0;
	}
	o = put_uvarint(o, k);
	for (size_t j = 0; j < k; j++)
		o = put_uvarint(o, j ? (uint64_t)(c->exc_pos[j] - c->exc_pos[j - 1] - 1) : c->exc_pos[0]);
	if ((size_t)(o - start) + 8 * k > limit)
		return 0;
	for (size_t j = 0; j < k; j++, o += 8)
		store_le64(o, c->exc_bits[j]);
	return (size_t)(o - start);
}

static size_t put_xor(uint8_t *o, const double *values, size_t n)
{
	uint64_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = double_bits(values[i]), x = b ^ prev;
		prev = b;
		for (size_t plane = 0; plane < 8; plane++)
			o[plane * n + i] = (uint8_t)(x >> (8 * plane));
	}
	return 8 * n;
}

/* Compresses raw into dst (PACKED_CAP bytes); returns the size or VG_ENOMEM.
 * With dst at least ZSTD_compressBound, zstd fails only to allocate. */
static long compress(vg_codec_t *c, uint8_t *dst, const uint8_t *raw, size_t raw_len)
{
	size_t r = ZSTD_compress2(c->cctx, dst, PACKED_CAP, raw, raw_len);
	return ZSTD_isError(r) ? VG_ENOMEM : (long)r;
}

static void compute_aggregates(const int64_t *times, const double *values, size_t n,
			       vg_chunk_header_t *h)
{
	uint32_t count = 0;
	double min = NAN, max = NAN, sum = 0.0;
	for (size_t i = 0; i < n; i++) {
		double v = values[i];
		if (isnan(v))
			continue;
		if (count == 0 || v < min)
			min = v;
		if (count == 0 || v > max)
			max = v;
		sum += v;
		count++;
	}
	h->count = (uint32_t)n;
	h->value_count = count;
	h->min_time = times[0];
	h->max_time = times[n - 1];
	h->min_value = min;
	h->max_value = max;
	h->sum = sum;
	h->first_value = values[0];
	h->last_value = values[n - 1];
}

static void write_header(uint8_t *p, const vg_chunk_header_t *h, uint8_t param, uint32_t raw_len,
			 const uint8_t *payload, size_t payload_len)
{
	memcpy(p, "VGC1", 4);
	p[4] = VG_CHUNK_VERSION;
	p[5] = h->encoding;
	p[6] = param;
	p[7] = 0;
	store_le32(p + 8, h->count);
	store_le32(p + 12, h->value_count);
	store_le64(p + 16, (uint64_t)h->min_time);
	store_le64(p + 24, (uint64_t)h->max_time);
	store_le64(p + 32, double_bits(h->min_value));
	store_le64(p + 40, double_bits(h->max_value));
	store_le64(p + 48, double_bits(h->sum));
	store_le64(p + 56, double_bits(h->first_value));
	store_le64(p + 64, double_bits(h->last_value));
	store_le32(p + 72, raw_len);
	store_le32(p + 76, vg_crc32c(0, payload, payload_len));
	store_le32(p + 80, vg_crc32c(0, p, 80));
}

int vg_chunk_encode(vg_codec_t *c, const int64_t *times, const double *values, size_t n,
		    vg_buf_t *out)
{
	if (n == 0 || n > MAX_POINTS)
		return VG_EINVAL;
	for (size_t i = 1; i < n; i++)
		if (times[i] <= times[i - 1])
			return VG_EINVAL;

	vg_chunk_header_t h;
	compute_aggregates(times, values, n, &h);

	size_t ts_len = (size_t)(put_times(c->raw, times, n) - c->raw);
	size_t alp_len = 0;
	int e = alp_choose_exponent(values, n);
	if (e >= 0)
		alp_len = put_alp(c, c->raw + ts_len, values, n, e, 8 * n);

	const uint8_t *payload = NULL;
	long packed_len = 0;
	size_t raw_len = 0;
	if (alp_len) {
		packed_len = compress(c, c->packed, c->raw, ts_len + alp_len);
		if (packed_len < 0)
			return (int)packed_len;
		payload = c->packed;
		raw_len = ts_len + alp_len;
		h.encoding = VG_CHUNK_ENC_ALP;
	}
	if (!alp_len || alp_len > ALP_SURE_BYTES_PER_POINT * n) {
		memcpy(c->raw_alt, c->raw, ts_len);
		size_t xor_len = put_xor(c->raw_alt + ts_len, values, n);
		long xor_packed = compress(c, c->packed_alt, c->raw_alt, ts_len + xor_len);
		if (xor_packed < 0)
			return (int)xor_packed;
		if (!alp_len || xor_packed < packed_len) {
			packed_len = xor_packed;
			payload = c->packed_alt;
			raw_len = ts_len + xor_len;
			h.encoding = VG_CHUNK_ENC_XOR;
			e = 0;
		}
	}

	uint8_t header[VG_CHUNK_HEADER_SIZE];
	write_header(header, &h, (uint8_t)e, (uint32_t)raw_len, payload, (size_t)packed_len);
	int rc = vg_buf_reserve(out, VG_CHUNK_HEADER_SIZE + (size_t)packed_len);
	if (rc)
		return rc;
	memcpy(out->data + out->len, header, VG_CHUNK_HEADER_SIZE);
	memcpy(out->data + out->len + VG_CHUNK_HEADER_SIZE, payload, (size_t)packed_len);
	out->len += VG_CHUNK_HEADER_SIZE + (size_t)packed_len;
	return 0;
}

/* ---- header ------------------------------------------------------------ */

struct header_extra {
	uint8_t param;
	uint32_t raw_len;
	uint32_t payload_crc;
};

static int parse_header(const uint8_t *p, size_t len, vg_chunk_header_t *h,
			struct header_extra *x)
{
	if (len <= VG_CHUNK_HEADER_SIZE || memcmp(p, "VGC1", 4) != 0)
		return VG_ECORRUPT;
	/* The checksum comes before the version so that a flipped version
	 * byte reads as corruption, not as a chunk from the future. */
	if (vg_crc32c(0, p, 80) != load_le32(p + 80))
		return VG_ECORRUPT;
	if (p[4] != VG_CHUNK_VERSION)
		return VG_EVERSION;
	h->encoding = p[5];
	x->param = p[6];
	h->count = load_le32(p + 8);
	h->value_count = load_le32(p + 12);
	h->min_time = (int64_t)load_le64(p + 16);
	h->max_time = (int64_t)load_le64(p + 24);
	h->min_value = bits_double(load_le64(p + 32));
	h->max_value = bits_double(load_le64(p + 40));
	h->sum = bits_double(load_le64(p + 48));
	h->first_value = bits_double(load_le64(p + 56));
	h->last_value = bits_double(load_le64(p + 64));
	x->raw_len = load_le32(p + 72);
	x->payload_crc = load_le32(p + 76);

	bool ok = p[7] == 0;
	ok &= (h->encoding == VG_CHUNK_ENC_XOR && x->param == 0) ||
	      (h->encoding == VG_CHUNK_ENC_ALP && x->param <= ALP_MAX_EXPONENT);
	ok &= h->count >= 1 && h->count <= MAX_POINTS && h->value_count <= h->count;
	/* n strictly increasing times span at least n - 1 nanoseconds. */
	ok &= h->min_time <= h->max_time &&
	      (uint64_t)h->max_time - (uint64_t)h->min_time >= h->count - 1u;
	ok &= x->raw_len >= 2 * h->count - 1 && x->raw_len <= RAW_MAX;
	if (h->value_count == 0)
		ok &= isnan(h->min_value) && isnan(h->max_value);
	else
		ok &= h->min_value <= h->max_value; /* false if either is NaN */
	return ok ? 0 : VG_ECORRUPT;
}

int vg_chunk_header_read(const void *data, size_t len, vg_chunk_header_t *header)
{
	vg_chunk_header_t h;
	struct header_extra x;
	int rc = parse_header(data, len, &h, &x);
	if (rc == 0)
		*header = h;
	return rc;
}

/* ---- decoding ---------------------------------------------------------- */

static int get_times(const uint8_t **pp, const uint8_t *end, const vg_chunk_header_t *h,
		     int64_t *times)
{
	const uint8_t *p = *pp;
	uint64_t t = (uint64_t)h->min_time, delta = 0, bad = 0;
	times[0] = h->min_time;
	for (size_t i = 1; i < h->count; i++) {
		if (*p == 0) {
			p++; /* the delta did not change: the common case */
		} else {
			uint64_t z;
			p = get_uvarint(p, &z, &bad);
			delta += unzigzag(z);
		}
		uint64_t next = t + delta;
		bad |= (int64_t)next <= (int64_t)t;
		t = next;
		times[i] = (int64_t)t;
	}
	if (bad || p > end || t != (uint64_t)h->max_time)
		return VG_ECORRUPT;
	*pp = p;
	return 0;
}

static int get_alp(vg_codec_t *c, const uint8_t *p, const uint8_t *end, size_t n, int e,
		   double *values)
{
	const double scale = pow10_table[e];
	uint64_t d = 0, bad = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t z;
		if (*p < 0x80)
			z = *p++;
		else
			p = get_uvarint(p, &z, &bad);
		d += unzigzag(z);
		bad |= d + ALP_MAX_D_INT > 2 * ALP_MAX_D_INT; /* |d| < 2^53 */
		values[i] = (double)(int64_t)d / scale;
	}
	uint64_t k;
	p = get_uvarint(p, &k, &bad);
	if (bad || p > end || k > n)
		return VG_ECORRUPT;
	uint64_t pos = 0;
	for (size_t j = 0; j < k; j++) {
		uint64_t gap;
		p = get_uvarint(p, &gap, &bad);
		if (gap >= n) /* keeps pos + 1 + gap from overflowing */
			return VG_ECORRUPT;
		pos = j ? pos + 1 + gap : gap;
		if (pos >= n)
			return VG_ECORRUPT;
		c->exc_pos[j] = (uint16_t)pos;
	}
	if (bad || p > end || (size_t)(end - p) != 8 * k)
		return VG_ECORRUPT;
	for (size_t j = 0; j < k; j++)
		values[c->exc_pos[j]] = bits_double(load_le64(p + 8 * j));
	return 0;
}

static int get_xor(const uint8_t *p, const uint8_t *end, size_t n, double *values)
{
	if ((size_t)(end - p) != 8 * n)
		return VG_ECORRUPT;
	uint64_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t x = 0;
		for (size_t plane = 0; plane < 8; plane++)
			x |= (uint64_t)p[plane * n + i] << (8 * plane);
		prev ^= x;
		values[i] = bits_double(prev);
	}
	return 0;
}

int vg_chunk_decode(vg_codec_t *c, const void *data, size_t len, int64_t *times, double *values,
		    size_t capacity, size_t *count)
{
	vg_chunk_header_t h;
	struct header_extra x;
	int rc = parse_header(data, len, &h, &x);
	if (rc)
		return rc;
	if (h.count > capacity)
		return VG_ELIMIT;
	const uint8_t *payload = (const uint8_t *)data + VG_CHUNK_HEADER_SIZE;
	size_t payload_len = len - VG_CHUNK_HEADER_SIZE;
	if (vg_crc32c(0, payload, payload_len) != x.payload_crc)
		return VG_ECORRUPT;
	size_t got = ZSTD_decompressDCtx(c->dctx, c->raw, x.raw_len, payload, payload_len);
	if (ZSTD_isError(got))
		return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? VG_ENOMEM
									 : VG_ECORRUPT;
	if (got != x.raw_len)
		return VG_ECORRUPT;

	const uint8_t *p = c->raw, *end = c->raw + x.raw_len;
	rc = get_times(&p, end, &h, times);
	if (rc)
		return rc;
	if (h.encoding == VG_CHUNK_ENC_ALP)
		rc = get_alp(c, p, end, h.count, x.param, values);
	else
		rc = get_xor(p, end, h.count, values);
	if (rc)
		return rc;
	if (double_bits(values[0]) != double_bits(h.first_value) ||
	    double_bits(values[h.count - 1]) != double_bits(h.last_value))
		return VG_ECORRUPT;
	*count = h.count;
	return 0;
}
