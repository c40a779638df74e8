/*
 * test_auth_conn.c — vigild with --auth-file against real clients: the
 * Hello and its token (unknown, missing, before Hello), each role allowed
 * and refused exactly as server/auth.h documents, the refused connection
 * staying usable, tokens kept out of the log, the CLI's --token and
 * VIGIL_TOKEN, and vigild's start-up refusals (exposed --listen, bad auth
 * file).
 */
#include "harness.h"

#include "vigil.h"

#include <sys/stat.h>

#define T_READ "read-token-0123456789"
#define T_WRITE "write-token-0123456789"
#define T_ADMIN "admin-token-0123456789"

static vg_test_server_t srv;
static char auth_path[400];

static void write_auth_file(void)
{
	snprintf(auth_path, sizeof auth_path, "%s/auth", srv.dir);
	FILE *f = fopen(auth_path, "w");
	cr_assert_not_null(f);
	fputs("# roles of the test\nread " T_READ "\n" T_WRITE " write\nadmin " T_ADMIN "\n", f);
	fclose(f);
	cr_assert_eq(chmod(auth_path, 0600), 0);
}

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	vg_test_tmpdir(srv.dir, sizeof srv.dir);
	write_auth_file();
	const char *extra[] = {"--auth-file", auth_path, NULL};
	vg_test_server_start(&srv, extra);
}

static void teardown(void)
{
	vg_test_server_stop(&srv, true);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 60);

