/* SPDX-License-Identifier: MIT */
/* Opening a session: uffds, the daemon handshake, the arena, the agent. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "kernel-abi.h"
#include "pagemap.h"
#include "procmap.h"
#include "proto.h"
#include "samples.h"
#include "uffd.h"

#define DEFAULT_MAX_REGIONS 32768 /* 64 GiB of managed memory */

/* What the agent cannot work without, on the region uffd. */
#define NEED_FEATURES (UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | \
		       UFFD_FEATURE_EVENT_REMAP)

unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (!v || !*v)
		return dflt;
	n = strtoul(v, &end, 10);
	return (*end || n < lo || n > hi) ? dflt : (unsigned)n;
}

/* How long each step of the handshake may wait for the daemon: to be
 * accepted (a full backlog blocks connect), to take the HELLO, to answer. */
#define DEFAULT_OPEN_TIMEOUT_MS 10000
/* A client without a restore or an eviction for this long gives its pool back. */
#define DEFAULT_POOL_IDLE_MS 5000

/* Bound the socket's blocking calls by @ms (0: no bound). */
static int set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* Each step of a reconnect's handshake waits at most this long: the
 * background thread runs it, and a thpswap_close waits for that thread. */
#define RECONNECT_STEP_MS 1000

static unsigned open_timeout_ms(void)
{
	return env_uint("THPSWAP_OPEN_TIMEOUT_MS", DEFAULT_OPEN_TIMEOUT_MS, 0, 3600000);
}

