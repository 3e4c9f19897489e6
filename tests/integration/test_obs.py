#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What thpswapctl shows of a real client (obs_client.c): promotions, metrics,
top, and the opt-out.

argv: CASE THPSWAPD THPSWAPCTL OBS_CLIENT THPSWAP_RUN, CASE one of
  promotions  a client evicts its regions and reads them straight back until
              the pressure loop (every 200 ms here) counts promotions:
              clients, stats and status (--json and text) show the count, a
              rate above zero and the working set; none before the first
              restore
  metrics     `thpswapctl metrics`: every sample has a HELP and a TYPE line
              of its family above it, valid names and labels, a number;
              counters end in _total and do not decrease across two calls
              while the client evicts and restores (its restores grow); with
              the client still, every value equals `stats --json` (summed and
              per pid); --output writes the same document atomically (mode
              0644, nothing left beside it)
  top         `thpswapctl top -n 2 -d 0.2` prints two frames, each with the
              client's line; the second has rates (restores/s above zero
              while the client churns); bad -n/-d are usage errors
  opt-out     THPSWAP_DISABLE=1: thpswap_open fails with ECANCELED and
              nothing is opened; a program under thpswap-run runs unmanaged
              (no session listed), saying so once on stderr; without it the
              same program is managed
Exit 0 pass, 1 fail, 77 skip (not root, or a kernel thpswap cannot use).
"""
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time

from thpswap_kernel import require_kernel

TIMEOUT = 30
NREG = 4
failures = []


def check(what, cond, detail=""):
    if not cond:
        failures.append(f"{what}{': ' + detail if detail else ''}")
    return cond


def run(argv, env=None, timeout=TIMEOUT):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        failures.append(f"{' '.join(argv)}: still running after {timeout} s")
        return None


class Daemon:
    """thpswapd on a private socket it binds itself."""

    def __init__(self, daemon_bin, ctl_bin, d, *args):
        self.ctl_bin = ctl_bin
        self.sock = os.path.join(d, "control.sock")
        self.proc = subprocess.Popen([daemon_bin, "--socket", self.sock, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + TIMEOUT
        while True:
            p = run([ctl_bin, "--socket", self.sock, "status"])
            if p is None or p.returncode != 3 or time.monotonic() > deadline or \
               self.proc.poll() is not None:
                break
            select.select([self.proc.stderr], [], [], 0.05)   # its output or 50 ms
        if p is None or p.returncode != 0:
            print(f"thpswapd did not come up: {p.stderr if p else 'timeout'}")
            self.stop()
            sys.exit(1)

    def ctl(self, *args):
        """(exit status, stdout, stderr) of thpswapctl against this daemon."""
        p = run([self.ctl_bin, "--socket", self.sock, *args])
        return (p.returncode, p.stdout, p.stderr) if p else (-1, "", "timeout")

    def json(self, *args):
        st, out, err = self.ctl("--json", *args)
        if not check(f"thpswapctl --json {' '.join(args)}", st == 0, f"exit {st}: {err}"):
            return {}
        return json.loads(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            failures.append("thpswapd did not stop on SIGTERM")
        return err


class Client:
    """obs_client: one command, one answer line."""

    def __init__(self, client_bin, daemon, nreg=NREG):
        env = dict(os.environ, THPSWAP_SOCKET=daemon.sock)
        self.proc = subprocess.Popen([client_bin, str(nreg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        words = self.line().split()
        if len(words) != 3 or words[0] != "ready":
            print(f"obs_client did not start: {words} {self.proc.stderr.read()}")
            sys.exit(1)
        self.pid = int(words[1])

    def line(self):
        r, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        return self.proc.stdout.readline().strip() if r else ""

    def do(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.line()

    def quit(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        err = self.proc.stderr.read()
        check("obs_client exits 0 (every byte read back right)", rc == 0, f"{rc}: {err}")


def client_entry(daemon, pid):
    for c in daemon.json("clients").get("clients", []):
        if c["pid"] == pid:
            return c
    return None


# ---- promotions ----

def case_promotions(bins, d):
    daemon = Daemon(bins["daemon"], bins["ctl"], d, "--pressure-interval", "200")
    client = Client(bins["client"], daemon)
    try:
        c = client_entry(daemon, client.pid)
        check("the client is listed", c is not None)
        if c:
            check("no promotions before any restore", c.get("promotions") == 0,
                  f"{c.get('promotions')}")
        # Evict and read back until a walk of the loop has seen a region
        # evicted and then restored within promotion-window (60 s).
        deadline = time.monotonic() + 30
        promos, cycles = 0, 0
        while time.monotonic() < deadline:
            check("evict", client.do("evict") == f"evicted {NREG}")
            check("touch", client.do("touch").startswith("touched"))
            cycles += 1
            promos = daemon.json("stats", "--pid", str(client.pid)).get("promotions") or 0
            if promos > 0:
                break
        print(f"promotions: {promos} after {cycles} evict/read cycles")
        if not check("the pressure loop counted promotions", promos > 0, "none in 30 s"):
            return
        # The client is still now, but the next walk may still count the
        # last cycle's restores: each view is read between two stats.
        st = daemon.json("stats", "--pid", str(client.pid))
        c = client_entry(daemon, client.pid) or {}
        s = daemon.json("status")
        sums = daemon.json("stats")
        st2 = daemon.json("stats", "--pid", str(client.pid))
        lo, hi = st.get("promotions", -1), st2.get("promotions", -1)
        print(f"stats --pid: promotions {st.get('promotions')} rate {st.get('promotion_rate')} "
              f"working set {st.get('working_set')}; clients: {c.get('promotions')}; "
              f"status: {s.get('promotions')}")
        check("stats --pid: promotions", st.get("promotions", 0) >= promos)
        check("stats --pid: the rate is above zero", (st.get("promotion_rate") or 0) > 0)
        # as the loop's last walk saw it: a region being evicted or
        # restored then is in neither count
        check("stats --pid: the working set is the client's regions",
              0 < (st.get("working_set") or 0) <= NREG, f"{st.get('working_set')}")
        check("clients --json shows the same promotions", lo <= c.get("promotions", -2) <= hi,
              f"{c.get('promotions')} vs {lo}..{hi}")
        check("clients --json: rate above zero", (c.get("promotion_rate") or 0) > 0)
        check("status --json: the sum", lo <= s.get("promotions", -2) <= hi and
              (s.get("promotion_rate") or 0) > 0, f"{s}")
        check("stats --json (all clients): the sum", lo <= sums.get("promotions", -2) <= hi)
        rc, out, _ = daemon.ctl("clients")
        row = [ln.split() for ln in out.splitlines() if ln.split()[:1] == [str(client.pid)]]
        check("clients (text) has the PROMOTED column", "PROMOTED" in out and
              len(row) == 1 and len(row[0]) == 15 and int(row[0][11]) >= lo, out)
        rc, out, _ = daemon.ctl("stats", "--pid", str(client.pid))
        m = re.search(r"^\s+promotions\s+(\d+) \(", out, re.M)
        check("stats (text) says the promotions", m is not None and int(m.group(1)) >= lo, out)
        rc, out, _ = daemon.ctl("status")
        check("status (text) says the promotions", "promotions" in out and "%/min" in out, out)
    finally:
        client.quit()
        daemon.stop()


# ---- metrics ----

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_metrics(text, what):
    """{(name, ((label, value), ...)): value}, and {name: type}; every
    format rule checked."""
    samples, types, helps = {}, {}, set()
    for n, ln in enumerate(text.splitlines(), 1):
        where = f"{what} line {n}: {ln!r}"
        if ln.startswith("# HELP "):
            parts = ln.split(" ", 3)
            check(where + ": HELP has a name and a text", len(parts) == 4 and
                  NAME.match(parts[2]) is not None)
            check(where + ": one HELP per family", parts[2] not in helps)
            helps.add(parts[2])
            continue
        if ln.startswith("# TYPE "):
            parts = ln.split(" ")
            if check(where + ": TYPE has a name and a type", len(parts) == 4 and
                     parts[3] in ("counter", "gauge") and parts[2] in helps):
                check(where + ": one TYPE per family", parts[2] not in types)
                types[parts[2]] = parts[3]
            continue
        m = SAMPLE.match(ln)
        if not check(where + ": a sample", m is not None):
            continue
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        check(where + ": its family has HELP and TYPE above it", name in types and name in helps)
        check(where + ": the family is thpswap's", name.startswith("thpswap_"))
        if types.get(name) == "counter":
            check(where + ": a counter's name ends in _total", name.endswith("_total"))
        try:
            v = float(value)
        except ValueError:
            check(where + ": the value is a number", False)
            continue
        key = (name, tuple(LABEL.findall(labels)))
        check(where + ": each series once", key not in samples)
        samples[key] = v
    return samples, types


# stats --json counter -> metric (name, divisor)
def metric_of(key, counter):
    gauges = {"regions": "regions", "resident": "resident_regions",
              "evicted_zero": "evicted_zero_regions", "evicted_ram": "evicted_ram_regions",
              "stored_bytes": "stored_bytes", "adopt_left_out": "adopt_left_out",
              "agent_bytes": "agent_bytes", "file_bytes": "file_bytes"}
    if key in gauges:
        return gauges[key], 1
    if key.endswith("_ns"):  # evict_ns, kswap_collapse_ns: seconds
        return key[:-3] + "_seconds_total", 1e9
    return key + "_total", 1


def case_metrics(bins, d):
    daemon = Daemon(bins["daemon"], bins["ctl"], d)
    client = Client(bins["client"], daemon)
    try:
        lbl = (("pid", str(client.pid)), ("client", "itest-obs-clien"))
        check("churn", client.do("churn") == "churning")
        st, first, err = daemon.ctl("metrics")
        check("metrics exits 0", st == 0, err)
        # a few evict/restore cycles between the two calls, at least one
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = daemon.json("stats", "--pid", str(client.pid))
            if s.get("counters", {}).get("restores", 0) > NREG:
                break
        st, second, err = daemon.ctl("metrics")
        stopped = client.do("stop")
        print(f"metrics: {len(first.splitlines())} lines; client {stopped}")
        a, types = parse_metrics(first, "first call")
        b, _ = parse_metrics(second, "second call")
        for key, v in a.items():
            if types.get(key[0]) == "counter" and key in b:
                check(f"counter {key} does not decrease", b[key] >= v, f"{v} -> {b[key]}")
        r1 = a.get(("thpswap_client_restores_total", lbl))
        r2 = b.get(("thpswap_client_restores_total", lbl))
        print(f"client restores: {r1} -> {r2}")
        check("the client's restores grew between the calls", r1 is not None and r2 is not None
              and r2 > r1, f"{r1} -> {r2}")

        # the client is still now: metrics and stats --json agree (but the
        # pressure loop may count the last restores as promotions meanwhile)
        before = daemon.json("stats")
        st, text, err = daemon.ctl("metrics")
        m, _ = parse_metrics(text, "still")
        sums = daemon.json("stats")
        per = daemon.json("stats", "--pid", str(client.pid))
        compared = 0
        for key, v in sums.get("counters", {}).items():
            name, div = metric_of(key, True)
            if key == "agent_bytes":
                # The agent's own memory moves while it is still (its
                # pool goes back when idle): there, and plausible.
                got = m.get(("thpswap_client_" + name, lbl))
                check("thpswap_client_agent_bytes is there", got is not None and got > 0, f"{got}")
                compared += 1
                continue
            got = m.get(("thpswap_" + name, ()))
            check(f"thpswap_{name} equals stats --json {key}", got is not None and
                  abs(got - v / div) <= 1e-6 * max(1, v / div), f"{got} vs {v}")
            got = m.get(("thpswap_client_" + name, lbl))
            pv = per.get("counters", {}).get(key)
            check(f"thpswap_client_{name} equals stats --json --pid {key}", got is not None and
                  pv is not None and abs(got - pv / div) <= 1e-6 * max(1, pv / div),
                  f"{got} vs {pv}")
            compared += 2
        check("thpswap_promotions_total is what stats --json says",
              before.get("promotions", -1) <= m.get(("thpswap_promotions_total", ()), -2) <=
              sums.get("promotions", -1))
        check("thpswap_client_promotions_total is what stats --json --pid says",
              m.get(("thpswap_client_promotions_total", lbl), -2) <= per.get("promotions", -1))
        check("thpswap_clients is 1", m.get(("thpswap_clients", ())) == 1)
        print(f"metrics: {compared} values equal to stats --json")

        out = os.path.join(d, "prom", "thpswap.prom")
        os.mkdir(os.path.dirname(out))
        st, text2, err = daemon.ctl("metrics", "--output", out)
        check("metrics --output exits 0 and prints nothing", st == 0 and text2 == "", err)
        left = os.listdir(os.path.dirname(out))
        check("--output leaves only the file", left == ["thpswap.prom"], f"{left}")
        if os.path.exists(out):
            mode = stat.S_IMODE(os.stat(out).st_mode)
            check("--output's file is 0644", mode == 0o644, oct(mode))
            with open(out, encoding="utf-8") as f:
                parse_metrics(f.read(), "--output")
        st, _, err = daemon.ctl("metrics", "--output", os.path.join(d, "nodir", "x.prom"))
        check("--output into a missing directory fails saying why", st == 1 and
              "cannot write" in err, err)
        st, _, err = daemon.ctl("metrics", "extra")
        check("metrics with an argument is a usage error", st == 2, err)
    finally:
        client.quit()
        daemon.stop()


# ---- top ----

def case_top(bins, d):
    daemon = Daemon(bins["daemon"], bins["ctl"], d)
    client = Client(bins["client"], daemon)
    try:
        check("churn", client.do("churn") == "churning")
        st, out, err = daemon.ctl("top", "-n", "2", "-d", "0.2")
        client.do("stop")
        check("top -n 2 exits 0", st == 0, err)
        frames = [f for f in out.split("\x1b[H\x1b[2J") if f]
        check("top -n 2 prints two frames, each after home and clear", len(frames) == 2 and
              out.startswith("\x1b[H\x1b[2J"), f"{len(frames)} frames")
        rows = []
        for n, f in enumerate(frames):
            row = [ln.split() for ln in f.splitlines() if ln.split()[:1] == [str(client.pid)]]
            check(f"frame {n + 1} has the client's line", len(row) == 1, f)
            check(f"frame {n + 1} has the column header", "RESTORE/S" in f and "PROMO" in f, f)
            rows.append(row[0] if row else [])
        print("top:", *(" ".join(r) for r in rows), sep="\n  ")
        # PID COMM RESIDENT(2) EVICTED(2) STORED(2) RATIO RESTORE/S FAULT/S PROMOTED PROMO STALL
        if len(rows) == 2 and len(rows[1]) == 14:
            check("frame 1 has no rates yet", rows[0][9] == "-" and rows[0][10] == "-", rows[0])
            try:
                check("frame 2: restores/s above zero while the client churns",
                      float(rows[1][9]) > 0, rows[1])
                check("frame 2: faults/s above zero", float(rows[1][10]) > 0, rows[1])
                check("sizes with units", rows[1][3] in ("B", "KiB", "MiB", "GiB"), rows[1])
            except ValueError:
                check("frame 2's rates are numbers", False, f"{rows[1]}")
        else:
            check("frame 2's line has every column", False, f"{rows}")
        for args in (["-n", "0"], ["-d", "0.01"], ["-d", "x"], ["extra"]):
            st, _, err = daemon.ctl("top", *args)
            check(f"top {' '.join(args)} is a usage error", st == 2, f"{st} {err}")
    finally:
        client.quit()
        daemon.stop()


# ---- opt-out ----

def case_opt_out(bins, d):
    daemon = Daemon(bins["daemon"], bins["ctl"], d)
    try:
        env = dict(os.environ, THPSWAP_SOCKET=daemon.sock, THPSWAP_DISABLE="1")
        p = run([bins["client"], "1"], env=env)
        check("obs_client with THPSWAP_DISABLE=1: thpswap_open says ECANCELED (exit 3)",
              p is not None and p.returncode == 3 and os.strerror(125) in p.stderr,
              f"{p.returncode if p else None} {p.stderr if p else ''}")
        check("nothing was opened", daemon.json("clients").get("clients") == [])

        # a program that never heard of thpswap, through thpswap-run
        prog = [sys.executable, "-c", "import os, sys\nprint(os.getpid(), flush=True)\n"
                "sys.stdin.read()"]
        for disable in ("1", None):
            env = dict(os.environ, THPSWAP_SOCKET=daemon.sock)
            env.pop("THPSWAP_QUIET", None)
            env.pop("THPSWAP_DISABLE", None)
            if disable:
                env["THPSWAP_DISABLE"] = disable
            rt = os.environ.get("THPSWAP_TEST_SANITIZER_RT")
            if rt:
                # an instrumented preload in a program that is not
                env["LD_PRELOAD"] = rt
                env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
            proc = subprocess.Popen([bins["run"], "--", *prog], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=env)
            r, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
            pid = int(proc.stdout.readline()) if r else -1
            listed = [c["pid"] for c in daemon.json("clients").get("clients", [])]
            _, err = proc.communicate(timeout=TIMEOUT)
            said = [ln for ln in err.splitlines() if "THPSWAP_DISABLE" in ln]
            print(f"thpswap-run, THPSWAP_DISABLE={disable}: pid {pid}, listed {listed}, "
                  f"said {said}")
            if disable:
                check("opted out: not managed", pid > 0 and pid not in listed, f"{listed}")
                check("opted out: says so once", len(said) == 1 and
                      said[0].startswith("thpswap: not managing memory: THPSWAP_DISABLE"),
                      err)
            elif "tsan" in (rt or ""):
                # a ThreadSanitizer build adopts nothing (docs/ARCHITECTURE.md)
                print("ThreadSanitizer build: the program without the switch is not "
                      "managed either; not compared")
            else:
                check("without the switch the same program is managed", pid in listed,
                      f"{pid} not in {listed}: {err}")
                check("without the switch nothing is said about it", not said, err)
            check("the program exits 0", proc.returncode == 0, f"{proc.returncode} {err}")
    finally:
        daemon.stop()


CASES = {"promotions": case_promotions, "metrics": case_metrics, "top": case_top,
         "opt-out": case_opt_out}


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {{{'|'.join(CASES)}}} THPSWAPD THPSWAPCTL OBS_CLIENT "
              "THPSWAP_RUN")
        return 2
    if os.geteuid() != 0:
        print("skip: needs root (thpswapd)")
        return 77
    bins = dict(zip(("daemon", "ctl", "client", "run"), sys.argv[2:]))
    require_kernel(bins["ctl"])
    with tempfile.TemporaryDirectory(prefix="thpswap-obs-") as d:
        CASES[sys.argv[1]](bins, d)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
