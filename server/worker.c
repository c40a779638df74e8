/*
 * worker.c — statements run on worker threads, results stream back.
 *
 * The loop queues a job per Query request.  A worker parses and executes
 * it (query/vg_query.h) with a sink that encodes each result set and block
 * of rows straight into protocol frames in a local buffer; whenever that
 * buffer passes vg_output_chunk() it is handed to the loop (ev_async), which
 * appends it to the connection's output.  So a huge result never sits in
 * memory whole: while the connection holds more than vg_output_high_water()
 * unsent bytes the worker waits, and a closed connection or a Cancel stops
 * the statement at its next block.
 *
 * The last hand-over of a job carries ResultEnd or Error and lets the loop
 * free the job and drop its connection reference.
 *
 * Short reads skip the hand-offs: a SELECT or SHOW is first run on the loop
 * thread itself with a budget of VG_INLINE_BUDGET_NS and one output chunk.
 * Most point lookups and small aggregates finish well inside it and answer
 * without waking a worker or the loop a second time (two thread switches,
 * half the round trip of a small query).  A statement that runs past the
 * budget is dropped — reads have no side effects — and queued for a worker
 * as usual; after misses in a row the loop stops trying for a while, so a
 * workload of heavy statements loses almost nothing to the attempts.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"
#include "vg_query.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define VG_ROWS_PER_BLOCK 1024
#define VG_INLINE_BUDGET_NS 500000 /* loop-thread time a statement may take */
#define VG_INLINE_MAX_SKIP 64       /* statements skipped after repeated misses */

static void on_output(struct ev_loop *loop, ev_async *w, int revents);
static bool try_inline(vg_server_t *server, vg_query_job_t *job);

typedef struct {
	vg_server_t *server;
	vg_query_job_t *job;
	vg_buf_t frames;
	uint64_t rows;
	int64_t deadline_ns; /* CLOCK_MONOTONIC; 0: none */
	bool inline_run;     /* on the loop thread: never hand over or wait */
	bool spilled;        /* inline_run produced more than one chunk */
} job_sink_t;

/* Hands the frames built so far to the loop. */
static int hand_over(job_sink_t *s, bool last)
{
	vg_workers_t *w = &s->server->workers;
	vg_output_t *out = vg_calloc(1, sizeof *out);
	if (!out)
		return VG_ENOMEM;
	out->job = s->job;
	out->frames = s->frames;
	out->last = last;
	vg_buf_init(&s->frames);
	pthread_mutex_lock(&w->lock);
	*w->outputs_tail = out;
	w->outputs_tail = &out->next;
	pthread_mutex_unlock(&w->lock);
	ev_async_send(s->server->loop, &w->output_async);
	return 0;
}

/* Waits while the connection's unsent output is above high water. */
static int wait_for_room(job_sink_t *s)
{
	vg_workers_t *w = &s->server->workers;
	vg_conn_t *conn = s->job->conn;
	pthread_mutex_lock(&w->lock);
	size_t high = vg_output_high_water(&s->server->config);
	while ((atomic_load(&conn->out_len) >= high ||
		(atomic_load(&conn->out_len) > 0 && vg_server_over_buffered(s->server))) &&
	       !atomic_load(&conn->closed) && !atomic_load(&s->job->cancel) && !w->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->drained, &w->lock, &until);
		if (s->deadline_ns && vg_monotonic_ns() > s->deadline_ns)
			break;
	}
	pthread_mutex_unlock(&w->lock);
	if (atomic_load(&conn->closed) || atomic_load(&s->job->cancel))
		return VG_ECANCELED;
	/* The statement holds a read transaction while it waits: a client
	 * that stops reading must not pin it for longer than the time limit. */
	if (s->deadline_ns && vg_monotonic_ns() > s->deadline_ns)
		return VG_ETIMEOUT;
	return 0;
}

