/* SPDX-License-Identifier: MIT */
/*
 * The /proc and /sys side of the kernel probe: parsers of the files, and
 * thp_probe_files(), which reads them below a sysroot into struct thp_caps.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

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

/* ------------------------------------------------ files into thp_caps */

static void probe_thp(struct thp_caps *c, const char *root)
{
	char p[PATH_MAX], rel[128];
	uint64_t v;

	if (join(p, sizeof(p), root, THP_SYSFS_DIR "/enabled") == 0)
		c->thp.enabled_err = thp_parse_mode(p, c->thp.enabled, sizeof(c->thp.enabled));
	else
		c->thp.enabled_err = -ENAMETOOLONG;
	if (c->thp.enabled_err < 0)
		c->thp.enabled[0] = '\0';
	if (!join(p, sizeof(p), root, THP_SYSFS_DIR "/defrag") &&
	    thp_parse_mode(p, c->thp.defrag, sizeof(c->thp.defrag)) < 0)
		c->thp.defrag[0] = '\0';
	if (!join(p, sizeof(p), root, THP_SYSFS_DIR "/shmem_enabled") &&
	    thp_parse_mode(p, c->thp.shmem_enabled, sizeof(c->thp.shmem_enabled)) < 0)
		c->thp.shmem_enabled[0] = '\0';
	if (!join(p, sizeof(p), root, THP_SYSFS_DIR "/use_zero_page") && !thp_parse_u64(p, &v) && v <= 1)
		c->thp.use_zero_page = (int64_t)v;
	if (join(p, sizeof(p), root, THP_SYSFS_DIR "/hpage_pmd_size") == 0)
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

		snprintf(rel, sizeof(rel), THP_SYSFS_DIR "/khugepaged/%s", kh[i].name);
		if (!join(p, sizeof(p), root, rel) && !thp_parse_u64(p, &v) && v <= INT64_MAX)
			*dst = (int64_t)v;
	}

	/* Per-size control (6.8+): "inherit" defers to the top-level file. */
	if (c->thp.pmd_size) {
		snprintf(rel, sizeof(rel), THP_SYSFS_DIR "/hugepages-%" PRIu64 "kB/enabled",
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

void thp_probe_files(struct thp_caps *c, const char *root)
{
	char p[PATH_MAX];
	uint64_t v;
	int r;

	probe_thp(c, root);

	if (!join(p, sizeof(p), root, "/proc/sys/vm/unprivileged_userfaultfd") &&
	    !thp_parse_u64(p, &v) && v <= INT64_MAX)
		c->uffd.unprivileged = (int64_t)v;

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

	r = join(p, sizeof(p), root, THP_ZSWAP_DIR);
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
