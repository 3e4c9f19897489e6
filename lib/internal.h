/* SPDX-License-Identifier: MIT */
/*
 * libthpswap internals.
 *
 * Threads of a session:
 *   fault thread   the only reader of the region uffd: serves faults, handles
 *                  events, receives the daemon's EVICT commands and hands
 *                  them to the workers.
 *   background     one thread at lower priority (nice +5): evictions the
 *                  daemon asks for, and pool refills.  Its work must never
 *                  stand between a faulting thread and its memory.
 *   helpers        only decompress frames alongside the fault thread (one per
 *                  spare CPU by default): a helper busy with anything else
 *                  would stall the restore that is waiting for its frame.
 *   app threads    thpswap_advise() evicts in the calling thread; it
 *                  prefetches by faulting (MADV_POPULATE), as unregister
 *                  does: only the fault thread moves data into regions.
 *
 * Memory of a session:
 *   regions        the application's managed 2 MiB units, registered MISSING
 *                  on the region uffd (uffd) with REMOVE/UNMAP/REMAP/FORK
 *                  events.
 *   scratch        staging and pool slots in one MADV_DONTFORK area,
 *                  registered MODE_WP on a second uffd (suffd) that has no
 *                  events: it faults like normal memory, zapping a slot raises
 *                  nothing, and it satisfies MOVE's "dst registered" check.
 *   arena          the daemon's memfd: records, counters, stored bytes.
 *
 * Record state machine (record.state, changed only by compare-and-swap; the
 * thread whose CAS moved a record into a transient state owns it until it
 * moves it out):
 *
 *   EMPTY/ZERO --fault--> RESTORING --MOVE in--> RESIDENT          (restorer)
 *   RAM --------fault--> RESTORING --decompress, MOVE in--> RESIDENT
 *   RESIDENT --evictor--> EVICTING --MOVE out, compress--> RAM/ZERO
 *   EVICTING --fault thread--> CANCEL: the evictor sees it at its next check
 *                               or when its commit CAS fails, moves the THP
 *                               back (the MOVE wakes the faulters) -> RESIDENT
 *
 * Every transition there is (rec_cas and rec_set assert it in debug builds):
 *
 *   FREE       -> EMPTY, RESIDENT          registered (rt_add)
 *   EMPTY      -> RESTORING                a fault (restore_region)
 *              -> RESIDENT                 written before its registration took
 *                                          effect (settle_empty)
 *   ZERO, RAM  -> RESTORING                a fault
 *              -> EMPTY                    wholly zapped while evicted (on_remove)
 *   RESIDENT   -> EVICTING                 an eviction starts
 *              -> RESTORING                a fault on a zapped page (owned while
 *                                          its zero page goes in, or the whole
 *                                          region's if it is all gone), a fork
 *                                          copying it (fork_in_flight)
 *   EVICTING   -> RAM, ZERO                stored (commit, or kept raw)
 *              -> RESIDENT                 backed out, or moved back
 *              -> CANCEL                   a fault meanwhile
 *   CANCEL     -> RESIDENT                 moved back
 *              -> RAM, ZERO                kept raw instead (keep_instead)
 *   RESTORING  -> RESIDENT                 moved in
 *              -> EMPTY, ZERO, RAM,        backed out (the state it came from)
 *                 RESIDENT
 *              -> POISONED                 stored bytes failed verification
 *   EMPTY, ZERO, RAM, RESIDENT,
 *   POISONED   -> FREE                     unmapped or unregistered (rt_release)
 *
 * A region is empty (pmd_none) in every state but RESIDENT, so any touch
 * faults and waits for us; nothing is copied out before the region is empty,
 * so no write can be lost.  Waking a faulter early is always safe: it
 * retries the access and faults again if the page is still missing.
 */
#ifndef THPSWAP_LIB_INTERNAL_H
#define THPSWAP_LIB_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <linux/userfaultfd.h>

#include "thpswap/thpswap.h"
#include "arena.h"
#include "kernel-abi.h"
#include "proto.h"
#include "codec.h"
#include "pagemap.h"
#include "util.h"

#define REGION THP_REGION_BYTES

/* Built hidden; only these reach the version script. */
#define _public_ __attribute__((visibility("default")))

/* CLOCK_MONOTONIC in ns: the one clock (src/util.c). */
static inline uint64_t now_ns(void)
{
	return thp_now_ns();
}

/*
 * One header for lib/, in sections named for the file that defines what
 * they declare.  struct thpswap_session holds a part of every file's state
 * (each field group says whose), so every file needs all of it anyway.
 */

/* ---- scratch slots (scratch.c) ---- */
enum { SLOT_EMPTY = 0, SLOT_FULL = 1, SLOT_BUSY = 2 };

