/* SPDX-License-Identifier: MIT */
/*
 * The file tier (lib/ftier.c): RAM records moved to a file in a directory
 * of the test's own under /var/tmp (removed on every way out), read back
 * with io_uring.  Skips (77) where liburing was not built in, or the
 * directory's file system takes no O_TMPFILE.
 *
 *   demote   N regions evicted, demoted by age (the counter polled against
 *            a deadline): records flagged, the arena's slots punched (its
 *            memfd's blocks shrink), the file holding them (its blocks),
 *            thpswapctl regions says "file"; read back: every byte right,
 *            PMD-mapped, the file punched again, the counters back to 0.
 *   cap      a cap of 2 MiB: the records that do not fit stay in RAM,
 *            counted file_full; every byte right.
 *   budget   a RAM budget of 4 MiB and an age never reached: the
 *            longest-evicted records move until the RAM tier is under it,
 *            the rest stay; every byte right.
 *   ring-broken
 *            the rings themselves fail (every thread refused io_uring_enter
 *            by a seccomp filter): demoted regions still read back right
 *            (by pread), counted file_errors once; the demoter stops and
 *            what it could not move stays in RAM, right.
 *   corrupt  a byte of a demoted record changed in the file: a touch of
 *            that region is SIGBUS (twice), never wrong bytes; counted
 *            file_bad_reads and corrupt; the other region right.
 *   fork     a fork child reads demoted regions: every byte right, in the
 *            child and in the parent afterwards.
 *   mremap   demoted regions moved off alignment by mremap: their bytes
 *            copied to the new place (read from the file), right; the file
 *            emptied.
 *   race     two threads read every region (each checked) while the
 *            demoter takes them, over and over: every byte right, and both
 *            RAM and file restores seen.
 *   timing   p50 of a first touch restoring from RAM and from the file.
 *   raw-now  regions of random bytes (which --incompressible keep would leave
 *            resident) are stored raw and moved to the file at once, though
 *            the age is never reached; read back right, PMD-mapped.
 *
 * With the argument "daemon", the tier the operator chooses instead of the
 * environment: thpswapd --tiers=ram,file --file-dir=DIR --file-age=0, no
 * THPSWAP_FILE_TIER.  N regions evicted move to the file the daemon made
 * (the client holds it, in DIR); thpswapctl regions says "file"; the daemon
 * SIGKILLed, half of them read back with none running; a new daemon adopts
 * the session and the rest read back from the same file: every byte right,
 * PMD-mapped, the file emptied.  Then a daemon whose --file-dir does not
 * exist: the session opens all the same, with RAM only (its config says no
 * file tier), and evicts and restores as usual.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "datagen.h"
#include "harness.h"
#include "util.h"

#define REG THPSWAP_REGION_SIZE
#define N 8
#define NT 32

static char tier_dir[64];

static long long blocks(int fd);

static uint64_t ctr(int fd, enum thp_counter c)
{
	return h_arena_header(fd).ctr[c];
}

/* Poll the arena until counter @c reaches @want; fails after @secs. */
static void wait_ctr(int afd, enum thp_counter c, uint64_t want, unsigned secs, const char *what)
{
	struct timespec tick = { 0, 1000000 };
	uint64_t end = thp_now_ns() + (uint64_t)secs * h_slowdown() * 1000000000ull;

	while (ctr(afd, c) < want) {
		H_CHECK(thp_now_ns() < end, "%s: counter %d is %llu after %u s, want %llu", what, c,
			(unsigned long long)ctr(afd, c), secs, (unsigned long long)want);
		nanosleep(&tick, NULL);
	}
}

/* The file's ranges are punched after the restore's wake (off the
 * faulter's path): poll until file_bytes is 0, then the file is empty. */
static void wait_emptied(int afd, int fd, const char *what)
{
	struct timespec tick = { 0, 1000000 };
	uint64_t end = thp_now_ns() + 10ull * h_slowdown() * 1000000000ull;

	while (ctr(afd, THP_C_FILE_BYTES) != 0) {
		H_CHECK(thp_now_ns() < end, "%s: file_bytes %llu after 10 s", what,
			(unsigned long long)ctr(afd, THP_C_FILE_BYTES));
		nanosleep(&tick, NULL);
	}
	H_CHECK(blocks(fd) == 0, "%s: the file still holds %lld blocks", what, blocks(fd));
}

