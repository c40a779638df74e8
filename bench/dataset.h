/*
 * dataset.h — the reproducible benchmark datasets of docs BENCH.md.
 *
 * A dataset is generated whole in memory from a name and a seed: the named
 * ones hold at most ~11 M doubles (under 100 MB), so every benchmark can
 * replay exactly the same points in any order it likes (series-major for the
 * storage benchmark, time-major for ingest) without re-running a generator.
 *
 *   cpu-full     TSBS "cpu-only": 100 hosts, measurement `cpu`, 10 tags,
 *                10 fields usage_user .. usage_guest_nice, each a random walk
 *                of N(0,1) steps clamped to [0, 100] from a uniform start
 *                (TSBS's ClampedRandomWalk), full double precision; every
 *                10 s for 24 h: 8640 timestamps, 8.64 M points.
 *   cpu-rounded  the same walks (same seed, same numbers) rounded to 1 decimal.
 *   vitals       500 patients (tags bed, patient, ward), measurement `vitals`,
 *                fields heart_rate, spo2, resp_rate, temp, systolic,
 *                diastolic; every 1 s for 1 h: 3600 timestamps, 10.8 M points.
 *                All fields are whole numbers except temp (1 decimal).  Each
 *                patient has 0..3 tachycardia episodes (heart_rate > 120 for
 *                20..90 s, onset and end abrupt as in paroxysmal SVT); outside
 *                an episode heart_rate stays <= 115, so the runs above 120 are
 *                exactly the episodes.  The generator guarantees that at least
 *                one episode exists.
 *   scale-N      N series (default 1,000,000): measurement `scale`, tags
 *                host=host_<e/100>, metric=m<e%100>, one field `value`, 10
 *                points at 10 s.  "scale" with scale_n, or "scale-N" by name.
 *
 * All series start at VG_DATASET_START_NS (2026-01-01T00:00:00Z).
 *
 * Reproducibility: the same (name, seed, N) gives bit-identical values on any
 * machine and libm.  The PRNG is xoshiro256** seeded by splitmix64; normals
 * come from Marsaglia's polar method with a log of our own built from
 * + - * / only, and sqrt, which IEEE 754 rounds exactly, so no libm
 * transcendental is involved (vgbench is also built with -ffp-contract=off).
 *
 * Line protocol (vg_dataset_append_line / vg_dataset_write_lines): one line
 * per entity per timestamp with all its fields, tags in ascending key order,
 * ns timestamps, no `i` suffix (every field is a float in Vigil's model, and
 * "72" is a float to InfluxDB too).  Floats use the shortest of %.15g, %.16g,
 * %.17g that parses back to the same bits; whole numbers print as integers.
 */
#ifndef VG_DATASET_H
#define VG_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vg_buf.h"

/* 2026-01-01T00:00:00Z in ns since the Unix epoch. */
#define VG_DATASET_START_NS INT64_C(1767225600000000000)
/* The seed every published figure uses unless it says otherwise. */
#define VG_DATASET_DEFAULT_SEED UINT64_C(20260101)
/* scale-N: the default N, and the largest N accepted (10 points per series). */
#define VG_DATASET_SCALE_DEFAULT UINT64_C(1000000)
#define VG_DATASET_SCALE_MAX UINT64_C(100000000)

/*
 * A generated dataset.  A plain record, read directly by the benchmarks; every
 * pointer in it is owned by the dataset (or is static) and stays valid until
 * vg_dataset_free().  Treat it as read-only.
 *
 * An "entity" is one tag set (a host, a patient); each entity has nfields
 * series, one per field, and every series has the same npoints timestamps.
 */
typedef struct vg_dataset {
	char name[32];           /* "cpu-full", "vitals", "scale-1000000", ... */
	const char *measurement; /* static */
	size_t ntag_keys;
	const char *const *tag_keys; /* static, sorted ascending */
	size_t nentities;
	const char **tag_values; /* [entity * ntag_keys + k], value of tag_keys[k] */
	size_t nfields;
	const char *const *fields; /* static, in the order BENCH.md lists them */
	size_t npoints;            /* timestamps per series */
	int64_t *times;            /* [j], ns, ascending, shared by all series */
	double *values;            /* [(entity * nfields + field) * npoints + j] */
	char *strings;             /* private: the bytes tag_values point into */
} vg_dataset_t;

