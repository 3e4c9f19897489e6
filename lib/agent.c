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
#include "proto.h"
#include "uffd.h"

bool agent_is_fault_thread(struct thpswap_session *s)
{
	return s->fault_thread_started && pthread_equal(pthread_self(), s->fault_thread);
}

void agent_drain(struct thpswap_session *s)
{
	for (;;) {
		unsigned room = QCAP - (s->qtail - s->qhead);
		struct uffd_msg msgs[64];
		ssize_t n;

		if (room == 0)
			return; /* the kernel keeps the rest */
		n = read(s->uffd, msgs, sizeof(msgs[0]) * (room < 64 ? room : 64));
		if (n <= 0)
			return; /* EAGAIN: nothing pending */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			s->q[s->qtail++ & (QCAP - 1)] = msgs[i];
	}
}

/* ---- events ---- */

/*
 * MADV_DONTNEED/FREE: the kernel zaps after we read the event.  For a region
 * that is not resident the record is the memory: drop it when the whole
 * region is covered; restore it with the covered part zeroed when only part
 * is (zeroed in our copy before the MOVE, the result is right whether the
 * kernel's zap lands before or after it).  Resident regions are zapped by the
 * kernel itself.
 */
static void on_remove(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		long idx = rt_lookup(s, a);
		struct zap_range z = { start > a ? start : a, end < a + REGION ? end : a + REGION };
		struct thp_record *r;
		uint32_t st;

		if (idx < 0)
			continue;
		r = &s->rec[idx];
		st = rec_wait_stable(s, r);
		if (st != THP_ST_RAM && st != THP_ST_ZERO)
			continue;
		if (z.lo == a && z.hi == a + REGION) {
			if (rec_cas(s, r, st, THP_ST_EMPTY))
				rec_drop_bytes(s, (uint32_t)idx);
		} else if (st == THP_ST_RAM) {
			restore_region(s, (uint32_t)idx, 0, true, s->fault_codec, &z);
		}
	}
}

/*
 * A fork child: its evicted regions are empty and fault on its own uffd,
 * which the kernel installed in our fd table.  MOVE cannot cross processes,
 * so fill them now with COPY from what the parent holds at this moment —
 * the fork is done and its snapshot is exactly our records — then close the
 * child's uffd, leaving it ordinary memory.
 */
static int child_copy(struct thpswap_session *s, int cfd, uint64_t dst, const char *src)
{
	int64_t done = 0;
	int rc;

	for (;;) {
		rc = thp_uffd_copy(cfd, dst, (uint64_t)(uintptr_t)src, REGION, 0, &done);
		if (rc != -EAGAIN)
			break;
		if (done > 0) /* partly present: finish page by page */
			break;
		/* The child has events pending (it unmapped or forked): read
		 * and drop them; its remaining regions are filled anyway. */
		struct uffd_msg m;
		while (read(cfd, &m, sizeof(m)) == sizeof(m))
			if (m.event == UFFD_EVENT_FORK)
				close((int)m.arg.fork.ufd);
	}
	if (rc == -EAGAIN || rc == -EEXIST) {
		for (uint64_t off = 0; off < REGION; off += THP_PAGE_SIZE)
			thp_uffd_copy(cfd, dst + off, (uint64_t)(uintptr_t)src + off, THP_PAGE_SIZE, 0, NULL);
		rc = 0;
	}
	ctr_add(s, THP_C_COPY_CHILD, 1);
	return rc;
}

static void on_fork(struct thpswap_session *s, int cfd)
{
	uint32_t max = s->hdr->max_regions;

	for (uint32_t i = 0; i < max; i++) {
		struct thp_record *r = &s->rec[i];
		uint32_t st = rec_state(r);
		struct thp_blob_view v;
		const char *blob;
		bool ok = true;

		if (st == THP_ST_FREE)
			continue;
		st = rec_wait_stable(s, r);
		switch (st) {
		case THP_ST_EMPTY:
		case THP_ST_ZERO:
			thp_uffd_zeropage(cfd, r->addr, REGION, 0, NULL);
			break;
		case THP_ST_RAM:
			blob = (const char *)s->arena + thp_arena_slot_off(s->hdr, i);
			if (r->stored_len > THP_SLOT_SIZE || thp_blob_view(blob, r->stored_len, &v))
				break;
			for (unsigned f = 0; f < v.nframes && ok; f++)
				ok = thp_codec_decompress_frame(s->fault_codec, &v, f, s->fault_buf) == 0;
			if (ok)
				child_copy(s, cfd, r->addr, s->fault_buf);
			break;
		case THP_ST_RESIDENT:
			/* Normally the child shares it already (EEXIST). */
			child_copy(s, cfd, r->addr, (const char *)(uintptr_t)r->addr);
			break;
		default:
			break;
		}
	}
	close(cfd);
}

