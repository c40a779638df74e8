/*
 * store.c — the store handle: the LMDB environment, transactions, the
 * format-version record, map growth and the small meta records.
 *
 * Map growth.  LMDB needs a map size up front and fails a transaction with
 * MDB_MAP_FULL when the file would outgrow it.  Users never choose a size:
 * the map starts at twice the file (at least VG_MAP_MIN) and, before each
 * write transaction, is doubled whenever the pages in use pass half of it.
 * mdb_env_set_mapsize() is only allowed while no transaction is open in the
 * process, so every transaction holds resize_lock shared and the writer
 * takes it exclusively for the moment of growth.  The map is virtual address
 * space only: the file itself grows as pages are written.
 *
 * A write transaction that still hits MDB_MAP_FULL (one transaction larger
 * than half the map) fails with VG_ELIMIT; the next one begins on a larger
 * map, so a retry succeeds.
 *
 * Disk full.  The environment is opened without MDB_WRITEMAP: pages are
 * written with pwrite() at commit, so a full file system fails the commit
 * (the transaction is dropped, the environment stays usable, a later
 * commit succeeds once there is room) instead of raising SIGBUS on a
 * store through the map; growing the map reserves address space only.
 * LMDB reports a short write as EIO, which is what a full file system
 * gives as often as ENOSPC; a commit failing with EIO while the file
 * system has (next to) no room left is reported as -ENOSPC.
 */
#include "store_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define VG_MAP_MIN ((size_t)1 << 30)

static const char KEY_FORMAT[] = "format";
static const char KEY_NEXT_ID[] = "next_id";

int vg_store_lmdb_error(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return VG_ENOTFOUND;
	case MDB_MAP_FULL:
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
	case MDB_DBS_FULL:
		return VG_ELIMIT;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return VG_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return VG_EVERSION;
	case ENOMEM:
		return VG_ENOMEM;
	default:
		return rc > 0 ? -rc : VG_ESTORE;
	}
}

void vg_store_options_init(vg_store_options_t *opts)
{
	opts->sync = true;
	opts->max_readers = 1022;
	opts->map_size = 0;
}

static int set_err(char *err, size_t errlen, int rc, const char *fmt, const char *dir,
		   const char *detail)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, dir, detail);
	return rc;
}

static size_t used_bytes(vg_store_t *store)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(store->env, &info);
	mdb_env_stat(store->env, &st);
	return (info.me_last_pgno + 1) * (size_t)st.ms_psize;
}

/* Grows the map when the used pages pass half of it.  Called by the writer
 * with write_lock held and no transaction of its own open. */
static int grow_map_if_needed(vg_store_t *store)
{
	if (used_bytes(store) < store->map_size / 2)
		return 0;
	pthread_rwlock_wrlock(&store->resize_lock);
	size_t size = store->map_size;
	while (used_bytes(store) >= size / 2)
		size *= 2;
	int rc = mdb_env_set_mapsize(store->env, size);
	if (rc == 0)
		store->map_size = size;
	pthread_rwlock_unlock(&store->resize_lock);
	return vg_store_lmdb_error(rc);
}

/* The named databases of a store (store_int.h gives their layout). */
static const struct {
	const char *name;
	unsigned flags;
	size_t offset; /* of the handle in vg_store_t */
} store_dbs[] = {
	{"meta", 0, offsetof(vg_store_t, dbi_meta)},
	{"kv", 0, offsetof(vg_store_t, dbi_kv)},
	{"series", MDB_DUPSORT | MDB_DUPFIXED, offsetof(vg_store_t, dbi_series)},
	{"ids", MDB_INTEGERKEY, offsetof(vg_store_t, dbi_ids)},
	{"postings", MDB_DUPSORT | MDB_DUPFIXED, offsetof(vg_store_t, dbi_postings)},
	{"chunks", 0, offsetof(vg_store_t, dbi_chunks)},
	{"head", 0, offsetof(vg_store_t, dbi_head)},
};
#define VG_STORE_NDBS (sizeof store_dbs / sizeof store_dbs[0])

static MDB_dbi *store_dbi(vg_store_t *store, size_t i)
{
	return (MDB_dbi *)((char *)store + store_dbs[i].offset);
}

static int open_dbs(vg_store_t *store, MDB_txn *txn)
{
	for (size_t i = 0; i < VG_STORE_NDBS; i++) {
		int rc = mdb_dbi_open(txn, store_dbs[i].name, store_dbs[i].flags | MDB_CREATE,
				      store_dbi(store, i));
		if (rc)
			return rc;
	}
	return 0;
}

/* Checks or writes the format record and loads the writer's state. */
static int check_format(vg_store_t *store, MDB_txn *txn, char *err, size_t errlen,
			const char *dir)
{
	MDB_val key = {sizeof KEY_FORMAT - 1, (void *)KEY_FORMAT}, val;
	int rc = mdb_get(txn, store->dbi_meta, &key, &val);
	if (rc == MDB_NOTFOUND) {
		uint8_t version[4];
		vg_store_be32(version, VG_STORE_FORMAT_VERSION);
		val.mv_size = 4;
		val.mv_data = version;
		rc = mdb_put(txn, store->dbi_meta, &key, &val, 0);
		return rc ? set_err(err, errlen, vg_store_lmdb_error(rc), "%s: %s", dir,
				    mdb_strerror(rc))
			  : 0;
	}
	if (rc)
		return set_err(err, errlen, vg_store_lmdb_error(rc), "%s: %s", dir, mdb_strerror(rc));
	if (val.mv_size != 4)
		return set_err(err, errlen, VG_ECORRUPT, "%s: %s", dir,
			       "the format record is damaged");
	uint32_t version = vg_load_be32(val.mv_data);
	if (version == 1) {
		/* Format 1 differs in its head blocks and `series` keys. */
		int code = vg_head_upgrade_v1(txn, store);
		code = code ? code : vg_series_upgrade_v1(txn, store);
		uint8_t current[4];
		vg_store_be32(current, VG_STORE_FORMAT_VERSION);
		val.mv_size = 4;
		val.mv_data = current;
		rc = code ? 0 : mdb_put(txn, store->dbi_meta, &key, &val, 0);
		code = code ? code : vg_store_lmdb_error(rc);
		if (code)
			return set_err(err, errlen, code, "%s: converting the format-1 store: %s", dir,
				       vg_strerror(code));
		version = VG_STORE_FORMAT_VERSION;
	}
	if (version != VG_STORE_FORMAT_VERSION) {
		char detail[128];
		snprintf(detail, sizeof detail,
			 "store format version %u, but this vigil reads version %u", version,
			 VG_STORE_FORMAT_VERSION);
		return set_err(err, errlen, VG_EVERSION, "%s: %s", dir, detail);
	}
	key.mv_size = sizeof KEY_NEXT_ID - 1;
	key.mv_data = (void *)KEY_NEXT_ID;
	rc = mdb_get(txn, store->dbi_meta, &key, &val);
	if (rc == 0 && val.mv_size == 4)
		store->next_id = vg_load_be32(val.mv_data);
	else if (rc != MDB_NOTFOUND)
		return set_err(err, errlen, VG_ECORRUPT, "%s: %s", dir, "the id counter is damaged");
	return 0;
}

