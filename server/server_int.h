/*
 * server_int.h — the server's internal structures, shared by server.c
 * (loop, listeners, shutdown), conn.c (one client connection), writer.c
 * (group commit) and worker.c (statements).
 *
 * Threads and ownership:
 *   - The loop thread owns every connection and all libev watchers.  Jobs
 *     handed to other threads keep a reference on their connection
 *     (conn->refs, touched only on the loop thread) so that a connection
 *     closed meanwhile stays allocated until its jobs come back.
 *   - The writer thread owns the store's write side; it takes every queued
 *     write job at once, applies them in one transaction, commits, and
 *     hands them back through an ev_async.
 *   - Worker threads run statements against read transactions and hand
 *     encoded result frames back through another ev_async.  They read only
 *     the atomics of a connection (closed, out_len), never its buffers.
 */
#ifndef VG_SERVER_INT_H
#define VG_SERVER_INT_H

#include "server.h"

#include "auth.h"
#include "vg_buf.h"
#include "vg_tls.h"
#include "vg_proto.h"
#include "vg_query.h"

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* A worker pauses when its connection holds more unsent output than the
 * high water mark, and hands frames over in chunks; both are cut down for a
 * small --max-output so that a statement's output never passes the bound
 * (which is only for clients that do not read). */
#define VG_OUTPUT_HIGH_WATER (4u << 20)
#define VG_OUTPUT_CHUNK (256u << 10)

static inline size_t vg_output_high_water(const vg_server_config_t *config)
{
	return config->max_output / 2 < VG_OUTPUT_HIGH_WATER ? config->max_output / 2
							     : VG_OUTPUT_HIGH_WATER;
}

static inline size_t vg_output_chunk(const vg_server_config_t *config)
{
	return config->max_output / 4 < VG_OUTPUT_CHUNK ? config->max_output / 4 : VG_OUTPUT_CHUNK;
}

typedef struct vg_conn vg_conn_t;
typedef struct vg_query_job vg_query_job_t;
typedef struct vg_sub vg_sub_t;
typedef struct vg_cq vg_cq_t;
typedef struct vg_held_push vg_held_push_t;

/* Fields one subscription may select. */
#define VG_MAX_PUSH_FIELDS 256

struct vg_conn {
	vg_server_t *server;
	int fd;
	ev_io read_watcher;
	ev_io write_watcher;
	vg_buf_t in;
	vg_buf_t out;
	size_t out_sent;          /* bytes of out already written */
	atomic_size_t out_len;    /* unsent bytes, mirrored for workers */
	atomic_bool closed;       /* socket gone: workers stop */
	bool hello_done;
	vg_role_t role;           /* what the connection may do (auth.h) */
	bool close_after_flush;   /* fatal error sent: close once flushed */
	bool reading;             /* requests are read (false: shutdown, fatal error) */
	/* TLS (NULL for plain connections).  A TLS read may need the socket
	 * writable and a write may need it readable: the flags say which
	 * operation waits on the other watcher. */
	vg_tls_t *tls;
	bool tls_checked;         /* the first byte was seen to be TLS */
	bool read_wants_write;
	bool write_wants_read;
	int refs;                 /* 1 for the socket + 1 per job in flight */
	vg_query_job_t *queries;  /* running statements, for Cancel */
	unsigned writes_pending;  /* writes queued, not yet acknowledged */
	vg_query_job_t *deferred, **deferred_tail; /* statements waiting for them */
	vg_sub_t *subs;           /* open subscriptions */
	ev_timer frame_timer;     /* a partial frame must complete in time */
	ev_timer idle_timer;      /* no request, nothing open: close */
	double last_active;       /* ev_now() of the last request or output */
	double last_output;       /* ev_now() of the last bytes the socket took */
	size_t accounted;         /* in.cap + out.cap as counted in server->buffered */
	bool read_paused;         /* not read while the server is over --max-buffered */
	char peer[80];
	vg_conn_t *prev, *next;
};

/* ---- writes ---------------------------------------------------------- */

