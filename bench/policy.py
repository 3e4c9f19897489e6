#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The policy scenario of bench/run: one configuration under memory pressure.

usage: bench/policy.py --config NAME --mode thpswap|kernel|baseline --out DIR
                       --build DIR --size BYTES [--seconds S] [--thpswapd PATH]
                       [--backend B --swap-dev DEV] [--skew 95-5|zipf]
                       [--hot-pct P] [--threads N] [--saving-pct P] [--match-freed BYTES]

bench/run sets up the kernel's swap (zram, zswap) around it.  This runs
thpswap-policy-load's client (SIZE of THP memory, skewed operations, every
page read checked) for S seconds, and, except for the baseline, its balloon
in the same memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max):

  0 .. 10 %     of S: no pressure (--pressure-from-s: that long).
  10 .. 60 %    the balloon grows linearly (touched, mlocked memory) so that
                the client has to give up --saving-pct of SIZE (from
                --pressure-from-s halfway to the end).
  60 .. 100 %   held: the balloon stays; the client's throughput and p99
                over this part are the scenario's numbers.
thpswap: which regions were evicted is read when the pressure begins and
60 s later (the cold set's share then is one of the scenario's targets).

The client's hot set is 20 % of its 2 MiB regions; by default (--skew
rare) every operation goes to it, and each other region is touched about
once every --cold-touch-s seconds.  The limit is the cgroup's usage once the
client is filled, / 0.85.  The kernel (memory.limit_in_bytes, swap behind
it) holds the cgroup at the limit, so the balloon takes limit - (loaded -
saving).  thpswapd (--pressure yes, --pressure-interval 500,
--cgroup-high-pct 90, its default, and --resident-target SIZE - saving;
with --auto none of these: every setting its default, the pressure
--saving-pct) evicts a client whose cgroup is above 90 % of its limit back
to 80 %: its
balloon is 15 % of the limit smaller (the middle of that band), so that both
hold the client at about the same size.  With --match-freed M (bench/run
passes the freed memory, mean over the held phase, of the kernel
configuration that ran before), thpswap is pressed to free M instead of
--saving-pct: its stored bytes are charged to its cgroup and zram's are
not, so the same balloon would make thpswap free more than the kernel
does, and the comparison would not be at the same memory saved.
thpswap's cgroup may not swap
(v1 memory.swappiness 0, v2 memory.swap.max 0), so only thpswap evicts
there even if other swap is on.  thpswap's stored bytes are charged to the
cgroup; zram's are not (both count in "in RAM").

