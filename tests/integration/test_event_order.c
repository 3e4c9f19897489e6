/* SPDX-License-Identifier: MIT */
/*
 * Events of different threads arrive in the order they were sent, not in
 * the order of the changes they describe.  Here that order is forced:
 *
 *   thread A   munmaps a managed region at X together with a range below it
 *              that a userfaultfd of the test's own watches.  The kernel sends
 *              the UNMAPs in address order, so to the test's uffd first, and A
 *              waits there, its UNMAP of X for the agent prepared but not
 *              sent.
 *   main       maps a reservation at X and mremaps an evicted region onto it,
 *              off 2 MiB alignment: the agent copies the region's stored
 *              bytes there page by page (its copies wait out EAGAIN while A's
 *              event is pending), then reads the test's event, which lets A
 *              go on and send its UNMAP of X: a late event, about the mapping
 *              that left X before the mremap came.
 *
 * That UNMAP must not drop the moved region's pages: every byte is checked.
 * The same with a late REMAP: A mremaps its (evicted) region from X onto a
 * range the test's uffd watches, so the kernel first sends the test the
 * UNMAP of that destination and A waits there, its REMAP from X not sent.
 * That REMAP must neither carry the moved region's pages along into A's
 * region nor leave them out.
 *
 * And while such a copy waits (A held as in the first case), the
 * application zaps pages of the region at its new place and moves it on
 * again: those pages must read zeros at the last place, not the bytes the
 * copy still holds for them.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "kernel-abi.h"
#include "uffd.h"

#define R THPSWAP_REGION_SIZE
#define P H_PAGE
#define SKEW (311 * P)  /* the moved region straddles X's block and the next */

struct vacate {
	char *t;                /* variant 0: the test's range, below X */
	char *x;                /* A's region */
	char *away;             /* variant 1: where A moves it */
	int variant;
	int rc;
};

static void *vacate_main(void *arg)
{
	struct vacate *v = arg;

	if (v->variant == 0)
		v->rc = munmap(v->t, 2 * R) ? -errno : 0;
	else
		v->rc = mremap(v->x, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, v->away) == v->away ? 0 : -errno;
	return NULL;
}

static int watch(char *addr)
{
	int fd = thp_uffd_create(), r;

	H_CHECK(fd >= 0, "the test's userfaultfd: %s", strerror(-fd));
	r = thp_uffd_api(fd, UFFD_FEATURE_EVENT_UNMAP, NULL);
	H_CHECK(r == 0, "UFFDIO_API on the test's uffd: %s", strerror(-r));
	r = thp_uffd_register(fd, (uint64_t)(uintptr_t)addr, R, UFFDIO_REGISTER_MODE_MISSING);
	H_CHECK(r == 0, "register the test's range: %s", strerror(-r));
	return fd;
}

