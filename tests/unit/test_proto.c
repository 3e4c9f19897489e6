/* SPDX-License-Identifier: MIT */
/* The control protocol's framing: the wire layout byte by byte, every type
 * at its valid size, every way a datagram can be malformed, and fd passing
 * over a real socketpair.  Sizes and offsets are written out as numbers,
 * derived once from src/proto.h: a test that computed them with the same
 * sizeof and offsetof as the code could not see the layout change. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

/* The header's size on the wire. */
#define HDR 16

/* A datagram buffer aligned like the receivers' (payload casts need it). */
static uint64_t dgram[THP_MSG_MAX / sizeof(uint64_t)];

/* Build a datagram of @type with a payload of @plen bytes (zeroed unless
 * @payload) into dgram; returns its length. */
static size_t build(unsigned type, const void *payload, size_t plen)
{
	struct thp_msg_hdr h;

	thp_msg_init(&h, (enum thp_msg_type)type, 7, plen);
	memset(dgram, 0, HDR + plen);
	memcpy(dgram, &h, HDR);
	if (payload)
		memcpy((char *)dgram + HDR, payload, plen);
	return HDR + plen;
}

static struct thp_msg_hdr *hdr(void)
{
	return (struct thp_msg_hdr *)dgram;
}

static int parse(size_t len)
{
	struct thp_msg m;

	return thp_msg_parse(dgram, len, &m);
}

/* Payload sizes of the fixed-size types (wire type number, bytes). */
static const struct {
	unsigned type;
	size_t size;
} fixed_types[] = {
	{ 2, 32 },	/* HELLO */
	{ 3, 32 },	/* WELCOME */
	{ 5, 32 },	/* EVICT_DONE */
	{ 6, 0 },	/* STATUS */
	{ 7, 88 },	/* STATUS_REPLY */
	{ 8, 0 },	/* CLIENTS */
	{ 10, 8 },	/* REGIONS */
	{ 12, 24 },	/* EVICT_REQ */
	{ 13, 32 },	/* EVICT_REPLY: an EVICT_DONE */
	{ 14, 8 },	/* STATS */
	{ 15, 3400 },	/* STATS_REPLY */
	{ 16, 0 },	/* LIMITS */
	{ 17, 152 },	/* LIMITS_REPLY */
	{ 18, 8 },	/* CLIENTS_PAGE */
	{ 19, 16 },	/* POLICY_PAGE */
	{ 21, 24 },	/* PIN_REQ */
	{ 22, 8 },	/* PIN_REPLY */
	{ 23, 48 },	/* RESUME */
};

/* Array types: fixed part, entry size, where the count lives, the maximum. */
static const struct {
	unsigned type;
	size_t fixed, elem, count_off;
	uint32_t max;
} array_types[] = {
	{ 4, 8, 8, 4, 2048 },		/* EVICT: reason, n, then addresses */
	{ 9, 8, 80, 0, 256 },		/* CLIENTS_REPLY: n, more, then clients */
	{ 11, 8, 32, 4, 1024 },		/* REGIONS_REPLY: next, n, then regions */
	{ 20, 48, 64, 0, 256 },		/* POLICY_REPLY: n, more, sums, then sessions */
};

#define FIELD(type, field, off, size) do { \
	assert_int_equal(offsetof(type, field), off); \
	assert_int_equal(sizeof(((type *)0)->field), size); } while (0)