/* This process's descriptor of the tier file (the agent's), or -1. */
static int tier_fd(void)
{
	char path[300], link[256];
	struct dirent *e;
	DIR *dir = opendir("/proc/self/fd");
	int found = -1;

	H_CHECK(dir, "opendir /proc/self/fd: %s", strerror(errno));
	while ((e = readdir(dir))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (!strncmp(link, tier_dir, strlen(tier_dir)) && link[strlen(tier_dir)] == '/')
			found = atoi(e->d_name);
	}
	closedir(dir);
	return found;
}

static long long blocks(int fd)
{
	struct stat st;

	H_CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	return (long long)st.st_blocks;
}

/* The tier is on in this session: its file is open, nothing went wrong. */
static int tier_up(int afd)
{
	int fd = tier_fd();

	H_CHECK(ctr(afd, THP_C_FILE_ERRORS) == 0, "file_errors %llu at start",
		(unsigned long long)ctr(afd, THP_C_FILE_ERRORS));
	H_CHECK(fd >= 0, "no tier file open in %s", tier_dir);
	return fd;
}

/* Poll until no region of @m is owned (RESTORING): the demoter takes a
 * record for a moment even when it then finds no room for it, and moves
 * the gauges before it gives the record back. */
static void wait_settled(int afd, const struct h_mem *m, size_t nreg, struct h_region_view *v)
{
	struct timespec tick = { 0, 1000000 };
	uint64_t end = thp_now_ns() + 10ull * h_slowdown() * 1000000000ull;

	for (;;) {
		bool owned = false;

		h_arena_view(afd, m->base, nreg, v);
		for (size_t i = 0; i < nreg; i++)
			owned |= v[i].state == THP_ST_RESTORING;
		if (!owned)
			return;
		H_CHECK(thp_now_ns() < end, "a region still RESTORING after 10 s");
		nanosleep(&tick, NULL);
	}
}

static void expect_flags(int afd, const struct h_mem *m, size_t nreg, bool file, const char *what)
{
	struct h_region_view v[NT];

	h_arena_view(afd, m->base, nreg, v);
	for (size_t i = 0; i < nreg; i++) {
		H_CHECK(v[i].nrec == 1, "%s: region %zu has %u records", what, i, v[i].nrec);
		H_CHECK(!!(v[i].flags & THP_RF_FILE) == file, "%s: region %zu state %u flags %#x", what,
			i, v[i].state, v[i].flags);
		if (file)
			H_CHECK(v[i].state == THP_ST_RAM, "%s: region %zu state %u", what, i, v[i].state);
	}
}

static void demote(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd);
	uint64_t dem0 = ctr(afd, THP_C_FILE_DEMOTED), res0 = ctr(afd, THP_C_FILE_RESTORED);
	long long ab0, ab1, fb;
	char out[65536], pid[16];
	const char *argv[] = { "--json", "regions", "--pid", pid, NULL };
	struct h_mem m;
	int st, k = 0;

	(void)variant;
	h_mem_prepare(s, &m, N, 0);
	ab0 = blocks(afd);
	H_CHECK(h_evict(s, m.base, m.len) == N, "not all evicted");
	ab1 = blocks(afd);
	wait_ctr(afd, THP_C_FILE_DEMOTED, dem0 + N, 10, "demotion");
	expect_flags(afd, &m, N, true, "demoted");
	fb = blocks(fd);
	printf("arena blocks: %lld resident, %lld evicted, %lld demoted; file blocks %lld; "
	       "file_bytes %llu, stored_bytes %llu\n", ab0, ab1, blocks(afd), fb,
	       (unsigned long long)ctr(afd, THP_C_FILE_BYTES),
	       (unsigned long long)ctr(afd, THP_C_STORED_BYTES));
	/* Every slot punched: nothing allocated past the header and records
	 * (whose pages the eviction may have touched for the first time). */
	H_CHECK(blocks(afd) < ab1 && (uint64_t)blocks(afd) * 512 <= h_arena_header(afd).data_off,
		"the arena's slots were not punched: %lld blocks before the eviction, %lld after it, "
		"%lld demoted; header and records take %llu bytes", ab0, ab1, blocks(afd),
		(unsigned long long)h_arena_header(afd).data_off);
	H_CHECK(fb * 512 >= (long long)ctr(afd, THP_C_FILE_BYTES) && fb > 0,
		"the file holds %lld blocks for %llu bytes", fb,
		(unsigned long long)ctr(afd, THP_C_FILE_BYTES));
	H_CHECK(ctr(afd, THP_C_STORED_BYTES) == 0, "stored_bytes %llu with all in the file",
		(unsigned long long)ctr(afd, THP_C_STORED_BYTES));
	snprintf(pid, sizeof(pid), "%d", getpid());
	st = h_ctl(d, out, sizeof(out), argv);
	H_CHECK(st == 0, "thpswapctl regions: exit %d", st);
	for (const char *p = out; (p = strstr(p, "\"tier\": \"file\"")); p++)
		k++;
	H_CHECK(k == N, "thpswapctl regions shows %d regions in the file tier: %s", k, out);
	h_mem_check(&m, "read back from the file");
	H_CHECK(h_pmd_mapped(m.base, N * REG) == N, "%ld of %d PMD-mapped after the restore",
		h_pmd_mapped(m.base, N * REG), N);
	H_CHECK(ctr(afd, THP_C_FILE_RESTORED) - res0 == N, "file_restored grew by %llu",
		(unsigned long long)(ctr(afd, THP_C_FILE_RESTORED) - res0));
	wait_emptied(afd, fd, "after the restores");
	expect_flags(afd, &m, N, false, "restored");
	H_CHECK(ctr(afd, THP_C_FILE_BAD_READS) == 0 && ctr(afd, THP_C_CORRUPT) == 0, "bad reads");
	h_mem_free(&m);
}

