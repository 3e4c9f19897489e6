/* SPDX-License-Identifier: MIT */
/*
 * thpswap-policy-load: the policy scenario's client and its balloon.
 *
 *   thpswap-policy-load client --size BYTES --seconds S [--socket PATH]
 *                              [--skew rare|95-5|zipf] [--cold-touch-s T]
 *                              [--hot-pct P] [--zipf-s X] [--threads N]
 *                              [--data KIND] [--seed X]
 *     Maps BYTES of anonymous THP memory (thpswap_map with --socket, else
 *     mmap + MADV_HUGEPAGE), fills it from src/datagen, prints a "ready"
 *     line and waits for a line on stdin.  Then N threads run operations
 *     for S seconds: each reads and verifies, then writes, a span of 4 KiB
 *     to 64 KiB inside one 2 MiB region.  The regions are ranked by a
 *     seeded permutation (the hot set is scattered over the mapping); the
 *     first P % of ranks are the hot set.  rare (the default): operations
 *     go uniformly to the hot set, and the rest is touched at a fixed rate,
 *     each cold region about once every T seconds (60); 95-5: 95 % of
 *     operations go to the hot set, 5 % to the rest, uniformly within each;
 *     zipf: rank k is drawn with weight 1/k^X.  One JSON line per second
 *     (operations, latency percentiles, and with --socket the session's
 *     counters); a "mark" line on stdin starts the held-phase statistics;
 *     a "ran" line sums the run up.  Then, after a line on stdin (the
 *     driver takes its pressure away first), a pass verifies every page
 *     and a "done" line says what it found.
 *
 *   thpswap-policy-load balloon
 *     Reads target sizes in MiB from stdin, one a line, and grows to each
 *     (memory touched and mlocked, so the kernel cannot reclaim it and the
 *     client has to give way); prints a JSON line after each step.
 *
 * Every 4 KiB page of the client starts with a 16-byte header (its index
 * and a generation the writes bump); the other 4080 bytes keep the data
 * written at fill, whose hash is kept aside.  A page read is right when its
 * header is (index, generation expected) and its body hash matches: a
 * wrong byte anywhere is a failure, printed to stderr and counted.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <thpswap/thpswap.h>

#include "datagen.h"
#include "hash.h"
#include "lathist.h"
#include "util.h"

#define REGION ((size_t)2 << 20)
#define PAGE 4096u
#define PAGES_PER_REGION ((unsigned)(REGION / PAGE))
#define HDR 16u
#define SPAN_PAGES_MAX 16u
#define MAX_THREADS 16u
#define WRONG_PRINT_MAX 20u
/* Latency histograms count ns (lathist.h). */

enum skew { SKEW_RARE, SKEW_95_5, SKEW_ZIPF };

struct opts {
	const char *sock;
	size_t size;
	double seconds, zipf_s, cold_touch_s;
	unsigned hot_pct, threads;
	enum skew skew;
	enum thp_data_kind data;
	uint64_t seed;
};

struct load {
	const struct opts *o;
	uint8_t *mem;
	size_t regions, pages, hot_regions;
	uint32_t *perm;        /* rank -> region */
	double *zipf_cdf;      /* per rank, zipf only */
	uint64_t *body_hash;   /* per page: bytes HDR..PAGE as filled */
	uint32_t *gen;         /* per page: generation expected */
	pthread_mutex_t *lock; /* per region: one writer of its pages at a time */
	bool locks_ready;
	atomic_uint_fast64_t wrong;
	atomic_uint_fast64_t pages_checked;
	atomic_bool stop;
};

struct worker {
	pthread_t th;
	struct load *l;
	unsigned id;
	/* Drained by the main thread every second: atomics, no lock. */
	_Atomic uint32_t *hist;
	atomic_uint_fast64_t max_ns;
	uint64_t next_cold_ns, cold_every_ns; /* rare: this thread's share of the cold touches */
};

static uint64_t xs(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static uint64_t hist_count(const uint64_t *h)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < H_BUCKETS; b++)
		n += h[b];
	return n;
}

