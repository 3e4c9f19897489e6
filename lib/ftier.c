/* SPDX-License-Identifier: MIT */
/*
 * The file tier: stored bytes of RAM records moved from their arena slot to
 * a file, written and read with io_uring.
 *
 * The file mirrors the arena's data area: record i's bytes are at
 * i * THP_SLOT_SIZE, the file is sparse and a freed range is punched, so
 * there is no allocator and nothing to fragment.  It is an O_TMPFILE (a
 * crash leaves nothing behind), opened O_DIRECT where the file system takes
 * it (4 KiB-aligned offsets, lengths and buffers: slots are 2 MiB + 4 KiB,
 * lengths are rounded up): the one the daemon made in its --file-dir and
 * handed over with WELCOME, with its settings from the arena's config; else,
 * where the daemon has no file tier, one in the directory THPSWAP_FILE_TIER
 * names, with the THPSWAP_FILE_TIER_* settings.  The descriptor is the
 * client's: a daemon restart changes nothing here.
 *
 * Demotion (ftier_scan, background thread) owns a record the way a restore
 * does: CAS RAM -> RESTORING, so that a fault on it waits for our wake and
 * every other reader (fork, mremap, unmap, unregister) waits for the record
 * to be stable.  It reads the slot, writes a batch of such records in one
 * submission, and for each written one sets the checksum (the hash of the
 * stored bytes, as the raw codec's), THP_RF_FILE, punches the slot, gives
 * the record back (RESTORING -> RAM) and wakes its region.  A record that
 * could not be written goes back as it was, its bytes still in the slot.
 *
 * Two rings, one per thread that uses the file: the fault thread's for
 * reads, the background thread's for writes.  A ring is not thread-safe,
 * and a shared one would need a lock the fault thread could wait on behind
 * a batch of writes; with two, a restore waits for its own read only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <sys/stat.h>

#include "hash.h"
#include "internal.h"
#include "uffd.h"

#ifdef THPSWAP_HAVE_URING
#include <liburing.h>
#endif

#define FT_ALIGN 4096u
#define DEFAULT_MAX_MB 1024u
#define DEFAULT_AGE_MS 30000u
/* Records written per submission: as many as fit the write buffer. */
#define FT_BATCH 32u

static inline uint64_t round_up(uint64_t n)
{
	return (n + FT_ALIGN - 1) & ~(uint64_t)(FT_ALIGN - 1);
}

#ifdef THPSWAP_HAVE_URING
struct ring {
	struct io_uring ring;
	bool ok;
	/* A submission or a wait failed: requests may be left queued or in
	 * flight, so the ring is never used again (the tier stops demoting;
	 * the fault thread reads the file by pread).  Evicting threads read
	 * the writer's (ftier_takes). */
	atomic_bool broken;
	bool fixed;               /* @buf is registered as buffer 0 */
	char *buf;                /* THP_SLOT_SIZE, own_alloc'd (page-aligned) */
};
#endif

struct ftier {
	int fd;
	bool direct;              /* O_DIRECT */
	uint64_t cap;             /* bytes the file may hold (4 KiB-rounded) */
	uint64_t age_ns;          /* RAM this long since eviction: demote */
	uint64_t ram_budget;      /* stored_bytes above this: demote oldest; 0 none */
	uint64_t scan_ns;         /* between two scans */
	uint64_t next_ns;         /* background thread only */
	_Atomic uint64_t used;    /* 4 KiB-rounded bytes in the file */
	_Atomic uint32_t *len;    /* per record: stored bytes in the file, 0 none */
#ifdef THPSWAP_HAVE_URING
	struct ring rd;           /* the fault thread's */
	struct ring wr;           /* the background thread's */
	/* Where the fault thread reads by pread once its ring broke: a
	 * request the broken ring left in flight may still land in rd.buf.
	 * Mapped at open, touched only then. */
	char *sync_buf;
#endif
};

/* The library prints nothing else; the tier was asked for by name and a
 * silent "off" would look like a tier that never demotes. */
static void say_off(struct thpswap_session *s, const char *why, int err)
{
	char msg[256];
	int n = err ? snprintf(msg, sizeof(msg), "thpswap: file tier off: %s: %s\n", why, strerror(err))
		    : snprintf(msg, sizeof(msg), "thpswap: file tier off: %s\n", why);

	if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1) < 0) {
		/* Nowhere else to say it. */
	}
	ctr_add(s, THP_C_FILE_ERRORS, 1);
}