struct scratch {
	char *base;
	unsigned nslots;
	unsigned npool;           /* pool slots first, then staging */
	int uffd;                 /* staging is registered on it */
	char *probe;              /* an empty staging slot: events_pending() */
	unsigned pool_max;        /* pool size kept while the client is busy */
	unsigned target_full;     /* pool size to keep now */
	uint64_t idle_ns;         /* idle this long, the pool goes back */
	_Atomic uint64_t busy_ns; /* last restore or eviction through the pool */
	unsigned nfull, nempty;
	uint8_t *st;              /* SLOT_* per slot */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* ---- the library's own memory (own.c) ---- */
#define OWN_MAX 1024              /* about 8 per codec, one per worker */
struct own_ranges {
	pthread_mutex_t lock;
	unsigned n;
	struct { uint64_t lo, hi; } r[OWN_MAX];
};

/* ---- the region table (maps.c) ---- */
struct region_table {
	pthread_mutex_t lock;
	uint64_t *keys;           /* region number + 1; 0 empty (no tombstones) */
	uint32_t *vals;           /* record index */
	uint32_t cap;             /* power of two, >= 2 * max_regions */
	uint32_t *free_idx;       /* stack of free record indices */
	uint32_t nfree;
};

/*
 * Zaps read while a region is mapped, not seen to land yet (record.c): the
 * pages of REMOVEs noted in the current second (cur, since cur_start; the
 * last at last_ns) and in the one before (prev).  A page still mapped a
 * second after its REMOVE was read is taken as MADV_FREE'd, which leaves
 * pages mapped (see rzap_in_flight); two generations let the pages of an
 * old REMOVE age out while newer ones keep coming.
 */
struct rzap {
	_Atomic uint64_t cur[8], prev[8];
	_Atomic uint64_t cur_start, last_ns;
};

/* ---- fork children (fork.c) ---- */
/* What a fork child did while we were filling it. */
struct forks {
	int fd[32];               /* grandchildren */
	unsigned n;
	struct { uint64_t lo, hi; } zap[64]; /* its MADV_DONTNEED/FREE */
	unsigned nzap;
	bool zap_overflow;
	bool gone;                /* its memory went (exit, exec): ESRCH */
};

/*
 * Where one page of a misaligned mremap's copy may be now (see copy_region):
 * the place the mremap put it, then every place a REMAP read since moved one
 * of those to.  Events of different threads arrive in send order, not change
 * order, so a REMAP read during the copy may be a late one of a mapping that
 * left those addresses before our mremap came (the page is still at the
 * earlier place), or the application moving the page on (it is at the later
 * place): the copy tries them in order and the kernel says which holds it.
 */
#define NPLACES 6
struct page_places {
	uint64_t at[NPLACES];
	unsigned since[NPLACES];  /* place in u just after the message that put it at at[i] */
	uint8_t n;
	uint8_t zapped;           /* bit i: a REMOVE read since covers at[i] */
};

/* A FORK read while a misaligned mremap's copy ran (see copy_region). */
struct early_fork {
	int cfd;
	struct page_places pg[THP_REGION_BYTES / THP_PAGE_SIZE]; /* the copy's pages at the fork */
	struct forks f;
};

/* ---- work for the workers (workers.c) ---- */
/* Preallocated: the fault thread must not malloc (see on_daemon). */
struct evict_job {
	struct evict_job *next;
	atomic_bool busy;         /* set by the fault thread, cleared when answered */
	uint32_t seq;             /* daemon's request, answered when done */
	bool to_kernel;           /* THP_EVICT_TO_KERNEL: kswap_pageout instead */
	unsigned gen;             /* s->conn_gen it came on (see conn_gen) */
	uint32_t n;
	uint64_t addr[THP_EVICT_MAX];
};
#define NJOBS 2                   /* the daemon sends one at a time per session */

/*
 * The restore being decompressed by several threads.  A frame is claimed by
 * a CAS on @claim, which packs the restore's generation with the next frame:
 * a helper that woke late for an earlier restore fails its claim instead of
 * taking a frame of this one, so the fault thread only ever waits for frames
 * a helper really took (never for a helper that was merely woken).
 */
struct decomp_help {
	_Atomic uint64_t claim;   /* gen << 32 | frames << 16 | next frame */
	_Atomic unsigned done;    /* frames finished */
	_Atomic int err;
	uint32_t gen;             /* under wlock, with the fields below */
	bool active;
	const struct thp_blob_view *view;
	char *dst;
};

struct worker {
	struct thpswap_session *s;
	pthread_t thread;
	bool background;          /* workers[0]; the rest are helpers */
	struct thp_codec *codec;
	char *buf;                /* compression output, one slot */
	void *stack;              /* own_alloc'd, guard page first (agent.c) */
};

/* ---- the fault thread's restore (restore.c) ---- */
/*
 * The record the fault thread's restore in progress has moved to RESTORING
 * and owns.  Its MOVE may wait out EAGAIN, reading events meanwhile; those
 * events' handlers must not wait for this record (the fault thread would
 * wait for itself), and one of them may take its region away (@gone).
 * Set by restore_owned, consulted only through fault_owned().
 */
struct owned {
	uint32_t idx;
	/* An event read meanwhile took its region away (unmapped, or copied
	 * elsewhere): the record is out of the table already, the restore must
	 * not move it in, and it is freed when the restore ends. */
	bool gone;
};

/* ---- adoption (adopt.c) ---- */
/* How a program's own mappings are adopted (see adopt_start). */
struct adopt_cfg {
	uint64_t min_size;        /* smallest mapping looked at (>= 2 MiB) */
	unsigned scan_ms;         /* between two looks at the mappings */
	/* Called once, from the adoption thread, when the region table
	 * first has no room for @left blocks (of @max_regions): the library
	 * never prints, its caller may.  NULL: nobody is told. */
	void (*on_full)(uint32_t max_regions, uint64_t left);
};
#define ADOPT_MIN_SIZE_DEFAULT THP_REGION_BYTES
#define ADOPT_SCAN_MS_DEFAULT 100u

/* A mapping found unfit (see adopt.c): not looked at again until it
 * changes or the entry ages out. */
#define ADOPT_NSKIP 64
struct adopt_skip {
	uint64_t lo, hi;
	unsigned until;           /* scan number after which it is looked at again */
};

struct adopt {
	struct adopt_cfg cfg;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;     /* stop, with cond */
	pthread_cond_t cond;
	bool stop;
	int maps_fd;              /* /proc/self/maps, for PROCMAP_QUERY */
	bool text;                /* no PROCMAP_QUERY here: parse the text */
	char *buf;                /* /proc/self/maps or smaps text, bufsz bytes */
	size_t bufsz;
	struct adopt_cand *cand;  /* mappings with blocks to adopt, this scan */
	unsigned ncand;
	unsigned scans;
	struct adopt_skip skip[ADOPT_NSKIP];
	unsigned nskip;
	uint64_t left_out;        /* blocks the last scan found no room for */
	bool said_full;
};

struct thpswap_session {
	/* session.c: the connection, the uffds, the arena.  @sock is
	 * replaced under send_lock (the fault thread drops it when the daemon
	 * hangs up, the background thread puts a new one in once a daemon has
	 * adopted us); the fault thread alone reads it. */
	_Atomic int sock;         /* to thpswapd; -1 while it is away */
	int uffd;                 /* region uffd */
	int suffd;                /* scratch uffd */
	int pagemap;              /* /proc/self/pagemap */
	int procmap;              /* /proc/self/maps, for PROCMAP_QUERY, or -1 */
	int evfd;                 /* wakes the fault thread to stop */
	int arena_fd;
	int tier_fd;              /* the daemon's file for the file tier (WELCOME), until
				   * ftier_open takes it; -1 none */
	uint64_t features;        /* granted on the region uffd */
	pthread_mutex_t send_lock;
	/* Bumped under send_lock when the connection goes and when a new
	 * one comes: an EVICT read on an older one is cancelled, and its
	 * answer dropped (workers.c). */
	_Atomic unsigned conn_gen;
	/* For RESUME (session_reconnect): where the daemon listens, our name
	 * at open, the id the last daemon gave us (under send_lock). */
	char sock_path[108];
	char comm[16];
	uint64_t session_id;
	/* workers.c, under wlock: the background thread connects again after
	 * the daemon went away, at @due_ns, then backs off (jittered). */
	struct reconnect {
		bool wanted;
		uint64_t due_ns;
		uint64_t connected_ns;    /* when the connection now lost was made */
		unsigned backoff_ms;
		uint64_t rng;             /* xorshift state for the jitter */
	} reconnect;

