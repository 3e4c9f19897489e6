/* SPDX-License-Identifier: MIT */
/*
 * The kernel probe's verdict: can thpswapd run on what thp_probe() found,
 * and if not, what is missing and what to do about each item.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel-abi.h"
#include "probe.h"
#include "uffd.h"

static const char *errstr(int err)
{
	return err ? strerror(-err) : "ok";
}

/* Appends to @msg as far as it fits; returns 1 (one line counted). */
static int appendf(char *msg, size_t sz, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int appendf(char *msg, size_t sz, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!msg || sz == 0 || *off >= sz - 1)
		return 1;
	va_start(ap, fmt);
	n = vsnprintf(msg + *off, sz - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off = *off + (size_t)n < sz - 1 ? *off + (size_t)n : sz - 1;
	return 1;
}

int thp_probe_required(const struct thp_caps *c, char *msg, size_t msgsz)
{
	size_t off = 0;
	int missing = 0;

	if (msg && msgsz)
		msg[0] = '\0';
	if (!c->uffd.usable)
		missing += appendf(msg, msgsz, &off,
			"userfaultfd is not usable (userfaultfd(2): %s; " THP_UFFD_DEV ": %s): "
			"run thpswapd as root, or give its user access to " THP_UFFD_DEV
			" (the thpswap group); the kernel needs CONFIG_USERFAULTFD\n",
			errstr(c->uffd.syscall_err), errstr(c->uffd.dev_err));
	else if (!c->uffd.feat[THP_UFFD_MOVE].usable)
		missing += appendf(msg, msgsz, &off,
			"UFFDIO_MOVE is not available (kernel %s: %s): upgrade to Linux 6.8 or later\n",
			c->kernel.release, errstr(c->uffd.feat[THP_UFFD_MOVE].err));
	if (!c->pagemap_scan.available)
		missing += appendf(msg, msgsz, &off,
			"the PAGEMAP_SCAN ioctl is not available (kernel %s: %s): upgrade to Linux 6.7 or later\n",
			c->kernel.release, errstr(c->pagemap_scan.err));
	if (c->thp.enabled_err)
		missing += appendf(msg, msgsz, &off,
			"transparent huge pages are not available (" THP_SYSFS_DIR "/enabled: %s): "
			"use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE\n",
			errstr(c->thp.enabled_err));
	else if (!strcmp(c->thp.effective, "never")) {
		if (c->thp.pmd_enabled[0] && strcmp(c->thp.pmd_enabled, "inherit"))
			missing += appendf(msg, msgsz, &off,
				"transparent huge pages of %" PRIu64 " kB are disabled (" THP_SYSFS_DIR
				"/hugepages-%" PRIu64 "kB/enabled = never): echo inherit > " THP_SYSFS_DIR
				"/hugepages-%" PRIu64 "kB/enabled\n",
				c->thp.pmd_size >> 10, c->thp.pmd_size >> 10, c->thp.pmd_size >> 10);
		else
			missing += appendf(msg, msgsz, &off,
				"transparent huge pages are disabled (" THP_SYSFS_DIR "/enabled = never): "
				"echo madvise > " THP_SYSFS_DIR "/enabled\n");
	}
	if (c->thp.pmd_size_err)
		missing += appendf(msg, msgsz, &off,
			"the huge page (PMD) size is unknown (" THP_SYSFS_DIR "/hpage_pmd_size: %s): "
			"use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE\n",
			errstr(c->thp.pmd_size_err));
	else if (c->thp.pmd_size != THP_PMD_SIZE)
		missing += appendf(msg, msgsz, &off,
			"the huge page (PMD) size is %" PRIu64 " KiB, not 2048 KiB (" THP_SYSFS_DIR
			"/hpage_pmd_size): thpswap needs 4 KiB base pages with 2 MiB PMDs "
			"(x86-64, or arm64 with 4K pages)\n", c->thp.pmd_size >> 10);
	return missing ? -ENOTSUP : 0;
}

int thp_probe_verdict_print(const struct thp_caps *c, FILE *f)
{
	char msg[2048];
	int r = thp_probe_required(c, msg, sizeof(msg));

	if (r == 0) {
		fputs("thpswapd can run on this kernel.\n", f);
		return 0;
	}
	fputs("thpswapd cannot run on this kernel:\n", f);
	for (char *save = NULL, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		fprintf(f, "  %s\n", l);
	return r;
}

enum thp_kswap_mode thp_probe_kswap_mode(const struct thp_caps *c)
{
	bool zswap_off = c->zswap.err == -ENOENT || (c->zswap.err == 0 && !c->zswap.latched);

	if (c->swap.err || c->swap.count == 0)
		return THP_KSWAP_NONE;
	if (c->pmd_swap.err == 0 && c->pmd_swap.present && zswap_off)
		return THP_KSWAP_PMD;
	return THP_KSWAP_COLLAPSE;
}

const char *thp_kswap_mode_name(enum thp_kswap_mode m)
{
	switch (m) {
	case THP_KSWAP_NONE: return "none";
	case THP_KSWAP_COLLAPSE: return "collapse";
	case THP_KSWAP_PMD: return "pmd";
	}
	return "?";
}
