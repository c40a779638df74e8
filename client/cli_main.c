/*
 * cli_main.c — `vigil`, the command-line client: global options and the
 * subcommand table.
 *
 *   vigil [--addr HOST:PORT | --unix PATH] [--token TOKEN] [--tls] [--tls-ca FILE]
 *         <command> [options]
 *
 * VIGIL_ADDR sets the default address (HOST:PORT, or unix:PATH) and
 * VIGIL_TOKEN the default token (better than --token, which other users
 * of the machine can see in the process list).  Every subcommand connects
 * through cli_connect(), so all of them take these options.
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
	fprintf(out, "usage: vigil [--addr HOST:PORT | --unix PATH] [--token TOKEN] [--tls]\n"
		     "             [--tls-ca FILE] <command> [options]\n\n"
		     "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\nThe default address is $VIGIL_ADDR, else %s.\n"
		"--token (default $VIGIL_TOKEN) authenticates to a server with --auth-file.\n"
		"--tls connects with TLS, verifying the server certificate against the\n"
		"system's CAs or those of --tls-ca FILE (which implies --tls).\n",
		VG_CLIENT_DEFAULT_ADDR);
}

vg_client_t *cli_connect(const cli_global_t *g)
{
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	char unix_addr[512];
	const char *addr = g->addr;
	if (g->unix_path) {
		snprintf(unix_addr, sizeof unix_addr, "unix:%s", g->unix_path);
		addr = unix_addr;
	}
	vg_client_options_t o;
	vg_client_options_init(&o);
	o.timeout_ms = g->timeout_ms;
	o.token = g->token;
	o.tls = g->tls;
	o.tls_ca_file = g->tls_ca;
	int rc = vg_client_connect_with(addr, &o, &c, err, sizeof err);
	if (rc) {
		fprintf(stderr, "vigil: %s\n", err);
		return NULL;
	}
	return c;
}

int main(int argc, char **argv)
{
	cli_global_t g = {VG_CLIENT_DEFAULT_ADDR, NULL, 5000, NULL, false, NULL};
	const char *token_env = getenv("VIGIL_TOKEN");
	if (token_env && *token_env)
		g.token = token_env;
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
		} else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
			g.token = argv[++i];
		} else if (strncmp(argv[i], "--token=", 8) == 0) {
			g.token = argv[i] + 8;
		} else if (strcmp(argv[i], "--tls") == 0) {
			g.tls = true;
		} else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc) {
			g.tls = true;
			g.tls_ca = argv[++i];
		} else if (strncmp(argv[i], "--tls-ca=", 9) == 0) {
			g.tls = true;
			g.tls_ca = argv[i] + 9;
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
