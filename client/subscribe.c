/*
 * subscribe.c — subscriptions: SUBSCRIBE statements whose rows the server
 * pushes as data arrives, delivered to callbacks by vg_client_process(),
 * and resumed after a lost connection or an overflow without a gap or a
 * duplicate.
 *
 * Shape.  client.c owns the socket and routes every frame by its id; the
 * frames of a subscription (SubscribeOk of a resume, Push,
 * SubscriptionEnd, Error) are handed here by vg_subs_claim() and go into
 * one FIFO queue per client, whatever call happened to read them — a
 * query waiting for its answer, a write waiting for its ack.  Only
 * vg_client_process() takes them out and calls the callbacks, so a
 * callback never runs inside another call of the library, and frames of
 * all subscriptions are delivered in the order they arrived.
 *
 * A subscription is known to the application by the id of the Subscribe
 * request that created it (`id`), which never changes; on the wire it is
 * known by the id of the Subscribe in force (`wire_id`), which a resume
 * replaces.  Its states:
 *
 *   ACTIVE   SubscribeOk received, pushes flowing under wire_id;
 *   SENT     a resuming Subscribe sent under wire_id, its SubscribeOk not
 *            yet delivered (the frames behind it are queued as usual);
 *   WAIT     interrupted, no Subscribe in force (wire_id 0): it is sent by
 *            the next vg_client_process() on a live connection — at once
 *            after an OVERFLOW, after reconnecting after a lost connection
 *            or a server SHUTDOWN (wait_reconnect).
 *
 * Resume without gap or duplicate.  Each subscription remembers, per group
 * (the Push's tag set), the latest row time it delivered (`last`).  To
 * resume it subscribes again with has_since/since = the minimum `last`
 * over its groups, and sets each group's `floor` to its `last`: from then
 * on a row of that group at or before its floor is not delivered again
 * (rows marked `update` always are).  With no row delivered yet it resumes
 * with the SINCE of the previous resume, else with the statement's own.
 * The rule is exact when each group's rows come in time order (one series
 * per group, written in order); the docs of vigil.h list the edge cases.
 *
 * Bounded queue.  Pushes queued for a client are limited in bytes
 * (vg_client_set_queue_limit()).  A push that would pass the limit, or
 * that cannot be queued for lack of memory, is not lost: its
 * subscription's queued frames are dropped, it is unsubscribed on the
 * server and resumed (from its last delivered rows) by the next
 * vg_client_process(), exactly like an OVERFLOW from the server.
 *
 * Reconnection.  When vg_client_process() finds the connection closed and
 * subscriptions alive, it delivers what was received before, tells every
 * subscription (VG_SUB_RESUMING), and reconnects with exponential backoff
 * (first attempt at once, then first_delay_ms doubling up to
 * max_delay_ms).  A connection that is made counts as an attempt too, and
 * the count starts again only once the connection has proved healthy — a
 * row delivered, or max_delay_ms up — so a server that accepts and then
 * drops at once (a SINCE it cannot serve) is not hammered in a tight loop.
 * After `attempts` attempts in a row it gives up and ends them
 * (VG_SUB_END with the last failure).  Interruptions on a live connection
 * (OVERFLOW, a full queue) back off the same way per subscription: the
 * first resume goes at once, the next ones wait, and after `attempts`
 * interruptions without a row delivered in between it gives up.
 *
 * Callbacks may call vg_client_unsubscribe() (of any subscription, their
 * own included), vg_client_subscribe(), queries and writes; not
 * vg_client_process() (refused) nor vg_client_close().  A subscription
 * removed while its callback runs is freed when the callback returns
 * (`dead`), and the dispatch loop looks subscriptions up by id for every
 * frame, so nothing dangles.
 */
#include "client_int.h"

#include "vg_alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_QUEUE_LIMIT (16u * 1024u * 1024u)
#define DEFAULT_ATTEMPTS 20
#define DEFAULT_FIRST_DELAY_MS 100
#define DEFAULT_MAX_DELAY_MS 5000
/* Reads one vg_client_process() makes after the first, before it returns
 * and lets the caller's loop run: a busy server cannot keep it forever. */
#define MAX_READS_PER_CALL 64
/* Rows whose keep flags fit on the stack. */
#define KEEP_ON_STACK 256

typedef enum { SUB_ACTIVE, SUB_SENT, SUB_WAIT } sub_state_t;

/* One group (tag set) of a subscription's rows.  Invariant: last is the
 * largest time delivered for the group; floor <= last when has_floor. */
typedef struct group {
	char *key; /* owned; "k1\0v1\0...kn\0vn\0", keylen bytes */
	size_t keylen;
	uint64_t hash;
	int64_t last;
	int64_t floor;
	bool has_floor;
} group_t;

typedef struct sub {
	uint64_t id;      /* the application's handle */
	uint64_t wire_id; /* the Subscribe in force; 0 in WAIT */
	sub_state_t state;
	bool wait_reconnect; /* WAIT until a new connection */
	bool dead;           /* removed while its callback runs */
	int pending_code;    /* a RESUMING event still to deliver, or 0 */
	char pending_msg[VG_CLIENT_ERRSTR];
	int stalls;           /* interruptions on a live connection since the last row */
	int stall_code;       /* the last one's reason */
	int64_t resume_at_ms; /* WAIT: not before this (backoff) */
	char *statement;      /* owned */
	vg_subscribe_cb cb;
	void *ctx;
	Vigil__V1__Envelope *ok; /* owned; the SubscribeOk in force */
	vg_result_set_t shape;   /* built from ok: tag keys, columns, no rows */
	group_t *groups;
	size_t ngroups, gcap;
	size_t *slots;  /* open addressing: 0 empty, else group index + 1 */
	size_t nslots;  /* 0 or a power of two, at least twice ngroups */
	bool has_since; /* the SINCE of the last resume */
	int64_t since;
	bool live_only; /* the server refused SINCE: resume without it */
	int gap_code;   /* the refusal, told with the next VG_SUB_RESUMED */
	char gap_msg[VG_CLIENT_ERRSTR];
	uint64_t rows; /* rows delivered */
} sub_t;

