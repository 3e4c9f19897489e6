#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Redis scenario of bench/run: one configuration, three phases.

usage: bench/redis.py --config NAME --mode thpswap|kernel --out DIR --build DIR
                      --keys N [--thpswapd PATH] [--backend B --swap-dev DEV]
                      [--seconds S] [--warmup S] [--hot contiguous|scattered]

bench/run sets up the kernel's swap (swap file, zram, zswap) around it; this
runs redis-server (Debian's) on a unix socket of its own, three times:

  cold start:   N keys loaded, every byte of Redis evicted (thpswap:
                `thpswapctl evict --all`; the kernel: its memory cgroup's
                limit pulled down to 4 MiB and back up), then redis-benchmark
                GETs uniformly over all keys; its p50/p99 and the time until
                Redis's anonymous memory is back to 95 % of what it was.
  steady state: Redis held to half its loaded memory (thpswap: thpswapd
                --budget; the kernel: a memory cgroup limit of the same size),
                thpswap-redis-load's skewed GETs (90 % of requests to 10 % of
                the keys), a warm-up then the measured run: throughput, p50/p99,
                memory saved, and the share of Redis's anonymous memory that is
                PMD-mapped afterwards.
  bgsave:       held as in steady state, a short skewed warm-up, everything
                evicted (as at cold start), 3 s of the skewed load (the hot
                keys come back, the cold ones stay out), then BGSAVE
                (to an rdb file in the temporary directory) under the
                skewed load, run in back-to-back slices of BG_SLICE_S: the
                fork's time (latest_fork_usec), the BGSAVE's, the child's
                peak private memory and Rss (smaps_rollup) and the drop of
                MemAvailable, sampled every 20 ms; the load's p50/p99/max and
                throughput before and during it.

