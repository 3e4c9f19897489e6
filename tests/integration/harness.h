/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness: starts the real thpswapd (path in $THPSWAPD) on a
 * private socket, socket-activated (the harness binds the socket, so clients
 * can connect the moment start returns: no sleeping, no polling), and tears
 * it down by pid.  Exit codes follow automake: 0 pass, 1 fail, 77 skip.
 */
#ifndef THPSWAP_HARNESS_H
#define THPSWAP_HARNESS_H

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

/* Skip (exit 77) unless root and the kernel has what thpswap needs. */
void h_require_root(void);

/* Start thpswapd with @args (NULL-terminated, may be NULL) after the socket
 * options.  Returns 0 or -errno. */
int h_daemon_start(struct h_daemon *d, const char *const *args);
/* SIGTERM, wait; returns its exit status (0..255), 128+sig, or -errno. */
int h_daemon_stop(struct h_daemon *d);

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

#endif
