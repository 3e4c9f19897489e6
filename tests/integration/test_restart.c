/* SPDX-License-Identifier: MIT */
/*
 * thpswapd restarts without loss: the client keeps serving its own faults
 * while the daemon is away, connects again by itself, and the new daemon
 * adopts its session (RESUME: its arena, records and counters).
 *
 *   itest-restart basic    regions evicted, the daemon SIGKILLed: every byte
 *                          read back while it is away; started again, the
 *                          client is adopted (thpswapctl clients, the
 *                          reconnects counter), its counters kept, evict
 *                          works; then again after SIGTERM (a restart), and
 *                          with the listening socket kept meanwhile (as a
 *                          systemd socket unit keeps it).
 *   itest-restart stress   threads write, read and verify generation-stamped
 *                          pages while the daemon is SIGKILLed and started
 *                          again 20 times, each time with an eviction of the
 *                          daemon's in flight: 0 wrong bytes, no access
 *                          blocked 1 s or more, re-adopted each time, evict
 *                          working after each restart, and no record left
 *                          half-evicted; three more clients (this program,
 *                          "idle") adopted after every restart as well.
 *   itest-restart refuse   RESUME with what is not the client's arena (no
 *                          fd, unsealed, wrong size, another magic, another
 *                          pid's): an ERROR naming what is wrong; a good one
 *                          is adopted.
 *   itest-restart sigbus   a fault whose stored bytes cannot be read back
 *                          ends in SIGBUS for the faulting thread, at once.
 *   itest-restart sigbus-fork    such a region SIGBUSes in a fork child too
 *                          (filled by the agent), corrupt counted.
 *   itest-restart sigbus-mremap  and at its new place after a misaligned
 *                          mremap, every page, never zeros; of half a
 *                          region moved, that half (the rest stays put).
 *
 * Nothing waits blind: the test polls the arena's counters (pread of the
 * memfd) against a deadline.  THPSWAP_TEST_VERBOSE=1 runs the daemon with -v.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "harness.h"
#include "proto.h"
#include "util.h"

#define REG THPSWAP_REGION_SIZE
#define NPG H_PAGES_PER_REGION
#define SEC 1000000000ull

static const char *const *daemon_args(void)
{
	static const char *const quiet[] = { NULL };
	static const char *const verbose[] = { "-v", NULL };
	const char *v = getenv("THPSWAP_TEST_VERBOSE");

	return v && *v == '1' ? verbose : quiet;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Counter @c of this process's arena, as the agent wrote it. */
static uint64_t arena_ctr(int afd, enum thp_counter c)
{
	return h_arena_header(afd).ctr[c];
}

/* Poll the arena until the agent counts @want reconnects; the time it took
 * in ns.  Fails the test after @deadline_s. */
static uint64_t wait_adopted(int afd, uint64_t want, unsigned deadline_s)
{
	uint64_t t0 = thp_now_ns(), end = t0 + (uint64_t)deadline_s * h_slowdown() * SEC;

	for (;;) {
		uint64_t n = arena_ctr(afd, THP_C_RECONNECTS);

		H_CHECK(n <= want, "reconnects %llu, more than the %llu restarts",
			(unsigned long long)n, (unsigned long long)want);
		if (n == want)
			return thp_now_ns() - t0;
		H_CHECK(thp_now_ns() < end, "not adopted within %u s: reconnects %llu, want %llu",
			deadline_s, (unsigned long long)n, (unsigned long long)want);
		pause_ms(2);
	}
}

/* thpswapctl --json clients lists this process. */
static void check_listed(const struct h_daemon *d, const char *when)
{
	static char out[65536];
	const char *argv[] = { "--json", "clients", NULL };
	char pid[24];
	int st = h_ctl(d, out, sizeof(out), argv);

	H_CHECK(st == 0, "%s: thpswapctl clients exited %d: %s", when, st, out);
	snprintf(pid, sizeof(pid), "\"pid\": %d,", (int)getpid());
	H_CHECK(strstr(out, pid), "%s: thpswapctl clients does not list pid %d: %s", when,
		(int)getpid(), out);
}

/* thpswapctl evict --pid us --all: the regions it evicted (-1: it failed). */
static char evict_out[4096]; /* the last answer, for a failure to show */

static long ctl_evict_all(const struct h_daemon *d)
{
	char pid[16];
	const char *argv[] = { "--json", "evict", "--pid", pid, "--all", NULL };
	int st;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	st = h_ctl(d, evict_out, sizeof(evict_out), argv);
	if (st != 0 && st != 1)
		return -1;
	return (long)h_json_u64(evict_out, "evicted");
}

/*
 * Evictions work (restart-stress): evict --all until a region goes.  The
 * workers touch every region all the time, so on a loaded machine an
 * eviction slow enough can see each one cancelled by a fault (counted, and
 * right: the region is in use); a region the killed eviction left evicted
 * must first be faulted back.  Fails the test after 30 s.
 */
