/*
 * cli_shell.c — `vigil shell [--format table|csv|json] [--time-format
 * ns|rfc3339]`: statements typed at a prompt, answers printed as by
 * `vigil query`.
 *
 * Input is cut into statements, not lines: a statement ends at a ';' that
 * is outside a 'string', a "quoted identifier" and a /regex/ (the same
 * three quotes as the query lexer, and like it a quote never runs past the
 * end of a line), so one may span lines and one line may hold several.
 * While a statement is unfinished the prompt is "  ...> " instead of
 * "vigil> ".  A line that starts with '\' where no statement is pending is
 * a meta-command (\format, \timing, \help, \q; see shell_help()); so is
 * a line that is just "quit" or "exit".
 *
 * Two modes, chosen by whether stdin is a terminal:
 *   interactive  libedit's native API (histedit.h): emacs-style editing,
 *                ~/.editrc honoured, history kept in $VIGIL_HISTFILE (set
 *                but empty: none) or ~/.vigil_history, loaded at start
 *                and saved after every entry.  A multi-line statement is
 *                one history entry, its lines joined by spaces.  Ctrl-C at
 *                the prompt drops the line and any pending statement;
 *                while a statement runs it ends the shell, as it ends
 *                `vigil query`.  Ctrl-D or \q quits with status 0.
 *   scripted     statements read from stdin with getline(): no prompts,
 *                no history, and a last statement without ';' still runs
 *                at end of input, and meta-commands that change a setting
 *                print no confirmation (stdout holds only answers).  The
 *                exit status is 1 if any statement or meta-command failed
 *                (each is still attempted).
 *
 * Errors from the server print "error: <message>" on stderr and the shell
 * goes on; interactively a syntax error also shows the offending line of
 * the statement with a caret under the column.  Before each statement the
 * connection is checked with a ping, and one that was lost (server
 * restarted, network cut) is replaced by a new one, so a statement is
 * never sent down a connection already known to be dead.  A statement that
 * fails because the connection breaks while it runs is not retried: it may
 * have been applied.
 *
 * The text sent to the server is the statement as typed, without its ';'
 * and with its line breaks, so positions in errors match what is on the
 * screen.
 */
#include "cli.h"

#include "vg_buf.h"

#include <errno.h>
#include <getopt.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

enum { SHELL_HISTORY_SIZE = 1000 };

typedef struct shell {
	const cli_global_t *g;
	vg_client_t *client; /* NULL after a failed reconnect */
	cli_format_t format;
	cli_time_format_t tf;
	bool timing;
	bool interactive;
	bool failed; /* a statement or meta-command failed (scripted exit status) */
	bool quit;
	/* The unfinished statement: the lines typed so far, each followed by
	 * '\n'.  Empty (len 0) whenever no statement is pending. */
	vg_buf_t pending;
	/* Interactive mode only. */
	EditLine *el;
	History *hist;
	char *histfile; /* malloc'd; NULL: keep no history file */
	bool hist_warned;
} shell_t;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- line editing and history --------------------------------------- */

static char *shell_prompt(EditLine *el)
{
	static char first[] = "vigil> ", more[] = "  ...> ";
	shell_t *sh = NULL;
	el_get(el, EL_CLIENTDATA, &sh);
	return sh && sh->pending.len ? more : first;
}

/*
 * libedit's own reader retries a read() interrupted by a signal, so Ctrl-C
 * could not end el_gets().  This one gives up once SIGINT has arrived,
 * which makes el_gets() return NULL with errno EINTR; otherwise it reads
 * one character of the locale's encoding (a byte that is not valid there is
 * passed through as itself).  The flag is tested with SIGINT blocked and
 * the wait unblocks it atomically (ppoll), so a Ctrl-C that lands between
 * two reads is not missed.
 */
