/* SPDX-License-Identifier: MIT */
/* Record state changes and the counters that mirror them. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <linux/falloc.h>
#include <string.h>

#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"

/* Which counter a state is counted in, or -1. */
static int state_counter(uint32_t st)
{
	switch (st) {
	case THP_ST_RESIDENT:
	case THP_ST_EVICTING:
	case THP_ST_CANCEL:
		return THP_C_RESIDENT;
	case THP_ST_ZERO:
		return THP_C_EVICTED_ZERO;
	case THP_ST_RAM:
		return THP_C_EVICTED_RAM;
	default:
		return -1;
	}
}

void ctr_add(struct thpswap_session *s, enum thp_counter c, int64_t v)
{
	atomic_fetch_add_explicit(&s->hdr->ctr[c], (uint64_t)v, memory_order_relaxed);
}

void hist_add(struct thpswap_session *s, enum thp_hist h, uint64_t ns)
{
	atomic_fetch_add_explicit(&s->hdr->hist[h][thp_hist_bucket(ns)], 1, memory_order_relaxed);
}

static void account(struct thpswap_session *s, uint32_t from, uint32_t to)
{
	int a = state_counter(from), b = state_counter(to);

	if (a == b)
		return;
	if (a >= 0)
		ctr_add(s, (enum thp_counter)a, -1);
	if (b >= 0)
		ctr_add(s, (enum thp_counter)b, 1);
}

#ifndef NDEBUG
#define TO(st) (1u << (st))
/* The state machine's transitions (the table in internal.h): per state, the
 * states a record may go to from it.  Anything else is a bug in the agent;
 * debug builds stop at it (-Db_ndebug=true compiles the checks out). */
static const uint16_t allowed[THP_ST__MAX] = {
	[THP_ST_FREE]      = TO(THP_ST_EMPTY) | TO(THP_ST_RESIDENT),
	[THP_ST_EMPTY]     = TO(THP_ST_RESTORING) | TO(THP_ST_RESIDENT) | TO(THP_ST_FREE),
	[THP_ST_ZERO]      = TO(THP_ST_RESTORING) | TO(THP_ST_EMPTY) | TO(THP_ST_FREE),
	[THP_ST_RAM]       = TO(THP_ST_RESTORING) | TO(THP_ST_EMPTY) | TO(THP_ST_FREE),
	[THP_ST_RESIDENT]  = TO(THP_ST_EVICTING) | TO(THP_ST_RESTORING) | TO(THP_ST_FREE),
	[THP_ST_EVICTING]  = TO(THP_ST_RAM) | TO(THP_ST_ZERO) | TO(THP_ST_RESIDENT) | TO(THP_ST_CANCEL),
	[THP_ST_CANCEL]    = TO(THP_ST_RESIDENT) | TO(THP_ST_RAM) | TO(THP_ST_ZERO),
	[THP_ST_RESTORING] = TO(THP_ST_RESIDENT) | TO(THP_ST_EMPTY) | TO(THP_ST_ZERO) |
			     TO(THP_ST_RAM) | TO(THP_ST_POISONED),
	[THP_ST_POISONED]  = TO(THP_ST_FREE),
};
#undef TO

static bool allowed_transition(uint32_t from, uint32_t to)
{
	return from < THP_ST__MAX && to < THP_ST__MAX && (allowed[from] >> to & 1);
}
#endif

uint32_t rec_state(const struct thp_record *r)
{
	return atomic_load_explicit(&((struct thp_record *)r)->state, memory_order_acquire);
}

bool rec_cas(struct thpswap_session *s, struct thp_record *r, uint32_t from, uint32_t to)
{
	uint32_t expect = from;

	/* Asked for, whether or not it happens: a caller that may ask for an
	 * illegal one is wrong even when its CAS happens to fail. */
	assert(allowed_transition(from, to));
	if (!atomic_compare_exchange_strong_explicit(&r->state, &expect, to,
						     memory_order_acq_rel, memory_order_acquire))
		return false;
	account(s, from, to);
	return true;
}

void rec_set(struct thpswap_session *s, struct thp_record *r, uint32_t to)
{
	uint32_t from = atomic_exchange_explicit(&r->state, to, memory_order_acq_rel);

	/* The state it was in: the caller owns the record, so it knows. */
	assert(allowed_transition(from, to));
	account(s, from, to);
}

uint32_t rec_forget_bytes(struct thpswap_session *s, uint32_t i)
{
	struct thp_record *r = &s->rec[i];
	uint32_t len = r->stored_len;

	if (len) {
		/* Bytes in the file tier left stored_bytes when they moved
		 * there; ftier_free (from slot_punch) counts them out. */
		if (!ftier_holds(s, i))
			ctr_add(s, THP_C_STORED_BYTES, -(int64_t)len);
		r->stored_len = 0;
	}
	return len;
}

void slot_punch(struct thpswap_session *s, uint32_t i)
{
	/* Give the pages back; the slot stays addressable. */
	fallocate(s->arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)thp_arena_slot_off(s->hdr, i), (off_t)THP_SLOT_SIZE);
	/* Every place that frees stored bytes comes here: the file's too. */
	ftier_free(s, i);
}

void rec_drop_bytes(struct thpswap_session *s, uint32_t i)
{
	if (rec_forget_bytes(s, i))
		slot_punch(s, i);
}

