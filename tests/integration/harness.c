/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datagen.h"
#include "harness.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "probe.h"
#include "thpswap/thpswap.h"
#include "util.h"

void h_require_root(void)
{
	const char *sysroot = getenv("THPSWAP_TEST_SYSROOT");
	struct thp_caps caps;
	char why[2048];
	int r;

	if (geteuid() != 0) {
		printf("skip: needs root (userfaultfd with EVENT_FORK, /dev/userfaultfd)\n");
		exit(H_SKIP);
	}
	r = thp_probe(&caps, sysroot && *sysroot ? sysroot : NULL);
	H_CHECK(r == 0, "probing the kernel (sysroot %s): %s", sysroot ? sysroot : "/", strerror(-r));
	if (thp_probe_required(&caps, why, sizeof(why)) == 0)
		return;
	for (char *line = strtok(why, "\n"); line; line = strtok(NULL, "\n"))
		printf("skip: %s\n", line);
	exit(H_SKIP);
}

static const char *env_path(const char *name)
{
	const char *p = getenv(name);

	if (!p || !*p) {
		fprintf(stderr, "harness: $%s is not set (run the tests through meson)\n", name);
		exit(H_FAIL);
	}
	return p;
}

/* Daemons still running when a failed check exits the test. */
static struct h_daemon *started[8];
static bool atexit_done;

static void kill_tracked(void);

static void stop_started(void)
{
	/* A failed check exits with children still running; a daemon waits
	 * for its clients, so they go first. */
	kill_tracked();
	for (unsigned k = 0; k < sizeof(started) / sizeof(started[0]); k++)
		if (started[k] && started[k]->pid > 0)
			h_daemon_stop(started[k]);
}

/*
 * Start @argv with @fd as fd 3 (socket activation, @activate) or as stdout.
 * posix_spawn, not fork: a fork would make every managed region of the test
 * COW-shared, and MOVE refuses shared pages (EBUSY) until they are written.
 */