bool ftier_holds(const struct thpswap_session *s, uint32_t i)
{
	return s->ft && atomic_load(&s->ft->len[i]) != 0;
}

bool ftier_takes(const struct thpswap_session *s)
{
#ifdef THPSWAP_HAVE_URING
	return s->ft && !s->ft->wr.broken;
#else
	(void)s;
	return false;
#endif
}

void ftier_free(struct thpswap_session *s, uint32_t i)
{
	struct ftier *ft = s->ft;
	uint32_t n;

	if (!ft || !(n = atomic_exchange(&ft->len[i], 0)))
		return;
	fallocate(ft->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)((uint64_t)i * THP_SLOT_SIZE), (off_t)round_up(n));
	atomic_fetch_sub(&ft->used, round_up(n));
	ctr_add(s, THP_C_FILE_BYTES, -(int64_t)n);
	__atomic_and_fetch(&s->rec[i].flags, ~THP_RF_FILE, __ATOMIC_RELEASE);
}

#ifdef THPSWAP_HAVE_URING
static int ring_init(struct thpswap_session *s, struct ring *rg)
{
	struct iovec iov;
	int r;

	rg->buf = own_alloc(s, THP_SLOT_SIZE);
	if (!rg->buf)
		return -ENOMEM;
	r = io_uring_queue_init(FT_BATCH, &rg->ring, 0);
	if (r < 0)
		return r;
	rg->ok = true;
	/* Registered: the kernel pins it once instead of per request.  It
	 * makes the buffer resident for the session's life; without it (no
	 * locked memory allowed) the same requests go unregistered. */
	iov.iov_base = rg->buf;
	iov.iov_len = THP_SLOT_SIZE;
	rg->fixed = io_uring_register_buffers(&rg->ring, &iov, 1) == 0;
	return 0;
}

static void ring_fini(struct thpswap_session *s, struct ring *rg)
{
	if (rg->ok)
		io_uring_queue_exit(&rg->ring);
	rg->ok = false;
	own_free(s, rg->buf);
	rg->buf = NULL;
}

static void prep(struct ring *rg, struct io_uring_sqe *sqe, int fd, bool write, char *p,
		 unsigned len, uint64_t off)
{
	if (rg->fixed && write)
		io_uring_prep_write_fixed(sqe, fd, p, len, off, 0);
	else if (rg->fixed)
		io_uring_prep_read_fixed(sqe, fd, p, len, off, 0);
	else if (write)
		io_uring_prep_write(sqe, fd, p, len, off);
	else
		io_uring_prep_read(sqe, fd, p, len, off);
}

/* Submit what is queued and reap @n completions into @res (by user_data). */
static int ring_run(struct ring *rg, unsigned n, int *res)
{
	unsigned got = 0;
	int r = io_uring_submit(&rg->ring);

	if (r < 0 || (unsigned)r < n) {
		rg->broken = true;
		if (r <= 0)
			return r < 0 ? r : -EIO;
		n = (unsigned)r; /* reap what went, then give up */
	}
	while (got < n) {
		struct io_uring_cqe *cqe;

		r = io_uring_wait_cqe(&rg->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			rg->broken = true;
			return r;
		}
		if (cqe->user_data < n)
			res[cqe->user_data] = cqe->res;
		io_uring_cqe_seen(&rg->ring, cqe);
		got++;
	}
	return rg->broken ? -EIO : 0;
}
#endif

