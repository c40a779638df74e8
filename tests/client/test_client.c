/*
 * test_client.c — the connection of client/client.c and the answers of
 * client/result.c, against a fake server running in a thread of the test.
 *
 * The fake listens on a loopback port (or a Unix socket) picked by the
 * kernel, accepts connections and runs a per-test script on each: it
 * reads the client's frames with vg_frame_parse() and answers with frames
 * it packs itself, which lets a script answer as no real server would —
 * byte by byte, with a frame cut off, with an oversized length, late, or
 * not at all.  The script records the first thing it finds wrong in
 * `failure`, which the test checks after joining the thread (Criterion's
 * asserts belong to the test's own thread).
 *
 * In the allocation-failure test the fake must not allocate through
 * vg_malloc (the failure injector is process-wide), so it then decodes with
 * protobuf-c's default allocator: `raw` mode.
 */
#include "vigil.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "client_int.h"
#include "vg_alloc.h"
#include "vg_proto.h"
#include "vg_test.h"

#define ENUM(x) VIGIL__V1__##x
#define T_TIME ENUM(COLUMN_TYPE__COLUMN_TYPE_TIME)
#define T_FLOAT ENUM(COLUMN_TYPE__COLUMN_TYPE_FLOAT)
#define T_STRING ENUM(COLUMN_TYPE__COLUMN_TYPE_STRING)

static void assert_no_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks");
#endif
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the fake server -------------------------------------------------------- */

typedef struct fake fake_t;
typedef void (*script_fn)(fake_t *f, int fd);

struct fake {
	int lfd;
	char addr[128];      /* what the client connects to */
	char unix_path[108]; /* set for a Unix socket */
	pthread_t thread;
	bool running;
	script_fn script;
	atomic_bool stop;    /* ends the accept loop */
	int max_connections; /* 0: one */
	bool raw;            /* decode without vg_malloc */
	int chunk;           /* > 0: send in writes of this many bytes */
	uint32_t max_frame;  /* announced in HelloOk; 0 = default */
	uint8_t *in;         /* bytes read, not parsed (plain malloc) */
	size_t in_len, in_cap;
	char failure[512];
	void *ctx;
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

static void srv_write(fake_t *f, int fd, const uint8_t *p, size_t n)
{
	size_t step = f->chunk > 0 ? (size_t)f->chunk : n;
	for (size_t off = 0; off < n;) {
		size_t len = n - off < step ? n - off : step;
		ssize_t w = send(fd, p + off, len, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* the client went away: its side of the test says so */
		}
		off += (size_t)w;
		if (f->chunk > 0)
			usleep(200);
	}
}

/* Packs and sends one frame, allocating with malloc only. */
static void srv_send(fake_t *f, int fd, const Vigil__V1__Envelope *env)
{
	size_t n = vigil__v1__envelope__get_packed_size(env);
	uint8_t *buf = malloc(VG_FRAME_HEADER + n);
	if (!buf) {
		srv_fail(f, "out of memory");
		return;
	}
	vg_store_be32(buf, (uint32_t)n);
	vigil__v1__envelope__pack(env, buf + VG_FRAME_HEADER);
	srv_write(f, fd, buf, VG_FRAME_HEADER + n);
	free(buf);
}

static void srv_free(fake_t *f, Vigil__V1__Envelope *env)
{
	if (f->raw)
		vigil__v1__envelope__free_unpacked(env, NULL);
	else
		vg_frame_free_envelope(env);
}

/* Reads the next frame; NULL at EOF or after 5 s of silence. */
static Vigil__V1__Envelope *srv_read(fake_t *f, int fd)
{
	for (;;) {
		size_t n;
		if (!vg_frame_peek_length(f->in, f->in_len, SIZE_MAX, &n) &&
		    f->in_len >= VG_FRAME_HEADER + n) {
			Vigil__V1__Envelope *env = NULL;
			if (f->raw) {
				env = vigil__v1__envelope__unpack(NULL, n, f->in + VG_FRAME_HEADER);
			} else {
				size_t consumed;
				int rc = vg_frame_parse(f->in, f->in_len, VG_DEFAULT_MAX_FRAME,
				                        &env, &consumed);
				if (rc)
					srv_fail(f, "vg_frame_parse: %s", vg_strerror(rc));
			}
			if (!env)
				srv_fail(f, "the client sent an undecodable frame");
			memmove(f->in, f->in + VG_FRAME_HEADER + n,
			        f->in_len - VG_FRAME_HEADER - n);
			f->in_len -= VG_FRAME_HEADER + n;
			return env;
		}
		if (f->in_cap - f->in_len < 65536) {
			uint8_t *p = realloc(f->in, f->in_cap + 65536);
			if (!p) {
				srv_fail(f, "out of memory");
				return NULL;
			}
			f->in = p;
			f->in_cap += 65536;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			return NULL;
		ssize_t got = recv(fd, f->in + f->in_len, f->in_cap - f->in_len, 0);
		if (got <= 0)
			return NULL;
		f->in_len += (size_t)got;
	}
}

/* Reads a frame that must be of the given kind; NULL (and a failure) if not. */
static Vigil__V1__Envelope *srv_expect(fake_t *f, int fd, Vigil__V1__Envelope__BodyCase kind)
{
	Vigil__V1__Envelope *env = srv_read(f, fd);
	if (!env) {
		/* In raw mode the client may give up anywhere (out of memory). */
		if (!f->raw)
			srv_fail(f, "expected body %d, got nothing", (int)kind);
		return NULL;
	}
	if (env->body_case != kind) {
		srv_fail(f, "expected body %d, got %d", (int)kind, (int)env->body_case);
		srv_free(f, env);
		return NULL;
	}
	return env;
}

static void send_hello_ok(fake_t *f, int fd, uint64_t id)
{
	Vigil__V1__HelloOk ok = VIGIL__V1__HELLO_OK__INIT;
	ok.protocol_version = VG_PROTOCOL_VERSION;
	ok.server_version = "fake-1.0";
	ok.max_frame = f->max_frame;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_HELLO_OK);
	env.hello_ok = &ok;
	srv_send(f, fd, &env);
}

/* Answers the Hello; false if there was none. */
static bool srv_hello(fake_t *f, int fd)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_HELLO));
	if (!env)
		return false;
	if (env->hello->protocol_version != 1 || env->id != 1)
		srv_fail(f, "Hello with version %u, id %llu", env->hello->protocol_version,
		         (unsigned long long)env->id);
	if (strncmp(env->hello->client_name, "libvigil/", 9))
		srv_fail(f, "client name '%s'", env->hello->client_name);
	send_hello_ok(f, fd, env->id);
	srv_free(f, env);
	return true;
}

