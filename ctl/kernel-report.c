/* SPDX-License-Identifier: MIT */
/*
 * The kernel capability report of thpswapctl kernel: a table for people and
 * JSON for programs, from the struct thp_caps that thp_probe() filled.
 *
 * JSON report (`thpswapctl kernel --json`; kernel_report_json writes these as
 * members of one object).  "error" members are null or an errno name such as
 * "EPERM"; numbers the kernel did not give are null.
 *
 *   kernel                  {release, machine}                  uname -r / -m
 *   userfaultfd
 *     usable                bool   a full uffd (syscall or dev) can be created
 *     syscall               {available, error, user_mode_only}  userfaultfd(2);
 *                           user_mode_only: UFFD_USER_MODE_ONLY works
 *     dev                   {path, present, openable, usable, error}
 *                           /dev/userfaultfd: char device exists, open(O_RDWR)
 *                           works for this user, USERFAULTFD_IOC_NEW works
 *     unprivileged_userfaultfd  int|null  vm.unprivileged_userfaultfd
 *     api                   {features, ioctls, error}  UFFDIO_API(features=0)
 *     features              {move, event_fork, event_remove, event_unmap,
 *                            event_remap, wp, wp_async, poison}: each
 *                           {offered, usable, error}; offered = in the API
 *                           mask, usable = UFFDIO_API asking for it alone
 *                           (wp_async: with wp) succeeded on a throw-away uffd
 *                           (move: and a 4 KiB UFFDIO_MOVE moved a page)
 *     event_fork_for_caller bool   EVENT_FORK granted (needs CAP_SYS_PTRACE)
 *     move_pmd              {tested, whole, error}  a 2 MiB MOVE of a THP left
 *                           the destination PMD-mapped (whole null if untested)
 *   pagemap_scan            {available, error}  PAGEMAP_SCAN on /proc/self/pagemap
 *   madv_collapse           {available, collapsed, error}
 *   thp                     {enabled, pmd_enabled, effective, defrag,
 *                            shmem_enabled, use_zero_page, pmd_size,
 *                            khugepaged: {max_ptes_none, max_ptes_swap,
 *                            max_ptes_shared}, error}
 *                           modes are the bracketed words; pmd_enabled is
 *                           hugepages-<PMD>kB/enabled (null if absent);
 *                           effective is what applies to PMD-sized THPs;
 *                           error is about reading "enabled"
 *   swap                    [{filename, type ("file"|"partition"), size_kib,
 *                             used_kib, priority}]  from /proc/swaps
 *   swap_error              null|errno name  reading /proc/swaps
 *   zswap                   {present, enabled, compressor, zpool,
 *                            max_pool_percent, accept_threshold_percent,
 *                            shrinker_enabled, latched, error}
 *                           latched: enabled now or zswpout/zswpin > 0, so
 *                           large-folio swap-in is off until reboot
 *   pmd_swap_entries        {present, error}  thp_swpout_pmd in /proc/vmstat
 *   kernel_tier             {mode}  "none" (no swap device), "collapse" (back in
 *                           4 KiB pages, collapsed by the agent), "pmd" (PMD
 *                           swap entries, zswap never enabled this boot)
 *   io_uring                {usable, disabled, features, error}
 *                           usable = io_uring_setup(2) worked; disabled =
 *                           kernel.io_uring_disabled; features = the ring's
 *   psi                     {memory, some, full, cap_sys_resource,
 *                            min_trigger_window_us, error}
 *                           some/full: {avg10, avg60, avg300, total_us}|null
 *   usable                  bool   thpswapd can run (all of: userfaultfd usable,
 *                           move usable, pagemap_scan available, thp.effective
 *                           not "never", thp.pmd_size 2097152)
 *   missing                 [string]  one line per missing requirement: what
 *                           is missing, then ": " and what to do (the lines
 *                           thpswapd prints after "thpswapd: cannot start: ")
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel-abi.h"
#include "kernel-report.h"
#include "uffd.h"

/* What each optional userfaultfd feature is called here, and what
 * thpswap loses without it. */
