/* SPDX-License-Identifier: MIT */
/*
 * Restore: bring a region back as one PMD-mapped THP.  An all-zero region
 * comes back as the huge zero page on a read fault (nothing allocated until
 * written) or as a zeroed pool THP on a write; a stored one is decompressed
 * into a pool THP and moved in.  The MOVE wakes every thread waiting on the
 * region (the kernel re-checks the page table for later ones).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "hash.h"
#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "uffd.h"

/* Events pending on the region uffd make MOVE/COPY fail with EAGAIN and no
 * progress (§3); the fault thread reads them, anyone else lets it. */
static void let_events_drain(struct thpswap_session *s)
{
	ctr_add(s, THP_C_EAGAIN_RETRIES, 1);
	if (agent_is_fault_thread(s))
		agent_drain(s);
	else
		sched_yield();
}

/* The fault thread's restore of @idx lost its region to an event read while
 * it waited out EAGAIN (see rt_remove): whatever is at its address now is
 * not this record's to fill. */
static bool region_gone(struct thpswap_session *s, uint32_t idx)
{
	return agent_is_fault_thread(s) && s->fault_owned == (long)idx && s->fault_owned_gone;
}

/* 4 KiB fallback when no PMD can be installed (prot differs after
 * mprotect, part of the region unmapped): copy page by page, skipping pages
 * that are present already or no longer mapped. */
static int copy_in(struct thpswap_session *s, uint32_t idx, uint64_t src, bool wait)
{
	int copied = 0;

	ctr_add(s, THP_C_FALLBACK_4K, 1);
	for (uint64_t off = 0; off < REGION;) {
		uint64_t dst;
		int rc;

		/* Once part of it is in, the rest must follow: wait. */
		if (!events_hold(s, wait || copied > 0))
			return -EDEADLK;
		if (region_gone(s, idx)) {
			events_release(s);
			return -ESTALE;
		}
		dst = rec_addr(&s->rec[idx]);
		rc = thp_uffd_copy(s->uffd, dst + off, src + off, THP_PAGE_SIZE,
				   UFFDIO_COPY_MODE_DONTWAKE, NULL);
		events_release(s);
		if (rc == -EAGAIN) {
			let_events_drain(s);
			continue;
		}
		if (rc == 0)
			copied++;
		else if (rc != -EEXIST && rc != -ENOENT)
			return rc;
		off += THP_PAGE_SIZE;
	}
	return copied ? 0 : -ENOENT;
}

int move_in(struct thpswap_session *s, uint32_t idx, uint64_t src, bool wait)
{
	uint64_t dst, off = 0, m[8];

	for (;;) {
		int64_t moved = 0;
		int rc;

		/* Held, no event is read: a zap is either noted before the
		 * take (and zeroed in the slot) or lands after the MOVE. */
		if (!events_hold(s, wait || off > 0))
			return -EDEADLK;
		if (region_gone(s, idx)) {
			events_release(s);
			return -ESTALE;
		}
		/* Read each time: an mremap handled while we waited out EAGAIN
		 * moves the record, and the region, elsewhere. */
		dst = rec_addr(&s->rec[idx]);
		/* Zaps read so far are in the slot now: where they land after
		 * the MOVE they find those zeros, so none is "in flight" for
		 * the evictor; only those read from here on are (rzap). */
		rzap_clear(s, idx);
		if (zap_take(s, idx, m)) {
			/* Pages already moved (off) are resident: their zaps land. */
			for (unsigned w = 0; w < off / THP_PAGE_SIZE / 64 && w < 8; w++)
				m[w] = 0;
			zap_apply((char *)(uintptr_t)src, m);
		}
		rc = thp_uffd_move(s->uffd, dst + off, src + off, REGION - off,
				   UFFDIO_MOVE_MODE_DONTWAKE, &moved);
		events_release(s);
		if (rc == 0)
			return 0;
		if (rc == -EAGAIN && moved > 0) {
			/* Short move: the region had a page table (§7.1); go on. */
			off += (uint64_t)moved;
			continue;
		}
		if (rc == -EAGAIN) {
			let_events_drain(s); /* the zeros stay in the slot */
			continue;
		}
		/* EINVAL: prot or VMA differ (mprotect, part unmapped); EEXIST or
		 * ENOENT: something is already at the destination, or nothing at
		 * the source (a bug).  Page by page fills what is missing. */
		if (rc == -EINVAL || rc == -ENOENT || rc == -EEXIST)
			return copy_in(s, idx, src, wait);
		zap_put_back(s, idx, m); /* the record keeps its pending zaps */
		return rc;
	}
}

void became_resident(struct thpswap_session *s, uint32_t idx)
{
	/* Bits noted between the MOVE and now are for events read after it:
	 * their zaps land on the resident pages. */
	pthread_mutex_lock(&s->zap_lock);
	zap_clear(s, idx);
	pthread_mutex_unlock(&s->zap_lock);
}

