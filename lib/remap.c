/* SPDX-License-Identifier: MIT */
/*
 * munmap and mremap of managed memory, as their UNMAP and REMAP events are
 * handled (from events.c, in kernel order).  Records go with the last page
 * of their region; a move that keeps 2 MiB alignment re-keys them, any
 * other writes the stored bytes to their new place in 4 KiB pages, following
 * the events read while that copy waits out EAGAIN.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "uffd.h"

/*
 * A misaligned mremap's copy (on_remap): where each page of the region being
 * copied is now, 0 for a page not to be copied.  Events read while a COPY
 * waits out EAGAIN are handled only after the copy, but they change where
 * its pages are: a REMOVE or UNMAP of a page not copied yet means it stays
 * empty (a copy would bring back what the application dropped, or write
 * into whatever is mapped there next); a REMAP carries it along.
 */
struct remap_copy {
	uint64_t dst[REGION / THP_PAGE_SIZE];
};

/* Message @m was just read while s->copying is being copied. */
void copy_follow(struct thpswap_session *s, const struct uffd_msg *m)
{
	struct remap_copy *c = s->copying;
	uint64_t lo, hi, shift = 0;

	switch (m->event) {
	case UFFD_EVENT_FORK:
		/* The child lacks the pages not copied yet, and on_fork comes
		 * after the record is gone: copy_region fills it too. */
		if (s->nearly < sizeof(s->early) / sizeof(s->early[0])) {
			struct early_fork *e = &s->early[s->nearly++];

			memset(&e->f, 0, sizeof(e->f));
			e->cfd = (int)m->arg.fork.ufd;
			memcpy(e->dst, c->dst, sizeof(e->dst));
		}
		return;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		lo = m->arg.remove.start;
		hi = m->arg.remove.end;
		break;
	case UFFD_EVENT_REMAP:
		lo = m->arg.remap.from;
		hi = lo + m->arg.remap.len;
		shift = m->arg.remap.to - lo;
		break;
	default:
		return;
	}
	for (unsigned p = 0; p < REGION / THP_PAGE_SIZE; p++)
		if (c->dst[p] >= lo && c->dst[p] < hi)
			c->dst[p] = shift ? c->dst[p] + shift : 0;
}

/* The first message read but not handled that takes the region at @a away
 * (an UNMAP of it, or a REMAP from it); its position in u, or -1. */
static long find_vacate(const struct thpswap_session *s, uint64_t a)
{
	for (unsigned i = s->uhead; i != s->utail; i++) {
		const struct uffd_msg *m = &s->u[i & (QCAP - 1)];

		if (m->event == UFFD_EVENT_UNMAP && m->arg.remove.start < a + REGION &&
		    m->arg.remove.end > a)
			return i;
		if (m->event == UFFD_EVENT_REMAP && m->arg.remap.from < a + REGION &&
		    m->arg.remap.from + m->arg.remap.len > a)
			return i;
	}
	return -1;
}

/*
 * A region was moved onto [to, to+len), so whatever was there before is
 * gone, but the event that says so may not have been handled yet: events of
 * different threads arrive in the order they were sent, not in the order of
 * their changes (thread A's munmap or mremap away from X unlocks, thread B
 * mremaps onto X, and B's REMAP overtakes A's event).  Handle that event
 * first, reading on while the kernel has events to send; a record that no
 * event takes away was stale.
 */
static void clear_way(struct thpswap_session *s, uint64_t to, uint64_t len)
{
	for (uint64_t a = to; a < to + len; a += REGION) {
		for (unsigned tries = 0; rt_lookup(s, a) >= 0;) {
			long k = s->way_depth < 8 ? find_vacate(s, a) : -1;

			if (k >= 0) {
				struct uffd_msg m = s->u[k & (QCAP - 1)];

				s->u[k & (QCAP - 1)].event = 0; /* handled here */
				s->way_depth++;
				handle_urgent(s, &m);
				s->way_depth--;
			} else if (tries++ < 100000 && events_pending(s)) {
				agent_drain(s); /* reads only: we are in a handler */
				sched_yield();
			} else {
				rt_remove(s, a, a + REGION);
				break; /* (our own restore's record goes when it ends) */
			}
		}
	}
}

/* Pages [lo, hi) of the region at @a are no longer mapped; its record goes
 * with its last page. */
static void cut(struct thpswap_session *s, uint32_t idx, uint64_t a, uint64_t lo, uint64_t hi)
{
	bool all = true;

	for (uint64_t p = (lo - a) / THP_PAGE_SIZE; p < (hi - a + THP_PAGE_SIZE - 1) / THP_PAGE_SIZE; p++)
		s->cut[idx][p / 64] |= 1ull << (p % 64);
	for (int w = 0; w < 8; w++)
		all &= s->cut[idx][w] == UINT64_MAX;
	if (all)
		rt_remove(s, a, a + REGION);
}