/* The @p-th percentile in microseconds, 0 when empty. */
static double hist_pct_us(const uint64_t *h, uint64_t n, double p)
{
	uint64_t want = (uint64_t)ceil((double)n * p / 100.0), seen = 0;

	if (!n)
		return 0;
	if (!want)
		want = 1;
	for (unsigned b = 0; b < H_BUCKETS; b++) {
		seen += h[b];
		if (seen >= want)
			return hist_value(b) / 1000.0;
	}
	return hist_value(H_BUCKETS - 1) / 1000.0;
}

/* ---- the data: header + body per page ---- */

struct page_hdr {
	uint64_t index;
	uint64_t gen;
};

static void report_wrong(struct load *l, size_t page, const char *what, uint64_t got,
			 uint64_t want)
{
	uint_fast64_t n = atomic_fetch_add(&l->wrong, 1);

	if (n < WRONG_PRINT_MAX)
		fprintf(stderr, "thpswap-policy-load: WRONG page %zu (region %zu, offset %zu): %s "
			"0x%" PRIx64 ", expected 0x%" PRIx64 "\n",
			page, page / PAGES_PER_REGION, (page % PAGES_PER_REGION) * PAGE, what, got, want);
}

/* Checks page @pg (its region's lock held, or no writer running). */
static void check_page(struct load *l, size_t pg)
{
	const uint8_t *p = l->mem + pg * PAGE;
	struct page_hdr h;
	uint64_t bh;

	memcpy(&h, p, sizeof(h));
	if (h.index != pg)
		report_wrong(l, pg, "header index", h.index, pg);
	else if (h.gen != l->gen[pg])
		report_wrong(l, pg, "generation", h.gen, l->gen[pg]);
	bh = thp_hash64(p + HDR, PAGE - HDR);
	if (bh != l->body_hash[pg])
		report_wrong(l, pg, "body hash", bh, l->body_hash[pg]);
	atomic_fetch_add_explicit(&l->pages_checked, 1, memory_order_relaxed);
}

static int fill(struct load *l)
{
	const struct opts *o = l->o;

	for (size_t r = 0; r < l->regions; r++) {
		uint8_t *base = l->mem + r * REGION;

		thp_datagen_fill(base, REGION, o->data, o->seed, r);
		for (unsigned i = 0; i < PAGES_PER_REGION; i++) {
			size_t pg = r * PAGES_PER_REGION + i;
			struct page_hdr h = { .index = pg, .gen = 0 };

			memcpy(base + (size_t)i * PAGE, &h, sizeof(h));
			l->body_hash[pg] = thp_hash64(base + (size_t)i * PAGE + HDR, PAGE - HDR);
			l->gen[pg] = 0;
		}
	}
	return 0;
}

/* ---- the skew ---- */

