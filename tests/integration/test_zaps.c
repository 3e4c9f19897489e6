/* SPDX-License-Identifier: MIT */
/*
 * Zaps of resident regions against the kernel's swap.  The kernel zaps a
 * MADV_DONTNEED'd range after the agent reads its REMOVE, at a time the
 * agent cannot observe; the evictor waits until every zap read has landed
 * (rzap, lib/record.c), judging a page landed once it holds nothing.  A page
 * in the kernel's swap holds data: taking its zap for landed let an eviction
 * collapse the region (swapping the page back in) and move it out before
 * the zap came, and the zapped bytes came back (the stress test on a swap
 * device found it).  This test puts one page of a managed region in the
 * swap, notes a zap of it as a REMOVE read would, and asks whether it has
 * landed: not before the page is gone, and yes after the real MADV_DONTNEED;
 * then the region is evicted and must read zeros there, its bytes elsewhere.
 *
 * Links the library's internals (like test_samples.c) to note the zap and
 * ask.  Makes a swap device of its own (zram, else a swap file), removed on
 * every way out; none to be had here: exit 77 with the reason.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define REG THPSWAP_REGION_SIZE
#define PG 7 /* the page that goes to the swap */

/* Is page @pg of @m in the kernel's swap? */
static bool swapped(int pagemap, const struct h_mem *m, unsigned pg)
{
	uint64_t a = (uint64_t)(uintptr_t)m->base + (uint64_t)pg * H_PAGE;

	return thp_pagemap_count(pagemap, a, a + H_PAGE, PAGE_IS_SWAPPED, 0) == 1;
}

static void zap_over_swap_case(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	uint64_t a, pg = (uint64_t)PG * H_PAGE;
	struct h_mem m;
	long idx;

	(void)d;
	(void)variant;
	h_mem_map(s, &m, 1, 0);
	h_mem_write(&m, 0, REG, 1);
	a = (uint64_t)(uintptr_t)m.base;
	/* Reclaim may find the page busy once; it is ours alone. */
	for (int k = 0; k < 20 && !swapped(s->pagemap, &m, PG); k++)
		H_CHECK(madvise(m.base + pg, H_PAGE, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s",
			strerror(errno));
	H_CHECK(swapped(s->pagemap, &m, PG), "page %d not in the swap after 20 MADV_PAGEOUTs", PG);
	idx = rt_lookup(s, a);
	H_CHECK(idx >= 0, "no record for the region at %p", (void *)m.base);
	/* What the fault thread notes as it reads a REMOVE of a resident
	 * region (events.c, note_zap). */
	rzap_note(s, (uint32_t)idx, a, a + pg, a + pg + H_PAGE);
	H_CHECK(rzap_in_flight(s, (uint32_t)idx, a),
		"a zap of a page in the kernel's swap taken as landed while the page is still there");
	/* The real thing: madvise returns after its zap has landed. */
	h_mem_zap(&m, pg, H_PAGE, MADV_DONTNEED);
	H_CHECK(!rzap_in_flight(s, (uint32_t)idx, a), "a zap that has landed still in flight");
	H_CHECK(h_mem_evict(s, &m, "zapped over the swap") == 1, "the region was not evicted");
	h_mem_check(&m, "after the eviction");
	h_mem_free(&m);
	printf("zap-over-swap: page %d swapped, its zap in flight until MADV_DONTNEED, then zeros\n", PG);
}

static const struct h_case cases[] = {
	{ "zap-over-swap", zap_over_swap_case, 0, 60 },
};

int main(int argc, char **argv)
{
	char why[256], why2[256];

	if (h_swap_up(64, why, sizeof(why)) && h_swap_file_up(64, why2, sizeof(why2))) {
		printf("skip: no swap device can be made here: %s; %s\n", why, why2);
		return H_SKIP;
	}
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
