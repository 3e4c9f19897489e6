/* SPDX-License-Identifier: MIT */
/*
 * thpswap-coldness: what each coldness signal this kernel has costs and how
 * right it is, at 2 MiB granularity.  Run by hand as root (not a test):
 *
 *   thpswap-coldness [--regions N] [--hot-pct P] [--interval-ms MS] [--rounds R]
 *
 * One process holds N PMD-mapped THP regions; P % of them (every fifth by
 * default) are read and written by two threads at random offsets, the rest
 * are never touched after they are filled.  For each signal it runs R
 * rounds of one interval each and prints, per signal: the CPU time of one
 * scan (and of re-arming it), the hot threads' ns per access against the
 * same threads with no signal running just before (base_ns), the minor
 * faults meanwhile, how many hot regions it called hot and how many cold
 * ones cold after one interval, and how many regions are still PMD-mapped
 * afterwards (PAGEMAP_SCAN PAGE_IS_HUGE).  First it times 4 KiB first-touch
 * faults, to read the faulting signals' numbers by.
 *
 * Signals that need what this kernel or machine does not offer are printed
 * with the reason and the evidence (a file missing, an ioctl's errno).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "pagemap.h"
#include "util.h"

#define REGION (2ul << 20)
#define NTHREADS 2

struct bench {
	unsigned nreg, hot_pct, interval_ms, rounds;
	char *base;
	bool *hot;                /* the truth */
	unsigned *hot_idx, nhot;
	int pm_fd;
	uint64_t filled_ns;       /* when every region was filled: its one fault */
	atomic_bool stop;
	atomic_uint_fast64_t ops;
};

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A hot thread: read and write 8 bytes at a random place of a random hot
 * region, as fast as it can. */
static void *hot_thread(void *arg)
{
	struct bench *b = arg;
	uint64_t x = (uint64_t)pthread_self() | 1, n = 0;

	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		for (int k = 0; k < 4096; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			uint64_t *p = (uint64_t *)(b->base + (size_t)b->hot_idx[x % b->nhot] * REGION +
						   ((x >> 20) % (REGION / 8)) * 8);
			*p += 1;
		}
		n += 4096;
	}
	atomic_fetch_add(&b->ops, n);
	return NULL;
}

/* What one signal says after an interval: regions it calls hot. */
struct verdict {
	bool ok;
	char why[400];
	uint64_t scan_ns, arm_ns;  /* CPU time of one read-out, of one re-arm (per round, averaged) */
	unsigned hot_hot, cold_cold;
	long minflt;               /* minor faults in the process while it ran */
	long pmd_after;
};

struct signal {
	const char *name;
	/* set up once (false + why: not here); arm; read into @hot_seen */
	bool (*setup)(struct bench *b, struct verdict *v);
	int (*arm)(struct bench *b);
	int (*read)(struct bench *b, bool *hot_seen);
	void (*teardown)(struct bench *b);
};

/* ---- a. fault history ---- */

/* The daemon stamps last_fault_ns when a region is mapped or restored; a
 * region resident since then looks as old as any other.  Here: every
 * region was filled (faulted) at setup, nothing since. */
static uint64_t *fault_ns;

static bool fault_setup(struct bench *b, struct verdict *v)
{
	(void)v;
	fault_ns = calloc(b->nreg, sizeof(*fault_ns));
	if (!fault_ns)
		return false;
	for (unsigned i = 0; i < b->nreg; i++)
		fault_ns[i] = b->filled_ns;
	return true;
}

static int fault_arm(struct bench *b)
{
	(void)b;
	return 0;
}

static int fault_read(struct bench *b, bool *hot_seen)
{
	uint64_t now = thp_now_ns();

	for (unsigned i = 0; i < b->nreg; i++)
		hot_seen[i] = now - fault_ns[i] < (uint64_t)b->interval_ms * 1000000ull;
	return 0;
}

static void fault_teardown(struct bench *b)
{
	(void)b;
	free(fault_ns);
	fault_ns = NULL;
}

