/*
 * http.c — the blocking HTTP/1.1 keep-alive client of http.h.
 *
 * Shape: c->in accumulates received bytes; the response parser works on
 * what is in it and calls fill() for more, so the header block, chunk-size
 * lines and bodies are all parsed in place, and bytes of a next response
 * (none, since we never pipeline) would simply stay in the buffer.  Writes
 * use sendmsg(MSG_NOSIGNAL): a server that hangs up gives EPIPE, not a
 * signal.  A request on a kept-alive connection that the server closed in
 * the meantime (EPIPE/ECONNRESET on send, or EOF before any byte of the
 * answer) is retried once on a fresh connection; nothing else is retried.
 */
#include "http.h"

#include "vg_error.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_CHUNK 65536

static int copy_part(char *dst, size_t len, const char *src, size_t n)
{
	if (n >= len)
		return VG_EINVAL;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

int vg_http_url_parse(const char *url, char *host, size_t host_len, char *port, size_t port_len,
                      char *path, size_t path_len)
{
	static const char scheme[] = "http://";
	if (strncmp(url, scheme, sizeof scheme - 1))
		return VG_EINVAL;
	const char *p = url + sizeof scheme - 1;
	const char *slash = strchr(p, '/');
	const char *hend = slash ? slash : p + strlen(p);
	const char *h = p, *colon = NULL;
	size_t hlen;
	if (*p == '[') { /* [v6]:port */
		const char *rb = memchr(p, ']', (size_t)(hend - p));
		if (!rb)
			return VG_EINVAL;
		h = p + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', (size_t)(hend - p));
		hlen = (size_t)((colon ? colon : hend) - p);
	}
	if (hlen == 0 || copy_part(host, host_len, h, hlen))
		return VG_EINVAL;
	if (colon) {
		if (colon + 1 == hend ||
		    copy_part(port, port_len, colon + 1, (size_t)(hend - colon - 1)))
			return VG_EINVAL;
	} else if (copy_part(port, port_len, "80", 2)) {
		return VG_EINVAL;
	}
	if (slash)
		return copy_part(path, path_len, slash, strlen(slash));
	return copy_part(path, path_len, "/", 1);
}

void vg_http_init(vg_http_conn_t *c, const char *host, const char *port, int timeout_ms)
{
	c->fd = -1;
	snprintf(c->host, sizeof c->host, "%s", host);
	snprintf(c->port, sizeof c->port, "%s", port);
	c->timeout_ms = timeout_ms;
	vg_buf_init(&c->in);
	c->errstr[0] = '\0';
}

static void conn_close(vg_http_conn_t *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	vg_buf_clear(&c->in);
}

void vg_http_release(vg_http_conn_t *c)
{
	conn_close(c);
	vg_buf_release(&c->in);
}

static int fail(vg_http_conn_t *c, int rc, const char *what)
{
	snprintf(c->errstr, sizeof c->errstr, "%.255s:%.15s: %.200s", c->host, c->port, what);
	conn_close(c);
	return rc;
}

static int fail_errno(vg_http_conn_t *c, const char *what)
{
	int e = errno;
	char msg[128];
	snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
	if (e == EAGAIN || e == EWOULDBLOCK)
		return fail(c, VG_ETIMEOUT, msg);
	return fail(c, -e, msg);
}

static int conn_open(vg_http_conn_t *c)
{
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int g = getaddrinfo(c->host, c->port, &hints, &res);
	if (g) {
		return fail(c, VG_EINVAL, gai_strerror(g));
	}
	int rc = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			if (c->timeout_ms > 0) {
				struct timeval tv = {c->timeout_ms / 1000,
				                     (c->timeout_ms % 1000) * 1000};
				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
				setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
			}
			c->fd = fd;
			rc = 0;
			break;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		errno = rc ? -rc : ECONNREFUSED;
		return fail_errno(c, "connect");
	}
	vg_buf_clear(&c->in);
	return 0;
}

/* Receives more bytes into c->in.  Returns 0, VG_ECLOSED at EOF, or an
 * error (connection closed). */
static int fill(vg_http_conn_t *c)
{
	if (vg_buf_reserve(&c->in, READ_CHUNK))
		return fail(c, VG_ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			return 0;
		}
		if (n == 0)
			return VG_ECLOSED;
		if (errno != EINTR)
			return fail_errno(c, "recv");
	}
}