/* Creates and opens store->env over store->dir with the store's settings;
 * returns an LMDB code (store->env is NULL on failure). */
static int env_open(vg_store_t *store)
{
	int rc = mdb_env_create(&store->env);
	if (rc) {
		store->env = NULL;
		return rc;
	}
	mdb_env_set_maxdbs(store->env, 8);
	mdb_env_set_maxreaders(store->env, store->max_readers);
	mdb_env_set_mapsize(store->env, store->map_size);
	rc = mdb_env_open(store->env, store->dir, store->flags, 0644);
	if (rc) {
		mdb_env_close(store->env);
		store->env = NULL;
		return rc;
	}
	int dead;
	mdb_reader_check(store->env, &dead);
	return 0;
}

#define VG_COMPACT_DIR "compact.tmp"

/* Removes what an interrupted compaction left (its copy is never needed:
 * until the rename the old file is whole). */
static void remove_compact_leftover(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/" VG_COMPACT_DIR "/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/" VG_COMPACT_DIR "/lock.mdb", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/" VG_COMPACT_DIR, dir);
	rmdir(path);
}

/*
 * One process at a time: LMDB itself lets processes share an environment,
 * but compaction replaces the data file, and two servers would each keep
 * their own head bookkeeping.  The lock is an flock() on <dir>/vigil.lock,
 * released by the kernel when the process ends however it ends.
 */