static void evict_some(const struct h_daemon *d, int afd, const char *what)
{
	uint64_t end = thp_now_ns() + 30 * SEC * h_slowdown();
	long n;

	h_at("%s: wait for a resident region", what);
	while (arena_ctr(afd, THP_C_RESIDENT) == 0) {
		H_CHECK(thp_now_ns() < end, "%s: no region resident for 30 s", what);
		pause_ms(1);
	}
	h_at("%s: thpswapctl evict --all", what);
	do
		n = ctl_evict_all(d);
	while (n <= 0 && thp_now_ns() < end);
	if (n <= 0)
		h_evict_reasons(afd, "evict --all");
	H_CHECK(n > 0, "%s: thpswapctl evict --all evicted %ld regions for 30 s (resident %llu): %s",
		what, n, (unsigned long long)arena_ctr(afd, THP_C_RESIDENT), evict_out);
}

/* The regions thpswapctl regions --pid us lists (-1: it failed). */
static long count_regions(const struct h_daemon *d)
{
	static char out[1 << 18];
	char pid[16];
	const char *argv[] = { "--json", "regions", "--pid", pid, NULL };
	long n = 0;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (h_ctl(d, out, sizeof(out), argv) != 0)
		return -1;
	for (const char *p = out; (p = strstr(p, "\"state\"")); p++)
		n++;
	return n;
}

/* A restart the way systemctl restart does it: SIGTERM, wait. */
static void daemon_term(struct h_daemon *d)
{
	int st;

	H_CHECK(kill(d->pid, SIGTERM) == 0, "SIGTERM thpswapd: %s", strerror(errno));
	H_CHECK(waitpid(d->pid, &st, 0) == d->pid, "wait for thpswapd: %s", strerror(errno));
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "thpswapd exited with status 0x%x", st);
	d->pid = 0;
}

/* ---- basic ---- */

#define BASIC_REGIONS 16

static void run_basic(void)
{
	struct thpswap_session *s;
	struct h_daemon d;
	struct h_mem m;
	struct thpswap_stats st0, st1;
	uint64_t t0, t;
	long long v;
	long n;
	int afd, lfd, r;

	h_deadline(120);
	r = h_daemon_start(&d, daemon_args());
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(&s, d.sock);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	afd = h_arena_fd();
	h_mem_prepare(s, &m, BASIC_REGIONS, BASIC_REGIONS);
	st0 = h_stats(s);

	h_at("SIGKILL thpswapd");
	r = h_daemon_kill(&d);
	H_CHECK(r == 128 + SIGKILL, "thpswapd did not die of SIGKILL: %d", r);
	/* Every byte, with nobody listening. */
	t0 = thp_now_ns();
	h_mem_check(&m, "read back while thpswapd is dead");
	t = thp_now_ns() - t0;
	st1 = h_stats(s);
	H_CHECK(st1.restores == st0.restores + BASIC_REGIONS,
		"restores %llu -> %llu with the daemon dead, want +%d",
		(unsigned long long)st0.restores, (unsigned long long)st1.restores, BASIC_REGIONS);
	printf("daemon dead: %d regions restored and checked in %.1f ms\n", BASIC_REGIONS,
	       (double)t / 1e6);

	h_at("start thpswapd again");
	r = h_daemon_restart(&d, daemon_args());
	H_CHECK(r == 0, "start thpswapd again: %s", strerror(-r));
	t = wait_adopted(afd, 1, 15);
	printf("restart 1 (SIGKILL): adopted %.1f ms after the start\n", (double)t / 1e6);
	check_listed(&d, "after the SIGKILL");
	/* The counters are the arena's: the new daemon sees the old ones. */
	v = h_counter(&d, "restores");
	H_CHECK(v >= (long long)st1.restores, "the new daemon reports restores %lld, the arena "
		"had %llu", v, (unsigned long long)st1.restores);
	v = h_counter(&d, "evictions");
	H_CHECK(v >= (long long)st0.evictions && v >= BASIC_REGIONS,
		"the new daemon reports evictions %lld, before the restart %llu", v,
		(unsigned long long)st0.evictions);
	H_CHECK(h_counter(&d, "reconnects") == 1, "reconnects %lld, want 1",
		h_counter(&d, "reconnects"));
	/* Its records: the new daemon reads them from the arena. */
	n = count_regions(&d);
	H_CHECK(n == BASIC_REGIONS, "thpswapctl regions lists %ld regions after the restart, "
		"want %d", n, BASIC_REGIONS);
	n = ctl_evict_all(&d);
	H_CHECK(n == BASIC_REGIONS, "thpswapctl evict --all after the restart evicted %ld of %d",
		n, BASIC_REGIONS);
	h_mem_check(&m, "read back after the new daemon's eviction");

	h_at("SIGTERM thpswapd");
	daemon_term(&d);
	r = h_daemon_restart(&d, daemon_args());
	H_CHECK(r == 0, "start thpswapd again: %s", strerror(-r));
	t = wait_adopted(afd, 2, 15);
	printf("restart 2 (SIGTERM): adopted %.1f ms after the start\n", (double)t / 1e6);
	check_listed(&d, "after the SIGTERM");
	n = ctl_evict_all(&d);
	H_CHECK(n == BASIC_REGIONS, "thpswapctl evict --all after the second restart evicted "
		"%ld of %d", n, BASIC_REGIONS);
	h_mem_check(&m, "read back after the third daemon's eviction");

	/* As systemd restarts it: the socket unit keeps the listening socket,
	 * so the agent's connect succeeds with no daemon there, and its
	 * RESUME waits in the backlog until the daemon starts. */
	h_at("SIGKILL thpswapd, the socket kept");
	r = h_daemon_kill(&d);
	H_CHECK(r == 128 + SIGKILL, "thpswapd did not die of SIGKILL: %d", r);
	lfd = h_listen(&d);
	H_CHECK(lfd >= 0, "listen on %s: %s", d.sock, strerror(-lfd));
	{
		struct pollfd p = { .fd = lfd, .events = POLLIN };

		r = poll(&p, 1, (int)(15000 * h_slowdown()));
		H_CHECK(r == 1, "the agent did not connect within 15 s: %d", r);
	}
	r = h_daemon_restart_on(&d, daemon_args(), lfd);
	H_CHECK(r == 0, "start thpswapd on the kept socket: %s", strerror(-r));
	close(lfd);
	t = wait_adopted(afd, 3, 15);
	printf("restart 3 (SIGKILL, socket kept): adopted %.1f ms after the start\n",
	       (double)t / 1e6);
	check_listed(&d, "after the restart on the kept socket");
	n = ctl_evict_all(&d);
	H_CHECK(n == BASIC_REGIONS, "thpswapctl evict --all after the third restart evicted "
		"%ld of %d", n, BASIC_REGIONS);
	h_mem_check(&m, "read back after the fourth daemon's eviction");
	st1 = h_stats(s);
	H_CHECK(st1.evictions >= st0.evictions + 3 * BASIC_REGIONS, "evictions %llu -> %llu",
		(unsigned long long)st0.evictions, (unsigned long long)st1.evictions);
	h_report(s, &d, "basic");

	/* A session ends as well while its agent waits to connect again. */
	h_mem_free(&m);
	r = h_daemon_kill(&d);
	H_CHECK(r == 128 + SIGKILL, "thpswapd did not die of SIGKILL: %d", r);
	t0 = thp_now_ns();
	r = thpswap_close(s);
	t = thp_now_ns() - t0;
	H_CHECK(r == 0, "thpswap_close with the daemon dead: %s", strerror(-r));
	H_CHECK(t < 3 * SEC * h_slowdown(), "thpswap_close with the daemon dead took %.3f s",
		(double)t / 1e9);
	printf("thpswap_close with the daemon dead: %.1f ms\n", (double)t / 1e6);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "h_daemon_stop: %d", r);
}

