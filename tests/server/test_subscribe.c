/*
 * test_subscribe.c — push subscriptions against a real vigild, over raw
 * frames: matching raw points are pushed after their commit and nothing
 * else; SINCE replays stored points then continues live with no gap and
 * no duplicate; Unsubscribe ends cleanly; a subscriber that never reads
 * gets an OVERFLOW end without slowing another; a thousand subscriptions.
 */
#include "harness.h"

static vg_test_server_t srv;

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	static const char *const args[] = {"--sync", "none", "--max-output", "65536", NULL};
	vg_test_server_start(&srv, args);
}

static void teardown(void) { vg_test_server_stop(&srv, true); }

TestSuite(subscribe, .init = setup, .fini = teardown, .timeout = 60);

static void expect_subscribe_ok(int fd, vg_buf_t *in, uint64_t id)
{
	Vigil__V1__Envelope *env = vg_test_recv(fd, in);
	cr_assert_not_null(env);
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK, "id %lu want %lu body %d: %s", (unsigned long)env->id, (unsigned long)id,
		     env->body_case,
		     env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR ? env->error->message : "");
	cr_assert_eq(env->id, id);
	vg_frame_free_envelope(env);
}

/* Writes one point per patient per time: heart rates as given. */
static void write_hr(int fd, vg_buf_t *in, uint64_t id, const char *patient, const int64_t *times,
		     const double *hr, size_t n)
{
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = (char *)"patient";
	tag.value = (char *)patient;
	Vigil__V1__Tag *tags[] = {&tag};
	static double spo2[1024];
	cr_assert_leq(n, 1024);
	for (size_t i = 0; i < n; i++)
		spo2[i] = 97;
	Vigil__V1__WriteField f1 = VIGIL__V1__WRITE_FIELD__INIT, f2 = VIGIL__V1__WRITE_FIELD__INIT;
	f1.name = (char *)"heart_rate";
	f1.n_values = n;
	f1.values = (double *)hr;
	f2.name = (char *)"spo2";
	f2.n_values = n;
	f2.values = spo2;
	Vigil__V1__WriteField *fields[] = {&f1, &f2};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = (char *)"vitals";
	block.n_tags = 1;
	block.tags = tags;
	block.n_times = n;
	block.times = (int64_t *)times;
	block.n_fields = 2;
	block.fields = fields;
	Vigil__V1__WriteBlock *blocks[] = {&block};
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	write.n_blocks = 1;
	write.blocks = blocks;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &write;
	vg_test_send_env(fd, &env);
	Vigil__V1__Envelope *ok = vg_test_recv(fd, in);
	cr_assert_not_null(ok);
	cr_assert_eq(ok->body_case, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
	vg_frame_free_envelope(ok);
}

/* Reads one Push: returns its rows' times in out (count returned). */
static size_t expect_push(int fd, vg_buf_t *in, uint64_t id, const char *patient, int64_t *out,
			  double *values)
{
	Vigil__V1__Envelope *env = vg_test_recv(fd, in);
	cr_assert_not_null(env, "no push");
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH, "body %d", env->body_case);
	cr_assert_eq(env->id, id);
	Vigil__V1__Push *p = env->push;
	if (patient) {
		cr_assert_eq(p->n_tags, 1);
		cr_assert_str_eq(p->tags[0]->key, "patient");
		cr_assert_str_eq(p->tags[0]->value, patient);
	}
	size_t n = p->rows->n_times;
	for (size_t i = 0; i < n && out; i++) {
		out[i] = p->rows->times[i];
		if (values)
			values[i] = p->rows->columns[0]->floats[i];
	}
	cr_assert_eq(p->update, false);
	vg_frame_free_envelope(env);
	return n;
}

static bool nothing_pending(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, ms) == 0;
}

