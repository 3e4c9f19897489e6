/* SPDX-License-Identifier: MIT */
/*
 * A client killed with SIGKILL mid-run: its records and arena are freed; the
 * other clients keep working.
 *
 * This process is the controller and has no managed memory.  It starts the
 * daemon and two clients (this binary again, "client N"), which talk to it
 * one line at a time over their stdin/stdout:
 *
 *   client: ready R      mapped, filled and evicted its R regions
 *   run  -> running      a thread now faults regions back (verifying them)
 *                        and evicts them again, without pause
 *   stop -> stopped N    that thread ended after N operations
 *   check -> ok F P      every byte of every region verified after being
 *                        restored (F faults, P regions PMD-mapped)
 *   exit (or EOF)        close the session, exit 0
 *
 * The victim is killed while it runs and while `thpswapctl evict` works on
 * it; then the daemon must forget it (clients, regions, status), close its
 * arena memfd and connection, and the survivor must still evict and restore
 * every byte right.  THPSWAP_TEST_VERBOSE=1 runs the daemon with -v.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "datagen.h"
#include "harness.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define NREG 32
#define SEED 0xc11e

/* ---- the client ---- */

struct client {
	struct thpswap_session *s;
	char *mem;
	uint64_t seed;
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long ops;
	bool stop;
};

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void verify_region(struct client *c, size_t i, const char *when)
{
	long bad = thp_datagen_check(c->mem + i * REG, REG, THP_DATA_HEAPMIX, c->seed, i);

	H_CHECK(bad < 0, "client %d: %s: region %zu differs at offset %ld", getpid(), when, i, bad);
}

static void *busy_main(void *arg)
{
	struct client *c = arg;
	uint64_t x = c->seed * 0x9e3779b97f4a7c15ull + 1;

	for (;;) {
		size_t i;
		char *p;

		pthread_mutex_lock(&c->lock);
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		c->ops++;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = (size_t)(x % NREG);
		p = c->mem + i * REG;
		switch ((x >> 32) % 3) {
		case 0:
			H_CHECK(thpswap_advise(c->s, p, REG, THPSWAP_ADVICE_COLD) >= 0, "advise COLD");
			break;
		case 1:
			/* A write fault that changes nothing. */
			__atomic_fetch_add(p + (x >> 40) % REG, 0, __ATOMIC_RELAXED);
			verify_region(c, i, "after a write fault");
			break;
		default:
			verify_region(c, i, "after a read fault");
		}
	}
}

static int client_main(const char *id)
{
	struct client c = { .seed = SEED + strtoull(id, NULL, 10) };
	struct thpswap_stats st;
	char cmd[64];
	bool running = false;
	int n, r;

	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	r = thpswap_open(&c.s, NULL);
	H_CHECK(r == 0, "client: thpswap_open: %s", strerror(-r));
	r = thpswap_map(c.s, NREG * REG, (void **)&c.mem);
	H_CHECK(r == 0, "client: thpswap_map: %s", strerror(-r));
	h_report_sigbus(c.s, c.mem, NREG * REG);
	for (size_t i = 0; i < NREG; i++)
		thp_datagen_fill(c.mem + i * REG, REG, THP_DATA_HEAPMIX, c.seed, i);
	n = thpswap_advise(c.s, c.mem, NREG * REG, THPSWAP_ADVICE_COLD);
	reply("ready %d", n);

	while (h_read_line(0, cmd, sizeof(cmd)) > 0) {
		if (!strcmp(cmd, "run") && !running) {
			H_CHECK(pthread_create(&c.th, NULL, busy_main, &c) == 0, "pthread_create");
			running = true;
			/* Busy for real before we say so. */
			pthread_mutex_lock(&c.lock);
			while (c.ops < 2 * NREG)
				pthread_cond_wait(&c.cond, &c.lock);
			pthread_mutex_unlock(&c.lock);
			reply("running");
		} else if (!strcmp(cmd, "stop") && running) {
			pthread_mutex_lock(&c.lock);
			c.stop = true;
			pthread_mutex_unlock(&c.lock);
			pthread_join(c.th, NULL);
			running = false;
			reply("stopped %lu", c.ops);
		} else if (!strcmp(cmd, "check") && !running) {
			for (size_t i = 0; i < NREG; i++) {
				/* The first touch is a write fault for odd regions. */
				if (i & 1)
					__atomic_fetch_add(c.mem + i * REG, 0, __ATOMIC_RELAXED);
				verify_region(&c, i, "check");
			}
			H_CHECK(thpswap_get_stats(c.s, &st, sizeof(st)) == 0, "stats");
			reply("ok %llu %ld", (unsigned long long)st.faults, h_pmd_mapped(c.mem, NREG * REG));
		} else if (!strcmp(cmd, "exit")) {
			break;
		} else {
			reply("error: unexpected command '%s'", cmd);
		}
	}
	if (running) {
		pthread_mutex_lock(&c.lock);
		c.stop = true;
		pthread_mutex_unlock(&c.lock);
		pthread_join(c.th, NULL);
	}
	H_CHECK(thpswap_close(c.s) == 0, "client: thpswap_close");
	return 0;
}

