/* SPDX-License-Identifier: MIT */
/*
 * Kernel capability probe (thpswapctl kernel, thpswapd --check and start-up).
 *
 * JSON report (`thpswapctl kernel --json`; thp_probe_json writes these as
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
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "json.h"
#include "kernel-abi.h"
#include "probe.h"

#define THP_DIR   "/sys/kernel/mm/transparent_hugepage"
#define ZSWAP_DIR "/sys/module/zswap/parameters"
#define UFFD_DEV  "/dev/userfaultfd"

/* ---------------------------------------------------------------- parsers */

/* Reads a small file whole, NUL-terminated.  Length or -errno (-EFBIG). */
static ssize_t read_small(const char *path, char *buf, size_t sz)
{
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + len, sz - 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sz - 1) {
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

static int copy_word(char *dst, size_t dstsz, const char *s, size_t n)
{
	if (n >= dstsz)
		return -ENAMETOOLONG;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* The first line, without its newline; -EINVAL if it is empty. */
static int first_line(const char *path, char *buf, size_t bufsz, size_t *len)
{
	ssize_t n = read_small(path, buf, bufsz);

	if (n < 0)
		return (int)n;
	*len = strcspn(buf, "\n");
	buf[*len] = '\0';
	return *len ? 0 : -EINVAL;
}

int thp_parse_line(const char *path, char *buf, size_t bufsz)
{
	char tmp[4096];
	size_t len = 0;
	int r = first_line(path, tmp, sizeof(tmp), &len);

	return r < 0 ? r : copy_word(buf, bufsz, tmp, len);
}

int thp_parse_mode(const char *path, char *mode, size_t modesz)
{
	char buf[4096];
	ssize_t n = read_small(path, buf, sizeof(buf));
	char *open, *close;

	if (n < 0)
		return (int)n;
	open = strchr(buf, '[');
	if (!open)
		return -EINVAL;
	close = strchr(open + 1, ']');
	/* Exactly one non-empty, space-free bracketed word. */
	if (!close || close == open + 1 || strchr(close + 1, '[') ||
	    strchr(close + 1, ']') || strcspn(open + 1, " \t\n[") < (size_t)(close - open - 1))
		return -EINVAL;
	return copy_word(mode, modesz, open + 1, (size_t)(close - open - 1));
}

/* Decimal digits only, the whole string; no sign, no blanks. */
static int parse_u64_str(const char *s, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end)
		return -EINVAL;
	*v = x;
	return 0;
}

/* A one-word file (a number, Y/N): anything long is malformed. */
static int short_line(const char *path, char buf[64], size_t *len)
{
	int r = first_line(path, buf, 64, len);

	return r == -EFBIG ? -EINVAL : r;
}

int thp_parse_u64(const char *path, uint64_t *v)
{
	char buf[64];
	size_t len = 0;
	int r = short_line(path, buf, &len);

	return r < 0 ? r : parse_u64_str(buf, v);
}

int thp_parse_bool(const char *path, int *v)
{
	char buf[64];
	size_t len = 0;
	int r = short_line(path, buf, &len);

	if (r < 0)
		return r;
	if (len != 1)
		return -EINVAL;
	switch (buf[0]) {
	case 'Y': case 'y': case '1': *v = 1; return 0;
	case 'N': case 'n': case '0': *v = 0; return 0;
	}
	return -EINVAL;
}

/* Finds "@key value" in a vmstat-style file; @value gets the rest of the
 * line.  1 found, 0 no such key, -errno (-EINVAL: value too long). */
static int vmstat_find(const char *path, const char *key, char *value, size_t valuesz)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0, klen = strlen(key);
	int r = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		if (strncmp(line, key, klen) || line[klen] != ' ')
			continue;
		line[strcspn(line, "\n")] = '\0';
		r = copy_word(value, valuesz, line + klen + 1, strlen(line + klen + 1)) < 0 ? -EINVAL : 1;
		break;
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(line);
	fclose(f);
	return r;
}

int thp_parse_vmstat(const char *path, const char *key, uint64_t *v)
{
	char val[32];
	int r = vmstat_find(path, key, val, sizeof(val));

	if (r <= 0)
		return r == 0 ? -ENOENT : r;
	r = parse_u64_str(val, v);
	return r == -ERANGE ? -EINVAL : r;
}

