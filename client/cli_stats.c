/*
 * cli_stats.c — `vigil stats [--format table|csv|json]`: the server's
 * figures (the answer to SHOW STATS: the store's sizes, then counters such
 * as connections_total, points_written, writes_per_s, uptime_s).
 *
 * The default output is for people: one "name  value" line per figure,
 * names left-aligned, values right-aligned; whole numbers without
 * decimals, rates (names ending in _per_s) and other fractions with one.
 * --format csv and json are for programs and print the answer exactly as
 * `vigil query 'SHOW STATS' --format ...` does, at full precision.
 */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil stats [--format table|csv|json]\n");
}

static bool is_rate(const char *name)
{
	size_t len = strlen(name);
	return len >= 6 && strcmp(name + len - 6, "_per_s") == 0;
}

static void format_value(char *buf, size_t len, const char *name, double v)
{
	if (is_rate(name) || v != trunc(v) || !isfinite(v))
		snprintf(buf, len, "%.1f", v);
	else
		snprintf(buf, len, "%.0f", v);
}

static size_t find_column(const vg_result_set_t *s, const char *name)
{
	for (size_t c = 0; c < vg_result_column_count(s); c++)
		if (strcmp(vg_result_column_name(s, c), name) == 0)
			return c;
	return SIZE_MAX;
}

/* Prints the aligned list; -1 if the answer does not have its shape. */
static int print_list(const vg_result_t *r)
{
	const vg_result_set_t *s = vg_result_set(r, 0);
	if (!s)
		return 0;
	size_t name_col = find_column(s, "name"), value_col = find_column(s, "value");
	if (name_col == SIZE_MAX || value_col == SIZE_MAX)
		return -1;
	size_t rows = vg_result_row_count(s), name_width = 0, value_width = 0;
	char buf[64];
	for (int pass = 0; pass < 2; pass++) {
		for (size_t row = 0; row < rows; row++) {
			const char *name = vg_result_string(s, row, name_col);
			double v;
			if (!name || !vg_result_float(s, row, value_col, &v))
				continue;
			format_value(buf, sizeof buf, name, v);
			if (pass == 0) {
				size_t n = strlen(name), w = strlen(buf);
				name_width = n > name_width ? n : name_width;
				value_width = w > value_width ? w : value_width;
			} else {
				printf("%-*s  %*s\n", (int)name_width, name, (int)value_width, buf);
			}
		}
	}
	return 0;
}

int cli_stats_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	cli_format_t format = CLI_FORMAT_TABLE;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (cli_format_option(optarg, &format))
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
	vg_client_t *c = cli_connect(g);
	if (!c)
		return CLI_ERROR;
	vg_result_t *r = NULL;
	if (vg_client_query(c, "SHOW STATS", &r)) {
		fprintf(stderr, "error: %s\n", vg_client_errstr(c));
		vg_client_close(c);
		return CLI_ERROR;
	}
	int status = CLI_OK;
	if (format != CLI_FORMAT_TABLE) {
		cli_print_result(stdout, r, format, CLI_TIME_NS);
	} else if (print_list(r)) {
		fprintf(stderr, "vigil: SHOW STATS answered without name and value columns\n");
		status = CLI_ERROR;
	}
	vg_result_free(r);
	vg_client_close(c);
	return fflush(stdout) == 0 ? status : CLI_ERROR;
}
