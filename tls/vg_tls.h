/*
 * vg_tls.h — TLS over a non-blocking socket, with OpenSSL, for vigild's
 * TCP listener and for libvigil.
 *
 * Why a module of its own: both ends drive non-blocking sockets (vigild
 * with libev, libvigil with poll()), and both need the same translation of
 * OpenSSL's SSL_ERROR_* into "need readability", "need writability", a
 * clean close, or an error with a message.  This module does that
 * translation once and knows nothing of frames, watchers or deadlines:
 * its callers wait for the socket condition it names and call again.
 *
 * Rules every caller follows (they are OpenSSL's):
 *   - A read may need the socket to be writable and a write may need it to
 *     be readable (handshakes, key updates): VG_EAGAIN comes with *want
 *     saying which.
 *   - A write that returned VG_EAGAIN must be repeated with at least the
 *     same bytes (the buffer may have moved: the session allows it).
 *   - Bytes already decrypted wait inside the session, where poll() cannot
 *     see them: vg_tls_pending() says when to read again without waiting.
 *
 * Policy: TLS 1.2 or later.  A client context verifies the server's
 * certificate against the given CA file (or the system's CAs) and the
 * host name or IP address it connected to; there is no switch to turn
 * verification off.  A server context presents one certificate chain and
 * does not ask clients for certificates (clients authenticate with tokens).
 *
 * Threads: a context may be shared by sessions on different threads; a
 * session belongs to one thread at a time.  OpenSSL's error queue is per
 * thread and is cleared before each operation.
 */
#ifndef VG_TLS_H
#define VG_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct vg_tls_context vg_tls_context_t;
typedef struct vg_tls vg_tls_t;

/* What a VG_EAGAIN result waits for. */
enum { VG_TLS_WANT_READ = 1, VG_TLS_WANT_WRITE = 2 };

/* The first byte of every TLS connection (a handshake record): a server
 * may tell a plain-protocol client apart by it. */
#define VG_TLS_RECORD_HANDSHAKE 0x16

/*
 * A server context from a PEM certificate chain file and a PEM private key
 * file.  Returns 0 and *out (free with vg_tls_context_free()), or VG_ETLS
 * with err naming the file and OpenSSL's reason (unreadable, not PEM, key
 * does not match the certificate); VG_ENOMEM.
 */
int vg_tls_server_context(const char *cert_file, const char *key_file, vg_tls_context_t **out,
                          char *err, size_t errlen);

/*
 * A client context that trusts the CA certificates of `ca_file` (PEM), or
 * the system's default CAs when ca_file is NULL.  Returns 0 and *out, or
 * VG_ETLS with err naming the file; VG_ENOMEM.
 */
int vg_tls_client_context(const char *ca_file, vg_tls_context_t **out, char *err, size_t errlen);

/* NULL is allowed. */
void vg_tls_context_free(vg_tls_context_t *ctx);

/*
 * A session on the connected socket fd (borrowed: the caller closes it
 * after vg_tls_free()).  For a client context `host` is the name the
 * certificate must carry (a DNS name, or an IPv4/IPv6 literal checked
 * against the certificate's IP addresses) and is sent as SNI; NULL for a
 * server context.  Returns 0 and *out, VG_ENOMEM or VG_ETLS (err set).
 */
int vg_tls_new(vg_tls_context_t *ctx, int fd, const char *host, vg_tls_t **out, char *err,
               size_t errlen);

/* Sends close_notify once, best effort, and frees the session; NULL is
 * allowed.  Never waits. */
void vg_tls_free(vg_tls_t *t);

/*
 * Drives the handshake.  Returns 0 once it is complete, VG_EAGAIN (*want
 * set), or VG_ETLS / -errno / VG_ECLOSED (peer closed) with the reason in
 * vg_tls_errstr() — for a certificate that fails verification, the
 * verifier's reason ("certificate verify failed: unable to get local
 * issuer certificate").  Reads and writes also handshake by themselves;
 * clients call this to report handshake failures as such.
 */
int vg_tls_handshake(vg_tls_t *t, int *want);

/*
 * Reads up to len bytes (at most INT_MAX are asked for).  Returns the count
 * (> 0), 0 when the peer closed the connection (with or without
 * close_notify: frames delimit themselves, so a cut shows as a partial
 * frame), VG_EAGAIN (*want set), or VG_ETLS / -errno with the reason in
 * vg_tls_errstr().
 */
int vg_tls_read(vg_tls_t *t, void *buf, size_t len, int *want);

/* Writes up to len bytes (some may be written: a partial count is
 * normal).  Returns the count (> 0), VG_EAGAIN (*want set), VG_ECLOSED,
 * or VG_ETLS / -errno with the reason in vg_tls_errstr(). */
int vg_tls_write(vg_tls_t *t, const void *buf, size_t len, int *want);

/* Decrypted bytes held inside the session, ready for vg_tls_read(). */
size_t vg_tls_pending(const vg_tls_t *t);

/* The reason of the session's last failure ("" if none); owned by the
 * session, valid until its next call. */
const char *vg_tls_errstr(const vg_tls_t *t);

#endif
