/* SPDX-License-Identifier: MIT */
/* The /proc and /sys parsers, thp_probe() on fixture sysroots, the verdict,
 * and thpswapctl's side: the human table, the JSON report and `thpswapctl
 * kernel` (FIXTURES from tests/unit/meson.build points at tests/fixtures). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "json.h"
#include "kernel-abi.h"
#include "kernel-report.h"
#include "probe.h"

/* cmd_kernel and its static kernel_report(), tested in-process. */
#include "../../ctl/cmd-kernel.c"

#define FX(p) FIXTURES "/" p

/* Fails naming the text that is missing and showing the output. */
static void expect_in(const char *out, const char *needle)
{
	if (!out || !strstr(out, needle)) {
		print_error("missing: \"%s\"\nin:\n%s\n", needle, out ? out : "(no output)");
		fail();
	}
}

/* ------------------------------------------------------------- parsers */

static void test_mode(void **state)
{
	char m[THP_PROBE_MODE_MAX] = "untouched";
	char small[8];

	assert_int_equal(thp_parse_mode(FX("mode/madvise"), m, sizeof(m)), 0);
	assert_string_equal(m, "madvise");
	assert_int_equal(thp_parse_mode(FX("mode/never"), m, sizeof(m)), 0);
	assert_string_equal(m, "never");
	assert_int_equal(thp_parse_mode(FX("mode/defrag"), m, sizeof(m)), 0);
	assert_string_equal(m, "madvise");
	assert_int_equal(thp_parse_mode(FX("mode/shmem"), m, sizeof(m)), 0);
	assert_string_equal(m, "never");
	assert_int_equal(thp_parse_mode(FX("mode/no-newline"), m, sizeof(m)), 0);
	assert_string_equal(m, "never");

	strcpy(m, "untouched");
	assert_int_equal(thp_parse_mode(FX("mode/no-brackets"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/unclosed"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/two"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/empty-brackets"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/space"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/empty"), m, sizeof(m)), -EINVAL);
	assert_int_equal(thp_parse_mode(FX("mode/long"), m, sizeof(m)), -ENAMETOOLONG);
	assert_int_equal(thp_parse_mode(FX("mode/madvise"), small, 7), -ENAMETOOLONG);
	assert_int_equal(thp_parse_mode(FX("mode/absent"), m, sizeof(m)), -ENOENT);
	assert_string_equal(m, "untouched");
}

static void test_u64(void **state)
{
	uint64_t v = 42;

	assert_int_equal(thp_parse_u64(FX("number/2m"), &v), 0);
	assert_true(v == 2097152);
	assert_int_equal(thp_parse_u64(FX("number/zero-no-newline"), &v), 0);
	assert_true(v == 0);
	assert_int_equal(thp_parse_u64(FX("number/max"), &v), 0);
	assert_true(v == UINT64_MAX);

	v = 42;
	assert_int_equal(thp_parse_u64(FX("number/overflow"), &v), -ERANGE);
	assert_int_equal(thp_parse_u64(FX("number/negative"), &v), -EINVAL);
	assert_int_equal(thp_parse_u64(FX("number/junk"), &v), -EINVAL);
	assert_int_equal(thp_parse_u64(FX("number/leading-space"), &v), -EINVAL);
	assert_int_equal(thp_parse_u64(FX("number/blank"), &v), -EINVAL);
	assert_int_equal(thp_parse_u64(FX("number/empty"), &v), -EINVAL);
	assert_int_equal(thp_parse_u64(FX("vmstat/stock"), &v), -EINVAL); /* too big */
	assert_int_equal(thp_parse_u64(FX("number/absent"), &v), -ENOENT);
	assert_true(v == 42);
}

static void test_bool_line(void **state)
{
	int b = 7;
	char s[32] = "untouched", small[4];

	assert_int_equal(thp_parse_bool(FX("bool/Y"), &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(thp_parse_bool(FX("bool/N"), &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(thp_parse_bool(FX("bool/one"), &b), 0);
	assert_int_equal(b, 1);
	b = 7;
	assert_int_equal(thp_parse_bool(FX("bool/junk"), &b), -EINVAL);
	assert_int_equal(thp_parse_bool(FX("bool/empty"), &b), -EINVAL);
	assert_int_equal(thp_parse_bool(FX("bool/absent"), &b), -ENOENT);
	assert_int_equal(b, 7);

	assert_int_equal(thp_parse_line(FX("zswap/on/compressor"), s, sizeof(s)), 0);
	assert_string_equal(s, "lzo-rle");
	assert_int_equal(thp_parse_line(FX("mode/defrag"), s, sizeof(s)), -ENAMETOOLONG);
	assert_int_equal(thp_parse_line(FX("zswap/on/compressor"), small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(thp_parse_line(FX("number/blank"), s, sizeof(s)), -EINVAL);
	assert_int_equal(thp_parse_line(FX("number/empty"), s, sizeof(s)), -EINVAL);
	assert_string_equal(s, "lzo-rle");
}

static void test_vmstat(void **state)
{
	uint64_t v = 42;

	assert_int_equal(thp_parse_vmstat(FX("vmstat/stock"), "thp_swpout", &v), 0);
	assert_true(v == 7);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/stock"), "thp_swpout_fallback", &v), 0);
	assert_true(v == 2);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/stock"), "nr_free_pages", &v), 0);
	assert_true(v == 1165539);
	/* Whole-word keys only: a prefix of a key is not that key. */
	assert_int_equal(thp_parse_vmstat(FX("vmstat/stock"), "thp_swp", &v), -ENOENT);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/stock"), "thp_swpout_pmd", &v), -ENOENT);
	assert_int_equal(thp_vmstat_has(FX("vmstat/stock"), "thp_swpout_pmd"), 0);
	assert_int_equal(thp_vmstat_has(FX("vmstat/stock"), "thp_swpout"), 1);

	assert_int_equal(thp_vmstat_has(FX("vmstat/patched"), "thp_swpout_pmd"), 1);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/patched"), "thp_swpout_pmd", &v), 0);
	assert_true(v == 5);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/patched"), "zswpout", &v), 0);
	assert_true(v == 512);

	v = 42;
	assert_int_equal(thp_parse_vmstat(FX("vmstat/malformed"), "nr_free_pages", &v), 0);
	assert_true(v == 12);
	v = 42;
	assert_int_equal(thp_parse_vmstat(FX("vmstat/malformed"), "thp_swpout", &v), -EINVAL);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/malformed"), "thp_swpout_pmd", &v), -EINVAL);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/malformed"), "thp_split_pmd", &v), -EINVAL);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/malformed"), "zswpin", &v), -ENOENT);
	assert_true(v == 42);
	assert_int_equal(thp_vmstat_has(FX("vmstat/malformed"), "thp_swpout_pmd"), 1);
	assert_int_equal(thp_vmstat_has(FX("vmstat/malformed"), "zswpin"), 0);

	assert_int_equal(thp_parse_vmstat(FX("vmstat/empty"), "thp_swpout", &v), -ENOENT);
	assert_int_equal(thp_vmstat_has(FX("vmstat/empty"), "thp_swpout_pmd"), 0);
	assert_int_equal(thp_parse_vmstat(FX("vmstat/absent"), "thp_swpout", &v), -ENOENT);
	assert_int_equal(thp_vmstat_has(FX("vmstat/absent"), "thp_swpout_pmd"), -ENOENT);
}

static void test_swaps(void **state)
{
	struct thp_swap_dev d[3];

	memset(d, 0x77, sizeof(d));
	assert_int_equal(thp_parse_swaps(FX("swaps/none"), d, 3), 0);
	assert_int_equal(thp_parse_swaps(FX("swaps/two"), d, 3), 2);
	assert_string_equal(d[0].filename, "/var/swap file"); /* \040 unescaped */
	assert_string_equal(d[0].type, "file");
	assert_true(d[0].size_kib == 1048572 && d[0].used_kib == 2048);
	assert_int_equal(d[0].priority, -2);
	assert_string_equal(d[1].filename, "/dev/vdb2");
	assert_string_equal(d[1].type, "partition");
	assert_true(d[1].size_kib == 33554428 && d[1].used_kib == 1234);
	assert_int_equal(d[1].priority, 10);
	assert_true(d[2].priority == 0x77777777); /* beyond the count: untouched */

	/* Fewer slots than devices: the count is still the file's. */
	memset(d, 0x77, sizeof(d));
	assert_int_equal(thp_parse_swaps(FX("swaps/two"), d, 1), 2);
	assert_string_equal(d[0].filename, "/var/swap file");
	assert_true(d[1].priority == 0x77777777);
	assert_int_equal(thp_parse_swaps(FX("swaps/two"), NULL, 0), 2);

	memset(d, 0x77, sizeof(d));
	assert_int_equal(thp_parse_swaps(FX("swaps/bad-type"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/short-line"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/long-line"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/negative-size"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/no-header"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/empty"), d, 3), -EINVAL);
	assert_int_equal(thp_parse_swaps(FX("swaps/absent"), d, 3), -ENOENT);
	assert_true(d[0].priority == 0x77777777);
}

static void test_zswap(void **state)
{
	struct thp_zswap z;

	assert_int_equal(thp_parse_zswap(FX("zswap/on"), &z), 0);
	assert_int_equal(z.enabled, 1);
	assert_string_equal(z.compressor, "lzo-rle");
	assert_string_equal(z.zpool, "zsmalloc");
	assert_true(z.max_pool_percent == 20 && z.accept_threshold_percent == 90);
	assert_int_equal(z.shrinker_enabled, 1);

	assert_int_equal(thp_parse_zswap(FX("zswap/off"), &z), 0);
	assert_int_equal(z.enabled, 0);
	assert_string_equal(z.compressor, "lzo");
	assert_string_equal(z.zpool, "");          /* gone in newer kernels */
	assert_true(z.max_pool_percent == 20);
	assert_true(z.accept_threshold_percent == -1);
	assert_int_equal(z.shrinker_enabled, 0);

	z.enabled = 5;
	assert_int_equal(thp_parse_zswap(FX("zswap/bad"), &z), -EINVAL);
	assert_int_equal(thp_parse_zswap(FX("zswap/missing"), &z), -ENOENT);
	assert_int_equal(thp_parse_zswap(FX("zswap/absent"), &z), -ENOENT);
	assert_int_equal(z.enabled, 5);
}

static void test_psi(void **state)
{
	struct thp_psi p;

	assert_int_equal(thp_parse_psi(FX("psi/memory"), &p), 0);
	assert_true(p.some.present && p.full.present);
	assert_true(p.some.avg10 == 1.25 && p.some.avg60 == 0.5 && p.some.avg300 == 0.1);
	assert_true(p.some.total == 123456 && p.full.total == 789);
	assert_int_equal(thp_parse_psi(FX("psi/some-only"), &p), 0);
	assert_true(p.some.present && !p.full.present && p.some.total == 42);

	p.some.total = 99;
	assert_int_equal(thp_parse_psi(FX("psi/full-only"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/malformed"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/trailing"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/duplicate"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/unknown-line"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/empty"), &p), -EINVAL);
	assert_int_equal(thp_parse_psi(FX("psi/absent"), &p), -ENOENT);
	assert_true(p.some.total == 99);
}

/* -------------------------------------------------------- thp_probe() */

/* The live probes depend on the machine and the caller: make them "all
 * good" so the verdict depends only on the fixture files. */
static void force_live_ok(struct thp_caps *c)
{
	c->uffd.usable = true;
	c->uffd.syscall_err = c->uffd.dev_err = 0;
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++)
		c->uffd.feat[i] = (struct thp_feat){ .offered = true, .usable = true };
	c->uffd.event_fork_for_caller = true;
	c->pagemap_scan.available = true;
	c->pagemap_scan.err = 0;
}

static void probe_forced(struct thp_caps *c, const char *root)
{
	assert_int_equal(thp_probe(c, root), 0);
	force_live_ok(c);
}

static void test_probe_sysroot(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));

	assert_non_null(c);
	assert_int_equal(thp_probe(c, FX("sysroot-ok/")), 0);
	assert_true(c->kernel.release[0] != '\0');
	assert_string_equal(c->thp.enabled, "madvise");
	assert_int_equal(c->thp.enabled_err, 0);
	assert_string_equal(c->thp.pmd_enabled, "inherit");
	assert_string_equal(c->thp.effective, "madvise");
	assert_string_equal(c->thp.defrag, "madvise");
	assert_string_equal(c->thp.shmem_enabled, "never");
	assert_true(c->thp.use_zero_page == 1);
	assert_true(c->thp.pmd_size == THP_PMD_SIZE);
	assert_true(c->thp.max_ptes_none == 511 && c->thp.max_ptes_swap == 64 &&
		    c->thp.max_ptes_shared == 256);
	assert_int_equal(c->swap.err, 0);
	assert_int_equal(c->swap.count, 2);
	assert_string_equal(c->swap.dev[0].filename, "/var/swap file");
	assert_string_equal(c->swap.dev[1].type, "partition");
	assert_int_equal(c->zswap.err, 0);
	assert_int_equal(c->zswap.p.enabled, 1);
	assert_string_equal(c->zswap.p.compressor, "lzo-rle");
	assert_true(c->zswap.latched);
	assert_int_equal(c->pmd_swap.err, 0);
	assert_true(c->pmd_swap.present);
	assert_true(c->io_uring.disabled == 0);
	assert_true(c->uffd.unprivileged == 0);
	assert_int_equal(c->psi.err, 0);
	assert_true(c->psi.mem.some.total == 123456);
	/* Live probes: whatever they found, they agree with each other. */
	assert_true(c->uffd.event_fork_for_caller == c->uffd.feat[THP_UFFD_EVENT_FORK].usable);
	assert_true(c->uffd.usable == (c->uffd.syscall_err == 0 || c->uffd.dev_err == 0));
	if (c->uffd.api_err == 0)
		for (int i = 0; i < THP_UFFD_NR_FEAT; i++)
			assert_true(c->uffd.feat[i].usable == (c->uffd.feat[i].err == 0));

	/* The real machine: "/" and NULL are the same root. */
	assert_int_equal(thp_probe(c, "/"), 0);
	assert_true(c->thp.pmd_size != 0 || c->thp.pmd_size_err != 0);
	assert_int_equal(thp_probe(NULL, NULL), -EINVAL);
	free(c);
}

static void test_probe_empty_sysroot(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));
	char dir[] = "/tmp/thpswap-probe-XXXXXX", msg[1024];

	assert_non_null(c);
	assert_non_null(mkdtemp(dir));
	probe_forced(c, dir);
	rmdir(dir);
	assert_int_equal(c->thp.enabled_err, -ENOENT);
	assert_string_equal(c->thp.enabled, "");
	assert_int_equal(c->thp.pmd_size_err, -ENOENT);
	assert_true(c->thp.use_zero_page == -1 && c->thp.max_ptes_none == -1);
	assert_int_equal(c->swap.err, -ENOENT);
	assert_int_equal(c->swap.count, 0);
	assert_int_equal(c->zswap.err, -ENOENT);
	assert_false(c->zswap.latched);
	assert_int_equal(c->pmd_swap.err, -ENOENT);
	assert_false(c->pmd_swap.present);
	assert_int_equal(c->psi.err, -ENOENT);
	assert_true(c->io_uring.disabled == -1 && c->uffd.unprivileged == -1);

	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	expect_in(msg, "transparent huge pages are not available "
		       "(/sys/kernel/mm/transparent_hugepage/enabled: No such file or directory): "
		       "use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE\n");
	expect_in(msg, "the huge page (PMD) size is unknown");
	free(c);
}

/* The kernel tier's selection, from fixture sysroots and variations. */
static void test_kswap_mode(void **state)
{
	struct thp_caps *c = calloc(1, sizeof(*c));
	char dir[] = "/tmp/thpswap-probe-XXXXXX";

	assert_non_null(c);
	/* Two swap devices, thp_swpout_pmd, zswap enabled now: latched. */
	thp_probe_files(c, FX("sysroot-ok"));
	assert_true(c->swap.count == 2 && c->pmd_swap.present && c->zswap.latched);
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_COLLAPSE);
	c->zswap.latched = false;
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_PMD);
	c->zswap.err = -ENOENT;		/* no zswap in this kernel */
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_PMD);
	c->zswap.err = -EACCES;		/* unknown: as if latched */
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_COLLAPSE);
	c->zswap.err = 0;
	c->pmd_swap.present = false;
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_COLLAPSE);
	c->pmd_swap.present = true;
	c->pmd_swap.err = -EACCES;
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_COLLAPSE);
	c->pmd_swap.err = 0;
	c->swap.count = 0;
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_NONE);
	c->swap.count = 1;
	c->swap.err = -ENOENT;
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_NONE);

	/* Nothing readable: no swap, no tier. */
	memset(c, 0, sizeof(*c));
	assert_non_null(mkdtemp(dir));
	thp_probe_files(c, dir);
	rmdir(dir);
	assert_int_equal(thp_probe_kswap_mode(c), THP_KSWAP_NONE);

	assert_string_equal(thp_kswap_mode_name(THP_KSWAP_NONE), "none");
	assert_string_equal(thp_kswap_mode_name(THP_KSWAP_COLLAPSE), "collapse");
	assert_string_equal(thp_kswap_mode_name(THP_KSWAP_PMD), "pmd");
	free(c);
}