static int spawn(pid_t *pid, const char *const *argv, int fd, bool activate)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	char **env = environ, *extra[4] = { NULL }, **envp = NULL;
	size_t n = 0;
	int r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, activate ? 3 : 1);
	if (activate) {
		extra[0] = "LISTEN_FDS=1";
		extra[1] = "LISTEN_FDNAMES=control";
	}
	while (env[n])
		n++;
	envp = calloc(n + 4, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	memcpy(envp, env, n * sizeof(*envp));
	for (size_t k = 0; extra[k]; k++)
		envp[n++] = extra[k];
	r = -posix_spawn(pid, argv[0], &fa, NULL, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	return r;
}

int h_listen(const struct h_daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(d->sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	unlink(d->sock);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64)) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

/* Start thpswapd with @args, socket-activated on @listen_fd. */
static int spawn_daemon(struct h_daemon *d, const char *const *args, int listen_fd)
{
	const char *bin = env_path("THPSWAPD");
	const char *argv[40];
	int n = 0;

	/* LISTEN_PID must be the daemon's own pid (sd_listen_fds checks it):
	 * a shell sets it to its $$ and execs the daemon in its place. */
	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = "LISTEN_PID=$$ exec \"$@\"";
	argv[n++] = "thpswapd";
	argv[n++] = bin;
	argv[n++] = "--socket";
	argv[n++] = d->sock;
	for (; args && *args && n < 38; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return spawn(&d->pid, argv, listen_fd, true);
}

int h_daemon_restart_on(struct h_daemon *d, const char *const *args, int listen_fd)
{
	if (d->pid > 0)
		return -EBUSY;
	return spawn_daemon(d, args, listen_fd);
}

/* Bind d->sock (whatever was there removed), then start thpswapd on it
 * socket-activated with @args. */
static int start_on_socket(struct h_daemon *d, const char *const *args)
{
	/* Bound and listening before the daemon runs: clients may connect at
	 * once and wait in the backlog (socket activation, as under systemd). */
	int fd = h_listen(d), r;

	if (fd < 0)
		return fd;
	r = spawn_daemon(d, args, fd);
	close(fd);
	return r;
}

int h_daemon_start(struct h_daemon *d, const char *const *args)
{
	int r;

	snprintf(d->dir, sizeof(d->dir), "/tmp/thpswap-test.XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/control.sock", d->dir);
	r = start_on_socket(d, args);
	if (r)
		return r;
	for (unsigned k = 0; k < sizeof(started) / sizeof(started[0]); k++)
		if (!started[k]) {
			started[k] = d;
			break;
		}
	if (!atexit_done) {
		atexit(stop_started);
		atexit_done = true;
	}
	setenv("THPSWAP_SOCKET", d->sock, 1);
	return 0;
}

int h_daemon_kill(struct h_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return -ESRCH;
	if (kill(d->pid, SIGKILL) < 0)
		return -errno;
	if (waitpid(d->pid, &st, 0) < 0)
		return -errno;
	d->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int h_daemon_restart(struct h_daemon *d, const char *const *args)
{
	if (d->pid > 0)
		return -EBUSY;
	return start_on_socket(d, args);
}

int h_daemon_stop(struct h_daemon *d)
{
	int st = 0;

	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		if (waitpid(d->pid, &st, 0) < 0)
			return -errno;
		d->pid = 0;
	}
	for (unsigned k = 0; k < sizeof(started) / sizeof(started[0]); k++)
		if (started[k] == d)
			started[k] = NULL;
	unlink(d->sock);
	rmdir(d->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int h_ctl(const struct h_daemon *d, char *out, size_t outsz, const char *const *argv)
{
	const char *bin = env_path("THPSWAPCTL");
	const char *a[32];
	int p[2], n = 0, st;
	size_t got = 0;
	pid_t pid;

	a[n++] = bin;
	a[n++] = "--socket";
	a[n++] = d->sock;
	for (; argv && *argv && n < 31; argv++)
		a[n++] = *argv;
	a[n] = NULL;
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	n = spawn(&pid, a, p[1], false);
	if (n) {
		close(p[0]);
		close(p[1]);
		return n;
	}
	close(p[1]);
	for (;;) {
		ssize_t k = read(p[0], out + got, got + 1 < outsz ? outsz - got - 1 : 0);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			if (k == 0 && got + 1 >= outsz) {
				char sink[4096]; /* keep draining so the child can exit */
				if (read(p[0], sink, sizeof(sink)) > 0)
					continue;
			}
			break;
		}
		got += (size_t)k;
	}
	out[got] = 0;
	close(p[0]);
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int h_rss(size_t *rss, size_t *anon_huge)
{
	char line[256];
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	size_t kb;

	if (!f)
		return -errno;
	*rss = *anon_huge = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Rss: %zu kB", &kb) == 1)
			*rss = kb << 10;
		else if (sscanf(line, "AnonHugePages: %zu kB", &kb) == 1)
			*anon_huge = kb << 10;
	}
	fclose(f);
	return 0;
}

long h_pmd_mapped(const void *addr, size_t len)
{
	int fd = thp_pagemap_open(0);
	long n;

	if (fd < 0)
		return fd;
	n = thp_pagemap_count_pmd(fd, (uint64_t)(uintptr_t)addr, (uint64_t)(uintptr_t)addr + len);
	close(fd);
	return n;
}

long long h_json_u64(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	return (*p >= '0' && *p <= '9') ? strtoll(p, NULL, 10) : -1;
}

/* ---- run time, helper processes, JSON replies ---- */

unsigned h_test_seconds(unsigned dflt)
{
	const char *v = getenv("THPSWAP_TEST_SECONDS");
	char *end;
	unsigned long n;

	if (!v || !*v)
		return dflt;
	n = strtoul(v, &end, 10);
	return (*end || n == 0 || n > 86400) ? dflt : (unsigned)n;
}

long h_pmd_zero_mapped(const void *addr, size_t len)
{
	int fd = thp_pagemap_open(0);
	long pages;

	if (fd < 0)
		return fd;
	pages = thp_pagemap_count(fd, (uint64_t)(uintptr_t)addr, (uint64_t)(uintptr_t)addr + len,
				  PAGE_IS_HUGE | PAGE_IS_PRESENT | PAGE_IS_PFNZERO, 0);
	close(fd);
	return pages < 0 ? pages : pages / (long)(THP_PMD_SIZE / THP_PAGE_SIZE);
}

int h_spawn_piped(pid_t *pid, const char *const *argv, int *to_child, int *from_child)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int in[2], out[2], r;

	if (pipe2(in, O_CLOEXEC))
		return -errno;
	if (pipe2(out, O_CLOEXEC)) {
		r = -errno;
		close(in[0]);
		close(in[1]);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	/* posix_spawn, not fork: see spawn() above. */
	r = -posix_spawn(pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (r) {
		close(in[1]);
		close(out[0]);
		return r;
	}
	*to_child = in[1];
	*from_child = out[0];
	return 0;
}

long h_read_line(int fd, char *buf, size_t sz)
{
	size_t n = 0;

	if (sz == 0)
		return -ENOSPC;
	for (;;) {
		char c;
		ssize_t k = read(fd, &c, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0 || c == '\n')
			break;
		if (n + 1 < sz)
			buf[n++] = c;
	}
	buf[n] = 0;
	return (long)n;
}

int h_count_fds(pid_t pid, const char *needle, unsigned *total, unsigned *matching)
{
	char dir[64], path[320], link[256];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return -errno;
	*total = *matching = 0;
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		(*total)++;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue; /* closed meanwhile */
		link[n] = 0;
		if (needle && strstr(link, needle))
			(*matching)++;
	}
	closedir(d);
	return 0;
}

/* The value after "@key": (spaces skipped), or NULL. */
static const char *json_value(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == '\n' || *p == '\t')
		p++;
	return p;
}

int h_json_object(const char *json, const char *key, const char *value, char *out, size_t outsz)
{
	char pat[256];
	const char *p = json, *lo, *hi;
	int depth;

	/* Our JSON has no braces inside strings, so counting them is enough. */
	for (;;) {
		const char *v;

		snprintf(pat, sizeof(pat), "\"%s\":", key);
		p = strstr(p, pat);
		if (!p)
			return -ENOENT;
		v = json_value(p, key);
		snprintf(pat, sizeof(pat), "\"%s\"", value);
		if (v && !strncmp(v, pat, strlen(pat)))
			break;
		p++;
	}
	for (lo = p, depth = 0; lo > json; lo--) {
		if (*lo == '}')
			depth++;
		else if (*lo == '{' && depth-- == 0)
			break;
	}
	for (hi = p, depth = 0; *hi; hi++) {
		if (*hi == '{')
			depth++;
		else if (*hi == '}' && depth-- == 0)
			break;
	}
	if (*lo != '{' || *hi != '}')
		return -ENOENT;
	if ((size_t)(hi - lo + 2) > outsz)
		return -ENOSPC;
	memcpy(out, lo, (size_t)(hi - lo + 1));
	out[hi - lo + 1] = 0;
	return 0;
}

int h_json_str(const char *json, const char *key, char *out, size_t outsz)
{
	const char *v = json_value(json, key), *e;

	if (!v)
		return -ENOENT;
	if (!strncmp(v, "null", 4)) {
		snprintf(out, outsz, "null");
		return 0;
	}
	if (*v != '"' || !(e = strchr(v + 1, '"')))
		return -ENOENT;
	if ((size_t)(e - v) > outsz)
		return -ENOSPC;
	memcpy(out, v + 1, (size_t)(e - v - 1));
	out[e - v - 1] = 0;
	return 0;
}

int h_json_i64(const char *json, const char *key, long long *out)
{
	const char *v = json_value(json, key);
	char *end;
	long long n;

	if (!v)
		return -ENOENT;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (end == v || errno)
		return -ENOENT;
	*out = n;
	return 0;
}

/* ---- a swap device of the test's own ---- */

static int zram_id = -1;
static bool zram_on;
static char zram_dev[32];
static char swap_file[64];	/* h_swap_file_up's, "" none */
static bool swap_file_on;

int h_write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Only what swapdev_up made: safe from a signal handler (syscalls only). */
void h_swap_down(void)
{
	char p[96], id[16];

	if (swap_file_on && swapoff(swap_file) == 0)
		swap_file_on = false;
	if (swap_file[0] && !swap_file_on && unlink(swap_file) == 0)
		swap_file[0] = 0;
	if (zram_id < 0)
		return;
	if (zram_on && swapoff(zram_dev) == 0)
		zram_on = false;
	snprintf(p, sizeof(p), "/sys/block/zram%d/reset", zram_id);
	h_write_str(p, "1");
	snprintf(id, sizeof(id), "%d", zram_id);
	if (h_write_str("/sys/class/zram-control/hot_remove", id) == 0)
		zram_id = -1;
	else
		fprintf(stderr, "zram%d could not be removed: echo %d >/sys/class/zram-control/"
			"hot_remove\n", zram_id, zram_id);
}

static void swap_on_term(int sig)
{
	h_swap_down();
	_exit(128 + sig);
}

/* A version-1 swap header (what mkswap writes): "SWAPSPACE2" at the end of
 * the first page, the last usable page at byte 1028. */
static int write_swap_header(const char *dev, uint64_t bytes)
{
	static char page[4096];
	uint32_t v[3] = { 1, (uint32_t)(bytes / 4096 - 1), 0 };
	int fd = open(dev, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	memset(page, 0, sizeof(page));
	memcpy(page + 1024, v, sizeof(v));
	memcpy(page + 4096 - 10, "SWAPSPACE2", 10);
	if (pwrite(fd, page, sizeof(page), 0) != (ssize_t)sizeof(page) || fsync(fd))
		r = errno ? -errno : -EIO;
	close(fd);
	return r;
}

/* The handlers that take a swap device of ours down on the way out. */
static void swap_cleanup_on_exit(void)
{
	static bool done;
	struct sigaction sa = { .sa_handler = swap_on_term };

	if (done)
		return;
	done = true;
	atexit(h_swap_down);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int h_swap_up(unsigned mib, char *why, size_t whysz)
{
	char p[96], buf[32];
	int fd, r;
	ssize_t n;

	/* Loaded with no device of its own (num_devices=0): ours is hot-added. */
	if (access("/sys/class/zram-control/hot_add", F_OK) != 0 &&
	    system("modprobe zram num_devices=0 2>/dev/null") != 0)
		fprintf(stderr, "modprobe zram failed\n");
	fd = open("/sys/class/zram-control/hot_add", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whysz, "no zram here (/sys/class/zram-control/hot_add: %s; "
			 "modprobe zram)", strerror(errno));
		return -errno;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		snprintf(why, whysz, "zram hot_add: %s", n < 0 ? strerror(errno) : "empty");
		return -EIO;
	}
	buf[n] = 0;
	zram_id = atoi(buf);
	snprintf(zram_dev, sizeof(zram_dev), "/dev/zram%d", zram_id);
	snprintf(p, sizeof(p), "/sys/block/zram%d/disksize", zram_id);
	snprintf(buf, sizeof(buf), "%uM", mib);
	r = h_write_str(p, buf);
	if (!r)
		r = write_swap_header(zram_dev, (uint64_t)mib << 20);
	if (!r && swapon(zram_dev, SWAP_FLAG_PREFER | (32767 & SWAP_FLAG_PRIO_MASK)))
		r = -errno;
	if (r) {
		snprintf(why, whysz, "%s as swap: %s", zram_dev, strerror(-r));
		h_swap_down();
		return r;
	}
	zram_on = true;
	swap_cleanup_on_exit();
	return 0;
}

int h_swap_file_up(unsigned mib, char *why, size_t whysz)
{
	uint64_t bytes = (uint64_t)mib << 20;
	int fd, r = 0;

	snprintf(swap_file, sizeof(swap_file), "/var/tmp/thpswap-test-swap.%d", (int)getpid());
	swap_cleanup_on_exit();
	fd = open(swap_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		swap_file[0] = 0; /* not ours: never unlinked */
	} else {
		r = -posix_fallocate(fd, 0, (off_t)bytes);
		close(fd);
	}
	if (!r)
		r = write_swap_header(swap_file, bytes);
	if (!r && swapon(swap_file, SWAP_FLAG_PREFER | (32767 & SWAP_FLAG_PRIO_MASK)))
		r = -errno;
	if (r) {
		snprintf(why, whysz, "a swap file in /var/tmp: %s", strerror(-r));
		h_swap_down();
		return r;
	}
	swap_file_on = true;
	return 0;
}

long long h_vmstat(const char *key)
{
	FILE *f = fopen("/proc/vmstat", "re");
	char k[64];
	long long v, r = -1;

	H_CHECK(f, "/proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %lld", k, &v) == 2)
		if (!strcmp(k, key))
			r = v;
	fclose(f);
	return r;
}

const char *h_swap_dev(void)
{
	return swap_file_on ? swap_file : zram_dev;
}

/* ---- cases, deadlines, data ---- */

#define H_SLOTS 24
static char h_where[H_SLOTS][200];
static atomic_int h_nslots;
static __thread int h_slot = -1;
static pid_t h_tracked[64];
static pid_t h_track_owner;

void h_at(const char *fmt, ...)
{
	va_list ap;

	if (h_slot < 0) {
		h_slot = atomic_fetch_add(&h_nslots, 1);
		if (h_slot >= H_SLOTS)
			h_slot = H_SLOTS - 1; /* threads beyond share the last line */
	}
	va_start(ap, fmt);
	vsnprintf(h_where[h_slot], sizeof(h_where[0]), fmt, ap);
	va_end(ap);
}

static void say(const char *m)
{
	if (write(2, m, strlen(m)) < 0) {
		/* nothing left to tell it to */
	}
}

/*
 * A hung test's every thread prints its own stack (static functions as
 * object+offset: addr2line -f -e OBJECT OFFSET names them). Only
 * async-signal-safe calls: backtrace() was called once before, so it has
 * nothing left to load; the lock keeps the stacks from interleaving.
 */
#define H_STACK_SIG SIGURG
static atomic_int h_stacks_done;
static atomic_flag h_stack_lock = ATOMIC_FLAG_INIT;

static void stack_hit(int sig)
{
	void *pc[48];
	char m[64];
	int n = backtrace(pc, 48);

	(void)sig;
	while (atomic_flag_test_and_set(&h_stack_lock))
		;
	snprintf(m, sizeof(m), "thread %ld:\n", (long)syscall(SYS_gettid));
	say(m);
	backtrace_symbols_fd(pc, n, 2);
	atomic_flag_clear(&h_stack_lock);
	atomic_fetch_add(&h_stacks_done, 1);
}

static void all_stacks(void)
{
	char buf[4096];
	int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC), asked = 0;
	pid_t self = (pid_t)syscall(SYS_gettid);
	long n;

	if (fd < 0)
		return;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0)
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			pid_t tid = (pid_t)atoi(d->d_name);

			off += d->d_reclen;
			if (tid > 0 && tid != self && syscall(SYS_tgkill, getpid(), tid, H_STACK_SIG) == 0)
				asked++;
		}
	close(fd);
	stack_hit(0);
	for (int i = 0; i < 100 && atomic_load(&h_stacks_done) < asked + 1; i++)
		usleep(10000);
}

