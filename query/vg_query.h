/*
 * vg_query.h — the Vigil query language: parsing statements and executing
 * them against a store.
 *
 * The language is InfluxQL-like (SPEC.md "Query language"):
 *
 *   SELECT <col>[, ...] FROM <m> [WHERE <cond>]
 *     [GROUP BY time(<dur>[, <offset>])[, <tag>|*]...]
 *     [FILL(none|null|previous|linear|<number>)] [ORDER BY time [ASC|DESC]] [LIMIT <n>]
 *   SUBSCRIBE <select> [SINCE <time>] [LATENESS <dur>]
 *   CREATE CONTINUOUS QUERY <name> AS SELECT ... INTO <m> FROM ... GROUP BY time(<dur>)...
 *   DROP CONTINUOUS QUERY <name>        SHOW CONTINUOUS QUERIES
 *   SHOW MEASUREMENTS | SERIES [FROM m] [WHERE tag cond] | TAG KEYS [FROM m]
 *     | TAG VALUES [FROM m] WITH KEY = <tag> | FIELD KEYS [FROM m] | STATS | RETENTION
 *   DELETE FROM <m> [WHERE <tag and time cond>]
 *   SET RETENTION <dur|INF> [ON <m>]
 *
 * Two steps, so that a statement can be checked once and run many times (a
 * continuous query) or inspected without running (SUBSCRIBE):
 *
 *   vg_query_parse()  text -> vg_statement_t, or a positioned error.  Pure:
 *                     no store, no clock (now() is kept symbolic).
 *   vg_query_exec()   runs a statement against a vg_store_t in one read
 *                     transaction (DELETE and SET RETENTION in write
 *                     transactions), streaming results to a caller's sink.
 *
 * Lexical rules: keywords are case-insensitive; identifiers are
 * [A-Za-z_][A-Za-z0-9_.:-]* or double-quoted ("my field", escapes \" \\ \'
 * \n \t \r); strings are single-quoted with the same escapes; regexes are
 * /.../ (POSIX extended, unanchored; \/ stands for a slash, every other
 * backslash sequence goes to regcomp unchanged; at most 1024 bytes, no
 * back-references, no repetition right after another, counts up to 1000
 * and at most 10000 atoms once repetitions are expanded, so that regcomp's
 * memory stays bounded); durations are an integer
 * and a unit ns|us|ms|s|m|h|d|w; times are integer ns since the epoch, a
 * duration (the same number of ns), an RFC 3339 string ('2026-01-01T00:00:00Z',
 * fractional seconds up to 9 digits, Z or +hh:mm; a bare date means
 * midnight UTC), or now(), each optionally followed by + or - durations.
 *
 * Semantics decided here where SPEC.md is silent (the executor and the
 * tests follow exactly these):
 *   - A WHERE leaf is a tag condition when its right side is a string or a
 *     regex, a field condition when it is a number, a time condition when
 *     its left side is `time`.  Time conditions may only be joined by AND
 *     (a parse error otherwise); together they give the scan range.
 *   - Field conditions look at rows: the points of one tag set's fields at
 *     one timestamp.  A comparison with a field absent at that timestamp is
 *     false; comparisons follow IEEE 754 (NaN != x is true, all else false).
 *   - A raw row is output only if at least one selected field has a point at
 *     its timestamp; absent fields are null.  Rows of different tag sets in
 *     one group are merged by time; equal times go in tag-set order.
 *   - Tag-set order: the tag sets' sorted key=value lists compared pair by
 *     pair (key bytes, then value bytes); a shorter list that is a prefix of
 *     a longer one comes first.  Ties between tag sets in first()/last()
 *     (equal times) go to the tag set that comes first in this order.
 *   - Aggregates skip NaN.  In a bucket with points of the field count is
 *     their non-NaN count (possibly 0); every other aggregate of a bucket
 *     with no non-NaN value is null, as are stddev with fewer than 2 values,
 *     percentile out of range, and rate with fewer than 2 values or first
 *     and last at the same time.  rate(f[, d]) = (last - first) /
 *     (last_time - first_time) * d (d defaults to 1s).
 *   - A bucket is output (with FILL(none)) when any selected field has a
 *     point in it.  Fills act on null cells, column by column, in output
 *     order: null leaves them, <number> sets them, previous copies the
 *     column's last non-null value in output order, linear interpolates by
 *     time between the column's neighbouring non-null values (cells without
 *     both neighbours stay null).  FILL other than none needs a lower time
 *     bound; without an upper bound the range ends at now (inclusive), and
 *     points after now are not read.
 *   - LIMIT 0 means no limit.  Column names: alias, else <agg>_<field>, else
 *     the field; a repeated name gets _1, _2, ... appended.  SELECT * and
 *     <agg>(*) expand to every field key of the measurement, sorted; a
 *     field no series has gives an all-null column.  `time` in a SELECT
 *     list is accepted and ignored (the time column is always there).
 *     GROUP BY * groups by every tag key of the measurement; a tag a series
 *     lacks groups as ''.
 *
 * Threads: parsing and execution keep no global state; a statement is
 * immutable once parsed and may be executed by several threads at once.
 *
 * Memory during execution is bounded: results leave in blocks of max_rows,
 * each open cursor holds at most one decoded chunk, and what must be held
 * whole is counted against max_values (VG_ELIMIT past it): the values of a
 * median/percentile bucket, rows waiting in FILL(linear) for a value, and
 * the bucket table of a GROUP BY time over more than max_open series.
 */
