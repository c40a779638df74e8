/*
 * storage.c — `vigil-bench storage`: the storage engine's figures of
 * BENCH.md, per dataset, without a server in the way.
 *
 *   codec      encode and decode points/s of whole chunks (one core), and
 *              the encoded bytes per point;
 *   ingest     engine points/s writing batches of 1,000 series x 10 points,
 *              each batch one write transaction that also resolves the
 *              series keys (as the server does), committed with the chosen
 *              sync mode;
 *   size       bytes per point of the data directory after sealing: the
 *              pages in use (what the data needs) and the file (which also
 *              holds LMDB's free pages, reused by later writes);
 *   scan       sum over every point through the aggregate fast path (chunk
 *              headers), and through a full decode for comparison.
 *
 * The data directory is a fresh temporary one unless --dir is given.
 */
#include "bench.h"

#include "dataset.h"
#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_store.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BATCH_SERIES 1000
#define BATCH_POINTS 10

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vigil-bench storage [--dataset NAME|all] [--seed N] [--scale N]\n"
		"                           [--sync full|none] [--dir DIR]\n\n"
		"  --dataset NAME  one of: %s, or all (default: cpu-full, cpu-rounded, vitals)\n"
		"  --sync MODE     fsync every ingest commit (full, default) or not (none)\n"
		"  --dir DIR       data directory (default: a new temporary one, removed after)\n",
		vg_dataset_names());
}

typedef struct {
	double encode_pps, decode_pps, codec_bpp;
	double ingest_pps, seal_s;
	double used_bpp, file_bpp, compact_bpp;
	double scan_pps, decode_scan_pps;
	uint64_t points;
} figures_t;

static int bench_codec(const vg_dataset_t *d, figures_t *f)
{
	vg_codec_t *codec;
	int rc = vg_codec_new(&codec);
	if (rc)
		return rc;
	size_t nseries = vg_dataset_series_count(d);
	vg_buf_t *chunks = vg_calloc(nseries * ((d->npoints + VG_CHUNK_MAX_POINTS - 1) /
						VG_CHUNK_MAX_POINTS),
				     sizeof *chunks);
	if (!chunks) {
		vg_codec_free(codec);
		return VG_ENOMEM;
	}
	size_t nchunks = 0, bytes = 0;
	double t0 = now_s();
	for (size_t e = 0; e < d->nentities && !rc; e++)
		for (size_t fi = 0; fi < d->nfields && !rc; fi++) {
			const double *v = vg_dataset_series_values(d, e, fi);
			for (size_t j = 0; j < d->npoints && !rc; j += VG_CHUNK_MAX_POINTS) {
				size_t n = d->npoints - j < VG_CHUNK_MAX_POINTS ? d->npoints - j
										: VG_CHUNK_MAX_POINTS;
				rc = vg_chunk_encode(codec, d->times + j, v + j, n, &chunks[nchunks]);
				bytes += chunks[nchunks++].len;
			}
		}
	double t1 = now_s();
	int64_t *times = vg_malloc(VG_CHUNK_MAX_POINTS * sizeof *times);
	double *values = vg_malloc(VG_CHUNK_MAX_POINTS * sizeof *values);
	uint64_t decoded = 0;
	double checksum = 0;
	double t2 = now_s();
	for (size_t c = 0; c < nchunks && !rc && times && values; c++) {
		size_t n;
		rc = vg_chunk_decode(codec, chunks[c].data, chunks[c].len, times, values,
				     VG_CHUNK_MAX_POINTS, &n);
		decoded += n;
		checksum += values[n / 2];
	}
	double t3 = now_s();
	if (!times || !values)
		rc = VG_ENOMEM;
	uint64_t points = vg_dataset_points_total(d);
	f->encode_pps = points / (t1 - t0);
	f->decode_pps = decoded / (t3 - t2);
	f->codec_bpp = (double)bytes / points;
	if (checksum == 0.12345)
		fprintf(stderr, "\n");
	for (size_t c = 0; c < nchunks; c++)
		vg_buf_release(&chunks[c]);
	vg_free(chunks);
	vg_free(times);
	vg_free(values);
	vg_codec_free(codec);
	return rc;
}

