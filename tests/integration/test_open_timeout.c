/* SPDX-License-Identifier: MIT */
/*
 * thpswap_open gives up on a daemon that does not answer: -ETIMEDOUT after
 * THPSWAP_OPEN_TIMEOUT_MS, instead of waiting forever.  The "daemon" here is
 * a socket of our own that nobody serves:
 *
 *   silent   listening, never accepting: the connect lands in the backlog
 *            and the HELLO is taken, but no WELCOME ever comes
 *   full     listening with a full backlog: the connect itself would block
 *
 * Each open runs in a child process; the parent gives it 10 s before it
 * counts as hung (what an unbounded open does), and checks the child's
 * result: -ETIMEDOUT, after at least the timeout and well before 10 s, with
 * no fd left behind.  And one daemon that does answer:
 *
 *   refused  accepts, says ERROR -EUSERS (as thpswapd does past
 *            max-conns-per-uid) and hangs up, maybe before the HELLO is
 *            sent: the open returns -EUSERS at once either way
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include "harness.h"
#include "proto.h"
#include "thpswap/thpswap.h"
#include "util.h"

#define TIMEOUT_MS 300
#define HANG_MS    10000

static unsigned count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	H_CHECK(d, "opendir /proc/self/fd: %s", strerror(errno));
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* In the child: open against @path, print what happened; exit 0 if it
 * returned @want (-ETIMEDOUT: in [TIMEOUT_MS, HANG_MS); else before
 * TIMEOUT_MS) with no fd left. */
static int child(const char *path, int want)
{
	struct thpswap_session *s = NULL;
	unsigned before = count_fds(), after;
	uint64_t t0 = thp_now_ns(), ms;
	int r;

	r = thpswap_open(&s, path);
	ms = (thp_now_ns() - t0) / 1000000;
	after = count_fds();
	printf("  thpswap_open: %d (%s) after %llu ms; fds %u -> %u\n", r, strerror(-r),
	       (unsigned long long)ms, before, after);
	fflush(stdout);
	if (r == 0)
		thpswap_close(s);
	if (r != want || after != before)
		return H_FAIL;
	if (want == -ETIMEDOUT)
		return ms >= TIMEOUT_MS - 10 && ms < HANG_MS / 2 ? H_PASS : H_FAIL;
	return ms < TIMEOUT_MS ? H_PASS : H_FAIL;
}

static int listener(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	H_CHECK(fd >= 0, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	H_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", path,
		strerror(errno));
	H_CHECK(listen(fd, backlog) == 0, "listen: %s", strerror(errno));
	return fd;
}

/* Run child() in a process of its own; its verdict, or H_FAIL if it hung.
 * @refuse_fd: a listening socket to answer one connection on with ERROR
 * -EUSERS, or -1. */
static int run_case(const char *name, const char *path, int want, int refuse_fd)
{
	struct pollfd p = { .events = POLLIN };
	int st, hung;
	pid_t pid;

	printf("case %s:\n", name);
	fflush(stdout);
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child(path, want));
	if (refuse_fd >= 0) {
		int c = accept4(refuse_fd, NULL, NULL, SOCK_CLOEXEC);

		H_CHECK(c >= 0, "accept: %s", strerror(errno));
		H_CHECK(thp_msg_send_error(c, 0, -EUSERS, "uid 0 has 4 connections") == 0,
			"send ERROR");
		close(c);
	}
	p.fd = (int)pidfd_open(pid, 0);
	H_CHECK(p.fd >= 0, "pidfd_open: %s", strerror(errno));
	hung = poll(&p, 1, HANG_MS) == 0;
	close(p.fd);
	if (hung) {
		printf("  thpswap_open still waiting after %d ms: HANG\n", HANG_MS);
		kill(pid, SIGKILL);
	}
	H_CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	st = hung ? H_FAIL : WIFEXITED(st) ? WEXITSTATUS(st) : H_FAIL;
	printf("case %-8s %s\n", name, st == H_PASS ? "PASS" : "FAIL");
	return st;
}

int main(void)
{
	char dir[] = "/tmp/thpswap-open-timeout.XXXXXX", path[96], timeout[16];
	int failed = 0, fd, filler;

	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	H_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(timeout, sizeof(timeout), "%d", TIMEOUT_MS);
	setenv("THPSWAP_OPEN_TIMEOUT_MS", timeout, 1);

	snprintf(path, sizeof(path), "%s/silent.sock", dir);
	fd = listener(path, 16);
	failed += run_case("silent", path, -ETIMEDOUT, -1) != H_PASS;
	close(fd);
	unlink(path);

	/* Backlog 0 holds one connection: ours fills it, the next one waits. */
	snprintf(path, sizeof(path), "%s/full.sock", dir);
	fd = listener(path, 0);
	filler = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		H_CHECK(connect(filler, (struct sockaddr *)&sa, sizeof(sa)) == 0,
			"filling the backlog: %s", strerror(errno));
		/* A second non-blocking connect must find it full. */
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		H_CHECK(connect(probe, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == EAGAIN,
			"the backlog is not full: %s", strerror(errno));
		close(probe);
	}
	failed += run_case("full", path, -ETIMEDOUT, -1) != H_PASS;
	close(filler);
	close(fd);
	unlink(path);

	snprintf(path, sizeof(path), "%s/refused.sock", dir);
	fd = listener(path, 16);
	failed += run_case("refused", path, -EUSERS, fd) != H_PASS;
	close(fd);
	unlink(path);
	rmdir(dir);
	printf("%d of 3 cases passed\n", 3 - failed);
	return failed ? H_FAIL : H_PASS;
}