	void *arena;
	size_t arena_size;
	struct thp_arena_header *hdr;
	struct thp_record *rec;

	struct region_table rt;   /* maps.c */
	struct scratch sc;        /* scratch.c */
	struct own_ranges own;    /* own.c */
	struct adopt adopt;       /* adopt.c */

	/* agent.c: the fault thread */
	pthread_t fault_thread;
	bool fault_thread_started;
	/* The fault thread ends when this is set and s->evfd is written; the
	 * evfd alone only makes it look at the daemon's socket again. */
	atomic_bool fault_stop;
	void *fault_stack;        /* own_alloc'd, guard page first */
	struct thp_codec *fault_codec;
	char *fault_buf;          /* a slot-sized buffer for the fault thread */

	/* workers.c */
	unsigned nworkers;        /* background + helpers */
	struct worker *workers;
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct evict_job *jobs, **jobs_tail;
	struct evict_job job_mem[NJOBS];
	struct decomp_help help;
	bool refill_wanted;
	bool stopping;

	/* Evictions run by app threads (advise) need their own codec. */
	pthread_mutex_t app_codec_lock;
	struct thp_codec *app_codec;
	char *app_buf;

	/* events.c: region-uffd messages read but not yet handled (fault
	 * thread only).  Nested reads (while a restore waits out EAGAIN) only
	 * queue, so that events are handled in the order the kernel sent them. */
	struct uffd_msg *q;
	unsigned qhead, qtail;    /* free-running; q[i & (QCAP - 1)] */
	/* Messages just read, in kernel order.  FORK, UNMAP and REMAP are
	 * handled from its front as soon as possible (their callers return
	 * once we read them); the rest move on to q.  Strictly front-first,
	 * and never while one of those handlers runs (in_urgent), so that no
	 * event is ever handled before one the kernel sent earlier. */
	struct uffd_msg *u;
	unsigned uhead, utail;
	atomic_int in_urgent;
	/* Messages read / handled from u, for app threads that must not look
	 * up addresses a pending mremap or munmap has changed. */
	_Atomic unsigned long u_read, u_done;
	/* FORKs read (counted under zap_lock, as u_read) and handled, that
	 * is their child filled (under fork_lock, signalled on fork_cond):
	 * agent_wait_forks keeps fork() from returning before then. */
	unsigned long forks_read, forks_done;
	pthread_mutex_t fork_lock;
	pthread_cond_t fork_cond;     /* CLOCK_MONOTONIC */
	/* Messages put on q / handled from it (page faults and REMOVEs),
	 * for agent_sync: a fault read late must not meet a region mapped
	 * at its address afterwards (it would cancel that one's eviction). */
	_Atomic unsigned long q_in, q_done;
	/* The fault thread's event reader (agent_drain), passed down by
	 * agent_start for the layers below the intake that must let events be
	 * read while they wait on the fault thread (region-ops.c, maps.c): they
	 * call it through this pointer, so that no code of theirs calls up. */
	void (*read_events)(struct thpswap_session *s);
	/* Records wholly zapped by a REMOVE read but not handled yet (see
	 * on_remove); fault thread only. */
#define NZAPPED 64
	uint32_t zapped[NZAPPED];
	unsigned nzapped, zapped_done;

	/* remap.c, fault thread only: old ranges of mremaps handled, whose
	 * UNMAP has not come yet (len 0: a free slot; see on_unmap). */
#define NMOVED_FROM 64
	struct moved_from { uint64_t from, len, seq; } moved_from[NMOVED_FROM];
	uint64_t nmoved_from;
	int way_depth;            /* clear_way() nesting */
	/* A misaligned mremap's 4 KiB copy in progress (on_remap), or NULL. */
	struct remap_copy *copying;
	/* fork.c: children forked during it: filled with its pages there,
	 * then handed to on_fork with what they did meanwhile. */
	struct early_fork early[4];
	unsigned nearly;

