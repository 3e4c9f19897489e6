/* SPDX-License-Identifier: MIT */
/* PAGEMAP_SCAN helpers: which 2 MiB units are PMD-mapped, what is present. */
#ifndef THPSWAP_PAGEMAP_H
#define THPSWAP_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

struct page_region;

/* Open /proc/self/pagemap (or /proc/PID/pagemap for pid > 0). fd or -errno. */
int thp_pagemap_open(int pid);

/* One PAGEMAP_SCAN of [start, end): fills up to @nvec runs of pages that
 * have every PAGE_IS_* category of @mask (those of @inverted, a subset of
 * @mask, counting as absent) and returns how many, or -errno.  The kernel
 * stops early when @vec is full: @walk_end (may be NULL) gets where it
 * stopped. */
long thp_pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		      struct page_region *vec, size_t nvec, uint64_t *walk_end);

/* Number of 4 KiB pages in [start, end) that have every PAGE_IS_* category
 * of @mask, those of @inverted (a subset of @mask) counting as absent, or
 * -errno. */
long thp_pagemap_count(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted);

/* Number of 2 MiB-aligned units in [start, end) mapped by a PMD
 * (PAGE_IS_HUGE|PRESENT), or -errno. */
long thp_pagemap_count_pmd(int fd, uint64_t start, uint64_t end);

/* Number of present 4 KiB pages in [start, end), or -errno. */
long thp_pagemap_count_present(int fd, uint64_t start, uint64_t end);

/* Pages that hold data: present, or in the kernel's swap (a swap entry is
 * not a hole; nor is a migration entry, which PAGEMAP_SCAN calls swapped). */
#define THP_PAGE_THERE (PAGE_IS_PRESENT | PAGE_IS_SWAPPED)

/* thp_pagemap_scan's runs of pages that hold data (THP_PAGE_THERE). */
long thp_pagemap_scan_there(int fd, uint64_t start, uint64_t end, struct page_region *vec,
			    size_t nvec, uint64_t *walk_end);

/* Number of 4 KiB pages in [start, end) that hold data (THP_PAGE_THERE),
 * counted in one scan, or -errno. */
long thp_pagemap_count_there(int fd, uint64_t start, uint64_t end);

/* Call @fn(@arg, lo, hi) for each run [lo, hi) of [start, end) whose pages
 * hold nothing (neither present nor swapped), in address order, over as
 * many scans as it takes.  Stops at the first nonzero return of @fn and
 * returns it; else 0, or -errno of a scan. */
int thp_pagemap_each_hole(int fd, uint64_t start, uint64_t end,
			  int (*fn)(void *arg, uint64_t lo, uint64_t hi), void *arg);

/* The end of the last 4 KiB page of [start, end) that holds data
 * (THP_PAGE_THERE), @start if none does, or -errno. */
long thp_pagemap_there_end(int fd, uint64_t start, uint64_t end);

/* The first 4 KiB page of [start, end) that holds nothing (neither present
 * nor swapped), @end if there is none, or -errno. */
long thp_pagemap_first_hole(int fd, uint64_t start, uint64_t end);

#endif
