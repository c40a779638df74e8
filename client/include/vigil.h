/*
 * vigil.h — libvigil, the C client library of the Vigil time-series database.
 *
 * This header is the whole manual: it includes only standard headers, every
 * handle is opaque, and each function says what it returns, who owns each
 * pointer and how long it stays valid.  Link with `pkg-config --libs vigil`
 * (libvigil.so or libvigil.a).  client/examples/write_and_query.c is a
 * complete program to start from.
 *
 * Objects
 *   vg_client_t   one connection to a vigild server (TCP or Unix socket).
 *   vg_batch_t    points being collected for one write; independent of any
 *                 connection, reusable after vg_batch_clear().
 *   vg_result_t   the buffered answer to a query: result sets of rows.
 *   subscriptions SUBSCRIBE statements on a client, named by a uint64_t id;
 *                 their rows arrive through a callback (see Subscriptions).
 *
 * Errors
 *   Every function that can fail returns int: 0 on success, a negative
 *   VG_E* code below, or -errno for a system error (e.g. -ECONNREFUSED).
 *   vg_strerror() names the code; vg_client_errstr() and vg_batch_errstr()
 *   give the detail of the last failure (the bad name, the server's
 *   message, "line 1, column 8: ..." for a syntax error).  A call that
 *   fails never calls its callback and leaves its objects as they were,
 *   except where a function below says otherwise.  The library never
 *   aborts and never exits: an allocation failure is VG_ENOMEM.
 *
 * Threads
 *   A vg_client_t is not thread-safe: use one per thread, or serialise all
 *   calls on it.  Batches and results are independent objects; different
 *   ones may be used in different threads at the same time, and a batch
 *   that no thread modifies may be written by several clients at once.
 *
 * Timeouts
 *   timeout_ms bounds how long a call waits for the server.  For
 *   vg_client_connect*() it bounds the whole connect and greeting.  For
 *   every later call it bounds each wait: the call fails with VG_ETIMEOUT
 *   when the server neither sends nor accepts a byte for timeout_ms, so a
 *   long result that keeps arriving is never cut off.  0 (or negative)
 *   waits forever.  A timeout while waiting for an answer leaves the
 *   connection usable: the late answer is recognised by its request id and
 *   discarded (a timed-out query is also cancelled on the server).  A
 *   timeout while sending closes the connection, since the server then
 *   holds part of a frame.
 *
 * Limits
 *   A request larger than the server's frame limit (vg_client_max_frame(),
 *   announced by the server, 16 MiB by default) is refused with VG_ELIMIT
 *   before anything is sent: split the batch.  A frame from the server
 *   larger than that limit or 64 MiB, whichever is larger, is a protocol
 *   error (VG_EPROTO) and closes the connection.
 *
 * Connection failures
 *   An I/O error, the server closing the connection, or a broken frame from
 *   the server (VG_EPROTO) closes the client: every later call returns
 *   VG_ECLOSED and vg_client_errstr() keeps the original reason.  Then
 *   vg_client_close() it and connect again — unless it holds
 *   subscriptions: vg_client_process() then reconnects the same client and
 *   resumes them (see Subscriptions), after which every call works again.
 */
#ifndef VIGIL_H
#define VIGIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
 * Error codes
 *
 * This block is a verbatim copy of the server's common/vg_error.h under the
 * same include guard, so a file may include both headers in either order
 * and sees one definition.  The values are part of the wire contract and
 * are never renumbered, only appended to; the library's tests check every
 * value below against the library's own.
 * ------------------------------------------------------------------------- */
#ifndef VG_ERROR_H
#define VG_ERROR_H

#define VG_EBASE (-30000)

