/*
 * subs.c — push subscriptions: `SUBSCRIBE SELECT <fields> FROM m
 * [WHERE ...] [GROUP BY <tags>|*] [SINCE t]`.
 *
 * Live part.  Every committed write is published here by the loop thread,
 * job by job in commit order, right after its acknowledgement.  Nothing is
 * re-read from storage: the series ids of each block (recorded by the
 * writer) lead through the series-id index to the subscriptions that may
 * want them — resolved through the store's postings when a subscription
 * opens, and offered a new series once when it is created — so
 * subscriptions a write does not touch cost nothing; its rows are tested
 * with the WHERE tree (tags, time, and the block's field values at that
 * timestamp) and the matching rows go out as one Push per block and
 * subscription.  So a subscriber sees a point only after it is durable,
 * and the points of one series in commit order.
 *
 * SINCE.  The stored part runs as a statement on a worker thread (the
 * SELECT of the subscription with times from SINCE on).  The subscription
 * is registered before that statement takes its snapshot, and live pushes
 * meanwhile are held back, each stamped with its commit number.  When the
 * stored part is done, the held pushes whose commit is newer than the
 * snapshot are sent and the rest dropped: they were in the snapshot.  The
 * seam has no gap and no duplicate.
 *
 * Slow subscribers.  A push that would take a connection's unsent output
 * past --max-output ends that subscription with a SubscriptionEnd carrying
 * an OVERFLOW error; the connection, its other requests and every other
 * client go on.  The client library resumes with SINCE.  The same happens
 * to a push for a connection with any unsent output while the server's
 * buffers are over --max-buffered.
 */
#include "server_int.h"

#include "log.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BUCKETS 256
#define SID_BUCKETS 65536

/* One (series id, subscription) pair of the series-id index. */
typedef struct vg_sid_node {
	vg_series_id_t sid;
	vg_sub_t *sub;
	struct vg_sid_node *next, **pprev;
} vg_sid_node_t;
#define VG_MAX_SUBS_PER_CONN 20000

struct vg_sub {
	vg_server_t *server;
	vg_conn_t *conn;
	uint64_t id;
	vg_statement_t *statement;
	const vg_select_t *select;
	char *measurement;
	/* Where the subscription is filed: its measurement, or, when its
	 * WHERE requires a tag value (tag = 'v' under ANDs), measurement 0x00
	 * key 0x00 value, so that writes of other tag values never even
	 * look at it. */
	char *index_key;
	size_t index_len;
	size_t nfields;
	char **fields;             /* selected fields, in column order */
	vg_window_state_t *window; /* GROUP BY time(...): windowed */
	vg_select_t raw_select;    /* windowed: its fields raw, GROUP BY * */
	vg_select_column_t *raw_columns;
	bool history;              /* the stored part is still running */
	uint64_t snapshot;         /* its snapshot's commit number */
	vg_held_push_t *held, **held_tail;
	vg_sub_t *bucket_next;     /* in the measurement hash table */
	struct vg_sid_node **nodes; /* its entries in the series-id index */
	size_t nnodes, nodes_cap;
	uint64_t seen;             /* publish generation that last took it */
	vg_sub_t *conn_next;       /* in conn->subs */
};

struct vg_held_push {
	uint64_t commit;
	vg_buf_t frame;
	vg_held_push_t *next;
};

static vg_sub_t **bucket_of(vg_server_t *server, const char *key, size_t len)
{
	return &server->sub_buckets[vg_hash_bytes(key, len) % SUB_BUCKETS];
}

/* A tag equality every matching row needs: a TAG EQ leaf with a value,
 * reached from the root through ANDs only. */
static const vg_cond_t *required_tag(const vg_cond_t *c)
{
	if (!c)
		return NULL;
	if (c->kind == VG_COND_TAG && c->op == VG_CMP_EQ && c->value.len > 0)
		return c;
	if (c->kind != VG_COND_AND)
		return NULL;
	const vg_cond_t *left = required_tag(c->left);
	return left ? left : required_tag(c->right);
}

static int make_index_key(vg_sub_t *sub)
{
	const vg_cond_t *eq = required_tag(sub->select->where);
	size_t mlen = strlen(sub->measurement);
	size_t len = mlen + (eq ? 2 + eq->name.len + eq->value.len : 0);
	sub->index_key = vg_malloc(len + 1);
	if (!sub->index_key)
		return VG_ENOMEM;
	memcpy(sub->index_key, sub->measurement, mlen);
	if (eq) {
		sub->index_key[mlen] = 0;
		memcpy(sub->index_key + mlen + 1, eq->name.data, eq->name.len);
		sub->index_key[mlen + 1 + eq->name.len] = 0;
		memcpy(sub->index_key + mlen + 2 + eq->name.len, eq->value.data, eq->value.len);
	}
	sub->index_key[len] = 0;
	sub->index_len = len;
	return 0;
}

