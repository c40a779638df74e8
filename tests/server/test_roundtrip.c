/*
 * test_roundtrip.c — libvigil against a real vigild: every kind of value
 * comes back bit for bit, pipelined writes are all acknowledged, a
 * statement sees the writes sent before it, errors carry positions.
 */
#include "harness.h"

#include "vigil.h"

#include <math.h>

static vg_test_server_t srv;

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	vg_test_server_start(&srv, NULL);
}

static void teardown(void) { vg_test_server_stop(&srv, true); }

TestSuite(roundtrip, .init = setup, .fini = teardown, .timeout = 60);

static vg_client_t *client(void)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect(srv.addr, 5000, &c, err, sizeof err), 0, "%s", err);
	return c;
}

static uint64_t bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	return u;
}

static double from_bits(uint64_t u)
{
	double d;
	memcpy(&d, &u, 8);
	return d;
}

Test(roundtrip, every_value_kind_is_bit_exact)
{
	vg_client_t *c = client();
	double values[] = {0.0,
			   -0.0,
			   1.5,
			   -1e308,
			   INFINITY,
			   -INFINITY,
			   from_bits(UINT64_C(0x7ff8000000000123)),
			   from_bits(UINT64_C(0xfff0000000000001)),
			   from_bits(1), /* smallest denormal */
			   3.141592653589793,
			   72.0};
	size_t n = sizeof values / sizeof values[0];
	int64_t times[16];
	for (size_t i = 0; i < n; i++)
		times[i] = INT64_C(1767225600000000000) + (int64_t)i * 1000000000;
	times[0] = INT64_MIN; /* the earliest representable time */
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	vg_tag_t tags[] = {{"patient", "p001"}, {"ward", "w-ü"}};
	cr_assert_eq(vg_batch_add_points(b, "vitals", tags, 2, "hr", times, values, n), 0,
		     "%s", vg_batch_errstr(b));
	uint64_t points = 0;
	cr_assert_eq(vg_client_write(c, b, &points), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(points, n);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT hr FROM vitals WHERE patient = 'p001'", &r), 0,
		     "%s", vg_client_errstr(c));
	cr_assert_eq(vg_result_set_count(r), 1);
	const vg_result_set_t *s = vg_result_set(r, 0);
	cr_assert_eq(vg_result_row_count(s), n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(vg_result_time(s, i), times[i]);
		double v;
		cr_assert(vg_result_float(s, i, 1, &v));
		cr_assert_eq(bits(v), bits(values[i]), "value %zu: %016llx", i,
			     (unsigned long long)bits(v));
	}
	vg_result_free(r);
	vg_batch_free(b);
	vg_client_close(c);
}

Test(roundtrip, pipelined_writes_are_acknowledged_and_visible)
{
	vg_client_t *c = client();
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	enum { BATCHES = 50, PER = 100 };
	for (int k = 0; k < BATCHES; k++) {
		vg_batch_clear(b);
		for (int i = 0; i < PER; i++) {
			vg_tag_t tag = {"host", k % 2 ? "a" : "b"};
			cr_assert_eq(vg_batch_add(b, "cpu", &tag, 1, "usage", (int64_t)(k * PER + i),
						  (double)(k * PER + i)),
				     0);
		}
		uint64_t id;
		cr_assert_eq(vg_client_write_async(c, b, &id), 0, "%s", vg_client_errstr(c));
	}
	cr_assert_eq(vg_client_pending_writes(c), BATCHES);
	/* A query sent now sees every write sent before it. */
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT count(usage) FROM cpu", &r), 0, "%s",
		     vg_client_errstr(c));
	const vg_result_set_t *s = vg_result_set(r, 0);
	double count;
	cr_assert(vg_result_float(s, 0, 1, &count));
	cr_assert_eq(count, BATCHES * PER);
	vg_result_free(r);
	uint64_t total = 0;
	while (vg_client_pending_writes(c)) {
		uint64_t id, points;
		cr_assert_eq(vg_client_wait_ack(c, &id, &points), 0, "%s", vg_client_errstr(c));
		total += points;
	}
	cr_assert_eq(total, BATCHES * PER);
	vg_batch_free(b);
	vg_client_close(c);
}

Test(roundtrip, errors_name_their_position_and_the_connection_goes_on)
{
	vg_client_t *c = client();
	vg_result_t *r = NULL;
	int rc = vg_client_query(c, "SELECT x FORM cpu", &r);
	cr_assert_eq(rc, VG_ESYNTAX);
	cr_assert(strstr(vg_client_errstr(c), "line 1, column 10"), "%s", vg_client_errstr(c));
	rc = vg_client_query(c, "SELECT x FROM nosuch", &r);
	cr_assert_eq(rc, VG_ENOTFOUND, "%d %s", rc, vg_client_errstr(c));
	cr_assert(strstr(vg_client_errstr(c), "nosuch"), "%s", vg_client_errstr(c));
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
}

Test(roundtrip, unix_socket)
{
	vg_test_server_stop(&srv, false);
	char path[300], arg[320];
	snprintf(path, sizeof path, "%s/vigil.sock", srv.dir);
	snprintf(arg, sizeof arg, "%s", path);
	const char *const args[] = {"--unix", arg, NULL};
	vg_test_server_start(&srv, args);
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect_unix(path, 5000, &c, err, sizeof err), 0, "%s", err);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
}