enum {
	VG_ENOMEM = VG_EBASE - 1,     /* an allocation failed */
	VG_EINVAL = VG_EBASE - 2,     /* an argument or input is malformed */
	VG_ECORRUPT = VG_EBASE - 3,   /* stored or received bytes fail validation */
	VG_EVERSION = VG_EBASE - 4,   /* on-disk or wire format of another version */
	VG_ENOTFOUND = VG_EBASE - 5,  /* no such series, measurement, query, ... */
	VG_ELIMIT = VG_EBASE - 6,     /* a configured or hard limit was exceeded */
	VG_ESTORE = VG_EBASE - 7,     /* the storage layer (LMDB) reported an error */
	VG_EAGAIN = VG_EBASE - 8,     /* incomplete input: need more bytes */
	VG_ESYNTAX = VG_EBASE - 9,    /* a statement does not parse */
	VG_EPROTO = VG_EBASE - 10,    /* a peer broke the protocol */
	VG_ECLOSED = VG_EBASE - 11,   /* the connection or object is closed */
	VG_ETIMEOUT = VG_EBASE - 12,  /* a deadline passed */
	VG_ECANCELED = VG_EBASE - 13, /* the operation was cancelled */
	VG_EEXIST = VG_EBASE - 14,    /* the thing to create already exists */
	VG_EOVERFLOW = VG_EBASE - 15, /* a bounded buffer overflowed */
	VG_EAUTH = VG_EBASE - 16,     /* authentication failed or is missing */
	VG_EPERM = VG_EBASE - 17,     /* the authenticated role may not do this */
	VG_ETLS = VG_EBASE - 18,      /* TLS handshake, certificate or record failure */
	VG_ELAST = VG_EBASE - 19
};

/* A static, never-NULL message for `code` (0, -errno or VG_E*). */
const char *vg_strerror(int code);

#endif /* VG_ERROR_H */

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------- */

typedef struct vg_client vg_client_t;         /* a connection */
typedef struct vg_batch vg_batch_t;           /* points to write */
typedef struct vg_result vg_result_t;         /* a buffered query answer */
typedef struct vg_result_set vg_result_set_t; /* one group of rows in an answer */

/* One tag of a point.  Both strings are NUL-terminated and borrowed for the
 * duration of the call that receives them. */
typedef struct vg_tag {
	const char *key;
	const char *value;
} vg_tag_t;

/* The type of a result column (the values equal vigil.v1.ColumnType). */
typedef enum vg_column_type {
	VG_COLUMN_TIME = 1,    /* int64 ns since the epoch: vg_result_time() */
	VG_COLUMN_FLOAT = 2,   /* vg_result_float() */
	VG_COLUMN_STRING = 3,  /* vg_result_string() */
	VG_COLUMN_INTEGER = 4, /* whole numbers such as count(), as double: vg_result_float() */
} vg_column_type_t;

/* What the server reported at the end of a query. */
typedef struct vg_query_stats {
	uint64_t rows;           /* rows in all result sets */
	uint64_t points_scanned; /* stored points the server read */
	uint64_t elapsed_ns;     /* server-side execution time */
} vg_query_stats_t;

/* The address vigild listens on by default. */
#define VG_CLIENT_DEFAULT_ADDR "127.0.0.1:8445"
/* A size for connect error buffers that never truncates in practice. */
#define VG_CLIENT_ERRLEN 512

/* ---------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------- */

/*
 * Connects to a server and greets it (Hello / HelloOk, protocol version 1).
 *
 * addr: "host:port" ("127.0.0.1:8445", "db.example:8445", "[::1]:8445"), a
 * host alone (port 8445), "unix:/path/to/socket", or NULL for
 * VG_CLIENT_DEFAULT_ADDR.  The socket is non-blocking with TCP_NODELAY;
 * every address the name resolves to is tried in turn.  timeout_ms bounds
 * the whole call (0 waits forever) and becomes the client's timeout.
 *
 * On success *out is a new client; free it with vg_client_close().  On
 * failure *out is NULL and err (errlen bytes, may be NULL when errlen is 0)
 * holds a NUL-terminated message naming the address, e.g.
 * "127.0.0.1:8445: connect: Connection refused".
 *
 * Returns 0; -errno from the socket layer (-ECONNREFUSED, ...);
 * VG_EINVAL (malformed address); VG_ENOTFOUND (the host does not resolve);
 * VG_ETIMEOUT; VG_EVERSION (the server does not speak version 1);
 * VG_ECLOSED (the server closed the connection); VG_EPROTO; VG_ENOMEM.
 */
int vg_client_connect(const char *addr, int timeout_ms, vg_client_t **out, char *err,
                      size_t errlen);

/* Same, over the Unix socket at `path` (at most 107 bytes). */
int vg_client_connect_unix(const char *path, int timeout_ms, vg_client_t **out, char *err,
                           size_t errlen);

