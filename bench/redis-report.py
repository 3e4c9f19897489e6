#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Put the Redis scenario's configurations side by side.

usage: bench/redis-report.py OUT

Reads OUT/raw/redis--*.json (bench/redis.py, one per configuration), writes
OUT/redis.md and OUT/redis.json, and prints the markdown.  Every ratio is
thpswap over the best kernel configuration of the same bench/run.
"""
import glob
import json
import os
import sys
import time

MIB = 1 << 20
# "The same memory saved": within this fraction of the kernel's.
SAVED_TOLERANCE = 0.9


def fnum(v, fmt="{:.2f}"):
    return "–" if v is None else fmt.format(v)


def g(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d


def cold_row(r):
    c = r["cold"]
    return [r["config"], str(c["anon_loaded_bytes"] // MIB), str(c["anon_evicted_bytes"] // MIB),
            fnum(c["evict_s"]), fnum(c["p50_ms"], "{:.3f}"), fnum(c["p99_ms"], "{:.3f}"),
            fnum(c["rps"], "{:.0f}"),
            fnum(c["resident_again_s"]) if c["resident_again_s"] is not None
            else f'not in {c["bench_s"]:.1f} s',
            fnum(g(c, "pmd_after", "pmd_pct"), "{:.1f}"),
            fnum(g(c, "pmd_managed_after", "pmd_pct"), "{:.1f}")]


COLD_COLS = ["config", "loaded MiB", "left after eviction MiB", "evict s", "GET p50 ms",
             "GET p99 ms", "req/s", "resident again after s", "PMD-mapped after %",
             "of thpswap's regions %"]


def steady_row(r):
    s, l = r["steady"], r["steady"]["load"]
    loaded = r["cold"]["anon_loaded_bytes"]
    return [r["config"], str(s["limit_bytes"] // MIB), fnum(l["rps"], "{:.0f}"),
            fnum(l["p50_us"] / 1000, "{:.3f}"), fnum(l["p99_us"] / 1000, "{:.3f}"),
            fnum(l["p999_us"] / 1000, "{:.3f}"),
            f'{s["saved_bytes"] // MIB} ({100 * s["saved_bytes"] / loaded:.0f} %)',
            str(s["anon_bytes"] // MIB), str(s["stored_ram_bytes"] // MIB),
            f'{s["traffic"]["out"]} / {s["traffic"]["in"]} {s["traffic"]["unit"]}'
            if s.get("traffic") else "–",
            fnum(s["pmd"]["pmd_pct"], "{:.1f}"), fnum(g(s, "pmd_managed", "pmd_pct"), "{:.1f}"),
            str(l["wrong"])]


STEADY_COLS = ["config", "limit MiB", "req/s", "p50 ms", "p99 ms", "p99.9 ms",
               "saved MiB (% of loaded)", "Redis anon MiB (mean)", "stored in RAM MiB",
               "out / in during the run",
               "PMD-mapped %", "of thpswap's regions %", "wrong"]


def table(cols, rows):
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def targets(ts, ks):
    """[{target, config, measured, verdict}]: each thpswap run against the
    best kernel run on each measure."""
    res = []

    def add(name, t, v, ok):
        res.append({"target": name, "config": t["config"] if t else "–", "measured": v,
                    "verdict": verdict(ok)})

    for t in ts or [None]:
        tl = g(t, "steady", "load") if t else None
        kp = [k for k in ks if g(k, "steady", "load", "p99_us")]
        if tl and kp:
            best = min(kp, key=lambda k: k["steady"]["load"]["p99_us"])
            v = tl["p99_us"] / best["steady"]["load"]["p99_us"]
            add(f'steady p99 <= 0.5x the kernel\'s (vs {best["config"]})', t,
                f"{v:.2f}x", v <= 0.5)
        else:
            add("steady p99 <= 0.5x the kernel's (no kernel run)", t, "–", None)
        kr = [k for k in ks if g(k, "steady", "load", "rps")]
        if tl and kr:
            best = max(kr, key=lambda k: k["steady"]["load"]["rps"])
            v = tl["rps"] / best["steady"]["load"]["rps"]
            saved = t["steady"]["saved_bytes"] / max(best["steady"]["saved_bytes"], 1)
            add(f'steady throughput >= 1.2x the kernel\'s at the same memory saved '
                f'(vs {best["config"]})', t, f"{v:.2f}x, saved {saved:.2f}x",
                v >= 1.2 and saved >= SAVED_TOLERANCE)
        else:
            add("steady throughput >= 1.2x the kernel's (no kernel run)", t, "–", None)
        v = g(t, "steady", "pmd", "pmd_pct") if t else None
        add(">= 99 % of Redis's memory PMD-mapped (steady, after)", t, fnum(v, "{:.1f} %"),
            None if v is None else v >= 99.0)
        v = g(t, "steady", "pmd_managed", "pmd_pct") if t else None
        add(">= 99 % of thpswap's resident regions PMD-mapped (steady, after)", t,
            fnum(v, "{:.1f} %"), None if v is None else v >= 99.0)
    for k in ks:
        v = g(k, "steady", "pmd", "pmd_pct")
        res.append({"target": "the kernel: PMD-mapped (about 0 % expected)", "config": k["config"],
                    "measured": fnum(v, "{:.1f} %"), "verdict": "info"})
    return res


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: redis-report.py OUT")
    out = sys.argv[1]
    runs = []
    for p in sorted(glob.glob(os.path.join(out, "raw", "redis--*.json"))):
        with open(p) as f:
            try:
                runs.append(json.load(f))
            except json.JSONDecodeError as e:
                print(f"redis-report.py: {p}: {e}; skipped", file=sys.stderr)
    if not runs:
        sys.exit(f"redis-report.py: no results in {out}/raw: did every configuration fail?")
    order = {"thpswap": 0, "swapfile": 1, "zram": 2, "zswap": 3}
    runs.sort(key=lambda r: (order.get(r["backend"], 9), r["config"]))
    ts = [r for r in runs if r["mode"] == "thpswap"]
    ks = [r for r in runs if r["mode"] == "kernel"]
    tg = targets(ts, ks)
    r0 = runs[0]
    meta = {"command": os.environ.get("BENCH_COMMAND", "bench/run --scenario redis"),
            "args": os.environ.get("BENCH_ARGS", ""),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "uname": " ".join(os.uname())}
    md = [f"# thpswap Redis scenario — {meta['date']}", "",
          f"Command: `{meta['command']}` ({meta['args']})  ", f"Machine: {meta['uname']}", "",
          f"Data: {r0['keys']} keys of {r0['value_bytes']} bytes; skewed load: "
          f"{r0['hot_pct']} % of GETs to {r0['hot_keys_pct']} % of the keys ({r0['hot']}), "
          f"{r0['conns']} connections, {r0['warmup_s']:.0f} s warm-up, "
          f"{r0['seconds']:.0f} s measured.", "",
          "## Cold start (everything evicted, then redis-benchmark GETs over all keys)", "",
          table(COLD_COLS, [cold_row(r) for r in runs]), "",
          "## Steady state (held to half the loaded memory, skewed GETs)", "",
          table(STEADY_COLS, [steady_row(r) for r in runs]), "",
          "## Targets", "", "| target | config | measured | |", "|---|---|---|---|"]
    md += [f'| {t["target"]} | {t["config"]} | {t["measured"]} | **{t["verdict"]}** |' for t in tg]
    md.append("")
    text = "\n".join(md)
    with open(os.path.join(out, "redis.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "redis.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "targets": tg}, f, indent=2)
        f.write("\n")
    print(text)


if __name__ == "__main__":
    main()
