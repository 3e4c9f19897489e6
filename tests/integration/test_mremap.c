/* SPDX-License-Identifier: MIT */
/*
 * mremap of managed memory, resident or evicted: moved (to a 2 MiB-aligned
 * destination with MREMAP_FIXED, over another managed mapping, to a
 * misaligned destination, with MREMAP_DONTUNMAP), grown and shrunk.  The
 * data follows the mapping; the old address is no longer managed; a grown
 * tail reads zeros; a cut tail's records are freed.  A second misaligned
 * move while the first's bytes are still being copied loses none.  Every round trip at the
 * new place checks that its regions really were evicted.
 */
#include <stdio.h>
#include <sys/mman.h>

#include "harness.h"
#include "util.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static void *do_mremap(void *old, size_t old_len, size_t new_len, int flags, void *to)
{
	void *p;

	h_at("mremap(%p, %zu, %zu, %#x, %p)", old, old_len, new_len, flags, to);
	p = mremap(old, old_len, new_len, flags, to);
	H_CHECK(p != MAP_FAILED, "mremap(%p, %zu, %zu, %#x, %p): %s", old, old_len, new_len, flags,
		to, strerror(errno));
	return p;
}

static const char *state_name(bool evicted)
{
	return evicted ? "evicted" : "resident";
}

/* Read everything (faulting evicted regions in), evict (every resident
 * region must go, and @expect_evicted regions must have been resident) and
 * read again. */
static void round_trip(struct thpswap_session *s, struct h_mem *m, const char *what, int expect_evicted)
{
	char w[128];
	int n;

	snprintf(w, sizeof(w), "%s: at the new address", what);
	h_at("%s", w);
	h_mem_check(m, w);
	n = h_mem_evict(s, m, what);
	H_CHECK(n == expect_evicted,
		"%s: thpswap_advise(COLD) at the new address acted on %d regions, not %d", what, n,
		expect_evicted);
	snprintf(w, sizeof(w), "%s: after a round trip at the new address", what);
	h_at("%s", w);
	h_mem_check(m, w);
}

/* A grown mapping: its first @nold regions were managed; the grown tail (one
 * region) becomes a region when it is first touched, so all go round trip
 * and come back PMD-mapped. */
static void round_trip_grown(struct thpswap_session *s, struct h_mem *big, size_t nold,
			     const char *what)
{
	struct h_region_view v;
	char w[128];
	long pmd;
	int n;

	snprintf(w, sizeof(w), "%s: at the new address", what);
	h_mem_check(big, w);
	h_arena_view(h_arena_fd(), big->base + nold * R, 1, &v);
	H_CHECK(v.nrec == 1, "%s: the grown tail, touched, is not managed (no record at %p)", what,
		(void *)(big->base + nold * R));
	n = h_mem_evict(s, big, what);
	H_CHECK(n == (int)nold + 1, "%s: thpswap_advise(COLD) acted on %d regions, not %zu", what, n,
		nold + 1);
	snprintf(w, sizeof(w), "%s: after a round trip at the new address", what);
	h_at("%s", w);
	h_mem_check(big, w);
	pmd = h_pmd_mapped(big->base, big->len);
	H_CHECK(pmd == (long)nold + 1, "%s: %ld of %zu regions PMD-mapped after the round trip", what, pmd,
		nold + 1);
}

