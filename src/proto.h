/* SPDX-License-Identifier: MIT */
/*
 * The control protocol: versioned, length-prefixed messages, one per
 * SOCK_SEQPACKET datagram, on the daemon's socket (THPSWAP_DEFAULT_SOCKET).
 *
 * Every message starts with struct thp_msg_hdr; hdr.len is the whole
 * datagram.  Payloads are fixed structs or a fixed struct followed by an
 * array, all little-endian host structs (same machine, same ABI).  A peer
 * answers every request it cannot parse with THP_MSG_ERROR carrying -errno
 * and a human-readable reason, and never trusts lengths it did not check.
 *
 * Two roles share the socket, chosen by the first message:
 *   client (libthpswap)   HELLO{role=CLIENT} + SCM_RIGHTS [region uffd]
 *                         <- WELCOME + SCM_RIGHTS [arena memfd]
 *                         then the daemon sends EVICT, the agent answers
 *                         EVICT_DONE with the same seq.
 *   client, again         RESUME + SCM_RIGHTS [arena memfd]
 *   (after the daemon     <- WELCOME (no fd) or ERROR naming what is wrong
 *   went away)            with the arena; then as above.  A new daemon
 *                         adopts the session the client had with the one
 *                         that died: its arena, records and counters.
 *                         An older daemon answers ERROR -ENOMSG (unknown
 *                         type); the client keeps serving itself.
 *   control (thpswapctl)  HELLO{role=CTL} <- WELCOME (no fd), then any of
 *                         STATUS, CLIENTS, REGIONS, EVICT_REQ, STATS, LIMITS,
 *                         CLIENTS_PAGE, POLICY_PAGE, PIN_REQ, each answered
 *                         by its *_REPLY (or ERROR) with its seq.
 *
 * Messages are never changed: what a reply lacks comes as a new message
 * type, added last, that an older daemon answers with ERROR -ENOMSG (and
 * thpswapctl then shows without it).
 */
#ifndef THPSWAP_PROTO_H
#define THPSWAP_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct msghdr;

#define THP_PROTO_MAGIC   0x53504854u /* "THPS" */
#define THP_PROTO_VERSION 1
#define THP_MSG_MAX       (64 * 1024) /* largest datagram either side sends */

enum thp_msg_type {
	THP_MSG_ERROR = 1,
	THP_MSG_HELLO,
	THP_MSG_WELCOME,
	THP_MSG_EVICT,          /* daemon -> agent: evict these regions */
	THP_MSG_EVICT_DONE,     /* agent -> daemon */
	THP_MSG_STATUS,         /* ctl requests ... */
	THP_MSG_STATUS_REPLY,
	THP_MSG_CLIENTS,
	THP_MSG_CLIENTS_REPLY,
	THP_MSG_REGIONS,
	THP_MSG_REGIONS_REPLY,
	THP_MSG_EVICT_REQ,
	THP_MSG_EVICT_REPLY,
	THP_MSG_STATS,
	THP_MSG_STATS_REPLY,
	THP_MSG_LIMITS,         /* added last: an older daemon answers ENOMSG */
	THP_MSG_LIMITS_REPLY,
	THP_MSG_CLIENTS_PAGE,   /* added last: an older daemon answers ENOMSG */
	THP_MSG_POLICY_PAGE,    /* added last: an older daemon answers ENOMSG */
	THP_MSG_POLICY_REPLY,
	THP_MSG_PIN_REQ,        /* added last: an older daemon answers ENOMSG */
	THP_MSG_PIN_REPLY,
	THP_MSG_RESUME,         /* added last: an older daemon answers ENOMSG */
	THP_MSG__MAX
};

struct thp_msg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;           /* header + payload */
	uint32_t seq;           /* replies carry the request's */
};

struct thp_msg_error {
	int32_t err;            /* -errno */
	char text[200];         /* NUL-terminated */
};

enum thp_role { THP_ROLE_CLIENT = 1, THP_ROLE_CTL = 2 };

