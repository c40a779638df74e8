/*
 * dataset.c — generators of the benchmark datasets, and their line protocol.
 *
 * Each generator fills a vg_dataset_t whose arrays are allocated once with
 * their final sizes (overflow-checked), so a generator is a few loops over a
 * PRNG.  Tag values are built into one byte buffer as offsets and turned into
 * pointers only when the buffer has stopped moving (builder_finish).
 *
 * Bit reproducibility rests on three rules: one PRNG stream per dataset,
 * drawn in a fixed order (entity by entity, ascending); on doubles, only IEEE
 * basic operations, sqrt and the exact libm functions frexp and round (no
 * log or cos: see det_log); and no contraction of a*b+c into fused
 * multiply-adds (-ffp-contract=off in CMakeLists.txt, also GCC's default in
 * ISO C mode).
 *
 * The shapes, seeds and constants below define the published datasets:
 * changing any of them changes every figure measured on them, so do it only
 * together with bench/RESULTS.md.
 */
#include "dataset.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG -------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void vg_rng_seed(vg_rng_t *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
	r->spare = 0;
	r->has_spare = false;
}

uint64_t vg_rng_next(vg_rng_t *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t vg_rng_below(vg_rng_t *r, uint64_t n)
{
	/* Reject the lowest (2^64 mod n) values so every residue is equally likely. */
	uint64_t threshold = (0 - n) % n;
	for (;;) {
		uint64_t x = vg_rng_next(r);
		if (x >= threshold)
			return x % n;
	}
}

double vg_rng_uniform(vg_rng_t *r)
{
	return (double)(vg_rng_next(r) >> 11) * 0x1.0p-53;
}

/*
 * Natural log for x > 0 from + - * / only, so that it gives the same bits
 * under every libm.  x = m * 2^e with m in [sqrt(1/2), sqrt(2)) (frexp and
 * the scaling by 2 are exact); log m = 2 atanh(s) with s = (m-1)/(m+1),
 * |s| < 0.1716, and the atanh series to s^23 leaves an error below 1e-17.
 * Accuracy is about 1 ulp, which is all a normal deviate needs.
 */
static double det_log(double x)
{
	int e;
	double m = frexp(x, &e);
	if (m < 0x1.6a09e667f3bcdp-1) { /* sqrt(1/2) */
		m *= 2;
		e--;
	}
	double s = (m - 1) / (m + 1);
	double z = s * s;
	double p = 1.0 / 23;
	for (int k = 21; k >= 1; k -= 2)
		p = p * z + 1.0 / k;
	return e * 0x1.62e42fefa39efp-1 /* ln 2 */ + 2 * s * p;
}

double vg_rng_normal(vg_rng_t *r)
{
	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	double u, v, s;
	do {
		u = 2 * vg_rng_uniform(r) - 1;
		v = 2 * vg_rng_uniform(r) - 1;
		s = u * u + v * v;
	} while (s >= 1 || s == 0);
	double f = sqrt(-2 * det_log(s) / s);
	r->spare = v * f;
	r->has_spare = true;
	return u * f;
}

/* ---- dataset skeleton -------------------------------------------------- */

static int mul_size(size_t a, size_t b, size_t *out)
{
	if (b && a > SIZE_MAX / b)
		return VG_ELIMIT;
	*out = a * b;
	return 0;
}

/*
 * A dataset under construction.  Tag values are appended to `strings` in
 * entity-then-key order and remembered as offsets, because the buffer moves
 * as it grows; builder_finish turns them into the dataset's pointers.
 */
typedef struct builder {
	vg_dataset_t *d;
	vg_buf_t strings;
	size_t *offsets; /* [ntags] */
	size_t nstrings, ntags;
} builder_t;

static void builder_release(builder_t *b)
{
	vg_buf_release(&b->strings);
	vg_free(b->offsets);
	vg_dataset_free(b->d);
	b->d = NULL;
	b->offsets = NULL;
}

/* Allocates the dataset and its arrays for the given shape. */
static int builder_init(builder_t *b, const char *name, const char *measurement,
                        const char *const *tag_keys, size_t ntag_keys, size_t nentities,
                        const char *const *fields, size_t nfields, size_t npoints)
{
	memset(b, 0, sizeof(*b));
	vg_buf_init(&b->strings);
	size_t ntags, nseries, nvalues;
	if (mul_size(nentities, ntag_keys, &ntags) || mul_size(nentities, nfields, &nseries) ||
	    mul_size(nseries, npoints, &nvalues) || nvalues > SIZE_MAX / sizeof(double))
		return VG_ELIMIT;
	vg_dataset_t *d = vg_calloc(1, sizeof(*d));
	if (!d)
		return VG_ENOMEM;
	b->d = d;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->measurement = measurement;
	d->tag_keys = tag_keys;
	d->ntag_keys = ntag_keys;
	d->nentities = nentities;
	d->fields = fields;
	d->nfields = nfields;
	d->npoints = npoints;
	d->times = vg_reallocarray(NULL, npoints, sizeof(int64_t));
	d->values = vg_reallocarray(NULL, nvalues, sizeof(double));
	b->offsets = vg_reallocarray(NULL, ntags, sizeof(size_t));
	b->ntags = ntags;
	if (!d->times || !d->values || !b->offsets) {
		builder_release(b);
		return VG_ENOMEM;
	}
	return 0;
}

/* Equally spaced timestamps from VG_DATASET_START_NS. */
static void builder_set_times(builder_t *b, int64_t step_ns)
{
	for (size_t j = 0; j < b->d->npoints; j++)
		b->d->times[j] = VG_DATASET_START_NS + (int64_t)j * step_ns;
}

static size_t format_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

/* Adds the next tag value: `prefix` then `num` zero-padded to `width` digits. */
static int builder_add_tag(builder_t *b, const char *prefix, uint64_t num, size_t width)
{
	char digits[20];
	size_t n = format_u64(digits, num);
	size_t plen = strlen(prefix);
	size_t pad = width > n ? width - n : 0;
	assert(b->nstrings < b->ntags);
	int rc = vg_buf_reserve(&b->strings, plen + pad + n + 1);
	if (rc)
		return rc;
	b->offsets[b->nstrings++] = b->strings.len;
	vg_buf_append(&b->strings, prefix, plen);
	for (size_t i = 0; i < pad; i++)
		vg_buf_putc(&b->strings, '0');
	vg_buf_append(&b->strings, digits, n);
	vg_buf_putc(&b->strings, '\0');
	return 0;
}

static int builder_add_str(builder_t *b, const char *s)
{
	assert(b->nstrings < b->ntags);
	int rc = vg_buf_reserve(&b->strings, strlen(s) + 1);
	if (rc)
		return rc;
	b->offsets[b->nstrings++] = b->strings.len;
	vg_buf_append(&b->strings, s, strlen(s) + 1);
	return 0;
}

/* Hands the strings to the dataset and returns it; the builder is spent. */
static int builder_finish(builder_t *b, vg_dataset_t **out)
{
	vg_dataset_t *d = b->d;
	size_t ntags = b->ntags;
	assert(b->nstrings == ntags);
	d->tag_values = vg_reallocarray(NULL, ntags, sizeof(char *));
	if (!d->tag_values) {
		builder_release(b);
		return VG_ENOMEM;
	}
	d->strings = (char *)b->strings.data;
	for (size_t i = 0; i < ntags; i++)
		d->tag_values[i] = d->strings + b->offsets[i];
	vg_buf_init(&b->strings); /* now owned by d */
	vg_free(b->offsets);
	b->offsets = NULL;
	b->d = NULL;
	*out = d;
	return 0;
}

void vg_dataset_free(vg_dataset_t *d)
{
	if (!d)
		return;
	vg_free(d->times);
	vg_free(d->values);
	vg_free((void *)d->tag_values);
	vg_free(d->strings);
	vg_free(d);
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* TSBS's ClampedRandomWalk(ND(0,1), lo, hi, start): emit, then step. */
static void clamped_walk(vg_rng_t *r, double *dst, size_t n, double lo, double hi)
{
	double x = lo + vg_rng_uniform(r) * (hi - lo);
	for (size_t j = 0; j < n; j++) {
		dst[j] = x;
		x = clamp(x + vg_rng_normal(r), lo, hi);
	}
}

/* ---- cpu-full, cpu-rounded --------------------------------------------- */

enum { CPU_HOSTS = 100, CPU_POINTS = 8640, CPU_STEP_S = 10 };

static const char *const cpu_tag_keys[] = {
    "arch",    "datacenter",          "hostname",        "os",   "rack", "region",
    "service", "service_environment", "service_version", "team",
};
static const char *const cpu_fields[] = {
    "usage_user", "usage_system",  "usage_idle",  "usage_nice",  "usage_iowait",
    "usage_irq",  "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
};

/* TSBS devops regions and their datacenters (pkg/data/usecases/devops/host.go). */
static const struct {
	const char *name;
	const char *datacenters[4];
} cpu_regions[] = {
    {"us-east-1", {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"}},
    {"us-west-1", {"us-west-1a", "us-west-1b"}},
    {"us-west-2", {"us-west-2a", "us-west-2b", "us-west-2c"}},
    {"eu-west-1", {"eu-west-1a", "eu-west-1b", "eu-west-1c"}},
    {"eu-central-1", {"eu-central-1a", "eu-central-1b"}},
    {"ap-southeast-1", {"ap-southeast-1a", "ap-southeast-1b"}},
    {"ap-southeast-2", {"ap-southeast-2a", "ap-southeast-2b"}},
    {"ap-northeast-1", {"ap-northeast-1a", "ap-northeast-1c"}},
    {"sa-east-1", {"sa-east-1a", "sa-east-1b", "sa-east-1c"}},
};
static const char *const cpu_os[] = {"Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"};
static const char *const cpu_arch[] = {"x64", "x86"};
static const char *const cpu_team[] = {"SF", "NYC", "LON", "CHI"};
static const char *const cpu_env[] = {"production", "staging", "test"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *pick(vg_rng_t *r, const char *const *choices, size_t n)
{
	return choices[vg_rng_below(r, n)];
}

static int cpu_host_tags(builder_t *b, vg_rng_t *r, size_t host)
{
	/* Drawn in TSBS's order; added in tag_keys order. */
	size_t reg = vg_rng_below(r, COUNT(cpu_regions));
	size_t ndc = 0;
	while (ndc < 4 && cpu_regions[reg].datacenters[ndc])
		ndc++;
	const char *dc = cpu_regions[reg].datacenters[vg_rng_below(r, ndc)];
	uint64_t rack = vg_rng_below(r, 100);
	const char *arch = pick(r, cpu_arch, COUNT(cpu_arch));
	const char *os = pick(r, cpu_os, COUNT(cpu_os));
	uint64_t service = vg_rng_below(r, 20);
	uint64_t version = vg_rng_below(r, 2);
	const char *env = pick(r, cpu_env, COUNT(cpu_env));
	const char *team = pick(r, cpu_team, COUNT(cpu_team));
	int rc = 0;
	rc = rc ? rc : builder_add_str(b, arch);
	rc = rc ? rc : builder_add_str(b, dc);
	rc = rc ? rc : builder_add_tag(b, "host_", host, 0);
	rc = rc ? rc : builder_add_str(b, os);
	rc = rc ? rc : builder_add_tag(b, "", rack, 0);
	rc = rc ? rc : builder_add_str(b, cpu_regions[reg].name);
	rc = rc ? rc : builder_add_tag(b, "", service, 0);
	rc = rc ? rc : builder_add_str(b, env);
	rc = rc ? rc : builder_add_tag(b, "", version, 0);
	rc = rc ? rc : builder_add_str(b, team);
	return rc;
}

static int gen_cpu(const char *name, uint64_t seed, bool rounded, vg_dataset_t **out)
{
	builder_t b;
	int rc = builder_init(&b, name, "cpu", cpu_tag_keys, COUNT(cpu_tag_keys), CPU_HOSTS,
	                      cpu_fields, COUNT(cpu_fields), CPU_POINTS);
	if (rc)
		return rc;
	builder_set_times(&b, (int64_t)CPU_STEP_S * 1000000000);
	vg_rng_t r;
	vg_rng_seed(&r, seed);
	for (size_t h = 0; h < CPU_HOSTS; h++) {
		rc = cpu_host_tags(&b, &r, h);
		if (rc) {
			builder_release(&b);
			return rc;
		}
	}
	vg_dataset_t *d = b.d;
	size_t nseries = vg_dataset_series_count(d);
	for (size_t s = 0; s < nseries; s++)
		clamped_walk(&r, d->values + s * CPU_POINTS, CPU_POINTS, 0, 100);
	if (rounded) {
		size_t n = nseries * CPU_POINTS;
		for (size_t i = 0; i < n; i++)
			d->values[i] = round(d->values[i] * 10) / 10;
	}
	return builder_finish(&b, out);
}

/* ---- vitals ------------------------------------------------------------ */

enum {
	VITALS_PATIENTS = 500,
	VITALS_PER_WARD = 50,
	VITALS_POINTS = 3600,
	VITALS_MAX_EPISODES = 3,
	VITALS_EPISODE_MIN_S = 20,
	VITALS_EPISODE_MAX_S = 90,
};

static const char *const vitals_tag_keys[] = {"bed", "patient", "ward"};
enum { HR, SPO2, RESP, TEMP, SYS, DIA, VITALS_NFIELDS };
static const char *const vitals_fields[VITALS_NFIELDS] = {
    "heart_rate", "spo2", "resp_rate", "temp", "systolic", "diastolic",
};

/*
 * One mean-reverting walk (a discretised Ornstein-Uhlenbeck process): each
 * second the state moves `pull` of the way to its target plus `sd` N(0,1),
 * and stays within [lo, hi].
 */
typedef struct vital {
	double x, target, pull, sd, lo, hi;
} vital_t;

static double vital_step(vital_t *v, vg_rng_t *r, double target)
{
	v->x = clamp(v->x + v->pull * (target - v->x) + v->sd * vg_rng_normal(r), v->lo, v->hi);
	return v->x;
}

typedef struct episode {
	size_t start, end; /* seconds, [start, end) */
	double peak;
} episode_t;

/*
 * 0..3 episodes (at least one for patient 0, so the dataset always has one),
 * one inside each equal slice of the hour with 10 s of margin, so episodes
 * never touch and each is exactly one run of heart_rate > 120.
 */
static size_t vitals_episodes(vg_rng_t *r, size_t patient, episode_t *ep)
{
	size_t n = (size_t)vg_rng_below(r, VITALS_MAX_EPISODES + 1);
	if (patient == 0 && n == 0)
		n = 1;
	for (size_t i = 0; i < n; i++) {
		size_t slice = VITALS_POINTS / n;
		size_t dur =
		    VITALS_EPISODE_MIN_S +
		    (size_t)vg_rng_below(r, VITALS_EPISODE_MAX_S - VITALS_EPISODE_MIN_S + 1);
		ep[i].start = i * slice + 10 + (size_t)vg_rng_below(r, slice - dur - 20 + 1);
		ep[i].end = ep[i].start + dur;
		ep[i].peak = 125 + (double)vg_rng_below(r, 31);
	}
	return n;
}

static void vitals_patient(vg_dataset_t *d, vg_rng_t *r, size_t p)
{
	double *out[VITALS_NFIELDS];
	for (size_t f = 0; f < VITALS_NFIELDS; f++)
		out[f] = d->values + (p * VITALS_NFIELDS + f) * VITALS_POINTS;
	double hr_base = 60 + (double)vg_rng_below(r, 31);
	vital_t hr = {hr_base, hr_base, 0.05, 0.8, 45, 115};
	vital_t tachy = {0, 0, 0.1, 1.5, 121, 190};
	double spo2_base = 95 + 4 * vg_rng_uniform(r);
	vital_t spo2 = {spo2_base, spo2_base, 0.05, 0.3, 90, 100};
	double resp_base = 14 + 4 * vg_rng_uniform(r);
	vital_t resp = {resp_base, resp_base, 0.05, 0.3, 12, 20};
	double temp_base = 36.4 + vg_rng_uniform(r);
	vital_t temp = {temp_base, temp_base, 0.002, 0.004, 36.0, 38.5};
	double sys_base = 105 + 35 * vg_rng_uniform(r);
	vital_t sys = {sys_base, sys_base, 0.05, 1.0, 85, 180};
	double dia_base = 65 + 20 * vg_rng_uniform(r);
	vital_t dia = {dia_base, dia_base, 0.05, 0.8, 45, 110};
	episode_t ep[VITALS_MAX_EPISODES];
	size_t nep = vitals_episodes(r, p, ep), cur = 0;

	for (size_t j = 0; j < VITALS_POINTS; j++) {
		while (cur < nep && j >= ep[cur].end)
			cur++;
		bool in_episode = cur < nep && j >= ep[cur].start;
		if (in_episode && j == ep[cur].start)
			tachy.x = ep[cur].peak;
		double hr_now = vital_step(&hr, r, hr.target);
		if (in_episode)
			hr_now = vital_step(&tachy, r, ep[cur].peak);
		double stress = in_episode ? 1 : 0;
		out[HR][j] = round(hr_now);
		out[SPO2][j] = round(vital_step(&spo2, r, spo2.target - 2 * stress));
		out[RESP][j] = round(vital_step(&resp, r, resp.target + 3 * stress));
		out[TEMP][j] = round(vital_step(&temp, r, temp.target) * 10) / 10;
		double s = round(vital_step(&sys, r, sys.target + 10 * stress));
		double dv = round(vital_step(&dia, r, dia.target + 5 * stress));
		out[SYS][j] = s;
		out[DIA][j] = dv < s - 20 ? dv : s - 20;
	}
}

static int gen_vitals(uint64_t seed, vg_dataset_t **out)
{
	builder_t b;
	int rc = builder_init(&b, "vitals", "vitals", vitals_tag_keys, COUNT(vitals_tag_keys),
	                      VITALS_PATIENTS, vitals_fields, VITALS_NFIELDS, VITALS_POINTS);
	if (rc)
		return rc;
	builder_set_times(&b, 1000000000);
	vg_rng_t r;
	vg_rng_seed(&r, seed);
	for (size_t p = 0; p < VITALS_PATIENTS; p++) {
		rc = builder_add_tag(&b, "b", p % VITALS_PER_WARD + 1, 2);
		rc = rc ? rc : builder_add_tag(&b, "p", p, 3);
		rc = rc ? rc : builder_add_tag(&b, "w", p / VITALS_PER_WARD + 1, 2);
		if (rc) {
			builder_release(&b);
			return rc;
		}
		vitals_patient(b.d, &r, p);
	}
	return builder_finish(&b, out);
}

/* ---- scale-N ----------------------------------------------------------- */

enum { SCALE_POINTS = 10, SCALE_STEP_S = 10, SCALE_METRICS = 100 };

static const char *const scale_tag_keys[] = {"host", "metric"};
static const char *const scale_fields[] = {"value"};

static int gen_scale(uint64_t seed, uint64_t n, vg_dataset_t **out)
{
	char name[32];
	snprintf(name, sizeof(name), "scale-%llu", (unsigned long long)n);
	builder_t b;
	int rc = builder_init(&b, name, "scale", scale_tag_keys, COUNT(scale_tag_keys), (size_t)n,
	                      scale_fields, COUNT(scale_fields), SCALE_POINTS);
	if (rc)
		return rc;
	builder_set_times(&b, (int64_t)SCALE_STEP_S * 1000000000);
	vg_rng_t r;
	vg_rng_seed(&r, seed);
	for (size_t e = 0; e < n; e++) {
		rc = builder_add_tag(&b, "host_", e / SCALE_METRICS, 0);
		rc = rc ? rc : builder_add_tag(&b, "m", e % SCALE_METRICS, 2);
		if (rc) {
			builder_release(&b);
			return rc;
		}
		clamped_walk(&r, b.d->values + e * SCALE_POINTS, SCALE_POINTS, 0, 100);
	}
	return builder_finish(&b, out);
}

/* ---- dispatch ---------------------------------------------------------- */

const char *vg_dataset_names(void)
{
	return "cpu-full, cpu-rounded, vitals, scale, scale-<N>";
}

/* Parses the N of "scale-<N>": decimal digits only, no sign, no overflow. */
static int parse_scale_suffix(const char *s, uint64_t *n)
{
	if (!*s)
		return VG_EINVAL;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return VG_EINVAL;
		unsigned digit = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - digit) / 10)
			return VG_ELIMIT;
		v = v * 10 + digit;
	}
	*n = v;
	return 0;
}

int vg_dataset_generate(const char *name, uint64_t seed, uint64_t scale_n, vg_dataset_t **out)
{
	if (!name || !out)
		return VG_EINVAL;
	if (strcmp(name, "cpu-full") == 0)
		return gen_cpu(name, seed, false, out);
	if (strcmp(name, "cpu-rounded") == 0)
		return gen_cpu(name, seed, true, out);
	if (strcmp(name, "vitals") == 0)
		return gen_vitals(seed, out);
	if (strncmp(name, "scale", 5) != 0 || (name[5] != '\0' && name[5] != '-'))
		return VG_ENOTFOUND;
	uint64_t n = scale_n ? scale_n : VG_DATASET_SCALE_DEFAULT;
	if (name[5] == '-') {
		uint64_t named;
		int rc = parse_scale_suffix(name + 6, &named);
		if (rc)
			return rc;
		if (scale_n && scale_n != named)
			return VG_EINVAL;
		n = named;
	}
	if (n == 0 || n > VG_DATASET_SCALE_MAX)
		return VG_ELIMIT;
	return gen_scale(seed, n, out);
}

/* ---- line protocol ----------------------------------------------------- */

size_t vg_dataset_format_double(double v, char *dst)
{
	if (v >= -0x1p53 && v <= 0x1p53 && v == (double)(int64_t)v && !(v == 0 && signbit(v))) {
		int64_t i = (int64_t)v;
		size_t n = 0;
		if (i < 0)
			dst[n++] = '-';
		n += format_u64(dst + n, i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i);
		dst[n] = '\0';
		return n;
	}
	int len = 0;
	for (int prec = 15; prec <= 17; prec++) {
		len = snprintf(dst, VG_DATASET_FLOAT_MAX, "%.*g", prec, v);
		if (prec == 17 || strtod(dst, NULL) == v)
			break;
	}
	return (size_t)len;
}

/* Line protocol escapes ',', ' ' and '=' in tag keys and values. */
static int append_escaped(vg_buf_t *out, const char *s)
{
	size_t n = strlen(s);
	if (strcspn(s, ", =") == n)
		return vg_buf_append(out, s, n);
	for (; *s; s++) {
		if ((*s == ',' || *s == ' ' || *s == '=') && vg_buf_putc(out, '\\'))
			return VG_ENOMEM;
		if (vg_buf_putc(out, (uint8_t)*s))
			return VG_ENOMEM;
	}
	return 0;
}

int vg_dataset_append_line(const vg_dataset_t *d, size_t entity, size_t j, vg_buf_t *out)
{
	if (entity >= d->nentities || j >= d->npoints)
		return VG_EINVAL;
	int rc = vg_buf_append(out, d->measurement, strlen(d->measurement));
	for (size_t k = 0; k < d->ntag_keys && !rc; k++) {
		rc = vg_buf_putc(out, ',');
		rc = rc ? rc : append_escaped(out, d->tag_keys[k]);
		rc = rc ? rc : vg_buf_putc(out, '=');
		rc = rc ? rc : append_escaped(out, vg_dataset_tag_value(d, entity, k));
	}
	char num[VG_DATASET_FLOAT_MAX];
	for (size_t f = 0; f < d->nfields && !rc; f++) {
		double v = vg_dataset_series_values(d, entity, f)[j];
		if (!isfinite(v))
			return VG_EINVAL;
		size_t n = vg_dataset_format_double(v, num);
		rc = vg_buf_putc(out, f ? ',' : ' ');
		rc = rc ? rc : vg_buf_append(out, d->fields[f], strlen(d->fields[f]));
		rc = rc ? rc : vg_buf_putc(out, '=');
		rc = rc ? rc : vg_buf_append(out, num, n);
	}
	if (rc)
		return rc;
	int64_t t = d->times[j];
	size_t n = 0;
	num[n++] = ' ';
	if (t < 0)
		num[n++] = '-';
	n += format_u64(num + n, t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t);
	num[n++] = '\n';
	return vg_buf_append(out, num, n);
}

enum { WRITE_CHUNK = 1 << 20 };

static int flush_chunk(vg_buf_t *buf, FILE *out, uint64_t *written)
{
	errno = 0;
	size_t n = fwrite(buf->data, 1, buf->len, out);
	*written += n;
	if (n != buf->len)
		return errno ? -errno : -EIO;
	vg_buf_clear(buf);
	return 0;
}

int vg_dataset_write_lines(const vg_dataset_t *d, FILE *out, uint64_t *bytes)
{
	vg_buf_t buf = VG_BUF_INIT;
	uint64_t written = 0;
	int rc = vg_buf_reserve(&buf, WRITE_CHUNK + 4096);
	for (size_t j = 0; j < d->npoints && !rc; j++) {
		for (size_t e = 0; e < d->nentities && !rc; e++) {
			rc = vg_dataset_append_line(d, e, j, &buf);
			if (!rc && buf.len >= WRITE_CHUNK)
				rc = flush_chunk(&buf, out, &written);
		}
	}
	if (!rc && buf.len)
		rc = flush_chunk(&buf, out, &written);
	vg_buf_release(&buf);
	if (bytes)
		*bytes = written;
	return rc;
}
