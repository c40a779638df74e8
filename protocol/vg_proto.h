/*
 * vg_proto.h — the wire protocol module: framing, name rules, error codes.
 *
 * The schema itself is protocol/vigil.proto (package vigil.v1); protoc-c
 * turns it into vigil.pb-c.h at build time, and this header re-exports it so
 * that the server and the client library include one file.  Everything a
 * peer needs beyond the schema — how bytes become frames, which names are
 * legal, how our error codes travel — lives here, so that the server and the
 * client can never disagree about it.  docs/protocol.md is the prose version
 * of the same contract.
 *
 * Frame layout (both directions):
 *
 *     +--------+--------+--------+--------+---------------------------+
 *     |  N (uint32, big-endian)           |  N bytes: vigil.v1.Envelope |
 *     +--------+--------+--------+--------+---------------------------+
 *
 * Worked example: Envelope{id: 1, ping: {nonce: 42}} is the 10 bytes
 * 00 00 00 06 | 08 01 | 42 02 08 2a  (length 6; field 1 varint 1; field 8
 * length-delimited, 2 bytes: Ping field 1 varint 42).
 *
 * What this module does not do: no I/O, no buffering policy, no conversation
 * state.  vg_frame_parse() is a pure function over the caller's bytes; the
 * caller owns the socket, the input buffer and the decision to close.
 *
 * Return codes follow common/vg_error.h: 0, or a negative VG_E* code.
 */
#ifndef VG_PROTO_H
#define VG_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg_buf.h"
#include "vg_error.h"
#include "vigil.pb-c.h"

/* The version this build speaks; Hello.protocol_version and HelloOk carry it. */
#define VG_PROTOCOL_VERSION 1
/* Bytes of the big-endian length prefix in front of every Envelope. */
#define VG_FRAME_HEADER 4
/* Largest Envelope (N, not counting the prefix) a server accepts by default;
 * vigild --max-frame changes it and HelloOk.max_frame reports it. */
#define VG_DEFAULT_MAX_FRAME (16u * 1024u * 1024u)
/* Longest measurement name, tag key or field key, in bytes. */
#define VG_NAME_MAX 255
/* Longest tag value, in bytes (values are 1..VG_TAG_VALUE_MAX bytes of UTF-8). */
#define VG_TAG_VALUE_MAX 1024
/* Most tags a point (a WriteBlock) may carry. */
#define VG_MAX_TAGS 64
/* Longest Error.message vg_frame_append_error() emits, in bytes; longer
 * messages are cut at a character boundary and end in "...". */
#define VG_ERROR_MESSAGE_MAX 4096

/* ---------------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------------- */

/*
 * The protobuf-c allocator that routes through vg_malloc/vg_free, so that
 * vg_alloc_fail_after() reaches allocations made inside protobuf-c too.
 * The returned object is static and immutable: it lives as long as the
 * program and is safe to share between threads.  protobuf-c's API takes a
 * non-const pointer but never writes through it, so pass it as
 * (ProtobufCAllocator *)vg_proto_allocator().  Messages that protobuf-c
 * unpacked with this allocator must be freed with it.
 */
const ProtobufCAllocator *vg_proto_allocator(void);

/* ---------------------------------------------------------------------------
 * Frames
 * ------------------------------------------------------------------------- */

/*
 * Appends one frame — the 4-byte big-endian length, then `env` packed — to
 * `out`.  `env` is only read; the caller keeps ownership of it.
 *
 * Returns 0; VG_EINVAL if env has no body (body_case NOT_SET: the peer would
 * reject it); VG_ELIMIT if the packed envelope exceeds UINT32_MAX bytes;
 * VG_ENOMEM.  On failure `out` is exactly as it was.  The frame is not
 * checked against a peer's max_frame: that is the caller's policy.
 */
int vg_frame_append(vg_buf_t *out, const Vigil__V1__Envelope *env);

/*
 * Reads the length prefix at `data` without decoding anything, so that a
 * reader can decide how much to buffer before the frame is complete.
 *
 * On 0, *payload_len = N, the size of the Envelope; the whole frame is
 * VG_FRAME_HEADER + N bytes.  Returns VG_EAGAIN if len < 4 (*payload_len
 * untouched); VG_ELIMIT if N > max_frame (*payload_len is still set, so the
 * caller can name the size in its error).
 */
int vg_frame_peek_length(const uint8_t *data, size_t len, size_t max_frame, size_t *payload_len);