static int shell_getc(EditLine *el, wchar_t *out)
{
	(void)el;
	mbstate_t state;
	memset(&state, 0, sizeof state);
	sigset_t sigint, old;
	sigemptyset(&sigint);
	sigaddset(&sigint, SIGINT);
	for (;;) {
		sigprocmask(SIG_BLOCK, &sigint, &old);
		bool stop = interrupted;
		struct pollfd p = {STDIN_FILENO, POLLIN, 0};
		int ready = stop ? -1 : ppoll(&p, 1, NULL, &old);
		int err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (stop || (ready < 0 && err == EINTR && interrupted)) {
			errno = EINTR;
			return -1;
		}
		if (ready < 0 && err == EINTR)
			continue;
		if (ready < 0) {
			errno = err;
			return -1;
		}
		char byte;
		ssize_t n = read(STDIN_FILENO, &byte, 1);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		size_t r = mbrtowc(out, &byte, 1, &state);
		if (r == (size_t)-2)
			continue;
		if (r == (size_t)-1)
			*out = (wchar_t)(unsigned char)byte;
		return 1;
	}
}

/* The history file: $VIGIL_HISTFILE if set ("" for none), else
 * ~/.vigil_history.  Returns a malloc'd path or NULL. */
static char *shell_histfile_path(void)
{
	const char *env = getenv("VIGIL_HISTFILE");
	if (env)
		return *env ? strdup(env) : NULL;
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home)
		return NULL;
	size_t len = strlen(home) + sizeof "/.vigil_history";
	char *path = malloc(len);
	if (path)
		snprintf(path, len, "%s/.vigil_history", home);
	return path;
}

static int shell_edit_open(shell_t *sh)
{
	HistEvent ev;
	sh->hist = history_init();
	sh->el = el_init("vigil", stdin, stdout, stderr);
	if (!sh->hist || !sh->el)
		return -1;
	history(sh->hist, &ev, H_SETSIZE, SHELL_HISTORY_SIZE);
	history(sh->hist, &ev, H_SETUNIQUE, 1);
	el_set(sh->el, EL_CLIENTDATA, sh);
	el_set(sh->el, EL_PROMPT, shell_prompt);
	el_set(sh->el, EL_EDITOR, "emacs");
	el_set(sh->el, EL_SIGNAL, 1);
	el_set(sh->el, EL_HIST, history, sh->hist);
	el_set(sh->el, EL_GETCFN, shell_getc);
	el_source(sh->el, NULL); /* ~/.editrc, if any */
	sh->histfile = shell_histfile_path();
	if (sh->histfile)
		history(sh->hist, &ev, H_LOAD, sh->histfile); /* a missing file is no error */
	return 0;
}

static void shell_edit_close(shell_t *sh)
{
	if (sh->el)
		el_end(sh->el);
	if (sh->hist)
		history_end(sh->hist);
	free(sh->histfile);
	sh->el = NULL;
	sh->hist = NULL;
	sh->histfile = NULL;
}

/* Adds an entry to the history and saves the file (interactive only). */
static void shell_remember(shell_t *sh, const char *entry)
{
	if (!sh->hist)
		return;
	HistEvent ev;
	history(sh->hist, &ev, H_ENTER, entry);
	if (sh->histfile && history(sh->hist, &ev, H_SAVE, sh->histfile) < 0 && !sh->hist_warned) {
		fprintf(stderr, "vigil: cannot save history to %s: %s\n", sh->histfile,
		        strerror(errno));
		sh->hist_warned = true;
	}
}

/* ---- running statements ---------------------------------------------- */

/* A live connection, replacing a lost one; false (reason printed) if none. */
static bool shell_connection(shell_t *sh)
{
	if (sh->client && vg_client_ping(sh->client) == 0)
		return true;
	bool lost = sh->client != NULL;
	vg_client_close(sh->client);
	sh->client = cli_connect(sh->g);
	if (sh->client && lost && sh->interactive)
		fprintf(stderr, "(connection lost; reconnected)\n");
	return sh->client != NULL;
}

/* Shows line L of the statement with a caret under column C when the
 * server's message starts with "line L, column C:". */
