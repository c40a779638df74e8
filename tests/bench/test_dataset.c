/* test_dataset.c — the benchmark datasets: shapes, determinism, bounds, line protocol. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "vg_alloc.h"
#include "vg_error.h"

static vg_dataset_t *generate(const char *name, uint64_t seed, uint64_t scale_n)
{
	vg_dataset_t *d = NULL;
	int rc = vg_dataset_generate(name, seed, scale_n, &d);
	cr_assert_eq(rc, 0, "generate %s: %s", name, vg_strerror(rc));
	cr_assert_not_null(d);
	return d;
}

/* Invariants every dataset keeps, whatever its kind. */
static void check_invariants(const vg_dataset_t *d)
{
	cr_assert(d->ntag_keys > 0 && d->nentities > 0 && d->nfields > 0 && d->npoints > 0);
	for (size_t k = 1; k < d->ntag_keys; k++)
		cr_assert(strcmp(d->tag_keys[k - 1], d->tag_keys[k]) < 0, "tag keys sorted");
	for (size_t j = 1; j < d->npoints; j++)
		cr_assert(d->times[j - 1] < d->times[j], "times ascending");
	cr_assert_eq(d->times[0], VG_DATASET_START_NS);
	for (size_t e = 0; e < d->nentities; e++)
		for (size_t k = 0; k < d->ntag_keys; k++) {
			const char *v = vg_dataset_tag_value(d, e, k);
			cr_assert(v && *v, "tag value present");
			cr_assert_eq(strcspn(v, ", =\\\n"), strlen(v), "no escaping needed: %s", v);
		}
	size_t n = vg_dataset_series_count(d) * d->npoints;
	for (size_t i = 0; i < n; i++)
		cr_assert(isfinite(d->values[i]));
	cr_assert_eq(vg_dataset_points_total(d), n);
}

static void check_shape(const vg_dataset_t *d, const char *measurement, size_t ntag_keys,
                        size_t nentities, size_t nfields, size_t npoints, int64_t step_ns)
{
	check_invariants(d);
	cr_assert_str_eq(d->measurement, measurement);
	cr_assert_eq(d->ntag_keys, ntag_keys);
	cr_assert_eq(d->nentities, nentities);
	cr_assert_eq(d->nfields, nfields);
	cr_assert_eq(d->npoints, npoints);
	for (size_t j = 1; j < d->npoints; j++)
		cr_assert_eq(d->times[j] - d->times[j - 1], step_ns);
}

static size_t tag_index(const vg_dataset_t *d, const char *key)
{
	for (size_t k = 0; k < d->ntag_keys; k++)
		if (strcmp(d->tag_keys[k], key) == 0)
			return k;
	cr_assert_fail("no tag key %s", key);
	return 0;
}

static bool in_list(const char *v, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, list[i]) == 0)
			return true;
	return false;
}

static bool is_whole(double v)
{
	return v == round(v);
}
static bool is_one_decimal(double v)
{
	return round(v * 10) / 10 == v;
}