static int maybe_flush(job_sink_t *s)
{
	if (s->frames.len < vg_output_chunk(&s->server->config))
		return 0;
	if (s->inline_run) {
		s->spilled = true;
		return VG_ECANCELED;
	}
	int rc = hand_over(s, false);
	return rc ? rc : wait_for_room(s);
}

static int append(job_sink_t *s, Vigil__V1__Envelope *env)
{
	env->id = s->job->request_id;
	int rc = vg_frame_append(&s->frames, env);
	return rc ? rc : maybe_flush(s);
}

static Vigil__V1__ColumnType wire_type(vg_column_type_t type)
{
	switch (type) {
	case VG_COLUMN_TIME:
		return VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME;
	case VG_COLUMN_STRING:
		return VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_STRING;
	default:
		return VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_FLOAT;
	}
}

/* Result frames are written straight from the statement's views
 * (protocol/encode.c): no protobuf-c structs, no copied names. */
static int sink_begin_set(void *ctx, const vg_result_set_t *set)
{
	job_sink_t *s = ctx;
	size_t ntags = set->ntags < VG_MAX_TAGS ? set->ntags : VG_MAX_TAGS;
	vg_wire_text_t tags[2 * VG_MAX_TAGS];
	for (size_t i = 0; i < ntags; i++) {
		tags[2 * i] = (vg_wire_text_t){set->tags[i].key.data, set->tags[i].key.len};
		tags[2 * i + 1] = (vg_wire_text_t){set->tags[i].value.data, set->tags[i].value.len};
	}
	vg_wire_text_t *columns = vg_calloc(set->ncolumns + 1, sizeof *columns);
	Vigil__V1__ColumnType *types = vg_calloc(set->ncolumns + 1, sizeof *types);
	int rc = columns && types ? 0 : VG_ENOMEM;
	for (size_t i = 0; rc == 0 && i < set->ncolumns; i++) {
		columns[i] = (vg_wire_text_t){set->columns[i].data, set->columns[i].len};
		types[i] = wire_type(set->types[i]);
	}
	if (rc == 0) {
		vg_wire_result_set_t ws = {{set->name.data, set->name.len},
		                           tags,
		                           ntags,
		                           columns,
		                           types,
		                           set->ncolumns,
		                           set->has_time};
		rc = vg_frame_append_result_set(&s->frames, s->job->request_id, &ws);
		rc = rc ? rc : maybe_flush(s);
	}
	vg_free(columns);
	vg_free(types);
	return rc;
}

static int sink_rows(void *ctx, const int64_t *times, const vg_result_column_t *cols,
		     size_t ncols, size_t nrows)
{
	job_sink_t *s = ctx;
	size_t nstrings = 0;
	for (size_t c = 0; c < ncols; c++)
		nstrings += cols[c].strings ? nrows : 0;
	vg_wire_column_t *wcols = vg_calloc(ncols + 1, sizeof *wcols);
	vg_wire_text_t *texts = nstrings ? vg_calloc(nstrings, sizeof *texts) : NULL;
	if (!wcols || (nstrings && !texts)) {
		vg_free(wcols);
		vg_free(texts);
		return VG_ENOMEM;
	}
	vg_wire_text_t *t = texts;
	for (size_t c = 0; c < ncols; c++) {
		wcols[c] = (vg_wire_column_t){cols[c].floats, NULL, cols[c].nulls};
		if (cols[c].strings) {
			for (size_t r = 0; r < nrows; r++)
				t[r] = (vg_wire_text_t){cols[c].strings[r].data, cols[c].strings[r].len};
			wcols[c] = (vg_wire_column_t){NULL, t, cols[c].nulls};
			t += nrows;
		}
	}
	int rc = vg_frame_append_result_rows(&s->frames, s->job->request_id, times, wcols, ncols,
	                                     nrows);
	vg_free(wcols);
	vg_free(texts);
	if (rc)
		return rc;
	s->rows += nrows;
	return maybe_flush(s);
}

