/*
 * cli_main.c — `vigil`, the command-line client: global options and the
 * subcommand table.
 *
 *   vigil [--addr HOST:PORT | --unix PATH] <command> [options]
 *
 * VIGIL_ADDR sets the default address (HOST:PORT, or unix:PATH).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const char *name;
	int (*main)(const cli_global_t *g, int argc, char **argv);
	const char *summary;
} command_t;

static const command_t commands[] = {
	{"write", cli_write_main, "write InfluxDB line protocol from stdin or --file"},
	{"query", cli_query_main, "run a statement and print its answer"},
	{"subscribe", cli_subscribe_main, "print the rows a SELECT pushes as data arrives"},
	{"demo", cli_demo_main, "stream a simulated hospital ward's vital signs"},
	{"shell", cli_shell_main, "type statements at a prompt, with history"},
	{"stats", cli_stats_main, "print the server's counters"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil [--addr HOST:PORT | --unix PATH] <command> [options]\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nThe default address is $VIGIL_ADDR, else %s.\n", VG_CLIENT_DEFAULT_ADDR);
}

vg_client_t *cli_connect(const cli_global_t *g)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	int rc = g->unix_path ? vg_client_connect_unix(g->unix_path, g->timeout_ms, &c, err, sizeof err)
			      : vg_client_connect(g->addr, g->timeout_ms, &c, err, sizeof err);
	if (rc) {
		fprintf(stderr, "vigil: %s\n", err);
		return NULL;
	}
	return c;
}

int main(int argc, char **argv)
{
	cli_global_t g = {VG_CLIENT_DEFAULT_ADDR, NULL, 5000};
	const char *env = getenv("VIGIL_ADDR");
	if (env && *env) {
		if (strncmp(env, "unix:", 5) == 0)
			g.unix_path = env + 5;
		else
			g.addr = env;
	}
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if ((strcmp(argv[i], "--addr") == 0 || strcmp(argv[i], "--unix") == 0) && i + 1 < argc) {
			if (argv[i][2] == 'a') {
				g.addr = argv[i + 1];
				g.unix_path = NULL;
			} else {
				g.unix_path = argv[i + 1];
			}
			i++;
		} else if (strncmp(argv[i], "--addr=", 7) == 0) {
			g.addr = argv[i] + 7;
			g.unix_path = NULL;
		} else if (strncmp(argv[i], "--unix=", 7) == 0) {
			g.unix_path = argv[i] + 7;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return CLI_OK;
		} else {
			fprintf(stderr, "vigil: unknown option %s\n", argv[i]);
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			return commands[k].main(&g, argc - i, argv + i);
	fprintf(stderr, "vigil: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return CLI_USAGE;
}
