/* SPDX-License-Identifier: MIT */
/*
 * thpswap-run and the preload, on programs that never heard of thpswap.
 *
 *   itest-run adopt THPSWAP_RUN ADOPTEE
 *     ADOPTEE (tests/integration/adoptee.c) through thpswap-run: every
 *     2 MiB block of its memory gets a record (read from its arena, as the
 *     daemon reads it), evict --all stores all of them, every byte reads
 *     back, each block is one huge page again, and a fork child reads
 *     everything of an evicted parent.
 *   itest-run adopt-text THPSWAP_RUN ADOPTEE
 *     the same, the mappings found in the text of /proc/self/maps (the way
 *     of kernels without PROCMAP_QUERY; debug builds).
 *   itest-run full THPSWAP_RUN ADOPTEE
 *     the same with a region table of 16: the program runs partly managed,
 *     adopt_left_out counts the rest, and all of it reads back after
 *     evict --all.
 *   itest-run grow THPSWAP_RUN GROWER
 *     GROWER (tests/integration/grower.c) through thpswap-run grows its
 *     memory as jemalloc does while thpswapd --budget 32 evicts: every page
 *     reads back, while it grows (adoption registers each mapping as it is
 *     written) and after.
 *   itest-run numpy THPSWAP_RUN SCRIPT
 *     python3 SCRIPT (tests/integration/run_numpy.py) through thpswap-run:
 *     large numpy arrays and a big dict keep their checksums across
 *     evict --all (skip when numpy is missing).
 *   itest-run forked-session THPSWAP_RUN
 *     a fork child's calls on its parent's session fail with -ECHILD and
 *     take nothing from the parent.
 *   itest-run redis THPSWAP_RUN
 *     redis-server (Debian's, jemalloc inside) through thpswap-run, on a
 *     unix socket of its own: about 256 MiB of varied keys loaded, its DEBUG
 *     DIGEST taken, evict --all, redis-benchmark GETs over every key while
 *     the test keeps evicting, the digest again (identical), and at least
 *     99 % of the regions brought back PMD-mapped (PAGEMAP_SCAN of its
 *     pagemap, from here).  Skips when redis-server is not installed.
 *   itest-run jvm THPSWAP_RUN SOURCE
 *     java SOURCE (tests/integration/GcHeap.java, run as a source file)
 *     through thpswap-run, a 512 MiB G1 heap: four threads build 256 MiB
 *     of objects from a seed and print a checksum; every block of the heap
 *     managed, evict --all, a walk of everything; then rounds of churn and
 *     System.gc() (objects moved, garbage made) while the test evicts every
 *     half second, each ending with a walk that checks every byte; the
 *     checksum always the same, evictions and restores counted, and at
 *     least 99 % of the regions brought back PMD-mapped.  Heap blocks whose
 *     record says empty while their pages are present (evict passes them
 *     over) are counted apart and printed, not taken as stored.  A JVM
 *     silent for minutes, or one whose EVICT fails, is described (counters,
 *     regions, every thread's wchan and kernel stack).  Skips when java is
 *     missing or cannot run a source file.
 *   itest-run fallback THPSWAP_RUN
 *     no daemon at the socket: the program runs, its output and exit status
 *     intact, with one line on stderr saying why its memory is unmanaged,
 *     none with --quiet; exit statuses 126 and 127 as env(1).
 *
 * $THPSWAP_PRELOAD names the preload of this build (tests/meson.build).
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pagemap.h"
#include "util.h"

#define REGION THPSWAP_REGION_SIZE
#define MAX_RANGES 16

static const char *run_bin;

/* ---- a program run through thpswap-run, talked to over pipes ---- */

/*
 * In a sanitizer build ($THPSWAP_TEST_SANITIZER_RT names its runtime) the
 * preload is instrumented: a program that is not (sh, python3) must load
 * the runtime first, and thpswap-run keeps what LD_PRELOAD holds in front.
 * Leaks of such a program are not ours to judge.  Only for the programs
 * run through thpswap-run, not the daemon or thpswapctl: set around each
 * spawn (this process has no other thread that reads the environment).
 */
static char *saved_asan;

static void sanitizer_env(bool on)
{
	const char *rt = getenv("THPSWAP_TEST_SANITIZER_RT");
	char opts[512];

	if (!rt || !*rt)
		return;
	if (!on) {
		unsetenv("LD_PRELOAD");
		if (saved_asan)
			setenv("ASAN_OPTIONS", saved_asan, 1);
		free(saved_asan);
		saved_asan = NULL;
		return;
	}
	setenv("LD_PRELOAD", rt, 1);
	if (getenv("ASAN_OPTIONS")) {
		saved_asan = strdup(getenv("ASAN_OPTIONS"));
		snprintf(opts, sizeof(opts), "%s:detect_leaks=0", saved_asan ? saved_asan : "");
		setenv("ASAN_OPTIONS", opts, 1);
	}
}

struct prog {
	pid_t pid;
	int to, from;
};

static void prog_start(struct prog *p, const char *const *argv)
{
	int r;

	sanitizer_env(true);
	r = h_spawn_piped(&p->pid, argv, &p->to, &p->from);
	sanitizer_env(false);

	H_CHECK(r == 0, "spawn %s: %s", argv[0], strerror(-r));
	h_track(p->pid);
}

static void prog_line(struct prog *p, char *buf, size_t sz, const char *waiting_for)
{
	long n;

	h_at("waiting for %s", waiting_for);
	n = h_read_line(p->from, buf, sz);
	H_CHECK(n > 0, "the program ended (or failed to speak) while we waited for %s: %s",
		waiting_for, n < 0 ? strerror((int)-n) : "EOF");
}

static void prog_say(struct prog *p, const char *cmd)
{
	size_t n = strlen(cmd);

	H_CHECK(write(p->to, cmd, n) == (ssize_t)n, "write %s: %s", cmd, strerror(errno));
}

static int prog_end(struct prog *p)
{
	close(p->to);
	close(p->from);
	return h_wait(p->pid);
}

/* A counter of @pid as the daemon reports it; -1 if unknown. */
static long long counter(const struct h_daemon *d, pid_t pid, const char *name)
{
	char spid[16], out[8192];
	const char *argv[] = { "--json", "stats", "--pid", spid, NULL };

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	if (h_ctl(d, out, sizeof(out), argv) != 0)
		return -1;
	return h_json_u64(out, name);
}

static void evict_all(const struct h_daemon *d, pid_t pid)
{
	char spid[16], out[4096];
	const char *argv[] = { "evict", "--pid", spid, "--all", NULL };
	int r;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	h_at("thpswapctl evict --all");
	r = h_ctl(d, out, sizeof(out), argv);
	printf("evict --all: %s", out);
	H_CHECK(r == 0, "thpswapctl evict --pid %d --all: exit %d: %s", (int)pid, r, out);
}