static void cap(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd);
	struct h_region_view v[N];
	struct h_mem m;
	unsigned in_file = 0;

	(void)d;
	(void)variant;
	h_mem_prepare(s, &m, N, N);
	/* 0.7 MiB (zstd -5) to 1.05 MiB (LZ4) each: one or two fit in 2 MiB,
	 * never all. */
	wait_ctr(afd, THP_C_FILE_FULL, 1, 10, "cap reached");
	wait_settled(afd, &m, N, v);
	for (int i = 0; i < N; i++) {
		H_CHECK(v[i].state == THP_ST_RAM, "region %d state %u", i, v[i].state);
		in_file += !!(v[i].flags & THP_RF_FILE);
	}
	printf("cap 2 MiB: %u of %d regions in the file (%llu bytes), file_full %llu\n", in_file, N,
	       (unsigned long long)ctr(afd, THP_C_FILE_BYTES),
	       (unsigned long long)ctr(afd, THP_C_FILE_FULL));
	H_CHECK(in_file > 0 && in_file < N, "%u of %d regions in a file capped at 2 MiB", in_file, N);
	H_CHECK(ctr(afd, THP_C_FILE_BYTES) <= (2u << 20), "file_bytes %llu over the cap",
		(unsigned long long)ctr(afd, THP_C_FILE_BYTES));
	H_CHECK(in_file == ctr(afd, THP_C_FILE_DEMOTED), "%u flagged, file_demoted %llu", in_file,
		(unsigned long long)ctr(afd, THP_C_FILE_DEMOTED));
	H_CHECK(blocks(fd) * 512 <= (3 << 20), "the file holds %lld blocks", blocks(fd));
	h_mem_check(&m, "read back, some from RAM, some from the file");
	wait_emptied(afd, fd, "after the restores");
	h_mem_free(&m);
}

/* A RAM budget of 4 MiB (about half of the N records, whichever codec)
 * and an age never reached: the longest-evicted
 * records go to the file until the RAM tier is under budget, the rest stay. */
