#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""thpswapd under systemd's protocols, without systemd as PID 1.

Usage: test_systemd_notify.py THPSWAPD THPSWAPCTL PROTO_LAYOUT

systemd-socket-activate (Debian's systemd package) listens on a unix
SOCK_SEQPACKET socket named "control", as thpswapd.socket does, and execs
thpswapd on the first connection with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES.
The test plays the service manager's side of sd_notify: it binds an
AF_UNIX datagram socket with SO_PASSCRED and passes it as NOTIFY_SOCKET.

  activated  the first connection is served by the daemon execed for it
             (its WELCOME names the pid systemd-socket-activate became), and
             thpswapctl works through the same socket
  notify     READY=1 and STATUS=0 clients at start, STATUS=1 client while a
             session is open and STATUS=0 clients after, STOPPING=1 on
             SIGTERM, exit 0; every message from the main pid
             (NotifyAccess=main); never FDSTORE=1 (the daemon keeps no fd
             store: the unit sets no FileDescriptorStoreMax=)
  watchdog   WATCHDOG_USEC=1 s: WATCHDOG=1 every half of it, as
             sd_watchdog_enabled() implies, never a gap of the whole
             timeout; WATCHDOG_PID of another process, or no WATCHDOG_USEC:
             no WATCHDOG=1 at all

Exit 0 pass, 1 fail, 77 skip.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import Client, Layout, Peer, check, ctl, failures, need_root, terminate, verdict  # noqa: E402

ACTIVATE = "/usr/bin/systemd-socket-activate"
WATCHDOG_USEC = 1000000


class Manager:
    """The service manager's side: a notify socket, and thpswapd started by
    systemd-socket-activate on a private control socket."""

    def __init__(self, daemon_bin, env):
        self.dir = tempfile.mkdtemp(prefix="thpswap-sd.")
        self.sock = os.path.join(self.dir, "control.sock")
        self.notify_path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.log = []
        self.listening = threading.Event()
        args = [ACTIVATE, "--listen", self.sock, "--seqpacket", "--fdname=control",
                "--setenv", f"NOTIFY_SOCKET={self.notify_path}"]
        for k, v in env.items():
            args += ["--setenv", f"{k}={v}"]
        self.proc = subprocess.Popen(args + [daemon_bin, "-v"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read_log, daemon=True)
        self.reader.start()

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.sock)
        return s

    def until_status(self, value, seconds=10):
        """Notify messages up to the first STATUS=@value (all read within
        @seconds if none)."""
        got = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            got += self.messages(end - time.monotonic(), until="STATUS")
            if got and got[-1][2].get("STATUS") == value:
                break
        return got

    def _read_log(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if line.startswith("Listening on "):
                self.listening.set()
        self.listening.set()    # exited: whoever waits must not wait forever

    def messages(self, seconds, until=None):
        """Notify datagrams for @seconds, or until one contains @until:
        [(monotonic time, sender pid, {key: value})]."""
        out = []
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return out
            self.notify.settimeout(left)
            try:
                data, anc, _fl, _a = self.notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                return out
            pid = -1
            for level, kind, d in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", d[:12])[0]
            kv = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            out.append((time.monotonic(), pid, kv))
            if until and until in kv:
                return out

    def stop(self):
        terminate(self.proc)
        self.reader.join(timeout=30)
        self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


def activate(m, L):
    """Connect (this starts the daemon), say HELLO; the daemon's pid."""
    if not m.listening.wait(30) or m.proc.poll() is not None:
        raise RuntimeError("systemd-socket-activate is not listening: " + "\n".join(m.log))
    p = Peer(m, L)
    p.send("HELLO", L.pack("thp_msg_hello", role=L.consts["THP_ROLE_CTL"], comm=b"sd-test"))
    w = p.recv(30)
    if not w or w[0] != "WELCOME":
        raise RuntimeError(f"no WELCOME from the activated daemon: {w!r}")
    return p, L.get("thp_msg_welcome", w[2], "daemon_pid")


def case_notify(L, daemon_bin, ctl_bin):
    m = Manager(daemon_bin, {"WATCHDOG_USEC": WATCHDOG_USEC})
    try:
        p, dpid = activate(m, L)
        print(f"activated: systemd-socket-activate pid {m.proc.pid}, WELCOME from pid {dpid}")
        check(dpid == m.proc.pid, f"WELCOME names pid {dpid}, not the process execed for the "
              f"connection ({m.proc.pid})")
        got = m.messages(10, until="READY")
        r = ctl(ctl_bin, m, "status", timeout=30)
        check(r is not None and r[0] == 0 and f"pid {dpid}" in r[1],
              f"thpswapctl status through the activated socket: {r!r}")
        check(any("socket-activated (fd 3)" in x for x in m.log),
              "the daemon did not say it took the socket systemd-socket-activate passed")

        # the watchdog, for 5 timeouts' worth
        got += m.messages(5 * WATCHDOG_USEC / 1e6)
        pings = [t for t, _p, kv in got if kv.get("WATCHDOG") == "1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        half = WATCHDOG_USEC / 2e6
        print(f"watchdog: WATCHDOG_USEC={WATCHDOG_USEC}: {len(pings)} pings, gaps "
              f"{min(gaps, default=0):.3f}..{max(gaps, default=0):.3f} s "
              f"(mean {sum(gaps) / max(len(gaps), 1):.3f}, want {half:.3f})")
        check(len(gaps) >= 8, f"only {len(pings)} WATCHDOG=1 in 5 timeouts")
        check(max(gaps, default=9) < WATCHDOG_USEC / 1e6,
              f"a WATCHDOG=1 gap of {max(gaps, default=9):.3f} s: systemd would have killed it")
        check(gaps and 0.8 * half <= sum(gaps) / len(gaps) <= 1.25 * half,
              "pings are not every half of WATCHDOG_USEC")
        check(min(gaps, default=0) > half / 2, "pings faster than sd_watchdog_enabled implies")

        c = Client(m, L, 4)
        got += m.until_status("1 client")
        c.close()
        got += m.until_status("0 clients")
        p.close()
        os.kill(dpid, signal.SIGTERM)
        got += m.messages(10, until="STOPPING")
        st = m.proc.wait(timeout=30)
        check(st == 0, f"thpswapd exited {st} on SIGTERM")

        status = [kv["STATUS"] for _t, _p, kv in got if "STATUS" in kv]
        keys = [k for _t, _p, kv in got for k in kv if k != "WATCHDOG"]
        print(f"notify: {keys} ; STATUS values {status}")
        check("READY" in keys and keys.index("READY") == 0 and got[0][2]["READY"] == "1",
              f"READY=1 is not the first message: {keys}")
        check(status[:1] == ["0 clients"], f"STATUS at start: {status[:1]}")
        check("1 client" in status and status[-1] == "0 clients",
              f"STATUS did not follow the session: {status}")
        check(keys[-1] == "STOPPING", f"STOPPING=1 not last: {keys}")
        senders = {pid for _t, pid, _kv in got}
        check(senders == {dpid}, f"notify messages from pids {senders}, want only the main "
              f"pid {dpid} (NotifyAccess=main)")
        check(not any("FDSTORE" in kv for _t, _p, kv in got),
              "the daemon sent FDSTORE=1, but the unit keeps no fd store")
    finally:
        st = m.stop()
        if failures:
            print("daemon log (tail):\n" + "\n".join(m.log[-15:]))
        check(st == 0, f"systemd-socket-activate/thpswapd exited {st}")


def case_no_watchdog(L, daemon_bin, ctl_bin, env, what):
    m = Manager(daemon_bin, env)
    try:
        p, dpid = activate(m, L)
        got = m.messages(10, until="READY")
        check(any("READY" in kv for _t, _p, kv in got), f"{what}: no READY=1")
        got += m.messages(3 * WATCHDOG_USEC / 1e6)
        pings = sum(kv.get("WATCHDOG") == "1" for _t, _p, kv in got)
        print(f"watchdog, {what}: {pings} WATCHDOG=1 in {3 * WATCHDOG_USEC / 1e6:.0f} s")
        check(pings == 0, f"{what}: {pings} WATCHDOG=1 sent")
        p.close()
    finally:
        st = m.stop()
        check(st == 0, f"{what}: thpswapd exited {st}")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 1
    daemon_bin, ctl_bin, layout_bin = sys.argv[1:]
    need_root()
    if not os.access(ACTIVATE, os.X_OK):
        print(f"skip: {ACTIVATE} is missing (Debian's systemd package)")
        return 77
    require_kernel(ctl_bin)
    L = Layout(layout_bin)
    try:
        case_notify(L, daemon_bin, ctl_bin)
        # sd_watchdog_enabled: the watchdog is another process's, and none
        case_no_watchdog(L, daemon_bin, ctl_bin,
                         {"WATCHDOG_USEC": WATCHDOG_USEC, "WATCHDOG_PID": os.getpid()},
                         "WATCHDOG_PID of another process")
        case_no_watchdog(L, daemon_bin, ctl_bin, {}, "no WATCHDOG_USEC")
    except RuntimeError as e:
        check(False, str(e))
    return verdict("systemd-notify")


if __name__ == "__main__":
    sys.exit(main())
