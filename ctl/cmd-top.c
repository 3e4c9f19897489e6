/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl top [-d SECS] [-n ITER]: a live view, one line per client
 * (resident, evicted, stored, compression ratio, restores and faults per
 * second, promotions and the memory stall the pressure loop saw), redrawn
 * every SECS with plain ANSI (home, clear).  Rates are the differences
 * between two looks over the time between them: the first frame has none.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "ctl.h"
#include "format.h"
#include "snapshot.h"

static const char top_usage[] =
	"Usage: thpswapctl top [-d SECS] [-n ITER]\n"
	"A live view per client, redrawn every SECS (default 2, at least 0.1): resident,\n"
	"evicted, stored, compression ratio, restores/s, faults/s, promotions, stall.\n"
	"  -d, --delay SECS        time between frames\n"
	"  -n, --iterations ITER   stop after ITER frames (default: until interrupted)\n";

/* Per second, from the counter @cur now and @prev a look earlier. */
static double rate(uint64_t cur, uint64_t prev, double dt)
{
	return dt > 0 && cur >= prev ? (double)(cur - prev) / dt : 0;
}

static const struct ctl_snap_client *find(const struct ctl_snapshot *s, uint64_t id)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->c[i].info.session_id == id)
			return &s->c[i];
	return NULL;
}

/* "3.2:1", or "-" with nothing stored. */
static const char *fmt_ratio(char *b, size_t sz, uint64_t regions_ram, uint64_t stored)
{
	if (!regions_ram || !stored)
		snprintf(b, sz, "-");
	else
		snprintf(b, sz, "%.1f:1", (double)regions_ram * THP_REGION_BYTES / (double)stored);
	return b;
}