static void deadline_hit(int sig)
{
	int n = atomic_load(&h_nslots);

	say(sig ? "\nDEADLINE: the test hung; its threads were at:\n" : "its threads were at:\n");
	for (int k = 0; k < n && k < H_SLOTS; k++) {
		say("  ");
		say(h_where[k]);
		say("\n");
	}
	if (sig)
		all_stacks();
	if (getpid() == h_track_owner)
		for (unsigned k = 0; k < sizeof(h_tracked) / sizeof(h_tracked[0]); k++)
			if (h_tracked[k] > 0)
				kill(h_tracked[k], SIGKILL);
	for (unsigned k = 0; k < sizeof(started) / sizeof(started[0]); k++)
		if (started[k] && started[k]->pid > 0)
			kill(started[k]->pid, SIGTERM);
	_exit(H_FAIL);
}

static struct thpswap_session *case_s;

void h_fatal_signal(int sig, void *addr)
{
	struct thpswap_stats st;
	char m[320];

	snprintf(m, sizeof(m), "\nFATAL: %s at %p\n", sig == SIGBUS ? "SIGBUS" : "SIGSEGV", addr);
	say(m);
	if (case_s && thpswap_get_stats(case_s, &st, sizeof(st)) == 0) {
		snprintf(m, sizeof(m), "counters: regions=%llu resident=%llu ram=%llu evictions=%llu "
			 "restores=%llu faults=%llu cancelled=%llu corrupt=%llu fallback_4k=%llu\n",
			 (unsigned long long)st.regions, (unsigned long long)st.resident,
			 (unsigned long long)st.evicted_ram, (unsigned long long)st.evictions,
			 (unsigned long long)st.restores, (unsigned long long)st.faults,
			 (unsigned long long)st.evict_cancelled, (unsigned long long)st.corrupt,
			 (unsigned long long)st.fallback_4k);
		say(m);
	}
	deadline_hit(0);
}

