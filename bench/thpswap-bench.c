/* SPDX-License-Identifier: MIT */
/*
 * thpswap-bench: one configuration, one or more data sets, measured end to
 * end.  bench/run sets up (and tears down) the kernel's swap around it, runs
 * it once per configuration and lets bench/report.py put the results side by
 * side.
 *
 *   kernel mode:  THP-backed anonymous memory (MADV_HUGEPAGE), evicted with
 *                 MADV_PAGEOUT to whatever swap the wrapper enabled.
 *   thpswap mode: a real thpswapd on a private socket, memory from
 *                 thpswap_map, evicted with thpswap_advise(COLD).
 *
 * Per data set it writes DIR/raw/<label>--<data>.json and .csv (restore
 * latencies, one line per 2 MiB unit).  Progress goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <thpswap/thpswap.h>

#include "bench.h"
#include "datagen.h"
#include "hash.h"
#include "json.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "samples.h"

enum mode { MODE_KERNEL, MODE_THPSWAP };

struct opts {
	enum mode mode;
	const char *label;
	const char *backend;  /* swapfile, loop, zram, zswap, thpswap */
	const char *swapdev;  /* as /proc/swaps names it */
	const char *out;
	const char *thpswapd;
	const char *dargs[16];
	int ndargs;
	char *data;
	uint64_t size;
	unsigned zero_units;
	uint64_t chase_steps;
	uint64_t seed;
	bool pageout;         /* thpswap mode: the kernel tier (THPSWAP_ADVICE_PAGEOUT) */
};

struct dataset {
	char name[64];
	char describe[512];
	int kind;             /* enum thp_data_kind, or -1 for a file */
	unsigned char *file;  /* its contents */
	size_t file_len;
};

/* Counters sampled before and after each phase. */
struct snap {
	struct b_rollup roll;
	struct b_meminfo mem;
	uint64_t vm[B_VM__MAX];
	int64_t swap_used;
	struct thpswap_stats st;
	double cpu, dcpu;
	uint64_t t;
};

struct bench {
	struct opts o;
	struct thpswap_session *s;
	struct b_daemon d;
	int pmfd;
	uint64_t sink;
	bool samples;         /* the library's timing samples are on */
};

static void snap_take(struct bench *b, struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	b_rollup(&sn->roll);
	b_meminfo(&sn->mem);
	b_vmstat(sn->vm);
	sn->swap_used = !b->o.swapdev ? 0
			: !strcmp(b->o.backend, "zram") ? b_zram_used(b->o.swapdev)
							: b_swap_used(b->o.swapdev);
	if (b->s)
		thpswap_get_stats(b->s, &sn->st, sizeof(sn->st));
	sn->cpu = b_self_cpu();
	sn->dcpu = b->d.pid > 0 ? b_pid_cpu(b->d.pid) : 0;
	sn->t = thp_now_ns();
}

/* Bytes the backing store holds for what was evicted between @a and @z. */
static int64_t stored_bytes(const struct bench *b, const struct snap *a,
			    const struct snap *z)
{
	if (b->o.mode == MODE_THPSWAP)
		return (int64_t)(z->st.stored_bytes - a->st.stored_bytes);
	if (!strcmp(b->o.backend, "zswap"))
		/* The pool, plus what zswap rejected to the backing device. */
		return (int64_t)(z->mem.zswap - a->mem.zswap) +
		       (int64_t)(z->vm[B_PSWPOUT] - a->vm[B_PSWPOUT]) * PAGE_4K;
	/* A swap device holds what it was given; zram what it compressed
	 * (snap() reads its memory use instead). */
	return z->swap_used - a->swap_used;
}

/* ---- memory ---- */

static int mem_map(struct bench *b, size_t len, void **ret)
{
	void *p;

	if (b->o.mode == MODE_THPSWAP)
		return thpswap_map(b->s, len, ret);
	p = thp_mmap_aligned(len, UNIT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE);
	if (p == MAP_FAILED)
		return -errno;
	if (madvise(p, len, MADV_HUGEPAGE) < 0) {
		int err = -errno;

		munmap(p, len);
		return err;
	}
	*ret = p;
	return 0;
}

static void mem_unmap(struct bench *b, void *p, size_t len)
{
	if (b->o.mode == MODE_THPSWAP)
		thpswap_unmap(b->s, p, len);
	else
		munmap(p, len);
}

/*
 * Evict one 2 MiB unit.  Returns 1 when it left memory, 0 when it stayed
 * (thpswap keeps incompressible regions; the kernel may refuse), -errno.
 * @retries counts extra MADV_PAGEOUT rounds.  In thpswap mode *@t_in (if
 * not NULL) gets the time the call began; it returned *@ns later.
 */
static int evict_unit(struct bench *b, void *u, unsigned *retries, uint64_t *ns, uint64_t *t_in)
{
	uint64_t t0, spent = 0;
	int r = 0;

	if (b->o.mode == MODE_THPSWAP) {
		t0 = thp_now_ns();
		r = thpswap_advise(b->s, u, UNIT, b->o.pageout ? THPSWAP_ADVICE_PAGEOUT
							      : THPSWAP_ADVICE_COLD);
		*ns = thp_now_ns() - t0;
		if (t_in)
			*t_in = t0;
		return r < 0 ? r : r > 0;
	}
	/* Retry until nothing of the unit is present, bounded. */
	for (int i = 0; i < 16; i++) {
		long present;

		t0 = thp_now_ns();
		r = madvise(u, UNIT, MADV_PAGEOUT);
		spent += thp_now_ns() - t0;
		if (r < 0)
			return -errno;
		present = b_resident_pages(b->pmfd, (uintptr_t)u, (uintptr_t)u + UNIT);
		if (present == 0) {
			*ns = spent;
			return 1;
		}
		if (present < 0)
			return (int)present;
		(*retries)++;
	}
	*ns = spent;
	return 0;
}