Test(subscribe, alert_rows_are_pushed_after_commit_and_nothing_else)
{
	int nurse = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(nurse, &in);
	vg_test_hello(ward, &win);
	vg_test_send_subscribe(nurse, 7,
		       "SUBSCRIBE SELECT heart_rate FROM vitals WHERE heart_rate > 120 GROUP BY patient",
		       false, 0);
	expect_subscribe_ok(nurse, &in, 7);
	int64_t t[] = {1000, 2000, 3000, 4000};
	double hr[] = {80, 125, 119, 140};
	write_hr(ward, &win, 1, "p001", t, hr, 4);
	int64_t got[8];
	double v[8];
	size_t n = expect_push(nurse, &in, 7, "p001", got, v);
	cr_assert_eq(n, 2);
	cr_assert_eq(got[0], 2000);
	cr_assert_eq(v[0], 125);
	cr_assert_eq(got[1], 4000);
	cr_assert_eq(v[1], 140);
	/* A calm patient and another measurement push nothing. */
	double calm[] = {70, 71, 72, 73};
	write_hr(ward, &win, 2, "p002", t, calm, 4);
	cr_assert(nothing_pending(nurse, 200));
	/* Unsubscribe ends it cleanly and nothing more comes. */
	Vigil__V1__Unsubscribe un = VIGIL__V1__UNSUBSCRIBE__INIT;
	un.subscription_id = 7;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 8;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_UNSUBSCRIBE;
	env.unsubscribe = &un;
	vg_test_send_env(nurse, &env);
	Vigil__V1__Envelope *end = vg_test_recv(nurse, &in);
	cr_assert_not_null(end);
	cr_assert_eq(end->body_case, VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END);
	cr_assert_eq(end->id, 7);
	cr_assert_null(end->subscription_end->error);
	vg_frame_free_envelope(end);
	write_hr(ward, &win, 3, "p001", t, hr, 4);
	cr_assert(nothing_pending(nurse, 200));
	close(nurse);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}

Test(subscribe, bad_statements_get_positioned_errors)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	vg_test_hello(fd, &in);
	vg_test_send_subscribe(fd, 3, "SUBSCRIBE SELECT x FORM m", false, 0);
	Vigil__V1__Envelope *env = vg_test_recv(fd, &in);
	cr_assert_not_null(env);
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(env->id, 3);
	cr_assert_eq(env->error->code, VIGIL__V1__ERROR_CODE__ERROR_SYNTAX);
	cr_assert_eq(env->error->line, 1);
	cr_assert_gt(env->error->column, 0);
	vg_frame_free_envelope(env);
	vg_test_send_subscribe(fd, 4, "SELECT x FROM m", false, 0);
	env = vg_test_recv(fd, &in);
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(env->error->code, VIGIL__V1__ERROR_CODE__ERROR_INVALID);
	vg_frame_free_envelope(env);
	close(fd);
	vg_buf_release(&in);
}

Test(subscribe, since_replays_then_continues_without_gap_or_duplicate)
{
	int sub = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(sub, &in);
	vg_test_hello(ward, &win);
	int64_t t1[] = {1000, 2000, 3000};
	double hr1[] = {60, 61, 62};
	write_hr(ward, &win, 1, "p001", t1, hr1, 3);
	vg_test_send_subscribe(sub, 9, "SUBSCRIBE SELECT heart_rate FROM vitals SINCE 2000", false, 0);
	expect_subscribe_ok(sub, &in, 9);
	int64_t t2[] = {4000, 5000};
	double hr2[] = {63, 64};
	write_hr(ward, &win, 2, "p001", t2, hr2, 2);
	/* Expect 2000, 3000 (stored) then 4000, 5000 (live), each once. */
	int64_t seen[16];
	size_t total = 0;
	int64_t deadline = vg_test_ms() + 5000;
	while (total < 4 && vg_test_ms() < deadline)
		total += expect_push(sub, &in, 9, NULL, seen + total, NULL);
	cr_assert_eq(total, 4);
	int64_t want[] = {2000, 3000, 4000, 5000};
	for (int i = 0; i < 4; i++)
		cr_assert_eq(seen[i], want[i], "row %d: %ld", i, (long)seen[i]);
	cr_assert(nothing_pending(sub, 200), "a duplicate arrived");
	/* A client killed and back: resumes with SINCE its last time. */
	close(sub);
	int64_t t3[] = {6000};
	double hr3[] = {65};
	write_hr(ward, &win, 3, "p001", t3, hr3, 1);
	sub = vg_test_connect(srv.port);
	vg_buf_release(&in);
	vg_test_hello(sub, &in);
	vg_test_send_subscribe(sub, 10, "SUBSCRIBE SELECT heart_rate FROM vitals", true, 5001);
	expect_subscribe_ok(sub, &in, 10);
	total = expect_push(sub, &in, 10, NULL, seen, NULL);
	cr_assert_eq(total, 1);
	cr_assert_eq(seen[0], 6000);
	close(sub);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}

