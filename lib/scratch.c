/* SPDX-License-Identifier: MIT */
/*
 * Scratch slots: 2 MiB-aligned slots in one area that serve both as staging
 * (an evicted THP is moved here, compressed, then kept or zapped) and as the
 * pool of pre-faulted THPs that restores decompress into.
 *
 * The area is MADV_DONTFORK (a fork would make its folios shared and every
 * MOVE out of it EBUSY, kernel-facts §7.3) and registered MODE_WP on the
 * scratch uffd, which has no events: touching a slot allocates like normal
 * memory, zapping one raises nothing, and MOVE accepts it as destination.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "pagemap.h"
#include "uffd.h"

static unsigned slot_index(struct scratch *sc, char *slot)
{
	return (unsigned)((slot - sc->base) / REGION);
}

void slot_zap(char *slot)
{
	madvise(slot, REGION, MADV_DONTNEED);
}

int slot_fill(struct thpswap_session *s, char *slot)
{
	long huge;

	/* One write faults in a whole zeroed THP (the VMA is MADV_HUGEPAGE). */
	*(volatile char *)slot = 0;
	huge = thp_pagemap_count_pmd(s->pagemap, (uint64_t)(uintptr_t)slot,
				     (uint64_t)(uintptr_t)slot + REGION);
	if (huge == 1)
		return 0;
	/* No huge page to be had (fragmented or THP off): a PTE-mapped slot
	 * would be split by MOVE; give it back. */
	slot_zap(slot);
	return huge < 0 ? (int)huge : -ENOMEM;
}

int scratch_init(struct thpswap_session *s, unsigned pool, unsigned staging)
{
	struct scratch *sc = &s->sc;
	size_t len;
	char *p;
	int r;

	sc->nslots = pool + staging;
	sc->target_full = pool;
	len = (size_t)sc->nslots * REGION;
	p = mmap(NULL, len + REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	sc->base = (char *)(((uintptr_t)p + REGION - 1) & ~(uintptr_t)(REGION - 1));
	if (sc->base > p)
		munmap(p, (size_t)(sc->base - p));
	munmap(sc->base + len, (size_t)(p + REGION - sc->base));
	if (madvise(sc->base, len, MADV_HUGEPAGE) || madvise(sc->base, len, MADV_DONTFORK)) {
		r = -errno;
		goto fail;
	}
	r = thp_uffd_register(s->suffd, (uint64_t)(uintptr_t)sc->base, len, UFFDIO_REGISTER_MODE_WP);
	if (r)
		goto fail;
	sc->st = calloc(sc->nslots, 1);
	if (!sc->st) {
		r = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&sc->lock, NULL);
	pthread_cond_init(&sc->cond, NULL);
	sc->nempty = sc->nslots;
	for (unsigned i = 0; i < pool; i++) {
		if (slot_fill(s, sc->base + (size_t)i * REGION) == 0) {
			sc->st[i] = SLOT_FULL;
			sc->nfull++;
			sc->nempty--;
		}
	}
	return 0;
fail:
	munmap(sc->base, len);
	sc->base = NULL;
	return r;
}

void scratch_fini(struct scratch *sc)
{
	if (!sc->base)
		return;
	munmap(sc->base, (size_t)sc->nslots * REGION);
	free(sc->st);
	pthread_mutex_destroy(&sc->lock);
	pthread_cond_destroy(&sc->cond);
	sc->base = NULL;
}

static long take_locked(struct scratch *sc, uint8_t kind)
{
	for (unsigned i = 0; i < sc->nslots; i++)
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
		slot_zap(sc->base + (size_t)i * REGION);
		got_full = false;
	}
	*full = got_full;
	return sc->base + (size_t)i * REGION;
}

void slot_put(struct thpswap_session *s, char *slot, bool full)
{
	struct scratch *sc = &s->sc;
	unsigned i = slot_index(sc, slot);

	pthread_mutex_lock(&sc->lock);
	if (full && sc->nfull >= sc->target_full) {
		pthread_mutex_unlock(&sc->lock);
		slot_zap(slot);
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
		r = slot_fill(s, sc->base + (size_t)i * REGION);
		slot_put(s, sc->base + (size_t)i * REGION, r == 0);
		if (r)
			return; /* no huge pages now; try again on the next kick */
	}
}
