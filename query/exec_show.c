/*
 * exec_show.c — the SHOW statements: listings of the index and settings
 * as result sets of string (and, for STATS, float) columns without time.
 *
 * Listings come from the store in byte order already; only SHOW SERIES
 * builds and sorts its keys, because one tag set has a series per field and
 * the answer lists tag sets.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_duration.h"
#include "vg_error.h"

#include <stdlib.h>
#include <string.h>

static const vg_column_type_t string_types[2] = {VG_COLUMN_STRING, VG_COLUMN_STRING};

static vg_str_t cstr(const char *s)
{
	return (vg_str_t){s, strlen(s)};
}

static int store_error(vg_exec_t *x, int code, const char *what)
{
	if (code == VG_ENOMEM)
		return vg_query_error_set(x->err, code, "out of memory");
	if (x->err->message[0] && x->err->code == code)
		return code; /* already explained (a sink error keeps its code) */
	return vg_query_error_set(x->err, code, "%s failed: %s", what, vg_strerror(code));
}

static int measurements(vg_exec_t *x, vg_name_list_t *out)
{
	if (x->st->measurement.len)
		return vg_name_list_add(out, x->st->measurement);
	return vg_rtxn_list_measurements(x->txn, vg_name_list_add, out);
}

/* ---- one-column listings ---------------------------------------------------- */

typedef struct listing {
	vg_emit_t *emit;
	vg_str_t first; /* a constant first column ("" when one column) */
	bool two;
	vg_str_t constant; /* FIELD KEYS: fieldType */
	bool third;
} listing_t;

static int list_row(void *ctx, vg_str_t name)
{
	listing_t *l = ctx;
	vg_cell_t cells[2] = {{0}, {0}};
	if (l->two && !l->third) {
		cells[0].s = l->first;
		cells[1].s = name;
	} else if (l->two) {
		cells[0].s = name;
		cells[1].s = l->constant;
	} else {
		cells[0].s = name;
	}
	return vg_emit_row(l->emit, 0, cells);
}

static int show_measurements(vg_exec_t *x, vg_emit_t *e)
{
	vg_str_t col = cstr("name");
	vg_result_set_t set = {cstr("measurements"), NULL, 0, &col, string_types, 1, false};
	vg_emit_start(e, &set, 0);
	listing_t l = {e, {"", 0}, false, {"", 0}, false};
	int code = vg_rtxn_list_measurements(x->txn, list_row, &l);
	code = code ? code : vg_emit_end(e);
	return code ? store_error(x, code, "listing measurements") : 0;
}

/* TAG KEYS, TAG VALUES, FIELD KEYS: one set per measurement. */
static int show_per_measurement(vg_exec_t *x, vg_emit_t *e1, vg_emit_t *e2)
{
	vg_arena_t arena;
	vg_arena_init(&arena);
	vg_name_list_t ms = {&arena, NULL, 0, 0};
	int code = measurements(x, &ms);
	vg_statement_kind_t kind = x->st->kind;
	vg_str_t cols[2];
	size_t ncols = 1;
	if (kind == VG_STMT_SHOW_TAG_KEYS) {
		cols[0] = cstr("tagKey");
	} else if (kind == VG_STMT_SHOW_TAG_VALUES) {
		cols[0] = cstr("key");
		cols[1] = cstr("value");
		ncols = 2;
	} else {
		cols[0] = cstr("fieldKey");
		cols[1] = cstr("fieldType");
		ncols = 2;
	}
	vg_emit_t *e = ncols == 1 ? e1 : e2;
	for (size_t i = 0; code == 0 && i < ms.len; i++) {
		vg_result_set_t set = {ms.v[i], NULL, 0, cols, string_types, ncols, false};
		vg_emit_start(e, &set, 0);
		listing_t l = {e, x->st->tag_key, ncols == 2, cstr("float"),
		               kind == VG_STMT_SHOW_FIELD_KEYS};
		if (kind == VG_STMT_SHOW_TAG_KEYS)
			code = vg_rtxn_list_tag_keys(x->txn, ms.v[i], list_row, &l);
		else if (kind == VG_STMT_SHOW_TAG_VALUES)
			code =
			    vg_rtxn_list_tag_values(x->txn, ms.v[i], x->st->tag_key, list_row, &l);
		else
			code = vg_rtxn_list_field_keys(x->txn, ms.v[i], list_row, &l);
		code = code ? code : vg_emit_end(e);
	}
	vg_arena_release(&arena);
	return code ? store_error(x, code, "listing") : 0;
}