static vg_client_t *connect_as(const char *token)
{
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = 5000;
	o.token = token;
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect_with(srv.addr, &o, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	return c;
}

/* Runs a statement; returns its code (the result is dropped). */
static int run(vg_client_t *c, const char *statement)
{
	vg_result_t *r = NULL;
	int rc = vg_client_query(c, statement, &r);
	vg_result_free(r);
	return rc;
}

static int write_point(vg_client_t *c, const char *m, int64_t t, double v)
{
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	vg_tag_t tag = {"host", "a"};
	cr_assert_eq(vg_batch_add(b, m, &tag, 1, "v", t, v), 0);
	int rc = vg_client_write(c, b, NULL);
	vg_batch_free(b);
	return rc;
}

static void noop_cb(void *ctx, const vg_sub_event_t *ev)
{
	(void)ctx;
	(void)ev;
}

static void assert_refused(vg_client_t *c, int rc, const char *message)
{
	cr_assert_eq(rc, VG_EPERM, "expected VG_EPERM, got %d (%s)", rc, vg_client_errstr(c));
	cr_assert_str_eq(vg_client_errstr(c), message);
	/* A refusal leaves the connection usable. */
	cr_assert_eq(vg_client_ping(c), 0, "%s", vg_client_errstr(c));
}

static const char *const admin_statements[] = {
    "CREATE CONTINUOUS QUERY cq1 AS SELECT mean(v) INTO cpu_1m FROM cpu GROUP BY time(1m)",
    "DROP CONTINUOUS QUERY cq1",
    "SET RETENTION 30d ON cpu",
};
static const char *const admin_names[] = {"CREATE CONTINUOUS QUERY", "DROP CONTINUOUS QUERY",
                                          "SET RETENTION"};
static const char *const read_statements[] = {
    "SELECT v FROM cpu", "SHOW MEASUREMENTS", "SHOW SERIES",
    "SHOW TAG KEYS",     "SHOW FIELD KEYS",   "SHOW TAG VALUES WITH KEY = host",
    "SHOW STATS",        "SHOW RETENTION",    "SHOW CONTINUOUS QUERIES",
};

static void seed(void)
{
	vg_client_t *a = connect_as(T_ADMIN);
	cr_assert_eq(write_point(a, "cpu", 1000, 1.5), 0, "%s", vg_client_errstr(a));
	vg_client_close(a);
}

Test(auth, read_role_reads_and_subscribes_but_cannot_write_or_administer)
{
	seed();
	vg_client_t *c = connect_as(T_READ);
	for (size_t i = 0; i < sizeof read_statements / sizeof read_statements[0]; i++)
		cr_assert_eq(run(c, read_statements[i]), 0, "%s: %s", read_statements[i],
		             vg_client_errstr(c));
	uint64_t sub = 0;
	cr_assert_eq(vg_client_subscribe(c, "SUBSCRIBE SELECT v FROM cpu", noop_cb, NULL, &sub), 0,
	             "%s", vg_client_errstr(c));
	assert_refused(c, write_point(c, "cpu", 2000, 2),
	               "permission denied: a write request needs the write role; this connection "
	               "has read");
	assert_refused(c, run(c, "DELETE FROM cpu"),
	               "permission denied: DELETE needs the write role; this connection has read");
	for (size_t i = 0; i < 3; i++) {
		char want[160];
		snprintf(want, sizeof want,
		         "permission denied: %s needs the admin role; this connection has read",
		         admin_names[i]);
		assert_refused(c, run(c, admin_statements[i]), want);
	}
	vg_client_close(c);
	/* Nothing refused happened. */
	vg_client_t *a = connect_as(T_ADMIN);
	vg_result_t *r = NULL;
	cr_assert_eq(vg_client_query(a, "SELECT v FROM cpu", &r), 0, "%s", vg_client_errstr(a));
	cr_assert_eq(vg_result_row_count(vg_result_set(r, 0)), 1);
	vg_result_free(r);
	cr_assert_eq(run(a, "SHOW CONTINUOUS QUERIES"), 0);
	vg_client_close(a);
}

Test(auth, write_role_writes_and_deletes_but_cannot_administer)
{
	vg_client_t *c = connect_as(T_WRITE);
	cr_assert_eq(write_point(c, "cpu", 1000, 1), 0, "%s", vg_client_errstr(c));
	for (size_t i = 0; i < sizeof read_statements / sizeof read_statements[0]; i++)
		cr_assert_eq(run(c, read_statements[i]), 0, "%s: %s", read_statements[i],
		             vg_client_errstr(c));
	cr_assert_eq(run(c, "DELETE FROM cpu WHERE host = 'a'"), 0, "%s", vg_client_errstr(c));
	for (size_t i = 0; i < 3; i++) {
		char want[160];
		snprintf(want, sizeof want,
		         "permission denied: %s needs the admin role; this connection has write",
		         admin_names[i]);
		assert_refused(c, run(c, admin_statements[i]), want);
	}
	vg_client_close(c);
}

Test(auth, admin_role_may_do_everything)
{
	vg_client_t *c = connect_as(T_ADMIN);
	cr_assert_eq(write_point(c, "cpu", 1000, 1), 0, "%s", vg_client_errstr(c));
	for (size_t i = 0; i < sizeof read_statements / sizeof read_statements[0]; i++)
		cr_assert_eq(run(c, read_statements[i]), 0, "%s: %s", read_statements[i],
		             vg_client_errstr(c));
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(run(c, admin_statements[i]), 0, "%s: %s", admin_statements[i],
		             vg_client_errstr(c));
	cr_assert_eq(run(c, "DELETE FROM cpu"), 0, "%s", vg_client_errstr(c));
	vg_client_close(c);
}

Test(auth, unknown_token_is_refused_with_a_fatal_error)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	Vigil__V1__Envelope *reply = vg_test_hello_token(fd, &in, "not-a-token-0123456789");
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(reply->error->code, VIGIL__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
	cr_assert(reply->error->fatal);
	cr_assert_str_eq(reply->error->message, "authentication failed: unknown token");
	vg_frame_free_envelope(reply);
	cr_assert_null(vg_test_recv(fd, &in), "the connection stays open");
	close(fd);
	vg_buf_release(&in);
}

Test(auth, missing_token_is_refused_through_libvigil)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect(srv.addr, 5000, &c, err, sizeof err);
	cr_assert_eq(rc, VG_EAUTH, "%d: %s", rc, err);
	cr_assert_null(c);
	cr_assert(strstr(err, "authentication failed: this server needs a token"), "%s", err);
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.token = "wrong-token-0123456789";
	rc = vg_client_connect_with(srv.addr, &o, &c, err, sizeof err);
	cr_assert_eq(rc, VG_EAUTH, "%d: %s", rc, err);
}

