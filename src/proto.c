/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's wire layer: framing, validation, fd passing.
 * Everything a peer sends is checked here against a per-type size table
 * before anyone casts the payload, so handlers only see well-formed messages.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"

/* fds a caller may take from one datagram; any beyond the caller's maximum
 * (or beyond what the control buffer holds: MSG_CTRUNC, the kernel dropped
 * the rest) are closed and reported as -EBADMSG. */
#define RECV_FDS_ROOM 16
#define SEND_FDS_MAX  8

/*
 * Payload sizes per type.  @fixed is the payload's fixed part; if @elem is
 * non-zero an array of @elem-sized entries follows, counted by the uint32_t
 * at @count_off and bounded by @max.
 */
struct msg_spec {
	const char *name;
	uint32_t fixed;
	uint32_t elem;
	uint32_t count_off;
	uint32_t max;
};

static const struct msg_spec msg_specs[THP_MSG__MAX] = {
	[THP_MSG_ERROR] = { "ERROR", sizeof(struct thp_msg_error), 0, 0, 0 },
	[THP_MSG_HELLO] = { "HELLO", sizeof(struct thp_msg_hello), 0, 0, 0 },
	[THP_MSG_WELCOME] = { "WELCOME", sizeof(struct thp_msg_welcome), 0, 0, 0 },
	[THP_MSG_EVICT] = { "EVICT", sizeof(struct thp_msg_evict), sizeof(uint64_t),
			    offsetof(struct thp_msg_evict, n), THP_EVICT_MAX },
	[THP_MSG_EVICT_DONE] = { "EVICT_DONE", sizeof(struct thp_msg_evict_done), 0, 0, 0 },
	[THP_MSG_STATUS] = { "STATUS", 0, 0, 0, 0 },
	[THP_MSG_STATUS_REPLY] = { "STATUS_REPLY", sizeof(struct thp_msg_status_reply), 0, 0, 0 },
	[THP_MSG_CLIENTS] = { "CLIENTS", 0, 0, 0, 0 },
	[THP_MSG_CLIENTS_REPLY] = { "CLIENTS_REPLY", sizeof(struct thp_msg_clients_reply),
				    sizeof(struct thp_client_info),
				    offsetof(struct thp_msg_clients_reply, n), THP_CLIENTS_MAX },
	[THP_MSG_REGIONS] = { "REGIONS", sizeof(struct thp_msg_regions), 0, 0, 0 },
	[THP_MSG_REGIONS_REPLY] = { "REGIONS_REPLY", sizeof(struct thp_msg_regions_reply),
				    sizeof(struct thp_region_info),
				    offsetof(struct thp_msg_regions_reply, n), THP_REGIONS_MAX },
	[THP_MSG_EVICT_REQ] = { "EVICT_REQ", sizeof(struct thp_msg_evict_req), 0, 0, 0 },
	[THP_MSG_EVICT_REPLY] = { "EVICT_REPLY", sizeof(struct thp_msg_evict_done), 0, 0, 0 },
	[THP_MSG_STATS] = { "STATS", sizeof(struct thp_msg_stats), 0, 0, 0 },
	[THP_MSG_STATS_REPLY] = { "STATS_REPLY", sizeof(struct thp_msg_stats_reply), 0, 0, 0 },
	[THP_MSG_LIMITS] = { "LIMITS", 0, 0, 0, 0 },
	[THP_MSG_LIMITS_REPLY] = { "LIMITS_REPLY", sizeof(struct thp_msg_limits_reply), 0, 0, 0 },
	[THP_MSG_CLIENTS_PAGE] = { "CLIENTS_PAGE", sizeof(struct thp_msg_clients_page), 0, 0, 0 },
	[THP_MSG_POLICY_PAGE] = { "POLICY_PAGE", sizeof(struct thp_msg_policy_page), 0, 0, 0 },
	[THP_MSG_POLICY_REPLY] = { "POLICY_REPLY", sizeof(struct thp_msg_policy_reply),
				   sizeof(struct thp_policy_info),
				   offsetof(struct thp_msg_policy_reply, n), THP_POLICY_MAX },
	[THP_MSG_PIN_REQ] = { "PIN_REQ", sizeof(struct thp_msg_pin_req), 0, 0, 0 },
	[THP_MSG_PIN_REPLY] = { "PIN_REPLY", sizeof(struct thp_msg_pin_reply), 0, 0, 0 },
	[THP_MSG_RESUME] = { "RESUME", sizeof(struct thp_msg_resume), 0, 0, 0 },
};

