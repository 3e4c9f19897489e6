/* SPDX-License-Identifier: MIT */
/*
 * Event intake: the fault thread reads the region uffd's messages in the
 * kernel's order (agent_drain) and keeps that order.  Every message read
 * goes into one FIFO (u), consumed front-first: FORK, UNMAP and REMAP are
 * handled as soon as they reach the front (fork.c, remap.c), page faults
 * and REMOVEs move on to a second queue (q) that the fault loop (agent.c)
 * takes them from.  Zaps are noted as their REMOVE is read, under zap_lock.
 * Other threads wait for the intake through u_read/u_done: agent_sync
 * here, events_hold in region-ops.c.
 */
#include <errno.h>
#include <sched.h>
#include <unistd.h>

#include "internal.h"
#include "samples.h"
#include "uffd.h"

/*
 * Where the record for @addr is keyed now: mremaps read but not handled yet
 * (a handler running holds them up) have not re-keyed it.  A record
 * registered at the old place after such a REMAP was read is new memory
 * there, not the mapping that moved (mapping it waited for the REMAP to be
 * read, not handled: see new_mapping_sync); *@since is the place in u just
 * after the oldest REMAP that carried @addr back, *@carried whether any did.
 */
static uint64_t unmoved(const struct thpswap_session *s, uint64_t addr, bool *carried, unsigned *since)
{
	*carried = false;
	for (unsigned i = s->utail; i != s->uhead; i--) {
		const struct uffd_msg *m = &s->u[(i - 1) & (QCAP - 1)];

		if (m->event == UFFD_EVENT_REMAP && addr >= m->arg.remap.to &&
		    addr < m->arg.remap.to + m->arg.remap.len) {
			addr = m->arg.remap.from + (addr - m->arg.remap.to);
			*carried = true;
			*since = i;
		}
	}
	return addr;
}

/* The record a REMOVE's page at @addr concerns, or -1; *@key: where that
 * page is in the table's terms. */
static long remove_target(struct thpswap_session *s, uint64_t addr, uint64_t *key)
{
	unsigned since = 0;
	bool carried;
	long idx;

	*key = unmoved(s, addr, &carried, &since);
	idx = rt_lookup(s, *key);
	/* Born after that REMAP was read: the mapping that moved had no
	 * record here (a misaligned one), and what the REMOVE zaps is the
	 * memory at @addr now, whatever it is. */
	if (idx >= 0 && carried && (int)(atomic_load(&s->born[idx]) - since) >= 0)
		return -1;
	return idx;
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

/* A REMOVE just read: its zap comes after this (noted under zap_lock). */
static void note_remove(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		uint64_t lo = start > a ? start : a, hi = end < a + REGION ? end : a + REGION;
		uint64_t k;
		long idx = remove_target(s, lo, &k);
		uint64_t ka = k & ~(REGION - 1);

		/* The page offsets within the region are what the record needs;
		 * an unaligned move shifts them (and pages of one 2 MiB here
		 * may come from two regions there), so note page by page. */
		if (k - lo != ka - a) {
			for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE) {
				long j = remove_target(s, p, &k);

				if (j >= 0)
					note_zap(s, (uint32_t)j, k & ~(REGION - 1), k, k + THP_PAGE_SIZE);
			}
			continue;
		}
		if (idx >= 0)
			note_zap(s, (uint32_t)idx, ka, ka + (lo - a), ka + (hi - a));
	}
}

void events_intake(struct thpswap_session *s, const struct uffd_msg *m)
{
	s->u[s->utail++ & (QCAP - 1)] = *m;
	atomic_fetch_add(&s->u_read, 1);
	if (m->event == UFFD_EVENT_FORK)
		s->forks_read++; /* under zap_lock, see agent_wait_forks */
	if (s->copying)
		copy_follow(s, m, s->utail - 1);
	if (m->event == UFFD_EVENT_REMOVE)
		note_remove(s, m->arg.remove.start, m->arg.remove.end);
}

void handle_urgent(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq)
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
		pthread_mutex_lock(&s->fork_lock);
		s->forks_done++;
		pthread_cond_broadcast(&s->fork_cond);
		pthread_mutex_unlock(&s->fork_lock);
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
		if (n > 0)
			samples_read(s);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			events_intake(s, &msgs[i]);
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
		    m.event == UFFD_EVENT_REMAP) {
			handle_urgent(s, &m, s->uhead - 1);
		} else {
			s->q[s->qtail++ & (QCAP - 1)] = m;
			atomic_fetch_add(&s->q_in, 1);
		}
		atomic_fetch_add(&s->u_done, 1);
	}
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

void agent_wait_forks(struct thpswap_session *s)
{
	unsigned long target;

	if (agent_is_fault_thread(s))
		return;
	/* fork() returns once our read() has taken its FORK, maybe before we
	 * counted it: we read and count under zap_lock (as for agent_sync). */
	pthread_mutex_lock(&s->zap_lock);
	target = s->forks_read;
	pthread_mutex_unlock(&s->zap_lock);
	pthread_mutex_lock(&s->fork_lock);
	while (s->forks_done < target && !atomic_load(&s->fault_stop)) {
		/* Bounded only to look at fault_stop: a stopping agent fills
		 * nothing more (and stops only at close, from another thread
		 * than this one, which is in fork). */
		struct timespec t = thp_timespec_ns(now_ns() + 100000000ull);

		pthread_cond_timedwait(&s->fork_cond, &s->fork_lock, &t);
	}
	pthread_mutex_unlock(&s->fork_lock);
}

/* Has the kernel changed the mappings in a way whose event we have not read
 * (mmap_changing)?  A MOVE checks that before it finds the probe empty. */
bool events_pending(struct thpswap_session *s)
{
	uint64_t p = (uint64_t)(uintptr_t)s->sc.probe;

	return thp_uffd_move(s->uffd, p, p + THP_PAGE_SIZE, THP_PAGE_SIZE, 0, NULL) == -EAGAIN;
}

/* Is the page at @addr in a VMA registered with our region uffd?  A 4 KiB
 * MOVE from the empty probe slot (a hole, allowed) moves nothing, but the
 * kernel checks first that the destination VMA is registered with this uffd
 * (EINVAL if not, ENOENT if nothing is mapped).  0, -EAGAIN (an event is
 * pending), or -errno. */
int registered_here(struct thpswap_session *s, uint64_t addr)
{
	uint64_t p = (uint64_t)(uintptr_t)s->sc.probe;

	return thp_uffd_move(s->uffd, addr & ~(THP_PAGE_SIZE - 1), p, THP_PAGE_SIZE,
			     UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE, NULL);
}

/*
 * MADV_DONTNEED/FREE, in queue order.  The pages were noted as zapped when
 * the event was read; a region wholly zapped while not resident holds
 * nothing worth keeping any more.  Those records were listed then too: by
 * now an mremap handled meanwhile may have put another region at the
 * event's addresses.
 */
void on_remove(struct thpswap_session *s)
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

bool events_next(struct thpswap_session *s, struct uffd_msg *m)
{
	if (s->qhead == s->qtail)
		return false;
	*m = s->q[s->qhead++ & (QCAP - 1)];
	return true;
}

bool events_queued(const struct thpswap_session *s)
{
	return s->qhead != s->qtail;
}
