/*
 * client.c — the connection: socket, framing and the conversation with
 * vigild, behind the blocking API of vigil.h.
 *
 * Shape.  One non-blocking socket, driven with poll() so that every wait
 * has a deadline, and two byte buffers:
 *
 *   out  frames not yet sent.  A request is encoded with vg_frame_append()
 *        after its size was checked against the server's frame limit, then
 *        flushed.  While a flush waits for the socket it also reads, so a
 *        server that is blocked writing answers to us can never deadlock
 *        with us blocked writing a large request to it.
 *   in   bytes received; in.data[in_off..in.len) are not parsed yet.
 *        vg_frame_parse() finds whole frames there; incomplete input is
 *        kept and more is read.  The buffer is compacted only when it must
 *        grow, so a burst of small frames costs no memmove each, and grows
 *        with the bytes that arrive, never more than 1 MiB ahead of them, so
 *        a length prefix alone cannot make the client allocate.  Frames
 *        above max(64 MiB, the server's max_frame) are refused: a server
 *        never sends more than it accepts.
 *
 * Routing by id.  Every request gets a fresh id (1 is the Hello, then 2,
 * 3, ... never reused), and every frame read goes through pump(), which
 * hands it to whoever it belongs to:
 *
 *   id 0                 a connection-level Error: fails the current call
 *                        (and the connection, if fatal);
 *   the id being awaited returned to the caller (a query reading its rows);
 *   a write in flight    recorded in its pending_write_t, to be returned
 *                        by vg_client_wait_ack() or vg_client_write();
 *   a subscription       handed to subscribe.c (vg_subs_claim), which
 *                        queues it: pushes are delivered only by
 *                        vg_client_process(), never inside another call;
 *   any other id         discarded: the late answer to a request the caller
 *                        gave up on (timeout, callback stop, out of memory).
 *
 * So pipelined writes, queries, synchronous writes and subscriptions mix
 * freely on one connection, and a request given up on never desynchronises
 * it.
 *
 * Failure.  Frames are the unit of sync: a broken frame from the server
 * (undecodable, over 64 MiB, an answer of the wrong kind), EOF, an I/O error
 * or a timeout while sending (the server then holds part of a frame) close
 * the connection for good: closed_code and closed_reason record why, every
 * write in flight is resolved with that code, and later calls return
 * VG_ECLOSED.  A timeout while waiting for an answer, an allocation failure
 * and every error the server reports for one request leave the connection
 * usable.
 *
 * Transport.  Bytes go through transport_recv() / transport_send(): plain
 * socket calls, or a TLS session (tls/vg_tls.h) when the client was made
 * with the tls option.  A TLS operation may wait for the other direction
 * (a read for writability, a write for readability), so each side keeps
 * the poll events it waits for (recv_wait, send_wait), and decrypted bytes
 * inside the session count as input that poll() cannot see
 * (vg_client_has_buffered_frame()).  The handshake runs inside the
 * connect deadline, before the Hello, and verifies the certificate and the
 * host name; the token rides in the Hello.
 *
 * Reconnection.  vg_client_reopen() connects the same client object again
 * (same address, fresh buffers, request ids continuing so that no id is
 * ever reused); subscribe.c calls it from vg_client_process() to resume
 * subscriptions.  Nothing else reconnects.
 *
 * Not here: no threads, no event loop of our own — a caller who wants them
 * builds them on vg_client_fd() and vg_client_process().
 */
#include "client_int.h"

#include "vg_alloc.h"
#include "vg_tls.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef VG_CLIENT_VERSION
#define VG_CLIENT_VERSION "unknown"
#endif

#define DEFAULT_PORT "8445"
#define READ_CHUNK 65536
/* The most input buffer reserved ahead of bytes actually received: a length
 * prefix alone never makes the client allocate the whole frame. */
#define READ_AHEAD_MAX (1u << 20)
/* Larger output buffers are freed after a flush instead of kept. */
#define KEEP_OUT_BYTES (1u << 20)

typedef struct pending_write {
	uint64_t id;
	bool done;
	bool closed;       /* failed because the connection closed */
	int code;          /* 0 or the error */
	uint64_t points;   /* acknowledged points */
	uint64_t done_seq; /* order of completion */
	char *message;     /* owned; the server's message for an error, or NULL */
} pending_write_t;

struct vg_client {
	int fd; /* -1 once closed */
	int timeout_ms;
	int64_t call_deadline; /* a fixed deadline (connect), or 0 */
	char *addr;            /* owned; names the server in messages */
	const char *unix_path; /* inside addr for a Unix socket, else NULL */
	char *server_version;  /* owned */
	size_t max_frame;      /* the server's limit on our frames */
	size_t max_incoming;   /* our limit on its frames */
	uint64_t next_id;
	vg_buf_t in;
	size_t in_off;
	vg_buf_t out;
	size_t out_off;
	pending_write_t *writes; /* in the order sent */
	size_t nwrites, wcap;
	uint64_t done_seq;
	int closed_code;
	char closed_reason[VG_CLIENT_ERRSTR];
	char errstr[VG_CLIENT_ERRSTR];
	size_t frame_bytes;        /* size of the frame read last, prefix included */
	vg_subs_t *subs;           /* owned by subscribe.c; NULL until the first subscribe */
	char *token;               /* owned; sent in every Hello, or NULL */
	vg_tls_context_t *tls_ctx; /* owned; set: TCP connections use TLS */
	char *tls_name;            /* owned; the name the certificate must carry, or NULL */
	vg_tls_t *tls;             /* the session of the current connection */
	short recv_wait;           /* poll events a read waits for (POLLIN; TLS: maybe POLLOUT) */
	short send_wait;           /* poll events a write waits for (POLLOUT; TLS: maybe POLLIN) */
};

/* ---- errors ------------------------------------------------------------------ */

