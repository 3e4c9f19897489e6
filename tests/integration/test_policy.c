/* SPDX-License-Identifier: MIT */
/*
 * The daemon decides on its own (daemon/policy.c).  A client process with a
 * hot set (a thread reads every page of it, over and over) and a cold set
 * (written once, then left alone), in a memory cgroup this test makes for
 * it and removes on the way out; nothing asks for an eviction.
 *
 *   cold   --cold-age 2: while the client's stall and promotions stay low,
 *          the pressure loop evicts a growing step of the regions not
 *          faulted for 2 s.  All of the cold set must go.  The daemon sees
 *          faults, not reads of resident memory, so a hot region may go
 *          once; it comes straight back, which is a promotion, and must
 *          then be left alone (watched for a further 3 s = 6 intervals).
 *   limit  --cold-age 3600, so the calm path evicts nothing: the cgroup's
 *          memory limit (v1 memory.limit_in_bytes, or v2 memory.max) is set
 *          to put its usage at 85 %, above --cgroup-high-pct 80.  The daemon
 *          must evict the least recently faulted regions (the cold set was
 *          mapped first) until usage is under 80 % again (it aims at 70).
 *
 *   limit-mistaken  as limit, but the client first evicts its cold set
 *          itself and reads it all back (--promotion-window 600): every
 *          cold region is a promotion the daemon now leaves alone, and the
 *          hot ones were never evicted.  Over the limit the daemon must
 *          still evict: the regions it was wrong about are taken last, the
 *          longest away first (the cold set, not the hot one it evicts
 *          first and that comes straight back), or the cgroup's OOM killer
 *          ends the client.
 *
 *   written --write-tracking yes, --cold-age 2: the hot set is written
 *          (every page, its own bytes back) instead of read, so the
 *          agent's write tracking marks it written although it never
 *          faults.  All of the cold set must go and no hot region at all
 *          (watched as in cold), and the hot regions stay PMD-mapped
 *          (write-protecting them each interval must not split them).
 *
 * All: a hot region is evicted at most once, is resident at the end, and
 * every byte of both sets is right afterwards.  A pinned range, filled
 * before the cold set and never touched again (by age and by the limit
 * rule the first pick), is never evicted.  What happened is read from
 * the arena's records (evictions, restores per region) and the cgroup.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pagemap.h"
#include "probe.h"

extern char **environ;
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define NCOLD 48
#define NHOT 8
#define NPIN 4 /* a pinned range, filled first: the oldest, never touched again */
#define HIGH_PCT 80
#define WATCH_S 3

enum scenario { COLD, LIMIT, LIMIT_MISTAKEN, WRITTEN };

/* The cgroup made for the client: v1 memory and/or v2 directories ("" if
 * not made), and which one holds the limit. */
static struct {
	char v1[PATH_MAX], v2[PATH_MAX];
	char limit[PATH_MAX + 32], usage[PATH_MAX + 32];
} cg;
static pid_t client = -1;

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void pause_poll(void)
{
	struct timespec t = { .tv_nsec = 20 * 1000000 };

	nanosleep(&t, NULL); /* between looks at state, never to wait for it */
}

/* ---- the cgroup ---- */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

static long long read_ll(const char *path)
{
	char buf[64] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoll(buf) : -1;
}