int vg_subs_init(vg_server_t *server)
{
	server->sub_buckets = vg_calloc(SUB_BUCKETS, sizeof *server->sub_buckets);
	server->sid_buckets = vg_calloc(SID_BUCKETS, sizeof *server->sid_buckets);
	return server->sub_buckets && server->sid_buckets ? 0 : VG_ENOMEM;
}

void vg_subs_release(vg_server_t *server)
{
	vg_free(server->sub_buckets);
	vg_free(server->sid_buckets);
	server->sub_buckets = NULL;
	server->sid_buckets = NULL;
}

/* ---- the series-id index ----------------------------------------------
 *
 * Live matching goes by series id: a write's series ids (recorded by the
 * writer) lead straight to the subscriptions that may want them, so
 * subscriptions that a write does not touch cost nothing at all.  The ids
 * of a subscription are resolved through the store's postings when it is
 * opened; a series created later is offered, once, to the subscriptions
 * filed under its measurement or one of its tag values.
 */

static vg_sid_node_t **sid_bucket(vg_server_t *server, vg_series_id_t sid)
{
	return &server->sid_buckets[(sid * UINT32_C(2654435761)) % SID_BUCKETS];
}

static int sid_add(vg_sub_t *sub, vg_series_id_t sid)
{
	vg_sid_node_t **bucket = sid_bucket(sub->server, sid);
	for (vg_sid_node_t *n = *bucket; n; n = n->next)
		if (n->sid == sid && n->sub == sub)
			return 0;
	if (sub->nnodes == sub->nodes_cap) {
		size_t cap = sub->nodes_cap ? sub->nodes_cap * 2 : 8;
		vg_sid_node_t **nodes = vg_reallocarray(sub->nodes, cap, sizeof *nodes);
		if (!nodes)
			return VG_ENOMEM;
		sub->nodes = nodes;
		sub->nodes_cap = cap;
	}
	vg_sid_node_t *node = vg_malloc(sizeof *node);
	if (!node)
		return VG_ENOMEM;
	node->sid = sid;
	node->sub = sub;
	node->next = *bucket;
	node->pprev = bucket;
	if (*bucket)
		(*bucket)->pprev = &node->next;
	*bucket = node;
	sub->nodes[sub->nnodes++] = node;
	return 0;
}

static void sid_remove_all(vg_sub_t *sub)
{
	for (size_t i = 0; i < sub->nnodes; i++) {
		vg_sid_node_t *node = sub->nodes[i];
		*node->pprev = node->next;
		if (node->next)
			node->next->pprev = node->pprev;
		vg_free(node);
	}
	vg_free(sub->nodes);
	sub->nodes = NULL;
	sub->nnodes = sub->nodes_cap = 0;
}

/* Whether a series with these tags could satisfy cond: field and time
 * leaves count as "maybe" (the grammar has no NOT, so this is a
 * superset).  '' stands for an absent tag, as in queries. */
static bool tags_may_match(const vg_cond_t *c, const Vigil__V1__WriteBlock *block)
{
	if (!c)
		return true;
	switch (c->kind) {
	case VG_COND_AND:
		return tags_may_match(c->left, block) && tags_may_match(c->right, block);
	case VG_COND_OR:
		return tags_may_match(c->left, block) || tags_may_match(c->right, block);
	case VG_COND_TAG: {
		const char *v = "";
		for (size_t t = 0; t < block->n_tags; t++)
			if (strlen(block->tags[t]->key) == c->name.len &&
			    memcmp(block->tags[t]->key, c->name.data, c->name.len) == 0)
				v = block->tags[t]->value;
		bool eq = strlen(v) == c->value.len && memcmp(v, c->value.data, c->value.len) == 0;
		switch (c->op) {
		case VG_CMP_EQ:
			return eq;
		case VG_CMP_NE:
			return !eq;
		case VG_CMP_RE:
			return regexec(c->regex, v, 0, NULL, 0) == 0;
		case VG_CMP_NRE:
			return regexec(c->regex, v, 0, NULL, 0) != 0;
		default:
			return true;
		}
	}
	default:
		return true;
	}
}

static bool selects_field(const vg_sub_t *sub, const char *field)
{
	for (size_t i = 0; i < sub->nfields; i++)
		if (strcmp(sub->fields[i], field) == 0)
			return true;
	return false;
}

static void held_free(vg_sub_t *sub)
{
	while (sub->held) {
		vg_held_push_t *h = sub->held;
		sub->held = h->next;
		vg_buf_release(&h->frame);
		vg_free(h);
	}
	sub->held_tail = &sub->held;
}

