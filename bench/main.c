/*
 * main.c — `vigil-bench <command> [options]`: the dispatcher.
 *
 * The benchmarks of BENCH.md are subcommands of one program so that they
 * share the dataset generator and a single build target.  A command is one
 * row of `commands` below and one `bench_<name>_main` in bench.h; adding a
 * command touches nothing else here.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>

typedef struct bench_command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
} bench_command_t;

static const bench_command_t commands[] = {
    {"gen", bench_gen_main, "write a benchmark dataset as InfluxDB line protocol"},
    {"storage", bench_storage_main, "storage engine: codec, ingest, size and scan figures"},
    {"ingest", bench_ingest_main, "binary-protocol ingest into a running vigild"},
    {"query", bench_query_main, "BENCH.md query latencies against a running vigild"},
    {"push", bench_push_main, "subscription push latency under background ingest"},
    {"scale", bench_scale_main, "cost per series from 1 k to 1 M series, and start-up"},
    {"compact", bench_compact_main, "seal and compact a stopped server's data directory"},
    {"http-write", bench_http_write_main, "line protocol into a peer over HTTP (bench/peers)"},
    {"http-query", bench_http_query_main, "BENCH.md queries against a peer over HTTP"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil-bench <command> [options]\n"
	             "       vigil-bench <command> --help\n\n"
	             "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return BENCH_EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
		usage(stdout);
		return BENCH_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].main(argc - 1, argv + 1);
	}
	fprintf(stderr, "vigil-bench: unknown command '%s'\n\n", name);
	usage(stderr);
	return BENCH_EXIT_USAGE;
}