/* Our own cgroup paths from /proc/self/cgroup: v2 ("0::") and v1 memory. */
static void own_cgroups(char *v2, char *v1, size_t sz)
{
	char line[PATH_MAX + 64];
	FILE *f = fopen("/proc/self/cgroup", "re");

	v2[0] = v1[0] = 0;
	H_CHECK(f, "/proc/self/cgroup: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2)
			continue;
		line[strcspn(line, "\n")] = 0;
		*c2 = 0;
		if (!strcmp(line, "0") && c1 + 1 == c2)
			snprintf(v2, sz, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
		else if (strstr(c1 + 1, "memory") && !strstr(c1 + 1, "name="))
			snprintf(v1, sz, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
	}
	fclose(f);
}

static void cgroup_remove(void)
{
	if (client > 0) {
		kill(client, SIGKILL);
		waitpid(client, NULL, 0);
		client = -1;
	}
	/* The client is gone, so both are empty. */
	if (cg.v1[0] && rmdir(cg.v1) < 0 && errno != ENOENT)
		fprintf(stderr, "cannot remove cgroup %s: %s\n", cg.v1, strerror(errno));
	if (cg.v2[0] && rmdir(cg.v2) < 0 && errno != ENOENT)
		fprintf(stderr, "cannot remove cgroup %s: %s\n", cg.v2, strerror(errno));
	cg.v1[0] = cg.v2[0] = 0;
}

/* Killed by the test runner's timeout: the cgroups go all the same
 * (async-signal-safe calls only). */
static void on_term(int sig)
{
	if (client > 0) {
		kill(client, SIGKILL);
		waitpid(client, NULL, 0);
	}
	if (cg.v1[0])
		rmdir(cg.v1);
	if (cg.v2[0])
		rmdir(cg.v2);
	_exit(128 + sig);
}

/* Make a v1 memory cgroup and a v2 one (for memory.pressure) below our
 * own; the limit goes where the memory controller is.  Skips when no
 * memory limit can be had. */
static void cgroup_make(void)
{
	char own2[PATH_MAX], own1[PATH_MAX], base2[64] = "";
	struct stat st;

	own_cgroups(own2, own1, sizeof(own2));
	if (stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0)
		snprintf(base2, sizeof(base2), "/sys/fs/cgroup");
	else if (stat("/sys/fs/cgroup/unified/cgroup.controllers", &st) == 0)
		snprintf(base2, sizeof(base2), "/sys/fs/cgroup/unified");
	atexit(cgroup_remove);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (stat("/sys/fs/cgroup/memory/memory.limit_in_bytes", &st) == 0) {
		H_CHECK(snprintf(cg.v1, sizeof(cg.v1), "/sys/fs/cgroup/memory%s/thpswap-policy-%d",
				 own1, (int)getpid()) < (int)sizeof(cg.v1),
			"our v1 cgroup's path is too long: %s", own1);
		if (mkdir(cg.v1, 0755) < 0) {
			printf("skip: cannot make cgroup %s: %s\n", cg.v1, strerror(errno));
			cg.v1[0] = 0;
			exit(H_SKIP);
		}
		snprintf(cg.limit, sizeof(cg.limit), "%s/memory.limit_in_bytes", cg.v1);
		snprintf(cg.usage, sizeof(cg.usage), "%s/memory.usage_in_bytes", cg.v1);
	}
	if (base2[0]) {
		H_CHECK(snprintf(cg.v2, sizeof(cg.v2), "%s%s/thpswap-policy-%d", base2, own2,
				 (int)getpid()) < (int)sizeof(cg.v2),
			"our v2 cgroup's path is too long: %s", own2);
		if (mkdir(cg.v2, 0755) < 0) {
			fprintf(stderr, "no v2 cgroup %s (%s): the daemon reads the system's PSI\n",
				cg.v2, strerror(errno));
			cg.v2[0] = 0;
		} else if (!cg.v1[0]) {
			snprintf(cg.limit, sizeof(cg.limit), "%s/memory.max", cg.v2);
			snprintf(cg.usage, sizeof(cg.usage), "%s/memory.current", cg.v2);
		}
	}
	if (stat(cg.limit, &st) < 0) {
		printf("skip: no memory limit to set for the client (no v1 memory controller, no "
		       "v2 memory.max in %s)\n", cg.v2[0] ? cg.v2 : "(none)");
		exit(H_SKIP);
	}
}

/* In the client: move this process into the cgroup(s). */
static void cgroup_join(void)
{
	char path[PATH_MAX + 32], pid[16];
	int r;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (cg.v1[0]) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg.v1);
		r = write_str(path, pid);
		H_CHECK(r == 0, "join %s: %s", cg.v1, strerror(-r));
	}
	if (cg.v2[0]) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", cg.v2);
		r = write_str(path, pid);
		if (r < 0)
			fprintf(stderr, "cannot join %s (%s): the daemon reads the system's PSI\n",
				cg.v2, strerror(-r));
	}
}

/* ---- the client ---- */

static atomic_bool hot_stop;
static atomic_ulong hot_passes;

static void *hot_reader(void *arg)
{
	const struct h_mem *m = arg;

	h_at("reading the hot set");
	while (!atomic_load(&hot_stop)) {
		for (size_t o = 0; o < m->len; o += H_PAGE)
			(void)*(volatile const char *)(m->base + o);
		atomic_fetch_add(&hot_passes, 1);
	}
	return NULL;
}

/* Writes every page of the hot set with what it holds: dirty, never a fault. */
static void *hot_writer(void *arg)
{
	const struct h_mem *m = arg;

	h_at("writing the hot set");
	while (!atomic_load(&hot_stop)) {
		for (size_t o = 0; o < m->len; o += H_PAGE) {
			volatile char *q = (volatile char *)(m->base + o);

			*q = *q;
		}
		atomic_fetch_add(&hot_passes, 1);
	}
	return NULL;
}