/*
 * Options of vg_client_connect_with(): a token for a server with an auth
 * file, and TLS.  Initialise with vg_client_options_init() (which sets
 * every field to its default: no token, no TLS, timeout 0), then set the
 * fields wanted; later versions may append fields, which init sets too.
 * The strings are borrowed for the duration of vg_client_connect_with()
 * only: the client keeps copies, for the reconnections that
 * vg_client_process() makes.
 */
typedef struct vg_client_options {
	int timeout_ms;              /* as vg_client_connect()'s */
	const char *token;           /* sent in the greeting (Hello.token); NULL or "": none */
	bool tls;                    /* TLS 1.2+; TCP addresses only */
	const char *tls_ca_file;     /* PEM CA certificates to trust; NULL: the system's */
	const char *tls_server_name; /* the name the server certificate must carry;
	                                NULL: the host of addr (a name or an IP address) */
} vg_client_options_t;

void vg_client_options_init(vg_client_options_t *o);

/*
 * Connects as vg_client_connect() does, with options (NULL: the defaults).
 *
 * With a token, the server's auth file decides what the connection may do
 * (its role: read, write or admin).  A request beyond the role fails with
 * VG_EPERM and vg_client_errstr() saying what was refused and why
 * ("permission denied: DELETE needs the write role; this connection has
 * read"); the connection stays usable.
 *
 * With tls, the server certificate must chain to a CA of tls_ca_file (or
 * of the system) and carry the host name or IP address (or
 * tls_server_name); there is no way to turn that check off.
 *
 * Returns what vg_client_connect() returns, and also: VG_EAUTH (the server
 * refused the token, or needs one it did not get; err has the server's
 * reason), VG_ETLS (the CA file cannot be loaded, or the handshake failed:
 * err says why, e.g. "127.0.0.1:8445: TLS handshake failed: certificate
 * verify failed: unable to get local issuer certificate"), VG_EINVAL
 * (tls with a unix: address).
 */
int vg_client_connect_with(const char *addr, const vg_client_options_t *opts, vg_client_t **out,
                           char *err, size_t errlen);

/* Closes the connection and frees the client and everything it owns.
 * Writes still in flight may or may not have been applied.  NULL is allowed. */
void vg_client_close(vg_client_t *c);

/* The detail of the client's last failure, "" if none yet.  The string is
 * owned by the client and valid until its next call. */
const char *vg_client_errstr(const vg_client_t *c);

/* Changes the timeout of later calls (see Timeouts above; 0 waits forever). */
void vg_client_set_timeout(vg_client_t *c, int timeout_ms);

/* True once the connection has failed or the server has closed it; every
 * call but vg_client_wait_ack() then returns VG_ECLOSED. */
bool vg_client_is_closed(const vg_client_t *c);

/* The server's version string from its greeting; owned by the client, valid
 * until vg_client_close(). */
const char *vg_client_server_version(const vg_client_t *c);

/* The largest frame (bytes, without the 4-byte length prefix) the server
 * accepts; larger requests fail with VG_ELIMIT. */
size_t vg_client_max_frame(const vg_client_t *c);

/* Round trip to the server (Ping / Pong).  Returns 0 or an error as above. */
int vg_client_ping(vg_client_t *c);

/* ---------------------------------------------------------------------------
 * Batches: collecting points to write
 *
 * A batch copies everything it is given.  It groups points into the
 * protocol's columnar blocks: one block per (measurement, tag set), tags in
 * any order; inside a block, fields that are written at the same
 * timestamps share one time column.  Adding a point whose timestamps do
 * not line up with its block's starts a new block, so any order of adds is
 * correct; the compact encoding comes from adding either row by row (every
 * field at t1, then every field at t2, ...) or column by column (each field
 * with the same times array).  Points of one series keep the order in
 * which they were added, so of two points at the same timestamp the one
 * added later wins.
 *
 * Names are checked when added, with the server's own rules:
 * measurement, tag keys and field keys match [A-Za-z_][A-Za-z0-9_.:-]* and
 * have 1..255 bytes; tag values are 1..1024 bytes of UTF-8; at most 64
 * tags, keys unique.  Values are any double, stored bit-exact (NaN, ±Inf,
 * -0.0); times are int64 ns since the Unix epoch.
 * ------------------------------------------------------------------------- */

