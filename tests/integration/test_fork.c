/* SPDX-License-Identifier: MIT */
/*
 * fork() of a process with managed memory.  The child sees every managed
 * byte as it was at the fork — regions evicted at that moment, regions the
 * parent evicts or writes later — whether it reads and exits (the database
 * snapshot pattern, the parent writing hard meanwhile), execs, zaps, forks
 * again or lives long and writes.  The parent keeps evicting and restoring
 * while the child runs and after it has exited; its own bytes stay right.
 * Each child _exits with a status the parent checks (0 = all bytes right).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE

/* In a child: report and _exit (never exit(): the parent's atexit work and
 * stdio buffers are not the child's). */
#define C_CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "child %d: %s:%d: check failed: %s: ", getpid(), __FILE__, __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); _exit(H_FAIL); } } while (0)

static pid_t fork_child(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	h_at("fork");
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		h_deadline(60);
		_exit(fn(arg));
	}
	h_track(pid);
	return pid;
}

static void expect_child(pid_t pid, const char *what)
{
	int st;

	h_at("waiting for the child (%s)", what);
	st = h_wait(pid);
	H_CHECK(st == 0, "%s: the child exited with %d", what, st);
}

/* A child's check of its snapshot: 0 when every byte is right. */
static int child_check(const struct h_mem *m, const char *what)
{
	char w[128];

	snprintf(w, sizeof(w), "child %d: %s", getpid(), what);
	h_at("%s", w);
	return h_check(m->base, m->len, m->pg0, 0, m->gen, w) < 0 ? 0 : H_FAIL;
}

static void pipe_or_fail(int p[2])
{
	H_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
}

static void send_byte(int fd)
{
	H_CHECK(write(fd, "x", 1) == 1, "pipe write: %s", strerror(errno));
}

