/* SPDX-License-Identifier: MIT */
/*
 * What to evict, decided in the daemon; the agents only carry out EVICTs,
 * so no restore ever waits for any of this.
 *
 * The resident budget: every --interval ms, a client above --budget gets one
 * EVICT of enough of its resident regions to bring it back to 90 % of the
 * budget, least recently faulted first, never one that came back soon
 * after its last eviction while it is marked for that.
 *
 * The pressure loop: every --pressure-interval, each client's records are
 * walked once, to count promotions (regions restored within
 * --promotion-window of their eviction: mistakes) and to list the regions
 * that may go.  While the client's memory stall over the interval stays
 * under --pressure-target and its promotions under --promotion-target, a
 * step more of its coldest regions is evicted and the step doubles; when
 * either rises, nothing is evicted and the step halves.  A client whose
 * cgroup is above --cgroup-high-pct of its limit is evicted down regardless.
 * docs/ARCHITECTURE.md, "The pressure loop", has the why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel-abi.h"
#include "thpswapd.h"

/* A region whose last attempt did not take (incompressible, refused) is
 * left alone this long before it is tried again. */
#define RETRY_NS (10ull * 1000000000ull)

struct cand {
	uint64_t last_fault_ns;   /* the sort key: least first */
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

/* ---- the pressure loop ---- */

#define NS_PER_S 1000000000ull
/* A region promoted k times waits promotion-window << (k - 1) after its
 * last fault before it may go again; the shift stops here. */
#define MISTAKE_SHIFT_MAX 16

/* What the loop remembers of one client session between intervals. */
struct pol_client {
	struct pol_client *next;
	uint64_t session_id;
	uint32_t nrec;
	/* per record, from the last walk: restores and evicted_ns as read,
	 * the address (a record reused for another region starts afresh),
	 * and how often the region came back too soon */
	uint32_t *seen_restores;
	uint64_t *seen_evicted;
	uint64_t *seen_addr;
	uint8_t *mistakes;
	uint64_t *away_ns;            /* how long its last eviction lasted (0: unknown) */
	uint64_t *written_ns;         /* when coldness.c last saw it written (0: never) */
	bool cold_failed;             /* coldness.c could not look: said once, not tried again */
	uint64_t promotions;          /* since the session began */
	uint32_t promos_new;          /* found by walks since the pressure loop's last interval */
	bool budget_short;            /* the budget could not be held: said, until it can */
	double promo_rate;            /* promoted per minute, a fraction of the working set */
	uint64_t working_set;         /* resident + evicted regions, at the last walk */
	uint64_t stall_us;            /* the stall over the last interval */
	uint32_t step;                /* regions to evict in the next calm interval */
	uint64_t walked_ns;           /* when the last walk was */
	bool stall_valid;
	uint64_t stall_prev;          /* the cgroup's memory.pressure total */
};

struct thpd_policy {
	struct pol_client *clients;
	uint64_t last_ns;             /* start of the interval; 0 before the first */
	bool stall_valid;
	uint64_t stall_prev;          /* /proc/pressure/memory total */
	uint64_t promotions;          /* all clients, since start */
	double promo_rate;            /* all clients: promoted per minute / all regions */
	uint64_t sys_stall_us;        /* the system's stall over the last interval */
	bool cold_probed;
	enum thpd_cold_signal cold;   /* what coldness.c may use; NONE: fault history only */
};

static void client_free(struct pol_client *pc)
{
	free(pc->seen_restores);
	free(pc->seen_evicted);
	free(pc->seen_addr);
	free(pc->mistakes);
	free(pc->away_ns);
	free(pc->written_ns);
	free(pc);
}

void thpd_policy_free(struct thpd *d)
{
	struct thpd_policy *p = d->policy;

	if (!p)
		return;
	while (p->clients) {
		struct pol_client *pc = p->clients;

		p->clients = pc->next;
		client_free(pc);
	}
	free(p);
	d->policy = NULL;
}

static uint32_t step_min(const struct thpd_config *cfg)
{
	return cfg->evict_step < cfg->evict_step_max ? cfg->evict_step : cfg->evict_step_max;
}

static struct thpd_policy *policy_get(struct thpd *d)
{
	if (!d->policy)
		d->policy = calloc(1, sizeof(*d->policy));
	return d->policy;
}

/* What the policy remembers of @s, made on first sight; NULL: no memory. */
static struct pol_client *client_get(struct thpd *d, const struct thpd_session *s)
{
	uint32_t nrec = thpd_session_nrec(s);
	struct thpd_policy *p = policy_get(d);
	struct pol_client *pc;