/* One batch: up to 1,000 series x 10 points, keys resolved in the batch. */
static int write_batch(vg_store_t *store, const vg_dataset_t *d, size_t first_series, size_t j)
{
	vg_wtxn_t *txn;
	int rc = vg_store_write_begin(store, &txn);
	if (rc)
		return rc;
	size_t nseries = vg_dataset_series_count(d);
	size_t n = d->npoints - j < BATCH_POINTS ? d->npoints - j : BATCH_POINTS;
	vg_tag_t tags[VG_STORE_MAX_TAGS];
	for (size_t s = first_series; s < nseries && s < first_series + BATCH_SERIES && !rc; s++) {
		size_t e = s / d->nfields, fi = s % d->nfields;
		for (size_t k = 0; k < d->ntag_keys; k++) {
			const char *v = vg_dataset_tag_value(d, e, k);
			tags[k].key = (vg_str_t){d->tag_keys[k], strlen(d->tag_keys[k])};
			tags[k].value = (vg_str_t){v, strlen(v)};
		}
		vg_series_key_t key = {{d->measurement, strlen(d->measurement)},
				       tags,
				       d->ntag_keys,
				       {d->fields[fi], strlen(d->fields[fi])}};
		vg_series_id_t id;
		rc = vg_wtxn_series(txn, &key, &id, NULL);
		rc = rc ? rc : vg_wtxn_put(txn, id, d->times + j, vg_dataset_series_values(d, e, fi) + j, n);
	}
	if (rc) {
		vg_wtxn_abort(txn);
		return rc;
	}
	return vg_wtxn_commit(txn);
}

static int bench_engine(const vg_dataset_t *d, const char *dir, bool sync, figures_t *f)
{
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = sync;
	vg_store_t *store;
	char err[512];
	int rc = vg_store_open(dir, &opts, &store, err, sizeof err);
	if (rc) {
		fprintf(stderr, "vigil-bench: %s\n", err);
		return rc;
	}
	size_t nseries = vg_dataset_series_count(d);
	double t0 = now_s();
	for (size_t j = 0; j < d->npoints && !rc; j += BATCH_POINTS)
		for (size_t s = 0; s < nseries && !rc; s += BATCH_SERIES)
			rc = write_batch(store, d, s, j);
	double t1 = now_s();
	rc = rc ? rc : vg_store_seal(store, 1);
	double t2 = now_s();
	vg_store_stats_t st;
	rc = rc ? rc : vg_store_stats(store, &st);
	uint64_t points = vg_dataset_points_total(d);
	f->points = points;
	f->ingest_pps = points / (t1 - t0);
	f->seal_s = t2 - t1;
	f->used_bpp = (double)st.used_bytes / points;
	f->file_bpp = (double)st.file_bytes / points;
	/* What the data needs once LMDB's free pages are squeezed out. */
	char copy[4200];
	snprintf(copy, sizeof copy, "%s-compact", dir);
	if (rc == 0 && mkdir(copy, 0755) == 0 && vg_store_backup(store, copy) == 0) {
		char file[4300];
		snprintf(file, sizeof file, "%s/data.mdb", copy);
		struct stat fst;
		if (stat(file, &fst) == 0)
			f->compact_bpp = (double)fst.st_size / points;
		unlink(file);
		rmdir(copy);
	}
	if (rc == 0 && st.chunk_points != points) {
		fprintf(stderr, "vigil-bench: stored %llu points, expected %llu\n",
			(unsigned long long)st.chunk_points, (unsigned long long)points);
		rc = VG_ECORRUPT;
	}

	/* Scans: the fast path over chunk headers, then a full decode. */
	vg_rtxn_t *txn = NULL;
	vg_idset_t ids = VG_IDSET_INIT;
	rc = rc ? rc : vg_store_read_begin(store, &txn);
	rc = rc ? rc : vg_rtxn_measurement_series(txn, (vg_str_t){d->measurement, strlen(d->measurement)}, &ids);
	vg_agg_t agg;
	vg_agg_init(&agg);
	double t3 = now_s();
	for (size_t i = 0; i < ids.len && !rc; i++)
		rc = vg_rtxn_aggregate(txn, ids.ids[i], INT64_MIN, INT64_MAX, &agg);
	double t4 = now_s();
	double sum = 0;
	uint64_t seen = 0;
	for (size_t i = 0; i < ids.len && !rc; i++) {
		vg_cursor_t *c;
		rc = vg_cursor_open(txn, ids.ids[i], INT64_MIN, INT64_MAX, 0, &c);
		while (!rc) {
			const int64_t *times;
			const double *values;
			size_t n;
			rc = vg_cursor_next(c, &times, &values, &n);
			if (rc || n == 0)
				break;
			for (size_t k = 0; k < n; k++)
				sum += values[k];
			seen += n;
		}
		if (c)
			vg_cursor_close(c);
	}
	double t5 = now_s();
	if (rc == 0 && (agg.points != points || seen != points)) {
		fprintf(stderr, "vigil-bench: scans saw %llu and %llu points, expected %llu\n",
			(unsigned long long)agg.points, (unsigned long long)seen,
			(unsigned long long)points);
		rc = VG_ECORRUPT;
	}
	if (rc == 0 && sum != sum)
		fprintf(stderr, "(sum is NaN)\n");
	f->scan_pps = points / (t4 - t3);
	f->decode_scan_pps = points / (t5 - t4);
	vg_idset_release(&ids);
	vg_rtxn_end(txn);
	vg_store_close(store);
	return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int run_one(const char *name, uint64_t seed, uint64_t scale, bool sync, const char *dir_opt)
{
	vg_dataset_t *d;
	double g0 = now_s();
	int rc = vg_dataset_generate(name, seed, scale, &d);
	if (rc) {
		fprintf(stderr, "vigil-bench: dataset %s: %s\n", name, vg_strerror(rc));
		return BENCH_EXIT_ERROR;
	}
	fprintf(stderr, "%s: %llu points generated in %.2f s\n", d->name,
		(unsigned long long)vg_dataset_points_total(d), now_s() - g0);
	char dir[4096];
	if (dir_opt) {
		snprintf(dir, sizeof dir, "%s/%s", dir_opt, d->name);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/vigil-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(dir)) {
			fprintf(stderr, "vigil-bench: mkdtemp: %s\n", strerror(errno));
			vg_dataset_free(d);
			return BENCH_EXIT_ERROR;
		}
	}
	figures_t f = {0};
	rc = bench_codec(d, &f);
	rc = rc ? rc : bench_engine(d, dir, sync, &f);
	if (rc == 0) {
		printf("%-12s %6.2f %6.2f %6.3f   %6.2f %6.2f   %6.3f %6.3f %6.3f   %7.1f %7.1f\n",
		       d->name, f.encode_pps / 1e6, f.decode_pps / 1e6, f.codec_bpp,
		       f.ingest_pps / 1e6, f.seal_s, f.used_bpp, f.file_bpp, f.compact_bpp,
		       f.scan_pps / 1e6,
		       f.decode_scan_pps / 1e6);
		fflush(stdout);
	} else {
		fprintf(stderr, "vigil-bench: %s: %s\n", d->name, vg_strerror(rc));
	}
	if (!dir_opt)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	vg_dataset_free(d);
	return rc ? BENCH_EXIT_ERROR : BENCH_EXIT_OK;
}

