/* SPDX-License-Identifier: MIT */
/*
 * Pinning: a pinned region is never evicted, whoever asks.
 *
 *   api     thpswap_pin half of the regions: thpswapctl evict --all and
 *           thpswap_advise(COLD) evict only the other half (the arena's
 *           records, PAGEMAP_SCAN: the pinned ones still PMD-mapped), and
 *           evict_refused counts each refusal; thpswap_unpin, and they go;
 *           pinning an evicted region brings it back (one that cannot be
 *           read: -EFAULT, and not pinned).  Every byte checked.
 *   admin   the same through thpswapctl pin PID ADDR LEN and unpin (the
 *           daemon sets the records' flag); stats shows them as pinned; a
 *           range without regions is refused.
 * A peer of another user may not pin (test_ctl_privacy.py checks that).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "thpswap/thpswap.h"

#define REG THPSWAP_REGION_SIZE
#define N 8      /* regions */
#define NPIN 4   /* the first NPIN are pinned */

static char out[1 << 16];

/* Regions [0, NPIN) are @lo (state) and pinned as @pinned says, the rest
 * @hi, as the arena's records say. */
static void expect(int fd, const struct h_mem *m, uint32_t lo, bool pinned, uint32_t hi,
		   const char *what)
{
	struct h_region_view v[N];

	h_arena_view(fd, m->base, N, v);
	for (int i = 0; i < N; i++) {
		uint32_t want = i < NPIN ? lo : hi;
		bool pin = i < NPIN && pinned;

		H_CHECK(v[i].nrec == 1 && v[i].state == want, "%s: region %d is %s (%u records), "
			"want %s", what, i, thp_state_name(v[i].state), v[i].nrec, thp_state_name(want));
		H_CHECK(!!(v[i].flags & THP_RF_PINNED) == pin, "%s: region %d is %spinned", what, i,
			pin ? "not " : "");
	}
	if (lo == THP_ST_RESIDENT)
		H_CHECK(h_pmd_mapped(m->base, NPIN * REG) == NPIN, "%s: the pinned regions are "
			"not all PMD-mapped (%ld of %d)", what, h_pmd_mapped(m->base, NPIN * REG),
			NPIN);
}

static int ctl_evict_all(const struct h_daemon *d, const char *pid)
{
	const char *argv[] = { "--json", "evict", "--pid", pid, "--all", NULL };
	int st = h_ctl(d, out, sizeof(out), argv);

	H_CHECK(st == 0, "thpswapctl evict --all: exit %d: %s", st, out);
	return (int)h_json_u64(out, "evicted");
}

static void api(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	long long refused0 = h_counter(d, "evict_refused"), refused;
	struct h_region_view v;
	struct h_mem m;
	char pid[16], *last;
	int fd = h_arena_fd(), n;

	snprintf(pid, sizeof(pid), "%d", getpid());
	h_mem_prepare(s, &m, N, 0);
	n = thpswap_pin(s, m.base, NPIN * REG);
	H_CHECK(n == NPIN, "thpswap_pin of %d regions: %d", NPIN, n);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RESIDENT, "pinned");

	n = ctl_evict_all(d, pid);
	H_CHECK(n == N - NPIN, "thpswapctl evict --all evicted %d, want %d", n, N - NPIN);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RAM, "after thpswapctl evict --all");
	refused = h_counter(d, "evict_refused");
	H_CHECK(refused == refused0 + NPIN, "evict_refused %lld, want %lld", refused,
		refused0 + NPIN);

	n = thpswap_advise(s, m.base, m.len, THPSWAP_ADVICE_COLD);
	H_CHECK(n == 0, "advise COLD of pinned and evicted regions evicted %d", n);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RAM, "after advise COLD");
	refused = h_counter(d, "evict_refused");
	H_CHECK(refused == refused0 + 2 * NPIN, "evict_refused %lld after advise, want %lld",
		refused, refused0 + 2 * NPIN);
	h_mem_check(&m, "pinned and evicted regions");

	n = thpswap_unpin(s, m.base, NPIN * REG);
	H_CHECK(n == NPIN, "thpswap_unpin of %d regions: %d", NPIN, n);
	n = h_evict(s, m.base, m.len);
	H_CHECK(n == N, "advise COLD after unpin evicted %d of %d", n, N);
	expect(fd, &m, THP_ST_RAM, false, THP_ST_RAM, "unpinned and evicted");

	/* Pinning an evicted region brings it back, for good. */
	n = thpswap_pin(s, m.base, NPIN * REG);
	H_CHECK(n == NPIN, "thpswap_pin of evicted regions: %d", n);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RAM, "evicted, then pinned");
	n = ctl_evict_all(d, pid);
	H_CHECK(n == 0, "thpswapctl evict --all evicted %d pinned regions", n);
	h_mem_check(&m, "after unpin, evict and pin");

	/* An evicted region that cannot be read cannot be brought back: not
	 * pinned, and said so. */
	last = m.base + (N - 1) * REG;
	H_CHECK(h_evict(s, last, REG) == 1, "evict the last region");
	H_CHECK(mprotect(last, REG, PROT_NONE) == 0, "mprotect: %s", strerror(errno));
	n = thpswap_pin(s, last, REG);
	H_CHECK(n == -EFAULT, "thpswap_pin of an unreadable evicted region: %d, want -EFAULT", n);
	h_arena_view(fd, last, 1, &v);
	H_CHECK(v.state == THP_ST_RAM && !(v.flags & THP_RF_PINNED), "the unreadable region is "
		"%s, %spinned", thp_state_name(v.state), v.flags & THP_RF_PINNED ? "" : "not ");
	H_CHECK(mprotect(last, REG, PROT_READ | PROT_WRITE) == 0, "mprotect: %s", strerror(errno));
	h_mem_check(&m, "after a pin that could not bring a region back");
	H_CHECK(thpswap_pin(NULL, m.base, REG) == -EINVAL && thpswap_pin(s, m.base, 0) == -EINVAL,
		"thpswap_pin without a session or length");
	h_report(s, d, "api");
	h_mem_free(&m);
}