/* Every struct of src/proto.h, field by field. */
static void test_wire_layout(void **state)
{
	assert_int_equal(HDR, 16);
	FIELD(struct thp_msg_hdr, magic, 0, 4);
	FIELD(struct thp_msg_hdr, version, 4, 2);
	FIELD(struct thp_msg_hdr, type, 6, 2);
	FIELD(struct thp_msg_hdr, len, 8, 4);
	FIELD(struct thp_msg_hdr, seq, 12, 4);

	assert_int_equal(sizeof(struct thp_msg_error), 204);
	FIELD(struct thp_msg_error, err, 0, 4);
	FIELD(struct thp_msg_error, text, 4, 200);

	assert_int_equal(sizeof(struct thp_msg_hello), 32);
	FIELD(struct thp_msg_hello, role, 0, 4);
	FIELD(struct thp_msg_hello, max_regions, 4, 4);
	FIELD(struct thp_msg_hello, want_features, 8, 8);
	FIELD(struct thp_msg_hello, comm, 16, 16);

	assert_int_equal(sizeof(struct thp_msg_welcome), 32);
	FIELD(struct thp_msg_welcome, session_id, 0, 8);
	FIELD(struct thp_msg_welcome, uffd_features, 8, 8);
	FIELD(struct thp_msg_welcome, arena_size, 16, 8);
	FIELD(struct thp_msg_welcome, daemon_pid, 24, 4);
	FIELD(struct thp_msg_welcome, pad, 28, 4);

	assert_int_equal(sizeof(struct thp_msg_evict), 8);
	FIELD(struct thp_msg_evict, reason, 0, 4);
	FIELD(struct thp_msg_evict, n, 4, 4);
	assert_int_equal(offsetof(struct thp_msg_evict, addr), 8);
	assert_int_equal(sizeof(((struct thp_msg_evict *)0)->addr[0]), 8);

	assert_int_equal(sizeof(struct thp_msg_evict_done), 32);
	FIELD(struct thp_msg_evict_done, evicted, 0, 4);
	FIELD(struct thp_msg_evict_done, skipped, 4, 4);
	FIELD(struct thp_msg_evict_done, failed, 8, 4);
	FIELD(struct thp_msg_evict_done, pad, 12, 4);
	FIELD(struct thp_msg_evict_done, bytes_in, 16, 8);
	FIELD(struct thp_msg_evict_done, bytes_stored, 24, 8);

	assert_int_equal(sizeof(struct thp_msg_status_reply), 88);
	FIELD(struct thp_msg_status_reply, daemon_pid, 0, 4);
	FIELD(struct thp_msg_status_reply, clients, 4, 4);
	FIELD(struct thp_msg_status_reply, uptime_ns, 8, 8);
	FIELD(struct thp_msg_status_reply, regions, 16, 8);
	FIELD(struct thp_msg_status_reply, resident, 24, 8);
	FIELD(struct thp_msg_status_reply, evicted_zero, 32, 8);
	FIELD(struct thp_msg_status_reply, evicted_ram, 40, 8);
	FIELD(struct thp_msg_status_reply, stored_bytes, 48, 8);
	FIELD(struct thp_msg_status_reply, budget_bytes, 56, 8);
	FIELD(struct thp_msg_status_reply, zstd_level, 64, 4);
	FIELD(struct thp_msg_status_reply, codec, 68, 4);
	FIELD(struct thp_msg_status_reply, version, 72, 16);

	assert_int_equal(sizeof(struct thp_client_info), 80);
	FIELD(struct thp_client_info, pid, 0, 4);
	FIELD(struct thp_client_info, uid, 4, 4);
	FIELD(struct thp_client_info, session_id, 8, 8);
	FIELD(struct thp_client_info, regions, 16, 8);
	FIELD(struct thp_client_info, resident, 24, 8);
	FIELD(struct thp_client_info, evicted_zero, 32, 8);
	FIELD(struct thp_client_info, evicted_ram, 40, 8);
	FIELD(struct thp_client_info, stored_bytes, 48, 8);
	FIELD(struct thp_client_info, faults, 56, 8);
	FIELD(struct thp_client_info, comm, 64, 16);
	assert_int_equal(sizeof(struct thp_msg_clients_reply), 8);
	FIELD(struct thp_msg_clients_reply, n, 0, 4);
	FIELD(struct thp_msg_clients_reply, more, 4, 4);
	assert_int_equal(offsetof(struct thp_msg_clients_reply, c), 8);
	assert_int_equal(sizeof(struct thp_msg_clients_page), 8);
	FIELD(struct thp_msg_clients_page, after, 0, 8);

	assert_int_equal(sizeof(struct thp_msg_regions), 8);
	FIELD(struct thp_msg_regions, pid, 0, 4);
	FIELD(struct thp_msg_regions, cursor, 4, 4);
	assert_int_equal(sizeof(struct thp_region_info), 32);
	FIELD(struct thp_region_info, addr, 0, 8);
	FIELD(struct thp_region_info, state, 8, 4);
	FIELD(struct thp_region_info, stored_len, 12, 4);
	FIELD(struct thp_region_info, codec, 16, 1);
	FIELD(struct thp_region_info, level, 17, 1);
	FIELD(struct thp_region_info, kind, 18, 1);
	FIELD(struct thp_region_info, kswap, 19, 1);
	FIELD(struct thp_region_info, file, 20, 1);
	FIELD(struct thp_region_info, pad, 21, 1);
	FIELD(struct thp_region_info, evictions, 22, 2);
	FIELD(struct thp_region_info, last_fault_ns, 24, 8);
	assert_int_equal(sizeof(struct thp_msg_regions_reply), 8);
	FIELD(struct thp_msg_regions_reply, next, 0, 4);
	FIELD(struct thp_msg_regions_reply, n, 4, 4);
	assert_int_equal(offsetof(struct thp_msg_regions_reply, r), 8);

	assert_int_equal(sizeof(struct thp_msg_evict_req), 24);
	FIELD(struct thp_msg_evict_req, pid, 0, 4);
	FIELD(struct thp_msg_evict_req, flags, 4, 4);
	assert_int_equal(THP_EVICT_REQ_KERNEL, 1);
	FIELD(struct thp_msg_evict_req, addr, 8, 8);
	FIELD(struct thp_msg_evict_req, len, 16, 8);

	assert_int_equal(sizeof(struct thp_msg_stats), 8);
	FIELD(struct thp_msg_stats, pid, 0, 4);
	FIELD(struct thp_msg_stats, pad, 4, 4);
	assert_int_equal(sizeof(struct thp_msg_stats_reply), 3400);
	FIELD(struct thp_msg_stats_reply, n_counters, 0, 4);
	FIELD(struct thp_msg_stats_reply, n_hist, 4, 4);
	FIELD(struct thp_msg_stats_reply, ctr, 8, 40 * 8);
	FIELD(struct thp_msg_stats_reply, hist, 328, 4 * 96 * 8);

	assert_int_equal(sizeof(struct thp_msg_policy_page), 16);
	FIELD(struct thp_msg_policy_page, after, 0, 8);
	FIELD(struct thp_msg_policy_page, pid, 8, 4);
	FIELD(struct thp_msg_policy_page, pad, 12, 4);
	assert_int_equal(sizeof(struct thp_policy_info), 64);
	FIELD(struct thp_policy_info, session_id, 0, 8);
	FIELD(struct thp_policy_info, pid, 8, 4);
	FIELD(struct thp_policy_info, step, 12, 4);
	FIELD(struct thp_policy_info, promotions, 16, 8);
	FIELD(struct thp_policy_info, promo_rate_ppb, 24, 8);
	FIELD(struct thp_policy_info, working_set, 32, 8);
	FIELD(struct thp_policy_info, stall_us, 40, 8);
	FIELD(struct thp_policy_info, pinned, 48, 8);
	FIELD(struct thp_policy_info, pad, 56, 8);
	assert_int_equal(sizeof(struct thp_msg_policy_reply), 48);
	FIELD(struct thp_msg_policy_reply, n, 0, 4);
	FIELD(struct thp_msg_policy_reply, more, 4, 4);
	FIELD(struct thp_msg_policy_reply, promotions, 8, 8);
	FIELD(struct thp_msg_policy_reply, promo_rate_ppb, 16, 8);
	FIELD(struct thp_msg_policy_reply, working_set, 24, 8);
	FIELD(struct thp_msg_policy_reply, pinned, 32, 8);
	FIELD(struct thp_msg_policy_reply, stall_us, 40, 8);
	assert_int_equal(offsetof(struct thp_msg_policy_reply, p), 48);

	assert_int_equal(sizeof(struct thp_msg_pin_req), 24);
	FIELD(struct thp_msg_pin_req, pid, 0, 4);
	FIELD(struct thp_msg_pin_req, pin, 4, 4);
	FIELD(struct thp_msg_pin_req, addr, 8, 8);
	FIELD(struct thp_msg_pin_req, len, 16, 8);
	assert_int_equal(sizeof(struct thp_msg_pin_reply), 8);
	FIELD(struct thp_msg_pin_reply, regions, 0, 4);
	FIELD(struct thp_msg_pin_reply, pad, 4, 4);
}