static void budget(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct timespec tick = { 0, 1000000 };
	int afd = h_arena_fd(), fd = tier_up(afd);
	uint64_t end = thp_now_ns() + 10ull * h_slowdown() * 1000000000ull;
	struct h_region_view v[N];
	struct h_mem m;
	unsigned in_file = 0;

	(void)d;
	(void)variant;
	h_mem_prepare(s, &m, N, N);
	while (ctr(afd, THP_C_STORED_BYTES) > (4u << 20)) {
		H_CHECK(thp_now_ns() < end, "stored_bytes %llu after 10 s, budget 4 MiB",
			(unsigned long long)ctr(afd, THP_C_STORED_BYTES));
		nanosleep(&tick, NULL);
	}
	wait_settled(afd, &m, N, v);
	/* h_evict evicts in address order: the first ones are the oldest. */
	for (int i = 0; i < N; i++) {
		H_CHECK(v[i].state == THP_ST_RAM, "region %d state %u", i, v[i].state);
		if (v[i].flags & THP_RF_FILE) {
			H_CHECK(in_file == (unsigned)i, "region %d in the file after one that is not", i);
			in_file++;
		}
	}
	printf("RAM budget 4 MiB: the %u longest-evicted of %d regions in the file; stored_bytes "
	       "%llu, file_bytes %llu\n", in_file, N,
	       (unsigned long long)ctr(afd, THP_C_STORED_BYTES),
	       (unsigned long long)ctr(afd, THP_C_FILE_BYTES));
	H_CHECK(in_file > 0 && in_file < N, "%u of %d regions in the file", in_file, N);
	h_mem_check(&m, "read back, from RAM and from the file");
	wait_emptied(afd, fd, "after the restores");
	h_mem_free(&m);
}

static void corrupt(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd), wfd;
	long idx;
	struct h_mem m;
	char path[64], b;
	off_t off;

	(void)d;
	(void)variant;
	h_mem_prepare(s, &m, 2, 2);
	wait_ctr(afd, THP_C_FILE_DEMOTED, 2, 10, "demotion");
	expect_flags(afd, &m, 2, true, "demoted");
	idx = h_arena_find(afd, m.base);
	H_CHECK(idx >= 0, "no record for region 0");
	/* Through a descriptor of our own, buffered (the agent's is O_DIRECT):
	 * one byte in the middle of region 0's record flipped. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	wfd = open(path, O_RDWR);
	H_CHECK(wfd >= 0, "open %s: %s", path, strerror(errno));
	off = (off_t)((uint64_t)idx * THP_SLOT_SIZE + 1000);
	H_CHECK(pread(wfd, &b, 1, off) == 1, "pread: %s", strerror(errno));
	b ^= 0x55;
	H_CHECK(pwrite(wfd, &b, 1, off) == 1, "pwrite: %s", strerror(errno));
	H_CHECK(fsync(wfd) == 0, "fsync: %s", strerror(errno));
	close(wfd);
	H_CHECK(h_read_sigbus(m.base), "a read of a region whose file bytes are bad did not SIGBUS");
	H_CHECK(h_read_sigbus(m.base + REG - 1), "a second read of the poisoned region did not SIGBUS");
	H_CHECK(ctr(afd, THP_C_FILE_BAD_READS) == 1 && ctr(afd, THP_C_CORRUPT) == 1,
		"file_bad_reads %llu, corrupt %llu, want 1 and 1",
		(unsigned long long)ctr(afd, THP_C_FILE_BAD_READS),
		(unsigned long long)ctr(afd, THP_C_CORRUPT));
	printf("SIGBUS on the changed record; file_bad_reads 1, corrupt 1\n");
	H_CHECK(h_check(m.base + REG, REG, H_PAGES_PER_REGION, 0, m.gen + H_PAGES_PER_REGION,
			"region 1") < 0, "region 1 differs");
	wait_emptied(afd, fd, "after the restore and the poisoning");
	h_mem_free(&m);
}

/* From now on io_uring_enter fails with EIO in every thread of this
 * process (the agent's too): a ring that breaks under its user. */
#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#endif

static void refuse_io_uring(void)
{
#ifdef FILTER_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EIO),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	H_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %s", strerror(errno));
	H_CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0,
		"seccomp: %s", strerror(errno));
#else
	H_CHECK(0, "ring-broken: no seccomp filter for this architecture in the test");
#endif
}