	if (!p)
		return NULL;

	for (pc = p->clients; pc; pc = pc->next)
		if (pc->session_id == thpd_session_id(s))
			return pc;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return NULL;
	/* Backed lazily, like the session's own per-record array. */
	pc->seen_restores = calloc(nrec, sizeof(*pc->seen_restores));
	pc->seen_evicted = calloc(nrec, sizeof(*pc->seen_evicted));
	pc->seen_addr = calloc(nrec, sizeof(*pc->seen_addr));
	pc->mistakes = calloc(nrec, sizeof(*pc->mistakes));
	pc->away_ns = calloc(nrec, sizeof(*pc->away_ns));
	pc->written_ns = calloc(nrec, sizeof(*pc->written_ns));
	if (!pc->seen_restores || !pc->seen_evicted || !pc->seen_addr || !pc->mistakes ||
	    !pc->away_ns || !pc->written_ns) {
		client_free(pc);
		return NULL;
	}
	pc->session_id = thpd_session_id(s);
	pc->nrec = nrec;
	pc->step = step_min(&d->cfg);
	pc->next = p->clients;
	p->clients = pc;
	return pc;
}

/* Time since @t; a stamp past @now (the client's, read late) is age 0. */
static uint64_t age(uint64_t now, uint64_t t)
{
	return t < now ? now - t : 0;
}

/* A region we were wrong about waits longer before it may go again. */
static bool protected_now(const struct pol_client *pc, uint32_t i, const struct thp_record *r,
			  uint64_t now, uint64_t window_ns)
{
	unsigned k = pc->mistakes[i];

	if (!k)
		return false;
	if (k - 1 > MISTAKE_SHIFT_MAX)
		k = MISTAKE_SHIFT_MAX + 1;
	return age(now, r->last_fault_ns) < window_ns << (k - 1);
}

/*
 * Was the restore noticed now a promotion?  restore_region stamps
 * last_fault_ns when it starts, and an eviction stamps evicted_ns; a region
 * restored and evicted again since the last walk has evicted_ns past its
 * restore, so the eviction before it is the one that walk saw.
 */
static uint64_t away(const struct pol_client *pc, uint32_t i, const struct thp_record *r)
{
	uint64_t ev = r->evicted_ns > r->last_fault_ns ? pc->seen_evicted[i] : r->evicted_ns;

	return ev && r->last_fault_ns >= ev ? r->last_fault_ns - ev + 1 : 0;
}

static bool promoted(const struct pol_client *pc, uint32_t i, const struct thp_record *r,
		     uint64_t window_ns)
{
	uint64_t a = away(pc, i, r);

	return a && a - 1 <= window_ns;
}

/*
 * A region seen for the first time that was already evicted and restored:
 * a client that evicts and touches again faster than the walks come (or an
 * arena adopted from a daemon before).  Its last restore is judged from the
 * record alone, and only if it is recent: how far back the record's history
 * goes is not known.  Returns how long it was away + 1, or 0.
 */
static uint64_t first_promoted(const struct thp_record *r, uint64_t now, uint64_t window_ns)
{
	if (!r->restores || !r->evicted_ns || r->last_fault_ns < r->evicted_ns ||
	    r->last_fault_ns - r->evicted_ns > window_ns || age(now, r->last_fault_ns) > window_ns)
		return 0;
	return r->last_fault_ns - r->evicted_ns + 1;
}

/*
 * A region we asked to evict that is resident, not restored, and faulted
 * after we asked was touched while it was being evicted: the agent moved it
 * back (or never got it out).  That is the same mistake, caught earlier.
 */
static bool cancelled(const struct thpd_session *s, const struct pol_client *pc, uint32_t i,
		      const struct thp_record *r)
{
	uint64_t asked = thpd_session_last_attempt(s, i);

	return asked && atomic_load_explicit(&r->state, memory_order_relaxed) == THP_ST_RESIDENT &&
		r->last_fault_ns >= asked && r->last_fault_ns > pc->walked_ns;
}

/*
 * What @s holds in RAM as far as its counters say: its RESIDENT regions but
 * those handed to the kernel's swap and not back yet (paged out, less the
 * marks the agent took off since).  Counters, not a walk: cheap, a moment
 * late, and a mark lost with its record (unmapped, the record reused
 * before the agent's scan saw it) stays counted: it errs towards evicting
 * less.
 */
static uint64_t resident_bytes(const struct thpd_session *s)
{
	uint64_t res = thpd_session_ctr(s, THP_C_RESIDENT);
	uint64_t out = thpd_session_ctr(s, THP_C_KSWAP_OUT);
	uint64_t back = thpd_session_ctr(s, THP_C_KSWAP_COLLAPSED) +
			thpd_session_ctr(s, THP_C_KSWAP_DROPPED);
	uint64_t marked = out > back ? out - back : 0;

	return (res > marked ? res - marked : 0) * THP_REGION_BYTES;
}

/* One walk of @s's records: count its promotions since the last walk, and
 * list the resident regions that may go, least recently faulted first. */
struct walk {
	struct cand *c;
	size_t n, cap;
	size_t cold;                  /* c[0..cold) are older than cold-age */
	uint32_t promos;
	/* The regions we were wrong about, longest away first: what a
	 * cgroup's limit takes when nothing else is left (see below). */
	struct cand *last;
	size_t nlast, caplast;
};

static int cand_add(struct cand **c, size_t *n, size_t *cap, uint64_t key, uint32_t idx)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct cand *nc = realloc(*c, ncap * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		*c = nc;
		*cap = ncap;
	}
	(*c)[(*n)++] = (struct cand){ .last_fault_ns = key, .idx = idx };
	return 0;
}

