/* SPDX-License-Identifier: MIT */
/*
 * Threads fault on managed memory while another thread zaps (DONTNEED),
 * unmaps, or moves (mremap) the same range, with the region evicted or
 * being evicted at that moment.  No hang (every case runs under a
 * deadline), no crash, no stale data: while the zap runs a word reads its
 * old value or zero, and once madvise() has returned every zapped word
 * reads zero; unmapped memory faults (SIGSEGV) but never reads zeros or
 * someone else's bytes; moved memory keeps its bytes at the new address.
 *
 * Each iteration: the main thread prepares a region, all threads meet at a
 * barrier, the readers read while the main thread acts (after a varying
 * spin, to vary the interleaving), all meet again, the main thread checks.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>

#include "harness.h"
#include "util.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE
#define NREADERS 3
#define SEED 0xc0ffee

enum action { ZAP, UNMAP, MOVE };

struct conc {
	struct thpswap_session *s;
	enum action action;
	bool evictor;			/* a thread evicts while the others read */
	unsigned iters;
	pthread_barrier_t start, end;
	atomic_bool stop;
	/* This iteration (set by main before the start barrier). */
	char *base;			/* the region, as the readers see it */
	uint64_t pg0;
	uint32_t gen;
	size_t zlo, zhi;		/* zapped bytes of the region */
	atomic_bool done;		/* the action has returned */
	/* Findings. */
	atomic_int failed;
	char why[512];
	atomic_ulong reads, segv, zero_words, evicted;
};

static struct conc *g_conc;

static void fail(struct conc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct conc *c, const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&c->failed, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A varying delay: a busy spin of up to @max_us, to vary interleavings (it
 * synchronises nothing; the barriers do that). */
static void jitter(uint64_t *x, unsigned max_us)
{
	uint64_t t0 = thp_now_ns(), ns = rnd(x) % (max_us + 1) * 1000;

	while (thp_now_ns() - t0 < ns)
		;
}

/* ---- SIGSEGV recovery for readers of memory being unmapped ---- */
static __thread sigjmp_buf segv_jmp;
static __thread volatile bool segv_armed;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (segv_armed) {
		segv_armed = false;
		siglongjmp(segv_jmp, 1);
	}
	h_fatal_signal(sig, si->si_addr);
}

static void catch_segv(void)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* Check one page word by word: old value, zero while the zap runs, zero
 * once it returned.  Returns false at the first bad word. */
static bool read_page(struct conc *c, const volatile uint64_t *w, size_t pgi, bool in_zap, bool moved)
{
	uint64_t tag = (uint64_t)c->gen << 40 | ((c->pg0 + pgi) & 0xfffffff) << 12;

	for (unsigned i = 0; i < P / 8; i++) {
		bool done = atomic_load_explicit(&c->done, memory_order_acquire);
		uint64_t v = w[i];

		if (v == (tag | i) && !(in_zap && done && c->action == ZAP))
			continue;
		if (v == 0 && in_zap) {
			atomic_fetch_add(&c->zero_words, 1);
			continue;
		}
		fail(c, "%s read %#llx at %p (page %zu word %u; want %#llx%s)%s",
		     moved ? "after the move" : "", (unsigned long long)v, (void *)&w[i], pgi, i,
		     (unsigned long long)(tag | i), in_zap ? " or 0" : "",
		     in_zap && done ? ", and the zap had returned: stale data" :
		     v == 0 ? ": zeros where data must be" : "");
		return false;
	}
	return true;
}

/* One reader pass over the region from a random page on. */
static void reader_pass(struct conc *c, uint64_t *x)
{
	size_t n = R / P, first = rnd(x) % n, stride = 1 + 2 * (rnd(x) % 64);
	char *base = c->base;

	if (c->action != ZAP) {
		segv_armed = true;
		if (sigsetjmp(segv_jmp, 1)) {
			atomic_fetch_add(&c->segv, 1);
			return; /* unmapped (or moved away) under us */
		}
	}
	for (size_t k = 0; k < n && !atomic_load(&c->failed); k++) {
		size_t pgi = (first + k * stride) % n;
		bool in_zap = pgi * P >= c->zlo && pgi * P < c->zhi;

		if (!read_page(c, (const volatile uint64_t *)(base + pgi * P), pgi, in_zap, false))
			break;
		atomic_fetch_add(&c->reads, 1);
	}
	segv_armed = false;
}

