/*
 * vg_duration.h — durations as the query language and the command lines
 * write them: an integer and a unit, ns|us|ms|s|m|h|d|w ("90s", "30d").
 */
#ifndef VG_DURATION_H
#define VG_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses exactly [s, s+len): 0 and *ns, or VG_EINVAL (no digits, unknown
 * unit, trailing bytes) or VG_ELIMIT (does not fit in int64 ns). */
int vg_duration_parse(const char *s, size_t len, int64_t *ns);

/* Writes the largest whole unit that represents ns exactly ("90s",
 * "2h", "1500ms"); returns the length written (buffer of 32 suffices). */
size_t vg_duration_format(int64_t ns, char *buf, size_t len);

#endif