static void sub_free(vg_sub_t *sub)
{
	held_free(sub);
	vg_window_free(sub->window);
	vg_free(sub->raw_columns);
	vg_free(sub->nodes);
	for (size_t i = 0; i < sub->nfields; i++)
		vg_free(sub->fields[i]);
	vg_free(sub->fields);
	vg_free(sub->measurement);
	vg_free(sub->index_key);
	vg_query_free(sub->statement);
	vg_free(sub);
}

static void unlink_sub(vg_sub_t *sub)
{
	vg_server_t *server = sub->server;
	vg_sub_t **p = bucket_of(server, sub->index_key, sub->index_len);
	while (*p && *p != sub)
		p = &(*p)->bucket_next;
	if (*p)
		*p = sub->bucket_next;
	for (p = &sub->conn->subs; *p && *p != sub; p = &(*p)->conn_next)
		;
	if (*p)
		*p = sub->conn_next;
	sid_remove_all(sub);
	server->nsubs--;
	atomic_fetch_sub(&server->stat_subscriptions, 1);
}

/* Sends SubscriptionEnd (with an error when code != 0) and forgets the
 * subscription.  The frame is small and always queued, even past the
 * output bound, so that the client learns why its pushes stopped. */
static void end_sub(vg_sub_t *sub, int code, const char *message)
{
	vg_conn_t *conn = sub->conn;
	Vigil__V1__Error error = VIGIL__V1__ERROR__INIT;
	Vigil__V1__SubscriptionEnd end = VIGIL__V1__SUBSCRIPTION_END__INIT;
	if (code) {
		error.code = vg_error_to_wire(code);
		error.message = (char *)message;
		end.error = &error;
	}
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = sub->id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END;
	env.subscription_end = &end;
	vg_buf_t frame = VG_BUF_INIT;
	if (vg_frame_append(&frame, &env) == 0)
		vg_conn_send_unbounded(conn, &frame);
	vg_buf_release(&frame);
	unlink_sub(sub);
	if (sub->history) {
		/* The stored part's job still points at it; it frees it. */
		sub->conn = NULL;
		return;
	}
	sub_free(sub);
}

/* Queues a push frame for the client, or ends the subscription when the
 * connection's output is over its bound. */
static void deliver(vg_sub_t *sub, const vg_buf_t *frame)
{
	vg_conn_t *conn = sub->conn;
	size_t pending = conn->out.len - conn->out_sent;
	if (pending + frame->len > conn->server->config.max_output) {
		char msg[200];
		snprintf(msg, sizeof msg,
			 "subscription overflow: the client is not reading and %zu bytes of output "
			 "are waiting (--max-output %zu); resume with SINCE",
			 pending, conn->server->config.max_output);
		vg_log(VG_LOG_WARN, "%s: subscription %llu ended: %s", conn->peer,
		       (unsigned long long)sub->id, msg);
		end_sub(sub, VG_EOVERFLOW, msg);
		return;
	}
	if (pending > 0 && vg_server_over_buffered(conn->server)) {
		char msg[200];
		snprintf(msg, sizeof msg,
			 "subscription overflow: the server's connection buffers are over "
			 "--max-buffered %zu bytes and %zu bytes of output wait for this client; "
			 "resume with SINCE",
			 conn->server->config.max_buffered, pending);
		vg_log(VG_LOG_WARN, "%s: subscription %llu ended: %s", conn->peer,
		       (unsigned long long)sub->id, msg);
		end_sub(sub, VG_EOVERFLOW, msg);
		return;
	}
	vg_conn_send(conn, frame);
}

/* ---- building pushes ------------------------------------------------- */

const Vigil__V1__WriteField *vg_write_block_field(const Vigil__V1__WriteBlock *b, const char *name)
{
	for (size_t f = 0; f < b->n_fields; f++)
		if (strcmp(b->fields[f]->name, name) == 0)
			return b->fields[f];
	return NULL;
}

bool vg_write_block_view(const Vigil__V1__WriteBlock *b, char *const *fields, size_t nfields,
			 const Vigil__V1__WriteField **cols, vg_tag_t *tags)
{
	bool any = false;
	for (size_t i = 0; i < nfields; i++) {
		cols[i] = vg_write_block_field(b, fields[i]);
		any = any || cols[i];
	}
	if (!any)
		return false;
	for (size_t t = 0; t < b->n_tags; t++) {
		tags[t].key = (vg_str_t){b->tags[t]->key, strlen(b->tags[t]->key)};
		tags[t].value = (vg_str_t){b->tags[t]->value, strlen(b->tags[t]->value)};
	}
	return true;
}

static int compare_tag_keys(const void *a, const void *b)
{
	const Vigil__V1__Tag *x = *(Vigil__V1__Tag *const *)a, *y = *(Vigil__V1__Tag *const *)b;
	return strcmp(x->key, y->key);
}

