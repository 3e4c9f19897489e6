/* SPDX-License-Identifier: MIT */
/* What both libFuzzer harnesses need: a check that aborts (libFuzzer then
 * saves the input), and the number of open fds, to catch any the code under
 * test leaves open.  Failures are reported through the sanitizer's report
 * fd, which stays open when libFuzzer discards stderr (-close_fd_mask=2,
 * for the daemon's log lines). */
#ifndef THPSWAP_FUZZ_UTIL_H
#define THPSWAP_FUZZ_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sanitizer/common_interface_defs.h>

static inline void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void fz_fail(const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(msg);
	abort();
}

#define FZ_CHECK(cond)								\
	do {									\
		if (!(cond))							\
			fz_fail("%s:%d: check failed: %s", __FILE__, __LINE__,	\
				#cond);						\
	} while (0)

/* Open fds of this process (the directory's own fd not counted); with
 * @list, "fd -> target" lines for each appended to it. */
static inline int fz_fds(char *list, size_t size)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!dir)
		fz_fail("cannot open /proc/self/fd");
	while ((e = readdir(dir))) {
		char path[300], target[256];
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		n++;
		if (!list)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		target[len < 0 ? 0 : len] = '\0';
		snprintf(list + strlen(list), size - strlen(list), "\n  fd %s -> %s", e->d_name,
			 target);
	}
	closedir(dir);
	return n - 1;
}

static inline int fz_count_fds(void)
{
	return fz_fds(NULL, 0);
}

/* As many fds open as @before, else fail listing them. */
#define FZ_CHECK_FDS(before)							\
	do {									\
		if (fz_count_fds() != (before)) {				\
			char list_[3000] = "";					\
										\
			fz_fds(list_, sizeof(list_));				\
			fz_fail("%s:%d: %d fds open before, now:%s", __FILE__,	\
				__LINE__, (before), list_);			\
		}								\
	} while (0)

#endif
