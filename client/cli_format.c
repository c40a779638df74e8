/*
 * cli_format.c — printing query answers as table, CSV or JSON.
 *
 * All three share one flattened view of an answer (SPEC.md, CLI):
 * columns are time (when the sets have it), then the group-by tags in
 * GROUP BY order, then the value columns; rows go set by set (the server
 * already orders sets by tag values and rows by time).
 *
 *   csv    a header once, then one line per row; empty cells empty; fields
 *          with ',', '"' or newlines quoted per RFC 4180.
 *   table  the same cells padded into aligned columns under a header and a
 *          rule, for people at a terminal.
 *   json   one object per result set and line:
 *          {"name":"cpu","tags":{"host":"a"},"columns":["time","max"],
 *           "values":[[1700000000000000000,1.5],...]}
 *
 * Floats use the shortest decimal form that reads back to the same double.
 */
#include "cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_parse_format(const char *name, cli_format_t *out)
{
	if (strcmp(name, "table") == 0)
		*out = CLI_FORMAT_TABLE;
	else if (strcmp(name, "csv") == 0)
		*out = CLI_FORMAT_CSV;
	else if (strcmp(name, "json") == 0)
		*out = CLI_FORMAT_JSON;
	else
		return -1;
	return 0;
}

int cli_format_option(const char *arg, cli_format_t *out)
{
	if (cli_parse_format(arg, out) == 0)
		return 0;
	fprintf(stderr, "vigil: --format %s: expected table, csv or json\n", arg);
	return CLI_USAGE;
}

int cli_time_format_option(const char *arg, cli_time_format_t *out)
{
	if (cli_parse_time_format(arg, out) == 0)
		return 0;
	fprintf(stderr, "vigil: --time-format %s: expected ns or rfc3339\n", arg);
	return CLI_USAGE;
}

int cli_parse_time_format(const char *name, cli_time_format_t *out)
{
	if (strcmp(name, "ns") == 0)
		*out = CLI_TIME_NS;
	else if (strcmp(name, "rfc3339") == 0)
		*out = CLI_TIME_RFC3339;
	else
		return -1;
	return 0;
}