/* ---- the SINCE part of a subscription --------------------------------- */

/* Result sets become Push frames under the subscription's id: the set's
 * group-by tags are remembered from begin_set for the rows that follow. */
typedef struct {
	job_sink_t base;
	Vigil__V1__Tag tags[VG_MAX_TAGS];
	Vigil__V1__Tag *tagp[VG_MAX_TAGS];
	char *strings[2 * VG_MAX_TAGS];
	size_t ntags;
} history_sink_t;

static void history_tags_release(history_sink_t *h)
{
	for (size_t i = 0; i < 2 * h->ntags; i++)
		vg_free(h->strings[i]);
	h->ntags = 0;
}

static int history_begin_set(void *ctx, const vg_result_set_t *set)
{
	history_sink_t *h = ctx;
	history_tags_release(h);
	for (size_t i = 0; i < set->ntags && i < VG_MAX_TAGS; i++) {
		h->strings[2 * i] = vg_strndup(set->tags[i].key.data, set->tags[i].key.len);
		h->strings[2 * i + 1] = vg_strndup(set->tags[i].value.data, set->tags[i].value.len);
		h->ntags = i + 1;
		if (!h->strings[2 * i] || !h->strings[2 * i + 1])
			return VG_ENOMEM;
		vigil__v1__tag__init(&h->tags[i]);
		h->tags[i].key = h->strings[2 * i];
		h->tags[i].value = h->strings[2 * i + 1];
		h->tagp[i] = &h->tags[i];
	}
	return 0;
}

static int history_rows(void *ctx, const int64_t *times, const vg_result_column_t *cols,
			size_t ncols, size_t nrows)
{
	history_sink_t *h = ctx;
	Vigil__V1__Column *colv = vg_calloc(ncols + 1, sizeof *colv);
	Vigil__V1__Column **colp = vg_calloc(ncols + 1, sizeof *colp);
	int rc = colv && colp ? 0 : VG_ENOMEM;
	for (size_t c = 0; rc == 0 && c < ncols; c++) {
		vigil__v1__column__init(&colv[c]);
		colv[c].n_floats = nrows;
		colv[c].floats = (double *)cols[c].floats;
		if (cols[c].nulls) {
			colv[c].nulls.len = (nrows + 7) / 8;
			colv[c].nulls.data = (uint8_t *)cols[c].nulls;
		}
		colp[c] = &colv[c];
	}
	if (rc == 0) {
		Vigil__V1__ResultRows rows = VIGIL__V1__RESULT_ROWS__INIT;
		rows.n_times = nrows;
		rows.times = (int64_t *)times;
		rows.n_columns = ncols;
		rows.columns = colp;
		Vigil__V1__Push push = VIGIL__V1__PUSH__INIT;
		push.n_tags = h->ntags;
		push.tags = h->tagp;
		push.rows = &rows;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_PUSH;
		env.push = &push;
		rc = append(&h->base, &env);
		h->base.rows += nrows;
	}
	vg_free(colv);
	vg_free(colp);
	return rc;
}

/* Windowed subscriptions replay raw points: each block of rows becomes a
 * Write frame (one block per column, non-empty cells only) that the loop
 * feeds into the subscription's windows, exactly as live writes are. */