	/* restore.c: the fault thread's restore in progress, or NULL (fault
	 * thread only; see fault_owned()). */
	struct owned *restoring;
	/* samples.c: timing samples, NULL until turned on (samples.h). */
	struct thp_samples *samples;

	/*
	 * record.c: per record index, the 4 KiB pages the application zapped
	 * (MADV_DONTNEED/FREE) while the region was not resident.  Bits are
	 * set when the REMOVE event is read, under zap_lock; every MOVE into a
	 * region first takes its bits and zeroes those pages in the slot.  The
	 * kernel zaps only after we read the event, and no event is read while
	 * a restorer holds zap_lock across take-and-MOVE: so a zap either lands
	 * after the MOVE (on resident memory) or its bits are in the copy.
	 */
	_Atomic uint64_t (*zap)[8];
	/* Per record index: pages of a mapped region that a REMOVE read
	 * covers, until its zap is seen to have landed (see struct rzap). */
	struct rzap *rzap;
	/* Per record index: u_read when it was added, to tell a region
	 * registered after a given event was read (see copy_region). */
	_Atomic unsigned *born;   /* (unsigned)u_read, compared mod 2^32 with
				   * places in u: u_read counts with utail */
	pthread_mutex_t zap_lock;
	uint64_t (*cut)[8];       /* remap.c: pages unmapped by partial munmaps */

	/* session.c: who opened it, to tell a fork child's copy (see
	 * session_forked); the next session open in this process (the
	 * fork handler's list, under its lock). */
	pid_t pid;
	unsigned long fork_gen;
	struct thpswap_session *live_next;

	/* kswap.c: the kernel tier.  @active: some record may carry
	 * THP_RF_KSWAP (set by a pageout, cleared by a scan that found none);
	 * @next_ns, when the background thread scans next (its own);
	 * @mode, enum thp_kswap_mode as read at @mode_ns (kswap_mode). */
	struct kswap {
		atomic_bool active;
		uint64_t next_ns;
		atomic_int mode;
		_Atomic uint64_t mode_ns;
	} kswap;

	/* track.c: write tracking.  @on: the daemon asked for it (track_ms)
	 * and registration with write-protect works; @next_ns, when the
	 * background thread protects the resident regions next (its own). */
	struct track {
		atomic_bool on;
		uint32_t ms;
		uint64_t next_ns;
	} track;

	/* ftier.c: the file tier, off unless the daemon gave a file for it
	 * or THPSWAP_FILE_TIER names a directory (see struct ftier). */
	struct ftier *ft;

	/* Failure injection into thpswap_open (see open_fail_point). */
	unsigned open_step, fail_at;
	int fail_err;
};
#define QCAP 4096u

/* ---- opening a session (session.c) ---- */
/* Called before each fallible step of thpswap_open (agent_start's too):
 * 0, or in debug builds the failure a test asked for (THPSWAP_FAIL_AT). */
#ifdef NDEBUG
static inline int open_fail_point(struct thpswap_session *s)
{
	(void)s;
	return 0;
}
#else
int open_fail_point(struct thpswap_session *s);
#endif

/* Is @s a fork child's copy of its parent's session?  The child has none
 * of the agent's threads, and the arena and scratch are not mapped there
 * (MADV_DONTFORK): every call on it fails with -ECHILD and frees nothing. */
bool session_forked(const struct thpswap_session *s);
/* The number in environment variable @name, @dflt if it is unset, not a
 * number, or outside [@lo, @hi]. */
unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi);
/* The daemon went away: connect again and ask the one listening now to
 * adopt this session (RESUME with the arena).  Background thread only;
 * faults are served meanwhile, and the fault thread reads the new socket
 * only once the daemon has answered.  0, or -errno: try again later;
 * *@refused if that is the daemon's answer (ERROR). */
int session_reconnect(struct thpswap_session *s, bool *refused);

/* ---- registering memory (api.c) ---- */
long register_blocks(struct thpswap_session *s, uint64_t a, uint64_t len, uint64_t ulo,
		     uint64_t uhi, bool part);

/* ---- adoption (adopt.c) ---- */
/*
 * Start the thread that adopts the program's mappings: every @cfg->scan_ms
 * it registers the 2 MiB blocks of private anonymous read-write mappings
 * of at least @cfg->min_size that nothing manages yet (see adopt.c for
 * what is never adopted).  0 or -errno; adopt_stop (thpswap_close) ends it.
 */
int adopt_start(struct thpswap_session *s, const struct adopt_cfg *cfg);
void adopt_stop(struct thpswap_session *s);
/* One look at the mappings now (the thread's loop body): the number of
 * blocks adopted, or -errno. */
long adopt_scan(struct thpswap_session *s);

/* ---- the library's own memory (own.c) ---- */
/*
 * Nothing the agent's threads touch may ever be managed memory: a region of
 * it evicted would fault on the thread that serves faults (or on a worker it
 * waits for).  So all of it is noted here, for whatever adopts a program's
 * mappings to leave alone.
 *
 * Note [@addr, @addr + @len) as the library's own (0, or -ENOSPC when full);
 * forget the range noted at @addr (returns its length, 0 if none); does
 * [@lo, @hi) touch any of it?
 */
int own_note(struct thpswap_session *s, const void *addr, size_t len);
size_t own_forget(struct thpswap_session *s, const void *addr);
bool own_overlaps(struct thpswap_session *s, uint64_t lo, uint64_t hi);
/* Bytes of the library's own ranges that are resident now. */
uint64_t own_resident(struct thpswap_session *s);
/* @len zeroed bytes in a mapping of their own, noted; NULL (errno) on
 * failure.  own_free forgets and unmaps it (NULL is a no-op). */
