/* SPDX-License-Identifier: MIT */
/*
 * Everything thpswapd shows a peer at one moment (snapshot.c), for the
 * commands that show it all: top and metrics.
 */
#ifndef THPSWAP_CTL_SNAPSHOT_H
#define THPSWAP_CTL_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "conn.h"

struct ctl_snap_client {
	struct thp_client_info info;
	struct thp_policy_info pol;    /* zero if the daemon told none */
	uint64_t ctr[THP_C__MAX];      /* its STATS */
};

struct ctl_snapshot {
	uint64_t taken_ns;             /* CLOCK_MONOTONIC, when the last reply came */
	struct thp_msg_status_reply status;
	bool have_limits;              /* an older daemon tells no limits ... */
	struct thp_msg_limits_reply limits;
	bool have_policy;              /* ... and no pressure loop */
	struct ctl_policy policy;      /* the sums; policy.p is freed after matching */
	struct thp_msg_stats_reply sum; /* STATS of all clients */
	unsigned n_counters, n_hist;   /* what the daemon's STATS hold, ours at most */
	struct ctl_snap_client *c;     /* in increasing session id */
	uint32_t n;
};

/* Take one: STATUS, LIMITS, STATS of all, CLIENTS, POLICY_PAGE and STATS of
 * each client (one that ends meanwhile is left out).  0, or -errno (c->err
 * set; *@s empty). */
int ctl_snapshot_take(struct ctl_conn *c, struct ctl_snapshot *s);
void ctl_snapshot_free(struct ctl_snapshot *s);

#endif
