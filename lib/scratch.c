/* SPDX-License-Identifier: MIT */
/*
 * Scratch slots: 2 MiB-aligned slots in one MADV_DONTFORK area (a fork would
 * make its folios shared and every MOVE out of it EBUSY, docs/KERNEL.md, *MOVE after fork*),
 * in two kinds:
 *
 *   pool     pre-faulted THPs that restores decompress into, and empty
 *            slots; registered MODE_WP on the scratch uffd, which has no
 *            events: touching a slot allocates like normal memory, zapping
 *            one raises nothing, and MOVE accepts it as a destination.
 *   staging  where an eviction moves a region's THP out to.  Registered
 *            MODE_WP on the region uffd, because a MOVE is ordered against
 *            the events of the uffd it runs on, and the MOVE out must fail
 *            (EAGAIN) while an mremap or munmap of the region is unread
 *            (see events_hold).  Zapping a staging slot would raise a
 *            REMOVE event, so a staging slot is emptied by moving what it
 *            holds into a pool slot instead (stage_put).  One more,
 *            never filled, serves events_pending() as a probe.
 *
 * The pool is sized by use: empty while the client is idle (a client that
 * restores nothing must not hold huge pages for restores that may never
 * come), filled up to the configured size by the first restore or eviction
 * (an eviction's THP is kept as a pool page rather than freed), and given
 * back after idle_ns without either.  A client managing much memory keeps
 * 1 % of it (a floor) across idle periods.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "util.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "uffd.h"

static unsigned slot_index(struct scratch *sc, char *slot)
{
	return (unsigned)((slot - sc->base) / REGION);
}

static char *slot_at(struct scratch *sc, long i)
{
	return sc->base + (size_t)i * REGION;
}

static bool is_thp(struct thpswap_session *s, const char *slot)
{
	return is_pmd_mapped(s, (uint64_t)(uintptr_t)slot);
}

static int setup(char *p, size_t len, int uffd)
{
	if (madvise(p, len, MADV_HUGEPAGE) || madvise(p, len, MADV_DONTFORK))
		return -errno;
	return thp_uffd_register(uffd, (uint64_t)(uintptr_t)p, len, UFFDIO_REGISTER_MODE_WP);
}

/*
 * Empty a slot so that a THP can be moved into it again.  A zap frees a
 * PMD-mapped THP with its page table, but 4 KiB pages leave their page
 * table behind, and a MOVE into a page table splits the THP (docs/KERNEL.md,
 * *MOVE and page tables*): such
 * a slot is mapped afresh (unregistered first, so no event is raised).
 */