static void fatal_hit(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	h_fatal_signal(sig, si->si_addr);
}

/* How much slower than native this build runs (tests/meson.build). */
#ifndef H_SLOWDOWN
#define H_SLOWDOWN 1
#endif

unsigned h_slowdown(void)
{
	return H_SLOWDOWN;
}

void h_deadline(unsigned seconds)
{
	struct sigaction sa = { .sa_handler = deadline_hit };
	struct sigaction fa = { .sa_sigaction = fatal_hit, .sa_flags = SA_SIGINFO };
	struct sigaction ta = { .sa_handler = stack_hit, .sa_flags = SA_RESTART };
	void *warm[1];

	backtrace(warm, 1); /* loads the unwinder now, not in a signal handler */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&ta.sa_mask);
	sigaction(H_STACK_SIG, &ta, NULL);
	sigemptyset(&fa.sa_mask);
	sigaction(SIGSEGV, &fa, NULL);
	sigaction(SIGBUS, &fa, NULL);
	alarm(seconds * H_SLOWDOWN);
}

/* SIGKILL and reap every process h_track()ed by this process. */
static void kill_tracked(void)
{
	if (getpid() != h_track_owner)
		return;
	for (unsigned k = 0; k < sizeof(h_tracked) / sizeof(h_tracked[0]); k++) {
		pid_t pid = h_tracked[k];

		if (pid > 0 && __sync_bool_compare_and_swap(&h_tracked[k], pid, 0)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
}

void h_track(pid_t pid)
{
	if (h_track_owner != getpid()) {
		/* A forked child starts with nothing of its parent's to kill. */
		memset(h_tracked, 0, sizeof(h_tracked));
		h_track_owner = getpid();
	}
	for (unsigned k = 0; k < sizeof(h_tracked) / sizeof(h_tracked[0]); k++)
		if (__sync_bool_compare_and_swap(&h_tracked[k], 0, pid))
			return;
}

void h_untrack(pid_t pid)
{
	for (unsigned k = 0; k < sizeof(h_tracked) / sizeof(h_tracked[0]); k++)
		__sync_bool_compare_and_swap(&h_tracked[k], pid, 0);
}

int h_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	h_untrack(pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

long long h_counter(const struct h_daemon *d, const char *name)
{
	char pid[16], out[8192];
	const char *argv[] = { "--json", "stats", "--pid", pid, NULL };

	snprintf(pid, sizeof(pid), "%d", getpid());
	if (h_ctl(d, out, sizeof(out), argv) != 0)
		return -1;
	return h_json_u64(out, name);
}

struct thpswap_stats h_stats(struct thpswap_session *s)
{
	struct thpswap_stats st;
	int r = thpswap_get_stats(s, &st, sizeof(st));

	H_CHECK(r == 0, "thpswap_get_stats: %s", strerror(-r));
	return st;
}

void h_report(struct thpswap_session *s, const struct h_daemon *d, const char *label)
{
	struct thpswap_stats st = h_stats(s);

	printf("%s: regions=%llu resident=%llu ram=%llu zero=%llu stored=%llu evictions=%llu "
	       "restores=%llu pmd=%llu faults=%llu cancelled=%llu refused=%llu incompressible=%llu "
	       "split_repaired=%llu split_left=%llu eagain=%llu fallback_4k=%llu corrupt=%llu "
	       "copy_child=%lld\n", label,
	       (unsigned long long)st.regions, (unsigned long long)st.resident,
	       (unsigned long long)st.evicted_ram, (unsigned long long)st.evicted_zero,
	       (unsigned long long)st.stored_bytes, (unsigned long long)st.evictions,
	       (unsigned long long)st.restores, (unsigned long long)st.restores_pmd,
	       (unsigned long long)st.faults, (unsigned long long)st.evict_cancelled,
	       (unsigned long long)st.evict_refused, (unsigned long long)st.evict_incompressible,
	       (unsigned long long)st.split_repaired, (unsigned long long)st.split_left,
	       (unsigned long long)st.eagain_retries, (unsigned long long)st.fallback_4k,
	       (unsigned long long)st.corrupt, d ? h_counter(d, "copy_child") : -1LL);
	fflush(stdout);
}

void h_page_fill(void *page, uint64_t pg, uint32_t gen)
{
	uint64_t *w = page, tag = (uint64_t)gen << 40 | (pg & 0xfffffffull) << 12;

	if (!gen) {
		memset(page, 0, H_PAGE);
		return;
	}
	for (unsigned i = 0; i < H_PAGE / 8; i++)
		w[i] = tag | i;
}

long h_page_check(const void *page, uint64_t pg, uint32_t gen)
{
	const uint64_t *w = page;
	uint64_t tag = gen ? (uint64_t)gen << 40 | (pg & 0xfffffffull) << 12 : 0;

	for (unsigned i = 0; i < H_PAGE / 8; i++) {
		uint64_t want = gen ? tag | i : 0;

		if (w[i] != want) {
			const unsigned char *a = (const unsigned char *)&w[i], *b = (const unsigned char *)&want;
			unsigned k = 0;

			while (k < 7 && a[k] == b[k])
				k++;
			return (long)(8 * i + k);
		}
	}
	return -1;
}

const char *h_page_what(const void *page, char *buf, size_t sz)
{
	const uint64_t *w = page;
	unsigned i = 0, k;
	uint64_t pg;
	uint32_t gen;

	while (i < H_PAGE / 8 && !w[i])
		i++;
	if (i == H_PAGE / 8)
		return snprintf(buf, sz, "zeros"), buf;
	/* Decode the first nonzero word; say how far that page goes on. */
	pg = (w[i] >> 12) & 0xfffffff;
	gen = (uint32_t)(w[i] >> 40);
	for (k = i; k < H_PAGE / 8 && w[k] == ((uint64_t)gen << 40 | pg << 12 | k); k++)
		;
	if (i == 0 && k == H_PAGE / 8)
		snprintf(buf, sz, "page %llu gen %u", (unsigned long long)pg, gen);
	else if (gen && (w[i] & 0xfff) == i)
		snprintf(buf, sz, "zeros to byte %u, then page %llu gen %u to byte %u%s", 8 * i,
			 (unsigned long long)pg, gen, 8 * k, k < H_PAGE / 8 ? ", then other bytes" : "");
	else
		snprintf(buf, sz, "other bytes (word %u = %#llx)", i, (unsigned long long)w[i]);
	return buf;
}

void h_fill(void *base, size_t len, uint64_t pg0, uint32_t gen)
{
	for (size_t j = 0; j < len / H_PAGE; j++)
		h_page_fill((char *)base + j * H_PAGE, pg0 + j, gen);
}

long h_check(const void *base, size_t len, uint64_t pg0, uint32_t gen, const uint32_t *gens,
	     const char *what)
{
	for (size_t j = 0; j < len / H_PAGE; j++) {
		const char *p = (const char *)base + j * H_PAGE;
		uint32_t g = gens ? gens[j] : gen;
		long off = h_page_check(p, pg0 + j, g & ~H_OR_ZERO);
		char found[96], want[96];

		if (off < 0 || ((g & H_OR_ZERO) && h_page_check(p, 0, 0) < 0))
			continue;
		if (g & ~H_OR_ZERO)
			snprintf(want, sizeof(want), "%spage %llu gen %u",
				 (g & H_OR_ZERO) ? "zeros or " : "", (unsigned long long)(pg0 + j),
				 g & ~H_OR_ZERO);
		else
			snprintf(want, sizeof(want), "zeros");
		fprintf(stderr, "%s: %p (byte %zu of the range, page %zu of its region) differs: "
			"want %s, found %s (byte %#04x)\n", what, (void *)(p + off),
			j * H_PAGE + (size_t)off, ((uintptr_t)p / H_PAGE) % H_PAGES_PER_REGION,
			want, h_page_what(p, found, sizeof(found)), (unsigned char)p[off]);
		return (long)(j * H_PAGE) + off;
	}
	return -1;
}

void h_agent_sync(void *barrier)
{
	H_CHECK(madvise(barrier, THPSWAP_REGION_SIZE, MADV_DONTNEED) == 0, "barrier zap: %s", strerror(errno));
	(void)*(volatile char *)barrier;
}

int h_evict(struct thpswap_session *s, void *addr, size_t len)
{
	int n = thpswap_advise(s, addr, len, THPSWAP_ADVICE_COLD);

	H_CHECK(n >= 0, "thpswap_advise(COLD, %p, %zu): %s", addr, len, strerror(-n));
	return n;
}

void *h_reserve(size_t len, size_t skew)
{
	char *p = thp_mmap_aligned(len + skew, THPSWAP_REGION_SIZE, PROT_NONE,
				   MAP_PRIVATE | MAP_NORESERVE);

	H_CHECK(p != MAP_FAILED, "reserve %zu bytes of address space: %s", len + skew, strerror(errno));
	if (skew)
		munmap(p, skew);
	return p + skew;
}

void h_mem_map(struct thpswap_session *s, struct h_mem *m, size_t nreg, uint64_t pg0)
{
	void *p;
	int r = thpswap_map(s, nreg * THPSWAP_REGION_SIZE, &p);

	H_CHECK(r == 0, "thpswap_map(%zu regions): %s", nreg, strerror(-r));
	m->base = p;
	m->len = nreg * THPSWAP_REGION_SIZE;
	m->pg0 = pg0;
	m->gen = calloc(m->len / H_PAGE, sizeof(*m->gen));
	H_CHECK(m->gen, "out of memory");
}

void h_mem_write(struct h_mem *m, size_t off, size_t len, uint32_t gen)
{
	for (size_t o = off; o < off + len; o += H_PAGE) {
		h_page_fill(m->base + o, m->pg0 + o / H_PAGE, gen);
		m->gen[o / H_PAGE] = gen;
	}
}

void h_mem_zap(struct h_mem *m, size_t off, size_t len, int advice)
{
	H_CHECK(madvise(m->base + off, len, advice) == 0, "madvise(%p, %zu, %d): %s",
		(void *)(m->base + off), len, advice, strerror(errno));
	for (size_t o = off; o < off + len; o += H_PAGE)
		m->gen[o / H_PAGE] = advice == MADV_FREE ? m->gen[o / H_PAGE] | H_OR_ZERO : 0;
}

void h_mem_check(const struct h_mem *m, const char *what)
{
	long bad = h_check(m->base, m->len, m->pg0, 0, m->gen, what);

	H_CHECK(bad < 0, "%s: region %ld, byte %ld of it differs", what,
		bad / (long)THPSWAP_REGION_SIZE, bad % (long)THPSWAP_REGION_SIZE);
}

void h_mem_free(struct h_mem *m)
{
	free(m->gen);
	m->gen = NULL;
}

void h_mem_prepare(struct thpswap_session *s, struct h_mem *m, size_t nreg, size_t nevict)
{
	int n;

	h_mem_map(s, m, nreg, 0);
	h_mem_write(m, 0, m->len, 1);
	if (!nevict)
		return;
	n = h_evict(s, m->base, nevict * THPSWAP_REGION_SIZE);
	H_CHECK(n == (int)nevict, "evicted %d of %zu fresh regions", n, nevict);
}

void *h_barrier_map(struct thpswap_session *s)
{
	void *b;
	int r = thpswap_map(s, THPSWAP_REGION_SIZE, &b);

	H_CHECK(r == 0, "map the barrier region: %s", strerror(-r));
	return b;
}

/* ---- the arena ---- */

int h_arena_fd(void)
{
	int found, fd = thp_arena_self_fd(&found);

	H_CHECK(found == 1, "%d descriptors of this process name its arena memfd (%s), want 1",
		found, fd == -ENOENT ? "none" : fd < 0 ? strerror(-fd) : "several");
	return fd;
}

struct thp_arena_header h_arena_header(int fd)
{
	struct thp_arena_header h;
	ssize_t n = pread(fd, &h, sizeof(h), 0);

	H_CHECK(n == (ssize_t)sizeof(h) && h.magic == THP_ARENA_MAGIC && h.max_regions,
		"read the arena header: %zd bytes, %s", n, n < 0 ? strerror(errno) : "bad magic");
	return h;
}

void h_arena_each(int fd, void (*fn)(uint32_t idx, const struct thp_record *r, void *arg),
		  void *arg)
{
	static __thread struct thp_record chunk[1024];
	struct thp_arena_header h = h_arena_header(fd);

	for (uint32_t i = 0; i < h.max_regions; i += 1024) {
		uint32_t k = h.max_regions - i < 1024 ? h.max_regions - i : 1024;
		ssize_t n = pread(fd, chunk, k * sizeof(chunk[0]),
				  (off_t)(h.records_off + (uint64_t)i * sizeof(chunk[0])));

		H_CHECK(n == (ssize_t)(k * sizeof(chunk[0])), "read the arena records: %s",
			n < 0 ? strerror(errno) : "short read");
		for (uint32_t j = 0; j < k; j++)
			if (chunk[j].state != THP_ST_FREE)
				fn(i + j, &chunk[j], arg);
	}
}

struct find_arg {
	uint64_t addr;
	long idx;
};

static void find_one(uint32_t idx, const struct thp_record *r, void *arg)
{
	struct find_arg *f = arg;

	if (r->addr == f->addr)
		f->idx = idx;
}

long h_arena_find(int fd, const void *addr)
{
	struct find_arg f = { .addr = (uint64_t)(uintptr_t)addr, .idx = -1 };

	h_arena_each(fd, find_one, &f);
	return f.idx;
}

struct view_arg {
	uint64_t lo;
	size_t nreg;
	struct h_region_view *v;
};

static void view_one(uint32_t idx, const struct thp_record *r, void *arg)
{
	struct view_arg *a = arg;
	struct h_region_view *v;

	(void)idx;
	if (r->addr < a->lo || r->addr >= a->lo + a->nreg * THPSWAP_REGION_SIZE ||
	    (r->addr - a->lo) % THPSWAP_REGION_SIZE)
		return;
	v = &a->v[(r->addr - a->lo) / THPSWAP_REGION_SIZE];
	if (!v->nrec++) {
		v->state = r->state;
		v->flags = r->flags;
		v->stored_len = r->stored_len;
	}
}

void h_arena_view(int fd, const void *addr, size_t nreg, struct h_region_view *v)
{
	struct view_arg a = { (uint64_t)(uintptr_t)addr, nreg, v };

	memset(v, 0, nreg * sizeof(*v));
	h_arena_each(fd, view_one, &a);
}

void h_region_describe(int fd, const void *addr, char *buf, size_t sz)
{
	struct h_region_view v;
	int pm = thp_pagemap_open(0);
	uint64_t a = (uint64_t)(uintptr_t)addr;
	long present = -1, pmd = -1;

	h_arena_view(fd, addr, 1, &v);
	if (pm >= 0) {
		present = thp_pagemap_count_present(pm, a, a + THPSWAP_REGION_SIZE);
		pmd = thp_pagemap_count_pmd(pm, a, a + THPSWAP_REGION_SIZE);
		close(pm);
	}
	snprintf(buf, sz, "region %p: %s (flags %#x, %u bytes stored, %u records), %ld of 512 pages "
		 "present, %s", addr, v.nrec ? thp_state_name(v.state) : "no record", v.flags,
		 v.stored_len, v.nrec, present, pmd == 1 ? "PMD-mapped" : "not PMD-mapped");
}

void h_evict_reasons(int fd, const char *what)
{
	static const struct { unsigned c; const char *name; } why[] = {
		{ THP_C_EVICT_REFUSED, "refused" },
		{ THP_C_EVICT_INCOMPRESSIBLE, "incompressible" },
		{ THP_C_EVICT_CANCELLED, "cancelled" },
		{ THP_C_EVICT_ZAP_PENDING, "zap_pending" },
		{ THP_C_EVICT_BUSY, "busy" },
		{ THP_C_EVICT_SPLIT, "split" },
		{ THP_C_EVICT_FILLED, "filled" },
	};
	struct thp_arena_header h = h_arena_header(fd);

	fprintf(stderr, "%s: eviction counters:", what);
	for (size_t k = 0; k < sizeof(why) / sizeof(why[0]); k++)
		fprintf(stderr, " %s=%llu", why[k].name, (unsigned long long)h.ctr[why[k].c]);
	fputc('\n', stderr);
}

int h_mem_evict(struct thpswap_session *s, const struct h_mem *m, const char *what)
{
	size_t nreg = m->len / THPSWAP_REGION_SIZE;
	struct h_region_view *before = calloc(nreg, sizeof(*before));
	struct h_region_view *after = calloc(nreg, sizeof(*after));
	int fd = h_arena_fd(), n, resident = 0, bad = 0;
	char line[320];

	H_CHECK(before && after, "out of memory");
	/* mremap and munmap return once the agent has read their events, not
	 * handled them: a call of the API waits for that (advice on a range
	 * nothing is managed at does nothing else), so the records are where
	 * the regions are when we look. */
	{
		void *none = h_reserve(THPSWAP_REGION_SIZE, 0);

		H_CHECK(thpswap_advise(s, none, THPSWAP_REGION_SIZE, THPSWAP_ADVICE_WILLNEED) == 0,
			"%s: advice on unmanaged memory acted on something", what);
		munmap(none, THPSWAP_REGION_SIZE);
	}
	h_arena_view(fd, m->base, nreg, before);
	for (size_t k = 0; k < nreg; k++)
		resident += before[k].state == THP_ST_RESIDENT;
	h_at("%s: evicting %zu regions", what, nreg);
	n = h_evict(s, m->base, m->len);
	h_arena_view(fd, m->base, nreg, after);
	for (size_t k = 0; k < nreg; k++) {
		const uint32_t *g = m->gen + k * H_PAGES_PER_REGION;
		bool data = false;

		for (size_t p = 0; p < H_PAGES_PER_REGION && !data; p++)
			data = g[p] && !(g[p] & H_OR_ZERO);
		if (after[k].nrec == 1 && after[k].state != THP_ST_RESIDENT &&
		    (!data || after[k].state == THP_ST_RAM))
			continue;
		h_region_describe(fd, m->base + k * THPSWAP_REGION_SIZE, line, sizeof(line));
		fprintf(stderr, "%s: region %zu of %zu %s after the eviction (%s before): %s\n", what, k,
			nreg, data ? "holds data but is not stored" : "is still resident",
			before[k].nrec ? thp_state_name(before[k].state) : "no record", line);
		bad++;
	}
	free(before);
	free(after);
	if (bad || n != resident)
		h_evict_reasons(fd, what);
	H_CHECK(!bad && n == resident, "%s: thpswap_advise(COLD) evicted %d of the %d resident regions; "
		"%d of %zu regions not evicted (above)", what, n, resident, bad, nreg);
	return n;
}

/* Does tmpfs put large folios in the arena (then allocation is not page-
 * granular and only the lower bound holds)?  Written with pwrite(2), no
 * mapping asks for huge pages: only "always", "within_size" and "force" do. */
static bool shmem_large_folios(void)
{
	static const char *const large[] = { "always", "within_size", "force" };
	char path[400], mode[32];
	bool top = false, any = false;
	struct dirent *e;
	DIR *d;

	if (thp_parse_mode("/sys/kernel/mm/transparent_hugepage/shmem_enabled", mode, sizeof(mode)) == 0)
		for (size_t k = 0; k < 3; k++)
			top |= !strcmp(mode, large[k]);
	d = opendir("/sys/kernel/mm/transparent_hugepage");
	if (!d)
		return top;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "hugepages-", 10))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/mm/transparent_hugepage/%s/shmem_enabled",
			 e->d_name);
		if (thp_parse_mode(path, mode, sizeof(mode)))
			continue;
		any |= !strcmp(mode, "always") || !strcmp(mode, "within_size") ||
		       (!strcmp(mode, "inherit") && top);
	}
	closedir(d);
	return top || any;
}

