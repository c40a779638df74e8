/*
 * test_limits.c — clients that hold the server's memory or descriptors
 * without doing work: a frame started and never finished is cut off after
 * --frame-timeout, a connection with nothing to do after --idle-timeout
 * (but never one that holds a subscription), and connections that stop
 * reading cannot take the server's buffers past --max-buffered: their
 * subscriptions end with OVERFLOW, reading pauses until the buffers drain,
 * and a client that never reads is closed with a LIMIT error.  Each
 * server runs with short limits given as flags.
 */
#include "harness.h"

#define POINTS 2048 /* per write: a push of ~33 KB */

static void ping_ok(int fd, vg_buf_t *in, uint64_t id)
{
	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	vg_test_send_env(fd, &env);
	Vigil__V1__Envelope *reply = vg_test_recv(fd, in);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_PONG);
	cr_assert_eq(reply->id, id);
	vg_frame_free_envelope(reply);
}

static void expect_body(int fd, vg_buf_t *in, uint64_t id, int body)
{
	Vigil__V1__Envelope *env = vg_test_recv(fd, in);
	cr_assert_not_null(env, "connection closed");
	cr_assert_eq(env->body_case, body, "body %d, want %d: %s", env->body_case, body,
	             env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR ? env->error->message : "");
	cr_assert_eq(env->id, id);
	vg_frame_free_envelope(env);
}

/* A connection after Hello. */
static int open_conn(const vg_test_server_t *srv, vg_buf_t *in)
{
	int fd = vg_test_connect(srv->port);
	vg_test_hello(fd, in);
	return fd;
}

Test(limits, a_half_sent_frame_is_closed_after_the_frame_timeout, .timeout = 60)
{
	vg_test_server_t srv = {0};
	static const char *const args[] = {"--frame-timeout", "1s", "--sync", "none", NULL};
	vg_test_server_start(&srv, args);
	vg_buf_t in = VG_BUF_INIT, in2 = VG_BUF_INIT;
	int fd = open_conn(&srv, &in);
	/* A header announcing 100 bytes, then 10 of them and silence. */
	uint8_t partial[4 + 10] = {0, 0, 0, 100};
	vg_test_send_all(fd, partial, sizeof partial);
	cr_assert_eq(vg_test_expect_error(fd, &in, 0, true, "--frame-timeout"),
	             VIGIL__V1__ERROR_CODE__ERROR_TIMEOUT);
	vg_test_expect_closed(fd);
	close(fd);
	/* Everyone else is served. */
	int other = open_conn(&srv, &in2);
	ping_ok(other, &in2, 2);
	close(other);
	vg_buf_release(&in);
	vg_buf_release(&in2);
	vg_test_server_stop(&srv, true);
}

