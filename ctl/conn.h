/* SPDX-License-Identifier: MIT */
/* thpswapctl's control connection to thpswapd (conn.c). */
#ifndef THPSWAP_CTL_CONN_H
#define THPSWAP_CTL_CONN_H

#include <stdint.h>
#include <stdio.h>

#include "ctl.h"
#include "json.h"
#include "proto.h"

#define REPLY_TIMEOUT_S 30

struct ctl_conn {
	int fd;
	uint32_t seq;
	const char *cmd;          /* for messages */
	const struct ctl_opts *o;
	char err[256];            /* why the last call failed */
	int errnum;               /* and its errno */
	uint64_t buf[THP_MSG_MAX / sizeof(uint64_t)];
};

/* Say why the last call on @c failed (ctl_error); returns CTL_EXIT_FAIL. */
int ctl_fail(const struct ctl_conn *c);
/* Note why the last call failed; returns @r (-errno). */
int ctl_conn_err(struct ctl_conn *c, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Send @req and wait for its reply of type @want (checked and parsed into
 * @m, pointing into c->buf, which the next call reuses).  0, or -errno with
 * c->err saying why; an ERROR reply returns the daemon's error code and
 * reason (-ENOMSG: a request an older daemon does not know).
 */
int ctl_call(struct ctl_conn *c, enum thp_msg_type req, const void *p, size_t len,
	     enum thp_msg_type want, struct thp_msg *m);
/* Allocate a connection and open it (HELLO).  0, or the exit status
 * (message printed, nothing open). */
int ctl_new(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd);
void ctl_free(struct ctl_conn *c);
/* Connect, send one request and wait for its reply (@timeout_s 0: forever).
 * 0 with *ret open, or the exit status (message printed, nothing open). */
int ctl_request(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd,
		enum thp_msg_type req, const void *p, size_t len,
		enum thp_msg_type want, struct thp_msg *m, unsigned timeout_s);

/* A JSON document (one top-level object) on @f, or stdout; finish closes
 * it and returns the exit status. */
void ctl_json_start_on(struct thp_json *j, FILE *f);
void ctl_json_start(struct thp_json *j);
int ctl_json_finish(struct thp_json *j);

/* The daemon's limits on peers.  1 if it has none to tell (an older
 * daemon answers ENOMSG), 0 with *@l filled, or -errno (c->err set). */
int ctl_get_limits(struct ctl_conn *c, struct thp_msg_limits_reply *l);
/* Every session the daemon shows us, page by page.  0 with *@ret
 * malloc'd (free it), or -errno (c->err set, *@ret NULL). */
int ctl_get_clients(struct ctl_conn *c, struct thp_client_info **ret, uint32_t *n);

/* The pressure loop's view (POLICY_PAGE): the sums, and per session. */
struct ctl_policy {
	uint64_t promotions, promo_rate_ppb, working_set, pinned, stall_us; /* the sums */
	struct thp_policy_info *p;        /* malloc'd, in increasing session id */
	uint32_t n;
};
/* Of every session we may see (@pid 0) or of @pid's alone.  1 if the
 * daemon has none to tell (older: ENOMSG; *@out zeroed), 0 with *@out
 * filled (free out->p), or -errno (c->err set). */
int ctl_get_policy(struct ctl_conn *c, int32_t pid, struct ctl_policy *out);
/* The entry of session @id in @pol, or NULL. */
const struct thp_policy_info *ctl_policy_of(const struct ctl_policy *pol, uint64_t id);

#endif