int thp_vmstat_has(const char *path, const char *key)
{
	char val[32];
	int r = vmstat_find(path, key, val, sizeof(val));

	/* A line with an unparsable value still exists. */
	return r == -EINVAL ? 1 : r;
}

/* /proc/swaps escapes " \t\n\\" in names as \ooo (seq_file_path). */
static void unescape_octal(char *dst, size_t dstsz, const char *s)
{
	size_t o = 0;

	while (*s && o + 1 < dstsz) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			dst[o++] = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 4;
		} else {
			dst[o++] = *s++;
		}
	}
	dst[o] = '\0';
}

static int parse_swap_line(char *line, struct thp_swap_dev *d)
{
	char *save = NULL, *tok[6];
	int n = 0;
	uint64_t size, used;
	long prio;
	char *end;

	for (char *t = strtok_r(line, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
		if (n == 6)
			return -EINVAL;
		tok[n++] = t;
	}
	if (n != 5)
		return -EINVAL;
	if (strcmp(tok[1], "file") && strcmp(tok[1], "partition"))
		return -EINVAL;
	if (parse_u64_str(tok[2], &size) || parse_u64_str(tok[3], &used))
		return -EINVAL;
	errno = 0;
	prio = strtol(tok[4], &end, 10);
	if (errno || *end || end == tok[4] || prio < INT_MIN || prio > INT_MAX)
		return -EINVAL;
	if (d) {
		unescape_octal(d->filename, sizeof(d->filename), tok[0]);
		snprintf(d->type, sizeof(d->type), "%s", tok[1]);
		d->size_kib = size;
		d->used_kib = used;
		d->priority = (int)prio;
	}
	return 0;
}

int thp_parse_swaps(const char *path, struct thp_swap_dev *dev, int max)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int n = 0, r = 0;
	struct thp_swap_dev tmp[THP_PROBE_MAX_SWAPS];

	if (!f)
		return -errno;
	if (max > THP_PROBE_MAX_SWAPS)
		max = THP_PROBE_MAX_SWAPS;
	/* The header is always there; a file without it is not /proc/swaps. */
	if (getline(&line, &cap, f) <= 0 || strncmp(line, "Filename", 8)) {
		r = ferror(f) ? -EIO : -EINVAL;
		goto out;
	}
	while (getline(&line, &cap, f) > 0) {
		if (line[strspn(line, " \t\n")] == '\0')
			continue;
		r = parse_swap_line(line, n < max ? &tmp[n] : NULL);
		if (r < 0)
			goto out;
		n++;
	}
	if (ferror(f)) {
		r = -EIO;
		goto out;
	}
	if (dev && max > 0)
		memcpy(dev, tmp, sizeof(tmp[0]) * (size_t)(n < max ? n : max));
	r = n;
out:
	free(line);
	fclose(f);
	return r;
}

static int join(char *buf, size_t sz, const char *a, const char *b)
{
	int n = snprintf(buf, sz, "%s%s", a, b);

	return n < 0 || (size_t)n >= sz ? -ENAMETOOLONG : 0;
}

