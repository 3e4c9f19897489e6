/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "uffd.h"

int thp_uffd_create(void)
{
	int dev, fd, err;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		err = errno;
		close(dev);
		if (fd >= 0)
			return fd;
		return -err;
	}
	err = errno;
	/* Not UFFD_USER_MODE_ONLY: kernel-mode touches would get EFAULT. */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	if (errno == EPERM && (err == EACCES || err == EPERM || err == ENOENT))
		return -EACCES;
	return -errno;
}

int thp_uffd_api(int fd, uint64_t features, uint64_t *granted)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if (granted)
		*granted = api.features;
	return 0;
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

int thp_uffd_poison(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_poison p = { .range = { start, len } };

	return ioctl(fd, UFFDIO_POISON, &p) < 0 ? -errno : 0;
}
