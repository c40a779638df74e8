/*
 * test_subscribe.c — subscriptions of libvigil (client/subscribe.c and the
 * routing of client/client.c), against a fake server in a thread.
 *
 * The fake listens on a loopback port and runs a per-test script on each
 * connection it accepts (scripts get the connection's number, so a script
 * can play a server that drops the first connection and serves the
 * reconnection).  It decodes and encodes with protobuf-c's own allocator
 * and plain malloc, never vg_malloc, so that the allocation-failure test
 * can fail the client's allocations alone.  A script records the first
 * thing it finds wrong in `failure`, checked after joining the thread.
 *
 * The client side records every callback into a log and then compares the
 * log with what must have been delivered: which rows, in which order,
 * exactly once, with which events around resumes.  Every wait is bounded.
 */
#include "vigil.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "vg_alloc.h"
#include "vg_proto.h"

#define ENUM(x) VIGIL__V1__##x
#define STATEMENT "SUBSCRIBE SELECT heart_rate FROM vitals GROUP BY patient"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake server ------------------------------------------------------------ */

typedef struct fake fake_t;
typedef void (*script_fn)(fake_t *f, int fd, int conn);

struct fake {
	int lfd;
	char addr[64];
	pthread_t thread;
	script_fn script;
	int max_connections; /* accepted before the listener closes; 0: one */
	atomic_bool stop;
	atomic_int served;
	uint8_t *in;
	size_t in_len, in_cap;
	char failure[512];
	bool lenient; /* a client that goes away early is no failure (out of memory) */
};

static void srv_fail(fake_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void srv_fail(fake_t *f, const char *fmt, ...)
{
	if (f->failure[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->failure, sizeof f->failure, fmt, ap);
	va_end(ap);
}

static void srv_send(fake_t *f, int fd, const Vigil__V1__Envelope *env)
{
	size_t n = vigil__v1__envelope__get_packed_size(env);
	uint8_t *buf = malloc(4 + n);
	if (!buf) {
		srv_fail(f, "out of memory");
		return;
	}
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	vigil__v1__envelope__pack(env, buf + 4);
	for (size_t off = 0; off < 4 + n;) {
		ssize_t w = send(fd, buf + off, 4 + n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break; /* the client went away; its side of the test says so */
		off += (size_t)w;
	}
	free(buf);
}

/* The next frame from the client; NULL at EOF or after timeout_ms of silence. */
static Vigil__V1__Envelope *srv_read(fake_t *f, int fd, int timeout_ms)
{
	for (;;) {
		if (f->in_len >= 4) {
			size_t n = (size_t)f->in[0] << 24 | (size_t)f->in[1] << 16 |
			           (size_t)f->in[2] << 8 | f->in[3];
			if (f->in_len >= 4 + n) {
				Vigil__V1__Envelope *env =
				    vigil__v1__envelope__unpack(NULL, n, f->in + 4);
				if (!env)
					srv_fail(f, "the client sent an undecodable frame");
				memmove(f->in, f->in + 4 + n, f->in_len - 4 - n);
				f->in_len -= 4 + n;
				return env;
			}
		}
		if (f->in_cap - f->in_len < 4096) {
			uint8_t *p = realloc(f->in, f->in_cap + 65536);
			if (!p)
				return NULL;
			f->in = p;
			f->in_cap += 65536;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0)
			return NULL;
		ssize_t got = recv(fd, f->in + f->in_len, f->in_cap - f->in_len, 0);
		if (got <= 0)
			return NULL;
		f->in_len += (size_t)got;
	}
}

static void srv_free(Vigil__V1__Envelope *env)
{
	if (env)
		vigil__v1__envelope__free_unpacked(env, NULL);
}

static const char *body_name(Vigil__V1__Envelope__BodyCase kind)
{
	const ProtobufCFieldDescriptor *d =
	    protobuf_c_message_descriptor_get_field(&vigil__v1__envelope__descriptor, kind);
	return d ? d->name : "nothing";
}

/* The next frame, which must be of `kind`; NULL (and a failure) if not. */
static Vigil__V1__Envelope *srv_expect(fake_t *f, int fd, Vigil__V1__Envelope__BodyCase kind)
{
	Vigil__V1__Envelope *env = srv_read(f, fd, 3000);
	if (!env && f->lenient)
		return NULL;
	if (!env || env->body_case != kind) {
		srv_fail(f, "expected %s, got %s", body_name(kind),
		         env ? body_name(env->body_case) : "nothing");
		srv_free(env);
		return NULL;
	}
	return env;
}

static bool srv_hello(fake_t *f, int fd)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_HELLO));
	if (!env)
		return false;
	Vigil__V1__HelloOk ok = VIGIL__V1__HELLO_OK__INIT;
	ok.protocol_version = 1;
	ok.server_version = "fake-sub";
	Vigil__V1__Envelope out = VIGIL__V1__ENVELOPE__INIT;
	out.id = env->id;
	out.body_case = ENUM(ENVELOPE__BODY_HELLO_OK);
	out.hello_ok = &ok;
	srv_send(f, fd, &out);
	srv_free(env);
	return true;
}

/* Reads a Subscribe and checks its statement and SINCE; returns its id
 * (0 on failure). */
