/* SPDX-License-Identifier: MIT */
/*
 * thpswapd settings: embedded defaults, then the settings file, then the
 * command line.  The file takes the long option names as "key = value".
 * Each source is parsed into a layer (values plus which were set) so that
 * a later layer's --profile can still be refined by an explicit
 * --codec/--zstd-level/--frames of the same layer, and a later layer wins.
 * A --zstd-level asks for zstd: it sets the codec too, unless its layer
 * names a codec of its own.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zstd.h>

#include "arena.h"
#include "config.h"
#include "thpswapd.h"
#include "thpswap/thpswap.h"

#define DEFAULT_CONFIG "/etc/thpswap/thpswapd.conf"

enum key {
	K_SOCKET,
	K_PROFILE,
	K_ZSTD_LEVEL,
	K_FRAMES,
	K_BUDGET,
	K_INCOMPRESSIBLE,
	K_MAX_STORED_PCT,
	K_POOL,
	K_MAX_REGIONS,
	K_INTERVAL,
	K_SYSROOT,
	K_VERBOSE,
	K_MAX_CONNS_PER_UID,
	K_HELLO_TIMEOUT,
	K_EVICT_QUEUE,
	K_EVICT_TIMEOUT,
	K_ADMIN_GROUP,
	K_PRESSURE, K_PRESSURE_INTERVAL, K_PRESSURE_TARGET, K_COLD_AGE, K_PROMOTION_WINDOW,
	K_PROMOTION_TARGET, K_EVICT_STEP, K_EVICT_STEP_MAX, K_CGROUP_HIGH_PCT, K_RESIDENT_TARGET,
	K_WRITE_TRACKING, K_SOFT_DIRTY,
	K_CODEC,
	K_TIERS, K_FILE_DIR, K_FILE_MAX, K_FILE_AGE, K_FILE_RAM,
	K__MAX
};

_Static_assert(K__MAX <= 64, "a settings file's keys are a 64-bit mask");
#define BIT(k) (1ull << (k))

static const char *const key_names[K__MAX] = {
	[K_SOCKET] = "socket",
	[K_PROFILE] = "profile",
	[K_ZSTD_LEVEL] = "zstd-level",
	[K_FRAMES] = "frames",
	[K_BUDGET] = "budget",
	[K_INCOMPRESSIBLE] = "incompressible",
	[K_MAX_STORED_PCT] = "max-stored-pct",
	[K_POOL] = "pool",
	[K_MAX_REGIONS] = "max-regions",
	[K_INTERVAL] = "interval",
	[K_SYSROOT] = "sysroot",
	[K_VERBOSE] = "verbose",
	[K_MAX_CONNS_PER_UID] = "max-conns-per-uid",
	[K_HELLO_TIMEOUT] = "hello-timeout",
	[K_EVICT_QUEUE] = "evict-queue",
	[K_EVICT_TIMEOUT] = "evict-timeout",
	[K_ADMIN_GROUP] = "admin-group",
	[K_PRESSURE] = "pressure",
	[K_PRESSURE_INTERVAL] = "pressure-interval",
	[K_PRESSURE_TARGET] = "pressure-target",
	[K_COLD_AGE] = "cold-age",
	[K_PROMOTION_WINDOW] = "promotion-window",
	[K_PROMOTION_TARGET] = "promotion-target",
	[K_EVICT_STEP] = "evict-step",
	[K_EVICT_STEP_MAX] = "evict-step-max",
	[K_CGROUP_HIGH_PCT] = "cgroup-high-pct",
	[K_RESIDENT_TARGET] = "resident-target",
	[K_WRITE_TRACKING] = "write-tracking",
	[K_SOFT_DIRTY] = "soft-dirty",
	[K_CODEC] = "codec",
	[K_TIERS] = "tiers",
	[K_FILE_DIR] = "file-dir",
	[K_FILE_MAX] = "file-max",
	[K_FILE_AGE] = "file-age",
	[K_FILE_RAM] = "file-ram",
};

struct layer {
	struct thpd_config v;
	uint64_t set; /* BIT(enum key) */
};

