/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for thpswapd's message handling: the daemon's own code
 * (daemon/, its main() renamed), in this process, with its real
 * listening socket, event loop, sessions, arenas and pidfds.  Only the
 * peers are the harness: up to four connections that send what the input
 * says, with a real userfaultfd where a client's HELLO carries one, and that
 * read every reply.  Each input starts a fresh daemon and stops it again.
 *
 * Input: a sequence of operations, each an op byte then its operand:
 *   op & 7   0 connect peer k (k = op >> 3 & 3)
 *            1 send a datagram on k: u16 length, then the bytes
 *            2 the same with a new userfaultfd attached (a client's HELLO)
 *            3 the same with (op >> 5) + 1 copies of a memfd attached
 *            4 hang up peer k
 *            5 write into the client's arena (header and records, as the
 *              client's agent would): u16 offset, u16 length, the bytes
 *            6 answer the last EVICT peer k got: EVICT_DONE with its seq,
 *              u16 length then the payload (shorter is zero-padded)
 *            7 the daemon's timers: the sweep, u16 seconds in the future
 *              (deadlines), and a policy tick (a budget of 2 MiB)
 *   op 1..3 with bit 5 set (and op 1 only): the payload's first 4 bytes
 *   become this process's pid (REGIONS, EVICT_REQ and STATS name a client
 *   by pid, and every session here is this process's).
 *
 * Checked after every input: every message the daemon sent parses; the
 * daemon, stopped, leaves no fd open, no libuv handle and (LeakSanitizer)
 * no memory behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "arena.h"
#include "fuzz-util.h"
#include "proto.h"
#include "thpswapd.h"

#define NPEERS 4

struct peer {
	int fd;
	bool evict_pending;
	uint32_t evict_seq;
};

struct fuzz_run {
	struct thpd *d;
	struct peer p[NPEERS];
	int arena_fd;
	void *arena;
	size_t arena_len;
};

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
/* The daemon's state, zeroed for each input up to its two 64 KiB message
 * buffers (always written before they are read): a fresh allocation of
 * those each time cost a third of the run. */
static struct thpd *daemon_state;
static uint64_t buf[THP_MSG_MAX / sizeof(uint64_t)];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char sock_dir[] = "/tmp/thpswap-fuzz-XXXXXX";

/* Each daemon unlinks its socket when it stops: the directory is empty. */
static void remove_dir(void)
{
	rmdir(sock_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uv_loop_t loop;

	FZ_CHECK(mkdtemp(sock_dir));
	atexit(remove_dir);
	daemon_state = calloc(1, sizeof(*daemon_state));
	FZ_CHECK(daemon_state);
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", sock_dir);
	/* As thpswapd's main() does. */
	signal(SIGPIPE, SIG_IGN);
	/* libuv's first loop opens a pipe it keeps for good (its signal
	 * lock): open it now, not inside the first input's fd count. */
	FZ_CHECK(uv_loop_init(&loop) == 0);
	FZ_CHECK(uv_loop_close(&loop) == 0);
	return 0;
}

/* The input, consumed from the front. */
struct input {
	const uint8_t *p;
	size_t left;
};

static bool take(struct input *in, void *out, size_t n)
{
	if (in->left < n)
		return false;
	memcpy(out, in->p, n);
	in->p += n;
	in->left -= n;
	return true;
}

static int make_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	/* Without the privilege a memfd goes instead: the daemon refuses it. */
	return fd >= 0 ? fd : memfd_create("not-a-uffd", MFD_CLOEXEC);
}

static void drop_arena(struct fuzz_run *f)
{
	if (f->arena)
		munmap(f->arena, f->arena_len);
	if (f->arena_fd >= 0)
		close(f->arena_fd);
	f->arena = NULL;
	f->arena_fd = -1;
}

/* A WELCOME with the arena: map its header and records as the client does. */
static void take_arena(struct fuzz_run *f, int fd)
{
	struct thp_arena_header h;

	drop_arena(f);
	f->arena_fd = fd;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return;
	FZ_CHECK(thp_arena_validate(&h, h.size) == 0);
	f->arena_len = h.data_off;
	f->arena = mmap(NULL, f->arena_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	FZ_CHECK(f->arena != MAP_FAILED);
}

/* Read everything the daemon sent peer @k; every message must parse. */
static void drain(struct fuzz_run *f, unsigned k)
{
	struct peer *p = &f->p[k];

	while (p->fd >= 0) {
		struct thp_msg m;
		unsigned nfds = 0;
		int fd = -1;
		long n = thp_msg_recv(p->fd, buf, sizeof(buf), &fd, 1, &nfds);

		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			/* The daemon hung up. */
			FZ_CHECK(n == 0 || n == -ECONNRESET);
			close(p->fd);
			p->fd = -1;
			return;
		}
		FZ_CHECK(thp_msg_parse(buf, (size_t)n, &m) == 0);
		if (m.hdr.type == THP_MSG_WELCOME && nfds) {
			take_arena(f, fd);
		} else {
			FZ_CHECK(nfds == 0);
		}
		if (m.hdr.type == THP_MSG_EVICT) {
			p->evict_pending = true;
			p->evict_seq = m.hdr.seq;
		}
	}
}

/* Let the daemon handle what is pending (accepts, then messages), then read
 * its answers. */
static void settle(struct fuzz_run *f)
{
	for (int i = 0; i < 3; i++)
		uv_run(&f->d->loop, UV_RUN_NOWAIT);
	for (unsigned k = 0; k < NPEERS; k++)
		drain(f, k);
}

static void peer_connect(struct fuzz_run *f, unsigned k)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (f->p[k].fd >= 0)
		return;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	f->p[k].fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	FZ_CHECK(f->p[k].fd >= 0);
	FZ_CHECK(connect(f->p[k].fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	f->p[k].evict_pending = false;
}

static void peer_send(struct fuzz_run *f, unsigned k, const void *msg, size_t len,
		      const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (f->p[k].fd < 0)
		return;
	if (nfds)
		thp_cmsg_put_fds(&mh, ctl.b, fds, nfds);
	/* A full queue or a closed daemon end: the peer's problem, not ours. */
	(void)sendmsg(f->p[k].fd, &mh, MSG_NOSIGNAL);
}

static void op_send(struct fuzz_run *f, struct input *in, uint8_t op)
{
	uint8_t msg[THP_MSG_MAX];
	unsigned k = op >> 3 & 3;
	int fds[8];
	unsigned nfds = 0;
	uint16_t len;

	if (!take(in, &len, sizeof(len)) || len > in->left)
		return;
	take(in, msg, len);
	if ((op & 7) == 1 && (op & 32) && len >= sizeof(struct thp_msg_hdr) + 4) {
		int32_t pid = getpid();

		memcpy(msg + sizeof(struct thp_msg_hdr), &pid, sizeof(pid));
	}
	if ((op & 7) == 2) {
		fds[nfds++] = make_uffd();
	} else if ((op & 7) == 3) {
		int fd = memfd_create("fuzz", MFD_CLOEXEC);

		for (unsigned i = 0; i <= (unsigned)op >> 5; i++)
			fds[nfds++] = fd;
	}
	for (unsigned i = 0; i < nfds; i++)
		FZ_CHECK(fds[i] >= 0);
	peer_send(f, k, msg, len, fds, nfds);
	/* The daemon has its own references now (or never got them). */
	if (nfds)
		close(fds[0]);
}

static void op_arena(struct fuzz_run *f, struct input *in)
{
	uint8_t bytes[4096];
	uint16_t off, len;

	if (!take(in, &off, sizeof(off)) || !take(in, &len, sizeof(len)) || len > sizeof(bytes) ||
	    !take(in, bytes, len) || !f->arena)
		return;
	if (off >= f->arena_len)
		return;
	if (len > f->arena_len - off)
		len = (uint16_t)(f->arena_len - off);
	memcpy((char *)f->arena + off, bytes, len);
}

static void op_evict_done(struct fuzz_run *f, struct input *in, unsigned k)
{
	struct thp_msg_evict_done done = { 0 };
	uint16_t len;

	if (!take(in, &len, sizeof(len)) || len > in->left)
		return;
	memcpy(&done, in->p, len < sizeof(done) ? len : sizeof(done));
	in->p += len;
	in->left -= len;
	if (f->p[k].fd < 0 || !f->p[k].evict_pending)
		return;
	f->p[k].evict_pending = false;
	thp_msg_send(f->p[k].fd, THP_MSG_EVICT_DONE, f->p[k].evict_seq, &done, sizeof(done),
		     NULL, 0);
}

static void start(struct fuzz_run *f)
{
	char *argv[] = { "thpswapd", "--config", "/dev/null", "--socket", sock_path,
			 "--max-regions", "64", "--budget", "2", "--verbose", NULL };

	*f = (struct fuzz_run){ .arena_fd = -1 };
	for (unsigned k = 0; k < NPEERS; k++)
		f->p[k].fd = -1;
	f->d = daemon_state;
	memset(f->d, 0, offsetof(struct thpd, rbuf));
	f->d->listen_fd = -1;
	FZ_CHECK(thpd_config_load(&f->d->cfg, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) ==
		 THPD_EXIT_RUN);
	FZ_CHECK(uv_loop_init(&f->d->loop) == 0);
	FZ_CHECK(thpd_server_open(f->d) == 0);
	f->d->start_ns = thp_now_ns();
	f->d->next_session_id = 1;
	FZ_CHECK(thpd_server_start(f->d) == 0);
}

static void stop(struct fuzz_run *f)
{
	for (unsigned k = 0; k < NPEERS; k++)
		if (f->p[k].fd >= 0)
			close(f->p[k].fd);
	drop_arena(f);
	/* Hang-ups first, as the daemon would see them, then the stop. */
	for (int i = 0; i < 3; i++)
		uv_run(&f->d->loop, UV_RUN_NOWAIT);
	thpd_server_stop(f->d);
	uv_run(&f->d->loop, UV_RUN_DEFAULT);
	FZ_CHECK(uv_loop_close(&f->d->loop) == 0);
	thpd_policy_free(f->d); /* what the pressure loop kept per client, as main() does */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { .p = data, .left = size };
	struct fuzz_run f;
	int fds_before = fz_count_fds();
	uint8_t op;

	start(&f);
	while (take(&in, &op, 1)) {
		unsigned k = op >> 3 & 3;
		uint16_t secs;

		switch (op & 7) {
		case 0:
			peer_connect(&f, k);
			break;
		case 1:
		case 2:
		case 3:
			op_send(&f, &in, op);
			break;
		case 4:
			if (f.p[k].fd >= 0)
				close(f.p[k].fd);
			f.p[k].fd = -1;
			break;
		case 5:
			op_arena(&f, &in);
			break;
		case 6:
			op_evict_done(&f, &in, k);
			break;
		case 7:
			if (take(&in, &secs, sizeof(secs))) {
				thpd_server_sweep(f.d, thp_now_ns() + secs * 1000000000ull);
				thpd_policy_tick(f.d);
			}
			break;
		}
		settle(&f);
	}
	stop(&f);
	FZ_CHECK_FDS(fds_before);
	return 0;
}