Test(dataset, cpu_full_shape_tags_and_bounds)
{
	vg_dataset_t *d = generate("cpu-full", VG_DATASET_DEFAULT_SEED, 0);
	check_shape(d, "cpu", 10, 100, 10, 8640, INT64_C(10000000000));
	cr_assert_str_eq(d->name, "cpu-full");
	cr_assert_eq(vg_dataset_points_total(d), 8640000);
	cr_assert_eq(d->times[8639], INT64_C(1767225600000000000) + INT64_C(86390000000000));
	cr_assert_str_eq(d->fields[0], "usage_user");
	cr_assert_str_eq(d->fields[9], "usage_guest_nice");

	static const char *const os[] = {"Ubuntu16.10", "Ubuntu16.04LTS", "Ubuntu15.10"};
	static const char *const arch[] = {"x64", "x86"};
	static const char *const team[] = {"SF", "NYC", "LON", "CHI"};
	static const char *const env[] = {"production", "staging", "test"};
	size_t khost = tag_index(d, "hostname"), kos = tag_index(d, "os");
	size_t karch = tag_index(d, "arch"), kteam = tag_index(d, "team");
	size_t kenv = tag_index(d, "service_environment"), kreg = tag_index(d, "region");
	size_t kdc = tag_index(d, "datacenter"), krack = tag_index(d, "rack");
	size_t ksvc = tag_index(d, "service"), kver = tag_index(d, "service_version");
	size_t seen_team[4] = {0};
	for (size_t h = 0; h < d->nentities; h++) {
		char host[32];
		snprintf(host, sizeof(host), "host_%zu", h);
		cr_assert_str_eq(vg_dataset_tag_value(d, h, khost), host);
		cr_assert(in_list(vg_dataset_tag_value(d, h, kos), os, 3));
		cr_assert(in_list(vg_dataset_tag_value(d, h, karch), arch, 2));
		cr_assert(in_list(vg_dataset_tag_value(d, h, kenv), env, 3));
		const char *t = vg_dataset_tag_value(d, h, kteam);
		cr_assert(in_list(t, team, 4));
		for (size_t i = 0; i < 4; i++)
			seen_team[i] += strcmp(t, team[i]) == 0;
		const char *region = vg_dataset_tag_value(d, h, kreg);
		const char *dc = vg_dataset_tag_value(d, h, kdc);
		cr_assert_eq(strncmp(dc, region, strlen(region)), 0, "%s in %s", dc, region);
		cr_assert_eq(strlen(dc), strlen(region) + 1);
		int rack = atoi(vg_dataset_tag_value(d, h, krack));
		int svc = atoi(vg_dataset_tag_value(d, h, ksvc));
		int ver = atoi(vg_dataset_tag_value(d, h, kver));
		cr_assert(rack >= 0 && rack < 100 && svc >= 0 && svc < 20 &&
		          (ver == 0 || ver == 1));
	}
	for (size_t i = 0; i < 4; i++)
		cr_assert(seen_team[i] > 0, "the PRNG spreads choices");

	/* Full precision: apart from walks resting on a bound (0 or 100, ~1.4%),
	 * almost no value is a 1-decimal number. */
	size_t n = vg_dataset_series_count(d) * d->npoints, bound = 0, short_ = 0;
	for (size_t i = 0; i < n; i++) {
		double v = d->values[i];
		cr_assert(v >= 0 && v <= 100);
		if (v == 0 || v == 100)
			bound++;
		else
			short_ += is_one_decimal(v);
	}
	cr_assert_lt(short_, n / 10000, "full precision, not rounded");
	cr_assert_lt(bound, n / 20, "the walks mostly stay inside the bounds");
	/* A walk of N(0,1) steps: consecutive values differ by a few units at most. */
	double maxstep = 0, sumsq = 0;
	const double *s = vg_dataset_series_values(d, 3, 4);
	for (size_t j = 1; j < d->npoints; j++) {
		double step = fabs(s[j] - s[j - 1]);
		maxstep = step > maxstep ? step : maxstep;
		sumsq += step * step;
	}
	cr_assert_lt(maxstep, 6.5);
	double rms = sqrt(sumsq / (double)(d->npoints - 1));
	cr_assert(rms > 0.8 && rms < 1.1, "step rms %f", rms);
	vg_dataset_free(d);
}

Test(dataset, cpu_rounded_is_cpu_full_rounded_to_one_decimal)
{
	vg_dataset_t *full = generate("cpu-full", 7, 0);
	vg_dataset_t *r = generate("cpu-rounded", 7, 0);
	check_shape(r, "cpu", 10, 100, 10, 8640, INT64_C(10000000000));
	size_t n = vg_dataset_series_count(r) * r->npoints;
	for (size_t i = 0; i < n; i++) {
		double v = r->values[i];
		cr_assert(v >= 0 && v <= 100);
		cr_assert_eq(v, round(full->values[i] * 10) / 10);
		cr_assert(is_one_decimal(v));
	}
	for (size_t i = 0; i < r->nentities * r->ntag_keys; i++)
		cr_assert_str_eq(r->tag_values[i], full->tag_values[i]);
	/* Printed, every value has at most one digit after the point. */
	char buf[VG_DATASET_FLOAT_MAX];
	for (size_t i = 0; i < n; i += 997) {
		vg_dataset_format_double(r->values[i], buf);
		const char *dot = strchr(buf, '.');
		cr_assert(!dot || strlen(dot + 1) == 1, "%s", buf);
		cr_assert_eq(strtod(buf, NULL), r->values[i]);
	}
	vg_dataset_free(full);
	vg_dataset_free(r);
}