Test(subscribe, a_subscriber_that_never_reads_overflows_alone)
{
	int lazy = vg_test_connect(srv.port), busy = vg_test_connect(srv.port);
	int ward = vg_test_connect(srv.port);
	vg_buf_t lin = VG_BUF_INIT, bin = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(lazy, &lin);
	vg_test_hello(busy, &bin);
	vg_test_hello(ward, &win);
	vg_test_send_subscribe(lazy, 1, "SUBSCRIBE SELECT heart_rate FROM vitals", false, 0);
	expect_subscribe_ok(lazy, &lin, 1);
	vg_test_send_subscribe(busy, 1, "SUBSCRIBE SELECT heart_rate FROM vitals", false, 0);
	expect_subscribe_ok(busy, &bin, 1);
	/* 400 writes of 1,024 rows: ~6.5 MB of pushes, more than the kernel
	 * buffers between the server and the lazy client hold. */
	static int64_t t[1024];
	static double hr[1024];
	size_t received = 0;
	enum { WRITES = 400, ROWS = 1024 };
	for (int w = 0; w < WRITES; w++) {
		for (int i = 0; i < ROWS; i++) {
			t[i] = (int64_t)w * ROWS + i;
			hr[i] = 100;
		}
		write_hr(ward, &win, (uint64_t)w + 10, "p001", t, hr, ROWS);
		static int64_t got[ROWS];
		received += expect_push(busy, &bin, 1, NULL, got, NULL);
	}
	cr_assert_eq(received, (size_t)WRITES * ROWS, "the busy subscriber got every row");
	/* The lazy one finally reads: pushes, then the overflow end. */
	bool ended = false;
	for (int frames = 0; frames < WRITES + 2 && !ended; frames++) {
		Vigil__V1__Envelope *env = vg_test_recv(lazy, &lin);
		cr_assert_not_null(env);
		if (env->body_case == VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END) {
			cr_assert_not_null(env->subscription_end->error);
			cr_assert_eq(env->subscription_end->error->code,
				     VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW);
			cr_assert(strstr(env->subscription_end->error->message, "overflow"));
			ended = true;
		} else {
			cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH);
		}
		vg_frame_free_envelope(env);
	}
	cr_assert(ended, "no overflow end");
	close(lazy);
	close(busy);
	close(ward);
	vg_buf_release(&lin);
	vg_buf_release(&bin);
	vg_buf_release(&win);
}

Test(subscribe, a_thousand_subscriptions_on_one_and_many_connections)
{
	enum { CONNS = 10, PER = 100 };
	int fds[CONNS + 1];
	vg_buf_t ins[CONNS + 1];
	for (int c = 0; c <= CONNS; c++) {
		fds[c] = vg_test_connect(srv.port);
		vg_buf_init(&ins[c]);
		vg_test_hello(fds[c], &ins[c]);
	}
	/* 1000 on connection 0; 100 on each of the others. */
	for (int s = 0; s < 1000; s++) {
		char stmt[128];
		snprintf(stmt, sizeof stmt,
			 "SUBSCRIBE SELECT heart_rate FROM vitals WHERE patient = 'p%03d'", s % 10);
		vg_test_send_subscribe(fds[0], (uint64_t)s + 100, stmt, false, 0);
	}
	for (int s = 0; s < 1000; s++)
		expect_subscribe_ok(fds[0], &ins[0], (uint64_t)s + 100);
	for (int c = 1; c <= CONNS; c++) {
		for (int s = 0; s < PER; s++)
			vg_test_send_subscribe(fds[c], (uint64_t)s + 1,
				       "SUBSCRIBE SELECT heart_rate FROM vitals WHERE patient = 'p003'",
				       false, 0);
		for (int s = 0; s < PER; s++)
			expect_subscribe_ok(fds[c], &ins[c], (uint64_t)s + 1);
	}
	int64_t t[] = {1};
	double hr[] = {90};
	write_hr(fds[0], &ins[0], 5000, "p003", t, hr, 1);
	/* Connection 0: exactly the 100 subscriptions on p003 fire (the
	 * write acknowledgement came first, pushes follow). */
	int64_t got[4];
	bool fired[1000] = {false};
	for (int k = 0; k < 100; k++) {
		Vigil__V1__Envelope *env = vg_test_recv(fds[0], &ins[0]);
		cr_assert_not_null(env);
		cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH);
		int s = (int)env->id - 100;
		cr_assert(s >= 0 && s < 1000 && s % 10 == 3 && !fired[s], "push for %d", s);
		fired[s] = true;
		vg_frame_free_envelope(env);
	}
	for (int c = 1; c <= CONNS; c++) {
		bool seen[PER + 1] = {false};
		for (int k = 0; k < PER; k++) {
			Vigil__V1__Envelope *env = vg_test_recv(fds[c], &ins[c]);
			cr_assert_not_null(env);
			cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH);
			cr_assert(env->id >= 1 && env->id <= PER && !seen[env->id]);
			seen[env->id] = true;
			cr_assert_eq(env->push->rows->n_times, 1);
			vg_frame_free_envelope(env);
		}
	}
	(void)got;
	for (int c = 0; c <= CONNS; c++) {
		cr_assert(nothing_pending(fds[c], c == 0 ? 200 : 10));
		close(fds[c]);
		vg_buf_release(&ins[c]);
	}
}