/* Creates an empty batch in *out; free it with vg_batch_free().
 * Returns 0 or VG_ENOMEM (*out = NULL). */
int vg_batch_new(vg_batch_t **out);

/* Frees the batch and everything it holds.  NULL is allowed. */
void vg_batch_free(vg_batch_t *b);

/* Empties the batch, keeping some memory for reuse. */
void vg_batch_clear(vg_batch_t *b);

/*
 * Adds one point: `value` of `field` at `time_ns` in the series of
 * `measurement` and the ntags `tags` (NULL when ntags is 0).  All strings
 * are copied.  Returns 0; VG_EINVAL for a bad name, tag or count, with
 * vg_batch_errstr() naming it ("tag key 'ho st' in measurement 'cpu':
 * invalid character ' ' at byte 2"); VG_ENOMEM.  On failure the batch is
 * unchanged.
 */
int vg_batch_add(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                 const char *field, int64_t time_ns, double value);

/*
 * Adds n points of one series at once: values[i] at times_ns[i].  Both
 * arrays (n entries) are copied.  Adding several fields of a series with
 * the same times array builds one block.  Returns as vg_batch_add(); on
 * failure none of the n points was added.
 */
int vg_batch_add_points(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                        const char *field, const int64_t *times_ns, const double *values, size_t n);

/*
 * Adds one row: values[i] of field fields[i] for i < nfields, all at
 * `time_ns`, in the series of `measurement` and the ntags `tags` — what one
 * line of line protocol holds.  Equivalent to calling vg_batch_add() for
 * each field in turn, but the tags are sorted and the series looked up once
 * per row, so it is the fast way to add row-wise data.  Both arrays and all
 * strings are copied.  A row has at least one field, and each field name
 * appears in it once.  Returns as vg_batch_add(): VG_EINVAL for a bad name,
 * tag or count, with vg_batch_errstr() naming it ("field 'idle' in
 * measurement 'cpu': appears twice", "measurement 'cpu': no fields");
 * VG_ENOMEM.  On failure none of the row's values was added.
 */
int vg_batch_add_row(vg_batch_t *b, const char *measurement, const vg_tag_t *tags, size_t ntags,
                     const char *const *fields, const double *values, size_t nfields,
                     int64_t time_ns);

/* The number of points (field values) in the batch. */
size_t vg_batch_points(const vg_batch_t *b);

/* An upper bound on the bytes the batch takes on the wire as one Write
 * frame, length prefix included; exact to within 11 bytes unless a field
 * lags behind its block's timestamps.  Compare it with
 * vg_client_max_frame() to decide when to send. */
size_t vg_batch_encoded_size(const vg_batch_t *b);

/* The detail of the failure of the last add, "" if it succeeded.  Owned by
 * the batch, valid until its next call. */
const char *vg_batch_errstr(const vg_batch_t *b);

/* ---------------------------------------------------------------------------
 * Writing
 *
 * A write is acknowledged after the server has committed it durably.  The
 * batch is only read: it may be cleared, reused or freed as soon as the
 * call returns.  Writing an empty batch is VG_EINVAL.
 * ------------------------------------------------------------------------- */

/*
 * Sends the batch as one request and waits for its acknowledgement.
 * *points (may be NULL) receives the number of points the server stored.
 * Returns 0; the server's refusal mapped to a code (VG_EINVAL,
 * VG_ESTORE, VG_ELIMIT, ...) with its message in vg_client_errstr();
 * VG_ELIMIT if the batch exceeds vg_client_max_frame() (nothing sent);
 * VG_ETIMEOUT or a connection error (the write may or may not have been
 * applied; writing the same batch again is safe: a point written twice
 * is stored once).
 */
int vg_client_write(vg_client_t *c, const vg_batch_t *b, uint64_t *points);

/*
 * Pipelining: sends the batch without waiting.  *request_id (may be NULL)
 * receives the id that vg_client_wait_ack() reports for it.  Any number of
 * writes may be in flight; other calls on the client (queries, synchronous
 * writes) set aside acknowledgements that arrive meanwhile.  Returns 0 or an
 * error as for vg_client_write(); on error nothing is in flight for it.
 */
int vg_client_write_async(vg_client_t *c, const vg_batch_t *b, uint64_t *request_id);

