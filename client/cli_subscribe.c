/*
 * cli_subscribe.c — `vigil subscribe '<select>' [--since <time>]
 * [--lateness <dur>] [--limit N] [--format table|csv|json]
 * [--time-format ns|rfc3339]`: subscribes and prints every pushed row as
 * it arrives.
 *
 * The statement is `SUBSCRIBE <select> [SINCE ...] [LATENESS ...]`, or the
 * argument as it is when it already starts with SUBSCRIBE.  --since takes
 * an integer (ns), an RFC 3339 time, now()-style text, or a duration
 * meaning that long ago ("10m" is now() - 10m).
 *
 * Output, one line per row, flushed after every push so that a pipe sees
 * each row the moment it arrives (SPEC.md, CLI):
 *
 *   csv    the header `time,<group-by tags>,<columns>` once, then rows; an
 *          update (a window corrected by a late point) is a row with the
 *          same time and tags as the one it replaces.
 *   table  the same cells in columns under a header and a rule, widths
 *          fixed up front (a stream cannot be measured first), updates
 *          marked with a trailing "(update)".
 *   json   one object per row: {"time":...,"tags":{...},"<column>":...},
 *          with "update":true on updates.
 *
 * The header is printed as soon as the subscription is accepted when the
 * server names the group-by keys, else with the first row (GROUP BY *
 * learns its keys from the rows).  --limit N exits 0 after N rows; Ctrl-C
 * (or SIGTERM) unsubscribes and exits 0.  Interruptions and resumes are
 * reported on stderr; the library resumes without gap or duplicate.
 */
#include "cli.h"

#include "vg_duration.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Table widths when a name is shorter. */
#define WIDTH_NS 19
#define WIDTH_RFC3339 24
#define WIDTH_VALUE 10

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

typedef struct printer {
	FILE *out;
	cli_format_t format;
	cli_time_format_t tf;
	uint64_t limit; /* 0: none */
	uint64_t printed;
	bool header_done;
	size_t widths[2 + 2 * 64 + 256]; /* table: time, tags, columns */
	size_t nwidths;
	int status;
	bool done;
	vg_client_t *client;
} printer_t;

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil subscribe '<select>' [--since <time>] [--lateness <dur>] "
	             "[--limit N]\n"
	             "                       [--format table|csv|json] [--time-format ns|rfc3339]\n"
	             "  --since     integer ns, '<RFC 3339>', now() - 1h, or a duration (10m = "
	             "10 minutes ago)\n");
}

/* ---- the statement ----------------------------------------------------------- */

static bool starts_with_word(const char *s, const char *word)
{
	size_t n = strlen(word);
	return strncasecmp(s, word, n) == 0 && (s[n] == '\0' || isspace((unsigned char)s[n]));
}