static size_t pick_rank(const struct load *l, uint64_t *x, bool cold)
{
	const struct opts *o = l->o;
	uint64_t r = xs(x);
	size_t cold_n = l->regions - l->hot_regions;

	if (o->skew == SKEW_RARE) {
		if (cold && cold_n)
			return l->hot_regions + (size_t)((r >> 8) % cold_n);
		return (size_t)((r >> 8) % l->hot_regions);
	}
	if (o->skew == SKEW_95_5) {
		if (!cold_n || (r % 100) < 95)
			return (size_t)((r >> 8) % l->hot_regions);
		return l->hot_regions + (size_t)((r >> 8) % cold_n);
	}
	/* zipf: the first rank whose CDF reaches a uniform draw. */
	double u = (double)(r >> 11) / (double)(1ull << 53);
	size_t lo = 0, hi = l->regions - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->zipf_cdf[mid] >= u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void op(struct load *l, uint64_t *x, bool cold)
{
	size_t region = l->perm[pick_rank(l, x, cold)];
	uint64_t r = xs(x);
	unsigned first = (unsigned)(r % PAGES_PER_REGION);
	unsigned n = 1 + (unsigned)((r >> 16) % SPAN_PAGES_MAX);

	if (first + n > PAGES_PER_REGION)
		n = PAGES_PER_REGION - first;
	pthread_mutex_lock(&l->lock[region]);
	for (unsigned i = 0; i < n; i++) {
		size_t pg = region * PAGES_PER_REGION + first + i;
		struct page_hdr h = { .index = pg };

		check_page(l, pg);
		h.gen = ++l->gen[pg];
		memcpy(l->mem + pg * PAGE, &h, sizeof(h)); /* the write: the page is dirty now */
	}
	pthread_mutex_unlock(&l->lock[region]);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct load *l = w->l;
	uint64_t x = l->o->seed * 0x9e3779b97f4a7c15ull + w->id + 1;

	while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		uint64_t t = thp_now_ns(), ns;
		bool cold = w->cold_every_ns && t >= w->next_cold_ns;

		if (cold)
			w->next_cold_ns += w->cold_every_ns;
		op(l, &x, cold);
		ns = thp_now_ns() - t;
		atomic_fetch_add_explicit(&w->hist[hist_bucket(ns)], 1, memory_order_relaxed);
		if (ns > atomic_load_explicit(&w->max_ns, memory_order_relaxed))
			atomic_store_explicit(&w->max_ns, ns, memory_order_relaxed);
	}
	return NULL;
}

/* ---- the client's main thread ---- */

struct phase {
	uint64_t *hist;
	uint64_t max_ns;
	uint64_t t0_ns, t1_ns;
};

static void phase_json(const char *name, const struct phase *ph)
{
	uint64_t n = hist_count(ph->hist);
	double s = (double)(ph->t1_ns - ph->t0_ns) / 1e9;

	printf("\"%s\":{\"ops\":%" PRIu64 ",\"seconds\":%.3f,\"ops_per_s\":%.1f,\"p50_us\":%.2f,"
	       "\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f}",
	       name, n, s, s > 0 ? (double)n / s : 0.0, hist_pct_us(ph->hist, n, 50),
	       hist_pct_us(ph->hist, n, 99), hist_pct_us(ph->hist, n, 99.9),
	       (double)ph->max_ns / 1000.0);
}

static void stats_json(struct thpswap_session *s)
{
	struct thpswap_stats st;

	if (!s || thpswap_get_stats(s, &st, sizeof(st)) < 0)
		return;
	printf(",\"thpswap\":{\"regions\":%" PRIu64 ",\"resident\":%" PRIu64 ",\"evicted_zero\":%" PRIu64
	       ",\"evicted_ram\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"evictions\":%" PRIu64
	       ",\"restores\":%" PRIu64 ",\"restores_pmd\":%" PRIu64 ",\"faults\":%" PRIu64
	       ",\"evict_cancelled\":%" PRIu64 ",\"evict_incompressible\":%" PRIu64
	       ",\"fallback_4k\":%" PRIu64 ",\"corrupt\":%" PRIu64 "}",
	       st.regions, st.resident, st.evicted_zero, st.evicted_ram, st.stored_bytes, st.evictions,
	       st.restores, st.restores_pmd, st.faults, st.evict_cancelled, st.evict_incompressible,
	       st.fallback_4k, st.corrupt);
}

/* A line on stdin within @ms milliseconds?  1 and the line's first word
 * in @word, 0 on timeout, -1 at end of file or error. */
