/* SPDX-License-Identifier: MIT */
/*
 * What a session costs its client.  Measured from outside the library (the
 * process's RssAnon) and from inside (the agent_bytes gauge thpswapctl
 * stats shows, what the agent's own ranges hold resident):
 *
 *   idle     a client managing 2 MiB holds at most 4 MiB besides it: no
 *            pre-faulted pool while it restores nothing (once its first
 *            touch, served from the pool, is THPSWAP_POOL_IDLE_MS old)
 *   burst    restores fill the pool (the agent keeps huge pages ready while
 *            restores come), and the idle client gives it back once
 *            THPSWAP_POOL_IDLE_MS has passed without one; every byte of
 *            the region reads right throughout
 *   floor    a client managing 200 regions keeps 1 % of them (2 pool
 *            huge pages) across idle periods, no more
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define R        THPSWAP_REGION_SIZE
#define MIB      (1024 * 1024)
#define IDLE_MS  1000
#define POOL     8        /* thpswapd's default pool_slots */

/* A sanitizer's runtime maps shadow and per-thread state of its own for
 * the agent's threads: the process's RssAnon says nothing about thpswap
 * there (the agent_bytes gauge still does). */
static bool sanitized(void)
{
	const char *rt = getenv("THPSWAP_TEST_SANITIZER_RT");

	return rt && *rt;
}

