/* SPDX-License-Identifier: MIT */
/*
 * The in-process agent: the fault thread (sole reader of the region uffd
 * and of the daemon's socket) and the worker threads.
 *
 * Agent threads block every signal (the application's handlers must not run
 * on them), never take a lock an application thread may hold while it
 * faults, and never munmap/zap/fork registered memory themselves (they
 * would wait for an event only they can read, §d).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "proto.h"
#include "uffd.h"

bool agent_is_fault_thread(struct thpswap_session *s)
{
	return s->fault_thread_started && pthread_equal(pthread_self(), s->fault_thread);
}

static void on_fork(struct thpswap_session *s, int cfd);
static void on_unmap(struct thpswap_session *s, uint64_t start, uint64_t end);
static void on_remap(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len,
		     unsigned seq);
/* @seq: the message's place in s->u (free-running), see on_remap. */
static void handle_urgent(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq);

/* Where the record for @addr is keyed now: mremaps read but not handled
 * yet (a FORK being handled holds them up) have not re-keyed it. */
static uint64_t unmoved(const struct thpswap_session *s, uint64_t addr)
{
	for (unsigned i = s->utail; i != s->uhead; i--) {
		const struct uffd_msg *m = &s->u[(i - 1) & (QCAP - 1)];

		if (m->event == UFFD_EVENT_REMAP && addr >= m->arg.remap.to &&
		    addr < m->arg.remap.to + m->arg.remap.len)
			addr = m->arg.remap.from + (addr - m->arg.remap.to);
	}
	return addr;
}

/* Note a REMOVE for page range [lo, hi) of record @i (its region at @a). */
static void note_zap(struct thpswap_session *s, uint32_t i, uint64_t a, uint64_t lo, uint64_t hi)
{
	uint32_t st = rec_state(&s->rec[i]);

	/* Mapped, or on its way in or out: the zap lands on mapped pages at a
	 * time we cannot observe, and the evictor waits for it to land
	 * (rzap_in_flight; it checks under zap_lock, which we hold).  An
	 * empty region's zaps are all in the zap mask below. */
	if (st != THP_ST_RAM && st != THP_ST_ZERO && st != THP_ST_EMPTY)
		rzap_note(s, i, a, lo, hi);
	if (st == THP_ST_RESIDENT)
		return;
	/* An eviction that has not moved the region out yet must not: the
	 * kernel acts on the pages after this read, maybe after the MOVE (a
	 * zap would miss them), and MADV_FREE leaves them in place, where the
	 * application may write them again without a fault, so the zeros
	 * noted here would be wrong by then.  Both are read under zap_lock. */
	if (st == THP_ST_EVICTING)
		__atomic_or_fetch(&s->rec[i].flags, THP_RF_REMOVED, __ATOMIC_RELEASE);
	zap_note(s, i, a, lo, hi);
	if (zap_full(s, i) && s->nzapped - s->zapped_done < NZAPPED)
		s->zapped[s->nzapped++ % NZAPPED] = i;
}

/*
 * A misaligned mremap's copy (on_remap): where each page of the region being
 * copied may be now (n == 0: a page not to be copied).  Events read while a
 * COPY waits out EAGAIN are handled only after the copy, but they change
 * where its pages are: a REMOVE of a page not copied yet means it stays
 * empty (a copy would bring back what the application dropped); a REMAP may
 * carry it along, or be a late event of a mapping that left those addresses
 * before our mremap came (see struct page_places).  An UNMAP needs nothing:
 * the COPY fails with ENOENT where nothing is mapped, and a region
 * registered there since is recognised by its birth (see foreign()).
 */
struct remap_copy {
	unsigned born;            /* messages read just after our REMAP was */
	struct page_places pg[REGION / THP_PAGE_SIZE];
};

/* Message @m was read after the REMAP that s->copying is copying for. */
static void copy_follow(struct thpswap_session *s, const struct uffd_msg *m)
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
				if (pp->at[i] >= lo && pp->at[i] < hi)
					pp->at[pp->n++] = pp->at[i] + (m->arg.remap.to - lo);
		}
		return;
	default:
		return;
	}
}

/* A REMOVE just read: its zap comes after this.  The time is stamped before
 * the state is read (the evictor reads them the other way round). */