static bool recv_byte(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

/* ---- the database snapshot pattern ---- */

struct snap {
	struct h_mem m;
	int ready[2];		/* child -> parent: first pass read */
};

static int snapshot_child(void *arg)
{
	struct snap *sn = arg;

	close(sn->ready[0]);
	for (int pass = 0; pass < 3; pass++) {
		if (child_check(&sn->m, pass ? "snapshot, read again" : "snapshot, first read"))
			return H_FAIL;
		if (pass == 0) {
			send_byte(sn->ready[1]);
			close(sn->ready[1]);
		}
	}
	return 0;
}

/*
 * Write one region with a new generation, evict another, check a third,
 * until @pid exits (or, with pid 0, @rounds times).  While no child can
 * hold our pages (!@shared), a region that is resident when it is evicted
 * must go (once the child is gone, one write makes a THP ours alone again:
 * docs/ARCHITECTURE.md), so the checks after a restore check restored
 * bytes.  Returns the child's exit status.
 */
static int churn(struct thpswap_session *s, struct h_mem *m, uint32_t *gen, pid_t pid,
		 unsigned rounds, bool shared)
{
	size_t nreg = m->len / R;
	int st = 0, fd = h_arena_fd();

	for (unsigned it = 0; pid ? true : it < rounds; it++) {
		size_t w = it % nreg, e = (it * 7 + 3) % nreg, c = (it * 3 + 1) % nreg;
		struct h_region_view v;
		char what[96], line[320];
		int n;

		if (pid) {
			pid_t k = waitpid(pid, &st, WNOHANG);

			H_CHECK(k >= 0, "waitpid: %s", strerror(errno));
			if (k == pid) {
				h_untrack(pid);
				return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
		}
		h_at("parent churn %u: write region %zu", it, w);
		h_mem_write(m, w * R, R, ++*gen);
		h_at("parent churn %u: evict region %zu", it, e);
		h_arena_view(fd, m->base + e * R, 1, &v);
		n = h_evict(s, m->base + e * R, R);
		if (!shared && v.state == THP_ST_RESIDENT) {
			h_region_describe(fd, m->base + e * R, line, sizeof(line));
			H_CHECK(n == 1, "parent churn %u: region %zu was resident, no child is left, yet "
				"it was not evicted: %s", it, e, line);
		}
		snprintf(what, sizeof(what), "parent, churn round %u, region %zu", it, c);
		h_at("%s", what);
		H_CHECK(h_check(m->base + c * R, R, m->pg0 + c * R / P, 0, m->gen + c * R / P, what) < 0,
			"%s", what);
	}
	return 0;
}

/* Half the regions evicted at the fork; the child reads everything three
 * times and exits while the parent writes every region, evicts, restores
 * (by advice and through the daemon). */
static void snapshot(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	const char *evict_all[] = { "evict", "--pid", NULL, "--all", NULL };
	struct thpswap_stats a, b;
	struct snap sn;
	uint32_t gen = 1;
	char pid[16], out[4096];
	pid_t child;
	int st;

	h_mem_map(s, &sn.m, 32, 0);
	h_mem_write(&sn.m, 0, sn.m.len, 1);
	H_CHECK(h_evict(s, sn.m.base, sn.m.len / 2) == 16, "evict 16 regions");
	pipe_or_fail(sn.ready);
	a = h_stats(s);
	child = fork_child(snapshot_child, &sn);
	close(sn.ready[1]);
	/* Write hard from the start; the daemon evicts too once the child has
	 * read everything once. */
	churn(s, &sn.m, &gen, 0, 8, true);
	h_at("snapshot: waiting for the child's first pass");
	H_CHECK(recv_byte(sn.ready[0]), "the child died before its first pass");
	close(sn.ready[0]);
	snprintf(pid, sizeof(pid), "%d", getpid());
	evict_all[2] = pid;
	h_at("snapshot: thpswapctl evict --all");
	st = h_ctl(d, out, sizeof(out), evict_all);
	/* 1: some regions failed, i.e. were refused while shared. */
	H_CHECK(st == 0 || st == 1, "thpswapctl evict exited %d: %s", st, out);
	printf("snapshot: thpswapctl evict --all while the child runs: %s", out);
	st = churn(s, &sn.m, &gen, child, 0, true);
	H_CHECK(st == 0, "snapshot: the child exited with %d", st);
	b = h_stats(s);
	printf("snapshot: during the child: evictions +%llu, refused +%llu (pages shared with it)\n",
	       (unsigned long long)(b.evictions - a.evictions),
	       (unsigned long long)(b.evict_refused - a.evict_refused));
	/* After the child: everything once more, then all of it round trip. */
	churn(s, &sn.m, &gen, 0, 64, false);
	h_at("snapshot: final round trip");
	h_mem_check(&sn.m, "parent after the child exited");
	st = h_evict(s, sn.m.base, sn.m.len);
	h_mem_check(&sn.m, "parent after the child exited, round trip");
	printf("snapshot: after the child exited and every region was written, %d of 32 evicted\n", st);
	H_CHECK(st == 32, "regions written after the child exited must be evictable: %d of 32", st);
	h_report(s, d, "snapshot");
	h_mem_free(&sn.m);
}

/* ---- eviction while a long-lived child holds the pages ---- */

struct longlived {
	struct h_mem m;
	int go[2];		/* parent -> child: verify and write now */
};

static int longlived_child(void *arg)
{
	struct longlived *l = arg;

	close(l->go[1]);
	h_at("child: waiting for go");
	if (!recv_byte(l->go[0]))
		return H_FAIL;
	if (child_check(&l->m, "snapshot after the parent evicted and wrote"))
		return H_FAIL;
	/* Live on and write: the child's memory is its own. */
	for (size_t r = 0; r < l->m.len / R; r += 2)
		h_mem_write(&l->m, r * R, R, 50);
	h_mem_zap(&l->m, R + 8 * P, 8 * P, MADV_DONTNEED);
	return child_check(&l->m, "own writes and zaps");
}

static void evict_while_child(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct longlived l;
	pid_t child;
	int n0, n1, n2, n3;

	h_mem_map(s, &l.m, 8, 0);
	h_mem_write(&l.m, 0, l.m.len, 1);
	H_CHECK(h_evict(s, l.m.base, 2 * R) == 2, "evict regions 0-1");
	pipe_or_fail(l.go);
	child = fork_child(longlived_child, &l);
	close(l.go[0]);
	a = h_stats(s);
	/* Resident at the fork: shared with the child. */
	n0 = h_evict(s, l.m.base, l.m.len);
	b = h_stats(s);
	printf("evict-while-child: shared memory: %d of 8 evicted, refused +%llu\n", n0,
	       (unsigned long long)(b.evict_refused - a.evict_refused));
	h_mem_check(&l.m, "parent after evicting shared memory");
	/* Written by the parent (copy-on-write breaks the sharing). */
	for (size_t r = 0; r < 8; r += 2)
		h_mem_write(&l.m, r * R, R / 2, 2);
	n1 = h_evict(s, l.m.base, l.m.len);
	h_mem_check(&l.m, "parent after writing half and evicting");
	printf("evict-while-child: after the parent wrote 4 regions: %d of 8 evicted\n", n1);
	H_CHECK(n1 >= 4, "regions the parent wrote after the fork must be evictable: %d", n1);
	send_byte(l.go[1]);
	close(l.go[1]);
	expect_child(child, "long-lived child");
	/* After the child: the parent goes on, and every region can go,
	 * those it never wrote since the fork too (the agent unshares them). */
	n2 = h_mem_evict(s, &l.m, "evict-while-child, after the child exited");
	b = h_stats(s);
	H_CHECK(b.resident == 0, "after the child exited, %llu regions stayed resident (evicted %d): "
		"a THP mapped by us alone must be evictable without a write",
		(unsigned long long)b.resident, n2);
	h_mem_check(&l.m, "parent after the child exited");
	for (size_t r = 1; r < 8; r += 2)
		h_mem_write(&l.m, r * R + 5 * P, P, 3);
	n3 = h_evict(s, l.m.base, l.m.len);
	h_mem_check(&l.m, "parent after the child exited and all was written");
	printf("evict-while-child: after the child exited: %d of 8 evicted; after writing the rest %d\n",
	       n2, n3);
	H_CHECK(n3 == 8, "all regions written after the child exited must be evictable: %d of 8", n3);
	h_report(s, d, "evict-while-child");
	h_mem_free(&l.m);
}

/* ---- exec ---- */

static int exec_child(void *arg)
{
	char *argv[] = { "/bin/true", NULL };

	(void)arg; /* the memory goes with the exec */
	execv(argv[0], argv);
	return 127;
}

/* Fork a child running @fn(@m), write and evict in the parent until it
 * exits (it must exit 0), go on a while, check; frees @m. */
static void fork_churn(struct thpswap_session *s, const struct h_daemon *d, struct h_mem *m,
		       int (*fn)(void *), const char *name)
{
	uint32_t gen = 100;
	pid_t child = fork_child(fn, m);
	char what[96];

	H_CHECK(churn(s, m, &gen, child, 0, true) == 0, "%s: the child failed", name);
	churn(s, m, &gen, 0, 16, false);
	snprintf(what, sizeof(what), "%s: parent", name);
	h_mem_check(m, what);
	h_report(s, d, name);
	h_mem_free(m);
}

static void child_exec(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 8, 4);
	fork_churn(s, d, &m, exec_child, "child-exec");
}

/* ---- the child zaps its copy at once ---- */

static int zap_child(void *arg)
{
	struct h_mem *m = arg;

	/* Before anything else: region 0 whole, one page of region 1 and of
	 * region 2 (all evicted at the fork), then region 3 (resident). */
	h_mem_zap(m, 0, R, MADV_DONTNEED);
	h_mem_zap(m, R + 9 * P, P, MADV_DONTNEED);
	h_mem_zap(m, 2 * R + 500 * P, 3 * P, MADV_DONTNEED);
	h_mem_zap(m, 3 * R + P, P, MADV_DONTNEED);
	return child_check(m, "after zapping its copy at once");
}

static void child_zaps(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;
	pid_t child;

	h_mem_prepare(s, &m, 4, 0);
	H_CHECK(h_evict(s, m.base, 3 * R) == 3, "evict regions 0-2");
	child = fork_child(zap_child, &m);
	expect_child(child, "child zapping evicted memory");
	h_mem_check(&m, "parent after the child zapped its copy");
	h_mem_evict(s, &m, "child-zaps, after the child exited");
	h_mem_check(&m, "parent after a round trip");
	h_report(s, d, "child-zaps");
	h_mem_free(&m);
}

/* ---- the child forks at once ---- */

static int grandchild(void *arg)
{
	return child_check(arg, "grandchild");
}

static int forking_child(void *arg)
{
	struct h_mem *m = arg;
	pid_t g = fork();
	int st;

	if (g < 0)
		return H_FAIL;
	if (g == 0) {
		h_deadline(60);
		_exit(grandchild(m));
	}
	if (child_check(m, "child that forked"))
		return H_FAIL;
	while (waitpid(g, &st, 0) < 0)
		if (errno != EINTR)
			return H_FAIL;
	C_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the grandchild ended with status %#x", st);
	return 0;
}

static void grandchild_case(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 8, 6);
	fork_churn(s, d, &m, forking_child, "grandchild");
}

