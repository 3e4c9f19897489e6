/* SPDX-License-Identifier: MIT */
/*
 * What a client used since the pressure loop last looked, beyond its faults.
 * The agent stamps a record only when its region faults, so a region used
 * all the time and never faulted looks as cold as one nobody touches; the
 * kernel's dirty tracking tells the written ones apart.
 *
 * Of the signals measured (bench/coldness.c; docs/ARCHITECTURE.md, "What
 * cold means"), soft-dirty is the one the daemon can read for another
 * process without splitting its THPs (by the kernel's code: clearing
 * write-protects a PMD whole, and a write to it is one fault, not 512; not
 * measured, as the kernel it was built on has no soft-dirty).  It sees
 * writes only, and clear_refs clears the whole process, so the loop uses
 * it only when soft-dirty is on and the kernel has it (thpd_cold_probe).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "pagemap.h"
#include "probe.h"
#include "thpswapd.h"

/* Runs per PAGEMAP_SCAN call: a PMD-mapped region is one run, a split one
 * at most 512. */
#define SCAN_VEC 512

enum thpd_cold_signal thpd_cold_probe(uint64_t *categories)
{
	int fd = thp_pagemap_open(0), sd = -1;

	*categories = 0;
	if (fd < 0)
		return THPD_COLD_NONE;
	if (thp_probe_pagemap_categories(fd, categories, &sd) < 0)
		sd = 0;
	close(fd);
	return sd == 1 ? THPD_COLD_SOFT_DIRTY : THPD_COLD_NONE;
}

void thpd_cold_mark(const struct page_region *v, size_t nv, const struct thpd_cold_region *r,
		    size_t n, bool *hot)
{
	size_t k = 0;

	/* Both sorted: one pass, a run may cover several regions and a
	 * region hold several runs. */
	for (size_t j = 0; j < nv && k < n; j++) {
		while (k < n && r[k].addr + THP_REGION_BYTES <= v[j].start)
			k++;
		for (size_t m = k; m < n && r[m].addr < v[j].end; m++)
			hot[m] = true;
	}
}

static int cmp_addr(const void *a, const void *b)
{
	const struct thpd_cold_region *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* PAGEMAP_SCAN [start, end) for soft-dirty pages, marking what it finds. */
static int scan_run(int fd, struct page_region *vec, uint64_t start, uint64_t end,
		    const struct thpd_cold_region *r, size_t n, bool *hot)
{
	while (start < end) {
		uint64_t walk_end = end;
		long got = thp_pagemap_scan(fd, start, end, PAGE_IS_SOFT_DIRTY, 0, vec, SCAN_VEC,
					    &walk_end);

		if (got < 0)
			return (int)got;
		thpd_cold_mark(vec, (size_t)got, r, n, hot);
		/* The kernel stops early only when vec is full. */
		if ((size_t)got < SCAN_VEC || walk_end <= start)
			break;
		start = walk_end;
	}
	return 0;
}

static int open_proc(const char *sysroot, pid_t pid, const char *file, int flags)
{
	char p[PATH_MAX];
	int fd;

	if (snprintf(p, sizeof(p), "%s/proc/%d/%s", sysroot, (int)pid, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	fd = open(p, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int thpd_cold_scan(const char *sysroot, pid_t pid, struct thpd_cold_region *r, size_t n,
		   bool *hot)
{
	struct page_region *vec;
	int pm, cr, ret = 0;

	memset(hot, 0, n * sizeof(*hot));
	if (!n)
		return 0;
	pm = open_proc(sysroot, pid, "pagemap", O_RDONLY);
	if (pm < 0)
		return pm;
	cr = open_proc(sysroot, pid, "clear_refs", O_WRONLY);
	if (cr < 0) {
		close(pm);
		return cr;
	}
	vec = malloc(SCAN_VEC * sizeof(*vec));
	if (!vec) {
		ret = -ENOMEM;
		goto out;
	}
	qsort(r, n, sizeof(*r), cmp_addr);
	/* One scan per run of adjacent regions: what lies between them is
	 * not the loop's to walk. */
	for (size_t k = 0; k < n && ret == 0;) {
		size_t e = k + 1;

		while (e < n && r[e].addr == r[e - 1].addr + THP_REGION_BYTES)
			e++;
		ret = scan_run(pm, vec, r[k].addr, r[e - 1].addr + THP_REGION_BYTES, r + k, e - k,
			       hot + k);
		k = e;
	}
	/* Re-armed after the look: a write in between is seen next time. */
	if (ret == 0 && pwrite(cr, "4", 1, 0) != 1)
		ret = -errno;
	free(vec);
out:
	close(cr);
	close(pm);
	return ret;
}
