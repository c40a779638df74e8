/*
 * scale.c — `vigil-bench scale`: what one series costs, from 1 k to 1 M.
 *
 * For each N of --series (default 1000,10000,100000,1000000) the command
 * starts a vigild of its own on a fresh data directory (so that it can read
 * the server's /proc/<pid>/status and smaps_rollup), then, over the binary
 * protocol with --connections clients:
 *
 *   creation  the first point of every series of scale-N: every write
 *             creates its series, so series/s is the index's speed;
 *   ingest    points 1..9 of every series (scale-N complete), time-major,
 *             one point per series per batch — the per-series cost of a
 *             write to a known series.  Small N add rounds 10, 11, ... until
 *             --min-points points are written, so every N is timed over
 *             about the same amount of work;
 *   memory    VmRSS after scale-N is written, minus VmRSS before the first
 *             write, over N (BENCH.md's bytes per active series), with the
 *             anonymous (heap) and file-backed (LMDB map) shares from
 *             smaps_rollup; VmHWM at the end;
 *   queries   once the server's idle seal is over (no CPU used for 1 s),
 *             so every N queries the same 10 sealed points per series:
 *             p50/p99 round trip of a single-series raw query and of a
 *             mean() over the 100 series of one host, a random series or
 *             host each run, --runs runs after --warmup.  The extra ingest
 *             rounds of small N come after the queries.
 *
 * Batches are built before each timed phase; a phase's time runs from the
 * first byte sent to the last acknowledgement.  Rounds are built and sent in
 * groups of about --min-points points so the bench's own memory stays
 * bounded at 1 M series; the time between groups is not counted.
 *
 * --create-only stops after the creation phase (the memory figures are then
 * those of N series of one point), to profile series creation alone.
 *
 * --startup times BENCH.md's start-up: a store of 100 M points in 1 M series
 * (100 points each, sealed) is built once through the storage library into
 * --store (default bench/data/startup-1M; reused when its "complete" marker
 * exists; see scale_store.c), then vigild is exec'd over it --startup-runs times and the time
 * from fork() to the first connection whose Hello succeeded is taken; the
 * median is reported.  The page cache is warm (the bench does not drop
 * caches on a shared machine).
 */
#include "bench.h"

#include "dataset.h"
#include "vigil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16
#define STEP_NS INT64_C(10000000000) /* scale-N's 10 s */

typedef struct {
	const char *vigild;
	const char *addr; /* given: use that server, no memory figures */
	const char *sync;
	const char *workdir;
	int conns, pipeline;
	bool create_only; /* only the creation phase (for profiling it) */
	size_t batch_series;
	uint64_t min_points;
	int runs, warmup;
} scale_opts_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* ---- the server under test ------------------------------------------- */

typedef struct {
	pid_t pid;
	char addr[64];
	char dir[PATH_MAX];
} server_t;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A loopback port free right now (vigild binds it a moment later). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int port = -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Starts vigild on dir and waits (60 s at most) for a connection whose
 * Hello succeeds; *elapsed is the time from fork() to that moment. */
