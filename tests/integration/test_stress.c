/* SPDX-License-Identifier: MIT */
/*
 * Stress, in the spirit of the kernel's uffd-stress: worker threads do
 * random reads, writes, evictions (advice, prefetch, and the daemon's
 * "evict --all" from another thread), MADV_DONTNEED/FREE/PAGEOUT, mremap
 * and fork with a fixed seed, against a shadow copy, for a bounded time.
 *
 * The shadow is exact under concurrency because every worker owns its
 * regions: only the owner writes, zaps or moves them (evictions and
 * prefetches by anyone keep the bytes).  A worker that forks is not
 * touching its regions meanwhile, so its child verifies exactly them
 * against the shadow as it was at the fork.  The first differing byte
 * fails the test with the seed, the page, what was there instead and the
 * worker's recent operations.  Advice is checked against the arena's
 * records: after COLD a region is not resident, and WILLNEED brings back
 * every region that was evicted.  At the end, each kind of activity must
 * reach a floor (a tenth of a healthy run), or the run proved nothing.
 *
 *   itest-stress [--seed N] [--seconds S] [--swap]
 *                   (or $THPSWAP_STRESS_SEED, $THPSWAP_STRESS_SECONDS,
 *                    $THPSWAP_STRESS_SWAP=1)
 * --swap runs it with a zram swap device of its own (removed at the end),
 * so that MADV_PAGEOUT and reclaim put managed pages in the kernel's swap,
 * where evictions, restores, moves and forks meet swap entries.
 * $THPSWAP_STRESS_SKIP=fork,mremap,... leaves operations out (to bisect a
 * failure; the names are those of the summary line, and "daemon" for the
 * thread that runs thpswapctl evict --all).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE
#define NPG (R / P)
#define WORKERS 4
#define REGS 6		/* per worker */
#define HIST 1024	/* operations kept per worker */
#define RECENT 24	/* of them, printed whatever they touched */

struct region {
	char *addr;
	bool odd;			/* moved off 2 MiB alignment: renew soon */
	uint64_t pg0;			/* page numbers: fixed, move with the data */
	uint32_t gen[NPG];		/* shadow; | H_OR_ZERO after MADV_FREE */
};

struct worker {
	unsigned id;
	pthread_t th;
	uint64_t rng;
	struct region reg[REGS];
	unsigned long n[16];		/* per operation */
	char hist[HIST][96];
	unsigned nhist;
	uint64_t last_fork_ns;
};

enum op { OP_READ, OP_READ_ALL, OP_WRITE, OP_EVICT, OP_WILLNEED, OP_DONTNEED, OP_FREE,
	  OP_PAGEOUT, OP_MREMAP, OP_MREMAP_ODD, OP_RENEW, OP_FORK, OP__N };
static const char *const op_names[OP__N] = {
	"read", "read-all", "write", "evict", "willneed", "dontneed", "free", "pageout", "mremap",
	"mremap-misaligned", "renew", "fork",
};

static struct {
	struct thpswap_session *s;
	const struct h_daemon *d;
	uint64_t seed;
	uint64_t end_ns;
	atomic_bool stop;
	atomic_uint gen;
	atomic_ulong ops;
	pthread_mutex_t lock;		/* failure reports; the daemon thread's pacing */
	pthread_cond_t more;
	unsigned long daemon_ticks, daemon_evicts;
	atomic_ulong evicted;		/* regions the workers' advice evicted */
	atomic_ulong prefetched;	/* regions the workers' WILLNEED restored */
	bool skip[OP__N];		/* $THPSWAP_STRESS_SKIP: ops left out */
	int arena;			/* the session's arena memfd */
	struct worker *all;		/* the workers, for failure reports */
} g;

