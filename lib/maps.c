/* SPDX-License-Identifier: MIT */
/*
 * The region table: region number (addr / 2 MiB) -> record index, an
 * open-addressing hash (linear probing) under one mutex.  Lookups are short;
 * nothing waits on an eviction or a restore while holding the lock.
 *
 * A delete leaves no tombstone: the entries after it in its cluster that
 * could live in the freed slot move back into it (backward-shift deletion).
 * So the table only ever holds live keys, a miss stops at the first empty
 * slot however many regions came and went, and the load stays at most 1/2.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KEY_EMPTY 0

static inline uint64_t key_of(uint64_t addr)
{
	return addr / REGION + 1;
}

static inline uint32_t hash_key(uint64_t k, uint32_t cap)
{
	return (uint32_t)((k * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

int rt_init(struct thpswap_session *s, struct region_table *t, uint32_t max_regions)
{
	uint32_t cap = 16;

	while (cap < 2 * max_regions)
		cap <<= 1;
	t->keys = own_alloc(s, cap * sizeof(*t->keys));
	t->vals = own_alloc(s, cap * sizeof(*t->vals));
	t->free_idx = own_alloc(s, max_regions * sizeof(*t->free_idx));
	if (!t->keys || !t->vals || !t->free_idx) {
		rt_fini(s, t);
		return -ENOMEM;
	}
	t->cap = cap;
	/* Hand out low indices first: they are the slots touched already. */
	for (uint32_t i = 0; i < max_regions; i++)
		t->free_idx[i] = max_regions - 1 - i;
	t->nfree = max_regions;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void rt_fini(struct thpswap_session *s, struct region_table *t)
{
	own_free(s, t->keys);
	own_free(s, t->vals);
	own_free(s, t->free_idx);
	t->keys = NULL;
	t->vals = NULL;
	t->free_idx = NULL;
}

long rt_find(const struct region_table *t, uint64_t addr, unsigned *probes)
{
	uint64_t k = key_of(addr);
	unsigned n = 0;
	long pos = -1;

	for (uint32_t i = hash_key(k, t->cap); n < t->cap; i = (i + 1) & (t->cap - 1)) {
		n++;
		if (t->keys[i] == k) {
			pos = i;
			break;
		}
		if (t->keys[i] == KEY_EMPTY)
			break;
	}
	if (probes)
		*probes = n;
	return pos;
}

void rt_put(struct region_table *t, uint64_t addr, uint32_t v)
{
	uint64_t k = key_of(addr);
	uint32_t i = hash_key(k, t->cap);

	while (t->keys[i] != KEY_EMPTY)
		i = (i + 1) & (t->cap - 1);
	t->keys[i] = k;
	t->vals[i] = v;
}

uint32_t rt_del(struct region_table *t, long pos)
{
	uint32_t mask = t->cap - 1, hole = (uint32_t)pos, v = t->vals[pos];

	/* Walk the rest of the cluster.  An entry may fill the hole when its
	 * home is not in (hole, j]: it is at least as far from home as the
	 * hole is behind it, so a lookup of it would pass the hole. */
	for (uint32_t j = (hole + 1) & mask; t->keys[j] != KEY_EMPTY; j = (j + 1) & mask) {
		uint32_t home = hash_key(t->keys[j], t->cap);

		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t->keys[hole] = t->keys[j];
			t->vals[hole] = t->vals[j];
			hole = j;
		}
	}
	t->keys[hole] = KEY_EMPTY;
	return v;
}

long rt_lookup(struct thpswap_session *s, uint64_t addr)
{
	struct region_table *t = &s->rt;
	long pos, v = -ENOENT;

	pthread_mutex_lock(&t->lock);
	pos = rt_find(t, addr, NULL);
	if (pos >= 0)
		v = t->vals[pos];
	pthread_mutex_unlock(&t->lock);
	return v;
}

/* The record at @a if the fault loop made it for memory nobody had
 * registered yet (see rt_adopt), else -1.  Table lock held. */
static long adopted_at(struct thpswap_session *s, uint64_t a)
{
	long pos = rt_find(&s->rt, a, NULL);
	uint32_t i;

	if (pos < 0)
		return -1;
	i = s->rt.vals[pos];
	return __atomic_load_n(&s->rec[i].flags, __ATOMIC_ACQUIRE) & THP_RF_ADOPTED ? (long)i : -1;
}

