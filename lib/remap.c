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
 * copied may be now (n == 0: a page not to be copied).  Events read while a
 * COPY waits out EAGAIN are handled only after the copy, but they change
 * where its pages are: a REMOVE of a page not copied yet means it stays
 * empty (a copy would bring back what the application dropped); a REMAP may
 * carry it along, or be a late event of a mapping that left those addresses
 * before our mremap came (see struct page_places).  An UNMAP needs nothing:
 * the COPY fails with ENOENT where nothing is mapped, and a region
 * registered there since is recognised by its birth (see place_foreign()).
 */
struct remap_copy {
	uint64_t from;            /* the region copied: its record is still keyed here */
	uint64_t waiting_ns;      /* since when place_copy waits for an event (0: not) */
	struct page_places pg[REGION / THP_PAGE_SIZE];
};

/* How long a copy waits for the event that took a place away (see
 * place_copy): it is sent right after the change, but its sender may wait
 * for a CPU.  The bound is for a mapping that left with no event at all. */
#define COPY_WAIT_NS 10000000000ull

void copy_follow(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq)
{
	struct remap_copy *c = s->copying;
	uint64_t lo, hi;

	switch (m->event) {
	case UFFD_EVENT_FORK:
		/* The child lacks the pages not copied yet, and on_fork comes
		 * after the record is gone: copy_region fills it too. */
		if (s->nearly < sizeof(s->early) / sizeof(s->early[0])) {
			struct early_fork *e = &s->early[s->nearly++];

			memset(&e->f, 0, sizeof(e->f));
			e->cfd = (int)m->arg.fork.ufd;
			memcpy(e->pg, c->pg, sizeof(e->pg));
		}
		return;
	case UFFD_EVENT_REMOVE:
		lo = m->arg.remove.start;
		hi = m->arg.remove.end;
		for (unsigned p = 0; p < REGION / THP_PAGE_SIZE; p++)
			for (unsigned i = 0; i < c->pg[p].n; i++)
				if (c->pg[p].at[i] >= lo && c->pg[p].at[i] < hi)
					c->pg[p].zapped |= (uint8_t)(1u << i);
		return;
	case UFFD_EVENT_REMAP:
		lo = m->arg.remap.from;
		hi = lo + m->arg.remap.len;
		for (unsigned p = 0; p < REGION / THP_PAGE_SIZE; p++) {
			struct page_places *pp = &c->pg[p];

			for (unsigned i = 0, n = pp->n; i < n && pp->n < NPLACES; i++)
				if (pp->at[i] >= lo && pp->at[i] < hi) {
					/* A page zapped there and then moved is
					 * missing here too: it must read zeros. */
					if (pp->zapped & (1u << i))
						pp->zapped |= (uint8_t)(1u << pp->n);
					pp->since[pp->n] = seq + 1;
					pp->at[pp->n++] = pp->at[i] + (m->arg.remap.to - lo);
				}
		}
		return;
	default:
		return;
	}
}

/* The first message read but not handled, at positions [first, end) of u,
 * that takes any of [lo, hi) away (an UNMAP of it, or a REMAP from it); its
 * position, or -1. */
static long find_vacate_in(const struct thpswap_session *s, uint64_t lo, uint64_t hi,
			   unsigned first, unsigned end)
{
	for (unsigned i = first; i != end; i++) {
		const struct uffd_msg *m = &s->u[i & (QCAP - 1)];

		if (m->event == UFFD_EVENT_UNMAP && m->arg.remove.start < hi && m->arg.remove.end > lo)
			return i;
		if (m->event == UFFD_EVENT_REMAP && m->arg.remap.from < hi &&
		    m->arg.remap.from + m->arg.remap.len > lo)
			return i;
	}
	return -1;
}

