/*
 * conn.c — one client connection: non-blocking reads into a buffer, frame
 * parsing, request dispatch, and buffered non-blocking writes.
 *
 * Reading: bytes accumulate in conn->in; every complete frame is parsed
 * (protocol/vg_proto.h) and dispatched.  A length prefix over --max-frame
 * is refused from the 4 header bytes alone, before anything is buffered;
 * since the frame boundaries are then lost, that error is fatal: the error
 * frame is flushed and the connection closed.  Undecodable bytes with a
 * sane length keep the stream in sync, so they only get an error.
 *
 * Writing: responses are appended to conn->out and written when the socket
 * accepts them; the write watcher runs only while output is pending.  A
 * connection whose unsent output passes --max-output is closed with a
 * LIMIT error (workers pause at a lower high-water mark, so only a client
 * that stops reading pushes or acknowledgements gets there).
 *
 * Limits on clients that hold memory or descriptors without doing work:
 *   - a frame started must be complete within --frame-timeout (a client
 *     that sends half a frame and stalls is closed with a TIMEOUT error);
 *   - a connection with no request, no output draining, no subscription
 *     and no statement or write in flight for --idle-timeout is closed
 *     with a TIMEOUT error (subscribers wait for pushes: never idle);
 *   - every connection's buffers (capacity of in + out) are counted in
 *     server->buffered.  At --max-buffered the server stops reading from
 *     every connection, pushes to connections that have unsent output end
 *     their subscription with OVERFLOW (subs.c) and workers pause on such
 *     connections (worker.c).  Once the buffers have stayed over the cap
 *     for VG_SHED_GRACE_S, the buffers timer closes, one per tick, the
 *     connection with the most unsent output among those whose socket took
 *     nothing for that long, with a LIMIT error (the grace lets a client
 *     that is slow but reading, or that is just now told OVERFLOW, drain).
 *     Below three quarters of the cap reading resumes.  The frame timer
 *     runs on through a pause: partial frames of stalled clients are part
 *     of what must drain.
 * Empty buffers are freed (input) or kept small (output), so an idle
 * connection costs its struct and a socket, not 64 KiB.
 *
 * Transport: every byte goes through transport_recv() / transport_send()
 * / transport_close(), plain socket calls or a TLS session (tls/vg_tls.h)
 * on the TCP listener of a server with --tls-cert.  TLS adds three rules,
 * kept in this section alone: a read may wait for writability and a write
 * for readability (read_wants_write / write_wants_read, and watch_read() /
 * watch_write() start the watcher the waiting side needs, never one that
 * would spin); decrypted bytes held in the session are read on without
 * waiting for the socket (an EV_READ is fed back); and a TLS connection
 * whose first byte is not a TLS handshake is a plain client on the wrong
 * port, answered with a plain fatal Error and closed.
 *
 * Access: with an auth file the connection has no role until its Hello
 * carries a known token (a bad one gets UNAUTHENTICATED, fatal); each
 * request is then checked against the role (auth.h) in dispatch(), and a
 * statement, whose kind is known only once a worker parsed it, in
 * worker.c.  Tokens are never logged.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VG_READ_CHUNK 65536
#define VG_OUT_KEEP 65536        /* an empty output buffer larger than this is freed */
#define VG_BUFFERS_TICK_S 0.1
#define VG_SHED_GRACE_S 2.0

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);
static void read_available(vg_conn_t *conn);
static void on_frame_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_idle_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* Brings server->buffered up to date with this connection's buffers. */
static void account(vg_conn_t *conn)
{
	size_t now = atomic_load(&conn->closed) ? 0 : conn->in.cap + conn->out.cap;
	if (now > conn->accounted)
		atomic_fetch_add(&conn->server->buffered, now - conn->accounted);
	else if (now < conn->accounted)
		atomic_fetch_sub(&conn->server->buffered, conn->accounted - now);
	conn->accounted = now;
}

static inline double seconds(int64_t ns) { return (double)ns / 1e9; }

/* ---- transport -------------------------------------------------------- */

/* The read watcher runs while requests are read (and reading is not
 * paused at --max-buffered), or while a TLS write waits for readability. */
static void watch_read(vg_conn_t *conn)
{
	if ((conn->reading && !conn->read_paused) || conn->write_wants_read)
		ev_io_start(conn->server->loop, &conn->read_watcher);
	else
		ev_io_stop(conn->server->loop, &conn->read_watcher);
}