/* Connect to the daemon at @path, each blocking call bounded by @ms. */
static int connect_daemon(const char *path, unsigned ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix connect honours SO_SNDTIMEO, and says EAGAIN when it ran out. */
	r = set_timeouts(fd, ms);
	if (r == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* HELLO with the region uffd; WELCOME with the arena memfd, and the file
 * tier's file when the daemon's settings have one. */
static int handshake(struct thpswap_session *s, uint32_t max_regions)
{
	struct thp_msg_hello h = {
		.role = THP_ROLE_CLIENT,
		.max_regions = max_regions,
		.want_features = NEED_FEATURES | UFFD_FEATURE_MOVE,
	};
	char buf[THP_MSG_MAX];
	struct thp_msg m;
	const struct thp_msg_welcome *w;
	int fds[2], r;
	unsigned nfds = 0;
	long n;

	memcpy(h.comm, s->comm, sizeof(h.comm));
	/* Both bounded by connect_daemon's timeouts: EAGAIN is running out. */
	r = thp_msg_send(s->sock, THP_MSG_HELLO, 1, &h, sizeof(h), &s->uffd, 1);
	if (r == -EAGAIN)
		return -ETIMEDOUT;
	/* A daemon that refused us at once (too many connections of our uid)
	 * has hung up, but its ERROR saying why is still there to read. */
	if (r && r != -EPIPE && r != -ECONNRESET)
		return r;
	n = thp_msg_recv(s->sock, buf, sizeof(buf), fds, 2, &nfds);
	/* The daemon closed with our HELLO unread: the kernel reports that
	 * reset first, once, and the ERROR it sent before is next. */
	if (n == -ECONNRESET)
		n = thp_msg_recv(s->sock, buf, sizeof(buf), fds, 2, &nfds);
	if (n <= 0)
		return n == 0 ? -ECONNRESET : n == -EAGAIN ? -ETIMEDOUT : (int)n;
	r = thp_msg_parse(buf, (size_t)n, &m);
	if (r == 0 && m.hdr.type == THP_MSG_ERROR)
		r = ((const struct thp_msg_error *)m.payload)->err;
	else if (r == 0 && (m.hdr.type != THP_MSG_WELCOME || nfds < 1))
		r = -EPROTO;
	if (!r)
		r = open_fail_point(s); /* with the arena fd received */
	if (r) {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		/* Another protocol version, whoever noticed it. */
		return (r == -EPROTONOSUPPORT || r > 0) ? -EPROTO : r;
	}
	w = m.payload;
	/* The agent reads the socket non-blocking from now on. */
	set_timeouts(s->sock, 0);
	s->arena_fd = fds[0];
	s->tier_fd = nfds > 1 ? fds[1] : -1;
	s->features = w->uffd_features;
	s->arena_size = w->arena_size;
	s->session_id = w->session_id;
	return 0;
}

/*
 * RESUME on @fd with the arena; the daemon's WELCOME (no fd) or ERROR.
 * 0 with *@id the session's new id, or -errno; *@refused says the daemon
 * answered ERROR (the errno is its).
 */
static int resume(struct thpswap_session *s, int fd, uint64_t *id, bool *refused)
{
	struct thp_msg_resume rs = {
		.max_regions = s->hdr->max_regions,
		.uffd_features = s->features,
		.arena_size = s->arena_size,
	};
	char buf[THP_MSG_MAX];
	struct thp_msg m;
	int fds[1], r;
	unsigned nfds = 0;
	long n;

	memcpy(rs.comm, s->comm, sizeof(rs.comm));
	pthread_mutex_lock(&s->send_lock);
	rs.session_id = s->session_id;
	pthread_mutex_unlock(&s->send_lock);
	r = thp_msg_send(fd, THP_MSG_RESUME, 1, &rs, sizeof(rs), &s->arena_fd, 1);
	if (r == -EAGAIN)
		return -ETIMEDOUT;
	/* Refused at once (see handshake): the ERROR is still there to read. */
	if (r && r != -EPIPE && r != -ECONNRESET)
		return r;
	n = thp_msg_recv(fd, buf, sizeof(buf), fds, 1, &nfds);
	if (n == -ECONNRESET)
		n = thp_msg_recv(fd, buf, sizeof(buf), fds, 1, &nfds);
	if (nfds)
		close(fds[0]); /* WELCOME to a RESUME carries none */
	if (n <= 0)
		return n == 0 ? -ECONNRESET : n == -EAGAIN ? -ETIMEDOUT : (int)n;
	r = thp_msg_parse(buf, (size_t)n, &m);
	/* A daemon of another protocol version refuses as well. */
	*refused = r == -EPROTONOSUPPORT || (r == 0 && m.hdr.type == THP_MSG_ERROR);
	if (r == 0 && m.hdr.type == THP_MSG_ERROR)
		return ((const struct thp_msg_error *)m.payload)->err;
	if (r == 0 && m.hdr.type != THP_MSG_WELCOME)
		r = -EPROTO;
	if (r)
		return r;
	*id = ((const struct thp_msg_welcome *)m.payload)->session_id;
	return 0;
}

int session_reconnect(struct thpswap_session *s, bool *refused)
{
	unsigned ms = open_timeout_ms();
	uint64_t id = 0;
	uint64_t one = 1;
	int fd, r;

	*refused = false;
	if (!ms || ms > RECONNECT_STEP_MS)
		ms = RECONNECT_STEP_MS;
	fd = connect_daemon(s->sock_path, ms);
	if (fd < 0)
		return fd;
	r = resume(s, fd, &id, refused);
	if (!r)
		r = set_timeouts(fd, 0);
	if (!r && fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	if (r) {
		close(fd);
		return r;
	}
	/* The generation first: an EVICT read on the new socket is the new
	 * daemon's (the fault thread reads it only after it sees the fd). */
	pthread_mutex_lock(&s->send_lock);
	atomic_fetch_add(&s->conn_gen, 1);
	s->session_id = id;
	s->sock = fd;
	pthread_mutex_unlock(&s->send_lock);
	ctr_add(s, THP_C_RECONNECTS, 1);
	/* The fault thread may be waiting without the socket in its poll. */
	if (write(s->evfd, &one, sizeof(one)) < 0) {
		/* eventfd cannot fail with a counter this small */
	}
	return 0;
}

static int map_arena(struct thpswap_session *s)
{
	struct stat st;

	if (fstat(s->arena_fd, &st) || (uint64_t)st.st_size != s->arena_size)
		return -EPROTO;
	s->arena = mmap(NULL, s->arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->arena_fd, 0);
	if (s->arena == MAP_FAILED) {
		s->arena = NULL;
		return -errno;
	}
	/* The agent must not fork it into children, nor hand it out. */
	madvise(s->arena, s->arena_size, MADV_DONTFORK);
	s->hdr = s->arena;
	if (thp_arena_validate(s->hdr, s->arena_size))
		return -EPROTO;
	s->rec = thp_arena_records(s->arena);
	return 0;
}

/* Free what thpswap_open made, as far as it got: each thing only if it was
 * made (NULL or -1 until then; workers[] entries without a codec are NULL).
 * The agent's threads are not ours: agent_start unwinds its own failure,
 * and thpswap_close stops the agent before this. */
static void session_free(struct thpswap_session *s)
{
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		thp_codec_free(s->workers[i].codec);
		own_free(s, s->workers[i].buf);
	}
	own_free(s, s->workers);
	thp_codec_free(s->fault_codec);
	thp_codec_free(s->app_codec);
	own_free(s, s->fault_buf);
	own_free(s, s->app_buf);
	samples_fini(s);
	scratch_fini(s);
	rt_fini(s, &s->rt);
	rec_tables_fini(s);
	ftier_close(s);
	evict_forget_own(s);
	if (s->arena)
		munmap(s->arena, s->arena_size);
	/* Last: closing the region uffd makes evicted memory read as zeros;
	 * by now nothing is evicted or nothing is registered any more. */
	int fds[] = { s->sock, s->uffd, s->suffd, s->pagemap, s->procmap, s->arena_fd, s->tier_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	own_session_free(s);
}

/*
 * Forks of this process since the library was loaded, counted in the child
 * by a pthread_atfork handler: a session opened before the last fork is
 * the parent's.  The pid tells too, except where a child can have its
 * parent's number (a new pid namespace); a raw clone runs no handler.  A
 * count of events in this process, not state a test would reset.
 */
static atomic_ulong forks;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * The sessions open in this process, for the fork handlers: fork() returns
 * in the parent only once each session's agent has filled the child (see
 * on_fork), since a child whose parent exits at once (daemon(3)) would read
 * zeros wherever its copy was still empty: its uffd lives in the parent's
 * fd table and goes with it.  The lock is held from before the fork to
 * after it on both sides, so that a child never inherits it taken by a
 * thread that is not there.
 */
static struct {
	pthread_mutex_t lock;
	struct thpswap_session *head;
} live = { PTHREAD_MUTEX_INITIALIZER, NULL };

static void fork_prepare(void)
{
	pthread_mutex_lock(&live.lock);
}

static void fork_parent(void)
{
	for (struct thpswap_session *s = live.head; s; s = s->live_next)
		if (s->fault_thread_started)
			agent_wait_forks(s);
	pthread_mutex_unlock(&live.lock);
}

static void fork_child(void)
{
	atomic_fetch_add(&forks, 1);
	/* The sessions listed are the parent's (session_forked). */
	live.head = NULL;
	pthread_mutex_unlock(&live.lock);
}

static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void live_add(struct thpswap_session *s)
{
	pthread_mutex_lock(&live.lock);
	s->live_next = live.head;
	live.head = s;
	pthread_mutex_unlock(&live.lock);
}

static void live_remove(struct thpswap_session *s)
{
	pthread_mutex_lock(&live.lock);
	for (struct thpswap_session **p = &live.head; *p; p = &(*p)->live_next)
		if (*p == s) {
			*p = s->live_next;
			break;
		}
	pthread_mutex_unlock(&live.lock);
}

bool session_forked(const struct thpswap_session *s)
{
	return s->fork_gen != atomic_load(&forks) || s->pid != getpid();
}

#ifndef NDEBUG
/* Debug builds only, for tests/integration/test_open_fail.c: with
 * THPSWAP_FAIL_AT=N the Nth call during thpswap_open fails with
 * -THPSWAP_FAIL_ERRNO (default ENOMEM).  Every fallible step of the open
 * calls it first, so a test can take each unwinding path in turn. */
int open_fail_point(struct thpswap_session *s)
{
	if (s->fail_at && ++s->open_step == s->fail_at)
		return -s->fail_err;
	return 0;
}
#endif

/* On failure *c and *buf hold what was made, for session_free. */
static int make_codec(struct thpswap_session *s, struct thp_codec **c, char **buf)
{
	int r = open_fail_point(s);

	struct thp_alloc mem = own_codec_alloc(s);

	if (!r)
		r = thp_codec_new(c, s->hdr->cfg.codec ? s->hdr->cfg.codec : THP_CODEC_ZSTD,
				  s->hdr->cfg.zstd_level, &mem);
	if (!r)
		r = open_fail_point(s);
	if (r)
		return r;
	*buf = own_alloc(s, THP_SLOT_SIZE);
	return *buf ? 0 : -ENOMEM;
}

/* THPSWAP_DISABLE: the process opted out of thpswap altogether. */
static bool opted_out(void)
{
	const char *v = getenv("THPSWAP_DISABLE");

	return v && (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

_public_ int thpswap_open(struct thpswap_session **ret, const char *socket_path)
{
	struct thpswap_session *s;
	uint32_t max_regions = env_uint("THPSWAP_MAX_REGIONS", DEFAULT_MAX_REGIONS, 1, 1u << 20);
	unsigned nworkers;
	long ncpu;
	int r;

	if (!ret)
		return -EINVAL;
	if (opted_out())
		return -ECANCELED;
	pthread_once(&atfork_once, atfork_register);
	if (!socket_path)
		socket_path = getenv("THPSWAP_SOCKET");
	if (!socket_path || !*socket_path)
		socket_path = THPSWAP_DEFAULT_SOCKET;
	/* Everything the agent's threads touch is its own (own.c), the
	 * session first. */
	s = own_session_new();
	if (!s)
		return -ENOMEM;
	s->sock = s->uffd = s->suffd = s->pagemap = s->procmap = s->evfd = s->arena_fd = -1;
	s->tier_fd = -1;
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	/* The background thread's reconnect deadlines are CLOCK_MONOTONIC. */
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wcond, &ca);
	pthread_mutex_init(&s->app_codec_lock, NULL);
	pthread_mutex_init(&s->zap_lock, NULL);
	pthread_mutex_init(&s->fork_lock, NULL);
	pthread_cond_init(&s->fork_cond, &ca);
	pthread_condattr_destroy(&ca);
#ifndef NDEBUG
	s->fail_at = env_uint("THPSWAP_FAIL_AT", 0, 1, 1u << 20);
	s->fail_err = (int)env_uint("THPSWAP_FAIL_ERRNO", ENOMEM, 1, 4095);
#endif

	/* Every step: the failure injection point, then the step itself. */
	if ((r = open_fail_point(s)) || (r = evict_note_own(s)))
		goto fail;
	r = -ENAMETOOLONG;
	if (strlen(socket_path) >= sizeof(s->sock_path))
		goto fail;
	strcpy(s->sock_path, socket_path);
	prctl(PR_GET_NAME, s->comm);
	s->reconnect.rng = now_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
	if ((r = open_fail_point(s)) || (r = connect_daemon(socket_path, open_timeout_ms())) < 0)
		goto fail;
	s->sock = r;
	if ((r = open_fail_point(s)) || (r = s->uffd = thp_uffd_create()) < 0)
		goto fail;
	if ((r = open_fail_point(s)) || (r = s->suffd = thp_uffd_create()) < 0)
		goto fail;
	if ((r = open_fail_point(s)) || (r = s->pagemap = thp_pagemap_open(0)) < 0)
		goto fail;
	/* Optional: without it (or PROCMAP_QUERY) grown tails stay unmanaged. */
	s->procmap = thp_procmap_open();
	if ((r = open_fail_point(s)) || (r = handshake(s, max_regions)))
		goto fail;
	s->reconnect.connected_ns = now_ns();
	r = -ENOTSUP;
	if ((s->features & NEED_FEATURES) != NEED_FEATURES)
		goto fail;
	if ((r = open_fail_point(s)) || (r = map_arena(s)))
		goto fail;
	/* The scratch uffd: no events, so zapping staging raises nothing. */
	if ((r = open_fail_point(s)) ||
	    (thp_uffd_api(s->suffd, UFFD_FEATURE_MOVE, NULL) &&
	     (r = thp_uffd_api(s->suffd, 0, NULL))))
		goto fail;
	if ((r = open_fail_point(s)))
		goto fail;
	if (fcntl(s->sock, F_SETFL, O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	if ((r = open_fail_point(s)) || (r = rt_init(s, &s->rt, s->hdr->max_regions)))
		goto fail;
	if ((r = open_fail_point(s)))
		goto fail;
	if ((r = rec_tables_init(s, s->hdr->max_regions)))
		goto fail;
	/* Off unless asked for; never fails the session. */
	ftier_open(s);
	track_init(s, env_uint("THPSWAP_TRACK_MS", s->hdr->track_ms, 0, 3600000));
	/* One background thread, and a decompression helper per spare CPU. */
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	nworkers = 1 + env_uint("THPSWAP_HELPERS", ncpu > 1 ? (unsigned)(ncpu - 1 < 7 ? ncpu - 1 : 7) : 0, 0, 63);
	if ((r = open_fail_point(s)) || (r = scratch_init(s, s->hdr->cfg.pool_slots, nworkers + 3,
							      env_uint("THPSWAP_POOL_IDLE_MS", DEFAULT_POOL_IDLE_MS,
								       0, 3600000) * 1000000ull)))
		goto fail;
	r = make_codec(s, &s->fault_codec, &s->fault_buf);
	if (!r)
		r = make_codec(s, &s->app_codec, &s->app_buf);
	if (r)
		goto fail;
	if ((r = open_fail_point(s)))
		goto fail;
	s->workers = own_alloc(s, nworkers * sizeof(*s->workers));
	if (!s->workers) {
		r = -ENOMEM;
		goto fail;
	}
	/* Only now: session_free frees the codecs of nworkers entries. */
	s->nworkers = nworkers;
	for (unsigned i = 0; i < s->nworkers; i++) {
		s->workers[i].s = s;
		s->workers[i].background = i == 0;
		r = make_codec(s, &s->workers[i].codec, &s->workers[i].buf);
		if (r)
			goto fail;
	}
	/* From here on a fork child's copy is not its own (session_forked). */
	s->pid = getpid();
	s->fork_gen = atomic_load(&forks);
	/* Starts all the agent's threads, or none (it unwinds its own). */
	r = agent_start(s);
	if (r)
		goto fail;
	live_add(s);
	*ret = s;
	return 0;
fail:
	session_free(s);
	return r;
}

_public_ int thpswap_close(struct thpswap_session *s)
{
	uint32_t max;
	int r = 0;

	if (!s)
		return -EINVAL;
	/* A fork child's copy: the parent owns all of it. */
	if (session_forked(s))
		return -ECHILD;
	/* Nothing new is registered from here on. */
	adopt_stop(s);
	/* Bring everything back while the agent still serves faults, then
	 * make it ordinary memory.  If a region cannot be brought back (its
	 * restore failed, or an access to it would fault: PROT_NONE), the
	 * session stays open with that region's bytes, and the error says
	 * why: closing the region uffd now would make it read zeros. */
	max = s->hdr->max_regions;
	for (uint32_t i = 0; i < max; i++) {
		struct thp_record *r0 = &s->rec[i];
		uint64_t addr;

		if (rec_state(r0) == THP_ST_FREE)
			continue;
		addr = rec_addr(r0);
		int q = thpswap_unregister(s, (void *)(uintptr_t)addr, REGION);

		if (q && !r)
			r = q;
	}
	if (r)
		return r;
	live_remove(s);
	agent_stop(s);
	session_free(s);
	return 0;
}