struct stored_arg {
	uint32_t *len;		/* stored bytes per record index */
	uint64_t sum, pages, slots;
	unsigned busy;		/* records whose slot may be written or freed now */
};

static void stored_one(uint32_t idx, const struct thp_record *r, void *arg)
{
	struct stored_arg *a = arg;
	uint32_t st = atomic_load(&r->state);
	/* A record in the file tier keeps its length, not its slot: the
	 * slot is punched, and its bytes are counted as file bytes. */
	uint32_t len = (r->flags & THP_RF_FILE) ? 0 : r->stored_len;

	/* An eviction stores before its record says so and punches after a
	 * cancel; a restore punches the old bytes after its wake. */
	a->busy += st == THP_ST_EVICTING || st == THP_ST_CANCEL || st == THP_ST_RESTORING ||
		   (r->flags & THP_RF_PUNCHING);
	a->len[idx] = len;
	a->sum += len;
	a->pages += (len + 4095ull) & ~4095ull;
	a->slots += len > 0;
}

/* Data (SEEK_DATA) in a slot beyond its record's stored bytes, or in the
 * slot of a record that stores nothing: the first such place into @at,
 * and how many slots have any. */
static unsigned stray_data(int fd, const struct thp_arena_header *h, const uint32_t *len,
			   char *at, size_t atsz)
{
	unsigned stray = 0;
	off_t pos = (off_t)h->data_off;

	for (;;) {
		off_t d = lseek(fd, pos, SEEK_DATA), e;

		if (d < 0)
			break; /* ENXIO: no data after pos */
		e = lseek(fd, d, SEEK_HOLE);
		H_CHECK(e > d, "SEEK_HOLE in the arena: %s", strerror(errno));
		/* Each slot the extent [d, e) touches. */
		for (uint64_t i = ((uint64_t)d - h->data_off) / THP_SLOT_SIZE;
		     i < h->max_regions && h->data_off + i * THP_SLOT_SIZE < (uint64_t)e; i++) {
			uint64_t lo = h->data_off + i * THP_SLOT_SIZE;
			uint64_t ok = lo + ((len[i] + 4095ull) & ~4095ull);
			uint64_t from = (uint64_t)d > lo ? (uint64_t)d : lo;
			uint64_t to = (uint64_t)e < lo + THP_SLOT_SIZE ? (uint64_t)e : lo + THP_SLOT_SIZE;

			if (to > ok && !stray++)
				snprintf(at, atsz, "slot %llu (%u bytes stored) has data at its bytes "
					 "%llu..%llu", (unsigned long long)i, len[i],
					 (unsigned long long)((from > ok ? from : ok) - lo),
					 (unsigned long long)(to - lo));
		}
		pos = e;
	}
	return stray;
}