static int set_err(vg_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(vg_client_t *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
	va_end(ap);
	return code;
}

/* Ends the TLS session (one close_notify attempt) and closes the socket. */
static void drop_transport(vg_client_t *c)
{
	vg_tls_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Closes the connection for good, with the current errstr as the reason. */
static int close_conn(vg_client_t *c, int code)
{
	drop_transport(c);
	if (!c->closed_code) {
		c->closed_code = code;
		snprintf(c->closed_reason, sizeof c->closed_reason, "%s", c->errstr);
	}
	for (size_t i = 0; i < c->nwrites; i++) {
		pending_write_t *w = &c->writes[i];
		if (!w->done) {
			w->done = w->closed = true;
			w->code = c->closed_code;
			w->done_seq = ++c->done_seq;
		}
	}
	return code;
}

static int fail_conn(vg_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_conn(vg_client_t *c, int code, const char *fmt, ...)
{
	int n = snprintf(c->errstr, sizeof c->errstr, "%s: ", c->addr);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof c->errstr)
		vsnprintf(c->errstr + n, sizeof c->errstr - (size_t)n, fmt, ap);
	va_end(ap);
	return close_conn(c, code);
}

static int check_open(vg_client_t *c)
{
	if (c->fd >= 0)
		return 0;
	return set_err(c, VG_ECLOSED, "%s", c->closed_reason);
}

/* The name of an envelope's body ("write_ok") for messages. */
static const char *body_name(const Vigil__V1__Envelope *env)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
	    &vigil__v1__envelope__descriptor, (unsigned)env->body_case);
	return f ? f->name : "unknown";
}

/* Puts a request's Error into errstr ("line L, column C: message" when it
 * has a position) and returns its code; a fatal one closes the connection. */
static int server_error(vg_client_t *c, const Vigil__V1__Error *e)
{
	int code = vg_error_from_wire(e->code);
	const char *msg = e->message && *e->message ? e->message : vg_strerror(code);
	if (e->line && strncmp(msg, "line ", 5))
		set_err(c, code, "line %u, column %u: %s", (unsigned)e->line, (unsigned)e->column,
		        msg);
	else
		set_err(c, code, "%s", msg);
	if (e->fatal)
		close_conn(c, code);
	return code;
}

/* ---- time and readiness ------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline of the next wait: the call's fixed one, or timeout_ms from
 * now (so the timeout bounds inactivity), or 0 for none. */
static int64_t wait_deadline(const vg_client_t *c)
{
	if (c->call_deadline)
		return c->call_deadline;
	return c->timeout_ms > 0 ? now_ms() + c->timeout_ms : 0;
}

/* A wait for input first polls without sleeping for this long, yielding
 * the CPU between polls: a small query's answer usually arrives within it,
 * and a thread that never slept is not woken (tens of microseconds on a
 * virtual machine, a third of such a round trip). */
