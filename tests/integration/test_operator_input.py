#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What an operator types and writes: thpswapd's settings file and options,
thpswapctl's --socket and --json.

argv: CASE THPSWAPD THPSWAPCTL, CASE one of
  config-nul      a NUL byte in thpswapd.conf is an error naming the file and
                  line (exit 2), wherever it is on the line; the same file
                  without it is accepted
  daemon-verbose  --verbose=yes|no are accepted and do what they say (a real
                  daemon logs its info lines, or none: --verbose=no wins over
                  -v and the file); --verbose=maybe and --check=1 are usage
                  errors that say why; so are --tiers and --file-dir that
                  cannot work, and a --codec it does not have
  ctl-socket      --socket PATH: nothing there, a socket nobody listens on
                  (exit 3), a regular file, a directory, a stream socket
                  (exit 1), each said as such
  ctl-json        --json: every error path (bad arguments of each command, no
                  daemon, not a socket, an error from a real daemon) prints
                  exactly one JSON object {"error", "errno"} on stdout, the
                  message also on stderr, and exits non-zero
Exit 0 pass, 1 fail, 77 skip (a case that needs a daemon, when thpswapd
cannot run here or we are not root).
"""
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

from thpswap_kernel import require_kernel

TIMEOUT = 30
failures = []


def check(what, cond, detail=""):
    if not cond:
        failures.append(f"{what}{': ' + detail if detail else ''}")


def run(argv, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, **kw)
    except subprocess.TimeoutExpired:
        failures.append(f"{' '.join(argv)}: still running after {TIMEOUT} s")
        return None


class Daemon:
    """thpswapd on a private socket it binds itself, stderr to a pipe (read
    after it stopped)."""

    def __init__(self, daemon_bin, ctl_bin, d, *args):
        self.sock = os.path.join(d, "control.sock")
        self.proc = subprocess.Popen([daemon_bin, "--socket", self.sock, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        # Up when thpswapctl gets an answer; exit 3 (not yet listening)
        # is retried until the deadline, any other failure is final.
        deadline = time.monotonic() + TIMEOUT
        while True:
            p = run([ctl_bin, "--socket", self.sock, "status"])
            if p is None or p.returncode != 3 or time.monotonic() > deadline or \
               self.proc.poll() is not None:
                break
            select.select([self.proc.stderr], [], [], 0.05)   # its output or 50 ms
        self.up = p is not None and p.returncode == 0
        if not self.up:
            failures.append(f"thpswapd {' '.join(args)} did not come up: "
                            f"{p.stderr if p else 'timeout'}")

    def stop(self):
        """SIGTERM; its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            failures.append("thpswapd did not stop on SIGTERM")
        return err


def need_daemon(ctl_bin):
    if os.geteuid() != 0:
        print("skip: needs root (thpswapd)")
        sys.exit(77)
    require_kernel(ctl_bin)


# ---- config-nul ----

def case_config_nul(daemon_bin, ctl_bin, d):
    good = b"# thpswapd.conf\nverbose = yes\nzstd-level = 3\nframes = 2\n"
    bad = {
        "in a value": (b"# thpswapd.conf\nverbose = yes\nzstd-level = 3\x00junk\nframes = 2\n", 3),
        "ending a value": (b"verbose = yes\x00\nframes = 2\n", 1),
        "in a comment": (b"frames = 2\n\n# a \x00 comment\n", 3),
        "on a line alone": (b"frames = 2\n\x00\n", 2),
    }
    path = os.path.join(d, "thpswapd.conf")
    with open(path, "wb") as f:
        f.write(good)
    p = run([daemon_bin, "-c", path, "--check"])
    if p:
        check("the file without a NUL byte: accepted", p.returncode != 2 and "NUL" not in p.stderr,
              f"exit {p.returncode}, stderr {p.stderr!r}")
    for what, (data, line) in bad.items():
        with open(path, "wb") as f:
            f.write(data)
        p = run([daemon_bin, "-c", path, "--check"])
        if not p:
            continue
        want = f"thpswapd: {path}:{line}: a NUL byte in the line"
        check(f"a NUL byte {what}: exit status", p.returncode == 2, f"{p.returncode}")
        check(f"a NUL byte {what}: the message names the file and line", want in p.stderr,
              f"want {want!r}, stderr {p.stderr!r}")


# ---- daemon-verbose ----