void h_check_stored(struct thpswap_session *s, void *barrier, const char *what)
{
	struct stored_arg a = { 0 };
	struct thp_arena_header h;
	struct thpswap_stats st;
	struct stat sb;
	uint64_t alloc;
	unsigned stray = 0;
	char at[200] = "";
	bool large = shmem_large_folios();
	int fd;

	if (barrier)
		h_agent_sync(barrier);
	fd = h_arena_fd();
	h = h_arena_header(fd);
	a.len = calloc(h.max_regions, sizeof(*a.len));
	H_CHECK(a.len, "out of memory");
	/* An eviction the daemon asked for may be committing meanwhile (its
	 * record is written before its counter), and its slot written before
	 * its record or freed after: take the arena between two snapshots in
	 * which the records and the counter agree, no record's slot is being
	 * written or freed, and no eviction or restore happened in between;
	 * or the last of 200 tries, 5 ms apart.  A real difference stays. */
	for (unsigned tries = 0;; tries++) {
		struct thpswap_stats before = h_stats(s);
		bool quiet;

		a.sum = a.pages = a.slots = 0;
		a.busy = 0;
		memset(a.len, 0, h.max_regions * sizeof(*a.len));
		h_arena_each(fd, stored_one, &a);
		H_CHECK(fstat(fd, &sb) == 0, "fstat the arena: %s", strerror(errno));
		alloc = (uint64_t)sb.st_blocks * 512;
		at[0] = 0;
		stray = large ? 0 : stray_data(fd, &h, a.len, at, sizeof(at));
		st = h_stats(s);
		quiet = !a.busy && st.evictions == before.evictions &&
			st.evict_cancelled == before.evict_cancelled && st.restores == before.restores;
		if ((a.sum == st.stored_bytes && st.stored_bytes == before.stored_bytes && quiet) ||
		    tries == 200)
			break;
		usleep(5000);
	}
	free(a.len);
	printf("%s: %llu bytes stored in %llu slots; the arena memfd holds %llu bytes (header and "
	       "records area: %llu)%s\n", what, (unsigned long long)a.sum, (unsigned long long)a.slots,
	       (unsigned long long)alloc, (unsigned long long)h.data_off,
	       large ? "; tmpfs may use large folios here: only the lower bound is checked" : "");
	H_CHECK(a.sum == st.stored_bytes, "%s: the records hold %llu stored bytes, the counter says %llu",
		what, (unsigned long long)a.sum, (unsigned long long)st.stored_bytes);
	H_CHECK(alloc >= a.pages, "%s: the arena memfd holds %llu bytes, less than the %llu stored "
		"(%llu in 4 KiB pages): stored bytes are missing", what, (unsigned long long)alloc,
		(unsigned long long)a.sum, (unsigned long long)a.pages);
	if (!large) {
		H_CHECK(alloc <= a.pages + h.data_off, "%s: the arena memfd holds %llu bytes, more than "
			"the %llu stored (%llu in 4 KiB pages) and the %llu of header and records: bytes "
			"were left behind", what, (unsigned long long)alloc, (unsigned long long)a.sum,
			(unsigned long long)a.pages, (unsigned long long)h.data_off);
		H_CHECK(!stray, "%s: %u slots hold data beyond their stored bytes; the first: %s", what,
			stray, at);
	}
}

