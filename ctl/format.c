/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl's numbers: sizes, durations and latencies for people, the
 * numbers of the command line, and the names of the daemon's counters and
 * histograms (the keys of --json).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "format.h"

const char *fmt_bytes(char *b, size_t sz, uint64_t v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double x = (double)v;
	unsigned u = 0;

	while (x >= 1024 && u < sizeof(unit) / sizeof(unit[0]) - 1)
		x /= 1024, u++;
	if (u == 0)
		snprintf(b, sz, "%" PRIu64 " B", v);
	else
		snprintf(b, sz, "%.1f %s", x, unit[u]);
	return b;
}

const char *fmt_ns(char *b, size_t sz, uint64_t ns)
{
	if (ns < 1000)
		snprintf(b, sz, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(b, sz, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(b, sz, "%.2f ms", (double)ns / 1e6);
	else
		snprintf(b, sz, "%.2f s", (double)ns / 1e9);
	return b;
}

/* A long duration: 4.2s, 3m05s, 2h10m, 5d03h. */
const char *fmt_dur(char *b, size_t sz, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;

	if (s < 60)
		snprintf(b, sz, "%.1fs", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(b, sz, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(b, sz, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
	else
		snprintf(b, sz, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
	return b;
}


int ctl_parse_u64(const char *s, int base, uint64_t *out, const char **end)
{
	char *e;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &e, base);
	if (errno || e == s)
		return -EINVAL;
	*end = e;
	return 0;
}

int ctl_parse_len(const char *s, uint64_t *out)
{
	const char *e;
	uint64_t v, mul = 1;

	if (ctl_parse_u64(s, 0, &v, &e) < 0)
		return -EINVAL;
	switch (*e) {
	case 'k': case 'K': mul = 1ull << 10; e++; break;
	case 'm': case 'M': mul = 1ull << 20; e++; break;
	case 'g': case 'G': mul = 1ull << 30; e++; break;
	case 't': case 'T': mul = 1ull << 40; e++; break;
	}
	if (*e == 'i' || *e == 'B')
		e += (*e == 'i' && e[1] == 'B') ? 2 : 1;
	if (*e || (v && v * mul / v != mul))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* A bad command line: the reason (JSON too), then @usage on stderr. */

const char *const ctl_counter_names[THP_C__MAX] = {
	[THP_C_REGIONS] = "regions",
	[THP_C_RESIDENT] = "resident",
	[THP_C_EVICTED_ZERO] = "evicted_zero",
	[THP_C_EVICTED_RAM] = "evicted_ram",
	[THP_C_STORED_BYTES] = "stored_bytes",
	[THP_C_EVICTIONS] = "evictions",
	[THP_C_RESTORES] = "restores",
	[THP_C_RESTORES_PMD] = "restores_pmd",
	[THP_C_FAULTS] = "faults",
	[THP_C_EVICT_CANCELLED] = "evict_cancelled",
	[THP_C_EVICT_INCOMPRESSIBLE] = "evict_incompressible",
	[THP_C_EVICT_REFUSED] = "evict_refused",
	[THP_C_SPLIT_REPAIRED] = "split_repaired",
	[THP_C_SPLIT_LEFT] = "split_left",
	[THP_C_EAGAIN_RETRIES] = "eagain_retries",
	[THP_C_FALLBACK_4K] = "fallback_4k",
	[THP_C_CORRUPT] = "corrupt",
	[THP_C_BYTES_IN] = "bytes_in",
	[THP_C_EVICT_NS] = "evict_ns",
	[THP_C_COPY_CHILD] = "copy_child",
	[THP_C_POOL_MISS] = "pool_miss",
	[THP_C_EVICT_ZAP_PENDING] = "evict_zap_pending",
	[THP_C_EVICT_BUSY] = "evict_busy",
	[THP_C_EVICT_SPLIT] = "evict_split",
	[THP_C_EVICT_FILLED] = "evict_filled",
	[THP_C_ADOPT_LEFT_OUT] = "adopt_left_out",
	[THP_C_EVICT_4K] = "evict_4k",
	[THP_C_AGENT_BYTES] = "agent_bytes",
	[THP_C_RECONNECTS] = "reconnects",
	[THP_C_KSWAP_OUT] = "kswap_out",
	[THP_C_KSWAP_COLLAPSED] = "kswap_collapsed",
	[THP_C_KSWAP_COLLAPSE_NS] = "kswap_collapse_ns",
	[THP_C_KSWAP_NOSWAP] = "kswap_noswap",
	[THP_C_KSWAP_DROPPED] = "kswap_dropped",
	[THP_C_FILE_DEMOTED] = "file_demoted",
	[THP_C_FILE_RESTORED] = "file_restored",
	[THP_C_FILE_BYTES] = "file_bytes",
	[THP_C_FILE_FULL] = "file_full",
	[THP_C_FILE_ERRORS] = "file_errors",
	[THP_C_FILE_BAD_READS] = "file_bad_reads",
};
_Static_assert(sizeof(ctl_counter_names) / sizeof(ctl_counter_names[0]) == THP_C__MAX,
	       "a name for every counter");

const char *const ctl_hist_names[THP_H__MAX] = {
	[THP_H_ZERO_READ] = "zero_read",
	[THP_H_ZERO_WRITE] = "zero_write",
	[THP_H_RAM] = "ram",
	[THP_H_EVICT] = "evict",
};

struct hist_summary ctl_hist_summarize(const uint64_t *h)
{
	_Atomic uint64_t a[THP_HIST_BUCKETS];
	struct hist_summary s = { 0 };

	for (unsigned b = 0; b < THP_HIST_BUCKETS; b++) {
		atomic_init(&a[b], h[b]);
		s.count += h[b];
	}
	s.p50 = thp_hist_percentile_ns(a, 50);
	s.p99 = thp_hist_percentile_ns(a, 99);
	return s;
}

