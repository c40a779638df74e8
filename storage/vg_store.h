/*
 * vg_store.h — the Vigil storage engine: series index and compressed
 * columnar chunks in one memory-mapped LMDB environment.
 *
 * A store is a data directory holding one LMDB environment.  Every series
 * (measurement, sorted tag set, field key) gets a compact integer id on its
 * first write.  Points go first into the series' head (compact blocks that
 * writes append to, durable as soon as their transaction commits); once a series' head holds a couple
 * of thousand points (VG_SEAL_POINTS) it is sealed into zstd-compressed chunks
 * of up to VG_CHUNK_MAX_POINTS points, cut to fill whole pages (see
 * chunk.h).  Readers run in LMDB read transactions and are never blocked by
 * the writer: they see the store exactly as of the last commit before they
 * began.
 *
 * Threads: a vg_store_t may be shared by any number of threads.  There is one
 * writer at a time: vg_store_write_begin() blocks while another write
 * transaction (or seal, delete, retention pass) is open.  Any number of read
 * transactions may be open at once in any threads; one transaction (and
 * its cursors) must be used by one thread at a time.  Keep read
 * transactions short: a reader pins the pages it sees, and a growing map
 * waits for open readers to end.
 *
 * Errors: every function returns 0 or a negative code of vg_error.h; after
 * an error in a write transaction the caller must vg_wtxn_abort() it.
 *
 * Strings are passed as (pointer, length) views (vg_str_t) and need not be
 * NUL-terminated.  Views returned by a read transaction point into the
 * memory map and stay valid until that transaction ends.
 */
#ifndef VG_STORE_H
#define VG_STORE_H

#include "chunk.h"

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2: compact head blocks (storage/head.c), ids records that share parts
 * and the `series` database keyed by entity (storage/series.c); a format-1
 * store is converted when it is opened. */
#define VG_STORE_FORMAT_VERSION 2
#define VG_STORE_MAX_TAGS 64
#define VG_STORE_NAME_MAX 255
#define VG_STORE_TAG_VALUE_MAX 1024

typedef struct vg_store vg_store_t;
typedef struct vg_wtxn vg_wtxn_t;
typedef struct vg_rtxn vg_rtxn_t;
typedef struct vg_cursor vg_cursor_t;
typedef uint32_t vg_series_id_t;

typedef struct vg_str {
	const char *data;
	size_t len;
} vg_str_t;

typedef struct vg_tag {
	vg_str_t key;
	vg_str_t value;
} vg_tag_t;

/* A series as named by a writer: tags in any order, keys unique. */
typedef struct vg_series_key {
	vg_str_t measurement;
	const vg_tag_t *tags;
	size_t ntags;
	vg_str_t field;
} vg_series_key_t;

/* A series as stored: tags sorted by key.  All views borrowed from the read
 * transaction that produced it. */
typedef struct vg_series_desc {
	vg_str_t measurement;
	vg_str_t field;
	size_t ntags;
	vg_tag_t tags[VG_STORE_MAX_TAGS];
} vg_series_desc_t;

typedef struct vg_store_options {
	bool sync;            /* fsync every commit (default true) */
	unsigned max_readers; /* concurrent read transactions (default 1022) */
	size_t map_size;      /* initial map size in bytes; 0 picks one.  The
			       * map grows on demand either way; tests set a
			       * small value to exercise growth. */
} vg_store_options_t;

/* ---- the store ------------------------------------------------------- */

/* Fills `opts` with the defaults. */
void vg_store_options_init(vg_store_options_t *opts);

/*
 * Opens (creating if needed) the store in directory `dir`.  `opts` may be
 * NULL for the defaults.  On failure returns the code and, if `err` is not
 * NULL, a message naming the directory and the reason (e.g. a store of
 * another format version: VG_EVERSION).  The store is freed with
 * vg_store_close(), which must not be called while transactions are open.
 */
int vg_store_open(const char *dir, const vg_store_options_t *opts, vg_store_t **out, char *err,
		  size_t errlen);
void vg_store_close(vg_store_t *store);

typedef struct vg_store_stats {
	uint64_t series;
	uint64_t chunks;
	uint64_t chunk_points; /* points sealed in chunks */
	uint64_t head_points;  /* points not yet sealed */
	uint64_t file_bytes;   /* size of the data file */
	uint64_t used_bytes;   /* pages in use (file minus free pages) */
	uint64_t map_bytes;    /* current size of the memory map */
} vg_store_stats_t;

int vg_store_stats(vg_store_t *store, vg_store_stats_t *stats);

