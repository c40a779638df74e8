/*
 * chunk.c — the chunk codec of chunk.h: Gorilla-style timestamps, ALP or
 * XOR + byte-stream-split values, one magicless zstd frame, CRC32C checks.
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
 * Payload (before zstd), for n points; every "previous" of the first point
 * is derived from the header, so that the first point costs nothing either:
 *
 *   timestamps  for i = 1..n-1, varint vg_zigzag(delta_i - delta_{i-1}) with
 *               delta_i = t_i - t_{i-1} and delta_0 = (max_time - min_time)
 *               / (n - 1) (integer division), the interval of a perfectly
 *               regular series.  Arithmetic is modulo 2^64, which is why
 *               INT64_MIN and INT64_MAX can share a chunk.
 *   ALP values  n varints vg_zigzag(d_i - d_{i-1}), then varint k (exceptions),
 *               then k varints of position gaps (first position, then
 *               pos_j - pos_{j-1} - 1), then k raw 8-byte little-endian
 *               values.  d_{-1} = trunc(first_value * 10^e) if its
 *               magnitude is at most 2^53 - 1, else 0.  An exception's d
 *               repeats the previous d (delta 0) so it does not disturb the
 *               deltas of its neighbours.
 *   XOR values  plane b (b = 0..7) holds byte b (little-endian order) of
 *               x_i = bits(v_i) ^ bits(v_{i-1}), bits(v_{-1}) =
 *               bits(first_value); 8n bytes in all.
 *
 * Worked example: times 1000, 1010, 1020, 1031 (mean interval 31/3 = 10);
 * values 21.5, 21.5, NaN, 21.7 (ALP, e = 1).
 *   deltas 10, 10, 11 -> dd 0, 0, 1 -> zigzag 0, 0, 2: 00 00 02
 *   d_{-1} = trunc(21.5 * 10) = 215; d = 215, 215, (215), 217
 *   -> deltas 0, 0, 0, 2 -> zigzag 0, 0, 0, 4: 00 00 00 04; k = 1: 01;
 *   gap 2: 02; then the 8 bytes of that NaN: 00 00 00 00 00 00 f8 7f.
 *
 * ALP exactness.  A value v is encoded as d only if (double)d / 10^e has
 * exactly v's 64 bits; the decoder computes the very same expression, so the
 * round trip is bit-exact by construction (division is correctly rounded,
 * and (double)d is exact for |d| < 2^53).  -0.0, NaN, ±Inf, denormals and
 * values with too many digits fail that test and become exceptions.  Like
 * every IEEE computation here this assumes the default rounding mode.
 *
 * Choosing.  The encoder samples 32 pairs of neighbouring values, finds for
 * each value the smallest exponent that round-trips, picks the e that
 * minimises an estimated size (an exception ~96 bits, each extra digit ~3.3
 * bits per value) and estimates the ALP stream from the pairs' deltas.  If
 * that promises a small stream it builds it; a stream of at most
 * ALP_SURE_BYTES_PER_POINT is kept outright, otherwise the XOR candidate is
 * compressed too and the smaller chunk wins.
 *
 * Decoder safety.  Every length comes from validated header fields; zstd
 * writes at most raw_len bytes into our scratch buffer and must produce
 * exactly raw_len.  The varint readers look up to 72 bytes ahead of their
 * position without checking each byte (a 64-byte window of varint ends,
 * plus one 8-byte load): every loop consumes at most 10 bytes per item it
 * decodes and checks its position against the payload end when it
 * finishes, and the scratch buffer has DECODE_SLACK spare bytes behind the
 * largest possible payload, so the look-ahead stays inside it.  The
 * caller's bytes are read only by the CRC and by zstd, both within len.
 *
 * Not done here: the aggregates (value_count, min, max, sum) are trusted to
 * the header CRC, as re-checking them would cost a pass over the values;
 * a codec is not safe for concurrent use (chunk.h).
 */
#include "chunk.h"
#include "decimal.h"

#include "vg_alloc.h"
#include "vg_error.h"

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_format, ZSTD_d_format, custom allocators */
#include <zstd.h>
#include <zstd_errors.h>

#include <math.h>
#include <string.h>

