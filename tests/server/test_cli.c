/*
 * test_cli.c — the `vigil` binary against a real vigild: `vigil write`
 * with good and bad line protocol (summary line, per-line errors, exit
 * status), and `vigil query` output in each format, compared with golden
 * text.
 */
#include "harness.h"

static vg_test_server_t srv;

static void setup(void)
{
	memset(&srv, 0, sizeof srv);
	vg_test_server_start(&srv, NULL);
}

static void teardown(void) { vg_test_server_stop(&srv, true); }

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
	int status;
	char out[16384];
	char err[16384];
} run_t;

/* Runs vigil with args, feeding `input` on stdin; captures both streams. */
static void run_vigil(run_t *r, const char *input, const char *const *args)
{
	char path[1024];
	const char *dir = getenv("VIGIL_BUILD_DIR");
	snprintf(path, sizeof path, "%s/client/vigil", dir ? dir : ".");
	char in_path[400], out_path[400], err_path[400];
	snprintf(in_path, sizeof in_path, "%s/stdin", srv.dir);
	snprintf(out_path, sizeof out_path, "%s/stdout", srv.dir);
	snprintf(err_path, sizeof err_path, "%s/stderr", srv.dir);
	FILE *f = fopen(in_path, "w");
	cr_assert_not_null(f);
	fputs(input ? input : "", f);
	fclose(f);
	const char *argv[32] = {path, "--addr", srv.addr};
	int argc = 3;
	for (int i = 0; args[i]; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		freopen(in_path, "r", stdin);
		freopen(out_path, "w", stdout);
		freopen(err_path, "w", stderr);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	memset(r->out, 0, sizeof r->out);
	memset(r->err, 0, sizeof r->err);
	f = fopen(out_path, "r");
	fread(r->out, 1, sizeof r->out - 1, f);
	fclose(f);
	f = fopen(err_path, "r");
	fread(r->err, 1, sizeof r->err - 1, f);
	fclose(f);
}

static const char lines[] = "cpu,host=b,region=eu usage=2.5,idle=97 1000000000\n"
			    "cpu,host=a,region=eu usage=1,idle=99i 1000000000\n"
			    "# a comment\n"
			    "\n"
			    "cpu,host=a,region=eu usage=3.25 2000000000\n"
			    "cpu,host=b,region=eu usage=0.1 2000000000\n";

Test(cli, write_reports_points_series_and_time)
{
	run_t r;
	static const char *const args[] = {"write", NULL};
	run_vigil(&r, lines, args);
	cr_assert_eq(r.status, 0, "stderr: %s", r.err);
	cr_assert(strncmp(r.out, "wrote 6 points (4 series) in ", 29) == 0, "out: %s", r.out);
}

Test(cli, bad_lines_are_reported_with_their_number_and_the_rest_is_written)
{
	run_t r;
	static const char *const args[] = {"write", "--precision", "s", NULL};
	run_vigil(&r,
		  "m v=1 1\n"
		  "m v=\"text\" 2\n"
		  "m ok=true 3\n"
		  "m v=2 4\n"
		  "m,bad tag=1 v=1 5\n",
		  args);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "line 2:"), "%s", r.err);
	cr_assert(strstr(r.err, "string"), "%s", r.err);
	cr_assert(strstr(r.err, "line 3:"), "%s", r.err);
	cr_assert(strstr(r.err, "boolean"), "%s", r.err);
	cr_assert(strstr(r.err, "line 5:"), "%s", r.err);
	cr_assert(strstr(r.out, "wrote 2 points (1 series)"), "%s", r.out);
	static const char *const q[] = {"query", "SELECT v FROM m", "--format", "csv", NULL};
	run_vigil(&r, NULL, q);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "time,v\n1000000000,1\n4000000000,2\n");
}

Test(cli, query_formats_match_golden_output)
{
	run_t r;
	static const char *const w[] = {"write", NULL};
	run_vigil(&r, lines, w);
	cr_assert_eq(r.status, 0, "%s", r.err);

	static const char *const csv[] = {"query", "SELECT usage, idle FROM cpu GROUP BY *",
					  "--format", "csv", NULL};
	run_vigil(&r, NULL, csv);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "time,host,region,usage,idle\n"
				"1000000000,a,eu,1,99\n"
				"2000000000,a,eu,3.25,\n"
				"1000000000,b,eu,2.5,97\n"
				"2000000000,b,eu,0.1,\n");

	static const char *const rfc[] = {"query", "SELECT usage FROM cpu WHERE host = 'a'",
					  "--format", "csv", "--time-format", "rfc3339", NULL};
	run_vigil(&r, NULL, rfc);
	cr_assert_str_eq(r.out, "time,usage\n1970-01-01T00:00:01Z,1\n1970-01-01T00:00:02Z,3.25\n");

	static const char *const json[] = {"query", "SELECT usage FROM cpu GROUP BY host",
					   "--format", "json", NULL};
	run_vigil(&r, NULL, json);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out,
			 "{\"name\":\"cpu\",\"tags\":{\"host\":\"a\"},\"columns\":[\"time\",\"usage\"],"
			 "\"values\":[[1000000000,1],[2000000000,3.25]]}\n"
			 "{\"name\":\"cpu\",\"tags\":{\"host\":\"b\"},\"columns\":[\"time\",\"usage\"],"
			 "\"values\":[[1000000000,2.5],[2000000000,0.1]]}\n");

	static const char *const table[] = {"query", "SELECT usage FROM cpu WHERE host = 'b'",
					    NULL};
	run_vigil(&r, NULL, table);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "time        usage\n"
				"----------  -----\n"
				"1000000000    2.5\n"
				"2000000000    0.1\n");

	static const char *const show[] = {"query", "SHOW TAG VALUES FROM cpu WITH KEY = host",
					   "--format", "csv", NULL};
	run_vigil(&r, NULL, show);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "key,value\nhost,a\nhost,b\n");
}

Test(cli, exit_statuses)
{
	run_t r;
	static const char *const bad[] = {"query", "SELEC 1", NULL};
	run_vigil(&r, NULL, bad);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "line 1, column 1"), "%s", r.err);
	static const char *const usage[] = {"query", "--format", "xml", "SELECT x FROM y", NULL};
	run_vigil(&r, NULL, usage);
	cr_assert_eq(r.status, 2);
	static const char *const unknown[] = {"frobnicate", NULL};
	run_vigil(&r, NULL, unknown);
	cr_assert_eq(r.status, 2);
}
