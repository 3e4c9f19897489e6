/* SPDX-License-Identifier: MIT */
/*
 * The load generators' latency histogram: one bucket per unit below 1024
 * units, then 512 buckets per power of two (0.2 % wide) up to 2^40 units.
 * The unit is the caller's (ns or us); header-only, shared by
 * thpswap-policy-load and thpswap-redis-load.
 */
#ifndef THPSWAP_LATHIST_H
#define THPSWAP_LATHIST_H

#include <stdint.h>

#define H_LINEAR 1024u
#define H_SUB 512u
#define H_BUCKETS (H_LINEAR + 31u * H_SUB)

static inline unsigned hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < H_LINEAR)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= 10 */
	if (e > 40)
		return H_BUCKETS - 1;
	return H_LINEAR + (e - 10) * H_SUB + (unsigned)((v >> (e - 9)) - H_SUB);
}

/* The lower bound of bucket @b, in the histogram's unit. */
static inline double hist_value(unsigned b)
{
	unsigned e;

	if (b < H_LINEAR)
		return b;
	e = 10 + (b - H_LINEAR) / H_SUB;
	return (double)(((uint64_t)H_SUB + (b - H_LINEAR) % H_SUB) << (e - 9));
}

#endif
