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
#include <unistd.h>

#include "hash.h"
#include "internal.h"
#include "kernel-abi.h"
#include "procmap.h"
#include "samples.h"
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

/* The evictor lets the record go: the next one starts afresh. */
static void done_evicting(struct thp_record *r)
{
	__atomic_and_fetch(&r->flags, ~THP_RF_REMOVED, __ATOMIC_RELEASE);
}

/* The record's fields for @len stored bytes in @buf (0: all zero). */
static void describe(struct thp_record *r, const char *buf, long len, int level)
{
	if (len > 0) {
		const struct thp_blob *b = (const struct thp_blob *)buf;

		r->stored_len = (uint32_t)len;
		r->codec = b->codec;
		r->nframes = (uint8_t)b->nframes;
		r->level = (int8_t)(r->codec == THP_CODEC_ZSTD ? level : 0);
		r->checksum = r->codec == THP_CODEC_NONE ? thp_hash64(buf, (size_t)len) : 0;
	}
	r->evicted_ns = now_ns();
	r->evictions++;
}

static void count_eviction(struct thpswap_session *s, long len)
{
	if (len > 0) {
		ctr_add(s, THP_C_STORED_BYTES, len);
		ctr_add(s, THP_C_BYTES_IN, (int64_t)REGION);
	}
	ctr_add(s, THP_C_EVICTIONS, 1);
}

/* Store @len bytes of @buf in record @idx's slot, once a restore just
 * before us has freed the slot's old bytes (a punch after our store would
 * wipe it). */
static int store_slot(struct thpswap_session *s, uint32_t idx, const char *buf, long len)
{
	while (rec_flags(&s->rec[idx]) & THP_RF_PUNCHING)
		sched_yield();
	return store(s, idx, buf, (size_t)len);
}

/*
 * The staged THP cannot go back into its region now: the fault thread is
 * handling an event that may be waiting for this record (move_in said
 * -EDEADLK).  Keep it as if evicted, raw (no time to compress: faulters
 * wait); woken, they fault again and restore it.  False if even that fails.
 */
static bool keep_instead(struct thpswap_session *s, struct thp_record *r, char *slot, char *buf)
{
	uint32_t idx = (uint32_t)(r - s->rec), st = THP_ST_ZERO;
	long len = 0;

	if (!thp_is_zero(slot, REGION)) {
		len = thp_codec_store_raw(slot, buf, THP_SLOT_SIZE);
		if (len < 0 || store_slot(s, idx, buf, len))
			return false;
		st = THP_ST_RAM;
	}
	describe(r, buf, len, 0);
	done_evicting(r);
	rec_set(s, r, st); /* from EVICTING or CANCEL: we own it */
	count_eviction(s, len);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
	return true;
}

/*
 * Put the staged THP back into its region and make the record RESIDENT,
 * then wake whoever faulted meanwhile.  The state is set only after the
 * MOVE: a fault thread that saw RESIDENT with the region empty would
 * zero-fill it.  Empties the staging slot.
 */
static void move_back(struct thpswap_session *s, struct thp_record *r, char *slot, char *buf)
{
	uint32_t idx = (uint32_t)(r - s->rec);
	int rc = move_in(s, idx, (uint64_t)(uintptr_t)slot, MOVE_IN_STAGED);

	/* Not all back, and the region is still ours (-ESTALE: an event
	 * took it): what the slot holds is the only copy, kept as the
	 * record; the restore completes what is present. */
	if (rc && rc != -ESTALE && keep_instead(s, r, slot, buf)) {
		stage_put(s, slot, true);
		return;
	}
	/* Storing failed too: wait for the fault thread after all (the
	 * bytes exist nowhere else). */
	if (rc == -EDEADLK)
		rc = move_in(s, idx, (uint64_t)(uintptr_t)slot, MOVE_IN_STAGED | MOVE_IN_WAIT);
	/* Anything else: the region is gone (unmapped) or unusable. */
	stage_put(s, slot, false);
	done_evicting(r);
	rec_set(s, r, THP_ST_RESIDENT);
	became_resident(s, idx);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
}