static int server_start(const scale_opts_t *o, const char *dir, server_t *s, double *elapsed)
{
	int port = free_port();
	if (port < 0)
		return -1;
	snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", port);
	snprintf(s->dir, sizeof s->dir, "%s", dir);
	char log[PATH_MAX + 16];
	snprintf(log, sizeof log, "%s.log", dir);
	double t0 = now_s();
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (s->pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(o->vigild, o->vigild, "--data", dir, "--listen", s->addr, "--sync", o->sync,
		      "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	for (;;) {
		vg_client_t *c;
		char err[VG_CLIENT_ERRLEN];
		if (vg_client_connect(s->addr, 1000, &c, err, sizeof err) == 0) {
			vg_client_close(c);
			break;
		}
		int status;
		if (waitpid(s->pid, &status, WNOHANG) == s->pid || now_s() - t0 > 60) {
			fprintf(stderr, "vigil-bench scale: vigild did not start (see %s)\n", log);
			if (kill(s->pid, 0) == 0) {
				kill(s->pid, SIGKILL);
				waitpid(s->pid, &status, 0);
			}
			return -1;
		}
		struct timespec pause = {0, 1000000};
		nanosleep(&pause, NULL);
	}
	if (elapsed)
		*elapsed = now_s() - t0;
	return 0;
}

static void server_stop(server_t *s)
{
	if (s->pid <= 0)
		return;
	int status;
	kill(s->pid, SIGTERM);
	waitpid(s->pid, &status, 0);
	s->pid = 0;
}

typedef struct {
	uint64_t rss, hwm, anon, file; /* bytes */
} memory_t;

/* The value in kB of `name` (with its colon) in a /proc file, in bytes. */
static uint64_t proc_field(const char *path, const char *name)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	char line[256];
	size_t n = strlen(name);
	uint64_t v = 0;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, name, n) == 0) {
			v = strtoull(line + n, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

static memory_t memory_of(pid_t pid)
{
	char status[64], rollup[64];
	snprintf(status, sizeof status, "/proc/%d/status", (int)pid);
	snprintf(rollup, sizeof rollup, "/proc/%d/smaps_rollup", (int)pid);
	memory_t m;
	m.rss = proc_field(status, "VmRSS:");
	m.hwm = proc_field(status, "VmHWM:");
	m.anon = proc_field(rollup, "Anonymous:");
	uint64_t rss = proc_field(rollup, "Rss:");
	m.file = rss > m.anon ? rss - m.anon : 0;
	return m;
}

/* CPU time (ticks) the process has used, or 0. */
static uint64_t cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command name, which ends with the last ')'. */
	char *p = strrchr(buf, ')');
	unsigned long utime = 0, stime = 0;
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
	                &stime) == 2)
		return (uint64_t)utime + stime;
	return 0;
}

/* Waits for vigild's idle seal (2 s after the last write) to finish: until
 * the process used no CPU for 1 s, 3 s after the last write at the least. */
static void wait_quiet(pid_t pid)
{
	struct timespec pause = {3, 0};
	nanosleep(&pause, NULL);
	pause = (struct timespec){1, 0};
	uint64_t before = cpu_ticks(pid);
	for (int i = 0; i < 600; i++) {
		nanosleep(&pause, NULL);
		uint64_t after = cpu_ticks(pid);
		if (after == before)
			break;
		before = after;
	}
}

/* ---- sending batches ------------------------------------------------- */

typedef struct {
	vg_client_t *client;
	vg_batch_t **batches;
	size_t nbatches;
	int pipeline;
	int rc;
} sender_t;

static void *send_thread(void *p)
{
	sender_t *s = p;
	size_t sent = 0;
	while (sent < s->nbatches || vg_client_pending_writes(s->client)) {
		uint64_t id, points;
		if (sent < s->nbatches &&
		    vg_client_pending_writes(s->client) < (size_t)s->pipeline) {
			if ((s->rc = vg_client_write_async(s->client, s->batches[sent++], &id)))
				break;
			continue;
		}
		if ((s->rc = vg_client_wait_ack(s->client, &id, &points)))
			break;
	}
	if (s->rc)
		fprintf(stderr, "vigil-bench scale: write: %s\n", vg_client_errstr(s->client));
	return NULL;
}

/* Sends batches over the clients (batch b on client b % nclients, so each
 * client sends in time order) and returns the wall time, or -1. */