/* The same for the region at @a, among every message not handled yet. */
static long find_vacate(const struct thpswap_session *s, uint64_t a)
{
	return find_vacate_in(s, a, a + REGION, s->uhead, s->utail);
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
	/* The event is on its way while the kernel says one is pending, but
	 * its sender may wait for a CPU for a long time: a bound by count
	 * would give up on it (and drop a record that moved on).  The bound
	 * is for a queue so full that it cannot be read. */
	uint64_t give_up = now_ns() + 10000000000ull; /* 10 s */

	for (uint64_t a = to; a < to + len; a += REGION) {
		while (rt_lookup(s, a) >= 0) {
			long k = s->way_depth < 8 ? find_vacate(s, a) : -1;

			if (k >= 0) {
				struct uffd_msg m = s->u[k & (QCAP - 1)];

				s->u[k & (QCAP - 1)].event = 0; /* handled here */
				s->way_depth++;
				handle_urgent(s, &m, (unsigned)k);
				s->way_depth--;
			} else if (now_ns() < give_up && events_pending(s)) {
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

/*
 * Can place @i of @pp not hold the page?  A misaligned copy's page is where
 * no region of the table is: a region registered after the REMAP that put
 * the page at that place was read (since[i]) is new memory there, as the
 * page had left by then; an older one is where its own bytes are, unless an
 * event read but not handled yet takes it away (it left before the page
 * came: mapped between the copy's REMAP and a later one that brought the
 * page, then unmapped again while the copy ran; or the late event of a
 * mapping that left before our mremap came).  The record being copied is
 * still keyed where the region was: a page moved back over that place is
 * not kept out by it.  Nor is the page where a REMAP read but not handled
 * yet moves another mapping to, unless that mapping left again (an UNMAP or
 * a REMAP away, read after it) before the move that brought the page.
 */
bool place_foreign(struct thpswap_session *s, const struct page_places *pp, unsigned i)
{
	uint64_t p = pp->at[i], a = p & ~(REGION - 1);
	long r = rt_lookup(s, a);

	if (r >= 0 && !(s->copying && a == s->copying->from) &&
	    ((int)((unsigned)atomic_load(&s->born[r]) - pp->since[i]) >= 0 || find_vacate(s, a) < 0))
		return true;
	for (unsigned k = s->uhead; k != s->utail; k++) {
		const struct uffd_msg *m = &s->u[k & (QCAP - 1)];
		bool ours = false;

		if (m->event != UFFD_EVENT_REMAP || p < m->arg.remap.to ||
		    p >= m->arg.remap.to + m->arg.remap.len)
			continue;
		for (unsigned j = 0; j < i; j++)
			ours |= pp->at[j] >= m->arg.remap.from &&
				pp->at[j] < m->arg.remap.from + m->arg.remap.len;
		/* Positions before since[i] - 1, the move that brought the page. */
		if (!ours && (int)(pp->since[i] - 1 - (k + 1)) > 0 &&
		    find_vacate_in(s, p, p + THP_PAGE_SIZE, k + 1, pp->since[i] - 1) >= 0)
			ours = true; /* it left before the page came */
		if (!ours)
			return true;
	}
	return false;
}

static bool in_child_zaps(const struct forks *f, uint64_t p)
{
	for (unsigned z = 0; z < f->nzap; z++)
		if (p >= f->zap[z].lo && p < f->zap[z].hi)
			return true;
	return f->zap_overflow;
}

/*
 * Copy one page (@src) of a misaligned copy to where it is now, on uffd @fd
 * (ours, or a fork child's with what it zapped in @f).  Its places are tried
 * oldest first: where the page is, it is missing (nothing is served there
 * before the copy ends), so a COPY succeeds at the first place that holds
 * it; ENOENT (nothing registered there) or EEXIST (present: not ours) say
 * look further.  A place zapped since is probed with a zero page, which is
 * what the page must read if it is there.  @src 0: the bytes do not decode,
 * so the page is poisoned (SIGBUS on access, as a restore would give; the
 * kernel answers POISON as it does COPY).  0 when placed or nowhere to go;
 * -EAGAIN when an event is pending (the COPY would fail anyway, and the
 * event may change the verdict): read it, then call again.
 *
 * ENOENT at a place with no event read since the page came there that takes
 * it away: the application moved or unmapped it after we looked for
 * pending events, and the event that says where is on its way (the kernel
 * sends it after the change, and a COPY finds the place gone before it
 * says EAGAIN for the event).  Concluding "nowhere" there lost the page: a
 * second mremap right after the first read zeros.  So wait for it, like an
 * event pending.
 */
int place_copy(struct thpswap_session *s, int fd, const struct page_places *pp, uint64_t src,
	       const struct forks *f)
{
	bool coming = false;

	/* Judge places only once every event the kernel has for us is read:
	 * the one that vacates a place may still be on its way. */
	if (fd == s->uffd && events_pending(s))
		return -EAGAIN;
	for (unsigned i = 0; i < pp->n; i++) {
		uint64_t d = pp->at[i];
		bool zapped = (pp->zapped & (1u << i)) || (f && in_child_zaps(f, d));
		int rc;

		if (place_foreign(s, pp, i))
			continue;
		if (zapped)
			rc = thp_uffd_zeropage(fd, d, THP_PAGE_SIZE, 0, NULL);
		else if (src)
			rc = thp_uffd_copy(fd, d, src, THP_PAGE_SIZE, 0, NULL);
		else
			rc = thp_uffd_poison(fd, d, THP_PAGE_SIZE);
		if (rc == 0 || rc == -EAGAIN)
			return rc;
		if (rc == -ENOENT && fd == s->uffd && s->copying &&
		    find_vacate_in(s, d, d + THP_PAGE_SIZE, pp->since[i], s->utail) < 0)
			coming = true;
	}
	if (coming) {
		uint64_t now = now_ns();

		if (!s->copying->waiting_ns)
			s->copying->waiting_ns = now;
		if (now - s->copying->waiting_ns < COPY_WAIT_NS)
			return -EAGAIN;
	}
	return 0;
}

/* Copy pages [lo, hi) of the region at @a, decoded in fault_buf (or poison
 * them there, @poison: its bytes do not decode), to where the mremap whose
 * REMAP is u[@seq] put them (@shift on), and wherever events read since put
 * them next. */
static void copy_region(struct thpswap_session *s, uint64_t a, uint64_t lo, uint64_t hi,
			uint64_t shift, unsigned seq, bool poison)
{
	static const struct remap_copy none;
	const char *buf = poison ? NULL : s->fault_buf;
	struct remap_copy c = none;
	unsigned forked = s->nearly;

	c.from = a;
	for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE) {
		struct page_places *pp = &c.pg[(p - a) / THP_PAGE_SIZE];

		pp->at[0] = p + shift;
		pp->since[0] = seq + 1;
		pp->n = 1;
	}
	s->copying = &c;
	/* Events read after our REMAP but before this handler ran count too. */
	for (unsigned i = seq + 1; i != s->utail; i++)
		copy_follow(s, &s->u[i & (QCAP - 1)], i);
	for (; forked < s->nearly; forked++)
		early_fill(s, &s->early[forked], 0, buf);
	for (unsigned k = 0; k < REGION / THP_PAGE_SIZE; k++)
		while (place_copy(s, s->uffd, &c.pg[k], buf ? (uint64_t)(uintptr_t)buf + k * THP_PAGE_SIZE : 0,
				  NULL) == -EAGAIN) {
			agent_drain(s); /* reads only: we are in a handler */
			sched_yield();  /* the event's sender may need this CPU */
			/* Pages from k on were not copied at any fork read. */
			for (; forked < s->nearly; forked++)
				early_fill(s, &s->early[forked], k, buf);
		}
	s->copying = NULL;
	ctr_add(s, poison ? THP_C_CORRUPT : THP_C_FALLBACK_4K, 1);
}

/*
 * An mremap's UNMAP of its old range comes after its REMAP, but the thread
 * that sends it may be descheduled in between for as long as the scheduler
 * likes, while thousands of other messages are read: the entry waits for it
 * however long that takes.  Only a MREMAP_DONTUNMAP sends none; its entry
 * stays until NMOVED_FROM newer ones need the room (the oldest goes first),
 * and meanwhile swallows a munmap of exactly that range -- which finds no
 * record there anyway, as the mremap moved them.
 */
static void note_moved_from(struct thpswap_session *s, uint64_t from, uint64_t len)
{
	struct moved_from *slot = &s->moved_from[0];

	for (unsigned k = 0; k < NMOVED_FROM; k++) {
		struct moved_from *m = &s->moved_from[k];

		if (!m->len) {
			slot = m;
			break;
		}
		if (m->seq < slot->seq)
			slot = m;
	}
	*slot = (struct moved_from){ .from = from, .len = len, .seq = ++s->nmoved_from };
}

/*
 * mremap moved [from, from+len) to @to (an UNMAP of the old range follows).
 * Resident pages moved with the page tables.  Records move with their
 * regions when the move keeps 2 MiB alignment; otherwise a PMD can never be
 * installed there again, so the stored bytes are written to their new
 * place now, in 4 KiB pages, and the record is dropped.
 */
void on_remap(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len,
	      unsigned seq)
{
	uint64_t first = from & ~(REGION - 1);

	/* Its UNMAP of the old range is already done (see on_unmap). */
	note_moved_from(s, from, len);
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
		if (st == THP_ST_RAM)
			copy_region(s, a, lo, hi, to - from, seq,
				    !decode_record(s, (uint32_t)idx, s->fault_buf));
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
 * range's records moved with the REMAP already, so it is a no-op (see
 * note_moved_from for how long it is waited for).
 */
void on_unmap(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	struct moved_from *old = NULL;

	/* Two mremaps from the same range may both wait for their UNMAP:
	 * the oldest goes first (either way, one is consumed per UNMAP). */
	for (unsigned k = 0; k < NMOVED_FROM; k++) {
		struct moved_from *m = &s->moved_from[k];

		if (m->len && m->from == start && m->from + m->len == end && (!old || m->seq < old->seq))
			old = m;
	}
	if (old) {
		old->len = 0;
		return;
	}
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		uint64_t lo = a > start ? a : start, hi = a + REGION < end ? a + REGION : end;
		long idx = rt_lookup(s, a);

		if (idx < 0 || (rec_flags(&s->rec[idx]) & THP_RF_MOVING))
			continue; /* on_remap copies it to its new place, then frees it */
		cut(s, (uint32_t)idx, a, lo, hi);
	}
}