/* Back out before anything left the region (it is still present). */
static void undo_evicting(struct thpswap_session *s, struct thp_record *r)
{
	done_evicting(r);
	if (!rec_cas(s, r, THP_ST_EVICTING, THP_ST_RESIDENT)) {
		/* A fault flipped it to CANCEL: it raced with us, wake it. */
		rec_set(s, r, THP_ST_RESIDENT);
		thp_uffd_wake(s->uffd, rec_addr(r), REGION);
	}
	/* Zaps noted meanwhile landed on the memory that never left. */
	became_resident(s, (uint32_t)(r - s->rec));
}

/* Have the zaps of every REMOVE read while the region was mapped landed?
 * 0, -ECANCELED (one may still land), -EAGAIN (events being handled). */
static int zap_landed(struct thpswap_session *s, struct thp_record *r)
{
	bool in_flight;

	if (!events_hold(s, false))
		return -EAGAIN;
	in_flight = rzap_in_flight(s, (uint32_t)(r - s->rec), rec_addr(r));
	events_release(s);
	return in_flight ? -ECANCELED : 0;
}

/* Never written: the source of the zeros that fill holes. */
static char zeros[REGION] __attribute__((aligned(4096)));

int evict_note_own(struct thpswap_session *s)
{
	/* It is in our .bss, an anonymous mapping: adopted and evicted, the
	 * kernel's copy from it would fault on the uffd we serve. */
	return own_note(s, zeros, sizeof(zeros));
}

void evict_forget_own(struct thpswap_session *s)
{
	own_forget(s, zeros);
}

/* The region whose holes fill_hole fills. */
struct hole_fill {
	struct thpswap_session *s;
	uint32_t idx;
	uint64_t addr;
};

/* UFFDIO_COPY zeros into the hole [lo, hi) of the region (thp_pagemap_each_hole). */
static int fill_hole(void *arg, uint64_t lo, uint64_t hi)
{
	const struct hole_fill *h = arg;

	/* Nothing there: any zap noted for these pages has landed (and the
	 * zeros we put there are what it left). */
	for (uint64_t p = lo; p < hi; p += THP_PAGE_SIZE)
		rzap_landed(h->s, h->idx, h->addr, p);
	while (lo < hi) {
		int64_t done = 0;
		int rc = thp_uffd_copy(h->s->uffd, lo, (uint64_t)(uintptr_t)zeros, hi - lo, 0, &done);

		if (done > 0)
			lo += (uint64_t)done;
		else if (rc == -EEXIST)
			lo += THP_PAGE_SIZE; /* faulted in meanwhile */
		else if (rc)
			return rc;
		else
			lo = hi;
	}
	return 0;
}

/* Fill every hole of the region at @addr (events held: @addr is where the
 * region is): pages neither present nor in the kernel's swap.  A swapped
 * page is data, and a zap noted for it has not landed yet.  0, -EAGAIN (an
 * event is pending), or -errno. */
static int fill_holes(struct thpswap_session *s, struct thp_record *r, uint64_t addr)
{
	struct hole_fill h = { .s = s, .idx = (uint32_t)(r - s->rec), .addr = addr };

	return thp_pagemap_each_hole(s->pagemap, addr, addr + REGION, fill_hole, &h);
}

/*
 * A resident region that is not one PMD: it has holes (pages
 * MADV_DONTNEED'd, or never touched), zero pages (holes that were read) or
 * a THP split into 4 KiB pages.  MADV_COLLAPSE refuses holes and zero pages
 * in userfaultfd-registered memory (docs/KERNEL.md), so first give every
 * hole a zeroed page (UFFDIO_COPY) and every zero page a page of its own
 * (MADV_POPULATE_WRITE) -- zeros, which is what they read already -- then
 * collapse.  The region stays RESIDENT throughout, so a fault on it is
 * served as usual.  0: one PMD now; 1: no page at all (nothing to move);
 * -EAGAIN: events are being handled; -EFBIG: it cannot be made one PMD.
 */
