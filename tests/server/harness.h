/*
 * harness.h — integration-test helpers: start a real vigild on a free
 * loopback port in a temporary directory, talk raw protocol frames to it,
 * stop it with a signal.
 *
 * vigild is found through VIGIL_BUILD_DIR (set by ctest) as
 * $VIGIL_BUILD_DIR/server/vigild.  The server is started with
 * --listen 127.0.0.1:0 and its port read from its "listening on" log line.
 * Every wait is bounded.
 *
 * With VIGIL_TEST_VALGRIND=1 (the ctest label "valgrind" sets it), vigild
 * runs under valgrind memcheck with its report in <dir>/valgrind.log; any
 * memcheck error or definite leak makes vigild exit with status 99, which
 * vg_test_server_stop reports together with the log.
 */
#ifndef VG_TEST_HARNESS_H
#define VG_TEST_HARNESS_H

#include "vg_test.h"

#include "vg_buf.h"
#include "vg_error.h"
#include "vg_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

typedef struct {
	pid_t pid;
	int port;
	char dir[256];
	char addr[64];
	int log_fd; /* read end of the server's stderr */
	char log[4096]; /* log text read but not yet matched (vg_test_server_wait_log) */
	size_t log_len;
} vg_test_server_t;

static inline int64_t vg_test_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *vg_test_vigild(void)
{
	static char path[1024];
	const char *dir = getenv("VIGIL_BUILD_DIR");
	snprintf(path, sizeof path, "%s/server/vigild", dir ? dir : ".");
	return path;
}

/* Whether the server is to run under valgrind memcheck. */
static inline bool vg_test_valgrind(void)
{
	const char *on = getenv("VIGIL_TEST_VALGRIND");
	return on && on[0] && strcmp(on, "0") != 0;
}

/* How long to wait for things the server does: valgrind slows it ~20x. */
static inline int64_t vg_test_patience_ms(int64_t ms)
{
	return vg_test_valgrind() ? ms * 10 : ms;
}

/* Starts argv[0] (looked up in PATH when it has no slash) with argv
 * (NULL-terminated), its stderr into a pipe whose read end is *err_fd.
 * The child is killed if the test process dies (timeout, crash), so it
 * never holds ctest's output open.  Returns the pid. */
static inline pid_t vg_test_spawn(const char *const *argv, int *err_fd)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	*err_fd = fds[0];
	return pid;
}

/* Starts vigild with data in srv->dir (created if srv->dir is empty) and
 * extra arguments (NULL-terminated). */