#ifndef VG_QUERY_H
#define VG_QUERY_H

#include "vg_store.h"

#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vg_statement vg_statement_t;

/* ---- errors ---------------------------------------------------------- */

#define VG_QUERY_ERROR_MAX 256

/*
 * What went wrong, for people.  `code` repeats the return code.  For errors
 * tied to a place in the statement (VG_ESYNTAX always, VG_EINVAL from the
 * parser) line and column are 1-based (columns count characters, not
 * bytes) and `message` starts with "line L, column C: ", e.g.
 * "line 1, column 23: expected FROM, found 'FORM'"; otherwise line and
 * column are 0.  message is always NUL-terminated.
 */
typedef struct vg_query_error {
	int code;
	uint32_t line;
	uint32_t column;
	char message[VG_QUERY_ERROR_MAX];
} vg_query_error_t;

/* ---- parsing --------------------------------------------------------- */

/*
 * Parses one statement from [text, text+len) (need not be NUL-terminated;
 * an optional trailing ';' and whitespace are allowed).  Regexes are
 * compiled here, once.
 *
 * Returns 0 and *out (the caller frees it with vg_query_free(); it owns
 * copies of every name, so `text` may be freed at once), or VG_ESYNTAX (the
 * text does not follow the grammar), VG_EINVAL (it does, but means nothing
 * valid: a bad regex, an unknown function, aggregates mixed with raw
 * fields, time under OR, a duration out of range, a name over 255 bytes,
 * more than 256 conditions or parentheses nested deeper than 32, ...),
 * VG_ENOMEM.  On error *out is NULL and `err` (may be NULL) says where and
 * why.
 */
int vg_query_parse(const char *text, size_t len, vg_statement_t **out, vg_query_error_t *err);

/* Frees a statement and every view obtained from it; NULL is a no-op. */
void vg_query_free(vg_statement_t *st);

typedef enum vg_statement_kind {
	VG_STMT_SELECT = 1,
	VG_STMT_SUBSCRIBE,
	VG_STMT_CREATE_CQ,
	VG_STMT_DROP_CQ,
	VG_STMT_SHOW_CQS,
	VG_STMT_SHOW_MEASUREMENTS,
	VG_STMT_SHOW_SERIES,
	VG_STMT_SHOW_TAG_KEYS,
	VG_STMT_SHOW_TAG_VALUES,
	VG_STMT_SHOW_FIELD_KEYS,
	VG_STMT_SHOW_STATS,
	VG_STMT_SHOW_RETENTION,
	VG_STMT_DELETE,
	VG_STMT_SET_RETENTION,
} vg_statement_kind_t;

vg_statement_kind_t vg_statement_kind(const vg_statement_t *st);
/* "SELECT", "SHOW SERIES", ... (static). */
const char *vg_statement_kind_name(vg_statement_kind_t kind);

/* ---- the parsed SELECT, read-only ------------------------------------ */

/* A time as written: an absolute ns value, or now() plus an offset. */
typedef struct vg_time_expr {
	bool now; /* true: now() + ns; false: ns */
	int64_t ns;
} vg_time_expr_t;

/* The start of the GROUP BY time bucket holding t: buckets are
 * [k*interval + offset, (k+1)*interval + offset), offset in [0, interval);
 * saturates at INT64_MIN. */
int64_t vg_bucket_start(int64_t t, int64_t interval, int64_t offset);

/* The value of `t` when now() is now_ns: 0, or VG_ELIMIT if it overflows. */
int vg_time_expr_eval(const vg_time_expr_t *t, int64_t now_ns, int64_t *out);