static void send_write_ok(fake_t *f, int fd, uint64_t id, uint64_t points)
{
	Vigil__V1__WriteOk ok = VIGIL__V1__WRITE_OK__INIT;
	ok.points = points;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_WRITE_OK);
	env.write_ok = &ok;
	srv_send(f, fd, &env);
}

static void send_error(fake_t *f, int fd, uint64_t id, Vigil__V1__ErrorCode code,
                       const char *message, uint32_t line, uint32_t column, bool fatal)
{
	Vigil__V1__Error e = VIGIL__V1__ERROR__INIT;
	e.code = code;
	e.message = (char *)message;
	e.line = line;
	e.column = column;
	e.fatal = fatal;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_ERROR);
	env.error = &e;
	srv_send(f, fd, &env);
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

/* Reads a Ping and answers it. */
static void srv_ping(fake_t *f, int fd)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_PING));
	if (env) {
		send_pong(f, fd, env);
		srv_free(f, env);
	}
}

static void send_set(fake_t *f, int fd, uint64_t id, const char *name, const char *tag_key,
                     const char *tag_value, size_t ncols, const char *const *cols,
                     const Vigil__V1__ColumnType *types, bool has_time)
{
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	Vigil__V1__Tag *tag_ptr = &tag;
	tag.key = (char *)tag_key;
	tag.value = (char *)tag_value;
	Vigil__V1__ResultSet rs = VIGIL__V1__RESULT_SET__INIT;
	rs.name = (char *)name;
	rs.n_tags = tag_key ? 1 : 0;
	rs.tags = &tag_ptr;
	rs.n_columns = ncols;
	rs.columns = (char **)cols;
	rs.n_types = ncols;
	rs.types = (Vigil__V1__ColumnType *)types;
	rs.has_time = has_time;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_SET);
	env.result_set = &rs;
	srv_send(f, fd, &env);
}

/* One block of rows of a set with columns (time, float, string). */
static void send_rows(fake_t *f, int fd, uint64_t id, size_t n, const int64_t *times,
                      size_t nfloats, const double *floats, uint8_t float_nulls, size_t nstrings,
                      const char *const *strings, uint8_t string_nulls)
{
	Vigil__V1__Column cf = VIGIL__V1__COLUMN__INIT, cs = VIGIL__V1__COLUMN__INIT;
	cf.n_floats = nfloats;
	cf.floats = (double *)floats;
	cf.nulls.len = float_nulls ? 1 : 0;
	cf.nulls.data = &float_nulls;
	cs.n_strings = nstrings;
	cs.strings = (char **)strings;
	cs.nulls.len = string_nulls ? 1 : 0;
	cs.nulls.data = &string_nulls;
	Vigil__V1__Column *cols[2] = {&cf, &cs};
	Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
	rows.n_times = n;
	rows.times = (int64_t *)times;
	rows.n_columns = 2;
	rows.columns = cols;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_ROWS);
	env.result_rows = &rows;
	srv_send(f, fd, &env);
}

static void send_end(fake_t *f, int fd, uint64_t id, uint64_t rows)
{
	Vigil__V1__ResultEnd end = VIGIL__V1__RESULT_END__INIT;
	end.rows = rows;
	end.points_scanned = 100;
	end.elapsed_ns = 12345;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_END);
	env.result_end = &end;
	srv_send(f, fd, &env);
}

static const char *const cpu_cols[] = {"time", "usage", "state"};
static const Vigil__V1__ColumnType cpu_types[] = {T_TIME, T_FLOAT, T_STRING};

/*
 * The canned answer: three result sets, the first over three ResultRows
 * frames with empty cells in both columns, then a set without a time
 * column.  Empty cells hold placeholders (docs/protocol.md, Column).
 *
 *   cpu host=web1   time usage state       cpu host=web2       measurements
 *                   10   1.5   ok          10  7    x          name
 *                   20   -     warn                            cpu
 *                   30   3.5   -                               mem
 *                   40   -     a
 *                   50   5.5   b
 */