Test(dataset, vitals_shape_and_bounds)
{
	vg_dataset_t *d = generate("vitals", VG_DATASET_DEFAULT_SEED, 0);
	check_shape(d, "vitals", 3, 500, 6, 3600, INT64_C(1000000000));
	cr_assert_eq(vg_dataset_points_total(d), 10800000);
	cr_assert_str_eq(d->tag_keys[0], "bed");
	cr_assert_str_eq(d->tag_keys[1], "patient");
	cr_assert_str_eq(d->tag_keys[2], "ward");
	cr_assert_str_eq(vg_dataset_tag_value(d, 0, 1), "p000");
	cr_assert_str_eq(vg_dataset_tag_value(d, 499, 1), "p499");
	cr_assert_str_eq(vg_dataset_tag_value(d, 0, 2), "w01");
	cr_assert_str_eq(vg_dataset_tag_value(d, 499, 2), "w10");
	cr_assert_str_eq(vg_dataset_tag_value(d, 51, 0), "b02");

	static const char *const names[] = {"heart_rate", "spo2",     "resp_rate",
	                                    "temp",       "systolic", "diastolic"};
	static const double lo[] = {45, 90, 12, 36.0, 85, 45};
	static const double hi[] = {190, 100, 20, 38.5, 180, 110};
	for (size_t f = 0; f < 6; f++)
		cr_assert_str_eq(d->fields[f], names[f]);
	for (size_t p = 0; p < d->nentities; p++) {
		for (size_t f = 0; f < 6; f++) {
			const double *s = vg_dataset_series_values(d, p, f);
			for (size_t j = 0; j < d->npoints; j++) {
				cr_assert(s[j] >= lo[f] && s[j] <= hi[f], "%s %g", names[f], s[j]);
				cr_assert(f == 3 ? is_one_decimal(s[j]) : is_whole(s[j]));
			}
		}
		const double *sys = vg_dataset_series_values(d, p, 4);
		const double *dia = vg_dataset_series_values(d, p, 5);
		for (size_t j = 0; j < d->npoints; j++)
			cr_assert(dia[j] <= sys[j] - 20);
		/* temp varies slowly: never more than 0.1 (one rounding step) per second */
		const double *temp = vg_dataset_series_values(d, p, 3);
		for (size_t j = 1; j < d->npoints; j++)
			cr_assert_leq(fabs(temp[j] - temp[j - 1]), 0.1000001);
	}
	vg_dataset_free(d);
}

Test(dataset, vitals_tachycardia_episodes_last_20_to_90_s)
{
	vg_dataset_t *d = generate("vitals", VG_DATASET_DEFAULT_SEED, 0);
	size_t episodes = 0, patients_with = 0;
	for (size_t p = 0; p < d->nentities; p++) {
		const double *hr = vg_dataset_series_values(d, p, 0);
		size_t run = 0, mine = 0;
		for (size_t j = 0; j <= d->npoints; j++) {
			if (j < d->npoints && hr[j] > 120) {
				run++;
				continue;
			}
			if (run) {
				cr_assert(run >= 20 && run <= 90, "patient %zu: run of %zu s", p,
				          run);
				mine++;
			}
			run = 0;
		}
		episodes += mine;
		patients_with += mine > 0;
		for (size_t j = 0; j < d->npoints; j++)
			cr_assert(hr[j] <= 115 || hr[j] >= 121, "no ambiguous 116..120");
	}
	cr_assert_geq(episodes, 1);
	/* 0..3 per patient: about 750 in all, most patients have some. */
	cr_assert(episodes > 500 && episodes < 1000, "%zu episodes", episodes);
	cr_assert_gt(patients_with, 300);
	vg_dataset_free(d);

	/* Guaranteed for any seed, not only the default one. */
	for (uint64_t seed = 0; seed < 5; seed++) {
		d = generate("vitals", seed, 0);
		const double *hr = vg_dataset_series_values(d, 0, 0);
		size_t above = 0;
		for (size_t j = 0; j < d->npoints; j++)
			above += hr[j] > 120;
		cr_assert_geq(above, 20, "seed %llu: patient 0 has an episode",
		              (unsigned long long)seed);
		vg_dataset_free(d);
	}
}

