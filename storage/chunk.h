/*
 * chunk.h — the sealed chunk: one series' points over a time span, encoded.
 *
 * A chunk holds 1..VG_CHUNK_MAX_POINTS points of one series with strictly
 * increasing timestamps.  It is stored as one LMDB value:
 *
 *   offset size  field
 *   0      4     magic "VGC1" (0x56 0x47 0x43 0x31)
 *   4      1     format version (VG_CHUNK_VERSION)
 *   5      1     value encoding (VG_CHUNK_ENC_*)
 *   6      1     value parameter (decimal exponent for ALP, else 0)
 *   7      1     reserved, 0
 *   8      4     count           points in the chunk, little-endian
 *   12     4     value_count     non-NaN values (what aggregates count)
 *   16     8     min_time        int64 ns, first timestamp
 *   24     8     max_time        int64 ns, last timestamp
 *   32     8     min_value       float64 over non-NaN values (NaN if none)
 *   40     8     max_value
 *   48     8     sum
 *   56     8     first_value     value at min_time (may be NaN)
 *   64     8     last_value      value at max_time
 *   72     4     raw_len         bytes of the uncompressed payload
 *   76     4     payload_crc     CRC32C of the compressed payload
 *   80     4     header_crc      CRC32C of bytes 0..79
 *   84     ...   payload         one magicless zstd frame (payloads of at
 *                                 most 128 bytes: one raw, uncompressed
 *                                 zstd block, see chunk.c)
 *
 * All multi-byte header fields are little-endian.  The header CRC is checked
 * before the version, so a damaged version byte reads as corruption.  The
 * payload decompresses to the timestamp stream followed by the value stream
 * (storage/chunk.c has the byte-level details and a worked example):
 *
 *   timestamps: delta-of-delta (Gorilla), zigzag, LEB128 varints.  The first
 *               timestamp is min_time (not repeated); the first delta is
 *               stored as its difference from the mean interval
 *               (max_time - min_time) / (count - 1), later ones as the
 *               change of delta.  A regular series is a run of 0x00 bytes
 *               that zstd shrinks to almost nothing.
 *   values:     VG_CHUNK_ENC_ALP — floats that are really decimals (ALP,
 *               SIGMOD 2024): every value v with v == (double)d / 10^e for an
 *               integer d (|d| < 2^53, e = the value parameter, 0..18)
 *               becomes d; the d's are delta coded (starting from
 *               trunc(first_value * 10^e)), zigzagged and written as
 *               varints; values that do not fit (NaN payloads, ±Inf, -0.0,
 *               too many digits) are exceptions: their count, their
 *               positions (gap varints) and their raw 8 bytes follow the
 *               varints.  The decoder computes (double)d / 10^e exactly as
 *               the encoder checked it.
 *               VG_CHUNK_ENC_XOR — full-precision floats: each value's bits
 *               XOR the previous value's bits (Gorilla; the first value's
 *               "previous" is first_value), the 8-byte words are split into
 *               8 byte planes (byte-stream split) so that zstd sees the
 *               nearly constant sign/exponent bytes together.
 *
 * Both encodings are bit-exact: every NaN payload, ±Inf, -0.0 and denormal
 * comes back as the same 64 bits.  The encoder picks ALP when it applies and
 * is smaller, XOR otherwise.
 *
 * The header's aggregates let count/sum/min/max/mean/first/last over whole
 * chunks be answered without decompressing anything.  They skip NaN; sum is
 * plain double addition in time order, starting from 0.0; min_value and
 * max_value are NaN when value_count is 0.  Decoding verifies both CRCs and
 * the payload's structure but does not recompute the aggregates: they are
 * covered by the header CRC.
 */
#ifndef VG_CHUNK_H
#define VG_CHUNK_H

#include "vg_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VG_CHUNK_MAX_POINTS 8192
#define VG_CHUNK_VERSION 1
#define VG_CHUNK_HEADER_SIZE 84

enum { VG_CHUNK_ENC_XOR = 1, VG_CHUNK_ENC_ALP = 2 };

typedef struct vg_chunk_header {
	uint32_t count;
	uint32_t value_count;
	int64_t min_time;
	int64_t max_time;
	double min_value;
	double max_value;
	double sum;
	double first_value;
	double last_value;
	uint8_t encoding;
} vg_chunk_header_t;

/* Per-thread encoder/decoder state (zstd contexts and scratch space).  One
 * codec must not be used by two threads at once; make one per thread. */
typedef struct vg_codec vg_codec_t;

/* Creates a codec (about 1 MB once it has encoded) and sets *out, which the
 * caller frees with vg_codec_free.  Returns 0, VG_ENOMEM, or VG_EINVAL if
 * the linked zstd lacks a parameter the format needs; *out is untouched on
 * error. */
int vg_codec_new(vg_codec_t **out);
/* Frees the codec; NULL is a no-op. */
void vg_codec_free(vg_codec_t *codec);
/* A thorough codec encodes smaller chunks (ALP: ~12% on integer walks) ~5x
 * more slowly; for re-encoding at leisure (compaction).  The chunks are
 * the same format: any codec decodes them.  Off for a new codec. */
void vg_codec_set_thorough(vg_codec_t *codec, bool thorough);

/*
 * Encodes n points (1 <= n <= VG_CHUNK_MAX_POINTS, times strictly
 * increasing) and appends the chunk to `out`.  Returns 0, VG_EINVAL for a
 * bad n or unsorted times, VG_ENOMEM.  On error `out` is unchanged.
 */
int vg_chunk_encode(vg_codec_t *codec, const int64_t *times, const double *values, size_t n,
		    vg_buf_t *out);

/*
 * Encodes the longest prefix of the n points (times strictly increasing)
 * whose chunk is at most max_bytes long, at most VG_CHUNK_MAX_POINTS
 * points, and appends it to `out`; *count gets its point count.  The search
 * stops early once the chunk is within `slack` bytes of max_bytes, so it
 * may return a prefix a few points short of the longest.  When not even
 * one point fits, *count is 0 and `out` is unchanged.  Returns 0,
 * VG_EINVAL (unsorted times), VG_ENOMEM; on error `out` is unchanged.
 */
int vg_chunk_encode_fit(vg_codec_t *codec, const int64_t *times, const double *values, size_t n,
			size_t max_bytes, size_t slack, vg_buf_t *out, size_t *count);

/*
 * Reads and validates the header of the chunk in [data, data+len): magic,
 * version, header checksum, count within bounds, min_time <= max_time,
 * payload length consistent with len.  Does not touch the payload.  Returns 0,
 * VG_ECORRUPT or VG_EVERSION.
 */
int vg_chunk_header_read(const void *data, size_t len, vg_chunk_header_t *header);

/*
 * Decodes the whole chunk into times[0..count) and values[0..count);
 * `capacity` is the room in both arrays (VG_CHUNK_MAX_POINTS always
 * suffices).  Verifies the payload checksum and every length inside the
 * payload; never reads past data+len.  Returns 0 and sets *count, or
 * VG_ECORRUPT / VG_EVERSION / VG_ELIMIT (capacity too small) / VG_ENOMEM;
 * on error *count is not set and the arrays' contents are unspecified.
 */
int vg_chunk_decode(vg_codec_t *codec, const void *data, size_t len, int64_t *times,
		    double *values, size_t capacity, size_t *count);

/* CRC32C (Castagnoli) of [data, data+len), continuing from `crc` (0 to start). */
uint32_t vg_crc32c(uint32_t crc, const void *data, size_t len);

#endif