typedef struct entry {
	uint64_t sub_id;
	Vigil__V1__Envelope *env; /* owned */
	size_t bytes;
} entry_t;

struct vg_subs {
	sub_t **subs; /* in subscription order */
	size_t nsubs, cap;
	entry_t *queue; /* entries [qhead, qhead + qlen) */
	size_t qhead, qlen, qcap;
	size_t qbytes; /* bytes of the queued Push frames */
	size_t qlimit;
	sub_t *current;   /* whose callback is running */
	bool dispatching; /* inside vg_client_process() */
	int attempts, first_delay_ms, max_delay_ms;
	bool reconnecting;   /* a loss was noticed and not yet repaired */
	int tries;           /* reconnection attempts since the connection was healthy */
	int64_t next_try_ms; /* the next attempt, while reconnecting */
	int64_t up_since_ms; /* when the current connection was reopened */
	bool progress;       /* a row was delivered since then */
	vg_buf_t key;        /* scratch: the group key being looked up */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

/* The wait before retry n (n >= 1; none before the first try): the first
 * delay, doubling, up to the maximum. */
static int64_t backoff_ms(const vg_subs_t *s, int n)
{
	int64_t d = s->first_delay_ms;
	for (int i = 1; i < n && d < s->max_delay_ms; i++)
		d *= 2;
	return n <= 0 ? 0 : d < s->max_delay_ms ? d : s->max_delay_ms;
}

/* ---- the table of subscriptions ------------------------------------------------- */

static vg_subs_t *subs_get(vg_client_t *c)
{
	vg_subs_t **slot = vg_client_subs(c);
	if (!*slot) {
		vg_subs_t *s = vg_calloc(1, sizeof *s);
		if (!s)
			return NULL;
		s->qlimit = DEFAULT_QUEUE_LIMIT;
		s->attempts = DEFAULT_ATTEMPTS;
		s->first_delay_ms = DEFAULT_FIRST_DELAY_MS;
		s->max_delay_ms = DEFAULT_MAX_DELAY_MS;
		*slot = s;
	}
	return *slot;
}

static sub_t *find_sub(const vg_subs_t *s, uint64_t id)
{
	for (size_t i = 0; s && i < s->nsubs; i++)
		if (s->subs[i]->id == id)
			return s->subs[i];
	return NULL;
}

static void sub_free(sub_t *sub)
{
	for (size_t i = 0; i < sub->ngroups; i++)
		vg_free(sub->groups[i].key);
	vg_free(sub->groups);
	vg_free(sub->slots);
	vg_result_set_release(&sub->shape);
	vg_frame_free_envelope(sub->ok);
	vg_free(sub->statement);
	vg_free(sub);
}

/* Drops the queued frames of subscription `id`. */
static void queue_purge(vg_subs_t *s, uint64_t id)
{
	size_t to = s->qhead;
	for (size_t i = s->qhead; i < s->qhead + s->qlen; i++) {
		entry_t *e = &s->queue[i];
		if (e->sub_id == id) {
			s->qbytes -= e->bytes;
			vg_frame_free_envelope(e->env);
		} else {
			s->queue[to++] = *e;
		}
	}
	s->qlen = to - s->qhead;
	if (!s->qlen)
		s->qhead = 0;
}

static int queue_push(vg_subs_t *s, uint64_t id, Vigil__V1__Envelope *env, size_t bytes)
{
	if (s->qhead + s->qlen == s->qcap) {
		if (s->qhead) {
			memmove(s->queue, s->queue + s->qhead, s->qlen * sizeof *s->queue);
			s->qhead = 0;
		} else {
			size_t cap = s->qcap ? s->qcap * 2 : 16;
			entry_t *q = vg_reallocarray(s->queue, cap, sizeof *q);
			if (!q)
				return VG_ENOMEM;
			s->queue = q;
			s->qcap = cap;
		}
	}
	s->queue[s->qhead + s->qlen++] = (entry_t){id, env, bytes};
	s->qbytes += bytes;
	return 0;
}

/* Forgets a subscription: out of the table, its queued frames dropped.  If
 * its callback is running, it is freed when the callback returns. */
static void sub_remove(vg_subs_t *s, sub_t *sub)
{
	for (size_t i = 0; i < s->nsubs; i++) {
		if (s->subs[i] == sub) {
			memmove(s->subs + i, s->subs + i + 1, (s->nsubs - i - 1) * sizeof *s->subs);
			s->nsubs--;
			break;
		}
	}
	queue_purge(s, sub->id);
	if (sub == s->current)
		sub->dead = true;
	else
		sub_free(sub);
}

void vg_subs_free(vg_subs_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nsubs; i++)
		sub_free(s->subs[i]);
	vg_free(s->subs);
	for (size_t i = s->qhead; i < s->qhead + s->qlen; i++)
		vg_frame_free_envelope(s->queue[i].env);
	vg_free(s->queue);
	vg_buf_release(&s->key);
	vg_free(s);
}

/* ---- groups ---------------------------------------------------------------------- */

static uint64_t hash_key(const uint8_t *p, size_t n)
{
	uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211);
	return h;
}