void zap_note(struct thpswap_session *s, uint32_t i, uint64_t addr, uint64_t lo, uint64_t hi)
{
	for (uint64_t p = (lo - addr) / THP_PAGE_SIZE; p < (hi - addr + THP_PAGE_SIZE - 1) / THP_PAGE_SIZE; p++)
		atomic_fetch_or(&s->zap[i][p / 64], 1ull << (p % 64));
}

bool zap_full(struct thpswap_session *s, uint32_t i)
{
	for (int w = 0; w < 8; w++)
		if (atomic_load(&s->zap[i][w]) != UINT64_MAX)
			return false;
	return true;
}

bool zap_take(struct thpswap_session *s, uint32_t i, uint64_t m[8])
{
	bool any = false;

	for (int w = 0; w < 8; w++)
		any |= (m[w] = atomic_exchange(&s->zap[i][w], 0)) != 0;
	return any;
}

void zap_put_back(struct thpswap_session *s, uint32_t i, const uint64_t m[8])
{
	for (int w = 0; w < 8; w++)
		if (m[w])
			atomic_fetch_or(&s->zap[i][w], m[w]);
}

void zap_apply(char *slot, const uint64_t m[8])
{
	for (unsigned p = 0; p < 512; p++)
		if (m[p / 64] & (1ull << (p % 64)))
			memset(slot + (size_t)p * THP_PAGE_SIZE, 0, THP_PAGE_SIZE);
}

void zap_clear(struct thpswap_session *s, uint32_t i)
{
	for (int w = 0; w < 8; w++)
		atomic_store(&s->zap[i][w], 0);
}

#define RZAP_AGE 1000000000ull /* see struct rzap */

void rzap_note(struct thpswap_session *s, uint32_t i, uint64_t addr, uint64_t lo, uint64_t hi)
{
	struct rzap *z = &s->rzap[i];
	uint64_t now = now_ns();

	if (now - atomic_load(&z->cur_start) >= RZAP_AGE) {
		/* A new second: what was current is at least that old now. */
		for (int w = 0; w < 8; w++)
			atomic_store(&z->prev[w], atomic_exchange(&z->cur[w], 0));
		atomic_store(&z->cur_start, now);
	}
	for (uint64_t p = (lo - addr) / THP_PAGE_SIZE; p < (hi - addr + THP_PAGE_SIZE - 1) / THP_PAGE_SIZE; p++)
		atomic_fetch_or(&z->cur[p / 64], 1ull << (p % 64));
	atomic_store(&z->last_ns, now);
}

void rzap_landed(struct thpswap_session *s, uint32_t i, uint64_t region, uint64_t addr)
{
	uint64_t p = (addr - region) / THP_PAGE_SIZE;

	if (p < 512) {
		atomic_fetch_and(&s->rzap[i].cur[p / 64], ~(1ull << (p % 64)));
		atomic_fetch_and(&s->rzap[i].prev[p / 64], ~(1ull << (p % 64)));
	}
}

bool rzap_in_flight(struct thpswap_session *s, uint32_t i, uint64_t addr)
{
	struct rzap *z = &s->rzap[i];
	struct page_region v[64];
	uint64_t left = 0, there[8] = { 0 }, now = now_ns();
	bool prev_old = now - atomic_load(&z->cur_start) >= RZAP_AGE;
	bool cur_old = now - atomic_load(&z->last_ns) >= RZAP_AGE;
	long n;

	for (int w = 0; w < 8; w++) {
		if (prev_old)
			atomic_store(&z->prev[w], 0);
		if (cur_old)
			atomic_store(&z->cur[w], 0);
		left |= atomic_load(&z->cur[w]) | atomic_load(&z->prev[w]);
	}
	if (!left)
		return false;
	/* Noted pages that hold nothing any more: their zap has landed.  A
	 * page in the kernel's swap holds data until the zap frees it. */
	n = thp_pagemap_scan_there(s->pagemap, addr, addr + REGION, v, 64, NULL);
	if (n < 0 || n == 64)
		return true; /* cannot tell: assume it has not */
	for (long k = 0; k < n; k++)
		for (uint64_t p = (v[k].start - addr) / THP_PAGE_SIZE; p < (v[k].end - addr) / THP_PAGE_SIZE; p++)
			there[p / 64] |= 1ull << (p % 64);
	left = 0;
	for (int w = 0; w < 8; w++)
		left |= (atomic_fetch_and(&z->cur[w], there[w]) & there[w]) |
			(atomic_fetch_and(&z->prev[w], there[w]) & there[w]);
	return left != 0;
}

void rzap_clear(struct thpswap_session *s, uint32_t i)
{
	for (int w = 0; w < 8; w++) {
		atomic_store(&s->rzap[i].cur[w], 0);
		atomic_store(&s->rzap[i].prev[w], 0);
	}
}

int rec_tables_init(struct thpswap_session *s, uint32_t n)
{
	/* The agent's own (untouched entries cost no memory). */
	s->zap = own_alloc(s, n * sizeof(*s->zap));
	s->born = own_alloc(s, n * sizeof(*s->born));
	s->rzap = own_alloc(s, n * sizeof(*s->rzap));
	s->cut = own_alloc(s, n * sizeof(*s->cut));
	if (!s->zap || !s->born || !s->rzap || !s->cut) {
		rec_tables_fini(s);
		return -ENOMEM;
	}
	return 0;
}

void rec_tables_fini(struct thpswap_session *s)
{
	own_free(s, s->zap);
	own_free(s, (void *)s->born);
	own_free(s, s->rzap);
	own_free(s, s->cut);
	s->zap = NULL;
	s->born = NULL;
	s->rzap = NULL;
	s->cut = NULL;
}
