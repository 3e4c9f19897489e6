/* SPDX-License-Identifier: MIT */
/*
 * MADV_DONTNEED and MADV_FREE on managed memory, whole regions and 4 KiB
 * sub-ranges, resident or evicted.  A zapped page reads zeros and the rest
 * keeps its data; a freed page reads its old bytes or zeros, never anything
 * else, and a page written after the free keeps what was written; an
 * evicted range that is zapped or freed stops being stored (stored_bytes,
 * and the arena memfd's allocated blocks).  Regions with a 4 KiB hole,
 * partly populated, or mapped by 4 KiB page table entries are evicted like
 * any other, the hole reading zeros, and come back as one PMD-mapped THP.
 * Every check is against a shadow (a generation per 4 KiB page).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "pagemap.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

/* Zap list: [region, first page, pages]. */
struct sub {
	size_t reg, page, n;
};

static const struct sub subs[] = {
	{ 0, 0, 1 },	/* the first page of a region */
	{ 0, 7, 1 },
	{ 0, 511, 1 },	/* its last page */
	{ 1, 100, 4 },	/* 16 KiB inside */
	{ 1, 511, 2 },	/* the last of region 1 and the first of region 2 */
};

static size_t sub_off(const struct sub *z)
{
	return z->reg * R + z->page * P;
}

/*
 * After MADV_FREE of resident memory: userspace cannot tell a FREE from a
 * MADV_DONTNEED whose zap has not landed yet (both leave the pages mapped),
 * so the agent leaves such a region alone, counting evict_zap_pending, until
 * the REMOVE is two seconds old at most (docs/ARCHITECTURE.md, "Zaps of
 * resident regions").  The first try comes milliseconds after the FREE, with
 * pages written since still mapped: it must leave them for that reason.
 * Nothing signals when the zaps are old enough: ask every 50 ms, and fail if
 * a region is still resident after 5 s.  A later try may skip a region for
 * another, passing reason too (busy: an event being handled, or the daemon's
 * own loop evicting the same region), so only the first try's reason is
 * checked; the reasons of every other kind of skip are printed.
 */
static unsigned long long moved_by(const struct thp_arena_header *a,
				   const struct thp_arena_header *b, enum thp_counter c)
{
	return (unsigned long long)(b->ctr[c] - a->ctr[c]);
}

static void evict_after_free(struct thpswap_session *s, struct h_mem *m, const char *what)
{
	int fd = h_arena_fd();
	unsigned waited = 0;

	for (;;) {
		struct thp_arena_header a = h_arena_header(fd), b;
		int n = h_evict(s, m->base, m->len);
		unsigned long long zap, busy, split, refused, cancelled;

		b = h_arena_header(fd);
		if (b.ctr[THP_C_RESIDENT] == 0)
			break;
		zap = moved_by(&a, &b, THP_C_EVICT_ZAP_PENDING);
		busy = moved_by(&a, &b, THP_C_EVICT_BUSY);
		split = moved_by(&a, &b, THP_C_EVICT_SPLIT);
		refused = moved_by(&a, &b, THP_C_EVICT_REFUSED);
		cancelled = moved_by(&a, &b, THP_C_EVICT_CANCELLED);
		if (waited == 0 || busy + split + refused + cancelled)
			printf("%s: after %u ms: %d evicted, %llu resident (skips: zap pending %llu, "
			       "busy %llu, split %llu, refused %llu, cancelled %llu)\n", what, waited,
			       n, (unsigned long long)b.ctr[THP_C_RESIDENT], zap, busy, split,
			       refused, cancelled);
		H_CHECK(waited > 0 || zap > 0,
			"%s: right after MADV_FREE, regions left resident without an "
			"evict_zap_pending skip", what);
		H_CHECK(waited < 5000, "%s: still resident after %u ms", what, waited);
		usleep(50000);
		waited += 50;
	}
	H_CHECK(waited > 0, "%s: evicted right after MADV_FREE, with written pages of it mapped", what);
	printf("%s: evictable %u ms after MADV_FREE (zap pending meanwhile)\n", what, waited);
}