/* Polling the daemon's view, not sleeping for it: a short pause between
 * looks, a deadline for all of them. */
static void pause_briefly(void)
{
	struct timespec t = { 0, 20 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

/* Wait (30 s at most) until the adoption has made @want regions of @pid's
 * memory; how many there are. */
static long long wait_regions(const struct h_daemon *d, pid_t pid, long long want)
{
	long long regions = -1;

	h_at("waiting for %lld regions", want);
	for (unsigned tries = 0; tries < 1500 && regions < want; tries++) {
		regions = counter(d, pid, "regions");
		if (regions < want)
			pause_briefly();
	}
	H_CHECK(regions >= want, "%lld regions managed after 30 s, want %lld", regions, want);
	return regions;
}

/* Adoption refuses to run in a ThreadSanitizer build (lib/adopt.c). */
static void skip_under_tsan(void)
{
	const char *rt = getenv("THPSWAP_TEST_SANITIZER_RT");

	if (rt && strstr(rt, "tsan")) {
		printf("skip: a ThreadSanitizer build does not adopt memory (the sanitizer's "
		       "metadata cannot be told from the program's)\n");
		exit(H_SKIP);
	}
}

/* ---- adopt ---- */

struct range {
	uint64_t lo, hi;          /* the whole 2 MiB blocks of a piece */
	char what[64];
};

/* The arena memfd of @pid, opened through /proc/PID/fd, or -1. */
static int arena_of(pid_t pid)
{
	char dir[64], path[340], link[256], want[64];
	struct dirent *e;
	int fd = -1;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	snprintf(want, sizeof(want), "/memfd:thpswap-arena:%d ", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		if (!strncmp(link, want, strlen(want)))
			fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	closedir(d);
	return fd;
}

/* How many blocks of @r are in state @want (any live state when 0);
 * the first that is not, in *@first. */
static unsigned count_state(int afd, const struct range *r, uint32_t want, uint64_t *first,
			    uint32_t *first_state)
{
	size_t n = (r->hi - r->lo) / REGION;
	struct h_region_view v[64];
	unsigned good = 0;

	H_CHECK(n <= 64, "range %s too long", r->what);
	h_arena_view(afd, (void *)(uintptr_t)r->lo, n, v);
	for (size_t i = 0; i < n; i++) {
		bool ok = v[i].nrec == 1 && (want ? v[i].state == want : v[i].state != THP_ST_FREE);

		if (want == THP_ST_RAM)
			ok = v[i].nrec == 1 && (v[i].state == THP_ST_RAM || v[i].state == THP_ST_ZERO);
		if (ok)
			good++;
		else if (!*first) {
			*first = r->lo + i * REGION;
			*first_state = v[i].nrec ? v[i].state : THP_ST_FREE;
		}
	}
	return good;
}

static unsigned count_all(int afd, const struct range *rs, unsigned n, uint32_t want,
			  uint64_t *first, uint32_t *first_state)
{
	unsigned good = 0;

	*first = 0;
	for (unsigned i = 0; i < n; i++)
		good += count_state(afd, &rs[i], want, first, first_state);
	return good;
}

static void test_adopt(const char *adoptee)
{
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", adoptee, NULL };
	struct range rs[MAX_RANGES];
	unsigned nr = 0, blocks = 0, managed = 0, pmd = 0;
	uint64_t first = 0;
	uint32_t fst = 0;
	long long ev0, ev1;
	struct h_daemon d;
	struct prog p;
	char line[512];
	int afd = -1, pm, r;

	h_require_root();
	skip_under_tsan();
	h_deadline(240);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	prog_start(&p, argv);
	for (;;) {
		unsigned long lo, len;
		int at = 0;

		prog_line(&p, line, sizeof(line), "the program's ranges");
		if (!strcmp(line, "ready"))
			break;
		H_CHECK(sscanf(line, "range %lx %lu %n", &lo, &len, &at) == 2 && at,
			"the program says: %s", line);
		H_CHECK(nr < MAX_RANGES, "too many ranges");
		rs[nr].lo = (lo + REGION - 1) & ~(uint64_t)(REGION - 1);
		rs[nr].hi = (lo + len) & ~(uint64_t)(REGION - 1);
		snprintf(rs[nr].what, sizeof(rs[nr].what), "%s", line + at);
		blocks += (unsigned)((rs[nr].hi - rs[nr].lo) / REGION);
		nr++;
	}
	printf("%u ranges, %u whole 2 MiB blocks\n", nr, blocks);
	H_CHECK(blocks >= 60, "only %u blocks", blocks);

	/* Every block managed: the adoption runs every 20 ms. */
	h_at("waiting for every block to be managed");
	for (unsigned tries = 0; tries < 1500; tries++) {
		if (afd < 0)
			afd = arena_of(p.pid);
		if (afd >= 0 && (managed = count_all(afd, rs, nr, 0, &first, &fst)) == blocks)
			break;
		pause_briefly();
	}
	H_CHECK(afd >= 0, "no arena memfd in /proc/%d/fd: the preload opened no session", (int)p.pid);
	H_CHECK(managed == blocks, "%u of %u blocks managed after 30 s; first unmanaged %#llx (%s)",
		managed, blocks, (unsigned long long)first, thp_state_name(fst));
	printf("all %u blocks managed\n", blocks);

	ev0 = counter(&d, p.pid, "evictions");
	evict_all(&d, p.pid);
	ev1 = counter(&d, p.pid, "evictions");
	managed = count_all(afd, rs, nr, THP_ST_RAM, &first, &fst);
	printf("evictions %lld -> %lld; %u of %u blocks stored\n", ev0, ev1, managed, blocks);
	if (managed != blocks)
		h_evict_reasons(afd, "evict --all left blocks resident");
	H_CHECK(ev1 - ev0 >= blocks, "evictions went from %lld to %lld, want %u more", ev0, ev1, blocks);
	H_CHECK(managed == blocks, "%u of %u blocks stored; first not %#llx (%s)", managed, blocks,
		(unsigned long long)first, thp_state_name(fst));

	prog_say(&p, "check\n");
	prog_line(&p, line, sizeof(line), "check");
	H_CHECK(!strcmp(line, "ok"), "after evict --all the program reads: %s", line);

	pm = thp_pagemap_open(p.pid);
	H_CHECK(pm >= 0, "open /proc/%d/pagemap: %s", (int)p.pid, strerror(-pm));
	for (unsigned i = 0; i < nr; i++) {
		long k = thp_pagemap_count_pmd(pm, rs[i].lo, rs[i].hi);

		H_CHECK(k >= 0, "PAGEMAP_SCAN: %s", strerror((int)-k));
		pmd += (unsigned)k;
	}
	close(pm);
	printf("%u of %u blocks PMD-mapped after they were read back\n", pmd, blocks);
	H_CHECK(pmd == blocks, "%u of %u blocks came back PMD-mapped", pmd, blocks);

	/* A fork child of an evicted parent reads everything too. */
	evict_all(&d, p.pid);
	prog_say(&p, "fork\n");
	prog_line(&p, line, sizeof(line), "fork");
	H_CHECK(!strcmp(line, "fork ok"), "fork child: %s", line);
	prog_line(&p, line, sizeof(line), "the fork child's session");
	H_CHECK(!strcmp(line, "session"), "the fork child had %s, want a session of its own", line);
	prog_say(&p, "check\n");
	prog_line(&p, line, sizeof(line), "check after fork");
	H_CHECK(!strcmp(line, "ok"), "after the fork the program reads: %s", line);
	printf("copy_child %lld\n", counter(&d, p.pid, "copy_child"));

	prog_say(&p, "exit\n");
	r = prog_end(&p);
	H_CHECK(r == 0, "the program exited with %d", r);
	close(afd);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("PASS run-adopt\n");
}

/* ---- a full region table ---- */

/*
 * GROWER (tests/integration/grower.c) grows its memory as jemalloc does,
 * through thpswap-run, while a daemon with a budget far below it evicts:
 * adoption registers each mapping while the program writes it, and a
 * region the daemon picks before its registration is in effect must not
 * go (a fault there would be the kernel's, and read zeros).  Every page
 * the program wrote reads back, while it fills and after.
 */
static void test_grow(const char *grower)
{
	const char *dargs[] = { "--budget", "32", "--interval", "20", "--pressure", "no", NULL };
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", grower, NULL };
	struct h_daemon d;
	struct prog p;
	char line[512];
	long long ev;
	int r;

	h_require_root();
	skip_under_tsan();
	h_deadline(240);
	r = h_daemon_start(&d, dargs);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	prog_start(&p, argv);
	prog_line(&p, line, sizeof(line), "the program to fill its memory");
	printf("grower: %s\n", line);
	H_CHECK(!strncmp(line, "filled ", 7), "a page read back wrong while the program grew its "
		"memory under a budget: %s", line);
	ev = counter(&d, p.pid, "evictions");
	printf("evictions while it grew: %lld\n", ev);
	H_CHECK(ev > 0, "nothing was evicted while the program grew: the budget did not bite");
	prog_say(&p, "check\n");
	prog_line(&p, line, sizeof(line), "the program to read everything back");
	H_CHECK(!strcmp(line, "ok"), "reading everything back: %s", line);
	prog_say(&p, "exit\n");
	r = prog_end(&p);
	H_CHECK(r == 0, "the program exited with %d", r);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
}

static void test_full(const char *adoptee)
{
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", adoptee,
			       "--no-wait", NULL };
	long long regions = -1, left = -1;
	struct h_daemon d;
	struct prog p;
	char line[512];
	int r;

	h_require_root();
	skip_under_tsan();
	h_deadline(120);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	setenv("THPSWAP_MAX_REGIONS", "16", 1);
	prog_start(&p, argv);
	unsetenv("THPSWAP_MAX_REGIONS");
	do
		prog_line(&p, line, sizeof(line), "the program's ranges");
	while (strcmp(line, "ready"));
	/* Room for 16 of its 67 blocks: it runs partly managed, and says so
	 * (stderr) and counts what is left out.  The adopter goes on counting
	 * after the table is full: wait for all of it. */
	h_at("waiting for a full table");
	for (unsigned tries = 0; tries < 1500; tries++) {
		regions = counter(&d, p.pid, "regions");
		left = counter(&d, p.pid, "adopt_left_out");
		if (regions == 16 && left >= 67 - 16)
			break;
		pause_briefly();
	}
	printf("regions %lld, adopt_left_out %lld\n", regions, left);
	H_CHECK(regions == 16 && left >= 67 - 16, "regions %lld, adopt_left_out %lld", regions, left);
	evict_all(&d, p.pid);
	H_CHECK(counter(&d, p.pid, "evictions") >= 1, "nothing was evicted");
	prog_say(&p, "check\n");
	prog_line(&p, line, sizeof(line), "check");
	H_CHECK(!strcmp(line, "ok"), "after evict --all the program reads: %s", line);
	prog_say(&p, "exit\n");
	r = prog_end(&p);
	H_CHECK(r == 0, "the program exited with %d", r);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("PASS run-full\n");
}

/* ---- numpy ---- */

static void test_numpy(const char *script)
{
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", "/usr/bin/python3",
			       script, NULL };
	long long regions, ev0, ev1;
	struct h_daemon d;
	struct prog p;
	char line[512];
	int r;

	h_require_root();
	skip_under_tsan();
	h_deadline(300);
	if (access("/usr/bin/python3", X_OK)) {
		printf("skip: no /usr/bin/python3\n");
		exit(H_SKIP);
	}
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	prog_start(&p, argv);
	prog_line(&p, line, sizeof(line), "the script's checksums");
	if (!strncmp(line, "skip: ", 6)) {
		printf("%s\n", line);
		prog_end(&p);
		h_daemon_stop(&d);
		exit(H_SKIP);
	}
	H_CHECK(!strncmp(line, "ready ", 6), "the script says: %s", line);
	printf("before: %s\n", line + 6);

	/* 256 MiB of arrays: at least 128 regions, found by the adoption. */
	regions = wait_regions(&d, p.pid, 128);
	ev0 = counter(&d, p.pid, "evictions");
	evict_all(&d, p.pid);
	ev1 = counter(&d, p.pid, "evictions");
	printf("regions %lld, evictions %lld -> %lld\n", regions, ev0, ev1);
	H_CHECK(ev1 - ev0 >= 128, "evictions went from %lld to %lld, want 128 more", ev0, ev1);
	prog_say(&p, "check\n");
	prog_line(&p, line, sizeof(line), "the checksums after evict --all");
	H_CHECK(!strncmp(line, "ok ", 3), "the script says: %s", line);
	printf("after: %s\n", line + 3);
	r = prog_end(&p);
	H_CHECK(r == 0, "python3 exited with %d", r);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("PASS run-numpy\n");
}

/* ---- redis-server ---- */

#define REDIS_KEYS 262144u      /* x 1000-byte values: 250 MiB, plus hashes */
#define REDIS_VAL 1000u

struct redis {
	char dir[64], sock[128], log[128];
	struct prog p;
};

/* Run redis-cli against our server; its output (first line) in @out. */
static int redis_cli(const struct redis *rd, char *out, size_t sz, const char *args)
{
	char cmd[512];
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "/usr/bin/redis-cli -s %s %s 2>&1", rd->sock, args);
	f = popen(cmd, "r");
	H_CHECK(f, "popen redis-cli: %s", strerror(errno));
	if (!fgets(out, (int)sz, f))
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	while (fgetc(f) != EOF)
		;
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Value @i: a mix of what a cache holds -- text, numbers, hex ids, JSON. */
static void redis_value(unsigned i, char *v)
{
	static const char *const words[] = { "session", "user", "cart", "item", "price", "token",
					     "the", "of", "and", "order", "shipped", "pending" };
	uint64_t x = 0x9e3779b97f4a7c15ull ^ i;
	size_t n = 0;

	while (n < REDIS_VAL) {
		int w;

		switch (i % 4) {
		case 0:
			w = snprintf(v + n, REDIS_VAL + 1 - n, "%016llx", (unsigned long long)rnd(&x));
			break;
		case 1:
			w = snprintf(v + n, REDIS_VAL + 1 - n, "%s ", words[rnd(&x) % 12]);
			break;
		case 2:
			w = snprintf(v + n, REDIS_VAL + 1 - n, "%llu,", (unsigned long long)(rnd(&x) % 100000));
			break;
		default:
			w = snprintf(v + n, REDIS_VAL + 1 - n, "{\"id\":%u,\"n\":%llu,\"s\":\"%s\"}", i,
				     (unsigned long long)(rnd(&x) % 1000), words[rnd(&x) % 12]);
		}
		if (w <= 0 || (size_t)w > REDIS_VAL - n)
			break;
		n += (size_t)w;
	}
	memset(v + n, '.', REDIS_VAL - n);
	v[REDIS_VAL] = 0;
}

/* SET key:%012u (redis-benchmark's __rand_int__ names) and a hash for
 * every 16th key, through redis-cli --pipe. */
static void redis_load(const struct redis *rd)
{
	char cmd[256], key[32], v[REDIS_VAL + 1];
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "/usr/bin/redis-cli -s %s --pipe >/dev/null", rd->sock);
	f = popen(cmd, "w");
	H_CHECK(f, "popen redis-cli --pipe: %s", strerror(errno));
	for (unsigned i = 0; i < REDIS_KEYS; i++) {
		int kl = snprintf(key, sizeof(key), "key:%012u", i);

		redis_value(i, v);
		fprintf(f, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%u\r\n%s\r\n", kl, key, REDIS_VAL, v);
		if (i % 16 == 0)
			fprintf(f, "*6\r\n$4\r\nHSET\r\n$%d\r\nh%s\r\n$4\r\nuser\r\n$%d\r\n%u\r\n"
				"$4\r\nname\r\n$%d\r\n%.*s\r\n", kl + 1, key, snprintf(NULL, 0, "%u", i * 7), i * 7,
				24, 24, v + 100);
	}
	st = pclose(f);
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "redis-cli --pipe failed (status %d)", st);
}