static int history_raw_rows(void *ctx, const int64_t *times, const vg_result_column_t *cols,
			    size_t ncols, size_t nrows)
{
	history_sink_t *h = ctx;
	const vg_select_t *raw = vg_sub_raw_select(h->base.job->sub);
	int64_t *t = vg_malloc((nrows ? nrows : 1) * sizeof *t);
	double *v = vg_malloc((nrows ? nrows : 1) * sizeof *v);
	int rc = t && v ? 0 : VG_ENOMEM;
	char *measurement = vg_strndup(raw->measurement.data, raw->measurement.len);
	if (!measurement)
		rc = VG_ENOMEM;
	for (size_t c = 0; rc == 0 && c < ncols; c++) {
		size_t n = 0;
		for (size_t r = 0; r < nrows; r++)
			if (!cols[c].nulls || !(cols[c].nulls[r / 8] & (1u << (r % 8)))) {
				t[n] = times[r];
				v[n++] = cols[c].floats[r];
			}
		if (n == 0)
			continue;
		char *field = vg_strndup(raw->columns[c].field.data, raw->columns[c].field.len);
		if (!field) {
			rc = VG_ENOMEM;
			break;
		}
		Vigil__V1__WriteField wf = VIGIL__V1__WRITE_FIELD__INIT;
		wf.name = field;
		wf.n_values = n;
		wf.values = v;
		Vigil__V1__WriteField *wfp[] = {&wf};
		Vigil__V1__WriteBlock block = VIGIL__V1__WRITE_BLOCK__INIT;
		block.measurement = measurement;
		block.n_tags = h->ntags;
		block.tags = h->tagp;
		block.n_times = n;
		block.times = t;
		block.n_fields = 1;
		block.fields = wfp;
		Vigil__V1__WriteBlock *bp[] = {&block};
		Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
		write.n_blocks = 1;
		write.blocks = bp;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
		env.write = &write;
		rc = append(&h->base, &env);
		vg_free(field);
	}
	vg_free(measurement);
	vg_free(t);
	vg_free(v);
	return rc;
}

static void run_history(vg_server_t *server, vg_query_job_t *job)
{
	history_sink_t h;
	memset(&h, 0, sizeof h);
	h.base = (job_sink_t){server, job, VG_BUF_INIT, 0, 0};
	vg_exec_options_t opts;
	vg_exec_options_init(&opts);
	opts.now_ns = vg_now_ns();
	opts.cancel = &job->cancel;
	opts.max_rows = VG_ROWS_PER_BLOCK;
	opts.select_only = true;
	opts.range_t0 = job->since;
	opts.select_override = vg_sub_raw_select(job->sub);
	vg_result_sink_t sink = {history_begin_set,
				 opts.select_override ? history_raw_rows : history_rows, &h};
	vg_exec_stats_t stats;
	vg_query_error_t qerr;
	memset(&qerr, 0, sizeof qerr);
	int rc = vg_query_exec(vg_sub_statement(job->sub), server->store, &opts, &sink, &stats,
			       &qerr);
	history_tags_release(&h);
	/* The loop sends the frames, then flushes the held live pushes. */
	vg_output_t *out = NULL;
	while (!(out = vg_calloc(1, sizeof *out))) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	out->job = job;
	out->frames = h.base.frames;
	out->last = true;
	out->result = rc;
	out->snapshot = stats.snapshot;
	snprintf(out->message, sizeof out->message, "%s",
		 rc ? (qerr.message[0] ? qerr.message : vg_strerror(rc)) : "");
	vg_workers_t *w = &server->workers;
	pthread_mutex_lock(&w->lock);
	*w->outputs_tail = out;
	w->outputs_tail = &out->next;
	pthread_mutex_unlock(&w->lock);
	ev_async_send(server->loop, &w->output_async);
}

int vg_workers_submit_history(vg_conn_t *conn, vg_sub_t *sub, int64_t since)
{
	vg_query_job_t *job = vg_calloc(1, sizeof *job);
	if (!job)
		return VG_ENOMEM;
	job->conn = conn;
	job->request_id = vg_sub_id(sub);
	job->sub = sub;
	job->since = since;
	job->received_ns = vg_monotonic_ns();
	atomic_init(&job->cancel, false);
	job->conn_next = conn->queries;
	if (conn->queries)
		conn->queries->conn_prev = job;
	conn->queries = job;
	conn->refs++;
	vg_workers_submit(conn->server, job);
	return 0;
}

