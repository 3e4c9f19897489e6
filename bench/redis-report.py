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


def mib(v):
    return "–" if v is None else str(v // MIB)


def ms(v):
    return fnum(None if v is None else v / 1000, "{:.3f}")


def bgsave_row(r):
    b = r["bgsave"]
    if b.get("error"):
        return [r["config"], f'failed: {b["error"]}'] + ["–"] * (len(BGSAVE_COLS) - 2)
    be, du = b["before"], b["during"]
    return [r["config"], mib(b["limit_bytes"]), mib(b.get("anon_at_bgsave_bytes")), "ok" if b["ok"] else f'**{b["status"]}**',
            fnum(b["latest_fork_usec"] / 1000, "{:.1f}"), fnum(b["bgsave_s"]),
            mib(b["child_peak_private_bytes"]), mib(b["child_peak_rss_bytes"]),
            mib(b["avail_drop_bytes"]),
            mib(b["avail_before_range_bytes"][1] - b["avail_before_range_bytes"][0]),
            mib(b["rdb_bytes"]),
            f'{ms(be["worst_p50_us"])} → {ms(du["worst_p50_us"])}',
            f'{ms(be["worst_p99_us"])} → {ms(du["worst_p99_us"])}',
            f'{ms(be["max_us"])} → {ms(du["max_us"])}',
            f'{be["rps"]:.0f} → {du["rps"]:.0f}']


BGSAVE_COLS = ["config", "limit MiB", "Redis anon MiB at BGSAVE", "save", "fork ms", "BGSAVE s", "child peak private MiB",
               "child peak Rss MiB", "MemAvailable drop MiB", "its spread before MiB", "rdb MiB",
               "p50 ms before → during", "p99 ms before → during", "max ms before → during",
               "req/s before → during"]

BGSAVE_TEXT = (
    "Another fresh Redis, held to half the loaded memory as in the steady state, warmed up "
    "with the skewed load, everything evicted (as at cold start), {before} runs of the skewed "
    "load (the hot keys come back, the cold ones stay out), then `BGSAVE` (to an rdb file on "
    "disk, compressed) under that load. "
    "*Redis anon MiB at BGSAVE*: its `RssAnon` right before (what is evicted is the rest). "
    "*fork ms*: Redis's `latest_fork_usec`, the parent's time in fork() (thpswap fills the "
    "child with every evicted region before fork returns). *BGSAVE s*: from the command until "
    "`INFO persistence` says none is in progress (polled every 20 ms). *child peak private "
    "MiB*: the child's `Private_Clean`+`Private_Dirty` (`/proc/PID/smaps_rollup`, every 20 ms), "
    "memory only the child maps (the kernel: a page it read back from swap is in the swap "
    "cache, counted the child's until the parent maps it too); *child peak Rss MiB*: its `Rss`, shared pages included. "
    "*MemAvailable drop MiB*: `/proc/meminfo`'s MemAvailable over the last second before the "
    "BGSAVE (mean), less its lowest while it ran; *its spread before*: its highest less its lowest over the "
    "load before the BGSAVE, what else on the machine moves it by. *rdb MiB*: the file "
    "written. The load runs in back-to-back runs of {slice} s (thpswap-redis-load reports a "
    "run as a whole): *before* is {before} of them right before the BGSAVE, *during* those from "
    "the one it was issued in until the one it ended in; p50 and p99 are the highest of the "
    "runs' own, max the highest request, req/s over all of them.")


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
          table(STEADY_COLS, [steady_row(r) for r in runs]), ""]
    bg = [r for r in runs if r.get("bgsave")]
    if bg:
        b0 = next((r["bgsave"] for r in bg if "before" in r["bgsave"]), {})
        md += ["## BGSAVE (everything evicted, the hot keys back, skewed GETs meanwhile)", "",
               table(BGSAVE_COLS, [bgsave_row(r) for r in bg]), "",
               BGSAVE_TEXT.format(slice=g(b0, "before", "slice_s") or "–",
                                  before=g(b0, "before", "slices") or "–"), ""]
    md += ["## Targets", "", "| target | config | measured | |", "|---|---|---|---|"]
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
