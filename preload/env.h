/* SPDX-License-Identifier: MIT */
/*
 * The environment the preload reads and thpswap-run writes: the names,
 * the defaults and the one parser of each value, shared by both.
 */
#ifndef THPSWAP_PRELOAD_ENV_H
#define THPSWAP_PRELOAD_ENV_H

#include <stdbool.h>
#include <stdint.h>

#define ENV_SOCKET   "THPSWAP_SOCKET"    /* the daemon's socket (libthpswap reads it) */
#define ENV_MIN_SIZE "THPSWAP_MIN_SIZE"  /* smallest mapping adopted: bytes, K, M or G */
#define ENV_SCAN_MS  "THPSWAP_SCAN_MS"   /* milliseconds between looks at the mappings */
#define ENV_QUIET    "THPSWAP_QUIET"     /* 1: say nothing on stderr */
#define ENV_CHILDREN "THPSWAP_CHILDREN"  /* 0: neither fork children nor exec'd programs */
#define ENV_PRELOAD  "THPSWAP_PRELOAD"   /* thpswap-run: the preload to use instead */

#define PRELOAD_NAME "libthpswap-preload.so"

#define MIN_SIZE_DEFAULT (2ull << 20)
#define MIN_SIZE_LEAST   (2ull << 20)    /* nothing smaller holds a 2 MiB block */
#define SCAN_MS_DEFAULT  100u
#define SCAN_MS_MOST     60000u

/* "64M", "1G", "2097152": 0 and *@out, or -EINVAL (not a size, or below
 * MIN_SIZE_LEAST) / -ERANGE. */
int env_parse_size(const char *v, uint64_t *out);
/* 1 .. SCAN_MS_MOST: 0 and *@out, or -EINVAL. */
int env_parse_ms(const char *v, unsigned *out);
/* "1", "yes", "true" / "0", "no", "false": 0 and *@out, or -EINVAL. */
int env_parse_bool(const char *v, bool *out);

#endif
