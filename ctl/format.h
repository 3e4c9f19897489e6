/* SPDX-License-Identifier: MIT */
/* thpswapctl's numbers and names (format.c). */
#ifndef THPSWAP_CTL_FORMAT_H
#define THPSWAP_CTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

/* 1.5 MiB; 12.3 us; a long duration: 4.2s, 3m05s, 2h10m, 5d03h.  Return @b. */
const char *fmt_bytes(char *b, size_t sz, uint64_t v);
const char *fmt_ns(char *b, size_t sz, uint64_t ns);
const char *fmt_dur(char *b, size_t sz, uint64_t ns);

/* An unsigned number in @base (0: C prefixes), no sign: 0 with *@out and
 * *@end after it, or -EINVAL. */
int ctl_parse_u64(const char *s, int base, uint64_t *out, const char **end);
/* A length with an optional K/M/G/T suffix (KiB, MiB... accepted): 0 or -EINVAL. */
int ctl_parse_len(const char *s, uint64_t *out);

/* The counters' and histograms' names, by enum thp_counter / thp_hist. */
extern const char *const ctl_counter_names[THP_C__MAX];
extern const char *const ctl_hist_names[THP_H__MAX];

struct hist_summary {
	uint64_t count, p50, p99;
};
/* Count, p50 and p99 of a histogram of THP_HIST_BUCKETS buckets. */
struct hist_summary ctl_hist_summarize(const uint64_t *h);

#endif