struct restored {
	int pm;
	unsigned n, pmd, holed;
	uint64_t first_split;
};

/* A region brought back and resident now.  One the program has punched
 * holes in since (jemalloc returns freed runs with MADV_DONTNEED) cannot
 * be one huge page, whatever brought it back: counted apart. */
static void restored_one(uint32_t idx, const struct thp_record *r, void *arg)
{
	struct restored *a = arg;
	long k;

	(void)idx;
	if (r->state != THP_ST_RESIDENT || !r->restores)
		return;
	if (thp_pagemap_count_present(a->pm, r->addr, r->addr + REGION) < (long)(REGION / 4096)) {
		a->holed++;
		return;
	}
	k = thp_pagemap_count_pmd(a->pm, r->addr, r->addr + REGION);
	a->n++;
	if (k == 1)
		a->pmd++;
	else if (!a->first_split)
		a->first_split = r->addr;
}

static void test_redis(void)
{
	const char *server = "/usr/bin/redis-server";
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", server, "--port", "0",
			       "--unixsocket", NULL, "--save", "", "--appendonly", "no", "--logfile", NULL,
			       "--enable-debug-command", "local", NULL };
	char bench[256], d1[128], d2[128], out[256];
	long long regions, ev0, ev1, ev2, rs0, rs1;
	struct restored rst = { 0 };
	unsigned rounds = 0;
	struct redis rd;
	struct h_daemon d;
	FILE *bf;
	int afd = -1, r, st;

	h_require_root();
	skip_under_tsan();
	if (access(server, X_OK) || access("/usr/bin/redis-cli", X_OK) ||
	    access("/usr/bin/redis-benchmark", X_OK)) {
		printf("skip: redis-server, redis-cli or redis-benchmark is not installed "
		       "(apt-get install redis-server redis-tools)\n");
		exit(H_SKIP);
	}
	h_deadline(600);
	snprintf(rd.dir, sizeof(rd.dir), "/tmp/thpswap-redis.XXXXXX");
	H_CHECK(mkdtemp(rd.dir), "mkdtemp: %s", strerror(errno));
	snprintf(rd.sock, sizeof(rd.sock), "%s/redis.sock", rd.dir);
	snprintf(rd.log, sizeof(rd.log), "%s/redis.log", rd.dir);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	argv[10] = rd.sock;
	argv[16] = rd.log;
	prog_start(&rd.p, argv);

	h_at("waiting for redis-server to answer PING");
	for (unsigned tries = 0; tries < 1500; tries++) {
		if (redis_cli(&rd, out, sizeof(out), "PING") == 0 && !strcmp(out, "PONG"))
			break;
		pause_briefly();
	}
	H_CHECK(!strcmp(out, "PONG"), "redis-server does not answer: %s (its log: %s)", out, rd.log);
	h_at("loading %u keys", REDIS_KEYS);
	redis_load(&rd);
	redis_cli(&rd, out, sizeof(out), "DBSIZE");
	printf("redis: %s keys\n", out);
	H_CHECK(strtoul(out, NULL, 10) == REDIS_KEYS + REDIS_KEYS / 16, "DBSIZE %s", out);
	H_CHECK(redis_cli(&rd, d1, sizeof(d1), "DEBUG DIGEST") == 0 && strlen(d1) == 40,
		"DEBUG DIGEST: %s", d1);

	/* Its data set: more than 125 regions, found by the adoption. */
	regions = wait_regions(&d, rd.p.pid, 125);
	ev0 = counter(&d, rd.p.pid, "evictions");
	rs0 = counter(&d, rd.p.pid, "restores");
	evict_all(&d, rd.p.pid);
	ev1 = counter(&d, rd.p.pid, "evictions");
	printf("redis: %lld regions, evictions %lld -> %lld\n", regions, ev0, ev1);
	H_CHECK(ev1 - ev0 >= 100, "evict --all evicted %lld regions, want at least 100", ev1 - ev0);

	/* GETs over every key, while evictions go on: evict --all every half
	 * second until the benchmark ends. */
	snprintf(bench, sizeof(bench), "/usr/bin/redis-benchmark -s %s -t get -n 40000 -r %u -c 8 -q "
		 "2>&1", rd.sock, REDIS_KEYS);
	bf = popen(bench, "r");
	H_CHECK(bf, "popen redis-benchmark: %s", strerror(errno));
	for (uint64_t next = thp_now_ns() + 500000000ull;;) {
		struct pollfd pf = { .fd = fileno(bf), .events = POLLIN };
		uint64_t now = thp_now_ns();
		char buf[4096];
		ssize_t n;

		if (now >= next || poll(&pf, 1, (int)((next - now) / 1000000) + 1) == 0) {
			evict_all(&d, rd.p.pid);
			rounds++;
			next = thp_now_ns() + 500000000ull;
			continue;
		}
		n = read(pf.fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			break;
		buf[n] = 0;
		/* Its progress line ends in '\r': keep the last result only. */
		if (strchr(buf, '\n'))
			printf("redis-benchmark: %s", strrchr(buf, '\r') ? strrchr(buf, '\r') + 1 : buf);
	}
	st = pclose(bf);
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "redis-benchmark failed (status %d)", st);
	ev2 = counter(&d, rd.p.pid, "evictions");
	rs1 = counter(&d, rd.p.pid, "restores");
	printf("redis: %u evict --all rounds during the benchmark; evictions %lld -> %lld, "
	       "restores %lld -> %lld\n", rounds, ev1, ev2, rs0, rs1);
	H_CHECK(rs1 - rs0 >= 100, "only %lld restores during the benchmark", rs1 - rs0);

	H_CHECK(redis_cli(&rd, d2, sizeof(d2), "DEBUG DIGEST") == 0, "DEBUG DIGEST: %s", d2);
	printf("redis: DEBUG DIGEST %s before, %s after\n", d1, d2);
	H_CHECK(!strcmp(d1, d2), "the data set changed: DEBUG DIGEST %s before, %s after", d1, d2);

	/* The regions it has back: one huge page each (PAGEMAP_SCAN, ours). */
	afd = arena_of(rd.p.pid);
	H_CHECK(afd >= 0, "no arena memfd in /proc/%d/fd", (int)rd.p.pid);
	rst.pm = thp_pagemap_open(rd.p.pid);
	H_CHECK(rst.pm >= 0, "open /proc/%d/pagemap: %s", (int)rd.p.pid, strerror(-rst.pm));
	h_arena_each(afd, restored_one, &rst);
	close(rst.pm);
	close(afd);
	printf("redis: %u of %u restored regions resident now are PMD-mapped (%u more have holes "
	       "the program made since); the agent counted %lld of %lld restores PMD-mapped\n",
	       rst.pmd, rst.n, rst.holed, counter(&d, rd.p.pid, "restores_pmd"),
	       counter(&d, rd.p.pid, "restores"));
	H_CHECK(rst.n >= 50, "only %u restored regions are resident", rst.n);
	H_CHECK(rst.pmd * 100 >= rst.n * 99, "%u of %u restored regions PMD-mapped (first not: %#llx)",
		rst.pmd, rst.n, (unsigned long long)rst.first_split);

	redis_cli(&rd, out, sizeof(out), "SHUTDOWN NOSAVE");
	r = prog_end(&rd.p);
	H_CHECK(r == 0, "redis-server exited with %d", r);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	unlink(rd.sock);
	unlink(rd.log);
	rmdir(rd.dir);
	printf("PASS run-redis\n");
}

