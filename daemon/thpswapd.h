/* SPDX-License-Identifier: MIT */
/*
 * thpswapd internals.
 *
 * One struct thpd holds all of the daemon's state (no globals).  Every
 * accepted connection is a struct thpd_conn; its first message (HELLO)
 * makes it a client session (struct thpd_session: the client's arena,
 * pidfd and eviction queue) or a control connection (thpswapctl).
 *
 *   main.c     options, probe, loop setup, signals, sd_notify, watchdog
 *   config.c   embedded defaults, settings file, command line
 *   server.c   listening socket, connections, message dispatch
 *   session.c  client sessions: UFFDIO_API, arena, pidfd, EVICT queue
 *   limits.c   limits on peers: counting each hit, logging it once per peer
 *   ctl.c      thpswapctl requests
 *   policy.c   the per-client resident budget, and the pressure loop
 *   pin.c      pinning a client's records (thpswapctl pin)
 *   pressure.c the kernel's pressure signals: PSI, a client's cgroup
 *   coldness.c what was used since the last interval: soft-dirty, by PAGEMAP_SCAN
 */
#ifndef THPSWAPD_H
#define THPSWAPD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>
#include <limits.h>
#include <uv.h>

#include "arena.h"
#include "proto.h"
#include "util.h"

#define THPD_EXIT_RUN   (-1) /* config: carry on */
#define THPD_EXIT_USAGE 2
#define THPD_EXIT_UNAVAILABLE 69

/* ---- config.c ---- */
enum thpd_profile { THPD_PROFILE_FAST = 0, THPD_PROFILE_DENSE = 1 };

struct thpd_config {
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char sysroot[PATH_MAX];     /* "" = the real /proc and /sys */
	int profile;                /* enum thpd_profile */
	uint32_t codec;             /* enum thp_codec_id evictions compress with */
	int zstd_level;
	uint32_t frames;
	uint64_t budget_bytes;      /* 0 = no budget */
	uint32_t incompressible;    /* enum thp_incompressible_policy */
	/* tiers beyond zero and RAM (THP_TIER_*), and the file tier's settings
	 * (docs/ARCHITECTURE.md, "The file tier", "The kernel tier") */
	uint32_t tiers;
	char file_dir[PATH_MAX];     /* each client's file is an O_TMPFILE here */
	uint32_t file_max_mb;        /* per client */
	uint32_t file_age_ms;        /* a RAM record this old moves to the file */
	uint32_t file_ram_mb;        /* per client: over this in RAM, the oldest move; 0 none */
	uint32_t max_stored_pct;
	uint32_t pool_slots;
	uint32_t max_regions;
	uint32_t interval_ms;
	/* limits on peers (docs/ARCHITECTURE.md, "Limits on peers") */
	uint32_t max_conns_per_uid;
	uint32_t hello_timeout_ms;
	uint32_t evict_queue;       /* EVICT requests per session, in flight included */
	uint32_t evict_timeout_s;
	/* members may see and steer every user's sessions; "" = root only */
	char admin_group[64];
	/* the pressure loop (docs/ARCHITECTURE.md, "The pressure loop") */
	bool pressure;              /* evict cold regions while stall stays low */
	uint32_t pressure_interval_ms;
	uint32_t pressure_target_us;   /* stall per interval that stops the loop */
	uint32_t cold_age_s;           /* not faulted this long: may go */
	uint32_t promotion_window_s;   /* restored this soon after eviction: a mistake */
	uint32_t promotion_target_mpct; /* promotions per minute, 1/1000 % of the working set */
	uint32_t evict_step;           /* regions per interval: first and smallest step */
	uint32_t evict_step_max;
	uint32_t cgroup_high_pct;      /* cgroup usage above this % of its limit: evict */
	uint64_t resident_target_bytes; /* the loop stops at this resident total; 0 none */
	bool write_tracking;           /* the agents mark regions written (uffd write-protect) */
	bool soft_dirty;               /* and soft-dirty, read by the daemon (coldness.c) */
	bool verbose;
	bool check;
};

/* Fill @c from defaults, the settings file and @argv.  Returns THPD_EXIT_RUN
 * to go on, or the status to exit with (--help/--version: 0; errors: 2,
 * after printing what is wrong). */
int thpd_config_load(struct thpd_config *c, int argc, char **argv);

/* ---- the daemon ---- */
struct thpd_session;

