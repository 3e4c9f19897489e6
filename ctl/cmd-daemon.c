/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl's daemon commands: status, clients, regions, evict, stats.
 * Each opens a control connection (conn.c), sends its requests and prints
 * the replies as a table, or as JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "codec.h"
#include "conn.h"
#include "ctl.h"
#include "format.h"
#include "json.h"
#include "proto.h"
#include "util.h"
#include "thpswap/thpswap.h"

/* ---- argument parsing shared by the commands ---- */

enum { A_PID = 1 << 0, A_ALL = 1 << 1, A_ADDR = 1 << 2, A_LEN = 1 << 3, A_TIER = 1 << 4 };

struct args {
	unsigned seen;
	int32_t pid;
	uint64_t addr, len;
	bool kernel;              /* --tier kernel */
};



/* Parse the options in @allowed from argv[1..]; returns 0 or an exit status
 * (usage printed; --help: CTL_EXIT_OK with a negative sign flag via *help). */
static int parse_args(const struct ctl_opts *co, int argc, char **argv, unsigned allowed,
		      const char *usage, struct args *a, bool *help)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "addr", required_argument, NULL, 'A' },
		{ "len", required_argument, NULL, 'l' },
		{ "tier", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	int o;

	*help = false;
	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		const char *e;
		uint64_t v;
		unsigned bit = o == 'p' ? A_PID : o == 'a' ? A_ALL : o == 'A' ? A_ADDR :
			       o == 'l' ? A_LEN : o == 't' ? A_TIER : 0;

		/* By its name: argv[optind - 1] may be its value. */
		if (bit && !(allowed & bit))
			return ctl_usage_error(co, usage, "%s: option '--%s' does not apply here", cmd,
					   o == 'p' ? "pid" : o == 'a' ? "all" : o == 'A' ? "addr" :
					   o == 'l' ? "len" : "tier");
		a->seen |= bit;
		switch (o) {
		case 'p':
			if (ctl_parse_u64(optarg, 10, &v, &e) < 0 || *e || v == 0 || v > INT32_MAX)
				return ctl_usage_error(co, NULL, "%s: --pid: '%s' is not a process id",
						   cmd, optarg);
			a->pid = (int32_t)v;
			break;
		case 'a':
			break;
		case 'A':
			if (ctl_parse_u64(optarg, 16, &a->addr, &e) < 0 || *e)
				return ctl_usage_error(co, NULL, "%s: --addr: '%s' is not a hex address "
						   "(like 0x7f0000000000)", cmd, optarg);
			break;
		case 'l':
			if (ctl_parse_len(optarg, &a->len) < 0 || a->len == 0)
				return ctl_usage_error(co, NULL, "%s: --len: '%s' is not a length "
						   "(like 2M, 64M, 1G)", cmd, optarg);
			break;
		case 't':
			if (strcmp(optarg, "kernel") && strcmp(optarg, "ram"))
				return ctl_usage_error(co, NULL, "%s: --tier: '%s' is not a tier "
						   "(ram or kernel)", cmd, optarg);
			a->kernel = !strcmp(optarg, "kernel");
			break;
		case 'h':
			fputs(usage, stdout);
			*help = true;
			return CTL_EXIT_OK;
		default:
			return ctl_getopt_error(co, usage, cmd, o, argv);
		}
	}
	if (optind < argc)
		return ctl_usage_error(co, usage, "%s: unexpected argument '%s'", cmd, argv[optind]);
	return 0;
}

#define PARSE_OR_RETURN(o, argc, argv, allowed, usage, a)			\
	do {									\
		bool help_;							\
		int r_ = parse_args(o, argc, argv, allowed, usage, a, &help_);	\
		if (r_ || help_)						\
			return r_;						\
	} while (0)


/* ---- the pressure loop's numbers, shared by status, clients, stats ---- */

/* Promotions, their rate (a fraction of the working set per minute), the
 * working set and the pinned regions; null each when the daemon is too old
 * to tell (@have false). */
