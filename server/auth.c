/*
 * auth.c — the auth file parser, the constant-time token check and the
 * role table (auth.h has the file format and the roles).
 *
 * Shape: the file is read whole (bounded), split into lines, and every
 * token is replaced at once by its SHA-256 digest; the plain tokens are
 * never kept, copied or printed.  A check hashes the presented token and
 * compares the digest with every entry using CRYPTO_memcmp, folding the
 * result in with masks, so neither a match's position nor a near miss
 * changes the time taken.  Digests make the compare independent of the
 * token's length too.
 */
#include "auth.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGEST_LEN 32

typedef struct {
	unsigned char digest[DIGEST_LEN];
	vg_role_t role;
	unsigned line;
} auth_entry_t;

struct vg_auth {
	auth_entry_t *entries;
	size_t n, cap;
};

static const char *const role_names[] = {"none", "read", "write", "admin"};

const char *vg_role_name(vg_role_t role)
{
	return (unsigned)role < 4 ? role_names[role] : "none";
}

static vg_role_t role_parse(const char *word, size_t len)
{
	for (int r = VG_ROLE_READ; r <= VG_ROLE_ADMIN; r++)
		if (strlen(role_names[r]) == len && memcmp(role_names[r], word, len) == 0)
			return (vg_role_t)r;
	return VG_ROLE_NONE;
}

static int digest(const char *token, size_t len, unsigned char out[DIGEST_LEN])
{
	unsigned int n = 0;
	if (EVP_Digest(token, len, out, &n, EVP_sha256(), NULL) != 1 || n != DIGEST_LEN)
		return VG_ENOMEM;
	return 0;
}

static bool token_char(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f;
}

void vg_auth_free(vg_auth_t *auth)
{
	if (!auth)
		return;
	if (auth->entries)
		OPENSSL_cleanse(auth->entries, auth->cap * sizeof *auth->entries);
	vg_free(auth->entries);
	vg_free(auth);
}

size_t vg_auth_count(const vg_auth_t *auth)
{
	return auth ? auth->n : 0;
}

/* Parses one line that is neither blank nor a comment. */
static int parse_line(vg_auth_t *auth, const char *line, size_t len, unsigned lineno,
                      const char *name, char *err, size_t errlen)
{
	const char *words[3];
	size_t lens[3];
	size_t nwords = 0;
	for (size_t i = 0; i < len;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		size_t start = i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		if (nwords == 3)
			break;
		words[nwords] = line + start;
		lens[nwords++] = i - start;
		if (nwords == 3)
			break;
	}
	if (nwords != 2) {
		snprintf(err, errlen, "%s:%u: expected '<role> <token>', found %s", name, lineno,
		         nwords > 2 ? "more than two words" : "one word");
		return VG_EINVAL;
	}
	vg_role_t r0 = role_parse(words[0], lens[0]), r1 = role_parse(words[1], lens[1]);
	if (!r0 && !r1) {
		snprintf(err, errlen,
		         "%s:%u: neither word is a role: expected read, write or admin and a "
		         "token",
		         name, lineno);
		return VG_EINVAL;
	}
	vg_role_t role = r0 ? r0 : r1;
	const char *token = r0 ? words[1] : words[0];
	size_t tlen = r0 ? lens[1] : lens[0];
	if (tlen < VG_AUTH_TOKEN_MIN || tlen > VG_AUTH_TOKEN_MAX) {
		snprintf(err, errlen, "%s:%u: the token has %zu characters; %d to %d are required",
		         name, lineno, tlen, VG_AUTH_TOKEN_MIN, VG_AUTH_TOKEN_MAX);
		return VG_EINVAL;
	}
	for (size_t i = 0; i < tlen; i++)
		if (!token_char((unsigned char)token[i])) {
			snprintf(err, errlen,
			         "%s:%u: the token has a character that is not printable ASCII "
			         "(at position %zu)",
			         name, lineno, i + 1);
			return VG_EINVAL;
		}
	unsigned char d[DIGEST_LEN];
	if (digest(token, tlen, d)) {
		snprintf(err, errlen, "%s:%u: cannot hash the token", name, lineno);
		return VG_ENOMEM;
	}
	for (size_t i = 0; i < auth->n; i++)
		if (memcmp(auth->entries[i].digest, d, DIGEST_LEN) == 0) {
			snprintf(err, errlen, "%s:%u: duplicate token (first on line %u)", name,
			         lineno, auth->entries[i].line);
			return VG_EINVAL;
		}
	if (auth->n == auth->cap) {
		size_t cap = auth->cap ? auth->cap * 2 : 8;
		auth_entry_t *grown = vg_calloc(cap, sizeof *grown);
		if (!grown) {
			snprintf(err, errlen, "out of memory");
			return VG_ENOMEM;
		}
		if (auth->n)
			memcpy(grown, auth->entries, auth->n * sizeof *grown);
		if (auth->entries)
			OPENSSL_cleanse(auth->entries, auth->cap * sizeof *auth->entries);
		vg_free(auth->entries);
		auth->entries = grown;
		auth->cap = cap;
	}
	auth_entry_t *e = &auth->entries[auth->n++];
	memcpy(e->digest, d, DIGEST_LEN);
	e->role = role;
	e->line = lineno;
	return 0;
}

