/* SPDX-License-Identifier: MIT */
/*
 * Kernel capability probe: what this kernel offers thpswap and whether it is
 * enough for thpswapd to run.
 *
 * thp_probe() fills a plain struct thp_caps (no allocation, nothing to free):
 * probe.c makes the live probes (userfaultfd, PAGEMAP_SCAN, MADV_COLLAPSE and
 * io_uring are always real syscalls on the calling process), probe-files.c
 * reads /proc and /sys below an optional sysroot (tests), probe-verdict.c
 * decides.  Showing the result is thpswapctl's job (ctl/kernel-report.c).
 *
 * Files thp_probe() reads (relative to the sysroot):
 *   /proc/swaps /proc/vmstat /proc/pressure/memory
 *   /proc/sys/kernel/io_uring_disabled /proc/sys/vm/unprivileged_userfaultfd
 *   /sys/kernel/mm/transparent_hugepage/{enabled,defrag,shmem_enabled,
 *     use_zero_page,hpage_pmd_size,hugepages-<PMD>kB/enabled,
 *     khugepaged/{max_ptes_none,max_ptes_swap,max_ptes_shared}}
 *   /sys/module/zswap/parameters/{enabled,compressor,zpool,max_pool_percent,
 *     accept_threshold_percent,shrinker_enabled}
 */
#ifndef THPSWAP_PROBE_H
#define THPSWAP_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "probe-files.h"

/* Optional userfaultfd features thpswap reports, in this order. */
enum thp_uffd_feat {
	THP_UFFD_MOVE,
	THP_UFFD_EVENT_FORK,
	THP_UFFD_EVENT_REMOVE,
	THP_UFFD_EVENT_UNMAP,
	THP_UFFD_EVENT_REMAP,
	THP_UFFD_WP,
	THP_UFFD_WP_ASYNC,
	THP_UFFD_POISON,
	THP_UFFD_NR_FEAT
};

struct thp_feat {
	bool offered;   /* in the mask UFFDIO_API(features=0) returned */
	bool usable;    /* UFFDIO_API asking for it succeeded for this caller
			 * (MOVE: and a 4 KiB UFFDIO_MOVE really moved a page) */
	int err;        /* -errno of the step that failed, else 0 */
};

struct thp_caps {
	struct {
		char release[65];           /* uname -r */
		char machine[65];           /* uname -m */
	} kernel;

	struct {
		bool usable;                /* a full uffd (syscall or dev) works */
		int syscall_err;            /* userfaultfd(2): 0 or -errno */
		int user_mode_only_err;     /* userfaultfd(UFFD_USER_MODE_ONLY) */
		int64_t unprivileged;       /* vm.unprivileged_userfaultfd, -1 unknown */
		bool dev_present;           /* /dev/userfaultfd is a char device */
		bool dev_openable;          /* open(O_RDWR) succeeded */
		int dev_err;                /* open + USERFAULTFD_IOC_NEW: 0 or -errno */
		int api_err;                /* UFFDIO_API(features=0) */
		uint64_t api_features;      /* offered features */
		uint64_t api_ioctls;
		struct thp_feat feat[THP_UFFD_NR_FEAT];
		bool event_fork_for_caller; /* = feat[THP_UFFD_EVENT_FORK].usable */
		int move_pmd;               /* whole 2 MiB MOVE stayed PMD-mapped:
					     * 1 yes, 0 no, -1 not tested */
		int move_pmd_err;           /* why 0 or -1: -errno, else 0 */
	} uffd;

	struct {
		bool available;
		int err;
		/* What coldness can be told from (daemon/coldness.c): */
		uint64_t categories;        /* PAGE_IS_* bits the kernel accepts (0..15 tried) */
		int soft_dirty;             /* a page just written is PAGE_IS_SOFT_DIRTY:
					     * 1 yes, 0 no (CONFIG_MEM_SOFT_DIRTY off), -1 untested */
	} pagemap_scan;
	struct {
		bool available;             /* madvise(MADV_COLLAPSE) accepted */
		int collapsed;              /* the range became PMD-mapped: 1, 0, -1 unknown */
		int err;
	} madv_collapse;

