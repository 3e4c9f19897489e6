/* SPDX-License-Identifier: MIT */
/*
 * thpswap-pmd-share PID [ADDR...]: how much of a process's anonymous
 * memory is mapped by PMDs, from outside it (PAGEMAP_SCAN of
 * /proc/PID/pagemap over the private mappings /proc/PID/maps shows without
 * a file: the heap, malloc's arenas, stacks), or of the 2 MiB regions at
 * the ADDRs given (hexadecimal: thpswap's resident regions, say).  Prints
 * one JSON object: present bytes, bytes in PMD-mapped 2 MiB units, and
 * their share in per cent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagemap.h"

#define PAGE 4096ull
#define PMD (2ull << 20)

/* A private mapping with no file behind it (or the heap). */
static int anon_line(const char *line, uint64_t *start, uint64_t *end)
{
	char perms[8], path[256] = "";
	unsigned long long s, e;

	if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %255[^\n]", &s, &e, perms, path) < 3)
		return 0;
	if (perms[3] != 'p')
		return 0;
	if (path[0] && strcmp(path, "[heap]") && strcmp(path, "[stack]"))
		return 0;
	*start = s;
	*end = e;
	return 1;
}

/* Adds what [start, end) has present and PMD-mapped; a range gone since
 * it was listed counts as nothing. */
static void count(int fd, uint64_t start, uint64_t end, uint64_t *present, uint64_t *pmd)
{
	long p = thp_pagemap_count_present(fd, start, end);
	long h = thp_pagemap_count_pmd(fd, start, end);

	if (p < 0 || h < 0)
		return;
	*present += (uint64_t)p * PAGE;
	*pmd += (uint64_t)h * PMD;
}

static int regions(int pid, int n, char **addr)
{
	uint64_t present = 0, pmd = 0;
	int fd = thp_pagemap_open(pid);

	if (fd < 0) {
		fprintf(stderr, "thpswap-pmd-share: /proc/%d/pagemap: %s\n", pid, strerror(-fd));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char *e;
		uint64_t a = strtoull(addr[i], &e, 16);

		if (*e || a % PMD) {
			fprintf(stderr, "thpswap-pmd-share: %s: not a 2 MiB-aligned address\n", addr[i]);
			close(fd);
			return 2;
		}
		count(fd, a, a + PMD, &present, &pmd);
	}
	close(fd);
	printf("{\"pid\": %d, \"regions\": %d, \"present_bytes\": %" PRIu64 ", \"pmd_bytes\": %" PRIu64
	       ", \"pmd_pct\": %.2f}\n", pid, n, present, pmd,
	       present ? 100.0 * (double)pmd / (double)present : 0.0);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t present = 0, pmd = 0, start, end;
	char path[64], line[512];
	FILE *maps;
	int pid, fd;

	if (argc < 2 || (pid = atoi(argv[1])) <= 0) {
		fputs("usage: thpswap-pmd-share PID [ADDR...]\n", stderr);
		return 2;
	}
	if (argc > 2)
		return regions(pid, argc - 2, argv + 2);
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = fopen(path, "re");
	if (!maps) {
		fprintf(stderr, "thpswap-pmd-share: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fd = thp_pagemap_open(pid);
	if (fd < 0) {
		fprintf(stderr, "thpswap-pmd-share: /proc/%d/pagemap: %s\n", pid, strerror(-fd));
		fclose(maps);
		return 1;
	}
	while (fgets(line, sizeof(line), maps))
		if (anon_line(line, &start, &end))
			count(fd, start, end, &present, &pmd);
	close(fd);
	fclose(maps);
	printf("{\"pid\": %d, \"anon_present_bytes\": %" PRIu64 ", \"pmd_bytes\": %" PRIu64
	       ", \"pmd_pct\": %.2f}\n", pid, present, pmd,
	       present ? 100.0 * (double)pmd / (double)present : 0.0);
	return 0;
}
