/*
 * server.c — the loop: listeners, accepting, signals, maintenance timer and
 * the orderly shutdown.
 *
 * Shutdown (SIGINT, SIGTERM or vg_server_stop()):
 *   1. stop accepting and close the listeners;
 *   2. stop reading requests from every connection (requests already read
 *      are in the writer's or the workers' queues);
 *   3. cancel running statements;
 *   4. stop the writer once its queue is empty: every queued write commits
 *      and its acknowledgement is buffered;
 *   5. keep the loop running until the output is flushed or a grace period
 *      passes, then close the connections and return.
 * Nothing acknowledged is lost: an acknowledgement is only ever sent after
 * its commit.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VG_SHUTDOWN_GRACE_S 5.0

int64_t vg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t vg_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void vg_server_config_init(vg_server_config_t *config)
{
	config->listen = "127.0.0.1:8445";
	config->unix_path = NULL;
	config->max_connections = 1024;
	config->max_frame = VG_DEFAULT_MAX_FRAME;
	config->max_output = 64u << 20;
	config->max_buffered = (size_t)1 << 30;
	config->frame_timeout_ns = INT64_C(30) * 1000000000;
	config->idle_timeout_ns = INT64_C(600) * 1000000000;
	config->query_timeout_ns = INT64_C(60) * 1000000000;
	config->query_threads = 2;
	config->query_helpers = 1;
	config->maintenance_ns = INT64_C(60) * 1000000000;
	config->auth_file = NULL;
	config->tls_cert = NULL;
	config->tls_key = NULL;
}

static int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL, 0);
	return flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

/* The host of "host:port" (host may be [v6]) into host[256]; -1 if
 * malformed.  *port points into addr. */
static int split_listen(const char *addr, char host[256], const char **port)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= 256 || !colon[1])
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	*port = colon + 1;
	return 0;
}

bool vg_server_listen_is_loopback(const char *listen)
{
	char host[256];
	const char *port;
	if (split_listen(listen, host, &port))
		return false;
	if (strcmp(host, "localhost") == 0)
		return true;
	struct in_addr v4;
	struct in6_addr v6;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/* Splits "host:port" (host may be [v6]) and binds a listening socket. */
static int listen_tcp(const char *addr, int *fd_out, int *port_out, char *err, size_t errlen)
{
	char host[256];
	const char *port;
	if (split_listen(addr, host, &port)) {
		snprintf(err, errlen, "--listen %s: expected HOST:PORT", addr);
		return VG_EINVAL;
	}
	struct addrinfo hints = {0}, *res;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "--listen %s: %s", addr, gai_strerror(gai));
		return VG_EINVAL;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = fd < 0 ? -errno : 0;
	int one = 1;
	if (rc == 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (rc == 0 && bind(fd, res->ai_addr, res->ai_addrlen) < 0)
		rc = -errno;
	if (rc == 0 && listen(fd, 1024) < 0)
		rc = -errno;
	if (rc == 0)
		rc = set_nonblocking(fd);
	freeaddrinfo(res);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
}

static int listen_unix(const char *path, int *fd_out, char *err, size_t errlen)
{
	struct sockaddr_un sun = {0};
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "--unix %s: path longer than %zu bytes", path,
			 sizeof sun.sun_path - 1);
		return VG_EINVAL;
	}
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	/* A stale socket file from a crash would block bind; remove only a
	 * socket, never a regular file. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = fd < 0 ? -errno : 0;
	if (rc == 0 && bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
		rc = -errno;
	if (rc == 0 && listen(fd, 1024) < 0)
		rc = -errno;
	if (rc == 0)
		rc = set_nonblocking(fd);
	if (rc) {
		snprintf(err, errlen, "cannot listen on unix socket %s: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

/* A plain Error frame, then close; a TLS client could not read a plain
 * frame, so it only sees the close. */
static void refuse(int fd, const char *reason, bool tls)
{
	vg_buf_t frame = VG_BUF_INIT;
	if (!tls && vg_frame_append_error(&frame, 0, VG_ELIMIT, reason, 0, 0, true) == 0)
		(void)send(fd, frame.data, frame.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	vg_buf_release(&frame);
	close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_server_t *server = w->data;
	/* TLS is for the TCP listener; the Unix socket stays plain. */
	vg_tls_context_t *tls = w == &server->tcp_watcher ? server->tls : NULL;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				vg_log(VG_LOG_WARN, "accept failed: %s", strerror(errno));
			return;
		}
		char peer[80] = "unix";
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			char host[64];
			int port;
			if (ss.ss_family == AF_INET) {
				struct sockaddr_in *in = (struct sockaddr_in *)&ss;
				inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
				port = ntohs(in->sin_port);
			} else {
				struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
				inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
				port = ntohs(in6->sin6_port);
			}
			snprintf(peer, sizeof peer, "%s:%d", host, port);
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		if (server->nconns >= server->config.max_connections) {
			char reason[128];
			snprintf(reason, sizeof reason,
				 "too many connections: the limit is %u (--max-connections)",
				 server->config.max_connections);
			vg_log(VG_LOG_WARN, "refusing %s: %s", peer, reason);
			refuse(fd, reason, tls != NULL);
			continue;
		}
		vg_conn_accept(server, fd, peer, tls);
	}
}

