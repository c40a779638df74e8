/*
 * test_auth.c — server/auth.c on its own: the auth file parser (accepted
 * forms, every rejection with its line number, never quoting a token),
 * the token check, the role table and the refusal message; and the
 * loopback test behind vigild's refusal of an exposed --listen.
 */
#include "auth.h"
#include "server.h"
#include "vg_error.h"
#include "vg_test.h"

#include <errno.h>
#include <sys/stat.h>

#define T_READ "read-token-0123456789"
#define T_WRITE "write-token-0123456789"
#define T_ADMIN "admin#token-0123456789"

static vg_auth_t *parse_ok(const char *text)
{
	vg_auth_t *auth = NULL;
	char err[256] = "";
	int rc = vg_auth_parse(text, strlen(text), "auth.txt", &auth, err, sizeof err);
	cr_assert_eq(rc, 0, "%s", err);
	return auth;
}

/* Parses text expecting a rejection whose message equals `want`. */
static void parse_fails(const char *text, const char *want)
{
	vg_auth_t *auth = (vg_auth_t *)1;
	char err[256] = "";
	int rc = vg_auth_parse(text, strlen(text), "auth.txt", &auth, err, sizeof err);
	cr_assert_eq(rc, VG_EINVAL, "accepted:\n%s", text);
	cr_assert_null(auth);
	cr_assert_str_eq(err, want);
}

static vg_role_t check(const vg_auth_t *auth, const char *token)
{
	return vg_auth_check(auth, token, strlen(token));
}

Test(auth_file, accepts_both_orders_comments_blank_lines_and_crlf)
{
	vg_auth_t *auth = parse_ok("# tokens\n"
	                           "\n"
	                           "read " T_READ "\n"
	                           "   # indented comment\n"
	                           "\t" T_WRITE "\twrite\r\n"
	                           "admin   " T_ADMIN); /* no final newline */
	cr_assert_eq(vg_auth_count(auth), 3);
	cr_assert_eq(check(auth, T_READ), VG_ROLE_READ);
	cr_assert_eq(check(auth, T_WRITE), VG_ROLE_WRITE);
	cr_assert_eq(check(auth, T_ADMIN), VG_ROLE_ADMIN);
	vg_auth_free(auth);
}

Test(auth_file, unknown_wrong_and_empty_tokens_have_no_role)
{
	vg_auth_t *auth = parse_ok("read " T_READ "\nwrite " T_WRITE "\n");
	cr_assert_eq(check(auth, "read-token-012345678"), VG_ROLE_NONE);   /* a prefix */
	cr_assert_eq(check(auth, "read-token-0123456789x"), VG_ROLE_NONE); /* longer */
	cr_assert_eq(check(auth, "READ-token-0123456789"), VG_ROLE_NONE);  /* case */
	cr_assert_eq(check(auth, ""), VG_ROLE_NONE);
	cr_assert_eq(vg_auth_check(auth, NULL, 0), VG_ROLE_NONE);
	/* The length given counts, not a NUL. */
	cr_assert_eq(vg_auth_check(auth, T_READ "junk", strlen(T_READ)), VG_ROLE_READ);
	vg_auth_free(auth);
	cr_assert_eq(check(NULL, T_READ), VG_ROLE_NONE);
}

Test(auth_file, rejects_a_line_with_one_word)
{
	parse_fails("read " T_READ "\n# c\n" T_WRITE "\n",
	            "auth.txt:3: expected '<role> <token>', found one word");
}

Test(auth_file, rejects_a_line_with_three_words)
{
	parse_fails("read " T_READ " extra\n",
	            "auth.txt:1: expected '<role> <token>', found more than two words");
}

Test(auth_file, rejects_a_line_without_a_role_and_does_not_quote_it)
{
	parse_fails("\n\nreader " T_READ "\n",
	            "auth.txt:3: neither word is a role: expected read, write or admin and a "
	            "token");
}

Test(auth_file, rejects_a_short_token)
{
	parse_fails("read " T_READ "\nwrite short-token\n",
	            "auth.txt:2: the token has 11 characters; 16 to 1024 are required");
	parse_fails("admin 0123456789abcde\n",
	            "auth.txt:1: the token has 15 characters; 16 to 1024 are required");
	/* 16 is enough. */
	vg_auth_free(parse_ok("admin 0123456789abcdef\n"));
}

Test(auth_file, rejects_a_token_over_the_maximum)
{
	char text[1100] = "read ";
	memset(text + 5, 'x', 1025);
	text[5 + 1025] = 0;
	parse_fails(text, "auth.txt:1: the token has 1025 characters; 16 to 1024 are required");
}

Test(auth_file, rejects_a_non_ascii_token)
{
	parse_fails("read 0123456789\xc3\xa9"
	            "abcdef\n",
	            "auth.txt:1: the token has a character that is not printable ASCII (at "
	            "position 11)");
}

Test(auth_file, rejects_a_duplicate_token_even_with_another_role)
{
	parse_fails("read " T_READ "\nwrite " T_WRITE "\n\nadmin " T_READ "\n",
	            "auth.txt:4: duplicate token (first on line 1)");
}

