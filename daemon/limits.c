/* SPDX-License-Identifier: MIT */
/*
 * Limits on peers: every hit is counted (thpswapctl status shows the
 * counters) and logged, but once per peer, not once per message: a peer
 * that hammers a limit must not flood the journal either.
 */
#include <stdarg.h>
#include <stdio.h>

#include "thpswapd.h"

/* Refused connections come from new peers each time: one line per uid and
 * per this long at most. */
#define UID_LOG_NS (10ull * 1000000000ull)

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

void thpd_limit_uid_refused(struct thpd *d, uid_t uid, unsigned have)
{
	struct thpd_uid_log *g = &d->uid_log;
	uint64_t now = thp_now_ns();

	d->limit_hits[THP_L_CONNS_PER_UID]++;
	if (g->since_ns && g->uid == uid && now - g->since_ns < UID_LOG_NS) {
		g->unlogged++;
		return;
	}
	if (g->since_ns && g->unlogged)
		thpd_warn("uid %u: %llu more connections refused in the %llu s before",
			  (unsigned)g->uid, (unsigned long long)g->unlogged,
			  (unsigned long long)((now - g->since_ns) / 1000000000ull));
	thpd_warn("uid %u has %u connections to thpswapd, the limit (max-conns-per-uid): "
		  "refusing more; close some, or raise max-conns-per-uid in thpswapd.conf "
		  "(further refusals of this uid are logged at most every %llu s)",
		  (unsigned)uid, have, (unsigned long long)(UID_LOG_NS / 1000000000ull));
	*g = (struct thpd_uid_log){ .uid = uid, .since_ns = now, .unlogged = 0 };
}