static const struct {
	const char *name;
	uint32_t codec;
	int level;
	uint32_t frames;
} profiles[] = {
	/* LZ4 decodes twice as fast as zstd -5 and stores heap-like data
	 * as densely (docs/BENCHMARKS.md) */
	[THPD_PROFILE_FAST] = { "fast", THP_CODEC_LZ4, -5, 4 },
	[THPD_PROFILE_DENSE] = { "dense", THP_CODEC_ZSTD, 6, 2 },
};

static void defaults(struct thpd_config *c)
{
	*c = (struct thpd_config){
		.profile = THPD_PROFILE_FAST,
		.codec = profiles[THPD_PROFILE_FAST].codec,
		.zstd_level = profiles[THPD_PROFILE_FAST].level,
		.frames = profiles[THPD_PROFILE_FAST].frames,
		.budget_bytes = 0,
		.incompressible = THP_INCOMP_KEEP,
		.tiers = 0,
		.file_max_mb = 1024,
		.file_age_ms = 30000,
		.file_ram_mb = 0,
		.max_stored_pct = 90,
		.pool_slots = 8,
		.max_regions = 65536,
		.interval_ms = 200,
		.max_conns_per_uid = 256,
		.hello_timeout_ms = 5000,
		.evict_queue = 16,
		.evict_timeout_s = 60,
		/* the pressure loop: 10 ms of stall per 6 s stops it, a region
		 * not faulted for a minute may go, and back off when more than
		 * 0.2 % of the working set per minute comes back within a minute */
		.pressure = true,
		.pressure_interval_ms = 6000,
		.pressure_target_us = 10000,
		.cold_age_s = 60,
		.promotion_window_s = 60,
		.promotion_target_mpct = 200,
		.evict_step = 4,
		.evict_step_max = 256,
		.cgroup_high_pct = 90,
		.resident_target_bytes = 0,
		/* the agents' write-protect tracking, measured to keep every
		 * PMD; soft-dirty off: never measured (docs/ARCHITECTURE.md,
		 * "What cold means") */
		.write_tracking = true,
		.soft_dirty = false,
	};
	snprintf(c->socket, sizeof(c->socket), "%s", THPSWAP_DEFAULT_SOCKET);
}

static int parse_ll(const char *s, long long min, long long max, long long *out,
		    char *err, size_t errsz)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno == ERANGE) {
		snprintf(err, errsz, "'%s' is not a whole number", s);
		return -EINVAL;
	}
	if (v < min || v > max) {
		snprintf(err, errsz, "%lld is out of range %lld..%lld", v, min, max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

/* A decimal like "0.2" in thousandths (200), within [0, @max]. */
static int parse_milli(const char *s, uint32_t max, uint32_t *out, char *err, size_t errsz)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno == ERANGE || !(v >= 0 && v * 1000 <= max)) {
		snprintf(err, errsz, "'%s' is not a number in 0..%u", s, max / 1000);
		return -EINVAL;
	}
	*out = (uint32_t)(v * 1000 + 0.5);
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(s, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

static int copy_str(char *dst, size_t dstsz, const char *s, char *err, size_t errsz)
{
	if (strlen(s) >= dstsz) {
		snprintf(err, errsz, "the value is too long (%zu bytes, at most %zu)",
			 strlen(s), dstsz - 1);
		return -ENAMETOOLONG;
	}
	strcpy(dst, s);
	return 0;
}

/* "ram", "ram,file", "ram,kernel", "ram,file,kernel" (any order, each
 * once): the tiers besides the zero tier.  RAM cannot be left out: the file
 * tier takes records from it, and the kernel tier takes what it refused. */
static int parse_tiers(const char *val, uint32_t *tiers, char *err, size_t errsz)
{
	char buf[64], *save = NULL, *t;
	bool ram = false;

	*tiers = 0;
	if (copy_str(buf, sizeof(buf), val, err, errsz))
		return -EINVAL;
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "ram") && !ram) {
			ram = true;
		} else if (!strcmp(t, "file") && !(*tiers & THP_TIER_FILE)) {
			*tiers |= THP_TIER_FILE;
		} else if (!strcmp(t, "kernel") && !(*tiers & THP_TIER_KERNEL)) {
			*tiers |= THP_TIER_KERNEL;
		} else {
			snprintf(err, errsz, "'%s' in '%s' is not a tier (ram, file, kernel), or is there twice",
				 t, val);
			return -EINVAL;
		}
	}
	if (!ram) {
		snprintf(err, errsz, "'%s' leaves out ram, which every other tier takes from", val);
		return -EINVAL;
	}
	return 0;
}