static inline void vg_test_server_start(vg_test_server_t *srv, const char *const *extra)
{
	if (!srv->dir[0])
		vg_test_tmpdir(srv->dir, sizeof srv->dir);
	char data[300];
	snprintf(data, sizeof data, "%s/data", srv->dir);
	const char *argv[48];
	int argc = 0;
	char vlog[300];
	if (vg_test_valgrind()) {
		snprintf(vlog, sizeof vlog, "--log-file=%s/valgrind.log", srv->dir);
		const char *vg[] = {"valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
				    "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
				    "--track-origins=yes", vlog};
		for (size_t i = 0; i < sizeof vg / sizeof vg[0]; i++)
			argv[argc++] = vg[i];
	}
	const char *base[] = {vg_test_vigild(), "--data", data, "--listen", "127.0.0.1:0",
			      "--log-level", "info"};
	for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
		argv[argc++] = base[i];
	for (int i = 0; extra && extra[i] && argc < 47; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	int log_fd;
	srv->pid = vg_test_spawn(argv, &log_fd);
	srv->log_fd = log_fd;
	srv->log_len = 0;
	/* Read the log until the port shows up (10 s at most). */
	char log[8192];
	size_t len = 0;
	int64_t deadline = vg_test_ms() + vg_test_patience_ms(10000);
	srv->port = 0;
	while (!srv->port && vg_test_ms() < deadline) {
		struct pollfd p = {log_fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(log_fd, log + len, sizeof log - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		log[len] = 0;
		const char *at = strstr(log, "(port ");
		if (at)
			srv->port = atoi(at + 6);
	}
	cr_assert_gt(srv->port, 0, "vigild did not start: %.*s", (int)len, log);
	snprintf(srv->addr, sizeof srv->addr, "127.0.0.1:%d", srv->port);
	fcntl(log_fd, F_SETFL, O_NONBLOCK);
}

/* Sends sig and waits (10 s at most); returns the exit status or -1. */
static inline int vg_test_server_signal(vg_test_server_t *srv, int sig)
{
	kill(srv->pid, sig);
	int status = 0;
	int64_t deadline = vg_test_ms() + vg_test_patience_ms(10000);
	while (vg_test_ms() < deadline) {
		/* Drain the log so the server never blocks on stderr. */
		char buf[4096];
		while (read(srv->log_fd, buf, sizeof buf) > 0)
			;
		pid_t r = waitpid(srv->pid, &status, WNOHANG);
		if (r == srv->pid) {
			close(srv->log_fd);
			srv->pid = 0;
			if (WIFEXITED(status))
				return WEXITSTATUS(status);
			return 128 + WTERMSIG(status);
		}
		struct timespec ms = {0, 5000000};
		nanosleep(&ms, NULL);
	}
	kill(srv->pid, SIGKILL);
	waitpid(srv->pid, &status, 0);
	close(srv->log_fd);
	srv->pid = 0;
	return -1;
}

static inline void vg_test_server_stop(vg_test_server_t *srv, bool remove)
{
	if (srv->pid) {
		int status = vg_test_server_signal(srv, SIGTERM);
		char report[4096] = "";
		if (status != 0 && vg_test_valgrind()) {
			char path[300];
			snprintf(path, sizeof path, "%s/valgrind.log", srv->dir);
			FILE *f = fopen(path, "r");
			if (f) {
				report[fread(report, 1, sizeof report - 1, f)] = 0;
				fclose(f);
			}
		}
		cr_assert_eq(status, 0, "vigild exited with %d\n%s", status, report);
	}
	if (remove)
		vg_test_rmdir(srv->dir);
}

/* Waits (timeout_ms at most, 0: just looks) for `needle` in the server's
 * log; true when it appeared.  Text before the match is consumed. */
static inline bool vg_test_server_wait_log(vg_test_server_t *srv, const char *needle,
					   int timeout_ms)
{
	int64_t deadline = vg_test_ms() + timeout_ms;
	size_t keep = strlen(needle);
	cr_assert_lt(keep, sizeof srv->log / 2);
	for (;;) {
		srv->log[srv->log_len] = 0;
		char *at = strstr(srv->log, needle);
		if (at) {
			size_t used = (size_t)(at - srv->log) + keep;
			memmove(srv->log, srv->log + used, srv->log_len - used);
			srv->log_len -= used;
			return true;
		}
		/* Keep only what a match could still start in. */
		if (srv->log_len > keep) {
			memmove(srv->log, srv->log + srv->log_len - keep, keep);
			srv->log_len = keep;
		}
		int left = (int)(deadline - vg_test_ms());
		struct pollfd p = {srv->log_fd, POLLIN, 0};
		if (poll(&p, 1, left > 0 ? left : 0) <= 0)
			return false;
		ssize_t n = read(srv->log_fd, srv->log + srv->log_len, sizeof srv->log - 1 - srv->log_len);
		if (n <= 0)
			return false;
		srv->log_len += (size_t)n;
	}
}

/* A "Name:  N kB" line of /proc/<pid>/status (VmRSS, VmHWM) in KiB, or -1. */
static inline long vg_test_proc_kib(pid_t pid, const char *name)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	size_t len = strlen(name);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, name, len) == 0 && line[len] == ':')
			kib = atol(line + len + 1);
	if (f)
		fclose(f);
	return kib;
}

/* ---- raw protocol ---------------------------------------------------- */