/*
 * Decodes the frame at the start of `data` (len readable bytes; more frames
 * may follow).  Zero-copy: it reads the caller's bytes in place and never
 * reads past data + len.  The decoded envelope owns copies of everything it
 * holds, so `data` may be discarded as soon as this returns.
 *
 * Returns, with *out and *consumed always set:
 *   0           *out = the envelope (free with vg_frame_free_envelope);
 *               *consumed = VG_FRAME_HEADER + N.
 *   VG_EAGAIN   fewer than 4 bytes, or fewer than 4 + N: read more and call
 *               again with all the bytes.  *out = NULL, *consumed = 0.
 *   VG_ELIMIT   N > max_frame, decided from the 4-byte header alone, before
 *               the rest has arrived.  *out = NULL, *consumed = 0.  The
 *               stream cannot be resynchronised cheaply: answer and close.
 *   VG_EPROTO   the N bytes are not a usable Envelope: they do not decode,
 *               a string field holds a NUL byte (which C strings cannot
 *               carry, so it is refused rather than silently truncated), or
 *               the envelope has no body — empty, or only fields this
 *               version does not know (a newer peer's message).  *out = NULL,
 *               *consumed = VG_FRAME_HEADER + N: the frame boundary is
 *               intact, so the caller may skip it, answer with an Error and
 *               go on.  vg_frame_diagnose() says what was wrong.
 *   VG_ENOMEM   *out = NULL, *consumed = 0; nothing was consumed and the
 *               call may be retried.
 *
 * Memory: protobuf-c allocates the decoded structs.  For ordinary frames
 * that is a few times N; adversarial input (millions of empty sub-messages,
 * 2 bytes each on the wire, ~100 bytes each decoded) can reach about 55 x N,
 * so max_frame is also what bounds the memory one frame can cost.
 */
int vg_frame_parse(const uint8_t *data, size_t len, size_t max_frame, Vigil__V1__Envelope **out,
                   size_t *consumed);

/* Frees an envelope returned by vg_frame_parse() or vg_envelope_new(), and
 * everything it holds.  NULL is allowed.
 *
 * Such an envelope lives in an arena of its own (see frame.c): every part
 * of it comes from that arena, and all of it goes at once.  So an envelope
 * built by hand must take its parts from vg_envelope_alloc(), never from
 * malloc, and nothing may be taken out of an envelope to outlive it. */
void vg_frame_free_envelope(Vigil__V1__Envelope *env);

/* An empty (initialised) envelope in an arena of its own, for a message
 * built by hand that goes where parsed envelopes go; NULL when out of
 * memory.  Free with vg_frame_free_envelope(). */
Vigil__V1__Envelope *vg_envelope_new(void);

/* size bytes from env's arena, aligned for any field type, freed with env;
 * NULL when out of memory.  env must come from vg_frame_parse() or
 * vg_envelope_new(). */
void *vg_envelope_alloc(Vigil__V1__Envelope *env, size_t size);

/*
 * Explains why vg_frame_parse() refused the frame at `data` with the same
 * arguments, for the Error message: e.g. "frame of 20000000 bytes exceeds the
 * limit of 16777216 bytes", "field vigil.v1.Query.statement: string holds a
 * NUL byte at frame byte 9", "envelope carries no known message (field 31 is
 * not part of protocol version 1)".  Writes a NUL-terminated message into
 * err (truncated to errlen; err may be NULL when errlen is 0) and sets *id to
 * the envelope's id when that much could be read, else 0, so the answer can
 * be matched to the request that caused it.  Allocates nothing.
 */
void vg_frame_diagnose(const uint8_t *data, size_t len, size_t max_frame, uint64_t *id, char *err,
                       size_t errlen);

/*
 * Appends an Error frame: Envelope{id, error{code, message, line, column,
 * fatal}}.  `code` is a vg_error.h code (or -errno), mapped with
 * vg_error_to_wire().  `message` is borrowed for the call; NULL means
 * vg_strerror(code).  Error.message is a proto3 string, which peers in other
 * languages require to be UTF-8, and it often quotes bad input: invalid
 * UTF-8 is replaced by U+FFFD and text past VG_ERROR_MESSAGE_MAX bytes is cut
 * with "...".  Returns 0 or VG_ENOMEM (out unchanged).
 */
int vg_frame_append_error(vg_buf_t *out, uint64_t id, int code, const char *message, uint32_t line,
                          uint32_t column, bool fatal);

/* ---------------------------------------------------------------------------
 * Error codes on the wire
 * ------------------------------------------------------------------------- */

/*
 * Maps a vg_error.h code (or -errno) to the wire ErrorCode:
 *   VG_EINVAL → INVALID, VG_ESYNTAX → SYNTAX, VG_ENOTFOUND → NOT_FOUND,
 *   VG_ELIMIT → LIMIT, VG_EPROTO → PROTOCOL, VG_EVERSION → VERSION,
 *   VG_ESTORE, VG_ECORRUPT → STORAGE, VG_ETIMEOUT → TIMEOUT,
 *   VG_ECANCELED → CANCELED, VG_EOVERFLOW → OVERFLOW, VG_ECLOSED → SHUTDOWN,
 *   VG_EEXIST → EXISTS; 0 → UNSPECIFIED; anything else (VG_ENOMEM, -errno,
 *   VG_EAGAIN, unknown) → INTERNAL.
 */
