/* SPDX-License-Identifier: MIT */
/*
 * src/pagemap.c's counts, holes, first hole and data end, on this process's own memory
 * (PAGEMAP_SCAN needs no privilege for it).  Skipped where the kernel has
 * no PAGEMAP_SCAN (before 6.7).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "pagemap.h"

#define PG 4096ul
#define LEN (512 * PG)

struct world {
	int fd;
	char *p;
};

static int setup(void **state)
{
	static struct world w;

	w.fd = thp_pagemap_open(0);
	assert_true(w.fd >= 0);
	w.p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(w.p != MAP_FAILED);
	if (thp_pagemap_count_present(w.fd, (uint64_t)(uintptr_t)w.p,
				      (uint64_t)(uintptr_t)w.p + LEN) == -ENOTTY)
		skip();
	*state = &w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	munmap(w->p, LEN);
	close(w->fd);
	return 0;
}

/* @where's answer for the mapping, as a page number in it (or -errno). */
static long page_of(const struct world *w, long (*where)(int, uint64_t, uint64_t))
{
	uint64_t a = (uint64_t)(uintptr_t)w->p;
	long at = where(w->fd, a, a + LEN);

	return at < 0 ? at : (long)((uint64_t)at - a) / (long)PG;
}

static long hole(const struct world *w)
{
	return page_of(w, thp_pagemap_first_hole);
}

/* Untouched: the first page; touched all: none (the end); a page zapped in
 * the middle: that page; written again: none. */
static void first_hole(void **state)
{
	struct world *w = *state;
	uint64_t a = (uint64_t)(uintptr_t)w->p;

	assert_int_equal(hole(w), 0);
	memset(w->p, 1, LEN);
	assert_int_equal(hole(w), 512);
	assert_int_equal(thp_pagemap_count_there(w->fd, a, a + LEN), 512);
	assert_int_equal(madvise(w->p + 5 * PG, 3 * PG, MADV_DONTNEED), 0);
	assert_int_equal(hole(w), 5);
	assert_int_equal(thp_pagemap_count_there(w->fd, a, a + LEN), 509);
	w->p[5 * PG] = 2;
	assert_int_equal(hole(w), 6);
	memset(w->p + 6 * PG, 3, 2 * PG);
	assert_int_equal(hole(w), 512);
	assert_int_equal(madvise(w->p + 511 * PG, PG, MADV_DONTNEED), 0);
	assert_int_equal(hole(w), 511);
}

static long end_of_data(const struct world *w)
{
	return page_of(w, thp_pagemap_there_end);
}

/* Where the data ends (what a failed MOVE out left in its slot): nothing,
 * the start; pages 0..9 and a page at 200: 201; holes before it change
 * nothing; 200 zapped: 10; all zapped: the start again. */
static void there_end(void **state)
{
	struct world *w = *state;

	/* 4 KiB pages: a first touch must not fault in a whole THP. */
	assert_int_equal(madvise(w->p, LEN, MADV_NOHUGEPAGE), 0);
	assert_int_equal(end_of_data(w), 0);
	memset(w->p, 1, 10 * PG);
	w->p[200 * PG] = 1;
	assert_int_equal(end_of_data(w), 201);
	assert_int_equal(madvise(w->p + 3 * PG, 2 * PG, MADV_DONTNEED), 0);
	assert_int_equal(end_of_data(w), 201);
	assert_int_equal(madvise(w->p + 200 * PG, PG, MADV_DONTNEED), 0);
	assert_int_equal(end_of_data(w), 10);
	assert_int_equal(madvise(w->p, LEN, MADV_DONTNEED), 0);
	assert_int_equal(end_of_data(w), 0);
}

/* Holes seen by thp_pagemap_each_hole; stops with 7 after @stop_after. */
struct seen {
	uint64_t lo[512], hi[512];
	unsigned n, stop_after;
};

static int see_hole(void *arg, uint64_t lo, uint64_t hi)
{
	struct seen *v = arg;

	v->lo[v->n] = lo;
	v->hi[v->n] = hi;
	return ++v->n == v->stop_after ? 7 : 0;
}

/* Every other page zapped: 256 holes between 256 runs of data, more than
 * one scan's vector of 64 holds, each hole seen once and in order; a
 * nonzero answer stops the walk and is returned. */
static void each_hole(void **state)
{
	struct world *w = *state;
	uint64_t a = (uint64_t)(uintptr_t)w->p;
	static struct seen v;

	assert_int_equal(madvise(w->p, LEN, MADV_NOHUGEPAGE), 0);
	memset(w->p, 1, LEN);
	for (unsigned k = 1; k < 512; k += 2)
		assert_int_equal(madvise(w->p + k * PG, PG, MADV_DONTNEED), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(thp_pagemap_each_hole(w->fd, a, a + LEN, see_hole, &v), 0);
	assert_int_equal(v.n, 256);
	for (unsigned k = 0; k < 256; k++) {
		assert_int_equal(v.lo[k], a + (2 * k + 1) * PG);
		assert_int_equal(v.hi[k], a + (2 * k + 2) * PG);
	}
	memset(&v, 0, sizeof(v));
	v.stop_after = 3;
	assert_int_equal(thp_pagemap_each_hole(w->fd, a, a + LEN, see_hole, &v), 7);
	assert_int_equal(v.n, 3);
	/* The data ends with page 510: the last hole starts there. */
	assert_int_equal(end_of_data(w), 511);
	assert_int_equal(hole(w), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(first_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(there_end, setup, teardown),
		cmocka_unit_test_setup_teardown(each_hole, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