/*
 * zstd settings per value encoding, measured on 2048-point chunks of a
 * random walk at full precision and at one decimal and of an integer
 * heart-rate-like walk.  Levels 4..9 shrink ALP chunks by at most
 * 2% and XOR chunks by about 1% while encoding 2-5x slower; what does pay
 * is a minimum match of 7 for ALP streams, which stops zstd from trading
 * cheap Huffman-coded literals for short matches (-6% on the heart rate).
 * XOR streams keep their literals raw (no Huffman stage): the literals of
 * full-precision XOR planes are mostly noise that Huffman shrinks by only
 * 0.3% (6.593 -> 6.611 bytes per point on cpu-full, 4096-point chunks),
 * while decoding them cost 20% of the decoder's instructions (326 M ->
 * 261 M for the whole dataset, callgrind) — and a query that scans
 * full-precision data is bound by decoding.
 */
static const struct zstd_tuning {
	int level;
	int min_match; /* 0: the level's default */
	int literals;  /* ZSTD_c_literalCompressionMode */
} zstd_tuning[] = {
    [VG_CHUNK_ENC_XOR] = {3, 0, ZSTD_ps_disable},
    [VG_CHUNK_ENC_ALP] = {3, 7, ZSTD_ps_auto},
};

/*
 * A thorough codec (vg_codec_set_thorough: compaction, which re-encodes the
 * chunks it re-cuts while the store is idle) compresses ALP streams at
 * level 11, zstd's optimal parser (btopt): on the vitals data set's integer
 * walks chunks shrink by ~12% (0.258 -> 0.229 bytes per point) for ~5x
 * the encoding time; levels 4..10 (greedy and lazy parsers, deeper
 * searches, btlazy2) gain at most 2.5%, levels 12..19 another 1.5% at
 * 2-10x more time again.  One-decimal walks (cpu-rounded) and XOR streams
 * gain nothing (<0.5%), so XOR stays at level 3.  Decoding is as fast.
 */
static const struct zstd_tuning zstd_thorough_tuning[] = {
    [VG_CHUNK_ENC_XOR] = {3, 0, ZSTD_ps_disable}, /* raw literals, as above */
    [VG_CHUNK_ENC_ALP] = {11, 7, ZSTD_ps_auto},
};

#define MAX_POINTS VG_CHUNK_MAX_POINTS
#define ALP_MAX_EXPONENT VG_ALP_MAX_EXPONENT
#define ALP_MAX_D VG_ALP_MAX_D
#define ALP_MAX_D_INT 9007199254740991ull
/* Upper bound of raw_len (generous: 10-byte varints everywhere). */
#define RAW_MAX (40 * MAX_POINTS)
/* Bytes a varint reader may look ahead of the last checked position. */
#define DECODE_SLACK (10 * MAX_POINTS + 128)
#define RAW_CAP (RAW_MAX + DECODE_SLACK)
#define PACKED_CAP ZSTD_COMPRESSBOUND(RAW_MAX)
/* Payloads up to this size are stored in a raw zstd block (see compress());
 * at most 255 so that the frame content size fits its 1-byte field. */
#define VG_CHUNK_RAW_FRAME_MAX 128
#define ALP_SAMPLE_PAIRS 32
/* ALP is built only if the sampled pairs promise at most this many bytes per
 * value; full-precision data needs 7 or more and goes to XOR directly. */
#define ALP_MAX_ESTIMATE 6
/* An ALP value stream of at most this many bytes per point is kept without
 * trying XOR: XOR of such data does not come close after zstd. */
#define ALP_SURE_BYTES_PER_POINT 4

struct vg_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	uint8_t tuned_for;   /* VG_CHUNK_ENC_* whose tuning cctx has (| 0x80: thorough), or 0 */
	bool thorough;       /* vg_codec_set_thorough */
	uint8_t *raw;        /* RAW_CAP: payload being built or decoded */
	uint8_t *raw_alt;    /* RAW_CAP: the XOR candidate while both are tried */
	uint8_t *packed;     /* PACKED_CAP: compressed candidate */
	uint8_t *packed_alt; /* PACKED_CAP */
	uint64_t *words;     /* MAX_POINTS: XORed values before the split */
	uint16_t *exc_pos;   /* MAX_POINTS: ALP exception positions */
	uint64_t *exc_bits;  /* MAX_POINTS: ALP exception values */
};

/* ---- little helpers ---------------------------------------------------- */

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

/* Spreads the low 56 bits of v into the low 7 bits of 8 bytes. */
static inline uint64_t spread7(uint64_t v)
{
	v = (v & 0x000000000fffffffull) | ((v & 0x00fffffff0000000ull) << 4);
	v = (v & 0x00003fff00003fffull) | ((v & 0x0fffc0000fffc000ull) << 2);
	return (v & 0x007f007f007f007full) | ((v & 0x3f803f803f803f80ull) << 1);
}

/* Writes v as an LEB128 varint at p and returns the end; may write 8 bytes
 * past p even for a shorter varint (the raw buffers have the room). */
