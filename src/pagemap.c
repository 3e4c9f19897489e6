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

long thp_pagemap_scan(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted,
		      struct page_region *vec, size_t nvec, uint64_t *walk_end)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = start,
		.end = end,
		.vec = (uint64_t)(uintptr_t)vec,
		.vec_len = nvec,
		.category_inverted = inverted,
		.category_mask = mask,
		.return_mask = mask & ~inverted,
	};
	long n = ioctl(fd, PAGEMAP_SCAN, &a);

	if (n < 0)
		return -errno;
	if (walk_end)
		*walk_end = a.walk_end;
	return n;
}

long thp_pagemap_count(int fd, uint64_t start, uint64_t end, uint64_t mask, uint64_t inverted)
{
	struct page_region vec[64];
	long pages = 0;

	while (start < end) {
		uint64_t walk_end = 0;
		long n = thp_pagemap_scan(fd, start, end, mask, inverted, vec, 64, &walk_end);

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

long thp_pagemap_count_pmd(int fd, uint64_t start, uint64_t end)
{
	long pages = thp_pagemap_count(fd, start, end, PAGE_IS_HUGE | PAGE_IS_PRESENT, 0);

	return pages < 0 ? pages : pages / (long)(THP_PMD_SIZE / THP_PAGE_SIZE);
}

long thp_pagemap_count_present(int fd, uint64_t start, uint64_t end)
{
	return thp_pagemap_count(fd, start, end, PAGE_IS_PRESENT, 0);
}

long thp_pagemap_first_hole(int fd, uint64_t start, uint64_t end)
{
	uint64_t there = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;

	while (start < end) {
		struct page_region vec[64];
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)vec,
			.vec_len = 64,
			.category_anyof_mask = there,
			.return_mask = there,
		};
		long n = ioctl(fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			if (vec[i].start > start)
				return (long)start;
			start = vec[i].end;
		}
		if (n < 64)
			return (long)start;
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return (long)end;
}

long thp_pagemap_count_there(int fd, uint64_t start, uint64_t end)
{
	long present = thp_pagemap_count_present(fd, start, end);
	long swapped = present < 0 ? 0 : thp_pagemap_count(fd, start, end, PAGE_IS_SWAPPED, 0);

	return present < 0 ? present : swapped < 0 ? swapped : present + swapped;
}
