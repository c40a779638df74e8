/*
 * query_int.h — internals of the query module shared by its files.
 *
 * Files and what they own:
 *   lexer.c        text -> tokens; no allocation except unescaped text
 *   parser.c       tokens -> vg_statement_t (recursive descent), checks;
 *                  the statement's bump allocator (every parsed name lives
 *                  in it, so a statement is freed in one sweep)
 *   time.c         RFC 3339, time expressions, time ranges, vg_cond_match
 *   exec.c         vg_query_exec dispatch, cancellation and deadlines,
 *                  the emitter that turns rows into sink blocks
 *   exec_plan.c    SELECT planning: series resolution through the index,
 *                  tag sets, groups, columns, per-row condition programs
 *   exec_source.c  point sources: one series (with chunk-header skipping)
 *                  or one tag set's rows (fields merged by time)
 *   exec_agg.c     accumulators and the bucket loop of aggregate SELECTs
 *   exec_fill.c    FILL modes between the bucket loop and the emitter
 *   exec_raw.c     raw SELECTs: tag sets merged by time, LIMIT, DESC
 *   exec_show.c    SHOW statements
 *   exec_modify.c  DELETE and SET RETENTION
 *
 * Invariants: a vg_statement_t is immutable after vg_query_parse returns;
 * execution state lives in a vg_exec_t on the executing thread's stack.
 * Internal functions return 0, a negative vg_error.h code, or (only where
 * stated) VG_QDONE to mean "stop early, no error" (LIMIT reached).
 */
#ifndef VG_QUERY_INT_H
#define VG_QUERY_INT_H

#include "vg_query.h"

#include "vg_buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

/* Positive: never confused with an error; never leaves the module. */
#define VG_QDONE 1

/* ---- parser.c: the arena ------------------------------------------------------------ */

typedef struct vg_arena_block vg_arena_block_t;

/* A bump allocator: allocations live until vg_arena_release(). */
typedef struct vg_arena {
	vg_arena_block_t *head;
} vg_arena_t;

void vg_arena_init(vg_arena_t *a);
void vg_arena_release(vg_arena_t *a);
/* size bytes aligned for any type, zeroed; NULL on overflow or no memory. */
void *vg_arena_alloc(vg_arena_t *a, size_t size);
void *vg_arena_array(vg_arena_t *a, size_t count, size_t size);
/* A NUL-terminated copy; the view's data points at it. */
int vg_arena_str(vg_arena_t *a, const char *s, size_t len, vg_str_t *out);

/* A growing list of names copied into an arena (all memory is the
 * arena's); vg_name_list_add matches the store's listing callbacks. */
typedef struct vg_name_list {
	vg_arena_t *arena;
	vg_str_t *v;
	size_t len, cap;
} vg_name_list_t;
int vg_name_list_add(void *list, vg_str_t name);

/* ---- the statement ------------------------------------------------------ */

struct vg_statement {
	vg_statement_kind_t kind;
	vg_arena_t arena;
	regex_t **regexes; /* compiled here; regfree'd by vg_query_free */
	size_t nregexes, regexes_cap;
	vg_select_t select; /* SELECT, SUBSCRIBE, CREATE CQ */
	bool has_since;     /* SUBSCRIBE */
	vg_time_expr_t since;
	int64_t lateness_ns;
	vg_str_t name;          /* CQ name */
	vg_str_t measurement;   /* SHOW ... FROM, DELETE FROM, SET RETENTION ON */
	vg_str_t tag_key;       /* SHOW TAG VALUES WITH KEY */
	const vg_cond_t *where; /* SHOW SERIES, DELETE */
	int64_t retention_ns;   /* SET RETENTION; 0 = INF */
};

/* ---- lexer.c ------------------------------------------------------------ */

typedef enum vg_tok_kind {
	VG_TOK_EOF = 0,
	VG_TOK_IDENT,    /* bare identifier or keyword */
	VG_TOK_QIDENT,   /* "quoted identifier" */
	VG_TOK_STRING,   /* 'string' */
	VG_TOK_REGEX,    /* /regex/ */
	VG_TOK_INT,      /* 123 */
	VG_TOK_FLOAT,    /* 1.5, 1e3 */
	VG_TOK_DURATION, /* 10s */
	VG_TOK_EQ,       /* = */
	VG_TOK_NE,       /* != or <> */
	VG_TOK_LT,
	VG_TOK_LE,
	VG_TOK_GT,
	VG_TOK_GE,
	VG_TOK_EQRE, /* =~ */
	VG_TOK_NERE, /* !~ */
	VG_TOK_PLUS,
	VG_TOK_MINUS,
	VG_TOK_STAR,
	VG_TOK_COMMA,
	VG_TOK_SEMI,
	VG_TOK_LPAREN,
	VG_TOK_RPAREN,
} vg_tok_kind_t;