/*
 * Waits for the next acknowledgement of a write sent with
 * vg_client_write_async(), in the order the server sends them.  Every such
 * write yields exactly one result here.
 *
 * Returns 0 with *request_id and *points (either may be NULL) set; or the
 * write's error (the server's refusal, or, when the connection failed
 * before the answer, the reason it failed — the write may or may not have
 * been applied) with *request_id naming the write and
 * vg_client_errstr() the detail.  Failures that belong to no write set
 * *request_id to 0 and leave every write in flight: VG_ENOTFOUND (none is
 * in flight), VG_ETIMEOUT, VG_ENOMEM, a non-fatal connection-level error
 * from the server, and VG_ECLOSED once every write has been reported.
 */
int vg_client_wait_ack(vg_client_t *c, uint64_t *request_id, uint64_t *points);

/* Writes sent with vg_client_write_async() whose result vg_client_wait_ack()
 * has not returned yet. */
size_t vg_client_pending_writes(const vg_client_t *c);

/* ---------------------------------------------------------------------------
 * Queries
 *
 * An answer is a list of result sets, one per group of the query (a
 * measurement and the values of its GROUP BY tags).  Columns are numbered
 * as the server sends them: when the set has a time column it is column 0,
 * named "time", of type VG_COLUMN_TIME; SHOW statements have none.
 * ------------------------------------------------------------------------- */

/*
 * Runs one statement and buffers the whole answer.  On success *out is the
 * answer; free it with vg_result_free().  On failure *out is NULL.
 * Returns 0; the server's error mapped to a code — VG_ESYNTAX with
 * vg_client_errstr() "line L, column C: message", VG_ENOTFOUND,
 * VG_EINVAL, VG_ETIMEOUT, ...; VG_ELIMIT if the statement exceeds the
 * frame limit; VG_ENOMEM (the query is cancelled on the server); a
 * connection error.
 */
int vg_client_query(vg_client_t *c, const char *statement, vg_result_t **out);

/* What a vg_query_cb is told. */
typedef enum vg_query_event {
	VG_QUERY_SET_BEGIN, /* a result set starts: names, tags, columns; no rows */
	VG_QUERY_ROWS,      /* the next rows of the current set */
} vg_query_event_t;

/*
 * Receives a streamed answer.  `set` describes the current result set; with
 * VG_QUERY_ROWS it holds only the rows that just arrived, and
 * vg_result_first_row() says where they start within the set.  `set` and
 * every string read from it are valid only until the callback returns.
 * Return 0 to go on; any other value stops the query (it is cancelled on
 * the server) and vg_client_query_stream() returns that value.
 */
typedef int (*vg_query_cb)(void *ctx, vg_query_event_t event, const vg_result_set_t *set);

/*
 * Runs one statement and hands the answer to `cb` as it arrives, so that an
 * answer of any size needs only one block of rows in memory.  ctx is passed
 * through.  *stats (may be NULL) receives the server's totals on success.
 * Returns as vg_client_query(), or the callback's non-zero value.  Once the
 * callback has been called, a failure may follow — the answer seen so far
 * is then incomplete.
 */
int vg_client_query_stream(vg_client_t *c, const char *statement, vg_query_cb cb, void *ctx,
                           vg_query_stats_t *stats);

/* ---------------------------------------------------------------------------
 * Results
 *
 * Pointers and strings read from a vg_result_t are owned by it and valid
 * until vg_result_free().  Accessors tolerate out-of-range indexes: they
 * return 0, false, NULL or "" as said.
 * ------------------------------------------------------------------------- */

/* Frees the answer and every set in it.  NULL is allowed. */
void vg_result_free(vg_result_t *r);

/* The number of result sets (0 when nothing matched). */
size_t vg_result_set_count(const vg_result_t *r);

/* Result set i (0-based), or NULL when i >= vg_result_set_count(). */
const vg_result_set_t *vg_result_set(const vg_result_t *r, size_t i);

/* The server's totals for the query. */
void vg_result_stats(const vg_result_t *r, vg_query_stats_t *out);

/* The set's name: the measurement, or the SHOW statement's subject. */
const char *vg_result_name(const vg_result_set_t *s);

/* The set's GROUP BY tags, in GROUP BY order; key and value of tag i
 * ("" when out of range). */