static void json_policy(struct thp_json *j, bool have, uint64_t promotions, uint64_t rate_ppb,
			uint64_t working_set, uint64_t pinned)
{
	if (!have) {
		thp_json_null(j, "promotions");
		thp_json_null(j, "promotion_rate");
		thp_json_null(j, "working_set");
		thp_json_null(j, "pinned");
		return;
	}
	thp_json_u64(j, "promotions", promotions);
	thp_json_double(j, "promotion_rate", (double)rate_ppb / 1e9);
	thp_json_u64(j, "working_set", working_set);
	thp_json_u64(j, "pinned", pinned);
}

/* "0.125 %/min" */
static const char *fmt_rate(char *b, size_t sz, uint64_t rate_ppb)
{
	snprintf(b, sz, "%.3f %%/min", (double)rate_ppb / 1e7);
	return b;
}

/* ---- status ---- */

static const char status_usage[] =
	"Usage: thpswapctl [--json] status\n"
	"Daemon summary: version, uptime, clients, regions and what is stored,\n"
	"and the limits on peers with how often each was hit.\n";
/* A limit's value; 0 is none. */
static const char *fmt_limit(char *b, size_t sz, uint32_t v)
{
	if (v)
		snprintf(b, sz, "%u", v);
	else
		snprintf(b, sz, "(none)");
	return b;
}

static void print_limits(const struct thp_msg_limits_reply *l, struct thp_json *j)
{
	char b[4][16];
	static const char *const what[THP_L__MAX] = {
		[THP_L_BAD_FDS] = "messages with fds they may not carry",
		[THP_L_CONNS_PER_UID] = "connections refused (max-conns-per-uid)",
		[THP_L_HELLO_TIMEOUT] = "connections without HELLO (hello-timeout)",
		[THP_L_EVICT_QUEUE] = "evictions refused (evict-queue)",
		[THP_L_EVICT_TIMEOUT] = "EVICTs not answered (evict-timeout)",
		[THP_L_NOT_PERMITTED] = "requests for other users' sessions refused (admin-group)",
	};

	if (j) {
		thp_json_begin_object(j, "limits");
		thp_json_u64(j, "max_conns_per_uid", l->max_conns_per_uid);
		thp_json_u64(j, "hello_timeout_ms", l->hello_timeout_ms);
		thp_json_u64(j, "evict_queue", l->evict_queue);
		thp_json_u64(j, "evict_timeout_s", l->evict_timeout_s);
		thp_json_begin_object(j, "hits");
		for (unsigned i = 0; i < l->n_counters; i++)
			thp_json_u64(j, thp_limit_name(i), l->ctr[i]);
		thp_json_end_object(j);
		thp_json_end_object(j);
		return;
	}
	printf("  limits         connections per uid %s, HELLO within %s ms,\n"
	       "                 evictions queued per client %s, answered within %s s\n",
	       fmt_limit(b[0], sizeof(b[0]), l->max_conns_per_uid),
	       fmt_limit(b[1], sizeof(b[1]), l->hello_timeout_ms),
	       fmt_limit(b[2], sizeof(b[2]), l->evict_queue),
	       fmt_limit(b[3], sizeof(b[3]), l->evict_timeout_s));
	for (unsigned i = 0; i < l->n_counters; i++)
		printf("  %-14s %" PRIu64 " %s\n", thp_limit_name(i), l->ctr[i], what[i]);
}