typedef struct vg_token {
	vg_tok_kind_t kind;
	const char *raw; /* the token as written, in the statement text */
	size_t raw_len;
	uint32_t line, column;
	vg_str_t text; /* IDENT: raw; QIDENT/STRING/REGEX: unescaped (arena) */
	int64_t ival;  /* INT (if !overflow), DURATION: ns */
	double fval;   /* INT, FLOAT */
	bool overflow; /* INT too large for int64 */
} vg_token_t;

typedef struct vg_lexer {
	const char *pos, *end;
	uint32_t line, column;
	vg_arena_t *arena;
	vg_query_error_t *err;
} vg_lexer_t;

void vg_lex_init(vg_lexer_t *lx, const char *text, size_t len, vg_arena_t *arena,
                 vg_query_error_t *err);
/* The next token: 0, or VG_ESYNTAX / VG_EINVAL / VG_ENOMEM with err set. */
int vg_lex_next(vg_lexer_t *lx, vg_token_t *tok);
/* Sets err to "line L, column C: <message>" with code; returns code. */
int vg_query_error_at(vg_query_error_t *err, int code, uint32_t line, uint32_t column,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sets err without a position; returns code. */
int vg_query_error_set(vg_query_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- time.c ------------------------------------------------------------- */

/* a + b, or VG_ELIMIT on overflow. */
int vg_time_add(int64_t a, int64_t b, int64_t *out);
/* a op b for the field comparisons (IEEE 754: NaN only satisfies NE). */
bool vg_cmp_number(double a, vg_cmp_op_t op, double b);

/* ---- exec.c ------------------------------------------------------------- */

typedef struct vg_exec {
	const vg_statement_t *st;
	vg_store_t *store;
	vg_rtxn_t *txn; /* open during SELECT / SHOW */
	vg_rtxn_t *fork; /* SELECT with helpers: txn's snapshot for a helper's
	                  * share (vg_rtxn_fork), or NULL */
	vg_exec_options_t opts;
	const vg_result_sink_t *sink;
	vg_exec_stats_t *stats;
	vg_query_error_t *err;
	unsigned ticks;
	size_t values_held; /* against opts.max_values */
	atomic_bool *stop;  /* NULL, or a helper's share: stop with VG_ECANCELED
	                     * once the statement's own thread has failed */
} vg_exec_t;

/* ---- helper threads (helpers.c) ------------------------------------------- */

/* A task for a helper thread: run(task) is called once on the helper;
 * `done` belongs to the pool. */
typedef struct vg_helper_task {
	void (*run)(struct vg_helper_task *task);
	bool done;
} vg_helper_task_t;

/* Hands `task` to an idle helper and returns true, or returns false at
 * once when none is idle (or h is NULL): the caller then does the work
 * itself.  After true the caller must vg_helpers_wait() for the task
 * before freeing anything it uses. */
bool vg_helpers_try_start(vg_query_helpers_t *h, vg_helper_task_t *task);
/* Waits until a started task has run. */
void vg_helpers_wait(vg_query_helpers_t *h, vg_helper_task_t *task);
/* Takes a started task back if no helper has begun it (true: it will never
 * run); false when it has begun. */
bool vg_helpers_revoke(vg_query_helpers_t *h, vg_helper_task_t *task);
/* Revokes a started task or, when it has begun, waits until it has run. */
void vg_helpers_finish(vg_query_helpers_t *h, vg_helper_task_t *task);

/* Items [0, n) taken one at a time from the front by one thread and from
 * the back by another until none is left. */
typedef struct vg_split {
	pthread_mutex_t lock;
	size_t front, back; /* items [front, back) are left */
	size_t mid;         /* even: the front stops at mid, the back too */
	bool even;
} vg_split_t;

/* even: the front thread gets exactly [0, n/2) and the back one the rest. */
void vg_split_init(vg_split_t *split, size_t n, bool even);
void vg_split_release(vg_split_t *split);
/* Takes the next item from the front (back): true and *item, or false when
 * none is left. */
bool vg_split_front(vg_split_t *split, size_t *item);
bool vg_split_back(vg_split_t *split, size_t *item);

/* ---- recorded results (exec_record.c) ------------------------------------- */

typedef struct vg_record_entry vg_record_entry_t;

/* A sink that keeps deep copies of what it is given (record.sink), to pass
 * it to another sink later in the same order.  Must not move after
 * vg_record_init(): record.sink.ctx points at it. */
typedef struct vg_record {
	vg_record_entry_t *first;
	vg_record_entry_t **tail;
	vg_result_sink_t sink;
	size_t bytes; /* held by the entries */
} vg_record_t;

void vg_record_init(vg_record_t *rec);
/* Frees the entries; the record is empty again (and still initialised). */
void vg_record_release(vg_record_t *rec);
/* Calls sink with every recorded set and block, in order; stops at and
 * returns the first non-zero return. */
int vg_record_replay(const vg_record_t *rec, const vg_result_sink_t *sink);

/* Cancel flag and deadline: 0, VG_ECANCELED or VG_ETIMEOUT (with message).
 * Cheap enough to call per block; reads the clock every 16th call. */
int vg_exec_check(vg_exec_t *x);
/* Reserves n more held values against max_values: 0 or VG_ELIMIT. */
int vg_exec_hold(vg_exec_t *x, size_t n);
void vg_exec_unhold(vg_exec_t *x, size_t n);

/* One cell of a row given to the emitter. */
typedef struct vg_cell {
	bool null;
	double f;
	vg_str_t s; /* copied by the emitter */
} vg_cell_t;

/*
 * The emitter collects rows of one result set into blocks of max_rows and
 * hands them to the sink, beginning the set before its first block.
 * LIMIT is counted here: vg_emit_row returns VG_QDONE once `limit` rows
 * (0: unlimited) have been taken.
 */
typedef struct vg_emit {
	vg_exec_t *x;
	size_t ncols;                  /* non-time columns */
	const vg_column_type_t *types; /* ncols, borrowed */
	bool has_time;
	vg_result_set_t set; /* header of the current set, borrowed */
	bool begun;
	uint64_t limit;
	uint64_t set_rows; /* rows taken in the current set */
	size_t nrows, cap;
	int64_t *times;
	double *floats;            /* [col * cap + row] */
	size_t *str_off, *str_len; /* [col * cap + row], into strings */
	vg_buf_t strings;
	uint8_t *nulls; /* [col * nullbytes + row/8] */
	bool *col_has_null;
	vg_str_t *str_views; /* cap, built per column at flush */
	vg_result_column_t *cols;
} vg_emit_t;

int vg_emit_init(vg_emit_t *e, vg_exec_t *x, size_t ncols, const vg_column_type_t *types,
                 bool has_time);
void vg_emit_release(vg_emit_t *e);
/* Starts a set: `set` (and its views) must stay valid until vg_emit_end. */
void vg_emit_start(vg_emit_t *e, const vg_result_set_t *set, uint64_t limit);
int vg_emit_row(vg_emit_t *e, int64_t time, const vg_cell_t *cells);
/* Float row fast path: values[ncols], nulls may be NULL. */
int vg_emit_floats(vg_emit_t *e, int64_t time, const double *values, const bool *nulls);
/* Flushes the rest of the current set. */
int vg_emit_end(vg_emit_t *e);

/* ---- exec_plan.c -------------------------------------------------------- */

/* A condition compiled for one execution: tag leaves resolved to id sets,
 * field leaves to plan field indexes. */
typedef struct vg_prog_node {
	vg_cond_kind_t kind;
	vg_cmp_op_t op;
	int left, right; /* AND/OR: node indexes */
	int leaf;        /* TAG: index into tag_sets */
	int field;       /* FIELD: plan field index */
	double number;
} vg_prog_node_t;

typedef struct vg_plan_field {
	vg_str_t name;
	bool selected;     /* read for a column (else only for WHERE) */
	bool needs_values; /* median/percentile */
	bool needs_m2;     /* stddev */
} vg_plan_field_t;

typedef struct vg_plan_column {
	vg_agg_fn_t agg;
	size_t field; /* plan field index */
	double percentile;
	int64_t rate_unit_ns;
	vg_str_t name;
} vg_plan_column_t;

/* Three-valued result of a condition with field leaves unknown. */
enum { VG_TRI_FALSE = 0, VG_TRI_TRUE = 1, VG_TRI_UNKNOWN = 2 };

typedef struct vg_tagset {
	const vg_tag_t *tags; /* sorted by key; views into the read txn */
	size_t ntags;
	vg_str_t key;    /* canonical bytes, k\0v\0... (plan arena) */
	int64_t *series; /* per plan field: id, or -1 */
	bool *tag_truth; /* per tag leaf: does this tag set satisfy it */
	int residual;    /* VG_TRI_*: condition with fields unknown */
	size_t group;
} vg_tagset_t;

typedef struct vg_group {
	vg_tag_t *tags; /* result set tags */
	size_t ntags;
	size_t first, count; /* tag sets [first, first+count) of plan */
} vg_group_t;

typedef struct vg_plan {
	vg_arena_t arena;
	const vg_select_t *sel;
	int64_t t0, t1;           /* scan range [t0, t1) */
	int64_t fill_lo, fill_hi; /* fill range: first and last bucket start */
	bool has_lower;
	vg_plan_field_t *fields;
	size_t nfields;
	vg_plan_column_t *columns;
	size_t ncolumns;
	vg_str_t *column_names; /* "time", then the columns */
	vg_column_type_t *column_types;
	vg_prog_node_t *prog; /* NULL: no condition */
	int prog_root;
	size_t nprog;
	bool has_field_cond;
	vg_idset_t *tag_sets; /* per tag leaf */
	size_t ntag_leaves;
	vg_tagset_t *tagsets; /* sorted: by group, then tag-set order */
	size_t ntagsets;
	vg_group_t *groups;
	size_t ngroups;
	const vg_str_t *group_keys; /* the GROUP BY tag keys (expanded for *) */
	size_t ngroup_keys;
} vg_plan_t;

int vg_plan_build(vg_exec_t *x, const vg_select_t *sel, vg_plan_t *plan);
void vg_plan_release(vg_plan_t *plan);
/* Evaluates the condition for one row of tag set ts: values[f], present[f]
 * per plan field. */
bool vg_plan_row_matches(const vg_plan_t *plan, const vg_tagset_t *ts, const double *values,
                         const bool *present);

/* The condition of a plan at tag set ts, for rows where only plan field
 * `field` is present, as a test on that field's value. */
typedef enum { VG_RANGE_ALL, VG_RANGE_NONE, VG_RANGE_SPAN, VG_RANGE_COMPLEX } vg_range_kind_t;
typedef struct vg_value_range {
	vg_range_kind_t kind;
	double lo, hi; /* SPAN: lo <= v <= hi, either end strict as flagged */
	bool lo_open, hi_open;
} vg_value_range_t;
vg_value_range_t vg_plan_value_range(const vg_plan_t *plan, const vg_tagset_t *ts, size_t field);

/* Whether v is in a SPAN (NaN never is: it fails every comparison). */
static inline bool vg_value_in_range(const vg_value_range_t *r, double v)
{
	return (r->lo_open ? v > r->lo : v >= r->lo) && (r->hi_open ? v < r->hi : v <= r->hi);
}

/* Resolves a tag-only condition to series of `measurement` (DELETE, SHOW
 * SERIES): out = the matching ids.  Field leaves are VG_EINVAL. */
int vg_resolve_tag_cond(vg_exec_t *x, vg_str_t measurement, const vg_cond_t *cond, vg_idset_t *out);

/* ---- exec_source.c ------------------------------------------------------ */

/* For a series source: the far edge of the bucket holding t (forward: its
 * exclusive end; reverse: its start), so that a whole chunk before it lies
 * in that one bucket. */
typedef int64_t (*vg_limit_fn)(const void *ctx, int64_t t);

/*
 * A series source: one series read forward or backward, one block at a
 * time, taking whole chunks that fall within one bucket from their headers
 * (vg_cursor_skip_chunk) when `headers` is set.  After open and after each
 * fetch, either done, or have_header (the chunk summary `header` is next),
 * or the points [pos, n) of the block are next; `next` is the time of the
 * next point (header: its min_time forward, max_time reverse).
 */
typedef struct vg_series_src {
	/* set by the caller before open */
	vg_series_id_t id;
	size_t field;
	uint32_t rank; /* tag-set position in its group */
	bool reverse;
	bool headers;
	vg_limit_fn limit;
	const void *lctx;
	/* state */
	vg_cursor_t *cursor;
	bool done;
	bool have_header;
	vg_chunk_header_t header;
	const int64_t *times;
	const double *values;
	size_t n, pos;
	int64_t next;
} vg_series_src_t;

int vg_series_src_open(vg_exec_t *x, vg_series_src_t *src, int64_t t0, int64_t t1);
/* Moves on once the header or block is used up; p is the first time not
 * yet consumed (reverse: the last). */
int vg_series_src_fetch(vg_exec_t *x, vg_series_src_t *src, int64_t p);
void vg_series_src_close(vg_series_src_t *src);

/*
 * A row source: the fields of one tag set merged by time into rows.  Each
 * field has a cursor (absent series: none).  Lazy: vg_row_src_peek()
 * makes `done`/`next` current (fetching only then), vg_row_src_take()
 * consumes the row at `next`, so a LIMIT that is met reads nothing more.
 *
 * With `edges` (raw queries with LIMIT) a field whose next chunk lies
 * wholly in the range gives only that chunk's newest point (oldest, going
 * forward) from the chunk header; if the row merge needs more of it, the
 * cursor is reopened past that point and the chunk decoded then.
 */
typedef struct vg_row_field {
	vg_cursor_t *cursor;
	int64_t id; /* series, or -1 */
	const int64_t *times;
	const double *values;
	size_t n, pos;
	bool edge; /* times/values: the one header point below */
	int64_t edge_time;
	double edge_value;
} vg_row_field_t;

typedef struct vg_row_src {
	size_t nfields;
	bool reverse;
	bool edges;
	int64_t t0, t1;
	vg_row_field_t *fields;
	bool stale; /* done/next need vg_row_src_peek */
	bool done;
	int64_t next;
} vg_row_src_t;

int vg_row_src_open(vg_exec_t *x, vg_row_src_t *src, const vg_tagset_t *ts, size_t nfields,
                    int64_t t0, int64_t t1, bool reverse, bool edges);
void vg_row_src_close(vg_row_src_t *src);
/* Brings done/next up to date. */
int vg_row_src_peek(vg_exec_t *x, vg_row_src_t *src);
/* Takes the row at src->next (after a peek): values[f], present[f] for
 * every field. */
void vg_row_src_take(vg_row_src_t *src, double *values, bool *present);

/* ---- exec_agg.c, exec_fill.c, exec_raw.c -------------------------------- */

int vg_exec_aggregate(vg_exec_t *x, vg_plan_t *plan);
int vg_exec_raw(vg_exec_t *x, vg_plan_t *plan);


/* Applies a FILL mode to rows given in output order, passing them on to an
 * emitter.  FILL(linear) holds rows with cells waiting for the column's
 * next non-null value in a ring (q_*); they count against max_values. */
typedef struct vg_fill {
	vg_exec_t *x;
	vg_emit_t *emit;
	vg_fill_mode_t mode;
	double value;
	size_t ncols;
	double *row; /* scratch row */
	bool *row_nulls;
	double *prev; /* last non-null per column, in output order */
	bool *have_prev;
	int64_t *prev_time;
	size_t *pending; /* per column: waiting cells in the queue */
	size_t qhead, qlen, qcap;
	int64_t *q_time;  /* [slot] */
	double *q_values; /* [slot * ncols + c] */
	bool *q_nulls;
	bool *q_pending;
	size_t *q_npending; /* [slot] */
} vg_fill_t;

int vg_fill_init(vg_fill_t *f, vg_exec_t *x, vg_emit_t *emit, vg_fill_mode_t mode, double value,
                 size_t ncols);
void vg_fill_release(vg_fill_t *f);
/* Resets per-group state (a new result set). */
void vg_fill_reset(vg_fill_t *f);
/* One row; nulls[c] marks empty cells.  VG_QDONE once LIMIT is reached. */
int vg_fill_push(vg_fill_t *f, int64_t time, const double *values, const bool *nulls);
/* End of the group: releases held rows. */
int vg_fill_finish(vg_fill_t *f);

/* ---- exec_show.c, exec_modify.c ----------------------------------------- */

int vg_exec_show(vg_exec_t *x);
int vg_exec_delete(vg_exec_t *x);
int vg_exec_set_retention(vg_exec_t *x);

#endif
