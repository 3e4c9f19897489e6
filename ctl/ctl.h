/* SPDX-License-Identifier: MIT */
#ifndef THPSWAP_CTL_H
#define THPSWAP_CTL_H

#include <stdbool.h>

/* Exit statuses of thpswapctl. */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,       /* the request failed */
	CTL_EXIT_USAGE = 2,      /* bad command line */
	CTL_EXIT_NO_DAEMON = 3,  /* thpswapd is not running (socket absent/refused) */
};

struct ctl_opts {
	const char *socket;      /* --socket, else $THPSWAP_SOCKET, else default */
	bool json;               /* --json */
};

/*
 * Say why thpswapctl fails: "thpswapctl: MESSAGE" on stderr and, with
 * --json, {"error": MESSAGE, "errno": ERR} on stdout, so that the output is
 * JSON on every path (@err a positive errno, 0 if none applies; @o NULL:
 * stderr only).  Returns @status, the exit status.
 */
int ctl_error(const struct ctl_opts *o, int status, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A usage error: ctl_error's message (EINVAL), then @usage (if not NULL)
 * on stderr.  Returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl_opts *o, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* What getopt_long (optstring starting with ':') returned for a bad option
 * @opt of command @cmd: "needs a value" or "unknown option".  Returns
 * CTL_EXIT_USAGE. */
int ctl_getopt_error(const struct ctl_opts *o, const char *usage, const char *cmd, int opt,
		     char **argv);

/* Each command parses its own arguments (argv[0] is the command name) and
 * returns an exit status. */
int cmd_kernel(const struct ctl_opts *o, int argc, char **argv);
int cmd_status(const struct ctl_opts *o, int argc, char **argv);
int cmd_clients(const struct ctl_opts *o, int argc, char **argv);
int cmd_regions(const struct ctl_opts *o, int argc, char **argv);
int cmd_evict(const struct ctl_opts *o, int argc, char **argv);
int cmd_stats(const struct ctl_opts *o, int argc, char **argv);
int cmd_pin(const struct ctl_opts *o, int argc, char **argv);     /* pin and unpin */
int cmd_top(const struct ctl_opts *o, int argc, char **argv);
int cmd_metrics(const struct ctl_opts *o, int argc, char **argv);

#endif
