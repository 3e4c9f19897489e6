/* SPDX-License-Identifier: MIT */
/*
 * Region operations: the ioctls that move a region's pages between the
 * region and a scratch slot on the region uffd, for eviction (move out, put
 * back) and restore (move in, copy in) alike.  Each runs with the region
 * uffd's events held (events_hold), so that a record's address is where its
 * region is now, and zeroes the pages the application zapped meanwhile
 * (the zap mask) before anything moves in.
 *
 * The bottom of the agent: nothing here calls up into the event intake.
 * Where the fault thread must read events while it waits out EAGAIN (the
 * event pending is what fails its ioctl), it reads them through the reader
 * the agent passed down (s->read_events), never by name.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec.h"
#include "internal.h"
#include "pagemap.h"
#include "samples.h"
#include "uffd.h"

/* ---- holding the events ---- */

/* Set by the fault thread as it starts (fault_main): the one thread that
 * reads events handles what it reads before anything else. */
_Thread_local struct thpswap_session *fault_thread_of __attribute__((tls_model("initial-exec")));

bool events_hold(struct thpswap_session *s, bool wait)
{
	if (agent_is_fault_thread(s))
		return true; /* the reader: it handles what it reads first */
	for (;;) {
		pthread_mutex_lock(&s->zap_lock);
		if (atomic_load(&s->u_done) == atomic_load(&s->u_read))
			return true;
		pthread_mutex_unlock(&s->zap_lock);
		/* A handler running may be waiting for the caller's record. */
		if (!wait && atomic_load(&s->in_urgent))
			return false;
		sched_yield();
	}
}

void events_release(struct thpswap_session *s)
{
	if (!agent_is_fault_thread(s))
		pthread_mutex_unlock(&s->zap_lock);
}

/*
 * Events pending on the region uffd make MOVE/COPY fail with EAGAIN and no
 * progress; the fault thread reads them, anyone else lets it.  The fault
 * thread reads through s->read_events (agent_drain, which only reads while
 * an event handler runs), the reader passed down to us: this file is below
 * the intake and never calls it by name.
 */
void let_events_drain(struct thpswap_session *s)
{
	unsigned long before = atomic_load(&s->u_read);

	ctr_add(s, THP_C_EAGAIN_RETRIES, 1);
	if (agent_is_fault_thread(s))
		s->read_events(s);
	/* Nothing to read yet: the thread whose munmap or mremap set
	 * mmap_changing has not sent its event, and may be waiting for this
	 * CPU.  Retrying at once only re-faults the same page thousands of
	 * times. */
	if (atomic_load(&s->u_read) == before)
		sched_yield();
}

/* The fault thread's restore of @idx lost its region to an event read while
 * it waited out EAGAIN (see rt_remove): whatever is at its address now is
 * not this record's to fill. */
bool region_gone(struct thpswap_session *s, uint32_t idx)
{
	const struct owned *own = fault_owned(s, idx);

	return own && own->gone;
}

/* ---- in: restore, and an eviction's move back ---- */

/*
 * 4 KiB fallback when no PMD can be installed (prot differs after
 * mprotect, part of the region unmapped): copy page by page, skipping pages
 * that are present already or no longer mapped.  Once part of a restore is
 * in, the rest must follow: wait.  An eviction's put-back (@staged) never
 * waits (see move_in): it stops, and zeroes in the slot what is in the
 * region already, so that the slot holds exactly what is not, for the
 * caller to keep as the record.
 */
static int copy_in(struct thpswap_session *s, uint32_t idx, uint64_t src, bool wait, bool staged)
{
	int copied = 0;

	ctr_add(s, THP_C_FALLBACK_4K, 1);
	samples_flag(s, SF_COPY_IN);
	for (uint64_t off = 0; off < REGION;) {
		uint64_t dst, m[8];
		int rc;

		if (!events_hold(s, wait || (copied > 0 && !staged))) {
			memset((char *)(uintptr_t)src, 0, off);
			return -EDEADLK;
		}
		if (region_gone(s, idx)) {
			events_release(s);
			return -ESTALE;
		}
		/* Zaps read since the last page (events read while a COPY
		 * waited out EAGAIN): the pages still to come are zeroed in
		 * the slot; on the pages in already, they land. */
		if (zap_take(s, idx, m)) {
			for (uint64_t p = 0; p < off / THP_PAGE_SIZE; p++)
				m[p / 64] &= ~(1ull << (p % 64));
			zap_apply((char *)(uintptr_t)src, m);
		}
		dst = rec_addr(&s->rec[idx]);
		/* A page of zeros maps the zero page: nothing allocated until
		 * it is written (a hole at eviction reads as one). */
		if (thp_is_zero((const void *)(uintptr_t)(src + off), THP_PAGE_SIZE))
			rc = thp_uffd_zeropage(s->uffd, dst + off, THP_PAGE_SIZE,
					       UFFDIO_ZEROPAGE_MODE_DONTWAKE, NULL);
		else
			rc = thp_uffd_copy(s->uffd, dst + off, src + off, THP_PAGE_SIZE,
					   UFFDIO_COPY_MODE_DONTWAKE, NULL);
		events_release(s);
		if (rc == -EAGAIN) {
			let_events_drain(s);
			continue;
		}
		if (rc == 0)
			copied++;
		else if (rc != -EEXIST && rc != -ENOENT)
			return rc;
		off += THP_PAGE_SIZE;
	}
	/* A put-back with nothing to copy is done: every page was back
	 * already, or the region is gone. */
	return copied || staged ? 0 : -ENOENT;
}