int cmd_status(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_msg_status_reply st;
	const struct thp_msg_status_reply *s = &st;
	struct thp_msg_limits_reply lim;
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	struct ctl_policy pol = { 0 };
	char b1[32], b2[32];
	int r, have_limits, have_pol = 1;

	PARSE_OR_RETURN(o, argc, argv, 0, status_usage, &a);
	r = ctl_request(&c, o, "status", THP_MSG_STATUS, NULL, 0, THP_MSG_STATUS_REPLY, &m,
			REPLY_TIMEOUT_S);
	if (r)
		return r;
	/* m points into c's buffer, which the next call reuses. */
	memcpy(&st, m.payload, sizeof(st));
	have_limits = ctl_get_limits(c, &lim);
	if (have_limits < 0 || (have_pol = ctl_get_policy(c, 0, &pol)) < 0) {
		r = ctl_fail(c);
		goto out;
	}
	if (o->json) {
		struct thp_json j;

		ctl_json_start(&j);
		thp_json_string(&j, "version", s->version);
		thp_json_u64(&j, "daemon_pid", s->daemon_pid);
		thp_json_u64(&j, "uptime_ns", s->uptime_ns);
		thp_json_u64(&j, "clients", s->clients);
		thp_json_u64(&j, "regions", s->regions);
		thp_json_u64(&j, "resident", s->resident);
		thp_json_u64(&j, "evicted_zero", s->evicted_zero);
		thp_json_u64(&j, "evicted_ram", s->evicted_ram);
		thp_json_u64(&j, "stored_bytes", s->stored_bytes);
		thp_json_u64(&j, "budget_bytes", s->budget_bytes);
		thp_json_string(&j, "codec", thp_codec_name(s->codec));
		thp_json_i64(&j, "zstd_level", s->zstd_level);
		json_policy(&j, have_pol == 0, pol.promotions, pol.promo_rate_ppb, pol.working_set,
			    pol.pinned);
		if (have_pol == 0)
			thp_json_u64(&j, "stall_us", pol.stall_us);
		else
			thp_json_null(&j, "stall_us");
		if (have_limits == 0)
			print_limits(&lim, &j);
		r = ctl_json_finish(&j);
		goto out;
	}
	printf("thpswapd %.*s, pid %u, up %s\n", (int)sizeof(s->version), s->version,
	       s->daemon_pid, fmt_dur(b1, sizeof(b1), s->uptime_ns));
	printf("  clients        %u\n", s->clients);
	printf("  regions        %" PRIu64 " (%s)\n", s->regions,
	       fmt_bytes(b1, sizeof(b1), s->regions * THP_REGION_BYTES));
	printf("  resident       %" PRIu64 " (%s)\n", s->resident,
	       fmt_bytes(b1, sizeof(b1), s->resident * THP_REGION_BYTES));
	printf("  evicted zero   %" PRIu64 "\n", s->evicted_zero);
	printf("  evicted ram    %" PRIu64 " (%s stored in %s)\n", s->evicted_ram,
	       fmt_bytes(b1, sizeof(b1), s->evicted_ram * THP_REGION_BYTES),
	       fmt_bytes(b2, sizeof(b2), s->stored_bytes));
	if (s->budget_bytes)
		printf("  budget         %s per client\n", fmt_bytes(b1, sizeof(b1), s->budget_bytes));
	else
		printf("  budget         none\n");
	if (s->codec == THP_CODEC_ZSTD)
		printf("  codec          zstd, level %d\n", s->zstd_level);
	else
		printf("  codec          %s\n", thp_codec_name(s->codec));
	if (have_pol == 0) {
		printf("  promotions     %" PRIu64 " (%s of %" PRIu64 " regions in use)\n",
		       pol.promotions, fmt_rate(b1, sizeof(b1), pol.promo_rate_ppb), pol.working_set);
		printf("  pinned         %" PRIu64 "\n", pol.pinned);
		printf("  memory stall   %" PRIu64 " us over the pressure loop's last interval\n",
		       pol.stall_us);
	}
	if (have_limits == 0)
		print_limits(&lim, NULL);
	r = CTL_EXIT_OK;
out:
	free(pol.p);
	ctl_free(c);
	return r;
}

/* ---- clients ---- */

static const char clients_usage[] =
	"Usage: thpswapctl [--json] clients\n"
	"One line per client session (only your own unless you are root or in the\n"
	"daemon's admin-group).\n";