void *own_alloc(struct thpswap_session *s, size_t len);
void own_free(struct thpswap_session *s, void *p);
/* The codec allocation hook that allocates through own_alloc for @s. */
struct thp_alloc own_codec_alloc(struct thpswap_session *s);
/* A zeroed session in a mapping of its own, its registry ready and holding
 * the session itself; NULL on failure.  own_session_free unmaps it. */
struct thpswap_session *own_session_new(void);
void own_session_free(struct thpswap_session *s);

/* ---- the fault thread (agent.c) ---- */
/* The session whose fault thread the calling thread is; NULL on any other
 * thread.  Set by the fault thread itself as it starts (defined in
 * region-ops.c, the lowest layer that asks).  Initial-exec: read at a fixed
 * offset from the thread pointer, not through the thread's vector of TLS
 * blocks, which glibc mallocs in the program's heap (see own.c). */
extern _Thread_local struct thpswap_session *fault_thread_of
	__attribute__((tls_model("initial-exec")));

static inline bool agent_is_fault_thread(const struct thpswap_session *s)
{
	return fault_thread_of == s;
}

/* Start the fault thread and s->nworkers workers: all of them and 0, or
 * none (what was started is stopped again) and -errno. */
int agent_start(struct thpswap_session *s);
/* Stop what agent_start started (thpswap_close only). */
void agent_stop(struct thpswap_session *s);

/* ---- record helpers (record.c) ---- */
/* The per-record side tables of a session (zap masks, birth, cuts) for @n
 * records: 0 or -ENOMEM (nothing left allocated); fini frees them. */
int rec_tables_init(struct thpswap_session *s, uint32_t n);
void rec_tables_fini(struct thpswap_session *s);
static inline uint32_t rec_flags(const struct thp_record *r)
{
	return __atomic_load_n(&r->flags, __ATOMIC_ACQUIRE);
}
/* Where the region is now: mremap handling re-keys it meanwhile. */
static inline uint64_t rec_addr(const struct thp_record *r)
{
	return __atomic_load_n(&r->addr, __ATOMIC_ACQUIRE);
}
uint32_t rec_state(const struct thp_record *r);
/* Both assert, in debug builds, that the transition is one of the state
 * machine's (the table at the top of this file). */
bool rec_cas(struct thpswap_session *s, struct thp_record *r, uint32_t from, uint32_t to);
void rec_set(struct thpswap_session *s, struct thp_record *r, uint32_t to);
void ctr_add(struct thpswap_session *s, enum thp_counter c, int64_t v);
void hist_add(struct thpswap_session *s, enum thp_hist h, uint64_t ns);
/* The zap mask (see struct thpswap_session). */
void zap_note(struct thpswap_session *s, uint32_t i, uint64_t addr, uint64_t lo, uint64_t hi);
bool zap_full(struct thpswap_session *s, uint32_t i);
bool zap_take(struct thpswap_session *s, uint32_t i, uint64_t m[8]);
void zap_put_back(struct thpswap_session *s, uint32_t i, const uint64_t m[8]);
void zap_apply(char *slot, const uint64_t m[8]);
void zap_clear(struct thpswap_session *s, uint32_t i);
/* A REMOVE read while record @i (its region at @addr) was resident: the
 * kernel zaps after the read, at a time we cannot observe.  Note its pages
 * before the record's state is looked at (the evictor does the reverse). */
void rzap_note(struct thpswap_session *s, uint32_t i, uint64_t addr, uint64_t lo, uint64_t hi);
/* The application faulted on page @addr of record @i: a zap landed there. */
void rzap_landed(struct thpswap_session *s, uint32_t i, uint64_t region, uint64_t addr);
/* May a zap noted by rzap_note still land on the region at @addr?  Pages
 * found missing have had theirs; a page still mapped a second after its
 * REMOVE was read was MADV_FREE'd (which leaves pages mapped, and whose
 * bytes stay valid whether or not it lands).  Clears what has landed.
 * Callers hold zap_lock (events_hold), as rzap_note's caller does. */
bool rzap_in_flight(struct thpswap_session *s, uint32_t i, uint64_t addr);
void rzap_clear(struct thpswap_session *s, uint32_t i);
/* Drop the stored bytes of record @i: forget them (counters, length), then
 * punch the arena slot and free its file range (ftier_free); rec_drop_bytes
 * does both. */
uint32_t rec_forget_bytes(struct thpswap_session *s, uint32_t i);
void slot_punch(struct thpswap_session *s, uint32_t i);
void rec_drop_bytes(struct thpswap_session *s, uint32_t i);

/* ---- region table (maps.c) ---- */
/* The table's arrays are @s's own memory (own_alloc); @t need not be s->rt. */
int rt_init(struct thpswap_session *s, struct region_table *t, uint32_t max_regions);
void rt_fini(struct thpswap_session *s, struct region_table *t);
/* The hash table alone (t->lock held, or a table nobody else sees).
 * rt_find: the position of the region containing @addr, or -1; *@probes
 * (if not NULL) says how many slots it looked at.  rt_put: add @addr ->
 * @v; it must not be there, and the table has room (cap >= 2 * max).
 * rt_del: take out the entry at @pos, returning its value. */
long rt_find(const struct region_table *t, uint64_t addr, unsigned *probes);
void rt_put(struct region_table *t, uint64_t addr, uint32_t v);
uint32_t rt_del(struct region_table *t, long pos);
/* Record index of the region containing @addr, or -ENOENT. */
long rt_lookup(struct thpswap_session *s, uint64_t addr);
/* Add regions [start, start+len) in state @st, marked THP_RF_ARRIVING
 * until rt_arrived: the caller registers the range after.  0, -EBUSY,
 * -ENOSPC.  @fresh: the range was just mmap'ed, so a record still there is
 * stale (its UNMAP is being handled right now): wait for it instead of
 * -EBUSY. */