/* ------------------------------------------------------------- verdict */

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_required(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));
	char msg[2048], tiny[10];

	assert_non_null(c);
	probe_forced(c, FX("sysroot-ok"));
	strcpy(msg, "junk");
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");

	probe_forced(c, FX("sysroot-never"));
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	assert_string_equal(msg,
		"transparent huge pages are disabled (/sys/kernel/mm/transparent_hugepage/enabled = never): "
		"echo madvise > /sys/kernel/mm/transparent_hugepage/enabled\n");
	/* Truncated, still terminated, still a refusal. */
	assert_int_equal(thp_probe_required(c, tiny, sizeof(tiny)), -ENOTSUP);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(thp_probe_required(c, NULL, 0), -ENOTSUP);

	probe_forced(c, FX("sysroot-pmd-never"));
	assert_string_equal(c->thp.effective, "never");
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	assert_string_equal(msg,
		"transparent huge pages of 2048 kB are disabled "
		"(/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled = never): "
		"echo inherit > /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled\n");

	/* The per-size file overrides a top-level "never". */
	probe_forced(c, FX("sysroot-pmd-on"));
	assert_string_equal(c->thp.effective, "madvise");
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), 0);

	probe_forced(c, FX("sysroot-4m"));
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	expect_in(msg, "the huge page (PMD) size is 4096 KiB, not 2048 KiB");
	assert_int_equal(count_lines(msg), 1);

	/* Each live requirement on its own, then all at once. */
	probe_forced(c, FX("sysroot-ok"));
	c->uffd.feat[THP_UFFD_MOVE].usable = false;
	c->uffd.feat[THP_UFFD_MOVE].err = -EINVAL;
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	expect_in(msg, "UFFDIO_MOVE is not available (kernel ");
	expect_in(msg, "Invalid argument): upgrade to Linux 6.8 or later\n");
	assert_int_equal(count_lines(msg), 1);

	probe_forced(c, FX("sysroot-ok"));
	c->pagemap_scan.available = false;
	c->pagemap_scan.err = -ENOTTY;
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	expect_in(msg, "the PAGEMAP_SCAN ioctl is not available");
	assert_int_equal(count_lines(msg), 1);

	probe_forced(c, FX("sysroot-never"));
	c->uffd.usable = false;
	c->uffd.syscall_err = -EPERM;
	c->uffd.dev_err = -EACCES;
	c->uffd.feat[THP_UFFD_MOVE].usable = false;
	c->pagemap_scan.available = false;
	assert_int_equal(thp_probe_required(c, msg, sizeof(msg)), -ENOTSUP);
	expect_in(msg, "userfaultfd is not usable (userfaultfd(2): Operation not permitted; "
		       "/dev/userfaultfd: Permission denied): ");
	assert_null(strstr(msg, "UFFDIO_MOVE")); /* implied by the line above */
	assert_int_equal(count_lines(msg), 3);
	free(c);
}

