#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Put the per-configuration results of thpswap-bench side by side.

usage: bench/report.py OUT

Reads OUT/raw/*.json (one file per configuration and data set), writes
OUT/results.md and OUT/results.json, and prints the markdown.  Every ratio
compares runs made in the same bench/run invocation, on the same data.
"""
import glob
import json
import os
import platform
import sys
import time

MIB = 1 << 20

# The project's targets.  "fast"/"dense" are the thpswap profiles.
# "The kernel" is its best compressed configuration of the same run (zswap or
# zram, whichever did better on that measure).
TARGETS = """\
fast profile: restore p50 <= 0.33x the kernel's (read, write, all faults)
fast profile: restore p99 <= 0.5x the kernel's (read, write, all faults)
fast profile: eviction throughput >= 1.5x the kernel's
fast profile: stored ratio >= 1.0x zswap's
dense profile: stored ratio >= 1.3x zswap's
dense profile: restore p50 <= 0.6x the kernel's (read, write, all faults)
every thpswap configuration: >= 99 % of 2 MiB units PMD-mapped after restore
every thpswap configuration: random reads after restore <= 1.03x before
every thpswap configuration: all-zero region back <= 0.1 ms on read, <= 0.25 ms on write (p50)
file tier: restore p50 <= 0.5x the kernel's swap-in from the same disk (the swap file), read and write
file tier: RAM freed >= 0.98 of what was evicted
kernel tier: >= 99 % of units PMD-mapped within 10 s of their swap-in"""

COMPRESSED = ("zswap", "zram")


def machine():
    m = {"uname": " ".join(x for x in platform.uname() if x), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    m["cpu"] = line.split(":", 1)[1].strip()
                    break
        m["cpus"] = os.cpu_count()
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    m["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
        for k in ("enabled", "defrag"):
            with open("/sys/kernel/mm/transparent_hugepage/" + k) as f:
                m["thp_" + k] = f.read().strip()
    except OSError:
        pass
    return m


def g(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d or d[p] is None:
            return default
        d = d[p]
    return d


def ms(us):
    return "–" if us is None or us == 0 else f"{us / 1000:.2f}"


def fnum(v, fmt="{:.2f}"):
    return "–" if v is None else fmt.format(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def profile_of(r):
    """fast, dense or None, from the daemon arguments."""
    args = r.get("daemon_args") or []
    prof = None
    for i, a in enumerate(args):
        if a == "--profile" and i + 1 < len(args):
            prof = args[i + 1]
        elif a.startswith("--profile="):
            prof = a.split("=", 1)[1]
    if any(a.startswith(("--zstd-level", "--codec")) for a in args):
        return None  # a codec or level override is neither profile as specified
    return prof


def row(r, phase):
    p = r[phase]
    ev, mem, rs = p["evict"], p["memory"], p["restore"]
    units = p["units"]
    rr = p.get("random_read") or {}
    cpu_c = (ev.get("client_cpu_s") or 0) + (rs.get("client_cpu_s") or 0)
    cpu_d = (ev.get("daemon_cpu_s") or 0) + (rs.get("daemon_cpu_s") or 0)
    data = r["data"]["name"] if phase == "result" else "all-zero region"
    return {
        "config": r["config"],
        "data": data,
        "evicted": f'{ev["evicted_units"]}/{units}',
        "evict_ms_p50": ms(g(ev, "per_unit", "p50_us")),
        "evict_mib_s": fnum(ev.get("throughput_mib_s"), "{:.0f}"),
        "read_p50": ms(g(rs, "read", "p50_us")),
        "read_p99": ms(g(rs, "read", "p99_us")),
        "write_p50": ms(g(rs, "write", "p50_us")),
        "write_p99": ms(g(rs, "write", "p99_us")),
        "released_mib": str(round(mem["released"] / MIB)),
        "stored_mib": str(round(mem["stored"] / MIB)),
        "ratio": fnum(mem.get("stored_ratio")),
        "pmd": f'{100.0 * p["pmd"]["after"] / units:.1f}' if units else "–",
        "rand": (f'{rr["before_ns"]:.0f}→{rr["after_ns"]:.0f} ({rr["slowdown"]:.2f}x)'
                 if rr else "–"),
        "cpu": f"{cpu_c:.2f} / {cpu_d:.2f}",
        "splits": str(g(ev, "vmstat", "thp_split_pmd", default=0) +
                      g(rs, "vmstat", "thp_split_pmd", default=0)),
        "wrong": str(p["wrong_units"]),
        "agent": (f'{mem["agent_bytes"] / MIB:.1f}' if mem.get("agent_bytes") is not None
                  else "–"),
    }


COLS = [
    ("config", "config"), ("data", "data"), ("evicted", "evicted"),
    ("evict_ms_p50", "evict ms/2M p50"), ("evict_mib_s", "evict MiB/s"),
    ("read_p50", "read p50 ms"), ("read_p99", "read p99 ms"),
    ("write_p50", "write p50 ms"), ("write_p99", "write p99 ms"),
    ("released_mib", "released MiB"), ("stored_mib", "stored MiB"), ("ratio", "ratio"),
    ("pmd", "PMD after %"), ("rand", "rand read ns before→after (slowdown)"),
    ("cpu", "CPU s client / daemon"), ("splits", "PMD splits"), ("wrong", "wrong"),
    ("agent", "agent MiB"),
]


def table(rows):
    out = ["| " + " | ".join(h for _, h in COLS) + " |",
           "|" + "|".join("---" for _ in COLS) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r[k] for k, _ in COLS) + " |")
    return "\n".join(out)


RESTORE_PARTS = ("wait", "queue", "pool", "decompress", "move", "commit", "wake", "touch_rest")
EVICT_PARTS = ("find", "claim", "stage", "move", "compress", "store", "commit", "return")


def us(v):
    return "–" if v is None else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def breakdown(runs):
    """Where the time of restores and evictions went (thpswap runs): the mean
    of each part over the restores ranked 45..55 % (p50) and the slowest 1 %
    (p99), in microseconds; docs/BENCHMARKS.md says what each part is."""
    rs, ev = [], []
    for r in runs:
        for phase in ("result", "zero_region"):
            bd = g(r, phase, "breakdown")
            if not bd:
                continue
            data = r["data"]["name"] if phase == "result" else "all-zero region"
            for kind in ("read", "write"):
                for band in ("p50", "p99"):
                    b = bd[kind][band]
                    rs.append("| " + " | ".join(
                        [r["config"], data, kind, band, f'{b["matched"]}/{b["n"]}', us(b["lat_us"])] +
                        [us(b.get(k + "_us")) for k in RESTORE_PARTS] +
                        [str(b["pool_misses"]), f'{b["copy_in"]}/{b["not_pmd"]}', str(b["eagain"])]) + " |")
            if phase != "result":
                continue
            for band in ("p50", "p99"):
                b = bd["evict"][band]
                ev.append("| " + " | ".join(
                    [r["config"], data, band, f'{b["matched"]}/{b["n"]}', us(b["lat_us"])] +
                    [us(b.get(k + "_us")) for k in EVICT_PARTS] + [str(b["zero"])]) + " |")
    if not rs:
        return []
    md = ["## Where a restore's time goes (µs, mean per band)", "",
          "| config | data | fault | band | sampled | latency | " + " | ".join(RESTORE_PARTS) +
          " | pool misses | copy-in / not PMD | EAGAIN |",
          "|" + "|".join("---" for _ in range(6 + len(RESTORE_PARTS) + 3)) + "|"] + rs
    md += ["", "Evictions (µs, mean per band):", "",
           "| config | data | band | sampled | latency | " + " | ".join(EVICT_PARTS) + " | zero |",
           "|" + "|".join("---" for _ in range(5 + len(EVICT_PARTS) + 1)) + "|"] + ev
    return md + [""]


def lat(r, phase, kind, q):
    return g(r, phase, "restore", kind, q + "_us")


def all_evicted(r):
    return g(r, "result", "evict", "evicted_units") == g(r, "result", "units")


def best_kernel(ks, get, lower):
    """(value, config) of the best kernel run in @ks on measure @get."""
    vals = [(get(k), k["config"]) for k in ks if get(k) is not None]
    if not vals:
        return None, None
    return (min if lower else max)(vals, key=lambda v: v[0])


def against_best(t, ks, get, lower):
    """thpswap run @t's measure over the best kernel run's: (ratio, config)."""
    v, cfg = best_kernel(ks, get, lower)
    return ratio(get(t), v), cfg


def compare(t, z):
    """thpswap run @t against kernel run @z (same data).  Restore latencies
    compare only when both evicted every unit: a unit kept resident (thpswap
    keeps incompressible ones) has no restore to time."""
    c = {}
    both = all_evicted(t) and all_evicted(z)
    for kind in ("read", "write", "all"):
        for q in ("p50", "p99"):
            c[f"restore_{kind}_{q}"] = (ratio(lat(t, "result", kind, q), lat(z, "result", kind, q))
                                        if both else None)
    c["stored_ratio"] = ratio(g(t, "result", "memory", "stored_ratio"),
                              g(z, "result", "memory", "stored_ratio"))
    c["evict_throughput"] = ratio(g(t, "result", "evict", "throughput_mib_s"),
                                  g(z, "result", "evict", "throughput_mib_s"))
    c["random_read_slowdown"] = g(t, "result", "random_read", "slowdown")
    c["random_read_slowdown_kernel"] = g(z, "result", "random_read", "slowdown")
    return c


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def le(v, lim):
    return None if v is None else v <= lim


def ge(v, lim):
    return None if v is None else v >= lim


def targets(runs, data):
    """[(target, config, measured, verdict)] on data set @data."""
    res = []
    on = [r for r in runs if r["data"]["name"] == data]
    zs = [r for r in on if r["backend"] == "zswap"]
    z = zs[0] if zs else None
    ks = [r for r in on if r["backend"] in COMPRESSED]
    # Latencies compare only where every unit was evicted (see compare).
    ks_all = [k for k in ks if all_evicted(k)]
    ts = [r for r in on if r["mode"] == "thpswap"]
    fast = [r for r in ts if profile_of(r) == "fast"]
    files = [r for r in ts if any(a.startswith("--tiers") and "file" in a
                                  for a in r.get("daemon_args") or [])]
    sw = [r for r in on if r["backend"] == "swapfile" and all_evicted(r)]
    dense = [r for r in ts if profile_of(r) == "dense"]

    def add(name, r, v, ok):
        res.append({"target": name, "config": r["config"] if r else "–",
                    "measured": v, "verdict": verdict(ok)})

    def vs_best(r, name, pool, get, lower, lim, good):
        v, cfg = against_best(r, pool, get, lower) if r else (None, None)
        add(f"{name} (vs {cfg or 'no kernel run'})", r, fnum(v, "{:.2f}x"), good(v, lim))

    def evict_tp(r):
        return g(r, "result", "evict", "throughput_mib_s")

    def lat_of(kind, q):
        return lambda r: lat(r, "result", kind, q)

    for r in fast or [None]:
        ok = r is not None and all_evicted(r)
        for q, lim in (("p50", 0.33), ("p99", 0.5)):
            for kind in ("read", "write", "all"):
                vs_best(r if ok else None, f"restore {q} ({kind}) <= {lim}x the kernel's",
                        ks_all, lat_of(kind, q), True, lim, le)
        vs_best(r, "eviction throughput >= 1.5x the kernel's", ks, evict_tp, False, 1.5, ge)
        c = compare(r, z) if r and z else {}
        v = c.get("stored_ratio")
        add("stored ratio >= 1.0x zswap's", r, fnum(v, "{:.2f}x"), ge(v, 1.0))
    for r in files:
        ok = all_evicted(r)
        for kind in ("read", "write"):
            vs_best(r if ok else None, f"file tier: restore p50 ({kind}) <= 0.5x the swap file's",
                    sw, lat_of(kind, "p50"), True, 0.5, le)
        ev = g(r, "result", "evict", "evicted_units")
        # Net of what the arena still holds in RAM (its shared memory).
        rel = g(r, "result", "memory", "released")
        sh = max(g(r, "result", "memory", "shmem_delta", default=0),
                 g(r, "result", "memory", "stored", default=0))
        v = (rel - sh) / (ev * MIB * 2) if ev and rel is not None else None
        add("file tier: RAM freed >= 0.98 of what was evicted", r, fnum(v, "{:.3f}"), ge(v, 0.98))
    for r in (x for x in ts if "--pageout" in (x.get("argv") or []) or
              g(x, "result", "pmd", "collapsed") is not None):
        units = g(r, "result", "units")
        col = g(r, "result", "pmd", "collapsed")
        v = 100.0 * col / units if units and col is not None else None
        t = g(r, "result", "pmd", "collapse_s")
        add("kernel tier: >= 99 % PMD-mapped within 10 s of swap-in", r,
            fnum(v, "{:.1f} %") + (f" in {t:.2f} s" if t is not None else ""), ge(v, 99.0))
    for r in dense or [None]:
        c = compare(r, z) if r and z else {}
        v = c.get("stored_ratio")
        add("stored ratio >= 1.3x zswap's", r, fnum(v, "{:.2f}x"), ge(v, 1.3))
        ok = r is not None and all_evicted(r)
        for kind in ("read", "write", "all"):
            vs_best(r if ok else None, f"restore p50 ({kind}) <= 0.6x the kernel's",
                    ks_all, lat_of(kind, "p50"), True, 0.6, le)
    for r in ts or [None]:
        units = g(r, "result", "units") if r else None
        pmd = g(r, "result", "pmd", "after") if r else None
        v = 100.0 * pmd / units if units and pmd is not None else None
        add(">= 99 % PMD-mapped after restore", r, fnum(v, "{:.1f} %"), ge(v, 99.0))
        v = g(r, "result", "random_read", "slowdown") if r else None
        add("random reads after restore <= 1.03x before", r, fnum(v, "{:.3f}x"), le(v, 1.03))
        v = lat(r, "zero_region", "read", "p50") if r else None
        add("all-zero region read <= 0.1 ms (p50)", r, ms(v) + " ms" if v else "–",
            le(v, 100.0))
        v = lat(r, "zero_region", "write", "p50") if r else None
        add("all-zero region write <= 0.25 ms (p50)", r, ms(v) + " ms" if v else "–",
            le(v, 250.0))
    return res


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py OUT")
    out = sys.argv[1]
    runs = []
    for p in sorted(glob.glob(os.path.join(out, "raw", "*.json"))):
        with open(p) as f:
            try:
                runs.append(json.load(f))
            except json.JSONDecodeError as e:
                print(f"report.py: {p}: {e}; skipped", file=sys.stderr)
    if not runs:
        sys.exit(f"report.py: no results in {out}/raw: did every configuration fail?")

    order = {"thpswap": 0, "swapfile": 1, "loop": 2, "zram": 3, "zswap": 4}
    runs.sort(key=lambda r: (r["data"]["name"] != "heapmix", r["data"]["name"],
                             order.get(r["backend"], 9), r["config"]))
    rows = [row(r, "result") for r in runs]
    zrows = [row(r, "zero_region") for r in runs
             if r.get("zero_region") and r["data"]["name"] == runs[0]["data"]["name"]]

    datas = []
    for r in runs:
        if r["data"]["name"] not in datas:
            datas.append(r["data"]["name"])
    main_data = "heapmix" if "heapmix" in datas else datas[0]

    comparisons = []
    for d in datas:
        ks = [r for r in runs if r["data"]["name"] == d and r["backend"] in COMPRESSED]
        for t in (r for r in runs if r["data"]["name"] == d and r["mode"] == "thpswap"):
            for k in ks:
                comparisons.append({"data": d, "config": t["config"], "vs": k["config"],
                                    **compare(t, k)})
    tg = targets(runs, main_data)
    mach = machine()
    meta = {"command": os.environ.get("BENCH_COMMAND", "bench/run"),
            "args": os.environ.get("BENCH_ARGS", ""),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": mach}

    md = [f"# thpswap benchmark — {meta['date']}", "",
          f"Command: `{meta['command']}` ({meta['args']})  ",
          f"Machine: {mach.get('uname')}; {mach.get('cpu')} × {mach.get('cpus')}; "
          f"{mach.get('memory_gib')} GiB; THP enabled={mach.get('thp_enabled')}", "",
          "Data:"]
    for d in datas:
        r = next(r for r in runs if r["data"]["name"] == d)
        md.append(f"- **{d}** ({r['data']['bytes'] // MIB} MiB): {r['data']['composition']}")
    md += ["", "## Results", "", table(rows), ""]
    if zrows:
        md += ["## All-zero region", "", table(zrows), ""]
    md += breakdown(runs)
    md += ["## Ratios (thpswap ÷ each compressed kernel configuration, same run, same data)", ""]
    if comparisons:
        md += ["| data | config | vs | read p50 | read p99 | write p50 | write p99 | all p50 | all p99 "
               "| stored ratio | evict throughput | rand-read slowdown (kernel's) |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in comparisons:
            md.append("| " + " | ".join([
                c["data"], c["config"], c["vs"],
                *(fnum(c[f"restore_{k}_{q}"], "{:.2f}x") for k in ("read", "write", "all")
                  for q in ("p50", "p99")),
                fnum(c["stored_ratio"], "{:.2f}x"), fnum(c["evict_throughput"], "{:.2f}x"),
                f'{fnum(c["random_read_slowdown"], "{:.3f}x")} '
                f'({fnum(c["random_read_slowdown_kernel"], "{:.3f}x")})']) + " |")
    else:
        md.append("No zswap or zram run to compare with (or no thpswap run).")
    md += ["", f"## Targets (on {main_data})", "", "| target | config | measured | |", "|---|---|---|---|"]
    for t in tg:
        md.append(f'| {t["target"]} | {t["config"]} | {t["measured"]} | **{t["verdict"]}** |')
    md.append("")
    text = "\n".join(md)

    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "comparisons": comparisons, "targets": tg},
                  f, indent=2)
        f.write("\n")
    print(text)
    for t in tg:
        print(f'{t["verdict"]:4}  {t["target"]} [{t["config"]}]: {t["measured"]}', file=sys.stderr)


if __name__ == "__main__":
    main()