static int grow_slots(sub_t *sub)
{
	size_t n = sub->nslots ? sub->nslots * 2 : 16;
	size_t *slots = vg_calloc(n, sizeof *slots);
	if (!slots)
		return VG_ENOMEM;
	for (size_t g = 0; g < sub->ngroups; g++) {
		size_t i = sub->groups[g].hash & (n - 1);
		while (slots[i])
			i = (i + 1) & (n - 1);
		slots[i] = g + 1;
	}
	vg_free(sub->slots);
	sub->slots = slots;
	sub->nslots = n;
	return 0;
}

/* The group of key (len bytes), created if new.  Returns 0 or VG_ENOMEM
 * (nothing changed). */
static int group_get(sub_t *sub, const uint8_t *key, size_t len, group_t **out)
{
	uint64_t h = hash_key(key, len);
	if (sub->nslots) {
		for (size_t i = h & (sub->nslots - 1); sub->slots[i];
		     i = (i + 1) & (sub->nslots - 1)) {
			group_t *g = &sub->groups[sub->slots[i] - 1];
			if (g->hash == h && g->keylen == len &&
			    (len == 0 || !memcmp(g->key, key, len))) {
				*out = g;
				return 0;
			}
		}
	}
	if (2 * (sub->ngroups + 1) > sub->nslots && grow_slots(sub))
		return VG_ENOMEM;
	if (sub->ngroups == sub->gcap) {
		size_t cap = sub->gcap ? sub->gcap * 2 : 8;
		group_t *groups = vg_reallocarray(sub->groups, cap, sizeof *groups);
		if (!groups)
			return VG_ENOMEM;
		sub->groups = groups;
		sub->gcap = cap;
	}
	char *copy = vg_malloc(len ? len : 1);
	if (!copy)
		return VG_ENOMEM;
	if (len) /* key is NULL for the one group of a subscription without GROUP BY */
		memcpy(copy, key, len);
	group_t *g = &sub->groups[sub->ngroups];
	*g = (group_t){.key = copy, .keylen = len, .hash = h, .last = INT64_MIN};
	size_t i = h & (sub->nslots - 1);
	while (sub->slots[i])
		i = (i + 1) & (sub->nslots - 1);
	sub->slots[i] = ++sub->ngroups;
	*out = g;
	return 0;
}

/* ---- events ---------------------------------------------------------------------- */

/* Tells the server to stop the Subscribe `wire_id`, best effort: its late
 * frames and its SubscriptionEnd are dropped as nobody's. */
static void send_unsubscribe(vg_client_t *c, uint64_t wire_id)
{
	Vigil__V1__Unsubscribe un = VIGIL__V1__UNSUBSCRIBE__INIT;
	un.subscription_id = wire_id;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = vg_client_take_id(c);
	env.body_case = VIGIL__V1__ENVELOPE__BODY_UNSUBSCRIBE;
	env.unsubscribe = &un;
	vg_client_send_quietly(c, &env, "unsubscribe");
}

/* Calls the subscription's callback; afterwards `sub` may be gone. */
static void emit(vg_subs_t *s, sub_t *sub, vg_sub_event_t *ev)
{
	ev->sub_id = sub->id;
	if (!ev->message)
		ev->message = "";
	sub_t *was = s->current;
	s->current = sub;
	sub->cb(sub->ctx, ev);
	s->current = was;
	if (sub->dead)
		sub_free(sub);
}

/* Ends a subscription for good: VG_SUB_END, then it is freed.  With
 * `unsubscribe`, the server is told too (it still believes it alive). */
static void finish(vg_client_t *c, vg_subs_t *s, sub_t *sub, int code, const char *message,
                   bool unsubscribe)
{
	if (unsubscribe && sub->wire_id)
		send_unsubscribe(c, sub->wire_id);
	sub_t *was = s->current;
	s->current = sub; /* so that sub_remove() leaves it for emit() to free */
	sub_remove(s, sub);
	s->current = was;
	vg_sub_event_t ev = {.kind = VG_SUB_END, .code = code, .message = message};
	emit(s, sub, &ev);
}

/* Stops a subscription in the middle (its push could not be queued): its
 * queued frames go, the server forgets it, and the next
 * vg_client_process() resumes it from what was delivered. */
static void interrupt(vg_client_t *c, vg_subs_t *s, sub_t *sub, int code, const char *message)
{
	queue_purge(s, sub->id);
	if (sub->wire_id)
		send_unsubscribe(c, sub->wire_id);
	sub->wire_id = 0;
	sub->state = SUB_WAIT;
	sub->stall_code = code;
	sub->resume_at_ms = now_ms() + backoff_ms(s, sub->stalls++);
	if (!sub->pending_code) {
		sub->pending_code = code;
		snprintf(sub->pending_msg, sizeof sub->pending_msg, "subscription %" PRIu64 ": %s",
		         sub->id, message);
	}
}

bool vg_subs_claim(vg_client_t *c, vg_subs_t *s, Vigil__V1__Envelope *env, size_t frame_bytes)
{
	sub_t *sub = NULL;
	for (size_t i = 0; i < s->nsubs && !sub; i++)
		if (s->subs[i]->wire_id == env->id)
			sub = s->subs[i];
	if (!sub)
		return false;
	/* Only pushes count against the limit: the other frames are small and
	 * each ends or starts something.  One push is always accepted, however
	 * large, or a push above the limit could never be delivered. */
	bool push = env->body_case == VIGIL__V1__ENVELOPE__BODY_PUSH;
	size_t bytes = push ? frame_bytes : 0;
	char why[128];
	if (push && s->qbytes && s->qbytes + bytes > s->qlimit) {
		snprintf(why, sizeof why,
		         "more than %zu bytes of pushes waited for vg_client_process()", s->qlimit);
		vg_frame_free_envelope(env);
		interrupt(c, s, sub, VG_EOVERFLOW, why);
	} else if (queue_push(s, sub->id, env, bytes)) {
		vg_frame_free_envelope(env);
		interrupt(c, s, sub, VG_ENOMEM, "out of memory queueing a push");
	}
	return true;
}

