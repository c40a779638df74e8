/*
 * test_tls.c — vigild with --tls-cert/--tls-key against libvigil and the
 * CLI.  A CA, a server certificate for localhost and 127.0.0.1, and a
 * second, unrelated CA are made with the openssl command in the test's
 * temporary directory.  Covered: a round trip (write, query, subscribe)
 * and a result big enough to take many TLS records and partial writes;
 * verification failures (wrong CA, wrong name) reported as such, with the
 * server going on; a plain client on the TLS port and a TLS client on a
 * plain port failing cleanly; the Unix socket staying plain; the CLI.
 */
#include "harness.h"

#include "vigil.h"

static vg_test_server_t srv;
static char ca[400], other_ca[400], cert[400], key[400];

static void sh(const char *fmt, const char *dir)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, fmt, dir, dir, dir, dir, dir, dir, dir, dir);
	int rc = system(cmd);
	cr_assert_eq(rc, 0, "failed: %s", cmd);
}

/* A CA, a server certificate signed by it, and an unrelated CA. */
static void make_certificates(const char *dir)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	char fmt[1024];
	snprintf(fmt, sizeof fmt,
	         "cd %%s && openssl req -x509 %s -keyout ca.key -out ca.crt -days 2 "
	         "-subj /CN=vigil-test-ca >/dev/null 2>&1",
	         ec);
	sh(fmt, dir);
	snprintf(fmt, sizeof fmt,
	         "cd %%s && openssl req -x509 %s -keyout other.key -out other-ca.crt -days 2 "
	         "-subj /CN=vigil-other-ca >/dev/null 2>&1",
	         ec);
	sh(fmt, dir);
	snprintf(fmt, sizeof fmt,
	         "cd %%s && openssl req %s -keyout server.key -out server.csr "
	         "-subj /CN=localhost >/dev/null 2>&1 && "
	         "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.cnf && "
	         "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	         "-out server.crt -days 2 -extfile san.cnf >/dev/null 2>&1",
	         ec);
	sh(fmt, dir);
	snprintf(ca, sizeof ca, "%s/ca.crt", dir);
	snprintf(other_ca, sizeof other_ca, "%s/other-ca.crt", dir);
	snprintf(cert, sizeof cert, "%s/server.crt", dir);
	snprintf(key, sizeof key, "%s/server.key", dir);
}

static char unix_path[400];

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	vg_test_tmpdir(srv.dir, sizeof srv.dir);
	make_certificates(srv.dir);
	snprintf(unix_path, sizeof unix_path, "%s/sock", srv.dir);
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, "--unix", unix_path, NULL};
	vg_test_server_start(&srv, extra);
}

static void teardown(void)
{
	vg_test_server_stop(&srv, true);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 90);

/* Connects with TLS trusting ca_file; returns the code, err filled. */
static int tls_connect(const char *addr, const char *ca_file, const char *name, vg_client_t **c,
                       char *err, size_t errlen)
{
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = 5000;
	o.tls = true;
	o.tls_ca_file = ca_file;
	o.tls_server_name = name;
	*c = NULL;
	return vg_client_connect_with(addr, &o, c, err, errlen);
}

static vg_client_t *good_client(void)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = tls_connect(srv.addr, ca, NULL, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	return c;
}

typedef struct {
	size_t rows;
	double last;
} seen_t;

static void on_event(void *ctx, const vg_sub_event_t *ev)
{
	seen_t *seen = ctx;
	if (ev->kind != VG_SUB_ROWS)
		return;
	size_t n = vg_result_row_count(ev->set);
	seen->rows += n;
	if (n)
		vg_result_float(ev->set, n - 1, 1, &seen->last);
}