/* Server counters for SHOW STATS. */
static size_t server_stats(vg_server_t *server, vg_stat_pair_t *pairs, size_t cap)
{
	vg_writer_t *w = &server->writer;
	pthread_mutex_lock(&w->lock);
	uint64_t commits = w->commits, points = w->points;
	pthread_mutex_unlock(&w->lock);
	double uptime = (double)(vg_now_ns() - server->started_ns) / 1e9;
	if (uptime <= 0)
		uptime = 1e-9;
	uint64_t queries = atomic_load(&server->workers.queries);
	size_t n = 0;
	const vg_stat_pair_t all[] = {
		{"connections", (double)atomic_load(&server->stat_connections)},
		{"connections_total", (double)atomic_load(&server->connections_total)},
		{"subscriptions", (double)atomic_load(&server->stat_subscriptions)},
		{"commits", (double)commits},
		{"points_written", (double)points},
		{"writes_per_s", (double)points / uptime},
		{"queries", (double)queries},
		{"queries_per_s", (double)queries / uptime},
		{"uptime_s", uptime},
	};
	for (; n < cap && n < sizeof all / sizeof all[0]; n++)
		pairs[n] = all[n];
	return n;
}

/* Statements without side effects, which may be run twice. */
static bool statement_is_read(const vg_statement_t *st)
{
	switch (vg_statement_kind(st)) {
	case VG_STMT_SELECT:
	case VG_STMT_SHOW_MEASUREMENTS:
	case VG_STMT_SHOW_SERIES:
	case VG_STMT_SHOW_TAG_KEYS:
	case VG_STMT_SHOW_TAG_VALUES:
	case VG_STMT_SHOW_FIELD_KEYS:
	case VG_STMT_SHOW_RETENTION:
		return true;
	default:
		return false;
	}
}

/*
 * Parses and runs job's statement into s->frames, then appends its
 * ResultEnd or Error frame.  With inline_deadline (loop thread) the
 * statement must be a read and finish by then within one output chunk:
 * otherwise nothing is appended and false is returned, for a worker to run
 * it from the start.
 */
static bool run_statement(vg_server_t *server, vg_query_job_t *job, job_sink_t *s,
			  int64_t inline_deadline)
{
	vg_statement_t *st = NULL;
	vg_query_error_t qerr;
	memset(&qerr, 0, sizeof qerr);
	int64_t started = vg_monotonic_ns();
	int rc = vg_query_parse(job->statement, job->statement_len, &st, &qerr);
	vg_exec_stats_t stats;
	memset(&stats, 0, sizeof stats);
	if (rc == 0 && inline_deadline && !statement_is_read(st)) {
		vg_query_free(st);
		return false;
	}
	bool over_budget = false;
	if (rc == 0) {
		/* The statement half of the access check (conn.c checks the
		 * request): its kind is known only now. */
		vg_statement_kind_t kind = vg_statement_kind(st);
		rc = vg_auth_permit(job->role, vg_role_for_statement(kind),
				    vg_statement_kind_name(kind), qerr.message, sizeof qerr.message);
		if (rc)
			vg_log(VG_LOG_INFO, "%s: %s", job->conn->peer, qerr.message);
	}
	if (rc == 0) {
		vg_stat_pair_t pairs[16];
		vg_exec_options_t opts;
		vg_exec_options_init(&opts);
		opts.now_ns = vg_now_ns();
		opts.cancel = &job->cancel;
		opts.deadline_ns = s->deadline_ns;
		opts.timeout_ns = server->config.query_timeout_ns;
		if (inline_deadline && (!opts.deadline_ns || inline_deadline < opts.deadline_ns)) {
			opts.deadline_ns = inline_deadline;
			over_budget = true; /* if the deadline is hit, it is ours */
		}
		opts.max_rows = VG_ROWS_PER_BLOCK;
		opts.helpers = server->workers.helpers;
		opts.extra_stats = pairs;
		opts.nextra_stats = server_stats(server, pairs, 16);
		vg_result_sink_t sink = {sink_begin_set, sink_rows, s};
		if (vg_cq_handles(st))
			rc = vg_cq_exec(server, st, job->statement, job->statement_len, &sink, &qerr);
		else
			rc = vg_query_exec(st, server->store, &opts, &sink, &stats, &qerr);
	}
	vg_query_free(st);
	if (inline_deadline && (s->spilled || (over_budget && rc == VG_ETIMEOUT))) {
		vg_buf_clear(&s->frames);
		s->rows = 0;
		return false;
	}
	atomic_fetch_add(&server->workers.queries, 1);
	if (rc == VG_ECANCELED && atomic_load(&job->conn->closed)) {
		/* Nobody to tell. */
	} else if (rc) {
		const char *msg = qerr.message[0] ? qerr.message : vg_strerror(rc);
		vg_buf_t frame = VG_BUF_INIT;
		if (vg_frame_append_error(&frame, job->request_id, rc, msg, qerr.line, qerr.column,
					  false) == 0)
			vg_buf_append(&s->frames, frame.data, frame.len);
		vg_buf_release(&frame);
		vg_log(VG_LOG_DEBUG, "statement failed: %s", msg);
	} else {
		Vigil__V1__ResultEnd end = VIGIL__V1__RESULT_END__INIT;
		end.rows = s->rows;
		end.points_scanned = stats.points_scanned;
		end.elapsed_ns = (uint64_t)(vg_monotonic_ns() - started);
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = job->request_id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_RESULT_END;
		env.result_end = &end;
		vg_frame_append(&s->frames, &env);
	}
	return true;
}

