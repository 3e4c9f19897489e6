/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

uint64_t thp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *thp_mmap_aligned(size_t len, size_t align, int prot, int flags)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), total;
	char *raw, *p;

	if (!len || align < pg || (align & (align - 1)) ||
	    (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	/* Whole pages, so that the trimmed tail starts on a page boundary. */
	if (__builtin_add_overflow(len, pg - 1, &len) ||
	    __builtin_add_overflow(len & ~(pg - 1), align, &total)) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	len &= ~(pg - 1);
	raw = mmap(NULL, total, prot, flags | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return MAP_FAILED;
	p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	/* Cutting a head or a tail off one mapping splits nothing, so these
	 * do not fail (and if one did, only slack would stay mapped). */
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	if (p + len < raw + total)
		munmap(p + len, (size_t)(raw + total - (p + len)));
	return p;
}

int thp_tmpfile_open(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EINVAL)
		/* No O_DIRECT on this file system: buffered. */
		fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}