/* Evict (every resident region must go) and read everything back,
 * checking before and after. */
static void round_trip(struct thpswap_session *s, struct h_mem *m, const char *what)
{
	char w[96];

	snprintf(w, sizeof(w), "%s, before eviction", what);
	h_mem_check(m, w);
	h_mem_evict(s, m, what);
	snprintf(w, sizeof(w), "%s, after evict + restore", what);
	h_at("%s: reading back", what);
	h_mem_check(m, w);
}

/* Whole regions 1-2 of 4, resident: zeros; the neighbours intact. */
static void dontneed_whole_resident(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 4, 0);
	h_at("dontneed-whole-resident: zap");
	h_mem_zap(&m, R, 2 * R, MADV_DONTNEED);
	h_mem_check(&m, "after DONTNEED of regions 1-2");
	h_mem_write(&m, R, R / 2, 2); /* written again: back as data */
	round_trip(s, &m, "dontneed-whole-resident");
	h_report(s, d, "dontneed-whole-resident");
	h_mem_free(&m);
}

/* Whole regions 1-2 of 4, evicted: their records go (stored bytes fall,
 * two fewer evicted_ram) and they read zeros. */
static void dontneed_whole_evicted(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);
	int n;

	h_mem_prepare(s, &m, 4, 0);
	n = h_evict(s, m.base, m.len);
	a = h_stats(s);
	H_CHECK(n == 4 && a.evicted_ram == 4 && a.stored_bytes > 0,
		"evicted %d of 4 (ram %llu, stored %llu)", n, (unsigned long long)a.evicted_ram,
		(unsigned long long)a.stored_bytes);
	h_at("dontneed-whole-evicted: zap");
	h_mem_zap(&m, R, 2 * R, MADV_DONTNEED);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("dontneed-whole-evicted: stored %llu -> %llu bytes, evicted_ram %llu -> %llu\n",
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes,
	       (unsigned long long)a.evicted_ram, (unsigned long long)b.evicted_ram);
	H_CHECK(b.evicted_ram == 2 && b.stored_bytes < a.stored_bytes * 3 / 4,
		"after zapping 2 of 4 evicted regions: %llu still in RAM, %llu of %llu bytes stored",
		(unsigned long long)b.evicted_ram, (unsigned long long)b.stored_bytes,
		(unsigned long long)a.stored_bytes);
	h_check_stored(s, bar, "dontneed-whole-evicted, after the zap");
	h_mem_check(&m, "after DONTNEED of evicted regions 1-2");
	b = h_stats(s);
	H_CHECK(b.stored_bytes == 0 && b.evicted_ram == 0, "all read back, still %llu bytes stored",
		(unsigned long long)b.stored_bytes);
	round_trip(s, &m, "dontneed-whole-evicted");
	h_report(s, d, "dontneed-whole-evicted");
	h_mem_free(&m);
}

static void zap_subs(struct h_mem *m, int advice)
{
	for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++) {
		h_at("zap sub-range %zu (region %zu page %zu, %zu pages)", k, subs[k].reg,
		     subs[k].page, subs[k].n);
		h_mem_zap(m, sub_off(&subs[k]), subs[k].n * P, advice);
	}
}

/* 4 KiB sub-ranges of resident regions; then the holes are touched, some
 * written, and the regions go round trip. */
static void dontneed_4k_resident(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 3, 0);
	zap_subs(&m, MADV_DONTNEED);
	h_mem_check(&m, "after DONTNEED of 4 KiB sub-ranges (resident)");
	printf("dontneed-4k-resident: %ld of 3 regions PMD-mapped after the zaps\n",
	       h_pmd_mapped(m.base, m.len));
	/* Region 1: fill its holes (write faults on them); region 0 keeps
	 * them. */
	h_mem_write(&m, sub_off(&subs[3]), subs[3].n * P, 2);
	h_mem_write(&m, sub_off(&subs[4]), P, 2);
	round_trip(s, &m, "dontneed-4k-resident");
	printf("dontneed-4k-resident: %ld of 3 regions PMD-mapped at the end\n",
	       h_pmd_mapped(m.base, m.len));
	h_report(s, d, "dontneed-4k-resident");
	h_mem_free(&m);
}

