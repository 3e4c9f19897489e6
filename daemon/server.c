/* SPDX-License-Identifier: MIT */
/*
 * The control socket: listening (bound here or passed by systemd), accepting,
 * reading and dispatching messages.  Anything a peer sends that does not
 * parse or does not fit the connection's state is answered with ERROR.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "thpswapd.h"

/* Messages handled per readiness callback before others get a turn. */
#define READ_BATCH 32

int thpd_conn_send(struct thpd_conn *c, enum thp_msg_type type, uint32_t seq,
		   const void *payload, size_t len, const int *fds, unsigned nfds)
{
	int r;

	if (c->closing)
		return -EPIPE;
	r = thp_msg_send(c->fd, type, seq, payload, len, fds, nfds);
	if (r < 0) {
		/* A peer that does not read its replies (-EAGAIN) or is gone. */
		thpd_info(c->d, "pid %d: cannot send %s: %s", (int)c->pid,
			  thp_msg_type_name(type), strerror(-r));
		thpd_conn_close(c, "send failed");
	}
	return r;
}

void thpd_conn_error(struct thpd_conn *c, uint32_t seq, int err, const char *fmt, ...)
{
	char text[sizeof(((struct thp_msg_error *)0)->text)];
	va_list ap;
	int r;

	if (c->closing)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	thpd_info(c->d, "pid %d: error reply: %s", (int)c->pid, text);
	r = thp_msg_send_error(c->fd, seq, err, "%s", text);
	if (r < 0)
		thpd_conn_close(c, "send failed");
}

/* ---- listening ---- */

static int listen_activated(struct thpd *d, int n, char **names)
{
	int fd = -1;

	for (int i = 0; i < n; i++)
		if (names && names[i] && !strcmp(names[i], "control"))
			fd = SD_LISTEN_FDS_START + i;
	if (fd < 0 && n == 1)
		fd = SD_LISTEN_FDS_START;
	for (int i = 0; i < n; i++)
		if (SD_LISTEN_FDS_START + i != fd)
			close(SD_LISTEN_FDS_START + i);
	if (fd < 0) {
		thpd_warn("systemd passed %d sockets but none is named \"control\": "
			  "set FileDescriptorName=control in thpswapd.socket", n);
		return -EINVAL;
	}
	if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
		thpd_warn("fd %d from systemd is not a listening SOCK_SEQPACKET unix socket: "
			  "use ListenSequentialPacket= in thpswapd.socket", fd);
		close(fd);
		return -EINVAL;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		int r = -errno;

		thpd_warn("cannot set up fd %d from systemd: %s", fd, strerror(-r));
		close(fd);
		return r;
	}
	d->listen_fd = fd;
	return 0;
}

/* Create the socket's missing parent directories, mode 0755. */
static int make_parents(const char *path)
{
	char dir[sizeof(((struct thpd_config *)0)->socket)];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int r = -errno;

			thpd_warn("cannot create %s for the socket: %s", dir, strerror(-r));
			return r;
		}
		*p = '/';
	}
	return 0;
}

