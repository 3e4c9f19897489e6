/* SPDX-License-Identifier: MIT */
/*
 * Writers against constant eviction: 4 threads keep writing to 64 regions
 * (16 each) while the daemon keeps evicting them, both by its budget policy
 * (--budget 32 MiB for 128 MiB of data, every 20 ms, held whatever it costs)
 * and by a thread that
 * runs `thpswapctl evict --all` back to back.  Each page write is stamped
 * with (thread, region, page, generation); the test keeps the expected
 * generation of every page in an ordinary array, checks every write right
 * after making it, re-checks earlier writes at random and whole regions now
 * and then, and every byte at the end.  Evictions, restores and evictions
 * cancelled by a fault must each reach a floor (a tenth of a healthy run),
 * and the stored bytes must match the arena memfd's allocation.  30 s;
 * $THPSWAP_TEST_SECONDS overrides.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define PAGE 4096
#define PAGES (REG / PAGE)
#define NREG 64
#define NTHR 4
#define MAGIC 0x7772697465727321ull /* "writers!" */

static char *mem;
static uint32_t gen[NREG][PAGES]; /* expected generation per page; 0 = never written */
static uint32_t next_gen[NREG];
static struct h_daemon d;
static char pid_str[16];

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned filled;     /* writers done with their first fill */
static unsigned ctl_rounds; /* evict --all calls answered */
static bool stop;

struct writer {
	pthread_t th;
	unsigned id;
	uint64_t rng;
	uint64_t writes, page_checks, region_checks;
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Regions of writer @w: w, w + NTHR, ... (interleaved with the others). */
static unsigned own_region(const struct writer *w, uint64_t r)
{
	return (unsigned)(r % (NREG / NTHR)) * NTHR + w->id;
}

/* Compressible on purpose (else it would stay resident): 64-byte blocks
 * that differ only in their index. */
static void make_page(uint64_t *p, unsigned tid, unsigned region, unsigned page, uint32_t g)
{
	for (unsigned b = 0; b < PAGE / 64; b++) {
		uint64_t *q = p + b * 8;

		q[0] = MAGIC ^ g;
		q[1] = g;
		q[2] = tid;
		q[3] = region;
		q[4] = page;
		q[5] = b;
		q[6] = ~(((uint64_t)g << 20) | (region << 9) | page);
		q[7] = MAGIC;
	}
}

static bool stopping(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE);
}

static void check_page(const struct writer *w, unsigned region, unsigned page, const char *what)
{
	uint64_t want[PAGE / 8];
	const unsigned char *p = (const unsigned char *)(mem + region * REG + page * PAGE);

	if (gen[region][page])
		make_page(want, w->id, region, page, gen[region][page]);
	else
		memset(want, 0, sizeof(want));
	if (memcmp(p, want, PAGE) == 0)
		return;
	for (unsigned k = 0; k < PAGE; k++)
		H_CHECK(p[k] == ((unsigned char *)want)[k],
			"%s: thread %u, region %u, offset %u: 0x%02x, expected 0x%02x "
			"(generation %u of that page; %llu writes so far)", what, w->id, region,
			page * PAGE + k, p[k], ((unsigned char *)want)[k], gen[region][page],
			(unsigned long long)w->writes);
}

static void write_page(struct writer *w, unsigned region, unsigned page)
{
	uint32_t g = ++next_gen[region];

	make_page((uint64_t *)(mem + region * REG + page * PAGE), w->id, region, page, g);
	gen[region][page] = g;
	w->writes++;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	/* First fill: every page of every own region. */
	for (unsigned k = 0; k < NREG / NTHR; k++)
		for (unsigned p = 0; p < PAGES; p++)
			write_page(w, own_region(w, k), p);
	pthread_mutex_lock(&lock);
	filled++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);

	while (!stopping()) {
		unsigned r = own_region(w, next_rand(&w->rng));
		unsigned p = (unsigned)(next_rand(&w->rng) % PAGES);

		write_page(w, r, p);
		check_page(w, r, p, "page just written");
		r = own_region(w, next_rand(&w->rng));
		p = (unsigned)(next_rand(&w->rng) % PAGES);
		check_page(w, r, p, "earlier write");
		w->page_checks += 2;
		if (w->writes % 256 == 0) {
			r = own_region(w, next_rand(&w->rng));
			for (p = 0; p < PAGES; p++)
				check_page(w, r, p, "whole-region check");
			w->region_checks++;
		}
	}
	return NULL;
}

