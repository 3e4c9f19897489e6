/* SPDX-License-Identifier: MIT */
/*
 * thpswap-run [OPTIONS] -- COMMAND [ARGS]: run COMMAND with its memory
 * managed by thpswap.  It sets the environment the preload reads
 * (preload/env.h), puts libthpswap-preload.so in LD_PRELOAD and execs
 * COMMAND; exit statuses as env(1): 125 its own failure, 126 COMMAND found
 * but not run, 127 not found.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "thpswap/thpswap.h"
#include "env.h"

#define EXIT_OWN       125
#define EXIT_CANNOT    126
#define EXIT_NOT_FOUND 127

static const char usage[] =
	"Usage: thpswap-run [OPTIONS] -- COMMAND [ARGS]\n"
	"Run COMMAND with its memory managed by thpswapd (through the preload\n"
	"libthpswap-preload.so); without a daemon it runs unmanaged.\n"
	"\n"
	"  --socket PATH     the daemon's control socket (default " THPSWAP_DEFAULT_SOCKET ")\n"
	"  --min-size SIZE   adopt mappings of at least SIZE (K, M, G; default 2M)\n"
	"  --scan-ms MS      look for new mappings every MS milliseconds (default 100)\n"
	"  --no-children     neither fork children nor programs COMMAND execs\n"
	"  --quiet           say nothing on stderr, not even why memory is unmanaged\n"
	"  --help            this text\n"
	"  --version         the version\n";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "thpswap-run: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'thpswap-run --help'.\n");
	return EXIT_OWN;
}

/* LD_PRELOAD with @lib added after what is there (a sanitizer runtime,
 * say, must stay first), unless it is there already. */
static int add_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;
	int r;

	if (!old || !*old)
		return setenv("LD_PRELOAD", lib, 1);
	for (const char *p = old; (p = strstr(p, lib)); p++) {
		size_t n = strlen(lib);

		if ((p == old || p[-1] == ':' || p[-1] == ' ') &&
		    (p[n] == 0 || p[n] == ':' || p[n] == ' '))
			return 0;
	}
	if (asprintf(&v, "%s:%s", old, lib) < 0)
		return -1;
	r = setenv("LD_PRELOAD", v, 1);
	free(v);
	return r;
}

int main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_MIN_SIZE, O_SCAN_MS, O_NO_CHILDREN, O_QUIET, O_HELP, O_VERSION };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "min-size", required_argument, NULL, O_MIN_SIZE },
		{ "scan-ms", required_argument, NULL, O_SCAN_MS },
		{ "no-children", no_argument, NULL, O_NO_CHILDREN },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ 0 },
	};
	const char *lib;
	uint64_t size;
	unsigned ms;
	int o;

	/* '+': options end at COMMAND, whose own options are its own. */
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case O_SOCKET:
			if (!*optarg)
				return fail("--socket: %s", "an empty path");
			if (setenv(ENV_SOCKET, optarg, 1))
				return fail("%s", strerror(errno));
			break;
		case O_MIN_SIZE:
			if (env_parse_size(optarg, &size))
				return fail("--min-size: '%s' is not a size of 2M or more", optarg);
			if (setenv(ENV_MIN_SIZE, optarg, 1))
				return fail("%s", strerror(errno));
			break;
		case O_SCAN_MS:
			if (env_parse_ms(optarg, &ms))
				return fail("--scan-ms: '%s' is not a number from 1 to 60000", optarg);
			if (setenv(ENV_SCAN_MS, optarg, 1))
				return fail("%s", strerror(errno));
			break;
		case O_NO_CHILDREN:
			if (setenv(ENV_CHILDREN, "0", 1))
				return fail("%s", strerror(errno));
			break;
		case O_QUIET:
			if (setenv(ENV_QUIET, "1", 1))
				return fail("%s", strerror(errno));
			break;
		case O_HELP:
			fputs(usage, stdout);
			return 0;
		case O_VERSION:
			printf("thpswap-run %s\n", THPSWAP_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'thpswap-run --help'.\n");
			return EXIT_OWN;
		}
	}
	if (optind >= argc)
		return fail("%s", "no COMMAND given");
	lib = getenv(ENV_PRELOAD);
	if (!lib || !*lib)
		lib = THPSWAP_PRELOAD_PATH;
	if (access(lib, R_OK))
		return fail("cannot use the preload %s: %s", lib, strerror(errno));
	if (add_preload(lib))
		return fail("%s", strerror(errno));
	execvp(argv[optind], argv + optind);
	o = errno;
	fprintf(stderr, "thpswap-run: %s: %s\n", argv[optind], strerror(o));
	return o == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT;
}