Writes DIR/raw/redis--NAME.json, and the daemon's and Redis's logs beside it.
Every process, directory and cgroup it makes is removed on every way out
(SIGTERM included: bench/run sends it when interrupted).
"""
import argparse
import csv
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
RESIDENT_PCT = 95      # "resident again" = anonymous RSS back to this % of loaded
CG_V2 = "/sys/fs/cgroup"
CG_V1 = "/sys/fs/cgroup/memory"
# BGSAVE: the load runs in back-to-back slices this long (thpswap-redis-load
# reports a run as a whole), BG_BEFORE of them before the BGSAVE, and the
# BGSAVE goes BG_LEAD seconds into the first slice after them.
BG_SLICE_S = 0.5
BG_BEFORE = 6
BG_LEAD_S = 0.1
BG_SAMPLE_S = 0.02     # the child's memory and MemAvailable, every this long
BG_TIMEOUT_S = 600


def log(msg):
    print(f"bench/redis.py: {msg}", file=sys.stderr, flush=True)


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def anon_bytes(pid):
    """Redis's anonymous memory in RAM (RssAnon): the arena thpswap stores
    in is shared memory, counted apart as stored bytes."""
    return status_kib(pid, "RssAnon") * 1024


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def zram_used(dev):
    """mem_used_total of a zram device (compressed data + allocator)."""
    with open(f"/sys/block/{os.path.basename(dev)}/mm_stat") as f:
        return int(f.read().split()[2])


def swap_used(dev):
    with open("/proc/swaps") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[0] == dev:
                return int(p[3]) * 1024
    return 0


class Cgroup:
    """A memory cgroup of our own: v2 where the memory controller is there,
    else v1.  Removed (once empty) by close()."""

    def __init__(self, name):
        v2 = os.path.exists(f"{CG_V2}/cgroup.controllers") and \
            "memory" in open(f"{CG_V2}/cgroup.controllers").read().split()
        self.v2 = v2
        self.path = f"{CG_V2 if v2 else CG_V1}/{name}"
        os.mkdir(self.path)

    def _w(self, f, v):
        with open(f"{self.path}/{f}", "w") as fh:
            fh.write(str(v))

    def join(self):
        """In the child, before exec: this process into the cgroup."""
        self._w("cgroup.procs", os.getpid())

    def limit(self, nbytes):
        """nbytes, or None for none.  Lowering it reclaims down to it."""
        if self.v2:
            self._w("memory.max", "max" if nbytes is None else nbytes)
        else:
            self._w("memory.limit_in_bytes", -1 if nbytes is None else nbytes)

    def evict_all(self):
        """Push everything out: v2 memory.reclaim; v1 a limit of 4 MiB
        (the kernel reclaims what it can, EBUSY if not all), then none."""
        try:
            if self.v2:
                self._w("memory.reclaim", 1 << 40)
            else:
                self.limit(4 * MIB)
        except OSError as e:
            log(f"evict all: {e.strerror}: some of Redis stays in RAM")
        if not self.v2:
            self.limit(None)

    def close(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the last task is still exiting
        log(f"could not remove cgroup {self.path}: rmdir it by hand")


class Instance:
    """redis-server on a private unix socket: under thpswap-run with a
    thpswapd of its own, or in a memory cgroup of its own."""

    def __init__(self, a, tmp, tag, budget_mib=0, args=()):
        self.a, self.tmp, self.tag = a, tmp, tag
        self.args = list(args)  # redis-server's, after ours
        self.daemon = self.redis = self.cg = None
        self.sock = f"{tmp}/redis-{tag}.sock"
        self.dsock = f"{tmp}/thpswapd-{tag}.sock"
        self.budget_mib = budget_mib

    def start(self):
        a = self.a
        argv = ["/usr/bin/redis-server", "--port", "0", "--unixsocket", self.sock,
                "--save", "", "--appendonly", "no", "--logfile",
                f"{a.out}/raw/redis--{a.config}-{self.tag}-redis.log"] + self.args
        pre = None
        if a.mode == "thpswap":
            dargs = [a.thpswapd, "--config", "/dev/null", "--socket", self.dsock,
                     "--profile", "fast", "--pressure", "no", "-v"]
            if self.budget_mib:
                dargs += ["--budget", str(self.budget_mib)]
            dlog = open(f"{a.out}/raw/redis--{a.config}-{self.tag}-thpswapd.log", "w")
            self.daemon = subprocess.Popen(dargs, stdout=dlog, stderr=subprocess.STDOUT)
            dlog.close()
            self.wait_for(lambda: self.ctl("status") is not None, "thpswapd to answer")
            argv = [f"{a.build}/run/thpswap-run", "--socket", self.dsock, "--"] + argv
        else:
            self.cg = Cgroup(f"thpswap-bench-redis.{os.getpid()}.{self.tag}")
            pre = self.cg.join
        # This build's preload, not an installed one.
        env = dict(os.environ, THPSWAP_PRELOAD=f"{a.build}/preload/libthpswap-preload.so")
        self.redis = subprocess.Popen(argv, preexec_fn=pre, stdout=subprocess.DEVNULL, env=env)
        self.wait_for(lambda: self.cli("PING") == "PONG", "redis-server to answer PING")

    def wait_for(self, cond, what, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.redis and self.redis.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.redis.returncode}) "
                                   f"while waiting for {what}")
            if cond():
                return
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}")

    def cli(self, *args):
        r = subprocess.run(["/usr/bin/redis-cli", "-s", self.sock, *args],
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    def ctl(self, *args):
        r = subprocess.run([f"{self.a.build}/ctl/thpswapctl", "--socket", self.dsock,
                            "--json", *args], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)

    def client(self):
        """This Redis's line of thpswapctl clients."""
        j = self.ctl("clients") or {}
        for c in j.get("clients", []):
            if c["pid"] == self.redis.pid:
                return c
        return None

    def load(self):
        t = time.monotonic()
        subprocess.run([f"{self.a.build}/bench/thpswap-redis-load", "fill", "--socket", self.sock,
                        "--keys", str(self.a.keys)], check=True)
        n = int(self.cli("DBSIZE") or 0)
        if n != self.a.keys:
            raise RuntimeError(f"DBSIZE {n} after loading {self.a.keys} keys")
        return time.monotonic() - t

    def stop(self):
        if self.redis and self.redis.poll() is None:
            self.cli("SHUTDOWN", "NOSAVE")
            try:
                self.redis.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait()
        if self.daemon and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        if self.cg:
            self.cg.close()
        for p in (self.sock, self.dsock):
            if os.path.exists(p):
                os.unlink(p)


def stored_in_ram(a, inst, base):
    """Bytes the evicted part of Redis takes in RAM, over @base (measured
    before anything was evicted): thpswap's arena, zram's pool, zswap's
    pool; a swap file's are on disk."""
    if a.mode == "thpswap":
        c = inst.client()
        return c["stored_bytes"] if c else 0
    if a.backend == "zram":
        return zram_used(a.swap_dev) - base
    if a.backend == "zswap":
        return meminfo("Zswap") - base
    return 0