static int make_whole(struct thpswap_session *s, struct thp_record *r)
{
	uint64_t addr;
	int rc = -EAGAIN;

	for (unsigned tries = 0; rc == -EAGAIN && tries < 64; tries++) {
		if (!events_hold(s, false))
			return -EAGAIN;
		addr = rec_addr(r);
		if (is_pmd_mapped(s, addr)) {
			events_release(s);
			return 0;
		}
		/* Pages in the kernel's swap are data, not holes:
		 * MADV_COLLAPSE below brings them back. */
		if (thp_pagemap_count_there(s->pagemap, addr, addr + REGION) == 0) {
			events_release(s);
			return 1;
		}
		rc = fill_holes(s, r, addr);
		events_release(s);
		if (rc == -EAGAIN)
			sched_yield(); /* the fault thread reads the pending event */
	}
	if (rc == -EAGAIN)
		return -EAGAIN;
	if (rc)
		return -EFBIG; /* ENOENT: part of it is not mapped */
	/* Zero pages become pages of their own without a userfault (the
	 * region is registered for missing pages only); no hold: a page
	 * zapped meanwhile faults to the fault thread like any access. */
	own_zero_pages(s, addr);
	if (madvise((void *)(uintptr_t)addr, REGION, MADV_COLLAPSE) || !is_pmd_mapped(s, addr))
		return -EFBIG;
	ctr_add(s, THP_C_EVICT_FILLED, 1);
	return 0;
}

/* make_whole's answers, and one more: move it out in 4 KiB pages. */
#define WHOLE_PAGES 2

/*
 * What the region is now (enum thp_kind), noted in its record for
 * thpswapctl and for the restore (4 KiB pages where the mapping takes no
 * THP).  Looked at without the events held: a region moved meanwhile is
 * looked at again under the hold by the MOVE that takes it.  A PMD is not
 * asked whether its VMA takes THPs (the question costs an LRU drain, on
 * every eviction): a restore into a VMA that takes none is not mapped as
 * one by the kernel, and the restore notes it then (repair_pmd).
 */
static uint8_t look_at(struct thpswap_session *s, struct thp_record *r)
{
	uint64_t addr = rec_addr(r);
	struct thp_vma v;
	uint8_t kind;
	long n;

	if (is_pmd_mapped(s, addr))
		kind = THP_KIND_PMD;
	else if (s->procmap < 0)
		kind = THP_KIND_UNKNOWN; /* no PROCMAP_QUERY: cannot tell a split */
	else if (thp_procmap_query(s->procmap, addr, false, &v, NULL, 0) || v.start > addr ||
		 v.end < addr + REGION)
		kind = THP_KIND_SPLIT;
	else if ((n = thp_pagemap_count_there(s->pagemap, addr, addr + REGION)) == 0)
		kind = THP_KIND_ZERO;
	else
		kind = n < (long)(REGION / THP_PAGE_SIZE) ? THP_KIND_PARTIAL : THP_KIND_PTE;
	if (kind != THP_KIND_PMD && kind != THP_KIND_SPLIT && kind != THP_KIND_UNKNOWN &&
	    takes_no_thp(addr))
		kind = THP_KIND_NOHUGE;
	__atomic_store_n(&r->kind, kind, __ATOMIC_RELAXED);
	return kind;
}

/*
 * make_whole, for the kind of region it is.  A region whose VMA takes no
 * THP is not made whole (it would only fill its holes): it leaves as it is,
 * a PMD if it is one, else in 4 KiB pages; so does one that no collapse
 * could make whole although its VMA covers it (no THP to be had).  A split
 * one stays -EFBIG: UFFDIO_MOVE takes pages only out of a writable VMA, and
 * the pieces of a region would need a MOVE each, between which a fork can
 * leave part of it in staging and part shared with the child, with neither
 * a put-back nor a commit possible without waiting for the fault thread.
 */
