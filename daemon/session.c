/* SPDX-License-Identifier: MIT */
/*
 * Client sessions: the region uffd's UFFDIO_API, the arena memfd, the
 * client's pidfd, and the queue of EVICT requests (one in flight at a time).
 *
 * The arena is written by the client's agent, so everything read from it
 * here is an untrusted number: counts are clamped, record states and
 * addresses checked, and the daemon keeps its own copy of the geometry.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "thpswapd.h"
#include "uffd.h"

/* Client addresses are user-space addresses (57-bit with LA57). */
#define USER_ADDR_END (1ULL << 57)

struct evict_req {
	struct evict_req *next;
	uint32_t reason;
	uint32_t n, sent;
	struct thpd_conn *owner;      /* ctl connection waiting, or NULL */
	uint32_t owner_seq;
	struct thp_msg_evict_done sum;
	uint64_t addr[];
};

struct thpd_session {
	struct thpd *d;
	struct thpd_conn *conn;
	struct thpd_session *prev, *next;  /* d->sessions, while linked */
	bool linked;
	uint64_t id;
	pid_t pid;
	uid_t uid;
	char comm[16];
	uint64_t features;

	int pidfd;
	uv_poll_t pid_poll;
	bool pid_poll_init;

	int arena_fd;
	uint64_t arena_size;
	void *map;                    /* header + records, read-only */
	size_t map_len;
	const struct thp_arena_header *hdr;
	const struct thp_record *rec;
	uint32_t nrec;                /* our geometry, not the header's */
	uint64_t records_off;

	uint64_t *last_attempt;       /* ns of our last EVICT per record; 0 never */

	struct evict_req *queue, **tail;
	uint32_t queued;              /* requests in queue, the one in flight included */
	bool inflight;
	uint32_t inflight_seq, inflight_n;
	uint64_t inflight_since;
	uint32_t next_seq;
	/* The agent did not answer EVICT seq late_seq in time: everything was
	 * failed, and new requests are refused until it answers. */
	bool unresponsive;
	uint32_t late_seq;
};

/* ---- accessors ---- */

uint32_t thpd_session_nrec(const struct thpd_session *s) { return s->nrec; }
int thpd_session_arena_fd(const struct thpd_session *s) { return s->arena_fd; }
pid_t thpd_session_pid(const struct thpd_session *s) { return s->pid; }
uid_t thpd_session_uid(const struct thpd_session *s) { return s->uid; }
uint64_t thpd_session_id(const struct thpd_session *s) { return s->id; }
const char *thpd_session_comm(const struct thpd_session *s) { return s->comm; }
bool thpd_session_busy(const struct thpd_session *s)
{
	return s->inflight || s->queue || s->unresponsive;
}

uint64_t thpd_session_last_attempt(const struct thpd_session *s, uint32_t i)
{
	return i < s->nrec ? s->last_attempt[i] : 0;
}

uint64_t thpd_session_ctr(const struct thpd_session *s, enum thp_counter i)
{
	uint64_t v;

	if ((unsigned)i >= THP_ARENA_COUNTERS)
		return 0;
	v = atomic_load_explicit(&s->hdr->ctr[i], memory_order_relaxed);
	switch (i) {
	case THP_C_REGIONS:
	case THP_C_RESIDENT:
	case THP_C_EVICTED_ZERO:
	case THP_C_EVICTED_RAM:
		return v < s->nrec ? v : s->nrec;
	case THP_C_STORED_BYTES:
		return v < (uint64_t)s->nrec * THP_SLOT_SIZE ? v : (uint64_t)s->nrec * THP_SLOT_SIZE;
	default:
		return v;
	}
}

uint64_t thpd_session_hist(const struct thpd_session *s, unsigned h, unsigned b)
{
	if (h >= THP_H__MAX || b >= THP_HIST_BUCKETS)
		return 0;
	return atomic_load_explicit(&s->hdr->hist[h][b], memory_order_relaxed);
}