size_t vg_result_tag_count(const vg_result_set_t *s);
const char *vg_result_tag_key(const vg_result_set_t *s, size_t i);
const char *vg_result_tag_value(const vg_result_set_t *s, size_t i);

/* Columns: count, name ("" when out of range) and type (0 when out of
 * range). */
size_t vg_result_column_count(const vg_result_set_t *s);
const char *vg_result_column_name(const vg_result_set_t *s, size_t col);
vg_column_type_t vg_result_column_type(const vg_result_set_t *s, size_t col);

/* True if column 0 is the time column. */
bool vg_result_has_time(const vg_result_set_t *s);

/* Rows held by the set: all of them for a buffered answer; those of the
 * current block in a vg_query_cb. */
size_t vg_result_row_count(const vg_result_set_t *s);

/* The index within the whole set of the set's row 0: 0 for a buffered
 * answer; in a vg_query_cb, the rows delivered before this block. */
uint64_t vg_result_first_row(const vg_result_set_t *s);

/* The row's time in ns since the epoch; 0 if the set has no time column. */
int64_t vg_result_time(const vg_result_set_t *s, size_t row);

/* True if the cell holds no value (FILL(null), a missing field); also true
 * out of range.  Time cells always hold a value. */
bool vg_result_is_null(const vg_result_set_t *s, size_t row, size_t col);

/* For a FLOAT or INTEGER cell: true with *out = the value; false, *out
 * untouched, when the cell is null or not numeric (time cells are read with
 * vg_result_time()). */
bool vg_result_float(const vg_result_set_t *s, size_t row, size_t col, double *out);

/* For a STRING cell: the NUL-terminated value; NULL when the cell is null or
 * not a string.  Owned by the result (see above). */
const char *vg_result_string(const vg_result_set_t *s, size_t row, size_t col);

/* ---------------------------------------------------------------------------
 * Subscriptions
 *
 * vg_client_subscribe() sends a SUBSCRIBE statement; from then on the
 * server pushes rows as matching data is committed, and the library hands
 * them to the subscription's callback.  Callbacks run only inside
 * vg_client_process(), on the thread that calls it: rows that arrive while
 * the client is inside any other call (waiting for a write's ack, reading
 * a query's answer, subscribing) are queued, in arrival order, and
 * delivered by the next vg_client_process() — never lost, never delivered
 * from inside that other call.
 *
 * Event loops.  Poll vg_client_fd() for input and call
 * vg_client_process(c, 0) when it is readable, and also whenever
 * vg_client_has_queued() is true (after other calls, which may have read
 * and queued rows without the descriptor showing it).  While
 * subscriptions are being resumed — the connection is down (vg_client_fd()
 * is -1), or a subscription backs off after repeated overflows — also call
 * it on a timer (every 100 ms is plenty): it reconnects and resubscribes
 * when the backoff allows.  The descriptor changes after a reconnection.
 * A simple program just loops on vg_client_process(c, 1000), which does
 * all of this by itself.
 *
 * Resume.  When the connection is lost, vg_client_process() reconnects the
 * client to the same address (first attempt at once, then after 100 ms,
 * doubling up to 5 s; see vg_client_set_reconnect()) and subscribes again
 * with SINCE the latest row time it delivered; the same happens, on the
 * same connection, when the server ends a subscription because the client
 * read too slowly (OVERFLOW), or when rows cannot be queued
 * (vg_client_set_queue_limit(), out of memory).  Resuming is bounded:
 * after 20 reconnection attempts, or 20 resumes of one subscription, in a
 * row with no row delivered in between (nor, for a connection, 5 s of it
 * staying up), it gives up.  The application
 * sees neither a gap nor a duplicate: the library remembers, per group
 * (GROUP BY tag values), the latest time it delivered, resumes SINCE the
 * earliest of those, and drops the rows of each group at or before that
 * group's own latest time.  Precisely, and its limits:
 *  - exact when each group's rows arrive in time order — one series per
 *    group (GROUP BY every tag, or GROUP BY *) written in time order;
 *  - after a resume, a row at or before its group's last delivered time is
 *    never delivered, so a late point (older than rows already delivered
 *    for its group) that is written while, or after, the subscription was
 *    interrupted is not delivered either; rows with `update` set are
 *    always delivered;
 *  - a subscription that had delivered no row resumes with the statement's
 *    own SINCE (or none: then points written while it was interrupted are
 *    not pushed);
 *  - a server that refuses SINCE for the statement (older servers did for
 *    windowed subscriptions) gets it again without SINCE: the resume then
 *    says so (VG_SUB_RESUMED with code VG_EINVAL), and rows of the
 *    interruption may be missing;
 *  - a group that had delivered no row before the interruption gets its
 *    rows from the earliest time of the other groups on: if the
 *    connection is lost while the server is still sending the stored rows
 *    of a SINCE (which come group after group), the stored rows of groups
 *    not reached yet that are older than that are not delivered.
 * Every interruption and resume is reported to the callback
 * (VG_SUB_RESUMING, VG_SUB_RESUMED); if resuming fails for good the
 * subscription ends (VG_SUB_END with the reason).
 *
 * Memory.  Queued rows take at most the queue limit (16 MiB of frames by
 * default) plus one frame; past it the subscription whose rows do not fit
 * is resumed as above rather than growing the queue.
 * ------------------------------------------------------------------------- */

