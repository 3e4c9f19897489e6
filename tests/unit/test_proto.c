/* SPDX-License-Identifier: MIT */
/* The control protocol's framing: every type at its valid size, every way a
 * datagram can be malformed, and fd passing over a real socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

/* A datagram buffer aligned like the receivers' (payload casts need it). */
static uint64_t dgram[THP_MSG_MAX / sizeof(uint64_t)];

/* Build a datagram of @type with a payload of @plen bytes (zeroed unless
 * @payload) into dgram; returns its length. */
static size_t build(unsigned type, const void *payload, size_t plen)
{
	struct thp_msg_hdr h;

	thp_msg_init(&h, (enum thp_msg_type)type, 7, plen);
	memset(dgram, 0, sizeof(struct thp_msg_hdr) + plen);
	memcpy(dgram, &h, sizeof(h));
	if (payload)
		memcpy((char *)dgram + sizeof(h), payload, plen);
	return sizeof(h) + plen;
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

/* Payload sizes of the fixed-size types. */
static const struct {
	unsigned type;
	size_t size;
} fixed_types[] = {
	{ THP_MSG_HELLO, sizeof(struct thp_msg_hello) },
	{ THP_MSG_WELCOME, sizeof(struct thp_msg_welcome) },
	{ THP_MSG_EVICT_DONE, sizeof(struct thp_msg_evict_done) },
	{ THP_MSG_STATUS, 0 },
	{ THP_MSG_STATUS_REPLY, sizeof(struct thp_msg_status_reply) },
	{ THP_MSG_CLIENTS, 0 },
	{ THP_MSG_REGIONS, sizeof(struct thp_msg_regions) },
	{ THP_MSG_EVICT_REQ, sizeof(struct thp_msg_evict_req) },
	{ THP_MSG_EVICT_REPLY, sizeof(struct thp_msg_evict_done) },
	{ THP_MSG_STATS, sizeof(struct thp_msg_stats) },
	{ THP_MSG_STATS_REPLY, sizeof(struct thp_msg_stats_reply) },
};

/* Array types: fixed part, entry size, where the count lives, the maximum. */
static const struct {
	unsigned type;
	size_t fixed, elem, count_off;
	uint32_t max;
} array_types[] = {
	{ THP_MSG_EVICT, sizeof(struct thp_msg_evict), sizeof(uint64_t),
	  offsetof(struct thp_msg_evict, n), THP_EVICT_MAX },
	{ THP_MSG_CLIENTS_REPLY, sizeof(struct thp_msg_clients_reply),
	  sizeof(struct thp_client_info), offsetof(struct thp_msg_clients_reply, n),
	  THP_CLIENTS_MAX },
	{ THP_MSG_REGIONS_REPLY, sizeof(struct thp_msg_regions_reply),
	  sizeof(struct thp_region_info), offsetof(struct thp_msg_regions_reply, n),
	  THP_REGIONS_MAX },
};

static size_t build_array(unsigned i, uint32_t n, size_t nelem)
{
	size_t len = build(array_types[i].type, NULL,
			   array_types[i].fixed + nelem * array_types[i].elem);

	memcpy((char *)dgram + sizeof(struct thp_msg_hdr) + array_types[i].count_off,
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
		assert_ptr_equal(m.payload, (char *)dgram + sizeof(struct thp_msg_hdr));
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
		    sizeof(struct thp_msg_hdr) <= THP_MSG_MAX)
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
	assert_int_equal(n, sizeof(struct thp_msg_hdr) + sizeof(hello));
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
	assert_int_equal(n, sizeof(struct thp_msg_hdr));
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
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(struct thp_msg_hdr), fds, 1, &nfds),
			 -EMSGSIZE);
	assert_int_equal(nfds, 0);
	assert_int_equal(open_fds(), before);

	/* the socket is still usable afterwards */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 4, NULL, 0, p, 1), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), fds, 1, &nfds),
			 (long)sizeof(struct thp_msg_hdr));
	assert_int_equal(nfds, 1);
	assert_int_equal(open_fds(), before + 1);
	close(fds[0]);

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
			 (long)sizeof(struct thp_msg_hdr));
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
				      THP_MSG_MAX - sizeof(struct thp_msg_hdr) + 1, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, fds, 9), -EINVAL);
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 4, NULL, 0), -EINVAL);
	/* the largest datagram goes through whole */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, dgram,
				      THP_MSG_MAX - sizeof(struct thp_msg_hdr), NULL, 0), 0);
	assert_int_equal(thp_msg_recv(sv[1], dgram, sizeof(dgram), NULL, 0, NULL), THP_MSG_MAX);
	close(sv[1]);
	/* peer gone: an error, not SIGPIPE */
	assert_int_equal(thp_msg_send(sv[0], THP_MSG_STATUS, 1, NULL, 0, NULL, 0), -EPIPE);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
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
		cmocka_unit_test(test_credentials_do_not_truncate),
		cmocka_unit_test(test_send_limits),
	};

	/* meson runs this with protocol: 'tap' */
	setenv("CMOCKA_MESSAGE_OUTPUT", "TAP", 0);
	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
