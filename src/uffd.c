/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "uffd.h"

int thp_uffd_open_syscall(int flags)
{
	int fd = (int)syscall(SYS_userfaultfd, flags);

	return fd < 0 ? -errno : fd;
}

int thp_uffd_open_dev(int devfd, int flags)
{
	int fd = ioctl(devfd, USERFAULTFD_IOC_NEW, flags);

	return fd < 0 ? -errno : fd;
}

int thp_uffd_create(void)
{
	int dev, fd;

	dev = open(THP_UFFD_DEV, O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = thp_uffd_open_dev(dev, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		return fd;
	}
	dev = -errno;
	/* Not UFFD_USER_MODE_ONLY: kernel-mode touches would get EFAULT. */
	fd = thp_uffd_open_syscall(O_CLOEXEC | O_NONBLOCK);
	if (fd == -EPERM && (dev == -EACCES || dev == -EPERM || dev == -ENOENT))
		return -EACCES;
	return fd;
}

int thp_uffd_api_ioctls(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if (granted)
		*granted = api.features;
	if (ioctls)
		*ioctls = api.ioctls;
	return 0;
}

int thp_uffd_api(int fd, uint64_t features, uint64_t *granted)
{
	return thp_uffd_api_ioctls(fd, features, granted, NULL);
}

int thp_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register r = { .range = { start, len }, .mode = mode };

	return ioctl(fd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
}

int thp_uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { start, len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

int thp_uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { start, len };

	return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

int thp_uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done)
{
	struct uffdio_move m = { .dst = dst, .src = src, .len = len, .mode = mode };
	int r = ioctl(fd, UFFDIO_MOVE, &m) < 0 ? -errno : 0;

	if (done)
		*done = m.move;
	return r;
}

int thp_uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done)
{
	struct uffdio_copy c = { .dst = dst, .src = src, .len = len, .mode = mode };
	int r = ioctl(fd, UFFDIO_COPY, &c) < 0 ? -errno : 0;

	if (done)
		*done = c.copy;
	return r;
}

int thp_uffd_zeropage(int fd, uint64_t start, uint64_t len, uint64_t mode, int64_t *done)
{
	struct uffdio_zeropage z = { .range = { start, len }, .mode = mode };
	int r = ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;

	if (done)
		*done = z.zeropage;
	return r;
}

int thp_uffd_writeprotect(int fd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_writeprotect w = { .range = { start, len }, .mode = mode };

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

int thp_uffd_poison(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_poison p = { .range = { start, len } };

	return ioctl(fd, UFFDIO_POISON, &p) < 0 ? -errno : 0;
}
