/*
 * store_int.h — internals of the storage engine shared by its files.
 *
 * The LMDB environment holds these named databases (all keys big-endian so
 * that byte order is numeric order):
 *
 *   meta      "format" -> u32 version; "next_id" -> u32;
 *             "ret:" <measurement> -> i64 retention ns ("ret:" alone: global)
 *   kv        free-form records of the layers above (vg_wtxn_meta_put)
 *   series    hash32(entity) -> dup (hash32(canonical key), u32 id), 8
 *             bytes each (DUPSORT|DUPFIXED; the entity: measurement and tags
 *             but the last, see series.c); hashes may collide, so lookups
 *             compare the canonical key
 *   ids       u32 id -> canonical key, or the parts of it that differ from
 *             a nearby reference series' (see series.c, "ids records")
 *   postings  'M' m                 -> dup u32 ids of every series of m
 *             'T' m 0x00 k 0x00 v   -> dup u32 ids of series with tag k=v
 *             'F' m 0x00 f          -> dup u32 ids of series with field f
 *             (tag values too long for an LMDB key are cut and followed by
 *             0xFF and a hash; see series.c)
 *   chunks    u32 id, u64 flipped min_time -> sealed chunk (chunk.h)
 *   head      u32 id, u32 seq -> head block of unsealed points (head.c)
 *
 * Invariants:
 *   - the chunks of one series never overlap in time, so a reader walks them
 *     in key order;
 *   - every head point is newer (written later) than every chunk point of
 *     its series, and a head block with a larger seq is newer than one with
 *     a smaller seq: on equal times the newer one wins;
 *   - store->heads[id] mirrors, for the writer, how many points and which
 *     next seq each series' head has (or VG_HEAD_UNKNOWN: not read yet).
 *     It is changed only inside a write transaction, which logs the old
 *     values so that an abort restores them; every change of a series' head
 *     blocks is preceded by vg_wtxn_head_touch(), so an entry still unknown
 *     describes the head as the transaction began.
 */
#ifndef VG_STORE_INT_H
#define VG_STORE_INT_H

#include "vg_store.h"

#include "vg_buf.h"

#include <lmdb.h>
#include <pthread.h>
#include <string.h>

/* In-order writes extend the newest head block while it stays within both
 * limits: under half a page (never an overflow page), and few enough points
 * that encoding a block again (head.c) stays cheap. */
#define VG_HEAD_BLOCK_MAX 984
#define VG_HEAD_MERGE_POINTS 128

/*
 * A series' head is sealed at commit once it holds this many points.  Below
 * VG_CHUNK_MAX_POINTS on purpose: raw head points cost ~16 bytes each plus
 * B-tree overhead and their pages are freed again by the seal, so a small
 * head keeps the file's high-water mark (and the free pages in it) small;
 * the seal merges into the previous chunk until it is full, so chunks still
 * reach full size.  But every seal decodes and re-encodes that unfinished
 * tail chunk, so the threshold sets how often each point is compressed
 * during a load: at 512, a cpu-full chunk (~5,600 points) was encoded ~11
 * times on its way to full size and sealing took 2,100 of the 3,700
 * instructions per point of engine ingest; at 2,048 it is ~3 times (790
 * instructions per point).  The head is bounded in time too: vigild seals
 * every head at its maintenance pass (every minute) and when writes pause.
 */
#define VG_SEAL_POINTS 2048

/* Bytes of an LMDB overflow page run not available to the value. */
#define VG_OVERFLOW_HEADER 16

/* The largest chunk LMDB keeps inside a leaf page beside others (half a
 * page less the node and key headers, with a margin); a larger one takes
 * overflow pages of its own. */
static inline size_t vg_leaf_value_max(size_t psize) { return (psize - 16) / 2 - 40; }

/* A chunk this many pages large is complete even below the point limit. */
#define VG_FIT_PAGES 8

typedef struct vg_head_state {
	uint32_t points;   /* points in head blocks (duplicates counted) */
	uint32_t next_seq; /* seq of the next head block, or VG_HEAD_UNKNOWN */
} vg_head_state_t;

/*
 * next_seq of a series whose head has not been read since the store was
 * opened.  Opening reads no head: a series' state is read from the head
 * database when a write transaction first touches it
 * (vg_wtxn_head_touch), or by the seal pass (vg_head_resolve), so start-up
 * costs the same with 1 or 1 M unsealed series.
 */
