/*
 * test_encode.c — the hand-written result frames (protocol/encode.c) are
 * byte for byte what protobuf-c packs for the same Envelope, and decode
 * back to what was given.
 */
#include "vg_test.h"

#include "vg_proto.h"

#include <stdlib.h>
#include <string.h>

/* A fixed seed, so every run checks the same cases. */
static vg_test_rng_t rng = {0x9e3779b97f4a7c15ULL};

/* A random string of 0..max bytes (empty ones included: proto3 leaves an
 * empty singular string out but writes every element of a repeated one). */
static char *rand_text(size_t max, size_t *len)
{
	*len = vg_test_below(&rng, max + 1);
	char *s = malloc(*len + 1);
	cr_assert_not_null(s);
	for (size_t i = 0; i < *len; i++)
		s[i] = (char)('a' + vg_test_below(&rng, 26));
	s[*len] = 0;
	return s;
}

static void expect_same(const vg_buf_t *mine, const Vigil__V1__Envelope *env, const char *what)
{
	vg_buf_t theirs = VG_BUF_INIT;
	cr_assert_eq(vg_frame_append(&theirs, env), 0);
	cr_assert_eq(mine->len, theirs.len, "%s: %zu bytes, protobuf-c %zu", what, mine->len,
	             theirs.len);
	cr_assert(memcmp(mine->data, theirs.data, mine->len) == 0, "%s: bytes differ", what);
	/* And it decodes back. */
	Vigil__V1__Envelope *back = NULL;
	size_t used = 0;
	cr_assert_eq(vg_frame_parse(mine->data, mine->len, 1u << 30, &back, &used), 0, "%s", what);
	cr_assert_eq(used, mine->len);
	cr_assert_eq(back->body_case, env->body_case);
	vg_frame_free_envelope(back);
	vg_buf_release(&theirs);
}

Test(encode, result_sets_match_protobuf_c)
{
	for (int iter = 0; iter < 2000; iter++) {
		size_t ntags = vg_test_below(&rng, 5), ncols = vg_test_below(&rng, 6);
		vg_wire_text_t tags[10], cols[6], name;
		char *strs[32];
		size_t ns = 0;
		Vigil__V1__Tag tag_storage[5], *tagp[5];
		char *colnames[6];
		Vigil__V1__ColumnType types[6];
		size_t len;
		strs[ns++] = rand_text(12, &len);
		name = (vg_wire_text_t){strs[ns - 1], len};
		for (size_t i = 0; i < ntags; i++) {
			vigil__v1__tag__init(&tag_storage[i]);
			strs[ns++] = rand_text(8, &len);
			tags[2 * i] = (vg_wire_text_t){strs[ns - 1], len};
			tag_storage[i].key = strs[ns - 1];
			strs[ns++] = rand_text(8, &len);
			tags[2 * i + 1] = (vg_wire_text_t){strs[ns - 1], len};
			tag_storage[i].value = strs[ns - 1];
			tagp[i] = &tag_storage[i];
		}
		for (size_t i = 0; i < ncols; i++) {
			strs[ns++] = rand_text(10, &len);
			cols[i] = (vg_wire_text_t){strs[ns - 1], len};
			colnames[i] = strs[ns - 1];
			types[i] = (Vigil__V1__ColumnType)vg_test_below(&rng, 5);
		}
		uint64_t id = vg_test_below(&rng, 3) == 0 ? 0 : vg_test_next(&rng) >> vg_test_below(&rng, 64);
		bool has_time = vg_test_below(&rng, 2);
		vg_wire_result_set_t set = {name, tags, ntags, cols, types, ncols, has_time};
		vg_buf_t mine = VG_BUF_INIT;
		cr_assert_eq(vg_frame_append_result_set(&mine, id, &set), 0);

		Vigil__V1__ResultSet rs = VIGIL__V1__RESULT_SET__INIT;
		rs.name = strs[0];
		rs.n_tags = ntags;
		rs.tags = tagp;
		rs.n_columns = ncols;
		rs.columns = colnames;
		rs.n_types = ncols;
		rs.types = types;
		rs.has_time = has_time;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_RESULT_SET;
		env.result_set = &rs;
		expect_same(&mine, &env, "result set");
		vg_buf_release(&mine);
		for (size_t i = 0; i < ns; i++)
			free(strs[i]);
	}
}