/* Mark the regions that PAGEMAP_SCAN @mask finds in. */
static int scan_mark(struct bench *b, uint64_t mask, uint64_t flags, bool *hot_seen)
{
	static struct page_region vec[4096];
	uint64_t start = (uint64_t)b->base, end = start + (uint64_t)b->nreg * REGION;

	memset(hot_seen, 0, b->nreg);
	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a), .flags = flags, .start = start, .end = end,
			.vec = (uint64_t)vec, .vec_len = 4096,
			.category_mask = mask, .return_mask = mask,
		};
		long n = ioctl(b->pm_fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long k = 0; k < n; k++)
			for (uint64_t r = (vec[k].start - (uint64_t)b->base) / REGION;
			     r < b->nreg && (uint64_t)b->base + r * REGION < vec[k].end; r++)
				hot_seen[r] = true;
		start = a.walk_end;
		if (n < 4096)
			break;
	}
	return 0;
}

/* ---- c1. soft-dirty: clear_refs 4, then PAGE_IS_SOFT_DIRTY ---- */

static int clear_fd = -1;

static bool sd_setup(struct bench *b, struct verdict *v)
{
	bool *seen = calloc(b->nreg, sizeof(*seen));
	unsigned n = 0;

	/* Every region was written and never cleared: all soft-dirty, unless
	 * the kernel has no soft-dirty (CONFIG_MEM_SOFT_DIRTY off), where
	 * clear_refs 4 is taken and does nothing.  Measured anyway. */
	if (seen && scan_mark(b, PAGE_IS_SOFT_DIRTY, 0, seen) == 0)
		for (unsigned i = 0; i < b->nreg; i++)
			n += seen[i];
	free(seen);
	printf("soft-dirty: %u of %u regions soft-dirty before the first clear%s\n", n, b->nreg,
	       n ? "" : " (none: this kernel has no soft-dirty tracking)");
	clear_fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (clear_fd < 0) {
		snprintf(v->why, sizeof(v->why), "/proc/self/clear_refs: %s", strerror(errno));
		return false;
	}
	return true;
}

static int sd_arm(struct bench *b)
{
	(void)b;
	return pwrite(clear_fd, "4", 1, 0) == 1 ? 0 : -errno;
}

static int sd_read(struct bench *b, bool *hot_seen)
{
	return scan_mark(b, PAGE_IS_SOFT_DIRTY, 0, hot_seen);
}

static void sd_teardown(struct bench *b)
{
	(void)b;
	close(clear_fd);
	clear_fd = -1;
}

/* ---- c2. uffd-wp async: PAGE_IS_WRITTEN, re-armed by the scan itself ---- */

static int wp_uffd = -1;

static bool wp_setup(struct bench *b, struct verdict *v)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	wp_uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (wp_uffd < 0 || ioctl(wp_uffd, UFFDIO_API, &api) < 0 ||
	    ioctl(wp_uffd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(v->why, sizeof(v->why), "userfaultfd WP_ASYNC: %s", strerror(errno));
		if (wp_uffd >= 0)
			close(wp_uffd);
		wp_uffd = -1;
		return false;
	}
	return true;
}

static int wp_arm(struct bench *b)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	return ioctl(wp_uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

static int wp_read(struct bench *b, bool *hot_seen)
{
	/* Read only; wp_arm re-protects (WP_MATCHING would do both in one
	 * walk, but then the read's cost could not be told from the arm's). */
	return scan_mark(b, PAGE_IS_WRITTEN, 0, hot_seen);
}

static void wp_teardown(struct bench *b)
{
	struct uffdio_range r = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION };

	ioctl(wp_uffd, UFFDIO_UNREGISTER, &r);
	close(wp_uffd);
	wp_uffd = -1;
}

/* ---- c3. uffd-wp sync: a thread takes each write fault on a protected
 * region, notes the region written and lifts the protection from all of
 * it (which wakes the writer); re-armed each interval ---- */

static struct {
	int uffd;
	pthread_t thread;
	atomic_bool *written;
	atomic_uint_fast64_t faults;
} ws = { .uffd = -1 };

