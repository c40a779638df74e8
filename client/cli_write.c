/*
 * cli_write.c — `vigil write [--file F] [--precision ns|us|ms|s]
 * [--batch N]`: InfluxDB line protocol from stdin or a file into the server.
 *
 * The input is read in large chunks and cut into lines (client/lineproto.h);
 * each good line goes into the current batch as one row (vg_batch_add_row:
 * one series lookup per line, not per field), and every N lines the batch
 * is sent without waiting (vg_client_write_async).  Up to
 * MAX_IN_FLIGHT batches travel at once, so parsing, the network and the
 * server's group commit overlap.  A bad line is reported with its number
 * and skipped; everything valid is written; the exit status is 1 if any
 * line was bad or any batch was refused.
 *
 * Series are counted client-side (distinct measurement, tag set and field)
 * for the summary line: "wrote N points (S series) in T s".
 */
#include "cli.h"

#include "lineproto.h"
#include "vg_buf.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)
/* 16, not 8: more batches waiting at the server make its group commits
 * larger (one fsync for more points): vitals 1.30-1.49 s -> 1.02-1.14 s on
 * the project VM (bench/RESULTS.md, 2026-11-25 afternoon). */
#define MAX_IN_FLIGHT 16
#define DEFAULT_BATCH 20000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A set of 64-bit series hashes (open addressing; 0 marks empty).  The
 * hashes are well mixed, so their low bits index the table directly. */
typedef struct {
	uint64_t *slots;
	size_t cap, len;
} hash_set_t;

static int hash_set_add(hash_set_t *s, uint64_t h)
{
	if (h == 0)
		h = 1;
	if (2 * (s->len + 1) > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *slots = calloc(cap, sizeof *slots);
		if (!slots)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i])
				for (size_t j = s->slots[i] & (cap - 1);; j = (j + 1) & (cap - 1))
					if (!slots[j]) {
						slots[j] = s->slots[i];
						break;
					}
		free(s->slots);
		s->slots = slots;
		s->cap = cap;
	}
	for (size_t j = h & (s->cap - 1);; j = (j + 1) & (s->cap - 1)) {
		if (s->slots[j] == h)
			return 0;
		if (!s->slots[j]) {
			s->slots[j] = h;
			s->len++;
			return 0;
		}
	}
}

/* MurmurHash3's finaliser: every output bit depends on every input bit. */
static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

/* A hash of a view, eight bytes at a time: a line's names are hashed for
 * the series count, so this is on the per-line path.  The last bytes are
 * read as one overlapping word, or gathered in a register when the view is
 * shorter than a word (assembling them in memory would stall the load). */
static uint64_t hash_view(uint64_t seed, vg_lp_view_t v)
{
	const unsigned char *p = (const unsigned char *)v.ptr;
	size_t n = v.len;
	uint64_t h = seed ^ n, w = 0;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&w, p + i, 8);
			h = (h ^ w) * UINT64_C(0x9e3779b97f4a7c15);
			h ^= h >> 29;
		}
		memcpy(&w, p + n - 8, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)p[i] << (8 * i);
	}
	return mix(h ^ w);
}

typedef struct {
	vg_client_t *client;
	vg_batch_t *batch;
	size_t batch_lines, max_lines;
	uint64_t first_line; /* line number of the batch's first line */
	uint64_t in_flight_first[MAX_IN_FLIGHT];
	uint64_t in_flight_ids[MAX_IN_FLIGHT];
	size_t in_flight;
	uint64_t points_acked;
	uint64_t bad_lines;
	bool failed;
	hash_set_t series;
	vg_buf_t names; /* NUL-terminated copies of one line's names */
} writer_t;

/* Collects one acknowledgement; reports a refused batch. */
static int collect_one(writer_t *w)
{
	uint64_t id = 0, points = 0;
	int rc = vg_client_wait_ack(w->client, &id, &points);
	size_t slot = 0;
	while (slot < w->in_flight && w->in_flight_ids[slot] != id)
		slot++;
	if (rc) {
		if (slot == w->in_flight) {
			fprintf(stderr, "vigil: %s\n", vg_client_errstr(w->client));
			return rc;
		}
		fprintf(stderr, "error: batch starting at line %" PRIu64 ": %s\n",
			w->in_flight_first[slot], vg_client_errstr(w->client));
		w->failed = true;
	} else {
		w->points_acked += points;
	}
	if (slot < w->in_flight) {
		memmove(&w->in_flight_ids[slot], &w->in_flight_ids[slot + 1],
			(w->in_flight - slot - 1) * sizeof w->in_flight_ids[0]);
		memmove(&w->in_flight_first[slot], &w->in_flight_first[slot + 1],
			(w->in_flight - slot - 1) * sizeof w->in_flight_first[0]);
		w->in_flight--;
	}
	return vg_client_is_closed(w->client) ? -1 : 0;
}