/* ---- a JVM ---- */

#define JVM_HEAP_MIB 512
#define JVM_LIVE_MIB "256"
#define JVM_ROUNDS 4
/* How long one command of GcHeap.java may take before the test calls it
 * hung: a full walk or churn takes seconds, under a loaded machine tens. */
#define JVM_STUCK_S 240

/* Can this java run a source file (java File.java)?  It needs the
 * jdk.compiler module in its image. */
static bool java_runs_source(const char *java)
{
	char cmd[256], line[256];
	bool found = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s --list-modules 2>/dev/null", java);
	f = popen(cmd, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		found |= !strncmp(line, "jdk.compiler@", 13);
	pclose(f);
	return found;
}

/* The Java heap of @pid (committed whole: -Xms = -Xmx): the largest
 * private anonymous readable+writable mapping no larger than @heap_mib.
 * Not larger: in a sanitizer build the shadow memory is terabytes of
 * such a mapping.  Its whole 2 MiB blocks. */
static void heap_mapping(pid_t pid, unsigned long heap_mib, struct range *r)
{
	char path[64], line[512];
	unsigned long best = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	H_CHECK(f, "open %s: %s", path, strerror(errno));
	memset(r, 0, sizeof(*r));
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		char perms[8];
		int name = 0;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu %n", &lo, &hi, perms, &ino, &name) < 4)
			continue;
		if (strcmp(perms, "rw-p") || ino || (line[name] && line[name] != '\n' &&
						     strncmp(line + name, "[anon:", 6)))
			continue;
		if (hi - lo > best && hi - lo <= heap_mib << 20) {
			best = hi - lo;
			r->lo = (lo + REGION - 1) & ~(uint64_t)(REGION - 1);
			r->hi = hi & ~(uint64_t)(REGION - 1);
		}
	}
	fclose(f);
	snprintf(r->what, sizeof(r->what), "the Java heap");
}

