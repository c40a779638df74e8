/*
 * test_exec_show.c — query/exec_show.c: the SHOW statements' result sets,
 * names, columns and rows (sorted, deduplicated, escaped).
 */
#include "collect.h"

#define S INT64_C(1000000000)

static char dir[256];
static vg_store_t *store;

static void setup(void)
{
	store = open_store(dir, sizeof dir);
	int64_t t[] = {10 * S, 20 * S};
	double v[] = {1, 2};
	vg_tag_t ax[2] = {TAG("region", "x"), TAG("host", "a")}, b[1] = {TAG("host", "b")};
	put_points(store, "cpu", ax, 2, "u", t, v, 2);
	put_points(store, "cpu", ax, 2, "v", t, v, 2);
	put_points(store, "cpu", b, 1, "u", t, v, 1);
	put_points(store, "mem", b, 1, "free", t, v, 2);
	vg_tag_t odd[1] = {TAG("k=1", "a,b c")};
	put_points(store, "w m", odd, 1, "f", t, v, 1);
}

static void teardown(void)
{
	vg_store_close(store);
	vg_test_rmdir(dir);
}

TestSuite(exec_show, .init = setup, .fini = teardown);

static void show(const char *text, collect_t *c)
{
	memset(c, 0, sizeof *c);
	c->abort_after_blocks = -1;
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.max_rows = 2;
	vg_query_error_t err;
	cr_assert_eq(run_query(store, text, &opts, c, NULL, &err), 0, "%s: %s", text, err.message);
	for (size_t s = 0; s < c->nsets; s++) {
		cr_assert_not(c->sets[s].has_time);
		cr_assert_eq(c->sets[s].ntags, 0);
	}
}

/* Set s is named `name` with columns `cols` (NULL-terminated) and the rows
 * `cells` (row-major strings). */
static void expect_set(const collect_t *c, size_t s, const char *name, const char *const *cols,
                       const char *const *cells, size_t nrows)
{
	cr_assert_lt(s, c->nsets);
	const col_set_t *set = &c->sets[s];
	cr_assert_str_eq(set->name, name);
	size_t nc = 0;
	while (cols[nc])
		nc++;
	cr_assert_eq(set->ncols, nc, "%s", name);
	for (size_t k = 0; k < nc; k++) {
		cr_assert_str_eq(set->cols[k], cols[k]);
		cr_assert_eq(set->types[k], VG_COLUMN_STRING);
	}
	cr_assert_eq(set->nrows, nrows, "%s: %zu rows", name, set->nrows);
	for (size_t r = 0; r < nrows; r++)
		for (size_t k = 0; k < nc; k++) {
			cr_assert_not(set->null[r * nc + k]);
			cr_assert_str_eq(set->s[r * nc + k], cells[r * nc + k], "%s row %zu", name,
			                 r);
		}
}

Test(exec_show, measurements)
{
	collect_t c;
	show("SHOW MEASUREMENTS", &c);
	cr_assert_eq(c.nsets, 1);
	expect_set(&c, 0, "measurements", (const char *[]){"name", NULL},
	           (const char *[]){"cpu", "mem", "w m"}, 3);
	collect_release(&c);
}

Test(exec_show, tag_keys)
{
	collect_t c;
	show("SHOW TAG KEYS", &c);
	cr_assert_eq(c.nsets, 3);
	const char *cols[] = {"tagKey", NULL};
	expect_set(&c, 0, "cpu", cols, (const char *[]){"host", "region"}, 2);
	expect_set(&c, 1, "mem", cols, (const char *[]){"host"}, 1);
	expect_set(&c, 2, "w m", cols, (const char *[]){"k=1"}, 1);
	collect_release(&c);
	show("SHOW TAG KEYS FROM mem", &c);
	cr_assert_eq(c.nsets, 1);
	expect_set(&c, 0, "mem", cols, (const char *[]){"host"}, 1);
	collect_release(&c);
	show("SHOW TAG KEYS FROM nope", &c);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
}