static double send_all(vg_client_t **clients, int nclients, int pipeline, vg_batch_t **batches,
                       size_t nbatches)
{
	sender_t senders[MAX_CONNS];
	pthread_t threads[MAX_CONNS];
	vg_batch_t **lists = malloc((nbatches ? nbatches : 1) * sizeof *lists);
	if (!lists)
		return -1;
	size_t at = 0;
	for (int c = 0; c < nclients; c++) {
		senders[c] = (sender_t){clients[c], lists + at, 0, pipeline, 0};
		for (size_t b = (size_t)c; b < nbatches; b += (size_t)nclients)
			lists[at++] = batches[b];
		senders[c].nbatches = (size_t)(lists + at - senders[c].batches);
	}
	double t0 = now_s();
	for (int c = 0; c < nclients; c++)
		pthread_create(&threads[c], NULL, send_thread, &senders[c]);
	int rc = 0;
	for (int c = 0; c < nclients; c++) {
		pthread_join(threads[c], NULL);
		rc = rc ? rc : senders[c].rc;
	}
	double elapsed = now_s() - t0;
	free(lists);
	return rc ? -1 : elapsed;
}

/* The value of series e at round j: the dataset's for its 10 points. */
static double value_at(const vg_dataset_t *d, size_t e, size_t j)
{
	if (j < d->npoints)
		return vg_dataset_series_values(d, e, 0)[j];
	return (double)(j % 100);
}

/* Builds batches for rounds [j0, j1) (one point per series per round,
 * time-major), batch_series series per batch.  Returns the count or 0. */
static size_t build_rounds(const vg_dataset_t *d, size_t j0, size_t j1, size_t batch_series,
                           vg_batch_t ***out)
{
	size_t n = d->nentities;
	size_t per_round = (n + batch_series - 1) / batch_series;
	size_t nbatches = per_round * (j1 - j0);
	vg_batch_t **batches = calloc(nbatches, sizeof *batches);
	if (!batches)
		return 0;
	size_t k = 0;
	for (size_t j = j0; j < j1; j++) {
		int64_t t = VG_DATASET_START_NS + (int64_t)j * STEP_NS;
		for (size_t s0 = 0; s0 < n; s0 += batch_series) {
			if (vg_batch_new(&batches[k]))
				goto fail;
			for (size_t e = s0; e < n && e < s0 + batch_series; e++) {
				vg_tag_t tags[2];
				for (size_t i = 0; i < d->ntag_keys && i < 2; i++)
					tags[i] = (vg_tag_t){d->tag_keys[i],
					                     vg_dataset_tag_value(d, e, i)};
				double v = value_at(d, e, j);
				if (vg_batch_add_points(batches[k], d->measurement, tags,
				                        d->ntag_keys, d->fields[0], &t, &v, 1))
					goto fail;
			}
			k++;
		}
	}
	*out = batches;
	return nbatches;
fail:
	for (size_t i = 0; i <= k && i < nbatches; i++)
		vg_batch_free(batches[i]);
	free(batches);
	return 0;
}

static void free_batches(vg_batch_t **batches, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vg_batch_free(batches[i]);
	free(batches);
}

/* Sends rounds [j0, j1) in groups of about min_points points; adds the
 * time to *elapsed and the points to *points.  Returns 0 or -1. */
static int send_rounds(const scale_opts_t *o, vg_client_t **clients, const vg_dataset_t *d,
                       size_t j0, size_t j1, double *elapsed, uint64_t *points)
{
	size_t per_group = (size_t)(o->min_points / d->nentities);
	per_group = per_group ? per_group : 1;
	for (size_t j = j0; j < j1; j += per_group) {
		size_t end = j1 - j < per_group ? j1 : j + per_group;
		vg_batch_t **batches;
		size_t n = build_rounds(d, j, end, o->batch_series, &batches);
		if (!n)
			return -1;
		double t = send_all(clients, o->conns, o->pipeline, batches, n);
		free_batches(batches, n);
		if (t < 0)
			return -1;
		*elapsed += t;
		*points += (uint64_t)d->nentities * (end - j);
	}
	return 0;
}

/* ---- queries --------------------------------------------------------- */