static int send_batch(writer_t *w)
{
	if (vg_batch_points(w->batch) == 0)
		return 0;
	while (w->in_flight >= MAX_IN_FLIGHT)
		if (collect_one(w) < 0)
			return -1;
	uint64_t id;
	int rc = vg_client_write_async(w->client, w->batch, &id);
	if (rc) {
		fprintf(stderr, "vigil: %s\n", vg_client_errstr(w->client));
		return rc;
	}
	w->in_flight_ids[w->in_flight] = id;
	w->in_flight_first[w->in_flight] = w->first_line;
	w->in_flight++;
	vg_batch_clear(w->batch);
	w->batch_lines = 0;
	return 0;
}

/* Copies a view with a NUL to p; returns the byte after it. */
static char *name_copy(char *p, vg_lp_view_t v)
{
	memcpy(p, v.ptr, v.len);
	p[v.len] = '\0';
	return p + v.len + 1;
}

static int add_line(writer_t *w, const vg_lp_line_t *line, uint64_t lineno)
{
	/* Names are views into the input; libvigil wants NUL-terminated
	 * strings, so copy them all, in one reservation. */
	size_t need = line->measurement.len + 1;
	for (size_t t = 0; t < line->tag_count; t++)
		need += line->tags[t].key.len + line->tags[t].value.len + 2;
	for (size_t f = 0; f < line->field_count; f++)
		need += line->fields[f].key.len + 1;
	vg_buf_clear(&w->names);
	if (vg_buf_reserve(&w->names, need)) {
		fprintf(stderr, "line %" PRIu64 ": out of memory\n", lineno);
		return VG_ENOMEM;
	}
	char *p = (char *)w->names.data;
	const char *measurement = p;
	p = name_copy(p, line->measurement);
	/* Tag sets hash the same whatever their order: per-tag hashes are
	 * combined with addition. */
	uint64_t series = hash_view(1, line->measurement);
	vg_tag_t tags[VG_LP_MAX_TAGS];
	for (size_t t = 0; t < line->tag_count; t++) {
		tags[t].key = p;
		p = name_copy(p, line->tags[t].key);
		tags[t].value = p;
		p = name_copy(p, line->tags[t].value);
		series += hash_view(hash_view(2, line->tags[t].key), line->tags[t].value);
	}
	const char *fields[VG_LP_MAX_FIELDS];
	double values[VG_LP_MAX_FIELDS];
	for (size_t f = 0; f < line->field_count; f++) {
		fields[f] = p;
		p = name_copy(p, line->fields[f].key);
		values[f] = line->fields[f].value;
	}
	if (w->batch_lines == 0)
		w->first_line = lineno;
	int rc = vg_batch_add_row(w->batch, measurement, tags, line->tag_count, fields, values,
	                          line->field_count, line->timestamp);
	if (rc) {
		fprintf(stderr, "line %" PRIu64 ": %s\n", lineno, vg_batch_errstr(w->batch));
		return rc;
	}
	for (size_t f = 0; f < line->field_count; f++) {
		hash_set_add(&w->series, hash_view(series, line->fields[f].key));
	}
	w->batch_lines++;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: vigil write [--file F] [--precision ns|us|ms|s] [--batch N]\n"
		     "  reads InfluxDB line protocol from F or stdin\n"
		     "  --batch N   lines per request (default %d; fewer when a request nears\n"
		     "              half the server's frame limit)\n",
		DEFAULT_BATCH);
}