int thp_parse_zswap(const char *dir, struct thp_zswap *z)
{
	char p[PATH_MAX];
	struct thp_zswap t = {
		.enabled = -1, .max_pool_percent = -1,
		.accept_threshold_percent = -1, .shrinker_enabled = -1,
	};
	uint64_t v;
	int r;

	if (join(p, sizeof(p), dir, "/enabled"))
		return -ENAMETOOLONG;
	r = thp_parse_bool(p, &t.enabled);
	if (r < 0)
		return r;
	/* The rest vary between kernels (zpool is gone in 6.15+): optional. */
	if (!join(p, sizeof(p), dir, "/compressor") &&
	    thp_parse_line(p, t.compressor, sizeof(t.compressor)) < 0)
		t.compressor[0] = '\0';
	if (!join(p, sizeof(p), dir, "/zpool") &&
	    thp_parse_line(p, t.zpool, sizeof(t.zpool)) < 0)
		t.zpool[0] = '\0';
	if (!join(p, sizeof(p), dir, "/max_pool_percent") && !thp_parse_u64(p, &v) && v <= 100)
		t.max_pool_percent = (int64_t)v;
	if (!join(p, sizeof(p), dir, "/accept_threshold_percent") && !thp_parse_u64(p, &v) && v <= 100)
		t.accept_threshold_percent = (int64_t)v;
	if (!join(p, sizeof(p), dir, "/shrinker_enabled"))
		thp_parse_bool(p, &t.shrinker_enabled);
	*z = t;
	return 0;
}

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" after the word. */
static int parse_psi_line(const char *s, struct thp_psi_line *l)
{
	struct thp_psi_line t = { .present = true };
	unsigned long long total;
	int end = -1;

	if (sscanf(s, " avg10=%lf avg60=%lf avg300=%lf total=%llu %n",
		   &t.avg10, &t.avg60, &t.avg300, &total, &end) != 4 || end < 0 || s[end])
		return -EINVAL;
	if (t.avg10 < 0 || t.avg60 < 0 || t.avg300 < 0)
		return -EINVAL;
	t.total = total;
	*l = t;
	return 0;
}

int thp_parse_psi(const char *path, struct thp_psi *p)
{
	char buf[1024];
	struct thp_psi t = { 0 };
	ssize_t n = read_small(path, buf, sizeof(buf));
	char *save = NULL;

	if (n < 0)
		return n == -EFBIG ? -EINVAL : (int)n;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		struct thp_psi_line *dst;

		if (!strncmp(l, "some ", 5))
			dst = &t.some;
		else if (!strncmp(l, "full ", 5))
			dst = &t.full;
		else
			return -EINVAL;
		if (dst->present || parse_psi_line(l + 5, dst) < 0)
			return -EINVAL;
	}
	if (!t.some.present)
		return -EINVAL;
	*p = t;
	return 0;
}

/* ------------------------------------------------------------ live probes */

static const struct {
	const char *key, *label;
	uint64_t bit, extra; /* extra: features the bit needs beside it */
	const char *loses;
} feats[THP_UFFD_NR_FEAT] = {
	[THP_UFFD_MOVE] = { "move", "UFFDIO_MOVE", UFFD_FEATURE_MOVE, 0,
		"required: whole-THP restore (the only way to install a PMD from userspace)" },
	[THP_UFFD_EVENT_FORK] = { "event_fork", "EVENT_FORK", UFFD_FEATURE_EVENT_FORK, 0,
		"evicted regions read as zeros in forked children" },
	[THP_UFFD_EVENT_REMOVE] = { "event_remove", "EVENT_REMOVE", UFFD_FEATURE_EVENT_REMOVE, 0,
		"MADV_DONTNEED/FREE of an evicted region would bring old bytes back" },
	[THP_UFFD_EVENT_UNMAP] = { "event_unmap", "EVENT_UNMAP", UFFD_FEATURE_EVENT_UNMAP, 0,
		"records of unmapped regions stay until the client exits" },
	[THP_UFFD_EVENT_REMAP] = { "event_remap", "EVENT_REMAP", UFFD_FEATURE_EVENT_REMAP, 0,
		"evicted regions moved by mremap read as zeros" },
	[THP_UFFD_WP] = { "wp", "WP (write-protect)", UFFD_FEATURE_PAGEFAULT_FLAG_WP, 0,
		"clean/dirty tracking (re-evicting without recompressing)" },
	[THP_UFFD_WP_ASYNC] = { "wp_async", "WP_ASYNC", UFFD_FEATURE_WP_ASYNC,
		UFFD_FEATURE_PAGEFAULT_FLAG_WP,
		"nothing (unused: its first write splits the PMD)" },
	[THP_UFFD_POISON] = { "poison", "POISON", UFFD_FEATURE_POISON, 0,
		"a corrupt record gives SIGBUS instead of wrong bytes" },
};

const char *thp_uffd_feat_name(enum thp_uffd_feat f)
{
	return (unsigned)f < THP_UFFD_NR_FEAT ? feats[f].key : NULL;
}

static int sys_userfaultfd(int flags)
{
	int fd = (int)syscall(__NR_userfaultfd, flags);

	return fd < 0 ? -errno : fd;
}