/* A socket file left by a dead daemon is removed; a live one is not. */
static int clear_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		thpd_warn("%s exists and is not a socket: remove it or choose another --socket",
			  sa->sun_path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	if (r == 0) {
		thpd_warn("another thpswapd is already listening on %s "
			  "(stop it first, or choose another --socket)", sa->sun_path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED) {
		thpd_warn("%s is in use (%s): remove it or choose another --socket",
			  sa->sun_path, strerror(-r));
		return -EADDRINUSE;
	}
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* 0660 with group thpswap when that group exists, else 0600. */
static void set_socket_access(struct thpd *d, const char *path)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (getgrnam_r("thpswap", &gr, buf, sizeof(buf), &res) != 0 || !res) {
		thpd_info(d, "no group thpswap: %s is 0600 (root only)", path);
		return;
	}
	if (chown(path, (uid_t)-1, res->gr_gid) < 0 || chmod(path, 0660) < 0)
		thpd_warn("cannot give group thpswap access to %s: %s", path, strerror(errno));
}

static int listen_bound(struct thpd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = d->cfg.socket;
	struct stat st;
	mode_t old;
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r = make_parents(path);
	if (r < 0)
		return r;
	r = clear_stale(&sa);
	if (r < 0) {
		if (r != -EEXIST && r != -EADDRINUSE)
			thpd_warn("cannot use %s: %s", path, strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		thpd_warn("cannot create a socket: %s", strerror(-r));
		return r;
	}
	/* Born 0600: nobody can connect before the group is set. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r == 0 && listen(fd, SOMAXCONN) < 0)
		r = -errno;
	if (r < 0) {
		thpd_warn("cannot listen on %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	set_socket_access(d, path);
	if (stat(path, &st) == 0)
		d->socket_ino = st.st_ino;
	d->listen_fd = fd;
	d->socket_bound = true;
	return 0;
}

/* Look cfg.admin_group up once, at start: a lookup per connection could
 * block the loop on a slow name service.  A group that does not exist
 * leaves other users' sessions to root alone. */
static void resolve_admin_group(struct thpd *d)
{
	struct group gr, *res = NULL;
	char buf[4096];
	int r;

	d->have_admin_gid = false;
	if (!d->cfg.admin_group[0])
		return;
	r = getgrnam_r(d->cfg.admin_group, &gr, buf, sizeof(buf), &res);
	if (r != 0 || !res) {
		thpd_warn("admin-group %s: %s: only root may see and steer other users' sessions",
			  d->cfg.admin_group, r ? strerror(r) : "no such group");
		return;
	}
	d->admin_gid = res->gr_gid;
	d->have_admin_gid = true;
	thpd_info(d, "members of group %s (gid %u) may see and steer every user's sessions",
		  d->cfg.admin_group, (unsigned)res->gr_gid);
}

bool thpd_peer_is_admin(const struct thpd_conn *c)
{
	const struct thpd *d = c->d;
	gid_t groups[256], *g = groups;
	socklen_t len = sizeof(groups);
	bool found = false;

	if (c->uid == 0)
		return true;
	if (!d->have_admin_gid)
		return false;
	if (c->gid == d->admin_gid)
		return true;
	/* The peer's supplementary groups when it connected; a peer in more
	 * groups than fit here needs a bigger buffer (ERANGE gives the size). */
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
		if (errno != ERANGE || !(g = malloc(len)))
			return false;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0)
			len = 0;
	}
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		found |= g[i] == d->admin_gid;
	if (g != groups)
		free(g);
	return found;
}

int thpd_server_open(struct thpd *d)
{
	char **names = NULL;
	int n, r;

	resolve_admin_group(d);

	n = sd_listen_fds_with_names(1, &names);
	if (n < 0) {
		thpd_warn("cannot read the sockets systemd passed (LISTEN_FDS): %s", strerror(-n));
		return n;
	}
	if (n > 0) {
		r = listen_activated(d, n, names);
		if (r == 0)
			thpd_info(d, "socket-activated (fd %d)", d->listen_fd);
	} else {
		r = listen_bound(d);
		if (r == 0)
			thpd_info(d, "listening on %s", d->cfg.socket);
	}
	if (names)
		for (int i = 0; i < n; i++)
			free(names[i]);
	free(names);
	return r;
}

/* ---- connections ---- */

static void on_accept(uv_poll_t *h, int status, int events);

static void on_conn_closed(uv_handle_t *h)
{
	struct thpd_conn *c = h->data;
	struct thpd *d = c->d;

	close(c->fd);
	free(c);
	if (d->accept_paused && !d->stopping) {
		d->accept_paused = false;
		uv_poll_start(&d->listen_poll, UV_READABLE, on_accept);
	}
}

void thpd_conn_close(struct thpd_conn *c, const char *why)
{
	struct thpd *d = c->d;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->s) {
		thpd_info(d, "pid %d: session %llu ended (%s)", (int)c->pid,
			  (unsigned long long)thpd_session_id(c->s), why);
		thpd_session_free(c->s);
		c->s = NULL;
		d->nclients--;
		if (!d->stopping)
			thpd_notify_status(d);
	}
	if (c->role == THP_ROLE_CTL)
		thpd_session_forget_owner(d, c);
	uv_close((uv_handle_t *)&c->poll, on_conn_closed);
}