bool restores_in_pages(const struct thp_record *r)
{
	uint8_t kind = __atomic_load_n(&r->kind, __ATOMIC_RELAXED);

	return kind == THP_KIND_NOHUGE || kind == THP_KIND_SPLIT;
}

/*
 * An eviction's put-back (MOVE_IN_STAGED) moves its slot back as it is: the
 * slot holds the region's own pages and holes, which one MOVE with holes
 * allowed puts back as they were, whatever the kind.  And it never waits
 * for the fault thread, which may be handling a FORK (or an mremap) that
 * waits for this very record, CANCEL until the put-back ends: the soak
 * found both deadlocks, with a copy page by page and with a MOVE cut short.
 * It stops with -EDEADLK instead, what is not back yet still in the slot,
 * and the evictor keeps that as the record (keep_instead): a region part
 * present and part stored is one a restore completes.  A fork cannot fall
 * between two steps of it unseen: the kernel fails a MOVE or COPY while
 * its FORK is unread, and no step runs while one is unhandled.
 */
int move_in(struct thpswap_session *s, uint32_t idx, uint64_t src, unsigned how)
{
	bool wait = how & MOVE_IN_WAIT, staged = how & MOVE_IN_STAGED;
	uint64_t mode = UFFDIO_MOVE_MODE_DONTWAKE | (staged ? UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES : 0);
	uint64_t dst, off = 0, m[8];

	for (;;) {
		int64_t moved = 0;
		int rc;

		/* Held, no event is read: a zap is either noted before the
		 * take (and zeroed in the slot) or lands after the MOVE.  A
		 * restore part way in waits; a put-back stops, its slot holding
		 * what is not in the region (what moved left holes). */
		if (!events_hold(s, wait || (off > 0 && !staged)))
			return -EDEADLK;
		if (region_gone(s, idx)) {
			events_release(s);
			return -ESTALE;
		}
		/* Read each time: an mremap handled while we waited out EAGAIN
		 * moves the record, and the region, elsewhere. */
		dst = rec_addr(&s->rec[idx]);
		/* Zaps read so far are in the slot now: where they land after
		 * the MOVE they find those zeros, so none is "in flight" for
		 * the evictor; only those read from here on are (rzap). */
		rzap_clear(s, idx);
		if (zap_take(s, idx, m)) {
			/* Pages already moved (off) are resident: their zaps land. */
			for (unsigned w = 0; w < off / THP_PAGE_SIZE / 64 && w < 8; w++)
				m[w] = 0;
			zap_apply((char *)(uintptr_t)src, m);
		}
		if (off == 0 && !staged && restores_in_pages(&s->rec[idx])) {
			events_release(s);
			return copy_in(s, idx, src, wait, false);
		}
		rc = thp_uffd_move(s->uffd, dst + off, src + off, REGION - off, mode, &moved);
		events_release(s);
		if (rc == 0)
			return 0;
		if (rc == -EAGAIN && moved > 0) {
			/* Short move: the region had a page table; go on. */
			off += (uint64_t)moved;
			continue;
		}
		if (rc == -EAGAIN) {
			/* The zeros stay in the slot, and the bits go back: a
			 * FORK handled while we wait fills the child from the
			 * record (decode_record), which must zero them too. */
			zap_put_back(s, idx, m);
			samples_flag(s, SF_EAGAIN);
			let_events_drain(s);
			continue;
		}
		/* EINVAL: prot or VMA differ (mprotect, part unmapped); EEXIST or
		 * ENOENT: something is already at the destination, or nothing at
		 * the source (a bug, unless staged).  Page by page fills what is
		 * missing.  A put-back copies whatever MOVE refused (EBUSY: a
		 * page in the kernel's swap cache as part of a large folio):
		 * its slot holds the only copy. */
		if (staged || rc == -EINVAL || rc == -ENOENT || rc == -EEXIST)
			return copy_in(s, idx, src, wait, staged);
		zap_put_back(s, idx, m); /* the record keeps its pending zaps */
		return rc;
	}
}

