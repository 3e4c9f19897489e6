/* SPDX-License-Identifier: MIT */
/*
 * The swap round trip, end to end: 512 MiB of heap-like data in 256 regions,
 * evicted by thpswapctl through the real daemon, then touched back (half by
 * read faults, half by write faults).  Checks the memory released (RSS), the
 * stored bytes as the daemon reports them and as the arena memfd really
 * holds them (its allocated blocks), every byte, and that >= 99 % of the
 * regions came back PMD-mapped (PAGEMAP_SCAN, not our own counters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datagen.h"
#include "harness.h"
#include "thpswap/thpswap.h"

#define NREG 256
#define SEED 0x5eed

static void check_all(char *base, const char *when)
{
	for (size_t i = 0; i < NREG; i++) {
		char *p = base + i * THPSWAP_REGION_SIZE;
		long bad;

		/* The first touch is a write fault for odd regions. */
		if (i & 1)
			__atomic_fetch_add(p, 0, __ATOMIC_RELAXED);
		bad = thp_datagen_check(p, THPSWAP_REGION_SIZE, THP_DATA_HEAPMIX, SEED, i);
		H_CHECK(bad < 0, "%s: region %zu differs at offset %ld", when, i, bad);
	}
}

int main(void)
{
	struct thpswap_session *s;
	struct thpswap_stats st;
	struct h_daemon d;
	char out[65536], pid[16];
	size_t rss0, rss1, huge, evicted_bytes;
	long long daemon_stored;
	uint64_t fallback0;
	void *mem, *bar;
	long pmd;
	int r;

	h_require_root();
	H_CHECK(h_daemon_start(&d, NULL) == 0, "start thpswapd");
	r = thpswap_open(&s, NULL);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	r = thpswap_map(s, NREG * THPSWAP_REGION_SIZE, &mem);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
	fallback0 = st.fallback_4k;
	for (size_t i = 0; i < NREG; i++)
		thp_datagen_fill((char *)mem + i * THPSWAP_REGION_SIZE, THPSWAP_REGION_SIZE,
				 THP_DATA_HEAPMIX, SEED, i);
	pmd = h_pmd_mapped(mem, NREG * THPSWAP_REGION_SIZE);
	H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
	/* Where the kernel had no huge page to give (a busy, fragmented
	 * machine), the agent serves 4 KiB pages and counts each such region
	 * in fallback_4k: any other region that is not one PMD is a failure. */
	if (pmd < NREG)
		printf("first touch: %ld of %d regions PMD-mapped, fallback_4k +%llu (no THP to be "
		       "had for the rest)\n", pmd, NREG,
		       (unsigned long long)(st.fallback_4k - fallback0));
	H_CHECK(pmd + (long)(st.fallback_4k - fallback0) >= NREG,
		"first touch gave %ld of %d regions PMD-mapped, and fallback_4k grew by %llu only",
		pmd, NREG, (unsigned long long)(st.fallback_4k - fallback0));

	for (int round = 0; round < 2; round++) {
		const char *evict[] = { "--json", "evict", "--pid", pid, "--all", NULL };
		const char *stats[] = { "--json", "clients", NULL };

		snprintf(pid, sizeof(pid), "%d", getpid());
		H_CHECK(h_rss(&rss0, &huge) == 0, "smaps_rollup");
		r = h_ctl(&d, out, sizeof(out), evict);
		H_CHECK(r == 0, "thpswapctl evict exited %d: %s", r, out);
		H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
		H_CHECK(st.evicted_ram + st.evicted_zero == NREG,
			"round %d: %llu ram + %llu zero of %d regions evicted", round,
			(unsigned long long)st.evicted_ram, (unsigned long long)st.evicted_zero, NREG);
		H_CHECK(h_rss(&rss1, &huge) == 0, "smaps_rollup");
		evicted_bytes = (size_t)NREG * THPSWAP_REGION_SIZE;
		H_CHECK(rss0 > rss1 && rss0 - rss1 >= evicted_bytes / 10 * 9,
			"RSS dropped %zu MiB for %zu MiB evicted", (rss0 - rss1) >> 20, evicted_bytes >> 20);
		r = h_ctl(&d, out, sizeof(out), stats);
		H_CHECK(r == 0, "thpswapctl clients exited %d", r);
		daemon_stored = h_json_u64(out, "stored_bytes");
		H_CHECK(daemon_stored == (long long)st.stored_bytes && st.stored_bytes > 0 &&
			st.stored_bytes < evicted_bytes,
			"daemon says %lld stored, client %llu", daemon_stored,
			(unsigned long long)st.stored_bytes);
		h_check_stored(s, NULL, round ? "round 1, evicted" : "round 0, evicted");
		printf("round %d: evicted %d regions, RSS -%zu MiB, stored %.1f MiB (ratio %.2f)\n",
		       round, NREG, (rss0 - rss1) >> 20, st.stored_bytes / 1048576.0,
		       (double)evicted_bytes / (double)st.stored_bytes);

		check_all(mem, round ? "second restore" : "first restore");
		pmd = h_pmd_mapped(mem, NREG * THPSWAP_REGION_SIZE);
		H_CHECK(pmd * 100 >= NREG * 99, "only %ld of %d regions PMD-mapped after restore", pmd, NREG);
		H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0, "stats");
		H_CHECK(st.resident == NREG && st.stored_bytes == 0, "%llu resident, %llu bytes still stored",
			(unsigned long long)st.resident, (unsigned long long)st.stored_bytes);
		printf("round %d: restored %d regions, %ld PMD-mapped, %llu faults\n", round, NREG, pmd,
		       (unsigned long long)st.faults);
		/* A restore frees its slot after waking the faulting thread. */
		bar = h_barrier_map(s);
		h_check_stored(s, bar, round ? "round 1, restored" : "round 0, restored");
		H_CHECK(thpswap_unmap(s, bar, THPSWAP_REGION_SIZE) == 0, "unmap the barrier");
	}
	H_CHECK(thpswap_close(s) == 0, "close");
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
	return H_PASS;
}
