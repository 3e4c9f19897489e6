/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

void thp_arena_layout(struct thp_arena_header *h, uint32_t max_regions)
{
	h->magic = THP_ARENA_MAGIC;
	h->version = THP_ARENA_VERSION;
	h->max_regions = max_regions;
	h->records_off = 4096;
	h->data_off = ALIGN_UP(h->records_off + (uint64_t)max_regions * sizeof(struct thp_record), 4096);
	h->size = h->data_off + (uint64_t)max_regions * THP_SLOT_SIZE;
}

int thp_arena_validate(const struct thp_arena_header *h, size_t map_size)
{
	struct thp_arena_header want;

	if (map_size < sizeof(*h))
		return -EBADMSG;
	if (h->magic != THP_ARENA_MAGIC || h->version != THP_ARENA_VERSION)
		return -EPROTO;
	if (h->max_regions == 0 || h->max_regions > (1u << 24))
		return -EBADMSG;
	thp_arena_layout(&want, h->max_regions);
	if (h->records_off != want.records_off || h->data_off != want.data_off ||
	    h->size != want.size || h->size > map_size)
		return -EBADMSG;
	if (h->cfg.frames < 1 || h->cfg.frames > THP_MAX_FRAMES ||
	    h->cfg.incompressible > THP_INCOMP_RAW || h->cfg.max_stored_pct > 100)
		return -EBADMSG;
	return 0;
}

int thp_arena_check_fd(int fd, struct thp_arena_header *h, char *why, size_t whysz)
{
	struct stat st;
	ssize_t n;
	int seals, r;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whysz, "not a memfd (not a regular file)");
		return -EBADF;
	}
	/* Only a memfd made with MFD_ALLOW_SEALING can carry these; without
	 * SHRINK a peer could truncate it under our mapping (SIGBUS). */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & THP_ARENA_SEALS) != THP_ARENA_SEALS) {
		snprintf(why, whysz, "not sealed against resizing (seals 0x%x, want 0x%x)",
			 seals < 0 ? 0 : (unsigned)seals, (unsigned)THP_ARENA_SEALS);
		return -EBADF;
	}
	memset(h, 0, sizeof(*h));
	n = pread(fd, h, sizeof(*h), 0);
	if (n != (ssize_t)sizeof(*h)) {
		snprintf(why, whysz, "%lld bytes, shorter than an arena header",
			 (long long)st.st_size);
		return -EBADMSG;
	}
	if (h->magic != THP_ARENA_MAGIC) {
		snprintf(why, whysz, "magic 0x%llx, not an arena's",
			 (unsigned long long)h->magic);
		return -EPROTO;
	}
	if (h->version != THP_ARENA_VERSION) {
		snprintf(why, whysz, "arena version %u, this thpswapd reads version %u",
			 h->version, THP_ARENA_VERSION);
		return -EPROTO;
	}
	r = thp_arena_validate(h, (size_t)st.st_size);
	if (r == 0 && h->size != (uint64_t)st.st_size)
		r = -EBADMSG;
	if (r < 0) {
		snprintf(why, whysz, "its header does not fit: %u regions, size %llu, memfd "
			 "size %lld", h->max_regions, (unsigned long long)h->size,
			 (long long)st.st_size);
		return r;
	}
	return 0;
}

/* Buckets: 0 is < 1 µs; then 4 per power of two: bucket 1 + 4e + s covers
 * [2^e (1 + s/4), 2^e (1 + (s+1)/4)) µs. */
unsigned thp_hist_bucket(uint64_t ns)
{
	uint64_t us4 = ns * 4 / 1000; /* quarter-microseconds */
	unsigned e, s, b;

	if (us4 < 4)
		return 0;
	e = 63 - (unsigned)__builtin_clzll(us4 / 4);
	s = (unsigned)((us4 >> e) - 4); /* 0..3 */
	b = 1 + 4 * e + s;
	return b < THP_HIST_BUCKETS ? b : THP_HIST_BUCKETS - 1;
}

uint64_t thp_hist_bucket_ceil_ns(unsigned bucket)
{
	unsigned e, s;

	if (bucket == 0)
		return 1000;
	e = (bucket - 1) / 4;
	s = (bucket - 1) % 4;
	return ((uint64_t)1000 << e) * (5 + s) / 4;
}

uint64_t thp_hist_percentile_ns(const _Atomic uint64_t *hist, double pct)
{
	uint64_t total = 0, seen = 0, want;
	unsigned b;

	for (b = 0; b < THP_HIST_BUCKETS; b++)
		total += atomic_load_explicit(&hist[b], memory_order_relaxed);
	if (total == 0)
		return 0;
	double w = pct / 100.0 * (double)total;

	want = (uint64_t)w;
	if ((double)want < w)
		want++;
	if (want == 0)
		want = 1;
	for (b = 0; b < THP_HIST_BUCKETS; b++) {
		seen += atomic_load_explicit(&hist[b], memory_order_relaxed);
		if (seen >= want)
			return thp_hist_bucket_ceil_ns(b);
	}
	return thp_hist_bucket_ceil_ns(THP_HIST_BUCKETS - 1);
}

const char *thp_state_name(enum thp_state st)
{
	static const char *const names[THP_ST__MAX] = {
		[THP_ST_FREE] = "free",
		[THP_ST_ZERO] = "zero",
		[THP_ST_RESIDENT] = "resident",
		[THP_ST_EVICTING] = "evicting",
		[THP_ST_CANCEL] = "cancelling",
		[THP_ST_RAM] = "ram",
		[THP_ST_RESTORING] = "restoring",
		[THP_ST_POISONED] = "poisoned",
		[THP_ST_EMPTY] = "empty",
	};
	return (unsigned)st < THP_ST__MAX ? names[st] : "invalid";
}

const char *thp_kind_name(unsigned kind)
{
	static const char *const names[THP_KIND__MAX] = {
		[THP_KIND_UNKNOWN] = "-",
		[THP_KIND_PMD] = "pmd",
		[THP_KIND_PTE] = "pte",
		[THP_KIND_PARTIAL] = "partial",
		[THP_KIND_ZERO] = "zero",
		[THP_KIND_NOHUGE] = "nohuge",
		[THP_KIND_SPLIT] = "split",
	};
	return kind < THP_KIND__MAX ? names[kind] : "?";
}

int thp_arena_self_fd(int *count)
{
	char path[300], link[256], want[64];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fd = -ENOENT;

	*count = 0;
	if (!d)
		return -errno;
	snprintf(want, sizeof(want), "/memfd:thpswap-arena:%d ", (int)getpid());
	while ((e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		/* "/memfd:NAME (deleted)" */
		if (!strncmp(link, want, strlen(want))) {
			fd = atoi(e->d_name);
			(*count)++;
		}
	}
	closedir(d);
	return fd;
}