/* p50 and p99 (ms) of `runs` runs of the statements build() makes. */
static int time_queries(vg_client_t *c, const scale_opts_t *o, const vg_dataset_t *d, bool host,
                        double *p50, double *p99)
{
	double *lat = calloc((size_t)o->runs, sizeof *lat);
	if (!lat)
		return -1;
	vg_rng_t rng;
	vg_rng_seed(&rng, host ? 7 : 42);
	int rc = 0;
	for (int i = -o->warmup; i < o->runs && rc == 0; i++) {
		size_t e = (size_t)vg_rng_below(&rng, d->nentities);
		char stmt[256];
		if (host)
			snprintf(stmt, sizeof stmt,
			         "SELECT mean(value) FROM scale WHERE host = '%s'",
			         vg_dataset_tag_value(d, e, 0));
		else
			snprintf(stmt, sizeof stmt,
			         "SELECT value FROM scale WHERE host = '%s' AND metric = '%s'",
			         vg_dataset_tag_value(d, e, 0), vg_dataset_tag_value(d, e, 1));
		vg_result_t *r;
		double t0 = now_s();
		rc = vg_client_query(c, stmt, &r);
		double dt = now_s() - t0;
		if (rc) {
			fprintf(stderr, "vigil-bench scale: %s: %s\n", stmt, vg_client_errstr(c));
			break;
		}
		vg_result_free(r);
		if (i >= 0)
			lat[i] = dt;
	}
	if (rc == 0) {
		qsort(lat, (size_t)o->runs, sizeof *lat, compare_double);
		*p50 = lat[o->runs / 2] * 1e3;
		*p99 = lat[(size_t)(o->runs * 0.99)] * 1e3;
	}
	free(lat);
	return rc ? -1 : 0;
}

/* ---- one N ----------------------------------------------------------- */

static void print_header(void)
{
	printf("%9s %12s %12s %9s %9s %9s %9s %9s %8s %8s %9s\n", "series", "create/s",
	       "ingest pt/s", "q1 p50", "q1 p99", "q100 p50", "q100 p99", "RSS B/s", "anon B/s",
	       "file B/s", "HWM MB");
}

static int run_one(const scale_opts_t *o, uint64_t n)
{
	vg_dataset_t *d;
	if (vg_dataset_generate("scale", VG_DATASET_DEFAULT_SEED, n, &d)) {
		fprintf(stderr, "vigil-bench scale: bad series count %" PRIu64 "\n", n);
		return BENCH_EXIT_USAGE;
	}
	server_t srv = {0};
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/scale-%" PRIu64, o->workdir, n);
	const char *addr = o->addr;
	if (!addr) {
		remove_tree(dir);
		if (server_start(o, dir, &srv, NULL)) {
			vg_dataset_free(d);
			return BENCH_EXIT_ERROR;
		}
		addr = srv.addr;
	}
	int status = BENCH_EXIT_ERROR;
	vg_client_t *clients[MAX_CONNS + 1] = {0};
	for (int c = 0; c <= o->conns; c++) {
		char err[VG_CLIENT_ERRLEN];
		if (vg_client_connect(addr, 60000, &clients[c], err, sizeof err)) {
			fprintf(stderr, "vigil-bench scale: %s\n", err);
			goto out;
		}
	}
	memory_t m0 = {0}, m1 = {0}, m2 = {0};
	if (srv.pid)
		m0 = memory_of(srv.pid);
	double t_create = 0, t_ingest = 0;
	uint64_t p_create = 0, p_ingest = 0;
	if (send_rounds(o, clients, d, 0, 1, &t_create, &p_create))
		goto out;
	if (o->create_only) {
		if (srv.pid)
			m1 = memory_of(srv.pid);
		printf("%9" PRIu64 " %12.0f %12s %9s %9s %9s %9s %9.0f %8.0f %8.0f %9.1f\n", n,
		       (double)p_create / t_create, "-", "-", "-", "-", "-",
		       ((double)m1.rss - (double)m0.rss) / (double)n,
		       ((double)m1.anon - (double)m0.anon) / (double)n,
		       ((double)m1.file - (double)m0.file) / (double)n, (double)m1.hwm / 1048576.0);
		status = BENCH_EXIT_OK;
		goto out;
	}
	if (send_rounds(o, clients, d, 1, d->npoints, &t_ingest, &p_ingest))
		goto out;
	if (srv.pid) {
		m1 = memory_of(srv.pid);
		wait_quiet(srv.pid);
	}
	double q1[2], q100[2];
	if (time_queries(clients[o->conns], o, d, false, &q1[0], &q1[1]) ||
	    time_queries(clients[o->conns], o, d, true, &q100[0], &q100[1]))
		goto out;
	size_t rounds = d->npoints;
	while ((uint64_t)rounds * n < o->min_points)
		rounds++;
	if (send_rounds(o, clients, d, d->npoints, rounds, &t_ingest, &p_ingest))
		goto out;
	if (srv.pid)
		m2 = memory_of(srv.pid);
	if (srv.pid) {
		double dn = (double)n;
		printf("%9" PRIu64
		       " %12.0f %12.0f %9.3f %9.3f %9.3f %9.3f %9.0f %8.0f %8.0f %9.1f\n",
		       n, (double)p_create / t_create, (double)p_ingest / t_ingest, q1[0], q1[1],
		       q100[0], q100[1], ((double)m1.rss - (double)m0.rss) / dn,
		       ((double)m1.anon - (double)m0.anon) / dn,
		       ((double)m1.file - (double)m0.file) / dn, (double)m2.hwm / 1048576.0);
	} else {
		printf("%9" PRIu64 " %12.0f %12.0f %9.3f %9.3f %9.3f %9.3f %9s %8s %8s %9s\n", n,
		       (double)p_create / t_create, (double)p_ingest / t_ingest, q1[0], q1[1],
		       q100[0], q100[1], "-", "-", "-", "-");
	}
	fflush(stdout);
	status = BENCH_EXIT_OK;
out:
	for (int c = 0; c <= o->conns; c++)
		if (clients[c])
			vg_client_close(clients[c]);
	if (srv.pid) {
		server_stop(&srv);
		remove_tree(dir);
		if (status == BENCH_EXIT_OK) {
			/* The server's log (kept when a run fails). */
			char log[PATH_MAX + 16];
			snprintf(log, sizeof log, "%s.log", dir);
			remove(log);
		}
	}
	vg_dataset_free(d);
	return status;
}