void became_resident(struct thpswap_session *s, uint32_t idx)
{
	/* Bits noted between the MOVE and now are for events read after it:
	 * their zaps land on the resident pages. */
	pthread_mutex_lock(&s->zap_lock);
	zap_clear(s, idx);
	pthread_mutex_unlock(&s->zap_lock);
}

/* ---- out, and back: eviction ---- */

/*
 * MOVE refuses pages that are not exclusive (EBUSY): after a fork they stay
 * so until written, even once the child is gone (docs/KERNEL.md).  If
 * pagemap says the THP at @addr is mapped by us alone, a write fault makes
 * the kernel reuse it as exclusive, without a copy or a split.
 * MADV_POPULATE_WRITE takes that fault without touching the bytes, and
 * fails with ENOMEM where an munmap meanwhile left nothing (a store would
 * be SIGSEGV on an agent thread).  The caller owns nothing of the region:
 * a zap that lands meanwhile makes it a uffd fault, which the fault thread
 * serves -- unless it is waiting for an eviction of ours to end, which is
 * why this never runs while a record is EVICTING.  While a child still
 * maps the THP, evicting would free nothing: false, refuse.
 */
bool unshare_after_fork(struct thpswap_session *s, uint64_t addr)
{
	uint64_t pm;

	if (pread(s->pagemap, &pm, sizeof(pm), (off_t)(addr / THP_PAGE_SIZE * 8)) != sizeof(pm) ||
	    !(pm & (1ull << 63)) || !(pm & (1ull << 56)))
		return false; /* not present, or still mapped by another process */
	return madvise((void *)(uintptr_t)addr, THP_PAGE_SIZE, MADV_POPULATE_WRITE) == 0;
}

/*
 * How much of the region a MOVE out that failed took to @slot: what the
 * slot holds, not what the kernel said (@said).  A MOVE cut short can
 * report less than it moved (docs/KERNEL.md, *MOVE's count*), and a page
 * put back by that count alone would be left in the slot, a hole in the
 * region that reads as zeros.  The slot was empty: all it holds is the
 * region's, from its start.
 */
static int64_t slot_holds(struct thpswap_session *s, const char *slot, int64_t said)
{
	uint64_t a = (uint64_t)(uintptr_t)slot;
	long end = thp_pagemap_there_end(s->pagemap, a, a + REGION);

	if (end > 0 && (int64_t)((uint64_t)end - a) > said)
		return (int64_t)((uint64_t)end - a);
	return said;
}

/*
 * One MOVE of the region at its address now out to staging @slot, on the
 * region uffd with its events held: the MOVE takes the region where it is,
 * and fails with EAGAIN while an mremap or munmap of it is unread (waited
 * out here while nothing moved).  A zap read before the evictor's CAS
 * (rzap) or since (REMOVED) may land after the MOVE, on the empty region:
 * -ECANCELED leaves it for now.  @pmd: only if the region is one PMD (a
 * MOVE of a PTE-mapped range would split the folio): -EFBIG if not.
 */
static int move_out_once(struct thpswap_session *s, struct thp_record *r, char *slot,
			 bool pmd, uint64_t mode, int64_t *moved)
{
	for (;;) {
		uint64_t addr;
		int rc;

		*moved = 0;
		/* Not while the fault thread handles an event: it may be
		 * waiting for this record. */
		if (!events_hold(s, false))
			return -EAGAIN;
		addr = rec_addr(r);
		if ((rec_flags(r) & THP_RF_REMOVED) || rzap_in_flight(s, (uint32_t)(r - s->rec), addr)) {
			events_release(s);
			return -ECANCELED;
		}
		if (pmd && !is_pmd_mapped(s, addr)) {
			events_release(s);
			return -EFBIG;
		}
		rc = thp_uffd_move(s->uffd, (uint64_t)(uintptr_t)slot, addr, REGION, mode, moved);
		events_release(s);
		if (rc)
			*moved = slot_holds(s, slot, *moved);
		if (rc == -EAGAIN && *moved <= 0) {
			sched_yield(); /* the fault thread reads the pending event */
			continue;
		}
		return rc;
	}
}

/*
 * MOVE the region's THP out to staging @slot (see move_out_once).  A
 * region split since make_whole() looked (a zap landed) gets one more
 * collapse, harmless at a stale address (it never fills a hole of
 * uffd-registered memory).  0 with the region empty; else -errno and
 * *moved what left anyway.
 */