struct thp_msg_hello {
	uint32_t role;
	uint32_t max_regions;   /* client: regions its arena must hold */
	uint64_t want_features; /* client: UFFD features the agent needs */
	char comm[16];
};

struct thp_msg_welcome {
	uint64_t session_id;
	uint64_t uffd_features; /* what UFFDIO_API granted on the region uffd */
	uint64_t arena_size;    /* client: size of the arena memfd */
	uint32_t daemon_pid;
	uint32_t pad;
};

/*
 * RESUME: a client whose daemon went away (its control socket hung up)
 * asks the daemon now listening to adopt its session.  The message carries
 * the arena memfd the old daemon made; the daemon checks it (a sealed
 * memfd of the size its header's layout says, magic, version, and made for
 * this pid) and answers WELCOME with no fd, or ERROR saying what is wrong.
 * The region uffd stays with the client: UFFDIO_API was done on it once,
 * and @uffd_features is what that granted.  EVICT requests of the old
 * daemon that were in flight are cancelled by the agent, never answered.
 */
struct thp_msg_resume {
	uint32_t max_regions;   /* the arena's, as the client mapped it */
	uint32_t flags;         /* none defined: a daemon refuses any it does not know */
	uint64_t uffd_features; /* granted on the region uffd at the first HELLO */
	uint64_t session_id;    /* the id the previous daemon gave (for its log) */
	uint64_t arena_size;    /* the memfd's size, as the client mapped it */
	char comm[16];
};

/* EVICT: fixed part then n addresses (2 MiB-aligned region starts). */
#define THP_EVICT_MAX 2048
struct thp_msg_evict {
	uint32_t reason;        /* THP_EVICT_*, | THP_EVICT_TO_KERNEL */
	uint32_t n;
	uint64_t addr[];
};
enum { THP_EVICT_BUDGET = 1, THP_EVICT_ADMIN = 2, THP_EVICT_PRESSURE = 3 };
/* A bit of reason: hand the regions to the kernel's swap (MADV_PAGEOUT,
 * lib/kswap.c) instead of storing them.  An older agent ignores reason. */
#define THP_EVICT_TO_KERNEL (1u << 16)
#define THP_EVICT_REASON(r) ((r) & 0xffffu)

struct thp_msg_evict_done {
	uint32_t evicted;       /* now zero or ram */
	uint32_t skipped;       /* not resident, incompressible, gone */
	uint32_t failed;        /* refused (shared/pinned) or errors */
	uint32_t pad;
	uint64_t bytes_in;
	uint64_t bytes_stored;
};

/* ctl: STATUS -> STATUS_REPLY */
struct thp_msg_status_reply {
	uint32_t daemon_pid;
	uint32_t clients;
	uint64_t uptime_ns;
	uint64_t regions;
	uint64_t resident;
	uint64_t evicted_zero;
	uint64_t evicted_ram;
	uint64_t stored_bytes;
	uint64_t budget_bytes;  /* per-client resident budget, 0 = none */
	int32_t zstd_level;     /* with codec zstd */
	uint32_t codec;         /* enum thp_codec_id evictions compress with */
	char version[16];
};

/*
 * ctl: CLIENTS -> CLIENTS_REPLY, the first THP_CLIENTS_MAX sessions;
 * CLIENTS_PAGE{after} -> CLIENTS_REPLY, the sessions with ids above @after.
 * Entries come in increasing session id; @more says that sessions with
 * greater ids are left out: ask again with @after the last id received.
 * Ids are never reused, so each session is listed once across the pages.
 */
struct thp_client_info {
	int32_t pid;
	uint32_t uid;
	uint64_t session_id;
	uint64_t regions;
	uint64_t resident;
	uint64_t evicted_zero;
	uint64_t evicted_ram;
	uint64_t stored_bytes;
	uint64_t faults;
	char comm[16];
};
#define THP_CLIENTS_MAX 256
struct thp_msg_clients_page {
	uint64_t after;         /* a session id; 0: from the first */
};
struct thp_msg_clients_reply {
	uint32_t n;
	uint32_t more;          /* 1: ask again from c[n - 1].session_id */
	struct thp_client_info c[];
};