static int lock_dir(vg_store_t *store, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/vigil.lock", store->dir);
	store->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (store->lock_fd < 0)
		return set_err(err, errlen, -errno, "%s: cannot open its lock file: %s", store->dir,
			       strerror(errno));
	if (flock(store->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (e == EWOULDBLOCK)
			return set_err(err, errlen, -EBUSY, "%s: %s", store->dir,
				       "the data directory is in use by another process (is another "
				       "vigild running on it?)");
		return set_err(err, errlen, -e, "%s: cannot lock the data directory: %s",
			       store->dir, strerror(e));
	}
	return 0;
}

int vg_store_open(const char *dir, const vg_store_options_t *opts, vg_store_t **out, char *err,
		  size_t errlen)
{
	vg_store_options_t defaults;
	if (!opts) {
		vg_store_options_init(&defaults);
		opts = &defaults;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return set_err(err, errlen, -errno, "%s: cannot create directory: %s", dir,
			       strerror(errno));
	vg_store_t *store = vg_calloc(1, sizeof *store);
	if (!store)
		return set_err(err, errlen, VG_ENOMEM, "%s: %s", dir, "out of memory");
	store->lock_fd = -1;
	store->sync = opts->sync;
	store->next_id = 1;
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&store->resize_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&store->write_lock, NULL);
	pthread_mutex_init(&store->codec_lock, NULL);

	store->dir = vg_strndup(dir, strlen(dir));
	if (!store->dir) {
		vg_store_close(store);
		return set_err(err, errlen, VG_ENOMEM, "%s: %s", dir, "out of memory");
	}
	int locked = lock_dir(store, err, errlen);
	if (locked) {
		vg_store_close(store);
		return locked;
	}
	remove_compact_leftover(dir);
	char path[4096];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	struct stat st;
	size_t file_size = stat(path, &st) == 0 ? (size_t)st.st_size : 0;
	store->map_size = opts->map_size ? opts->map_size : VG_MAP_MIN;
	while (store->map_size < 2 * file_size)
		store->map_size *= 2;
	store->max_readers = opts->max_readers ? opts->max_readers : 1022;
	store->flags = MDB_NOTLS | MDB_NORDAHEAD | (opts->sync ? 0 : MDB_NOSYNC);
	int rc = env_open(store);
	if (rc) {
		int code = vg_store_lmdb_error(rc);
		set_err(err, errlen, code, "%s: cannot open store: %s", dir, mdb_strerror(rc));
		vg_store_close(store);
		return code;
	}
	MDB_stat env_stat;
	mdb_env_stat(store->env, &env_stat);
	store->page_size = env_stat.ms_psize;

	MDB_txn *txn;
	rc = mdb_txn_begin(store->env, NULL, 0, &txn);
	if (rc == 0)
		rc = open_dbs(store, txn);
	if (rc) {
		int code = vg_store_lmdb_error(rc);
		set_err(err, errlen, code, "%s: %s", dir, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		vg_store_close(store);
		return code;
	}
	int code = check_format(store, txn, err, errlen, dir);
	/* No head is read here (see VG_HEAD_UNKNOWN). */
	store->heads_unknown_below = store->next_id;
	if (code == 0)
		code = vg_codec_new(&store->write_codec);
	if (code == 0) {
		rc = mdb_txn_commit(txn);
		code = vg_store_lmdb_error(rc);
		if (code)
			set_err(err, errlen, code, "%s: %s", dir, mdb_strerror(rc));
	} else {
		mdb_txn_abort(txn);
		if (err && errlen && !err[0])
			set_err(err, errlen, code, "%s: %s", dir, vg_strerror(code));
	}
	if (code) {
		vg_store_close(store);
		return code;
	}
	*out = store;
	return 0;
}

void vg_store_close(vg_store_t *store)
{
	if (!store)
		return;
	if (store->env)
		mdb_env_close(store->env);
	for (size_t i = 0; i < store->nfree_codecs; i++)
		vg_codec_free(store->free_codecs[i]);
	vg_free(store->free_codecs);
	vg_codec_free(store->write_codec);
	vg_free(store->heads);
	vg_free(store->dir);
	if (store->lock_fd >= 0)
		close(store->lock_fd); /* releases the flock */
	pthread_rwlock_destroy(&store->resize_lock);
	pthread_mutex_destroy(&store->write_lock);
	pthread_mutex_destroy(&store->codec_lock);
	vg_free(store);
}

int vg_store_take_codec(vg_store_t *store, vg_codec_t **out)
{
	pthread_mutex_lock(&store->codec_lock);
	if (store->nfree_codecs) {
		*out = store->free_codecs[--store->nfree_codecs];
		pthread_mutex_unlock(&store->codec_lock);
		return 0;
	}
	pthread_mutex_unlock(&store->codec_lock);
	return vg_codec_new(out);
}

void vg_store_give_codec(vg_store_t *store, vg_codec_t *codec)
{
	if (!codec)
		return;
	pthread_mutex_lock(&store->codec_lock);
	if (store->nfree_codecs == store->free_codecs_cap) {
		size_t cap = store->free_codecs_cap ? store->free_codecs_cap * 2 : 8;
		vg_codec_t **list = vg_reallocarray(store->free_codecs, cap, sizeof *list);
		if (!list) {
			pthread_mutex_unlock(&store->codec_lock);
			vg_codec_free(codec);
			return;
		}
		store->free_codecs = list;
		store->free_codecs_cap = cap;
	}
	store->free_codecs[store->nfree_codecs++] = codec;
	pthread_mutex_unlock(&store->codec_lock);
}

/* ---- write transactions ---------------------------------------------- */

int vg_store_write_begin(vg_store_t *store, vg_wtxn_t **out)
{
	vg_wtxn_t *txn = vg_calloc(1, sizeof *txn);
	if (!txn)
		return VG_ENOMEM;
	pthread_mutex_lock(&store->write_lock);
	int code = grow_map_if_needed(store);
	if (code) {
		pthread_mutex_unlock(&store->write_lock);
		vg_free(txn);
		return code;
	}
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = store->env ? mdb_txn_begin(store->env, NULL, 0, &txn->txn) : VG_ESTORE;
	if (rc) {
		pthread_rwlock_unlock(&store->resize_lock);
		pthread_mutex_unlock(&store->write_lock);
		vg_free(txn);
		return vg_store_lmdb_error(rc);
	}
	txn->store = store;
	txn->next_id_at_begin = store->next_id;
	vg_buf_init(&txn->scratch);
	*out = txn;
	return 0;
}

static void wtxn_free(vg_wtxn_t *txn)
{
	vg_store_t *store = txn->store;
	pthread_rwlock_unlock(&store->resize_lock);
	pthread_mutex_unlock(&store->write_lock);
	vg_free(txn->undo);
	vg_free(txn->touched);
	vg_buf_release(&txn->scratch);
	vg_buf_release(&txn->record);
	vg_buf_release(&txn->ref_key);
	vg_series_pending_free(txn);
	vg_free(txn);
}

void vg_wtxn_abort(vg_wtxn_t *txn)
{
	if (!txn)
		return;
	vg_store_t *store = txn->store;
	if (txn->head_cur)
		mdb_cursor_close(txn->head_cur);
	if (txn->ids_cur)
		mdb_cursor_close(txn->ids_cur);
	if (txn->series_cur)
		mdb_cursor_close(txn->series_cur);
	mdb_txn_abort(txn->txn);
	for (size_t i = txn->nundo; i-- > 0;)
		store->heads[txn->undo[i].id] = txn->undo[i].old;
	store->next_id = txn->next_id_at_begin;
	wtxn_free(txn);
}

/* Free bytes under which an EIO at commit is taken for a full disk: a
 * short write leaves less than one write's worth. */
#define VG_DISK_FULL_SLACK ((uint64_t)1 << 20)

static int commit_error(vg_store_t *store, int rc)
{
	if (rc == EIO) {
		const char *path = NULL;
		struct statvfs vfs;
		if (mdb_env_get_path(store->env, &path) == 0 && path && statvfs(path, &vfs) == 0 &&
		    (uint64_t)vfs.f_bavail * vfs.f_frsize < VG_DISK_FULL_SLACK)
			return -ENOSPC;
	}
	return vg_store_lmdb_error(rc);
}

int vg_wtxn_commit(vg_wtxn_t *txn)
{
	vg_store_t *store = txn->store;
	int code = vg_series_flush_postings(txn);
	for (size_t i = 0; i < txn->ntouched && code == 0; i++) {
		vg_series_id_t id = txn->touched[i];
		if (store->heads[id].points >= VG_SEAL_POINTS)
			code = vg_seal_series(txn, id);
	}
	if (code == 0 && store->next_id != txn->next_id_at_begin) {
		uint8_t buf[4];
		vg_store_be32(buf, store->next_id);
		MDB_val key = {sizeof KEY_NEXT_ID - 1, (void *)KEY_NEXT_ID}, val = {4, buf};
		code = vg_store_lmdb_error(mdb_put(txn->txn, store->dbi_meta, &key, &val, 0));
	}
	if (code) {
		vg_wtxn_abort(txn);
		return code;
	}
	if (txn->head_cur) {
		mdb_cursor_close(txn->head_cur);
		txn->head_cur = NULL;
	}
	if (txn->ids_cur) {
		mdb_cursor_close(txn->ids_cur);
		txn->ids_cur = NULL;
	}
	if (txn->series_cur) {
		mdb_cursor_close(txn->series_cur);
		txn->series_cur = NULL;
	}
	int rc = mdb_txn_commit(txn->txn);
	if (rc) {
		/* LMDB freed the transaction; restore the writer's mirror. */
		for (size_t i = txn->nundo; i-- > 0;)
			store->heads[txn->undo[i].id] = txn->undo[i].old;
		store->next_id = txn->next_id_at_begin;
	}
	int failure = rc ? commit_error(store, rc) : 0;
	wtxn_free(txn);
	return failure;
}

int vg_store_heads_reserve(vg_store_t *store, vg_series_id_t id)
{
	if (id < store->heads_cap)
		return 0;
	size_t cap = store->heads_cap ? store->heads_cap : 1024;
	while (cap <= id)
		cap *= 2;
	vg_head_state_t *heads = vg_reallocarray(store->heads, cap, sizeof *heads);
	if (!heads)
		return VG_ENOMEM;
	for (size_t i = store->heads_cap; i < cap; i++)
		heads[i] = (vg_head_state_t){0, i < store->heads_unknown_below ? VG_HEAD_UNKNOWN : 0};
	store->heads = heads;
	store->heads_cap = cap;
	return 0;
}

int vg_wtxn_head_touch(vg_wtxn_t *txn, vg_series_id_t id)
{
	vg_store_t *store = txn->store;
	int code = vg_store_heads_reserve(store, id);
	if (code == 0 && store->heads[id].next_seq == VG_HEAD_UNKNOWN)
		code = vg_head_read_state(txn->txn, store, id, &store->heads[id]);
	if (code)
		return code;
	if (txn->nundo == txn->undo_cap) {
		size_t cap = txn->undo_cap ? txn->undo_cap * 2 : 64;
		vg_head_undo_t *undo = vg_reallocarray(txn->undo, cap, sizeof *undo);
		if (!undo)
			return VG_ENOMEM;
		txn->undo = undo;
		txn->undo_cap = cap;
	}
	txn->undo[txn->nundo].id = id;
	txn->undo[txn->nundo].old = store->heads[id];
	txn->nundo++;
	return 0;
}

int vg_wtxn_mark_touched(vg_wtxn_t *txn, vg_series_id_t id)
{
	if (txn->ntouched == txn->touched_cap) {
		size_t cap = txn->touched_cap ? txn->touched_cap * 2 : 64;
		vg_series_id_t *touched = vg_reallocarray(txn->touched, cap, sizeof *touched);
		if (!touched)
			return VG_ENOMEM;
		txn->touched = touched;
		txn->touched_cap = cap;
	}
	txn->touched[txn->ntouched++] = id;
	return 0;
}

/* ---- read transactions ----------------------------------------------- */

int vg_store_read_begin(vg_store_t *store, vg_rtxn_t **out)
{
	vg_rtxn_t *txn = vg_calloc(1, sizeof *txn);
	if (!txn)
		return VG_ENOMEM;
	pthread_rwlock_rdlock(&store->resize_lock);
	int rc = store->env ? mdb_txn_begin(store->env, NULL, MDB_RDONLY, &txn->txn) : VG_ESTORE;
	if (rc) {
		pthread_rwlock_unlock(&store->resize_lock);
		vg_free(txn);
		return vg_store_lmdb_error(rc);
	}
	txn->store = store;
	*out = txn;
	return 0;
}

uint64_t vg_rtxn_id(const vg_rtxn_t *txn)
{
	return txn->store->txn_id_base + mdb_txn_id(txn->txn);
}

uint64_t vg_wtxn_id(const vg_wtxn_t *txn)
{
	return txn->store->txn_id_base + mdb_txn_id(txn->txn);
}

int vg_rtxn_fork(vg_rtxn_t *parent, vg_rtxn_t **out)
{
	vg_rtxn_t *txn = vg_calloc(1, sizeof *txn);
	if (!txn)
		return VG_ENOMEM;
	/* No resize_lock: the parent's shared hold keeps the map from being
	 * resized or swapped until the parent ends, and the fork ends first.
	 * Taking it again could deadlock behind a waiting writer (the lock
	 * prefers writers). */
	int rc = mdb_txn_begin(parent->store->env, NULL, MDB_RDONLY, &txn->txn);
	if (rc) {
		vg_free(txn);
		return vg_store_lmdb_error(rc);
	}
	if (mdb_txn_id(txn->txn) != mdb_txn_id(parent->txn)) {
		mdb_txn_abort(txn->txn);
		vg_free(txn);
		return -EAGAIN;
	}
	txn->store = parent->store;
	txn->forked = true;
	*out = txn;
	return 0;
}

void vg_rtxn_end(vg_rtxn_t *txn)
{
	if (!txn)
		return;
	if (txn->ids_cur)
		mdb_cursor_close(txn->ids_cur);
	mdb_txn_abort(txn->txn);
	if (!txn->forked)
		pthread_rwlock_unlock(&txn->store->resize_lock);
	vg_store_give_codec(txn->store, txn->codec);
	vg_free(txn);
}

/* ---- meta records and retention ------------------------------------- */

#define VG_META_KEY_MAX 400

int vg_wtxn_meta_put(vg_wtxn_t *txn, vg_str_t key, const void *value, size_t len)
{
	if (key.len == 0 || key.len > VG_META_KEY_MAX || len > (16u << 20))
		return VG_EINVAL;
	MDB_val k = {key.len, (void *)key.data}, v = {len, (void *)value};
	return vg_store_lmdb_error(mdb_put(txn->txn, txn->store->dbi_kv, &k, &v, 0));
}

int vg_wtxn_meta_delete(vg_wtxn_t *txn, vg_str_t key)
{
	if (key.len == 0 || key.len > VG_META_KEY_MAX)
		return VG_EINVAL;
	MDB_val k = {key.len, (void *)key.data};
	return vg_store_lmdb_error(mdb_del(txn->txn, txn->store->dbi_kv, &k, NULL));
}

int vg_rtxn_meta_get(vg_rtxn_t *txn, vg_str_t key, vg_str_t *value)
{
	if (key.len == 0 || key.len > VG_META_KEY_MAX)
		return VG_EINVAL;
	MDB_val k = {key.len, (void *)key.data}, v;
	int rc = mdb_get(txn->txn, txn->store->dbi_kv, &k, &v);
	if (rc)
		return vg_store_lmdb_error(rc);
	value->data = v.mv_data;
	value->len = v.mv_size;
	return 0;
}

/* Walks every record of `dbi` whose key starts with prefix. */
static int scan_prefix(MDB_txn *txn, MDB_dbi dbi, vg_str_t prefix, vg_meta_fn fn, void *ctx)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return vg_store_lmdb_error(rc);
	MDB_val k = {prefix.len, (void *)prefix.data}, v;
	int code = 0;
	rc = prefix.len ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
			: mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.data, prefix.len) != 0)
			break;
		code = fn(ctx, (vg_str_t){k.mv_data, k.mv_size}, (vg_str_t){v.mv_data, v.mv_size});
		if (code)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (code)
		return code;
	return rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
}