/* ---- stress ---- */

#define WORKERS 3
#define REGS 8            /* per worker */
#define RESTARTS 20
#define DOWN_OPS 400      /* accesses the workers make while the daemon is away */
#define STALL_MAX_NS SEC  /* the bound on one access */

struct worker {
	unsigned id;
	pthread_t th;
	uint64_t rng;
	char *base;
	uint64_t pg0;
	uint32_t gen[REGS * NPG];
};

static struct {
	atomic_bool stop;
	atomic_uint gen;
	atomic_ulong ops;
	_Atomic uint64_t stall_max;     /* this round's longest access */
	_Atomic uint64_t stall_all;     /* the run's */
	atomic_bool down;               /* the daemon is dead (or not adopted us yet) */
	_Atomic uint64_t stall_down;    /* the run's longest access while it was */
	struct worker w[WORKERS];
} g;

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

static uint32_t new_gen(void)
{
	uint32_t x;

	do
		x = atomic_fetch_add(&g.gen, 1) & 0xffffff;
	while (!x);
	return x;
}

static void note_stall(uint64_t ns)
{
	uint64_t m = atomic_load(&g.stall_max);

	while (ns > m && !atomic_compare_exchange_weak(&g.stall_max, &m, ns))
		;
	m = atomic_load(&g.stall_all);
	while (ns > m && !atomic_compare_exchange_weak(&g.stall_all, &m, ns))
		;
	if (!atomic_load(&g.down))
		return;
	m = atomic_load(&g.stall_down);
	while (ns > m && !atomic_compare_exchange_weak(&g.stall_down, &m, ns))
		;
}

/* Touch page @p of worker @w (a read, or a write of a new generation):
 * the touch is timed (it is where a fault waits), the page checked. */
static void access_page(struct worker *w, size_t p, bool write)
{
	volatile char *a = (volatile char *)w->base + p * H_PAGE;
	uint64_t t0 = thp_now_ns(), t;
	char what[64];
	long bad;

	if (write) {
		uint32_t gen = new_gen();

		a[0] = a[0];
		t = thp_now_ns() - t0;
		h_page_fill((void *)a, w->pg0 + p, gen);
		w->gen[p] = gen;
	} else {
		(void)a[0];
		t = thp_now_ns() - t0;
		bad = h_page_check((const void *)a, w->pg0 + p, w->gen[p]);
		H_CHECK(bad < 0, "worker %u: page %zu (region %zu) differs at offset %ld: %s, want "
			"gen %u", w->id, p, p / NPG, bad, h_page_what((const void *)a, what,
								    sizeof(what)), w->gen[p]);
	}
	/* The bound stretches only where everything does (ThreadSanitizer). */
	H_CHECK(t < STALL_MAX_NS * h_slowdown(), "worker %u: an access to page %zu was blocked "
		"%.3f s", w->id, p, (double)t / 1e9);
	note_stall(t);
	atomic_fetch_add(&g.ops, 1);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&g.stop)) {
		uint64_t x = rnd(w);
		size_t r = (size_t)(x % REGS), p;

		switch ((x >> 8) % 8) {
		case 0: /* a whole region, every page */
			h_at("worker %u: read region %zu", w->id, r);
			for (p = r * NPG; p < (r + 1) * NPG; p++)
				access_page(w, p, false);
			break;
		case 1:
		case 2:
		case 3: /* a run of pages written */
			p = r * NPG + (size_t)((x >> 16) % (NPG - 16));
			h_at("worker %u: write pages %zu..%zu", w->id, p, p + 15);
			for (size_t k = 0; k < 16; k++)
				access_page(w, p + k, true);
			break;
		default: /* a page here and there */
			p = r * NPG + (size_t)((x >> 16) % NPG);
			h_at("worker %u: read page %zu", w->id, p);
			access_page(w, p, false);
		}
	}
	h_at("worker %u: stopped", w->id);
	return NULL;
}

