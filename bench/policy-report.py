#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Put the policy scenario's configurations side by side, and plot them.

usage: bench/policy-report.py OUT

Reads OUT/raw/policy--*.json (bench/policy.py, one per configuration),
writes OUT/policy.md and OUT/policy.json, prints the markdown, and, with
matplotlib (apt-get install python3-matplotlib), OUT/policy.png: memory
freed, promotions and operations per second over time, per configuration.
Throughput and p99 are compared with the baseline of the same run.
"""
import glob
import importlib.util
import json
import os
import sys
import time

MIB = 1 << 20


def fnum(v, fmt="{:.1f}"):
    return "–" if v is None else fmt.format(v)


def mib(v):
    return str(round(v / MIB))  # round(), not a format: no "-0" for a few KiB less


def ratio(v, base, fmt="{:.2f}x"):
    return "–" if v is None or not base else fmt.format(v / base)


COLS = ["config", "loaded MiB", "limit MiB", "balloon MiB", "freed MiB (mean, held)",
        "freed MiB (end)", "in RAM MiB (mean, held)", "stored MiB (end)", "ops/s (held)",
        "vs baseline", "p50 µs", "p99 µs", "vs baseline", "p99.9 µs", "promotions (held)",
        "promoted MiB/min", "in / out MiB (held)", "wrong"]


def failed_row(r):
    """What a configuration that failed half-way had measured: its setup,
    when it failed and why."""
    head = [r["config"], mib(r["loaded_bytes"]) if "loaded_bytes" in r else "–",
            mib(r["limit_bytes"]) if "limit_bytes" in r else "–",
            mib(r.get("balloon_bytes", 0))]
    n = len(r.get("samples", []))
    return head + ["–"] * (len(COLS) - len(head) - 1) + \
        [f'FAILED after {n} s: {r.get("error", "no summary")}']


def row(r, base):
    if "summary" not in r:
        return failed_row(r)
    s = r["summary"]
    bs = base["summary"] if base else None
    unit = "2 MiB regions" if r["mode"] == "thpswap" else "4 KiB pages"
    per_min = s["promotions_per_min"] * s["unit_bytes"] / MIB if s["unit_bytes"] else None
    io = f'{fnum(s["in_mib"])} / {fnum(s["out_mib"])}'
    return [r["config"], str(r["loaded_bytes"] // MIB),
            fnum(r.get("limit_bytes") and r["limit_bytes"] / MIB, "{:.0f}"),
            str(r.get("balloon_bytes", 0) // MIB),
            mib(s["freed_mean_bytes"]), mib(s["freed_end_bytes"]),
            mib(s["in_ram_mean_bytes"]), mib(s["stored_end_bytes"]),
            fnum(s["ops_per_s"], "{:.0f}"), ratio(s["ops_per_s"], bs and bs["ops_per_s"]),
            fnum(s["p50_us"], "{:.1f}"), fnum(s["p99_us"], "{:.1f}"),
            ratio(s["p99_us"], bs and bs["p99_us"]), fnum(s["p999_us"], "{:.0f}"),
            f'{s["promotions"]} {unit}' if r["mode"] != "baseline" else "–",
            fnum(per_min) if r["mode"] != "baseline" else "–",
            io if r["mode"] != "baseline" else "–", str(s["wrong"])]


def evictions_text(r):
    """How often thpswap evicted the hot set and the rest, whole run."""
    e = r.get("region_evictions")
    if not e:
        return None
    return (f"- {r['config']}, evictions over the whole run (thpswapctl regions): the hot set "
            f"({e['hot_regions']} regions) {e['hot_total']} in all, at most {e['hot_max']} of one "
            f"region, {e['hot_over_once']} regions more than once; the rest ({e['cold_regions']} "
            f"regions) {e['cold_total']}, {e['cold_evicted']} regions at least once.")


def cold_share_text(r):
    """The cold set's share evicted when the pressure began and 60 s on."""
    parts = []
    for k, what in (("evicted_at_pressure", "when the pressure began"),
                    ("evicted_at_pressure_60s", "60 s later")):
        e = r.get(k)
        if e and e["cold_regions"]:
            parts.append(f"{e['cold_evicted']} of {e['cold_regions']} "
                         f"({100 * e['cold_evicted'] / e['cold_regions']:.0f} %) {what} "
                         f"(at {e['t']:g} s; hot set: "
                         f"{e['hot_total']} evictions)")
    if not parts:
        return None
    return f"- {r['config']}, cold regions evicted at least once: " + "; ".join(parts) + "."


