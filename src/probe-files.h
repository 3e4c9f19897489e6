/* SPDX-License-Identifier: MIT */
/*
 * Parsers of the /proc and /sys files the kernel probe reads (probe.h).
 *
 * Each takes the file's path and returns 0 (or a count) or -errno: -ENOENT
 * missing file/key, -EINVAL malformed content, -ENAMETOOLONG value too long
 * for the buffer.  Outputs are untouched on failure.
 */
#ifndef THPSWAP_PROBE_FILES_H
#define THPSWAP_PROBE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THP_SYSFS_DIR "/sys/kernel/mm/transparent_hugepage"
#define THP_ZSWAP_DIR "/sys/module/zswap/parameters"

#define THP_PROBE_MODE_MAX  32   /* a THP mode word ("madvise") */
#define THP_PROBE_NAME_MAX  256  /* a swap device's file name */
#define THP_PROBE_MAX_SWAPS 32   /* MAX_SWAPFILES is at most 32 */

struct thp_swap_dev {
	char filename[THP_PROBE_NAME_MAX]; /* unescaped; truncated if longer */
	char type[16];                     /* "file" or "partition" */
	uint64_t size_kib;
	uint64_t used_kib;
	int priority;
};

struct thp_zswap {
	int enabled;                        /* 1, 0, -1 unknown */
	char compressor[THP_PROBE_MODE_MAX];/* "" unknown */
	char zpool[THP_PROBE_MODE_MAX];     /* "" when the kernel has none */
	int64_t max_pool_percent;           /* -1 unknown */
	int64_t accept_threshold_percent;   /* -1 unknown */
	int shrinker_enabled;               /* 1, 0, -1 unknown */
};

struct thp_psi_line {
	bool present;
	double avg10, avg60, avg300;        /* percent */
	uint64_t total;                     /* microseconds */
};

struct thp_psi {
	struct thp_psi_line some, full;
};

/* A THP mode file ("always [madvise] never"): copies the bracketed word. */
int thp_parse_mode(const char *path, char *mode, size_t modesz);
/* A file holding one unsigned decimal number (and optional newline). */
int thp_parse_u64(const char *path, uint64_t *v);
/* A module bool parameter: Y/N/1/0 -> 1/0. */
int thp_parse_bool(const char *path, int *v);
/* The first line of a file, newline stripped; -EINVAL if empty. */
int thp_parse_line(const char *path, char *buf, size_t bufsz);
/* /proc/vmstat: the value of @key (whole-word match). */
int thp_parse_vmstat(const char *path, const char *key, uint64_t *v);
/* /proc/vmstat: 1 if the line @key exists, 0 if not. */
int thp_vmstat_has(const char *path, const char *key);
/* /proc/swaps: fills up to @max devices and returns how many the file lists. */
int thp_parse_swaps(const char *path, struct thp_swap_dev *dev, int max);
/* A zswap parameters directory (/sys/module/zswap/parameters): "enabled"
 * must exist (-ENOENT: no zswap); the others are optional. */
int thp_parse_zswap(const char *dir, struct thp_zswap *z);
/* /proc/pressure/memory ("some ..." and, optionally, "full ..."). */
int thp_parse_psi(const char *path, struct thp_psi *p);

#endif