/*
 * Writes a compacted copy of the store (no free pages, B-trees repacked)
 * into directory `dest_dir`, which must exist and hold no store.  Runs in
 * a read transaction: writers go on meanwhile and the copy is the snapshot
 * of the moment it began.  A consistent online backup, and how to reclaim
 * the free pages LMDB keeps in the file for reuse (stop, swap the copy in).
 */
int vg_store_backup(vg_store_t *store, const char *dest_dir);

/*
 * The data file's size and the part of it in use (the rest is free pages
 * LMDB keeps for reuse), both in bytes.  Cheap: reads the free-page list,
 * not the data.
 */
int vg_store_space(vg_store_t *store, uint64_t *file_bytes, uint64_t *used_bytes);

/*
 * Gives the free pages back to the file system: writes a compacted copy of
 * the store beside it (<dir>/compact.tmp/), syncs it, and swaps it in for
 * the data file.  Writers wait for the whole copy (it runs under the write
 * lock); readers go on during the copy and wait only for the swap.  Must
 * not be called with a transaction open in the calling thread.
 *
 * Crash-safe: until the copy is renamed over data.mdb the old file is
 * intact (a leftover compact.tmp/ is removed at the next open); after it,
 * the copy is complete.  Transaction ids (vg_wtxn_id, vg_rtxn_id) keep
 * increasing across a compaction.
 *
 * Returns 0, or an error; if the store cannot be reopened after the swap
 * (out of memory, say) every later transaction fails with VG_ESTORE.
 */
int vg_store_compact(vg_store_t *store);

/*
 * Seals, in write transactions of their own, every series whose head holds
 * at least `min_points` points (1: all of them).  Called by the server when
 * idle and by benchmarks before measuring size.
 */
int vg_store_seal(vg_store_t *store, uint32_t min_points);

/*
 * Deletes points older than each measurement's retention (or the global
 * one) relative to `now_ns`, reclaiming the space of whole chunks and
 * rewriting chunks that straddle the cutoff.  *removed (may be NULL) gets
 * the number of points removed.
 */
int vg_store_enforce_retention(vg_store_t *store, int64_t now_ns, uint64_t *removed);

/* ---- write transactions ---------------------------------------------- */

/* Begins the one write transaction; blocks while another is open. */
int vg_store_write_begin(vg_store_t *store, vg_wtxn_t **out);

/*
 * Commits everything done in `txn`, fsyncing when the store syncs, and frees
 * it.  When it returns 0 the data survives a crash and is visible to every
 * read transaction begun afterwards.  On error nothing of `txn` happened;
 * the transaction is freed either way.
 */
int vg_wtxn_commit(vg_wtxn_t *txn);
/* Discards everything done in `txn` and frees it. */
void vg_wtxn_abort(vg_wtxn_t *txn);

/* The commit number this transaction will have once committed; commit
 * numbers increase by one per commit.  A read transaction with
 * vg_rtxn_id() >= it sees this transaction's writes, one with a smaller id
 * does not. */
uint64_t vg_wtxn_id(const vg_wtxn_t *txn);

/*
 * Resolves a series key to its id, creating the series (and its index
 * entries) if it does not exist.  *created (may be NULL) tells which.  The
 * key is checked for lengths (names 1..255 bytes, tag values 1..1024, at
 * most 64 tags), NUL bytes and duplicate tag keys: VG_EINVAL.
 */
int vg_wtxn_series(vg_wtxn_t *txn, const vg_series_key_t *key, vg_series_id_t *id, bool *created);

/*
 * Writes n points of series `id`.  Times need not be sorted; a time that
 * repeats (within the call or versus earlier writes) replaces the earlier
 * value: last write wins.
 */
int vg_wtxn_put(vg_wtxn_t *txn, vg_series_id_t id, const int64_t *times, const double *values,
		size_t n);

/* Deletes the points of series `id` with t0 <= time < t1; *removed (may be
 * NULL) is increased by the number of points removed. */
int vg_wtxn_delete(vg_wtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, uint64_t *removed);

/* Deletes all points of series `id` and removes it from the index; its id is
 * never reused. */
int vg_wtxn_drop_series(vg_wtxn_t *txn, vg_series_id_t id, uint64_t *removed);

/* Sets the retention of `measurement` (NULL data: the global default) to
 * `duration_ns`; 0 means keep forever. */
int vg_wtxn_set_retention(vg_wtxn_t *txn, vg_str_t measurement, int64_t duration_ns);

/* Small named records for the layers above (continuous query definitions
 * and progress), committed atomically with the data of the same
 * transaction.  Keys 1..400 bytes; values up to 16 MiB. */
int vg_wtxn_meta_put(vg_wtxn_t *txn, vg_str_t key, const void *value, size_t len);
int vg_wtxn_meta_delete(vg_wtxn_t *txn, vg_str_t key);

