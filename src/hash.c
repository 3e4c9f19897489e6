/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "hash.h"

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix(uint64_t acc, uint64_t v)
{
	acc += v * 0xc2b2ae3d27d4eb4fULL;
	return rotl(acc, 31) * 0x9e3779b185ebca87ULL;
}

/* Four independent lanes so the multiplies pipeline; xxh64-like finish. */
uint64_t thp_hash64(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t a[4] = { 1, 2, 3, 4 }, h, v;
	size_t i = 0;

	for (; i + 32 <= len; i += 32)
		for (int l = 0; l < 4; l++) {
			memcpy(&v, b + i + 8 * l, 8);
			a[l] = mix(a[l], v);
		}
	h = rotl(a[0], 1) + rotl(a[1], 7) + rotl(a[2], 12) + rotl(a[3], 18) + len;
	for (; i + 8 <= len; i += 8) {
		memcpy(&v, b + i, 8);
		h = mix(h, v);
	}
	for (; i < len; i++)
		h = mix(h, b[i]);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}