static const struct {
	const char *label, *loses;
} feats[THP_UFFD_NR_FEAT] = {
	[THP_UFFD_MOVE] = { "UFFDIO_MOVE",
		"required: whole-THP restore (the only way to install a PMD from userspace)" },
	[THP_UFFD_EVENT_FORK] = { "EVENT_FORK",
		"evicted regions read as zeros in forked children" },
	[THP_UFFD_EVENT_REMOVE] = { "EVENT_REMOVE",
		"MADV_DONTNEED/FREE of an evicted region would bring old bytes back" },
	[THP_UFFD_EVENT_UNMAP] = { "EVENT_UNMAP",
		"records of unmapped regions stay until the client exits" },
	[THP_UFFD_EVENT_REMAP] = { "EVENT_REMAP",
		"evicted regions moved by mremap read as zeros" },
	[THP_UFFD_WP] = { "WP (write-protect)",
		"clean/dirty tracking (re-evicting without recompressing)" },
	[THP_UFFD_WP_ASYNC] = { "WP_ASYNC",
		"nothing (unused: its first write splits the PMD)" },
	[THP_UFFD_POISON] = { "POISON",
		"a corrupt record gives SIGBUS instead of wrong bytes" },
};

/* "EPERM" for -EPERM, NULL for 0. */
static const char *errname(int err, char buf[24])
{
	const char *s = err ? strerrorname_np(-err) : NULL;

	if (s || !err)
		return s;
	snprintf(buf, 24, "errno %d", -err);
	return buf;
}

/* ------------------------------------------------------------ human table */

struct row {
	const char *feature;
	char here[320];
	const char *usable;
	const char *loses;
};

#define MAX_ROWS (32 + THP_PROBE_MAX_SWAPS)

static struct row *add_row(struct row *rows, int *n, const char *feature,
			   const char *usable, const char *loses, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static struct row *add_row(struct row *rows, int *n, const char *feature,
			   const char *usable, const char *loses, const char *fmt, ...)
{
	struct row *r;
	va_list ap;

	if (*n >= MAX_ROWS)
		return NULL;
	r = &rows[(*n)++];
	r->feature = feature;
	r->usable = usable;
	r->loses = loses;
	va_start(ap, fmt);
	vsnprintf(r->here, sizeof(r->here), fmt, ap);
	va_end(ap);
	return r;
}

static const char *yesno(bool b)
{
	return b ? "yes" : "no";
}

static const char *or_unknown(const char *s)
{
	return s && s[0] ? s : "unknown";
}

/* -1 means the kernel did not say. */
static const char *num_or_unknown(int64_t v, char buf[24])
{
	if (v < 0)
		return "unknown";
	snprintf(buf, 24, "%" PRId64, v);
	return buf;
}

static void uffd_rows(const struct thp_caps *c, struct row *rows, int *n)
{
	char e[24], v[24];

	if (c->uffd.syscall_err == 0)
		add_row(rows, n, "userfaultfd(2)", "yes", "uffds without " THP_UFFD_DEV, "works");
	else
		add_row(rows, n, "userfaultfd(2)", "no", "uffds without " THP_UFFD_DEV,
			"%s (user-mode-only: %s; vm.unprivileged_userfaultfd=%s)",
			errname(c->uffd.syscall_err, e),
			c->uffd.user_mode_only_err ? "no" : "works", num_or_unknown(c->uffd.unprivileged, v));
	if (c->uffd.dev_err == 0)
		add_row(rows, n, THP_UFFD_DEV, "yes", "unprivileged clients (the thpswap group opens it)",
			"present, openable by this user");
	else
		add_row(rows, n, THP_UFFD_DEV, "no", "unprivileged clients (the thpswap group opens it)",
			"%s, %s", c->uffd.dev_present ? "present" : "absent",
			c->uffd.dev_openable ? "USERFAULTFD_IOC_NEW failed" : "not openable by this user");
	if (c->uffd.api_err)
		add_row(rows, n, "UFFDIO_API", "no", "every userfaultfd feature",
			"failed: %s", errname(c->uffd.api_err, e));
	else
		add_row(rows, n, "UFFDIO_API", "yes", "-", "features 0x%" PRIx64 ", ioctls 0x%" PRIx64,
			c->uffd.api_features, c->uffd.api_ioctls);
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++) {
		const struct thp_feat *f = &c->uffd.feat[i];
		const char *use = i == THP_UFFD_WP_ASYNC ? "-" : yesno(f->usable);

		if (i == THP_UFFD_EVENT_FORK)
			add_row(rows, n, feats[i].label, use, feats[i].loses,
				"%s; available to this caller: %s%s", f->offered ? "offered" : "not offered",
				yesno(f->usable), f->usable ? "" : " (needs CAP_SYS_PTRACE)");
		else if (f->usable)
			add_row(rows, n, feats[i].label, use, feats[i].loses, "%s, usable",
				f->offered ? "offered" : "not offered but works");
		else
			add_row(rows, n, feats[i].label, use, feats[i].loses, "%s, not usable (%s)",
				f->offered ? "offered" : "not offered", errname(f->err, e));
	}
	if (c->uffd.move_pmd == 1)
		add_row(rows, n, "whole-PMD MOVE", "yes", "restores come back as 4 KiB pages",
			"a moved THP stays PMD-mapped");
	else if (c->uffd.move_pmd == 0 && c->uffd.move_pmd_err)
		add_row(rows, n, "whole-PMD MOVE", "no", "restores come back as 4 KiB pages",
			"a 2 MiB MOVE failed (%s)", errname(c->uffd.move_pmd_err, e));
	else if (c->uffd.move_pmd == 0)
		add_row(rows, n, "whole-PMD MOVE", "no", "restores come back as 4 KiB pages",
			"a moved THP was split into 4 KiB PTEs");
	else
		add_row(rows, n, "whole-PMD MOVE", "-", "restores come back as 4 KiB pages",
			"not tested (%s)", c->uffd.move_pmd_err == -EAGAIN ? "no THP to test with"
			: errname(c->uffd.move_pmd_err, e));
}