typedef enum vg_cond_kind {
	VG_COND_AND = 1, /* left AND right */
	VG_COND_OR,      /* left OR right */
	VG_COND_TAG,     /* name op value (EQ NE) or name op /regex/ (RE NRE) */
	VG_COND_FIELD,   /* name op number (EQ NE LT LE GT GE) */
	VG_COND_TIME,    /* time op time (EQ LT LE GT GE) */
} vg_cond_kind_t;

typedef enum vg_cmp_op {
	VG_CMP_EQ = 1,
	VG_CMP_NE,
	VG_CMP_LT,
	VG_CMP_LE,
	VG_CMP_GT,
	VG_CMP_GE,
	VG_CMP_RE,
	VG_CMP_NRE,
} vg_cmp_op_t;

/* One node of a WHERE tree.  Tag EQ/NE against '' follow the store's
 * matchers: = '' matches series without the tag, != '' those with it. */
typedef struct vg_cond {
	vg_cond_kind_t kind;
	vg_cmp_op_t op;             /* leaves */
	const struct vg_cond *left; /* AND/OR */
	const struct vg_cond *right;
	vg_str_t name;         /* TAG: tag key; FIELD: field key */
	vg_str_t value;        /* TAG: the string, or the regex source */
	const regex_t *regex;  /* TAG RE/NRE: compiled (REG_EXTENDED) */
	double number;         /* FIELD */
	vg_time_expr_t time;   /* TIME */
	uint32_t line, column; /* where the leaf starts */
} vg_cond_t;

typedef enum vg_agg_fn {
	VG_AGG_NONE = 0, /* a raw field */
	VG_AGG_COUNT,
	VG_AGG_SUM,
	VG_AGG_MIN,
	VG_AGG_MAX,
	VG_AGG_MEAN,
	VG_AGG_FIRST,
	VG_AGG_LAST,
	VG_AGG_SPREAD,
	VG_AGG_STDDEV,
	VG_AGG_MEDIAN,
	VG_AGG_PERCENTILE,
	VG_AGG_RATE,
} vg_agg_fn_t;

/* "count", "mean", ... ("" for VG_AGG_NONE; static). */
const char *vg_agg_fn_name(vg_agg_fn_t fn);

typedef struct vg_select_column {
	vg_agg_fn_t agg;
	bool wildcard;        /* `*` or <agg>(*): every field key, sorted */
	vg_str_t field;       /* empty when wildcard */
	double percentile;    /* PERCENTILE: p in [0, 100] */
	int64_t rate_unit_ns; /* RATE: per this duration (default 1s) */
	vg_str_t alias;       /* empty if none (never with wildcard) */
	vg_str_t name;        /* output name: alias, <agg>_<field> or field;
	                       * empty when wildcard (expanded at execution) */
} vg_select_column_t;

typedef enum vg_fill_mode {
	VG_FILL_NONE = 0,
	VG_FILL_NULL,
	VG_FILL_PREVIOUS,
	VG_FILL_LINEAR,
	VG_FILL_VALUE,
} vg_fill_mode_t;

/*
 * A parsed SELECT.  Every pointer and view in it (and in the vg_cond_t
 * tree) is owned by the statement and valid until vg_query_free().
 */
typedef struct vg_select {
	vg_str_t measurement;
	vg_str_t into;                     /* CREATE CONTINUOUS QUERY only; else empty */
	const vg_select_column_t *columns; /* ncolumns >= 1 */
	size_t ncolumns;
	bool aggregate;             /* all columns are aggregates (never mixed) */
	const vg_cond_t *where;     /* NULL: none */
	int64_t interval_ns;        /* GROUP BY time(d): d; 0 if absent */
	int64_t offset_ns;          /* normalised to [0, interval_ns) */
	const vg_str_t *group_tags; /* GROUP BY tags in written order */
	size_t ngroup_tags;
	bool group_all_tags; /* GROUP BY * */
	vg_fill_mode_t fill;
	double fill_value; /* VG_FILL_VALUE */
	bool order_desc;
	uint64_t limit; /* 0: none */
} vg_select_t;

/* The SELECT of a SELECT, SUBSCRIBE or CREATE CONTINUOUS QUERY statement;
 * NULL for other kinds.  Owned by st. */
const vg_select_t *vg_statement_select(const vg_statement_t *st);

typedef struct vg_subscribe_view {
	const vg_select_t *select;
	bool has_since;
	vg_time_expr_t since;
	int64_t lateness_ns; /* 0 if not given */
} vg_subscribe_view_t;

