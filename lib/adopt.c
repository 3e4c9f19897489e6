/* SPDX-License-Identifier: MIT */
/*
 * Adoption: a thread of the session that, every scan_ms, looks at the
 * process's mappings and registers the 2 MiB blocks of those that are the
 * program's own data and that nothing manages yet.  It is a thread of its
 * own so that registering (which takes locks, reads /proc and waits for
 * the agent) never runs on a program thread, least of all from inside an
 * allocator.
 *
 * A mapping is adopted when it is private, anonymous, readable and
 * writable, at least min_size long and holds a whole aligned 2 MiB block;
 * never when it is (VmFlags of /proc/self/smaps, read only when there is
 * a candidate):
 *   [stack], growsdown ("gd")   a stack grows below its mapping
 *   MADV_NOHUGEPAGE ("nh")      the program does not want huge pages there;
 *                               glibc thread stacks are MAP_STACK, which
 *                               the kernel marks so (Linux 6.7 and later)
 *   mlocked ("lo")              it must stay in RAM
 *   MADV_DONTFORK/WIPEONFORK    a fork child must not get it, or gets it
 *   ("dc", "wf")                zeroed: not what the agent's fork copy does
 *   MADV_DONTDUMP ("dd")        not the program's data (sanitizer shadow,
 *                               runtimes' reservations)
 *   sealed ("sl")               its advice cannot change
 * nor a block that is the library's own memory (own.c): the agent
 * faulting on its own memory would wait for itself.
 *
 * The whole mapping is registered (head and tail too, with no record:
 * their faults are served as new memory), so it stays one VMA: mremap
 * refuses to grow or move a range that spans several.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "procmap.h"

/* Mappings looked at per scan; more are taken at once by the next one. */
#define NCAND 256
/* Scans before a mapping found unfit is looked at again (it may be
 * munlocked, say), and before one another uffd holds is tried again. */
#define SKIP_SCANS 100
#define BUSY_SCANS 10
#define BUFSZ (64u << 10)

struct adopt_cand {
	uint64_t lo, hi;          /* the mapping */
	bool ok;                  /* VmFlags seen and none forbids it */
};

static inline uint64_t up2m(uint64_t a)
{
	return (a + REGION - 1) & ~(REGION - 1);
}

static inline uint64_t down2m(uint64_t a)
{
	return a & ~(REGION - 1);
}

/* ---- reading /proc/self text, one line at a time ---- */

struct lines {
	int fd;
	char *buf;
	size_t sz, len, pos;
};

/* The next line, NUL-terminated without its '\n', or NULL at the end.  A
 * line longer than the buffer is cut (nothing we read needs its end). */
static char *next_line(struct lines *l)
{
	for (;;) {
		char *nl = memchr(l->buf + l->pos, '\n', l->len - l->pos);
		ssize_t n;

		if (nl) {
			char *line = l->buf + l->pos;

			*nl = 0;
			l->pos = (size_t)(nl - l->buf) + 1;
			return line;
		}
		if (l->pos == 0 && l->len == l->sz - 1) {
			/* Full of one line: keep its start, drop the rest. */
			l->buf[l->len] = 0;
			l->pos = l->len = 0;
			return l->buf;
		}
		memmove(l->buf, l->buf + l->pos, l->len - l->pos);
		l->len -= l->pos;
		l->pos = 0;
		do
			n = read(l->fd, l->buf + l->len, l->sz - 1 - l->len);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			if (l->len == 0)
				return NULL;
			l->buf[l->len] = 0; /* a last line without '\n' */
			l->pos = l->len;
			return l->buf;
		}
		l->len += (size_t)n;
	}
}

/* ---- which mappings ---- */

static bool skipped(struct adopt *ad, uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < ad->nskip; i++)
		if (ad->skip[i].lo == lo && ad->skip[i].hi == hi) {
			if (ad->scans < ad->skip[i].until)
				return true;
			ad->skip[i] = ad->skip[--ad->nskip];
			return false;
		}
	return false;
}

