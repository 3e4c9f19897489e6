/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "pagemap.h"

void h_require_root(void)
{
	char buf[128] = "";
	FILE *f;

	if (geteuid() != 0) {
		fprintf(stderr, "skip: needs root (userfaultfd with EVENT_FORK, /dev/userfaultfd)\n");
		exit(H_SKIP);
	}
	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!f || !fgets(buf, sizeof(buf), f) || strstr(buf, "[never]")) {
		fprintf(stderr, "skip: transparent huge pages are disabled here\n");
		exit(H_SKIP);
	}
	fclose(f);
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

static void stop_started(void)
{
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

int h_daemon_start(struct h_daemon *d, const char *const *args)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *bin = env_path("THPSWAPD");
	const char *argv[40];
	int fd, n = 0, r;

	snprintf(d->dir, sizeof(d->dir), "/tmp/thpswap-test.XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/control.sock", d->dir);
	if (strlen(d->sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, d->sock, strlen(d->sock) + 1);
	/* Bound and listening before the daemon runs: clients may connect at
	 * once and wait in the backlog (socket activation, as under systemd). */
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 64))
		return -errno;
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
	r = spawn(&d->pid, argv, fd, true);
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
	close(fd);
	setenv("THPSWAP_SOCKET", d->sock, 1);
	return 0;
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