/* 4 KiB sub-ranges of evicted regions (and of one evicted as all-zero):
 * the zapped pages read zeros, the rest its data. */
static void dontneed_4k_evicted(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);
	int n;

	h_mem_map(s, &m, 4, 0);
	h_mem_write(&m, 0, 3 * R, 1);
	memset(m.base + 3 * R, 0, R); /* a THP of zeros: evicted as zero */
	n = h_evict(s, m.base, m.len);
	a = h_stats(s);
	H_CHECK(n == 4 && a.evicted_ram == 3 && a.evicted_zero == 1,
		"evicted %d of 4 (ram %llu, zero %llu)", n, (unsigned long long)a.evicted_ram,
		(unsigned long long)a.evicted_zero);
	zap_subs(&m, MADV_DONTNEED);
	h_mem_zap(&m, 3 * R + 9 * P, 3 * P, MADV_DONTNEED);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("dontneed-4k-evicted: stored %llu -> %llu bytes, evicted_ram %llu -> %llu\n",
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes,
	       (unsigned long long)a.evicted_ram, (unsigned long long)b.evicted_ram);
	/* Partly zapped regions may stay stored (with the zapped pages
	 * remembered) or be restored: only the bytes decide. */
	H_CHECK(b.stored_bytes <= a.stored_bytes, "zaps made the stored bytes grow: %llu -> %llu",
		(unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	h_check_stored(s, bar, "dontneed-4k-evicted, after the zaps");
	h_mem_check(&m, "after DONTNEED of 4 KiB sub-ranges (evicted)");
	round_trip(s, &m, "dontneed-4k-evicted");
	h_report(s, d, "dontneed-4k-evicted");
	h_mem_free(&m);
}

/* One zap from the middle of region 0 (resident) through region 1
 * (evicted) to the middle of region 2 (evicted). */
static void dontneed_mixed_span(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 4, 0);
	H_CHECK(h_evict(s, m.base + R, 2 * R) == 2, "evict regions 1-2");
	h_at("dontneed-mixed-span: zap");
	h_mem_zap(&m, R / 2 + 3 * P, 2 * R, MADV_DONTNEED);
	h_mem_check(&m, "after DONTNEED across resident and evicted regions");
	round_trip(s, &m, "dontneed-mixed-span");
	h_report(s, d, "dontneed-mixed-span");
	h_mem_free(&m);
}

static size_t count_zero_pages(const struct h_mem *m)
{
	size_t n = 0;

	for (size_t o = 0; o < m->len; o += P)
		n += (m->gen[o / P] & H_OR_ZERO) && h_page_check(m->base + o, 0, 0) < 0;
	return n;
}

/* MADV_FREE of resident memory: whole region 0, sub-ranges elsewhere; some
 * freed pages written again.  Then a round trip, and MADV_PAGEOUT (which
 * discards clean freed pages) and another. */
