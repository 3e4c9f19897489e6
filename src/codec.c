/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
/* For ZSTD_customMem and the contexts created with it (exported by the
 * shared library since zstd 1.0). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>
#include <lz4.h>

#include "codec.h"
#include "hash.h"

/*
 * An LZ4 frame is the 64-bit hash (thp_hash64) of its block, then the block:
 * a block has no checksum of its own, and the hash is checked before the
 * block is decoded, on whichever thread decodes that frame.
 */
#define LZ4_HASH_BYTES sizeof(uint64_t)

struct thp_codec {
	unsigned codec;    /* what compress writes: THP_CODEC_ZSTD or _LZ4 */
	ZSTD_CCtx *cctx;   /* zstd only */
	void *lz4_state;   /* lz4 only */
	ZSTD_DCtx *dctx;   /* any codec decodes every codec's blobs */
	int level;
	struct thp_alloc mem;
};

static void *libc_alloc(void *opaque, size_t len)
{
	(void)opaque;
	return malloc(len);
}

static void libc_free(void *opaque, void *p)
{
	(void)opaque;
	free(p);
}

static const struct thp_alloc libc_mem = { .alloc = libc_alloc, .free = libc_free };

static void mem_free(const struct thp_alloc *mem, void *p)
{
	if (p)
		mem->free(mem->opaque, p);
}

struct thp_codec *thp_codec_free(struct thp_codec *c)
{
	if (c) {
		struct thp_alloc mem = c->mem;

		ZSTD_freeCCtx(c->cctx);
		ZSTD_freeDCtx(c->dctx);
		mem_free(&mem, c->lz4_state);
		mem_free(&mem, c);
	}
	return NULL;
}

/* Write a 2 MiB pattern and compress and decompress it once, so that later
 * calls with the same parameters reuse the workspaces instead of allocating. */
static int warm_up(struct thp_codec *c)
{
	const struct thp_alloc *mem = &c->mem;
	size_t cap = ZSTD_compressBound(THP_REGION_BYTES);
	char *warm = mem->alloc(mem->opaque, THP_REGION_BYTES);
	char *out = mem->alloc(mem->opaque, cap);
	struct thp_blob_view v;
	long n = -ENOMEM;

	if (warm && out) {
		memset(warm, 0, THP_REGION_BYTES);
		for (size_t i = 0; i < THP_REGION_BYTES; i += 64)
			warm[i] = (char)(i * 2654435761u >> 13);
		n = thp_codec_compress(c, warm, out, cap, 1, NULL, NULL);
		if (n > 0 && c->codec == THP_CODEC_LZ4)
			n = 0; /* LZ4 decodes without a workspace */
		else if (n > 0)
			n = (thp_blob_view(out, (size_t)n, &v) ||
			     thp_codec_decompress_frame(c, &v, 0, warm)) ? -ENOMEM : 0;
	}
	mem_free(mem, warm);
	mem_free(mem, out);
	return n < 0 ? -ENOMEM : 0;
}

int thp_codec_new(struct thp_codec **ret, unsigned codec, int level, const struct thp_alloc *mem)
{
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_compressionLevel);
	struct thp_codec *c;
	ZSTD_customMem zmem;

	if (codec == THP_CODEC_ZSTD &&
	    (ZSTD_isError(b.error) || level < b.lowerBound || level > b.upperBound))
		return -EINVAL;
	if (codec != THP_CODEC_ZSTD && codec != THP_CODEC_LZ4)
		return -EINVAL;
	if (!mem)
		mem = &libc_mem;
	c = mem->alloc(mem->opaque, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->codec = codec;
	c->level = level;
	c->mem = *mem;
	zmem = (ZSTD_customMem){ .customAlloc = mem->alloc, .customFree = mem->free,
				 .opaque = mem->opaque };
	c->dctx = ZSTD_createDCtx_advanced(zmem);
	if (codec == THP_CODEC_ZSTD)
		c->cctx = ZSTD_createCCtx_advanced(zmem);
	else
		c->lz4_state = mem->alloc(mem->opaque, (size_t)LZ4_sizeofState());
	if (!c->dctx || (!c->cctx && !c->lz4_state))
		goto nomem;
	if (c->cctx &&
	    (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level)) ||
	     ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1)) ||
	     ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1)))) {
		thp_codec_free(c);
		return -EINVAL;
	}
	if (warm_up(c))
		goto nomem;
	*ret = c;
	return 0;
nomem:
	thp_codec_free(c);
	return -ENOMEM;
}

/* Compress one frame of @flen bytes into @dst (@cap bytes): its length, or
 * -ENOSPC (does not fit), or -EINVAL. */
static long compress_frame(struct thp_codec *c, const char *src, size_t flen, char *dst, size_t cap)
{
	if (c->codec == THP_CODEC_LZ4) {
		uint64_t h;
		int n;

		if (cap <= LZ4_HASH_BYTES)
			return -ENOSPC;
		n = LZ4_compress_fast_extState(c->lz4_state, src, dst + LZ4_HASH_BYTES, (int)flen,
					       (int)(cap - LZ4_HASH_BYTES > INT32_MAX ? INT32_MAX
									     : cap - LZ4_HASH_BYTES), 1);
		if (n <= 0)
			return -ENOSPC;
		h = thp_hash64(dst + LZ4_HASH_BYTES, (size_t)n);
		memcpy(dst, &h, sizeof(h));
		return (long)LZ4_HASH_BYTES + n;
	}
	size_t r = ZSTD_compress2(c->cctx, dst, cap, src, flen);

	if (ZSTD_isError(r))
		return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EINVAL;
	return (long)r;
}