/* Encodes the rows of `block` that `sub` selects as one Push frame into
 * out; out stays empty when no row matches. */
static int build_push(vg_sub_t *sub, const Vigil__V1__WriteBlock *block, int64_t now,
		      vg_buf_t *out)
{
	const vg_select_t *sel = sub->select;
	const Vigil__V1__WriteField *cols[VG_MAX_PUSH_FIELDS];
	vg_tag_t tags[VG_MAX_TAGS];
	if (!vg_write_block_view(block, sub->fields, sub->nfields, cols, tags))
		return 0;
	size_t n = block->n_times;
	int64_t *times = vg_malloc((n ? n : 1) * sizeof *times);
	double *values = vg_malloc((n ? n : 1) * (sub->nfields ? sub->nfields : 1) * sizeof *values);
	uint8_t *nulls = vg_calloc(sub->nfields ? sub->nfields : 1, (n + 7) / 8 + 1);
	int rc = times && values && nulls ? 0 : VG_ENOMEM;
	size_t rows = 0;
	size_t nbytes = (n + 7) / 8 + 1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		vg_window_row_t ctx = {block, i};
		if (!vg_cond_match(sel->where, tags, block->n_tags, block->times[i], now,
				   vg_window_lookup, &ctx))
			continue;
		times[rows] = block->times[i];
		for (size_t c = 0; c < sub->nfields; c++) {
			if (cols[c])
				values[c * n + rows] = cols[c]->values[i];
			else
				nulls[c * nbytes + rows / 8] |= (uint8_t)(1u << (rows % 8));
		}
		rows++;
	}
	if (rc == 0 && rows > 0) {
		Vigil__V1__Column colv[VG_MAX_PUSH_FIELDS];
		Vigil__V1__Column *colp[VG_MAX_PUSH_FIELDS];
		for (size_t c = 0; c < sub->nfields; c++) {
			vigil__v1__column__init(&colv[c]);
			colv[c].n_floats = rows;
			colv[c].floats = values + c * n;
			if (!cols[c]) {
				colv[c].nulls.len = (rows + 7) / 8;
				colv[c].nulls.data = nulls + c * nbytes;
			}
			colp[c] = &colv[c];
		}
		Vigil__V1__ResultRows rr = VIGIL__V1__RESULT_ROWS__INIT;
		rr.n_times = rows;
		rr.times = times;
		rr.n_columns = sub->nfields;
		rr.columns = colp;
		/* Group-by tags: the named ones in order ("" when absent), or
		 * every tag sorted by key for GROUP BY *.  Values are borrowed
		 * from the block. */
		Vigil__V1__Tag gtags[VG_MAX_TAGS];
		Vigil__V1__Tag *gp[VG_MAX_TAGS];
		char *keys[VG_MAX_TAGS];
		size_t ng = 0, nkeys = 0;
		if (sel->group_all_tags) {
			for (size_t t = 0; t < block->n_tags; t++)
				gp[ng++] = block->tags[t];
			qsort(gp, ng, sizeof gp[0], compare_tag_keys);
		}
		for (size_t g = 0; !sel->group_all_tags && g < sel->ngroup_tags && g < VG_MAX_TAGS;
		     g++) {
			vigil__v1__tag__init(&gtags[g]);
			keys[nkeys] = vg_strndup(sel->group_tags[g].data, sel->group_tags[g].len);
			if (!keys[nkeys]) {
				rc = VG_ENOMEM;
				break;
			}
			gtags[g].key = keys[nkeys++];
			gtags[g].value = (char *)"";
			for (size_t t = 0; t < block->n_tags; t++)
				if (strcmp(block->tags[t]->key, gtags[g].key) == 0)
					gtags[g].value = block->tags[t]->value;
			gp[ng++] = &gtags[g];
		}
		Vigil__V1__Push push = VIGIL__V1__PUSH__INIT;
		push.n_tags = ng;
		push.tags = gp;
		push.rows = &rr;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = sub->id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_PUSH;
		env.push = &push;
		if (rc == 0)
			rc = vg_frame_append(out, &env);
		for (size_t k = 0; k < nkeys; k++)
			vg_free(keys[k]);
	}
	vg_free(times);
	vg_free(values);
	vg_free(nulls);
	return rc;
}

/* Offers a series created by this write to the subscriptions filed under
 * `key` (its measurement, or measurement + one of its tag values). */
static void offer_bucket(vg_server_t *server, const char *key, size_t len,
			 const Vigil__V1__WriteBlock *block, const char *field, vg_series_id_t sid)
{
	for (vg_sub_t *sub = *bucket_of(server, key, len); sub; sub = sub->bucket_next)
		if (sub->index_len == len && memcmp(sub->index_key, key, len) == 0 &&
		    selects_field(sub, field) && tags_may_match(sub->select->where, block))
			if (sid_add(sub, sid) != 0)
				vg_log(VG_LOG_ERROR, "out of memory indexing a subscription");
}