/* ---- one case per process ---- */
static const struct h_daemon *case_d;
static pid_t case_pid;
static bool case_passed;

static void case_atexit(void)
{
	/* Evidence for a failed check; never in a forked child (the arena is
	 * MADV_DONTFORK there). */
	if (case_passed || getpid() != case_pid)
		return;
	if (case_s)
		h_report(case_s, case_d, "counters at failure");
	if (h_track_owner == case_pid)
		for (unsigned k = 0; k < sizeof(h_tracked) / sizeof(h_tracked[0]); k++)
			if (h_tracked[k] > 0)
				kill(h_tracked[k], SIGKILL);
}

static int run_one(const char *name, const struct h_case *cases, size_t n)
{
	static struct h_daemon d;
	const char *sock = getenv("THPSWAP_SOCKET");
	void *bar;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The case's threads may fork at the same time: the table of children
	 * is this process's from the start, not claimed (and cleared) by
	 * whichever thread tracks a child first. */
	h_track_owner = getpid();
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cases[i].name, name))
			continue;
		H_CHECK(sock && strlen(sock) < sizeof(d.sock), "$THPSWAP_SOCKET is not set");
		strcpy(d.sock, sock);
		h_at("case %s: opening the session", name);
		h_deadline(cases[i].deadline);
		r = thpswap_open(&case_s, NULL);
		H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
		case_d = &d;
		case_pid = getpid();
		atexit(case_atexit);
		cases[i].run(case_s, &d, cases[i].variant);
		h_at("case %s: checking the arena", name);
		bar = h_barrier_map(case_s);
		h_check_stored(case_s, bar, "at the end of the case");
		H_CHECK(thpswap_unmap(case_s, bar, THPSWAP_REGION_SIZE) == 0, "unmap the barrier");
		h_at("case %s: thpswap_close", name);
		r = thpswap_close(case_s);
		case_s = NULL;
		H_CHECK(r == 0, "thpswap_close: %s", strerror(-r));
		alarm(0);
		case_passed = true;
		exit(H_PASS);
	}
	fprintf(stderr, "no case named %s\n", name);
	exit(H_FAIL);
}