/* ---- the controller ---- */

struct proc {
	pid_t pid;
	int to, from;
	char name[16];
};

static struct h_daemon d;
static struct proc procs[2];
static char out[65536];

/* A failed check exits: take the clients with us. */
static void kill_clients(void)
{
	for (unsigned k = 0; k < 2; k++)
		if (procs[k].pid > 0) {
			kill(procs[k].pid, SIGKILL);
			waitpid(procs[k].pid, NULL, 0);
			procs[k].pid = 0;
		}
}

/* For failure messages: has @p exited, and how? */
static const char *alive(struct proc *p)
{
	static char b[64];
	int st = 0;
	pid_t r = waitpid(p->pid, &st, WNOHANG);

	if (r == 0)
		return "still running";
	if (r < 0)
		snprintf(b, sizeof(b), "waitpid: %s", strerror(errno));
	else if (WIFSIGNALED(st))
		snprintf(b, sizeof(b), "killed by signal %d", WTERMSIG(st));
	else
		snprintf(b, sizeof(b), "exited with status %d", WEXITSTATUS(st));
	if (r > 0)
		p->pid = 0;
	return b;
}

static void expect(struct proc *p, const char *prefix, char *line, size_t sz)
{
	long n = h_read_line(p->from, line, sz);

	H_CHECK(n > 0 && !strncmp(line, prefix, strlen(prefix)),
		"%s (pid %d) said '%s' (%ld), expected '%s...'; it is %s", p->name, (int)p->pid,
		n > 0 ? line : "", n, prefix, alive(p));
}

static void say(struct proc *p, const char *cmd)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);

	H_CHECK(write(p->to, line, (size_t)n) == n, "write to %s: %s", p->name, strerror(errno));
}

static void spawn_client(struct proc *p, const char *self, const char *id, const char *name)
{
	const char *argv[] = { self, "client", id, NULL };
	char line[64];
	int n = -1;

	snprintf(p->name, sizeof(p->name), "%s", name);
	H_CHECK(h_spawn_piped(&p->pid, argv, &p->to, &p->from) == 0, "spawn %s", name);
	expect(p, "ready ", line, sizeof(line));
	H_CHECK(sscanf(line, "ready %d", &n) == 1 && n == NREG, "%s evicted %d of %d regions",
		name, n, NREG);
}

/* Is there a client with this pid in `thpswapctl --json clients`? */
static bool has_client(pid_t pid)
{
	const char *argv[] = { "--json", "clients", NULL };
	const char *p = out;
	long long v;
	int r = h_ctl(&d, out, sizeof(out), argv);

	H_CHECK(r == 0, "thpswapctl clients exited %d", r);
	while ((p = strstr(p, "\"pid\":"))) {
		if (h_json_i64(p, "pid", &v) == 0 && v == pid)
			return true;
		p++;
	}
	return false;
}

