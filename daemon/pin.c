/* SPDX-License-Identifier: MIT */
/*
 * Pinning a client's records from the daemon (thpswapctl pin, PIN_REQ).
 * The daemon keeps the arena mapped read-only; for a pin it maps the records
 * writable for the length of the call and sets or clears one bit,
 * THP_RF_PINNED, with an atomic or/and on the record's flags word: the agent
 * changes the other bits of that word the same way, so neither loses the
 * other's.  The agent's evictor refuses a pinned record.  Nothing else of
 * the arena is written, and nothing read from it is trusted beyond the
 * checked copies thpd_rec_next gives.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "thpswapd.h"

long thpd_pin(struct thpd_session *s, uint64_t start, uint64_t end, bool pin)
{
	uint32_t nrec = thpd_session_nrec(s), i;
	struct thp_arena_header h;
	struct thpd_rec_iter it;
	struct thp_record rec, *rw;
	long n = 0;
	void *map;

	/* Our own geometry, not the header's (the client may write that). */
	memset(&h, 0, sizeof(h));
	thp_arena_layout(&h, nrec);
	map = mmap(NULL, h.data_off, PROT_READ | PROT_WRITE, MAP_SHARED,
		   thpd_session_arena_fd(s), 0);
	if (map == MAP_FAILED)
		return -errno;
	rw = (struct thp_record *)((char *)map + h.records_off);
	thpd_rec_iter_init(&it, s, 0);
	while (thpd_rec_next(&it, &i, &rec)) {
		if (rec.addr < start || rec.addr >= end)
			continue;
		if (!pin) {
			__atomic_and_fetch(&rw[i].flags, ~THP_RF_PINNED, __ATOMIC_ACQ_REL);
			n++;
			continue;
		}
		__atomic_or_fetch(&rw[i].flags, THP_RF_PINNED, __ATOMIC_ACQ_REL);
		/* The record was given to another region since our copy (the
		 * agent stores fresh flags first, then the address): not ours
		 * to pin. */
		if (__atomic_load_n(&rw[i].addr, __ATOMIC_ACQUIRE) != rec.addr) {
			__atomic_and_fetch(&rw[i].flags, ~THP_RF_PINNED, __ATOMIC_ACQ_REL);
			continue;
		}
		n++;
	}
	munmap(map, h.data_off);
	return n;
}