static uint64_t rnd(struct worker *w)
{
	/* xorshift64*: reproducible per (seed, worker). */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

static unsigned below(struct worker *w, unsigned n)
{
	return (unsigned)(rnd(w) % n);
}

static uint32_t new_gen(void)
{
	uint32_t g1;

	do
		g1 = atomic_fetch_add(&g.gen, 1) & 0xffffff;
	while (!g1);
	return g1;
}

static void note(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	char *h = w->hist[w->nhist++ % HIST];

	va_start(ap, fmt);
	vsnprintf(h, sizeof(w->hist[0]), fmt, ap);
	va_end(ap);
	h_at("worker %u: %s", w->id, h);
}

/* Report with write(2) only: also used in forked children. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char m[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	if (n > 0 && write(2, m, (size_t)n < sizeof(m) ? (size_t)n : sizeof(m) - 1) < 0) {
		/* nowhere else to say it */
	}
}

/* The worker's last RECENT operations, and before them the older ones that
 * name region @ri (when it was zapped, moved or renewed may be far back). */
static void say_history(const struct worker *w, unsigned ri)
{
	unsigned first = w->nhist > HIST ? w->nhist - HIST : 0;
	unsigned recent = w->nhist > RECENT ? w->nhist - RECENT : 0;
	char name[32];
	size_t len = (size_t)snprintf(name, sizeof(name), "region %u", ri);

	say("  (older operations on region %u, back to operation %u:)\n", ri, first);
	for (unsigned k = first; k < recent; k++) {
		const char *h = w->hist[k % HIST], *at = strstr(h, name);

		if (at && (at[len] == ' ' || at[len] == 0))
			say("  #%u %s\n", k, h);
	}
	say("  (the last %u operations:)\n", w->nhist - recent);
	for (unsigned k = recent; k < w->nhist; k++)
		say("  #%u %s\n", k, w->hist[k % HIST]);
}

/* Regions of other workers that were moved or mapped where @addr's region
 * lies (their 2 MiB overlapping it) in their recent operations: a late
 * event of theirs is the first suspect for damage nobody here did.  Their
 * histories are read while they run: a report, not a verdict. */
static void say_neighbours(const struct worker *self, const char *addr)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;

	say("  (other workers' regions moved or mapped overlapping %p:)\n", (void *)addr);
	for (unsigned i = 0; i < WORKERS; i++) {
		const struct worker *o = &g.all[i];
		unsigned n = o->nhist, first = n > HIST ? n - HIST : 0;

		if (o == self)
			continue;
		for (unsigned k = first; k < n; k++) {
			const char *h = o->hist[k % HIST];
			void *x = NULL, *y = NULL;
			unsigned ri;

			if (sscanf(h, "mremap region %u %p -> %p", &ri, &x, &y) != 3 &&
			    sscanf(h, "renew region %u %p", &ri, &x) != 2)
				continue;
			if (((uint64_t)(uintptr_t)x + R > a && (uint64_t)(uintptr_t)x < a + R) ||
			    (y && (uint64_t)(uintptr_t)y + R > a && (uint64_t)(uintptr_t)y < a + R))
				say("  worker %u #%u %s\n", o->id, k, h);
		}
	}
}

/* End the test from a worker, g.lock held: counters from the arena only
 * (no helper process while other threads fault and fork), then _exit. */
static void die(void) __attribute__((noreturn));
static void die(void)
{
	h_report(g.s, NULL, "counters at failure");
	fflush(NULL);
	_exit(H_FAIL);
}

/* Check pages [p0, p1) of region @ri against the shadow; 0 or -1 (after
 * reporting).  Safe in a forked child. */
