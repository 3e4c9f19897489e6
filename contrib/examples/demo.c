/* SPDX-License-Identifier: MIT */
/*
 * thpswap-demo: the swap round trip of about 1 GiB of heap-like memory,
 * against a running thpswapd.
 *
 * Maps managed memory, fills it with realistic mixed content, has every
 * region evicted, shows what that released and what it stored, then touches
 * everything back (read faults for even regions, write faults for odd ones),
 * timing each region's first touch, verifies every byte and counts the
 * regions that came back as huge pages with PAGEMAP_SCAN.
 *
 * Exit status: 0 all bytes right; 1 a byte differs or something failed;
 * 2 bad usage; 3 thpswapd is not running.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datagen.h"
#include "pagemap.h"
#include "util.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define MIB (1024.0 * 1024.0)
#define SEED 0xde30

enum { EXIT_USAGE = 2, EXIT_NO_DAEMON = 3 };

static bool tty;

/* Progress on stderr: a line rewritten in place on a terminal, only the
 * final count otherwise. */
static void progress(const char *what, size_t done, size_t total)
{
	if (tty && (done == total || done % 16 == 0))
		fprintf(stderr, "\r%-12s %zu/%zu regions (%zu%%)", what, done, total, done * 100 / total);
	if (done == total)
		fprintf(stderr, tty ? "\n" : "%-12s %zu regions\n", what, total);
}

/* This process's Rss (smaps_rollup), in bytes, or 0 if unreadable. */
static size_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "re");
	char line[256];
	size_t kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Rss: %zu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @n sorted values, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, unsigned pct)
{
	size_t rank = (n * pct + 99) / 100;

	return n ? (double)v[rank ? rank - 1 : 0] / 1e3 : 0.0;
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: thpswap-demo [--size MIB] [--socket PATH]\n"
"The thpswap round trip, against a running thpswapd: map MIB of managed memory,\n"
"fill it with heap-like data, have it all evicted, touch it all back, verify every\n"
"byte and report memory released, bytes stored, restore latency and how many\n"
"regions came back as whole huge pages.\n"
"\n"
"  -s, --size MIB     managed memory to use, a multiple of 2 (default 1024)\n"
"      --socket PATH  thpswapd's socket (default $THPSWAP_SOCKET, else %s)\n"
"  -h, --help         show this help and exit\n"
"\n"
"Start the daemon first (as root, or with /dev/userfaultfd access): thpswapd &\n"
"Exit status: 0 every byte right; 1 a byte differs or a step failed; 2 bad usage;\n"
"3 thpswapd is not running.\n", THPSWAP_DEFAULT_SOCKET);
}

