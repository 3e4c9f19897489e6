/* SPDX-License-Identifier: MIT */
/* The streaming JSON writer: nesting, layout, escaping, numbers, limits. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

struct cap {
	char *buf;
	size_t len;
	FILE *f;
	struct thp_json j;
};

static void cap_open(struct cap *c, bool pretty)
{
	c->buf = NULL;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
	thp_json_init(&c->j, c->f, pretty);
}

/* Finishes the document and checks it against @want. */
static void cap_check(struct cap *c, int want_rc, const char *want)
{
	assert_int_equal(thp_json_finish(&c->j), want_rc);
	assert_int_equal(fclose(c->f), 0);
	assert_string_equal(c->buf, want);
	free(c->buf);
}

static void test_empty(void **state)
{
	struct cap c;

	cap_open(&c, false);
	thp_json_begin_object(&c.j, NULL);
	thp_json_end_object(&c.j);
	cap_check(&c, 0, "{}\n");

	cap_open(&c, true);
	thp_json_begin_object(&c.j, NULL);
	thp_json_begin_array(&c.j, "a");
	thp_json_end_array(&c.j);
	thp_json_begin_object(&c.j, "o");
	thp_json_end_object(&c.j);
	thp_json_end_object(&c.j);
	cap_check(&c, 0, "{\n  \"a\": [],\n  \"o\": {}\n}\n");
}

static void build_nested(struct thp_json *j)
{
	thp_json_begin_object(j, NULL);
	thp_json_string(j, "name", "x");
	thp_json_begin_array(j, "list");
	thp_json_u64(j, NULL, 1);
	thp_json_begin_object(j, NULL);
	thp_json_bool(j, "t", true);
	thp_json_bool(j, "f", false);
	thp_json_null(j, "n");
	thp_json_end_object(j);
	thp_json_begin_array(j, NULL);
	thp_json_end_array(j);
	thp_json_end_array(j);
	thp_json_begin_object(j, "inner");
	thp_json_begin_object(j, "deeper");
	thp_json_i64(j, "v", -3);
	thp_json_end_object(j);
	thp_json_end_object(j);
	thp_json_end_object(j);
}

static void test_nesting(void **state)
{
	struct cap c;

	cap_open(&c, false);
	build_nested(&c.j);
	cap_check(&c, 0, "{\"name\":\"x\",\"list\":[1,{\"t\":true,\"f\":false,\"n\":null},[]],"
			 "\"inner\":{\"deeper\":{\"v\":-3}}}\n");

	cap_open(&c, true);
	build_nested(&c.j);
	cap_check(&c, 0,
		  "{\n"
		  "  \"name\": \"x\",\n"
		  "  \"list\": [\n"
		  "    1,\n"
		  "    {\n"
		  "      \"t\": true,\n"
		  "      \"f\": false,\n"
		  "      \"n\": null\n"
		  "    },\n"
		  "    []\n"
		  "  ],\n"
		  "  \"inner\": {\n"
		  "    \"deeper\": {\n"
		  "      \"v\": -3\n"
		  "    }\n"
		  "  }\n"
		  "}\n");

	/* A top-level array; a key given at the top level is ignored. */
	cap_open(&c, false);
	thp_json_begin_array(&c.j, "ignored");
	thp_json_string(&c.j, NULL, "a");
	thp_json_string(&c.j, NULL, NULL);
	thp_json_end_array(&c.j);
	cap_check(&c, 0, "[\"a\",null]\n");
}