bool thpd_session_record(const struct thpd_session *s, uint32_t i, struct thp_record *out)
{
	const struct thp_record *r;
	uint32_t st;

	if (i >= s->nrec)
		return false;
	r = &s->rec[i];
	st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (st == THP_ST_FREE || st >= THP_ST__MAX)
		return false;
	memcpy(out, r, sizeof(*out));
	atomic_store_explicit(&out->state, st, memory_order_relaxed);
	if (!out->addr || out->addr % THP_REGION_BYTES || out->addr >= USER_ADDR_END)
		return false;
	if (out->stored_len > THP_SLOT_SIZE)
		out->stored_len = THP_SLOT_SIZE;
	return true;
}

/*
 * Records on pages the client never wrote are holes in the memfd; reading
 * them through a shared mapping would allocate tmpfs pages, so iteration
 * skips holes with SEEK_DATA/SEEK_HOLE.
 */
void thpd_rec_iter_init(struct thpd_rec_iter *it, const struct thpd_session *s, uint32_t start)
{
	*it = (struct thpd_rec_iter){ .s = s, .i = start, .data_end = 0 };
}

static void iter_find_data(struct thpd_rec_iter *it)
{
	const struct thpd_session *s = it->s;
	uint64_t end = s->records_off + (uint64_t)s->nrec * sizeof(struct thp_record);
	off_t off = (off_t)(s->records_off + (uint64_t)it->i * sizeof(struct thp_record));
	off_t data, hole;

	data = lseek(s->arena_fd, off, SEEK_DATA);
	if (data < 0) {
		/* ENXIO: nothing written beyond; anything else: scan it all */
		if (errno == ENXIO)
			it->i = s->nrec;
		else
			it->data_end = s->nrec;
		return;
	}
	if ((uint64_t)data >= end) {
		it->i = s->nrec;
		return;
	}
	if (data > off)
		it->i = (uint32_t)(((uint64_t)data - s->records_off) / sizeof(struct thp_record));
	hole = lseek(s->arena_fd, data, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole >= end)
		it->data_end = s->nrec;
	else
		it->data_end = (uint32_t)(((uint64_t)hole - s->records_off +
					   sizeof(struct thp_record) - 1) / sizeof(struct thp_record));
}

bool thpd_rec_next(struct thpd_rec_iter *it, uint32_t *idx, struct thp_record *out)
{
	while (it->i < it->s->nrec) {
		if (it->i >= it->data_end) {
			iter_find_data(it);
			if (it->i >= it->s->nrec)
				break;
			if (it->i >= it->data_end)
				it->data_end = it->i + 1;
		}
		*idx = it->i++;
		if (thpd_session_record(it->s, *idx, out))
			return true;
	}
	return false;
}

struct thpd_session *thpd_session_find(struct thpd *d, pid_t pid)
{
	for (struct thpd_conn *c = d->conns; c; c = c->next)
		if (c->s && !c->closing && c->s->pid == pid)
			return c->s;
	return NULL;
}

struct thpd_session *thpd_session_first(const struct thpd *d) { return d->sessions; }
struct thpd_session *thpd_session_next(const struct thpd_session *s) { return s->next; }

/* Ids are handed out in increasing order as sessions are linked, so
 * appending keeps d->sessions sorted (CLIENTS_PAGE walks it from an id). */
static void session_link(struct thpd_session *s)
{
	struct thpd *d = s->d;

	s->prev = d->sessions_tail;
	s->next = NULL;
	if (d->sessions_tail)
		d->sessions_tail->next = s;
	else
		d->sessions = s;
	d->sessions_tail = s;
	s->linked = true;
}

static void session_unlink(struct thpd_session *s)
{
	struct thpd *d = s->d;

	if (!s->linked)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		d->sessions_tail = s->prev;
	s->prev = s->next = NULL;
	s->linked = false;
}

/* ---- eviction queue ---- */

static void sum_add(uint64_t *acc, uint64_t v)
{
	*acc = *acc + v < *acc ? UINT64_MAX : *acc + v;
}

static void sum32_add(uint32_t *acc, uint32_t v)
{
	*acc = *acc + v < *acc ? UINT32_MAX : *acc + v;
}

/* Take the front request off the queue. */
static void dequeue(struct thpd_session *s, struct evict_req *q)
{
	s->queue = q->next;
	if (!s->queue)
		s->tail = &s->queue;
	s->queued--;
}

