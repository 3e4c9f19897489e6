/* SPDX-License-Identifier: MIT */
/*
 * Nothing the agent touches is ever managed: adopt every 2 MiB block of
 * every private anonymous writable mapping of this process that the
 * library does not note as its own (own_overlaps, as thpswap-run will),
 * then evict all of it and bring it back, several times, with the helpers
 * on.  If a table, a queue, a buffer, a codec workspace, a thread's stack
 * or the zeros of the library were adopted, its eviction (or a first touch
 * of a block adopted empty) would fault on the very uffd the fault thread
 * serves and hang it: the case's deadline reports that as a HANG, with
 * the step it was at.
 *
 * The test links the library's internals (like tests/unit) to ask
 * own_overlaps, rather than a debug-only accessor in the public API: the
 * agent is the same code either way, and the API stays what it is.
 *
 * The program's memory adopted along with the agent's: a plain mapping, a
 * static buffer (.bss), a big malloc (its own mapping) and the heap, grown
 * after the session opened so that any small allocation of the library
 * would sit inside a whole 2 MiB block of it.  Every byte is checked after
 * every round trip; thousands of MADV_DONTNEEDs between the rounds cycle
 * the agent's event queues through all of their memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char **environ;

#include "harness.h"
#include "internal.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define ROUNDS 4
#define MAP_REGIONS 8
#define HEAP_CHUNK (32u << 10)     /* below malloc's mmap threshold: the heap */
#define HEAP_CHUNKS 256            /* 8 MiB of heap */
#define BIG_MALLOC (6u * REG)      /* above it: a mapping of its own */
#define MAX_AREAS (HEAP_CHUNKS + 8)
#define MAX_BLOCKS 8192
#define ZAPS (2 * QCAP)            /* REMOVE events: both queues wrap twice */

/* Static, so in this program's .bss: an anonymous mapping to adopt. */
static char bss_data[3 * REG] __attribute__((aligned(4096)));
static char maps[1 << 20];
static char out[1 << 16];

/* The program's data: where, its pages' numbers, every page's generation. */
struct area {
	char *base;
	size_t len;
	uint64_t pg0;
	uint32_t *gen;
	const char *what;
};
static struct area areas[MAX_AREAS];
static unsigned nareas;

static uint64_t blocks[MAX_BLOCKS];     /* adopted, 2 MiB each */
static unsigned nblocks;

static void add_area(char *base, size_t len, const char *what)
{
	struct area *a = &areas[nareas];

	H_CHECK(nareas < MAX_AREAS, "too many areas");
	a->base = base;
	a->len = len;
	a->pg0 = (uint64_t)nareas << 20;
	a->gen = calloc(len / H_PAGE, sizeof(*a->gen));
	a->what = what;
	H_CHECK(a->gen, "out of memory");
	nareas++;
}

static void write_all(uint32_t gen)
{
	for (unsigned k = 0; k < nareas; k++) {
		h_fill(areas[k].base, areas[k].len, areas[k].pg0, gen);
		for (size_t p = 0; p < areas[k].len / H_PAGE; p++)
			areas[k].gen[p] = gen;
	}
}

static void check_all(const char *when)
{
	for (unsigned k = 0; k < nareas; k++) {
		struct area *a = &areas[k];

		h_at("%s: checking %s at %p (a hang here: the fault thread faulted on memory of "
		     "its own that was adopted)", when, a->what, (void *)a->base);
		H_CHECK(h_check(a->base, a->len, a->pg0, 0, a->gen, a->what) < 0,
			"%s: %s at %p does not read back", when, a->what, (void *)a->base);
	}
}

static bool adopted(uint64_t b)
{
	for (unsigned i = 0; i < nblocks; i++)
		if (blocks[i] == b)
			return true;
	return false;
}

