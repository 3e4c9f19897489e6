/* SPDX-License-Identifier: MIT */
#ifndef THPSWAP_HASH_H
#define THPSWAP_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A fast non-cryptographic 64-bit hash (detects corruption of stored bytes). */
uint64_t thp_hash64(const void *p, size_t len);

#endif