/* --------------------------------------------------- output and ctl */


/* An in-memory stream whose buffer outlives the caller's frame: the
 * holder is on the heap, so no local's address escapes into the FILE
 * (gcc 12 -O3 reports -Wdangling-pointer otherwise). */
struct mem {
	char *buf;
	size_t len;
	FILE *f;
};

static struct mem *mem_open(void)
{
	struct mem *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->f = open_memstream(&m->buf, &m->len);
	assert_non_null(m->f);
	return m;
}

static char *mem_close(struct mem *m)
{
	char *buf;

	assert_int_equal(fclose(m->f), 0);
	buf = m->buf;
	free(m);
	return buf;
}

static char *capture_print(const struct thp_caps *c)
{
	struct mem *m = mem_open();

	kernel_report_table(c, m->f);
	return mem_close(m);
}

static char *capture_json(const struct thp_caps *c)
{
	struct mem *m = mem_open();
	struct thp_json j;

	thp_json_init(&j, m->f, false);
	thp_json_begin_object(&j, NULL);
	kernel_report_json(c, &j);
	thp_json_end_object(&j);
	assert_int_equal(thp_json_finish(&j), 0);
	return mem_close(m);
}

static void test_print(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));
	char *out, *kernel_row;

	assert_non_null(c);
	probe_forced(c, FX("sysroot-ok"));
	out = capture_print(c);
	assert_true(!strncmp(out, "feature ", 8));
	expect_in(out, "usable by thpswap?");
	expect_in(out, "without it thpswap loses\n");
	/* Aligned: the kernel row's "here" starts under the header's. */
	kernel_row = strstr(out, "\nkernel ");
	assert_non_null(kernel_row);
	kernel_row++;
	assert_int_equal(strstr(kernel_row, c->kernel.release) - kernel_row, strstr(out, "here") - out);
	expect_in(out, "/var/swap file (file, 1048572 KiB, 2048 used, priority -2)");
	expect_in(out, "/dev/vdb2 (partition,");
	expect_in(out, "present (patched kernel), but off: zswap was enabled");
	expect_in(out, "enabled (compressor lzo-rle); was enabled since boot");
	expect_in(out, "available to this caller: yes");
	expect_in(out, "thpswapd can run on this kernel.");
	free(out);

	probe_forced(c, FX("sysroot-never"));
	c->uffd.feat[THP_UFFD_EVENT_FORK].usable = false;
	c->uffd.feat[THP_UFFD_EVENT_FORK].err = -EPERM;
	out = capture_print(c);
	expect_in(out, "\nswap ");
	expect_in(out, "  none  ");
	expect_in(out, "absent (unpatched kernel): kernel tier swaps THPs as 512 small pages");
	expect_in(out, "disabled (compressor lzo)");
	expect_in(out, "available to this caller: no (needs CAP_SYS_PTRACE)");
	expect_in(out, "thpswapd cannot run on this kernel:\n  transparent huge pages are disabled");
	free(out);
	free(c);
}

