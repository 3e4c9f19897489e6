/* SPDX-License-Identifier: MIT */
/*
 * The in-process agent's lifecycle and its fault loop.  The fault thread is
 * the sole reader of the region uffd and of the daemon's socket (which the
 * background thread replaces after the daemon went away): it reads
 * events (events.c), serves page faults in their order (fault() here: look
 * the region up in maps.c, restore it in restore.c) and hands the daemon's
 * requests to the workers (workers.c).
 *
 * Agent threads block every signal (the application's handlers must not run
 * on them), never take a lock an application thread may hold while it
 * faults, and never munmap/zap/fork registered memory themselves (they
 * would wait for an event only they can read).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "pagemap.h"
#include "procmap.h"
#include "uffd.h"

/*
 * A fault in registered memory with no record.  A VMA keeps its
 * registration when mremap grows it (in place or moving), so its new tail
 * faults to us: if the whole 2 MiB block around @addr lies in one private
 * anonymous VMA registered with our uffd, the block becomes a region --
 * EMPTY (restored as a zeroed THP) if nothing of it is mapped, else
 * RESIDENT (its holes get 4 KiB zero pages until an eviction makes it
 * whole).  0 if there is a record now, -EAGAIN if an event must be read
 * first.
 *
 * The fault may be stale: read before the UNMAP of the mapping it hit, and
 * served after it, when a new mapping may be at that address.  One not
 * registered with us is left alone (registered_here); one being registered
 * right now takes our record over (rt_adopt).  It may also be a region an
 * mremap has moved here whose REMAP is not read yet: the record made now is
 * stale then, and the REMAP's handling drops it (clear_way) before anything
 * lands -- a MOVE or COPY into the block fails with EAGAIN while that event
 * is pending.
 */
static int adopt_block(struct thpswap_session *s, uint64_t addr)
{
	uint64_t b = addr & ~(REGION - 1);
	struct thp_vma v;
	long there;
	int rc;

	if (s->procmap < 0 || thp_procmap_query(s->procmap, addr, false, &v, NULL, 0))
		return -ENOENT;
	if (v.start > b || v.end < b + REGION || v.shared || v.file || !v.read || !v.write)
		return -ENOENT;
	rc = registered_here(s, addr);
	if (rc)
		return rc;
	/* Pages in the kernel's swap are data, as present ones are. */
	there = thp_pagemap_count_there(s->pagemap, b, b + REGION);
	if (there < 0)
		return (int)there;
	return rt_adopt(s, b, there ? THP_ST_RESIDENT : THP_ST_EMPTY);
}

