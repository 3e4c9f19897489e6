/* SPDX-License-Identifier: MIT */
/*
 * The worker threads and what they run (agent_start starts them):
 *
 *   background   one thread at nice +5: the evictions the daemon asks for
 *                (its EVICT requests, which the fault thread reads into
 *                preallocated jobs), pool refills, and connecting to the
 *                daemon again after it went away (with backoff);
 *   helpers      one per spare CPU: they only decompress frames alongside
 *                the fault thread's restore.
 *
 * The fault thread waits for a worker only briefly: for wlock, which a
 * worker holds across a few stores, for send_lock, held across one
 * non-blocking send, and for a frame a helper has claimed (see
 * decompress_parallel).  Never for a worker that may be inside malloc: a
 * fork in another thread holds glibc's malloc locks until the fault thread
 * reads its FORK event.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "proto.h"

/* ---- the daemon's connection: lost, and made again ---- */

/* Backoff between reconnect attempts: from the first to the last, doubled
 * after each failure, each wait jittered over its upper half so that the
 * clients of a restarted daemon do not all come at once. */
#define RECONNECT_FIRST_MS 50u
#define RECONNECT_MAX_MS   5000u
/* A connection that lasted this long starts the next backoff afresh. */
#define RECONNECT_STABLE_NS 1000000000ull

static uint64_t jittered_ns(struct reconnect *rc)
{
	uint64_t x = rc->rng, half = (uint64_t)rc->backoff_ms * 1000000ull / 2;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rc->rng = x;
	return half + x % (half + 1);
}

/* The daemon hung up (fault thread): whatever it asked for in flight is
 * cancelled (conn_gen), and the background thread connects again. */
static void daemon_lost(struct thpswap_session *s)
{
	struct reconnect *rc = &s->reconnect;
	uint64_t now = now_ns();

	pthread_mutex_lock(&s->send_lock);
	atomic_fetch_add(&s->conn_gen, 1);
	close(s->sock);
	s->sock = -1;
	pthread_mutex_unlock(&s->send_lock);

	pthread_mutex_lock(&s->wlock);
	if (!rc->backoff_ms || now - rc->connected_ns >= RECONNECT_STABLE_NS)
		rc->backoff_ms = RECONNECT_FIRST_MS;
	rc->wanted = true;
	rc->due_ns = now + jittered_ns(rc);
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
}

/* A daemon's refusal that asking again would only repeat: it does not
 * know RESUME (an older one), or it will never take this arena.  Busy,
 * out of memory, too many connections of our uid: ask again later. */
static bool refused_for_good(int err)
{
	return err != -EBUSY && err != -ENOMEM && err != -EUSERS && err != -EIO &&
	       err != -ETIMEDOUT && err != -EAGAIN;
}

/* One attempt, due now (background thread, wlock held and dropped across
 * it): done, or the next one later, or none (the session goes on served
 * by its agent alone, as it does with no daemon). */
static void try_reconnect(struct thpswap_session *s)
{
	struct reconnect *rc = &s->reconnect;
	bool refused;
	int r;

	pthread_mutex_unlock(&s->wlock);
	r = session_reconnect(s, &refused);
	pthread_mutex_lock(&s->wlock);
	if (r == 0) {
		rc->wanted = false;
		rc->connected_ns = now_ns();
		return;
	}
	if (refused && refused_for_good(r)) {
		rc->wanted = false;
		return;
	}
	rc->backoff_ms *= 2;
	if (rc->backoff_ms > RECONNECT_MAX_MS)
		rc->backoff_ms = RECONNECT_MAX_MS;
	rc->due_ns = now_ns() + jittered_ns(rc);
}

/* ---- daemon jobs: read by the fault thread, run by the background one ---- */

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
struct evict_job *free_job(struct thpswap_session *s)
{
	for (unsigned i = 0; i < NJOBS; i++)
		if (!atomic_load(&s->job_mem[i].busy))
			return &s->job_mem[i];
	return NULL;
}