int cmd_clients(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_client_info *ci = NULL;
	struct ctl_policy pol = { 0 };
	struct ctl_conn *c;
	struct args a;
	uint32_t n = 0;
	int r, have_pol = 1;
	char b[32];

	PARSE_OR_RETURN(o, argc, argv, 0, clients_usage, &a);
	r = ctl_new(&c, o, "clients");
	if (r)
		return r;
	if (ctl_get_clients(c, &ci, &n) < 0 || (have_pol = ctl_get_policy(c, 0, &pol)) < 0) {
		r = ctl_fail(c);
		goto out;
	}
	if (o->json) {
		struct thp_json j;

		ctl_json_start(&j);
		thp_json_begin_array(&j, "clients");
		for (uint32_t i = 0; i < n; i++) {
			const struct thp_policy_info *pi = ctl_policy_of(&pol, ci[i].session_id);
			char comm[sizeof(ci->comm) + 1] = { 0 };

			memcpy(comm, ci[i].comm, sizeof(ci[i].comm));
			thp_json_begin_object(&j, NULL);
			thp_json_i64(&j, "pid", ci[i].pid);
			thp_json_u64(&j, "uid", ci[i].uid);
			thp_json_string(&j, "comm", comm);
			thp_json_u64(&j, "session_id", ci[i].session_id);
			thp_json_u64(&j, "regions", ci[i].regions);
			thp_json_u64(&j, "resident", ci[i].resident);
			thp_json_u64(&j, "evicted_zero", ci[i].evicted_zero);
			thp_json_u64(&j, "evicted_ram", ci[i].evicted_ram);
			thp_json_u64(&j, "stored_bytes", ci[i].stored_bytes);
			thp_json_u64(&j, "faults", ci[i].faults);
			/* A session that began between the two lists: not walked yet. */
			json_policy(&j, have_pol == 0, pi ? pi->promotions : 0,
				    pi ? pi->promo_rate_ppb : 0, pi ? pi->working_set : 0,
				    pi ? pi->pinned : 0);
			thp_json_end_object(&j);
		}
		thp_json_end_array(&j);
		r = ctl_json_finish(&j);
		goto out;
	}
	if (n == 0) {
		printf("no clients\n");
	} else {
		printf("%-8s %-6s %-16s %8s %8s %8s %8s %8s %10s %10s %8s %14s %8s\n", "PID", "UID",
		       "COMM", "SESSION", "REGIONS", "RESIDENT", "ZERO", "RAM", "STORED", "FAULTS",
		       "PROMOTED", "PROMO RATE", "PINNED");
		for (uint32_t i = 0; i < n; i++) {
			const struct thp_policy_info *pi = ctl_policy_of(&pol, ci[i].session_id);
			char pr[32] = "-", rate[32] = "-", pin[32] = "-";

			if (have_pol == 0) {
				snprintf(pr, sizeof(pr), "%" PRIu64, pi ? pi->promotions : 0);
				fmt_rate(rate, sizeof(rate), pi ? pi->promo_rate_ppb : 0);
				snprintf(pin, sizeof(pin), "%" PRIu64, pi ? pi->pinned : 0);
			}
			printf("%-8d %-6u %-16.16s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			       " %8" PRIu64 " %10s %10" PRIu64 " %8s %14s %8s\n", ci[i].pid, ci[i].uid,
			       ci[i].comm, ci[i].session_id, ci[i].regions, ci[i].resident,
			       ci[i].evicted_zero, ci[i].evicted_ram,
			       fmt_bytes(b, sizeof(b), ci[i].stored_bytes), ci[i].faults, pr, rate, pin);
		}
	}
	r = CTL_EXIT_OK;
out:
	free(pol.p);
	free(ci);
	ctl_free(c);
	return r;
}

/* ---- regions ---- */

static const char regions_usage[] =
	"Usage: thpswapctl [--json] regions [--pid PID]\n"
	"Address, state, kind, tier, stored size and last fault of each managed\n"
	"region (of every client without --pid).  The kind is what the agent last\n"
	"found it to be: pmd, pte, partial, zero, nohuge, split (- not yet).  The\n"
	"tier is where its bytes are: zero, ram (stored), file (stored in the\n"
	"file tier), kernel (handed to the kernel's swap and not one PMD again\n"
	"yet), - (resident).\n";

static const char *tier_name(const struct thp_region_info *ri)
{
	if (ri->state == THP_ST_RESIDENT && ri->kswap)
		return "kernel";
	switch (ri->state) {
	case THP_ST_ZERO: return "zero";
	case THP_ST_RAM: return ri->file ? "file" : "ram";
	default: return NULL;
	}
}