void ftier_open(struct thpswap_session *s)
{
	const struct thp_arena_config *cfg = &s->hdr->cfg;
	const char *dir = getenv("THPSWAP_FILE_TIER");
	bool daemon = s->tier_fd >= 0 && (cfg->tiers & THP_TIER_FILE);
	struct ftier *ft;
	uint32_t n = s->hdr->max_regions;
	int fd = -1;

	if (s->tier_fd >= 0 && !daemon) {
		close(s->tier_fd);  /* a file the config does not ask for */
		s->tier_fd = -1;
	}
	if (!daemon && (!dir || !*dir))
		return;
#ifndef THPSWAP_HAVE_URING
	say_off(s, daemon ? "the daemon has a file tier, but this build has no io_uring (liburing)"
			  : "THPSWAP_FILE_TIER is set, but this build has no io_uring (liburing)", 0);
	return;
#else
	if (daemon) {
		fd = s->tier_fd;
		s->tier_fd = -1;
	} else {
		fd = thp_tmpfile_open(dir);
		if (fd < 0) {
			say_off(s, dir, -fd);
			return;
		}
	}
	ft = own_alloc(s, sizeof(*ft));
	if (!ft) {
		close(fd);
		say_off(s, "no memory", ENOMEM);
		return;
	}
	ft->fd = fd;
	ft->direct = (fcntl(fd, F_GETFL) & O_DIRECT) != 0;
	if (daemon) {
		ft->cap = (uint64_t)cfg->file_max_mb << 20;
		ft->age_ns = cfg->file_age_ms * 1000000ull;
		ft->ram_budget = (uint64_t)cfg->file_ram_mb << 20;
	} else {
		ft->cap = (uint64_t)env_uint("THPSWAP_FILE_TIER_MAX_MB", DEFAULT_MAX_MB, 0,
					     1u << 30) << 20;
		ft->age_ns = env_uint("THPSWAP_FILE_TIER_AGE_MS", DEFAULT_AGE_MS, 0,
				      86400000) * 1000000ull;
		ft->ram_budget = (uint64_t)env_uint("THPSWAP_FILE_TIER_RAM_MB", 0, 0,
						    1u << 30) << 20;
	}
	/* Often enough that a record is demoted within half its age of it;
	 * not busier than every 10 ms nor lazier than every second. */
	ft->scan_ns = ft->age_ns / 2;
	if (ft->scan_ns < 10000000ull)
		ft->scan_ns = 10000000ull;
	if (ft->scan_ns > 1000000000ull)
		ft->scan_ns = 1000000000ull;
	ft->len = own_alloc(s, n * sizeof(*ft->len));
	ft->sync_buf = own_alloc(s, THP_SLOT_SIZE);
	if (!ft->len || !ft->sync_buf || ring_init(s, &ft->rd) || ring_init(s, &ft->wr)) {
		s->ft = ft;
		ftier_close(s);
		say_off(s, "cannot set up io_uring", ENOMEM);
		return;
	}
	s->ft = ft;
#endif
}

void ftier_close(struct thpswap_session *s)
{
	struct ftier *ft = s->ft;

	if (!ft)
		return;
#ifdef THPSWAP_HAVE_URING
	ring_fini(s, &ft->rd);
	ring_fini(s, &ft->wr);
	own_free(s, ft->sync_buf);
#endif
	own_free(s, (void *)ft->len);
	close(ft->fd);
	s->ft = NULL;
	own_free(s, ft);
}

#ifdef THPSWAP_HAVE_URING
/*
 * Read @n bytes of record @i from the file (fault thread): one request on
 * its ring, which it waits for and nothing else.  A read the device failed
 * is a bad read (NULL).  A ring that failed itself (a submission or a wait)
 * is broken for good, and this read and every later one go by pread into
 * a buffer of their own: the bytes are still on the file, and a restore
 * must not lose them to a fault of the ring.
 */
static const char *read_record(struct thpswap_session *s, uint32_t i, uint32_t n)
{
	struct ftier *ft = s->ft;
	uint64_t off = (uint64_t)i * THP_SLOT_SIZE;
	ssize_t got;

	if (!ft->rd.broken) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ft->rd.ring);
		int res = -EIO;

		if (sqe) {
			prep(&ft->rd, sqe, ft->fd, false, ft->rd.buf, (unsigned)round_up(n), off);
			sqe->user_data = 0;
			if (ring_run(&ft->rd, 1, &res) == 0)
				return res >= (int)n ? ft->rd.buf : NULL;
		}
		ft->rd.broken = true;
		ctr_add(s, THP_C_FILE_ERRORS, 1);
	}
	do
		got = pread(ft->fd, ft->sync_buf, round_up(n), (off_t)off);
	while (got < 0 && errno == EINTR);
	return got >= (ssize_t)n ? ft->sync_buf : NULL;
}
#endif

const char *rec_stored_bytes(struct thpswap_session *s, uint32_t i, uint32_t len)
{
	const char *slot = (const char *)s->arena + thp_arena_slot_off(s->hdr, i);
	struct ftier *ft = s->ft;
	const struct thp_record *r = &s->rec[i];
	uint32_t n;

	if (!ft || !(rec_flags(r) & THP_RF_FILE) || !(n = atomic_load(&ft->len[i])))
		return slot;
#ifdef THPSWAP_HAVE_URING
	{
		const char *buf;

		/* One read of the whole record. */
		if (n != len || len > THP_SLOT_SIZE || !(buf = read_record(s, i, n)))
			goto bad;
		/* A torn write or a bad sector reads back as other bytes. */
		if (thp_hash64(buf, n) != r->checksum)
			goto bad;
		return buf;
	}
bad:
#endif
	ctr_add(s, THP_C_FILE_BAD_READS, 1);
	return NULL;
}

