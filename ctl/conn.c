/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl's control connection: connect (saying precisely why not),
 * HELLO as CTL, one request and its reply at a time, and the requests
 * several commands share (the client list page by page, the limits, the
 * pressure loop's view).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conn.h"
#include "thpswap/thpswap.h"

int ctl_fail(const struct ctl_conn *c)
{
	ctl_error(c->o, CTL_EXIT_FAIL, c->errnum, "%s: %s", c->cmd, c->err);
	return CTL_EXIT_FAIL;
}

/* Note why the last call failed; returns @r (-errno). */
int ctl_conn_err(struct ctl_conn *c, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	c->errnum = -r;
	return r;
}

static int set_timeout(struct ctl_conn *c, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	return setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

/*
 * Send @req and wait for its reply of type @want (checked and parsed into
 * @m, pointing into c->buf).  0, or -errno with c->err saying why; an
 * ERROR reply returns the daemon's error code and reason.
 */
int ctl_call(struct ctl_conn *c, enum thp_msg_type req, const void *p, size_t len,
		enum thp_msg_type want, struct thp_msg *m)
{
	uint32_t seq = ++c->seq;
	int r;

	r = thp_msg_send(c->fd, req, seq, p, len, NULL, 0);
	if (r < 0)
		return ctl_conn_err(c, r, "cannot send %s to thpswapd: %s", thp_msg_type_name(req),
				strerror(-r));
	for (;;) {
		long n = thp_msg_recv(c->fd, c->buf, sizeof(c->buf), NULL, 0, NULL);

		if (n == 0)
			return ctl_conn_err(c, -ECONNRESET, "thpswapd closed the connection");
		if (n == -EAGAIN)
			return ctl_conn_err(c, -ETIMEDOUT, "thpswapd did not answer within %d s",
					REPLY_TIMEOUT_S);
		if (n < 0)
			return ctl_conn_err(c, (int)n, "cannot read from thpswapd: %s",
					strerror((int)-n));
		r = thp_msg_parse(c->buf, (size_t)n, m);
		if (r < 0)
			return ctl_conn_err(c, r, "thpswapd sent a message this thpswapctl cannot "
					"read (%s): are both the same version?", strerror(-r));
		if (m->hdr.seq != seq)
			continue; /* an answer to something we gave up on */
		if (m->hdr.type == THP_MSG_ERROR) {
			const struct thp_msg_error *e = m->payload;

			return ctl_conn_err(c, e->err < 0 ? e->err : -EIO, "%s", e->text);
		}
		if (m->hdr.type != want)
			return ctl_conn_err(c, -EPROTO, "thpswapd answered %s with %s",
					thp_msg_type_name(req), thp_msg_type_name(m->hdr.type));
		return 0;
	}
}

static const char *file_kind(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFIFO: return "a FIFO";
	case S_IFLNK: return "a symbolic link";
	default: return "not a socket";
	}
}

/* connect() to the socket failed with @err: say why, as precisely as the
 * path tells (a path that is not a socket and a socket nobody listens on
 * both give ECONNREFUSED).  Returns the exit status. */
static int connect_error(const struct ctl_opts *o, int err)
{
	static const char start[] = "start it with `systemctl start thpswapd` or `thpswapd`";
	const char *path = o->socket;
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return ctl_error(o, CTL_EXIT_NO_DAEMON, ENOENT, "thpswapd is not running "
					 "(nothing at %s): %s, or give its socket with --socket",
					 path, start);
		if (errno == ENOTDIR)
			return ctl_error(o, CTL_EXIT_FAIL, ENOTDIR, "cannot connect to %s: a part "
					 "of the path is not a directory", path);
	} else if (!S_ISSOCK(st.st_mode)) {
		return ctl_error(o, CTL_EXIT_FAIL, ENOTSOCK, "%s is not a socket (it is %s): "
				 "give thpswapd's socket with --socket or $THPSWAP_SOCKET "
				 "(default %s)", path, file_kind(st.st_mode), THPSWAP_DEFAULT_SOCKET);
	}
	switch (err) {
	case ECONNREFUSED:
		return ctl_error(o, CTL_EXIT_NO_DAEMON, err, "thpswapd is not running (nothing "
				 "listens on %s, a socket left by one that stopped): %s", path, start);
	case EPROTOTYPE:
		return ctl_error(o, CTL_EXIT_FAIL, err, "%s is a socket of another kind (not "
				 "SOCK_SEQPACKET): not thpswapd's", path);
	case EACCES:
	case EPERM:
		return ctl_error(o, CTL_EXIT_FAIL, err, "cannot connect to %s: %s: run as root "
				 "or as a member of group thpswap", path, strerror(err));
	default:
		return ctl_error(o, CTL_EXIT_FAIL, err, "cannot connect to %s: %s", path,
				 strerror(err));
	}
}