/* ---- windowed subscriptions ------------------------------------------ */

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define SEC INT64_C(1000000000)

/* Reads one Push of a windowed subscription: rows' times and the first
 * two columns. */
static size_t expect_window_push(int fd, vg_buf_t *in, uint64_t id, bool update, int64_t *times,
				 double *c0, double *c1)
{
	Vigil__V1__Envelope *env = vg_test_recv(fd, in);
	cr_assert_not_null(env, "no push");
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH, "body %d", env->body_case);
	cr_assert_eq(env->id, id);
	cr_assert_eq(env->push->update, update);
	cr_assert_eq(env->push->n_tags, 1);
	cr_assert_str_eq(env->push->tags[0]->key, "patient");
	size_t n = env->push->rows->n_times;
	for (size_t i = 0; i < n; i++) {
		times[i] = env->push->rows->times[i];
		c0[i] = env->push->rows->columns[0]->floats[i];
		if (c1)
			c1[i] = env->push->rows->columns[1]->floats[i];
	}
	vg_frame_free_envelope(env);
	return n;
}

Test(subscribe, windows_close_by_event_time_and_late_points_correct_them)
{
	int dash = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(dash, &in);
	vg_test_hello(ward, &win);
	vg_test_send_subscribe(dash, 5,
		       "SUBSCRIBE SELECT mean(heart_rate), max(heart_rate) FROM vitals "
		       "GROUP BY time(10s), patient",
		       false, 0);
	expect_subscribe_ok(dash, &in, 5);
	/* An hour ahead, so the wall clock closes nothing during the test. */
	int64_t base = (wall_ns() / (10 * SEC) + 360) * 10 * SEC;
	int64_t t1[] = {base + 1 * SEC, base + 5 * SEC};
	double hr1[] = {80, 100};
	write_hr(ward, &win, 1, "p001", t1, hr1, 2);
	cr_assert(nothing_pending(dash, 300), "the window closed too early");
	int64_t t2[] = {base + 12 * SEC};
	double hr2[] = {70};
	write_hr(ward, &win, 2, "p001", t2, hr2, 1);
	int64_t times[8];
	double mean[8], max[8];
	cr_assert_eq(expect_window_push(dash, &in, 5, false, times, mean, max), 1);
	cr_assert_eq(times[0], base);
	cr_assert_eq(mean[0], 90);
	cr_assert_eq(max[0], 100);
	/* A late point for the pushed window: a corrected row. */
	int64_t t3[] = {base + 3 * SEC};
	double hr3[] = {120};
	write_hr(ward, &win, 3, "p001", t3, hr3, 1);
	cr_assert_eq(expect_window_push(dash, &in, 5, true, times, mean, max), 1);
	cr_assert_eq(times[0], base);
	cr_assert_eq(mean[0], 100);
	cr_assert_eq(max[0], 120);
	cr_assert(nothing_pending(dash, 200));
	close(dash);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}

Test(subscribe, lateness_delays_closing_and_the_wall_clock_closes_idle_windows)
{
	int dash = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(dash, &in);
	vg_test_hello(ward, &win);
	vg_test_send_subscribe(dash, 6,
		       "SUBSCRIBE SELECT count(heart_rate) FROM vitals GROUP BY time(10s), patient "
		       "LATENESS 5s",
		       false, 0);
	expect_subscribe_ok(dash, &in, 6);
	int64_t base = (wall_ns() / (10 * SEC) + 360) * 10 * SEC;
	int64_t t1[] = {base + 1 * SEC, base + 12 * SEC};
	double hr1[] = {80, 81};
	write_hr(ward, &win, 1, "p002", t1, hr1, 2);
	cr_assert(nothing_pending(dash, 300), "closed before end + lateness");
	int64_t t2[] = {base + 15 * SEC};
	write_hr(ward, &win, 2, "p002", t2, hr1, 1);
	int64_t times[8];
	double count[8];
	cr_assert_eq(expect_window_push(dash, &in, 6, false, times, count, NULL), 1);
	cr_assert_eq(times[0], base);
	cr_assert_eq(count[0], 1);
	/* Idle: points a minute old close by the wall clock, no newer point
	 * needed. */
	int64_t past = (wall_ns() / (10 * SEC) - 6) * 10 * SEC;
	int64_t t3[] = {past + 2 * SEC};
	write_hr(ward, &win, 3, "p003", t3, hr1, 1);
	cr_assert_eq(expect_window_push(dash, &in, 6, false, times, count, NULL), 1);
	cr_assert_eq(times[0], past);
	cr_assert_eq(count[0], 1);
	close(dash);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}

