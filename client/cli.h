/*
 * cli.h — internals of the `vigil` command-line tool shared by its files:
 * the subcommands (cli_write.c, cli_query.c) and the result printers
 * (cli_format.c).
 *
 * Exit statuses (SPEC.md): 0 success, 1 an error reported by the server or
 * an I/O error, 2 a usage error.
 */
#ifndef VG_CLI_H
#define VG_CLI_H

#include "vigil.h"

#include <stdbool.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef enum { CLI_FORMAT_TABLE, CLI_FORMAT_CSV, CLI_FORMAT_JSON } cli_format_t;
typedef enum { CLI_TIME_NS, CLI_TIME_RFC3339 } cli_time_format_t;

/* Options every subcommand shares. */
typedef struct cli_global {
	const char *addr;      /* "host:port" */
	const char *unix_path; /* set: connect there instead */
	int timeout_ms;
	const char *token;     /* --token, else $VIGIL_TOKEN; NULL: none */
	bool tls;              /* --tls (implied by --tls-ca) */
	const char *tls_ca;    /* --tls-ca FILE; NULL: the system's CAs */
} cli_global_t;

/* Connects per the global options; prints the error and returns NULL. */
vg_client_t *cli_connect(const cli_global_t *g);

int cli_write_main(const cli_global_t *g, int argc, char **argv);
int cli_query_main(const cli_global_t *g, int argc, char **argv);
int cli_subscribe_main(const cli_global_t *g, int argc, char **argv);
int cli_demo_main(const cli_global_t *g, int argc, char **argv);
int cli_shell_main(const cli_global_t *g, int argc, char **argv);
int cli_stats_main(const cli_global_t *g, int argc, char **argv);

int cli_parse_format(const char *name, cli_format_t *out);
int cli_parse_time_format(const char *name, cli_time_format_t *out);
/* The same for --format / --time-format values: 0, or CLI_USAGE after
 * printing what was expected. */
int cli_format_option(const char *arg, cli_format_t *out);
int cli_time_format_option(const char *arg, cli_time_format_t *out);

/* Writes a float in its shortest form that reads back to the same bits. */
void cli_print_float(FILE *out, double v);
/* Writes a time as integer ns or RFC 3339 UTC. */
void cli_print_time(FILE *out, int64_t ns, cli_time_format_t tf);

/* A CSV field, quoted per RFC 4180 when it must be. */
void cli_csv_field(FILE *out, const char *text);
/* A JSON string literal. */
void cli_json_string(FILE *out, const char *text);
/* Columns a UTF-8 string takes in a terminal (code points). */
size_t cli_display_width(const char *s);

/* Prints a whole query answer in the chosen format. */
void cli_print_result(FILE *out, const vg_result_t *r, cli_format_t format, cli_time_format_t tf);

#endif