static inline uint8_t *put_uvarint(uint8_t *p, uint64_t v)
{
	if (v < 0x80) {
		*p = (uint8_t)v;
		return p + 1;
	}
	if (v < (1ull << 56)) {
		size_t len = (size_t)(63 - __builtin_clzll(v)) / 7 + 1;
		uint64_t more = 0x8080808080808080ull & ((1ull << (8 * (len - 1))) - 1);
		store_le64(p, spread7(v) | more);
		return p + len;
	}
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline size_t uvarint_len(uint64_t v)
{
	size_t len = 1;
	while (v >= 0x80) {
		v >>= 7;
		len++;
	}
	return len;
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

/* Bit j is set iff p[j] ends a varint (its high bit is clear), j < 64. */
static inline uint64_t varint_ends(const uint8_t *p)
{
#ifdef VG_HAVE_SSE2
	uint64_t more = 0;
	for (int k = 0; k < 4; k++) {
		__m128i bytes = _mm_loadu_si128((const __m128i *)(p + 16 * k));
		more |= (uint64_t)(unsigned)_mm_movemask_epi8(bytes) << (16 * k);
	}
	return ~more;
#else
	uint64_t ends = 0;
	for (int j = 0; j < 64; j++)
		ends |= (uint64_t)(p[j] < 0x80) << j;
	return ends;
#endif
}

/*
 * Reads the varints that end within the 64 bytes at p, at most `max` of
 * them, into out; returns how many (0 if none ends there: corrupt) and sets
 * *used to the bytes they take.  One bitmap of the bytes that end a varint
 * gives every length at once, so no varint waits for the previous one's
 * length.  Reads at most p[0..72) (see DECODE_SLACK); a varint above 2^64
 * sets *bad.
 */
static inline size_t get_uvarint_window(const uint8_t *p, size_t max, uint64_t *out, size_t *used,
                                        uint64_t *bad)
{
	uint64_t ends = varint_ends(p);
	size_t start = 0, got = 0;
	while (ends && got < max) {
		size_t stop = (size_t)__builtin_ctzll(ends);
		size_t len = stop - start + 1;
		ends &= ends - 1;
		if (len <= 8) {
			out[got] = pack7(load_le64(p + start) & (~0ull >> (64 - 8 * len)));
		} else if (len <= 10) {
			get_uvarint_long(p + start, &out[got], bad);
		} else {
			*bad = 1;
			break;
		}
		got++;
		start = stop + 1;
	}
	*used = start;
	return got;
}

/* The interval of a perfectly regular series: delta_0 of the timestamps. */
static inline uint64_t mean_interval(int64_t min_time, int64_t max_time, size_t n)
{
	return n > 1 ? ((uint64_t)max_time - (uint64_t)min_time) / (n - 1) : 0;
}

/* d_{-1} of ALP: the first value scaled and truncated, so that the first
 * delta is 0 or ±1.  A pure function of header fields. */
static inline uint64_t alp_base(double first_value, int e)
{
	double x = first_value * vg_pow10[e];
	return fabs(x) <= ALP_MAX_D ? (uint64_t)(int64_t)x : 0;
}

/* ---- codec lifecycle --------------------------------------------------- */

/* Sets cctx to the tuning of `encoding` (thorough or not) unless it has it
 * already. */
static int compress_tune(vg_codec_t *c, uint8_t encoding)
{
	uint8_t want = (uint8_t)(encoding | (c->thorough ? 0x80 : 0));
	if (c->tuned_for == want)
		return 0;
	const struct zstd_tuning *t =
	    c->thorough ? &zstd_thorough_tuning[encoding] : &zstd_tuning[encoding];
	c->tuned_for = 0;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, t->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_minMatch, t->min_match)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_literalCompressionMode, t->literals)))
		return VG_EINVAL;
	c->tuned_for = want;
	return 0;
}

void vg_codec_set_thorough(vg_codec_t *c, bool thorough) { c->thorough = thorough; }

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
	c->words = vg_malloc(MAX_POINTS * sizeof *c->words);
	c->exc_pos = vg_malloc(MAX_POINTS * sizeof *c->exc_pos);
	c->exc_bits = vg_malloc(MAX_POINTS * sizeof *c->exc_bits);
	c->cctx = ZSTD_createCCtx_advanced(mem);
	c->dctx = ZSTD_createDCtx_advanced(mem);
	if (!c->raw || !c->raw_alt || !c->packed || !c->packed_alt || !c->words || !c->exc_pos ||
	    !c->exc_bits || !c->cctx || !c->dctx) {
		vg_codec_free(c);
		return VG_ENOMEM;
	}
	/* Valid parameters cannot be refused; the checks guard against a zstd
	 * built without these (partly experimental) ones.  Both tunings are
	 * tried once here so that switching between them later cannot fail. */
	if (compress_tune(c, VG_CHUNK_ENC_XOR) || compress_tune(c, VG_CHUNK_ENC_ALP) ||
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
	vg_free(c->words);
	vg_free(c->exc_pos);
	vg_free(c->exc_bits);
	vg_free(c);
}

