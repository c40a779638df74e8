/*
 * wire.c — a walker over the protobuf wire format, and frame diagnostics.
 *
 * protobuf-c decodes an Envelope well, but two things it does are wrong for
 * us: it silently truncates a string at an embedded NUL byte (C strings
 * cannot hold one), so "cpu\0x" would be stored as "cpu" with no error; and
 * when it refuses bytes it says only "NULL", while the spec wants every bad
 * input answered with an error naming what was wrong.  So vg_frame_parse()
 * first walks the bytes with this file, driven by the descriptors protoc-c
 * generated, allocating nothing; protobuf-c then builds the structs.
 *
 * Wire format (https://protobuf.dev/programming-guides/encoding/): a message
 * is a sequence of fields, each a varint key (field_number << 3 | wire_type)
 * and a value:
 *
 *     wire type 0  varint            1..10 bytes, 7 bits each, LSB group first
 *     wire type 1  64-bit            8 bytes little-endian (sfixed64, double)
 *     wire type 2  length-delimited  varint length, then that many bytes
 *                                    (string, bytes, message, packed repeated)
 *     wire type 5  32-bit            4 bytes little-endian
 *     (3 and 4, proto2 groups, are not used by vigil.v1 and are refused)
 *
 * Example: 42 02 08 2a is field 8 (key 0x42 = 8 << 3 | 2), 2 bytes long,
 * holding field 1 (key 0x08) varint 42 (0x2a) — a Ping inside an Envelope.
 *
 * The walker enforces exactly what protobuf-c would refuse anyway (bad keys,
 * truncation, a known field with the wrong wire type) plus the NUL rule;
 * unknown fields are skipped, as proto3 requires, so a newer peer's extra
 * fields pass.  Nesting follows the schema, which is not recursive; the
 * depth bound only guards against a future schema that is.
 */
#include "vg_proto.h"

#include "proto_private.h"
#include "vg_error.h"

#include <string.h>

#define MAX_DEPTH 32
#define MAX_FIELD_NUMBER 536870911u /* 2^29 - 1 */

typedef struct scan {
	const uint8_t *envelope; /* start of the Envelope, for byte offsets */
	vg_msg_t *msg;
} scan_t;

/* Reads a varint at p[*pos..n).  0, VG_EAGAIN (truncated) or VG_EPROTO
 * (longer than 10 bytes). */
static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *value)
{
	return vg_wire_varint(p, n, pos, value, 10);
}

static size_t offset(const scan_t *sc, const uint8_t *p, size_t pos)
{
	return (size_t)(p - sc->envelope) + pos;
}

static int fail(const scan_t *sc, const ProtobufCMessageDescriptor *d,
                const ProtobufCFieldDescriptor *f, const char *what, size_t at)
{
	if (f)
		vg_msg_printf(sc->msg, "field %s.%s: %s at byte %zu of the envelope", d->name,
		              f->name, what, at);
	else
		vg_msg_printf(sc->msg, "%s at byte %zu of the envelope (in %s)", what, at, d->name);
	return VG_EPROTO;
}

/* The wire type a single (unpacked) value of this type uses. */
static unsigned wire_type_of(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 1;
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return 5;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return 2;
	default:
		return 0; /* the varint types: int32 ... bool, enum */
	}
}

/* A packed repeated scalar: whole elements, back to back. */
static int check_packed(const scan_t *sc, const ProtobufCMessageDescriptor *d,
                        const ProtobufCFieldDescriptor *f, const uint8_t *p, size_t n)
{
	unsigned wt = wire_type_of(f->type);
	if (wt == 1 || wt == 5) {
		if (n % (wt == 1 ? 8 : 4))
			return fail(sc, d, f, "packed array is not a whole number of elements",
			            offset(sc, p, 0));
		return 0;
	}
	size_t pos = 0;
	while (pos < n) {
		uint64_t ignored;
		size_t at = pos;
		if (read_varint(p, n, &pos, &ignored))
			return fail(sc, d, f, "malformed varint in packed array",
			            offset(sc, p, at));
	}
	return 0;
}

