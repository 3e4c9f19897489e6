/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl metrics [--output FILE]: every number thpswapd shows this peer,
 * in Prometheus' text exposition format (version 0.0.4): a HELP and a TYPE
 * line before each family, names thpswap_..., counters ending in _total,
 * per-client families labelled with the client's pid and command name.  To
 * stdout, or to FILE through a temporary file renamed over it, so that
 * node_exporter's textfile collector never reads half of one.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "ctl.h"
#include "format.h"
#include "snapshot.h"

static const char metrics_usage[] =
	"Usage: thpswapctl metrics [--output FILE]\n"
	"Every number thpswapd shows, in Prometheus' text format: the daemon, the sums over\n"
	"the clients, each client (labels pid, client), the pressure loop and the limits.\n"
	"  -o, --output FILE   write FILE (atomically: a temporary file renamed over it),\n"
	"                      e.g. for node_exporter's textfile collector (*.prom)\n";

/* How each counter of the arena is exported. */
static const struct {
	const char *name;         /* without thpswap_ / thpswap_client_ */
	bool counter;
	const char *help;
} counter_metrics[THP_C__MAX] = {
	[THP_C_REGIONS] = { "regions", false, "Managed 2 MiB regions." },
	[THP_C_RESIDENT] = { "resident_regions", false, "Regions mapped as memory now." },
	[THP_C_EVICTED_ZERO] = { "evicted_zero_regions", false, "Regions evicted as all-zero." },
	[THP_C_EVICTED_RAM] = { "evicted_ram_regions", false, "Regions held compressed in RAM." },
	[THP_C_STORED_BYTES] = { "stored_bytes", false, "Bytes stored for evicted regions." },
	[THP_C_EVICTIONS] = { "evictions_total", true, "Completed evictions." },
	[THP_C_RESTORES] = { "restores_total", true, "Regions brought back." },
	[THP_C_RESTORES_PMD] = { "restores_pmd_total", true,
				 "Restores checked PMD-mapped afterwards." },
	[THP_C_FAULTS] = { "faults_total", true, "Fault messages served." },
	[THP_C_EVICT_CANCELLED] = { "evict_cancelled_total", true,
				    "Evictions cancelled by a fault meanwhile." },
	[THP_C_EVICT_INCOMPRESSIBLE] = { "evict_incompressible_total", true,
					 "Evictions that kept a region resident: not worth storing." },
	[THP_C_EVICT_REFUSED] = { "evict_refused_total", true,
				  "Evictions refused: shared with a fork child, or pinned." },
	[THP_C_SPLIT_REPAIRED] = { "split_repaired_total", true,
				   "Restores found split and collapsed again." },
	[THP_C_SPLIT_LEFT] = { "split_left_total", true, "Restores found split and left so." },
	[THP_C_EAGAIN_RETRIES] = { "eagain_retries_total", true,
				   "Ioctls retried after pending events." },
	[THP_C_FALLBACK_4K] = { "fallback_4k_total", true, "Faults served with 4 KiB pages." },
	[THP_C_CORRUPT] = { "corrupt_total", true, "Records that failed verification." },
	[THP_C_BYTES_IN] = { "bytes_in_total", true, "Uncompressed bytes evicted to RAM." },
	[THP_C_EVICT_NS] = { "evict_seconds_total", true, "Time spent evicting." },
	[THP_C_COPY_CHILD] = { "copy_child_total", true,
			       "Regions of fork children filled by copying." },
	[THP_C_POOL_MISS] = { "pool_miss_total", true,
			      "Restores that found no pre-faulted huge page." },
	[THP_C_EVICT_ZAP_PENDING] = { "evict_zap_pending_total", true,
				      "Evictions left alone: a zap may not have landed." },
	[THP_C_EVICT_BUSY] = { "evict_busy_total", true,
			       "Evictions left alone: the region was busy." },
	[THP_C_EVICT_SPLIT] = { "evict_split_total", true,
				"Evictions left alone: the region could not be made one PMD." },
	[THP_C_EVICT_FILLED] = { "evict_filled_total", true,
				 "Evictions that filled holes with zeros first." },
	[THP_C_ADOPT_LEFT_OUT] = { "adopt_left_out", false,
				   "Blocks adoption found no room for at its last look." },
	[THP_C_EVICT_4K] = { "evict_4k_total", true,
			     "Regions evicted in 4 KiB pages (no huge page for their mapping)." },
	[THP_C_AGENT_BYTES] = { "agent_bytes", false,
				"Memory the agent itself holds resident (pool, staging, tables)." },
	[THP_C_RECONNECTS] = { "reconnects_total", true,
			       "Sessions a restarted daemon adopted after the one before went away." },
	[THP_C_KSWAP_OUT] = { "kswap_out_total", true,
			      "Regions handed to the kernel's swap (the kernel tier)." },
	[THP_C_KSWAP_COLLAPSED] = { "kswap_collapsed_total", true,
				    "Regions back from the kernel's swap in 4 KiB pages, collapsed "
				    "into one huge page." },
	[THP_C_KSWAP_COLLAPSE_NS] = { "kswap_collapse_seconds_total", true,
				      "Time from a first page seen back to one huge page, summed over "
				      "the collapses." },
	[THP_C_KSWAP_NOSWAP] = { "kswap_noswap_total", true,
				 "Regions not handed to the kernel: no swap device." },
	[THP_C_KSWAP_DROPPED] = { "kswap_dropped_total", true,
				  "Regions of the kernel tier no longer followed without a collapse "
				  "(whole again by other means, evicted, zapped, no huge page)." },
	[THP_C_FILE_DEMOTED] = { "file_demoted_total", true,
				 "Stored regions moved from RAM to the file tier." },
	[THP_C_FILE_RESTORED] = { "file_restored_total", true,
				  "Regions restored from the file tier." },
	[THP_C_FILE_BYTES] = { "file_bytes", false, "Stored bytes held in the file tier." },
	[THP_C_FILE_FULL] = { "file_full_total", true,
			      "Demotions refused: the file tier's cap or its file system full." },
	[THP_C_FILE_ERRORS] = { "file_errors_total", true,
				"Demotions that failed otherwise (I/O errors; the tier unavailable)." },
	[THP_C_FILE_BAD_READS] = { "file_bad_reads_total", true,
				   "Reads of the file tier that failed or did not verify (region poisoned)." },
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A counter's value in its metric's unit. */
static void value(FILE *f, unsigned i, uint64_t v)
{
	if (i == THP_C_EVICT_NS || i == THP_C_KSWAP_COLLAPSE_NS)
		fprintf(f, "%.9f\n", (double)v / 1e9);
	else
		fprintf(f, "%" PRIu64 "\n", v);
}

/* A label value: backslash, quote and newline escaped; what is not
 * printable ASCII (a client's comm is any bytes) becomes '?'. */
static void label(FILE *f, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\\' || ch == '"')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else
			fputc(ch >= 0x20 && ch < 0x7f ? ch : '?', f);
	}
}

