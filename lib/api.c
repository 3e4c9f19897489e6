/* SPDX-License-Identifier: MIT */
/* The public calls on managed memory. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "uffd.h"
#include "util.h"

static bool aligned(const void *addr, size_t len)
{
	return len && !(len % REGION) && !((uintptr_t)addr % REGION);
}

/*
 * Before records are made for a range just mapped: another thread may have
 * unmapped (or mremapped away) what was there before and not sent its
 * event yet (events of different threads come in send order, not change
 * order); handled after our records exist, it would drop them.  That change
 * was made before our mmap could reuse the addresses, so it is counted in
 * mmap_changing until its event is read: wait until nothing is pending once
 * (bounded: an endless stream of other threads' events only delays), then
 * until everything read is handled.
 */
static void new_mapping_sync(struct thpswap_session *s)
{
	for (unsigned tries = 0; tries < 100000 && events_pending(s); tries++)
		sched_yield();
	agent_sync(s);
}

_public_ int thpswap_map(struct thpswap_session *s, size_t len, void **ret_addr)
{
	char *a;
	int r;

	if (!s || !ret_addr || !len || len % REGION)
		return -EINVAL;
	if (session_forked(s))
		return -ECHILD;
	a = thp_mmap_aligned(len, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
	if (a == MAP_FAILED)
		return -errno;
	new_mapping_sync(s); /* as in thpswap_register */
	/* Without MADV_HUGEPAGE a fault would leave a page table that makes
	 * every later MOVE split (docs/KERNEL.md, *Registration*). */
	if (madvise(a, len, MADV_HUGEPAGE)) {
		r = -errno;
		goto unmap;
	}
	r = rt_add(s, (uint64_t)(uintptr_t)a, len, THP_ST_EMPTY, true);
	if (r)
		goto unmap;
	r = track_register(s, (uint64_t)(uintptr_t)a, len);
	if (r) {
		rt_remove(s, (uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)a + len);
		goto unmap;
	}
	rt_arrived(s, (uint64_t)(uintptr_t)a, len);
	*ret_addr = a;
	return 0;
unmap:
	munmap(a, len);
	return r;
}

/* All regions of [addr, addr+len) must be managed. */
static int all_managed(struct thpswap_session *s, void *addr, size_t len)
{
	if (!s || !aligned(addr, len))
		return -EINVAL;
	if (session_forked(s))
		return -ECHILD;
	agent_sync(s);
	for (size_t off = 0; off < len; off += REGION)
		if (rt_lookup(s, (uint64_t)(uintptr_t)addr + off) < 0)
			return -EINVAL;
	return 0;
}

_public_ int thpswap_unmap(struct thpswap_session *s, void *addr, size_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;
	int r = all_managed(s, addr, len);

	if (r)
		return r;
	rt_remove(s, a, a + len);
	/* Unregistered first: munmap then raises no event for the agent. */
	thp_uffd_unregister(s->uffd, a, len);
	return munmap(addr, len) ? -errno : 0;
}

/* Is [a, a+len) inside one private anonymous mapping?  userfaultfd would
 * also take shared memory, but MOVE needs private anonymous pages. */
static bool private_anon(uint64_t a, uint64_t len)
{
	char line[512], perms[8], path[256];
	unsigned long lo, hi, off, ino;
	FILE *f = fopen("/proc/self/maps", "re");
	bool ok = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %*s %lu %255s", &lo, &hi, perms, &off, &ino, path) < 5)
			continue;
		if (a < lo || a >= hi)
			continue;
		ok = a + len <= hi && perms[3] == 'p' && ino == 0 &&
		     (path[0] == 0 || path[0] == '[');
		break;
	}
	fclose(f);
	return ok;
}

/*
 * A block found empty before the registration took effect may have been
 * written since without a fault (another thread of the program, an
 * allocator pre-touching its heap): resident, then, or it would never be
 * evicted.  Registered now, every new page faults to us, so this look is
 * the last one needed; a fault restoring the block meanwhile wins the CAS.
 */