static void finish(struct thpd_session *s, struct evict_req *q)
{
	struct thpd *d = s->d;

	dequeue(s, q);
	thpd_info(d, "pid %d: evicted %u of %u regions (%s): skipped %u, failed %u, "
		  "%llu -> %llu bytes", (int)s->pid, q->sum.evicted, q->n,
		  THP_EVICT_REASON(q->reason) == THP_EVICT_BUDGET ? "budget" :
		  THP_EVICT_REASON(q->reason) == THP_EVICT_ADMIN ? "admin" : "pressure",
		  q->sum.skipped, q->sum.failed, (unsigned long long)q->sum.bytes_in,
		  (unsigned long long)q->sum.bytes_stored);
	if (q->owner)
		thpd_conn_send(q->owner, THP_MSG_EVICT_REPLY, q->owner_seq, &q->sum,
			       sizeof(q->sum), NULL, 0);
	free(q);
}

/* Send the next chunk if nothing is in flight.  May close the connection
 * (and so free the session's resources) on a failed send. */
static void pump(struct thpd_session *s)
{
	uint64_t buf[(sizeof(struct thp_msg_evict) + THP_EVICT_MAX * sizeof(uint64_t)) /
		     sizeof(uint64_t)];
	struct thp_msg_evict *m = (struct thp_msg_evict *)buf;

	while (!s->inflight && s->queue) {
		struct evict_req *q = s->queue;
		uint32_t chunk = q->n - q->sent;
		uint32_t seq;

		if (chunk == 0) {
			finish(s, q);
			continue;
		}
		if (chunk > THP_EVICT_MAX)
			chunk = THP_EVICT_MAX;
		m->reason = q->reason;
		m->n = chunk;
		memcpy(m->addr, q->addr + q->sent, chunk * sizeof(uint64_t));
		seq = ++s->next_seq ? s->next_seq : ++s->next_seq;
		if (thpd_conn_send(s->conn, THP_MSG_EVICT, seq, m,
				   sizeof(*m) + chunk * sizeof(uint64_t), NULL, 0) < 0)
			return;
		s->inflight = true;
		s->inflight_seq = seq;
		s->inflight_n = chunk;
		s->inflight_since = thp_now_ns();
	}
}

int thpd_session_can_queue(struct thpd_session *s)
{
	if (s->unresponsive)
		return -ETIMEDOUT;
	if (s->queued >= s->d->cfg.evict_queue) {
		thpd_limit_hit(s->d, s->conn, THP_L_EVICT_QUEUE,
			       "pid %d (%s, uid %u) has %u eviction requests queued, the limit "
			       "(evict-queue): refusing more until they are done (counted as "
			       "evict_queue in thpswapctl status)", (int)s->pid, s->comm,
			       (unsigned)s->uid, s->queued);
		return -EBUSY;
	}
	return 0;
}

int thpd_session_evict(struct thpd_session *s, uint32_t reason, const uint32_t *idx,
		       uint32_t n, struct thpd_conn *owner, uint32_t owner_seq)
{
	uint64_t now = thp_now_ns();
	struct evict_req *q;
	int err;

	err = thpd_session_can_queue(s);
	if (err < 0)
		return err;
	q = calloc(1, sizeof(*q) + (size_t)n * sizeof(uint64_t));
	if (!q)
		return -ENOMEM;
	q->reason = reason;
	q->owner = owner;
	q->owner_seq = owner_seq;
	for (uint32_t i = 0; i < n; i++) {
		struct thp_record r;

		if (!thpd_session_record(s, idx[i], &r)) {
			q->sum.skipped++;
			continue;
		}
		q->addr[q->n++] = r.addr;
		s->last_attempt[idx[i]] = now;
	}
	*s->tail = q;
	s->tail = &q->next;
	s->queued++;
	pump(s);
	return 0;
}

static void chunk_done(struct thpd_session *s, const struct thp_msg_evict_done *done)
{
	struct evict_req *q = s->queue;

	s->inflight = false;
	sum32_add(&q->sum.evicted, done->evicted);
	sum32_add(&q->sum.skipped, done->skipped);
	sum32_add(&q->sum.failed, done->failed);
	sum_add(&q->sum.bytes_in, done->bytes_in);
	sum_add(&q->sum.bytes_stored, done->bytes_stored);
	q->sent += s->inflight_n;
	if (q->sent >= q->n)
		finish(s, q);
	pump(s);
}