static int stdin_line(int ms, char *word, size_t sz)
{
	struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
	char buf[128];
	size_t n = 0;
	int r = poll(&p, 1, ms);

	if (r <= 0)
		return r < 0 && errno != EINTR ? -1 : 0;
	/* Byte by byte: stdio's buffer would hide the next line from poll. */
	while (n + 1 < sizeof(buf)) {
		ssize_t k = read(STDIN_FILENO, buf + n, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return n ? 1 : -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r'))
		n--;
	if (n >= sz)
		n = sz - 1; /* the words we know are short: a longer one matches none */
	memcpy(word, buf, n);
	word[n] = '\0';
	return 1;
}

static int setup(struct load *l, const struct opts *o)
{
	memset(l, 0, sizeof(*l));
	l->o = o;
	l->regions = o->size / REGION;
	l->pages = l->regions * PAGES_PER_REGION;
	l->hot_regions = (l->regions * o->hot_pct + 99) / 100;
	if (!l->hot_regions)
		l->hot_regions = 1;
	l->perm = calloc(l->regions, sizeof(*l->perm));
	l->zipf_cdf = calloc(l->regions, sizeof(*l->zipf_cdf));
	l->body_hash = calloc(l->pages, sizeof(*l->body_hash));
	l->gen = calloc(l->pages, sizeof(*l->gen));
	l->lock = calloc(l->regions, sizeof(*l->lock));
	if (!l->perm || !l->zipf_cdf || !l->body_hash || !l->gen || !l->lock)
		return -ENOMEM;
	for (size_t i = 0; i < l->regions; i++) {
		l->perm[i] = (uint32_t)i;
		pthread_mutex_init(&l->lock[i], NULL);
	}
	l->locks_ready = true;
	/* Fisher-Yates: the hot set is scattered over the mapping. */
	uint64_t x = o->seed ^ 0xd1b54a32d192ed03ull;

	for (size_t i = l->regions - 1; i > 0; i--) {
		size_t j = (size_t)(xs(&x) % (i + 1));
		uint32_t t = l->perm[i];

		l->perm[i] = l->perm[j];
		l->perm[j] = t;
	}
	double sum = 0;

	for (size_t k = 0; k < l->regions; k++)
		sum += 1.0 / pow((double)(k + 1), o->zipf_s);
	double acc = 0;

	for (size_t k = 0; k < l->regions; k++) {
		acc += 1.0 / pow((double)(k + 1), o->zipf_s) / sum;
		l->zipf_cdf[k] = acc;
	}
	l->zipf_cdf[l->regions - 1] = 1.0;
	return 0;
}

static void teardown(struct load *l)
{
	if (l->locks_ready)
		for (size_t i = 0; i < l->regions; i++)
			pthread_mutex_destroy(&l->lock[i]);
	free(l->lock);
	free(l->gen);
	free(l->body_hash);
	free(l->zipf_cdf);
	free(l->perm);
}

/* The share of operations the hot set gets, for the ready line. */
static double hot_share(const struct load *l)
{
	if (l->o->skew == SKEW_RARE)
		return 1.0; /* less the fixed rate of cold touches */
	if (l->o->skew == SKEW_95_5)
		return l->hot_regions < l->regions ? 0.95 : 1.0;
	return l->zipf_cdf[l->hot_regions - 1];
}

static int run_ops(struct load *l, struct thpswap_session *s)
{
	const struct opts *o = l->o;
	struct worker w[MAX_THREADS] = { 0 };
	uint64_t *all = calloc(H_BUCKETS, sizeof(uint64_t));
	uint64_t *held = calloc(H_BUCKETS, sizeof(uint64_t));
	uint64_t *sec = calloc(H_BUCKETS, sizeof(uint64_t));
	struct phase pa = { .hist = all }, ph = { .hist = held };
	bool holding = false, marked = false, in_open = true;
	unsigned started = 0, tick = 0;
	uint64_t t0, end, next;
	int r = 0;

	if (!all || !held || !sec) {
		r = -ENOMEM;
		goto out;
	}
	t0 = thp_now_ns();
	end = t0 + (uint64_t)(o->seconds * 1e9);
	pa.t0_ns = t0;
	for (; started < o->threads; started++) {
		w[started].l = l;
		w[started].id = started;
		if (o->skew == SKEW_RARE && l->regions > l->hot_regions) {
			/* Each cold region about once per cold_touch_s, spread over the threads. */
			w[started].cold_every_ns = (uint64_t)(o->cold_touch_s * 1e9 * o->threads /
							      (double)(l->regions - l->hot_regions));
			w[started].next_cold_ns = t0 + w[started].cold_every_ns * (started + 1) / o->threads;
		}
		w[started].hist = calloc(H_BUCKETS, sizeof(*w[started].hist));
		if (!w[started].hist) {
			r = -ENOMEM;
			break;
		}
		r = -pthread_create(&w[started].th, NULL, worker_main, &w[started]);
		if (r) {
			free((void *)w[started].hist);
			break;
		}
	}
	if (r) {
		atomic_store(&l->stop, true);
		goto join;
	}
	next = t0 + 1000000000ull;
	for (;;) {
		uint64_t now = thp_now_ns(), sec_max = 0, n;
		char word[32];

		if (now < next) {
			int ms = (int)((next - now + 999999) / 1000000);

			if (in_open) {
				int k = stdin_line(ms, word, sizeof(word));

				if (k < 0)
					in_open = false;
				else if (k > 0 && !strcmp(word, "mark"))
					marked = true;
			} else {
				struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

				nanosleep(&ts, NULL);
			}
			continue;
		}
		tick++;
		memset(sec, 0, H_BUCKETS * sizeof(uint64_t));
		for (unsigned i = 0; i < started; i++) {
			uint64_t m = atomic_exchange(&w[i].max_ns, 0);

			for (unsigned b = 0; b < H_BUCKETS; b++) {
				uint32_t c = atomic_exchange_explicit(&w[i].hist[b], 0, memory_order_relaxed);

				sec[b] += c;
			}
			if (m > sec_max)
				sec_max = m;
		}
		for (unsigned b = 0; b < H_BUCKETS; b++) {
			all[b] += sec[b];
			if (holding)
				held[b] += sec[b];
		}
		if (sec_max > pa.max_ns)
			pa.max_ns = sec_max;
		if (holding && sec_max > ph.max_ns)
			ph.max_ns = sec_max;
		n = hist_count(sec);
		printf("{\"t\":%u,\"ops\":%" PRIu64 ",\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f,"
		       "\"held\":%s,\"wrong\":%" PRIu64,
		       tick, n, hist_pct_us(sec, n, 50), hist_pct_us(sec, n, 99), (double)sec_max / 1000.0,
		       holding ? "true" : "false", (uint64_t)atomic_load(&l->wrong));
		stats_json(s);
		printf("}\n");
		fflush(stdout);
		/* The held phase starts at a tick, so its seconds and its
		 * operations cover the same time. */
		if (marked && !holding) {
			holding = true;
			ph.t0_ns = now;
		}
		next += 1000000000ull;
		if (next > end)
			break;
	}
	atomic_store(&l->stop, true);
join:
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].th, NULL);
	if (r)
		goto free_workers;
	/* What the workers did after the last tick counts in the run too. */
	for (unsigned i = 0; i < started; i++)
		for (unsigned b = 0; b < H_BUCKETS; b++) {
			uint32_t c = atomic_load(&w[i].hist[b]);

			all[b] += c;
			if (holding)
				held[b] += c;
		}
	pa.t1_ns = ph.t1_ns = thp_now_ns();
	if (!holding)
		ph.t0_ns = ph.t1_ns;

	printf("{\"event\":\"ran\",\"threads\":%u,", started);
	phase_json("all", &pa);
	printf(",");
	phase_json("held", &ph);
	printf(",\"wrong\":%" PRIu64, (uint64_t)atomic_load(&l->wrong));
	stats_json(s);
	printf("}\n");
	fflush(stdout);

	/* Every page once more, touched or not: nothing may have changed.  It
	 * brings every page back, so the driver first takes the pressure
	 * away, then says so (or closes stdin). */
	char word[32];

	while (in_open && stdin_line(-1, word, sizeof(word)) == 0)
		;
	uint64_t v0 = thp_now_ns();

	for (size_t pg = 0; pg < l->pages; pg++)
		check_page(l, pg);
	printf("{\"event\":\"done\",\"verify_s\":%.3f,\"pages_checked\":%" PRIu64
	       ",\"wrong\":%" PRIu64,
	       (double)(thp_now_ns() - v0) / 1e9, (uint64_t)atomic_load(&l->pages_checked),
	       (uint64_t)atomic_load(&l->wrong));
	stats_json(s);
	printf("}\n");
	fflush(stdout);
free_workers:
	for (unsigned i = 0; i < started; i++)
		free((void *)w[i].hist);
out:
	free(sec);
	free(held);
	free(all);
	return r;
}