/* Checked before the wake, repaired after it (collapse takes ~0.4 ms).
 * @evicted: a restore of an evicted region, counted in restores_pmd. */
static void repair_pmd(struct thpswap_session *s, uint64_t addr, bool evicted)
{
	/* Moved in but split (a leftover page table at the destination). */
	if (madvise((void *)(uintptr_t)addr, REGION, MADV_COLLAPSE) == 0 && is_pmd_mapped(s, addr)) {
		ctr_add(s, THP_C_SPLIT_REPAIRED, 1);
		if (evicted)
			ctr_add(s, THP_C_RESTORES_PMD, 1);
	} else {
		ctr_add(s, THP_C_SPLIT_LEFT, 1);
	}
}

static int finish(struct thpswap_session *s, uint32_t idx, char *slot, uint32_t back_state,
		  uint64_t t0, enum thp_hist h)
{
	struct thp_record *r = &s->rec[idx];
	int rc = move_in(s, idx, (uint64_t)(uintptr_t)slot, false);
	/* restores count regions brought back from eviction, not first
	 * touches of memory never evicted (EMPTY, or zapped while resident). */
	bool evicted = back_state == THP_ST_RAM || back_state == THP_ST_ZERO;
	uint32_t stored;
	bool pmd;

	if (rc) {
		/* Region gone or unusable: leave the record as it was. */
		slot_zap(s, slot);
		slot_put(s, slot, false);
		rec_set(s, r, back_state);
		thp_uffd_wake(s->uffd, rec_addr(r), REGION);
		return rc;
	}
	pmd = is_pmd_mapped(s, rec_addr(r));
	if (pmd && evicted)
		ctr_add(s, THP_C_RESTORES_PMD, 1);
	stored = rec_forget_bytes(s, idx);
	/* The slot's old bytes are freed after the wake; an eviction that
	 * starts meanwhile must not store before they are (evict.c). */
	if (stored)
		__atomic_or_fetch(&r->flags, THP_RF_PUNCHING, __ATOMIC_RELEASE);
	if (evicted)
		r->restores++;
	rec_set(s, r, THP_ST_RESIDENT);
	became_resident(s, idx);
	if (evicted)
		ctr_add(s, THP_C_RESTORES, 1);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
	hist_add(s, h, now_ns() - t0);
	/* Off the faulter's path from here on. */
	if (stored) {
		slot_punch(s, idx);
		__atomic_and_fetch(&r->flags, ~THP_RF_PUNCHING, __ATOMIC_RELEASE);
	}
	slot_put(s, slot, false);
	if (!pmd)
		repair_pmd(s, rec_addr(r), evicted);
	agent_kick_refill(s);
	return 0;
}

static int restore_zero(struct thpswap_session *s, uint32_t idx, bool write, uint32_t back_state,
			uint64_t t0)
{
	bool full;
	char *slot = slot_get(s, write, &full);
	if (write || full) {
		if (full) {
			memset(slot, 0, REGION);
		} else {
			ctr_add(s, THP_C_POOL_MISS, 1);
			if (slot_fill(s, slot))
				ctr_add(s, THP_C_FALLBACK_4K, 1); /* no THP to be had: 4 KiB pages */
		}
	} else {
		/* A read fault here maps the huge zero page; MOVE carries it. */
		(void)*(volatile char *)slot;
	}
	return finish(s, idx, slot, back_state, t0, write ? THP_H_ZERO_WRITE : THP_H_ZERO_READ);
}

static int poison(struct thpswap_session *s, uint32_t idx)
{
	struct thp_record *r = &s->rec[idx];

	/* Never serve wrong bytes: a touch of this region raises SIGBUS. */
	ctr_add(s, THP_C_CORRUPT, 1);
	rec_drop_bytes(s, idx);
	rec_set(s, r, THP_ST_POISONED);
	while (!region_gone(s, idx) && thp_uffd_poison(s->uffd, rec_addr(r), REGION) == -EAGAIN)
		let_events_drain(s);
	return -EBADMSG;
}