/* For SUBSCRIBE: 0 and *view (its pointers owned by st); else VG_EINVAL. */
int vg_statement_subscribe(const vg_statement_t *st, vg_subscribe_view_t *view);

/* For CREATE/DROP CONTINUOUS QUERY: the query's name (owned by st); for
 * CREATE, vg_statement_select() gives its SELECT (with `into` set).
 * Returns an empty view for other kinds. */
vg_str_t vg_statement_cq_name(const vg_statement_t *st);

/*
 * The scan range [*t0, *t1) of a SELECT's time conditions at now_ns:
 * INT64_MIN / INT64_MAX where unbounded (t1 == INT64_MAX therefore also
 * means "no upper bound").  `time < X` gives t1 = X, `time <= X` t1 = X+1,
 * `time = X` [X, X+1).  Contradictory conditions give t0 >= t1.
 * Returns 0 or VG_ELIMIT (a time overflows).
 */
int vg_select_time_range(const vg_select_t *sel, int64_t now_ns, int64_t *t0, int64_t *t1);

/*
 * Looks a field's value up for vg_cond_match(): return true and *value if
 * the row has the field, false if it is absent.
 */
typedef bool (*vg_field_lookup_fn)(void *ctx, vg_str_t field, double *value);

/*
 * Evaluates a WHERE tree for one row: the tags of its series (any order),
 * its time, and its field values through `lookup` (may be NULL when the
 * tree has no field leaves).  Time leaves are evaluated with now_ns.  A
 * NULL tree matches.  For continuous queries and subscriptions, which see
 * points one at a time; queries resolve tags through the store's index.
 */
bool vg_cond_match(const vg_cond_t *cond, const vg_tag_t *tags, size_t ntags, int64_t time,
                   int64_t now_ns, vg_field_lookup_fn lookup, void *ctx);

/*
 * The series a SELECT may read: those of its measurement that its tag
 * conditions can match (resolved through the postings; field and time
 * conditions are left to the caller) and that carry one of its fields
 * (every field with `*`).  Replaces *out's contents.  For subscriptions,
 * which match writes by series id.
 */
int vg_select_series(vg_store_t *store, const vg_select_t *sel, vg_idset_t *out);

/* ---- aggregate values -------------------------------------------------- */

/*
 * What an aggregate needs to know of the points of one bucket (or window),
 * NaN excluded except from `points`.  `values` (median and percentile
 * only) is sorted in place on first use; `sorted` records it.
 */
typedef struct vg_agg_summary {
	uint64_t points;
	uint64_t count;
	double sum, min, max;
	double first, last;
	int64_t first_time, last_time;
	double m2; /* sum of squared deviations (Welford) */
	double *values;
	size_t nvalues;
	bool sorted;
} vg_agg_summary_t;

/* The value of aggregate `fn` (with its percentile or rate unit) over the
 * summary, by the rules above: false when the cell is empty. */
bool vg_agg_final(vg_agg_fn_t fn, double percentile, int64_t rate_unit_ns, vg_agg_summary_t *s,
		  double *out);

/* ---- execution -------------------------------------------------------- */

typedef enum vg_column_type {
	VG_COLUMN_TIME = 1, /* values as in protocol/vigil.proto ColumnType */
	VG_COLUMN_FLOAT = 2,
	VG_COLUMN_STRING = 3,
} vg_column_type_t;

/*
 * The head of one result set: one group of the answer.  Every view is
 * borrowed and valid only during the begin_set call.
 */
typedef struct vg_result_set {
	vg_str_t name;        /* measurement, or "measurements", "stats", ... */
	const vg_tag_t *tags; /* group-by tags in GROUP BY order (GROUP BY *:
	                       * sorted by key); a tag a group lacks has value "" */
	size_t ntags;
	const vg_str_t *columns;       /* ncolumns names, "time" first when has_time */
	const vg_column_type_t *types; /* ncolumns types */
	size_t ncolumns;
	bool has_time;
} vg_result_set_t;

/*
 * One non-time column of a block of rows.  Exactly one of floats/strings
 * is set, by type.  nulls: NULL when no row is null, else (nrows+7)/8
 * bytes, bit i (LSB first) set when row i is empty; the float or string of
 * an empty row is unspecified (0 / "").  Borrowed for the rows call.
 */
typedef struct vg_result_column {
	vg_column_type_t type;
	const double *floats;
	const vg_str_t *strings;
	const uint8_t *nulls;
} vg_result_column_t;