long thp_codec_compress(struct thp_codec *c, const void *src, void *dst, size_t cap,
			unsigned nframes, bool (*cancelled)(void *), void *arg)
{
	struct thp_blob *h = dst;
	size_t off = sizeof(*h), flen;

	if (nframes < 1 || nframes > THP_MAX_FRAMES || (nframes & (nframes - 1)) || cap < off)
		return -EINVAL;
	flen = THP_REGION_BYTES / nframes;
	memset(h, 0, sizeof(*h));
	for (unsigned i = 0; i < nframes; i++) {
		long r;

		if (cancelled && cancelled(arg))
			return -ECANCELED;
		r = compress_frame(c, (const char *)src + (size_t)i * flen, flen, (char *)dst + off,
				   cap - off);
		if (r < 0)
			return r;
		h->clen[i] = (uint32_t)r;
		off += (size_t)r;
	}
	h->magic = THP_BLOB_MAGIC;
	h->nframes = (uint16_t)nframes;
	h->codec = (uint16_t)c->codec;
	return (long)off;
}

long thp_codec_store_raw(const void *src, void *dst, size_t cap)
{
	struct thp_blob *h = dst;

	if (cap < sizeof(*h) + THP_REGION_BYTES)
		return -ENOSPC;
	memset(h, 0, sizeof(*h));
	h->magic = THP_BLOB_MAGIC;
	h->nframes = 1;
	h->codec = THP_CODEC_NONE;
	h->clen[0] = THP_REGION_BYTES;
	memcpy(h + 1, src, THP_REGION_BYTES);
	return (long)(sizeof(*h) + THP_REGION_BYTES);
}

int thp_blob_view(const void *blob, size_t len, struct thp_blob_view *v)
{
	struct thp_blob h;
	size_t off = sizeof(h);

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, blob, sizeof(h)); /* one read of untrusted shared memory */
	if (h.magic != THP_BLOB_MAGIC || h.nframes < 1 || h.nframes > THP_MAX_FRAMES ||
	    (h.nframes & (h.nframes - 1)))
		return -EBADMSG;
	if (h.codec == THP_CODEC_NONE ? (h.nframes != 1 || h.clen[0] != THP_REGION_BYTES)
				      : (h.codec != THP_CODEC_ZSTD && h.codec != THP_CODEC_LZ4))
		return -EBADMSG;
	v->base = blob;
	v->nframes = h.nframes;
	v->codec = h.codec;
	for (unsigned i = 0; i < h.nframes; i++) {
		if (h.clen[i] == 0 || h.clen[i] > len - off)
			return -EBADMSG;
		v->frame_off[i] = off;
		v->frame_len[i] = h.clen[i];
		off += h.clen[i];
	}
	return off == len ? 0 : -EBADMSG;
}

int thp_codec_decompress_frame(struct thp_codec *c, const struct thp_blob_view *v,
			       unsigned i, void *dst)
{
	size_t flen = THP_REGION_BYTES / v->nframes, r;
	char *out = (char *)dst + (size_t)i * flen;

	if (i >= v->nframes)
		return -EINVAL;
	if (v->codec == THP_CODEC_NONE) {
		memcpy(out, v->base + v->frame_off[0], THP_REGION_BYTES);
		return 0;
	}
	if (v->codec == THP_CODEC_LZ4) {
		const unsigned char *f = v->base + v->frame_off[i];
		size_t blen = v->frame_len[i] - LZ4_HASH_BYTES;
		uint64_t h;

		if (v->frame_len[i] <= LZ4_HASH_BYTES || blen > INT32_MAX)
			return -EBADMSG;
		memcpy(&h, f, sizeof(h));
		if (h != thp_hash64(f + LZ4_HASH_BYTES, blen))
			return -EBADMSG;
		return LZ4_decompress_safe((const char *)f + LZ4_HASH_BYTES, out, (int)blen,
					   (int)flen) == (int)flen ? 0 : -EBADMSG;
	}
	r = ZSTD_decompressDCtx(c->dctx, out, flen, v->base + v->frame_off[i], v->frame_len[i]);
	return (ZSTD_isError(r) || r != flen) ? -EBADMSG : 0;
}

const char *thp_codec_name(unsigned codec)
{
	switch (codec) {
	case THP_CODEC_NONE: return "none";
	case THP_CODEC_ZSTD: return "zstd";
	case THP_CODEC_LZ4: return "lz4";
	default: return "unknown";
	}
}

bool thp_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;

	/* Early exit per 256 bytes; most non-zero regions fail in the first. */
	for (size_t i = 0; i < len / 8; i += 32) {
		uint64_t acc = 0;

		for (unsigned k = 0; k < 32; k++)
			acc |= w[i + k];
		if (acc)
			return false;
	}
	return true;
}
