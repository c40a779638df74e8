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
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VG_READ_CHUNK 65536

static void on_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_write(struct ev_loop *loop, ev_io *w, int revents);

void vg_conn_accept(vg_server_t *server, int fd, const char *peer)
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
	atomic_init(&conn->out_len, 0);
	atomic_init(&conn->closed, false);
	conn->deferred_tail = &conn->deferred;
	ev_io_init(&conn->read_watcher, on_read, fd, EV_READ);
	ev_io_init(&conn->write_watcher, on_write, fd, EV_WRITE);
	ev_io_start(server->loop, &conn->read_watcher);
	conn->next = server->conns;
	if (server->conns)
		server->conns->prev = conn;
	server->conns = conn;
	server->nconns++;
	atomic_fetch_add(&server->stat_connections, 1);
	atomic_fetch_add(&server->connections_total, 1);
	vg_log(VG_LOG_DEBUG, "connection from %s", peer);
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
	close(conn->fd);
	conn->fd = -1;
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
	ev_io_stop(conn->server->loop, &conn->read_watcher);
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
		ssize_t n = send(conn->fd, conn->out.data + conn->out_sent,
				 conn->out.len - conn->out_sent, MSG_NOSIGNAL);
		if (n > 0) {
			conn->out_sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (!allow_close) {
			ev_io_start(server->loop, &conn->write_watcher);
			return;
		}
		vg_log(VG_LOG_DEBUG, "%s: write failed: %s", conn->peer, strerror(errno));
		vg_conn_close(conn);
		return;
	}
	size_t before = atomic_load(&conn->out_len);
	if (conn->out_sent == conn->out.len) {
		conn->out.len = 0;
		conn->out_sent = 0;
		ev_io_stop(server->loop, &conn->write_watcher);
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
		ev_io_start(server->loop, &conn->write_watcher);
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
	/* Best effort: the error goes out only if the socket takes it. */
	vg_buf_t err = VG_BUF_INIT;
	char msg[128];
	snprintf(msg, sizeof msg, "output buffer limit of %zu bytes exceeded; closing",
		 conn->server->config.max_output);
	if (vg_frame_append_error(&err, 0, VG_EOVERFLOW, msg, 0, 0, true) == 0)
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
		ev_io_stop(conn->server->loop, &conn->read_watcher);
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
	conn->hello_done = true;
	if (hello->client_name && *hello->client_name)
		vg_log(VG_LOG_DEBUG, "%s: hello from '%s'", conn->peer, hello->client_name);
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
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_HELLO) {
		if (conn->hello_done)
			vg_conn_send_error(conn, env->id, VG_EPROTO,
					   "Hello was already exchanged on this connection", false);
		else
			handle_hello(conn, env);
		return;
	}
	if (!conn->hello_done) {
		vg_conn_send_error(conn, env->id, VG_EPROTO,
				   "the first request on a connection must be Hello", false);
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

/* Parses and dispatches every complete frame in conn->in. */
static void process_input(vg_conn_t *conn)
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
			return;
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
}

static void read_available(vg_conn_t *conn);

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	vg_conn_t *conn = container_of(w, vg_conn_t, read_watcher);
	/* Any request may close the connection: keep it allocated until the
	 * reading is over. */
	conn->refs++;
	read_available(conn);
	vg_conn_unref(conn);
}

static void read_available(vg_conn_t *conn)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		if (vg_buf_reserve(&conn->in, VG_READ_CHUNK) != 0) {
			vg_log(VG_LOG_ERROR, "%s: out of memory reading; closing", conn->peer);
			vg_conn_close(conn);
			return;
		}
		ssize_t n = recv(conn->fd, conn->in.data + conn->in.len, VG_READ_CHUNK, 0);
		if (n > 0) {
			conn->in.len += (size_t)n;
			process_input(conn);
			if (atomic_load(&conn->closed) || conn->close_after_flush)
				return;
			if ((size_t)n < VG_READ_CHUNK)
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
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			vg_log(VG_LOG_DEBUG, "%s: read failed: %s", conn->peer, strerror(errno));
			vg_conn_close(conn);
		}
		return;
	}
}
