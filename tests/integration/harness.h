/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness: starts the real thpswapd (path in $THPSWAPD) on a
 * private socket, socket-activated (the harness binds the socket, so clients
 * can connect the moment start returns: no sleeping, no polling), and tears
 * it down by pid.  Exit codes follow automake: 0 pass, 1 fail, 77 skip.
 */
#ifndef THPSWAP_HARNESS_H
#define THPSWAP_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define H_PASS 0
#define H_FAIL 1
#define H_SKIP 77

struct h_daemon {
	pid_t pid;
	char dir[64];     /* private temp dir */
	char sock[128];   /* socket path inside it; exported as THPSWAP_SOCKET */
};

/*
 * Skip (exit 77) unless we are root and the kernel has what thpswap needs:
 * the probe's verdict (thp_probe_required), one "skip: <reason>" line per
 * missing item on stdout.  $THPSWAP_TEST_SYSROOT, when set, makes the probe
 * read /proc and /sys below that directory (a fixture in tests/fixtures/):
 * that is how the skip path is tested on a kernel that has everything.
 */
void h_require_root(void);

/* Start thpswapd with @args (NULL-terminated, may be NULL) after the socket
 * options.  Returns 0 or -errno. */
int h_daemon_start(struct h_daemon *d, const char *const *args);
/* SIGTERM, wait; returns its exit status (0..255), 128+sig, or -errno. */
int h_daemon_stop(struct h_daemon *d);
/* SIGKILL it and wait (a crash: nothing is told, nothing cleaned up);
 * returns 128+9 or -errno.  The socket file stays, nobody listening. */
int h_daemon_kill(struct h_daemon *d);
/* Start thpswapd again on @d's socket path (bound afresh), after
 * h_daemon_kill; h_daemon_stop stops it as before.  0 or -errno. */
int h_daemon_restart(struct h_daemon *d, const char *const *args);
/* The same on a listening socket the caller made at d->sock with h_listen
 * (and keeps, as systemd keeps a socket unit's across restarts: clients
 * connect meanwhile and wait in its backlog).  h_listen returns the fd or
 * -errno. */
int h_listen(const struct h_daemon *d);
int h_daemon_restart_on(struct h_daemon *d, const char *const *args, int listen_fd);

/* Run thpswapctl (path in $THPSWAPCTL) against @d with "--socket", then
 * @argv (NULL-terminated).  Captures stdout into @out (NUL-terminated,
 * truncated to @outsz).  Returns the exit status or -errno. */
int h_ctl(const struct h_daemon *d, char *out, size_t outsz, const char *const *argv);

/* The number after the first "@key": in @json, or -1. */
long long h_json_u64(const char *json, const char *key);

/* Bytes of Rss and AnonHugePages of this process (smaps_rollup). */
int h_rss(size_t *rss, size_t *anon_huge);
/* Number of 2 MiB units in [addr, addr+len) that are PMD-mapped
 * (PAGEMAP_SCAN PAGE_IS_HUGE|PRESENT), or -errno. */
long h_pmd_mapped(const void *addr, size_t len);

/* Fail the test with a message naming the file and line. */
#define H_CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(H_FAIL); } } while (0)

/* ---- run time, helper processes, JSON replies ---- */

/* $THPSWAP_TEST_SECONDS if it is a positive number, else @dflt. */
unsigned h_test_seconds(unsigned dflt);

/* Number of 2 MiB units in [addr, addr+len) mapped by the huge zero page
 * (PAGEMAP_SCAN PAGE_IS_HUGE|PRESENT|PFNZERO), or -errno. */
long h_pmd_zero_mapped(const void *addr, size_t len);

/* posix_spawn @argv with a pipe to its stdin (*@to_child, write end) and one
 * from its stdout (*@from_child, read end); both ends are O_CLOEXEC here.
 * Returns 0 or -errno. */