static void note_remove(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		uint64_t lo = start > a ? start : a, hi = end < a + REGION ? end : a + REGION;
		uint64_t ka = unmoved(s, lo) & ~(REGION - 1);
		long idx = rt_lookup(s, ka);

		if (idx < 0)
			continue;
		/* The page offsets within the region are what the record needs;
		 * an unaligned move shifts them, so note page by page there. */
		if (unmoved(s, lo) - lo != ka - a) {
			for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE) {
				uint64_t q = unmoved(s, p);
				long j = rt_lookup(s, q);

				if (j >= 0)
					note_zap(s, (uint32_t)j, q & ~(REGION - 1), q, q + THP_PAGE_SIZE);
			}
			continue;
		}
		note_zap(s, (uint32_t)idx, ka, ka + (lo - a), ka + (hi - a));
	}
}

static void handle_urgent(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq)
{
	atomic_fetch_add(&s->in_urgent, 1);
	switch (m->event) {
	case UFFD_EVENT_FORK:
		/* Until it is read no MOVE into us can succeed (the pending
		 * FORK keeps mmap_changing up from dup_mmap on): every region
		 * empty now was empty at the fork, and the records are the
		 * child's snapshot.  Queued, a restore could run first and let
		 * its faulter write before the child's copy. */
		on_fork(s, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_UNMAP:
		on_unmap(s, m->arg.remove.start, m->arg.remove.end);
		/* Threads that faulted there before it went wait on addresses
		 * no later wake names: let them retry (and see SIGSEGV). */
		thp_uffd_wake(s->uffd, m->arg.remove.start, m->arg.remove.end - m->arg.remove.start);
		break;
	case UFFD_EVENT_REMAP:
		on_remap(s, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len, seq);
		/* Likewise at the old place: restores now wake the new one. */
		thp_uffd_wake(s->uffd, m->arg.remap.from, m->arg.remap.len);
		break;
	}
	atomic_fetch_sub(&s->in_urgent, 1);
}

void agent_drain(struct thpswap_session *s)
{
	for (;;) {
		unsigned room = QCAP - (s->qtail - s->qhead) - (s->utail - s->uhead);
		struct uffd_msg msgs[64];
		ssize_t n;

		if (room == 0)
			break; /* the kernel keeps the rest */
		/* Reading and noting zaps is one step against restorers that
		 * hold zap_lock across their MOVE (see struct thpswap_session). */
		pthread_mutex_lock(&s->zap_lock);
		n = read(s->uffd, msgs, sizeof(msgs[0]) * (room < 64 ? room : 64));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
			s->u[s->utail++ & (QCAP - 1)] = msgs[i];
			atomic_fetch_add(&s->u_read, 1);
			if (s->copying)
				copy_follow(s, &msgs[i]);
			if (msgs[i].event == UFFD_EVENT_REMOVE)
				note_remove(s, msgs[i].arg.remove.start, msgs[i].arg.remove.end);
		}
		pthread_mutex_unlock(&s->zap_lock);
		if (n <= 0)
			break; /* EAGAIN: nothing pending */
	}
	if (atomic_load(&s->in_urgent))
		return; /* read only: the handler running goes first */
	while (s->uhead != s->utail) {
		struct uffd_msg m = s->u[s->uhead++ & (QCAP - 1)];

		/* munmap and mremap return once their event is read: the
		 * records must follow before the application can map
		 * something new at those addresses. */
		if (m.event == UFFD_EVENT_FORK || m.event == UFFD_EVENT_UNMAP ||
		    m.event == UFFD_EVENT_REMAP)
			handle_urgent(s, &m, s->uhead - 1);
		else {
			s->q[s->qtail++ & (QCAP - 1)] = m;
			atomic_fetch_add(&s->q_in, 1);
		}
		atomic_fetch_add(&s->u_done, 1);
	}
}

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

void agent_sync(struct thpswap_session *s)
{
	unsigned long target, queued;

	if (agent_is_fault_thread(s))
		return;
	/* The kernel lets a munmap or mremap return once our read() has
	 * copied its event out, before we count it: the fault thread reads
	 * and counts under zap_lock, so taking it gets a count that includes
	 * every event whose caller has returned. */
	pthread_mutex_lock(&s->zap_lock);
	target = atomic_load(&s->u_read);
	pthread_mutex_unlock(&s->zap_lock);
	/* The fault thread never waits for an app thread between reading
	 * and handling, and the caller owns no record, so this ends. */
	while (atomic_load(&s->u_done) < target)
		sched_yield();
	queued = atomic_load(&s->q_in);
	while (atomic_load(&s->q_done) < queued)
		sched_yield();
}

