/* SPDX-License-Identifier: MIT */
/*
 * The kernel tier: a region handed to the kernel's swap, and made one PMD
 * again once it comes back.
 *
 * Out: MADV_PAGEOUT on the region (the client's own memory, so no
 * process_madvise).  The record stays RESIDENT: its pages are swap PTEs
 * now, which are not "missing", so a touch is served by the kernel's own
 * swap-in and never reaches our uffd (docs/KERNEL.md, *Swap and
 * userfaultfd*).  THP_RF_KSWAP marks it for the scan below.
 *
 * Back: the kernel swaps in 4 KiB pages (no large folio in a VMA registered
 * with a userfaultfd), so the region would stay PTE-mapped.  The background
 * thread scans the marked regions every KSWAP_SCAN_NS with PAGEMAP_SCAN; a
 * region with a page back but not PMD-mapped gets MADV_COLLAPSE, which swaps
 * the rest in.  The time from the scan that first saw a page back to
 * PMD-mapped is summed in kswap_collapse_ns (so it includes up to one scan
 * interval of the kernel's own swap-in before it).
 *
 * The mark is only a hint, and every interleaving ends harmless:
 *  - evicted by thpswap meanwhile: the evictor takes THP_RF_EVICTOR, which
 *    the pageout and the collapse take too, so they never overlap; its
 *    make_whole swaps the region in and collapses it before it moves it
 *    out, and the restore maps one PMD.  The scan finds the record not
 *    RESIDENT (or one PMD) and drops the mark.
 *  - unmapped: the record is freed (or given to a new region, whose flags
 *    rt_add writes afresh); the scan drops a mark on any record that is not
 *    RESIDENT.
 *  - moved by mremap between the scan's look at the record's address and its
 *    MADV_COLLAPSE: the collapse lands on whatever is there now.  Another
 *    region: collapsing resident memory changes no byte.  Empty memory of a
 *    registered VMA: MADV_COLLAPSE never fills holes there (it fails).
 *    Unmanaged memory: the kernel may fill its holes with zeros, which read
 *    as before.  The next scan looks at the record's new address.
 *  - zapped (MADV_DONTNEED) partly: holes in registered memory, which no
 *    collapse fills; the mark is dropped, and an eviction makes it whole.
 *  - forked: the child shares the swap entries (copied with the page
 *    tables); the parent's collapse copies its pages into a new THP and the
 *    child keeps its own.  A MADV_PAGEOUT of a THP shared with a child
 *    leaves it alone (mapped twice), which the pagemap check after it sees.
 *  - pinned: refused before any work, under THP_RF_EVICTOR, as the evictor
 *    refuses (thpswap_pin waits out a claim it did not see).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "probe.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define KSWAP_SCAN_NS (100 * 1000000ull)
/* A collapse refused with EINVAL this long after a page was seen back:
 * the region's VMA takes no THP, not a page on its way out of the swap. */
#define KSWAP_EINVAL_NS (2000 * 1000000ull)
#define PAGES (REGION / THP_PAGE_SIZE)

/* Up to @sz - 1 bytes of @path, NUL-terminated; the length or -errno.  No
 * stdio: what an agent thread touches must not be the program's heap. */