/* A throw-away uffd: UFFDIO_API can be called only once per fd. */
static int uffd_new(int devfd)
{
	int fd = sys_userfaultfd(O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0)
		return fd;
	if (devfd >= 0) {
		fd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0)
			return fd;
	}
	/* Enough to read the feature mask even where full uffds are denied. */
	return sys_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
}

static int uffd_api(int fd, uint64_t features, struct uffdio_api *out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return -errno;
	if (out)
		*out = api;
	return 0;
}

/* New uffd with @features negotiated; the fd or -errno. */
static int uffd_open_api(int devfd, uint64_t features, struct uffdio_api *out)
{
	int fd = uffd_new(devfd), r;

	if (fd < 0)
		return fd;
	r = uffd_api(fd, features, out);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* @len bytes at a @align-aligned address inside an anonymous mapping of
 * @len + @align; @base and @maplen are for munmap. */
static void *map_aligned(size_t len, size_t align, void **base, size_t *maplen)
{
	size_t total = len + align;
	char *p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	*base = p;
	*maplen = total;
	return (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
}

/* Runs of pages that have all of @mask set in [@addr, @addr+@len), or -errno. */
static int pm_scan(int pmfd, void *addr, size_t len, uint64_t mask,
		   struct page_region *vec, size_t nvec)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.start = (uintptr_t)addr,
		.end = (uintptr_t)addr + len,
		.vec = (uintptr_t)vec,
		.vec_len = nvec,
		.category_mask = mask,
		.return_mask = mask,
	};
	int r = ioctl(pmfd, PAGEMAP_SCAN, &a);

	return r < 0 ? -errno : r;
}

/* 1 if the whole of [addr, addr+len) is PMD-mapped, 0 if not, -errno. */
static int pm_is_huge(int pmfd, void *addr, size_t len)
{
	struct page_region v[2];
	int r;

	if (pmfd < 0)
		return -EBADF;
	r = pm_scan(pmfd, addr, len, PAGE_IS_HUGE | PAGE_IS_PRESENT, v, 2);
	if (r < 0)
		return r;
	return r == 1 && v[0].start == (uintptr_t)addr && v[0].end == (uintptr_t)addr + len;
}

static int uffd_register(int fd, void *addr, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

static int uffd_move(int fd, void *dst, void *src, size_t len)
{
	struct uffdio_move mv = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
	};

	if (ioctl(fd, UFFDIO_MOVE, &mv) < 0)
		return -errno;
	return mv.move == (int64_t)len ? 0 : -EPROTO;
}

/* Move one 4 KiB page into a registered range and check it arrived. */
static int try_move_4k(int devfd)
{
	size_t pg = THP_PAGE_SIZE;
	char *src = MAP_FAILED, *dst = MAP_FAILED;
	int fd, r;

	fd = uffd_open_api(devfd, UFFD_FEATURE_MOVE, NULL);
	if (fd < 0)
		return fd;
	src = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		r = -ENOMEM;
		goto out;
	}
	memset(src, 0x5a, pg);
	r = uffd_register(fd, dst, pg);
	if (r == 0)
		r = uffd_move(fd, dst, src, pg);
	if (r == 0 && (dst[0] != 0x5a || dst[pg - 1] != 0x5a))
		r = -EPROTO;
out:
	if (src != MAP_FAILED)
		munmap(src, pg);
	if (dst != MAP_FAILED)
		munmap(dst, pg);
	close(fd);
	return r;
}

/* Move a whole THP; 1 if the destination is PMD-mapped, 0 if it was split,
 * -EAGAIN if no THP could be made to test with, else -errno. */