/* Decompress record @i into @buf with its pending zaps applied. */
static bool decode_record(struct thpswap_session *s, uint32_t i, char *buf)
{
	const struct thp_record *r = &s->rec[i];
	const char *blob = (const char *)s->arena + thp_arena_slot_off(s->hdr, i);
	struct thp_blob_view v;
	uint64_t m[8];

	if (r->stored_len > THP_SLOT_SIZE || thp_blob_view(blob, r->stored_len, &v))
		return false;
	for (unsigned f = 0; f < v.nframes; f++)
		if (thp_codec_decompress_frame(s->fault_codec, &v, f, buf))
			return false;
	for (int w = 0; w < 8; w++)
		m[w] = atomic_load(&s->zap[i][w]);
	zap_apply(buf, m);
	return true;
}

/* ---- events ---- */

/*
 * MADV_DONTNEED/FREE, in queue order.  The pages were noted as zapped when
 * the event was read; a region wholly zapped while not resident holds
 * nothing worth keeping any more.  Those records were listed then too: by
 * now an mremap handled meanwhile may have put another region at the
 * event's addresses.
 */
static void on_remove(struct thpswap_session *s)
{
	while (s->zapped_done != s->nzapped) {
		uint32_t idx = s->zapped[s->zapped_done++ % NZAPPED];
		struct thp_record *r = &s->rec[idx];
		uint32_t st = rec_wait_stable(s, r);

		/* Still all zapped: not restored, nor freed and reused, since. */
		if ((st == THP_ST_RAM || st == THP_ST_ZERO) && zap_full(s, idx) &&
		    rec_cas(s, r, st, THP_ST_EMPTY)) {
			rec_drop_bytes(s, idx);
			zap_clear(s, idx);
		}
	}
}

/*
 * A fork child: its evicted regions are empty and fault on its own uffd,
 * which the kernel installed in our fd table.  MOVE cannot cross processes,
 * so fill them now with COPY from the records, which are exactly the
 * snapshot the child must see (see agent_drain), then close the child's
 * uffd, leaving it ordinary memory.  Pages that were present reached the
 * child by COW; what is empty in the child was empty in us and reads zero.
 * Never read our own region memory here: an empty page would fault to the
 * thread that is doing the reading.
 */
static void on_fork(struct thpswap_session *s, int cfd);

/* Read the child's pending events: its fork of a grandchild before we were
 * done must be filled the same way (closing that uffd unfilled would leave
 * the grandchild zeros), but later, between regions: the fill in progress
 * owns fault_buf.  Other events only need reading. */