/*
 * A sleeping loop thread takes tens of microseconds to wake on a virtual
 * machine — as long as a small query takes to answer.  For VG_SPIN_S after
 * a request the loop keeps polling instead (an idle watcher makes libev
 * poll with a zero timeout), so a client's next request, or a worker's
 * result, is picked up at once; an idle server sleeps as before.  Each
 * round yields the CPU: a client (or the writer) that shares this core
 * would otherwise wait out the whole spin before it could send the request
 * the loop spins for — 0.12 ms per small query when the scheduler put
 * client and loop on one core, against 0.02 ms on two.
 */
#define VG_SPIN_S 100e-6

static void on_spin(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	vg_server_t *server = container_of(w, vg_server_t, spin_watcher);
	if (ev_time() >= server->spin_until)
		ev_idle_stop(loop, w);
	else
		sched_yield();
}

void vg_server_spin(vg_server_t *server)
{
	if (server->shutting_down)
		return;
	server->spin_until = ev_time() + VG_SPIN_S;
	ev_idle_start(server->loop, &server->spin_watcher);
}

static void begin_shutdown(vg_server_t *server, const char *why)
{
	if (server->shutting_down)
		return;
	server->shutting_down = true;
	ev_idle_stop(server->loop, &server->spin_watcher);
	vg_log(VG_LOG_INFO, "%s: shutting down", why);
	if (server->tcp_fd >= 0) {
		ev_io_stop(server->loop, &server->tcp_watcher);
		close(server->tcp_fd);
		server->tcp_fd = -1;
	}
	if (server->unix_fd >= 0) {
		ev_io_stop(server->loop, &server->unix_watcher);
		close(server->unix_fd);
		server->unix_fd = -1;
		unlink(server->unix_path);
	}
	ev_timer_stop(server->loop, &server->maintenance_timer);
	ev_timer_stop(server->loop, &server->window_timer);
	ev_timer_stop(server->loop, &server->buffers_timer);
	for (vg_conn_t *c = server->conns; c; c = c->next) {
		vg_conn_stop_reading(c);
		for (vg_query_job_t *job = c->queries; job; job = job->conn_next)
			atomic_store(&job->cancel, true);
	}
	/* The writer finishes its queue (commits and acknowledgements)
	 * before it returns. */
	vg_writer_stop(server);
	vg_workers_stop(server);
	server->shutdown_started = ev_now(server->loop);
	ev_timer_start(server->loop, &server->shutdown_timer);
}

static bool all_flushed(vg_server_t *server)
{
	for (vg_conn_t *c = server->conns; c; c = c->next)
		if (c->out.len > c->out_sent)
			return false;
	return true;
}

/* Ticks during shutdown: ends the loop once output is flushed or the
 * grace period is over. */