Test(limits, an_idle_connection_is_closed_and_a_subscriber_is_kept, .timeout = 60)
{
	vg_test_server_t srv = {0};
	static const char *const args[] = {"--idle-timeout", "1s", "--sync", "none", NULL};
	vg_test_server_start(&srv, args);
	vg_buf_t in = VG_BUF_INIT, sin = VG_BUF_INIT, win = VG_BUF_INIT;
	int idle = open_conn(&srv, &in);
	int sub = open_conn(&srv, &sin);
	vg_test_send_subscribe(sub, 5, "SUBSCRIBE SELECT v FROM idle_m", false, 0);
	expect_body(sub, &sin, 5, VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK);
	cr_assert_eq(vg_test_expect_error(idle, &in, 0, true, "--idle-timeout"),
	             VIGIL__V1__ERROR_CODE__ERROR_TIMEOUT);
	vg_test_expect_closed(idle);
	close(idle);
	/* Well past the timeout the subscriber still gets pushes. */
	struct pollfd p = {sub, POLLIN, 0};
	cr_assert_eq(poll(&p, 1, 2500), 0, "the subscriber was sent something while waiting");
	int writer = open_conn(&srv, &win);
	int64_t t[] = {1000};
	double v[] = {42};
	vg_test_send_points(writer, 2, "idle_m", "host", "a", "v", t, v, 1);
	expect_body(writer, &win, 2, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
	expect_body(sub, &sin, 5, VIGIL__V1__ENVELOPE__BODY_PUSH);
	close(writer);
	close(sub);
	vg_buf_release(&in);
	vg_buf_release(&sin);
	vg_buf_release(&win);
	vg_test_server_stop(&srv, true);
}

/* A subscriber on `m` that does not read (until the test says so). */
static int stalled_subscriber(const vg_test_server_t *srv, vg_buf_t *in)
{
	int fd = vg_test_connect(srv->port);
	vg_test_hello(fd, in);
	vg_test_send_subscribe(fd, 3, "SUBSCRIBE SELECT v FROM m", false, 0);
	expect_body(fd, in, 3, VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK);
	return fd;
}

/* Writes POINTS-point batches until the server logs `needle` (each write
 * waits for its acknowledgement or the log line); returns the number of
 * writes sent, *acked how many were acknowledged. */
static uint64_t write_until_logged(vg_test_server_t *srv, int fd, vg_buf_t *in, const char *needle,
                                   uint64_t *acked)
{
	static int64_t t[POINTS];
	static double v[POINTS];
	uint64_t sent = 0;
	*acked = 0;
	for (uint64_t k = 0; k < 400; k++) {
		for (int i = 0; i < POINTS; i++) {
			t[i] = (int64_t)(k * POINTS + (uint64_t)i + 1);
			v[i] = (double)i;
		}
		vg_test_send_points(fd, 100 + k, "m", "host", "a", "v", t, v, POINTS);
		sent++;
		for (int64_t deadline = vg_test_ms() + 10000; vg_test_ms() < deadline;) {
			if (vg_test_server_wait_log(srv, needle, 0))
				return sent;
			struct pollfd p = {fd, POLLIN, 0};
			if (poll(&p, 1, 20) == 1) {
				expect_body(fd, in, 100 + k, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
				++*acked;
				break;
			}
		}
		cr_assert_eq(*acked, sent, "write %lu neither acknowledged nor logged",
		             (unsigned long)k);
	}
	cr_assert_fail("%lu writes and no '%s' in the log", (unsigned long)sent, needle);
	return sent;
}

static void expect_memory_bounded(const vg_test_server_t *srv, long before_kib)
{
#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps freed memory in quarantine: RSS says nothing here. */
	(void)srv;
	(void)before_kib;
#else
	/* Nor under valgrind, whose own memory is in the RSS. */
	if (vg_test_valgrind())
		return;
	long after = vg_test_proc_kib(srv->pid, "VmHWM");
	cr_assert_gt(after, 0);
	/* 400 writes of 33 KB pushes would be 13 MB unbounded; the cap is 1 MiB. */
	cr_assert_lt(after - before_kib, 8 * 1024, "peak RSS grew by %ld KiB", after - before_kib);
#endif
}

Test(limits, buffers_over_the_global_cap_end_subscriptions_with_overflow, .timeout = 60)
{
	vg_test_server_t srv = {0};
	static const char *const args[] = {"--max-buffered", "1048576", "--sync", "none", NULL};
	vg_test_server_start(&srv, args);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	int sub = stalled_subscriber(&srv, &in);
	int writer = open_conn(&srv, &win);
	long before = vg_test_proc_kib(srv.pid, "VmRSS");
	uint64_t acked;
	uint64_t sent = write_until_logged(&srv, writer, &win, "over --max-buffered", &acked);
	/* The subscriber reads now: pushes, then the OVERFLOW end. */
	for (;;) {
		Vigil__V1__Envelope *env = vg_test_recv(sub, &in);
		cr_assert_not_null(env, "closed before the SubscriptionEnd");
		if (env->body_case == VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END) {
			cr_assert_not_null(env->subscription_end->error);
			cr_assert_eq(env->subscription_end->error->code,
			             VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW);
			cr_assert(strstr(env->subscription_end->error->message, "--max-buffered"),
			          "%s", env->subscription_end->error->message);
			vg_frame_free_envelope(env);
			break;
		}
		cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH, "body %d",
		             env->body_case);
		vg_frame_free_envelope(env);
	}
	/* Drained: reading resumed and every write is acknowledged. */
	for (uint64_t k = acked; k < sent; k++)
		expect_body(writer, &win, 100 + k, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
	ping_ok(sub, &in, 9);
	ping_ok(writer, &win, 9);
	expect_memory_bounded(&srv, before);
	close(sub);
	close(writer);
	vg_buf_release(&in);
	vg_buf_release(&win);
	vg_test_server_stop(&srv, true);
}

Test(limits, a_client_that_never_reads_is_closed_at_the_global_cap, .timeout = 60)
{
	vg_test_server_t srv = {0};
	static const char *const args[] = {"--max-buffered", "1048576", "--sync", "none", NULL};
	vg_test_server_start(&srv, args);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	int sub = stalled_subscriber(&srv, &in);
	int writer = open_conn(&srv, &win);
	long before = vg_test_proc_kib(srv.pid, "VmRSS");
	uint64_t acked;
	uint64_t sent = write_until_logged(&srv, writer, &win, "over --max-buffered", &acked);
	/* The subscriber never reads: shed after the grace period. */
	cr_assert(vg_test_server_wait_log(&srv, "left the most output unread", 10000),
	          "the non-reader was not closed");
	for (uint64_t k = acked; k < sent; k++)
		expect_body(writer, &win, 100 + k, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
	ping_ok(writer, &win, 9);
	/* What it reads now ends in EOF, not in more pushes forever. */
	uint8_t buf[65536];
	ssize_t n;
	int64_t deadline = vg_test_ms() + 10000;
	while ((n = recv(sub, buf, sizeof buf, 0)) > 0)
		cr_assert_lt(vg_test_ms(), deadline, "the non-reader's connection stays open");
	cr_assert_eq(n, 0);
	expect_memory_bounded(&srv, before);
	close(sub);
	close(writer);
	vg_buf_release(&in);
	vg_buf_release(&win);
	vg_test_server_stop(&srv, true);
}