static void late_vacate(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct vacate v = { .variant = variant };
	struct h_mem moved, mine, theirs = { 0 };
	struct uffd_msg msg;
	struct pollfd p;
	pthread_t a;
	char *to;
	int tfd, r;

	/* A's region at X (managed, aligned); the test's range below it
	 * (variant 0) or where A will move it (variant 1). */
	v.t = h_reserve(4 * R, 0);
	v.x = v.t + R;
	H_CHECK(mmap(v.t, 2 * R, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == v.t,
		"mmap X: %s", strerror(errno));
	/* The rest of the reservation goes: X is mapped again later. */
	H_CHECK(munmap(v.t + 2 * R, 2 * R) == 0, "munmap: %s", strerror(errno));
	r = thpswap_register(s, v.x, R);
	H_CHECK(r == 0, "thpswap_register X: %s", strerror(-r));
	theirs.base = v.x;
	theirs.len = R;
	theirs.pg0 = 2000;
	theirs.gen = calloc(R / P, sizeof(uint32_t));
	H_CHECK(theirs.gen, "out of memory");
	h_mem_write(&theirs, 0, R, 5);
	if (variant == 0) {
		tfd = watch(v.t);
	} else {
		H_CHECK(munmap(v.t, R) == 0, "munmap: %s", strerror(errno));
		H_CHECK(h_evict(s, v.x, R) == 1, "evict A's region");
		v.away = h_reserve(R, 0);
		H_CHECK(mmap(v.away, R, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
			v.away, "mmap A's destination: %s", strerror(errno));
		tfd = watch(v.away);
	}

	/* The region to move: managed, written, evicted. */
	h_mem_map(s, &moved, 1, 0);
	h_mem_write(&moved, 0, R, 3);
	H_CHECK(h_evict(s, moved.base, R) == 1, "evict the region to move");
	h_mem_map(s, &mine, 1, 1000);
	h_mem_write(&mine, 0, R, 4);

	H_CHECK(pthread_create(&a, NULL, vacate_main, &v) == 0, "pthread_create");
	/* A now waits for us to read its event on the test's uffd. */
	p = (struct pollfd){ .fd = tfd, .events = POLLIN };
	H_CHECK(poll(&p, 1, 10000) == 1, "no event on the test's uffd within 10 s");

	to = v.x + SKEW;
	H_CHECK(mmap(v.x, 2 * R, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE,
		     -1, 0) == v.x, "reserve X again: %s", strerror(errno));
	h_at("mremap the evicted region onto X + %u pages", (unsigned)(SKEW / P));
	H_CHECK(mremap(moved.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, to) == to, "mremap onto X: %s",
		strerror(errno));
	moved.base = to;
	/* Let A send its late event to the agent. */
	H_CHECK(read(tfd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg), "read the test's event: %s",
		strerror(errno));
	H_CHECK(pthread_join(a, NULL) == 0, "pthread_join");
	H_CHECK(v.rc == 0, "A's %s: %s", variant ? "mremap" : "munmap", strerror(-v.rc));

	h_mem_check(&moved, "the region moved onto X while X's late event came");
	h_mem_check(&mine, "a region nobody touched");
	if (variant == 1) {
		theirs.base = v.away;
		h_mem_check(&theirs, "A's region at the place A moved it to");
	}
	h_report(s, d, variant ? "late-remap" : "late-unmap");
	close(tfd);
	h_mem_free(&moved);
	h_mem_free(&mine);
	h_mem_free(&theirs);
}

static void zap_then_move(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct vacate v = { .variant = 0 };
	struct h_mem moved;
	struct uffd_msg msg;
	struct pollfd p;
	pthread_t a;
	char *m1, *m2;
	int tfd, r;

	(void)variant;
	/* A's region at X, the test's range below it (as in late-unmap). */
	v.t = h_reserve(2 * R, 0);
	v.x = v.t + R;
	H_CHECK(mmap(v.t, 2 * R, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == v.t,
		"mmap X: %s", strerror(errno));
	r = thpswap_register(s, v.x, R);
	H_CHECK(r == 0, "thpswap_register X: %s", strerror(-r));
	tfd = watch(v.t);

	h_mem_map(s, &moved, 1, 0);
	h_mem_write(&moved, 0, R, 7);
	H_CHECK(h_evict(s, moved.base, R) == 1, "evict the region to move");

	H_CHECK(pthread_create(&a, NULL, vacate_main, &v) == 0, "pthread_create");
	p = (struct pollfd){ .fd = tfd, .events = POLLIN };
	H_CHECK(poll(&p, 1, 10000) == 1, "no event on the test's uffd within 10 s");

	/* A's UNMAP is pending: the agent's copy to M1 waits. */
	m1 = (char *)h_reserve(R, 5 * P);
	h_at("mremap the evicted region to M1 (off 2 MiB alignment)");
	H_CHECK(mremap(moved.base, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, m1) == m1, "mremap to M1: %s",
		strerror(errno));
	moved.base = m1;
	h_at("zap pages 0..15 at M1 while the copy waits");
	h_mem_zap(&moved, 0, 16 * P, MADV_DONTNEED);
	m2 = (char *)h_reserve(R, 9 * P);
	h_at("mremap on to M2 while the copy waits");
	H_CHECK(mremap(m1, R, R, MREMAP_MAYMOVE | MREMAP_FIXED, m2) == m2, "mremap to M2: %s",
		strerror(errno));
	moved.base = m2;
	/* Let A go: the copy runs now. */
	H_CHECK(read(tfd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg), "read the test's event: %s",
		strerror(errno));
	H_CHECK(pthread_join(a, NULL) == 0, "pthread_join");
	H_CHECK(v.rc == 0, "A's munmap: %s", strerror(-v.rc));

	h_mem_check(&moved, "the region zapped at M1 and moved on to M2 while its copy waited");
	h_report(s, d, "zap-then-move");
	close(tfd);
	h_mem_free(&moved);
}

static const struct h_case cases[] = {
	{ "late-unmap", late_vacate, 0, 60 },
	{ "late-remap", late_vacate, 1, 60 },
	{ "zap-then-move", zap_then_move, 0, 60 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