static void shell_show_position(const char *statement, const char *message)
{
	unsigned line, column;
	int used = 0;
	if (sscanf(message, "line %u, column %u:%n", &line, &column, &used) != 2 || !used ||
	    line == 0 || column == 0)
		return;
	const char *at = statement;
	for (unsigned l = 1; l < line && at; l++) {
		at = strchr(at, '\n');
		if (at)
			at++;
	}
	if (!at)
		return;
	size_t len = strcspn(at, "\n");
	fprintf(stderr, "  %.*s\n  ", (int)len, at);
	/* Columns count characters (UTF-8 lead bytes); tabs stay tabs so the
	 * caret lines up under them. */
	unsigned col = 1;
	for (size_t i = 0; i < len && col < column; i++) {
		unsigned char c = (unsigned char)at[i];
		if ((c & 0xC0) == 0x80)
			continue;
		fputc(c == '\t' ? '\t' : ' ', stderr);
		col++;
	}
	if (col == column)
		fputs("^\n", stderr);
	else
		fputc('\n', stderr);
}

static void shell_run(shell_t *sh, const char *statement)
{
	if (!shell_connection(sh)) {
		sh->failed = true;
		return;
	}
	vg_result_t *r = NULL;
	double start = now_ms();
	int rc = vg_client_query(sh->client, statement, &r);
	double elapsed = now_ms() - start;
	if (rc) {
		fflush(stdout);
		fprintf(stderr, "error: %s\n", vg_client_errstr(sh->client));
		if (sh->interactive)
			shell_show_position(statement, vg_client_errstr(sh->client));
		if (sh->interactive && vg_client_is_closed(sh->client))
			fprintf(stderr, "(connection lost; the next statement reconnects)\n");
		sh->failed = true;
		return;
	}
	cli_print_result(stdout, r, sh->format, sh->tf);
	if (sh->interactive && sh->format == CLI_FORMAT_TABLE) {
		size_t rows = 0;
		for (size_t i = 0; i < vg_result_set_count(r); i++)
			rows += vg_result_row_count(vg_result_set(r, i));
		printf("(%zu row%s)\n", rows, rows == 1 ? "" : "s");
	}
	vg_result_free(r);
	if (sh->timing)
		printf("Time: %.3f ms\n", elapsed);
	fflush(stdout);
}

/* Runs the pending statement, if it holds more than blanks, and empties
 * it.  The history gets it on one line, ending in ';'. */
static void shell_finish_statement(shell_t *sh)
{
	char *text = (char *)sh->pending.data;
	size_t start = 0, end = sh->pending.len;
	while (start < end && is_blank(text[start]))
		start++;
	while (end > start && is_blank(text[end - 1]))
		end--;
	if (start == end) {
		vg_buf_clear(&sh->pending);
		return;
	}
	text[end] = 0; /* within the buffer: data[len] is addressable */
	if (sh->hist) {
		vg_buf_t entry = VG_BUF_INIT;
		int rc = 0;
		for (size_t i = start; i < end && rc == 0; i++) {
			if (text[i] != '\n') {
				rc = vg_buf_putc(&entry, (uint8_t)text[i]);
				continue;
			}
			while (entry.len && is_blank((char)entry.data[entry.len - 1]))
				entry.len--;
			rc = vg_buf_putc(&entry, ' ');
			while (i + 1 < end && is_blank(text[i + 1]))
				i++;
		}
		if (rc == 0)
			rc = vg_buf_putc(&entry, ';');
		if (rc == 0)
			shell_remember(sh, vg_buf_cstr(&entry));
		vg_buf_release(&entry);
	}
	shell_run(sh, text + start);
	vg_buf_clear(&sh->pending);
}

/* ---- meta-commands ---------------------------------------------------- */

static const char *format_name(cli_format_t f)
{
	return f == CLI_FORMAT_CSV ? "csv" : f == CLI_FORMAT_JSON ? "json" : "table";
}