static int client(const struct opts *o)
{
	struct thpswap_session *s = NULL;
	struct load l;
	uint64_t t;
	char word[32];
	int r, r2;

	r = setup(&l, o);
	if (r)
		goto out;
	if (o->sock) {
		r = thpswap_open(&s, o->sock);
		if (r) {
			fprintf(stderr, "thpswap-policy-load: thpswap_open %s: %s\n", o->sock, strerror(-r));
			goto out;
		}
		void *p;

		r = thpswap_map(s, o->size, &p);
		if (r) {
			fprintf(stderr, "thpswap-policy-load: thpswap_map: %s\n", strerror(-r));
			goto out;
		}
		l.mem = p;
	} else {
		void *p = thp_mmap_aligned(o->size, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE);

		if (p == MAP_FAILED) {
			r = -errno;
			fprintf(stderr, "thpswap-policy-load: mmap: %s\n", strerror(errno));
			goto out;
		}
		l.mem = p;
		if (madvise(p, o->size, MADV_HUGEPAGE) < 0) {
			r = -errno;
			fprintf(stderr, "thpswap-policy-load: MADV_HUGEPAGE: %s\n", strerror(errno));
			goto out;
		}
	}
	t = thp_now_ns();
	r = fill(&l);
	if (r)
		goto out;
	printf("{\"event\":\"ready\",\"pid\":%d,\"mode\":\"%s\",\"size\":%zu,\"regions\":%zu,"
	       "\"hot_regions\":%zu,\"hot_share\":%.4f,\"skew\":\"%s\",\"data\":\"%s\",\"fill_s\":%.3f",
	       (int)getpid(), s ? "thpswap" : "plain", o->size, l.regions, l.hot_regions, hot_share(&l),
	       o->skew == SKEW_ZIPF ? "zipf" : o->skew == SKEW_95_5 ? "95-5" : "rare",
	       thp_datagen_name(o->data),
	       (double)(thp_now_ns() - t) / 1e9);
	/* Where the hot set is, for the driver's count of its evictions. */
	printf(",\"base\":\"%p\",\"hot\":[", (void *)l.mem);
	for (size_t i = 0; i < l.hot_regions; i++)
		printf("%s%u", i ? "," : "", l.perm[i]);
	printf("]");
	stats_json(s);
	printf("}\n");
	fflush(stdout);
	/* The driver sets its limits up, then says go (or closes stdin). */
	while ((r = stdin_line(-1, word, sizeof(word))) == 0)
		;
	r = run_ops(&l, s);
out:
	if (s) {
		r2 = thpswap_close(s); /* restores everything; the memory stays ours */
		if (!r && r2)
			r = r2;
	}
	if (l.mem && !o->sock)
		munmap(l.mem, o->size);
	teardown(&l);
	if (!r && atomic_load(&l.wrong))
		r = -EIO;
	return r;
}

