/*
 * cq.c — continuous queries: `CREATE CONTINUOUS QUERY name AS SELECT
 * <agg>(<field>)[, ...] INTO <target> FROM m [WHERE ...] GROUP BY
 * time(d)[, tags]`, materialized by the server into `target`.
 *
 * Definitions and progress live in the store's meta records:
 *
 *   "cq:<name>"   the statement text as the user wrote it
 *   "cqp:<name>"  8 bytes big-endian: every window starting before this
 *                 time has been written
 *
 * The writer thread runs the due windows (vg_cq_run): a window [s, s + d)
 * is due once the wall clock passes s + d + VG_CQ_GRACE.  Its rows are
 * computed from storage by the query executor (one statement per window,
 * not per write) and written into the target — series (target, group-by
 * tags, column name), time s — in ONE write transaction together with the
 * new progress.  So a crash, even kill -9, either loses both or keeps
 * both: after a restart the next window is exactly the first one missing,
 * never a duplicate.  Writing the same window twice would only overwrite
 * equal points anyway (last write wins).  The written points are published
 * to subscribers like any client write, so the target can be subscribed to.
 *
 * A new continuous query starts with the window holding its creation time
 * (no backfill, as in InfluxDB).  Points arriving for a window after it was
 * written are not folded in: the grace period is the allowance.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VG_CQ_GRACE_NS INT64_C(1000000000)
#define VG_CQ_WINDOWS_PER_PASS 64

struct vg_cq {
	char *name;
	char *text;
	vg_statement_t *statement;
	const vg_select_t *select;
	int64_t progress;
	vg_cq_t *next;
};

static void cq_free(vg_cq_t *cq)
{
	if (!cq)
		return;
	vg_free(cq->name);
	vg_free(cq->text);
	vg_query_free(cq->statement);
	vg_free(cq);
}

static void progress_key(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "cqp:%s", name);
}

/* Builds a registry entry from its text; the statement must be a CREATE. */
static int cq_parse(const char *name, size_t name_len, const char *text, size_t text_len,
		    vg_cq_t **out, vg_query_error_t *qerr)
{
	vg_cq_t *cq = vg_calloc(1, sizeof *cq);
	if (!cq)
		return VG_ENOMEM;
	cq->name = vg_strndup(name, name_len);
	cq->text = vg_strndup(text, text_len);
	int rc = cq->name && cq->text ? 0 : VG_ENOMEM;
	rc = rc ? rc : vg_query_parse(text, text_len, &cq->statement, qerr);
	if (rc == 0 && vg_statement_kind(cq->statement) != VG_STMT_CREATE_CQ)
		rc = VG_ECORRUPT;
	if (rc) {
		cq_free(cq);
		return rc;
	}
	cq->select = vg_statement_select(cq->statement);
	*out = cq;
	return 0;
}

typedef struct {
	vg_server_t *server;
	vg_rtxn_t *txn;
	int error;
} load_ctx_t;

static int load_one(void *ctx, vg_str_t key, vg_str_t value)
{
	load_ctx_t *l = ctx;
	vg_cq_t *cq;
	vg_query_error_t qerr;
	const char *name = key.data + 3;
	size_t name_len = key.len - 3;
	int rc = cq_parse(name, name_len, value.data, value.len, &cq, &qerr);
	if (rc) {
		vg_log(VG_LOG_ERROR, "continuous query '%.*s' cannot be loaded: %s", (int)name_len,
		       name, rc == VG_ECORRUPT ? "not a CREATE statement" : qerr.message);
		return 0;
	}
	char pkey[300];
	progress_key(cq->name, pkey, sizeof pkey);
	vg_str_t p;
	if (vg_rtxn_meta_get(l->txn, (vg_str_t){pkey, strlen(pkey)}, &p) == 0 && p.len == 8)
		cq->progress = (int64_t)vg_load_be64((const uint8_t *)p.data);
	cq->next = l->server->cqs;
	l->server->cqs = cq;
	vg_log(VG_LOG_INFO, "continuous query '%s' resumes at %lld", cq->name,
	       (long long)cq->progress);
	return 0;
}