void kernel_report_table(const struct thp_caps *c, FILE *f)
{
	struct row rows[MAX_ROWS];
	int n = 0;
	size_t w[3] = { strlen("feature"), strlen("here"), strlen("usable by thpswap?") };
	char e[24], v[24];

	add_row(rows, &n, "kernel", "-", "-", "%s %s", or_unknown(c->kernel.release), c->kernel.machine);
	uffd_rows(c, rows, &n);
	add_row(rows, &n, "PAGEMAP_SCAN", yesno(c->pagemap_scan.available),
		"required: checking restored regions are PMD-mapped",
		"%s", c->pagemap_scan.available ? "works" : errname(c->pagemap_scan.err, e));
	add_row(rows, &n, "MADV_COLLAPSE", yesno(c->madv_collapse.available),
		"re-forming split THPs; kernel-tier swap-in on stock kernels", "%s%s",
		c->madv_collapse.err ? errname(c->madv_collapse.err, e) : "works",
		c->madv_collapse.collapsed == 1 ? ", collapsed to a PMD" :
		c->madv_collapse.collapsed == 0 ? ", but the range stayed PTE-mapped" : "");
	add_row(rows, &n, "THP enabled", yesno(c->thp.effective[0] && strcmp(c->thp.effective, "never")),
		"required (not never): huge pages at all", "%s%s%s%s",
		c->thp.enabled_err ? errname(c->thp.enabled_err, e) : c->thp.enabled,
		c->thp.pmd_enabled[0] ? " (PMD size: " : "", c->thp.pmd_enabled,
		c->thp.pmd_enabled[0] ? ")" : "");
	add_row(rows, &n, "THP defrag", "-", "-", "%s", or_unknown(c->thp.defrag));
	add_row(rows, &n, "THP shmem_enabled", "-", "- (thpswap manages anonymous memory)", "%s",
		or_unknown(c->thp.shmem_enabled));
	add_row(rows, &n, "THP use_zero_page", yesno(c->thp.use_zero_page == 1),
		"zero regions restoring as the huge zero page", "%s", num_or_unknown(c->thp.use_zero_page, v));
	add_row(rows, &n, "PMD size", yesno(c->thp.pmd_size == THP_PMD_SIZE),
		"required (2 MiB): everything", "%s KiB",
		num_or_unknown(c->thp.pmd_size ? (int64_t)(c->thp.pmd_size >> 10) : -1, v));
	add_row(rows, &n, "khugepaged max_ptes_none", "-", "-", "%s", num_or_unknown(c->thp.max_ptes_none, v));

	if (c->swap.err)
		add_row(rows, &n, "swap", "no", "the kernel tier (needs a swap device)",
			"/proc/swaps: %s", errname(c->swap.err, e));
	else if (c->swap.count == 0)
		add_row(rows, &n, "swap", "no", "the kernel tier (needs a swap device)", "none");
	for (int i = 0; i < c->swap.count && i < THP_PROBE_MAX_SWAPS; i++) {
		const struct thp_swap_dev *d = &c->swap.dev[i];

		add_row(rows, &n, "swap", "yes", "the kernel tier (needs a swap device)",
			"%s (%s, %" PRIu64 " KiB, %" PRIu64 " used, priority %d)",
			d->filename, d->type, d->size_kib, d->used_kib, d->priority);
	}
	if (c->zswap.err)
		add_row(rows, &n, "zswap", "-", "- (see note)", "%s",
			c->zswap.err == -ENOENT ? "not in this kernel" : errname(c->zswap.err, e));
	else
		add_row(rows, &n, "zswap", "-", "- (see note)", "%s (compressor %s)%s",
			c->zswap.p.enabled == 1 ? "enabled" : "disabled", or_unknown(c->zswap.p.compressor),
			c->zswap.latched ? "; was enabled since boot" : "");
	if (c->pmd_swap.err)
		add_row(rows, &n, "PMD swap entries", "no", "kernel tier keeping THPs whole",
			"unknown (/proc/vmstat: %s)", errname(c->pmd_swap.err, e));
	else if (c->pmd_swap.present)
		add_row(rows, &n, "PMD swap entries", yesno(!c->zswap.latched), "kernel tier keeping THPs whole",
			"present (patched kernel)%s", c->zswap.latched ? ", but off: zswap was enabled" : "");
	else
		add_row(rows, &n, "PMD swap entries", "no", "kernel tier keeping THPs whole",
			"absent (unpatched kernel): kernel tier swaps THPs as 512 small pages");
	switch (thp_probe_kswap_mode(c)) {
	case THP_KSWAP_NONE:
		add_row(rows, &n, "kernel tier", "no", "evict --tier kernel, ADVICE_PAGEOUT",
			"none: no swap device");
		break;
	case THP_KSWAP_COLLAPSE:
		add_row(rows, &n, "kernel tier", "yes", "evict --tier kernel, ADVICE_PAGEOUT",
			"collapse: back in 4 KiB pages, made one PMD again by the agent");
		break;
	case THP_KSWAP_PMD:
		add_row(rows, &n, "kernel tier", "yes", "evict --tier kernel, ADVICE_PAGEOUT",
			"pmd: leaves and comes back as one PMD swap entry");
		break;
	}
	add_row(rows, &n, "io_uring", yesno(c->io_uring.setup_err == 0), "the file tier",
		"%s (io_uring_disabled=%s)",
		c->io_uring.setup_err ? errname(c->io_uring.setup_err, e) : "works",
		num_or_unknown(c->io_uring.disabled, v));
	if (c->psi.err)
		add_row(rows, &n, "PSI memory", "no", "pressure-driven eviction", "%s",
			errname(c->psi.err, e));
	else
		add_row(rows, &n, "PSI memory", "yes", "pressure-driven eviction",
			"readable; triggers need %s windows%s", c->psi.cap_sys_resource ? "0.5 s" : "2 s",
			c->psi.cap_sys_resource ? "" : " (no CAP_SYS_RESOURCE)");

	for (int i = 0; i < n; i++) {
		size_t l[3] = { strlen(rows[i].feature), strlen(rows[i].here), strlen(rows[i].usable) };

		for (int k = 0; k < 3; k++)
			if (l[k] > w[k])
				w[k] = l[k];
	}
	fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int)w[0], "feature", (int)w[1], "here",
		(int)w[2], "usable by thpswap?", "without it thpswap loses");
	for (int i = 0; i < n; i++)
		fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int)w[0], rows[i].feature, (int)w[1],
			rows[i].here, (int)w[2], rows[i].usable, rows[i].loses);

	fputc('\n', f);
	thp_probe_verdict_print(c, f);
	fputs("\nNotes:\n"
	      "  zswap: enabling it even once turns large-folio swap-in off until reboot\n"
	      "    (and, on a patched kernel, PMD swap entries too).\n"
	      "  PSI: without CAP_SYS_RESOURCE the kernel accepts only 2 s-multiple trigger windows.\n", f);
}

