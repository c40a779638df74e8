/*
 * fuzz_frame.c — libFuzzer harness for what vigild does with the bytes a
 * client sends: framing, envelope decoding and request validation.
 *
 * Input: the bytes of one connection's stream, as recv() would hand them to
 * server/conn.c.  The harness walks them with the same loop as
 * process_input() in server/conn.c: vg_frame_peek_length() on the 4-byte
 * prefix (an oversized length ends the stream, as the server closes),
 * vg_frame_parse() on each complete frame (protobuf-c unpacking behind the
 * wire walker of protocol/wire.c), vg_frame_diagnose() for every refused
 * frame (the server's Error message), and for each decoded request the
 * validation the server runs before queueing work:
 *
 *   Write       vg_conn_check_write() — names, tags, tag values, fields,
 *               value counts, duplicate keys, the INT64_MAX timestamp;
 *   Query       vg_query_parse() of the statement (the worker's first step);
 *   Subscribe   vg_query_parse() and vg_statement_subscribe();
 *   Hello, Ping, Cancel, Unsubscribe: only their decoding.
 *
 * It then checks properties the server relies on: a decoded envelope has a
 * body and re-encodes (vg_frame_append) into a frame that decodes again
 * with the same body, and refused frames always get a non-empty diagnosis.
 * Any crash, leak, sanitizer report or broken property is a bug.
 */
#include "server_int.h"
#include "vg_proto.h"
#include "vg_query.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What a violated property looks like to libFuzzer: a crash with a stack. */
static void require(int ok)
{
	if (!ok)
		__builtin_trap();
}

static void check_statement(const char *text)
{
	vg_statement_t *st = NULL;
	vg_query_error_t qerr;
	int rc = vg_query_parse(text, strlen(text), &st, &qerr);
	require((rc == 0) == (st != NULL));
	vg_query_free(st);
}

static void check_subscribe(const Vigil__V1__Subscribe *req)
{
	const char *text = req->statement ? req->statement : "";
	vg_statement_t *st = NULL;
	vg_query_error_t qerr;
	if (vg_query_parse(text, strlen(text), &st, &qerr) == 0) {
		vg_subscribe_view_t view;
		if (vg_statement_kind(st) == VG_STMT_SUBSCRIBE)
			require(vg_statement_subscribe(st, &view) == 0 && view.select != NULL);
		vg_query_free(st);
	}
}

/* The decoded envelope re-encodes into a frame that decodes to the same body. */
static void check_reencode(const Vigil__V1__Envelope *env)
{
	vg_buf_t buf = VG_BUF_INIT;
	int rc = vg_frame_append(&buf, env);
	if (rc == VG_ENOMEM)
		return;
	require(rc == 0);
	Vigil__V1__Envelope *again = NULL;
	size_t consumed = 0;
	rc = vg_frame_parse(buf.data, buf.len, SIZE_MAX, &again, &consumed);
	if (rc != VG_ENOMEM) {
		require(rc == 0 && consumed == buf.len);
		require(again->id == env->id && again->body_case == env->body_case);
		require(vigil__v1__envelope__get_packed_size(again) + VG_FRAME_HEADER == buf.len);
	}
	vg_frame_free_envelope(again);
	vg_buf_release(&buf);
}

static void handle(const Vigil__V1__Envelope *env)
{
	char err[512];
	require(env->body_case != VIGIL__V1__ENVELOPE__BODY__NOT_SET);
	switch (env->body_case) {
	case VIGIL__V1__ENVELOPE__BODY_WRITE: {
		int rc = vg_conn_check_write(env->write, err, sizeof err);
		require(rc == 0 || rc == VG_EINVAL || rc == VG_ENOMEM);
		require(strlen(err) < sizeof err && (rc == 0 || err[0] != '\0'));
		break;
	}
	case VIGIL__V1__ENVELOPE__BODY_QUERY:
		check_statement(env->query->statement ? env->query->statement : "");
		break;
	case VIGIL__V1__ENVELOPE__BODY_SUBSCRIBE:
		check_subscribe(env->subscribe);
		break;
	default:
		break;
	}
	check_reencode(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t max_frame = VG_DEFAULT_MAX_FRAME;
	size_t offset = 0;
	for (;;) {
		const uint8_t *p = data + offset;
		size_t avail = size - offset;
		size_t payload = 0;
		int rc = vg_frame_peek_length(p, avail, max_frame, &payload);
		if (rc == VG_EAGAIN)
			break;
		if (rc == VG_ELIMIT) {
			/* The server names the size and closes the connection. */
			char msg[256];
			uint64_t id;
			vg_frame_diagnose(p, avail, max_frame, &id, msg, sizeof msg);
			require(msg[0] != '\0' && id == 0);
			break;
		}
		require(rc == 0);
		if (avail < VG_FRAME_HEADER + payload) {
			/* Incomplete: the server waits for more bytes. */
			Vigil__V1__Envelope *env = (Vigil__V1__Envelope *)1;
			size_t consumed = 1;
			require(vg_frame_parse(p, avail, max_frame, &env, &consumed) == VG_EAGAIN);
			require(env == NULL && consumed == 0);
			break;
		}
		Vigil__V1__Envelope *env = NULL;
		size_t consumed = 0;
		rc = vg_frame_parse(p, avail, max_frame, &env, &consumed);
		if (rc == VG_ENOMEM)
			break;
		require(consumed == VG_FRAME_HEADER + payload);
		offset += VG_FRAME_HEADER + payload;
		if (rc) {
			require(rc == VG_EPROTO && env == NULL);
			uint64_t id = 0;
			char msg[256];
			vg_frame_diagnose(p, VG_FRAME_HEADER + payload, max_frame, &id, msg,
			                  sizeof msg);
			require(msg[0] != '\0');
			continue;
		}
		handle(env);
		vg_frame_free_envelope(env);
	}
	return 0;
}
