/* SPDX-License-Identifier: MIT */
/*
 * munmap of managed memory, whole regions and parts of them, resident or
 * evicted: the records of what is gone are freed (regions count, stored
 * bytes), a region left partly mapped is still served with its remaining
 * bytes intact, and an address that is mapped again reads what the new
 * mapping holds, never the old records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

static void unmap(void *addr, size_t len)
{
	h_at("munmap(%p, %zu)", addr, len);
	H_CHECK(munmap(addr, len) == 0, "munmap(%p, %zu): %s", addr, len, strerror(errno));
}

/* The check of [off, off+len) of @m only (the rest is unmapped). */
static void check_part(const struct h_mem *m, size_t off, size_t len, const char *what)
{
	long bad = h_check(m->base + off, len, m->pg0 + off / P, 0, m->gen + off / P, what);

	H_CHECK(bad < 0, "%s: byte %ld of the part at offset %zu differs", what, bad, off);
}

/* Whole regions by munmap(2): regions 1-2 of 4 resident, then region 0 of
 * the rest evicted; the records go, the stored bytes with them. */
static void whole(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);

	h_mem_prepare(s, &m, 4, evicted ? 4 : 0);
	a = h_stats(s);
	unmap(m.base + R, 2 * R);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("whole-%s: regions %llu -> %llu, stored %llu -> %llu\n", evicted ? "evicted" : "resident",
	       (unsigned long long)a.regions, (unsigned long long)b.regions,
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	H_CHECK(b.regions == a.regions - 2, "unmapped 2 of %llu regions, %llu left",
		(unsigned long long)a.regions, (unsigned long long)b.regions);
	if (evicted)
		H_CHECK(b.evicted_ram == 2 && b.stored_bytes < a.stored_bytes * 3 / 4 &&
			b.stored_bytes > a.stored_bytes / 4,
			"2 of 4 evicted regions unmapped: %llu in RAM, %llu of %llu bytes stored",
			(unsigned long long)b.evicted_ram, (unsigned long long)b.stored_bytes,
			(unsigned long long)a.stored_bytes);
	h_check_stored(s, bar, evicted ? "whole-evicted, after unmapping regions 1-2" :
		       "whole-resident, after unmapping regions 1-2");
	check_part(&m, 0, R, "region 0 after unmapping regions 1-2");
	check_part(&m, 3 * R, R, "region 3 after unmapping regions 1-2");
	/* Evicted now (again): its record and bytes go with its munmap. */
	H_CHECK(h_evict(s, m.base, R) == 1, "evict region 0");
	a = h_stats(s);
	unmap(m.base, R);
	h_agent_sync(bar);
	b = h_stats(s);
	H_CHECK(b.regions == a.regions - 1 && b.evicted_ram == 0 && b.stored_bytes == 0,
		"unmapped evicted region 0: regions %llu -> %llu, %llu in RAM, %llu bytes stored",
		(unsigned long long)a.regions, (unsigned long long)b.regions,
		(unsigned long long)b.evicted_ram, (unsigned long long)b.stored_bytes);
	check_part(&m, 3 * R, R, "region 3 at the end");
	h_report(s, d, evicted ? "whole-evicted" : "whole-resident");
	h_mem_free(&m);
}

