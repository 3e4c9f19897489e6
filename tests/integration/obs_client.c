/* SPDX-License-Identifier: MIT */
/*
 * A real libthpswap client the Python tests of thpswapctl's views drive
 * (test_obs.py): maps N regions, writes a pattern into every page, says
 * "ready PID ADDR", then obeys one command per line on stdin and answers one
 * line each:
 *   evict     advise COLD on every region         -> "evicted N"
 *   touch     read every page, check the pattern  -> "touched R" (restores so far)
 *   churn     start evicting and touching in a thread until "stop" -> "churning"
 *   stop      stop churning                       -> "stopped CYCLES"
 *   pin K     thpswap_pin the first K regions     -> "pinned N"
 *   quit      close the session and exit 0
 * A byte that reads wrong exits 1 naming it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thpswap/thpswap.h"

static struct thpswap_session *s;
static char *base;
static size_t nreg, len;
static atomic_bool stop;
static uint64_t cycles;

static uint64_t word(size_t off)
{
	return 0x5448505300000000ull ^ off;
}

static void fill(void)
{
	for (size_t off = 0; off < len; off += 4096)
		for (size_t w = 0; w < 64; w++)
			((uint64_t *)(base + off))[w] = word(off + w * 8);
}

static void check(void)
{
	for (size_t off = 0; off < len; off += 4096)
		for (size_t w = 0; w < 64; w++)
			if (((volatile uint64_t *)(base + off))[w] != word(off + w * 8)) {
				fprintf(stderr, "obs_client: byte %zu reads wrong\n", off + w * 8);
				exit(1);
			}
}

static int evict_all(void)
{
	int n = thpswap_advise(s, base, len, THPSWAP_ADVICE_COLD);

	if (n < 0) {
		fprintf(stderr, "obs_client: advise: %s\n", strerror(-n));
		exit(1);
	}
	return n;
}

static void *churn(void *arg)
{
	while (!atomic_load(&stop)) {
		evict_all();
		check();
		cycles++;
	}
	return arg;
}

int main(int argc, char **argv)
{
	struct thpswap_stats st;
	pthread_t t;
	bool churning = false;
	char line[64];
	int r;

	nreg = argc > 1 ? strtoul(argv[1], NULL, 10) : 4;
	len = nreg * THPSWAP_REGION_SIZE;
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = thpswap_open(&s, NULL);
	if (r) {
		fprintf(stderr, "obs_client: thpswap_open: %s\n", strerror(-r));
		return r == -ECANCELED ? 3 : 2;
	}
	r = thpswap_map(s, len, (void **)&base);
	if (r) {
		fprintf(stderr, "obs_client: thpswap_map: %s\n", strerror(-r));
		return 2;
	}
	fill();
	printf("ready %d %p\n", (int)getpid(), (void *)base);
	while (fgets(line, sizeof(line), stdin)) {
		if (!strcmp(line, "evict\n")) {
			printf("evicted %d\n", evict_all());
		} else if (!strcmp(line, "touch\n")) {
			check();
			thpswap_get_stats(s, &st, sizeof(st));
			printf("touched %" PRIu64 "\n", st.restores);
		} else if (!strcmp(line, "churn\n") && !churning) {
			atomic_store(&stop, false);
			if (pthread_create(&t, NULL, churn, NULL))
				return 2;
			churning = true;
			printf("churning\n");
		} else if (!strcmp(line, "stop\n") && churning) {
			atomic_store(&stop, true);
			pthread_join(t, NULL);
			churning = false;
			printf("stopped %" PRIu64 "\n", cycles);
		} else if (!strncmp(line, "pin ", 4)) {
			size_t k = strtoul(line + 4, NULL, 10);

			printf("pinned %d\n", thpswap_pin(s, base, k * THPSWAP_REGION_SIZE));
		} else if (!strcmp(line, "quit\n")) {
			break;
		} else {
			fprintf(stderr, "obs_client: what is '%s'?\n", line);
			return 2;
		}
	}
	if (churning) {
		atomic_store(&stop, true);
		pthread_join(t, NULL);
	}
	check();
	return thpswap_close(s) ? 1 : 0;
}