static void send_canned(fake_t *f, int fd, uint64_t id, void (*between)(fake_t *, int))
{
	send_set(f, fd, id, "cpu", "host", "web1", 3, cpu_cols, cpu_types, true);
	const int64_t t1[] = {10, 20};
	const double v1[] = {1.5, 0};
	const char *const s1[] = {"ok", "warn"};
	send_rows(f, fd, id, 2, t1, 2, v1, 0x2, 2, s1, 0);
	if (between)
		between(f, fd);
	const int64_t t2[] = {30};
	const double v2[] = {3.5};
	const char *const s2[] = {""};
	send_rows(f, fd, id, 1, t2, 1, v2, 0, 1, s2, 0x1);
	const int64_t t3[] = {40, 50};
	const double v3[] = {-1, 5.5}; /* the placeholder must not show */
	const char *const s3[] = {"a", "b"};
	send_rows(f, fd, id, 2, t3, 2, v3, 0x1, 2, s3, 0);

	send_set(f, fd, id, "cpu", "host", "web2", 3, cpu_cols, cpu_types, true);
	const int64_t t4[] = {10};
	const double v4[] = {7};
	const char *const s4[] = {"x"};
	send_rows(f, fd, id, 1, t4, 1, v4, 0, 1, s4, 0);

	const char *const show_cols[] = {"name"};
	const Vigil__V1__ColumnType show_types[] = {T_STRING};
	send_set(f, fd, id, "measurements", NULL, NULL, 1, show_cols, show_types, false);
	Vigil__V1__Column c = VIGIL__V1__COLUMN__INIT;
	const char *const names[] = {"cpu", "mem"};
	c.n_strings = 2;
	c.strings = (char **)names;
	Vigil__V1__Column *cp = &c;
	Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
	rows.n_columns = 1;
	rows.columns = &cp;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = ENUM(ENVELOPE__BODY_RESULT_ROWS);
	env.result_rows = &rows;
	srv_send(f, fd, &env);
	send_end(f, fd, id, 8);
}

static void check_canned(const vg_result_t *r)
{
	cr_assert_eq(vg_result_set_count(r), 3);
	const vg_result_set_t *s = vg_result_set(r, 0);
	cr_assert_str_eq(vg_result_name(s), "cpu");
	cr_assert_eq(vg_result_tag_count(s), 1);
	cr_assert_str_eq(vg_result_tag_key(s, 0), "host");
	cr_assert_str_eq(vg_result_tag_value(s, 0), "web1");
	cr_assert_eq(vg_result_column_count(s), 3);
	cr_assert(vg_result_has_time(s));
	cr_assert_str_eq(vg_result_column_name(s, 0), "time");
	cr_assert_str_eq(vg_result_column_name(s, 2), "state");
	cr_assert_eq(vg_result_column_type(s, 0), VG_COLUMN_TIME);
	cr_assert_eq(vg_result_column_type(s, 1), VG_COLUMN_FLOAT);
	cr_assert_eq(vg_result_column_type(s, 2), VG_COLUMN_STRING);
	cr_assert_eq(vg_result_row_count(s), 5);
	cr_assert_eq(vg_result_first_row(s), 0);
	static const double usage[] = {1.5, NAN, 3.5, NAN, 5.5};
	static const char *const state[] = {"ok", "warn", NULL, "a", "b"};
	for (size_t row = 0; row < 5; row++) {
		cr_assert_eq(vg_result_time(s, row), (int64_t)(row + 1) * 10);
		double v = -1;
		bool has = vg_result_float(s, row, 1, &v);
		cr_assert_eq(has, !isnan(usage[row]), "row %zu", row);
		cr_assert_eq(vg_result_is_null(s, row, 1), isnan(usage[row]));
		if (has)
			cr_assert_eq(v, usage[row]);
		else
			cr_assert_eq(v, -1, "a null cell must leave *out alone");
		const char *str = vg_result_string(s, row, 2);
		if (state[row])
			cr_assert_str_eq(str, state[row], "row %zu", row);
		else
			cr_assert_null(str, "row %zu", row);
		cr_assert_not(vg_result_is_null(s, row, 0));
	}
	/* Out of range and type mismatches. */
	double v;
	cr_assert_not(vg_result_float(s, 5, 1, &v));
	cr_assert_not(vg_result_float(s, 0, 0, &v));
	cr_assert_not(vg_result_float(s, 0, 2, &v));
	cr_assert_null(vg_result_string(s, 0, 1));
	cr_assert_null(vg_result_string(s, 0, 3));
	cr_assert_eq(vg_result_time(s, 5), 0);
	cr_assert(vg_result_is_null(s, 9, 1));
	cr_assert_str_eq(vg_result_column_name(s, 3), "");
	cr_assert_str_eq(vg_result_tag_key(s, 1), "");

	s = vg_result_set(r, 1);
	cr_assert_str_eq(vg_result_tag_value(s, 0), "web2");
	cr_assert_eq(vg_result_row_count(s), 1);
	cr_assert(vg_result_float(s, 0, 1, &v) && v == 7);

	s = vg_result_set(r, 2);
	cr_assert_str_eq(vg_result_name(s), "measurements");
	cr_assert_not(vg_result_has_time(s));
	cr_assert_eq(vg_result_tag_count(s), 0);
	cr_assert_eq(vg_result_row_count(s), 2);
	cr_assert_str_eq(vg_result_string(s, 1, 0), "mem");
	cr_assert_eq(vg_result_time(s, 1), 0);
	cr_assert_null(vg_result_set(r, 3));

	vg_query_stats_t st;
	vg_result_stats(r, &st);
	cr_assert_eq(st.rows, 8);
	cr_assert_eq(st.points_scanned, 100);
	cr_assert_eq(st.elapsed_ns, 12345);
}

