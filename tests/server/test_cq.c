/*
 * test_cq.c — continuous queries against a real vigild: windows are
 * materialized into the target as they close, the target can be
 * subscribed to, definitions and progress survive kill -9 with no window
 * missing or written twice, SHOW and DROP work.
 */
#include "harness.h"

#include "vigil.h"

#define SEC INT64_C(1000000000)

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static vg_client_t *client(const vg_test_server_t *srv)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect(srv->addr, 5000, &c, err, sizeof err), 0, "%s", err);
	return c;
}

static void write_hr(vg_client_t *c, const char *patient, int64_t t, double v)
{
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	vg_tag_t tag = {"patient", patient};
	cr_assert_eq(vg_batch_add(b, "vitals", &tag, 1, "heart_rate", t, v), 0);
	uint64_t points;
	cr_assert_eq(vg_client_write(c, b, &points), 0, "%s", vg_client_errstr(c));
	vg_batch_free(b);
}

/* Rows of the target for one patient, as (time, value) pairs. */
static size_t target_rows(vg_client_t *c, const char *patient, int64_t *times, double *values,
			  size_t cap)
{
	char q[200];
	snprintf(q, sizeof q, "SELECT hr FROM vitals_1s WHERE patient = '%s'", patient);
	vg_result_t *r;
	int rc = vg_client_query(c, q, &r);
	if (rc == VG_ENOTFOUND)
		return 0;
	cr_assert_eq(rc, 0, "%s", vg_client_errstr(c));
	size_t n = 0;
	for (size_t s = 0; s < vg_result_set_count(r); s++) {
		const vg_result_set_t *set = vg_result_set(r, s);
		for (size_t i = 0; i < vg_result_row_count(set) && n < cap; i++, n++) {
			times[n] = vg_result_time(set, i);
			vg_result_float(set, i, 1, &values[n]);
		}
	}
	vg_result_free(r);
	return n;
}

/* Waits (5 s at most) until the target holds at least `want` rows. */
static size_t wait_rows(vg_client_t *c, const char *patient, size_t want, int64_t *times,
			double *values)
{
	size_t n = 0;
	for (int64_t deadline = vg_test_ms() + 5000; vg_test_ms() < deadline;) {
		n = target_rows(c, patient, times, values, 64);
		if (n >= want)
			break;
		struct timespec ms = {0, 50 * 1000000};
		nanosleep(&ms, NULL);
	}
	return n;
}

Test(cq, windows_are_materialized_and_survive_kill_9, .timeout = 60)
{
	vg_test_server_t srv = {0};
	vg_test_server_start(&srv, NULL);
	vg_client_t *c = client(&srv);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c,
				     "CREATE CONTINUOUS QUERY hr_1s AS SELECT mean(heart_rate) AS hr "
				     "INTO vitals_1s FROM vitals GROUP BY time(1s), patient",
				     &r),
		     0, "%s", vg_client_errstr(c));
	vg_result_free(r);
	cr_assert_eq(vg_client_query(c,
				     "CREATE CONTINUOUS QUERY hr_1s AS SELECT mean(heart_rate) INTO x "
				     "FROM vitals GROUP BY time(1s)",
				     &r),
		     VG_EEXIST);
	/* Two points in each of the next two windows. */
	int64_t w0 = (wall_ns() / SEC + 1) * SEC;
	while (wall_ns() < w0) {
		struct timespec ms = {0, 10 * 1000000};
		nanosleep(&ms, NULL);
	}
	write_hr(c, "p1", w0 + SEC / 10, 80);
	write_hr(c, "p1", w0 + SEC / 2, 90);
	write_hr(c, "p1", w0 + SEC + SEC / 10, 100);
	write_hr(c, "p1", w0 + SEC + SEC / 2, 110);
	int64_t times[64];
	double values[64];
	size_t n = wait_rows(c, "p1", 2, times, values);
	cr_assert_geq(n, 2, "windows not materialized");
	cr_assert_eq(times[0], w0);
	cr_assert_eq(values[0], 85);
	cr_assert_eq(times[1], w0 + SEC);
	cr_assert_eq(values[1], 105);
	vg_client_close(c);

	/* Kill -9, restart: progress and definition persist. */
	vg_test_server_signal(&srv, SIGKILL);
	vg_test_server_start(&srv, NULL);
	c = client(&srv);
	cr_assert_eq(vg_client_query(c, "SHOW CONTINUOUS QUERIES", &r), 0, "%s",
		     vg_client_errstr(c));
	cr_assert_eq(vg_result_set_count(r), 1);
	cr_assert_str_eq(vg_result_string(vg_result_set(r, 0), 0, 0), "hr_1s");
	vg_result_free(r);
	int64_t w2 = (wall_ns() / SEC + 1) * SEC;
	write_hr(c, "p1", w2 + SEC / 10, 60);
	n = wait_rows(c, "p1", 3, times, values);
	cr_assert_eq(n, 3, "rows after restart: %zu", n);
	for (size_t i = 1; i < n; i++)
		cr_assert_gt(times[i], times[i - 1], "a window written twice");
	cr_assert_eq(times[2], w2);
	cr_assert_eq(values[2], 60);

	cr_assert_eq(vg_client_query(c, "DROP CONTINUOUS QUERY hr_1s", &r), 0);
	vg_result_free(r);
	cr_assert_eq(vg_client_query(c, "DROP CONTINUOUS QUERY hr_1s", &r), VG_ENOTFOUND);
	cr_assert_eq(vg_client_query(c, "SHOW CONTINUOUS QUERIES", &r), 0);
	cr_assert_eq(vg_result_set_count(r), 0);
	vg_result_free(r);
	vg_client_close(c);
	vg_test_server_stop(&srv, true);
}

Test(cq, the_target_can_be_subscribed_to, .timeout = 60)
{
	vg_test_server_t srv = {0};
	vg_test_server_start(&srv, NULL);
	vg_client_t *c = client(&srv);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c,
				     "CREATE CONTINUOUS QUERY hr_1s AS SELECT max(heart_rate) AS hr "
				     "INTO vitals_1s FROM vitals GROUP BY time(1s), patient",
				     &r),
		     0, "%s", vg_client_errstr(c));
	vg_result_free(r);
	/* A raw subscriber on the target, over raw frames. */
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	vg_test_hello(fd, &in);
	Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
	sub.statement = (char *)"SUBSCRIBE SELECT hr FROM vitals_1s GROUP BY patient";
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 2;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &sub;
	vg_test_send_env(fd, &env);
	Vigil__V1__Envelope *ok = vg_test_recv(fd, &in);
	cr_assert_not_null(ok);
	cr_assert_eq(ok->body_case, VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK, "%d", ok->body_case);
	vg_frame_free_envelope(ok);
	int64_t w0 = (wall_ns() / SEC + 1) * SEC;
	write_hr(c, "p7", w0 + SEC / 10, 130);
	Vigil__V1__Envelope *push = vg_test_recv(fd, &in);
	cr_assert_not_null(push);
	cr_assert_eq(push->body_case, VIGIL__V1__ENVELOPE__BODY_PUSH);
	cr_assert_eq(push->push->rows->n_times, 1);
	cr_assert_eq(push->push->rows->times[0], w0);
	cr_assert_eq(push->push->rows->columns[0]->floats[0], 130);
	cr_assert_str_eq(push->push->tags[0]->value, "p7");
	vg_frame_free_envelope(push);
	close(fd);
	vg_buf_release(&in);
	vg_client_close(c);
	vg_test_server_stop(&srv, true);
}
