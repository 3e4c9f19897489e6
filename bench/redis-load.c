/* SPDX-License-Identifier: MIT */
/*
 * thpswap-redis-load: the Redis scenario's data and its skewed load.
 *
 *   thpswap-redis-load fill --socket PATH --keys N
 *     SET key:%012u (redis-benchmark's __rand_int__ names) for every key
 *     below N, each a 1000-byte value of words, numbers and hex ids (about
 *     as compressible as a cache's values), pipelined on one connection.
 *   thpswap-redis-load get --socket PATH --keys N --seconds S
 *                          [--conns C] [--hot-keys-pct K] [--hot-pct H]
 *                          [--hot contiguous|scattered] [--seed X]
 *     C connections, one thread each, closed loop: GET of a key from the
 *     hot K % of the keys with probability H %, else from all of them; every
 *     reply checked byte for byte against the value SET.  Prints one JSON
 *     object: requests, throughput, latency percentiles, wrong replies.
 *
 * redis-benchmark draws keys uniformly only (-r), hence this: one request
 * stream per connection, each request timed on its own, so the percentiles
 * are of requests, not of batches.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lathist.h"
#include "util.h"

#define VAL_LEN 1000u
#define KEY_FMT "key:%012u"
#define MAX_CONNS 64
/* Latency histograms count us (lathist.h). */

struct opts {
	const char *sock;
	unsigned keys, conns, hot_keys_pct, hot_pct;
	bool scattered;
	double seconds;
	uint64_t seed;
};

struct worker {
	pthread_t th;
	const struct opts *o;
	unsigned id;
	uint64_t requests, wrong, max_us;
	uint32_t *hist;
	int err;
};

static atomic_bool stop;

static uint64_t xs(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Value of key @i: words, decimal numbers and hex ids, deterministic. */
static void value_of(unsigned i, char *v)
{
	static const char *const words[16] = {
		"session ", "user ", "cart ", "item ", "price ", "token ", "the ", "of ",
		"and ", "order ", "shipped ", "pending ", "{\"id\":", "\"n\":", "\"s\":", "}, "
	};
	static const char hex[] = "0123456789abcdef";
	uint64_t x = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i * 0xff51afd7ed558ccdull);
	size_t n = 0;

	xs(&x);
	while (n + 17 <= VAL_LEN) {
		uint64_t r = xs(&x);

		switch (r & 3) {
		case 0: /* a hex id: incompressible-ish */
			for (unsigned k = 0; k < 12; k++)
				v[n++] = hex[(r >> (4 + 4 * k)) & 15];
			v[n++] = ' ';
			break;
		case 1: { /* a small decimal number */
			unsigned d = (unsigned)(r >> 8) % 100000;
			char b[8];
			int m = 0;

			do
				b[m++] = (char)('0' + d % 10);
			while ((d /= 10));
			while (m)
				v[n++] = b[--m];
			v[n++] = ',';
			break;
		}
		default: {
			const char *w = words[(r >> 8) & 15];
			size_t l = strlen(w);

			memcpy(v + n, w, l);
			n += l;
		}
		}
	}
	memset(v + n, '.', VAL_LEN - n);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- fill ---- */

#define FILL_BATCH 256u

static int fill(const struct opts *o)
{
	size_t cap = FILL_BATCH * (VAL_LEN + 64);
	char *buf = malloc(cap), v[VAL_LEN], ok[FILL_BATCH * 5];
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fd = connect_unix(o->sock);
	if (fd < 0) {
		free(buf);
		return fd;
	}
	for (unsigned i = 0; i < o->keys && !r;) {
		unsigned n = 0;
		size_t len = 0;

		for (; n < FILL_BATCH && i < o->keys; n++, i++) {
			char key[32];
			int kl = snprintf(key, sizeof(key), KEY_FMT, i);

			value_of(i, v);
			len += (size_t)snprintf(buf + len, cap - len, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%u\r\n",
						kl, key, VAL_LEN);
			memcpy(buf + len, v, VAL_LEN);
			len += VAL_LEN;
			memcpy(buf + len, "\r\n", 2);
			len += 2;
		}
		r = write_all(fd, buf, len);
		/* Every reply is "+OK\r\n": anything else is an error. */
		if (!r)
			r = read_all(fd, ok, (size_t)n * 5);
		for (unsigned k = 0; !r && k < n; k++)
			if (memcmp(ok + 5 * k, "+OK\r\n", 5))
				r = -EPROTO;
	}
	close(fd);
	free(buf);
	return r;
}

/* ---- get ---- */

static double hist_pct(const uint32_t *h, uint64_t n, double p)
{
	uint64_t want = (uint64_t)(p / 100.0 * (double)n), seen = 0;

	for (unsigned b = 0; b < H_BUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return hist_value(b);
	}
	return 0;
}

/* Key of the next request: the hot set is K % of the keys, either the
 * first ones loaded (neighbours in memory) or spread over all of them. */
static unsigned next_key(const struct opts *o, uint64_t *x)
{
	unsigned hot = o->keys / 100 * o->hot_keys_pct;
	uint64_t r = xs(x);

	if (hot && r % 100 < o->hot_pct) {
		unsigned k = (unsigned)((r >> 8) % hot);

		if (!o->scattered)
			return k;
		/* Every (100 / K)-th key: one hot key in every few. */
		return (unsigned)((uint64_t)k * o->keys / hot);
	}
	return (unsigned)((r >> 8) % o->keys);
}

static void *get_loop(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	char req[64], hdr[16], got[VAL_LEN + 2], want[VAL_LEN];
	uint64_t x = o->seed * 0x9e3779b97f4a7c15ull + w->id + 1;
	int fd = connect_unix(o->sock);

	if (fd < 0) {
		w->err = fd;
		return NULL;
	}
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned k = next_key(o, &x);
		char key[32];
		int kl = snprintf(key, sizeof(key), KEY_FMT, k);
		int rl = snprintf(req, sizeof(req), "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", kl, key);
		uint64_t t0 = thp_now_ns(), us;
		int r;

		/* "$1000\r\n" then the value and "\r\n". */
		r = write_all(fd, req, (size_t)rl);
		if (!r)
			r = read_all(fd, hdr, 7);
		if (!r && memcmp(hdr, "$1000\r\n", 7)) {
			r = -EPROTO;
		}
		if (!r)
			r = read_all(fd, got, VAL_LEN + 2);
		if (r) {
			w->err = r;
			break;
		}
		us = (thp_now_ns() - t0) / 1000;
		w->hist[hist_bucket(us)]++;
		if (us > w->max_us)
			w->max_us = us;
		w->requests++;
		value_of(k, want);
		if (memcmp(got, want, VAL_LEN) || memcmp(got + VAL_LEN, "\r\n", 2))
			w->wrong++;
	}
	close(fd);
	return NULL;
}