static void run_job(vg_server_t *server, vg_query_job_t *job)
{
	job_sink_t s = {server, job, VG_BUF_INIT, 0,
			server->config.query_timeout_ns
				? job->received_ns + server->config.query_timeout_ns
				: 0,
			false, false};
	run_statement(server, job, &s, 0);
	if (hand_over(&s, true) != 0) {
		/* Without memory for the hand-over record the loop would never
		 * release the job; retry until it succeeds. */
		while (hand_over(&s, true) != 0) {
			struct timespec ms = {0, 1000000};
			nanosleep(&ms, NULL);
		}
	}
}

static void *worker_main(void *arg)
{
	vg_server_t *server = arg;
	vg_workers_t *w = &server->workers;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queue && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (!w->queue)
			break;
		vg_query_job_t *job = w->queue;
		w->queue = job->next;
		if (!w->queue)
			w->queue_tail = &w->queue;
		pthread_mutex_unlock(&w->lock);
		if (w->stopping)
			atomic_store(&job->cancel, true);
		if (job->sub)
			run_history(server, job);
		else
			run_job(server, job);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int vg_workers_start(vg_server_t *server)
{
	vg_workers_t *w = &server->workers;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->drained, NULL);
	w->queue_tail = &w->queue;
	w->outputs_tail = &w->outputs;
	atomic_init(&w->queries, 0);
	ev_async_init(&w->output_async, on_output);
	ev_async_start(server->loop, &w->output_async);
	unsigned n = server->config.query_threads ? server->config.query_threads : 1;
	w->threads = vg_calloc(n, sizeof *w->threads);
	if (!w->threads)
		return VG_ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		int rc = pthread_create(&w->threads[i], NULL, worker_main, server);
		if (rc) {
			w->running = w->nthreads > 0;
			return -rc;
		}
		w->nthreads++;
	}
	w->running = true;
	if (server->config.query_helpers)
		return vg_query_helpers_new(server->config.query_helpers, &w->helpers);
	return 0;
}