static void offer_new_series(vg_server_t *server, const Vigil__V1__WriteBlock *block,
			     const char *field, vg_series_id_t sid, vg_buf_t *key)
{
	size_t mlen = strlen(block->measurement);
	offer_bucket(server, block->measurement, mlen, block, field, sid);
	for (size_t t = 0; t < block->n_tags; t++) {
		vg_buf_clear(key);
		uint8_t nul = 0;
		if (vg_buf_append(key, block->measurement, mlen) || vg_buf_append(key, &nul, 1) ||
		    vg_buf_append(key, block->tags[t]->key, strlen(block->tags[t]->key)) ||
		    vg_buf_append(key, &nul, 1) ||
		    vg_buf_append(key, block->tags[t]->value, strlen(block->tags[t]->value)))
			continue;
		offer_bucket(server, (const char *)key->data, key->len, block, field, sid);
	}
}

/* Gives one block to one subscription: a push, a held push, or points for
 * its windows. */
static void publish_to(vg_sub_t *sub, const Vigil__V1__WriteBlock *block, uint64_t commit,
		       int64_t now, vg_buf_t *frame)
{
	vg_buf_clear(frame);
	int rc;
	if (sub->window && sub->history) {
		/* Held as the raw block until the replay is done. */
		Vigil__V1__WriteBlock *bp[] = {(Vigil__V1__WriteBlock *)block};
		Vigil__V1__Write write = VIGIL__V1__WRITE__INIT;
		write.n_blocks = 1;
		write.blocks = bp;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_WRITE;
		env.write = &write;
		rc = vg_frame_append(frame, &env);
	} else if (sub->window) {
		rc = vg_window_add_block(sub->window, sub->id, block, now, frame);
	} else {
		rc = build_push(sub, block, now, frame);
	}
	if (rc != 0) {
		end_sub(sub, VG_ENOMEM, "out of memory building a push");
	} else if (frame->len && sub->history) {
		vg_held_push_t *h = vg_calloc(1, sizeof *h);
		if (!h) {
			end_sub(sub, VG_ENOMEM, "out of memory holding a push");
		} else {
			h->commit = commit;
			h->frame = *frame;
			vg_buf_init(frame);
			*sub->held_tail = h;
			sub->held_tail = &h->next;
		}
	} else if (frame->len) {
		deliver(sub, frame);
	}
}

void vg_subs_publish(vg_server_t *server, const vg_write_job_t *job)
{
	if (server->nsubs == 0 || !job->ids)
		return;
	const Vigil__V1__Write *write = job->envelope->write;
	int64_t now = vg_now_ns();
	vg_buf_t frame = VG_BUF_INIT, key = VG_BUF_INIT;
	vg_sub_t **take = NULL;
	size_t ntake = 0, take_cap = 0;
	size_t k = 0;
	for (size_t b = 0; b < write->n_blocks; b++) {
		const Vigil__V1__WriteBlock *block = write->blocks[b];
		uint64_t generation = ++server->publish_generation;
		ntake = 0;
		for (size_t f = 0; f < block->n_fields; f++, k++) {
			vg_series_id_t sid = job->ids[k];
			if (job->created[k])
				offer_new_series(server, block, block->fields[f]->name, sid, &key);
			for (vg_sid_node_t *n = *sid_bucket(server, sid); n; n = n->next) {
				if (n->sid != sid || n->sub->seen == generation)
					continue;
				n->sub->seen = generation;
				if (ntake == take_cap) {
					size_t cap = take_cap ? take_cap * 2 : 16;
					vg_sub_t **grown = vg_reallocarray(take, cap, sizeof *grown);
					if (!grown)
						continue;
					take = grown;
					take_cap = cap;
				}
				take[ntake++] = n->sub;
			}
		}
		/* Each subscription once per block, whichever fields it wants. */
		for (size_t i = 0; i < ntake; i++)
			publish_to(take[i], block, job->commit, now, &frame);
	}
	vg_free(take);
	vg_buf_release(&frame);
	vg_buf_release(&key);
}

/* ---- requests -------------------------------------------------------- */

/* The SELECT a windowed subscription replays for SINCE: its aggregates'
 * fields as raw columns, the same WHERE, every tag. */