/* Touch one word per 4 KiB page of [@from, @to) of unit @u. */
static inline void touch_range(unsigned char *u, size_t from, size_t to, bool write)
{
	for (size_t off = from; off < to; off += PAGE_4K) {
		if (write) {
			/* A locked RMW of 0: a write fault that keeps the data. */
#if defined(__x86_64__)
			__asm__ volatile("lock orq $0, %0" : "+m"(*(uint64_t *)(u + off)) :: "memory");
#else
			__atomic_fetch_or((uint64_t *)(u + off), 0, __ATOMIC_RELAXED);
#endif
		} else {
			(void)*(volatile uint64_t *)(u + off);
		}
	}
}

/*
 * Maps back the pages of a unit that sit in the swap cache (read faults,
 * so they stay clean) and returns how many there were.  mincore reports
 * both mapped and swap-cached pages; the mapped ones (a split THP's zero
 * subpages map the shared zero page) are subtracted.
 */
static long map_back_swapcache(struct bench *b, unsigned char *u)
{
	unsigned char vec[UNIT / PAGE_4K];
	long incore = 0, present;

	if (mincore(u, UNIT, vec) < 0)
		return -errno;
	for (size_t i = 0; i < sizeof(vec); i++)
		incore += vec[i] & 1;
	present = thp_pagemap_count_present(b->pmfd, (uintptr_t)u, (uintptr_t)u + UNIT);
	if (present < 0)
		return present;
	if (incore <= present)
		return 0;
	for (size_t i = 0; i < sizeof(vec); i++)
		if (vec[i] & 1)
			(void)*(volatile uint64_t *)(u + i * PAGE_4K);
	return incore - present;
}

/*
 * Kernel swap to a block device writes asynchronously: MADV_PAGEOUT unmaps,
 * starts the write and leaves the folio in the swap cache, where it stays
 * until memory pressure reclaims it -- a restore would then be a minor fault,
 * not a swap-in.  So wait for the writes, map the swap-cached pages back
 * (clean: nothing is written again) and page the unit out once more, which
 * now frees them at once.  zswap stores synchronously and frees at once:
 * nothing is left in the swap cache.
 */
/*
 * The file tier (thpswapd --tiers=ram,file): wait until the agent moved
 * every RAM record to the file (stored_bytes, RAM's, back to 0), so that
 * the restores read the file and the memory measured is what is left.
 * 0 without a file tier; its time in *@s; -ETIMEDOUT after 120 s.
 */