void thpd_session_evict_done(struct thpd_conn *c, uint32_t seq,
			     const struct thp_msg_evict_done *done)
{
	struct thpd_session *s = c->s;

	if (s && s->unresponsive && seq == s->late_seq) {
		thpd_warn("pid %d (%s) answered its EVICT after all, %llu s late: taking "
			  "eviction requests again", (int)s->pid, s->comm,
			  (unsigned long long)((thp_now_ns() - s->inflight_since) / 1000000000ull));
		s->unresponsive = false;
		return;
	}
	if (!s || !s->inflight || seq != s->inflight_seq) {
		thpd_conn_error(c, seq, -EPROTO, "EVICT_DONE for seq %u, but %s", seq,
				s && s->inflight ? "another EVICT is in flight" : "no EVICT is in flight");
		return;
	}
	chunk_done(s, done);
}

void thpd_session_peer_error(struct thpd_conn *c, uint32_t seq, const struct thp_msg_error *e)
{
	struct thpd_session *s = c->s;

	/* The text is the client's: escaped, it cannot forge log lines. */
	char text[4 * sizeof(e->text)];

	thpd_escape(text, sizeof(text), e->text, sizeof(e->text));
	if (s->inflight && seq == s->inflight_seq) {
		struct thp_msg_evict_done failed = { .failed = s->inflight_n };

		thpd_warn("pid %d refused an EVICT of %u regions: %s (%d)", (int)s->pid,
			  s->inflight_n, text, e->err);
		chunk_done(s, &failed);
		return;
	}
	thpd_info(s->d, "pid %d reports: %s (%d)", (int)s->pid, text, e->err);
}

/* Fail every request of @s: their owners get ERROR -ETIMEDOUT. */
static void fail_all_late(struct thpd_session *s, uint32_t timeout_s)
{
	struct evict_req *q = s->queue;

	/* Detach first: answering an owner may close it, which walks queues. */
	s->queue = NULL;
	s->tail = &s->queue;
	s->queued = 0;
	while (q) {
		struct evict_req *next = q->next;

		if (q->owner)
			thpd_conn_error(q->owner, q->owner_seq, -ETIMEDOUT,
					"pid %d (%s) did not answer an EVICT of %u regions within "
					"%u s (evict-timeout): it may be stopped or stuck; nothing "
					"more is evicted from it until it answers", (int)s->pid,
					s->comm, s->inflight_n, timeout_s);
		free(q);
		q = next;
	}
}

void thpd_session_check_timeout(struct thpd_session *s, uint64_t now)
{
	uint32_t timeout_s = s->d->cfg.evict_timeout_s;

	if (!s->inflight || now - s->inflight_since < (uint64_t)timeout_s * 1000000000ull)
		return;
	thpd_limit_hit(s->d, NULL, THP_L_EVICT_TIMEOUT,
		       "pid %d (%s, uid %u) did not answer an EVICT of %u regions within %u s "
		       "(evict-timeout): failing it and the %u requests queued behind it; "
		       "nothing more is evicted from it until it answers (is it stopped?)",
		       (int)s->pid, s->comm, (unsigned)s->uid, s->inflight_n, timeout_s,
		       s->queued ? s->queued - 1 : 0);
	s->inflight = false;
	s->unresponsive = true;
	s->late_seq = s->inflight_seq;
	fail_all_late(s, timeout_s);
}

void thpd_session_forget_owner(struct thpd *d, struct thpd_conn *owner)
{
	for (struct thpd_conn *c = d->conns; c; c = c->next)
		if (c->s)
			for (struct evict_req *q = c->s->queue; q; q = q->next)
				if (q->owner == owner)
					q->owner = NULL;
}

/* ---- start and end ---- */

static void on_session_closed(uv_handle_t *h)
{
	struct thpd_session *s = h->data;

	close(s->pidfd);
	free(s);
}