/* The numbers on the wire: magic, version, message types, roles, evict
 * reasons and the limits a peer checks against. */
static void test_wire_numbers(void **state)
{
	static const char *const names[] = {
		NULL, "ERROR", "HELLO", "WELCOME", "EVICT", "EVICT_DONE", "STATUS", "STATUS_REPLY",
		"CLIENTS", "CLIENTS_REPLY", "REGIONS", "REGIONS_REPLY", "EVICT_REQ", "EVICT_REPLY",
		"STATS", "STATS_REPLY", "LIMITS", "LIMITS_REPLY", "CLIENTS_PAGE",
		"POLICY_PAGE", "POLICY_REPLY", "PIN_REQ", "PIN_REPLY",
		"RESUME",
	};

	assert_int_equal(THP_PROTO_MAGIC, 0x53504854);
	assert_int_equal(THP_PROTO_VERSION, 1);
	assert_int_equal(THP_MSG__MAX, 24);
	for (unsigned t = 1; t < 24; t++)
		assert_string_equal(thp_msg_type_name(t), names[t]);
	assert_int_equal(THP_MSG_ERROR, 1);
	assert_int_equal(THP_MSG_HELLO, 2);
	assert_int_equal(THP_MSG_EVICT, 4);
	assert_int_equal(THP_MSG_EVICT_DONE, 5);
	assert_int_equal(THP_MSG_EVICT_REQ, 12);
	assert_int_equal(THP_MSG_STATS_REPLY, 15);
	assert_int_equal(THP_ROLE_CLIENT, 1);
	assert_int_equal(THP_ROLE_CTL, 2);
	assert_int_equal(THP_EVICT_BUDGET, 1);
	assert_int_equal(THP_EVICT_ADMIN, 2);
	assert_int_equal(THP_EVICT_PRESSURE, 3);
	assert_int_equal(THP_EVICT_TO_KERNEL, 0x10000);
	assert_int_equal(THP_EVICT_REASON(THP_EVICT_ADMIN | THP_EVICT_TO_KERNEL), THP_EVICT_ADMIN);
	assert_int_equal(THP_MSG_MAX, 65536);
	assert_int_equal(THP_EVICT_MAX, 2048);
	assert_int_equal(THP_CLIENTS_MAX, 256);
	assert_int_equal(THP_REGIONS_MAX, 1024);
}