static void settle_empty(struct thpswap_session *s, uint64_t a)
{
	long idx = rt_lookup(s, a);

	if (idx < 0 || rec_state(&s->rec[idx]) != THP_ST_EMPTY ||
	    thp_pagemap_count_there(s->pagemap, a, a + REGION) <= 0)
		return;
	if (rec_cas(s, &s->rec[idx], THP_ST_EMPTY, THP_ST_RESIDENT) &&
	    thp_pagemap_count_pmd(s->pagemap, a, a + REGION) != 1)
		__atomic_or_fetch(&s->rec[idx].flags, THP_RF_SPLIT, __ATOMIC_RELEASE);
}

/*
 * Make records for the 2 MiB blocks of [a, a+len) (resident or empty, by
 * what is mapped there now) and register [ulo, uhi), which holds them, on
 * the region uffd with MADV_HUGEPAGE.  A range wider than the blocks keeps
 * a mapping whose ends are not 2 MiB-aligned one VMA (registering part of
 * it would split it, and mremap refuses a range that spans VMAs); faults
 * there, with no record, are served as new memory.
 *
 * Returns the number of blocks managed, or -errno with nothing made.  When
 * the region table fills up, with @part the blocks that fitted are managed
 * (the range cut after the last one), else nothing is (-ENOSPC).
 */
long register_blocks(struct thpswap_session *s, uint64_t a, uint64_t len, uint64_t ulo,
		     uint64_t uhi, bool part)
{
	uint64_t off;
	int r;

	/* A munmap of a managed range returns once its event is read, not
	 * handled: let its records go before new ones are made here. */
	new_mapping_sync(s);
	for (off = 0; off < len; off += REGION) {
		/* Pages in the kernel's swap are data: such a block is
		 * resident, for the evictor to make whole. */
		long there = thp_pagemap_count_there(s->pagemap, a + off, a + off + REGION);
		uint32_t st = THP_ST_RESIDENT;

		if (there < 0) {
			r = (int)there;
			goto undo;
		}
		if (there == 0) {
			st = THP_ST_EMPTY;
		} else if (thp_pagemap_count_pmd(s->pagemap, a + off, a + off + REGION) != 1) {
			/* Before registering, collapse fills holes with zeros. */
			madvise((void *)(uintptr_t)(a + off), REGION, MADV_COLLAPSE);
		}
		r = rt_add(s, a + off, REGION, st, false);
		if (r == -ENOSPC && part && off > 0) {
			/* Room for part: manage that, up to the last block. */
			len = off;
			uhi = a + off;
			break;
		}
		if (r)
			goto undo;
		if (st == THP_ST_RESIDENT &&
		    thp_pagemap_count_pmd(s->pagemap, a + off, a + off + REGION) != 1)
			__atomic_or_fetch(&s->rec[rt_lookup(s, a + off)].flags, THP_RF_SPLIT,
					  __ATOMIC_RELEASE);
	}
	/* Without MADV_HUGEPAGE a fault would leave a page table that makes
	 * every later MOVE split (docs/KERNEL.md, *Registration*). */
	if (madvise((void *)(uintptr_t)ulo, uhi - ulo, MADV_HUGEPAGE)) {
		r = errno == ENOMEM ? -EINVAL : -errno;
		goto undo;
	}
	r = track_register(s, ulo, uhi - ulo);
	if (r == 0) {
		rt_arrived(s, a, len);
		for (off = 0; off < len; off += REGION)
			settle_empty(s, a + off);
		return (long)(len / REGION);
	}
undo:
	rt_remove(s, a, a + off);
	return r;
}

_public_ int thpswap_register(struct thpswap_session *s, void *addr, size_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;
	long n;

	if (!s || !aligned(addr, len))
		return -EINVAL;
	if (session_forked(s))
		return -ECHILD;
	if (!private_anon(a, len))
		return -EINVAL;
	n = register_blocks(s, a, len, a, a + len, false);
	return n < 0 ? (int)n : 0;
}

/*
 * Fault one page of the region at @a in, as an access would, and wait for
 * the fault thread to serve it.  App threads never MOVE into regions
 * themselves: only the thread that reads the events knows where every
 * region is right now (an mremap it has not handled yet may have put
 * another region at a record's old address).  POPULATE fails (EFAULT)
 * where an access would raise a signal.
 */