Test(tls, write_query_and_subscribe_round_trip)
{
	vg_client_t *sub = good_client();
	seen_t seen = {0, 0};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(sub, "SUBSCRIBE SELECT v FROM cpu", on_event, &seen, &id),
	             0, "%s", vg_client_errstr(sub));
	vg_client_t *c = good_client();
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	vg_tag_t tag = {"host", "a"};
	cr_assert_eq(vg_batch_add(b, "cpu", &tag, 1, "v", 1000, 42.5), 0);
	uint64_t points = 0;
	cr_assert_eq(vg_client_write(c, b, &points), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(points, 1);
	vg_batch_free(b);
	vg_result_t *r = NULL;
	cr_assert_eq(vg_client_query(c, "SELECT v FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(vg_result_set_count(r), 1);
	double v = 0;
	cr_assert(vg_result_float(vg_result_set(r, 0), 0, 1, &v));
	cr_assert_eq(v, 42.5);
	vg_result_free(r);
	int64_t deadline = vg_test_ms() + 5000;
	while (seen.rows == 0 && vg_test_ms() < deadline)
		cr_assert_geq(vg_client_process(sub, 100), 0, "%s", vg_client_errstr(sub));
	cr_assert_eq(seen.rows, 1);
	cr_assert_eq(seen.last, 42.5);
	vg_client_close(c);
	vg_client_close(sub);
}

Test(tls, a_large_result_crosses_intact)
{
	enum { N = 200000 };
	int64_t *times = malloc(N * sizeof *times);
	double *values = malloc(N * sizeof *values);
	cr_assert(times && values);
	for (int i = 0; i < N; i++) {
		times[i] = 1000 + i;
		values[i] = i * 0.5;
	}
	vg_client_t *c = good_client();
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	cr_assert_eq(vg_batch_add_points(b, "big", NULL, 0, "v", times, values, N), 0);
	cr_assert_eq(vg_client_write(c, b, NULL), 0, "%s", vg_client_errstr(c));
	vg_batch_free(b);
	vg_result_t *r = NULL;
	cr_assert_eq(vg_client_query(c, "SELECT v FROM big", &r), 0, "%s", vg_client_errstr(c));
	const vg_result_set_t *set = vg_result_set(r, 0);
	cr_assert_eq(vg_result_row_count(set), N);
	for (int i = 0; i < N; i += 997) {
		double v;
		cr_assert(vg_result_float(set, (size_t)i, 1, &v));
		cr_assert_eq(v, values[i]);
		cr_assert_eq(vg_result_time(set, (size_t)i), times[i]);
	}
	vg_result_free(r);
	vg_client_close(c);
	free(times);
	free(values);
}

Test(tls, localhost_matches_the_certificate_name)
{
	char addr[64], err[VG_CLIENT_ERRLEN];
	snprintf(addr, sizeof addr, "localhost:%d", srv.port);
	vg_client_t *c;
	int rc = tls_connect(addr, ca, NULL, &c, err, sizeof err);
	/* localhost may resolve to ::1 first, where nothing listens; the
	 * client then tries 127.0.0.1. */
	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
}

Test(tls, an_untrusted_certificate_fails_clearly_and_the_server_goes_on)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = tls_connect(srv.addr, other_ca, NULL, &c, err, sizeof err);
	cr_assert_eq(rc, VG_ETLS, "%d: %s", rc, err);
	cr_assert_null(c);
	char want[200];
	snprintf(want, sizeof want,
	         "%s: TLS handshake failed: certificate verify failed: unable to get local issuer "
	         "certificate",
	         srv.addr);
	cr_assert_str_eq(err, want);
	vg_client_close(good_client());
}

Test(tls, a_certificate_for_another_name_fails)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = tls_connect(srv.addr, ca, "db.example", &c, err, sizeof err);
	cr_assert_eq(rc, VG_ETLS, "%d: %s", rc, err);
	cr_assert(strstr(err, "certificate verify failed: hostname mismatch"), "%s", err);
}

Test(tls, a_missing_ca_file_is_reported)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	char missing[500];
	snprintf(missing, sizeof missing, "%s/missing.crt", srv.dir);
	int rc = tls_connect(srv.addr, missing, NULL, &c, err, sizeof err);
	cr_assert_eq(rc, VG_ETLS, "%d: %s", rc, err);
	cr_assert(strstr(err, "cannot load the CA file"), "%s", err);
	cr_assert(strstr(err, missing), "%s", err);
}

Test(tls, a_plain_client_gets_a_plain_error_and_the_server_goes_on)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	Vigil__V1__Envelope *reply = vg_test_hello_token(fd, &in, NULL);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(reply->error->code, VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL);
	cr_assert(reply->error->fatal);
	cr_assert(strstr(reply->error->message, "this port speaks TLS only"), "%s",
	          reply->error->message);
	vg_frame_free_envelope(reply);
	cr_assert_null(vg_test_recv(fd, &in));
	close(fd);
	vg_buf_release(&in);
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect(srv.addr, 5000, &c, err, sizeof err);
	cr_assert_neq(rc, 0);
	cr_assert(strstr(err, "this port speaks TLS only"), "%s", err);
	vg_client_close(good_client());
}

Test(tls, a_tls_client_on_a_plain_port_fails_cleanly)
{
	vg_test_server_t plain;
	memset(&plain, 0, sizeof plain);
	vg_test_server_start(&plain, NULL);
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = tls_connect(plain.addr, ca, NULL, &c, err, sizeof err);
	cr_assert_eq(rc, VG_ETLS, "%d: %s", rc, err);
	cr_assert(strstr(err, "TLS handshake failed"), "%s", err);
	cr_assert(strstr(err, "does the server speak TLS on this port?"), "%s", err);
	/* The plain server goes on. */
	rc = vg_client_connect(plain.addr, 5000, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	vg_client_close(c);
	vg_test_server_stop(&plain, true);
}

Test(tls, the_unix_socket_stays_plain)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect_unix(unix_path, 5000, &c, err, sizeof err), 0, "%s", err);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	char addr[500];
	snprintf(addr, sizeof addr, "unix:%s", unix_path);
	int rc = tls_connect(addr, ca, NULL, &c, err, sizeof err);
	cr_assert_eq(rc, VG_EINVAL);
	cr_assert(strstr(err, "TLS is for TCP addresses"), "%s", err);
}

static const vg_test_run_t *run_vigil(const char *const *args)
{
	static vg_test_run_t r;
	vg_test_run_vigil(&r, srv.dir, srv.addr, NULL, args);
	return &r;
}