static int walk_session(const struct thpd *d, const struct thpd_session *s,
			struct pol_client *pc, uint64_t now, struct walk *w)
{
	uint64_t window_ns = (uint64_t)d->cfg.promotion_window_s * NS_PER_S;
	uint64_t cold_ns = (uint64_t)d->cfg.cold_age_s * NS_PER_S, gone;
	struct thpd_rec_iter it;
	struct thp_record r;
	uint32_t i;

	*w = (struct walk){ .c = NULL };
	thpd_rec_iter_init(&it, s, 0);
	while (thpd_rec_next(&it, &i, &r)) {
		if (i >= pc->nrec)
			break;
		if (r.addr != pc->seen_addr[i]) {
			pc->seen_addr[i] = r.addr;
			pc->seen_restores[i] = r.restores;
			pc->seen_evicted[i] = 0;
			pc->mistakes[i] = 0;
			if (window_ns && (gone = first_promoted(&r, now, window_ns))) {
				w->promos++;
				pc->mistakes[i] = 1;
				pc->away_ns[i] = gone;
			}
		} else if (window_ns && (r.restores != pc->seen_restores[i] ?
					 promoted(pc, i, &r, window_ns) : cancelled(s, pc, i, &r))) {
			w->promos++;
			if (pc->mistakes[i] < UINT8_MAX)
				pc->mistakes[i]++;
		}
		if (r.restores != pc->seen_restores[i] && (gone = away(pc, i, &r)))
			pc->away_ns[i] = gone;
		pc->seen_restores[i] = r.restores;
		pc->seen_evicted[i] = r.evicted_ns;

		/* A region in the kernel's swap (KSWAP) is out of RAM already,
		 * until it comes back and the agent drops the mark. */
		if (atomic_load_explicit(&r.state, memory_order_relaxed) != THP_ST_RESIDENT ||
		    (r.flags & (THP_RF_LEAVING | THP_RF_ARRIVING | THP_RF_PINNED | THP_RF_KSWAP)) ||
		    backing_off(s, i, &r, now))
			continue;
		if (protected_now(pc, i, &r, now, window_ns)) {
			if (cand_add(&w->last, &w->nlast, &w->caplast, UINT64_MAX - pc->away_ns[i], i))
				return -ENOMEM;
			continue;
		}
		/* Compressing it again costs the client as much as last time:
		 * the loop tries once per cold-age, not every retry. */
		if ((r.flags & THP_RF_INCOMPRESSIBLE) &&
		    age(now, thpd_session_last_attempt(s, i)) < cold_ns)
			continue;
		/* Written lately counts as touched: marked by the agent's
		 * write tracking (lib/track.c), or soft-dirty (coldness.c). */
		if (r.flags & (THP_RF_WRITTEN | THP_RF_WROTE))
			pc->written_ns[i] = now;
		if (cand_add(&w->c, &w->n, &w->cap,
			     pc->written_ns[i] > r.last_fault_ns ? pc->written_ns[i] : r.last_fault_ns, i))
			return -ENOMEM;
	}
	pc->walked_ns = now;
	pc->promotions += w->promos;
	pc->promos_new += w->promos;
	if (w->n > 1)
		qsort(w->c, w->n, sizeof(*w->c), cmp_cand);
	if (w->nlast > 1)
		qsort(w->last, w->nlast, sizeof(*w->last), cmp_cand);
	while (w->cold < w->n && age(now, w->c[w->cold].last_fault_ns) >= cold_ns)
		w->cold++;
	return 0;
}

