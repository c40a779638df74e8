/*
 * test_index.c — the series index: key round trips, listings, and the four
 * tag matchers checked against a brute-force filter over random series
 * sets (including series that lack the tag and values too long for an
 * LMDB key), and series whose `series` keys collide.
 */
#include "vg_test.h"

#include "vg_error.h"
#include "vg_hash.h"
#include "vg_store.h"

#define NKEYS 3
#define NSER 300

typedef struct {
	char values[NKEYS][1100]; /* "" = tag absent */
	char field[8];
	vg_series_id_t id;
} gen_series_t;

static gen_series_t series[NSER];
static const char *tag_keys[NKEYS] = {"dc", "host", "rack"};

static vg_store_t *open_tmp(char *dir, size_t len)
{
	vg_test_tmpdir(dir, len);
	vg_store_options_t opts;
	vg_store_options_init(&opts);
	opts.sync = false;
	vg_store_t *store;
	char err[256];
	cr_assert_eq(vg_store_open(dir, &opts, &store, err, sizeof err), 0, "%s", err);
	return store;
}

static void make_key(const gen_series_t *g, vg_tag_t *tags, vg_series_key_t *key)
{
	size_t n = 0;
	/* Reverse order: the store must sort. */
	for (int k = NKEYS - 1; k >= 0; k--) {
		if (!g->values[k][0])
			continue;
		tags[n].key = (vg_str_t){tag_keys[k], strlen(tag_keys[k])};
		tags[n].value = (vg_str_t){g->values[k], strlen(g->values[k])};
		n++;
	}
	*key = (vg_series_key_t){{"cpu", 3}, tags, n, {g->field, strlen(g->field)}};
}

static void populate(vg_store_t *store, vg_test_rng_t *rng)
{
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int i = 0; i < NSER; i++) {
		gen_series_t *g = &series[i];
		for (int k = 0; k < NKEYS; k++) {
			uint64_t r = vg_test_below(rng, 8);
			if (r == 0)
				g->values[k][0] = 0;
			else if (r == 1 && k == 2) {
				/* Long values sharing a 500-byte prefix. */
				memset(g->values[k], 'x', 1000);
				snprintf(g->values[k] + 1000, 20, "%d", (int)vg_test_below(rng, 3));
			} else
				snprintf(g->values[k], 32, "%s%d", k == 0 ? "eu" : "v",
					 (int)vg_test_below(rng, 6));
		}
		snprintf(g->field, sizeof g->field, "f%d", i % 3);
		vg_tag_t tags[NKEYS];
		vg_series_key_t key;
		make_key(g, tags, &key);
		bool created;
		cr_assert_eq(vg_wtxn_series(txn, &key, &g->id, &created), 0);
		/* Duplicate generated keys resolve to the same id. */
		for (int j = 0; j < i; j++)
			if (!memcmp(series[j].values, g->values, sizeof g->values) &&
			    !strcmp(series[j].field, g->field))
				cr_assert_eq(series[j].id, g->id);
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);
}

static bool brute(const gen_series_t *g, const char *key, vg_match_op_t op, const char *value,
		  const regex_t *re)
{
	int k = 0;
	while (strcmp(tag_keys[k], key))
		k++;
	const char *v = g->values[k];
	switch (op) {
	case VG_MATCH_EQ:
		return strcmp(v, value) == 0;
	case VG_MATCH_NE:
		return strcmp(v, value) != 0;
	case VG_MATCH_RE:
		return regexec(re, v, 0, NULL, 0) == 0;
	default:
		return regexec(re, v, 0, NULL, 0) != 0;
	}
}