/* The write watcher runs while output is pending (`on`), unless a TLS
 * write waits for readability (writability would only spin), and while a
 * TLS read waits for writability. */
static void watch_write(vg_conn_t *conn, bool on)
{
	if ((on && !conn->write_wants_read) || conn->read_wants_write)
		ev_io_start(conn->server->loop, &conn->write_watcher);
	else
		ev_io_stop(conn->server->loop, &conn->write_watcher);
}

/* Reads into buf.  Returns the count (> 0), 0 at end of stream, VG_EAGAIN
 * when nothing is ready, or an error (*why says what). */
static int transport_recv(vg_conn_t *conn, void *buf, size_t len, const char **why)
{
	if (!conn->tls) {
		for (;;) {
			ssize_t n = recv(conn->fd, buf, len, 0);
			if (n >= 0)
				return (int)n;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return VG_EAGAIN;
			if (errno != EINTR) {
				*why = strerror(errno);
				return -errno;
			}
		}
	}
	int want = 0;
	int n = vg_tls_read(conn->tls, buf, len, &want);
	bool waits = n == VG_EAGAIN && want == VG_TLS_WANT_WRITE;
	if (waits != conn->read_wants_write) {
		conn->read_wants_write = waits;
		watch_write(conn, conn->out_sent < conn->out.len);
	}
	if (n < 0 && n != VG_EAGAIN)
		*why = vg_tls_errstr(conn->tls);
	return n;
}

/* Writes from buf.  Returns the count (> 0), VG_EAGAIN, or an error (*why
 * says what). */
static int transport_send(vg_conn_t *conn, const void *buf, size_t len, const char **why)
{
	if (!conn->tls) {
		for (;;) {
			ssize_t n = send(conn->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL);
			if (n > 0)
				return (int)n;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return VG_EAGAIN;
			if (n < 0 && errno != EINTR) {
				*why = strerror(errno);
				return -errno;
			}
			if (n == 0) {
				*why = "the socket took nothing";
				return VG_ECLOSED;
			}
		}
	}
	int want = 0;
	int n = vg_tls_write(conn->tls, buf, len, &want);
	bool waits = n == VG_EAGAIN && want == VG_TLS_WANT_READ;
	if (waits != conn->write_wants_read) {
		conn->write_wants_read = waits;
		watch_read(conn);
	}
	if (n < 0 && n != VG_EAGAIN)
		*why = vg_tls_errstr(conn->tls);
	return n;
}

static void transport_close(vg_conn_t *conn)
{
	vg_tls_free(conn->tls); /* one close_notify attempt */
	conn->tls = NULL;
	close(conn->fd);
	conn->fd = -1;
}

/*
 * The first byte of a TLS connection: a TLS client starts with a handshake
 * record; a plain client's Hello starts with a small length prefix.  The
 * plain client gets a plain fatal Error it can read.  Returns true when
 * the connection may go on reading.
 */