/*
 * Generates the dataset `name` ("cpu-full", "cpu-rounded", "vitals", "scale"
 * or "scale-<N>") from `seed`.  `scale_n` is N for "scale" (0 means the
 * default 1,000,000) and must be 0 or equal to the N of a "scale-<N>" name;
 * other datasets ignore it.  On success *out is a new dataset the caller
 * frees with vg_dataset_free(); on failure *out is untouched.
 * Returns 0, VG_ENOTFOUND for an unknown name, VG_EINVAL for a malformed
 * "scale-<N>" or a conflicting scale_n, VG_ELIMIT for N of 0 or above
 * VG_DATASET_SCALE_MAX, VG_ENOMEM.
 */
int vg_dataset_generate(const char *name, uint64_t seed, uint64_t scale_n, vg_dataset_t **out);

/* Frees the dataset and everything it points to; NULL is a no-op. */
void vg_dataset_free(vg_dataset_t *d);

/* A static, comma-separated list of the dataset names, for usage messages. */
const char *vg_dataset_names(void);

static inline size_t vg_dataset_series_count(const vg_dataset_t *d)
{
	return d->nentities * d->nfields;
}
/* Lines of line protocol: one per entity per timestamp. */
static inline uint64_t vg_dataset_lines_total(const vg_dataset_t *d)
{
	return (uint64_t)d->nentities * d->npoints;
}
/* Points (field values) in the whole dataset. */
static inline uint64_t vg_dataset_points_total(const vg_dataset_t *d)
{
	return vg_dataset_lines_total(d) * d->nfields;
}
/* The npoints values of one series, aligned with d->times; borrowed from d. */
static inline const double *vg_dataset_series_values(const vg_dataset_t *d, size_t entity,
                                                     size_t field)
{
	return d->values + (entity * d->nfields + field) * d->npoints;
}
/* The value of tag_keys[k] for an entity; borrowed from d. */
static inline const char *vg_dataset_tag_value(const vg_dataset_t *d, size_t entity, size_t k)
{
	return d->tag_values[entity * d->ntag_keys + k];
}

/*
 * Appends to `out` the line-protocol line (with its '\n') of `entity` at
 * timestamp index j.  Returns 0, VG_EINVAL if an index is out of range or a
 * value is not finite (line protocol cannot carry NaN or Inf), VG_ENOMEM.
 * On failure `out` may hold part of the line past its former length.
 */
int vg_dataset_append_line(const vg_dataset_t *d, size_t entity, size_t j, vg_buf_t *out);

/*
 * Writes the whole dataset to `out` as line protocol in time-major order (all
 * entities at times[0], then times[1], ...).  *bytes (if not NULL) receives
 * the number of bytes written, also on failure.  Does not flush or close
 * `out`.  Returns 0, -EIO (or -errno) if a write fails, VG_EINVAL, VG_ENOMEM.
 */
int vg_dataset_write_lines(const vg_dataset_t *d, FILE *out, uint64_t *bytes);

/*
 * Formats `v` in shortest round-trip form into dst (at least
 * VG_DATASET_FLOAT_MAX bytes), NUL-terminated; returns the length.  Whole
 * numbers below 2^53 print as integers ("72", "-3"), -0.0 as "-0", others as
 * the first of %.15g, %.16g, %.17g that strtod() reads back to the same bits.
 */
#define VG_DATASET_FLOAT_MAX 32
size_t vg_dataset_format_double(double v, char *dst);

/*
 * The generator's PRNG, exposed so that benchmarks can draw their random
 * hosts and windows reproducibly: xoshiro256** (Blackman & Vigna), seeded
 * through splitmix64.  Not for cryptography.
 */
typedef struct vg_rng {
	uint64_t s[4];
	double spare; /* second normal of the last polar-method pair */
	bool has_spare;
} vg_rng_t;

void vg_rng_seed(vg_rng_t *r, uint64_t seed);
uint64_t vg_rng_next(vg_rng_t *r);
/* Uniform in [0, n), unbiased; n > 0. */
uint64_t vg_rng_below(vg_rng_t *r, uint64_t n);
/* Uniform in [0, 1) with 53 random bits. */
double vg_rng_uniform(vg_rng_t *r);
/* Standard normal N(0, 1), bit-reproducible across machines (see above). */
double vg_rng_normal(vg_rng_t *r);

#endif