int rt_add(struct thpswap_session *s, uint64_t start, uint64_t len, uint32_t st, bool fresh);
/* The registration of [start, start+len) is in effect: its regions may be
 * evicted from now on. */
void rt_arrived(struct thpswap_session *s, uint64_t start, uint64_t len);
/* The 2 MiB block around @addr, registered memory nobody has made a region
 * (the grown tail of a mapping), becomes one in state @st, marked adopted: a
 * registration of it that comes later takes the record over instead of
 * failing with -EBUSY.  0, -EBUSY, -ENOSPC. */
int rt_adopt(struct thpswap_session *s, uint64_t addr, uint32_t st);
/* Remove the regions in [start, end), dropping their records. */
void rt_remove(struct thpswap_session *s, uint64_t start, uint64_t end);
void rt_release(struct thpswap_session *s, uint32_t i);
/* Wait until no eviction or restore owns @r; returns its state. */
uint32_t rec_wait_stable(struct thpswap_session *s, struct thp_record *r);
/* Re-key regions moved by mremap. */
void rt_move(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len);

/* Is the 2 MiB at @addr (a region or a slot) mapped by one PMD? */
static inline bool is_pmd_mapped(struct thpswap_session *s, uint64_t addr)
{
	return thp_pagemap_count_pmd(s->pagemap, addr, addr + REGION) == 1;
}

/*
 * Does the VMA at @addr (2 MiB-aligned) take no THP (MADV_NOHUGEPAGE, or
 * THP disabled for the process)?  MADV_COLLAPSE checks that first and says
 * EINVAL; over one page of an aligned address it collapses nothing.  It
 * drains the kernel's per-CPU LRU caches first (12 us idle here, some
 * hundreds busy): only for regions that are not one PMD already.
 */
static inline bool takes_no_thp(uint64_t addr)
{
	return madvise((void *)(uintptr_t)addr, THP_PAGE_SIZE, MADV_COLLAPSE) && errno == EINVAL;
}

/* ---- scratch (scratch.c) ---- */
int scratch_init(struct thpswap_session *s, unsigned pool, unsigned staging, uint64_t idle_ns);
void scratch_fini(struct thpswap_session *s);
/* Take a pool slot: @want_full for a pre-faulted THP (restore), else an
 * empty one.  Never fails: falls back to the other kind. Returns the
 * slot address; *full says what it holds. */
char *slot_get(struct thpswap_session *s, bool want_full, bool *full);
/* Return a slot: @full if it still holds a THP. */
void slot_put(struct thpswap_session *s, char *slot, bool full);
/* Drop whatever a slot holds, page table included.  No event for a pool
 * slot; a staging slot still holding a THP raises a REMOVE (not from the
 * fault thread, then). */
void slot_zap(struct thpswap_session *s, char *slot);
/* An empty staging slot (waits for one). */
char *stage_get(struct thpswap_session *s);
/* Empty a staging slot by moving what it holds into a pool slot, which the
 * pool keeps if @keep, it is a whole THP and the pool is short. */
void stage_put(struct thpswap_session *s, char *stage, bool keep);
/* Make an empty slot hold a fresh THP (write-fault it).  0 or -errno. */
int slot_fill(struct thpswap_session *s, char *slot);
/* Fill empty slots up to the pool target (worker context). */
void scratch_refill(struct thpswap_session *s);
/* Give the pool back once the client has been idle for idle_ns, and count
 * THP_C_AGENT_BYTES (background thread).  The ns until it wants to look
 * again (at most a second), or 0 when nothing is left to give back. */
uint64_t scratch_trim(struct thpswap_session *s);

/* ---- region operations (region-ops.c) ---- */
/*
 * Hold the region uffd's events still around an ioctl on a region (other
 * threads than the fault thread): with zap_lock held the fault thread reads
 * nothing, and u_done == u_read says that everything it has read is
 * handled, so every record's address is where its region is now.  An
 * event the kernel has sent but nobody has read fails the ioctl with
 * EAGAIN (mmap_changing): release, yield, hold again.  Without the hold a
 * MOVE could take, or fill, whatever an unhandled mremap has just put at
 * a record's old address.
 *
 * Unless @wait, returns false (holding nothing) while the fault thread is
 * inside an event handler: that handler may be waiting for the caller's
 * record, so the caller backs out instead of waiting for it.
 */
bool events_hold(struct thpswap_session *s, bool wait);
void events_release(struct thpswap_session *s);
/* An ioctl on the region uffd failed with EAGAIN and no progress: an event
 * is pending.  The fault thread reads it (s->read_events), anyone else lets
 * it. */
void let_events_drain(struct thpswap_session *s);
/* Has an event read while the fault thread's restore of @idx waited taken
 * its region away (see struct owned)?  Whatever is at its address now is
 * not this record's to fill. */
bool region_gone(struct thpswap_session *s, uint32_t idx);
/* How move_in moves. */
enum {
	MOVE_IN_WAIT = 1,   /* wait for the fault thread (see below) */
	MOVE_IN_STAGED = 2, /* @src is what an eviction moved out of the region
			     * (4 KiB pages and holes, or a THP): put back as
			     * it is, holes staying holes */
};
/* Move @src (a slot holding the region's bytes) into record @idx's region
 * on the region uffd, with events held, retrying while events are pending.
 * Unless MOVE_IN_WAIT, -EDEADLK before anything moved if the fault thread
 * is handling an event (see events_hold): the caller keeps the bytes
 * elsewhere.  Never wakes: the caller makes the record true first, then
 * wakes the faulters, so that a thread resuming from its fault sees
 * consistent state and statistics. */