static void client_labels(FILE *f, const struct ctl_snap_client *c)
{
	fprintf(f, "{pid=\"%d\",client=\"", (int)c->info.pid);
	label(f, c->info.comm, sizeof(c->info.comm));
	fputs("\"}", f);
}

static void print_counters(FILE *f, const struct ctl_snapshot *s)
{
	char name[96], help[160];

	for (unsigned i = 0; i < s->n_counters; i++) {
		const char *t = counter_metrics[i].counter ? "counter" : "gauge";

		snprintf(name, sizeof(name), "thpswap_%s", counter_metrics[i].name);
		snprintf(help, sizeof(help), "%s Summed over the clients.", counter_metrics[i].help);
		family(f, name, t, help);
		fprintf(f, "%s ", name);
		value(f, i, s->sum.ctr[i]);
	}
	for (unsigned i = 0; i < s->n_counters; i++) {
		const char *t = counter_metrics[i].counter ? "counter" : "gauge";

		snprintf(name, sizeof(name), "thpswap_client_%s", counter_metrics[i].name);
		snprintf(help, sizeof(help), "%s Per client.", counter_metrics[i].help);
		family(f, name, t, help);
		for (uint32_t k = 0; k < s->n; k++) {
			fputs(name, f);
			client_labels(f, &s->c[k]);
			fputc(' ', f);
			value(f, i, s->c[k].ctr[i]);
		}
	}
}