/* A datagram written byte by byte as a peer of another build would send it
 * parses, and what thp_msg_send puts on the wire is those bytes. */
static void test_wire_bytes(void **state)
{
	static const unsigned char hello[16 + 32] = {
		'T', 'H', 'P', 'S',	/* magic, little-endian 0x53504854 */
		1, 0,			/* version */
		2, 0,			/* HELLO */
		48, 0, 0, 0,		/* len: header and payload */
		0x78, 0x56, 0x34, 0x12,	/* seq */
		2, 0, 0, 0,		/* role: CTL */
		0, 2, 0, 0,		/* max_regions 512 */
		0, 0, 1, 0, 0, 0, 0, 0,	/* want_features 1 << 16 */
		'c', 't', 'l', 0,	/* comm */
	};
	const struct thp_msg_hello *h;
	struct thp_msg m;
	unsigned char got[64];
	int sv[2];

	memcpy(dgram, hello, sizeof(hello));
	assert_int_equal(thp_msg_parse(dgram, sizeof(hello), &m), 0);
	assert_int_equal(m.hdr.type, 2);
	assert_int_equal(m.hdr.len, 48);
	assert_int_equal(m.hdr.seq, 0x12345678);
	assert_int_equal(m.payload_len, 32);
	assert_ptr_equal(m.payload, (char *)dgram + 16);
	h = m.payload;
	assert_int_equal(h->role, THP_ROLE_CTL);
	assert_int_equal(h->max_regions, 512);
	assert_int_equal(h->want_features, 1u << 16);
	assert_string_equal(h->comm, "ctl");

	/* The same message sent by the code: the same bytes. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_HELLO, 0x12345678, hello + 16, 32, NULL, 0), 0);
	assert_int_equal(recv(sv[1], got, sizeof(got), 0), (ssize_t)sizeof(hello));
	assert_memory_equal(got, hello, sizeof(hello));
	close(sv[0]);
	close(sv[1]);
}

static size_t build_array(unsigned i, uint32_t n, size_t nelem)
{
	size_t len = build(array_types[i].type, NULL,
			   array_types[i].fixed + nelem * array_types[i].elem);

	memcpy((char *)dgram + HDR + array_types[i].count_off,
	       &n, sizeof(n));
	return len;
}

static void test_fixed_types_valid(void **state)
{
	for (size_t i = 0; i < sizeof(fixed_types) / sizeof(fixed_types[0]); i++) {
		size_t len = build(fixed_types[i].type, NULL, fixed_types[i].size);
		struct thp_msg m;

		assert_int_equal(thp_msg_parse(dgram, len, &m), 0);
		assert_int_equal(m.hdr.type, fixed_types[i].type);
		assert_int_equal(m.hdr.seq, 7);
		assert_int_equal(m.payload_len, fixed_types[i].size);
		assert_ptr_equal(m.payload, (char *)dgram + HDR);
	}
}

static void test_fixed_types_wrong_size(void **state)
{
	for (size_t i = 0; i < sizeof(fixed_types) / sizeof(fixed_types[0]); i++) {
		size_t sz = fixed_types[i].size;

		assert_int_equal(parse(build(fixed_types[i].type, NULL, sz + 1)), -EBADMSG);
		assert_int_equal(parse(build(fixed_types[i].type, NULL, sz + 8)), -EBADMSG);
		if (sz) {
			assert_int_equal(parse(build(fixed_types[i].type, NULL, sz - 1)), -EBADMSG);
			assert_int_equal(parse(build(fixed_types[i].type, NULL, 0)), -EBADMSG);
		}
	}
}

static void test_error_valid_and_unterminated(void **state)
{
	struct thp_msg_error e = { .err = -ESRCH };
	const struct thp_msg_error *pe;
	struct thp_msg m;
	size_t len;

	strcpy(e.text, "no thpswap client with pid 42");
	len = build(THP_MSG_ERROR, &e, sizeof(e));
	assert_int_equal(thp_msg_parse(dgram, len, &m), 0);
	pe = m.payload;
	assert_int_equal(pe->err, -ESRCH);
	assert_string_equal(pe->text, "no thpswap client with pid 42");

	memset(e.text, 'x', sizeof(e.text));
	assert_int_equal(parse(build(THP_MSG_ERROR, &e, sizeof(e))), -EBADMSG);
	assert_int_equal(parse(build(THP_MSG_ERROR, NULL, sizeof(e) - 1)), -EBADMSG);
}

static void test_array_types(void **state)
{
	for (unsigned i = 0; i < sizeof(array_types) / sizeof(array_types[0]); i++) {
		uint32_t max = array_types[i].max;
		struct thp_msg m;
		size_t len;

		/* valid: empty, one, the maximum */
		assert_int_equal(parse(build_array(i, 0, 0)), 0);
		len = build_array(i, 1, 1);
		assert_int_equal(thp_msg_parse(dgram, len, &m), 0);
		assert_int_equal(m.payload_len, array_types[i].fixed + array_types[i].elem);
		assert_int_equal(parse(build_array(i, max, max)), 0);

		/* count disagrees with the length, both ways */
		assert_int_equal(parse(build_array(i, 2, 1)), -EBADMSG);
		assert_int_equal(parse(build_array(i, 1, 2)), -EBADMSG);
		assert_int_equal(parse(build_array(i, 0, 1)), -EBADMSG);
		/* a partial entry */
		len = build_array(i, 1, 1);
		hdr()->len -= 1;
		assert_int_equal(parse(len - 1), -EBADMSG);
		/* n > max, even with a length that matches it */
		if ((size_t)(max + 1) * array_types[i].elem + array_types[i].fixed +
		    HDR <= THP_MSG_MAX)
			assert_int_equal(parse(build_array(i, max + 1, max + 1)), -EBADMSG);
		assert_int_equal(parse(build_array(i, max + 1, 0)), -EBADMSG);
		/* a count whose product with the entry size overflows 32 bits */
		assert_int_equal(parse(build_array(i, UINT32_MAX, 0)), -EBADMSG);
		/* shorter than the fixed part */
		assert_int_equal(parse(build(array_types[i].type, NULL,
					     array_types[i].fixed - 1)), -EBADMSG);
	}
}

