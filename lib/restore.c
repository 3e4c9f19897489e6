/* SPDX-License-Identifier: MIT */
/*
 * Restore: bring a region back as one PMD-mapped THP.  An all-zero region
 * comes back as the huge zero page on a read fault (nothing allocated until
 * written) or as a zeroed pool THP on a write; a stored one is decompressed
 * into a pool THP and moved in.  The MOVE wakes every thread waiting on the
 * region (the kernel re-checks the page table for later ones).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "hash.h"
#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "samples.h"
#include "uffd.h"

/*
 * Record @i's stored bytes, checked as every reader of them checks: a blob
 * that parses into @v, and a raw blob that matches its checksum (bytes read
 * from the file tier were checked against it there).  NULL: they fail, and
 * the region must be poisoned.
 */
static const char *stored_blob(struct thpswap_session *s, uint32_t i, struct thp_blob_view *v)
{
	const struct thp_record *r = &s->rec[i];
	uint32_t len = r->stored_len;
	const char *blob = len <= THP_SLOT_SIZE ? rec_stored_bytes(s, i, len) : NULL;

	if (!blob || thp_blob_view(blob, len, v))
		return NULL;
	if (v->codec == THP_CODEC_NONE && !(rec_flags(r) & THP_RF_FILE) &&
	    thp_hash64(blob, len) != r->checksum)
		return NULL;
	return blob;
}

/* Decompress record @i into @buf with its pending zaps applied (fork.c and
 * remap.c copy evicted regions to where the kernel wants them); false when
 * its bytes fail the checks restore_ram makes, and must be poisoned. */
bool decode_record(struct thpswap_session *s, uint32_t i, char *buf)
{
	struct thp_blob_view v;
	uint64_t m[8];

	if (!stored_blob(s, i, &v))
		return false;
	for (unsigned f = 0; f < v.nframes; f++)
		if (thp_codec_decompress_frame(s->fault_codec, &v, f, buf))
			return false;
	for (int w = 0; w < 8; w++)
		m[w] = atomic_load(&s->zap[i][w]);
	zap_apply(buf, m);
	return true;
}

/* Checked before the wake, repaired after it (collapse takes ~0.4 ms).
 * @evicted: a restore of an evicted region, counted in restores_pmd. */
static void repair_pmd(struct thpswap_session *s, struct thp_record *r, uint64_t addr, bool evicted)
{
	/* The kernel maps no THP into a VMA that takes none (MADV_NOHUGEPAGE
	 * since the eviction): in 4 KiB pages it stays, and comes back so. */
	if (takes_no_thp(addr)) {
		__atomic_store_n(&r->kind, THP_KIND_NOHUGE, __ATOMIC_RELAXED);
		ctr_add(s, THP_C_FALLBACK_4K, 1);
		return;
	}
	/* Moved in but split (a leftover page table at the destination). */
	if (madvise((void *)(uintptr_t)addr, REGION, MADV_COLLAPSE) == 0 && is_pmd_mapped(s, addr)) {
		ctr_add(s, THP_C_SPLIT_REPAIRED, 1);
		if (evicted)
			ctr_add(s, THP_C_RESTORES_PMD, 1);
	} else {
		ctr_add(s, THP_C_SPLIT_LEFT, 1);
	}
}

/*
 * Give back a slot whose bytes went in.  A restore in 4 KiB pages copied
 * them (move_in), so the slot still holds them: a THP goes back to the pool
 * (a restore overwrites or zeroes what it takes), 4 KiB pages are dropped
 * with their page table; a slot taken as empty must be empty.
 */
static void slot_done(struct thpswap_session *s, char *slot)
{
	uint64_t a = (uint64_t)(uintptr_t)slot;
	bool thp = false;

	if (thp_pagemap_count_there(s->pagemap, a, a + REGION) != 0) {
		thp = is_pmd_mapped(s, a);
		if (!thp)
			slot_zap(s, slot);
	}
	slot_put(s, slot, thp);
}
static int poison(struct thpswap_session *s, uint32_t idx);

