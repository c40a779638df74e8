/* test_buf.c — the growable buffer, the error messages and the allocation hook. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "vg_alloc.h"
#include "vg_buf.h"
#include "vg_error.h"

static void check_invariants(const vg_buf_t *b)
{
	cr_assert((b->data == NULL) == (b->cap == 0));
	cr_assert(b->len <= b->cap);
	if (b->cap)
		cr_assert(b->len < b->cap, "one spare byte for the terminator");
}

Test(buf, append_printf_and_consume)
{
	vg_buf_t b = VG_BUF_INIT;
	check_invariants(&b);
	cr_assert_str_eq(vg_buf_cstr(&b), "");
	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(vg_buf_printf(&b, "%d,", i), 0);
		check_invariants(&b);
	}
	cr_assert_eq(strncmp(vg_buf_cstr(&b), "0,1,2,", 6), 0);
	vg_buf_consume(&b, 2);
	cr_assert_eq(strncmp(vg_buf_cstr(&b), "1,2,", 4), 0);
	size_t len = b.len;
	vg_buf_consume(&b, len + 5);
	cr_assert_eq(b.len, 0);
	vg_buf_release(&b);
	check_invariants(&b);
}

Test(buf, varint_and_big_endian)
{
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_buf_put_uvarint(&b, 300), 0);
	cr_assert_eq(b.len, 2);
	cr_assert_eq(b.data[0], 0xac);
	cr_assert_eq(b.data[1], 0x02);
	cr_assert_eq(vg_buf_put_uvarint(&b, UINT64_MAX), 0);
	cr_assert_eq(b.len, 12);
	cr_assert_eq(vg_buf_put_be32(&b, 0x01020304u), 0);
	cr_assert_eq(vg_load_be32(b.data + 12), 0x01020304u);
	cr_assert_eq(vg_buf_put_be64(&b, 0x0102030405060708ull), 0);
	cr_assert_eq(vg_load_be64(b.data + 16), 0x0102030405060708ull);
	vg_buf_release(&b);
}

Test(buf, failed_growth_leaves_buffer_unchanged)
{
	vg_buf_t b = VG_BUF_INIT;
	cr_assert_eq(vg_buf_append(&b, "abc", 3), 0);
	uint8_t *before = b.data;
	size_t cap = b.cap;
	vg_alloc_fail_after(0);
	char big[200];
	memset(big, 'x', sizeof big);
	int rc = vg_buf_append(&b, big, sizeof big);
	vg_alloc_fail_after(-1);
	cr_assert_eq(rc, VG_ENOMEM);
	cr_assert_eq(b.data, before);
	cr_assert_eq(b.cap, cap);
	cr_assert_eq(b.len, 3);
	cr_assert_eq(memcmp(b.data, "abc", 3), 0);
	vg_buf_release(&b);
}

Test(error, messages)
{
	cr_assert_str_eq(vg_strerror(0), "success");
	cr_assert_str_eq(vg_strerror(VG_ENOMEM), "out of memory");
	cr_assert_str_eq(vg_strerror(VG_EOVERFLOW), "buffer overflow");
	cr_assert_str_eq(vg_strerror(-ENOENT), strerror(ENOENT));
	cr_assert_str_eq(vg_strerror(12345), "unknown error");
}

#include "vg_duration.h"

Test(duration, parse_and_format)
{
	int64_t ns;
	cr_assert_eq(vg_duration_parse("90s", 3, &ns), 0);
	cr_assert_eq(ns, INT64_C(90000000000));
	cr_assert_eq(vg_duration_parse("1w", 2, &ns), 0);
	cr_assert_eq(ns, INT64_C(604800000000000));
	cr_assert_eq(vg_duration_parse("15ms", 4, &ns), 0);
	cr_assert_eq(ns, 15000000);
	cr_assert_eq(vg_duration_parse("7ns", 3, &ns), 0);
	cr_assert_eq(ns, 7);
	cr_assert_eq(vg_duration_parse("s", 1, &ns), VG_EINVAL);
	cr_assert_eq(vg_duration_parse("10", 2, &ns), VG_EINVAL);
	cr_assert_eq(vg_duration_parse("10y", 3, &ns), VG_EINVAL);
	cr_assert_eq(vg_duration_parse("10ss", 4, &ns), VG_EINVAL);
	cr_assert_eq(vg_duration_parse("99999999999w", 12, &ns), VG_ELIMIT);
	char buf[32];
	vg_duration_format(INT64_C(7200000000000), buf, sizeof buf);
	cr_assert_str_eq(buf, "2h");
	vg_duration_format(1500000000, buf, sizeof buf);
	cr_assert_str_eq(buf, "1500ms");
	vg_duration_format(0, buf, sizeof buf);
	cr_assert_str_eq(buf, "0s");
}