static void ring_broken(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd);
	uint64_t err;
	struct h_mem m;

	(void)d;
	(void)variant;
	h_mem_prepare(s, &m, N, N);
	wait_ctr(afd, THP_C_FILE_DEMOTED, N, 10, "demotion");
	expect_flags(afd, &m, N, true, "demoted");
	refuse_io_uring();
	h_mem_check(&m, "read back with io_uring refused");
	err = ctr(afd, THP_C_FILE_ERRORS);
	H_CHECK(ctr(afd, THP_C_FILE_RESTORED) == N && err == 1 &&
		ctr(afd, THP_C_FILE_BAD_READS) == 0 && ctr(afd, THP_C_CORRUPT) == 0,
		"file_restored %llu (want %d), file_errors %llu (want 1), file_bad_reads %llu, "
		"corrupt %llu (want 0)", (unsigned long long)ctr(afd, THP_C_FILE_RESTORED), N,
		(unsigned long long)err, (unsigned long long)ctr(afd, THP_C_FILE_BAD_READS),
		(unsigned long long)ctr(afd, THP_C_CORRUPT));
	wait_emptied(afd, fd, "after the restores");
	printf("%d regions read back by pread after the read ring failed\n", N);
	/* The demoter's next batch fails to submit: nothing moves again. */
	H_CHECK(h_evict(s, m.base, m.len) == N, "not all evicted again");
	wait_ctr(afd, THP_C_FILE_ERRORS, err + 1, 10, "the demoter's failure");
	{
		struct h_region_view v[NT];

		wait_settled(afd, &m, N, v);
	}
	expect_flags(afd, &m, N, false, "after the write ring failed");
	H_CHECK(ctr(afd, THP_C_FILE_BYTES) == 0 && blocks(fd) == 0,
		"file_bytes %llu, %lld blocks in the file after failed writes",
		(unsigned long long)ctr(afd, THP_C_FILE_BYTES), blocks(fd));
	h_mem_check(&m, "read back from RAM");
	h_mem_free(&m);
}

static void forked(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), st;
	struct h_mem m;
	pid_t pid;

	(void)d;
	(void)variant;
	(void)tier_up(afd);
	h_mem_prepare(s, &m, N, N);
	wait_ctr(afd, THP_C_FILE_DEMOTED, N, 10, "demotion");
	expect_flags(afd, &m, N, true, "demoted");
	pid = fork();
	H_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid)
		_exit(h_check(m.base, m.len, 0, 0, m.gen, "fork child") < 0 ? 0 : 1);
	st = h_wait(pid);
	H_CHECK(st == 0, "the fork child read wrong bytes (exit %d)", st);
	printf("fork child read %d demoted regions right\n", N);
	h_mem_check(&m, "parent after the fork");
	h_mem_free(&m);
}

/* A misaligned mremap of demoted regions: the agent copies their bytes to
 * the new place (remap.c, through the same reader of stored bytes), the
 * memory stops being managed, the file is emptied. */
static void moved(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd);
	void *bar = h_barrier_map(s), *to;
	struct h_mem m;

	(void)d;
	(void)variant;
	h_mem_prepare(s, &m, 2, 2);
	wait_ctr(afd, THP_C_FILE_DEMOTED, 2, 10, "demotion");
	expect_flags(afd, &m, 2, true, "demoted");
	to = mremap(m.base, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, h_reserve(m.len, H_PAGE));
	H_CHECK(to != MAP_FAILED, "mremap: %s", strerror(errno));
	m.base = to;
	h_agent_sync(bar);
	wait_emptied(afd, fd, "after a misaligned move");
	H_CHECK(ctr(afd, THP_C_FILE_BAD_READS) == 0 && ctr(afd, THP_C_CORRUPT) == 0, "bad reads");
	h_mem_check(&m, "at the misaligned address");
	printf("2 demoted regions moved off alignment: bytes right, the file emptied\n");
	h_mem_free(&m);
}

struct reader {
	struct h_mem *m;
	unsigned seed;
	pthread_barrier_t *go;
};

static void *read_all(void *arg)
{
	struct reader *rd = arg;
	unsigned order[N];

	for (unsigned i = 0; i < N; i++)
		order[i] = i;
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned j = (unsigned)rand_r(&rd->seed) % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	pthread_barrier_wait(rd->go);
	for (unsigned i = 0; i < N; i++) {
		size_t o = (size_t)order[i] * REG;

		H_CHECK(h_check(rd->m->base + o, REG, o / H_PAGE, 0, rd->m->gen + o / H_PAGE,
				"reader") < 0, "region %u read wrong", order[i]);
	}
	return NULL;
}