void thpd_session_free(struct thpd_session *s)
{
	struct evict_req *q = s->queue;

	session_unlink(s);
	/* Detach first: answering an owner may close it, which walks queues. */
	s->queue = NULL;
	s->tail = &s->queue;
	s->queued = 0;
	s->inflight = false;
	while (q) {
		struct evict_req *next = q->next;

		if (q->owner)
			thpd_conn_error(q->owner, q->owner_seq, -ESRCH,
					"the session of pid %d ended before the eviction finished",
					(int)s->pid);
		free(q);
		q = next;
	}
	if (s->map)
		munmap(s->map, s->map_len);
	s->map = NULL;
	if (s->arena_fd >= 0)
		close(s->arena_fd);
	s->arena_fd = -1;
	free(s->last_attempt);
	s->last_attempt = NULL;
	if (s->pid_poll_init) {
		uv_close((uv_handle_t *)&s->pid_poll, on_session_closed);
	} else {
		if (s->pidfd >= 0)
			close(s->pidfd);
		free(s);
	}
}

static void on_client_exit(uv_poll_t *h, int status, int events)
{
	struct thpd_session *s = h->data;

	uv_poll_stop(h);
	thpd_conn_close(s->conn, status < 0 ? uv_strerror(status) : "client exited");
}

/* The fd must be a userfaultfd before we ioctl it: a client could pass
 * anything, and ioctl numbers mean different things to different files. */
static int check_uffd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -errno;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[userfaultfd]") ? -EBADF : 0;
}

static int uffd_api(struct thpd_session *s, int uffd, uint64_t want)
{
	uint64_t offered = 0;
	int r;

	r = thp_uffd_api(uffd, want | UFFD_FEATURE_EVENT_FORK, &offered);
	if (r == -EPERM) {
		/* Only EVENT_FORK is privileged (CAP_SYS_PTRACE of the caller);
		 * a failed API may be retried on the same fd. */
		if (!s->d->warned_fork)
			thpd_warn("no CAP_SYS_PTRACE: clients get no UFFD_EVENT_FORK, so a forked "
				  "child's evicted regions read as zeros (run thpswapd as root)");
		s->d->warned_fork = true;
		want &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
		r = thp_uffd_api(uffd, want, &offered);
	} else {
		want |= UFFD_FEATURE_EVENT_FORK;
	}
	if (r < 0)
		return r;
	if (want & UFFD_FEATURE_WP_ASYNC)
		want |= UFFD_FEATURE_WP_UNPOPULATED;
	/* The kernel answers with what it offers; it enabled what we asked. */
	s->features = want & offered;
	return 0;
}

/*
 * The file tier's file for a new session: an O_TMPFILE in --file-dir (gone
 * with its last descriptor, so a crash leaves nothing behind), O_DIRECT
 * where the file system takes it.  The client gets the descriptor and
 * writes and reads it itself; the daemon keeps none.  -1 when the tier is
 * off or the file cannot be made (said, and the session goes on without).
 */
static int tier_file_open(const struct thpd_session *s)
{
	const struct thpd_config *cfg = &s->d->cfg;
	int fd;

	if (!(cfg->tiers & THP_TIER_FILE))
		return -1;
	fd = thp_tmpfile_open(cfg->file_dir);
	if (fd < 0) {
		thpd_warn("pid %d: no file tier for this session: cannot make a file in %s: %s",
			  (int)s->pid, cfg->file_dir, strerror(-fd));
		return -1;
	}
	return fd;
}