struct evictor {
	pthread_t th;
	const char *pid;
	unsigned calls;
	bool stop;
	int bad_exit;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* evict --all of the victim, back to back, across its death. */
static void *evictor_main(void *arg)
{
	struct evictor *e = arg;
	const char *argv[] = { "evict", "--pid", e->pid, "--all", NULL };
	char buf[1024];

	for (;;) {
		int r;

		pthread_mutex_lock(&lock);
		if (e->stop) {
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		pthread_mutex_unlock(&lock);
		r = h_ctl(&d, buf, sizeof(buf), argv);
		pthread_mutex_lock(&lock);
		/* 0: done; 1: the session ended first (or its pid is unknown). */
		if (r != 0 && r != 1)
			e->bad_exit = r;
		e->calls++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int controller(void)
{
	struct proc *victim = &procs[0], *survivor = &procs[1];
	const char *verbose[] = { "-v", NULL };
	struct evictor ev = { 0 };
	char self[512], needle[64], line[128], vpid[16], spid[16];
	unsigned base_fds, fds, arenas, victim_arenas = 1, done_before;
	unsigned long long faults;
	long long v;
	long pmd;
	ssize_t n;
	int st, r, k;

	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* a dead client's pipe: an error, not death */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	H_CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	H_CHECK(h_daemon_start(&d, getenv("THPSWAP_TEST_VERBOSE") ? verbose : NULL) == 0,
		"start thpswapd");
	atexit(kill_clients); /* runs before the harness stops the daemon */

	spawn_client(survivor, self, "1", "survivor");
	H_CHECK(h_count_fds(d.pid, "thpswap-arena:", &base_fds, &arenas) == 0, "/proc/%d/fd", d.pid);
	H_CHECK(arenas == 1, "daemon holds %u arenas for one client", arenas);
	spawn_client(victim, self, "2", "victim");
	snprintf(vpid, sizeof(vpid), "%d", (int)victim->pid);
	snprintf(spid, sizeof(spid), "%d", (int)survivor->pid);
	snprintf(needle, sizeof(needle), "thpswap-arena:%d", (int)victim->pid);
	H_CHECK(h_count_fds(d.pid, needle, &fds, &victim_arenas) == 0 && victim_arenas == 1,
		"the daemon holds %u arenas of the victim", victim_arenas);
	H_CHECK(has_client(victim->pid) && has_client(survivor->pid), "clients: %s", out);
	printf("daemon %d: %u fds with the survivor, %u with the victim too\n", (int)d.pid,
	       base_fds, fds);

	say(victim, "run");
	say(survivor, "run");
	expect(victim, "running", line, sizeof(line));
	expect(survivor, "running", line, sizeof(line));
	ev.pid = vpid;
	H_CHECK(pthread_create(&ev.th, NULL, evictor_main, &ev) == 0, "pthread_create");
	/* One eviction of the victim done; the next one is on its way. */
	pthread_mutex_lock(&lock);
	while (ev.calls < 1)
		pthread_cond_wait(&cond, &lock);
	done_before = ev.calls;
	pthread_mutex_unlock(&lock);

	H_CHECK(kill(victim->pid, SIGKILL) == 0, "kill");
	H_CHECK(waitpid(victim->pid, &st, 0) == victim->pid && WIFSIGNALED(st) &&
		WTERMSIG(st) == SIGKILL, "victim ended with status 0x%x", st);
	victim->pid = 0;
	pthread_mutex_lock(&lock);
	ev.stop = true;
	pthread_mutex_unlock(&lock);
	pthread_join(ev.th, NULL);
	H_CHECK(ev.bad_exit == 0, "thpswapctl evict of the dying client exited %d", ev.bad_exit);
	printf("victim %s killed while busy and while evict --all of it kept coming "
	       "(%u done before the kill, %u in all)\n", vpid, done_before, ev.calls);

	/* The daemon learns of the death from the pidfd on its own loop; we
	 * have nothing to wait on, so poll, bounded (10 s). */
	for (k = 0; k < 1000 && has_client((pid_t)atoi(vpid)); k++)
		sleep_ms(10);
	H_CHECK(k < 1000, "the killed client %s is still listed after 10 s: %s", vpid, out);
	H_CHECK(has_client(survivor->pid), "the survivor (pid %d, %s) is no longer a client "
		"of the daemon: %s", (int)survivor->pid, alive(survivor), out);
	{
		const char *argv[] = { "regions", "--pid", vpid, NULL };

		r = h_ctl(&d, out, sizeof(out), argv);
		H_CHECK(r == 1, "thpswapctl regions --pid %s (killed) exited %d: %s", vpid, r, out);
	}
	{
		const char *argv[] = { "--json", "status", NULL };

		r = h_ctl(&d, out, sizeof(out), argv);
		H_CHECK(r == 0 && h_json_u64(out, "clients") == 1 &&
			h_json_u64(out, "regions") == NREG, "status after the kill: %s", out);
	}
	/* Connections close on the loop's next turn, also that of the last
	 * thpswapctl: poll the fd table, bounded (10 s), running nothing. */
	for (k = 0; k < 1000; k++) {
		H_CHECK(h_count_fds(d.pid, needle, &fds, &victim_arenas) == 0, "/proc/%d/fd", d.pid);
		if (victim_arenas == 0 && fds <= base_fds)
			break;
		sleep_ms(10);
	}
	H_CHECK(victim_arenas == 0 && fds <= base_fds,
		"10 s after the kill the daemon still holds %u arenas of pid %s and %u fds "
		"(%u before the victim came)", victim_arenas, vpid, fds, base_fds);
	printf("daemon back to %u fds, no arena of %s\n", fds, vpid);

	/* The survivor: stopped, evicted by the daemon, restored and checked. */
	say(survivor, "stop");
	expect(survivor, "stopped ", line, sizeof(line));
	printf("survivor %s: %s\n", spid, line);
	{
		const char *argv[] = { "--json", "evict", "--pid", spid, "--all", NULL };
		long long failed = -1;

		r = h_ctl(&d, out, sizeof(out), argv);
		H_CHECK(r == 0 && h_json_i64(out, "failed", &failed) == 0 && failed == 0,
			"evict of the survivor exited %d: %s", r, out);
	}
	{
		const char *argv[] = { "--json", "clients", NULL };

		r = h_ctl(&d, out, sizeof(out), argv);
		H_CHECK(r == 0 && h_json_i64(out, "resident", &v) == 0 && v == 0 &&
			h_json_u64(out, "evicted_ram") == NREG,
			"the survivor is not all evicted: %s", out);
	}
	say(survivor, "check");
	expect(survivor, "ok ", line, sizeof(line));
	H_CHECK(sscanf(line, "ok %llu %ld", &faults, &pmd) == 2 && pmd == NREG,
		"survivor: %s (%d regions)", line, NREG);
	printf("survivor restored and verified every byte: %s\n", line);
	say(survivor, "exit");
	H_CHECK(waitpid(survivor->pid, &st, 0) == survivor->pid && WIFEXITED(st) &&
		WEXITSTATUS(st) == 0, "survivor ended with status 0x%x", st);
	survivor->pid = 0;
	r = h_daemon_stop(&d);
	H_CHECK(r == 0, "thpswapd exited %d", r);
	return H_PASS;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "client"))
		return client_main(argv[2]);
	return controller();
}