static void close_fds(const int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

/* @n fds came with @what, which may not carry them, and were closed (@n 0:
 * more than any message carries, or truncated). */
static void bad_fds(struct thpd_conn *c, unsigned n, const char *what)
{
	char sent[64];

	if (n)
		snprintf(sent, sizeof(sent), "%u file descriptors with %s", n, what);
	else
		snprintf(sent, sizeof(sent), "a message with too many or truncated file descriptors");
	thpd_limit_hit(c->d, c, THP_L_BAD_FDS,
		       "pid %d (uid %u) sent %s: closed them (only a client's HELLO carries one, "
		       "its userfaultfd, and its RESUME one, its arena; counted as bad_fds in "
		       "thpswapctl status)", (int)c->pid, (unsigned)c->uid, sent);
}

static void handle_hello(struct thpd_conn *c, const struct thp_msg *m, int *fds, unsigned nfds)
{
	const struct thp_msg_hello *hello = m->payload;
	uint32_t seq = m->hdr.seq;

	if (c->role) {
		close_fds(fds, nfds);
		if (nfds)
			bad_fds(c, nfds, "a second HELLO");
		thpd_conn_error(c, seq, -EPROTO, "HELLO was already sent on this connection");
		return;
	}
	switch (hello->role) {
	case THP_ROLE_CLIENT:
		if (nfds != 1) {
			close_fds(fds, nfds);
			if (nfds)
				bad_fds(c, nfds, "HELLO");
			thpd_conn_error(c, seq, -EINVAL,
					"a client HELLO carries its region userfaultfd (SCM_RIGHTS)");
			return;
		}
		thpd_session_start(c, seq, hello, fds[0]);
		return;
	case THP_ROLE_CTL: {
		struct thp_msg_welcome w = { .daemon_pid = (uint32_t)getpid() };

		if (nfds) {
			close_fds(fds, nfds);
			bad_fds(c, nfds, "a control HELLO");
			thpd_conn_error(c, seq, -EINVAL, "a control HELLO carries no file descriptors");
			return;
		}
		c->role = THP_ROLE_CTL;
		c->admin = thpd_peer_is_admin(c);
		thpd_conn_send(c, THP_MSG_WELCOME, seq, &w, sizeof(w), NULL, 0);
		return;
	}
	default:
		close_fds(fds, nfds);
		if (nfds)
			bad_fds(c, nfds, "a HELLO of no known role");
		thpd_conn_error(c, seq, -EINVAL, "unknown role %u in HELLO (1 client, 2 control)",
				hello->role);
	}
}

/* A client whose daemon went away asks to be adopted (src/proto.h). */
static void handle_resume(struct thpd_conn *c, const struct thp_msg *m, int *fds, unsigned nfds)
{
	uint32_t seq = m->hdr.seq;

	if (c->role) {
		close_fds(fds, nfds);
		if (nfds)
			bad_fds(c, nfds, "a RESUME after HELLO");
		thpd_conn_error(c, seq, -EPROTO,
				"RESUME must be the first message of a connection");
		return;
	}
	if (nfds != 1) {
		close_fds(fds, nfds);
		if (nfds)
			bad_fds(c, nfds, "RESUME");
		thpd_conn_error(c, seq, -EINVAL, "a RESUME carries its arena memfd (SCM_RIGHTS)");
		return;
	}
	thpd_session_resume(c, seq, m->payload, fds[0]);
}

static void dispatch(struct thpd_conn *c, const struct thp_msg *m, int *fds, unsigned nfds)
{
	unsigned type = m->hdr.type;

	if (type == THP_MSG_HELLO) {
		handle_hello(c, m, fds, nfds);
		return;
	}
	if (type == THP_MSG_RESUME) {
		handle_resume(c, m, fds, nfds);
		return;
	}
	if (nfds) {
		close_fds(fds, nfds);
		bad_fds(c, nfds, thp_msg_type_name(type));
		thpd_conn_error(c, m->hdr.seq, -EINVAL, "unexpected file descriptors with %s",
				thp_msg_type_name(type));
		return;
	}
	if (type == THP_MSG_ERROR) {
		const struct thp_msg_error *e = m->payload;

		/* Never answer an error with an error. */
		if (c->s) {
			thpd_session_peer_error(c, m->hdr.seq, e);
		} else {
			char text[4 * sizeof(e->text)];

			thpd_info(c->d, "pid %d: peer reports: %s (%d)", (int)c->pid,
				  thpd_escape(text, sizeof(text), e->text, sizeof(e->text)), e->err);
		}
		return;
	}
	if (!c->role) {
		thpd_conn_error(c, m->hdr.seq, -EPROTO, "the first message must be HELLO, not %s",
				thp_msg_type_name(type));
	} else if (c->role == THP_ROLE_CLIENT) {
		if (type == THP_MSG_EVICT_DONE)
			thpd_session_evict_done(c, m->hdr.seq, m->payload);
		else
			thpd_conn_error(c, m->hdr.seq, -EPROTO, "%s is not a client message",
					thp_msg_type_name(type));
	} else {
		thpd_ctl_handle(c, m);
	}
}

static void parse_error(struct thpd_conn *c, long n, int err)
{
	struct thp_msg_hdr h = { .seq = 0 };

	if (n >= (long)sizeof(h))
		memcpy(&h, c->d->rbuf, sizeof(h));
	switch (err) {
	case -EPROTONOSUPPORT:
		thpd_conn_error(c, h.seq, err, "protocol version %u is not supported "
				"(thpswapd %s speaks version %u)", h.version, THPSWAP_VERSION,
				THP_PROTO_VERSION);
		break;
	case -ENOMSG:
		thpd_conn_error(c, h.seq, err, "unknown message type %u", h.type);
		break;
	default:
		thpd_conn_error(c, h.seq, err, "malformed message (%ld bytes): %s", n,
				strerror(-err));
	}
}

static void on_conn_readable(uv_poll_t *h, int status, int events)
{
	struct thpd_conn *c = h->data;
	struct thpd *d = c->d;

	if (status < 0) {
		thpd_conn_close(c, uv_strerror(status));
		return;
	}
	for (int i = 0; i < READ_BATCH && !c->closing; i++) {
		struct thp_msg m;
		unsigned nfds = 0;
		int fds[1];
		long n;
		int r;

		n = thp_msg_recv(c->fd, d->rbuf, sizeof(d->rbuf), fds, 1, &nfds);
		if (n == -EAGAIN)
			return;
		if (n == 0) {
			thpd_conn_close(c, "disconnected");
			return;
		}
		if (n == -EBADMSG || n == -EMSGSIZE) {
			/* thp_msg_recv closed whatever fds came with it. */
			if (n == -EBADMSG)
				bad_fds(c, 0, NULL);
			thpd_conn_error(c, 0, (int)n, n == -EMSGSIZE ?
					"message larger than %u bytes" :
					"too many or truncated file descriptors (limit %u)",
					n == -EMSGSIZE ? THP_MSG_MAX : 1u);
			continue;
		}
		if (n < 0) {
			thpd_conn_close(c, strerror((int)-n));
			return;
		}
		r = thp_msg_parse(d->rbuf, (size_t)n, &m);
		if (r < 0) {
			close_fds(fds, nfds);
			parse_error(c, n, r);
			continue;
		}
		dispatch(c, &m, fds, nfds);
	}
}

static unsigned conns_of_uid(const struct thpd *d, uid_t uid)
{
	unsigned n = 0;

	for (const struct thpd_conn *k = d->conns; k; k = k->next)
		n += k->uid == uid && !k->closing;
	return n;
}

/* Over max-conns-per-uid: say why (the peer may be a client waiting for
 * WELCOME: it gets this ERROR instead) and hang up. */
static void refuse_uid(struct thpd *d, int fd, uid_t uid, unsigned have)
{
	thpd_limit_uid_refused(d, uid, have);
	thp_msg_send_error(fd, 0, -EUSERS, "uid %u has %u connections to thpswapd, the limit "
			   "(max-conns-per-uid): close some, or raise max-conns-per-uid in "
			   "thpswapd.conf", (unsigned)uid, have);
	close(fd);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
	struct thpd *d = h->data;

	for (;;) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		struct thpd_conn *c;
		int fd, r;

		fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			thpd_warn("cannot accept a connection: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: wait for a close instead of spinning. */
				uv_poll_stop(&d->listen_poll);
				d->accept_paused = true;
			}
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			thpd_warn("cannot read the peer's credentials: %s", strerror(errno));
			close(fd);
			continue;
		}
		unsigned have = conns_of_uid(d, cred.uid);

		if (have >= d->cfg.max_conns_per_uid) {
			refuse_uid(d, fd, cred.uid, have);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			thpd_warn("out of memory for a connection");
			close(fd);
			continue;
		}
		c->d = d;
		c->fd = fd;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->accepted_ns = thp_now_ns();
		c->poll.data = c;
		r = uv_poll_init(&d->loop, &c->poll, fd);
		if (r < 0) {
			thpd_warn("cannot watch a connection: %s", uv_strerror(r));
			close(fd);
			free(c);
			continue;
		}
		r = uv_poll_start(&c->poll, UV_READABLE, on_conn_readable);
		if (r < 0) {
			thpd_warn("cannot watch a connection: %s", uv_strerror(r));
			c->closing = true;
			uv_close((uv_handle_t *)&c->poll, on_conn_closed);
			continue;
		}
		c->next = d->conns;
		if (d->conns)
			d->conns->prev = c;
		d->conns = c;
	}
}

