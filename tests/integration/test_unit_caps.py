#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""thpswapd works with the capabilities its unit leaves it, and needs them.

Usage: test_unit_caps.py UNIT THPSWAPD THPSWAPCTL PROTO_LAYOUT

Reads CapabilityBoundingSet= from the unit (thpswapd.service.in) and starts
the real daemon as root with exactly that bounding set (setpriv, no new
privileges), as systemd would, then opens a client session:

  unit's set   the daemon's effective set is that set; the session gets
               UFFD_FEATURE_EVENT_FORK and thpswapctl is served
  each cap     dropped one at a time: the daemon must lose something (for
               CAP_SYS_PTRACE, EVENT_FORK, and it says so), else the unit
               keeps a capability the code does not use

Exit 0 pass, 1 fail, 77 skip.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import Daemon, Layout, Peer, check, ctl, need_root, unit_values, userfaultfd, verdict  # noqa: E402

UFFD_FEATURE_EVENT_FORK = 1 << 1
# What losing each capability the unit may keep costs, as the daemon tells.
LOST = {"CAP_SYS_PTRACE": "no CAP_SYS_PTRACE"}


def unit_caps(path):
    return [c for v in unit_values(path, "CapabilityBoundingSet") for c in v]


def cap_bits(caps):
    """The capability mask of @caps, by the numbers setpriv knows."""
    names = subprocess.run(["setpriv", "--list-caps"], capture_output=True, text=True,
                           check=True, timeout=30).stdout.split()
    return sum(1 << names.index(c.lower().removeprefix("cap_")) for c in caps)


def run_with(caps, daemon_bin, ctl_bin, L, tmp):
    """Start the daemon bounded to @caps; (effective caps, uffd features
    of a session, its log)."""
    wrapper = os.path.join(tmp, "thpswapd-bounded")
    bset = ",".join(["-all"] + ["+" + c.lower().removeprefix("cap_") for c in caps])
    with open(wrapper, "w", encoding="utf-8") as f:
        # exec keeps the pid: LISTEN_PID still names the daemon.
        f.write(f'#!/bin/sh\nexec setpriv --bounding-set={bset} --inh-caps=-all '
                f'--no-new-privs "{daemon_bin}" "$@"\n')
    os.chmod(wrapper, 0o755)
    d = Daemon(wrapper)
    try:
        r = ctl(ctl_bin, d, "status", timeout=30)
        check(r is not None and r[0] == 0, f"caps {caps}: thpswapctl status: {r!r}")
        with open(f"/proc/{d.pid}/status", encoding="utf-8") as f:
            eff = next(int(x.split()[1], 16) for x in f if x.startswith("CapEff:"))
        p = Peer(d, L)
        uffd = userfaultfd()
        try:
            p.send("HELLO", L.pack("thp_msg_hello", role=L.consts["THP_ROLE_CLIENT"],
                                   max_regions=4, comm=b"caps-test"), fds=[uffd])
        finally:
            os.close(uffd)
        m = p.recv(30)
        features = None
        if check(m is not None and m[0] == "WELCOME", f"caps {caps}: client HELLO: {m!r}"):
            features = L.get("thp_msg_welcome", m[2], "uffd_features")
            for fd in m[3]:
                os.close(fd)
        p.close()
        return eff, features, d.log_text()
    finally:
        st = d.stop()
        check(st == 0, f"caps {caps}: thpswapd exited {st}")


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 1
    unit, daemon_bin, ctl_bin, layout_bin = sys.argv[1:]
    need_root()
    if not shutil.which("setpriv"):
        print("skip: setpriv (util-linux) is not installed")
        return 77
    require_kernel(ctl_bin)
    L = Layout(layout_bin)
    caps = unit_caps(unit)
    if not check(caps, f"{unit} sets no CapabilityBoundingSet="):
        caps = []
    tmp = tempfile.mkdtemp(prefix="thpswap-caps.")
    try:
        eff, features, log = run_with(caps, daemon_bin, ctl_bin, L, tmp)
        print(f"unit's set {caps}: CapEff {eff:#x}, session uffd features {features:#x}"
              if features is not None else f"unit's set {caps}: no session")
        check(eff == cap_bits(caps), f"the daemon's effective set {eff:#x} is not the unit's "
              f"{cap_bits(caps):#x}")
        check(features is not None and features & UFFD_FEATURE_EVENT_FORK,
              f"with the unit's capabilities the session gets no EVENT_FORK ({features})")
        check("no CAP_SYS_PTRACE" not in log, "the daemon says it lacks CAP_SYS_PTRACE")
        for c in caps:
            rest = [x for x in caps if x != c]
            eff, features, log = run_with(rest, daemon_bin, ctl_bin, L, tmp)
            lost = LOST.get(c)
            print(f"without {c}: CapEff {eff:#x}, EVENT_FORK "
                  f"{'granted' if features and features & UFFD_FEATURE_EVENT_FORK else 'denied'}, "
                  f"log says {lost!r}: {bool(lost and lost in log)}")
            check(lost is not None, f"the unit keeps {c}, which this test knows no use of")
            if c == "CAP_SYS_PTRACE":
                check(features is not None and not features & UFFD_FEATURE_EVENT_FORK,
                      "without CAP_SYS_PTRACE the session still got EVENT_FORK")
            check(lost is None or lost in log, f"without {c} the daemon does not say {lost!r}")
    except RuntimeError as e:
        check(False, str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return verdict("unit-caps")


if __name__ == "__main__":
    sys.exit(main())
