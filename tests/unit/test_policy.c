/* SPDX-License-Identifier: MIT */
/*
 * The policy's decisions (daemon/policy.c: the budget and the pressure
 * loop), interval by interval on
 * a clock of the test's own: fake sessions (records the test writes as the
 * agent would), and PSI and cgroup files in a temporary sysroot.  The
 * session accessors policy.c calls are stubs here; the parsers are the real
 * daemon/pressure.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../daemon/policy.c"

#define S(x) ((uint64_t)(x) * NS_PER_S)
#define NREC 64
#define PID 4242
/* A clock far from 0, so that "long ago" is still positive. */
#define T0 S(100000)

/* ---- the session, as policy.c sees it through the accessors ---- */

struct thpd_session {
	uint64_t id;
	pid_t pid;
	bool busy;
	struct thp_record rec[NREC];
	uint64_t last_attempt[NREC];
	uint32_t evicted[4096];       /* indices asked for, over all calls */
	uint32_t nevicted;
	uint32_t reason;              /* of the last call */
};

uint32_t thpd_session_nrec(const struct thpd_session *s) { (void)s; return NREC; }
pid_t thpd_session_pid(const struct thpd_session *s) { return s->pid; }
uint64_t thpd_session_id(const struct thpd_session *s) { return s->id; }
bool thpd_session_busy(const struct thpd_session *s) { return s->busy; }

uint64_t thpd_session_last_attempt(const struct thpd_session *s, uint32_t i)
{
	return s->last_attempt[i];
}

uint64_t thpd_session_ctr(const struct thpd_session *s, enum thp_counter c)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < NREC; i++) {
		uint32_t st = atomic_load(&s->rec[i].state);

		if (st == THP_ST_FREE)
			continue;
		if (c == THP_C_REGIONS || (c == THP_C_RESIDENT && st == THP_ST_RESIDENT) ||
		    (c == THP_C_EVICTED_RAM && st == THP_ST_RAM))
			n++;
		if (c == THP_C_STORED_BYTES && st == THP_ST_RAM)
			n += s->rec[i].stored_len;
		/* Marked regions are paged out and not back yet. */
		if (c == THP_C_KSWAP_OUT && (s->rec[i].flags & THP_RF_KSWAP))
			n++;
	}
	return n;
}

void thpd_rec_iter_init(struct thpd_rec_iter *it, const struct thpd_session *s, uint32_t start)
{
	*it = (struct thpd_rec_iter){ .s = s, .i = start };
}

bool thpd_rec_next(struct thpd_rec_iter *it, uint32_t *idx, struct thp_record *out)
{
	while (it->i < NREC) {
		const struct thp_record *r = &it->s->rec[it->i];

		*idx = it->i++;
		if (atomic_load(&r->state) != THP_ST_FREE) {
			memcpy(out, r, sizeof(*out));
			return true;
		}
	}
	return false;
}

/* The agent takes every region it is asked for at once. */
static uint64_t clock_now = T0;

int thpd_session_evict(struct thpd_session *s, uint32_t reason, const uint32_t *idx,
		       uint32_t n, struct thpd_conn *owner, uint32_t owner_seq)
{
	(void)owner;
	(void)owner_seq;
	assert_true(reason == THP_EVICT_PRESSURE || reason == THP_EVICT_BUDGET);
	s->reason = reason;
	for (uint32_t k = 0; k < n; k++) {
		struct thp_record *r = &s->rec[idx[k]];

		assert_int_equal(atomic_load(&r->state), THP_ST_RESIDENT);
		atomic_store(&r->state, THP_ST_RAM);
		r->stored_len = 512 * 1024;
		r->evicted_ns = clock_now;
		r->evictions++;
		s->last_attempt[idx[k]] = clock_now;
		assert_true(s->nevicted < sizeof(s->evicted) / sizeof(s->evicted[0]));
		s->evicted[s->nevicted++] = idx[k];
	}
	return 0;
}