Test(dataset, scale_shape_and_distinct_series)
{
	vg_dataset_t *d = generate("scale", 1, 250);
	check_shape(d, "scale", 2, 250, 1, 10, INT64_C(10000000000));
	cr_assert_str_eq(d->name, "scale-250");
	cr_assert_str_eq(d->fields[0], "value");
	cr_assert_eq(vg_dataset_points_total(d), 2500);
	char key[64], prev[64] = "";
	for (size_t e = 0; e < d->nentities; e++) {
		/* host_<e/100>, m<e%100 two digits>: distinct and ascending within a host */
		snprintf(key, sizeof(key), "%s/%s", vg_dataset_tag_value(d, e, 0),
		         vg_dataset_tag_value(d, e, 1));
		if (e % 100)
			cr_assert(strcmp(prev, key) < 0, "%s after %s", key, prev);
		strcpy(prev, key);
		for (size_t j = 0; j < d->npoints; j++) {
			double v = vg_dataset_series_values(d, e, 0)[j];
			cr_assert(v >= 0 && v <= 100);
		}
	}
	cr_assert_str_eq(vg_dataset_tag_value(d, 249, 0), "host_2");
	cr_assert_str_eq(vg_dataset_tag_value(d, 249, 1), "m49");
	vg_dataset_free(d);

	d = generate("scale-7", 1, 0);
	cr_assert_eq(d->nentities, 7);
	cr_assert_str_eq(d->name, "scale-7");
	vg_dataset_free(d);
	d = generate("scale-7", 1, 7);
	cr_assert_eq(d->nentities, 7);
	vg_dataset_free(d);
}

Test(dataset, bad_names_and_sizes)
{
	vg_dataset_t *d = (vg_dataset_t *)0x1;
	cr_assert_eq(vg_dataset_generate("cpu", 1, 0, &d), VG_ENOTFOUND);
	cr_assert_eq(vg_dataset_generate("scales", 1, 0, &d), VG_ENOTFOUND);
	cr_assert_eq(vg_dataset_generate("scale-", 1, 0, &d), VG_EINVAL);
	cr_assert_eq(vg_dataset_generate("scale-1x", 1, 0, &d), VG_EINVAL);
	cr_assert_eq(vg_dataset_generate("scale--1", 1, 0, &d), VG_EINVAL);
	cr_assert_eq(vg_dataset_generate("scale-5", 1, 6, &d), VG_EINVAL);
	cr_assert_eq(vg_dataset_generate("scale-0", 1, 0, &d), VG_ELIMIT);
	cr_assert_eq(vg_dataset_generate("scale-99999999999999999999", 1, 0, &d), VG_ELIMIT);
	cr_assert_eq(vg_dataset_generate("scale", 1, VG_DATASET_SCALE_MAX + 1, &d), VG_ELIMIT);
	cr_assert_eq(vg_dataset_generate(NULL, 1, 0, &d), VG_EINVAL);
	cr_assert_eq(d, (vg_dataset_t *)0x1, "a failed call leaves *out untouched");
	vg_dataset_free(NULL);
}

static void assert_same(const vg_dataset_t *a, const vg_dataset_t *b)
{
	cr_assert_str_eq(a->name, b->name);
	cr_assert_eq(a->nentities, b->nentities);
	cr_assert_eq(a->npoints, b->npoints);
	cr_assert_eq(memcmp(a->times, b->times, a->npoints * sizeof(int64_t)), 0);
	cr_assert_eq(
	    memcmp(a->values, b->values, vg_dataset_series_count(a) * a->npoints * sizeof(double)),
	    0, "bit-identical values");
	for (size_t i = 0; i < a->nentities * a->ntag_keys; i++)
		cr_assert_str_eq(a->tag_values[i], b->tag_values[i]);
}

static bool values_differ(const vg_dataset_t *a, const vg_dataset_t *b)
{
	return memcmp(a->values, b->values,
	              vg_dataset_series_count(a) * a->npoints * sizeof(double)) != 0;
}

Test(dataset, same_seed_same_bits_other_seed_other_data)
{
	static const char *const names[] = {"cpu-full", "cpu-rounded", "vitals", "scale-1000"};
	for (size_t i = 0; i < 4; i++) {
		vg_dataset_t *a = generate(names[i], 12345, 0);
		vg_dataset_t *b = generate(names[i], 12345, 0);
		vg_dataset_t *c = generate(names[i], 12346, 0);
		assert_same(a, b);
		cr_assert(values_differ(a, c), "%s: seeds 12345 and 12346 differ", names[i]);
		vg_dataset_free(a);
		vg_dataset_free(b);
		vg_dataset_free(c);
	}
}

