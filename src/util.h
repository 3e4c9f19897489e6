/* SPDX-License-Identifier: MIT */
/* Small helpers every program needs: the monotonic clock and aligned
 * anonymous memory. */
#ifndef THPSWAP_UTIL_H
#define THPSWAP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t thp_now_ns(void);

/* @ns of that clock as a timespec: the deadline of a pthread_cond_timedwait
 * on a condition variable made with CLOCK_MONOTONIC. */
static inline struct timespec thp_timespec_ns(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull),
				  .tv_nsec = (long)(ns % 1000000000ull) };
}

/*
 * An anonymous mapping of @len bytes that starts at a multiple of @align (a
 * power of two, at least the page size: THP_PMD_SIZE for memory that can be
 * PMD-mapped).  @prot and @flags go to mmap(2); MAP_ANONYMOUS is always
 * added, so @flags is MAP_PRIVATE or MAP_SHARED plus modifiers such as
 * MAP_NORESERVE (MAP_FIXED and MAP_FIXED_NOREPLACE are refused).  The slack
 * mapped to find the alignment is unmapped again: release the result with
 * munmap(p, @len).
 *
 * Returns the address, or MAP_FAILED with errno set, as mmap(2) does
 * (EINVAL: @len is 0, @align not a power of two of at least the page size,
 * or a fixed-address flag; ENOMEM: @len + @align overflows or no room).
 */
void *thp_mmap_aligned(size_t len, size_t align, int prot, int flags);

/* An unnamed file in directory @dir (O_TMPFILE, read-write, close-on-exec,
 * mode 0600; gone with its last descriptor), O_DIRECT where the file system
 * takes it: the file tier's.  Its descriptor, or -errno. */
int thp_tmpfile_open(const char *dir);

#endif