static int scan_message(const scan_t *sc, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t n, unsigned depth, vg_wire_report_t *report)
{
	if (depth > MAX_DEPTH)
		return fail(sc, d, NULL, "messages nested too deeply", offset(sc, p, 0));
	size_t pos = 0;
	while (pos < n) {
		size_t at = pos;
		uint64_t key, value = 0;
		int rc = read_varint(p, n, &pos, &key);
		if (rc)
			return fail(sc, d, NULL,
			            rc == VG_EAGAIN ? "truncated field key"
			                            : "field key longer than 10 bytes",
			            offset(sc, p, at));
		uint64_t number = key >> 3;
		unsigned wt = (unsigned)(key & 7);
		if (number == 0 || number > MAX_FIELD_NUMBER)
			return fail(sc, d, NULL, "invalid field number", offset(sc, p, at));
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field(d, (unsigned)number);
		const uint8_t *body = p + pos;
		size_t body_len = 0;
		switch (wt) {
		case 0:
			rc = read_varint(p, n, &pos, &value);
			if (rc)
				return fail(sc, d, f,
				            rc == VG_EAGAIN ? "truncated varint"
				                            : "varint longer than 10 bytes",
				            offset(sc, p, at));
			break;
		case 1:
		case 5:
			body_len = wt == 1 ? 8 : 4;
			if (n - pos < body_len)
				return fail(sc, d, f, "truncated fixed-width value",
				            offset(sc, p, at));
			pos += body_len;
			break;
		case 2:
			rc = read_varint(p, n, &pos, &value);
			if (rc)
				return fail(sc, d, f, "truncated length", offset(sc, p, at));
			if (value > n - pos)
				return fail(sc, d, f, "length runs past the end of its message",
				            offset(sc, p, at));
			body = p + pos;
			body_len = (size_t)value;
			pos += body_len;
			break;
		default:
			return fail(sc, d, f,
			            wt == 3 || wt == 4 ? "group wire type not supported"
			                               : "invalid wire type",
			            offset(sc, p, at));
		}
		if (!f) {
			if (report && depth == 0 && report->unknown_field == 0)
				report->unknown_field = (uint32_t)number;
			continue;
		}
		if (wt != wire_type_of(f->type)) {
			bool packable =
			    f->label == PROTOBUF_C_LABEL_REPEATED && wire_type_of(f->type) != 2;
			if (wt != 2 || !packable)
				return fail(sc, d, f, "wrong wire type", offset(sc, p, at));
			rc = check_packed(sc, d, f, body, body_len);
			if (rc)
				return rc;
		} else if (f->type == PROTOBUF_C_TYPE_STRING) {
			const uint8_t *nul = memchr(body, 0, body_len);
			if (nul)
				return fail(sc, d, f, "string holds a NUL byte",
				            offset(sc, nul, 0));
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			rc = scan_message(sc, f->descriptor, body, body_len, depth + 1, NULL);
			if (rc)
				return rc;
		}
		if (report && depth == 0) {
			if (number == 1)
				report->id = value;
			else
				report->has_body = true;
		}
	}
	return 0;
}

int vg_wire_scan_envelope(const uint8_t *p, size_t n, vg_wire_report_t *r, vg_msg_t *m)
{
	scan_t sc = {.envelope = p, .msg = m};
	memset(r, 0, sizeof *r);
	return scan_message(&sc, &vigil__v1__envelope__descriptor, p, n, 0, r);
}

void vg_frame_diagnose(const uint8_t *data, size_t len, size_t max_frame, uint64_t *id, char *err,
                       size_t errlen)
{
	vg_msg_t m;
	vg_msg_init(&m, err, errlen);
	*id = 0;
	if (len < VG_FRAME_HEADER) {
		vg_msg_printf(&m, "incomplete frame: %zu of %d header bytes", len, VG_FRAME_HEADER);
		return;
	}
	uint32_t n = vg_load_be32(data);
	if (n > max_frame) {
		vg_msg_printf(&m, "frame of %u bytes exceeds the limit of %zu bytes", (unsigned)n,
		              max_frame);
		return;
	}
	if (len - VG_FRAME_HEADER < n) {
		vg_msg_printf(&m, "incomplete frame: %zu of %u bytes", len - VG_FRAME_HEADER,
		              (unsigned)n);
		return;
	}
	vg_wire_report_t report;
	vg_msg_t detail;
	char text[256];
	vg_msg_init(&detail, text, sizeof text);
	int rc = vg_wire_scan_envelope(data + VG_FRAME_HEADER, n, &report, &detail);
	*id = report.id;
	if (rc)
		vg_msg_printf(&m, "undecodable envelope: %s", text);
	else if (report.has_body)
		vg_msg_printf(&m, "envelope of %u bytes does not decode as vigil.v1.Envelope",
		              (unsigned)n);
	else if (report.unknown_field)
		vg_msg_printf(&m,
		              "envelope carries no known message (field %u is not part of protocol "
		              "version %d)",
		              (unsigned)report.unknown_field, VG_PROTOCOL_VERSION);
	else
		vg_msg_printf(&m, "envelope carries no message");
}