static bool tls_check_first_byte(vg_conn_t *conn)
{
	unsigned char first;
	ssize_t n = recv(conn->fd, &first, 1, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0) {
		vg_conn_close(conn);
		return false;
	}
	conn->tls_checked = true;
	if (first == VG_TLS_RECORD_HANDSHAKE)
		return true;
	const char *msg = "this port speaks TLS only: connect with TLS (vigil --tls, or the "
			  "tls option of libvigil)";
	vg_log(VG_LOG_INFO, "%s: plain connection on the TLS port; closing", conn->peer);
	vg_buf_t frame = VG_BUF_INIT;
	if (vg_frame_append_error(&frame, 0, VG_EPROTO, msg, 0, 0, true) == 0)
		(void)send(conn->fd, frame.data, frame.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	vg_buf_release(&frame);
	vg_tls_free(conn->tls); /* no handshake happened: nothing is sent */
	conn->tls = NULL;
	vg_conn_close(conn);
	return false;
}

/* ---- life cycle ------------------------------------------------------- */

void vg_conn_accept(vg_server_t *server, int fd, const char *peer, vg_tls_context_t *tls)
{
	vg_conn_t *conn = vg_calloc(1, sizeof *conn);
	if (!conn) {
		vg_log(VG_LOG_ERROR, "out of memory accepting %s", peer);
		close(fd);
		return;
	}
	conn->server = server;
	conn->fd = fd;
	conn->refs = 1;
	snprintf(conn->peer, sizeof conn->peer, "%s", peer);
	char err[256];
	if (tls && vg_tls_new(tls, fd, NULL, &conn->tls, err, sizeof err) != 0) {
		vg_log(VG_LOG_ERROR, "%s: %s", peer, err);
		close(fd);
		vg_free(conn);
		return;
	}
	/* Without an auth file every connection may do everything. */
	conn->role = server->auth ? VG_ROLE_NONE : VG_ROLE_ADMIN;
	conn->reading = true;
	atomic_init(&conn->out_len, 0);
	atomic_init(&conn->closed, false);
	conn->deferred_tail = &conn->deferred;
	ev_io_init(&conn->read_watcher, on_read, fd, EV_READ);
	ev_io_init(&conn->write_watcher, on_write, fd, EV_WRITE);
	ev_init(&conn->frame_timer, on_frame_timeout);
	ev_init(&conn->idle_timer, on_idle_timeout);
	conn->last_active = conn->last_output = ev_now(server->loop);
	if (server->config.idle_timeout_ns > 0) {
		conn->idle_timer.repeat = seconds(server->config.idle_timeout_ns);
		ev_timer_again(server->loop, &conn->idle_timer);
	}
	conn->read_paused = server->reading_paused;
	watch_read(conn);
	conn->next = server->conns;
	if (server->conns)
		server->conns->prev = conn;
	server->conns = conn;
	server->nconns++;
	atomic_fetch_add(&server->stat_connections, 1);
	atomic_fetch_add(&server->connections_total, 1);
	vg_log(VG_LOG_DEBUG, "connection from %s%s", peer, tls ? " (TLS)" : "");
}

static void conn_free(vg_conn_t *conn)
{
	vg_buf_release(&conn->in);
	vg_buf_release(&conn->out);
	vg_free(conn);
}

void vg_conn_unref(vg_conn_t *conn)
{
	if (--conn->refs == 0)
		conn_free(conn);
}

void vg_conn_close(vg_conn_t *conn)
{
	if (atomic_load(&conn->closed))
		return;
	vg_server_t *server = conn->server;
	atomic_store(&conn->closed, true);
	ev_io_stop(server->loop, &conn->read_watcher);
	ev_io_stop(server->loop, &conn->write_watcher);
	ev_timer_stop(server->loop, &conn->frame_timer);
	ev_timer_stop(server->loop, &conn->idle_timer);
	transport_close(conn);
	account(conn); /* counts 0 from now on; the buffers go with the struct */
	for (vg_query_job_t *job = conn->queries; job; job = job->conn_next)
		atomic_store(&job->cancel, true);
	vg_subs_conn_closed(conn);
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		server->conns = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	server->nconns--;
	atomic_fetch_sub(&server->stat_connections, 1);
	vg_log(VG_LOG_DEBUG, "connection %s closed", conn->peer);
	/* Workers blocked on this connection's output must notice. */
	vg_workers_signal_drained(server);
	vg_conn_unref(conn);
}

void vg_conn_stop_reading(vg_conn_t *conn)
{
	conn->reading = false;
	conn->read_paused = false;
	watch_read(conn);
}

/* Sends a fatal error and closes now: the frame goes out only if nothing
 * else is waiting and the socket takes it (the client may not be reading
 * at all), so that it never lands in the middle of another frame. */
static void close_with_error(vg_conn_t *conn, int code, const char *message)
{
	vg_log(VG_LOG_WARN, "%s: %s", conn->peer, message);
	/* (Not on TLS: plain bytes would break the session's records.) */
	if (!conn->tls && conn->out_sent == conn->out.len) {
		vg_buf_t err = VG_BUF_INIT;
		if (vg_frame_append_error(&err, 0, code, message, 0, 0, true) == 0)
			(void)send(conn->fd, err.data, err.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		vg_buf_release(&err);
	}
	vg_conn_close(conn);
}

static void on_frame_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	(void)loop;
	vg_conn_t *conn = container_of(w, vg_conn_t, frame_timer);
	char msg[160];
	snprintf(msg, sizeof msg,
		 "frame not completed within %g s (%zu bytes of it received; --frame-timeout); "
		 "closing",
		 seconds(conn->server->config.frame_timeout_ns), conn->in.len);
	close_with_error(conn, VG_ETIMEOUT, msg);
}

/* Work the client waits for: such a connection is never idle. */
static bool conn_is_busy(const vg_conn_t *conn)
{
	return conn->subs || conn->queries || conn->writes_pending || conn->deferred;
}

static void on_idle_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	vg_conn_t *conn = container_of(w, vg_conn_t, idle_timer);
	double timeout = seconds(conn->server->config.idle_timeout_ns);
	double now = ev_now(loop);
	if (conn_is_busy(conn))
		conn->last_active = now;
	double quiet = now - conn->last_active;
	if (quiet < timeout) {
		w->repeat = timeout - quiet;
		ev_timer_again(loop, w);
		return;
	}
	char msg[160];
	snprintf(msg, sizeof msg, "idle for %g s with no request (--idle-timeout); closing", timeout);
	close_with_error(conn, VG_ETIMEOUT, msg);
}