static int make_movable(struct thpswap_session *s, struct thp_record *r)
{
	uint8_t kind = look_at(s, r);
	uint64_t addr = rec_addr(r);
	int rc;

	if (kind == THP_KIND_NOHUGE) {
		if (is_pmd_mapped(s, addr))
			return 0;
		return thp_pagemap_count_there(s->pagemap, addr, addr + REGION) == 0 ? 1 : WHOLE_PAGES;
	}
	rc = make_whole(s, r);
	if (rc == -EFBIG && kind != THP_KIND_SPLIT && kind != THP_KIND_UNKNOWN)
		return WHOLE_PAGES;
	return rc;
}

/*
 * A region (EVICTING, ours) with no page at all reads zeros and holds
 * nothing: it becomes ZERO without a MOVE, and comes back as one THP.  Any
 * access meanwhile faults (and flips it to CANCEL); a page mapped anyway
 * (fork fill, a zap undone) keeps it resident.
 */
static enum evict_result evict_empty(struct thpswap_session *s, struct thp_record *r)
{
	uint64_t addr;
	bool empty;

	if (!events_hold(s, false)) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		undo_evicting(s, r);
		return EV_SKIPPED;
	}
	addr = rec_addr(r);
	/* No MOVE guards this: an mremap whose REMAP is not read yet has
	 * taken the pages away from under the record's address already (a
	 * MOVE would fail with EAGAIN then; ask the same way). */
	empty = !events_pending(s) && thp_pagemap_count_there(s->pagemap, addr, addr + REGION) == 0 &&
		!(rec_flags(r) & THP_RF_REMOVED);
	if (empty) {
		describe(r, NULL, 0, 0);
		done_evicting(r);
		empty = rec_cas(s, r, THP_ST_EVICTING, THP_ST_ZERO);
	}
	events_release(s);
	if (!empty) {
		/* A fault flipped it to CANCEL, a REMOVE was read meanwhile,
		 * or a page appeared: each counted, as a MOVE would be. */
		ctr_add(s, rec_state(r) == THP_ST_CANCEL	    ? THP_C_EVICT_CANCELLED
			   : (rec_flags(r) & THP_RF_REMOVED) ? THP_C_EVICT_ZAP_PENDING
							    : THP_C_EVICT_BUSY, 1);
		undo_evicting(s, r);
		return EV_SKIPPED;
	}
	rzap_clear(s, (uint32_t)(r - s->rec));
	count_eviction(s, 0);
	return EV_EVICTED;
}

/* Not RESIDENT: evicted already or on its way (nothing to count), or a
 * fault owns it for a moment (restore_region): counted as busy. */
static enum evict_result not_resident(struct thpswap_session *s, const struct thp_record *r)
{
	if (rec_state(r) == THP_ST_RESTORING)
		ctr_add(s, THP_C_EVICT_BUSY, 1);
	return EV_SKIPPED;
}

