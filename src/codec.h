/* SPDX-License-Identifier: MIT */
/*
 * Region codec: one 2 MiB region <-> one blob (struct thp_blob, then frames).
 * A region is cut into nframes equal frames compressed independently, each
 * checked on its own (zstd's content checksum; an LZ4 frame carries the hash
 * of its block), so that restore can decompress them on several threads and
 * eviction can be cancelled between frames.  LZ4 decodes about twice as fast
 * as zstd's fastest levels and stores heap-like data as densely; zstd's
 * higher levels store denser still.
 */
#ifndef THPSWAP_CODEC_H
#define THPSWAP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct thp_codec;

/* Where a codec's memory comes from, when not from malloc: @alloc returns
 * @len bytes or NULL, @free takes what it returned.  The agent passes one
 * that notes every allocation as its own, zstd's workspaces included (see
 * lib/own.c). */
struct thp_alloc {
	void *(*alloc)(void *opaque, size_t len);
	void (*free)(void *opaque, void *p);
	void *opaque;
};

/* A per-thread context that compresses with @codec (THP_CODEC_ZSTD at
 * @level, or THP_CODEC_LZ4, @level unused) and decompresses any codec's
 * blobs; allocates everything up front so that compress/decompress never
 * allocate (an agent must not call malloc on a fault path: the faulting
 * thread may hold malloc's lock).  @mem: where all of its memory comes from
 * (copied), or NULL for malloc.  0, -EINVAL (codec or level) or -ENOMEM. */
int thp_codec_new(struct thp_codec **ret, unsigned codec, int level, const struct thp_alloc *mem);
struct thp_codec *thp_codec_free(struct thp_codec *c);

/*
 * Compress the region at @src into @dst (@cap bytes) as a blob of @nframes
 * frames (a power of two, 1..THP_MAX_FRAMES).  Stops early when the blob
 * would exceed @cap.  Between frames, @cancelled(@arg) is asked (if set).
 * Returns the blob length, -ENOSPC (does not fit: not worth storing),
 * -ECANCELED, or -EINVAL.
 */
long thp_codec_compress(struct thp_codec *c, const void *src, void *dst, size_t cap,
			unsigned nframes, bool (*cancelled)(void *), void *arg);

/* Store raw: header + 2 MiB (cap must be >= THP_SLOT_SIZE - 4096 + header). */
long thp_codec_store_raw(const void *src, void *dst, size_t cap);

/* A validated view of a stored blob. */
struct thp_blob_view {
	const unsigned char *base;
	unsigned nframes;
	unsigned codec;
	size_t frame_off[THP_MAX_FRAMES];
	size_t frame_len[THP_MAX_FRAMES];
};

/* Check a blob of @len bytes (untrusted) and fill @v.  0 or -EBADMSG. */
int thp_blob_view(const void *blob, size_t len, struct thp_blob_view *v);

/* Decompress frame @i of @v into its place in the 2 MiB region at @dst.
 * 0, or -EBADMSG when the frame is corrupt (checksum, size). */
int thp_codec_decompress_frame(struct thp_codec *c, const struct thp_blob_view *v,
			       unsigned i, void *dst);

/* "none", "zstd", "lz4", or "unknown": a codec id (enum thp_codec_id) for
 * people. */
const char *thp_codec_name(unsigned codec);

/* True if @len bytes (a multiple of 256) at @p are all zero. */
bool thp_is_zero(const void *p, size_t len);

#endif
