/* SPDX-License-Identifier: MIT */
/*
 * The library's own memory: address ranges the agent's threads touch (its
 * tables, slots, codec workspaces, thread stacks).  Whatever adopts the
 * mappings of a program that never asked (see adopt) must leave these
 * alone: a region of them evicted would fault on the very thread that
 * serves faults, and hang it.  Ranges are noted when allocated and
 * forgotten when freed; a lookup is a short scan under a mutex.
 *
 * What the agent allocates itself comes from own_alloc: whole pages of
 * their own mapping, so that a range noted is only ever ours (a malloc'd
 * block shares its pages, and its heap's 2 MiB, with the program's).
 */
#include <assert.h>
#include <errno.h>
#include <sys/mman.h>

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

size_t own_forget(struct thpswap_session *s, const void *addr)
{
	struct own_ranges *o = &s->own;
	size_t len = 0;

	pthread_mutex_lock(&o->lock);
	for (unsigned i = 0; i < o->n; i++)
		if (o->r[i].lo == (uint64_t)(uintptr_t)addr) {
			len = (size_t)(o->r[i].hi - o->r[i].lo);
			o->r[i] = o->r[--o->n];
			break;
		}
	pthread_mutex_unlock(&o->lock);
	return len;
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

uint64_t own_resident(struct thpswap_session *s)
{
	struct own_ranges *o = &s->own;
	uint64_t pages = 0;

	pthread_mutex_lock(&o->lock);
	for (unsigned i = 0; i < o->n; i++) {
		uint64_t lo = o->r[i].lo & ~(uint64_t)(THP_PAGE_SIZE - 1);
		uint64_t hi = (o->r[i].hi + THP_PAGE_SIZE - 1) & ~(uint64_t)(THP_PAGE_SIZE - 1);
		long n = thp_pagemap_count_present(s->pagemap, lo, hi);

		pages += n > 0 ? (uint64_t)n : 0;
	}
	pthread_mutex_unlock(&o->lock);
	return pages * THP_PAGE_SIZE;
}

void *own_alloc(struct thpswap_session *s, size_t len)
{
	size_t n = (len + THP_PAGE_SIZE - 1) & ~(size_t)(THP_PAGE_SIZE - 1);
	void *p;
	int r;

	if (!len) {
		errno = EINVAL;
		return NULL;
	}
	/* Untouched pages cost nothing, as calloc'd ones did. */
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	r = own_note(s, p, n);
	if (r) {
		munmap(p, n);
		errno = -r;
		return NULL;
	}
	return p;
}

void own_free(struct thpswap_session *s, void *p)
{
	size_t n;

	if (!p)
		return;
	n = own_forget(s, p);
	assert(n); /* own_alloc noted it, or it would not have returned it */
	if (n)
		munmap(p, n);
}

/* The codec's allocation hook (see struct thp_alloc): zstd's workspaces
 * are touched on every fault and eviction. */
static void *hook_alloc(void *opaque, size_t len)
{
	return own_alloc(opaque, len);
}

static void hook_free(void *opaque, void *p)
{
	own_free(opaque, p);
}

struct thp_alloc own_codec_alloc(struct thpswap_session *s)
{
	return (struct thp_alloc){ .alloc = hook_alloc, .free = hook_free, .opaque = s };
}

struct thpswap_session *own_session_new(void)
{
	struct thpswap_session *s;

	/* The session is the agent's memory too, and holds the registry: the
	 * one range noted by hand. */
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return NULL;
	pthread_mutex_init(&s->own.lock, NULL);
	if (own_note(s, s, sizeof(*s))) {
		munmap(s, sizeof(*s));
		errno = ENOSPC;
		return NULL;
	}
	return s;
}

void own_session_free(struct thpswap_session *s)
{
	if (!s)
		return;
	/* Everything else was forgotten as it was freed: what is still noted
	 * leaked (LeakSanitizer does not see mappings). */
	assert(s->own.n == 1 && s->own.r[0].lo == (uint64_t)(uintptr_t)s);
	pthread_mutex_destroy(&s->own.lock);
	munmap(s, sizeof(*s));
}