static void *fake_main(void *arg)
{
	fake_t *f = arg;
	int served = 0;
	while (!atomic_load(&f->stop) && served < (f->max_connections ? f->max_connections : 1)) {
		struct pollfd p = {.fd = f->lfd, .events = POLLIN};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		int one = 1;
		if (!f->unix_path[0])
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		f->in_len = 0;
		f->script(f, fd);
		close(fd);
		served++;
	}
	return NULL;
}

/* Listens on 127.0.0.1, port 0; runs `script` on each connection unless it is
 * NULL (then nothing ever accepts). */
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
	if (script) {
		cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
		f->running = true;
	}
}

static void fake_start_unix(fake_t *f, script_fn script)
{
	char dir[96]; /* short enough for sun_path */
	vg_test_tmpdir(dir, sizeof dir);
	cr_assert_lt(strlen(dir) + 3, sizeof f->unix_path);
	memcpy(f->unix_path, dir, strlen(dir));
	memcpy(f->unix_path + strlen(dir), "/s", 3);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->unix_path);
	cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(listen(f->lfd, 8), 0);
	snprintf(f->addr, sizeof f->addr, "unix:%s", f->unix_path);
	f->script = script;
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
	f->running = true;
}

/* Joins the server and fails the test if the server saw anything wrong. */
static void fake_stop(fake_t *f)
{
	atomic_store(&f->stop, true);
	if (f->running)
		pthread_join(f->thread, NULL);
	close(f->lfd);
	if (f->unix_path[0]) {
		unlink(f->unix_path);
		char *slash = strrchr(f->unix_path, '/');
		*slash = '\0';
		rmdir(f->unix_path);
	}
	free(f->in);
	cr_assert_str_empty(f->failure, "fake server: %s", f->failure);
}

static vg_client_t *connect_to(fake_t *f, int timeout_ms)
{
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect(f->addr, timeout_ms, &c, err, sizeof err);
	cr_assert_eq(rc, 0, "connect: %s", err);
	cr_assert_str_empty(vg_client_errstr(c));
	return c;
}

static vg_batch_t *batch_of(size_t n)
{
	vg_batch_t *b;
	cr_assert_eq(vg_batch_new(&b), 0);
	const vg_tag_t tag = {"host", "h"};
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(vg_batch_add(b, "cpu", &tag, 1, "usage", (int64_t)i, (double)i), 0);
	return b;
}

/* ---- connecting --------------------------------------------------------------- */

static void script_hello_ping(fake_t *f, int fd)
{
	if (srv_hello(f, fd))
		srv_ping(f, fd);
}

Test(client, connect_greets_and_pings)
{
	fake_t f = {.max_frame = 1 << 20};
	fake_start(&f, script_hello_ping);
	vg_client_t *c = connect_to(&f, 2000);
	cr_assert_str_eq(vg_client_server_version(c), "fake-1.0");
	cr_assert_eq(vg_client_max_frame(c), 1 << 20);
	cr_assert_not(vg_client_is_closed(c));
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

Test(client, connect_over_a_unix_socket)
{
	fake_t f = {.max_connections = 2};
	fake_start_unix(&f, script_hello_ping);
	vg_client_t *c = connect_to(&f, 2000);                      /* "unix:/path" */
	cr_assert_eq(vg_client_max_frame(c), VG_DEFAULT_MAX_FRAME); /* 0 announced */
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect_unix(f.unix_path, 2000, &c, err, sizeof err), 0, "%s", err);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

Test(client, connect_refused_names_the_address)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	socklen_t len = sizeof sa;
	getsockname(s, (struct sockaddr *)&sa, &len);
	close(s); /* the port is now closed */
	char addr[64], err[VG_CLIENT_ERRLEN];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	vg_client_t *c = (vg_client_t *)&c;
	int rc = vg_client_connect(addr, 1000, &c, err, sizeof err);
	cr_assert_eq(rc, -ECONNREFUSED, "%s", vg_strerror(rc));
	cr_assert_null(c);
	cr_assert(strstr(err, addr), "'%s' does not name %s", err, addr);
}

Test(client, connect_times_out_when_the_server_never_answers)
{
	fake_t f = {0};
	fake_start(&f, NULL); /* listens, never accepts: the Hello goes unanswered */
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int64_t start = now_ms();
	int rc = vg_client_connect(f.addr, 200, &c, err, sizeof err);
	int64_t took = now_ms() - start;
	cr_assert_eq(rc, VG_ETIMEOUT, "%s", vg_strerror(rc));
	cr_assert(took >= 190 && took < 2000, "took %lld ms", (long long)took);
	cr_assert(strstr(err, f.addr), "'%s' does not name the address", err);
	fake_stop(&f);
}

Test(client, malformed_addresses_are_refused)
{
	static const char *const bad[] = {"127.0.0.1:99999", "127.0.0.1:",     ":8445", "[::1",
	                                  "[::1]x",          "127.0.0.1:12ab", "unix:"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		vg_client_t *c;
		char err[VG_CLIENT_ERRLEN];
		int rc = vg_client_connect(bad[i], 100, &c, err, sizeof err);
		cr_assert_eq(rc, VG_EINVAL, "'%s': %s", bad[i], vg_strerror(rc));
		cr_assert(strstr(err, bad[i]), "'%s' does not name '%s'", err, bad[i]);
	}
}