static void walk_free(struct walk *w)
{
	free(w->c);
	free(w->last);
}

/* Ask @s to evict the first @n regions of @w: the candidates in order,
 * then the regions the policy was wrong about.  0 or -errno. */
static int evict_picked(struct thpd_session *s, const struct walk *w, uint64_t n, uint32_t reason)
{
	uint32_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	int r;

	if (!idx)
		return -ENOMEM;
	for (uint64_t k = 0; k < n; k++)
		idx[k] = k < w->n ? w->c[k].idx : w->last[k - w->n].idx;
	r = thpd_session_evict(s, reason, idx, (uint32_t)n, NULL, 0);
	free(idx);
	return r;
}

/* ---- the resident budget ---- */

/*
 * A client above --budget is brought back to 90 % of it, least recently
 * faulted regions first.  The daemon sees faults, not accesses: a hot
 * region that stays resident is never faulted again and ages like a cold
 * one.  Picked by age alone it went first and came straight back, and the
 * cold ones stayed.  So a region that came back within promotion-window of
 * its eviction is marked, and the budget leaves it alone for
 * promotion-window x 2^(k-1) after its last fault (k: times marked), even
 * if the budget is not held meanwhile.  Evicting it anyway would not hold
 * the budget either: it is back within the window, and each round trip
 * costs the client a restore.  (A cgroup's limit does take marked regions,
 * last: there the alternative is the OOM killer.)  Redis held at half its
 * memory under a load that touches every 2 MiB region several times a
 * second moved 50 regions a second each way and saved nothing; now it
 * saves nothing at its full speed, and says so.
 */
