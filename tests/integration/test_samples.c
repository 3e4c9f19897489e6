/* SPDX-License-Identifier: MIT */
/*
 * The timing samples (lib/samples.h) that the bench's breakdown reads: with
 * them on, every region evicted leaves one eviction entry and every touch
 * of an evicted region one restore entry, at that region's address, whose
 * stamps come in order and lie between the moment this thread touched the
 * region and the moment its access returned (so each component the bench
 * computes is >= 0 and they add up to no more than the fault took).  With
 * them never turned on, or turned off again, nothing is recorded.
 *
 * Links the library's internals (like test_own_memory.c) to turn them on:
 * they are not public API.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "internal.h"
#include "samples.h"

#define REG THPSWAP_REGION_SIZE
#define NREG 16
#define NZERO 4   /* the last NZERO regions hold zeros: restored from ZERO */

static void prepare(struct thpswap_session *s, struct h_mem *m)
{
	h_mem_map(s, m, NREG, 0);
	h_mem_write(m, 0, (NREG - NZERO) * REG, 1);
	h_mem_write(m, (NREG - NZERO) * REG, NZERO * REG, 0);
}

/* Touch every region once (even: read, odd: write), noting when each
 * access began and when it returned. */
static void touch_all(const struct h_mem *m, uint64_t t_in[NREG], uint64_t t_out[NREG])
{
	for (unsigned i = 0; i < NREG; i++) {
		char *p = m->base + (size_t)i * REG;

		t_in[i] = now_ns();
		if (i & 1) {
			/* A write fault that keeps the data, as one instruction:
			 * ThreadSanitizer's atomics load first (a read fault). */
#if defined(__x86_64__)
			__asm__ volatile("lock orq $0, %0" : "+m"(*(uint64_t *)(void *)p) :: "memory");
#else
			__atomic_fetch_or((uint64_t *)(void *)p, 0, __ATOMIC_RELAXED);
#endif
		} else {
			(void)*(volatile char *)p;
		}
		t_out[i] = now_ns();
	}
}

static long region_of(const struct h_mem *m, uint64_t addr)
{
	uint64_t b = (uint64_t)(uintptr_t)m->base;

	if (addr < b || addr >= b + NREG * REG || (addr - b) % REG)
		return -1;
	return (long)((addr - b) / REG);
}

static void samples_on_case(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	uint64_t t_in[NREG], t_out[NREG], ev_lo, ev_hi;
	unsigned restores[NREG] = { 0 }, evictions[NREG] = { 0 };
	struct h_mem m;
	uint64_t n;

	(void)d;
	(void)variant;
	prepare(s, &m);
	H_CHECK(samples_enable(s, 256) == 0, "samples_enable");
	ev_lo = now_ns();
	H_CHECK(h_mem_evict(s, &m, "samples on") == NREG, "all %d regions evicted", NREG);
	ev_hi = now_ns();
	touch_all(&m, t_in, t_out);
	samples_disable(s);
	h_mem_check(&m, "after restore with samples on");

	n = samples_count(s);
	H_CHECK(n >= 2 * NREG, "%llu samples, want at least %d", (unsigned long long)n, 2 * NREG);
	for (uint64_t k = 0; k < n; k++) {
		struct thp_sample e;
		long i;

		H_CHECK(samples_get(s, k, &e) == 0, "sample %llu readable", (unsigned long long)k);
		i = region_of(&m, e.addr);
		H_CHECK(i >= 0, "sample %llu at %#llx: not one of our regions", (unsigned long long)k,
			(unsigned long long)e.addr);
		if (e.kind == SAMPLE_EVICT) {
			evictions[i]++;
			H_CHECK(ev_lo <= e.t[SE_START] && e.t[SE_DONE] <= ev_hi,
				"region %ld: eviction stamped outside the advise calls", i);
			for (unsigned t = SE_START; t < SE_DONE; t++)
				H_CHECK(e.t[t] <= e.t[t + 1], "region %ld: eviction stamp %u after %u", i, t,
					t + 1);
			H_CHECK(!!(e.flags & SF_ZERO) == (i >= NREG - NZERO),
				"region %ld: zero flag %#x", i, e.flags);
			continue;
		}
		H_CHECK(e.kind == SAMPLE_RESTORE, "sample %llu: kind %u", (unsigned long long)k, e.kind);
		restores[i]++;
		H_CHECK(e.from == (i >= NREG - NZERO ? THP_ST_ZERO : THP_ST_RAM),
			"region %ld: restored from state %u", i, e.from);
		H_CHECK(!!(e.flags & SF_WRITE) == (i & 1), "region %ld: write flag %#x", i, e.flags);
		/* Every component the bench computes is >= 0, and their sum is
		 * at most the access's time: the access, then the stamps in
		 * order, then its return. */
		H_CHECK(t_in[i] <= e.t[SR_READ], "region %ld: read %lld ns before the access", i,
			(long long)(t_in[i] - e.t[SR_READ]));
		for (unsigned t = SR_READ; t < SR_WAKE; t++)
			H_CHECK(e.t[t] <= e.t[t + 1], "region %ld: restore stamp %u after %u", i, t, t + 1);
		H_CHECK(e.t[SR_WAKE] <= t_out[i], "region %ld: woken %lld ns after the access returned", i,
			(long long)(e.t[SR_WAKE] - t_out[i]));
		/* One not flagged came back as one PMD (one flagged may have
		 * been collapsed since). */
		if (i < NREG - NZERO && !(e.flags & SF_NOT_PMD))
			H_CHECK(h_pmd_mapped(m.base + (size_t)i * REG, REG) == 1,
				"region %ld: not one PMD, not flagged (%#x)", i, e.flags);
	}
	for (unsigned i = 0; i < NREG; i++) {
		H_CHECK(evictions[i] == 1, "region %u: %u eviction samples", i, evictions[i]);
		H_CHECK(restores[i] == 1, "region %u: %u restore samples", i, restores[i]);
	}
	printf("samples-on: %llu samples for %d regions\n", (unsigned long long)n, NREG);
	h_mem_free(&m);
}

/* Evict and restore everything: nothing may be recorded. */
static void round_trip_unrecorded(struct thpswap_session *s, struct h_mem *m, const char *what)
{
	uint64_t t_in[NREG], t_out[NREG];

	H_CHECK(h_mem_evict(s, m, what) == NREG, "%s: all %d regions evicted", what, NREG);
	touch_all(m, t_in, t_out);
	h_mem_check(m, what);
	H_CHECK(samples_count(s) == 0, "%s: %llu samples recorded", what,
		(unsigned long long)samples_count(s));
}

static void samples_off_case(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thp_sample e;
	struct h_mem m;

	(void)d;
	(void)variant;
	prepare(s, &m);
	/* Never turned on: no ring at all. */
	round_trip_unrecorded(s, &m, "samples never on");
	H_CHECK(__atomic_load_n(&s->samples, __ATOMIC_ACQUIRE) == NULL, "a ring exists");
	H_CHECK(samples_get(s, 0, &e) == -ENOENT, "an entry without a ring");
	/* Turned on and off again: the ring stays, empty. */
	H_CHECK(samples_enable(s, 64) == 0, "samples_enable");
	samples_disable(s);
	round_trip_unrecorded(s, &m, "samples turned off");
	H_CHECK(samples_enable(s, 0) == -EINVAL, "a ring of no entries");
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "samples-on", samples_on_case, 0, 60 },
	{ "samples-off", samples_off_case, 0, 60 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