int vg_auth_parse(const char *text, size_t len, const char *name, vg_auth_t **out, char *err,
                  size_t errlen)
{
	*out = NULL;
	vg_auth_t *auth = vg_calloc(1, sizeof *auth);
	if (!auth) {
		snprintf(err, errlen, "out of memory");
		return VG_ENOMEM;
	}
	unsigned lineno = 0;
	int rc = 0;
	for (size_t pos = 0; pos < len && rc == 0;) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		size_t i = 0;
		while (i < n && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == n || line[i] == '#')
			continue;
		rc = parse_line(auth, line, n, lineno, name, err, errlen);
	}
	if (rc == 0 && auth->n == 0) {
		snprintf(err, errlen, "%s: no tokens (expected lines of '<role> <token>')", name);
		rc = VG_EINVAL;
	}
	if (rc) {
		vg_auth_free(auth);
		return rc;
	}
	*out = auth;
	return 0;
}

int vg_auth_load(const char *path, vg_auth_t **out, bool *loose, char *err, size_t errlen)
{
	*out = NULL;
	*loose = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "--auth-file %s: %s", path, strerror(errno));
		return rc;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		snprintf(err, errlen, "--auth-file %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "--auth-file %s: not a regular file", path);
		close(fd);
		return VG_EINVAL;
	}
	if ((size_t)st.st_size > VG_AUTH_FILE_MAX) {
		snprintf(err, errlen, "--auth-file %s: %lld bytes, more than the limit of %u", path,
		         (long long)st.st_size, VG_AUTH_FILE_MAX);
		close(fd);
		return VG_ELIMIT;
	}
	*loose = (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
	size_t size = (size_t)st.st_size;
	char *text = vg_malloc(size + 1);
	if (!text) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return VG_ENOMEM;
	}
	size_t got = 0;
	int rc = 0;
	while (got < size) {
		ssize_t n = read(fd, text + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : VG_EINVAL;
			snprintf(err, errlen, "--auth-file %s: %s", path,
			         n < 0 ? strerror(errno) : "the file shrank while being read");
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (rc == 0)
		rc = vg_auth_parse(text, got, path, out, err, errlen);
	OPENSSL_cleanse(text, size + 1);
	vg_free(text);
	return rc;
}

vg_role_t vg_auth_check(const vg_auth_t *auth, const char *token, size_t len)
{
	unsigned char d[DIGEST_LEN];
	if (!auth || !token || len == 0 || digest(token, len, d))
		return VG_ROLE_NONE;
	unsigned found = 0;
	for (size_t i = 0; i < auth->n; i++) {
		/* mask: all ones on a match, zero otherwise, without a branch. */
		unsigned equal =
		    (unsigned)(CRYPTO_memcmp(auth->entries[i].digest, d, DIGEST_LEN) == 0);
		unsigned mask = 0u - equal;
		found |= mask & (unsigned)auth->entries[i].role;
	}
	OPENSSL_cleanse(d, sizeof d);
	return (vg_role_t)found;
}

vg_role_t vg_role_for_request(Vigil__V1__Envelope__BodyCase body)
{
	return body == VIGIL__V1__ENVELOPE__BODY_WRITE ? VG_ROLE_WRITE : VG_ROLE_READ;
}

vg_role_t vg_role_for_statement(vg_statement_kind_t kind)
{
	switch (kind) {
	case VG_STMT_DELETE:
		return VG_ROLE_WRITE;
	case VG_STMT_CREATE_CQ:
	case VG_STMT_DROP_CQ:
	case VG_STMT_SET_RETENTION:
		return VG_ROLE_ADMIN;
	case VG_STMT_SELECT:
	case VG_STMT_SUBSCRIBE:
	case VG_STMT_SHOW_CQS:
	case VG_STMT_SHOW_MEASUREMENTS:
	case VG_STMT_SHOW_SERIES:
	case VG_STMT_SHOW_TAG_KEYS:
	case VG_STMT_SHOW_TAG_VALUES:
	case VG_STMT_SHOW_FIELD_KEYS:
	case VG_STMT_SHOW_STATS:
	case VG_STMT_SHOW_RETENTION:
		return VG_ROLE_READ;
	}
	/* A statement kind added later is admin-only until it is listed. */
	return VG_ROLE_ADMIN;
}

int vg_auth_permit(vg_role_t role, vg_role_t need, const char *what, char *err, size_t errlen)
{
	if (role >= need)
		return 0;
	snprintf(err, errlen, "permission denied: %s needs the %s role; this connection has %s",
	         what, vg_role_name(need), vg_role_name(role));
	return VG_EPERM;
}