Vigil__V1__ErrorCode vg_error_to_wire(int code);

/*
 * Maps a wire ErrorCode back to a vg_error.h code, the inverse of the above
 * for every code with a unique source (STORAGE → VG_ESTORE).  INTERNAL,
 * UNSPECIFIED and values this version does not know (from a newer server)
 * map to VG_EPROTO: the peer reported something we cannot classify; the
 * Error.message says what.
 */
int vg_error_from_wire(Vigil__V1__ErrorCode code);

/* ---------------------------------------------------------------------------
 * Names and values (shared by server and client, so both refuse the same)
 * ------------------------------------------------------------------------- */

/*
 * Measurement names, tag keys and field keys: [A-Za-z_][A-Za-z0-9_.:-]*,
 * 1..VG_NAME_MAX bytes.  `s` need not be NUL-terminated; exactly len bytes
 * are read.  Returns 0 or VG_EINVAL.
 */
int vg_name_check(const char *s, size_t len);

/*
 * Tag values: 1..VG_TAG_VALUE_MAX bytes of well-formed UTF-8 — no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF — and no
 * NUL byte.  Returns 0 or VG_EINVAL.
 */
int vg_tag_value_check(const char *s, size_t len);

/*
 * The same checks, also writing the reason into err: "empty", "256 bytes,
 * more than 255", "invalid character ' ' at byte 2", "invalid UTF-8 at byte 3
 * (surrogate U+D800)".  Byte offsets are 0-based.  err is always
 * NUL-terminated, truncated to errlen, and "" on success; it may be NULL
 * when errlen is 0.
 */
int vg_name_diagnose(const char *s, size_t len, char *err, size_t errlen);
int vg_tag_value_diagnose(const char *s, size_t len, char *err, size_t errlen);

/*
 * Validates one WriteBlock as the server will: a valid measurement name; at
 * most VG_MAX_TAGS tags with valid, unique keys and valid values; at least
 * one timestamp and one field; valid field names, unique within the block;
 * every field with exactly one value per timestamp.  NULL strings count as
 * empty.  Timestamps may repeat or be unordered (last write wins).
 *
 * Returns 0, VG_EINVAL with a message in err naming the input at fault
 * ("tag key 'ho st' in measurement 'cpu': invalid character ' ' at byte 2",
 * "field 'usage_user' in measurement 'cpu': 3 values for 4 timestamps"),
 * or VG_ENOMEM (a block of more than 64 fields needs a scratch array to find
 * duplicates).  err is always NUL-terminated, truncated to errlen, "" on
 * success, and may be NULL when errlen is 0.  Quoted input is escaped
 * (\xNN) and cut after 64 bytes with "...".
 */
int vg_write_block_check(const Vigil__V1__WriteBlock *b, char *err, size_t errlen);

/* ---- result frames, encoded by hand (encode.c) ---------------------------- */

/* A view of bytes (need not be NUL-terminated). */
typedef struct vg_wire_text {
	const char *data;
	size_t len;
} vg_wire_text_t;

/* A ResultSet: tags holds ntags (key, value) pairs, 2 * ntags views. */
typedef struct vg_wire_result_set {
	vg_wire_text_t name;
	const vg_wire_text_t *tags;
	size_t ntags;
	const vg_wire_text_t *columns;
	const Vigil__V1__ColumnType *types; /* ncolumns */
	size_t ncolumns;
	bool has_time;
} vg_wire_result_set_t;

/* One Column of a ResultRows: floats or strings (nrows each, or NULL), and
 * nulls ((nrows + 7) / 8 bytes) or NULL. */
typedef struct vg_wire_column {
	const double *floats;
	const vg_wire_text_t *strings;
	const uint8_t *nulls;
} vg_wire_column_t;

/*
 * Append one frame whose Envelope has `id` and a ResultSet / ResultRows body,
 * byte for byte what vg_frame_append() writes for the same Envelope, without
 * building protobuf-c structs (a server answer can be hundreds of such
 * frames).  Everything is read during the call only.  Return 0, VG_ENOMEM or
 * VG_ELIMIT (a frame over 4 GiB); on error `out` holds what it held.
 */
int vg_frame_append_result_set(vg_buf_t *out, uint64_t id, const vg_wire_result_set_t *set);
int vg_frame_append_result_rows(vg_buf_t *out, uint64_t id, const int64_t *times,
                                const vg_wire_column_t *columns, size_t ncols, size_t nrows);

#endif
