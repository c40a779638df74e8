/*
 * duration.c — parsing and printing of vg_duration.h durations.
 */
#include "vg_duration.h"

#include "vg_error.h"

#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int64_t ns;
} units[] = {
	{"w", INT64_C(604800000000000)}, {"d", INT64_C(86400000000000)},
	{"h", INT64_C(3600000000000)},   {"m", INT64_C(60000000000)},
	{"s", INT64_C(1000000000)},      {"ms", INT64_C(1000000)},
	{"us", INT64_C(1000)},           {"ns", 1},
};

int vg_duration_parse(const char *s, size_t len, int64_t *ns)
{
	size_t i = 0;
	uint64_t n = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		if (n > (UINT64_C(1) << 62))
			return VG_ELIMIT;
		n = n * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	if (i == 0 || i == len)
		return VG_EINVAL;
	for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
		size_t ulen = strlen(units[u].name);
		if (len - i == ulen && memcmp(s + i, units[u].name, ulen) == 0) {
			if (n > (uint64_t)(INT64_MAX / units[u].ns))
				return VG_ELIMIT;
			*ns = (int64_t)n * units[u].ns;
			return 0;
		}
	}
	return VG_EINVAL;
}

size_t vg_duration_format(int64_t ns, char *buf, size_t len)
{
	if (ns == 0)
		return (size_t)snprintf(buf, len, "0s");
	for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
		if (ns % units[u].ns == 0) {
			int n = snprintf(buf, len, "%lld%s", (long long)(ns / units[u].ns),
					 units[u].name);
			return n < 0 ? 0 : (size_t)n;
		}
	return 0;
}
