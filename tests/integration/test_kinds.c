/* SPDX-License-Identifier: MIT */
/*
 * Regions of every kind an allocator leaves behind, each evicted and read
 * back in a real client: partly populated, PTE-mapped because no THP was
 * to be had at fault time, MADV_NOHUGEPAGE, split by a partial mprotect,
 * and MADV_FREE'd then partly written again.  Every byte is checked after
 * the restore, the restored mapping with PAGEMAP_SCAN (one PMD where the
 * mapping allows it, 4 KiB pages where it does not), the agent's counters
 * from the arena, and the kind `thpswapctl regions` gives each region.
 *
 * "No THP at fault time" is made per VMA, never with a system setting:
 * the memory is written under MADV_NOHUGEPAGE and registered afterwards
 * (registering makes it MADV_HUGEPAGE), as the adoption of an allocator's
 * arena finds it.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "util.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

/* What the agent did with one region, from the arena and pagemap. */
struct seen {
	long present, pmd;
	uint64_t ctr[THP_C__MAX];
};

static struct seen look(const struct h_mem *m)
{
	struct thp_arena_header h = h_arena_header(h_arena_fd());
	int pm = thp_pagemap_open(0);
	struct seen v;

	H_CHECK(pm >= 0, "open pagemap: %s", strerror(-pm));
	v.present = thp_pagemap_count_present(pm, (uint64_t)(uintptr_t)m->base,
					      (uint64_t)(uintptr_t)m->base + m->len);
	v.pmd = h_pmd_mapped(m->base, m->len);
	close(pm);
	memcpy(v.ctr, h.ctr, sizeof(v.ctr));
	return v;
}

#define DELTA(a, b, c) ((long long)((b).ctr[c] - (a).ctr[c]))

/* The kind thpswapctl --json regions gives the region at @addr. */
static void kind_of(const struct h_daemon *d, const void *addr, char *kind, size_t sz)
{
	static char out[1 << 16];
	char pid[16], a[24], obj[512];
	const char *argv[] = { "--json", "regions", "--pid", pid, NULL };
	int r;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(a, sizeof(a), "0x%lx", (unsigned long)(uintptr_t)addr);
	r = h_ctl(d, out, sizeof(out), argv);
	H_CHECK(r == 0, "thpswapctl regions --pid %s: exit %d", pid, r);
	H_CHECK(h_json_object(out, "addr", a, obj, sizeof(obj)) == 0, "no region %s in %s", a, out);
	H_CHECK(h_json_str(obj, "kind", kind, sz) == 0, "no kind in %s", obj);
}

/* @want: a kind, or several separated by '|'. */
static void want_kind(const struct h_daemon *d, const void *addr, const char *want, const char *what)
{
	char kind[32];
	bool ok = false;
	size_t n;

	kind_of(d, addr, kind, sizeof(kind));
	printf("%s: thpswapctl regions says kind %s\n", what, kind);
	n = strlen(kind);
	for (const char *w = want; w && !ok; w = strchr(w, '|') ? strchr(w, '|') + 1 : NULL) {
		const char *bar = strchr(w, '|');

		ok = n == (bar ? (size_t)(bar - w) : strlen(w)) && !strncmp(kind, w, n);
	}
	H_CHECK(ok, "%s: kind %s, want %s", what, kind, want);
}

/* The text table has the kind in its KIND column. */
static void want_kind_text(const struct h_daemon *d, const void *addr, const char *want)
{
	static char out[1 << 16];
	char pid[16], a[24], line[256], cols[3][32];
	const char *argv[] = { "regions", "--pid", pid, NULL };
	const char *p, *e;
	int r;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(a, sizeof(a), " 0x%lx ", (unsigned long)(uintptr_t)addr);
	r = h_ctl(d, out, sizeof(out), argv);
	H_CHECK(r == 0, "thpswapctl regions --pid %s: exit %d", pid, r);
	H_CHECK(strstr(out, " KIND "), "no KIND column in %s", out);
	p = strstr(out, a);
	H_CHECK(p, "no region%sin %s", a, out);
	while (p > out && p[-1] != '\n')
		p--;
	e = strchr(p, '\n');
	snprintf(line, sizeof(line), "%.*s", e ? (int)(e - p) : (int)strlen(p), p);
	printf("thpswapctl regions: %s\n", line);
	/* PID ADDRESS STATE KIND ... */
	H_CHECK(sscanf(line, "%*s %31s %31s %31s", cols[0], cols[1], cols[2]) == 3 &&
			!strcmp(cols[2], want), "kind column of \"%s\", want %s", line, want);
}