static uint64_t srv_subscribe(fake_t *f, int fd, bool has_since, int64_t since)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_SUBSCRIBE));
	if (!env)
		return 0;
	const Vigil__V1__Subscribe *s = env->subscribe;
	if (strcmp(s->statement, STATEMENT))
		srv_fail(f, "statement '%s'", s->statement);
	if (s->has_since != has_since || (has_since && s->since != since))
		srv_fail(f, "Subscribe with has_since %d, since %lld; expected %d, %lld",
		         s->has_since, (long long)s->since, has_since, (long long)since);
	uint64_t id = env->id;
	srv_free(env);
	return id;
}

static void send_ok(fake_t *f, int fd, uint64_t id)
{
	static char *keys[] = {"patient"};
	static char *cols[] = {"time", "heart_rate"};
	static Vigil__V1__ColumnType types[] = {ENUM(COLUMN_TYPE__COLUMN_TYPE_TIME),
	                                        ENUM(COLUMN_TYPE__COLUMN_TYPE_FLOAT)};
	Vigil__V1__SubscribeOk ok = VIGIL__V1__SUBSCRIBE_OK__INIT;
	ok.name = "vitals";
	ok.n_tag_keys = 1;
	ok.tag_keys = keys;
	ok.n_columns = 2;
	ok.columns = cols;
	ok.n_types = 2;
	ok.types = types;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_SUBSCRIBE_OK);
	env.subscribe_ok = &ok;
	srv_send(f, fd, &env);
}

/* A push of n rows for patient `patient`: times[i], heart_rate 10 * times[i]. */
static void send_push(fake_t *f, int fd, uint64_t id, const char *patient, size_t n,
                      const int64_t *times, bool update)
{
	double values[64];
	for (size_t i = 0; i < n; i++)
		values[i] = 10.0 * (double)times[i];
	Vigil__V1__Column col = VIGIL__V1__COLUMN__INIT;
	col.n_floats = n;
	col.floats = values;
	Vigil__V1__Column *colp = &col;
	Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
	rows.n_times = n;
	rows.times = (int64_t *)times;
	rows.n_columns = 1;
	rows.columns = &colp;
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = "patient";
	tag.value = (char *)patient;
	Vigil__V1__Tag *tagp = &tag;
	Vigil__V1__Push push = VIGIL__V1__PUSH__INIT;
	push.n_tags = 1;
	push.tags = &tagp;
	push.rows = &rows;
	push.update = update;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_PUSH);
	env.push = &push;
	srv_send(f, fd, &env);
}

#define PUSH(f, fd, id, patient, update, ...)                                                      \
	do {                                                                                       \
		const int64_t t_[] = {__VA_ARGS__};                                                \
		send_push(f, fd, id, patient, sizeof t_ / sizeof t_[0], t_, update);               \
	} while (0)

static void send_error(fake_t *f, int fd, uint64_t id, Vigil__V1__ErrorCode code,
                       const char *message, uint32_t line, uint32_t column)
{
	Vigil__V1__Error e = VIGIL__V1__ERROR__INIT;
	e.code = code;
	e.message = (char *)message;
	e.line = line;
	e.column = column;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_ERROR);
	env.error = &e;
	srv_send(f, fd, &env);
}

/* SubscriptionEnd, with an error when code is not UNSPECIFIED. */
static void send_end(fake_t *f, int fd, uint64_t id, Vigil__V1__ErrorCode code)
{
	Vigil__V1__Error e = VIGIL__V1__ERROR__INIT;
	e.code = code;
	e.message = "output buffer of 1024 bytes overflowed";
	Vigil__V1__SubscriptionEnd end = VIGIL__V1__SUBSCRIPTION_END__INIT;
	end.error = code ? &e : NULL;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_SUBSCRIPTION_END);
	env.subscription_end = &end;
	srv_send(f, fd, &env);
}

/* Reads an Unsubscribe of subscription `sub` and ends it. */
static void srv_unsubscribe(fake_t *f, int fd, uint64_t sub)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_UNSUBSCRIBE));
	if (!env)
		return;
	if (env->unsubscribe->subscription_id != sub)
		srv_fail(f, "Unsubscribe of %llu, expected %llu",
		         (unsigned long long)env->unsubscribe->subscription_id,
		         (unsigned long long)sub);
	send_end(f, fd, sub, 0);
	srv_free(env);
}

static void send_pong(fake_t *f, int fd, const Vigil__V1__Envelope *ping)
{
	Vigil__V1__Pong pong = VIGIL__V1__PONG__INIT;
	pong.nonce = ping->ping->nonce;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = ping->id;
	env.body_case = ENUM(ENVELOPE__BODY_PONG);
	env.pong = &pong;
	srv_send(f, fd, &env);
}

/* Answers pings until the client closes (or 3 s of silence pass): all it
 * sent is read first, so closing our side never resets data it has not
 * read. */
static void srv_drain(fake_t *f, int fd)
{
	Vigil__V1__Envelope *env;
	while ((env = srv_read(f, fd, 3000))) {
		if (env->body_case == ENUM(ENVELOPE__BODY_PING))
			send_pong(f, fd, env);
		srv_free(env);
	}
}