/* ---- shapes and pushes ------------------------------------------------------------- */

/* Makes `ok` (a SubscribeOk envelope, taken on success) the subscription's
 * shape.  Returns 0, VG_EPROTO (err) or VG_ENOMEM. */
static int adopt_shape(sub_t *sub, Vigil__V1__Envelope *ok, char *err, size_t errlen)
{
	const Vigil__V1__SubscribeOk *so = ok->subscribe_ok;
	if (so->n_tag_keys > VG_MAX_TAGS) {
		snprintf(err, errlen, "SubscribeOk with %zu tag keys, more than %d", so->n_tag_keys,
		         VG_MAX_TAGS);
		return VG_EPROTO;
	}
	if (so->n_columns == 0 || strcmp(str_or_empty(so->columns[0]), "time")) {
		snprintf(err, errlen, "SubscribeOk whose first column is not \"time\"");
		return VG_EPROTO;
	}
	Vigil__V1__Tag tags[VG_MAX_TAGS];
	Vigil__V1__Tag *tag_ptrs[VG_MAX_TAGS];
	for (size_t i = 0; i < so->n_tag_keys; i++) {
		vigil__v1__tag__init(&tags[i]);
		tags[i].key = so->tag_keys[i];
		tags[i].value = (char *)"";
		tag_ptrs[i] = &tags[i];
	}
	Vigil__V1__ResultSet rs = VIGIL__V1__RESULT_SET__INIT;
	rs.name = so->name;
	rs.n_tags = so->n_tag_keys;
	rs.tags = tag_ptrs;
	rs.n_columns = so->n_columns;
	rs.columns = so->columns;
	rs.n_types = so->n_types;
	rs.types = so->types;
	rs.has_time = true;
	vg_result_set_t shape;
	int rc = vg_result_set_init(&shape, &rs, err, errlen);
	if (rc)
		return rc;
	vg_result_set_release(&sub->shape);
	vg_frame_free_envelope(sub->ok);
	sub->shape = shape;
	sub->ok = ok;
	return 0;
}

/* The set of one push: the subscription's columns, the push's group and
 * rows.  Returns 0, VG_EPROTO (err) or VG_ENOMEM; *set needs releasing
 * either way. */
static int push_set(const sub_t *sub, const Vigil__V1__Push *push, vg_result_set_t *set, char *err,
                    size_t errlen)
{
	memset(set, 0, sizeof *set);
	const Vigil__V1__SubscribeOk *so = sub->ok->subscribe_ok;
	if (push->n_tags > VG_MAX_TAGS) {
		snprintf(err, errlen, "push with %zu tags, more than %d", push->n_tags,
		         VG_MAX_TAGS);
		return VG_EPROTO;
	}
	/* Keys from the push, or from SubscribeOk where the push left them
	 * out; GROUP BY * announces no keys and sends them with each push. */
	Vigil__V1__Tag tags[VG_MAX_TAGS];
	Vigil__V1__Tag *tag_ptrs[VG_MAX_TAGS];
	for (size_t i = 0; i < push->n_tags; i++) {
		vigil__v1__tag__init(&tags[i]);
		const char *key = str_or_empty(push->tags[i]->key);
		if (!*key && i < so->n_tag_keys)
			key = so->tag_keys[i];
		tags[i].key = (char *)key;
		tags[i].value = push->tags[i]->value;
		tag_ptrs[i] = &tags[i];
	}
	Vigil__V1__ResultSet rs = VIGIL__V1__RESULT_SET__INIT;
	rs.name = so->name;
	rs.n_tags = push->n_tags;
	rs.tags = tag_ptrs;
	rs.n_columns = so->n_columns;
	rs.columns = so->columns;
	rs.n_types = so->n_types;
	rs.types = so->types;
	rs.has_time = true;
	int rc = vg_result_set_init(set, &rs, err, errlen);
	return rc ? rc : vg_result_set_append(set, push->rows, err, errlen);
}

/* The group key of a set: its tags, key and value, NUL-separated. */
static int group_key(vg_subs_t *s, const vg_result_set_t *set)
{
	vg_buf_clear(&s->key);
	for (size_t i = 0; i < vg_result_tag_count(set); i++) {
		const char *k = vg_result_tag_key(set, i), *v = vg_result_tag_value(set, i);
		if (vg_buf_append(&s->key, k, strlen(k) + 1) ||
		    vg_buf_append(&s->key, v, strlen(v) + 1))
			return VG_ENOMEM;
	}
	return 0;
}

/* Delivers the rows of one push that were not delivered before.  Returns
 * the number of events (0 or 1). */