static uint32_t state_of(const void *addr)
{
	struct h_region_view v;

	h_arena_view(h_arena_fd(), addr, 1, &v);
	return v.state;
}

/*
 * Memory of one region as an allocator leaves it: mapped by the program,
 * written under MADV_NOHUGEPAGE (so the kernel gives it 4 KiB pages, as it
 * does when no THP is to be had), @pages of its pages written (every
 * @stride-th), then registered.
 */
static void adopted(struct thpswap_session *s, struct h_mem *m, unsigned pages, unsigned stride)
{
	char *p = thp_mmap_aligned(R, R, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	int r;

	H_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	H_CHECK(madvise(p, R, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	m->base = p;
	m->len = R;
	m->pg0 = 0;
	m->gen = calloc(R / P, sizeof(*m->gen));
	H_CHECK(m->gen, "out of memory");
	for (unsigned i = 0; i < pages; i++)
		h_mem_write(m, (size_t)i * stride * P, P, 1);
	H_CHECK(h_pmd_mapped(p, R) == 0, "written under MADV_NOHUGEPAGE, yet PMD-mapped");
	r = thpswap_register(s, p, R);
	H_CHECK(r == 0, "thpswap_register: %s", strerror(-r));
}

/* Evict the region of @m: 1 if it left, 0 if the agent left it resident. */
static int evict_one(struct thpswap_session *s, const struct h_mem *m, const char *what)
{
	struct seen a = look(m), b;
	int n = h_evict(s, m->base, m->len);

	b = look(m);
	printf("%s: evicted %d, state %s, present %ld, evict_4k +%lld, evict_split +%lld, "
	       "evict_filled +%lld\n", what, n, thp_state_name(state_of(m->base)), b.present,
	       DELTA(a, b, THP_C_EVICT_4K), DELTA(a, b, THP_C_EVICT_SPLIT),
	       DELTA(a, b, THP_C_EVICT_FILLED));
	if (n == 1)
		H_CHECK(b.present == 0, "%s: evicted, yet %ld pages are still mapped", what, b.present);
	return n;
}

/* Read every byte back and say how it came back. */
static struct seen read_back(const struct h_mem *m, const char *what)
{
	struct seen a = look(m), b;

	h_at("%s: reading back", what);
	h_mem_check(m, what);
	b = look(m);
	printf("%s: read back: state %s, %ld of %zu 2 MiB PMD-mapped, %ld pages present, "
	       "restores +%lld, restores_pmd +%lld, fallback_4k +%lld\n", what,
	       thp_state_name(state_of(m->base)), b.pmd, m->len / R, b.present,
	       DELTA(a, b, THP_C_RESTORES), DELTA(a, b, THP_C_RESTORES_PMD),
	       DELTA(a, b, THP_C_FALLBACK_4K));
	b.ctr[THP_C_FALLBACK_4K] -= a.ctr[THP_C_FALLBACK_4K];
	return b;
}

/* Every page of @m present, and exactly those the shadow says are zeros
 * mapped as the zero page. */
static void zero_pages(const struct h_mem *m, const char *what)
{
	uint64_t lo = (uint64_t)(uintptr_t)m->base;
	int pm = thp_pagemap_open(0);
	long present, zero, want = 0;

	H_CHECK(pm >= 0, "open pagemap: %s", strerror(-pm));
	present = thp_pagemap_count_present(pm, lo, lo + m->len);
	zero = thp_pagemap_count(pm, lo, lo + m->len, PAGE_IS_PRESENT | PAGE_IS_PFNZERO, 0);
	close(pm);
	for (size_t i = 0; i < m->len / P; i++)
		want += m->gen[i] == 0;
	printf("%s: restored in 4 KiB pages: %ld present, %ld of them the zero page (%ld zero in "
	       "the shadow)\n", what, present, zero, want);
	H_CHECK(present == (long)(m->len / P), "%s: %ld pages present after the restore", what, present);
	H_CHECK(zero == want, "%s: %ld zero pages, want %ld", what, zero, want);
}

/* Evicted, and back as one PMD-mapped THP. */
static void round_trip_pmd(struct thpswap_session *s, const struct h_daemon *d, struct h_mem *m,
			   const char *kind, const char *what)
{
	struct seen b;

	H_CHECK(evict_one(s, m, what) == 1, "%s: not evicted", what);
	want_kind(d, m->base, kind, what);
	b = read_back(m, what);
	H_CHECK(b.pmd == 1, "%s: restored, but not PMD-mapped", what);
}

/* (a) Partly populated: 100 of 512 pages written. */
static void partial(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	adopted(s, &m, 100, 5);
	round_trip_pmd(s, d, &m, "partial", "partial");
	/* Written again and evicted again: ordinary managed memory now. */
	h_mem_write(&m, 7 * P, 3 * P, 2);
	round_trip_pmd(s, d, &m, "pmd", "partial, second round");
	h_report(s, d, "partial");
	munmap(m.base, m.len);
	h_mem_free(&m);
}

/* (b) PTE-mapped because no THP was had at fault time: every page written. */
static void pte(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	adopted(s, &m, 512, 1);
	H_CHECK(look(&m).present == 512, "not every page present");
	round_trip_pmd(s, d, &m, "pte", "pte");
	h_report(s, d, "pte");
	munmap(m.base, m.len);
	h_mem_free(&m);
}

/*
 * (c) The program says MADV_NOHUGEPAGE after the region was managed: it is
 * evicted, and comes back in 4 KiB pages (counted in fallback_4k), every
 * time.  Variant 0: PMD-mapped when the program says so (evicted as the
 * THP it is; the kernel maps it back in 4 KiB pages and the agent notes
 * the kind then); 1: 100 pages written in 4 KiB pages before it was
 * registered.
 */
static void nohuge(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	const char *what = variant ? "nohuge-partial" : "nohuge";
	struct h_mem m;

	if (variant) {
		adopted(s, &m, 100, 5);
	} else {
		h_mem_map(s, &m, 1, 0);
		h_mem_write(&m, 0, R, 1);
		H_CHECK(h_pmd_mapped(m.base, R) == 1, "written, but not PMD-mapped");
	}
	H_CHECK(madvise(m.base, R, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	for (int round = 0; round < 2; round++) {
		struct seen a, b;

		H_CHECK(evict_one(s, &m, what) == 1, "%s: not evicted (round %d)", what, round);
		want_kind(d, m.base, variant == 0 && round == 0 ? "pmd" : "nohuge", what);
		/* Zapped while evicted: the restore gives those pages zeros. */
		if (round == 1)
			h_mem_zap(&m, 40 * P, 3 * P, MADV_DONTNEED);
		/* One read restores it all: every page there, the pages of
		 * zeros as the zero page (nothing allocated for them). */
		a = look(&m);
		(void)*(volatile char *)m.base;
		zero_pages(&m, what);
		b = read_back(&m, what);
		H_CHECK(b.pmd == 0, "%s: restored as a THP, though the program said MADV_NOHUGEPAGE", what);
		/* The restore wakes the faulter first and counts a THP the
		 * kernel would not map after (repair_pmd): wait for it. */
		for (uint64_t end = thp_now_ns() + 5000000000ull * h_slowdown();;) {
			b = look(&m);
			if (DELTA(a, b, THP_C_FALLBACK_4K) >= 1 || thp_now_ns() > end)
				break;
			usleep(1000);
		}
		H_CHECK(DELTA(a, b, THP_C_FALLBACK_4K) == 1 && DELTA(a, b, THP_C_RESTORES) == 1,
			"%s: fallback_4k +%lld, restores +%lld, want one each", what,
			DELTA(a, b, THP_C_FALLBACK_4K), DELTA(a, b, THP_C_RESTORES));
		want_kind(d, m.base, "nohuge", what);
		h_mem_write(&m, (size_t)(round + 3) * 10 * P, 2 * P, 3 + round);
	}
	H_CHECK(look(&m).ctr[THP_C_EVICT_4K] >= 1, "%s: no eviction in 4 KiB pages counted", what);
	h_mem_check(&m, what);
	h_report(s, d, what);
	if (variant)
		munmap(m.base, m.len);
	else
		thpswap_unmap(s, m.base, m.len);
	h_mem_free(&m);
	/* Its record is the next one taken: fresh memory there is one THP,
	 * whatever the record's last region was. */
	h_mem_map(s, &m, 1, 0);
	h_mem_write(&m, 0, R, 5);
	want_kind(d, m.base, "null", "fresh memory after it");
	H_CHECK(h_pmd_mapped(m.base, R) == 1, "%s: fresh memory after it not PMD-mapped", what);
	h_mem_check(&m, "fresh memory after it");
	thpswap_unmap(s, m.base, m.len);
	h_mem_free(&m);
}

/*
 * (d) Split by a partial mprotect: the second half read-only.  UFFDIO_MOVE
 * takes pages only out of a writable VMA, so the region cannot be emptied
 * in one step: it stays resident, counted in evict_split, and thpswapctl
 * shows it as split.  Made writable again, it is evicted as usual.
 */
static void split(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct seen a, b;
	struct h_mem m;

	h_mem_map(s, &m, 1, 0);
	h_mem_write(&m, 0, R, 1);
	H_CHECK(mprotect(m.base + R / 2, R / 2, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	a = look(&m);
	H_CHECK(evict_one(s, &m, "split") == 0, "split: evicted");
	b = look(&m);
	H_CHECK(DELTA(a, b, THP_C_EVICT_SPLIT) == 1, "split: not counted in evict_split");
	H_CHECK(state_of(m.base) == THP_ST_RESIDENT, "split: not resident");
	want_kind(d, m.base, "split", "split");
	want_kind_text(d, m.base, "split");
	h_mem_check(&m, "split, left resident");
	H_CHECK(mprotect(m.base + R / 2, R / 2, PROT_READ | PROT_WRITE) == 0, "mprotect: %s",
		strerror(errno));
	h_mem_write(&m, R / 2 + 9 * P, P, 2);
	round_trip_pmd(s, d, &m, "pte", "split, writable again");
	h_report(s, d, "split");
	thpswap_unmap(s, m.base, m.len);
	h_mem_free(&m);
}

/*
 * (e) MADV_FREE'd, then partly written again (an allocator reusing freed
 * memory).  A freed page reads as its old bytes or zeros; one written
 * since, as written.  Userspace cannot tell a FREE from a DONTNEED whose
 * zap has not landed (docs/ARCHITECTURE.md, "Zaps of resident regions"),
 * and nothing signals when the agent stops waiting for one: ask every
 * 50 ms, for at most 5 s, each skip counted as evict_zap_pending.
 */
static void free_reused(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	unsigned waited = 0;
	struct h_mem m;
	struct seen b;

	h_mem_map(s, &m, 1, 0);
	h_mem_write(&m, 0, R, 1);
	h_mem_zap(&m, 100 * P, 300 * P, MADV_FREE);
	h_mem_write(&m, 150 * P, 100 * P, 2);
	h_mem_check(&m, "free-reused, before eviction");
	for (;;) {
		struct seen a = look(&m);

		if (evict_one(s, &m, "free-reused") == 1)
			break;
		b = look(&m);
		H_CHECK(DELTA(a, b, THP_C_EVICT_ZAP_PENDING) == 1, "free-reused: left resident, "
			"not for a pending zap");
		H_CHECK(waited < 5000, "free-reused: still a zap pending after %u ms", waited);
		usleep(50000);
		waited += 50;
	}
	printf("free-reused: evicted %u ms after MADV_FREE\n", waited);
	/* MADV_PAGEOUT or reclaim may have dropped freed pages meanwhile.
	 * An attempt left alone for the pending zap made it whole first
	 * (make_whole collapses before the zap is checked): then it left as
	 * one PMD. */
	want_kind(d, m.base, waited ? "pmd|pte|partial" : "pte|partial", "free-reused");
	b = read_back(&m, "free-reused");
	H_CHECK(b.pmd == 1, "free-reused: restored, but not PMD-mapped");
	h_report(s, d, "free-reused");
	thpswap_unmap(s, m.base, m.len);
	h_mem_free(&m);
}

/*
 * MADV_NOHUGEPAGE regions evicted again and again while a thread writes
 * them: evictions cancelled by its faults move the pages back (4 KiB pages
 * and holes, as they left), and no write is lost.  The writer checks each page it writes
 * and owns the shadow; the evictions are counted, not timed.
 */
struct writer {
	struct h_mem *m;
	atomic_bool stop;
	sem_t go;	/* one fork per eviction round */
	atomic_uint writes;	/* read by the evicting thread while it runs */
	unsigned forks;
};

/* Forks while the evictions race the writer: a FORK read while a cancelled
 * eviction puts its pages back waits for that record (the put-back must
 * never wait for the fault thread in turn).  The child only exits.  One
 * fork per eviction round, as it starts: back to back, forks would starve
 * the evictions (each copies the evicted records into the child, and under
 * ThreadSanitizer each copies its shadow memory too). */
static void *fork_on(void *arg)
{
	struct writer *w = arg;

	for (;;) {
		pid_t pid;

		while (sem_wait(&w->go) && errno == EINTR)
			;
		if (atomic_load(&w->stop))
			break;
		pid = fork();

		H_CHECK(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		h_track(pid);
		H_CHECK(h_wait(pid) == 0, "a fork child failed");
		w->forks++;
	}
	return NULL;
}

static void *write_on(void *arg)
{
	struct writer *w = arg;
	struct h_mem *m = w->m;
	uint64_t x = 88172645463325252ull;

	while (!atomic_load(&w->stop)) {
		size_t pg;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		pg = x % (m->len / P);
		h_mem_write(m, pg * P, P, 2 + atomic_load(&w->writes) % 1000);
		H_CHECK(h_page_check(m->base + pg * P, m->pg0 + pg, m->gen[pg]) < 0,
			"page %zu reads other than just written", pg);
		atomic_fetch_add(&w->writes, 1);
	}
	return NULL;
}

static void nohuge_race(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct writer w = { 0 };
	struct seen a, b;
	pthread_t t, f;
	struct h_mem m;
	int evicted = 0, asked;
	uint64_t end;

	h_mem_map(s, &m, 2, 0);
	h_mem_write(&m, 0, m.len / 2, 1);	/* region 1 written only by the writer */
	H_CHECK(madvise(m.base, m.len, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	a = look(&m);
	w.m = &m;
	H_CHECK(sem_init(&w.go, 0, 0) == 0, "sem_init: %s", strerror(errno));
	H_CHECK(pthread_create(&t, NULL, write_on, &w) == 0, "pthread_create");
	if (variant)
		H_CHECK(pthread_create(&f, NULL, fork_on, &w) == 0, "pthread_create");
	/* At least 200 rounds, then on until the race was seen (a write and
	 * an eviction in 4 KiB pages or a cancelled one) or for 20 s: an
	 * eviction of a region whose fault is not served yet finds nothing to
	 * evict, and 200 of those can pass before the writer runs at all. */
	end = thp_now_ns() + 20000000000ull * h_slowdown();
	for (asked = 0;; asked++) {
		if (asked >= 200 && asked % 10 == 0) {
			b = look(&m);
			if ((atomic_load(&w.writes) > 0 &&
			     DELTA(a, b, THP_C_EVICT_4K) + DELTA(a, b, THP_C_EVICT_CANCELLED) > 0) ||
			    thp_now_ns() > end)
				break;
		}
		h_at("nohuge-race: eviction %d", asked);
		if (variant)
			sem_post(&w.go);
		evicted += h_evict(s, m.base, m.len);
	}
	atomic_store(&w.stop, true);
	sem_post(&w.go);
	pthread_join(t, NULL);
	if (variant)
		pthread_join(f, NULL);
	b = look(&m);
	printf("nohuge-race: %u writes, %u forks, %d evictions of %d asked, evict_4k +%lld, "
	       "evict_cancelled +%lld, fallback_4k +%lld, %ld PMD-mapped\n", atomic_load(&w.writes),
	       w.forks, evicted, asked,
	       DELTA(a, b, THP_C_EVICT_4K), DELTA(a, b, THP_C_EVICT_CANCELLED),
	       DELTA(a, b, THP_C_FALLBACK_4K), b.pmd);
	/* Every eviction may lose to the writer: moved out and back is a race too. */
	H_CHECK(atomic_load(&w.writes) > 0 && DELTA(a, b, THP_C_EVICT_4K) + DELTA(a, b, THP_C_EVICT_CANCELLED) > 0,
		"nohuge-race: nothing raced");
	h_mem_check(&m, "nohuge-race, after the race");
	/* 4 KiB pages a fork shared stay shared until written (MOVE says
	 * EBUSY, counted refused): written, each is ours alone again. */
	if (variant)
		h_mem_write(&m, 0, m.len, 3);
	H_CHECK(h_mem_evict(s, &m, "nohuge-race") == 2, "nohuge-race: not both evicted at the end");
	h_mem_check(&m, "nohuge-race, after a last round trip");
	H_CHECK(h_pmd_mapped(m.base, m.len) == 0, "nohuge-race: a THP in a MADV_NOHUGEPAGE range");
	h_report(s, d, "nohuge-race");
	thpswap_unmap(s, m.base, m.len);
	h_mem_free(&m);
	sem_destroy(&w.go);
}

/* A fork child of a process whose MADV_NOHUGEPAGE region is evicted (in
 * 4 KiB pages) reads it whole; so does the parent afterwards. */
static void nohuge_fork(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;
	pid_t pid;
	int st;

	adopted(s, &m, 100, 5);
	H_CHECK(madvise(m.base, R, MADV_NOHUGEPAGE) == 0, "MADV_NOHUGEPAGE: %s", strerror(errno));
	H_CHECK(evict_one(s, &m, "nohuge-fork") == 1, "nohuge-fork: not evicted");
	want_kind(d, m.base, "nohuge", "nohuge-fork");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		h_deadline(30);
		_exit(h_check(m.base, m.len, m.pg0, 0, m.gen, "nohuge-fork, the child") < 0 ? 0 : H_FAIL);
	}
	h_track(pid);
	st = h_wait(pid);
	H_CHECK(st == 0, "nohuge-fork: the child exited with %d", st);
	read_back(&m, "nohuge-fork, the parent");
	H_CHECK(h_pmd_mapped(m.base, R) == 0, "nohuge-fork: a THP in a MADV_NOHUGEPAGE range");
	h_report(s, d, "nohuge-fork");
	munmap(m.base, m.len);
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "partial", partial, 0, 20 },
	{ "pte", pte, 0, 20 },
	{ "nohuge", nohuge, 0, 20 },
	{ "nohuge-partial", nohuge, 1, 20 },
	{ "nohuge-race", nohuge_race, 0, 60 },
	{ "nohuge-race-fork", nohuge_race, 1, 60 },
	{ "nohuge-fork", nohuge_fork, 0, 30 },
	{ "split", split, 0, 20 },
	{ "free-reused", free_reused, 0, 20 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