/* ---- zapped resident memory at the fork ---- */

static int plain_child(void *arg)
{
	return child_check(arg, "snapshot");
}

/* Region 0 zapped whole and region 1 with a 4 KiB hole while resident (the
 * records say resident, the memory is empty there), region 2 evicted. */
static void fork_after_dontneed(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;

	h_mem_prepare(s, &m, 4, 0);
	h_mem_zap(&m, 0, R, MADV_DONTNEED);
	h_mem_zap(&m, R + 77 * P, P, MADV_DONTNEED);
	H_CHECK(h_evict(s, m.base + 2 * R, R) == 1, "evict region 2");
	fork_churn(s, d, &m, plain_child, "fork-after-dontneed");
}

/* ---- many snapshots ---- */

struct many {
	struct h_mem m;
	int go[2];
};

static int many_child(void *arg)
{
	struct many *k = arg;

	close(k->go[1]);
	h_at("child: waiting for go");
	recv_byte(k->go[0]); /* EOF when the parent closes: all are forked */
	return child_check(&k->m, "one of many snapshots");
}

/* Eight children, each forked after the parent wrote and evicted more;
 * they all verify their own snapshot at the same time. */
static void many_children(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct many k;
	pid_t child[8];
	uint32_t gen = 1;

	h_mem_map(s, &k.m, 8, 0);
	h_mem_write(&k.m, 0, k.m.len, gen);
	pipe_or_fail(k.go);
	for (int i = 0; i < 8; i++) {
		churn(s, &k.m, &gen, 0, 3, i > 0);
		child[i] = fork_child(many_child, &k);
	}
	close(k.go[0]);
	close(k.go[1]);
	churn(s, &k.m, &gen, 0, 24, true);
	for (int i = 0; i < 8; i++)
		expect_child(child[i], "one of many children");
	churn(s, &k.m, &gen, 0, 16, false);
	h_mem_check(&k.m, "parent after many children");
	h_report(s, d, "many-children");
	h_mem_free(&k.m);
}