void slot_zap(struct thpswap_session *s, char *slot)
{
	struct scratch *sc = &s->sc;
	int uffd = slot_index(sc, slot) < sc->npool ? s->suffd : sc->uffd;
	uint64_t a = (uint64_t)(uintptr_t)slot;

	if (is_thp(s, slot) || uffd < 0) {
		madvise(slot, REGION, MADV_DONTNEED);
		return;
	}
	thp_uffd_unregister(uffd, a, REGION);
	if (mmap(slot, REGION, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED ||
	    setup(slot, REGION, uffd))
		/* Unusable for a THP now; restores through it fall back. */
		ctr_add(s, THP_C_FALLBACK_4K, 1);
}

int slot_fill(struct thpswap_session *s, char *slot)
{
	/* One write faults in a whole zeroed THP (the VMA is MADV_HUGEPAGE). */
	*(volatile char *)slot = 0;
	if (is_thp(s, slot))
		return 0;
	/* No huge page to be had (fragmented or THP off): a PTE-mapped slot
	 * would be split by MOVE; give it back. */
	slot_zap(s, slot);
	return -ENOMEM;
}

/* The pool an idle client keeps: 1 % of its managed memory. */
static unsigned pool_floor(struct thpswap_session *s)
{
	uint64_t regions = atomic_load_explicit(&s->hdr->ctr[THP_C_REGIONS], memory_order_relaxed);

	return regions / 100 < s->sc.pool_max ? (unsigned)(regions / 100) : s->sc.pool_max;
}

/* A restore or an eviction goes through the pool: keep all of it.  Lock
 * held. */
static void pool_busy(struct scratch *sc)
{
	atomic_store_explicit(&sc->busy_ns, now_ns(), memory_order_relaxed);
	sc->target_full = sc->pool_max;
}

int scratch_init(struct thpswap_session *s, unsigned pool, unsigned staging, uint64_t idle_ns)
{
	struct scratch *sc = &s->sc;
	size_t len;
	int r;

	sc->uffd = -1;
	/* Pool slots beyond the target: every staging slot empties into one. */
	sc->npool = pool + staging;
	sc->nslots = sc->npool + staging + 1; /* the last: the probe */
	sc->pool_max = pool;
	sc->idle_ns = idle_ns;
	/* Nothing pre-faulted: the first restore or eviction fills it. */
	sc->target_full = 0;
	len = (size_t)sc->nslots * REGION;
	sc->base = thp_mmap_aligned(len, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
	if (sc->base == MAP_FAILED) {
		sc->base = NULL;
		return -errno;
	}
	/* Adopted, its slots' MOVEs would fault on the fault thread itself. */
	r = own_note(s, sc->base, len);
	if (r) {
		munmap(sc->base, len);
		sc->base = NULL;
		return r;
	}
	r = setup(sc->base, (size_t)sc->npool * REGION, s->suffd);
	if (r)
		goto fail;
	r = setup(slot_at(sc, sc->npool), (size_t)(staging + 1) * REGION, s->uffd);
	if (r)
		goto fail;
	sc->uffd = s->uffd;
	sc->st = own_alloc(s, sc->nslots);
	if (!sc->st) {
		r = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&sc->lock, NULL);
	pthread_cond_init(&sc->cond, NULL);
	sc->nempty = sc->npool;
	/* Never filled: a MOVE out of it fails, after the events check. */
	sc->probe = slot_at(sc, sc->nslots - 1);
	sc->st[sc->nslots - 1] = SLOT_BUSY;
	return 0;
fail:
	scratch_fini(s);
	return r;
}

void scratch_fini(struct thpswap_session *s)
{
	struct scratch *sc = &s->sc;
	size_t stage_len = (size_t)(sc->nslots - sc->npool) * REGION;

	if (!sc->base)
		return;
	/* Unregistered first: unmapping it would wait for an UNMAP event to
	 * be read, and the fault thread has stopped. */
	if (sc->uffd >= 0)
		thp_uffd_unregister(sc->uffd, (uint64_t)(uintptr_t)slot_at(sc, sc->npool), stage_len);
	own_forget(s, sc->base);
	munmap(sc->base, (size_t)sc->nslots * REGION);
	if (sc->st) {
		pthread_mutex_destroy(&sc->lock);
		pthread_cond_destroy(&sc->cond);
	}
	own_free(s, sc->st);
	sc->st = NULL;
	sc->base = NULL;
}

/* A pool slot in state @kind, made BUSY; -1 if none.  Lock held. */
static long take_locked(struct scratch *sc, uint8_t kind)
{
	for (unsigned i = 0; i < sc->npool; i++)
		if (sc->st[i] == kind) {
			sc->st[i] = SLOT_BUSY;
			if (kind == SLOT_FULL)
				sc->nfull--;
			else
				sc->nempty--;
			return i;
		}
	return -1;
}

char *slot_get(struct thpswap_session *s, bool want_full, bool *full)
{
	struct scratch *sc = &s->sc;
	long i;
	bool got_full;

	pthread_mutex_lock(&sc->lock);
	pool_busy(sc);
	for (;;) {
		uint8_t first = want_full ? SLOT_FULL : SLOT_EMPTY;
		uint8_t second = want_full ? SLOT_EMPTY : SLOT_FULL;

		if ((i = take_locked(sc, first)) >= 0) {
			got_full = want_full;
			break;
		}
		if ((i = take_locked(sc, second)) >= 0) {
			got_full = !want_full;
			break;
		}
		/* Every slot is in use by an eviction or a restore. */
		pthread_cond_wait(&sc->cond, &sc->lock);
	}
	pthread_mutex_unlock(&sc->lock);
	if (got_full && !want_full) {
		slot_zap(s, slot_at(sc, i));
		got_full = false;
	}
	*full = got_full;
	return slot_at(sc, i);
}

void slot_put(struct thpswap_session *s, char *slot, bool full)
{
	struct scratch *sc = &s->sc;
	unsigned i = slot_index(sc, slot);

	pthread_mutex_lock(&sc->lock);
	if (full && sc->nfull >= sc->target_full) {
		pthread_mutex_unlock(&sc->lock);
		slot_zap(s, slot);
		full = false;
		pthread_mutex_lock(&sc->lock);
	}
	sc->st[i] = full ? SLOT_FULL : SLOT_EMPTY;
	if (full)
		sc->nfull++;
	else
		sc->nempty++;
	pthread_cond_broadcast(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
}

char *stage_get(struct thpswap_session *s)
{
	struct scratch *sc = &s->sc;
	char *slot = NULL;

	pthread_mutex_lock(&sc->lock);
	while (!slot) {
		for (unsigned i = sc->npool; i < sc->nslots && !slot; i++)
			if (sc->st[i] == SLOT_EMPTY) {
				sc->st[i] = SLOT_BUSY;
				slot = slot_at(sc, i);
			}
		if (!slot)
			pthread_cond_wait(&sc->cond, &sc->lock);
	}
	pthread_mutex_unlock(&sc->lock);
	return slot;
}

void stage_put(struct thpswap_session *s, char *stage, bool keep)
{
	struct scratch *sc = &s->sc;
	uint64_t a = (uint64_t)(uintptr_t)stage;

	if (is_thp(s, stage)) {
		bool full;
		char *p = slot_get(s, false, &full);

		/* On the scratch uffd: its destination is there, and it has
		 * no events to wait for. */
		full = thp_uffd_move(s->suffd, (uint64_t)(uintptr_t)p, a, REGION, 0, NULL) == 0 &&
		       keep && is_thp(s, p);
		if (!full)
			slot_zap(s, p);
		slot_put(s, p, full);
	}
	/* 4 KiB pages (a partial put back), swap entries among them, are
	 * dropped with their page table.  Never MOVE an empty range with
	 * holes allowed: the kernel gives both sides a page table first. */
	if (thp_pagemap_count_there(s->pagemap, a, a + REGION) != 0)
		slot_zap(s, stage);
	pthread_mutex_lock(&sc->lock);
	sc->st[slot_index(sc, stage)] = SLOT_EMPTY;
	pthread_cond_broadcast(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
}

void scratch_refill(struct thpswap_session *s)
{
	struct scratch *sc = &s->sc;

	for (;;) {
		long i;
		int r;

		pthread_mutex_lock(&sc->lock);
		if (sc->nfull >= sc->target_full || (i = take_locked(sc, SLOT_EMPTY)) < 0) {
			pthread_mutex_unlock(&sc->lock);
			return;
		}
		pthread_mutex_unlock(&sc->lock);
		r = slot_fill(s, slot_at(sc, i));
		slot_put(s, slot_at(sc, i), r == 0);
		if (r)
			return; /* no huge pages now; try again on the next kick */
	}
}

/* Publish what the agent holds resident (THP_C_AGENT_BYTES): a
 * PAGEMAP_SCAN of its own ranges, a few microseconds. */
static void count_agent_bytes(struct thpswap_session *s)
{
	atomic_store(&s->hdr->ctr[THP_C_AGENT_BYTES], own_resident(s));
}

uint64_t scratch_trim(struct thpswap_session *s)
{
	struct scratch *sc = &s->sc;
	uint64_t now = now_ns(), idle;
	unsigned floor = pool_floor(s);
	long i;

	pthread_mutex_lock(&sc->lock);
	idle = now - atomic_load_explicit(&sc->busy_ns, memory_order_relaxed);
	if (sc->target_full > floor && idle < sc->idle_ns) {
		pthread_mutex_unlock(&sc->lock);
		/* Looked at again within a second: the gauge follows refills. */
		count_agent_bytes(s);
		return sc->idle_ns - idle < 1000000000ull ? sc->idle_ns - idle : 1000000000ull;
	}
	sc->target_full = floor;
	while (sc->nfull > sc->target_full && (i = take_locked(sc, SLOT_FULL)) >= 0) {
		pthread_mutex_unlock(&sc->lock);
		slot_zap(s, slot_at(sc, i));
		pthread_mutex_lock(&sc->lock);
		sc->st[i] = SLOT_EMPTY;
		sc->nempty++;
	}
	pthread_cond_broadcast(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
	count_agent_bytes(s);
	return 0;
}