static Vigil__V1__Envelope *request(int fd, vg_buf_t *in, Vigil__V1__Envelope *env)
{
	vg_test_send_env(fd, env);
	Vigil__V1__Envelope *reply = vg_test_recv(fd, in);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->id, env->id);
	return reply;
}

Test(auth, every_request_before_a_successful_hello_is_refused)
{
	int fd = vg_test_connect(srv.port);
	vg_buf_t in = VG_BUF_INIT;
	/* A write... */
	double v = 1;
	int64_t t = 1000;
	Vigil__V1__WriteField field = VIGIL__V1__WRITE_FIELD__INIT;
	field.name = "v";
	field.n_values = 1;
	field.values = &v;
	Vigil__V1__WriteField *fields[] = {&field};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = "early";
	block.n_times = 1;
	block.times = &t;
	block.n_fields = 1;
	block.fields = fields;
	Vigil__V1__WriteBlock *blocks[] = {&block};
	Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
	write.n_blocks = 1;
	write.blocks = blocks;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 7;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env.write = &write;
	Vigil__V1__Envelope *reply = request(fd, &in, &env);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(reply->error->code, VIGIL__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
	cr_assert_not(reply->error->fatal);
	cr_assert_str_eq(reply->error->message, "authentication required: the first request on a "
	                                        "connection must be Hello with a token");
	vg_frame_free_envelope(reply);
	/* ... and a query are refused, ... */
	Vigil__V1__Query query = VIGIL__V1__QUERY__INIT;
	query.statement = "SHOW MEASUREMENTS";
	env.id = 8;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_QUERY;
	env.query = &query;
	reply = request(fd, &in, &env);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR);
	cr_assert_eq(reply->error->code, VIGIL__V1__ERROR_CODE__ERROR_UNAUTHENTICATED);
	vg_frame_free_envelope(reply);
	/* ... then a Hello with a token opens the connection, and the write
	 * before it was never executed. */
	reply = vg_test_hello_token(fd, &in, T_ADMIN);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_HELLO_OK);
	vg_frame_free_envelope(reply);
	env.id = 9;
	reply = request(fd, &in, &env);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_RESULT_END,
	             "SHOW MEASUREMENTS found a measurement");
	vg_frame_free_envelope(reply);
	close(fd);
	vg_buf_release(&in);
}

Test(auth, tokens_never_reach_the_log)
{
	vg_client_t *c = connect_as(T_READ);
	cr_assert_eq(run(c, "DELETE FROM cpu"), VG_EPERM);
	vg_client_close(c);
	vg_client_t *bad = NULL;
	char err[VG_CLIENT_ERRLEN];
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.token = "secret-guess-0123456789";
	cr_assert_eq(vg_client_connect_with(srv.addr, &o, &bad, err, sizeof err), VG_EAUTH);
	cr_assert_not(strstr(err, o.token), "the error quotes the token: %s", err);
	static char log[65536];
	size_t len = 0;
	for (int i = 0; i < 10 && !strstr(log, "authentication failed"); i++)
		len = vg_test_server_log(&srv, log, len, sizeof log);
	cr_assert(strstr(log, "authenticated with the read role (client 'libvigil/"), "%s", log);
	cr_assert(strstr(log, "authentication failed (unknown token"), "%s", log);
	cr_assert(strstr(log, "permission denied: DELETE needs the write role"), "%s", log);
	cr_assert_not(strstr(log, "token-0123456789"), "a token was logged:\n%s", log);
	cr_assert_not(strstr(log, o.token), "a token was logged:\n%s", log);
}

/* ---- the CLI ---------------------------------------------------------- */

/* Runs vigil against the server, VIGIL_TOKEN set to env_token (NULL:
 * unset). */
static void run_vigil(vg_test_run_t *r, const char *env_token, const char *const *args)
{
	vg_test_run_vigil(r, srv.dir, srv.addr, env_token, args);
}

Test(auth, cli_takes_the_token_from_the_flag_or_the_environment)
{
	seed();
	vg_test_run_t r;
	const char *flag[] = {"--token",  T_READ, "query", "SELECT v FROM cpu",
	                      "--format", "csv",  NULL};
	run_vigil(&r, NULL, flag);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "time,v\n1000,1.5\n");
	const char *plain[] = {"query", "SELECT v FROM cpu", "--format", "csv", NULL};
	run_vigil(&r, T_READ, plain);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "time,v\n1000,1.5\n");
	/* The flag wins over the environment. */
	run_vigil(&r, "wrong-token-0123456789", flag);
	cr_assert_eq(r.status, 0, "%s", r.err);
}