int move_out(struct thpswap_session *s, struct thp_record *r, char *slot, int64_t *moved)
{
	int rc = move_out_once(s, r, slot, true, 0, moved);

	if (rc == -EFBIG && !madvise((void *)(uintptr_t)rec_addr(r), REGION, MADV_COLLAPSE))
		rc = move_out_once(s, r, slot, true, 0, moved);
	if (rc == -EFBIG)
		__atomic_or_fetch(&r->flags, THP_RF_SPLIT, __ATOMIC_RELEASE);
	else if (rc == 0)
		__atomic_and_fetch(&r->flags, ~THP_RF_SPLIT, __ATOMIC_RELEASE);
	return rc;
}

/*
 * move_out for a region that cannot be one PMD (its VMA takes no THP, or
 * no THP was to be had): its 4 KiB pages, holes left as holes, in one MOVE,
 * which splits a PTE-mapped large folio.  0 with the region empty; else
 * -errno and *moved what left anyway (holes included: put_back_part moves
 * them back as holes).  EBUSY: a page shared with a fork child; EINVAL
 * (-EFBIG): the VMA changed since it was looked at (mprotect of part).
 */
int move_out_pages(struct thpswap_session *s, struct thp_record *r, char *slot, int64_t *moved)
{
	int rc = move_out_once(s, r, slot, false, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, moved);

	return rc == -EINVAL ? -EFBIG : rc;
}

/* Zaps read since the last step of a put-back, for the pages still in the
 * slot, [@from, @to): zeroed there, so that they come back as zeros (a zap
 * of a page not in the region lands on nothing).  Those of pages in the
 * region land on them: dropped.  Events held. */
static void zero_zapped(struct thpswap_session *s, uint32_t idx, char *slot, uint64_t from,
			uint64_t to)
{
	uint64_t m[8];

	if (!zap_take(s, idx, m))
		return;
	for (uint64_t p = 0; p < REGION / THP_PAGE_SIZE; p++)
		if (p < from / THP_PAGE_SIZE || p >= to / THP_PAGE_SIZE)
			m[p / 64] &= ~(1ull << (p % 64));
	zap_apply(slot, m);
}

/*
 * The MOVE out stopped part way (a zap landed between the PMD check and
 * the MOVE and split the region, or a page of it could not move) and only
 * its first @len bytes left: put exactly those back, holes staying holes.
 * A page the kernel will not MOVE back (EBUSY, say) is copied instead, and
 * zeroed in the slot once in.  0 when all is back.  Unless @wait, it never
 * waits for the fault thread (see move_in): -EDEADLK, with the slot holding
 * exactly what is not back (zeros elsewhere), for the caller to keep.
 */
int put_back_part(struct thpswap_session *s, struct thp_record *r, char *slot, uint64_t len,
		  bool wait)
{
	uint32_t idx = (uint32_t)(r - s->rec);
	uint64_t off = 0, copied_from = len;

	while (off < len) {
		uint64_t src = (uint64_t)(uintptr_t)slot + off;
		int64_t done = 0;
		int rc;

		if (!events_hold(s, wait)) {
			memset(slot + copied_from, 0, off > copied_from ? off - copied_from : 0);
			return -EDEADLK;
		}
		zero_zapped(s, idx, slot, off, len);
		if (copied_from == len) {
			rc = thp_uffd_move(s->uffd, rec_addr(r) + off, src, len - off,
					   UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);
		} else {
			/* Data in the slot (present, or a swap entry that moved
			 * out: not a hole) and not present at the region:
			 * copied.  EEXIST (present there) or ENOENT (unmapped
			 * meanwhile) pass it over. */
			rc = 0;
			done = THP_PAGE_SIZE;
			if (thp_pagemap_count_there(s->pagemap, src, src + THP_PAGE_SIZE) == 1) {
				rc = thp_uffd_copy(s->uffd, rec_addr(r) + off, src, THP_PAGE_SIZE,
						   UFFDIO_COPY_MODE_DONTWAKE, NULL);
				if (rc == -EEXIST || rc == -ENOENT)
					rc = 0;
				if (rc)
					done = 0;
			}
		}
		events_release(s);
		if (done > 0) {
			off += (uint64_t)done;
		} else if (rc == -EAGAIN) {
			sched_yield(); /* the fault thread reads the pending event */
		} else if (rc && copied_from == len) {
			/* A MOVE back the kernel refuses: copy the rest. */
			ctr_add(s, THP_C_FALLBACK_4K, 1);
			copied_from = off;
		} else if (rc) {
			off += THP_PAGE_SIZE; /* cannot be placed: the region is unusable */
		} else {
			off = len;
		}
	}
	return 0;
}

void own_zero_pages(struct thpswap_session *s, uint64_t addr)
{
	struct page_region v[64];
	long n = thp_pagemap_scan(s->pagemap, addr, addr + REGION, PAGE_IS_PFNZERO, 0, v, 64, NULL);

	for (long k = 0; k < n; k++)
		madvise((void *)(uintptr_t)v[k].start, v[k].end - v[k].start, MADV_POPULATE_WRITE);
}