int bench_storage_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dataset", required_argument, NULL, 'd'}, {"seed", required_argument, NULL, 's'},
		{"scale", required_argument, NULL, 'n'},   {"sync", required_argument, NULL, 'y'},
		{"dir", required_argument, NULL, 'D'},     {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dataset = NULL, *dir = NULL;
	uint64_t seed = VG_DATASET_DEFAULT_SEED, scale = 100000;
	bool sync = true;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dataset = optarg;
			break;
		case 's':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			scale = strtoull(optarg, NULL, 10);
			break;
		case 'y':
			if (strcmp(optarg, "full") && strcmp(optarg, "none")) {
				usage(stderr);
				return BENCH_EXIT_USAGE;
			}
			sync = strcmp(optarg, "full") == 0;
			break;
		case 'D':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			usage(stderr);
			return BENCH_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return BENCH_EXIT_USAGE;
	}
	printf("# vigil-bench storage, sync=%s; M = million points/s, B = bytes/point\n",
	       sync ? "full" : "none");
	printf("%-12s %6s %6s %6s   %6s %6s   %6s %6s %6s   %7s %7s\n", "dataset", "enc M",
	       "dec M", "codecB", "ingM", "seal s", "usedB", "fileB", "compB", "scan M", "dscan M");
	static const char *defaults[] = {"cpu-full", "cpu-rounded", "vitals"};
	int status = BENCH_EXIT_OK;
	if (dataset && strcmp(dataset, "all") != 0)
		return run_one(dataset, seed, scale, sync, dir);
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (run_one(defaults[i], seed, scale, sync, dir) != BENCH_EXIT_OK)
			status = BENCH_EXIT_ERROR;
	if (dataset)
		status = run_one("scale", seed, scale, sync, dir) ? BENCH_EXIT_ERROR : status;
	return status;
}