/* Keeps the frame timer running exactly while a partial frame is
 * buffered; `fresh`: a new frame began since the last call. */
static void update_frame_timer(vg_conn_t *conn, bool fresh)
{
	vg_server_t *server = conn->server;
	if (server->config.frame_timeout_ns <= 0 || atomic_load(&conn->closed))
		return;
	if (conn->in.len == 0) {
		ev_timer_stop(server->loop, &conn->frame_timer);
		return;
	}
	if (fresh)
		ev_timer_stop(server->loop, &conn->frame_timer);
	if (!ev_is_active(&conn->frame_timer)) {
		ev_timer_set(&conn->frame_timer, seconds(server->config.frame_timeout_ns), 0.);
		ev_timer_start(server->loop, &conn->frame_timer);
	}
}

/* Stops reading from every connection: the buffers are at the cap. */
static void pause_reading(vg_server_t *server)
{
	if (server->reading_paused)
		return;
	server->reading_paused = true;
	vg_log(VG_LOG_WARN,
	       "connection buffers hold %zu bytes, at --max-buffered %zu: not reading requests "
	       "until they drain",
	       atomic_load(&server->buffered), server->config.max_buffered);
	for (vg_conn_t *c = server->conns; c; c = c->next)
		if (c->reading && !c->read_paused) {
			c->read_paused = true;
			watch_read(c);
		}
	ev_timer_set(&server->buffers_timer, VG_BUFFERS_TICK_S, VG_BUFFERS_TICK_S);
	ev_timer_start(server->loop, &server->buffers_timer);
}

void vg_conn_check_buffers(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	vg_server_t *server = container_of(w, vg_server_t, buffers_timer);
	size_t cap = server->config.max_buffered;
	double now = ev_now(loop);
	if (vg_server_over_buffered(server)) {
		if (server->over_since == 0)
			server->over_since = now;
		if (now - server->over_since < VG_SHED_GRACE_S)
			return;
		vg_conn_t *largest = NULL;
		size_t most = 0;
		for (vg_conn_t *c = server->conns; c; c = c->next) {
			size_t unsent = c->out.len - c->out_sent;
			if (unsent > most && now - c->last_output >= VG_SHED_GRACE_S) {
				largest = c;
				most = unsent;
			}
		}
		if (largest) {
			char msg[220];
			snprintf(msg, sizeof msg,
				 "the server's connection buffers are over --max-buffered %zu bytes and "
				 "this client left the most output unread (%zu bytes) for %g s; closing",
				 cap, most, VG_SHED_GRACE_S);
			close_with_error(largest, VG_ELIMIT, msg);
		}
		return;
	}
	server->over_since = 0;
	if (atomic_load(&server->buffered) > cap / 4 * 3)
		return;
	server->reading_paused = false;
	ev_timer_stop(loop, w);
	vg_log(VG_LOG_INFO, "connection buffers down to %zu bytes: reading again",
	       atomic_load(&server->buffered));
	for (vg_conn_t *c = server->conns; c; c = c->next)
		if (c->read_paused) {
			c->read_paused = false;
			if (!server->shutting_down && !c->close_after_flush)
				watch_read(c);
		}
	vg_workers_signal_drained(server);
}

/*
 * Writes as much pending output as the socket takes.  Only the write
 * watcher's own callback may let a failure close the connection
 * (allow_close): callers elsewhere may be iterating over structures that
 * closing frees, so they leave the failure to that callback, which the
 * loop runs next because an errored socket is writable.
 */
