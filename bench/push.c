/*
 * push.c — `vigil-bench push`: push latency of subscriptions (BENCH.md),
 * from the moment a client sends a write to the moment a subscriber has
 * the pushed row, on one clock.
 *
 * --subscribers N subscriptions to the probe series are spread over up to
 * four subscriber connections (raw frames, one reader thread each);
 * a background thread ingests --background points/s of other series; the
 * probe thread writes one point every 20 ms carrying its send time as the
 * value.  Every push received is one latency sample.
 */
#include "bench.h"

#include "vg_buf.h"
#include "vg_proto.h"
#include "vigil.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
	int fd;
	int nsubs;
	double *samples;
	size_t nsamples, cap;
	atomic_bool *stop;
	int ok;
} reader_t;

static int send_env(int fd, Vigil__V1__Envelope *env)
{
	vg_buf_t b = VG_BUF_INIT;
	int rc = vg_frame_append(&b, env);
	size_t off = 0;
	while (rc == 0 && off < b.len) {
		ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n <= 0)
			rc = -1;
		else
			off += (size_t)n;
	}
	vg_buf_release(&b);
	return rc;
}

/* Reads one frame (1 s at most); NULL on timeout or close. */
static Vigil__V1__Envelope *recv_env(int fd, vg_buf_t *in, int timeout_ms)
{
	for (;;) {
		Vigil__V1__Envelope *env = NULL;
		size_t used = 0;
		if (in->len &&
		    vg_frame_parse(in->data, in->len, 64u << 20, &env, &used) == 0) {
			vg_buf_consume(in, used);
			return env;
		}
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, timeout_ms) <= 0)
			return NULL;
		if (vg_buf_reserve(in, 1 << 16))
			return NULL;
		ssize_t n = recv(fd, in->data + in->len, 1 << 16, 0);
		if (n <= 0)
			return NULL;
		in->len += (size_t)n;
	}
}

static int connect_to(const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof host)
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = 0;
	struct sockaddr_in sin = {0};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void *reader_main(void *p)
{
	reader_t *r = p;
	vg_buf_t in = VG_BUF_INIT;
	while (!atomic_load(r->stop)) {
		Vigil__V1__Envelope *env = recv_env(r->fd, &in, 100);
		if (!env)
			continue;
		int64_t t = now_ns();
		if (env->body_case == VIGIL__V1__ENVELOPE__BODY_PUSH) {
			const Vigil__V1__ResultRows *rows = env->push->rows;
			for (size_t i = 0; i < rows->n_times; i++) {
				double sent = rows->columns[0]->floats[i];
				if (r->nsamples == r->cap) {
					r->cap = r->cap ? r->cap * 2 : 4096;
					r->samples = realloc(r->samples, r->cap * sizeof *r->samples);
				}
				r->samples[r->nsamples++] = ((double)t - sent) / 1e3; /* µs */
			}
		}
		vg_frame_free_envelope(env);
	}
	vg_buf_release(&in);
	return NULL;
}

typedef struct {
	const char *addr;
	int rate;
	atomic_bool *stop;
	uint64_t points;
} background_t;