/* Copy pages [lo, hi) of the region at @a, decoded in fault_buf, to where
 * the mremap put them (@shift on), and wherever events read meanwhile put
 * them next. */
static void copy_region(struct thpswap_session *s, uint64_t a, uint64_t lo, uint64_t hi,
			uint64_t shift)
{
	static const struct remap_copy none;
	struct remap_copy c = none;
	unsigned forked = s->nearly;

	for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE)
		c.dst[(p - a) / THP_PAGE_SIZE] = p + shift;

	s->copying = &c;
	for (unsigned k = 0; k < REGION / THP_PAGE_SIZE; k++)
		while (c.dst[k] && thp_uffd_copy(s->uffd, c.dst[k],
						 (uint64_t)(uintptr_t)s->fault_buf + k * THP_PAGE_SIZE,
						 THP_PAGE_SIZE, 0, NULL) == -EAGAIN) {
			agent_drain(s); /* reads only: we are in a handler */
			/* Pages from k on were not copied at any fork read. */
			for (; forked < s->nearly; forked++)
				early_fill(s, &s->early[forked], k);
		}
	s->copying = NULL;
	ctr_add(s, THP_C_FALLBACK_4K, 1);
}

/*
 * mremap moved [from, from+len) to @to (an UNMAP of the old range follows).
 * Resident pages moved with the page tables.  Records move with their
 * regions when the move keeps 2 MiB alignment; otherwise a PMD can never be
 * installed there again, so the stored bytes are written to their new
 * place now, in 4 KiB pages, and the record is dropped.
 */
void on_remap(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len)
{
	uint64_t first = from & ~(REGION - 1);

	/* Its UNMAP of the old range is already done (see on_unmap). */
	s->moved_from[s->nmoved_from++ % 64] =
		(struct moved_from){ .from = from, .len = len, .seq = atomic_load(&s->u_read) };
	if (!((from | to | len) & (REGION - 1))) {
		clear_way(s, to, len);
		rt_move(s, from, to, len);
		return;
	}
	/* Wholly moved regions are marked before any copy: the UNMAP of the
	 * old range that follows (read while a COPY waits out EAGAIN) leaves
	 * them to us. */
	for (uint64_t a = first; a + REGION <= from + len; a += REGION) {
		long idx = rt_lookup(s, a);

		if (a >= from && idx >= 0)
			__atomic_or_fetch(&s->rec[idx].flags, THP_RF_MOVING, __ATOMIC_RELEASE);
	}
	for (uint64_t a = first; a < from + len; a += REGION) {
		uint64_t lo = a > from ? a : from, hi = a + REGION < from + len ? a + REGION : from + len;
		long idx = rt_lookup(s, a);
		uint32_t st;

		if (idx < 0)
			continue;
		/* Our own restore's record still holds its bytes: no waiting. */
		st = fault_owned(s, (uint32_t)idx) ? (s->rec[idx].stored_len ? THP_ST_RAM : THP_ST_ZERO)
						   : rec_wait_stable(s, &s->rec[idx]);
		if (st == THP_ST_RAM && decode_record(s, (uint32_t)idx, s->fault_buf))
			copy_region(s, a, lo, hi, to - from);
		/* Evicted zeros need nothing: the new place faults to zero. */
		if (lo == a && hi == a + REGION) {
			__atomic_and_fetch(&s->rec[idx].flags, ~THP_RF_MOVING, __ATOMIC_RELEASE);
			rt_remove(s, a, a + REGION);
		} else {
			cut(s, (uint32_t)idx, a, lo, hi); /* the rest stays here */
		}
	}
}

/*
 * munmap: a region's record goes when its last page is unmapped; a region
 * left partly mapped keeps it and is served through the 4 KiB fallback.
 *
 * mremap sends the UNMAP of its old range after its REMAP, though the
 * kernel unmapped it before: by now another thread may have moved a region
 * there (on_remap re-keyed it), which this UNMAP must not touch.  The old
 * range's records moved with the REMAP already, so it is a no-op.  A
 * MREMAP_DONTUNMAP sends none; its entry ages out.
 */
void on_unmap(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	unsigned long now = atomic_load(&s->u_read);

	for (unsigned k = 0; k < 64 && k < s->nmoved_from; k++) {
		struct moved_from *m = &s->moved_from[k];

		if (m->len && now - m->seq < 4096 && m->from == start && m->from + m->len == end) {
			m->len = 0;
			return;
		}
	}
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		uint64_t lo = a > start ? a : start, hi = a + REGION < end ? a + REGION : end;
		long idx = rt_lookup(s, a);

		if (idx < 0 || (rec_flags(&s->rec[idx]) & THP_RF_MOVING))
			continue; /* on_remap copies it to its new place, then frees it */
		cut(s, (uint32_t)idx, a, lo, hi);
	}
}
