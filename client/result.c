/*
 * result.c — query answers: ResultSet and ResultRows messages turned into
 * vg_result_set_t, and the accessors of vigil.h.
 *
 * A set is stored column by column, the way the rows arrive: one array of
 * times, and per other column an array of doubles (FLOAT, INTEGER) or of
 * offsets into one string arena (STRING), plus a null bitmap.  A buffered
 * answer appends every ResultRows block to its set; a streamed answer
 * (vg_client_query_stream) keeps one set and drops its rows before each
 * block, so memory stays at one block whatever the size of the answer.
 *
 * The wire form of a block (vigil.v1.ResultRows, docs/protocol.md): `times`
 * holds the time column when the set has one, and `columns` the other
 * columns in ResultSet order.  The block has n rows: len(times) when the
 * set has a time column, else the length of the first column.  Every column
 * holds exactly n entries, in `floats` or `strings` by type, and `nulls` is
 * a bitmap, bit i (LSB of byte i/8 first) set when row i is empty, whose
 * entry is then a placeholder; a short bitmap means the missing bits are 0.
 * Anything else — a column count that differs from the header, a column of
 * another length, values of the wrong kind, a type this version does not
 * know — is VG_EPROTO, and nothing is appended.
 *
 * Every count comes from the network, so each is checked against the
 * others before anything is sized from it, and a failed append leaves the
 * set exactly as it was.
 */
#include "client_int.h"

#include "vg_alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int proto_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int proto_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return VG_EPROTO;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static bool bit_is_set(const uint8_t *bits, size_t nbytes, size_t i)
{
	return i / 8 < nbytes && (bits[i / 8] >> (i % 8)) & 1;
}

/* Clears bits [from, from + n). */
static void clear_bits(uint8_t *bits, size_t from, size_t n)
{
	size_t i = from, end = from + n;
	for (; i < end && i % 8; i++)
		bits[i / 8] &= (uint8_t)~(1u << (i % 8));
	if (end - i >= 8) {
		memset(bits + i / 8, 0, (end - i) / 8);
		i += (end - i) / 8 * 8;
	}
	for (; i < end; i++)
		bits[i / 8] &= (uint8_t)~(1u << (i % 8));
}

static void bit_put(uint8_t *bits, size_t i, bool on)
{
	uint8_t mask = (uint8_t)(1u << (i % 8));
	if (on)
		bits[i / 8] |= mask;
	else
		bits[i / 8] &= (uint8_t)~mask;
}

/* ---- set headers ------------------------------------------------------------ */

static const char *type_name(Vigil__V1__ColumnType t)
{
	switch (t) {
	case VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME:
		return "time";
	case VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_FLOAT:
		return "float";
	case VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_STRING:
		return "string";
	case VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_INTEGER:
		return "integer";
	default:
		return "unknown";
	}
}

static int check_header(const Vigil__V1__ResultSet *rs, char *err, size_t errlen)
{
	if (rs->n_types != rs->n_columns)
		return proto_fail(err, errlen, "result set '%s': %zu column types for %zu columns",
		                  str_or_empty(rs->name), rs->n_types, rs->n_columns);
	if (rs->has_time &&
	    (rs->n_columns == 0 || rs->types[0] != VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME))
		return proto_fail(err, errlen,
		                  "result set '%s': has_time is set but column 0 is not a time "
		                  "column",
		                  str_or_empty(rs->name));
	for (size_t c = rs->has_time; c < rs->n_columns; c++) {
		Vigil__V1__ColumnType t = rs->types[c];
		if (t != VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_FLOAT &&
		    t != VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_STRING &&
		    t != VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_INTEGER)
			return proto_fail(err, errlen,
			                  "result set '%s': column %zu '%s' has type %d (%s), "
			                  "which cannot hold values",
			                  str_or_empty(rs->name), c, str_or_empty(rs->columns[c]),
			                  (int)t, type_name(t));
	}
	return 0;
}