static void test_short_header(void **state)
{
	size_t len = build(THP_MSG_STATUS, NULL, 0);
	struct thp_msg m;

	for (size_t l = 0; l < len; l++)
		assert_int_equal(parse(l), -EBADMSG);
	assert_int_equal(thp_msg_parse(NULL, 0, &m), -EBADMSG);
}

static void test_bad_magic(void **state)
{
	size_t len = build(THP_MSG_STATUS, NULL, 0);

	hdr()->magic ^= 1;
	assert_int_equal(parse(len), -EBADMSG);
	hdr()->magic = 0;
	assert_int_equal(parse(len), -EBADMSG);
}

static void test_wrong_version(void **state)
{
	size_t len = build(THP_MSG_HELLO, NULL, sizeof(struct thp_msg_hello));

	hdr()->version = THP_PROTO_VERSION + 1;
	assert_int_equal(parse(len), -EPROTONOSUPPORT);
	hdr()->version = 0;
	assert_int_equal(parse(len), -EPROTONOSUPPORT);
}

static void test_len_disagrees(void **state)
{
	size_t len = build(THP_MSG_STATS, NULL, sizeof(struct thp_msg_stats));

	/* header claims more than arrived */
	hdr()->len = (uint32_t)len + 4;
	assert_int_equal(parse(len), -EBADMSG);
	hdr()->len = UINT32_MAX;
	assert_int_equal(parse(len), -EBADMSG);
	/* header claims less than arrived */
	hdr()->len = (uint32_t)len - 4;
	assert_int_equal(parse(len), -EBADMSG);
	hdr()->len = 0;
	assert_int_equal(parse(len), -EBADMSG);
	/* a datagram longer than its header says, trailing garbage */
	hdr()->len = (uint32_t)len;
	assert_int_equal(parse(len + 8), -EBADMSG);
}

