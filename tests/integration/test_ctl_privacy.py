#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A user sees and steers only its own sessions; root and admin-group all.

Usage: test_ctl_privacy.py THPSWAPD THPSWAPCTL PROTO_LAYOUT

Creates a temporary system user and two temporary groups (removed on every
way out, signals included; names that exist already are never touched):
the user's primary group owns the daemon's socket (what group thpswap does
in a real install: the daemon's only access check is the socket's mode), the
other is the daemon's admin-group.  Root opens a client session; the user
(setpriv) opens one of its own and runs thpswapctl.  Checked, first with no
admin-group and then with the user in it:

  not an admin   clients, regions, stats and status show the user's session
                 only; stats, regions, evict, pin and unpin of root's pid fail
                 with EPERM
                 saying what is needed; its own are shown, evicted (its
                 session answers the EVICT) and pinned; refusals are counted
                 (not_permitted) and logged once per peer
  admin-group    the user sees (and pins) root's session too, through a supplementary
                 group (SO_PEERGROUPS); the same user without that group
                 does not

Exit 0 pass, 1 fail, 77 skip.
"""
import errno
import grp
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import (UFFD_USER_MODE_ONLY, Client, Daemon, Layout, Peer,  # noqa: E402
                          check, ctl, failures, need_root, verdict)

ROOT_BASE = 1 << 40
USER_BASE = 1 << 41
ROOT_NREC = 4
USER_NREC = 3

user_procs = []     # the user's processes we started: ended before userdel


def set_regions_counter(L, client, n):
    """The arena counter of regions, as an agent would keep it: the sums
    that stats and status show then tell whose sessions were counted."""
    off = L.field("thp_arena_header", "ctr")[0] + 8 * L.consts["THP_C_REGIONS"]
    os.pwrite(client.arena_fd, n.to_bytes(8, "little"), off)


# ---- the user's side: a session and a raw control peer ----

def user_main(layout_bin, sock, root_pid):
    """Runs as the temporary user.  Prints one JSON line of what the daemon
    answered, then serves its session's EVICTs until stdin closes."""
    L = Layout(layout_bin)
    d = types.SimpleNamespace(sock=sock)
    d.connect = lambda: Daemon.connect(d)
    c = Client(d, L, USER_NREC, UFFD_USER_MODE_ONLY)
    c.make_resident(USER_BASE)
    set_regions_counter(L, c, USER_NREC)
    p = Peer(d, L)
    p.hello_ctl()
    out = {"pid": os.getpid(), "refusals": []}
    for _ in range(3):
        m = p.call("STATS", L.pack("thp_msg_stats", pid=root_pid))
        out["refusals"].append(["STATS", m[0], *p.error(m[2])] if m[0] == "ERROR" else [m[0]])
    m = p.call("REGIONS", L.pack("thp_msg_regions", pid=root_pid))
    out["refusals"].append(["REGIONS", m[0], *p.error(m[2])] if m[0] == "ERROR" else [m[0]])
    # a range without regions: an admin is answered at once (ENOENT)
    m = p.call("EVICT_REQ", L.pack("thp_msg_evict_req", pid=root_pid, addr=1 << 21,
                                   len=1 << 21))
    out["refusals"].append(["EVICT_REQ", m[0], *p.error(m[2])] if m[0] == "ERROR" else [m[0]])
    t, _s, pl, _f = p.call("CLIENTS_PAGE", L.pack("thp_msg_clients_page", after=0))
    base, esz = L.field("thp_msg_clients_reply", "c")[0], L.size("thp_client_info")
    out["clients"] = [L.get("thp_client_info", pl, "pid", base + i * esz)
                      for i in range(L.get("thp_msg_clients_reply", pl, "n"))]
    p.close()
    print(json.dumps(out), flush=True)
    evicts = 0
    while True:
        r, _, _ = select.select([sys.stdin, c.s], [], [])
        if sys.stdin in r and not os.read(sys.stdin.fileno(), 1):
            break
        if c.s in r:
            m = c.recv(0)
            if m is None:
                continue
            if m[0] != "EVICT":
                print(json.dumps({"unexpected": m[0]}), flush=True)
                break
            n = L.get("thp_msg_evict", m[2], "n")
            evicts += n
            c.send("EVICT_DONE", L.pack("thp_msg_evict_done", evicted=n), seq=m[1])
    c.close()
    return 0


# ---- root's side ----