int vg_cq_load(vg_server_t *server)
{
	vg_rtxn_t *txn;
	int rc = vg_store_read_begin(server->store, &txn);
	if (rc)
		return rc;
	load_ctx_t l = {server, txn, 0};
	rc = vg_rtxn_meta_scan(txn, (vg_str_t){"cq:", 3}, load_one, &l);
	vg_rtxn_end(txn);
	return rc;
}

void vg_cq_release(vg_server_t *server)
{
	while (server->cqs) {
		vg_cq_t *next = server->cqs->next;
		cq_free(server->cqs);
		server->cqs = next;
	}
}

/* ---- statements (worker threads) ------------------------------------- */

static int create_cq(vg_server_t *server, const vg_statement_t *st, const char *text,
		     size_t text_len, vg_query_error_t *err)
{
	const vg_select_t *sel = vg_statement_select(st);
	vg_str_t name = vg_statement_cq_name(st);
	if (!sel->aggregate || !sel->interval_ns || !sel->into.len) {
		snprintf(err->message, sizeof err->message,
			 "a continuous query needs aggregates, INTO and GROUP BY time(...)");
		return VG_EINVAL;
	}
	if (name.len > 200) {
		snprintf(err->message, sizeof err->message, "continuous query name too long");
		return VG_EINVAL;
	}
	vg_cq_t *cq;
	int rc = cq_parse(name.data, name.len, text, text_len, &cq, err);
	if (rc)
		return rc;
	cq->progress = vg_bucket_start(vg_now_ns(), cq->select->interval_ns, cq->select->offset_ns);
	pthread_mutex_lock(&server->cq_lock);
	for (vg_cq_t *c = server->cqs; c; c = c->next)
		if (strcmp(c->name, cq->name) == 0) {
			pthread_mutex_unlock(&server->cq_lock);
			snprintf(err->message, sizeof err->message,
				 "continuous query '%s' already exists", cq->name);
			cq_free(cq);
			return VG_EEXIST;
		}
	char key[300], pkey[300];
	snprintf(key, sizeof key, "cq:%s", cq->name);
	progress_key(cq->name, pkey, sizeof pkey);
	uint8_t p[8];
	vg_store_be64(p, (uint64_t)cq->progress);
	vg_wtxn_t *txn;
	rc = vg_store_write_begin(server->store, &txn);
	rc = rc ? rc : vg_wtxn_meta_put(txn, (vg_str_t){key, strlen(key)}, text, text_len);
	rc = rc ? rc : vg_wtxn_meta_put(txn, (vg_str_t){pkey, strlen(pkey)}, p, 8);
	if (rc) {
		if (txn)
			vg_wtxn_abort(txn);
	} else {
		rc = vg_wtxn_commit(txn);
	}
	if (rc == 0) {
		cq->next = server->cqs;
		server->cqs = cq;
	}
	pthread_mutex_unlock(&server->cq_lock);
	if (rc) {
		cq_free(cq);
		snprintf(err->message, sizeof err->message, "cannot store the continuous query: %s",
			 vg_strerror(rc));
		return rc;
	}
	vg_log(VG_LOG_INFO, "continuous query '%s' created", cq->name);
	return 0;
}

static int drop_cq(vg_server_t *server, const vg_statement_t *st, vg_query_error_t *err)
{
	vg_str_t name = vg_statement_cq_name(st);
	pthread_mutex_lock(&server->cq_lock);
	vg_cq_t **p = &server->cqs;
	while (*p && (strlen((*p)->name) != name.len || memcmp((*p)->name, name.data, name.len)))
		p = &(*p)->next;
	if (!*p) {
		pthread_mutex_unlock(&server->cq_lock);
		snprintf(err->message, sizeof err->message, "continuous query '%.*s' not found",
			 (int)name.len, name.data);
		return VG_ENOTFOUND;
	}
	vg_cq_t *cq = *p;
	char key[300], pkey[300];
	snprintf(key, sizeof key, "cq:%s", cq->name);
	progress_key(cq->name, pkey, sizeof pkey);
	vg_wtxn_t *txn;
	int rc = vg_store_write_begin(server->store, &txn);
	rc = rc ? rc : vg_wtxn_meta_delete(txn, (vg_str_t){key, strlen(key)});
	rc = rc ? rc : vg_wtxn_meta_delete(txn, (vg_str_t){pkey, strlen(pkey)});
	if (rc && txn)
		vg_wtxn_abort(txn);
	else if (rc == 0)
		rc = vg_wtxn_commit(txn);
	if (rc == 0) {
		*p = cq->next;
		cq_free(cq);
	}
	pthread_mutex_unlock(&server->cq_lock);
	if (rc)
		snprintf(err->message, sizeof err->message, "cannot drop: %s", vg_strerror(rc));
	return rc;
}

