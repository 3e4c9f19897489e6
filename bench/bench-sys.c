/* SPDX-License-Identifier: MIT */
#include "bench.h"
#include "pagemap.h"
#include "kernel-abi.h"
#include "probe-files.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double b_self_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One "Key: value" field of a /proc file and where it goes. */
struct kv {
	const char *key;
	size_t off;  /* of a uint64_t in the destination */
};

/* Fills the fields of @dst named in @kv from @path; values are scaled by
 * @scale (1024 for "kB" files). */
static int read_kv(const char *path, const struct kv *kv, size_t nkv, void *dst,
		   uint64_t scale)
{
	char line[512], key[128];
	unsigned long long v;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%127[^: ]%*[: ]%llu", key, &v) != 2)
			continue;
		for (size_t i = 0; i < nkv; i++)
			if (!strcmp(key, kv[i].key)) {
				uint64_t x = v * scale;

				memcpy((char *)dst + kv[i].off, &x, sizeof(x));
			}
	}
	fclose(f);
	return 0;
}

#define KV(type, k, field) { k, offsetof(type, field) }
#define NKV(a) (sizeof(a) / sizeof((a)[0]))

int b_rollup(struct b_rollup *r)
{
	static const struct kv kv[] = {
		KV(struct b_rollup, "Rss", rss),
		KV(struct b_rollup, "Anonymous", anon),
		KV(struct b_rollup, "AnonHugePages", anon_huge),
		KV(struct b_rollup, "Swap", swap),
		KV(struct b_rollup, "Pss_Shmem", shmem),
	};

	memset(r, 0, sizeof(*r));
	return read_kv("/proc/self/smaps_rollup", kv, NKV(kv), r, 1024);
}

int b_meminfo(struct b_meminfo *m)
{
	static const struct kv kv[] = {
		KV(struct b_meminfo, "Zswap", zswap),
		KV(struct b_meminfo, "Zswapped", zswapped),
		KV(struct b_meminfo, "SwapCached", swap_cached),
		KV(struct b_meminfo, "SwapTotal", swap_total),
		KV(struct b_meminfo, "SwapFree", swap_free),
		KV(struct b_meminfo, "MemAvailable", available),
		KV(struct b_meminfo, "Writeback", writeback),
	};

	memset(m, 0, sizeof(*m));
	return read_kv("/proc/meminfo", kv, NKV(kv), m, 1024);
}

const char *const b_vm_names[B_VM__MAX] = {
	[B_THP_SPLIT_PMD] = "thp_split_pmd",
	[B_THP_SPLIT_PAGE] = "thp_split_page",
	[B_THP_SWPOUT] = "thp_swpout",
	[B_THP_SWPOUT_FALLBACK] = "thp_swpout_fallback",
	[B_THP_FAULT_ALLOC] = "thp_fault_alloc",
	[B_THP_COLLAPSE_ALLOC] = "thp_collapse_alloc",
	[B_PSWPIN] = "pswpin",
	[B_PSWPOUT] = "pswpout",
	[B_ZSWPIN] = "zswpin",
	[B_ZSWPOUT] = "zswpout",
};

int b_vmstat(uint64_t v[B_VM__MAX])
{
	struct kv kv[B_VM__MAX];

	for (int i = 0; i < B_VM__MAX; i++)
		kv[i] = (struct kv){ b_vm_names[i], (size_t)i * sizeof(uint64_t) };
	memset(v, 0, sizeof(uint64_t) * B_VM__MAX);
	return read_kv("/proc/vmstat", kv, B_VM__MAX, v, 1);
}

int b_wait_writeback(uint64_t base, double timeout_s)
{
	uint64_t end = thp_now_ns() + (uint64_t)(timeout_s * 1e9);
	struct timespec ms = { 0, 1000000 };
	struct b_meminfo m;

	for (;;) {
		if (b_meminfo(&m) < 0 || m.writeback <= base + MIB)
			return 0;
		if (thp_now_ns() > end)
			return -ETIMEDOUT;
		nanosleep(&ms, NULL);
	}
}

long b_resident_pages(int pagemap_fd, uintptr_t start, uintptr_t end)
{
	/* Present and not the shared zero page. */
	return thp_pagemap_count(pagemap_fd, start, end, PAGE_IS_PRESENT | PAGE_IS_PFNZERO,
				 PAGE_IS_PFNZERO);
}

int64_t b_swap_used(const char *path)
{
	struct thp_swap_dev dev[THP_PROBE_MAX_SWAPS];
	int n = thp_parse_swaps("/proc/swaps", dev, THP_PROBE_MAX_SWAPS);

	if (n < 0)
		return n;
	for (int i = 0; i < n && i < THP_PROBE_MAX_SWAPS; i++)
		if (!strcmp(dev[i].filename, path))
			return (int64_t)dev[i].used_kib * 1024;
	return -ENOENT;
}