static void budget_client(struct thpd *d, struct thpd_session *s, uint64_t now)
{
	uint64_t budget = d->cfg.budget_bytes, target = budget - budget / 10;
	uint64_t resident = resident_bytes(s), need, n;
	struct pol_client *pc;
	struct walk w;
	int r;

	if (resident <= budget || thpd_session_busy(s))
		return;
	need = (resident - target + THP_REGION_BYTES - 1) / THP_REGION_BYTES;
	pc = client_get(d, s);
	r = pc ? walk_session(d, s, pc, now, &w) : -ENOMEM;
	if (r < 0) {
		if (pc)
			walk_free(&w);
		thpd_warn("pid %d: cannot pick regions to evict: out of memory",
			  (int)thpd_session_pid(s));
		return;
	}
	n = need < w.n ? need : w.n;
	if (n < need && w.nlast && !pc->budget_short)
		thpd_warn("pid %d: budget %llu MiB not held: %zu of its resident regions came back "
			  "within --promotion-window of their eviction and are left resident a while",
			  (int)thpd_session_pid(s), (unsigned long long)(budget >> 20), w.nlast);
	pc->budget_short = n < need && w.nlast;
	if (n) {
		thpd_info(d, "pid %d: resident %llu MiB over budget %llu MiB: evicting %llu regions",
			  (int)thpd_session_pid(s), (unsigned long long)(resident >> 20),
			  (unsigned long long)(budget >> 20), (unsigned long long)n);
		/* Busy sessions were skipped: nothing queued, so no -EBUSY. */
		r = evict_picked(s, &w, n, THP_EVICT_BUDGET);
		if (r < 0)
			thpd_warn("pid %d: cannot queue an eviction: %s", (int)thpd_session_pid(s),
				  strerror(-r));
	}
	walk_free(&w);
}

/* The exponentially weighted rate over the last minute, like PSI's avg60. */
static double ewma_minute(double rate, double sample, uint64_t dt_ns)
{
	double a = (double)dt_ns / (60.0 * NS_PER_S);

	return rate + (a < 1 ? a : 1) * (sample - rate);
}

/* A client's working set: the regions it has used, resident or evicted
 * (registered regions never touched are not in it). */
static uint64_t working_set(const struct thpd_session *s)
{
	return thpd_session_ctr(s, THP_C_RESIDENT) + thpd_session_ctr(s, THP_C_EVICTED_ZERO) +
	       thpd_session_ctr(s, THP_C_EVICTED_RAM);
}

static double per_minute(uint32_t n, uint64_t regions, uint64_t dt_ns)
{
	return regions ? (double)n / (double)regions * (60.0 * NS_PER_S) / (double)dt_ns : 0;
}

/* Regions to evict so that a cgroup above cgroup-high-pct of its limit
 * comes back 10 points under it; 0 if it is not above, or has no limit.
 * A region's stored bytes stay charged to the client (its agent writes
 * the arena), so one eviction frees 2 MiB less what the session's regions
 * have compressed to so far. */
static uint64_t limit_need(const struct thpd_config *cfg, const struct thpd_memcg *m,
			   const struct thpd_session *s)
{
	uint32_t low = cfg->cgroup_high_pct > 10 ? cfg->cgroup_high_pct - 10 : 0;
	uint64_t ram = thpd_session_ctr(s, THP_C_EVICTED_RAM);
	uint64_t kept = ram ? thpd_session_ctr(s, THP_C_STORED_BYTES) / ram : 0;
	uint64_t freed = kept < THP_REGION_BYTES * 7 / 8 ? THP_REGION_BYTES - kept :
		THP_REGION_BYTES / 8;
	uint64_t goal;

	if (m->limit == UINT64_MAX || m->usage == UINT64_MAX ||
	    m->usage <= m->limit / 100 * cfg->cgroup_high_pct)
		return 0;
	goal = m->limit / 100 * low;
	return (m->usage - goal + freed - 1) / freed;
}

static const char *limit_text(uint64_t limit, char *buf, size_t sz)
{
	if (limit == UINT64_MAX)
		return "no limit";
	snprintf(buf, sz, "%llu MiB", (unsigned long long)(limit >> 20));
	return buf;
}

/* Read the client's stall over the interval: its cgroup's, where the
 * cgroup has PSI, else the system's. */
