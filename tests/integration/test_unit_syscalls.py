#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""thpswapd works inside its unit's system call filter.

Usage: test_unit_syscalls.py UNIT THPSWAPD THPSWAPCTL PROTO_LAYOUT ITEST...

Reads SystemCallFilter= from the unit (thpswapd.service.in), expands the
groups with `systemd-analyze syscall-filter` as systemd does (an allow list,
then the ~ lists taken out of it; every other call fails with
SystemCallErrorNumber=EPERM), and loads that filter with libseccomp (the
library systemd uses) before it execs the real daemon.  Then:

  filtered  each ITEST (real clients: sessions, evictions, restores, fork,
            thpswapctl) passes against the filtered daemon, and a raw session
            and every thpswapctl request are served; it exits 0 on SIGTERM
  broken    the same filter without memfd_create: a session is refused
            (the filter is really applied)

Exit 0 pass, 1 fail, 77 skip.
"""
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thpswap_kernel import require_kernel  # noqa: E402
from thpswap_peer import Client, Daemon, Layout, check, ctl, need_root, unit_values, verdict  # noqa: E402

SCMP_ACT_ALLOW = 0x7fff0000
PR_SET_NO_NEW_PRIVS = 38


def scmp_act_errno(e):
    return 0x00050000 | (e & 0xffff)


def groups():
    """systemd's syscall groups: name -> entries (calls and @groups)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    g, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            g[cur] = []
        elif cur and line.strip() and not line.strip().startswith("#"):
            g[cur].append(line.strip())
    return g


def expand(g, names):
    res = set()
    for n in names:
        res |= expand(g, g[n]) if n.startswith("@") else {n}
    return res


def unit_allowed(path):
    """The calls the unit's SystemCallFilter= lines allow."""
    g = groups()
    allow, deny = set(), set()
    for v in unit_values(path, "SystemCallFilter"):
        if v and v[0].startswith("~"):
            deny |= expand(g, [v[0][1:]] + v[1:])
        else:
            allow |= expand(g, v)
    return allow - deny


def exec_filtered(allow_file, argv):
    """Load the filter (allow the calls listed in @allow_file, EPERM for the
    rest) and exec @argv in this process: the pid stays."""
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(scmp_act_errno(1))   # EPERM
    with open(allow_file, encoding="utf-8") as f:
        for name in f.read().split():
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr >= 0 and lib.seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) < 0:
                raise OSError(f"seccomp_rule_add {name}")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 or lib.seccomp_load(ctx) < 0:
        raise OSError("cannot load the filter")
    os.execv(argv[0], argv)


def wrapper(tmp, name, allow, daemon_bin):
    allow_file = os.path.join(tmp, name + ".allow")
    with open(allow_file, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(allow)) + "\n")
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as f:
        # In a sanitizer build, LeakSanitizer's check at exit runs under
        # ptrace, which the filter denies (the installed daemon is not
        # instrumented): leaks are the other tests' to find.
        f.write(f'#!/bin/sh\nexport ASAN_OPTIONS="${{ASAN_OPTIONS:+$ASAN_OPTIONS:}}detect_leaks=0"\n'
                f'exec "{sys.executable}" "{os.path.abspath(__file__)}" _exec '
                f'"{allow_file}" "{daemon_bin}" "$@"\n')
    os.chmod(path, 0o755)
    return path


def every_request(wrap, ctl_bin, L):
    d = Daemon(wrap)
    try:
        c = Client(d, L, 4)
        c.make_resident()
        pid = str(os.getpid())
        for args in (["status"], ["clients"], ["regions"], ["stats"], ["stats", "--pid", pid],
                     ["regions", "--pid", pid]):
            r = ctl(ctl_bin, d, "--json", *args, timeout=30)
            check(r is not None and r[0] == 0, f"filtered: thpswapctl {' '.join(args)}: {r!r}")
        c.close()
        log = d.log_text()
    finally:
        st = d.stop()
    check(st == 0, f"filtered: thpswapd exited {st} on SIGTERM")
    check("Operation not permitted" not in log, "filtered: the daemon logged an EPERM:\n" + log)
    print(f"filtered: a raw session and thpswapctl status, clients, regions, stats served; "
          f"exit {st}")


def broken(wrap, L):
    d = Daemon(wrap)
    try:
        try:
            Client(d, L, 4).close()
            refused = None
        except RuntimeError as e:
            refused = str(e)
    finally:
        d.stop()
    print(f"without memfd_create: session {'refused' if refused else 'opened'}")
    check(refused and "arena" in refused,
          f"a filter without memfd_create did not stop sessions: {refused!r}")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "_exec":
        exec_filtered(sys.argv[2], sys.argv[3:])
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 1
    unit, daemon_bin, ctl_bin, layout_bin, *itests = sys.argv[1:]
    need_root()
    if not shutil.which("systemd-analyze") or not ctypes.util.find_library("seccomp"):
        print("skip: systemd-analyze or libseccomp is missing")
        return 77
    require_kernel(ctl_bin)
    L = Layout(layout_bin)
    allow = unit_allowed(unit)
    print(f"{unit}: {len(allow)} calls allowed")
    tmp = tempfile.mkdtemp(prefix="thpswap-seccomp.")
    try:
        wrap = wrapper(tmp, "thpswapd-filtered", allow, daemon_bin)
        every_request(wrap, ctl_bin, L)
        for t in itests:
            env = dict(os.environ, THPSWAPD=wrap)
            p = subprocess.run([t], env=env, capture_output=True, text=True, timeout=600)
            tail = "\n".join(p.stdout.splitlines()[-3:])
            print(f"filtered: {os.path.basename(t)} exited {p.returncode}: {tail}")
            check(p.returncode == 0, f"{os.path.basename(t)} against the filtered daemon "
                  f"exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        broken(wrapper(tmp, "thpswapd-broken", allow - {"memfd_create"}, daemon_bin), L)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return verdict("unit-syscalls")


if __name__ == "__main__":
    sys.exit(main())