static int fault_in(struct thpswap_session *s, uint64_t a, bool write)
{
	/* A page that holds nothing: a region evicted whole is empty, but one
	 * an eviction could only partly put back is stored with the rest
	 * still present (see move_in), and touching a present page restores
	 * nothing. */
	long hole = thp_pagemap_first_hole(s->pagemap, a, a + REGION);
	uint64_t p = hole > 0 && (uint64_t)hole < a + REGION ? (uint64_t)hole : a;

	/* A write brings a zero region back as a THP, not as the huge zero
	 * page (whose first write would split it); read-only memory cannot. */
	if (write && madvise((void *)(uintptr_t)p, THP_PAGE_SIZE, MADV_POPULATE_WRITE) == 0)
		return 0;
	return madvise((void *)(uintptr_t)p, THP_PAGE_SIZE, MADV_POPULATE_READ) ? -errno : 0;
}

/* Bring record @i back for good: LEAVING makes every evictor back off (it
 * checks after its CAS), and faults meanwhile are served as usual. */
static int restore_for_good(struct thpswap_session *s, uint32_t i)
{
	struct thp_record *r = &s->rec[i];

	__atomic_or_fetch(&r->flags, THP_RF_LEAVING, __ATOMIC_ACQ_REL);
	/* Bounded: an evicted region is empty, so each fault restores it. */
	for (unsigned tries = 0; tries < 1000; tries++) {
		uint32_t st = rec_wait_stable(s, r);
		int q;

		/* EMPTY: unpopulated, ordinary memory reads zeros too. */
		if (st == THP_ST_RESIDENT || st == THP_ST_POISONED || st == THP_ST_EMPTY)
			return 0;
		q = fault_in(s, rec_addr(r), false);
		/* An access would raise a signal (PROT_NONE, say): POPULATE
		 * says EINVAL or EFAULT; tell the caller it is the access. */
		if (q && rec_state(r) != THP_ST_POISONED)
			return q == -EINVAL ? -EFAULT : q;
	}
	return -EIO;
}

/* Unregister one region, once its bytes are back in it; a region that
 * cannot be brought back stays managed, with its bytes, and says why. */
static int unregister_region(struct thpswap_session *s, uint32_t i, uint64_t a)
{
	int r = restore_for_good(s, i);

	if (r == 0)
		r = thp_uffd_unregister(s->uffd, a, REGION);
	if (r) {
		/* Evictable again; its stored bytes stay where they are. */
		__atomic_and_fetch(&s->rec[i].flags, ~THP_RF_LEAVING, __ATOMIC_ACQ_REL);
		return r;
	}
	rt_remove(s, a, a + REGION);
	return 0;
}

_public_ int thpswap_unregister(struct thpswap_session *s, void *addr, size_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;
	int r = all_managed(s, addr, len), q;

	if (r)
		return r;
	for (size_t off = 0; off < len; off += REGION) {
		long i = rt_lookup(s, a + off);

		if (i < 0)
			continue;
		q = unregister_region(s, (uint32_t)i, a + off);
		if (q && !r)
			r = q;
	}
	return r;
}

/*
 * @fn on each managed region that [@addr, @addr+@len) touches, as the
 * table has it once every event read so far is handled.  @fn returns 1 to
 * count the region, 0 not to, or -errno to stop there.  The count, or the
 * error.
 */
static int each_region(struct thpswap_session *s, void *addr, size_t len,
		       int (*fn)(struct thpswap_session *s, uint32_t i, uint64_t a, void *arg),
		       void *arg)
{
	uint64_t a = (uint64_t)(uintptr_t)addr & ~(REGION - 1);
	uint64_t end = (uint64_t)(uintptr_t)addr + len;
	int n = 0;

	if (!s || !len || end < a)
		return -EINVAL;
	if (session_forked(s))
		return -ECHILD;
	for (; a < end; a += REGION) {
		long i;
		int r;

		agent_sync(s);
		i = rt_lookup(s, a);
		if (i < 0)
			continue;
		r = fn(s, (uint32_t)i, a, arg);
		if (r < 0)
			return r;
		n += r;
	}
	return n;
}