static const char *const limit_names[THP_L__MAX] = {
	[THP_L_BAD_FDS] = "bad_fds",
	[THP_L_CONNS_PER_UID] = "conns_per_uid",
	[THP_L_HELLO_TIMEOUT] = "hello_timeout",
	[THP_L_EVICT_QUEUE] = "evict_queue",
	[THP_L_EVICT_TIMEOUT] = "evict_timeout",
	[THP_L_NOT_PERMITTED] = "not_permitted",
};
_Static_assert(THP_L__MAX <= sizeof(((struct thp_msg_limits_reply *)0)->ctr) / sizeof(uint64_t),
	       "LIMITS_REPLY holds every limit counter");

const char *thp_limit_name(unsigned i)
{
	return i < THP_L__MAX && limit_names[i] ? limit_names[i] : "unknown";
}

/* Every array message at its maximum must still fit one datagram. */
_Static_assert(sizeof(struct thp_msg_hdr) + sizeof(struct thp_msg_evict) +
	       THP_EVICT_MAX * sizeof(uint64_t) <= THP_MSG_MAX, "EVICT fits");
_Static_assert(sizeof(struct thp_msg_hdr) + sizeof(struct thp_msg_clients_reply) +
	       THP_CLIENTS_MAX * sizeof(struct thp_client_info) <= THP_MSG_MAX, "CLIENTS fits");
_Static_assert(sizeof(struct thp_msg_hdr) + sizeof(struct thp_msg_policy_reply) +
	       THP_POLICY_MAX * sizeof(struct thp_policy_info) <= THP_MSG_MAX, "POLICY fits");
_Static_assert(sizeof(struct thp_msg_hdr) + sizeof(struct thp_msg_regions_reply) +
	       THP_REGIONS_MAX * sizeof(struct thp_region_info) <= THP_MSG_MAX, "REGIONS fits");

const char *thp_msg_type_name(unsigned type)
{
	if (type == 0 || type >= THP_MSG__MAX)
		return "UNKNOWN";
	return msg_specs[type].name;
}

static int check_payload(const struct msg_spec *s, const unsigned char *p, size_t len)
{
	uint32_t n;

	if (!s->elem)
		return len == s->fixed ? 0 : -EBADMSG;
	if (len < s->fixed)
		return -EBADMSG;
	memcpy(&n, p + s->count_off, sizeof(n));
	if (n > s->max || len != s->fixed + (size_t)n * s->elem)
		return -EBADMSG;
	return 0;
}

int thp_msg_parse(const void *buf, size_t len, struct thp_msg *out)
{
	const unsigned char *p = buf;
	struct thp_msg_hdr h;
	int r;

	if (!buf || len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, p, sizeof(h));
	if (h.magic != THP_PROTO_MAGIC)
		return -EBADMSG;
	/* Before the length: another version may frame differently. */
	if (h.version != THP_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h.len != len)
		return -EBADMSG;
	if (h.type == 0 || h.type >= THP_MSG__MAX)
		return -ENOMSG;
	r = check_payload(&msg_specs[h.type], p + sizeof(h), len - sizeof(h));
	if (r < 0)
		return r;
	if (h.type == THP_MSG_ERROR) {
		const struct thp_msg_error *e = (const void *)(p + sizeof(h));

		if (!memchr(e->text, '\0', sizeof(e->text)))
			return -EBADMSG;
	}
	out->hdr = h;
	out->payload = p + sizeof(h);
	out->payload_len = len - sizeof(h);
	return 0;
}

