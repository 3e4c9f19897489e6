/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "pagemap.h"

int thp_pagemap_open(int pid)
{
	char path[64];
	int fd;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* PAGEMAP_SCAN for pages with every category of @mask (@inverted counting
 * as absent) and, if @anyof, at least one of @anyof. */
static long scan(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		 uint64_t anyof, struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = start,
		.end = end,
		.vec = (uint64_t)(uintptr_t)vec,
		.vec_len = nvec,
		.category_inverted = inverted,
		.category_mask = mask,
		.category_anyof_mask = anyof,
		.return_mask = (mask | anyof) & ~inverted,
	};
	long n = ioctl(fd, PAGEMAP_SCAN, &a);

	if (n < 0)
		return -errno;
	if (walk_end)
		*walk_end = a.walk_end;
	return n;
}

long thp_pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		      struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	return scan(fd, start, end, mask, inverted, 0, vec, nvec, walk_end);
}

long thp_pagemap_scan_there(int fd, uint64_t start, uint64_t end, struct page_region *vec,
			    size_t nvec, uint64_t *walk_end)
{
	return scan(fd, start, end, 0, 0, THP_PAGE_THERE, vec, nvec, walk_end);
}

static long count(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		  uint64_t anyof)
{
	struct page_region vec[64];
	long pages = 0;

	while (start < end) {
		uint64_t walk_end = 0;
		long n = scan(fd, start, end, mask, inverted, anyof, vec, 64, &walk_end);

		if (n < 0)
			return n;
		for (long i = 0; i < n; i++)
			pages += (long)((vec[i].end - vec[i].start) / THP_PAGE_SIZE);
		if (walk_end <= start || n < 64)
			break;
		start = walk_end;
	}
	return pages;
}

long thp_pagemap_count(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted)
{
	return count(fd, start, end, mask, inverted, 0);
}

long thp_pagemap_count_pmd(int fd, uint64_t start, uint64_t end)
{
	long pages = thp_pagemap_count(fd, start, end, PAGE_IS_HUGE | PAGE_IS_PRESENT, 0);

	return pages < 0 ? pages : pages / (long)(THP_PMD_SIZE / THP_PAGE_SIZE);
}

long thp_pagemap_count_present(int fd, uint64_t start, uint64_t end)
{
	return thp_pagemap_count(fd, start, end, PAGE_IS_PRESENT, 0);
}

int thp_pagemap_each_hole(int fd, uint64_t start, uint64_t end,
			  int (*fn)(void *arg, uint64_t lo, uint64_t hi), void *arg)
{
	uint64_t at = start; /* what lies before is accounted for */

	while (at < end) {
		struct page_region vec[64];
		long n = thp_pagemap_scan_there(fd, at, end, vec, 64, NULL);
		int rc;

		if (n < 0)
			return (int)n;
		for (long i = 0; i < n; i++) {
			if (vec[i].start > at && (rc = fn(arg, at, vec[i].start)))
				return rc;
			at = vec[i].end;
		}
		/* A full vector may have stopped the walk short: scan on from
		 * the last run's end; else the rest is a hole. */
		if (n < 64) {
			if (at < end && (rc = fn(arg, at, end)))
				return rc;
			break;
		}
	}
	return 0;
}

/* Where the holes of [start, end) begin and the data ends (there_runs). */
struct holes {
	uint64_t end;
	uint64_t first;   /* the first hole's start, @end if none */
	uint64_t last;    /* the end of the last page that holds data */
};

static int note_hole(void *arg, uint64_t lo, uint64_t hi)
{
	struct holes *h = arg;

	if (h->first == h->end)
		h->first = lo;
	if (hi == h->end)
		h->last = lo; /* a hole up to the end: the data ended before it */
	return 0;
}

/* *hole gets the first page of [start, end) that holds nothing (@end if
 * none), *last the end of the last page that holds data (@start if none).
 * 0 or -errno. */
static int there_runs(int fd, uint64_t start, uint64_t end, uint64_t *hole, uint64_t *last)
{
	struct holes h = { .end = end, .first = end, .last = end };
	int r = thp_pagemap_each_hole(fd, start, end, note_hole, &h);

	*hole = h.first;
	*last = h.last;
	return r;
}

long thp_pagemap_first_hole(int fd, uint64_t start, uint64_t end)
{
	uint64_t hole, last;
	int r = there_runs(fd, start, end, &hole, &last);

	return r ? r : (long)hole;
}

long thp_pagemap_there_end(int fd, uint64_t start, uint64_t end)
{
	uint64_t hole, last;
	int r = there_runs(fd, start, end, &hole, &last);

	return r ? r : (long)last;
}

/* One scan, not a count of present pages and then one of swapped pages:
 * between two scans a page can move from one to the other (a swap-in, or
 * the migration entries of a THP being split read as swapped) and be
 * counted in neither.  One scan walks a page table under its lock. */
long thp_pagemap_count_there(int fd, uint64_t start, uint64_t end)
{
	return count(fd, start, end, 0, 0, THP_PAGE_THERE);
}
