/*
 * vg_buf.h — the growable byte buffer used wherever bytes are built.
 *
 * Invariants: data == NULL iff cap == 0; len <= cap; when cap > 0 the byte
 * data[len] is addressable (cap counts one spare byte) so that text built in
 * a buffer can be NUL-terminated with vg_buf_cstr().  A failed call leaves
 * the buffer exactly as it was and returns VG_ENOMEM.
 */
#ifndef VG_BUF_H
#define VG_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vg_buf {
	size_t len;
	size_t cap;
	uint8_t *data;
} vg_buf_t;

#define VG_BUF_INIT {0, 0, NULL}

static inline void vg_buf_init(vg_buf_t *b) { b->len = 0; b->cap = 0; b->data = NULL; }
/* Frees the contents; the buffer is then empty and reusable. */
void vg_buf_release(vg_buf_t *b);
/* Makes room for `extra` more bytes beyond len. */
int vg_buf_reserve(vg_buf_t *b, size_t extra);
int vg_buf_append(vg_buf_t *b, const void *bytes, size_t n);
int vg_buf_putc(vg_buf_t *b, uint8_t c);
int vg_buf_printf(vg_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vg_buf_vprintf(vg_buf_t *b, const char *fmt, va_list ap);
/* Unsigned LEB128 varint. */
int vg_buf_put_uvarint(vg_buf_t *b, uint64_t v);

/* Bytes of v as an unsigned LEB128 varint (1..10). */
static inline size_t vg_uvarint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Writes v as an unsigned LEB128 varint at p (room for
 * vg_uvarint_size(v) bytes); returns the byte after it. */
static inline uint8_t *vg_uvarint_store(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}
/* Big-endian fixed width. */
int vg_buf_put_be32(vg_buf_t *b, uint32_t v);
int vg_buf_put_be64(vg_buf_t *b, uint64_t v);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void vg_buf_consume(vg_buf_t *b, size_t n);
static inline void vg_buf_clear(vg_buf_t *b) { b->len = 0; }
/* NUL-terminates (without counting it in len) and returns the data as text;
 * "" for an empty buffer.  Valid until the next change to the buffer. */
const char *vg_buf_cstr(vg_buf_t *b);

static inline uint32_t vg_load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t vg_load_be64(const uint8_t *p)
{
	return (uint64_t)vg_load_be32(p) << 32 | vg_load_be32(p + 4);
}
static inline void vg_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void vg_store_be64(uint8_t *p, uint64_t v)
{
	vg_store_be32(p, (uint32_t)(v >> 32));
	vg_store_be32(p + 4, (uint32_t)v);
}

#endif
