/* SPDX-License-Identifier: MIT */
/*
 * mprotect of managed memory to read-only (and PROT_NONE) and back,
 * resident or evicted, whole regions or part of one: reads see the data,
 * a write to read-only memory raises SIGSEGV (never a hang, never a silent
 * store), and after the way back the memory is written, evicted and read
 * back whole.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#include "harness.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

static sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	siglongjmp(segv_jmp, sig);
}

/* Does a store to @p fault with SIGSEGV?  (It must not change @p.) */
static bool store_faults(volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	bool faulted;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_jmp, 1) == 0) {
		*p = 0x5a;
		faulted = false;
	} else {
		faulted = true;
	}
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}

static void protect(struct h_mem *m, size_t off, size_t len, int prot)
{
	h_at("mprotect(%p, %zu, %d)", (void *)(m->base + off), len, prot);
	H_CHECK(mprotect(m->base + off, len, prot) == 0, "mprotect(%p, %zu, %d): %s",
		(void *)(m->base + off), len, prot, strerror(errno));
}

/* Write, evict (every resident region must go), read back: the memory is
 * ordinary managed memory again. */
static void back_to_normal(struct thpswap_session *s, struct h_mem *m, const char *name)
{
	int n;

	h_at("%s: writing after the way back", name);
	h_mem_write(m, 3 * P, 5 * P, 3);
	h_mem_write(m, m->len - R + 17 * P, P, 3);
	n = h_mem_evict(s, m, name);
	h_at("%s: reading after a round trip", name);
	h_mem_check(m, "after the way back to read-write and a round trip");
	printf("%s: the last round trip evicted %d of %zu regions, %ld PMD-mapped after\n", name, n,
	       m->len / R, h_pmd_mapped(m->base, m->len));
}

/* Whole regions read-only, resident or evicted, and back. */
static void readonly(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	const char *name = evicted ? "readonly-evicted" : "readonly-resident";
	struct h_mem m;

	h_mem_prepare(s, &m, 3, evicted ? 3 : 0);
	protect(&m, 0, m.len, PROT_READ);
	/* Region 0 read first; region 2's first touch is a store. */
	h_at("%s: store to read-only memory", name);
	H_CHECK(store_faults(m.base + 2 * R + 100), "%s: a store to read-only memory went through",
		name);
	h_at("%s: reading read-only memory", name);
	h_mem_check(&m, "read-only");
	/* Evicting read-only memory: allowed to refuse, not to lose data. */
	printf("%s: evicting read-only memory acted on %d regions\n", name, h_evict(s, m.base, m.len));
	h_mem_check(&m, "read-only, after an eviction attempt");
	protect(&m, 0, m.len, PROT_READ | PROT_WRITE);
	back_to_normal(s, &m, name);
	h_report(s, d, name);
	h_mem_free(&m);
}

/* Half of region 1 read-only (the region spans two VMAs), evicted before or
 * after; then back. */
static void readonly_part(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 3, 0);
	H_CHECK(h_evict(s, m.base + R, R) == 1, "evict region 1");
	protect(&m, R + R / 2, R, PROT_READ); /* second half of 1, first of 2 */
	H_CHECK(store_faults(m.base + R + R / 2 + 5), "readonly-part: a store went through");
	h_mem_check(&m, "half read-only");
	printf("readonly-part: evicting with a read-only part acted on %d regions\n",
	       h_evict(s, m.base, m.len));
	h_mem_check(&m, "half read-only, after an eviction attempt");
	h_mem_write(&m, R, 3 * P, 2); /* the writable half of region 1 */
	protect(&m, R + R / 2, R, PROT_READ | PROT_WRITE);
	back_to_normal(s, &m, "readonly-part");
	h_report(s, d, "readonly-part");
	h_mem_free(&m);
}

/* PROT_NONE while evicted, then read-write: the next touch restores. */
static void none_evicted(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 2, 2);
	protect(&m, 0, m.len, PROT_NONE);
	H_CHECK(store_faults(m.base + 8), "none-evicted: a store to PROT_NONE memory went through");
	protect(&m, 0, m.len, PROT_READ | PROT_WRITE);
	h_mem_check(&m, "after PROT_NONE and back");
	back_to_normal(s, &m, "none-evicted");
	h_report(s, d, "none-evicted");
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "readonly-resident", readonly, 0, 15 },
	{ "readonly-evicted", readonly, 1, 15 },
	{ "readonly-part", readonly_part, 0, 15 },
	{ "none-evicted", none_evicted, 0, 15 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
