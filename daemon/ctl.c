/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl's requests: STATUS, CLIENTS(_PAGE), REGIONS, EVICT_REQ, STATS,
 * LIMITS, POLICY_PAGE, PIN_REQ.  A peer sees and steers the sessions of its own uid; every
 * session only if it is root or a member of admin-group (c->admin, set at
 * HELLO).  Others' sessions are left out of lists and sums, and a request
 * naming one is refused with EPERM, counted and logged once per peer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "thpswapd.h"

_Static_assert(sizeof(((struct thp_msg_stats_reply *)0)->hist) ==
	       sizeof(uint64_t) * THP_H__MAX * THP_HIST_BUCKETS, "STATS_REPLY holds every histogram");
_Static_assert(THP_C__MAX <= sizeof(((struct thp_msg_stats_reply *)0)->ctr) / sizeof(uint64_t),
	       "STATS_REPLY holds every counter");

static bool may_see(const struct thpd_conn *c, const struct thpd_session *s)
{
	return c->admin || c->uid == thpd_session_uid(s);
}

/* What a peer needs to see other users' sessions, for refusals. */
static const char *admin_needed(const struct thpd *d, char *b, size_t sz)
{
	if (d->have_admin_gid)
		snprintf(b, sz, "root or a member of group %s (admin-group)", d->cfg.admin_group);
	else if (d->cfg.admin_group[0])
		snprintf(b, sz, "root (admin-group %s was not found when thpswapd started)",
			 d->cfg.admin_group);
	else
		snprintf(b, sz, "root (no admin-group is set in thpswapd.conf)");
	return b;
}

/* The session of @pid, or NULL after answering ERROR. */
static struct thpd_session *lookup(struct thpd_conn *c, uint32_t seq, int32_t pid)
{
	struct thpd_session *s;
	char who[128];

	if (pid <= 0) {
		thpd_conn_error(c, seq, -EINVAL, "a client pid is required (got %d)", (int)pid);
		return NULL;
	}
	s = thpd_session_find(c->d, pid);
	if (!s) {
		thpd_conn_error(c, seq, -ESRCH, "no thpswap client with pid %d", (int)pid);
		return NULL;
	}
	if (!may_see(c, s)) {
		admin_needed(c->d, who, sizeof(who));
		thpd_limit_hit(c->d, c, THP_L_NOT_PERMITTED, "pid %d (uid %u) asked for the session "
			       "of pid %d (uid %u): refused, only %s may see or steer other users' "
			       "sessions (counted as not_permitted in thpswapctl status; further "
			       "refusals of this peer are not logged)", (int)c->pid, (unsigned)c->uid,
			       (int)pid, (unsigned)thpd_session_uid(s), who);
		thpd_conn_error(c, seq, -EPERM, "pid %d is a session of another user (uid %u): "
				"only %s may see or steer it", (int)pid,
				(unsigned)thpd_session_uid(s), who);
		return NULL;
	}
	return s;
}

static void status(struct thpd_conn *c, uint32_t seq)
{
	struct thpd *d = c->d;
	struct thp_msg_status_reply r = {
		.daemon_pid = (uint32_t)getpid(),
		.uptime_ns = thp_now_ns() - d->start_ns,
		.budget_bytes = d->cfg.budget_bytes,
		.zstd_level = d->cfg.zstd_level,
		.codec = d->cfg.codec,
	};

	snprintf(r.version, sizeof(r.version), "%s", THPSWAP_VERSION);
	/* A user who is not an admin learns about its own sessions only. */
	for (const struct thpd_session *s = thpd_session_first(d); s; s = thpd_session_next(s)) {
		if (!may_see(c, s))
			continue;
		r.clients++;
		r.regions += thpd_session_ctr(s, THP_C_REGIONS);
		r.resident += thpd_session_ctr(s, THP_C_RESIDENT);
		r.evicted_zero += thpd_session_ctr(s, THP_C_EVICTED_ZERO);
		r.evicted_ram += thpd_session_ctr(s, THP_C_EVICTED_RAM);
		r.stored_bytes += thpd_session_ctr(s, THP_C_STORED_BYTES);
	}
	thpd_conn_send(c, THP_MSG_STATUS_REPLY, seq, &r, sizeof(r), NULL, 0);
}