/* Check @val for key @k and store it in @l.  0, or -errno with @err set. */
static int set_key(struct layer *l, enum key k, const char *val, char *err, size_t errsz)
{
	struct thpd_config *c = &l->v;
	long long v = 0;
	int r = 0;

	switch (k) {
	case K_SOCKET:
		if (!*val) {
			snprintf(err, errsz, "the socket path is empty");
			return -EINVAL;
		}
		r = copy_str(c->socket, sizeof(c->socket), val, err, errsz);
		break;
	case K_SYSROOT:
		r = copy_str(c->sysroot, sizeof(c->sysroot), val, err, errsz);
		break;
	case K_PROFILE:
		r = -EINVAL;
		for (int p = 0; p < (int)(sizeof(profiles) / sizeof(profiles[0])); p++)
			if (!strcmp(val, profiles[p].name))
				c->profile = p, r = 0;
		if (r)
			snprintf(err, errsz, "'%s' is not a profile (fast or dense)", val);
		break;
	case K_ZSTD_LEVEL: {
		ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_compressionLevel);

		if (ZSTD_isError(b.error)) {
			snprintf(err, errsz, "libzstd reports no level bounds");
			return -EINVAL;
		}
		r = parse_ll(val, b.lowerBound, b.upperBound, &v, err, errsz);
		c->zstd_level = (int)v;
		break;
	}
	case K_CODEC:
		if (!strcmp(val, "lz4")) {
			c->codec = THP_CODEC_LZ4;
		} else if (!strcmp(val, "zstd")) {
			c->codec = THP_CODEC_ZSTD;
		} else {
			snprintf(err, errsz, "'%s' is not a codec (lz4 or zstd)", val);
			r = -EINVAL;
		}
		break;
	case K_FRAMES:
		r = parse_ll(val, 1, THP_MAX_FRAMES, &v, err, errsz);
		c->frames = (uint32_t)v;
		break;
	case K_BUDGET:
		/* MiB; the upper bound keeps the byte count far from overflow */
		r = parse_ll(val, 0, 1LL << 40, &v, err, errsz);
		c->budget_bytes = (uint64_t)v << 20;
		break;
	case K_INCOMPRESSIBLE:
		if (!strcmp(val, "keep")) {
			c->incompressible = THP_INCOMP_KEEP;
		} else if (!strcmp(val, "raw")) {
			c->incompressible = THP_INCOMP_RAW;
		} else {
			snprintf(err, errsz, "'%s' is neither keep nor raw", val);
			r = -EINVAL;
		}
		break;
	case K_TIERS:
		r = parse_tiers(val, &c->tiers, err, errsz);
		break;
	case K_FILE_DIR:
		if (*val != '/') {
			snprintf(err, errsz, "'%s' is not an absolute path", val);
			r = -EINVAL;
			break;
		}
		r = copy_str(c->file_dir, sizeof(c->file_dir), val, err, errsz);
		break;
	case K_FILE_MAX:
		r = parse_ll(val, 1, 1 << 30, &v, err, errsz);
		c->file_max_mb = (uint32_t)v;
		break;
	case K_FILE_AGE:
		/* seconds, kept as ms: the agent's unit */
		r = parse_ll(val, 0, 86400, &v, err, errsz);
		c->file_age_ms = (uint32_t)v * 1000;
		break;
	case K_FILE_RAM:
		r = parse_ll(val, 0, 1 << 30, &v, err, errsz);
		c->file_ram_mb = (uint32_t)v;
		break;
	case K_MAX_STORED_PCT:
		r = parse_ll(val, 1, 100, &v, err, errsz);
		c->max_stored_pct = (uint32_t)v;
		break;
	case K_POOL:
		r = parse_ll(val, 0, 4096, &v, err, errsz);
		c->pool_slots = (uint32_t)v;
		break;
	case K_MAX_REGIONS:
		/* thp_arena_validate() accepts at most 1 << 24 records */
		r = parse_ll(val, 1, 1 << 24, &v, err, errsz);
		c->max_regions = (uint32_t)v;
		break;
	case K_INTERVAL:
		r = parse_ll(val, 10, 3600 * 1000, &v, err, errsz);
		c->interval_ms = (uint32_t)v;
		break;
	case K_MAX_CONNS_PER_UID:
		r = parse_ll(val, 1, 1 << 20, &v, err, errsz);
		c->max_conns_per_uid = (uint32_t)v;
		break;
	case K_HELLO_TIMEOUT:
		r = parse_ll(val, 10, 3600 * 1000, &v, err, errsz);
		c->hello_timeout_ms = (uint32_t)v;
		break;
	case K_EVICT_QUEUE:
		r = parse_ll(val, 1, 4096, &v, err, errsz);
		c->evict_queue = (uint32_t)v;
		break;
	case K_EVICT_TIMEOUT:
		r = parse_ll(val, 1, 3600, &v, err, errsz);
		c->evict_timeout_s = (uint32_t)v;
		break;
	case K_ADMIN_GROUP:
		/* a group name; "" = none (root only) */
		r = copy_str(c->admin_group, sizeof(c->admin_group), val, err, errsz);
		break;
	case K_PRESSURE:
		r = parse_bool(val, &c->pressure);
		if (r)
			snprintf(err, errsz, "'%s' is not yes or no", val);
		break;
	case K_PRESSURE_INTERVAL:
		r = parse_ll(val, 100, 3600 * 1000, &v, err, errsz);
		c->pressure_interval_ms = (uint32_t)v;
		break;
	case K_PRESSURE_TARGET:
		r = parse_ll(val, 0, 3600LL * 1000 * 1000, &v, err, errsz);
		c->pressure_target_us = (uint32_t)v;
		break;
	case K_COLD_AGE:
		r = parse_ll(val, 0, 7 * 24 * 3600, &v, err, errsz);
		c->cold_age_s = (uint32_t)v;
		break;
	case K_PROMOTION_WINDOW:
		r = parse_ll(val, 0, 24 * 3600, &v, err, errsz);
		c->promotion_window_s = (uint32_t)v;
		break;
	case K_PROMOTION_TARGET:
		r = parse_milli(val, 100 * 1000, &c->promotion_target_mpct, err, errsz);
		break;
	case K_EVICT_STEP:
		r = parse_ll(val, 1, 1 << 20, &v, err, errsz);
		c->evict_step = (uint32_t)v;
		break;
	case K_EVICT_STEP_MAX:
		r = parse_ll(val, 1, 1 << 20, &v, err, errsz);
		c->evict_step_max = (uint32_t)v;
		break;
	case K_CGROUP_HIGH_PCT:
		r = parse_ll(val, 1, 100, &v, err, errsz);
		c->cgroup_high_pct = (uint32_t)v;
		break;
	case K_RESIDENT_TARGET:
		r = parse_ll(val, 0, 1LL << 40, &v, err, errsz);
		c->resident_target_bytes = (uint64_t)v << 20;
		break;
	case K_WRITE_TRACKING:
	case K_SOFT_DIRTY:
		r = parse_bool(val, k == K_WRITE_TRACKING ? &c->write_tracking : &c->soft_dirty);
		if (r)
			snprintf(err, errsz, "'%s' is not yes or no", val);
		break;
	case K_VERBOSE:
		r = parse_bool(val, &c->verbose);
		if (r)
			snprintf(err, errsz, "'%s' is not yes or no", val);
		break;
	case K__MAX:
		return -EINVAL;
	}
	if (r == 0)
		l->set |= BIT(k);
	return r;
}