static uint64_t client_stall(const struct thpd *d, struct pol_client *pc, pid_t pid,
			     uint64_t sys_stall, struct thpd_memcg *m, bool *from_cgroup)
{
	struct thpd_cgroup *cg = malloc(sizeof(*cg));
	uint64_t stall = sys_stall;

	*m = (struct thpd_memcg){ .usage = UINT64_MAX, .limit = UINT64_MAX };
	*from_cgroup = false;
	/* Looked up every interval: a process may move between cgroups. */
	if (!cg || thpd_cgroup_find(d->cfg.sysroot, pid, cg) < 0 || thpd_memcg_read(cg, m) < 0) {
		free(cg);
		pc->stall_valid = false;
		return stall;
	}
	free(cg);
	if (m->has_psi) {
		stall = pc->stall_valid && m->stall_us >= pc->stall_prev ? m->stall_us - pc->stall_prev : 0;
		pc->stall_valid = true;
		pc->stall_prev = m->stall_us;
		*from_cgroup = true;
	} else {
		pc->stall_valid = false;
	}
	return stall;
}

/* Stamp the resident regions of @s written since the last interval, where
 * soft-dirty is on and the kernel has it. */
static void cold_look(const struct thpd *d, const struct thpd_session *s, struct pol_client *pc,
		      uint64_t now)
{
	struct thpd_cold_region *reg = NULL;
	size_t n = 0, cap = 0;
	struct thpd_rec_iter it;
	struct thp_record r;
	bool *hot = NULL;
	uint32_t i;
	int ret = -ENOMEM;

	if (d->policy->cold == THPD_COLD_NONE || pc->cold_failed)
		return;
	thpd_rec_iter_init(&it, s, 0);
	while (thpd_rec_next(&it, &i, &r) && i < pc->nrec) {
		if (atomic_load_explicit(&r.state, memory_order_relaxed) != THP_ST_RESIDENT)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct thpd_cold_region *nr = realloc(reg, ncap * sizeof(*nr));

			if (!nr)
				goto out;
			reg = nr;
			cap = ncap;
		}
		reg[n++] = (struct thpd_cold_region){ .addr = r.addr, .idx = i };
	}
	hot = calloc(n ? n : 1, sizeof(*hot));
	if (!hot)
		goto out;
	ret = thpd_cold_scan(d->cfg.sysroot, thpd_session_pid(s), reg, n, hot);
	for (size_t k = 0; ret == 0 && k < n; k++)
		if (hot[k])
			pc->written_ns[reg[k].idx] = now;
out:
	if (ret < 0) {
		/* A client of another user needs CAP_DAC_OVERRIDE for its
		 * clear_refs: it keeps fault history only. */
		thpd_warn("pid %d: soft-dirty off for this client: %s",
			  (int)thpd_session_pid(s), strerror(-ret));
		pc->cold_failed = true;
	}
	free(hot);
	free(reg);
}