static ssize_t read_small(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, got = 0;

	if (fd < 0)
		return -errno;
	while ((size_t)got < sz - 1 && (n = read(fd, buf + got, sz - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = 0;
	return got;
}

/* The number after "\n@key " in @text, or -1. */
static long long stat_of(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = text; (p = strstr(p, key)); p += kl)
		if ((p == text || p[-1] == '\n') && p[kl] == ' ')
			return atoll(p + kl + 1);
	return -1;
}

/*
 * What the probe's selection (thp_probe_kswap_mode) says here now, from
 * the few files it needs, read without stdio; cached for a second, since
 * swap devices come and go.
 */
static enum thp_kswap_mode kswap_mode(struct thpswap_session *s)
{
	static const char zswap_enabled[] = "/sys/module/zswap/parameters/enabled";
	uint64_t now = now_ns(), at = atomic_load(&s->kswap.mode_ns);
	struct thp_caps c;
	char buf[16384], *nl;
	enum thp_kswap_mode m;
	ssize_t n;

	if (at && now - at < 1000000000ull)
		return (enum thp_kswap_mode)atomic_load(&s->kswap.mode);
	memset(&c, 0, sizeof(c));
	n = read_small("/proc/swaps", buf, sizeof(buf));
	c.swap.err = n < 0 ? (int)n : 0;
	/* A header line, then one per device. */
	for (nl = n > 0 ? strchr(buf, '\n') : NULL; nl && nl[1]; nl = strchr(nl + 1, '\n'))
		c.swap.count++;
	n = read_small("/proc/vmstat", buf, sizeof(buf));
	c.pmd_swap.err = n < 0 ? (int)n : 0;
	c.pmd_swap.present = n > 0 && stat_of(buf, "thp_swpout_pmd") >= 0;
	/* Anything zswap ever stored proves it was enabled. */
	c.zswap.latched = n > 0 && (stat_of(buf, "zswpout") > 0 || stat_of(buf, "zswpin") > 0);
	n = read_small(zswap_enabled, buf, sizeof(buf));
	c.zswap.err = n < 0 ? (int)n : 0;
	if (n > 0 && buf[0] == 'Y')
		c.zswap.latched = true;
	m = thp_probe_kswap_mode(&c);
	atomic_store(&s->kswap.mode, (int)m);
	atomic_store(&s->kswap.mode_ns, now);
	return m;
}

static long pages(struct thpswap_session *s, uint64_t a, uint64_t mask)
{
	return thp_pagemap_count(s->pagemap, a, a + REGION, mask, 0);
}

static void unmark(struct thp_record *r)
{
	__atomic_and_fetch(&r->flags, ~THP_RF_KSWAP, __ATOMIC_ACQ_REL);
}

/* Record @r is claimed (THP_RF_EVICTOR): 1 paged out, 0 left alone. */
static int pageout_claimed(struct thpswap_session *s, struct thp_record *r)
{
	uint64_t a = rec_addr(r);
	long swapped;

	if (rec_state(r) != THP_ST_RESIDENT)
		return 0;
	if (rec_flags(r) & THP_RF_PINNED) {
		ctr_add(s, THP_C_EVICT_REFUSED, 1);
		return 0;
	}
	if (rec_flags(r) & (THP_RF_LEAVING | THP_RF_ARRIVING)) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		return 0;
	}
	/* Marked before the pages go: a scan that sees one back must know. */
	__atomic_store_n(&r->kswap_ns, 0, __ATOMIC_RELAXED);
	__atomic_or_fetch(&r->flags, THP_RF_KSWAP, __ATOMIC_ACQ_REL);
	atomic_store(&s->kswap.active, true);
	if (madvise((void *)(uintptr_t)a, REGION, MADV_PAGEOUT)) {
		int err = -errno;

		unmark(r);
		return err;
	}
	/* The kernel skips what it may not reclaim (a THP shared with a fork
	 * child, locked memory): nothing swapped, nothing to follow.  A PMD
	 * swap entry may not show as swapped; it leaves nothing present. */
	swapped = pages(s, a, PAGE_IS_SWAPPED);
	if (swapped <= 0 && pages(s, a, PAGE_IS_PRESENT) != 0) {
		unmark(r);
		return 0;
	}
	ctr_add(s, THP_C_KSWAP_OUT, 1);
	return 1;
}

int kswap_pageout(struct thpswap_session *s, uint32_t idx)
{
	struct thp_record *r = &s->rec[idx];
	int res;

	if (kswap_mode(s) == THP_KSWAP_NONE) {
		ctr_add(s, THP_C_KSWAP_NOSWAP, 1);
		return -ENOSPC;
	}
	if (__atomic_fetch_or(&r->flags, THP_RF_EVICTOR, __ATOMIC_ACQUIRE) & THP_RF_EVICTOR) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		return 0;
	}
	/* Swap entries keep write-protection, and MADV_COLLAPSE refuses it
	 * when the region comes back. */
	res = track_lift(s, idx) ? pageout_claimed(s, r) : 0;
	__atomic_and_fetch(&r->flags, ~THP_RF_EVICTOR, __ATOMIC_RELEASE);
	if (res > 0)
		agent_kick_kswap(s);
	return res;
}

/*
 * Before an eviction of record @idx: on a kernel with PMD swap entries, a
 * marked region with nothing present is one PMD swap entry, which a MOVE
 * could take for a hole: one touch brings the whole PMD back by the
 * kernel's own fault, without a userfault.  Only for a marked region:
 * touching a really empty one would fault to the fault thread for nothing.
 * Pages in the swap as 4 KiB entries need nothing here: the evictor counts
 * them as data and its MADV_COLLAPSE swaps them in (lib/evict.c).
 */
void kswap_swapin(struct thpswap_session *s, uint32_t idx)
{
	struct thp_record *r = &s->rec[idx];
	uint64_t a = rec_addr(r);

	if (rec_state(r) == THP_ST_RESIDENT && (rec_flags(r) & THP_RF_KSWAP) &&
	    atomic_load(&s->kswap.mode) == THP_KSWAP_PMD && pages(s, a, PAGE_IS_PRESENT) == 0)
		madvise((void *)(uintptr_t)a, THP_PAGE_SIZE, MADV_POPULATE_READ);
}

/* Drop the mark without a collapse of ours (counted). */
static void drop(struct thpswap_session *s, struct thp_record *r)
{
	if (__atomic_fetch_and(&r->flags, ~THP_RF_KSWAP, __ATOMIC_ACQ_REL) & THP_RF_KSWAP)
		ctr_add(s, THP_C_KSWAP_DROPPED, 1);
}