static void test_unknown_type(void **state)
{
	size_t len = build(THP_MSG_STATUS, NULL, 0);

	hdr()->type = 0;
	assert_int_equal(parse(len), -ENOMSG);
	hdr()->type = THP_MSG__MAX;
	assert_int_equal(parse(len), -ENOMSG);
	hdr()->type = 0xffff;
	assert_int_equal(parse(len), -ENOMSG);
}

static void test_type_names(void **state)
{
	assert_string_equal(thp_msg_type_name(THP_MSG_HELLO), "HELLO");
	assert_string_equal(thp_msg_type_name(THP_MSG_STATS_REPLY), "STATS_REPLY");
	assert_string_equal(thp_msg_type_name(0), "UNKNOWN");
	assert_string_equal(thp_msg_type_name(THP_MSG__MAX), "UNKNOWN");
	for (unsigned t = 1; t < THP_MSG__MAX; t++)
		assert_string_not_equal(thp_msg_type_name(t), "UNKNOWN");
}

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_roundtrip_with_fds(void **state)
{
	struct thp_msg_hello hello = { .role = THP_ROLE_CLIENT, .max_regions = 512,
				       .want_features = 1u << 16 };
	int sv[2], p[2], fds[2];
	unsigned nfds = 99;
	struct thp_msg m;
	struct stat a, b;
	long n;

	strcpy(hello.comm, "tester");
	pair(sv);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_HELLO, 3, &hello, sizeof(hello), p, 2), 0);

	n = thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 2, &nfds);
	assert_int_equal(n, HDR + sizeof(hello));
	assert_int_equal(nfds, 2);
	assert_int_equal(thp_msg_parse(dgram, (size_t)n, &m), 0);
	assert_int_equal(m.hdr.type, THP_MSG_HELLO);
	assert_int_equal(m.hdr.seq, 3);
	assert_memory_equal(m.payload, &hello, sizeof(hello));
	/* the fds are the same files, received close-on-exec */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fstat(p[i], &a), 0);
		assert_int_equal(fstat(fds[i], &b), 0);
		assert_int_equal(a.st_ino, b.st_ino);
		assert_true(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
		close(fds[i]);
		close(p[i]);
	}

	/* no payload, no fds */
	assert_int_equal(thp_msg_send(sv[1], THP_MSG_STATUS, 9, NULL, 0, NULL, 0), 0);
	n = thp_msg_recv(sv[0], dgram, sizeof(dgram), NULL, 0, NULL);
	assert_int_equal(n, HDR);
	assert_int_equal(thp_msg_parse(dgram, (size_t)n, &m), 0);
	assert_int_equal(m.hdr.type, THP_MSG_STATUS);
	assert_int_equal(m.payload_len, 0);

	/* EOF */
	close(sv[1]);
	assert_int_equal(thp_msg_recv(sv[0], dgram, sizeof(dgram), fds, 2, &nfds), 0);
	assert_int_equal(nfds, 0);
	close(sv[0]);
}