static inline int vg_test_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sin = {0};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0, "connect: %s",
		     strerror(errno));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static inline void vg_test_send_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		cr_assert_gt(n, 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

static inline void vg_test_send_env(int fd, Vigil__V1__Envelope *env)
{
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&b, env), 0);
	vg_test_send_all(fd, b.data, b.len);
	vg_buf_release(&b);
}

/* Reads one frame (5 s at most).  NULL if the peer closed first. */
static inline Vigil__V1__Envelope *vg_test_recv(int fd, vg_buf_t *in)
{
	int64_t deadline = vg_test_ms() + 5000;
	for (;;) {
		Vigil__V1__Envelope *env = NULL;
		size_t used = 0;
		int rc = vg_frame_parse(in->data ? in->data : (const uint8_t *)"", in->len,
					64u << 20, &env, &used);
		if (rc == 0) {
			vg_buf_consume(in, used);
			return env;
		}
		cr_assert_eq(rc, VG_EAGAIN, "bad frame from server: %d", rc);
		int left = (int)(deadline - vg_test_ms());
		cr_assert_gt(left, 0, "timed out waiting for a frame");
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, left) <= 0)
			continue;
		cr_assert_eq(vg_buf_reserve(in, 65536), 0);
		ssize_t n = recv(fd, in->data + in->len, 65536, 0);
		if (n <= 0)
			return NULL;
		in->len += (size_t)n;
	}
}

/* Sends Hello (id 1) with `token` (NULL: none) and returns the reply, for
 * the caller to free with vg_frame_free_envelope(); NULL if the server
 * closed first. */
static inline Vigil__V1__Envelope *vg_test_hello_token(int fd, vg_buf_t *in, const char *token)
{
	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = VG_PROTOCOL_VERSION;
	hello.client_name = (char *)"harness";
	if (token)
		hello.token = (char *)token;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	vg_test_send_env(fd, &env);
	return vg_test_recv(fd, in);
}

/* Appends what the server logged since the last call (or since it
 * started) to buf (cap bytes, kept NUL-terminated); waits up to 200 ms
 * for the first bytes.  Returns the new length. */
