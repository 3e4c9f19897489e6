/* SPDX-License-Identifier: MIT */
/*
 * Deterministic synthetic data for the demo, the tests and the benchmark.
 * The same (kind, seed, index) always gives the same bytes, so a test can
 * regenerate what it expects instead of keeping a shadow copy.
 */
#ifndef THPSWAP_DATAGEN_H
#define THPSWAP_DATAGEN_H

#include <stddef.h>
#include <stdint.h>

enum thp_data_kind {
	THP_DATA_ZERO = 0,
	THP_DATA_RANDOM,   /* incompressible */
	THP_DATA_TEXT,     /* English-like words and punctuation */
	THP_DATA_CODE,     /* x86-64-like instruction bytes */
	THP_DATA_INTS,     /* small integers and pointers, like heap objects */
	THP_DATA_HEAPMIX,  /* per 4 KiB page a realistic mix of the above */
	THP_DATA_PATTERN,  /* every 8 bytes depend on seed and offset: cheap to check */
	THP_DATA__MAX
};

/*
 * Fill @len bytes (a multiple of 4096) at @buf with region number @index of
 * @kind.  THP_DATA_HEAPMIX's composition per 4 KiB page is stated in
 * thp_datagen_describe().
 */
void thp_datagen_fill(void *buf, size_t len, enum thp_data_kind kind,
		      uint64_t seed, uint64_t index);

/* First offset where @buf differs from what thp_datagen_fill would write, or
 * -1 when equal. */
long thp_datagen_check(const void *buf, size_t len, enum thp_data_kind kind,
		       uint64_t seed, uint64_t index);

const char *thp_datagen_name(enum thp_data_kind kind);
/* Returns the kind for a name ("zero", "random", "text", "code", "ints",
 * "heapmix", "pattern"), or -EINVAL. */
int thp_datagen_parse(const char *name);
/* One line saying what the kind holds, for reports. */
const char *thp_datagen_describe(enum thp_data_kind kind);

#endif