/* RssAnon of this process, in bytes. */
static size_t rss_anon(void)
{
	char line[256];
	size_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	H_CHECK(f, "open /proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %zu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

/* The agent_bytes gauge of this process's session, as thpswapctl shows it. */
static long long agent_bytes(const struct h_daemon *d)
{
	char pid[16], out[16384];
	const char *argv[] = { "--json", "stats", "--pid", pid, NULL };

	snprintf(pid, sizeof(pid), "%d", getpid());
	H_CHECK(h_ctl(d, out, sizeof(out), argv) == 0, "thpswapctl stats --pid %s failed: %s", pid, out);
	return h_json_u64(out, "agent_bytes");
}

/* Wait (polling, at most @secs) until the gauge satisfies lo <= v <= hi;
 * the last value seen. */
static long long await_bytes(const struct h_daemon *d, long long lo, long long hi, unsigned secs)
{
	uint64_t end = thp_now_ns() + (uint64_t)secs * 1000000000ull * h_slowdown();
	long long v;

	do {
		v = agent_bytes(d);
		if (v >= lo && v <= hi)
			return v;
		usleep(50 * 1000); /* the gauge is counted at most once a second */
	} while (thp_now_ns() < end);
	return v;
}

/* Can a huge page be had right now?  (A pool fills only with those.) */
static bool thp_available(void)
{
	void *p = thp_mmap_aligned(R, R, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	bool ok;

	H_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	madvise(p, R, MADV_HUGEPAGE);
	*(volatile char *)p = 1;
	ok = h_pmd_mapped(p, R) == 1;
	munmap(p, R);
	return ok;
}

/* Wait for the pool to fill after a burst; false (said why) when the
 * kernel has no huge pages to give it now, which the test cannot help. */
static bool await_pool(const struct h_daemon *d, const char *when)
{
	long long v = await_bytes(d, (POOL - 1) * (long long)R, 1ll << 40, 10);

	printf("%s: agent_bytes %lld\n", when, v);
	if (v >= (POOL - 1) * (long long)R)
		return true;
	H_CHECK(!thp_available(), "%s: the pool holds only %lld bytes, though huge pages can be had",
		when, v);
	printf("%s: no huge page can be had now: the pool could not fill (not checked)\n", when);
	return false;
}

static struct thpswap_session *open_session(void)
{
	struct thpswap_session *s;
	int r = thpswap_open(&s, NULL);

	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	return s;
}

static void idle_and_burst(const struct h_daemon *d)
{
	size_t before = rss_anon(), after;
	struct thpswap_session *s = open_session();
	long long v;
	void *p;
	int r;

	r = thpswap_map(s, R, &p);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	/* Its first touch was a burst too (a zeroed huge page from the pool,
	 * which then refills): wait until it has been idle long enough. */
	h_fill(p, R, 0, 1);
	await_pool(d, "first touch");
	v = await_bytes(d, 1, 4 * MIB, IDLE_MS / 1000 + 10);
	after = rss_anon();
	printf("idle: agent_bytes %lld, RssAnon %zu KiB -> %zu KiB (2048 KiB of it managed)\n", v,
	       before >> 10, after >> 10);
	H_CHECK(v > 0 && v <= 4 * MIB, "an idle client's agent holds %lld bytes (want <= 4 MiB)", v);
	H_CHECK(sanitized() || after <= before + R + 4 * MIB,
		"an idle client with 2 MiB managed grew by %zu KiB of anonymous memory (want <= 6144)",
		(after - before) >> 10);

	/* A burst: evict and restore it a few times. */
	for (int i = 0; i < 4; i++) {
		H_CHECK(h_evict(s, p, R) == 1, "evict round %d", i);
		H_CHECK(h_check(p, R, 0, 1, NULL, "after a restore") < 0, "round %d: wrong bytes", i);
	}
	await_pool(d, "burst");
	v = await_bytes(d, 1, 4 * MIB, IDLE_MS / 1000 + 10);
	after = rss_anon();
	printf("idle again: agent_bytes %lld, RssAnon %zu KiB\n", v, after >> 10);
	H_CHECK(v > 0 && v <= 4 * MIB, "the idle client kept %lld bytes after its burst", v);
	H_CHECK(sanitized() || after <= before + R + 4 * MIB, "RssAnon %zu KiB after the pool went back", after >> 10);
	H_CHECK(h_check(p, R, 0, 1, NULL, "after the pool went back") < 0, "wrong bytes");
	H_CHECK(thpswap_close(s) == 0, "thpswap_close");
	munmap(p, R);
}

static void floor_kept(const struct h_daemon *d)
{
	struct thpswap_session *s = open_session();
	const size_t n = 200;
	long long v;
	void *p;
	int r;

	r = thpswap_map(s, n * R, &p);
	H_CHECK(r == 0, "thpswap_map of %zu regions: %s", n, strerror(-r));
	h_fill(p, R, 0, 2); /* one region used; the rest never touched */
	H_CHECK(h_evict(s, p, R) == 1, "evict");
	H_CHECK(h_check(p, R, 0, 2, NULL, "restored") < 0, "wrong bytes");
	if (!await_pool(d, "floor, after a restore"))
		goto out;
	/* 1 % of 200 regions: 2 huge pages stay, the rest goes.  Besides
	 * them, 4 MiB (8 under a sanitizer, whose runtime allocates with
	 * the agent's tables). */
	v = await_bytes(d, 2 * (long long)R, 2 * (long long)R + (sanitized() ? 8 : 4) * MIB,
			IDLE_MS / 1000 + 10);
	printf("floor: %zu regions managed, idle agent_bytes %lld\n", n, v);
	H_CHECK(v >= 2 * (long long)R && v <= 2 * (long long)R + (sanitized() ? 8 : 4) * MIB,
		"an idle client managing %zu regions holds %lld bytes (want its 2 pool pages + <= 4 MiB)",
		n, v);
out:
	H_CHECK(h_check(p, R, 0, 2, NULL, "after the trim") < 0, "wrong bytes");
	H_CHECK(thpswap_close(s) == 0, "thpswap_close");
	munmap(p, n * R);
}

int main(void)
{
	struct h_daemon d;
	char ms[16];
	int r;

	h_require_root();
	snprintf(ms, sizeof(ms), "%d", IDLE_MS);
	setenv("THPSWAP_POOL_IDLE_MS", ms, 1);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	h_deadline(120);
	idle_and_burst(&d);
	floor_kept(&d);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("PASS: overhead\n");
	return H_PASS;
}