typedef struct vg_write_job {
	vg_conn_t *conn;
	uint64_t request_id;
	Vigil__V1__Envelope *envelope; /* owned; the Write inside */
	int result;                    /* 0 or VG_E* after the commit */
	uint64_t commit;               /* its commit number (vg_wtxn_id) */
	vg_series_id_t *ids;           /* per block and field, in order */
	uint8_t *created;              /* 1: the series was created by it */
	uint64_t points;
	uint32_t series;
	struct vg_write_job *next;
} vg_write_job_t;

typedef struct vg_writer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	vg_write_job_t *pending, **pending_tail; /* queued by the loop */
	vg_write_job_t *done, **done_tail;       /* committed, for the loop */
	bool stopping;
	bool maintenance_due;
	ev_async done_async;
	uint64_t commits, points;
	bool running; /* thread started and not yet joined */
} vg_writer_t;

int vg_writer_start(vg_server_t *server);
/* Queues a job (loop thread). */
void vg_writer_submit(vg_server_t *server, vg_write_job_t *job);
/* Applies one job's blocks inside txn (writer thread). */
int vg_writer_apply(vg_wtxn_t *txn, vg_write_job_t *job);
/* Applies the jobs of a list (linked by next) in one write transaction and
 * commits it: the same points as vg_writer_apply() of each in turn, with
 * one put per series for the whole group (writer.c).  Sets each job's ids,
 * created, points, series and commit; 0 or the first error (nothing
 * written).  Writer thread, or tests. */
int vg_writer_commit(vg_store_t *store, vg_write_job_t *jobs);
void vg_write_job_free(vg_write_job_t *job);
/* Asks for a retention pass and idle seal on the writer thread. */
void vg_writer_request_maintenance(vg_server_t *server);
/* Stops after the queue drains; joins. */
void vg_writer_stop(vg_server_t *server);
/* True when no write job is queued or being applied. */
bool vg_writer_idle(vg_server_t *server);

/* ---- statements ------------------------------------------------------ */

struct vg_query_job {
	vg_conn_t *conn;
	uint64_t request_id;
	char *statement;
	size_t statement_len;
	vg_role_t role;                   /* the connection's, for the statement check */
	atomic_bool cancel;
	int64_t received_ns;
	vg_sub_t *sub;                    /* set: the SINCE part of a subscription */
	int64_t since;
	vg_query_job_t *next;             /* in the worker queue */
	vg_query_job_t *conn_prev, *conn_next; /* in conn->queries */
};

/* A block of encoded frames on its way from a worker to a connection. */
typedef struct vg_output {
	vg_query_job_t *job;
	vg_buf_t frames;
	bool last; /* the job is finished and may be freed */
	/* With last, for a subscription's SINCE part: */
	int result;
	uint64_t snapshot;
	char message[256];
	struct vg_output *next;
} vg_output_t;

typedef struct vg_workers {
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t drained; /* some connection's output fell below high water */
	vg_query_job_t *queue, **queue_tail;
	vg_output_t *outputs, **outputs_tail;
	bool stopping;
	ev_async output_async;
	atomic_uint_fast64_t queries;
	bool running;
	/* Loop thread only: statements tried inline that ran past the budget
	 * in a row, and how many statements to skip trying before the next
	 * attempt (worker.c, try_inline). */
	unsigned inline_misses, inline_skip;
	/* Threads a statement may share its groups with (query/helpers.c),
	 * for the workers and inline statements alike. */
	vg_query_helpers_t *helpers;
} vg_workers_t;

int vg_workers_start(vg_server_t *server);
/* Runs the SINCE part of a subscription on a worker (loop thread). */
int vg_workers_submit_history(vg_conn_t *conn, vg_sub_t *sub, int64_t since);
void vg_workers_submit(vg_server_t *server, vg_query_job_t *job);
void vg_workers_stop(vg_server_t *server);
/* Wakes workers waiting for output to drain (loop thread). */
void vg_workers_signal_drained(vg_server_t *server);

/* ---- the server ------------------------------------------------------ */

