/*
 * vg_test.h — small helpers shared by the test files: temporary
 * directories and a seeded PRNG (tests are reproducible; the seed is
 * printed on failure by the caller).
 */
#ifndef VG_TEST_H
#define VG_TEST_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int vg_test_rm_entry(const char *path, const struct stat *st, int flag,
				   struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Creates a fresh temporary directory; the path is written to buf. */
static inline void vg_test_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");
	snprintf(buf, len, "%s/vigil-test-XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(buf), "mkdtemp failed");
}

static inline void vg_test_rmdir(const char *path)
{
	nftw(path, vg_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* xorshift64* — tiny, fast, good enough for test data. */
typedef struct {
	uint64_t s;
} vg_test_rng_t;

static inline uint64_t vg_test_next(vg_test_rng_t *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(2685821657736338717);
}

/* Uniform in [0, n). */
static inline uint64_t vg_test_below(vg_test_rng_t *r, uint64_t n)
{
	return n ? vg_test_next(r) % n : 0;
}

#endif