struct tally {
	const struct h_mem *cold, *hot;
	unsigned cold_evicted, cold_ram, hot_evicted, hot_max_evictions, hot_resident;
	unsigned hot_restores, cold_restores, pin_evicted, pin_resident;
};

static struct h_mem pinned;

static void count_one(uint32_t idx, const struct thp_record *r, void *arg)
{
	struct tally *t = arg;
	uint64_t a = r->addr;
	uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);

	(void)idx;
	if (a >= (uintptr_t)t->cold->base && a < (uintptr_t)t->cold->base + t->cold->len) {
		t->cold_evicted += r->evictions > 0;
		t->cold_ram += st == THP_ST_RAM;
		t->cold_restores += r->restores;
	} else if (a >= (uintptr_t)t->hot->base && a < (uintptr_t)t->hot->base + t->hot->len) {
		if (r->evictions > 1) {
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			fprintf(stderr, "hot region %zu: %s, %u evictions, %u restores, last fault %.3f s "
				"ago, last eviction %.3f s ago\n",
				(size_t)(a - (uintptr_t)t->hot->base) / REG, thp_state_name(st),
				r->evictions, r->restores,
				((double)now.tv_sec * 1e9 + now.tv_nsec - (double)r->last_fault_ns) / 1e9,
				((double)now.tv_sec * 1e9 + now.tv_nsec - (double)r->evicted_ns) / 1e9);
		}
		t->hot_evicted += r->evictions > 0;
		t->hot_restores += r->restores;
		t->hot_resident += st == THP_ST_RESIDENT;
		if (r->evictions > t->hot_max_evictions)
			t->hot_max_evictions = r->evictions;
	} else if (a >= (uintptr_t)pinned.base && a < (uintptr_t)pinned.base + pinned.len) {
		t->pin_evicted += r->evictions > 0;
		t->pin_resident += st == THP_ST_RESIDENT;
	}
}

static struct tally tally(int afd, const struct h_mem *cold, const struct h_mem *hot)
{
	struct tally t = { .cold = cold, .hot = hot };

	h_arena_each(afd, count_one, &t);
	H_CHECK(t.hot_max_evictions <= 1,
		"a hot region was evicted %u times (the daemon should leave a region it was "
		"wrong about alone): %u of %u hot regions evicted, %u restores",
		t.hot_max_evictions, t.hot_evicted, NHOT, t.hot_restores);
	return t;
}

static const char *env(const char *name);

/* The daemon's count of this client's promotions (thpswapctl stats). */
static long long promotions(void)
{
	struct h_daemon d = { .pid = -1 };
	char pid[16], out[16384];
	const char *argv[] = { "--json", "stats", "--pid", pid, NULL };
	const char *at;

	snprintf(d.sock, sizeof(d.sock), "%s", env("THPSWAP_SOCKET"));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (h_ctl(&d, out, sizeof(out), argv) != 0 || !(at = strstr(out, "\"promotions\": ")))
		return -1;
	return atoll(at + strlen("\"promotions\": "));
}

/* limit-mistaken: evict the cold set, read it back, and wait until the
 * daemon's walk has counted each of those restores as a mistake. */
static void make_mistakes(struct thpswap_session *s, int afd, const struct h_mem *cold,
			  const struct h_mem *hot)
{
	struct tally t;
	long long p;

	h_at("evicting the cold set");
	do {
		thpswap_advise(s, cold->base, cold->len, THPSWAP_ADVICE_COLD);
		t = tally(afd, cold, hot);
	} while (t.cold_ram < NCOLD);
	h_at("reading the cold set back");
	h_mem_check(cold, "cold set, read back");
	h_at("waiting for the daemon to count %d promotions", NCOLD);
	while ((p = promotions()) < NCOLD)
		pause_poll();
	printf("cold set evicted and read back: the daemon counts %lld promotions\n", p);
}