static void test_escaping(void **state)
{
	struct cap c;

	cap_open(&c, false);
	thp_json_begin_object(&c.j, NULL);
	thp_json_string(&c.j, "q", "say \"hi\" \\ /");
	thp_json_string(&c.j, "ctl", "\b\f\n\r\t\x01\x1f\x7f");
	thp_json_string(&c.j, "key \"quoted\"\n", "v");
	thp_json_string(&c.j, "utf8", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e \xe2\x80\xa8");
	thp_json_string(&c.j, "empty", "");
	thp_json_end_object(&c.j);
	cap_check(&c, 0,
		  "{\"q\":\"say \\\"hi\\\" \\\\ /\","
		  "\"ctl\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\","
		  "\"key \\\"quoted\\\"\\n\":\"v\","
		  "\"utf8\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e \xe2\x80\xa8\","
		  "\"empty\":\"\"}\n");

	/* Bytes that are not UTF-8 become U+FFFD, one per bad byte. */
	cap_open(&c, false);
	thp_json_begin_array(&c.j, NULL);
	thp_json_string(&c.j, NULL, "a\xff" "b");          /* never valid */
	thp_json_string(&c.j, NULL, "\xc3");              /* truncated */
	thp_json_string(&c.j, NULL, "\xc0\xaf");          /* overlong '/' */
	thp_json_string(&c.j, NULL, "\xed\xa0\x80");      /* surrogate */
	thp_json_string(&c.j, NULL, "\xf4\x90\x80\x80");  /* > U+10FFFF */
	thp_json_string(&c.j, NULL, "\xe2\x82" "x");       /* cut short */
	thp_json_end_array(&c.j);
	cap_check(&c, 0,
		  "[\"a\\ufffdb\",\"\\ufffd\",\"\\ufffd\\ufffd\",\"\\ufffd\\ufffd\\ufffd\","
		  "\"\\ufffd\\ufffd\\ufffd\\ufffd\",\"\\ufffd\\ufffdx\"]\n");
}

static void test_numbers(void **state)
{
	struct cap c;

	cap_open(&c, false);
	thp_json_begin_array(&c.j, NULL);
	thp_json_u64(&c.j, NULL, 0);
	thp_json_u64(&c.j, NULL, UINT64_MAX);
	thp_json_i64(&c.j, NULL, INT64_MIN);
	thp_json_i64(&c.j, NULL, INT64_MAX);
	thp_json_double(&c.j, NULL, 0.1);
	thp_json_double(&c.j, NULL, 1.5);
	thp_json_double(&c.j, NULL, -2.0);
	thp_json_double(&c.j, NULL, 1.0 / 3.0);
	thp_json_double(&c.j, NULL, 1e300);
	thp_json_double(&c.j, NULL, 5e-324);
	thp_json_double(&c.j, NULL, NAN);
	thp_json_double(&c.j, NULL, INFINITY);
	thp_json_double(&c.j, NULL, -INFINITY);
	thp_json_end_array(&c.j);
	cap_check(&c, 0,
		  "[0,18446744073709551615,-9223372036854775808,9223372036854775807,"
		  "0.1,1.5,-2,0.33333333333333331,1e+300,4.94065645841247e-324,null,null,null]\n");
}

static void test_depth_limit(void **state)
{
	struct cap c;
	char want[256];
	size_t o = 0;

	/* THP_JSON_MAX_DEPTH - 1 levels fit; the next becomes null and its
	 * contents vanish, and the document stays balanced. */
	cap_open(&c, false);
	for (int i = 0; i < THP_JSON_MAX_DEPTH + 3; i++) {
		thp_json_begin_array(&c.j, NULL);
		thp_json_u64(&c.j, NULL, (uint64_t)i);
	}
	for (int i = 0; i < THP_JSON_MAX_DEPTH + 3; i++)
		thp_json_end_array(&c.j);
	for (int i = 0; i < THP_JSON_MAX_DEPTH - 1; i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o, "[%d,", i);
	o += (size_t)snprintf(want + o, sizeof(want) - o, "null");
	for (int i = 0; i < THP_JSON_MAX_DEPTH - 1; i++)
		want[o++] = ']';
	want[o++] = '\n';
	want[o] = '\0';
	cap_check(&c, 0, want);
}

static void test_finish_errors(void **state)
{
	struct cap c;
	struct thp_json j;
	FILE *full;

	/* Unbalanced: the caller forgot an end. */
	cap_open(&c, false);
	thp_json_begin_object(&c.j, NULL);
	thp_json_u64(&c.j, "a", 1);
	cap_check(&c, -EINVAL, "{\"a\":1\n");

	/* Extra ends are ignored rather than corrupting the state. */
	cap_open(&c, false);
	thp_json_end_object(&c.j);
	thp_json_u64(&c.j, NULL, 7);
	cap_check(&c, 0, "7\n");

	/* A stream that cannot be written. */
	full = fopen("/dev/full", "w");
	assert_non_null(full);
	thp_json_init(&j, full, true);
	thp_json_begin_object(&j, NULL);
	thp_json_string(&j, "k", "v");
	thp_json_end_object(&j);
	assert_int_equal(thp_json_finish(&j), -EIO);
	fclose(full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_finish_errors),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
