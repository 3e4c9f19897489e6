/* SPDX-License-Identifier: MIT */
/*
 * The arena: one memfd per client session, created and sealed by thpswapd,
 * mapped by both the daemon and the client.  It holds every swap record and
 * every stored byte of that client, so nothing lives only in the daemon's
 * heap: the client serves its own faults from it while the daemon restarts.
 *
 * Layout (offsets in bytes):
 *   0                 struct thp_arena_header (one page)
 *   records_off       struct thp_record[max_regions]
 *   data_off          max_regions slots of THP_SLOT_SIZE (2 MiB + 4 KiB) each
 *
 * Slot i belongs to record i and holds that region's stored bytes (a
 * struct thp_blob header, then the frames).  tmpfs is sparse: a slot costs
 * only the pages written, and freeing punches a hole.  No allocator, no
 * fragmentation, no lock between regions.
 *
 * Writers: the client's agent writes records, slots and counters; the daemon
 * writes only the header's config before handing the arena over.  The daemon
 * reads everything else as untrusted numbers and bounds-checks what it uses.
 */
#ifndef THPSWAP_ARENA_H
#define THPSWAP_ARENA_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define THP_ARENA_MAGIC   0x4150535748544854ULL /* "THTHWSPA" */
#define THP_ARENA_VERSION 3 /* 2: 40 counters; 3: the tiers in the config */
#define THP_REGION_BYTES  (2UL << 20)
/* A raw region plus its blob header must fit. */
#define THP_SLOT_SIZE     (THP_REGION_BYTES + 4096UL)
#define THP_MAX_FRAMES    8

/* Record states.  A record changes state only by compare-and-swap, and the
 * thread whose CAS put it in a transient state (RESTORING, EVICTING) owns
 * it until it moves it out; the transitions are in docs/ARCHITECTURE.md. */
enum thp_state {
	THP_ST_FREE = 0,   /* slot unused */
	THP_ST_ZERO,       /* region empty, reads as zeros; nothing stored */
	THP_ST_RESIDENT,   /* region mapped as memory */
	THP_ST_EVICTING,   /* moved out to staging, being compressed */
	THP_ST_CANCEL,     /* a fault hit EVICTING: the evictor moves it back */
	THP_ST_RAM,        /* region empty, bytes compressed in the slot */
	THP_ST_RESTORING,  /* being brought back */
	THP_ST_POISONED,   /* stored bytes failed verification: SIGBUS */
	THP_ST_EMPTY,      /* never populated (or zapped): reads as zeros */
	THP_ST__MAX
};

enum thp_codec_id {
	THP_CODEC_NONE = 0, /* raw 2 MiB */
	THP_CODEC_ZSTD = 1,
	THP_CODEC_LZ4 = 2,  /* each frame: thp_hash64 of its block, the block */
};

struct thp_record {
	_Atomic uint32_t state;   /* enum thp_state */
	uint32_t flags;           /* THP_RF_* */
	uint64_t addr;            /* region start in the client */
	uint32_t stored_len;      /* bytes used in the slot, blob header incl. */
	uint8_t codec;            /* enum thp_codec_id */
	int8_t level;             /* zstd level used (0 for other codecs) */
	uint8_t nframes;
	uint8_t kind;             /* enum thp_kind: what the agent last found */
	uint64_t checksum;        /* of the stored bytes (thp_hash64) */
	uint64_t last_fault_ns;   /* CLOCK_MONOTONIC; also set when mapped */
	uint64_t evicted_ns;      /* CLOCK_MONOTONIC of the last eviction */
	uint32_t evictions;       /* how often this region was evicted */
	uint32_t restores;
	/* CLOCK_MONOTONIC when the agent first saw a page of a region handed
	 * to the kernel's swap (THP_RF_KSWAP) back in; 0 none yet. */
	uint64_t kswap_ns;
};
_Static_assert(sizeof(struct thp_record) == 64, "record is one cache line");