static int verify(struct worker *w, unsigned ri, unsigned p0, unsigned p1, bool child)
{
	struct region *rg = &w->reg[ri];

	for (unsigned p = p0; p < p1; p++) {
		const char *page = rg->addr + (size_t)p * P;
		uint32_t want = rg->gen[p];
		long off = h_page_check(page, rg->pg0 + p, want & ~H_OR_ZERO);
		char found[96];

		unsigned q = p + 1;
		char last[96];

		if (off < 0 || ((want & H_OR_ZERO) && h_page_check(page, 0, 0) < 0))
			continue;
		/* How far the damage goes (a 512 KiB frame? a page?). */
		while (q < NPG && h_page_check(rg->addr + (size_t)q * P, rg->pg0 + q,
					       rg->gen[q] & ~H_OR_ZERO) >= 0 &&
		       !((rg->gen[q] & H_OR_ZERO) && h_page_check(rg->addr + (size_t)q * P, 0, 0) < 0))
			q++;
		say("\nSTRESS FAILURE (seed %llu)%s: worker %u region %u (%p) page %u byte %ld: want %s"
		    "page %llu gen %u, found %s; pages %u..%u differ (the last holds %s)\n"
		    "last operations of worker %u, oldest first:\n",
		    (unsigned long long)g.seed, child ? " in a forked child" : "", w->id, ri,
		    (void *)rg->addr, p, off, want & H_OR_ZERO ? "zeros or " : "",
		    (unsigned long long)(rg->pg0 + p), want & ~H_OR_ZERO,
		    h_page_what(page, found, sizeof(found)), p, q - 1,
		    h_page_what(rg->addr + (size_t)(q - 1) * P, last, sizeof(last)), w->id);
		say_history(w, ri);
		return -1;
	}
	return 0;
}

static void verify_or_die(struct worker *w, unsigned ri, unsigned p0, unsigned p1)
{
	char line[320];

	if (verify(w, ri, p0, p1, false) == 0)
		return;
	pthread_mutex_lock(&g.lock); /* one report; the others stop here */
	h_region_describe(g.arena, w->reg[ri].addr, line, sizeof(line));
	say("after the read: %s\n", line);
	say_neighbours(w, w->reg[ri].addr);
	say("rerun with: itest-stress --seed %llu\n", (unsigned long long)g.seed);
	die();
}

/* A region that advice did not act on as it must: report (with how the
 * session's eviction counters moved during the call, @h0 to @h1, when
 * given) and end. */
static void advice_failed(struct worker *w, unsigned ri, const char *what, int n,
			  const struct thp_arena_header *h0, const struct thp_arena_header *h1)
{
	static const struct { unsigned c; const char *name; } ctr[] = {
		{ THP_C_EVICTIONS, "evictions" }, { THP_C_EVICT_CANCELLED, "cancelled" },
		{ THP_C_EVICT_REFUSED, "refused" }, { THP_C_EVICT_ZAP_PENDING, "zap_pending" },
		{ THP_C_EVICT_BUSY, "busy" }, { THP_C_EVICT_SPLIT, "split" },
		{ THP_C_EVICT_FILLED, "filled" }, { THP_C_EVICT_INCOMPRESSIBLE, "incompressible" },
	};
	char line[320];

	h_region_describe(g.arena, w->reg[ri].addr, line, sizeof(line));
	pthread_mutex_lock(&g.lock);
	say("\nSTRESS FAILURE (seed %llu): worker %u region %u: %s (thpswap_advise returned %d); "
	    "now %s\n", (unsigned long long)g.seed, w->id, ri, what, n, line);
	if (h0 && h1) {
		say("the session's counters during the call:");
		for (size_t k = 0; k < sizeof(ctr) / sizeof(ctr[0]); k++)
			say(" %s +%llu", ctr[k].name,
			    (unsigned long long)(h1->ctr[ctr[k].c] - h0->ctr[ctr[k].c]));
		say("\n");
	}
	say("last operations of worker %u, oldest first:\n", w->id);
	say_history(w, ri);
	h_evict_reasons(g.arena, "stress");
	say("rerun with: itest-stress --seed %llu\n", (unsigned long long)g.seed);
	die();
}