/* Read one request from the daemon; an EVICT goes into @j. */
void on_daemon(struct thpswap_session *s, struct evict_job *j)
{
	char buf[THP_MSG_MAX];
	struct thp_msg m;
	long n = thp_msg_recv(s->sock, buf, sizeof(buf), NULL, 0, NULL);

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n <= 0) {
		/* The daemon went away: keep serving our faults from the arena
		 * while the background thread connects again.  The socket goes
		 * under send_lock, which run_job sends under: it must not send
		 * on the closed fd, or on whatever reuses its number.  Held
		 * only across a non-blocking send, never around malloc. */
		daemon_lost(s);
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
		j->to_kernel = !!(e->reason & THP_EVICT_TO_KERNEL);
		j->gen = atomic_load(&s->conn_gen);
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

		/* The daemon that asked is gone: the rest is cancelled (each
		 * eviction done so far finished; none is left half-way). */
		if (atomic_load(&s->conn_gen) != j->gen)
			break;
		agent_sync(s);
		idx = rt_lookup(s, j->addr[k]);

		if (idx < 0) {
			d.skipped++;
			continue;
		}
		if (j->to_kernel) {
			int q = kswap_pageout(s, (uint32_t)idx);

			if (q > 0)
				d.evicted++;
			else if (q == 0)
				d.skipped++;
			else
				d.failed++;
			continue;
		}
		kswap_swapin(s, (uint32_t)idx);
		switch (evict_to_tier(s, (uint32_t)idx, w->codec, w->buf, &d.bytes_in, &d.bytes_stored)) {
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
	/* Only on the connection it came on: a new daemon never asked. */
	pthread_mutex_lock(&s->send_lock);
	if (s->sock >= 0 && atomic_load(&s->conn_gen) == j->gen)
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

void agent_kick_kswap(struct thpswap_session *s)
{
	pthread_mutex_lock(&s->wlock);
	pthread_cond_broadcast(&s->wcond);
	pthread_mutex_unlock(&s->wlock);
}

/* ---- the threads ---- */

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

/* The sooner of two waits, 0 meaning none. */
static uint64_t sooner(uint64_t a, uint64_t b)
{
	return b && (!a || b < a) ? b : a;
}

/* Nothing to do: give the pool back once the client is idle, collapse
 * regions back from the kernel's swap (kswap_scan), move old RAM records
 * to the file tier (ftier_scan), protect the resident regions for write
 * tracking (track_scan), and wait for work until the next of them (wlock
 * held; work that came meanwhile is looked at first). */
static void idle_wait(struct thpswap_session *s)
{
	struct timespec t;
	uint64_t wait, kwait;

	pthread_mutex_unlock(&s->wlock);
	wait = scratch_trim(s);
	kwait = kswap_scan(s);
	wait = sooner(sooner(wait, kwait), ftier_scan(s));
	wait = sooner(wait, track_scan(s));
	pthread_mutex_lock(&s->wlock);
	if (s->jobs || s->refill_wanted || s->stopping)
		return;
	/* A pageout after the scan looked (its kick found nobody waiting). */
	if (!kwait && atomic_load(&s->kswap.active))
		return;
	if (!wait) {
		pthread_cond_wait(&s->wcond, &s->wlock);
		return;
	}
	/* wcond runs on CLOCK_MONOTONIC, as now_ns() does. */
	t = thp_timespec_ns(now_ns() + wait);
	pthread_cond_timedwait(&s->wcond, &s->wlock, &t);
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
		} else if (s->reconnect.wanted && now_ns() >= s->reconnect.due_ns) {
			try_reconnect(s);
		} else if (s->reconnect.wanted) {
			struct timespec due = thp_timespec_ns(s->reconnect.due_ns);

			pthread_cond_timedwait(&s->wcond, &s->wlock, &due);
		} else {
			idle_wait(s);
		}
	}
	pthread_mutex_unlock(&s->wlock);
	return NULL;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;

	return w->background ? background_main(w) : helper_main(w);
}
