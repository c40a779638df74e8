/*
 * vg_error.h — the one error convention of Vigil.
 *
 * Every function that can fail returns int: 0 on success, -errno for a
 * system error (e.g. -ENOENT), or one of the VG_E* codes below, which live in
 * a reserved negative range far below any errno so the two never collide.
 * vg_strerror() turns either kind into a message.  Long-lived objects keep a
 * detailed `errstr` of their own; the code only says what kind of failure.
 *
 * The numeric values are part of the wire protocol (docs/protocol.md): never
 * renumber, only append.
 */
#ifndef VG_ERROR_H
#define VG_ERROR_H

#define VG_EBASE (-30000)

enum {
	VG_ENOMEM = VG_EBASE - 1,    /* an allocation failed */
	VG_EINVAL = VG_EBASE - 2,    /* an argument or input is malformed */
	VG_ECORRUPT = VG_EBASE - 3,  /* stored or received bytes fail validation */
	VG_EVERSION = VG_EBASE - 4,  /* on-disk or wire format of another version */
	VG_ENOTFOUND = VG_EBASE - 5, /* no such series, measurement, query, ... */
	VG_ELIMIT = VG_EBASE - 6,    /* a configured or hard limit was exceeded */
	VG_ESTORE = VG_EBASE - 7,    /* the storage layer (LMDB) reported an error */
	VG_EAGAIN = VG_EBASE - 8,    /* incomplete input: need more bytes */
	VG_ESYNTAX = VG_EBASE - 9,   /* a statement does not parse */
	VG_EPROTO = VG_EBASE - 10,   /* a peer broke the protocol */
	VG_ECLOSED = VG_EBASE - 11,  /* the connection or object is closed */
	VG_ETIMEOUT = VG_EBASE - 12, /* a deadline passed */
	VG_ECANCELED = VG_EBASE - 13,/* the operation was cancelled */
	VG_EEXIST = VG_EBASE - 14,   /* the thing to create already exists */
	VG_EOVERFLOW = VG_EBASE - 15,/* a bounded buffer overflowed */
	VG_EAUTH = VG_EBASE - 16,    /* authentication failed or is missing */
	VG_EPERM = VG_EBASE - 17,    /* the authenticated role may not do this */
	VG_ETLS = VG_EBASE - 18,     /* TLS handshake, certificate or record failure */
	VG_ELAST = VG_EBASE - 19
};

/* A static, never-NULL message for `code` (0, -errno or VG_E*). */
const char *vg_strerror(int code);

#endif
