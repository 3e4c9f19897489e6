/* SPDX-License-Identifier: MIT */
/*
 * The kernel tier: regions handed to the kernel's swap (MADV_PAGEOUT) and
 * collapsed back into one PMD by the agent (lib/kswap.c).  The test makes
 * its own swap device (a zram device: hot_add, disksize, a swap header,
 * swapon) and removes it on every way out; no swap device to be had here:
 * exit 77 with the reason.  It never touches zswap.
 *
 *   noswap   (run before the device exists, when no other swap is on)
 *            THPSWAP_ADVICE_PAGEOUT is refused, counted kswap_noswap, and
 *            the regions stay PMD-mapped and right.
 *   kernel   the kernel's own behaviour this tier rests on, on a region
 *            registered MISSING as the agent registers it, without thpswap:
 *            MADV_PAGEOUT leaves swap PTEs (pagemap, vmstat), a read swaps in
 *            4 KiB pages without a userfaultfd fault, MADV_COLLAPSE brings
 *            back one PMD (timed), and UFFDIO_MOVE of a partly swapped
 *            region moves its swap entries.  Prints the numbers.
 *   tier     N regions paged out through the tier: they leave (pagemap:
 *            swapped, nothing present; pswpout grew), every byte reads back
 *            right, and the agent makes each one PMD again within a bound
 *            (the counter and pagemap polled against a deadline).
 *   evict    paged out, then evicted by thpswap (the swapped pages brought
 *            back first) and restored: every byte right, PMD-mapped; also
 *            (evict-own-pageout) paged out by the client's own MADV_PAGEOUT.
 *   register-swapped  memory the kernel swapped out before thpswap_register
 *            is registered RESIDENT, evicted and restored whole.
 *   pinned   a pinned region is refused and stays resident.
 *   admin    thpswapctl evict --tier kernel pages a client's regions out.
 *   race     two threads read random pages (each checked) while the regions
 *            are paged out, evicted to RAM and restored over and over
 *            (THPSWAP_TEST_SECONDS, default 3); then every byte, and every
 *            region PMD-mapped again.
 *   zero-subpages  (last, on a swap file of its own instead of the zram
 *            device) heap-like regions, a quarter of their pages zero, which
 *            the kernel maps to the zero page when it splits a THP to swap
 *            it out to a file: paged out and only read back, they are not
 *            brought in before the read (the zero pages are no touch), every
 *            byte is right, and each is one PMD again within 10 s (the zero
 *            pages, which a collapse refuses in registered memory, replaced).
 *   incompressible  (a daemon of its own, --tiers=ram,kernel) regions of
 *            random bytes asked to go (THPSWAP_ADVICE_COLD, and thpswapctl
 *            evict): the codec cannot shrink them, so they go to the
 *            kernel's swap (swapped, marked, pswpout) instead of staying
 *            resident; read back right and PMD-mapped again within 10 s; a
 *            second time straight to the swap, without compressing again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "datagen.h"
#include "harness.h"
#include "kernel-abi.h"
#include "arena.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define N 8
#define ZRAM_MIB 256

static char out[1 << 16];

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Devices in /proc/swaps. */
static int swaps_count(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[256];
	int n = -1;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n < 0 ? 0 : n;
}

/* ---- the kernel's counters and page tables ---- */

static long count(const void *a, size_t len, uint64_t mask, uint64_t inverted)
{
	static int fd = -1;
	long n;

	if (fd < 0)
		fd = thp_pagemap_open(0);
	H_CHECK(fd >= 0, "open pagemap: %s", strerror(-fd));
	n = thp_pagemap_count(fd, (uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)a + len, mask,
			      inverted);
	H_CHECK(n >= 0, "PAGEMAP_SCAN: %s", strerror((int)-n));
	return n;
}

#define SWAPPED(a, len) count(a, len, PAGE_IS_SWAPPED, 0)
#define PRESENT(a, len) count(a, len, PAGE_IS_PRESENT, 0)
#define PTE_PRESENT(a, len) count(a, len, PAGE_IS_PRESENT | PAGE_IS_HUGE, PAGE_IS_HUGE)

/* How many pages the folio that maps @a has (/proc/self/pagemap's PFN,
 * /proc/kpageflags' compound bits): 1, or the count up to its last tail. */
static unsigned folio_pages(const void *a)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int kf = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	uint64_t e, fl, pfn;
	unsigned n = 0;

	H_CHECK(pm >= 0 && kf >= 0, "pagemap/kpageflags: %s", strerror(errno));
	H_CHECK(pread(pm, &e, 8, (off_t)((uintptr_t)a / 4096 * 8)) == 8, "pagemap read");
	pfn = e & ((1ull << 55) - 1);
	H_CHECK((e >> 63) & 1 && pfn, "page at %p not present (pagemap %llx)", a,
		(unsigned long long)e);
	H_CHECK(pread(kf, &fl, 8, (off_t)(pfn * 8)) == 8, "kpageflags read");
	/* Back to the head (KPF_COMPOUND_TAIL), then on over its tails. */
	while ((fl & (1ull << 16)) && pfn > 0 && pread(kf, &fl, 8, (off_t)(--pfn * 8)) == 8)
		;
	n = 1;
	if (fl & (1ull << 15))	/* KPF_COMPOUND_HEAD */
		while (pread(kf, &fl, 8, (off_t)((pfn + n) * 8)) == 8 && (fl & (1ull << 16)))
			n++;
	close(pm);
	close(kf);
	return n;
}

