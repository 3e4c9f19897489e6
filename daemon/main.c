/* SPDX-License-Identifier: MIT */
/*
 * thpswapd: settings, kernel check, the event loop, systemd integration.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "codec.h"
#include "probe.h"
#include "thpswapd.h"

void thpd_warn(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "thpswapd: %s\n", line);
}

void thpd_info(const struct thpd *d, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!d->cfg.verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "thpswapd: %s\n", line);
}

const char *thpd_escape(char *dst, size_t dstsz, const char *src, size_t srcsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (!dstsz)
		return dst;
	for (size_t i = 0; i < srcsz && src[i]; i++) {
		unsigned char ch = (unsigned char)src[i];
		char e[4];
		size_t k = 0;

		if (ch == '\\') {
			e[k++] = '\\';
			e[k++] = '\\';
		} else if (ch >= 0x20 && ch < 0x7f) {
			e[k++] = (char)ch;
		} else {
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[ch >> 4];
			e[k++] = hex[ch & 15];
		}
		if (o + k >= dstsz)
			break;
		for (size_t j = 0; j < k; j++)
			dst[o++] = e[j];
	}
	dst[o] = '\0';
	return dst;
}

void thpd_notify_status(struct thpd *d)
{
	sd_notifyf(0, "STATUS=%u client%s", d->nclients, d->nclients == 1 ? "" : "s");
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct thpd *d = h->data;

	if (d->stopping)
		return;
	d->stopping = true;
	thpd_info(d, "%s: stopping", strsignal(signum));
	sd_notify(0, "STOPPING=1");
	/* Clients are told nothing: they keep serving their own faults. */
	thpd_server_stop(d);
	uv_timer_stop(&d->policy_timer);
	uv_timer_stop(&d->sweep_timer);
	uv_timer_stop(&d->watchdog_timer);
	uv_signal_stop(&d->sigterm);
	uv_signal_stop(&d->sigint);
}

static void on_policy(uv_timer_t *t)
{
	thpd_policy_tick(t->data);
}

static void on_sweep(uv_timer_t *t)
{
	thpd_server_sweep(t->data, thp_now_ns());
}

/* The deadlines on peers are checked this often: a quarter of the HELLO
 * deadline, within [10 ms, 1 s] (the EVICT deadline is in whole seconds). */
static uint64_t sweep_ms(const struct thpd_config *c)
{
	uint64_t ms = c->hello_timeout_ms / 4;

	return ms < 10 ? 10 : ms > 1000 ? 1000 : ms;
}

static void on_watchdog(uv_timer_t *t)
{
	sd_notify(0, "WATCHDOG=1");
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Probe the kernel; --check prints the verdict (the whole report is
 * thpswapctl kernel's).  Returns 0 if usable, 69 if not, 1 if the probe
 * itself failed. */
static int check_kernel(const struct thpd_config *cfg)
{
	struct thp_caps caps;
	char msg[4096];
	int r;

	r = thp_probe(&caps, cfg->sysroot[0] ? cfg->sysroot : NULL);
	if (r < 0) {
		thpd_warn("cannot probe the kernel (sysroot '%s'): %s", cfg->sysroot, strerror(-r));
		return EXIT_FAILURE;
	}
	if (cfg->check)
		return thp_probe_verdict_print(&caps, stdout) == 0 ? 0 : THPD_EXIT_UNAVAILABLE;
	if (thp_probe_required(&caps, msg, sizeof(msg)) == 0)
		return 0;
	for (char *line = strtok(msg, "\n"); line; line = strtok(NULL, "\n"))
		fprintf(stderr, "thpswapd: cannot start: %s\n", line);
	return THPD_EXIT_UNAVAILABLE;
}

static int run(struct thpd *d)
{
	int r;

	r = thpd_server_open(d);
	if (r < 0)
		return EXIT_FAILURE;

	d->start_ns = thp_now_ns();
	d->next_session_id = 1;
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	uv_timer_init(&d->loop, &d->policy_timer);
	uv_timer_init(&d->loop, &d->sweep_timer);
	uv_timer_init(&d->loop, &d->watchdog_timer);
	d->sigterm.data = d->sigint.data = d;
	d->policy_timer.data = d->sweep_timer.data = d->watchdog_timer.data = d;

	r = thpd_server_start(d);
	if (r == 0)
		r = uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	if (r == 0)
		r = uv_signal_start(&d->sigint, on_signal, SIGINT);
	if (r == 0)
		r = uv_timer_start(&d->policy_timer, on_policy, d->cfg.interval_ms,
				   d->cfg.interval_ms);
	if (r == 0)
		r = uv_timer_start(&d->sweep_timer, on_sweep, sweep_ms(&d->cfg), sweep_ms(&d->cfg));
	if (r == 0 && sd_watchdog_enabled(0, &d->watchdog_usec) > 0) {
		uint64_t ms = d->watchdog_usec / 2000;

		r = uv_timer_start(&d->watchdog_timer, on_watchdog, 0, ms ? ms : 1);
	}
	if (r < 0) {
		thpd_warn("cannot start the event loop: %s", uv_strerror(r));
		thpd_server_stop(d);
	} else {
		sd_notify(0, "READY=1");
		thpd_notify_status(d);
		char codec[32];

		snprintf(codec, sizeof(codec), d->cfg.codec == THP_CODEC_ZSTD ? "%s level %d" : "%s",
			 thp_codec_name(d->cfg.codec), d->cfg.zstd_level);
		thpd_info(d, "listening (pid %d, %s, %u frames, budget %llu MiB, tiers ram%s%s%s)",
			  (int)getpid(), codec, d->cfg.frames,
			  (unsigned long long)(d->cfg.budget_bytes >> 20),
			  (d->cfg.tiers & THP_TIER_KERNEL) ? ",kernel" : "",
			  (d->cfg.tiers & THP_TIER_FILE) ? ",file in " : "",
			  (d->cfg.tiers & THP_TIER_FILE) ? d->cfg.file_dir : "");
		uv_run(&d->loop, UV_RUN_DEFAULT);
	}

	/* Everything still open (on a failed start) closes here. */
	close_handle((uv_handle_t *)&d->sigterm);
	close_handle((uv_handle_t *)&d->sigint);
	close_handle((uv_handle_t *)&d->policy_timer);
	close_handle((uv_handle_t *)&d->sweep_timer);
	close_handle((uv_handle_t *)&d->watchdog_timer);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	struct thpd *d;
	int status, r;

	d = calloc(1, sizeof(*d));
	if (!d) {
		thpd_warn("out of memory");
		return EXIT_FAILURE;
	}
	d->listen_fd = -1;

	status = thpd_config_load(&d->cfg, argc, argv);
	if (status != THPD_EXIT_RUN)
		goto out;
	status = check_kernel(&d->cfg);
	if (status || d->cfg.check)
		goto out;

	/* Peers that vanish mid-send must not kill us (sends use
	 * MSG_NOSIGNAL too; this also covers stderr on a closed pipe). */
	signal(SIGPIPE, SIG_IGN);
	r = uv_loop_init(&d->loop);
	if (r < 0) {
		thpd_warn("cannot create the event loop: %s", uv_strerror(r));
		status = EXIT_FAILURE;
		goto out;
	}
	status = run(d);
	r = uv_loop_close(&d->loop);
	if (r < 0)
		thpd_warn("event loop closed with handles open: %s", uv_strerror(r));
out:
	thpd_policy_free(d);
	free(d);
	return status;
}
