/*
 * test_durability.c — writers keep writing while the server is stopped
 * with SIGTERM, or killed with SIGKILL; after a restart every acknowledged
 * point is there.  Writers record what was acknowledged; the check reads
 * everything back.
 */
#include "harness.h"

#include "vigil.h"

#include <pthread.h>
#include <stdatomic.h>

#define WRITERS 4
#define PER_BATCH 50
#define MAX_BATCHES 100000

typedef struct {
	const char *addr;
	int index;
	atomic_bool *stop;
	uint32_t acked; /* batches 0..acked-1 acknowledged */
} writer_arg_t;

static void *writer(void *p)
{
	writer_arg_t *w = p;
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	if (vg_client_connect(w->addr, 5000, &c, err, sizeof err))
		return NULL;
	vg_batch_t *b;
	vg_batch_new(&b);
	char host[16];
	snprintf(host, sizeof host, "w%d", w->index);
	vg_tag_t tag = {"writer", host};
	for (uint32_t k = 0; k < MAX_BATCHES && !atomic_load(w->stop); k++) {
		vg_batch_clear(b);
		int64_t times[PER_BATCH];
		double values[PER_BATCH];
		for (int i = 0; i < PER_BATCH; i++) {
			times[i] = (int64_t)k * PER_BATCH + i;
			values[i] = (double)k;
		}
		vg_batch_add_points(b, "dur", &tag, 1, "v", times, values, PER_BATCH);
		uint64_t points;
		if (vg_client_write(c, b, &points) != 0)
			break;
		w->acked = k + 1;
	}
	vg_batch_free(b);
	vg_client_close(c);
	return NULL;
}

static void run(int sig)
{
	vg_test_server_t srv = {0};
	vg_test_server_start(&srv, NULL);
	atomic_bool stop = false;
	pthread_t threads[WRITERS];
	writer_arg_t args[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (writer_arg_t){srv.addr, i, &stop, 0};
		pthread_create(&threads[i], NULL, writer, &args[i]);
	}
	struct timespec t = {0, 400 * 1000000};
	nanosleep(&t, NULL);
	int status = vg_test_server_signal(&srv, sig);
	if (sig == SIGTERM)
		cr_assert_eq(status, 0, "vigild exit status %d after SIGTERM", status);
	atomic_store(&stop, true);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(threads[i], NULL);
	uint32_t total = 0;
	for (int i = 0; i < WRITERS; i++)
		total += args[i].acked;
	cr_assert_gt(total, 0, "no write was acknowledged before the signal");

	vg_test_server_start(&srv, NULL); /* same directory */
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect(srv.addr, 5000, &c, err, sizeof err), 0, "%s", err);
	for (int i = 0; i < WRITERS; i++) {
		char q[128];
		snprintf(q, sizeof q, "SELECT count(v), max(v) FROM dur WHERE writer = 'w%d'", i);
		vg_result_t *r;
		cr_assert_eq(vg_client_query(c, q, &r), 0, "%s", vg_client_errstr(c));
		double count = 0, max = -1;
		if (vg_result_set_count(r)) {
			vg_result_float(vg_result_set(r, 0), 0, 1, &count);
			vg_result_float(vg_result_set(r, 0), 0, 2, &max);
		}
		/* Every acknowledged batch is there; at most the one in flight
		 * beyond it. */
		cr_assert_geq(count, (double)args[i].acked * PER_BATCH, "writer %d: %g < %u", i,
			      count, args[i].acked * PER_BATCH);
		cr_assert_leq(count, (double)(args[i].acked + 1) * PER_BATCH);
		if (args[i].acked)
			cr_assert_geq(max, (double)(args[i].acked - 1));
		vg_result_free(r);
	}
	vg_client_close(c);
	vg_test_server_stop(&srv, true);
}

Test(durability, sigterm_during_writes_loses_nothing_acknowledged, .timeout = 60) { run(SIGTERM); }

Test(durability, sigkill_during_writes_loses_nothing_acknowledged, .timeout = 60) { run(SIGKILL); }
