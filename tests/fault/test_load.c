/*
 * test_load.c — the load campaign: many concurrent connections, held for a
 * while, each writing its own series every PERIOD_MS and subscribed to
 * it, among clients that misbehave:
 *
 *   - stallers send Hello, then half a frame, and go silent: each must be
 *     closed with a TIMEOUT error after --frame-timeout;
 *   - never-readers subscribe to every write and never read: each
 *     subscription must end with OVERFLOW (--max-output), nothing more
 *     (they subscribe to a few large writes of client 0, more than the
 *     kernel's socket buffers absorb);
 *   - extra clients past --max-connections must get the limit error.
 *
 * Meanwhile the server's resident memory is sampled (VmRSS, and VmHWM at
 * the end, from /proc) and must stay under a bound.  At the end every
 * acknowledged write has been pushed exactly once to its subscriber, the
 * stored count equals the acknowledged points, and a fresh client's query
 * is answered (within the harness's 5 s).  One process, one poll() loop,
 * raw frames.
 *
 * Environment: VIGIL_LOAD_CONNS (default 200), VIGIL_LOAD_SECONDS (default
 * 4), VIGIL_LOAD_MAX_RSS_MB (default 512; not checked under ASan, whose
 * quarantine keeps freed memory).  tests/fault/load.sh runs 1,000
 * connections for 60 s.
 */
#include "server/harness.h"

#include "vigil.h"

#include <sys/resource.h>

#define STALLERS 20
#define NEVER_READERS 10
#define EXTRA 5
#define PERIOD_MS 500
#define POINTS 10
/* Client 0's first BURSTS writes go to measurement "burst", which the
 * never-readers subscribe to, and are this large: more than the kernel's
 * socket buffers absorb. */
#define BURST_POINTS 100000
#define BURSTS 5
#define MAX_OUTPUT "65536"

typedef enum { REGULAR, STALLER, NEVER_READER } kind_t;

typedef struct {
	kind_t kind;
	int fd;
	int index;
	vg_buf_t in, out;
	size_t out_sent;
	bool ready;     /* HelloOk and SubscribeOk seen */
	bool in_flight; /* a write awaits its WriteOk */
	int64_t next_write_ms;
	uint64_t seq;
	uint64_t acked_points, pushed_points;
	bool timed_out, closed, overflowed;
} conn_t;

typedef struct {
	size_t regular_errors;
	char first_error[256];
} stats_t;

static unsigned env_unsigned(const char *name, unsigned dflt)
{
	const char *s = getenv(name);
	return s && *s ? (unsigned)strtoul(s, NULL, 10) : dflt;
}

static void queue_env(conn_t *c, Vigil__V1__Envelope *env)
{
	cr_assert_eq(vg_frame_append(&c->out, env), 0);
}

static void flush(conn_t *c)
{
	while (c->out_sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0)
			break;
		c->out_sent += (size_t)n;
	}
	if (c->out_sent == c->out.len) {
		c->out.len = 0;
		c->out_sent = 0;
	}
}

static void queue_hello(conn_t *c)
{
	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = VG_PROTOCOL_VERSION;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	queue_env(c, &env);
}

static void queue_subscribe(conn_t *c, const char *statement)
{
	Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
	sub.statement = (char *)statement;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 2;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &sub;
	queue_env(c, &env);
}

static void queue_write(conn_t *c)
{
	char tag_value[16];
	snprintf(tag_value, sizeof tag_value, "c%d", c->index);
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = (char *)"c";
	tag.value = tag_value;
	Vigil__V1__Tag *tags[] = {&tag};
	static int64_t times[BURST_POINTS];
	static double values[BURST_POINTS];
	bool burst = c->index == 0 && c->seq < BURSTS;
	size_t npoints = burst ? BURST_POINTS : POINTS;
	for (size_t i = 0; i < npoints; i++) {
		times[i] = (int64_t)(c->seq * BURST_POINTS + i + 1);
		values[i] = (double)c->index;
	}
	Vigil__V1__WriteField f = VIGIL__V1__WRITE_FIELD__INIT;
	f.name = (char *)"v";
	f.n_values = npoints;
	f.values = values;
	Vigil__V1__WriteField *fields[] = {&f};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = (char *)(burst ? "burst" : "load");
	block.n_tags = 1;
	block.tags = tags;
	block.n_times = npoints;
	block.times = times;
	block.n_fields = 1;
	block.fields = fields;
	Vigil__V1__WriteBlock *blocks[] = {&block};
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	write.n_blocks = 1;
	write.blocks = blocks;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 100 + c->seq;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &write;
	queue_env(c, &env);
	c->seq++;
	c->in_flight = true;
}

