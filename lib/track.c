/* SPDX-License-Identifier: MIT */
/*
 * Write tracking: which resident regions the program writes, at 2 MiB,
 * without splitting a THP, so that the daemon can tell a hot region that
 * never faults from a cold one (docs/ARCHITECTURE.md, *What cold means*).
 *
 * The regions are registered for write-protect faults as well as missing
 * ones.  Every track_ms the background thread protects each resident
 * region (UFFDIO_WRITEPROTECT of its 2 MiB: a PMD stays one PMD).  The
 * first write to it faults to the fault thread, which marks the record
 * WRITTEN and lifts the protection from the whole 2 MiB, waking the writer:
 * one fault per written region per interval.  Lifting only the written
 * 4 KiB would split the PMD; the synchronous fault is what keeps it whole
 * (the asynchronous mode resolves a fault on a PMD by splitting it,
 * docs/KERNEL.md, *Write-protect*).  At each arm WRITTEN moves to WROTE, so
 * the daemon, reading either, sees "written in the last interval or two"
 * whenever in the interval it looks.
 *
 * Nothing here waits for a record: a write fault is served whatever the
 * region's state (an eviction that moves the PMD out takes the protection
 * with it; the writer then faults as missing).  Protection is laid only
 * with the events held and never on a region an eviction has claimed
 * (THP_RF_EVICTOR, set before the evictor holds the events to lift it):
 * MADV_COLLAPSE refuses write-protected page table entries, and the
 * evictor collapses.
 */
#include <errno.h>
#include <linux/userfaultfd.h>

#include "internal.h"
#include "uffd.h"

void track_init(struct thpswap_session *s, unsigned ms)
{
	s->track.ms = ms;
	atomic_store(&s->track.on, s->track.ms != 0);
	s->track.next_ns = now_ns() + (uint64_t)s->track.ms * 1000000ull;
}

int track_register(struct thpswap_session *s, uint64_t start, uint64_t len)
{
	bool wp = atomic_load(&s->track.on);
	int r = -EINVAL;

	if (wp)
		r = thp_uffd_register(s->uffd, start, len,
				      UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
	if (r == -EINVAL) {
		r = thp_uffd_register(s->uffd, start, len, UFFDIO_REGISTER_MODE_MISSING);
		/* Refused for write-protect alone: a kernel without it for
		 * anonymous memory.  The session goes by faults alone. */
		if (wp && r == 0)
			atomic_store(&s->track.on, false);
	}
	return r;
}

void track_fault(struct thpswap_session *s, uint64_t addr)
{
	uint64_t a = addr & ~(REGION - 1), page = addr & ~(uint64_t)(THP_PAGE_SIZE - 1);
	long i = rt_lookup(s, a);
	int rc;

	/* Only a hint for the daemon: a record re-keyed meanwhile gets a mark
	 * a write would have given it anyway, or loses one. */
	if (i >= 0)
		__atomic_or_fetch(&s->rec[i].flags, THP_RF_WRITTEN, __ATOMIC_RELAXED);
	for (;;) {
		/* The whole 2 MiB: a part would split its PMD. */
		rc = thp_uffd_writeprotect(s->uffd, a, REGION, 0);
		if (rc == -EAGAIN) {
			let_events_drain(s); /* an mremap or munmap is unread */
			continue;
		}
		break;
	}
	/* ENOENT: part of the 2 MiB is not registered for write-protect (a
	 * mapping that is not ours, or a region cut by mprotect): no PMD to
	 * keep there, so the page alone.  Failing that, wake the writer: it
	 * retries, and faults again as whatever it is now. */
	if (rc && thp_uffd_writeprotect(s->uffd, page, THP_PAGE_SIZE, 0))
		thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
}

bool track_lift(struct thpswap_session *s, uint32_t idx)
{
	/* Not @on: a region protected before a registration turned tracking
	 * off keeps its protection until it is written or lifted here. */
	if (!s->track.ms)
		return true;
	/* Never waiting for a handler, which may wait for this record. */
	if (!events_hold(s, false))
		return false;
	/* A range not wholly registered (a split region) keeps what it has;
	 * its collapse fails as it would anyway. */
	thp_uffd_writeprotect(s->uffd, rec_addr(&s->rec[idx]), REGION,
			      UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	events_release(s);
	return true;
}

/* Protect one resident region: WRITTEN moves to WROTE first, so that a
 * write after the protection is never lost to the move. */
static void arm_one(struct thpswap_session *s, struct thp_record *r)
{
	const uint32_t skip = THP_RF_EVICTOR | THP_RF_LEAVING | THP_RF_ARRIVING | THP_RF_PINNED |
			      THP_RF_KSWAP;
	uint32_t f;

	if (rec_state(r) != THP_ST_RESIDENT || (rec_flags(r) & skip))
		return;
	if (!events_hold(s, false))
		return; /* busy with an event: next interval */
	/* Checked again with the events held: an evictor sets EVICTOR before
	 * it holds them to lift the protection, so it lifts after us or we
	 * see its claim. */
	if (rec_state(r) == THP_ST_RESIDENT && !(rec_flags(r) & skip)) {
		f = __atomic_fetch_and(&r->flags, ~THP_RF_WRITTEN, __ATOMIC_ACQ_REL);
		if (f & THP_RF_WRITTEN)
			__atomic_or_fetch(&r->flags, THP_RF_WROTE, __ATOMIC_RELEASE);
		else
			__atomic_and_fetch(&r->flags, ~THP_RF_WROTE, __ATOMIC_RELEASE);
		/* ENOENT: not wholly registered for it (a split region). */
		thp_uffd_writeprotect(s->uffd, rec_addr(r), REGION, UFFDIO_WRITEPROTECT_MODE_WP);
	}
	events_release(s);
}

uint64_t track_scan(struct thpswap_session *s)
{
	uint64_t now = now_ns(), every = (uint64_t)s->track.ms * 1000000ull;

	if (!atomic_load(&s->track.on))
		return 0;
	if (now < s->track.next_ns)
		return s->track.next_ns - now;
	for (uint32_t i = 0; i < s->hdr->max_regions; i++)
		arm_one(s, &s->rec[i]);
	s->track.next_ns = now_ns() + every;
	return every;
}