/* ---- the balloon ---- */

struct chunk {
	void *p;
	size_t len;
};

static int balloon(void)
{
	struct chunk *c = NULL;
	size_t n = 0, cap = 0, have = 0;
	bool locked = true;
	char line[64];
	int r = 0;

	printf("{\"event\":\"ready\",\"pid\":%d}\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		size_t want = (size_t)strtoull(line, NULL, 10) << 20;
		uint64_t t = thp_now_ns();

		while (have < want) {
			size_t len = want - have < ((size_t)64 << 20) ? want - have : (size_t)64 << 20;
			void *p;

			if (n == cap) {
				struct chunk *nc = realloc(c, (cap ? cap * 2 : 64) * sizeof(*c));

				if (!nc) {
					r = -ENOMEM;
					goto out;
				}
				c = nc;
				cap = cap ? cap * 2 : 64;
			}
			p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED) {
				r = -errno;
				goto out;
			}
			/* Not zero: the kernel must not map the zero page for it. */
			memset(p, 0x5a, len);
			if (mlock(p, len) < 0)
				locked = false;
			c[n++] = (struct chunk){ p, len };
			have += len;
		}
		printf("{\"balloon_bytes\":%zu,\"locked\":%s,\"step_s\":%.3f}\n", have,
		       locked ? "true" : "false", (double)(thp_now_ns() - t) / 1e9);
		fflush(stdout);
	}
