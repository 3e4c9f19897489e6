/* SPDX-License-Identifier: MIT */
/* The daemon's pressure signals (daemon/pressure.c): /proc/PID/cgroup, the
 * cgroup limit files, and whole fixture trees (tests/fixtures/pressure/)
 * read as thpswapd reads a client's cgroup below its sysroot. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "thpswapd.h"

#define FX(p) FIXTURES "/pressure/" p

/* ------------------------------------------------------ /proc/PID/cgroup */

static void test_cgroup_hybrid(void **state)
{
	char v2[64], v1[64];

	(void)state;
	assert_int_equal(thpd_cgroup_parse("12:pids:/a\n4:memory:/app/job\n1:cpu,cpuacct:/x\n"
					   "0::/app/job\n", v2, sizeof(v2), v1, sizeof(v1)), 0);
	assert_string_equal(v2, "/app/job");
	assert_string_equal(v1, "/app/job");
}

static void test_cgroup_v2_only(void **state)
{
	char v2[64], v1[64];

	(void)state;
	assert_int_equal(thpd_cgroup_parse("0::/svc.slice/a.service\n", v2, sizeof(v2), v1,
					   sizeof(v1)), 0);
	assert_string_equal(v2, "/svc.slice/a.service");
	assert_string_equal(v1, "");
	/* the root is "", and no newline at the end is fine */
	assert_int_equal(thpd_cgroup_parse("0::/", v2, sizeof(v2), v1, sizeof(v1)), 0);
	assert_string_equal(v2, "");
}

static void test_cgroup_memory_in_a_list(void **state)
{
	char v2[64], v1[64];

	(void)state;
	/* "memory" among other controllers, not "memory_x" or a name= */
	assert_int_equal(thpd_cgroup_parse("5:cpu,memory:/m\n", v2, sizeof(v2), v1, sizeof(v1)), 0);
	assert_string_equal(v1, "/m");
	assert_int_equal(thpd_cgroup_parse("5:memoryx:/m\n6:name=memory:/n\n", v2, sizeof(v2), v1,
					   sizeof(v1)), -ENOENT);
}

static void test_cgroup_bad(void **state)
{
	char v2[64], v1[8];

	(void)state;
	assert_int_equal(thpd_cgroup_parse("", v2, sizeof(v2), v1, sizeof(v1)), -ENOENT);
	assert_int_equal(thpd_cgroup_parse("garbage\n", v2, sizeof(v2), v1, sizeof(v1)), -EINVAL);
	assert_int_equal(thpd_cgroup_parse("0::relative\n", v2, sizeof(v2), v1, sizeof(v1)), -EINVAL);
	assert_int_equal(thpd_cgroup_parse("0::/a/../../etc\n", v2, sizeof(v2), v1, sizeof(v1)),
			 -EINVAL);
	assert_int_equal(thpd_cgroup_parse("0::/a/..\n", v2, sizeof(v2), v1, sizeof(v1)), -EINVAL);
	assert_int_equal(thpd_cgroup_parse("4:memory:/much/too/long\n", v2, sizeof(v2), v1,
					   sizeof(v1)), -ENAMETOOLONG);
}

/* ------------------------------------------------------------- limits */