int vg_result_set_init(vg_result_set_t *s, const Vigil__V1__ResultSet *rs, char *err, size_t errlen)
{
	memset(s, 0, sizeof *s);
	int rc = check_header(rs, err, errlen);
	if (rc)
		return rc;
	size_t nstr = 1 + 2 * rs->n_tags + rs->n_columns;
	size_t total = strlen(str_or_empty(rs->name)) + 1;
	for (size_t i = 0; i < rs->n_tags; i++)
		total += strlen(str_or_empty(rs->tags[i]->key)) +
		         strlen(str_or_empty(rs->tags[i]->value)) + 2;
	for (size_t c = 0; c < rs->n_columns; c++)
		total += strlen(str_or_empty(rs->columns[c])) + 1;

	s->text = vg_malloc(total);
	s->names = vg_reallocarray(NULL, nstr - 1, sizeof *s->names);
	s->types = vg_reallocarray(NULL, rs->n_columns, sizeof *s->types);
	s->cols = vg_calloc(rs->n_columns, sizeof *s->cols);
	if (!s->text || !s->names || !s->types || !s->cols) {
		vg_result_set_release(s);
		return VG_ENOMEM;
	}
	/* The name first (vg_result_name returns text itself), then tag keys
	 * and values alternately, then column names, each indexed by names[]. */
	char *p = s->text;
	size_t len = strlen(str_or_empty(rs->name)) + 1;
	memcpy(p, str_or_empty(rs->name), len);
	p += len;
	for (size_t i = 0; i < nstr - 1; i++) {
		const char *from;
		if (i < 2 * rs->n_tags)
			from = i % 2 ? rs->tags[i / 2]->value : rs->tags[i / 2]->key;
		else
			from = rs->columns[i - 2 * rs->n_tags];
		from = str_or_empty(from);
		len = strlen(from) + 1;
		memcpy(p, from, len);
		s->names[i] = p;
		p += len;
	}
	s->ntags = rs->n_tags;
	s->ncols = rs->n_columns;
	for (size_t c = 0; c < s->ncols; c++)
		s->types[c] = (vg_column_type_t)rs->types[c];
	s->has_time = rs->has_time;
	return 0;
}

void vg_result_set_release(vg_result_set_t *s)
{
	if (s->cols) {
		for (size_t c = 0; c < s->ncols; c++) {
			vg_free(s->cols[c].floats);
			vg_free(s->cols[c].offs);
			vg_free(s->cols[c].nulls);
		}
	}
	vg_free(s->cols);
	vg_free(s->types);
	vg_free(s->names);
	vg_free(s->text);
	vg_free(s->times);
	vg_buf_release(&s->strings);
	memset(s, 0, sizeof *s);
}

/* ---- rows ------------------------------------------------------------------- */

static const char *column_name(const vg_result_set_t *s, size_t c)
{
	return s->names[2 * s->ntags + c];
}

/* Rows in a block of a set without a time column: its first column's. */
static size_t rows_without_time(const vg_result_set_t *s, const Vigil__V1__ResultRows *rows)
{
	if (rows->n_columns == 0)
		return 0;
	const Vigil__V1__Column *col = rows->columns[0];
	return s->ncols && s->types[0] == VG_COLUMN_STRING ? col->n_strings : col->n_floats;
}

/* Validates every column of the block.  Allocates nothing. */
static int check_rows(const vg_result_set_t *s, const Vigil__V1__ResultRows *rows, size_t n,
                      char *err, size_t errlen)
{
	size_t data_cols = s->ncols - s->has_time;
	if (rows->n_columns != data_cols && !(n == 0 && rows->n_columns == 0))
		return proto_fail(err, errlen, "result rows: %zu columns for a set of %zu",
		                  rows->n_columns, data_cols);
	for (size_t j = 0; j < rows->n_columns; j++) {
		size_t c = j + s->has_time;
		const Vigil__V1__Column *col = rows->columns[j];
		bool strings = s->types[c] == VG_COLUMN_STRING;
		size_t have = strings ? col->n_strings : col->n_floats;
		size_t other = strings ? col->n_floats : col->n_strings;
		if (other)
			return proto_fail(err, errlen,
			                  "result rows: column '%s' of type %s holds %s values",
			                  column_name(s, c), strings ? "string" : "float",
			                  strings ? "float" : "string");
		if (have != n)
			return proto_fail(err, errlen,
			                  "result rows: column '%s' has %zu values for %zu rows",
			                  column_name(s, c), have, n);
	}
	return 0;
}