static int connect_nonblocking(int port)
{
	int fd = vg_test_connect(port);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Handles one frame from the server. */
static void on_frame(conn_t *c, Vigil__V1__Envelope *env, stats_t *st)
{
	switch (env->body_case) {
	case VIGIL__V1__ENVELOPE__BODY_HELLO_OK:
		if (c->kind == STALLER) {
			/* Half a frame: a header announcing 100 bytes, 3 of them. */
			static const uint8_t half[] = {0, 0, 0, 100, 1, 2, 3};
			cr_assert_eq(vg_buf_append(&c->out, half, sizeof half), 0);
		}
		break;
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK:
		c->ready = true;
		break;
	case VIGIL__V1__ENVELOPE__BODY_WRITE_OK:
		cr_assert(c->in_flight);
		c->in_flight = false;
		if (!(c->index == 0 && env->id - 100 < BURSTS))
			c->acked_points += env->write_ok->points;
		c->next_write_ms = vg_test_ms() + PERIOD_MS;
		break;
	case VIGIL__V1__ENVELOPE__BODY_PUSH:
		c->pushed_points += env->push->rows->n_times;
		break;
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END:
		cr_assert_eq(c->kind, NEVER_READER, "client %d: subscription ended", c->index);
		cr_assert_not_null(env->subscription_end->error);
		cr_assert_eq(env->subscription_end->error->code,
		             VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW);
		c->overflowed = true;
		break;
	case VIGIL__V1__ENVELOPE__BODY_ERROR:
		if (c->kind == STALLER &&
		    env->error->code == VIGIL__V1__ERROR_CODE__ERROR_TIMEOUT &&
		    strstr(env->error->message, "--frame-timeout")) {
			c->timed_out = true;
			break;
		}
		if (st->regular_errors++ == 0)
			snprintf(st->first_error, sizeof st->first_error, "client %d (kind %d): %s",
			         c->index, c->kind, env->error->message);
		break;
	default:
		cr_assert_fail("client %d: unexpected frame %d", c->index, env->body_case);
	}
}

/* Reads what is there and handles every complete frame. */
static void on_readable(conn_t *c, stats_t *st)
{
	for (;;) {
		cr_assert_eq(vg_buf_reserve(&c->in, 65536), 0);
		ssize_t n = recv(c->fd, c->in.data + c->in.len, 65536, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
			c->closed = true;
			break;
		}
		if (n < 0)
			break;
		c->in.len += (size_t)n;
	}
	for (;;) {
		Vigil__V1__Envelope *env = NULL;
		size_t used = 0;
		int rc = vg_frame_parse(c->in.data, c->in.len, 64u << 20, &env, &used);
		if (rc == VG_EAGAIN)
			break;
		cr_assert_eq(rc, 0, "client %d: bad frame from the server", c->index);
		vg_buf_consume(&c->in, used);
		on_frame(c, env, st);
		vg_frame_free_envelope(env);
	}
}

/* One poll() round over the connections; reads never-readers only when
 * `drain`. */
static void poll_round(conn_t *conns, size_t n, struct pollfd *pfds, bool writing, bool drain,
                       stats_t *st)
{
	int64_t now = vg_test_ms();
	for (size_t i = 0; i < n; i++) {
		conn_t *c = &conns[i];
		if (writing && c->kind == REGULAR && c->ready && !c->in_flight &&
		    now >= c->next_write_ms)
			queue_write(c);
		if (c->out.len > c->out_sent)
			flush(c);
		pfds[i].fd = c->closed ? -1 : c->fd;
		pfds[i].events = (c->kind != NEVER_READER || drain ? POLLIN : 0) |
		                 (c->out.len > c->out_sent ? POLLOUT : 0);
		pfds[i].revents = 0;
	}
	int ready = poll(pfds, (nfds_t)n, 20);
	cr_assert_geq(ready, 0, "poll: %s", strerror(errno));
	for (size_t i = 0; i < n && ready > 0; i++) {
		if (!pfds[i].revents)
			continue;
		ready--;
		if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
			on_readable(&conns[i], st);
		if (pfds[i].revents & POLLOUT)
			flush(&conns[i]);
	}
}

static void raise_fd_limit(size_t need)
{
	struct rlimit rl;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	cr_assert_geq(rl.rlim_cur, need, "open files limit %llu < %zu",
	              (unsigned long long)rl.rlim_cur, need);
}

Test(load, connections_writing_and_subscribing_with_stallers_and_non_readers, .timeout = 3600)
{
	unsigned nregular = env_unsigned("VIGIL_LOAD_CONNS", 200);
	unsigned seconds = env_unsigned("VIGIL_LOAD_SECONDS", 4);
	unsigned max_rss_mb = env_unsigned("VIGIL_LOAD_MAX_RSS_MB", 512);
	size_t n = (size_t)nregular + STALLERS + NEVER_READERS;
	raise_fd_limit(n + EXTRA + 64);
	char limit[16];
	snprintf(limit, sizeof limit, "%zu", n);
	const char *args[] = {"--max-connections", limit, "--frame-timeout", "2s", "--max-output",
	                      MAX_OUTPUT,          NULL};
	vg_test_server_t srv = {0};
	vg_test_server_start(&srv, args);
	long rss_start = vg_test_proc_kib(srv.pid, "VmRSS");

	conn_t *conns = calloc(n, sizeof *conns);
	struct pollfd *pfds = calloc(n, sizeof *pfds);
	cr_assert(conns && pfds);
	stats_t st = {0};
	int64_t t0 = vg_test_ms();
	for (size_t i = 0; i < n; i++) {
		conn_t *c = &conns[i];
		c->index = (int)i;
		c->kind = i < nregular ? REGULAR : i < nregular + STALLERS ? STALLER : NEVER_READER;
		c->fd = connect_nonblocking(srv.port);
		if (c->kind == NEVER_READER) {
			int small = 8192;
			setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		}
		queue_hello(c);
		if (c->kind == REGULAR) {
			char stmt[96];
			snprintf(stmt, sizeof stmt, "SUBSCRIBE SELECT v FROM load WHERE c = 'c%d'",
			         c->index);
			queue_subscribe(c, stmt);
		} else if (c->kind == NEVER_READER) {
			queue_subscribe(c, "SUBSCRIBE SELECT v FROM burst");
		}
		flush(c);
		/* Keep up with the answers while connecting the rest. */
		if (i % 64 == 63)
			poll_round(conns, i + 1, pfds, false, false, &st);
	}
	/* Wait until every regular client is subscribed (never-readers are
	 * not read: they are counted as connected by the limit check). */
	for (int64_t deadline = vg_test_ms() + 30000;;) {
		size_t ready = 0;
		for (size_t i = 0; i < nregular; i++)
			ready += conns[i].ready;
		if (ready == nregular)
			break;
		cr_assert_lt(vg_test_ms(), deadline, "%zu of %u clients subscribed", ready,
		             nregular);
		poll_round(conns, n, pfds, false, false, &st);
		vg_test_server_wait_log(&srv, "\001", 0); /* drain the log */
	}
	double connect_s = (double)(vg_test_ms() - t0) / 1000;

	/* The limit: extra clients get the error and are closed. */
	for (int e = 0; e < EXTRA; e++) {
		int fd = vg_test_connect(srv.port);
		vg_buf_t in = VG_BUF_INIT;
		cr_assert_eq(vg_test_expect_error(fd, &in, 0, true, "too many connections"),
		             VIGIL__V1__ERROR_CODE__ERROR_LIMIT);
		vg_test_expect_closed(fd);
		close(fd);
		vg_buf_release(&in);
	}

	/* The load itself. */
	long rss_max = 0;
	int64_t start = vg_test_ms(), next_sample = start;
	while (vg_test_ms() - start < (int64_t)seconds * 1000) {
		poll_round(conns, n, pfds, true, false, &st);
		vg_test_server_wait_log(&srv, "\001", 0);
		if (vg_test_ms() >= next_sample) {
			long rss = vg_test_proc_kib(srv.pid, "VmRSS");
			if (rss > rss_max)
				rss_max = rss;
			next_sample += 250;
		}
	}
	double held_s = (double)(vg_test_ms() - start) / 1000;
	/* Stop writing; let acknowledgements and pushes arrive; read what
	 * the never-readers were sent. */
	for (int64_t deadline = vg_test_ms() + 20000;;) {
		bool settled = true;
		for (size_t i = 0; i < n; i++) {
			const conn_t *c = &conns[i];
			if ((c->kind == REGULAR &&
			     (c->in_flight || c->pushed_points < c->acked_points)) ||
			    (c->kind == NEVER_READER && !c->overflowed && !c->closed))
				settled = false;
		}
		if (settled || vg_test_ms() > deadline)
			break;
		poll_round(conns, n, pfds, false, true, &st);
		vg_test_server_wait_log(&srv, "\001", 0);
	}
	long hwm = vg_test_proc_kib(srv.pid, "VmHWM");

	uint64_t acked = 0, writes = 0;
	size_t timed_out = 0, overflowed = 0;
	for (size_t i = 0; i < n; i++) {
		conn_t *c = &conns[i];
		if (c->kind == REGULAR) {
			cr_assert(!c->closed, "client %d was closed", c->index);
			cr_assert(!c->in_flight, "client %d: a write never acknowledged", c->index);
			cr_assert_eq(c->pushed_points, c->acked_points,
			             "client %d: %lu points acknowledged, %lu pushed", c->index,
			             (unsigned long)c->acked_points,
			             (unsigned long)c->pushed_points);
			acked += c->acked_points;
			writes += c->seq;
		}
		timed_out += c->kind == STALLER && c->timed_out && c->closed;
		overflowed += c->kind == NEVER_READER && c->overflowed;
	}
	cr_assert_eq(st.regular_errors, 0, "%zu errors; the first: %s", st.regular_errors,
	             st.first_error);
	cr_assert_eq(timed_out, STALLERS, "%zu of %d stallers closed with a timeout", timed_out,
	             STALLERS);
	cr_assert_eq(overflowed, NEVER_READERS, "%zu of %d never-readers got OVERFLOW", overflowed,
	             NEVER_READERS);

	/* Room for one more: a fresh client's query is answered. */
	close(conns[0].fd);
	conns[0].closed = true;
	vg_client_t *client = NULL;
	char err[VG_CLIENT_ERRLEN];
	for (int64_t deadline = vg_test_ms() + 5000;;) {
		/* The server notices the close on its next loop turn. */
		if (vg_client_connect(srv.addr, 5000, &client, err, sizeof err) == 0)
			break;
		cr_assert_lt(vg_test_ms(), deadline, "no room after a client left: %s", err);
		struct timespec ms = {0, 20000000};
		nanosleep(&ms, NULL);
	}
	int64_t q0 = vg_test_ms();
	vg_result_t *r;
	cr_assert_eq(vg_client_query(client, "SELECT count(v) FROM load", &r), 0, "%s",
	             vg_client_errstr(client));
	int64_t query_ms = vg_test_ms() - q0;
	double count = -1;
	cr_assert_eq(vg_result_set_count(r), 1);
	cr_assert(vg_result_float(vg_result_set(r, 0), 0, 1, &count));
	vg_result_free(r);
	vg_client_close(client);
	cr_assert_eq(count, (double)acked, "stored %g points, %lu acknowledged", count,
	             (unsigned long)acked);

	printf("load: %u writing+subscribed clients, %d stallers, %d never-readers, %d extra "
	       "refused; connected in %.1f s, held %.1f s; %lu writes (%lu points) acknowledged "
	       "and pushed exactly once; server RSS %ld KiB at start, max sampled %ld KiB, peak "
	       "(VmHWM) %ld KiB; final count query answered in %ld ms\n",
	       nregular, STALLERS, NEVER_READERS, EXTRA, connect_s, held_s, (unsigned long)writes,
	       (unsigned long)acked, rss_start, rss_max, hwm, (long)query_ms);
	fflush(stdout);
#if !defined(__SANITIZE_ADDRESS__)
	cr_assert_lt(hwm, (long)max_rss_mb * 1024, "server peak RSS %ld KiB over %u MiB", hwm,
	             max_rss_mb);
#else
	(void)max_rss_mb;
#endif
	for (size_t i = 0; i < n; i++) {
		if (i != 0)
			close(conns[i].fd);
		vg_buf_release(&conns[i].in);
		vg_buf_release(&conns[i].out);
	}
	free(conns);
	free(pfds);
	vg_test_server_stop(&srv, true);
}