/* FNV-1a over the bits of every value and every tag byte. */
static uint64_t fingerprint(const vg_dataset_t *d)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t n = vg_dataset_series_count(d) * d->npoints;
	for (size_t i = 0; i < n; i++) {
		uint64_t bits;
		memcpy(&bits, &d->values[i], sizeof(bits));
		for (int k = 0; k < 8; k++) {
			h ^= (bits >> (8 * k)) & 0xff;
			h *= UINT64_C(0x100000001b3);
		}
	}
	for (size_t i = 0; i < d->nentities * d->ntag_keys; i++)
		for (const char *s = d->tag_values[i]; *s; s++) {
			h ^= (uint8_t)*s;
			h *= UINT64_C(0x100000001b3);
		}
	return h;
}

/*
 * The published datasets are pinned: these fingerprints were taken when the
 * generators were written.  If one changes on another machine, reproducibility
 * is broken; if a generator is changed on purpose, update them together with
 * bench/RESULTS.md.
 */
Test(dataset, default_seed_fingerprints_are_pinned)
{
	static const struct {
		const char *name;
		uint64_t fp;
	} pins[] = {
	    {"cpu-full", UINT64_C(0x7043c403d4442a7c)},
	    {"cpu-rounded", UINT64_C(0x725736973924e464)},
	    {"vitals", UINT64_C(0x3301081a6392f688)},
	    {"scale-1000", UINT64_C(0x063cb0b485c639f7)},
	};
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		vg_dataset_t *d = generate(pins[i].name, VG_DATASET_DEFAULT_SEED, 0);
		uint64_t fp = fingerprint(d);
		cr_expect_eq(fp, pins[i].fp, "%s: fingerprint 0x%016llx", pins[i].name,
		             (unsigned long long)fp);
		vg_dataset_free(d);
	}
}

Test(rng, matches_reference_xoshiro256starstar_and_is_well_spread)
{
	/* Reference outputs from an independent implementation (splitmix64 seeding). */
	vg_rng_t r;
	vg_rng_seed(&r, 42);
	cr_assert_eq(vg_rng_next(&r), UINT64_C(0x15780b2e0c2ec716));
	cr_assert_eq(vg_rng_next(&r), UINT64_C(0x6104d9866d113a7e));
	cr_assert_eq(vg_rng_next(&r), UINT64_C(0xae17533239e499a1));
	cr_assert_eq(vg_rng_next(&r), UINT64_C(0xecb8ad4703b360a1));

	vg_rng_seed(&r, 9);
	double sum = 0, sumsq = 0, maxabs = 0;
	enum { N = 200000 };
	for (int i = 0; i < N; i++) {
		double z = vg_rng_normal(&r);
		sum += z;
		sumsq += z * z;
		maxabs = fabs(z) > maxabs ? fabs(z) : maxabs;
	}
	double mean = sum / N, var = sumsq / N - mean * mean;
	cr_assert_lt(fabs(mean), 0.01, "mean %f", mean);
	cr_assert_lt(fabs(var - 1), 0.02, "variance %f", var);
	cr_assert(maxabs > 3.5 && maxabs < 7, "tails %f", maxabs);
	size_t counts[6] = {0};
	for (int i = 0; i < 60000; i++)
		counts[vg_rng_below(&r, 6)]++;
	for (int i = 0; i < 6; i++)
		cr_assert(counts[i] > 9500 && counts[i] < 10500);
	for (int i = 0; i < 1000; i++) {
		double u = vg_rng_uniform(&r);
		cr_assert(u >= 0 && u < 1);
	}
}