static int try_move_pmd(int devfd, int pmfd)
{
	const size_t H = THP_PMD_SIZE;
	void *sbase = NULL, *dbase = NULL;
	size_t slen = 0, dlen = 0;
	char *src, *dst;
	int fd = -1, r;

	src = map_aligned(H, H, &sbase, &slen);
	dst = map_aligned(H, H, &dbase, &dlen);
	if (!src || !dst) {
		r = -ENOMEM;
		goto out;
	}
	madvise(src, H, MADV_HUGEPAGE);
	madvise(dst, H, MADV_HUGEPAGE);
	src[0] = 1;
	src[H / 2] = 2;
	src[H - 1] = 3;
	r = pm_is_huge(pmfd, src, H);
	if (r <= 0) {
		r = r == 0 ? -EAGAIN : r;
		goto out;
	}
	fd = uffd_open_api(devfd, UFFD_FEATURE_MOVE, NULL);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = uffd_register(fd, dst, H);
	if (r == 0)
		r = uffd_move(fd, dst, src, H);
	if (r == 0 && (dst[0] != 1 || dst[H / 2] != 2 || dst[H - 1] != 3))
		r = -EPROTO;
	if (r == 0)
		r = pm_is_huge(pmfd, dst, H);
out:
	if (fd >= 0)
		close(fd);
	if (sbase)
		munmap(sbase, slen);
	if (dbase)
		munmap(dbase, dlen);
	return r;
}