#define VG_HEAD_UNKNOWN UINT32_MAX

typedef struct vg_head_undo {
	vg_series_id_t id;
	vg_head_state_t old;
} vg_head_undo_t;

struct vg_store {
	MDB_env *env;
	char *dir;       /* the data directory (owned) */
	int lock_fd;     /* <dir>/vigil.lock, flock()ed exclusively while open */
	unsigned flags;  /* mdb_env_open flags */
	unsigned max_readers;
	/* Added to LMDB's transaction ids, which a compacted copy restarts at 1,
	 * so that the ids the store hands out keep increasing. */
	uint64_t txn_id_base;
	MDB_dbi dbi_meta, dbi_kv, dbi_series, dbi_ids, dbi_postings, dbi_chunks, dbi_head;
	bool sync;
	size_t map_size;
	size_t page_size;
	/* Held shared by every open transaction and exclusively to grow the
	 * map, which LMDB allows only while no transaction is open. */
	pthread_rwlock_t resize_lock;
	/* Serialises writers, so the head table below has one user. */
	pthread_mutex_t write_lock;
	/* Writer-only state (under write_lock). */
	vg_head_state_t *heads;
	size_t heads_cap;
	/* Slots below this id start as VG_HEAD_UNKNOWN (next_id at open). */
	vg_series_id_t heads_unknown_below;
	vg_series_id_t next_id;
	vg_codec_t *write_codec;
	/* Codecs for readers: a small free list under codec_lock. */
	pthread_mutex_t codec_lock;
	vg_codec_t **free_codecs;
	size_t nfree_codecs, free_codecs_cap;
};

struct vg_wtxn {
	vg_store_t *store;
	MDB_txn *txn;
	vg_series_id_t next_id_at_begin;
	/* Undo log of store->heads for abort. */
	vg_head_undo_t *undo;
	size_t nundo, undo_cap;
	/* Series whose head grew in this transaction (sealed at commit when
	 * full); may hold duplicates. */
	vg_series_id_t *touched;
	size_t ntouched, touched_cap;
	vg_buf_t scratch;
	vg_buf_t record; /* an `ids` record being built (series.c) */
	/* A cursor on `ids` kept for the transaction (closed before commit or
	 * abort), and the canonical key of the reference series last read
	 * through it, copied (series.c, ids records). */
	MDB_cursor *ids_cur;
	vg_buf_t ref_key;
	vg_series_id_t ref_id;
	bool ref_cached;
	/* Postings of series created in this transaction, not yet put (see
	 * series.c); NULL until the first. */
	struct vg_postings_pending *pending;
	/* A cursor on the head database kept for the whole transaction (head.c,
	 * closed before commit or abort): consecutive writes of neighbouring
	 * series land on the same leaf page, which LMDB then searches without
	 * descending from the root again. */
	MDB_cursor *head_cur;
	/* The series vg_wtxn_series() resolved last (valid when has_last), and
	 * whether guessing its successor paid off lately (series.c). */
	vg_series_id_t last_series;
	bool has_last;
	uint8_t guess_misses;
	/* A cursor on the series database for the whole transaction (series.c,
	 * closed like head_cur): a new series is looked up and put with it, and
	 * the next new series of the same entity is on the same page. */
	MDB_cursor *series_cur;
	/* Seals fit a series' unfinished tail chunk to its pages too (the
	 * idle seal: vg_store_seal); commit-time seals leave it, since the
	 * series' next seal lays it out again (seal.c, encode_fitted). */
	bool fit_tails;
};

struct vg_rtxn {
	vg_store_t *store;
	MDB_txn *txn;
	vg_codec_t *codec;
	bool forked; /* vg_rtxn_fork: holds no resize_lock of its own */
	/* Series descriptions (series.c): a cursor on `ids`, opened on first
	 * use, and the reference record read last — a read transaction's
	 * pages never change, so the view stays valid. */
	MDB_cursor *ids_cur;
	vg_series_id_t ref_id;
	MDB_val ref;
};

/* ---- store.c --------------------------------------------------------- */
int vg_store_lmdb_error(int rc);
int vg_store_take_codec(vg_store_t *store, vg_codec_t **out);
void vg_store_give_codec(vg_store_t *store, vg_codec_t *codec);
/* Makes sure store->heads has a (zeroed) slot for id. */
int vg_store_heads_reserve(vg_store_t *store, vg_series_id_t id);
/* Records heads[id] in the undo log and makes sure the slot exists. */
int vg_wtxn_head_touch(vg_wtxn_t *txn, vg_series_id_t id);
int vg_wtxn_mark_touched(vg_wtxn_t *txn, vg_series_id_t id);