static void test_error_roundtrip(void **state)
{
	const struct thp_msg_error *e;
	struct thp_msg m;
	char longtext[400];
	int sv[2];
	long n;

	pair(sv);
	assert_int_equal(thp_msg_send_error(sv[0], 5, -ESRCH, "no thpswap client with pid %d", 42), 0);
	n = thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL);
	assert_true(n > 0);
	assert_int_equal(thp_msg_parse(dgram, (size_t)n, &m), 0);
	assert_int_equal(m.hdr.type, THP_MSG_ERROR);
	assert_int_equal(m.hdr.seq, 5);
	e = m.payload;
	assert_int_equal(e->err, -ESRCH);
	assert_string_equal(e->text, "no thpswap client with pid 42");

	/* an over-long reason is cut, still terminated */
	memset(longtext, 'r', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	assert_int_equal(thp_msg_send_error(sv[0], 6, -EINVAL, "%s", longtext), 0);
	n = thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL);
	assert_int_equal(thp_msg_parse(dgram, (size_t)n, &m), 0);
	e = m.payload;
	assert_int_equal(strlen(e->text), sizeof(e->text) - 1);
	close(sv[0]);
	close(sv[1]);
}

static void test_extra_fds_closed(void **state)
{
	int sv[2], p[2], fds[4] = { -1, -1, -1, -1 };
	unsigned nfds = 99;
	int before;

	pair(sv);
	assert_int_equal(pipe(p), 0);
	before = open_fds();

	/* two fds where one is allowed: both closed, nothing returned */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, p, 2), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds), -EBADMSG);
	assert_int_equal(nfds, 0);
	assert_int_equal(fds[0], -1);
	assert_int_equal(open_fds(), before);

	/* fds where none are expected */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 2, NULL, 0, p, 1), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL), -EBADMSG);
	assert_int_equal(open_fds(), before);

	/* a datagram larger than the buffer: fds closed too */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATS, 3, dgram,
				      sizeof(struct thp_msg_stats), p, 1), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, HDR, fds, 1, &nfds),
			 -EMSGSIZE);
	assert_int_equal(nfds, 0);
	assert_int_equal(open_fds(), before);

	/* the socket is still usable afterwards */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 4, NULL, 0, p, 1), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds),
			 (long)HDR);
	assert_int_equal(nfds, 1);
	assert_int_equal(open_fds(), before + 1);
	close(fds[0]);

	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* Send an empty datagram or a bare header with @n copies of @fd, past
 * thp_msg_send's own limit: what a hostile peer can do. */