/*
 * What a region was when the agent last looked at it (record.kind), which
 * decides how it comes back: one PMD-mapped THP where its mapping allows it,
 * else 4 KiB pages.  Set by the evictor from PAGEMAP_SCAN, the VMA and
 * MADV_COLLAPSE, and by a restore the kernel would not map as one THP
 * (NOHUGE); shown by thpswapctl regions.
 */
enum thp_kind {
	THP_KIND_UNKNOWN = 0, /* not looked at yet */
	THP_KIND_PMD,         /* one PMD-mapped THP */
	THP_KIND_PTE,         /* every page there, in 4 KiB pages (a split THP, or
			       * no THP to be had at fault time): collapsed */
	THP_KIND_PARTIAL,     /* some pages never written or zapped: holes
			       * filled with zeros, collapsed */
	THP_KIND_ZERO,        /* no page at all: nothing to move */
	THP_KIND_NOHUGE,      /* its VMA takes no THP (MADV_NOHUGEPAGE, or THP
			       * disabled for the process): evicted and restored
			       * in 4 KiB pages */
	THP_KIND_SPLIT,       /* its 2 MiB is not one VMA (a partial mprotect or
			       * munmap): left resident (evict_split) */
	THP_KIND__MAX
};

#define THP_RF_INCOMPRESSIBLE (1u << 0) /* last eviction found it not worth it */
#define THP_RF_SPLIT          (1u << 1) /* not PMD-mapped when last checked */
#define THP_RF_LEAVING        (1u << 2) /* being unregistered: never evict */
#define THP_RF_PUNCHING       (1u << 3) /* old bytes still being freed from the slot */
#define THP_RF_MOVING         (1u << 4) /* mremap'ed away: its copy frees it, not the UNMAP */
#define THP_RF_REMOVED        (1u << 5) /* MADV_DONTNEED/FREE read while being evicted */
#define THP_RF_EVICTOR        (1u << 6) /* an eviction has it (one at a time) */
#define THP_RF_ADOPTED        (1u << 7) /* made by a fault on unmanaged registered memory */
#define THP_RF_PINNED         (1u << 8) /* never evict (thpswap_pin, or thpswapctl pin: the
					 * daemon sets and clears only this bit, atomically) */
#define THP_RF_KSWAP          (1u << 9) /* handed to the kernel's swap, not one PMD again yet
					 * (lib/kswap.c); a hint: the region stays RESIDENT */
#define THP_RF_FILE           (1u << 10) /* RAM record whose stored bytes are in the file tier
					  * (lib/ftier.c), not in its arena slot */
#define THP_RF_ARRIVING       (1u << 11) /* made by a registration not in effect yet: never
					  * evict (emptied, its memory would read zeros, not fault) */
#define THP_RF_WRITTEN        (1u << 12) /* written since write tracking last protected it */
#define THP_RF_WROTE          (1u << 13) /* written in the interval before that (the daemon
					  * reads either as "written lately", lib/track.c) */

/* At the start of a used slot. Frame i decompresses to 2 MiB / nframes. */
struct thp_blob {
	uint32_t magic;                 /* THP_BLOB_MAGIC */
	uint16_t nframes;
	uint16_t codec;
	uint32_t clen[THP_MAX_FRAMES];  /* compressed length of each frame */
};
#define THP_BLOB_MAGIC 0x424c4254u /* "TBLB" */

enum thp_incompressible_policy {
	THP_INCOMP_KEEP = 0, /* leave resident (it frees nothing in RAM) */
	THP_INCOMP_RAW = 1,  /* store raw, never expanded */
};