int vg_rtxn_meta_scan(vg_rtxn_t *txn, vg_str_t prefix, vg_meta_fn fn, void *ctx)
{
	return scan_prefix(txn->txn, txn->store->dbi_kv, prefix, fn, ctx);
}

static int retention_key(vg_str_t measurement, uint8_t *key, size_t *len)
{
	if (measurement.len > VG_STORE_NAME_MAX)
		return VG_EINVAL;
	memcpy(key, "ret:", 4);
	if (measurement.len)
		memcpy(key + 4, measurement.data, measurement.len);
	*len = 4 + measurement.len;
	return 0;
}

int vg_wtxn_set_retention(vg_wtxn_t *txn, vg_str_t measurement, int64_t duration_ns)
{
	uint8_t key[4 + VG_STORE_NAME_MAX];
	size_t len;
	if (duration_ns < 0 || retention_key(measurement, key, &len))
		return VG_EINVAL;
	MDB_val k = {len, key};
	if (duration_ns == 0 && measurement.len) {
		int rc = mdb_del(txn->txn, txn->store->dbi_meta, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : vg_store_lmdb_error(rc);
	}
	uint8_t val[8];
	vg_store_be64(val, (uint64_t)duration_ns);
	MDB_val v = {8, val};
	return vg_store_lmdb_error(mdb_put(txn->txn, txn->store->dbi_meta, &k, &v, 0));
}

static int get_retention(MDB_txn *txn, vg_store_t *store, vg_str_t measurement, int64_t *out)
{
	uint8_t key[4 + VG_STORE_NAME_MAX];
	size_t len;
	if (retention_key(measurement, key, &len))
		return VG_EINVAL;
	MDB_val k = {len, key}, v;
	int rc = mdb_get(txn, store->dbi_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		*out = -1;
		return 0;
	}
	if (rc)
		return vg_store_lmdb_error(rc);
	if (v.mv_size != 8)
		return VG_ECORRUPT;
	*out = (int64_t)vg_load_be64(v.mv_data);
	return 0;
}

int vg_store_retention_in_txn(MDB_txn *txn, vg_store_t *store, vg_str_t measurement,
			      int64_t *duration_ns)
{
	int64_t own = -1, global = -1;
	int code = measurement.len ? get_retention(txn, store, measurement, &own) : 0;
	if (code == 0 && own < 0)
		code = get_retention(txn, store, (vg_str_t){NULL, 0}, &global);
	*duration_ns = own >= 0 ? own : (global > 0 ? global : 0);
	return code;
}

int vg_rtxn_retention(vg_rtxn_t *txn, vg_str_t measurement, int64_t *duration_ns)
{
	return vg_store_retention_in_txn(txn->txn, txn->store, measurement, duration_ns);
}

typedef struct {
	vg_retention_fn fn;
	void *ctx;
} retention_walk_t;

static int retention_visit(void *ctx, vg_str_t key, vg_str_t value)
{
	retention_walk_t *walk = ctx;
	if (value.len != 8)
		return VG_ECORRUPT;
	return walk->fn(walk->ctx, (vg_str_t){key.data + 4, key.len - 4},
			(int64_t)vg_load_be64((const uint8_t *)value.data));
}

int vg_rtxn_list_retention(vg_rtxn_t *txn, vg_retention_fn fn, void *ctx)
{
	retention_walk_t walk = {fn, ctx};
	return scan_prefix(txn->txn, txn->store->dbi_meta, (vg_str_t){"ret:", 4}, retention_visit,
			   &walk);
}

/* ---- repacked copies --------------------------------------------------
 *
 * A copy of the store written in key order with MDB_APPEND, so that every
 * B-tree page is full: LMDB's own compacting copy only renumbers pages,
 * keeping the half-empty leaves that inserts in the middle of a tree leave
 * behind (chunks are keyed by series, and all series grow at once).  The
 * copy commits every VG_REPACK_BYTES so no transaction grows without bound,
 * and is synced once at the end.
 *
 * Chunks small enough to live in leaf pages (a series' tail: see seal.c)
 * are also re-cut so that they fill the leaf pages.  Appending puts nodes
 * on the last leaf until the next one does not fit, then starts a new page
 * with it, so leaves of ~1 KB chunks were left ~15% empty on average.  The
 * copy keeps track of the room left on the current leaf (LMDB's accounting:
 * a 16-byte page header, then per node a 2-byte slot and an 8-byte node
 * header, the key and the value, rounded up to even; a value too big for a
 * leaf is a page number there, 8 bytes on 64-bit systems) and re-encodes each run of one
 * series' consecutive leaf-sized chunks as chunks that use up that room:
 * the longest prefix that fits, and so on from the next page, with a
 * thorough codec (chunk.h: ~12% smaller integer walks; ~1.6 s for vitals'
 * 10.8 M points, while the writer lock is held).  The points,
 * their order and every aggregate of a query stay the same; only the cuts
 * between chunks move.  Should the accounting ever disagree with LMDB's,
 * only the packing suffers.  A run whose chunks do not decode is copied as
 * it is. */

#define VG_REPACK_BYTES ((size_t)32 << 20)

typedef struct {
	MDB_env *env;
	MDB_txn *txn;
	size_t bytes; /* copied since the last commit */
} repack_t;

static int repack_flush(repack_t *rp, bool again)
{
	int rc = mdb_txn_commit(rp->txn);
	rp->txn = NULL;
	rp->bytes = 0;
	if (rc == 0 && again)
		rc = mdb_txn_begin(rp->env, NULL, 0, &rp->txn);
	return rc;
}

/* Copies database i of the snapshot `from` into the copy. */
static int repack_db(repack_t *rp, vg_store_t *store, MDB_txn *from, size_t i)
{
	MDB_dbi dst;
	unsigned flags = store_dbs[i].flags;
	int rc = mdb_dbi_open(rp->txn, store_dbs[i].name, flags | MDB_CREATE, &dst);
	MDB_cursor *in = NULL;
	if (rc == 0)
		rc = mdb_cursor_open(from, *store_dbi(store, i), &in);
	if (rc)
		return rc;
	MDB_val k, v;
	int get = mdb_cursor_get(in, &k, &v, MDB_FIRST);
	while (rc == 0 && get == 0) {
		/* A new key is appended; later duplicates of it appended as
		 * duplicates. */
		rc = mdb_put(rp->txn, dst, &k, &v, MDB_APPEND);
		rp->bytes += k.mv_size + v.mv_size;
		if (flags & MDB_DUPSORT) {
			for (get = mdb_cursor_get(in, &k, &v, MDB_NEXT_DUP); rc == 0 && get == 0;
			     get = mdb_cursor_get(in, &k, &v, MDB_NEXT_DUP)) {
				rc = mdb_put(rp->txn, dst, &k, &v, MDB_APPENDDUP);
				rp->bytes += v.mv_size;
			}
			if (get != MDB_NOTFOUND)
				break;
		}
		if (rc == 0 && rp->bytes >= VG_REPACK_BYTES)
			rc = repack_flush(rp, true);
		if (rc == 0)
			get = mdb_cursor_get(in, &k, &v, (flags & MDB_DUPSORT) ? MDB_NEXT_NODUP : MDB_NEXT);
	}
	mdb_cursor_close(in);
	if (rc)
		return rc;
	return get == MDB_NOTFOUND ? 0 : get;
}

#define VG_KEY_SIZE 12 /* chunk keys: series id, flipped min_time */
/* A leaf with less room than this for a chunk value is left as it is. */
#define VG_REPACK_MIN_PIECE 192
/* Runs of tail chunks gathered before they are written out. */
#define VG_REPACK_RUN_POINTS (4 * VG_CHUNK_MAX_POINTS)
#define VG_REPACK_RUN_CHUNKS 64

typedef struct {
	repack_t *rp;
	MDB_dbi dst;
	size_t psize;
	size_t room;       /* free bytes on the leaf being filled (0: none yet) */
	vg_codec_t *codec;
	vg_run_t run;      /* points of the pending chunks */
	MDB_val keys[VG_REPACK_RUN_CHUNKS], vals[VG_REPACK_RUN_CHUNKS];
	size_t pending;    /* chunks in keys/vals, all of series `id` */
	uint32_t id;
	vg_buf_t buf;
} chunk_repack_t;

/* The leaf bytes a node with a value of `size` bytes takes. */
static size_t leaf_node_bytes(const chunk_repack_t *cr, size_t size)
{
	size_t node = 8 + VG_KEY_SIZE + size;
	if (node > ((cr->psize - 16) / 2 & ~(size_t)1) - 2)
		node = 8 + VG_KEY_SIZE + sizeof(size_t); /* pgno_t */
	return ((node + 1) & ~(size_t)1) + 2;
}

static int repack_put_chunk(chunk_repack_t *cr, const void *key, const void *val, size_t size)
{
	MDB_val k = {VG_KEY_SIZE, (void *)key}, v = {size, (void *)val};
	int rc = mdb_put(cr->rp->txn, cr->dst, &k, &v, MDB_APPEND);
	if (rc)
		return rc;
	size_t node = leaf_node_bytes(cr, size);
	cr->room = node <= cr->room ? cr->room - node : cr->psize - 16 - node;
	cr->rp->bytes += VG_KEY_SIZE + size;
	return 0;
}

static int codec_to_lmdb(int code)
{
	return code == VG_ENOMEM ? ENOMEM : code ? MDB_CORRUPTED : 0;
}

/* Writes the pending chunks: re-cut to fill the leaves, or as they are if
 * they do not decode. */
static int repack_flush_run(chunk_repack_t *cr)
{
	if (cr->pending == 0)
		return 0;
	int code = 0;
	cr->run.len = 0;
	for (size_t i = 0; code == 0 && i < cr->pending; i++) {
		size_t n = 0;
		code = vg_run_reserve(&cr->run, cr->run.len + VG_CHUNK_MAX_POINTS);
		code = code ? code
			    : vg_chunk_decode(cr->codec, cr->vals[i].mv_data, cr->vals[i].mv_size,
					      cr->run.times + cr->run.len, cr->run.values + cr->run.len,
					      VG_CHUNK_MAX_POINTS, &n);
		/* Chunks of a series never overlap; refuse a copy that would. */
		if (code == 0 && n > 0 && cr->run.len > 0 &&
		    cr->run.times[cr->run.len] <= cr->run.times[cr->run.len - 1])
			code = VG_ECORRUPT;
		cr->run.len += n;
	}
	size_t npending = cr->pending;
	cr->pending = 0;
	if (code == VG_ENOMEM)
		return ENOMEM;
	if (code) {
		int rc = 0;
		for (size_t i = 0; rc == 0 && i < npending; i++)
			rc = repack_put_chunk(cr, cr->keys[i].mv_data, cr->vals[i].mv_data,
					      cr->vals[i].mv_size);
		return rc;
	}
	size_t leaf_max = vg_leaf_value_max(cr->psize), start = 0;
	while (start < cr->run.len) {
		size_t room = cr->room >= 2 + 8 + VG_KEY_SIZE ? cr->room - 2 - 8 - VG_KEY_SIZE : 0;
		room &= ~(size_t)1;
		if (room < VG_REPACK_MIN_PIECE)
			room = cr->psize - 16 - 2 - 8 - VG_KEY_SIZE; /* a new leaf */
		size_t max = room < leaf_max ? room : leaf_max, n = 0;
		vg_buf_clear(&cr->buf);
		code = vg_chunk_encode_fit(cr->codec, cr->run.times + start, cr->run.values + start,
					   cr->run.len - start, max, 4, &cr->buf, &n);
		if (code == 0 && n == 0)
			code = VG_ELIMIT; /* one point always fits in a leaf */
		if (code)
			return codec_to_lmdb(code);
		uint8_t key[VG_KEY_SIZE];
		vg_store_be32(key, cr->id);
		vg_store_be64(key + 4, vg_time_flip(cr->run.times[start]));
		int rc = repack_put_chunk(cr, key, cr->buf.data, cr->buf.len);
		if (rc)
			return rc;
		start += n;
	}
	return 0;
}

/* Copies the chunks database, re-cutting the leaf-sized chunks. */
static int repack_chunks(repack_t *rp, vg_store_t *store, MDB_txn *from, size_t i)
{
	chunk_repack_t cr = {.rp = rp, .psize = store->page_size};
	int rc = mdb_dbi_open(rp->txn, store_dbs[i].name, store_dbs[i].flags | MDB_CREATE, &cr.dst);
	if (rc)
		return rc;
	int code = vg_codec_new(&cr.codec);
	if (code)
		return codec_to_lmdb(code);
	vg_codec_set_thorough(cr.codec, true);
	MDB_cursor *in = NULL;
	rc = mdb_cursor_open(from, *store_dbi(store, i), &in);
	MDB_val k, v;
	size_t run_points = 0;
	int get = rc ? 0 : mdb_cursor_get(in, &k, &v, MDB_FIRST);
	size_t leaf_max = vg_leaf_value_max(cr.psize);
	while (rc == 0 && get == 0) {
		vg_chunk_header_t h;
		bool tail = k.mv_size == VG_KEY_SIZE && v.mv_size <= leaf_max &&
			    vg_chunk_header_read(v.mv_data, v.mv_size, &h) == 0;
		uint32_t id = k.mv_size >= 4 ? vg_load_be32(k.mv_data) : 0;
		if (cr.pending > 0 &&
		    (!tail || id != cr.id || cr.pending == VG_REPACK_RUN_CHUNKS ||
		     run_points + h.count > VG_REPACK_RUN_POINTS)) {
			rc = repack_flush_run(&cr);
			run_points = 0;
		}
		if (rc == 0 && tail) {
			cr.keys[cr.pending] = k;
			cr.vals[cr.pending++] = v;
			cr.id = id;
			run_points += h.count;
		} else if (rc == 0) {
			if (k.mv_size == VG_KEY_SIZE) {
				rc = repack_put_chunk(&cr, k.mv_data, v.mv_data, v.mv_size);
			} else { /* not a chunk key: copied, the leaf accounting is off */
				rc = mdb_put(rp->txn, cr.dst, &k, &v, MDB_APPEND);
				rp->bytes += k.mv_size + v.mv_size;
			}
		}
		if (rc == 0 && cr.pending == 0 && rp->bytes >= VG_REPACK_BYTES)
			rc = repack_flush(rp, true);
		if (rc == 0)
			get = mdb_cursor_get(in, &k, &v, MDB_NEXT);
	}
	if (rc == 0 && get == MDB_NOTFOUND)
		rc = repack_flush_run(&cr);
	if (in)
		mdb_cursor_close(in);
	vg_run_release(&cr.run);
	vg_buf_release(&cr.buf);
	vg_codec_free(cr.codec);
	if (rc)
		return rc;
	return get == MDB_NOTFOUND ? 0 : get;
}

/* Writes a repacked copy of the snapshot `from` as <dir>/data.mdb (dir
 * must exist and hold no store) and syncs it; returns an LMDB code or
 * -errno. */
static int repack_into(vg_store_t *store, MDB_txn *from, const char *dir)
{
	repack_t rp = {0};
	int rc = mdb_env_create(&rp.env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(rp.env, 8);
	mdb_env_set_mapsize(rp.env, store->map_size);
	rc = mdb_env_open(rp.env, dir, MDB_NOSYNC | MDB_NOTLS, 0644);
	if (rc == 0)
		rc = mdb_txn_begin(rp.env, NULL, 0, &rp.txn);
	for (size_t i = 0; rc == 0 && i < VG_STORE_NDBS; i++)
		rc = store_dbs[i].offset == offsetof(vg_store_t, dbi_chunks)
			 ? repack_chunks(&rp, store, from, i)
			 : repack_db(&rp, store, from, i);
	if (rc == 0)
		rc = repack_flush(&rp, false);
	if (rp.txn)
		mdb_txn_abort(rp.txn);
	if (rc == 0)
		rc = mdb_env_sync(rp.env, 1);
	mdb_env_close(rp.env);
	if (rc == 0) {
		/* The lock file belongs to the copy's environment, not to the
		 * store: a store opened on the copy makes its own. */
		char path[4200];
		snprintf(path, sizeof path, "%s/lock.mdb", dir);
		unlink(path);
	}
	return rc;
}

int vg_store_backup(vg_store_t *store, const char *dest_dir)
{
	vg_rtxn_t *txn;
	int code = vg_store_read_begin(store, &txn);
	if (code)
		return code;
	int rc = repack_into(store, txn->txn, dest_dir);
	vg_rtxn_end(txn);
	return vg_store_lmdb_error(rc);
}

/* ---- statistics ------------------------------------------------------ */

/* The file's size and the part in use, as seen by txn.  The free pages are
 * the entries of LMDB's free database (dbi 0), each a count word followed
 * by page numbers. */
static void space_in_txn(vg_rtxn_t *txn, uint64_t *file_bytes, uint64_t *used_bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(txn->store->env, &info);
	mdb_env_stat(txn->store->env, &st);
	size_t free_pages = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn->txn, 0, &cur) == 0) {
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (v.mv_size >= sizeof(size_t))
				free_pages += *(const size_t *)v.mv_data;
		mdb_cursor_close(cur);
	}
	*file_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	*used_bytes = *file_bytes - (uint64_t)free_pages * st.ms_psize;
}