static bool is_integer(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Appends " SINCE <time>" for the --since argument; false if it is none of
 * the accepted forms. */
static bool append_since(char *buf, size_t len, const char *since)
{
	size_t used = strlen(buf);
	int64_t ns;
	int n;
	if (is_integer(since) || strncasecmp(since, "now()", 5) == 0)
		n = snprintf(buf + used, len - used, " SINCE %s", since);
	else if (vg_duration_parse(since, strlen(since), &ns) == 0)
		n = snprintf(buf + used, len - used, " SINCE now() - %s", since);
	else if (!strchr(since, '\'') && strchr(since, 'T'))
		n = snprintf(buf + used, len - used, " SINCE '%s'", since);
	else
		return false;
	return n >= 0 && (size_t)n < len - used;
}

/* ---- output -------------------------------------------------------------------- */


/* One table cell, padded to its column (numbers right-aligned). */
static void table_cell(printer_t *p, size_t index, const char *text, bool right)
{
	size_t width = index < p->nwidths ? p->widths[index] : 0, w = cli_display_width(text);
	if (index)
		fputs("  ", p->out);
	if (right)
		for (size_t k = w; k < width; k++)
			fputc(' ', p->out);
	fputs(text, p->out);
	if (!right)
		for (size_t k = w; k < width; k++)
			fputc(' ', p->out);
}

/* Header: time, the set's tag keys, its columns after time. */
static void print_header(printer_t *p, const vg_result_set_t *s)
{
	p->header_done = true;
	if (p->format == CLI_FORMAT_JSON)
		return;
	size_t ntags = vg_result_tag_count(s), ncols = vg_result_column_count(s);
	size_t n = 0;
	const char *names[sizeof p->widths / sizeof p->widths[0]];
	names[n++] = "time";
	for (size_t t = 0; t < ntags && n < sizeof names / sizeof names[0]; t++)
		names[n++] = vg_result_tag_key(s, t);
	for (size_t c = 1; c < ncols && n < sizeof names / sizeof names[0]; c++)
		names[n++] = vg_result_column_name(s, c);
	if (p->format == CLI_FORMAT_CSV) {
		for (size_t k = 0; k < n; k++) {
			if (k)
				fputc(',', p->out);
			cli_csv_field(p->out, names[k]);
		}
		fputc('\n', p->out);
		return;
	}
	p->nwidths = n;
	for (size_t k = 0; k < n; k++) {
		size_t least =
		    k == 0 ? (p->tf == CLI_TIME_NS ? WIDTH_NS : WIDTH_RFC3339) : WIDTH_VALUE;
		size_t w = cli_display_width(names[k]);
		p->widths[k] = w > least ? w : least;
	}
	for (size_t k = 0; k < n; k++)
		table_cell(p, k, names[k], false);
	fputc('\n', p->out);
	for (size_t k = 0; k < n; k++) {
		if (k)
			fputs("  ", p->out);
		for (size_t w = 0; w < p->widths[k]; w++)
			fputc('-', p->out);
	}
	fputc('\n', p->out);
}

/* The text of a value cell; "" when empty.  buf holds numbers. */
static const char *cell_text(const vg_result_set_t *s, size_t row, size_t col, char *buf,
                             size_t len)
{
	if (vg_result_is_null(s, row, col))
		return "";
	if (vg_result_column_type(s, col) == VG_COLUMN_STRING) {
		const char *str = vg_result_string(s, row, col);
		return str ? str : "";
	}
	double v = 0;
	vg_result_float(s, row, col, &v);
	FILE *mem = fmemopen(buf, len, "w");
	if (!mem)
		return "";
	cli_print_float(mem, v);
	fclose(mem);
	return buf;
}

static void time_text(char *buf, size_t len, int64_t ns, cli_time_format_t tf)
{
	FILE *mem = fmemopen(buf, len, "w");
	if (!mem) {
		snprintf(buf, len, "%" PRId64, ns);
		return;
	}
	cli_print_time(mem, ns, tf);
	fclose(mem);
}

static void print_json_row(printer_t *p, const vg_result_set_t *s, size_t row, bool update)
{
	char buf[64];
	time_text(buf, sizeof buf, vg_result_time(s, row), p->tf);
	fputs("{\"time\":", p->out);
	if (p->tf == CLI_TIME_NS)
		fputs(buf, p->out);
	else
		cli_json_string(p->out, buf);
	if (vg_result_tag_count(s)) {
		fputs(",\"tags\":{", p->out);
		for (size_t t = 0; t < vg_result_tag_count(s); t++) {
			if (t)
				fputc(',', p->out);
			cli_json_string(p->out, vg_result_tag_key(s, t));
			fputc(':', p->out);
			cli_json_string(p->out, vg_result_tag_value(s, t));
		}
		fputc('}', p->out);
	}
	for (size_t c = 1; c < vg_result_column_count(s); c++) {
		fputc(',', p->out);
		cli_json_string(p->out, vg_result_column_name(s, c));
		fputc(':', p->out);
		double v;
		if (vg_result_is_null(s, row, c))
			fputs("null", p->out);
		else if (vg_result_column_type(s, c) == VG_COLUMN_STRING)
			cli_json_string(p->out, vg_result_string(s, row, c));
		else if (vg_result_float(s, row, c, &v) && isfinite(v))
			cli_print_float(p->out, v);
		else /* JSON has no NaN or Inf */
			cli_json_string(p->out, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
	}
	if (update)
		fputs(",\"update\":true", p->out);
	fputs("}\n", p->out);
}

static void print_row(printer_t *p, const vg_result_set_t *s, size_t row, bool update)
{
	if (p->format == CLI_FORMAT_JSON) {
		print_json_row(p, s, row, update);
		return;
	}
	bool csv = p->format == CLI_FORMAT_CSV;
	char buf[64];
	size_t index = 0;
	time_text(buf, sizeof buf, vg_result_time(s, row), p->tf);
	if (csv)
		fputs(buf, p->out);
	else
		table_cell(p, index, buf, p->tf == CLI_TIME_NS);
	index++;
	for (size_t t = 0; t < vg_result_tag_count(s); t++, index++) {
		if (csv) {
			fputc(',', p->out);
			cli_csv_field(p->out, vg_result_tag_value(s, t));
		} else {
			table_cell(p, index, vg_result_tag_value(s, t), false);
		}
	}
	for (size_t c = 1; c < vg_result_column_count(s); c++, index++) {
		const char *text = cell_text(s, row, c, buf, sizeof buf);
		if (csv) {
			fputc(',', p->out);
			cli_csv_field(p->out, text);
		} else {
			table_cell(p, index, text, vg_result_column_type(s, c) != VG_COLUMN_STRING);
		}
	}
	if (update && !csv)
		fputs("  (update)", p->out);
	fputc('\n', p->out);
}

static void on_event(void *ctx, const vg_sub_event_t *ev)
{
	printer_t *p = ctx;
	switch (ev->kind) {
	case VG_SUB_ROWS:
		if (p->done)
			return;
		if (!p->header_done)
			print_header(p, ev->set);
		for (size_t row = 0; row < vg_result_row_count(ev->set); row++) {
			print_row(p, ev->set, row, ev->update);
			if (p->limit && ++p->printed >= p->limit) {
				p->done = true;
				vg_client_unsubscribe(p->client, ev->sub_id);
				break;
			}
		}
		if (fflush(p->out) != 0 || ferror(p->out)) {
			fprintf(stderr, "vigil: writing the output failed\n");
			p->status = CLI_ERROR;
			p->done = true;
		}
		break;
	case VG_SUB_RESUMING:
		fprintf(stderr, "vigil: interrupted (%s); resuming\n", ev->message);
		break;
	case VG_SUB_RESUMED:
		fprintf(stderr, "vigil: %s%s\n", ev->code ? "warning: " : "", ev->message);
		break;
	case VG_SUB_END:
		if (ev->code) {
			fprintf(stderr, "error: %s\n", ev->message);
			p->status = CLI_ERROR;
		}
		p->done = true;
		break;
	}
}

/* ---- the command --------------------------------------------------------------- */

int cli_subscribe_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"since", required_argument, NULL, 's'},
	    {"lateness", required_argument, NULL, 'l'},
	    {"limit", required_argument, NULL, 'n'},
	    {"format", required_argument, NULL, 'f'},
	    {"time-format", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	printer_t p = {.out = stdout, .format = CLI_FORMAT_TABLE, .tf = CLI_TIME_NS};
	const char *since = NULL, *lateness = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		char *end;
		int64_t ns;
		switch (opt) {
		case 's':
			since = optarg;
			break;
		case 'l':
			if (vg_duration_parse(optarg, strlen(optarg), &ns) != 0) {
				fprintf(stderr,
				        "vigil: --lateness %s: expected a duration such as 30s\n",
				        optarg);
				return CLI_USAGE;
			}
			lateness = optarg;
			break;
		case 'n':
			errno = 0;
			p.limit = strtoull(optarg, &end, 10);
			if (errno || *end || !isdigit((unsigned char)optarg[0]) || p.limit == 0) {
				fprintf(stderr, "vigil: --limit %s: expected a positive integer\n",
				        optarg);
				return CLI_USAGE;
			}
			break;
		case 'f':
			if (cli_format_option(optarg, &p.format))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_time_format_option(optarg, &p.tf))
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
	if (optind + 1 != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	const char *select = argv[optind];
	while (isspace((unsigned char)*select))
		select++;
	size_t len =
	    strlen(select) + 256 + (since ? strlen(since) : 0) + (lateness ? strlen(lateness) : 0);
	char *statement = malloc(len);
	if (!statement) {
		fprintf(stderr, "vigil: out of memory\n");
		return CLI_ERROR;
	}
	snprintf(statement, len, "%s%s", starts_with_word(select, "SUBSCRIBE") ? "" : "SUBSCRIBE ",
	         select);
	if (since && !append_since(statement, len, since)) {
		fprintf(stderr,
		        "vigil: --since %s: expected integer ns, an RFC 3339 time, now() - "
		        "<dur> or a duration\n",
		        since);
		free(statement);
		return CLI_USAGE;
	}
	if (lateness) {
		size_t used = strlen(statement);
		snprintf(statement + used, len - used, " LATENESS %s", lateness);
	}

	vg_client_t *c = cli_connect(g);
	if (!c) {
		free(statement);
		return CLI_ERROR;
	}
	p.client = c;
	uint64_t id;
	int rc = vg_client_subscribe(c, statement, on_event, &p, &id);
	free(statement);
	if (rc) {
		fprintf(stderr, "error: %s\n", vg_client_errstr(c));
		vg_client_close(c);
		return CLI_ERROR;
	}
	const vg_result_set_t *shape = vg_client_subscription_shape(c, id);
	if (vg_result_tag_count(shape)) {
		print_header(&p, shape);
		fflush(p.out);
	}

	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: waits end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_requested && !p.done) {
		rc = vg_client_process(c, 1000);
		if (rc < 0 && !p.done) {
			fprintf(stderr, "error: %s\n", vg_client_errstr(c));
			p.status = CLI_ERROR;
			break;
		}
	}
	if (vg_client_subscriptions(c))
		vg_client_unsubscribe(c, id);
	vg_client_close(c);
	if (fflush(p.out) != 0 && p.status == CLI_OK)
		p.status = CLI_ERROR;
	return p.status;
}