static int send_all(vg_http_conn_t *c, struct iovec *iov, int niov)
{
	while (niov > 0) {
		struct msghdr msg = {0};
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)niov;
		ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail_errno(c, "send");
		}
		while (niov > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Finds "\r\n" in c->in at or after `from`; returns its offset or -1. */
static long find_crlf(const vg_buf_t *b, size_t from)
{
	for (size_t i = from; i + 1 < b->len; i++)
		if (b->data[i] == '\r' && b->data[i + 1] == '\n')
			return (long)i;
	return -1;
}

/* Whether the header line [p, p+n) is "name: value" with value containing
 * `token` (case-insensitive); used for Connection and Transfer-Encoding. */
static bool header_has(const char *p, size_t n, const char *name, const char *token)
{
	size_t nl = strlen(name), tl = strlen(token);
	if (n <= nl || strncasecmp(p, name, nl) || p[nl] != ':')
		return false;
	for (size_t i = nl + 1; i + tl <= n; i++)
		if (strncasecmp(p + i, token, tl) == 0)
			return true;
	return false;
}

typedef struct {
	int status;
	bool chunked, close, has_length;
	size_t length;
	size_t header_end; /* offset just past the blank line */
} response_head_t;

static int parse_head(vg_http_conn_t *c, response_head_t *h)
{
	*h = (response_head_t){0};
	const char *d = (const char *)c->in.data;
	long eol = find_crlf(&c->in, 0);
	if (eol < 12 || strncmp(d, "HTTP/1.", 7) || d[8] != ' ')
		return fail(c, VG_EPROTO, "malformed status line");
	int st = 0;
	for (int i = 9; i < 12; i++) {
		if (d[i] < '0' || d[i] > '9')
			return fail(c, VG_EPROTO, "malformed status code");
		st = st * 10 + (d[i] - '0');
	}
	h->status = st;
	h->close = d[7] == '0'; /* HTTP/1.0 closes unless told otherwise */
	size_t at = (size_t)eol + 2;
	for (;;) {
		long e = find_crlf(&c->in, at);
		if (e < 0)
			return fail(c, VG_EPROTO, "truncated header block");
		size_t n = (size_t)e - at;
		const char *line = d + at;
		at = (size_t)e + 2;
		if (n == 0)
			break;
		if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(line + 15, &end, 10);
			if (errno || end == line + 15 || v > VG_HTTP_MAX_BODY)
				return fail(c, v > VG_HTTP_MAX_BODY ? VG_ELIMIT : VG_EPROTO,
				            "bad or too large Content-Length");
			h->length = (size_t)v;
			h->has_length = true;
		} else if (header_has(line, n, "transfer-encoding", "chunked")) {
			h->chunked = true;
		} else if (header_has(line, n, "connection", "close")) {
			h->close = true;
		} else if (header_has(line, n, "connection", "keep-alive")) {
			h->close = false;
		}
	}
	h->header_end = at;
	return 0;
}

/* Makes c->in hold at least `need` bytes. */
static int need_bytes(vg_http_conn_t *c, size_t need)
{
	while (c->in.len < need) {
		int rc = fill(c);
		if (rc == VG_ECLOSED)
			return fail(c, VG_EPROTO, "connection closed inside a response");
		if (rc)
			return rc;
	}
	return 0;
}

static int read_chunked(vg_http_conn_t *c, vg_buf_t *resp)
{
	for (;;) {
		long e;
		while ((e = find_crlf(&c->in, 0)) < 0) {
			if (c->in.len > 1024)
				return fail(c, VG_EPROTO, "chunk-size line too long");
			int rc = need_bytes(c, c->in.len + 1);
			if (rc)
				return rc;
		}
		char *end;
		errno = 0;
		unsigned long long size = strtoull((const char *)c->in.data, &end, 16);
		if (errno || end == (char *)c->in.data)
			return fail(c, VG_EPROTO, "malformed chunk size");
		if (size > VG_HTTP_MAX_BODY || resp->len + size > VG_HTTP_MAX_BODY)
			return fail(c, VG_ELIMIT, "response body too large");
		vg_buf_consume(&c->in, (size_t)e + 2);
		if (size == 0) { /* trailers until the blank line */
			for (;;) {
				while ((e = find_crlf(&c->in, 0)) < 0) {
					int rc = need_bytes(c, c->in.len + 1);
					if (rc)
						return rc;
				}
				vg_buf_consume(&c->in, (size_t)e + 2);
				if (e == 0)
					return 0;
			}
		}
		int rc = need_bytes(c, (size_t)size + 2);
		if (rc)
			return rc;
		if (c->in.data[size] != '\r' || c->in.data[size + 1] != '\n')
			return fail(c, VG_EPROTO, "chunk not followed by CRLF");
		if (vg_buf_append(resp, c->in.data, (size_t)size))
			return fail(c, VG_ENOMEM, "out of memory");
		vg_buf_consume(&c->in, (size_t)size + 2);
	}
}