static int run_client(enum scenario sc)
{
	struct thpswap_session *s;
	struct h_mem cold, hot;
	struct tally t = { 0 };
	pthread_t th;
	uint64_t t0, t1;
	int afd, r;

	cgroup_join();
	r = thpswap_open(&s, NULL);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	h_deadline(90);
	h_at("filling");
	h_mem_map(s, &pinned, NPIN, (uint64_t)(NCOLD + NHOT) * H_PAGES_PER_REGION);
	h_mem_write(&pinned, 0, pinned.len, 3);
	r = thpswap_pin(s, pinned.base, pinned.len);
	H_CHECK(r == NPIN, "thpswap_pin: %d (%s)", r, strerror(r < 0 ? -r : 0));
	/* Cold next: its regions were faulted (mapped) longest ago but the
	 * pinned ones. */
	h_mem_map(s, &cold, NCOLD, 0);
	h_mem_write(&cold, 0, cold.len, 1);
	h_mem_map(s, &hot, NHOT, (uint64_t)NCOLD * H_PAGES_PER_REGION);
	h_mem_write(&hot, 0, hot.len, 2);
	h_report_sigbus(s, cold.base, cold.len);
	H_CHECK(pthread_create(&th, NULL, sc == WRITTEN ? hot_writer : hot_reader, &hot) == 0,
		"pthread_create");
	afd = h_arena_fd();
	t0 = now_ms();

	if (sc == COLD || sc == WRITTEN) {
		h_at("waiting for the cold set to be evicted");
		do {
			pause_poll();
			t = tally(afd, &cold, &hot);
		} while (t.cold_ram < NCOLD);
		t1 = now_ms();
		printf("cold set: all %u regions (%u MiB) evicted %llu ms after filling; hot set: "
		       "%u of %u evicted, %u restores\n", NCOLD, NCOLD * 2,
		       (unsigned long long)(t1 - t0), t.hot_evicted, NHOT, t.hot_restores);
		/* Watching, not waiting: a second eviction of a hot region
		 * within this time is the failure. */
		h_at("watching the hot set for %d s", WATCH_S);
		while (now_ms() - t1 < WATCH_S * 1000u * h_slowdown()) {
			pause_poll();
			t = tally(afd, &cold, &hot);
		}
		/* Written all along: the daemon saw it used every interval. */
		H_CHECK(sc != WRITTEN || t.hot_evicted == 0,
			"%u of %u hot regions evicted although written every interval",
			t.hot_evicted, NHOT);
		if (sc == WRITTEN) {
			/* Not even tried: an eviction of a region being written is
			 * cancelled by the write (the cold set is never touched). */
			uint64_t tried = h_arena_header(afd).ctr[THP_C_EVICT_CANCELLED];
			/* Protected and written every interval, each still one THP. */
			int pm = thp_pagemap_open(0);
			long pmd = pm < 0 ? pm : thp_pagemap_count_pmd(pm, (uint64_t)(uintptr_t)hot.base,
								   (uint64_t)(uintptr_t)hot.base + hot.len);

			if (pm >= 0)
				close(pm);
			printf("hot set: %ld of %u regions PMD-mapped after %d s of write tracking\n",
			       pmd, NHOT, WATCH_S);
			H_CHECK(pmd == NHOT, "write tracking left %ld of %u hot regions PMD-mapped",
				pmd, NHOT);
			H_CHECK(tried == 0, "%llu evictions cancelled by the hot writer: the daemon "
				"picked regions written every interval", (unsigned long long)tried);
		}
	} else {
		long long usage, limit, evicted;
		char buf[32];

		if (sc == LIMIT_MISTAKEN)
			make_mistakes(s, afd, &cold, &hot);
		usage = read_ll(cg.usage);
		H_CHECK(usage > 0, "cannot read %s", cg.usage);
		limit = usage * 100 / 85;
		snprintf(buf, sizeof(buf), "%lld", limit);
		r = write_str(cg.limit, buf);
		H_CHECK(r == 0, "write %s to %s: %s", buf, cg.limit, strerror(-r));
		printf("cgroup usage %lld MiB, limit set to %lld MiB (%d %% high mark: %lld MiB)\n",
		       usage >> 20, limit >> 20, HIGH_PCT, (limit * HIGH_PCT / 100) >> 20);
		h_at("waiting for usage to drop under %d %% of the limit", HIGH_PCT);
		do {
			pause_poll();
			t = tally(afd, &cold, &hot);
			usage = read_ll(cg.usage);
		} while ((sc == LIMIT ? !t.cold_evicted : !t.cold_ram) || usage > limit * HIGH_PCT / 100);
		t1 = now_ms();
		evicted = t.cold_evicted;
		printf("usage %lld MiB after %llu ms: %lld cold regions (%lld MiB) evicted, hot set "
		       "%u of %u evicted\n", usage >> 20, (unsigned long long)(t1 - t0), evicted,
		       evicted * 2, t.hot_evicted, NHOT);
		/* Raise the limit again before reading the cold set back. */
		r = write_str(cg.limit, "-1");
		H_CHECK(r == 0 || write_str(cg.limit, "max") == 0, "cannot lift the limit");
	}

	atomic_store(&hot_stop, true);
	H_CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	t = tally(afd, &cold, &hot);
	H_CHECK(t.hot_resident == NHOT, "%u of %u hot regions resident at the end",
		t.hot_resident, NHOT);
	H_CHECK(t.pin_evicted == 0 && t.pin_resident == NPIN,
		"pinned range: %u of %u regions evicted, %u resident", t.pin_evicted, NPIN,
		t.pin_resident);
	printf("pinned range: %u regions, none evicted\n", NPIN);
	printf("hot reader: %lu passes; hot regions evicted (at most once each): %u of %u, "
	       "restored: %u; cold regions restored before the check: %u\n",
	       atomic_load(&hot_passes), t.hot_evicted, NHOT, t.hot_restores, t.cold_restores);
	h_at("checking every byte");
	h_mem_check(&hot, "hot set");
	h_mem_check(&cold, "cold set (restored)");
	h_mem_check(&pinned, "pinned range");
	h_mem_free(&pinned);
	h_mem_free(&cold);
	h_mem_free(&hot);
	h_report_sigbus(NULL, NULL, 0);
	H_CHECK(thpswap_close(s) == 0, "thpswap_close");
	return H_PASS;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v ? v : "";
}