static void skip(struct adopt *ad, uint64_t lo, uint64_t hi, unsigned scans)
{
	unsigned i = ad->nskip < ADOPT_NSKIP ? ad->nskip++ : ad->scans % ADOPT_NSKIP;

	ad->skip[i] = (struct adopt_skip){ lo, hi, ad->scans + scans };
}

/* Does [lo, hi) hold a 2 MiB block that nothing manages and that is not
 * ours? */
static bool has_new_block(struct thpswap_session *s, uint64_t lo, uint64_t hi)
{
	for (uint64_t b = up2m(lo); b + REGION <= hi; b += REGION)
		if (rt_lookup(s, b) < 0 && !own_overlaps(s, b, b + REGION))
			return true;
	return false;
}

/* A private anonymous read-write mapping [lo, hi) named @name ("" for
 * none): note it as a candidate if it may hold blocks to adopt. */
static void consider(struct thpswap_session *s, uint64_t lo, uint64_t hi, const char *name)
{
	struct adopt *ad = &s->adopt;

	if (hi - lo < ad->cfg.min_size || up2m(lo) + REGION > hi)
		return;
	/* [heap] and [anon:NAME] are the program's; [stack] and the rest
	 * ([vsyscall], [uprobes], ...) are not data to adopt. */
	if (name[0] == '[' && strcmp(name, "[heap]") && strncmp(name, "[anon:", 6))
		return;
	if (ad->ncand == NCAND || skipped(ad, lo, hi) || !has_new_block(s, lo, hi))
		return;
	ad->cand[ad->ncand++] = (struct adopt_cand){ lo, hi, false };
}

/* The mappings through PROCMAP_QUERY: -ENOTTY where the kernel lacks it. */
static int query_mappings(struct thpswap_session *s)
{
	struct adopt *ad = &s->adopt;
	uint64_t addr = 0;

	for (;;) {
		struct thp_vma v;
		int rc = thp_procmap_query(ad->maps_fd, addr, true, &v, ad->buf, (uint32_t)ad->bufsz);

		if (rc)
			return rc == -ENOENT ? 0 : rc; /* ENOENT: no more */
		if (v.read && v.write && !v.shared && !v.file)
			consider(s, v.start, v.end, ad->buf);
		addr = v.end;
	}
}

/* The mappings from the text of /proc/self/maps. */
static int parse_mappings(struct thpswap_session *s)
{
	struct adopt *ad = &s->adopt;
	struct lines l = { .buf = ad->buf, .sz = ad->bufsz };
	char *line;

	l.fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (l.fd < 0)
		return -errno;
	while ((line = next_line(&l))) {
		unsigned long lo, hi, ino;
		unsigned maj, min;
		char perms[5];
		int name = 0;

		if (sscanf(line, "%lx-%lx %4s %*x %x:%x %lu %n", &lo, &hi, perms, &maj, &min, &ino,
			   &name) < 6 || !name)
			continue;
		if (perms[0] == 'r' && perms[1] == 'w' && perms[3] == 'p' && ino == 0 &&
		    maj == 0 && min == 0)
			consider(s, lo, hi, line + name);
	}
	close(l.fd);
	return 0;
}

/* Is a mapping with these VmFlags ("rd wr mr ...") to be left alone? */
static bool flags_forbid(const char *flags)
{
	static const char *const no[] = { "gd", "nh", "lo", "lf", "dc", "wf", "dd", "sl" };

	for (const char *f = flags; *f; f++) {
		if (*f == ' ')
			continue;
		for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
			if (f[0] == no[i][0] && f[1] == no[i][1] && (f[2] == ' ' || !f[2]))
				return true;
		while (f[1] && f[1] != ' ')
			f++;
	}
	return false;
}

/* Mark the candidates whose VmFlags allow them (s->adopt.cand is in
 * address order, as smaps is); the rest are skipped for a while. */
