/*
 * peers.c — `vigil-bench http-write` and `vigil-bench http-query`: the
 * load generators that time InfluxDB and VictoriaMetrics for bench/peers,
 * in C like the ones that time Vigil, so that no system pays for a slower
 * client (curl in a loop would cost a process per request).
 *
 *   http-write   reads a line-protocol file whole into memory and cuts it
 *                into batches of --batch lines (before the clock starts);
 *                --connections threads each keep one HTTP/1.1 connection
 *                alive and POST the next batch in file order (a shared
 *                counter hands them out, so the data arrives roughly in
 *                time order, as from `vigil write`).  Every response status
 *                is checked (2xx).  Figure: points (field values) over the
 *                wall time from the first byte sent to the last response.
 *   http-query   the BENCH.md queries of queries.h, drawn from the same
 *                seed and in the same order as `vigil-bench query`, sent as
 *                InfluxQL (GET /query?db=..&epoch=ns&q=..) or MetricsQL
 *                (GET /api/v1/query[_range]?..) over one kept-alive
 *                connection; p50/p99 of the round trip after --warmup runs.
 *                Every answer must be 200 and carry no error.  --show
 *                prints the first measured run's request and answer of
 *                each query to stderr, to compare the answers with Vigil's.
 */
#include "bench.h"

#include "http.h"
#include "queries.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_TIMEOUT_MS 120000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads a whole file into a new buffer (caller frees with vg_free). */
static int read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || st.st_size < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	size_t size = (size_t)st.st_size;
	char *data = vg_malloc(size + 1);
	if (!data) {
		close(fd);
		return VG_ENOMEM;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? -errno : -EIO;
			vg_free(data);
			close(fd);
			return e;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = data;
	*len = size;
	return 0;
}

/* Field values on one line of line protocol: the commas of the field set
 * (between the first and the last unescaped, unquoted space) plus one.
 * 0 for a blank or comment line. */
static uint64_t line_points(const char *p, size_t n)
{
	if (n == 0 || p[0] == '#')
		return 0;
	size_t sp1 = n, sp2 = n;
	bool quoted = false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\') {
			i++;
			continue;
		}
		if (p[i] == '"' && sp1 < n)
			quoted = !quoted;
		if (p[i] == ' ' && !quoted) {
			if (sp1 == n)
				sp1 = i;
			else
				sp2 = i;
		}
	}
	if (sp1 == n)
		return 0;
	uint64_t points = 1;
	quoted = false;
	for (size_t i = sp1 + 1; i < sp2; i++) {
		if (p[i] == '\\') {
			i++;
			continue;
		}
		if (p[i] == '"')
			quoted = !quoted;
		else if (p[i] == ',' && !quoted)
			points++;
	}
	return points;
}

typedef struct {
	size_t off, len;
	uint64_t points;
} write_batch_t;

typedef struct {
	const char *host, *port, *path;
	const char *data;
	const write_batch_t *batches;
	size_t nbatches;
	atomic_size_t *next;
	atomic_bool *stop;
	uint64_t points;
	int rc;
	char err[512];
} write_conn_t;

static void *write_thread(void *p)
{
	write_conn_t *w = p;
	vg_http_conn_t c;
	vg_http_init(&c, w->host, w->port, HTTP_TIMEOUT_MS);
	vg_buf_t resp = VG_BUF_INIT;
	while (!atomic_load(w->stop)) {
		size_t i = atomic_fetch_add(w->next, 1);
		if (i >= w->nbatches)
			break;
		const write_batch_t *b = &w->batches[i];
		int status;
		w->rc = vg_http_request(&c, "POST", w->path, "text/plain; charset=utf-8",
		                        w->data + b->off, b->len, &status, &resp);
		if (w->rc) {
			snprintf(w->err, sizeof w->err, "%s", c.errstr);
		} else if (status < 200 || status > 299) {
			w->rc = VG_EPROTO;
			snprintf(w->err, sizeof w->err, "batch %zu: HTTP %d: %.300s", i, status,
			         vg_buf_cstr(&resp));
		}
		if (w->rc) {
			atomic_store(w->stop, true);
			break;
		}
		w->points += b->points;
	}
	vg_buf_release(&resp);
	vg_http_release(&c);
	return NULL;
}

