/* SPDX-License-Identifier: MIT */
/* Thin userfaultfd wrappers: each returns 0 (or an fd) or -errno. */
#ifndef THPSWAP_UFFD_H
#define THPSWAP_UFFD_H

#include <stdint.h>

#define THP_UFFD_DEV "/dev/userfaultfd"

/* A new uffd for the caller's mm: /dev/userfaultfd, else userfaultfd(2).
 * O_CLOEXEC|O_NONBLOCK.  -EACCES when neither is allowed. */
int thp_uffd_create(void);
/* userfaultfd(2) with @flags (O_CLOEXEC, O_NONBLOCK, UFFD_USER_MODE_ONLY). */
int thp_uffd_open_syscall(int flags);
/* USERFAULTFD_IOC_NEW on @devfd, an open /dev/userfaultfd, with @flags. */
int thp_uffd_open_dev(int devfd, int flags);
/* UFFDIO_API: once per fd.  @granted gets the features the kernel offers
 * (a superset of the ones enabled: those asked for); may be NULL. */
int thp_uffd_api(int fd, uint64_t features, uint64_t *granted);
/* The same, and @ioctls gets the ioctls mask UFFDIO_API returned (may be
 * NULL too). */
int thp_uffd_api_ioctls(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls);
int thp_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode);
int thp_uffd_unregister(int fd, uint64_t start, uint64_t len);
int thp_uffd_wake(int fd, uint64_t start, uint64_t len);
/* @done gets the bytes moved/copied/zeroed even on failure (may be NULL). */
int thp_uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_zeropage(int fd, uint64_t start, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_poison(int fd, uint64_t start, uint64_t len);
/* UFFDIO_WRITEPROTECT_MODE_WP protects; 0 lifts the protection and wakes
 * the range's waiters (unless UFFDIO_WRITEPROTECT_MODE_DONTWAKE). */
int thp_uffd_writeprotect(int fd, uint64_t start, uint64_t len, uint64_t mode);

#endif