/* ------------------------------------------------------------------- JSON */

static void json_err(struct thp_json *j, const char *key, int err)
{
	char buf[24];

	thp_json_string(j, key, errname(err, buf));
}

static void json_int_or_null(struct thp_json *j, const char *key, int64_t v)
{
	if (v < 0)
		thp_json_null(j, key);
	else
		thp_json_i64(j, key, v);
}

static void json_str_or_null(struct thp_json *j, const char *key, const char *s)
{
	thp_json_string(j, key, s[0] ? s : NULL);
}

static void json_tristate(struct thp_json *j, const char *key, int v)
{
	if (v < 0)
		thp_json_null(j, key);
	else
		thp_json_bool(j, key, v);
}

/* @key: {@flag: @v, "error": @err} */
static void json_flag(struct thp_json *j, const char *key, const char *flag, bool v, int err)
{
	thp_json_begin_object(j, key);
	thp_json_bool(j, flag, v);
	json_err(j, "error", err);
	thp_json_end_object(j);
}

static void json_psi_line(struct thp_json *j, const char *key, const struct thp_psi_line *l)
{
	if (!l->present) {
		thp_json_null(j, key);
		return;
	}
	thp_json_begin_object(j, key);
	thp_json_double(j, "avg10", l->avg10);
	thp_json_double(j, "avg60", l->avg60);
	thp_json_double(j, "avg300", l->avg300);
	thp_json_u64(j, "total_us", l->total);
	thp_json_end_object(j);
}