static long deliver_push(vg_client_t *c, vg_subs_t *s, sub_t *sub, const Vigil__V1__Push *push)
{
	if (!push->rows || push->rows->n_times == 0)
		return 0;
	char err[256] = "";
	vg_result_set_t set;
	group_t *g = NULL;
	int rc = push_set(sub, push, &set, err, sizeof err);
	if (!rc)
		rc = group_key(s, &set);
	if (!rc)
		rc = group_get(sub, s->key.data, s->key.len, &g);
	bool stack_keep[KEEP_ON_STACK], *keep = stack_keep;
	size_t n = vg_result_row_count(&set);
	if (!rc && g->has_floor && !push->update && n > KEEP_ON_STACK &&
	    !(keep = vg_malloc(n * sizeof *keep)))
		rc = VG_ENOMEM;
	if (rc) {
		vg_result_set_release(&set);
		if (rc == VG_EPROTO) {
			char msg[VG_CLIENT_ERRSTR];
			snprintf(msg, sizeof msg, "subscription %" PRIu64 ": bad push: %s", sub->id,
			         err);
			finish(c, s, sub, VG_EPROTO, msg, true);
			return 1;
		}
		interrupt(c, s, sub, VG_ENOMEM, "out of memory delivering a push");
		return 0;
	}
	if (g->has_floor && !push->update) {
		size_t kept = 0;
		for (size_t i = 0; i < n; i++)
			kept += keep[i] = vg_result_time(&set, i) > g->floor;
		if (kept < n)
			vg_result_set_keep_rows(&set, keep);
		if (keep != stack_keep)
			vg_free(keep);
		n = kept;
	}
	for (size_t i = 0; i < n; i++)
		if (vg_result_time(&set, i) > g->last)
			g->last = vg_result_time(&set, i);
	if (n == 0) {
		vg_result_set_release(&set);
		return 0;
	}
	set.first_row = sub->rows;
	sub->rows += n;
	sub->stalls = 0;
	s->progress = true;
	vg_sub_event_t ev = {.kind = VG_SUB_ROWS, .set = &set, .update = push->update};
	emit(s, sub, &ev);
	vg_result_set_release(&set);
	return 1;
}

/* ---- dispatch ---------------------------------------------------------------------- */

static long end_with_error(vg_client_t *c, vg_subs_t *s, sub_t *sub, const Vigil__V1__Error *e,
                           bool unsubscribe)
{
	int code = vg_error_from_wire(e->code);
	char msg[VG_CLIENT_ERRSTR];
	snprintf(msg, sizeof msg, "subscription %" PRIu64 ": %s", sub->id,
	         e->message && *e->message ? e->message : vg_strerror(code));
	finish(c, s, sub, code, msg, unsubscribe);
	return 1;
}

/* The server stopped the subscription but it can go on: WAIT for a resume
 * (on a new connection when the server is shutting down). */
static long suspend(vg_subs_t *s, sub_t *sub, const Vigil__V1__Error *e, bool reconnect)
{
	int code = vg_error_from_wire(e->code);
	sub->state = SUB_WAIT;
	sub->wire_id = 0;
	sub->wait_reconnect = reconnect;
	sub->stall_code = code;
	sub->resume_at_ms = now_ms() + backoff_ms(s, sub->stalls++);
	char msg[VG_CLIENT_ERRSTR];
	snprintf(msg, sizeof msg, "subscription %" PRIu64 ": %s", sub->id,
	         e->message && *e->message ? e->message : vg_strerror(code));
	vg_sub_event_t ev = {.kind = VG_SUB_RESUMING, .code = code, .message = msg};
	emit(s, sub, &ev);
	return 1;
}

/* Delivers one queued frame; returns the number of events. */
static long dispatch_entry(vg_client_t *c, vg_subs_t *s, entry_t e)
{
	sub_t *sub = find_sub(s, e.sub_id);
	Vigil__V1__Envelope *env = e.env;
	long events = 0;
	char err[256] = "", msg[VG_CLIENT_ERRSTR];
	if (!sub) {
		vg_frame_free_envelope(env);
		return 0;
	}
	switch (env->body_case) {
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK: {
		int rc =
		    sub->state == SUB_SENT ? adopt_shape(sub, env, err, sizeof err) : VG_EPROTO;
		if (rc == VG_ENOMEM) {
			interrupt(c, s, sub, rc, "out of memory resuming"); /* try again */
			break;
		}
		if (rc) {
			snprintf(msg, sizeof msg, "subscription %" PRIu64 ": %s", sub->id,
			         err[0] ? err : "SubscribeOk twice");
			finish(c, s, sub, rc, msg, true);
			events = 1;
			break;
		}
		env = NULL; /* the subscription's now */
		sub->state = SUB_ACTIVE;
		if (sub->gap_code)
			snprintf(msg, sizeof msg, "%s", sub->gap_msg);
		else if (sub->has_since)
			snprintf(msg, sizeof msg,
			         "subscription %" PRIu64 ": resumed since %" PRId64, sub->id,
			         sub->since);
		else
			snprintf(msg, sizeof msg, "subscription %" PRIu64 ": resumed", sub->id);
		vg_sub_event_t ev = {.kind = VG_SUB_RESUMED, .code = sub->gap_code, .message = msg};
		sub->gap_code = 0;
		emit(s, sub, &ev);
		events = 1;
		break;
	}
	case VIGIL__V1__ENVELOPE__BODY_PUSH:
		if (sub->state == SUB_ACTIVE) {
			events = deliver_push(c, s, sub, env->push);
		} else {
			snprintf(msg, sizeof msg,
			         "subscription %" PRIu64 ": push before SubscribeOk", sub->id);
			finish(c, s, sub, VG_EPROTO, msg, true);
			events = 1;
		}
		break;
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIPTION_END: {
		const Vigil__V1__Error *er = env->subscription_end->error;
		if (!er) {
			snprintf(msg, sizeof msg, "subscription %" PRIu64 ": ended by the server",
			         sub->id);
			finish(c, s, sub, 0, msg, false);
			events = 1;
		} else if (er->code == VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW) {
			events = suspend(s, sub, er, false);
		} else if (er->code == VIGIL__V1__ERROR_CODE__ERROR_SHUTDOWN) {
			events = suspend(s, sub, er, true);
		} else {
			events = end_with_error(c, s, sub, er, false);
		}
		break;
	}
	case VIGIL__V1__ENVELOPE__BODY_ERROR: /* refused a resuming Subscribe */
		if (env->error->code == VIGIL__V1__ERROR_CODE__ERROR_SHUTDOWN) {
			sub->state = SUB_WAIT; /* RESUMING was said already */
			sub->wire_id = 0;
			sub->wait_reconnect = true;
		} else if (env->error->code == VIGIL__V1__ERROR_CODE__ERROR_INVALID &&
		           sub->has_since && !sub->live_only) {
			/* A server that cannot replay this statement (windowed
			 * subscriptions): go on live, and say rows may be missing. */
			sub->live_only = true;
			sub->state = SUB_WAIT;
			sub->wire_id = 0;
			sub->resume_at_ms = 0;
			snprintf(sub->gap_msg, sizeof sub->gap_msg,
			         "subscription %" PRIu64 ": resumed without SINCE, rows of the "
			         "interruption may be missing (the server: %s)",
			         sub->id, env->error->message ? env->error->message : "");
		} else {
			events = end_with_error(c, s, sub, env->error, false);
		}
		break;
	default: {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
		    &vigil__v1__envelope__descriptor, (unsigned)env->body_case);
		snprintf(msg, sizeof msg, "subscription %" PRIu64 ": unexpected %s frame", sub->id,
		         f ? f->name : "unknown");
		finish(c, s, sub, VG_EPROTO, msg, true);
		events = 1;
	}
	}
	vg_frame_free_envelope(env);
	return events;
}