out:
	for (size_t i = 0; i < n; i++)
		munmap(c[i].p, c[i].len);
	free(c);
	if (r)
		fprintf(stderr, "thpswap-policy-load: balloon: %s\n", strerror(-r));
	return r;
}

static int usage(FILE *f, int rc)
{
	fprintf(f,
		"usage: thpswap-policy-load client --size BYTES --seconds S [--socket PATH]\n"
		"                                  [--skew rare|95-5|zipf] [--cold-touch-s T]\n"
		"                                  [--hot-pct P] [--zipf-s X]\n"
		"                                  [--threads N] [--data KIND] [--seed X]\n"
		"       thpswap-policy-load balloon   (target MiB per line on stdin)\n");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 'S' },  { "size", required_argument, NULL, 'z' },
		{ "seconds", required_argument, NULL, 's' }, { "skew", required_argument, NULL, 'k' },
		{ "hot-pct", required_argument, NULL, 'H' }, { "zipf-s", required_argument, NULL, 'Z' },
		{ "threads", required_argument, NULL, 't' }, { "data", required_argument, NULL, 'd' },
		{ "seed", required_argument, NULL, 'x' },    { "help", no_argument, NULL, 'h' },
		{ "cold-touch-s", required_argument, NULL, 'C' },
		{ 0 }
	};
	struct opts o = { .seconds = 20, .zipf_s = 1.0, .hot_pct = 20, .threads = 1,
			  .skew = SKEW_RARE, .cold_touch_s = 60, .data = THP_DATA_HEAPMIX, .seed = 1 };
	int c, r;

	if (argc < 2)
		return usage(stderr, 2);
	if (!strcmp(argv[1], "balloon"))
		return balloon() ? 1 : 0;
	if (strcmp(argv[1], "client"))
		return usage(stderr, 2);
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'S': o.sock = optarg; break;
		case 'z': o.size = (size_t)strtoull(optarg, NULL, 0); break;
		case 's': o.seconds = strtod(optarg, NULL); break;
		case 'k':
			if (!strcmp(optarg, "rare"))
				o.skew = SKEW_RARE;
			else if (!strcmp(optarg, "zipf"))
				o.skew = SKEW_ZIPF;
			else if (!strcmp(optarg, "95-5"))
				o.skew = SKEW_95_5;
			else
				return usage(stderr, 2);
			break;
		case 'H': o.hot_pct = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'Z': o.zipf_s = strtod(optarg, NULL); break;
		case 'C': o.cold_touch_s = strtod(optarg, NULL); break;
		case 't': o.threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd':
			r = thp_datagen_parse(optarg);
			if (r < 0)
				return usage(stderr, 2);
			o.data = (enum thp_data_kind)r;
			break;
		case 'x': o.seed = strtoull(optarg, NULL, 0); break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (!o.size || o.size % REGION || o.seconds < 1 || !o.hot_pct || o.hot_pct > 100 ||
	    !o.threads || o.threads > MAX_THREADS || o.zipf_s <= 0 ||
	    o.cold_touch_s <= 0) {
		fprintf(stderr, "thpswap-policy-load: --size a multiple of 2 MiB, --seconds >= 1, "
				"--hot-pct 1..100, --threads 1..%u, --zipf-s > 0, --cold-touch-s > 0\n", MAX_THREADS);
		return 2;
	}
	r = client(&o);
	if (r)
		fprintf(stderr, "thpswap-policy-load: %s\n", strerror(-r));
	return r ? 1 : 0;
}
