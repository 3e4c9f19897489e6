/* SPDX-License-Identifier: MIT */
/*
 * What memory pressure the kernel reports: the system's PSI, and a client's
 * cgroup (v2: memory.pressure, memory.current, memory.high, memory.max; v1:
 * memory.usage_in_bytes, memory.limit_in_bytes).  Parsers only, no policy:
 * every path is below a sysroot so that fixture trees can stand in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe-files.h"
#include "thpswapd.h"

/* v1 says "no limit" with the largest page-aligned long; anything this big
 * cannot be a limit a machine reaches. */
#define NO_LIMIT_ABOVE (1ULL << 62)

int thpd_limit_parse(const char *text, uint64_t *v)
{
	unsigned long long x;
	char *end;

	while (*text == ' ' || *text == '\t')
		text++;
	if (!strncmp(text, "max", 3)) {
		end = (char *)text + 3;
		x = UINT64_MAX;
	} else {
		if (*text < '0' || *text > '9')
			return -EINVAL;
		errno = 0;
		x = strtoull(text, &end, 10);
		if (errno == ERANGE)
			return -EINVAL;
	}
	while (*end == ' ' || *end == '\t' || *end == '\n')
		end++;
	if (*end)
		return -EINVAL;
	*v = x >= NO_LIMIT_ABOVE ? UINT64_MAX : x;
	return 0;
}

/* Copy a cgroup path ("/a/b") to @dst; "/" becomes "". */
static int copy_path(char *dst, size_t sz, const char *p, size_t len)
{
	if (len == 0 || p[0] != '/' || memchr(p, '\0', len))
		return -EINVAL;
	if (len == 1)
		len = 0;
	if (len >= sz)
		return -ENAMETOOLONG;
	memcpy(dst, p, len);
	dst[len] = '\0';
	/* A path that climbs out of its mount would read another tree. */
	return strstr(dst, "/../") || (len >= 3 && !strcmp(dst + len - 3, "/..")) ? -EINVAL : 0;
}

/* Does the comma-separated list [s, e) name "memory"? */
static bool lists_memory(const char *s, const char *e)
{
	while (s < e) {
		const char *c = memchr(s, ',', (size_t)(e - s));
		size_t n = (size_t)((c ? c : e) - s);

		if (n == 6 && !memcmp(s, "memory", 6))
			return true;
		s = c ? c + 1 : e;
	}
	return false;
}

int thpd_cgroup_parse(const char *text, char *v2, size_t v2sz, char *v1, size_t v1sz)
{
	bool have2 = false, have1 = false;
	const char *l = text;

	v2[0] = v1[0] = '\0';
	while (*l) {
		const char *nl = strchr(l, '\n'), *end = nl ? nl : l + strlen(l);
		const char *c1 = memchr(l, ':', (size_t)(end - l)), *c2;
		int r = 0;

		if (end == l) {
			l = nl ? nl + 1 : end;
			continue;
		}
		c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		if (!c2)
			return -EINVAL;
		/* "0::/path" is the v2 hierarchy; "N:ctrl,ctrl:/path" a v1 one. */
		if (c1 - l == 1 && l[0] == '0' && c2 == c1 + 1) {
			if (!have2)
				r = copy_path(v2, v2sz, c2 + 1, (size_t)(end - c2 - 1));
			have2 = true;
		} else if (lists_memory(c1 + 1, c2)) {
			if (!have1)
				r = copy_path(v1, v1sz, c2 + 1, (size_t)(end - c2 - 1));
			have1 = true;
		}
		if (r < 0)
			return r;
		l = nl ? nl + 1 : end;
	}
	return have2 || have1 ? 0 : -ENOENT;
}

static bool exists(const char *dir, const char *file)
{
	char p[PATH_MAX + 64];

	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return false;
	return access(p, F_OK) == 0;
}

static int join_dir(char *dst, size_t sz, const char *root, const char *mnt, const char *rel)
{
	return snprintf(dst, sz, "%s%s%s", root, mnt, rel) >= (int)sz ? -ENAMETOOLONG : 0;
}