static void check_match(vg_store_t *store, const char *key, vg_match_op_t op, const char *value)
{
	regex_t re;
	bool is_re = op == VG_MATCH_RE || op == VG_MATCH_NRE;
	if (is_re)
		cr_assert_eq(regcomp(&re, value, REG_EXTENDED | REG_NOSUB), 0);
	vg_matcher_t m = {op, {key, strlen(key)}, {value, strlen(value)}, is_re ? &re : NULL};
	vg_rtxn_t *txn;
	cr_assert_eq(vg_store_read_begin(store, &txn), 0);
	vg_idset_t got = VG_IDSET_INIT;
	cr_assert_eq(vg_rtxn_match(txn, (vg_str_t){"cpu", 3}, &m, &got), 0);
	for (size_t i = 1; i < got.len; i++)
		cr_assert_lt(got.ids[i - 1], got.ids[i], "sorted and unique");
	size_t want = 0;
	vg_idset_t seen = VG_IDSET_INIT;
	for (int i = 0; i < NSER; i++) {
		bool dup = false;
		for (int j = 0; j < i && !dup; j++)
			dup = series[j].id == series[i].id;
		if (dup)
			continue;
		bool expect = brute(&series[i], key, op, value, is_re ? &re : NULL);
		want += expect;
		cr_assert_eq(vg_idset_contains(&got, series[i].id), expect,
			     "series %d: %s op %d '%.20s'", i, key, op, value);
	}
	cr_assert_eq(got.len, want, "%s op %d '%.20s'", key, op, value);
	/* vg_rtxn_match_filter = vg_rtxn_match ∩ in: a few ids (probed one by
	 * one when the postings are much larger) and every id (read whole). */
	for (int pick = -1; pick < 12; pick++) { /* -1: every id; else the one id */
		vg_idset_t in = VG_IDSET_INIT, filtered = VG_IDSET_INIT, want_set = VG_IDSET_INIT;
		vg_idset_t every = VG_IDSET_INIT;
		cr_assert_eq(vg_rtxn_measurement_series(txn, (vg_str_t){"cpu", 3}, &every), 0);
		for (size_t i = 0; i < every.len; i++)
			if (pick < 0 || i == (size_t)pick)
				cr_assert_eq(vg_idset_add(&in, every.ids[i]), 0);
		cr_assert_eq(vg_rtxn_match_filter(txn, (vg_str_t){"cpu", 3}, &m, &in, &filtered), 0);
		cr_assert_eq(vg_idset_intersect(&got, &in, &want_set), 0);
		cr_assert_eq(filtered.len, want_set.len, "filter %s op %d '%.20s' pick %d", key, op,
			     value, pick);
		for (size_t i = 0; i < want_set.len; i++)
			cr_assert_eq(filtered.ids[i], want_set.ids[i]);
		vg_idset_release(&in);
		vg_idset_release(&filtered);
		vg_idset_release(&want_set);
		vg_idset_release(&every);
	}
	vg_idset_release(&got);
	vg_idset_release(&seen);
	vg_rtxn_end(txn);
	if (is_re)
		regfree(&re);
}

Test(index, matchers_agree_with_brute_force)
{
	char dir[256];
	vg_store_t *store = open_tmp(dir, sizeof dir);
	vg_test_rng_t rng = {1234567};
	populate(store, &rng);
	static const char *values[] = {"eu1", "eu3", "v2", "v0", "", "nope"};
	static const char *regexes[] = {"^eu[12]$", "3", "^$", "x+1$", "^v", ".*", "zzz"};
	for (int k = 0; k < NKEYS; k++) {
		for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
			check_match(store, tag_keys[k], VG_MATCH_EQ, values[v]);
			check_match(store, tag_keys[k], VG_MATCH_NE, values[v]);
		}
		for (size_t r = 0; r < sizeof regexes / sizeof regexes[0]; r++) {
			check_match(store, tag_keys[k], VG_MATCH_RE, regexes[r]);
			check_match(store, tag_keys[k], VG_MATCH_NRE, regexes[r]);
		}
	}
	/* Long values: exact match on the full 1001-byte value. */
	for (int i = 0; i < NSER; i++)
		if (strlen(series[i].values[2]) > 500) {
			check_match(store, "rack", VG_MATCH_EQ, series[i].values[2]);
			check_match(store, "rack", VG_MATCH_NE, series[i].values[2]);
			break;
		}
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* ---- filters through large postings ------------------------------------- */

