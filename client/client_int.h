/*
 * client_int.h — the internals of libvigil shared by client.c, batch.c and
 * result.c, and by the library's own tests.  Never installed: programs use
 * include/vigil.h only.
 *
 * The split: batch.c turns points into vigil.v1.Write messages and knows
 * nothing of sockets; result.c turns ResultSet/ResultRows messages into the
 * accessible vg_result_set_t and knows nothing of sockets either; client.c
 * owns the socket, the framing and the conversation, and calls the other
 * two through the functions below.  subscribe.c keeps the subscriptions of
 * a client: client.c hands it the frames that belong to them, and it uses
 * client.c's connection through the "Connection internals" below.
 */
#ifndef VG_CLIENT_INT_H
#define VG_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg_buf.h"
#include "vg_error.h"
#include "vg_proto.h"
#include "vigil.h"

/* Largest frame accepted from a server (the Envelope, without the prefix),
 * unless the server announced a larger max_frame: a server never sends
 * frames larger than it accepts (docs/protocol.md, Framing).  This only
 * stops a corrupt length prefix from making the client buffer gigabytes. */
#define VG_CLIENT_MAX_INCOMING (64u * 1024u * 1024u)

/* Size of the errstr buffers of clients and batches. */
#define VG_CLIENT_ERRSTR 512

/* ---------------------------------------------------------------------------
 * Batches (batch.c)
 *
 * A batch is a list of groups — distinct (measurement, sorted tag set) —
 * and a list of blocks, each belonging to one group.  Invariants, checked
 * by vg_batch_check():
 *  - every group has a unique canonical key "m\0k1\0v1\0...kn\0vn\0", tags
 *    sorted by key, and is found through the hash table `slots`;
 *  - a group's open_block is its newest block, the only one that receives
 *    points; older blocks of the group are closed for good;
 *  - in a block, field i's values belong to the first fields[i].n entries of
 *    the block's times (a prefix), 1 <= fields[i].n <= ntimes, the longest
 *    field has exactly ntimes values, and field names are unique;
 *  - the table holds exactly one slot per group;
 *  - points == the sum of all fields' n.
 * ------------------------------------------------------------------------- */

typedef struct vg_batch_field {
	char *name; /* owned */
	double *values;
	size_t n, cap;
} vg_batch_field_t;

typedef struct vg_batch_block {
	size_t group; /* index into vg_batch.groups */
	int64_t *times;
	size_t ntimes, tcap;
	vg_batch_field_t *fields;
	size_t nfields, fcap;
	size_t hint; /* index of the field used last, to skip the search */
} vg_batch_block_t;

typedef struct vg_batch_group {
	char *key; /* owned; the canonical key, keylen bytes */
	size_t keylen;
	uint64_t hash;
	size_t ntags;
	size_t open_block; /* index into vg_batch.blocks */
} vg_batch_group_t;

/* A field of a group's open block that an add may lengthen, and its length
 * before the add: what a failed add restores. */
typedef struct vg_batch_mark {
	size_t field; /* index into the block's fields, or SIZE_MAX if absent */
	size_t n;
} vg_batch_mark_t;

struct vg_batch {
	vg_batch_group_t *groups;
	size_t ngroups, gcap;
	size_t *slots; /* open addressing: 0 = empty, else group index + 1 */
	size_t nslots; /* 0 or a power of two, at least twice ngroups */
	vg_batch_block_t *blocks;
	size_t nblocks, bcap;
	size_t points;
	vg_buf_t scratch;       /* the key being looked up */
	vg_batch_mark_t *marks; /* vg_batch_add_row()'s marks, one per field */
	size_t mcap;
	char errstr[VG_CLIENT_ERRSTR];
};

/* Checks every invariant above; returns 0 or VG_ECORRUPT with a message in
 * err.  For tests. */
int vg_batch_check(const vg_batch_t *b, char *err, size_t errlen);

/* The number of blocks (not WriteBlocks: a block whose fields lag is sent
 * as several).  For tests. */
size_t vg_batch_block_count(const vg_batch_t *b);

/*
 * A vigil.v1.Write built over a batch's memory.  The strings and arrays the
 * message points to are borrowed from the batch: the message is valid only
 * while the batch is not modified or freed.  Only the arrays of message
 * structs below are owned (free with vg_write_msg_release()).
 */
typedef struct vg_write_msg {
	Vigil__V1__Write write;
	Vigil__V1__WriteBlock *blocks;
	Vigil__V1__WriteBlock **block_ptrs;
	Vigil__V1__Tag *tags;
	Vigil__V1__Tag **tag_ptrs;
	Vigil__V1__WriteField *fields;
	Vigil__V1__WriteField **field_ptrs;
} vg_write_msg_t;

/* Fills *m (which it initialises) from the batch.  Returns 0 or VG_ENOMEM
 * (nothing to release). */
int vg_batch_to_write(const vg_batch_t *b, vg_write_msg_t *m);
void vg_write_msg_release(vg_write_msg_t *m);

/* ---------------------------------------------------------------------------
 * Results (result.c)
 *
 * A set stores rows column by column, grown geometrically: times[] when
 * has_time, and per other column either doubles or offsets into the
 * `strings` arena, plus a null bitmap.  Only rows [0, nrows) are
 * meaningful; capacities are all `cap` rows.
 * ------------------------------------------------------------------------- */

typedef struct vg_result_column {
	double *floats; /* FLOAT and INTEGER columns */
	size_t *offs;   /* STRING columns: offsets into strings */
	uint8_t *nulls; /* bit r set: row r is null; (cap + 7) / 8 bytes */
} vg_result_column_t;