/* What a subscription callback is told. */
typedef enum vg_sub_event_kind {
	VG_SUB_ROWS = 1,     /* rows pushed: `set` holds them, `update` marks corrections */
	VG_SUB_RESUMING = 2, /* interrupted (connection lost, overflow); being resumed.
	                      * May come again before VG_SUB_RESUMED. */
	VG_SUB_RESUMED = 3,  /* subscribed again; rows continue without gap or duplicate
	                      * (unless `code` says otherwise) */
	VG_SUB_END = 4,      /* ended for good; the last event of the subscription */
} vg_sub_event_kind_t;

/* One event.  The struct and everything it points to are valid only until
 * the callback returns. */
typedef struct vg_sub_event {
	vg_sub_event_kind_t kind;
	uint64_t sub_id; /* the subscription's id, as vg_client_subscribe() set it */
	/* VG_SUB_ROWS: the rows of one group, read with the vg_result_*
	 * accessors: the name is the measurement, the tags are the group's
	 * GROUP BY tags (none without GROUP BY), column 0 is "time", then the
	 * selected columns; vg_result_first_row() counts the rows delivered
	 * before for this subscription.  NULL for other events. */
	const vg_result_set_t *set;
	/* VG_SUB_ROWS: these rows replace rows delivered before with the same
	 * time and tags (a window corrected by a late point). */
	bool update;
	/* VG_SUB_RESUMING: why (VG_ECLOSED or a connection error, VG_EOVERFLOW,
	 * VG_ENOMEM).  VG_SUB_RESUMED: 0; or VG_EINVAL when the server cannot
	 * replay this statement with SINCE (windowed subscriptions, today), so
	 * it was resumed live only and rows of the interruption may be missing
	 * (none is delivered twice).  VG_SUB_END: 0 when the server ended it
	 * cleanly, else the error (the server's, or the last reconnection
	 * failure). */
	int code;
	/* Detail for people, never NULL ("" if none). */
	const char *message;
} vg_sub_event_t;

/*
 * Receives a subscription's events, inside vg_client_process().  It may
 * call vg_client_unsubscribe() (its own subscription included: no event
 * follows), vg_client_subscribe(), queries and writes on the client; rows
 * those calls read are delivered after the callback returns.  It must not
 * call vg_client_process() (refused with VG_EINVAL) or vg_client_close().
 */
typedef void (*vg_subscribe_cb)(void *ctx, const vg_sub_event_t *event);

/*
 * Starts a subscription: sends `statement` ("SUBSCRIBE SELECT heart_rate
 * FROM vitals WHERE heart_rate > 120 GROUP BY patient", with SINCE and
 * LATENESS as the query language allows; copied) and waits for the
 * server to accept it.  On success *sub_id is its id (never 0, unique
 * within the client) and cb(ctx, ...) receives its events from the next
 * vg_client_process() on — rows from SINCE first, when the statement has
 * one — until VG_SUB_END or vg_client_unsubscribe().  ctx is passed
 * through and must stay valid until then.
 *
 * Returns 0; the server's refusal — VG_ESYNTAX with vg_client_errstr()
 * "line L, column C: message", VG_ENOTFOUND, VG_EINVAL (not a SUBSCRIBE
 * statement, or one the server cannot push) —; VG_EINVAL for a NULL
 * argument; VG_ELIMIT (statement over the frame limit); VG_ETIMEOUT (the
 * server may have started it: it is told to stop); VG_ENOMEM; a
 * connection error.  On failure the callback is never called and *sub_id
 * is untouched.
 */