/*
 * Where results go.  The executor calls begin_set once per result set,
 * then rows one or more times (each call 1..max_rows rows); a set is never
 * begun without rows following.  times is NULL when the set has no time
 * column; columns has ncols entries (the non-time columns in set order).
 * Everything passed is valid only during the call.  A non-zero return
 * stops the statement at once and vg_query_exec() returns that value
 * (use VG_ECANCELED, VG_ELIMIT, ...).  Both run on the executing thread
 * while it holds an LMDB read transaction, which pins the pages it sees
 * and makes a growing map wait: they must not wait on a client for long
 * (fail instead, e.g. VG_ELIMIT when an output bound is reached).
 */
typedef struct vg_result_sink {
	int (*begin_set)(void *ctx, const vg_result_set_t *set);
	int (*rows)(void *ctx, const int64_t *times, const vg_result_column_t *columns,
	            size_t ncols, size_t nrows);
	void *ctx;
} vg_result_sink_t;

/* A caller's counter for SHOW STATS; the name is borrowed for the call. */
typedef struct vg_stat_pair {
	const char *name;
	double value;
} vg_stat_pair_t;

/*
 * Helper threads for statements.  An aggregate SELECT over several groups
 * (GROUP BY tags) shares them with an idle helper: the calling thread takes
 * groups from the front, the helper from the back, until they meet; the
 * helper reads in a read transaction of the same snapshot and its rows are
 * held and passed to the sink after the caller's own, so the sink sees
 * exactly what it would without helpers.  A GROUP BY time over one group's
 * several series shares the opening (first chunk) of the series the same
 * way.  A busy pool is never waited for, and a helper that has not started
 * by the time the caller has done everything is not waited for either: the
 * statement then runs alone.  One pool serves any number of threads'
 * statements; free it only when no statement that uses it is running.
 */
typedef struct vg_query_helpers vg_query_helpers_t;

/* Starts `nthreads` helper threads: 0 and *out (free with
 * vg_query_helpers_free), VG_ENOMEM or -errno. */
int vg_query_helpers_new(unsigned nthreads, vg_query_helpers_t **out);
/* Stops and joins the threads and frees the pool; NULL is a no-op. */
void vg_query_helpers_free(vg_query_helpers_t *helpers);

typedef struct vg_exec_options {
	int64_t now_ns;                    /* the value of now(); init sets the current time */
	atomic_bool *cancel;               /* may be NULL; when it becomes true the statement
	                                    * stops with VG_ECANCELED (checked every few
	                                    * thousand points and rows) */
	int64_t deadline_ns;               /* CLOCK_MONOTONIC ns; 0: none.  Past it the
	                                    * statement stops with VG_ETIMEOUT */
	int64_t timeout_ns;                /* the configured limit, only to name it in the
	                                    * VG_ETIMEOUT message; 0: not named */
	size_t max_rows;                   /* rows per rows() call; init: 1024 */
	size_t max_values;                 /* values held at once (median/percentile, rows
	                                    * waiting in FILL(linear), bucket tables; see
	                                    * above), per statement; past it VG_ELIMIT.
	                                    * init: 32 M */
	const vg_stat_pair_t *extra_stats; /* appended to SHOW STATS; borrowed */
	size_t nextra_stats;
	size_t delete_batch; /* series per DELETE write transaction; init: 64 */
	size_t max_open;     /* GROUP BY time: a group of up to this many series
	                      * is aggregated with all cursors open at once
	                      * (bucket by bucket, stopping early at LIMIT); a
	                      * larger one one series at a time into a table
	                      * of buckets (memory per bucket, not per series).
	                      * init: 64 */
	bool select_only;    /* run the SELECT inside a SUBSCRIBE (its stored
			      * part) or a CREATE CONTINUOUS QUERY (one
			      * window of it), limited to [range_t0, range_t1) */
	int64_t range_t0;    /* init: INT64_MIN */
	int64_t range_t1;    /* init: INT64_MAX */
	vg_query_helpers_t *helpers; /* NULL (init): the statement runs on the
				      * calling thread only; borrowed */
	bool helpers_even;           /* tests: share exactly half (the helper the
				      * back half) and wait for the helper
				      * however late it starts, so that what
				      * is shared does not depend on timing */
	size_t parallel_min_series;  /* with helpers: share only statements
				      * over at least this many series (a
				      * hand-off costs tens of microseconds);
				      * init: 16 */
	const vg_select_t *select_override; /* with select_only: run this view
				* instead of the statement's own SELECT (e.g.
				* the raw fields of an aggregate one); its
				* pointers must stay valid during the call */
} vg_exec_options_t;