def case_daemon_verbose(daemon_bin, ctl_bin, d):
    for args, msg in ((["--verbose=maybe"], "thpswapd: --verbose: 'maybe' is not yes or no"),
                      (["--check=1"], "thpswapd: option '--check' takes no value"),
                      (["--help=x"], "thpswapd: option '--help' takes no value"),
                      (["--verbose", "yes"], "thpswapd: unexpected argument 'yes'"),
                      (["--tiers=ram,file"], "thpswapd: --tiers has file but no --file-dir"),
                      (["--tiers=file", "--file-dir=/var/tmp"], "leaves out ram"),
                      (["--tiers=ram,disk"], "'disk' in 'ram,disk' is not a tier"),
                      (["--tiers=ram,ram"], "is there twice"),
                      (["--file-dir=tier"], "'tier' is not an absolute path"),
                      (["--codec=lzma"], "'lzma' is not a codec (lz4 or zstd)")):
        p = run([daemon_bin, "-c", "/dev/null", *args])
        if p:
            check(f"thpswapd {' '.join(args)}: exit status 2", p.returncode == 2,
                  f"{p.returncode}")
            check(f"thpswapd {' '.join(args)}: says why", msg in p.stderr,
                  f"want {msg!r}, stderr {p.stderr!r}")
    for v in ("--verbose=yes", "--verbose=no", "--verbose", "-v"):
        p = run([daemon_bin, "-c", "/dev/null", v, "--version"])
        if p:
            check(f"thpswapd {v}: accepted", p.returncode == 0 and p.stdout.startswith("thpswapd "),
                  f"exit {p.returncode}, stderr {p.stderr!r}")

    need_daemon(ctl_bin)
    conf = os.path.join(d, "verbose.conf")
    with open(conf, "w") as f:
        f.write("verbose = yes\n")
    # A daemon logs "listening on PATH" only when verbose.
    for args, loud in ((["-c", "/dev/null", "--verbose=yes"], True),
                       (["-c", conf, "-v", "--verbose=no"], False),
                       (["-c", conf], True),
                       (["-c", "/dev/null"], False)):
        dm = Daemon(daemon_bin, ctl_bin, d, *args)
        err = dm.stop()
        if dm.up:
            check(f"thpswapd {' '.join(args)}: {'logs' if loud else 'does not log'} its info lines",
                  ("listening on " + dm.sock in err) == loud, f"stderr {err!r}")


# ---- ctl-socket ----

