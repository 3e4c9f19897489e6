/* SPDX-License-Identifier: MIT */
/* Parsing the values of the preload's environment (env.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

int env_parse_size(const char *v, uint64_t *out)
{
	unsigned long long n;
	unsigned shift = 0;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (shift && (*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b'))
		end += 2;
	if (*end)
		return -EINVAL;
	if (n > (~0ull >> shift))
		return -ERANGE;
	n <<= shift;
	if (n < MIN_SIZE_LEAST)
		return -EINVAL;
	*out = n;
	return 0;
}

int env_parse_ms(const char *v, unsigned *out)
{
	unsigned long n;
	char *end;

	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || n < 1 || n > SCAN_MS_MOST)
		return -EINVAL;
	*out = (unsigned)n;
	return 0;
}

int env_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };

	for (size_t i = 0; v && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}
