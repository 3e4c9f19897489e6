/* SPDX-License-Identifier: MIT */
/*
 * The live half of the kernel probe: real syscalls on the calling process
 * (userfaultfd and its features, a 4 KiB and a 2 MiB UFFDIO_MOVE,
 * PAGEMAP_SCAN, MADV_COLLAPSE, io_uring, capabilities), and thp_probe(),
 * which runs them and the file half (probe-files.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "pagemap.h"
#include "probe.h"
#include "uffd.h"
#include "util.h"

static const struct {
	const char *key;
	uint64_t bit, extra; /* extra: features the bit needs beside it */
} feats[THP_UFFD_NR_FEAT] = {
	[THP_UFFD_MOVE] = { "move", UFFD_FEATURE_MOVE, 0 },
	[THP_UFFD_EVENT_FORK] = { "event_fork", UFFD_FEATURE_EVENT_FORK, 0 },
	[THP_UFFD_EVENT_REMOVE] = { "event_remove", UFFD_FEATURE_EVENT_REMOVE, 0 },
	[THP_UFFD_EVENT_UNMAP] = { "event_unmap", UFFD_FEATURE_EVENT_UNMAP, 0 },
	[THP_UFFD_EVENT_REMAP] = { "event_remap", UFFD_FEATURE_EVENT_REMAP, 0 },
	[THP_UFFD_WP] = { "wp", UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0 },
	[THP_UFFD_WP_ASYNC] = { "wp_async", UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_PAGEFAULT_FLAG_WP },
	[THP_UFFD_POISON] = { "poison", UFFD_FEATURE_POISON, 0 },
};

const char *thp_uffd_feat_name(enum thp_uffd_feat f)
{
	return (unsigned)f < THP_UFFD_NR_FEAT ? feats[f].key : NULL;
}

/* A throw-away uffd: UFFDIO_API can be called only once per fd. */
static int uffd_new(int devfd)
{
	int fd = thp_uffd_open_syscall(O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0)
		return fd;
	if (devfd >= 0) {
		fd = thp_uffd_open_dev(devfd, O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0)
			return fd;
	}
	/* Enough to read the feature mask even where full uffds are denied. */
	return thp_uffd_open_syscall(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
}

/* New uffd with @features negotiated; the fd or -errno.  @offered and
 * @ioctls (may be NULL) get what UFFDIO_API returned. */
static int uffd_open_api(int devfd, uint64_t features, uint64_t *offered, uint64_t *ioctls)
{
	int fd = uffd_new(devfd), r;

	if (fd < 0)
		return fd;
	r = thp_uffd_api_ioctls(fd, features, offered, ioctls);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* 1 if the whole of [addr, addr+len) is PMD-mapped, 0 if not, -errno. */
static int pm_is_huge(int pmfd, void *addr, size_t len)
{
	uint64_t a = (uintptr_t)addr;
	long pages;

	if (pmfd < 0)
		return -EBADF;
	pages = thp_pagemap_count(pmfd, a, a + len, PAGE_IS_HUGE | PAGE_IS_PRESENT, 0);
	if (pages < 0)
		return (int)pages;
	return pages == (long)(len / THP_PAGE_SIZE);
}

/* Registers @dst in a new MOVE-capable uffd and moves @len bytes from @src
 * there: 0 if they all arrived, else -errno (-EPROTO: a short move). */
static int move_into(int devfd, void *dst, void *src, size_t len)
{
	int64_t moved = 0;
	int fd, r;

	fd = uffd_open_api(devfd, UFFD_FEATURE_MOVE, NULL, NULL);
	if (fd < 0)
		return fd;
	r = thp_uffd_register(fd, (uintptr_t)dst, len, UFFDIO_REGISTER_MODE_MISSING);
	if (r == 0)
		r = thp_uffd_move(fd, (uintptr_t)dst, (uintptr_t)src, len, 0, &moved);
	if (r == 0 && moved != (int64_t)len)
		r = -EPROTO;
	close(fd);
	return r;
}

/* Move one 4 KiB page into a registered range and check it arrived. */
static int try_move_4k(int devfd)
{
	size_t pg = THP_PAGE_SIZE;
	char *src, *dst;
	int r;

	src = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		r = -ENOMEM;
		goto out;
	}
	memset(src, 0x5a, pg);
	r = move_into(devfd, dst, src, pg);
	if (r == 0 && (dst[0] != 0x5a || dst[pg - 1] != 0x5a))
		r = -EPROTO;
out:
	if (src != MAP_FAILED)
		munmap(src, pg);
	if (dst != MAP_FAILED)
		munmap(dst, pg);
	return r;
}

/* Move a whole THP; 1 if the destination is PMD-mapped, 0 if it was split,
 * -EAGAIN if no THP could be made to test with, else -errno. */
static int try_move_pmd(int devfd, int pmfd)
{
	const size_t H = THP_PMD_SIZE;
	const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_NORESERVE;
	char *src, *dst;
	int r;

	src = thp_mmap_aligned(H, H, prot, flags);
	dst = thp_mmap_aligned(H, H, prot, flags);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		r = -ENOMEM;
		goto out;
	}
	madvise(src, H, MADV_HUGEPAGE);
	madvise(dst, H, MADV_HUGEPAGE);
	src[0] = 1;
	src[H / 2] = 2;
	src[H - 1] = 3;
	r = pm_is_huge(pmfd, src, H);
	if (r <= 0) {
		r = r == 0 ? -EAGAIN : r;
		goto out;
	}
	r = move_into(devfd, dst, src, H);
	if (r == 0 && (dst[0] != 1 || dst[H / 2] != 2 || dst[H - 1] != 3))
		r = -EPROTO;
	if (r == 0)
		r = pm_is_huge(pmfd, dst, H);
out:
	if (src != MAP_FAILED)
		munmap(src, H);
	if (dst != MAP_FAILED)
		munmap(dst, H);
	return r;
}

