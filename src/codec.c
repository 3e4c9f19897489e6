/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
/* For ZSTD_customMem and the contexts created with it (exported by the
 * shared library since zstd 1.0). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "codec.h"

struct thp_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
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
		mem_free(&mem, c);
	}
	return NULL;
}

int thp_codec_new(struct thp_codec **ret, int level, const struct thp_alloc *mem)
{
	ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_compressionLevel);
	struct thp_codec *c;
	ZSTD_customMem zmem;
	void *warm = NULL, *out = NULL;
	size_t r;

	if (ZSTD_isError(b.error) || level < b.lowerBound || level > b.upperBound)
		return -EINVAL;
	if (!mem)
		mem = &libc_mem;
	c = mem->alloc(mem->opaque, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->level = level;
	c->mem = *mem;
	zmem = (ZSTD_customMem){ .customAlloc = mem->alloc, .customFree = mem->free,
				 .opaque = mem->opaque };
	c->cctx = ZSTD_createCCtx_advanced(zmem);
	c->dctx = ZSTD_createDCtx_advanced(zmem);
	if (!c->cctx || !c->dctx)
		goto nomem;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1))) {
		thp_codec_free(c);
		return -EINVAL;
	}
	/* Warm both contexts at full frame size so that later calls with the
	 * same parameters reuse their workspaces instead of allocating. */
	warm = mem->alloc(mem->opaque, THP_REGION_BYTES);
	out = mem->alloc(mem->opaque, ZSTD_compressBound(THP_REGION_BYTES));
	if (!warm || !out)
		goto nomem;
	memset(warm, 0, THP_REGION_BYTES);
	for (size_t i = 0; i < THP_REGION_BYTES; i += 64)
		((unsigned char *)warm)[i] = (unsigned char)(i * 2654435761u >> 13);
	r = ZSTD_compress2(c->cctx, out, ZSTD_compressBound(THP_REGION_BYTES), warm, THP_REGION_BYTES);
	if (ZSTD_isError(r) ||
	    ZSTD_isError(ZSTD_decompressDCtx(c->dctx, warm, THP_REGION_BYTES, out, r)))
		goto nomem;
	mem_free(mem, warm);
	mem_free(mem, out);
	*ret = c;
	return 0;
nomem:
	mem_free(mem, warm);
	mem_free(mem, out);
	thp_codec_free(c);
	return -ENOMEM;
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
		size_t r;

		if (cancelled && cancelled(arg))
			return -ECANCELED;
		r = ZSTD_compress2(c->cctx, (char *)dst + off, cap - off,
				   (const char *)src + (size_t)i * flen, flen);
		if (ZSTD_isError(r))
			return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EINVAL;
		h->clen[i] = (uint32_t)r;
		off += r;
	}
	h->magic = THP_BLOB_MAGIC;
	h->nframes = (uint16_t)nframes;
	h->codec = THP_CODEC_ZSTD;
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
				      : h.codec != THP_CODEC_ZSTD)
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
	r = ZSTD_decompressDCtx(c->dctx, out, flen, v->base + v->frame_off[i], v->frame_len[i]);
	return (ZSTD_isError(r) || r != flen) ? -EBADMSG : 0;
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