void thp_msg_init(struct thp_msg_hdr *h, enum thp_msg_type type, uint32_t seq,
		  size_t payload_len)
{
	*h = (struct thp_msg_hdr){
		.magic = THP_PROTO_MAGIC,
		.version = THP_PROTO_VERSION,
		.type = (uint16_t)type,
		.len = (uint32_t)(sizeof(*h) + payload_len),
		.seq = seq,
	};
}

void thp_cmsg_put_fds(struct msghdr *mh, void *ctl, const int *fds, unsigned nfds)
{
	struct cmsghdr *c;

	memset(ctl, 0, CMSG_SPACE(nfds * sizeof(int)));
	mh->msg_control = ctl;
	mh->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
}

int thp_msg_send(int sock, enum thp_msg_type type, uint32_t seq,
		 const void *payload, size_t payload_len,
		 const int *fds, unsigned nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(SEND_FDS_MAX * sizeof(int))];
	} ctl;
	struct thp_msg_hdr h;
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
	ssize_t n;

	if (payload_len > THP_MSG_MAX - sizeof(h))
		return -EMSGSIZE;
	if (nfds > SEND_FDS_MAX || (nfds && !fds) || (payload_len && !payload))
		return -EINVAL;

	thp_msg_init(&h, type, seq, payload_len);
	iov[0] = (struct iovec){ .iov_base = &h, .iov_len = sizeof(h) };
	if (payload_len) {
		iov[1] = (struct iovec){ .iov_base = (void *)payload, .iov_len = payload_len };
		mh.msg_iovlen = 2;
	}
	if (nfds)
		thp_cmsg_put_fds(&mh, ctl.buf, fds, nfds);

	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* SOCK_SEQPACKET sends whole datagrams or nothing. */
	return (size_t)n == h.len ? 0 : -EIO;
}

int thp_msg_send_error(int sock, uint32_t seq, int err, const char *fmt, ...)
{
	struct thp_msg_error e = { .err = err };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e.text, sizeof(e.text), fmt, ap);
	va_end(ap);
	return thp_msg_send(sock, THP_MSG_ERROR, seq, &e, sizeof(e), NULL, 0);
}

static void close_all(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

long thp_msg_recv(int sock, void *buf, size_t bufsize, int *fds,
		  unsigned maxfds, unsigned *nfds)
{
	/* Room for SCM_CREDENTIALS too: a socket unit with PassCredentials=yes
	 * attaches them to every datagram, and without room we'd see
	 * MSG_CTRUNC on perfectly good messages.  A peer that sends no
	 * credentials gets that room for fds as well: every fd that arrives,
	 * however many, is counted and closed unless it is returned. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
			 CMSG_SPACE(RECV_FDS_ROOM * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = bufsize };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	int got[RECV_FDS_ROOM];
	unsigned ngot = 0, total = 0;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	if (maxfds && (!fds || !nfds))
		return -EINVAL;
	if (maxfds > RECV_FDS_ROOM)
		maxfds = RECV_FDS_ROOM;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		const unsigned char *data = CMSG_DATA(c);
		const unsigned char *end = (const unsigned char *)mh.msg_control + mh.msg_controllen;
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		/* Never past what the kernel filled in. */
		if (k > (size_t)(end - data) / sizeof(int))
			k = (size_t)(end - data) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, data + i * sizeof(int), sizeof(int));
			total++;
			if (ngot < maxfds)
				got[ngot++] = fd;
			else
				close(fd);
		}
	}

	/* Before the empty case: a datagram longer than a buffer of 0 bytes
	 * also reads 0 bytes, and is not empty. */
	if (mh.msg_flags & MSG_TRUNC) {
		close_all(got, ngot);
		return -EMSGSIZE;
	}
	/* An empty datagram reads as EOF: the caller ends the conversation,
	 * so whatever came with it is closed here. */
	if (n == 0) {
		close_all(got, ngot);
		return 0;
	}
	if ((mh.msg_flags & MSG_CTRUNC) || total > maxfds) {
		close_all(got, ngot);
		return -EBADMSG;
	}
	if (ngot) {
		memcpy(fds, got, ngot * sizeof(int));
		*nfds = ngot;
	}
	return n;
}