static void print_latency(FILE *f, const struct ctl_snapshot *s)
{
	family(f, "thpswap_latency_seconds", "gauge",
	       "Restore (and eviction) latency percentiles per kind, as bucket upper bounds; "
	       "summed over the clients.");
	for (unsigned h = 0; h < s->n_hist; h++) {
		struct hist_summary hs = ctl_hist_summarize(s->sum.hist[h]);

		fprintf(f, "thpswap_latency_seconds{kind=\"%s\",quantile=\"0.5\"} %.9f\n",
			ctl_hist_names[h], (double)hs.p50 / 1e9);
		fprintf(f, "thpswap_latency_seconds{kind=\"%s\",quantile=\"0.99\"} %.9f\n",
			ctl_hist_names[h], (double)hs.p99 / 1e9);
	}
	family(f, "thpswap_latency_events_total", "counter",
	       "Restores (and evictions) timed per kind, summed over the clients.");
	for (unsigned h = 0; h < s->n_hist; h++)
		fprintf(f, "thpswap_latency_events_total{kind=\"%s\"} %" PRIu64 "\n",
			ctl_hist_names[h], ctl_hist_summarize(s->sum.hist[h]).count);
}

static void print_policy(FILE *f, const struct ctl_snapshot *s)
{
	const struct ctl_policy *p = &s->policy;

	if (!s->have_policy)
		return;
	family(f, "thpswap_promotions_total", "counter",
	       "Regions restored within promotion-window of their eviction, summed over the clients.");
	fprintf(f, "thpswap_promotions_total %" PRIu64 "\n", p->promotions);
	family(f, "thpswap_promotion_rate", "gauge",
	       "Promotions per minute as a fraction of the working set, averaged over a minute.");
	fprintf(f, "thpswap_promotion_rate %.9f\n", (double)p->promo_rate_ppb / 1e9);
	family(f, "thpswap_working_set_regions", "gauge",
	       "Regions in use (resident or evicted) at the pressure loop's last interval.");
	fprintf(f, "thpswap_working_set_regions %" PRIu64 "\n", p->working_set);
	family(f, "thpswap_pinned_regions", "gauge", "Regions pinned (never evicted).");
	fprintf(f, "thpswap_pinned_regions %" PRIu64 "\n", p->pinned);
	family(f, "thpswap_memory_stall_seconds", "gauge",
	       "The system's memory stall (PSI some) over the pressure loop's last interval.");
	fprintf(f, "thpswap_memory_stall_seconds %.6f\n", (double)p->stall_us / 1e6);

	family(f, "thpswap_client_promotions_total", "counter",
	       "Regions restored within promotion-window of their eviction, per client.");
	for (uint32_t k = 0; k < s->n; k++) {
		fputs("thpswap_client_promotions_total", f);
		client_labels(f, &s->c[k]);
		fprintf(f, " %" PRIu64 "\n", s->c[k].pol.promotions);
	}
	family(f, "thpswap_client_promotion_rate", "gauge",
	       "Promotions per minute as a fraction of the client's working set.");
	for (uint32_t k = 0; k < s->n; k++) {
		fputs("thpswap_client_promotion_rate", f);
		client_labels(f, &s->c[k]);
		fprintf(f, " %.9f\n", (double)s->c[k].pol.promo_rate_ppb / 1e9);
	}
	family(f, "thpswap_client_working_set_regions", "gauge",
	       "The client's regions in use at the pressure loop's last interval.");
	for (uint32_t k = 0; k < s->n; k++) {
		fputs("thpswap_client_working_set_regions", f);
		client_labels(f, &s->c[k]);
		fprintf(f, " %" PRIu64 "\n", s->c[k].pol.working_set);
	}
	family(f, "thpswap_client_pinned_regions", "gauge", "The client's pinned regions.");
	for (uint32_t k = 0; k < s->n; k++) {
		fputs("thpswap_client_pinned_regions", f);
		client_labels(f, &s->c[k]);
		fprintf(f, " %" PRIu64 "\n", s->c[k].pol.pinned);
	}
	family(f, "thpswap_client_memory_stall_seconds", "gauge",
	       "The client's memory stall (its cgroup's, else the system's) over the last interval.");
	for (uint32_t k = 0; k < s->n; k++) {
		fputs("thpswap_client_memory_stall_seconds", f);
		client_labels(f, &s->c[k]);
		fprintf(f, " %.6f\n", (double)s->c[k].pol.stall_us / 1e6);
	}
}

