/*
 * vg_hash.h — one fast 64-bit hash of bytes (multiply-xorshift over 8-byte
 * words), for in-memory tables and the store's hashed keys alike.
 *
 * The store writes it to disk (series keys by hash, long tag values cut and
 * hashed in postings keys: storage/series.c), so the function must never
 * change without a store format version.  Not for adversarial input where
 * collisions would cost more than a second look.
 */
#ifndef VG_HASH_H
#define VG_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t vg_hash64(const void *data, size_t n)
{
	const uint8_t *p = data;
	const uint64_t m = UINT64_C(0x9E3779B97F4A7C15);
	uint64_t h = UINT64_C(0x243F6A8885A308D3) ^ (n * m);
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ (w * m)) * UINT64_C(0xBF58476D1CE4E5B9);
		h ^= h >> 31;
		p += 8;
		n -= 8;
	}
	uint64_t w = 0;
	if (n)
		memcpy(&w, p, n);
	h = (h ^ (w * m)) * UINT64_C(0x94D049BB133111EB);
	h ^= h >> 29;
	h *= m;
	h ^= h >> 32;
	return h;
}

#endif