/* How many blocks of @r have a live record, in runs of 64. */
static unsigned count_range(int afd, const struct range *r, uint32_t want, uint64_t *first,
			    uint32_t *fst)
{
	unsigned good = 0;

	*first = 0;
	for (uint64_t lo = r->lo; lo < r->hi; lo += 64 * REGION) {
		struct range part = { .lo = lo, .hi = lo + 64 * REGION < r->hi ? lo + 64 * REGION : r->hi };

		good += count_state(afd, &part, want, first, fst);
	}
	return good;
}

struct heap_states {
	unsigned stored;          /* RAM or ZERO */
	unsigned empty;           /* EMPTY, no page present */
	unsigned empty_present;   /* EMPTY, yet pages present */
	unsigned other;           /* resident, in flight, no record */
};

/* The heap's blocks by state after an evict --all, the pages of the
 * EMPTY ones counted in @pid's pagemap; the first few of those not
 * stored printed. */
static struct heap_states heap_states(int afd, pid_t pid, const struct range *r)
{
	struct heap_states hs = { 0 };
	int pm = thp_pagemap_open(pid);
	unsigned shown = 0;

	H_CHECK(pm >= 0, "open /proc/%d/pagemap: %s", (int)pid, strerror(-pm));
	for (uint64_t a = r->lo; a < r->hi; a += REGION) {
		struct h_region_view v;
		long present = -1;

		h_arena_view(afd, (void *)(uintptr_t)a, 1, &v);
		if (v.nrec == 1 && (v.state == THP_ST_RAM || v.state == THP_ST_ZERO)) {
			hs.stored++;
			continue;
		}
		present = thp_pagemap_count_present(pm, a, a + REGION);
		if (v.nrec == 1 && v.state == THP_ST_EMPTY && present == 0)
			hs.empty++;
		else if (v.nrec == 1 && v.state == THP_ST_EMPTY)
			hs.empty_present++;
		else
			hs.other++;
		if (shown++ < 8)
			printf("jvm:   %#llx %s, %ld of 512 pages present\n", (unsigned long long)a,
			       v.nrec ? thp_state_name(v.state) : "no record", present);
	}
	close(pm);
	printf("jvm: heap blocks after evict --all: %u stored, %u empty, %u empty in their record "
	       "yet populated (evict passes them over), %u other\n", hs.stored, hs.empty,
	       hs.empty_present, hs.other);
	return hs;
}

