/* SPDX-License-Identifier: MIT */
/*
 * Tiers: zero regions store nothing; random regions are stored at <= 2 MiB
 * plus a small header.  Against the real daemon, with several settings:
 *
 *   default            zero regions -> state zero, nothing stored; restored
 *                      as the huge zero page on a read fault (a write then
 *                      works) and as a zeroed THP on a write fault.  Random
 *                      regions stay resident (--incompressible keep).
 *                      Heap-like regions -> LZ4 (the fast profile's codec).
 *   --incompressible raw   random regions stored raw, <= 2 MiB + 4 KiB each,
 *                      byte-exact back.
 *   --profile dense / fast, --codec zstd, --zstd-level 1
 *                      heap-like regions round-trip with each codec and level.
 *
 * What the daemon reports (thpswapctl regions --json) is checked per region
 * against what the client knows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datagen.h"
#include "harness.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define N 8 /* regions of each kind */
#define SEED 0x7135

static char out[1 << 20];
static char obj[4096];

struct client {
	struct h_daemon d;
	struct thpswap_session *s;
	char pid[16];
};

static void start(struct client *c, const char *const *args, const char *what)
{
	int r;

	printf("-- thpswapd %s\n", what);
	H_CHECK(h_daemon_start(&c->d, args) == 0, "start thpswapd %s", what);
	r = thpswap_open(&c->s, NULL);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	h_report_sigbus(c->s, NULL, 0);
	snprintf(c->pid, sizeof(c->pid), "%d", getpid());
}

