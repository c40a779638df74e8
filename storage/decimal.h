/*
 * decimal.h — the number tricks shared by the chunk codec (chunk.c) and
 * head blocks (head.c): float bits, zigzag, and the ALP test of whether a
 * double is really a decimal, v == (double)d / 10^e for an integer d.
 *
 * The test is exact: it divides as the decoders do and compares the 64
 * bits, so -0.0, NaN payloads, ±Inf and values with too many digits never
 * pass, and a value that passes decodes to the same bits.
 */
#ifndef VG_DECIMAL_H
#define VG_DECIMAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h> /* SSE2: part of every x86-64 */
#define VG_HAVE_SSE2 1
#endif

#define VG_ALP_MAX_EXPONENT 18
/* Largest |d| accepted: 2^53 - 1, so that (double)d is exact. */
#define VG_ALP_MAX_D 9007199254740991.0

static const double vg_pow10[VG_ALP_MAX_EXPONENT + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
};

static inline uint64_t vg_double_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b;
}

static inline double vg_bits_double(uint64_t b)
{
	double v;
	memcpy(&v, &b, 8);
	return v;
}

static inline uint64_t vg_zigzag(uint64_t v) { return (v << 1) ^ (0 - (v >> 63)); }
static inline uint64_t vg_unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

static inline int64_t vg_round_to_int64(double x)
{
#ifdef VG_HAVE_SSE2
	return _mm_cvtsd_si64(_mm_set_sd(x)); /* round to nearest, no libm call */
#else
	return llrint(x);
#endif
}

/* Whether v == (double)d / 10^e for the d it rounds to; sets *d. */
static inline bool vg_alp_fits(double v, int e, int64_t *d)
{
	double x = v * vg_pow10[e];
	if (!(fabs(x) <= VG_ALP_MAX_D)) /* also false for NaN */
		return false;
	*d = vg_round_to_int64(x);
	return vg_double_bits((double)*d / vg_pow10[e]) == vg_double_bits(v);
}

/* The smallest exponent at which v round-trips, or -1. */
static inline int vg_alp_min_exponent(double v)
{
	for (int e = 0; e <= VG_ALP_MAX_EXPONENT; e++) {
		int64_t d;
		if (vg_alp_fits(v, e, &d))
			return e;
		/* |v * 10^e| only grows with e: once past 2^53 nothing fits. */
		if (!(fabs(v * vg_pow10[e]) <= VG_ALP_MAX_D))
			return -1;
	}
	return -1;
}

#endif