/* thpswap_unmap of 2 MiB-aligned parts: the same accounting. */
static void api_unmap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	int r;

	h_mem_prepare(s, &m, 4, 0);
	H_CHECK(h_evict(s, m.base + 2 * R, 2 * R) == 2, "evict regions 2-3");
	a = h_stats(s);
	r = thpswap_unmap(s, m.base + R, 2 * R);
	H_CHECK(r == 0, "thpswap_unmap: %s", strerror(-r));
	b = h_stats(s);
	H_CHECK(b.regions == a.regions - 2 && b.evicted_ram == 1 && b.stored_bytes < a.stored_bytes,
		"thpswap_unmap of a resident and an evicted region: regions %llu -> %llu, "
		"%llu in RAM, stored %llu -> %llu", (unsigned long long)a.regions,
		(unsigned long long)b.regions, (unsigned long long)b.evicted_ram,
		(unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	check_part(&m, 0, R, "region 0 after thpswap_unmap");
	check_part(&m, 3 * R, R, "region 3 after thpswap_unmap");
	r = thpswap_unmap(s, m.base + R, R);
	H_CHECK(r == -EINVAL, "thpswap_unmap of unmanaged memory gave %d, not -EINVAL", r);
	h_report(s, d, "api-unmap");
	h_mem_free(&m);
}

/*
 * Parts of a region: [256 KiB, 1 MiB) and its last 4 KiB go; the rest of
 * the region stays, is read back, is not evicted (no PMD fits it any more)
 * and is read back again.  Then the rest goes in two more cuts, after which
 * the record must be gone.
 */
static void partial(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	const char *name = evicted ? "partial-evicted" : "partial-resident";
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);
	char w[96];
	int n;

	h_mem_prepare(s, &m, 2, evicted ? 2 : 0);
	a = h_stats(s);
	unmap(m.base + 64 * P, 192 * P);
	unmap(m.base + R - P, P);
	h_agent_sync(bar);
	b = h_stats(s);
	H_CHECK(b.regions == a.regions, "parts of a region unmapped: regions %llu -> %llu",
		(unsigned long long)a.regions, (unsigned long long)b.regions);
	snprintf(w, sizeof(w), "%s: what is left of region 0", name);
	h_at("%s: reading what is left", name);
	check_part(&m, 0, 64 * P, w);
	check_part(&m, 256 * P, R - 257 * P, w);
	check_part(&m, R, R, "region 1");
	printf("%s: after the cuts: ", name);
	h_report(s, d, "counters");
	h_at("%s: trying to evict the part left", name);
	/* No PMD can map a region that is partly unmapped: an eviction attempt
	 * must leave it alone, and intact. */
	n = h_evict(s, m.base, R);
	H_CHECK(n == 0, "%s: thpswap_advise(COLD) acted on %d regions of a partly unmapped region", name,
		n);
	check_part(&m, 0, 64 * P, w);
	check_part(&m, 256 * P, R - 257 * P, w);
	/* The rest in two cuts: the region is entirely gone. */
	a = h_stats(s);
	unmap(m.base, 64 * P);
	unmap(m.base + 256 * P, R - 257 * P);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("%s: region 0 gone in four cuts: regions %llu -> %llu, stored %llu -> %llu\n", name,
	       (unsigned long long)a.regions, (unsigned long long)b.regions,
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	H_CHECK(b.regions == a.regions - 1,
		"region 0 unmapped piece by piece, but the session still has %llu regions (was %llu)",
		(unsigned long long)b.regions, (unsigned long long)a.regions);
	check_part(&m, R, R, "region 1 at the end");
	h_report(s, d, name);
	h_mem_free(&m);
}

/*
 * The address comes back: a hole cut in an evicted region is mapped again
 * (plain anonymous memory, written), and a fully unmapped evicted region's
 * address is registered again with thpswap_register.  Neither may see the
 * old records; the region around the hole keeps its bytes.
 */
static void reuse(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m, fresh = { 0 };
	void *bar = h_barrier_map(s), *p;
	int r;

	h_mem_prepare(s, &m, 2, 2);
	/* A hole in region 0, mapped again and written before any fault. */
	unmap(m.base + 128 * P, 64 * P);
	p = mmap(m.base + 128 * P, 64 * P, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	H_CHECK(p == m.base + 128 * P, "mmap into the hole: %s", strerror(errno));
	h_at("reuse: writing the new mapping in the hole");
	h_mem_write(&m, 128 * P, 64 * P, 7);
	check_part(&m, 0, R, "region 0 around a remapped hole");
	/* Region 1 entirely unmapped, then the same range registered again. */
	unmap(m.base + R, R);
	h_agent_sync(bar);
	p = mmap(m.base + R, R, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	H_CHECK(p == m.base + R, "mmap region 1 again: %s", strerror(errno));
	r = thpswap_register(s, p, R);
	H_CHECK(r == 0, "thpswap_register of an address whose region was unmapped: %s", strerror(-r));
	fresh.base = p;
	fresh.len = R;
	fresh.pg0 = 1000000;
	fresh.gen = calloc(R / P, sizeof(uint32_t));
	H_CHECK(fresh.gen, "out of memory");
	h_at("reuse: reading the re-registered region");
	h_mem_check(&fresh, "re-registered region (must read zeros)");
	h_mem_write(&fresh, 0, R, 2);
	H_CHECK(h_evict(s, fresh.base, R) == 1, "evict the re-registered region");
	h_mem_check(&fresh, "re-registered region after a round trip");
	h_report(s, d, "reuse");
	h_mem_free(&fresh);
	h_mem_free(&m);
}

/*
 * munmap of an evicted @nreg-region managed mapping, a fresh mmap at the
 * same address and thpswap_register at once, 40 times: the register must
 * succeed the first time, and the counters must show the fresh regions only
 * (resident, nothing stored).  munmap(2) returns once the agent has read its
 * UNMAP event, and a library call first waits until every event read so far
 * is handled (docs/ARCHITECTURE.md): no sleep, no retry, no sync needed.
 * Before the loop: plain memory registered shows exactly its regions.
 */
static void remap_register(struct thpswap_session *s, const struct h_daemon *d, int nreg)
{
	struct thpswap_stats st;
	struct h_mem m;
	char name[32];
	void *p;
	int r;

	snprintf(name, sizeof(name), "remap-register-%d", nreg);
	p = h_reserve((size_t)nreg * R, 0);
	H_CHECK(mmap(p, (size_t)nreg * R, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == p, "mmap: %s", strerror(errno));
	m = (struct h_mem){ .base = p, .len = (size_t)nreg * R };
	m.gen = calloc(m.len / P, sizeof(*m.gen));
	H_CHECK(m.gen, "out of memory");
	h_mem_write(&m, 0, m.len, 1);
	r = thpswap_register(s, m.base, m.len);
	H_CHECK(r == 0, "%s: thpswap_register of plain memory: %s", name, strerror(-r));
	st = h_stats(s);
	H_CHECK(st.regions == (unsigned)nreg && st.resident == (unsigned)nreg && st.evicted_ram == 0,
		"%s: right after registering %d regions: regions=%llu resident=%llu evicted_ram=%llu",
		name, nreg, (unsigned long long)st.regions, (unsigned long long)st.resident,
		(unsigned long long)st.evicted_ram);
	for (int it = 0; it < 40; it++) {
		H_CHECK(h_evict(s, m.base, m.len) == nreg, "%s: iteration %d: evict %d regions", name, it,
			nreg);
		unmap(m.base, m.len);
		p = mmap(m.base, m.len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		H_CHECK(p == m.base, "%s: iteration %d: mmap at %p again: %s", name, it,
			(void *)m.base, strerror(errno));
		h_at("%s: iteration %d: thpswap_register", name, it);
		r = thpswap_register(s, m.base, m.len);
		H_CHECK(r == 0, "%s: iteration %d: thpswap_register right after munmap of an evicted "
			"managed mapping and a fresh mmap at the same address: %s", name, it,
			strerror(-r));
		st = h_stats(s);
		H_CHECK(st.regions == (unsigned)nreg && st.evicted_ram == 0 && st.stored_bytes == 0,
			"%s: iteration %d: right after registering %d fresh regions: regions=%llu "
			"evicted_ram=%llu stored=%llu", name, it, nreg, (unsigned long long)st.regions,
			(unsigned long long)st.evicted_ram, (unsigned long long)st.stored_bytes);
		memset(m.gen, 0, m.len / P * sizeof(*m.gen));
		h_mem_check(&m, "a fresh mapping registered again (must read zeros)");
		h_mem_write(&m, 0, m.len, (uint32_t)it + 2);
	}
	h_mem_evict(s, &m, name);
	h_mem_check(&m, "after the last round trip");
	h_report(s, d, name);
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "whole-resident", whole, 0, 30 },
	{ "whole-evicted", whole, 1, 30 },
	{ "api-unmap", api_unmap, 0, 30 },
	{ "partial-resident", partial, 0, 30 },
	{ "partial-evicted", partial, 1, 30 },
	{ "reuse", reuse, 0, 30 },
	{ "remap-register-1", remap_register, 1, 60 },
	{ "remap-register-2", remap_register, 2, 60 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