static int arena_create(struct thpd_session *s, uint32_t nrec, bool file_tier)
{
	const struct thpd_config *cfg = &s->d->cfg;
	struct thp_arena_header h;
	char name[64];
	int fd, r;

	memset(&h, 0, sizeof(h));
	thp_arena_layout(&h, nrec);
	if (h.records_off < sizeof(h) ||
	    h.data_off < h.records_off + (uint64_t)nrec * sizeof(struct thp_record) ||
	    h.size < h.data_off + (uint64_t)nrec * THP_REGION_BYTES)
		return -EINVAL;
	h.magic = THP_ARENA_MAGIC;
	h.version = THP_ARENA_VERSION;
	h.client_pid = s->pid;
	h.cfg = (struct thp_arena_config){
		.zstd_level = cfg->zstd_level,
		.codec = cfg->codec,
		.frames = cfg->frames,
		.incompressible = cfg->incompressible,
		.max_stored_pct = cfg->max_stored_pct,
		.pool_slots = cfg->pool_slots,
		.tiers = (file_tier ? THP_TIER_FILE : 0) | (cfg->tiers & THP_TIER_KERNEL),
		.file_max_mb = cfg->file_max_mb,
		.file_age_ms = cfg->file_age_ms,
		.file_ram_mb = cfg->file_ram_mb,
	};
	/* Once per look of the pressure loop. */
	h.track_ms = cfg->write_tracking ? cfg->pressure_interval_ms : 0;

	snprintf(name, sizeof(name), "thpswap-arena:%d", (int)s->pid);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)h.size) < 0)
		goto fail;
	/* The daemon reads only the header and records. */
	s->map_len = h.data_off;
	s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		goto fail;
	}
	memcpy(s->map, &h, sizeof(h));
	if (fcntl(fd, F_ADD_SEALS, THP_ARENA_SEALS) < 0 ||
	    mprotect(s->map, s->map_len, PROT_READ) < 0)
		goto fail;
	s->arena_fd = fd;
	s->arena_size = h.size;
	s->hdr = s->map;
	s->rec = (const struct thp_record *)((const char *)s->map + h.records_off);
	s->records_off = h.records_off;
	s->nrec = nrec;
	return 0;
fail:
	r = -errno;
	if (s->map)
		munmap(s->map, s->map_len);
	s->map = NULL;
	close(fd);
	return r;
}

/* A session of the same pid whose client exited or hung up, not yet noticed. */
static bool session_stale(const struct thpd_session *s)
{
	struct pollfd p[2] = {
		{ .fd = s->pidfd, .events = POLLIN },
		{ .fd = s->conn->fd, .events = POLLRDHUP },
	};

	if (poll(p, 2, 0) <= 0)
		return false;
	return (p[0].revents & POLLIN) || (p[1].revents & (POLLHUP | POLLRDHUP));
}

/* A second session for the peer's pid is refused (ERROR sent: true),
 * unless the one it had is gone and only not noticed yet. */
static bool refuse_second(struct thpd_conn *c, uint32_t seq)
{
	struct thpd_session *old = thpd_session_find(c->d, c->pid);

	if (old && session_stale(old)) {
		thpd_conn_close(old->conn, "replaced");
		old = NULL;
	}
	if (old)
		thpd_conn_error(c, seq, -EBUSY, "pid %d already has a thpswap session",
				(int)c->pid);
	return old != NULL;
}

/* A session of @c's peer, not live yet; NULL (ERROR sent) without memory. */
static struct thpd_session *session_new(struct thpd_conn *c, uint32_t seq, const char *comm,
					uint32_t nrec)
{
	struct thpd_session *s = calloc(1, sizeof(*s));

	if (s)
		s->last_attempt = calloc(nrec, sizeof(*s->last_attempt));
	if (!s || !s->last_attempt) {
		free(s);
		thpd_conn_error(c, seq, -ENOMEM, "thpswapd is out of memory");
		return NULL;
	}
	s->d = c->d;
	s->conn = c;
	s->pid = c->pid;
	s->uid = c->uid;
	s->pidfd = -1;
	s->arena_fd = -1;
	s->tail = &s->queue;
	s->pid_poll.data = s;
	for (size_t i = 0; i < sizeof(s->comm) - 1 && comm[i]; i++)
		s->comm[i] = comm[i] >= 0x20 && comm[i] < 0x7f ? comm[i] : '?';
	return s;
}

static int open_pidfd(struct thpd_session *s, uint32_t seq)
{
	s->pidfd = pidfd_open(s->pid, 0);
	if (s->pidfd < 0) {
		int r = -errno;

		thpd_conn_error(s->conn, seq, r, "cannot watch pid %d: %s", (int)s->pid,
				strerror(-r));
		return r;
	}
	return 0;
}

/* Watch the client's exit and make @s the session of its connection.
 * 0, or -EIO with ERROR sent (the caller frees @s). */