/* What a hung JVM was doing: the daemon's view of it, and where each of
 * its threads sleeps in the kernel (wchan, stack).  Read from outside: a
 * debugger printing its strings could fault into managed memory. */
static void jvm_describe(const struct h_daemon *d, pid_t pid)
{
	const char *stats[] = { "--json", "stats", "--pid", NULL, NULL };
	const char *regions[] = { "regions", "--pid", NULL, NULL };
	char spid[16], path[300], buf[4096];
	static char out[1 << 20];
	struct dirent *e;
	DIR *dir;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	stats[3] = regions[2] = spid;
	h_ctl(d, out, sizeof(out), stats);
	fprintf(stderr, "thpswapctl --json stats --pid %s:\n%s", spid, out);
	h_ctl(d, out, sizeof(out), regions);
	fprintf(stderr, "thpswapctl regions --pid %s (first 8 KiB):\n%.8192s\n", spid, out);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	while (dir && (e = readdir(dir))) {
		static const char *const files[] = { "comm", "wchan", "stack" };

		if (e->d_name[0] == '.')
			continue;
		fprintf(stderr, "task %s:\n", e->d_name);
		for (unsigned i = 0; i < 3; i++) {
			ssize_t n;
			int fd;

			snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, e->d_name, files[i]);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			buf[n > 0 ? n : 0] = 0;
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "  %s: %s%s", files[i], buf, n > 0 && buf[n - 1] == '\n' ? "" : "\n");
		}
	}
	if (dir)
		closedir(dir);
}

/* evict --all; one that fails (a JVM that does not answer the daemon's
 * EVICT in time) describes the JVM first. */
static void jvm_evict(const struct h_daemon *d, struct prog *p)
{
	char spid[16], out[4096];
	const char *argv[] = { "evict", "--pid", spid, "--all", NULL };
	int r;

	snprintf(spid, sizeof(spid), "%d", (int)p->pid);
	h_at("thpswapctl evict --all");
	r = h_ctl(d, out, sizeof(out), argv);
	printf("evict --all: %s", out);
	if (r) {
		jvm_describe(d, p->pid);
		H_CHECK(false, "thpswapctl evict --pid %d --all: exit %d: %s (the JVM is described "
			"above)", (int)p->pid, r, out);
	}
}

/* The program's next line; evict --all every half second while it works
 * on it (when @evicting).  A program silent for JVM_STUCK_S is described
 * and the test fails. */
static unsigned jvm_line(const struct h_daemon *d, struct prog *p, bool evicting, char *line,
			 size_t sz, const char *waiting_for)
{
	uint64_t start = thp_now_ns(), next = start + 500000000ull;
	unsigned rounds = 0;

	for (;;) {
		struct pollfd pf = { .fd = p->from, .events = POLLIN };
		uint64_t now = thp_now_ns();
		int wait_ms = evicting ? (now < next ? (int)((next - now) / 1000000) + 1 : 0) : 1000;

		if (now - start > JVM_STUCK_S * 1000000000ull * h_slowdown()) {
			fprintf(stderr, "the JVM said nothing for %u s while we waited for %s\n",
				JVM_STUCK_S * h_slowdown(), waiting_for);
			jvm_describe(d, p->pid);
			H_CHECK(false, "the JVM (pid %d) hangs: no answer to %s in %u s (described above)",
				(int)p->pid, waiting_for, JVM_STUCK_S * h_slowdown());
		}
		if (poll(&pf, 1, wait_ms) > 0)
			break;
		if (evicting && thp_now_ns() >= next) {
			jvm_evict(d, p);
			rounds++;
			next = thp_now_ns() + 500000000ull;
		}
	}
	prog_line(p, line, sz, waiting_for);
	return rounds;
}

