/* SPDX-License-Identifier: MIT */
/*
 * Giving memory back: thpswap_unregister and thpswap_close bring every
 * evicted region back before it becomes ordinary memory.  When a region
 * cannot be brought back (here: PROT_NONE, so faulting it in fails), the
 * call says so and the region stays managed with its bytes: once the
 * application can touch it again, every byte is there.  Closing the
 * session's uffd instead would make it read zeros.
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define R THPSWAP_REGION_SIZE

static void protect(void *addr, size_t len, int prot)
{
	H_CHECK(mprotect(addr, len, prot) == 0, "mprotect(%p, %zu, %d): %s", addr, len, prot,
		strerror(errno));
}

/* thpswap_unregister of two evicted regions, the first PROT_NONE. */
static void unregister_unreachable(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct thpswap_stats a, b;
	struct h_mem m;
	int r;

	h_mem_prepare(s, &m, 2, 2);
	a = h_stats(s);
	H_CHECK(a.evicted_ram == 2, "2 regions evicted, %llu in RAM", (unsigned long long)a.evicted_ram);
	protect(m.base, R, PROT_NONE);
	r = thpswap_unregister(s, m.base, 2 * R);
	printf("unregister with region 0 PROT_NONE: %d (%s)\n", r, r ? strerror(-r) : "ok");
	H_CHECK(r < 0, "thpswap_unregister of a region it cannot bring back returned %d", r);
	b = h_stats(s);
	/* Region 1 went back to the application; region 0 stays managed. */
	H_CHECK(b.regions == a.regions - 1 && b.evicted_ram == 1 && b.stored_bytes > 0,
		"after the failed unregister: regions %llu -> %llu, %llu in RAM, %llu bytes stored",
		(unsigned long long)a.regions, (unsigned long long)b.regions,
		(unsigned long long)b.evicted_ram, (unsigned long long)b.stored_bytes);
	protect(m.base, R, PROT_READ | PROT_WRITE);
	h_mem_check(&m, "both regions after the failed unregister");
	r = thpswap_unregister(s, m.base, R);
	H_CHECK(r == 0, "thpswap_unregister once readable: %s", strerror(-r));
	h_mem_check(&m, "both regions unregistered");
	h_report(s, d, "unregister-unreachable");
	h_mem_free(&m);
}

/* thpswap_close of the case's session with a PROT_NONE evicted region.
 * The case ends the process itself: its session is closed. */
static void close_unreachable(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	struct h_mem m;
	int r;

	h_mem_map(s, &m, 2, 0);
	h_mem_write(&m, 0, m.len, 1);
	H_CHECK(h_evict(s, m.base, m.len) == 2, "evict both regions");
	protect(m.base + R, R, PROT_NONE);
	r = thpswap_close(s);
	printf("close with region 1 PROT_NONE: %d (%s)\n", r, r ? strerror(-r) : "ok");
	H_CHECK(r < 0, "thpswap_close with a region it cannot bring back returned %d", r);
	/* The session is still open: region 1 is still served. */
	protect(m.base + R, R, PROT_READ | PROT_WRITE);
	h_mem_check(&m, "both regions after the failed close");
	h_report(s, d, "close-unreachable");
	r = thpswap_close(s);
	H_CHECK(r == 0, "thpswap_close once readable: %s", strerror(-r));
	h_mem_check(&m, "both regions after the close");
	h_mem_free(&m);
	printf("close-unreachable: closed\n");
	fflush(stdout);
	_exit(H_PASS); /* not back to the harness: it would close @s again */
}

static const struct h_case cases[] = {
	{ "unregister-unreachable", unregister_unreachable, 0, 30 },
	{ "close-unreachable", close_unreachable, 0, 30 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
