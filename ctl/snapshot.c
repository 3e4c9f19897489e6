/* SPDX-License-Identifier: MIT */
/*
 * One look at everything thpswapd shows this peer: the daemon's summary and
 * limits, the counters summed over the clients, and each client with its
 * counters and what the pressure loop knows of it.  Requests come one after
 * the other, so the numbers are of nearly one moment, not of one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"
#include "util.h"

void ctl_snapshot_free(struct ctl_snapshot *s)
{
	free(s->c);
	free(s->policy.p);
	memset(s, 0, sizeof(*s));
}

static int client_stats(struct ctl_conn *c, int32_t pid, uint64_t *ctr, unsigned n)
{
	struct thp_msg_stats q = { .pid = pid };
	const struct thp_msg_stats_reply *r;
	struct thp_msg m;
	int e;

	e = ctl_call(c, THP_MSG_STATS, &q, sizeof(q), THP_MSG_STATS_REPLY, &m);
	if (e < 0)
		return e;
	r = m.payload;
	memcpy(ctr, r->ctr, n * sizeof(*ctr));
	return 0;
}

int ctl_snapshot_take(struct ctl_conn *c, struct ctl_snapshot *s)
{
	struct thp_client_info *ci = NULL;
	struct thp_msg_stats q = { 0 };
	struct thp_msg m;
	uint32_t n = 0;
	int r;

	memset(s, 0, sizeof(*s));
	r = ctl_call(c, THP_MSG_STATUS, NULL, 0, THP_MSG_STATUS_REPLY, &m);
	if (r < 0)
		return r;
	memcpy(&s->status, m.payload, sizeof(s->status));
	r = ctl_get_limits(c, &s->limits);
	if (r < 0)
		return r;
	s->have_limits = r == 0;
	r = ctl_call(c, THP_MSG_STATS, &q, sizeof(q), THP_MSG_STATS_REPLY, &m);
	if (r < 0)
		return r;
	memcpy(&s->sum, m.payload, sizeof(s->sum));
	s->n_counters = s->sum.n_counters < THP_C__MAX ? s->sum.n_counters : THP_C__MAX;
	s->n_hist = s->sum.n_hist < THP_H__MAX ? s->sum.n_hist : THP_H__MAX;
	r = ctl_get_clients(c, &ci, &n);
	if (r < 0)
		return r;
	r = ctl_get_policy(c, 0, &s->policy);
	if (r < 0)
		goto fail;
	s->have_policy = r == 0;
	s->c = calloc(n ? n : 1, sizeof(*s->c));
	if (!s->c) {
		r = ctl_conn_err(c, -ENOMEM, "out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct ctl_snap_client *sc = &s->c[s->n];
		const struct thp_policy_info *pi = ctl_policy_of(&s->policy, ci[i].session_id);

		r = client_stats(c, ci[i].pid, sc->ctr, s->n_counters);
		/* Ended since the list (or another session of its pid now):
		 * left out, as if it had ended before. */
		if (r == -ESRCH || r == -EPERM)
			continue;
		if (r < 0)
			goto fail;
		sc->info = ci[i];
		if (pi)
			sc->pol = *pi;
		s->n++;
	}
	free(ci);
	free(s->policy.p);
	s->policy.p = NULL;
	s->policy.n = 0;
	s->taken_ns = thp_now_ns();
	return 0;
fail:
	free(ci);
	ctl_snapshot_free(s);
	return r;
}