static void send_raw_fds(int sock, bool empty, int fd, unsigned n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(64 * sizeof(int))];
	} ctl;
	struct thp_msg_hdr h;
	struct iovec iov = { .iov_base = &h, .iov_len = empty ? 0 : sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c;

	assert_true(n <= 64);
	thp_msg_init(&h, THP_MSG_STATUS, 1, 0);
	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	for (unsigned i = 0; i < n; i++)
		memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)iov.iov_len);
}

/* An empty datagram reads as EOF, and the fds that came with it are closed. */
static void test_empty_datagram_fds_closed(void **state)
{
	int sv[2], p[2], fds[1] = { -1 };
	unsigned nfds = 99;
	int before;

	pair(sv);
	assert_int_equal(pipe(p), 0);
	before = open_fds();
	/* as many as the caller takes: not handed out with an EOF */
	send_raw_fds(sv[0], true, p[0], 1);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds), 0);
	assert_int_equal(nfds, 0);
	assert_int_equal(open_fds(), before);
	send_raw_fds(sv[0], true, p[0], 3);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds), 0);
	assert_int_equal(nfds, 0);
	assert_int_equal(open_fds(), before);
	send_raw_fds(sv[0], true, p[0], 1);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL), 0);
	assert_int_equal(open_fds(), before);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* Every fd that arrives is closed unless returned: more than the control
 * buffer's room for fds (no credentials sent: 24 fit, MSG_CTRUNC beyond),
 * and more than its RECV_FDS_ROOM. */
static void test_hostile_fds_closed(void **state)
{
	static const unsigned counts[] = { 2, 17, 20, 24, 25, 40, 64 };
	int sv[2], p[2], fds[1] = { -1 };
	unsigned nfds = 99;
	int before;

	pair(sv);
	assert_int_equal(pipe(p), 0);
	before = open_fds();
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		send_raw_fds(sv[0], false, p[0], counts[i]);
		assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds),
				 -EBADMSG);
		assert_int_equal(nfds, 0);
		assert_int_equal(open_fds(), before);
	}
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_credentials_do_not_truncate(void **state)
{
	/* With SO_PASSCRED (a socket unit's PassCredentials=yes) every datagram
	 * carries SCM_CREDENTIALS next to the fds. */
	int sv[2], p[2], fd = -1, one = 1;
	unsigned nfds = 0;

	pair(sv);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, p, 1), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), &fd, 1, &nfds),
			 (long)HDR);
	assert_int_equal(nfds, 1);
	assert_true(fd >= 0);
	close(fd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_send_limits(void **state)
{
	int sv[2], fds[9] = { 0 };

	pair(sv);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, dgram,
				      THP_MSG_MAX - HDR + 1, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, fds, 9), -EINVAL);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 4, NULL, 0), -EINVAL);
	/* the largest datagram goes through whole */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, dgram,
				      THP_MSG_MAX - HDR, NULL, 0), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL), THP_MSG_MAX);
	close(sv[1]);
	/* peer gone: an error, not SIGPIPE */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, NULL, 0), -EPIPE);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_layout),
		cmocka_unit_test(test_wire_numbers),
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_fixed_types_valid),
		cmocka_unit_test(test_fixed_types_wrong_size),
		cmocka_unit_test(test_error_valid_and_unterminated),
		cmocka_unit_test(test_array_types),
		cmocka_unit_test(test_short_header),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_wrong_version),
		cmocka_unit_test(test_len_disagrees),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_roundtrip_with_fds),
		cmocka_unit_test(test_error_roundtrip),
		cmocka_unit_test(test_extra_fds_closed),
		cmocka_unit_test(test_empty_datagram_fds_closed),
		cmocka_unit_test(test_hostile_fds_closed),
		cmocka_unit_test(test_credentials_do_not_truncate),
		cmocka_unit_test(test_send_limits),
	};

	/* meson runs this with protocol: 'tap' */
	setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 0);
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