Test(format, shortest_round_trip)
{
	char buf[VG_DATASET_FLOAT_MAX];
	struct {
		double v;
		const char *s;
	} cases[] = {
	    {72, "72"},
	    {0, "0"},
	    {-0.0, "-0"},
	    {-3, "-3"},
	    {0.1, "0.1"},
	    {36.6, "36.6"},
	    {1e21, "1e+21"},
	    {9007199254740992.0, "9007199254740992"},
	    {1.0 / 3, "0.3333333333333333"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    /* not the true shortest ("5e-324"): %.15g is the shortest we try */
	    {5e-324, "4.94065645841247e-324"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = vg_dataset_format_double(cases[i].v, buf);
		cr_assert_str_eq(buf, cases[i].s);
		cr_assert_eq(n, strlen(cases[i].s));
	}
	/* Property: parses back to the same bits, and one digit fewer would not. */
	vg_rng_t r;
	vg_rng_seed(&r, 3);
	for (int i = 0; i < 20000; i++) {
		double v = vg_rng_uniform(&r) * 100;
		vg_dataset_format_double(v, buf);
		cr_assert_eq(strtod(buf, NULL), v, "%s", buf);
		size_t digits = 0; /* significant: from the first non-zero digit */
		for (const char *p = buf + strspn(buf, "0."); *p && *p != 'e'; p++)
			digits += *p >= '0' && *p <= '9';
		if (digits > 15) {
			char shorter[400];
			snprintf(shorter, sizeof(shorter), "%.*g", (int)digits - 1, v);
			cr_assert_neq(strtod(shorter, NULL), v, "%s could be %s", buf, shorter);
		}
	}
}

/*
 * A hand-written line-protocol parser for what the generator emits:
 * measurement,k=v,... f=v,... ts\n (no escapes: check_invariants rules them out).
 */
typedef struct parsed {
	char measurement[64];
	size_t ntags, nfields;
	char tag_keys[16][64], tag_values[16][64];
	char field_keys[16][64], field_text[16][64];
	double field_values[16];
	long long ts;
} parsed_t;

static const char *copy_until(const char *p, const char *stops, char *dst)
{
	size_t n = strcspn(p, stops);
	cr_assert_lt(n, 64);
	memcpy(dst, p, n);
	dst[n] = '\0';
	return p + n;
}

static const char *parse_line(const char *p, parsed_t *out)
{
	memset(out, 0, sizeof(*out));
	p = copy_until(p, ", ", out->measurement);
	while (*p == ',') {
		p = copy_until(p + 1, "=", out->tag_keys[out->ntags]);
		cr_assert_eq(*p, '=');
		p = copy_until(p + 1, ", ", out->tag_values[out->ntags]);
		out->ntags++;
	}
	cr_assert_eq(*p, ' ');
	do {
		p = copy_until(p + 1, "=", out->field_keys[out->nfields]);
		cr_assert_eq(*p, '=');
		p = copy_until(p + 1, ", ", out->field_text[out->nfields]);
		char *end;
		out->field_values[out->nfields] = strtod(out->field_text[out->nfields], &end);
		cr_assert_eq(*end, '\0', "a plain number: %s", out->field_text[out->nfields]);
		out->nfields++;
	} while (*p == ',');
	cr_assert_eq(*p, ' ');
	char *end;
	out->ts = strtoll(p + 1, &end, 10);
	cr_assert_eq(*end, '\n');
	return end + 1;
}

static void check_line(const vg_dataset_t *d, size_t e, size_t j, const parsed_t *l)
{
	cr_assert_str_eq(l->measurement, d->measurement);
	cr_assert_eq(l->ntags, d->ntag_keys);
	for (size_t k = 0; k < d->ntag_keys; k++) {
		cr_assert_str_eq(l->tag_keys[k], d->tag_keys[k]);
		cr_assert_str_eq(l->tag_values[k], vg_dataset_tag_value(d, e, k));
	}
	cr_assert_eq(l->nfields, d->nfields);
	for (size_t f = 0; f < d->nfields; f++) {
		cr_assert_str_eq(l->field_keys[f], d->fields[f]);
		double v = vg_dataset_series_values(d, e, f)[j];
		cr_assert_eq(memcmp(&l->field_values[f], &v, sizeof(v)), 0, "%s", l->field_text[f]);
	}
	cr_assert_eq(l->ts, d->times[j]);
}

static void check_lines_of(const char *name, const char *first_line)
{
	vg_dataset_t *d = generate(name, VG_DATASET_DEFAULT_SEED, 0);
	static const size_t where[][2] = {{0, 0}, {1, 0}, {0, 1}, {37, 123}, {99, 3599}};
	vg_buf_t b = VG_BUF_INIT;
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		size_t e = where[i][0], j = where[i][1];
		vg_buf_clear(&b);
		cr_assert_eq(vg_dataset_append_line(d, e, j, &b), 0);
		const char *text = vg_buf_cstr(&b);
		if (i == 0)
			cr_assert_eq(strncmp(text, first_line, strlen(first_line)), 0, "%s", text);
		parsed_t l;
		const char *end = parse_line(text, &l);
		cr_assert_eq(end, text + b.len, "exactly one line");
		check_line(d, e, j, &l);
		if (strcmp(name, "vitals") == 0)
			for (size_t f = 0; f < l.nfields; f++)
				cr_assert(strchr(l.field_text[f], '.') == NULL || f == 3,
				          "vitals integers print without a point: %s",
				          l.field_text[f]);
		if (strcmp(name, "cpu-full") != 0)
			for (size_t f = 0; f < l.nfields; f++)
				cr_assert(!strchr(l.field_text[f], 'i') &&
				          strlen(l.field_text[f]) <= 5);
	}
	cr_assert_eq(vg_dataset_append_line(d, d->nentities, 0, &b), VG_EINVAL);
	cr_assert_eq(vg_dataset_append_line(d, 0, d->npoints, &b), VG_EINVAL);
	vg_buf_release(&b);
	vg_dataset_free(d);
}

Test(lines, cpu_full_cpu_rounded_and_vitals_parse_back)
{
	check_lines_of("cpu-full", "cpu,arch=");
	check_lines_of("cpu-rounded", "cpu,arch=");
	check_lines_of("vitals", "vitals,bed=b01,patient=p000,ward=w01 heart_rate=");
}

Test(lines, write_lines_is_time_major_and_parses_back)
{
	vg_dataset_t *d = generate("scale", 5, 130);
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);
	cr_assert_not_null(f);
	uint64_t bytes = 0;
	cr_assert_eq(vg_dataset_write_lines(d, f, &bytes), 0);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(bytes, size);
	cr_assert_eq(strncmp(text, "scale,host=host_0,metric=m00 value=", 35), 0, "%.60s", text);
	const char *p = text;
	size_t lines = 0;
	while (p < text + size) {
		parsed_t l;
		p = parse_line(p, &l);
		size_t j = lines / d->nentities, e = lines % d->nentities;
		check_line(d, e, j, &l);
		lines++;
	}
	cr_assert_eq(p, text + size);
	cr_assert_eq(lines, vg_dataset_lines_total(d));
	free(text);
	vg_dataset_free(d);
}