static void apply(struct thpd_config *c, const struct layer *l)
{
	const struct thpd_config *v = &l->v;

	if (l->set & BIT(K_PROFILE)) {
		c->profile = v->profile;
		c->codec = profiles[v->profile].codec;
		c->zstd_level = profiles[v->profile].level;
		c->frames = profiles[v->profile].frames;
	}
	if ((l->set & BIT(K_ZSTD_LEVEL)) && !(l->set & BIT(K_CODEC)))
		c->codec = THP_CODEC_ZSTD;
#define TAKE(k, field) do { if (l->set & BIT(k)) c->field = v->field; } while (0)
	TAKE(K_CODEC, codec);
	TAKE(K_ZSTD_LEVEL, zstd_level);
	TAKE(K_FRAMES, frames);
	TAKE(K_BUDGET, budget_bytes);
	TAKE(K_INCOMPRESSIBLE, incompressible);
	TAKE(K_MAX_STORED_PCT, max_stored_pct);
	TAKE(K_POOL, pool_slots);
	TAKE(K_MAX_REGIONS, max_regions);
	TAKE(K_INTERVAL, interval_ms);
	TAKE(K_VERBOSE, verbose);
	TAKE(K_MAX_CONNS_PER_UID, max_conns_per_uid);
	TAKE(K_HELLO_TIMEOUT, hello_timeout_ms);
	TAKE(K_EVICT_QUEUE, evict_queue);
	TAKE(K_EVICT_TIMEOUT, evict_timeout_s);
	TAKE(K_PRESSURE, pressure);
	TAKE(K_PRESSURE_INTERVAL, pressure_interval_ms);
	TAKE(K_PRESSURE_TARGET, pressure_target_us);
	TAKE(K_COLD_AGE, cold_age_s);
	TAKE(K_PROMOTION_WINDOW, promotion_window_s);
	TAKE(K_PROMOTION_TARGET, promotion_target_mpct);
	TAKE(K_EVICT_STEP, evict_step);
	TAKE(K_EVICT_STEP_MAX, evict_step_max);
	TAKE(K_CGROUP_HIGH_PCT, cgroup_high_pct);
	TAKE(K_RESIDENT_TARGET, resident_target_bytes);
	TAKE(K_WRITE_TRACKING, write_tracking);
	TAKE(K_SOFT_DIRTY, soft_dirty);
	TAKE(K_TIERS, tiers);
	TAKE(K_FILE_MAX, file_max_mb);
	TAKE(K_FILE_AGE, file_age_ms);
	TAKE(K_FILE_RAM, file_ram_mb);
#undef TAKE
	if (l->set & BIT(K_SOCKET))
		memcpy(c->socket, v->socket, sizeof(c->socket));
	if (l->set & BIT(K_SYSROOT))
		memcpy(c->sysroot, v->sysroot, sizeof(c->sysroot));
	if (l->set & BIT(K_FILE_DIR))
		memcpy(c->file_dir, v->file_dir, sizeof(c->file_dir));
	if (l->set & BIT(K_ADMIN_GROUP))
		memcpy(c->admin_group, v->admin_group, sizeof(c->admin_group));
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Parse settings file @path into @l.  @must_exist: -c was given.
 * Returns 0 or THPD_EXIT_USAGE after printing the reason. */
static int load_file(struct layer *l, const char *path, bool must_exist)
{
	char *line = NULL, err[256];
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int status = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && !must_exist)
			return 0;
		fprintf(stderr, "thpswapd: cannot read settings file %s: %s\n", path, strerror(errno));
		return THPD_EXIT_USAGE;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *s, *eq, *key, *val;
		int k;

		lineno++;
		/* The string functions below would stop at it, and take what
		 * follows for nothing. */
		if (memchr(line, '\0', (size_t)n)) {
			fprintf(stderr, "thpswapd: %s:%u: a NUL byte in the line (is it a text "
				"file?)\n", path, lineno);
			status = THPD_EXIT_USAGE;
			break;
		}
		s = strchr(line, '#');
		if (s)
			*s = '\0';
		s = trim(line);
		if (!*s)
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "thpswapd: %s:%u: expected 'key = value', got '%s'\n",
				path, lineno, s);
			status = THPD_EXIT_USAGE;
			break;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		for (k = 0; k < K__MAX; k++)
			if (!strcmp(key, key_names[k]))
				break;
		if (k == K__MAX) {
			fprintf(stderr, "thpswapd: %s:%u: unknown setting '%s' (see thpswapd.conf(5))\n",
				path, lineno, key);
			status = THPD_EXIT_USAGE;
			break;
		}
		if (set_key(l, (enum key)k, val, err, sizeof(err)) < 0) {
			fprintf(stderr, "thpswapd: %s:%u: %s: %s\n", path, lineno, key, err);
			status = THPD_EXIT_USAGE;
			break;
		}
	}
	if (!status && ferror(f)) {
		fprintf(stderr, "thpswapd: cannot read settings file %s: %s\n", path, strerror(errno));
		status = THPD_EXIT_USAGE;
	}
	free(line);
	fclose(f);
	return status;
}