def case_ctl_socket(daemon_bin, ctl_bin, d):
    regular = os.path.join(d, "regular")
    with open(regular, "w") as f:
        f.write("x\n")
    dead = os.path.join(d, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(dead)
    s.close()
    stream = os.path.join(d, "stream.sock")
    t = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t.bind(stream)
    t.listen(1)
    cases = [
        (os.path.join(d, "nothing"), 3, "thpswapd is not running (nothing at "),
        (dead, 3, f"thpswapd is not running (nothing listens on {dead}"),
        (regular, 1, f"{regular} is not a socket (it is a regular file)"),
        (d, 1, f"{d} is not a socket (it is a directory)"),
        (regular + "/x", 1, "a part of the path is not a directory"),
        (stream, 1, f"{stream} is a socket of another kind (not SOCK_SEQPACKET)"),
    ]
    for path, status, msg in cases:
        for cmd in (["status"], ["clients"], ["stats"]):
            p = run([ctl_bin, "--socket", path, *cmd])
            if not p:
                continue
            check(f"thpswapctl --socket {path} {cmd[0]}: exit status {status}",
                  p.returncode == status, f"{p.returncode}")
            check(f"thpswapctl --socket {path} {cmd[0]}: says {msg!r}", msg in p.stderr,
                  f"stderr {p.stderr!r}")
            check(f"thpswapctl --socket {path} {cmd[0]}: nothing on stdout", p.stdout == "",
                  f"{p.stdout!r}")
    t.close()


# ---- ctl-json ----

def json_error(what, p, status, err, msg=None):
    """@p printed exactly one {"error", "errno"} object, exited @status."""
    if not p:
        return
    check(f"{what}: exit status {status}", p.returncode == status,
          f"{p.returncode}, stderr {p.stderr!r}")
    try:
        j = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        failures.append(f"{what}: stdout is not JSON ({e}): {p.stdout!r}")
        return
    if not isinstance(j, dict) or set(j) != {"error", "errno"}:
        failures.append(f"{what}: not an error object: {j!r}")
        return
    check(f"{what}: errno {err}", j["errno"] == err, f"{j['errno']}")
    check(f"{what}: the same message on stderr", f"thpswapctl: {j['error']}\n" in p.stderr,
          f"error {j['error']!r}, stderr {p.stderr!r}")
    if msg:
        check(f"{what}: says {msg!r}", msg in j["error"], f"{j['error']!r}")


def case_ctl_json(daemon_bin, ctl_bin, d):
    nothing = os.path.join(d, "nothing")
    regular = os.path.join(d, "regular")
    with open(regular, "w") as f:
        f.write("x\n")
    usage = [
        ["--bogus", "status"], ["status", "--bogus"], ["bogus"], [], ["--socket"],
        ["status", "extra"], ["status", "--pid", "1"], ["clients", "--all"],
        ["regions", "--pid", "x"], ["regions", "--pid"], ["regions", "--pid", "0"],
        ["evict"], ["evict", "--pid", "1"], ["evict", "--pid", "1", "--all", "--addr", "0x0"],
        ["evict", "--pid", "1", "--addr", "xyz"], ["evict", "--pid", "1", "--addr", "0x0",
                                                   "--len", "5Q"],
        ["stats", "--len", "2M"], ["kernel", "extra"], ["kernel", "--pid", "1"],
    ]
    for args in usage:
        # --json before and after the rest: both are global
        json_error(f"thpswapctl --json {' '.join(args)}",
                   run([ctl_bin, "--socket", nothing, "--json", *args]), 2, errno.EINVAL)
        if args[-1:] != ["--socket"]:     # else --json is its path
            json_error(f"thpswapctl {' '.join(args)} --json",
                       run([ctl_bin, "--socket", nothing, *args, "--json"]), 2, errno.EINVAL)
    for cmd in (["status"], ["clients"], ["regions"], ["regions", "--pid", "1"],
                ["evict", "--pid", "1", "--all"], ["stats"], ["stats", "--pid", "1"]):
        json_error(f"thpswapctl --json --socket (nothing) {' '.join(cmd)}",
                   run([ctl_bin, "--json", "--socket", nothing, *cmd]), 3, errno.ENOENT,
                   "thpswapd is not running")
        json_error(f"thpswapctl --json --socket (a regular file) {' '.join(cmd)}",
                   run([ctl_bin, "--json", "--socket", regular, *cmd]), 1, errno.ENOTSOCK,
                   "is not a socket (it is a regular file)")
    json_error("thpswapctl --json --socket (too long) status",
               run([ctl_bin, "--json", "--socket", "/" + "x" * 200, "status"]), 2,
               errno.ENAMETOOLONG)

    # Errors from a real daemon: a pid that is no client of it.
    need_daemon(ctl_bin)
    dm = Daemon(daemon_bin, ctl_bin, d, "-c", "/dev/null")
    if dm.up:
        me = str(os.getpid())
        for cmd in (["regions", "--pid", me], ["stats", "--pid", me],
                    ["evict", "--pid", me, "--all"]):
            json_error(f"thpswapctl --json {' '.join(cmd)} (not a client)",
                       run([ctl_bin, "--json", "--socket", dm.sock, *cmd]), 1, errno.ESRCH,
                       f"no thpswap client with pid {me}")
        p = run([ctl_bin, "--json", "--socket", dm.sock, "status"])
        if p:
            check("thpswapctl --json status: still the report", p.returncode == 0 and
                  "version" in json.loads(p.stdout), f"{p.returncode} {p.stdout!r}")
        # regions holds its document back until the end: still all of it
        p = run([ctl_bin, "--json", "--socket", dm.sock, "regions"])
        if p:
            check("thpswapctl --json regions (no clients): an empty list",
                  p.returncode == 0 and json.loads(p.stdout) == {"regions": []},
                  f"{p.returncode} {p.stdout!r}")
    dm.stop()


CASES = {
    "config-nul": case_config_nul,
    "daemon-verbose": case_daemon_verbose,
    "ctl-socket": case_ctl_socket,
    "ctl-json": case_ctl_json,
}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in CASES:
        print(f"usage: test_operator_input.py {'|'.join(CASES)} THPSWAPD THPSWAPCTL",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="thpswap-operator.") as d:
        CASES[sys.argv[1]](sys.argv[2], sys.argv[3], d)
    for f in failures:
        print(f"FAIL: {f}")
    if not failures:
        print(f"{sys.argv[1]}: ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
