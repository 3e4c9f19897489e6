/* SPDX-License-Identifier: MIT */
/*
 * The library's own memory: address ranges the agent's threads touch (its
 * tables, slots, codec workspaces, thread stacks).  Whatever adopts the
 * mappings of a program that never asked (see adopt) must leave these
 * alone: a region of them evicted would fault on the very thread that
 * serves faults, and hang it.  Ranges are noted when allocated and
 * forgotten when freed; a lookup is a short scan under a mutex.
 */
#include <errno.h>

#include "internal.h"

int own_note(struct thpswap_session *s, const void *addr, size_t len)
{
	struct own_ranges *o = &s->own;
	int rc = -ENOSPC;

	if (!addr || !len)
		return 0;
	pthread_mutex_lock(&o->lock);
	if (o->n < OWN_MAX) {
		o->r[o->n].lo = (uint64_t)(uintptr_t)addr;
		o->r[o->n].hi = (uint64_t)(uintptr_t)addr + len;
		o->n++;
		rc = 0;
	}
	pthread_mutex_unlock(&o->lock);
	return rc;
}

void own_forget(struct thpswap_session *s, const void *addr)
{
	struct own_ranges *o = &s->own;

	pthread_mutex_lock(&o->lock);
	for (unsigned i = 0; i < o->n; i++)
		if (o->r[i].lo == (uint64_t)(uintptr_t)addr) {
			o->r[i] = o->r[--o->n];
			break;
		}
	pthread_mutex_unlock(&o->lock);
}

bool own_overlaps(struct thpswap_session *s, uint64_t lo, uint64_t hi)
{
	struct own_ranges *o = &s->own;
	bool hit = false;

	pthread_mutex_lock(&o->lock);
	for (unsigned i = 0; i < o->n && !hit; i++)
		hit = o->r[i].lo < hi && o->r[i].hi > lo;
	pthread_mutex_unlock(&o->lock);
	return hit;
}