static void usage(FILE *f)
{
	fputs(
"Usage: thpswapd [OPTIONS]\n"
"Keep transparent huge pages whole across swap: the thpswap daemon.\n"
"\n"
"  -s, --socket PATH         listen on PATH (default " THPSWAP_DEFAULT_SOCKET ", its directory created 0755);\n"
"                            ignored when socket-activated (LISTEN_FDS, name \"control\")\n"
"  -c, --config FILE         settings file (default " DEFAULT_CONFIG " if it exists, else the embedded defaults)\n"
"      --profile fast|dense  fast: LZ4, 4 frames per region (default); dense: zstd level 6, 2 frames\n"
"      --codec lz4|zstd      override the profile's codec (zstd at --zstd-level)\n"
"      --zstd-level N        compress with zstd at level N (ZSTD_minCLevel..22, checked with ZSTD_cParam_getBounds;\n"
"                            default -5 for the fast profile, 6 for dense)\n"
"      --frames N            frames per 2 MiB region, 1..8 (independently decompressible, restored in parallel)\n"
"      --budget MIB          per-client resident budget in MiB; above it the daemon evicts the least-recently-faulted\n"
"                            resident regions, not those it evicted by mistake lately (0 = no budget; default 0)\n"
"      --incompressible keep|raw   what to do with regions the codec cannot shrink below --max-stored-pct (default keep:\n"
"                            stay resident, counted; raw: stored raw, never expanded)\n"
"      --max-stored-pct P    store compressed only if <= P % of 2 MiB (default 90)\n"
"      --tiers ram[,file][,kernel]  where evicted regions go besides the zero tier (default ram); file: RAM records\n"
"                            move to a file per client in --file-dir, by age and over --file-ram; kernel: regions\n"
"                            the codec cannot shrink go to the kernel's swap (where a swap device is on), made one\n"
"                            huge page again when they come back, instead of staying resident\n"
"      --file-dir DIR        the file tier's directory: each client's file is an O_TMPFILE there (O_DIRECT if taken)\n"
"      --file-max MIB        the most one client's file may hold (default 1024)\n"
"      --file-age S          a record in RAM this long moves to the file (default 30; 0: at once)\n"
"      --file-ram MIB        over this much in one client's RAM tier the oldest records move too (default 0: none)\n"
"      --pool N              pre-faulted huge pages each client keeps for restores (default 8)\n"
"      --max-regions N       largest arena a client may ask for, in 2 MiB regions (default 65536 = 128 GiB)\n"
"      --interval MS         policy tick (default 200)\n"
"\n"
"Limits on peers (each hit is counted in thpswapctl status and logged once per peer):\n"
"      --max-conns-per-uid N connections one uid may hold, before and after HELLO (default 256)\n"
"      --hello-timeout MS    close a connection that sends no HELLO within MS (default 5000)\n"
"      --evict-queue N       eviction requests queued per client, the one in flight included;\n"
"                            more are refused with EBUSY (default 16)\n"
"      --evict-timeout S     a client that does not answer an EVICT within S seconds fails it and\n"
"                            what is queued behind it with ETIMEDOUT (default 60)\n"
"      --admin-group GROUP   members may see and steer every user's sessions with thpswapctl;\n"
"                            others only their own (default none: root only)\n"
"      --sysroot DIR         read /proc and /sys below DIR (tests; the uffd probes stay real)\n"
"      --check               probe the kernel, print what is missing, exit 0 (usable) or 69 (not)\n"
"  -v, --verbose[=yes|no]    log each session and eviction to stderr (--verbose=no: not, over the file's)\n"
"  -h, --help                show this help and exit\n"
"  -V, --version             show the version and exit\n"
"\n"
"Exit statuses: 0 ok; 1 runtime failure; 2 usage/config error; 69 the kernel lacks something required.\n"
"The settings file takes the same names as 'key = value' lines, '#' comments; see thpswapd.conf(5).\n",
	      f);
	fputs(
"\n"
"The pressure loop (each interval: evict a step more of the cold regions while stall and\n"
"promotions stay under target, back off at once when either rises):\n"
"      --pressure yes|no     run it (default yes)\n"
"      --pressure-interval MS  its interval (default 6000)\n"
"      --pressure-target US  memory stall per interval that stops it (default 10000: 10 ms per 6 s)\n"
"      --cold-age S          a region not faulted for S seconds may go (default 60)\n"
"      --promotion-window S  restored within S seconds of its eviction: a mistake (default 60; 0: none)\n"
"      --promotion-target P  back off above P % of the working set promoted per minute (default 0.2)\n"
"      --evict-step N        regions per interval to start with, and at least (default 4)\n"
"      --evict-step-max N    regions per interval at most (default 256)\n"
"      --cgroup-high-pct P   a client's cgroup above P % of its limit: evict whatever stall says (default 90)\n"
"      --resident-target MIB stop once all clients together hold this much resident (default 0: none)\n"
"      --write-tracking yes|no  a region written in the last interval or two is not cold: the\n"
"                            clients' agents write-protect their resident regions each interval\n"
"                            (default yes; a kernel that refuses it leaves a client to faults alone)\n"
"      --soft-dirty yes|no   also read soft-dirty bits through /proc/PID/clear_refs and pagemap\n"
"                            (default no; where the kernel has no soft-dirty it is said once and off)\n",
	      f);
}