static void child_events(int cfd, struct forks *f)
{
	struct uffd_msg m;

	while (read(cfd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
		if (m.event == UFFD_EVENT_REMOVE) {
			/* Its zap lands after this read, maybe on a page we
			 * have not filled yet: fill those with zeros. */
			if (f->nzap < sizeof(f->zap) / sizeof(f->zap[0])) {
				f->zap[f->nzap].lo = m.arg.remove.start;
				f->zap[f->nzap++].hi = m.arg.remove.end;
			} else {
				f->zap_overflow = true;
			}
		}
		if (m.event != UFFD_EVENT_FORK)
			continue;
		if (f->n < sizeof(f->fd) / sizeof(f->fd[0]))
			f->fd[f->n++] = (int)m.arg.fork.ufd;
		else
			close((int)m.arg.fork.ufd); /* a fork bomb: it reads zeros */
	}
}

/* Zero in @buf (the region at @dst) what the child zapped meanwhile. */
static void child_zaps(const struct forks *f, uint64_t dst, char *buf)
{
	for (unsigned k = 0; k < f->nzap; k++) {
		uint64_t lo = f->zap[k].lo > dst ? f->zap[k].lo : dst;
		uint64_t hi = f->zap[k].hi < dst + REGION ? f->zap[k].hi : dst + REGION;

		if (lo < hi)
			memset(buf + (lo - dst), 0, hi - lo);
	}
}

/* COPY (@src) or ZEROPAGE (@src NULL) into the child's empty pages of the
 * region at @dst; present pages (EEXIST) are left alone. */
static void child_fill(struct thpswap_session *s, int cfd, uint64_t dst, char *src,
		       struct forks *f)
{
	for (uint64_t off = 0, len = REGION; off < REGION;) {
		int64_t done = 0;
		int rc;

		if (src)
			child_zaps(f, dst, src);
		rc = src ? thp_uffd_copy(cfd, dst + off, (uint64_t)(uintptr_t)src + off, len, 0, &done)
			 : thp_uffd_zeropage(cfd, dst + off, len, 0, &done);

		if (rc == -EAGAIN && done <= 0) {
			child_events(cfd, f);
			continue;
		}
		if (done > 0)
			off += (uint64_t)done; /* partly done: go on after it */
		else if (rc == 0)
			off += len;
		else if (len > THP_PAGE_SIZE)
			len = THP_PAGE_SIZE; /* EEXIST somewhere: page by page */
		else
			off += THP_PAGE_SIZE; /* present (or unmapped) already */
		if (len < THP_PAGE_SIZE || off + len > REGION)
			len = THP_PAGE_SIZE;
	}
	ctr_add(s, THP_C_COPY_CHILD, 1);
}

/*
 * A region being evicted when the fork happened: its THP was in staging
 * (had it still been mapped, the fork would have shared it and the MOVE out
 * failed), so the child's copy is empty.  The evictor either stores it
 * (then the record has it) or, cancelled, moves it back into us: then copy
 * from our region, owning the record meanwhile so that no eviction takes it
 * away again (a zap waits for us to read its event; an unmap makes the
 * COPY fail, not fault).  Returns the state to fill the child from; FREE
 * when done here.
 */
static uint32_t fork_in_flight(struct thpswap_session *s, int cfd, uint32_t i, struct forks *f)
{
	struct thp_record *r = &s->rec[i];

	for (;;) {
		uint32_t st = rec_wait_stable(s, r);

		if (st != THP_ST_RESIDENT)
			return st;
		if (rec_cas(s, r, THP_ST_RESIDENT, THP_ST_RESTORING)) {
			/* Only present pages: touching a missing one would fault
			 * to this very thread.  Missing ones were zapped: zeros. */
			for (uint64_t off = 0; off < REGION; off += THP_PAGE_SIZE) {
				uint64_t a = r->addr + off;

				if (thp_pagemap_count_present(s->pagemap, a, a + THP_PAGE_SIZE) == 1)
					memcpy(s->fault_buf + off, (const char *)(uintptr_t)a, THP_PAGE_SIZE);
				else
					memset(s->fault_buf + off, 0, THP_PAGE_SIZE);
			}
			rec_set(s, r, THP_ST_RESIDENT);
			child_fill(s, cfd, r->addr, s->fault_buf, f);
			return THP_ST_FREE;
		}
	}
}

static void on_fork(struct thpswap_session *s, int cfd)
{
	uint32_t max = s->hdr->max_regions;
	static const struct forks none;
	struct forks f = none;

	for (unsigned k = 0; k < s->nearly; k++)
		if (s->early[k].cfd == cfd) {
			f = s->early[k].f; /* what the child did since copy_region filled it */
			s->early[k] = s->early[--s->nearly];
			break;
		}
	for (uint32_t i = 0; i < max; i++) {
		struct thp_record *r = &s->rec[i];
		uint32_t st = rec_state(r);

		if (st == THP_ST_FREE)
			continue;
		if ((long)i == s->fault_owned && s->fault_owned_gone)
			continue; /* its region went before the fork */
		if ((long)i == s->fault_owned)
			/* Our own restore, waiting out EAGAIN: not moved in yet,
			 * its bytes are still in the record. */
			st = r->stored_len ? THP_ST_RAM : THP_ST_ZERO;
		else if (st == THP_ST_EVICTING || st == THP_ST_CANCEL)
			st = fork_in_flight(s, cfd, i, &f);
		else
			st = rec_wait_stable(s, r);
		if (st == THP_ST_RAM && decode_record(s, i, s->fault_buf))
			child_fill(s, cfd, r->addr, s->fault_buf, &f);
		else if (st != THP_ST_POISONED && st != THP_ST_FREE)
			child_fill(s, cfd, r->addr, NULL, &f);
	}
	child_events(cfd, &f);
	close(cfd);
	/* A grandchild is a copy of the child at its fork: what it lacks, the
	 * child lacked then, and the records still hold it. */
	for (unsigned k = 0; k < f.n; k++)
		on_fork(s, f.fd[k]);
}

static void fault(struct thpswap_session *s, uint64_t addr, bool write)
{
	uint64_t page = addr & ~(THP_PAGE_SIZE - 1);

	for (;;) {
		long idx = rt_lookup(s, addr);
		int rc;

		if (idx >= 0) {
			if (restore_region(s, (uint32_t)idx, addr, write, s->fault_codec))
				/* It failed: an mremap read meanwhile may have moved
				 * the record, and the wake went to its new address;
				 * the faulter waits at the old one. */
				thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
			return;
		}
		/*
		 * Registered memory with no record: the tail an mremap grew, or
		 * a region being unmapped.  It is new memory and reads zeros (a
		 * wake alone would fault again forever).  But mremap unlocks
		 * before it sends its REMAP, so this may be a region that has
		 * moved here: a zero page must not land in it.  EAGAIN means an
		 * event is pending: read it and look again.
		 */
		rc = thp_uffd_zeropage(s->uffd, page, THP_PAGE_SIZE, 0, NULL);
		if (rc == -EAGAIN) {
			agent_drain(s);
			continue;
		}
		if (rc)
			thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE); /* EEXIST: it is there */
		else
			ctr_add(s, THP_C_FALLBACK_4K, 1);
		return;
	}
}