/* Written by the daemon before the client maps the arena. */
struct thp_arena_config {
	int32_t zstd_level;
	uint32_t frames;          /* frames per region, 1..THP_MAX_FRAMES */
	uint32_t incompressible;  /* enum thp_incompressible_policy */
	uint32_t max_stored_pct;  /* store only if compressed <= this % of 2 MiB */
	uint32_t pool_slots;      /* pre-faulted THPs the agent keeps */
	uint32_t codec;           /* enum thp_codec_id evictions compress with;
				   * 0 (a daemon before LZ4): zstd */
	uint32_t tiers;           /* THP_TIER_* the daemon chose */
	uint32_t file_max_mb;     /* the file tier (THP_TIER_FILE; its file comes */
	uint32_t file_age_ms;     /* with WELCOME): cap, age that moves a record, */
	uint32_t file_ram_mb;     /* RAM over which the oldest move (0 none) */
};

/* Tiers beyond zero and RAM, which every session has. */
#define THP_TIER_FILE (1u << 0)   /* RAM records move to a file (lib/ftier.c) */
#define THP_TIER_KERNEL (1u << 1) /* what the codec cannot shrink goes to the
				   * kernel's swap (lib/kswap.c) */

/* Counters, in thpswap_stats order so the public struct maps 1:1. */
enum thp_counter {
	THP_C_REGIONS = 0,
	THP_C_RESIDENT,
	THP_C_EVICTED_ZERO,
	THP_C_EVICTED_RAM,
	THP_C_STORED_BYTES,
	THP_C_EVICTIONS,
	THP_C_RESTORES,
	THP_C_RESTORES_PMD,
	THP_C_FAULTS,
	THP_C_EVICT_CANCELLED,
	THP_C_EVICT_INCOMPRESSIBLE,
	THP_C_EVICT_REFUSED,
	THP_C_SPLIT_REPAIRED,
	THP_C_SPLIT_LEFT,
	THP_C_EAGAIN_RETRIES,
	THP_C_FALLBACK_4K,
	THP_C_CORRUPT,
	/* not in the public struct (yet): */
	THP_C_BYTES_IN,           /* uncompressed bytes evicted to RAM */
	THP_C_EVICT_NS,           /* time spent evicting */
	THP_C_COPY_CHILD,         /* regions of a fork child filled by COPY */
	THP_C_POOL_MISS,          /* a restore found no pre-faulted THP */
	/* Why an eviction left a resident region alone (besides refused,
	 * incompressible and cancelled above): */
	THP_C_EVICT_ZAP_PENDING,  /* a MADV_DONTNEED/FREE read may not have landed */
	THP_C_EVICT_BUSY,         /* being unregistered, or an mremap/munmap/fork of
				   * it was being handled: try again later */
	THP_C_EVICT_SPLIT,        /* could not be made one PMD: its 2 MiB is not one
				   * VMA (mprotect or munmap of part of it) */
	THP_C_EVICT_FILLED,       /* holes filled with zeros and collapsed first */
	THP_C_ADOPT_LEFT_OUT,     /* 2 MiB blocks adoption found no room for in the
				   * region table at its last look (lib/adopt.c) */
	THP_C_EVICT_4K,           /* evicted in 4 KiB pages: its VMA takes no THP, or
				   * none was to be had for a collapse */
	THP_C_AGENT_BYTES,        /* gauge: memory the agent itself holds resident
				   * (pool, staging, tables, codec workspaces) */
	THP_C_RECONNECTS,         /* sessions a new daemon adopted after the one
				   * before went away (RESUME, lib/session.c) */
	/* The kernel tier (lib/kswap.c): */
	THP_C_KSWAP_OUT,          /* regions handed to the kernel's swap (MADV_PAGEOUT) */
	THP_C_KSWAP_COLLAPSED,    /* ... found back in 4 KiB pages and collapsed into one PMD */
	THP_C_KSWAP_COLLAPSE_NS,  /* time from a first page seen back to PMD-mapped, summed */
	THP_C_KSWAP_NOSWAP,       /* refused: no swap device in /proc/swaps */
	THP_C_KSWAP_DROPPED,      /* flag dropped without a collapse of ours: back as one
				   * PMD by other means, evicted, zapped, or no THP there */
	/* The file tier (lib/ftier.c): */
	THP_C_FILE_DEMOTED,       /* RAM records moved to the file */
	THP_C_FILE_RESTORED,      /* regions restored from the file */
	THP_C_FILE_BYTES,         /* gauge: stored bytes in the file (not in stored_bytes) */
	THP_C_FILE_FULL,          /* demotions refused: the cap or the file system full */
	THP_C_FILE_ERRORS,        /* demotions failed otherwise (I/O, no ring; the tier
				   * asked for and not built or not opened) */
	THP_C_FILE_BAD_READS,     /* reads of the file that failed or did not verify:
				   * the region poisoned (also counted in corrupt) */
	THP_C__MAX
};