static void *reader_main(void *arg)
{
	struct conc *c = arg;
	uint64_t x = SEED ^ (uint64_t)(uintptr_t)&x;

	h_at("reader: starting");
	for (unsigned it = 0;; it++) {
		pthread_barrier_wait(&c->start);
		if (atomic_load(&c->stop))
			break;
		h_at("reader: iteration %u, reading %p", it, (void *)c->base);
		reader_pass(c, &x);
		h_at("reader: iteration %u, done", it);
		pthread_barrier_wait(&c->end);
	}
	return NULL;
}

static void *evictor_main(void *arg)
{
	struct conc *c = arg;
	uint64_t x = SEED * 3;

	for (unsigned it = 0;; it++) {
		pthread_barrier_wait(&c->start);
		if (atomic_load(&c->stop))
			break;
		jitter(&x, 200);
		h_at("evictor: iteration %u, evicting %p", it, (void *)c->base);
		atomic_fetch_add(&c->evicted, (unsigned long)thpswap_advise(c->s, c->base, R,
									  THPSWAP_ADVICE_COLD) == 1);
		h_at("evictor: iteration %u, done", it);
		pthread_barrier_wait(&c->end);
	}
	return NULL;
}

/*
 * The iterations of one case.  ZAP: one region for all iterations, zapped
 * whole or in part.  UNMAP: a fresh region each iteration (thpswap_map right
 * after the last one was unmapped, often at the same address).  MOVE: a
 * fresh region moved to a 2 MiB-aligned place.
 */
static void run(struct thpswap_session *s, const struct h_daemon *d, const char *name,
		enum action action, bool evictor, unsigned iters)
{
	struct conc c = { .s = s, .action = action, .evictor = evictor, .iters = iters };
	pthread_t th[NREADERS + 1];
	unsigned nth = NREADERS + (evictor ? 1 : 0);
	struct thpswap_stats st0, st1;
	uint64_t x = SEED;
	void *bar, *zr = NULL;
	int r;

