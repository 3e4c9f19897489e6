/* SPDX-License-Identifier: MIT */
/*
 * Where the time of the bench's restores and evictions went: the timing
 * samples the library recorded in this process (lib/samples.h) matched to
 * the bench's own stamps around each access and each eviction call, and
 * averaged over a band of ranks (the restores around the median, the
 * slowest 1 %).  The parts of one restore add up to its latency exactly:
 * each is the gap between two consecutive stamps, the bench's first and
 * last.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "samples.h"

const char *const b_restore_parts[B_RESTORE_PARTS] = {
	"wait", "queue", "pool", "decompress", "move", "commit", "wake", "touch_rest",
};
const char *const b_restore_flags[B_RESTORE_FLAGS] = {
	"pool_misses", "copy_in", "not_pmd", "eagain",
};
const char *const b_evict_parts[B_EVICT_PARTS] = {
	"find", "claim", "stage", "move", "compress", "store", "commit", "return",
};
const char *const b_evict_flags[B_EVICT_FLAGS] = { "zero" };

/* The parts of a restore, in ns: access, the library's stamps, the first
 * access's return, the unit's last touch. */
static void restore_parts(const struct b_timed *a, const struct thp_sample *e, double *part,
			  size_t *flag)
{
	uint64_t t[B_RESTORE_PARTS + 1] = {
		a->t_in, e->t[SR_READ], e->t[SR_START], e->t[SR_POOL], e->t[SR_DATA],
		e->t[SR_MOVED], e->t[SR_WAKE], a->t_first, a->t_out,
	};
	static const uint32_t f[B_RESTORE_FLAGS] = { SF_POOL_MISS, SF_COPY_IN, SF_NOT_PMD, SF_EAGAIN };

	for (int i = 0; i < B_RESTORE_PARTS; i++)
		part[i] += (double)(int64_t)(t[i + 1] - t[i]) / 1e3;
	for (int i = 0; i < B_RESTORE_FLAGS; i++)
		flag[i] += !!(e->flags & f[i]);
}

static void evict_parts(const struct b_timed *a, const struct thp_sample *e, double *part,
			size_t *flag)
{
	uint64_t t[B_EVICT_PARTS + 1] = {
		a->t_in, e->t[SE_START], e->t[SE_CLAIMED], e->t[SE_STAGED], e->t[SE_MOVED],
		e->t[SE_COMPRESSED], e->t[SE_STORED], e->t[SE_DONE], a->t_out,
	};

	for (int i = 0; i < B_EVICT_PARTS; i++)
		part[i] += (double)(int64_t)(t[i + 1] - t[i]) / 1e3;
	flag[0] += !!(e->flags & SF_ZERO);
}

/* The sample of each timed call: the one at its unit whose start lies
 * within the call (the last such, if a unit had more). */
static void match(struct thpswap_session *s, uint64_t from, uint64_t to, uint32_t kind,
		  const struct b_timed *a, size_t n, uint64_t base, size_t units,
		  const size_t *call_of_unit, struct thp_sample *out, bool *found, size_t *matched)
{
	*matched = 0;
	for (uint64_t k = from; k < to; k++) {
		struct thp_sample e;
		uint64_t start;
		size_t u, c;

		if (samples_get(s, k, &e) || e.kind != kind || e.addr < base ||
		    (e.addr - base) / UNIT >= units)
			continue;
		u = (size_t)((e.addr - base) / UNIT);
		c = call_of_unit[u];
		start = kind == SAMPLE_RESTORE ? e.t[SR_START] : e.t[SE_START];
		if (c >= n || start < a[c].t_in || start > a[c].t_out)
			continue;
		*matched += !found[c];
		found[c] = true;
		out[c] = e;
	}
}

/* Sort key for the bands: the call's latency. */
struct ranked {
	uint64_t ns;
	size_t call;
};

static int cmp_ranked(const void *x, const void *y)
{
	const struct ranked *a = x, *b = y;

	return a->ns < b->ns ? -1 : a->ns > b->ns;
}

/* Bands [0] 45..55 % and [1] the slowest 1 % (at least one) of @r. */
static void bands(const struct ranked *r, size_t n, size_t lo[2], size_t hi[2])
{
	lo[0] = n * 45 / 100;
	hi[0] = (n * 55 + 99) / 100;
	if (hi[0] <= lo[0] && n)
		hi[0] = lo[0] + 1;
	hi[1] = n;
	lo[1] = n - (n + 99) / 100;
}

/* Means: the latency over the band, the parts over the calls matched. */
static void band_finish(struct b_band *b, int nparts)
{
	if (b->n)
		b->lat_us /= (double)b->n;
	for (int i = 0; b->matched && i < nparts; i++)
		b->part_us[i] /= (double)b->matched;
}

