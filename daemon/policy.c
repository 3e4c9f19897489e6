/* SPDX-License-Identifier: MIT */
/*
 * The resident budget: every --interval ms, a client above --budget gets one
 * EVICT of its least-recently-faulted resident regions, enough to bring it
 * back to 90 % of the budget.
 */
#include <errno.h>
#include <stdlib.h>

#include "thpswapd.h"

/* A region whose last attempt did not take (incompressible, refused) is
 * left alone this long before it is tried again. */
#define RETRY_NS (10ull * 1000000000ull)

struct cand {
	uint64_t last_fault_ns;
	uint32_t idx;
};

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->last_fault_ns != y->last_fault_ns)
		return x->last_fault_ns < y->last_fault_ns ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool backing_off(const struct thpd_session *s, uint32_t i,
			const struct thp_record *r, uint64_t now)
{
	uint64_t last = thpd_session_last_attempt(s, i);

	if (!last || now - last >= RETRY_NS)
		return false;
	/* Still resident and not touched since we asked: it did not go. */
	return (r->flags & THP_RF_INCOMPRESSIBLE) || r->last_fault_ns <= last;
}

long thpd_policy_pick(const struct thpd_session *s, uint64_t now, uint64_t resident,
		      uint64_t target, uint32_t *out, uint32_t max)
{
	struct cand *c = NULL;
	size_t n = 0, cap = 0;
	struct thpd_rec_iter it;
	struct thp_record r;
	uint64_t need;
	uint32_t i;

	if (resident <= target)
		return 0;
	need = (resident - target + THP_REGION_BYTES - 1) / THP_REGION_BYTES;
	if (need > max)
		need = max;

	thpd_rec_iter_init(&it, s, 0);
	while (thpd_rec_next(&it, &i, &r)) {
		if (atomic_load_explicit(&r.state, memory_order_relaxed) != THP_ST_RESIDENT ||
		    backing_off(s, i, &r, now))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct cand *nc = realloc(c, ncap * sizeof(*c));

			if (!nc) {
				free(c);
				return -ENOMEM;
			}
			c = nc;
			cap = ncap;
		}
		c[n++] = (struct cand){ .last_fault_ns = r.last_fault_ns, .idx = i };
	}
	if (n > need)
		qsort(c, n, sizeof(*c), cmp_cand);
	else
		need = n;
	for (size_t k = 0; k < need; k++)
		out[k] = c[k].idx;
	free(c);
	return (long)need;
}

void thpd_policy_tick(struct thpd *d)
{
	uint64_t budget = d->cfg.budget_bytes, now = thp_now_ns();
	uint32_t idx[THP_EVICT_MAX];

	/* A failed send closes a connection but frees nothing before the
	 * loop's close callbacks, so walking on is safe. */
	for (struct thpd_conn *c = d->conns; c; c = c->next) {
		struct thpd_session *s = c->s;
		uint64_t resident;
		long n;

		if (!s || c->closing || !budget || thpd_session_busy(s))
			continue;
		resident = thpd_session_ctr(s, THP_C_RESIDENT) * THP_REGION_BYTES;
		if (resident <= budget)
			continue;
		n = thpd_policy_pick(s, now, resident, budget - budget / 10, idx, THP_EVICT_MAX);
		if (n < 0) {
			thpd_warn("pid %d: cannot pick regions to evict: out of memory",
				  (int)thpd_session_pid(s));
			continue;
		}
		if (n == 0)
			continue;
		thpd_info(d, "pid %d: resident %llu MiB over budget %llu MiB: evicting %ld regions",
			  (int)thpd_session_pid(s), (unsigned long long)(resident >> 20),
			  (unsigned long long)(budget >> 20), n);
		/* Busy sessions were skipped: nothing queued, so no -EBUSY. */
		if (thpd_session_evict(s, THP_EVICT_BUDGET, idx, (uint32_t)n, NULL, 0) < 0)
			thpd_warn("pid %d: cannot queue an eviction: out of memory",
				  (int)thpd_session_pid(s));
	}
}