static void *ws_handler(void *arg)
{
	struct bench *b = arg;
	struct uffd_msg m;

	/* Ends when the uffd is closed (read fails). */
	while (read(ws.uffd, &m, sizeof(m)) == sizeof(m)) {
		uint64_t r;
		struct uffdio_writeprotect wp = { .mode = 0 };

		if (m.event != UFFD_EVENT_PAGEFAULT || !(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			continue;
		r = (m.arg.pagefault.address - (uint64_t)b->base) / REGION;
		if (r < b->nreg)
			atomic_store(&ws.written[r], true);
		wp.range.start = (uint64_t)b->base + r * REGION;
		wp.range.len = REGION;
		ioctl(ws.uffd, UFFDIO_WRITEPROTECT, &wp);
		atomic_fetch_add(&ws.faults, 1);
	}
	return NULL;
}

static bool ws_setup(struct bench *b, struct verdict *v)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	ws.written = calloc(b->nreg, sizeof(*ws.written));
	ws.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (!ws.written || ws.uffd < 0 || ioctl(ws.uffd, UFFDIO_API, &api) < 0 ||
	    ioctl(ws.uffd, UFFDIO_REGISTER, &reg) < 0 ||
	    pthread_create(&ws.thread, NULL, ws_handler, b)) {
		snprintf(v->why, sizeof(v->why), "userfaultfd WP (sync): %s", strerror(errno));
		if (ws.uffd >= 0)
			close(ws.uffd);
		ws.uffd = -1;
		free(ws.written);
		return false;
	}
	atomic_store(&ws.faults, 0);
	return true;
}

static int ws_arm(struct bench *b)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	for (unsigned i = 0; i < b->nreg; i++)
		atomic_store(&ws.written[i], false);
	return ioctl(ws.uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

static int ws_read(struct bench *b, bool *hot_seen)
{
	for (unsigned i = 0; i < b->nreg; i++)
		hot_seen[i] = atomic_load(&ws.written[i]);
	return 0;
}

static void ws_teardown(struct bench *b)
{
	struct uffdio_range r = { .start = (uint64_t)b->base, .len = (uint64_t)b->nreg * REGION };
	struct timespec ts = { 0 };
	clockid_t cid;

	/* The handler's CPU time, its reads included: all of it in the
	 * signal's rounds (nothing is protected during the baseline's). */
	if (pthread_getcpuclockid(ws.thread, &cid) == 0)
		clock_gettime(cid, &ts);
	/* Unregistering lifts every protection. */
	ioctl(ws.uffd, UFFDIO_UNREGISTER, &r);
	pthread_cancel(ws.thread);
	pthread_join(ws.thread, NULL);
	close(ws.uffd);
	ws.uffd = -1;
	free(ws.written);
	printf("uffd-wp sync: %llu write faults taken, %.1f us of handler CPU per round\n",
	       (unsigned long long)atomic_load(&ws.faults),
	       ((double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3) / b->rounds);
}

/* ---- b. DAMON, d. page_idle: only looked at, never changed ---- */

static bool damon_setup(struct bench *b, struct verdict *v)
{
	const char *k = "/sys/kernel/mm/damon/admin/kdamonds";
	char p[256], line[64] = "";
	FILE *f;
	unsigned n = 0, on = 0;

	(void)b;
	snprintf(p, sizeof(p), "%s/nr_kdamonds", k);
	f = fopen(p, "re");
	if (!f) {
		snprintf(v->why, sizeof(v->why), "%s: %s", p, strerror(errno));
		return false;
	}
	if (fscanf(f, "%u", &n) != 1)
		n = 0;
	fclose(f);
	for (unsigned i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%u/state", k, i);
		f = fopen(p, "re");
		if (f && fgets(line, sizeof(line), f) && !strncmp(line, "on", 2))
			on++;
		if (f)
			fclose(f);
	}
	snprintf(p, sizeof(p), "%s/0/contexts/0/avail_operations", k);
	f = fopen(p, "re");
	if (f && fgets(line, sizeof(line), f))
		printf("DAMON: operations this kernel has: %s", line);
	if (f)
		fclose(f);
	if (on) {
		/* A new kdamond means writing nr_kdamonds, which the kernel
		 * refuses (EBUSY) while any kdamond runs, and which would
		 * remove the others' directories if it did not: not ours to try. */
		snprintf(v->why, sizeof(v->why),
			 "%u kdamond(s), %u running, not ours: a new one needs nr_kdamonds rewritten "
			 "(EBUSY while one runs)", n, on);
		return false;
	}
	snprintf(v->why, sizeof(v->why), "%u kdamonds, none running: vaddr not measured by this build", n);
	return false;
}

static bool idle_setup(struct bench *b, struct verdict *v)
{
	(void)b;
	if (access("/sys/kernel/mm/page_idle/bitmap", F_OK) < 0) {
		snprintf(v->why, sizeof(v->why), "/sys/kernel/mm/page_idle/bitmap: %s "
			 "(CONFIG_IDLE_PAGE_TRACKING off)", strerror(errno));
		return false;
	}
	snprintf(v->why, sizeof(v->why), "present, not measured by this build");
	return false;
}

/* ---- e. read-access tracking: PAGE_IS_ACCESSED, uffd read-WP ---- */

static void probe_accessed(struct bench *b)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	uint64_t known = (1ull << 17) - 1;  /* UFFD_FEATURE_* up to MOVE (1 << 16) */
	int fd;

	/* The next PAGEMAP_SCAN category after the ones this kernel's ABI
	 * header knows; the kernel refuses categories it has not got. */
	for (unsigned bit = 9; bit < 12; bit++) {
		struct page_region vec[1];
		struct pm_scan_arg a = {
			.size = sizeof(a), .start = (uint64_t)b->base,
			.end = (uint64_t)b->base + REGION, .vec = (uint64_t)vec, .vec_len = 1,
			.category_mask = 1ull << bit, .return_mask = 1ull << bit,
		};
		long r = ioctl(b->pm_fd, PAGEMAP_SCAN, &a);

		printf("probe: PAGEMAP_SCAN category 1<<%u: %s\n", bit,
		       r < 0 ? strerror(errno) : "accepted");
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd >= 0 && ioctl(fd, UFFDIO_API, &api) == 0)
		printf("probe: UFFDIO_API features 0x%llx, beyond MOVE 0x%llx%s\n",
		       (unsigned long long)api.features,
		       (unsigned long long)(api.features & ~known),
		       api.features & ~known ? "" : " (no read-WP)");
	else
		printf("probe: userfaultfd: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* ---- the run ---- */

static double run_threads(struct bench *b, const struct signal *sig, struct verdict *v,
			  bool *seen, unsigned rounds)
{
	pthread_t t[NTHREADS];
	uint64_t t0, t1, scan = 0, arm = 0, c;
	struct rusage ru0, ru1;

	getrusage(RUSAGE_SELF, &ru0);

	atomic_store(&b->stop, false);
	atomic_store(&b->ops, 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&t[i], NULL, hot_thread, b);
	t0 = thp_now_ns();
	for (unsigned r = 0; r < rounds; r++) {
		if (sig) {
			c = cpu_ns();
			if (sig->arm(b) < 0)
				v->ok = false;
			arm += cpu_ns() - c;
		}
		sleep_ms(b->interval_ms);
		if (sig) {
			c = cpu_ns();
			if (sig->read(b, seen) < 0)
				v->ok = false;
			scan += cpu_ns() - c;
			/* the first round's read-out shows what came before arming */
			if (r == rounds - 1) {
				for (unsigned i = 0; i < b->nreg; i++) {
					if (b->hot[i] && seen[i])
						v->hot_hot++;
					if (!b->hot[i] && !seen[i])
						v->cold_cold++;
				}
			}
		}
	}
	atomic_store(&b->stop, true);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	t1 = thp_now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	if (v)
		v->minflt = ru1.ru_minflt - ru0.ru_minflt;
	if (sig) {
		v->scan_ns = scan / rounds;
		v->arm_ns = arm / rounds;
	}
	return (double)(t1 - t0) * NTHREADS / (double)atomic_load(&b->ops);
}

/* What a page fault costs on this machine, to read the faulting signals'
 * numbers by: first touches of 4 KiB pages (no THP). */
static double fault_us(void)
{
	const size_t len = 4ul << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t t0;
	double us;

	if (p == MAP_FAILED)
		return -1;
	madvise(p, len, MADV_NOHUGEPAGE);
	t0 = thp_now_ns();
	for (size_t o = 0; o < len; o += 4096)
		p[o] = 1;
	us = (double)(thp_now_ns() - t0) / 1e3 / (double)(len / 4096);
	munmap(p, len);
	return us;
}

static long pmd_mapped(struct bench *b)
{
	return thp_pagemap_count_pmd(b->pm_fd, (uint64_t)b->base,
				     (uint64_t)b->base + (uint64_t)b->nreg * REGION);
}

int main(int argc, char **argv)
{
	struct bench b = { .nreg = 256, .hot_pct = 20, .interval_ms = 1000, .rounds = 3 };
	static const struct option opts[] = {
		{ "regions", required_argument, NULL, 'n' },
		{ "hot-pct", required_argument, NULL, 'p' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "rounds", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const struct signal sigs[] = {
		{ "fault history", fault_setup, fault_arm, fault_read, fault_teardown },
		{ "DAMON vaddr/paddr", damon_setup, NULL, NULL, NULL },
		{ "soft-dirty", sd_setup, sd_arm, sd_read, sd_teardown },
		/* sync first: async splits the hot THPs, and pmd_after would show it */
		{ "uffd-wp sync", ws_setup, ws_arm, ws_read, ws_teardown },
		{ "uffd-wp async", wp_setup, wp_arm, wp_read, wp_teardown },
		{ "page_idle", idle_setup, NULL, NULL, NULL },
	};
	double base_ns;
	bool *seen;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n': b.nreg = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'p': b.hot_pct = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'i': b.interval_ms = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'r': b.rounds = (unsigned)strtoul(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: %s [--regions N] [--hot-pct P] [--interval-ms MS] "
				"[--rounds R]\n", argv[0]);
			return 2;
		}
	}
	if (!b.nreg || !b.rounds || !b.hot_pct || b.hot_pct > 100) {
		fprintf(stderr, "regions, rounds and hot-pct (1..100) must be positive\n");
		return 2;
	}
	b.base = thp_mmap_aligned((size_t)b.nreg * REGION, REGION, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE);
	b.hot = calloc(b.nreg, sizeof(*b.hot));
	b.hot_idx = calloc(b.nreg, sizeof(*b.hot_idx));
	seen = calloc(b.nreg, sizeof(*seen));
	b.pm_fd = thp_pagemap_open(0);
	if (b.base == MAP_FAILED || !b.hot || !b.hot_idx || !seen || b.pm_fd < 0) {
		fprintf(stderr, "setup: %s\n", strerror(errno));
		return 1;
	}
	madvise(b.base, (size_t)b.nreg * REGION, MADV_HUGEPAGE);
	for (unsigned i = 0; i < b.nreg; i++) {
		memset(b.base + (size_t)i * REGION, (int)(i + 1), REGION);
		/* spread the hot ones evenly: every (100 / hot-pct)-th */
		if ((uint64_t)i * b.hot_pct / 100 != ((uint64_t)i + 1) * b.hot_pct / 100) {
			b.hot[i] = true;
			b.hot_idx[b.nhot++] = i;
		}
	}
	b.filled_ns = thp_now_ns();
	printf("regions %u (%u MiB), hot %u, cold %u, interval %u ms, rounds %u, %d hot threads\n",
	       b.nreg, b.nreg * 2, b.nhot, b.nreg - b.nhot, b.interval_ms, b.rounds, NTHREADS);
	printf("PMD-mapped at start: %ld of %u\n", pmd_mapped(&b), b.nreg);
	/* once to warm up (TLB, caches, the threads' first faults) */
	run_threads(&b, NULL, NULL, seen, 1);
	printf("a 4 KiB first-touch fault: %.1f us\n\n", fault_us());
	printf("%-18s %9s %9s %8s %10s %8s %8s %8s %9s %s\n", "signal", "scan_us", "arm_us",
	       "base_ns", "ns/access", "slower", "minflt", "hot_hot", "cold_cold", "pmd_after");
	for (size_t s = 0; s < sizeof(sigs) / sizeof(sigs[0]); s++) {
		struct verdict v = { .ok = true };
		double ns;

		if (!sigs[s].setup(&b, &v)) {
			printf("%-18s not here: %s\n", sigs[s].name, v.why[0] ? v.why : "setup failed");
			continue;
		}
		/* The machine is shared: each signal against a baseline of its own,
		 * taken right before it. */
		base_ns = run_threads(&b, NULL, NULL, seen, b.rounds);
		ns = run_threads(&b, &sigs[s], &v, seen, b.rounds);
		v.pmd_after = pmd_mapped(&b);
		sigs[s].teardown(&b);
		printf("%-18s %9.1f %9.1f %8.1f %10.1f %7.1f%% %8ld %4u/%-3u %5u/%-3u %ld/%u%s\n",
		       sigs[s].name, v.scan_ns / 1e3, v.arm_ns / 1e3, base_ns, ns,
		       (ns / base_ns - 1) * 100, v.minflt, v.hot_hot,
		       b.nhot, v.cold_cold, b.nreg - b.nhot, v.pmd_after, b.nreg,
		       v.ok ? "" : "  (an ioctl failed)");
	}
	printf("\n");
	probe_accessed(&b);
	close(b.pm_fd);
	munmap(b.base, (size_t)b.nreg * REGION);
	free(seen);
	free(b.hot_idx);
	free(b.hot);
	return 0;
}