/* Makes room for `need` rows in every column. */
static int reserve_rows(vg_result_set_t *s, size_t need)
{
	if (need <= s->cap)
		return 0;
	size_t cap = s->cap < 32 ? 64 : s->cap * 2;
	if (cap < need)
		cap = need;
	if (s->has_time) {
		int64_t *t = vg_reallocarray(s->times, cap, sizeof *t);
		if (!t)
			return VG_ENOMEM;
		s->times = t;
	}
	size_t old_bytes = (s->cap + 7) / 8, bytes = (cap + 7) / 8;
	for (size_t c = s->has_time; c < s->ncols; c++) {
		vg_result_column_t *col = &s->cols[c];
		if (s->types[c] == VG_COLUMN_STRING) {
			size_t *o = vg_reallocarray(col->offs, cap, sizeof *o);
			if (!o)
				return VG_ENOMEM;
			col->offs = o;
		} else {
			double *f = vg_reallocarray(col->floats, cap, sizeof *f);
			if (!f)
				return VG_ENOMEM;
			col->floats = f;
		}
		uint8_t *nb = vg_realloc(col->nulls, bytes);
		if (!nb)
			return VG_ENOMEM;
		memset(nb + old_bytes, 0, bytes - old_bytes);
		col->nulls = nb;
	}
	/* Only now: a column grown above is harmlessly larger until then. */
	s->cap = cap;
	return 0;
}

int vg_result_set_append(vg_result_set_t *s, const Vigil__V1__ResultRows *rows, char *err,
                         size_t errlen)
{
	size_t n;
	if (s->has_time) {
		n = rows->n_times;
	} else {
		if (rows->n_times)
			return proto_fail(err, errlen,
			                  "result rows: %zu times for a set without a time column",
			                  rows->n_times);
		n = rows_without_time(s, rows);
	}
	if (n == 0)
		return rows->n_columns == 0 || rows->n_columns == s->ncols - s->has_time
		           ? 0
		           : proto_fail(err, errlen, "result rows: %zu columns for a set of %zu",
		                        rows->n_columns, s->ncols - s->has_time);
	int rc = check_rows(s, rows, n, err, errlen);
	if (!rc && n > SIZE_MAX - s->nrows)
		rc = proto_fail(err, errlen, "result rows: too many rows");
	if (!rc)
		rc = reserve_rows(s, s->nrows + n);
	size_t strings_len = s->strings.len;
	for (size_t j = 0; j < rows->n_columns && !rc; j++) {
		size_t c = j + s->has_time;
		const Vigil__V1__Column *col = rows->columns[j];
		vg_result_column_t *to = &s->cols[c];
		if (s->types[c] != VG_COLUMN_STRING && col->nulls.len == 0) {
			/* The usual block: floats, none empty — copied whole. */
			memcpy(to->floats + s->nrows, col->floats, n * sizeof *to->floats);
			clear_bits(to->nulls, s->nrows, n);
			continue;
		}
		for (size_t i = 0; i < n && !rc; i++) {
			size_t row = s->nrows + i;
			bool null = bit_is_set(col->nulls.data, col->nulls.len, i);
			bit_put(to->nulls, row, null);
			if (s->types[c] != VG_COLUMN_STRING) {
				to->floats[row] = null ? 0 : col->floats[i];
			} else if (!null) {
				const char *str = str_or_empty(col->strings[i]);
				to->offs[row] = s->strings.len;
				rc = vg_buf_append(&s->strings, str, strlen(str) + 1);
			}
		}
	}
	if (rc) {
		s->strings.len = strings_len;
		return rc;
	}
	if (s->has_time)
		memcpy(s->times + s->nrows, rows->times, n * sizeof *s->times);
	s->nrows += n;
	return 0;
}

void vg_result_set_keep_rows(vg_result_set_t *s, const bool *keep)
{
	size_t to = 0;
	for (size_t from = 0; from < s->nrows; from++) {
		if (!keep[from])
			continue;
		if (to != from) {
			if (s->has_time)
				s->times[to] = s->times[from];
			for (size_t c = s->has_time; c < s->ncols; c++) {
				vg_result_column_t *col = &s->cols[c];
				bool null = bit_is_set(col->nulls, (s->cap + 7) / 8, from);
				bit_put(col->nulls, to, null);
				if (s->types[c] != VG_COLUMN_STRING)
					col->floats[to] = col->floats[from];
				else if (!null) /* a null string cell has no offset */
					col->offs[to] = col->offs[from];
			}
		}
		to++;
	}
	/* Rows past the end keep stale null bits: reserve_rows() only clears
	 * bytes it adds, and appending rewrites every bit it uses. */
	s->nrows = to;
}

void vg_result_set_drop_rows(vg_result_set_t *s)
{
	s->first_row += s->nrows;
	s->nrows = 0;
	vg_buf_clear(&s->strings);
}

/* ---- answers ---------------------------------------------------------------- */