#define VG_SPIN_NS 50000

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Waits until fd is ready for `events`.  Returns 0 (*revents set),
 * VG_ETIMEOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline, short *revents)
{
	if (events == POLLIN) {
		int64_t until = now_ns() + VG_SPIN_NS;
		do {
			struct pollfd p = {.fd = fd, .events = events};
			if (poll(&p, 1, 0) > 0) {
				*revents = p.revents;
				return 0;
			}
			sched_yield();
		} while (now_ns() < until);
	}
	for (;;) {
		int ms = -1;
		if (deadline) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return VG_ETIMEOUT;
			ms = left > 1000000000 ? 1000000000 : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, ms);
		if (n > 0) {
			*revents = p.revents;
			return 0;
		}
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int timeout_err(vg_client_t *c)
{
	if (c->call_deadline)
		return set_err(c, VG_ETIMEOUT, "%s: timed out after %d ms connecting", c->addr,
		               c->timeout_ms);
	return set_err(c, VG_ETIMEOUT, "%s: timed out after %d ms waiting for the server", c->addr,
	               c->timeout_ms);
}

/* ---- bytes in and out ---------------------------------------------------------- */

/* One read into buf.  Returns the count (> 0), 0 at end of stream,
 * VG_EAGAIN (recv_wait says what to poll for), or -errno / VG_ETLS with
 * *why. */
static int transport_recv(vg_client_t *c, void *buf, size_t len, const char **why)
{
	c->recv_wait = POLLIN;
	if (c->tls) {
		int want = 0;
		int n = vg_tls_read(c->tls, buf, len, &want);
		if (n == VG_EAGAIN && want == VG_TLS_WANT_WRITE)
			c->recv_wait = POLLOUT;
		if (n < 0 && n != VG_EAGAIN)
			*why = vg_tls_errstr(c->tls);
		return n;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len > INT_MAX ? INT_MAX : len, 0);
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

/* One write from buf.  Returns the count (> 0), VG_EAGAIN (send_wait says
 * what to poll for), or an error with *why. */
static int transport_send(vg_client_t *c, const void *buf, size_t len, const char **why)
{
	c->send_wait = POLLOUT;
	if (c->tls) {
		int want = 0;
		int n = vg_tls_write(c->tls, buf, len, &want);
		if (n == VG_EAGAIN && want == VG_TLS_WANT_READ)
			c->send_wait = POLLIN;
		if (n < 0 && n != VG_EAGAIN)
			*why = vg_tls_errstr(c->tls);
		return n;
	}
	for (;;) {
		ssize_t n = send(c->fd, buf, len > INT_MAX ? INT_MAX : len, MSG_NOSIGNAL);
		if (n > 0)
			return (int)n;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return VG_EAGAIN;
		if (n == 0 || errno != EINTR) {
			*why = n == 0 ? "the socket took nothing" : strerror(errno);
			return n == 0 ? VG_ECLOSED : -errno;
		}
	}
}

/* One recv() into `in`.  Returns 1 if bytes arrived, 0 if none were ready, or
 * a closing error (EOF, I/O error), which has closed the connection. */
static int recv_some(vg_client_t *c)
{
	if (c->in_off && c->in_off == c->in.len)
		c->in.len = c->in_off = 0;
	if (c->in.cap - c->in.len < READ_CHUNK / 4 + 1 && vg_buf_reserve(&c->in, READ_CHUNK))
		return set_err(c, VG_ENOMEM, "out of memory reading from the server");
	const char *why = "";
	int n = transport_recv(c, c->in.data + c->in.len, c->in.cap - c->in.len - 1, &why);
	if (n > 0) {
		c->in.len += (size_t)n;
		return 1;
	}
	if (n == 0) {
		size_t left = c->in.len - c->in_off;
		if (left)
			return fail_conn(c, VG_ECLOSED,
			                 "the server closed the connection in the middle "
			                 "of a frame (%zu bytes of it received)",
			                 left);
		return fail_conn(c, VG_ECLOSED, "the server closed the connection");
	}
	if (n == VG_EAGAIN)
		return 0;
	return fail_conn(c, n, "receive: %s", why);
}

/* Reads at least one byte, waiting up to the timeout. */
static int fill(vg_client_t *c)
{
	for (;;) {
		int rc = recv_some(c);
		if (rc)
			return rc < 0 ? rc : 0;
		short revents;
		rc = wait_fd(c->fd, c->recv_wait, wait_deadline(c), &revents);
		if (rc == VG_ETIMEOUT)
			return timeout_err(c);
		if (rc)
			return fail_conn(c, rc, "poll: %s", strerror(-rc));
	}
}

/* Sends everything in `out`.  Reads what the server sends meanwhile. */
static int flush(vg_client_t *c)
{
	while (c->out_off < c->out.len) {
		const char *why = "";
		int n = transport_send(c, c->out.data + c->out_off, c->out.len - c->out_off, &why);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n != VG_EAGAIN)
			return fail_conn(c, n, "send: %s", why);
		bool room = c->in.len - c->in_off < c->max_incoming + VG_FRAME_HEADER;
		short revents = 0;
		int rc = wait_fd(c->fd, (short)(c->send_wait | (room ? POLLIN : 0)),
		                 wait_deadline(c), &revents);
		if (rc == VG_ETIMEOUT)
			return fail_conn(c, VG_ETIMEOUT,
			                 "timed out after %d ms sending (the server stopped "
			                 "reading)",
			                 c->timeout_ms);
		if (rc)
			return fail_conn(c, rc, "poll: %s", strerror(-rc));
		if (room && (revents & POLLIN)) {
			rc = recv_some(c);
			if (rc < 0)
				return rc;
		}
	}
	c->out.len = c->out_off = 0;
	if (c->out.cap > KEEP_OUT_BYTES)
		vg_buf_release(&c->out);
	return 0;
}

/* Takes the next whole frame out of `in` without reading the socket.
 * Returns 0 (*env the caller's to free), VG_EAGAIN when no whole frame is
 * buffered, or a failure (a bad frame closes the connection). */
static int parse_buffered(vg_client_t *c, Vigil__V1__Envelope **env)
{
	size_t avail = c->in.len - c->in_off;
	size_t consumed = 0;
	int rc = VG_EAGAIN;
	if (avail)
		rc = vg_frame_parse(c->in.data + c->in_off, avail, c->max_incoming, env, &consumed);
	if (rc == 0) {
		c->in_off += consumed;
		c->frame_bytes = consumed;
		if (c->in_off == c->in.len)
			c->in.len = c->in_off = 0;
		return 0;
	}
	if (rc == VG_EAGAIN)
		return rc;
	if (rc == VG_ELIMIT) {
		size_t n = 0;
		vg_frame_peek_length(c->in.data + c->in_off, avail, SIZE_MAX, &n);
		return fail_conn(c, VG_EPROTO,
		                 "the server sent a frame of %zu bytes, more than the limit "
		                 "of %zu",
		                 n, c->max_incoming);
	}
	if (rc == VG_EPROTO) {
		char why[256];
		uint64_t id;
		vg_frame_diagnose(c->in.data + c->in_off, avail, c->max_incoming, &id, why,
		                  sizeof why);
		return fail_conn(c, VG_EPROTO, "bad frame from the server: %s", why);
	}
	return set_err(c, rc, "out of memory decoding a frame");
}

/* Makes room in `in` for the rest of the frame being received when its
 * size is known, but never more than READ_AHEAD_MAX ahead of what has
 * arrived. */
static int reserve_input(vg_client_t *c)
{
	size_t avail = c->in.len - c->in_off;
	size_t want = READ_CHUNK, n;
	if (avail >= VG_FRAME_HEADER &&
	    !vg_frame_peek_length(c->in.data + c->in_off, avail, c->max_incoming, &n) &&
	    VG_FRAME_HEADER + n - avail > want)
		want = VG_FRAME_HEADER + n - avail;
	if (want > READ_AHEAD_MAX)
		want = READ_AHEAD_MAX;
	if (c->in_off && c->in.cap - c->in.len - 1 < want) {
		vg_buf_consume(&c->in, c->in_off);
		c->in_off = 0;
	}
	if (vg_buf_reserve(&c->in, want))
		return set_err(c, VG_ENOMEM, "out of memory reading a frame");
	return 0;
}

/* Reads the next whole frame.  *env is the caller's to free. */
static int read_frame(vg_client_t *c, Vigil__V1__Envelope **env)
{
	for (;;) {
		int rc = parse_buffered(c, env);
		if (rc != VG_EAGAIN)
			return rc;
		rc = reserve_input(c);
		if (!rc)
			rc = fill(c);
		if (rc)
			return rc;
	}
}

/* Encodes and sends one request.  `what` names it in the VG_ELIMIT message. */
static int send_request(vg_client_t *c, const Vigil__V1__Envelope *env, const char *what)
{
	size_t size = vigil__v1__envelope__get_packed_size(env);
	if (size > c->max_frame)
		return set_err(
		    c, VG_ELIMIT, "%s of %zu bytes exceeds the server's frame limit of %zu bytes%s",
		    what, size, c->max_frame,
		    env->body_case == VIGIL__V1__ENVELOPE__BODY_WRITE ? "; split the batch" : "");
	int rc = vg_frame_append(&c->out, env);
	if (rc)
		return set_err(c, rc, "encoding the %s: %s", what, vg_strerror(rc));
	return flush(c);
}

/* ---- routing --------------------------------------------------------------------- */

static pending_write_t *find_write(vg_client_t *c, uint64_t id)
{
	for (size_t i = 0; i < c->nwrites; i++)
		if (c->writes[i].id == id)
			return &c->writes[i];
	return NULL;
}

static void remove_write(vg_client_t *c, pending_write_t *w)
{
	size_t i = (size_t)(w - c->writes);
	vg_free(w->message);
	memmove(w, w + 1, (c->nwrites - i - 1) * sizeof *w);
	c->nwrites--;
}

static int complete_write(vg_client_t *c, pending_write_t *w, const Vigil__V1__Envelope *env)
{
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_WRITE_OK) {
		w->points = env->write_ok->points;
	} else if (env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR) {
		const Vigil__V1__Error *e = env->error;
		w->code = vg_error_from_wire(e->code);
		if (e->message && *e->message)
			w->message = vg_strndup(e->message, strlen(e->message)); /* NULL: no text */
	} else {
		return fail_conn(c, VG_EPROTO, "unexpected %s frame in answer to write %llu",
		                 body_name(env), (unsigned long long)w->id);
	}
	w->done = true;
	w->done_seq = ++c->done_seq;
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR && env->error->fatal)
		fail_conn(c, w->code, "the server closed the connection after refusing write %llu",
		          (unsigned long long)w->id);
	return 0;
}

