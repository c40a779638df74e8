/*
 * buf.c — the growable byte buffer of vg_buf.h.
 *
 * Growth is geometric (x1.5, at least 64 bytes) so appends are amortised
 * O(1); one spare byte is always kept past len for vg_buf_cstr().
 */
#include "vg_buf.h"

#include "vg_alloc.h"
#include "vg_error.h"

#include <stdio.h>
#include <string.h>

void vg_buf_release(vg_buf_t *b)
{
	vg_free(b->data);
	vg_buf_init(b);
}

int vg_buf_reserve(vg_buf_t *b, size_t extra)
{
	if (extra >= SIZE_MAX - b->len - 1)
		return VG_ENOMEM;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap < 64 ? 64 : b->cap + b->cap / 2;
	if (cap < need)
		cap = need;
	uint8_t *data = vg_realloc(b->data, cap);
	if (!data)
		return VG_ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int vg_buf_append(vg_buf_t *b, const void *bytes, size_t n)
{
	if (n == 0)
		return 0;
	int rc = vg_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, bytes, n);
	b->len += n;
	return 0;
}

int vg_buf_putc(vg_buf_t *b, uint8_t c) { return vg_buf_append(b, &c, 1); }

int vg_buf_vprintf(vg_buf_t *b, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int n = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (n < 0)
		return VG_EINVAL;
	int rc = vg_buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int vg_buf_printf(vg_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vg_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

int vg_buf_put_uvarint(vg_buf_t *b, uint64_t v)
{
	uint8_t tmp[10];
	return vg_buf_append(b, tmp, (size_t)(vg_uvarint_store(tmp, v) - tmp));
}

int vg_buf_put_be32(vg_buf_t *b, uint32_t v)
{
	uint8_t tmp[4];
	vg_store_be32(tmp, v);
	return vg_buf_append(b, tmp, 4);
}

int vg_buf_put_be64(vg_buf_t *b, uint64_t v)
{
	uint8_t tmp[8];
	vg_store_be64(tmp, v);
	return vg_buf_append(b, tmp, 8);
}

void vg_buf_consume(vg_buf_t *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

const char *vg_buf_cstr(vg_buf_t *b)
{
	if (!b->data)
		return "";
	b->data[b->len] = '\0';
	return (const char *)b->data;
}