static void pressure_client(struct thpd *d, struct thpd_session *s, uint64_t now,
			    uint64_t dt_ns, uint64_t sys_stall, uint64_t *allowance,
			    uint32_t *all_promos, uint64_t *all_regions)
{
	const struct thpd_config *cfg = &d->cfg;
	uint32_t smin = step_min(cfg), promos;
	double target = cfg->promotion_target_mpct / 100000.0;
	uint64_t regions = working_set(s), need, n = 0, stall;
	struct pol_client *pc;
	struct thpd_memcg m;
	bool from_cg, calm;
	char limit[32];
	struct walk w;
	int r;

	pc = client_get(d, s);
	if (!pc) {
		thpd_warn("pid %d: pressure loop: out of memory", (int)thpd_session_pid(s));
		return;
	}
	cold_look(d, s, pc, now);
	r = walk_session(d, s, pc, now, &w);
	if (r < 0) {
		walk_free(&w);
		thpd_warn("pid %d: cannot pick regions to evict: out of memory",
			  (int)thpd_session_pid(s));
		return;
	}
	/* The budget's walks in between found some of them. */
	promos = pc->promos_new;
	pc->promos_new = 0;
	pc->promo_rate = ewma_minute(pc->promo_rate, per_minute(promos, regions, dt_ns), dt_ns);
	pc->working_set = regions;
	*all_promos += promos;
	*all_regions += regions;

	stall = client_stall(d, pc, thpd_session_pid(s), sys_stall, &m, &from_cg);
	pc->stall_us = stall;
	need = limit_need(cfg, &m, s);
	calm = stall <= cfg->pressure_target_us && pc->promo_rate <= target;
	if (thpd_session_busy(s)) {
		/* Promotions are counted even while EVICTs are in flight; only
		 * a new request waits for them to finish. */
		need = 0;
	} else if (need) {
		/* Over its cgroup's limit: what relieves it is eviction, so
		 * neither stall nor promotions hold it back.  Regions we were
		 * wrong about go last, those that stayed away longest first:
		 * without them the limit's OOM killer would end the client
		 * (with no access bits, a hot region that never faults again
		 * looks as old as a cold one; one restored at once after its
		 * eviction was hot, one that stayed away a long time less so). */
		n = need < w.n + w.nlast ? need : w.n + w.nlast;
	} else if (!calm) {
		if (pc->step > smin)
			pc->step = pc->step / 2 > smin ? pc->step / 2 : smin;
	} else if (*allowance) {
		n = pc->step < w.cold ? pc->step : w.cold;
		if (n > *allowance)
			n = *allowance;
		if (n == pc->step && pc->step < cfg->evict_step_max)
			pc->step = pc->step * 2 < cfg->evict_step_max ? pc->step * 2 : cfg->evict_step_max;
	}
	if (promos || n || !calm)
		thpd_info(d, "pid %d: stall %llu us (%s), promotions %u (%.3f %%/min of %llu regions), "
			  "cgroup %llu MiB of %s: %s %llu regions of %zu cold, step %u",
			  (int)thpd_session_pid(s), (unsigned long long)stall,
			  from_cg ? "cgroup" : "system", promos, pc->promo_rate * 100,
			  (unsigned long long)regions,
			  (unsigned long long)(m.usage == UINT64_MAX ? 0 : m.usage >> 20),
			  limit_text(m.limit, limit, sizeof(limit)),
			  need ? "over the cgroup's limit: evicting" : calm ? "evicting" : "backing off,",
			  (unsigned long long)n, w.cold, pc->step);
	if (n) {
		r = evict_picked(s, &w, n, THP_EVICT_PRESSURE);
		if (r < 0)
			thpd_warn("pid %d: cannot queue an eviction: %s", (int)thpd_session_pid(s),
				  strerror(-r));
		else if (!need)
			*allowance -= *allowance == UINT64_MAX ? 0 : n;
	}
	walk_free(&w);
}

