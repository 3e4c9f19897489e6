/* SPDX-License-Identifier: MIT */
/*
 * Eviction of one region: MOVE its THP out to a staging slot (the region is
 * now empty: any touch faults and waits for us), store the staged bytes
 * (nothing, zstd frames, or raw), and commit with a CAS.  A fault that
 * arrives meanwhile flips the record to CANCEL; the evictor then moves the
 * THP back, which wakes the faulters.  See internal.h for the state machine.
 */
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "uffd.h"

static bool cancelled(void *arg)
{
	return rec_state(arg) == THP_ST_CANCEL;
}

/* pwrite all of it; tmpfs writes are short only on errors. */
static int store(struct thpswap_session *s, uint32_t idx, const char *buf, size_t len)
{
	off_t off = (off_t)thp_arena_slot_off(s->hdr, idx);

	while (len) {
		ssize_t n = pwrite(s->arena_fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/*
 * Put the staged THP back into its region and make the record RESIDENT,
 * then wake whoever faulted meanwhile.  The state is set only after the
 * MOVE: a fault thread that saw RESIDENT with the region empty would
 * zero-fill it.
 */
static void move_back(struct thpswap_session *s, struct thp_record *r, char *slot)
{
	uint32_t idx = (uint32_t)(r - s->rec);
	int rc = move_in(s, idx, (uint64_t)(uintptr_t)slot);

	if (rc && rc != -EEXIST) {
		/* The region is gone (unmapped) or unusable: nothing to keep. */
		slot_zap(slot);
	}
	rec_set(s, r, THP_ST_RESIDENT);
	became_resident(s, idx);
	thp_uffd_wake(s->uffd, r->addr, REGION);
}

/*
 * The region was split under us (a zap landed between the PMD check and
 * the MOVE) and only its first @len bytes left: put exactly those back,
 * retrying while events are pending, before the slot is zapped.
 */
static void put_back_part(struct thpswap_session *s, uint64_t addr, char *slot, uint64_t len)
{
	for (uint64_t off = 0; off < len;) {
		int64_t done = 0;
		int rc = thp_uffd_move(s->uffd, addr + off, (uint64_t)(uintptr_t)slot + off, len - off,
				       UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done);

		if (done > 0)
			off += (uint64_t)done;
		else if (rc == -EAGAIN)
			sched_yield(); /* the fault thread reads the pending event */
		else if (rc)
			return; /* the region is gone */
		else
			off = len;
	}
}

/* Back out before anything left the region (it is still present). */
static void undo_evicting(struct thpswap_session *s, struct thp_record *r)
{
	if (!rec_cas(s, r, THP_ST_EVICTING, THP_ST_RESIDENT)) {
		/* A fault flipped it to CANCEL: it raced with us, wake it. */
		rec_set(s, r, THP_ST_RESIDENT);
		thp_uffd_wake(s->uffd, r->addr, REGION);
	}
	/* Zaps noted meanwhile landed on the memory that never left. */
	became_resident(s, (uint32_t)(r - s->rec));
}

/*
 * MOVE refuses pages that are not exclusive (EBUSY): after a fork they stay
 * so until written, even once the child is gone (§7.1).  If pagemap says
 * the THP is mapped by us alone, one atomic write (of the value already
 * there) makes the kernel reuse it as exclusive, without a copy or a split.
 * While a child still maps it, evicting would free nothing: refuse.
 */
static bool unshare_after_fork(struct thpswap_session *s, uint64_t addr)
{
	uint64_t pm;

	if (pread(s->pagemap, &pm, sizeof(pm), (off_t)(addr / THP_PAGE_SIZE * 8)) != sizeof(pm) ||
	    !(pm & (1ull << 63)) || !(pm & (1ull << 56)))
		return false; /* not present, or still mapped by another process */
	__atomic_fetch_add((volatile char *)(uintptr_t)addr, 0, __ATOMIC_RELAXED);
	return true;
}

enum evict_result evict_region(struct thpswap_session *s, uint32_t idx,
			       struct thp_codec *codec, char *buf, uint64_t *bytes_in,
			       uint64_t *bytes_stored)
{
	struct thp_record *r = &s->rec[idx];
	const struct thp_arena_config *cfg = &s->hdr->cfg;
	uint64_t t0 = now_ns(), addr;
	uint32_t new_state;
	long len = 0;
	int64_t moved = 0;
	bool full;
	char *slot;
	int rc;

	if (!rec_cas(s, r, THP_ST_RESIDENT, THP_ST_EVICTING))
		return EV_SKIPPED;
	addr = r->addr;
	/* Checked after the CAS: unregister sets the flag, then waits for us.
	 * A REMOVE read while the region was resident may not have zapped yet:
	 * moved out first, its zap would land on the empty region and the old
	 * bytes would come back.  The reader stamps the time before it looks
	 * at the state, so one of us sees the other. */
	if ((rec_flags(r) & THP_RF_LEAVING) ||
	    now_ns() - atomic_load(&s->zap_resident_ns[idx]) < 1000000000ull) {
		undo_evicting(s, r);
		return EV_SKIPPED;
	}

	/* MOVE of a PTE-mapped range would split the folio (§7.1): only whole
	 * PMDs leave; a split region is collapsed first if the kernel can. */
	if (thp_pagemap_count_pmd(s->pagemap, addr, addr + REGION) != 1) {
		if (madvise((void *)(uintptr_t)addr, REGION, MADV_COLLAPSE) ||
		    thp_pagemap_count_pmd(s->pagemap, addr, addr + REGION) != 1) {
			__atomic_or_fetch(&r->flags, THP_RF_SPLIT, __ATOMIC_RELEASE);
			undo_evicting(s, r);
			return EV_SKIPPED;
		}
		__atomic_and_fetch(&r->flags, ~THP_RF_SPLIT, __ATOMIC_RELEASE);
	}

	slot = slot_get(s, false, &full);
	rc = thp_uffd_move(s->suffd, (uint64_t)(uintptr_t)slot, addr, REGION, 0, &moved);
	if (rc == -EBUSY && moved <= 0 && unshare_after_fork(s, addr)) /* .move = -errno */
		rc = thp_uffd_move(s->suffd, (uint64_t)(uintptr_t)slot, addr, REGION, 0, &moved);
	if (rc) {
		if (rc == -EBUSY)
			ctr_add(s, THP_C_EVICT_REFUSED, 1); /* shared after fork, or pinned */
		if (moved > 0)
			put_back_part(s, addr, slot, (uint64_t)moved);
		slot_zap(slot);
		slot_put(s, slot, false);
		undo_evicting(s, r);
		/* Shared with a fork child (counted as refused) is expected:
		 * evicting it would free nothing while the child maps it. */
		return EV_SKIPPED;
	}

	/* The region is empty now; from here on nothing can be lost. */
	if (thp_is_zero(slot, REGION)) {
		new_state = THP_ST_ZERO;
	} else {
		size_t cap = sizeof(struct thp_blob) + (size_t)cfg->max_stored_pct * REGION / 100;

		len = thp_codec_compress(codec, slot, buf, cap, cfg->frames, cancelled, r);
		if (len == -ENOSPC && cfg->incompressible == THP_INCOMP_RAW)
			len = thp_codec_store_raw(slot, buf, THP_SLOT_SIZE);
		if (len == -ENOSPC) {
			__atomic_or_fetch(&r->flags, THP_RF_INCOMPRESSIBLE, __ATOMIC_RELEASE);
			ctr_add(s, THP_C_EVICT_INCOMPRESSIBLE, 1);
		}
		/* A restore just before us may still be freeing the slot's old
		 * bytes: a punch after our store would wipe it. */
		while (rec_flags(r) & THP_RF_PUNCHING)
			sched_yield();
		if (len < 0 || store(s, idx, buf, (size_t)len)) {
			if (len == -ECANCELED)
				ctr_add(s, THP_C_EVICT_CANCELLED, 1);
			move_back(s, r, slot);
			slot_put(s, slot, false);
			/* A fault winning the race, or data not worth storing, is
			 * normal: only a failed store is a failure. */
			return (len == -ENOSPC || len == -ECANCELED) ? EV_SKIPPED : EV_FAILED;
		}
		new_state = THP_ST_RAM;
		r->stored_len = (uint32_t)len;
		r->codec = ((struct thp_blob *)buf)->codec;
		r->nframes = (uint8_t)((struct thp_blob *)buf)->nframes;
		r->level = (int8_t)cfg->zstd_level;
		r->checksum = r->codec == THP_CODEC_NONE ? thp_hash64(buf, (size_t)len) : 0;
		__atomic_and_fetch(&r->flags, ~THP_RF_INCOMPRESSIBLE, __ATOMIC_RELEASE);
	}
	r->evicted_ns = now_ns();
	r->evictions++;

	if (!rec_cas(s, r, THP_ST_EVICTING, new_state)) {
		/* A fault came in: the record stays the resident copy's. */
		ctr_add(s, THP_C_EVICT_CANCELLED, 1);
		if (len > 0) {
			/* Never counted: just free the slot again. */
			r->stored_len = 0;
			slot_punch(s, idx);
		}
		move_back(s, r, slot);
		slot_put(s, slot, false);
		return EV_SKIPPED;
	}
	if (len > 0) {
		ctr_add(s, THP_C_STORED_BYTES, len);
		ctr_add(s, THP_C_BYTES_IN, (int64_t)REGION);
	}
	ctr_add(s, THP_C_EVICTIONS, 1);
	*bytes_in += REGION;
	*bytes_stored += (uint64_t)(len > 0 ? len : 0);
	slot_put(s, slot, true); /* a THP still: the pool takes it if short */
	ctr_add(s, THP_C_EVICT_NS, (int64_t)(now_ns() - t0));
	hist_add(s, THP_H_EVICT, now_ns() - t0);
	return EV_EVICTED;
}