Test(auth, cli_reports_a_missing_token_and_a_refused_statement)
{
	vg_test_run_t r;
	const char *plain[] = {"query", "SHOW MEASUREMENTS", NULL};
	run_vigil(&r, NULL, plain);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "authentication failed: this server needs a token"), "%s", r.err);
	const char *del[] = {"query", "DELETE FROM cpu", NULL};
	run_vigil(&r, T_READ, del);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "permission denied: DELETE needs the write role"), "%s", r.err);
	const char *write[] = {"write", NULL};
	run_vigil(&r, T_READ, write);
	cr_assert_eq(r.status, 0, "an empty write sends nothing: %s", r.err);
}

/* ---- start-up refusals -------------------------------------------------- */

TestSuite(startup, .timeout = 60);

Test(startup, exposed_listen_without_auth_file_is_refused_with_status_2)
{
	char err[2048];
	const char *args[] = {"--data", "/nonexistent/vigil", "--listen", "0.0.0.0:0", NULL};
	cr_assert_eq(vg_test_vigild_exit(args, err, sizeof err), 2, "%s", err);
	cr_assert(strstr(err, "refusing to listen on 0.0.0.0:0 without authentication"), "%s", err);
	cr_assert(strstr(err, "--auth-file FILE"), "%s", err);
	cr_assert(strstr(err, "--insecure"), "%s", err);
	const char *v6[] = {"--data", "/nonexistent/vigil", "--listen", "[::]:0", NULL};
	cr_assert_eq(vg_test_vigild_exit(v6, err, sizeof err), 2, "%s", err);
}

Test(startup, insecure_or_an_auth_file_pass_the_exposed_listen_check)
{
	/* Both runs stop before binding: the data directory cannot be
	 * created (under a regular file), so status 1, not 2. */
	char dir[256], file[300], data[320], auth[320], err[2048];
	vg_test_tmpdir(dir, sizeof dir);
	snprintf(file, sizeof file, "%s/file", dir);
	snprintf(data, sizeof data, "%s/data", file);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fclose(f);
	const char *insecure[] = {"--data", data, "--listen", "0.0.0.0:0", "--insecure", NULL};
	cr_assert_eq(vg_test_vigild_exit(insecure, err, sizeof err), 1, "%s", err);
	cr_assert_not(strstr(err, "refusing"), "%s", err);
	snprintf(auth, sizeof auth, "%s/auth", dir);
	f = fopen(auth, "w");
	cr_assert_not_null(f);
	fputs("read " T_READ "\n", f);
	fclose(f);
	const char *with_auth[] = {"--data",      data, "--listen", "0.0.0.0:0",
	                           "--auth-file", auth, NULL};
	cr_assert_eq(vg_test_vigild_exit(with_auth, err, sizeof err), 1, "%s", err);
	cr_assert_not(strstr(err, "refusing"), "%s", err);
	vg_test_rmdir(dir);
}

Test(startup, a_bad_auth_file_stops_vigild_with_its_line)
{
	char dir[256], auth[300], data[300], err[2048];
	vg_test_tmpdir(dir, sizeof dir);
	snprintf(auth, sizeof auth, "%s/auth", dir);
	snprintf(data, sizeof data, "%s/data", dir);
	FILE *f = fopen(auth, "w");
	cr_assert_not_null(f);
	fputs("read " T_READ "\n\nwriter short-secret\n", f);
	fclose(f);
	const char *args[] = {"--data", data, "--listen", "127.0.0.1:0", "--auth-file", auth, NULL};
	cr_assert_eq(vg_test_vigild_exit(args, err, sizeof err), 1, "%s", err);
	char want[400];
	snprintf(want, sizeof want,
	         "%s:3: neither word is a role: expected read, write or admin and a token", auth);
	cr_assert(strstr(err, want), "%s", err);
	cr_assert_not(strstr(err, "short-secret"), "%s", err);
	vg_test_rmdir(dir);
}