static void race(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd();
	unsigned rounds = 0;
	uint64_t end = thp_now_ns() + h_test_seconds(3) * 1000000000ull;
	struct h_mem m;

	(void)d;
	(void)variant;
	(void)tier_up(afd);
	h_mem_prepare(s, &m, N, 0);
	/* Until both kinds of restore were seen, not for a fixed time: on a
	 * loaded machine the demoter can win every round of a few seconds. */
	while (thp_now_ns() < end || rounds < 20 || ctr(afd, THP_C_FILE_RESTORED) == 0 ||
	       ctr(afd, THP_C_RESTORES) == ctr(afd, THP_C_FILE_RESTORED)) {
		pthread_barrier_t go;
		struct reader rd[2];
		pthread_t t[2];
		struct timespec wait = { 0, (long)(rounds % 20) * 1000000 };

		H_CHECK(rounds < 2000, "%u rounds: %llu restores, %llu of them from the file: "
			"never both from RAM and from the file", rounds,
			(unsigned long long)ctr(afd, THP_C_RESTORES),
			(unsigned long long)ctr(afd, THP_C_FILE_RESTORED));
		H_CHECK(h_evict(s, m.base, m.len) == N, "not all evicted");
		/* The demoter runs every 10 ms: readers come at every point of it. */
		nanosleep(&wait, NULL);
		pthread_barrier_init(&go, NULL, 2);
		for (int k = 0; k < 2; k++) {
			rd[k] = (struct reader){ .m = &m, .seed = rounds * 2 + (unsigned)k, .go = &go };
			H_CHECK(pthread_create(&t[k], NULL, read_all, &rd[k]) == 0, "pthread_create");
		}
		for (int k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		pthread_barrier_destroy(&go);
		rounds++;
	}
	printf("%u rounds: file_demoted %llu, file_restored %llu, restores %llu\n", rounds,
	       (unsigned long long)ctr(afd, THP_C_FILE_DEMOTED),
	       (unsigned long long)ctr(afd, THP_C_FILE_RESTORED),
	       (unsigned long long)ctr(afd, THP_C_RESTORES));
	h_mem_check(&m, "after the race");
	H_CHECK(ctr(afd, THP_C_FILE_BAD_READS) == 0 && ctr(afd, THP_C_CORRUPT) == 0, "bad reads");
	h_mem_free(&m);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* First touch of each region, timed; the p50 in µs. */
static double touch_p50(struct h_mem *m, unsigned nreg)
{
	uint64_t t[NT];

	for (unsigned i = 0; i < nreg; i++) {
		uint64_t t0 = thp_now_ns();

		(void)*(volatile char *)(m->base + (size_t)i * REG);
		t[i] = thp_now_ns() - t0;
	}
	qsort(t, nreg, sizeof(t[0]), cmp_u64);
	return (double)t[nreg / 2] / 1e3;
}

static void timing(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd();
	double ram, file;
	struct h_mem m;

	(void)d;
	(void)variant;
	(void)tier_up(afd);
	h_mem_prepare(s, &m, NT, NT);
	/* Age 5 s: these are still in RAM. */
	H_CHECK(ctr(afd, THP_C_FILE_DEMOTED) == 0, "demoted already");
	ram = touch_p50(&m, NT);
	H_CHECK(ctr(afd, THP_C_FILE_RESTORED) == 0, "restored from the file already");
	H_CHECK(h_evict(s, m.base, m.len) == NT, "not all evicted");
	wait_ctr(afd, THP_C_FILE_DEMOTED, NT, 30, "demotion");
	file = touch_p50(&m, NT);
	H_CHECK(ctr(afd, THP_C_FILE_RESTORED) == NT, "file_restored %llu",
		(unsigned long long)ctr(afd, THP_C_FILE_RESTORED));
	printf("first touch p50 over %d regions (loaded machine): from RAM %.1f us, from the "
	       "file %.1f us\n", NT, ram, file);
	h_mem_check(&m, "after the timing");
	h_mem_free(&m);
}

static void raw_now(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	int afd = h_arena_fd(), fd = tier_up(afd), n, r;
	uint64_t dem0 = ctr(afd, THP_C_FILE_DEMOTED), inc0 = ctr(afd, THP_C_EVICT_INCOMPRESSIBLE);
	struct h_mem m;
	void *mem;

	(void)d;
	(void)variant;
	r = thpswap_map(s, N * REG, &mem);
	H_CHECK(r == 0, "thpswap_map: %s", strerror(-r));
	m = (struct h_mem){ .base = mem, .len = N * REG };
	for (size_t i = 0; i < N; i++)
		thp_datagen_fill((char *)mem + i * REG, REG, THP_DATA_RANDOM, 0x7a3, i);
	n = thpswap_advise(s, mem, N * REG, THPSWAP_ADVICE_COLD);
	H_CHECK(n == N, "%d of %d random regions evicted with the file tier on", n, N);
	H_CHECK(ctr(afd, THP_C_EVICT_INCOMPRESSIBLE) == inc0, "counted incompressible: kept resident");
	wait_ctr(afd, THP_C_FILE_DEMOTED, dem0 + N, 10, "raw records to the file at once");
	expect_flags(afd, &m, N, true, "raw, demoted");
	H_CHECK(ctr(afd, THP_C_STORED_BYTES) == 0, "stored_bytes %llu: raw bytes left in RAM",
		(unsigned long long)ctr(afd, THP_C_STORED_BYTES));
	for (size_t i = 0; i < N; i++) {
		long bad = thp_datagen_check((char *)mem + i * REG, REG, THP_DATA_RANDOM, 0x7a3, i);

		H_CHECK(bad < 0, "region %zu differs at byte %ld, read back from the file", i, bad);
	}
	H_CHECK(h_pmd_mapped(mem, N * REG) == N, "%ld of %d PMD-mapped after the restores",
		h_pmd_mapped(mem, N * REG), N);
	wait_emptied(afd, fd, "after the restores");
	H_CHECK(thpswap_unmap(s, mem, N * REG) == 0, "thpswap_unmap");
}

static const struct h_case cases[] = {
	{ "demote", demote, 0, 60 },
	{ "cap", cap, 0, 60 },
	{ "budget", budget, 0, 60 },
	{ "corrupt", corrupt, 0, 60 },
	{ "ring-broken", ring_broken, 0, 60 },
	{ "fork", forked, 0, 60 },
	{ "mremap", moved, 0, 60 },
	{ "race", race, 0, 120 },
	{ "timing", timing, 0, 120 },
	{ "raw-now", raw_now, 0, 60 },
};

/* Each case's settings, in its own process before its session opens. */
static void case_env(const char *name)
{
	setenv("THPSWAP_FILE_TIER_AGE_MS", !strcmp(name, "race") ? "0" :
					   !strcmp(name, "timing") ? "5000" : "20", 1);
	if (!strcmp(name, "cap"))
		setenv("THPSWAP_FILE_TIER_MAX_MB", "2", 1);
	if (!strcmp(name, "raw-now"))
		setenv("THPSWAP_FILE_TIER_AGE_MS", "600000", 1);
	if (!strcmp(name, "budget")) {
		setenv("THPSWAP_FILE_TIER_AGE_MS", "600000", 1);
		setenv("THPSWAP_FILE_TIER_RAM_MB", "4", 1);
	}
}

/* ---- the daemon's tier ---- */

static long count_file_tier(const struct h_daemon *d)
{
	static char out[65536];
	char pid[16];
	const char *argv[] = { "--json", "regions", "--pid", pid, NULL };
	long k = 0;

	snprintf(pid, sizeof(pid), "%d", getpid());
	H_CHECK(h_ctl(d, out, sizeof(out), argv) == 0, "thpswapctl regions failed: %s", out);
	for (const char *p = out; (p = strstr(p, "\"tier\": \"file\"")); p++)
		k++;
	return k;
}

static void wait_reconnects(int afd, uint64_t want)
{
	struct timespec tick = { 0, 2000000 };
	uint64_t end = thp_now_ns() + 15ull * h_slowdown() * 1000000000ull;

	while (ctr(afd, THP_C_RECONNECTS) < want) {
		H_CHECK(thp_now_ns() < end, "not adopted by the new daemon within 15 s");
		nanosleep(&tick, NULL);
	}
}

static int run_daemon_tier(void)
{
	char dir_arg[128];
	const char *args[] = { "--tiers=ram,file", dir_arg, "--file-age=0", NULL };
	struct thpswap_session *s;
	struct h_daemon d;
	struct h_mem m, half;
	int afd, fd, r;

	h_deadline(120);
	snprintf(dir_arg, sizeof(dir_arg), "--file-dir=%s", tier_dir);
	r = h_daemon_start(&d, args);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(&s, d.sock);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	afd = h_arena_fd();
	H_CHECK(h_arena_header(afd).cfg.tiers & THP_TIER_FILE, "the arena's config has no file tier");
	fd = tier_up(afd);
	h_mem_prepare(s, &m, N, 0);
	H_CHECK(h_evict(s, m.base, m.len) == N, "not all evicted");
	wait_ctr(afd, THP_C_FILE_DEMOTED, N, 10, "demotion to the daemon's file");
	expect_flags(afd, &m, N, true, "demoted");
	H_CHECK(count_file_tier(&d) == N, "thpswapctl regions shows %ld of %d regions in the file",
		count_file_tier(&d), N);
	H_CHECK(blocks(fd) > 0, "the daemon's file holds nothing");

	h_at("SIGKILL thpswapd");
	r = h_daemon_kill(&d);
	H_CHECK(r == 128 + SIGKILL, "thpswapd did not die of SIGKILL: %d", r);
	half = m;
	half.len = m.len / 2;
	h_mem_check(&half, "the first half, read back from the file with no daemon");
	h_at("start thpswapd again");
	r = h_daemon_restart(&d, args);
	H_CHECK(r == 0, "start thpswapd again: %s", strerror(-r));
	wait_reconnects(afd, 1);
	H_CHECK(count_file_tier(&d) == N / 2, "after the restart thpswapctl regions shows %ld "
		"regions in the file, want %d", count_file_tier(&d), N / 2);
	h_mem_check(&m, "all, the second half read back from the file after the restart");
	H_CHECK(h_pmd_mapped(m.base, m.len) == N, "%ld of %d PMD-mapped after the restores",
		h_pmd_mapped(m.base, m.len), N);
	H_CHECK(ctr(afd, THP_C_FILE_RESTORED) == N, "file_restored %llu, want %d",
		(unsigned long long)ctr(afd, THP_C_FILE_RESTORED), N);
	wait_emptied(afd, fd, "after the restores");
	H_CHECK(ctr(afd, THP_C_FILE_BAD_READS) == 0 && ctr(afd, THP_C_CORRUPT) == 0, "bad reads");
	h_mem_free(&m);
	thpswap_close(s);
	h_daemon_stop(&d);

	/* No file to be had: the session goes on without the tier. */
	snprintf(dir_arg, sizeof(dir_arg), "--file-dir=%s/no-such-dir", tier_dir);
	r = h_daemon_start(&d, args);
	H_CHECK(r == 0, "start thpswapd: %s", strerror(-r));
	r = thpswap_open(&s, d.sock);
	H_CHECK(r == 0, "thpswap_open with no file to be had: %s", strerror(-r));
	afd = h_arena_fd();
	H_CHECK(!(h_arena_header(afd).cfg.tiers & THP_TIER_FILE),
		"the arena's config has a file tier with no file");
	h_mem_prepare(s, &m, N, N);
	h_mem_check(&m, "RAM only, restored");
	h_mem_free(&m);
	thpswap_close(s);
	h_daemon_stop(&d);
	printf("PASS daemon: %d regions through the daemon's file, across a SIGKILL and a restart\n",
	       N);
	return H_PASS;
}

static void remove_dir(void)
{
	if (tier_dir[0])
		rmdir(tier_dir);
}

static void on_term(int sig)
{
	remove_dir();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	const char *dir;
	int fd, r;

#ifndef THPSWAP_HAVE_URING
	printf("skip: the file tier is not built in (no liburing)\n");
	return H_SKIP;
#endif
	if (argc >= 3 && !strcmp(argv[1], "--case")) {
		dir = getenv("THPSWAP_FILE_TIER");
		H_CHECK(dir && strlen(dir) < sizeof(tier_dir), "THPSWAP_FILE_TIER not set");
		strcpy(tier_dir, dir);
		case_env(argv[2]);
		return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
	}
	h_require_root();
	setvbuf(stdout, NULL, _IOLBF, 0);
	strcpy(tier_dir, "/var/tmp/thpswap-ftier.XXXXXX");
	if (!mkdtemp(tier_dir)) {
		printf("skip: cannot make a directory in /var/tmp: %s\n", strerror(errno));
		tier_dir[0] = 0;
		return H_SKIP;
	}
	atexit(remove_dir);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	fd = open(tier_dir, O_TMPFILE | O_RDWR, 0600);
	if (fd < 0) {
		printf("skip: %s takes no O_TMPFILE: %s\n", tier_dir, strerror(errno));
		return H_SKIP;
	}
	close(fd);
	if (argc >= 2 && !strcmp(argv[1], "daemon"))
		return run_daemon_tier();
	setenv("THPSWAP_FILE_TIER", tier_dir, 1);
	r = h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
	return r;
}
