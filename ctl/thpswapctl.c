/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl: global options (before or after the command), then dispatch.
 * Each command parses the rest of its arguments itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "thpswap/thpswap.h"

static const char usage_text[] =
	"Usage: thpswapctl [--socket PATH] [--json] COMMAND [ARGS]\n"
	"Show and steer thpswap: kernel capabilities, clients, regions, evictions, statistics.\n"
	"\n"
	"Commands:\n"
	"  kernel                  kernel capability report (no daemon needed)\n"
	"  status                  daemon summary\n"
	"  clients                 one line per client session\n"
	"  regions [--pid PID]     address, state, tier, stored size, last fault (all clients without --pid)\n"
	"  evict --pid PID [--all | --addr ADDR [--len LEN]]\n"
	"                          evict now (addresses hex 0x..., LEN with optional K/M/G suffix)\n"
	"  stats [--pid PID]       counters and restore latency percentiles (all clients summed without --pid)\n"
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
};

int main(int argc, char **argv)
{
	struct ctl_opts o = { .socket = NULL, .json = false };
	const char *env = getenv("THPSWAP_SOCKET");
	char **cargv;
	int cargc = 0, status;
	int cmd = -1;

	/* The command's own argv: its name, then whatever is not global. */
	cargv = calloc((size_t)argc + 1, sizeof(*cargv));
	if (!cargv) {
		fprintf(stderr, "thpswapctl: out of memory\n");
		return CTL_EXIT_FAIL;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			o.json = true;
		} else if (!strcmp(a, "--socket")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "thpswapctl: --socket needs a path\n");
				status = CTL_EXIT_USAGE;
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
			fprintf(stderr, "thpswapctl: unknown option '%s'; see thpswapctl --help\n", a);
			status = CTL_EXIT_USAGE;
			goto out;
		} else if (cmd < 0) {
			for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
				if (!strcmp(a, commands[k].name))
					cmd = (int)k;
			if (cmd < 0) {
				fprintf(stderr, "thpswapctl: unknown command '%s'; see thpswapctl --help\n", a);
				status = CTL_EXIT_USAGE;
				goto out;
			}
			cargv[cargc++] = argv[i];
		} else {
			cargv[cargc++] = argv[i];
		}
	}
	if (cmd < 0) {
		fputs(usage_text, stderr);
		status = CTL_EXIT_USAGE;
		goto out;
	}
	if (!o.socket || !*o.socket)
		o.socket = env && *env ? env : THPSWAP_DEFAULT_SOCKET;

	status = commands[cmd].fn(&o, cargc, cargv);
	if (fflush(stdout) != 0 && status == CTL_EXIT_OK) {
		perror("thpswapctl: writing the output");
		status = CTL_EXIT_FAIL;
	}
out:
	free(cargv);
	return status;
}