/* Adopted blocks inside [base, base + len): all whole ones if @all. */
static unsigned adopted_in(const char *base, size_t len, bool all, const char *what)
{
	uint64_t lo = ((uint64_t)(uintptr_t)base + REG - 1) & ~(uint64_t)(REG - 1);
	uint64_t hi = ((uint64_t)(uintptr_t)base + len) & ~(uint64_t)(REG - 1);
	unsigned n = 0;

	for (uint64_t b = lo; b < hi; b += REG) {
		H_CHECK(!all || adopted(b), "%s: block %#llx was not adopted", what,
			(unsigned long long)b);
		n += adopted(b);
	}
	return n;
}

static size_t read_maps(char *buf, size_t cap)
{
	size_t n = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	H_CHECK(fd >= 0, "open /proc/self/maps: %s", strerror(errno));
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		H_CHECK(r >= 0, "read /proc/self/maps: %s", strerror(errno));
		if (r == 0)
			break;
		n += (size_t)r;
		H_CHECK(n < cap - 1, "/proc/self/maps is larger than %zu bytes", cap);
	}
	close(fd);
	buf[n] = 0;
	return n;
}

struct range {
	uint64_t lo, hi;
};

/* The private anonymous writable mappings of this process, in address
 * order; no allocation (see open_notes_all). */
static unsigned anon_ranges(char *buf, size_t cap, struct range *r, unsigned max)
{
	unsigned n = 0;

	read_maps(buf, cap);
	for (char *line = buf, *next; *line; line = next) {
		unsigned long long lo, hi, off, inode;
		char perms[8], dev[16];
		int name = 0;

		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (sscanf(line, "%llx-%llx %7s %llx %15s %llu%n", &lo, &hi, perms, &off, dev,
			   &inode, &name) < 6)
			continue;
		while (line[name] == ' ' || line[name] == '\t')
			name++;
		/* Anonymous: no file; a name in brackets ([heap], [stack],
		 * [anon:...]) is still anonymous memory. */
		if (strcmp(perms, "rw-p") || inode || (line[name] != '\n' && line[name] != '[' &&
						      line[name] != 0))
			continue;
		H_CHECK(n < max, "more than %u mappings", max);
		r[n++] = (struct range){ lo, hi };
	}
	return n;
}

static struct range before[4096], after[4096];
static char maps2[1 << 20];

/* Is [lo, hi) inside one of @r? */
static bool covered(const struct range *r, unsigned n, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < n; i++)
		if (r[i].lo <= lo && hi <= r[i].hi)
			return true;
	return false;
}

/*
 * Whether an eviction finds a piece of the agent's memory not noted is up
 * to where it lies (a neighbour noted covers its block too).  So also ask
 * directly, in a process of its own (one session per process): every page
 * of anonymous memory that appeared while thpswap_open ran (new mappings,
 * the heap grown) must be noted as the session's own.  Nothing between
 * the two looks at the maps allocates: static buffers, read(2).
 *
 * The one thing malloc'd on the library's behalf is glibc's: pthread_create
 * callocs each thread's vector of TLS blocks (a few hundred bytes), which
 * the agent's threads never read (their TLS is initial-exec).  So the heap
 * is made first, those fit in it, and the bytes malloc'd meanwhile are
 * bounded by that.
 */