/* ---- start-up -------------------------------------------------------- */

#define STARTUP_SERIES 1000000
#define STARTUP_POINTS 100

static int run_startup(const scale_opts_t *o, const char *store_dir, int runs)
{
	if (bench_scale_build_store(store_dir, STARTUP_SERIES, STARTUP_POINTS))
		return BENCH_EXIT_ERROR;
	double *t = calloc((size_t)runs, sizeof *t);
	if (!t)
		return BENCH_EXIT_ERROR;
	int status = BENCH_EXIT_OK;
	uint64_t rss = 0;
	for (int r = 0; r < runs; r++) {
		server_t srv = {0};
		if (server_start(o, store_dir, &srv, &t[r])) {
			status = BENCH_EXIT_ERROR;
			break;
		}
		rss = memory_of(srv.pid).rss;
		server_stop(&srv);
	}
	if (status == BENCH_EXIT_OK) {
		qsort(t, (size_t)runs, sizeof *t, compare_double);
		printf(
		    "start-up over %d series x %d points: median %.1f ms (min %.1f, max %.1f, %d "
		    "runs; warm page cache), RSS when ready %.1f MB\n",
		    STARTUP_SERIES, STARTUP_POINTS, t[runs / 2] * 1e3, t[0] * 1e3,
		    t[runs - 1] * 1e3, runs, (double)rss / 1048576.0);
	}
	free(t);
	return status;
}

/* ---- the command ----------------------------------------------------- */

/* The vigild built beside this vigil-bench (build/bench/ -> build/server/). */
static void default_vigild(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		snprintf(out, len, "vigild");
		return;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(out, len, "%s/../server/vigild", self);
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: vigil-bench scale [--series N,N,...] [--sync full|none] [--connections N]\n"
	    "         [--batch-series N] [--pipeline N] [--min-points N] [--runs N] [--warmup N]\n"
	    "         [--vigild PATH | --addr HOST:PORT] [--dir DIR]\n"
	    "         [--startup] [--startup-only] [--startup-runs N] [--store DIR]\n"
	    "         [--create-only]\n");
}

