/* SPDX-License-Identifier: MIT */
/*
 * Timing samples (see samples.h): a ring of fixed-size entries that the
 * fault thread (restores) and evicting threads append to, and a caller in
 * the same process reads.  Each entry is a seqlock of atomic words, so a
 * reader racing a writer that wrapped the ring sees -ESTALE, never a torn
 * entry, and no access is a data race.
 */
#include <errno.h>
#include <string.h>

#include "samples.h"

#define NWORDS (sizeof(struct thp_sample) / sizeof(uint64_t))

int samples_enable(struct thpswap_session *s, uint32_t cap)
{
	struct thp_samples *p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);
	uint32_t n = 1;

	if (!cap || cap > (1u << 24))
		return -EINVAL;
	if (!p) {
		while (n < cap)
			n <<= 1;
		/* Touched by the agent's threads: noted as its own. */
		p = own_alloc(s, sizeof(*p) + (size_t)n * sizeof(p->ring[0]));
		if (!p)
			return -ENOMEM;
		p->cap = n;
		if (!__atomic_compare_exchange_n(&s->samples, &(struct thp_samples *){ NULL }, p, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			own_free(s, p); /* another caller won: use its ring */
			p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);
		}
	}
	/* Stamps are only compared, never written, across threads. */
	__atomic_store_n(&p->since_ns, now_ns(), __ATOMIC_RELAXED);
	atomic_store_explicit(&p->on, true, memory_order_release);
	return 0;
}

void samples_disable(struct thpswap_session *s)
{
	struct thp_samples *p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);

	if (p)
		atomic_store_explicit(&p->on, false, memory_order_release);
}

uint64_t samples_count(struct thpswap_session *s)
{
	struct thp_samples *p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);

	return p ? atomic_load(&p->next) : 0;
}

void samples_put(struct thp_samples *p, const struct thp_sample *e)
{
	uint64_t i = atomic_fetch_add(&p->next, 1), w[NWORDS];
	struct sample_slot *sl = &p->ring[i & (p->cap - 1)];

	memcpy(w, e, sizeof(w));
	/* Invalid while written: a reader of the entry before sees it change. */
	atomic_store_explicit(&sl->seq, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (size_t k = 0; k < NWORDS; k++)
		atomic_store_explicit(&sl->w[k], w[k], memory_order_relaxed);
	atomic_store_explicit(&sl->seq, i + 1, memory_order_release);
}

int samples_get(struct thpswap_session *s, uint64_t i, struct thp_sample *out)
{
	struct thp_samples *p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);
	struct sample_slot *sl;
	uint64_t seq, w[NWORDS];

	if (!p || i >= atomic_load(&p->next))
		return -ENOENT;
	sl = &p->ring[i & (p->cap - 1)];
	seq = atomic_load_explicit(&sl->seq, memory_order_acquire);
	if (seq != i + 1)
		return seq > i + 1 || i + p->cap < atomic_load(&p->next) ? -ESTALE : -ENOENT;
	for (size_t k = 0; k < NWORDS; k++)
		w[k] = atomic_load_explicit(&sl->w[k], memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&sl->seq, memory_order_relaxed) != seq)
		return -ESTALE;
	memcpy(out, w, sizeof(w));
	return 0;
}

void samples_fini(struct thpswap_session *s)
{
	struct thp_samples *p = __atomic_exchange_n(&s->samples, NULL, __ATOMIC_ACQ_REL);

	own_free(s, p);
}

/* ---- the writers ---- */

void samples_restore_done(struct thpswap_session *s, uint64_t addr, uint32_t from, bool pmd)
{
	struct thp_samples *p = samples_on(s);

	if (!p)
		return;
	p->cur.t[SR_WAKE] = now_ns();
	/* Begun before the samples were turned on: its early stamps are an
	 * older restore's. */
	if (p->cur.t[SR_START] < __atomic_load_n(&p->since_ns, __ATOMIC_RELAXED))
		return;
	if (!p->cur.t[SR_READ]) /* read before they were on */
		p->cur.t[SR_READ] = p->cur.t[SR_START];
	/* A step not reached (none is skipped today) takes the stamp before. */
	for (unsigned k = SR_POOL; k < SR_WAKE; k++)
		if (!p->cur.t[k])
			p->cur.t[k] = p->cur.t[k - 1];
	p->cur.addr = addr;
	p->cur.from = from;
	if (!pmd)
		p->cur.flags |= SF_NOT_PMD;
	samples_put(p, &p->cur);
}

void samples_evict_done(struct thpswap_session *s, struct thp_sample *e, uint64_t addr, long len)
{
	struct thp_samples *p = samples_on(s);

	if (!p || e->t[SE_START] < __atomic_load_n(&p->since_ns, __ATOMIC_RELAXED))
		return;
	e->t[SE_DONE] = now_ns();
	/* Steps it had no need of (an all-zero region is not compressed nor
	 * stored) take the time of the next step reached. */
	for (unsigned k = SE_DONE; k-- > SE_CLAIMED;)
		if (!e->t[k])
			e->t[k] = e->t[k + 1];
	e->kind = SAMPLE_EVICT;
	e->addr = addr;
	if (len <= 0)
		e->flags |= SF_ZERO;
	samples_put(p, e);
}