static int show_cqs(vg_server_t *server, const vg_result_sink_t *sink)
{
	pthread_mutex_lock(&server->cq_lock);
	size_t n = 0;
	for (vg_cq_t *c = server->cqs; c; c = c->next)
		n++;
	vg_str_t *names = vg_calloc(n + 1, sizeof *names), *texts = vg_calloc(n + 1, sizeof *texts);
	int rc = names && texts ? 0 : VG_ENOMEM;
	size_t i = 0;
	for (vg_cq_t *c = server->cqs; rc == 0 && c; c = c->next, i++) {
		names[i] = (vg_str_t){c->name, strlen(c->name)};
		texts[i] = (vg_str_t){c->text, strlen(c->text)};
	}
	if (rc == 0 && n > 0) {
		static const vg_str_t columns[] = {{"name", 4}, {"query", 5}};
		static const vg_column_type_t types[] = {VG_COLUMN_STRING, VG_COLUMN_STRING};
		vg_result_set_t set = {{"continuous_queries", 18}, NULL, 0, columns, types, 2, false};
		vg_result_column_t cols[2] = {{VG_COLUMN_STRING, NULL, names, NULL},
					      {VG_COLUMN_STRING, NULL, texts, NULL}};
		rc = sink->begin_set(sink->ctx, &set);
		rc = rc ? rc : sink->rows(sink->ctx, NULL, cols, 2, n);
	}
	pthread_mutex_unlock(&server->cq_lock);
	vg_free(names);
	vg_free(texts);
	return rc;
}

bool vg_cq_handles(const vg_statement_t *st)
{
	vg_statement_kind_t k = vg_statement_kind(st);
	return k == VG_STMT_CREATE_CQ || k == VG_STMT_DROP_CQ || k == VG_STMT_SHOW_CQS;
}

int vg_cq_exec(vg_server_t *server, const vg_statement_t *st, const char *text, size_t text_len,
	       const vg_result_sink_t *sink, vg_query_error_t *err)
{
	switch (vg_statement_kind(st)) {
	case VG_STMT_CREATE_CQ:
		return create_cq(server, st, text, text_len, err);
	case VG_STMT_DROP_CQ:
		return drop_cq(server, st, err);
	default:
		return show_cqs(server, sink);
	}
}

/* ---- materializing windows (writer thread) --------------------------- */

/* Collects a window's result sets as a Write for the target: one block
 * per result set and column (so that empty cells are simply absent).
 * Every piece of the Write comes from the envelope's arena
 * (vg_envelope_alloc) so that vg_frame_free_envelope() frees the whole
 * message; the current set's tags and columns are the collector's own. */
typedef struct {
	const char *into;
	Vigil__V1__Envelope *env;
	Vigil__V1__Write *write;
	size_t cap;
	Vigil__V1__Tag **tags;
	size_t ntags;
	char **columns;
	size_t ncolumns;
	int error;
} collect_t;

static char *dup_str(vg_str_t s) { return vg_strndup(s.data ? s.data : "", s.len); }

