/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the wire layer (src/proto.c), the receiving side:
 * thp_msg_recv on a real SOCK_SEQPACKET socketpair, with fds attached
 * (SCM_RIGHTS) and credentials (SO_PASSCRED) as a peer or a socket unit
 * would add them, then thp_msg_parse on what it returned.
 *
 * Input: two control bytes, then the datagram.
 *   byte 0  bit 0: through the socket (else parse the bytes directly)
 *           bits 1-5: fds to attach (0..31; the receiver has room for 16)
 *           bit 6: SO_PASSCRED on the receiver
 *           bit 7: a receive buffer half the datagram's size (truncation)
 *   byte 1  the receiver's maxfds (mod 18: 17 is beyond what it takes)
 *
 * Checked: the documented return values; every fd is either returned or
 * closed (none leaks); a message that parses has its length, type and
 * array count consistent and an ERROR's text terminated; and sent again
 * with thp_msg_send it arrives byte for byte the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "proto.h"

#define MAX_SEND_FDS 31

static int sv[2] = { -1, -1 };
static int devnull = -1;
/* Receivers parse from an aligned buffer (handlers cast the payload). */
static uint64_t rbuf[(THP_MSG_MAX + 4096) / sizeof(uint64_t)];
static uint64_t dbuf[(THP_MSG_MAX + 4096) / sizeof(uint64_t)];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int big = 1 << 20;

	FZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	/* Room for the largest datagram the fuzzer may make. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	FZ_CHECK(devnull >= 0);
	return 0;
}

/* Send @len bytes of @buf with @nfds copies of /dev/null.  0, or -errno
 * when the kernel will not take it (then nothing arrives). */
static int send_raw(const void *buf, size_t len, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(MAX_SEND_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[MAX_SEND_FDS];

	if (nfds) {
		for (unsigned i = 0; i < nfds; i++)
			fds[i] = devnull;
		thp_cmsg_put_fds(&mh, ctl.b, fds, nfds);
	}
	return sendmsg(sv[0], &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* What thp_msg_parse promises about a message it accepted. */
static void check_parsed(const void *buf, size_t len, const struct thp_msg *m)
{
	struct thp_msg_hdr h;

	FZ_CHECK(len >= sizeof(h));
	FZ_CHECK(m->hdr.magic == THP_PROTO_MAGIC && m->hdr.version == THP_PROTO_VERSION);
	FZ_CHECK(m->hdr.len == len && m->payload_len == len - sizeof(h));
	FZ_CHECK(m->hdr.type > 0 && m->hdr.type < THP_MSG__MAX);
	FZ_CHECK(m->payload == (const char *)buf + sizeof(h));
	FZ_CHECK(strcmp(thp_msg_type_name(m->hdr.type), "UNKNOWN") != 0);
	/* The header is exactly what thp_msg_init makes of type, seq and size. */
	thp_msg_init(&h, (enum thp_msg_type)m->hdr.type, m->hdr.seq, m->payload_len);
	FZ_CHECK(memcmp(&h, buf, sizeof(h)) == 0);
	switch (m->hdr.type) {
	case THP_MSG_ERROR: {
		const struct thp_msg_error *e = m->payload;

		FZ_CHECK(m->payload_len == sizeof(*e));
		FZ_CHECK(strnlen(e->text, sizeof(e->text)) < sizeof(e->text));
		break;
	}
	case THP_MSG_EVICT: {
		const struct thp_msg_evict *e = m->payload;

		FZ_CHECK(e->n <= THP_EVICT_MAX);
		FZ_CHECK(m->payload_len == sizeof(*e) + e->n * sizeof(e->addr[0]));
		break;
	}
	case THP_MSG_CLIENTS_REPLY: {
		const struct thp_msg_clients_reply *r = m->payload;

		FZ_CHECK(r->n <= THP_CLIENTS_MAX);
		FZ_CHECK(m->payload_len == sizeof(*r) + r->n * sizeof(r->c[0]));
		break;
	}
	case THP_MSG_REGIONS_REPLY: {
		const struct thp_msg_regions_reply *r = m->payload;

		FZ_CHECK(r->n <= THP_REGIONS_MAX);
		FZ_CHECK(m->payload_len == sizeof(*r) + r->n * sizeof(r->r[0]));
		break;
	}
	default:
		break;
	}
}

/* Send an accepted message again through thp_msg_send: the same bytes
 * arrive. */
static void check_resend(const void *buf, size_t len, const struct thp_msg *m)
{
	unsigned nfds = 0;
	long n;

	FZ_CHECK(thp_msg_send(sv[0], (enum thp_msg_type)m->hdr.type, m->hdr.seq, m->payload,
			      m->payload_len, NULL, 0) == 0);
	n = thp_msg_recv(sv[1], rbuf, sizeof(rbuf), NULL, 0, &nfds);
	FZ_CHECK(n == (long)len && nfds == 0);
	FZ_CHECK(memcmp(rbuf, buf, len) == 0);
}

static void parse_and_check(const void *buf, size_t len)
{
	struct thp_msg m;
	int r = thp_msg_parse(buf, len, &m);

	FZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTONOSUPPORT || r == -ENOMSG);
	if (r == 0) {
		check_parsed(buf, len, &m);
		check_resend(buf, len, &m);
	}
}

/* Through the socket: every fd sent is returned or closed, and what
 * arrives is the datagram sent. */
static void via_socket(const uint8_t *dgram, size_t len, unsigned nsend, bool passcred,
		       bool small_buf, unsigned maxfds)
{
	size_t bufsize = small_buf ? len / 2 : sizeof(rbuf);
	unsigned room = maxfds < 16 ? maxfds : 16; /* what thp_msg_recv takes at most */
	int fds[32], on = passcred, before, r;
	unsigned nfds = 12345;
	long n;

	FZ_CHECK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0);
	before = fz_count_fds();
	r = send_raw(dgram, len, nsend);
	if (r < 0) {
		FZ_CHECK(r == -EMSGSIZE || r == -ENOBUFS || r == -EAGAIN);
		return;
	}
	n = thp_msg_recv(sv[1], rbuf, bufsize, fds, maxfds, &nfds);
	FZ_CHECK(nfds <= room);
	if (n > 0) {
		FZ_CHECK((size_t)n == len && memcmp(rbuf, dgram, len) == 0);
		FZ_CHECK(!small_buf);
		FZ_CHECK(nsend <= room && nfds == nsend);
	} else {
		FZ_CHECK(nfds == 0);
		if (n == 0)
			FZ_CHECK(len == 0);
		else if (n == -EMSGSIZE)
			FZ_CHECK(len > bufsize);
		else
			FZ_CHECK(n == -EBADMSG && nsend > room);
	}
	for (unsigned i = 0; i < nfds; i++) {
		FZ_CHECK(fcntl(fds[i], F_GETFD) == FD_CLOEXEC);
		close(fds[i]);
	}
	FZ_CHECK_FDS(before);
	/* One datagram per call: nothing is left behind. */
	FZ_CHECK(recv(sv[1], rbuf, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
	if (n > 0)
		parse_and_check(rbuf, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;

	if (size < 2)
		return 0;
	len = size - 2;
	if (len > sizeof(dbuf))
		return 0;
	memcpy(dbuf, data + 2, len);
	(void)thp_limit_name(data[1]);
	(void)thp_msg_type_name(data[1]);
	if (data[0] & 1)
		via_socket((const uint8_t *)dbuf, len, (data[0] >> 1) & 31, data[0] & 64,
			   data[0] & 128, data[1] % 18);
	else
		parse_and_check(dbuf, len);
	return 0;
}