/* Restore latency histograms: fault read -> wake, per kind. */
enum thp_hist {
	THP_H_ZERO_READ = 0,
	THP_H_ZERO_WRITE,
	THP_H_RAM,
	THP_H_EVICT,              /* eviction time per region */
	THP_H__MAX
};
/* Log-linear buckets: 4 per power of two, from 1 µs; bucket 0 is < 1 µs. */
#define THP_HIST_BUCKETS 96

#define THP_ARENA_COUNTERS 40
_Static_assert(THP_C__MAX <= THP_ARENA_COUNTERS, "counter space");

struct thp_arena_header {
	uint64_t magic;
	uint32_t version;
	uint32_t max_regions;
	uint64_t records_off;
	uint64_t data_off;
	uint64_t size;             /* the memfd's size */
	int32_t client_pid;
	/* Write tracking (lib/track.c): the daemon's interval for it, 0 off
	 * (padding before it was added: an older daemon's arena reads 0). */
	uint32_t track_ms;
	struct thp_arena_config cfg;
	_Atomic uint64_t ctr[THP_ARENA_COUNTERS];
	_Atomic uint64_t hist[THP_H__MAX][THP_HIST_BUCKETS];
};
_Static_assert(sizeof(struct thp_arena_header) <= 4096, "header is one page");

/* The geometry for @max_regions: fills the offsets and size. */
void thp_arena_layout(struct thp_arena_header *h, uint32_t max_regions);

/* Check a header read from an untrusted mapping of @map_size bytes. */
int thp_arena_validate(const struct thp_arena_header *h, size_t map_size);

/* This process's arena memfd, as the daemon named it for this pid (bench
 * and tests, which look at what the agent wrote): its descriptor (the last
 * found, *@count of them) or -ENOENT. */
int thp_arena_self_fd(int *count);

/* The seals every arena carries: it never grows nor shrinks under a reader. */
#define THP_ARENA_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/*
 * Check an arena memfd a peer handed over (a client's RESUME): a memfd with
 * THP_ARENA_SEALS whose header (read into *@h with pread, never mapped)
 * passes thp_arena_validate and whose size is the one its layout gives.
 * 0, or -errno with the reason in @why: -EBADF (not a sealed memfd),
 * -EPROTO (another magic or version), -EBADMSG (layout or size wrong).
 */
int thp_arena_check_fd(int fd, struct thp_arena_header *h, char *why, size_t whysz);

static inline struct thp_record *thp_arena_records(void *base)
{
	const struct thp_arena_header *h = base;
	return (struct thp_record *)((char *)base + h->records_off);
}

static inline uint64_t thp_arena_slot_off(const struct thp_arena_header *h, uint32_t i)
{
	return h->data_off + (uint64_t)i * THP_SLOT_SIZE;
}

/* Histogram bucket of a latency in nanoseconds, and a bucket's upper bound. */
unsigned thp_hist_bucket(uint64_t ns);
uint64_t thp_hist_bucket_ceil_ns(unsigned bucket);
/* The @pct percentile (0..100) of a histogram, as a bucket's upper bound. */
uint64_t thp_hist_percentile_ns(const _Atomic uint64_t *hist, double pct);

const char *thp_state_name(enum thp_state st);
/* "pmd", "pte", ... for a kind; "-" for UNKNOWN, "?" for a value beyond
 * this build's (an arena's bytes are untrusted numbers). */
const char *thp_kind_name(unsigned kind);

#endif
