/*
 * log.c — timestamped, levelled lines on stderr (see log.h).  Each line is
 * formatted into a local buffer and written with one fputs so lines from
 * different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int threshold = VG_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

int vg_log_level_parse(const char *name, vg_log_level_t *out)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0) {
			*out = (vg_log_level_t)i;
			return 0;
		}
	return -1;
}

void vg_log_set_level(vg_log_level_t level) { atomic_store(&threshold, (int)level); }

bool vg_log_enabled(vg_log_level_t level) { return (int)level <= atomic_load(&threshold); }

void vg_log(vg_log_level_t level, const char *fmt, ...)
{
	if (!vg_log_enabled(level))
		return;
	char line[2048];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
		      names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len] = '\n';
	line[len + 1] = '\0';
	fputs(line, stderr);
}