static void *fake_main(void *arg)
{
	fake_t *f = arg;
	int limit = f->max_connections ? f->max_connections : 1;
	while (!atomic_load(&f->stop) && atomic_load(&f->served) < limit) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		f->in_len = 0;
		int conn = atomic_fetch_add(&f->served, 1);
		if (conn + 1 == limit) {
			/* The last one: later connections are refused. */
			close(f->lfd);
			f->lfd = -1;
		}
		f->script(f, fd, conn);
		close(fd);
	}
	return NULL;
}

static void fake_start(fake_t *f, script_fn script)
{
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(f->lfd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(f->lfd, 8), 0);
	socklen_t len = sizeof sa;
	cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	f->script = script;
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	if (f->lfd >= 0)
		close(f->lfd);
	free(f->in);
	cr_assert_str_empty(f->failure, "fake server: %s", f->failure);
}

static vg_client_t *connect_to(fake_t *f)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect(f->addr, 3000, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "connect: %s", err);
	return c;
}

/* ---- the client's log of events ---------------------------------------------------- */

typedef struct rec {
	vg_sub_event_kind_t kind;
	uint64_t sub_id;
	char patient[16];
	int64_t times[64];
	size_t n;
	bool update;
	int code;
	uint64_t first_row;
} rec_t;

typedef struct event_log {
	rec_t recs[64];
	size_t n;
	vg_client_t *client;
	size_t unsubscribe_after; /* > 0: the callback unsubscribes after this many rows events */
	size_t rows_events;
	char problem[256];
} event_log_t;

static void on_event(void *ctx, const vg_sub_event_t *ev)
{
	event_log_t *log = ctx;
	if (log->n == sizeof log->recs / sizeof log->recs[0])
		return;
	rec_t *r = &log->recs[log->n++];
	memset(r, 0, sizeof *r);
	r->kind = ev->kind;
	r->sub_id = ev->sub_id;
	r->code = ev->code;
	if (!ev->message && !log->problem[0])
		snprintf(log->problem, sizeof log->problem, "event %d without a message", ev->kind);
	if (ev->kind != VG_SUB_ROWS) {
		if (ev->set && !log->problem[0])
			snprintf(log->problem, sizeof log->problem, "event %d with a set",
			         ev->kind);
		return;
	}
	const vg_result_set_t *s = ev->set;
	r->update = ev->update;
	r->first_row = vg_result_first_row(s);
	snprintf(r->patient, sizeof r->patient, "%s", vg_result_tag_value(s, 0));
	if (strcmp(vg_result_name(s), "vitals") || strcmp(vg_result_tag_key(s, 0), "patient") ||
	    vg_result_column_count(s) != 2 || strcmp(vg_result_column_name(s, 1), "heart_rate") ||
	    !vg_result_has_time(s))
		snprintf(log->problem, sizeof log->problem, "a set of the wrong shape");
	for (size_t i = 0; i < vg_result_row_count(s) && r->n < 64; i++) {
		double v = -1;
		int64_t t = vg_result_time(s, i);
		if (!vg_result_float(s, i, 1, &v) || v != 10.0 * (double)t)
			snprintf(log->problem, sizeof log->problem,
			         "row %zu: value %g at time %lld", i, v, (long long)t);
		r->times[r->n++] = t;
	}
	if (++log->rows_events == log->unsubscribe_after)
		cr_assert_eq(vg_client_unsubscribe(log->client, ev->sub_id), 0);
	/* Re-entering the dispatcher is refused. */
	if (vg_client_process(log->client, 0) != VG_EINVAL && !log->problem[0])
		snprintf(log->problem, sizeof log->problem,
		         "vg_client_process() in a callback ran");
}

/* Processes until the log holds `want` events or `ms` pass. */
static void run_until(vg_client_t *c, event_log_t *log, size_t want, int ms)
{
	int64_t end = now_ms() + ms;
	while (log->n < want && now_ms() < end) {
		int rc = vg_client_process(c, 50);
		cr_assert_geq(rc, 0, "process: %s (%s)", vg_strerror(rc), vg_client_errstr(c));
	}
	cr_assert_str_empty(log->problem, "%s", log->problem);
}

/* Checks that event i delivered rows of `patient` at exactly these times. */
static void check_rows(const event_log_t *log, size_t i, const char *patient, bool update, size_t n,
                       const int64_t *times)
{
	cr_assert_lt(i, log->n, "only %zu events", log->n);
	const rec_t *r = &log->recs[i];
	cr_assert_eq(r->kind, VG_SUB_ROWS, "event %zu is %d", i, r->kind);
	cr_assert_str_eq(r->patient, patient, "event %zu", i);
	cr_assert_eq(r->update, update, "event %zu", i);
	cr_assert_eq(r->n, n, "event %zu: %zu rows, expected %zu", i, r->n, n);
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(r->times[k], times[k], "event %zu row %zu", i, k);
}

#define CHECK_ROWS(log, i, patient, update, ...)                                                   \
	do {                                                                                       \
		const int64_t t_[] = {__VA_ARGS__};                                                \
		check_rows(log, i, patient, update, sizeof t_ / sizeof t_[0], t_);                 \
	} while (0)

/* ---- delivery ----------------------------------------------------------------------- */