/* Did a skip counter that other threads can make move between @a and @b? */
static bool transient_skip(const struct thp_arena_header *a, const struct thp_arena_header *b)
{
	/* cancelled: a page fault message read late (its faulter was served
	 * long ago; the kernel does not say so) cancels an eviction it meets. */
	static const unsigned c[] = { THP_C_EVICT_REFUSED, THP_C_EVICT_BUSY, THP_C_EVICT_SPLIT,
				      THP_C_EVICT_ZAP_PENDING, THP_C_EVICT_CANCELLED };

	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++)
		if (b->ctr[c[k]] != a->ctr[c[k]])
			return true;
	return false;
}

/* The record of one of our regions (only its owner faults it in). */
static uint32_t region_state(struct worker *w, unsigned ri)
{
	struct h_region_view v;

	h_arena_view(g.arena, w->reg[ri].addr, 1, &v);
	return v.nrec ? v.state : THP_ST_FREE;
}

/* A random page range inside a region: [*p0, *p1). */
static void pick_range(struct worker *w, unsigned *p0, unsigned *p1)
{
	switch (below(w, 4)) {
	case 0:
		*p0 = 0;
		*p1 = NPG; /* whole region */
		break;
	case 1:
		*p0 = below(w, NPG);
		*p1 = *p0 + 1;
		break;
	default:
		*p0 = below(w, NPG);
		*p1 = *p0 + 1 + below(w, NPG - *p0 < 64 ? NPG - *p0 : 64);
		break;
	}
}

static void do_fork(struct worker *w)
{
	pid_t pid;
	int st;

	note(w, "fork");
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(60);
		for (unsigned ri = 0; ri < REGS; ri++)
			if (verify(w, ri, 0, NPG, true))
				_exit(H_FAIL);
		_exit(0);
	}
	h_track(pid);
	st = h_wait(pid);
	if (st) {
		pthread_mutex_lock(&g.lock);
		say("STRESS FAILURE (seed %llu): worker %u's forked child exited %d (report above)\n",
		    (unsigned long long)g.seed, w->id, st);
		/* Lost in us too, or only in the child's copy? */
		for (unsigned ri = 0; ri < REGS; ri++) {
			char line[320];

			h_region_describe(g.arena, w->reg[ri].addr, line, sizeof(line));
			say("the parent's region %u now: %s\n", ri, line);
			if (verify(w, ri, 0, NPG, false) == 0)
				say("the parent's region %u reads right\n", ri);
		}
		die();
	}
	w->last_fork_ns = thp_now_ns();
}