static enum evict_result evict_claimed(struct thpswap_session *s, uint32_t idx,
				       struct thp_codec *codec, char *buf, uint64_t *bytes_in,
				       uint64_t *bytes_stored)
{
	struct thp_record *r = &s->rec[idx];
	const struct thp_arena_config *cfg = &s->hdr->cfg;
	uint64_t t0 = now_ns();
	struct thp_sample sm = { .t[SE_START] = t0 };
	uint32_t new_state = THP_ST_ZERO;
	long len = 0;
	int64_t moved = 0;
	bool unshared = false;
	char *slot;
	int rc, whole;

again:
	if (rec_state(r) != THP_ST_RESIDENT)
		return not_resident(s, r);
	if (rec_flags(r) & THP_RF_PINNED) { /* thpswap_pin waits out an evictor that claimed first */
		ctr_add(s, THP_C_EVICT_REFUSED, 1);
		return EV_SKIPPED;
	}
	if (rec_flags(r) & (THP_RF_LEAVING | THP_RF_ARRIVING)) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		return EV_SKIPPED;
	}
	/* Claimed (THP_RF_EVICTOR): write tracking protects it no more. */
	if (!track_lift(s, idx)) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		return EV_SKIPPED;
	}
	/* Before make_whole fills the holes that landed zaps left. */
	whole = zap_landed(s, r);
	if (whole == 0)
		whole = make_movable(s, r);
	if (whole < 0) {
		ctr_add(s, whole == -EAGAIN	  ? THP_C_EVICT_BUSY
			   : whole == -ECANCELED ? THP_C_EVICT_ZAP_PENDING
						 : THP_C_EVICT_SPLIT, 1);
		return EV_SKIPPED;
	}
	if (!rec_cas(s, r, THP_ST_RESIDENT, THP_ST_EVICTING))
		return not_resident(s, r);
	samples_at(s, &sm, SE_CLAIMED);
	/* Checked after the CAS: unregister sets the flag, then waits for us;
	 * a registration only ever clears ARRIVING, once it is in effect.
	 * (A zap read while resident is checked by move_out: it and the
	 * reader both hold zap_lock, so one of them sees the other.) */
	if (rec_flags(r) & (THP_RF_LEAVING | THP_RF_ARRIVING)) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		undo_evicting(s, r);
		return EV_SKIPPED;
	}
	if (whole == 1)
		return evict_empty(s, r);

	slot = stage_get(s);
	samples_at(s, &sm, SE_STAGED);
	rc = whole == WHOLE_PAGES ? move_out_pages(s, r, slot, &moved) : move_out(s, r, slot, &moved);
	if (rc) {
		if (rc == -ECANCELED)
			ctr_add(s, THP_C_EVICT_ZAP_PENDING, 1);
		else if (rc == -EAGAIN)
			ctr_add(s, THP_C_EVICT_BUSY, 1);
		else if (rc == -EFBIG)
			ctr_add(s, THP_C_EVICT_SPLIT, 1);
		/* Without waiting for the fault thread, which may be handling
		 * a FORK that waits for this record: what is not back then is
		 * kept as the record, the rest present (see move_in). */
		if (moved > 0 && put_back_part(s, r, slot, (uint64_t)moved, false) == -EDEADLK) {
			if (keep_instead(s, r, slot, buf)) {
				slot_zap(s, slot);
				stage_put(s, slot, false);
				return EV_EVICTED;
			}
			/* Storing failed too: wait after all (the bytes exist
			 * nowhere else). */
			put_back_part(s, r, slot, (uint64_t)moved, true);
		}
		if (whole == WHOLE_PAGES)
			slot_zap(s, slot); /* its page table, even with every page back */
		stage_put(s, slot, false);
		undo_evicting(s, r);
		/* Not exclusive after a fork: unshared once the child is gone,
		 * with the record RESIDENT again (see unshare_after_fork). */
		if (rc == -EBUSY && moved <= 0 && !unshared && unshare_after_fork(s, rec_addr(r))) {
			unshared = true;
			goto again;
		}
		/* Shared with a live fork child (counted as refused) is
		 * expected: evicting it would free nothing while the child maps it. */
		if (rc == -EBUSY)
			ctr_add(s, THP_C_EVICT_REFUSED, 1);
		return EV_SKIPPED;
	}

	/* The region is empty now; from here on nothing can be lost. */
	samples_at(s, &sm, SE_MOVED);
	if (!thp_is_zero(slot, REGION)) {
		size_t cap = sizeof(struct thp_blob) + (size_t)cfg->max_stored_pct * REGION / 100;

		len = thp_codec_compress(codec, slot, buf, cap, cfg->frames, cancelled, r);
		/* Raw where the file tier will take it at once (ftier.c), or
		 * where the settings say so. */
		if (len == -ENOSPC && (cfg->incompressible == THP_INCOMP_RAW || ftier_takes(s)))
			len = thp_codec_store_raw(slot, buf, THP_SLOT_SIZE);
		if (len == -ENOSPC) {
			__atomic_or_fetch(&r->flags, THP_RF_INCOMPRESSIBLE, __ATOMIC_RELEASE);
			ctr_add(s, THP_C_EVICT_INCOMPRESSIBLE, 1);
		}
		samples_at(s, &sm, SE_COMPRESSED);
		if (len < 0 || store_slot(s, idx, buf, len)) {
			if (len == -ECANCELED)
				ctr_add(s, THP_C_EVICT_CANCELLED, 1);
			move_back(s, r, slot, buf);
			/* A fault winning the race, or data not worth storing, is
			 * normal: only a failed store is a failure. */
			return (len == -ENOSPC || len == -ECANCELED) ? EV_SKIPPED : EV_FAILED;
		}
		new_state = THP_ST_RAM;
		__atomic_and_fetch(&r->flags, ~THP_RF_INCOMPRESSIBLE, __ATOMIC_RELEASE);
	}
	samples_at(s, &sm, SE_STORED);
	describe(r, buf, len, cfg->zstd_level);
	done_evicting(r);
	if (!rec_cas(s, r, THP_ST_EVICTING, new_state)) {
		/* A fault came in: the record stays the resident copy's. */
		ctr_add(s, THP_C_EVICT_CANCELLED, 1);
		if (len > 0) {
			/* Never counted: just free the slot again. */
			r->stored_len = 0;
			slot_punch(s, idx);
		}
		move_back(s, r, slot, buf);
		return EV_SKIPPED;
	}
	count_eviction(s, len);
	if (whole == WHOLE_PAGES)
		ctr_add(s, THP_C_EVICT_4K, 1);
	*bytes_in += REGION;
	*bytes_stored += (uint64_t)(len > 0 ? len : 0);
	stage_put(s, slot, true); /* a THP still: the pool takes it if short */
	samples_evict_done(s, &sm, rec_addr(r), len);
	ctr_add(s, THP_C_EVICT_NS, (int64_t)(now_ns() - t0));
	hist_add(s, THP_H_EVICT, now_ns() - t0);
	return EV_EVICTED;
}

