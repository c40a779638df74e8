/*
 * cli_query.c — `vigil query '<statement>' [--format table|csv|json]
 * [--time-format ns|rfc3339]`: runs one statement and prints its answer.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil query '<statement>' [--format table|csv|json] "
		     "[--time-format ns|rfc3339]\n");
}

int cli_query_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"format", required_argument, NULL, 'f'},
		{"time-format", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	cli_format_t format = CLI_FORMAT_TABLE;
	cli_time_format_t tf = CLI_TIME_NS;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (cli_format_option(optarg, &format))
				return CLI_USAGE;
			break;
		case 't':
			if (cli_time_format_option(optarg, &tf))
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
	const char *statement = argv[optind];
	vg_client_t *c = cli_connect(g);
	if (!c)
		return CLI_ERROR;
	vg_result_t *r = NULL;
	int rc = vg_client_query(c, statement, &r);
	if (rc) {
		fprintf(stderr, "error: %s\n", vg_client_errstr(c));
		vg_client_close(c);
		return CLI_ERROR;
	}
	cli_print_result(stdout, r, format, tf);
	vg_result_free(r);
	vg_client_close(c);
	return fflush(stdout) == 0 ? CLI_OK : CLI_ERROR;
}