static int make_raw_select(vg_sub_t *sub)
{
	const vg_select_t *sel = sub->select;
	sub->raw_columns = vg_calloc(sel->ncolumns, sizeof *sub->raw_columns);
	if (!sub->raw_columns)
		return VG_ENOMEM;
	for (size_t c = 0; c < sel->ncolumns; c++) {
		vg_select_column_t *col = &sub->raw_columns[c];
		col->agg = VG_AGG_NONE;
		col->field = sel->columns[c].field;
		col->name = sel->columns[c].field;
	}
	vg_select_t *raw = &sub->raw_select;
	*raw = *sel;
	raw->columns = sub->raw_columns;
	raw->aggregate = false;
	raw->interval_ns = 0;
	raw->offset_ns = 0;
	raw->group_tags = NULL;
	raw->ngroup_tags = 0;
	raw->group_all_tags = true;
	raw->fill = VG_FILL_NONE;
	raw->order_desc = false;
	raw->limit = 0;
	return 0;
}

const vg_select_t *vg_sub_raw_select(const vg_sub_t *sub)
{
	return sub->window ? &sub->raw_select : NULL;
}

/* Feeds one Write's blocks into a windowed subscription and delivers what
 * closes. */
static void window_feed(vg_sub_t *sub, const Vigil__V1__Write *write, vg_buf_t *frame)
{
	int64_t now = vg_now_ns();
	for (size_t b = 0; b < write->n_blocks && sub->conn; b++) {
		vg_buf_clear(frame);
		if (vg_window_add_block(sub->window, sub->id, write->blocks[b], now, frame) != 0)
			end_sub(sub, VG_ENOMEM, "out of memory folding points into windows");
		else if (frame->len)
			deliver(sub, frame);
	}
}

void vg_subs_history_points(vg_sub_t *sub, const vg_buf_t *frames)
{
	vg_buf_t frame = VG_BUF_INIT;
	size_t off = 0;
	while (off < frames->len && sub->conn) {
		Vigil__V1__Envelope *env = NULL;
		size_t used = 0;
		if (vg_frame_parse(frames->data + off, frames->len - off, SIZE_MAX, &env, &used) != 0)
			break;
		off += used;
		if (env->body_case == VIGIL__V1__ENVELOPE__BODY_WRITE)
			window_feed(sub, env->write, &frame);
		vg_frame_free_envelope(env);
	}
	vg_buf_release(&frame);
}

static int send_subscribe_ok(vg_sub_t *sub)
{
	const vg_select_t *sel = sub->select;
	char *columns[VG_MAX_PUSH_FIELDS + 1];
	Vigil__V1__ColumnType types[VG_MAX_PUSH_FIELDS + 1];
	char *tag_keys[VG_MAX_TAGS];
	size_t ntag_keys = 0;
	columns[0] = (char *)"time";
	types[0] = VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_TIME;
	int rc = 0;
	size_t made = 0;
	for (size_t i = 0; i < sub->nfields && rc == 0; i++) {
		/* Column names: the alias if the SELECT gave one. */
		const char *name = sub->fields[i];
		vg_str_t alias = {NULL, 0};
		if (sub->window)
			alias = sel->columns[i].name; /* max_usage_user or the alias */
		for (size_t c = 0; !sub->window && c < sel->ncolumns; c++)
			if (!sel->columns[c].wildcard && sel->columns[c].field.len == strlen(name) &&
			    memcmp(sel->columns[c].field.data, name, strlen(name)) == 0)
				alias = sel->columns[c].name;
		columns[i + 1] = alias.len ? vg_strndup(alias.data, alias.len) : vg_strndup(name, strlen(name));
		if (!columns[i + 1])
			rc = VG_ENOMEM;
		else
			made = i + 1;
		types[i + 1] = VIGIL__V1__COLUMN_TYPE__COLUMN_TYPE_FLOAT;
	}
	for (size_t g = 0; g < sel->ngroup_tags && g < VG_MAX_TAGS && rc == 0; g++) {
		tag_keys[g] = vg_strndup(sel->group_tags[g].data, sel->group_tags[g].len);
		if (!tag_keys[g])
			rc = VG_ENOMEM;
		else
			ntag_keys = g + 1;
	}
	if (rc == 0) {
		Vigil__V1__SubscribeOk ok = VIGIL__V1__SUBSCRIBE_OK__INIT;
		ok.name = sub->measurement;
		ok.n_tag_keys = ntag_keys;
		ok.tag_keys = tag_keys;
		ok.n_columns = sub->nfields + 1;
		ok.columns = columns;
		ok.n_types = sub->nfields + 1;
		ok.types = types;
		Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
		env.id = sub->id;
		env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK;
		env.subscribe_ok = &ok;
		vg_buf_t frame = VG_BUF_INIT;
		rc = vg_frame_append(&frame, &env);
		if (rc == 0)
			vg_conn_send_unbounded(sub->conn, &frame);
		vg_buf_release(&frame);
	}
	for (size_t i = 1; i <= made; i++)
		vg_free(columns[i]);
	for (size_t g = 0; g < ntag_keys; g++)
		vg_free(tag_keys[g]);
	return rc;
}