/* ---- byte-stream split ------------------------------------------------- */

#ifdef VG_HAVE_SSE2
/* One round of a byte transpose: interleaves registers r and s. */
static inline void unpack8(__m128i *a, int r, int s)
{
	__m128i lo = _mm_unpacklo_epi8(a[r], a[s]), hi = _mm_unpackhi_epi8(a[r], a[s]);
	a[r] = lo;
	a[s] = hi;
}

static inline void unpack16(__m128i *a, int r, int s)
{
	__m128i lo = _mm_unpacklo_epi16(a[r], a[s]), hi = _mm_unpackhi_epi16(a[r], a[s]);
	a[r] = lo;
	a[s] = hi;
}

static inline void unpack32(__m128i *a, int r, int s)
{
	__m128i lo = _mm_unpacklo_epi32(a[r], a[s]), hi = _mm_unpackhi_epi32(a[r], a[s]);
	a[r] = lo;
	a[s] = hi;
}

/* Stores the two values whose XOR differences are in y, given carry = the
 * previous value in both lanes; returns the new carry. */
static inline __m128i undo_xor(double *out, __m128i y, __m128i carry)
{
	y = _mm_xor_si128(y, _mm_slli_si128(y, 8));
	y = _mm_xor_si128(y, carry);
	_mm_storeu_si128((__m128i *)out, y);
	return _mm_unpackhi_epi64(y, y);
}
#endif

/*
 * Splits words[0..n) into 8 planes of n bytes at o.  The SSE2 path
 * transposes 16 words at a time: 8 registers of two words each, four
 * rounds of byte interleaving; each round moves one bit of a byte's
 * position into the register number, and after four the register number
 * names the plane (bit order b0 b2 b1) and the position the word.
 */
static void split_planes(uint8_t *o, const uint64_t *words, size_t n)
{
	size_t i = 0;
#ifdef VG_HAVE_SSE2
	for (; i + 16 <= n; i += 16) {
		/* Written out (no loops) so that `a` lives in registers. */
		__m128i a[8];
		a[0] = _mm_loadu_si128((const __m128i *)(words + i));
		a[1] = _mm_loadu_si128((const __m128i *)(words + i + 2));
		a[2] = _mm_loadu_si128((const __m128i *)(words + i + 4));
		a[3] = _mm_loadu_si128((const __m128i *)(words + i + 6));
		a[4] = _mm_loadu_si128((const __m128i *)(words + i + 8));
		a[5] = _mm_loadu_si128((const __m128i *)(words + i + 10));
		a[6] = _mm_loadu_si128((const __m128i *)(words + i + 12));
		a[7] = _mm_loadu_si128((const __m128i *)(words + i + 14));
		unpack8(a, 0, 4);
		unpack8(a, 1, 5);
		unpack8(a, 2, 6);
		unpack8(a, 3, 7);
		unpack8(a, 0, 2);
		unpack8(a, 1, 3);
		unpack8(a, 4, 6);
		unpack8(a, 5, 7);
		unpack8(a, 0, 1);
		unpack8(a, 2, 3);
		unpack8(a, 4, 5);
		unpack8(a, 6, 7);
		unpack8(a, 0, 4);
		unpack8(a, 1, 5);
		unpack8(a, 2, 6);
		unpack8(a, 3, 7);
		_mm_storeu_si128((__m128i *)(o + i), a[0]);
		_mm_storeu_si128((__m128i *)(o + n + i), a[4]);
		_mm_storeu_si128((__m128i *)(o + 2 * n + i), a[1]);
		_mm_storeu_si128((__m128i *)(o + 3 * n + i), a[5]);
		_mm_storeu_si128((__m128i *)(o + 4 * n + i), a[2]);
		_mm_storeu_si128((__m128i *)(o + 5 * n + i), a[6]);
		_mm_storeu_si128((__m128i *)(o + 6 * n + i), a[3]);
		_mm_storeu_si128((__m128i *)(o + 7 * n + i), a[7]);
	}
#endif
	for (; i < n; i++)
		for (size_t b = 0; b < 8; b++)
			o[b * n + i] = (uint8_t)(words[i] >> (8 * b));
}

