/*
 * http.h — a minimal blocking HTTP/1.1 client for the peer benchmarks.
 *
 * Just enough HTTP to time InfluxDB and VictoriaMetrics the way libvigil
 * times Vigil: one TCP connection kept alive across requests (TCP_NODELAY),
 * a request written with one writev(), a response read into a caller's
 * buffer with its body delimited by Content-Length or chunked encoding.
 * No TLS, no redirects, no proxies, no pipelining, IPv4/IPv6 by getaddrinfo.
 * When the server answers "Connection: close" (or closes an idle
 * connection), the next request reconnects once.
 *
 * Limits: a header block of at most VG_HTTP_MAX_HEADER bytes, a body of at
 * most VG_HTTP_MAX_BODY bytes; longer answers fail with VG_ELIMIT.
 */
#ifndef VG_BENCH_HTTP_H
#define VG_BENCH_HTTP_H

#include "vg_buf.h"

#include <stddef.h>

#define VG_HTTP_MAX_HEADER (64 * 1024)
#define VG_HTTP_MAX_BODY (256u * 1024 * 1024)
#define VG_HTTP_ERRLEN 512

typedef struct vg_http_conn {
	int fd; /* -1 while not connected */
	char host[256];
	char port[16];
	int timeout_ms; /* per read or write; 0: none */
	vg_buf_t in;    /* bytes received and not yet consumed */
	char errstr[VG_HTTP_ERRLEN];
} vg_http_conn_t;

/*
 * Splits "http://HOST:PORT/PATH?QUERY" into its parts (host without
 * brackets; port "80" if absent; path "/" if absent).  Returns 0 or
 * VG_EINVAL (not http://, or a part longer than its buffer).
 */
int vg_http_url_parse(const char *url, char *host, size_t host_len, char *port, size_t port_len,
                      char *path, size_t path_len);

/* Sets up c for host:port without connecting (the first request does). */
void vg_http_init(vg_http_conn_t *c, const char *host, const char *port, int timeout_ms);

/* Closes the connection and frees c's buffers; c may be initialised again. */
void vg_http_release(vg_http_conn_t *c);

/*
 * Sends one request and reads its whole response.  `path` includes the
 * query string; `body` (body_len bytes, may be NULL when 0) is sent with
 * Content-Length and, if content_type is not NULL, that Content-Type.
 * On success *status is the response code and `resp` (cleared first) holds
 * the body.  Returns 0, -errno for a socket error, VG_ECLOSED if the server
 * closed the connection without answering (after one reconnect), VG_EPROTO
 * for a malformed response, VG_ELIMIT, VG_ETIMEOUT, VG_ENOMEM; c->errstr
 * says what happened.  After an error the connection is closed.
 */
int vg_http_request(vg_http_conn_t *c, const char *method, const char *path,
                    const char *content_type, const void *body, size_t body_len, int *status,
                    vg_buf_t *resp);

#endif