int bench_scale_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"series", required_argument, NULL, 'n'},
	    {"sync", required_argument, NULL, 's'},
	    {"connections", required_argument, NULL, 'c'},
	    {"batch-series", required_argument, NULL, 'b'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"min-points", required_argument, NULL, 'm'},
	    {"runs", required_argument, NULL, 'r'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"vigild", required_argument, NULL, 'v'},
	    {"addr", required_argument, NULL, 'a'},
	    {"dir", required_argument, NULL, 'd'},
	    {"startup", no_argument, NULL, 'S'},
	    {"startup-only", no_argument, NULL, 'O'},
	    {"startup-runs", required_argument, NULL, 'R'},
	    {"store", required_argument, NULL, 'D'},
	    {"create-only", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char vigild[PATH_MAX + 32];
	default_vigild(vigild, sizeof vigild);
	scale_opts_t o = {vigild, NULL, "full", "/tmp", 4, 16, false, 1000, 1000000, 1000, 50};
	const char *series = "1000,10000,100000,1000000", *store_dir = "bench/data/startup-1M";
	bool startup = false, only = false;
	int startup_runs = 7;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			series = optarg;
			break;
		case 's':
			o.sync = optarg;
			break;
		case 'c':
			o.conns = atoi(optarg);
			break;
		case 'b':
			o.batch_series = (size_t)atol(optarg);
			break;
		case 'P':
			o.pipeline = atoi(optarg);
			break;
		case 'm':
			o.min_points = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			o.runs = atoi(optarg);
			break;
		case 'w':
			o.warmup = atoi(optarg);
			break;
		case 'v':
			o.vigild = optarg;
			break;
		case 'a':
			o.addr = optarg;
			break;
		case 'd':
			o.workdir = optarg;
			break;
		case 'S':
			startup = true;
			break;
		case 'O':
			startup = only = true;
			break;
		case 'R':
			startup_runs = atoi(optarg);
			break;
		case 'D':
			store_dir = optarg;
			break;
		case 'C':
			o.create_only = true;
			break;
		case 'h':
			usage(stdout);
			return BENCH_EXIT_OK;
		default:
			usage(stderr);
			return BENCH_EXIT_USAGE;
		}
	}
	if (o.conns < 1 || o.conns > MAX_CONNS || o.pipeline < 1 || o.batch_series < 1 ||
	    o.runs < 1 || o.warmup < 0 || startup_runs < 1 ||
	    (strcmp(o.sync, "full") && strcmp(o.sync, "none"))) {
		fprintf(stderr, "vigil-bench scale: bad option value\n");
		usage(stderr);
		return BENCH_EXIT_USAGE;
	}
	if (startup && o.addr) {
		fprintf(stderr,
		        "vigil-bench scale: --startup starts its own vigild; drop --addr\n");
		return BENCH_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	int status = BENCH_EXIT_OK;
	if (!only) {
		printf("scale-N over the binary protocol: sync %s, %d connections, %zu series per "
		       "batch, pipeline %d; q1 = one series raw, q100 = mean of one host's 100 "
		       "series (ms); RSS/anon/file = growth per series after scale-N\n",
		       o.sync, o.conns, o.batch_series, o.pipeline);
		print_header();
		for (const char *p = series; *p && status == BENCH_EXIT_OK;) {
			char *end;
			uint64_t n = strtoull(p, &end, 10);
			if (end == p || n == 0) {
				fprintf(stderr,
				        "vigil-bench scale: --series %s: expected N,N,...\n",
				        series);
				return BENCH_EXIT_USAGE;
			}
			status = run_one(&o, n);
			p = *end == ',' ? end + 1 : end;
		}
	}
	if (status == BENCH_EXIT_OK && startup)
		status = run_startup(&o, store_dir, startup_runs);
	return status;
}