static void probe_uffd(struct thp_caps *c, const char *root, int pmfd)
{
	char p[PATH_MAX];
	struct stat st;
	struct uffdio_api api;
	int devfd = -1, fd;
	uint64_t v;

	fd = sys_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	c->uffd.syscall_err = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	fd = sys_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	c->uffd.user_mode_only_err = fd < 0 ? fd : 0;
	if (fd >= 0)
		close(fd);
	if (!join(p, sizeof(p), root, "/proc/sys/vm/unprivileged_userfaultfd") &&
	    !thp_parse_u64(p, &v) && v <= INT64_MAX)
		c->uffd.unprivileged = (int64_t)v;

	c->uffd.dev_present = stat(UFFD_DEV, &st) == 0 && S_ISCHR(st.st_mode);
	devfd = open(UFFD_DEV, O_RDWR | O_CLOEXEC);
	if (devfd < 0) {
		c->uffd.dev_err = -errno;
	} else {
		c->uffd.dev_openable = true;
		fd = ioctl(devfd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		c->uffd.dev_err = fd < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	c->uffd.usable = c->uffd.syscall_err == 0 || c->uffd.dev_err == 0;

	fd = uffd_open_api(devfd, 0, &api);
	if (fd < 0) {
		c->uffd.api_err = fd;
		for (int i = 0; i < THP_UFFD_NR_FEAT; i++)
			c->uffd.feat[i].err = fd;
		c->uffd.move_pmd_err = fd;
		goto out;
	}
	close(fd);
	c->uffd.api_features = api.features;
	c->uffd.api_ioctls = api.ioctls;
	for (int i = 0; i < THP_UFFD_NR_FEAT; i++) {
		struct thp_feat *f = &c->uffd.feat[i];

		f->offered = (api.features & feats[i].bit) != 0;
		fd = uffd_open_api(devfd, feats[i].bit | feats[i].extra, NULL);
		f->err = fd < 0 ? fd : 0;
		if (fd >= 0)
			close(fd);
		/* The MOVE bit is advisory; only a real move proves it. */
		if (i == THP_UFFD_MOVE && f->err == 0)
			f->err = try_move_4k(devfd);
		f->usable = f->err == 0;
	}
	c->uffd.event_fork_for_caller = c->uffd.feat[THP_UFFD_EVENT_FORK].usable;
	if (c->uffd.feat[THP_UFFD_MOVE].usable) {
		int r = try_move_pmd(devfd, pmfd);

		c->uffd.move_pmd = r < 0 ? (r == -EAGAIN || r == -EBADF ? -1 : 0) : r;
		c->uffd.move_pmd_err = r < 0 ? r : 0;
	} else {
		c->uffd.move_pmd_err = c->uffd.feat[THP_UFFD_MOVE].err;
	}
out:
	if (devfd >= 0)
		close(devfd);
}

static void probe_pagemap_scan(struct thp_caps *c, int pmfd, int pmerr)
{
	const size_t pg = THP_PAGE_SIZE;
	struct page_region v[4];
	char *p;
	int r;

	if (pmfd < 0) {
		c->pagemap_scan.err = pmerr;
		return;
	}
	p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		c->pagemap_scan.err = -errno;
		return;
	}
	p[0] = 1;
	p[2 * pg] = 1;
	r = pm_scan(pmfd, p, 4 * pg, PAGE_IS_PRESENT, v, 4);
	if (r >= 0 && !(r == 2 && v[0].start == (uintptr_t)p && v[0].end == (uintptr_t)p + pg &&
			 v[1].start == (uintptr_t)p + 2 * pg && v[1].end == (uintptr_t)p + 3 * pg))
		r = -EPROTO;
	c->pagemap_scan.err = r < 0 ? r : 0;
	c->pagemap_scan.available = r >= 0;
	munmap(p, 4 * pg);
}

static void probe_collapse(struct thp_caps *c, int pmfd)
{
	void *base;
	size_t len;
	char *p = map_aligned(THP_PMD_SIZE, THP_PMD_SIZE, &base, &len);
	int r;

	c->madv_collapse.collapsed = -1;
	if (!p) {
		c->madv_collapse.err = -ENOMEM;
		return;
	}
	p[0] = 1; /* one present page: collapse then fills the other 511 */
	r = madvise(p, THP_PMD_SIZE, MADV_COLLAPSE) < 0 ? -errno : 0;
	c->madv_collapse.err = r;
	/* EINVAL = unknown advice (or THP off for this VMA); the rest are
	 * transient failures of a kernel that knows MADV_COLLAPSE. */
	c->madv_collapse.available = r != -EINVAL;
	if (r == 0) {
		int h = pm_is_huge(pmfd, p, THP_PMD_SIZE);

		c->madv_collapse.collapsed = h < 0 ? -1 : h;
	}
	munmap(base, len);
}

static void probe_thp(struct thp_caps *c, const char *root)
{
	char p[PATH_MAX], rel[128];
	uint64_t v;

	if (join(p, sizeof(p), root, THP_DIR "/enabled") == 0)
		c->thp.enabled_err = thp_parse_mode(p, c->thp.enabled, sizeof(c->thp.enabled));
	else
		c->thp.enabled_err = -ENAMETOOLONG;
	if (c->thp.enabled_err < 0)
		c->thp.enabled[0] = '\0';
	if (!join(p, sizeof(p), root, THP_DIR "/defrag") &&
	    thp_parse_mode(p, c->thp.defrag, sizeof(c->thp.defrag)) < 0)
		c->thp.defrag[0] = '\0';
	if (!join(p, sizeof(p), root, THP_DIR "/shmem_enabled") &&
	    thp_parse_mode(p, c->thp.shmem_enabled, sizeof(c->thp.shmem_enabled)) < 0)
		c->thp.shmem_enabled[0] = '\0';
	if (!join(p, sizeof(p), root, THP_DIR "/use_zero_page") && !thp_parse_u64(p, &v) && v <= 1)
		c->thp.use_zero_page = (int64_t)v;
	if (join(p, sizeof(p), root, THP_DIR "/hpage_pmd_size") == 0)
		c->thp.pmd_size_err = thp_parse_u64(p, &c->thp.pmd_size);
	else
		c->thp.pmd_size_err = -ENAMETOOLONG;
	if (c->thp.pmd_size_err < 0)
		c->thp.pmd_size = 0;

	static const struct { const char *name; size_t off; } kh[] = {
		{ "max_ptes_none", offsetof(struct thp_caps, thp.max_ptes_none) },
		{ "max_ptes_swap", offsetof(struct thp_caps, thp.max_ptes_swap) },
		{ "max_ptes_shared", offsetof(struct thp_caps, thp.max_ptes_shared) },
	};
	for (size_t i = 0; i < sizeof(kh) / sizeof(kh[0]); i++) {
		int64_t *dst = (int64_t *)(void *)((char *)c + kh[i].off);

		snprintf(rel, sizeof(rel), THP_DIR "/khugepaged/%s", kh[i].name);
		if (!join(p, sizeof(p), root, rel) && !thp_parse_u64(p, &v) && v <= INT64_MAX)
			*dst = (int64_t)v;
	}

	/* Per-size control (6.8+): "inherit" defers to the top-level file. */
	if (c->thp.pmd_size) {
		snprintf(rel, sizeof(rel), THP_DIR "/hugepages-%" PRIu64 "kB/enabled",
			 c->thp.pmd_size >> 10);
		if (!join(p, sizeof(p), root, rel) &&
		    thp_parse_mode(p, c->thp.pmd_enabled, sizeof(c->thp.pmd_enabled)) < 0)
			c->thp.pmd_enabled[0] = '\0';
	}
	if (c->thp.pmd_enabled[0] && strcmp(c->thp.pmd_enabled, "inherit"))
		snprintf(c->thp.effective, sizeof(c->thp.effective), "%s", c->thp.pmd_enabled);
	else
		snprintf(c->thp.effective, sizeof(c->thp.effective), "%s", c->thp.enabled);
}

static void probe_files(struct thp_caps *c, const char *root)
{
	char p[PATH_MAX];
	uint64_t v;
	int r;

	r = join(p, sizeof(p), root, "/proc/swaps");
	if (r == 0)
		r = thp_parse_swaps(p, c->swap.dev, THP_PROBE_MAX_SWAPS);
	c->swap.err = r < 0 ? r : 0;
	c->swap.count = r < 0 ? 0 : r;

	r = join(p, sizeof(p), root, "/proc/vmstat");
	if (r == 0)
		r = thp_vmstat_has(p, "thp_swpout_pmd");
	c->pmd_swap.err = r < 0 ? r : 0;
	c->pmd_swap.present = r == 1;

	r = join(p, sizeof(p), root, ZSWAP_DIR);
	if (r == 0)
		r = thp_parse_zswap(p, &c->zswap.p);
	c->zswap.err = r;
	if (r == 0) {
		bool used = false;

		/* Anything zswap ever stored proves it was enabled. */
		if (!join(p, sizeof(p), root, "/proc/vmstat"))
			used = (!thp_parse_vmstat(p, "zswpout", &v) && v > 0) ||
			       (!thp_parse_vmstat(p, "zswpin", &v) && v > 0);
		c->zswap.latched = c->zswap.p.enabled == 1 || used;
	}

	if (!join(p, sizeof(p), root, "/proc/sys/kernel/io_uring_disabled") &&
	    !thp_parse_u64(p, &v) && v <= INT64_MAX)
		c->io_uring.disabled = (int64_t)v;

	r = join(p, sizeof(p), root, "/proc/pressure/memory");
	if (r == 0)
		r = thp_parse_psi(p, &c->psi.mem);
	c->psi.err = r;
}

static void probe_io_uring(struct thp_caps *c)
{
	struct io_uring_params prm;
	int fd;

	memset(&prm, 0, sizeof(prm));
	fd = (int)syscall(__NR_io_uring_setup, 2, &prm);
	if (fd < 0) {
		c->io_uring.setup_err = -errno;
		return;
	}
	c->io_uring.features = prm.features;
	close(fd);
}

static bool has_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return (d[cap / 32].effective >> (cap % 32)) & 1;
}