Test(lines, non_finite_values_are_refused)
{
	vg_dataset_t *d = generate("scale-3", 1, 0);
	d->values[4] = NAN;
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_dataset_append_line(d, 0, 4, &b), VG_EINVAL);
	FILE *f = fopen("/dev/null", "w");
	cr_assert_eq(vg_dataset_write_lines(d, f, NULL), VG_EINVAL);
	fclose(f);
	vg_buf_release(&b);
	vg_dataset_free(d);
}

Test(lines, write_error_is_reported)
{
	vg_dataset_t *d = generate("scale-3000", 1, 0);
	FILE *f = fopen("/dev/full", "w");
	cr_assert_not_null(f);
	setvbuf(f, NULL, _IONBF, 0);
	uint64_t bytes = 1;
	int rc = vg_dataset_write_lines(d, f, &bytes);
	cr_assert_lt(rc, 0);
	cr_assert_neq(rc, VG_EINVAL);
	cr_assert_eq(bytes, 0);
	fclose(f);
	vg_dataset_free(d);
}

Test(alloc, every_failed_allocation_returns_enomem_and_leaks_nothing)
{
	static const char *const names[] = {"scale-700", "vitals"};
	for (size_t i = 0; i < 2; i++) {
		int rc;
		long n = 0;
		do {
			vg_dataset_t *d = (vg_dataset_t *)0x1;
			vg_alloc_fail_after(n);
			rc = vg_dataset_generate(names[i], 1, 0, &d);
			vg_alloc_fail_after(-1);
			if (rc == 0) {
				check_invariants(d);
				vg_dataset_free(d);
			} else {
				cr_assert_eq(rc, VG_ENOMEM, "%s, fail after %ld", names[i], n);
				cr_assert_eq(d, (vg_dataset_t *)0x1);
			}
			n++;
		} while (rc != 0);
		cr_assert_gt(n, 4, "%s: several allocation points exercised", names[i]);
	}
}
