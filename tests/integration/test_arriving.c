/* SPDX-License-Identifier: MIT */
/*
 * A region whose registration is not in effect yet is never evicted.
 * Registering memory that holds data (register_blocks: thpswap_register,
 * and adoption of a program's mappings) makes the records first, then
 * registers the range, and the daemon may pick a record in between: with
 * adoption, a mapping of many 4 KiB-page blocks takes seconds (a collapse
 * per block) while the program writes on.  A region emptied then faults
 * the kernel's way, not to the agent, and reads zeros: Redis crashed on
 * it, and a program growing its memory as jemalloc does read zero pages
 * where it had written.  This test makes a record the way register_blocks
 * does, asks for its eviction before registering (refused, every byte
 * still there), then registers and asks again (evicted, and every byte
 * comes back).
 *
 * Links the library's internals (like test_zaps.c) to make the record.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "internal.h"
#include "uffd.h"

#define REG THPSWAP_REGION_SIZE

static void check_bytes(const unsigned char *p, const char *what)
{
	for (size_t i = 0; i < REG; i++)
		H_CHECK(p[i] == (unsigned char)(i * 7 + i / 4096), "%s: byte %zu is %u", what, i, p[i]);
}

static void arriving_case(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	unsigned char *p = thp_mmap_aligned(REG, REG, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_NORESERVE);
	uint64_t a = (uint64_t)(uintptr_t)p;
	int r;

	(void)d;
	(void)variant;
	H_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	H_CHECK(madvise(p, REG, MADV_HUGEPAGE) == 0, "MADV_HUGEPAGE: %s", strerror(errno));
	for (size_t i = 0; i < REG; i++)
		p[i] = (unsigned char)(i * 7 + i / 4096);
	/* As register_blocks does before it registers. */
	r = rt_add(s, a, REG, THP_ST_RESIDENT, false);
	H_CHECK(r == 0, "rt_add: %s", strerror(-r));
	H_CHECK(h_evict(s, p, REG) == 0,
		"a region evicted before its registration was in effect (it would read zeros)");
	check_bytes(p, "after the refused eviction");
	r = thp_uffd_register(s->uffd, a, REG, UFFDIO_REGISTER_MODE_MISSING);
	H_CHECK(r == 0, "UFFDIO_REGISTER: %s", strerror(-r));
	rt_arrived(s, a, REG);
	H_CHECK(h_evict(s, p, REG) == 1, "the region, registered now, was not evicted");
	check_bytes(p, "evicted once registered, and read back");
	H_CHECK(thpswap_unmap(s, p, REG) == 0, "thpswap_unmap");
	printf("arriving: refused before the registration, evicted and read back after\n");
}

static const struct h_case cases[] = {
	{ "evict-before-registered", arriving_case, 0, 60 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
