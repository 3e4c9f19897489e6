/* SPDX-License-Identifier: MIT */
/* A small streaming JSON writer for --json output (no parser, no allocation). */
#ifndef THPSWAP_JSON_H
#define THPSWAP_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define THP_JSON_MAX_DEPTH 16

struct thp_json {
	FILE *f;
	int depth;
	bool first[THP_JSON_MAX_DEPTH]; /* nothing written yet at this level */
	bool pretty;
};

void thp_json_init(struct thp_json *j, FILE *f, bool pretty);
/* @key is the member name inside an object, NULL inside an array or at top. */
void thp_json_begin_object(struct thp_json *j, const char *key);
void thp_json_end_object(struct thp_json *j);
void thp_json_begin_array(struct thp_json *j, const char *key);
void thp_json_end_array(struct thp_json *j);
void thp_json_string(struct thp_json *j, const char *key, const char *v); /* NULL -> null */
void thp_json_u64(struct thp_json *j, const char *key, uint64_t v);
void thp_json_i64(struct thp_json *j, const char *key, int64_t v);
void thp_json_double(struct thp_json *j, const char *key, double v);
void thp_json_bool(struct thp_json *j, const char *key, bool v);
void thp_json_null(struct thp_json *j, const char *key);
/* Ends the document with a newline; returns 0 or -EIO if the stream failed. */
int thp_json_finish(struct thp_json *j);

/* A whole document that says what failed: {"error": MSG, "errno": ERR}. */
int thp_json_error(FILE *f, const char *msg, int err);

#endif