struct vg_server {
	vg_server_config_t config;
	vg_store_t *store;
	vg_auth_t *auth;        /* NULL: no --auth-file, every request allowed */
	vg_tls_context_t *tls;  /* NULL: the TCP listener is plain */
	struct ev_loop *loop;
	int tcp_fd, unix_fd;
	int port;
	char *unix_path;
	ev_io tcp_watcher, unix_watcher;
	ev_signal sigint_watcher, sigterm_watcher;
	ev_async stop_async;
	/* Keeps the loop polling without sleeping for a moment after a request
	 * (vg_server_spin), so the next one is not delayed by a wake-up. */
	ev_idle spin_watcher;
	double spin_until;
	ev_timer maintenance_timer;
	ev_timer window_timer; /* wall-clock closing of subscription windows */
	ev_timer shutdown_timer;
	ev_timer buffers_timer; /* runs while reading is paused (conn.c) */
	/* Bytes of every connection's input and output buffers (loop thread
	 * writes, workers read) against --max-buffered. */
	atomic_size_t buffered;
	bool reading_paused;
	double over_since; /* ev_now() when the buffers went over the cap; 0: under */
	vg_conn_t *conns;
	unsigned nconns;
	bool shutting_down;
	double shutdown_started;
	vg_writer_t writer;
	vg_workers_t workers;
	int64_t started_ns;
	atomic_uint_fast64_t connections_total;
	/* Mirrors of nconns and nsubs for SHOW STATS on worker threads. */
	atomic_uint_fast64_t stat_connections, stat_subscriptions;
	vg_sub_t **sub_buckets; /* subscriptions by measurement (subs.c) */
	size_t nsubs;
	struct vg_sid_node **sid_buckets; /* series id -> subscriptions (subs.c) */
	uint64_t publish_generation;
	pthread_mutex_t cq_lock; /* continuous queries: workers and the writer */
	vg_cq_t *cqs;
};

/* cq.c */
int vg_cq_load(vg_server_t *server);
void vg_cq_release(vg_server_t *server);
bool vg_cq_handles(const vg_statement_t *st);
/* CREATE / DROP / SHOW CONTINUOUS QUERY (worker threads). */
int vg_cq_exec(vg_server_t *server, const vg_statement_t *st, const char *text, size_t text_len,
	       const vg_result_sink_t *sink, vg_query_error_t *err);
/* Materializes due windows (writer thread); appends one job per window,
 * committed, to *done for publication. */
int vg_cq_run(vg_server_t *server, vg_write_job_t **done);
bool vg_cq_any(vg_server_t *server);

/* window.c: the state of one windowed subscription (loop thread). */
typedef struct vg_window_state vg_window_state_t;
typedef struct {
	const Vigil__V1__WriteBlock *block;
	size_t row;
} vg_window_row_t;
int vg_window_new(const vg_select_t *sel, int64_t lateness, vg_window_state_t **out, char *err,
		  size_t errlen);
void vg_window_free(vg_window_state_t *w);
/* Adds a committed block's matching points; appends Push frames for the
 * windows that closed or changed to out. */
int vg_window_add_block(vg_window_state_t *w, uint64_t sub_id, const Vigil__V1__WriteBlock *block,
			int64_t now, vg_buf_t *out);
/* Closes windows whose end plus lateness the wall clock passed. */
int vg_window_tick(vg_window_state_t *w, uint64_t sub_id, int64_t now, vg_buf_t *out);
bool vg_window_lookup(void *ctx, vg_str_t field, double *value);
/* The field of a write block named `name`, or NULL (subs.c). */
const Vigil__V1__WriteField *vg_write_block_field(const Vigil__V1__WriteBlock *b, const char *name);
/* What a subscription sees of a block: cols[i] = the block's field
 * fields[i] (or NULL), tags[] = its tags as views (block->n_tags of them,
 * at most VG_MAX_TAGS, checked on arrival).  False when the block carries
 * none of the fields (subs.c). */
bool vg_write_block_view(const Vigil__V1__WriteBlock *b, char *const *fields, size_t nfields,
			 const Vigil__V1__WriteField **cols, vg_tag_t *tags);