enum { O_PROFILE = 256, O_CODEC, O_ZSTD_LEVEL, O_FRAMES, O_BUDGET, O_INCOMPRESSIBLE,
       O_MAX_STORED_PCT, O_POOL, O_MAX_REGIONS, O_INTERVAL, O_SYSROOT, O_CHECK,
       O_MAX_CONNS_PER_UID, O_HELLO_TIMEOUT, O_EVICT_QUEUE, O_EVICT_TIMEOUT, O_ADMIN_GROUP,
       O_TIERS, O_FILE_DIR, O_FILE_MAX, O_FILE_AGE, O_FILE_RAM,
       O_PRESSURE_FIRST };

/* getopt value -> settings key, for the options that are settings */
static int opt_key(int o)
{
	switch (o) {
	case 's': return K_SOCKET;
	case O_PROFILE: return K_PROFILE;
	case O_CODEC: return K_CODEC;
	case O_ZSTD_LEVEL: return K_ZSTD_LEVEL;
	case O_FRAMES: return K_FRAMES;
	case O_BUDGET: return K_BUDGET;
	case O_INCOMPRESSIBLE: return K_INCOMPRESSIBLE;
	case O_MAX_STORED_PCT: return K_MAX_STORED_PCT;
	case O_POOL: return K_POOL;
	case O_MAX_REGIONS: return K_MAX_REGIONS;
	case O_INTERVAL: return K_INTERVAL;
	case O_SYSROOT: return K_SYSROOT;
	case O_MAX_CONNS_PER_UID: return K_MAX_CONNS_PER_UID;
	case O_HELLO_TIMEOUT: return K_HELLO_TIMEOUT;
	case O_EVICT_QUEUE: return K_EVICT_QUEUE;
	case O_EVICT_TIMEOUT: return K_EVICT_TIMEOUT;
	case O_ADMIN_GROUP: return K_ADMIN_GROUP;
	case O_TIERS: return K_TIERS;
	case O_FILE_DIR: return K_FILE_DIR;
	case O_FILE_MAX: return K_FILE_MAX;
	case O_FILE_AGE: return K_FILE_AGE;
	case O_FILE_RAM: return K_FILE_RAM;
	default:
		/* the pressure loop's keys, in enum key order from O_PRESSURE_FIRST */
		if (o >= O_PRESSURE_FIRST && o <= O_PRESSURE_FIRST + (K_SOFT_DIRTY - K_PRESSURE))
			return K_PRESSURE + (o - O_PRESSURE_FIRST);
		return -1;
	}
}

