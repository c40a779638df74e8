/*
 * test_bad_input.c — every kind of bad input gets an error response, the
 * server keeps serving everyone else, and nothing acknowledged is lost.
 * Driven over raw frames so that inputs no real client would send can be
 * sent.
 */
#include "harness.h"

static vg_test_server_t srv;

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	static const char *const args[] = {"--max-frame", "65536", "--sync", "none", NULL};
	vg_test_server_start(&srv, args);
}

static void teardown(void) { vg_test_server_stop(&srv, true); }

TestSuite(bad_input, .init = setup, .fini = teardown, .timeout = 60);

static void ping_ok(int fd, vg_buf_t *in, uint64_t id)
{
	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	ping.nonce = id * 7;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	vg_test_send_env(fd, &env);
	Vigil__V1__Envelope *reply = vg_test_recv(fd, in);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_PONG);
	cr_assert_eq(reply->id, id);
	cr_assert_eq(reply->pong->nonce, id * 7);
	vg_frame_free_envelope(reply);
}

Test(bad_input, request_before_hello_and_wrong_version)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 5;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	env.ping = &ping;
	vg_test_send_env(fd, &env);
	cr_assert_eq(vg_test_expect_error(fd, &in, 5, false, "Hello"), VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	vg_test_hello(fd, &in);
	ping_ok(fd, &in, 6);
	close(fd);

	fd = vg_test_connect(srv.port);
	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = 99;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	vg_test_send_env(fd, &env);
	cr_assert_eq(vg_test_expect_error(fd, &in, 1, true, "99"), VIGIL__V1__ERROR_CODE__ERROR_VERSION);
	vg_test_expect_closed(fd);
	close(fd);
	vg_buf_release(&in);
}

Test(bad_input, garbage_with_valid_length_keeps_the_connection)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	vg_test_hello(fd, &in);
	uint8_t junk[4 + 9] = {0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	vg_test_send_all(fd, junk, sizeof junk);
	cr_assert_eq(vg_test_expect_error(fd, &in, 0, false, NULL), VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	/* An envelope with no body: an unknown message. */
	uint8_t empty[4 + 2] = {0, 0, 0, 2, 0x08, 0x2a}; /* id = 42 only */
	vg_test_send_all(fd, empty, sizeof empty);
	cr_assert_eq(vg_test_expect_error(fd, &in, 42, false, NULL), VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	/* A response type sent as a request. */
	Vigil__V1__Pong pong = VIGIL__V1__PONG__INIT;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 43;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_PONG;
	env.pong = &pong;
	vg_test_send_env(fd, &env);
	cr_assert_eq(vg_test_expect_error(fd, &in, 43, false, "not a request"),
		     VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	ping_ok(fd, &in, 44);
	close(fd);
	vg_buf_release(&in);
}

Test(bad_input, oversized_frame_is_refused_from_its_header)
{
	int fd = vg_test_connect(srv.port);
	int other = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, in2 = VG_BUF_INIT;
	vg_test_hello(fd, &in);
	vg_test_hello(other, &in2);
	/* Claims 1 GiB; the server must answer without waiting for it. */
	uint8_t header[4] = {0x40, 0, 0, 0};
	vg_test_send_all(fd, header, 4);
	cr_assert_eq(vg_test_expect_error(fd, &in, 0, true, "65536"), VIGIL__V1__ERROR_CODE__ERROR_LIMIT);
	vg_test_expect_closed(fd);
	close(fd);
	ping_ok(other, &in2, 2);
	close(other);
	vg_buf_release(&in);
	vg_buf_release(&in2);
}

Test(bad_input, truncated_frame_then_close_leaves_others_alone)
{
	int other = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	vg_test_hello(other, &in);
	for (int i = 0; i < 20; i++) {
		int fd = vg_test_connect(srv.port);
		uint8_t partial[4 + 3] = {0, 0, 0, 100, 0x08, 0x01, 0x12};
		vg_test_send_all(fd, partial, (size_t)(1 + i % 7));
		close(fd);
	}
	ping_ok(other, &in, 3);
	close(other);
	vg_buf_release(&in);
}

static void send_write(int fd, uint64_t id, const char *measurement, const char *tag_key,
		       const char *tag_value, const char *field, size_t nvalues, size_t ntimes)
{
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = (char *)tag_key;
	tag.value = (char *)tag_value;
	Vigil__V1__Tag *tags[] = {&tag};
	int64_t times[4] = {1000, 2000, 3000, 4000};
	double values[4] = {1.5, 2.5, 3.5, 4.5};
	Vigil__V1__WriteField f = VIGIL__V1__WRITE_FIELD__INIT;
	f.name = (char *)field;
	f.n_values = nvalues;
	f.values = values;
	Vigil__V1__WriteField *fields[] = {&f};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = (char *)measurement;
	block.n_tags = 1;
	block.tags = tags;
	block.n_times = ntimes;
	block.times = times;
	block.n_fields = 1;
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
}

Test(bad_input, invalid_names_and_shapes_are_named_in_the_error)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	vg_test_hello(fd, &in);
	send_write(fd, 10, "1cpu", "host", "a", "v", 4, 4);
	vg_test_expect_error(fd, &in, 10, false, "1cpu");
	send_write(fd, 11, "cpu", "ho st", "a", "v", 4, 4);
	vg_test_expect_error(fd, &in, 11, false, "ho st");
	send_write(fd, 12, "cpu", "host", "", "v", 4, 4);
	vg_test_expect_error(fd, &in, 12, false, "host");
	send_write(fd, 13, "cpu", "host", "a", "v", 3, 4);
	vg_test_expect_error(fd, &in, 13, false, "3 values");
	send_write(fd, 14, "cpu", "host", "\xc3\x28", "v", 4, 4);
	vg_test_expect_error(fd, &in, 14, false, "UTF-8");
	/* A good write still works and is acknowledged after the bad ones. */
	send_write(fd, 15, "cpu", "host", "a", "v", 4, 4);
	Vigil__V1__Envelope *ok = vg_test_recv(fd, &in);
	cr_assert_not_null(ok);
	cr_assert_eq(ok->body_case, VIGIL__V1__ENVELOPE__BODY_WRITE_OK);
	cr_assert_eq(ok->id, 15);
	cr_assert_eq(ok->write_ok->points, 4);
	vg_frame_free_envelope(ok);
	close(fd);
	vg_buf_release(&in);
}

Test(bad_input, connection_limit_refuses_with_a_reason)
{
	/* Restart with a limit of 2 connections. */
	vg_test_server_stop(&srv, false);
	static const char *const args[] = {"--max-connections", "2", NULL};
	vg_test_server_start(&srv, args);
	int a = vg_test_connect(srv.port), b = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT, in2 = VG_BUF_INIT;
	vg_test_hello(a, &in);
	vg_test_hello(b, &in2);
	int c = vg_test_connect(srv.port);
	vg_buf_t in3 = VG_BUF_INIT;
	cr_assert_eq(vg_test_expect_error(c, &in3, 0, true, "too many connections"),
		     VIGIL__V1__ERROR_CODE__ERROR_LIMIT);
	close(c);
	ping_ok(a, &in, 9);
	close(a);
	close(b);
	vg_buf_release(&in);
	vg_buf_release(&in2);
	vg_buf_release(&in3);
}