/* The sessions @c may see with ids above @after, a page at most. */
static void clients(struct thpd_conn *c, uint32_t seq, uint64_t after)
{
	struct thpd *d = c->d;
	struct thp_msg_clients_reply *r = (struct thp_msg_clients_reply *)d->sbuf;

	r->n = 0;
	r->more = 0;
	for (const struct thpd_session *s = thpd_session_first(d); s; s = thpd_session_next(s)) {
		if (thpd_session_id(s) <= after || !may_see(c, s))
			continue;
		if (r->n == THP_CLIENTS_MAX) {
			r->more = 1;
			break;
		}
		r->c[r->n++] = (struct thp_client_info){
			.pid = thpd_session_pid(s),
			.uid = thpd_session_uid(s),
			.session_id = thpd_session_id(s),
			.regions = thpd_session_ctr(s, THP_C_REGIONS),
			.resident = thpd_session_ctr(s, THP_C_RESIDENT),
			.evicted_zero = thpd_session_ctr(s, THP_C_EVICTED_ZERO),
			.evicted_ram = thpd_session_ctr(s, THP_C_EVICTED_RAM),
			.stored_bytes = thpd_session_ctr(s, THP_C_STORED_BYTES),
			.faults = thpd_session_ctr(s, THP_C_FAULTS),
		};
		memcpy(r->c[r->n - 1].comm, thpd_session_comm(s), sizeof(r->c[0].comm));
	}
	thpd_conn_send(c, THP_MSG_CLIENTS_REPLY, seq, r,
		       sizeof(*r) + r->n * sizeof(r->c[0]), NULL, 0);
}

static void regions(struct thpd_conn *c, uint32_t seq, const struct thp_msg_regions *q)
{
	struct thp_msg_regions_reply *r = (struct thp_msg_regions_reply *)c->d->sbuf;
	const struct thpd_session *s = lookup(c, seq, q->pid);
	struct thpd_rec_iter it;
	struct thp_record rec;
	uint32_t idx;

	if (!s)
		return;
	r->n = 0;
	r->next = 0;
	thpd_rec_iter_init(&it, s, q->cursor);
	while (r->n < THP_REGIONS_MAX && thpd_rec_next(&it, &idx, &rec)) {
		r->r[r->n++] = (struct thp_region_info){
			.addr = rec.addr,
			.state = atomic_load_explicit(&rec.state, memory_order_relaxed),
			.stored_len = rec.stored_len,
			.codec = rec.codec,
			.level = rec.level,
			.kind = rec.kind,
			.kswap = !!(rec.flags & THP_RF_KSWAP),
			.file = !!(rec.flags & THP_RF_FILE),
			.evictions = rec.evictions > UINT16_MAX ? UINT16_MAX : (uint16_t)rec.evictions,
			.last_fault_ns = rec.last_fault_ns,
		};
	}
	if (r->n == THP_REGIONS_MAX && it.i < thpd_session_nrec(s))
		r->next = it.i;
	thpd_conn_send(c, THP_MSG_REGIONS_REPLY, seq, r,
		       sizeof(*r) + r->n * sizeof(r->r[0]), NULL, 0);
}