struct vg_result_set {
	char *text;   /* owned; every header string, NUL-terminated, back to back */
	char **names; /* owned; 2 * ntags tag keys and values, then ncols columns */
	size_t ntags;
	size_t ncols;
	vg_column_type_t *types; /* owned; ncols entries */
	bool has_time;
	size_t nrows, cap;
	uint64_t first_row;
	int64_t *times;
	vg_result_column_t *cols; /* ncols entries; cols[0] unused when has_time */
	vg_buf_t strings;
};

struct vg_result {
	vg_result_set_t **sets;
	size_t nsets, cap;
	vg_query_stats_t stats;
};

/* Sets the set up from a ResultSet header, validating it.  Returns 0,
 * VG_EPROTO (message in err) or VG_ENOMEM; on failure the set holds nothing
 * (vg_result_set_release() is still allowed). */
int vg_result_set_init(vg_result_set_t *s, const Vigil__V1__ResultSet *rs, char *err,
                       size_t errlen);

/* Frees the set's contents (not the struct). */
void vg_result_set_release(vg_result_set_t *s);

/* Appends a block of rows after validating it against the header.  Returns
 * 0, VG_EPROTO (message in err) or VG_ENOMEM; on failure the set is
 * unchanged. */
int vg_result_set_append(vg_result_set_t *s, const Vigil__V1__ResultRows *rows, char *err,
                         size_t errlen);

/* Forgets the rows held (first_row advances past them), keeping memory:
 * the streaming reader's "next block". */
void vg_result_set_drop_rows(vg_result_set_t *s);

/* A new empty answer in *out.  Returns 0 or VG_ENOMEM. */
int vg_result_new(vg_result_t **out);

/* Appends a set initialised from rs; *set = the new set, owned by r.
 * Returns as vg_result_set_init(); on failure r is unchanged. */
int vg_result_add_set(vg_result_t *r, const Vigil__V1__ResultSet *rs, vg_result_set_t **set,
                      char *err, size_t errlen);

/* Keeps only the rows i of the set with keep[i] true, in order: the
 * duplicate filter of a resumed subscription.  Allocates nothing. */
void vg_result_set_keep_rows(vg_result_set_t *s, const bool *keep);

/* ---------------------------------------------------------------------------
 * Subscriptions (subscribe.c)
 *
 * A client's subscriptions, the queue of their frames not yet delivered,
 * and the reconnection state.  Allocated by the first vg_client_subscribe()
 * and freed by vg_client_close().
 * ------------------------------------------------------------------------- */

typedef struct vg_subs vg_subs_t;

/* Offered every frame that no request is waiting for (client.c, route()).
 * Returns true if the frame belongs to a subscription: the frame is then
 * owned by subscribe.c (queued for vg_client_process()).  `frame_bytes` is
 * its size on the wire, which the queue counts against its limit.  Never
 * calls a callback and never fails: a frame that cannot be queued (limit,
 * out of memory) makes its subscription resume later instead. */
bool vg_subs_claim(vg_client_t *c, vg_subs_t *s, Vigil__V1__Envelope *env, size_t frame_bytes);

/* Frees the subscriptions and their queue without calling any callback.
 * NULL is allowed. */
void vg_subs_free(vg_subs_t *s);

/* ---------------------------------------------------------------------------
 * Connection internals (client.c) for subscribe.c
 *
 * Return codes and errstr as the public calls; none calls a callback.
 * ------------------------------------------------------------------------- */

/* The client's subscription table slot (NULL until subscribe.c fills it). */
vg_subs_t **vg_client_subs(vg_client_t *c);

/* A fresh request id (never reused on this client, across reconnections). */
uint64_t vg_client_take_id(vg_client_t *c);

/* Sends one request; VG_ECLOSED when the connection is down. */
int vg_client_send(vg_client_t *c, const Vigil__V1__Envelope *env, const char *what);

/* Sends one request if the connection is up, best effort: errstr is kept. */
void vg_client_send_quietly(vg_client_t *c, const Vigil__V1__Envelope *env, const char *what);

/* Waits for the next frame of request `id` (other frames are routed as
 * usual); *env is the caller's to free. */
int vg_client_await(vg_client_t *c, uint64_t id, Vigil__V1__Envelope **env);

/* Puts a server Error into errstr and returns its code (a fatal one closes
 * the connection). */
int vg_client_server_error(vg_client_t *c, const Vigil__V1__Error *e);

/* Sets errstr; returns code. */
int vg_client_set_error(vg_client_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Closes the connection with VG_EPROTO: "unexpected <body> frame <what>". */
int vg_client_fail_protocol(vg_client_t *c, const char *what, const Vigil__V1__Envelope *env);

/* 0 while the connection is up; else why it closed (*reason, owned by the
 * client). */
int vg_client_closed_code(const vg_client_t *c, const char **reason);

/* Connects a closed client again to the same address and greets the
 * server; the client's timeout bounds the attempt.  Returns 0 or the
 * failure (the client stays closed, with that failure as its reason). */
int vg_client_reopen(vg_client_t *c);

/* Routes every whole frame already buffered, without reading the socket. */
int vg_client_route_buffered(vg_client_t *c);

/* True if a whole frame (or a broken one) is buffered, waiting for routing,
 * or decrypted TLS bytes wait inside the session (poll() cannot see them). */
bool vg_client_has_buffered_frame(const vg_client_t *c);

/* Reads what the socket has, waiting up to timeout_ms for it (0: not at
 * all; negative: forever; a signal ends the wait), then routes every whole
 * frame.  Returns 1 if bytes arrived, 0 if none did, or a failure. */
int vg_client_receive(vg_client_t *c, int timeout_ms);

#endif