static int wait_file_tier(double *s)
{
	struct thp_arena_header h;
	uint64_t t0 = thp_now_ns();
	int n, fd = thp_arena_self_fd(&n);

	*s = 0;
	if (fd < 0 || b_arena_header(fd, &h) || !(h.cfg.tiers & THP_TIER_FILE))
		return 0;
	while (!b_arena_header(fd, &h) && h.ctr[THP_C_STORED_BYTES]) {
		struct timespec tick = { 0, 2000000 };

		if (thp_now_ns() - t0 > 120 * 1000000000ull)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
	*s = (double)(thp_now_ns() - t0) / 1e9;
	fprintf(stderr, "file tier: %.0f MiB moved to the file in %.2f s after the evictions\n",
		(double)h.ctr[THP_C_FILE_BYTES] / (double)MIB, *s);
	return 0;
}

static int drain_swapcache(struct bench *b, unsigned char *p, size_t len,
			   uint64_t writeback_base, double *wb_s, double *drain_s)
{
	uint64_t t0;
	int err = 0;

	*wb_s = *drain_s = 0;
	for (int round = 0; round < 3; round++) {
		size_t cached = 0;

		t0 = thp_now_ns();
		err = b_wait_writeback(writeback_base, 120);
		*wb_s += (double)(thp_now_ns() - t0) / 1e9;
		if (err < 0)
			return err;
		t0 = thp_now_ns();
		for (size_t off = 0; off < len; off += UNIT) {
			unsigned retries = 0;
			uint64_t ns;
			long n = map_back_swapcache(b, p + off);

			if (n < 0)
				return (int)n;
			if (n == 0)
				continue;
			cached++;
			err = evict_unit(b, p + off, &retries, &ns, NULL);
			if (err < 0)
				return err;
		}
		*drain_s += (double)(thp_now_ns() - t0) / 1e9;
		if (!cached)
			return 0;
	}
	return 0;
}

static long pmd_units(struct bench *b, void *p, size_t len)
{
	return thp_pagemap_count_pmd(b->pmfd, (uintptr_t)p, (uintptr_t)p + len);
}

static void fill_unit(const struct dataset *ds, unsigned char *u, uint64_t seed, uint64_t idx)
{
	if (ds->kind >= 0) {
		thp_datagen_fill(u, UNIT, (enum thp_data_kind)ds->kind, seed, idx);
		return;
	}
	/* A file is tiled over the whole set. */
	for (size_t off = 0; off < UNIT;) {
		size_t pos = (size_t)((idx * UNIT + off) % ds->file_len);
		size_t n = ds->file_len - pos;

		if (n > UNIT - off)
			n = UNIT - off;
		memcpy(u + off, ds->file + pos, n);
		off += n;
	}
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Restore order: a fixed shuffle, so readahead of neighbours is no help and
 * read and write faults see the same conditions; even positions read. */
static size_t *shuffled(size_t n, uint64_t seed)
{
	size_t *v = malloc(n * sizeof(*v));

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(splitmix(&seed) % i), t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
	return v;
}

/* ---- one measured round trip ---- */

/*
 * Random reads over the set against an identical, never evicted copy of it
 * (the control), in short alternating passes on a different path each time:
 * the load on this shared machine changes from second to second, the ratio
 * of two passes a moment apart much less.
 */
struct chase {
	double ns, control_ns;  /* best pass */
	double ratio;           /* median of set/control over the pairs */
};

#define CHASE_PAIRS 11

static void chase_pairs(struct bench *b, const void *set, const void *control, size_t len,
			struct chase *c)
{
	double ratio[CHASE_PAIRS], tmp;
	uint64_t steps = b->o.chase_steps / CHASE_PAIRS;

	c->ns = c->control_ns = 1e30;
	for (int k = 0; k < CHASE_PAIRS; k++) {
		uint64_t seed = b->o.seed * 1000 + (uint64_t)k;
		double ts, tc;

		/* Alternate which goes first. */
		if (k & 1) {
			tc = b_chase(control, len, steps, seed, &b->sink);
			ts = b_chase(set, len, steps, seed, &b->sink);
		} else {
			ts = b_chase(set, len, steps, seed, &b->sink);
			tc = b_chase(control, len, steps, seed, &b->sink);
		}
		c->ns = ts < c->ns ? ts : c->ns;
		c->control_ns = tc < c->control_ns ? tc : c->control_ns;
		ratio[k] = ts / tc;
	}
	for (int i = 1; i < CHASE_PAIRS; i++)
		for (int j = i; j > 0 && ratio[j - 1] > ratio[j]; j--) {
			tmp = ratio[j];
			ratio[j] = ratio[j - 1];
			ratio[j - 1] = tmp;
		}
	c->ratio = ratio[CHASE_PAIRS / 2];
}

struct phase_result {
	size_t units, evicted, kept, wrong;
	unsigned retries;
	int evict_err;
	double *evict_us, *lat_us;
	bool *lat_write;
	size_t *order;
	/* thpswap mode: each access and eviction call, for the breakdown */
	struct b_timed *acc, *evc;
	struct b_breakdown bd;
	struct b_lat ev, rd, wr, all;
	double evict_s, restore_s, fill_s, writeback_s, drain_s;
	uint64_t swapcached_undrained;
	long pmd_before, pmd_after;
	/* the kernel tier: units PMD-mapped again after the restores, and
	 * how long after them the last one was (-1: not within 10 s) */
	long pmd_collapsed;
	double collapse_s;
	/* thpswap mode: what the agent itself held resident after the
	 * restores (its pool full, as while restores burst); -1 unknown */
	int64_t agent_bytes;
	struct snap s0, s1, s2;
	struct chase chase_before, chase_after;
};

static void phase_free(struct phase_result *r)
{
	free(r->evict_us);
	free(r->lat_us);
	free(r->lat_write);
	free(r->order);
	free(r->acc);
	free(r->evc);
}

static void summarise_restore(struct phase_result *r)
{
	double *rd = malloc(r->units * sizeof(double)), *wr = malloc(r->units * sizeof(double));
	size_t nr = 0, nw = 0;

	if (!rd || !wr) {
		free(rd);
		free(wr);
		return;
	}
	for (size_t k = 0; k < r->units; k++) {
		if (r->lat_write[k])
			wr[nw++] = r->lat_us[k];
		else
			rd[nr++] = r->lat_us[k];
	}
	b_lat_summarise(rd, nr, &r->rd);
	b_lat_summarise(wr, nw, &r->wr);
	b_lat_summarise(r->lat_us, r->units, &r->all);
	free(rd);
	free(wr);
}

/*
 * Fill, (chase), evict unit by unit, restore by touching in shuffled order,
 * verify.  @ds NULL means the all-zero region.
 */
static int round_trip(struct bench *b, const struct dataset *ds, const char *tag,
		      size_t len, bool chase, struct phase_result *r)
{
	uint64_t *hash = NULL, t0, t1, t2, sample0 = 0;
	void *control = NULL;
	unsigned char *p;
	void *addr;
	int err;

	memset(r, 0, sizeof(*r));
	r->units = len / UNIT;
	r->evict_us = calloc(r->units, sizeof(double));
	r->lat_us = calloc(r->units, sizeof(double));
	r->lat_write = calloc(r->units, sizeof(bool));
	hash = calloc(r->units, sizeof(uint64_t));
	r->order = shuffled(r->units, b->o.seed ^ 0x51ed);
	r->acc = calloc(r->units, sizeof(*r->acc));
	r->evc = calloc(r->units, sizeof(*r->evc));
	if (!r->evict_us || !r->lat_us || !r->lat_write || !hash || !r->order || !r->acc || !r->evc) {
		free(hash);
		return -ENOMEM;
	}
	err = mem_map(b, len, &addr);
	if (err < 0) {
		fprintf(stderr, "thpswap-bench: cannot map %zu MiB: %s\n", len / MIB, strerror(-err));
		free(hash);
		return err;
	}
	p = addr;

	fprintf(stderr, "[%s %s] fill %zu MiB\n", b->o.label, tag, len / MIB);
	t0 = thp_now_ns();
	for (size_t i = 0; i < r->units; i++) {
		if (ds)
			fill_unit(ds, p + i * UNIT, b->o.seed, i);
		else
			for (size_t off = 0; off < UNIT; off += PAGE_4K)
				p[i * UNIT + off] = 0; /* populate: a zero THP */
	}
	r->fill_s = (double)(thp_now_ns() - t0) / 1e9;
	r->pmd_before = pmd_units(b, p, len);
	for (size_t i = 0; i < r->units; i++)
		hash[i] = thp_hash64(p + i * UNIT, UNIT);
	if (chase) {
		/* The control is plain THP memory in both modes. */
		control = thp_mmap_aligned(len, UNIT, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		if (control == MAP_FAILED) {
			control = NULL;
			chase = false;
		} else {
			madvise(control, len, MADV_HUGEPAGE);
			memcpy(control, p, len);
			fprintf(stderr, "[%s %s] random reads before eviction\n", b->o.label, tag);
			chase_pairs(b, p, control, len, &r->chase_before);
		}
	}

	fprintf(stderr, "[%s %s] evict %zu units\n", b->o.label, tag, r->units);
	snap_take(b, &r->s0);
	if (b->samples)
		sample0 = samples_count(b->s);
	for (size_t i = 0; i < r->units; i++) {
		uint64_t ns = 0, at = 0;
		int rc = evict_unit(b, p + i * UNIT, &r->retries, &ns, &at);

		r->evict_us[i] = (double)ns / 1e3;
		r->evc[i] = (struct b_timed){ .addr = (uintptr_t)(p + i * UNIT), .t_in = at,
					      .t_out = at + ns };
		if (rc < 0) {
			if (!r->evict_err)
				r->evict_err = rc;
			r->kept++;
		} else if (rc) {
			r->evicted++;
		} else {
			r->kept++;
		}
	}
	r->evict_s = (double)(thp_now_ns() - r->s0.t) / 1e9;
	if (b->o.mode == MODE_THPSWAP && !b->o.pageout) {
		/* The file tier's writes count as the kernel's swap writes do. */
		err = wait_file_tier(&r->writeback_s);
		if (err < 0)
			fprintf(stderr, "[%s %s] the file tier did not take every record in 120 s\n",
				b->o.label, tag);
	} else {
		/* The kernel's swap, itself or as thpswap's kernel tier. */
		struct b_meminfo m;

		b_meminfo(&m);
		r->swapcached_undrained = m.swap_cached > r->s0.mem.swap_cached ?
					  m.swap_cached - r->s0.mem.swap_cached : 0;
		fprintf(stderr, "[%s %s] wait for swap writes, drop the swap cache (%.0f MiB)\n",
			b->o.label, tag, (double)r->swapcached_undrained / (double)MIB);
		/* The kernel tier's agent makes a region whole as soon as one
		 * of its pages is back: mapping the swap cache back (to page
		 * it out again) would bring every region in before the
		 * restores.  Its swap cache stays, and some of its restores
		 * are minor faults. */
		if (b->o.pageout) {
			uint64_t t0w = thp_now_ns();

			err = b_wait_writeback(r->s0.mem.writeback, 120);
			r->writeback_s = (double)(thp_now_ns() - t0w) / 1e9;
		} else {
			err = drain_swapcache(b, p, len, r->s0.mem.writeback, &r->writeback_s,
					      &r->drain_s);
		}
		if (err < 0)
			fprintf(stderr, "[%s %s] swap writes did not finish: %s\n", b->o.label, tag,
				strerror(-err));
		/* Units that stayed resident through the drain are not evicted. */
		r->evicted = r->kept = 0;
		for (size_t i = 0; i < r->units; i++) {
			if (b_resident_pages(b->pmfd, (uintptr_t)(p + i * UNIT),
					     (uintptr_t)(p + (i + 1) * UNIT)) == 0)
				r->evicted++;
			else
				r->kept++;
		}
	}
	snap_take(b, &r->s1);
	b_lat_summarise(r->evict_us, r->units, &r->ev);
	if (r->evict_err)
		fprintf(stderr, "[%s %s] eviction failed on some units: %s\n", b->o.label, tag,
			strerror(-r->evict_err));

	fprintf(stderr, "[%s %s] restore by first touch (%.1f s evict)\n", b->o.label, tag, r->evict_s);
	for (size_t k = 0; k < r->units; k++) {
		unsigned char *u = p + r->order[k] * UNIT;
		bool w = k & 1;

		/* The first touch faults; when it returns is the breakdown's. */
		t0 = thp_now_ns();
		touch_range(u, 0, PAGE_4K, w);
		t1 = thp_now_ns();
		touch_range(u, PAGE_4K, UNIT, w);
		t2 = thp_now_ns();
		r->lat_us[k] = (double)(t2 - t0) / 1e3;
		r->lat_write[k] = w;
		r->acc[k] = (struct b_timed){ (uintptr_t)u, t0, t1, t2, w };
	}
	snap_take(b, &r->s2);
	r->agent_bytes = -1;
	if (b->o.mode == MODE_THPSWAP) {
		struct thp_arena_header h;
		int na, afd = thp_arena_self_fd(&na);

		if (afd >= 0 && b_arena_header(afd, &h) == 0)
			r->agent_bytes = (int64_t)h.ctr[THP_C_AGENT_BYTES];
	}
	if (b->samples && b_breakdown(b->s, sample0, samples_count(b->s), (uintptr_t)p, r->units, r->acc,
				r->units, r->evc, r->units, &r->bd) < 0)
		fprintf(stderr, "[%s %s] no breakdown: out of memory\n", b->o.label, tag);
	r->restore_s = (double)(r->s2.t - r->s1.t) / 1e9;
	r->pmd_after = pmd_units(b, p, len);
	r->pmd_collapsed = r->pmd_after;
	r->collapse_s = 0;
	if (b->o.pageout) {
		/* The agent's scan makes each region one PMD again: polled. */
		uint64_t t3 = thp_now_ns();

		while ((r->pmd_collapsed = pmd_units(b, p, len)) < (long)r->units &&
		       thp_now_ns() - t3 < 10 * 1000000000ull) {
			struct timespec tick = { 0, 5000000 };

			nanosleep(&tick, NULL);
		}
		r->collapse_s = r->pmd_collapsed == (long)r->units ?
				(double)(thp_now_ns() - t3) / 1e9 : -1;
		fprintf(stderr, "[%s %s] %ld of %zu units PMD-mapped right after the restores, %ld "
			"%.2f s later\n", b->o.label, tag, r->pmd_after, r->units, r->pmd_collapsed,
			(double)(thp_now_ns() - t3) / 1e9);
	}
	summarise_restore(r);

	for (size_t i = 0; i < r->units; i++)
		if (thp_hash64(p + i * UNIT, UNIT) != hash[i])
			r->wrong++;
	if (r->wrong)
		fprintf(stderr, "[%s %s] %zu units came back WRONG\n", b->o.label, tag, r->wrong);
	if (chase) {
		fprintf(stderr, "[%s %s] random reads after restore\n", b->o.label, tag);
		chase_pairs(b, p, control, len, &r->chase_after);
		munmap(control, len);
	}
	mem_unmap(b, addr, len);
	free(hash);
	return 0;
}

/* ---- output ---- */

static void json_lat(struct thp_json *j, const char *key, const struct b_lat *l)
{
	thp_json_begin_object(j, key);
	thp_json_u64(j, "n", l->n);
	thp_json_double(j, "p50_us", l->p50);
	thp_json_double(j, "p90_us", l->p90);
	thp_json_double(j, "p99_us", l->p99);
	thp_json_double(j, "mean_us", l->mean);
	thp_json_double(j, "min_us", l->min);
	thp_json_double(j, "max_us", l->max);
	thp_json_end_object(j);
}

static void json_vm(struct thp_json *j, const char *key, const struct snap *a, const struct snap *z)
{
	thp_json_begin_object(j, key);
	for (int i = 0; i < B_VM__MAX; i++)
		thp_json_i64(j, b_vm_names[i], (int64_t)(z->vm[i] - a->vm[i]));
	thp_json_end_object(j);
}

static void json_stats(struct thp_json *j, const char *key, const struct thpswap_stats *a,
		       const struct thpswap_stats *z)
{
#define D(f) thp_json_i64(j, #f, (int64_t)(z->f - a->f))
	thp_json_begin_object(j, key);
	D(evicted_zero); D(evicted_ram); D(evictions); D(restores); D(restores_pmd);
	D(faults); D(evict_cancelled); D(evict_incompressible); D(evict_refused);
	D(split_repaired); D(split_left); D(eagain_retries); D(fallback_4k); D(corrupt);
	thp_json_u64(j, "stored_bytes_after_evict", z->stored_bytes);
	thp_json_end_object(j);
#undef D
}

/* What a phase cost between @a and @z: CPU and counters. */
static void json_costs(const struct bench *b, struct thp_json *j, const struct snap *a,
		       const struct snap *z)
{
	thp_json_double(j, "client_cpu_s", z->cpu - a->cpu);
	thp_json_double(j, "daemon_cpu_s", z->dcpu - a->dcpu);
	json_vm(j, "vmstat", a, z);
	if (b->s)
		json_stats(j, "thpswap", &a->st, &z->st);
}

static void json_band(struct thp_json *j, const char *key, const struct b_band *bd,
		      const char *const *parts, int nparts, const char *const *flags, int nflags)
{
	char name[48];

	thp_json_begin_object(j, key);
	thp_json_u64(j, "n", bd->n);
	thp_json_u64(j, "matched", bd->matched);
	thp_json_double(j, "lat_us", bd->lat_us);
	for (int i = 0; i < nparts; i++) {
		snprintf(name, sizeof(name), "%s_us", parts[i]);
		thp_json_double(j, name, bd->part_us[i]);
	}
	for (int i = 0; i < nflags; i++)
		thp_json_u64(j, flags[i], bd->flag[i]);
	thp_json_end_object(j);
}

/* Where the time went (thpswap mode): the p50 and p99 bands of restores,
 * by kind, and of evictions.  See docs/BENCHMARKS.md. */
static void json_breakdown(struct thp_json *j, const struct b_breakdown *bd)
{
	static const char *const kinds[] = { "read", "write" };
	const struct b_band *rs[] = { bd->rd, bd->wr };

	thp_json_begin_object(j, "breakdown");
	thp_json_u64(j, "samples", bd->samples);
	thp_json_u64(j, "restores_matched", bd->restores_matched);
	thp_json_u64(j, "evictions_matched", bd->evictions_matched);
	for (int k = 0; k < 2; k++) {
		thp_json_begin_object(j, kinds[k]);
		json_band(j, "p50", &rs[k][0], b_restore_parts, B_RESTORE_PARTS, b_restore_flags,
			  B_RESTORE_FLAGS);
		json_band(j, "p99", &rs[k][1], b_restore_parts, B_RESTORE_PARTS, b_restore_flags,
			  B_RESTORE_FLAGS);
		thp_json_end_object(j);
	}
	thp_json_begin_object(j, "evict");
	json_band(j, "p50", &bd->ev[0], b_evict_parts, B_EVICT_PARTS, b_evict_flags, B_EVICT_FLAGS);
	json_band(j, "p99", &bd->ev[1], b_evict_parts, B_EVICT_PARTS, b_evict_flags, B_EVICT_FLAGS);
	thp_json_end_object(j);
	thp_json_end_object(j);
}

/* The measurements of one round trip; shared by the data set and the
 * all-zero region. */
static void json_phase(struct bench *b, struct thp_json *j, const char *key,
		       const struct phase_result *r)
{
	int64_t released = (int64_t)r->s0.roll.anon - (int64_t)r->s1.roll.anon;
	int64_t stored = stored_bytes(b, &r->s0, &r->s1);
	double evicted_mib = (double)(r->evicted * UNIT) / (double)MIB;

	thp_json_begin_object(j, key);
	thp_json_u64(j, "units", r->units);
	thp_json_double(j, "fill_s", r->fill_s);

	thp_json_begin_object(j, "evict");
	thp_json_u64(j, "evicted_units", r->evicted);
	thp_json_u64(j, "kept_units", r->kept);
	thp_json_u64(j, "retries", r->retries);
	thp_json_string(j, "error", r->evict_err ? strerror(-r->evict_err) : NULL);
	thp_json_double(j, "wall_s", r->evict_s);
	thp_json_double(j, "writeback_s", r->writeback_s);
	thp_json_double(j, "drain_s", r->drain_s);
	/* Until the device has the bytes: the madvise/advise calls plus the
	 * wait for asynchronous swap writes. */
	thp_json_double(j, "throughput_mib_s", r->evict_s + r->writeback_s > 0 ?
			(double)(r->units * UNIT) / (double)MIB / (r->evict_s + r->writeback_s) : 0);
	thp_json_double(j, "evicted_mib_s", r->evict_s + r->writeback_s > 0 ?
			evicted_mib / (r->evict_s + r->writeback_s) : 0);
	json_lat(j, "per_unit", &r->ev);
	json_costs(b, j, &r->s0, &r->s1);
	thp_json_end_object(j);

	thp_json_begin_object(j, "memory");
	thp_json_i64(j, "rss_before", (int64_t)r->s0.roll.rss);
	thp_json_i64(j, "rss_after", (int64_t)r->s1.roll.rss);
	thp_json_i64(j, "anon_before", (int64_t)r->s0.roll.anon);
	thp_json_i64(j, "anon_after", (int64_t)r->s1.roll.anon);
	thp_json_i64(j, "shmem_delta", (int64_t)r->s1.roll.shmem - (int64_t)r->s0.roll.shmem);
	thp_json_i64(j, "released", released);
	if (r->agent_bytes >= 0)
		thp_json_i64(j, "agent_bytes", r->agent_bytes);
	else
		thp_json_null(j, "agent_bytes");
	thp_json_i64(j, "stored", stored);
	if (stored > 0)
		thp_json_double(j, "stored_ratio", (double)released / (double)stored);
	else
		thp_json_null(j, "stored_ratio");
	thp_json_i64(j, "swap_used_delta", r->s1.swap_used - r->s0.swap_used);
	thp_json_i64(j, "zswap_pool_delta", (int64_t)r->s1.mem.zswap - (int64_t)r->s0.mem.zswap);
	thp_json_i64(j, "zswapped_delta", (int64_t)r->s1.mem.zswapped - (int64_t)r->s0.mem.zswapped);
	thp_json_i64(j, "swapcached_before_drain", (int64_t)r->swapcached_undrained);
	thp_json_i64(j, "swapcached_delta", (int64_t)r->s1.mem.swap_cached - (int64_t)r->s0.mem.swap_cached);
	thp_json_end_object(j);

	thp_json_begin_object(j, "restore");
	json_lat(j, "read", &r->rd);
	json_lat(j, "write", &r->wr);
	json_lat(j, "all", &r->all);
	thp_json_double(j, "wall_s", r->restore_s);
	json_costs(b, j, &r->s1, &r->s2);
	thp_json_end_object(j);

	thp_json_begin_object(j, "pmd");
	thp_json_i64(j, "before", r->pmd_before);
	thp_json_i64(j, "after", r->pmd_after);
	if (b->o.pageout) {
		thp_json_i64(j, "collapsed", r->pmd_collapsed);
		if (r->collapse_s >= 0)
			thp_json_double(j, "collapse_s", r->collapse_s);
		else
			thp_json_null(j, "collapse_s");
	}
	thp_json_double(j, "fraction_after", r->units ? (double)r->pmd_after / (double)r->units : 0);
	thp_json_end_object(j);

	if (r->chase_before.ratio > 0) {
		thp_json_begin_object(j, "random_read");
		thp_json_u64(j, "steps", b->o.chase_steps);
		thp_json_u64(j, "pairs", CHASE_PAIRS);
		thp_json_double(j, "before_ns", r->chase_before.ns);
		thp_json_double(j, "after_ns", r->chase_after.ns);
		thp_json_double(j, "control_before_ns", r->chase_before.control_ns);
		thp_json_double(j, "control_after_ns", r->chase_after.control_ns);
		thp_json_double(j, "ratio_before", r->chase_before.ratio);
		thp_json_double(j, "ratio_after", r->chase_after.ratio);
		/* After restore against before eviction, each against the control. */
		thp_json_double(j, "slowdown", r->chase_after.ratio / r->chase_before.ratio);
		thp_json_end_object(j);
	}
	if (r->bd.on)
		json_breakdown(j, &r->bd);
	thp_json_u64(j, "wrong_units", r->wrong);
	thp_json_end_object(j);
}

static int write_csv(FILE *f, const char *label, const char *data, const struct phase_result *r)
{
	for (size_t k = 0; k < r->units; k++)
		fprintf(f, "%s,%s,%s,%zu,%.3f\n", label, data, r->lat_write[k] ? "write" : "read",
			r->order[k], r->lat_us[k]);
	return ferror(f) ? -EIO : 0;
}

static int write_results(struct bench *b, const struct dataset *ds,
			 const struct phase_result *main_r, const struct phase_result *zero_r)
{
	char path[512];
	struct thp_json j;
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "%s/raw/%s--%s.json", b->o.out, b->o.label, ds->name);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	thp_json_init(&j, f, true);
	thp_json_begin_object(&j, NULL);
	thp_json_string(&j, "config", b->o.label);
	thp_json_string(&j, "mode", b->o.mode == MODE_THPSWAP ? "thpswap" : "kernel");
	thp_json_string(&j, "backend", b->o.backend);
	thp_json_string(&j, "swap_device", b->o.swapdev);
	thp_json_begin_array(&j, "daemon_args");
	for (int i = 0; i < b->o.ndargs; i++)
		thp_json_string(&j, NULL, b->o.dargs[i]);
	thp_json_end_array(&j);
	thp_json_begin_object(&j, "data");
	thp_json_string(&j, "name", ds->name);
	thp_json_string(&j, "composition", ds->describe);
	thp_json_u64(&j, "bytes", main_r->units * UNIT);
	thp_json_u64(&j, "seed", b->o.seed);
	thp_json_end_object(&j);
	json_phase(b, &j, "result", main_r);
	if (zero_r)
		json_phase(b, &j, "zero_region", zero_r);
	thp_json_end_object(&j);
	err = thp_json_finish(&j);
	if (fclose(f) != 0 && !err)
		err = -errno;
	if (err)
		return err;

	snprintf(path, sizeof(path), "%s/raw/%s--%s.csv", b->o.out, b->o.label, ds->name);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "config,data,fault,unit,latency_us\n");
	err = write_csv(f, b->o.label, ds->name, main_r);
	if (!err && zero_r)
		err = write_csv(f, b->o.label, "zero-region", zero_r);
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

/* ---- setup ---- */

static int load_dataset(const char *tok, struct dataset *ds)
{
	int k = thp_datagen_parse(tok);
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd;

	memset(ds, 0, sizeof(*ds));
	if (k >= 0) {
		ds->kind = k;
		snprintf(ds->name, sizeof(ds->name), "%s", tok);
		snprintf(ds->describe, sizeof(ds->describe), "%s", thp_datagen_describe(k));
		return 0;
	}
	ds->kind = -1;
	fd = open(tok, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		fprintf(stderr, "thpswap-bench: --data %s: not a data kind (zero, random, text, code, ints, heapmix, pattern) nor a readable non-empty file\n",
			tok);
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	/* Up to 256 MiB of it; it is tiled over the set. */
	ds->file_len = (size_t)st.st_size > 256 * MIB ? 256 * MIB : (size_t)st.st_size;
	ds->file = malloc(ds->file_len);
	if (!ds->file) {
		close(fd);
		return -ENOMEM;
	}
	while (got < ds->file_len && (n = read(fd, ds->file + got, ds->file_len - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (got != ds->file_len) {
		free(ds->file);
		return -EIO;
	}
	const char *base = strrchr(tok, '/') ? strrchr(tok, '/') + 1 : tok;
	snprintf(ds->name, sizeof(ds->name), "file-%.50s", base);
	for (char *c = ds->name; *c; c++)
		if (*c == ',' || *c == ' ')
			*c = '_';
	snprintf(ds->describe, sizeof(ds->describe), "file %s (%zu bytes), tiled over the set", tok,
		 ds->file_len);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: thpswap-bench --mode kernel|thpswap --label NAME [options]\n"
		"  --backend NAME        swapfile, loop, zram, zswap (kernel) or thpswap (default: by mode)\n"
		"  --swap-dev PATH       the swap device as /proc/swaps names it (kernel mode, --pageout)\n"
		"  --pageout             thpswap mode: evict to the kernel tier (THPSWAP_ADVICE_PAGEOUT), then\n"
		"                        wait up to 10 s for every unit to be one PMD again\n"
		"  --thpswapd PATH       the daemon (thpswap mode; default $THPSWAPD)\n"
		"  --daemon-arg ARG      passed to thpswapd (repeat)\n"
		"  --data LIST           comma-separated: zero,random,text,code,ints,heapmix,pattern or files (default heapmix)\n"
		"  --size SIZE           bytes per data set, multiple of 2M (default 1G)\n"
		"  --zero-units N        2 MiB units in the all-zero region row (default 64; 0 = none)\n"
		"  --chase-steps N       dependent random reads on the set per phase, split over 11 passes,\n"
		"                        as many on the control copy (default 4400000)\n"
		"  --seed N              data seed (default 1)\n"
		"  --out DIR             results directory (default bench-out)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "label", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "swap-dev", required_argument, NULL, 'S' },
		{ "thpswapd", required_argument, NULL, 'T' },
		{ "daemon-arg", required_argument, NULL, 'A' },
		{ "data", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 's' },
		{ "zero-units", required_argument, NULL, 'z' },
		{ "chase-steps", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'r' },
		{ "pageout", no_argument, NULL, 'P' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *mode = NULL;
	uint64_t v;
	int c;

	*o = (struct opts){
		.out = "bench-out", .size = (uint64_t)1 << 30, .zero_units = 64,
		.chase_steps = 4400000, .seed = 1, .thpswapd = getenv("THPSWAPD"),
	};
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mode = optarg; break;
		case 'l': o->label = optarg; break;
		case 'b': o->backend = optarg; break;
		case 'S': o->swapdev = optarg; break;
		case 'T': o->thpswapd = optarg; break;
		case 'A':
			if (o->ndargs >= 15) {
				fprintf(stderr, "thpswap-bench: too many --daemon-arg\n");
				return -EINVAL;
			}
			o->dargs[o->ndargs++] = optarg;
			break;
		case 'd': o->data = optarg; break;
		case 's':
			if (b_parse_size(optarg, &o->size) < 0 || !o->size || o->size % UNIT) {
				fprintf(stderr, "thpswap-bench: --size %s: give a multiple of 2M, e.g. 1G\n", optarg);
				return -EINVAL;
			}
			break;
		case 'z':
			if (b_parse_size(optarg, &v) < 0 || v > 4096) {
				fprintf(stderr, "thpswap-bench: --zero-units %s: give 0..4096\n", optarg);
				return -EINVAL;
			}
			o->zero_units = (unsigned)v;
			break;
		case 'c':
			if (b_parse_size(optarg, &o->chase_steps) < 0) {
				fprintf(stderr, "thpswap-bench: --chase-steps %s: give a number\n", optarg);
				return -EINVAL;
			}
			break;
		case 'r':
			if (b_parse_size(optarg, &o->seed) < 0) {
				fprintf(stderr, "thpswap-bench: --seed %s: give a number\n", optarg);
				return -EINVAL;
			}
			break;
		case 'o': o->out = optarg; break;
		case 'P': o->pageout = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
	}
	if (!mode || !o->label || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	if (!strcmp(mode, "kernel")) {
		o->mode = MODE_KERNEL;
		if (!o->backend)
			o->backend = "swapfile";
	} else if (!strcmp(mode, "thpswap")) {
		o->mode = MODE_THPSWAP;
		o->backend = "thpswap";
		if (!o->thpswapd) {
			fprintf(stderr, "thpswap-bench: thpswap mode needs the daemon: --thpswapd PATH or $THPSWAPD\n");
			return -EINVAL;
		}
	} else {
		fprintf(stderr, "thpswap-bench: --mode %s: give kernel or thpswap\n", mode);
		return -EINVAL;
	}
	return 0;
}

static int start_thpswap(struct bench *b)
{
	const char *args[17];
	char log[512];
	int err;

	for (int i = 0; i < b->o.ndargs; i++)
		args[i] = b->o.dargs[i];
	args[b->o.ndargs] = NULL;
	snprintf(log, sizeof(log), "%s/raw/%s-thpswapd.log", b->o.out, b->o.label);
	err = b_daemon_start(&b->d, b->o.thpswapd, args, log);
	if (err < 0) {
		fprintf(stderr, "thpswap-bench: cannot start %s: %s\n", b->o.thpswapd, strerror(-err));
		return err;
	}
	err = thpswap_open(&b->s, b->d.sock);
	if (err < 0) {
		fprintf(stderr, "thpswap-bench: thpswap_open(%s): %s (daemon log: %s)\n", b->d.sock,
			strerror(-err), log);
		b->s = NULL;
		b_daemon_stop(&b->d, NULL);
		return err;
	}
	/* Room for a phase's evictions and restores, and the daemon's. */
	err = samples_enable(b->s, (uint32_t)(4 * (b->o.size / UNIT + b->o.zero_units) + 1024));
	b->samples = err == 0;
	if (err < 0)
		fprintf(stderr, "thpswap-bench: no breakdown: timing samples: %s\n", strerror(-err));
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { .pmfd = -1 };
	char path[512];
	int err, ret = 1;
	char *save = NULL, *tok;
	double dcpu = 0;

	if (parse_opts(argc, argv, &b.o) < 0)
		return 2;
	snprintf(path, sizeof(path), "%s/raw", b.o.out);
	if ((mkdir(b.o.out, 0755) < 0 && errno != EEXIST) || (mkdir(path, 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "thpswap-bench: cannot create %s: %s\n", path, strerror(errno));
		return 1;
	}
	b.pmfd = thp_pagemap_open(0);
	if (b.pmfd < 0) {
		fprintf(stderr, "thpswap-bench: cannot open /proc/self/pagemap: %s\n", strerror(-b.pmfd));
		return 1;
	}
	if (b.o.mode == MODE_THPSWAP && start_thpswap(&b) < 0)
		goto out;

	char *list = strdup(b.o.data ? b.o.data : "heapmix");
	if (!list)
		goto out;
	ret = 0;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct phase_result mr, zr;
		struct dataset ds;
		bool have_zero = false;

		if (load_dataset(tok, &ds) < 0) {
			ret = 1;
			continue;
		}
		fprintf(stderr, "[%s %s] data: %s\n", b.o.label, ds.name, ds.describe);
		err = round_trip(&b, &ds, ds.name, b.o.size, true, &mr);
		if (!err && b.o.zero_units) {
			err = round_trip(&b, NULL, "zero-region", (size_t)b.o.zero_units * UNIT, false, &zr);
			have_zero = !err;
		}
		if (!err)
			err = write_results(&b, &ds, &mr, have_zero ? &zr : NULL);
		if (err) {
			fprintf(stderr, "[%s %s] failed: %s\n", b.o.label, ds.name, strerror(-err));
			ret = 1;
		} else {
			fprintf(stderr, "[%s %s] evict %.0f MiB/s, restore read p50 %.0f us p99 %.0f us, write p50 %.0f us p99 %.0f us, PMD %ld/%zu, %zu wrong\n",
				b.o.label, ds.name,
				mr.evict_s > 0 ? (double)(mr.units * UNIT) / (double)MIB / mr.evict_s : 0,
				mr.rd.p50, mr.rd.p99, mr.wr.p50, mr.wr.p99, mr.pmd_after, mr.units, mr.wrong);
		}
		phase_free(&mr);
		if (have_zero)
			phase_free(&zr);
		free(ds.file);
	}
	free(list);
out:
	if (b.s) {
		err = thpswap_close(b.s);
		if (err < 0)
			fprintf(stderr, "thpswap-bench: thpswap_close: %s\n", strerror(-err));
	}
	if (b.d.pid > 0) {
		err = b_daemon_stop(&b.d, &dcpu);
		fprintf(stderr, "[%s] thpswapd exited with %d, %.2f s CPU in total\n", b.o.label, err, dcpu);
	}
	close(b.pmfd);
	return ret;
}