static int push(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t x)
{
	if (*n == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 256;
		uint32_t *nv = realloc(*v, ncap * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = x;
	return 0;
}

/* A request's [addr, addr+len) as region-aligned bounds (len 0: all);
 * false, answered, if it wraps around. */
static bool request_range(struct thpd_conn *c, uint32_t seq, uint64_t addr, uint64_t len,
			  uint64_t *start, uint64_t *end)
{
	if (!len)
		return true;
	if (addr + len < addr) {
		thpd_conn_error(c, seq, -EINVAL, "range 0x%llx + %llu wraps around",
				(unsigned long long)addr, (unsigned long long)len);
		return false;
	}
	*start = addr & ~(uint64_t)(THP_REGION_BYTES - 1);
	*end = addr + len;
	return true;
}

static void evict(struct thpd_conn *c, uint32_t seq, const struct thp_msg_evict_req *q)
{
	struct thpd_session *s = lookup(c, seq, q->pid);
	uint64_t start = 0, end = UINT64_MAX;
	uint32_t *idx = NULL, n = 0, cap = 0, i;
	struct thpd_rec_iter it;
	struct thp_record rec;
	int r = 0;

	if (!s)
		return;
	if (q->flags & ~THP_EVICT_REQ_KERNEL) {
		thpd_conn_error(c, seq, -EINVAL, "unknown eviction flags 0x%x", q->flags);
		return;
	}
	if (!request_range(c, seq, q->addr, q->len, &start, &end))
		return;
	/* Refused before any work: a peer that asks again and again costs
	 * neither a walk of the records nor memory. */
	r = thpd_session_can_queue(s);
	thpd_rec_iter_init(&it, s, 0);
	while (r == 0 && thpd_rec_next(&it, &i, &rec)) {
		/* len 0: every resident region; a range: every region in it,
		 * and the agent says which it skipped */
		if (q->len ? rec.addr >= start && rec.addr < end :
		    atomic_load_explicit(&rec.state, memory_order_relaxed) == THP_ST_RESIDENT)
			r = push(&idx, &n, &cap, i);
	}
	if (r == 0 && q->len && n == 0) {
		thpd_conn_error(c, seq, -ENOENT, "pid %d has no managed region in 0x%llx-0x%llx",
				(int)q->pid, (unsigned long long)q->addr,
				(unsigned long long)(q->addr + q->len));
	} else {
		if (r == 0)
			r = thpd_session_evict(s, THP_EVICT_ADMIN | (q->flags & THP_EVICT_REQ_KERNEL ?
								     THP_EVICT_TO_KERNEL : 0),
					       idx, n, c, seq);
		if (r == -EBUSY)
			thpd_conn_error(c, seq, r, "pid %d has %u eviction requests queued already "
					"(evict-queue): try again when they are done", (int)q->pid,
					c->d->cfg.evict_queue);
		else if (r == -ETIMEDOUT)
			thpd_conn_error(c, seq, r, "pid %d (%s) has not answered its last EVICT "
					"(evict-timeout %u s): it may be stopped or stuck; nothing "
					"is evicted from it until it answers", (int)q->pid,
					thpd_session_comm(s), c->d->cfg.evict_timeout_s);
		else if (r < 0)
			thpd_conn_error(c, seq, r, "thpswapd is out of memory");
		else
			thpd_info(c->d, "pid %d: admin eviction of %u regions%s requested by pid %d",
				  (int)q->pid, n, q->flags & THP_EVICT_REQ_KERNEL ?
				  " to the kernel's swap" : "", (int)c->pid);
	}
	free(idx);
}

/* Regions of @s pinned now (a walk of its records). */
static uint64_t count_pinned(const struct thpd_session *s)
{
	struct thpd_rec_iter it;
	struct thp_record rec;
	uint64_t n = 0;
	uint32_t i;

	thpd_rec_iter_init(&it, s, 0);
	while (thpd_rec_next(&it, &i, &rec))
		n += !!(rec.flags & THP_RF_PINNED);
	return n;
}

/* The pressure loop's view of the sessions @c may see with ids above
 * @q->after (or of @q->pid's alone), a page at most, and its sums over
 * every one of them. */
static void policy(struct thpd_conn *c, uint32_t seq, const struct thp_msg_policy_page *q)
{
	struct thp_msg_policy_reply *r = (struct thp_msg_policy_reply *)c->d->sbuf;
	const struct thpd_session *only = NULL;
	double weighted = 0;

	if (q->pid && !(only = lookup(c, seq, q->pid)))
		return;
	memset(r, 0, sizeof(*r));
	r->stall_us = thpd_policy_sys_stall(c->d);
	for (const struct thpd_session *s = thpd_session_first(c->d); s; s = thpd_session_next(s)) {
		struct thp_policy_info pi;

		if ((only && s != only) || !may_see(c, s))
			continue;
		thpd_policy_client(c->d, s, &pi);
		pi.pinned = count_pinned(s);
		r->promotions += pi.promotions;
		r->working_set += pi.working_set;
		r->pinned += pi.pinned;
		weighted += (double)pi.promo_rate_ppb * (double)pi.working_set;
		if (thpd_session_id(s) <= q->after || r->more)
			continue;
		if (r->n == THP_POLICY_MAX)
			r->more = 1;
		else
			r->p[r->n++] = pi;
	}
	r->promo_rate_ppb = r->working_set ? (uint64_t)(weighted / (double)r->working_set + 0.5) : 0;
	thpd_conn_send(c, THP_MSG_POLICY_REPLY, seq, r, sizeof(*r) + r->n * sizeof(r->p[0]),
		       NULL, 0);
}

static void pin(struct thpd_conn *c, uint32_t seq, const struct thp_msg_pin_req *q)
{
	struct thpd_session *s = lookup(c, seq, q->pid);
	uint64_t start = 0, end = UINT64_MAX;
	struct thp_msg_pin_reply r = { 0 };
	long n;

	if (!s)
		return;
	if (q->pin > 1) {
		thpd_conn_error(c, seq, -EINVAL, "pin must be 0 or 1 (got %u)", q->pin);
		return;
	}
	if (!request_range(c, seq, q->addr, q->len, &start, &end))
		return;
	n = thpd_pin(s, start, end, q->pin);
	if (n < 0) {
		thpd_conn_error(c, seq, (int)n, "cannot map the records of pid %d: %s",
				(int)q->pid, strerror((int)-n));
		return;
	}
	if (n == 0 && q->len) {
		thpd_conn_error(c, seq, -ENOENT, "pid %d has no managed region in 0x%llx-0x%llx",
				(int)q->pid, (unsigned long long)q->addr,
				(unsigned long long)(q->addr + q->len));
		return;
	}
	thpd_info(c->d, "pid %d: %ld regions %s by pid %d", (int)q->pid, n,
		  q->pin ? "pinned" : "unpinned", (int)c->pid);
	r.regions = (uint32_t)n;
	thpd_conn_send(c, THP_MSG_PIN_REPLY, seq, &r, sizeof(r), NULL, 0);
}

static void add_session_stats(struct thp_msg_stats_reply *r, const struct thpd_session *s)
{
	for (unsigned i = 0; i < THP_C__MAX; i++)
		r->ctr[i] += thpd_session_ctr(s, (enum thp_counter)i);
	for (unsigned h = 0; h < THP_H__MAX; h++)
		for (unsigned b = 0; b < THP_HIST_BUCKETS; b++)
			r->hist[h][b] += thpd_session_hist(s, h, b);
}

static void stats(struct thpd_conn *c, uint32_t seq, const struct thp_msg_stats *q)
{
	struct thp_msg_stats_reply *r = (struct thp_msg_stats_reply *)c->d->sbuf;

	memset(r, 0, sizeof(*r));
	r->n_counters = THP_C__MAX;
	r->n_hist = THP_H__MAX;
	if (q->pid == 0) {
		for (const struct thpd_session *s = thpd_session_first(c->d); s;
		     s = thpd_session_next(s))
			if (may_see(c, s))
				add_session_stats(r, s);
	} else {
		const struct thpd_session *s = lookup(c, seq, q->pid);

		if (!s)
			return;
		add_session_stats(r, s);
	}
	thpd_conn_send(c, THP_MSG_STATS_REPLY, seq, r, sizeof(*r), NULL, 0);
}

static void limits(struct thpd_conn *c, uint32_t seq)
{
	const struct thpd *d = c->d;
	struct thp_msg_limits_reply r = {
		.n_counters = THP_L__MAX,
		.max_conns_per_uid = d->cfg.max_conns_per_uid,
		.hello_timeout_ms = d->cfg.hello_timeout_ms,
		.evict_queue = d->cfg.evict_queue,
		.evict_timeout_s = d->cfg.evict_timeout_s,
	};

	for (unsigned i = 0; i < THP_L__MAX; i++)
		r.ctr[i] = d->limit_hits[i];
	thpd_conn_send(c, THP_MSG_LIMITS_REPLY, seq, &r, sizeof(r), NULL, 0);
}

void thpd_ctl_handle(struct thpd_conn *c, const struct thp_msg *m)
{
	uint32_t seq = m->hdr.seq;

	switch (m->hdr.type) {
	case THP_MSG_STATUS:
		status(c, seq);
		break;
	case THP_MSG_CLIENTS:
		clients(c, seq, 0);
		break;
	case THP_MSG_CLIENTS_PAGE:
		clients(c, seq, ((const struct thp_msg_clients_page *)m->payload)->after);
		break;
	case THP_MSG_REGIONS:
		regions(c, seq, m->payload);
		break;
	case THP_MSG_EVICT_REQ:
		evict(c, seq, m->payload);
		break;
	case THP_MSG_STATS:
		stats(c, seq, m->payload);
		break;
	case THP_MSG_LIMITS:
		limits(c, seq);
		break;
	case THP_MSG_POLICY_PAGE:
		policy(c, seq, m->payload);
		break;
	case THP_MSG_PIN_REQ:
		pin(c, seq, m->payload);
		break;
	default:
		thpd_conn_error(c, seq, -EPROTO, "%s is not a control request",
				thp_msg_type_name(m->hdr.type));
	}
}