static void free_resident(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;
	size_t z0, z1;

	h_mem_prepare(s, &m, 3, 0);
	h_at("free-resident: MADV_FREE");
	h_mem_zap(&m, 0, R, MADV_FREE);
	zap_subs(&m, MADV_FREE);
	h_mem_check(&m, "after MADV_FREE (resident)");
	h_mem_write(&m, 0, 64 * P, 2);		/* written after the free */
	h_mem_write(&m, sub_off(&subs[3]) + P, P, 2);
	h_mem_check(&m, "free-resident, freed pages written");
	z0 = count_zero_pages(&m);
	/* Reclaim discards clean freed pages (no swap needed): the region is
	 * then (partly) empty while its record says resident. */
	h_at("free-resident: MADV_PAGEOUT");
	H_CHECK(madvise(m.base, m.len, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s", strerror(errno));
	h_mem_check(&m, "free-resident, after MADV_PAGEOUT");
	z1 = count_zero_pages(&m);
	evict_after_free(s, &m, "free-resident");
	round_trip(s, &m, "free-resident");
	printf("free-resident: freed pages reading zeros: %zu before MADV_PAGEOUT, %zu after\n", z0, z1);
	h_report(s, d, "free-resident");
	h_mem_free(&m);
}

/* MADV_FREE of evicted memory: whole region 0 and sub-ranges; the stored
 * bytes are dropped; a freed page written afterwards keeps what was
 * written. */
static void free_evicted(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);

	h_mem_prepare(s, &m, 3, 3);
	a = h_stats(s);
	h_at("free-evicted: MADV_FREE");
	h_mem_zap(&m, 0, R, MADV_FREE);
	zap_subs(&m, MADV_FREE);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("free-evicted: stored %llu -> %llu bytes, evicted_ram %llu -> %llu\n",
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes,
	       (unsigned long long)a.evicted_ram, (unsigned long long)b.evicted_ram);
	/* Region 0 wholly freed: its bytes go; regions 1 and 2 partly. */
	H_CHECK(b.stored_bytes < a.stored_bytes && b.evicted_ram <= 2,
		"after MADV_FREE of evicted region 0 (and parts of 1-2): %llu regions, %llu of %llu "
		"bytes stored",
		(unsigned long long)b.evicted_ram, (unsigned long long)b.stored_bytes,
		(unsigned long long)a.stored_bytes);
	h_check_stored(s, bar, "free-evicted, after MADV_FREE");
	h_mem_write(&m, 5 * P, 2 * P, 3);
	h_mem_write(&m, sub_off(&subs[3]), P, 3);
	h_mem_check(&m, "after MADV_FREE (evicted) and writes");
	round_trip(s, &m, "free-evicted");
	printf("free-evicted: freed pages reading zeros: %zu\n", count_zero_pages(&m));
	h_report(s, d, "free-evicted");
	h_mem_free(&m);
}

/* ---- regions that are not one PMD-mapped THP ---- */

/* Evict @m's one region (it must go, to RAM), read it back (a hole reads
 * zeros) and find it one PMD-mapped THP again. */
static void evict_and_back(struct thpswap_session *s, struct h_mem *m, const char *name)
{
	char w[128];
	long pmd;

	H_CHECK(h_mem_evict(s, m, name) == 1, "%s: the region was not evicted", name);
	snprintf(w, sizeof(w), "%s, after evict + restore", name);
	h_at("%s: reading back", name);
	h_mem_check(m, w);
	pmd = h_pmd_mapped(m->base, m->len);
	H_CHECK(pmd == 1, "%s: the region came back %sPMD-mapped (PAGEMAP_SCAN: %ld)", name,
		pmd == 1 ? "" : "not ", pmd);
}

/* A resident region with one 4 KiB MADV_DONTNEED hole (what allocators do
 * to free memory), the hole left alone or read (a read fault fills it with
 * zeros, 4 KiB of them). */
static void hole_4k(struct thpswap_session *s, const struct h_daemon *d, int read_hole)
{
	const char *name = read_hole ? "hole-4k-read" : "hole-4k";
	struct h_mem m;
	long present;
	int pm;

	h_mem_prepare(s, &m, 1, 0);
	h_mem_zap(&m, 7 * P, P, MADV_DONTNEED);
	if (read_hole)
		H_CHECK(h_page_check(m.base + 7 * P, 0, 0) < 0, "%s: the hole does not read zeros", name);
	pm = thp_pagemap_open(0);
	H_CHECK(pm >= 0, "open pagemap: %s", strerror(-pm));
	present = thp_pagemap_count_present(pm, (uint64_t)(uintptr_t)m.base,
					    (uint64_t)(uintptr_t)m.base + R);
	close(pm);
	printf("%s: %ld of 512 pages present before the eviction\n", name, present);
	H_CHECK(present == (read_hole ? 512 : 511), "%s: %ld pages present, want %d", name, present,
		read_hole ? 512 : 511);
	evict_and_back(s, &m, name);
	h_report(s, d, name);
	h_mem_free(&m);
}

/* Plain anonymous memory at a 2 MiB boundary, faulted in 4 KiB pages
 * (MADV_NOHUGEPAGE until thpswap_register makes it THP-eligible). */
static void plain_mem(struct h_mem *m, uint64_t pg0)
{
	char *p = h_reserve(R, 0);

	H_CHECK(mmap(p, R, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p,
		"mmap at %p: %s", (void *)p, strerror(errno));
	H_CHECK(madvise(p, R, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	m->base = p;
	m->len = R;
	m->pg0 = pg0;
	m->gen = calloc(R / P, sizeof(*m->gen));
	H_CHECK(m->gen, "out of memory");
}

static void register_plain(struct thpswap_session *s, struct h_mem *m, const char *name)
{
	int r = thpswap_register(s, m->base, m->len);

	H_CHECK(r == 0, "%s: thpswap_register: %s", name, strerror(-r));
	printf("%s: %ld of 1 regions PMD-mapped after thpswap_register\n", name,
	       h_pmd_mapped(m->base, m->len));
}

/* Most of a managed THP zapped: 112 of its 512 pages left, mapped by PTEs. */
static void partly_populated(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 1, 0);
	h_mem_zap(&m, 100 * P, 400 * P, MADV_DONTNEED);
	evict_and_back(s, &m, "partly-populated");
	h_report(s, d, "partly-populated");
	h_mem_free(&m);
}

/* Plain memory written in three places only, then registered. */
static void register_partly_populated(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	plain_mem(&m, 0);
	h_mem_write(&m, 0, 100 * P, 1);
	h_mem_write(&m, 300 * P, 10 * P, 1);
	h_mem_write(&m, 511 * P, P, 1);
	register_plain(s, &m, "register-partly-populated");
	evict_and_back(s, &m, "register-partly-populated");
	h_report(s, d, "register-partly-populated");
	h_mem_free(&m);
}

/* Every page written in 4 KiB pages, then registered. */
static void pte_mapped_nohugepage(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	plain_mem(&m, 0);
	h_mem_write(&m, 0, R, 1);
	H_CHECK(h_pmd_mapped(m.base, R) == 0, "faulted under MADV_NOHUGEPAGE, yet PMD-mapped");
	register_plain(s, &m, "pte-mapped-nohugepage");
	evict_and_back(s, &m, "pte-mapped-nohugepage");
	h_report(s, d, "pte-mapped-nohugepage");
	h_mem_free(&m);
}

/* A managed THP whose PMD mapping an mprotect of one page split (and the
 * mprotect back left split): still one THP, mapped by 512 PTEs. */
static void pte_mapped_mprotect(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 1, 0);
	H_CHECK(mprotect(m.base + 5 * P, P, PROT_READ) == 0 &&
		mprotect(m.base + 5 * P, P, PROT_READ | PROT_WRITE) == 0, "mprotect: %s",
		strerror(errno));
	H_CHECK(h_pmd_mapped(m.base, R) == 0, "pte-mapped-mprotect: still PMD-mapped after an "
		"mprotect of one page and back");
	evict_and_back(s, &m, "pte-mapped-mprotect");
	h_report(s, d, "pte-mapped-mprotect");
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "dontneed-whole-resident", dontneed_whole_resident, 0, 30 },
	{ "dontneed-whole-evicted", dontneed_whole_evicted, 0, 30 },
	{ "dontneed-4k-resident", dontneed_4k_resident, 0, 30 },
	{ "dontneed-4k-evicted", dontneed_4k_evicted, 0, 30 },
	{ "dontneed-mixed-span", dontneed_mixed_span, 0, 30 },
	{ "free-resident", free_resident, 0, 30 },
	{ "free-evicted", free_evicted, 0, 30 },
	{ "hole-4k", hole_4k, 0, 30 },
	{ "hole-4k-read", hole_4k, 1, 30 },
	{ "partly-populated", partly_populated, 0, 30 },
	{ "register-partly-populated", register_partly_populated, 0, 30 },
	{ "pte-mapped-nohugepage", pte_mapped_nohugepage, 0, 30 },
	{ "pte-mapped-mprotect", pte_mapped_mprotect, 0, 30 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