	g_conc = &c;
	catch_segv();
	bar = h_barrier_map(s);
	pthread_barrier_init(&c.start, NULL, nth + 1);
	pthread_barrier_init(&c.end, NULL, nth + 1);
	for (unsigned i = 0; i < NREADERS; i++)
		H_CHECK(pthread_create(&th[i], NULL, reader_main, &c) == 0, "pthread_create");
	if (evictor)
		H_CHECK(pthread_create(&th[NREADERS], NULL, evictor_main, &c) == 0, "pthread_create");
	st0 = h_stats(s);
	for (unsigned it = 0; it < iters && !atomic_load(&c.failed); it++) {
		bool evict_first = !evictor && (rnd(&x) & 3) != 0;
		void *moved = NULL;

		c.gen = it + 1;
		c.pg0 = (uint64_t)it * (R / P);
		if (action == ZAP) {
			/* A fresh region each time (the last one's zaps split
			 * it), unmapped through the API: no event. */
			r = thpswap_map(s, R, &zr);
			H_CHECK(r == 0, "map: %s", strerror(-r));
			c.base = zr;
			/* Whole region, or a random page-aligned part of it. */
			if (rnd(&x) & 1) {
				c.zlo = 0;
				c.zhi = R;
			} else {
				c.zlo = (rnd(&x) % (R / P)) * P;
				c.zhi = c.zlo + (1 + rnd(&x) % (R / P - c.zlo / P)) * P;
			}
		} else {
			void *p;

			h_at("main: iteration %u: thpswap_map", it);
			r = thpswap_map(s, R, &p);
			H_CHECK(r == 0, "iteration %u: thpswap_map right after an unmap: %s", it,
				strerror(-r));
			c.base = p;
			c.zlo = c.zhi = 0;
		}
		h_at("main: iteration %u: writing %p", it, (void *)c.base);
		h_fill(c.base, R, c.pg0, c.gen);
		/* A fresh, fully written region is always evictable; the
		 * readers below must meet an evicted region, or the case would
		 * not race what it is named for. */
		if (evict_first && h_evict(s, c.base, R) != 1) {
			char line[320];

			h_region_describe(h_arena_fd(), c.base, line, sizeof(line));
			H_CHECK(false, "%s: iteration %u: a fresh, fully written region was not evicted: %s",
				name, it, line);
		}
		atomic_store(&c.done, false);
		pthread_barrier_wait(&c.start);
		jitter(&x, 400);
		h_at("main: iteration %u: action %d on %p (zap %zu..%zu)", it, action, (void *)c.base,
		     c.zlo, c.zhi);
		switch (action) {
		case ZAP:
			H_CHECK(madvise(c.base + c.zlo, c.zhi - c.zlo, MADV_DONTNEED) == 0,
				"madvise: %s", strerror(errno));
			break;
		case UNMAP:
			H_CHECK(munmap(c.base, R) == 0, "munmap: %s", strerror(errno));
			break;
		case MOVE:
			moved = mremap(c.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(R, 0));
			H_CHECK(moved != MAP_FAILED, "mremap: %s", strerror(errno));
			break;
		}
		atomic_store_explicit(&c.done, true, memory_order_release);
		h_at("main: iteration %u: waiting for the others", it);
		pthread_barrier_wait(&c.end);
		/* Everything settled: the exact check. */
		h_at("main: iteration %u: checking", it);
		if (action == ZAP) {
			char what[128];

			snprintf(what, sizeof(what), "iteration %u, after zapping %zu..%zu%s", it, c.zlo,
				 c.zhi, evict_first ? " of an evicted region" : "");
			H_CHECK(h_check(c.base, c.zlo, c.pg0, c.gen, NULL, what) < 0 &&
				h_check(c.base + c.zlo, c.zhi - c.zlo, 0, 0, NULL, what) < 0 &&
				h_check(c.base + c.zhi, R - c.zhi, c.pg0 + c.zhi / P, c.gen, NULL, what) < 0,
				"%s", what);
			r = thpswap_unmap(s, zr, R);
			H_CHECK(r == 0, "thpswap_unmap: %s", strerror(-r));
		} else if (action == MOVE) {
			char what[96];

			snprintf(what, sizeof(what), "iteration %u, at the new address", it);
			H_CHECK(h_check(moved, R, c.pg0, c.gen, NULL, what) < 0, "%s", what);
			H_CHECK(munmap(moved, R) == 0, "munmap: %s", strerror(errno));
		}
	}
	atomic_store(&c.stop, true);
	pthread_barrier_wait(&c.start);
	for (unsigned i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	H_CHECK(!atomic_load(&c.failed), "%s: %s", name, c.why);
	h_agent_sync(bar);
	st1 = h_stats(s);
	printf("%s: %u iterations, %lu page reads, %lu zero words seen mid-zap, %lu readers cut off "
	       "by SIGSEGV, %lu evictions by the evictor thread, regions %llu -> %llu\n", name,
	       iters, atomic_load(&c.reads), atomic_load(&c.zero_words), atomic_load(&c.segv),
	       atomic_load(&c.evicted), (unsigned long long)st0.regions,
	       (unsigned long long)st1.regions);
	H_CHECK(st1.regions == st0.regions, "%s: %llu regions leaked",
			name, (unsigned long long)(st1.regions - st0.regions));
	/* The evictor races the readers' faults for the region: a fault that
	 * comes first wins and the eviction backs off.  A healthy run on two
	 * loaded CPUs evicts in a quarter to a half of the iterations; the
	 * floor is a tenth of the lower end. */
	H_CHECK(!evictor || atomic_load(&c.evicted) >= iters / 40,
		"%s: the evictor thread evicted the region in %lu of %u iterations: the case hardly "
		"raced an eviction", name, atomic_load(&c.evicted), iters);
	h_report(s, d, name);
	pthread_barrier_destroy(&c.start);
	pthread_barrier_destroy(&c.end);
}

static unsigned iters(unsigned dflt)
{
	const char *v = getenv("THPSWAP_CONCURRENCY_ITERS");

	return v && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static void fault_vs_dontneed(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	run(s, d, "fault-vs-dontneed", ZAP, false, iters(300));
}

static void evict_vs_fault_vs_dontneed(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	run(s, d, "evict-vs-fault-vs-dontneed", ZAP, true, iters(300));
}

static void fault_vs_munmap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	run(s, d, "fault-vs-munmap", UNMAP, false, iters(300));
}

static void evict_vs_fault_vs_munmap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	run(s, d, "evict-vs-fault-vs-munmap", UNMAP, true, iters(200));
}