/* One marked record: true while it stays marked. */
static bool scan_one(struct thpswap_session *s, struct thp_record *r)
{
	uint64_t a = rec_addr(r), seen, t;
	long huge, present, back, there;
	int rc;

	if (rec_state(r) != THP_ST_RESIDENT) {
		drop(s, r);
		return false;
	}
	huge = pages(s, a, PAGE_IS_PRESENT | PAGE_IS_HUGE);
	present = pages(s, a, PAGE_IS_PRESENT);
	/* Back means a page of its own: the zero subpages of a THP the
	 * kernel split to swap it out are mapped to the zero page at once,
	 * and are no sign of a touch. */
	back = thp_pagemap_count(s->pagemap, a, a + REGION, PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
				 PAGE_IS_PFNZERO);
	/* One scan: present and swapped counted apart would miss the pages
	 * that moved from one to the other between the two (a swap-in), and
	 * call them holes. */
	there = thp_pagemap_count_there(s->pagemap, a, a + REGION);
	if (huge < 0 || present < 0 || back < 0 || there < 0)
		return true;
	if (huge == (long)PAGES) {
		/* Whole by other means: a PMD swap entry faulted back, or an
		 * eviction and its restore. */
		drop(s, r);
		return false;
	}
	if (back == 0) {
		/* Still out (a PMD swap entry may not show as swapped), or
		 * emptied by a zap of the whole region, or nothing but zero
		 * pages left (nothing of it in the swap). */
		if (there > present || atomic_load(&s->kswap.mode) == THP_KSWAP_PMD)
			return true;
		drop(s, r);
		return false;
	}
	if (there < (long)PAGES) {
		/* Holes, which no collapse fills in registered memory. */
		drop(s, r);
		return false;
	}
	seen = __atomic_load_n(&r->kswap_ns, __ATOMIC_RELAXED);
	if (!seen) {
		seen = now_ns();
		__atomic_store_n(&r->kswap_ns, seen, __ATOMIC_RELAXED);
	}
	if (__atomic_fetch_or(&r->flags, THP_RF_EVICTOR, __ATOMIC_ACQUIRE) & THP_RF_EVICTOR)
		return true;	/* an eviction has it: look again next time */
	rc = 0;
	/* The zero subpages of the split THP are zero-page PTEs, and in
	 * registered memory a collapse refuses any (as it refuses holes):
	 * give just those pages of their own first, which changes no byte
	 * (docs/KERNEL.md, *Swap and userfaultfd*).  Never the whole range:
	 * the region may have moved away meanwhile and another, evicted one
	 * moved in, whose holes a write would fault back in. */
	if (rec_state(r) == THP_ST_RESIDENT && rec_addr(r) == a) {
		own_zero_pages(s, a);
		rc = madvise((void *)(uintptr_t)a, REGION, MADV_COLLAPSE) ? -errno : 0;
	}
	__atomic_and_fetch(&r->flags, ~THP_RF_EVICTOR, __ATOMIC_RELEASE);
	if (rc == -EINVAL && now_ns() - seen > KSWAP_EINVAL_NS) {
		/* Its VMA takes no THP (MADV_NOHUGEPAGE, THP off).  EINVAL is
		 * also what a collapse says of a page still in the swap cache
		 * (its write-back in flight): for a while, look again. */
		drop(s, r);
		return false;
	}
	if (rc || pages(s, a, PAGE_IS_PRESENT | PAGE_IS_HUGE) != (long)PAGES)
		return true;	/* EAGAIN, ENOMEM, raced: next scan */
	if (!(__atomic_fetch_and(&r->flags, ~THP_RF_KSWAP, __ATOMIC_ACQ_REL) & THP_RF_KSWAP))
		return false;
	t = now_ns();
	ctr_add(s, THP_C_KSWAP_COLLAPSED, 1);
	ctr_add(s, THP_C_KSWAP_COLLAPSE_NS, (int64_t)(t > seen ? t - seen : 0));
	return false;
}

uint64_t kswap_scan(struct thpswap_session *s)
{
	uint64_t now = now_ns();
	bool marked = false;

	if (!atomic_load(&s->kswap.active))
		return 0;
	if (now < s->kswap.next_ns)
		return s->kswap.next_ns - now;
	/* Cleared first: a pageout that marks a record after the walk passed
	 * it sets it again after this store. */
	atomic_store(&s->kswap.active, false);
	for (uint32_t i = 0; i < s->hdr->max_regions; i++) {
		struct thp_record *r = &s->rec[i];

		if (!(rec_flags(r) & THP_RF_KSWAP))
			continue;
		marked |= scan_one(s, r);
	}
	if (marked)
		atomic_store(&s->kswap.active, true);
	s->kswap.next_ns = now_ns() + KSWAP_SCAN_NS;
	return marked ? KSWAP_SCAN_NS : 0;
}