static int go_live(struct thpd_session *s, uint32_t seq)
{
	struct thpd *d = s->d;
	struct thpd_conn *c = s->conn;
	int r;

	r = uv_poll_init(&d->loop, &s->pid_poll, s->pidfd);
	if (r == 0) {
		s->pid_poll_init = true;
		r = uv_poll_start(&s->pid_poll, UV_READABLE, on_client_exit);
	}
	if (r < 0) {
		thpd_conn_error(c, seq, -EIO, "cannot watch pid %d: %s", (int)s->pid,
				uv_strerror(r));
		return -EIO;
	}
	s->id = d->next_session_id++;
	session_link(s);
	c->role = THP_ROLE_CLIENT;
	c->s = s;
	d->nclients++;
	thpd_notify_status(d);
	return 0;
}

void thpd_session_start(struct thpd_conn *c, uint32_t seq,
			const struct thp_msg_hello *hello, int uffd)
{
	struct thpd *d = c->d;
	struct thpd_session *s;
	struct thp_msg_welcome w;
	uint32_t nrec;
	int r, fds[2] = { -1, -1 };

	if (refuse_second(c, seq)) {
		close(uffd);
		return;
	}
	if (hello->max_regions == 0) {
		close(uffd);
		thpd_conn_error(c, seq, -EINVAL, "HELLO asks for an arena of 0 regions");
		return;
	}
	r = check_uffd(uffd);
	if (r < 0) {
		close(uffd);
		thpd_conn_error(c, seq, -EBADF, "the file descriptor in HELLO is not a userfaultfd");
		return;
	}

	nrec = hello->max_regions < d->cfg.max_regions ? hello->max_regions : d->cfg.max_regions;
	/* Backed lazily: untouched entries cost no memory. */
	s = session_new(c, seq, hello->comm, nrec);
	if (!s) {
		close(uffd);
		return;
	}
	fds[1] = tier_file_open(s);
	r = arena_create(s, nrec, fds[1] >= 0);
	if (r < 0) {
		thpd_conn_error(c, seq, r, "cannot create an arena of %u regions: %s", nrec,
				strerror(-r));
		goto fail;
	}
	if (open_pidfd(s, seq) < 0)
		goto fail;
	/* Last, so that a failure above leaves the uffd untouched for a retry. */
	r = uffd_api(s, uffd, hello->want_features);
	if (r < 0) {
		thpd_conn_error(c, seq, r == -EINVAL ? -ENOTSUP : r,
				"UFFDIO_API with features 0x%llx failed: %s (already initialised, "
				"or this kernel lacks some of them)",
				(unsigned long long)hello->want_features, strerror(-r));
		goto fail;
	}
	close(uffd);
	uffd = -1;
	if (go_live(s, seq) < 0)
		goto fail;
	thpd_info(d, "pid %d (%s, uid %u): session %llu, %u regions, uffd features 0x%llx",
		  (int)s->pid, s->comm, (unsigned)s->uid, (unsigned long long)s->id, nrec,
		  (unsigned long long)s->features);

	w = (struct thp_msg_welcome){
		.session_id = s->id,
		.uffd_features = s->features,
		.arena_size = s->arena_size,
		.daemon_pid = (uint32_t)getpid(),
	};
	/* On failure the connection closes and takes the session with it.
	 * The tier file, if any, is the client's from here. */
	fds[0] = s->arena_fd;
	thpd_conn_send(c, THP_MSG_WELCOME, seq, &w, sizeof(w), fds, fds[1] >= 0 ? 2 : 1);
	if (fds[1] >= 0)
		close(fds[1]);
	return;
fail:
	if (uffd >= 0)
		close(uffd);
	if (fds[1] >= 0)
		close(fds[1]);
	thpd_session_free(s);
}

/*
 * Map the arena a client handed over, whose header *@h was read and checked
 * (thp_arena_check_fd): our geometry is that copy's, never what the client
 * may write into the header later.  Takes @fd.
 */
static int arena_adopt(struct thpd_session *s, int fd, const struct thp_arena_header *h)
{
	s->arena_fd = fd;
	s->map_len = h->data_off;
	s->map = mmap(NULL, s->map_len, PROT_READ, MAP_SHARED, fd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		return -errno;
	}
	s->arena_size = h->size;
	s->hdr = s->map;
	s->rec = (const struct thp_record *)((const char *)s->map + h->records_off);
	s->records_off = h->records_off;
	s->nrec = h->max_regions;
	return 0;
}

