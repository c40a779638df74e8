/*
 * gen.c — `vigil-bench gen`: write a dataset as InfluxDB line protocol.
 *
 * The files it writes are what `vigil write` and the peers (InfluxDB,
 * VictoriaMetrics) load, so every system sees the same bytes.  The whole
 * dataset is generated in memory first (dataset.h), then streamed out in
 * time-major order; the counts and timings go to stderr so that stdout can
 * be piped.
 */
#include "bench.h"

#include "dataset.h"
#include "vg_error.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void gen_usage(FILE *out)
{
	fprintf(out,
	        "usage: vigil-bench gen --dataset NAME [--seed N] [--scale N] [--out FILE|-]\n\n"
	        "  --dataset NAME  one of: %s\n"
	        "  --seed N        PRNG seed (default %llu)\n"
	        "  --scale N       series of the scale dataset (default %llu, at most %llu)\n"
	        "  --out FILE      write there instead of stdout ('-' is stdout)\n",
	        vg_dataset_names(), (unsigned long long)VG_DATASET_DEFAULT_SEED,
	        (unsigned long long)VG_DATASET_SCALE_DEFAULT,
	        (unsigned long long)VG_DATASET_SCALE_MAX);
}

/* A whole decimal number in [0, UINT64_MAX]; no sign, no trailing junk. */
static int parse_u64(const char *s, uint64_t *out)
{
	if (!*s || *s < '0' || *s > '9')
		return VG_EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return VG_EINVAL;
	*out = v;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_gen_main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"dataset", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
	    {"scale", required_argument, NULL, 'n'},   {"out", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const char *dataset = NULL, *path = "-";
	uint64_t seed = VG_DATASET_DEFAULT_SEED, scale = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:s:n:o:h", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			dataset = optarg;
			break;
		case 's':
		case 'n':
			if (parse_u64(optarg, c == 's' ? &seed : &scale)) {
				fprintf(stderr, "vigil-bench gen: --%s: not a whole number: '%s'\n",
				        c == 's' ? "seed" : "scale", optarg);
				return BENCH_EXIT_USAGE;
			}
			break;
		case 'o':
			path = optarg;
			break;
		case 'h':
			gen_usage(stdout);
			return BENCH_EXIT_OK;
		default:
			gen_usage(stderr);
			return BENCH_EXIT_USAGE;
		}
	}
	if (!dataset || optind != argc) {
		fprintf(stderr, "vigil-bench gen: %s\n",
		        dataset ? "unexpected argument" : "--dataset is required");
		gen_usage(stderr);
		return BENCH_EXIT_USAGE;
	}

	double t0 = now_s();
	vg_dataset_t *d;
	int rc = vg_dataset_generate(dataset, seed, scale, &d);
	if (rc) {
		fprintf(stderr, "vigil-bench gen: dataset '%s': %s\n", dataset, vg_strerror(rc));
		if (rc == VG_ENOTFOUND || rc == VG_EINVAL || rc == VG_ELIMIT)
			fprintf(stderr, "  datasets: %s; --scale 1..%llu\n", vg_dataset_names(),
			        (unsigned long long)VG_DATASET_SCALE_MAX);
		return rc == VG_ENOMEM ? BENCH_EXIT_ERROR : BENCH_EXIT_USAGE;
	}
	double t1 = now_s();

	bool to_stdout = strcmp(path, "-") == 0;
	FILE *out = to_stdout ? stdout : fopen(path, "w");
	if (!out) {
		fprintf(stderr, "vigil-bench gen: %s: %s\n", path, strerror(errno));
		vg_dataset_free(d);
		return BENCH_EXIT_ERROR;
	}
	uint64_t bytes = 0;
	rc = vg_dataset_write_lines(d, out, &bytes);
	if (!rc && fflush(out) != 0)
		rc = -errno;
	if (!to_stdout && fclose(out) != 0 && !rc)
		rc = -errno;
	double t2 = now_s();
	if (rc) {
		fprintf(stderr, "vigil-bench gen: writing %s: %s\n", to_stdout ? "stdout" : path,
		        vg_strerror(rc));
		vg_dataset_free(d);
		return BENCH_EXIT_ERROR;
	}
	fprintf(stderr,
	        "vigil-bench gen: %s (seed %llu): wrote %llu points in %llu lines (%zu series), "
	        "%llu bytes; generate %.3f s, write %.3f s\n",
	        d->name, (unsigned long long)seed, (unsigned long long)vg_dataset_points_total(d),
	        (unsigned long long)vg_dataset_lines_total(d), vg_dataset_series_count(d),
	        (unsigned long long)bytes, t1 - t0, t2 - t1);
	vg_dataset_free(d);
	return BENCH_EXIT_OK;
}