/* Fills `opts` with the defaults (now_ns = CLOCK_REALTIME now). */
void vg_exec_options_init(vg_exec_options_t *opts);

typedef struct vg_exec_stats {
	uint64_t points_scanned; /* points read (whole chunks counted by header) */
	uint64_t rows_emitted;   /* rows passed to the sink */
	uint64_t series_matched; /* store series the statement used */
	uint64_t points_deleted; /* DELETE: points removed */
	uint64_t snapshot;       /* SELECT: vg_rtxn_id() of the snapshot it read */
	uint64_t groups_shared;  /* groups a helper thread read (see helpers) */
	uint64_t sources_shared; /* series a helper opened for a group's
	                          * GROUP BY time (see helpers) */
} vg_exec_stats_t;

/*
 * Runs `st` against `store`, passing results to `sink` (NULL: results are
 * discarded, for DELETE and SET RETENTION).  `opts` may be NULL for the
 * defaults; `stats` (may be NULL) is zeroed then filled, also on
 * error; `err` (may be NULL) gets a message on error.  st is only read, so
 * one statement may run in several threads at once.
 *
 * SELECT: one result set per group (tag values of GROUP BY; without tags
 *   one set named after the measurement), groups in ascending order of
 *   their tag values, rows by time (descending with ORDER BY time DESC).
 *   Columns: time, then one float column per selected column.  Groups
 *   without rows produce no set.
 * SHOW MEASUREMENTS: set "measurements", column name.
 * SHOW SERIES: set "series", column key ("cpu,host=a,region=x"; one per tag
 *   set, sorted; ',', ' ' and '=' escaped with '\' as in line protocol).
 * SHOW TAG KEYS / TAG VALUES / FIELD KEYS: one set per measurement (all of
 *   them without FROM) with columns tagKey / key,value / fieldKey,fieldType
 *   ("float").
 * SHOW STATS: set "stats", columns name (string) and value (float): the
 *   store's vg_store_stats then opts->extra_stats.
 * SHOW RETENTION: set "retention", columns measurement ("" for the global
 *   setting, always listed) and duration ("INF" for none, else e.g. "30d").
 * DELETE: no result set; stats->points_deleted counts the points removed.
 *   Without a time condition the matched series are dropped entirely.  The
 *   series are resolved first in a read transaction, then changed in write
 *   transactions of opts->delete_batch series each, so a DELETE that fails
 *   midway may have removed part of what it matched.
 * SET RETENTION: no result set; the setting is stored (enforced by
 *   vg_store_enforce_retention, which the server runs).
 *
 * Returns 0; VG_ENOTFOUND ("measurement 'x' not found") for SELECT or
 * DELETE of an unknown measurement; VG_EINVAL for SUBSCRIBE ("SUBSCRIBE is
 * not a query; send it as a Subscribe request") and for the continuous
 * query statements (the server keeps continuous queries: server/cq.c)
 * unless opts->select_only asks for their SELECT; for FILL without a lower
 * time bound; VG_ECANCELED, VG_ETIMEOUT, VG_ELIMIT,
 * VG_ENOMEM, store errors; or a sink's non-zero return.
 */
int vg_query_exec(const vg_statement_t *st, vg_store_t *store, const vg_exec_options_t *opts,
                  const vg_result_sink_t *sink, vg_exec_stats_t *stats, vg_query_error_t *err);

/* ---- times ------------------------------------------------------------ */

/*
 * Parses an RFC 3339 time from [s, s+len): YYYY-MM-DD, optionally followed
 * by 'T' (or 't' or ' ') hh:mm:ss[.fraction] and Z or +hh:mm / -hh:mm (no
 * zone: UTC).  The fraction has 1..9 digits.  Returns 0 and *ns, VG_EINVAL
 * (with a reason in `why`, static, when not NULL) or VG_ELIMIT (outside the
 * int64 ns range: before 1677-09-21T00:12:43.145224192Z or after
 * 2262-04-11T23:47:16.854775807Z).
 */
int vg_query_parse_time(const char *s, size_t len, int64_t *ns, const char **why);

/* Writes ns as RFC 3339 UTC with the shortest exact fraction
 * ("2026-01-01T00:00:00Z", "...:00.5Z"); returns the length (buf of 40
 * suffices). */
size_t vg_query_format_time(int64_t ns, char *buf, size_t len);

#endif