/* ---- series.c -------------------------------------------------------- */
/* Puts the postings the transaction has deferred (before commit, and before
 * anything reads or deletes postings in it).  0 or an error (abort). */
int vg_series_flush_postings(vg_wtxn_t *txn);
/* Frees the deferred postings, put or not (commit and abort). */
void vg_series_pending_free(vg_wtxn_t *txn);

/* Key helpers. */
static inline uint64_t vg_time_flip(int64_t t) { return (uint64_t)t ^ (UINT64_C(1) << 63); }
static inline int64_t vg_time_unflip(uint64_t u) { return (int64_t)(u ^ (UINT64_C(1) << 63)); }

/* The retention in force for measurement: its own, else the global one
 * (0: forever). */
int vg_store_retention_in_txn(MDB_txn *txn, vg_store_t *store, vg_str_t measurement,
			      int64_t *duration_ns);

/* ---- series.c -------------------------------------------------------- */
/* Removes the series' index entries (not its data). */
int vg_series_unindex(vg_wtxn_t *txn, vg_series_id_t id);
/* Rebuilds the `series` database of a format-1 store from `ids`; part of
 * opening such a store. */
int vg_series_upgrade_v1(MDB_txn *txn, vg_store_t *store);
/* Decodes a canonical key (from the ids database) into desc. */
int vg_series_decode(const uint8_t *data, size_t len, vg_series_desc_t *desc);

/* ---- head.c ---------------------------------------------------------- */
/*
 * A run of points sorted by time without duplicates, in memory owned by the
 * run.  Used to gather a series' head and to merge it with chunks.
 */
typedef struct vg_run {
	int64_t *times;
	double *values;
	size_t len, cap;
} vg_run_t;

void vg_run_release(vg_run_t *run);
/* Copies n points (n may be 0, with NULL arrays). */
static inline void vg_points_copy(int64_t *dt, double *dv, const int64_t *st, const double *sv,
				  size_t n)
{
	if (n) {
		memcpy(dt, st, n * sizeof *dt);
		memcpy(dv, sv, n * sizeof *dv);
	}
}
int vg_run_reserve(vg_run_t *run, size_t n);
/* dst = merge of older run a and newer run b (b wins on equal times). */
int vg_run_merge(const vg_run_t *a, const vg_run_t *b, vg_run_t *dst);

/* Appends a head block of n points (sorted and deduplicated here), or
 * extends the newest block when they all follow it (see head.c). */
int vg_head_append(vg_wtxn_t *txn, vg_series_id_t id, const int64_t *times,
		   const double *values, size_t n);
/* Gathers the head points of series id within [t0, t1) into out (replaced),
 * merged and deduplicated.  Works in read and write transactions. */
int vg_head_collect(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, int64_t t0, int64_t t1,
		    vg_run_t *out);
/* Deletes every head block of series id. */
int vg_head_clear(vg_wtxn_t *txn, vg_series_id_t id);
/* Removes head points within [t0, t1) of series id; adds to *removed. */
int vg_head_delete_range(vg_wtxn_t *txn, vg_series_id_t id, int64_t t0, int64_t t1,
			 uint64_t *removed);
/* The point count of a head block (a value of the head database). */
int vg_head_block_points(const void *data, size_t size, uint32_t *count);
/* Rewrites every head block of a format-1 store (raw 16-byte points) in the
 * current format; part of opening such a store. */
int vg_head_upgrade_v1(MDB_txn *txn, vg_store_t *store);
/* Reads the head state of series id from the head database into *out. */
int vg_head_read_state(MDB_txn *txn, vg_store_t *store, vg_series_id_t id, vg_head_state_t *out);
/* Makes heads[id] known (id < heads_cap): reads it if the series has head
 * blocks, and marks every unknown series between id and the next series
 * with head blocks empty — one seek per series that has a head. */
int vg_head_resolve(MDB_txn *txn, vg_store_t *store, vg_series_id_t id);

/* ---- seal.c ---------------------------------------------------------- */
/* Moves the head of series id into chunks, merging overlapping chunks. */
int vg_seal_series(vg_wtxn_t *txn, vg_series_id_t id);

#endif