static int advise_cold(struct thpswap_session *s, uint32_t i, uint64_t a, void *arg)
{
	uint64_t in = 0, stored = 0;
	enum evict_result res;

	(void)a;
	(void)arg;
	kswap_swapin(s, i);
	pthread_mutex_lock(&s->app_codec_lock);
	res = evict_to_tier(s, i, s->app_codec, s->app_buf, &in, &stored);
	pthread_mutex_unlock(&s->app_codec_lock);
	return res == EV_EVICTED;
}

static int advise_willneed(struct thpswap_session *s, uint32_t i, uint64_t a, void *arg)
{
	uint32_t st = rec_state(&s->rec[i]);

	(void)arg;
	return (st == THP_ST_RAM || st == THP_ST_ZERO) && fault_in(s, a, true) == 0;
}

/* The kernel tier: no swap device refuses the whole call. */
static int advise_pageout(struct thpswap_session *s, uint32_t i, uint64_t a, void *arg)
{
	int r = kswap_pageout(s, i);

	(void)a;
	(void)arg;
	return r == -ENOSPC ? -ENOSPC : r > 0;
}

_public_ int thpswap_advise(struct thpswap_session *s, void *addr, size_t len, enum thpswap_advice advice)
{
	if (advice == THPSWAP_ADVICE_COLD)
		return each_region(s, addr, len, advise_cold, NULL);
	if (advice == THPSWAP_ADVICE_WILLNEED)
		return each_region(s, addr, len, advise_willneed, NULL);
	if (advice == THPSWAP_ADVICE_PAGEOUT)
		return each_region(s, addr, len, advise_pageout, NULL);
	return -EINVAL;
}

/*
 * Pin: the flag first, then wait out an evictor that claimed the record
 * before it (the evictor checks the flag after its claim; flag and claim
 * are bits of one word, so one of them sees the other), then bring the
 * region back if it is evicted.  Nothing evicts it after that.
 */
static int pin_region(struct thpswap_session *s, uint32_t i, uint64_t a)
{
	struct thp_record *r = &s->rec[i];
	uint32_t st;
	int q = 0;

	__atomic_or_fetch(&r->flags, THP_RF_PINNED, __ATOMIC_ACQ_REL);
	while (rec_flags(r) & THP_RF_EVICTOR)
		sched_yield();
	st = rec_wait_stable(s, r);
	if (st == THP_ST_RAM || st == THP_ST_ZERO)
		q = fault_in(s, a, true);
	if (q) {
		/* Not pinned, then: it is evicted, and stays evictable. */
		__atomic_and_fetch(&r->flags, ~THP_RF_PINNED, __ATOMIC_ACQ_REL);
		/* An access would raise a signal (PROT_NONE, say): as for
		 * unregister, tell the caller it is the access. */
		return q == -EINVAL ? -EFAULT : q;
	}
	return 0;
}

static int pin_one(struct thpswap_session *s, uint32_t i, uint64_t a, void *arg)
{
	int r = 0;

	if (*(const bool *)arg)
		r = pin_region(s, i, a);
	else
		__atomic_and_fetch(&s->rec[i].flags, ~THP_RF_PINNED, __ATOMIC_ACQ_REL);
	return r < 0 ? r : 1;
}

static int pin_range(struct thpswap_session *s, void *addr, size_t len, bool pin)
{
	return each_region(s, addr, len, pin_one, &pin);
}

_public_ int thpswap_pin(struct thpswap_session *s, void *addr, size_t len)
{
	return pin_range(s, addr, len, true);
}

_public_ int thpswap_unpin(struct thpswap_session *s, void *addr, size_t len)
{
	return pin_range(s, addr, len, false);
}

_public_ int thpswap_get_stats(struct thpswap_session *s, struct thpswap_stats *st, size_t size)
{
	struct thpswap_stats all;
	uint64_t *v = (uint64_t *)&all;

	if (!s || !st || size == 0 || size % sizeof(uint64_t))
		return -EINVAL;
	if (session_forked(s))
		return -ECHILD; /* the arena is not mapped in a fork child */
	_Static_assert(sizeof(all) / sizeof(uint64_t) <= THP_C__MAX, "stats map to counters");
	for (size_t i = 0; i < sizeof(all) / sizeof(uint64_t); i++)
		v[i] = atomic_load_explicit(&s->hdr->ctr[i], memory_order_relaxed);
	memcpy(st, &all, size < sizeof(all) ? size : sizeof(all));
	return 0;
}