class Ids:
    """The temporary user and groups; remove() undoes what create() did."""

    def __init__(self):
        tag = os.getpid()
        self.user = f"thpsw-u{tag}"
        self.group = f"thpsw-g{tag}"
        self.admin = f"thpsw-a{tag}"
        self.made = []

    def create(self):
        for name, db in ((self.user, pwd.getpwnam), (self.group, grp.getgrnam),
                         (self.admin, grp.getgrnam)):
            try:
                db(name)
                raise RuntimeError(f"{name} exists already: not ours to use")
            except KeyError:
                pass
        for g in (self.group, self.admin):
            subprocess.run(["groupadd", "--system", g], check=True, timeout=60)
            self.made.append(("groupdel", g))
        subprocess.run(["useradd", "--system", "--no-create-home", "--gid", self.group,
                        "--shell", "/usr/sbin/nologin", "--home-dir", "/nonexistent",
                        self.user], check=True, timeout=60)
        self.made.append(("userdel", self.user))
        self.uid = pwd.getpwnam(self.user).pw_uid
        self.gid = grp.getgrnam(self.group).gr_gid

    def join_admin(self):
        subprocess.run(["usermod", "--append", "--groups", self.admin, self.user],
                       check=True, timeout=60)

    def remove(self):
        # The user first: a group cannot go while it is a user's primary one.
        for cmd, name in sorted(self.made, key=lambda x: x[0] != "userdel"):
            r = subprocess.run([cmd, name], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                print(f"cleanup: {cmd} {name}: {r.stderr.strip()}")
        self.made = []

    def as_user(self, *argv, groups=True):
        """argv run as the user: with its groups (initgroups), or with its
        primary group only."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--init-groups" if groups else "--clear-groups", "--", *argv]


def user_side(ctl_bin, layout_bin):
    """Copies of what the user runs (thpswapctl, proto-layout, this script
    and its modules) in a directory any user may enter: the build tree may
    sit under one only root can (a clone in a mktemp -d, mode 0700).  Both
    programs link nothing of the build tree."""
    here = os.path.dirname(os.path.abspath(__file__))
    top = tempfile.mkdtemp(prefix="thpswap-privacy.")
    os.chmod(top, 0o755)
    for f in (ctl_bin, layout_bin, os.path.abspath(__file__),
              os.path.join(here, "thpswap_peer.py"), os.path.join(here, "thpswap_kernel.py")):
        shutil.copy(f, top)
        os.chmod(os.path.join(top, os.path.basename(f)), 0o755)
    return top, (os.path.join(top, os.path.basename(ctl_bin)),
                 os.path.join(top, os.path.basename(layout_bin)),
                 os.path.join(top, os.path.basename(__file__)))


def open_to_group(d, gid):
    """The socket as a real install has it: group-owned, 0660, in a
    directory others may pass through."""
    os.chmod(d.dir, 0o711)
    os.chown(d.sock, 0, gid)
    os.chmod(d.sock, 0o660)


def user_ctl(ids, ctl_bin, d, *args, groups=True):
    p = subprocess.run(ids.as_user(ctl_bin, "--socket", d.sock, *args, groups=groups),
                       capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def start_user_session(ids, layout_bin, d, root_pid, groups=True):
    proc = subprocess.Popen(ids.as_user(sys.executable, ids.script, "_user",
                                        layout_bin, d.sock, str(root_pid), groups=groups),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    user_procs.append(proc)
    r, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if r else ""
    try:
        return proc, json.loads(line)
    except ValueError:
        proc.stdin.close()
        proc.wait(timeout=60)
        raise RuntimeError(f"the user's session did not start: {line!r}")


def end_user_session(proc):
    proc.stdin.close()
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -1


def not_admin(ids, L, d, ctl_bin, layout_bin, root_pid):
    proc, seen = start_user_session(ids, layout_bin, d, root_pid)
    upid = seen["pid"]
    try:
        # the raw peer: three STATS, a REGIONS and an EVICT_REQ of root's pid
        print(f"user peer: {len(seen['refusals'])} requests for root's pid: "
              f"{[r[1] + ' ' + str(r[2]) if len(r) > 2 else r[0] for r in seen['refusals']]}")
        for r in seen["refusals"]:
            check(len(r) == 4 and r[1] == "ERROR" and r[2] == -errno.EPERM,
                  f"{r[0]} of root's pid by the user: {r!r}, want ERROR -EPERM")
            check(len(r) == 4 and "another user" in r[3] and "only root" in r[3],
                  f"{r[0]}: the refusal does not say what is needed: {r!r}")
        check(seen["clients"] == [upid], f"CLIENTS_PAGE for the user lists {seen['clients']}, "
              f"want only its own pid {upid}")

        refused_ctl = 0
        for args in (["stats", "--pid", str(root_pid)], ["regions", "--pid", str(root_pid)],
                     ["evict", "--pid", str(root_pid), "--all"], ["pin", str(root_pid)],
                     ["unpin", str(root_pid)]):
            st, out, err = user_ctl(ids, ctl_bin, d, *args)
            print(f"user: thpswapctl {' '.join(args[:1])} of root's pid: exit {st}: {err.strip()}")
            check(st != 0 and "another user" in err and "only root" in err and not out,
                  f"thpswapctl {' '.join(args)} as the user: exit {st}, {out!r} {err!r}")
            refused_ctl += 1

        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "clients")
        got = [c["pid"] for c in json.loads(out)["clients"]] if st == 0 else None
        print(f"user: thpswapctl clients: {got}")
        check(got == [upid], f"the user's thpswapctl clients lists {got}, want [{upid}]")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "regions")
        got = sorted((x["pid"], int(x["addr"], 16)) for x in json.loads(out)["regions"]) \
            if st == 0 else None
        want = [(upid, USER_BASE + i * (2 << 20)) for i in range(USER_NREC)]
        check(got == want, f"the user's thpswapctl regions: {got}, want {want}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "stats")
        regions = json.loads(out)["counters"]["regions"] if st == 0 else None
        check(regions == USER_NREC, f"the user's stats sum {regions} regions, want its own "
              f"{USER_NREC} (root's {ROOT_NREC} left out)")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "status")
        s = json.loads(out) if st == 0 else {}
        check(s.get("clients") == 1 and s.get("regions") == USER_NREC,
              f"the user's status: clients {s.get('clients')}, regions {s.get('regions')}; "
              f"want 1, {USER_NREC}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "stats", "--pid", str(upid))
        check(st == 0, f"the user's stats of its own pid: exit {st} {err!r}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "evict", "--pid", str(upid), "--all")
        ev = json.loads(out) if st == 0 else {}
        print(f"user: thpswapctl evict of its own pid: exit {st}, {ev}")
        check(st == 0 and ev.get("evicted") == USER_NREC,
              f"the user evicting its own session: exit {st}, {out!r} {err!r}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "pin", str(upid))
        pn = json.loads(out) if st == 0 else {}
        print(f"user: thpswapctl pin of its own pid: exit {st}, {pn}")
        check(st == 0 and pn.get("regions") == USER_NREC,
              f"the user pinning its own session: exit {st}, {out!r} {err!r}")

        # root sees both
        r = ctl(ctl_bin, d, "--json", "clients")
        got = sorted(c["pid"] for c in json.loads(r[1])["clients"]) if r and r[0] == 0 else None
        check(got == sorted([root_pid, upid]), f"root's thpswapctl clients: {got}")
        r = ctl(ctl_bin, d, "--json", "status")
        s = json.loads(r[1]) if r and r[0] == 0 else {}
        hits = s.get("limits", {}).get("hits", {}).get("not_permitted")
        want_hits = len(seen["refusals"]) + refused_ctl
        print(f"root: status: clients {s.get('clients')}, regions {s.get('regions')}, "
              f"not_permitted {hits}")
        check(s.get("clients") == 2 and s.get("regions") == ROOT_NREC + USER_NREC,
              f"root's status: {s.get('clients')} clients, {s.get('regions')} regions")
        check(hits == want_hits, f"not_permitted counted {hits}, want {want_hits}")
        lines = [x for x in d.log_text().splitlines()
                 if f"asked for the session of pid {root_pid} " in x]
        per_peer = {x.split(" (uid")[0] for x in lines}
        print(f"log: {len(lines)} refusal lines for {want_hits} refusals by "
              f"{1 + refused_ctl} peers")
        check(len(lines) == 1 + refused_ctl and len(per_peer) == len(lines),
              f"want one refusal line per peer ({1 + refused_ctl}), got {lines!r}")
        check(f"pid {upid} (uid {ids.uid}) asked" in d.log_text(),
              "the refusal line does not name the user's peer")
    finally:
        check(end_user_session(proc) == 0, "the user's session process failed")


def admin(ids, L, d, ctl_bin, layout_bin, root_pid):
    proc, seen = start_user_session(ids, layout_bin, d, root_pid)
    upid = seen["pid"]
    try:
        check(all(r[0] == "STATS_REPLY" or r[1] != "ERROR" or r[2] != -errno.EPERM
                  for r in seen["refusals"][:3]),
              f"an admin-group member was refused STATS: {seen['refusals'][:3]}")
        check(sorted(seen["clients"]) == sorted([root_pid, upid]),
              f"CLIENTS_PAGE for an admin lists {seen['clients']}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "clients")
        got = sorted(c["pid"] for c in json.loads(out)["clients"]) if st == 0 else None
        print(f"admin-group user: thpswapctl clients: {got}")
        check(got == sorted([root_pid, upid]), f"an admin's thpswapctl clients: {got}")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "regions", "--pid", str(root_pid))
        got = len(json.loads(out)["regions"]) if st == 0 else None
        check(got == ROOT_NREC, f"an admin's regions of root's pid: {got} ({err!r})")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "status")
        s = json.loads(out) if st == 0 else {}
        check(s.get("clients") == 2, f"an admin's status counts {s.get('clients')} clients")
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "pin", str(root_pid))
        pn = json.loads(out) if st == 0 else {}
        print(f"admin-group user: thpswapctl pin of root's pid: exit {st}, {pn}")
        check(st == 0 and pn.get("regions") == ROOT_NREC,
              f"an admin pinning root's session: exit {st}, {out!r} {err!r}")
        # The same user without its supplementary groups is no admin.
        st, out, err = user_ctl(ids, ctl_bin, d, "--json", "clients", groups=False)
        got = [c["pid"] for c in json.loads(out)["clients"]] if st == 0 else None
        print(f"same user without the group: thpswapctl clients: {got}")
        check(got == [upid], f"without admin-group the user's clients lists {got}")
        st, out, err = user_ctl(ids, ctl_bin, d, "stats", "--pid", str(root_pid), groups=False)
        check(st != 0 and ids.admin in err, f"without the group, stats of root's pid: exit "
              f"{st}, {err!r} (want EPERM naming group {ids.admin})")
    finally:
        check(end_user_session(proc) == 0, "the user's session process failed")


def run_case(fn, ids, L, daemon_bin, ctl_bin, layout_bin, args):
    d = Daemon(daemon_bin, args)
    root = None
    try:
        open_to_group(d, ids.gid)
        r = ctl(ctl_bin, d, "status", timeout=30)
        if r is None or r[0] != 0:
            check(False, f"thpswapd did not start: {r!r}\n{d.log_text()}")
            return
        root = Client(d, L, ROOT_NREC)
        root.make_resident(ROOT_BASE)
        set_regions_counter(L, root, ROOT_NREC)
        fn(ids, L, d, ctl_bin, layout_bin, os.getpid())
    finally:
        if root:
            root.close()
        log = d.log_text()
        st = d.stop()
        check(st == 0, f"thpswapd exited {st}")
        if failures:
            print("daemon log (tail):\n" + "\n".join(log.splitlines()[-15:]))


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "_user":
        return user_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 1
    daemon_bin, ctl_bin, layout_bin = sys.argv[1:]
    need_root()
    require_kernel(ctl_bin)
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "usermod", "setpriv"):
        if not any(os.access(os.path.join(p, tool), os.X_OK)
                   for p in os.environ.get("PATH", "/usr/sbin:/usr/bin").split(":") +
                   ["/usr/sbin", "/usr/bin"]):
            print(f"skip: {tool} (passwd, util-linux) is not installed")
            return 77
    L = Layout(layout_bin)
    ids = Ids()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    top = None
    try:
        top, (ctl_bin, layout_bin, ids.script) = user_side(ctl_bin, layout_bin)
        ids.create()
        run_case(not_admin, ids, L, daemon_bin, ctl_bin, layout_bin, [])
        ids.join_admin()
        run_case(admin, ids, L, daemon_bin, ctl_bin, layout_bin, ["--admin-group", ids.admin])
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
        check(False, f"{type(e).__name__}: {e}")
    finally:
        # A signal may have come while one was starting: end them all (by
        # pid) first, or userdel refuses a user with processes.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for p in user_procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        ids.remove()
        if top:
            shutil.rmtree(top, ignore_errors=True)
    return verdict("ctl-privacy")


if __name__ == "__main__":
    sys.exit(main())