struct thpd_conn {
	struct thpd *d;
	struct thpd_conn *prev, *next;  /* d->conns */
	int fd;
	uv_poll_t poll;
	unsigned handles;               /* uv handles not yet closed */
	bool closing;
	uint32_t role;                  /* 0 until HELLO, then enum thp_role */
	pid_t pid;                      /* SO_PEERCRED */
	uid_t uid;
	gid_t gid;
	bool admin;                     /* ctl: may see and steer every uid's sessions */
	uint64_t accepted_ns;           /* for the HELLO deadline */
	uint32_t logged;                /* 1 << enum thp_limit: said once for this peer */
	struct thpd_session *s;         /* role == THP_ROLE_CLIENT */
};

struct thpd {
	struct thpd_config cfg;
	uv_loop_t loop;
	int listen_fd;
	bool socket_bound;              /* we made the socket file: unlink it */
	ino_t socket_ino;
	bool accept_paused;             /* out of fds; resumed on a close */
	bool stopping;
	bool warned_fork;               /* said once that EVENT_FORK is denied */
	uv_poll_t listen_poll;
	uv_signal_t sigterm, sigint;
	uv_timer_t policy_timer, sweep_timer, watchdog_timer;
	uint64_t watchdog_usec;
	struct thpd_conn *conns;
	/* live client sessions in increasing id (ids only grow: appended) */
	struct thpd_session *sessions, *sessions_tail;
	bool have_admin_gid;            /* cfg.admin_group resolved at start */
	gid_t admin_gid;
	unsigned nclients;
	uint64_t next_session_id;
	uint64_t start_ns;
	uint64_t limit_hits[THP_L__MAX];  /* enum thp_limit, since start */
	struct thpd_policy *policy;     /* policy.c's state; NULL until its first tick */
	struct thpd_uid_log {           /* refused connections, logged per uid */
		uid_t uid;
		uint64_t since_ns;      /* 0: nothing logged yet */
		uint64_t unlogged;      /* refusals of uid since the last line */
	} uid_log;
	uint64_t rbuf[THP_MSG_MAX / sizeof(uint64_t)]; /* one receive buffer */
	uint64_t sbuf[THP_MSG_MAX / sizeof(uint64_t)]; /* and one for ctl replies */
};

/* Logging to stderr, one line per event, "thpswapd: " prefixed.  Info lines
 * only with -v. */
