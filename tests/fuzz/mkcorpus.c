/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzzers' seed inputs: one valid message of every type for
 * fuzz-proto, and conversations with the daemon for fuzz-daemon (a control
 * peer's requests; a client's HELLO, arena records and answered EVICT;
 * deadlines; fds where none belong; RESUMEs the daemon refuses).  Built from src/proto.h and
 * src/arena.h, so the seeds follow the protocol.
 *
 * Usage: fuzz-mkcorpus PROTO-DIR DAEMON-DIR (tests/fuzz/corpus/proto and
 * tests/fuzz/corpus/daemon; the files are committed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "proto.h"

/* An input being built. */
struct out {
	uint8_t b[1 << 17];
	size_t len;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > sizeof(o->b)) {
		fprintf(stderr, "fuzz-mkcorpus: seed too large\n");
		exit(1);
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void put8(struct out *o, uint8_t v) { put(o, &v, 1); }
static void put16(struct out *o, uint16_t v) { put(o, &v, 2); }

/* A whole datagram: header then payload. */
static size_t msg(uint8_t *dst, unsigned type, uint32_t seq, const void *payload, size_t len)
{
	struct thp_msg_hdr h;

	thp_msg_init(&h, (enum thp_msg_type)type, seq, len);
	memcpy(dst, &h, sizeof(h));
	if (len)
		memcpy(dst + sizeof(h), payload, len);
	return sizeof(h) + len;
}

static void save(const char *dir, const char *name, const struct out *o)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(o->b, 1, o->len, f) != o->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- fuzz-proto: two control bytes, then one datagram ---- */

static void proto_seed(const char *dir, const char *name, uint8_t c0, uint8_t c1,
		       unsigned type, const void *payload, size_t len)
{
	static struct out o;
	uint8_t d[THP_MSG_MAX];

	o.len = 0;
	put8(&o, c0);
	put8(&o, c1);
	put(&o, d, msg(d, type, 7, payload, len));
	save(dir, name, &o);
}

static void proto_seeds(const char *dir)
{
	struct thp_msg_error err = { .err = -3 };
	struct thp_msg_hello hc = { .role = THP_ROLE_CLIENT, .max_regions = 16, .comm = "app" };
	struct thp_msg_hello hctl = { .role = THP_ROLE_CTL, .comm = "thpswapctl" };
	struct thp_msg_welcome w = { .session_id = 1, .arena_size = 1 << 30, .daemon_pid = 1 };
	struct thp_msg_evict_done done = { .evicted = 2, .skipped = 1, .bytes_in = 4 << 20 };
	struct thp_msg_status_reply st = { .daemon_pid = 1, .clients = 1, .regions = 3 };
	struct thp_msg_regions rq = { .pid = 42 };
	struct thp_msg_evict_req er = { .pid = 42, .addr = 0x7f0000000000, .len = 4 << 20 };
	struct thp_msg_evict_req erk = { .pid = 42, .flags = THP_EVICT_REQ_KERNEL };
	struct thp_msg_stats sq = { .pid = 42 };
	static struct thp_msg_stats_reply sr = { .n_counters = THP_C__MAX, .n_hist = THP_H__MAX };
	struct thp_msg_limits_reply lr = { .n_counters = THP_L__MAX, .max_conns_per_uid = 256 };
	struct thp_msg_resume rs = { .max_regions = 16, .session_id = 3, .arena_size = 1 << 30,
				     .comm = "app" };
	uint64_t ev[(sizeof(struct thp_msg_evict) + 3 * 8) / 8] = { 0 };
	struct thp_msg_evict *e = (void *)ev;
	uint64_t cr[(sizeof(struct thp_msg_clients_reply) + 2 * sizeof(struct thp_client_info)) / 8];
	struct thp_msg_clients_reply *c = (void *)cr;
	uint64_t rr[(sizeof(struct thp_msg_regions_reply) + 2 * sizeof(struct thp_region_info)) / 8];
	struct thp_msg_regions_reply *r = (void *)rr;
	struct thp_msg_clients_page cp = { .after = 1 };
	struct thp_msg_policy_page pp = { .after = 0, .pid = 42 };
	uint64_t pr[(sizeof(struct thp_msg_policy_reply) + 2 * sizeof(struct thp_policy_info)) / 8];
	struct thp_msg_policy_reply *pol = (void *)pr;
	struct thp_msg_pin_req pin = { .pid = 42, .pin = 1, .addr = 0x7f0000000000, .len = 4 << 20 };
	struct thp_msg_pin_reply pinr = { .regions = 2 };

	snprintf(err.text, sizeof(err.text), "no thpswap client with pid 42");
	snprintf(st.version, sizeof(st.version), "0.1.0");
	e->reason = THP_EVICT_ADMIN;
	e->n = 3;
	for (unsigned i = 0; i < 3; i++)
		e->addr[i] = 0x7f0000000000 + i * THP_REGION_BYTES;
	memset(cr, 0, sizeof(cr));
	c->n = 2;
	c->c[0] = (struct thp_client_info){ .pid = 42, .regions = 5, .comm = "app" };
	c->c[1] = (struct thp_client_info){ .pid = 43, .regions = 1, .comm = "redis-server" };
	memset(rr, 0, sizeof(rr));
	r->n = 2;
	r->r[0] = (struct thp_region_info){ .addr = 0x7f0000000000, .state = THP_ST_RAM,
					    .stored_len = 12345, .codec = THP_CODEC_ZSTD };
	r->r[1] = (struct thp_region_info){ .addr = 0x7f0000200000, .state = THP_ST_RESIDENT };

	/* c0 bit 0: through the socket; bits 1-5: fds attached; c1: maxfds */
	proto_seed(dir, "error", 0, 0, THP_MSG_ERROR, &err, sizeof(err));
	proto_seed(dir, "hello-ctl", 1, 1, THP_MSG_HELLO, &hctl, sizeof(hctl));
	proto_seed(dir, "hello-client-uffd", 1 | 1 << 1, 1, THP_MSG_HELLO, &hc, sizeof(hc));
	proto_seed(dir, "welcome-arena", 1 | 1 << 1 | 1 << 6, 1, THP_MSG_WELCOME, &w, sizeof(w));
	proto_seed(dir, "evict", 0, 0, THP_MSG_EVICT, e, sizeof(ev));
	proto_seed(dir, "evict-done", 1, 0, THP_MSG_EVICT_DONE, &done, sizeof(done));
	proto_seed(dir, "status", 0, 0, THP_MSG_STATUS, NULL, 0);
	proto_seed(dir, "status-reply", 0, 0, THP_MSG_STATUS_REPLY, &st, sizeof(st));
	proto_seed(dir, "clients", 0, 0, THP_MSG_CLIENTS, NULL, 0);
	proto_seed(dir, "clients-reply", 1, 0, THP_MSG_CLIENTS_REPLY, c, sizeof(cr));
	proto_seed(dir, "regions", 0, 0, THP_MSG_REGIONS, &rq, sizeof(rq));
	proto_seed(dir, "regions-reply", 0, 0, THP_MSG_REGIONS_REPLY, r, sizeof(rr));
	proto_seed(dir, "evict-req", 0, 0, THP_MSG_EVICT_REQ, &er, sizeof(er));
	proto_seed(dir, "evict-req-kernel", 0, 0, THP_MSG_EVICT_REQ, &erk, sizeof(erk));
	proto_seed(dir, "evict-reply", 0, 0, THP_MSG_EVICT_REPLY, &done, sizeof(done));
	proto_seed(dir, "stats", 0, 0, THP_MSG_STATS, &sq, sizeof(sq));
	proto_seed(dir, "stats-reply", 0, 0, THP_MSG_STATS_REPLY, &sr, sizeof(sr));
	proto_seed(dir, "limits", 1, 0, THP_MSG_LIMITS, NULL, 0);
	proto_seed(dir, "limits-reply", 0, 0, THP_MSG_LIMITS_REPLY, &lr, sizeof(lr));
	proto_seed(dir, "clients-page", 0, 0, THP_MSG_CLIENTS_PAGE, &cp, sizeof(cp));
	memset(pr, 0, sizeof(pr));
	pol->n = 2;
	pol->promotions = 3;
	pol->p[0] = (struct thp_policy_info){ .session_id = 1, .pid = 42, .promotions = 3 };
	pol->p[1] = (struct thp_policy_info){ .session_id = 2, .pid = 43, .pinned = 4 };
	proto_seed(dir, "policy-page", 0, 0, THP_MSG_POLICY_PAGE, &pp, sizeof(pp));
	proto_seed(dir, "policy-reply", 0, 0, THP_MSG_POLICY_REPLY, pol, sizeof(pr));
	proto_seed(dir, "pin-req", 0, 0, THP_MSG_PIN_REQ, &pin, sizeof(pin));
	proto_seed(dir, "pin-reply", 0, 0, THP_MSG_PIN_REPLY, &pinr, sizeof(pinr));
	proto_seed(dir, "resume-arena", 1 | 1 << 1, 1, THP_MSG_RESUME, &rs, sizeof(rs));
}

/* ---- fuzz-daemon: operations (see fuzz_daemon.c) ---- */

enum { OP_CONNECT, OP_SEND, OP_SEND_UFFD, OP_SEND_MEMFD, OP_HANGUP, OP_ARENA, OP_DONE, OP_SWEEP };
#define PEER(k) ((k) << 3)
#define WITH_PID (1 << 5)

static void d_send(struct out *o, uint8_t op, unsigned type, uint32_t seq,
		   const void *payload, size_t len)
{
	uint8_t d[THP_MSG_MAX];
	size_t n = msg(d, type, seq, payload, len);

	put8(o, op);
	put16(o, (uint16_t)n);
	put(o, d, n);
}

static void d_hello_ctl(struct out *o, unsigned k)
{
	struct thp_msg_hello h = { .role = THP_ROLE_CTL, .comm = "thpswapctl" };

	put8(o, OP_CONNECT | PEER(k));
	d_send(o, OP_SEND | PEER(k), THP_MSG_HELLO, 1, &h, sizeof(h));
}

/* A client session on peer @k with @n resident records in its arena. */
static void d_client(struct out *o, unsigned k, unsigned n)
{
	struct thp_msg_hello h = { .role = THP_ROLE_CLIENT, .max_regions = 8, .comm = "app" };
	struct thp_arena_header ah;

	put8(o, OP_CONNECT | PEER(k));
	d_send(o, OP_SEND_UFFD | PEER(k), THP_MSG_HELLO, 1, &h, sizeof(h));
	memset(&ah, 0, sizeof(ah));
	thp_arena_layout(&ah, 8);
	for (unsigned i = 0; i < n; i++) {
		struct thp_record r = { .addr = 0x7f0000000000 + i * THP_REGION_BYTES,
					.last_fault_ns = 1000 + i };

		atomic_init(&r.state, THP_ST_RESIDENT);
		put8(o, OP_ARENA);
		put16(o, (uint16_t)(ah.records_off + i * sizeof(r)));
		put16(o, sizeof(r));
		put(o, &r, sizeof(r));
	}
}

static void d_done(struct out *o, unsigned k, uint32_t evicted)
{
	struct thp_msg_evict_done done = { .evicted = evicted, .bytes_in = evicted * THP_REGION_BYTES,
					   .bytes_stored = 4096 };

	put8(o, OP_DONE | PEER(k));
	put16(o, sizeof(done));
	put(o, &done, sizeof(done));
}

static void daemon_seeds(const char *dir)
{
	static struct out o;
	struct thp_msg_stats all = { .pid = 0 }, one = { .pid = 0 };
	struct thp_msg_regions rq = { .pid = 0 };
	struct thp_msg_evict_req every = { .pid = 0 }, range = { .addr = 0x7f0000200000,
							       .len = 4 << 20 };
	struct thp_msg_evict_req kernel = { .flags = THP_EVICT_REQ_KERNEL };
	struct thp_msg_error err = { .err = -5 };

	/* A control peer's every request (no client). */
	o.len = 0;
	d_hello_ctl(&o, 0);
	d_send(&o, OP_SEND, THP_MSG_STATUS, 2, NULL, 0);
	d_send(&o, OP_SEND, THP_MSG_LIMITS, 3, NULL, 0);
	d_send(&o, OP_SEND, THP_MSG_CLIENTS, 4, NULL, 0);
	d_send(&o, OP_SEND, THP_MSG_STATS, 5, &all, sizeof(all));
	d_send(&o, OP_SEND | WITH_PID, THP_MSG_REGIONS, 6, &rq, sizeof(rq));
	save(dir, "ctl-requests", &o);

	/* A client with three resident regions; a control peer evicts them
	 * all and the client answers; then regions, stats, a range. */
	o.len = 0;
	d_client(&o, 0, 3);
	d_hello_ctl(&o, 1);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 2, &every, sizeof(every));
	d_done(&o, 0, 3);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_REGIONS, 3, &rq, sizeof(rq));
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_STATS, 4, &one, sizeof(one));
	d_send(&o, OP_SEND | PEER(1), THP_MSG_STATUS, 5, NULL, 0);
	d_send(&o, OP_SEND | PEER(1), THP_MSG_CLIENTS, 6, NULL, 0);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 7, &range, sizeof(range));
	d_done(&o, 0, 2);
	save(dir, "client-evict", &o);

	/* The same client's regions to the kernel's swap (--tier kernel). */
	o.len = 0;
	d_client(&o, 0, 3);
	d_hello_ctl(&o, 1);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 2, &kernel, sizeof(kernel));
	d_done(&o, 0, 3);
	save(dir, "client-evict-kernel", &o);

	/* The client refuses the EVICT with an ERROR (text with a newline and
	 * an escape: logged escaped), then hangs up with a request queued. */
	o.len = 0;
	d_client(&o, 0, 2);
	d_hello_ctl(&o, 1);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 2, &every, sizeof(every));
	snprintf(err.text, sizeof(err.text), "no\nway \x1b[31m");
	d_send(&o, OP_SEND, THP_MSG_ERROR, 1, &err, sizeof(err));
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 3, &every, sizeof(every));
	put8(&o, OP_HANGUP);
	save(dir, "client-refuses", &o);

	/* A control peer pins the client's first two regions, sees the
	 * pressure loop's view, evicts every region, unpins them all. */
	o.len = 0;
	d_client(&o, 0, 3);
	d_hello_ctl(&o, 1);
	{
		struct thp_msg_pin_req pin = { .pin = 1, .addr = 0x7f0000000000, .len = 4 << 20 };
		struct thp_msg_pin_req unpin = { .pin = 0 };
		struct thp_msg_policy_page pp = { .after = 0 };

		d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_PIN_REQ, 2, &pin, sizeof(pin));
		d_send(&o, OP_SEND | PEER(1), THP_MSG_POLICY_PAGE, 3, &pp, sizeof(pp));
		d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 4, &every, sizeof(every));
		d_done(&o, 0, 1);
		d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_PIN_REQ, 5, &unpin, sizeof(unpin));
	}
	save(dir, "client-pin", &o);

	/* Deadlines: a peer that never says HELLO, a client that never
	 * answers its EVICT (then answers late). */
	o.len = 0;
	put8(&o, OP_CONNECT | PEER(2));
	d_client(&o, 0, 1);
	d_hello_ctl(&o, 1);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 2, &every, sizeof(every));
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 3, &every, sizeof(every));
	put8(&o, OP_SWEEP);
	put16(&o, 3600);
	d_send(&o, OP_SEND | PEER(1) | WITH_PID, THP_MSG_EVICT_REQ, 4, &every, sizeof(every));
	d_done(&o, 0, 1);
	save(dir, "deadlines", &o);

	/* Over budget: the client says three regions are resident, the
	 * policy tick evicts, the client answers. */
	o.len = 0;
	d_client(&o, 0, 3);
	{
		struct thp_arena_header ah;
		uint64_t three = 3;

		memset(&ah, 0, sizeof(ah));
		put8(&o, OP_ARENA);
		put16(&o, (uint16_t)offsetof(struct thp_arena_header, ctr[THP_C_RESIDENT]));
		put16(&o, sizeof(three));
		put(&o, &three, sizeof(three));
	}
	put8(&o, OP_SWEEP);
	put16(&o, 0);
	d_done(&o, 0, 2);
	d_hello_ctl(&o, 1);
	d_send(&o, OP_SEND | PEER(1), THP_MSG_STATUS, 2, NULL, 0);
	save(dir, "budget", &o);

	/* fds where none belong, a second HELLO, a request before HELLO, a
	 * client message from a control peer. */
	o.len = 0;
	{
		struct thp_msg_hello h = { .role = THP_ROLE_CTL };

		put8(&o, OP_CONNECT);
		d_send(&o, OP_SEND | PEER(0), THP_MSG_STATUS, 1, NULL, 0);
		d_send(&o, OP_SEND_MEMFD | PEER(0) | 2 << 5, THP_MSG_HELLO, 2, &h, sizeof(h));
		d_send(&o, OP_SEND_MEMFD | PEER(0), THP_MSG_HELLO, 3, &h, sizeof(h));
		d_send(&o, OP_SEND | PEER(0), THP_MSG_HELLO, 4, &h, sizeof(h));
		d_send(&o, OP_SEND_UFFD | PEER(0), THP_MSG_HELLO, 5, &h, sizeof(h));
		d_send(&o, OP_SEND | PEER(0), THP_MSG_EVICT_DONE, 6, &(struct thp_msg_evict_done){ 0 },
		       sizeof(struct thp_msg_evict_done));
		d_send(&o, OP_SEND_UFFD | PEER(0), THP_MSG_STATUS, 7, NULL, 0);
	}
	save(dir, "bad-fds", &o);

	/* RESUME without its arena, with memfds that are no arena (refused),
	 * with two, and after HELLO. */
	o.len = 0;
	{
		struct thp_msg_resume rs = { .max_regions = 8, .session_id = 1, .comm = "app" };
		struct thp_arena_header ah;

		memset(&ah, 0, sizeof(ah));
		thp_arena_layout(&ah, 8);
		rs.arena_size = ah.size;
		put8(&o, OP_CONNECT);
		d_send(&o, OP_SEND | PEER(0), THP_MSG_RESUME, 1, &rs, sizeof(rs));
		put8(&o, OP_CONNECT | PEER(1));
		d_send(&o, OP_SEND_MEMFD | PEER(1), THP_MSG_RESUME, 2, &rs, sizeof(rs));
		put8(&o, OP_CONNECT | PEER(2));
		d_send(&o, OP_SEND_MEMFD | PEER(2) | 1 << 5, THP_MSG_RESUME, 3, &rs, sizeof(rs));
		d_client(&o, 3, 1);
		d_send(&o, OP_SEND_MEMFD | PEER(3), THP_MSG_RESUME, 4, &rs, sizeof(rs));
	}
	save(dir, "resume", &o);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: fuzz-mkcorpus PROTO-DIR DAEMON-DIR\n");
		return 2;
	}
	proto_seeds(argv[1]);
	daemon_seeds(argv[2]);
	return 0;
}