Test(exec_show, tag_values)
{
	collect_t c;
	show("SHOW TAG VALUES WITH KEY = host", &c);
	cr_assert_eq(c.nsets, 2, "w m has no host tag: no set");
	const char *cols[] = {"key", "value", NULL};
	expect_set(&c, 0, "cpu", cols, (const char *[]){"host", "a", "host", "b"}, 2);
	expect_set(&c, 1, "mem", cols, (const char *[]){"host", "b"}, 1);
	collect_release(&c);
	show("SHOW TAG VALUES FROM \"w m\" WITH KEY = \"k=1\"", &c);
	expect_set(&c, 0, "w m", cols, (const char *[]){"k=1", "a,b c"}, 1);
	collect_release(&c);
}

Test(exec_show, field_keys)
{
	collect_t c;
	show("SHOW FIELD KEYS FROM cpu", &c);
	cr_assert_eq(c.nsets, 1);
	expect_set(&c, 0, "cpu", (const char *[]){"fieldKey", "fieldType", NULL},
	           (const char *[]){"u", "float", "v", "float"}, 2);
	collect_release(&c);
	show("SHOW FIELD KEYS", &c);
	cr_assert_eq(c.nsets, 3);
	collect_release(&c);
}

Test(exec_show, series)
{
	collect_t c;
	const char *cols[] = {"key", NULL};
	show("SHOW SERIES", &c);
	cr_assert_eq(c.nsets, 1);
	expect_set(&c, 0, "series", cols,
	           (const char *[]){"cpu,host=a,region=x", "cpu,host=b", "mem,host=b",
	                            "w\\ m,k\\=1=a\\,b\\ c"},
	           4);
	collect_release(&c);
	show("SHOW SERIES FROM cpu WHERE host = 'b' OR region =~ /^y/", &c);
	expect_set(&c, 0, "series", cols, (const char *[]){"cpu,host=b"}, 1);
	collect_release(&c);
	show("SHOW SERIES FROM cpu WHERE region != ''", &c);
	expect_set(&c, 0, "series", cols, (const char *[]){"cpu,host=a,region=x"}, 1);
	collect_release(&c);
	show("SHOW SERIES FROM nope", &c);
	cr_assert_eq(c.nsets, 0);
	collect_release(&c);
}

Test(exec_show, stats)
{
	collect_t c = {0};
	c.abort_after_blocks = -1;
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	vg_stat_pair_t extra[2] = {{"connections", 3}, {"queries_per_s", 1.5}};
	opts.extra_stats = extra;
	opts.nextra_stats = 2;
	cr_assert_eq(run_query(store, "SHOW STATS", &opts, &c, NULL, NULL), 0);
	cr_assert_eq(c.nsets, 1);
	const col_set_t *set = &c.sets[0];
	cr_assert_str_eq(set->name, "stats");
	cr_assert_str_eq(set->cols[0], "name");
	cr_assert_str_eq(set->cols[1], "value");
	cr_assert_eq(set->types[0], VG_COLUMN_STRING);
	cr_assert_eq(set->types[1], VG_COLUMN_FLOAT);
	cr_assert_eq(set->nrows, 9);
	cr_assert_str_eq(set->s[0], "series");
	cr_assert_float_eq(set->f[1], 5, 0);
	cr_assert_str_eq(set->s[3 * 2], "head_points");
	cr_assert_float_eq(set->f[3 * 2 + 1], 8, 0);
	cr_assert_str_eq(set->s[7 * 2], "connections");
	cr_assert_float_eq(set->f[7 * 2 + 1], 3, 0);
	cr_assert_str_eq(set->s[8 * 2], "queries_per_s");
	cr_assert_float_eq(set->f[8 * 2 + 1], 1.5, 0);
	collect_release(&c);
}
