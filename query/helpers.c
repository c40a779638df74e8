/*
 * helpers.c — the helper threads a statement may lend part of its work to.
 *
 * A pool of a few threads that sleep until handed a task.  Handing over
 * never waits: vg_helpers_try_start() gives the task to an idle thread or
 * refuses at once, and the statement then does the work itself.  So a
 * statement is never slower for the pool being busy, no statement waits
 * behind another, and a task can never wait for a task (no deadlock).
 *
 * A helper may be slow to start on a busy machine, so work is not cut in
 * halves up front: the statement's thread takes items (groups, series)
 * from the front of a vg_split_t and the helper from the back until they
 * meet, and the statement's thread revokes the task if no helper has taken
 * it by the time the front reaches the back.  The statement is then never
 * slower than alone by more than one item.
 *
 * One mutex guards the pool; a task's `done` flag is written under it and
 * the task's owner waits on `finished`.  A thread that finishes a task
 * polls for the next one for a short while before it sleeps, because a
 * statement that lends work once usually does so again at once (the next
 * request of a dashboard), and waking a sleeping thread costs tens of
 * microseconds.
 */
#include "query_int.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#define HELPER_SPIN_NS 100000 /* poll this long after a task before sleeping */

struct vg_query_helpers {
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* a task is pending, or stopping */
	pthread_cond_t finished; /* some task is done, or a thread became idle */
	vg_helper_task_t *pending;
	unsigned idle;           /* threads waiting for a task */
	bool stopping;
	pthread_t *threads;
	unsigned nthreads;
};

static int64_t helpers_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Takes the pending task, polling for HELPER_SPIN_NS then sleeping; NULL
 * when the pool stops.  Called and returns with the lock held. */
static vg_helper_task_t *take_task(vg_query_helpers_t *h)
{
	int64_t spin_until = helpers_now_ns() + HELPER_SPIN_NS;
	while (!h->pending && !h->stopping && helpers_now_ns() < spin_until) {
		pthread_mutex_unlock(&h->lock);
		sched_yield();
		pthread_mutex_lock(&h->lock);
	}
	while (!h->pending && !h->stopping)
		pthread_cond_wait(&h->wake, &h->lock);
	vg_helper_task_t *task = h->pending;
	h->pending = NULL;
	return task;
}

static void *helper_main(void *arg)
{
	vg_query_helpers_t *h = arg;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		h->idle++;
		pthread_cond_broadcast(&h->finished); /* for vg_query_helpers_new */
		vg_helper_task_t *task = take_task(h);
		if (!task) {
			h->idle--;
			break;
		}
		/* try_start counted this thread busy when it handed the task. */
		pthread_mutex_unlock(&h->lock);
		task->run(task);
		pthread_mutex_lock(&h->lock);
		task->done = true;
		pthread_cond_broadcast(&h->finished);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int vg_query_helpers_new(unsigned nthreads, vg_query_helpers_t **out)
{
	vg_query_helpers_t *h = vg_calloc(1, sizeof *h);
	if (!h)
		return VG_ENOMEM;
	h->threads = vg_calloc(nthreads ? nthreads : 1, sizeof *h->threads);
	if (!h->threads) {
		vg_free(h);
		return VG_ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->wake, NULL);
	pthread_cond_init(&h->finished, NULL);
	for (unsigned i = 0; i < nthreads; i++) {
		int rc = pthread_create(&h->threads[i], NULL, helper_main, h);
		if (rc) {
			vg_query_helpers_free(h);
			return -rc;
		}
		h->nthreads++;
	}
	/* Ready when every thread waits for work: a statement that comes at
	 * once finds them idle. */
	pthread_mutex_lock(&h->lock);
	while (h->idle < h->nthreads)
		pthread_cond_wait(&h->finished, &h->lock);
	pthread_mutex_unlock(&h->lock);
	*out = h;
	return 0;
}

void vg_query_helpers_free(vg_query_helpers_t *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->wake);
	pthread_mutex_unlock(&h->lock);
	for (unsigned i = 0; i < h->nthreads; i++)
		pthread_join(h->threads[i], NULL);
	pthread_cond_destroy(&h->finished);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	vg_free(h->threads);
	vg_free(h);
}

bool vg_helpers_try_start(vg_query_helpers_t *h, vg_helper_task_t *task)
{
	if (!h)
		return false;
	pthread_mutex_lock(&h->lock);
	bool taken = h->idle > 0 && !h->pending && !h->stopping;
	if (taken) {
		task->done = false;
		h->pending = task;
		h->idle--;
		pthread_cond_signal(&h->wake);
	}
	pthread_mutex_unlock(&h->lock);
	return taken;
}

bool vg_helpers_revoke(vg_query_helpers_t *h, vg_helper_task_t *task)
{
	pthread_mutex_lock(&h->lock);
	bool revoked = h->pending == task;
	if (revoked) {
		h->pending = NULL;
		h->idle++; /* given back: no thread took it */
	}
	pthread_mutex_unlock(&h->lock);
	return revoked;
}

void vg_helpers_finish(vg_query_helpers_t *h, vg_helper_task_t *task)
{
	if (!vg_helpers_revoke(h, task))
		vg_helpers_wait(h, task);
}

void vg_split_init(vg_split_t *split, size_t n, bool even)
{
	pthread_mutex_init(&split->lock, NULL);
	split->front = 0;
	split->back = n;
	split->mid = n / 2;
	split->even = even;
}

void vg_split_release(vg_split_t *split)
{
	pthread_mutex_destroy(&split->lock);
}

bool vg_split_front(vg_split_t *split, size_t *item)
{
	pthread_mutex_lock(&split->lock);
	bool ok = split->front < split->back && (!split->even || split->front < split->mid);
	if (ok)
		*item = split->front++;
	pthread_mutex_unlock(&split->lock);
	return ok;
}

bool vg_split_back(vg_split_t *split, size_t *item)
{
	pthread_mutex_lock(&split->lock);
	bool ok = split->front < split->back && (!split->even || split->back > split->mid);
	if (ok)
		*item = --split->back;
	pthread_mutex_unlock(&split->lock);
	return ok;
}

void vg_helpers_wait(vg_query_helpers_t *h, vg_helper_task_t *task)
{
	pthread_mutex_lock(&h->lock);
	while (!task->done)
		pthread_cond_wait(&h->finished, &h->lock);
	pthread_mutex_unlock(&h->lock);
}