Test(auth_file, rejects_a_file_without_tokens)
{
	parse_fails("", "auth.txt: no tokens (expected lines of '<role> <token>')");
	parse_fails("# only comments\n\n",
	            "auth.txt: no tokens (expected lines of '<role> <token>')");
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(auth_file, load_reports_a_loose_mode_and_a_missing_file)
{
	char dir[256], path[300], err[512];
	vg_test_tmpdir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/auth", dir);
	vg_auth_t *auth;
	bool loose = true;
	write_file(path, "read " T_READ "\n", 0600);
	cr_assert_eq(vg_auth_load(path, &auth, &loose, err, sizeof err), 0, "%s", err);
	cr_assert_not(loose);
	cr_assert_eq(check(auth, T_READ), VG_ROLE_READ);
	vg_auth_free(auth);
	write_file(path, "read " T_READ "\n", 0640);
	cr_assert_eq(vg_auth_load(path, &auth, &loose, err, sizeof err), 0, "%s", err);
	cr_assert(loose);
	vg_auth_free(auth);
	/* A parse error names the path and the line. */
	write_file(path, "read " T_READ "\nread\n", 0600);
	cr_assert_eq(vg_auth_load(path, &auth, &loose, err, sizeof err), VG_EINVAL);
	char want[400];
	snprintf(want, sizeof want, "%s:2: expected '<role> <token>', found one word", path);
	cr_assert_str_eq(err, want);
	snprintf(path, sizeof path, "%s/missing", dir);
	cr_assert_eq(vg_auth_load(path, &auth, &loose, err, sizeof err), -ENOENT);
	cr_assert_null(auth);
	cr_assert(strstr(err, "No such file"), "%s", err);
	vg_test_rmdir(dir);
}

Test(roles, statements_need_the_documented_role)
{
	const struct {
		vg_statement_kind_t kind;
		vg_role_t role;
	} table[] = {
	    {VG_STMT_SELECT, VG_ROLE_READ},          {VG_STMT_SUBSCRIBE, VG_ROLE_READ},
	    {VG_STMT_SHOW_CQS, VG_ROLE_READ},        {VG_STMT_SHOW_MEASUREMENTS, VG_ROLE_READ},
	    {VG_STMT_SHOW_SERIES, VG_ROLE_READ},     {VG_STMT_SHOW_TAG_KEYS, VG_ROLE_READ},
	    {VG_STMT_SHOW_TAG_VALUES, VG_ROLE_READ}, {VG_STMT_SHOW_FIELD_KEYS, VG_ROLE_READ},
	    {VG_STMT_SHOW_STATS, VG_ROLE_READ},      {VG_STMT_SHOW_RETENTION, VG_ROLE_READ},
	    {VG_STMT_DELETE, VG_ROLE_WRITE},         {VG_STMT_CREATE_CQ, VG_ROLE_ADMIN},
	    {VG_STMT_DROP_CQ, VG_ROLE_ADMIN},        {VG_STMT_SET_RETENTION, VG_ROLE_ADMIN},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		cr_assert_eq(vg_role_for_statement(table[i].kind), table[i].role, "%s",
		             vg_statement_kind_name(table[i].kind));
	cr_assert_eq(vg_role_for_request(VIGIL__V1__ENVELOPE__BODY_WRITE), VG_ROLE_WRITE);
	cr_assert_eq(vg_role_for_request(VIGIL__V1__ENVELOPE__BODY_QUERY), VG_ROLE_READ);
	cr_assert_eq(vg_role_for_request(VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE), VG_ROLE_READ);
	cr_assert_eq(vg_role_for_request(VIGIL__V1__ENVELOPE__BODY_PING), VG_ROLE_READ);
}

Test(roles, permit_refuses_below_the_role_and_says_why)
{
	char err[160] = "";
	cr_assert_eq(vg_auth_permit(VG_ROLE_WRITE, VG_ROLE_WRITE, "DELETE", err, sizeof err), 0);
	cr_assert_eq(vg_auth_permit(VG_ROLE_ADMIN, VG_ROLE_READ, "SELECT", err, sizeof err), 0);
	cr_assert_eq(vg_auth_permit(VG_ROLE_READ, VG_ROLE_WRITE, "DELETE", err, sizeof err),
	             VG_EPERM);
	cr_assert_str_eq(
	    err, "permission denied: DELETE needs the write role; this connection has read");
	cr_assert_eq(vg_auth_permit(VG_ROLE_NONE, VG_ROLE_READ, "query", err, sizeof err),
	             VG_EPERM);
}

Test(listen, loopback_addresses_are_recognised)
{
	cr_assert(vg_server_listen_is_loopback("127.0.0.1:8445"));
	cr_assert(vg_server_listen_is_loopback("127.8.9.10:1"));
	cr_assert(vg_server_listen_is_loopback("[::1]:8445"));
	cr_assert(vg_server_listen_is_loopback("localhost:8445"));
	cr_assert_not(vg_server_listen_is_loopback("0.0.0.0:8445"));
	cr_assert_not(vg_server_listen_is_loopback("[::]:8445"));
	cr_assert_not(vg_server_listen_is_loopback("10.0.0.7:8445"));
	cr_assert_not(vg_server_listen_is_loopback("128.0.0.1:8445"));
	cr_assert_not(vg_server_listen_is_loopback("db.example:8445"));
	cr_assert_not(vg_server_listen_is_loopback("[::ffff:10.0.0.1]:8445"));
	cr_assert_not(vg_server_listen_is_loopback("8445"));
}