void thpd_info(const struct thpd *d, const char *fmt, ...)
{
	va_list ap;

	(void)d;
	if (!getenv("POLICY_VERBOSE"))
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void thpd_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the world: a daemon, one client, a sysroot ---- */

struct world {
	struct thpd d;
	struct thpd_conn c;
	struct thpd_session s;
	char root[64];
	uint64_t sys_total, cg_total;
};

static void put(struct world *w, const char *rel, const char *fmt, ...)
{
	char path[256], text[256];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", w->root, rel);
	for (char *p = path + strlen(w->root) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(path, 0755);
		*p = '/';
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void set_stall(struct world *w, uint64_t sys_us)
{
	w->sys_total = sys_us;
	put(w, "proc/pressure/memory",
	    "some avg10=0.00 avg60=0.00 avg300=0.00 total=%llu\n"
	    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", (unsigned long long)sys_us);
}

/* A v1 memory cgroup for the client (hybrid layout without v2 PSI). */
static void set_cgroup(struct world *w, uint64_t usage, const char *limit)
{
	put(w, "proc/4242/cgroup", "4:memory:/job\n0::/\n");
	put(w, "sys/fs/cgroup/memory/job/memory.usage_in_bytes", "%llu\n", (unsigned long long)usage);
	put(w, "sys/fs/cgroup/memory/job/memory.limit_in_bytes", "%s\n", limit);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	snprintf(w->root, sizeof(w->root), "/tmp/thpswap-policy-XXXXXX");
	assert_non_null(mkdtemp(w->root));
	w->d.cfg = (struct thpd_config){
		.pressure = true,
		.pressure_interval_ms = 1000,
		.pressure_target_us = 10000,
		.cold_age_s = 60,
		.promotion_window_s = 60,
		.promotion_target_mpct = 200,
		.evict_step = 4,
		.evict_step_max = 16,
		.cgroup_high_pct = 90,
	};
	snprintf(w->d.cfg.sysroot, sizeof(w->d.cfg.sysroot), "%s", w->root);
	w->c.s = &w->s;
	w->d.conns = &w->c;
	w->s.id = 1;
	w->s.pid = PID;
	set_stall(w, 1000);
	set_cgroup(w, 0, "9223372036854771712");
	clock_now = T0;
	*state = w;
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)type;
	(void)f;
	return remove(path);
}

static int teardown(void **state)
{
	struct world *w = *state;

	thpd_policy_free(&w->d);
	assert_int_equal(nftw(w->root, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(w);
	return 0;
}

/* Region i resident, last faulted @age seconds before T0. */
static void resident(struct world *w, uint32_t i, uint64_t age)
{
	struct thp_record *r = &w->s.rec[i];

	memset(r, 0, sizeof(*r));
	atomic_store(&r->state, THP_ST_RESIDENT);
	r->addr = 0x40000000ull + (uint64_t)i * THP_REGION_BYTES;
	r->last_fault_ns = T0 - S(age);
}

/* The agent restores region i at the current clock (a fault). */
static void restore(struct world *w, uint32_t i)
{
	struct thp_record *r = &w->s.rec[i];

	atomic_store(&r->state, THP_ST_RESIDENT);
	r->last_fault_ns = clock_now;
	r->restores++;
}

/* One interval later; returns how many regions it asked for. */
static uint32_t tick(struct world *w)
{
	uint32_t before = w->s.nevicted;

	clock_now += S(1);
	policy_tick_at(&w->d, clock_now);
	return w->s.nevicted - before;
}

static struct pol_client *pc_of(struct world *w)
{
	assert_non_null(w->d.policy);
	assert_non_null(w->d.policy->clients);
	return w->d.policy->clients;
}

/* ---- cases ---- */

/* Calm: the step doubles up to its maximum, coldest first, and regions
 * younger than cold-age stay. */
static void test_calm_growth(void **state)
{
	struct world *w = *state;

	for (uint32_t i = 0; i < 40; i++)
		resident(w, i, 1000 - i);      /* 0 is the coldest */
	for (uint32_t i = 40; i < 48; i++)
		resident(w, i, 10);            /* young: faulted 10 s ago */
	assert_int_equal(tick(w), 4);
	for (uint32_t k = 0; k < 4; k++)
		assert_int_equal(w->s.evicted[k], k);
	assert_int_equal(tick(w), 8);
	assert_int_equal(tick(w), 16);
	assert_int_equal(tick(w), 12);       /* what is left of the 40 cold ones */
	assert_int_equal(tick(w), 0);
	for (uint32_t k = 0; k < w->s.nevicted; k++)
		assert_true(w->s.evicted[k] < 40);
	assert_int_equal(pc_of(w)->step, 16);
	/* 51 s on, the young ones have aged past cold-age */
	clock_now += S(49);
	assert_int_equal(tick(w), 8);
}

/* Stall over target: nothing, and the step halves; calm again: evicting. */
static void test_stall_backs_off(void **state)
{
	struct world *w = *state;

	for (uint32_t i = 0; i < 60; i++)
		resident(w, i, 1000);
	assert_int_equal(tick(w), 4);
	assert_int_equal(tick(w), 8);
	set_stall(w, w->sys_total + 10001);
	assert_int_equal(tick(w), 0);
	assert_int_equal(pc_of(w)->step, 8);
	set_stall(w, w->sys_total + 10001);
	assert_int_equal(tick(w), 0);
	assert_int_equal(pc_of(w)->step, 4);
	assert_int_equal(tick(w), 0 + 4);    /* stall flat again */
	/* exactly the target is not over it */
	set_stall(w, w->sys_total + 10000);
	assert_int_equal(tick(w), 8);
}

/* A region restored within the window is a promotion: the rate goes over
 * target (back off), and that region is left alone for the window. */
static void test_promotion(void **state)
{
	struct world *w = *state;
	struct pol_client *pc;

	for (uint32_t i = 0; i < 50; i++)
		resident(w, i, 1000);
	assert_int_equal(tick(w), 4);        /* 0..3 */
	clock_now += S(5);
	restore(w, 0);                       /* 6 s after its eviction */
	assert_int_equal(tick(w), 0);
	pc = pc_of(w);
	assert_int_equal(pc->promotions, 1);
	assert_int_equal(pc->mistakes[0], 1);
	/* 1 of 50 regions in a 6 s interval is 20 %/min, weighted 6/60 */
	assert_true(pc->promo_rate > 0.019 && pc->promo_rate < 0.021);
	assert_int_equal(w->d.policy->promotions, 1);
	/* the same restore is not counted twice */
	assert_int_equal(tick(w), 0);
	assert_int_equal(pc->promotions, 1);
}

/* Evicted and back before the first walk saw the region: its record alone
 * says it was a mistake, if recent; an old one from before (an adopted
 * arena's history) is not counted. */
static void test_promotion_before_first_walk(void **state)
{
	struct world *w = *state;
	struct pol_client *pc;

	for (uint32_t i = 0; i < 3; i++)
		resident(w, i, 1000);
	w->s.rec[0].evicted_ns = clock_now - S(2);
	restore(w, 0);                       /* back 2 s after, just now */
	w->s.rec[1].evicted_ns = clock_now - S(500);
	w->s.rec[1].last_fault_ns = clock_now - S(499);
	w->s.rec[1].restores = 1;            /* back long ago */
	w->s.rec[2].evicted_ns = clock_now - S(100);
	restore(w, 2);                       /* away longer than the window */
	tick(w);
	pc = pc_of(w);
	assert_int_equal(pc->promotions, 1);
	assert_int_equal(pc->mistakes[0], 1);
	assert_int_equal(pc->mistakes[1], 0);
	assert_int_equal(pc->mistakes[2], 0);
	tick(w);                             /* not counted twice */
	assert_int_equal(pc->promotions, 1);
}

static void test_promoted_region_waits(void **state)
{
	struct world *w = *state;

	w->d.cfg.promotion_target_mpct = 100000;  /* the rate never stops it */
	w->d.cfg.evict_step = w->d.cfg.evict_step_max = 64;
	resident(w, 0, 1000);
	resident(w, 1, 1000);
	assert_int_equal(tick(w), 2);
	restore(w, 0);                       /* at once: a promotion */
	clock_now += S(61);
	/* its last fault 62 s ago: past cold-age and past one window */
	assert_int_equal(tick(w), 1);
	restore(w, 0);                       /* promoted again: now 2 windows */
	clock_now += S(61);
	assert_int_equal(tick(w), 0);        /* 62 s < 120 s */
	clock_now += S(60);
	assert_int_equal(tick(w), 1);
	assert_int_equal(pc_of(w)->mistakes[0], 2);
}

/* Faulted while being evicted, so never restored (the agent moved it back):
 * a mistake all the same, counted once. */
static void test_cancelled(void **state)
{
	struct world *w = *state;
	struct thp_record *r = &w->s.rec[0];

	w->d.cfg.promotion_target_mpct = 100000;
	resident(w, 0, 1000);
	resident(w, 1, 1000);
	assert_int_equal(tick(w), 2);
	atomic_store(&r->state, THP_ST_RESIDENT);
	r->last_fault_ns = clock_now + S(1) / 2;
	clock_now += S(1);
	tick(w);
	assert_int_equal(pc_of(w)->promotions, 1);
	assert_int_equal(pc_of(w)->mistakes[0], 1);
	tick(w);
	assert_int_equal(pc_of(w)->promotions, 1);
	/* a region merely faulted, never asked for, is no mistake */
	resident(w, 2, 0);
	assert_int_equal(tick(w), 0);
	w->s.rec[2].last_fault_ns = clock_now;
	tick(w);
	assert_int_equal(pc_of(w)->promotions, 1);
	assert_int_equal(w->s.nevicted, 2);
}

/* Restored long after its eviction: not a mistake.  Restored and evicted
 * again between two walks: judged by the eviction the first walk saw. */
static void test_late_restore_and_reevicted(void **state)
{
	struct world *w = *state;
	struct thp_record *r = &w->s.rec[0];

	w->d.cfg.promotion_target_mpct = 100000;
	resident(w, 0, 1000);
	assert_int_equal(tick(w), 1);
	clock_now += S(120);
	restore(w, 0);
	tick(w);
	assert_int_equal(pc_of(w)->promotions, 0);
	assert_int_equal(pc_of(w)->mistakes[0], 0);

	/* evicted by hand at t, restored at t + 2 s, evicted again at t + 3 s */
	atomic_store(&r->state, THP_ST_RAM);
	r->evicted_ns = clock_now;
	tick(w);
	clock_now += S(2);
	restore(w, 0);
	clock_now += S(1);
	atomic_store(&r->state, THP_ST_RAM);
	r->evicted_ns = clock_now;
	tick(w);
	assert_int_equal(pc_of(w)->promotions, 1);
}

/* Over the cgroup's high mark: evicted regardless of stall and age; the
 * number counts what stays charged as stored bytes. */
static void test_cgroup_limit(void **state)
{
	struct world *w = *state;

	for (uint32_t i = 0; i < 60; i++)
		resident(w, i, 1);           /* all young */
	set_stall(w, 0);
	tick(w);
	set_stall(w, 1000000);               /* stalling hard */
	/* 95 MiB of 100: over 90 %; the goal, 80 %, leaves 15 MiB to free
	 * at 2 MiB a region (nothing stored yet) */
	set_cgroup(w, 95ull << 20, "104857600");
	assert_int_equal(tick(w), 8);
	/* now 512 KiB stays stored per region: 1.5 MiB freed by each */
	set_stall(w, w->sys_total + 1000000);
	assert_int_equal(tick(w), 10);
	/* at the mark, not over it: the stall holds it back again */
	set_cgroup(w, 90ull << 20, "104857600");
	set_stall(w, w->sys_total + 1000000);
	assert_int_equal(tick(w), 0);
	/* no limit ("max" in v2 terms, the huge number in v1) */
	set_cgroup(w, 100ull << 20, "9223372036854771712");
	assert_int_equal(tick(w), 0);
}

/* Over the limit with every resident region one the loop was wrong about:
 * still evicted (or the limit's OOM killer ends the client), the one that
 * stayed away longest first. */
static void test_cgroup_limit_mistaken(void **state)
{
	struct world *w = *state;
	uint32_t n;

	w->d.cfg.evict_step = w->d.cfg.evict_step_max = 64;
	for (uint32_t i = 0; i < 3; i++)
		resident(w, i, 1000);
	set_stall(w, 0);
	assert_int_equal(tick(w), 3);
	restore(w, 0);                       /* at once: hot */
	clock_now += S(10);
	restore(w, 1);                       /* 10 s away */
	clock_now += S(20);
	restore(w, 2);                       /* 30 s away */
	assert_int_equal(tick(w), 0);        /* three promotions: all protected */
	assert_int_equal(pc_of(w)->promotions, 3);
	set_cgroup(w, 95ull << 20, "104857600");
	n = tick(w);
	assert_int_equal(n, 3);
	assert_int_equal(w->s.evicted[w->s.nevicted - 3], 2);
	assert_int_equal(w->s.evicted[w->s.nevicted - 2], 1);
	assert_int_equal(w->s.evicted[w->s.nevicted - 1], 0);
}

/* All clients together stop at resident-target. */
static void test_resident_target(void **state)
{
	struct world *w = *state;

	w->d.cfg.evict_step = w->d.cfg.evict_step_max = 64;
	w->d.cfg.resident_target_bytes = 10 * THP_REGION_BYTES;
	for (uint32_t i = 0; i < 16; i++)
		resident(w, i, 1000);
	assert_int_equal(tick(w), 6);
	assert_int_equal(tick(w), 0);
}

/* Busy: walked (promotions counted), not asked; gone: forgotten. */
static void test_busy_and_gone(void **state)
{
	struct world *w = *state;

	w->d.cfg.promotion_target_mpct = 100000;
	for (uint32_t i = 0; i < 8; i++)
		resident(w, i, 1000);
	assert_int_equal(tick(w), 4);
	w->s.busy = true;
	restore(w, 0);
	assert_int_equal(tick(w), 0);
	assert_int_equal(pc_of(w)->promotions, 1);
	w->s.busy = false;
	assert_int_equal(tick(w), 4);        /* 4..7; 0 is young (and promoted) */
	w->c.closing = true;
	tick(w);
	assert_null(w->d.policy->clients);
}

/* An incompressible region is tried again after cold-age, not after the
 * 10 s every other refusal waits. */
static void test_incompressible_waits(void **state)
{
	struct world *w = *state;
	struct thp_record *r = &w->s.rec[0];

	resident(w, 0, 1000);
	assert_int_equal(tick(w), 1);
	/* the agent found it not worth it and left it resident */
	atomic_store(&r->state, THP_ST_RESIDENT);
	r->flags |= THP_RF_INCOMPRESSIBLE;
	clock_now += S(20);
	assert_int_equal(tick(w), 0);
	clock_now += S(39);
	assert_int_equal(tick(w), 1);
}

/* write tracking: a region the agent marked written (WRITTEN, or WROTE in
 * the interval before) is as young as the look that saw the mark; once the
 * marks are gone, cold-age after that look it goes too. */
static void test_written_marks(void **state)
{
	struct world *w = *state;

	for (uint32_t i = 0; i < 8; i++)
		resident(w, i, 1000);
	w->s.rec[1].flags |= THP_RF_WRITTEN;
	w->s.rec[2].flags |= THP_RF_WROTE;
	assert_int_equal(tick(w), 4);
	assert_int_equal(tick(w), 2);
	for (uint32_t k = 0; k < w->s.nevicted; k++)
		assert_true(w->s.evicted[k] != 1 && w->s.evicted[k] != 2);
	/* The agent moved WRITTEN on and the next interval cleared it. */
	w->s.rec[1].flags &= ~THP_RF_WRITTEN;
	w->s.rec[2].flags &= ~THP_RF_WROTE;
	clock_now += S(30);
	assert_int_equal(tick(w), 0);
	clock_now += S(30);
	assert_int_equal(tick(w), 2);
}

/* soft-dirty: a region written since the last interval is as young as a
 * faulted one; a client that cannot be looked at goes by faults. */
static void test_written(void **state)
{
	struct world *w = *state;
	struct pol_client *pc;
	struct stat st;
	char path[256];

	w->d.cfg.soft_dirty = true;
	for (uint32_t i = 0; i < 12; i++)
		resident(w, i, 1000);
	/* No /proc/4242/pagemap in the sysroot: where the kernel has
	 * soft-dirty the look fails and is not tried again; the walk goes on. */
	assert_int_equal(tick(w), 4);
	pc = pc_of(w);
	assert_int_equal(pc->cold_failed, w->d.policy->cold != THPD_COLD_NONE);
	for (uint32_t k = 0; k < 4; k++)
		assert_int_equal(w->s.evicted[k], k);

	/* 4..7 seen written this interval: young, so only 8..11 go. */
	for (uint32_t i = 4; i < 8; i++)
		pc->written_ns[i] = clock_now;
	assert_int_equal(tick(w), 4);
	for (uint32_t k = 4; k < 8; k++)
		assert_int_equal(w->s.evicted[k], k + 4);

	/* A pagemap that is not /proc's: the look fails, nothing re-armed. */
	w->d.policy->cold = THPD_COLD_SOFT_DIRTY;
	pc->cold_failed = false;
	put(w, "proc/4242/pagemap", "");
	put(w, "proc/4242/clear_refs", "");
	assert_int_equal(tick(w), 0);
	assert_true(pc->cold_failed);
	snprintf(path, sizeof(path), "%s/proc/4242/clear_refs", w->root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);

	/* cold-age after the write, they go too */
	clock_now += S(60);
	assert_int_equal(tick(w), 4);
}

/* pressure = no: the loop does nothing (the budget alone decides). */
static void test_off(void **state)
{
	struct world *w = *state;

	w->d.cfg.pressure = false;
	for (uint32_t i = 0; i < 8; i++)
		resident(w, i, 1000);
	thpd_policy_tick(&w->d);
	assert_int_equal(w->s.nevicted, 0);
	assert_null(w->d.policy);
}

/* The budget alone (pressure = no): above it, back to 90 % of it, least
 * recently faulted first; at or under it, nothing. */
static void test_budget(void **state)
{
	struct world *w = *state;

	w->d.cfg.pressure = false;
	w->d.cfg.budget_bytes = 20 * THP_REGION_BYTES;
	for (uint32_t i = 0; i < 20; i++)
		resident(w, i, 100 - i);      /* 0 is the oldest */
	assert_int_equal(tick(w), 0);
	for (uint32_t i = 20; i < 24; i++)
		resident(w, i, 1);
	/* 24 regions, 48 MiB; 90 % of 40 MiB is 36: 6 go */
	assert_int_equal(tick(w), 6);
	assert_int_equal(w->s.reason, THP_EVICT_BUDGET);
	for (uint32_t k = 0; k < 6; k++)
		assert_int_equal(w->s.evicted[k], k);
	assert_int_equal(tick(w), 0);
}

/* Regions in the kernel's swap (marked KSWAP, still RESIDENT) are not in
 * RAM: the budget does not count them, and never picks them. */
static void test_budget_kswap(void **state)
{
	struct world *w = *state;

	w->d.cfg.pressure = false;
	w->d.cfg.budget_bytes = 20 * THP_REGION_BYTES;
	for (uint32_t i = 0; i < 24; i++)
		resident(w, i, 100 - i);      /* 0 is the oldest */
	for (uint32_t i = 0; i < 6; i++)
		w->s.rec[i].flags |= THP_RF_KSWAP;
	/* 18 in RAM, 36 MiB: under the budget */
	assert_int_equal(tick(w), 0);
	for (uint32_t i = 24; i < 28; i++)
		resident(w, i, 1);
	/* 22 in RAM, 44 MiB; 90 % of 40 MiB is 36: 4 go, the oldest not marked */
	assert_int_equal(tick(w), 4);
	for (uint32_t k = 0; k < 4; k++)
		assert_int_equal(w->s.evicted[k], 6 + k);
}

/*
 * The budget and a hot region that stays resident: never faulted again, it
 * looks older than the cold ones.  It goes once; back at once, it is
 * marked, and the next evictions take the cold regions, even those faulted
 * after it, while its mark lasts; with nothing else left, none.
 */
static void test_budget_mistakes(void **state)
{
	struct world *w = *state;

	w->d.cfg.pressure = false;
	w->d.cfg.budget_bytes = 10 * THP_REGION_BYTES;
	resident(w, 0, 1000);                /* hot, faulted once long ago */
	for (uint32_t i = 1; i < 11; i++)
		resident(w, i, 10);           /* cold, faulted 10 s ago */
	/* 11 regions, 22 MiB over 20; back to 18: 2 go, the hot one first */
	assert_int_equal(tick(w), 2);
	assert_int_equal(w->s.evicted[0], 0);
	assert_int_equal(w->s.evicted[1], 1);
	restore(w, 0);                       /* touched at once */
	resident(w, 11, 0);
	/* 0, 2..11 resident: 22 MiB again; 0 is marked, 2 and 3 go */
	assert_int_equal(tick(w), 2);
	assert_int_equal(pc_of(w)->mistakes[0], 1);
	assert_int_equal(pc_of(w)->promotions, 1);
	assert_int_equal(w->s.evicted[2], 2);
	assert_int_equal(w->s.evicted[3], 3);
	/* the cold ones faulted after region 0's restore, 30 s later: 0 is
	 * the least recently faulted, and still left for them */
	for (uint32_t i = 4; i < 12; i++)
		w->s.rec[i].last_fault_ns = clock_now;
	clock_now += S(30);
	resident(w, 12, 0);
	resident(w, 13, 0);
	for (uint32_t i = 12; i < 14; i++)
		w->s.rec[i].last_fault_ns = clock_now;
	assert_int_equal(tick(w), 2);
	assert_int_equal(w->s.evicted[4], 4);
	assert_int_equal(w->s.evicted[5], 5);
	/* the budget's walks counted the promotion; the pressure loop (off
	 * here) would take it from promos_new */
	assert_int_equal(pc_of(w)->promos_new, 1);
	assert_false(pc_of(w)->budget_short);
	/* everything else gone: 0 and the new 14 over the budget of... one
	 * region; 0 is marked, so only 14 goes, and the budget is short */
	w->d.cfg.budget_bytes = THP_REGION_BYTES;
	for (uint32_t i = 1; i < 14; i++)
		if (atomic_load(&w->s.rec[i].state) == THP_ST_RESIDENT)
			atomic_store(&w->s.rec[i].state, THP_ST_RAM);
	resident(w, 14, 0);
	w->s.rec[14].last_fault_ns = clock_now;
	assert_int_equal(tick(w), 1);
	assert_int_equal(w->s.evicted[6], 14);
	assert_true(pc_of(w)->budget_short);
	assert_int_equal(tick(w), 0);
	/* its mark lasts a window after its last fault: then it goes, the
	 * older of the two over the budget */
	clock_now += S(60);
	resident(w, 15, 0);
	w->s.rec[15].last_fault_ns = clock_now;
	assert_int_equal(tick(w), 2);
	assert_int_equal(w->s.evicted[7], 0);
	assert_int_equal(w->s.evicted[8], 15);
	assert_false(pc_of(w)->budget_short);
}

/* promotion-window 0: nothing is a mistake; the budget takes the region
 * that came straight back as it took it the first time. */
static void test_window_zero(void **state)
{
	struct world *w = *state;

	w->d.cfg.pressure = false;
	w->d.cfg.promotion_window_s = 0;
	w->d.cfg.budget_bytes = 2 * THP_REGION_BYTES;
	resident(w, 0, 1000);
	resident(w, 1, 10);
	resident(w, 2, 10);
	assert_int_equal(tick(w), 2);
	clock_now += S(1) / 2;
	restore(w, 0);
	restore(w, 1);
	assert_int_equal(tick(w), 2);
	assert_int_equal(w->s.evicted[2], 2);     /* faulted least recently */
	assert_int_equal(w->s.evicted[3], 0);
	assert_int_equal(pc_of(w)->promotions, 0);
	assert_int_equal(pc_of(w)->mistakes[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_calm_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promotion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promoted_region_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_late_restore_and_reevicted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cgroup_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resident_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incompressible_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cgroup_limit_mistaken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_mistakes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promotion_before_first_walk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_kswap, setup, teardown),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