/* ctl: REGIONS{pid, cursor} -> REGIONS_REPLY{next cursor (0: done), n entries} */
struct thp_msg_regions {
	int32_t pid;
	uint32_t cursor;        /* record index to start at */
};
struct thp_region_info {
	uint64_t addr;
	uint32_t state;         /* enum thp_state */
	uint32_t stored_len;
	uint8_t codec;
	int8_t level;
	/* enum thp_kind (arena.h), in what was padding: an older daemon sends
	 * 0 (UNKNOWN), an older thpswapctl ignores it, and the size stays. */
	uint8_t kind;
	/* 1: handed to the kernel's swap and not one PMD again yet (the
	 * record's THP_RF_KSWAP); padding before, as kind was. */
	uint8_t kswap;
	/* 1: its stored bytes are in the file tier (THP_RF_FILE); padding
	 * before, as kswap was. */
	uint8_t file;
	uint8_t pad;
	/* Times the region was evicted since it was registered, at most
	 * 65535; padding before (an older daemon sends 0). */
	uint16_t evictions;
	uint64_t last_fault_ns; /* CLOCK_MONOTONIC */
};
#define THP_REGIONS_MAX 1024
struct thp_msg_regions_reply {
	uint32_t next;
	uint32_t n;
	struct thp_region_info r[];
};

/* ctl: EVICT_REQ{pid, addr, len} -> EVICT_REPLY (the agent's EVICT_DONE).
 * len == 0 means every region of that client. */
struct thp_msg_evict_req {
	int32_t pid;
	uint32_t flags;         /* THP_EVICT_REQ_*; was padding (0) */
	uint64_t addr;
	uint64_t len;
};
#define THP_EVICT_REQ_KERNEL 1u /* to the kernel's swap (THP_EVICT_TO_KERNEL) */

/* ctl: STATS{pid, 0 = all clients summed} -> STATS_REPLY */
struct thp_msg_stats {
	int32_t pid;
	uint32_t pad;
};
struct thp_msg_stats_reply {
	uint32_t n_counters;    /* THP_C__MAX of the daemon */
	uint32_t n_hist;        /* THP_H__MAX */
	uint64_t ctr[40];       /* THP_ARENA_COUNTERS */
	uint64_t hist[4][96];
};

/*
 * ctl: LIMITS -> LIMITS_REPLY: the daemon's limits on its peers and how often
 * each was hit since it started.
 */
enum thp_limit {
	THP_L_BAD_FDS = 0,      /* a message with fds it may not carry (closed) */
	THP_L_CONNS_PER_UID,    /* a connection refused: its uid had max-conns-per-uid */
	THP_L_HELLO_TIMEOUT,    /* a connection closed: no HELLO within hello-timeout */
	THP_L_EVICT_QUEUE,      /* an eviction refused: evict-queue requests queued */
	THP_L_EVICT_TIMEOUT,    /* a client did not answer an EVICT within evict-timeout */
	THP_L_NOT_PERMITTED,    /* a request for another uid's session, not from an admin */
	THP_L__MAX
};
/* A limit of 0 is none. */
struct thp_msg_limits_reply {
	uint32_t n_counters;    /* THP_L__MAX of the daemon */
	uint32_t pad;
	uint64_t ctr[16];       /* enum thp_limit */
	uint32_t max_conns_per_uid;
	uint32_t hello_timeout_ms;
	uint32_t evict_queue;   /* EVICT requests per session, the one in flight included */
	uint32_t evict_timeout_s;
};

/*
 * ctl: POLICY_PAGE{after, pid} -> POLICY_REPLY: what the pressure loop knows
 * of each session the peer may see, paged like CLIENTS_PAGE (@pid non-zero:
 * that client's session alone, refused like STATS), and the same summed
 * over all of them.  A *promotion* is a region restored within
 * promotion-window of its eviction (an eviction the loop got wrong); the
 * rate is promotions per minute as a fraction of the working set (resident
 * and evicted regions), averaged over the last minute, in parts per
 * billion.  Sums: promotions and working sets add up, the rate is the
 * working-set-weighted mean.  All zero until the loop's first interval.
 */