/* A page fault, in queue order: look the region up, restore it. */
static void fault(struct thpswap_session *s, uint64_t addr, bool write)
{
	uint64_t page = addr & ~(THP_PAGE_SIZE - 1);
	bool adopted = false;

	for (;;) {
		long idx = rt_lookup(s, addr);
		int rc;

		if (idx < 0 && !adopted) {
			rc = adopt_block(s, addr);
			if (rc == -EAGAIN) {
				agent_drain(s);
				continue;
			}
			adopted = true;
			if (rc == 0)
				continue;
		}
		if (idx >= 0) {
			if (restore_region(s, (uint32_t)idx, addr, write, s->fault_codec))
				/* It failed: an mremap read meanwhile may have moved
				 * the record, and the wake went to its new address;
				 * the faulter waits at the old one. */
				thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
			return;
		}
		/*
		 * Registered memory with no record that could not become a
		 * region (less than a 2 MiB block of its VMA), or a region being
		 * unmapped.  It is new memory and reads zeros (a
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

static void handle_msg(struct thpswap_session *s, const struct uffd_msg *m)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		/* A write to a region write tracking protected: no restore. */
		if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			track_fault(s, m->arg.pagefault.address);
			break;
		}
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

static void *fault_main(void *arg)
{
	struct thpswap_session *s = arg;

	fault_thread_of = s;
	for (;;) {
		int sock = s->sock;
		struct pollfd p[3] = {
			{ .fd = s->uffd, .events = POLLIN },
			{ .fd = s->evfd, .events = POLLIN },
			{ .fd = sock, .events = POLLIN },
		};
		bool busy = events_queued(s), daemon = sock >= 0;
		struct evict_job *j = daemon ? free_job(s) : NULL;

		/* With every job taken (the daemon gave up waiting on one and
		 * sent another), its requests wait in the socket: look again
		 * soon. */
		if (poll(p, j ? 3 : 2, busy ? 0 : daemon && !j ? 10 : -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN) {
			uint64_t n;

			/* Stop, or a new socket to the daemon to look at.  The
			 * flag is set before the write: looked at again after
			 * the read, which may have taken that write too. */
			if (atomic_load(&s->fault_stop))
				break;
			if (read(s->evfd, &n, sizeof(n)) < 0) {
				/* EAGAIN: nothing to take; nothing else fails */
			}
			if (atomic_load(&s->fault_stop))
				break;
			continue;
		}
		agent_drain(s);
		for (struct uffd_msg m; events_next(s, &m);) {
			handle_msg(s, &m);
			atomic_fetch_add(&s->q_done, 1); /* see agent_sync */
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
	atomic_store(&s->fault_stop, true);
	if (s->fault_thread_started) {
		if (write(s->evfd, &one, sizeof(one)) < 0) {
			/* eventfd cannot fail with a counter this small */
		}
		pthread_join(s->fault_thread, NULL);
		s->fault_thread_started = false;
	}
	own_free(s, s->fault_stack);
	s->fault_stack = NULL;
	for (unsigned i = 0; i < nworkers; i++) {
		pthread_join(s->workers[i].thread, NULL);
		own_free(s, s->workers[i].stack);
		s->workers[i].stack = NULL;
	}
}

/*
 * Start an agent thread on a stack of the agent's own (own_alloc), its
 * lowest page the guard: glibc puts the thread's descriptor and TLS in it
 * too, and a stack it allocated (or reused from its cache for a program's
 * thread later) would be the program's memory to adopt.  On success
 * *@stack is the mapping to own_free after the join.
 */
static int start_thread(struct thpswap_session *s, pthread_t *t, void *(*fn)(void *), void *arg,
			void **stack)
{
	pthread_attr_t a;
	size_t size;
	char *st;
	int r;

	r = -pthread_attr_init(&a);
	if (r)
		return r;
	/* The size glibc would give (RLIMIT_STACK); untouched pages cost nothing. */
	if ((r = -pthread_attr_getstacksize(&a, &size)))
		goto out;
	size = (size + THP_PAGE_SIZE - 1) & ~(size_t)(THP_PAGE_SIZE - 1);
	st = own_alloc(s, size + THP_PAGE_SIZE);
	if (!st) {
		r = -errno;
		goto out;
	}
	if (mprotect(st, THP_PAGE_SIZE, PROT_NONE) ||
	    (r = -pthread_attr_setstack(&a, st + THP_PAGE_SIZE, size))) {
		r = r ? r : -errno;
		own_free(s, st);
		goto out;
	}
	r = -pthread_create(t, &a, fn, arg);
	if (r)
		own_free(s, st);
	else
		*stack = st;
out:
	pthread_attr_destroy(&a);
	return r;
}

static void agent_free(struct thpswap_session *s)
{
	s->jobs = NULL; /* unanswered: the daemon sees the session end */
	if (s->evfd >= 0)
		close(s->evfd);
	s->evfd = -1;
	own_free(s, s->q);
	own_free(s, s->u);
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
	s->q = own_alloc(s, QCAP * sizeof(*s->q));
	s->u = own_alloc(s, QCAP * sizeof(*s->u));
	if (!s->q || !s->u) {
		r = -ENOMEM;
		goto fail;
	}
	/* The layers below the intake read events through this (see
	 * let_events_drain). */
	s->read_events = agent_drain;
	s->jobs_tail = &s->jobs;
	for (unsigned i = 0; i < NJOBS; i++)
		atomic_store(&s->job_mem[i].busy, false);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (!(r = open_fail_point(s)))
		r = start_thread(s, &s->fault_thread, fault_main, s, &s->fault_stack);
	if (r == 0)
		s->fault_thread_started = true;
	/* All or nothing: without the background worker no eviction the
	 * daemon asks for would ever be answered. */
	while (r == 0 && started < s->nworkers) {
		if (!(r = open_fail_point(s)))
			r = start_thread(s, &s->workers[started].thread, worker_main,
					 &s->workers[started], &s->workers[started].stack);
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