int move_in(struct thpswap_session *s, uint32_t idx, uint64_t src, unsigned how);
/* The zero-page PTEs of the region at @addr become pages of their own
 * (MADV_POPULATE_WRITE of just those ranges: zeros, what they read already),
 * which MADV_COLLAPSE takes where it refuses zero pages (registered memory).
 * Holes are left alone: a range the scan found a zero page in and that is
 * a hole by the write (zapped, or another region moved there) faults to the
 * fault thread like any access. */
void own_zero_pages(struct thpswap_session *s, uint64_t addr);
/* After a MOVE in: the record is RESIDENT; bits noted since are for zaps
 * that land on the resident memory. */
void became_resident(struct thpswap_session *s, uint32_t idx);
/* MOVE record @r's THP out to staging @slot (see the definition).  0 with
 * the region empty; else -errno and *moved what left anyway (-EBUSY: not
 * exclusive, shared with a fork child now or before). */
int move_out(struct thpswap_session *s, struct thp_record *r, char *slot, int64_t *moved);
/* After a fork: make the THP at @addr exclusive again if no child maps it
 * any more.  Never while owning a record (it may fault).  true if done. */
bool unshare_after_fork(struct thpswap_session *s, uint64_t addr);
/* The same for a region that cannot be one PMD: its 4 KiB pages, holes
 * and all. */
int move_out_pages(struct thpswap_session *s, struct thp_record *r, char *slot, int64_t *moved);
/* Does record @r come back in 4 KiB pages (its mapping takes no THP, by
 * the kind its last eviction noted)?  move_in copies them then. */
bool restores_in_pages(const struct thp_record *r);
/* Put the first @len bytes of @slot back into @r's region; unless @wait,
 * -EDEADLK rather than wait for the fault thread, the slot then holding
 * what is not back (see the definition). */
int put_back_part(struct thpswap_session *s, struct thp_record *r, char *slot, uint64_t len,
		  bool wait);

/* ---- restore (restore.c) ---- */
/* Serve a fault on record @idx (fault thread only). */
int restore_region(struct thpswap_session *s, uint32_t idx, uint64_t fault_addr,
		   bool write, struct thp_codec *codec);
/* Decompress record @i into @buf with its pending zaps applied (fault
 * thread: its codec).  False if the stored bytes do not decode. */
bool decode_record(struct thpswap_session *s, uint32_t i, char *buf);

/* The fault thread's restore of record @idx if the caller is the fault
 * thread and that restore is in progress, else NULL: the one way to
 * consult s->restoring. */
static inline struct owned *fault_owned(struct thpswap_session *s, uint32_t idx)
{
	struct owned *o = agent_is_fault_thread(s) ? s->restoring : NULL;

	return o && o->idx == idx ? o : NULL;
}

/* ---- eviction (evict.c) ---- */
enum evict_result { EV_EVICTED, EV_SKIPPED, EV_FAILED };
/* Note the static memory eviction reads (the zeros) as the agent's own. */
int evict_note_own(struct thpswap_session *s);
void evict_forget_own(struct thpswap_session *s);
enum evict_result evict_region(struct thpswap_session *s, uint32_t idx,
			       struct thp_codec *codec, char *buf, uint64_t *bytes_in,
			       uint64_t *bytes_stored);
/* evict_region, or the kernel's swap for what does not compress where the
 * daemon chose the kernel tier (THP_TIER_KERNEL). */
enum evict_result evict_to_tier(struct thpswap_session *s, uint32_t idx, struct thp_codec *codec,
				char *buf, uint64_t *bytes_in, uint64_t *bytes_stored);

/* ---- the kernel tier (kswap.c) ---- */
/* Hand record @idx's region to the kernel's swap (MADV_PAGEOUT), marked
 * THP_RF_KSWAP for the scan; it stays RESIDENT.  1 paged out, 0 left alone
 * (not resident, pinned, being evicted or unregistered, nothing the kernel
 * would take), -ENOSPC no swap device (counted kswap_noswap), or -errno. */
int kswap_pageout(struct thpswap_session *s, uint32_t idx);
/* Before an eviction of record @idx (evict_region's callers): on a kernel
 * with PMD swap entries, bring a marked region's PMD back by one touch;
 * 4 KiB swap entries are the evictor's (it counts them as data). */
void kswap_swapin(struct thpswap_session *s, uint32_t idx);
/* Background thread: if a scan is due, collapse the marked regions that
 * came back in 4 KiB pages.  Returns ns until the next scan, 0 for none. */
uint64_t kswap_scan(struct thpswap_session *s);

/* ---- write tracking (track.c) ---- */
/* At open: protect every @ms (the daemon's track_ms, or THPSWAP_TRACK_MS);
 * 0 off. */
void track_init(struct thpswap_session *s, unsigned ms);
/* UFFDIO_REGISTER of [start, start+len) on the region uffd: for missing
 * faults, and for write-protect faults too while tracking is on (a kernel
 * that refuses that turns it off for the session).  0 or -errno. */
int track_register(struct thpswap_session *s, uint64_t start, uint64_t len);
/* Fault thread: a write to a protected region at @addr.  Marks its record
 * WRITTEN, lifts the protection from its 2 MiB and wakes the writer. */
void track_fault(struct thpswap_session *s, uint64_t addr);
/* An evictor that claimed record @idx (THP_RF_EVICTOR): lift the
 * protection before it collapses or populates the region (a write fault
 * there would need the fault thread).  false: events busy, not lifted:
 * leave the region for now. */