static void script_version_refused(fake_t *f, int fd)
{
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_HELLO));
	if (env) {
		send_error(f, fd, env->id, ENUM(ERROR_CODE__ERROR_VERSION),
		           "protocol version 1 is not supported", 0, 0, true);
		srv_free(f, env);
	}
}

Test(client, a_refused_greeting_is_reported)
{
	fake_t f = {0};
	fake_start(&f, script_version_refused);
	vg_client_t *c;
	char err[VG_CLIENT_ERRLEN];
	int rc = vg_client_connect(f.addr, 2000, &c, err, sizeof err);
	cr_assert_eq(rc, VG_EVERSION);
	cr_assert(strstr(err, f.addr) && strstr(err, "not supported"), "%s", err);
	fake_stop(&f);
}

/* ---- writes --------------------------------------------------------------------- */

static void script_write(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
	if (!env)
		return;
	size_t points = 0;
	for (size_t i = 0; i < env->write->n_blocks; i++)
		for (size_t j = 0; j < env->write->blocks[i]->n_fields; j++)
			points += env->write->blocks[i]->fields[j]->n_values;
	if (points != 10 || env->id != 2)
		srv_fail(f, "write %llu of %zu points", (unsigned long long)env->id, points);
	send_write_ok(f, fd, env->id, points);
	srv_free(f, env);
	/* The second write is refused. */
	env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
	if (!env)
		return;
	send_error(f, fd, env->id, ENUM(ERROR_CODE__ERROR_INVALID),
	           "field 'usage' in measurement 'cpu': too many series", 0, 0, false);
	srv_free(f, env);
	srv_ping(f, fd);
}

Test(client, write_waits_for_the_acknowledgement)
{
	fake_t f = {0};
	fake_start(&f, script_write);
	vg_client_t *c = connect_to(&f, 2000);
	vg_batch_t *b = batch_of(10);
	uint64_t points = 0;
	cr_assert_eq(vg_client_write(c, b, &points), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(points, 10);
	cr_assert_eq(vg_client_write(c, b, &points), VG_EINVAL);
	cr_assert_str_eq(vg_client_errstr(c),
	                 "field 'usage' in measurement 'cpu': too many series");
	cr_assert_eq(vg_client_pending_writes(c), 0);
	cr_assert_eq(vg_client_ping(c), 0, "a refused write must leave the connection usable");
	vg_batch_clear(b);
	cr_assert_eq(vg_client_write(c, b, NULL), VG_EINVAL); /* empty */
	vg_batch_free(b);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_pipeline(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	uint64_t ids[5];
	for (int i = 0; i < 5; i++) { /* all five arrive before any answer */
		Vigil__V1__Envelope *env = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
		if (!env)
			return;
		ids[i] = env->id;
		if (i && ids[i] <= ids[i - 1])
			srv_fail(f, "ids not increasing");
		srv_free(f, env);
	}
	for (int i = 0; i < 5; i++) {
		if (i == 2)
			send_error(f, fd, ids[i], ENUM(ERROR_CODE__ERROR_STORAGE), "disk full", 0,
			           0, false);
		else
			send_write_ok(f, fd, ids[i], (uint64_t)i + 1);
	}
	srv_ping(f, fd);
}

Test(client, pipelined_writes_are_acknowledged_in_order)
{
	fake_t f = {0};
	fake_start(&f, script_pipeline);
	vg_client_t *c = connect_to(&f, 2000);
	vg_batch_t *b = batch_of(3);
	uint64_t sent[5];
	for (int i = 0; i < 5; i++)
		cr_assert_eq(vg_client_write_async(c, b, &sent[i]), 0, "%s", vg_client_errstr(c));
	cr_assert_eq(vg_client_pending_writes(c), 5);
	for (int i = 0; i < 5; i++) {
		uint64_t id = 0, points = 0;
		int rc = vg_client_wait_ack(c, &id, &points);
		cr_assert_eq(id, sent[i], "ack %d for id %llu", i, (unsigned long long)id);
		if (i == 2) {
			cr_assert_eq(rc, VG_ESTORE);
			cr_assert_str_eq(vg_client_errstr(c), "disk full");
		} else {
			cr_assert_eq(rc, 0, "%s", vg_client_errstr(c));
			cr_assert_eq(points, (uint64_t)i + 1);
		}
	}
	uint64_t id = 99;
	cr_assert_eq(vg_client_wait_ack(c, &id, NULL), VG_ENOTFOUND);
	cr_assert_eq(id, 0);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_batch_free(b);
	vg_client_close(c);
	fake_stop(&f);
}

static void send_pending_ack(fake_t *f, int fd)
{
	send_write_ok(f, fd, (uint64_t)(uintptr_t)f->ctx, 3);
}

static void script_ack_during_query(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *w = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
	Vigil__V1__Envelope *q = w ? srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY)) : NULL;
	if (q) {
		f->ctx = (void *)(uintptr_t)w->id;
		send_canned(f, fd, q->id, send_pending_ack); /* the ack arrives mid-answer */
	}
	if (w)
		srv_free(f, w);
	if (q)
		srv_free(f, q);
}

