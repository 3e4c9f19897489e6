/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include "kernel-abi.h"
#include "procmap.h"

int thp_procmap_open(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int thp_procmap_query(int fd, uint64_t addr, bool next, struct thp_vma *v, char *name, uint32_t name_len)
{
	char buf[4096]; /* PATH_MAX: any name fits */
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = next ? PROCMAP_QUERY_COVERING_OR_NEXT_VMA : 0,
		.query_addr = addr,
		/* The name tells anonymous memory from [stack], [heap] and
		 * the like; ask for it even if the caller does not want it. */
		.vma_name_addr = (uint64_t)(uintptr_t)(name ? name : buf),
		.vma_name_size = name ? name_len : sizeof(buf),
	};

	if (ioctl(fd, PROCMAP_QUERY, &q) < 0)
		return -errno;
	*v = (struct thp_vma){
		.start = q.vma_start,
		.end = q.vma_end,
		.read = q.vma_flags & PROCMAP_QUERY_VMA_READABLE,
		.write = q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE,
		.exec = q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE,
		.shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED,
		.file = q.inode != 0,
		.named = q.vma_name_size > 0,
	};
	if (name && !q.vma_name_size && name_len)
		name[0] = 0;
	return 0;
}