static long dispatch_queue(vg_client_t *c, vg_subs_t *s)
{
	long events = 0;
	while (s->qlen) {
		entry_t e = s->queue[s->qhead++];
		s->qbytes -= e.bytes;
		if (!--s->qlen)
			s->qhead = 0;
		events += dispatch_entry(c, s, e);
	}
	return events;
}

/* ---- resuming ---------------------------------------------------------------------- */

/* Sends the Subscribe that resumes a WAITing subscription. */
static int send_resume(vg_client_t *c, sub_t *sub)
{
	if (sub->ngroups) { /* floors even live-only: windows are not pushed twice */
		int64_t since = INT64_MAX;
		for (size_t i = 0; i < sub->ngroups; i++) {
			group_t *g = &sub->groups[i];
			g->floor = g->last;
			g->has_floor = true;
			if (g->last < since)
				since = g->last;
		}
		sub->has_since = true;
		sub->since = since;
	}
	Vigil__V1__Subscribe req = VIGIL__V1__SUBSCRIBE__INIT;
	req.statement = sub->statement;
	req.has_since = sub->has_since && !sub->live_only;
	if (sub->live_only)
		sub->gap_code = VG_EINVAL; /* gap_msg still says why */
	req.since = sub->since;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = vg_client_take_id(c);
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &req;
	int rc = vg_client_send(c, &env, "subscribe");
	if (rc)
		return rc;
	sub->wire_id = env.id;
	sub->state = SUB_SENT;
	return 0;
}

/* Delivers the RESUMING events of interrupted subscriptions, ends those
 * interrupted too often without progress, then sends every resume that
 * is due on this connection.  Returns the events. */
static long resume_waiting(vg_client_t *c, vg_subs_t *s)
{
	long events = 0;
	for (bool again = true; again;) {
		again = false;
		for (size_t i = 0; i < s->nsubs && !again; i++) {
			sub_t *sub = s->subs[i];
			if (sub->pending_code) {
				vg_sub_event_t ev = {.kind = VG_SUB_RESUMING,
				                     .code = sub->pending_code,
				                     .message = sub->pending_msg};
				sub->pending_code = 0;
				emit(s, sub, &ev); /* may change the table: look again */
				events++;
				again = true;
			} else if (sub->state == SUB_WAIT && s->attempts >= 0 &&
			           sub->stalls > s->attempts) {
				char msg[VG_CLIENT_ERRSTR];
				snprintf(msg, sizeof msg,
				         "subscription %" PRIu64 ": gave up after %d interruptions "
				         "without a row delivered (the last: %s)",
				         sub->id, sub->stalls, vg_strerror(sub->stall_code));
				finish(c, s, sub, sub->stall_code, msg, false);
				events++;
				again = true;
			}
		}
	}
	int64_t now = now_ms();
	for (size_t i = 0; i < s->nsubs && !vg_client_is_closed(c); i++) {
		sub_t *sub = s->subs[i];
		if (sub->state == SUB_WAIT && !sub->wait_reconnect && now >= sub->resume_at_ms)
			send_resume(c, sub); /* a failure closed the connection */
	}
	return events;
}

/* When the next resume on this connection is due; INT64_MAX if none. */
static int64_t next_resume_ms(const vg_subs_t *s)
{
	int64_t at = INT64_MAX;
	for (size_t i = 0; i < s->nsubs; i++) {
		const sub_t *sub = s->subs[i];
		if (sub->state == SUB_WAIT && !sub->wait_reconnect && sub->resume_at_ms < at)
			at = sub->resume_at_ms;
	}
	return at;
}

/* Ends every subscription with the failure that stopped reconnection. */
static long give_up(vg_client_t *c, vg_subs_t *s, int code, const char *why)
{
	long events = 0;
	char msg[VG_CLIENT_ERRSTR + 64];
	snprintf(msg, sizeof msg, "gave up reconnecting after %d attempts: %s", s->tries, why);
	while (s->nsubs) {
		finish(c, s, s->subs[0], code, msg, false);
		events++;
	}
	s->reconnecting = false;
	return events;
}

/*
 * The connection is closed and subscriptions are alive.  The first time,
 * tells each one; then reconnects when the backoff allows.  Returns 0
 * (connected again), 1 (not yet: wait until next_try_ms), or the failure
 * that made it give up (every subscription has ended).
 */
