/* SPDX-License-Identifier: MIT */
/*
 * A program that never heard of thpswap (not linked to libthpswap), for the
 * run-adopt test, which runs it through thpswap-run.  It makes memory the
 * ways programs do: large malloc blocks (glibc maps them itself), an
 * anonymous mmap, one grown by mremap once it is managed, and a PROT_NONE
 * reservation committed in part by mprotect.  It writes a known pattern to
 * all of it and prints one "range ADDR LEN" line per piece, then "ready".
 * With --no-wait it does not wait for its mapping to be managed before
 * the mremap (the region table may have no room for it).  Then it obeys one command per line on stdin:
 *   check   read every byte back: "ok", or "bad: ..." naming the first
 *           wrong word
 *   fork    a child reads every byte and exits 0 or 1: "fork ok" or
 *           "fork bad: STATUS"; then "session" if the child had a thpswap
 *           session of its own (an arena memfd named for its pid), else
 *           "no session"
 *   exit    exit 0
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1ul << 20)
#define NRANGES 5

static struct range {
	char *p;
	size_t len;
	const char *what;
} ranges[NRANGES];
static unsigned nranges;

/* Word i of range @r: compressible (the agent keeps incompressible
 * regions resident), never zero, and a wrong one says where it belongs. */
static inline uint64_t word(unsigned r, size_t i)
{
	return (uint64_t)(r + 1) << 56 | (uint64_t)(i >> 9) << 12 | (i & 511);
}

static void fill(unsigned r, size_t from, size_t to)
{
	uint64_t *w = (uint64_t *)(void *)ranges[r].p;

	for (size_t i = from / 8; i < to / 8; i++)
		w[i] = word(r, i);
	/* A malloc block's tail, not a whole word. */
	memset(ranges[r].p + to / 8 * 8, 0x5a, to % 8);
}

/* 0, or 1 with a line on @out naming the first wrong word. */
static int check(FILE *out)
{
	for (unsigned r = 0; r < nranges; r++) {
		const uint64_t *w = (const uint64_t *)(const void *)ranges[r].p;
		size_t n = ranges[r].len / 8;

		for (size_t i = 0; i < n; i++)
			if (w[i] != word(r, i)) {
				fprintf(out, "bad: %s at +%#zx (%p): %#llx, want %#llx\n", ranges[r].what,
					i * 8, (void *)&w[i], (unsigned long long)w[i],
					(unsigned long long)word(r, i));
				return 1;
			}
		for (size_t i = n * 8; i < ranges[r].len; i++)
			if ((unsigned char)ranges[r].p[i] != 0x5a) {
				fprintf(out, "bad: %s tail at +%#zx\n", ranges[r].what, i);
				return 1;
			}
	}
	return 0;
}

static void add(char *p, size_t len, const char *what)
{
	if (!p || p == MAP_FAILED) {
		printf("error: %s: %s\n", what, strerror(errno));
		exit(1);
	}
	ranges[nranges] = (struct range){ p, len, what };
	fill(nranges++, 0, len);
}

/* Is [p, p+len) registered with a userfaultfd yet (VmFlags "um")?  The
 * mremap below is to move memory the agent manages. */
static int registered(const char *p)
{
	char line[512];
	unsigned long lo = 0, hi = 0;
	int in = 0, um = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = lo <= (unsigned long)p && (unsigned long)p < hi;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			um = strstr(line, " um") != NULL;
			break;
		}
	}
	fclose(f);
	return um;
}

/* Does this process hold a thpswap arena of its own?  (What thpswap-run
 * gives a fork child; looked up in /proc/self/fd, by its name.) */
static int own_session(void)
{
	char want[64], path[64], link[256];

	snprintf(want, sizeof(want), "/memfd:thpswap-arena:%d ", (int)getpid());
	for (int fd = 0; fd < 1024; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = 0;
		if (!strncmp(link, want, strlen(want)))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int wait_managed = !(argc > 1 && !strcmp(argv[1], "--no-wait"));
	char cmd[64], *p;
	size_t grow_from = 8 * MIB, grow_to = 24 * MIB;
	struct timespec pause = { 0, 10 * 1000 * 1000 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	add(malloc(40 * MIB), 40 * MIB, "malloc 40 MiB");
	add(malloc(24 * MIB + 123), 24 * MIB + 123, "malloc 24 MiB + 123");
	add(mmap(NULL, 32 * MIB + 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	    32 * MIB + 8192, "mmap 32 MiB + 8 KiB");

	/* Grown by mremap once managed: the agent must follow the move. */
	p = mmap(NULL, grow_from, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	add(p, grow_from, "mremap'ed 8 -> 24 MiB");
	for (unsigned i = 0; wait_managed && i < 3000 && !registered(p); i++)
		nanosleep(&pause, NULL); /* polling what the adoption does, 30 s at most */
	if (wait_managed && !registered(p)) {
		printf("error: the mapping at %p was not adopted in 30 s\n", (void *)p);
		return 1;
	}
	p = mremap(p, grow_from, grow_to, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		printf("error: mremap: %s\n", strerror(errno));
		return 1;
	}
	ranges[nranges - 1].p = p;
	ranges[nranges - 1].len = grow_to;
	fill(nranges - 1, grow_from, grow_to);

	/* Reserved, then committed in part: adopted once it is read-write. */
	p = mmap(NULL, 64 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED && mprotect(p, 20 * MIB, PROT_READ | PROT_WRITE))
		p = MAP_FAILED;
	add(p, 20 * MIB, "reserved 64 MiB, 20 committed");

	for (unsigned r = 0; r < nranges; r++)
		printf("range %p %zu %s\n", (void *)ranges[r].p, ranges[r].len, ranges[r].what);
	printf("ready\n");
	while (fgets(cmd, sizeof(cmd), stdin)) {
		if (!strcmp(cmd, "check\n")) {
			if (!check(stdout))
				printf("ok\n");
		} else if (!strcmp(cmd, "fork\n")) {
			pid_t pid = fork();
			int st;

			if (pid == 0)
				_exit(check(stderr) | own_session() << 1);
			if (pid < 0 || waitpid(pid, &st, 0) != pid)
				printf("fork bad: %s\n", strerror(errno));
			else if (WIFEXITED(st) && (WEXITSTATUS(st) & 1) == 0)
				printf("fork ok\n%s\n", WEXITSTATUS(st) & 2 ? "session" : "no session");
			else
				printf("fork bad: status %#x\n", st);
		} else if (!strcmp(cmd, "exit\n")) {
			return 0;
		} else {
			printf("error: unknown command %s", cmd);
		}
	}
	return 0;
}