static void shell_help(const shell_t *sh)
{
	printf("Statements end with ';' and may span lines:\n"
	       "  SELECT <col>[, ...] FROM <measurement> [WHERE <cond>]\n"
	       "    [GROUP BY time(<dur>[, <offset>])[, <tag>|*]...] [FILL(none|null|previous|"
	       "linear|<n>)]\n"
	       "    [ORDER BY time [ASC|DESC]] [LIMIT <n>]\n"
	       "  SHOW MEASUREMENTS | SHOW SERIES [FROM <m>] [WHERE <tag cond>]\n"
	       "  SHOW TAG KEYS [FROM <m>] | SHOW TAG VALUES [FROM <m>] WITH KEY = <tag>\n"
	       "  SHOW FIELD KEYS [FROM <m>] | SHOW STATS | SHOW RETENTION\n"
	       "  SHOW CONTINUOUS QUERIES | DROP CONTINUOUS QUERY <name>\n"
	       "  CREATE CONTINUOUS QUERY <name> AS SELECT <agg>(<field>) INTO <m> FROM ...\n"
	       "    GROUP BY time(<dur>)\n"
	       "  DELETE FROM <measurement> [WHERE <tag and time cond>]\n"
	       "  SET RETENTION <dur|INF> [ON <measurement>]\n"
	       "  (SUBSCRIBE: use `vigil subscribe`)\n"
	       "Meta-commands, alone on a line:\n"
	       "  \\format [table|csv|json]  set or show the output format (now %s)\n"
	       "  \\timing [on|off]          print each statement's round trip time (now %s)\n"
	       "  \\help                     this text\n"
	       "  \\q                        quit (also quit, exit, Ctrl-D)\n",
	       format_name(sh->format), sh->timing ? "on" : "off");
}

/* Runs one meta-command line (starting with '\'); modifies `line`. */
static void shell_meta(shell_t *sh, char *line)
{
	char *save = NULL;
	char *name = strtok_r(line, " \t\r\n", &save);
	char *arg = strtok_r(NULL, " \t\r\n", &save);
	char *extra = strtok_r(NULL, " \t\r\n", &save);
	if (strcmp(name, "\\q") == 0 || strcmp(name, "\\quit") == 0) {
		sh->quit = true;
	} else if (strcmp(name, "\\help") == 0 || strcmp(name, "\\?") == 0 ||
	           strcmp(name, "\\h") == 0) {
		shell_help(sh);
	} else if (strcmp(name, "\\timing") == 0 && !extra &&
	           (!arg || strcmp(arg, "on") == 0 || strcmp(arg, "off") == 0)) {
		sh->timing = arg ? strcmp(arg, "on") == 0 : !sh->timing;
		if (sh->interactive)
			printf("Timing is %s.\n", sh->timing ? "on" : "off");
	} else if (strcmp(name, "\\format") == 0 && !extra &&
	           (!arg || cli_parse_format(arg, &sh->format) == 0)) {
		if (sh->interactive || !arg)
			printf("Output format is %s.\n", format_name(sh->format));
	} else if (strcmp(name, "\\timing") == 0) {
		fprintf(stderr, "error: \\timing takes on, off or nothing\n");
		sh->failed = true;
	} else if (strcmp(name, "\\format") == 0) {
		fprintf(stderr, "error: \\format takes table, csv or json\n");
		sh->failed = true;
	} else {
		fprintf(stderr, "error: unknown command %s (\\help lists them)\n", name);
		sh->failed = true;
	}
	fflush(stdout);
}

/* ---- input ------------------------------------------------------------- */

static int shell_append(shell_t *sh, const char *bytes, size_t n)
{
	if (vg_buf_append(&sh->pending, bytes, n) == 0)
		return 0;
	fprintf(stderr, "vigil: out of memory\n");
	sh->failed = true;
	sh->quit = true;
	return -1;
}

/* Feeds one line of input (its newline, if any, included in len). */
static void shell_feed(shell_t *sh, char *line, size_t len)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	line[len] = 0;
	size_t first = 0;
	while (first < len && is_blank(line[first]))
		first++;
	if (sh->pending.len == 0 && line[first] == '\\') {
		shell_remember(sh, line + first);
		shell_meta(sh, line + first);
		return;
	}
	if (sh->pending.len == 0 &&
	    (strcmp(line + first, "quit") == 0 || strcmp(line + first, "exit") == 0)) {
		sh->quit = true;
		return;
	}
	char quote = 0;
	bool escaped = false;
	size_t from = 0;
	for (size_t i = 0; i < len && !sh->quit; i++) {
		char c = line[i];
		if (quote) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == quote)
				quote = 0;
		} else if (c == '\'' || c == '"' || c == '/') {
			quote = c;
		} else if (c == ';') {
			if (shell_append(sh, line + from, i - from))
				return;
			shell_finish_statement(sh);
			from = i + 1;
		}
	}
	if (sh->quit)
		return;
	size_t rest = from;
	while (rest < len && is_blank(line[rest]))
		rest++;
	if (rest == len && sh->pending.len == 0)
		return; /* nothing but blanks after the last ';' */
	if (shell_append(sh, line + from, len - from) == 0)
		shell_append(sh, "\n", 1);
}