int thpd_server_start(struct thpd *d)
{
	int r;

	d->listen_poll.data = d;
	r = uv_poll_init(&d->loop, &d->listen_poll, d->listen_fd);
	if (r < 0) {
		close(d->listen_fd);
		d->listen_fd = -1;
		return r;
	}
	return uv_poll_start(&d->listen_poll, UV_READABLE, on_accept);
}

void thpd_server_sweep(struct thpd *d, uint64_t now)
{
	uint64_t hello_ns = (uint64_t)d->cfg.hello_timeout_ms * 1000000ull;
	struct thpd_conn *next;

	/* Closing frees nothing before the loop's close callbacks, and a
	 * closed connection is unlinked, not changed: walking on is safe. */
	for (struct thpd_conn *c = d->conns; c; c = next) {
		next = c->next;
		if (c->closing)
			continue;
		if (c->s) {
			thpd_session_check_timeout(c->s, now);
			continue;
		}
		if (c->role || now - c->accepted_ns < hello_ns)
			continue;
		thpd_limit_hit(d, c, THP_L_HELLO_TIMEOUT, "pid %d (uid %u) sent no HELLO within "
			       "%u ms (hello-timeout): closed its connection", (int)c->pid,
			       (unsigned)c->uid, d->cfg.hello_timeout_ms);
		thpd_conn_error(c, 0, -ETIMEDOUT, "no HELLO within %u ms (hello-timeout): "
				"closing; send HELLO first, right after connecting",
				d->cfg.hello_timeout_ms);
		thpd_conn_close(c, "no HELLO in time");
	}
}

static void on_listen_closed(uv_handle_t *h)
{
	struct thpd *d = h->data;

	close(d->listen_fd);
	d->listen_fd = -1;
}

void thpd_server_stop(struct thpd *d)
{
	d->stopping = true;
	if (d->listen_fd >= 0 && !uv_is_closing((uv_handle_t *)&d->listen_poll)) {
		uv_close((uv_handle_t *)&d->listen_poll, on_listen_closed);
		struct stat st;

		/* Only our own file: a socket unit's stays for the next start,
		 * and one a newer daemon bound since is not ours either. */
		if (d->socket_bound && stat(d->cfg.socket, &st) == 0 &&
		    st.st_ino == d->socket_ino)
			unlink(d->cfg.socket);
	}
	while (d->conns)
		thpd_conn_close(d->conns, "daemon stopping");
}