int thpd_config_load(struct thpd_config *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "profile", required_argument, NULL, O_PROFILE },
		{ "codec", required_argument, NULL, O_CODEC },
		{ "zstd-level", required_argument, NULL, O_ZSTD_LEVEL },
		{ "frames", required_argument, NULL, O_FRAMES },
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "incompressible", required_argument, NULL, O_INCOMPRESSIBLE },
		{ "max-stored-pct", required_argument, NULL, O_MAX_STORED_PCT },
		{ "pool", required_argument, NULL, O_POOL },
		{ "max-regions", required_argument, NULL, O_MAX_REGIONS },
		{ "interval", required_argument, NULL, O_INTERVAL },
		{ "sysroot", required_argument, NULL, O_SYSROOT },
		{ "max-conns-per-uid", required_argument, NULL, O_MAX_CONNS_PER_UID },
		{ "hello-timeout", required_argument, NULL, O_HELLO_TIMEOUT },
		{ "evict-queue", required_argument, NULL, O_EVICT_QUEUE },
		{ "evict-timeout", required_argument, NULL, O_EVICT_TIMEOUT },
		{ "admin-group", required_argument, NULL, O_ADMIN_GROUP },
		{ "tiers", required_argument, NULL, O_TIERS },
		{ "file-dir", required_argument, NULL, O_FILE_DIR },
		{ "file-max", required_argument, NULL, O_FILE_MAX },
		{ "file-age", required_argument, NULL, O_FILE_AGE },
		{ "file-ram", required_argument, NULL, O_FILE_RAM },
		{ "pressure", required_argument, NULL, O_PRESSURE_FIRST },
		{ "pressure-interval", required_argument, NULL, O_PRESSURE_FIRST + 1 },
		{ "pressure-target", required_argument, NULL, O_PRESSURE_FIRST + 2 },
		{ "cold-age", required_argument, NULL, O_PRESSURE_FIRST + 3 },
		{ "promotion-window", required_argument, NULL, O_PRESSURE_FIRST + 4 },
		{ "promotion-target", required_argument, NULL, O_PRESSURE_FIRST + 5 },
		{ "evict-step", required_argument, NULL, O_PRESSURE_FIRST + 6 },
		{ "evict-step-max", required_argument, NULL, O_PRESSURE_FIRST + 7 },
		{ "cgroup-high-pct", required_argument, NULL, O_PRESSURE_FIRST + 8 },
		{ "resident-target", required_argument, NULL, O_PRESSURE_FIRST + 9 },
		{ "write-tracking", required_argument, NULL, O_PRESSURE_FIRST + 10 },
		{ "soft-dirty", required_argument, NULL, O_PRESSURE_FIRST + 11 },
		{ "check", no_argument, NULL, O_CHECK },
		{ "verbose", optional_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct layer cli = { .set = 0 }, file = { .set = 0 };
	const char *config = NULL;
	char err[256];
	int o, r;

	defaults(c);
	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":s:c:vhV", opts, NULL)) != -1) {
		int k = opt_key(o);

		if (k >= 0) {
			if (set_key(&cli, (enum key)k, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "thpswapd: --%s: %s\n", key_names[k], err);
				return THPD_EXIT_USAGE;
			}
			continue;
		}
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'v':
			/* -v, --verbose, or --verbose=yes|no as in the file */
			if (set_key(&cli, K_VERBOSE, optarg ? optarg : "yes", err, sizeof(err)) < 0) {
				fprintf(stderr, "thpswapd: --verbose: %s\n", err);
				return THPD_EXIT_USAGE;
			}
			break;
		case O_CHECK:
			c->check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("thpswapd %s\n", THPSWAP_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "thpswapd: option '%s' needs a value; see thpswapd --help\n",
				argv[optind - 1]);
			return THPD_EXIT_USAGE;
		default:
			/* getopt_long names a known long option given a value
			 * it does not take by its value in optopt. */
			if (optopt && !strncmp(argv[optind - 1], "--", 2) &&
			    strchr(argv[optind - 1], '=')) {
				fprintf(stderr, "thpswapd: option '%.*s' takes no value; see "
					"thpswapd --help\n",
					(int)(strchr(argv[optind - 1], '=') - argv[optind - 1]),
					argv[optind - 1]);
				return THPD_EXIT_USAGE;
			}
			fprintf(stderr, "thpswapd: unknown option '%s'; see thpswapd --help\n",
				argv[optind - 1]);
			return THPD_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "thpswapd: unexpected argument '%s'; see thpswapd --help\n",
			argv[optind]);
		return THPD_EXIT_USAGE;
	}

	r = load_file(&file, config ? config : DEFAULT_CONFIG, config != NULL);
	if (r)
		return r;
	apply(c, &file);
	apply(c, &cli);
	if ((c->tiers & THP_TIER_FILE) && !c->file_dir[0]) {
		fprintf(stderr, "thpswapd: --tiers has file but no --file-dir says where its files go\n");
		return THPD_EXIT_USAGE;
	}
	return THPD_EXIT_RUN;
}
