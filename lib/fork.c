/* SPDX-License-Identifier: MIT */
/*
 * Fork children.  A child's evicted regions are empty and fault on its own
 * uffd, which the kernel installed in our fd table.  MOVE cannot cross
 * processes, so on_fork fills them at once with COPY from the records,
 * which are exactly the snapshot the child must see (see handle_urgent in
 * events.c), then closes the child's uffd, leaving it ordinary memory.
 * Pages that were present reached the child by COW; what is empty in the
 * child was empty in us and reads zero.  Never read our own region memory
 * here: an empty page would fault to the thread that is doing the reading.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "pagemap.h"
#include "uffd.h"

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
		if (rc == -ESRCH) {
			/* The child exited or exec'd (its mm is gone): nothing
			 * more to fill, and the fork waits for us. */
			f->gone = true;
			return;
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

/* Did the child zap @p since the fork (a REMOVE read, see child_events)? */
static bool child_zapped(const struct forks *f, uint64_t p)
{
	for (unsigned k = 0; k < f->nzap; k++)
		if (p >= f->zap[k].lo && p < f->zap[k].hi)
			return true;
	return false;
}

/* POISON the child's empty pages of the region at @dst: its record does not
 * decode, and the child must get SIGBUS there as we would, never zeros.  What
 * it zapped meanwhile it dropped itself: zeros.  Page by page (a rare path):
 * EEXIST is a page present already, left alone. */
static void child_poison(struct thpswap_session *s, int cfd, uint64_t dst, struct forks *f)
{
	for (uint64_t p = dst; p < dst + REGION;) {
		int rc = child_zapped(f, p) ? thp_uffd_zeropage(cfd, p, THP_PAGE_SIZE, 0, NULL)
					    : thp_uffd_poison(cfd, p, THP_PAGE_SIZE);

		if (rc == -EAGAIN) {
			child_events(cfd, f);
			continue;
		}
		if (rc == -ESRCH) {
			f->gone = true;
			break;
		}
		p += THP_PAGE_SIZE;
	}
	ctr_add(s, THP_C_CORRUPT, 1);
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
			/* Only pages that hold data, present or in the kernel's
			 * swap (the put-back moves swap entries back as they
			 * left; reading one swaps it in): touching a missing one
			 * would fault to this very thread.  Missing ones were
			 * zapped: zeros.  Read through process_vm_readv, not
			 * memcpy: another thread may munmap the region meanwhile
			 * (its UNMAP comes after), which must give EFAULT here,
			 * not SIGSEGV. */
			for (uint64_t off = 0; off < REGION; off += THP_PAGE_SIZE) {
				uint64_t a = rec_addr(r) + off;
				struct iovec to = { s->fault_buf + off, THP_PAGE_SIZE };
				struct iovec from = { (void *)(uintptr_t)a, THP_PAGE_SIZE };

				if (thp_pagemap_count_there(s->pagemap, a, a + THP_PAGE_SIZE) != 1 ||
				    process_vm_readv(getpid(), &to, 1, &from, 1, 0) != THP_PAGE_SIZE)
					memset(s->fault_buf + off, 0, THP_PAGE_SIZE);
			}
			rec_set(s, r, THP_ST_RESIDENT);
			child_fill(s, cfd, rec_addr(r), s->fault_buf, f);
			return THP_ST_FREE;
		}
	}
}

/* A FORK read: fill the child whose uffd is @cfd, then its grandchildren. */
void on_fork(struct thpswap_session *s, int cfd)
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
	for (uint32_t i = 0; i < max && !f.gone; i++) {
		struct thp_record *r = &s->rec[i];
		struct owned *own = fault_owned(s, i);
		uint32_t st = rec_state(r);

		if (st == THP_ST_FREE)
			continue;
		if (own && own->gone)
			continue; /* its region went before the fork */
		if (own)
			/* Our own restore, waiting out EAGAIN: not moved in yet,
			 * its bytes are still in the record. */
			st = r->stored_len ? THP_ST_RAM : THP_ST_ZERO;
		else if (st == THP_ST_EVICTING || st == THP_ST_CANCEL)
			st = fork_in_flight(s, cfd, i, &f);
		else
			st = rec_wait_stable(s, r);
		if (st == THP_ST_RAM && decode_record(s, i, s->fault_buf))
			child_fill(s, cfd, rec_addr(r), s->fault_buf, &f);
		else if (st == THP_ST_RAM)
			child_poison(s, cfd, rec_addr(r), &f);
		else if (st != THP_ST_POISONED && st != THP_ST_FREE)
			child_fill(s, cfd, rec_addr(r), NULL, &f);
	}
	child_events(cfd, &f);
	close(cfd);
	/* A grandchild is a copy of the child at its fork: what it lacks, the
	 * child lacked then, and the records still hold it. */
	for (unsigned k = 0; k < f.n; k++)
		on_fork(s, f.fd[k]);
}

/* Fill fork child @e with the pages of @buf (NULL: poison them) from @k on
 * that were still to be copied when it forked, minus what it zapped since. */
void early_fill(struct thpswap_session *s, struct early_fork *e, unsigned k, const char *buf)
{
	for (; k < REGION / THP_PAGE_SIZE; k++)
		while (place_copy(s, e->cfd, &e->pg[k], buf ? (uint64_t)(uintptr_t)buf + k * THP_PAGE_SIZE : 0,
				  &e->f) == -EAGAIN)
			child_events(e->cfd, &e->f); /* on_fork gets what it read */
}
