/* SPDX-License-Identifier: MIT */
/* Arena geometry, header validation and latency histograms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "arena.h"

static void layout_is_aligned_and_sized(void **state)
{
	struct thp_arena_header h = { 0 };

	(void)state;
	thp_arena_layout(&h, 100);
	assert_int_equal(h.records_off, 4096);
	assert_true(h.data_off >= h.records_off + 100 * sizeof(struct thp_record));
	assert_int_equal(h.data_off % 4096, 0);
	assert_int_equal(h.size, h.data_off + 100 * THP_SLOT_SIZE);
	assert_int_equal(thp_arena_slot_off(&h, 3), h.data_off + 3 * THP_SLOT_SIZE);
	/* A raw region and its header fit one slot. */
	assert_true(THP_SLOT_SIZE >= THP_REGION_BYTES + sizeof(struct thp_blob));
}

static void validate_rejects_damage(void **state)
{
	struct thp_arena_header h = { 0 }, bad;

	(void)state;
	thp_arena_layout(&h, 8);
	h.cfg.frames = 4;
	h.cfg.max_stored_pct = 90;
	assert_int_equal(thp_arena_validate(&h, h.size), 0);
	assert_int_equal(thp_arena_validate(&h, h.size - 1), -EBADMSG); /* mapping too small */
	assert_int_equal(thp_arena_validate(&h, 16), -EBADMSG);
	bad = h;
	bad.magic ^= 1;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EPROTO);
	bad = h;
	bad.version = 99;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EPROTO);
	bad = h;
	bad.data_off -= 4096;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EBADMSG);
	bad = h;
	bad.max_regions = 0;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EBADMSG);
	bad = h;
	bad.cfg.frames = THP_MAX_FRAMES + 1;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EBADMSG);
	bad = h;
	bad.cfg.max_stored_pct = 101;
	assert_int_equal(thp_arena_validate(&bad, h.size), -EBADMSG);
}

/* A memfd holding an arena of @nreg regions, @extra bytes longer, with
 * @seals added; @magic replaces the header's. */
static int arena_memfd(uint32_t nreg, off_t extra, int seals, uint64_t magic)
{
	struct thp_arena_header h;
	int fd = memfd_create("test-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	memset(&h, 0, sizeof(h));
	thp_arena_layout(&h, nreg);
	h.magic = magic;
	h.cfg.frames = 1;
	assert_int_equal(ftruncate(fd, (off_t)h.size + extra), 0);
	assert_int_equal(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	if (seals)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A RESUME's arena is taken only as a sealed memfd whose header fits it. */
static void check_fd_names_what_is_wrong(void **state)
{
	struct thp_arena_header h;
	char why[160];
	int fd;

	(void)state;
	fd = arena_memfd(4, 0, THP_ARENA_SEALS, THP_ARENA_MAGIC);
	assert_int_equal(thp_arena_check_fd(fd, &h, why, sizeof(why)), 0);
	assert_int_equal(h.max_regions, 4);
	close(fd);
	fd = arena_memfd(4, 0, 0, THP_ARENA_MAGIC);
	assert_int_equal(thp_arena_check_fd(fd, &h, why, sizeof(why)), -EBADF);
	assert_non_null(strstr(why, "not sealed"));
	close(fd);
	fd = arena_memfd(4, 4096, THP_ARENA_SEALS, THP_ARENA_MAGIC);
	assert_int_equal(thp_arena_check_fd(fd, &h, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "does not fit"));
	close(fd);
	fd = arena_memfd(4, 0, THP_ARENA_SEALS, THP_ARENA_MAGIC ^ 1);
	assert_int_equal(thp_arena_check_fd(fd, &h, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "magic"));
	close(fd);
}

static void hist_buckets_bound_their_values(void **state)
{
	static const uint64_t ns[] = { 0, 999, 1000, 1249, 1250, 2000, 3999, 90000, 270000, 1000000, 7000000 };

	(void)state;
	assert_int_equal(thp_hist_bucket(0), 0);
	assert_int_equal(thp_hist_bucket(1000), 1);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		unsigned b = thp_hist_bucket(ns[i]);

		assert_true(ns[i] < thp_hist_bucket_ceil_ns(b));
		if (b > 0)
			assert_true(ns[i] >= thp_hist_bucket_ceil_ns(b - 1));
	}
	/* Monotone, and huge values land in the last bucket. */
	for (uint64_t v = 1; v < (1ull << 40); v = v * 3 / 2 + 1)
		assert_true(thp_hist_bucket(v) <= thp_hist_bucket(v * 3 / 2 + 1));
	assert_int_equal(thp_hist_bucket(UINT64_MAX / 8), THP_HIST_BUCKETS - 1);
}

static void percentiles(void **state)
{
	_Atomic uint64_t h[THP_HIST_BUCKETS];

	(void)state;
	for (unsigned i = 0; i < THP_HIST_BUCKETS; i++)
		atomic_init(&h[i], 0);
	assert_int_equal(thp_hist_percentile_ns(h, 50), 0);
	/* 98 samples at ~300 µs, 2 at ~5 ms. */
	atomic_store(&h[thp_hist_bucket(300000)], 98);
	atomic_store(&h[thp_hist_bucket(5000000)], 2);
	assert_int_equal(thp_hist_percentile_ns(h, 50), thp_hist_bucket_ceil_ns(thp_hist_bucket(300000)));
	assert_int_equal(thp_hist_percentile_ns(h, 98), thp_hist_bucket_ceil_ns(thp_hist_bucket(300000)));
	assert_int_equal(thp_hist_percentile_ns(h, 99), thp_hist_bucket_ceil_ns(thp_hist_bucket(5000000)));
	assert_int_equal(thp_hist_percentile_ns(h, 100), thp_hist_bucket_ceil_ns(thp_hist_bucket(5000000)));
}

static void state_names(void **state)
{
	(void)state;
	assert_string_equal(thp_state_name(THP_ST_RAM), "ram");
	assert_string_equal(thp_state_name(THP_ST_EMPTY), "empty");
	assert_string_equal(thp_state_name((enum thp_state)1000), "invalid");
	for (unsigned s = 0; s < THP_ST__MAX; s++)
		assert_string_not_equal(thp_state_name((enum thp_state)s), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_is_aligned_and_sized),
		cmocka_unit_test(validate_rejects_damage),
		cmocka_unit_test(check_fd_names_what_is_wrong),
		cmocka_unit_test(hist_buckets_bound_their_values),
		cmocka_unit_test(percentiles),
		cmocka_unit_test(state_names),
	};
	return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}