int thp_probe(struct thp_caps *c, const char *sysroot)
{
	char root[PATH_MAX];
	struct utsname u;
	int pmfd, pmerr = 0;
	size_t n;

	if (!c)
		return -EINVAL;
	if (!sysroot)
		sysroot = "";
	n = strlen(sysroot);
	while (n > 0 && sysroot[n - 1] == '/')
		n--;                    /* "/" and "dir/" both work */
	if (n >= sizeof(root) - 64)
		return -ENAMETOOLONG;
	memcpy(root, sysroot, n);
	root[n] = '\0';

	memset(c, 0, sizeof(*c));
	c->uffd.unprivileged = -1;
	c->uffd.move_pmd = -1;
	c->madv_collapse.collapsed = -1;
	c->thp.use_zero_page = -1;
	c->thp.max_ptes_none = c->thp.max_ptes_swap = c->thp.max_ptes_shared = -1;
	c->zswap.p.enabled = c->zswap.p.shrinker_enabled = -1;
	c->zswap.p.max_pool_percent = c->zswap.p.accept_threshold_percent = -1;
	c->io_uring.disabled = -1;

	if (uname(&u) == 0) {
		snprintf(c->kernel.release, sizeof(c->kernel.release), "%s", u.release);
		snprintf(c->kernel.machine, sizeof(c->kernel.machine), "%s", u.machine);
	}
	pmfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pmfd < 0)
		pmerr = -errno;
	probe_uffd(c, root, pmfd);
	probe_pagemap_scan(c, pmfd, pmerr);
	probe_collapse(c, pmfd);
	if (pmfd >= 0)
		close(pmfd);
	probe_thp(c, root);
	probe_files(c, root);
	probe_io_uring(c);
	c->psi.cap_sys_resource = has_cap(CAP_SYS_RESOURCE);
	return 0;
}