static int open_notes_all(void)
{
	struct thpswap_session *s2;
	struct mallinfo2 m0, m1;
	void *volatile heap;
	unsigned nb, na, pages = 0;
	size_t grew;
	int r;

	heap = malloc(4096);
	H_CHECK(heap, "out of memory");
	free(heap);
	nb = anon_ranges(maps2, sizeof(maps2), before, 4096);
	m0 = mallinfo2();
	r = thpswap_open(&s2, NULL);
	H_CHECK(r == 0, "thpswap_open: %s", strerror(-r));
	m1 = mallinfo2();
	na = anon_ranges(maps2, sizeof(maps2), after, 4096);
	grew = m1.uordblks - m0.uordblks;
	H_CHECK(grew <= (s2->nworkers + 1) * 512u, "thpswap_open malloc'd %zu bytes (more than the "
		"%u agent threads' TLS vectors): memory the agent may touch, not noted", grew,
		s2->nworkers + 1);
	for (unsigned i = 0; i < na; i++)
		for (uint64_t p = after[i].lo; p < after[i].hi; p += H_PAGE) {
			uint64_t q = p;

			if (covered(before, nb, p, p + H_PAGE))
				continue;
			pages++;
			if (own_overlaps(s2, p, p + H_PAGE))
				continue;
			while (q < after[i].hi && !covered(before, nb, q, q + H_PAGE) &&
			       !own_overlaps(s2, q, q + H_PAGE))
				q += H_PAGE;
			H_CHECK(false, "thpswap_open mapped [%#llx, %#llx) (%llu KiB) and did not note "
				"it as the library's own", (unsigned long long)p, (unsigned long long)q,
				(unsigned long long)(q - p) >> 10);
		}
	printf("thpswap_open mapped %u KiB of anonymous memory, all of it noted as its own (%u "
	       "ranges); it malloc'd %zu bytes (glibc's TLS vectors of %u threads)\n",
	       pages * (H_PAGE >> 10), s2->own.n, grew, s2->nworkers + 1);
	H_CHECK(pages > 0, "thpswap_open mapped nothing new");
	H_CHECK(thpswap_close(s2) == 0, "thpswap_close");
	return H_PASS;
}

/* Run open_notes_all in a child (this executable, "--open-check"). */
static void open_check_child(void)
{
	const char *argv[] = { "/proc/self/exe", "--open-check", NULL };
	pid_t pid;
	int r;

	h_at("a child opens a session between two looks at its maps");
	fflush(stdout);
	r = posix_spawn(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
	H_CHECK(r == 0, "posix_spawn %s: %s", argv[0], strerror(r));
	h_track(pid);
	r = h_wait(pid);
	H_CHECK(r == 0, "the child that opened a session between two looks at its maps exited %d", r);
}

/*
 * What thpswap-run does: every whole 2 MiB block of every private
 * anonymous writable mapping, unless it touches the library's own memory.
 * The maps are read first: registering changes them.
 */
static void adopt_everything(struct thpswap_session *s)
{
	static struct range m[4096];
	unsigned own = 0, failed = 0, nmaps, why[4096] = { 0 };

	nmaps = anon_ranges(maps, sizeof(maps), m, 4096);
	for (unsigned i = 0; i < nmaps; i++) {
		uint64_t lo = m[i].lo, hi = m[i].hi;

		for (uint64_t b = (lo + REG - 1) & ~(uint64_t)(REG - 1); b + REG <= hi; b += REG) {
			int r;

			if (own_overlaps(s, b, b + REG)) {
				own++;
				continue;
			}
			r = thpswap_register(s, (void *)(uintptr_t)b, REG);
			if (r) {
				failed++;
				why[-r < 4096 ? -r : 0]++;
				continue;
			}
			H_CHECK(nblocks < MAX_BLOCKS, "more than %u blocks to adopt", MAX_BLOCKS);
			blocks[nblocks++] = b;
		}
	}
	printf("%u private anonymous writable mappings: %u blocks adopted, %u the library's own "
	       "(left alone), %u refused", nmaps, nblocks, own, failed);
	for (int e = 0; e < 4096; e++)
		if (why[e])
			printf("; %u with %s", why[e], strerror(e));
	printf("\n");
	H_CHECK(own > 0, "no block was the library's own: its scratch slots alone take several");
}

/*
 * Where a stack is is up to chance: its used top is rarely inside a whole
 * block of its mapping, so an eviction alone would seldom catch a stack
 * not noted.  So ask directly: every thread but this one is the agent's,
 * and where each one is blocked (its stack pointer, from
 * /proc/self/task/TID/syscall) must be memory of the library's own.
 */
static void agent_stacks_are_own(struct thpswap_session *s, const char *when)
{
	unsigned want = s->nworkers + 1, seen = 0;
	pid_t done[128];

	h_at("%s: looking at the agent threads' stacks", when);
	/* A thread is seen once it is in a system call (idle: poll, futex);
	 * one still running is looked at again. */
	for (unsigned tries = 0; seen < want && tries < 100000; tries++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		H_CHECK(d, "opendir /proc/self/task: %s", strerror(errno));
		while ((e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);
			unsigned long long sp = 0, pc = 0;
			char path[64], buf[512], *last;
			bool old = false;
			ssize_t n;
			int fd;

			if (tid <= 0 || tid == getpid())
				continue;
			for (unsigned k = 0; k < seen; k++)
				old |= done[k] == tid;
			if (old)
				continue;
			snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n <= 0)
				continue;
			buf[n] = 0;
			/* "nr args... sp pc", or "running". */
			last = strrchr(buf, ' ');
			if (!strncmp(buf, "running", 7) || !last || last == buf)
				continue;
			*last = 0;
			pc = strtoull(last + 1, NULL, 16);
			sp = strtoull(strrchr(buf, ' ') + 1, NULL, 16);
			H_CHECK(sp && pc, "%s: cannot parse %s: %s", when, path, buf);
			H_CHECK(own_overlaps(s, sp, sp + 1), "%s: agent thread %d is on a stack at %#llx "
				"that is not noted as the library's own", when, tid, sp);
			H_CHECK(seen < sizeof(done) / sizeof(done[0]), "too many threads");
			done[seen++] = tid;
		}
		closedir(d);
		if (seen < want)
			sched_yield();
	}
	H_CHECK(seen == want, "%s: saw %u agent threads in a system call, want %u", when, seen, want);
}