static void shell_loop_interactive(shell_t *sh)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the read must see EINTR */
	char *copy = NULL;
	size_t copy_cap = 0;
	while (!sh->quit) {
		fflush(stdout);
		interrupted = 0;
		sigaction(SIGINT, &sa, &old);
		/* Raw mode before the prompt shows, not after: keys typed as
		 * soon as it appears (an arrow, Ctrl-D) must reach libedit, not
		 * the terminal's line editing. */
		el_set(sh->el, EL_PREP_TERM, 1);
		int count = 0;
		const char *line = el_gets(sh->el, &count);
		sigaction(SIGINT, &old, NULL);
		if (!line && interrupted) {
			/* Ctrl-C: drop the line and the pending statement. */
			fputc('\n', stdout);
			vg_buf_clear(&sh->pending);
			continue;
		}
		if (!line || count <= 0) {
			fputc('\n', stdout); /* leave the user's prompt on a new line */
			break;
		}
		/* el_gets() owns its buffer; shell_feed() needs a writable line. */
		size_t len = strlen(line);
		if (len + 1 > copy_cap) {
			char *grown = realloc(copy, len + 1);
			if (!grown) {
				fprintf(stderr, "vigil: out of memory\n");
				sh->failed = true;
				break;
			}
			copy = grown;
			copy_cap = len + 1;
		}
		memcpy(copy, line, len + 1);
		shell_feed(sh, copy, len);
	}
	free(copy);
}

static void shell_loop_scripted(shell_t *sh)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while (!sh->quit && (n = getline(&line, &cap, stdin)) >= 0)
		shell_feed(sh, line, (size_t)n);
	free(line);
	if (ferror(stdin)) {
		fprintf(stderr, "vigil: reading stdin: %s\n", strerror(errno));
		sh->failed = true;
	}
	if (!sh->quit)
		shell_finish_statement(sh); /* a last statement without ';' */
}

/* ---- entry point -------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil shell [--format table|csv|json] [--time-format ns|rfc3339]\n"
	             "Reads statements ending in ';' from a prompt, or from stdin when it is\n"
	             "not a terminal.  Type \\help at the prompt for more.\n");
}

int cli_shell_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"time-format", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	shell_t sh;
	memset(&sh, 0, sizeof sh);
	sh.g = g;
	sh.format = CLI_FORMAT_TABLE;
	sh.tf = CLI_TIME_NS;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (cli_format_option(optarg, &sh.format))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_time_format_option(optarg, &sh.tf))
				return CLI_USAGE;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	sh.interactive = isatty(STDIN_FILENO);
	sh.client = cli_connect(g);
	if (!sh.client)
		return CLI_ERROR;
	if (sh.interactive) {
		setlocale(LC_CTYPE, ""); /* libedit decodes keystrokes by the locale */
		if (shell_edit_open(&sh)) {
			fprintf(stderr, "vigil: cannot set up line editing\n");
			shell_edit_close(&sh);
			vg_client_close(sh.client);
			return CLI_ERROR;
		}
		printf("Connected to vigild %s at %s.  \\help for help, \\q to quit.\n",
		       vg_client_server_version(sh.client), g->unix_path ? g->unix_path : g->addr);
		shell_loop_interactive(&sh);
		shell_edit_close(&sh);
	} else {
		shell_loop_scripted(&sh);
	}
	vg_buf_release(&sh.pending);
	vg_client_close(sh.client);
	if (fflush(stdout) != 0)
		return CLI_ERROR;
	return sh.interactive || !sh.failed ? CLI_OK : CLI_ERROR;
}