int h_spawn_piped(pid_t *pid, const char *const *argv, int *to_child, int *from_child);
/* Read one '\n'-terminated line (without it) from @fd, byte by byte so that
 * nothing after it is consumed.  Returns its length, 0 at EOF, or -errno. */
long h_read_line(int fd, char *buf, size_t sz);

/* The fds of @pid: how many, and how many link to a target containing
 * @needle (may be NULL).  0 or -errno. */
int h_count_fds(pid_t pid, const char *needle, unsigned *total, unsigned *matching);

/* Copy into @out the innermost JSON object of @json that contains
 * "@key": "@value" (a string member); 0, -ENOENT or -ENOSPC. */
int h_json_object(const char *json, const char *key, const char *value, char *out, size_t outsz);
/* The string value of the first "@key" in @json into @out ("null" for
 * null); 0, -ENOENT or -ENOSPC. */
int h_json_str(const char *json, const char *key, char *out, size_t outsz);
/* The (possibly negative) integer after the first "@key"; 0 or -ENOENT. */
int h_json_i64(const char *json, const char *key, long long *out);

/* On SIGBUS (a touch of a region whose record failed verification and was
 * poisoned), print the address, its region number in [@base, @base+@len),
 * and the session's corrupt/eviction/restore counters, then die of the
 * signal.  @s and @base are remembered; call again to change them. */
struct thpswap_session;
void h_report_sigbus(struct thpswap_session *s, const void *base, size_t len);
/* Read the byte at @p: true if that raised SIGBUS (a poisoned region), false
 * if it read.  SIGBUS is caught for the read only, the handler before it put
 * back; the calling thread's, one caller at a time. */
bool h_read_sigbus(const volatile char *p);

/* ---- cases, deadlines, data ----
 * Each case runs in its own process (posix_spawn of this executable with
 * "--case NAME"), with its own session of one shared daemon: a case that
 * hangs or crashes fails alone and the others still run. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "thpswap/thpswap.h"

#define H_PAGE 4096u
#define H_PAGES_PER_REGION (THPSWAP_REGION_SIZE / H_PAGE)

/*
 * A zram swap device of the test's own, @mib MiB at the top priority, made
 * by the runner before its cases (never a device it did not make); removed
 * by h_swap_down, at exit and on SIGINT/TERM/HUP.  0, or -errno with the
 * reason in @why (no zram here, say: skip).
 */
int h_swap_up(unsigned mib, char *why, size_t whysz);
/* The same with a swap file of @mib MiB in /var/tmp (a file system's swap
 * path: the kernel splits a THP to swap it out there, and maps its zero
 * subpages to the zero page), removed by h_swap_down too. */
int h_swap_file_up(unsigned mib, char *why, size_t whysz);
void h_swap_down(void);
const char *h_swap_dev(void);
/* Write @s to the file at @path (a /proc or /sys knob): 0 or -errno. */
int h_write_str(const char *path, const char *s);
/* /proc/vmstat's value of @key, or -1 if it has none. */
long long h_vmstat(const char *key);

struct h_case {
	const char *name;
	/* Fails with H_CHECK; passes by returning. */
	void (*run)(struct thpswap_session *s, const struct h_daemon *d, int variant);
	int variant;		/* passed to run: one function, several cases */
	unsigned deadline;	/* seconds before the case counts as hung */
};

/* The whole test: as a case child (argv "--case NAME") run that case and
 * exit; else start thpswapd with @daemon_args, run every case (or those named
 * in argv) one after the other, print one PASS/FAIL/HANG line each and
 * return H_PASS/H_FAIL/H_SKIP. */
int h_run_cases(int argc, char **argv, const struct h_case *cases, size_t n,
		const char *const *daemon_args);