static void format_float(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Whole numbers print as integers (10, not 1e+01), as people and
	 * spreadsheets expect. */
	if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	for (int precision = 1; precision <= 17; precision++) {
		snprintf(buf, len, "%.*g", precision, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

void cli_print_float(FILE *out, double v)
{
	char buf[40];
	format_float(buf, sizeof buf, v);
	fputs(buf, out);
}

static void format_time(char *buf, size_t len, int64_t ns, cli_time_format_t tf)
{
	if (tf == CLI_TIME_NS) {
		snprintf(buf, len, "%" PRId64, ns);
		return;
	}
	int64_t sec = ns / 1000000000, frac = ns % 1000000000;
	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac) {
		char digits[16];
		snprintf(digits, sizeof digits, "%09" PRId64, frac);
		size_t d = 9;
		while (d > 0 && digits[d - 1] == '0')
			d--;
		digits[d] = 0;
		n += (size_t)snprintf(buf + n, len - n, ".%s", digits);
	}
	snprintf(buf + n, len - n, "Z");
}

void cli_print_time(FILE *out, int64_t ns, cli_time_format_t tf)
{
	char buf[48];
	format_time(buf, sizeof buf, ns, tf);
	fputs(buf, out);
}

/* The text of one cell; "" for an empty one.  buf holds numbers. */
static const char *cell(const vg_result_set_t *s, size_t row, size_t col, char *buf, size_t len)
{
	if (vg_result_column_type(s, col) == VG_COLUMN_TIME) {
		snprintf(buf, len, "%" PRId64, vg_result_time(s, row));
		return buf;
	}
	if (vg_result_is_null(s, row, col))
		return "";
	if (vg_result_column_type(s, col) == VG_COLUMN_STRING) {
		const char *str = vg_result_string(s, row, col);
		return str ? str : "";
	}
	double v;
	vg_result_float(s, row, col, &v);
	format_float(buf, len, v);
	return buf;
}

void cli_csv_field(FILE *out, const char *text)
{
	if (!strpbrk(text, ",\"\n\r")) {
		fputs(text, out);
		return;
	}
	fputc('"', out);
	for (const char *p = text; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	fputc('"', out);
}

void cli_json_string(FILE *out, const char *text)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

/* Visits the cells of one flattened row: time, tags, value columns. */
typedef void (*cell_fn)(void *ctx, size_t index, const char *text, bool is_string);

static void visit_row(const vg_result_set_t *s, size_t row, cli_time_format_t tf, cell_fn fn,
		      void *ctx)
{
	char buf[64];
	size_t index = 0;
	size_t ncols = vg_result_column_count(s);
	size_t first = 0;
	if (vg_result_has_time(s)) {
		format_time(buf, sizeof buf, vg_result_time(s, row), tf);
		fn(ctx, index++, buf, tf == CLI_TIME_RFC3339);
		first = 1;
	}
	for (size_t t = 0; t < vg_result_tag_count(s); t++)
		fn(ctx, index++, vg_result_tag_value(s, t), true);
	for (size_t c = first; c < ncols; c++)
		fn(ctx, index++, cell(s, row, c, buf, sizeof buf),
		   vg_result_column_type(s, c) == VG_COLUMN_STRING);
}

static size_t header_cells(const vg_result_set_t *s, const char **names, size_t cap)
{
	size_t n = 0, first = 0;
	if (vg_result_has_time(s)) {
		names[n++] = "time";
		first = 1;
	}
	for (size_t t = 0; t < vg_result_tag_count(s) && n < cap; t++)
		names[n++] = vg_result_tag_key(s, t);
	for (size_t c = first; c < vg_result_column_count(s) && n < cap; c++)
		names[n++] = vg_result_column_name(s, c);
	return n;
}

/* ---- csv ------------------------------------------------------------- */

typedef struct {
	FILE *out;
} csv_ctx_t;

static void csv_cell(void *ctx, size_t index, const char *text, bool is_string)
{
	(void)is_string;
	csv_ctx_t *c = ctx;
	if (index)
		fputc(',', c->out);
	cli_csv_field(c->out, text);
}

static void print_csv(FILE *out, const vg_result_t *r, cli_time_format_t tf)
{
	csv_ctx_t ctx = {out};
	for (size_t i = 0; i < vg_result_set_count(r); i++) {
		const vg_result_set_t *s = vg_result_set(r, i);
		if (i == 0) {
			const char *names[512];
			size_t n = header_cells(s, names, 512);
			for (size_t k = 0; k < n; k++)
				csv_cell(&ctx, k, names[k], true);
			fputc('\n', out);
		}
		for (size_t row = 0; row < vg_result_row_count(s); row++) {
			visit_row(s, row, tf, csv_cell, &ctx);
			fputc('\n', out);
		}
	}
}

/* ---- table ----------------------------------------------------------- */

typedef struct {
	size_t *widths;
	size_t ncols;
	FILE *out; /* NULL while measuring */
} table_ctx_t;

size_t cli_display_width(const char *s)
{
	size_t w = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			w++;
	return w;
}

static void table_cell(void *ctx, size_t index, const char *text, bool is_string)
{
	table_ctx_t *t = ctx;
	if (index >= t->ncols)
		return;
	size_t w = cli_display_width(text);
	if (!t->out) {
		if (w > t->widths[index])
			t->widths[index] = w;
		return;
	}
	if (index)
		fputs("  ", t->out);
	bool last = index + 1 == t->ncols;
	if (is_string) {
		fputs(text, t->out);
		if (!last)
			for (size_t k = w; k < t->widths[index]; k++)
				fputc(' ', t->out);
	} else {
		for (size_t k = w; k < t->widths[index]; k++)
			fputc(' ', t->out);
		fputs(text, t->out);
	}
}

static void print_table(FILE *out, const vg_result_t *r, cli_time_format_t tf)
{
	size_t nsets = vg_result_set_count(r);
	if (nsets == 0)
		return;
	const vg_result_set_t *s0 = vg_result_set(r, 0);
	const char *names[512];
	size_t ncols = header_cells(s0, names, 512);
	size_t widths[512];
	table_ctx_t ctx = {widths, ncols, NULL};
	for (size_t k = 0; k < ncols; k++)
		widths[k] = cli_display_width(names[k]);
	for (size_t i = 0; i < nsets; i++) {
		const vg_result_set_t *s = vg_result_set(r, i);
		for (size_t row = 0; row < vg_result_row_count(s); row++)
			visit_row(s, row, tf, table_cell, &ctx);
	}
	ctx.out = out;
	for (size_t k = 0; k < ncols; k++)
		table_cell(&ctx, k, names[k], true);
	fputc('\n', out);
	for (size_t k = 0; k < ncols; k++) {
		if (k)
			fputs("  ", out);
		for (size_t w = 0; w < widths[k]; w++)
			fputc('-', out);
	}
	fputc('\n', out);
	for (size_t i = 0; i < nsets; i++) {
		const vg_result_set_t *s = vg_result_set(r, i);
		for (size_t row = 0; row < vg_result_row_count(s); row++) {
			visit_row(s, row, tf, table_cell, &ctx);
			fputc('\n', out);
		}
	}
}

/* ---- json ------------------------------------------------------------ */

static void print_json(FILE *out, const vg_result_t *r, cli_time_format_t tf)
{
	char buf[64];
	for (size_t i = 0; i < vg_result_set_count(r); i++) {
		const vg_result_set_t *s = vg_result_set(r, i);
		fputs("{\"name\":", out);
		cli_json_string(out, vg_result_name(s));
		if (vg_result_tag_count(s)) {
			fputs(",\"tags\":{", out);
			for (size_t t = 0; t < vg_result_tag_count(s); t++) {
				if (t)
					fputc(',', out);
				cli_json_string(out, vg_result_tag_key(s, t));
				fputc(':', out);
				cli_json_string(out, vg_result_tag_value(s, t));
			}
			fputc('}', out);
		}
		fputs(",\"columns\":[", out);
		size_t ncols = vg_result_column_count(s);
		for (size_t c = 0; c < ncols; c++) {
			if (c)
				fputc(',', out);
			cli_json_string(out, vg_result_column_name(s, c));
		}
		fputs("],\"values\":[", out);
		for (size_t row = 0; row < vg_result_row_count(s); row++) {
			fputs(row ? ",[" : "[", out);
			for (size_t c = 0; c < ncols; c++) {
				if (c)
					fputc(',', out);
				vg_column_type_t type = vg_result_column_type(s, c);
				if (type == VG_COLUMN_TIME) {
					format_time(buf, sizeof buf, vg_result_time(s, row), tf);
					if (tf == CLI_TIME_NS)
						fputs(buf, out);
					else
						cli_json_string(out, buf);
				} else if (vg_result_is_null(s, row, c)) {
					fputs("null", out);
				} else if (type == VG_COLUMN_STRING) {
					cli_json_string(out, vg_result_string(s, row, c));
				} else {
					double v;
					vg_result_float(s, row, c, &v);
					if (isfinite(v))
						cli_print_float(out, v);
					else /* JSON has no NaN or Inf */
						cli_json_string(out, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
				}
			}
			fputc(']', out);
		}
		fputs("]}\n", out);
	}
}

void cli_print_result(FILE *out, const vg_result_t *r, cli_format_t format, cli_time_format_t tf)
{
	switch (format) {
	case CLI_FORMAT_CSV:
		print_csv(out, r, tf);
		break;
	case CLI_FORMAT_JSON:
		print_json(out, r, tf);
		break;
	default:
		print_table(out, r, tf);
		break;
	}
}
