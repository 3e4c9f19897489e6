/* SPDX-License-Identifier: MIT */
/*
 * Timing samples: where one restore's or one eviction's time goes.  Off
 * unless a caller in the client process turns them on (the bench, a test):
 * then every restore the fault thread completes and every eviction that
 * stores a region leaves one entry of CLOCK_MONOTONIC stamps in a ring that
 * the caller reads in-process.  Not public API: callers link the library's
 * internals.
 *
 * Off, s->samples is NULL and each stamp point below is one load and one
 * branch.  The ring is the session's own memory (own_alloc), kept until
 * thpswap_close: a writer that looked before it was turned off may still
 * write.
 */
#ifndef THPSWAP_LIB_SAMPLES_H
#define THPSWAP_LIB_SAMPLES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

enum sample_kind { SAMPLE_RESTORE = 1, SAMPLE_EVICT = 2 };

/* A restore's stamps, in the order the fault thread reaches them. */
enum {
	SR_READ,     /* the fault thread's last read of the region uffd before it */
	SR_START,    /* restore_region began (the message left the queue) */
	SR_POOL,     /* a pool slot in hand (filled on a miss) */
	SR_DATA,     /* the bytes in the slot: decompressed, zeroed, or a zero page */
	SR_MOVED,    /* move_in returned */
	SR_WAKE,     /* the record is RESIDENT; UFFDIO_WAKE is next */
};

/* An eviction's stamps. */
enum {
	SE_START,    /* evict_claimed began (the record's evictor bit taken) */
	SE_CLAIMED,  /* made movable, RESIDENT -> EVICTING */
	SE_STAGED,   /* a staging slot in hand */
	SE_MOVED,    /* the region is in staging (UFFDIO_MOVE out) */
	SE_COMPRESSED, /* zero-checked and compressed */
	SE_STORED,   /* pwrite into the arena done */
	SE_DONE,     /* committed, staging emptied */
};
#define SAMPLE_NT 7

/* Flags of an entry. */
enum {
	SF_WRITE = 1u << 0,      /* restore: a write fault */
	SF_POOL_MISS = 1u << 1,  /* restore: no pre-faulted THP in the pool */
	SF_COPY_IN = 1u << 2,    /* restore: copied in 4 KiB pages (copy_in) */
	SF_NOT_PMD = 1u << 3,    /* restore: not one PMD after the move */
	SF_EAGAIN = 1u << 4,     /* restore: the MOVE waited out an event */
	SF_ZERO = 1u << 5,       /* eviction: stored nothing (all zeros) */
};

struct thp_sample {
	uint64_t addr;           /* the region */
	uint32_t kind;           /* enum sample_kind */
	uint32_t flags;          /* SF_* */
	uint32_t from;           /* restore: the state it came from (THP_ST_*) */
	uint32_t pad;
	uint64_t t[SAMPLE_NT];   /* SR_* or SE_*; 0: not reached */
};

/* An entry of the ring: @seq is its index + 1 once written (a seqlock). */
struct sample_slot {
	_Atomic uint64_t seq;
	_Atomic uint64_t w[sizeof(struct thp_sample) / sizeof(uint64_t)];
};

struct thp_samples {
	atomic_bool on;
	uint64_t since_ns;       /* turned on at; a restore begun earlier is dropped */
	uint32_t cap;            /* entries, a power of two */
	_Atomic uint64_t next;   /* entries claimed so far (never reset) */
	/* The fault thread's own: its last read and its restore in hand. */
	uint64_t read_ns;
	struct thp_sample cur;
	struct sample_slot ring[];
};

/* Turn the samples on, with room for @cap entries (rounded up to a power of
 * two; the first call allocates, later ones turn them on again and keep
 * the ring).  Any thread; 0, -EINVAL, -ENOMEM. */
int samples_enable(struct thpswap_session *s, uint32_t cap);
void samples_disable(struct thpswap_session *s);
/* Entries written or being written so far: the index of the next. */
uint64_t samples_count(struct thpswap_session *s);
/* Entry @i: 0, -ENOENT (never turned on, not written yet, or not written
 * in full yet), -ESTALE (overwritten since: the ring wrapped). */
int samples_get(struct thpswap_session *s, uint64_t i, struct thp_sample *out);
/* thpswap_close, once the agent's threads have stopped. */
void samples_fini(struct thpswap_session *s);
/* Append @e (any thread). */
void samples_put(struct thp_samples *p, const struct thp_sample *e);

static inline struct thp_samples *samples_on(struct thpswap_session *s)
{
	struct thp_samples *p = __atomic_load_n(&s->samples, __ATOMIC_ACQUIRE);

	if (__builtin_expect(p == NULL, 1))
		return NULL;
	return atomic_load_explicit(&p->on, memory_order_relaxed) ? p : NULL;
}

/* ---- the fault thread's restore ---- */

/* A read of the region uffd returned messages. */
static inline void samples_read(struct thpswap_session *s)
{
	struct thp_samples *p = samples_on(s);

	if (p)
		p->read_ns = now_ns();
}

static inline void samples_restore_start(struct thpswap_session *s, uint64_t t0, bool write)
{
	struct thp_samples *p = samples_on(s);

	if (!p)
		return;
	p->cur = (struct thp_sample){ .kind = SAMPLE_RESTORE, .flags = write ? SF_WRITE : 0 };
	p->cur.t[SR_READ] = p->read_ns;
	p->cur.t[SR_START] = t0;
}

static inline void samples_stamp(struct thpswap_session *s, unsigned i)
{
	struct thp_samples *p = samples_on(s);

	if (p)
		p->cur.t[i] = now_ns();
}

/* The restore's pool slot is in hand: @full if it held a THP already. */
static inline void samples_pool(struct thpswap_session *s, bool full)
{
	struct thp_samples *p = samples_on(s);

	if (!p)
		return;
	p->cur.t[SR_POOL] = now_ns();
	if (!full)
		p->cur.flags |= SF_POOL_MISS;
}

/* Only the fault thread's restore is flagged (an evictor's move back
 * goes through the same ioctls). */
static inline void samples_flag(struct thpswap_session *s, uint32_t f)
{
	struct thp_samples *p = samples_on(s);

	if (p && agent_is_fault_thread(s))
		p->cur.flags |= f;
}

/* Stamped and written before the wake: once the faulter runs, its sample
 * is there to read. */
void samples_restore_done(struct thpswap_session *s, uint64_t addr, uint32_t from, bool pmd);

/* ---- an eviction (any thread: the stamps are the caller's) ---- */

static inline void samples_at(struct thpswap_session *s, struct thp_sample *e, unsigned i)
{
	if (samples_on(s))
		e->t[i] = now_ns();
}

void samples_evict_done(struct thpswap_session *s, struct thp_sample *e, uint64_t addr, long len);

#endif