static void print_daemon(FILE *f, const struct ctl_snapshot *s)
{
	const struct thp_msg_status_reply *st = &s->status;

	family(f, "thpswap_daemon_info", "gauge", "thpswapd's version and pid (always 1).");
	fprintf(f, "thpswap_daemon_info{version=\"");
	label(f, st->version, sizeof(st->version));
	fprintf(f, "\",pid=\"%u\"} 1\n", st->daemon_pid);
	family(f, "thpswap_daemon_uptime_seconds", "gauge", "Time since thpswapd started.");
	fprintf(f, "thpswap_daemon_uptime_seconds %.3f\n", (double)st->uptime_ns / 1e9);
	family(f, "thpswap_clients", "gauge", "Client sessions.");
	fprintf(f, "thpswap_clients %u\n", st->clients);
	family(f, "thpswap_budget_bytes", "gauge", "Per-client resident budget (0: none).");
	fprintf(f, "thpswap_budget_bytes %" PRIu64 "\n", st->budget_bytes);
	if (!s->have_limits)
		return;
	family(f, "thpswap_limit_hits_total", "counter",
	       "Times each limit on peers was hit since thpswapd started.");
	for (unsigned i = 0; i < s->limits.n_counters; i++)
		fprintf(f, "thpswap_limit_hits_total{limit=\"%s\"} %" PRIu64 "\n",
			thp_limit_name(i), s->limits.ctr[i]);
}

/* Write @doc to @path through a temporary file in the same directory,
 * renamed over it.  0 or -errno. */
static int write_atomically(const char *path, const char *doc, size_t len)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 8);
	int fd, r = 0;
	FILE *f;

	if (!tmp)
		return -ENOMEM;
	/* Not *.prom: the collector skips it while it is being written. */
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", 8);
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = -errno;
		free(tmp);
		return r;
	}
	if (fchmod(fd, 0644) < 0)
		r = -errno;
	f = r ? NULL : fdopen(fd, "w");
	if (!f) {
		r = r ? r : -errno;
		close(fd);
	} else {
		if (fwrite(doc, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) < 0)
			r = errno ? -errno : -EIO;
		if (fclose(f) != 0 && !r)
			r = -errno;
	}
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	free(tmp);
	return r;
}

int cmd_metrics(const struct ctl_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl_snapshot s;
	const char *output = NULL;
	struct ctl_conn *c;
	char *doc = NULL;
	size_t len = 0;
	FILE *f;
	int opt, r;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":ho:", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			output = optarg;
			break;
		case 'h':
			fputs(metrics_usage, stdout);
			return CTL_EXIT_OK;
		default:
			return ctl_getopt_error(o, metrics_usage, "metrics", opt, argv);
		}
	}
	if (optind < argc)
		return ctl_usage_error(o, metrics_usage, "metrics: unexpected argument '%s'", argv[optind]);
	if (o->json)
		return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "metrics: the output is Prometheus' "
				 "text format, not JSON (for JSON: status, clients, stats --json)");
	r = ctl_new(&c, o, "metrics");
	if (r)
		return r;
	if (ctl_snapshot_take(c, &s) < 0) {
		r = ctl_fail(c);
		ctl_free(c);
		return r;
	}
	ctl_free(c);
	/* The whole document first: a later failure writes nothing. */
	f = open_memstream(&doc, &len);
	if (!f) {
		ctl_snapshot_free(&s);
		return ctl_error(o, CTL_EXIT_FAIL, errno, "metrics: out of memory");
	}
	print_daemon(f, &s);
	print_counters(f, &s);
	print_latency(f, &s);
	print_policy(f, &s);
	ctl_snapshot_free(&s);
	if (fclose(f) != 0) {
		free(doc);
		return ctl_error(o, CTL_EXIT_FAIL, ENOMEM, "metrics: out of memory");
	}
	if (output) {
		r = write_atomically(output, doc, len);
		if (r < 0)
			r = ctl_error(o, CTL_EXIT_FAIL, -r, "metrics: cannot write %s: %s", output,
				      strerror(-r));
	} else {
		r = fwrite(doc, 1, len, stdout) == len ? CTL_EXIT_OK :
		    ctl_error(NULL, CTL_EXIT_FAIL, EIO, "writing the output failed");
	}
	free(doc);
	return r;
}