static int finish(struct thpswap_session *s, uint32_t idx, char *slot, uint32_t back_state,
		  uint64_t t0, enum thp_hist h)
{
	struct thp_record *r = &s->rec[idx];
	int rc = move_in(s, idx, (uint64_t)(uintptr_t)slot, 0);
	/* restores count regions brought back from eviction, not first
	 * touches of memory never evicted (EMPTY, or zapped while resident). */
	bool evicted = back_state == THP_ST_RAM || back_state == THP_ST_ZERO;
	uint32_t stored;
	bool pmd;

	samples_stamp(s, SR_MOVED);
	if (rc) {
		slot_zap(s, slot);
		slot_put(s, slot, false);
		/* No memory to move it in with: the faulter gets SIGBUS, as
		 * for bytes that do not decode, rather than fault forever. */
		if (rc == -ENOMEM && !region_gone(s, idx))
			return poison(s, idx);
		/* Region gone or unusable: leave the record as it was. */
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
	/* Before the wake, as every counter of the restore: the flag goes
	 * with the file's range, after it (slot_punch). */
	if (stored && (rec_flags(r) & THP_RF_FILE))
		ctr_add(s, THP_C_FILE_RESTORED, 1);
	samples_restore_done(s, rec_addr(r), back_state, pmd);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
	hist_add(s, h, now_ns() - t0);
	/* Off the faulter's path from here on. */
	if (stored) {
		slot_punch(s, idx);
		__atomic_and_fetch(&r->flags, ~THP_RF_PUNCHING, __ATOMIC_RELEASE);
	}
	slot_done(s, slot);
	/* In 4 KiB pages on purpose: its mapping takes no THP. */
	if (!pmd && !restores_in_pages(r))
		repair_pmd(s, r, rec_addr(r), evicted);
	agent_kick_refill(s);
	return 0;
}

static int restore_zero(struct thpswap_session *s, uint32_t idx, bool write, uint32_t back_state,
			uint64_t t0)
{
	bool full;
	char *slot = slot_get(s, write, &full);
	samples_pool(s, full || !write);
	if (write || full) {
		if (full) {
			memset(slot, 0, REGION);
		} else {
			ctr_add(s, THP_C_POOL_MISS, 1);
			if (slot_fill(s, slot))
				ctr_add(s, THP_C_FALLBACK_4K, 1); /* no THP to be had: 4 KiB pages */
			samples_pool(s, false); /* the fault that filled it was the zeroing */
		}
	} else {
		/* A read fault here maps the huge zero page; MOVE carries it. */
		(void)*(volatile char *)slot;
	}
	samples_stamp(s, SR_DATA);
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
	struct thp_blob_view v;
	bool full;
	char *slot;
	int rc = 0;

	if (!stored_blob(s, idx, &v))
		return poison(s, idx);
	slot = slot_get(s, true, &full);
	if (!full) {
		ctr_add(s, THP_C_POOL_MISS, 1);
		if (slot_fill(s, slot))
			ctr_add(s, THP_C_FALLBACK_4K, 1); /* decompress into 4 KiB pages */
	}
	samples_pool(s, full);
	/* Only the fault thread restores (s->help describes one restore). */
	if (v.nframes > 1 && s->nworkers > 1) {
		rc = decompress_parallel(s, codec, &v, slot);
	} else {
		for (unsigned i = 0; i < v.nframes && !rc; i++)
			rc = thp_codec_decompress_frame(codec, &v, i, slot);
	}
	samples_stamp(s, SR_DATA);
	if (rc) {
		slot_put(s, slot, true);
		return poison(s, idx);
	}
	return finish(s, idx, slot, THP_ST_RAM, t0, THP_H_RAM);
}

/*
 * Restore record @idx, which the caller just moved from @from to RESTORING.
 * The fault thread notes that it owns it (s->restoring, see struct owned):
 * events it reads while its MOVE waits out EAGAIN must not wait for this
 * record (it would wait for itself).
 */
static int restore_owned(struct thpswap_session *s, uint32_t idx, uint32_t from, bool write,
			 struct thp_codec *codec, uint64_t t0)
{
	struct owned own = { .idx = idx };
	int rc;

	s->restoring = &own;
	rc = from == THP_ST_RAM ? restore_ram(s, idx, codec, t0)
				: restore_zero(s, idx, write, from, t0);
	s->restoring = NULL;
	if (own.gone)
		rt_release(s, idx);
	return rc;
}

/*
 * A fault on a region we consider resident: the application zapped some or
 * all of it (MADV_DONTNEED/FREE), which reads as zeros.  A zero page goes in
 * only while we own the record (RESTORING): a fault message read late may
 * name a page of a region that an eviction starts to move out right after
 * we looked, and a zero page put into the emptied region would stay there,
 * in front of the bytes the restore moves back (MOVE and COPY leave present
 * pages alone).  Owning it keeps the eviction out until the page is in.
 * 1: the record is not RESIDENT any more; look again.
 */
static int fault_on_resident(struct thpswap_session *s, uint32_t idx, uint64_t fault_addr,
			     bool write, uint64_t t0)
{
	struct thp_record *r = &s->rec[idx];
	uint64_t page = fault_addr & ~(THP_PAGE_SIZE - 1);
	int rc;

	/* Raced: it is there (a swap entry too: a fault read late, and the
	 * faulter's next touch is the kernel's swap-in). */
	if (thp_pagemap_count_there(s->pagemap, page, page + THP_PAGE_SIZE) > 0)
		return thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
	if (!rec_cas(s, r, THP_ST_RESIDENT, THP_ST_RESTORING))
		return 1;
	rzap_landed(s, idx, rec_addr(r), page);
	if (thp_pagemap_count_there(s->pagemap, rec_addr(r), rec_addr(r) + REGION) == 0) {
		/* Wholly empty: a zap of it has landed, none is in flight. */
		rzap_clear(s, idx);
		return restore_owned(s, idx, THP_ST_RESIDENT, write, NULL, t0);
	}
	/* A hole in a split region: a 4 KiB zero page (a write then COWs it). */
	ctr_add(s, THP_C_FALLBACK_4K, 1);
	rc = thp_uffd_zeropage(s->uffd, page, THP_PAGE_SIZE, 0, NULL);
	/* Given back before any event is handled: a FORK handler would wait
	 * for the record (and this is the thread that handles it). */
	rec_set(s, r, THP_ST_RESIDENT);
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

	samples_restore_start(s, t0, write);
	/* Only the value matters (the daemon's policy reads it); a late
	 * fault may stamp a record that is being reused meanwhile. */
	__atomic_store_n(&r->last_fault_ns, t0, __ATOMIC_RELAXED);
	for (;;) {
		uint32_t st = rec_state(r);

		switch (st) {
		case THP_ST_RESIDENT: {
			int rc = fault_on_resident(s, idx, fault_addr, write, t0);

			if (rc == 1)
				break; /* an eviction took it meanwhile */
			return rc;
		}
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
			if (thp_pagemap_count_there(s->pagemap, page, page + THP_PAGE_SIZE) > 0)
				return thp_uffd_wake(s->uffd, page, THP_PAGE_SIZE);
			/* The evictor moves it back (or stores it) and wakes us. */
			if (rec_cas(s, r, st, THP_ST_CANCEL))
				return 0;
			break;
		case THP_ST_CANCEL:
		case THP_ST_RESTORING:
			return 0; /* its owner wakes the faulter */
		case THP_ST_POISONED:
			/* A page the region's poisoning missed (EEXIST then, or
			 * EAGAIN): this one, so that the faulter, woken by our
			 * caller, gets its SIGBUS instead of faulting forever. */
			thp_uffd_poison(s->uffd, page, THP_PAGE_SIZE);
			return -EBADMSG;
		default:
			thp_uffd_wake(s->uffd, fault_addr & ~(THP_PAGE_SIZE - 1), THP_PAGE_SIZE);
			return -ENOENT;
		}
	}
}