static int connection_error(vg_client_t *c, const Vigil__V1__Envelope *env)
{
	if (env->body_case != VIGIL__V1__ENVELOPE__BODY_ERROR)
		return fail_conn(c, VG_EPROTO, "unexpected %s frame with id 0", body_name(env));
	const Vigil__V1__Error *e = env->error;
	int code = vg_error_from_wire(e->code);
	const char *msg = e->message && *e->message ? e->message : vg_strerror(code);
	if (e->fatal)
		return fail_conn(c, code, "server: %s", msg);
	return set_err(c, code, "%s: server: %s", c->addr, msg);
}

/*
 * Routes one frame (see the file comment), taking ownership of it.  *mine
 * is set to the frame, the caller's to free, when its id is `want` (0: the
 * caller awaits no particular request); else NULL.
 */
static int route(vg_client_t *c, Vigil__V1__Envelope *env, uint64_t want,
                 Vigil__V1__Envelope **mine)
{
	*mine = NULL;
	int rc = 0;
	pending_write_t *w;
	if (env->id == 0)
		rc = connection_error(c, env);
	else if (want && env->id == want)
		*mine = env;
	else if ((w = find_write(c, env->id)) && !w->done)
		rc = complete_write(c, w, env);
	else if (c->subs && vg_subs_claim(c, c->subs, env, c->frame_bytes))
		return check_open(c); /* queued (owned there now); claiming may send */
	/* else: an answer nobody waits for any more. */
	if (!*mine)
		vg_frame_free_envelope(env);
	return rc;
}

/* Reads one frame and routes it. */
static int pump(vg_client_t *c, uint64_t want, Vigil__V1__Envelope **mine)
{
	*mine = NULL;
	Vigil__V1__Envelope *env;
	int rc = read_frame(c, &env);
	return rc ? rc : route(c, env, want, mine);
}

/* Waits for the answer to request `id`; *env is the caller's to free. */
static int await(vg_client_t *c, uint64_t id, Vigil__V1__Envelope **env)
{
	int rc;
	do
		rc = pump(c, id, env);
	while (!rc && !*env);
	return rc;
}

/* Asks the server to stop request `id`, best effort: errstr is kept. */
static void send_cancel(vg_client_t *c, uint64_t id)
{
	if (c->fd < 0)
		return;
	char saved[VG_CLIENT_ERRSTR];
	memcpy(saved, c->errstr, sizeof saved);
	Vigil__V1__Cancel cancel = VIGIL__V1__CANCEL__INIT;
	cancel.request_id = id;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = c->next_id++;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_CANCEL;
	env.cancel = &cancel;
	send_request(c, &env, "cancel");
	memcpy(c->errstr, saved, sizeof saved);
}

/* ---- connecting -------------------------------------------------------------------- */

static int client_new(const char *addr, int timeout_ms, vg_client_t **out)
{
	vg_client_t *c = vg_calloc(1, sizeof *c);
	if (!c)
		return VG_ENOMEM;
	c->addr = vg_strndup(addr, strlen(addr));
	if (!c->addr) {
		vg_free(c);
		return VG_ENOMEM;
	}
	c->fd = -1;
	c->recv_wait = POLLIN;
	c->send_wait = POLLOUT;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	c->max_frame = VG_DEFAULT_MAX_FRAME;
	c->max_incoming = VG_CLIENT_MAX_INCOMING;
	c->next_id = 1;
	snprintf(c->closed_reason, sizeof c->closed_reason, "%s: not connected", addr);
	*out = c;
	return 0;
}

/* Waits for a non-blocking connect() on fd to finish. */
static int finish_connect(vg_client_t *c, int fd)
{
	short revents;
	int rc = wait_fd(fd, POLLOUT, c->call_deadline, &revents);
	if (rc)
		return rc;
	int soerr = 0;
	socklen_t len = sizeof soerr;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return -errno;
	return soerr ? -soerr : 0;
}

/* connect() on a fresh non-blocking socket; *fd set on success. */
static int open_socket(vg_client_t *c, int family, int protocol, const struct sockaddr *sa,
                       socklen_t salen, int *fd)
{
	int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
	if (s < 0)
		return -errno;
	int rc = 0;
	if (connect(s, sa, salen) < 0) {
		if (errno == EINPROGRESS || errno == EINTR)
			rc = finish_connect(c, s);
		else
			rc = -errno;
	}
	if (!rc && family != AF_UNIX) {
		int one = 1;
		if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
			rc = -errno;
	}
	if (rc) {
		close(s);
		return rc;
	}
	*fd = s;
	return 0;
}

static int connect_err(vg_client_t *c, int rc)
{
	if (rc == VG_ETIMEOUT)
		return timeout_err(c);
	return set_err(c, rc, "%s: connect: %s", c->addr, vg_strerror(rc));
}