Test(client, acknowledgements_arriving_during_a_query_are_kept)
{
	fake_t f = {0};
	fake_start(&f, script_ack_during_query);
	vg_client_t *c = connect_to(&f, 2000);
	vg_batch_t *b = batch_of(3);
	uint64_t wid, id, points;
	cr_assert_eq(vg_client_write_async(c, b, &wid), 0);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	check_canned(r);
	vg_result_free(r);
	cr_assert_eq(vg_client_wait_ack(c, &id, &points), 0);
	cr_assert_eq(id, wid);
	cr_assert_eq(points, 3);
	vg_batch_free(b);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_limit(fake_t *f, int fd)
{
	if (srv_hello(f, fd))
		srv_ping(f, fd); /* the oversized write never reaches us */
}

Test(client, a_request_over_the_servers_frame_limit_is_not_sent)
{
	fake_t f = {.max_frame = 1024};
	fake_start(&f, script_limit);
	vg_client_t *c = connect_to(&f, 2000);
	vg_batch_t *b = batch_of(1000);
	cr_assert_gt(vg_batch_encoded_size(b), 1024);
	uint64_t id = 5;
	cr_assert_eq(vg_client_write_async(c, b, &id), VG_ELIMIT);
	cr_assert_eq(id, 5, "a failed call must not set the id");
	cr_assert(strstr(vg_client_errstr(c), "frame limit of 1024 bytes"), "%s",
	          vg_client_errstr(c));
	cr_assert_eq(vg_client_pending_writes(c), 0);
	char statement[2048];
	memset(statement, 'x', sizeof statement - 1);
	statement[sizeof statement - 1] = '\0';
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, statement, &r), VG_ELIMIT);
	cr_assert_eq(vg_client_ping(c), 0);
	vg_batch_free(b);
	vg_client_close(c);
	fake_stop(&f);
}

/* ---- queries -------------------------------------------------------------------- */

static void script_query(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	if (strcmp(q->query->statement, "SELECT * FROM cpu"))
		srv_fail(f, "statement '%s'", q->query->statement);
	send_canned(f, fd, q->id, NULL);
	srv_free(f, q);
	/* The second query has a syntax error. */
	q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	send_error(f, fd, q->id, ENUM(ERROR_CODE__ERROR_SYNTAX), "expected FROM, found 'FORM'", 1,
	           23, false);
	srv_free(f, q);
	srv_ping(f, fd);
}

Test(client, query_buffers_every_set_and_reports_syntax_errors)
{
	fake_t f = {0};
	fake_start(&f, script_query);
	vg_client_t *c = connect_to(&f, 2000);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	check_canned(r);
	vg_result_free(r);
	r = (vg_result_t *)&r;
	cr_assert_eq(vg_client_query(c, "SELECT usage_user FORM cpu", &r), VG_ESYNTAX);
	cr_assert_null(r);
	cr_assert_str_eq(vg_client_errstr(c), "line 1, column 23: expected FROM, found 'FORM'");
	cr_assert_eq(vg_client_ping(c), 0);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_query_bytewise(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	f->chunk = 1;
	send_canned(f, fd, q->id, NULL);
	f->chunk = 0;
	srv_free(f, q);
}

Test(client, frames_split_into_single_bytes_are_reassembled)
{
	fake_t f = {0};
	fake_start(&f, script_query_bytewise);
	vg_client_t *c = connect_to(&f, 2000);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), 0, "%s", vg_client_errstr(c));
	check_canned(r);
	vg_result_free(r);
	vg_client_close(c);
	fake_stop(&f);
}

typedef struct events {
	char log[256];
	uint64_t first_rows[8];
	size_t nrows_blocks;
	size_t rows_seen;
	int stop_at; /* stop (return 7) at this ROWS event, 1-based; 0 = never */
} events_t;

static int record(void *ctx, vg_query_event_t event, const vg_result_set_t *set)
{
	events_t *e = ctx;
	size_t len = strlen(e->log);
	if (event == VG_QUERY_SET_BEGIN) {
		snprintf(e->log + len, sizeof e->log - len, "[%s %s]", vg_result_name(set),
		         vg_result_tag_count(set) ? vg_result_tag_value(set, 0) : "-");
		cr_assert_eq(vg_result_row_count(set), 0);
		return 0;
	}
	snprintf(e->log + len, sizeof e->log - len, "%zu", vg_result_row_count(set));
	if (e->nrows_blocks < 8)
		e->first_rows[e->nrows_blocks] = vg_result_first_row(set);
	e->nrows_blocks++;
	e->rows_seen += vg_result_row_count(set);
	return e->stop_at && (int)e->nrows_blocks == e->stop_at ? 7 : 0;
}

static void script_stream(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	send_canned(f, fd, q->id, NULL);
	srv_free(f, q);
	/* The second time the client stops after the first block and cancels. */
	q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	send_canned(f, fd, q->id, NULL);
	Vigil__V1__Envelope *cancel = srv_expect(f, fd, ENUM(ENVELOPE__BODY_CANCEL));
	if (cancel) {
		if (cancel->cancel->request_id != q->id)
			srv_fail(f, "Cancel for %llu, not %llu",
			         (unsigned long long)cancel->cancel->request_id,
			         (unsigned long long)q->id);
		srv_free(f, cancel);
	}
	srv_free(f, q);
	srv_ping(f, fd);
}