Every second: the client's operations, p50/p99 (its own line), its RssAnon,
the bytes stored for it (thpswap stored_bytes; zram's mem_used_total and
zswap's pool over their level before), promotions (thpswapctl stats; the
kernel: the cgroup's workingset_refault_anon) and swap traffic.  Writes
DIR/raw/policy--NAME.json and the logs beside it; removes the processes,
the cgroup and the daemon it made on every way out (SIGTERM included).
"""
import argparse
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
REGION = 2 * MIB
PRESSURE_FROM, HELD_FROM = 0.10, 0.60
LIMIT_FILL = 0.85          # usage at fill / limit
THPSWAP_HIGH_PCT = 90      # thpswapd evicts above this % of the limit ...
THPSWAP_BAND = 0.10        # ... down to 10 points under it


def log(msg):
    print(f"bench/policy.py: {msg}", file=sys.stderr, flush=True)


# The Redis scenario's readers and cgroup, one copy of each.
_spec = importlib.util.spec_from_file_location(
    "bench_redis", os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis.py"))
R = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(R)


def status_bytes(pid, key):
    try:
        return R.status_kib(pid, key) * 1024
    except OSError:
        return 0


def memstat(cg):
    """The cgroup's memory.stat, as a dict (v1 and v2 name what we read alike)."""
    try:
        with open(f"{cg.path}/memory.stat") as f:
            return {k: int(v) for k, v in (line.split() for line in f)}
    except OSError:
        return {}


def no_swap(cg):
    """The kernel may not swap this cgroup's memory (v1: swappiness 0,
    v2: memory.swap.max 0)."""
    f, v = ("memory.swap.max", "0") if cg.v2 else ("memory.swappiness", "0")
    with open(f"{cg.path}/{f}", "w") as fh:
        fh.write(v)


def cg_usage(cg):
    f = "memory.current" if cg.v2 else "memory.usage_in_bytes"
    with open(f"{cg.path}/{f}") as fh:
        return int(fh.read())


class Run:
    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp
        self.daemon = self.client = self.balloon = self.cg = None
        self.dsock = f"{tmp}/thpswapd.sock"
        self.balloon_bytes = 0
        self.balloon_locked = True

    # ---- processes ----

    def start_daemon(self, resident_target_mib):
        a = self.a
        # --auto: every setting the daemon's own default (no settings
        # file, the bench's socket, and -v for its log).
        dargs = [a.thpswapd, "--config", "/dev/null", "--socket", self.dsock, "-v"]
        if not a.auto:
            dargs[-1:-1] = ["--profile", "fast", "--pressure", "yes", "--pressure-interval",
                            str(a.pressure_interval), "--cgroup-high-pct", str(THPSWAP_HIGH_PCT),
                            "--resident-target", str(resident_target_mib)]
        with open(f"{a.out}/raw/policy--{a.config}-thpswapd.log", "w") as dlog:
            self.daemon = subprocess.Popen(dargs, stdout=dlog, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while self.ctl("status") is None:
            if self.daemon.poll() is not None or time.monotonic() > end:
                raise RuntimeError("thpswapd did not answer (see its log)")
            time.sleep(0.05)
        return dargs

    def ctl(self, *args):
        r = subprocess.run([f"{self.a.build}/ctl/thpswapctl", "--socket", self.dsock,
                            "--json", *args], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def start_client(self):
        a = self.a
        argv = [f"{a.build}/bench/thpswap-policy-load", "client", "--size", str(a.size),
                "--seconds", str(a.seconds), "--skew", a.skew, "--hot-pct", str(a.hot_pct),
                "--cold-touch-s", str(a.cold_touch_s),
                "--threads", str(a.threads)]
        if a.mode == "thpswap":
            argv += ["--socket", self.dsock]
        pre = self.cg.join if self.cg else None
        with open(f"{a.out}/raw/policy--{a.config}-client.log", "w") as elog:
            self.client = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=elog, bufsize=0, preexec_fn=pre)
        self.lines = Lines(self.client.stdout)
        return argv

    def start_balloon(self):
        self.balloon = subprocess.Popen(
            [f"{self.a.build}/bench/thpswap-policy-load", "balloon"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1, preexec_fn=self.cg.join)
        json.loads(self.balloon.stdout.readline())

    def grow_balloon(self, nbytes):
        """The balloon to @nbytes (MiB steps); waits for it."""
        mib = nbytes // MIB
        if mib * MIB <= self.balloon_bytes:
            return
        self.balloon.stdin.write(f"{mib}\n")
        self.balloon.stdin.flush()
        line = self.balloon.stdout.readline()
        if not line:
            raise RuntimeError("the balloon died (OOM-killed in its cgroup?)")
        j = json.loads(line)
        self.balloon_bytes = j["balloon_bytes"]
        self.balloon_locked = self.balloon_locked and j["locked"]

    def say(self, word):
        self.client.stdin.write((word + "\n").encode())

    def stop(self):
        # A second signal (bench/run's trap after a Ctrl-C or a group-wide
        # TERM) must not cut the cleanup short and leave a cgroup behind.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        for p in (self.client, self.balloon):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if self.cg:
            self.cg.close()

    # ---- what is sampled ----

    def stored(self, line, base):
        a = self.a
        if a.mode == "thpswap":
            return line.get("thpswap", {}).get("stored_bytes", 0)
        if a.backend == "zram":
            return R.zram_used(a.swap_dev) - base
        if a.backend == "zswap":
            return R.meminfo("Zswap") - base
        return 0

    def stored_base(self):
        a = self.a
        if a.mode == "kernel" and a.backend == "zram":
            return R.zram_used(a.swap_dev)
        if a.mode == "kernel" and a.backend == "zswap":
            return R.meminfo("Zswap")
        return 0

    def counters(self, line):
        """Cumulative promotions and traffic: thpswap's in 2 MiB regions
        (promotions, restores, evictions), the kernel's in 4 KiB pages (the
        cgroup's workingset_refault_anon and pgmajfault; pages out are the
        machine's pswpout: v1 has no count of its own)."""
        if self.a.mode == "thpswap":
            t = line.get("thpswap", {})
            j = self.ctl("stats", "--pid", str(self.client.pid)) or {}
            return {"promotions": j.get("promotions") or 0,
                    "promotion_rate": j.get("promotion_rate"),
                    "in": t.get("restores", 0), "out": t.get("evictions", 0),
                    "unit_bytes": REGION}
        v = R.vmstat()
        s = memstat(self.cg) if self.cg else {}
        return {"promotions": s.get("workingset_refault_anon", 0),
                "in": s.get("pgmajfault", 0), "out": v.get("pswpout", 0),
                "pswpin": v.get("pswpin", 0), "pswpout": v.get("pswpout", 0),
                "unit_bytes": 4096}


class Lines:
    """Lines of a pipe, with a timeout: a buffered file object would keep
    a second line where select() cannot see it."""

    def __init__(self, f):
        self.fd, self.buf, self.eof = f.fileno(), b"", False

    def get(self, timeout=None):
        """A line within @timeout seconds (None: no limit), "" at the end,
        None on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            left = None if end is None else max(0.0, end - time.monotonic())
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return None
            chunk = os.read(self.fd, 65536)
            self.eof = not chunk
            self.buf += chunk
        line, sep, self.buf = self.buf.partition(b"\n")
        return (line + sep).decode()


def run(a, tmp, res):
    """One configuration, its results into @res as they come (a failure
    half-way leaves what was measured)."""
    p_from, held_at = timeline(a)
    res.update({"scenario": "policy", "config": a.config, "mode": a.mode, "backend": a.backend,
                "size": a.size, "seconds": a.seconds, "skew": a.skew, "hot_pct": a.hot_pct,
                "threads": a.threads, "saving_pct": a.saving_pct,
                "cold_touch_s": a.cold_touch_s, "auto": a.auto,
                "pressure_from_s": round(p_from, 1), "held_from_s": round(held_at, 1)})
    saving = a.size * a.saving_pct // 100
    if a.match_freed is not None and not a.auto:
        saving = min(a.match_freed, a.size) // REGION * REGION
        res["matched_freed_bytes"] = saving
    ru = Run(a, tmp)
    try:
        if a.mode == "thpswap":
            res["daemon_argv"] = ru.start_daemon((a.size - saving) // MIB)
        if a.mode != "baseline":
            ru.cg = R.Cgroup(f"thpswap-bench-policy.{os.getpid()}")
            res["cgroup"] = "v2 memory.max" if ru.cg.v2 else "v1 memory.limit_in_bytes"
            if a.mode == "thpswap":
                # Only thpswap evicts here, whatever swap someone else has on.
                no_swap(ru.cg)
        base = ru.stored_base()
        res["client_argv"] = ru.start_client()
        ready = json.loads(ru.lines.get(300) or "null")
        if not ready or ready.get("event") != "ready":
            raise RuntimeError("the client did not get ready (see its log)")
        res["ready"] = ready
        pid = ru.client.pid
        loaded = status_bytes(pid, "RssAnon")
        res["loaded_bytes"] = loaded
        balloon_target = 0
        if ru.cg:
            u0 = cg_usage(ru.cg)
            limit = int(u0 / LIMIT_FILL) // 4096 * 4096
            balloon_target = limit - (u0 - saving)
            if a.mode == "thpswap":
                balloon_target -= int(limit * (1 - (THPSWAP_HIGH_PCT / 100 - THPSWAP_BAND / 2)))
            ru.cg.limit(limit)
            ru.start_balloon()
            res.update(cgroup_usage_loaded=u0, limit_bytes=limit, balloon_target=balloon_target)
        else:
            limit = 0
        log(f"{a.config}: loaded {loaded // MIB} MiB, "
            + (f"limit {res['limit_bytes'] // MIB} MiB, balloon to {balloon_target // MIB} MiB"
               if ru.cg else "no pressure"))

        samples = res["samples"] = []
        t0 = time.monotonic()
        marked = False
        # The kernel pressed to free what thpswap freed: its stored bytes
        # are not charged to the cgroup, so the balloon alone frees only
        # part of @saving.  A feedback on top of the ramp: each second,
        # half of what is missing from the ramp's share of @saving is
        # added to the balloon (never past the limit less 128 MiB).
        feedback = a.mode == "kernel" and a.match_freed is not None and ru.cg
        extra = 0
        # thpswap: which regions were evicted when the pressure began and
        # 60 s into it (the cold set's share is a target of the scenario).
        looks = {"at_pressure": p_from, "at_pressure_60s": p_from + 60} \
            if a.mode == "thpswap" else {}
        ru.say("go")
        while True:
            now = time.monotonic() - t0
            for k, at in list(looks.items()):
                if now >= at:
                    e = hot_cold_evictions(ru.ctl("regions", "--pid", str(pid)), ready)
                    if e:
                        res[f"evicted_{k}"] = dict(e, t=round(now, 1))
                    del looks[k]
            if ru.balloon and now >= p_from:
                f = min(1.0, (now - p_from) / (held_at - p_from))
                ru.grow_balloon(min(int(balloon_target * f) + extra, limit - 128 * MIB))
            if not marked and now >= held_at:
                ru.say("mark")
                marked = True
            line = ru.lines.get(0.25)
            if line is None:
                continue
            if not line:
                rc = ru.client.wait()
                why = " (SIGKILL: the cgroup's OOM killer?)" if rc == -signal.SIGKILL else ""
                raise RuntimeError(f"the client ended early at {len(samples)} s, "
                                   f"exit {rc}{why}; see its log")
            j = json.loads(line)
            if j.get("event") == "ran":
                res["ran"] = j
                break
            anon = status_bytes(pid, "RssAnon")
            st = ru.stored(j, base)
            s = {"t": j["t"], "ops": j["ops"], "p50_us": j["p50_us"], "p99_us": j["p99_us"],
                 "max_us": j["max_us"], "held": j["held"], "wrong": j["wrong"],
                 "anon_bytes": anon, "shmem_bytes": status_bytes(pid, "RssShmem"),
                 "stored_bytes": st, "in_ram_bytes": anon + st,
                 "freed_bytes": loaded - anon - st, "balloon_bytes": ru.balloon_bytes}
            if ru.cg:
                s["cgroup_bytes"] = cg_usage(ru.cg)
                s["cgroup_swap_bytes"] = memstat(ru.cg).get("swap", 0)
            s.update(ru.counters(j))
            if feedback and now >= p_from and s["freed_bytes"] < saving * f - 8 * MIB:
                extra += int(saving * f - s["freed_bytes"]) // 2
            if "thpswap" in j:
                s["thpswap"] = j["thpswap"]
            samples.append(s)
        res["balloon_bytes"] = ru.balloon_bytes
        res["balloon_locked"] = ru.balloon_locked
        if a.mode == "thpswap":
            res["region_evictions"] = hot_cold_evictions(
                ru.ctl("regions", "--pid", str(pid)), ready)

        # The pressure off before the client reads every page back.
        if ru.balloon:
            ru.balloon.stdin.close()
            ru.balloon.wait()
        if ru.cg:
            ru.cg.limit(None)
        ru.say("verify")
        done = json.loads(ru.lines.get(600) or "null")
        if not done or done.get("event") != "done":
            raise RuntimeError("the client did not finish its check (see its log)")
        res["done"] = done
        res["client_rc"] = ru.client.wait()
        res["summary"] = summarize(res)
        sm = res["summary"]
        log(f"{a.config}: held {sm['ops_per_s']:.0f} ops/s, p99 {sm['p99_us']:.1f} us, "
            f"freed {sm['freed_mean_bytes'] / MIB:.0f} MiB (mean), "
            f"promotions {sm['promotions']}, wrong {sm['wrong']}")
    finally:
        res["balloon_bytes"] = ru.balloon_bytes
        ru.stop()


def timeline(a):
    """When the pressure begins and the held phase: fractions of the run,
    or --pressure-from-s with the held phase halfway from there to the
    end."""
    if a.pressure_from_s is None:
        return a.seconds * PRESSURE_FROM, a.seconds * HELD_FROM
    return a.pressure_from_s, a.pressure_from_s + (a.seconds - a.pressure_from_s) / 2


def hot_cold_evictions(regions, ready):
    """How often thpswap evicted each region of the hot set and of the rest
    over the run (thpswapctl regions' per-region count), from the client's
    base address and its hot region numbers."""
    if not regions or "base" not in ready:
        return None
    base = int(ready["base"], 16)
    hot = set(ready["hot"])
    ev = {(int(r["addr"], 16) - base) // REGION: r.get("evictions", 0)
          for r in regions.get("regions", [])}
    hot_ev = [ev.get(i, 0) for i in hot]
    cold_ev = [n for i, n in ev.items() if i not in hot]
    return {"hot_regions": len(hot_ev), "hot_max": max(hot_ev, default=0),
            "hot_total": sum(hot_ev), "hot_over_once": sum(1 for n in hot_ev if n > 1),
            "cold_regions": len(cold_ev), "cold_total": sum(cold_ev),
            "cold_evicted": sum(1 for n in cold_ev if n > 0)}


def summarize(res):
    held = [s for s in res["samples"] if s["held"]]
    ran = res["ran"]["held"] if res["ran"]["held"]["ops"] else res["ran"]["all"]
    first = held[0] if held else None
    last = res["samples"][-1] if res["samples"] else None
    prev = None
    if first:
        i = res["samples"].index(first)
        prev = res["samples"][i - 1] if i else first
    d = (lambda k: (last[k] or 0) - (prev[k] or 0)) if prev and last else (lambda k: 0)
    unit = last["unit_bytes"] if last else 0
    secs = len(held)

    def mean(k):
        return sum(s[k] for s in held) // max(len(held), 1)

    return {
        "held_seconds": secs,
        "ops_per_s": ran["ops_per_s"], "p50_us": ran["p50_us"], "p99_us": ran["p99_us"],
        "p999_us": ran["p999_us"],
        "freed_mean_bytes": mean("freed_bytes") if held else 0,
        "freed_end_bytes": last["freed_bytes"] if last else 0,
        "in_ram_mean_bytes": mean("in_ram_bytes") if held else 0,
        "stored_end_bytes": last["stored_bytes"] if last else 0,
        "promotions": d("promotions"),
        "promotions_per_min": round(d("promotions") * 60 / secs, 1) if secs else 0,
        "promoted_mib": round(d("promotions") * unit / MIB, 1),
        "in_mib": round(d("in") * unit / MIB, 1),
        "out_mib": round(d("out") * unit / MIB, 1) if last and last["out"] is not None else None,
        "unit_bytes": unit,
        "wrong": max(res["done"]["wrong"], res["ran"]["wrong"]),
        "pages_checked": res["done"]["pages_checked"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--mode", choices=("thpswap", "kernel", "baseline"), required=True)
    ap.add_argument("--backend", default="none")
    ap.add_argument("--swap-dev")
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--thpswapd")
    ap.add_argument("--size", type=int, required=True, help="bytes, a multiple of 2 MiB")
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--skew", choices=("rare", "95-5", "zipf"), default="rare")
    ap.add_argument("--cold-touch-s", type=float, default=60,
                    help="rare: each cold region touched about once in this many seconds")
    ap.add_argument("--hot-pct", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--saving-pct", type=int, default=50,
                    help="what the pressure takes from the client, %% of --size")
    ap.add_argument("--match-freed", type=int,
                    help="press it to free this many bytes (what a configuration of the other "
                         "kind freed in an earlier run), not --saving-pct; not with --auto")
    ap.add_argument("--auto", action="store_true",
                    help="thpswap: thpswapd with its defaults, pressed by --saving-pct")
    ap.add_argument("--pressure-from-s", type=float,
                    help="the pressure begins this many seconds in (default 10 %% of the run), "
                         "the held phase halfway from there to the end")
    ap.add_argument("--pressure-interval", type=int, default=500,
                    help="thpswapd --pressure-interval, ms")
    a = ap.parse_args()
    a.thpswapd = a.thpswapd or f"{a.build}/daemon/thpswapd"
    if a.seconds < 10:
        ap.error("--seconds: at least 10")
    if a.pressure_from_s is not None and not 0 <= a.pressure_from_s < a.seconds - 5:
        ap.error("--pressure-from-s: from 0 to 5 s before the end of the run")
    os.makedirs(f"{a.out}/raw", exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    res = {}
    try:
        with tempfile.TemporaryDirectory(prefix="policy.",
                                         dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
            run(a, tmp, res)
    except (RuntimeError, OSError, ValueError) as e:
        # What was measured up to the failure is kept, with the reason.
        res["error"] = str(e)
        log(f"{a.config}: FAILED: {e}")
    with open(f"{a.out}/raw/policy--{a.config}.json", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    if "error" in res:
        sys.exit(1)
    if res["summary"]["wrong"] or res["client_rc"]:
        log(f"{a.config}: WRONG bytes or a failed client (exit {res['client_rc']})")
        sys.exit(1)


if __name__ == "__main__":
    main()