int h_run_cases(int argc, char **argv, const struct h_case *cases, size_t n,
		const char *const *daemon_args)
{
	struct h_daemon d;
	char exe[PATH_MAX];
	ssize_t len;
	unsigned failed = 0, ran = 0;
	bool named = false;
	int r;

	if (argc >= 3 && !strcmp(argv[1], "--case"))
		return run_one(argv[2], cases, n);
	for (int k = 1; k < argc; k++)
		named |= argv[k][0] != '-';
	h_require_root();
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	H_CHECK(len > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[len] = 0;
	r = h_daemon_start(&d, daemon_args);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	for (size_t i = 0; i < n; i++) {
		const char *a[] = { exe, "--case", cases[i].name, NULL };
		struct pollfd p = { .events = POLLIN };
		bool want = !named, hung = false;
		pid_t pid;
		int st;

		for (int k = 1; k < argc && !want; k++)
			want = !strcmp(argv[k], cases[i].name);
		if (!want)
			continue;
		fflush(stdout);
		r = spawn(&pid, a, 1, false);
		H_CHECK(r == 0, "spawn %s --case %s: %s", exe, cases[i].name, strerror(-r));
		/* The case arms its own alarm; this bound is for a case so stuck
		 * that even its alarm cannot end it. */
		p.fd = (int)pidfd_open(pid, 0);
		if (p.fd >= 0) {
			hung = poll(&p, 1, (int)(cases[i].deadline * H_SLOWDOWN + 30) * 1000) == 0;
			close(p.fd);
		}
		if (hung)
			kill(pid, SIGKILL);
		st = h_wait(pid);
		ran++;
		if (st) {
			failed++;
			printf("case %-28s %s (exit %d)\n", cases[i].name, hung ? "HANG" : "FAIL", st);
		} else {
			printf("case %-28s PASS\n", cases[i].name);
		}
		fflush(stdout);
	}
	r = h_daemon_stop(&d);
	printf("%u of %u cases passed; thpswapd exited %d\n", ran - failed, ran, r);
	if (r)
		failed++;
	return failed ? H_FAIL : H_PASS;
}


static struct thpswap_session *sigbus_session;
static const char *sigbus_base;
static size_t sigbus_len;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct thpswap_stats st = { 0 };
	const char *a = si->si_addr;
	long region = -1;
	char msg[320];
	int n;

	if (sigbus_base && a >= sigbus_base && a < sigbus_base + sigbus_len)
		region = (long)((size_t)(a - sigbus_base) / THPSWAP_REGION_SIZE);
	if (sigbus_session)
		thpswap_get_stats(sigbus_session, &st, sizeof(st));
	n = snprintf(msg, sizeof(msg), "pid %d: SIGBUS at %p (region %ld): %llu records failed "
		     "verification (corrupt), %llu evictions, %llu restores, %llu evictions "
		     "cancelled\n", getpid(), si->si_addr, region, (unsigned long long)st.corrupt,
		     (unsigned long long)st.evictions, (unsigned long long)st.restores,
		     (unsigned long long)st.evict_cancelled);
	if (write(STDERR_FILENO, msg, (size_t)n) < 0) {
		/* dying anyway */
	}
	(void)sig;
	(void)uc;
	/* SA_RESETHAND: returning re-runs the access, which now kills us. */
}

void h_report_sigbus(struct thpswap_session *s, const void *base, size_t len)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_RESETHAND };

	sigbus_session = s;
	sigbus_base = base;
	sigbus_len = len;
	sigaction(SIGBUS, &sa, NULL);
}

static __thread sigjmp_buf read_jmp;

static void on_read_sigbus(int sig)
{
	(void)sig;
	siglongjmp(read_jmp, 1);
}

bool h_read_sigbus(const volatile char *p)
{
	struct sigaction sa = { .sa_handler = on_read_sigbus }, old;
	/* volatile: set between sigsetjmp and the siglongjmp back to it. */
	volatile bool bus = false;

	H_CHECK(sigaction(SIGBUS, &sa, &old) == 0, "sigaction: %s", strerror(errno));
	if (!sigsetjmp(read_jmp, 1))
		(void)*p;
	else
		bus = true;
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

void *h_map_data(struct thpswap_session *s, size_t nreg, int kind, uint64_t seed)
{
	void *mem;
	int r = thpswap_map(s, nreg * THPSWAP_REGION_SIZE, &mem);

	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	for (size_t i = 0; i < nreg; i++)
		thp_datagen_fill((char *)mem + i * THPSWAP_REGION_SIZE, THPSWAP_REGION_SIZE,
				 (enum thp_data_kind)kind, seed, i);
	H_CHECK(h_pmd_mapped(mem, nreg * THPSWAP_REGION_SIZE) == (long)nreg,
		"%s regions not PMD-mapped after filling", thp_datagen_name((enum thp_data_kind)kind));
	return mem;
}

void h_check_data(const void *mem, size_t nreg, int kind, uint64_t seed, const char *what)
{
	for (size_t i = 0; i < nreg; i++) {
		long bad = thp_datagen_check((const char *)mem + i * THPSWAP_REGION_SIZE,
					     THPSWAP_REGION_SIZE, (enum thp_data_kind)kind, seed, i);

		H_CHECK(bad < 0, "%s: %s region %zu differs at offset %ld", what,
			thp_datagen_name((enum thp_data_kind)kind), i, bad);
	}
}
