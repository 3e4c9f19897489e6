/* SPDX-License-Identifier: MIT */
/*
 * The smallest libthpswap client, built only from the installed header,
 * library and pkg-config file (the deploy test installed-client does so):
 *
 *   cc -o minimal minimal.c $(pkg-config --cflags --libs libthpswap)
 *   ./minimal [SOCKET]
 *
 * Maps 4 MiB of managed memory, writes it, has it evicted, reads it back.
 * Exit status: 0 every byte right; 1 a byte differs or a call failed;
 * 3 no thpswapd listens on the socket.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <thpswap/thpswap.h>

#define LEN (2 * THPSWAP_REGION_SIZE)

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 4096);
}

int main(int argc, char **argv)
{
	struct thpswap_session *s;
	unsigned char *p;
	void *mem;
	int r, evicted;

	r = thpswap_open(&s, argc > 1 ? argv[1] : NULL);
	if (r < 0) {
		fprintf(stderr, "thpswap_open: %s\n", strerror(-r));
		return r == -ENOENT || r == -ECONNREFUSED ? 3 : 1;
	}
	r = thpswap_map(s, LEN, &mem);
	if (r < 0) {
		fprintf(stderr, "thpswap_map: %s\n", strerror(-r));
		thpswap_close(s);
		return 1;
	}
	p = mem;
	for (size_t i = 0; i < LEN; i++)
		p[i] = pattern(i);
	evicted = thpswap_advise(s, mem, LEN, THPSWAP_ADVICE_COLD);
	for (size_t i = 0; i < LEN; i++)
		if (p[i] != pattern(i)) {
			fprintf(stderr, "byte %zu differs after eviction\n", i);
			return 1;
		}
	printf("%d of 2 regions evicted and read back intact\n", evicted);
	r = thpswap_unmap(s, mem, LEN);
	if (thpswap_close(s) < 0 || r < 0 || evicted < 0)
		return 1;
	return 0;
}