Test(client, query_stream_delivers_each_block_and_can_stop)
{
	fake_t f = {0};
	fake_start(&f, script_stream);
	vg_client_t *c = connect_to(&f, 2000);
	events_t e = {0};
	vg_query_stats_t st = {0};
	cr_assert_eq(vg_client_query_stream(c, "SELECT * FROM cpu", record, &e, &st), 0, "%s",
	             vg_client_errstr(c));
	cr_assert_str_eq(e.log, "[cpu web1]212[cpu web2]1[measurements -]2");
	cr_assert_eq(e.first_rows[0], 0);
	cr_assert_eq(e.first_rows[1], 2);
	cr_assert_eq(e.first_rows[2], 3);
	cr_assert_eq(e.first_rows[3], 0);
	cr_assert_eq(st.rows, 8);
	cr_assert_eq(st.points_scanned, 100);

	events_t stop = {.stop_at = 1};
	cr_assert_eq(vg_client_query_stream(c, "SELECT * FROM cpu", record, &stop, NULL), 7);
	cr_assert_str_eq(stop.log, "[cpu web1]2");
	/* The rest of the answer is discarded; the connection goes on. */
	cr_assert_eq(vg_client_ping(c), 0, "%s", vg_client_errstr(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_late_answer(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	/* Say nothing until the client gives up and cancels, then answer anyway. */
	Vigil__V1__Envelope *cancel = srv_expect(f, fd, ENUM(ENVELOPE__BODY_CANCEL));
	if (cancel)
		srv_free(f, cancel);
	send_canned(f, fd, q->id, NULL);
	srv_free(f, q);
	srv_ping(f, fd);
}

Test(client, a_query_timeout_leaves_the_connection_usable)
{
	fake_t f = {0};
	fake_start(&f, script_late_answer);
	vg_client_t *c = connect_to(&f, 2000);
	vg_client_set_timeout(c, 150);
	vg_result_t *r;
	int64_t start = now_ms();
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), VG_ETIMEOUT);
	cr_assert_geq(now_ms() - start, 140);
	cr_assert(strstr(vg_client_errstr(c), "timed out after 150 ms"), "%s", vg_client_errstr(c));
	cr_assert_not(vg_client_is_closed(c));
	vg_client_set_timeout(c, 2000);
	cr_assert_eq(vg_client_ping(c), 0, "%s", vg_client_errstr(c));
	vg_client_close(c);
	fake_stop(&f);
}

/* ---- broken servers ----------------------------------------------------------------- */

static void script_close_mid_frame(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	srv_free(f, q);
	const uint8_t partial[] = {0, 0, 0, 100, 0x08, 0x02, 0x92};
	srv_write(f, fd, partial, sizeof partial);
}

Test(client, a_server_closing_mid_frame_closes_the_client)
{
	fake_t f = {0};
	fake_start(&f, script_close_mid_frame);
	vg_client_t *c = connect_to(&f, 2000);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), VG_ECLOSED);
	cr_assert(strstr(vg_client_errstr(c), "in the middle of a frame"), "%s",
	          vg_client_errstr(c));
	cr_assert(strstr(vg_client_errstr(c), f.addr));
	cr_assert(vg_client_is_closed(c));
	char reason[VG_CLIENT_ERRLEN];
	snprintf(reason, sizeof reason, "%s", vg_client_errstr(c));
	cr_assert_eq(vg_client_ping(c), VG_ECLOSED);
	cr_assert_str_eq(vg_client_errstr(c), reason, "later calls keep the original reason");
	vg_client_close(c);
	fake_stop(&f);
}

static void script_close_with_writes_in_flight(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *w = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
	if (w) {
		send_write_ok(f, fd, w->id, 3);
		srv_free(f, w);
	}
	for (int i = 0; i < 2; i++) {
		w = srv_expect(f, fd, ENUM(ENVELOPE__BODY_WRITE));
		if (w)
			srv_free(f, w);
	}
	/* ... and close without answering those two. */
}

Test(client, writes_in_flight_when_the_connection_drops_each_report_it)
{
	fake_t f = {0};
	fake_start(&f, script_close_with_writes_in_flight);
	vg_client_t *c = connect_to(&f, 2000);
	vg_batch_t *b = batch_of(3);
	uint64_t ids[3], id, points;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(vg_client_write_async(c, b, &ids[i]), 0);
	cr_assert_eq(vg_client_wait_ack(c, &id, &points), 0);
	cr_assert_eq(id, ids[0]);
	for (int i = 1; i < 3; i++) {
		cr_assert_eq(vg_client_wait_ack(c, &id, &points), VG_ECLOSED);
		cr_assert_eq(id, ids[i]);
		cr_assert(strstr(vg_client_errstr(c), "closed"), "%s", vg_client_errstr(c));
	}
	cr_assert_eq(vg_client_wait_ack(c, &id, &points), VG_ECLOSED);
	cr_assert_eq(id, 0);
	cr_assert_eq(vg_client_write_async(c, b, &id), VG_ECLOSED);
	vg_batch_free(b);
	vg_client_close(c);
	fake_stop(&f);
}

static void script_huge_length(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	srv_ping(f, fd);
	Vigil__V1__Envelope *p = srv_expect(f, fd, ENUM(ENVELOPE__BODY_PING));
	if (p)
		srv_free(f, p);
	const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0x08, 0x01};
	srv_write(f, fd, huge, sizeof huge);
}