#define BIG_N 9000
#define BIG_PICK 48 /* candidates: 48 * 32 < every postings list below */

/* Tag g=a: every 7th series and a dense block of 400, ~1,630 in all. */
static bool big_in_a(int i) { return i % 7 == 0 || (i >= 4000 && i < 4400); }
/* Field w: every 5th series (1,800); the others have field v. */
static bool big_has_w(int i) { return i % 5 == 4; }

static int cmp_id(const void *a, const void *b)
{
	vg_series_id_t x = *(const vg_series_id_t *)a, y = *(const vg_series_id_t *)b;
	return (x > y) - (x < y);
}

/* in = the ids of the n candidates given (sorted, deduplicated). */
static void big_set(vg_series_id_t *cand, size_t n, vg_idset_t *in)
{
	qsort(cand, n, sizeof *cand, cmp_id);
	in->len = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || cand[i] != cand[i - 1])
			cr_assert_eq(vg_idset_add(in, cand[i]), 0);
}

/* Checks both filters on `in` against the brute-force sets. */
static void big_check(vg_rtxn_t *txn, const vg_idset_t *in, const vg_idset_t *want_a,
		      const vg_idset_t *want_w, const char *what)
{
	vg_matcher_t m = {VG_MATCH_EQ, {"g", 1}, {"a", 1}, NULL};
	vg_idset_t got = VG_IDSET_INIT, want = VG_IDSET_INIT;
	for (int which = 0; which < 2; which++) {
		if (which == 0)
			cr_assert_eq(vg_rtxn_match_filter(txn, (vg_str_t){"big", 3}, &m, in, &got), 0);
		else
			cr_assert_eq(vg_rtxn_field_filter(txn, (vg_str_t){"big", 3},
							  (vg_str_t){"w", 1}, in, &got),
				     0);
		cr_assert_eq(vg_idset_intersect(which == 0 ? want_a : want_w, in, &want), 0);
		cr_assert_eq(got.len, want.len, "%s, %s: %zu ids, want %zu", what,
			     which == 0 ? "tag" : "field", got.len, want.len);
		for (size_t i = 0; i < want.len; i++)
			cr_assert_eq(got.ids[i], want.ids[i], "%s, %s: id %zu", what,
				     which == 0 ? "tag" : "field", i);
	}
	vg_idset_release(&got);
	vg_idset_release(&want);
}

/*
 * vg_rtxn_match_filter and vg_rtxn_field_filter with few candidates among
 * postings spanning many pages (the leapfrog path): runs of consecutive
 * candidates in and out of the dense block, across its edges and past the
 * last posting, candidates that all hit (one after another, and spread),
 * that all miss, random ones, ids of no series; each result must be exactly
 * the postings ∩ the candidates — none dropped, none repeated.
 */