static inline size_t vg_test_server_log(vg_test_server_t *srv, char *buf, size_t len, size_t cap)
{
	struct pollfd p = {srv->log_fd, POLLIN, 0};
	poll(&p, 1, 200);
	for (;;) {
		if (len + 1 >= cap)
			break;
		ssize_t n = read(srv->log_fd, buf + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	return len;
}

/* Runs vigild with `args` (NULL-terminated, after the program name) that
 * make it exit at start-up; returns its exit status (-1 if it was still
 * running after 10 s, when it is killed) and its stderr in err. */
static inline int vg_test_vigild_exit(const char *const *args, char *err, size_t errlen)
{
	const char *argv[32] = {vg_test_vigild()};
	int argc = 1;
	for (int i = 0; args[i] && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	int err_fd;
	pid_t pid = vg_test_spawn(argv, &err_fd);
	size_t len = 0;
	int64_t deadline = vg_test_ms() + 10000;
	for (;;) {
		struct pollfd p = {err_fd, POLLIN, 0};
		int left = (int)(deadline - vg_test_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		ssize_t n = read(err_fd, err + len, errlen - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len + 1 >= errlen)
			break;
	}
	err[len] = 0;
	close(err_fd);
	int status = 0;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (vg_test_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		struct timespec ms = {0, 5000000};
		nanosleep(&ms, NULL);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* What a run of the vigil CLI printed and returned. */
typedef struct {
	int status;
	char out[16384];
	char err[16384];
} vg_test_run_t;

/* Runs $VIGIL_BUILD_DIR/client/vigil --addr addr args... with stdin from
 * /dev/null and VIGIL_TOKEN set to `token` (NULL: unset); its output goes
 * through files in `dir`. */
static inline void vg_test_run_vigil(vg_test_run_t *r, const char *dir, const char *addr,
				     const char *token, const char *const *args)
{
	char path[1024], out_path[400], err_path[400];
	const char *build = getenv("VIGIL_BUILD_DIR");
	snprintf(path, sizeof path, "%s/client/vigil", build ? build : ".");
	snprintf(out_path, sizeof out_path, "%s/vigil.stdout", dir);
	snprintf(err_path, sizeof err_path, "%s/vigil.stderr", dir);
	const char *argv[32] = {path, "--addr", addr};
	int argc = 3;
	for (int i = 0; args[i] && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (token)
			setenv("VIGIL_TOKEN", token, 1);
		else
			unsetenv("VIGIL_TOKEN");
		if (!freopen("/dev/null", "r", stdin) || !freopen(out_path, "w", stdout) ||
		    !freopen(err_path, "w", stderr))
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	const char *paths[2] = {out_path, err_path};
	char *bufs[2] = {r->out, r->err};
	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(paths[i], "r");
		cr_assert_not_null(f);
		size_t n = fread(bufs[i], 1, sizeof r->out - 1, f);
		bufs[i][n] = 0;
		fclose(f);
	}
}

static inline void vg_test_hello(int fd, vg_buf_t *in)
{
	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = VG_PROTOCOL_VERSION;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = 1;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	env.hello = &hello;
	vg_test_send_env(fd, &env);
	Vigil__V1__Envelope *reply = vg_test_recv(fd, in);
	cr_assert_not_null(reply);
	cr_assert_eq(reply->body_case, VIGIL__V1__ENVELOPE__BODY_HELLO_OK);
	vg_frame_free_envelope(reply);
}

/* Expects an Error frame with this id and fatality whose message holds
 * `fragment` (NULL: any); returns its code. */
static inline Vigil__V1__ErrorCode vg_test_expect_error(int fd, vg_buf_t *in, uint64_t id,
							bool fatal, const char *fragment)
{
	Vigil__V1__Envelope *env = vg_test_recv(fd, in);
	cr_assert_not_null(env, "connection closed before the error frame");
	cr_assert_eq(env->body_case, VIGIL__V1__ENVELOPE__BODY_ERROR, "got body %d",
		     env->body_case);
	cr_assert_eq(env->id, id);
	cr_assert_eq(env->error->fatal, fatal);
	if (fragment)
		cr_assert(strstr(env->error->message, fragment), "message: %s",
			  env->error->message);
	Vigil__V1__ErrorCode code = env->error->code;
	vg_frame_free_envelope(env);
	return code;
}

/* Expects the server to close the connection (5 s at most). */
static inline void vg_test_expect_closed(int fd)
{
	char c;
	struct pollfd p = {fd, POLLIN, 0};
	cr_assert_gt(poll(&p, 1, 5000), 0, "server did not close");
	cr_assert_leq(recv(fd, &c, 1, 0), 0, "expected the connection to be closed");
}

static inline void vg_test_send_subscribe(int fd, uint64_t id, const char *statement,
					  bool has_since, int64_t since)
{
	Vigil__V1__Subscribe sub = VIGIL__V1__SUBSCRIBE__INIT;
	sub.statement = (char *)statement;
	sub.has_since = has_since;
	sub.since = since;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &sub;
	vg_test_send_env(fd, &env);
}

/* Sends (does not wait for) a Write of one block: `measurement`, one tag,
 * one field with n points. */
static inline void vg_test_send_points(int fd, uint64_t id, const char *measurement,
				       const char *tag_key, const char *tag_value,
				       const char *field, const int64_t *times,
				       const double *values, size_t n)
{
	Vigil__V1__Tag tag = VIGIL__V1__TAG__INIT;
	tag.key = (char *)tag_key;
	tag.value = (char *)tag_value;
	Vigil__V1__Tag *tags[] = {&tag};
	Vigil__V1__WriteField f = VIGIL__V1__WRITE_FIELD__INIT;
	f.name = (char *)field;
	f.n_values = n;
	f.values = (double *)values;
	Vigil__V1__WriteField *fields[] = {&f};
	Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
	block.measurement = (char *)measurement;
	block.n_tags = 1;
	block.tags = tags;
	block.n_times = n;
	block.times = (int64_t *)times;
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

#endif