int vg_store_stats(vg_store_t *store, vg_store_stats_t *stats)
{
	memset(stats, 0, sizeof *stats);
	vg_rtxn_t *txn;
	int code = vg_store_read_begin(store, &txn);
	if (code)
		return code;
	MDB_stat st;
	if (mdb_stat(txn->txn, store->dbi_ids, &st) == 0)
		stats->series = st.ms_entries;
	if (mdb_stat(txn->txn, store->dbi_chunks, &st) == 0)
		stats->chunks = st.ms_entries;
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_cursor_open(txn->txn, store->dbi_chunks, &cur) == 0) {
		vg_chunk_header_t h;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (vg_chunk_header_read(v.mv_data, v.mv_size, &h) == 0)
				stats->chunk_points += h.count;
		mdb_cursor_close(cur);
	}
	if (mdb_cursor_open(txn->txn, store->dbi_head, &cur) == 0) {
		uint32_t n;
		for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			if (vg_head_block_points(v.mv_data, v.mv_size, &n) == 0)
				stats->head_points += n;
		mdb_cursor_close(cur);
	}
	stats->map_bytes = store->map_size;
	space_in_txn(txn, &stats->file_bytes, &stats->used_bytes);
	vg_rtxn_end(txn);
	return 0;
}

int vg_store_space(vg_store_t *store, uint64_t *file_bytes, uint64_t *used_bytes)
{
	vg_rtxn_t *txn;
	int code = vg_store_read_begin(store, &txn);
	if (code)
		return code;
	space_in_txn(txn, file_bytes, used_bytes);
	vg_rtxn_end(txn);
	return 0;
}