Test(index, filters_leapfrog_large_postings, .timeout = 60)
{
	char dir[256];
	vg_store_t *store = open_tmp(dir, sizeof dir);
	static vg_series_id_t ids[BIG_N];
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int i = 0; i < BIG_N; i++) {
		char host[16], num[16];
		snprintf(host, sizeof host, "h%d", i / 100);
		snprintf(num, sizeof num, "%d", i);
		vg_tag_t tags[3] = {{{"host", 4}, {host, strlen(host)}},
				    {{"g", 1}, {big_in_a(i) ? "a" : "b", 1}},
				    {{"n", 1}, {num, strlen(num)}}};
		vg_series_key_t key = {{"big", 3}, tags, 3, {big_has_w(i) ? "w" : "v", 1}};
		bool created = false;
		cr_assert_eq(vg_wtxn_series(txn, &key, &ids[i], &created), 0);
		cr_assert(created, "one series per i");
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_series_id_t top = 0;
	vg_series_id_t *cand = malloc(sizeof *cand * BIG_N);
	cr_assert_not_null(cand);
	size_t na = 0, nw = 0;
	for (int i = 0; i < BIG_N; i++) {
		top = ids[i] > top ? ids[i] : top;
		na += big_in_a(i);
		nw += big_has_w(i);
	}
	cr_assert_gt(na, BIG_PICK * 32);
	cr_assert_gt(nw, BIG_PICK * 32);
	vg_idset_t want_a = VG_IDSET_INIT, want_w = VG_IDSET_INIT, in = VG_IDSET_INIT;
	size_t n = 0;
	for (int i = 0; i < BIG_N; i++)
		if (big_in_a(i))
			cand[n++] = ids[i];
	big_set(cand, n, &want_a);
	n = 0;
	for (int i = 0; i < BIG_N; i++)
		if (big_has_w(i))
			cand[n++] = ids[i];
	big_set(cand, n, &want_w);

	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	/* vg_rtxn_match_upto: the count always, the ids only up to the limit. */
	vg_matcher_t ma = {VG_MATCH_EQ, {"g", 1}, {"a", 1}, NULL};
	size_t count = 0;
	cr_assert_eq(vg_rtxn_match_upto(r, (vg_str_t){"big", 3}, &ma, na - 1, &in, &count), 0);
	cr_assert_eq(count, na, "count %zu, want %zu", count, na);
	cr_assert_eq(in.len, 0, "over the limit: nothing read");
	cr_assert_eq(vg_rtxn_match_upto(r, (vg_str_t){"big", 3}, &ma, na, &in, &count), 0);
	cr_assert_eq(count, na);
	cr_assert_eq(in.len, want_a.len);
	cr_assert_arr_eq(in.ids, want_a.ids, in.len * sizeof in.ids[0]);
	vg_matcher_t mz = {VG_MATCH_EQ, {"g", 1}, {"z", 1}, NULL};
	cr_assert_eq(vg_rtxn_match_upto(r, (vg_str_t){"big", 3}, &mz, 10, &in, &count), 0);
	cr_assert_eq(count, 0);
	cr_assert_eq(in.len, 0);
	vg_matcher_t mne = {VG_MATCH_NE, {"g", 1}, {"a", 1}, NULL};
	cr_assert_eq(vg_rtxn_match_upto(r, (vg_str_t){"big", 3}, &mne, 10, &in, &count), VG_EINVAL);
	char what[64];
	/* Runs of consecutive series (a host's ids). */
	static const int starts[] = {0, 1, 100, 3990, 4000, 4380, 4399, 7000, BIG_N - BIG_PICK,
				     BIG_N - 20};
	for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
		n = 0;
		for (int i = starts[s]; i < starts[s] + BIG_PICK && i < BIG_N; i++)
			cand[n++] = ids[i];
		big_set(cand, n, &in);
		snprintf(what, sizeof what, "run from %d", starts[s]);
		big_check(r, &in, &want_a, &want_w, what);
	}
	/* Every candidate a tag hit: adjacent ones, and every 7th. */
	n = 0;
	for (int i = 4100; i < 4100 + BIG_PICK; i++)
		cand[n++] = ids[i];
	big_set(cand, n, &in);
	big_check(r, &in, &want_a, &want_w, "all hits, adjacent");
	n = 0;
	for (int i = 7; n < BIG_PICK; i += 7 * 3)
		cand[n++] = ids[i];
	big_set(cand, n, &in);
	big_check(r, &in, &want_a, &want_w, "all hits, spread");
	/* Every candidate a tag miss. */
	n = 0;
	for (int i = 5003; n < BIG_PICK; i += 7)
		cand[n++] = ids[i];
	big_set(cand, n, &in);
	big_check(r, &in, &want_a, &want_w, "all misses");
	/* Ids of no series, alone and after real ones. */
	n = 0;
	for (vg_series_id_t k = 1; k <= BIG_PICK; k++)
		cand[n++] = top + k;
	big_set(cand, n, &in);
	big_check(r, &in, &want_a, &want_w, "past the last id");
	n = 0;
	for (int i = BIG_N - 10; i < BIG_N; i++)
		cand[n++] = ids[i];
	for (vg_series_id_t k = 1; k <= 10; k++)
		cand[n++] = top + k * 1000;
	big_set(cand, n, &in);
	big_check(r, &in, &want_a, &want_w, "last ids and beyond");
	/* Random picks, one id, none. */
	vg_test_rng_t rng = {99};
	for (int round = 0; round < 20; round++) {
		n = 0;
		size_t want_n = 1 + vg_test_below(&rng, BIG_PICK);
		while (n < want_n)
			cand[n++] = ids[vg_test_below(&rng, BIG_N)];
		big_set(cand, n, &in);
		snprintf(what, sizeof what, "random round %d", round);
		big_check(r, &in, &want_a, &want_w, what);
	}
	big_set(cand, 0, &in);
	big_check(r, &in, &want_a, &want_w, "no candidates");
	vg_rtxn_end(r);
	vg_idset_release(&want_a);
	vg_idset_release(&want_w);
	vg_idset_release(&in);
	free(cand);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

