/* SPDX-License-Identifier: MIT */
/* Thin userfaultfd wrappers: each returns 0 (or an fd) or -errno. */
#ifndef THPSWAP_UFFD_H
#define THPSWAP_UFFD_H

#include <stdint.h>

/* A new uffd for the caller's mm: /dev/userfaultfd, else userfaultfd(2).
 * O_CLOEXEC|O_NONBLOCK.  -EACCES when neither is allowed. */
int thp_uffd_create(void);
int thp_uffd_api(int fd, uint64_t features, uint64_t *granted);
int thp_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t mode);
int thp_uffd_unregister(int fd, uint64_t start, uint64_t len);
int thp_uffd_wake(int fd, uint64_t start, uint64_t len);
/* @done gets the bytes moved/copied/zeroed even on failure (may be NULL). */
int thp_uffd_move(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_copy(int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_zeropage(int fd, uint64_t start, uint64_t len, uint64_t mode, int64_t *done);
int thp_uffd_poison(int fd, uint64_t start, uint64_t len);

#endif