static int open_session(struct thpswap_session **s, const char *sock)
{
	const char *path = sock ? sock : getenv("THPSWAP_SOCKET");
	int r;

	if (!path || !*path)
		path = THPSWAP_DEFAULT_SOCKET;
	r = thpswap_open(s, path);
	switch (r) {
	case 0:
		fprintf(stderr, "connected to thpswapd at %s\n", path);
		return 0;
	case -ENOENT:
	case -ECONNREFUSED:
		fprintf(stderr, "thpswap-demo: thpswapd is not running (no socket at %s): "
			"start it with: thpswapd &\n", path);
		return EXIT_NO_DAEMON;
	case -EACCES:
	case -EPERM:
		fprintf(stderr, "thpswap-demo: no access to %s or /dev/userfaultfd: run as root "
			"or as a member of group thpswap\n", path);
		break;
	case -EPROTO:
		fprintf(stderr, "thpswap-demo: thpswapd at %s speaks another protocol version: "
			"are both from the same build?\n", path);
		break;
	case -ENOTSUP:
		fprintf(stderr, "thpswap-demo: this kernel lacks UFFDIO_MOVE or userfaultfd "
			"events thpswap needs; see `thpswapctl kernel`\n");
		break;
	default:
		fprintf(stderr, "thpswap-demo: cannot open a thpswap session at %s: %s\n", path,
			strerror(-r));
	}
	return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct thpswap_session *s = NULL;
	struct thpswap_stats st;
	const char *sock = NULL;
	unsigned long mib = 1024;
	uint64_t *lat_rd = NULL, *lat_wr = NULL, t0, evict_ns;
	size_t n, nrd = 0, nwr = 0, nev = 0, bad = 0, rss0, rss1, len;
	bool *evicted = NULL;
	long pmd_before, pmd_after;
	char *mem, *end;
	int o, r, pm = -1, status = EXIT_FAILURE;

	while ((o = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			errno = 0;
			mib = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || mib < 2 || mib % 2 || mib > (1ul << 20)) {
				fprintf(stderr, "thpswap-demo: --size: '%s' is not an even number of "
					"MiB between 2 and 1048576\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'S':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "thpswap-demo: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	tty = isatty(STDERR_FILENO);
	setvbuf(stdout, NULL, _IOLBF, 0); /* in order with the progress on stderr */
	n = mib / 2;
	len = n * REG;

	r = open_session(&s, sock);
	if (r)
		return r;
	lat_rd = calloc(n, sizeof(*lat_rd));
	lat_wr = calloc(n, sizeof(*lat_wr));
	evicted = calloc(n, sizeof(*evicted));
	pm = thp_pagemap_open(0);
	if (!lat_rd || !lat_wr || !evicted) {
		fprintf(stderr, "thpswap-demo: out of memory\n");
		goto out;
	}
	if (pm < 0) {
		fprintf(stderr, "thpswap-demo: cannot open /proc/self/pagemap: %s\n", strerror(-pm));
		goto out;
	}
	r = thpswap_map(s, len, (void **)&mem);
	if (r) {
		fprintf(stderr, "thpswap-demo: cannot map %lu MiB of managed memory: %s%s\n", mib,
			strerror(-r), r == -ENOSPC ? " (more regions than the session's table "
			"holds: lower --size or raise THPSWAP_MAX_REGIONS)" : "");
		goto out;
	}

	printf("data: %s: %s\n", thp_datagen_name(THP_DATA_HEAPMIX),
	       thp_datagen_describe(THP_DATA_HEAPMIX));
	for (size_t i = 0; i < n; i++) {
		thp_datagen_fill(mem + i * REG, REG, THP_DATA_HEAPMIX, SEED, i);
		progress("filling", i + 1, n);
	}
	pmd_before = thp_pagemap_count_pmd(pm, (uintptr_t)mem, (uintptr_t)mem + len);
	rss0 = rss_bytes();
	printf("mapped and filled %lu MiB: %zu regions, %ld of them huge pages\n", mib, n,
	       pmd_before);

	t0 = thp_now_ns();
	for (size_t i = 0; i < n; i++) {
		r = thpswap_advise(s, mem + i * REG, REG, THPSWAP_ADVICE_COLD);
		if (r < 0) {
			fprintf(stderr, "\nthpswap-demo: cannot evict region %zu: %s\n", i, strerror(-r));
			goto out;
		}
		evicted[i] = r > 0;
		nev += evicted[i];
		progress("evicting", i + 1, n);
	}
	evict_ns = thp_now_ns() - t0;
	rss1 = rss_bytes();
	if (thpswap_get_stats(s, &st, sizeof(st)) < 0) {
		fprintf(stderr, "thpswap-demo: cannot read the session's statistics\n");
		goto out;
	}
	printf("evicted %zu of %zu regions in %.2f s (%llu all-zero, %llu compressed, "
	       "%llu kept resident as incompressible)\n", nev, n, (double)evict_ns / 1e9,
	       (unsigned long long)st.evicted_zero, (unsigned long long)st.evicted_ram,
	       (unsigned long long)st.evict_incompressible);
	printf("memory released: %.1f MiB (Rss %.1f -> %.1f MiB)\n",
	       rss0 > rss1 ? (double)(rss0 - rss1) / MIB : 0.0, (double)rss0 / MIB,
	       (double)rss1 / MIB);
	printf("stored: %.1f MiB for %.1f MiB evicted, ratio %.2f; net saving %.1f MiB\n",
	       (double)st.stored_bytes / MIB, (double)(nev * REG) / MIB,
	       st.stored_bytes ? (double)(nev * REG) / (double)st.stored_bytes : 0.0,
	       ((double)rss0 - (double)rss1 - (double)st.stored_bytes) / MIB);

	/* First touch of each region: a read fault for even ones, a write
	 * fault for odd ones (an atomic add of 0 writes without changing). */
	for (size_t i = 0; i < n; i++) {
		char *p = mem + i * REG;

		t0 = thp_now_ns();
		if (i & 1)
			__atomic_fetch_add(p, 0, __ATOMIC_RELAXED);
		else
			(void)*(volatile char *)p;
		if (evicted[i]) {
			if (i & 1)
				lat_wr[nwr++] = thp_now_ns() - t0;
			else
				lat_rd[nrd++] = thp_now_ns() - t0;
		}
		progress("restoring", i + 1, n);
	}
	for (size_t i = 0; i < n; i++) {
		long off = thp_datagen_check(mem + i * REG, REG, THP_DATA_HEAPMIX, SEED, i);

		if (off >= 0 && bad++ < 10)
			fprintf(stderr, "%sthpswap-demo: region %zu differs at offset %ld\n",
				tty ? "\n" : "", i, off);
		progress("verifying", i + 1, n);
	}
	pmd_after = thp_pagemap_count_pmd(pm, (uintptr_t)mem, (uintptr_t)mem + len);

	qsort(lat_rd, nrd, sizeof(*lat_rd), cmp_u64);
	qsort(lat_wr, nwr, sizeof(*lat_wr), cmp_u64);
	printf("restore latency, first touch: read  p50 %.0f us, p99 %.0f us (%zu regions)\n",
	       pct_us(lat_rd, nrd, 50), pct_us(lat_rd, nrd, 99), nrd);
	printf("                              write p50 %.0f us, p99 %.0f us (%zu regions)\n",
	       pct_us(lat_wr, nwr, 50), pct_us(lat_wr, nwr, 99), nwr);
	printf("huge pages after restore: %ld of %zu regions (%.1f %%), by PAGEMAP_SCAN\n",
	       pmd_after, n, pmd_after < 0 ? 0.0 : 100.0 * (double)pmd_after / (double)n);
	if (bad) {
		printf("FAILED: %zu of %zu regions differ\n", bad, n);
	} else {
		printf("every byte of %lu MiB is right\n", mib);
		status = 0;
	}
out:
	if (s && thpswap_close(s) < 0 && status == 0) {
		fprintf(stderr, "thpswap-demo: closing the session failed\n");
		status = EXIT_FAILURE;
	}
	if (pm >= 0)
		close(pm);
	free(lat_rd);
	free(lat_wr);
	free(evicted);
	return status;
}