/* --------------------------------------------------------------- verdict */

static const char *errstr(int err)
{
	return err ? strerror(-err) : "ok";
}

static const char *errname(int err, char buf[24])
{
	const char *s = err ? strerrorname_np(-err) : NULL;

	if (s || !err)
		return s;
	snprintf(buf, 24, "errno %d", -err);
	return buf;
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
			"userfaultfd is not usable (userfaultfd(2): %s; " UFFD_DEV ": %s): "
			"run thpswapd as root, or give its user access to " UFFD_DEV
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
			"transparent huge pages are not available (" THP_DIR "/enabled: %s): "
			"use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE\n",
			errstr(c->thp.enabled_err));
	else if (!strcmp(c->thp.effective, "never")) {
		if (c->thp.pmd_enabled[0] && strcmp(c->thp.pmd_enabled, "inherit"))
			missing += appendf(msg, msgsz, &off,
				"transparent huge pages of %" PRIu64 " kB are disabled (" THP_DIR
				"/hugepages-%" PRIu64 "kB/enabled = never): echo inherit > " THP_DIR
				"/hugepages-%" PRIu64 "kB/enabled\n",
				c->thp.pmd_size >> 10, c->thp.pmd_size >> 10, c->thp.pmd_size >> 10);
		else
			missing += appendf(msg, msgsz, &off,
				"transparent huge pages are disabled (" THP_DIR "/enabled = never): "
				"echo madvise > " THP_DIR "/enabled\n");
	}
	if (c->thp.pmd_size_err)
		missing += appendf(msg, msgsz, &off,
			"the huge page (PMD) size is unknown (" THP_DIR "/hpage_pmd_size: %s): "
			"use a kernel built with CONFIG_TRANSPARENT_HUGEPAGE\n",
			errstr(c->thp.pmd_size_err));
	else if (c->thp.pmd_size != THP_PMD_SIZE)
		missing += appendf(msg, msgsz, &off,
			"the huge page (PMD) size is %" PRIu64 " KiB, not 2048 KiB (" THP_DIR
			"/hpage_pmd_size): thpswap needs 4 KiB base pages with 2 MiB PMDs "
			"(x86-64, or arm64 with 4K pages)\n", c->thp.pmd_size >> 10);
	return missing ? -ENOTSUP : 0;
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
		add_row(rows, n, "userfaultfd(2)", "yes", "uffds without " UFFD_DEV, "works");
	else
		add_row(rows, n, "userfaultfd(2)", "no", "uffds without " UFFD_DEV,
			"%s (user-mode-only: %s; vm.unprivileged_userfaultfd=%s)",
			errname(c->uffd.syscall_err, e),
			c->uffd.user_mode_only_err ? "no" : "works", num_or_unknown(c->uffd.unprivileged, v));
	if (c->uffd.dev_err == 0)
		add_row(rows, n, UFFD_DEV, "yes", "unprivileged clients (the thpswap group opens it)",
			"present, openable by this user");
	else
		add_row(rows, n, UFFD_DEV, "no", "unprivileged clients (the thpswap group opens it)",
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

void thp_probe_print(const struct thp_caps *c, FILE *f)
{
	struct row rows[MAX_ROWS];
	int n = 0;
	size_t w[3] = { strlen("feature"), strlen("here"), strlen("usable by thpswap?") };
	char e[24], v[24], msg[2048];

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

	if (thp_probe_required(c, msg, sizeof(msg)) == 0) {
		fputs("\nthpswapd can run on this kernel.\n", f);
	} else {
		fputs("\nthpswapd cannot run on this kernel:\n", f);
		for (char *save = NULL, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			fprintf(f, "  %s\n", l);
	}
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
	thp_json_string(j, "path", UFFD_DEV);
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
		thp_json_begin_object(j, feats[i].key);
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

void thp_probe_json(const struct thp_caps *c, struct thp_json *j)
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