static int http_write_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"file", required_argument, NULL, 'f'},
	    {"connections", required_argument, NULL, 'c'},
	    {"batch", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL, *file = NULL;
	int conns = 4;
	long batch = 5000;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'b':
			batch = atol(optarg);
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
			        "usage: vigil-bench http-write --url http://HOST:PORT/PATH?QUERY "
			        "--file F.lp [--connections N] [--batch LINES]\n");
			return opt == 'h' ? BENCH_EXIT_OK : BENCH_EXIT_USAGE;
		}
	}
	if (!url || !file || conns < 1 || conns > 64 || batch < 1) {
		fprintf(stderr,
		        "vigil-bench http-write: need --url and --file; --connections 1..64, "
		        "--batch >= 1\n");
		return BENCH_EXIT_USAGE;
	}
	char host[256], port[16], path[1024];
	if (vg_http_url_parse(url, host, sizeof host, port, sizeof port, path, sizeof path)) {
		fprintf(stderr, "vigil-bench http-write: bad --url '%s'\n", url);
		return BENCH_EXIT_USAGE;
	}
	char *data = NULL;
	size_t size = 0;
	int rc = read_file(file, &data, &size);
	if (rc) {
		fprintf(stderr, "vigil-bench http-write: %s: %s\n", file, vg_strerror(rc));
		return BENCH_EXIT_ERROR;
	}
	/* Cut into batches of `batch` lines. */
	size_t cap = 1024, nbatches = 0;
	write_batch_t *batches = vg_calloc(cap, sizeof *batches);
	uint64_t lines = 0, points = 0;
	size_t at = 0;
	while (batches && at < size) {
		write_batch_t b = {at, 0, 0};
		for (long l = 0; l < batch && at < size; l++) {
			const char *nl = memchr(data + at, '\n', size - at);
			size_t end = nl ? (size_t)(nl - data) : size;
			b.points += line_points(data + at, end - at);
			lines++;
			at = nl ? end + 1 : size;
		}
		b.len = at - b.off;
		points += b.points;
		if (nbatches == cap) {
			write_batch_t *nb = vg_reallocarray(batches, cap * 2, sizeof *batches);
			if (!nb) {
				vg_free(batches);
				batches = NULL;
				break;
			}
			batches = nb;
			cap *= 2;
		}
		batches[nbatches++] = b;
	}
	write_conn_t *w = vg_calloc((size_t)conns, sizeof *w);
	pthread_t *threads = vg_calloc((size_t)conns, sizeof *threads);
	if (!batches || !w || !threads) {
		fprintf(stderr, "vigil-bench http-write: out of memory\n");
		vg_free(batches);
		vg_free(w);
		vg_free(threads);
		vg_free(data);
		return BENCH_EXIT_ERROR;
	}
	atomic_size_t next = 0;
	atomic_bool stop = false;
	for (int i = 0; i < conns; i++)
		w[i] = (write_conn_t){host,  port,  path, data, batches, nbatches,
		                      &next, &stop, 0,    0,    ""};
	double t0 = now_s();
	int started = 0;
	for (; started < conns; started++)
		if (pthread_create(&threads[started], NULL, write_thread, &w[started]))
			break;
	uint64_t written = 0;
	int status = started == conns ? BENCH_EXIT_OK : BENCH_EXIT_ERROR;
	for (int i = 0; i < started; i++) {
		pthread_join(threads[i], NULL);
		written += w[i].points;
		if (w[i].rc) {
			fprintf(stderr, "vigil-bench http-write: connection %d: %s\n", i, w[i].err);
			status = BENCH_EXIT_ERROR;
		}
	}
	double elapsed = now_s() - t0;
	if (status == BENCH_EXIT_OK)
		printf("http-write %s: %" PRIu64 " points (%" PRIu64 " lines) in %.3f s = %.3f M "
		       "points/s (%d connections, batches of %ld lines)\n",
		       file, written, lines, elapsed, (double)written / elapsed / 1e6, conns,
		       batch);
	else
		fprintf(stderr,
		        "vigil-bench http-write: %" PRIu64 " of %" PRIu64 " points written\n",
		        written, points);
	vg_free(batches);
	vg_free(w);
	vg_free(threads);
	vg_free(data);
	return status;
}

/* ---- http-query ------------------------------------------------------ */

typedef enum { PEER_INFLUXDB, PEER_VICTORIAMETRICS } peer_t;

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The request path of one run for `peer`. */
static int build_request(peer_t peer, const char *db, const bench_query_t *q,
                         const bench_query_args_t *qa, char *stmt, size_t stmt_len, char *path,
                         size_t path_len)
{
	int rc = bench_query_influxql(q, qa, stmt, stmt_len);
	if (rc < 0)
		return rc;
	if (peer == PEER_VICTORIAMETRICS)
		return bench_query_metricsql(q, qa, path, path_len) < 0 ? VG_EOVERFLOW : 0;
	int n = snprintf(path, path_len, "/query?db=");
	if (n < 0 || (size_t)n >= path_len)
		return VG_EOVERFLOW;
	size_t at = (size_t)n;
	if (bench_url_encode(db, path, path_len, &at))
		return VG_EOVERFLOW;
	n = snprintf(path + at, path_len - at, "&epoch=ns&q=");
	if (n < 0 || (size_t)n >= path_len - at)
		return VG_EOVERFLOW;
	at += (size_t)n;
	return bench_url_encode(stmt, path, path_len, &at);
}