static void flush_out(vg_conn_t *conn, bool allow_close)
{
	vg_server_t *server = conn->server;
	while (conn->out_sent < conn->out.len) {
		const char *why = "";
		int n = transport_send(conn, conn->out.data + conn->out_sent,
				       conn->out.len - conn->out_sent, &why);
		if (n > 0) {
			conn->out_sent += (size_t)n;
			conn->last_active = conn->last_output = ev_now(server->loop);
			continue;
		}
		if (n == VG_EAGAIN)
			break;
		if (!allow_close) {
			ev_io_start(server->loop, &conn->write_watcher);
			return;
		}
		vg_log(VG_LOG_DEBUG, "%s: write failed: %s", conn->peer, why);
		vg_conn_close(conn);
		return;
	}
	size_t before = atomic_load(&conn->out_len);
	if (conn->out_sent == conn->out.len) {
		conn->out.len = 0;
		conn->out_sent = 0;
		if (conn->out.cap > VG_OUT_KEEP)
			vg_buf_release(&conn->out);
		account(conn);
		watch_write(conn, false);
		atomic_store(&conn->out_len, 0);
		if (conn->close_after_flush) {
			if (allow_close)
				vg_conn_close(conn);
			else
				ev_io_start(server->loop, &conn->write_watcher);
			return;
		}
	} else {
		/* Compact once half the buffer is sent, so it does not creep. */
		if (conn->out_sent > conn->out.len / 2) {
			vg_buf_consume(&conn->out, conn->out_sent);
			conn->out_sent = 0;
		}
		atomic_store(&conn->out_len, conn->out.len - conn->out_sent);
		account(conn);
		watch_write(conn, true);
	}
	size_t high = vg_output_high_water(&server->config);
	if (before >= high && atomic_load(&conn->out_len) < high)
		vg_workers_signal_drained(server);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_conn_t *conn = container_of(w, vg_conn_t, write_watcher);
	/* flush() may close the connection: keep it allocated until done. */
	conn->refs++;
	if (conn->read_wants_write) {
		if (conn->reading) {
			read_available(conn);
		} else {
			conn->read_wants_write = false;
		}
	}
	if (!atomic_load(&conn->closed))
		flush_out(conn, true);
	vg_conn_unref(conn);
}