static void script_rows(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p1", false, 1, 2);
	PUSH(f, fd, id, "p2", false, 3);
	PUSH(f, fd, id, "p1", true, 2);
	Vigil__V1__Envelope *un = srv_expect(f, fd, ENUM(ENVELOPE__BODY_UNSUBSCRIBE));
	if (un && un->unsubscribe->subscription_id != id)
		srv_fail(f, "Unsubscribe of the wrong subscription");
	srv_free(un);
	PUSH(f, fd, id, "p1", false, 9); /* was on its way: never delivered */
	send_end(f, fd, id, 0);
	srv_drain(f, fd);
}

Test(subscribe, rows_arrive_in_order_through_the_callback)
{
	fake_t f = {0};
	fake_start(&f, script_rows);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id = 0;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0, "%s",
	             vg_client_errstr(c));
	cr_assert_neq(id, 0);
	cr_assert_eq(vg_client_subscriptions(c), 1);
	cr_assert_geq(vg_client_fd(c), 0);
	const vg_result_set_t *shape = vg_client_subscription_shape(c, id);
	cr_assert_not_null(shape);
	cr_assert_str_eq(vg_result_name(shape), "vitals");
	cr_assert_eq(vg_result_tag_count(shape), 1);
	cr_assert_str_eq(vg_result_tag_key(shape, 0), "patient");
	cr_assert_eq(vg_result_column_count(shape), 2);
	cr_assert_eq(vg_result_column_type(shape, 0), VG_COLUMN_TIME);
	cr_assert_eq(vg_result_column_type(shape, 1), VG_COLUMN_FLOAT);
	cr_assert_eq(vg_result_row_count(shape), 0);
	cr_assert_eq(log.n, 0, "no callback inside vg_client_subscribe()");

	run_until(c, &log, 3, 3000);
	cr_assert_eq(log.n, 3);
	CHECK_ROWS(&log, 0, "p1", false, 1, 2);
	CHECK_ROWS(&log, 1, "p2", false, 3);
	CHECK_ROWS(&log, 2, "p1", true, 2);
	cr_assert_eq(log.recs[0].sub_id, id);
	cr_assert_eq(log.recs[0].first_row, 0);
	cr_assert_eq(log.recs[1].first_row, 2);
	cr_assert_eq(log.recs[2].first_row, 3);

	cr_assert_eq(vg_client_unsubscribe(c, id), 0);
	cr_assert_eq(vg_client_subscriptions(c), 0);
	cr_assert_null(vg_client_subscription_shape(c, id));
	cr_assert_eq(vg_client_unsubscribe(c, id), VG_ENOTFOUND);
	/* The push behind the Unsubscribe and the SubscriptionEnd are dropped. */
	for (int i = 0; i < 4; i++)
		cr_assert_geq(vg_client_process(c, 50), 0);
	cr_assert_eq(log.n, 3, "a callback after vg_client_unsubscribe()");
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_query_between(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	/* The answer, with pushes between its frames. */
	static char *cols[] = {"time", "v"};
	static Vigil__V1__ColumnType types[] = {ENUM(COLUMN_TYPE__COLUMN_TYPE_TIME),
	                                        ENUM(COLUMN_TYPE__COLUMN_TYPE_FLOAT)};
	Vigil__V1__ResultSet rs = VIGIL__V1__RESULT_SET__INIT;
	rs.name = "cpu";
	rs.n_columns = rs.n_types = 2;
	rs.columns = cols;
	rs.types = types;
	rs.has_time = true;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = q->id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_SET);
	env.result_set = &rs;
	srv_send(f, fd, &env);
	PUSH(f, fd, id, "p1", false, 5);
	int64_t t[] = {100};
	double v[] = {0.5};
	Vigil__V1__Column col = VIGIL__V1__COLUMN__INIT;
	col.n_floats = 1;
	col.floats = v;
	Vigil__V1__Column *colp = &col;
	Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
	rows.n_times = 1;
	rows.times = t;
	rows.n_columns = 1;
	rows.columns = &colp;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_ROWS);
	env.result_rows = &rows;
	srv_send(f, fd, &env);
	PUSH(f, fd, id, "p2", false, 6);
	Vigil__V1__ResultEnd end = VIGIL__V1__RESULT_END__INIT;
	end.rows = 1;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_END);
	env.result_end = &end;
	srv_send(f, fd, &env);
	PUSH(f, fd, id, "p1", false, 7); /* after the answer, in the same segment */
	srv_free(q);
	srv_drain(f, fd);
}