static void test_jvm(const char *source)
{
	const char *java = "/usr/bin/java";
	/* The whole heap committed and touched at start; the JVM's own
	 * warnings on stderr, so that stdout is the program's alone. */
	const char *argv[] = { run_bin, "--socket", NULL, "--scan-ms", "20", "--", java,
			       "-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-XX:+UseTransparentHugePages",
			       "-XX:+AlwaysPreTouch", "-XX:-UsePerfData",
			       "-XX:+DisplayVMOutputToStderr", source, "1", JVM_LIVE_MIB, "4", NULL };
	char line[512], sum[64], after[64];
	long long ev0, ev1, ev2, rs0, rs1, pmd_agent;
	struct restored rst = { 0 };
	uint64_t t0 = thp_now_ns(), first = 0;
	unsigned managed = 0, blocks, rounds = 0;
	uint32_t fst = 0;
	struct heap_states hs;
	struct range heap;
	struct h_daemon d;
	struct prog p;
	int afd = -1, r, heap_mib = 0;

	h_require_root();
	skip_under_tsan();
	if (access(java, X_OK)) {
		printf("skip: no %s (apt-get install default-jre-headless)\n", java);
		exit(H_SKIP);
	}
	if (!java_runs_source(java)) {
		printf("skip: %s has no jdk.compiler module and cannot run GcHeap.java as a source "
		       "file (apt-get install default-jre-headless, or a JDK)\n", java);
		exit(H_SKIP);
	}
	h_deadline(900);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	argv[2] = d.sock;
	prog_start(&p, argv);
	jvm_line(&d, &p, false, line, sizeof(line), "the JVM's first checksum");
	H_CHECK(sscanf(line, "ready %63s %d", sum, &heap_mib) == 2, "the JVM says: %s", line);
	printf("jvm: checksum %s, heap %d MiB, %.1f s to build\n", sum, heap_mib,
	       (double)(thp_now_ns() - t0) / 1e9);
	H_CHECK(heap_mib >= JVM_HEAP_MIB - 32, "the JVM's heap is %d MiB, want %d", heap_mib,
		JVM_HEAP_MIB);

	/* The heap, found from outside: every block of it managed. */
	heap_mapping(p.pid, (unsigned long)heap_mib, &heap);
	blocks = (unsigned)((heap.hi - heap.lo) / REGION);
	printf("jvm: heap mapping %#llx-%#llx, %u whole 2 MiB blocks\n",
	       (unsigned long long)heap.lo, (unsigned long long)heap.hi, blocks);
	H_CHECK(blocks >= (unsigned)heap_mib / 2 - 16, "the largest anonymous mapping up to %d MiB "
		"has %u blocks: no mapping of the heap", heap_mib, blocks);
	h_at("waiting for every block of the heap to be managed");
	for (unsigned tries = 0; tries < 1500; tries++) {
		if (afd < 0)
			afd = arena_of(p.pid);
		if (afd >= 0 && (managed = count_range(afd, &heap, 0, &first, &fst)) == blocks)
			break;
		pause_briefly();
	}
	H_CHECK(afd >= 0, "no arena memfd in /proc/%d/fd: the preload opened no session", (int)p.pid);
	H_CHECK(managed == blocks, "%u of %u heap blocks managed after 30 s; first unmanaged %#llx (%s)",
		managed, blocks, (unsigned long long)first, thp_state_name(fst));
	printf("jvm: all %u heap blocks managed, %lld regions in all\n", blocks,
	       counter(&d, p.pid, "regions"));

	/* All of it out, then a walk that reads every byte back. */
	ev0 = counter(&d, p.pid, "evictions");
	rs0 = counter(&d, p.pid, "restores");
	jvm_evict(&d, &p);
	ev1 = counter(&d, p.pid, "evictions");
	printf("jvm: evictions %lld -> %lld\n", ev0, ev1);
	/* Stored, or empty with nothing in them: parts of the heap the JVM
	 * has not touched yet hold nothing to store. */
	hs = heap_states(afd, p.pid, &heap);
	if ((hs.stored + hs.empty) * 10 < blocks * 9)
		h_evict_reasons(afd, "evict --all left heap blocks resident");
	H_CHECK((hs.stored + hs.empty) * 10 >= blocks * 9, "only %u of %u heap blocks stored (and "
		"%u empty) after evict --all", hs.stored, blocks, hs.empty);
	/* Pre-touched while it was being registered: resident, not empty
	 * (an empty record is never evicted). */
	H_CHECK(hs.empty_present == 0, "%u heap blocks recorded empty while pages are present",
		hs.empty_present);
	prog_say(&p, "walk\n");
	jvm_line(&d, &p, false, line, sizeof(line), "a walk of the evicted heap");
	H_CHECK(sscanf(line, "ok %63s", after) == 1 && !strcmp(after, sum),
		"after evict --all the JVM says: %s (want ok %s)", line, sum);

	/* Garbage, moved objects and full collections while the test keeps
	 * evicting: every walk sees the same contents. */
	for (unsigned i = 0; i < JVM_ROUNDS; i++) {
		jvm_evict(&d, &p);
		prog_say(&p, "churn\n");
		rounds += jvm_line(&d, &p, true, line, sizeof(line), "churn, System.gc() and a walk");
		H_CHECK(sscanf(line, "ok %63s", after) == 1 && !strcmp(after, sum),
			"churn %u: the JVM says: %s (want ok %s)", i + 1, line, sum);
		printf("jvm: churn %u: ok %s\n", i + 1, after);
	}
	jvm_evict(&d, &p);
	prog_say(&p, "walk\n");
	jvm_line(&d, &p, false, line, sizeof(line), "the last walk");
	H_CHECK(sscanf(line, "ok %63s", after) == 1 && !strcmp(after, sum),
		"the last walk: the JVM says: %s (want ok %s)", line, sum);
	ev2 = counter(&d, p.pid, "evictions");
	rs1 = counter(&d, p.pid, "restores");
	pmd_agent = counter(&d, p.pid, "restores_pmd");
	printf("jvm: %u evict --all rounds while it worked; evictions %lld -> %lld, restores %lld -> "
	       "%lld (%lld PMD-mapped, by the agent's count)\n", rounds + JVM_ROUNDS + 2, ev0, ev2,
	       rs0, rs1, pmd_agent);
	H_CHECK(ev2 - ev0 >= (long long)blocks, "only %lld evictions", ev2 - ev0);
	H_CHECK(rs1 - rs0 >= (long long)blocks / 2, "only %lld restores", rs1 - rs0);

	/* The regions it has back: one huge page each (PAGEMAP_SCAN, ours). */
	rst.pm = thp_pagemap_open(p.pid);
	H_CHECK(rst.pm >= 0, "open /proc/%d/pagemap: %s", (int)p.pid, strerror(-rst.pm));
	h_arena_each(afd, restored_one, &rst);
	close(rst.pm);
	printf("jvm: %u of %u restored regions resident now are PMD-mapped (%.1f %%; %u more have "
	       "holes the program made since)\n", rst.pmd, rst.n, rst.n ? 100.0 * rst.pmd / rst.n : 0,
	       rst.holed);
	H_CHECK(rst.n >= blocks / 2, "only %u restored regions are resident", rst.n);
	H_CHECK(rst.pmd * 100 >= rst.n * 99, "%u of %u restored regions PMD-mapped (first not: %#llx)",
		rst.pmd, rst.n, (unsigned long long)rst.first_split);

	prog_say(&p, "exit\n");
	r = prog_end(&p);
	H_CHECK(r == 0, "java exited with %d", r);
	close(afd);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("jvm: %.1f s in all\n", (double)(thp_now_ns() - t0) / 1e9);
	printf("PASS run-jvm\n");
}

/* ---- a fork child's copy of a session ---- */

/* The child has none of the agent's threads, and the arena and scratch
 * are not mapped there: every call fails with -ECHILD and frees nothing;
 * the parent's session goes on as before. */