static int add(struct thpswap_session *s, uint64_t start, uint64_t len, uint32_t st, bool fresh,
	       uint32_t flags)
{
	struct region_table *t = &s->rt;
	uint64_t n = 0, now = now_ns();
	unsigned waited = 0;

again:
	n = 0;
	pthread_mutex_lock(&t->lock);
	for (uint64_t a = start; a < start + len; a += REGION) {
		if (rt_find(t, a, NULL) < 0) {
			n++;
			continue;
		}
		/* A block the fault loop adopted just before this registration
		 * of it (a fault on it read before its old mapping's UNMAP):
		 * the registration takes that record over, as it is. */
		if (!(flags & THP_RF_ADOPTED) && adopted_at(s, a) >= 0)
			continue;
		pthread_mutex_unlock(&t->lock);
		if (fresh && !agent_is_fault_thread(s) && waited++ < 100000) {
			sched_yield();
			goto again;
		}
		return -EBUSY;
	}
	if (n > t->nfree) {
		pthread_mutex_unlock(&t->lock);
		return -ENOSPC;
	}
	for (uint64_t a = start; a < start + len; a += REGION) {
		long taken = adopted_at(s, a);
		uint32_t i;
		struct thp_record *r;

		if (taken >= 0) {
			__atomic_and_fetch(&s->rec[taken].flags, ~THP_RF_ADOPTED, __ATOMIC_RELEASE);
			continue;
		}
		i = t->free_idx[--t->nfree];
		r = &s->rec[i];
		/* Read without the lock by threads still finishing with the
		 * record's last region (a restore's tail, a late fault). */
		__atomic_store_n(&r->flags, flags, __ATOMIC_RELAXED);
		__atomic_store_n(&r->addr, a, __ATOMIC_RELEASE);
		r->stored_len = 0;
		__atomic_store_n(&r->last_fault_ns, now, __ATOMIC_RELAXED);
		r->evicted_ns = 0;
		r->evictions = r->restores = 0;
		/* A kind is the last region's: not looked at yet (a stale
		 * NOHUGE would restore this one in 4 KiB pages). */
		__atomic_store_n(&r->kind, THP_KIND_UNKNOWN, __ATOMIC_RELAXED);
		zap_clear(s, i);
		rzap_clear(s, i);
		atomic_store(&s->born[i], (unsigned)atomic_load(&s->u_read));
		memset(s->cut[i], 0, sizeof(s->cut[i]));
		rec_set(s, r, st);
		rt_put(t, a, i);
	}
	ctr_add(s, THP_C_REGIONS, (int64_t)n);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int rt_add(struct thpswap_session *s, uint64_t start, uint64_t len, uint32_t st, bool fresh)
{
	/* Until the range is registered a fault there is the kernel's: a
	 * region evicted meanwhile would read zeros, not come back. */
	return add(s, start, len, st, fresh, THP_RF_ARRIVING);
}

void rt_arrived(struct thpswap_session *s, uint64_t start, uint64_t len)
{
	for (uint64_t a = start; a < start + len; a += REGION) {
		long i = rt_lookup(s, a);

		if (i >= 0)
			__atomic_and_fetch(&s->rec[i].flags, ~THP_RF_ARRIVING, __ATOMIC_ACQ_REL);
	}
}

int rt_adopt(struct thpswap_session *s, uint64_t addr, uint32_t st)
{
	return add(s, addr & ~(REGION - 1), REGION, st, false, THP_RF_ADOPTED);
}

/* Wait until no eviction or restore owns @r.  The fault thread keeps reading
 * events meanwhile: an evictor moving a region back may be waiting for them. */
uint32_t rec_wait_stable(struct thpswap_session *s, struct thp_record *r)
{
	for (;;) {
		uint32_t st = rec_state(r);

		if (st != THP_ST_EVICTING && st != THP_ST_CANCEL && st != THP_ST_RESTORING)
			return st;
		if (agent_is_fault_thread(s))
			s->read_events(s); /* agent_drain, passed down */
		sched_yield();
	}
}

/* Take one region out of the table: lookups miss it from now on. */
static long rt_detach(struct thpswap_session *s, uint64_t addr)
{
	struct region_table *t = &s->rt;
	long pos, i = -ENOENT;

	pthread_mutex_lock(&t->lock);
	pos = rt_find(t, addr, NULL);
	if (pos >= 0)
		i = rt_del(t, pos);
	pthread_mutex_unlock(&t->lock);
	return i;
}

/* Wait until nobody owns record @i, drop its bytes and free it. */
void rt_release(struct thpswap_session *s, uint32_t i)
{
	struct region_table *t = &s->rt;

	/* Unreachable by lookups; let its current owner finish.  A restore
	 * frees the slot's old bytes after making the record RESIDENT (off
	 * the faulter's path): a record reused before that punch would lose
	 * the bytes its next eviction stores.  (The fault thread never gets
	 * here with a punch of its own pending.) */
	rec_wait_stable(s, &s->rec[i]);
	while (rec_flags(&s->rec[i]) & THP_RF_PUNCHING)
		sched_yield();
	rec_drop_bytes(s, i);
	rec_set(s, &s->rec[i], THP_ST_FREE);
	ctr_add(s, THP_C_REGIONS, -1);
	pthread_mutex_lock(&t->lock);
	t->free_idx[t->nfree++] = i;
	pthread_mutex_unlock(&t->lock);
}

void rt_remove(struct thpswap_session *s, uint64_t start, uint64_t end)
{
	for (uint64_t a = start & ~(REGION - 1); a < end; a += REGION) {
		long i = rt_detach(s, a);
		struct owned *own;

		if (i < 0)
			continue;
		own = fault_owned(s, (uint32_t)i);
		if (own) {
			/* The fault thread's own restore, waiting out EAGAIN:
			 * waiting for it would be waiting for ourselves.  Out of
			 * the table now (a region moved here next must be the
			 * only key), freed when the restore backs out. */
			own->gone = true;
			continue;
		}
		rt_release(s, (uint32_t)i);
	}
}

void rt_move(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len)
{
	struct region_table *t = &s->rt;

	pthread_mutex_lock(&t->lock);
	for (uint64_t off = 0; off < len; off += REGION) {
		long pos = rt_find(t, from + off, NULL);
		uint32_t i;

		if (pos < 0)
			continue;
		i = rt_del(t, pos);
		__atomic_store_n(&s->rec[i].addr, to + off, __ATOMIC_RELEASE);
		rt_put(t, to + off, i);
	}
	pthread_mutex_unlock(&t->lock);
}
