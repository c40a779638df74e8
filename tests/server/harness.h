/*
 * harness.h — integration-test helpers: start a real vigild on a free
 * loopback port in a temporary directory, talk raw protocol frames to it,
 * stop it with a signal.
 *
 * vigild is found through VIGIL_BUILD_DIR (set by ctest) as
 * $VIGIL_BUILD_DIR/server/vigild.  The server is started with
 * --listen 127.0.0.1:0 and its port read from its "listening on" log line.
 * Every wait is bounded.
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

typedef struct {
	pid_t pid;
	int port;
	char dir[256];
	char addr[64];
	int log_fd; /* read end of the server's stderr */
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

/* Starts argv[0] with argv (NULL-terminated), its stderr into a pipe
 * whose read end is *err_fd.  Returns the pid. */
static inline pid_t vg_test_spawn(const char *const *argv, int *err_fd)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], (char *const *)argv);
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
	const char *argv[32] = {vg_test_vigild(), "--data", data, "--listen", "127.0.0.1:0",
				"--log-level", "info"};
	int argc = 7;
	for (int i = 0; extra && extra[i] && argc < 31; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	int log_fd;
	srv->pid = vg_test_spawn(argv, &log_fd);
	srv->log_fd = log_fd;
	/* Read the log until the port shows up (10 s at most). */
	char log[8192];
	size_t len = 0;
	int64_t deadline = vg_test_ms() + 10000;
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
	int64_t deadline = vg_test_ms() + 10000;
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
		cr_assert_eq(status, 0, "vigild exited with %d", status);
	}
	if (remove)
		vg_test_rmdir(srv->dir);
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

#endif