/* Has the kernel changed the mappings in a way whose event we have not read
 * (mmap_changing)?  A MOVE checks that before it finds the probe empty. */
static bool events_pending(struct thpswap_session *s)
{
	uint64_t p = (uint64_t)(uintptr_t)s->sc.probe;

	return thp_uffd_move(s->uffd, p, p + THP_PAGE_SIZE, THP_PAGE_SIZE, 0, NULL) == -EAGAIN;
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
				handle_urgent(s, &m, (unsigned)k);
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

/*
 * Can place @i of @pp not hold the page?  A misaligned copy's page is where
 * no region of the table is: a region registered after the REMAP being
 * followed was read (@born) is new memory there; an older one is where its
 * own bytes are, unless an event read but not handled yet takes it away
 * (the late event of a mapping that left before our mremap put the page
 * there).  Nor is it where a REMAP read but not handled yet moves a region
 * to, unless that REMAP moves it from one of the page's earlier places.
 */
static bool foreign(struct thpswap_session *s, const struct page_places *pp, unsigned i,
		    unsigned born)
{
	uint64_t p = pp->at[i], a = p & ~(REGION - 1);
	long r = rt_lookup(s, a);

	if (r >= 0 && ((int)((unsigned)atomic_load(&s->born[r]) - born) >= 0 || find_vacate(s, a) < 0))
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
 * what the page must read if it is there.  0 when placed or nowhere to go;
 * -EAGAIN when an event is pending (the COPY would fail anyway, and the
 * event may change the verdict): read it, then call again.
 */
static int place_copy(struct thpswap_session *s, int fd, const struct page_places *pp,
		      uint64_t src, unsigned born, const struct forks *f)
{
	/* Judge places only once every event the kernel has for us is read:
	 * the one that vacates a place may still be on its way. */
	if (fd == s->uffd && events_pending(s))
		return -EAGAIN;
	for (unsigned i = 0; i < pp->n; i++) {
		uint64_t d = pp->at[i];
		bool zapped = (pp->zapped & (1u << i)) || (f && in_child_zaps(f, d));
		int rc;

		if (foreign(s, pp, i, born))
			continue;
		rc = zapped ? thp_uffd_zeropage(fd, d, THP_PAGE_SIZE, 0, NULL)
			    : thp_uffd_copy(fd, d, src, THP_PAGE_SIZE, 0, NULL);
		if (rc == 0 || rc == -EAGAIN)
			return rc;
	}
	return 0;
}

/* Fill fork child @e with the pages of fault_buf from @k on that were still
 * to be copied when it forked, minus what it zapped since. */
static void early_fill(struct thpswap_session *s, struct early_fork *e, unsigned k,
		       unsigned born)
{
	for (; k < REGION / THP_PAGE_SIZE; k++)
		while (place_copy(s, e->cfd, &e->pg[k], (uint64_t)(uintptr_t)s->fault_buf + k * THP_PAGE_SIZE,
				  born, &e->f) == -EAGAIN)
			child_events(e->cfd, &e->f); /* on_fork gets what it read */
}

/* Copy pages [lo, hi) of the region at @a, decoded in fault_buf, to where
 * the mremap whose REMAP is u[@seq] put them (@shift on), and wherever
 * events read since put them next. */
static void copy_region(struct thpswap_session *s, uint64_t a, uint64_t lo, uint64_t hi,
			uint64_t shift, unsigned seq)
{
	static const struct remap_copy none;
	struct remap_copy c = none;
	unsigned forked = s->nearly;

	c.born = seq + 1;
	for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE) {
		c.pg[(p - a) / THP_PAGE_SIZE].at[0] = p + shift;
		c.pg[(p - a) / THP_PAGE_SIZE].n = 1;
	}
	s->copying = &c;
	/* Events read after our REMAP but before this handler ran count too. */
	for (unsigned i = seq + 1; i != s->utail; i++)
		copy_follow(s, &s->u[i & (QCAP - 1)]);
	for (; forked < s->nearly; forked++)
		early_fill(s, &s->early[forked], 0, c.born);
	for (unsigned k = 0; k < REGION / THP_PAGE_SIZE; k++)
		while (place_copy(s, s->uffd, &c.pg[k], (uint64_t)(uintptr_t)s->fault_buf + k * THP_PAGE_SIZE,
				  c.born, NULL) == -EAGAIN) {
			agent_drain(s); /* reads only: we are in a handler */
			/* Pages from k on were not copied at any fork read. */
			for (; forked < s->nearly; forked++)
				early_fill(s, &s->early[forked], k, c.born);
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
static void on_remap(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len,
		     unsigned seq)
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
		st = idx == s->fault_owned ? (s->rec[idx].stored_len ? THP_ST_RAM : THP_ST_ZERO)
					   : rec_wait_stable(s, &s->rec[idx]);
		if (st == THP_ST_RAM && decode_record(s, (uint32_t)idx, s->fault_buf))
			copy_region(s, a, lo, hi, to - from, seq);
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
static void on_unmap(struct thpswap_session *s, uint64_t start, uint64_t end)
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

static void handle_msg(struct thpswap_session *s, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		ctr_add(s, THP_C_FAULTS, 1);
		fault(s, m->arg.pagefault.address, m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
		break;
	case UFFD_EVENT_REMOVE:
		on_remove(s);
		break;
	default:
		break;
	}
}

/* ---- daemon commands ---- */

static void queue_job(struct thpswap_session *s, struct evict_job *j)
{
	pthread_mutex_lock(&s->wlock);
	j->next = NULL;
	*s->jobs_tail = j;
	s->jobs_tail = &j->next;
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
}

/* A job the daemon's next request can go into, or NULL. */
static struct evict_job *free_job(struct thpswap_session *s)
{
	for (unsigned i = 0; i < NJOBS; i++)
		if (!atomic_load(&s->job_mem[i].busy))
			return &s->job_mem[i];
	return NULL;
}

/* Read one request from the daemon; an EVICT goes into @j. */
static void on_daemon(struct thpswap_session *s, struct evict_job *j)
{
	char buf[THP_MSG_MAX];
	struct thp_msg m;
	long n = thp_msg_recv(s->sock, buf, sizeof(buf), NULL, 0, NULL);

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		/* The daemon went away: keep serving our faults from the arena. */
		close(s->sock);
		s->sock = -1;
		return;
	}
	if (thp_msg_parse(buf, (size_t)n, &m)) {
		return;
	}
	if (m.hdr.type == THP_MSG_EVICT) {
		const struct thp_msg_evict *e = m.payload;

		/* Never malloc here: a fork in another thread holds glibc's
		 * malloc locks until we read its FORK event. */
		atomic_store(&j->busy, true);
		j->seq = m.hdr.seq;
		j->n = e->n;
		memcpy(j->addr, e->addr, e->n * sizeof(uint64_t));
		queue_job(s, j);
	}
}

static void run_job(struct worker *w, struct evict_job *j)
{
	struct thpswap_session *s = w->s;
	struct thp_msg_evict_done d = { 0 };

	for (uint32_t k = 0; k < j->n; k++) {
		long idx;

		agent_sync(s);
		idx = rt_lookup(s, j->addr[k]);

		if (idx < 0) {
			d.skipped++;
			continue;
		}
		switch (evict_region(s, (uint32_t)idx, w->codec, w->buf, &d.bytes_in, &d.bytes_stored)) {
		case EV_EVICTED:
			d.evicted++;
			break;
		case EV_SKIPPED:
			d.skipped++;
			break;
		case EV_FAILED:
			d.failed++;
			break;
		}
	}
	pthread_mutex_lock(&s->send_lock);
	if (s->sock >= 0)
		thp_msg_send(s->sock, THP_MSG_EVICT_DONE, j->seq, &d, sizeof(d), NULL, 0);
	pthread_mutex_unlock(&s->send_lock);
	atomic_store(&j->busy, false);
}

/* ---- parallel decompression ---- */

_Static_assert(THP_MAX_FRAMES <= 0xffff, "frame count and index fit the claim word");

/* Take frames of restore @gen until none is left.  The frame count comes
 * from the claim word, not from @v: a helper that woke after the restore
 * ended holds a view that lived on the fault thread's stack. */
static void run_frames(struct decomp_help *h, uint32_t gen, const struct thp_blob_view *v,
		       char *dst, struct thp_codec *codec)
{
	for (;;) {
		uint64_t c = atomic_load(&h->claim);
		int rc;

		if ((uint32_t)(c >> 32) != gen || (c & 0xffff) >= ((c >> 16) & 0xffff))
			return;
		if (!atomic_compare_exchange_weak(&h->claim, &c, c + 1))
			continue;
		rc = thp_codec_decompress_frame(codec, v, (uint32_t)(c & 0xffff), dst);
		if (rc)
			atomic_store(&h->err, rc);
		atomic_fetch_add(&h->done, 1);
	}
}

int decompress_parallel(struct thpswap_session *s, struct thp_codec *codec,
			const struct thp_blob_view *v, char *dst)
{
	struct decomp_help *h = &s->help;
	uint32_t gen;

	pthread_mutex_lock(&s->wlock);
	gen = ++h->gen;
	h->view = v;
	h->dst = dst;
	atomic_store(&h->done, 0);
	atomic_store(&h->err, 0);
	atomic_store(&h->claim, (uint64_t)gen << 32 | (uint64_t)v->nframes << 16);
	h->active = true;
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
	run_frames(h, gen, v, dst, codec);
	/* Only frames a helper has claimed are left: each is being worked. */
	while (atomic_load(&h->done) < v->nframes)
		sched_yield();
	pthread_mutex_lock(&s->wlock);
	h->active = false;
	pthread_mutex_unlock(&s->wlock);
	return atomic_load(&h->err);
}

void agent_kick_refill(struct thpswap_session *s)
{
	/* After every restore, even with the pool full: measured on this VM
	 * (bench/run, fast profile), kicking only when the pool is short took
	 * restore p99 from 0.45x zswap's to 1.9-2.0x in two runs each: the
	 * wake-up keeps the helper's vCPU out of halt for the next restore. */
	pthread_mutex_lock(&s->wlock);
	s->refill_wanted = true;
	/* Broadcast: the background thread must hear it, not only a helper. */
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
}

/* ---- threads ---- */

static void *helper_main(struct worker *w)
{
	struct thpswap_session *s = w->s;
	struct decomp_help *h = &s->help;
	uint32_t seen = 0;

	pthread_mutex_lock(&s->wlock);
	while (!s->stopping) {
		if (h->active && h->gen != seen) {
			const struct thp_blob_view *v = h->view;
			char *dst = h->dst;

			seen = h->gen;
			pthread_mutex_unlock(&s->wlock);
			run_frames(h, seen, v, dst, w->codec);
			pthread_mutex_lock(&s->wlock);
		} else {
			pthread_cond_wait(&s->wcond, &s->wlock);
		}
	}
	pthread_mutex_unlock(&s->wlock);
	return NULL;
}

static void *background_main(struct worker *w)
{
	struct thpswap_session *s = w->s;

	/* Lower weight, not idle class: evictions must still make progress
	 * on a busy machine, just never ahead of a restore. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 5);
	pthread_mutex_lock(&s->wlock);
	while (!s->stopping) {
		struct evict_job *j = s->jobs;

		if (j) {
			s->jobs = j->next;
			if (!s->jobs)
				s->jobs_tail = &s->jobs;
			pthread_mutex_unlock(&s->wlock);
			run_job(w, j);
			pthread_mutex_lock(&s->wlock);
		} else if (s->refill_wanted) {
			s->refill_wanted = false;
			pthread_mutex_unlock(&s->wlock);
			scratch_refill(s);
			pthread_mutex_lock(&s->wlock);
		} else {
			pthread_cond_wait(&s->wcond, &s->wlock);
		}
	}
	pthread_mutex_unlock(&s->wlock);
	return NULL;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	return w->background ? background_main(w) : helper_main(w);
}

static void *fault_main(void *arg)
{
	struct thpswap_session *s = arg;

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = s->uffd, .events = POLLIN },
			{ .fd = s->evfd, .events = POLLIN },
			{ .fd = s->sock, .events = POLLIN },
		};
		bool busy = s->qhead != s->qtail, daemon = s->sock >= 0;
		struct evict_job *j = daemon ? free_job(s) : NULL;

		/* With every job taken (the daemon gave up waiting on one and
		 * sent another), its requests wait in the socket: look again
		 * soon. */
		if (poll(p, j ? 3 : 2, busy ? 0 : daemon && !j ? 10 : -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		agent_drain(s);
		while (s->qhead != s->qtail) {
			struct uffd_msg m = s->q[s->qhead++ & (QCAP - 1)];

			handle_msg(s, &m);
			atomic_fetch_add(&s->q_done, 1);
		}
		if (j && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
			on_daemon(s, j);
	}
	return NULL;
}

/* Stop the fault thread, if it runs, and workers[0 .. nworkers). */
static void stop_threads(struct thpswap_session *s, unsigned nworkers)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->wlock);
	s->stopping = true;
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
	if (s->fault_thread_started) {
		if (write(s->evfd, &one, sizeof(one)) < 0) {
			/* eventfd cannot fail with a counter this small */
		}
		pthread_join(s->fault_thread, NULL);
		s->fault_thread_started = false;
	}
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(s->workers[i].thread, NULL);
}

static void agent_free(struct thpswap_session *s)
{
	s->jobs = NULL; /* unanswered: the daemon sees the session end */
	if (s->evfd >= 0)
		close(s->evfd);
	s->evfd = -1;
	free(s->q);
	free(s->u);
	s->q = NULL;
	s->u = NULL;
}

int agent_start(struct thpswap_session *s)
{
	sigset_t all, old;
	unsigned started = 0;
	int r;

	if ((r = open_fail_point(s)))
		return r;
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->evfd < 0)
		return -errno;
	if ((r = open_fail_point(s)))
		goto fail;
	s->q = calloc(QCAP, sizeof(*s->q));
	s->u = calloc(QCAP, sizeof(*s->u));
	if (!s->q || !s->u) {
		r = -ENOMEM;
		goto fail;
	}
	s->jobs_tail = &s->jobs;
	for (unsigned i = 0; i < NJOBS; i++)
		atomic_store(&s->job_mem[i].busy, false);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (!(r = open_fail_point(s)))
		r = -pthread_create(&s->fault_thread, NULL, fault_main, s);
	if (r == 0)
		s->fault_thread_started = true;
	/* All or nothing: without the background worker no eviction the
	 * daemon asks for would ever be answered. */
	while (r == 0 && started < s->nworkers) {
		if (!(r = open_fail_point(s)))
			r = -pthread_create(&s->workers[started].thread, NULL, worker_main,
					    &s->workers[started]);
		if (r == 0)
			started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		return 0;
	stop_threads(s, started);
fail:
	agent_free(s);
	return r;
}

void agent_stop(struct thpswap_session *s)
{
	stop_threads(s, s->nworkers);
	agent_free(s);
}
