/*
 * test_concurrent.c — 200 connections writing and reading at once, each
 * seeing its own writes and the right totals at the end.
 */
#include "harness.h"

#include "vigil.h"

#include <pthread.h>

#define CLIENTS 200
#define ROUNDS 5
#define PER 20

typedef struct {
	const char *addr;
	int index;
	int failures;
	char why[1024];
} arg_t;

static void *client_main(void *p)
{
	arg_t *a = p;
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	if (vg_client_connect(a->addr, 10000, &c, err, sizeof err)) {
		snprintf(a->why, sizeof a->why, "connect: %s", err);
		a->failures++;
		return NULL;
	}
	vg_batch_t *b;
	vg_batch_new(&b);
	char id[16];
	snprintf(id, sizeof id, "c%03d", a->index);
	vg_tag_t tag = {"client", id};
	for (int r = 0; r < ROUNDS; r++) {
		vg_batch_clear(b);
		for (int i = 0; i < PER; i++)
			vg_batch_add(b, "conc", &tag, 1, "v", (int64_t)(r * PER + i), 1.0);
		uint64_t points;
		if (vg_client_write(c, b, &points) || points != PER) {
			snprintf(a->why, sizeof a->why, "write: %s", vg_client_errstr(c));
			a->failures++;
			break;
		}
		char q[128];
		snprintf(q, sizeof q, "SELECT sum(v) FROM conc WHERE client = '%s'", id);
		vg_result_t *res;
		if (vg_client_query(c, q, &res)) {
			snprintf(a->why, sizeof a->why, "query: %s", vg_client_errstr(c));
			a->failures++;
			break;
		}
		double sum = 0;
		if (vg_result_set_count(res) == 1)
			vg_result_float(vg_result_set(res, 0), 0, 1, &sum);
		if (sum != (double)(r + 1) * PER) {
			snprintf(a->why, sizeof a->why, "round %d: sum %g", r, sum);
			a->failures++;
		}
		vg_result_free(res);
	}
	vg_batch_free(b);
	vg_client_close(c);
	return NULL;
}

Test(concurrent, two_hundred_connections_write_and_read, .timeout = 120)
{
	vg_test_server_t srv = {0};
	static const char *const args[] = {"--sync", "none", NULL};
	vg_test_server_start(&srv, args);
	static pthread_t threads[CLIENTS];
	static arg_t a[CLIENTS];
	for (int i = 0; i < CLIENTS; i++) {
		a[i] = (arg_t){srv.addr, i, 0, ""};
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 256 * 1024);
		cr_assert_eq(pthread_create(&threads[i], &attr, client_main, &a[i]), 0);
		pthread_attr_destroy(&attr);
	}
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < CLIENTS; i++)
		cr_assert_eq(a[i].failures, 0, "client %d: %s", i, a[i].why);
	vg_client_t *c = NULL;
	char err[VG_CLIENT_ERRLEN];
	cr_assert_eq(vg_client_connect(srv.addr, 5000, &c, err, sizeof err), 0, "%s", err);
	vg_result_t *r;
	cr_assert_eq(vg_client_query(c, "SELECT count(v) FROM conc", &r), 0, "%s",
		     vg_client_errstr(c));
	double count = 0;
	vg_result_float(vg_result_set(r, 0), 0, 1, &count);
	cr_assert_eq(count, CLIENTS * ROUNDS * PER);
	vg_result_free(r);
	vg_client_close(c);
	vg_test_server_stop(&srv, true);
}