Test(client, an_oversized_length_prefix_is_a_protocol_error)
{
	fake_t f = {0};
	fake_start(&f, script_huge_length);
	vg_client_t *c = connect_to(&f, 2000);
	cr_assert_eq(vg_client_ping(c), 0);
	cr_assert_eq(vg_client_ping(c), VG_EPROTO);
	cr_assert(strstr(vg_client_errstr(c), "2147483647 bytes, more than the limit"), "%s",
	          vg_client_errstr(c));
	cr_assert(vg_client_is_closed(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_big_frame(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *p = srv_expect(f, fd, ENUM(ENVELOPE__BODY_PING));
	if (p)
		srv_free(f, p);
	/* 70 MiB announced, 2 bytes sent, then the connection closes. */
	const uint8_t start[] = {0x04, 0x60, 0x00, 0x00, 0x08, 0x02};
	srv_write(f, fd, start, sizeof start);
}

Test(client, frames_up_to_the_servers_own_larger_limit_are_accepted)
{
	fake_t f = {.max_frame = 100u << 20};
	fake_start(&f, script_big_frame);
	vg_client_t *c = connect_to(&f, 2000);
	cr_assert_eq(vg_client_ping(c), VG_ECLOSED, "%s", vg_client_errstr(c));
	cr_assert(strstr(vg_client_errstr(c), "in the middle of a frame (6 bytes of it received)"),
	          "%s", vg_client_errstr(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_garbage(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *p = srv_expect(f, fd, ENUM(ENVELOPE__BODY_PING));
	if (p)
		srv_free(f, p);
	const uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
	srv_write(f, fd, garbage, sizeof garbage);
}

Test(client, an_undecodable_frame_is_a_protocol_error)
{
	fake_t f = {0};
	fake_start(&f, script_garbage);
	vg_client_t *c = connect_to(&f, 2000);
	cr_assert_eq(vg_client_ping(c), VG_EPROTO);
	cr_assert(strstr(vg_client_errstr(c), "bad frame from the server"), "%s",
	          vg_client_errstr(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_bad_rows(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	send_set(f, fd, q->id, "cpu", NULL, NULL, 3, cpu_cols, cpu_types, true);
	const int64_t t[] = {1, 2, 3};
	const double v[] = {1};
	const char *const s[] = {"a", "b", "c"};
	send_rows(f, fd, q->id, 3, t, 1, v, 0, 3, s, 0); /* 1 value, 3 rows, no nulls */
	srv_free(f, q);
}

Test(client, rows_that_do_not_fit_their_set_are_a_protocol_error)
{
	fake_t f = {0};
	fake_start(&f, script_bad_rows);
	vg_client_t *c = connect_to(&f, 2000);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), VG_EPROTO);
	cr_assert(strstr(vg_client_errstr(c), "column 'usage' has 1 values for 3 rows"), "%s",
	          vg_client_errstr(c));
	cr_assert(vg_client_is_closed(c));
	vg_client_close(c);
	fake_stop(&f);
}

static void script_shutdown(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_expect(f, fd, ENUM(ENVELOPE__BODY_QUERY));
	if (!q)
		return;
	send_error(f, fd, 0, ENUM(ERROR_CODE__ERROR_SHUTDOWN), "the server is stopping", 0, 0,
	           true);
	srv_free(f, q);
}

Test(client, a_fatal_connection_error_closes_the_client)
{
	fake_t f = {0};
	fake_start(&f, script_shutdown);
	vg_client_t *c = connect_to(&f, 2000);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT * FROM cpu", &r), VG_ECLOSED);
	cr_assert(strstr(vg_client_errstr(c), "the server is stopping"), "%s", vg_client_errstr(c));
	cr_assert(vg_client_is_closed(c));
	vg_client_close(c);
	fake_stop(&f);
}

/* ---- allocation failure ----------------------------------------------------------------- */

static void script_raw_query(fake_t *f, int fd)
{
	if (!srv_hello(f, fd))
		return;
	Vigil__V1__Envelope *q = srv_read(f, fd);
	if (!q)
		return;
	if (q->body_case == ENUM(ENVELOPE__BODY_QUERY))
		send_canned(f, fd, q->id, NULL);
	srv_free(f, q);
	while ((q = srv_read(f, fd))) /* a Cancel, then EOF */
		srv_free(f, q);
}

Test(client, every_allocation_failure_is_reported_and_leaks_nothing)
{
	fake_t f = {.raw = true, .max_connections = 100000};
	fake_start(&f, script_raw_query);
	long k;
	bool failed = true;
	for (k = 0; failed; k++) {
		vg_client_t *c = NULL;
		vg_result_t *r = NULL;
		char err[VG_CLIENT_ERRLEN];
		vg_alloc_fail_after(k);
		int rc = vg_client_connect(f.addr, 2000, &c, err, sizeof err);
		int qrc = rc ? rc : vg_client_query(c, "SELECT * FROM cpu", &r);
		vg_alloc_fail_after(-1);
		failed = rc || qrc;
		cr_assert(rc == 0 || rc == VG_ENOMEM, "k=%ld connect: %s", k, err);
		cr_assert(qrc == 0 || qrc == VG_ENOMEM, "k=%ld query: %s (%s)", k, vg_strerror(qrc),
		          c ? vg_client_errstr(c) : "");
		if (rc == 0 && qrc == VG_ENOMEM) {
			cr_assert_null(r);
			cr_assert_not(vg_client_is_closed(c), "k=%ld: out of memory closed it", k);
		}
		if (!failed)
			check_canned(r);
		vg_result_free(r);
		vg_client_close(c);
		assert_no_leaks();
	}
	cr_assert_gt(k, 10, "only %ld allocations", k);
	fake_stop(&f);
}