int vg_client_subscribe(vg_client_t *c, const char *statement, vg_subscribe_cb cb, void *ctx,
                        uint64_t *sub_id);

/*
 * Ends a subscription: the server is told (if connected), its queued rows
 * are dropped, and its callback is never called again — not even with
 * VG_SUB_END — so ctx may be freed when this returns (or, from inside the
 * callback itself, when the callback returns).  Returns 0, or VG_ENOTFOUND
 * when no subscription has that id (it already ended).
 */
int vg_client_unsubscribe(vg_client_t *c, uint64_t sub_id);

/* The shape of a subscription's rows: name, GROUP BY tag keys (values ""),
 * columns and types, no rows; NULL when no subscription has that id.  With
 * GROUP BY * the server names no tag keys here: each pushed set carries
 * its own.  Owned by the client; valid until the subscription ends, and
 * it may change when the subscription is resumed (SELECT * after a field
 * was added). */
const vg_result_set_t *vg_client_subscription_shape(const vg_client_t *c, uint64_t sub_id);

/* The number of subscriptions that have not ended. */
size_t vg_client_subscriptions(const vg_client_t *c);

/* The connection's socket, to poll for input (POLLIN) in the caller's
 * event loop; -1 while the connection is down.  Owned by the client:
 * never read, write or close it. */
int vg_client_fd(const vg_client_t *c);

/*
 * Reads what the server has sent and delivers subscription events.  First
 * delivers what earlier calls queued, then waits up to timeout_ms for
 * input (0: not at all; negative: until something arrives), reads what is
 * available (a bounded amount, so a busy server cannot keep it forever)
 * and delivers it.  Returns when something was delivered or read, when
 * the time is up, or when a signal interrupts the wait.  It also acks
 * pipelined writes (for vg_client_wait_ack()).
 *
 * While the connection is down and subscriptions are alive, it resumes
 * them (see Subscriptions): a reconnection attempt it makes may take up
 * to the client's timeout (vg_client_set_timeout()) even when timeout_ms
 * is shorter.
 *
 * Returns the number of callbacks made (>= 0); VG_EINVAL when called from
 * a callback; VG_ECLOSED when the connection is down and no subscription
 * would bring it back; the last connection error when reconnecting was
 * given up (every subscription has then ended with VG_SUB_END); a
 * connection-level error the server sent; VG_ENOMEM.
 */
int vg_client_process(vg_client_t *c, int timeout_ms);

/* True when vg_client_process(c, 0) has work it can do without new input:
 * rows queued by other calls, frames already read, a resume that is due.
 * Check it after other calls before waiting on vg_client_fd(). */
bool vg_client_has_queued(const vg_client_t *c);

/*
 * Sets how vg_client_process() resumes subscriptions.  A lost connection
 * is reconnected at once, then after first_delay_ms, doubling up to
 * max_delay_ms between attempts.  A connection that is made but lost again
 * before it proves healthy (a row delivered, or max_delay_ms up) counts
 * as a failed attempt, so a server that accepts and drops at once is not
 * hammered.  After `attempts` attempts in a row every subscription ends
 * (VG_SUB_END with the last failure).  A subscription interrupted on a
 * live connection (OVERFLOW, a full queue) resumes at once the first
 * time, then with the same backoff, and ends after `attempts + 1`
 * interruptions in a row with no row delivered in between.  attempts 0:
 * never resume — subscriptions end at once; negative: without limit.  The
 * defaults are 20, 100 and 5000.  Returns 0; VG_EINVAL unless
 * 1 <= first_delay_ms <= max_delay_ms; VG_ENOMEM.
 */
int vg_client_set_reconnect(vg_client_t *c, int attempts, int first_delay_ms, int max_delay_ms);

/* Sets the most bytes of pushed frames the client keeps queued for
 * vg_client_process() (default 16 MiB); see Memory above.  Returns 0 or
 * VG_ENOMEM. */
int vg_client_set_queue_limit(vg_client_t *c, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_H */
