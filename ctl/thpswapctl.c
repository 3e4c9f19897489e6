/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl: global options (before or after the command), then dispatch.
 * Each command parses the rest of its arguments itself.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "json.h"
#include "thpswap/thpswap.h"

static const char usage_text[] =
	"Usage: thpswapctl [--socket PATH] [--json] COMMAND [ARGS]\n"
	"Show and steer thpswap: kernel capabilities, clients, regions, evictions, pins, statistics.\n"
	"\n"
	"Commands:\n"
	"  kernel                  kernel capability report (no daemon needed)\n"
	"  status                  daemon summary\n"
	"  clients                 one line per client session\n"
	"  regions [--pid PID]     address, state, tier, stored size, last fault (all clients without --pid)\n"
	"  evict --pid PID [--all | --addr ADDR [--len LEN]]\n"
	"                          evict now (addresses hex 0x..., LEN with optional K/M/G suffix)\n"
	"  stats [--pid PID]       counters and restore latency percentiles (all clients summed without --pid)\n"
	"  pin PID [ADDR LEN]      never evict these regions of PID (every region without ADDR LEN)\n"
	"  unpin PID [ADDR LEN]    make them evictable again\n"
	"  top [-d SECS] [-n ITER] a live view per client, refreshed every SECS (default 2)\n"
	"  metrics [--output FILE] every number in Prometheus' text format (FILE: written atomically)\n"
	"\n"
	"Options (before or after the command):\n"
	"      --socket PATH       thpswapd's socket (default $THPSWAP_SOCKET, else " THPSWAP_DEFAULT_SOCKET ")\n"
	"      --json              machine-readable output\n"
	"  -h, --help              show this help (after a command: that command's)\n"
	"  -V, --version           show the version\n"
	"\n"
	"Exit: 0 ok, 1 failed, 2 usage, 3 daemon not running (start it with `systemctl start thpswapd`\n"
	"or run `thpswapd`).\n";

static const struct {
	const char *name;
	int (*fn)(const struct ctl_opts *o, int argc, char **argv);
} commands[] = {
	{ "kernel", cmd_kernel },
	{ "status", cmd_status },
	{ "clients", cmd_clients },
	{ "regions", cmd_regions },
	{ "evict", cmd_evict },
	{ "stats", cmd_stats },
	{ "pin", cmd_pin },
	{ "unpin", cmd_pin },
	{ "top", cmd_top },
	{ "metrics", cmd_metrics },
};

int ctl_error(const struct ctl_opts *o, int status, int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "thpswapctl: %s\n", msg);
	/* The only document on stdout: a command writes its JSON only once
	 * everything it needs has arrived. */
	if (o && o->json)
		thp_json_error(stdout, msg, err);
	return status;
}

int ctl_usage_error(const struct ctl_opts *o, const char *usage, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s", msg);
	if (usage)
		fputs(usage, stderr);
	return CTL_EXIT_USAGE;
}

int ctl_getopt_error(const struct ctl_opts *o, const char *usage, const char *cmd, int opt,
		     char **argv)
{
	/* argv[optind - 1]: the option as given (its value may follow). */
	if (opt == ':')
		return ctl_usage_error(o, usage, "%s: option '%s' needs a value", cmd, argv[optind - 1]);
	return ctl_usage_error(o, usage, "%s: unknown option '%s'", cmd, argv[optind - 1]);
}

/* --json anywhere on the line, found first: errors in the arguments before
 * it are reported as JSON too.  The value of --socket is skipped. */
static bool want_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			return true;
		if (!strcmp(argv[i], "--socket"))
			i++;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { .socket = NULL, .json = want_json(argc, argv) };
	const char *env = getenv("THPSWAP_SOCKET");
	char **cargv;
	int cargc = 0, status;
	int cmd = -1;

	/* The command's own argv: its name, then whatever is not global. */
	cargv = calloc((size_t)argc + 1, sizeof(*cargv));
	if (!cargv)
		return ctl_error(&o, CTL_EXIT_FAIL, ENOMEM, "out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			o.json = true;
		} else if (!strcmp(a, "--socket")) {
			if (i + 1 >= argc) {
				status = ctl_error(&o, CTL_EXIT_USAGE, EINVAL, "--socket needs a path");
				goto out;
			}
			o.socket = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			o.socket = a + 9;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("thpswapctl %s\n", THPSWAP_VERSION);
			status = CTL_EXIT_OK;
			goto out;
		} else if (cmd < 0 && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
			fputs(usage_text, stdout);
			status = CTL_EXIT_OK;
			goto out;
		} else if (cmd < 0 && a[0] == '-') {
			status = ctl_error(&o, CTL_EXIT_USAGE, EINVAL,
					   "unknown option '%s'; see thpswapctl --help", a);
			goto out;
		} else if (cmd < 0) {
			for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
				if (!strcmp(a, commands[k].name))
					cmd = (int)k;
			if (cmd < 0) {
				status = ctl_error(&o, CTL_EXIT_USAGE, EINVAL,
						   "unknown command '%s'; see thpswapctl --help", a);
				goto out;
			}
			cargv[cargc++] = argv[i];
		} else {
			cargv[cargc++] = argv[i];
		}
	}
	if (cmd < 0) {
		if (o.json) {
			status = ctl_error(&o, CTL_EXIT_USAGE, EINVAL,
					   "no command given; see thpswapctl --help");
			goto out;
		}
		fputs(usage_text, stderr);
		status = CTL_EXIT_USAGE;
		goto out;
	}
	if (!o.socket || !*o.socket)
		o.socket = env && *env ? env : THPSWAP_DEFAULT_SOCKET;

	status = commands[cmd].fn(&o, cargc, cargv);
	if (fflush(stdout) != 0 && status == CTL_EXIT_OK) {
		/* stdout failed: no JSON can reach it either. */
		perror("thpswapctl: writing the output");
		status = CTL_EXIT_FAIL;
	}
out:
	free(cargv);
	return status;
}