#ifdef THPSWAP_HAVE_URING
/* One record of a batch being written. */
struct demote {
	uint32_t idx;
	uint32_t len;
	uint64_t off;             /* in the write buffer */
	uint64_t hash;
};

/* May record @i be demoted now?  Its state first: the fields an eviction
 * writes are read only once it has made the record RAM.  A raw record (a
 * region the codec could not shrink) saves nothing in RAM: at once. */
static bool candidate(struct thpswap_session *s, uint32_t i, uint64_t now, uint64_t age)
{
	struct thp_record *r = &s->rec[i];
	uint64_t ev;

	if (rec_state(r) != THP_ST_RAM ||
	    (rec_flags(r) & (THP_RF_FILE | THP_RF_PUNCHING | THP_RF_LEAVING | THP_RF_MOVING)))
		return false;
	ev = __atomic_load_n(&r->evicted_ns, __ATOMIC_RELAXED);
	return ev && now >= ev && (now - ev >= age || r->codec == THP_CODEC_NONE);
}

enum take { TAKEN, NOT_NOW, CAP, NO_ROOM };

/* Own record @i and read its stored bytes into the batch at @off.  Its
 * length is read only once it is ours; anything but TAKEN leaves it as it
 * was (RAM, woken). */
static enum take take(struct thpswap_session *s, uint32_t i, struct demote *d, uint64_t off)
{
	struct ftier *ft = s->ft;
	struct thp_record *r = &s->rec[i];
	enum take why = NOT_NOW;
	uint32_t len;
	ssize_t got;

	if (!rec_cas(s, r, THP_ST_RAM, THP_ST_RESTORING))
		return NOT_NOW;
	len = r->stored_len;
	if (!len || len > THP_SLOT_SIZE)
		goto back;
	if (atomic_load(&ft->used) + round_up(len) > ft->cap) {
		why = CAP;
		goto back;
	}
	if (off + round_up(len) > THP_SLOT_SIZE) {
		why = NO_ROOM;
		goto back;
	}
	got = pread(s->arena_fd, ft->wr.buf + off, len, (off_t)thp_arena_slot_off(s->hdr, i));
	if (got != (ssize_t)len)
		goto back;
	d->hash = thp_hash64(ft->wr.buf + off, len);
	/* The raw codec's checksum is of these bytes already: bytes that no
	 * longer match it stay where a restore will find them bad. */
	if (r->codec == THP_CODEC_NONE && d->hash != r->checksum)
		goto back;
	memset(ft->wr.buf + off + len, 0, round_up(len) - len);
	atomic_fetch_add(&ft->used, round_up(len));
	d->idx = i;
	d->len = len;
	d->off = off;
	return TAKEN;
back:
	rec_set(s, r, THP_ST_RAM);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
	return why;
}

/* The write of @d finished with @res: the record moves to the file, or stays. */
static void settle(struct thpswap_session *s, const struct demote *d, int res)
{
	struct ftier *ft = s->ft;
	struct thp_record *r = &s->rec[d->idx];
	bool ok = res == (int)round_up(d->len);

	if (ok) {
		r->checksum = d->hash;
		atomic_store(&ft->len[d->idx], d->len);
		__atomic_or_fetch(&r->flags, THP_RF_FILE, __ATOMIC_RELEASE);
		ctr_add(s, THP_C_STORED_BYTES, -(int64_t)d->len);
		ctr_add(s, THP_C_FILE_BYTES, d->len);
		fallocate(s->arena_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)thp_arena_slot_off(s->hdr, d->idx), (off_t)THP_SLOT_SIZE);
	} else {
		/* Whatever part of it landed is not ours any more. */
		fallocate(ft->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)((uint64_t)d->idx * THP_SLOT_SIZE), (off_t)round_up(d->len));
		atomic_fetch_sub(&ft->used, round_up(d->len));
		ctr_add(s, (res == -ENOSPC || res == -EDQUOT || res >= 0) ? THP_C_FILE_FULL
									: THP_C_FILE_ERRORS, 1);
	}
	rec_set(s, r, THP_ST_RAM);
	/* Counted once the record is back in RAM: whoever sees the count sees
	 * the record demoted and free for a restore. */
	if (ok)
		ctr_add(s, THP_C_FILE_DEMOTED, 1);
	thp_uffd_wake(s->uffd, rec_addr(r), REGION);
}

