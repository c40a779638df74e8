/*
 * tls.c — OpenSSL sessions over non-blocking sockets (vg_tls.h).
 *
 * Each call clears the thread's OpenSSL error queue, runs one SSL_*
 * operation and maps SSL_get_error() onto the module's codes:
 *
 *   SSL_ERROR_WANT_READ / WANT_WRITE    VG_EAGAIN, *want = READ / WRITE
 *   SSL_ERROR_ZERO_RETURN               read: 0 (closed); write: VG_ECLOSED
 *   SSL_ERROR_SYSCALL with errno        -errno
 *   SSL_ERROR_SYSCALL without errno     read: 0 (EOF); others: VG_ECLOSED
 *   SSL_ERROR_SSL and the rest          VG_ETLS, with the first queued
 *                                       reason, or the verifier's reason
 *                                       when the peer certificate failed
 *
 * Contexts set SSL_OP_IGNORE_UNEXPECTED_EOF (a peer that vanishes without
 * close_notify reads as EOF, as a plain socket would: the framing above
 * detects a cut frame), SSL_MODE_ENABLE_PARTIAL_WRITE (a write returns
 * what one record or the socket took, like send()) and
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (a retried write may come from a
 * buffer that grew and moved meanwhile).
 *
 * SIGPIPE: OpenSSL writes to the socket with write(), which raises
 * SIGPIPE when the peer is gone.  vigild ignores the signal; a program
 * using libvigil may not, so sessions of client contexts block SIGPIPE in
 * the calling thread around each operation and consume the one it raised
 * (as libpq does), leaving the program's signal state as it was.
 */
#include "vg_tls.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

struct vg_tls_context {
	SSL_CTX *ctx;
	bool guard_sigpipe; /* client contexts */
};

struct vg_tls {
	SSL *ssl;
	bool guard_sigpipe;
	char errstr[256];
};

/* SIGPIPE blocked in this thread for one operation (sigpipe_begin/end). */
typedef struct {
	bool active;
	bool was_pending;
	sigset_t old;
} sigpipe_guard_t;

static void sigpipe_begin(const vg_tls_t *t, sigpipe_guard_t *g)
{
	g->active = t->guard_sigpipe;
	if (!g->active)
		return;
	sigset_t pipe_set, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

static void sigpipe_end(sigpipe_guard_t *g, bool broke)
{
	if (!g->active)
		return;
	if (broke && !g->was_pending) {
		sigset_t pipe_set;
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* The first reason in the thread's OpenSSL error queue, or `fallback`. */
static void queued_reason(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char reason[200];
		ERR_error_string_n(e, reason, sizeof reason);
		/* "error:0A000086:SSL routines::certificate verify failed":
		 * keep the words after the last ':'. */
		const char *words = strrchr(reason, ':');
		snprintf(buf, len, "%s", words && words[1] ? words + 1 : reason);
	} else {
		snprintf(buf, len, "%s", fallback);
	}
	ERR_clear_error();
}

static int context_new(const SSL_METHOD *method, vg_tls_context_t **out, char *err, size_t errlen)
{
	vg_tls_context_t *c = vg_calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return VG_ENOMEM;
	}
	ERR_clear_error();
	c->ctx = SSL_CTX_new(method);
	if (!c->ctx || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
		char why[200];
		queued_reason(why, sizeof why, "cannot create an SSL context");
		snprintf(err, errlen, "TLS: %s", why);
		vg_tls_context_free(c);
		return VG_ETLS;
	}
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(c->ctx,
	                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	*out = c;
	return 0;
}

int vg_tls_server_context(const char *cert_file, const char *key_file, vg_tls_context_t **out,
                          char *err, size_t errlen)
{
	vg_tls_context_t *c;
	int rc = context_new(TLS_server_method(), &c, err, errlen);
	if (rc)
		return rc;
	const char *failed = NULL, *file = NULL;
	if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1)
		failed = "cannot load the certificate chain", file = cert_file;
	else if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1)
		failed = "cannot load the private key", file = key_file;
	else if (SSL_CTX_check_private_key(c->ctx) != 1)
		failed = "the private key does not match the certificate", file = key_file;
	if (failed) {
		char why[200];
		queued_reason(why, sizeof why, "unknown reason");
		snprintf(err, errlen, "TLS: %s %s: %s", failed, file, why);
		vg_tls_context_free(c);
		return VG_ETLS;
	}
	*out = c;
	return 0;
}

int vg_tls_client_context(const char *ca_file, vg_tls_context_t **out, char *err, size_t errlen)
{
	vg_tls_context_t *c;
	int rc = context_new(TLS_client_method(), &c, err, errlen);
	if (rc)
		return rc;
	c->guard_sigpipe = true;
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	int ok = ca_file ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
	                 : SSL_CTX_set_default_verify_paths(c->ctx);
	if (ok != 1) {
		char why[200];
		queued_reason(why, sizeof why, "unknown reason");
		if (ca_file)
			snprintf(err, errlen, "TLS: cannot load the CA file %s: %s", ca_file, why);
		else
			snprintf(err, errlen, "TLS: cannot load the system's CA certificates: %s",
			         why);
		vg_tls_context_free(c);
		return VG_ETLS;
	}
	*out = c;
	return 0;
}

