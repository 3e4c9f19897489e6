/* SPDX-License-Identifier: MIT */
/*
 * thpswap-fault-wait [--regions N] [--rounds R]: how long the kernel takes
 * between a touch of an evicted region and the moment the fault's message
 * can be read, for a read and for a write.  That is the "wait" part of a
 * restore (bench/breakdown.c) without thpswap: one handler thread waits in
 * poll() on a userfaultfd registered MISSING over N 2 MiB regions of a
 * MADV_HUGEPAGE mapping, stamps each message as it reads it, and resolves
 * the fault by UFFDIO_MOVE of a THP it faulted in just before (as a
 * restore does).  The main thread touches each region once, reads and
 * writes alternately.  Prints one JSON object: percentiles in microseconds
 * of touch -> message read, per kind.  docs/KERNEL.md says what it shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kernel-abi.h"
#include "uffd.h"
#include "util.h"

#define REGION (2ull << 20)

struct handler {
	int uffd;
	char *stage;                  /* one 2 MiB aligned range of our own */
	_Atomic uint64_t seen_ns;     /* when the last message was read */
	_Atomic int err;
};

static void *handler_main(void *arg)
{
	struct handler *h = arg;

	for (;;) {
		struct pollfd p = { .fd = h->uffd, .events = POLLIN };
		struct uffd_msg m;
		ssize_t n;
		uint64_t dst;
		int r;

		/* The uffd is non-blocking: wait in poll (a cancellation point). */
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		n = read(h->uffd, &m, sizeof(m));
		if (n != (ssize_t)sizeof(m)) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			break;
		}
		atomic_store(&h->seen_ns, thp_now_ns());
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		dst = m.arg.pagefault.address & ~(REGION - 1);
		/* A fresh THP in the staging range, then moved in whole. */
		memset(h->stage, 1, REGION);
		r = thp_uffd_move(h->uffd, dst, (uint64_t)(uintptr_t)h->stage, REGION, 0, NULL);
		if (r) {
			atomic_store(&h->err, r);
			thp_uffd_wake(h->uffd, dst, REGION);
		}
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_kind(const char *name, double *v, size_t n, bool last)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("  \"%s\": {\"n\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
	       "\"max_us\": %.1f}%s\n", name, n, v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1],
	       last ? "" : ",");
}

/* A 2 MiB aligned range of @len bytes, made THP-eligible. */
static char *map_aligned(uint64_t len)
{
	char *raw = mmap(NULL, len + REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;

	if (raw == MAP_FAILED)
		return NULL;
	p = (char *)(((uintptr_t)raw + REGION - 1) & ~(uintptr_t)(REGION - 1));
	if (madvise(p, len, MADV_HUGEPAGE))
		return NULL;
	return p;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "regions", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	unsigned regions = 256, rounds = 1;
	struct handler h = { .uffd = -1 };
	double *rd, *wr;
	size_t nr = 0, nw = 0;
	pthread_t th;
	char *p;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			regions = (unsigned)strtoul(optarg, NULL, 10);
		else if (c == 'r')
			rounds = (unsigned)strtoul(optarg, NULL, 10);
		else {
			fprintf(stderr, "usage: thpswap-fault-wait [--regions N] [--rounds R]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (regions < 2 || regions > 65536 || rounds < 1 || rounds > 1000) {
		fprintf(stderr, "thpswap-fault-wait: --regions 2..65536, --rounds 1..1000\n");
		return 2;
	}
	rd = calloc((size_t)regions * rounds, sizeof(*rd));
	wr = calloc((size_t)regions * rounds, sizeof(*wr));
	p = map_aligned((uint64_t)regions * REGION);
	h.stage = map_aligned(REGION);
	if (!rd || !wr || !p || !h.stage) {
		fprintf(stderr, "thpswap-fault-wait: out of memory\n");
		return 1;
	}
	h.uffd = thp_uffd_create();
	if (h.uffd < 0 || (r = thp_uffd_api(h.uffd, UFFD_FEATURE_MOVE, NULL)) ||
	    (r = thp_uffd_register(h.uffd, (uint64_t)(uintptr_t)p, (uint64_t)regions * REGION,
				   UFFDIO_REGISTER_MODE_MISSING))) {
		fprintf(stderr, "thpswap-fault-wait: userfaultfd with MOVE: %s (needs Linux 6.8 and "
			"/dev/userfaultfd or vm.unprivileged_userfaultfd)\n",
			strerror(h.uffd < 0 ? -h.uffd : -r));
		return 77;
	}
	if (pthread_create(&th, NULL, handler_main, &h)) {
		fprintf(stderr, "thpswap-fault-wait: cannot start the handler thread\n");
		return 1;
	}
	for (unsigned k = 0; k < rounds; k++) {
		for (unsigned i = 0; i < regions; i++) {
			volatile char *q = p + (uint64_t)i * REGION;
			uint64_t t0 = thp_now_ns();

			if (i & 1)
				*q = 2;
			else
				(void)*q;
			if (i & 1)
				wr[nw++] = (double)(atomic_load(&h.seen_ns) - t0) / 1e3;
			else
				rd[nr++] = (double)(atomic_load(&h.seen_ns) - t0) / 1e3;
		}
		/* Empty again for the next round: the next touches fault. */
		madvise(p, (uint64_t)regions * REGION, MADV_DONTNEED);
	}
	/* poll() is a cancellation point; a close would not wake it. */
	pthread_cancel(th);
	pthread_join(th, NULL);
	close(h.uffd);
	if (atomic_load(&h.err)) {
		fprintf(stderr, "thpswap-fault-wait: UFFDIO_MOVE: %s\n", strerror(-atomic_load(&h.err)));
		return 1;
	}
	printf("{\n  \"regions\": %u, \"rounds\": %u,\n", regions, rounds);
	print_kind("read", rd, nr, false);
	print_kind("write", wr, nw, true);
	printf("}\n");
	free(rd);
	free(wr);
	return 0;
}