/* Connect and say HELLO.  Returns 0 or the exit status (message printed). */
static int ctl_open(struct ctl_conn *c, const struct ctl_opts *o, const char *cmd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct thp_msg_hello hello = { .role = THP_ROLE_CTL };
	struct thp_msg m;
	int r;

	c->fd = -1;
	c->seq = 0;
	c->cmd = cmd;
	c->o = o;
	c->errnum = 0;
	if (strlen(o->socket) >= sizeof(sa.sun_path))
		return ctl_error(o, CTL_EXIT_USAGE, ENAMETOOLONG, "socket path %s is too long "
				 "(at most %zu bytes)", o->socket, sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, o->socket);
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return ctl_error(o, CTL_EXIT_FAIL, errno, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = errno;
		close(c->fd);
		c->fd = -1;
		return connect_error(o, r);
	}
	r = set_timeout(c, REPLY_TIMEOUT_S);
	if (r == 0) {
		strcpy(hello.comm, "thpswapctl");
		r = ctl_call(c, THP_MSG_HELLO, &hello, sizeof(hello), THP_MSG_WELCOME, &m);
	} else {
		ctl_conn_err(c, r, "setsockopt: %s", strerror(-r));
	}
	if (r < 0) {
		ctl_fail(c);
		close(c->fd);
		c->fd = -1;
		return CTL_EXIT_FAIL;
	}
	return 0;
}

