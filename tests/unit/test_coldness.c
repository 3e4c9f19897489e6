/* SPDX-License-Identifier: MIT */
/*
 * daemon/coldness.c: PAGEMAP_SCAN runs onto regions (fixture inputs), a
 * sysroot where the files are missing or are not /proc's (temporary
 * directories), and the real thing on the test's own memory and on a child
 * process's (written regions found where the kernel has soft-dirty).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel-abi.h"
#include "pagemap.h"
#include "thpswapd.h"
#include "util.h"

#define R THP_REGION_BYTES

static void test_mark(void **state)
{
	const struct thpd_cold_region r[] = {
		{ R, 10 }, { 2 * R, 11 }, { 3 * R, 12 }, { 5 * R, 13 }, { 8 * R, 14 },
	};
	const struct page_region v[] = {
		{ .start = R + 4096, .end = R + 8192 },          /* inside the first */
		{ .start = 3 * R - 4096, .end = 3 * R + 4096 },  /* across 2R|3R */
		{ .start = 6 * R, .end = 7 * R },                /* between regions */
		{ .start = 9 * R - 4096, .end = 9 * R },         /* the last page of 8R */
	};
	bool hot[5] = { false }, want[5] = { true, true, true, false, true };

	(void)state;
	thpd_cold_mark(v, 4, r, 5, hot);
	assert_memory_equal(hot, want, sizeof(hot));

	memset(hot, 0, sizeof(hot));
	thpd_cold_mark(v, 0, r, 5, hot);
	for (int i = 0; i < 5; i++)
		assert_false(hot[i]);

	/* one run over everything */
	memset(hot, 0, sizeof(hot));
	thpd_cold_mark(&(struct page_region){ .start = 0, .end = 16 * R }, 1, r, 5, hot);
	for (int i = 0; i < 5; i++)
		assert_true(hot[i]);
}

static char root[] = "/tmp/test-coldness-XXXXXX";

static void put(const char *rel, const char *text)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static off_t size_of(const char *rel)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

static void rm(const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	unlink(p);
	rmdir(p);
}

/* Files that are not /proc's: no PAGEMAP_SCAN, and nothing re-armed. */
static void test_scan_fixture(void **state)
{
	struct thpd_cold_region r[2] = { { 2 * R, 1 }, { R, 0 } };
	bool hot[2] = { true, true };
	char p[512];

	(void)state;
	assert_non_null(mkdtemp(root));
	/* no /proc at all */
	assert_int_equal(thpd_cold_scan(root, 4242, r, 2, hot), -ENOENT);
	assert_false(hot[0] || hot[1]);

	snprintf(p, sizeof(p), "%s/proc", root);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/proc/4242", root);
	assert_int_equal(mkdir(p, 0700), 0);
	put("proc/4242/pagemap", "");
	/* a pagemap but no clear_refs */
	assert_int_equal(thpd_cold_scan(root, 4242, r, 2, hot), -ENOENT);
	put("proc/4242/clear_refs", "");
	/* a plain file takes no PAGEMAP_SCAN: the look fails and the
	 * client is not re-armed */
	assert_int_equal(thpd_cold_scan(root, 4242, r, 2, hot), -ENOTTY);
	assert_int_equal(size_of("proc/4242/clear_refs"), 0);
	/* no regions: nothing opened, nothing done */
	assert_int_equal(thpd_cold_scan(root, 4243, r, 0, hot), 0);

	rm("proc/4242/clear_refs");
	rm("proc/4242/pagemap");
	rm("proc/4242");
	rm("proc");
	rmdir(root);
}

