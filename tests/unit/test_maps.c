/* SPDX-License-Identifier: MIT */
/*
 * The region table's hash on its own.  A deleted key must leave nothing
 * behind: after any number of map/unmap cycles a lookup that misses stops
 * after a few slots (the table is probed under the mutex every fault and
 * every event), and every key still present is found.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "util.h"

#define BASE 0x100000000000ull
#define CYCLES 1000000u

/* The session whose own memory the tables are (nothing else of it is used). */
static struct thpswap_session *own_s;

static int setup(void **state)
{
	(void)state;
	own_s = calloc(1, sizeof(*own_s));
	if (!own_s)
		return -1;
	pthread_mutex_init(&own_s->own.lock, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	/* Every table was freed: nothing is left noted. */
	if (own_s->own.n)
		return -1;
	free(own_s);
	return 0;
}

static uint64_t addr_of(uint64_t n)
{
	return BASE + n * REGION;
}

/* The @n-th address mapped: region numbers scattered over 32 TiB, all
 * different (a bijection of 24 bits), as a long-running process's mmaps
 * land all over its address space. */
static uint64_t mapped(uint64_t n)
{
	const uint64_t mask = (1u << 24) - 1;

	n = (n * 0x9e3779u + 0x5bd1e9u) & mask;
	n ^= n >> 12;
	n = (n * 0xc2b2afu) & mask;
	return addr_of(n);
}

/* Slots holding something (0 is the empty key). */
static uint32_t occupied(const struct region_table *t)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->cap; i++)
		n += t->keys[i] != 0;
	return n;
}

/* Misses: @n addresses below BASE, never inserted.  Average probes. */
static double miss_probes(const struct region_table *t, unsigned n, unsigned *max)
{
	uint64_t sum = 0;

	*max = 0;
	for (unsigned k = 1; k <= n; k++) {
		unsigned p;

		assert_int_equal(rt_find(t, BASE - (uint64_t)k * REGION, &p), -1);
		sum += p;
		if (p > *max)
			*max = p;
	}
	return (double)sum / n;
}

/* Nanoseconds per miss: the best of 20 batches, so that being preempted
 * (the suites share the CPUs) does not count. */
static double miss_ns(const struct region_table *t)
{
	double best = 1e18;

	for (int b = 0; b < 20; b++) {
		uint64_t t0 = thp_now_ns();
		long miss = 0;

		for (unsigned k = 1; k <= 1000; k++)
			miss += rt_find(t, BASE - (uint64_t)(b * 1000 + k) * REGION, NULL) < 0;
		double ns = (double)(thp_now_ns() - t0) / 1000;

		assert_int_equal(miss, 1000);

		if (ns < best)
			best = ns;
	}
	return best;
}

/* Region numbers [lo, hi) are all there, with value n % @max. */
static void all_found(const struct region_table *t, uint64_t lo, uint64_t hi, uint32_t max)
{
	for (uint64_t n = lo; n < hi; n++) {
		long pos = rt_find(t, mapped(n) + REGION / 2, NULL);

		assert_true(pos >= 0);
		assert_int_equal(t->vals[pos], n % max);
	}
}

/*
 * @live regions mapped at a time out of @max, 10^6 cycles of unmapping the
 * oldest and mapping a new one at an address not used before (as a
 * long-running process does), then misses must still stop early.
 */
static void churn(uint32_t max, uint32_t live, double max_avg, unsigned max_probes)
{
	struct region_table t = { 0 };
	unsigned worst;
	double fresh_ns, fresh_avg, avg, ns;

	assert_int_equal(rt_init(own_s, &t, max), 0);
	for (uint64_t n = 0; n < live; n++)
		rt_put(&t, mapped(n), (uint32_t)(n % max));
	fresh_avg = miss_probes(&t, 10000, &worst);
	fresh_ns = miss_ns(&t);
	for (uint64_t n = live; n < live + CYCLES; n++) {
		long pos = rt_find(&t, mapped(n - live), NULL);

		assert_true(pos >= 0);
		assert_int_equal(rt_del(&t, pos), (n - live) % max);
		rt_put(&t, mapped(n), (uint32_t)(n % max));
	}
	all_found(&t, CYCLES, CYCLES + live, max);
	avg = miss_probes(&t, 10000, &worst);
	ns = miss_ns(&t);
	print_message("# %u of %u regions (%u slots): miss %.1f probes %.1f ns fresh; after %u cycles "
		      "%.1f probes (max %u) %.1f ns\n", live, max, t.cap, fresh_avg, fresh_ns, CYCLES,
		      avg, worst, ns);
	assert_int_equal(occupied(&t), live);
	assert_true(avg <= max_avg);
	assert_true(worst <= max_probes);
	rt_fini(own_s, &t);
}

/* The library's default table (32768 regions, 64 Ki slots), lightly used. */
static void churn_sparse(void **state)
{
	churn(32768, 1024, 1.5, 16);
}

/* Full: as many regions as records, half the slots.  Linear probing
 * expects 2.5 probes per miss at that load. */
static void churn_full(void **state)
{
	churn(1024, 1024, 4.0, 64);
}

/* Random inserts and deletes in a 16-slot table with keys that collide and
 * wrap around its end, against a plain array: every key present is found
 * with its value, no other is. */
static void matches_a_model(void **state)
{
	enum { NKEYS = 64, MAX = 8 };
	struct region_table t = { 0 };
	long val[NKEYS];
	unsigned count = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	assert_int_equal(rt_init(own_s, &t, MAX), 0);
	assert_int_equal(t.cap, 16);
	for (int k = 0; k < NKEYS; k++)
		val[k] = -1;
	for (unsigned op = 0; op < 200000; op++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned k = (unsigned)(x % NKEYS);
		long pos = rt_find(&t, addr_of(k), NULL);

		assert_int_equal(pos >= 0, val[k] >= 0);
		if (pos >= 0) {
			assert_int_equal(rt_del(&t, pos), val[k]);
			val[k] = -1;
			count--;
		} else if (count < MAX) {
			val[k] = op % MAX;
			rt_put(&t, addr_of(k), (uint32_t)val[k]);
			count++;
		}
		assert_int_equal(occupied(&t), count);
		for (int j = 0; j < NKEYS; j++) {
			pos = rt_find(&t, addr_of((uint64_t)j), NULL);
			assert_int_equal(pos >= 0, val[j] >= 0);
			if (pos >= 0)
				assert_int_equal(t.vals[pos], val[j]);
		}
	}
	rt_fini(own_s, &t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(churn_sparse),
		cmocka_unit_test(churn_full),
		cmocka_unit_test(matches_a_model),
	};
	return cmocka_run_group_tests_name("maps", tests, setup, teardown);
}
