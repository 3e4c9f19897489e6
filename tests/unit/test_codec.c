/* SPDX-License-Identifier: MIT */
/* The region codec: round trips, incompressible and cancelled evictions,
 * and blobs damaged in every way a shared arena could damage them; each
 * for both codecs, and each codec decoding the other's blobs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"
#include "datagen.h"
#include "hash.h"

#define R THP_REGION_BYTES

struct fx {
	unsigned codec;
	struct thp_codec *c;
	char *src, *blob, *out;
};

static int setup(void **state, unsigned codec)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || thp_codec_new(&f->c, codec, 1, NULL))
		return -1;
	f->codec = codec;
	f->src = malloc(R);
	f->blob = malloc(THP_SLOT_SIZE);
	f->out = malloc(R);
	*state = f;
	return f->src && f->blob && f->out ? 0 : -1;
}

static int setup_zstd(void **state)
{
	return setup(state, THP_CODEC_ZSTD);
}

static int setup_lz4(void **state)
{
	return setup(state, THP_CODEC_LZ4);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	thp_codec_free(f->c);
	free(f->src);
	free(f->blob);
	free(f->out);
	free(f);
	return 0;
}

static long decode_all(struct fx *f, long len)
{
	struct thp_blob_view v;

	if (thp_blob_view(f->blob, (size_t)len, &v))
		return -EBADMSG;
	for (unsigned i = 0; i < v.nframes; i++)
		if (thp_codec_decompress_frame(f->c, &v, i, f->out))
			return -EBADMSG;
	return 0;
}

static void round_trip_every_frame_count(void **state)
{
	struct fx *f = *state;

	thp_datagen_fill(f->src, R, THP_DATA_HEAPMIX, 7, 0);
	for (unsigned n = 1; n <= THP_MAX_FRAMES; n *= 2) {
		long len = thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, n, NULL, NULL);

		assert_true(len > 0 && len < (long)R);
		assert_int_equal(((struct thp_blob *)f->blob)->codec, f->codec);
		memset(f->out, 0xaa, R);
		assert_int_equal(decode_all(f, len), 0);
		assert_memory_equal(f->src, f->out, R);
	}
	assert_int_equal(thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, 3, NULL, NULL), -EINVAL);
	assert_int_equal(thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, 16, NULL, NULL), -EINVAL);
}

static void incompressible_does_not_fit(void **state)
{
	struct fx *f = *state;
	long len;

	thp_datagen_fill(f->src, R, THP_DATA_RANDOM, 7, 0);
	assert_int_equal(thp_codec_compress(f->c, f->src, f->blob, R * 9 / 10, 4, NULL, NULL), -ENOSPC);
	len = thp_codec_store_raw(f->src, f->blob, THP_SLOT_SIZE);
	assert_int_equal(len, (long)(sizeof(struct thp_blob) + R)); /* never expanded beyond a header */
	assert_int_equal(decode_all(f, len), 0);
	assert_memory_equal(f->src, f->out, R);
	assert_int_equal(thp_codec_store_raw(f->src, f->blob, R), -ENOSPC);
}

static int calls;
static bool cancel_after_two(void *arg)
{
	(void)arg;
	return ++calls > 2;
}

static void cancel_between_frames(void **state)
{
	struct fx *f = *state;

	thp_datagen_fill(f->src, R, THP_DATA_TEXT, 1, 0);
	calls = 0;
	assert_int_equal(thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, 8, cancel_after_two, NULL),
			 -ECANCELED);
	assert_int_equal(calls, 3);
}

static void damaged_blobs_are_refused(void **state)
{
	struct fx *f = *state;
	struct thp_blob_view v;
	struct thp_blob *h = (struct thp_blob *)f->blob;
	long len;

	thp_datagen_fill(f->src, R, THP_DATA_HEAPMIX, 3, 1);
	len = thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, 4, NULL, NULL);
	assert_true(len > 0);
	assert_int_equal(thp_blob_view(f->blob, (size_t)len, &v), 0);
	assert_int_equal(thp_blob_view(f->blob, (size_t)len - 1, &v), -EBADMSG);   /* short */
	assert_int_equal(thp_blob_view(f->blob, (size_t)len + 1, &v), -EBADMSG);   /* trailing */
	assert_int_equal(thp_blob_view(f->blob, 8, &v), -EBADMSG);
	h->magic ^= 1;
	assert_int_equal(thp_blob_view(f->blob, (size_t)len, &v), -EBADMSG);
	h->magic ^= 1;
	h->nframes = 3;
	assert_int_equal(thp_blob_view(f->blob, (size_t)len, &v), -EBADMSG);
	h->nframes = 4;
	h->clen[1] = 0x7fffffff;
	assert_int_equal(thp_blob_view(f->blob, (size_t)len, &v), -EBADMSG);
	/* Recompress, then flip a byte inside frame 2: its checksum fails. */
	len = thp_codec_compress(f->c, f->src, f->blob, THP_SLOT_SIZE, 4, NULL, NULL);
	assert_int_equal(thp_blob_view(f->blob, (size_t)len, &v), 0);
	f->blob[v.frame_off[2] + v.frame_len[2] / 2] ^= 0x40;
	assert_int_equal(thp_codec_decompress_frame(f->c, &v, 1, f->out), 0);
	assert_int_equal(thp_codec_decompress_frame(f->c, &v, 2, f->out), -EBADMSG);
}