Test(tls, cli_connects_with_tls_ca_and_refuses_an_unknown_ca)
{
	const char *ok[] = {"--tls-ca", ca, "query", "SHOW MEASUREMENTS", NULL};
	const vg_test_run_t *r = run_vigil(ok);
	cr_assert_eq(r->status, 0, "%s", r->err);
	/* A token for a server without an auth file is ignored. */
	const char *token[] = {"--tls-ca", ca, "--token", "unused-token-0123456789", "stats", NULL};
	r = run_vigil(token);
	cr_assert_eq(r->status, 0, "%s", r->err);
	const char *system_cas[] = {"--tls", "query", "SHOW MEASUREMENTS", NULL};
	r = run_vigil(system_cas);
	cr_assert_eq(r->status, 1);
	cr_assert(strstr(r->err, "certificate verify failed"), "%s", r->err);
}

TestSuite(tls_startup, .timeout = 60);
/* Stops the server a failed assertion left running. */
static void stop_if_running(void)
{
	if (srv.pid)
		vg_test_server_stop(&srv, true);
}

TestSuite(tls_auth, .fini = stop_if_running, .timeout = 90);

Test(tls_startup, a_bad_certificate_or_half_a_pair_stops_vigild)
{
	char dir[256], missing[300], data[300], err[2048];
	vg_test_tmpdir(dir, sizeof dir);
	snprintf(missing, sizeof missing, "%s/missing.crt", dir);
	snprintf(data, sizeof data, "%s/data", dir);
	const char *half[] = {"--data",     data,    "--listen", "127.0.0.1:0",
	                      "--tls-cert", missing, NULL};
	cr_assert_eq(vg_test_vigild_exit(half, err, sizeof err), 2, "%s", err);
	cr_assert(strstr(err, "TLS needs both --tls-cert and --tls-key"), "%s", err);
	const char *bad[] = {"--data", data,        "--listen", "127.0.0.1:0", "--tls-cert",
	                     missing,  "--tls-key", missing,    NULL};
	cr_assert_eq(vg_test_vigild_exit(bad, err, sizeof err), 1, "%s", err);
	char want[400];
	snprintf(want, sizeof want, "TLS: cannot load the certificate chain %s", missing);
	cr_assert(strstr(err, want), "%s", err);
	vg_test_rmdir(dir);
}

/* ---- TLS and tokens together, across a reconnection --------------------- */

#define T_READ "read-token-0123456789"
#define T_WRITE "write-token-0123456789"

static void start_secure(vg_test_server_t *s, const char *auth, const char *listen)
{
	const char *extra[] = {
	    "--auth-file", auth, "--tls-cert", cert, "--tls-key", key, listen ? "--listen" : NULL,
	    listen,        NULL};
	vg_test_server_start(s, extra);
}

static int write_one(const char *token, int64_t t, double v)
{
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = 5000;
	o.token = token;
	o.tls = true;
	o.tls_ca_file = ca;
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect_with(srv.addr, &o, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	cr_assert_eq(vg_batch_add(b, "hr", NULL, 0, "v", t, v), 0);
	rc = vg_client_write(c, b, NULL);
	vg_batch_free(b);
	vg_client_close(c);
	return rc;
}

Test(tls_auth, a_subscription_resumes_over_tls_with_its_token)
{
	memset(&srv, 0, sizeof srv);
	vg_test_tmpdir(srv.dir, sizeof srv.dir);
	make_certificates(srv.dir);
	char auth[500];
	snprintf(auth, sizeof auth, "%s/auth", srv.dir);
	FILE *f = fopen(auth, "w");
	cr_assert_not_null(f);
	fputs("read " T_READ "\nwrite " T_WRITE "\n", f);
	fclose(f);
	start_secure(&srv, auth, NULL);
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = 5000;
	o.token = T_READ;
	o.tls = true;
	o.tls_ca_file = ca;
	vg_client_t *sub = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect_with(srv.addr, &o, &sub, err, sizeof err), 0, "%s", err);
	seen_t seen = {0, 0};
	uint64_t id;
	cr_assert_eq(vg_client_subscribe(sub, "SUBSCRIBE SELECT v FROM hr", on_event, &seen, &id),
	             0, "%s", vg_client_errstr(sub));
	cr_assert_eq(write_one(T_WRITE, 1000, 1), 0);
	int64_t deadline = vg_test_ms() + 5000;
	while (seen.rows < 1 && vg_test_ms() < deadline)
		vg_client_process(sub, 100);
	cr_assert_eq(seen.rows, 1);
	/* The server restarts on the same port: the client reconnects with
	 * TLS and its token, and the subscription resumes. */
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", srv.port);
	vg_test_server_stop(&srv, false);
	start_secure(&srv, auth, listen);
	cr_assert_eq(write_one(T_WRITE, 2000, 2), 0);
	deadline = vg_test_ms() + 10000;
	while (seen.rows < 2 && vg_test_ms() < deadline)
		vg_client_process(sub, 100);
	cr_assert_eq(seen.rows, 2, "%s", vg_client_errstr(sub));
	cr_assert_eq(seen.last, 2);
	vg_client_close(sub);
	vg_test_server_stop(&srv, true);
}