void vg_conn_send(vg_conn_t *conn, const vg_buf_t *frames)
{
	if (atomic_load(&conn->closed) || frames->len == 0)
		return;
	size_t pending = conn->out.len - conn->out_sent;
	if (pending + frames->len <= conn->server->config.max_output) {
		vg_conn_send_unbounded(conn, frames);
		return;
	}
	vg_log(VG_LOG_WARN, "%s: output buffer over %zu bytes; closing", conn->peer,
	       conn->server->config.max_output);
	/* Best effort: the error goes out only if the socket takes it.  Not
	 * over TLS, where a write must first finish the record in flight. */
	vg_buf_t err = VG_BUF_INIT;
	char msg[128];
	snprintf(msg, sizeof msg, "output buffer limit of %zu bytes exceeded; closing",
		 conn->server->config.max_output);
	if (!conn->tls && vg_frame_append_error(&err, 0, VG_EOVERFLOW, msg, 0, 0, true) == 0)
		(void)send(conn->fd, err.data, err.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	vg_buf_release(&err);
	vg_conn_close(conn);
}

void vg_conn_send_unbounded(vg_conn_t *conn, const vg_buf_t *frames)
{
	if (atomic_load(&conn->closed) || frames->len == 0)
		return;
	if (vg_buf_append(&conn->out, frames->data, frames->len) != 0) {
		vg_log(VG_LOG_ERROR, "%s: out of memory buffering output; closing", conn->peer);
		vg_conn_close(conn);
		return;
	}
	atomic_store(&conn->out_len, conn->out.len - conn->out_sent);
	account(conn);
	flush_out(conn, false);
}

void vg_conn_send_error_at(vg_conn_t *conn, uint64_t id, int code, const char *message,
			   uint32_t line, uint32_t column)
{
	vg_buf_t frame = VG_BUF_INIT;
	if (vg_frame_append_error(&frame, id, code, message, line, column, false) == 0)
		vg_conn_send(conn, &frame);
	vg_buf_release(&frame);
}

void vg_conn_send_error(vg_conn_t *conn, uint64_t id, int code, const char *message, bool fatal)
{
	vg_buf_t frame = VG_BUF_INIT;
	if (vg_frame_append_error(&frame, id, code, message, 0, 0, fatal) == 0)
		vg_conn_send(conn, &frame);
	vg_buf_release(&frame);
	if (fatal && !atomic_load(&conn->closed)) {
		conn->close_after_flush = true;
		conn->reading = false;
		watch_read(conn);
		if (conn->out_sent == conn->out.len)
			vg_conn_close(conn);
	}
}

static void send_envelope(vg_conn_t *conn, const Vigil__V1__Envelope *env)
{
	vg_buf_t frame = VG_BUF_INIT;
	if (vg_frame_append(&frame, env) == 0)
		vg_conn_send(conn, &frame);
	vg_buf_release(&frame);
}

/* ---- requests -------------------------------------------------------- */

static void handle_hello(vg_conn_t *conn, Vigil__V1__Envelope *env)
{
	Vigil__V1__Hello *hello = env->hello;
	if (hello->protocol_version != VG_PROTOCOL_VERSION) {
		char msg[128];
		snprintf(msg, sizeof msg, "protocol version %u is not supported; this server speaks %u",
			 hello->protocol_version, VG_PROTOCOL_VERSION);
		vg_conn_send_error(conn, env->id, VG_EVERSION, msg, true);
		return;
	}
	/* client_name is free text from the network: the log gets at most 64
	 * printable ASCII characters of it. */
	char client[65];
	const char *name = hello->client_name ? hello->client_name : "";
	size_t n = 0;
	for (; name[n] && n < sizeof client - 1; n++)
		client[n] = name[n] >= 0x20 && name[n] < 0x7f ? name[n] : '?';
	client[n] = '\0';
	vg_auth_t *auth = conn->server->auth;
	if (auth) {
		const char *token = hello->token ? hello->token : "";
		vg_role_t role = vg_auth_check(auth, token, strlen(token));
		if (role == VG_ROLE_NONE) {
			vg_log(VG_LOG_WARN, "%s: authentication failed (%s token, client '%s')",
			       conn->peer, *token ? "unknown" : "no", client);
			vg_conn_send_error(conn, env->id, VG_EAUTH,
					   *token ? "authentication failed: unknown token"
						  : "authentication failed: this server needs a "
						    "token (Hello.token)",
					   true);
			return;
		}
		conn->role = role;
		vg_log(VG_LOG_INFO, "%s: authenticated with the %s role (client '%s')",
		       conn->peer, vg_role_name(role), client);
	} else if (*client) {
		vg_log(VG_LOG_DEBUG, "%s: hello from '%s'", conn->peer, client);
	}
	conn->hello_done = true;
	Vigil__V1__HelloOk ok = VIGIL__V1__HELLO_OK__INIT;
	ok.protocol_version = VG_PROTOCOL_VERSION;
	ok.server_version = (char *)VIGIL_VERSION;
	ok.max_frame = (uint32_t)conn->server->config.max_frame;
	Vigil__V1__Envelope reply = VIGIL__V1__ENVELOPE__INIT;
	reply.id = env->id;
	reply.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO_OK;
	reply.hello_ok = &ok;
	send_envelope(conn, &reply);
}

int vg_conn_check_write(const Vigil__V1__Write *write, char *err, size_t errlen)
{
	for (size_t b = 0; b < write->n_blocks; b++) {
		const Vigil__V1__WriteBlock *block = write->blocks[b];
		int rc = vg_write_block_check(block, err, errlen);
		if (rc)
			return rc;
		for (size_t i = 0; i < block->n_times; i++)
			if (block->times[i] == INT64_MAX) {
				snprintf(err, errlen,
					 "measurement '%s': timestamp %lld is out of range (the largest "
					 "is %lld)",
					 block->measurement, (long long)INT64_MAX,
					 (long long)(INT64_MAX - 1));
				return VG_EINVAL;
			}
	}
	return 0;
}

static void handle_write(vg_conn_t *conn, Vigil__V1__Envelope **envp)
{
	Vigil__V1__Envelope *env = *envp;
	char err[512];
	int rc = vg_conn_check_write(env->write, err, sizeof err);
	if (rc) {
		vg_conn_send_error(conn, env->id, rc, err, false);
		return;
	}
	vg_write_job_t *job = vg_calloc(1, sizeof *job);
	if (!job) {
		vg_conn_send_error(conn, env->id, VG_ENOMEM, "out of memory", false);
		return;
	}
	job->conn = conn;
	job->request_id = env->id;
	job->envelope = env;
	*envp = NULL; /* the job owns it now */
	conn->refs++;
	conn->writes_pending++;
	vg_writer_submit(conn->server, job);
}

static void handle_query(vg_conn_t *conn, Vigil__V1__Envelope *env)
{
	const char *text = env->query->statement ? env->query->statement : "";
	vg_query_job_t *job = vg_calloc(1, sizeof *job);
	char *copy = job ? vg_strndup(text, strlen(text)) : NULL;
	if (!copy) {
		vg_free(job);
		vg_conn_send_error(conn, env->id, VG_ENOMEM, "out of memory", false);
		return;
	}
	job->conn = conn;
	job->request_id = env->id;
	job->statement = copy;
	job->statement_len = strlen(copy);
	job->role = conn->role;
	job->received_ns = vg_monotonic_ns();
	atomic_init(&job->cancel, false);
	job->conn_next = conn->queries;
	if (conn->queries)
		conn->queries->conn_prev = job;
	conn->queries = job;
	conn->refs++;
	/* A statement sees every write sent before it on this connection:
	 * hold it back until those writes have committed. */
	if (conn->writes_pending) {
		job->next = NULL;
		*conn->deferred_tail = job;
		conn->deferred_tail = &job->next;
		return;
	}
	vg_workers_submit(conn->server, job);
}

void vg_conn_write_done(vg_conn_t *conn)
{
	if (--conn->writes_pending > 0)
		return;
	while (conn->deferred) {
		vg_query_job_t *job = conn->deferred;
		conn->deferred = job->next;
		vg_workers_submit(conn->server, job);
	}
	conn->deferred_tail = &conn->deferred;
}

static void handle_cancel(vg_conn_t *conn, Vigil__V1__Envelope *env)
{
	for (vg_query_job_t *job = conn->queries; job; job = job->conn_next)
		if (job->request_id == env->cancel->request_id)
			atomic_store(&job->cancel, true);
}

static void handle_ping(vg_conn_t *conn, Vigil__V1__Envelope *env)
{
	Vigil__V1__Pong pong = VIGIL__V1__PONG__INIT;
	pong.nonce = env->ping->nonce;
	Vigil__V1__Envelope reply = VIGIL__V1__ENVELOPE__INIT;
	reply.id = env->id;
	reply.body_case = VIGIL__V1__ENVELOPE__BODY_PONG;
	reply.pong = &pong;
	send_envelope(conn, &reply);
}

static void dispatch(vg_conn_t *conn, Vigil__V1__Envelope **envp)
{
	Vigil__V1__Envelope *env = *envp;
	conn->last_active = ev_now(conn->server->loop);
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_HELLO) {
		if (conn->hello_done)
			vg_conn_send_error(conn, env->id, VG_EPROTO,
					   "Hello was already exchanged on this connection", false);
		else
			handle_hello(conn, env);
		return;
	}
	if (!conn->hello_done) {
		if (conn->server->auth)
			vg_conn_send_error(conn, env->id, VG_EAUTH,
					   "authentication required: the first request on a "
					   "connection must be Hello with a token",
					   false);
		else
			vg_conn_send_error(conn, env->id, VG_EPROTO,
					   "the first request on a connection must be Hello", false);
		return;
	}
	char why[160], what[48];
	const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field(
		&vigil__v1__envelope__descriptor, (unsigned)env->body_case);
	snprintf(what, sizeof what, "a %s request", field ? field->name : "this");
	if (vg_auth_permit(conn->role, vg_role_for_request(env->body_case), what, why,
			   sizeof why)) {
		vg_log(VG_LOG_INFO, "%s: %s", conn->peer, why);
		vg_conn_send_error(conn, env->id, VG_EPERM, why, false);
		return;
	}
	switch (env->body_case) {
	case VIGIL__V1__ENVELOPE__BODY_WRITE:
		handle_write(conn, envp);
		break;
	case VIGIL__V1__ENVELOPE__BODY_QUERY:
		handle_query(conn, env);
		break;
	case VIGIL__V1__ENVELOPE__BODY_CANCEL:
		handle_cancel(conn, env);
		break;
	case VIGIL__V1__ENVELOPE__BODY_PING:
		handle_ping(conn, env);
		break;
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE:
		vg_subs_subscribe(conn, env->id, env->subscribe);
		break;
	case VIGIL__V1__ENVELOPE__BODY_UNSUBSCRIBE:
		vg_subs_unsubscribe(conn, env->unsubscribe->subscription_id);
		break;
	default: {
		char msg[96];
		snprintf(msg, sizeof msg, "message type %d is not a request", (int)env->body_case);
		vg_conn_send_error(conn, env->id, VG_EPROTO, msg, false);
		break;
	}
	}
}