/* Records left in a state only an eviction or restore in progress holds. */
static void count_transient(uint32_t idx, const struct thp_record *r, void *arg)
{
	unsigned *n = arg;
	uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);

	(void)idx;
	if (st == THP_ST_EVICTING || st == THP_ST_CANCEL || st == THP_ST_RESTORING) {
		fprintf(stderr, "record at 0x%llx is %s\n", (unsigned long long)r->addr,
			thp_state_name(st));
		(*n)++;
	}
}

/* Start thpswapctl evict --all without waiting for it. */
static pid_t evict_async(const struct h_daemon *d, int *out)
{
	char pid[16];
	const char *argv[] = { getenv("THPSWAPCTL"), "--socket", d->sock, "--json", "evict",
			       "--pid", pid, "--all", NULL };
	int in;
	pid_t p;
	int r;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	r = h_spawn_piped(&p, argv, &in, out);
	H_CHECK(r == 0, "spawn thpswapctl evict: %s", strerror(-r));
	close(in);
	h_track(p);
	return p;
}

/* Did the thpswapctl whose stdout is @fd get the daemon's answer? */
static bool ctl_answered(int fd)
{
	static char buf[8192];
	size_t got = 0;
	ssize_t n;

	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	return strstr(buf, "\"evicted\"") != NULL;
}

/* ---- more clients: each must be adopted after every restart too ---- */

#define IDLERS 3

/* A client of its own (itest-restart idle): 2 regions written and evicted;
 * then on stdin "check" -> "ok R" (every byte read back, R reconnects),
 * EOF -> close and exit. */
static int run_idle(void)
{
	struct thpswap_session *s;
	struct h_mem m;
	char line[64];
	int afd, r;

	r = thpswap_open(&s, NULL);
	H_CHECK(r == 0, "idle client: thpswap_open: %s", strerror(-r));
	afd = h_arena_fd();
	h_mem_prepare(s, &m, 2, 2);
	printf("ready\n");
	fflush(stdout);
	while (h_read_line(0, line, sizeof(line)) > 0) {
		if (strcmp(line, "check"))
			continue;
		h_mem_check(&m, "idle client");
		printf("ok %llu\n", (unsigned long long)arena_ctr(afd, THP_C_RECONNECTS));
		fflush(stdout);
	}
	h_mem_free(&m);
	r = thpswap_close(s);
	H_CHECK(r == 0, "idle client: thpswap_close: %s", strerror(-r));
	return H_PASS;
}

struct idler {
	pid_t pid;
	int to, from;
};

static void idlers_start(struct idler *c)
{
	char self[4096], line[64];
	const char *argv[] = { self, "idle", NULL };
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	H_CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	for (unsigned i = 0; i < IDLERS; i++) {
		H_CHECK(h_spawn_piped(&c[i].pid, argv, &c[i].to, &c[i].from) == 0, "spawn %s",
			self);
		h_track(c[i].pid);
		H_CHECK(h_read_line(c[i].from, line, sizeof(line)) > 0 && !strcmp(line, "ready"),
			"idle client %d: %s", (int)c[i].pid, line);
	}
}

/* Poll thpswapctl clients until it lists us and every idler. */
static void wait_all_listed(const struct h_daemon *d, const struct idler *c, unsigned round)
{
	static char out[65536];
	const char *argv[] = { "--json", "clients", NULL };
	uint64_t end = thp_now_ns() + 15 * SEC * h_slowdown();

	for (;;) {
		unsigned listed = 0;
		char pid[24];

		if (h_ctl(d, out, sizeof(out), argv) == 0)
			for (unsigned i = 0; i <= IDLERS; i++) {
				snprintf(pid, sizeof(pid), "\"pid\": %d,",
					 i < IDLERS ? (int)c[i].pid : (int)getpid());
				listed += strstr(out, pid) != NULL;
			}
		if (listed == IDLERS + 1)
			return;
		H_CHECK(thp_now_ns() < end, "round %u: %u of %u clients adopted within 15 s: %s",
			round, listed, IDLERS + 1, out);
		pause_ms(5);
	}
}

/* Every idler read its bytes back right and was adopted @want times. */
static void idlers_stop(struct idler *c, unsigned long long want)
{
	for (unsigned i = 0; i < IDLERS; i++) {
		char line[64];
		unsigned long long got = 0;

		H_CHECK(write(c[i].to, "check\n", 6) == 6, "write to idle client: %s",
			strerror(errno));
		H_CHECK(h_read_line(c[i].from, line, sizeof(line)) > 0 &&
			sscanf(line, "ok %llu", &got) == 1, "idle client %d: %s", (int)c[i].pid,
			line);
		H_CHECK(got == want, "idle client %d: reconnects %llu, want %llu", (int)c[i].pid,
			got, want);
		close(c[i].to);
		H_CHECK(h_wait(c[i].pid) == 0, "idle client %d failed", (int)c[i].pid);
		close(c[i].from);
	}
}