/* ---- SHOW SERIES ------------------------------------------------------------- */

/* Line-protocol escaping: ',' and ' ' always, '=' in tags. */
static int put_escaped(vg_buf_t *b, vg_str_t s, bool tag)
{
	for (size_t i = 0; i < s.len; i++) {
		char c = s.data[i];
		int code = 0;
		if (c == ',' || c == ' ' || (tag && c == '='))
			code = vg_buf_putc(b, '\\');
		code = code ? code : vg_buf_putc(b, (uint8_t)c);
		if (code)
			return code;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	const vg_str_t *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->data, y->data, n) : 0;
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int series_keys(vg_exec_t *x, vg_str_t m, vg_name_list_t *keys, vg_series_desc_t *desc)
{
	vg_idset_t ids = VG_IDSET_INIT;
	int code = vg_resolve_tag_cond(x, m, x->st->where, &ids);
	vg_buf_t b = VG_BUF_INIT;
	for (size_t i = 0; code == 0 && i < ids.len; i++) {
		code = vg_rtxn_series_describe(x->txn, ids.ids[i], desc);
		if (code == VG_ENOTFOUND) {
			code = 0;
			continue;
		}
		if (code)
			break;
		vg_buf_clear(&b);
		code = put_escaped(&b, desc->measurement, false);
		for (size_t t = 0; code == 0 && t < desc->ntags; t++) {
			code = vg_buf_putc(&b, ',');
			code = code ? code : put_escaped(&b, desc->tags[t].key, true);
			code = code ? code : vg_buf_putc(&b, '=');
			code = code ? code : put_escaped(&b, desc->tags[t].value, true);
		}
		code = code ? code : vg_name_list_add(keys, (vg_str_t){(const char *)b.data, b.len});
		if (code == 0 && (i & 1023) == 1023)
			code = vg_exec_check(x);
	}
	vg_buf_release(&b);
	vg_idset_release(&ids);
	return code;
}

static int show_series(vg_exec_t *x, vg_emit_t *e)
{
	vg_arena_t arena;
	vg_arena_init(&arena);
	vg_name_list_t ms = {&arena, NULL, 0, 0}, keys = {&arena, NULL, 0, 0};
	vg_series_desc_t *desc = vg_malloc(sizeof *desc);
	int code = desc ? measurements(x, &ms) : VG_ENOMEM;
	for (size_t i = 0; code == 0 && i < ms.len; i++)
		code = series_keys(x, ms.v[i], &keys, desc);
	vg_free(desc);
	if (code == 0 && keys.len) {
		qsort(keys.v, keys.len, sizeof *keys.v, cmp_str);
		vg_str_t col = cstr("key");
		vg_result_set_t set = {cstr("series"), NULL, 0, &col, string_types, 1, false};
		vg_emit_start(e, &set, 0);
		for (size_t i = 0; code == 0 && i < keys.len; i++) {
			if (i > 0 && cmp_str(&keys.v[i], &keys.v[i - 1]) == 0)
				continue;
			vg_cell_t cell = {false, 0, keys.v[i]};
			code = vg_emit_row(e, 0, &cell);
		}
		code = code ? code : vg_emit_end(e);
	}
	vg_arena_release(&arena);
	return code ? store_error(x, code, "listing series") : 0;
}

/* ---- SHOW STATS, SHOW RETENTION ------------------------------------------------ */

static int show_stats(vg_exec_t *x)
{
	static const vg_column_type_t types[2] = {VG_COLUMN_STRING, VG_COLUMN_FLOAT};
	vg_store_stats_t st;
	int code = vg_store_stats(x->store, &st);
	if (code)
		return store_error(x, code, "reading store statistics");
	vg_emit_t e;
	code = vg_emit_init(&e, x, 2, types, false);
	if (code)
		return code;
	vg_str_t cols[2] = {cstr("name"), cstr("value")};
	vg_result_set_t set = {cstr("stats"), NULL, 0, cols, types, 2, false};
	vg_emit_start(&e, &set, 0);
	const struct {
		const char *name;
		uint64_t value;
	} rows[] = {
	    {"series", st.series},
	    {"chunks", st.chunks},
	    {"chunk_points", st.chunk_points},
	    {"head_points", st.head_points},
	    {"file_bytes", st.file_bytes},
	    {"used_bytes", st.used_bytes},
	    {"map_bytes", st.map_bytes},
	};
	for (size_t i = 0; code == 0 && i < sizeof rows / sizeof rows[0]; i++) {
		vg_cell_t cells[2] = {{false, 0, cstr(rows[i].name)},
		                      {false, (double)rows[i].value, {"", 0}}};
		code = vg_emit_row(&e, 0, cells);
	}
	for (size_t i = 0; code == 0 && i < x->opts.nextra_stats; i++) {
		const vg_stat_pair_t *p = &x->opts.extra_stats[i];
		vg_cell_t cells[2] = {{false, 0, cstr(p->name ? p->name : "")},
		                      {false, p->value, {"", 0}}};
		code = vg_emit_row(&e, 0, cells);
	}
	code = code ? code : vg_emit_end(&e);
	vg_emit_release(&e);
	return code;
}

typedef struct retention_ctx {
	vg_emit_t *emit;
} retention_ctx_t;

static int retention_row(vg_emit_t *e, vg_str_t m, int64_t ns)
{
	char d[32] = "INF";
	if (ns > 0)
		vg_duration_format(ns, d, sizeof d);
	vg_cell_t cells[2] = {{false, 0, m}, {false, 0, cstr(d)}};
	return vg_emit_row(e, 0, cells);
}

static int retention_visit(void *ctx, vg_str_t m, int64_t ns)
{
	retention_ctx_t *r = ctx;
	if (m.len == 0)
		return 0; /* the global one is listed first */
	return retention_row(r->emit, m, ns);
}

static int show_retention(vg_exec_t *x, vg_emit_t *e)
{
	vg_str_t cols[2] = {cstr("measurement"), cstr("duration")};
	vg_result_set_t set = {cstr("retention"), NULL, 0, cols, string_types, 2, false};
	vg_emit_start(e, &set, 0);
	int64_t global = 0;
	int code = vg_rtxn_retention(x->txn, (vg_str_t){NULL, 0}, &global);
	if (code == VG_ENOTFOUND)
		code = 0, global = 0;
	code = code ? code : retention_row(e, (vg_str_t){"", 0}, global);
	retention_ctx_t r = {e};
	code = code ? code : vg_rtxn_list_retention(x->txn, retention_visit, &r);
	code = code ? code : vg_emit_end(e);
	return code ? store_error(x, code, "reading retention") : 0;
}

int vg_exec_show(vg_exec_t *x)
{
	if (x->st->kind == VG_STMT_SHOW_STATS)
		return show_stats(x);
	vg_emit_t e1, e2;
	int code = vg_emit_init(&e1, x, 1, string_types, false);
	if (code)
		return code;
	code = vg_emit_init(&e2, x, 2, string_types, false);
	if (code) {
		vg_emit_release(&e1);
		return code;
	}
	switch (x->st->kind) {
	case VG_STMT_SHOW_MEASUREMENTS:
		code = show_measurements(x, &e1);
		break;
	case VG_STMT_SHOW_SERIES:
		code = show_series(x, &e1);
		break;
	case VG_STMT_SHOW_RETENTION:
		code = show_retention(x, &e2);
		break;
	default:
		code = show_per_measurement(x, &e1, &e2);
		break;
	}
	vg_emit_release(&e1);
	vg_emit_release(&e2);
	return code;
}