/* Parses and dispatches every complete frame in conn->in; true when any
 * frame was consumed. */
static bool process_input(vg_conn_t *conn)
{
	size_t max_frame = conn->server->config.max_frame;
	size_t offset = 0;
	while (!atomic_load(&conn->closed) && !conn->close_after_flush && !conn->server->shutting_down) {
		const uint8_t *data = conn->in.data + offset;
		size_t avail = conn->in.len - offset;
		size_t payload;
		int rc = vg_frame_peek_length(data, avail, max_frame, &payload);
		if (rc == VG_EAGAIN)
			break;
		if (rc == VG_ELIMIT) {
			char msg[160];
			snprintf(msg, sizeof msg,
				 "frame of %zu bytes exceeds the maximum frame size of %zu bytes "
				 "(--max-frame); closing",
				 payload, max_frame);
			vg_log(VG_LOG_WARN, "%s: %s", conn->peer, msg);
			vg_conn_send_error(conn, 0, VG_ELIMIT, msg, true);
			return false;
		}
		if (avail < VG_FRAME_HEADER + payload)
			break;
		Vigil__V1__Envelope *env = NULL;
		size_t consumed = 0;
		rc = vg_frame_parse(data, avail, max_frame, &env, &consumed);
		if (rc == VG_EAGAIN)
			break;
		offset += VG_FRAME_HEADER + payload;
		if (rc) {
			uint64_t id = 0;
			char msg[256];
			vg_frame_diagnose(data, VG_FRAME_HEADER + payload, max_frame, &id, msg,
					  sizeof msg);
			vg_log(VG_LOG_DEBUG, "%s: bad frame: %s", conn->peer, msg);
			vg_conn_send_error(conn, id, VG_EPROTO, msg, false);
			continue;
		}
		dispatch(conn, &env);
		if (env)
			vg_frame_free_envelope(env);
	}
	if (offset)
		vg_buf_consume(&conn->in, offset);
	return offset > 0;
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_conn_t *conn = container_of(w, vg_conn_t, read_watcher);
	/* Any request may close the connection: keep it allocated until the
	 * reading is over. */
	conn->refs++;
	if (conn->write_wants_read)
		flush_out(conn, true);
	if (!atomic_load(&conn->closed) && conn->reading && !conn->read_paused)
		read_available(conn);
	if (!atomic_load(&conn->closed) && conn->in.len == 0)
		vg_buf_release(&conn->in);
	account(conn);
	if (vg_server_over_buffered(conn->server))
		pause_reading(conn->server);
	vg_server_spin(conn->server);
	vg_conn_unref(conn);
}