/* ---- read transactions ----------------------------------------------- */

/* Begins a read transaction: a consistent snapshot as of the last commit. */
int vg_store_read_begin(vg_store_t *store, vg_rtxn_t **out);
/* Ends it; every view and cursor obtained from it becomes invalid. */
void vg_rtxn_end(vg_rtxn_t *txn);

/* The commit number of the snapshot: the last commit it sees. */
uint64_t vg_rtxn_id(const vg_rtxn_t *txn);

/*
 * Begins a second read transaction on exactly the snapshot of `parent`, for
 * another thread to read alongside it (one thread at a time per
 * transaction).  Returns 0 and *out, or -EAGAIN when a commit has landed
 * since the parent began (the two would see different data: fork right
 * after vg_store_read_begin to make that rare), VG_ENOMEM, or a store error.
 * The fork must end (vg_rtxn_end, in any thread) before its parent does.
 */
int vg_rtxn_fork(vg_rtxn_t *parent, vg_rtxn_t **out);

/* Looks a series key up: 0 and *id, or VG_ENOTFOUND. */
int vg_rtxn_series_find(vg_rtxn_t *txn, const vg_series_key_t *key, vg_series_id_t *id);
/* Describes series `id` (views borrowed from txn): 0 or VG_ENOTFOUND. */
int vg_rtxn_series_describe(vg_rtxn_t *txn, vg_series_id_t id, vg_series_desc_t *desc);

/* A set of series ids: sorted ascending, no duplicates.  Owned by the
 * caller: vg_idset_release() frees the contents. */
typedef struct vg_idset {
	vg_series_id_t *ids;
	size_t len;
	size_t cap;
} vg_idset_t;

#define VG_IDSET_INIT {NULL, 0, 0}
void vg_idset_release(vg_idset_t *set);
int vg_idset_add(vg_idset_t *set, vg_series_id_t id); /* append; id > last */
bool vg_idset_contains(const vg_idset_t *set, vg_series_id_t id);
/* out = a ∩ b, a ∪ b, a \ b.  `out` must be distinct from a and b; its old
 * contents are replaced. */
int vg_idset_intersect(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out);
int vg_idset_union(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out);
int vg_idset_subtract(const vg_idset_t *a, const vg_idset_t *b, vg_idset_t *out);

typedef enum vg_match_op {
	VG_MATCH_EQ,  /* tag = 'v'   ('' matches series without the tag) */
	VG_MATCH_NE,  /* tag != 'v'  (series without the tag match)      */
	VG_MATCH_RE,  /* tag =~ /r/  (series without the tag match if r matches '') */
	VG_MATCH_NRE, /* tag !~ /r/  */
} vg_match_op_t;

typedef struct vg_matcher {
	vg_match_op_t op;
	vg_str_t key;
	vg_str_t value;       /* for EQ and NE */
	const regex_t *regex; /* for RE and NRE; compiled by the caller */
} vg_matcher_t;

/* All series of a measurement (replaces *out's contents). */
int vg_rtxn_measurement_series(vg_rtxn_t *txn, vg_str_t measurement, vg_idset_t *out);
/* The series of a measurement with field key `field`. */
int vg_rtxn_field_series(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t field, vg_idset_t *out);
/* Whether the measurement has any series, in *exists; costs one key lookup
 * however many series it has.  Returns 0 or an error. */
int vg_rtxn_measurement_exists(vg_rtxn_t *txn, vg_str_t measurement, bool *exists);
/* out = the ids of `in` that are series of `measurement` with field key
 * `field` (= vg_rtxn_field_series() ∩ in, replacing out's contents; out
 * distinct from in).  When `in` is much smaller than the field's series, the
 * postings are searched for its ids instead of read whole: a leapfrog that
 * seeks the postings to the next id of `in` and skips the ids of `in` below
 * the posting found, so a run of ids between two postings costs one seek
 * and consecutive hits one step each (O(|in| log N) at worst). */
int vg_rtxn_field_filter(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t field,
			 const vg_idset_t *in, vg_idset_t *out);
/* The series of `measurement` that satisfy one matcher, resolved through the
 * tag postings (never by visiting every series). */
int vg_rtxn_match(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *matcher,
		  vg_idset_t *out);
/* out = vg_rtxn_match() ∩ in (replacing out's contents; out distinct from
 * in).  For tag = 'v' and a much smaller `in`, the tag's postings are
 * searched for the ids of `in` (leapfrog) instead of read whole, as
 * vg_rtxn_field_filter does. */
int vg_rtxn_match_filter(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *matcher,
			 const vg_idset_t *in, vg_idset_t *out);

