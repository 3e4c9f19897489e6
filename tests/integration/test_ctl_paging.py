#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""thpswapctl clients and regions list every session past one reply's worth.

Usage: test_ctl_paging.py THPSWAPD THPSWAPCTL PROTO_LAYOUT

One CLIENTS_REPLY holds THP_CLIENTS_MAX (256) sessions and one REGIONS_REPLY
THP_REGIONS_MAX (1024) regions.  This opens 300 real sessions (one process
each: the daemon keys a session by its pid) against a real daemon, one of
them with 2500 records, and checks:

  - the raw protocol: CLIENTS gives the first 256 with `more`, CLIENTS_PAGE
    from the last id gives the rest without, ids increasing, none twice;
  - that sessions ending and starting between pages are never listed twice;
  - `thpswapctl --json clients`: every session exactly once;
  - `thpswapctl --json regions`: every record of every session exactly once
    (the 2500-record one across three REGIONS pages).

Exit 0 pass, 1 fail, 77 skip.
"""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import Client, Daemon, Layout, Peer, check, ctl, failures, need_root, verdict  # noqa: E402

NSESSIONS = 300
BIG = 2500          # records of one session: three REGIONS pages
SMALL = 2
BASE = 1 << 40


PARENT_FDS = set()     # the parent's ends: a child closes all it inherited


class Session:
    """A process holding one client session with @nrec RESIDENT records,
    until its end of a socket pair is closed.  It hands the parent a copy of
    its connection to the daemon: that copy reads EOF once the daemon has
    ended the session (the daemon sees the process exit through its pidfd),
    so the test knows when the daemon has noticed without polling."""

    def __init__(self, d, L, nrec):
        self.nrec = nrec
        self.status = None
        self.conn = None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                mine.close()
                for fd in PARENT_FDS:
                    os.close(fd)
                c = Client(d, L, nrec)
                c.make_resident(BASE)
                socket.send_fds(theirs, [b"%d\n" % c.nrec], [c.s.fileno()])
                theirs.recv(1)              # EOF: the parent is done
                code = 0
            except BaseException as e:      # noqa: BLE001 - told to the parent
                theirs.send(f"error {e!r}\n".encode())
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.sp = mine
        PARENT_FDS.add(mine.fileno())

    def wait_ready(self):
        self.sp.settimeout(60)
        try:
            msg, fds, _f, _a = socket.recv_fds(self.sp, 256, 1)
        except socket.timeout:
            return False, "timeout"
        if fds:
            self.conn = socket.socket(fileno=fds[0])
            PARENT_FDS.add(fds[0])
        got = msg.decode().strip()
        return got == str(self.nrec) and self.conn is not None, got

    def end(self):
        """End the session's process, reap it, and wait until the daemon has
        closed the session's connection; the process's exit status."""
        if self.status is None:
            PARENT_FDS.discard(self.sp.fileno())
            self.sp.close()
            _, st = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(st)
            if self.conn:
                self.conn.settimeout(60)
                try:
                    while self.conn.recv(65536):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
                PARENT_FDS.discard(self.conn.fileno())
                self.conn.close()
        return self.status


def clients_page(p, L, after=None):
    """[(pid, session id)], more: one CLIENTS (after None) or CLIENTS_PAGE."""
    if after is None:
        t, _s, pl, _f = p.call("CLIENTS")
    else:
        t, _s, pl, _f = p.call("CLIENTS_PAGE", L.pack("thp_msg_clients_page", after=after))
    if t != "CLIENTS_REPLY":
        raise RuntimeError(f"answered {t} {p.error(pl) if t == 'ERROR' else ''}")
    n = L.get("thp_msg_clients_reply", pl, "n")
    base = L.field("thp_msg_clients_reply", "c")[0]
    esz = L.size("thp_client_info")
    out = [(L.get("thp_client_info", pl, "pid", base + i * esz),
            L.get("thp_client_info", pl, "session_id", base + i * esz)) for i in range(n)]
    return out, L.get("thp_msg_clients_reply", pl, "more")


def check_raw_pages(d, L, sessions):
    cmax = L.consts["THP_CLIENTS_MAX"]
    p = Peer(d, L)
    p.hello_ctl()
    first, more = clients_page(p, L)
    ids = [s for _p, s in first]
    print(f"raw: CLIENTS gave {len(first)} sessions, more={more}")
    check(len(first) == cmax and more == 1,
          f"CLIENTS: {len(first)} sessions, more={more}; want {cmax}, more=1")
    check(ids == sorted(ids) and len(set(ids)) == len(ids), "CLIENTS: ids do not increase")
    rest, more2 = clients_page(p, L, after=ids[-1])
    print(f"raw: CLIENTS_PAGE after {ids[-1]} gave {len(rest)} sessions, more={more2}")
    check(len(rest) == len(sessions) - cmax and more2 == 0,
          f"CLIENTS_PAGE: {len(rest)} sessions, more={more2}; want {len(sessions) - cmax}, 0")
    pids = [x for x, _s in first + rest]
    check(sorted(pids) == sorted(s.pid for s in sessions),
          "CLIENTS + CLIENTS_PAGE do not list exactly the sessions' pids")
    check(all(s > ids[-1] for _p, s in rest), "CLIENTS_PAGE listed an id at or below its cursor")

    # Churn between pages: end sessions on both sides of the cursor, start
    # new ones; the next page lists no id twice and each new session once.
    cursor = ids[100]
    page1, _m = clients_page(p, L, after=0)
    gone = [s for s in sessions if s.pid in {x for x, _s in page1[:50]}][:5]
    gone += [s for s in sessions if s.pid in {x for x, _s in rest}][:5]
    for s in gone:
        check(s.end() == 0, f"session process {s.pid} exited {s.status}")
        sessions.remove(s)
    t, _s, pl, _f = p.call("STATUS")
    status_clients = L.get("thp_msg_status_reply", pl, "clients")
    check(status_clients == len(sessions), f"STATUS says {status_clients} clients after "
          f"ending {len(gone)}, want {len(sessions)}")
    new = [Session(d, L, SMALL) for _ in range(5)]
    for s in new:
        ok, got = s.wait_ready()
        check(ok, f"a new session: {got}")
    sessions += new
    seen = [sid for _p, sid in first[:101]]
    after = cursor
    while True:
        page, more = clients_page(p, L, after=after)
        seen += [sid for _p, sid in page]
        if not page or not more:
            break
        after = page[-1][1]
    check(len(seen) == len(set(seen)), "a session was listed twice across pages with churn")
    listed = set(seen)
    p2 = Peer(d, L)
    p2.hello_ctl()
    now, _m = clients_page(p2, L, after=0)
    while _m:
        more_page, _m = clients_page(p2, L, after=now[-1][1])
        now += more_page
    now_ids = {sid for _p, sid in now}
    missing = [sid for sid in now_ids if sid > cursor and sid not in listed]
    print(f"raw churn: ended {len(gone)}, started {len(new)}; {len(seen)} ids seen, "
          f"none twice: {len(seen) == len(listed)}; live sessions past the cursor missed: "
          f"{len(missing)}")
    check(not missing, f"sessions live through the listing were missed: {missing[:5]}")
    p.close()
    p2.close()


def check_ctl(ctl_bin, d, sessions):
    r = ctl(ctl_bin, d, "--json", "clients", timeout=60)
    if not check(r is not None and r[0] == 0, f"thpswapctl clients: {r!r}"):
        return
    got = [c["pid"] for c in json.loads(r[1])["clients"]]
    want = sorted(s.pid for s in sessions)
    print(f"thpswapctl clients: {len(got)} listed, {len(set(got))} distinct, "
          f"{len(want)} sessions, in {r[3]:.2f} s")
    check(sorted(got) == want, f"thpswapctl clients lists {len(got)} ({len(set(got))} distinct), "
          f"want each of the {len(want)} sessions once")
    r = ctl(ctl_bin, d, "status", timeout=60)
    check(r is not None and f"clients        {len(sessions)}\n" in r[1],
          f"thpswapctl status does not count {len(sessions)} clients: {r!r}")

    r = ctl(ctl_bin, d, "--json", "regions", timeout=120)
    if not check(r is not None and r[0] == 0, f"thpswapctl regions: {r!r}"):
        return
    regions = json.loads(r[1])["regions"]
    per = {}
    for x in regions:
        per.setdefault(x["pid"], []).append(int(x["addr"], 16))
    bad = []
    for s in sessions:
        want_addrs = [BASE + i * (2 << 20) for i in range(s.nrec)]
        if sorted(per.get(s.pid, [])) != want_addrs:
            bad.append((s.pid, s.nrec, len(per.get(s.pid, []))))
    total = sum(s.nrec for s in sessions)
    print(f"thpswapctl regions: {len(regions)} regions of {len(per)} sessions "
          f"(want {total} of {len(sessions)}), in {r[3]:.2f} s")
    check(len(regions) == total, f"thpswapctl regions lists {len(regions)}, want {total}")
    check(not bad, f"sessions whose regions are not each listed once: {bad[:5]}")
    check(set(per) == {s.pid for s in sessions}, "regions of processes that are not sessions")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 1
    daemon_bin, ctl_bin, layout_bin = sys.argv[1:]
    need_root()
    require_kernel(ctl_bin)
    L = Layout(layout_bin)
    # Every session is a connection of root: above the default cap of 256.
    d = Daemon(daemon_bin, ["--max-conns-per-uid", "1024", "--max-regions", str(BIG)])
    sessions = []
    try:
        r = ctl(ctl_bin, d, "status", timeout=30)
        if r is None or r[0] != 0:
            print(f"FAIL: thpswapd did not start: {r!r}\n{d.log_text()}")
            return 1
        for i in range(NSESSIONS):
            sessions.append(Session(d, L, BIG if i == NSESSIONS // 2 else SMALL))
        for s in sessions:
            ok, got = s.wait_ready()
            if not check(ok, f"session process {s.pid}: {got}"):
                raise RuntimeError("a session did not open")
        print(f"{len(sessions)} sessions open, one with {BIG} records")
        check_ctl(ctl_bin, d, sessions)
        check_raw_pages(d, L, sessions)
        check_ctl(ctl_bin, d, sessions)
    except RuntimeError as e:
        check(False, str(e))
    finally:
        for s in sessions:
            if s.end() != 0:
                check(False, f"session process {s.pid} exited {s.status}")
        log = d.log_text()
        st = d.stop()
        check(st == 0, f"thpswapd exited {st}")
        if failures:
            print("daemon log (tail):\n" + "\n".join(log.splitlines()[-15:]))
    return verdict("ctl-paging")


if __name__ == "__main__":
    sys.exit(main())