void vg_tls_context_free(vg_tls_context_t *ctx)
{
	if (!ctx)
		return;
	SSL_CTX_free(ctx->ctx);
	vg_free(ctx);
}

static bool is_ip_literal(const char *host)
{
	unsigned char addr[16];
	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

int vg_tls_new(vg_tls_context_t *ctx, int fd, const char *host, vg_tls_t **out, char *err,
               size_t errlen)
{
	vg_tls_t *t = vg_calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return VG_ENOMEM;
	}
	ERR_clear_error();
	t->guard_sigpipe = ctx->guard_sigpipe;
	t->ssl = SSL_new(ctx->ctx);
	bool ok = t->ssl && SSL_set_fd(t->ssl, fd) == 1;
	if (ok && host) {
		/* The name checked is the one connected to; SNI only for names. */
		if (is_ip_literal(host))
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1;
		else
			ok = SSL_set_tlsext_host_name(t->ssl, host) == 1 &&
			     SSL_set1_host(t->ssl, host) == 1;
		SSL_set_connect_state(t->ssl);
	} else if (ok) {
		SSL_set_accept_state(t->ssl);
	}
	if (!ok) {
		char why[200];
		queued_reason(why, sizeof why, "cannot create a TLS session");
		snprintf(err, errlen, "TLS: %s", why);
		vg_tls_free(t);
		return VG_ETLS;
	}
	*out = t;
	return 0;
}

void vg_tls_free(vg_tls_t *t)
{
	if (!t)
		return;
	if (t->ssl) {
		ERR_clear_error();
		/* One attempt at close_notify: never wait for the peer's. */
		if (SSL_is_init_finished(t->ssl)) {
			sigpipe_guard_t g;
			sigpipe_begin(t, &g);
			errno = 0;
			(void)SSL_shutdown(t->ssl);
			sigpipe_end(&g, errno == EPIPE);
		}
		ERR_clear_error();
		SSL_free(t->ssl);
	}
	vg_free(t);
}

/* Maps a failed SSL_* call (ret <= 0) onto the module's codes. */
static int failure(vg_tls_t *t, int ret, bool reading, int *want)
{
	int saved = errno;
	int e = SSL_get_error(t->ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		*want = VG_TLS_WANT_READ;
		return VG_EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = VG_TLS_WANT_WRITE;
		return VG_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(t->errstr, sizeof t->errstr, "the peer closed the TLS session");
		return reading ? 0 : VG_ECLOSED;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (saved) {
			snprintf(t->errstr, sizeof t->errstr, "%s", strerror(saved));
			return -saved;
		}
		snprintf(t->errstr, sizeof t->errstr, "the peer closed the connection");
		return reading ? 0 : VG_ECLOSED;
	default:
		break;
	}
	long verify = SSL_get_verify_result(t->ssl);
	if (verify != X509_V_OK) {
		snprintf(t->errstr, sizeof t->errstr, "certificate verify failed: %s",
		         X509_verify_cert_error_string(verify));
		ERR_clear_error();
	} else {
		queued_reason(t->errstr, sizeof t->errstr, "TLS failure");
	}
	return VG_ETLS;
}

enum { OP_HANDSHAKE, OP_READ, OP_WRITE };

/* One SSL_* operation under the SIGPIPE guard. */
static int operate(vg_tls_t *t, int op, void *buf, size_t len, int *want)
{
	int n = len > INT_MAX ? INT_MAX : (int)len;
	sigpipe_guard_t g;
	sigpipe_begin(t, &g);
	ERR_clear_error();
	errno = 0;
	int ret = op == OP_HANDSHAKE ? SSL_do_handshake(t->ssl)
	          : op == OP_READ    ? SSL_read(t->ssl, buf, n)
	                             : SSL_write(t->ssl, buf, n);
	int rc = ret > 0 ? ret : failure(t, ret, op == OP_READ, want);
	sigpipe_end(&g, rc == -EPIPE);
	return rc;
}

int vg_tls_handshake(vg_tls_t *t, int *want)
{
	int rc = operate(t, OP_HANDSHAKE, NULL, 0, want);
	return rc > 0 ? 0 : rc == 0 ? VG_ECLOSED : rc;
}

int vg_tls_read(vg_tls_t *t, void *buf, size_t len, int *want)
{
	return operate(t, OP_READ, buf, len, want);
}

int vg_tls_write(vg_tls_t *t, const void *buf, size_t len, int *want)
{
	return operate(t, OP_WRITE, (void *)buf, len, want);
}

size_t vg_tls_pending(const vg_tls_t *t)
{
	int n = SSL_pending(t->ssl);
	return n > 0 ? (size_t)n : 0;
}

const char *vg_tls_errstr(const vg_tls_t *t)
{
	return t->errstr;
}