/* The test's own memory: four PMD-mapped regions, all written, then one. */
static void test_scan_self(void **state)
{
	enum { N = 4 };
	struct thpd_cold_region r[N];
	bool hot[N];
	uint64_t cats;
	enum thpd_cold_signal sig = thpd_cold_probe(&cats);
	char *p = thp_mmap_aligned(N * R, R, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	int pm = thp_pagemap_open(0);
	long pmd;

	(void)state;
	assert_true(p != MAP_FAILED);
	assert_true(pm >= 0);
	/* every kernel with PAGEMAP_SCAN has these */
	assert_true((cats & (PAGE_IS_PRESENT | PAGE_IS_HUGE)) == (PAGE_IS_PRESENT | PAGE_IS_HUGE));
	madvise(p, N * R, MADV_HUGEPAGE);
	memset(p, 1, N * R);
	pmd = thp_pagemap_count_pmd(pm, (uint64_t)p, (uint64_t)p + N * R);
	for (int i = 0; i < N; i++)
		r[i] = (struct thpd_cold_region){ (uint64_t)p + (uint64_t)(N - 1 - i) * R, (uint32_t)i };

	assert_int_equal(thpd_cold_scan("", getpid(), r, N, hot), 0);
	/* sorted by address in place */
	for (int i = 1; i < N; i++)
		assert_true(r[i].addr > r[i - 1].addr);
	if (sig != THPD_COLD_SOFT_DIRTY) {
		/* No soft-dirty here: nothing ever reads as written. */
		for (int i = 0; i < N; i++)
			assert_false(hot[i]);
		print_message("# no soft-dirty on this kernel (categories 0x%llx): "
			      "written regions not checked\n", (unsigned long long)cats);
	} else {
		for (int i = 0; i < N; i++)
			assert_true(hot[i]);
		p[2 * R + 12345] = 7;
		assert_int_equal(thpd_cold_scan("", getpid(), r, N, hot), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(hot[i], i == 2);
		assert_int_equal(thpd_cold_scan("", getpid(), r, N, hot), 0);
		for (int i = 0; i < N; i++)
			assert_false(hot[i]);
		/* clearing and the write after it left every PMD whole */
		assert_int_equal(thp_pagemap_count_pmd(pm, (uint64_t)p, (uint64_t)p + N * R), pmd);
	}
	for (size_t i = 0; i < N * R; i++)
		if (p[i] != (i == 2 * R + 12345 && sig == THPD_COLD_SOFT_DIRTY ? 7 : 1))
			fail_msg("byte %zu changed", i);
	close(pm);
	munmap(p, N * R);
}

/* Another process, as the daemon looks at a client: its pagemap and its
 * clear_refs, its bytes untouched. */
static void test_scan_child(void **state)
{
	enum { N = 3 };
	int up[2], down[2];
	struct thpd_cold_region r[N];
	bool hot[N];
	uint64_t base = 0, cats;
	enum thpd_cold_signal sig = thpd_cold_probe(&cats);
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *p = thp_mmap_aligned(N * R, R, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		uint64_t a = (uint64_t)p;
		char c;
		int bad = 0;

		if (p == MAP_FAILED)
			_exit(2);
		madvise(p, N * R, MADV_HUGEPAGE);
		memset(p, 5, N * R);
		if (write(up[1], &a, sizeof(a)) != sizeof(a) || read(down[0], &c, 1) != 1)
			_exit(3);
		/* told to write the middle region, then looked at again */
		if (c == 'w') {
			p[R + 1] = 9;
			if (write(up[1], &a, sizeof(a)) != sizeof(a) || read(down[0], &c, 1) != 1)
				_exit(3);
		}
		for (size_t i = 0; i < N * R; i++)
			bad += p[i] != (i == R + 1 && sig == THPD_COLD_SOFT_DIRTY ? 9 : 5);
		_exit(bad ? 1 : 0);
	}
	assert_int_equal(read(up[0], &base, sizeof(base)), sizeof(base));
	for (int i = 0; i < N; i++)
		r[i] = (struct thpd_cold_region){ base + (uint64_t)i * R, (uint32_t)i };
	assert_int_equal(thpd_cold_scan("", pid, r, N, hot), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(hot[i], sig == THPD_COLD_SOFT_DIRTY);
	if (sig == THPD_COLD_SOFT_DIRTY) {
		assert_int_equal(write(down[1], "w", 1), 1);
		assert_int_equal(read(up[0], &base, sizeof(base)), sizeof(base));
		assert_int_equal(thpd_cold_scan("", pid, r, N, hot), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(hot[i], i == 1);
	}
	assert_int_equal(write(down[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mark),
		cmocka_unit_test(test_scan_fixture),
		cmocka_unit_test(test_scan_self),
		cmocka_unit_test(test_scan_child),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