/* ---- the parent goes at once (daemon(3), a double fork) ---- */

/* A fresh process (exec'd: a sanitizer may refuse threads in a fork child)
 * with a session of its own: evict everything, fork, and _exit at once, as
 * daemon(3) does; the child, an orphan now, checks its snapshot and writes
 * its verdict to @fd. */
static int quitter(int fd)
{
	struct thpswap_session *hs;
	struct h_mem m;
	pid_t pid;
	int r;

	h_deadline(60);
	r = thpswap_open(&hs, NULL);
	C_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	h_mem_prepare(hs, &m, 64, 64);
	pid = fork();
	C_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		char v = child_check(&m, "orphan of a parent that exited at once") ? 'F' : 'P';

		_exit(write(fd, &v, 1) == 1 ? 0 : 1);
	}
	_exit(0);
}

static int exec_quitter(void *arg)
{
	char fd[16];
	char *argv[] = { "/proc/self/exe", "--quitter", fd, NULL };

	snprintf(fd, sizeof(fd), "%d", *(int *)arg);
	execv(argv[0], argv);
	return 127;
}

static void parent_exits(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int res[2];
	pid_t mid;
	char v = 0;

	pipe_or_fail(res);
	mid = fork_child(exec_quitter, &res[1]);
	close(res[1]);
	expect_child(mid, "a parent that forks and exits at once");
	h_at("reading the orphan's verdict");
	H_CHECK(read(res[0], &v, 1) == 1, "the orphan died without a verdict");
	close(res[0]);
	H_CHECK(v == 'P', "the orphan of a parent that exited at once read wrong bytes");
	h_report(s, d, "parent-exits");
}

static const struct h_case cases[] = {
	{ "snapshot", snapshot, 0, 60 },
	{ "evict-while-child", evict_while_child, 0, 30 },
	{ "child-exec", child_exec, 0, 30 },
	{ "child-zaps", child_zaps, 0, 30 },
	{ "grandchild", grandchild_case, 0, 30 },
	{ "fork-after-dontneed", fork_after_dontneed, 0, 30 },
	{ "many-children", many_children, 0, 60 },
	{ "parent-exits", parent_exits, 0, 60 },
};

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--quitter"))
		return quitter(atoi(argv[2]));
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