/* The @max longest-evicted candidates into @out, oldest first, in one walk
 * of the records (those in the batch are RESTORING, not candidates).
 * Returns how many. */
static unsigned oldest(struct thpswap_session *s, uint64_t now, uint32_t *out, unsigned max)
{
	uint64_t ev[FT_BATCH];
	unsigned n = 0;

	for (uint32_t i = 0; i < s->hdr->max_regions && max; i++) {
		uint64_t e;
		unsigned k;

		if (!candidate(s, i, now, 0))
			continue;
		e = __atomic_load_n(&s->rec[i].evicted_ns, __ATOMIC_RELAXED);
		if (n == max && e >= ev[n - 1])
			continue;
		/* Insert in order; the youngest falls off a full list. */
		k = n < max ? n++ : n - 1;
		for (; k > 0 && ev[k - 1] > e; k--) {
			ev[k] = ev[k - 1];
			out[k] = out[k - 1];
		}
		ev[k] = e;
		out[k] = i;
	}
	return n;
}

/* Write one batch: aged records first, then the oldest while the RAM tier
 * is over budget.  Returns the number demoted; *@more if another batch may
 * find work now. */
static unsigned demote_batch(struct thpswap_session *s, bool *more)
{
	struct ftier *ft = s->ft;
	struct demote d[FT_BATCH];
	int res[FT_BATCH];
	unsigned n = 0, ok = 0;
	uint64_t off = 0, now = now_ns();
	int64_t over = 0;
	enum take why = NOT_NOW;

	*more = false;
	if (ft->wr.broken)
		return 0;
	if (ft->ram_budget)
		over = (int64_t)(atomic_load(&s->hdr->ctr[THP_C_STORED_BYTES]) - ft->ram_budget);
	for (uint32_t i = 0; i < s->hdr->max_regions && n < FT_BATCH; i++) {
		if (!candidate(s, i, now, ft->age_ns))
			continue;
		why = take(s, i, &d[n], off);
		if (why == CAP || why == NO_ROOM)
			break;
		if (why == TAKEN) {
			off += round_up(d[n].len);
			over -= d[n].len;
			n++;
		}
	}
	if (over > 0 && n < FT_BATCH && why != CAP && why != NO_ROOM) {
		uint32_t pick[FT_BATCH];
		unsigned np = oldest(s, now, pick, FT_BATCH - n);

		for (unsigned k = 0; k < np && over > 0; k++) {
			why = take(s, pick[k], &d[n], off);
			if (why == CAP || why == NO_ROOM)
				break;
			if (why != TAKEN)
				continue; /* a fault took it meanwhile */
			off += round_up(d[n].len);
			over -= d[n].len;
			n++;
		}
	}
	if (why == CAP)
		ctr_add(s, THP_C_FILE_FULL, 1);
	*more = why == NO_ROOM || n == FT_BATCH;
	if (!n)
		return 0;
	/* One submission for the batch. */
	for (unsigned k = 0; k < n; k++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ft->wr.ring);

		res[k] = -EIO;
		if (!sqe)
			continue; /* cannot happen: the ring has FT_BATCH entries */
		prep(&ft->wr, sqe, ft->fd, true, ft->wr.buf + d[k].off, (unsigned)round_up(d[k].len),
		     (uint64_t)d[k].idx * THP_SLOT_SIZE);
		sqe->user_data = k;
	}
	if (ring_run(&ft->wr, n, res))
		for (unsigned k = 0; k < n; k++)
			res[k] = -EIO;
	for (unsigned k = 0; k < n; k++) {
		settle(s, &d[k], res[k]);
		ok += res[k] == (int)round_up(d[k].len);
	}
	if (ok < n)
		*more = false;
	return ok;
}
#endif

uint64_t ftier_scan(struct thpswap_session *s)
{
	struct ftier *ft = s->ft;
	uint64_t now = now_ns();

	if (!ft)
		return 0;
	if (now < ft->next_ns)
		return ft->next_ns - now;
#ifdef THPSWAP_HAVE_URING
	{
		bool more = true;

		/* A few batches per look; the rest at the next, so that an
		 * eviction the daemon asks for meanwhile is not held up. */
		for (int b = 0; b < 4 && more; b++)
			demote_batch(s, &more);
		if (more) {
			ft->next_ns = now_ns();
			return 1;
		}
	}
#endif
	ft->next_ns = now_ns() + ft->scan_ns;
	return ft->scan_ns;
}