bool track_lift(struct thpswap_session *s, uint32_t idx);
/* Background thread: if due, protect every resident region.  Returns ns
 * until the next time, 0 if tracking is off. */
uint64_t track_scan(struct thpswap_session *s);

/* ---- the file tier (ftier.c) ---- */
/*
 * Open the session's tier file if THPSWAP_FILE_TIER asks for one (session
 * open, before the agent starts).  Never fails the session: a tier that
 * cannot be had is said once on stderr, counted in file_errors, and off.
 * ftier_close frees what it made (session_free; NULL-safe).
 */
void ftier_open(struct thpswap_session *s);
void ftier_close(struct thpswap_session *s);
/* Background thread: move RAM records old enough (or the oldest, while the
 * RAM tier is over its budget) to the file.  ns until the next scan, 0 for
 * none (the tier is off). */
uint64_t ftier_scan(struct thpswap_session *s);
/* Does record @i hold its stored bytes in the file? */
bool ftier_holds(const struct thpswap_session *s, uint32_t i);
/* Will the file tier take records now (on, its writes not broken)?  Then
 * an eviction stores what does not compress raw, and it moves at once. */
bool ftier_takes(const struct thpswap_session *s);
/*
 * The stored bytes of record @i, wherever they are: a pointer into the
 * arena slot, or for a file record the file's bytes read into the fault
 * thread's buffer and verified against r->checksum (fault thread only).
 * NULL if they cannot be read or do not verify (counted file_bad_reads).
 */
const char *rec_stored_bytes(struct thpswap_session *s, uint32_t i, uint32_t len);
/* Free record @i's range of the file, if it has one (whoever frees its
 * stored bytes: slot_punch). */
void ftier_free(struct thpswap_session *s, uint32_t i);

/* ---- workers (workers.c) ---- */
void *worker_main(void *arg);
/* A job the daemon's next request can go into, or NULL. */
struct evict_job *free_job(struct thpswap_session *s);
/* Read one request from the daemon; an EVICT goes into @j (fault thread).
 * A hang-up drops the socket and asks the background thread to connect
 * again (session_reconnect) with backoff. */
void on_daemon(struct thpswap_session *s, struct evict_job *j);
/* Ask the helpers to decompress alongside; returns when all frames are
 * done.  Fault thread only (one struct decomp_help per session). */
int decompress_parallel(struct thpswap_session *s, struct thp_codec *codec,
			const struct thp_blob_view *v, char *dst);
void agent_kick_refill(struct thpswap_session *s);
/* Wake the background thread for a kernel-tier scan (kswap_pageout). */
void agent_kick_kswap(struct thpswap_session *s);

/* ---- event intake (events.c) ---- */
/* Read and handle pending region-uffd events (fault thread only; others
 * just retry).  Page faults are queued, not served. */
void agent_drain(struct thpswap_session *s);
/* One message just read (zap_lock held): into u, in kernel order, and its
 * zaps noted. */
void events_intake(struct thpswap_session *s, const struct uffd_msg *m);
/* Handle a FORK, UNMAP or REMAP now (from the front of u, or first when
 * clear_way finds one that must go first); @seq is its place in u
 * (free-running), see on_remap. */
void handle_urgent(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq);
/* App threads: wait until every event read so far is handled (page faults
 * and REMOVEs too), so that addresses looked up next mean what the
 * application means by them. */
void agent_sync(struct thpswap_session *s);
/* App threads, after fork() returned: wait until every FORK read so far is
 * handled, that is its child filled; at once on the fault thread or once
 * the agent stops.  (The child's filled memory must not depend on us: a
 * parent that exits at once, as daemon(3) does, takes its uffd along.) */
void agent_wait_forks(struct thpswap_session *s);
/* Has the kernel changed the mappings in a way whose event we have not
 * read (mmap_changing)? */
bool events_pending(struct thpswap_session *s);
/* Is @addr in a VMA registered with the region uffd?  0, -EAGAIN (an event
 * is pending), -EINVAL (another VMA), -ENOENT (nothing mapped) or -errno. */
int registered_here(struct thpswap_session *s, uint64_t addr);
/* The next page fault or REMOVE to handle, in kernel order: false if none. */
bool events_next(struct thpswap_session *s, struct uffd_msg *m);
bool events_queued(const struct thpswap_session *s);
/* REMOVEs in queue order: drop records wholly zapped while evicted. */
void on_remove(struct thpswap_session *s);

/* ---- fork children (fork.c) ---- */
/* Fill the fork child whose uffd is @cfd, then close it. */
void on_fork(struct thpswap_session *s, int cfd);
/* Fill child @e with the pages of @buf (NULL: poison them) from @k on (see
 * copy_region). */
void early_fill(struct thpswap_session *s, struct early_fork *e, unsigned k, const char *buf);

/* ---- munmap and mremap (remap.c) ---- */
void on_unmap(struct thpswap_session *s, uint64_t start, uint64_t end);
/* @seq: the REMAP's place in u (free-running): what was read after it
 * counts for its copy (see copy_region). */
void on_remap(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t len,
	      unsigned seq);
/* Message @m, at place @seq in u, was read after the REMAP that s->copying
 * is copying for. */
void copy_follow(struct thpswap_session *s, const struct uffd_msg *m, unsigned seq);
/* Copy one page of a misaligned copy to where it is now (see struct
 * page_places), on uffd @fd (ours, or a fork child's with what it zapped in
 * @f), from @src (0: poison it).  0 or -EAGAIN. */
int place_copy(struct thpswap_session *s, int fd, const struct page_places *pp,
	       uint64_t src, const struct forks *f);
/* Can place @i of @pp not hold the page (another mapping is there)? */
bool place_foreign(struct thpswap_session *s, const struct page_places *pp, unsigned i);

#endif