int main(int argc, char **argv)
{
	static const char *const cold_args[] = {
		"-v", "--pressure-interval", "500", "--cold-age", "2", NULL };
	static const char *const limit_args[] = {
		"-v", "--pressure-interval", "500", "--cold-age", "3600", "--cgroup-high-pct", "80",
		NULL };
	static const char *const mistaken_args[] = {
		"-v", "--pressure-interval", "500", "--cold-age", "3600", "--cgroup-high-pct", "80",
		"--promotion-window", "600", NULL };
	static const char *const written_args[] = {
		"-v", "--pressure-interval", "500", "--cold-age", "2", "--write-tracking", "yes", NULL };
	const char *ca[] = { argv[0], "--client", NULL, NULL };
	enum scenario sc;
	struct h_daemon d;
	bool is_client;
	int r, st;

	is_client = argc == 3 && !strcmp(argv[1], "--client");
	if (argc != 2 + is_client ||
	    (strcmp(argv[1 + is_client], "cold") && strcmp(argv[1 + is_client], "limit") &&
	     strcmp(argv[1 + is_client], "limit-mistaken") && strcmp(argv[1 + is_client], "written"))) {
		fprintf(stderr, "usage: %s cold|limit|limit-mistaken|written\n", argv[0]);
		return H_FAIL;
	}
	sc = !strcmp(argv[1 + is_client], "cold")	      ? COLD :
	     !strcmp(argv[1 + is_client], "limit")	      ? LIMIT :
	     !strcmp(argv[1 + is_client], "limit-mistaken") ? LIMIT_MISTAKEN : WRITTEN;
	if (is_client) {
		/* The runner made the cgroups; it says where. */
		snprintf(cg.v1, sizeof(cg.v1), "%s", env("POLICY_CG_V1"));
		snprintf(cg.v2, sizeof(cg.v2), "%s", env("POLICY_CG_V2"));
		snprintf(cg.limit, sizeof(cg.limit), "%s", env("POLICY_CG_LIMIT"));
		snprintf(cg.usage, sizeof(cg.usage), "%s", env("POLICY_CG_USAGE"));
		return run_client(sc);
	}
	h_require_root();
	cgroup_make();
	r = h_daemon_start(&d, sc == COLD ? cold_args : sc == LIMIT ? limit_args :
			   sc == LIMIT_MISTAKEN ? mistaken_args : written_args);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	/* A process of its own (not a fork: that would inherit the
	 * harness's exit handler, which stops the daemon). */
	setenv("POLICY_CG_V1", cg.v1, 1);
	setenv("POLICY_CG_V2", cg.v2, 1);
	setenv("POLICY_CG_LIMIT", cg.limit, 1);
	setenv("POLICY_CG_USAGE", cg.usage, 1);
	ca[2] = argv[1];
	fflush(stdout);
	fflush(stderr);
	r = posix_spawn(&client, "/proc/self/exe", NULL, NULL, (char *const *)ca, environ);
	H_CHECK(r == 0, "spawn the client: %s", strerror(r));
	st = h_wait(client);
	client = -1;
	r = h_daemon_stop(&d);
	H_CHECK(st == 0, "the client failed (status %d)", st);
	H_CHECK(r == 0, "thpswapd exited %d", r);
	printf("PASS\n");
	return H_PASS;
}