/* Splits "host:port", "[v6]:port", "host" or a bare IPv6 address. */
static int split_addr(vg_client_t *c, const char *addr, char *host, size_t hostlen, char *port,
                      size_t portlen)
{
	const char *h = addr, *p = NULL;
	size_t hlen;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || (end[1] && end[1] != ':'))
			return set_err(c, VG_EINVAL, "%s: malformed address (expected [v6]:port)",
			               addr);
		h = addr + 1;
		hlen = (size_t)(end - h);
		p = end[1] ? end + 2 : NULL;
	} else {
		const char *colon = strchr(addr, ':');
		if (colon && !strchr(colon + 1, ':')) {
			hlen = (size_t)(colon - addr);
			p = colon + 1;
		} else {
			hlen = strlen(addr); /* no port, or a bare IPv6 address */
		}
	}
	if (hlen == 0 || hlen >= hostlen)
		return set_err(c, VG_EINVAL, "%s: malformed address (host %s)", addr,
		               hlen ? "too long" : "missing");
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (!p) {
		snprintf(port, portlen, "%s", DEFAULT_PORT);
		return 0;
	}
	size_t plen = strlen(p);
	char *end;
	long value = strtol(p, &end, 10);
	if (plen == 0 || plen >= portlen || *end || value < 1 || value > 65535 || p[0] == '+' ||
	    p[0] == '-' || p[0] == ' ')
		return set_err(c, VG_EINVAL, "%s: malformed address (port '%s' is not 1..65535)",
		               addr, p);
	memcpy(port, p, plen + 1);
	return 0;
}

/* The TLS handshake on the connected socket, within the connect deadline. */
static int start_tls(vg_client_t *c, const char *host)
{
	char err[256];
	int rc = vg_tls_new(c->tls_ctx, c->fd, c->tls_name ? c->tls_name : host, &c->tls, err,
	                    sizeof err);
	if (rc)
		return set_err(c, rc, "%s: %s", c->addr, err);
	for (;;) {
		int want = 0;
		rc = vg_tls_handshake(c->tls, &want);
		if (rc != VG_EAGAIN)
			break;
		short revents;
		rc = wait_fd(c->fd, want == VG_TLS_WANT_WRITE ? POLLOUT : POLLIN, c->call_deadline,
		             &revents);
		if (rc == VG_ETIMEOUT)
			return timeout_err(c);
		if (rc)
			return set_err(c, rc, "%s: poll: %s", c->addr, strerror(-rc));
	}
	if (rc == 0)
		return 0;
	const char *why = vg_tls_errstr(c->tls);
	bool cert = strncmp(why, "certificate verify failed", 25) == 0;
	return set_err(c, rc == VG_ECLOSED || rc == VG_ETLS ? VG_ETLS : rc,
	               "%s: TLS handshake failed: %s%s", c->addr, why,
	               cert ? "" : " (does the server speak TLS on this port? vigild --tls-cert)");
}

static int open_tcp(vg_client_t *c, const char *addr)
{
	char host[256], port[8];
	int rc = split_addr(c, addr, host, sizeof host, port, sizeof port);
	if (rc)
		return rc;
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai == EAI_SYSTEM)
		return set_err(c, -errno, "%s: resolving '%s': %s", addr, host, strerror(errno));
	if (gai == EAI_MEMORY)
		return set_err(c, VG_ENOMEM, "%s: resolving '%s': out of memory", addr, host);
	if (gai)
		return set_err(c, VG_ENOTFOUND, "%s: resolving '%s': %s", addr, host,
		               gai_strerror(gai));
	rc = VG_ENOTFOUND;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		rc = open_socket(c, ai->ai_family, ai->ai_protocol, ai->ai_addr, ai->ai_addrlen,
		                 &c->fd);
		if (!rc || rc == VG_ETIMEOUT)
			break;
	}
	freeaddrinfo(res);
	if (rc)
		return connect_err(c, rc);
	return c->tls_ctx ? start_tls(c, host) : 0;
}

static int open_unix(vg_client_t *c, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof sa.sun_path)
		return set_err(c, VG_EINVAL, "%s: unix socket path of %zu bytes (1..%zu allowed)",
		               c->addr, len, sizeof sa.sun_path - 1);
	memcpy(sa.sun_path, path, len + 1);
	int rc = open_socket(c, AF_UNIX, 0, (const struct sockaddr *)&sa, sizeof sa, &c->fd);
	return rc ? connect_err(c, rc) : 0;
}

/* Hello / HelloOk. */
static int greet(vg_client_t *c)
{
	Vigil__V1__Hello hello = VIGIL__V1__HELLO__INIT;
	hello.protocol_version = VG_PROTOCOL_VERSION;
	hello.client_name = (char *)"libvigil/" VG_CLIENT_VERSION;
	hello.token = c->token ? c->token : (char *)"";
	Vigil__V1__Envelope req = VIGIL__V1__ENVELOPE__INIT;
	req.id = c->next_id++;
	req.body_case = VIGIL__V1__ENVELOPE__BODY_HELLO;
	req.hello = &hello;
	int rc = send_request(c, &req, "hello");
	Vigil__V1__Envelope *env = NULL;
	if (!rc)
		rc = await(c, req.id, &env);
	if (rc)
		return rc;
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR) {
		rc = server_error(c, env->error);
		set_err(c, rc, "%s: the server refused the greeting: %s", c->addr,
		        env->error->message ? env->error->message : vg_strerror(rc));
	} else if (env->body_case != VIGIL__V1__ENVELOPE__BODY_HELLO_OK) {
		rc = fail_conn(c, VG_EPROTO, "unexpected %s frame in answer to Hello",
		               body_name(env));
	} else if (env->hello_ok->protocol_version != VG_PROTOCOL_VERSION) {
		rc = fail_conn(c, VG_EVERSION, "the server speaks protocol version %u, not %d",
		               (unsigned)env->hello_ok->protocol_version, VG_PROTOCOL_VERSION);
	} else {
		const char *v = env->hello_ok->server_version ? env->hello_ok->server_version : "";
		c->server_version = vg_strndup(v, strlen(v));
		if (!c->server_version)
			rc = set_err(c, VG_ENOMEM, "%s: out of memory", c->addr);
		if (env->hello_ok->max_frame)
			c->max_frame = env->hello_ok->max_frame;
		/* The server never sends more than it accepts. */
		if (c->max_frame > c->max_incoming)
			c->max_incoming = c->max_frame;
	}
	vg_frame_free_envelope(env);
	return rc;
}

