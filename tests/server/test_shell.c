/*
 * test_shell.c — `vigil shell` and `vigil stats` against a real vigild.
 *
 * The interactive shell is driven through a pseudo-terminal, as a person
 * would drive it: the test waits for each prompt before typing, types
 * keys (Enter is "\r", up-arrow "\x1b[A", Ctrl-C "\x03", Ctrl-D "\x04")
 * and looks for text in what the terminal shows (carriage returns
 * dropped, so lines end in "\n").  The scripted shell gets its statements
 * on a pipe.  Every wait is bounded: a child that does not finish in time
 * is killed and the test fails.
 */
#include "harness.h"

#include <sys/ioctl.h>
#include <termios.h>

static vg_test_server_t srv;

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	vg_test_server_start(&srv, NULL);
}

static void teardown(void)
{
	vg_test_server_stop(&srv, true);
}

TestSuite(shell, .init = setup, .fini = teardown, .timeout = 30);

static const char *vigil_path(void)
{
	static char path[1024];
	const char *dir = getenv("VIGIL_BUILD_DIR");
	snprintf(path, sizeof path, "%s/client/vigil", dir ? dir : ".");
	return path;
}

static void hist_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/history", srv.dir);
}

/* Waits up to timeout_ms for pid; kills it if it is still running.
 * Returns its exit status, 128 + signal, or -1 on timeout. */