int vg_result_new(vg_result_t **out)
{
	*out = vg_calloc(1, sizeof **out);
	return *out ? 0 : VG_ENOMEM;
}

int vg_result_add_set(vg_result_t *r, const Vigil__V1__ResultSet *rs, vg_result_set_t **set,
                      char *err, size_t errlen)
{
	if (r->nsets == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4;
		vg_result_set_t **sets = vg_reallocarray(r->sets, cap, sizeof *sets);
		if (!sets)
			return VG_ENOMEM;
		r->sets = sets;
		r->cap = cap;
	}
	vg_result_set_t *s = vg_malloc(sizeof *s);
	if (!s)
		return VG_ENOMEM;
	int rc = vg_result_set_init(s, rs, err, errlen);
	if (rc) {
		vg_free(s);
		return rc;
	}
	r->sets[r->nsets++] = s;
	*set = s;
	return 0;
}

void vg_result_free(vg_result_t *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nsets; i++) {
		vg_result_set_release(r->sets[i]);
		vg_free(r->sets[i]);
	}
	vg_free(r->sets);
	vg_free(r);
}

size_t vg_result_set_count(const vg_result_t *r)
{
	return r ? r->nsets : 0;
}

const vg_result_set_t *vg_result_set(const vg_result_t *r, size_t i)
{
	return r && i < r->nsets ? r->sets[i] : NULL;
}

void vg_result_stats(const vg_result_t *r, vg_query_stats_t *out)
{
	if (r)
		*out = r->stats;
	else
		memset(out, 0, sizeof *out);
}

/* ---- set accessors ---------------------------------------------------------- */

const char *vg_result_name(const vg_result_set_t *s)
{
	return s && s->text ? s->text : "";
}

size_t vg_result_tag_count(const vg_result_set_t *s)
{
	return s ? s->ntags : 0;
}

const char *vg_result_tag_key(const vg_result_set_t *s, size_t i)
{
	return s && i < s->ntags ? s->names[2 * i] : "";
}

const char *vg_result_tag_value(const vg_result_set_t *s, size_t i)
{
	return s && i < s->ntags ? s->names[2 * i + 1] : "";
}

size_t vg_result_column_count(const vg_result_set_t *s)
{
	return s ? s->ncols : 0;
}

const char *vg_result_column_name(const vg_result_set_t *s, size_t col)
{
	return s && col < s->ncols ? column_name(s, col) : "";
}

vg_column_type_t vg_result_column_type(const vg_result_set_t *s, size_t col)
{
	return s && col < s->ncols ? s->types[col] : (vg_column_type_t)0;
}

bool vg_result_has_time(const vg_result_set_t *s)
{
	return s && s->has_time;
}

size_t vg_result_row_count(const vg_result_set_t *s)
{
	return s ? s->nrows : 0;
}

uint64_t vg_result_first_row(const vg_result_set_t *s)
{
	return s ? s->first_row : 0;
}

int64_t vg_result_time(const vg_result_set_t *s, size_t row)
{
	return s && s->has_time && row < s->nrows ? s->times[row] : 0;
}

/* The value column `col` of `s` at `row`, or NULL if out of range or time. */
static const vg_result_column_t *data_column(const vg_result_set_t *s, size_t row, size_t col)
{
	if (!s || row >= s->nrows || col >= s->ncols || (s->has_time && col == 0))
		return NULL;
	return &s->cols[col];
}

bool vg_result_is_null(const vg_result_set_t *s, size_t row, size_t col)
{
	if (s && s->has_time && col == 0 && row < s->nrows)
		return false;
	const vg_result_column_t *c = data_column(s, row, col);
	return !c || bit_is_set(c->nulls, (s->cap + 7) / 8, row);
}

bool vg_result_float(const vg_result_set_t *s, size_t row, size_t col, double *out)
{
	const vg_result_column_t *c = data_column(s, row, col);
	if (!c || s->types[col] == VG_COLUMN_STRING || bit_is_set(c->nulls, (s->cap + 7) / 8, row))
		return false;
	*out = c->floats[row];
	return true;
}

const char *vg_result_string(const vg_result_set_t *s, size_t row, size_t col)
{
	const vg_result_column_t *c = data_column(s, row, col);
	if (!c || s->types[col] != VG_COLUMN_STRING || bit_is_set(c->nulls, (s->cap + 7) / 8, row))
		return NULL;
	return (const char *)s->strings.data + c->offs[row];
}