Test(subscribe, pushes_during_a_query_wait_for_process)
{
	fake_t f = {0};
	fake_start(&f, script_query_between);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0, "%s",
	             vg_client_errstr(c));
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT v FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(log.n, 0, "a callback ran inside vg_client_query()");
	cr_assert_eq(vg_result_set_count(r), 1);
	cr_assert_eq(vg_result_row_count(vg_result_set(r, 0)), 1);
	vg_result_free(r);
	cr_assert(vg_client_has_queued(c), "the pushes read by the query are not reported");
	/* The two queued pushes need no input: a zero timeout delivers them. */
	int rc = vg_client_process(c, 0);
	cr_assert_geq(rc, 2, "process: %d", rc);
	run_until(c, &log, 3, 3000);
	cr_assert_eq(log.n, 3);
	CHECK_ROWS(&log, 0, "p1", false, 5);
	CHECK_ROWS(&log, 1, "p2", false, 6);
	CHECK_ROWS(&log, 2, "p1", false, 7);
	cr_assert_not(vg_client_has_queued(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_quiet(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (id)
		send_ok(f, fd, id);
	srv_drain(f, fd);
}

Test(subscribe, process_with_a_zero_timeout_returns_at_once)
{
	fake_t f = {0};
	fake_start(&f, script_quiet);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	int64_t start = now_ms();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(vg_client_process(c, 0), 0);
	int64_t took = now_ms() - start;
	cr_assert_lt(took, 100, "100 calls with timeout 0 took %lld ms", (long long)took);
	start = now_ms();
	cr_assert_eq(vg_client_process(c, 150), 0);
	took = now_ms() - start;
	cr_assert(took >= 140 && took < 1500, "a 150 ms wait took %lld ms", (long long)took);
	cr_assert_eq(log.n, 0);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_refuse(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (id)
		send_error(f, fd, id, ENUM(ERROR_CODE__ERROR_SYNTAX), "expected FROM, found 'FORM'",
		           1, 31);
	Vigil__V1__Envelope *ping = srv_expect(f, fd, ENUM(ENVELOPE__BODY_PING));
	if (ping)
		send_pong(f, fd, ping);
	srv_free(ping);
	srv_drain(f, fd);
}

Test(subscribe, a_refused_statement_is_an_error_and_calls_nothing)
{
	fake_t f = {0};
	fake_start(&f, script_refuse);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id = 77;
	int rc = vg_client_subscribe(c, STATEMENT, on_event, &log, &id);
	cr_assert_eq(rc, VG_ESYNTAX, "%s", vg_strerror(rc));
	cr_assert_str_eq(vg_client_errstr(c), "line 1, column 31: expected FROM, found 'FORM'");
	cr_assert_eq(id, 77, "a failed call must not set the id");
	cr_assert_eq(vg_client_subscriptions(c), 0);
	cr_assert_eq(vg_client_process(c, 50), 0);
	cr_assert_eq(log.n, 0);
	cr_assert_eq(vg_client_ping(c), 0, "the connection must stay usable");
	cr_assert_eq(vg_client_subscribe(c, NULL, on_event, &log, &id), VG_EINVAL);
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, NULL, &log, &id), VG_EINVAL);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_three_pushes(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p1", false, 1);
	PUSH(f, fd, id, "p1", false, 2);
	PUSH(f, fd, id, "p1", false, 3);
	srv_unsubscribe(f, fd, id);
	srv_drain(f, fd);
}

Test(subscribe, unsubscribing_in_the_callback_stops_delivery_at_once)
{
	fake_t f = {0};
	fake_start(&f, script_three_pushes);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c, .unsubscribe_after = 1};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	/* All three pushes are usually queued by then: the other two must
	 * still not be delivered. */
	usleep(100 * 1000);
	run_until(c, &log, 2, 500);
	cr_assert_eq(log.n, 1, "%zu events after unsubscribing", log.n);
	CHECK_ROWS(&log, 0, "p1", false, 1);
	cr_assert_eq(vg_client_subscriptions(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

/* ---- resuming ---------------------------------------------------------------------- */

/*
 * Connection 0 delivers p1 at 10, 20 and p2 at 15, then drops.  The
 * reconnection must resume SINCE 15 (the earliest of the groups' latest
 * times) and the replayed rows at or before each group's own latest time
 * must not be delivered again; a group new since then gets all its rows.
 */
static void script_drop_and_resume(fake_t *f, int fd, int conn)
{
	if (!srv_hello(f, fd))
		return;
	if (conn == 0) {
		uint64_t id = srv_subscribe(f, fd, false, 0);
		if (!id)
			return;
		send_ok(f, fd, id);
		PUSH(f, fd, id, "p1", false, 10, 20);
		PUSH(f, fd, id, "p2", false, 15);
		return; /* closes: everything the client sent was read */
	}
	uint64_t id = srv_subscribe(f, fd, true, 15);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p2", false, 15);         /* seen */
	PUSH(f, fd, id, "p1", false, 15, 20, 30); /* 15 and 20 seen */
	PUSH(f, fd, id, "p2", false, 25);
	PUSH(f, fd, id, "p3", false, 16); /* a new group: all of it */
	PUSH(f, fd, id, "p1", true, 20);  /* a correction: always delivered */
	srv_drain(f, fd);
}

Test(subscribe, a_lost_connection_resumes_without_gap_or_duplicate)
{
	fake_t f = {.max_connections = 2};
	fake_start(&f, script_drop_and_resume);
	vg_client_t *c = connect_to(&f);
	cr_assert_eq(vg_client_set_reconnect(c, 5, 10, 100), 0);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	int old_fd = vg_client_fd(c);
	run_until(c, &log, 8, 5000);
	cr_assert_eq(log.n, 8, "%zu events", log.n);
	CHECK_ROWS(&log, 0, "p1", false, 10, 20);
	CHECK_ROWS(&log, 1, "p2", false, 15);
	cr_assert_eq(log.recs[2].kind, VG_SUB_RESUMING);
	cr_assert_eq(log.recs[2].code, VG_ECLOSED, "%s", vg_strerror(log.recs[2].code));
	cr_assert_eq(log.recs[3].kind, VG_SUB_RESUMED);
	CHECK_ROWS(&log, 4, "p1", false, 30);
	CHECK_ROWS(&log, 5, "p2", false, 25);
	CHECK_ROWS(&log, 6, "p3", false, 16);
	CHECK_ROWS(&log, 7, "p1", true, 20);
	for (size_t i = 0; i < log.n; i++)
		cr_assert_eq(log.recs[i].sub_id, id, "the id must survive the resume");
	cr_assert_eq(log.recs[4].first_row, 3);
	cr_assert_geq(vg_client_fd(c), 0);
	(void)old_fd; /* may or may not be reused by the kernel */
	cr_assert_not(vg_client_is_closed(c));
	cr_assert_eq(vg_client_subscriptions(c), 1);
	vg_client_close(c);
	fake_stop(&f);
}

/* A server that cannot replay the statement with SINCE (windowed
 * subscriptions today) refuses the resume: the client resubscribes live
 * only, says so, and still never delivers a window twice. */
static void script_no_since(fake_t *f, int fd, int conn)
{
	if (!srv_hello(f, fd))
		return;
	if (conn == 0) {
		uint64_t id = srv_subscribe(f, fd, false, 0);
		if (!id)
			return;
		send_ok(f, fd, id);
		PUSH(f, fd, id, "p1", false, 60, 120);
		return;
	}
	uint64_t id = srv_subscribe(f, fd, true, 120);
	if (!id)
		return;
	send_error(f, fd, id, ENUM(ERROR_CODE__ERROR_INVALID),
	           "SINCE is not available for windowed subscriptions", 0, 0);
	id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p1", false, 120, 180); /* 120 was delivered */
	srv_drain(f, fd);
}

Test(subscribe, a_refused_since_resumes_live_and_says_rows_may_be_missing)
{
	fake_t f = {.max_connections = 2};
	fake_start(&f, script_no_since);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	run_until(c, &log, 4, 3000);
	cr_assert_eq(log.n, 4, "%zu events", log.n);
	CHECK_ROWS(&log, 0, "p1", false, 60, 120);
	cr_assert_eq(log.recs[1].kind, VG_SUB_RESUMING);
	cr_assert_eq(log.recs[2].kind, VG_SUB_RESUMED);
	cr_assert_eq(log.recs[2].code, VG_EINVAL, "a possible gap must be reported");
	CHECK_ROWS(&log, 3, "p1", false, 180);
	cr_assert_eq(vg_client_subscriptions(c), 1);
	vg_client_close(c);
	fake_stop(&f);
}

/* OVERFLOW ends the subscription on the server; the client resumes on the
 * same connection. */
static void script_overflow(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p1", false, 1, 2);
	send_end(f, fd, id, ENUM(ERROR_CODE__ERROR_OVERFLOW));
	uint64_t id2 = srv_subscribe(f, fd, true, 2);
	if (!id2)
		return;
	if (id2 == id)
		srv_fail(f, "the resume reused the id %llu", (unsigned long long)id);
	send_ok(f, fd, id2);
	PUSH(f, fd, id2, "p1", false, 2, 3);
	srv_unsubscribe(f, fd, id2);
	srv_drain(f, fd);
}

Test(subscribe, an_overflow_resumes_since_the_last_row)
{
	fake_t f = {0};
	fake_start(&f, script_overflow);
	vg_client_t *c = connect_to(&f);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	run_until(c, &log, 4, 3000);
	cr_assert_eq(log.n, 4, "%zu events", log.n);
	CHECK_ROWS(&log, 0, "p1", false, 1, 2);
	cr_assert_eq(log.recs[1].kind, VG_SUB_RESUMING);
	cr_assert_eq(log.recs[1].code, VG_EOVERFLOW);
	cr_assert_eq(log.recs[2].kind, VG_SUB_RESUMED);
	CHECK_ROWS(&log, 3, "p1", false, 3);
	cr_assert_eq(vg_client_unsubscribe(c, id), 0, "the id must survive the resume");
	vg_client_close(c);
	fake_stop(&f);
}

/*
 * The client's own queue overflows while it reads a query's answer: the
 * subscription is unsubscribed at once, its queued rows dropped, and the
 * next vg_client_process() resumes it SINCE its last delivered row.
 */
static void script_local_overflow(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (!id)
		return;
	send_ok(f, fd, id);
	PUSH(f, fd, id, "p1", false, 1);
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	for (int64_t t = 2; t <= 20; t++)
		send_push(f, fd, id, "p1", 1, &t, false);
	Vigil__V1__ResultEnd end = VIGIL__V1__RESULT_END__INIT;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = q->id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_END);
	env.result_end = &end;
	srv_send(f, fd, &env);
	srv_free(q);
	srv_unsubscribe(f, fd, id);
	uint64_t id2 = srv_subscribe(f, fd, true, 1);
	if (!id2)
		return;
	send_ok(f, fd, id2);
	int64_t times[20];
	for (int64_t t = 1; t <= 20; t++)
		times[t - 1] = t;
	send_push(f, fd, id2, "p1", 20, times, false);
	srv_drain(f, fd);
}

Test(subscribe, a_full_queue_resumes_instead_of_growing)
{
	fake_t f = {0};
	fake_start(&f, script_local_overflow);
	vg_client_t *c = connect_to(&f);
	cr_assert_eq(vg_client_set_queue_limit(c, 300), 0); /* a few pushes */
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	run_until(c, &log, 1, 3000);
	CHECK_ROWS(&log, 0, "p1", false, 1);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT v FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	vg_result_free(r);
	run_until(c, &log, 4, 3000);
	cr_assert_eq(log.n, 4, "%zu events", log.n);
	cr_assert_eq(log.recs[1].kind, VG_SUB_RESUMING);
	cr_assert_eq(log.recs[1].code, VG_EOVERFLOW);
	cr_assert_eq(log.recs[2].kind, VG_SUB_RESUMED);
	CHECK_ROWS(&log, 3, "p1", false, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
	           19, 20);
	vg_client_close(c);
	fake_stop(&f);
}

/* Connection 0 drops after SubscribeOk; nothing listens any more. */
static void script_drop_for_good(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	uint64_t id = srv_subscribe(f, fd, false, 0);
	if (id)
		send_ok(f, fd, id);
}

Test(subscribe, reconnecting_gives_up_after_the_attempts_and_ends_the_subscription)
{
	fake_t f = {0};
	fake_start(&f, script_drop_for_good);
	vg_client_t *c = connect_to(&f);
	cr_assert_eq(vg_client_set_reconnect(c, 3, 20, 40), 0);
	cr_assert_eq(vg_client_set_reconnect(c, 3, 0, 40), VG_EINVAL);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	int64_t start = now_ms();
	int rc = 0;
	while (rc >= 0 && now_ms() - start < 3000)
		rc = vg_client_process(c, 50);
	int64_t took = now_ms() - start;
	cr_assert_eq(rc, -ECONNREFUSED, "%s: %s", vg_strerror(rc), vg_client_errstr(c));
	/* Attempts at 0, 20 and 40 ms after the loss. */
	cr_assert(took >= 50 && took < 2000, "gave up after %lld ms", (long long)took);
	cr_assert_eq(log.n, 2, "%zu events", log.n);
	cr_assert_eq(log.recs[0].kind, VG_SUB_RESUMING);
	cr_assert_eq(log.recs[1].kind, VG_SUB_END);
	cr_assert_eq(log.recs[1].code, -ECONNREFUSED);
	cr_assert_eq(vg_client_subscriptions(c), 0);
	cr_assert_eq(vg_client_process(c, 0), VG_ECLOSED);
	cr_assert_eq(vg_client_ping(c), VG_ECLOSED);
	cr_assert_eq(vg_client_fd(c), -1);
	vg_client_close(c);
	fake_stop(&f);
}

/* Every connection: SubscribeOk for each Subscribe, then the connection
 * drops — a server that cannot serve the SINCE.  The first one delivers
 * a row. */
static void script_keep_dropping(fake_t *f, int fd, int conn)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_SUBSCRIBE));
	if (!env)
		return;
	send_ok(f, fd, env->id);
	if (conn == 0)
		PUSH(f, fd, env->id, "p1", false, 1);
	srv_free(env);
}