static int restore_ram(struct thpswap_session *s, uint32_t idx, struct thp_codec *codec,
		       uint64_t t0)
{
	struct thp_record *r = &s->rec[idx];
	const char *blob = (const char *)s->arena + thp_arena_slot_off(s->hdr, idx);
	struct thp_blob_view v;
	uint32_t len = r->stored_len;
	bool full;
	char *slot;
	int rc = 0;

	if (len > THP_SLOT_SIZE || thp_blob_view(blob, len, &v))
		return poison(s, idx);
	if (v.codec == THP_CODEC_NONE && thp_hash64(blob, len) != r->checksum)
		return poison(s, idx);
	slot = slot_get(s, true, &full);
	if (!full) {
		ctr_add(s, THP_C_POOL_MISS, 1);
		if (slot_fill(s, slot))
			ctr_add(s, THP_C_FALLBACK_4K, 1); /* decompress into 4 KiB pages */
	}
	/* Only the fault thread restores (s->help describes one restore). */
	if (v.nframes > 1 && s->nworkers > 1) {
		rc = decompress_parallel(s, codec, &v, slot);
	} else {
		for (unsigned i = 0; i < v.nframes && !rc; i++)
			rc = thp_codec_decompress_frame(codec, &v, i, slot);
	}
	if (rc) {
		slot_put(s, slot, true);
		return poison(s, idx);
	}
	return finish(s, idx, slot, THP_ST_RAM, t0, THP_H_RAM);
}

/*
 * Restore record @idx, which the caller just moved from @from to RESTORING.
 * The fault thread notes that it owns it: events it reads while its MOVE
 * waits out EAGAIN must not wait for this record (it would wait for itself).
 */
static int restore_owned(struct thpswap_session *s, uint32_t idx, uint32_t from, bool write,
			 struct thp_codec *codec, uint64_t t0)
{
	int rc;

	s->fault_owned = idx;
	s->fault_owned_gone = false;
	rc = from == THP_ST_RAM ? restore_ram(s, idx, codec, t0)
				: restore_zero(s, idx, write, from, t0);
	s->fault_owned = -1;
	if (s->fault_owned_gone)
		rt_release(s, idx);
	return rc;
}

/* A fault on a region we consider resident: the application zapped some or
 * all of it (MADV_DONTNEED/FREE), which reads as zeros. */
static int fault_on_resident(struct thpswap_session *s, uint32_t idx, uint64_t fault_addr,
			     bool write, uint64_t t0)
{
	struct thp_record *r = &s->rec[idx];
	uint64_t page = fault_addr & ~(THP_PAGE_SIZE - 1);
	long present;
	int rc;

	if (thp_pagemap_count_present(s->pagemap, page, page + THP_PAGE_SIZE) > 0)
		return thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE); /* raced: it is there */
	rzap_landed(s, idx, rec_addr(r), page);
	present = thp_pagemap_count_present(s->pagemap, rec_addr(r), rec_addr(r) + REGION);
	if (present == 0 && rec_cas(s, r, THP_ST_RESIDENT, THP_ST_RESTORING)) {
		/* Wholly empty: a zap of it has landed, none is in flight. */
		rzap_clear(s, idx);
		return restore_owned(s, idx, THP_ST_RESIDENT, write, NULL, t0);
	}
	/* A hole in a split region: a 4 KiB zero page (a write then COWs it). */
	ctr_add(s, THP_C_FALLBACK_4K, 1);
	rc = thp_uffd_zeropage(s->uffd, page, THP_PAGE_SIZE, 0, NULL);
	if (rc == -EAGAIN) {
		/* The page may be another region's once the events are read:
		 * the faulter faults again and is looked up afresh. */
		let_events_drain(s);
		return thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
	}
	if (rc == -EEXIST)
		rc = thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
	return rc;
}

int restore_region(struct thpswap_session *s, uint32_t idx, uint64_t fault_addr, bool write,
		   struct thp_codec *codec)
{
	struct thp_record *r = &s->rec[idx];
	uint64_t t0 = now_ns(), page = fault_addr & ~(THP_PAGE_SIZE - 1);

	r->last_fault_ns = t0;
	for (;;) {
		uint32_t st = rec_state(r);

		switch (st) {
		case THP_ST_RESIDENT:
			return fault_on_resident(s, idx, fault_addr, write, t0);
		case THP_ST_EMPTY:
		case THP_ST_ZERO:
		case THP_ST_RAM:
			if (rec_cas(s, r, st, THP_ST_RESTORING))
				return restore_owned(s, idx, st, write, codec, t0);
			break;
		case THP_ST_EVICTING:
			/* A fault read late (its faulter was served meanwhile, or
			 * the address was unmapped and mapped afresh since) names
			 * a page that is there: an eviction that has not moved
			 * the region out yet need not back off.  A real faulter
			 * woken early faults again. */
			if (thp_pagemap_count_present(s->pagemap, page, page + THP_PAGE_SIZE) > 0)
				return thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
			/* The evictor moves it back (or stores it) and wakes us. */
			if (rec_cas(s, r, st, THP_ST_CANCEL))
				return 0;
			break;
		case THP_ST_CANCEL:
		case THP_ST_RESTORING:
			return 0; /* its owner wakes the faulter */
		case THP_ST_POISONED:
			return -EBADMSG;
		default:
			thp_uffd_wake(s->uffd, fault_addr & ~(THP_PAGE_SIZE - 1), THP_PAGE_SIZE);
			return -ENOENT;
		}
	}
}
