/* SPDX-License-Identifier: MIT */
/* thpswap-bench helpers: clocks, /proc readers, statistics, the daemon. */
#ifndef THPSWAP_BENCH_H
#define THPSWAP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
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
/* The header of the arena @fd (thp_arena_self_fd), read (pread) as the
 * agent last wrote it: 0 or -errno. */
int b_arena_header(int fd, struct thp_arena_header *h);

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

/*
 * Where the time of restores and evictions went (breakdown.c): the
 * library's timing samples of this process (lib/samples.h) matched to the
 * bench's stamps around each call.  One timed call on the 2 MiB unit at
 * @addr: an access (@t_in just before the first touch, @t_first when it
 * returned, @t_out after the unit's last touch) or an eviction (@t_in,
 * @t_out around the call).
 */
struct b_timed {
	uint64_t addr;
	uint64_t t_in, t_first, t_out;
	bool write;
};
#define B_RESTORE_PARTS 8
#define B_RESTORE_FLAGS 4
#define B_EVICT_PARTS 8
#define B_EVICT_FLAGS 1
extern const char *const b_restore_parts[B_RESTORE_PARTS];
extern const char *const b_restore_flags[B_RESTORE_FLAGS];
extern const char *const b_evict_parts[B_EVICT_PARTS];
extern const char *const b_evict_flags[B_EVICT_FLAGS];
/* The calls in one band of ranks by latency: how many, how many had a
 * sample, their mean latency, the mean of each part over those with a
 * sample (restore or eviction parts, in microseconds), and how many of
 * those were flagged (the *_flags names). */
struct b_band {
	size_t n, matched;
	double lat_us;
	double part_us[B_RESTORE_PARTS > B_EVICT_PARTS ? B_RESTORE_PARTS : B_EVICT_PARTS];
	size_t flag[B_RESTORE_FLAGS > B_EVICT_FLAGS ? B_RESTORE_FLAGS : B_EVICT_FLAGS];
};
/* Bands [0]: ranks 45..55 % (about the median), [1]: the slowest 1 %. */
struct b_breakdown {
	bool on;
	size_t samples, restores_matched, evictions_matched;
	struct b_band rd[2], wr[2], ev[2];
};
struct thpswap_session;
/* Match samples [@from, @to) of @s to @nacc accesses and @nev evictions of
 * the @units units from @base, and sum up the bands.  0 or -ENOMEM. */
int b_breakdown(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t base, size_t units,
		const struct b_timed *acc, size_t nacc, const struct b_timed *ev, size_t nev,
		struct b_breakdown *out);

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