/* Move 3 regions to a free 2 MiB-aligned address. */
static void move_aligned(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s), *old;
	char name[64];

	snprintf(name, sizeof(name), "move-aligned-%s", state_name(evicted));
	h_mem_prepare(s, &m, 3, evicted ? 3 : 0);
	a = h_stats(s);
	old = m.base;
	m.base = do_mremap(old, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(m.len, 0));
	h_agent_sync(bar);
	b = h_stats(s);
	H_CHECK(b.regions == a.regions && b.stored_bytes == a.stored_bytes,
		"%s: regions %llu -> %llu, stored %llu -> %llu across the move", name,
		(unsigned long long)a.regions, (unsigned long long)b.regions,
		(unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	H_CHECK(thpswap_advise(s, old, m.len, THPSWAP_ADVICE_COLD) == 0,
		"%s: the old address is still managed", name);
	round_trip(s, &m, name, 3);
	printf("%s: %ld of 3 regions PMD-mapped at the end\n", name, h_pmd_mapped(m.base, m.len));
	h_report(s, d, name);
	h_mem_free(&m);
}

/* Move region 1 of 3 out of the middle, onto another managed (evicted)
 * mapping: the destination's old records and bytes go, the moved data is
 * what reads there. */
static void move_over_managed(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m, dst, mid;
	void *bar = h_barrier_map(s);

	h_mem_prepare(s, &m, 3, 0);
	h_mem_map(s, &dst, 1, 5000);
	h_mem_write(&dst, 0, R, 9);
	H_CHECK(h_evict(s, m.base, m.len) == 3 && h_evict(s, dst.base, R) == 1, "evict 4 regions");
	a = h_stats(s);
	mid = m;
	mid.pg0 = m.pg0 + R / P;
	mid.gen = m.gen + R / P;
	mid.len = R;
	mid.base = do_mremap(m.base + R, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, dst.base);
	h_agent_sync(bar);
	b = h_stats(s);
	printf("move-over-managed: regions %llu -> %llu, evicted_ram %llu -> %llu, stored %llu -> %llu\n",
	       (unsigned long long)a.regions, (unsigned long long)b.regions,
	       (unsigned long long)a.evicted_ram, (unsigned long long)b.evicted_ram,
	       (unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	H_CHECK(b.regions == a.regions - 1 && b.evicted_ram == 3,
		"the destination's record must go: regions %llu -> %llu, %llu in RAM",
		(unsigned long long)a.regions, (unsigned long long)b.regions,
		(unsigned long long)b.evicted_ram);
	h_check_stored(s, bar, "move-over-managed, after the move");
	round_trip(s, &mid, "move-over-managed (moved region)", 1);
	H_CHECK(h_check(m.base, R, m.pg0, 0, m.gen, "region 0 left behind") < 0, "region 0");
	H_CHECK(h_check(m.base + 2 * R, R, m.pg0 + 2 * R / P, 0, m.gen + 2 * R / P,
			"region 2 left behind") < 0, "region 2");
	h_report(s, d, "move-over-managed");
	h_mem_free(&m);
	h_mem_free(&dst);
}

/* Grow in place by one region: the tail reads zeros, can be written and
 * becomes a region when touched; all of it goes round trip. */
static void grow_in_place(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct h_mem m, big;
	void *p;
	char name[64];
	int r;

	snprintf(name, sizeof(name), "grow-in-place-%s", state_name(evicted));
	h_mem_map(s, &m, 3, 0);
	/* Make room right after region 1: region 2 goes. */
	r = thpswap_unmap(s, m.base + 2 * R, R);
	H_CHECK(r == 0, "thpswap_unmap: %s", strerror(-r));
	m.len = 2 * R;
	h_mem_write(&m, 0, m.len, 1);
	if (evicted)
		H_CHECK(h_evict(s, m.base, m.len) == 2, "evict 2 regions");
	p = do_mremap(m.base, 2 * R, 3 * R, 0, NULL);
	H_CHECK(p == m.base, "grown in place at %p, not %p", p, (void *)m.base);
	big = m;
	big.len = 3 * R;
	big.gen = calloc(3 * R / P, sizeof(uint32_t));
	H_CHECK(big.gen, "out of memory");
	memcpy(big.gen, m.gen, 2 * R / P * sizeof(uint32_t));
	h_at("%s: reading the grown tail", name);
	h_mem_check(&big, "after growing in place (the tail must read zeros)");
	h_mem_write(&big, 2 * R, R, 2);
	round_trip_grown(s, &big, 2, name);
	h_report(s, d, name);
	h_mem_free(&big);
	h_mem_free(&m);
}

/* Grow while moving to a 2 MiB-aligned destination: the regions go along,
 * the tail becomes a region when touched. */
static void grow_move(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m, big;

	h_mem_prepare(s, &m, 2, 0);
	H_CHECK(h_evict(s, m.base, R) == 1, "evict region 0");
	big = m;
	big.len = 3 * R;
	big.gen = calloc(3 * R / P, sizeof(uint32_t));
	H_CHECK(big.gen, "out of memory");
	memcpy(big.gen, m.gen, 2 * R / P * sizeof(uint32_t));
	big.base = do_mremap(m.base, 2 * R, 3 * R, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(3 * R, 0));
	h_at("grow-move: reading");
	h_mem_check(&big, "after growing into a new place (the tail must read zeros)");
	h_mem_write(&big, 2 * R + 5 * P, P, 2);
	round_trip_grown(s, &big, 2, "grow-move");
	h_report(s, d, "grow-move");
	h_mem_free(&big);
	h_mem_free(&m);
}

/* Shrink by one region, then by half a region: the cut tail's record (and
 * stored bytes) go; what is left keeps its data, a half region included. */
static void shrink(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct thpswap_stats a, b;
	struct h_mem m, first;
	void *bar = h_barrier_map(s);
	char name[64];

	snprintf(name, sizeof(name), "shrink-%s", state_name(evicted));
	h_mem_prepare(s, &m, 3, evicted ? 3 : 0);
	a = h_stats(s);
	do_mremap(m.base, 3 * R, 2 * R, 0, NULL);
	m.len = 2 * R;
	h_agent_sync(bar);
	b = h_stats(s);
	printf("%s: regions %llu -> %llu, stored %llu -> %llu\n", name, (unsigned long long)a.regions,
	       (unsigned long long)b.regions, (unsigned long long)a.stored_bytes,
	       (unsigned long long)b.stored_bytes);
	H_CHECK(b.regions == a.regions - 1, "%s: regions %llu -> %llu after cutting one", name,
		(unsigned long long)a.regions, (unsigned long long)b.regions);
	h_check_stored(s, bar, name);
	if (evicted)
		H_CHECK(b.evicted_ram == 2 && b.stored_bytes < a.stored_bytes,
			"%s: %llu in RAM, stored %llu -> %llu", name, (unsigned long long)b.evicted_ram,
			(unsigned long long)a.stored_bytes, (unsigned long long)b.stored_bytes);
	if (evicted) { /* region 1 is still out when it is cut in half */
		struct h_region_view v;

		h_arena_view(h_arena_fd(), m.base + R, 1, &v);
		H_CHECK(v.nrec == 1 && v.state == THP_ST_RAM, "%s: region 1 is %s, not evicted", name,
			v.nrec ? thp_state_name(v.state) : "not managed");
	}
	do_mremap(m.base, 2 * R, R + R / 2, 0, NULL);
	m.len = R + R / 2;
	h_at("%s: reading what is left", name);
	h_mem_check(&m, "after shrinking to 1.5 regions");
	/* Region 0 is whole and must go; half a region has no PMD to move. */
	first = m;
	first.len = R;
	H_CHECK(h_mem_evict(s, &first, name) == 1, "%s: region 0 not evicted", name);
	printf("%s: evicting the half region left acted on %d\n", name, h_evict(s, m.base + R, R / 2));
	h_mem_check(&m, "after shrinking to 1.5 regions and a round trip");
	h_report(s, d, name);
	h_mem_free(&m);
}

/* A destination 4 KiB past a 2 MiB boundary: regions no longer match PMDs,
 * so the memory stops being managed (docs/ARCHITECTURE.md: the stored bytes
 * are written to their new place).  The data must still follow the
 * mapping. */
static void move_misaligned(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	void *bar = h_barrier_map(s);
	char name[64];
	int n;

	snprintf(name, sizeof(name), "move-misaligned-%s", state_name(evicted));
	h_mem_prepare(s, &m, 2, evicted ? 2 : 0);
	a = h_stats(s);
	m.base = do_mremap(m.base, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(m.len, P));
	h_agent_sync(bar);
	h_report(s, d, "after the move");
	/* No PMD fits a region there: the records are gone and the memory is
	 * plain memory now, its bytes copied to their new place. */
	b = h_stats(s);
	H_CHECK(b.regions == a.regions - 2 && b.stored_bytes == 0,
		"%s: regions %llu -> %llu, %llu bytes still stored after a misaligned move", name,
		(unsigned long long)a.regions, (unsigned long long)b.regions,
		(unsigned long long)b.stored_bytes);
	h_mem_check(&m, "at the misaligned address");
	n = h_evict(s, m.base, m.len);
	H_CHECK(n == 0, "%s: thpswap_advise(COLD) acted on %d regions of memory that is no longer "
		"managed", name, n);
	h_mem_check(&m, "at the misaligned address, after an eviction attempt");
	/* Zapped at the new address: zeros, not old records. */
	h_mem_zap(&m, R / 2, R, MADV_DONTNEED);
	h_mem_check(&m, "after DONTNEED at the misaligned address");
	h_report(s, d, name);
	h_mem_free(&m);
}

/*
 * Two misaligned moves of an evicted region in a row: the second comes while
 * the agent still copies the bytes for the first, and the copy must follow
 * them.  It can meet the second's change before its event (a COPY finds a
 * page's place gone before it says an event is pending), and, with
 * @variant 1, the second lands back over the 2 MiB where the region was
 * (its record is still keyed there until the copy ends).  The window is a
 * few microseconds: many rounds.
 */
static void move_misaligned_twice(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	uint64_t end = thp_now_ns() + 3000000000ull;
	unsigned rounds = 0;

	(void)d;
	while (thp_now_ns() < end || rounds < 20) {
		char *home = h_reserve(2 * R, 0), *to;
		struct h_mem m;

		h_mem_prepare(s, &m, 1, 0);
		m.base = do_mremap(m.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, home);
		H_CHECK(h_mem_evict(s, &m, "before the moves") == 1, "round %u: not evicted", rounds);
		m.base = do_mremap(m.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED,
				   h_reserve(R, P * (1 + rounds % (R / P - 1))));
		to = variant ? home + P * (1 + (rounds * 7) % (R / P - 1))
			     : h_reserve(R, P * (1 + (rounds * 7) % (R / P - 1)));
		m.base = do_mremap(m.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		h_mem_check(&m, variant ? "moved off alignment, then back over its old place"
					: "moved off alignment twice");
		H_CHECK(munmap(m.base, R) == 0 && munmap(home, 2 * R) == 0, "munmap: %s", strerror(errno));
		h_mem_free(&m);
		rounds++;
	}
	printf("move-misaligned-twice%s: %u rounds, every byte right\n", variant ? "-back" : "", rounds);
}

/* MREMAP_DONTUNMAP: the data moves, the old range stays mapped and reads
 * zeros. */
static void dontunmap(struct thpswap_session *s, const struct h_daemon *d, int evicted)
{
	struct h_mem m, old;
	char name[64];

	snprintf(name, sizeof(name), "dontunmap-%s", state_name(evicted));
	h_mem_prepare(s, &m, 2, evicted ? 2 : 0);
	old = m;
	old.gen = calloc(m.len / P, sizeof(uint32_t));
	H_CHECK(old.gen, "out of memory");
	m.base = do_mremap(m.base, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP,
			   h_reserve(m.len, 0));
	round_trip(s, &m, name, 2);
	h_at("%s: reading the old range", name);
	h_mem_check(&old, "the old range after MREMAP_DONTUNMAP (must read zeros)");
	h_report(s, d, name);
	h_mem_free(&old);
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "move-aligned-resident", move_aligned, 0, 15 },
	{ "move-aligned-evicted", move_aligned, 1, 15 },
	{ "move-over-managed", move_over_managed, 0, 15 },
	{ "grow-in-place-resident", grow_in_place, 0, 10 },
	{ "grow-in-place-evicted", grow_in_place, 1, 10 },
	{ "grow-move", grow_move, 0, 10 },
	{ "shrink-resident", shrink, 0, 15 },
	{ "shrink-evicted", shrink, 1, 15 },
	{ "move-misaligned-resident", move_misaligned, 0, 10 },
	{ "move-misaligned-evicted", move_misaligned, 1, 10 },
	{ "move-misaligned-twice", move_misaligned_twice, 0, 30 },
	{ "move-misaligned-twice-back", move_misaligned_twice, 1, 30 },
	{ "dontunmap-resident", dontunmap, 0, 10 },
	{ "dontunmap-evicted", dontunmap, 1, 10 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
