/* SPDX-License-Identifier: MIT */
/*
 * thpswap_open fails cleanly at every step.  Debug builds of the library
 * make the Nth fallible step of thpswap_open fail with a chosen errno
 * (THPSWAP_FAIL_AT=N, THPSWAP_FAIL_ERRNO=E).  For N = 1, 2, ... until the
 * open succeeds, a child process (this binary, "--point N") opens a session
 * with that failure and checks that the open returns exactly -E, and leaves
 * no fd and no thread behind; then it opens, uses and closes a session for
 * real.  A crash, a leak the sanitizers see (the child exits normally, so
 * LeakSanitizer runs) or a wrong answer fails that point alone, and the test
 * names it.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "thpswap/thpswap.h"
#include "util.h"

#define MAX_POINTS 200
#define HELPERS "2"         /* three workers: the background one and two helpers */
#define OPENED 10            /* child exit: the open succeeded, no step was left */

/* Entries of @path (fds or threads; the one reading it counts too). */
static unsigned count_dir(const char *path)
{
	DIR *d = opendir(path);
	unsigned n = 0;

	if (!d) {
		fprintf(stderr, "opendir %s: %s\n", path, strerror(errno));
		exit(H_FAIL);
	}
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Threads of this process.  A joined thread may still be listed for a
 * moment while the kernel finishes its exit, and there is nothing to wait
 * on for that: look again until @want or 5 s have passed (a leaked thread
 * never goes). */
static unsigned threads_settled(unsigned want)
{
	uint64_t end = thp_now_ns() + 5000000000ull;
	unsigned n;

	while ((n = count_dir("/proc/self/task")) > want && thp_now_ns() < end)
		sched_yield();
	return n;
}

/* Distinct errnos, so that a step failing on its own is not mistaken for
 * the injected failure. */
static int errno_for(int point)
{
	static const int e[] = { ENOMEM, EOWNERDEAD, EIO, ENOTRECOVERABLE };

	return e[point % 4];
}

#define CHILD_CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "point %d: %s:%d: check failed: %s: ", point, __FILE__, __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(H_FAIL); } } while (0)

static void *park(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int run_point(int point)
{
	struct thpswap_session *s;
	unsigned fds0, tasks0, fds, tasks;
	char err[16], at[16];
	void *mem;
	int e = errno_for(point), r;
	pthread_t t;

	/* ThreadSanitizer's runtime starts a thread of its own at the first
	 * pthread_create: let that happen before the count, not in the open.
	 * Ours stays (a joined thread may still be listed for a moment). */
	CHILD_CHECK(pthread_create(&t, NULL, park, NULL) == 0, "pthread_create");
	fds0 = count_dir("/proc/self/fd");
	tasks0 = count_dir("/proc/self/task");
	snprintf(at, sizeof(at), "%d", point);
	snprintf(err, sizeof(err), "%d", e);
	setenv("THPSWAP_FAIL_AT", at, 1);
	setenv("THPSWAP_FAIL_ERRNO", err, 1);
	r = thpswap_open(&s, NULL);
	if (r == 0) {
		r = thpswap_close(s);
		CHILD_CHECK(r == 0, "thpswap_close: %s", strerror(-r));
		return OPENED;
	}
	CHILD_CHECK(r == -e, "thpswap_open returned %d (%s), not the injected -%d (%s)",
		    r, strerror(-r), e, strerror(e));
	fds = count_dir("/proc/self/fd");
	tasks = threads_settled(tasks0);
	CHILD_CHECK(fds == fds0, "%u fds before, %u after the failed open", fds0, fds);
	CHILD_CHECK(tasks == tasks0, "%u threads before, %u after the failed open", tasks0, tasks);

	/* Nothing the failure left behind stands in the way of a session. */
	unsetenv("THPSWAP_FAIL_AT");
	r = thpswap_open(&s, NULL);
	CHILD_CHECK(r == 0, "thpswap_open after the failed one: %s", strerror(-r));
	r = thpswap_map(s, THPSWAP_REGION_SIZE, &mem);
	CHILD_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	memset(mem, 0x5a, THPSWAP_REGION_SIZE);
	r = thpswap_advise(s, mem, THPSWAP_REGION_SIZE, THPSWAP_ADVICE_COLD);
	CHILD_CHECK(r >= 0, "thpswap_advise: %s", strerror(-r));
	for (size_t i = 0; i < THPSWAP_REGION_SIZE; i += 4096)
		CHILD_CHECK(((unsigned char *)mem)[i] == 0x5a, "byte %zu differs", i);
	r = thpswap_unmap(s, mem, THPSWAP_REGION_SIZE);
	CHILD_CHECK(r == 0, "thpswap_unmap: %s", strerror(-r));
	r = thpswap_close(s);
	CHILD_CHECK(r == 0, "thpswap_close: %s", strerror(-r));
	fds = count_dir("/proc/self/fd");
	tasks = threads_settled(tasks0);
	CHILD_CHECK(fds == fds0 && tasks == tasks0, "fds %u -> %u, threads %u -> %u after a session",
		    fds0, fds, tasks0, tasks);
	return 0;
}

/* Run "--point N" in a child; its exit status, or 128 + signal. */
static int spawn_point(const char *exe, int point)
{
	extern char **environ;
	char arg[16];
	const char *argv[] = { exe, "--point", arg, NULL };
	pid_t pid;
	int r;

	snprintf(arg, sizeof(arg), "%d", point);
	r = posix_spawn(&pid, exe, NULL, NULL, (char *const *)argv, environ);
	H_CHECK(r == 0, "posix_spawn: %s", strerror(r));
	r = h_wait(pid);
	H_CHECK(r >= 0, "waitpid: %s", strerror(-r));
	return r;
}

int main(int argc, char **argv)
{
	struct h_daemon d;
	char exe[4096];
	int point, r, failed = 0;
	ssize_t len;

	setenv("THPSWAP_HELPERS", HELPERS, 1);
	if (argc == 3 && !strcmp(argv[1], "--point"))
		return run_point(atoi(argv[2]));
	h_require_root();
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	H_CHECK(len > 0, "readlink /proc/self/exe: %s", strerror(errno));
	exe[len] = 0;
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	for (point = 1; point <= MAX_POINTS; point++) {
		r = spawn_point(exe, point);
		if (r == OPENED)
			break;
		if (r != 0) {
			printf("point %d: FAIL (%s %d)\n", point, r > 128 ? "signal" : "exit",
			       r > 128 ? r - 128 : r);
			failed++;
		} else {
			printf("point %d: ok\n", point);
		}
		fflush(stdout);
	}
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	if (point == 1) {
		fprintf(stderr, "skip: the library has no failure injection (built with NDEBUG)\n");
		return H_SKIP;
	}
	H_CHECK(point <= MAX_POINTS, "thpswap_open still failed at step %d", MAX_POINTS);
	printf("%d failure points, %d failed\n", point - 1, failed);
	return failed ? H_FAIL : H_PASS;
}
