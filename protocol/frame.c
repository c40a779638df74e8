/*
 * frame.c — length-prefixed framing of vigil.v1.Envelope.
 *
 * A frame is a 4-byte big-endian length N, then N bytes of one Envelope (see
 * vg_proto.h for a worked example).  A length prefix rather than protobuf's
 * own varint delimiting so that a reader learns the size from a fixed
 * number of bytes and can refuse an oversized frame before buffering any of
 * it; big-endian as is usual for network lengths.
 *
 * Parsing is a pure function over the caller's bytes so that the server's
 * event loop and the client's blocking reader share it: it either finds a
 * whole frame at the front of what has been read, or says how it failed —
 * "need more" (VG_EAGAIN), "too big to ever accept" (VG_ELIMIT, from the
 * header alone), "a whole frame, but not a usable envelope" (VG_EPROTO, with
 * the boundary known, so the conversation can go on) or VG_ENOMEM.  To tell
 * the last two apart, protobuf-c allocates through an allocator that notes
 * failures, since protobuf-c itself reports both as NULL.
 *
 * All allocation, including protobuf-c's, goes through vg_malloc/vg_free so
 * tests can fail it at will (common/vg_alloc.h).
 */
#include "vg_proto.h"

#include "proto_private.h"
#include "vg_alloc.h"
#include "vg_error.h"

#include <assert.h>

static void *proto_alloc(void *allocator_data, size_t size)
{
	void *p = vg_malloc(size);
	if (!p && allocator_data)
		*(bool *)allocator_data = true;
	return p;
}

static void proto_free(void *allocator_data, void *pointer)
{
	(void)allocator_data;
	vg_free(pointer);
}

/* Not declared const so that handing it to protobuf-c's non-const parameters
 * is well-defined; nothing ever writes to it. */
static ProtobufCAllocator allocator = {.alloc = proto_alloc, .free = proto_free};

const ProtobufCAllocator *vg_proto_allocator(void)
{
	return &allocator;
}

int vg_frame_append(vg_buf_t *out, const Vigil__V1__Envelope *env)
{
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY__NOT_SET)
		return VG_EINVAL;
	size_t size = vigil__v1__envelope__get_packed_size(env);
	if (size > UINT32_MAX || size > SIZE_MAX - VG_FRAME_HEADER)
		return VG_ELIMIT;
	int rc = vg_buf_reserve(out, VG_FRAME_HEADER + size);
	if (rc)
		return rc;
	uint8_t *frame = out->data + out->len;
	vg_store_be32(frame, (uint32_t)size);
	size_t packed = vigil__v1__envelope__pack(env, frame + VG_FRAME_HEADER);
	assert(packed == size);
	(void)packed;
	out->len += VG_FRAME_HEADER + size;
	return 0;
}

int vg_frame_peek_length(const uint8_t *data, size_t len, size_t max_frame, size_t *payload_len)
{
	if (len < VG_FRAME_HEADER)
		return VG_EAGAIN;
	*payload_len = vg_load_be32(data);
	return *payload_len > max_frame ? VG_ELIMIT : 0;
}

int vg_frame_parse(const uint8_t *data, size_t len, size_t max_frame, Vigil__V1__Envelope **out,
                   size_t *consumed)
{
	*out = NULL;
	*consumed = 0;
	size_t n;
	int rc = vg_frame_peek_length(data, len, max_frame, &n);
	if (rc)
		return rc;
	if (len - VG_FRAME_HEADER < n)
		return VG_EAGAIN;
	const uint8_t *payload = data + VG_FRAME_HEADER;

	/* Refuse what protobuf-c would refuse or silently alter, before it
	 * allocates anything. */
	vg_wire_report_t report;
	vg_msg_t quiet;
	vg_msg_init(&quiet, NULL, 0);
	if (vg_wire_scan_envelope(payload, n, &report, &quiet) || !report.has_body) {
		*consumed = VG_FRAME_HEADER + n;
		return VG_EPROTO;
	}

	bool failed = false;
	ProtobufCAllocator tracking = {
	    .alloc = proto_alloc, .free = proto_free, .allocator_data = &failed};
	Vigil__V1__Envelope *env = vigil__v1__envelope__unpack(&tracking, n, payload);
	if (!env && failed)
		return VG_ENOMEM;
	*consumed = VG_FRAME_HEADER + n;
	if (!env)
		return VG_EPROTO;
	if (env->body_case == VIGIL__V1__ENVELOPE__BODY__NOT_SET) {
		vg_frame_free_envelope(env);
		return VG_EPROTO;
	}
	*out = env;
	return 0;
}

void vg_frame_free_envelope(Vigil__V1__Envelope *env)
{
	vigil__v1__envelope__free_unpacked(env, &allocator);
}