/*
 * Joins 8 planes of n bytes at p back into words and undoes the XOR with
 * the previous value, starting from `prev`; writes the values.  The SSE2
 * path interleaves bytes, then 16-bit and 32-bit units (three rounds), which
 * leaves word pair q in register bitreverse3(q).
 */
static void join_planes(double *values, const uint8_t *p, size_t n, uint64_t prev)
{
	size_t i = 0;
#ifdef VG_HAVE_SSE2
	__m128i carry = _mm_set1_epi64x((long long)prev);
	for (; i + 16 <= n; i += 16) {
		__m128i a[8];
		a[0] = _mm_loadu_si128((const __m128i *)(p + i));
		a[1] = _mm_loadu_si128((const __m128i *)(p + n + i));
		a[2] = _mm_loadu_si128((const __m128i *)(p + 2 * n + i));
		a[3] = _mm_loadu_si128((const __m128i *)(p + 3 * n + i));
		a[4] = _mm_loadu_si128((const __m128i *)(p + 4 * n + i));
		a[5] = _mm_loadu_si128((const __m128i *)(p + 5 * n + i));
		a[6] = _mm_loadu_si128((const __m128i *)(p + 6 * n + i));
		a[7] = _mm_loadu_si128((const __m128i *)(p + 7 * n + i));
		unpack8(a, 0, 1);
		unpack8(a, 2, 3);
		unpack8(a, 4, 5);
		unpack8(a, 6, 7);
		unpack16(a, 0, 2);
		unpack16(a, 1, 3);
		unpack16(a, 4, 6);
		unpack16(a, 5, 7);
		unpack32(a, 0, 4);
		unpack32(a, 1, 5);
		unpack32(a, 2, 6);
		unpack32(a, 3, 7);
		carry = undo_xor(values + i, a[0], carry);
		carry = undo_xor(values + i + 2, a[4], carry);
		carry = undo_xor(values + i + 4, a[2], carry);
		carry = undo_xor(values + i + 6, a[6], carry);
		carry = undo_xor(values + i + 8, a[1], carry);
		carry = undo_xor(values + i + 10, a[5], carry);
		carry = undo_xor(values + i + 12, a[3], carry);
		carry = undo_xor(values + i + 14, a[7], carry);
	}
	prev = (uint64_t)_mm_cvtsi128_si64(carry);
#endif
	for (; i < n; i++) {
		uint64_t x = 0;
		for (size_t b = 0; b < 8; b++)
			x |= (uint64_t)p[b * n + i] << (8 * b);
		prev ^= x;
		values[i] = vg_bits_double(prev);
	}
}

/* ---- encoding ---------------------------------------------------------- */

static uint8_t *put_times(uint8_t *o, const int64_t *times, size_t n)
{
	uint64_t prev = (uint64_t)times[0];
	uint64_t prev_delta = mean_interval(times[0], times[n - 1], n);
	for (size_t i = 1; i < n; i++) {
		uint64_t delta = (uint64_t)times[i] - prev;
		uint64_t z = vg_zigzag(delta - prev_delta);
		if (z == 0)
			*o++ = 0;
		else
			o = put_uvarint(o, z);
		prev = (uint64_t)times[i];
		prev_delta = delta;
	}
	return o;
}

/* The ALP exponent for this chunk, or -1 if ALP promises no gain. */
static int alp_choose_exponent(const double *values, size_t n)
{
	size_t pairs = n / 2 < ALP_SAMPLE_PAIRS ? n / 2 : ALP_SAMPLE_PAIRS;
	size_t first[ALP_SAMPLE_PAIRS];
	for (size_t s = 0; s < pairs; s++)
		first[s] = n <= 2 * ALP_SAMPLE_PAIRS ? 2 * s : s * (n - 2) / (pairs - 1);
	if (pairs == 0)
		return vg_alp_min_exponent(values[0]);

	size_t at_exponent[ALP_MAX_EXPONENT + 1] = {0};
	for (size_t s = 0; s < pairs; s++)
		for (size_t j = 0; j < 2; j++) {
			int e = vg_alp_min_exponent(values[first[s] + j]);
			if (e >= 0)
				at_exponent[e]++;
		}
	/* Cost in tenths of bits: an exception ~96 bits (raw value + position),
	 * each extra digit ~3.3 bits on every value that fits. */
	size_t samples = 2 * pairs, fit = 0, best_cost = SIZE_MAX;
	int best = -1;
	for (int e = 0; e <= ALP_MAX_EXPONENT; e++) {
		fit += at_exponent[e];
		size_t cost = (samples - fit) * 960 + fit * 33 * (size_t)e;
		if (cost < best_cost) {
			best_cost = cost;
			best = e;
		}
	}

	/* Estimated stream: each value pays its pair's delta, or ~10 bytes
	 * as an exception. */
	size_t bytes = 0;
	for (size_t s = 0; s < pairs; s++) {
		int64_t d0, d1;
		bool fit0 = vg_alp_fits(values[first[s]], best, &d0);
		bool fit1 = vg_alp_fits(values[first[s] + 1], best, &d1);
		if (fit0 && fit1)
			bytes += 2 * uvarint_len(vg_zigzag((uint64_t)d1 - (uint64_t)d0));
		else
			bytes += (fit0 || fit1) ? 10 + 4 : 20;
	}
	return bytes <= ALP_MAX_ESTIMATE * samples ? best : -1;
}