void thpd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void thpd_info(const struct thpd *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Copy @src (untrusted, NUL-terminated within @srcsz) to @dst for a log
 * line: printable ASCII stays, a backslash and every other byte become
 * \\ and \xNN, so a peer cannot forge lines or terminal escapes.  Returns
 * @dst (always terminated, truncated to @dstsz). */
const char *thpd_escape(char *dst, size_t dstsz, const char *src, size_t srcsz);
/* Tell systemd the client count (STATUS=). */
void thpd_notify_status(struct thpd *d);

/* ---- server.c ---- */
/* Listen on the socket systemd passed, else bind cfg.socket.  0 or -errno
 * (the reason is printed). */
int thpd_server_open(struct thpd *d);
int thpd_server_start(struct thpd *d);
/* Stop accepting and close every connection (no goodbye to anyone). */
void thpd_server_stop(struct thpd *d);
void thpd_conn_close(struct thpd_conn *c, const char *why);
/* Send on @c; a failure (peer gone, or not reading) closes @c. */
int thpd_conn_send(struct thpd_conn *c, enum thp_msg_type type, uint32_t seq,
		   const void *payload, size_t len, const int *fds, unsigned nfds);
void thpd_conn_error(struct thpd_conn *c, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Whether the peer on @c (at connect time) is root or a member of
 * cfg.admin_group, by SO_PEERCRED and SO_PEERGROUPS. */
bool thpd_peer_is_admin(const struct thpd_conn *c);

/* Close connections that sent no HELLO within cfg.hello_timeout_ms, and
 * fail the EVICTs clients did not answer within cfg.evict_timeout_s. */
void thpd_server_sweep(struct thpd *d, uint64_t now);

/* ---- limits.c ---- */
/* Count a hit of limit @l by the peer on @c (NULL: none yet), and log
 * @fmt (a sentence naming the peer, the limit and what to do) the first
 * time @c hits it.  Refused connections are logged through
 * thpd_limit_uid_refused instead. */
void thpd_limit_hit(struct thpd *d, struct thpd_conn *c, enum thp_limit l,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Count a connection of @uid refused by max-conns-per-uid; logs one line
 * per uid and per 10 s at most, with the number refused since the last. */
void thpd_limit_uid_refused(struct thpd *d, uid_t uid, unsigned have);

/* ---- session.c ---- */
/* HELLO{role=CLIENT} with the region uffd (consumed). Replies WELCOME or ERROR. */
void thpd_session_start(struct thpd_conn *c, uint32_t seq,
			const struct thp_msg_hello *hello, int uffd);
/* RESUME with the arena memfd of a session a daemon before us made
 * (consumed): adopt it, or ERROR saying why not. */
void thpd_session_resume(struct thpd_conn *c, uint32_t seq, const struct thp_msg_resume *rs,
			 int arena_fd);
void thpd_session_evict_done(struct thpd_conn *c, uint32_t seq,
			     const struct thp_msg_evict_done *done);
/* The agent answered with ERROR: if it is for the EVICT in flight, count
 * that chunk as failed. */
void thpd_session_peer_error(struct thpd_conn *c, uint32_t seq,
			     const struct thp_msg_error *e);
/* Free everything of a session; ctl requests waiting on it get ERROR. */
void thpd_session_free(struct thpd_session *s);
/* The live client session of @pid, or NULL. */
struct thpd_session *thpd_session_find(struct thpd *d, pid_t pid);
/* The live sessions in increasing id: the first, and the one after @s. */
struct thpd_session *thpd_session_first(const struct thpd *d);
struct thpd_session *thpd_session_next(const struct thpd_session *s);
/* An agent that does not answer an EVICT within cfg.evict_timeout_s fails
 * that request and every one queued behind it (ETIMEDOUT to the ctl
 * waiting), and new ones are refused until it answers. */
void thpd_session_check_timeout(struct thpd_session *s, uint64_t now);
/* A ctl connection is going away: drop it as the owner of queued work. */
void thpd_session_forget_owner(struct thpd *d, struct thpd_conn *owner);

/* Read-only views of a session's arena; every value is the client's and
 * is clamped or checked here. */
uint32_t thpd_session_nrec(const struct thpd_session *s);
/* The arena memfd (pin.c maps its records writable for a moment). */
int thpd_session_arena_fd(const struct thpd_session *s);
pid_t thpd_session_pid(const struct thpd_session *s);
uid_t thpd_session_uid(const struct thpd_session *s);
uint64_t thpd_session_id(const struct thpd_session *s);
const char *thpd_session_comm(const struct thpd_session *s);
/* Counter @i (region counts clamped to the arena's size). */
uint64_t thpd_session_ctr(const struct thpd_session *s, enum thp_counter i);
uint64_t thpd_session_hist(const struct thpd_session *s, unsigned h, unsigned b);
/* A consistent-enough copy of record @i; false if it is unused or invalid
 * (bad state or address). */
bool thpd_session_record(const struct thpd_session *s, uint32_t i, struct thp_record *out);
/* Walk the used records from index @start (holes in the memfd skipped:
 * reading them would allocate tmpfs pages).  thpd_rec_next() fills a
 * checked copy and its index, false at the end. */
struct thpd_rec_iter {
	const struct thpd_session *s;
	uint32_t i, data_end;
};
void thpd_rec_iter_init(struct thpd_rec_iter *it, const struct thpd_session *s, uint32_t start);
bool thpd_rec_next(struct thpd_rec_iter *it, uint32_t *idx, struct thp_record *out);
/* Evictions in flight or queued. */
bool thpd_session_busy(const struct thpd_session *s);
/* The daemon's own memory of its last eviction attempt per record. */
uint64_t thpd_session_last_attempt(const struct thpd_session *s, uint32_t i);
/*
 * Queue an EVICT of the records @idx[0..n) (their addresses are sent in
 * chunks of THP_EVICT_MAX).  When done, @owner (a ctl connection, or NULL)
 * gets EVICT_REPLY with @owner_seq.  0, -ENOMEM, -EBUSY (cfg.evict_queue
 * requests are queued already) or -ETIMEDOUT (the client has not answered
 * the last EVICT); on an error @owner is not answered: the caller says why.
 */
/* 0 if thpd_session_evict would take a request now, else its -EBUSY (the
 * hit counted and logged) or -ETIMEDOUT. */
int thpd_session_can_queue(struct thpd_session *s);
int thpd_session_evict(struct thpd_session *s, uint32_t reason, const uint32_t *idx,
		       uint32_t n, struct thpd_conn *owner, uint32_t owner_seq);

/* ---- ctl.c ---- */
void thpd_ctl_handle(struct thpd_conn *c, const struct thp_msg *m);

/* ---- policy.c ---- */
/* The budget and the pressure loop, every --interval. */
void thpd_policy_tick(struct thpd *d);
/* Free the policy's state (at exit). */
void thpd_policy_free(struct thpd *d);

/* What the pressure loop knows of @s (ids, pid filled in any case); false
 * if it has not walked @s yet (all zero then).  @out->pinned is not its. */
bool thpd_policy_client(const struct thpd *d, const struct thpd_session *s,
			struct thp_policy_info *out);
/* The system's memory stall (/proc/pressure/memory) over the last interval. */
uint64_t thpd_policy_sys_stall(const struct thpd *d);

/* ---- pin.c ---- */
/* Set (@pin) or clear THP_RF_PINNED on the records of @s whose regions
 * start in [@start, @end), through a writable mapping of the records made
 * for the call.  Returns how many, or -errno. */
long thpd_pin(struct thpd_session *s, uint64_t start, uint64_t end, bool pin);

/* ---- pressure.c ---- */
/* Where a process's memory is accounted: its cgroup v2 directory (for
 * memory.pressure, memory.current, memory.high, memory.max) and its v1
 * memory controller directory, below the sysroot; "" where it has none. */
struct thpd_cgroup {
	char v2[PATH_MAX];
	char v1[PATH_MAX];
};
/* What a cgroup says now; UINT64_MAX where unknown or unlimited. */
struct thpd_memcg {
	bool has_psi;
	uint64_t stall_us;        /* memory.pressure, "some" total */
	uint64_t usage;           /* bytes charged */
	uint64_t limit;           /* the lower of memory.high and memory.max (v1: limit_in_bytes) */
};
/* The v2 path ("0::/a") and the v1 memory path ("N:...,memory,...:/b") of
 * /proc/PID/cgroup's @text into @v2 and @v1 ("" for the root or none).
 * 0, -ENOENT (neither), -EINVAL or -ENAMETOOLONG. */
int thpd_cgroup_parse(const char *text, char *v2, size_t v2sz, char *v1, size_t v1sz);
/* The directories of @pid's cgroups below @sysroot ("" for /).  0, or
 * -ENOENT when none has memory files, or -errno reading /proc/PID/cgroup. */
int thpd_cgroup_find(const char *sysroot, pid_t pid, struct thpd_cgroup *cg);
/* A limit file's text: "max" and v1's "unlimited" (>= 2^62) -> UINT64_MAX. */
int thpd_limit_parse(const char *text, uint64_t *v);
/* Read @cg now: 0 if any of its files was read, else -ENOENT. */
int thpd_memcg_read(const struct thpd_cgroup *cg, struct thpd_memcg *m);
/* /proc/pressure/memory below @sysroot: the "some" total and avg10. */
int thpd_psi_system(const char *sysroot, uint64_t *stall_us, double *avg10);

/* ---- coldness.c ---- */
struct page_region;
/* The signals coldness can be told from, best first. */
enum thpd_cold_signal {
	THPD_COLD_NONE = 0,        /* fault history only */
	THPD_COLD_SOFT_DIRTY,      /* written since the last look: clear_refs 4, PAGE_IS_SOFT_DIRTY */
};
/* One resident region of a client: its start and its record index. */
struct thpd_cold_region {
	uint64_t addr;
	uint32_t idx;
};
/* What this kernel offers, tried on the daemon's own memory: the signal, and
 * the PAGEMAP_SCAN categories it accepts (read-access tracking would be one
 * past PAGE_IS_GUARD: said in the log, not used by this build). */
enum thpd_cold_signal thpd_cold_probe(uint64_t *categories);
/* Set @hot[k] for each @r[k] (sorted by address, each 2 MiB) that a run of
 * @v[0..nv) (sorted, as PAGEMAP_SCAN returns them) overlaps. */
void thpd_cold_mark(const struct page_region *v, size_t nv, const struct thpd_cold_region *r,
		    size_t n, bool *hot);
/* Which of @pid's regions @r[0..n) were written since the last call (all of
 * them the first time), then re-arm: /proc/PID/pagemap and clear_refs below
 * @sysroot.  @r is sorted by address in place; @hot[k] is for @r[k].
 * 0 or -errno (-ENOTTY: no PAGEMAP_SCAN there; -EACCES: not ours to look). */
int thpd_cold_scan(const char *sysroot, pid_t pid, struct thpd_cold_region *r, size_t n,
		   bool *hot);

#endif