static int read_response(vg_http_conn_t *c, int *status, vg_buf_t *resp)
{
	/* The header block. */
	size_t scanned = 0;
	for (;;) {
		bool found = false;
		for (size_t i = scanned; i + 3 < c->in.len; i++) {
			if (memcmp(c->in.data + i, "\r\n\r\n", 4) == 0) {
				found = true;
				break;
			}
		}
		if (found)
			break;
		if (c->in.len > VG_HTTP_MAX_HEADER)
			return fail(c, VG_ELIMIT, "header block too large");
		scanned = c->in.len > 3 ? c->in.len - 3 : 0;
		int rc = fill(c);
		if (rc == VG_ECLOSED) /* the caller may retry on a fresh connection */
			return c->in.len ? fail(c, VG_EPROTO, "connection closed inside a response")
			                 : VG_ECLOSED;
		if (rc)
			return rc;
	}
	response_head_t h;
	int rc = parse_head(c, &h);
	if (rc)
		return rc;
	vg_buf_consume(&c->in, h.header_end);
	bool bodyless = h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200);
	if (bodyless) {
		/* nothing */
	} else if (h.chunked) {
		if ((rc = read_chunked(c, resp)))
			return rc;
	} else if (h.has_length) {
		if ((rc = need_bytes(c, h.length)))
			return rc;
		if (vg_buf_append(resp, c->in.data, h.length))
			return fail(c, VG_ENOMEM, "out of memory");
		vg_buf_consume(&c->in, h.length);
	} else { /* delimited by the end of the connection */
		for (;;) {
			rc = fill(c);
			if (rc == VG_ECLOSED)
				break;
			if (rc)
				return rc;
			if (c->in.len > VG_HTTP_MAX_BODY)
				return fail(c, VG_ELIMIT, "response body too large");
		}
		if (vg_buf_append(resp, c->in.data, c->in.len))
			return fail(c, VG_ENOMEM, "out of memory");
		h.close = true;
	}
	if (h.status >= 100 && h.status < 200) /* an interim answer: read the real one */
		return read_response(c, status, resp);
	*status = h.status;
	if (h.close)
		conn_close(c);
	return 0;
}

int vg_http_request(vg_http_conn_t *c, const char *method, const char *path,
                    const char *content_type, const void *body, size_t body_len, int *status,
                    vg_buf_t *resp)
{
	char head[2048];
	int n =
	    snprintf(head, sizeof head,
	             "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: vigil-bench\r\n"
	             "Content-Length: %zu\r\n%s%s%s\r\n",
	             method, path, c->host, c->port, body_len, content_type ? "Content-Type: " : "",
	             content_type ? content_type : "", content_type ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head)
		return fail(c, VG_ELIMIT, "request line too long");
	vg_buf_clear(resp);
	for (int attempt = 0;; attempt++) {
		bool reused = c->fd >= 0;
		int rc;
		if (!reused && (rc = conn_open(c)))
			return rc;
		struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, body_len}};
		rc = send_all(c, iov, body_len ? 2 : 1);
		if (rc == 0) {
			rc = read_response(c, status, resp);
			if (rc == 0)
				return 0;
		}
		bool stale = reused && attempt == 0 &&
		             (rc == VG_ECLOSED || rc == -EPIPE || rc == -ECONNRESET);
		if (!stale) {
			if (rc == VG_ECLOSED)
				return fail(c, rc, "connection closed before a response");
			return rc; /* fail() already recorded it */
		}
		conn_close(c);
		vg_buf_clear(resp);
	}
}