static void run_stress(void)
{
	struct idler idlers[IDLERS];
	struct thpswap_session *s;
	struct h_daemon d;
	char *mem;
	uint64_t adopt_max = 0, round_stall[RESTARTS];
	unsigned inflight = 0, transient = 0;
	int afd, r;

	h_deadline(240);
	r = h_daemon_start(&d, daemon_args());
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(&s, d.sock);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	afd = h_arena_fd();
	idlers_start(idlers);
	r = thpswap_map(s, (size_t)WORKERS * REGS * REG, (void **)&mem);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	for (unsigned i = 0; i < WORKERS; i++) {
		struct worker *w = &g.w[i];

		w->id = i;
		w->rng = 0x5eed0000ull + i * 0x9e3779b97f4a7c15ull;
		w->base = mem + (size_t)i * REGS * REG;
		w->pg0 = (uint64_t)i * REGS * NPG;
		for (size_t p = 0; p < (size_t)REGS * NPG; p++) {
			w->gen[p] = new_gen();
			h_page_fill(w->base + p * H_PAGE, w->pg0 + p, w->gen[p]);
		}
	}
	for (unsigned i = 0; i < WORKERS; i++) {
		r = pthread_create(&g.w[i].th, NULL, worker_main, &g.w[i]);
		H_CHECK(r == 0, "pthread_create: %s", strerror(r));
	}

	for (unsigned k = 0; k < RESTARTS; k++) {
		uint64_t ev0 = 0, ev, ops0, t;
		char what[32];
		int out;
		pid_t ctl;

		/* Evictions work with this daemon. */
		snprintf(what, sizeof(what), "round %u", k);
		evict_some(&d, afd, what);
		/* One more, killed in flight: once the agent has evicted a
		 * region of it (counted in the arena), the rest is under way.
		 * It is asked for when the workers have faulted some regions
		 * back, and again if it found none resident after all. */
		h_at("round %u: wait for the eviction to start", k);
		ctl = -1;
		for (uint64_t end = thp_now_ns() + 30 * SEC * h_slowdown();;) {
			H_CHECK(thp_now_ns() < end, "round %u: the eviction did not start", k);
			if (ctl < 0) {
				if (arena_ctr(afd, THP_C_RESIDENT) < REGS) {
					pause_ms(1);
					continue;
				}
				ev0 = arena_ctr(afd, THP_C_EVICTIONS);
				ctl = evict_async(&d, &out);
			}
			ev = arena_ctr(afd, THP_C_EVICTIONS);
			if (ev > ev0)
				break;
			if (waitpid(ctl, NULL, WNOHANG) == ctl) {
				h_untrack(ctl);
				close(out);
				ctl = -1;
				continue;
			}
			pause_ms(1);
		}
		h_at("round %u: SIGKILL thpswapd", k);
		atomic_store(&g.down, true);
		r = h_daemon_kill(&d);
		H_CHECK(r == 128 + SIGKILL, "round %u: thpswapd did not die of SIGKILL: %d", k, r);
		/* No answer for thpswapctl: the EVICT was in flight when the
		 * daemon died (the agent cancels the rest of it). */
		if (!ctl_answered(out))
			inflight++;
		h_wait(ctl);
		close(out);

		/* The workers go on, served by their own agent. */
		h_at("round %u: daemon dead, workers on", k);
		ops0 = atomic_load(&g.ops);
		for (uint64_t end = thp_now_ns() + 30 * SEC * h_slowdown();
		     atomic_load(&g.ops) < ops0 + DOWN_OPS;) {
			H_CHECK(thp_now_ns() < end, "round %u: the workers made %lu accesses in "
				"30 s with the daemon dead", k, atomic_load(&g.ops) - ops0);
			pause_ms(1);
		}

		h_at("round %u: start thpswapd again", k);
		r = h_daemon_restart(&d, daemon_args());
		H_CHECK(r == 0, "round %u: start thpswapd again: %s", k, strerror(-r));
		t = wait_adopted(afd, k + 1, 15);
		atomic_store(&g.down, false);
		if (t > adopt_max)
			adopt_max = t;
		wait_all_listed(&d, idlers, k);
		round_stall[k] = atomic_exchange(&g.stall_max, 0);
		printf("restart %2u: adopted %6.1f ms after the start; longest access %.3f ms\n",
		       k + 1, (double)t / 1e6, (double)round_stall[k] / 1e6);
		fflush(stdout);
	}
	check_listed(&d, "after the last restart");
	evict_some(&d, afd, "after the last restart");
	idlers_stop(idlers, RESTARTS);

	atomic_store(&g.stop, true);
	for (unsigned i = 0; i < WORKERS; i++)
		pthread_join(g.w[i].th, NULL);
	/* Every byte, once more. */
	for (unsigned i = 0; i < WORKERS; i++) {
		long bad = h_check(g.w[i].base, (size_t)REGS * REG, g.w[i].pg0, 0, g.w[i].gen,
				   "after the last restart");

		H_CHECK(bad < 0, "worker %u's regions differ at offset %ld", i, bad);
	}
	/* Nothing left half-way by the EVICTs cancelled. */
	h_arena_each(afd, count_transient, &transient);
	H_CHECK(transient == 0, "%u records left evicting, cancelling or restoring", transient);
	printf("%u restarts, %u with an eviction cancelled in flight; %lu accesses, 0 wrong "
	       "bytes; longest access %.3f ms (%.3f ms while the daemon was away); longest "
	       "adoption %.1f ms\n", RESTARTS, inflight, atomic_load(&g.ops),
	       (double)atomic_load(&g.stall_all) / 1e6, (double)atomic_load(&g.stall_down) / 1e6,
	       (double)adopt_max / 1e6);
	H_CHECK(inflight > 0, "no restart caught an eviction in flight");
	h_report(s, &d, "stress");
	H_CHECK(h_counter(&d, "reconnects") == RESTARTS, "reconnects %lld, want %d",
		h_counter(&d, "reconnects"), RESTARTS);

	r = thpswap_unmap(s, mem, (size_t)WORKERS * REGS * REG);
	H_CHECK(r == 0, "thpswap_unmap: %s", strerror(-r));
	r = thpswap_close(s);
	H_CHECK(r == 0, "thpswap_close: %s", strerror(-r));
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
}