static void json_uffd(const struct thp_caps *c, struct thp_json *j)
{
	thp_json_begin_object(j, "userfaultfd");
	thp_json_bool(j, "usable", c->uffd.usable);
	thp_json_begin_object(j, "syscall");
	thp_json_bool(j, "available", c->uffd.syscall_err == 0);
	json_err(j, "error", c->uffd.syscall_err);
	thp_json_bool(j, "user_mode_only", c->uffd.user_mode_only_err == 0);
	thp_json_end_object(j);
	thp_json_begin_object(j, "dev");
	thp_json_string(j, "path", THP_UFFD_DEV);
	thp_json_bool(j, "present", c->uffd.dev_present);
	thp_json_bool(j, "openable", c->uffd.dev_openable);
	thp_json_bool(j, "usable", c->uffd.dev_err == 0);
	json_err(j, "error", c->uffd.dev_err);
	thp_json_end_object(j);
	json_int_or_null(j, "unprivileged_userfaultfd", c->uffd.unprivileged);
	thp_json_begin_object(j, "api");
	thp_json_u64(j, "features", c->uffd.api_features);
	thp_json_u64(j, "ioctls", c->uffd.api_ioctls);
	json_err(j, "error", c->uffd.api_err);
	thp_json_end_object(j);
	thp_json_begin_object(j, "features");
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++) {
		thp_json_begin_object(j, thp_uffd_feat_name(i));
		thp_json_bool(j, "offered", c->uffd.feat[i].offered);
		thp_json_bool(j, "usable", c->uffd.feat[i].usable);
		json_err(j, "error", c->uffd.feat[i].err);
		thp_json_end_object(j);
	}
	thp_json_end_object(j);
	thp_json_bool(j, "event_fork_for_caller", c->uffd.event_fork_for_caller);
	thp_json_begin_object(j, "move_pmd");
	thp_json_bool(j, "tested", c->uffd.move_pmd >= 0);
	json_tristate(j, "whole", c->uffd.move_pmd);
	json_err(j, "error", c->uffd.move_pmd_err);
	thp_json_end_object(j);
	thp_json_end_object(j);
}

