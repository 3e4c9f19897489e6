/* SPDX-License-Identifier: MIT */
/*
 * thpswap-pmd-share PID: how much of a process's anonymous memory is
 * mapped by PMDs, from outside it (PAGEMAP_SCAN of /proc/PID/pagemap over
 * the private mappings /proc/PID/maps shows without a file: the heap,
 * malloc's arenas, stacks).  Prints one JSON object: present bytes, bytes
 * in PMD-mapped 2 MiB units, and their share in per cent.
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

int main(int argc, char **argv)
{
	uint64_t present = 0, pmd = 0, start, end;
	char path[64], line[512];
	FILE *maps;
	int pid, fd;

	if (argc != 2 || (pid = atoi(argv[1])) <= 0) {
		fputs("usage: thpswap-pmd-share PID\n", stderr);
		return 2;
	}
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
	while (fgets(line, sizeof(line), maps)) {
		long p, h;

		if (!anon_line(line, &start, &end))
			continue;
		p = thp_pagemap_count_present(fd, start, end);
		h = thp_pagemap_count_pmd(fd, start, end);
		/* A mapping gone since maps was read counts as nothing. */
		if (p < 0 || h < 0)
			continue;
		present += (uint64_t)p * PAGE;
		pmd += (uint64_t)h * PMD;
	}
	close(fd);
	fclose(maps);
	printf("{\"pid\": %d, \"anon_present_bytes\": %" PRIu64 ", \"pmd_bytes\": %" PRIu64
	       ", \"pmd_pct\": %.2f}\n", pid, present, pmd,
	       present ? 100.0 * (double)pmd / (double)present : 0.0);
	return 0;
}