/* subs.c (loop thread) */
/* Wall-clock closing of windowed subscriptions (the server's tick). */
void vg_subs_tick(vg_server_t *server);
int vg_subs_init(vg_server_t *server);
void vg_subs_release(vg_server_t *server);
void vg_subs_subscribe(vg_conn_t *conn, uint64_t id, const Vigil__V1__Subscribe *req);
void vg_subs_unsubscribe(vg_conn_t *conn, uint64_t sub_id);
/* Pushes what a committed write job means to every matching subscription. */
void vg_subs_publish(vg_server_t *server, const vg_write_job_t *job);
/* The SINCE part finished: flush the held live pushes newer than it. */
void vg_subs_history_done(vg_sub_t *sub, uint64_t snapshot, int rc, const char *message);
void vg_subs_conn_closed(vg_conn_t *conn);
vg_conn_t *vg_sub_conn(const vg_sub_t *sub);
uint64_t vg_sub_id(const vg_sub_t *sub);
const vg_statement_t *vg_sub_statement(const vg_sub_t *sub);
/* A windowed subscription's raw SELECT (its fields, GROUP BY *) for the
 * SINCE replay; NULL for raw subscriptions. */
const vg_select_t *vg_sub_raw_select(const vg_sub_t *sub);
/* Folds replayed points (Write frames) into a windowed subscription. */
void vg_subs_history_points(vg_sub_t *sub, const vg_buf_t *frames);

/* conn.c */
/* Takes over an accepted socket; tls (borrowed from the server) makes it a
 * TLS connection. */
void vg_conn_accept(vg_server_t *server, int fd, const char *peer, vg_tls_context_t *tls);
/* Appends a frame to the connection's output and starts writing. */
void vg_conn_send(vg_conn_t *conn, const vg_buf_t *frames);
void vg_conn_send_error(vg_conn_t *conn, uint64_t id, int code, const char *message, bool fatal);
/* A non-fatal error with a statement position. */
void vg_conn_send_error_at(vg_conn_t *conn, uint64_t id, int code, const char *message,
			   uint32_t line, uint32_t column);
/* Queues frames even past --max-output (small control frames only). */
void vg_conn_send_unbounded(vg_conn_t *conn, const vg_buf_t *frames);
void vg_conn_close(vg_conn_t *conn);
/* Drops a job's reference (loop thread); frees a closed connection. */
void vg_conn_unref(vg_conn_t *conn);
/* A write of this connection was acknowledged: releases statements that
 * were waiting for it (loop thread). */
void vg_conn_write_done(vg_conn_t *conn);
/* Stops reading new requests (shutdown). */
void vg_conn_stop_reading(vg_conn_t *conn);
/* True when the connections' buffers together are at --max-buffered. */
static inline bool vg_server_over_buffered(vg_server_t *server)
{
	return atomic_load(&server->buffered) >= server->config.max_buffered;
}
/* The buffers timer: sheds the largest unsent output while over the cap
 * and resumes reading below it (loop thread). */
void vg_conn_check_buffers(struct ev_loop *loop, ev_timer *w, int revents);
/* After a request: poll without sleeping for VG_SPIN_S (loop thread). */
void vg_server_spin(vg_server_t *server);
/* Checks every block of a write before anything is queued, so the writer
 * only meets storage failures: vg_write_block_check() on each block, and no
 * timestamp INT64_MAX (a scan range [t0, t1) cannot include it).  Returns 0,
 * VG_EINVAL with the reason in err, or VG_ENOMEM.  Pure: fuzz/fuzz_frame.c
 * calls it on decoded envelopes. */
int vg_conn_check_write(const Vigil__V1__Write *write, char *err, size_t errlen);

/* FNV-1a over bytes, for the server's small hash tables. */
static inline uint64_t vg_hash_bytes(const char *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * UINT64_C(0x100000001b3);
	return h;
}

int64_t vg_now_ns(void);
int64_t vg_monotonic_ns(void);

#endif