/* Whether a 200 answer still reports an error: InfluxDB puts statement
 * errors in the JSON body, VictoriaMetrics says "status":"error". */
static bool answer_failed(peer_t peer, const char *body)
{
	if (peer == PEER_INFLUXDB)
		return strstr(body, "\"error\":") != NULL;
	return strstr(body, "\"status\":\"success\"") == NULL;
}

static int http_query_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"peer", required_argument, NULL, 'p'},
	    {"db", required_argument, NULL, 'd'},
	    {"runs", required_argument, NULL, 'r'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"only", required_argument, NULL, 'o'},
	    {"show", no_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL, *peer_name = NULL, *db = "bench", *only = NULL;
	int runs = 1000, warmup = 50;
	bool show = false;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'p':
			peer_name = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 'o':
			only = optarg;
			break;
		case 's':
			show = true;
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
			        "usage: vigil-bench http-query --url http://HOST:PORT --peer "
			        "influxdb|victoriametrics [--db NAME] [--runs N] [--warmup N] "
			        "[--only QUERY] [--show]\n");
			return opt == 'h' ? BENCH_EXIT_OK : BENCH_EXIT_USAGE;
		}
	}
	peer_t peer;
	if (peer_name && strcmp(peer_name, "influxdb") == 0) {
		peer = PEER_INFLUXDB;
	} else if (peer_name && strcmp(peer_name, "victoriametrics") == 0) {
		peer = PEER_VICTORIAMETRICS;
	} else {
		fprintf(stderr, "vigil-bench http-query: --peer influxdb|victoriametrics\n");
		return BENCH_EXIT_USAGE;
	}
	char host[256], port[16], base[1024];
	if (!url ||
	    vg_http_url_parse(url, host, sizeof host, port, sizeof port, base, sizeof base)) {
		fprintf(stderr, "vigil-bench http-query: bad or missing --url\n");
		return BENCH_EXIT_USAGE;
	}
	if (runs < 1 || warmup < 0) {
		fprintf(stderr, "vigil-bench http-query: --runs must be positive\n");
		return BENCH_EXIT_USAGE;
	}
	double *lat = vg_calloc((size_t)runs, sizeof *lat);
	if (!lat) {
		fprintf(stderr, "vigil-bench http-query: out of memory\n");
		return BENCH_EXIT_ERROR;
	}
	vg_http_conn_t c;
	vg_http_init(&c, host, port, HTTP_TIMEOUT_MS);
	vg_buf_t resp = VG_BUF_INIT;
	vg_rng_t rng;
	vg_rng_seed(&rng, 42); /* as `vigil-bench query` */
	printf("%-24s %10s %10s %12s\n", "query", "p50 ms", "p99 ms", "answer bytes");
	int status = BENCH_EXIT_OK;
	for (size_t q = 0; q < BENCH_Q_COUNT && status == BENCH_EXIT_OK; q++) {
		const bench_query_t *bq = &bench_queries[q];
		if (only && strcmp(only, bq->name))
			continue;
		char stmt[1024], path[4096];
		for (int i = -warmup; i < runs; i++) {
			bench_query_args_t qa;
			bench_query_draw(bq, &rng, &qa);
			if (build_request(peer, db, bq, &qa, stmt, sizeof stmt, path,
			                  sizeof path)) {
				fprintf(stderr, "vigil-bench http-query: %s: request too long\n",
				        bq->name);
				status = BENCH_EXIT_ERROR;
				break;
			}
			int code = 0;
			double t0 = now_s();
			int rc = vg_http_request(&c, "GET", path, NULL, NULL, 0, &code, &resp);
			double dt = now_s() - t0;
			const char *body = vg_buf_cstr(&resp);
			if (rc || code != 200 || answer_failed(peer, body)) {
				fprintf(stderr, "vigil-bench http-query: %s: %s: HTTP %d: %.500s\n",
				        bq->name, rc ? c.errstr : "refused", code, body);
				status = BENCH_EXIT_ERROR;
				break;
			}
			if (i == 0 && show)
				fprintf(stderr, "== %s\n-- InfluxQL: %s\n-- GET %s\n%s\n", bq->name,
				        stmt, path, body);
			if (i >= 0)
				lat[i] = dt;
		}
		if (status)
			break;
		qsort(lat, (size_t)runs, sizeof *lat, compare_double);
		printf("%-24s %10.3f %10.3f %12zu\n", bq->name, lat[runs / 2] * 1e3,
		       lat[(size_t)(runs * 0.99)] * 1e3, resp.len);
		fflush(stdout);
	}
	vg_buf_release(&resp);
	vg_http_release(&c);
	vg_free(lat);
	return status;
}

int bench_http_write_main(int argc, char **argv)
{
	return http_write_main(argc, argv);
}
int bench_http_query_main(int argc, char **argv)
{
	return http_query_main(argc, argv);
}
