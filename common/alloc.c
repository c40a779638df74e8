/*
 * alloc.c — the allocation hook of vg_alloc.h.
 *
 * A single atomic countdown lets tests fail the n-th allocation; when it is
 * disarmed (negative) every call is a plain libc call plus one relaxed load.
 */
#include "vg_alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;

static int should_fail(void)
{
	long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	if (n < 0)
		return 0;
	if (n == 0)
		return 1;
	atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
	return 0;
}

void vg_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

void *vg_malloc(size_t size) { return should_fail() ? NULL : malloc(size ? size : 1); }

void *vg_calloc(size_t count, size_t size)
{
	return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *vg_realloc(void *ptr, size_t size) { return should_fail() ? NULL : realloc(ptr, size ? size : 1); }

void *vg_reallocarray(void *ptr, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		return NULL;
	return vg_realloc(ptr, count * size);
}

char *vg_strndup(const char *s, size_t n)
{
	char *copy = vg_malloc(n + 1);
	if (copy) {
		memcpy(copy, s, n);
		copy[n] = '\0';
	}
	return copy;
}

void vg_free(void *ptr) { free(ptr); }
