/*
 * vg_alloc.h — the one allocation hook.
 *
 * All Vigil code allocates through these functions so that tests can make
 * allocation fail at a chosen moment (vg_alloc_fail_after) and check that
 * every caller recovers.  Policy: library code (storage, protocol, client)
 * returns VG_ENOMEM when these return NULL; only the server's own wrapper may
 * abort.  The failure injector is process-wide test machinery, guarded by an
 * atomic counter, and is never armed outside tests.
 */
#ifndef VG_ALLOC_H
#define VG_ALLOC_H

#include <stddef.h>

void *vg_malloc(size_t size);
void *vg_calloc(size_t count, size_t size);
void *vg_realloc(void *ptr, size_t size);
/* realloc to count*size bytes; NULL (ptr untouched) if the product overflows. */
void *vg_reallocarray(void *ptr, size_t count, size_t size);
char *vg_strndup(const char *s, size_t n);
void vg_free(void *ptr);

/* Tests only: the next `n` allocations succeed, every later one fails.
 * n < 0 disarms the injector. */
void vg_alloc_fail_after(long n);

#endif
