/* SPDX-License-Identifier: MIT */
/*
 * libthpswap-preload.so: LD_PRELOAD it (thpswap-run does) and a program that
 * never heard of thpswap gets its memory managed.  Its constructor opens a
 * session and starts adoption (lib/adopt.c); the library is linked in whole,
 * with every symbol hidden, so it neither needs nor clashes with a
 * libthpswap.so the program may use itself.
 *
 * It never makes a program fail that runs without it: whatever stands in
 * the way (no daemon, no access to userfaultfd, a kernel without what the
 * agent needs) leaves the program running unmanaged, with the reason said
 * once on stderr unless THPSWAP_QUIET says not to.
 *
 * A fork child gets a session of its own (the parent's belongs to the
 * parent, whose agent threads the child does not have); with
 * THPSWAP_CHILDREN=0 it gets none, and the preload takes itself out of
 * LD_PRELOAD so that programs exec'd later run without it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "internal.h"

/* This process's session, NULL while unmanaged. */
static struct thpswap_session *session;
/* In a fork child: the parent's session as the fork copied it.  Nothing of
 * it is ours to free (see session_forked); kept so that it is not a leak. */
static struct thpswap_session *parent_session;
static void table_full(uint32_t max_regions, uint64_t left);
static struct adopt_cfg cfg = {
	.min_size = MIN_SIZE_DEFAULT,
	.scan_ms = SCAN_MS_DEFAULT,
	.on_full = table_full,
};
static bool quiet;
static bool children = true;
/* The reason was said: not again in this process nor in its fork
 * children (exec'd programs learn it through THPSWAP_QUIET). */
static bool said;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	if (quiet || said)
		return;
	said = true;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	/* Programs this one execs (LD_PRELOAD carries over) would say the
	 * same thing again. */
	setenv(ENV_QUIET, "1", 1);
}

/* From the adoption thread, once: the program runs partly managed. */
static void table_full(uint32_t max_regions, uint64_t left)
{
	if (!quiet)
		fprintf(stderr, "thpswap: the region table is full (%u regions of 2 MiB): part of "
			"this program's memory is not managed (%llu MiB so far); raise "
			"THPSWAP_MAX_REGIONS\n", max_regions, (unsigned long long)left * 2);
}

static void explain(int err)
{
	const char *sock = getenv(ENV_SOCKET);

	if (!sock || !*sock)
		sock = THPSWAP_DEFAULT_SOCKET;
	switch (-err) {
	case ENOENT:
	case ECONNREFUSED:
		say("thpswap: not managing memory: no thpswapd listens at %s; start it "
		    "(systemctl start thpswapd.socket) or name its socket in %s\n", sock, ENV_SOCKET);
		break;
	case EACCES:
	case EPERM:
		say("thpswap: not managing memory: %s (the daemon's socket %s or "
		    "/dev/userfaultfd); run as a member of the thpswap group\n", strerror(-err), sock);
		break;
	case ENOTSUP:
	case ENOSYS:
	case ENOTTY:
		say("thpswap: not managing memory: this kernel lacks a userfaultfd feature "
		    "thpswap needs (%s); see what thpswapctl kernel reports\n", strerror(-err));
		break;
	case ECANCELED:
		say("thpswap: not managing memory: THPSWAP_DISABLE is set (this program "
		    "opted out); unset it to manage it\n");
		break;
	case EPROTO:
		say("thpswap: not managing memory: thpswapd at %s speaks another protocol "
		    "version; use the thpswapd of this thpswap's version\n", sock);
		break;
	default:
		say("thpswap: not managing memory: opening a session failed: %s; see "
		    "thpswapd's log\n", strerror(-err));
		break;
	}
}

static void start(void)
{
	struct thpswap_session *s;
	int r = thpswap_open(&s, NULL);

	if (r) {
		explain(r);
		return;
	}
	r = adopt_start(s, &cfg);
	if (r == -ENOTSUP) {
		say("thpswap: not managing memory: this thpswap is built with ThreadSanitizer, "
		    "whose memory cannot be told from the program's; use a build without it\n");
		thpswap_close(s);
		return;
	}
	if (r) {
		say("thpswap: not managing memory: adoption did not start: %s; see "
		    "thpswap-run(1)\n", strerror(-r));
		thpswap_close(s);
		return;
	}
	session = s;
}

static void in_child(void)
{
	if (session)
		parent_session = session;
	session = NULL;
	if (children)
		start();
}

/* A value of ours that cannot be used: the default, and a word on it. */
static void bad_value(const char *name, const char *v)
{
	if (!quiet)
		fprintf(stderr, "thpswap: ignoring %s=%s (see thpswap-run(1))\n", name, v);
}

static void read_env(void)
{
	const char *v;

	if ((v = getenv(ENV_QUIET)) && env_parse_bool(v, &quiet))
		quiet = false;
	if ((v = getenv(ENV_MIN_SIZE)) && *v && env_parse_size(v, &cfg.min_size))
		bad_value(ENV_MIN_SIZE, v);
	if ((v = getenv(ENV_SCAN_MS)) && *v && env_parse_ms(v, &cfg.scan_ms))
		bad_value(ENV_SCAN_MS, v);
	if ((v = getenv(ENV_CHILDREN)) && *v && env_parse_bool(v, &children)) {
		bad_value(ENV_CHILDREN, v);
		children = true;
	}
}

/* Take this library out of LD_PRELOAD (entries are separated by spaces or
 * colons), so that programs exec'd from here on run without it. */
static void leave_ld_preload(void)
{
	const char *v = getenv("LD_PRELOAD");
	Dl_info self;
	char *out, *copy, *tok, *save;
	size_t n = 0;

	if (!v || !dladdr(&session, &self) || !self.dli_fname)
		return;
	copy = strdup(v);
	out = calloc(1, strlen(v) + 1);
	if (!copy || !out)
		goto out;
	for (tok = strtok_r(copy, " :", &save); tok; tok = strtok_r(NULL, " :", &save)) {
		const char *base = strrchr(tok, '/');

		base = base ? base + 1 : tok;
		if (!strcmp(tok, self.dli_fname) || !strcmp(base, PRELOAD_NAME))
			continue;
		n += (size_t)sprintf(out + n, "%s%s", n ? ":" : "", tok);
	}
	if (n)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
out:
	free(copy);
	free(out);
}

__attribute__((constructor)) static void preload_init(void)
{
	read_env();
	if (!children)
		leave_ld_preload();
	start();
	/* The parent's session is no use in a fork child (session_forked):
	 * the child opens its own.  Registered after thpswap_open registered
	 * the library's handler, so that one runs first in the child. */
	if (pthread_atfork(NULL, NULL, in_child))
		children = false;
}