static int get(const struct opts *o)
{
	struct worker w[MAX_CONNS] = { 0 };
	uint32_t *all = calloc(H_BUCKETS, sizeof(*all));
	uint64_t n = 0, wrong = 0, max_us = 0, t0, t1;
	unsigned started = 0;
	int err = 0;

	if (!all)
		return -ENOMEM;
	atomic_store(&stop, false);
	t0 = thp_now_ns();
	for (; started < o->conns; started++) {
		w[started] = (struct worker){ .o = o, .id = started };
		w[started].hist = calloc(H_BUCKETS, sizeof(uint32_t));
		if (!w[started].hist) {
			err = -ENOMEM;
			break;
		}
		err = -pthread_create(&w[started].th, NULL, get_loop, &w[started]);
		if (err) {
			free(w[started].hist);
			break;
		}
	}
	if (!err) {
		struct timespec ts = { .tv_sec = (time_t)o->seconds,
				       .tv_nsec = (long)((o->seconds - (double)(time_t)o->seconds) * 1e9) };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < started; i++) {
		pthread_join(w[i].th, NULL);
		for (unsigned b = 0; b < H_BUCKETS; b++)
			all[b] += w[i].hist[b];
		free(w[i].hist);
		n += w[i].requests;
		wrong += w[i].wrong;
		if (w[i].max_us > max_us)
			max_us = w[i].max_us;
		if (w[i].err && !err)
			err = w[i].err;
	}
	t1 = thp_now_ns();
	if (!err)
		printf("{\"requests\": %" PRIu64 ", \"seconds\": %.3f, \"rps\": %.1f, \"p50_us\": %.0f, "
		       "\"p90_us\": %.0f, \"p99_us\": %.0f, \"p999_us\": %.0f, \"max_us\": %" PRIu64 ", "
		       "\"wrong\": %" PRIu64 ", \"conns\": %u, \"keys\": %u, \"hot_keys_pct\": %u, "
		       "\"hot_pct\": %u, \"hot\": \"%s\"}\n",
		       n, (double)(t1 - t0) / 1e9, (double)n * 1e9 / (double)(t1 - t0),
		       hist_pct(all, n, 50), hist_pct(all, n, 90), hist_pct(all, n, 99),
		       hist_pct(all, n, 99.9), max_us, wrong, o->conns, o->keys, o->hot_keys_pct,
		       o->hot_pct, o->scattered ? "scattered" : "contiguous");
	free(all);
	if (!err && wrong)
		err = -EILSEQ;
	return err;
}

static int usage(FILE *f, int rc)
{
	fputs("usage: thpswap-redis-load fill --socket PATH --keys N\n"
	      "       thpswap-redis-load get --socket PATH --keys N --seconds S [--conns C]\n"
	      "                          [--hot-keys-pct K] [--hot-pct H] [--hot contiguous|scattered]\n"
	      "                          [--seed X]\n", f);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "keys", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 't' },
		{ "conns", required_argument, NULL, 'c' },
		{ "hot-keys-pct", required_argument, NULL, 'K' },
		{ "hot-pct", required_argument, NULL, 'H' },
		{ "hot", required_argument, NULL, 'S' },
		{ "seed", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct opts o = { .conns = 8, .hot_keys_pct = 10, .hot_pct = 90, .seconds = 10, .seed = 1 };
	const char *cmd;
	int c, r;

	if (argc < 2)
		return usage(stderr, 2);
	cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
		return usage(stdout, 0);
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.sock = optarg; break;
		case 'k': o.keys = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 'c': o.conns = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'K': o.hot_keys_pct = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'H': o.hot_pct = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'S': o.scattered = !strcmp(optarg, "scattered"); break;
		case 'x': o.seed = strtoull(optarg, NULL, 0); break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (!o.sock || !o.keys || !o.conns || o.conns > MAX_CONNS || o.hot_keys_pct > 100 ||
	    o.hot_pct > 100 || !(o.seconds > 0))
		return usage(stderr, 2);
	if (!strcmp(cmd, "fill"))
		r = fill(&o);
	else if (!strcmp(cmd, "get"))
		r = get(&o);
	else
		return usage(stderr, 2);
	if (r < 0) {
		fprintf(stderr, "thpswap-redis-load %s: %s\n", cmd, strerror(-r));
		return 1;
	}
	return 0;
}