static char *capture_report(bool json, const char *root, int *status)
{
	struct mem *m = mem_open();

	*status = kernel_report(m->f, json, root);
	return mem_close(m);
}

static void test_json_report(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));
	char *out;
	int depth = 0, status;

	assert_non_null(c);
	probe_forced(c, FX("sysroot-ok"));
	out = capture_json(c);

	for (const char *p = out; *p; p++)
		depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
	assert_int_equal(depth, 0);
	assert_true(out[0] == '{' && out[strlen(out) - 2] == '}');
	expect_in(out, "\"kernel\":{\"release\":\"");
	expect_in(out, "\"features\":{\"move\":{\"offered\":true,\"usable\":true,\"error\":null}");
	expect_in(out, "\"event_fork_for_caller\":true");
	expect_in(out, "\"thp\":{\"enabled\":\"madvise\",\"pmd_enabled\":\"inherit\","
		       "\"effective\":\"madvise\",\"defrag\":\"madvise\",\"shmem_enabled\":\"never\","
		       "\"use_zero_page\":1,\"pmd_size\":2097152,\"khugepaged\":{\"max_ptes_none\":511,"
		       "\"max_ptes_swap\":64,\"max_ptes_shared\":256},\"error\":null}");
	expect_in(out, "\"swap\":[{\"filename\":\"/var/swap file\",\"type\":\"file\","
		       "\"size_kib\":1048572,\"used_kib\":2048,\"priority\":-2},"
		       "{\"filename\":\"/dev/vdb2\",\"type\":\"partition\"");
	expect_in(out, "\"swap_error\":null");
	expect_in(out, "\"zswap\":{\"present\":true,\"enabled\":true,\"compressor\":\"lzo-rle\","
		       "\"zpool\":\"zsmalloc\",\"max_pool_percent\":20,\"accept_threshold_percent\":90,"
		       "\"shrinker_enabled\":true,\"latched\":true,\"error\":null}");
	expect_in(out, "\"pmd_swap_entries\":{\"present\":true,\"error\":null}");
	expect_in(out, "\"kernel_tier\":{\"mode\":\"collapse\"}");
	expect_in(out, "\"psi\":{\"memory\":true,\"some\":{\"avg10\":1.25,\"avg60\":0.5,"
		       "\"avg300\":0.1,\"total_us\":123456},\"full\":{");
	expect_in(out, "\"usable\":true,\"missing\":[]}\n");
	free(out);

	/* Through thpswapctl's own path, on a kernel that must be refused. */
	out = capture_report(true, FX("sysroot-never"), &status);
	assert_int_equal(status, CTL_EXIT_OK);
	expect_in(out, "\"usable\": false,\n  \"missing\": [\n");
	expect_in(out, "    \"transparent huge pages are disabled "
		       "(/sys/kernel/mm/transparent_hugepage/enabled = never): echo madvise > "
		       "/sys/kernel/mm/transparent_hugepage/enabled\"");
	expect_in(out, "\"pmd_swap_entries\": {\n    \"present\": false,");
	expect_in(out, "\"swap\": [],");
	free(out);

	out = capture_report(false, FX("sysroot-never"), &status);
	assert_int_equal(status, CTL_EXIT_OK);
	expect_in(out, "thpswapd cannot run on this kernel:");
	free(out);
	free(c);
}