Test(subscribe, a_since_replay_larger_than_the_output_bound_is_paced_not_dropped)
{
	int sub = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(sub, &in);
	vg_test_hello(ward, &win);
	/* 40,960 stored rows: ~650 KB of pushes against --max-output 64 KB. */
	static int64_t t[1024];
	static double hr[1024];
	for (int w = 0; w < 40; w++) {
		for (int i = 0; i < 1024; i++) {
			t[i] = (int64_t)w * 1024 + i + 1;
			hr[i] = 70;
		}
		write_hr(ward, &win, (uint64_t)w + 1, "p009", t, hr, 1024);
	}
	vg_test_send_subscribe(sub, 4, "SUBSCRIBE SELECT heart_rate, spo2 FROM vitals SINCE 0", false, 0);
	expect_subscribe_ok(sub, &in, 4);
	size_t total = 0;
	int64_t last = 0;
	while (total < 40 * 1024) {
		Vigil__V1__Envelope *env = vg_test_recv(sub, &in);
		cr_assert_not_null(env, "connection closed after %zu rows", total);
		cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH, "body %d after %zu rows",
			     env->body_case, total);
		for (size_t i = 0; i < env->push->rows->n_times; i++) {
			cr_assert_gt(env->push->rows->times[i], last);
			last = env->push->rows->times[i];
		}
		total += env->push->rows->n_times;
		vg_frame_free_envelope(env);
	}
	cr_assert_eq(total, 40 * 1024);
	cr_assert(nothing_pending(sub, 100));
	close(sub);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}

Test(subscribe, windowed_since_replays_stored_points_into_windows)
{
	int dash = vg_test_connect(srv.port), ward = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, win = VG_BUF_INIT;
	vg_test_hello(dash, &in);
	vg_test_hello(ward, &win);
	int64_t base = (wall_ns() / (10 * SEC) - 6) * 10 * SEC;
	int64_t t1[] = {base + 1 * SEC, base + 2 * SEC, base + 11 * SEC};
	double hr1[] = {80, 100, 60};
	write_hr(ward, &win, 1, "p004", t1, hr1, 3);
	char stmt[200];
	snprintf(stmt, sizeof stmt,
		 "SUBSCRIBE SELECT mean(heart_rate) FROM vitals GROUP BY time(10s), patient "
		 "SINCE %lld",
		 (long long)base);
	vg_test_send_subscribe(dash, 8, stmt, false, 0);
	expect_subscribe_ok(dash, &in, 8);
	int64_t times[8], seen[8];
	double mean[8], means[8];
	size_t total = 0;
	while (total < 2) {
		size_t n = expect_window_push(dash, &in, 8, false, times, mean, NULL);
		for (size_t i = 0; i < n && total < 8; i++, total++) {
			seen[total] = times[i];
			means[total] = mean[i];
		}
	}
	cr_assert_eq(total, 2);
	cr_assert_eq(seen[0], base);
	cr_assert_eq(means[0], 90);
	cr_assert_eq(seen[1], base + 10 * SEC);
	cr_assert_eq(means[1], 60);
	/* Live after the replay: a late point corrects the first window. */
	int64_t t2[] = {base + 3 * SEC};
	double hr2[] = {120};
	write_hr(ward, &win, 2, "p004", t2, hr2, 1);
	cr_assert_eq(expect_window_push(dash, &in, 8, true, times, mean, NULL), 1);
	cr_assert_eq(times[0], base);
	cr_assert_eq(mean[0], 100);
	cr_assert(nothing_pending(dash, 300));
	close(dash);
	close(ward);
	vg_buf_release(&in);
	vg_buf_release(&win);
}
