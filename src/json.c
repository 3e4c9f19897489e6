/* SPDX-License-Identifier: MIT */
/*
 * Streaming JSON writer.  Strings are written as UTF-8: valid sequences pass
 * through, invalid bytes become U+FFFD so the document always parses; control
 * characters are escaped.  Non-finite doubles become null.  Nesting deeper
 * than THP_JSON_MAX_DEPTH writes null in place of the too-deep container and
 * drops its contents, so the output stays valid JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void thp_json_init(struct thp_json *j, FILE *f, bool pretty)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->pretty = pretty;
	j->first[0] = true;
}

static bool suppressed(const struct thp_json *j)
{
	return j->depth >= THP_JSON_MAX_DEPTH;
}

static void indent(struct thp_json *j)
{
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

/* The one place that writes UTF-8 text as a JSON string literal. */
static void put_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		unsigned char c = *p;
		size_t n = 0;

		if (c < 0x80) {
			switch (c) {
			case '"':  fputs("\\\"", f); break;
			case '\\': fputs("\\\\", f); break;
			case '\b': fputs("\\b", f); break;
			case '\f': fputs("\\f", f); break;
			case '\n': fputs("\\n", f); break;
			case '\r': fputs("\\r", f); break;
			case '\t': fputs("\\t", f); break;
			default:
				if (c < 0x20)
					fprintf(f, "\\u%04x", c);
				else
					fputc(c, f);
			}
			p++;
			continue;
		}
		/* Length of a well-formed sequence starting here (RFC 3629). */
		if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4;
		for (size_t i = 1; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80) {
				n = 0;
				break;
			}
		}
		/* Overlongs, surrogates and > U+10FFFF are not UTF-8 either. */
		if ((n == 3 && c == 0xe0 && p[1] < 0xa0) ||
		    (n == 3 && c == 0xed && p[1] > 0x9f) ||
		    (n == 4 && c == 0xf0 && p[1] < 0x90) ||
		    (n == 4 && c == 0xf4 && p[1] > 0x8f))
			n = 0;
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

/* Separator, indentation and "key": before a value.  False if suppressed. */
static bool prefix(struct thp_json *j, const char *key)
{
	if (suppressed(j))
		return false;
	if (!j->first[j->depth])
		fputc(',', j->f);
	if (j->pretty && j->depth > 0)
		indent(j);
	j->first[j->depth] = false;
	if (key && j->depth > 0) {
		put_string(j->f, key);
		fputs(j->pretty ? ": " : ":", j->f);
	}
	return true;
}

static void begin(struct thp_json *j, const char *key, char open)
{
	if (j->depth == THP_JSON_MAX_DEPTH - 1) {
		/* No room for its members: the container becomes null. */
		if (prefix(j, key))
			fputs("null", j->f);
		j->depth++;
		return;
	}
	if (prefix(j, key))
		fputc(open, j->f);
	j->depth++;
	if (!suppressed(j))
		j->first[j->depth] = true;
}

static void end(struct thp_json *j, char close)
{
	if (j->depth <= 0)
		return;
	if (suppressed(j)) {
		j->depth--;
		return;
	}
	bool empty = j->first[j->depth];

	j->depth--;
	if (j->pretty && !empty)
		indent(j);
	fputc(close, j->f);
}

void thp_json_begin_object(struct thp_json *j, const char *key)
{
	begin(j, key, '{');
}

void thp_json_end_object(struct thp_json *j)
{
	end(j, '}');
}

void thp_json_begin_array(struct thp_json *j, const char *key)
{
	begin(j, key, '[');
}

void thp_json_end_array(struct thp_json *j)
{
	end(j, ']');
}

void thp_json_string(struct thp_json *j, const char *key, const char *v)
{
	if (!v) {
		thp_json_null(j, key);
		return;
	}
	if (prefix(j, key))
		put_string(j->f, v);
}

void thp_json_u64(struct thp_json *j, const char *key, uint64_t v)
{
	if (prefix(j, key))
		fprintf(j->f, "%" PRIu64, v);
}

void thp_json_i64(struct thp_json *j, const char *key, int64_t v)
{
	if (prefix(j, key))
		fprintf(j->f, "%" PRId64, v);
}

void thp_json_double(struct thp_json *j, const char *key, double v)
{
	char buf[32];

	if (!isfinite(v)) {
		thp_json_null(j, key);
		return;
	}
	/* Shortest of %.15g/%.17g that reads back as the same double. */
	snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, sizeof(buf), "%.17g", v);
	if (prefix(j, key))
		fputs(buf, j->f);
}

void thp_json_bool(struct thp_json *j, const char *key, bool v)
{
	if (prefix(j, key))
		fputs(v ? "true" : "false", j->f);
}

void thp_json_null(struct thp_json *j, const char *key)
{
	if (prefix(j, key))
		fputs("null", j->f);
}

int thp_json_finish(struct thp_json *j)
{
	fputc('\n', j->f);
	if (fflush(j->f) != 0 || ferror(j->f))
		return -EIO;
	/* Unbalanced begin/end is a caller bug: the document is not valid. */
	return j->depth == 0 ? 0 : -EINVAL;
}

int thp_json_error(FILE *f, const char *msg, int err)
{
	struct thp_json j;

	thp_json_init(&j, f, false);
	thp_json_begin_object(&j, NULL);
	thp_json_string(&j, "error", msg);
	thp_json_i64(&j, "errno", err);
	thp_json_end_object(&j);
	return thp_json_finish(&j);
}
