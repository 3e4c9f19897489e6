/* SPDX-License-Identifier: MIT */
/*
 * libthpswap — keep transparent huge pages whole across swap.
 *
 * A process opens a session with thpswapd, maps (or registers) anonymous
 * memory in 2 MiB regions, and goes on using it.  thpswapd decides which
 * regions are cold and has them evicted; an agent thread inside this library
 * moves each region out as a whole huge page, stores it (zero or zstd in a RAM
 * arena shared with the daemon) and, on the next touch, serves the fault with
 * one whole PMD-mapped huge page, every byte intact.
 *
 * Conventions: every function returns 0 (or a positive count) on success and a
 * negative errno on failure; outputs are untouched on failure; the library is
 * thread-safe and never prints.
 */
#ifndef THPSWAP_THPSWAP_H
#define THPSWAP_THPSWAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The unit of everything: one PMD-mapped transparent huge page. */
#define THPSWAP_REGION_SIZE ((size_t)2 << 20)

/* The daemon's socket; the environment variable THPSWAP_SOCKET overrides it. */
#define THPSWAP_DEFAULT_SOCKET "/run/thpswap/control.sock"

struct thpswap_session;

/**
 * thpswap_open - connect to thpswapd and start this process's agent.
 * @ret: the new session, on success.
 * @socket_path: the daemon's socket, or NULL for $THPSWAP_SOCKET, else
 *               THPSWAP_DEFAULT_SOCKET.
 *
 * Creates the process's userfaultfds (through /dev/userfaultfd, else the
 * syscall), hands them to the daemon, maps the shared arena and starts the
 * agent thread.  A process should hold one session.
 *
 * Returns 0, or -EINVAL (@ret is NULL), -ENAMETOOLONG (socket path too
 * long), -ENOENT/-ECONNREFUSED (no daemon), -EACCES (no access to
 * /dev/userfaultfd and no privilege for userfaultfd(2)), -EPROTO (daemon
 * speaks another protocol version), -ENOTSUP (kernel lacks a userfaultfd
 * event the agent needs), -ENOMEM, -ECANCELED (the process opted out:
 * THPSWAP_DISABLE is set to 1, yes or true; nothing is opened).
 */
int thpswap_open(struct thpswap_session **ret, const char *socket_path);

/**
 * thpswap_close - restore every evicted region, release all managed memory
 * registrations (the memory stays mapped and intact) and end the session.
 * Returns 0 or -errno; the session is freed in either case.
 */
int thpswap_close(struct thpswap_session *s);

/**
 * thpswap_map - map @len bytes of managed anonymous memory.
 * @len: a multiple of THPSWAP_REGION_SIZE.
 * @ret_addr: the 2 MiB-aligned address, on success.
 *
 * The memory reads as zeros until written, like mmap(MAP_ANONYMOUS).
 * Returns 0, -EINVAL (bad length), -ENOMEM, -ENOSPC (session's region table
 * is full).
 */
int thpswap_map(struct thpswap_session *s, size_t len, void **ret_addr);

/**
 * thpswap_unmap - unmap memory obtained from thpswap_map (whole mappings or
 * 2 MiB-aligned parts of them), dropping any evicted copy.
 * Returns 0, -EINVAL (not a managed range or not 2 MiB-aligned).
 */
int thpswap_unmap(struct thpswap_session *s, void *addr, size_t len);

/**
 * thpswap_register - manage existing private anonymous memory.
 * @addr, @len: 2 MiB-aligned, a multiple of 2 MiB, inside one private
 *              anonymous writable mapping.
 *
 * The range is made THP-eligible (MADV_HUGEPAGE); partly populated regions
 * are collapsed into huge pages where the kernel can.  Contents are kept.
 * Returns 0, -EINVAL (not aligned, or not private anonymous memory), -EBUSY
 * (already registered, here or on another userfaultfd), -ENOSPC.
 */
int thpswap_register(struct thpswap_session *s, void *addr, size_t len);

/**
 * thpswap_unregister - stop managing a range: evicted regions are restored
 * first, so the memory stays intact and becomes ordinary memory again.
 */
int thpswap_unregister(struct thpswap_session *s, void *addr, size_t len);

enum thpswap_advice {
	THPSWAP_ADVICE_COLD = 1,     /* evict these regions now */
	THPSWAP_ADVICE_WILLNEED = 2, /* restore these regions now */
	THPSWAP_ADVICE_PAGEOUT = 3,  /* hand these regions to the kernel's swap */
};

/**
 * thpswap_advise - evict or prefetch the managed regions that overlap
 * [@addr, @addr+@len).  Synchronous: on return the work is done.
 * Returns the number of regions acted on, or -errno.
 */
int thpswap_advise(struct thpswap_session *s, void *addr, size_t len,
		   enum thpswap_advice advice);

/**
 * thpswap_pin - never evict the managed regions that overlap
 * [@addr, @addr+@len): an evicted one is brought back first, an eviction
 * under way is waited for, and from then on every eviction of them (the
 * daemon's, thpswap_advise's) is refused and counted in evict_refused.
 * A region unmapped or unregistered loses its pin.  thpswapctl pin does the
 * same from outside (without the bringing back).
 * Returns the number of regions pinned, or -EINVAL (@s NULL, @len 0 or the
 * range wraps), -ECHILD (a session of the parent, after fork), or the error
 * of bringing one back (-EFAULT: it cannot be read).
 */
int thpswap_pin(struct thpswap_session *s, void *addr, size_t len);

/**
 * thpswap_unpin - make the managed regions that overlap [@addr, @addr+@len)
 * evictable again (whoever pinned them).  Returns the number of regions,
 * or -EINVAL, -ECHILD.
 */
int thpswap_unpin(struct thpswap_session *s, void *addr, size_t len);

/* Per-session statistics.  Grows only at the end; pass sizeof. */
struct thpswap_stats {
	uint64_t regions;            /* managed regions */
	uint64_t resident;           /* regions mapped as memory now */
	uint64_t evicted_zero;       /* regions evicted as all-zero */
	uint64_t evicted_ram;        /* regions held compressed in RAM */
	uint64_t stored_bytes;       /* compressed bytes held */
	uint64_t evictions;          /* completed evictions */
	uint64_t restores;           /* regions brought back */
	uint64_t restores_pmd;       /* ... of which checked PMD-mapped */
	uint64_t faults;             /* fault messages served */
	uint64_t evict_cancelled;    /* a fault arrived during eviction */
	uint64_t evict_incompressible; /* kept resident: not worth storing */
	uint64_t evict_refused;      /* MOVE refused (shared or pinned) */
	uint64_t split_repaired;     /* restored split, collapsed again */
	uint64_t split_left;         /* restored split, collapse failed */
	uint64_t eagain_retries;     /* ioctls retried after events */
	uint64_t fallback_4k;        /* faults served with 4 KiB pages */
	uint64_t corrupt;            /* records that failed verification */
};

/**
 * thpswap_get_stats - fill @st (of @size bytes, normally sizeof *st).
 * Returns 0 or -EINVAL.
 */
int thpswap_get_stats(struct thpswap_session *s, struct thpswap_stats *st,
		      size_t size);

#ifdef __cplusplus
}
#endif
#endif