static void probe_uffd(struct thp_caps *c, int pmfd)
{
	struct stat st;
	uint64_t offered = 0, ioctls = 0;
	int devfd = -1, fd;

	fd = thp_uffd_open_syscall(O_CLOEXEC | O_NONBLOCK);
	c->uffd.syscall_err = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	fd = thp_uffd_open_syscall(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	c->uffd.user_mode_only_err = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);

	c->uffd.dev_present = stat(THP_UFFD_DEV, &st) == 0 && S_ISCHR(st.st_mode);
	devfd = open(THP_UFFD_DEV, O_RDWR | O_CLOEXEC);
	if (devfd < 0) {
		c->uffd.dev_err = -errno;
	} else {
		c->uffd.dev_openable = true;
		fd = thp_uffd_open_dev(devfd, O_CLOEXEC | O_NONBLOCK);
		c->uffd.dev_err = fd < 0 ? fd : 0;
		if (fd >= 0)
			close(fd);
	}
	c->uffd.usable = c->uffd.syscall_err == 0 || c->uffd.dev_err == 0;

	fd = uffd_open_api(devfd, 0, &offered, &ioctls);
	if (fd < 0) {
		c->uffd.api_err = fd;
		for (int i = 0; i < THP_UFFD_NR_FEAT; i++)
			c->uffd.feat[i].err = fd;
		c->uffd.move_pmd_err = fd;
		goto out;
	}
	close(fd);
	c->uffd.api_features = offered;
	c->uffd.api_ioctls = ioctls;
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++) {
		struct thp_feat *f = &c->uffd.feat[i];

		f->offered = (offered & feats[i].bit) != 0;
		fd = uffd_open_api(devfd, feats[i].bit | feats[i].extra, NULL, NULL);
		f->err = fd < 0 ? fd : 0;
		if (fd >= 0)
			close(fd);
		/* The MOVE bit is advisory; only a real move proves it. */
		if (i == THP_UFFD_MOVE && f->err == 0)
			f->err = try_move_4k(devfd);
		f->usable = f->err == 0;
	}
	c->uffd.event_fork_for_caller = c->uffd.feat[THP_UFFD_EVENT_FORK].usable;
	if (c->uffd.feat[THP_UFFD_MOVE].usable) {
		int r = try_move_pmd(devfd, pmfd);

		c->uffd.move_pmd = r < 0 ? (r == -EAGAIN || r == -EBADF ? -1 : 0) : r;
		c->uffd.move_pmd_err = r < 0 ? r : 0;
	} else {
		c->uffd.move_pmd_err = c->uffd.feat[THP_UFFD_MOVE].err;
	}
out:
	if (devfd >= 0)
		close(devfd);
}

/* Two present pages of four must come back as exactly those two runs. */
static void probe_pagemap_scan(struct thp_caps *c, int pmfd)
{
	const size_t pg = THP_PAGE_SIZE;
	struct page_region v[4];
	uint64_t a;
	char *p;
	long r;

	if (pmfd < 0) {
		c->pagemap_scan.err = pmfd;
		return;
	}
	p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		c->pagemap_scan.err = -errno;
		return;
	}
	p[0] = 1;
	p[2 * pg] = 1;
	a = (uintptr_t)p;
	r = thp_pagemap_scan(pmfd, a, a + 4 * pg, PAGE_IS_PRESENT, 0, v, 4, NULL);
	if (r >= 0 && !(r == 2 && v[0].start == a && v[0].end == a + pg &&
			 v[1].start == a + 2 * pg && v[1].end == a + 3 * pg))
		r = -EPROTO;
	c->pagemap_scan.err = r < 0 ? (int)r : 0;
	c->pagemap_scan.available = r >= 0;
	munmap(p, 4 * pg);
	if (r >= 0)
		thp_probe_pagemap_categories(pmfd, &c->pagemap_scan.categories,
					     &c->pagemap_scan.soft_dirty);
}