static void test_forked_session(void)
{
	struct thpswap_session *s;
	struct thpswap_stats st;
	struct h_daemon d;
	void *mem;
	pid_t pid;
	int r;

	h_require_root();
	h_deadline(60);
	r = h_daemon_start(&d, NULL);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(&s, d.sock);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	r = thpswap_map(s, REGION, &mem);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	memset(mem, 0x5a, REGION);
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int bad = 0;

		bad |= (thpswap_get_stats(s, &st, sizeof(st)) != -ECHILD) << 0;
		bad |= (thpswap_map(s, REGION, &mem) != -ECHILD) << 1;
		bad |= (thpswap_advise(s, mem, REGION, THPSWAP_ADVICE_COLD) != -ECHILD) << 2;
		bad |= (thpswap_unregister(s, mem, REGION) != -ECHILD) << 3;
		bad |= (thpswap_close(s) != -ECHILD) << 4;
		bad |= (((unsigned char *)mem)[REGION - 1] != 0x5a) << 5;
		_exit(bad);
	}
	r = h_wait(pid);
	H_CHECK(r == 0, "in the fork child, calls on the parent's session: bits %#x wrong "
		"(1 stats, 2 map, 4 advise, 8 unregister, 16 close, 32 data)", r);
	H_CHECK(thpswap_advise(s, mem, REGION, THPSWAP_ADVICE_COLD) >= 0, "advise in the parent");
	H_CHECK(((unsigned char *)mem)[0] == 0x5a, "the parent's data");
	H_CHECK(thpswap_get_stats(s, &st, sizeof(st)) == 0 && st.regions == 1, "parent's stats");
	r = thpswap_close(s);
	H_CHECK(r == 0, "thpswap_close in the parent: %s", strerror(-r));
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited with %d", r);
	printf("PASS fork-session\n");
}

/* ---- fallback ---- */

struct outcome {
	int status;
	char out[4096], err[4096];
};

static void slurp(int fd, char *buf, size_t sz)
{
	ssize_t n = pread(fd, buf, sz - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

/* Run @argv with stdout and stderr into files; wait for it. */
static void run_captured(const char *const *argv, struct outcome *o)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int out = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int err = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	pid_t pid;
	int r;

	H_CHECK(out >= 0 && err >= 0, "O_TMPFILE in /tmp: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out, 1);
	posix_spawn_file_actions_adddup2(&fa, err, 2);
	sanitizer_env(true);
	r = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	sanitizer_env(false);
	posix_spawn_file_actions_destroy(&fa);
	H_CHECK(r == 0, "spawn %s: %s", argv[0], strerror(r));
	h_track(pid);
	o->status = h_wait(pid);
	slurp(out, o->out, sizeof(o->out));
	slurp(err, o->err, sizeof(o->err));
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_fallback(void)
{
	char dir[] = "/tmp/thpswap-run-test.XXXXXX", sock[128], script[160];
	/* A shell and a program it execs: the preload is in both. */
	const char *cmd = "echo first; /bin/echo second; exit 3";
	const char *loud[] = { run_bin, "--socket", sock, "--", "/bin/sh", "-c", cmd, NULL };
	const char *quiet[] = { run_bin, "--quiet", "--socket", sock, "--", "/bin/sh", "-c", cmd,
				NULL };
	const char *show = "echo \"[$LD_PRELOAD]\"";
	const char *env_plain[] = { run_bin, "--quiet", "--socket", sock, "--", "/bin/sh", "-c", show,
				    NULL };
	const char *env_nochild[] = { run_bin, "--quiet", "--no-children", "--socket", sock, "--",
				      "/bin/sh", "-c", show, NULL };
	const char *missing[] = { run_bin, "--socket", sock, "--", "/nonexistent/program", NULL };
	const char *noexec[] = { run_bin, "--socket", sock, "--", script, NULL };
	const char *usage[] = { run_bin, "--min-size", "1M", "--", "/bin/true", NULL };
	const char *prefix = "thpswap: not managing memory: ";
	struct outcome o;
	int fd;

	h_deadline(60);
	H_CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/control.sock", dir);
	snprintf(script, sizeof(script), "%s/not-executable", dir);

	run_captured(loud, &o);
	printf("no daemon: status %d, stdout %s, stderr %s", o.status, o.out, o.err);
	H_CHECK(o.status == 3, "exit status %d, want the program's 3", o.status);
	H_CHECK(!strcmp(o.out, "first\nsecond\n"), "stdout %s", o.out);
	H_CHECK(count_lines(o.err) == 1 && !strncmp(o.err, prefix, strlen(prefix)),
		"stderr must be one line starting \"%s\": %s", prefix, o.err);
	H_CHECK(strstr(o.err, sock), "stderr does not name the socket %s: %s", sock, o.err);

	run_captured(quiet, &o);
	H_CHECK(o.status == 3 && !strcmp(o.out, "first\nsecond\n") && !o.err[0],
		"--quiet: status %d, stdout %s, stderr %s", o.status, o.out, o.err);

	/* --no-children: the preload takes itself out of LD_PRELOAD, so what
	 * the shell sees (and would pass on to what it execs) lacks it. */
	run_captured(env_plain, &o);
	H_CHECK(o.status == 0 && strstr(o.out, "libthpswap-preload.so"),
		"with children the shell's LD_PRELOAD holds the preload: %s (status %d)", o.out,
		o.status);
	run_captured(env_nochild, &o);
	H_CHECK(o.status == 0 && o.out[0] == '[' && !strstr(o.out, "libthpswap-preload.so"),
		"--no-children: the shell's LD_PRELOAD still holds the preload: %s (status %d)",
		o.out, o.status);

	run_captured(missing, &o);
	H_CHECK(o.status == 127, "a missing COMMAND: status %d, want 127 (stderr %s)", o.status, o.err);
	fd = open(script, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	H_CHECK(fd >= 0, "create %s: %s", script, strerror(errno));
	close(fd);
	run_captured(noexec, &o);
	H_CHECK(o.status == 126, "a COMMAND not executable: status %d, want 126 (stderr %s)",
		o.status, o.err);
	run_captured(usage, &o);
	H_CHECK(o.status == 125, "--min-size 1M: status %d, want 125 (stderr %s)", o.status, o.err);
	unlink(script);
	rmdir(dir);
	printf("PASS run-fallback\n");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s adopt|adopt-text|full|grow|numpy|redis|jvm|forked-session|fallback THPSWAP_RUN [PROGRAM]\n", argv[0]);
		return H_FAIL;
	}
	run_bin = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "adopt") && argc == 4) {
		test_adopt(argv[3]);
	} else if (!strcmp(argv[1], "adopt-text") && argc == 4) {
#ifdef NDEBUG
		printf("skip: only debug builds can be told to read the text of /proc/self/maps\n");
		return H_SKIP;
#endif
		setenv("THPSWAP_ADOPT_MAPS_TEXT", "1", 1);
		test_adopt(argv[3]);
	}
	else if (!strcmp(argv[1], "full") && argc == 4)
		test_full(argv[3]);
	else if (!strcmp(argv[1], "grow") && argc == 4)
		test_grow(argv[3]);
	else if (!strcmp(argv[1], "numpy") && argc == 4)
		test_numpy(argv[3]);
	else if (!strcmp(argv[1], "forked-session"))
		test_forked_session();
	else if (!strcmp(argv[1], "fallback"))
		test_fallback();
	else if (!strcmp(argv[1], "redis"))
		test_redis();
	else if (!strcmp(argv[1], "jvm") && argc == 4)
		test_jvm(argv[3]);
	else
		return H_FAIL;
	return H_PASS;
}