/* Writes the ALP value stream at o; returns its length, or 0 if it would
 * exceed `limit` bytes (the caller then uses XOR). */
static size_t put_alp(vg_codec_t *c, uint8_t *o, const double *values, size_t n, int e,
                      size_t limit)
{
	uint8_t *start = o, *stop = o + limit;
	uint64_t prev = alp_base(values[0], e);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t d;
		if (!vg_alp_fits(values[i], e, &d)) {
			c->exc_pos[k] = (uint16_t)i;
			c->exc_bits[k++] = vg_double_bits(values[i]);
			d = (int64_t)prev;
		}
		o = put_uvarint(o, vg_zigzag((uint64_t)d - prev));
		prev = (uint64_t)d;
		if (o > stop)
			return 0;
	}
	o = put_uvarint(o, k);
	for (size_t j = 0; j < k; j++)
		o = put_uvarint(o, j ? (uint64_t)(c->exc_pos[j] - c->exc_pos[j - 1] - 1)
		                     : c->exc_pos[0]);
	if ((size_t)(o - start) + 8 * k > limit)
		return 0;
	for (size_t j = 0; j < k; j++, o += 8)
		store_le64(o, c->exc_bits[j]);
	return (size_t)(o - start);
}

static size_t put_xor(vg_codec_t *c, uint8_t *o, const double *values, size_t n)
{
	uint64_t prev = vg_double_bits(values[0]);
	for (size_t i = 0; i < n; i++) {
		uint64_t b = vg_double_bits(values[i]);
		c->words[i] = b ^ prev;
		prev = b;
	}
	split_planes(o, c->words, n);
	return 8 * n;
}

/* Compresses raw into dst (PACKED_CAP bytes) with the settings for
 * `encoding`; returns the size or a negative code.  With dst at least
 * ZSTD_compressBound, zstd fails only to allocate. */
