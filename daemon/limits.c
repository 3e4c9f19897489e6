/* SPDX-License-Identifier: MIT */
/*
 * Limits on peers: every hit is counted (thpswapctl status shows the
 * counters) and logged, but once per peer, not once per message: a peer
 * that hammers a limit must not flood the journal either.
 */
#include <stdarg.h>
#include <stdio.h>

#include "thpswapd.h"

void thpd_limit_hit(struct thpd *d, struct thpd_conn *c, enum thp_limit l, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	d->limit_hits[l]++;
	if (c) {
		if (c->logged & (1u << l))
			return;
		c->logged |= 1u << l;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	thpd_warn("%s", line);
}
