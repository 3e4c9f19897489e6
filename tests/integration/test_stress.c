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
 * worker's recent operations.
 *
 *   itest-stress [--seed N] [--seconds S]   (or $THPSWAP_STRESS_SEED,
 *                                            $THPSWAP_STRESS_SECONDS)
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
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE
#define NPG (R / P)
#define WORKERS 4
#define REGS 6		/* per worker */
#define HIST 24

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
	bool skip[OP__N];		/* $THPSWAP_STRESS_SKIP: ops left out */
} g;

static uint64_t now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

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
		for (unsigned k = w->nhist > HIST ? w->nhist - HIST : 0; k < w->nhist; k++)
			say("  %s\n", w->hist[k % HIST]);
		return -1;
	}
	return 0;
}

static void verify_or_die(struct worker *w, unsigned ri, unsigned p0, unsigned p1)
{
	if (verify(w, ri, p0, p1, false) == 0)
		return;
	pthread_mutex_lock(&g.lock); /* one report; the others stop here */
	say("rerun with: itest-stress --seed %llu\n", (unsigned long long)g.seed);
	die();
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
		die();
	}
	w->last_fork_ns = now();
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
	if (op == OP_FORK && now() - w->last_fork_ns < 1500000000ull)
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
	case OP_EVICT:
		note(w, "evict region %u", ri);
		if (thpswap_advise(g.s, rg->addr, R, THPSWAP_ADVICE_COLD) == 1)
			atomic_fetch_add(&g.evicted, 1);
		break;
	case OP_WILLNEED:
		note(w, "willneed region %u", ri);
		thpswap_advise(g.s, rg->addr, R, THPSWAP_ADVICE_WILLNEED);
		break;
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

	while (!atomic_load(&g.stop) && now() < g.end_ns) {
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
		while (!atomic_load(&g.stop) && now() < g.end_ns &&
		       atomic_load(&g.ops) / 500 <= g.daemon_ticks)
			pthread_cond_wait(&g.more, &g.lock);
		g.daemon_ticks++;
		pthread_mutex_unlock(&g.lock);
		if (atomic_load(&g.stop) || now() >= g.end_ns)
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

static void stress(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	static struct worker w[WORKERS];
	unsigned long secs = env_ul("THPSWAP_STRESS_SECONDS", 60), total[OP__N] = { 0 };
	pthread_t dt;
	char pid[16];
	uint64_t t0 = now();

	g.s = s;
	g.d = d;
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
	printf("stress: %lu operations in %.1f s, %lu regions evicted by advice, %lu daemon "
	       "evict --all;", atomic_load(&g.ops), (double)(now() - t0) / 1e9,
	       atomic_load(&g.evicted), g.daemon_evicts);
	for (unsigned o = 0; o < OP__N; o++)
		printf(" %s %lu", op_names[o], total[o]);
	printf("\n");
	h_report(s, d, "stress");
}

static const struct h_case cases[] = {
	{ "stress", stress, 0, 0 /* set in main */ },
};

int main(int argc, char **argv)
{
	struct h_case c = cases[0];
	char *rest[8] = { argv[0] };
	int n = 1;

	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--seed") && k + 1 < argc)
			setenv("THPSWAP_STRESS_SEED", argv[++k], 1);
		else if (!strcmp(argv[k], "--seconds") && k + 1 < argc)
			setenv("THPSWAP_STRESS_SECONDS", argv[++k], 1);
		else if (n < 7)
			rest[n++] = argv[k];
	}
	c.deadline = (unsigned)env_ul("THPSWAP_STRESS_SECONDS", 60) + 120;
	return h_run_cases(n, rest, &c, 1, NULL);
}
