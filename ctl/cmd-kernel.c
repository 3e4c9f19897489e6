/* SPDX-License-Identifier: MIT */
/* thpswapctl kernel: the kernel capability report (no daemon needed). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "kernel-report.h"

static const char kernel_usage[] =
	"Usage: thpswapctl [--json] kernel\n"
	"Reports what this kernel offers thpswap and whether thpswapd can run.\n";

/* The report for @sysroot (NULL = this machine) on @out; an exit status. */
static int kernel_report(FILE *out, bool json, const char *sysroot)
{
	struct thp_caps c;
	int r = thp_probe(&c, sysroot);

	if (r < 0) {
		fprintf(stderr, "thpswapctl: kernel: probing failed: %s\n", strerror(-r));
		return CTL_EXIT_FAIL;
	}
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
	if (r < 0) {
		fprintf(stderr, "thpswapctl: kernel: writing the report failed: %s\n", strerror(-r));
		return CTL_EXIT_FAIL;
	}
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
			fprintf(stderr, "thpswapctl: kernel: unexpected argument '%s'\n%s",
				argv[i], kernel_usage);
			return CTL_EXIT_USAGE;
		}
	}
	return kernel_report(stdout, json, NULL);
}