static long long evict_all(const struct h_daemon *d, const char *when)
{
	char pid[16];
	const char *argv[] = { "--json", "evict", "--pid", pid, "--all", NULL };
	long long evicted = -1;
	int r;

	snprintf(pid, sizeof(pid), "%d", getpid());
	h_at("%s: thpswapctl evict --all (a hang here: a worker or the fault thread faulted on "
	     "memory of its own that was adopted)", when);
	r = h_ctl(d, out, sizeof(out), argv);
	H_CHECK(r == 0, "%s: thpswapctl evict exited %d: %s", when, r, out);
	H_CHECK(h_json_i64(out, "evicted", &evicted) == 0, "%s: evict reply: %s", when, out);
	return evicted;
}

/* Evict in this thread (thpswap_advise: the app codec and buffer). */
static long long advise_all(struct thpswap_session *s, const char *when)
{
	long long n = 0;

	h_at("%s: thpswap_advise COLD on every adopted block", when);
	for (unsigned i = 0; i < nblocks; i++) {
		int r = thpswap_advise(s, (void *)(uintptr_t)blocks[i], REG, THPSWAP_ADVICE_COLD);

		H_CHECK(r >= 0, "%s: thpswap_advise(%#llx): %s", when, (unsigned long long)blocks[i],
			strerror(-r));
		n += r;
	}
	return n;
}

/* The plain mapping's regions left resident after an eviction. */
static unsigned resident_left(const struct area *a)
{
	struct h_region_view v[MAP_REGIONS];
	unsigned n = 0;

	h_arena_view(h_arena_fd(), a->base, MAP_REGIONS, v);
	for (unsigned k = 0; k < MAP_REGIONS; k++)
		n += v[k].state == THP_ST_RESIDENT;
	return n;
}

/* A REMOVE event each: the agent's queues wrap (QCAP each).  The same 16
 * pages of each region again and again: the regions keep their data and
 * have holes, which the next eviction fills (with the zeros). */