/* Where this thread is (printed if the deadline fires).  Per thread. */
void h_at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* After @seconds (times the build's slowdown, see tests/meson.build) print
 * every thread's h_at, SIGKILL the h_track'ed children and _exit(1); 0
 * disarms. */
void h_deadline(unsigned seconds);
/* How many times slower than native this build runs (4 under
 * ThreadSanitizer, else 1; tests/meson.build). */
unsigned h_slowdown(void);
/* A fatal signal's report (address, counters, every thread's h_at), then
 * _exit(1); h_deadline installs it for SIGSEGV and SIGBUS, and a test's
 * own handler may chain to it. */
void h_fatal_signal(int sig, void *addr);
void h_track(pid_t pid);
void h_untrack(pid_t pid);
/* waitpid @pid, untrack it; returns its exit status or 128+signal. */
int h_wait(pid_t pid);

/* One counter of this process's session as the daemon reports it
 * (thpswapctl --json stats --pid), e.g. "copy_child"; -1 if unknown. */
long long h_counter(const struct h_daemon *d, const char *name);
/* Print "@label: faults=.. evictions=.. ... copy_child=.." (one line). */
void h_report(struct thpswap_session *s, const struct h_daemon *d, const char *label);
/* This session's counters (H_CHECKed). */
struct thpswap_stats h_stats(struct thpswap_session *s);

/*
 * Test data, 4 KiB at a time: page @pg (a test-wide page number) of
 * generation @gen (>= 1; 0 means all zeros).  Every 8-byte word is
 * gen << 40 | pg << 12 | word index: nonzero, compressible (about 3:1),
 * and a wrong page says which page and generation it holds.
 */
void h_page_fill(void *page, uint64_t pg, uint32_t gen);
/* First differing offset in @page, or -1. */
long h_page_check(const void *page, uint64_t pg, uint32_t gen);
/* Fill/check @len bytes from @base whose first page is @pg0, all of
 * generation @gen (or per page from @gens when not NULL).  h_check prints
 * the first difference (with @what, the address, the expected and found
 * page/generation and whether the page is all zero) and returns its offset,
 * or -1 when all is equal. */
void h_fill(void *base, size_t len, uint64_t pg0, uint32_t gen);
long h_check(const void *base, size_t len, uint64_t pg0, uint32_t gen, const uint32_t *gens,
	     const char *what);
/* A generation with this bit may also read as zeros (MADV_FREE). */
#define H_OR_ZERO 0x80000000u
/* Describe what @page holds: "zeros", "page P gen G", "other". */
const char *h_page_what(const void *page, char *buf, size_t sz);

/* Wait until the agent has handled every event raised before the call:
 * zaps @barrier (a managed region kept for this) and reads it; the fault
 * is served after the earlier events (one queue, in order). */
void h_agent_sync(void *barrier);
/* Evict [addr, addr+len) now (THPSWAP_ADVICE_COLD); returns regions evicted. */
int h_evict(struct thpswap_session *s, void *addr, size_t len);

/* Reserve @len bytes of address space at a 2 MiB boundary + @skew, as a
 * PROT_NONE mapping of our own: an mremap(MREMAP_FIXED) onto it replaces
 * it, and no other thread's mmap can take the place meanwhile. */
void *h_reserve(size_t len, size_t skew);

/* Managed memory with a shadow: the generation of every page. */
struct h_mem {
	char *base;
	size_t len;
	uint64_t pg0;		/* page number of base (moves with the data) */
	uint32_t *gen;		/* per page; 0 = zeros, | H_OR_ZERO = or zeros */
};
/* thpswap_map @nreg regions; shadow all zeros. */
void h_mem_map(struct thpswap_session *s, struct h_mem *m, size_t nreg, uint64_t pg0);
/* Write generation @gen to [off, off+len) (page-aligned) and the shadow. */
void h_mem_write(struct h_mem *m, size_t off, size_t len, uint32_t gen);
/* madvise(@advice) [off, off+len) and update the shadow (DONTNEED: zeros,
 * FREE: old or zeros). */
void h_mem_zap(struct h_mem *m, size_t off, size_t len, int advice);
/* Every byte against the shadow; fails the test naming @what. */
void h_mem_check(const struct h_mem *m, const char *what);
void h_mem_free(struct h_mem *m);
/* h_mem_map @nreg regions (page numbers from 0), write generation 1 to
 * all, evict the first @nevict (all must go). */
void h_mem_prepare(struct thpswap_session *s, struct h_mem *m, size_t nreg, size_t nevict);
/* @nreg managed regions (thpswap_map) filled with thp_datagen @kind, seed
 * @seed, region i as index i, each PMD-mapped (checked); and every byte of
 * them against what thp_datagen would write, failing the test naming @what. */
void *h_map_data(struct thpswap_session *s, size_t nreg, int kind, uint64_t seed);
void h_check_data(const void *mem, size_t nreg, int kind, uint64_t seed, const char *what);
/* One managed region for h_agent_sync. */
void *h_barrier_map(struct thpswap_session *s);

/*
 * Evict all of @m and check that it happened: thpswap_advise must act on
 * every region that was resident, and afterwards no region is resident and
 * every region holding data (a page the shadow says is written and not
 * MADV_FREEd) is stored in RAM, as the arena's records say.  A test that
 * reads "after evict + restore" must know the regions really left.  Returns
 * the number of regions evicted.
 */
int h_mem_evict(struct thpswap_session *s, const struct h_mem *m, const char *what);

/* ---- the arena, read as the daemon reads it ----
 * The records and the memfd's allocation are an oracle independent of the
 * session's counters.  The arena is read with pread(2), never mapped: a
 * read fault on a hole of a tmpfs file allocates a page, which would change
 * what is being measured. */
#include "arena.h"

/* The session's arena memfd: its own descriptor (do not close it), found in
 * /proc/self/fd by the name thpswapd gives it ("memfd:thpswap-arena:PID").
 * Fails the test unless there is exactly one. */
int h_arena_fd(void);

/* The arena's header as it is now: layout, config and the session's
 * counters (ctr[THP_C_*], more than struct thpswap_stats has). */
struct thp_arena_header h_arena_header(int fd);

/* What the arena says about one 2 MiB region. */
struct h_region_view {
	uint32_t state;		/* enum thp_state; THP_ST_FREE: no record */
	uint32_t flags;		/* THP_RF_* */
	uint32_t stored_len;
	uint32_t nrec;		/* live records with this address (1 is right) */
};
/* The records of the @nreg regions from @addr (2 MiB-aligned), read from
 * the arena on @fd now. */
void h_arena_view(int fd, const void *addr, size_t nreg, struct h_region_view *v);
/* Every live record of the arena on @fd, read a chunk at a time, to @fn. */
void h_arena_each(int fd, void (*fn)(uint32_t idx, const struct thp_record *r, void *arg),
		  void *arg);
/* The index of the live record of the region at @addr in the arena on
 * @fd, or -1 if it has none. */
long h_arena_find(int fd, const void *addr);
/* One line about the region at @addr for a failure report: its record,
 * how much of it is present and whether it is PMD-mapped. */
void h_region_describe(int fd, const void *addr, char *buf, size_t sz);
/* Print (stderr, after "@what: ") the session's counters of why evictions
 * left regions alone, from the arena's header (not all of them are in
 * struct thpswap_stats). */
void h_evict_reasons(int fd, const char *what);

/*
 * The stored bytes against what tmpfs really holds.  The arena memfd's
 * allocated blocks (st_blocks) must cover every record's stored bytes
 * (rounded up to 4 KiB per slot) and exceed them by no more than the header
 * and records area; no slot may hold data beyond its stored bytes
 * (SEEK_DATA); and the records must add up to the stored_bytes counter.  A
 * restore frees its slot after waking the faulting thread, so the check
 * first waits for the agent with h_agent_sync(@barrier); NULL only when no
 * restore can be in flight (right after an eviction, say).
 */
void h_check_stored(struct thpswap_session *s, void *barrier, const char *what);

#endif