static void read_available(vg_conn_t *conn)
{
	if (conn->tls && !conn->tls_checked && !tls_check_first_byte(conn))
		return;
	for (int rounds = 0; rounds < 16; rounds++) {
		if (vg_buf_reserve(&conn->in, VG_READ_CHUNK) != 0) {
			vg_log(VG_LOG_ERROR, "%s: out of memory reading; closing", conn->peer);
			vg_conn_close(conn);
			return;
		}
		const char *why = "";
		int n = transport_recv(conn, conn->in.data + conn->in.len, VG_READ_CHUNK, &why);
		if (n > 0) {
			bool fresh = conn->in.len == 0;
			conn->in.len += (size_t)n;
			fresh = process_input(conn) || fresh;
			if (atomic_load(&conn->closed) || conn->close_after_flush || !conn->reading)
				return;
			update_frame_timer(conn, fresh);
			account(conn);
			if (vg_server_over_buffered(conn->server))
				return;
			/* A short plain read emptied the socket; TLS reads return a
			 * record at a time, so they go on until VG_EAGAIN. */
			if (!conn->tls && (size_t)n < VG_READ_CHUNK)
				return;
			continue;
		}
		if (n == 0) {
			if (conn->in.len)
				vg_log(VG_LOG_DEBUG, "%s: closed mid-frame (%zu bytes pending)",
				       conn->peer, conn->in.len);
			vg_conn_close(conn);
			return;
		}
		if (n != VG_EAGAIN) {
			vg_log(conn->tls ? VG_LOG_INFO : VG_LOG_DEBUG, "%s: read failed: %s",
			       conn->peer, why);
			vg_conn_close(conn);
		}
		return;
	}
	/* Out of rounds: decrypted bytes inside the TLS session would not wake
	 * the watcher again, so come back for them on the next loop pass. */
	if (conn->tls && vg_tls_pending(conn->tls))
		ev_feed_event(conn->server->loop, &conn->read_watcher, EV_READ);
}