static void do_mremap(struct worker *w, unsigned ri, bool misaligned)
{
	struct region *rg = &w->reg[ri];
	void *to = h_reserve(R, misaligned ? P * (1 + below(w, NPG - 1)) : 0), *p;

	note(w, "mremap region %u %p -> %p", ri, (void *)rg->addr, to);
	p = mremap(rg->addr, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	H_CHECK(p == to, "mremap(%p -> %p): %s", (void *)rg->addr, to, strerror(errno));
	rg->addr = p;
}

/* munmap(2) a region and thpswap_map a new one in its place (often at the
 * same address), written afresh: what an allocator does. */
static void do_renew(struct worker *w, unsigned ri)
{
	struct region *rg = &w->reg[ri];
	void *p;
	int r;

	note(w, "renew region %u %p", ri, (void *)rg->addr);
	H_CHECK(munmap(rg->addr, R) == 0, "munmap: %s", strerror(errno));
	r = thpswap_map(g.s, R, &p);
	if (r) {
		pthread_mutex_lock(&g.lock);
		say("STRESS FAILURE (seed %llu): worker %u: thpswap_map right after munmap of %p: %s\n",
		    (unsigned long long)g.seed, w->id, (void *)rg->addr, strerror(-r));
		die();
	}
	rg->addr = p;
	rg->odd = false;
	for (unsigned k = 0; k < NPG; k++) {
		rg->gen[k] = new_gen();
		h_page_fill(rg->addr + (size_t)k * P, rg->pg0 + k, rg->gen[k]);
	}
}

static void step(struct worker *w)
{
	unsigned ri = below(w, REGS), p0, p1, x = below(w, 100);
	struct region *rg = &w->reg[ri];
	enum op op;
	uint32_t gen;

	op = x < 26 ? OP_READ : x < 30 ? OP_READ_ALL : x < 54 ? OP_WRITE : x < 66 ? OP_EVICT :
	     x < 70 ? OP_WILLNEED : x < 78 ? OP_DONTNEED : x < 82 ? OP_FREE : x < 84 ? OP_PAGEOUT :
	     x < 89 ? OP_MREMAP : x < 90 ? OP_RENEW : x < 92 ? OP_FORK : OP_READ;
	/* Rare: a misaligned move leaves the region unmanageable (no PMD
	 * fits); such a region is renewed soon after. */
	if (op == OP_MREMAP && below(w, 50) == 0)
		op = OP_MREMAP_ODD;
	if (rg->odd && below(w, 20) == 0)
		op = OP_RENEW;
	if (op == OP_FORK && thp_now_ns() - w->last_fork_ns < 1500000000ull)
		op = OP_READ_ALL; /* a fork per worker per 1.5 s at most */
	if (g.skip[op])
		op = OP_READ;
	w->n[op]++;
	switch (op) {
	case OP_READ:
		pick_range(w, &p0, &p1);
		note(w, "read region %u pages %u..%u", ri, p0, p1);
		verify_or_die(w, ri, p0, p1);
		break;
	case OP_READ_ALL:
		note(w, "read region %u", ri);
		verify_or_die(w, ri, 0, NPG);
		break;
	case OP_WRITE:
		pick_range(w, &p0, &p1);
		gen = new_gen();
		note(w, "write region %u pages %u..%u gen %u", ri, p0, p1, gen);
		for (unsigned p = p0; p < p1; p++) {
			h_page_fill(rg->addr + (size_t)p * P, rg->pg0 + p, gen);
			rg->gen[p] = gen;
		}
		break;
	case OP_EVICT: {
		struct thp_arena_header h0 = h_arena_header(g.arena), h1;
		int n;
		uint32_t st;

		note(w, "evict region %u", ri);
		n = thpswap_advise(g.s, rg->addr, R, THPSWAP_ADVICE_COLD);
		if (n == 1)
			atomic_fetch_add(&g.evicted, 1);
		/* Nobody else faults our regions in: afterwards the region is
		 * stored, empty, or being evicted by the daemon's evict --all.
		 * A misaligned one is not managed any more.  Else the skip
		 * must have been counted, for a reason another thread can
		 * cause (a fork child sharing the pages, a fork being handled,
		 * no THP to be had), or a zap that may still land: userspace
		 * cannot tell a MADV_FREE from a DONTNEED whose zap has not
		 * landed yet, so the agent waits up to two seconds after a
		 * REMOVE whose pages stay mapped (docs/ARCHITECTURE.md, "Zaps
		 * of resident regions"), and another thread's events read late
		 * can be taken for one of ours. */
		st = region_state(w, ri);
		h1 = h_arena_header(g.arena);
		if (n < 0 || (!rg->odd && (st == THP_ST_RESIDENT || st == THP_ST_FREE) &&
			      !transient_skip(&h0, &h1)))
			advice_failed(w, ri, "not evicted by thpswap_advise(COLD), and no skip counted "
				      "for a reason another thread may have caused", n, &h0, &h1);
		break;
	}
	case OP_WILLNEED: {
		struct thp_arena_header h0 = h_arena_header(g.arena);
		uint32_t st = rg->odd ? THP_ST_FREE : region_state(w, ri);
		int n;

		note(w, "willneed region %u (%s)", ri, thp_state_name(st));
		n = thpswap_advise(g.s, rg->addr, R, THPSWAP_ADVICE_WILLNEED);
		if (n == 1)
			atomic_fetch_add(&g.prefetched, 1);
		/* Only a fault restores, and only we fault our regions: an
		 * evicted one must be brought back -- unless our own zap of
		 * all of it, handled meanwhile, left nothing to bring back. */
		/* The state read before the call may be stale: an mremap of ours
		 * returns before the agent re-keys the records, so the record
		 * found at the address may have been another region's.  The
		 * call synchronises with the agent: what it found then decides,
		 * unless the daemon's evict --all evicted it again since. */
		if (n == 0) {
			uint32_t now_st = region_state(w, ri);

			if (now_st == THP_ST_EMPTY || now_st == THP_ST_RESIDENT ||
			    h_arena_header(g.arena).ctr[THP_C_EVICTIONS] != h0.ctr[THP_C_EVICTIONS])
				st = now_st == THP_ST_EMPTY ? THP_ST_EMPTY : THP_ST_RESIDENT;
		}
		if (n < 0 || ((st == THP_ST_RAM || st == THP_ST_ZERO) && n != 1))
			advice_failed(w, ri, "evicted, and not restored by thpswap_advise(WILLNEED)", n,
				      NULL, NULL);
		break;
	}
	case OP_DONTNEED:
	case OP_FREE:
		pick_range(w, &p0, &p1);
		note(w, "%s region %u pages %u..%u", op_names[op], ri, p0, p1);
		H_CHECK(madvise(rg->addr + (size_t)p0 * P, (size_t)(p1 - p0) * P,
				op == OP_FREE ? MADV_FREE : MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
		for (unsigned p = p0; p < p1; p++)
			rg->gen[p] = op == OP_FREE ? rg->gen[p] | H_OR_ZERO : 0;
		break;
	case OP_PAGEOUT:
		note(w, "pageout region %u", ri);
		madvise(rg->addr, R, MADV_PAGEOUT);
		break;
	case OP_MREMAP:
	case OP_MREMAP_ODD:
		do_mremap(w, ri, op == OP_MREMAP_ODD || rg->odd);
		rg->odd |= op == OP_MREMAP_ODD;
		break;
	case OP_RENEW:
		do_renew(w, ri);
		break;
	case OP_FORK:
		do_fork(w);
		break;
	case OP__N:
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&g.stop) && thp_now_ns() < g.end_ns) {
		step(w);
		if (atomic_fetch_add(&g.ops, 1) % 500 == 499) {
			pthread_mutex_lock(&g.lock);
			pthread_cond_signal(&g.more);
			pthread_mutex_unlock(&g.lock);
		}
	}
	note(w, "final check");
	for (unsigned ri = 0; ri < REGS; ri++)
		verify_or_die(w, ri, 0, NPG);
	return NULL;
}

/* The daemon's eviction of everything, paced by the workers' progress:
 * once per 500 of their operations. */
static void *daemon_main(void *arg)
{
	const char *argv[] = { "evict", "--pid", arg, "--all", NULL };
	char out[4096];

	h_at("daemon evictor: starting");
	for (;;) {
		pthread_mutex_lock(&g.lock);
		while (!atomic_load(&g.stop) && thp_now_ns() < g.end_ns &&
		       atomic_load(&g.ops) / 500 <= g.daemon_ticks)
			pthread_cond_wait(&g.more, &g.lock);
		g.daemon_ticks++;
		pthread_mutex_unlock(&g.lock);
		if (atomic_load(&g.stop) || thp_now_ns() >= g.end_ns)
			break;
		h_at("daemon evictor: thpswapctl evict --all #%lu", g.daemon_evicts);
		/* 1 = some regions refused (shared after a fork): fine. */
		int st = h_ctl(g.d, out, sizeof(out), argv);

		H_CHECK(st == 0 || st == 1, "thpswapctl evict exited %d: %s", st, out);
		g.daemon_evicts++;
	}
	return NULL;
}

static unsigned long env_ul(const char *name, unsigned long dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : dflt;
}

/* A healthy run of @secs does at least about ten times @per_minute of
 * @what (per minute, measured on 2 loaded CPUs): fewer means the run did
 * not exercise what it is for.  Under ThreadSanitizer every operation costs
 * 9 to 20 times as much on this machine (the deadline factor is 4): the
 * floor is divided by its square. */
static void floor_check(const char *what, unsigned long got, unsigned long per_minute,
			unsigned long secs)
{
	unsigned long want = per_minute * secs / 60 / (h_slowdown() * h_slowdown());

	H_CHECK(got >= want, "stress: %lu %s in %lu s, want at least %lu (a tenth of a healthy run)",
		got, what, secs, want);
}

static void stress(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	static struct worker w[WORKERS];
	unsigned long secs = env_ul("THPSWAP_STRESS_SECONDS", 60), total[OP__N] = { 0 };
	pthread_t dt;
	char pid[16];
	uint64_t t0 = thp_now_ns();
	struct thpswap_stats st0 = h_stats(s), st1;

	g.s = s;
	g.arena = h_arena_fd();
	g.d = d;
	g.all = w;
	g.seed = env_ul("THPSWAP_STRESS_SEED", 1);
	g.gen = 1;
	g.end_ns = t0 + secs * 1000000000ull;
	pthread_mutex_init(&g.lock, NULL);
	pthread_cond_init(&g.more, NULL);
	for (unsigned o = 0; o < OP__N; o++) {
		const char *v = getenv("THPSWAP_STRESS_SKIP"), *hit = v ? strstr(v, op_names[o]) : NULL;
		size_t n = strlen(op_names[o]);

		/* whole words of a comma-separated list */
		while (hit && !((hit == v || hit[-1] == ',') && (hit[n] == ',' || hit[n] == 0)))
			hit = strstr(hit + 1, op_names[o]);
		g.skip[o] = hit != NULL;
	}
	printf("stress: seed %llu, %lu s, %d workers x %d regions%s%s\n", (unsigned long long)g.seed,
	       secs, WORKERS, REGS, getenv("THPSWAP_STRESS_SKIP") ? ", skipping " : "",
	       getenv("THPSWAP_STRESS_SKIP") ? getenv("THPSWAP_STRESS_SKIP") : "");
	for (unsigned i = 0; i < WORKERS; i++) {
		w[i].id = i;
		w[i].rng = g.seed * 0x9e3779b97f4a7c15ull + i + 1;
		w[i].last_fork_ns = t0;
		for (unsigned ri = 0; ri < REGS; ri++) {
			struct region *rg = &w[i].reg[ri];
			void *p;
			int r = thpswap_map(s, R, &p);

			H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
			rg->addr = p;
			rg->pg0 = ((uint64_t)i * REGS + ri) * NPG;
			for (unsigned k = 0; k < NPG; k++) {
				rg->gen[k] = new_gen();
				h_page_fill(rg->addr + (size_t)k * P, rg->pg0 + k, rg->gen[k]);
			}
		}
	}
	snprintf(pid, sizeof(pid), "%d", getpid());
	/* "daemon" in $THPSWAP_STRESS_SKIP: no evict --all thread. */
	if (!getenv("THPSWAP_STRESS_SKIP") || !strstr(getenv("THPSWAP_STRESS_SKIP"), "daemon"))
		H_CHECK(pthread_create(&dt, NULL, daemon_main, pid) == 0, "pthread_create");
	else
		dt = pthread_self();
	for (unsigned i = 0; i < WORKERS; i++)
		H_CHECK(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0, "pthread_create");
	for (unsigned i = 0; i < WORKERS; i++)
		pthread_join(w[i].th, NULL);
	atomic_store(&g.stop, true);
	pthread_mutex_lock(&g.lock);
	pthread_cond_broadcast(&g.more);
	pthread_mutex_unlock(&g.lock);
	if (!pthread_equal(dt, pthread_self()))
		pthread_join(dt, NULL);
	for (unsigned i = 0; i < WORKERS; i++)
		for (unsigned o = 0; o < OP__N; o++)
			total[o] += w[i].n[o];
	printf("stress: %lu operations in %.1f s, %lu regions evicted and %lu restored by advice, "
	       "%lu daemon evict --all;", atomic_load(&g.ops), (double)(thp_now_ns() - t0) / 1e9,
	       atomic_load(&g.evicted), atomic_load(&g.prefetched), g.daemon_evicts);
	for (unsigned o = 0; o < OP__N; o++)
		printf(" %s %lu", op_names[o], total[o]);
	printf("\n");
	h_report(s, d, "stress");
	/* Floors: a tenth of a healthy 60 s run, scaled to this run's length
	 * (left out operations have none). */
	st1 = h_stats(s);
	floor_check("operations", atomic_load(&g.ops), 2900, secs);
	if (!g.skip[OP_EVICT])
		floor_check("regions evicted by advice", atomic_load(&g.evicted), 140, secs);
	if (!g.skip[OP_WILLNEED])
		floor_check("regions restored by WILLNEED", atomic_load(&g.prefetched), 10, secs);
	floor_check("evictions", st1.evictions - st0.evictions, 175, secs);
	floor_check("restores", st1.restores - st0.restores, 180, secs);
	if (!g.skip[OP_FORK])
		floor_check("forks", total[OP_FORK], 10, secs);
	if (!g.skip[OP_MREMAP])
		floor_check("mremaps", total[OP_MREMAP], 145, secs);
	if (!g.skip[OP_RENEW])
		floor_check("renewed regions", total[OP_RENEW], 30, secs);
	if (!pthread_equal(dt, pthread_self()))
		floor_check("daemon evict --all runs", g.daemon_evicts, 5, secs);
}

static const struct h_case cases[] = {
	{ "stress", stress, 0, 0 /* set in main */ },
};

int main(int argc, char **argv)
{
	struct h_case c = cases[0];
	char *rest[8] = { argv[0] };
	long long out0 = -1, in0 = -1;
	int n = 1, r;

	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--seed") && k + 1 < argc)
			setenv("THPSWAP_STRESS_SEED", argv[++k], 1);
		else if (!strcmp(argv[k], "--seconds") && k + 1 < argc)
			setenv("THPSWAP_STRESS_SECONDS", argv[++k], 1);
		else if (!strcmp(argv[k], "--swap"))
			setenv("THPSWAP_STRESS_SWAP", "1", 1);
		else if (n < 7)
			rest[n++] = argv[k];
	}
	c.deadline = (unsigned)env_ul("THPSWAP_STRESS_SECONDS", 60) + 120;
	/* The runner makes the device; the case (a child) runs on it. */
	if (env_ul("THPSWAP_STRESS_SWAP", 0) && !(n > 1 && !strcmp(rest[1], "--case"))) {
		char why[256];

		h_require_root();
		if (h_swap_up(512, why, sizeof(why))) {
			printf("skip: no swap device can be made here: %s\n", why);
			return H_SKIP;
		}
		printf("stress: on swap device %s (512 MiB, ours)\n", h_swap_dev());
		out0 = h_vmstat("pswpout");
		in0 = h_vmstat("pswpin");
	}
	r = h_run_cases(n, rest, &c, 1, NULL);
	if (out0 >= 0) {
		long long out = h_vmstat("pswpout") - out0, in = h_vmstat("pswpin") - in0;

		printf("stress: pages swapped out %lld, in %lld (the whole machine's, over the run)\n",
		       out, in);
		/* Or the run proved nothing about swap entries. */
		H_CHECK(r != H_PASS || (out > 0 && in > 0), "no page went to the swap and back");
	}
	return r;
}