void vg_workers_submit(vg_server_t *server, vg_query_job_t *job)
{
	vg_workers_t *w = &server->workers;
	if (try_inline(server, job))
		return;
	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	*w->queue_tail = job;
	w->queue_tail = &job->next;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

void vg_workers_signal_drained(vg_server_t *server)
{
	vg_workers_t *w = &server->workers;
	if (!w->threads)
		return;
	pthread_mutex_lock(&w->lock);
	pthread_cond_broadcast(&w->drained);
	pthread_mutex_unlock(&w->lock);
}

/* Loop thread: unlinks a finished job from its connection and frees it. */
static void retire_job(vg_query_job_t *job)
{
	vg_conn_t *conn = job->conn;
	if (job->conn_prev)
		job->conn_prev->conn_next = job->conn_next;
	else if (conn->queries == job)
		conn->queries = job->conn_next;
	if (job->conn_next)
		job->conn_next->conn_prev = job->conn_prev;
	vg_free(job->statement);
	vg_free(job);
	vg_conn_unref(conn);
}

/* Loop thread: runs a read statement here and now if it is cheap (see the
 * top of the file); true when the job is done and freed. */
static bool try_inline(vg_server_t *server, vg_query_job_t *job)
{
	vg_workers_t *w = &server->workers;
	if (job->sub || atomic_load(&job->conn->closed) ||
	    atomic_load(&job->conn->out_len) >= vg_output_high_water(&server->config))
		return false;
	if (w->inline_skip > 0) {
		w->inline_skip--;
		return false;
	}
	job_sink_t s = {server, job, VG_BUF_INIT, 0,
			server->config.query_timeout_ns
				? job->received_ns + server->config.query_timeout_ns
				: 0,
			true, false};
	if (!run_statement(server, job, &s, vg_monotonic_ns() + VG_INLINE_BUDGET_NS)) {
		vg_buf_release(&s.frames);
		if (w->inline_misses < 6)
			w->inline_misses++;
		w->inline_skip = (1u << w->inline_misses) < VG_INLINE_MAX_SKIP
					 ? (1u << w->inline_misses)
					 : VG_INLINE_MAX_SKIP;
		return false;
	}
	w->inline_misses = 0;
	vg_conn_send(job->conn, &s.frames);
	vg_buf_release(&s.frames);
	retire_job(job);
	return true;
}

/* Loop thread: delivers frames and retires finished jobs. */
static void on_output(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)revents;
	vg_workers_t *w = container_of(a, vg_workers_t, output_async);
	pthread_mutex_lock(&w->lock);
	vg_output_t *list = w->outputs;
	w->outputs = NULL;
	w->outputs_tail = &w->outputs;
	pthread_mutex_unlock(&w->lock);
	while (list) {
		vg_output_t *out = list;
		list = out->next;
		vg_query_job_t *job = out->job;
		vg_conn_t *conn = job->conn;
		/* A subscription ended meanwhile sends nothing more; a windowed
		 * one folds the replayed points into its windows. */
		if (!job->sub)
			vg_conn_send(conn, &out->frames);
		else if (vg_sub_conn(job->sub) && vg_sub_raw_select(job->sub))
			vg_subs_history_points(job->sub, &out->frames);
		else if (vg_sub_conn(job->sub))
			vg_conn_send(conn, &out->frames);
		if (out->last && job->sub)
			vg_subs_history_done(job->sub, out->snapshot, out->result, out->message);
		if (out->last)
			retire_job(job);
		vg_buf_release(&out->frames);
		vg_free(out);
	}
}

void vg_workers_stop(vg_server_t *server)
{
	vg_workers_t *w = &server->workers;
	if (!w->running && !w->threads)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->wake);
	pthread_cond_broadcast(&w->drained);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	/* No statement runs any more: the workers are joined and inline ones
	 * run on this (the loop) thread. */
	vg_query_helpers_free(w->helpers);
	w->helpers = NULL;
	w->running = false;
	on_output(server->loop, &w->output_async, 0);
	ev_async_stop(server->loop, &w->output_async);
	vg_free(w->threads);
	w->threads = NULL;
	w->nthreads = 0;
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->drained);
}