typedef struct {
	char **names;
	size_t len;
	int error;
} field_list_t;

static int add_field_name(void *ctx, vg_str_t name)
{
	field_list_t *list = ctx;
	if (list->len >= VG_MAX_PUSH_FIELDS)
		return VG_ELIMIT;
	char *copy = vg_strndup(name.data, name.len);
	if (!copy)
		return VG_ENOMEM;
	list->names[list->len++] = copy;
	return 0;
}

/* Resolves the selected fields (expanding *) into sub->fields. */
static int resolve_fields(vg_server_t *server, vg_sub_t *sub, char *err, size_t errlen)
{
	const vg_select_t *sel = sub->select;
	sub->fields = vg_calloc(VG_MAX_PUSH_FIELDS, sizeof *sub->fields);
	if (!sub->fields)
		return VG_ENOMEM;
	field_list_t list = {sub->fields, 0, 0};
	for (size_t c = 0; c < sel->ncolumns; c++) {
		const vg_select_column_t *col = &sel->columns[c];
		int rc;
		if (col->wildcard) {
			vg_rtxn_t *txn;
			rc = vg_store_read_begin(server->store, &txn);
			if (rc == 0) {
				rc = vg_rtxn_list_field_keys(txn, sel->measurement, add_field_name, &list);
				vg_rtxn_end(txn);
			}
		} else {
			rc = add_field_name(&list, col->field);
		}
		sub->nfields = list.len;
		if (rc == VG_ELIMIT)
			snprintf(err, errlen, "a subscription selects at most %d fields",
				 VG_MAX_PUSH_FIELDS);
		if (rc)
			return rc;
	}
	if (sub->nfields == 0) {
		snprintf(err, errlen, "measurement '%s' has no fields yet; name the fields to watch",
			 sub->measurement);
		return VG_EINVAL;
	}
	return 0;
}

void vg_subs_subscribe(vg_conn_t *conn, uint64_t id, const Vigil__V1__Subscribe *req)
{
	vg_server_t *server = conn->server;
	const char *text = req->statement ? req->statement : "";
	vg_statement_t *st = NULL;
	vg_query_error_t qerr;
	memset(&qerr, 0, sizeof qerr);
	int rc = vg_query_parse(text, strlen(text), &st, &qerr);
	if (rc) {
		vg_conn_send_error_at(conn, id, rc, qerr.message, qerr.line, qerr.column);
		return;
	}
	vg_subscribe_view_t view;
	if (vg_statement_kind(st) != VG_STMT_SUBSCRIBE || vg_statement_subscribe(st, &view) != 0) {
		vg_query_free(st);
		vg_conn_send_error(conn, id, VG_EINVAL,
				   "a Subscribe request carries a SUBSCRIBE statement", false);
		return;
	}
	size_t open_subs = 0;
	for (vg_sub_t *s = conn->subs; s; s = s->conn_next, open_subs++)
		if (s->id == id) {
			vg_query_free(st);
			vg_conn_send_error(conn, id, VG_EEXIST,
					   "a subscription with this request id is already open", false);
			return;
		}
	if (open_subs >= VG_MAX_SUBS_PER_CONN) {
		vg_query_free(st);
		char msg[120];
		snprintf(msg, sizeof msg, "a connection may hold at most %d subscriptions",
			 VG_MAX_SUBS_PER_CONN);
		vg_conn_send_error(conn, id, VG_ELIMIT, msg, false);
		return;
	}
	if (view.select->aggregate && !view.select->interval_ns) {
		vg_query_free(st);
		vg_conn_send_error(conn, id, VG_EINVAL,
				   "an aggregate subscription needs GROUP BY time(<interval>)", false);
		return;
	}
	vg_sub_t *sub = vg_calloc(1, sizeof *sub);
	char err[256] = "out of memory";
	rc = sub ? 0 : VG_ENOMEM;
	if (rc == 0) {
		sub->server = server;
		sub->conn = conn;
		sub->id = id;
		sub->statement = st;
		sub->select = view.select;
		sub->held_tail = &sub->held;
		sub->measurement = vg_strndup(view.select->measurement.data,
					      view.select->measurement.len);
		rc = sub->measurement ? make_index_key(sub) : VG_ENOMEM;
		if (rc == 0 && view.select->interval_ns)
			rc = vg_window_new(view.select, view.lateness_ns, &sub->window, err, sizeof err);
		if (rc == 0 && sub->window)
			rc = make_raw_select(sub);
		if (rc == 0)
			rc = resolve_fields(server, sub, err, sizeof err);
	}
	int64_t since = INT64_MIN;
	bool has_since = req->has_since || view.has_since;
	if (rc == 0 && has_since) {
		if (req->has_since)
			since = req->since;
		else if (vg_time_expr_eval(&view.since, vg_now_ns(), &since) != 0) {
			snprintf(err, sizeof err, "SINCE time is out of range");
			rc = VG_EINVAL;
		}
	}
	if (rc) {
		vg_conn_send_error(conn, id, rc, err, false);
		if (sub)
			sub_free(sub);
		else
			vg_query_free(st);
		return;
	}
	/* Register first: every commit published from now on reaches it. */
	vg_sub_t **bucket = bucket_of(server, sub->index_key, sub->index_len);
	sub->bucket_next = *bucket;
	*bucket = sub;
	sub->conn_next = conn->subs;
	conn->subs = sub;
	server->nsubs++;
	atomic_fetch_add(&server->stat_subscriptions, 1);
	vg_idset_t ids = VG_IDSET_INIT;
	rc = vg_select_series(server->store, sub->select, &ids);
	for (size_t i = 0; rc == 0 && i < ids.len; i++)
		rc = sid_add(sub, ids.ids[i]);
	vg_idset_release(&ids);
	if (rc) {
		end_sub(sub, rc, "cannot resolve the series of the subscription");
		return;
	}
	if (send_subscribe_ok(sub) != 0) {
		end_sub(sub, VG_ENOMEM, "out of memory");
		return;
	}
	vg_log(VG_LOG_DEBUG, "%s: subscription %llu on '%s'%s", conn->peer,
	       (unsigned long long)id, sub->measurement, has_since ? " with SINCE" : "");
	if (has_since) {
		sub->history = true;
		if (vg_workers_submit_history(conn, sub, since) != 0) {
			sub->history = false;
			end_sub(sub, VG_ENOMEM, "out of memory starting the SINCE part");
		}
	}
}

