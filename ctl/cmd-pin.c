/* SPDX-License-Identifier: MIT */
/*
 * thpswapctl pin / unpin PID [ADDR LEN]: mark a client's regions never to be
 * evicted, or evictable again (PIN_REQ; the daemon sets the records' flag,
 * the client's evictor refuses a pinned region).  Like evict: the caller's
 * own clients, every one for root and the daemon's admin-group.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "ctl.h"
#include "format.h"

static const char pin_usage[] =
	"Usage: thpswapctl [--json] pin|unpin PID [ADDR LEN]\n"
	"pin: never evict the regions of client PID in [ADDR, ADDR+LEN) (every region\n"
	"without ADDR LEN); unpin: make them evictable again.  ADDR hex 0x..., LEN with\n"
	"optional K/M/G suffix.  A region already evicted stays so until it is touched.\n";

int cmd_pin(const struct ctl_opts *o, int argc, char **argv)
{
	bool pin = !strcmp(argv[0], "pin");
	struct thp_msg_pin_req q = { .pin = pin };
	const struct thp_msg_pin_reply *rep;
	struct ctl_conn *c;
	struct thp_msg m;
	const char *e;
	uint64_t v;
	int r;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(pin_usage, stdout);
		return CTL_EXIT_OK;
	}
	if (argc != 2 && argc != 4) {
		ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s: give PID, or PID ADDR LEN", argv[0]);
		fputs(pin_usage, stderr);
		return CTL_EXIT_USAGE;
	}
	if (ctl_parse_u64(argv[1], 10, &v, &e) < 0 || *e || v == 0 || v > INT32_MAX)
		return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s: '%s' is not a process id",
				 argv[0], argv[1]);
	q.pid = (int32_t)v;
	if (argc == 4) {
		if (ctl_parse_u64(argv[2], 16, &q.addr, &e) < 0 || *e)
			return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s: '%s' is not a hex address "
					 "(like 0x7f0000000000)", argv[0], argv[2]);
		if (ctl_parse_len(argv[3], &q.len) < 0 || q.len == 0)
			return ctl_error(o, CTL_EXIT_USAGE, EINVAL, "%s: '%s' is not a length "
					 "(like 2M, 64M, 1G)", argv[0], argv[3]);
	}
	r = ctl_request(&c, o, argv[0], THP_MSG_PIN_REQ, &q, sizeof(q), THP_MSG_PIN_REPLY, &m,
			REPLY_TIMEOUT_S);
	if (r)
		return r;
	rep = m.payload;
	if (o->json) {
		struct thp_json j;

		ctl_json_start(&j);
		thp_json_i64(&j, "pid", q.pid);
		thp_json_bool(&j, "pinned", pin);
		thp_json_u64(&j, "regions", rep->regions);
		r = ctl_json_finish(&j);
	} else {
		printf("pid %d: %u region%s %s\n", q.pid, rep->regions, rep->regions == 1 ? "" : "s",
		       pin ? "pinned" : "unpinned");
		r = CTL_EXIT_OK;
	}
	ctl_free(c);
	return r;
}
