/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl's daemon commands: status, clients, regions, evict, stats.
 * Each opens a control connection (HELLO role CTL), sends its requests and
 * prints the replies as a table, or as JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "arena.h"
#include "ctl.h"
#include "json.h"
#include "proto.h"
#include "util.h"
#include "thpswap/thpswap.h"

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

/* ---- formatting ---- */

static const char *fmt_bytes(char *b, size_t sz, uint64_t v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double x = (double)v;
	unsigned u = 0;

	while (x >= 1024 && u < sizeof(unit) / sizeof(unit[0]) - 1)
		x /= 1024, u++;
	if (u == 0)
		snprintf(b, sz, "%" PRIu64 " B", v);
	else
		snprintf(b, sz, "%.1f %s", x, unit[u]);
	return b;
}

static const char *fmt_ns(char *b, size_t sz, uint64_t ns)
{
	if (ns < 1000)
		snprintf(b, sz, "%" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(b, sz, "%.1f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(b, sz, "%.2f ms", (double)ns / 1e6);
	else
		snprintf(b, sz, "%.2f s", (double)ns / 1e9);
	return b;
}

/* A long duration: 4.2s, 3m05s, 2h10m, 5d03h. */
static const char *fmt_dur(char *b, size_t sz, uint64_t ns)
{
	uint64_t s = ns / 1000000000ull;

	if (s < 60)
		snprintf(b, sz, "%.1fs", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(b, sz, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(b, sz, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
	else
		snprintf(b, sz, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
	return b;
}

/* ---- the connection ---- */

static int fail(const struct ctl_conn *c)
{
	ctl_error(c->o, CTL_EXIT_FAIL, c->errnum, "%s: %s", c->cmd, c->err);
	return CTL_EXIT_FAIL;
}

/* Note why the last call failed; returns @r (-errno). */
static int conn_err(struct ctl_conn *c, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int conn_err(struct ctl_conn *c, int r, const char *fmt, ...)
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
static int call(struct ctl_conn *c, enum thp_msg_type req, const void *p, size_t len,
		enum thp_msg_type want, struct thp_msg *m)
{
	uint32_t seq = ++c->seq;
	int r;

	r = thp_msg_send(c->fd, req, seq, p, len, NULL, 0);
	if (r < 0)
		return conn_err(c, r, "cannot send %s to thpswapd: %s", thp_msg_type_name(req),
				strerror(-r));
	for (;;) {
		long n = thp_msg_recv(c->fd, c->buf, sizeof(c->buf), NULL, 0, NULL);

		if (n == 0)
			return conn_err(c, -ECONNRESET, "thpswapd closed the connection");
		if (n == -EAGAIN)
			return conn_err(c, -ETIMEDOUT, "thpswapd did not answer within %d s",
					REPLY_TIMEOUT_S);
		if (n < 0)
			return conn_err(c, (int)n, "cannot read from thpswapd: %s",
					strerror((int)-n));
		r = thp_msg_parse(c->buf, (size_t)n, m);
		if (r < 0)
			return conn_err(c, r, "thpswapd sent a message this thpswapctl cannot "
					"read (%s): are both the same version?", strerror(-r));
		if (m->hdr.seq != seq)
			continue; /* an answer to something we gave up on */
		if (m->hdr.type == THP_MSG_ERROR) {
			const struct thp_msg_error *e = m->payload;

			return conn_err(c, e->err < 0 ? e->err : -EIO, "%s", e->text);
		}
		if (m->hdr.type != want)
			return conn_err(c, -EPROTO, "thpswapd answered %s with %s",
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
		r = call(c, THP_MSG_HELLO, &hello, sizeof(hello), THP_MSG_WELCOME, &m);
	} else {
		conn_err(c, r, "setsockopt: %s", strerror(-r));
	}
	if (r < 0) {
		fail(c);
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
static int ctl_new(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd)
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

static void ctl_free(struct ctl_conn *c)
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
static int ctl_request(struct ctl_conn **ret, const struct ctl_opts *o, const char *cmd,
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
	if (call(c, req, p, len, want, m) < 0) {
		r = fail(c);
		ctl_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

/* A JSON document on @f (stdout unless it must wait): one top-level object. */
static void json_start_on(struct thp_json *j, FILE *f)
{
	thp_json_init(j, f, true);
	thp_json_begin_object(j, NULL);
}

static void json_start(struct thp_json *j)
{
	json_start_on(j, stdout);
}

static int finish_json(struct thp_json *j)
{
	thp_json_end_object(j);
	if (thp_json_finish(j) < 0) /* stdout failed: the error goes to stderr only */
		return ctl_error(NULL, CTL_EXIT_FAIL, EIO, "writing the output failed");
	return CTL_EXIT_OK;
}

/* ---- argument parsing shared by the commands ---- */

enum { A_PID = 1 << 0, A_ALL = 1 << 1, A_ADDR = 1 << 2, A_LEN = 1 << 3 };

struct args {
	unsigned seen;
	int32_t pid;
	uint64_t addr, len;
};

static int parse_u64(const char *s, int base, uint64_t *out, const char **end)
{
	char *e;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &e, base);
	if (errno || e == s)
		return -EINVAL;
	*end = e;
	return 0;
}

static int parse_len(const char *s, uint64_t *out)
{
	const char *e;
	uint64_t v, mul = 1;

	if (parse_u64(s, 0, &v, &e) < 0)
		return -EINVAL;
	switch (*e) {
	case 'k': case 'K': mul = 1ull << 10; e++; break;
	case 'm': case 'M': mul = 1ull << 20; e++; break;
	case 'g': case 'G': mul = 1ull << 30; e++; break;
	case 't': case 'T': mul = 1ull << 40; e++; break;
	}
	if (*e == 'i' || *e == 'B')
		e += (*e == 'i' && e[1] == 'B') ? 2 : 1;
	if (*e || (v && v * mul / v != mul))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* A bad command line: the reason (JSON too), then @usage on stderr. */
static int usage_error(const struct ctl_opts *o, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int usage_error(const struct ctl_opts *o, const char *usage, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s", msg);
	if (usage)
		fputs(usage, stderr);
	return CTL_EXIT_USAGE;
}

/* Parse the options in @allowed from argv[1..]; returns 0 or an exit status
 * (usage printed; --help: CTL_EXIT_OK with a negative sign flag via *help). */
static int parse_args(const struct ctl_opts *co, int argc, char **argv, unsigned allowed,
		      const char *usage, struct args *a, bool *help)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "all", no_argument, NULL, 'a' },
		{ "addr", required_argument, NULL, 'A' },
		{ "len", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = argv[0];
	int o;

	*help = false;
	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 1;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		const char *e;
		uint64_t v;
		unsigned bit = o == 'p' ? A_PID : o == 'a' ? A_ALL : o == 'A' ? A_ADDR :
			       o == 'l' ? A_LEN : 0;

		/* By its name: argv[optind - 1] may be its value. */
		if (bit && !(allowed & bit))
			return usage_error(co, usage, "%s: option '--%s' does not apply here", cmd,
					   o == 'p' ? "pid" : o == 'a' ? "all" : o == 'A' ? "addr" : "len");
		a->seen |= bit;
		switch (o) {
		case 'p':
			if (parse_u64(optarg, 10, &v, &e) < 0 || *e || v == 0 || v > INT32_MAX)
				return usage_error(co, NULL, "%s: --pid: '%s' is not a process id",
						   cmd, optarg);
			a->pid = (int32_t)v;
			break;
		case 'a':
			break;
		case 'A':
			if (parse_u64(optarg, 16, &a->addr, &e) < 0 || *e)
				return usage_error(co, NULL, "%s: --addr: '%s' is not a hex address "
						   "(like 0x7f0000000000)", cmd, optarg);
			break;
		case 'l':
			if (parse_len(optarg, &a->len) < 0 || a->len == 0)
				return usage_error(co, NULL, "%s: --len: '%s' is not a length "
						   "(like 2M, 64M, 1G)", cmd, optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			*help = true;
			return CTL_EXIT_OK;
		case ':':
			return usage_error(co, usage, "%s: option '%s' needs a value", cmd,
					   argv[optind - 1]);
		default:
			return usage_error(co, usage, "%s: unknown option '%s'", cmd,
					   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error(co, usage, "%s: unexpected argument '%s'", cmd, argv[optind]);
	return 0;
}

#define PARSE_OR_RETURN(o, argc, argv, allowed, usage, a)			\
	do {									\
		bool help_;							\
		int r_ = parse_args(o, argc, argv, allowed, usage, a, &help_);	\
		if (r_ || help_)						\
			return r_;						\
	} while (0)

/* ---- status ---- */

static const char status_usage[] =
	"Usage: thpswapctl [--json] status\n"
	"Daemon summary: version, uptime, clients, regions and what is stored,\n"
	"and the limits on peers with how often each was hit.\n";

/* The daemon's limits on peers.  1 if it has none to tell (an older
 * daemon answers ENOMSG), 0 with *@l filled, or -errno (c->err set). */
static int get_limits(struct ctl_conn *c, struct thp_msg_limits_reply *l)
{
	struct thp_msg m;
	int r;

	r = call(c, THP_MSG_LIMITS, NULL, 0, THP_MSG_LIMITS_REPLY, &m);
	if (r == -ENOMSG)
		return 1;
	if (r < 0)
		return r;
	memcpy(l, m.payload, sizeof(*l));
	if (l->n_counters > THP_L__MAX)
		l->n_counters = THP_L__MAX;
	return 0;
}

/* A limit's value; 0 is none. */
static const char *fmt_limit(char *b, size_t sz, uint32_t v)
{
	if (v)
		snprintf(b, sz, "%u", v);
	else
		snprintf(b, sz, "(none)");
	return b;
}

static void print_limits(const struct thp_msg_limits_reply *l, struct thp_json *j)
{
	char b[4][16];
	static const char *const what[THP_L__MAX] = {
		[THP_L_BAD_FDS] = "messages with fds they may not carry",
		[THP_L_CONNS_PER_UID] = "connections refused (max-conns-per-uid)",
		[THP_L_HELLO_TIMEOUT] = "connections without HELLO (hello-timeout)",
		[THP_L_EVICT_QUEUE] = "evictions refused (evict-queue)",
		[THP_L_EVICT_TIMEOUT] = "EVICTs not answered (evict-timeout)",
		[THP_L_NOT_PERMITTED] = "requests for other users' sessions refused (admin-group)",
	};

	if (j) {
		thp_json_begin_object(j, "limits");
		thp_json_u64(j, "max_conns_per_uid", l->max_conns_per_uid);
		thp_json_u64(j, "hello_timeout_ms", l->hello_timeout_ms);
		thp_json_u64(j, "evict_queue", l->evict_queue);
		thp_json_u64(j, "evict_timeout_s", l->evict_timeout_s);
		thp_json_begin_object(j, "hits");
		for (unsigned i = 0; i < l->n_counters; i++)
			thp_json_u64(j, thp_limit_name(i), l->ctr[i]);
		thp_json_end_object(j);
		thp_json_end_object(j);
		return;
	}
	printf("  limits         connections per uid %s, HELLO within %s ms,\n"
	       "                 evictions queued per client %s, answered within %s s\n",
	       fmt_limit(b[0], sizeof(b[0]), l->max_conns_per_uid),
	       fmt_limit(b[1], sizeof(b[1]), l->hello_timeout_ms),
	       fmt_limit(b[2], sizeof(b[2]), l->evict_queue),
	       fmt_limit(b[3], sizeof(b[3]), l->evict_timeout_s));
	for (unsigned i = 0; i < l->n_counters; i++)
		printf("  %-14s %" PRIu64 " %s\n", thp_limit_name(i), l->ctr[i], what[i]);
}

int cmd_status(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_msg_status_reply st;
	const struct thp_msg_status_reply *s = &st;
	struct thp_msg_limits_reply lim;
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	char b1[32], b2[32];
	int r, have_limits;

	PARSE_OR_RETURN(o, argc, argv, 0, status_usage, &a);
	r = ctl_request(&c, o, "status", THP_MSG_STATUS, NULL, 0, THP_MSG_STATUS_REPLY, &m,
			REPLY_TIMEOUT_S);
	if (r)
		return r;
	/* m points into c's buffer, which the next call reuses. */
	memcpy(&st, m.payload, sizeof(st));
	have_limits = get_limits(c, &lim);
	if (have_limits < 0) {
		r = fail(c);
		goto out;
	}
	if (o->json) {
		struct thp_json j;

		json_start(&j);
		thp_json_string(&j, "version", s->version);
		thp_json_u64(&j, "daemon_pid", s->daemon_pid);
		thp_json_u64(&j, "uptime_ns", s->uptime_ns);
		thp_json_u64(&j, "clients", s->clients);
		thp_json_u64(&j, "regions", s->regions);
		thp_json_u64(&j, "resident", s->resident);
		thp_json_u64(&j, "evicted_zero", s->evicted_zero);
		thp_json_u64(&j, "evicted_ram", s->evicted_ram);
		thp_json_u64(&j, "stored_bytes", s->stored_bytes);
		thp_json_u64(&j, "budget_bytes", s->budget_bytes);
		thp_json_i64(&j, "zstd_level", s->zstd_level);
		if (have_limits == 0)
			print_limits(&lim, &j);
		r = finish_json(&j);
		goto out;
	}
	printf("thpswapd %.*s, pid %u, up %s\n", (int)sizeof(s->version), s->version,
	       s->daemon_pid, fmt_dur(b1, sizeof(b1), s->uptime_ns));
	printf("  clients        %u\n", s->clients);
	printf("  regions        %" PRIu64 " (%s)\n", s->regions,
	       fmt_bytes(b1, sizeof(b1), s->regions * THP_REGION_BYTES));
	printf("  resident       %" PRIu64 " (%s)\n", s->resident,
	       fmt_bytes(b1, sizeof(b1), s->resident * THP_REGION_BYTES));
	printf("  evicted zero   %" PRIu64 "\n", s->evicted_zero);
	printf("  evicted ram    %" PRIu64 " (%s stored in %s)\n", s->evicted_ram,
	       fmt_bytes(b1, sizeof(b1), s->evicted_ram * THP_REGION_BYTES),
	       fmt_bytes(b2, sizeof(b2), s->stored_bytes));
	if (s->budget_bytes)
		printf("  budget         %s per client\n", fmt_bytes(b1, sizeof(b1), s->budget_bytes));
	else
		printf("  budget         none\n");
	printf("  zstd level     %d\n", s->zstd_level);
	if (have_limits == 0)
		print_limits(&lim, NULL);
	r = CTL_EXIT_OK;
out:
	ctl_free(c);
	return r;
}

/* ---- clients ---- */

static const char clients_usage[] =
	"Usage: thpswapctl [--json] clients\n"
	"One line per client session (only your own unless you are root or in the\n"
	"daemon's admin-group).\n";

/*
 * Every session the daemon shows us, page by page (CLIENTS_PAGE from the
 * last session id received); an older daemon without pages answers ENOMSG
 * and gets one CLIENTS.  0 with *@ret malloc'd (free it), or -errno (c->err
 * set, *@ret NULL).
 */
static int get_clients(struct ctl_conn *c, struct thp_client_info **ret, uint32_t *n)
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

		r = paged ? call(c, THP_MSG_CLIENTS_PAGE, &q, sizeof(q), THP_MSG_CLIENTS_REPLY, &m)
			  : call(c, THP_MSG_CLIENTS, NULL, 0, THP_MSG_CLIENTS_REPLY, &m);
		if (r == -ENOMSG && paged && q.after == 0) {
			paged = false;
			more = true;
			continue;
		}
		if (r < 0)
			goto fail;
		cr = m.payload;
		if (cr->n > UINT32_MAX - have) {
			r = conn_err(c, -EPROTO, "thpswapd lists too many clients");
			goto fail;
		}
		if (have + cr->n > cap) {
			uint32_t ncap = cap ? cap : THP_CLIENTS_MAX;
			struct thp_client_info *nv;

			while (ncap < have + cr->n)
				ncap *= 2;
			nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				r = conn_err(c, -ENOMEM, "out of memory");
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		/* Ids increase within and across pages, so this ends and lists
		 * each session once. */
		for (uint32_t i = 0; i < cr->n; i++) {
			if (paged && cr->c[i].session_id <= q.after) {
				r = conn_err(c, -EPROTO, "thpswapd listed session %" PRIu64
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

int cmd_clients(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_client_info *ci = NULL;
	struct ctl_conn *c;
	struct args a;
	uint32_t n = 0;
	char b[32];
	int r;

	PARSE_OR_RETURN(o, argc, argv, 0, clients_usage, &a);
	r = ctl_new(&c, o, "clients");
	if (r)
		return r;
	if (get_clients(c, &ci, &n) < 0) {
		r = fail(c);
		goto out;
	}
	if (o->json) {
		struct thp_json j;

		json_start(&j);
		thp_json_begin_array(&j, "clients");
		for (uint32_t i = 0; i < n; i++) {
			char comm[sizeof(ci->comm) + 1] = { 0 };

			memcpy(comm, ci[i].comm, sizeof(ci[i].comm));
			thp_json_begin_object(&j, NULL);
			thp_json_i64(&j, "pid", ci[i].pid);
			thp_json_u64(&j, "uid", ci[i].uid);
			thp_json_string(&j, "comm", comm);
			thp_json_u64(&j, "session_id", ci[i].session_id);
			thp_json_u64(&j, "regions", ci[i].regions);
			thp_json_u64(&j, "resident", ci[i].resident);
			thp_json_u64(&j, "evicted_zero", ci[i].evicted_zero);
			thp_json_u64(&j, "evicted_ram", ci[i].evicted_ram);
			thp_json_u64(&j, "stored_bytes", ci[i].stored_bytes);
			thp_json_u64(&j, "faults", ci[i].faults);
			thp_json_end_object(&j);
		}
		thp_json_end_array(&j);
		r = finish_json(&j);
		goto out;
	}
	if (n == 0) {
		printf("no clients\n");
	} else {
		printf("%-8s %-6s %-16s %8s %8s %8s %8s %8s %10s %10s\n", "PID", "UID", "COMM",
		       "SESSION", "REGIONS", "RESIDENT", "ZERO", "RAM", "STORED", "FAULTS");
		for (uint32_t i = 0; i < n; i++)
			printf("%-8d %-6u %-16.16s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
			       " %8" PRIu64 " %10s %10" PRIu64 "\n", ci[i].pid, ci[i].uid, ci[i].comm,
			       ci[i].session_id, ci[i].regions, ci[i].resident, ci[i].evicted_zero,
			       ci[i].evicted_ram, fmt_bytes(b, sizeof(b), ci[i].stored_bytes),
			       ci[i].faults);
	}
	r = CTL_EXIT_OK;
out:
	free(ci);
	ctl_free(c);
	return r;
}

/* ---- regions ---- */

static const char regions_usage[] =
	"Usage: thpswapctl [--json] regions [--pid PID]\n"
	"Address, state, tier, stored size and last fault of each managed region\n"
	"(of every client without --pid).\n";

static const char *tier_name(uint32_t state)
{
	switch (state) {
	case THP_ST_ZERO: return "zero";
	case THP_ST_RAM: return "ram";
	default: return NULL;
	}
}

static void print_region(const struct thp_region_info *ri, int32_t pid, uint64_t now,
			 struct thp_json *j, bool *header)
{
	const char *tier = tier_name(ri->state);
	char addr[24], b1[32], b2[48];

	snprintf(addr, sizeof(addr), "0x%" PRIx64, ri->addr);
	if (j) {
		thp_json_begin_object(j, NULL);
		thp_json_i64(j, "pid", pid);
		thp_json_string(j, "addr", addr);
		thp_json_string(j, "state", thp_state_name((enum thp_state)ri->state));
		thp_json_string(j, "tier", tier);
		thp_json_u64(j, "stored_bytes", tier ? ri->stored_len : 0);
		if (ri->state == THP_ST_RAM) {
			thp_json_string(j, "codec", ri->codec == THP_CODEC_ZSTD ? "zstd" : "none");
			thp_json_i64(j, "level", ri->level);
		}
		if (ri->last_fault_ns && ri->last_fault_ns <= now)
			thp_json_u64(j, "last_fault_age_ns", now - ri->last_fault_ns);
		else
			thp_json_null(j, "last_fault_age_ns");
		thp_json_end_object(j);
		return;
	}
	if (!*header) {
		printf("%-8s %-18s %-10s %-5s %10s  %s\n", "PID", "ADDRESS", "STATE", "TIER",
		       "STORED", "LAST FAULT");
		*header = true;
	}
	if (ri->last_fault_ns && ri->last_fault_ns <= now) {
		fmt_dur(b2, sizeof(b2), now - ri->last_fault_ns);
		strcat(b2, " ago");
	} else {
		strcpy(b2, "never");
	}
	printf("%-8d %-18s %-10s %-5s %10s  %s\n", pid, addr,
	       thp_state_name((enum thp_state)ri->state), tier ? tier : "-",
	       ri->state == THP_ST_RAM ? fmt_bytes(b1, sizeof(b1), ri->stored_len) : "-", b2);
}

/* Print every region of @pid, page by page.  0, or -errno (c->err set). */
static int regions_of(struct ctl_conn *c, int32_t pid, struct thp_json *j, uint64_t *count,
		      bool *header)
{
	struct thp_msg_regions q = { .pid = pid, .cursor = 0 };

	do {
		const struct thp_msg_regions_reply *rr;
		struct thp_msg m;
		uint64_t now;
		int r;

		r = call(c, THP_MSG_REGIONS, &q, sizeof(q), THP_MSG_REGIONS_REPLY, &m);
		if (r < 0)
			return r;
		rr = m.payload;
		now = thp_now_ns();
		for (uint32_t i = 0; i < rr->n; i++)
			print_region(&rr->r[i], pid, now, j, header);
		*count += rr->n;
		/* The cursor only moves forward, so this ends. */
		if (rr->next && rr->next <= q.cursor)
			return conn_err(c, -EPROTO, "thpswapd sent a cursor that goes backwards");
		q.cursor = rr->next;
	} while (q.cursor);
	return 0;
}

int cmd_regions(const struct ctl_opts *o, int argc, char **argv)
{
	struct thp_client_info *ci = NULL;
	struct thp_json jj, *j = NULL;
	struct ctl_conn *c;
	uint32_t n = 0;
	uint64_t count = 0;
	bool header = false;
	char *doc = NULL;
	size_t doc_len = 0;
	FILE *f = NULL;
	struct args a;
	int r;

	PARSE_OR_RETURN(o, argc, argv, A_PID, regions_usage, &a);
	r = ctl_new(&c, o, "regions");
	if (r)
		return r;
	if (!(a.seen & A_PID) && get_clients(c, &ci, &n) < 0) {
		r = fail(c);
		goto out;
	}
	if (o->json) {
		/* Regions arrive page by page and a later request may fail: the
		 * document waits in memory, so that stdout gets either all of it
		 * or the error object alone. */
		f = open_memstream(&doc, &doc_len);
		if (!f) {
			r = ctl_error(o, CTL_EXIT_FAIL, errno, "regions: out of memory");
			goto out;
		}
		j = &jj;
		json_start_on(j, f);
		thp_json_begin_array(j, "regions");
	}
	r = 0;
	if (a.seen & A_PID) {
		r = regions_of(c, a.pid, j, &count, &header);
	} else {
		for (uint32_t i = 0; i < n && r == 0; i++) {
			r = regions_of(c, ci[i].pid, j, &count, &header);
			/* gone since the list, or not ours to see: leave it out */
			if (r == -ESRCH || r == -EPERM)
				r = 0;
		}
	}
	if (r < 0) {
		r = fail(c);
		goto out;
	}
	if (j) {
		thp_json_end_array(j);
		thp_json_end_object(j);
		r = thp_json_finish(j);
		if (fclose(f) != 0)
			r = -ENOMEM;
		f = NULL;
		if (r < 0) {
			r = ctl_error(o, CTL_EXIT_FAIL, ENOMEM, "regions: out of memory");
			goto out;
		}
		r = fwrite(doc, 1, doc_len, stdout) == doc_len ? CTL_EXIT_OK :
		    ctl_error(NULL, CTL_EXIT_FAIL, EIO, "writing the output failed");
		goto out;
	}
	if (count == 0)
		printf("no managed regions\n");
	r = CTL_EXIT_OK;
out:
	if (f)
		fclose(f);
	free(doc);
	free(ci);
	ctl_free(c);
	return r;
}

/* ---- evict ---- */

static const char evict_usage[] =
	"Usage: thpswapctl [--json] evict --pid PID [--all | --addr ADDR [--len LEN]]\n"
	"Evict now: every resident region of PID (--all), or the regions in\n"
	"[ADDR, ADDR+LEN) (ADDR hex 0x..., LEN with optional K/M/G suffix, default 2M).\n";

int cmd_evict(const struct ctl_opts *o, int argc, char **argv)
{
	const struct thp_msg_evict_done *d;
	struct thp_msg_evict_req q = { 0 };
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	char b1[32], b2[32];
	int r;

	PARSE_OR_RETURN(o, argc, argv, A_PID | A_ALL | A_ADDR | A_LEN, evict_usage, &a);
	if (!(a.seen & A_PID) || !!(a.seen & A_ALL) == !!(a.seen & A_ADDR) ||
	    ((a.seen & A_LEN) && !(a.seen & A_ADDR))) {
		return usage_error(o, evict_usage, "evict: give --pid and either --all or --addr");
	}
	q.pid = a.pid;
	if (a.seen & A_ADDR) {
		q.addr = a.addr;
		q.len = (a.seen & A_LEN) ? a.len : THP_REGION_BYTES;
	}
	/* Evicting many regions takes a while: wait as long as it takes. */
	r = ctl_request(&c, o, "evict", THP_MSG_EVICT_REQ, &q, sizeof(q), THP_MSG_EVICT_REPLY,
			&m, 0);
	if (r)
		return r;
	d = m.payload;
	if (o->json) {
		struct thp_json j;

		json_start(&j);
		thp_json_i64(&j, "pid", q.pid);
		thp_json_u64(&j, "evicted", d->evicted);
		thp_json_u64(&j, "skipped", d->skipped);
		thp_json_u64(&j, "failed", d->failed);
		thp_json_u64(&j, "bytes_in", d->bytes_in);
		thp_json_u64(&j, "bytes_stored", d->bytes_stored);
		r = finish_json(&j);
	} else {
		printf("pid %d: evicted %u region%s (%s -> %s stored), skipped %u, failed %u\n",
		       q.pid, d->evicted, d->evicted == 1 ? "" : "s",
		       fmt_bytes(b1, sizeof(b1), d->bytes_in),
		       fmt_bytes(b2, sizeof(b2), d->bytes_stored), d->skipped, d->failed);
		r = CTL_EXIT_OK;
	}
	/* Regions the client refused (shared after fork, pinned) fail the command. */
	if (r == CTL_EXIT_OK && d->failed)
		r = CTL_EXIT_FAIL;
	ctl_free(c);
	return r;
}

/* ---- stats ---- */

static const char stats_usage[] =
	"Usage: thpswapctl [--json] stats [--pid PID]\n"
	"Counters and restore latency percentiles (all clients summed without --pid).\n";

static const char *const counter_names[] = {
	[THP_C_REGIONS] = "regions",
	[THP_C_RESIDENT] = "resident",
	[THP_C_EVICTED_ZERO] = "evicted_zero",
	[THP_C_EVICTED_RAM] = "evicted_ram",
	[THP_C_STORED_BYTES] = "stored_bytes",
	[THP_C_EVICTIONS] = "evictions",
	[THP_C_RESTORES] = "restores",
	[THP_C_RESTORES_PMD] = "restores_pmd",
	[THP_C_FAULTS] = "faults",
	[THP_C_EVICT_CANCELLED] = "evict_cancelled",
	[THP_C_EVICT_INCOMPRESSIBLE] = "evict_incompressible",
	[THP_C_EVICT_REFUSED] = "evict_refused",
	[THP_C_SPLIT_REPAIRED] = "split_repaired",
	[THP_C_SPLIT_LEFT] = "split_left",
	[THP_C_EAGAIN_RETRIES] = "eagain_retries",
	[THP_C_FALLBACK_4K] = "fallback_4k",
	[THP_C_CORRUPT] = "corrupt",
	[THP_C_BYTES_IN] = "bytes_in",
	[THP_C_EVICT_NS] = "evict_ns",
	[THP_C_COPY_CHILD] = "copy_child",
	[THP_C_POOL_MISS] = "pool_miss",
	[THP_C_EVICT_ZAP_PENDING] = "evict_zap_pending",
	[THP_C_EVICT_BUSY] = "evict_busy",
	[THP_C_EVICT_SPLIT] = "evict_split",
	[THP_C_EVICT_FILLED] = "evict_filled",
	[THP_C_ADOPT_LEFT_OUT] = "adopt_left_out",
	[THP_C_RECONNECTS] = "reconnects",
};
_Static_assert(sizeof(counter_names) / sizeof(counter_names[0]) == THP_C__MAX,
	       "a name for every counter");

static const char *const hist_names[THP_H__MAX] = {
	[THP_H_ZERO_READ] = "zero_read",
	[THP_H_ZERO_WRITE] = "zero_write",
	[THP_H_RAM] = "ram",
	[THP_H_EVICT] = "evict",
};

struct hist_summary {
	uint64_t count, p50, p99;
};

static struct hist_summary summarize(const uint64_t *h)
{
	_Atomic uint64_t a[THP_HIST_BUCKETS];
	struct hist_summary s = { 0 };

	for (unsigned b = 0; b < THP_HIST_BUCKETS; b++) {
		atomic_init(&a[b], h[b]);
		s.count += h[b];
	}
	s.p50 = thp_hist_percentile_ns(a, 50);
	s.p99 = thp_hist_percentile_ns(a, 99);
	return s;
}

int cmd_stats(const struct ctl_opts *o, int argc, char **argv)
{
	const struct thp_msg_stats_reply *s;
	struct thp_msg_stats q = { 0 };
	struct ctl_conn *c;
	struct thp_msg m;
	struct args a;
	unsigned nc, nh;
	int r;

	PARSE_OR_RETURN(o, argc, argv, A_PID, stats_usage, &a);
	q.pid = a.pid;
	r = ctl_request(&c, o, "stats", THP_MSG_STATS, &q, sizeof(q), THP_MSG_STATS_REPLY, &m,
			REPLY_TIMEOUT_S);
	if (r)
		return r;
	s = m.payload;
	nc = s->n_counters < THP_C__MAX ? s->n_counters : THP_C__MAX;
	nh = s->n_hist < THP_H__MAX ? s->n_hist : THP_H__MAX;
	if (o->json) {
		struct thp_json j;

		json_start(&j);
		thp_json_i64(&j, "pid", q.pid);
		thp_json_begin_object(&j, "counters");
		for (unsigned i = 0; i < nc; i++)
			thp_json_u64(&j, counter_names[i], s->ctr[i]);
		thp_json_end_object(&j);
		thp_json_begin_object(&j, "latency");
		for (unsigned h = 0; h < nh; h++) {
			struct hist_summary hs = summarize(s->hist[h]);

			thp_json_begin_object(&j, hist_names[h]);
			thp_json_u64(&j, "count", hs.count);
			thp_json_u64(&j, "p50_ns", hs.p50);
			thp_json_u64(&j, "p99_ns", hs.p99);
			thp_json_end_object(&j);
		}
		thp_json_end_object(&j);
		r = finish_json(&j);
		goto out;
	}
	if (q.pid)
		printf("pid %d\n", q.pid);
	else
		printf("all clients\n");
	for (unsigned i = 0; i < nc; i++)
		printf("  %-22s %" PRIu64 "\n", counter_names[i], s->ctr[i]);
	printf("\n  %-22s %10s %12s %12s\n", "latency", "count", "p50", "p99");
	for (unsigned h = 0; h < nh; h++) {
		struct hist_summary hs = summarize(s->hist[h]);
		char b1[32], b2[32];

		if (hs.count)
			printf("  %-22s %10" PRIu64 " %12s %12s\n", hist_names[h], hs.count,
			       fmt_ns(b1, sizeof(b1), hs.p50), fmt_ns(b2, sizeof(b2), hs.p99));
		else
			printf("  %-22s %10d %12s %12s\n", hist_names[h], 0, "-", "-");
	}
	r = CTL_EXIT_OK;
out:
	ctl_free(c);
	return r;
}