int cli_write_main(const cli_global_t *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"file", required_argument, NULL, 'f'},
		{"precision", required_argument, NULL, 'p'},
		{"batch", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	vg_lp_precision_t precision = VG_LP_PRECISION_NS;
	size_t max_lines = DEFAULT_BATCH;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'f':
			file = optarg;
			break;
		case 'p':
			if (vg_lp_precision_parse(optarg, &precision)) {
				fprintf(stderr, "vigil: --precision %s: expected ns, us, ms or s\n", optarg);
				return CLI_USAGE;
			}
			break;
		case 'b':
			errno = 0;
			max_lines = strtoul(optarg, &end, 10);
			if (errno || *end || max_lines == 0 || max_lines > 1000000) {
				fprintf(stderr, "vigil: --batch %s: expected 1..1000000 lines\n", optarg);
				return CLI_USAGE;
			}
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
	FILE *in = stdin;
	if (file && strcmp(file, "-") != 0 && !(in = fopen(file, "rb"))) {
		fprintf(stderr, "vigil: %s: %s\n", file, strerror(errno));
		return CLI_ERROR;
	}
	writer_t w = {0};
	w.max_lines = max_lines;
	w.client = cli_connect(g);
	if (!w.client || vg_batch_new(&w.batch)) {
		if (in != stdin)
			fclose(in);
		vg_client_close(w.client);
		return CLI_ERROR;
	}
	bool progress = isatty(2);
	double started = now_s(), last_progress = started;
	vg_buf_t data = VG_BUF_INIT, scratch = VG_BUF_INIT;
	vg_lp_line_t *line = malloc(sizeof *line);
	char errstr[VG_LP_ERRSTR_SIZE];
	uint64_t lineno = 0, points = 0;
	int status = line ? CLI_OK : CLI_ERROR;
	bool eof = false;
	while (status == CLI_OK && !eof) {
		if (vg_buf_reserve(&data, READ_CHUNK)) {
			status = CLI_ERROR;
			break;
		}
		size_t n = fread(data.data + data.len, 1, READ_CHUNK, in);
		data.len += n;
		if (n == 0) {
			if (ferror(in)) {
				fprintf(stderr, "vigil: reading input: %s\n", strerror(errno));
				status = CLI_ERROR;
				break;
			}
			eof = true;
		}
		size_t offset = 0;
		int64_t default_time = wall_ns();
		for (;;) {
			size_t len, used;
			int rc = vg_lp_next_line((const char *)data.data + offset, data.len - offset, eof,
						 &len, &used);
			if (rc == VG_EAGAIN || used == 0)
				break;
			if (rc) {
				lineno++;
				fprintf(stderr, "line %" PRIu64 ": line longer than %u bytes\n", lineno,
					VG_LP_MAX_LINE);
				w.bad_lines++;
				offset += used;
				continue;
			}
			const char *text = (const char *)data.data + offset;
			offset += used;
			lineno++;
			rc = vg_lp_parse(line, text, len, precision, default_time, &scratch, errstr,
					 sizeof errstr);
			if (rc == VG_LP_SKIPPED)
				continue;
			if (rc) {
				fprintf(stderr, "line %" PRIu64 ": %s\n", lineno, errstr);
				w.bad_lines++;
				continue;
			}
			if (add_line(&w, line, lineno)) {
				w.bad_lines++;
				continue;
			}
			points += line->field_count;
			/* A batch goes at N lines, or sooner when it nears half the
			 * server's frame limit (checked every 1,024 lines). */
			bool full = w.batch_lines >= w.max_lines ||
			            ((w.batch_lines & 1023) == 0 &&
			             vg_batch_encoded_size(w.batch) >= vg_client_max_frame(w.client) / 2);
			if (full && send_batch(&w)) {
				status = CLI_ERROR;
				break;
			}
		}
		vg_buf_consume(&data, offset);
		if (progress && now_s() - last_progress > 0.5) {
			last_progress = now_s();
			fprintf(stderr, "\r%" PRIu64 " points, %.0f points/s   ", points,
				points / (last_progress - started));
		}
	}
	if (status == CLI_OK && send_batch(&w))
		status = CLI_ERROR;
	while (status == CLI_OK && w.in_flight)
		if (collect_one(&w) < 0)
			status = CLI_ERROR;
	double elapsed = now_s() - started;
	if (progress && points)
		fprintf(stderr, "\r%*s\r", 40, "");
	if (status == CLI_OK)
		printf("wrote %" PRIu64 " points (%zu series) in %.3f s\n", w.points_acked, w.series.len,
		       elapsed);
	if (w.bad_lines)
		fprintf(stderr, "%" PRIu64 " bad line%s skipped\n", w.bad_lines,
			w.bad_lines == 1 ? "" : "s");
	if (w.bad_lines || w.failed)
		status = CLI_ERROR;
	free(line);
	free(w.series.slots);
	vg_buf_release(&w.names);
	vg_buf_release(&data);
	vg_buf_release(&scratch);
	vg_batch_free(w.batch);
	vg_client_close(w.client);
	if (in != stdin)
		fclose(in);
	return status;
}
