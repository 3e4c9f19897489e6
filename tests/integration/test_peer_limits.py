#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""No peer can exhaust thpswapd: hostile peers against the real daemon.

Usage: test_peer_limits.py CASE THPSWAPD THPSWAPCTL PROTO_LAYOUT

Each case starts its own daemon, plays one hostile peer and checks what the
daemon did with numbers read from it (/proc/PID/fd, VmRSS, its log, the
LIMITS counters that `thpswapctl status` shows), then that the daemon still
serves everyone (`thpswapctl status`).  Exit 0 pass, 1 fail, 77 skip.

  empty-dgram    empty datagrams carrying an fd: no fd kept
  many-fds       messages with 2, 20, 28 fds (no credentials): none kept
"""
import errno
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import Client, Daemon, Layout, Peer, ctl, need_root, send  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def still_serves(ctl_bin, d, what):
    r = ctl(ctl_bin, d, "status", timeout=30)
    check(r is not None and r[0] == 0,
          f"{what}: thpswapctl status afterwards: {r!r}")
    check(d.alive(), f"{what}: thpswapd died")


def log_lines(d, needle):
    return [l for l in d.log_text().splitlines() if needle in l]


def case_empty_dgram(L, d, ctl_bin):
    n = 2000
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    before = d.fds()
    t0 = time.monotonic()
    for i in range(n):
        s = d.connect()
        send(s, b"", [devnull])
        s.settimeout(10)
        try:
            got = s.recv(65536)
        except socket.timeout:
            got = None
        except ConnectionResetError:
            got = b""
        s.close()
        if not check(got == b"", f"empty datagram {i}: the daemon did not hang up ({got!r})"):
            break
    secs = time.monotonic() - t0
    after = d.fds()
    os.close(devnull)
    print(f"empty-dgram: {n} empty datagrams with an fd in {secs:.2f} s: "
          f"daemon fds {before} -> {after}")
    check(after == before, f"the daemon kept {after - before} of the {n} fds sent "
          f"with empty datagrams ({before} -> {after})")
    still_serves(ctl_bin, d, "empty-dgram")


def case_many_fds(L, d, ctl_bin):
    devnull = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    p = Peer(d, L)
    p.hello_ctl()
    before = d.fds()
    sent = 0
    for count in (2, 17, 20, 24, 28, 64):
        for i in range(50):
            seq = p.send("STATUS", fds=[devnull] * count)
            sent += 1
            m = p.recv()
            if not check(m is not None and m[0] == "ERROR" and m[1] in (0, seq),
                         f"STATUS with {count} fds: want ERROR, got {m!r}"):
                break
            err, text = p.error(m[2])
            check(err < 0 and "file descriptors" in text,
                  f"STATUS with {count} fds: ERROR {err} {text!r}")
    after = d.fds()
    os.close(devnull)
    print(f"many-fds: {sent} messages with 2..64 fds: daemon fds {before} -> {after}")
    hits = p.limits()
    print(f"many-fds: bad_fds {hits['bad_fds']}")
    check(after == before, f"the daemon kept {after - before} fds of {sent} messages "
          f"with too many ({before} -> {after})")
    check(hits["bad_fds"] == sent, f"bad_fds counted {hits['bad_fds']}, want {sent}")
    lines = log_lines(d, f"pid {os.getpid()} (uid {os.getuid()}) sent")
    check(len(lines) == 1, f"want one log line for this peer's bad fds, got {len(lines)}")
    p.close()
    still_serves(ctl_bin, d, "many-fds")


CASES = {
    "empty-dgram": (case_empty_dgram, []),
    "many-fds": (case_many_fds, []),
}


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in CASES:
        print(__doc__, file=sys.stderr)
        return 1
    name, daemon_bin, ctl_bin, layout_bin = sys.argv[1:]
    need_root()
    require_kernel(ctl_bin)
    L = Layout(layout_bin)
    fn, args = CASES[name]
    d = Daemon(daemon_bin, args)
    try:
        # Served at once: the socket was listening before the daemon ran.
        r = ctl(ctl_bin, d, "status", timeout=30)
        if r is None or r[0] != 0:
            print(f"FAIL: thpswapd did not start: {r!r}\n{d.log_text()}")
            return 1
        fn(L, d, ctl_bin)
    finally:
        log = d.log_text()
        st = d.stop() if d.alive() else d.proc.returncode
        check(st == 0, f"thpswapd exited {st}")
        if failures:
            print("daemon log (tail):\n" + "\n".join(log.splitlines()[-15:]))
    for f in failures:
        print("FAIL:", f)
    print(f"{'FAIL' if failures else 'PASS'}: {name}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
