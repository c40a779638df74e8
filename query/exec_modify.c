/*
 * exec_modify.c — the statements that change the store: DELETE and SET
 * RETENTION.
 *
 * DELETE resolves its series in a read transaction first (the matchers run
 * on read transactions), ends it, then removes data in write transactions
 * of delete_batch series each, so that the one writer is never held for
 * long and concurrent writes interleave.  Series created after the read
 * transaction are not touched.  Without a time condition a series is
 * dropped whole (index entries included), as InfluxDB's DROP SERIES does.
 */
#include "query_int.h"

#include "vg_error.h"

static int fail(vg_exec_t *x, int code, const char *what)
{
	if (code == VG_ENOMEM)
		return vg_query_error_set(x->err, code, "out of memory");
	return vg_query_error_set(x->err, code, "%s failed: %s", what, vg_strerror(code));
}

static int resolve(vg_exec_t *x, vg_idset_t *ids, bool *exists)
{
	const vg_statement_t *st = x->st;
	int code = vg_store_read_begin(x->store, &x->txn);
	if (code)
		return fail(x, code, "beginning a read transaction");
	vg_idset_t every = VG_IDSET_INIT;
	code = vg_rtxn_measurement_series(x->txn, st->measurement, &every);
	*exists = every.len > 0;
	vg_idset_release(&every);
	if (code)
		code = fail(x, code, "series lookup");
	if (code == 0 && *exists)
		code = vg_resolve_tag_cond(x, st->measurement, st->where, ids);
	vg_rtxn_end(x->txn);
	x->txn = NULL;
	return code;
}

int vg_exec_delete(vg_exec_t *x)
{
	const vg_statement_t *st = x->st;
	int64_t t0 = INT64_MIN, t1 = INT64_MAX;
	if (st->where) {
		vg_select_t sel = {0};
		sel.where = st->where;
		if (vg_select_time_range(&sel, x->opts.now_ns, &t0, &t1))
			return vg_query_error_set(x->err, VG_EINVAL,
			                          "a time in WHERE is out of range");
	}
	bool drop = t0 == INT64_MIN && t1 == INT64_MAX;
	vg_idset_t ids = VG_IDSET_INIT;
	bool exists = false;
	int code = resolve(x, &ids, &exists);
	if (code == 0 && !exists)
		code = vg_query_error_set(x->err, VG_ENOTFOUND, "measurement '%.*s' not found",
		                          (int)st->measurement.len, st->measurement.data);
	if (code == 0 && x->stats)
		x->stats->series_matched = ids.len;
	for (size_t i = 0; code == 0 && i < ids.len && t0 < t1;) {
		code = vg_exec_check(x);
		if (code)
			break;
		vg_wtxn_t *txn;
		code = vg_store_write_begin(x->store, &txn);
		if (code) {
			code = fail(x, code, "beginning a write transaction");
			break;
		}
		uint64_t removed = 0;
		size_t end =
		    i + x->opts.delete_batch < ids.len ? i + x->opts.delete_batch : ids.len;
		for (; code == 0 && i < end; i++)
			code = drop ? vg_wtxn_drop_series(txn, ids.ids[i], &removed)
			            : vg_wtxn_delete(txn, ids.ids[i], t0, t1, &removed);
		if (code) {
			vg_wtxn_abort(txn);
			code = fail(x, code, "deleting");
			break;
		}
		code = vg_wtxn_commit(txn);
		if (code) {
			code = fail(x, code, "committing the delete");
			break;
		}
		if (x->stats)
			x->stats->points_deleted += removed;
	}
	vg_idset_release(&ids);
	return code;
}

int vg_exec_set_retention(vg_exec_t *x)
{
	const vg_statement_t *st = x->st;
	vg_wtxn_t *txn;
	int code = vg_store_write_begin(x->store, &txn);
	if (code)
		return fail(x, code, "beginning a write transaction");
	vg_str_t m = st->measurement.len ? st->measurement : (vg_str_t){NULL, 0};
	code = vg_wtxn_set_retention(txn, m, st->retention_ns);
	if (code) {
		vg_wtxn_abort(txn);
		return fail(x, code, "setting retention");
	}
	code = vg_wtxn_commit(txn);
	return code ? fail(x, code, "committing the retention") : 0;
}
