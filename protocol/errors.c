/*
 * errors.c — how vg_error.h codes travel as vigil.v1.ErrorCode, and the
 * builder of Error frames.
 *
 * The wire codes are coarser than ours and say what a client can act on
 * (retry later, fix the statement, resume a subscription), not which layer
 * failed; the table below is the whole mapping, and vg_proto.h lists it.
 * Codes from a newer server that this build does not know become VG_EPROTO
 * rather than being guessed at.
 *
 * Error.message is a proto3 string: a Go, Java or Python client refuses the
 * whole frame if it is not UTF-8.  Messages quote bad input, which is
 * exactly where invalid UTF-8 turns up, so vg_frame_append_error() sanitises
 * every message it sends and bounds its length.
 */
#include "vg_proto.h"

#include "proto_private.h"
#include "vg_error.h"

#include <string.h>

static const struct {
	int code;
	Vigil__V1__ErrorCode wire;
} mapping[] = {
    {VG_EINVAL, VIGIL__V1__ERROR_CODE__ERROR_INVALID},
    {VG_ESYNTAX, VIGIL__V1__ERROR_CODE__ERROR_SYNTAX},
    {VG_ENOTFOUND, VIGIL__V1__ERROR_CODE__ERROR_NOT_FOUND},
    {VG_ELIMIT, VIGIL__V1__ERROR_CODE__ERROR_LIMIT},
    {VG_EPROTO, VIGIL__V1__ERROR_CODE__ERROR_PROTOCOL},
    {VG_EVERSION, VIGIL__V1__ERROR_CODE__ERROR_VERSION},
    {VG_ESTORE, VIGIL__V1__ERROR_CODE__ERROR_STORAGE},
    {VG_ETIMEOUT, VIGIL__V1__ERROR_CODE__ERROR_TIMEOUT},
    {VG_ECANCELED, VIGIL__V1__ERROR_CODE__ERROR_CANCELED},
    {VG_EOVERFLOW, VIGIL__V1__ERROR_CODE__ERROR_OVERFLOW},
    {VG_ECLOSED, VIGIL__V1__ERROR_CODE__ERROR_SHUTDOWN},
    {VG_EEXIST, VIGIL__V1__ERROR_CODE__ERROR_EXISTS},
    {VG_EAUTH, VIGIL__V1__ERROR_CODE__ERROR_UNAUTHENTICATED},
    {VG_EPERM, VIGIL__V1__ERROR_CODE__ERROR_PERMISSION_DENIED},
    /* Many-to-one: listed after the entry that from_wire uses. */
    {VG_ECORRUPT, VIGIL__V1__ERROR_CODE__ERROR_STORAGE},
};

#define MAPPING_COUNT (sizeof mapping / sizeof mapping[0])

Vigil__V1__ErrorCode vg_error_to_wire(int code)
{
	if (code == 0)
		return VIGIL__V1__ERROR_CODE__ERROR_UNSPECIFIED;
	for (size_t i = 0; i < MAPPING_COUNT; i++)
		if (mapping[i].code == code)
			return mapping[i].wire;
	return VIGIL__V1__ERROR_CODE__ERROR_INTERNAL;
}

int vg_error_from_wire(Vigil__V1__ErrorCode wire)
{
	for (size_t i = 0; i < MAPPING_COUNT; i++)
		if (mapping[i].wire == wire)
			return mapping[i].code;
	return VG_EPROTO;
}

int vg_frame_append_error(vg_buf_t *out, uint64_t id, int code, const char *message, uint32_t line,
                          uint32_t column, bool fatal)
{
	if (!message)
		message = vg_strerror(code);
	size_t len = strlen(message);
	vg_buf_t clean = VG_BUF_INIT;
	if (len > VG_ERROR_MESSAGE_MAX || !vg_utf8_is_clean(message, len)) {
		int rc = vg_utf8_sanitize(&clean, message, len, VG_ERROR_MESSAGE_MAX);
		if (rc)
			return rc;
		message = vg_buf_cstr(&clean);
	}
	Vigil__V1__Error error = VIGIL__V1__ERROR__INIT;
	error.code = vg_error_to_wire(code);
	error.message = (char *)message;
	error.line = line;
	error.column = column;
	error.fatal = fatal;
	Vigil__V1__Envelope env = VIGIL__V1__ENVELOPE__INIT;
	env.id = id;
	env.body_case = VIGIL__V1__ENVELOPE__BODY_ERROR;
	env.error = &error;
	int rc = vg_frame_append(out, &env);
	vg_buf_release(&clean);
	return rc;
}