def stored_base(a):
    if a.mode == "kernel" and a.backend == "zram":
        return zram_used(a.swap_dev)
    if a.mode == "kernel" and a.backend == "zswap":
        return meminfo("Zswap")
    return 0


def vmstat():
    with open("/proc/vmstat") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def traffic(a, inst):
    """What goes in and out: thpswap's counters for this Redis (regions),
    or the kernel's swap counters (4 KiB pages, the whole machine's)."""
    if a.mode == "thpswap":
        j = inst.ctl("stats", "--pid", str(inst.redis.pid)) or {}
        c = j.get("counters", {})
        return {"unit": "2 MiB regions", "out": c.get("evictions", 0), "in": c.get("restores", 0)}
    v = vmstat()
    return {"unit": "4 KiB pages", "out": v.get("pswpout", 0) + v.get("zswpout", 0),
            "in": v.get("pswpin", 0) + v.get("zswpin", 0)}


def pmd_share(a, pid, addrs=()):
    r = subprocess.run([f"{a.build}/bench/thpswap-pmd-share", str(pid), *addrs],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def pmd_managed(a, inst):
    """The PMD-mapped share of thpswap's resident regions of Redis (the
    share of all its anonymous memory also counts what thpswap does not
    manage: mappings under 2 MiB)."""
    j = inst.ctl("regions", "--pid", str(inst.redis.pid)) or {}
    addrs = [r["addr"] for r in j.get("regions", []) if r["state"] == "resident"]
    return pmd_share(a, inst.redis.pid, addrs) if addrs else None


def sampled(cmd, sample, every, stderr=subprocess.PIPE):
    """Runs @cmd, calling @sample() every @every seconds until it ends;
    killed if anything goes wrong meanwhile (SIGTERM included).  Returns
    its exit status, stdout and stderr.  Neither pipe is read until it
    ends: what writes much (redis-benchmark's progress) must not use one."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        while p.poll() is None:
            sample()
            time.sleep(every)
        out, err = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err


def cold_start(a, tmp):
    inst = Instance(a, tmp, "cold")
    res = {}
    try:
        inst.start()
        res["load_s"] = round(inst.load(), 2)
        pid = inst.redis.pid
        loaded = anon_bytes(pid)
        res["anon_loaded_bytes"] = loaded
        res["used_memory"] = _info(inst, "used_memory")
        res["pmd_loaded"] = pmd_share(a, pid)
        if a.mode == "thpswap":
            res["client_loaded"] = inst.client()  # how much of it thpswap manages
        t = time.monotonic()
        if a.mode == "thpswap":
            ev = inst.ctl("evict", "--pid", str(pid), "--all")
            res["evict"] = ev
        else:
            inst.cg.evict_all()
        res["evict_s"] = round(time.monotonic() - t, 3)
        res["anon_evicted_bytes"] = anon_bytes(pid)
        log(f"{a.config} cold: loaded {loaded // MIB} MiB, "
            f"{res['anon_evicted_bytes'] // MIB} MiB left after eviction")

        # redis-benchmark's __rand_int__ is key:%012d, as loaded.
        n = a.keys * a.cold_passes
        cmd = ["/usr/bin/redis-benchmark", "-s", inst.sock, "-t", "get", "-n", str(n),
               "-r", str(a.keys), "-c", str(a.conns), "--csv"]
        t0 = time.monotonic()
        back_s = None
        samples = []

        def sample():
            nonlocal back_s
            now = time.monotonic() - t0
            rss = anon_bytes(pid)
            samples.append((round(now, 3), rss))
            if back_s is None and rss * 100 >= loaded * RESIDENT_PCT:
                back_s = now

        rc, out, _ = sampled(cmd, sample, 0.02, stderr=subprocess.DEVNULL)
        if rc != 0:
            raise RuntimeError(f"redis-benchmark failed ({rc})")
        res["bench_s"] = round(time.monotonic() - t0, 3)
        rows = list(csv.reader(io.StringIO(out)))
        hdr, vals = rows[0], rows[1]
        b = dict(zip(hdr, vals))
        res["requests"] = n
        res["rps"] = float(b["rps"])
        res["p50_ms"] = float(b["p50_latency_ms"])
        res["p99_ms"] = float(b["p99_latency_ms"])
        res["max_ms"] = float(b["max_latency_ms"])
        res["resident_again_s"] = None if back_s is None else round(back_s, 3)
        res["anon_end_bytes"] = anon_bytes(pid)
        res["rss_samples"] = samples[::5]
        res["pmd_after"] = pmd_share(a, pid)
        if a.mode == "thpswap":
            res["pmd_managed_after"] = pmd_managed(a, inst)
        log(f"{a.config} cold: p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
            f"{RESIDENT_PCT} % back after "
            f"{'(not within the run)' if back_s is None else f'{back_s:.2f} s'}")
    finally:
        inst.stop()
    return res


def _info(inst, key):
    for line in (inst.cli("INFO", "memory") or "").splitlines():
        if line.startswith(key + ":"):
            return int(line.split(":", 1)[1])
    return 0


def load_cmd(a, inst, seconds):
    """thpswap-redis-load's skewed GETs on @inst for @seconds."""
    return [f"{a.build}/bench/thpswap-redis-load", "get", "--socket", inst.sock,
            "--keys", str(a.keys), "--seconds", str(seconds), "--conns", str(a.conns),
            "--hot-keys-pct", str(a.hot_keys_pct), "--hot-pct", str(a.hot_pct), "--hot", a.hot]


def skewed(a, inst, seconds):
    """The skewed load for @seconds; its result, with Redis's anonymous
    memory sampled every 100 ms meanwhile (mean and max): a budget or a
    limit holds it around a level, not at one."""
    anon = []
    rc, out, err = sampled(load_cmd(a, inst, seconds),
                           lambda: anon.append(anon_bytes(inst.redis.pid)), 0.1)
    if rc != 0:
        raise RuntimeError(f"thpswap-redis-load get failed: {err.strip()}")
    res = json.loads(out)
    res["anon_mean_bytes"] = sum(anon) // max(len(anon), 1)
    res["anon_max_bytes"] = max(anon, default=0)
    return res


def held(a, tmp, tag, loaded, args=()):
    """A fresh Redis that start_held() holds to half of @loaded (the cold
    start's): thpswap by its daemon's --budget, the kernel by its memory
    cgroup's limit.  Returns it, the limit in bytes and the phase's result
    so far."""
    limit = loaded // 2
    inst = Instance(a, tmp, tag, budget_mib=limit // MIB if a.mode == "thpswap" else 0,
                    args=args)
    return inst, limit, {"limit_bytes": limit}


def start_held(a, inst, limit, res):
    """Starts @inst, loads it and holds it to @limit; returns Redis's pid."""
    inst.start()
    pid = inst.redis.pid
    res["load_s"] = round(inst.load(), 2)
    if a.mode == "kernel":
        res["anon_loaded_bytes"] = anon_bytes(pid)
        t = time.monotonic()
        inst.cg.limit(limit)
        res["limit_s"] = round(time.monotonic() - t, 3)
        res["cgroup"] = "v2 memory.max" if inst.cg.v2 else "v1 memory.limit_in_bytes"
    else:
        res["budget_mib"] = limit // MIB
    return pid


def steady_state(a, tmp, loaded):
    inst, limit, res = held(a, tmp, "steady", loaded)
    try:
        base = stored_base(a)
        pid = start_held(a, inst, limit, res)
        res["warmup"] = skewed(a, inst, a.warmup)
        t0 = traffic(a, inst)
        res["load"] = skewed(a, inst, a.seconds)
        t1 = traffic(a, inst)
        res["traffic"] = {"unit": t0["unit"], "out": t1["out"] - t0["out"],
                          "in": t1["in"] - t0["in"]}
        # Saved: what it loaded, less its mean anonymous memory over the
        # measured run and what the evicted part takes in RAM at its end.
        anon = res["load"]["anon_mean_bytes"]
        stored = stored_in_ram(a, inst, base)
        res["anon_bytes"] = anon
        res["anon_end_bytes"] = anon_bytes(pid)
        res["stored_ram_bytes"] = stored
        res["saved_bytes"] = loaded - anon - stored
        res["pmd"] = pmd_share(a, pid)
        if a.mode == "thpswap":
            res["pmd_managed"] = pmd_managed(a, inst)
            res["client"] = inst.client()
        elif a.backend in ("swapfile", "zswap"):
            res["swap_used_bytes"] = swap_used(a.swap_dev)
        l = res["load"]
        log(f"{a.config} steady: {l['rps']:.0f} req/s, p50 {l['p50_us'] / 1000:.2f} ms, "
            f"p99 {l['p99_us'] / 1000:.2f} ms, saved {res['saved_bytes'] // MIB} MiB of "
            f"{loaded // MIB}, PMD-mapped {res['pmd']['pmd_pct']:.1f} %")
    finally:
        inst.stop()
    return res


class Resp:
    """A bare RESP connection to Redis's unix socket: a request sent, its
    reply polled for without waiting (Redis answers nothing while it is in
    fork(), and the sampling goes on meanwhile)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, *args):
        m = f"*{len(args)}\r\n" + "".join(f"${len(x.encode())}\r\n{x}\r\n" for x in args)
        self.s.sendall(m.encode())

    def poll(self, timeout=0.0):
        """The reply (a str; an error reply raises), or None if it is not
        all there within @timeout seconds."""
        if select.select([self.s], [], [], timeout)[0]:
            d = self.s.recv(1 << 16)
            if not d:
                raise RuntimeError("Redis closed the connection")
            self.buf += d
        i = self.buf.find(b"\r\n")
        if i < 0:
            return None
        kind, line = self.buf[:1], self.buf[1:i].decode()
        if kind in (b"+", b"-", b":"):
            self.buf = self.buf[i + 2:]
            if kind == b"-":
                raise RuntimeError(f"Redis: {line}")
            return line
        if kind == b"$":
            n = int(line)
            if n < 0:
                self.buf = self.buf[i + 2:]
                return ""
            if len(self.buf) < i + 4 + n:
                return None
            v = self.buf[i + 2:i + 2 + n].decode()
            self.buf = self.buf[i + 4 + n:]
            return v
        raise RuntimeError(f"unexpected reply from Redis: {self.buf[:40]!r}")

    def close(self):
        self.s.close()


def info_fields(text):
    return dict(line.split(":", 1) for line in text.splitlines()
                if ":" in line and not line.startswith("#"))


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def ppid_of(pid):
    try:
        return status_kib(pid, "PPid")
    except OSError:
        return None


def rollup(pid):
    """/proc/PID/smaps_rollup's sizes in bytes, or None (gone, a zombie)."""
    d = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.split()
                if len(v) == 2 and v[1] == "kB":
                    d[k] = int(v[0]) * 1024
    except OSError:
        return None
    return d if "Rss" in d else None


def load_slices(a, inst, more, tick):
    """The skewed load in back-to-back runs of BG_SLICE_S, a next one as
    long as more(runs done) says so, tick() every BG_SAMPLE_S meanwhile;
    the runs' results."""
    runs, p = [], None
    try:
        while True:
            if p is None:
                p = subprocess.Popen(load_cmd(a, inst, BG_SLICE_S), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            tick()
            try:
                p.wait(timeout=BG_SAMPLE_S)
            except subprocess.TimeoutExpired:
                continue
            out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"thpswap-redis-load get failed: {err.strip()}")
            runs.append(json.loads(out))
            p = None
            if not more(len(runs)):
                return runs
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def slices_summary(runs):
    """Slices of the load together: requests and throughput over all of
    them; p50 and p99 the highest of the slices' own (percentiles of
    separate runs do not merge); max the highest."""
    n = sum(r["requests"] for r in runs)
    secs = sum(r["seconds"] for r in runs)
    return {"slices": len(runs), "slice_s": BG_SLICE_S, "requests": n, "seconds": round(secs, 3),
            "rps": round(n / secs, 1) if secs else 0.0,
            "worst_p50_us": max((r["p50_us"] for r in runs), default=None),
            "worst_p99_us": max((r["p99_us"] for r in runs), default=None),
            "max_us": max((r["max_us"] for r in runs), default=None),
            "wrong": sum(r["wrong"] for r in runs),
            "runs": [{k: r[k] for k in ("requests", "seconds", "rps", "p50_us", "p99_us", "max_us")}
                     for r in runs]}


def bgsave(a, tmp, loaded):
    """A BGSAVE of a Redis held to half of @loaded, under the skewed load:
    the child's memory, the system's MemAvailable, the parent's latency."""
    rdb = f"{tmp}/bgsave-{a.config}.rdb"
    # On disk (bench/run's TMPDIR is under /var/tmp), with Redis's default
    # compression.  dir and dbfilename are protected configs in Redis 7:
    # CONFIG SET refuses them, hence on the command line.
    inst, limit, res = held(a, tmp, "bgsave", loaded,
                            args=["--dir", tmp, "--dbfilename", os.path.basename(rdb)])
    child = pid = None
    conns = []
    try:
        pid = start_held(a, inst, limit, res)
        res["warmup"] = skewed(a, inst, min(a.warmup, 5))
        res["rdbcompression"] = ((inst.cli("CONFIG", "GET", "rdbcompression") or "").split()
                                 or [None])[-1]
        res["rdb_dir"] = tmp
        # Everything out, then the skewed load brings the hot keys back:
        # the cold ones are still out when it forks (the budget or limit
        # alone leaves thpswap's Redis mostly resident, see steady state).
        if a.mode == "thpswap":
            res["evict"] = inst.ctl("evict", "--pid", str(pid), "--all")
        else:
            inst.cg.evict_all()
        res["anon_evicted_bytes"] = anon_bytes(pid)

        avail_before = []
        t_before = time.monotonic()

        def tick_before():
            avail_before.append((time.monotonic() - t_before, meminfo("MemAvailable")))

        before = load_slices(a, inst, lambda n: n < BG_BEFORE, tick_before)
        end = avail_before[-1][0] if avail_before else 0
        last = [v for t, v in avail_before if t >= end - 1.0]
        base = sum(last) // max(len(last), 1)
        res["before"] = slices_summary(before)
        res["avail_before_bytes"] = base
        res["avail_before_range_bytes"] = [min(v for _, v in avail_before), max(v for _, v in avail_before)]

        # How much of it is out when it forks (thpswap: the daemon may leave
        # it over its budget, see the steady state's anon).
        res["anon_at_bgsave_bytes"] = anon_bytes(pid)
        if a.mode == "thpswap":
            res["client"] = inst.client()
        bg, info = Resp(inst.sock), Resp(inst.sock)
        conns += [bg, info]
        st = {"sent": None, "forked": None, "done": None, "info_sent": None}
        old = set(children(pid))
        samples = []
        t0 = time.monotonic()

        def tick():
            nonlocal child
            now = time.monotonic()
            if now - t0 > BG_TIMEOUT_S:
                raise RuntimeError(f"BGSAVE not over in {BG_TIMEOUT_S} s")
            if st["sent"] is None:
                if now - t0 < BG_LEAD_S:
                    return
                bg.send("BGSAVE")
                st["sent"] = now = time.monotonic()
            if st["forked"] is None:
                r = bg.poll()
                if r is not None:
                    st["forked"] = time.monotonic()
                    res["bgsave_reply"] = r
            if child is None:
                new = [c for c in children(pid) if c not in old]
                if new:
                    child = new[0]
            ro = rollup(child) if child else None
            samples.append([round(now - st["sent"], 3), meminfo("MemAvailable"),
                            None if ro is None else ro["Rss"],
                            None if ro is None else ro.get("Private_Clean", 0) + ro.get("Private_Dirty", 0),
                            None if ro is None else ro.get("Shared_Clean", 0) + ro.get("Shared_Dirty", 0),
                            anon_bytes(pid)])
            # Over once Redis says no BGSAVE is in progress in an answer
            # to an INFO sent after its BGSAVE returned.
            if st["done"] is None and st["forked"] is not None:
                if st["info_sent"] is None:
                    info.send("INFO", "persistence")
                    st["info_sent"] = time.monotonic()
                r = info.poll(0.005)
                if r is not None:
                    if info_fields(r).get("rdb_bgsave_in_progress") == "0":
                        st["done"] = time.monotonic()
                    st["info_sent"] = None

        during = load_slices(a, inst, lambda n: st["done"] is None, tick)
        t_end = time.monotonic()
        if st["sent"] is None:
            raise RuntimeError("BGSAVE not sent")
        pers = info_fields(inst.cli("INFO", "persistence") or "")
        stats = info_fields(inst.cli("INFO", "stats") or "")
        res["during"] = slices_summary(during)
        # The last slice's part after the BGSAVE was over.
        res["during"]["after_end_s"] = round(t_end - st["done"], 3)
        res["bgsave_s"] = round(st["done"] - st["sent"], 3)
        res["fork_reply_ms"] = round((st["forked"] - st["sent"]) * 1000, 1)
        res["latest_fork_usec"] = int(stats.get("latest_fork_usec", -1))
        res["status"] = pers.get("rdb_last_bgsave_status")
        res["ok"] = res["status"] == "ok"
        res["rdb_last_bgsave_time_sec"] = int(pers.get("rdb_last_bgsave_time_sec", -1))
        res["rdb_last_cow_size"] = int(pers.get("rdb_last_cow_size", -1))
        res["rdb_bytes"] = os.path.getsize(rdb) if os.path.exists(rdb) else None
        res["child_pid"] = child
        # Over the BGSAVE: from the command until Redis saw it over.
        span = [s for s in samples if s[0] <= res["bgsave_s"]]
        res["child_peak_rss_bytes"] = max((s[2] for s in span if s[2] is not None), default=None)
        res["child_peak_private_bytes"] = max((s[3] for s in span if s[3] is not None), default=None)
        res["child_peak_shared_bytes"] = max((s[4] for s in span if s[4] is not None), default=None)
        res["avail_min_bytes"] = min(s[1] for s in span) if span else None
        res["avail_drop_bytes"] = None if not span else base - res["avail_min_bytes"]
        res["samples"] = {"every_s": BG_SAMPLE_S, "columns": ["t_s", "mem_available", "child_rss",
                          "child_private", "child_shared", "parent_anon"], "rows": samples}
        if child is None:
            log(f"{a.config} bgsave: the child was never seen (over within {BG_SAMPLE_S} s?)")
        if not res["ok"]:
            log(f"{a.config} bgsave: rdb_last_bgsave_status {res['status']}")
        b, d = res["before"], res["during"]
        pk = res["child_peak_private_bytes"]
        log(f"{a.config} bgsave: {res['status']} in {res['bgsave_s']:.2f} s, fork "
            f"{res['latest_fork_usec'] / 1000:.1f} ms, child private peak "
            f"{'–' if pk is None else pk // MIB} MiB, MemAvailable -"
            f"{res['avail_drop_bytes'] // MIB} MiB, p99 {b['worst_p99_us'] / 1000:.2f} -> "
            f"{d['worst_p99_us'] / 1000:.2f} ms, {b['rps']:.0f} -> {d['rps']:.0f} req/s")
    finally:
        for c in conns:
            c.close()
        # Cut short while saving: the child goes first (Redis reaps it), or
        # it would outlive a Redis that does not answer SHUTDOWN.
        if child is not None and ppid_of(child) == pid and os.path.exists(f"/proc/{child}"):
            try:
                os.kill(child, signal.SIGKILL)
                for _ in range(40):  # until Redis reaps it (its cron, 10 Hz)
                    if ppid_of(child) != pid:
                        break
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        inst.stop()
        for f in (rdb, f"{tmp}/temp-{child}.rdb"):
            if os.path.exists(f):
                os.unlink(f)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--mode", choices=("thpswap", "kernel"), required=True)
    ap.add_argument("--backend", default="thpswap")
    ap.add_argument("--swap-dev")
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--thpswapd")
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--cold-passes", type=int, default=2,
                    help="cold start: redis-benchmark requests = keys x this")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--hot", choices=("contiguous", "scattered"), default="contiguous")
    ap.add_argument("--hot-pct", type=int, default=90, help="share of GETs to the hot keys")
    ap.add_argument("--hot-keys-pct", type=int, default=10, help="hot keys, %% of all")
    a = ap.parse_args()
    a.thpswapd = a.thpswapd or f"{a.build}/daemon/thpswapd"
    os.makedirs(f"{a.out}/raw", exist_ok=True)

    # SIGTERM (bench/run's cleanup) unwinds through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    res = {"scenario": "redis", "config": a.config, "mode": a.mode, "backend": a.backend,
           "keys": a.keys, "value_bytes": 1000, "conns": a.conns, "hot": a.hot,
           "hot_keys_pct": a.hot_keys_pct, "hot_pct": a.hot_pct, "resident_pct": RESIDENT_PCT,
           "warmup_s": a.warmup, "seconds": a.seconds}
    with tempfile.TemporaryDirectory(prefix="redis.", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        res["cold"] = cold_start(a, tmp)
        res["steady"] = steady_state(a, tmp, res["cold"]["anon_loaded_bytes"])
        # Its failure is reported as such, the phases before it kept.
        try:
            res["bgsave"] = bgsave(a, tmp, res["cold"]["anon_loaded_bytes"])
        except Exception as e:  # noqa: BLE001 (SIGTERM's SystemExit goes through)
            log(f"{a.config} bgsave failed: {e}")
            res["bgsave"] = {"error": str(e)}
    with open(f"{a.out}/raw/redis--{a.config}.json", "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