static void zap_pages(struct area *a, const char *when)
{
	h_at("%s: %u MADV_DONTNEEDs on %s", when, ZAPS, a->what);
	for (unsigned i = 0; i < ZAPS; i++) {
		size_t p = (i % MAP_REGIONS) * H_PAGES_PER_REGION + 1 + (i / MAP_REGIONS) % 16 * 31;

		H_CHECK(madvise(a->base + p * H_PAGE, H_PAGE, MADV_DONTNEED) == 0,
			"madvise DONTNEED: %s", strerror(errno));
		a->gen[p] = 0;
	}
}

static void adopt_and_round_trip(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats st0, st;
	struct area *map_area;
	char *m, *big, when[64];
	unsigned heap_blocks;

	(void)variant;
	agent_stacks_are_own(s, "after opening");
	open_check_child();
	h_at("making the program's data");
	m = thp_mmap_aligned(MAP_REGIONS * REG, REG, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	H_CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	add_area(m, MAP_REGIONS * REG, "the plain mapping");
	map_area = &areas[0];
	add_area(bss_data, sizeof(bss_data), "the static buffer");
	big = malloc(BIG_MALLOC);
	H_CHECK(big, "out of memory");
	add_area(big, BIG_MALLOC, "the big malloc");
	/* Grown after the session opened: whatever small allocations the
	 * library made in the heap are now inside whole blocks of it. */
	for (unsigned k = 0; k < HEAP_CHUNKS; k++) {
		char *c = malloc(HEAP_CHUNK);

		H_CHECK(c, "out of memory");
		add_area(c, HEAP_CHUNK, "a heap chunk");
	}
	write_all(1);

	h_at("adopting every block that is not the library's own");
	adopt_everything(s);
	adopted_in(m, MAP_REGIONS * REG, true, "the plain mapping");
	adopted_in(bss_data, sizeof(bss_data), true, "the static buffer");
	adopted_in(big, BIG_MALLOC, true, "the big malloc");
	heap_blocks = 0;
	for (unsigned k = 3; k < nareas; k++)
		heap_blocks += adopted_in(areas[k].base - (uintptr_t)areas[k].base % REG, REG, false,
					  "the heap");
	H_CHECK(heap_blocks > 0, "no block of the heap was adopted");
	check_all("after adopting");
	st0 = h_stats(s);

	for (unsigned round = 1; round <= ROUNDS; round++) {
		long long n;

		snprintf(when, sizeof(when), "round %u of %u", round, ROUNDS);
		/* The daemon's evictions (background worker) and the
		 * application's (this thread), in turn. */
		write_all(round + 1);
		zap_pages(map_area, when);
		n = round % 2 ? evict_all(d, when) : advise_all(s, when);
		H_CHECK(n > 0, "%s: nothing was evicted", when);
		H_CHECK(resident_left(map_area) == 0, "%s: %u regions of the plain mapping still "
			"resident after the eviction", when, resident_left(map_area));
		printf("%s: %lld blocks evicted\n", when, n);
		check_all(when);
	}
	agent_stacks_are_own(s, "after the rounds");
	st = h_stats(s);
	printf("%u blocks adopted; %llu evictions, %llu restores over %u rounds\n", nblocks,
	       (unsigned long long)(st.evictions - st0.evictions),
	       (unsigned long long)(st.restores - st0.restores), ROUNDS);
	H_CHECK(st.restores > st0.restores, "nothing was restored");
	/* The session's close unregisters (restores) every adopted block. */
}

int main(int argc, char **argv)
{
	static const struct h_case cases[] = {
		{ "adopt-everything", adopt_and_round_trip, 0, 120 },
	};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Their runtimes' shadow memory is anonymous, huge, and touched by
	 * every access of the agent: not the program's to adopt. */
	if (argc < 2 || strcmp(argv[1], "--case")) {
		printf("skip: sanitizer runtime memory cannot be adopted\n");
		return H_SKIP;
	}
#endif
	if (argc == 2 && !strcmp(argv[1], "--open-check"))
		return open_notes_all();
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