static int check_flags(struct thpswap_session *s)
{
	struct adopt *ad = &s->adopt;
	struct lines l = { .buf = ad->buf, .sz = ad->bufsz };
	struct adopt_cand *cur = NULL;
	unsigned next = 0;
	char *line;

	l.fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (l.fd < 0)
		return -errno;
	while ((line = next_line(&l)) && next <= ad->ncand) {
		unsigned long lo, hi;

		/* A mapping's first line starts with its address (lower-case
		 * hex); the fields after it with a capital letter. */
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
			cur = NULL;
			if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
				continue;
			while (next < ad->ncand && ad->cand[next].lo < lo)
				next++;
			if (next < ad->ncand && ad->cand[next].lo == lo && ad->cand[next].hi == hi)
				cur = &ad->cand[next++];
		} else if (cur && !strncmp(line, "VmFlags:", 8)) {
			cur->ok = !flags_forbid(line + 8);
			if (!cur->ok)
				skip(ad, cur->lo, cur->hi, SKIP_SCANS);
			cur = NULL;
		}
	}
	close(l.fd);
	return 0;
}

/* ---- registering ---- */

/* Register the blocks [lo, hi) of candidate @c; the uffd range takes in
 * the mapping's unaligned head and tail when those are not ours.  Adds to
 * *@adopted and *@left; false once the table is full. */
static bool adopt_run(struct thpswap_session *s, const struct adopt_cand *c, uint64_t lo,
		      uint64_t hi, uint64_t *adopted, uint64_t *left)
{
	uint64_t ulo = lo, uhi = hi, n = (hi - lo) / REGION;
	long r;

	if (lo == up2m(c->lo) && c->lo < lo && !own_overlaps(s, c->lo, lo))
		ulo = c->lo;
	if (hi == down2m(c->hi) && hi < c->hi && !own_overlaps(s, hi, c->hi))
		uhi = c->hi;
	r = register_blocks(s, lo, hi - lo, ulo, uhi, true);
	if (r >= 0) {
		*adopted += (uint64_t)r;
		*left += n - (uint64_t)r;
		return (uint64_t)r == n;
	}
	if (r == -ENOSPC) {
		*left += n;
		return false;
	}
	/* EBUSY: another userfaultfd has it (the program's own, or a fork's
	 * that the parent's agent has not let go of yet), or a record being
	 * dropped is still there; anything else: the mapping changed since
	 * we looked.  Look again later. */
	skip(&s->adopt, c->lo, c->hi, r == -EBUSY ? BUSY_SCANS : 1);
	return true;
}

/* Every run of blocks of @c that nothing manages and that is not ours. */
static bool adopt_cand(struct thpswap_session *s, const struct adopt_cand *c, bool room,
		       uint64_t *adopted, uint64_t *left)
{
	uint64_t end = down2m(c->hi), run = 0;

	for (uint64_t b = up2m(c->lo); b <= end; b += REGION) {
		bool take = b < end && rt_lookup(s, b) < 0 && !own_overlaps(s, b, b + REGION);

		if (take && !run)
			run = b;
		else if (!take && run) {
			if (room)
				room = adopt_run(s, c, run, b, adopted, left);
			else
				*left += (b - run) / REGION;
			run = 0;
		}
	}
	return room;
}

/* Keep the counter at what the last scan could not adopt, and tell the
 * caller once that the table is full. */
static void note_left_out(struct thpswap_session *s, uint64_t left)
{
	struct adopt *ad = &s->adopt;

	ctr_add(s, THP_C_ADOPT_LEFT_OUT, (int64_t)left - (int64_t)ad->left_out);
	ad->left_out = left;
	if (left && !ad->said_full && ad->cfg.on_full)
		ad->cfg.on_full(s->hdr->max_regions, left);
	if (left)
		ad->said_full = true;
}

long adopt_scan(struct thpswap_session *s)
{
	struct adopt *ad = &s->adopt;
	uint64_t adopted = 0, left = 0;
	bool room = true;
	int r = -ENOTTY;

	ad->scans++;
	ad->ncand = 0;
	if (!ad->text) {
		r = query_mappings(s);
		if (r == -ENOTTY || r == -EINVAL) {
			ad->text = true; /* before Linux 6.11 */
			ad->ncand = 0;
		}
	}
	if (ad->text)
		r = parse_mappings(s);
	if (r)
		return r;
	if (ad->ncand && (r = check_flags(s)))
		return r;
	for (unsigned i = 0; i < ad->ncand; i++)
		if (ad->cand[i].ok)
			room = adopt_cand(s, &ad->cand[i], room, &adopted, &left);
	note_left_out(s, left);
	return (long)adopted;
}