static void fault_vs_mremap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	run(s, d, "fault-vs-mremap", MOVE, false, iters(200));
}

/* ---- many threads, one evicted region; then each its own ---- */

struct storm {
	struct thpswap_session *s;
	char *base;
	unsigned id;
	pthread_barrier_t *go;
	atomic_int *bad;
	int evicted;		/* of the 20 evictions of its own region */
};

static void *storm_main(void *arg)
{
	struct storm *t = arg;

	h_at("storm thread %u", t->id);
	pthread_barrier_wait(t->go);
	/* All at once on region 0, then on the thread's own region. */
	if (h_check(t->base + (t->id % 4) * P * 16, P, (t->id % 4) * 16, 1, NULL, "storm, region 0") >= 0)
		atomic_store(t->bad, 1);
	for (int k = 0; k < 20; k++) {
		char *own = t->base + (1 + t->id) * R;

		if (h_check(own, R, (1 + t->id) * (R / P), 1, NULL, "storm, own region") >= 0)
			atomic_store(t->bad, 1);
		/* Read back whole just now, and only this thread touches it. */
		t->evicted += thpswap_advise(t->s, own, R, THPSWAP_ADVICE_COLD) == 1;
	}
	return NULL;
}

static void fault_storm(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	enum { N = 8 };
	struct storm t[N];
	pthread_t th[N];
	pthread_barrier_t go;
	atomic_int bad = 0;
	void *base;
	int r = thpswap_map(s, (N + 1) * R, &base);

	H_CHECK(r == 0, "map: %s", strerror(-r));
	h_fill(base, (N + 1) * R, 0, 1);
	H_CHECK(h_evict(s, base, (N + 1) * R) == N + 1, "evict");
	pthread_barrier_init(&go, NULL, N);
	for (unsigned i = 0; i < N; i++) {
		t[i] = (struct storm){ .s = s, .base = base, .id = i, .go = &go, .bad = &bad };
		H_CHECK(pthread_create(&th[i], NULL, storm_main, &t[i]) == 0, "pthread_create");
	}
	for (unsigned i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	H_CHECK(!bad, "a storm thread read wrong bytes (above)");
	for (unsigned i = 0; i < N; i++)
		H_CHECK(t[i].evicted == 20, "storm thread %u evicted its own region %d times of 20: its "
			"reads checked bytes that had not left", i, t[i].evicted);
	H_CHECK(h_check(base, (N + 1) * R, 0, 1, NULL, "after the storm") < 0, "after the storm");
	h_report(s, d, "fault-storm");
	pthread_barrier_destroy(&go);
}

static const struct h_case cases[] = {
	{ "fault-vs-dontneed", fault_vs_dontneed, 0, 60 },
	{ "evict-vs-fault-vs-dontneed", evict_vs_fault_vs_dontneed, 0, 60 },
	{ "fault-vs-munmap", fault_vs_munmap, 0, 60 },
	{ "evict-vs-fault-vs-munmap", evict_vs_fault_vs_munmap, 0, 60 },
	{ "fault-vs-mremap", fault_vs_mremap, 0, 60 },
	{ "fault-storm", fault_storm, 0, 30 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