/* Bands of the calls @a with @write (restores: -1 any), over every call
 * of that kind (the samples found are averaged; @matched says how many). */
static void restore_bands(const struct b_timed *a, size_t n, int write,
			  const struct thp_sample *smp, const bool *found, struct b_band out[2])
{
	struct ranked *r = malloc((n ? n : 1) * sizeof(*r));
	size_t m = 0, lo[2], hi[2];

	memset(out, 0, 2 * sizeof(*out));
	if (!r)
		return;
	for (size_t c = 0; c < n; c++)
		if (write < 0 || a[c].write == (write > 0))
			r[m++] = (struct ranked){ a[c].t_out - a[c].t_in, c };
	qsort(r, m, sizeof(*r), cmp_ranked);
	bands(r, m, lo, hi);
	for (int b = 0; b < 2; b++) {
		for (size_t k = lo[b]; k < hi[b]; k++) {
			size_t c = r[k].call;

			out[b].n++;
			out[b].lat_us += (double)r[k].ns / 1e3;
			if (!found[c])
				continue;
			out[b].matched++;
			restore_parts(&a[c], &smp[c], out[b].part_us, out[b].flag);
		}
		band_finish(&out[b], B_RESTORE_PARTS);
	}
	free(r);
}

/* Eviction bands rank only the calls that stored their unit (a sample):
 * a unit kept resident is another story. */
static void evict_bands(const struct b_timed *a, size_t n, const struct thp_sample *smp,
			const bool *found, struct b_band out[2])
{
	struct ranked *r = malloc((n ? n : 1) * sizeof(*r));
	size_t m = 0, lo[2], hi[2];

	memset(out, 0, 2 * sizeof(*out));
	if (!r)
		return;
	for (size_t c = 0; c < n; c++)
		if (found[c])
			r[m++] = (struct ranked){ a[c].t_out - a[c].t_in, c };
	qsort(r, m, sizeof(*r), cmp_ranked);
	bands(r, m, lo, hi);
	for (int b = 0; b < 2; b++) {
		for (size_t k = lo[b]; k < hi[b]; k++) {
			size_t c = r[k].call;

			out[b].n++;
			out[b].matched++;
			out[b].lat_us += (double)r[k].ns / 1e3;
			evict_parts(&a[c], &smp[c], out[b].part_us, out[b].flag);
		}
		band_finish(&out[b], B_EVICT_PARTS);
	}
	free(r);
}

/* call_of_unit[u]: the call on unit @u, or n if none. */
static size_t *calls_by_unit(const struct b_timed *a, size_t n, uint64_t base, size_t units)
{
	size_t *cu = malloc((units ? units : 1) * sizeof(*cu));

	if (!cu)
		return NULL;
	for (size_t u = 0; u < units; u++)
		cu[u] = n;
	for (size_t c = 0; c < n; c++)
		if (a[c].addr >= base && (a[c].addr - base) / UNIT < units)
			cu[(a[c].addr - base) / UNIT] = c;
	return cu;
}

int b_breakdown(struct thpswap_session *s, uint64_t from, uint64_t to, uint64_t base, size_t units,
		const struct b_timed *acc, size_t nacc, const struct b_timed *ev, size_t nev,
		struct b_breakdown *out)
{
	struct thp_sample *rs = calloc(nacc ? nacc : 1, sizeof(*rs));
	struct thp_sample *es = calloc(nev ? nev : 1, sizeof(*es));
	bool *rf = calloc(nacc ? nacc : 1, sizeof(*rf)), *ef = calloc(nev ? nev : 1, sizeof(*ef));
	size_t *rcu = calls_by_unit(acc, nacc, base, units), *ecu = calls_by_unit(ev, nev, base, units);
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!rs || !es || !rf || !ef || !rcu || !ecu) {
		err = -ENOMEM;
		goto out;
	}
	out->on = true;
	out->samples = to - from;
	match(s, from, to, SAMPLE_RESTORE, acc, nacc, base, units, rcu, rs, rf, &out->restores_matched);
	match(s, from, to, SAMPLE_EVICT, ev, nev, base, units, ecu, es, ef, &out->evictions_matched);
	restore_bands(acc, nacc, 0, rs, rf, out->rd);
	restore_bands(acc, nacc, 1, rs, rf, out->wr);
	evict_bands(ev, nev, es, ef, out->ev);
out:
	free(rs);
	free(es);
	free(rf);
	free(ef);
	free(rcu);
	free(ecu);
	return err;
}