static void print_region(const struct thp_region_info *ri, int32_t pid, uint64_t now,
			 struct thp_json *j, bool *header)
{
	const char *tier = tier_name(ri);
	char addr[24], b1[32], b2[48];

	snprintf(addr, sizeof(addr), "0x%" PRIx64, ri->addr);
	if (j) {
		thp_json_begin_object(j, NULL);
		thp_json_i64(j, "pid", pid);
		thp_json_string(j, "addr", addr);
		thp_json_string(j, "state", thp_state_name((enum thp_state)ri->state));
		if (ri->kind)
			thp_json_string(j, "kind", thp_kind_name(ri->kind));
		else
			thp_json_null(j, "kind");
		thp_json_string(j, "tier", tier);
		thp_json_u64(j, "stored_bytes", ri->state == THP_ST_RAM ? ri->stored_len : 0);
		if (ri->state == THP_ST_RAM) {
			thp_json_string(j, "codec", thp_codec_name(ri->codec));
			thp_json_i64(j, "level", ri->level);
		}
		if (ri->last_fault_ns && ri->last_fault_ns <= now)
			thp_json_u64(j, "last_fault_age_ns", now - ri->last_fault_ns);
		else
			thp_json_null(j, "last_fault_age_ns");
		thp_json_u64(j, "evictions", ri->evictions);
		thp_json_end_object(j);
		return;
	}
	if (!*header) {
		printf("%-8s %-18s %-10s %-7s %-5s %10s  %s\n", "PID", "ADDRESS", "STATE", "KIND",
		       "TIER", "STORED", "LAST FAULT");
		*header = true;
	}
	if (ri->last_fault_ns && ri->last_fault_ns <= now) {
		fmt_dur(b2, sizeof(b2), now - ri->last_fault_ns);
		strcat(b2, " ago");
	} else {
		strcpy(b2, "never");
	}
	printf("%-8d %-18s %-10s %-7s %-5s %10s  %s\n", pid, addr,
	       thp_state_name((enum thp_state)ri->state), thp_kind_name(ri->kind),
	       tier ? tier : "-",
	       ri->state == THP_ST_RAM ? fmt_bytes(b1, sizeof(b1), ri->stored_len) : "-", b2);
}

/* Print every region of @pid, page by page.  0, or -errno (c->err set). */
static int regions_of(struct ctl_conn *c, int32_t pid, struct thp_json *j, uint64_t *count,
		      bool *header)
{
	struct thp_msg_regions q = { .pid = pid, .cursor = 0 };

	do {
		const struct thp_msg_regions_reply *rr;
		struct thp_msg m;
		uint64_t now;
		int r;

		r = ctl_call(c, THP_MSG_REGIONS, &q, sizeof(q), THP_MSG_REGIONS_REPLY, &m);
		if (r < 0)
			return r;
		rr = m.payload;
		now = thp_now_ns();
		for (uint32_t i = 0; i < rr->n; i++)
			print_region(&rr->r[i], pid, now, j, header);
		*count += rr->n;
		/* The cursor only moves forward, so this ends. */
		if (rr->next && rr->next <= q.cursor)
			return ctl_conn_err(c, -EPROTO, "thpswapd sent a cursor that goes backwards");
		q.cursor = rr->next;
	} while (q.cursor);
	return 0;
}