int64_t b_zram_used(const char *dev)
{
	unsigned long long orig, compr, used;
	const char *name = strrchr(dev, '/');
	char path[96], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s/mm_stat", name ? name + 1 : dev);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu %llu", &orig, &compr, &used) != 3)
		return -EINVAL;
	return (int64_t)used;
}

double b_pid_cpu(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	ssize_t n;
	int fd;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* comm may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const double *v, size_t n, double p)
{
	size_t r = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return v[r - 1];
}

void b_lat_summarise(const double *us, size_t n, struct b_lat *out)
{
	double *v, sum = 0;

	memset(out, 0, sizeof(*out));
	if (!n)
		return;
	v = malloc(n * sizeof(*v));
	if (!v)
		return;
	memcpy(v, us, n * sizeof(*v));
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	out->n = n;
	out->p50 = pct(v, n, 50);
	out->p90 = pct(v, n, 90);
	out->p99 = pct(v, n, 99);
	out->mean = sum / (double)n;
	out->min = v[0];
	out->max = v[n - 1];
	free(v);
}

double b_chase(const void *base, size_t len, uint64_t steps, uint64_t seed,
	       uint64_t *sink)
{
	const unsigned char *p = base;
	uint64_t lines = len / 64, idx, x, t0;

	if (!lines || !steps)
		return 0;
	x = seed * 0x9e3779b97f4a7c15ULL + 1;
	idx = (uint64_t)((__extension__(unsigned __int128)x * lines) >> 64);
	t0 = thp_now_ns();
	for (uint64_t i = 0; i < steps; i++) {
		uint64_t v;

		memcpy(&v, p + idx * 64, 8);
		/* Cheap mix: the load's latency dominates. */
		x = (x ^ v) * 0xbf58476d1ce4e5b9ULL;
		x ^= x >> 31;
		idx = (uint64_t)((__extension__(unsigned __int128)x * lines) >> 64);
	}
	*sink += x;
	return (double)(thp_now_ns() - t0) / (double)steps;
}

int b_daemon_start(struct b_daemon *d, const char *path,
		   const char *const *args, const char *logpath)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *argv[32];
	int n = 0, sfd, logfd, err;
	pid_t parent = getpid();

	const char *tmp = getenv("TMPDIR");

	memset(d, 0, sizeof(*d));
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(d->dir, sizeof(d->dir), "%s/thpswapd.XXXXXX", tmp) >= sizeof(d->dir) ||
	    strlen(d->dir) + sizeof("/control.sock") > sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/control.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s", logpath);
	memcpy(sa.sun_path, d->sock, sizeof(sa.sun_path));

	sfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sfd < 0) {
		err = -errno;
		goto err_dir;
	}
	if (bind(sfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(sfd, 64) < 0) {
		err = -errno;
		goto err_sock;
	}
	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0) {
		err = -errno;
		goto err_sock;
	}

	argv[n++] = path;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	for (int i = 0; args && args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	d->pid = fork();
	if (d->pid < 0) {
		err = -errno;
		close(logfd);
		goto err_sock;
	}
	if (d->pid == 0) {
		char pidbuf[32];

		/* The daemon must not outlive an interrupted bench. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (dup2(sfd, 3) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(1);
		if (sfd == 3)
			fcntl(3, F_SETFD, 0);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
		setenv("LISTEN_PID", pidbuf, 1);
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_FDNAMES", "control", 1);
		unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		execv(path, (char *const *)argv);
		_exit(127);
	}
	close(logfd);
	close(sfd);
	return 0;

err_sock:
	close(sfd);
	unlink(d->sock);
err_dir:
	rmdir(d->dir);
	return err;
}

int b_daemon_stop(struct b_daemon *d, double *cpu)
{
	struct rusage ru;
	int status = 0, pfd, ret;

	if (d->pid <= 0)
		return -ESRCH;
	kill(d->pid, SIGTERM);
	pfd = (int)syscall(SYS_pidfd_open, d->pid, 0);
	if (pfd >= 0) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };

		if (poll(&p, 1, 10000) == 0)
			kill(d->pid, SIGKILL);
		close(pfd);
	}
	while (wait4(d->pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			ret = -errno;
			goto out;
		}
	}
	if (cpu)
		*cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
	d->pid = 0;
	unlink(d->sock);
	rmdir(d->dir);
	return ret;
}

int b_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'G': case 'g':
		v <<= 30;
		end++;
		break;
	case 'M': case 'm':
		v <<= 20;
		end++;
		break;
	case 'K': case 'k':
		v <<= 10;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' ? 1 : 0;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int b_arena_header(int fd, struct thp_arena_header *h)
{
	ssize_t n = pread(fd, h, sizeof(*h), 0);

	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*h) && h->magic == THP_ARENA_MAGIC ? 0 : -EBADMSG;
}