static void ctl_close(struct ctl_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Allocate a connection and open it (the receive buffer is 64 KiB). */
int ctl_new(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd)
{
	struct ctl_conn *c = malloc(sizeof(*c));
	int r;

	if (!c) {
		ctl_error(o, CTL_EXIT_FAIL, ENOMEM, "%s: out of memory", cmd);
		return CTL_EXIT_FAIL;
	}
	r = ctl_open(c, o, cmd);
	if (r) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

void ctl_free(struct ctl_conn *c)
{
	if (c) {
		ctl_close(c);
		free(c);
	}
}

/*
 * Connect, send one request and wait for its reply (@timeout_s 0: forever).
 * 0 with *ret open, or the exit status (message printed, nothing open).
 */
int ctl_request(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd,
		       enum thp_msg_type req, const void *p, size_t len,
		       enum thp_msg_type want, struct thp_msg *m, unsigned timeout_s)
{
	struct ctl_conn *c;
	int r;

	r = ctl_new(&c, o, cmd);
	if (r)
		return r;
	if (timeout_s != REPLY_TIMEOUT_S)
		set_timeout(c, timeout_s);
	if (ctl_call(c, req, p, len, want, m) < 0) {
		r = ctl_fail(c);
		ctl_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* A JSON document on @f (stdout unless it must wait): one top-level object. */
void ctl_json_start_on(struct thp_json *j, FILE *f)
{
	thp_json_init(j, f, true);
	thp_json_begin_object(j, NULL);
}

void ctl_json_start(struct thp_json *j)
{
	ctl_json_start_on(j, stdout);
}

int ctl_json_finish(struct thp_json *j)
{
	thp_json_end_object(j);
	if (thp_json_finish(j) < 0) /* stdout failed: the error goes to stderr only */
		return ctl_error(NULL, CTL_EXIT_FAIL, EIO, "writing the output failed");
	return CTL_EXIT_OK;
}



/* The daemon's limits on peers.  1 if it has none to tell (an older
 * daemon answers ENOMSG), 0 with *@l filled, or -errno (c->err set). */
int ctl_get_limits(struct ctl_conn *c, struct thp_msg_limits_reply *l)
{
	struct thp_msg m;
	int r;

	r = ctl_call(c, THP_MSG_LIMITS, NULL, 0, THP_MSG_LIMITS_REPLY, &m);
	if (r == -ENOMSG)
		return 1;
	if (r < 0)
		return r;
	memcpy(l, m.payload, sizeof(*l));
	if (l->n_counters > THP_L__MAX)
		l->n_counters = THP_L__MAX;
	return 0;
}


/*
 * Every session the daemon shows us, page by page (CLIENTS_PAGE from the
 * last session id received); an older daemon without pages answers ENOMSG
 * and gets one CLIENTS.  0 with *@ret malloc'd (free it), or -errno (c->err
 * set, *@ret NULL).
 */
int ctl_get_clients(struct ctl_conn *c, struct thp_client_info **ret, uint32_t *n)
{
	struct thp_msg_clients_page q = { .after = 0 };
	struct thp_client_info *v = NULL;
	uint32_t have = 0, cap = 0;
	bool paged = true, more;
	int r;

	*ret = NULL;
	*n = 0;
	do {
		const struct thp_msg_clients_reply *cr;
		struct thp_msg m;

		r = paged ? ctl_call(c, THP_MSG_CLIENTS_PAGE, &q, sizeof(q), THP_MSG_CLIENTS_REPLY, &m)
			  : ctl_call(c, THP_MSG_CLIENTS, NULL, 0, THP_MSG_CLIENTS_REPLY, &m);
		if (r == -ENOMSG && paged && q.after == 0) {
			paged = false;
			more = true;
			continue;
		}
		if (r < 0)
			goto fail;
		cr = m.payload;
		if (cr->n > UINT32_MAX - have) {
			r = ctl_conn_err(c, -EPROTO, "thpswapd lists too many clients");
			goto fail;
		}
		if (have + cr->n > cap) {
			uint32_t ncap = cap ? cap : THP_CLIENTS_MAX;
			struct thp_client_info *nv;

			while (ncap < have + cr->n)
				ncap *= 2;
			nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				r = ctl_conn_err(c, -ENOMEM, "out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		/* Ids increase within and across pages, so this ends and lists
		 * each session once. */
		for (uint32_t i = 0; i < cr->n; i++) {
			if (paged && cr->c[i].session_id <= q.after) {
				r = ctl_conn_err(c, -EPROTO, "thpswapd listed session %" PRIu64
					     " after %" PRIu64 ": ids must increase",
					     (uint64_t)cr->c[i].session_id, q.after);
				goto fail;
			}
			v[have++] = cr->c[i];
			q.after = cr->c[i].session_id;
		}
		more = paged && cr->more && cr->n;
	} while (more);
	*ret = v;
	*n = have;
	return 0;
fail:
	free(v);
	return r;
}


int ctl_get_policy(struct ctl_conn *c, int32_t pid, struct ctl_policy *out)
{
	struct thp_msg_policy_page q = { .after = 0, .pid = pid };
	uint32_t cap = 0;
	bool more;
	int r;

	memset(out, 0, sizeof(*out));
	do {
		const struct thp_msg_policy_reply *pr;
		struct thp_msg m;

		r = ctl_call(c, THP_MSG_POLICY_PAGE, &q, sizeof(q), THP_MSG_POLICY_REPLY, &m);
		if (r == -ENOMSG && q.after == 0)
			return 1;
		if (r < 0)
			goto fail;
		pr = m.payload;
		/* The sums of the last page: the most recent. */
		out->promotions = pr->promotions;
		out->promo_rate_ppb = pr->promo_rate_ppb;
		out->working_set = pr->working_set;
		out->pinned = pr->pinned;
		out->stall_us = pr->stall_us;
		if (out->n + pr->n > cap) {
			uint32_t ncap = cap ? cap : THP_POLICY_MAX;
			struct thp_policy_info *nv;

			while (ncap < out->n + pr->n)
				ncap *= 2;
			nv = realloc(out->p, ncap * sizeof(*nv));
			if (!nv) {
				r = ctl_conn_err(c, -ENOMEM, "out of memory");
				goto fail;
			}
			out->p = nv;
			cap = ncap;
		}
		for (uint32_t i = 0; i < pr->n; i++) {
			if (pr->p[i].session_id <= q.after) {
				r = ctl_conn_err(c, -EPROTO, "thpswapd listed session %" PRIu64
						 " after %" PRIu64 ": ids must increase",
						 (uint64_t)pr->p[i].session_id, q.after);
				goto fail;
			}
			out->p[out->n++] = pr->p[i];
			q.after = pr->p[i].session_id;
		}
		more = pr->more && pr->n;
	} while (more);
	return 0;
fail:
	free(out->p);
	memset(out, 0, sizeof(*out));
	return r;
}

const struct thp_policy_info *ctl_policy_of(const struct ctl_policy *pol, uint64_t id)
{
	for (uint32_t i = 0; i < pol->n; i++)
		if (pol->p[i].session_id == id)
			return &pol->p[i];
	return NULL;
}