Test(encode, result_rows_match_protobuf_c)
{
	for (int iter = 0; iter < 2000; iter++) {
		size_t nrows = 1 + vg_test_below(&rng, vg_test_below(&rng, 4) ? 8 : 300), ncols = vg_test_below(&rng, 5);
		bool has_times = vg_test_below(&rng, 4) != 0;
		int64_t *times = malloc(nrows * sizeof *times);
		cr_assert_not_null(times);
		for (size_t r = 0; r < nrows; r++)
			times[r] = (int64_t)vg_test_next(&rng);
		vg_wire_column_t wcols[5];
		Vigil__V1__Column colv[5], *colp[5];
		double *floats[5] = {0};
		uint8_t *nulls[5] = {0};
		vg_wire_text_t *texts[5] = {0};
		char **cstrs[5] = {0};
		for (size_t c = 0; c < ncols; c++) {
			vigil__v1__column__init(&colv[c]);
			colp[c] = &colv[c];
			wcols[c] = (vg_wire_column_t){NULL, NULL, NULL};
			if (vg_test_below(&rng, 3)) {
				floats[c] = malloc(nrows * sizeof *floats[c]);
				cr_assert_not_null(floats[c]);
				for (size_t r = 0; r < nrows; r++) {
					uint64_t bits = vg_test_next(&rng);
					memcpy(&floats[c][r], &bits, 8);
				}
				wcols[c].floats = floats[c];
				colv[c].n_floats = nrows;
				colv[c].floats = floats[c];
			} else {
				texts[c] = malloc(nrows * sizeof *texts[c]);
				cstrs[c] = malloc(nrows * sizeof *cstrs[c]);
				cr_assert(texts[c] && cstrs[c]);
				for (size_t r = 0; r < nrows; r++) {
					size_t len;
					cstrs[c][r] = rand_text(6, &len);
					texts[c][r] = (vg_wire_text_t){cstrs[c][r], len};
				}
				wcols[c].strings = texts[c];
				colv[c].n_strings = nrows;
				colv[c].strings = cstrs[c];
			}
			if (vg_test_below(&rng, 2)) {
				size_t nb = (nrows + 7) / 8;
				nulls[c] = malloc(nb);
				cr_assert_not_null(nulls[c]);
				for (size_t b = 0; b < nb; b++)
					nulls[c][b] = (uint8_t)vg_test_next(&rng);
				wcols[c].nulls = nulls[c];
				colv[c].nulls.len = nb;
				colv[c].nulls.data = nulls[c];
			}
		}
		uint64_t id = vg_test_below(&rng, 3) == 0 ? 0 : vg_test_next(&rng) >> vg_test_below(&rng, 64);
		vg_buf_t mine = VG_BUF_INIT;
		cr_assert_eq(vg_frame_append_result_rows(&mine, id, has_times ? times : NULL, wcols,
		                                         ncols, nrows),
		             0);
		Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
		if (has_times) {
			rows.n_times = nrows;
			rows.times = times;
		}
		rows.n_columns = ncols;
		rows.columns = colp;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_RESULT_ROWS;
		env.result_rows = &rows;
		expect_same(&mine, &env, "result rows");
		vg_buf_release(&mine);
		for (size_t c = 0; c < ncols; c++) {
			free(floats[c]);
			free(nulls[c]);
			for (size_t r = 0; cstrs[c] && r < nrows; r++)
				free(cstrs[c][r]);
			free(cstrs[c]);
			free(texts[c]);
		}
		free(times);
	}
}

/* Appending keeps what the buffer held before. */
Test(encode, appends_after_existing_bytes)
{
	vg_buf_t out = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&out, "xyz", 3), 0);
	vg_wire_text_t col = {"time", 4};
	Vigil__V1__ColumnType type = VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME;
	vg_wire_result_set_t set = {{"cpu", 3}, NULL, 0, &col, &type, 1, true};
	cr_assert_eq(vg_frame_append_result_set(&out, 7, &set), 0);
	cr_assert_eq(memcmp(out.data, "xyz", 3), 0);
	Vigil__V1__Envelope *env = NULL;
	size_t used;
	cr_assert_eq(vg_frame_parse(out.data + 3, out.len - 3, 1u << 20, &env, &used), 0);
	cr_assert_eq(used, out.len - 3);
	cr_assert_eq(env->id, 7);
	cr_assert_str_eq(env->result_set->name, "cpu");
	cr_assert_eq(env->result_set->n_columns, 1);
	cr_assert_str_eq(env->result_set->columns[0], "time");
	cr_assert(env->result_set->has_time);
	vg_frame_free_envelope(env);
	vg_buf_release(&out);
}