void kernel_report_json(const struct thp_caps *c, struct thp_json *j)
{
	char msg[2048];
	int usable = thp_probe_required(c, msg, sizeof(msg)) == 0;

	thp_json_begin_object(j, "kernel");
	json_str_or_null(j, "release", c->kernel.release);
	json_str_or_null(j, "machine", c->kernel.machine);
	thp_json_end_object(j);

	json_uffd(c, j);

	json_flag(j, "pagemap_scan", "available", c->pagemap_scan.available, c->pagemap_scan.err);

	thp_json_begin_object(j, "madv_collapse");
	thp_json_bool(j, "available", c->madv_collapse.available);
	json_tristate(j, "collapsed", c->madv_collapse.collapsed);
	json_err(j, "error", c->madv_collapse.err);
	thp_json_end_object(j);

	thp_json_begin_object(j, "thp");
	json_str_or_null(j, "enabled", c->thp.enabled);
	json_str_or_null(j, "pmd_enabled", c->thp.pmd_enabled);
	json_str_or_null(j, "effective", c->thp.effective);
	json_str_or_null(j, "defrag", c->thp.defrag);
	json_str_or_null(j, "shmem_enabled", c->thp.shmem_enabled);
	json_int_or_null(j, "use_zero_page", c->thp.use_zero_page);
	if (c->thp.pmd_size)
		thp_json_u64(j, "pmd_size", c->thp.pmd_size);
	else
		thp_json_null(j, "pmd_size");
	thp_json_begin_object(j, "khugepaged");
	json_int_or_null(j, "max_ptes_none", c->thp.max_ptes_none);
	json_int_or_null(j, "max_ptes_swap", c->thp.max_ptes_swap);
	json_int_or_null(j, "max_ptes_shared", c->thp.max_ptes_shared);
	thp_json_end_object(j);
	json_err(j, "error", c->thp.enabled_err);
	thp_json_end_object(j);

	thp_json_begin_array(j, "swap");
	for (int i = 0; i < c->swap.count && i < THP_PROBE_MAX_SWAPS; i++) {
		const struct thp_swap_dev *d = &c->swap.dev[i];

		thp_json_begin_object(j, NULL);
		thp_json_string(j, "filename", d->filename);
		thp_json_string(j, "type", d->type);
		thp_json_u64(j, "size_kib", d->size_kib);
		thp_json_u64(j, "used_kib", d->used_kib);
		thp_json_i64(j, "priority", d->priority);
		thp_json_end_object(j);
	}
	thp_json_end_array(j);
	json_err(j, "swap_error", c->swap.err);

	thp_json_begin_object(j, "zswap");
	thp_json_bool(j, "present", c->zswap.err == 0);
	json_tristate(j, "enabled", c->zswap.p.enabled);
	json_str_or_null(j, "compressor", c->zswap.p.compressor);
	json_str_or_null(j, "zpool", c->zswap.p.zpool);
	json_int_or_null(j, "max_pool_percent", c->zswap.p.max_pool_percent);
	json_int_or_null(j, "accept_threshold_percent", c->zswap.p.accept_threshold_percent);
	json_tristate(j, "shrinker_enabled", c->zswap.p.shrinker_enabled);
	thp_json_bool(j, "latched", c->zswap.latched);
	json_err(j, "error", c->zswap.err);
	thp_json_end_object(j);

	json_flag(j, "pmd_swap_entries", "present", c->pmd_swap.present, c->pmd_swap.err);
	thp_json_begin_object(j, "kernel_tier");
	thp_json_string(j, "mode", thp_kswap_mode_name(thp_probe_kswap_mode(c)));
	thp_json_end_object(j);

	thp_json_begin_object(j, "io_uring");
	thp_json_bool(j, "usable", c->io_uring.setup_err == 0);
	json_int_or_null(j, "disabled", c->io_uring.disabled);
	thp_json_u64(j, "features", c->io_uring.features);
	json_err(j, "error", c->io_uring.setup_err);
	thp_json_end_object(j);

	thp_json_begin_object(j, "psi");
	thp_json_bool(j, "memory", c->psi.err == 0);
	json_psi_line(j, "some", &c->psi.mem.some);
	json_psi_line(j, "full", &c->psi.mem.full);
	thp_json_bool(j, "cap_sys_resource", c->psi.cap_sys_resource);
	thp_json_u64(j, "min_trigger_window_us", c->psi.cap_sys_resource ? 500000 : 2000000);
	json_err(j, "error", c->psi.err);
	thp_json_end_object(j);

	thp_json_bool(j, "usable", usable);
	thp_json_begin_array(j, "missing");
	for (char *save = NULL, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		thp_json_string(j, NULL, l);
	thp_json_end_array(j);
}