/*
 * One eviction of a region at a time (the daemon's jobs and the
 * application's advice both evict).  make_whole runs while the region is
 * RESIDENT and populates and collapses without holding events: a second
 * evictor's make_whole could touch pages of the region after the first had
 * moved it out, and fault it straight back in.
 */
enum evict_result evict_region(struct thpswap_session *s, uint32_t idx,
			       struct thp_codec *codec, char *buf, uint64_t *bytes_in,
			       uint64_t *bytes_stored)
{
	struct thp_record *r = &s->rec[idx];
	enum evict_result res;

	if (__atomic_fetch_or(&r->flags, THP_RF_EVICTOR, __ATOMIC_ACQUIRE) & THP_RF_EVICTOR) {
		ctr_add(s, THP_C_EVICT_BUSY, 1);
		return EV_SKIPPED;
	}
	res = evict_claimed(s, idx, codec, buf, bytes_in, bytes_stored);
	__atomic_and_fetch(&r->flags, ~THP_RF_EVICTOR, __ATOMIC_RELEASE);
	return res;
}

/*
 * One region out, to the tier the daemon's settings give it: the RAM tier,
 * or, with the kernel tier on, the kernel's swap for a region the codec
 * cannot shrink (it would stay resident otherwise) unless the file tier
 * takes it.  A region found incompressible before goes there without
 * another try at compressing it.
 * The page-out claims the region as an eviction does, after this one let
 * it go; a fault in between only makes it resident again.
 */
enum evict_result evict_to_tier(struct thpswap_session *s, uint32_t idx, struct thp_codec *codec,
				char *buf, uint64_t *bytes_in, uint64_t *bytes_stored)
{
	/* With the file tier up too, the file takes what does not compress
	 * (stored raw): the kernel's swap only what it cannot take. */
	bool kernel = (s->hdr->cfg.tiers & THP_TIER_KERNEL) && !ftier_takes(s);
	enum evict_result res = EV_SKIPPED;
	int q;

	if (!kernel || !(rec_flags(&s->rec[idx]) & THP_RF_INCOMPRESSIBLE)) {
		res = evict_region(s, idx, codec, buf, bytes_in, bytes_stored);
		if (!kernel || res != EV_SKIPPED || !(rec_flags(&s->rec[idx]) & THP_RF_INCOMPRESSIBLE))
			return res;
	}
	q = kswap_pageout(s, idx);
	/* No swap device: left resident, as without the tier (counted). */
	return q > 0 ? EV_EVICTED : (q == 0 || q == -ENOSPC) ? EV_SKIPPED : EV_FAILED;
}