static int handle_loss(vg_client_t *c, vg_subs_t *s, long *events)
{
	const char *reason;
	int code = vg_client_closed_code(c, &reason);
	if (!s->reconnecting) {
		char why[VG_CLIENT_ERRSTR];
		snprintf(why, sizeof why, "%s", reason);
		s->reconnecting = true;
		/* At once after a healthy connection; else the backoff goes on. */
		s->next_try_ms = now_ms() + backoff_ms(s, s->tries);
		for (bool again = true; again;) {
			again = false;
			for (size_t i = 0; i < s->nsubs && !again; i++) {
				sub_t *sub = s->subs[i];
				sub->wait_reconnect = false;
				sub->resume_at_ms = 0; /* the reconnection's backoff is enough */
				if (sub->state == SUB_WAIT)
					continue;
				sub->state = SUB_WAIT;
				sub->wire_id = 0;
				vg_sub_event_t ev = {
				    .kind = VG_SUB_RESUMING, .code = code, .message = why};
				emit(s, sub, &ev);
				++*events;
				again = true;
			}
		}
	}
	if (!s->nsubs) {
		s->reconnecting = false;
		return vg_client_set_error(c, VG_ECLOSED, "%s", reason);
	}
	if (s->attempts >= 0 && s->tries >= s->attempts) {
		char why[VG_CLIENT_ERRSTR];
		snprintf(why, sizeof why, "%s", reason);
		*events += give_up(c, s, code, why);
		return vg_client_set_error(c, code, "gave up reconnecting after %d attempts: %s",
		                           s->tries, why);
	}
	if (now_ms() < s->next_try_ms)
		return 1;
	int rc = vg_client_reopen(c);
	s->tries++;
	if (!rc) {
		s->reconnecting = false;
		s->up_since_ms = now_ms();
		s->progress = false;
		return 0;
	}
	if (s->attempts >= 0 && s->tries >= s->attempts) {
		char why[VG_CLIENT_ERRSTR];
		snprintf(why, sizeof why, "%s", vg_client_errstr(c));
		*events += give_up(c, s, rc, why);
		return vg_client_set_error(c, rc, "gave up reconnecting after %d attempts: %s",
		                           s->tries, why);
	}
	s->next_try_ms = now_ms() + backoff_ms(s, s->tries);
	return 1;
}

/* The body of vg_client_process(); *events counts callbacks made. */
static int process(vg_client_t *c, vg_subs_t *s, int64_t deadline, long *events)
{
	for (;;) {
		/* What other calls read and queued, and frames they left in the
		 * buffer, first: those were received before anything else. */
		int rc = vg_client_route_buffered(c);
		if (s)
			*events += dispatch_queue(c, s);
		if (rc && !vg_client_is_closed(c))
			return rc;
		if (vg_client_is_closed(c)) {
			if (!s || !s->nsubs) {
				const char *reason;
				vg_client_closed_code(c, &reason);
				return vg_client_set_error(c, VG_ECLOSED, "%s", reason);
			}
			rc = handle_loss(c, s, events);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				int64_t wake = s->next_try_ms, now = now_ms();
				if (deadline >= 0 && deadline < wake)
					wake = deadline;
				if (wake > now && poll(NULL, 0, (int)(wake - now)) < 0 &&
				    errno == EINTR)
					return 0;
				if (deadline >= 0 && now_ms() >= deadline)
					return 0;
				continue;
			}
		}
		if (s) {
			/* A reconnection proved healthy: the backoff starts over. */
			if (s->tries &&
			    (s->progress || now_ms() - s->up_since_ms >= s->max_delay_ms))
				s->tries = 0;
			*events += resume_waiting(c, s);
			if (vg_client_is_closed(c))
				continue; /* sending a resume failed: reconnect */
		}
		int64_t now = now_ms(), resume = s ? next_resume_ms(s) : INT64_MAX, wake = resume;
		if (deadline >= 0 && deadline < wake)
			wake = deadline;
		int wait = wake == INT64_MAX      ? -1
		           : wake <= now          ? 0
		           : wake - now > INT_MAX ? INT_MAX
		                                  : (int)(wake - now);
		rc = vg_client_receive(c, wait);
		for (int reads = 0; rc == 1 && reads < MAX_READS_PER_CALL; reads++) {
			if (s)
				*events += dispatch_queue(c, s);
			rc = vg_client_receive(c, 0);
		}
		if (s)
			*events += dispatch_queue(c, s);
		if (rc < 0 && vg_client_is_closed(c) && s && s->nsubs)
			continue; /* lost: resume (the loop returns when the time is up) */
		if (rc >= 0 && s && !vg_client_is_closed(c)) {
			/* Nothing arrived, but the wait ended for a resume: send it
			 * and wait on (a signal ends the wait before that). */
			if (rc == 0 && resume != INT64_MAX && now_ms() >= resume &&
			    (deadline < 0 || now_ms() < deadline))
				continue;
			*events += resume_waiting(c, s); /* an OVERFLOW just delivered */
		}
		return rc < 0 ? rc : 0;
	}
}

/* ---- public API -------------------------------------------------------------------- */

int vg_client_process(vg_client_t *c, int timeout_ms)
{
	if (!c)
		return VG_EINVAL;
	vg_subs_t *s = *vg_client_subs(c);
	if (s && s->dispatching)
		return vg_client_set_error(c, VG_EINVAL,
		                           "vg_client_process() called from a subscription "
		                           "callback");
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	long events = 0;
	if (s)
		s->dispatching = true;
	int rc = process(c, s, deadline, &events);
	if (s)
		s->dispatching = false;
	if (rc < 0)
		return rc;
	return events > INT_MAX ? INT_MAX : (int)events;
}