def skew_text(r):
    if r["skew"] == "rare":
        return (f"rare: every operation to the hot set, each other region touched about once "
                f"every {r.get('cold_touch_s', 60):g} s")
    return f"{r['skew']}: {100 * r['ready']['hot_share']:.0f} % of operations to the hot set"


def table(cols, rows):
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def series(r, key, scale=1.0):
    return [s["t"] for s in r["samples"]], [s[key] * scale for s in r["samples"]]


def rate(r):
    """Promotions per second, in MiB (regions x 2 MiB, pages x 4 KiB)."""
    t, v, prev = [], [], None
    for s in r["samples"]:
        if prev is not None:
            t.append(s["t"])
            v.append((s["promotions"] - prev) * s["unit_bytes"] / MIB)
        prev = s["promotions"]
    return t, v


def plot(out, runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    r0 = runs[0]
    for i, r in enumerate(runs):
        kw = {"label": r["config"], "color": f"C{i}"}  # one colour per config in every panel
        ax[0].plot(*series(r, "freed_bytes", 1 / MIB), **kw)
        if r["mode"] != "baseline":
            ax[1].plot(*rate(r), **kw)
        ax[2].plot(*series(r, "ops", 1e-3), **kw)
    for a in ax:
        a.axvline(r0["pressure_from_s"], color="grey", ls=":", lw=1)
        a.axvline(r0["held_from_s"], color="grey", ls="--", lw=1)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax[0].set_ylabel("memory freed, MiB\n(loaded − RssAnon − stored in RAM)")
    ax[1].set_ylabel("promotions, MiB/s\n(thpswap 2 MiB regions,\nkernel refaulted 4 KiB pages)")
    ax[2].set_ylabel("client operations, k/s")
    ax[2].set_xlabel("seconds (dotted: pressure begins; dashed: held)")
    ax[0].set_title(f"policy scenario: {r0['size'] // MIB} MiB, {r0['skew']}, "
                    f"hot {r0['hot_pct']} %, saving {r0['saving_pct']} %")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "policy.png"), dpi=100)
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: policy-report.py OUT")
    out = sys.argv[1]
    runs = []
    for p in sorted(glob.glob(os.path.join(out, "raw", "policy--*.json"))):
        with open(p) as f:
            try:
                runs.append(json.load(f))
            except json.JSONDecodeError as e:
                print(f"policy-report.py: {p}: {e}; skipped", file=sys.stderr)
    if not runs:
        sys.exit(f"policy-report.py: no results in {out}/raw: did every configuration fail?")
    order = {"baseline": 0, "thpswap": 1, "kernel": 2}
    runs.sort(key=lambda r: (order.get(r["mode"], 9), r["config"]))
    base = next((r for r in runs if r["mode"] == "baseline" and "summary" in r), None)
    r0 = next((r for r in runs if "ready" in r), None)
    if not r0:
        sys.exit("policy-report.py: no configuration got as far as filling its client")
    meta = {"command": os.environ.get("BENCH_COMMAND", "bench/run --scenario policy"),
            "args": os.environ.get("BENCH_ARGS", ""),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "uname": " ".join(os.uname())}
    md = [f"# thpswap policy scenario — {meta['date']}", "",
          f"Command: `{meta['command']}` ({meta['args']})  ", f"Machine: {meta['uname']}", "",
          f"Client: {r0['size'] // MIB} MiB of THP memory ({r0['ready']['data']}), "
          f"{r0['threads']} thread(s), spans of 4–64 KiB read (checked) and written; hot set "
          f"{r0['hot_pct']} % of the 2 MiB regions ({skew_text(r0)}); {r0['seconds']} s: "
          f"pressure from {r0['pressure_from_s']} s, held from {r0['held_from_s']} s; "
          f"the pressure takes {r0['saving_pct']} % of the client.", "",
          table(COLS, [row(r, base) for r in runs]), ""]
    ev = [t for t in (evictions_text(r) for r in runs) if t]
    ev += [t for t in (cold_share_text(r) for r in runs) if t]
    if ev:
        md += ev + [""]
    text = "\n".join(md)
    with open(os.path.join(out, "policy.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "policy.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=2)
        f.write("\n")
    print(text)
    if importlib.util.find_spec("matplotlib") is None:
        print("policy-report.py: no plot: apt-get install python3-matplotlib", file=sys.stderr)
        return
    plot(out, [r for r in runs if r.get("samples")])


if __name__ == "__main__":
    main()