	struct {
		char enabled[THP_PROBE_MODE_MAX];     /* "" if unreadable */
		int enabled_err;
		char pmd_enabled[THP_PROBE_MODE_MAX]; /* hugepages-<PMD>kB/enabled, "" if absent */
		char effective[THP_PROBE_MODE_MAX];   /* pmd_enabled unless "inherit", else enabled */
		char defrag[THP_PROBE_MODE_MAX];
		char shmem_enabled[THP_PROBE_MODE_MAX];
		int64_t use_zero_page;                /* -1 unknown */
		uint64_t pmd_size;                    /* 0 unknown */
		int pmd_size_err;
		int64_t max_ptes_none, max_ptes_swap, max_ptes_shared; /* -1 unknown */
	} thp;

	struct {
		int err;                    /* reading /proc/swaps */
		int count;                  /* devices in /proc/swaps (may exceed the array) */
		struct thp_swap_dev dev[THP_PROBE_MAX_SWAPS];
	} swap;

	struct {
		int err;                    /* -ENOENT: kernel without zswap */
		struct thp_zswap p;
		bool latched;               /* enabled now, or zswpout/zswpin > 0: large-folio
					     * swap-in (and PMD swap entries) are off until reboot */
	} zswap;

	struct {
		int err;                    /* reading /proc/vmstat */
		bool present;               /* thp_swpout_pmd in /proc/vmstat */
	} pmd_swap;

	struct {
		int64_t disabled;           /* kernel.io_uring_disabled, -1 unknown */
		int setup_err;              /* io_uring_setup(2): 0 or -errno */
		uint32_t features;
	} io_uring;

	struct {
		int err;                    /* reading /proc/pressure/memory */
		struct thp_psi mem;
		bool cap_sys_resource;      /* sub-2 s trigger windows allowed */
	} psi;
};

/* sysroot NULL or "/" = the real /proc and /sys.  0 or -errno (-EINVAL,
 * -ENAMETOOLONG); individual failures are recorded in @c, not returned. */
int thp_probe(struct thp_caps *c, const char *sysroot);
/* The file half of thp_probe(): reads the files below @root (already
 * without a trailing '/') into @c, which thp_probe() has initialised. */
void thp_probe_files(struct thp_caps *c, const char *root);
/* "move", "event_fork", ... (the JSON key), NULL when out of range. */
const char *thp_uffd_feat_name(enum thp_uffd_feat f);

/* Which PAGE_IS_* categories PAGEMAP_SCAN on @pmfd accepts (the kernel
 * refuses one it has not got with EINVAL), and whether a page just written
 * reads as soft-dirty (@soft_dirty: 1, 0, or -1 when it could not be
 * tried).  Read-access tracking, where a kernel adds it, is a category past
 * PAGE_IS_GUARD.  0 or -errno (PAGEMAP_SCAN itself fails). */
int thp_probe_pagemap_categories(int pmfd, uint64_t *categories, int *soft_dirty);

/*
 * How the kernel tier (lib/kswap.c) works here, from what the probe found:
 * NONE without a swap device; PMD where the kernel keeps a swapped THP as
 * one PMD swap entry (thp_swpout_pmd in /proc/vmstat, a patch series not in
 * any released kernel) and zswap was never enabled this boot (which turns
 * that path off); else COLLAPSE: swapped as 512 PTEs, back in 4 KiB pages,
 * collapsed by the agent.  An unreadable zswap state counts as latched.
 */
enum thp_kswap_mode {
	THP_KSWAP_NONE = 0,
	THP_KSWAP_COLLAPSE,
	THP_KSWAP_PMD,
};
enum thp_kswap_mode thp_probe_kswap_mode(const struct thp_caps *c);
/* "none", "collapse", "pmd". */
const char *thp_kswap_mode_name(enum thp_kswap_mode m);

/* The verdict.  0 if thpswapd can run; else -ENOTSUP and @msg holds one
 * '\n'-terminated line per missing item: what is missing, then ": " and what
 * to do (no program prefix).  @msg is always NUL-terminated (truncated to
 * @msgsz). */
int thp_probe_required(const struct thp_caps *c, char *msg, size_t msgsz);
/* The verdict in words on @f: "thpswapd can run on this kernel." or
 * "thpswapd cannot run on this kernel:" and the missing items, indented.
 * Returns what thp_probe_required() returns. */
int thp_probe_verdict_print(const struct thp_caps *c, FILE *f);

#endif