/* Copies the token and sets TLS up from the options.  errstr on failure. */
static int apply_options(vg_client_t *c, const vg_client_options_t *o)
{
	if (!o)
		return 0;
	if (o->token && *o->token && !(c->token = vg_strndup(o->token, strlen(o->token))))
		return set_err(c, VG_ENOMEM, "%s: out of memory", c->addr);
	if (!o->tls)
		return 0;
	if (c->unix_path)
		return set_err(c, VG_EINVAL, "%s: TLS is for TCP addresses, not Unix sockets",
		               c->addr);
	if (o->tls_server_name && *o->tls_server_name &&
	    !(c->tls_name = vg_strndup(o->tls_server_name, strlen(o->tls_server_name))))
		return set_err(c, VG_ENOMEM, "%s: out of memory", c->addr);
	char err[VG_CLIENT_ERRSTR - 100];
	int rc = vg_tls_client_context(o->tls_ca_file, &c->tls_ctx, err, sizeof err);
	return rc ? set_err(c, rc, "%s: %s", c->addr, err) : 0;
}

static int connect_to(const char *addr, const char *unix_path, const vg_client_options_t *opts,
                      vg_client_t **out, char *err, size_t errlen)
{
	*out = NULL;
	vg_client_t *c;
	int rc = client_new(addr, opts ? opts->timeout_ms : 0, &c);
	if (rc) {
		if (errlen)
			snprintf(err, errlen, "%s: out of memory", addr);
		return rc;
	}
	if (unix_path)
		c->unix_path = c->addr + (unix_path - addr); /* reopen needs it */
	c->call_deadline = c->timeout_ms ? now_ms() + c->timeout_ms : 0;
	rc = apply_options(c, opts);
	if (!rc)
		rc = unix_path ? open_unix(c, unix_path) : open_tcp(c, addr);
	if (!rc)
		rc = greet(c);
	c->call_deadline = 0;
	if (rc) {
		if (errlen)
			snprintf(err, errlen, "%s", c->errstr);
		vg_client_close(c);
		return rc;
	}
	c->errstr[0] = '\0';
	*out = c;
	return 0;
}

void vg_client_options_init(vg_client_options_t *o)
{
	memset(o, 0, sizeof *o);
}

int vg_client_connect_with(const char *addr, const vg_client_options_t *opts, vg_client_t **out,
                           char *err, size_t errlen)
{
	if (!addr)
		addr = VG_CLIENT_DEFAULT_ADDR;
	if (!strncmp(addr, "unix:", 5))
		return connect_to(addr, addr + 5, opts, out, err, errlen);
	return connect_to(addr, NULL, opts, out, err, errlen);
}

int vg_client_connect(const char *addr, int timeout_ms, vg_client_t **out, char *err, size_t errlen)
{
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = timeout_ms;
	return vg_client_connect_with(addr, &o, out, err, errlen);
}

int vg_client_connect_unix(const char *path, int timeout_ms, vg_client_t **out, char *err,
                           size_t errlen)
{
	if (!path) {
		*out = NULL;
		if (errlen)
			snprintf(err, errlen, "unix socket path is NULL");
		return VG_EINVAL;
	}
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = timeout_ms;
	return connect_to(path, path, &o, out, err, errlen);
}

void vg_client_close(vg_client_t *c)
{
	if (!c)
		return;
	drop_transport(c);
	vg_tls_context_free(c->tls_ctx);
	vg_free(c->tls_name);
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		vg_free(c->token);
	}
	vg_subs_free(c->subs);
	for (size_t i = 0; i < c->nwrites; i++)
		vg_free(c->writes[i].message);
	vg_free(c->writes);
	vg_buf_release(&c->in);
	vg_buf_release(&c->out);
	vg_free(c->server_version);
	vg_free(c->addr);
	vg_free(c);
}

const char *vg_client_errstr(const vg_client_t *c)
{
	return c ? c->errstr : "";
}

void vg_client_set_timeout(vg_client_t *c, int timeout_ms)
{
	if (c)
		c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

bool vg_client_is_closed(const vg_client_t *c)
{
	return !c || c->fd < 0;
}

int vg_client_fd(const vg_client_t *c)
{
	return c ? c->fd : -1;
}

const char *vg_client_server_version(const vg_client_t *c)
{
	return c && c->server_version ? c->server_version : "";
}

size_t vg_client_max_frame(const vg_client_t *c)
{
	return c ? c->max_frame : 0;
}

int vg_client_ping(vg_client_t *c)
{
	if (!c)
		return VG_EINVAL;
	int rc = check_open(c);
	if (rc)
		return rc;
	Vigil__V1__Ping ping = VIGIL__V1__PING__INIT;
	Vigil__V1__Envelope req = VIGIL__V1__ENVELOPE__INIT;
	req.id = ping.nonce = c->next_id++;
	req.body_case = VIGIL__V1__ENVELOPE__BODY_PING;
	req.ping = &ping;
	rc = send_request(c, &req, "ping");
	Vigil__V1__Envelope *env = NULL;
	if (!rc)
		rc = await(c, req.id, &env);
	if (rc)
		return rc;
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR)
		rc = server_error(c, env->error);
	else if (env->body_case != VIGIL__V1__ENVELOPE__BODY_PONG || env->pong->nonce != ping.nonce)
		rc = fail_conn(c, VG_EPROTO, "unexpected %s frame in answer to Ping",
		               body_name(env));
	vg_frame_free_envelope(env);
	return rc;
}

/* ---- writes ------------------------------------------------------------------------ */

int vg_client_write_async(vg_client_t *c, const vg_batch_t *b, uint64_t *request_id)
{
	if (!c || !b)
		return VG_EINVAL;
	int rc = check_open(c);
	if (rc)
		return rc;
	if (vg_batch_points(b) == 0)
		return set_err(c, VG_EINVAL, "the batch holds no points");
	if (c->nwrites == c->wcap) {
		size_t cap = c->wcap ? c->wcap * 2 : 8;
		pending_write_t *w = vg_reallocarray(c->writes, cap, sizeof *w);
		if (!w)
			return set_err(c, VG_ENOMEM, "out of memory");
		c->writes = w;
		c->wcap = cap;
	}
	vg_write_msg_t m;
	rc = vg_batch_to_write(b, &m);
	if (rc)
		return set_err(c, rc, "out of memory encoding the batch");
	Vigil__V1__Envelope req = VIGIL__V1__ENVELOPE__INIT;
	req.id = c->next_id;
	req.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	req.write = &m.write;
	rc = send_request(c, &req, "write");
	vg_write_msg_release(&m);
	if (rc)
		return rc;
	c->next_id++;
	c->writes[c->nwrites++] = (pending_write_t){.id = req.id};
	if (request_id)
		*request_id = req.id;
	return 0;
}