/* ---- kernel: what the tier rests on, without thpswap ---- */

struct faults {
	int uffd;
	int stop;	/* eventfd-less: a pipe's read end */
	atomic_uint n;
	pthread_t t;
};

/* Counts the MISSING faults the region uffd raises and answers each with a
 * zero page, so that a wrong fact fails the byte check instead of hanging. */
static void *fault_counter(void *arg)
{
	struct faults *f = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = f->uffd, .events = POLLIN },
				       { .fd = f->stop, .events = POLLIN } };
		struct uffd_msg m;
		int64_t done;

		if (poll(p, 2, -1) < 0 || p[1].revents)
			return NULL;
		if (read(f->uffd, &m, sizeof(m)) != sizeof(m))
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		atomic_fetch_add(&f->n, 1);
		thp_uffd_zeropage(f->uffd, m.arg.pagefault.address & ~4095ull, 4096, 0, &done);
	}
}

/* The 64 KiB mTHP size's setting, "always" for one measurement and put
 * back (also on a failed check: atexit). */
#define MTHP64 "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled"
static char mthp_saved[16];

static void mthp_restore(void)
{
	if (mthp_saved[0] && h_write_str(MTHP64, mthp_saved) == 0)
		mthp_saved[0] = 0;
}

static bool mthp_on(void)
{
	char buf[128], *l, *r;
	int fd = open(MTHP64, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	l = strchr(buf, '[');
	r = l ? strchr(l, ']') : NULL;
	if (!r || (size_t)(r - l - 1) >= sizeof(mthp_saved))
		return false;
	memcpy(mthp_saved, l + 1, (size_t)(r - l - 1));
	mthp_saved[r - l - 1] = 0;
	atexit(mthp_restore);
	return h_write_str(MTHP64, "always") == 0;
}

/* Has zswap been enabled since boot (it turns large-folio swap-in off)? */
static bool zswap_latched(void)
{
	char b[4] = "";
	int fd = open("/sys/module/zswap/parameters/enabled", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, b, 1) < 0)
			b[0] = 0;
		close(fd);
	}
	return b[0] == 'Y' || h_vmstat("zswpout") > 0 || h_vmstat("zswpin") > 0;
}

/* With the 64 KiB mTHP size on, a page of a swapped THP read back: the
 * size of the folio it comes back in, outside a registered VMA and in one
 * (registered MISSING on @uffd). */
static void large_folio_swapin(int uffd, struct faults *f)
{
	char *a = thp_mmap_aligned(2 * REG, REG, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS);
	unsigned plain, armed;
	volatile char sink;
	int r;

	if (zswap_latched()) {
		printf("fact: large-folio swap-in not measurable on this boot: zswap was enabled\n");
		return;
	}
	H_CHECK(a, "mmap");
	/* Two VMAs: the second registered (a VMA is registered whole). */
	madvise(a, 2 * REG, MADV_HUGEPAGE);
	h_fill(a, 2 * REG, 9000, 7);
	r = thp_uffd_register(uffd, (uint64_t)(uintptr_t)(a + REG), REG,
			      UFFDIO_REGISTER_MODE_MISSING);
	H_CHECK(r == 0, "register: %s", strerror(-r));
	H_CHECK(h_pmd_mapped(a, 2 * REG) == 2, "not PMD-mapped");
	if (!mthp_on()) {
		printf("fact: large-folio swap-in not measured: %s not writable\n", MTHP64);
		munmap(a, 2 * REG);
		return;
	}
	H_CHECK(madvise(a, 2 * REG, MADV_PAGEOUT) == 0, "MADV_PAGEOUT");
	H_CHECK(SWAPPED(a, 2 * REG) == 1024, "not swapped out: %ld", SWAPPED(a, 2 * REG));
	sink = a[5 * 4096];
	sink = a[REG + 5 * 4096];
	(void)sink;
	plain = folio_pages(a + 5 * 4096);
	armed = folio_pages(a + REG + 5 * 4096);
	mthp_restore();
	printf("fact: with 64 KiB mTHP on, one byte read back: folio of %u pages (%ld present) "
	       "outside a registered VMA, %u pages (%ld present) in one; uffd faults %u\n",
	       plain, PRESENT(a, REG), armed, PRESENT(a + REG, REG), atomic_load(&f->n));
	H_CHECK(armed == 1, "a large folio swapped into a registered VMA");
	H_CHECK(h_check(a, 2 * REG, 9000, 7, NULL, "large-folio regions") < 0, "bytes wrong");
	thp_uffd_unregister(uffd, (uint64_t)(uintptr_t)(a + REG), REG);
	munmap(a, 2 * REG);
}

static double ms_since(uint64_t t0)
{
	return (double)(thp_now_ns() - t0) / 1e6;
}

