/*
 * auth.h — vigild's access control: the auth file, token checks and the
 * one table of what each role may do.
 *
 * The auth file (vigild --auth-file FILE) lists one token per line with
 * its role, in either order:
 *
 *     # dashboards
 *     read   3f9c0b7e5d1a4c2b8e6f0a9d
 *     write  ingest-7d2f61c0a8b94e35
 *     9b1e5c3d7a2f4e6b8c0d admin
 *
 * Blank lines and lines whose first non-blank character is '#' are
 * ignored; there are no trailing comments (a token may contain '#').  A
 * token is 16 to 1024 printable ASCII characters without spaces.  Any
 * other line, a duplicate token or a file without tokens rejects the whole
 * file with "FILE:LINE: reason"; no message ever quotes a token.
 *
 * Roles, each including the ones before it:
 *   read   SELECT, SUBSCRIBE and every SHOW (SHOW STATS included: it holds
 *          counters only); Ping, Cancel, Unsubscribe.
 *   write  + Write requests and DELETE.
 *   admin  + CREATE / DROP CONTINUOUS QUERY and SET RETENTION.
 *
 * Token checks take the same time whatever the token: tokens are kept as
 * SHA-256 digests, and a presented token's digest is compared with every
 * entry by CRYPTO_memcmp without stopping at a match.
 */
#ifndef VG_AUTH_H
#define VG_AUTH_H

#include "vg_proto.h"
#include "vg_query.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum vg_role {
	VG_ROLE_NONE = 0, /* not authenticated: nothing is allowed */
	VG_ROLE_READ = 1,
	VG_ROLE_WRITE = 2,
	VG_ROLE_ADMIN = 3,
} vg_role_t;

#define VG_AUTH_TOKEN_MIN 16
#define VG_AUTH_TOKEN_MAX 1024
#define VG_AUTH_FILE_MAX (1u << 20)

typedef struct vg_auth vg_auth_t;

/*
 * Parses auth file text [text, text+len); `name` names the file in
 * messages.  Returns 0 and *out (free with vg_auth_free()), VG_EINVAL with
 * "name:line: reason" in err, or VG_ENOMEM.
 */
int vg_auth_parse(const char *text, size_t len, const char *name, vg_auth_t **out, char *err,
                  size_t errlen);

/*
 * Reads and parses the file at `path` (at most VG_AUTH_FILE_MAX bytes).
 * Returns as vg_auth_parse(), or -errno / VG_ELIMIT with err naming the
 * file.  *loose is set when the file may be read by its group or others
 * (the caller warns).
 */
int vg_auth_load(const char *path, vg_auth_t **out, bool *loose, char *err, size_t errlen);

/* NULL is allowed. */
void vg_auth_free(vg_auth_t *auth);

/* The number of tokens loaded. */
size_t vg_auth_count(const vg_auth_t *auth);

/* The role of `token` (len bytes, need not be NUL-terminated), or
 * VG_ROLE_NONE; constant time in the token's content and position. */
vg_role_t vg_auth_check(const vg_auth_t *auth, const char *token, size_t len);

/* "read", "write", "admin" or "none" (static). */
const char *vg_role_name(vg_role_t role);

/* The least role a request needs (Write needs write; Query needs read
 * here, and its statement is checked with vg_role_for_statement()). */
vg_role_t vg_role_for_request(Vigil__V1__Envelope__BodyCase body);

/* The least role a statement needs. */
vg_role_t vg_role_for_statement(vg_statement_kind_t kind);

/*
 * The check: 0 when `role` reaches `need`, else VG_EPERM with err saying
 * what was refused and why ("permission denied: DELETE needs the write
 * role; this connection has read").  `what` names the request.
 */
int vg_auth_permit(vg_role_t role, vg_role_t need, const char *what, char *err, size_t errlen);

#endif