/* Returns a finished write's result, sets errstr for an error, and forgets it. */
static int take_write(vg_client_t *c, pending_write_t *w, uint64_t *points)
{
	int code = w->code;
	if (points)
		*points = code ? 0 : w->points;
	if (code && w->closed)
		set_err(c, code, "%s", c->closed_reason);
	else if (code)
		set_err(c, code, "%s", w->message ? w->message : vg_strerror(code));
	remove_write(c, w);
	return code;
}

int vg_client_write(vg_client_t *c, const vg_batch_t *b, uint64_t *points)
{
	if (points)
		*points = 0;
	uint64_t id;
	int rc = vg_client_write_async(c, b, &id);
	if (rc)
		return rc;
	pending_write_t *w;
	while (!(w = find_write(c, id))->done) {
		Vigil__V1__Envelope *none;
		rc = pump(c, 0, &none);
		if (rc) {
			/* The answer, if it comes, will be discarded. */
			remove_write(c, find_write(c, id));
			return rc;
		}
	}
	return take_write(c, w, points);
}

int vg_client_wait_ack(vg_client_t *c, uint64_t *request_id, uint64_t *points)
{
	if (request_id)
		*request_id = 0;
	if (points)
		*points = 0;
	if (!c)
		return VG_EINVAL;
	for (;;) {
		pending_write_t *first = NULL;
		for (size_t i = 0; i < c->nwrites; i++)
			if (c->writes[i].done &&
			    (!first || c->writes[i].done_seq < first->done_seq))
				first = &c->writes[i];
		if (first) {
			if (request_id)
				*request_id = first->id;
			return take_write(c, first, points);
		}
		if (c->nwrites == 0) {
			int rc = check_open(c);
			return rc ? rc
			          : set_err(c, VG_ENOTFOUND,
			                    "no write is waiting for an acknowledgement");
		}
		Vigil__V1__Envelope *none;
		int rc = pump(c, 0, &none);
		if (rc && c->fd >= 0)
			return rc; /* a timeout, out of memory, a non-fatal server error */
	}
}

size_t vg_client_pending_writes(const vg_client_t *c)
{
	return c ? c->nwrites : 0;
}

/* ---- queries ----------------------------------------------------------------------- */

/* Where the frames of an answer go: into a vg_result_t, or to a callback. */
typedef struct sink {
	/* Both return 0, VG_EPROTO (message in err), VG_ENOMEM, or a
	 * callback's non-zero value. */
	int (*set)(struct sink *, const Vigil__V1__ResultSet *, char *err, size_t errlen);
	int (*rows)(struct sink *, const Vigil__V1__ResultRows *, char *err, size_t errlen);
} sink_t;

typedef struct buffered_sink {
	sink_t base;
	vg_result_t *result;
	vg_result_set_t *current;
} buffered_sink_t;

static int buffered_set(sink_t *s, const Vigil__V1__ResultSet *rs, char *err, size_t errlen)
{
	buffered_sink_t *b = (buffered_sink_t *)s;
	return vg_result_add_set(b->result, rs, &b->current, err, errlen);
}

static int buffered_rows(sink_t *s, const Vigil__V1__ResultRows *rows, char *err, size_t errlen)
{
	buffered_sink_t *b = (buffered_sink_t *)s;
	return vg_result_set_append(b->current, rows, err, errlen);
}

typedef struct stream_sink {
	sink_t base;
	vg_result_set_t set;
	vg_query_cb cb;
	void *ctx;
} stream_sink_t;

static int stream_set(sink_t *s, const Vigil__V1__ResultSet *rs, char *err, size_t errlen)
{
	stream_sink_t *st = (stream_sink_t *)s;
	vg_result_set_release(&st->set);
	int rc = vg_result_set_init(&st->set, rs, err, errlen);
	return rc ? rc : st->cb(st->ctx, VG_QUERY_SET_BEGIN, &st->set);
}

static int stream_rows(sink_t *s, const Vigil__V1__ResultRows *rows, char *err, size_t errlen)
{
	stream_sink_t *st = (stream_sink_t *)s;
	vg_result_set_drop_rows(&st->set);
	int rc = vg_result_set_append(&st->set, rows, err, errlen);
	return rc ? rc : st->cb(st->ctx, VG_QUERY_ROWS, &st->set);
}

/* Sends the query and feeds its answer to `sink` until ResultEnd. */
static int run_query(vg_client_t *c, const char *statement, sink_t *sink, vg_query_stats_t *stats)
{
	if (!statement)
		return set_err(c, VG_EINVAL, "the statement is NULL");
	int rc = check_open(c);
	if (rc)
		return rc;
	Vigil__V1__Query query = VIGIL__V1__QUERY__INIT;
	query.statement = (char *)statement;
	Vigil__V1__Envelope req = VIGIL__V1__ENVELOPE__INIT;
	req.id = c->next_id;
	req.body_case = VIGIL__V1__ENVELOPE__BODY_QUERY;
	req.query = &query;
	rc = send_request(c, &req, "query");
	if (rc)
		return rc;
	c->next_id++;
	bool in_set = false, done = false;
	while (!rc && !done) {
		Vigil__V1__Envelope *env;
		rc = await(c, req.id, &env);
		if (rc)
			break;
		char err[256] = "";
		switch (env->body_case) {
		case VIGIL__V1__ENVELOPE__BODY_RESULT_SET:
			rc = sink->set(sink, env->result_set, err, sizeof err);
			in_set = !rc;
			break;
		case VIGIL__V1__ENVELOPE__BODY_RESULT_ROWS:
			if (!in_set)
				rc = fail_conn(c, VG_EPROTO, "result rows before any result set");
			else
				rc = sink->rows(sink, env->result_rows, err, sizeof err);
			break;
		case VIGIL__V1__ENVELOPE__BODY_RESULT_END:
			if (stats) {
				stats->rows = env->result_end->rows;
				stats->points_scanned = env->result_end->points_scanned;
				stats->elapsed_ns = env->result_end->elapsed_ns;
			}
			done = true;
			break;
		case VIGIL__V1__ENVELOPE__BODY_ERROR:
			rc = server_error(c, env->error);
			done = true;
			break;
		default:
			rc = fail_conn(c, VG_EPROTO, "unexpected %s frame in answer to a query",
			               body_name(env));
		}
		vg_frame_free_envelope(env);
		if (rc == VG_EPROTO && err[0])
			fail_conn(c, VG_EPROTO, "%s", err);
		else if (rc == VG_ENOMEM)
			set_err(c, rc, "out of memory reading the answer");
		else if (rc && !done && c->fd >= 0 && rc != VG_ETIMEOUT)
			set_err(c, rc, "stopped by the callback");
	}
	if (rc && !done)
		send_cancel(c, req.id); /* only if the connection is still open */
	return rc;
}