static void admin(struct thpswap_session *s, const struct h_daemon *d, int variant)
{
	long long refused0 = h_counter(d, "evict_refused"), refused;
	char pid[16], addr[32], far[32];
	const char *pin[] = { "--json", "pin", pid, addr, "8M", NULL };
	const char *unpin[] = { "--json", "unpin", pid, addr, "8M", NULL };
	const char *nothing[] = { "--json", "pin", pid, far, "2M", NULL };
	const char *stats[] = { "--json", "stats", "--pid", pid, NULL };
	struct h_mem m;
	int fd = h_arena_fd(), st, n;

	h_mem_prepare(s, &m, N, 0);
	snprintf(pid, sizeof(pid), "%d", getpid());
	snprintf(addr, sizeof(addr), "%p", (void *)m.base);
	snprintf(far, sizeof(far), "%p", (void *)(m.base + 64 * REG));
	_Static_assert(NPIN * REG == 8 << 20, "pin's length is NPIN regions");

	st = h_ctl(d, out, sizeof(out), pin);
	H_CHECK(st == 0 && h_json_u64(out, "regions") == NPIN, "thpswapctl pin: exit %d: %s",
		st, out);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RESIDENT, "pinned by thpswapctl");
	st = h_ctl(d, out, sizeof(out), stats);
	H_CHECK(st == 0 && h_json_u64(out, "pinned") == NPIN, "stats shows %lld pinned: %s",
		h_json_u64(out, "pinned"), out);

	n = ctl_evict_all(d, pid);
	H_CHECK(n == N - NPIN, "thpswapctl evict --all evicted %d, want %d", n, N - NPIN);
	expect(fd, &m, THP_ST_RESIDENT, true, THP_ST_RAM, "after thpswapctl evict --all");
	refused = h_counter(d, "evict_refused");
	H_CHECK(refused == refused0 + NPIN, "evict_refused %lld, want %lld", refused,
		refused0 + NPIN);
	n = thpswap_advise(s, m.base, m.len, THPSWAP_ADVICE_COLD);
	H_CHECK(n == 0, "advise COLD of regions pinned by thpswapctl evicted %d", n);
	h_mem_check(&m, "pinned by thpswapctl");

	st = h_ctl(d, out, sizeof(out), nothing);
	H_CHECK(st == 1 && strstr(out, "no managed region"), "pin of a range without "
		"regions: exit %d: %s", st, out);

	st = h_ctl(d, out, sizeof(out), unpin);
	H_CHECK(st == 0 && h_json_u64(out, "regions") == NPIN, "thpswapctl unpin: exit %d: %s",
		st, out);
	/* The check read the others back in: all of them go now. */
	n = ctl_evict_all(d, pid);
	H_CHECK(n == N, "thpswapctl evict --all after unpin evicted %d, want %d", n, N);
	expect(fd, &m, THP_ST_RAM, false, THP_ST_RAM, "unpinned by thpswapctl and evicted");
	h_mem_check(&m, "unpinned by thpswapctl, evicted and read back");
	h_report(s, d, "admin");
	h_mem_free(&m);
}

static const struct h_case cases[] = {
	{ "api", api, 0, 60 },
	{ "admin", admin, 0, 60 },
};

int main(int argc, char **argv)
{
	return h_run_cases(argc, argv, cases, sizeof(cases) / sizeof(cases[0]), NULL);
}
