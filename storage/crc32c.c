/*
 * crc32c.c — CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of every chunk header and payload (see chunk.h).
 *
 * Why CRC32C: x86-64 computes it in hardware (SSE4.2 `crc32`, 8 bytes per
 * instruction) and it detects all burst errors up to 32 bits, which is what
 * a flipped or torn disk page looks like.
 *
 * Shape.  The public function keeps zlib's convention: it takes and returns
 * the finished (inverted) CRC, so vg_crc32c(vg_crc32c(0, a), b) is the CRC of
 * a||b.  Inside, the "raw" register (not inverted) is what both back ends
 * work on:
 *
 *   - hardware (SSE4.2, chosen at run time with __builtin_cpu_supports,
 *     compiled with __attribute__((target("sse4.2"))) so no build flag):
 *     the crc32 instruction has a latency of 3 cycles but a throughput of
 *     1 per cycle, so long inputs are cut into three interleaved streams of
 *     BLOCK bytes each, and the three partial CRCs are joined with
 *     crc(A||B) = shift(crc(A)) ^ crc0(B), where shift() appends BLOCK zero
 *     bytes to a raw register (a linear map, applied with four 256-entry
 *     tables) and crc0 starts from 0;
 *   - portable: slicing-by-8, eight 256-entry tables, 8 bytes per step.
 *
 * All tables, and the choice of back end, are made once under pthread_once
 * and never written again; there is no other global state.  Check value:
 * crc32c("123456789") is 0xE3069283 (tests/storage/test_chunk.c, which
 * also checks both back ends against a bitwise reference).
 */
#include "chunk.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

/* Bytes per stream in the three-way interleaved hardware loop. */
#define BLOCK 256

/* slicing[k][b]: the raw register after feeding byte b then k zero bytes. */
static uint32_t slicing[8][256];
/* shift_block[k][b]: byte k of a raw register holding b, advanced by BLOCK zero bytes. */
static uint32_t shift_block[4][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static bool have_sse42; /* set once, with the tables */

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void build_tables(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init(); /* in case we run before constructors */
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;
		for (int bit = 0; bit < 8; bit++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
		slicing[0][b] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int b = 0; b < 256; b++) {
			uint32_t c = slicing[k - 1][b];
			slicing[k][b] = (c >> 8) ^ slicing[0][c & 0xff];
		}
	/* The image of each of the 32 register bits under "append BLOCK zero
	 * bytes", then every byte value as the XOR of its bits' images. */
	uint32_t basis[32];
	for (int bit = 0; bit < 32; bit++) {
		uint32_t c = 1u << bit;
		for (int i = 0; i < BLOCK; i++)
			c = (c >> 8) ^ slicing[0][c & 0xff];
		basis[bit] = c;
	}
	for (int k = 0; k < 4; k++)
		for (int b = 0; b < 256; b++) {
			uint32_t c = 0;
			for (int bit = 0; bit < 8; bit++)
				if (b & (1 << bit))
					c ^= basis[8 * k + bit];
			shift_block[k][b] = c;
		}
}

static uint32_t crc32c_portable(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ slicing[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo = crc ^ load_le32(p);
		uint32_t hi = load_le32(p + 4);
		crc = slicing[7][lo & 0xff] ^ slicing[6][(lo >> 8) & 0xff] ^
		      slicing[5][(lo >> 16) & 0xff] ^ slicing[4][lo >> 24] ^ slicing[3][hi & 0xff] ^
		      slicing[2][(hi >> 8) & 0xff] ^ slicing[1][(hi >> 16) & 0xff] ^
		      slicing[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ slicing[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC32C_SSE42 1

static inline uint32_t shift_by_block(uint32_t c)
{
	return shift_block[0][c & 0xff] ^ shift_block[1][(c >> 8) & 0xff] ^
	       shift_block[2][(c >> 16) & 0xff] ^ shift_block[3][c >> 24];
}

static inline uint64_t load_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8); /* x86 is little-endian */
	return v;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p,
                                                               size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = _mm_crc32_u8(crc, *p++);
		len--;
	}
	while (len >= 3 * BLOCK) {
		uint64_t a = crc, b = 0, c = 0;
		for (size_t i = 0; i < BLOCK; i += 8) {
			a = _mm_crc32_u64(a, load_u64(p + i));
			b = _mm_crc32_u64(b, load_u64(p + BLOCK + i));
			c = _mm_crc32_u64(c, load_u64(p + 2 * BLOCK + i));
		}
		crc = shift_by_block(shift_by_block((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
		p += 3 * BLOCK;
		len -= 3 * BLOCK;
	}
	uint64_t c64 = crc;
	while (len >= 8) {
		c64 = _mm_crc32_u64(c64, load_u64(p));
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c64;
	while (len--)
		crc = _mm_crc32_u8(crc, *p++);
	return crc;
}
#endif

uint32_t vg_crc32c(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	pthread_once(&tables_once, build_tables);
#ifdef HAVE_CRC32C_SSE42
	if (have_sse42)
		return ~crc32c_sse42(~crc, p, len);
#endif
	return ~crc32c_portable(~crc, p, len);
}