static void handle_msg(struct thpswap_session *s, const struct uffd_msg *m)
{
	long idx;

	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		ctr_add(s, THP_C_FAULTS, 1);
		idx = rt_lookup(s, m->arg.pagefault.address);
		if (idx < 0) {
			/* Not ours (any more): let it retry. */
			thp_uffd_wake(s->uffd, m->arg.pagefault.address & ~(THP_PAGE_SIZE - 1), THP_PAGE_SIZE);
			break;
		}
		restore_region(s, (uint32_t)idx, m->arg.pagefault.address,
			       m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE, s->fault_codec, NULL);
		break;
	case UFFD_EVENT_FORK:
		on_fork(s, (int)m->arg.fork.ufd);
		break;
	case UFFD_EVENT_REMAP:
		/* Data follows the mapping when it stays 2 MiB-congruent. */
		if (!((m->arg.remap.from | m->arg.remap.to | m->arg.remap.len) & (REGION - 1)))
			rt_move(s, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_REMOVE:
		on_remove(s, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP: {
		/* Only whole regions; a region left partly mapped keeps its
		 * record and is served through the 4 KiB fallback. */
		uint64_t lo = (m->arg.remove.start + REGION - 1) & ~(REGION - 1);
		uint64_t hi = m->arg.remove.end & ~(REGION - 1);

		if (hi > lo)
			rt_remove(s, lo, hi);
		break;
	}
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

static void on_daemon(struct thpswap_session *s)
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
		struct evict_job *j = malloc(sizeof(*j) + e->n * sizeof(uint64_t));

		if (!j) {
			pthread_mutex_lock(&s->send_lock);
			thp_msg_send_error(s->sock, m.hdr.seq, -ENOMEM, "agent out of memory");
			pthread_mutex_unlock(&s->send_lock);
			return;
		}
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
		long idx = rt_lookup(s, j->addr[k]);

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
	free(j);
}

/* ---- parallel decompression ---- */

/* Take frames of restore @gen until none is left. */
static void run_frames(struct decomp_help *h, uint32_t gen, const struct thp_blob_view *v,
		       char *dst, struct thp_codec *codec)
{
	for (;;) {
		uint64_t c = atomic_load(&h->claim);
		int rc;

		if ((uint32_t)(c >> 32) != gen || (uint32_t)c >= v->nframes)
			return;
		if (!atomic_compare_exchange_weak(&h->claim, &c, c + 1))
			continue;
		rc = thp_codec_decompress_frame(codec, v, (uint32_t)c, dst);
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
	atomic_store(&h->claim, (uint64_t)gen << 32);
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
		int busy = s->qhead != s->qtail;

		if (poll(p, s->sock >= 0 ? 3 : 2, busy ? 0 : -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			break;
		agent_drain(s);
		while (s->qhead != s->qtail) {
			struct uffd_msg m = s->q[s->qhead++ & (QCAP - 1)];

			handle_msg(s, &m);
		}
		if (s->sock >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)))
			on_daemon(s);
	}
	return NULL;
}

int agent_start(struct thpswap_session *s)
{
	sigset_t all, old;
	int r;

	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->evfd < 0)
		return -errno;
	s->q = calloc(QCAP, sizeof(*s->q));
	if (!s->q)
		return -ENOMEM;
	s->jobs_tail = &s->jobs;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&s->fault_thread, NULL, fault_main, s);
	if (r == 0)
		s->fault_thread_started = true;
	for (unsigned i = 0; r == 0 && i < s->nworkers; i++) {
		r = -pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
		if (r)
			s->nworkers = i; /* run with the ones we have */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return s->fault_thread_started ? 0 : r;
}

void agent_stop(struct thpswap_session *s)
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
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i].thread, NULL);
	while (s->jobs) {
		struct evict_job *j = s->jobs;

		s->jobs = j->next;
		free(j);
	}
	if (s->evfd >= 0)
		close(s->evfd);
	s->evfd = -1;
	free(s->q);
	s->q = NULL;
}