int thpd_cgroup_find(const char *sysroot, pid_t pid, struct thpd_cgroup *cg)
{
	char p[PATH_MAX], text[4096], v2[PATH_MAX], v1[PATH_MAX], mnt[PATH_MAX];
	const char *v2mnt = NULL;
	ssize_t n;
	int fd, r;

	memset(cg, 0, sizeof(*cg));
	snprintf(p, sizeof(p), "%s/proc/%d/cgroup", sysroot, (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text) - 1);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	text[n] = '\0';
	r = thpd_cgroup_parse(text, v2, sizeof(v2), v1, sizeof(v1));
	if (r < 0)
		return r;

	/* Pure v2 mounts the hierarchy at /sys/fs/cgroup; hybrid at .../unified. */
	snprintf(mnt, sizeof(mnt), "%s/sys/fs/cgroup", sysroot);
	if (exists(mnt, "cgroup.controllers"))
		v2mnt = "/sys/fs/cgroup";
	else if (snprintf(mnt, sizeof(mnt), "%s/sys/fs/cgroup/unified", sysroot) < (int)sizeof(mnt) &&
		 exists(mnt, "cgroup.controllers"))
		v2mnt = "/sys/fs/cgroup/unified";
	if (v2mnt && join_dir(cg->v2, sizeof(cg->v2), sysroot, v2mnt, v2) == 0 &&
	    !exists(cg->v2, "memory.pressure") && !exists(cg->v2, "memory.current"))
		cg->v2[0] = '\0';
	if (join_dir(cg->v1, sizeof(cg->v1), sysroot, "/sys/fs/cgroup/memory", v1) == 0 &&
	    !exists(cg->v1, "memory.limit_in_bytes"))
		cg->v1[0] = '\0';
	return cg->v2[0] || cg->v1[0] ? 0 : -ENOENT;
}

static int read_limit(const char *dir, const char *file, uint64_t *v)
{
	char p[PATH_MAX + 64], line[128];
	int r;

	if (snprintf(p, sizeof(p), "%s/%s", dir, file) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	r = thp_parse_line(p, line, sizeof(line));
	return r < 0 ? r : thpd_limit_parse(line, v);
}

int thpd_memcg_read(const struct thpd_cgroup *cg, struct thpd_memcg *m)
{
	uint64_t hi = UINT64_MAX, max = UINT64_MAX;
	char p[PATH_MAX + 64];
	struct thp_psi psi;
	bool any = false;

	*m = (struct thpd_memcg){ .usage = UINT64_MAX, .limit = UINT64_MAX };
	if (cg->v2[0]) {
		snprintf(p, sizeof(p), "%s/memory.pressure", cg->v2);
		if (thp_parse_psi(p, &psi) == 0) {
			m->has_psi = true;
			m->stall_us = psi.some.total;
			any = true;
		}
		if (read_limit(cg->v2, "memory.current", &m->usage) == 0)
			any = true;
		if (read_limit(cg->v2, "memory.high", &hi) == 0)
			any = true;
		if (read_limit(cg->v2, "memory.max", &max) == 0)
			any = true;
		m->limit = hi < max ? hi : max;
	}
	/* v1 memory controller (hybrid): usage and limit from there. */
	if (cg->v1[0] && m->usage == UINT64_MAX && m->limit == UINT64_MAX) {
		if (read_limit(cg->v1, "memory.usage_in_bytes", &m->usage) == 0)
			any = true;
		if (read_limit(cg->v1, "memory.limit_in_bytes", &m->limit) == 0)
			any = true;
	}
	return any ? 0 : -ENOENT;
}

int thpd_psi_system(const char *sysroot, uint64_t *stall_us, double *avg10)
{
	char p[PATH_MAX];
	struct thp_psi psi;
	int r;

	if (snprintf(p, sizeof(p), "%s/proc/pressure/memory", sysroot) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	r = thp_parse_psi(p, &psi);
	if (r < 0)
		return r;
	*stall_us = psi.some.total;
	*avg10 = psi.some.avg10;
	return 0;
}