static void test_limit(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(thpd_limit_parse("134217728\n", &v), 0);
	assert_int_equal(v, 134217728);
	assert_int_equal(thpd_limit_parse("max\n", &v), 0);
	assert_true(v == UINT64_MAX);
	/* v1's "unlimited" */
	v = 0;
	assert_int_equal(thpd_limit_parse("9223372036854771712\n", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(thpd_limit_parse("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(thpd_limit_parse("", &v), -EINVAL);
	assert_int_equal(thpd_limit_parse("-1\n", &v), -EINVAL);
	assert_int_equal(thpd_limit_parse("12k\n", &v), -EINVAL);
	assert_int_equal(thpd_limit_parse("maximum\n", &v), -EINVAL);
	assert_int_equal(thpd_limit_parse("99999999999999999999999\n", &v), -EINVAL);
}

/* ------------------------------------------------------ fixture trees */

static void test_tree_hybrid(void **state)
{
	struct thpd_cgroup cg;
	struct thpd_memcg m;
	uint64_t stall = 0;
	double avg10 = 0;

	(void)state;
	assert_int_equal(thpd_cgroup_find(FX("hybrid"), 4242, &cg), 0);
	assert_string_equal(cg.v2, FX("hybrid") "/sys/fs/cgroup/unified/app/job");
	assert_string_equal(cg.v1, FX("hybrid") "/sys/fs/cgroup/memory/app/job");
	assert_int_equal(thpd_memcg_read(&cg, &m), 0);
	/* PSI from the unified hierarchy, usage and limit from v1 */
	assert_true(m.has_psi);
	assert_int_equal(m.stall_us, 777);
	assert_int_equal(m.usage, 62914560);
	assert_int_equal(m.limit, 67108864);
	assert_int_equal(thpd_psi_system(FX("hybrid"), &stall, &avg10), 0);
	assert_int_equal(stall, 123456);
	assert_true(avg10 > 1.49 && avg10 < 1.51);
}

static void test_tree_v2(void **state)
{
	struct thpd_cgroup cg;
	struct thpd_memcg m;

	(void)state;
	assert_int_equal(thpd_cgroup_find(FX("v2"), 4242, &cg), 0);
	assert_string_equal(cg.v2, FX("v2") "/sys/fs/cgroup/svc.slice/app.service");
	assert_string_equal(cg.v1, "");
	assert_int_equal(thpd_memcg_read(&cg, &m), 0);
	assert_true(m.has_psi);
	assert_int_equal(m.stall_us, 5000000);
	assert_int_equal(m.usage, 100663296);
	/* memory.high is "max": memory.max is the limit */
	assert_int_equal(m.limit, 134217728);

	assert_int_equal(thpd_cgroup_find(FX("v2-high"), 4242, &cg), 0);
	assert_int_equal(thpd_memcg_read(&cg, &m), 0);
	assert_false(m.has_psi);
	assert_int_equal(m.usage, 1000);
	assert_int_equal(m.limit, 2048);
}

static void test_tree_v1_root(void **state)
{
	struct thpd_cgroup cg;
	struct thpd_memcg m;
	uint64_t stall;
	double avg10;

	(void)state;
	assert_int_equal(thpd_cgroup_find(FX("v1-root"), 4242, &cg), 0);
	assert_string_equal(cg.v2, "");
	assert_string_equal(cg.v1, FX("v1-root") "/sys/fs/cgroup/memory");
	assert_int_equal(thpd_memcg_read(&cg, &m), 0);
	assert_false(m.has_psi);
	assert_int_equal(m.usage, 3014656);
	assert_true(m.limit == UINT64_MAX);
	/* no /proc/pressure/memory in this tree */
	assert_int_equal(thpd_psi_system(FX("v1-root"), &stall, &avg10), -ENOENT);
}

static void test_tree_none(void **state)
{
	struct thpd_cgroup cg;

	(void)state;
	assert_int_equal(thpd_cgroup_find(FX("none"), 4242, &cg), -ENOENT);
	/* no such process */
	assert_int_equal(thpd_cgroup_find(FX("none"), 4243, &cg), -ENOENT);
	assert_string_equal(cg.v2, "");
	assert_string_equal(cg.v1, "");
}

static void test_psi_broken(void **state)
{
	uint64_t stall = 7;
	double avg10 = 7;

	(void)state;
	/* a PSI file without its "some" line is refused, nothing written */
	assert_int_equal(thpd_psi_system(FX("broken-psi"), &stall, &avg10), -EINVAL);
	assert_int_equal(stall, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cgroup_hybrid),
		cmocka_unit_test(test_cgroup_v2_only),
		cmocka_unit_test(test_cgroup_memory_in_a_list),
		cmocka_unit_test(test_cgroup_bad),
		cmocka_unit_test(test_limit),
		cmocka_unit_test(test_tree_hybrid),
		cmocka_unit_test(test_tree_v2),
		cmocka_unit_test(test_tree_v1_root),
		cmocka_unit_test(test_tree_none),
		cmocka_unit_test(test_psi_broken),
	};

	return cmocka_run_group_tests_name("pressure", tests, NULL, NULL);
}