Test(subscribe, a_server_that_keeps_dropping_is_retried_with_backoff_then_given_up)
{
	fake_t f = {.max_connections = 100};
	fake_start(&f, script_keep_dropping);
	vg_client_t *c = connect_to(&f);
	cr_assert_eq(vg_client_set_reconnect(c, 4, 40, 80), 0);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	int64_t start = now_ms();
	int rc = 0;
	while (rc >= 0 && now_ms() - start < 5000)
		rc = vg_client_process(c, 50);
	int64_t took = now_ms() - start;
	cr_assert_eq(rc, VG_ECLOSED, "%s: %s", vg_strerror(rc), vg_client_errstr(c));
	/* Connections succeed, but none proves healthy: 4 attempts, at 0, 40,
	 * 80 and 80 ms after each loss — not a tight loop, and bounded. */
	cr_assert(took >= 180 && took < 3000, "took %lld ms", (long long)took);
	cr_assert_eq(atomic_load(&f.served), 1 + 4, "%d connections", atomic_load(&f.served));
	CHECK_ROWS(&log, 0, "p1", false, 1);
	cr_assert_eq(log.recs[log.n - 1].kind, VG_SUB_END);
	cr_assert_eq(log.recs[log.n - 1].code, VG_ECLOSED);
	cr_assert_eq(vg_client_subscriptions(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

/* Every Subscribe is ended with OVERFLOW before any row. */
static void script_overflow_always(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *env;
	int subscribes = 0;
	while ((env = srv_read(f, fd, 2000))) {
		if (env->body_case == ENUM(ENVELOPE__BODY_SUBSCRIBE)) {
			send_ok(f, fd, env->id);
			if (subscribes++ == 0)
				PUSH(f, fd, env->id, "p1", false, 1);
			else if (!env->subscribe->has_since || env->subscribe->since != 1)
				srv_fail(f, "resume without SINCE 1");
			send_end(f, fd, env->id, ENUM(ERROR_CODE__ERROR_OVERFLOW));
		}
		srv_free(env);
	}
	atomic_store(&f->served, 1000 + subscribes);
}

Test(subscribe, overflows_without_progress_back_off_and_end_the_subscription)
{
	fake_t f = {0};
	fake_start(&f, script_overflow_always);
	vg_client_t *c = connect_to(&f);
	cr_assert_eq(vg_client_set_reconnect(c, 3, 30, 1000), 0);
	event_log_t log = {.client = c};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(c, STATEMENT, on_event, &log, &id), 0);
	int64_t start = now_ms();
	while (vg_client_subscriptions(c) && now_ms() - start < 5000)
		cr_assert_geq(vg_client_process(c, 50), 0);
	int64_t took = now_ms() - start;
	/* The row resets the count; then resumes at once, after 30 and 60 ms;
	 * the fourth interruption in a row without a row ends it. */
	cr_assert(took >= 80 && took < 3000, "took %lld ms", (long long)took);
	CHECK_ROWS(&log, 0, "p1", false, 1);
	const rec_t *last = &log.recs[log.n - 1];
	cr_assert_eq(last->kind, VG_SUB_END);
	cr_assert_eq(last->code, VG_EOVERFLOW);
	size_t resumed = 0;
	for (size_t i = 0; i < log.n; i++)
		resumed += log.recs[i].kind == VG_SUB_RESUMED;
	cr_assert_eq(resumed, 3, "%zu resumes", resumed);
	vg_client_close(c);
	fake_stop(&f);
	cr_assert_eq(atomic_load(&f.served), 1000 + 4, "%d Subscribes",
	             atomic_load(&f.served) - 1000);
}

/* ---- allocation failures ------------------------------------------------------------ */

/* Serves any number of Subscribes, each with the rows at 1 and 2 from its
 * SINCE on, until the client goes away. */
static void script_serve_all(fake_t *f, int fd, int conn)
{
	(void)conn;
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *env;
	while ((env = srv_read(f, fd, 3000))) {
		if (env->body_case == ENUM(ENVELOPE__BODY_SUBSCRIBE)) {
			send_ok(f, fd, env->id);
			int64_t from = env->subscribe->has_since ? env->subscribe->since : 0;
			for (int64_t t = 1; t <= 2; t++)
				if (t >= from)
					send_push(f, fd, env->id, "p1", 1, &t, false);
		} else if (env->body_case == ENUM(ENVELOPE__BODY_UNSUBSCRIBE)) {
			send_end(f, fd, env->unsubscribe->subscription_id, 0);
		} else {
			srv_fail(f, "unexpected %s", body_name(env->body_case));
		}
		srv_free(env);
	}
}

static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

Test(subscribe, every_allocation_failure_is_survived_without_loss_or_duplicate)
{
	fake_t f = {.max_connections = 100000, .lenient = true};
	fake_start(&f, script_serve_all);
	bool failed = true;
	long k;
	for (k = 0; failed && k < 5000; k++) {
		vg_client_t *c = NULL;
		char err[VG_CLIENT_ERRLEN];
		event_log_t log = {0};
		uint64_t id;
		vg_alloc_fail_after(k);
		int rc = vg_client_connect(f.addr, 3000, &c, err, sizeof err);
		int src = rc ? rc : vg_client_subscribe(c, STATEMENT, on_event, &log, &id);
		log.client = c;
		int prc = 0;
		for (int i = 0; !src && i < 3; i++)
			prc = vg_client_process(c, 20);
		vg_alloc_fail_after(-1);
		failed = rc || src || prc < 0 || log.n != 2;
		cr_assert(rc == 0 || rc == VG_ENOMEM, "k=%ld connect: %s", k, err);
		cr_assert(src == 0 || src == VG_ENOMEM, "k=%ld subscribe: %s", k, vg_strerror(src));
		cr_assert(prc >= 0 || prc == VG_ENOMEM, "k=%ld process: %s", k, vg_strerror(prc));
		if (!rc && !src) {
			/* Memory is back: whatever failed is resumed, and the rows
			 * come exactly once. */
			int64_t end = now_ms() + 3000;
			size_t rows = 0;
			while (now_ms() < end) {
				rows = 0;
				for (size_t i = 0; i < log.n; i++)
					if (log.recs[i].kind == VG_SUB_ROWS)
						rows += log.recs[i].n;
				if (rows >= 2)
					break;
				cr_assert_geq(vg_client_process(c, 20), 0, "k=%ld", k);
			}
			int64_t next = 1;
			for (size_t i = 0; i < log.n; i++) {
				const rec_t *r = &log.recs[i];
				cr_assert_neq(r->kind, VG_SUB_END, "k=%ld: ended (%s)", k,
				              vg_strerror(r->code));
				for (size_t j = 0; r->kind == VG_SUB_ROWS && j < r->n; j++)
					cr_assert_eq(r->times[j], next++, "k=%ld: event %zu", k, i);
			}
			cr_assert_eq(next, 3, "k=%ld: rows up to %lld", k, (long long)next - 1);
		}
		vg_client_close(c);
		assert_no_leaks();
	}
	cr_assert_gt(k, 10, "only %ld allocations", k);
	cr_assert_not(failed, "still failing after %ld allocations", k);
	fake_stop(&f);
}