int vg_client_query(vg_client_t *c, const char *statement, vg_result_t **out)
{
	if (!out)
		return VG_EINVAL;
	*out = NULL;
	if (!c)
		return VG_EINVAL;
	buffered_sink_t sink = {.base = {.set = buffered_set, .rows = buffered_rows}};
	int rc = vg_result_new(&sink.result);
	if (rc)
		return set_err(c, rc, "out of memory");
	rc = run_query(c, statement, &sink.base, &sink.result->stats);
	if (rc) {
		vg_result_free(sink.result);
		return rc;
	}
	*out = sink.result;
	return 0;
}

int vg_client_query_stream(vg_client_t *c, const char *statement, vg_query_cb cb, void *ctx,
                           vg_query_stats_t *stats)
{
	if (!c || !cb)
		return VG_EINVAL;
	stream_sink_t sink = {
	    .base = {.set = stream_set, .rows = stream_rows}, .cb = cb, .ctx = ctx};
	vg_query_stats_t got = {0};
	int rc = run_query(c, statement, &sink.base, &got);
	vg_result_set_release(&sink.set);
	if (!rc && stats)
		*stats = got;
	return rc;
}

/* ---- internals for subscribe.c ----------------------------------------------------- */

vg_subs_t **vg_client_subs(vg_client_t *c)
{
	return &c->subs;
}

uint64_t vg_client_take_id(vg_client_t *c)
{
	return c->next_id++;
}

int vg_client_send(vg_client_t *c, const Vigil__V1__Envelope *env, const char *what)
{
	int rc = check_open(c);
	return rc ? rc : send_request(c, env, what);
}

void vg_client_send_quietly(vg_client_t *c, const Vigil__V1__Envelope *env, const char *what)
{
	if (c->fd < 0)
		return;
	char saved[VG_CLIENT_ERRSTR];
	memcpy(saved, c->errstr, sizeof saved);
	send_request(c, env, what);
	memcpy(c->errstr, saved, sizeof saved);
}

int vg_client_await(vg_client_t *c, uint64_t id, Vigil__V1__Envelope **env)
{
	*env = NULL;
	int rc = check_open(c);
	return rc ? rc : await(c, id, env);
}

int vg_client_server_error(vg_client_t *c, const Vigil__V1__Error *e)
{
	return server_error(c, e);
}

int vg_client_set_error(vg_client_t *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
	va_end(ap);
	return code;
}

int vg_client_fail_protocol(vg_client_t *c, const char *what, const Vigil__V1__Envelope *env)
{
	return fail_conn(c, VG_EPROTO, "unexpected %s frame %s", body_name(env), what);
}

int vg_client_closed_code(const vg_client_t *c, const char **reason)
{
	*reason = c->closed_reason;
	return c->fd >= 0 ? 0 : c->closed_code ? c->closed_code : VG_ECLOSED;
}

int vg_client_reopen(vg_client_t *c)
{
	if (c->fd >= 0)
		return 0;
	c->in.len = c->in_off = 0;
	c->out.len = c->out_off = 0;
	vg_free(c->server_version);
	c->server_version = NULL;
	c->max_frame = VG_DEFAULT_MAX_FRAME;
	c->max_incoming = VG_CLIENT_MAX_INCOMING;
	c->closed_code = 0;
	c->recv_wait = POLLIN;
	c->send_wait = POLLOUT;
	c->call_deadline = c->timeout_ms ? now_ms() + c->timeout_ms : 0;
	int rc = c->unix_path ? open_unix(c, c->unix_path) : open_tcp(c, c->addr);
	if (!rc)
		rc = greet(c);
	c->call_deadline = 0;
	if (rc) {
		drop_transport(c);
		c->closed_code = rc;
		snprintf(c->closed_reason, sizeof c->closed_reason, "%s", c->errstr);
		return rc;
	}
	c->errstr[0] = '\0';
	return 0;
}

int vg_client_route_buffered(vg_client_t *c)
{
	for (;;) {
		Vigil__V1__Envelope *env, *mine;
		int rc = parse_buffered(c, &env);
		if (rc == VG_EAGAIN)
			return 0;
		if (!rc)
			rc = route(c, env, 0, &mine); /* want 0: nothing comes back */
		if (rc)
			return rc;
	}
}

bool vg_client_has_buffered_frame(const vg_client_t *c)
{
	/* Decrypted bytes in the TLS session: poll() will not show them. */
	if (c->tls && vg_tls_pending(c->tls))
		return true;
	size_t avail = c->in.len - c->in_off, n = 0;
	if (avail < VG_FRAME_HEADER)
		return false;
	/* A length over the limit is a broken frame: routing it fails the
	 * connection, which is work for vg_client_process() too. */
	return vg_frame_peek_length(c->in.data + c->in_off, avail, c->max_incoming, &n) ||
	       avail >= VG_FRAME_HEADER + n;
}

int vg_client_receive(vg_client_t *c, int timeout_ms)
{
	int rc = check_open(c);
	if (!rc)
		rc = reserve_input(c);
	if (!rc)
		rc = recv_some(c);
	if (rc == 0 && timeout_ms != 0) {
		struct pollfd p = {.fd = c->fd, .events = c->recv_wait};
		int n = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
		if (n < 0 && errno != EINTR)
			return fail_conn(c, -errno, "poll: %s", strerror(errno));
		if (n > 0)
			rc = recv_some(c);
	}
	if (rc <= 0)
		return rc; /* nothing arrived (timeout, signal), or the connection failed */
	rc = vg_client_route_buffered(c);
	return rc ? rc : 1;
}