struct thp_msg_policy_page {
	uint64_t after;         /* a session id; 0: from the first */
	int32_t pid;            /* 0: every session */
	uint32_t pad;
};
struct thp_policy_info {
	uint64_t session_id;
	int32_t pid;
	uint32_t step;          /* regions the loop evicts in its next calm interval */
	uint64_t promotions;    /* since the session began */
	uint64_t promo_rate_ppb;
	uint64_t working_set;   /* regions: resident + evicted, at the last interval */
	uint64_t stall_us;      /* memory stall over the loop's last interval */
	uint64_t pinned;        /* regions pinned now (thpswap_pin, PIN_REQ) */
	uint64_t pad;
};
#define THP_POLICY_MAX 256
struct thp_msg_policy_reply {
	uint32_t n;
	uint32_t more;          /* 1: ask again from p[n - 1].session_id */
	uint64_t promotions;    /* sums over every session the peer may see */
	uint64_t promo_rate_ppb;
	uint64_t working_set;
	uint64_t pinned;
	uint64_t stall_us;      /* the system's (/proc/pressure/memory), last interval */
	struct thp_policy_info p[];
};

/*
 * ctl: PIN_REQ{pid, pin, addr, len} -> PIN_REPLY: set (pin 1) or clear
 * (pin 0) THP_RF_PINNED on the client's records in [addr, addr+len) (len 0:
 * every record); the agent's evictor refuses a pinned record.  Steered like
 * EVICT_REQ: the peer's own sessions, every one for root and admin-group.
 */
struct thp_msg_pin_req {
	int32_t pid;
	uint32_t pin;
	uint64_t addr;
	uint64_t len;
};
struct thp_msg_pin_reply {
	uint32_t regions;       /* records in the range, now pinned (unpinned) */
	uint32_t pad;
};

/* The name of limit @i ("bad_fds", ...), or "unknown". */
const char *thp_limit_name(unsigned i);

/* A parsed, length-checked message.  @payload points into the buffer. */
struct thp_msg {
	struct thp_msg_hdr hdr;
	const void *payload;
	size_t payload_len;
};

/*
 * Check a received datagram and fill @out.  Returns 0, or
 * -EBADMSG (short, bad magic, len disagrees with the datagram, or a payload
 * whose size does not fit its type), -EPROTONOSUPPORT (other version),
 * -ENOMSG (unknown type).  Never reads outside [buf, buf+len).
 */
int thp_msg_parse(const void *buf, size_t len, struct thp_msg *out);

/* Fill a header for a payload of @payload_len bytes. */
void thp_msg_init(struct thp_msg_hdr *h, enum thp_msg_type type, uint32_t seq,
		  size_t payload_len);

/* Send one message with optional fds (SCM_RIGHTS).  Returns 0 or -errno. */
/* Attach @nfds fds to @mh as one SCM_RIGHTS message in @ctl, which holds
 * CMSG_SPACE(nfds * sizeof(int)) bytes aligned for struct cmsghdr. */
void thp_cmsg_put_fds(struct msghdr *mh, void *ctl, const int *fds, unsigned nfds);

int thp_msg_send(int sock, enum thp_msg_type type, uint32_t seq,
		 const void *payload, size_t payload_len,
		 const int *fds, unsigned nfds);

/* Send THP_MSG_ERROR with @err (-errno) and a printf-style reason. */
int thp_msg_send_error(int sock, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Receive one datagram into @buf (THP_MSG_MAX bytes) with up to @maxfds fds
 * (received O_CLOEXEC).  Every other fd that arrived is closed: all of them
 * when there were more than @maxfds or some were truncated (-EBADMSG), the
 * datagram was too long (-EMSGSIZE) or empty.  Returns the datagram length,
 * 0 at EOF or for an empty datagram (no peer sends one: both end the
 * conversation), or -errno.
 */
long thp_msg_recv(int sock, void *buf, size_t bufsize, int *fds,
		  unsigned maxfds, unsigned *nfds);

const char *thp_msg_type_name(unsigned type);

#endif