static void kernel_facts(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	const size_t n = 4, len = n * REG;
	long long o0, t0, f0, i0, o1, t1, f1, i1;
	struct faults f = { 0 };
	int pipefd[2];
	char *p, *dst;
	uint64_t granted, c0;
	int64_t moved = 0;
	volatile char sink;
	long sw, pr;
	int r;

	(void)s, (void)d, (void)variant;
	p = thp_mmap_aligned(len, REG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	dst = thp_mmap_aligned(REG, REG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	H_CHECK(p && dst, "mmap: %s", strerror(errno));
	madvise(p, len, MADV_HUGEPAGE);
	madvise(dst, REG, MADV_HUGEPAGE);
	h_fill(p, len, 0, 7);
	H_CHECK(h_pmd_mapped(p, len) == (long)n, "filled regions not PMD-mapped: %ld of %zu",
		h_pmd_mapped(p, len), n);
	f.uffd = thp_uffd_create();
	H_CHECK(f.uffd >= 0, "userfaultfd: %s", strerror(-f.uffd));
	r = thp_uffd_api(f.uffd, UFFD_FEATURE_MOVE, &granted);
	H_CHECK(r == 0, "UFFDIO_API: %s", strerror(-r));
	r = thp_uffd_register(f.uffd, (uint64_t)(uintptr_t)p, len, UFFDIO_REGISTER_MODE_MISSING);
	H_CHECK(r == 0, "register: %s", strerror(-r));
	r = thp_uffd_register(f.uffd, (uint64_t)(uintptr_t)dst, REG, UFFDIO_REGISTER_MODE_MISSING);
	H_CHECK(r == 0, "register dst: %s", strerror(-r));
	H_CHECK(pipe2(pipefd, O_CLOEXEC) == 0, "pipe");
	f.stop = pipefd[0];
	H_CHECK(pthread_create(&f.t, NULL, fault_counter, &f) == 0, "thread");

	/* Out. */
	o0 = h_vmstat("pswpout"), t0 = h_vmstat("thp_swpout"), f0 = h_vmstat("thp_swpout_fallback");
	c0 = thp_now_ns();
	H_CHECK(madvise(p, len, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s", strerror(errno));
	printf("fact: MADV_PAGEOUT of %zu PMD-mapped regions (uffd MISSING): %.2f ms\n", n,
	       ms_since(c0));
	o1 = h_vmstat("pswpout"), t1 = h_vmstat("thp_swpout"), f1 = h_vmstat("thp_swpout_fallback");
	sw = SWAPPED(p, len), pr = PRESENT(p, len);
	printf("fact: after: swapped %ld present %ld of %zu pages; vmstat pswpout +%lld "
	       "thp_swpout +%lld thp_swpout_fallback +%lld\n", sw, pr, n * 512, o1 - o0, t1 - t0,
	       f1 - f0);
	H_CHECK(sw == (long)(n * 512) && pr == 0, "MADV_PAGEOUT left %ld swapped, %ld present",
		sw, pr);
	H_CHECK(o1 - o0 >= (long long)(n * 512), "pswpout grew by %lld only", o1 - o0);

	/* One byte back: a swap PTE is not missing, so no uffd fault. */
	i0 = h_vmstat("pswpin");
	c0 = thp_now_ns();
	sink = p[100];
	printf("fact: read of one byte of region 0: %.3f ms, uffd faults %u, present now %ld "
	       "(PTE %ld), folio of %u pages, pswpin +%lld\n", ms_since(c0), atomic_load(&f.n),
	       PRESENT(p, REG), PTE_PRESENT(p, REG), folio_pages(p), h_vmstat("pswpin") - i0);
	H_CHECK(atomic_load(&f.n) == 0, "a read of a swapped page raised a uffd fault");

	/* Collapse region 0 with one page in; region 1 with none in. */
	for (int k = 0; k < 2; k++) {
		char *a = p + (size_t)k * REG;

		i0 = h_vmstat("pswpin");
		c0 = thp_now_ns();
		r = madvise(a, REG, MADV_COLLAPSE) ? -errno : 0;
		i1 = h_vmstat("pswpin");
		printf("fact: MADV_COLLAPSE of region %d (%s): %s, %.3f ms, PMD-mapped %ld, pswpin "
		       "+%lld, uffd faults %u\n", k, k ? "all swapped" : "one page in",
		       r ? strerror(-r) : "ok", ms_since(c0), h_pmd_mapped(a, REG), i1 - i0,
		       atomic_load(&f.n));
		H_CHECK(r == 0 && h_pmd_mapped(a, REG) == 1, "MADV_COLLAPSE: %s, PMD-mapped %ld",
			strerror(-r), h_pmd_mapped(a, REG));
	}
	/* Region 2 read whole: 512 PTEs, no collapse by itself. */
	c0 = thp_now_ns();
	H_CHECK(h_check(p + 2 * REG, REG, 2 * 512, 7, NULL, "region 2") < 0, "region 2 wrong");
	printf("fact: read of all of region 2: %.3f ms, present %ld (PTE %ld), folio of %u pages, "
	       "uffd faults %u\n", ms_since(c0), PRESENT(p + 2 * REG, REG),
	       PTE_PRESENT(p + 2 * REG, REG), folio_pages(p + 2 * REG), atomic_load(&f.n));
	c0 = thp_now_ns();
	r = madvise(p + 2 * REG, REG, MADV_COLLAPSE) ? -errno : 0;
	printf("fact: MADV_COLLAPSE of region 2 (all in, PTE-mapped): %s, %.3f ms, PMD-mapped %ld\n",
	       r ? strerror(-r) : "ok", ms_since(c0), h_pmd_mapped(p + 2 * REG, REG));
	H_CHECK(r == 0, "MADV_COLLAPSE of region 2: %s", strerror(-r));

	/* Region 3 half in, then one UFFDIO_MOVE of its 2 MiB, as an
	 * eviction of a region that is not one PMD would be. */
	H_CHECK(h_check(p + 3 * REG, REG / 2, 3 * 512, 7, NULL, "region 3") < 0, "region 3 wrong");
	sw = SWAPPED(p + 3 * REG, REG), pr = PRESENT(p + 3 * REG, REG);
	r = thp_uffd_move(f.uffd, (uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)(p + 3 * REG), REG,
			  0, &moved);
	printf("fact: UFFDIO_MOVE of region 3 (%ld swapped, %ld present): %s, moved %lld bytes; "
	       "at the source now swapped %ld present %ld, at the destination swapped %ld present "
	       "%ld\n", sw, pr, r ? strerror(-r) : "ok", (long long)moved,
	       SWAPPED(p + 3 * REG, REG), PRESENT(p + 3 * REG, REG), SWAPPED(dst, REG),
	       PRESENT(dst, REG));
	H_CHECK(r == 0 && moved == (int64_t)REG, "UFFDIO_MOVE: %s, moved %lld", strerror(-r),
		(long long)moved);
	H_CHECK(h_check(dst, REG, 3 * 512, 7, NULL, "moved region 3") < 0, "moved region 3 reads wrong");
	H_CHECK(atomic_load(&f.n) == 0, "%u uffd faults", atomic_load(&f.n));

	large_folio_swapin(f.uffd, &f);

	/* Every byte of regions 0..2. */
	H_CHECK(h_check(p, 3 * REG, 0, 7, NULL, "regions 0..2") < 0, "regions 0..2 read wrong");
	H_CHECK(h_pmd_mapped(p, 3 * REG) == 3, "regions 0..2 are not PMD-mapped");
	(void)sink;
	H_CHECK(write(pipefd[1], "x", 1) == 1, "stop");
	pthread_join(f.t, NULL);
	close(pipefd[0]);
	close(pipefd[1]);
	close(f.uffd);
	munmap(p, len);
	munmap(dst, REG);
}

/* ---- the tier, through thpswap ---- */

static uint64_t ctr(int fd, enum thp_counter c)
{
	return h_arena_header(fd).ctr[c];
}

/* Every region of @m out: swap PTEs only, marked, still RESIDENT. */
static void expect_out(int fd, const struct h_mem *m, size_t nreg, const char *what)
{
	struct h_region_view v[N];
	long sw = SWAPPED(m->base, nreg * REG), pr = PRESENT(m->base, nreg * REG);

	H_CHECK(sw == (long)(nreg * 512) && pr == 0, "%s: %ld pages swapped, %ld present, of %zu",
		what, sw, pr, nreg * 512);
	h_arena_view(fd, m->base, nreg, v);
	for (size_t i = 0; i < nreg; i++)
		H_CHECK(v[i].nrec == 1 && v[i].state == THP_ST_RESIDENT &&
			(v[i].flags & THP_RF_KSWAP), "%s: region %zu is %s, flags 0x%x", what, i,
			thp_state_name(v[i].state), v[i].flags);
}

/* Does a region of @m still carry the kernel tier's mark? */
static bool any_marked(int fd, const struct h_mem *m, size_t nreg)
{
	struct h_region_view v[N];
	bool marked = false;

	h_arena_view(fd, m->base, nreg, v);
	for (size_t i = 0; i < nreg; i++)
		marked |= !!(v[i].flags & THP_RF_KSWAP);
	return marked;
}

/* Poll (not a bare sleep: each look is the condition) until every region
 * of @m is PMD-mapped and unmarked, and the marks the scanner took off
 * (kswap_collapsed, or kswap_dropped for one khugepaged collapsed first,
 * whole again by other means) reached @want. */
static void expect_back(int fd, const struct h_mem *m, size_t nreg, uint64_t want,
			const char *what)
{
	uint64_t t0 = thp_now_ns(), deadline = t0 + 10ull * 1000000000ull * h_slowdown();
	struct timespec tick = { 0, 5 * 1000000 };

	for (;;) {
		bool marked = any_marked(fd, m, nreg);

		if (!marked && h_pmd_mapped(m->base, nreg * REG) == (long)nreg &&
		    ctr(fd, THP_C_KSWAP_COLLAPSED) + ctr(fd, THP_C_KSWAP_DROPPED) >= want)
			break;
		H_CHECK(thp_now_ns() < deadline, "%s: after 10 s %ld of %zu regions PMD-mapped, "
			"kswap_collapsed %llu of %llu, %s marked", what,
			h_pmd_mapped(m->base, nreg * REG), nreg,
			(unsigned long long)ctr(fd, THP_C_KSWAP_COLLAPSED),
			(unsigned long long)want, marked ? "some still" : "none");
		nanosleep(&tick, NULL);
	}
	printf("%s: every region PMD-mapped again %.1f ms after the read\n", what,
	       ms_since(t0));
}

static void tier(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd();
	uint64_t out0 = ctr(fd, THP_C_KSWAP_OUT), col0 = ctr(fd, THP_C_KSWAP_COLLAPSED);
	uint64_t drop0 = ctr(fd, THP_C_KSWAP_DROPPED);
	uint64_t ns0 = ctr(fd, THP_C_KSWAP_COLLAPSE_NS), t0;
	long long o0 = h_vmstat("pswpout");
	struct h_mem m;
	char pid[16];
	int n;

	(void)variant;
	h_mem_prepare(s, &m, N, 0);
	H_CHECK(h_pmd_mapped(m.base, N * REG) == N, "not PMD-mapped after writing");
	t0 = thp_now_ns();
	if (variant == 0) {
		n = thpswap_advise(s, m.base, N * REG, THPSWAP_ADVICE_PAGEOUT);
		H_CHECK(n == N, "thpswap_advise(PAGEOUT) of %d regions: %d", N, n);
	} else {
		const char *argv[] = { "--json", "evict", "--pid", pid, "--all", "--tier", "kernel",
				       NULL };
		int st;

		snprintf(pid, sizeof(pid), "%d", getpid());
		st = h_ctl(d, out, sizeof(out), argv);
		H_CHECK(st == 0, "thpswapctl evict --tier kernel: exit %d: %s", st, out);
		n = (int)h_json_u64(out, "evicted");
		H_CHECK(n == N, "thpswapctl evict --tier kernel paged out %d of %d: %s", n, N, out);
	}
	printf("paged out %d regions in %.2f ms; pswpout +%lld\n", N, ms_since(t0),
	       h_vmstat("pswpout") - o0);
	H_CHECK(h_vmstat("pswpout") - o0 >= N * 512, "pswpout grew by %lld only",
		h_vmstat("pswpout") - o0);
	expect_out(fd, &m, N, "after the pageout");
	H_CHECK(ctr(fd, THP_C_KSWAP_OUT) - out0 == N, "kswap_out grew by %llu",
		(unsigned long long)(ctr(fd, THP_C_KSWAP_OUT) - out0));
	if (variant == 1) {
		const char *argv[] = { "--json", "regions", "--pid", pid, NULL };
		int st = h_ctl(d, out, sizeof(out), argv), k = 0;

		H_CHECK(st == 0, "thpswapctl regions: exit %d", st);
		for (const char *p = out; (p = strstr(p, "\"tier\": \"kernel\"")); p++)
			k++;
		H_CHECK(k == N, "thpswapctl regions shows %d regions in the kernel tier: %s", k, out);
	}
	h_mem_check(&m, "read back from the kernel's swap");
	expect_back(fd, &m, N, col0 + drop0 + N, variant ? "admin" : "tier");
	h_mem_check(&m, "after the collapse");
	printf("kswap_collapsed +%llu, mean time from a page seen back to PMD-mapped %.2f ms\n",
	       (unsigned long long)(ctr(fd, THP_C_KSWAP_COLLAPSED) - col0),
	       (double)(ctr(fd, THP_C_KSWAP_COLLAPSE_NS) - ns0) / 1e6 / N);
	H_CHECK(ctr(fd, THP_C_KSWAP_COLLAPSE_NS) > ns0, "kswap_collapse_ns did not grow");
	h_mem_free(&m);
}

/* Paged out, then evicted by thpswap: the pages in the swap are brought
 * back first (kswap_swapin), or the evictor, finding no page present, would
 * take the region for an empty one.  Variant 1: paged out by the client's
 * own MADV_PAGEOUT (as kernel reclaim would), not through the tier. */
static void then_evict(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n;
	struct h_mem m;

	(void)d;
	h_mem_prepare(s, &m, 2, 0);
	if (variant == 0) {
		n = thpswap_advise(s, m.base, 2 * REG, THPSWAP_ADVICE_PAGEOUT);
		H_CHECK(n == 2, "thpswap_advise(PAGEOUT): %d", n);
		expect_out(fd, &m, 2, "after the pageout");
	} else {
		H_CHECK(madvise(m.base, 2 * REG, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s",
			strerror(errno));
		H_CHECK(SWAPPED(m.base, 2 * REG) == 1024 && PRESENT(m.base, 2 * REG) == 0,
			"the client's own MADV_PAGEOUT left %ld swapped", SWAPPED(m.base, 2 * REG));
	}
	n = h_mem_evict(s, &m, "evicting regions in the kernel's swap");
	H_CHECK(n == 2, "evicted %d of 2", n);
	h_mem_check(&m, "restored after the eviction");
	H_CHECK(h_pmd_mapped(m.base, 2 * REG) == 2, "restored regions not PMD-mapped: %ld of 2",
		h_pmd_mapped(m.base, 2 * REG));
	h_mem_free(&m);
}

/* Memory the kernel swapped out before it was registered holds data: its
 * blocks are registered RESIDENT, not EMPTY (which no eviction takes, and
 * whose bytes a fault would take for a hole), then evicted and restored
 * whole. */
static void register_swapped(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n;
	struct h_region_view v[2];
	struct h_mem m = { .len = 2 * REG };

	(void)d, (void)variant;
	m.base = thp_mmap_aligned(m.len, REG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	H_CHECK(m.base != MAP_FAILED, "mmap of 2 regions: %s", strerror(errno));
	m.gen = calloc(m.len / 4096, sizeof(*m.gen));
	H_CHECK(m.gen, "out of memory");
	h_mem_write(&m, 0, m.len, 1);
	H_CHECK(madvise(m.base, m.len, MADV_PAGEOUT) == 0, "MADV_PAGEOUT: %s", strerror(errno));
	H_CHECK(SWAPPED(m.base, m.len) == 1024 && PRESENT(m.base, m.len) == 0,
		"MADV_PAGEOUT left %ld pages swapped, %ld present", SWAPPED(m.base, m.len),
		PRESENT(m.base, m.len));
	n = thpswap_register(s, m.base, m.len);
	H_CHECK(n == 0, "thpswap_register of memory in the swap: %s", strerror(-n));
	h_arena_view(fd, m.base, 2, v);
	for (int i = 0; i < 2; i++)
		H_CHECK(v[i].nrec == 1 && v[i].state == THP_ST_RESIDENT,
			"region %d of memory in the swap registered %s", i, thp_state_name(v[i].state));
	n = h_mem_evict(s, &m, "registered from the swap");
	H_CHECK(n == 2, "evicted %d of 2", n);
	h_mem_check(&m, "registered from the swap, evicted and restored");
	H_CHECK(h_pmd_mapped(m.base, m.len) == 2, "restored regions not PMD-mapped: %ld of 2",
		h_pmd_mapped(m.base, m.len));
	H_CHECK(thpswap_unregister(s, m.base, m.len) == 0, "thpswap_unregister");
	munmap(m.base, m.len);
	h_mem_free(&m);
}

/* A pinned region is never paged out; the other one is. */
static void pinned(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n;
	uint64_t ref0 = ctr(fd, THP_C_EVICT_REFUSED);
	struct h_mem m;

	(void)d, (void)variant;
	h_mem_prepare(s, &m, 2, 0);
	n = thpswap_pin(s, m.base, REG);
	H_CHECK(n == 1, "thpswap_pin: %d", n);
	n = thpswap_advise(s, m.base, 2 * REG, THPSWAP_ADVICE_PAGEOUT);
	H_CHECK(n == 1, "thpswap_advise(PAGEOUT) of a pinned and an unpinned region: %d", n);
	H_CHECK(SWAPPED(m.base, REG) == 0 && h_pmd_mapped(m.base, REG) == 1,
		"the pinned region left: %ld swapped", SWAPPED(m.base, REG));
	H_CHECK(SWAPPED(m.base + REG, REG) == 512, "the unpinned region did not leave");
	H_CHECK(ctr(fd, THP_C_EVICT_REFUSED) == ref0 + 1, "evict_refused grew by %llu",
		(unsigned long long)(ctr(fd, THP_C_EVICT_REFUSED) - ref0));
	h_mem_check(&m, "pinned and paged out");
	H_CHECK(thpswap_unpin(s, m.base, REG) == 1, "unpin");
	h_mem_free(&m);
}

/* ---- race: the tier against evictions, restores and readers ---- */

struct reader {
	const struct h_mem *m;
	atomic_bool *stop;
	unsigned seed;
	unsigned long reads;
	long bad;	/* first wrong page, or -1 */
	char found[96], again[96]; /* what it held then, and read once more */
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;

	while (!atomic_load(r->stop)) {
		uint64_t pg;

		r->seed = r->seed * 1103515245u + 12345u;
		pg = (r->seed >> 8) % (N * 512);
		if (h_page_check(r->m->base + pg * 4096, pg, 1) >= 0) {
			const char *p = r->m->base + pg * 4096;

			h_page_what(p, r->found, sizeof(r->found));
			h_page_what(p, r->again, sizeof(r->again));
			r->bad = (long)pg;
			return NULL;
		}
		r->reads++;
	}
	return NULL;
}

/* Readers touch random pages while the regions go to the kernel's swap, to
 * the arena and back, the background scan collapsing what comes back. */
static void race(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	unsigned secs = h_test_seconds(3), rounds = 0;
	uint64_t end = thp_now_ns() + (uint64_t)secs * 1000000000ull;
	int fd = h_arena_fd();
	atomic_bool stop = false;
	struct reader rd[2];
	pthread_t t[2];
	struct h_mem m;

	(void)d, (void)variant;
	h_mem_prepare(s, &m, N, 0);
	for (int k = 0; k < 2; k++) {
		rd[k] = (struct reader){ .m = &m, .stop = &stop, .seed = 7u + (unsigned)k, .bad = -1 };
		H_CHECK(pthread_create(&t[k], NULL, read_loop, &rd[k]) == 0, "thread");
	}
	while (thp_now_ns() < end) {
		size_t half = (rounds & 1) * (N / 2) * REG;

		h_at("race round %u", rounds);
		H_CHECK(thpswap_advise(s, m.base, N * REG, THPSWAP_ADVICE_PAGEOUT) >= 0, "pageout");
		H_CHECK(thpswap_advise(s, m.base + half, N / 2 * REG, THPSWAP_ADVICE_COLD) >= 0,
			"cold");
		H_CHECK(thpswap_advise(s, m.base, N * REG, THPSWAP_ADVICE_PAGEOUT) >= 0, "pageout");
		H_CHECK(thpswap_advise(s, m.base, N * REG, THPSWAP_ADVICE_WILLNEED) >= 0, "willneed");
		rounds++;
	}
	atomic_store(&stop, true);
	for (int k = 0; k < 2; k++) {
		pthread_join(t[k], NULL);
		H_CHECK(rd[k].bad < 0, "reader %d: page %ld read wrong: found %s, then %s", k,
			rd[k].bad, rd[k].found, rd[k].again);
	}
	printf("race: %u rounds, %lu + %lu reads, kswap_out %llu collapsed %llu dropped %llu\n",
	       rounds, rd[0].reads, rd[1].reads,
	       (unsigned long long)ctr(fd, THP_C_KSWAP_OUT),
	       (unsigned long long)ctr(fd, THP_C_KSWAP_COLLAPSED),
	       (unsigned long long)ctr(fd, THP_C_KSWAP_DROPPED));
	h_mem_check(&m, "after the race");
	/* The scanner collapses what is still marked; a region whose mark
	 * was dropped in a race (evicted, zapped meanwhile) and that came
	 * back in 4 KiB pages is collapsed by nothing but its next
	 * eviction, so give those one. */
	for (uint64_t deadline = thp_now_ns() + 10ull * 1000000000ull * h_slowdown();;) {
		struct timespec tick = { 0, 5 * 1000000 };

		if (!any_marked(fd, &m, N))
			break;
		H_CHECK(thp_now_ns() < deadline, "race: regions still marked after 10 s");
		nanosleep(&tick, NULL);
	}
	if (h_pmd_mapped(m.base, N * REG) != N) {
		printf("race: %ld of %d regions PMD-mapped after the race (fallback_4k %llu): "
		       "one more round trip\n", h_pmd_mapped(m.base, N * REG), N,
		       (unsigned long long)ctr(fd, THP_C_FALLBACK_4K));
		h_mem_evict(s, &m, "race, the last round trip");
		h_mem_check(&m, "after the last round trip");
	}
	expect_back(fd, &m, N, 0, "race");
	h_mem_check(&m, "after the race, collapsed");
	h_mem_free(&m);
}

/* No swap device: refused, counted, nothing moved. */
static void noswap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n;
	uint64_t c0 = ctr(fd, THP_C_KSWAP_NOSWAP);
	struct h_mem m;

	(void)d, (void)variant;
	h_mem_prepare(s, &m, 2, 0);
	n = thpswap_advise(s, m.base, 2 * REG, THPSWAP_ADVICE_PAGEOUT);
	H_CHECK(n == -ENOSPC, "thpswap_advise(PAGEOUT) without swap: %d", n);
	H_CHECK(ctr(fd, THP_C_KSWAP_NOSWAP) > c0, "kswap_noswap did not grow");
	H_CHECK(h_pmd_mapped(m.base, 2 * REG) == 2, "regions left without swap");
	h_mem_check(&m, "after a refused pageout");
	h_mem_free(&m);
}

/* N managed regions of @kind (seed @seed), PMD-mapped, as @m. */
static void *map_data(struct thpswap_session *s, struct h_mem *m, enum thp_data_kind kind,
		      uint64_t seed)
{
	void *mem = h_map_data(s, N, kind, seed);

	*m = (struct h_mem){ .base = mem, .len = N * REG };
	return mem;
}

static void check_data(const char *mem, enum thp_data_kind kind, uint64_t seed, const char *what)
{
	h_check_data(mem, N, kind, seed, what);
}

static void zero_subpages(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n;
	uint64_t col0 = ctr(fd, THP_C_KSWAP_COLLAPSED) + ctr(fd, THP_C_KSWAP_DROPPED);
	struct h_mem m;
	struct timespec pause = { 0, 300 * 1000000 };
	long sw;
	void *mem;

	(void)d;
	(void)variant;
	mem = map_data(s, &m, THP_DATA_HEAPMIX, 0x2e70);
	n = thpswap_advise(s, mem, N * REG, THPSWAP_ADVICE_PAGEOUT);
	H_CHECK(n == N, "thpswap_advise(PAGEOUT) of %d regions: %d", N, n);
	sw = SWAPPED(mem, N * REG);
	H_CHECK(sw > 0 && sw < (long)N * 512, "%ld pages swapped: the regions had no zero pages?", sw);
	/* Three of the agent's scans: the zero pages present since the
	 * pageout must not bring the regions back. */
	nanosleep(&pause, NULL);
	H_CHECK(SWAPPED(mem, N * REG) == sw, "swapped pages %ld -> %ld with nothing touched", sw,
		SWAPPED(mem, N * REG));
	check_data(mem, THP_DATA_HEAPMIX, 0x2e70, "after the swap-in");
	expect_back(fd, &m, N, col0 + N, "zero-subpages");
	H_CHECK(thpswap_unmap(s, mem, N * REG) == 0, "thpswap_unmap");
}

/* --tiers=ram,kernel: what does not compress goes to the kernel's swap. */
static void check_random(const char *mem, const char *what)
{
	check_data(mem, THP_DATA_RANDOM, 0x5eed, what);
}

static void incompressible(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int fd = h_arena_fd(), n, st;
	uint64_t inc0 = ctr(fd, THP_C_EVICT_INCOMPRESSIBLE), out0 = ctr(fd, THP_C_KSWAP_OUT);
	uint64_t col0 = ctr(fd, THP_C_KSWAP_COLLAPSED) + ctr(fd, THP_C_KSWAP_DROPPED);
	long long o0 = h_vmstat("pswpout");
	struct h_mem m;
	char pid[16];
	const char *argv[] = { "--json", "evict", "--pid", pid, "--all", NULL };
	void *mem;

	(void)variant;
	H_CHECK(h_arena_header(fd).cfg.tiers & THP_TIER_KERNEL, "the arena's config has no kernel tier");
	mem = map_data(s, &m, THP_DATA_RANDOM, 0x5eed);

	n = thpswap_advise(s, mem, N * REG, THPSWAP_ADVICE_COLD);
	H_CHECK(n == N, "thpswap_advise(COLD) of %d random regions: %d gone", N, n);
	H_CHECK(ctr(fd, THP_C_EVICT_INCOMPRESSIBLE) - inc0 == N, "evict_incompressible grew by %llu",
		(unsigned long long)(ctr(fd, THP_C_EVICT_INCOMPRESSIBLE) - inc0));
	H_CHECK(ctr(fd, THP_C_KSWAP_OUT) - out0 == N, "kswap_out grew by %llu",
		(unsigned long long)(ctr(fd, THP_C_KSWAP_OUT) - out0));
	H_CHECK(h_vmstat("pswpout") - o0 >= N * 512, "pswpout grew by %lld only",
		h_vmstat("pswpout") - o0);
	expect_out(fd, &m, N, "random regions asked to go");
	check_random(mem, "read back from the kernel's swap");
	expect_back(fd, &m, N, col0 + N, "incompressible");
	check_random(mem, "after the collapse");

	/* Again, by the daemon: found incompressible before, they go to the
	 * swap without another try at compressing them. */
	snprintf(pid, sizeof(pid), "%d", getpid());
	st = h_ctl(d, out, sizeof(out), argv);
	H_CHECK(st == 0, "thpswapctl evict --all: exit %d: %s", st, out);
	n = (int)h_json_u64(out, "evicted");
	H_CHECK(n == N, "thpswapctl evict --all evicted %d of %d: %s", n, N, out);
	H_CHECK(ctr(fd, THP_C_EVICT_INCOMPRESSIBLE) - inc0 == N, "compressed again: "
		"evict_incompressible grew by %llu", (unsigned long long)(ctr(fd, THP_C_EVICT_INCOMPRESSIBLE) - inc0));
	expect_out(fd, &m, N, "the second time");
	check_random(mem, "read back the second time");
	expect_back(fd, &m, N, col0 + 2 * N, "incompressible, again");
	H_CHECK(thpswap_unmap(s, mem, N * REG) == 0, "thpswap_unmap");
}

static const struct h_case cases_kernel_tier[] = {
	{ "incompressible", incompressible, 0, 120 },
};

static const struct h_case cases_noswap[] = {
	{ "noswap", noswap, 0, 60 },
};

static const struct h_case cases[] = {
	{ "kernel", kernel_facts, 0, 120 },
	{ "tier", tier, 0, 120 },
	{ "evict", then_evict, 0, 120 },
	{ "evict-own-pageout", then_evict, 1, 120 },
	{ "register-swapped", register_swapped, 0, 120 },
	{ "pinned", pinned, 0, 60 },
	{ "admin", tier, 1, 120 },
	{ "race", race, 0, 120 },
	{ "noswap", noswap, 0, 60 },
};

static const struct h_case cases_file[] = {
	{ "zero-subpages", zero_subpages, 0, 120 },
};

int main(int argc, char **argv)
{
	char why[256], exe[16] = "itest-ktier";
	char *only[] = { exe, (char *)"noswap", NULL };
	const char *skip_noswap = NULL;
	char **names;
	int r, k, nn = 0;

	if (argc >= 3 && !strcmp(argv[1], "--case") && !strcmp(argv[2], "incompressible"))
		return h_run_cases(argc, argv, cases_kernel_tier, 1, NULL);
	if (argc >= 3 && !strcmp(argv[1], "--case") && !strcmp(argv[2], "zero-subpages"))
		return h_run_cases(argc, argv, cases_file, 1, NULL);
	if (argc >= 3 && !strcmp(argv[1], "--case"))
		return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* noswap first, while no swap is on; the rest on our own device. */
	if (swaps_count() > 0)
		skip_noswap = "a swap device is on already (not ours)";
	for (k = 1; k < argc; k++)
		nn += argv[k][0] != '-';
	if (!skip_noswap && (nn == 0 || (nn == 1 && argc == 2 && !strcmp(argv[1], "noswap")))) {
		r = h_run_cases(2, only, cases_noswap, 1, NULL);
		if (r != H_PASS || nn == 1)
			return r;
	} else if (skip_noswap) {
		printf("case noswap: skipped: %s\n", skip_noswap);
	}
	r = h_swap_up(ZRAM_MIB, why, sizeof(why));
	if (r) {
		printf("skip: no swap device can be made here: %s\n", why);
		return H_SKIP;
	}
	printf("swap device %s (%u MiB) on; %d device(s) in /proc/swaps\n", h_swap_dev(), ZRAM_MIB,
	       swaps_count());
	/* Every case but noswap, unless some are named. */
	names = calloc((size_t)argc + 8, sizeof(*names));
	H_CHECK(names, "calloc");
	names[0] = argv[0];
	k = 1;
	if (nn == 0) {
		for (size_t i = 0; i + 1 < sizeof(cases) / sizeof(cases[0]); i++)
			names[k++] = (char *)cases[i].name;
	} else {
		for (int a = 1; a < argc; a++)
			if (strcmp(argv[a], "noswap") && strcmp(argv[a], "incompressible") &&
			    strcmp(argv[a], "zero-subpages"))
				names[k++] = argv[a];
	}
	r = k > 1 ? h_run_cases(k, names, cases, sizeof(cases) / sizeof(cases[0]), NULL) : H_PASS;
	free(names);
	if (r == H_PASS && (nn == 0 || (argc == 2 && !strcmp(argv[1], "incompressible")))) {
		static const char *const tier_args[] = { "--tiers=ram,kernel", NULL };
		char *one[] = { exe, (char *)"incompressible", NULL };

		r = h_run_cases(2, one, cases_kernel_tier, 1, tier_args);
	}
	if (r == H_PASS && (nn == 0 || (argc == 2 && !strcmp(argv[1], "zero-subpages")))) {
		char *one[] = { exe, (char *)"zero-subpages", NULL };

		h_swap_down();
		r = h_swap_file_up(ZRAM_MIB, why, sizeof(why));
		if (r) {
			printf("case zero-subpages: skipped: no swap file: %s\n", why);
			return H_PASS;
		}
		r = h_run_cases(2, one, cases_file, 1, NULL);
	}
	return r;
}