static void on_shutdown_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	vg_server_t *server = container_of(w, vg_server_t, shutdown_timer);
	bool late = ev_now(loop) - server->shutdown_started > VG_SHUTDOWN_GRACE_S;
	if (late)
		vg_log(VG_LOG_WARN, "closing connections with unsent output after %.0f s",
		       VG_SHUTDOWN_GRACE_S);
	if (late || all_flushed(server))
		ev_break(loop, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	begin_shutdown(w->data, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_stop(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	begin_shutdown(w->data, "stop requested");
}

static void on_window_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_subs_tick(container_of(w, vg_server_t, window_timer));
}

static void on_maintenance(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_writer_request_maintenance(container_of(w, vg_server_t, maintenance_timer));
}

int vg_server_new(const vg_server_config_t *config, vg_store_t *store, vg_server_t **out,
		  char *err, size_t errlen)
{
	vg_server_t *server = vg_calloc(1, sizeof *server);
	if (!server) {
		snprintf(err, errlen, "out of memory");
		return VG_ENOMEM;
	}
	server->config = *config;
	server->store = store;
	pthread_mutex_init(&server->cq_lock, NULL);
	server->tcp_fd = server->unix_fd = -1;
	atomic_init(&server->buffered, 0);
	server->started_ns = vg_now_ns();
	server->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	int rc = server->loop ? 0 : VG_ENOMEM;
	if (rc == 0 && config->auth_file) {
		bool loose = false;
		rc = vg_auth_load(config->auth_file, &server->auth, &loose, err, errlen);
		if (rc == 0 && loose)
			vg_log(VG_LOG_WARN,
			       "--auth-file %s can be read by its group or others; "
			       "chmod 600 it",
			       config->auth_file);
		if (rc == 0)
			vg_log(VG_LOG_INFO, "authentication on: %zu tokens from %s",
			       vg_auth_count(server->auth), config->auth_file);
	}
	if (rc == 0 && (config->tls_cert || config->tls_key)) {
		if (!config->tls_cert || !config->tls_key) {
			snprintf(err, errlen, "TLS needs both --tls-cert and --tls-key");
			rc = VG_EINVAL;
		} else {
			rc = vg_tls_server_context(config->tls_cert, config->tls_key, &server->tls,
						   err, errlen);
		}
	}
	if (rc == 0 && config->listen && *config->listen)
		rc = listen_tcp(config->listen, &server->tcp_fd, &server->port, err, errlen);
	if (rc == 0 && config->unix_path) {
		server->unix_path = vg_strndup(config->unix_path, strlen(config->unix_path));
		rc = server->unix_path ? listen_unix(config->unix_path, &server->unix_fd, err, errlen)
				       : VG_ENOMEM;
	}
	if (rc == 0 && server->tcp_fd < 0 && server->unix_fd < 0) {
		snprintf(err, errlen, "nothing to listen on: give --listen or --unix");
		rc = VG_EINVAL;
	}
	if (rc) {
		if (server->tcp_fd >= 0)
			close(server->tcp_fd);
		if (server->unix_fd >= 0)
			close(server->unix_fd);
		if (server->loop)
			ev_loop_destroy(server->loop);
		vg_auth_free(server->auth);
		vg_tls_context_free(server->tls);
		vg_free(server->unix_path);
		vg_free(server);
		return rc;
	}
	struct ev_loop *loop = server->loop;
	if (server->tcp_fd >= 0) {
		ev_io_init(&server->tcp_watcher, on_accept, server->tcp_fd, EV_READ);
		server->tcp_watcher.data = server;
		ev_io_start(loop, &server->tcp_watcher);
	}
	if (server->unix_fd >= 0) {
		ev_io_init(&server->unix_watcher, on_accept, server->unix_fd, EV_READ);
		server->unix_watcher.data = server;
		ev_io_start(loop, &server->unix_watcher);
	}
	ev_signal_init(&server->sigint_watcher, on_signal, SIGINT);
	server->sigint_watcher.data = server;
	ev_signal_start(loop, &server->sigint_watcher);
	ev_signal_init(&server->sigterm_watcher, on_signal, SIGTERM);
	server->sigterm_watcher.data = server;
	ev_signal_start(loop, &server->sigterm_watcher);
	ev_async_init(&server->stop_async, on_stop);
	server->stop_async.data = server;
	ev_async_start(loop, &server->stop_async);
	double period = (double)config->maintenance_ns / 1e9;
	ev_timer_init(&server->maintenance_timer, on_maintenance, period, period);
	ev_timer_start(loop, &server->maintenance_timer);
	ev_timer_init(&server->shutdown_timer, on_shutdown_tick, 0.01, 0.01);
	ev_init(&server->buffers_timer, vg_conn_check_buffers);
	ev_idle_init(&server->spin_watcher, on_spin);
	ev_timer_init(&server->window_timer, on_window_tick, 0.1, 0.1);
	ev_timer_start(loop, &server->window_timer);
	rc = vg_subs_init(server);
	rc = rc ? rc : vg_cq_load(server);
	rc = rc ? rc : vg_writer_start(server);
	rc = rc ? rc : vg_workers_start(server);
	if (rc) {
		snprintf(err, errlen, "cannot start threads: %s", vg_strerror(rc));
		vg_server_free(server);
		return rc;
	}
	*out = server;
	return 0;
}

int vg_server_port(const vg_server_t *server) { return server->port; }

void vg_server_stop(vg_server_t *server) { ev_async_send(server->loop, &server->stop_async); }

int vg_server_run(vg_server_t *server)
{
	if (server->tcp_fd >= 0)
		vg_log(VG_LOG_INFO, "listening on %s (port %d)%s", server->config.listen, server->port,
		       server->tls ? " with TLS" : "");
	if (server->unix_fd >= 0)
		vg_log(VG_LOG_INFO, "listening on unix socket %s", server->unix_path);
	ev_run(server->loop, 0);
	return 0;
}

void vg_server_free(vg_server_t *server)
{
	if (!server)
		return;
	if (server->writer.running)
		vg_writer_stop(server);
	if (server->workers.running)
		vg_workers_stop(server);
	while (server->conns)
		vg_conn_close(server->conns);
	if (server->tcp_fd >= 0)
		close(server->tcp_fd);
	if (server->unix_fd >= 0) {
		close(server->unix_fd);
		unlink(server->unix_path);
	}
	if (server->loop)
		ev_loop_destroy(server->loop);
	vg_subs_release(server);
	vg_cq_release(server);
	pthread_mutex_destroy(&server->cq_lock);
	vg_auth_free(server->auth);
	vg_tls_context_free(server->tls);
	vg_free(server->unix_path);
	vg_free(server);
}