/* A copy of s in env's arena. */
static char *env_strdup(Vigil__V1__Envelope *env, const char *s)
{
	size_t n = strlen(s);
	char *p = vg_envelope_alloc(env, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

static void free_set(collect_t *c)
{
	for (size_t t = 0; t < c->ntags; t++) {
		vg_free(c->tags[t]->key);
		vg_free(c->tags[t]->value);
		vg_free(c->tags[t]);
	}
	vg_free(c->tags);
	for (size_t i = 0; i < c->ncolumns; i++)
		vg_free(c->columns[i]);
	vg_free(c->columns);
	c->tags = NULL;
	c->columns = NULL;
	c->ntags = c->ncolumns = 0;
}

static int collect_begin(void *ctx, const vg_result_set_t *set)
{
	collect_t *c = ctx;
	free_set(c);
	c->tags = vg_calloc(set->ntags + 1, sizeof *c->tags);
	c->columns = vg_calloc(set->ncolumns + 1, sizeof *c->columns);
	if (!c->tags || !c->columns)
		return VG_ENOMEM;
	for (size_t t = 0; t < set->ntags; t++) {
		Vigil__V1__Tag *tag = vg_malloc(sizeof *tag);
		if (!tag)
			return VG_ENOMEM;
		vigil__v1__tag__init(tag);
		c->tags[c->ntags++] = tag;
		tag->key = dup_str(set->tags[t].key);
		tag->value = dup_str(set->tags[t].value);
		if (!tag->key || !tag->value)
			return VG_ENOMEM;
	}
	for (size_t i = 0; i < set->ncolumns; i++) {
		c->columns[c->ncolumns++] = dup_str(set->columns[i]);
		if (!c->columns[i])
			return VG_ENOMEM;
	}
	return 0;
}

static int add_block(collect_t *c, const int64_t *times, const vg_result_column_t *col,
		     const char *name, size_t nrows)
{
	size_t n = 0;
	for (size_t r = 0; r < nrows; r++)
		if (!col->nulls || !(col->nulls[r / 8] & (1u << (r % 8))))
			n++;
	if (n == 0)
		return 0;
	Vigil__V1__Write *w = c->write;
	if (w->n_blocks == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		if (cap > SIZE_MAX / sizeof *w->blocks)
			return VG_ENOMEM;
		Vigil__V1__WriteBlock **blocks = vg_envelope_alloc(c->env, cap * sizeof *blocks);
		if (!blocks)
			return VG_ENOMEM;
		if (w->n_blocks)
			memcpy(blocks, w->blocks, w->n_blocks * sizeof *blocks);
		w->blocks = blocks;
		c->cap = cap;
	}
	if (n > SIZE_MAX / sizeof(double))
		return VG_ENOMEM;
	Vigil__V1__WriteBlock *b = vg_envelope_alloc(c->env, sizeof *b);
	if (!b)
		return VG_ENOMEM;
	vigil__v1__write_block__init(b);
	w->blocks[w->n_blocks++] = b;
	b->measurement = env_strdup(c->env, c->into);
	b->tags = vg_envelope_alloc(c->env, (c->ntags + 1) * sizeof *b->tags);
	b->times = vg_envelope_alloc(c->env, n * sizeof *b->times);
	b->fields = vg_envelope_alloc(c->env, sizeof *b->fields);
	if (!b->measurement || !b->tags || !b->times || !b->fields)
		return VG_ENOMEM;
	for (size_t t = 0; t < c->ntags; t++) {
		Vigil__V1__Tag *tag = vg_envelope_alloc(c->env, sizeof *tag);
		if (!tag)
			return VG_ENOMEM;
		vigil__v1__tag__init(tag);
		b->tags[b->n_tags++] = tag;
		tag->key = env_strdup(c->env, c->tags[t]->key);
		tag->value = env_strdup(c->env, c->tags[t]->value);
		if (!tag->key || !tag->value)
			return VG_ENOMEM;
	}
	Vigil__V1__WriteField *f = vg_envelope_alloc(c->env, sizeof *f);
	if (!f)
		return VG_ENOMEM;
	vigil__v1__write_field__init(f);
	b->fields[b->n_fields++] = f;
	f->name = env_strdup(c->env, name);
	f->values = vg_envelope_alloc(c->env, n * sizeof *f->values);
	if (!f->name || !f->values)
		return VG_ENOMEM;
	for (size_t r = 0; r < nrows; r++)
		if (!col->nulls || !(col->nulls[r / 8] & (1u << (r % 8)))) {
			b->times[b->n_times++] = times[r];
			f->values[f->n_values++] = col->floats[r];
		}
	return 0;
}

static int collect_rows(void *ctx, const int64_t *times, const vg_result_column_t *cols,
			size_t ncols, size_t nrows)
{
	collect_t *c = ctx;
	for (size_t i = 0; i < ncols; i++) {
		/* columns[0] is time; value column i is columns[i + 1]. */
		int rc = add_block(c, times, &cols[i], c->columns[i + 1], nrows);
		if (rc)
			return rc;
	}
	return 0;
}

/* Computes window [start, start + d) of cq as a Write envelope (owned by
 * the caller; NULL-free with vg_frame_free_envelope). */
static int compute_window(vg_server_t *server, vg_cq_t *cq, int64_t start,
			  Vigil__V1__Envelope **out)
{
	Vigil__V1__Envelope *env = vg_envelope_new();
	Vigil__V1__Write *write = env ? vg_envelope_alloc(env, sizeof *write) : NULL;
	if (!write) {
		vg_frame_free_envelope(env);
		return VG_ENOMEM;
	}
	vigil__v1__write__init(write);
	env->body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
	env->write = write;
	char into[VG_NAME_MAX + 1];
	snprintf(into, sizeof into, "%.*s", (int)cq->select->into.len, cq->select->into.data);
	collect_t c = {into, env, write, 0, NULL, 0, NULL, 0, 0};
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.select_only = true;
	opts.range_t0 = start;
	opts.range_t1 = start + cq->select->interval_ns;
	vg_result_sink_t sink = {collect_begin, collect_rows, &c};
	vg_query_error_t qerr;
	int rc = vg_query_exec(cq->statement, server->store, &opts, &sink, NULL, &qerr);
	free_set(&c);
	if (rc == VG_ENOTFOUND) /* the source measurement has no data yet */
		rc = 0;
	if (rc) {
		vg_log(VG_LOG_ERROR, "continuous query '%s': %s", cq->name, qerr.message);
		vg_frame_free_envelope(env);
		return rc;
	}
	*out = env;
	return 0;
}

int vg_cq_run(vg_server_t *server, vg_write_job_t **done)
{
	int64_t now = vg_now_ns();
	int rc = 0;
	pthread_mutex_lock(&server->cq_lock);
	for (vg_cq_t *cq = server->cqs; cq && rc == 0; cq = cq->next) {
		int64_t d = cq->select->interval_ns;
		for (int k = 0; k < VG_CQ_WINDOWS_PER_PASS && rc == 0; k++) {
			if (cq->progress > now - d - VG_CQ_GRACE_NS)
				break;
			Vigil__V1__Envelope *env = NULL;
			rc = compute_window(server, cq, cq->progress, &env);
			vg_write_job_t *job = rc ? NULL : vg_calloc(1, sizeof *job);
			if (rc == 0 && !job) {
				vg_frame_free_envelope(env);
				rc = VG_ENOMEM;
			}
			if (rc)
				break;
			job->envelope = env;
			char pkey[300];
			progress_key(cq->name, pkey, sizeof pkey);
			uint8_t p[8];
			vg_store_be64(p, (uint64_t)(cq->progress + d));
			vg_wtxn_t *txn;
			rc = vg_store_write_begin(server->store, &txn);
			if (rc == 0) {
				job->commit = vg_wtxn_id(txn);
				rc = vg_writer_apply(txn, job);
				rc = rc ? rc : vg_wtxn_meta_put(txn, (vg_str_t){pkey, strlen(pkey)}, p, 8);
				if (rc)
					vg_wtxn_abort(txn);
				else
					rc = vg_wtxn_commit(txn);
			}
			if (rc) {
				vg_write_job_free(job);
				vg_log(VG_LOG_ERROR, "continuous query '%s': window at %lld: %s",
				       cq->name, (long long)cq->progress, vg_strerror(rc));
				break;
			}
			cq->progress += d;
			/* Published (to subscribers of the target) by the loop,
			 * in window order. */
			vg_write_job_t **tail = done;
			while (*tail)
				tail = &(*tail)->next;
			*tail = job;
		}
	}
	pthread_mutex_unlock(&server->cq_lock);
	return rc;
}

bool vg_cq_any(vg_server_t *server)
{
	pthread_mutex_lock(&server->cq_lock);
	bool any = server->cqs != NULL;
	pthread_mutex_unlock(&server->cq_lock);
	return any;
}
