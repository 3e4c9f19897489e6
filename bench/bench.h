/* SPDX-License-Identifier: MIT */
/* thpswap-bench helpers: clocks, /proc readers, statistics, the daemon. */
#ifndef THPSWAP_BENCH_H
#define THPSWAP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define MIB ((size_t)1 << 20)
#define UNIT ((size_t)2 << 20)
#define PAGE_4K 4096u

/* User+system CPU of this process, all threads, in seconds. */
double b_self_cpu(void);

/* smaps_rollup of this process, in bytes. */
struct b_rollup {
	uint64_t rss, anon, anon_huge, swap, shmem;
};
int b_rollup(struct b_rollup *r);

/* Global kernel counters the bench records as deltas. */
enum b_vm {
	B_THP_SPLIT_PMD, B_THP_SPLIT_PAGE, B_THP_SWPOUT, B_THP_SWPOUT_FALLBACK,
	B_THP_FAULT_ALLOC, B_THP_COLLAPSE_ALLOC, B_PSWPIN, B_PSWPOUT, B_ZSWPIN,
	B_ZSWPOUT, B_VM__MAX
};
extern const char *const b_vm_names[B_VM__MAX];
int b_vmstat(uint64_t v[B_VM__MAX]);

/* /proc/meminfo, bytes. */
struct b_meminfo {
	uint64_t zswap, zswapped, swap_cached, swap_total, swap_free, available,
		 writeback;
};
int b_meminfo(struct b_meminfo *m);
/* Waits (polling /proc/meminfo, up to @timeout_s) until Writeback is back
 * to at most @base + 1 MiB: swap I/O has no completion to wait on.
 * Returns 0 or -ETIMEDOUT. */
int b_wait_writeback(uint64_t base, double timeout_s);

/* 4 KiB pages in [start, end) mapped to real memory: present and not the
 * shared zero page (a split THP maps its zero subpages there). */
long b_resident_pages(int pagemap_fd, uintptr_t start, uintptr_t end);
/* Used bytes of the swap device @path in /proc/swaps, or -ENOENT. */
int64_t b_swap_used(const char *path);
/* Memory a zram device (/dev/zramN) uses for what it stores, with its
 * allocator's overhead (mm_stat's mem_used_total), or -errno. */
int64_t b_zram_used(const char *dev);

/* CPU seconds (utime+stime, all threads) of process @pid. */
double b_pid_cpu(pid_t pid);

/* Latency summary in microseconds. */
struct b_lat {
	size_t n;
	double p50, p90, p99, mean, max, min;
};
void b_lat_summarise(const double *us, size_t n, struct b_lat *out);

/*
 * Dependent random reads: each 8-byte load (at a 64-byte line) decides the
 * next address, so nothing overlaps.  The path depends on @seed and on the
 * bytes read, so an identical copy of the data is walked identically.
 * Returns ns per step.
 */
double b_chase(const void *base, size_t len, uint64_t steps, uint64_t seed,
	       uint64_t *sink);

/* A thpswapd started on a private, already-listening socket. */
struct b_daemon {
	pid_t pid;
	char dir[160];
	char sock[176];   /* checked to fit sockaddr_un.sun_path before use */
	char log[512];
};
/* Binds the socket (in a new directory under $TMPDIR, else /tmp), then execs @path with @args (NULL-terminated) socket-
 * activated (LISTEN_FDS=1), so clients may connect as soon as this returns.
 * Its stdout/stderr go to @logpath. */
int b_daemon_start(struct b_daemon *d, const char *path,
		   const char *const *args, const char *logpath);
/* SIGTERM, wait (SIGKILL after 10 s); @cpu gets its CPU seconds from wait4.
 * Returns its exit status, 128+signal, or -errno. */
int b_daemon_stop(struct b_daemon *d, double *cpu);

/* Parses "1G", "512M", "64K", "4096" into bytes; -EINVAL on junk. */
int b_parse_size(const char *s, uint64_t *out);

#endif