/* Refuse a RESUME: ERROR @err to the client, and a line in the log (the
 * client keeps serving itself, unmanaged, and an operator should know). */
static void refuse_resume(struct thpd_conn *c, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse_resume(struct thpd_conn *c, uint32_t seq, int err, const char *fmt, ...)
{
	char why[sizeof(((struct thp_msg_error *)0)->text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	thpd_warn("pid %d (uid %u): not adopting its session: %s", (int)c->pid, (unsigned)c->uid,
		  why);
	thpd_conn_error(c, seq, err, "%s", why);
}

void thpd_session_resume(struct thpd_conn *c, uint32_t seq, const struct thp_msg_resume *rs,
			 int arena_fd)
{
	struct thpd *d = c->d;
	struct thp_arena_header h;
	struct thpd_session *s;
	struct thp_msg_welcome w;
	char why[160];
	int r;

	if (refuse_second(c, seq)) {
		close(arena_fd);
		return;
	}
	if (rs->flags) {
		close(arena_fd);
		refuse_resume(c, seq, -EINVAL, "RESUME with flags 0x%x this thpswapd does not know",
			      rs->flags);
		return;
	}
	r = thp_arena_check_fd(arena_fd, &h, why, sizeof(why));
	if (r < 0) {
		close(arena_fd);
		refuse_resume(c, seq, r, "the file descriptor in RESUME is no arena: %s", why);
		return;
	}
	if (h.client_pid != c->pid) {
		close(arena_fd);
		refuse_resume(c, seq, -EPERM, "the arena in RESUME was made for pid %d, not for "
			      "pid %d", (int)h.client_pid, (int)c->pid);
		return;
	}
	if (h.max_regions != rs->max_regions || h.size != rs->arena_size) {
		close(arena_fd);
		refuse_resume(c, seq, -EBADMSG, "RESUME says %u regions in %llu bytes, its arena "
			      "holds %u in %llu", rs->max_regions,
			      (unsigned long long)rs->arena_size, h.max_regions,
			      (unsigned long long)h.size);
		return;
	}
	/* The same bound as a new session's: no peer gets more by resuming. */
	if (h.max_regions > d->cfg.max_regions) {
		close(arena_fd);
		refuse_resume(c, seq, -E2BIG, "the arena in RESUME holds %u regions, more than "
			      "max-regions (%u) allows", h.max_regions, d->cfg.max_regions);
		return;
	}
	s = session_new(c, seq, rs->comm, h.max_regions);
	if (!s) {
		close(arena_fd);
		return;
	}
	s->features = rs->uffd_features;
	r = arena_adopt(s, arena_fd, &h);
	if (r < 0) {
		thpd_conn_error(c, seq, r, "cannot map the arena in RESUME: %s", strerror(-r));
		goto fail;
	}
	if (open_pidfd(s, seq) < 0 || go_live(s, seq) < 0)
		goto fail;
	/* One line per adopted client, with or without -v: a restart that
	 * left someone out shows in the log. */
	thpd_warn("pid %d (%s, uid %u): adopted as session %llu (it was session %llu of the "
		  "daemon before): %llu regions, %llu resident, %llu evicted, %llu restores so far",
		  (int)s->pid, s->comm, (unsigned)s->uid, (unsigned long long)s->id,
		  (unsigned long long)rs->session_id,
		  (unsigned long long)thpd_session_ctr(s, THP_C_REGIONS),
		  (unsigned long long)thpd_session_ctr(s, THP_C_RESIDENT),
		  (unsigned long long)(thpd_session_ctr(s, THP_C_EVICTED_ZERO) +
				       thpd_session_ctr(s, THP_C_EVICTED_RAM)),
		  (unsigned long long)thpd_session_ctr(s, THP_C_RESTORES));
	w = (struct thp_msg_welcome){
		.session_id = s->id,
		.uffd_features = s->features,
		.arena_size = s->arena_size,
		.daemon_pid = (uint32_t)getpid(),
	};
	thpd_conn_send(c, THP_MSG_WELCOME, seq, &w, sizeof(w), NULL, 0);
	return;
fail:
	thpd_session_free(s);
}