typedef struct {
	char names[64][1100];
	int n;
} names_t;

static int collect(void *ctx, vg_str_t name)
{
	names_t *names = ctx;
	cr_assert_lt(names->n, 64);
	memcpy(names->names[names->n], name.data, name.len);
	names->names[names->n][name.len] = 0;
	names->n++;
	return 0;
}

Test(index, keys_round_trip_and_listings)
{
	char dir[256];
	vg_store_t *store = open_tmp(dir, sizeof dir);
	vg_wtxn_t *txn;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	const char *ms[] = {"mem", "cpu", "disk.io"};
	vg_series_id_t ids[3];
	for (int i = 0; i < 3; i++) {
		vg_tag_t tags[2] = {{{"zone", 4}, {"b", 1}}, {{"host", 4}, {"h1", 2}}};
		vg_series_key_t key = {{ms[i], strlen(ms[i])}, tags, 2, {"value", 5}};
		cr_assert_eq(vg_wtxn_series(txn, &key, &ids[i], NULL), 0);
	}
	vg_tag_t tags2[1] = {{{"host", 4}, {"h2", 2}}};
	vg_series_key_t k2 = {{"cpu", 3}, tags2, 1, {"idle", 4}};
	vg_series_id_t id2;
	cr_assert_eq(vg_wtxn_series(txn, &k2, &id2, NULL), 0);
	/* Bad keys are refused. */
	vg_tag_t dup[2] = {{{"a", 1}, {"1", 1}}, {{"a", 1}, {"2", 1}}};
	vg_series_key_t bad = {{"cpu", 3}, dup, 2, {"f", 1}};
	vg_series_id_t unused;
	cr_assert_eq(vg_wtxn_series(txn, &bad, &unused, NULL), VG_EINVAL);
	vg_tag_t empty[1] = {{{"a", 1}, {"", 0}}};
	bad.tags = empty;
	bad.ntags = 1;
	cr_assert_eq(vg_wtxn_series(txn, &bad, &unused, NULL), VG_EINVAL);
	bad.ntags = 0;
	bad.measurement.len = 0;
	cr_assert_eq(vg_wtxn_series(txn, &bad, &unused, NULL), VG_EINVAL);
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	vg_series_desc_t d;
	cr_assert_eq(vg_rtxn_series_describe(r, ids[0], &d), 0);
	cr_assert_eq(d.ntags, 2);
	cr_assert_eq(strncmp(d.tags[0].key.data, "host", 4), 0, "sorted by key");
	cr_assert_eq(strncmp(d.tags[1].key.data, "zone", 4), 0);
	cr_assert_eq(d.measurement.len, 3);
	vg_tag_t swapped[2] = {{{"host", 4}, {"h1", 2}}, {{"zone", 4}, {"b", 1}}};
	vg_series_key_t again = {{"mem", 3}, swapped, 2, {"value", 5}};
	vg_series_id_t found;
	cr_assert_eq(vg_rtxn_series_find(r, &again, &found), 0);
	cr_assert_eq(found, ids[0]);
	again.field = (vg_str_t){"other", 5};
	cr_assert_eq(vg_rtxn_series_find(r, &again, &found), VG_ENOTFOUND);

	names_t names = {0};
	cr_assert_eq(vg_rtxn_list_measurements(r, collect, &names), 0);
	cr_assert_eq(names.n, 3);
	cr_assert_str_eq(names.names[0], "cpu");
	cr_assert_str_eq(names.names[1], "disk.io");
	cr_assert_str_eq(names.names[2], "mem");
	names.n = 0;
	cr_assert_eq(vg_rtxn_list_tag_keys(r, (vg_str_t){"cpu", 3}, collect, &names), 0);
	cr_assert_eq(names.n, 2);
	cr_assert_str_eq(names.names[0], "host");
	cr_assert_str_eq(names.names[1], "zone");
	names.n = 0;
	cr_assert_eq(vg_rtxn_list_tag_values(r, (vg_str_t){"cpu", 3}, (vg_str_t){"host", 4}, collect,
					     &names),
		     0);
	cr_assert_eq(names.n, 2);
	cr_assert_str_eq(names.names[0], "h1");
	cr_assert_str_eq(names.names[1], "h2");
	names.n = 0;
	cr_assert_eq(vg_rtxn_list_field_keys(r, (vg_str_t){"cpu", 3}, collect, &names), 0);
	cr_assert_eq(names.n, 2);
	cr_assert_str_eq(names.names[0], "idle");
	cr_assert_str_eq(names.names[1], "value");
	vg_idset_t set = VG_IDSET_INIT;
	cr_assert_eq(vg_rtxn_field_series(r, (vg_str_t){"cpu", 3}, (vg_str_t){"idle", 4}, &set), 0);
	cr_assert_eq(set.len, 1);
	cr_assert_eq(set.ids[0], id2);
	vg_idset_release(&set);
	vg_rtxn_end(r);

	/* Dropping a series removes it from every listing. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_drop_series(txn, ids[2], NULL), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	names.n = 0;
	cr_assert_eq(vg_rtxn_list_measurements(r, collect, &names), 0);
	cr_assert_eq(names.n, 2);
	cr_assert_eq(vg_rtxn_series_describe(r, ids[2], &d), VG_ENOTFOUND);
	vg_rtxn_end(r);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

/* Field names "f<i>" of measurement "m" without tags, paired by the 32-bit
 * hash of their canonical key (00 "m" 00 "f<i>" 00), which is all
 * that tells such series apart in the `series` database (storage/series.c:
 * the entity's hash, the same for all of them, then the key's). */
typedef struct {
	uint32_t hash;
	uint32_t i;
} field_hash_t;

static int compare_field_hash(const void *a, const void *b)
{
	const field_hash_t *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

static uint32_t field_key_hash(uint32_t i)
{
	uint8_t ck[32];
	int n = snprintf((char *)ck + 3, sizeof ck - 3, "f%u", (unsigned)i);
	ck[0] = 0;
	ck[1] = 'm';
	ck[2] = 0;
	ck[3 + n] = 0;
	return (uint32_t)vg_hash64(ck, (size_t)n + 4);
}

/* Two field numbers whose series collide (a birthday search). */
static void colliding_fields(uint32_t *a, uint32_t *b)
{
	enum { N = 400000 }; /* ~18 colliding pairs expected among 2^32 */
	field_hash_t *h = malloc(N * sizeof *h);
	cr_assert(h);
	for (uint32_t i = 0; i < N; i++)
		h[i] = (field_hash_t){field_key_hash(i), i};
	qsort(h, N, sizeof *h, compare_field_hash);
	bool found = false;
	for (size_t i = 1; i < N && !found; i++)
		if (h[i].hash == h[i - 1].hash) {
			*a = h[i - 1].i;
			*b = h[i].i;
			found = true;
		}
	free(h);
	cr_assert(found, "no colliding pair among %d names", N);
}

static vg_series_key_t field_key(char *name, size_t len, uint32_t i)
{
	snprintf(name, len, "f%u", (unsigned)i);
	return (vg_series_key_t){{"m", 1}, NULL, 0, {name, strlen(name)}};
}

Test(index, series_whose_keys_collide_stay_apart)
{
	uint32_t fa, fb;
	colliding_fields(&fa, &fb);
	char dir[256], na[16], nb[16];
	vg_store_t *store = open_tmp(dir, sizeof dir);
	vg_series_key_t ka = field_key(na, sizeof na, fa), kb = field_key(nb, sizeof nb, fb);
	vg_wtxn_t *txn;
	vg_series_id_t ia, ib, again;
	bool created;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_series(txn, &ka, &ia, &created), 0);
	cr_assert(created);
	cr_assert_eq(vg_wtxn_series(txn, &kb, &ib, &created), 0);
	cr_assert(created, "a colliding key is a new series");
	cr_assert_neq(ia, ib);
	cr_assert_eq(vg_wtxn_series(txn, &kb, &again, &created), 0);
	cr_assert(!created);
	cr_assert_eq(again, ib, "the second id under the key is found");
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	vg_rtxn_t *r;
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	cr_assert_eq(vg_rtxn_series_find(r, &ka, &again), 0);
	cr_assert_eq(again, ia);
	cr_assert_eq(vg_rtxn_series_find(r, &kb, &again), 0);
	cr_assert_eq(again, ib);
	vg_rtxn_end(r);

	/* Dropping the first leaves the second under the key, and back. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_drop_series(txn, ia, NULL), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	cr_assert_eq(vg_store_read_begin(store, &r), 0);
	cr_assert_eq(vg_rtxn_series_find(r, &ka, &again), VG_ENOTFOUND);
	cr_assert_eq(vg_rtxn_series_find(r, &kb, &again), 0);
	cr_assert_eq(again, ib);
	vg_rtxn_end(r);
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_series(txn, &ka, &again, &created), 0);
	cr_assert(created);
	cr_assert_neq(again, ib);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_store_close(store);
	vg_test_rmdir(dir);
}

Test(idset, operations)
{
	vg_idset_t a = VG_IDSET_INIT, b = VG_IDSET_INIT, out = VG_IDSET_INIT;
	for (vg_series_id_t i = 1; i < 20; i += 2)
		cr_assert_eq(vg_idset_add(&a, i), 0);
	for (vg_series_id_t i = 1; i < 20; i += 3)
		cr_assert_eq(vg_idset_add(&b, i), 0);
	cr_assert_eq(vg_idset_intersect(&a, &b, &out), 0);
	vg_series_id_t both[] = {1, 7, 13, 19};
	cr_assert_eq(out.len, 4);
	cr_assert_arr_eq(out.ids, both, sizeof both);
	cr_assert_eq(vg_idset_union(&a, &b, &out), 0);
	cr_assert_eq(out.len, 10 + 7 - 4);
	cr_assert_eq(vg_idset_subtract(&a, &b, &out), 0);
	cr_assert_eq(out.len, 6);
	cr_assert(!vg_idset_contains(&out, 7));
	cr_assert(vg_idset_contains(&out, 9));
	vg_idset_release(&a);
	vg_idset_release(&b);
	vg_idset_release(&out);
}

/* Resolves series i of the "order" set (host h<i>), creating it if new. */
static vg_series_id_t order_series(vg_wtxn_t *txn, int i, bool *created)
{
	char host[16];
	snprintf(host, sizeof host, "h%d", i);
	vg_tag_t tag = {{"host", 4}, {host, strlen(host)}};
	vg_series_key_t key = {{"order", 5}, &tag, 1, {"v", 1}};
	vg_series_id_t id;
	cr_assert_eq(vg_wtxn_series(txn, &key, &id, created), 0);
	return id;
}

/* Keys resolve to their ids whatever the order they come in: creation
 * order (where the store guesses the next series), backwards, at random,
 * across a dropped series and after guesses that were wrong. */
Test(index, series_resolve_in_any_order)
{
	char dir[256];
	vg_store_t *store = open_tmp(dir, sizeof dir);
	enum { N = 60 };
	vg_series_id_t ids[N];
	vg_wtxn_t *txn;
	bool created;
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int i = 0; i < N; i++) {
		ids[i] = order_series(txn, i, &created);
		cr_assert(created);
	}
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(vg_wtxn_drop_series(txn, ids[20], NULL), 0);
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	vg_test_rng_t rng = {11};
	for (int pass = 0; pass < 4; pass++) {
		cr_assert_eq(vg_store_write_begin(store, &txn), 0);
		for (int j = 0; j < N; j++) {
			int i = pass == 0 ? j : pass == 1 ? N - 1 - j : (int)vg_test_below(&rng, N);
			if (i == 20)
				continue;
			cr_assert_eq(order_series(txn, i, &created), ids[i], "pass %d, series %d",
				     pass, i);
			cr_assert(!created, "pass %d, series %d", pass, i);
		}
		cr_assert_eq(vg_wtxn_commit(txn), 0);
	}
	/* The dropped series comes back as a new one; the guess after it (the
	 * series created next, none) and before it still hold. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	cr_assert_eq(order_series(txn, 19, &created), ids[19]);
	vg_series_id_t again = order_series(txn, 20, &created);
	cr_assert(created);
	cr_assert_neq(again, ids[20]);
	cr_assert_eq(order_series(txn, 21, &created), ids[21]);
	cr_assert(!created);
	cr_assert_eq(vg_wtxn_commit(txn), 0);

	/* Most records share parts with a reference series' (series.c);
	 * dropping the references leaves every other series whole. */
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	int dropped = 0;
	for (int i = 0; i < N; i++)
		if (i != 20 && ids[i] % 16 == 0) {
			cr_assert_eq(vg_wtxn_drop_series(txn, ids[i], NULL), 0);
			ids[i] = 0;
			dropped++;
		}
	cr_assert_geq(dropped, 3);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_rtxn_t *rt;
	cr_assert_eq(vg_store_read_begin(store, &rt), 0);
	for (int i = 0; i < N; i++) {
		if (i == 20 || ids[i] == 0)
			continue;
		vg_series_desc_t d;
		cr_assert_eq(vg_rtxn_series_describe(rt, ids[i], &d), 0, "series %d", i);
		char host[16];
		snprintf(host, sizeof host, "h%d", i);
		cr_assert_eq(d.ntags, 1);
		cr_assert(d.measurement.len == 5 && !memcmp(d.measurement.data, "order", 5));
		cr_assert(d.field.len == 1 && d.field.data[0] == 'v');
		cr_assert(d.tags[0].value.len == strlen(host) &&
			  !memcmp(d.tags[0].value.data, host, strlen(host)), "series %d", i);
	}
	vg_rtxn_end(rt);
	cr_assert_eq(vg_store_write_begin(store, &txn), 0);
	for (int i = 0; i < N; i++)
		if (i != 20 && ids[i] != 0)
			cr_assert_eq(order_series(txn, i, &created), ids[i], "series %d", i);
	cr_assert_eq(vg_wtxn_commit(txn), 0);
	vg_store_close(store);
	vg_test_rmdir(dir);
}