int cmd_regions(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_client_info *ci = NULL;
	struct thp_json jj, *j = NULL;
	struct ctl_conn *c;
	uint32_t n = 0;
	uint64_t count = 0;
	bool header = false;
	char *doc = NULL;
	size_t doc_len = 0;
	FILE *f = NULL;
	struct args a;
	int r;

	PARSE_OR_RETURN(o, argc, argv, A_PID, regions_usage, &a);
	r = ctl_new(&c, o, "regions");
	if (r)
		return r;
	if (!(a.seen & A_PID) && ctl_get_clients(c, &ci, &n) < 0) {
		r = ctl_fail(c);
		goto out;
	}
	if (o->json) {
		/* Regions arrive page by page and a later request may fail: the
		 * document waits in memory, so that stdout gets either all of it
		 * or the error object alone. */
		f = open_memstream(&doc, &doc_len);
		if (!f) {
			r = ctl_error(o, CTL_EXIT_FAIL, errno, "regions: out of memory");
			goto out;
		}
		j = &jj;
		ctl_json_start_on(j, f);
		thp_json_begin_array(j, "regions");
	}
	r = 0;
	if (a.seen & A_PID) {
		r = regions_of(c, a.pid, j, &count, &header);
	} else {
		for (uint32_t i = 0; i < n && r == 0; i++) {
			r = regions_of(c, ci[i].pid, j, &count, &header);
			/* gone since the list, or not ours to see: leave it out */
			if (r == -ESRCH || r == -EPERM)
				r = 0;
		}
	}
	if (r < 0) {
		r = ctl_fail(c);
		goto out;
	}
	if (j) {
		thp_json_end_array(j);
		thp_json_end_object(j);
		r = thp_json_finish(j);
		if (fclose(f) != 0)
			r = -ENOMEM;
		f = NULL;
		if (r < 0) {
			r = ctl_error(o, CTL_EXIT_FAIL, ENOMEM, "regions: out of memory");
			goto out;
		}
		r = fwrite(doc, 1, doc_len, stdout) == doc_len ? CTL_EXIT_OK :
		    ctl_error(NULL, CTL_EXIT_FAIL, EIO, "writing the output failed");
		goto out;
	}
	if (count == 0)
		printf("no managed regions\n");
	r = CTL_EXIT_OK;
out:
	if (f)
		fclose(f);
	free(doc);
	free(ci);
	ctl_free(c);
	return r;
}

/* ---- evict ---- */

static const char evict_usage[] =
	"Usage: thpswapctl [--json] evict --pid PID [--all | --addr ADDR [--len LEN]]\n"
	"                                 [--tier ram|kernel]\n"
	"Evict now: every resident region of PID (--all), or the regions in\n"
	"[ADDR, ADDR+LEN) (ADDR hex 0x..., LEN with optional K/M/G suffix, default 2M).\n"
	"--tier kernel hands them to the kernel's swap instead of storing them\n"
	"(refused, and counted as kswap_noswap, where no swap device is on).\n";

int cmd_evict(const struct ctl_opts *o, int argc, char **argv)
{
	const struct thp_msg_evict_done *d;
	struct thp_msg_evict_req q = { 0 };
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	char b1[32], b2[32];
	int r;

	PARSE_OR_RETURN(o, argc, argv, A_PID | A_ALL | A_ADDR | A_LEN | A_TIER, evict_usage, &a);
	if (!(a.seen & A_PID) || !!(a.seen & A_ALL) == !!(a.seen & A_ADDR) ||
	    ((a.seen & A_LEN) && !(a.seen & A_ADDR))) {
		return ctl_usage_error(o, evict_usage, "evict: give --pid and either --all or --addr");
	}
	q.pid = a.pid;
	q.flags = a.kernel ? THP_EVICT_REQ_KERNEL : 0;
	if (a.seen & A_ADDR) {
		q.addr = a.addr;
		q.len = (a.seen & A_LEN) ? a.len : THP_REGION_BYTES;
	}
	/* Evicting many regions takes a while: wait as long as it takes. */
	r = ctl_request(&c, o, "evict", THP_MSG_EVICT_REQ, &q, sizeof(q), THP_MSG_EVICT_REPLY,
			&m, 0);
	if (r)
		return r;
	d = m.payload;
	if (o->json) {
		struct thp_json j;

		ctl_json_start(&j);
		thp_json_i64(&j, "pid", q.pid);
		thp_json_u64(&j, "evicted", d->evicted);
		thp_json_u64(&j, "skipped", d->skipped);
		thp_json_u64(&j, "failed", d->failed);
		thp_json_u64(&j, "bytes_in", d->bytes_in);
		thp_json_u64(&j, "bytes_stored", d->bytes_stored);
		r = ctl_json_finish(&j);
	} else {
		printf("pid %d: evicted %u region%s (%s -> %s stored), skipped %u, failed %u\n",
		       q.pid, d->evicted, d->evicted == 1 ? "" : "s",
		       fmt_bytes(b1, sizeof(b1), d->bytes_in),
		       fmt_bytes(b2, sizeof(b2), d->bytes_stored), d->skipped, d->failed);
		r = CTL_EXIT_OK;
	}
	/* Regions the client refused (shared after fork, pinned) fail the command. */
	if (r == CTL_EXIT_OK && d->failed)
		r = CTL_EXIT_FAIL;
	ctl_free(c);
	return r;
}