int vg_client_subscribe(vg_client_t *c, const char *statement, vg_subscribe_cb cb, void *ctx,
                        uint64_t *sub_id)
{
	if (!c)
		return VG_EINVAL;
	if (!statement || !cb || !sub_id)
		return vg_client_set_error(c, VG_EINVAL,
		                           "the statement, callback or id pointer is NULL");
	const char *reason;
	int rc = vg_client_closed_code(c, &reason);
	if (rc)
		return vg_client_set_error(c, VG_ECLOSED, "%s", reason);
	vg_subs_t *s = subs_get(c);
	if (!s)
		return vg_client_set_error(c, VG_ENOMEM, "out of memory");
	/* Everything that can fail for lack of memory before anything is sent,
	 * so that a subscription the server accepted is always registered. */
	if (s->nsubs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		sub_t **subs = vg_reallocarray(s->subs, cap, sizeof *subs);
		if (!subs)
			return vg_client_set_error(c, VG_ENOMEM, "out of memory");
		s->subs = subs;
		s->cap = cap;
	}
	sub_t *sub = vg_calloc(1, sizeof *sub);
	if (!sub || !(sub->statement = vg_strndup(statement, strlen(statement)))) {
		vg_free(sub);
		return vg_client_set_error(c, VG_ENOMEM, "out of memory");
	}
	sub->cb = cb;
	sub->ctx = ctx;

	Vigil__V1__Subscribe req = VIGIL__V1__SUBSCRIBE__INIT;
	req.statement = sub->statement;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = vg_client_take_id(c);
	env.body_case = VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE;
	env.subscribe = &req;
	rc = vg_client_send(c, &env, "subscribe");
	Vigil__V1__Envelope *ok = NULL;
	if (!rc)
		rc = vg_client_await(c, env.id, &ok);
	bool server_has_it = false;
	if (rc) {
		server_has_it = true; /* it may: a late SubscribeOk */
	} else if (ok->body_case == VIGIL__V1__ENVELOPE__BODY_ERROR) {
		rc = vg_client_server_error(c, ok->error);
	} else if (ok->body_case != VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE_OK) {
		rc = vg_client_fail_protocol(c, "in answer to Subscribe", ok);
	} else {
		char err[256];
		rc = adopt_shape(sub, ok, err, sizeof err);
		if (rc == VG_EPROTO)
			vg_client_set_error(c, rc, "bad SubscribeOk from the server: %s", err);
		else if (rc)
			vg_client_set_error(c, rc, "out of memory");
		else
			ok = NULL; /* the subscription's now */
		server_has_it = rc != 0;
	}
	vg_frame_free_envelope(ok);
	if (rc) {
		if (server_has_it && rc != VG_ECLOSED)
			send_unsubscribe(c, env.id);
		sub_free(sub);
		return rc;
	}
	sub->id = sub->wire_id = env.id;
	sub->state = SUB_ACTIVE;
	s->subs[s->nsubs++] = sub;
	*sub_id = sub->id;
	return 0;
}

int vg_client_unsubscribe(vg_client_t *c, uint64_t sub_id)
{
	if (!c)
		return VG_EINVAL;
	vg_subs_t *s = *vg_client_subs(c);
	sub_t *sub = find_sub(s, sub_id);
	if (!sub)
		return vg_client_set_error(c, VG_ENOTFOUND, "no subscription %" PRIu64, sub_id);
	if (sub->wire_id)
		send_unsubscribe(c, sub->wire_id);
	sub_remove(s, sub);
	return 0;
}

const vg_result_set_t *vg_client_subscription_shape(const vg_client_t *c, uint64_t sub_id)
{
	if (!c)
		return NULL;
	sub_t *sub = find_sub(*vg_client_subs((vg_client_t *)c), sub_id);
	return sub ? &sub->shape : NULL;
}

size_t vg_client_subscriptions(const vg_client_t *c)
{
	const vg_subs_t *s = c ? *vg_client_subs((vg_client_t *)c) : NULL;
	return s ? s->nsubs : 0;
}

bool vg_client_has_queued(const vg_client_t *c)
{
	if (!c)
		return false;
	if (vg_client_has_buffered_frame(c))
		return true;
	const vg_subs_t *s = *vg_client_subs((vg_client_t *)c);
	if (!s)
		return false;
	if (s->qlen)
		return true;
	if (s->nsubs && next_resume_ms(s) <= now_ms() && !vg_client_is_closed(c))
		return true;
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->subs[i]->pending_code)
			return true;
	return false;
}

int vg_client_set_reconnect(vg_client_t *c, int attempts, int first_delay_ms, int max_delay_ms)
{
	if (!c)
		return VG_EINVAL;
	if (first_delay_ms < 1 || max_delay_ms < first_delay_ms)
		return vg_client_set_error(c, VG_EINVAL,
		                           "reconnect delays %d..%d ms: need 1 <= first <= max",
		                           first_delay_ms, max_delay_ms);
	vg_subs_t *s = subs_get(c);
	if (!s)
		return vg_client_set_error(c, VG_ENOMEM, "out of memory");
	s->attempts = attempts < 0 ? -1 : attempts;
	s->first_delay_ms = first_delay_ms;
	s->max_delay_ms = max_delay_ms;
	return 0;
}

int vg_client_set_queue_limit(vg_client_t *c, size_t bytes)
{
	if (!c)
		return VG_EINVAL;
	vg_subs_t *s = subs_get(c);
	if (!s)
		return vg_client_set_error(c, VG_ENOMEM, "out of memory");
	s->qlimit = bytes;
	return 0;
}