int thp_probe_pagemap_categories(int pmfd, uint64_t *categories, int *soft_dirty)
{
	const size_t pg = THP_PAGE_SIZE;
	struct page_region v[1];
	uint64_t a;
	char *p;
	long r;

	*categories = 0;
	*soft_dirty = -1;
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	a = (uintptr_t)p;
	for (unsigned bit = 0; bit < 16; bit++) {
		r = thp_pagemap_scan(pmfd, a, a + pg, 1ull << bit, 0, v, 1, NULL);
		if (r >= 0)
			*categories |= 1ull << bit;
		else if (r != -EINVAL)
			break;
	}
	/* A new page is soft-dirty where the kernel tracks it at all; where it
	 * does not, clear_refs 4 is taken and does nothing. */
	r = (*categories & PAGE_IS_SOFT_DIRTY) ?
		thp_pagemap_scan(pmfd, a, a + pg, PAGE_IS_SOFT_DIRTY, 0, v, 1, NULL) : 0;
	if (r >= 0)
		*soft_dirty = r == 1;
	munmap(p, pg);
	return r < 0 ? (int)r : 0;
}

static void probe_collapse(struct thp_caps *c, int pmfd)
{
	char *p = thp_mmap_aligned(THP_PMD_SIZE, THP_PMD_SIZE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_NORESERVE);
	int r;

	c->madv_collapse.collapsed = -1;
	if (p == MAP_FAILED) {
		c->madv_collapse.err = -ENOMEM;
		return;
	}
	p[0] = 1; /* one present page: collapse then fills the other 511 */
	r = madvise(p, THP_PMD_SIZE, MADV_COLLAPSE) < 0 ? -errno : 0;
	c->madv_collapse.err = r;
	/* EINVAL = unknown advice (or THP off for this VMA); the rest are
	 * transient failures of a kernel that knows MADV_COLLAPSE. */
	c->madv_collapse.available = r != -EINVAL;
	if (r == 0) {
		int h = pm_is_huge(pmfd, p, THP_PMD_SIZE);

		c->madv_collapse.collapsed = h < 0 ? -1 : h;
	}
	munmap(p, THP_PMD_SIZE);
}

static void probe_io_uring(struct thp_caps *c)
{
	struct io_uring_params prm;
	int fd;

	memset(&prm, 0, sizeof(prm));
	fd = (int)syscall(__NR_io_uring_setup, 2, &prm);
	if (fd < 0) {
		c->io_uring.setup_err = -errno;
		return;
	}
	c->io_uring.features = prm.features;
	close(fd);
}

static bool has_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

int thp_probe(struct thp_caps *c, const char *sysroot)
{
	char root[PATH_MAX];
	struct utsname u;
	int pmfd;
	size_t n;

	if (!c)
		return -EINVAL;
	if (!sysroot)
		sysroot = "";
	n = strlen(sysroot);
	while (n > 0 && sysroot[n - 1] == '/')
		n--;                    /* "/" and "dir/" both work */
	if (n >= sizeof(root) - 64)
		return -ENAMETOOLONG;
	memcpy(root, sysroot, n);
	root[n] = '\0';

	memset(c, 0, sizeof(*c));
	c->uffd.unprivileged = -1;
	c->uffd.move_pmd = -1;
	c->madv_collapse.collapsed = -1;
	c->pagemap_scan.soft_dirty = -1;
	c->thp.use_zero_page = -1;
	c->thp.max_ptes_none = c->thp.max_ptes_swap = c->thp.max_ptes_shared = -1;
	c->zswap.p.enabled = c->zswap.p.shrinker_enabled = -1;
	c->zswap.p.max_pool_percent = c->zswap.p.accept_threshold_percent = -1;
	c->io_uring.disabled = -1;

	if (uname(&u) == 0) {
		snprintf(c->kernel.release, sizeof(c->kernel.release), "%s", u.release);
		snprintf(c->kernel.machine, sizeof(c->kernel.machine), "%s", u.machine);
	}
	pmfd = thp_pagemap_open(0);
	probe_uffd(c, pmfd);
	probe_pagemap_scan(c, pmfd);
	probe_collapse(c, pmfd);
	if (pmfd >= 0)
		close(pmfd);
	thp_probe_files(c, root);
	probe_io_uring(c);
	c->psi.cap_sys_resource = has_cap(CAP_SYS_RESOURCE);
	return 0;
}