/* ---- stats ---- */

static const char stats_usage[] =
	"Usage: thpswapctl [--json] stats [--pid PID]\n"
	"Counters and restore latency percentiles (all clients summed without --pid).\n";

int cmd_stats(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_msg_stats_reply st, *s = &st;
	struct thp_msg_stats q = { 0 };
	struct ctl_policy pol = { 0 };
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	unsigned nc, nh;
	int r, have_pol;
	char b[32];

	PARSE_OR_RETURN(o, argc, argv, A_PID, stats_usage, &a);
	q.pid = a.pid;
	r = ctl_request(&c, o, "stats", THP_MSG_STATS, &q, sizeof(q), THP_MSG_STATS_REPLY, &m,
			REPLY_TIMEOUT_S);
	if (r)
		return r;
	/* m points into c's buffer, which the next call reuses. */
	memcpy(&st, m.payload, sizeof(st));
	have_pol = ctl_get_policy(c, q.pid, &pol);
	if (have_pol < 0) {
		r = ctl_fail(c);
		goto out;
	}
	nc = s->n_counters < THP_C__MAX ? s->n_counters : THP_C__MAX;
	nh = s->n_hist < THP_H__MAX ? s->n_hist : THP_H__MAX;
	if (o->json) {
		struct thp_json j;

		ctl_json_start(&j);
		thp_json_i64(&j, "pid", q.pid);
		thp_json_begin_object(&j, "counters");
		for (unsigned i = 0; i < nc; i++)
			thp_json_u64(&j, ctl_counter_names[i], s->ctr[i]);
		thp_json_end_object(&j);
		thp_json_begin_object(&j, "latency");
		for (unsigned h = 0; h < nh; h++) {
			struct hist_summary hs = ctl_hist_summarize(s->hist[h]);

			thp_json_begin_object(&j, ctl_hist_names[h]);
			thp_json_u64(&j, "count", hs.count);
			thp_json_u64(&j, "p50_ns", hs.p50);
			thp_json_u64(&j, "p99_ns", hs.p99);
			thp_json_end_object(&j);
		}
		thp_json_end_object(&j);
		json_policy(&j, have_pol == 0, pol.promotions, pol.promo_rate_ppb, pol.working_set,
			    pol.pinned);
		r = ctl_json_finish(&j);
		goto out;
	}
	if (q.pid)
		printf("pid %d\n", q.pid);
	else
		printf("all clients\n");
	for (unsigned i = 0; i < nc; i++)
		printf("  %-22s %" PRIu64 "\n", ctl_counter_names[i], s->ctr[i]);
	if (have_pol == 0) {
		printf("  %-22s %" PRIu64 " (%s of %" PRIu64 " regions in use)\n", "promotions",
		       pol.promotions, fmt_rate(b, sizeof(b), pol.promo_rate_ppb), pol.working_set);
		printf("  %-22s %" PRIu64 "\n", "pinned", pol.pinned);
	}
	printf("\n  %-22s %10s %12s %12s\n", "latency", "count", "p50", "p99");
	for (unsigned h = 0; h < nh; h++) {
		struct hist_summary hs = ctl_hist_summarize(s->hist[h]);
		char b1[32], b2[32];

		if (hs.count)
			printf("  %-22s %10" PRIu64 " %12s %12s\n", ctl_hist_names[h], hs.count,
			       fmt_ns(b1, sizeof(b1), hs.p50), fmt_ns(b2, sizeof(b2), hs.p99));
		else
			printf("  %-22s %10d %12s %12s\n", ctl_hist_names[h], 0, "-", "-");
	}
	r = CTL_EXIT_OK;
out:
	free(pol.p);
	ctl_free(c);
	return r;
}