static long compress(vg_codec_t *c, uint8_t encoding, uint8_t *dst, const uint8_t *raw,
                     size_t raw_len)
{
	if (raw_len <= VG_CHUNK_RAW_FRAME_MAX) {
		/*
		 * A tiny payload (a series sealed after a few points) gains a few
		 * bytes from zstd but costs ~40,000 instructions of context
		 * reset, so it is framed by hand as a magicless single-segment
		 * zstd frame holding one raw block, which ZSTD_decompressDCtx()
		 * reads like any other:
		 *   0x20              frame header: single segment, 1-byte size
		 *   raw_len           frame content size
		 *   3 bytes LE        block header: last block, type raw (0),
		 *                     size raw_len  (1 | raw_len << 3)
		 *   raw_len bytes     the payload
		 */
		uint32_t block = 1u | (uint32_t)raw_len << 3;
		dst[0] = 0x20;
		dst[1] = (uint8_t)raw_len;
		dst[2] = (uint8_t)block;
		dst[3] = (uint8_t)(block >> 8);
		dst[4] = (uint8_t)(block >> 16);
		memcpy(dst + 5, raw, raw_len);
		return (long)(5 + raw_len);
	}
	int rc = compress_tune(c, encoding);
	if (rc)
		return rc;
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
	store_le64(p + 32, vg_double_bits(h->min_value));
	store_le64(p + 40, vg_double_bits(h->max_value));
	store_le64(p + 48, vg_double_bits(h->sum));
	store_le64(p + 56, vg_double_bits(h->first_value));
	store_le64(p + 64, vg_double_bits(h->last_value));
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
		raw_len = ts_len + alp_len;
		packed_len = compress(c, VG_CHUNK_ENC_ALP, c->packed, c->raw, raw_len);
		if (packed_len < 0)
			return (int)packed_len;
		payload = c->packed;
		h.encoding = VG_CHUNK_ENC_ALP;
	}
	if (!alp_len || alp_len > ALP_SURE_BYTES_PER_POINT * n) {
		memcpy(c->raw_alt, c->raw, ts_len);
		size_t xor_len = put_xor(c, c->raw_alt + ts_len, values, n);
		long xor_packed =
		    compress(c, VG_CHUNK_ENC_XOR, c->packed_alt, c->raw_alt, ts_len + xor_len);
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

static int parse_header(const uint8_t *p, size_t len, vg_chunk_header_t *h, struct header_extra *x)
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
	h->min_value = vg_bits_double(load_le64(p + 32));
	h->max_value = vg_bits_double(load_le64(p + 40));
	h->sum = vg_bits_double(load_le64(p + 48));
	h->first_value = vg_bits_double(load_le64(p + 56));
	h->last_value = vg_bits_double(load_le64(p + 64));
	x->raw_len = load_le32(p + 72);
	x->payload_crc = load_le32(p + 76);

	bool ok = p[7] == 0;
	ok &= (h->encoding == VG_CHUNK_ENC_XOR && x->param == 0) ||
	      (h->encoding == VG_CHUNK_ENC_ALP && x->param <= ALP_MAX_EXPONENT);
	ok &= h->count >= 1 && h->count <= MAX_POINTS && h->value_count <= h->count;
	/* n strictly increasing times span at least n - 1 nanoseconds. */
	ok &= h->min_time <= h->max_time &&
	      (uint64_t)h->max_time - (uint64_t)h->min_time >= h->count - 1u;
	/* At least a byte per delta-of-delta and per value. */
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

/* times[j] = t + (j + 1) * delta for j < n (n a multiple of 8); the
 * caller has checked that the last one does not overflow. */
static void fill_regular(int64_t *times, int64_t t, int64_t delta, size_t n)
{
	size_t j = 0;
#ifdef VG_HAVE_SSE2
	__m128i step = _mm_set1_epi64x(2 * delta);
	__m128i a = _mm_set_epi64x(t + 2 * delta, t + delta);
	for (; j + 2 <= n; j += 2) {
		_mm_storeu_si128((__m128i *)(times + j), a);
		a = _mm_add_epi64(a, step);
	}
#endif
	for (; j < n; j++)
		times[j] = t + (int64_t)(j + 1) * delta;
}

static int get_times(const uint8_t **pp, const uint8_t *end, const vg_chunk_header_t *h,
                     int64_t *times)
{
	const size_t n = h->count;
	const uint8_t *p = *pp;
	uint64_t t = (uint64_t)h->min_time, bad = 0;
	uint64_t delta = mean_interval(h->min_time, h->max_time, n);
	times[0] = h->min_time;
	size_t i = 1;
	while (i < n) {
		/* Runs of eight unchanged deltas that keep the times increasing
		 * and in range: a regular stretch, filled without per-point
		 * checks. */
		size_t runs = 0;
		while (i + 8 * (runs + 1) <= n && load_le64(p + 8 * runs) == 0)
			runs++;
		int64_t span, last;
		if (runs > 0 && (int64_t)delta > 0 &&
		    !__builtin_mul_overflow((int64_t)delta, (int64_t)(8 * runs), &span) &&
		    !__builtin_add_overflow((int64_t)t, span, &last)) {
			fill_regular(times + i, (int64_t)t, (int64_t)delta, 8 * runs);
			t = (uint64_t)last;
			p += 8 * runs;
			i += 8 * runs;
			continue;
		}
		/* Otherwise every varint that ends in the next 64 bytes. */
		uint64_t dd[64];
		size_t used, got = get_uvarint_window(p, n - i, dd, &used, &bad);
		if (got == 0)
			return VG_ECORRUPT;
		for (size_t j = 0; j < got; j++) {
			delta += vg_unzigzag(dd[j]);
			uint64_t next = t + delta;
			bad |= (int64_t)next <= (int64_t)t;
			t = next;
			times[i++] = (int64_t)t;
		}
		p += used;
	}
	if (bad || p > end || t != (uint64_t)h->max_time)
		return VG_ECORRUPT;
	*pp = p;
	return 0;
}

static int get_alp(vg_codec_t *c, const uint8_t *p, const uint8_t *end, size_t n, int e,
                   double first_value, double *values)
{
	const double scale = vg_pow10[e];
	uint64_t d = alp_base(first_value, e), bad = 0;
	size_t i = 0;
	while (i < n) {
		uint64_t w = load_le64(p);
		if ((w & 0x8080808080808080ull) == 0 && i + 8 <= n) {
			/* Eight one-byte varints, the usual case. */
			for (size_t j = 0; j < 8; j++) {
				d += vg_unzigzag(w >> (8 * j) & 0xff);
				bad |= d + ALP_MAX_D_INT > 2 * ALP_MAX_D_INT; /* |d| < 2^53 */
				values[i + j] = (double)(int64_t)d / scale;
			}
			p += 8;
			i += 8;
			continue;
		}
		uint64_t dd[64];
		size_t used, got = get_uvarint_window(p, n - i, dd, &used, &bad);
		if (got == 0)
			return VG_ECORRUPT;
		for (size_t j = 0; j < got; j++) {
			d += vg_unzigzag(dd[j]);
			bad |= d + ALP_MAX_D_INT > 2 * ALP_MAX_D_INT;
			values[i++] = (double)(int64_t)d / scale;
		}
		p += used;
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
		values[c->exc_pos[j]] = vg_bits_double(load_le64(p + 8 * j));
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
	if (h.encoding == VG_CHUNK_ENC_ALP) {
		rc = get_alp(c, p, end, h.count, x.param, h.first_value, values);
		if (rc)
			return rc;
	} else {
		if ((size_t)(end - p) != 8 * (size_t)h.count)
			return VG_ECORRUPT;
		join_planes(values, p, h.count, vg_double_bits(h.first_value));
	}
	/* The first value is implied by the header; the last is a cheap check
	 * that the streams line up. */
	if (vg_double_bits(values[0]) != vg_double_bits(h.first_value) ||
	    vg_double_bits(values[h.count - 1]) != vg_double_bits(h.last_value))
		return VG_ECORRUPT;
	*count = h.count;
	return 0;
}

/* ---- fitting a chunk to a byte budget ------------------------------------
 *
 * Chunk size grows with the point count, roughly linearly but not exactly
 * (zstd), so the largest prefix that fits is found by a few encodes: the
 * whole run, a secant estimate through the origin (aimed a little low, then
 * lower while nothing fits),
 * then interpolation between the largest count known to fit and the
 * smallest known not to, until the chunk is within `slack` bytes of the
 * budget or FIT_ATTEMPTS encodes are spent; then halving if nothing fit. */

#define FIT_ATTEMPTS 12

static int encode_prefix(vg_codec_t *c, const int64_t *times, const double *values, size_t n,
			 vg_buf_t *out, size_t base)
{
	out->len = base;
	return vg_chunk_encode(c, times, values, n, out);
}

int vg_chunk_encode_fit(vg_codec_t *c, const int64_t *times, const double *values, size_t n,
			size_t max_bytes, size_t slack, vg_buf_t *out, size_t *count)
{
	if (n > MAX_POINTS)
		n = MAX_POINTS;
	size_t base = out->len;
	int code = encode_prefix(c, times, values, n, out, base);
	if (code)
		return code;
	if (out->len - base <= max_bytes) {
		*count = n;
		return 0;
	}
	size_t lo = 0, lo_len = 0, hi = n, hi_len = out->len - base;
	for (int attempt = 0; attempt < FIT_ATTEMPTS && hi - lo > 1; attempt++) {
		size_t next;
		if (lo == 0) {
			double aim = attempt == 0 ? 0.995 : 0.9;
			next = (size_t)((double)hi * (double)max_bytes / (double)hi_len * aim);
		} else {
			double per = (double)(hi_len - lo_len) / (double)(hi - lo);
			next = lo + (size_t)((double)(max_bytes - lo_len) / (per > 0 ? per : 1.0));
		}
		if (next <= lo)
			next = lo + 1;
		if (next >= hi)
			next = hi - 1;
		code = encode_prefix(c, times, values, next, out, base);
		if (code)
			return code;
		size_t len = out->len - base;
		if (len <= max_bytes) {
			lo = next;
			lo_len = len;
			if (max_bytes - len <= slack)
				break;
		} else {
			hi = next;
			hi_len = len;
		}
	}
	while (lo == 0 && hi > 1) {
		hi /= 2;
		code = encode_prefix(c, times, values, hi, out, base);
		if (code)
			return code;
		if (out->len - base <= max_bytes) {
			lo = hi;
			lo_len = out->len - base;
		}
	}
	if (lo == 0) {
		out->len = base;
		*count = 0;
		return 0;
	}
	if (out->len - base != lo_len)
		code = encode_prefix(c, times, values, lo, out, base);
	*count = lo;
	if (code)
		out->len = base;
	return code;
}