static void stop(struct client *c)
{
	int r;

	H_CHECK(thpswap_close(c->s) == 0, "thpswap_close");
	h_report_sigbus(NULL, NULL, 0);
	r = h_daemon_stop(&c->d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
}

static char *map_filled(struct client *c, enum thp_data_kind kind, uint64_t seed)
{
	return h_map_data(c->s, N, kind, seed);
}

static void stats(struct client *c, struct thpswap_stats *st)
{
	H_CHECK(thpswap_get_stats(c->s, st, sizeof(*st)) == 0, "thpswap_get_stats");
}

/* thpswapctl evict --all; returns the reply's "evicted", checks "failed". */
static long long evict_all(struct client *c)
{
	const char *argv[] = { "--json", "evict", "--pid", c->pid, "--all", NULL };
	long long evicted = -1, failed = -1;
	int r = h_ctl(&c->d, out, sizeof(out), argv);

	H_CHECK(r == 0, "thpswapctl evict exited %d: %s", r, out);
	H_CHECK(h_json_i64(out, "evicted", &evicted) == 0 && h_json_i64(out, "failed", &failed) == 0,
		"evict reply: %s", out);
	H_CHECK(failed == 0, "%lld regions failed to evict: %s", failed, out);
	return evicted;
}

static void regions_json(struct client *c)
{
	const char *argv[] = { "--json", "regions", "--pid", c->pid, NULL };
	int r = h_ctl(&c->d, out, sizeof(out), argv);

	H_CHECK(r == 0, "thpswapctl regions exited %d", r);
}

/*
 * The daemon's view of region @i of @mem (from the last regions_json()):
 * @state and @tier must match; the stored size is returned.  For ram, the
 * codec and level are checked when @codec is set.
 */
static long long region_is(const char *mem, size_t i, const char *state, const char *tier,
			   const char *codec, long long level)
{
	char addr[32], got[32];
	long long stored = -1, lvl;

	snprintf(addr, sizeof(addr), "0x%lx", (unsigned long)(uintptr_t)(mem + i * REG));
	H_CHECK(h_json_object(out, "addr", addr, obj, sizeof(obj)) == 0,
		"region %s missing from thpswapctl regions: %.400s", addr, out);
	H_CHECK(h_json_str(obj, "state", got, sizeof(got)) == 0 && !strcmp(got, state),
		"region %zu (%s): state %s, expected %s", i, addr, got, state);
	H_CHECK(h_json_str(obj, "tier", got, sizeof(got)) == 0 && !strcmp(got, tier),
		"region %zu (%s): tier %s, expected %s", i, addr, got, tier);
	H_CHECK(h_json_i64(obj, "stored_bytes", &stored) == 0, "no stored_bytes: %s", obj);
	if (codec) {
		H_CHECK(h_json_str(obj, "codec", got, sizeof(got)) == 0 && !strcmp(got, codec),
			"region %zu: codec %s, expected %s", i, got, codec);
		H_CHECK(h_json_i64(obj, "level", &lvl) == 0, "no level: %s", obj);
		H_CHECK(!strcmp(codec, "none") || lvl == level,
			"region %zu: zstd level %lld, expected %lld", i, lvl, level);
	}
	return stored;
}

static void check_bytes(const char *mem, enum thp_data_kind kind, uint64_t seed, const char *when)
{
	h_check_data(mem, N, kind, seed, when);
}

static void check_zero(const char *p, size_t len, const char *what)
{
	for (size_t k = 0; k < len; k++)
		H_CHECK(p[k] == 0, "%s: byte %zu is 0x%02x, not zero", what, k, (unsigned char)p[k]);
}

/* The daemon's restore latency histograms count each kind of restore. */
static void restore_counts(struct client *c, long long zero_read, long long zero_write,
			   long long ram)
{
	const char *argv[] = { "--json", "stats", "--pid", c->pid, NULL };
	const char *names[] = { "\"zero_read\":", "\"zero_write\":", "\"ram\":" };
	long long want[] = { zero_read, zero_write, ram }, got;
	int r = h_ctl(&c->d, out, sizeof(out), argv);

	H_CHECK(r == 0, "thpswapctl stats exited %d", r);
	for (size_t k = 0; k < 3; k++) {
		const char *h = strstr(out, names[k]);

		H_CHECK(h && h_json_i64(h, "count", &got) == 0 && got == want[k],
			"thpswapctl stats: %s count %lld, expected %lld", names[k], h ? got : -1,
			want[k]);
	}
}

/* Evicted zero regions come back. */
static void zero_regions(struct client *c, char *z)
{
	struct thpswap_stats st0, st;

	stats(c, &st0);
	/* Restore by read fault: the huge zero page, PMD-mapped; then a write. */
	for (size_t i = 0; i < N / 2; i++) {
		char *p = z + i * REG;

		check_zero(p, REG, "zero region after a read fault");
		H_CHECK(h_pmd_zero_mapped(p, REG) == 1,
			"zero region %zu: a read fault did not map the huge zero page "
			"(PMD-mapped: %ld)", i, h_pmd_mapped(p, REG));
		memset(p + 4096 * i, 0xa5, 100);
		H_CHECK(p[4096 * i + 99] == (char)0xa5 && p[4096 * i + 100] == 0 &&
			h_pmd_zero_mapped(p, REG) == 0, "write after the huge zero page");
		printf("zero region %zu: read fault -> huge zero page; written -> %s\n", i,
		       h_pmd_mapped(p, REG) == 1 ? "THP" : "4 KiB pages (kernel split it)");
	}
	/* Restore by write fault: a fresh THP, zero but for the write. */
	for (size_t i = N / 2; i < N; i++) {
		char *p = z + i * REG;

		p[REG - 1] = 7;
		H_CHECK(h_pmd_mapped(p, REG) == 1 && h_pmd_zero_mapped(p, REG) == 0,
			"zero region %zu: a write fault gave no THP", i);
		check_zero(p, REG - 1, "zero region after a write fault");
		H_CHECK(p[REG - 1] == 7, "the write to zero region %zu was lost", i);
	}
	stats(c, &st);
	H_CHECK(st.evicted_zero == 0 && st.stored_bytes == st0.stored_bytes &&
		st.restores == st0.restores + N,
		"after %d zero restores: %llu still zero, stored %llu -> %llu bytes, restores "
		"%llu -> %llu", N, (unsigned long long)st.evicted_zero,
		(unsigned long long)st0.stored_bytes, (unsigned long long)st.stored_bytes,
		(unsigned long long)st0.restores, (unsigned long long)st.restores);
}

/* The first daemon: default settings. */
static void phase_default(void)
{
	struct client c;
	struct thpswap_stats st;
	char *z, *rnd, *heap;
	long long ev, stored, total = 0;

	start(&c, NULL, "with default settings");
	z = map_filled(&c, THP_DATA_PATTERN, SEED);
	rnd = map_filled(&c, THP_DATA_RANDOM, SEED);
	heap = map_filled(&c, THP_DATA_HEAPMIX, SEED);
	/* Written, so resident as THPs, then zeroed. */
	for (size_t i = 0; i < N; i++)
		memset(z + i * REG, 0, REG);

	ev = evict_all(&c);
	stats(&c, &st);
	H_CHECK(ev == 2 * N, "evicted %lld regions, expected %d zero + %d heap", ev, N, N);
	H_CHECK(st.evicted_zero == N && st.evicted_ram == N && st.resident == N,
		"%llu zero, %llu ram, %llu resident; expected %d each",
		(unsigned long long)st.evicted_zero, (unsigned long long)st.evicted_ram,
		(unsigned long long)st.resident, N);
	H_CHECK(st.evict_incompressible == N, "%llu regions counted incompressible, expected %d",
		(unsigned long long)st.evict_incompressible, N);

	regions_json(&c);
	for (size_t i = 0; i < N; i++) {
		stored = region_is(z, i, "zero", "zero", NULL, 0);
		H_CHECK(stored == 0, "zero region %zu: %lld bytes stored", i, stored);
		stored = region_is(rnd, i, "resident", "null", NULL, 0);
		H_CHECK(stored == 0, "random region %zu: %lld bytes stored", i, stored);
		stored = region_is(heap, i, "ram", "ram", "lz4", 0);
		H_CHECK(stored > 0 && stored < (long long)REG * 9 / 10,
			"heap region %zu: %lld bytes stored", i, stored);
		total += stored;
	}
	H_CHECK(total == (long long)st.stored_bytes, "regions sum to %lld bytes, stats say %llu",
		total, (unsigned long long)st.stored_bytes);
	h_check_stored(c.s, NULL, "default settings, evicted");
	printf("evicted %d zero (0 bytes) and %d heap regions (%.2f MiB, ratio %.2f); "
	       "%d random kept resident\n", N, N, total / 1048576.0,
	       (double)N * REG / (double)total, N);

	zero_regions(&c, z);
	check_bytes(rnd, THP_DATA_RANDOM, SEED, "kept random");
	check_bytes(heap, THP_DATA_HEAPMIX, SEED, "restored heap");
	H_CHECK(h_pmd_mapped(heap, N * REG) == N, "restored heap regions not all PMD-mapped");
	regions_json(&c);
	for (size_t i = 0; i < N; i++) {
		region_is(z, i, "resident", "null", NULL, 0);
		region_is(heap, i, "resident", "null", NULL, 0);
	}
	/* Every first touch of the fill was a zero write restore too. */
	restore_counts(&c, N / 2, 3 * N + N / 2, N);
	stats(&c, &st);
	H_CHECK(st.resident == 3 * N && st.stored_bytes == 0 && st.corrupt == 0,
		"%llu resident, %llu bytes stored, %llu corrupt",
		(unsigned long long)st.resident, (unsigned long long)st.stored_bytes,
		(unsigned long long)st.corrupt);
	H_CHECK(thpswap_unmap(c.s, z, N * REG) == 0 && thpswap_unmap(c.s, rnd, N * REG) == 0 &&
		thpswap_unmap(c.s, heap, N * REG) == 0, "thpswap_unmap");
	stop(&c);
}

/* --incompressible raw: random regions are stored raw and come back. */
static void phase_raw(void)
{
	const char *args[] = { "--incompressible", "raw", NULL };
	struct thpswap_stats st;
	struct client c;
	long long ev, stored;
	char *rnd;

	start(&c, args, "--incompressible raw");
	rnd = map_filled(&c, THP_DATA_RANDOM, SEED + 1);
	ev = evict_all(&c);
	stats(&c, &st);
	H_CHECK(ev == N && st.evicted_ram == N, "evicted %lld (%llu in ram) of %d random regions",
		ev, (unsigned long long)st.evicted_ram, N);
	regions_json(&c);
	for (size_t i = 0; i < N; i++) {
		stored = region_is(rnd, i, "ram", "ram", "none", 0);
		H_CHECK(stored >= (long long)REG && stored <= (long long)(REG + 4096),
			"random region %zu stored raw in %lld bytes, expected 2 MiB + a header "
			"of at most 4 KiB", i, stored);
	}
	h_check_stored(c.s, NULL, "--incompressible raw, evicted");
	printf("random regions stored raw: %.1f KiB each (2 MiB + %lld B header)\n",
	       stored / 1024.0, stored - (long long)REG);
	check_bytes(rnd, THP_DATA_RANDOM, SEED + 1, "raw random");
	H_CHECK(h_pmd_mapped(rnd, N * REG) == N, "raw random regions not all PMD-mapped");
	stats(&c, &st);
	H_CHECK(st.restores >= N && st.stored_bytes == 0 && st.corrupt == 0,
		"%llu restores, %llu bytes left, %llu corrupt", (unsigned long long)st.restores,
		(unsigned long long)st.stored_bytes, (unsigned long long)st.corrupt);
	H_CHECK(thpswap_unmap(c.s, rnd, N * REG) == 0, "thpswap_unmap");
	stop(&c);
}

/* Daemon arguments @opt @val: heap-like regions round-trip with @codec at
 * @level (0 for LZ4); returns the bytes stored. */
static long long phase_profile(const char *opt, const char *val, const char *codec, long long level)
{
	const char *args[] = { opt, val, NULL };
	struct thpswap_stats st;
	struct client c;
	long long total = 0;
	char *heap, what[48];

	snprintf(what, sizeof(what), "%s %s", opt, val);
	start(&c, args, what);
	heap = map_filled(&c, THP_DATA_HEAPMIX, SEED + 2);
	H_CHECK(evict_all(&c) == N, "not all heap regions evicted");
	regions_json(&c);
	for (size_t i = 0; i < N; i++)
		total += region_is(heap, i, "ram", "ram", codec, level);
	stats(&c, &st);
	H_CHECK(total == (long long)st.stored_bytes && total < (long long)(N * REG / 2),
		"stored %lld bytes (stats: %llu)", total, (unsigned long long)st.stored_bytes);
	h_check_stored(c.s, NULL, what);
	check_bytes(heap, THP_DATA_HEAPMIX, SEED + 2, what);
	H_CHECK(h_pmd_mapped(heap, N * REG) == N, "%s: restored regions not all PMD-mapped", what);
	printf("%s: %s level %lld, %.2f MiB stored for %d MiB (ratio %.2f), restored\n",
	       what, codec, level, total / 1048576.0, N * 2, (double)N * REG / (double)total);
	H_CHECK(thpswap_unmap(c.s, heap, N * REG) == 0, "thpswap_unmap");
	stop(&c);
	return total;
}

int main(void)
{
	long long dense, fast, zstd;

	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	phase_default();
	phase_raw();
	dense = phase_profile("--profile", "dense", "zstd", 6);
	fast = phase_profile("--profile", "fast", "lz4", 0);
	zstd = phase_profile("--codec", "zstd", "zstd", -5);
	phase_profile("--zstd-level", "1", "zstd", 1);
	H_CHECK(dense < fast && dense < zstd, "dense stored %lld bytes, not less than fast's %lld and "
		"zstd -5's %lld", dense, fast, zstd);
	return H_PASS;
}