/* A machine where nothing can be read and no uffd can be made. */
static void test_output_nothing(void **state)
{
	struct thp_caps *c = malloc(sizeof(*c));
	char dir[] = "/tmp/thpswap-probe-XXXXXX";
	char *out;

	assert_non_null(c);
	assert_non_null(mkdtemp(dir));
	probe_forced(c, dir);
	rmdir(dir);
	c->uffd.usable = false;
	c->uffd.syscall_err = -EPERM;
	c->uffd.dev_err = -ENOENT;
	c->uffd.user_mode_only_err = -EPERM;
	c->uffd.dev_present = c->uffd.dev_openable = false;
	c->uffd.api_err = -EPERM;
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++)
		c->uffd.feat[i] = (struct thp_feat){ .err = -EPERM };
	c->uffd.event_fork_for_caller = false;
	c->uffd.move_pmd = -1;
	c->uffd.move_pmd_err = -EPERM;
	c->io_uring.setup_err = -EPERM;
	c->io_uring.features = 0;

	out = capture_print(c);
	expect_in(out, "EPERM (user-mode-only: no; vm.unprivileged_userfaultfd=unknown)");
	expect_in(out, "unknown KiB");
	expect_in(out, "absent, not openable by this user");
	expect_in(out, "failed: EPERM");
	expect_in(out, "not offered, not usable (EPERM)");
	expect_in(out, "not tested (EPERM)");
	expect_in(out, "/proc/swaps: ENOENT");
	expect_in(out, "not in this kernel");
	expect_in(out, "unknown (/proc/vmstat: ENOENT)");
	expect_in(out, "EPERM (io_uring_disabled=unknown)");
	expect_in(out, "thpswapd cannot run on this kernel:\n  userfaultfd is not usable");
	free(out);

	out = capture_json(c);
	expect_in(out, "\"dev\":{\"path\":\"/dev/userfaultfd\",\"present\":false,\"openable\":false,"
		       "\"usable\":false,\"error\":\"ENOENT\"},\"unprivileged_userfaultfd\":null");
	expect_in(out, "\"move_pmd\":{\"tested\":false,\"whole\":null,\"error\":\"EPERM\"}");
	expect_in(out, "\"thp\":{\"enabled\":null,\"pmd_enabled\":null,\"effective\":null,\"defrag\":null,"
		       "\"shmem_enabled\":null,\"use_zero_page\":null,\"pmd_size\":null,\"khugepaged\":"
		       "{\"max_ptes_none\":null,\"max_ptes_swap\":null,\"max_ptes_shared\":null},"
		       "\"error\":\"ENOENT\"}");
	expect_in(out, "\"swap\":[],\"swap_error\":\"ENOENT\"");
	expect_in(out, "\"zswap\":{\"present\":false,\"enabled\":null,\"compressor\":null,");
	expect_in(out, "\"io_uring\":{\"usable\":false,\"disabled\":null,\"features\":0,\"error\":\"EPERM\"}");
	expect_in(out, "\"psi\":{\"memory\":false,\"some\":null,\"full\":null,");
	expect_in(out, "\"usable\":false,\"missing\":[\"userfaultfd is not usable");
	free(out);
	free(c);
}

static void test_cmd_kernel_usage(void **state)
{
	struct ctl_opts o = { .socket = NULL, .json = false };
	char *bad[] = { "kernel", "--bogus", NULL };
	char *extra[] = { "kernel", "--json", "clients", NULL };

	assert_int_equal(cmd_kernel(&o, 2, bad), CTL_EXIT_USAGE);
	assert_int_equal(cmd_kernel(&o, 3, extra), CTL_EXIT_USAGE);
	assert_string_equal(thp_uffd_feat_name(THP_UFFD_MOVE), "move");
	assert_string_equal(thp_uffd_feat_name(THP_UFFD_POISON), "poison");
	assert_null(thp_uffd_feat_name(THP_UFFD_NR_FEAT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_bool_line),
		cmocka_unit_test(test_vmstat),
		cmocka_unit_test(test_swaps),
		cmocka_unit_test(test_zswap),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_probe_sysroot),
		cmocka_unit_test(test_probe_empty_sysroot),
		cmocka_unit_test(test_kswap_mode),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_json_report),
		cmocka_unit_test(test_output_nothing),
		cmocka_unit_test(test_cmd_kernel_usage),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