static void pressure_tick(struct thpd *d, uint64_t now)
{
	struct thpd_policy *p = policy_get(d);
	uint64_t dt, sys_stall = 0, total = 0, allowance = UINT64_MAX, all_regions = 0;
	uint32_t all_promos = 0;
	double avg10 = 0;

	if (!p)
		return;
	if (p->last_ns && now - p->last_ns < (uint64_t)d->cfg.pressure_interval_ms * 1000000ull)
		return;
	if (!p->cold_probed) {
		uint64_t cats = 0;
		enum thpd_cold_signal sig = thpd_cold_probe(&cats);

		p->cold_probed = true;
		p->cold = d->cfg.soft_dirty ? sig : THPD_COLD_NONE;
		if (d->cfg.soft_dirty && p->cold == THPD_COLD_NONE)
			thpd_warn("soft-dirty: this kernel has no soft-dirty (PAGEMAP_SCAN categories "
				  "0x%llx): cold means not faulted", (unsigned long long)cats);
		if (cats & ~((uint64_t)PAGE_IS_GUARD * 2 - 1))
			thpd_info(d, "PAGEMAP_SCAN offers categories past PAGE_IS_GUARD (0x%llx): "
				  "read-access tracking, not used by this build", (unsigned long long)cats);
	}
	dt = p->last_ns ? now - p->last_ns : (uint64_t)d->cfg.pressure_interval_ms * 1000000ull;
	p->last_ns = now;
	if (thpd_psi_system(d->cfg.sysroot, &total, &avg10) == 0) {
		sys_stall = p->stall_valid && total >= p->stall_prev ? total - p->stall_prev : 0;
		p->stall_valid = true;
		p->stall_prev = total;
	} else {
		p->stall_valid = false;
	}
	p->sys_stall_us = sys_stall;
	if (d->cfg.resident_target_bytes) {
		uint64_t resident = 0;

		for (struct thpd_conn *c = d->conns; c; c = c->next)
			if (c->s && !c->closing)
				resident += resident_bytes(c->s);
		allowance = resident > d->cfg.resident_target_bytes ?
			(resident - d->cfg.resident_target_bytes) / THP_REGION_BYTES : 0;
	}

	for (struct thpd_conn *c = d->conns; c; c = c->next) {
		if (!c->s || c->closing)
			continue;
		pressure_client(d, c->s, now, dt, sys_stall, &allowance, &all_promos, &all_regions);
	}
	p->promotions += all_promos;
	p->promo_rate = ewma_minute(p->promo_rate, per_minute(all_promos, all_regions, dt), dt);
	if (all_promos)
		thpd_info(d, "promotions: %u this interval, %llu since start, %.3f %%/min of the "
			  "working set (system stall %llu us, avg10 %.2f)", all_promos,
			  (unsigned long long)p->promotions, p->promo_rate * 100,
			  (unsigned long long)sys_stall, avg10);
}

/* Forget the clients whose sessions are gone or closing. */
static void clients_prune(struct thpd *d)
{
	if (!d->policy)
		return;
	for (struct pol_client **pp = &d->policy->clients; *pp;) {
		struct pol_client *pc = *pp;
		bool alive = false;

		for (struct thpd_conn *c = d->conns; c && !alive; c = c->next)
			alive = c->s && !c->closing && thpd_session_id(c->s) == pc->session_id;
		if (alive) {
			pp = &pc->next;
		} else {
			*pp = pc->next;
			client_free(pc);
		}
	}
}

static void policy_tick_at(struct thpd *d, uint64_t now)
{
	/* A failed send closes a connection but frees nothing before the
	 * loop's close callbacks, so walking on is safe. */
	if (d->cfg.budget_bytes)
		for (struct thpd_conn *c = d->conns; c; c = c->next)
			if (c->s && !c->closing)
				budget_client(d, c->s, now);
	if (d->cfg.pressure)
		pressure_tick(d, now);
	clients_prune(d);
}

void thpd_policy_tick(struct thpd *d)
{
	policy_tick_at(d, thp_now_ns());
}

/* ---- what the loop shows (thpswapctl, POLICY_PAGE) ---- */

bool thpd_policy_client(const struct thpd *d, const struct thpd_session *s,
			struct thp_policy_info *out)
{
	const struct thpd_policy *p = d->policy;

	*out = (struct thp_policy_info){
		.session_id = thpd_session_id(s),
		.pid = thpd_session_pid(s),
	};
	if (!p)
		return false;
	for (const struct pol_client *pc = p->clients; pc; pc = pc->next) {
		if (pc->session_id != thpd_session_id(s))
			continue;
		out->step = pc->step;
		out->promotions = pc->promotions;
		out->promo_rate_ppb = (uint64_t)(pc->promo_rate * 1e9 + 0.5);
		out->working_set = pc->working_set;
		out->stall_us = pc->stall_us;
		return true;
	}
	return false;
}

uint64_t thpd_policy_sys_stall(const struct thpd *d)
{
	return d->policy ? d->policy->sys_stall_us : 0;
}