struct ctl_sum {
	long long evicted, skipped, failed;
	unsigned calls_failed;
};

/* `thpswapctl evict --all`, back to back, until told to stop. */
static void *evictor_main(void *arg)
{
	const char *argv[] = { "--json", "evict", "--pid", pid_str, "--all", NULL };
	struct ctl_sum *sum = arg;
	static char out[4096];

	while (!stopping()) {
		long long e = 0, s = 0, f = 0;
		int r = h_ctl(&d, out, sizeof(out), argv);

		/* Exit 1 with a reply means some regions failed (counted below). */
		H_CHECK(r == 0 || r == 1, "thpswapctl evict exited %d: %s", r, out);
		H_CHECK(h_json_i64(out, "evicted", &e) == 0 && h_json_i64(out, "skipped", &s) == 0 &&
			h_json_i64(out, "failed", &f) == 0, "evict reply (exit %d): %s", r, out);
		sum->evicted += e;
		sum->skipped += s;
		sum->failed += f;
		sum->calls_failed += r != 0;
		pthread_mutex_lock(&lock);
		ctl_rounds++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(void)
{
	/* No promotion window: the budget keeps taking the hot regions
	 * (otherwise each comes back at once and is then left alone). */
	const char *args[] = { "--budget", "32", "--interval", "20", "--promotion-window", "0", NULL };
	struct writer w[NTHR];
	struct thpswap_session *s;
	struct thpswap_stats st0, st;
	struct ctl_sum sum = { 0 };
	struct timespec deadline;
	unsigned seconds = h_test_seconds(30);
	unsigned long long writes = 0, checks = 0, rchecks = 0, budget_evictions;
	bool timed_out = false;
	pthread_t evictor;
	void *bar;
	int r;

	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	H_CHECK(h_daemon_start(&d, args) == 0, "start thpswapd");
	r = thpswap_open(&s, NULL);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	r = thpswap_map(s, NREG * REG, (void **)&mem);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	h_report_sigbus(s, mem, NREG * REG);
	snprintf(pid_str, sizeof(pid_str), "%d", getpid());
	H_CHECK(thpswap_get_stats(s, &st0, sizeof(st0)) == 0, "stats");

	for (unsigned t = 0; t < NTHR; t++) {
		w[t] = (struct writer){ .id = t, .rng = 0x9e3779b97f4a7c15ull * (t + 1) };
		H_CHECK(pthread_create(&w[t].th, NULL, writer_main, &w[t]) == 0, "pthread_create");
	}
	pthread_mutex_lock(&lock);
	while (filled < NTHR)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	/* The budget policy must have had its go before evict --all competes
	 * with it (it skips a client with an eviction in flight).  No event
	 * tells us, so poll the counter, bounded. */
	for (int k = 0; k < 10000; k++) {
		struct timespec ms = { 0, 1000000 };

		H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
		if (st.evictions > st0.evictions)
			break;
		nanosleep(&ms, NULL);
	}
	H_CHECK(st.evictions > st0.evictions, "the budget policy evicted nothing in 10 s "
		"(%llu regions resident, budget 32 MiB)", (unsigned long long)st.resident);
	H_CHECK(pthread_create(&evictor, NULL, evictor_main, &sum) == 0, "pthread_create");
	printf("%d writers on %d regions (%d MiB), daemon budget 32 MiB, for %u s\n", NTHR, NREG,
	       NREG * 2, seconds);

	/* The run lasts @seconds, and at least two evict --all rounds. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += seconds;
	pthread_mutex_lock(&lock);
	while (!timed_out || ctl_rounds < 2) {
		if (timed_out)
			pthread_cond_wait(&cond, &lock);
		else
			timed_out = pthread_cond_timedwait(&cond, &lock, &deadline) == ETIMEDOUT;
	}
	pthread_mutex_unlock(&lock);
	__atomic_store_n(&stop, true, __ATOMIC_RELEASE);
	for (unsigned t = 0; t < NTHR; t++) {
		pthread_join(w[t].th, NULL);
		writes += w[t].writes;
		checks += w[t].page_checks;
		rchecks += w[t].region_checks;
	}
	pthread_join(evictor, NULL);

	/* Every byte, once more, by region owner. */
	for (unsigned t = 0; t < NTHR; t++)
		for (unsigned k = 0; k < NREG / NTHR; k++)
			for (unsigned p = 0; p < PAGES; p++)
				check_page(&w[t], own_region(&w[t], k), p, "final check");

	H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
	budget_evictions = st.evictions - st0.evictions - (unsigned long long)sum.evicted;
	printf("%llu writes, %llu page checks, %llu whole-region checks: all right\n", writes,
	       checks, rchecks);
	printf("%llu evictions (%lld by %u evict --all, %llu by the budget), %llu restores, "
	       "%llu faults, %llu evictions cancelled by a fault, %llu PMD-mapped restores, "
	       "%llu split left\n", (unsigned long long)(st.evictions - st0.evictions),
	       sum.evicted, ctl_rounds, budget_evictions,
	       (unsigned long long)(st.restores - st0.restores),
	       (unsigned long long)(st.faults - st0.faults),
	       (unsigned long long)st.evict_cancelled, (unsigned long long)st.restores_pmd,
	       (unsigned long long)st.split_left);
	H_CHECK(st.corrupt == 0, "%llu records failed verification", (unsigned long long)st.corrupt);
	/* Floors: about a tenth of what a healthy run does per second (19
	 * evictions, 21 restores, 12 regions by evict --all, 8 by the budget
	 * and 7 cancelled by a fault, on 2 loaded CPUs), and never less than
	 * every region evicted twice and restored three times. */
	H_CHECK(st.evictions - st0.evictions >= 2 * NREG &&
		st.evictions - st0.evictions >= 2ull * seconds &&
		st.restores - st0.restores >= 3 * NREG && st.restores - st0.restores >= 2ull * seconds,
		"too little happened in %u s: %llu evictions, %llu restores", seconds,
		(unsigned long long)(st.evictions - st0.evictions),
		(unsigned long long)(st.restores - st0.restores));
	H_CHECK(sum.evicted >= (long long)seconds && budget_evictions >= seconds * 3 / 4 + 1,
		"in %u s evict --all evicted %lld regions, the budget %llu", seconds, sum.evicted,
		budget_evictions);
	/* Writers touch each of their regions every few microseconds, so a run
	 * this long always has faults landing on evictions in progress. */
	H_CHECK(st.evict_cancelled >= seconds / 2 && (seconds < 10 || st.evict_cancelled > 0),
		"%llu evictions cancelled by a fault in %u s", (unsigned long long)st.evict_cancelled,
		seconds);
	/* Nothing here is shared or pinned: a failed region is a bug. */
	H_CHECK(sum.failed == 0, "evict --all reported %lld failed regions in %u of %u calls; "
		"MOVE refused %llu, faults cancelled %llu evictions: nothing here is shared or "
		"pinned, so a cancelled eviction must count as skipped, not failed",
		sum.failed, sum.calls_failed, ctl_rounds, (unsigned long long)st.evict_refused,
		(unsigned long long)st.evict_cancelled);
	bar = h_barrier_map(s);
	h_check_stored(s, bar, "writers, at the end");
	H_CHECK(thpswap_close(s) == 0, "thpswap_close");
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
	return H_PASS;
}
