/*
 * write_and_query.c — a first libvigil program: connect to vigild, write a
 * few points, query them back and print the rows.
 *
 * Build against an installed libvigil:
 *
 *     cc write_and_query.c $(pkg-config --cflags --libs vigil) -o write_and_query
 *
 * Run with a server listening (vigild --data ./vigil-data):
 *
 *     ./write_and_query                  # 127.0.0.1:8445, or $VIGIL_ADDR
 *     ./write_and_query unix:/tmp/vigil.sock
 *
 * Every call returns 0 or a negative code; vg_strerror() names the code and
 * vg_client_errstr() / vg_batch_errstr() say what exactly went wrong.
 */
#include <vigil.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Now, in ns since the Unix epoch (timespec_get is plain C11). */
static int64_t now_ns(void)
{
	struct timespec ts;
	timespec_get(&ts, TIME_UTC);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Prints one result set: its name and tags, a header line, then the rows. */
static void print_set(const vg_result_set_t *set)
{
	printf("%s", vg_result_name(set));
	for (size_t t = 0; t < vg_result_tag_count(set); t++)
		printf(" %s=%s", vg_result_tag_key(set, t), vg_result_tag_value(set, t));
	printf("\n");

	size_t ncols = vg_result_column_count(set);
	for (size_t col = 0; col < ncols; col++)
		printf("%s%s", col ? "\t" : "", vg_result_column_name(set, col));
	printf("\n");

	for (size_t row = 0; row < vg_result_row_count(set); row++) {
		for (size_t col = 0; col < ncols; col++) {
			double value;
			const char *text;
			if (col)
				printf("\t");
			switch (vg_result_column_type(set, col)) {
			case VG_COLUMN_TIME:
				printf("%" PRId64, vg_result_time(set, row));
				break;
			case VG_COLUMN_FLOAT:
			case VG_COLUMN_INTEGER:
				if (vg_result_float(set, row, col, &value))
					printf("%.17g", value);
				break; /* an empty cell prints nothing */
			case VG_COLUMN_STRING:
				text = vg_result_string(set, row, col);
				printf("%s", text ? text : "");
				break;
			}
		}
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : getenv("VIGIL_ADDR");
	char err[VG_CLIENT_ERRLEN];
	vg_client_t *client;
	vg_batch_t *batch = NULL;
	vg_result_t *result = NULL;
	int status = 1;

	/* 1. Connect (NULL means 127.0.0.1:8445); wait at most 5 s for anything. */
	int rc = vg_client_connect(addr, 5000, &client, err, sizeof err);
	if (rc) {
		fprintf(stderr, "connect: %s\n", err);
		return 1;
	}
	printf("connected to vigild %s\n", vg_client_server_version(client));

	/* 2. Collect points: two fields of cpu,host=web1 at three timestamps. */
	rc = vg_batch_new(&batch);
	if (rc) {
		fprintf(stderr, "batch: %s\n", vg_strerror(rc));
		goto out;
	}
	const vg_tag_t tags[] = {{"host", "web1"}, {"region", "eu"}};
	int64_t t0 = now_ns();
	for (int i = 0; i < 3; i++) {
		int64_t t = t0 + (int64_t)i * 1000000000; /* one second apart */
		rc = vg_batch_add(batch, "cpu", tags, 2, "usage_user", t, 10.0 + i);
		if (!rc)
			rc = vg_batch_add(batch, "cpu", tags, 2, "usage_idle", t, 85.0 - i);
		if (rc) {
			fprintf(stderr, "add: %s\n", vg_batch_errstr(batch));
			goto out;
		}
	}

	/* 3. Write them; the call returns once the server has committed them. */
	uint64_t points;
	rc = vg_client_write(client, batch, &points);
	if (rc) {
		fprintf(stderr, "write: %s (%s)\n", vg_client_errstr(client), vg_strerror(rc));
		goto out;
	}
	printf("wrote %" PRIu64 " points\n", points);

	/* 4. Query them back and print every result set. */
	rc = vg_client_query(client, "SELECT usage_user, usage_idle FROM cpu WHERE host = 'web1'",
	                     &result);
	if (rc) {
		fprintf(stderr, "query: %s (%s)\n", vg_client_errstr(client), vg_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < vg_result_set_count(result); i++)
		print_set(vg_result_set(result, i));
	status = 0;

out:
	vg_result_free(result);
	vg_batch_free(batch);
	vg_client_close(client);
	return status;
}
