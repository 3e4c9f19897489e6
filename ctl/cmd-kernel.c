/* SPDX-License-Identifier: MIT */
/* thpswapctl kernel: the kernel capability report (no daemon needed). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "kernel-report.h"

static const char kernel_usage[] =
	"Usage: thpswapctl [--json] kernel\n"
	"Reports what this kernel offers thpswap and whether thpswapd can run.\n";

/* Why the report failed: on stderr, and with @json as {"error", "errno"}
 * on @out (the output stays JSON).  Returns @status.  ctl_error's job, here
 * again: this file is also built into the probe's unit test alone. */
static int kernel_error(FILE *out, bool json, int status, int err, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int kernel_error(FILE *out, bool json, int status, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "kernel: ");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "thpswapctl: %s\n", msg);
	if (json)
		thp_json_error(out, msg, err);
	return status;
}

/* The report for @sysroot (NULL = this machine) on @out; an exit status. */
static int kernel_report(FILE *out, bool json, const char *sysroot)
{
	struct thp_caps c;
	int r = thp_probe(&c, sysroot);

	if (r < 0)
		return kernel_error(out, json, CTL_EXIT_FAIL, -r, "probing failed: %s", strerror(-r));
	if (json) {
		struct thp_json j;

		thp_json_init(&j, out, true);
		thp_json_begin_object(&j, NULL);
		kernel_report_json(&c, &j);
		thp_json_end_object(&j);
		r = thp_json_finish(&j);
	} else {
		kernel_report_table(&c, out);
		r = fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
	}
	if (r < 0) /* @out failed: nothing more can reach it */
		return kernel_error(out, false, CTL_EXIT_FAIL, -r, "writing the report failed: %s",
				    strerror(-r));
	return CTL_EXIT_OK;
}

int cmd_kernel(const struct ctl_opts *o, int argc, char **argv)
{
	bool json = o && o->json;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(kernel_usage, stdout);
			return CTL_EXIT_OK;
		} else {
			kernel_error(stdout, json, CTL_EXIT_USAGE, EINVAL, "unexpected argument '%s'",
				     argv[i]);
			fputs(kernel_usage, stderr);
			return CTL_EXIT_USAGE;
		}
	}
	return kernel_report(stdout, json, NULL);
}