/* ---- the thread ---- */

static void *adopt_main(void *arg)
{
	struct thpswap_session *s = arg;
	struct adopt *ad = &s->adopt;

	pthread_mutex_lock(&ad->lock);
	while (!ad->stop) {
		struct timespec t;
		long n;

		pthread_mutex_unlock(&ad->lock);
		n = adopt_scan(s);
		pthread_mutex_lock(&ad->lock);
		/* A full candidate list that was of use: the rest at once (a
		 * full table or unfit mappings wait for the next look). */
		if (n > 0 && ad->ncand == NCAND)
			continue;
		t = thp_timespec_ns(now_ns() + ad->cfg.scan_ms * 1000000ull);
		while (!ad->stop && pthread_cond_timedwait(&ad->cond, &ad->lock, &t) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&ad->lock);
	return NULL;
}

static void adopt_free(struct thpswap_session *s, struct adopt *ad)
{
	if (ad->maps_fd >= 0)
		close(ad->maps_fd);
	own_free(s, ad->buf);
	own_free(s, ad->cand);
	pthread_cond_destroy(&ad->cond);
	pthread_mutex_destroy(&ad->lock);
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

int adopt_start(struct thpswap_session *s, const struct adopt_cfg *cfg)
{
	struct adopt *ad = &s->adopt;
	pthread_condattr_t ca;
	pthread_attr_t ta;
	sigset_t all, old;
	int r;

	if (session_forked(s))
		return -ECHILD;
	if (ad->started || cfg->min_size < REGION || !cfg->scan_ms)
		return -EINVAL;
#ifdef UNDER_TSAN
	/* Every lock and atomic of the agent's threads goes through
	 * ThreadSanitizer's metadata, ordinary anonymous memory that cannot
	 * be told from the program's: adopted and evicted, the agent would
	 * wait for itself. */
	return -ENOTSUP;
#endif
	*ad = (struct adopt){ .cfg = *cfg, .maps_fd = -1 };
	pthread_mutex_init(&ad->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ad->cond, &ca);
	pthread_condattr_destroy(&ca);
	ad->bufsz = BUFSZ;
	/* The thread reads and writes these: the library's own, like all
	 * the agent's memory. */
	ad->buf = own_alloc(s, ad->bufsz);
	ad->cand = own_alloc(s, NCAND * sizeof(*ad->cand));
	if (!ad->buf || !ad->cand) {
		r = -ENOMEM;
		goto fail;
	}
	ad->maps_fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	ad->text = ad->maps_fd < 0;
#ifndef NDEBUG
	/* Debug builds: the text of /proc/self/maps even where PROCMAP_QUERY
	 * works, so that a test takes the path of kernels before 6.11. */
	if (getenv("THPSWAP_ADOPT_MAPS_TEXT"))
		ad->text = true;
#endif
	/* A small stack, below any block; no signal of the program's runs
	 * on it. */
	pthread_attr_init(&ta);
	pthread_attr_setstacksize(&ta, 256u << 10);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&ad->thread, &ta, adopt_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&ta);
	if (r)
		goto fail;
	pthread_setname_np(ad->thread, "thpswap-adopt");
	ad->started = true;
	return 0;
fail:
	adopt_free(s, ad);
	*ad = (struct adopt){ .maps_fd = -1 };
	return r;
}

void adopt_stop(struct thpswap_session *s)
{
	struct adopt *ad = &s->adopt;

	if (!ad->started)
		return;
	pthread_mutex_lock(&ad->lock);
	ad->stop = true;
	pthread_cond_signal(&ad->cond);
	pthread_mutex_unlock(&ad->lock);
	pthread_join(ad->thread, NULL);
	/* What it could not adopt is no longer anyone's business. */
	ctr_add(s, THP_C_ADOPT_LEFT_OUT, -(int64_t)ad->left_out);
	adopt_free(s, ad);
	*ad = (struct adopt){ .maps_fd = -1 };
}
