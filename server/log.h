/*
 * log.h — the server's log: one line per event on stderr, with an
 * ISO 8601 UTC timestamp (milliseconds) and a level.
 *
 *   2026-11-25T08:41:07.123Z info  listening on 127.0.0.1:8445
 *
 * The level threshold is the one piece of state this module owns; it is
 * set once at start-up and read by every thread.
 */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stdbool.h>

typedef enum vg_log_level {
	VG_LOG_ERROR = 0,
	VG_LOG_WARN = 1,
	VG_LOG_INFO = 2,
	VG_LOG_DEBUG = 3,
} vg_log_level_t;

/* Parses "error", "warn", "info" or "debug": 0, or -1 if unknown. */
int vg_log_level_parse(const char *name, vg_log_level_t *out);
void vg_log_set_level(vg_log_level_t level);
bool vg_log_enabled(vg_log_level_t level);
void vg_log(vg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
