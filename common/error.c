/*
 * error.c — messages for the codes of vg_error.h.
 */
#include "vg_error.h"

#include <string.h>

static const char *const messages[] = {
	"out of memory",
	"invalid argument",
	"corrupt data",
	"unsupported format version",
	"not found",
	"limit exceeded",
	"storage error",
	"incomplete input",
	"syntax error",
	"protocol error",
	"closed",
	"timed out",
	"cancelled",
	"already exists",
	"buffer overflow",
	"authentication failed",
	"permission denied",
	"TLS error",
};

const char *vg_strerror(int code)
{
	if (code == 0)
		return "success";
	if (code < VG_EBASE && code > VG_ELAST) {
		int index = VG_EBASE - 1 - code;
		if ((size_t)index < sizeof messages / sizeof messages[0])
			return messages[index];
	}
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}
