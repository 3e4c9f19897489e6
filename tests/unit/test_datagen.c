/* SPDX-License-Identifier: MIT */
/* Synthetic data: deterministic, checkable, and as compressible as stated. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>

#include "datagen.h"

#define MIB2 ((size_t)2 << 20)

struct bufs {
	unsigned char *a, *b, *z;
	size_t zcap;
};

static int setup(void **state)
{
	struct bufs *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	t->a = aligned_alloc(4096, MIB2);
	t->b = aligned_alloc(4096, MIB2);
	t->zcap = ZSTD_compressBound(MIB2);
	t->z = malloc(t->zcap);
	if (!t->a || !t->b || !t->z) {
		free(t->a);
		free(t->b);
		free(t->z);
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct bufs *t = *state;

	free(t->a);
	free(t->b);
	free(t->z);
	free(t);
	return 0;
}

static void test_deterministic(void **state)
{
	struct bufs *t = *state;

	for (int k = 0; k < THP_DATA__MAX; k++) {
		memset(t->a, 0xa5, MIB2);
		memset(t->b, 0x5a, MIB2);
		thp_datagen_fill(t->a, MIB2, k, 42, 7);
		thp_datagen_fill(t->b, MIB2, k, 42, 7);
		assert_memory_equal(t->a, t->b, MIB2);
		assert_int_equal(thp_datagen_check(t->a, MIB2, k, 42, 7), -1);
		/* A shorter fill is a prefix of the longer one. */
		thp_datagen_fill(t->b, 8192, k, 42, 7);
		assert_memory_equal(t->a, t->b, 8192);
	}
}

static void test_seed_and_index_matter(void **state)
{
	struct bufs *t = *state;

	for (int k = THP_DATA_RANDOM; k < THP_DATA__MAX; k++) {
		thp_datagen_fill(t->a, MIB2, k, 1, 0);
		thp_datagen_fill(t->b, MIB2, k, 2, 0);
		assert_memory_not_equal(t->a, t->b, MIB2);
		thp_datagen_fill(t->b, MIB2, k, 1, 1);
		assert_memory_not_equal(t->a, t->b, MIB2);
		assert_true(thp_datagen_check(t->b, MIB2, k, 1, 0) >= 0);
	}
}

static void test_check_finds_flipped_byte(void **state)
{
	struct bufs *t = *state;
	const size_t offs[] = { 0, 1, 7, 8, 4095, 4096, 123457, MIB2 / 2 + 3, MIB2 - 1 };

	for (int k = 0; k < THP_DATA__MAX; k++) {
		thp_datagen_fill(t->a, MIB2, k, 9, 3);
		for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			t->a[offs[i]] ^= 0x10;
			assert_int_equal(thp_datagen_check(t->a, MIB2, k, 9, 3), (long)offs[i]);
			t->a[offs[i]] ^= 0x10;
		}
		/* Two flips: the first one is reported. */
		t->a[5000] ^= 1;
		t->a[300000] ^= 1;
		assert_int_equal(thp_datagen_check(t->a, MIB2, k, 9, 3), 5000);
		t->a[5000] ^= 1;
		t->a[300000] ^= 1;
		assert_int_equal(thp_datagen_check(t->a, MIB2, k, 9, 3), -1);
	}
}

static void test_kinds_differ(void **state)
{
	struct bufs *t = *state;

	for (int k = 0; k < THP_DATA__MAX; k++) {
		thp_datagen_fill(t->a, MIB2, k, 5, 5);
		for (int j = 0; j < THP_DATA__MAX; j++) {
			if (j == k)
				continue;
			thp_datagen_fill(t->b, MIB2, j, 5, 5);
			assert_memory_not_equal(t->a, t->b, MIB2);
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int k = 0; k < THP_DATA__MAX; k++) {
		assert_int_equal(thp_datagen_parse(thp_datagen_name(k)), k);
		assert_true(strlen(thp_datagen_describe(k)) > 10);
	}
	assert_int_equal(thp_datagen_parse("heapmix"), THP_DATA_HEAPMIX);
	assert_int_equal(thp_datagen_parse("nonsense"), -EINVAL);
	assert_int_equal(thp_datagen_parse(""), -EINVAL);
	assert_int_equal(thp_datagen_parse(NULL), -EINVAL);
	assert_string_equal(thp_datagen_name(THP_DATA__MAX), "unknown");
}

/* zstd -1 ratio over 4 regions, as the benchmark stores them. */
static double ratio(struct bufs *t, enum thp_data_kind k)
{
	size_t in = 0, out = 0;

	for (uint64_t idx = 0; idx < 4; idx++) {
		size_t n;

		thp_datagen_fill(t->a, MIB2, k, 11, idx);
		n = ZSTD_compress(t->z, t->zcap, t->a, MIB2, 1);
		assert_false(ZSTD_isError(n));
		in += MIB2;
		out += n;
	}
	return (double)in / (double)out;
}

static void test_compressibility_order(void **state)
{
	struct bufs *t = *state;
	double zero = ratio(t, THP_DATA_ZERO);
	double text = ratio(t, THP_DATA_TEXT);
	double heap = ratio(t, THP_DATA_HEAPMIX);
	double rnd = ratio(t, THP_DATA_RANDOM);
	double code = ratio(t, THP_DATA_CODE);
	double ints = ratio(t, THP_DATA_INTS);

	print_message("# zstd -1 ratios: zero %.0f text %.2f heapmix %.2f code %.2f ints %.2f random %.3f\n",
		      zero, text, heap, code, ints, rnd);
	assert_true(zero > text);
	assert_true(text > heap);
	assert_true(heap > rnd);
	assert_true(rnd > 0.99 && rnd < 1.01);
	assert_true(ratio(t, THP_DATA_PATTERN) < 1.01);
	/* The aim stated for a realistic heap: around 2.5-3.5. */
	assert_true(heap > 2.2 && heap < 3.8);
	assert_true(code > 1.5 && ints > 1.5);
}

/* HEAPMIX states 25 % zero pages: count them over 8 regions. */
static void test_heapmix_composition(void **state)
{
	struct bufs *t = *state;
	static const unsigned char zero[4096];
	unsigned zeros = 0, total = 0;

	for (uint64_t idx = 0; idx < 8; idx++) {
		thp_datagen_fill(t->a, MIB2, THP_DATA_HEAPMIX, 3, idx);
		for (size_t off = 0; off < MIB2; off += 4096, total++)
			zeros += memcmp(t->a + off, zero, 4096) == 0;
	}
	/* 4096 pages, p = 0.25: sd ~ 28 pages; allow 5 sd. */
	assert_in_range(zeros, total / 4 - 140, total / 4 + 140);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_seed_and_index_matter),
		cmocka_unit_test(test_check_finds_flipped_byte),
		cmocka_unit_test(test_kinds_differ),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_compressibility_order),
		cmocka_unit_test(test_heapmix_composition),
	};

	/* meson parses TAP (tests/unit/meson.build). */
	setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 0);
	return cmocka_run_group_tests_name("datagen", tests, setup, teardown);
}
