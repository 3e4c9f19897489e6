/* SPDX-License-Identifier: MIT */
/* "What is mapped here": PROCMAP_QUERY on /proc/self/maps (Linux 6.11), one
 * VMA per call, without reading or allocating the text of the maps file. */
#ifndef THPSWAP_PROCMAP_H
#define THPSWAP_PROCMAP_H

#include <stdbool.h>
#include <stdint.h>

struct thp_vma {
	uint64_t start, end;
	bool read, write, exec, shared;
	bool file;                /* backed by a file (inode != 0) */
	bool named;               /* has a name: [stack], [heap], [vdso], a path... */
};

/* Open /proc/self/maps for queries: fd or -errno. */
int thp_procmap_open(void);

/* The VMA that covers @addr, or with @next the first one at or above it:
 * 0, -ENOENT (none), -ENOTTY (the kernel has no PROCMAP_QUERY) or -errno.
 * @name (may be NULL, @name_len bytes) gets the VMA's name, "" if none. */
int thp_procmap_query(int fd, uint64_t addr, bool next, struct thp_vma *v, char *name, uint32_t name_len);

#endif