static int wait_child(pid_t pid, int timeout_ms)
{
	int status = 0;
	int64_t deadline = vg_test_ms() + timeout_ms;
	while (vg_test_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		struct timespec ms = {0, 5000000};
		nanosleep(&ms, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* ---- the shell on pipes ------------------------------------------------ */

typedef struct {
	int status;
	char out[16384];
	char err[16384];
} run_t;

/* Runs vigil with args and `input` on a pipe as stdin (5 s at most). */
static void run_piped(run_t *r, const char *input, const char *const *args)
{
	const char *argv[32] = {vigil_path(), "--addr", srv.addr};
	int argc = 3;
	for (int i = 0; args[i] && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	char hist[400];
	hist_path(hist, sizeof hist);
	int in[2], out[2], err[2];
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		for (int k = 0; k < 2; k++) {
			close(in[k]);
			close(out[k]);
			close(err[k]);
		}
		setenv("VIGIL_HISTFILE", hist, 1);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	size_t left = strlen(input); /* small: fits in the pipe */
	cr_assert_eq(write(in[1], input, left), (ssize_t)left);
	close(in[1]);
	memset(r, 0, sizeof *r);
	size_t out_len = 0, err_len = 0;
	struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int open_fds = 2;
	int64_t deadline = vg_test_ms() + 5000;
	while (open_fds && vg_test_ms() < deadline) {
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			if (p[k].fd < 0 || !p[k].revents)
				continue;
			char *buf = k ? r->err : r->out;
			size_t *len = k ? &err_len : &out_len;
			ssize_t n = read(p[k].fd, buf + *len, sizeof r->out - 1 - *len);
			if (n <= 0) {
				close(p[k].fd);
				p[k].fd = -1;
				open_fds--;
			} else {
				*len += (size_t)n;
			}
		}
	}
	for (int k = 0; k < 2; k++)
		if (p[k].fd >= 0)
			close(p[k].fd);
	r->status = wait_child(pid, 2000);
}

static const char lines[] = "cpu,host=b,region=eu usage=2.5,idle=97 1000000000\n"
                            "cpu,host=a,region=eu usage=1,idle=99 1000000000\n"
                            "cpu,host=a,region=eu usage=3.25 2000000000\n"
                            "cpu,host=b,region=eu usage=0.1 2000000000\n";

static void write_points(const char *text)
{
	run_t r;
	static const char *const args[] = {"write", NULL};
	run_piped(&r, text, args);
	cr_assert_eq(r.status, 0, "vigil write: %s", r.err);
}

/* ---- the shell on a terminal -------------------------------------------- */

typedef struct {
	pid_t pid;
	int fd;          /* the pty's master side */
	char out[65536]; /* all the terminal showed, without '\r' */
	size_t len;
	size_t mark; /* term_expect() searches from here */
} term_t;

static void term_start(term_t *t, const char *histfile)
{
	memset(t, 0, sizeof *t);
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	cr_assert_geq(m, 0, "posix_openpt: %s", strerror(errno));
	cr_assert_eq(grantpt(m), 0);
	cr_assert_eq(unlockpt(m), 0);
	char name[128];
	cr_assert_eq(ptsname_r(m, name, sizeof name), 0);
	const char *argv[] = {vigil_path(), "--addr", srv.addr, "shell", NULL};
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setsid(); /* a new session, whose controlling terminal is the pty */
		int s = open(name, O_RDWR);
		if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
			_exit(126);
		struct winsize ws = {.ws_row = 40, .ws_col = 200};
		ioctl(s, TIOCSWINSZ, &ws);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		if (s > 2)
			close(s);
		close(m);
		setenv("VIGIL_HISTFILE", histfile, 1);
		setenv("HOME", srv.dir, 1); /* no ~/.editrc */
		setenv("TERM", "xterm", 1);
		unsetenv("EDITRC");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	t->pid = pid;
	t->fd = m;
	fcntl(m, F_SETFL, O_NONBLOCK);
}

/* Reads what the terminal shows for up to ms; false once the child has
 * closed it. */
static bool term_pump(term_t *t, int ms)
{
	struct pollfd p = {t->fd, POLLIN, 0};
	if (poll(&p, 1, ms) <= 0)
		return true;
	char buf[4096];
	ssize_t n = read(t->fd, buf, sizeof buf);
	if (n <= 0)
		return false; /* EIO: every slave descriptor is closed */
	for (ssize_t i = 0; i < n && t->len + 1 < sizeof t->out; i++)
		if (buf[i] != '\r')
			t->out[t->len++] = buf[i];
	t->out[t->len] = 0;
	return true;
}

/* True once `text` shows up after the mark (which then moves past it);
 * false after timeout_ms. */
static bool term_expect(term_t *t, const char *text, int timeout_ms)
{
	int64_t deadline = vg_test_ms() + timeout_ms;
	for (;;) {
		const char *at = strstr(t->out + t->mark, text);
		if (at) {
			t->mark = (size_t)(at - t->out) + strlen(text);
			return true;
		}
		int left = (int)(deadline - vg_test_ms());
		if (left <= 0 || !term_pump(t, left < 50 ? left : 50))
			return strstr(t->out + t->mark, text) != NULL;
	}
}

static void term_send(term_t *t, const char *keys)
{
	size_t len = strlen(keys);
	cr_assert_eq(write(t->fd, keys, len), (ssize_t)len);
}

/* Waits for the shell to exit (5 s at most) while draining the terminal. */
static int term_finish(term_t *t)
{
	int64_t deadline = vg_test_ms() + 5000;
	while (vg_test_ms() < deadline && term_pump(t, 50))
		;
	int status = wait_child(t->pid, 2000);
	close(t->fd);
	return status;
}

#define EXPECT(t, text)                                                                            \
	cr_assert(term_expect((t), (text), 5000), "expected \"%s\"; the terminal shows:\n%s",      \
	          (text), (t)->out + (t)->mark)

/* The history file's entries with libedit's vis(3) encoding undone
 * ("\040" is a space, "\\" a backslash). */
static void read_history(char *buf, size_t cap)
{
	char path[400], raw[16384];
	hist_path(path, sizeof path);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no history file %s", path);
	size_t n = fread(raw, 1, sizeof raw - 1, f);
	fclose(f);
	raw[n] = 0;
	size_t len = 0;
	for (size_t i = 0; i < n && len + 1 < cap; i++) {
		if (raw[i] == '\\' && i + 3 < n && raw[i + 1] >= '0' && raw[i + 1] <= '3') {
			buf[len++] = (char)((raw[i + 1] - '0') * 64 + (raw[i + 2] - '0') * 8 +
			                    (raw[i + 3] - '0'));
			i += 3;
		} else if (raw[i] == '\\' && i + 1 < n && raw[i + 1] == '\\') {
			buf[len++] = '\\';
			i++;
		} else {
			buf[len++] = raw[i];
		}
	}
	buf[len] = 0;
}

Test(shell, multiline_statements_formats_timing_and_history)
{
	write_points(lines);
	char hist[400];
	hist_path(hist, sizeof hist);
	term_t t;
	term_start(&t, hist);
	EXPECT(&t, "vigil> ");

	/* A statement over two lines: the continuation prompt, then the rows. */
	term_send(&t, "SELECT usage\r");
	EXPECT(&t, "...> ");
	term_send(&t, "FROM cpu WHERE host = 'b';\r");
	EXPECT(&t, "time        usage\n"
	           "----------  -----\n"
	           "1000000000    2.5\n"
	           "2000000000    0.1\n"
	           "(2 rows)\n");
	EXPECT(&t, "vigil> ");

	term_send(&t, "\\timing\r");
	EXPECT(&t, "Timing is on.");
	EXPECT(&t, "vigil> ");
	term_send(&t, "SHOW MEASUREMENTS;\r");
	EXPECT(&t, "name\n----\ncpu\n(1 row)\nTime: ");
	double ms = -1;
	int used = 0;
	sscanf(t.out + t.mark, "%lf ms\n%n", &ms, &used);
	cr_assert(used > 0 && ms >= 0 && ms < 5000, "bad timing line: %s", t.out + t.mark);
	EXPECT(&t, "vigil> ");

	/* A server error is shown, with a caret, and the shell goes on. */
	term_send(&t, "SELEC 1;\r");
	EXPECT(&t, "error: line 1, column 1: ");
	EXPECT(&t, "  SELEC 1\n  ^\n");
	EXPECT(&t, "vigil> ");

	term_send(&t, "\\format csv\r");
	EXPECT(&t, "Output format is csv.");
	EXPECT(&t, "vigil> ");
	term_send(&t, "SELECT usage FROM cpu WHERE host = 'a';\r");
	EXPECT(&t, "time,usage\n1000000000,1\n2000000000,3.25\nTime: ");
	EXPECT(&t, "vigil> ");
	term_send(&t, "\\q\r");
	cr_assert_eq(term_finish(&t), 0, "the shell showed:\n%s", t.out);

	/* The history file holds every entry, multi-line statements joined. */
	char entries[16384];
	read_history(entries, sizeof entries);
	cr_assert(strstr(entries, "SELECT usage FROM cpu WHERE host = 'b';\n"), "%s", entries);
	cr_assert(strstr(entries, "SHOW MEASUREMENTS;\n"), "%s", entries);
	cr_assert(strstr(entries, "\\format csv\n"), "%s", entries);
	cr_assert(strstr(entries, "SELECT usage FROM cpu WHERE host = 'a';\n\\q\n"), "%s", entries);

	/* A new shell recalls them: up-arrow twice passes \q and brings back
	 * the last query, which now prints as a table. */
	term_start(&t, hist);
	EXPECT(&t, "vigil> ");
	term_send(&t, "\x1b[A\x1b[A");
	EXPECT(&t, "WHERE host = 'a';");
	term_send(&t, "\r");
	EXPECT(&t, "1000000000      1\n2000000000   3.25\n(2 rows)\n");
	EXPECT(&t, "vigil> ");
	term_send(&t, "\x04"); /* Ctrl-D */
	cr_assert_eq(term_finish(&t), 0, "the shell showed:\n%s", t.out);
}

Test(shell, ctrl_c_drops_the_pending_statement)
{
	write_points(lines);
	char hist[400];
	hist_path(hist, sizeof hist);
	term_t t;
	term_start(&t, hist);
	EXPECT(&t, "vigil> ");
	term_send(&t, "SELECT nothing\r");
	EXPECT(&t, "...> ");
	term_send(&t, "FROM nowhere");
	EXPECT(&t, "nowhere");
	term_send(&t, "\x03");
	EXPECT(&t, "vigil> ");
	/* Were "SELECT nothing FROM nowhere" still pending, this would fail. */
	term_send(&t, "SHOW MEASUREMENTS;\r");
	EXPECT(&t, "name\n----\ncpu\n(1 row)\n");
	EXPECT(&t, "vigil> ");
	cr_assert_null(strstr(t.out, "error"), "%s", t.out);
	term_send(&t, "\\q\r");
	cr_assert_eq(term_finish(&t), 0, "the shell showed:\n%s", t.out);
}

Test(shell, reconnects_after_the_server_restarts)
{
	write_points(lines);
	char hist[400], addr[64];
	hist_path(hist, sizeof hist);
	snprintf(addr, sizeof addr, "%s", srv.addr);
	term_t t;
	term_start(&t, hist);
	EXPECT(&t, "vigil> ");
	term_send(&t, "SHOW MEASUREMENTS;\r");
	EXPECT(&t, "cpu\n(1 row)\n");
	EXPECT(&t, "vigil> ");

	cr_assert_eq(vg_test_server_signal(&srv, SIGTERM), 0);
	const char *const same_port[] = {"--listen", addr, NULL};
	vg_test_server_start(&srv, same_port);
	cr_assert_str_eq(srv.addr, addr);

	term_send(&t, "SHOW MEASUREMENTS;\r");
	EXPECT(&t, "(connection lost; reconnected)\n");
	EXPECT(&t, "cpu\n(1 row)\n");
	EXPECT(&t, "vigil> ");
	cr_assert_null(strstr(t.out, "error"), "%s", t.out);
	term_send(&t, "\\q\r");
	cr_assert_eq(term_finish(&t), 0, "the shell showed:\n%s", t.out);
}

Test(shell, reads_statements_from_a_pipe_without_prompts)
{
	write_points(lines);
	run_t r;
	static const char *const args[] = {"shell", NULL};
	run_piped(&r,
	          "SHOW MEASUREMENTS;\n"
	          "\\format csv\n"
	          "SELECT usage\n"
	          "  FROM cpu\n"
	          "  WHERE host = 'a';  SELEC 1;\n"
	          "\n"
	          "SHOW TAG VALUES FROM cpu WITH KEY = host;\n"
	          "\\timing on\n"
	          "SELECT usage FROM cpu WHERE host = 'b' LIMIT 1\n",
	          args);
	/* Each statement ran, the failed one included: the status is 1. */
	cr_assert_eq(r.status, 1, "stderr: %s", r.err);
	cr_assert(strncmp(r.out,
	                  "name\n----\ncpu\n"
	                  "time,usage\n1000000000,1\n2000000000,3.25\n"
	                  "key,value\nhost,a\nhost,b\n",
	                  strlen("name\n----\ncpu\ntime,usage\n1000000000,1\n2000000000,3.25\n"
	                         "key,value\nhost,a\nhost,b\n")) == 0,
	          "stdout: %s", r.out);
	cr_assert(strstr(r.out, "\ntime,usage\n1000000000,2.5\nTime: "), "stdout: %s", r.out);
	cr_assert_null(strstr(r.out, "vigil>"), "stdout: %s", r.out);
	cr_assert_null(strstr(r.out, "Output format"), "stdout: %s", r.out);
	cr_assert(strstr(r.err, "error: line 1, column 1: "), "stderr: %s", r.err);
	/* Scripts leave no history. */
	char hist[400];
	hist_path(hist, sizeof hist);
	cr_assert_neq(access(hist, F_OK), 0);

	/* Without errors the status is 0. */
	run_piped(&r, "SHOW MEASUREMENTS;\n", args);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "name\n----\ncpu\n");
}

Test(shell, semicolons_in_strings_and_regexes_do_not_end_a_statement)
{
	write_points("cpu,host=x;y usage=5 3000000000\n");
	run_t r;
	static const char *const args[] = {"shell", "--format", "csv", NULL};
	run_piped(&r,
	          "SELECT usage FROM cpu WHERE host = 'x;y';\n"
	          "SELECT usage FROM cpu WHERE host =~ /;y$/;\n"
	          "SELECT usage AS \"a;b\" FROM cpu;\n",
	          args);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert_str_eq(r.out, "time,usage\n3000000000,5\n"
	                        "time,usage\n3000000000,5\n"
	                        "time,a;b\n3000000000,5\n");
}

Test(shell, stats_prints_aligned_counters)
{
	write_points(lines);
	run_t r;
	static const char *const table[] = {"stats", NULL};
	run_piped(&r, "", table);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	/* Every line is "name  value", padded to the same width. */
	size_t width = strcspn(r.out, "\n");
	int count = 0;
	bool saw_points = false, saw_rate = false;
	for (const char *line = r.out; *line; line += strcspn(line, "\n") + 1, count++) {
		size_t len = strcspn(line, "\n");
		cr_assert_eq(len, width, "unaligned line in:\n%s", r.out);
		const char *value = line + len;
		while (value > line && value[-1] != ' ')
			value--;
		if (strncmp(line, "points_written ", 15) == 0) {
			saw_points = true;
			cr_assert(strncmp(value, "6\n", 2) == 0, "%s", r.out);
		}
		if (strncmp(line, "writes_per_s ", 13) == 0) {
			saw_rate = true;
			const char *dot = strchr(value, '.');
			cr_assert(dot && dot[1] >= '0' && dot[1] <= '9' && dot[2] == '\n', "%s",
			          r.out);
		}
		if (strncmp(line, "connections_total ", 18) == 0)
			cr_assert_null(memchr(value, '.', (size_t)(line + len - value)), "%s",
			               r.out);
	}
	cr_assert(saw_points && saw_rate && count > 5, "%s", r.out);

	static const char *const csv[] = {"stats", "--format", "csv", NULL};
	run_piped(&r, "", csv);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strncmp(r.out, "name,value\n", 11) == 0, "%s", r.out);
	cr_assert(strstr(r.out, "\npoints_written,6\n"), "%s", r.out);

	static const char *const json[] = {"stats", "--format", "json", NULL};
	run_piped(&r, "", json);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strstr(r.out, "[\"points_written\",6]"), "%s", r.out);

	static const char *const bad[] = {"stats", "--format", "xml", NULL};
	run_piped(&r, "", bad);
	cr_assert_eq(r.status, 2);
}