/* ---- compaction ------------------------------------------------------ */

/* Writes the file at path to disk, and the directory entry of its dir. */
static int sync_file_and_dir(const char *path, const char *dir)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int vg_store_compact(vg_store_t *store)
{
	char tmp_dir[4096], tmp_file[4200], data_file[4200];
	snprintf(tmp_dir, sizeof tmp_dir, "%s/" VG_COMPACT_DIR, store->dir);
	snprintf(tmp_file, sizeof tmp_file, "%s/data.mdb", tmp_dir);
	snprintf(data_file, sizeof data_file, "%s/data.mdb", store->dir);

	pthread_mutex_lock(&store->write_lock);
	if (!store->env) {
		pthread_mutex_unlock(&store->write_lock);
		return VG_ESTORE;
	}
	remove_compact_leftover(store->dir);
	int code = mkdir(tmp_dir, 0755) ? -errno : 0;
	if (code == 0) {
		/* Readers go on meanwhile; the writer lock keeps the data still. */
		vg_rtxn_t *from;
		code = vg_store_read_begin(store, &from);
		if (code == 0) {
			code = vg_store_lmdb_error(repack_into(store, from->txn, tmp_dir));
			vg_rtxn_end(from);
		}
	}
	if (code == 0)
		code = sync_file_and_dir(tmp_file, tmp_dir);
	if (code) {
		remove_compact_leftover(store->dir);
		pthread_mutex_unlock(&store->write_lock);
		return code;
	}

	/* The swap: no transaction may be open while the environment changes. */
	pthread_rwlock_wrlock(&store->resize_lock);
	MDB_envinfo info;
	mdb_env_info(store->env, &info);
	if (rename(tmp_file, data_file) != 0) {
		code = -errno;
		pthread_rwlock_unlock(&store->resize_lock);
		remove_compact_leftover(store->dir);
		pthread_mutex_unlock(&store->write_lock);
		return code;
	}
	remove_compact_leftover(store->dir);
	code = sync_file_and_dir(data_file, store->dir);
	uint64_t last_id = store->txn_id_base + info.me_last_txnid;
	mdb_env_close(store->env);
	int rc = env_open(store);
	MDB_txn *txn = NULL;
	if (rc == 0)
		rc = mdb_txn_begin(store->env, NULL, 0, &txn);
	if (rc == 0)
		rc = open_dbs(store, txn);
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		if (store->env)
			mdb_env_close(store->env);
		store->env = NULL;
		code = vg_store_lmdb_error(rc);
	} else {
		/* The copy restarted LMDB's transaction ids: a reader of it must
		 * see the id of the last commit, a writer the next one. */
		mdb_env_info(store->env, &info);
		store->txn_id_base = last_id - info.me_last_txnid;
	}
	pthread_rwlock_unlock(&store->resize_lock);
	pthread_mutex_unlock(&store->write_lock);
	return code;
}