static void *background_main(void *p)
{
	background_t *bg = p;
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	if (vg_client_connect(bg->addr, 5000, &c, err, sizeof err))
		return NULL;
	vg_batch_t *b;
	vg_batch_new(&b);
	/* 100 batches a second of rate/100 points over 100 patients. */
	int per = bg->rate / 100;
	int64_t next = now_ns();
	while (!atomic_load(bg->stop) && per > 0) {
		vg_batch_clear(b);
		int64_t t = now_ns();
		for (int i = 0; i < per; i++) {
			char patient[16];
			snprintf(patient, sizeof patient, "bg%03d", i % 100);
			vg_tag_t tag = {"patient", patient};
			vg_batch_add(b, "vitals", &tag, 1, "heart_rate", t + i / 100, 70);
		}
		uint64_t n;
		if (vg_client_write(c, b, &n))
			break;
		bg->points += n;
		next += 10 * 1000000;
		int64_t wait = next - now_ns();
		if (wait > 0) {
			struct timespec ts = {wait / 1000000000, wait % 1000000000};
			nanosleep(&ts, NULL);
		}
	}
	vg_batch_free(b);
	vg_client_close(c);
	return NULL;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int bench_push_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"subscribers", required_argument, NULL, 's'},
		{"background", required_argument, NULL, 'b'},
		{"probes", required_argument, NULL, 'p'},
		{"decoys", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *addr = VG_CLIENT_DEFAULT_ADDR;
	int nsubs = 1, rate = 200000, probes = 250, decoys = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'a')
			addr = optarg;
		else if (opt == 's')
			nsubs = atoi(optarg);
		else if (opt == 'b')
			rate = atoi(optarg);
		else if (opt == 'p')
			probes = atoi(optarg);
		else if (opt == 'd')
			decoys = atoi(optarg);
		else {
			fprintf(stderr, "usage: vigil-bench push [--addr A] [--subscribers N] "
					"[--decoys N] [--background POINTS/S] [--probes N]\n");
			return BENCH_EXIT_USAGE;
		}
	}
	if (nsubs < 1 || nsubs > 100000 || probes < 1 || decoys < 0 || decoys > 1000000) {
		fprintf(stderr, "vigil-bench push: bad option value\n");
		return BENCH_EXIT_USAGE;
	}
	int nconn = nsubs < 4 ? nsubs : 4;
	reader_t readers[4];
	pthread_t threads[4];
	atomic_bool stop = false;
	for (int k = 0; k < nconn; k++) {
		memset(&readers[k], 0, sizeof readers[k]);
		readers[k].stop = &stop;
		readers[k].fd = connect_to(addr);
		if (readers[k].fd < 0) {
			fprintf(stderr, "vigil-bench push: cannot connect to %s\n", addr);
			return BENCH_EXIT_ERROR;
		}
		vg_buf_t in = VG_BUF_INIT;
		Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
		hello.protocol_version = VG_PROTOCOL_VERSION;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = 1;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
		env.hello = &hello;
		send_env(readers[k].fd, &env);
		vg_frame_free_envelope(recv_env(readers[k].fd, &in, 5000));
		int mine = nsubs / nconn + (k < nsubs % nconn);
		for (int s = 0; s < mine; s++) {
			Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
			sub.statement = (char *)"SUBSCRIBE SELECT heart_rate FROM vitals WHERE "
						"patient = 'probe' AND heart_rate > 120";
			env.id = (uint64_t)s + 10;
			env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
			env.subscribe = &sub;
			send_env(readers[k].fd, &env);
		}
		/* Decoys: subscriptions on other patients, which no write matches. */
		int my_decoys = decoys / nconn + (k < decoys % nconn);
		for (int s = 0; s < my_decoys; s++) {
			char stmt[160];
			snprintf(stmt, sizeof stmt,
				 "SUBSCRIBE SELECT heart_rate FROM vitals WHERE patient = 'decoy%d' "
				 "AND heart_rate > 120", s);
			Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
			sub.statement = stmt;
			env.id = (uint64_t)(s + mine) + 10;
			env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
			env.subscribe = &sub;
			send_env(readers[k].fd, &env);
		}
		mine += my_decoys;
		for (int s = 0; s < mine; s++) {
			Vigil__V1__Envelope *ok = recv_env(readers[k].fd, &in, 5000);
			if (!ok || ok->body_case != VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK) {
				fprintf(stderr, "vigil-bench push: subscribe failed\n");
				return BENCH_EXIT_ERROR;
			}
			vg_frame_free_envelope(ok);
		}
		vg_buf_release(&in);
		pthread_create(&threads[k], NULL, reader_main, &readers[k]);
	}
	background_t bg = {addr, rate, &stop, 0};
	pthread_t bg_thread;
	pthread_create(&bg_thread, NULL, background_main, &bg);
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	if (vg_client_connect(addr, 5000, &c, err, sizeof err)) {
		fprintf(stderr, "vigil-bench push: %s\n", err);
		return BENCH_EXIT_ERROR;
	}
	vg_batch_t *b;
	vg_batch_new(&b);
	struct timespec gap = {0, 20 * 1000000};
	nanosleep(&gap, NULL);
	for (int i = 0; i < probes; i++) {
		vg_batch_clear(b);
		vg_tag_t tag = {"patient", "probe"};
		int64_t t = now_ns();
		/* The value carries the send time (µs precision is plenty). */
		vg_batch_add(b, "vitals", &tag, 1, "heart_rate", t, (double)t);
		uint64_t n;
		if (vg_client_write(c, b, &n)) {
			fprintf(stderr, "vigil-bench push: %s\n", vg_client_errstr(c));
			break;
		}
		nanosleep(&gap, NULL);
	}
	struct timespec settle = {0, 300 * 1000000};
	nanosleep(&settle, NULL);
	atomic_store(&stop, true);
	pthread_join(bg_thread, NULL);
	size_t total = 0;
	for (int k = 0; k < nconn; k++) {
		pthread_join(threads[k], NULL);
		total += readers[k].nsamples;
	}
	double *all = malloc((total ? total : 1) * sizeof *all);
	size_t n = 0;
	for (int k = 0; k < nconn; k++) {
		memcpy(all + n, readers[k].samples, readers[k].nsamples * sizeof *all);
		n += readers[k].nsamples;
		free(readers[k].samples);
		close(readers[k].fd);
	}
	qsort(all, n, sizeof *all, compare);
	if (n)
		printf("push latency, %d subscriber%s (+%d not matching), background %d points/s "
		       "(%llu written): %zu pushes (expected %d); p50 %.0f us, p99 %.0f us, "
		       "p99.9 %.0f us\n",
		       nsubs, nsubs == 1 ? "" : "s", decoys, rate, (unsigned long long)bg.points, n,
		       probes * nsubs, all[n / 2], all[(size_t)((double)n * 0.99)],
		       all[(size_t)((double)n * 0.999)]);
	free(all);
	vg_batch_free(b);
	vg_client_close(c);
	return n == (size_t)probes * (size_t)nsubs ? BENCH_EXIT_OK : BENCH_EXIT_ERROR;
}