/* For tag = 'v' (matcher EQ with a non-empty value): *count = the number of
 * series of `measurement` with it, and out = those series (as
 * vg_rtxn_match() gives them) when count <= limit, else out emptied and
 * nothing read; one postings key lookup either way, so that of two tags the
 * one with fewer series can be read and the other probed.  Returns 0 (count
 * 0 for a tag no series has), VG_EINVAL for any other matcher, VG_ENOMEM or
 * a store error. */
int vg_rtxn_match_upto(vg_rtxn_t *txn, vg_str_t measurement, const vg_matcher_t *matcher,
		       size_t limit, vg_idset_t *out, size_t *count);

/* Called once per name, in ascending byte order; a non-zero return stops the
 * listing and is returned by the lister.  The view is valid during the call. */
typedef int (*vg_name_fn)(void *ctx, vg_str_t name);

int vg_rtxn_list_measurements(vg_rtxn_t *txn, vg_name_fn fn, void *ctx);
int vg_rtxn_list_tag_keys(vg_rtxn_t *txn, vg_str_t measurement, vg_name_fn fn, void *ctx);
int vg_rtxn_list_tag_values(vg_rtxn_t *txn, vg_str_t measurement, vg_str_t key, vg_name_fn fn,
			    void *ctx);
int vg_rtxn_list_field_keys(vg_rtxn_t *txn, vg_str_t measurement, vg_name_fn fn, void *ctx);

/* Retention of `measurement` (NULL data: the global one); 0 = forever. */
int vg_rtxn_retention(vg_rtxn_t *txn, vg_str_t measurement, int64_t *duration_ns);
/* Every retention setting; the global one is reported with an empty name. */
typedef int (*vg_retention_fn)(void *ctx, vg_str_t measurement, int64_t duration_ns);
int vg_rtxn_list_retention(vg_rtxn_t *txn, vg_retention_fn fn, void *ctx);

/* Meta records: *value borrowed from txn.  VG_ENOTFOUND if absent. */
int vg_rtxn_meta_get(vg_rtxn_t *txn, vg_str_t key, vg_str_t *value);
/* Every record whose key starts with `prefix`, in key order. */
typedef int (*vg_meta_fn)(void *ctx, vg_str_t key, vg_str_t value);
int vg_rtxn_meta_scan(vg_rtxn_t *txn, vg_str_t prefix, vg_meta_fn fn, void *ctx);

/* ---- reading points -------------------------------------------------- */

typedef struct vg_agg {
	uint64_t points;     /* points in range, NaN included */
	uint64_t count;      /* non-NaN values: what aggregates use */
	double sum, min, max;
	int64_t first_time;  /* of the earliest non-NaN value */
	double first;
	int64_t last_time;   /* of the latest non-NaN value */
	double last;
} vg_agg_t;

/* Resets an accumulator to "nothing seen". */
void vg_agg_init(vg_agg_t *agg);
/* Adds n points (any order; first/last go by time, the later call winning
 * a tie for last). */
void vg_agg_add(vg_agg_t *agg, const int64_t *times, const double *values, size_t n);
/* Adds a whole chunk from its header (as vg_cursor_skip_chunk() gives it). */
void vg_agg_add_header(vg_agg_t *agg, const vg_chunk_header_t *header);

/*
 * count/sum/min/max/first/last of series `id` over [t0, t1), using the chunk
 * headers for every chunk wholly inside the range (no decompression).
 * Merges into *agg (call vg_agg_init first) so that several series can be
 * summed.
 */
int vg_rtxn_aggregate(vg_rtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, vg_agg_t *agg);

enum { VG_CURSOR_REVERSE = 1 };

/*
 * Iterates series `id` over [t0, t1) in time order (descending with
 * VG_CURSOR_REVERSE), merging chunks and unsealed points, each time once
 * (the last written value).  Freed with vg_cursor_close() before the
 * transaction ends.
 */
int vg_cursor_open(vg_rtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1, unsigned flags,
		   vg_cursor_t **out);
/*
 * Next block of points: *n > 0 and the arrays, or *n == 0 at the end.  The
 * arrays belong to the cursor and stay valid until the next call.
 */
int vg_cursor_next(vg_cursor_t *cursor, const int64_t **times, const double **values, size_t *n);
/*
 * If the cursor stands at the start of a whole chunk that ends before
 * `limit` (starts after it, in reverse) and that no unsealed point overlaps,
 * skips that chunk, copies its header into *summary and returns 1; returns
 * 0 when the caller must read points with vg_cursor_next() instead.  Lets
 * aggregation over time buckets use chunk headers.
 */
int vg_cursor_skip_chunk(vg_cursor_t *cursor, int64_t limit, vg_chunk_header_t *summary);
void vg_cursor_close(vg_cursor_t *cursor);

#endif