void vg_subs_history_done(vg_sub_t *sub, uint64_t snapshot, int rc, const char *message)
{
	if (!sub->conn) {
		/* Ended (unsubscribed, overflowed, or its connection closed)
		 * while the stored part ran. */
		sub_free(sub);
		return;
	}
	if (rc) {
		sub->history = false;
		end_sub(sub, rc, message);
		return;
	}
	sub->snapshot = snapshot;
	vg_held_push_t *h = sub->held;
	sub->held = NULL;
	sub->held_tail = &sub->held;
	/* Still marked as replaying while the held pushes go out, so that an
	 * overflow meanwhile only detaches the subscription (freed below). */
	for (; h && sub->conn; ) {
		vg_held_push_t *next = h->next;
		if (h->commit > snapshot) {
			if (sub->window)
				vg_subs_history_points(sub, &h->frame);
			else
				deliver(sub, &h->frame);
		}
		vg_buf_release(&h->frame);
		vg_free(h);
		h = next;
	}
	while (h) {
		vg_held_push_t *next = h->next;
		vg_buf_release(&h->frame);
		vg_free(h);
		h = next;
	}
	sub->history = false;
	if (!sub->conn)
		sub_free(sub);
}

void vg_subs_tick(vg_server_t *server)
{
	if (server->nsubs == 0)
		return;
	int64_t now = vg_now_ns();
	vg_buf_t frame = VG_BUF_INIT;
	for (size_t b = 0; b < SUB_BUCKETS; b++) {
		vg_sub_t *sub = server->sub_buckets[b];
		while (sub) {
			vg_sub_t *next = sub->bucket_next;
			if (sub->window && !sub->history) {
				vg_buf_clear(&frame);
				if (vg_window_tick(sub->window, sub->id, now, &frame) != 0)
					end_sub(sub, VG_ENOMEM, "out of memory closing windows");
				else if (frame.len)
					deliver(sub, &frame);
			}
			sub = next;
		}
	}
	vg_buf_release(&frame);
}

void vg_subs_unsubscribe(vg_conn_t *conn, uint64_t sub_id)
{
	for (vg_sub_t *s = conn->subs; s; s = s->conn_next)
		if (s->id == sub_id) {
			end_sub(s, 0, NULL);
			return;
		}
	/* Unknown or already ended: nothing to answer (docs/protocol.md). */
}

void vg_subs_conn_closed(vg_conn_t *conn)
{
	while (conn->subs) {
		vg_sub_t *sub = conn->subs;
		unlink_sub(sub);
		if (sub->history)
			sub->conn = NULL; /* the stored part frees it */
		else
			sub_free(sub);
	}
}

vg_conn_t *vg_sub_conn(const vg_sub_t *sub) { return sub->conn; }

uint64_t vg_sub_id(const vg_sub_t *sub) { return sub->id; }

const vg_statement_t *vg_sub_statement(const vg_sub_t *sub) { return sub->statement; }
