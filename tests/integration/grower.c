/* SPDX-License-Identifier: MIT */
/*
 * A program that never heard of thpswap, for the run-grow test: it grows
 * its memory the way jemalloc does (anonymous MAP_NORESERVE mappings of
 * growing size, written page by page as they are handed out), and reads
 * back, after every 16 pages written, a page written earlier; every 8th
 * page it reads it writes anew.  Adoption registers each mapping while it
 * is being written, and a daemon with a small budget evicts meanwhile.
 * Then "filled" on stdout, and it obeys one command per line on stdin:
 *   check   read every page back: "ok", or "bad: ..." naming the first
 *           wrong word
 *   exit    exit 0
 * A wrong page found while filling ends it at once: "bad: ..." and exit 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096ul
#define MIB (1ul << 20)
#define NMAPS 14

static struct {
	uint64_t *p;
	size_t pages, written;
} maps[NMAPS];
static uint8_t *gen;              /* per page, all maps in order */
static size_t first[NMAPS];       /* index of a map's first page in gen */
static unsigned nmaps;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Word k of a page: its address, its generation and k; never zero. */
static uint64_t word(const uint64_t *page, uint8_t g, unsigned k)
{
	return ((uint64_t)(uintptr_t)page | 1) ^ ((uint64_t)g << 56) ^ ((uint64_t)k << 3);
}

static void put(unsigned m, size_t pg, uint8_t g)
{
	uint64_t *w = maps[m].p + pg * (PAGE / 8);

	for (unsigned k = 0; k < PAGE / 8; k++)
		w[k] = word(w, g, k);
	gen[first[m] + pg] = g;
}

static int check(unsigned m, size_t pg)
{
	const uint64_t *w = maps[m].p + pg * (PAGE / 8);
	uint8_t g = gen[first[m] + pg];

	for (unsigned k = 0; k < PAGE / 8; k++)
		if (w[k] != word(w, g, k)) {
			printf("bad: mapping %u (%p) page %zu word %u: %#llx, want %#llx\n", m,
			       (void *)maps[m].p, pg, k, (unsigned long long)w[k],
			       (unsigned long long)word(w, g, k));
			return 1;
		}
	return 0;
}

/* A page written before, read back; now and then written anew. */
static int touch_one(void)
{
	unsigned m = (unsigned)(rnd() % nmaps);
	size_t pg;

	if (!maps[m].written)
		return 0;
	pg = rnd() % maps[m].written;
	if (check(m, pg))
		return 1;
	if (rnd() % 8 == 0)
		put(m, pg, (uint8_t)(gen[first[m] + pg] + 1));
	return 0;
}

int main(void)
{
	/* jemalloc's retained extents grow about this way. */
	static const size_t mib[NMAPS] = { 3, 6, 4, 5, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32 };
	size_t total = 0;
	char cmd[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (unsigned m = 0; m < NMAPS; m++)
		total += mib[m] * MIB / PAGE;
	gen = calloc(total, 1);
	if (!gen)
		return 2;
	total = 0;
	for (unsigned m = 0; m < NMAPS; m++) {
		maps[m].p = mmap(NULL, mib[m] * MIB, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (maps[m].p == MAP_FAILED)
			return 2;
		maps[m].pages = mib[m] * MIB / PAGE;
		first[m] = total;
		total += maps[m].pages;
		nmaps = m + 1;
		for (size_t pg = 0; pg < maps[m].pages; pg++) {
			put(m, pg, 1);
			maps[m].written = pg + 1;
			if (pg % 16 == 0 && touch_one())
				return 1;
		}
	}
	printf("filled %zu MiB\n", total * PAGE / MIB);
	while (fgets(cmd, sizeof(cmd), stdin)) {
		if (!strcmp(cmd, "exit\n"))
			return 0;
		if (strcmp(cmd, "check\n")) {
			printf("unknown command\n");
			continue;
		}
		int bad = 0;

		for (unsigned m = 0; m < nmaps && !bad; m++)
			for (size_t pg = 0; pg < maps[m].pages && !bad; pg++)
				bad = check(m, pg);
		if (!bad)
			printf("ok\n");
	}
	return 0;
}