static void frame(const struct ctl_snapshot *s, const struct ctl_snapshot *prev, double delay)
{
	const struct thp_msg_status_reply *st = &s->status;
	double dt = prev ? (double)(s->taken_ns - prev->taken_ns) / 1e9 : 0;
	char b[6][32];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(b[0], sizeof(b[0]), "%H:%M:%S", &tm);
	/* Home, clear: each frame replaces the last on a terminal. */
	printf("\033[H\033[2J");
	printf("thpswap top - %s - thpswapd %.*s pid %u, up %s, %u client%s, every %.1f s\n",
	       b[0], (int)sizeof(st->version), st->version, st->daemon_pid,
	       fmt_dur(b[1], sizeof(b[1]), st->uptime_ns), st->clients,
	       st->clients == 1 ? "" : "s", delay);
	printf("resident %s, evicted %s (%" PRIu64 " zero) in %s stored, ratio %s",
	       fmt_bytes(b[1], sizeof(b[1]), st->resident * THP_REGION_BYTES),
	       fmt_bytes(b[2], sizeof(b[2]), (st->evicted_ram + st->evicted_zero) * THP_REGION_BYTES),
	       st->evicted_zero, fmt_bytes(b[3], sizeof(b[3]), st->stored_bytes),
	       fmt_ratio(b[4], sizeof(b[4]), st->evicted_ram, st->stored_bytes));
	if (s->have_policy)
		printf(", promotions %" PRIu64 " (%.3f %%/min), stall %.1f ms", s->policy.promotions,
		       (double)s->policy.promo_rate_ppb / 1e7, (double)s->policy.stall_us / 1e3);
	if (prev)
		printf(", restores %.1f/s",
		       rate(s->sum.ctr[THP_C_RESTORES], prev->sum.ctr[THP_C_RESTORES], dt));
	printf("\n\n%-8s %-16s %10s %10s %10s %7s %10s %10s %8s %12s %9s\n", "PID", "COMM",
	       "RESIDENT", "EVICTED", "STORED", "RATIO", "RESTORE/S", "FAULT/S", "PROMOTED",
	       "PROMO %/MIN", "STALL MS");
	for (uint32_t i = 0; i < s->n; i++) {
		const struct ctl_snap_client *c = &s->c[i];
		const struct ctl_snap_client *p = prev ? find(prev, c->info.session_id) : NULL;
		char rs[16] = "-", fs[16] = "-", pr[16] = "-", pm[16] = "-", sm[16] = "-";
		char comm[sizeof(c->info.comm) + 1] = { 0 };

		memcpy(comm, c->info.comm, sizeof(c->info.comm));
		for (char *q = comm; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
				*q = '?'; /* no terminal escapes from a client's name */
		if (p) {
			snprintf(rs, sizeof(rs), "%.1f",
				 rate(c->ctr[THP_C_RESTORES], p->ctr[THP_C_RESTORES], dt));
			snprintf(fs, sizeof(fs), "%.1f",
				 rate(c->ctr[THP_C_FAULTS], p->ctr[THP_C_FAULTS], dt));
		}
		if (s->have_policy) {
			snprintf(pr, sizeof(pr), "%" PRIu64, c->pol.promotions);
			snprintf(pm, sizeof(pm), "%.3f", (double)c->pol.promo_rate_ppb / 1e7);
			snprintf(sm, sizeof(sm), "%.1f", (double)c->pol.stall_us / 1e3);
		}
		printf("%-8d %-16s %10s %10s %10s %7s %10s %10s %8s %12s %9s\n", c->info.pid, comm,
		       fmt_bytes(b[1], sizeof(b[1]), c->info.resident * THP_REGION_BYTES),
		       fmt_bytes(b[2], sizeof(b[2]),
				 (c->info.evicted_ram + c->info.evicted_zero) * THP_REGION_BYTES),
		       fmt_bytes(b[3], sizeof(b[3]), c->info.stored_bytes),
		       fmt_ratio(b[4], sizeof(b[4]), c->info.evicted_ram, c->info.stored_bytes),
		       rs, fs, pr, pm, sm);
	}
	if (!s->n)
		printf("no clients\n");
	fflush(stdout);
}

static void pause_for(double secs)
{
	struct timespec ts = { .tv_sec = (time_t)secs,
			       .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cmd_top(const struct ctl_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay", required_argument, NULL, 'd' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_snapshot snap[2];
	double delay = 2;
	uint64_t iter = 0;
	struct ctl_conn *c;
	const char *e;
	char *end;
	int opt, r = CTL_EXIT_OK;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":hd:n:", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			errno = 0;
			delay = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(delay >= 0.1) || delay > 86400)
				return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "top: -d: '%s' is not a "
						 "delay in seconds (0.1 to 86400)", optarg);
			break;
		case 'n':
			if (ctl_parse_u64(optarg, 10, &iter, &e) < 0 || *e || iter == 0)
				return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "top: -n: '%s' is not a "
						 "number of frames", optarg);
			break;
		case 'h':
			fputs(top_usage, stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_getopt_error(o, top_usage, "top", opt, argv);
		}
	}
	if (optind < argc)
		return ctl_usage_error(o, top_usage, "top: unexpected argument '%s'", argv[optind]);
	if (o->json)
		return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "top: a live view has no JSON "
				 "(for JSON: clients --json, stats --json; or metrics)");
	r = ctl_new(&c, o, "top");
	if (r)
		return r;
	memset(snap, 0, sizeof(snap));
	for (uint64_t k = 0; !iter || k < iter; k++) {
		struct ctl_snapshot *cur = &snap[k % 2], *prev = k ? &snap[(k + 1) % 2] : NULL;

		if (k)
			pause_for(delay);
		if (ctl_snapshot_take(c, cur) < 0) {
			r = ctl_fail(c);
			break;
		}
		frame(cur, prev, delay);
		if (prev)
			ctl_snapshot_free(prev);
	}
	ctl_snapshot_free(&snap[0]);
	ctl_snapshot_free(&snap[1]);
	ctl_free(c);
	return r;
}