static void zero_detection_and_hash(void **state)
{
	struct fx *f = *state;
	uint64_t h0;

	memset(f->src, 0, R);
	assert_true(thp_is_zero(f->src, R));
	f->src[R - 1] = 1;
	assert_false(thp_is_zero(f->src, R));
	f->src[R - 1] = 0;
	f->src[12345] = 1;
	assert_false(thp_is_zero(f->src, R));
	h0 = thp_hash64(f->src, R);
	f->src[12345] = 2;
	assert_true(h0 != thp_hash64(f->src, R));
	assert_true(thp_hash64("abc", 3) != thp_hash64("abd", 3));
	assert_int_equal(thp_codec_new(&(struct thp_codec *){ NULL }, THP_CODEC_ZSTD, 1000, NULL), -EINVAL);
	assert_int_equal(thp_codec_new(&(struct thp_codec *){ NULL }, THP_CODEC_NONE, 1, NULL), -EINVAL);
	assert_int_equal(thp_codec_new(&(struct thp_codec *){ NULL }, 99, 1, NULL), -EINVAL);
	assert_string_equal(thp_codec_name(THP_CODEC_LZ4), "lz4");
	assert_string_equal(thp_codec_name(99), "unknown");
}

/* Records outlive the settings they were stored with (a daemon restarted
 * with another codec): whatever a codec compresses with, it decodes every
 * codec's blobs. */
static void decodes_the_other_codec(void **state)
{
	struct fx *f = *state;
	unsigned other = f->codec == THP_CODEC_ZSTD ? THP_CODEC_LZ4 : THP_CODEC_ZSTD;
	struct thp_codec *o = NULL;
	long len;

	assert_int_equal(thp_codec_new(&o, other, -5, NULL), 0);
	thp_datagen_fill(f->src, R, THP_DATA_HEAPMIX, 5, 2);
	len = thp_codec_compress(o, f->src, f->blob, THP_SLOT_SIZE, 4, NULL, NULL);
	assert_true(len > 0);
	assert_int_equal(((struct thp_blob *)f->blob)->codec, other);
	memset(f->out, 0, R);
	assert_int_equal(decode_all(f, len), 0);
	assert_memory_equal(f->src, f->out, R);
	thp_codec_free(o);
}

/* Counts what goes through a codec's allocation hook. */
struct counted {
	unsigned allocs, frees;
	size_t bytes;
};

static void *count_alloc(void *opaque, size_t len)
{
	struct counted *n = opaque;

	n->allocs++;
	n->bytes += len;
	return malloc(len);
}

static void count_free(void *opaque, void *p)
{
	struct counted *n = opaque;

	n->frees++;
	free(p);
}

/* With a hook, every byte of the codec comes from it (zstd's workspaces
 * too: the library notes them as its own), nothing is allocated after the
 * constructor however the codec is used, and all of it goes back. */
static void all_memory_through_the_hook(void **state)
{
	struct fx *f = *state;
	struct counted n = { 0 };
	struct thp_alloc mem = { .alloc = count_alloc, .free = count_free, .opaque = &n };
	struct thp_codec *c = NULL, *keep = f->c;
	unsigned allocs;

	assert_int_equal(thp_codec_new(&c, f->codec, 3, &mem), 0);
	/* The codec, its contexts and their workspaces, the buffers the
	 * warm-up used: more than 2 MiB in all, half of it gone again. */
	assert_true(n.allocs >= 4);
	assert_true(n.bytes > (size_t)R);
	allocs = n.allocs;
	f->c = c;
	thp_datagen_fill(f->src, R, THP_DATA_HEAPMIX, 11, 0);
	for (unsigned k = 1; k <= THP_MAX_FRAMES; k *= 2) {
		long len = thp_codec_compress(c, f->src, f->blob, THP_SLOT_SIZE, k, NULL, NULL);

		assert_true(len > 0);
		assert_int_equal(decode_all(f, len), 0);
		assert_memory_equal(f->src, f->out, R);
	}
	f->c = keep;
	assert_int_equal(n.allocs, allocs);
	thp_codec_free(c);
	assert_int_equal(n.frees, n.allocs);
}

/* Each test once per codec, in one group (one TAP plan per executable). */
#define BOTH(f) { "zstd: " #f, f, setup_zstd, teardown, NULL }, \
		{ "lz4: " #f, f, setup_lz4, teardown, NULL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(round_trip_every_frame_count),
		BOTH(incompressible_does_not_fit),
		BOTH(cancel_between_frames),
		BOTH(damaged_blobs_are_refused),
		BOTH(zero_detection_and_hash),
		BOTH(decodes_the_other_codec),
		BOTH(all_memory_through_the_hook),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