/* ---- refuse ---- */

static int connect_sock(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 10 };

	H_CHECK(fd >= 0, "socket: %s", strerror(errno));
	H_CHECK(strlen(path) < sizeof(sa.sun_path), "socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	H_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", path,
		strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* An arena as a daemon makes it, for @pid, of @nreg regions; @seals to
 * add (0: none). */
static int make_arena(pid_t pid, uint32_t nreg, int seals, uint64_t size_delta)
{
	struct thp_arena_header h;
	int fd = memfd_create("fake-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	H_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	memset(&h, 0, sizeof(h));
	thp_arena_layout(&h, nreg);
	h.client_pid = pid;
	h.cfg = (struct thp_arena_config){ .zstd_level = 1, .frames = 1, .max_stored_pct = 90,
					   .pool_slots = 1 };
	H_CHECK(ftruncate(fd, (off_t)(h.size + size_delta)) == 0, "ftruncate: %s", strerror(errno));
	H_CHECK(pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h), "pwrite: %s", strerror(errno));
	if (seals)
		H_CHECK(fcntl(fd, F_ADD_SEALS, seals) == 0, "F_ADD_SEALS: %s", strerror(errno));
	return fd;
}

/* RESUME on a fresh connection with @fd (or none: -1), claiming @nreg
 * regions in @size bytes; the daemon's answer: 0 for WELCOME (*@conn left
 * open), else its ERROR's err with the text in @why. */
static uint32_t resume_flags;	/* what the next send_resume says */

static int send_resume(const struct h_daemon *d, int fd, uint32_t nreg, uint64_t size,
		       char *why, size_t whysz, int *conn)
{
	struct thp_msg_resume rs = { .max_regions = nreg, .arena_size = size, .session_id = 7,
				     .flags = resume_flags };
	static char buf[THP_MSG_MAX];
	struct thp_msg m;
	int c = connect_sock(d->sock), r;
	long n;

	snprintf(rs.comm, sizeof(rs.comm), "fake");
	r = thp_msg_send(c, THP_MSG_RESUME, 5, &rs, sizeof(rs), &fd, fd >= 0 ? 1 : 0);
	H_CHECK(r == 0, "send RESUME: %s", strerror(-r));
	n = thp_msg_recv(c, buf, sizeof(buf), NULL, 0, NULL);
	H_CHECK(n > 0, "no answer to RESUME: %s", n ? strerror((int)-n) : "EOF");
	r = thp_msg_parse(buf, (size_t)n, &m);
	H_CHECK(r == 0 && m.hdr.seq == 5, "answer to RESUME: %s, seq %u", strerror(-r), m.hdr.seq);
	if (m.hdr.type == THP_MSG_WELCOME) {
		*conn = c;
		return 0;
	}
	H_CHECK(m.hdr.type == THP_MSG_ERROR, "answer to RESUME: %s", thp_msg_type_name(m.hdr.type));
	snprintf(why, whysz, "%s", ((const struct thp_msg_error *)m.payload)->text);
	close(c);
	return ((const struct thp_msg_error *)m.payload)->err;
}

static void expect_refused(const struct h_daemon *d, const char *what, int fd, uint32_t nreg,
			   uint64_t size, int want, const char *needle)
{
	char why[256] = "";
	int conn = -1, r = send_resume(d, fd, nreg, size, why, sizeof(why), &conn);

	printf("%-28s -> %d (%s)\n", what, r, why);
	H_CHECK(r == want, "%s: RESUME answered %d (%s), want %d", what, r, why, want);
	H_CHECK(strstr(why, needle), "%s: the reason \"%s\" does not say \"%s\"", what, why,
		needle);
	if (fd >= 0)
		close(fd);
}

static void run_refuse(void)
{
	const int seals = THP_ARENA_SEALS;
	struct thp_arena_header h;
	struct h_daemon d;
	char out[8192], why[256];
	const char *clients[] = { "--json", "clients", NULL };
	int fd, conn = -1, pfd[2], r;

	h_deadline(60);
	r = h_daemon_start(&d, daemon_args());
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	memset(&h, 0, sizeof(h));
	thp_arena_layout(&h, 4);

	expect_refused(&d, "no fd", -1, 4, h.size, -EINVAL, "arena memfd");
	fd = memfd_create("not-sealable", MFD_CLOEXEC);
	H_CHECK(fd >= 0 && ftruncate(fd, (off_t)h.size) == 0, "memfd: %s", strerror(errno));
	expect_refused(&d, "memfd without seals", fd, 4, h.size, -EBADF, "not sealed");
	expect_refused(&d, "unsealed arena", make_arena(getpid(), 4, 0, 0), 4, h.size, -EBADF,
		       "not sealed");
	H_CHECK(pipe2(pfd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	close(pfd[1]);
	expect_refused(&d, "a pipe", pfd[0], 4, h.size, -EBADF, "not a memfd");
	expect_refused(&d, "arena one page too long", make_arena(getpid(), 4, seals, 4096), 4,
		       h.size, -EBADMSG, "does not fit");
	fd = make_arena(getpid(), 4, 0, 0);
	H_CHECK(pwrite(fd, "garbage!", 8, 0) == 8 && fcntl(fd, F_ADD_SEALS, seals) == 0,
		"spoil the magic: %s", strerror(errno));
	expect_refused(&d, "another magic", fd, 4, h.size, -EPROTO, "not an arena");
	expect_refused(&d, "another pid's arena", make_arena(getpid() + 1, 4, seals, 0), 4,
		       h.size, -EPERM, "made for pid");
	expect_refused(&d, "RESUME disagrees with arena", make_arena(getpid(), 4, seals, 0), 5,
		       h.size, -EBADMSG, "RESUME says");
	resume_flags = 1u << 31;
	expect_refused(&d, "a flag not defined", make_arena(getpid(), 4, seals, 0), 4, h.size,
		       -EINVAL, "flags");
	resume_flags = 0;

	/* Nothing of those became a session. */
	r = h_ctl(&d, out, sizeof(out), clients);
	H_CHECK(r == 0 && !strstr(out, "\"fake\""), "thpswapctl clients: %d: %s", r, out);
	/* The same, right: adopted. */
	fd = make_arena(getpid(), 4, seals, 0);
	r = send_resume(&d, fd, 4, h.size, why, sizeof(why), &conn);
	H_CHECK(r == 0, "a good arena was refused: %d (%s)", r, why);
	close(fd);
	r = h_ctl(&d, out, sizeof(out), clients);
	H_CHECK(r == 0 && strstr(out, "\"fake\""), "the adopted session is not listed: %s", out);
	printf("a good arena: adopted\n");
	close(conn);
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
}

/* ---- sigbus ---- */

/* The stored bytes of the evicted region at @base become unreadable: its
 * blob header is junk. */
static void corrupt_record(int afd, const void *base)
{
	long idx = h_arena_find(afd, base);
	struct thp_arena_header h;
	char junk[64];

	H_CHECK(idx >= 0, "no record for region 0");
	h = h_arena_header(afd);
	memset(junk, 0xa5, sizeof(junk));
	H_CHECK(pwrite(afd, junk, sizeof(junk), (off_t)thp_arena_slot_off(&h, (uint32_t)idx)) ==
		(ssize_t)sizeof(junk), "pwrite into the arena: %s", strerror(errno));
}

/* A daemon, a session, two evicted regions, region 0's record made
 * unreadable; the arena's descriptor. */
static int sigbus_start(struct h_daemon *d, struct thpswap_session **s, struct h_mem *m)
{
	int afd, r;

	h_deadline(60);
	r = h_daemon_start(d, daemon_args());
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(s, d->sock);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	afd = h_arena_fd();
	h_mem_prepare(*s, m, 2, 2);
	corrupt_record(afd, m->base);
	return afd;
}

/* A poisoned region goes like any other: freed, closed, the daemon stops. */
static void sigbus_end(struct h_daemon *d, struct thpswap_session *s, struct h_mem *m)
{
	int r;

	h_mem_free(m);
	r = thpswap_close(s);
	H_CHECK(r == 0, "thpswap_close: %s", strerror(-r));
	r = h_daemon_stop(d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
}

static void run_sigbus(void)
{
	struct thpswap_session *s;
	struct h_daemon d;
	struct h_mem m;
	int afd = sigbus_start(&d, &s, &m);
	uint64_t t0, t;
	bool bus;

	t0 = thp_now_ns();
	bus = h_read_sigbus(m.base);
	t = thp_now_ns() - t0;
	H_CHECK(bus, "a read of a region whose bytes cannot be read back did not SIGBUS");
	H_CHECK(t < SEC, "the SIGBUS took %.3f s", (double)t / 1e9);
	/* Again: still SIGBUS, never zeros. */
	H_CHECK(h_read_sigbus(m.base + REG - 1), "a second read of the poisoned region did not SIGBUS");
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 1, "corrupt %llu, want 1",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	printf("SIGBUS %.3f ms after the touch; corrupt 1\n", (double)t / 1e6);
	/* The other region is whole. */
	H_CHECK(h_check(m.base + REG, REG, NPG, 0, m.gen + NPG, "region 1") < 0,
		"region 1 differs");
	sigbus_end(&d, s, &m);
}

/*
 * A fork child gets the evicted regions filled from their records by the
 * agent, not by a restore of its own: one that does not decode must reach
 * it poisoned too.  The child reports by its exit status: 0 both ends of
 * region 0 SIGBUS and region 1 is whole, 1 region 0 read without SIGBUS,
 * 2 region 1 differs.
 */
static void run_sigbus_fork(void)
{
	struct thpswap_session *s;
	struct h_daemon d;
	struct h_mem m;
	int afd = sigbus_start(&d, &s, &m), st;
	void *bar = h_barrier_map(s);
	pid_t pid;

	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (!h_read_sigbus(m.base) || !h_read_sigbus(m.base + REG - 1))
			_exit(1);
		_exit(h_check(m.base + REG, REG, NPG, 0, m.gen + NPG, "child's region 1") < 0 ? 0 : 2);
	}
	H_CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 1,
		"the fork child read region 0, whose stored bytes do not decode, without SIGBUS");
	H_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fork child: status %#x", st);
	/* The fork's event is handled once the agent serves the barrier. */
	h_agent_sync(bar);
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 1, "corrupt %llu after the fork, want 1",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	printf("the fork child: SIGBUS at both ends of region 0, region 1 whole; corrupt 1\n");
	/* Our own record is as corrupt: a restore here poisons it too. */
	H_CHECK(h_read_sigbus(m.base), "the parent read region 0 without SIGBUS");
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 2, "corrupt %llu after the parent's touch, want 2",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	H_CHECK(h_check(m.base + REG, REG, NPG, 0, m.gen + NPG, "region 1") < 0, "region 1 differs");
	sigbus_end(&d, s, &m);
}

/*
 * A misaligned mremap writes stored bytes to their new place at once (no
 * PMD fits there): bytes that do not decode must be poisoned there, every
 * page of the region, while the region beside it arrives whole.
 */
static void run_sigbus_mremap(void)
{
	struct thpswap_session *s;
	struct h_daemon d;
	struct h_mem m;
	int afd = sigbus_start(&d, &s, &m);
	void *bar = h_barrier_map(s), *to;
	unsigned bus = 0;

	to = mremap(m.base, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(m.len, H_PAGE));
	H_CHECK(to != MAP_FAILED, "mremap to a misaligned place: %s", strerror(errno));
	m.base = to;
	h_agent_sync(bar);
	for (size_t off = 0; off < REG; off += H_PAGE)
		bus += h_read_sigbus(m.base + off);
	H_CHECK(bus == NPG, "%u of %u pages of region 0 SIGBUS at the misaligned place (the rest "
		"read as memory)", bus, (unsigned)NPG);
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 1, "corrupt %llu after the move, want 1",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	H_CHECK(h_check(m.base + REG, REG, NPG, 0, m.gen + NPG, "region 1") < 0, "region 1 differs");
	printf("misaligned mremap: all %u pages of region 0 SIGBUS, region 1 whole; corrupt 1\n", bus);
	h_mem_free(&m);

	/* Only the second half of region 0 moves: that half is poisoned at its
	 * new place, and the first half stays with the record, which a touch
	 * restores (and poisons) as ever. */
	h_mem_prepare(s, &m, 2, 2);
	corrupt_record(afd, m.base);
	to = mremap(m.base + REG / 2, REG + REG / 2, REG + REG / 2, MREMAP_MAYMOVE | MREMAP_FIXED,
		    h_reserve(REG + REG / 2, H_PAGE));
	H_CHECK(to != MAP_FAILED, "mremap of 1.5 regions to a misaligned place: %s", strerror(errno));
	h_agent_sync(bar);
	bus = 0;
	for (size_t off = 0; off < REG / 2; off += H_PAGE)
		bus += h_read_sigbus((char *)to + off);
	H_CHECK(bus == NPG / 2, "%u of %u pages of region 0's moved half SIGBUS at the misaligned place",
		bus, (unsigned)NPG / 2);
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 2, "corrupt %llu after the half move, want 2",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	H_CHECK(h_check((char *)to + REG / 2, REG, NPG, 0, m.gen + NPG, "region 1, moved") < 0,
		"region 1 differs after the half move");
	H_CHECK(h_read_sigbus(m.base) && h_read_sigbus(m.base + REG / 2 - 1),
		"the half of region 0 left in place read without SIGBUS");
	H_CHECK(arena_ctr(afd, THP_C_CORRUPT) == 3, "corrupt %llu after touching the half left, want 3",
		(unsigned long long)arena_ctr(afd, THP_C_CORRUPT));
	printf("half moved: all %u pages SIGBUS there, the half left SIGBUS too, region 1 whole; "
	       "corrupt 3\n", bus);
	sigbus_end(&d, s, &m);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s basic|stress|refuse|sigbus|sigbus-fork|sigbus-mremap\n", argv[0]);
		return H_FAIL;
	}
	h_require_root();
	if (strcmp(argv[1], "idle"))
		setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "basic"))
		run_basic();
	else if (!strcmp(argv[1], "stress"))
		run_stress();
	else if (!strcmp(argv[1], "refuse"))
		run_refuse();
	else if (!strcmp(argv[1], "sigbus"))
		run_sigbus();
	else if (!strcmp(argv[1], "sigbus-fork"))
		run_sigbus_fork();
	else if (!strcmp(argv[1], "sigbus-mremap"))
		run_sigbus_mremap();
	else if (!strcmp(argv[1], "idle"))
		return run_idle();
	else
		return H_FAIL;
	printf("PASS\n");
	return H_PASS;
}
