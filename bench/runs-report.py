#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Several bench/run invocations of the regions scenario side by side.

usage: bench/runs-report.py OUT

Reads OUT/run-*/results.json (bench/report.py's, one per run: bench/run
--runs N makes them), writes OUT/runs.md and OUT/runs.json and prints the
markdown: per configuration the median of the runs and the worst run on each
measure, then every target run by run, PASS only when every run passed.
"""
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import g  # noqa: E402  (bench/report.py, beside this file)


# (column, getter, worst is the highest?)
MEASURES = [
    ("read p50 ms", lambda r: ms(g(r, "result", "restore", "read", "p50_us")), True),
    ("read p99 ms", lambda r: ms(g(r, "result", "restore", "read", "p99_us")), True),
    ("write p50 ms", lambda r: ms(g(r, "result", "restore", "write", "p50_us")), True),
    ("write p99 ms", lambda r: ms(g(r, "result", "restore", "write", "p99_us")), True),
    ("evict MiB/s", lambda r: g(r, "result", "evict", "throughput_mib_s"), False),
    ("stored ratio", lambda r: g(r, "result", "memory", "stored_ratio"), False),
    ("PMD after %", lambda r: pct(g(r, "result", "pmd", "after"), g(r, "result", "units")), False),
]


def ms(us):
    return None if not us else us / 1000.0


def pct(a, b):
    return None if a is None or not b else 100.0 * a / b


def fmt(v, col):
    if v is None:
        return "–"
    return f"{v:.0f}" if col == "evict MiB/s" else f"{v:.1f}" if col.endswith("%") else f"{v:.2f}"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: runs-report.py OUT")
    out = sys.argv[1]
    paths = sorted((p for p in glob.glob(os.path.join(out, "run-*", "results.json"))
                    if re.search(r"/run-\d+/results\.json$", p)),
                   key=lambda p: int(re.search(r"/run-(\d+)/", p).group(1)))
    if not paths:
        sys.exit(f"runs-report.py: no {out}/run-*/results.json")
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    n = len(runs)

    configs = []
    for res in runs:
        for r in res["runs"]:
            if r["data"]["name"] == "heapmix" and r["config"] not in configs:
                configs.append(r["config"])
    rows = []
    for c in configs:
        per = [next((r for r in res["runs"] if r["config"] == c and r["data"]["name"] == "heapmix"),
                    None) for res in runs]
        per = [r for r in per if r]
        row = {"config": c, "runs": len(per)}
        for col, get, high in MEASURES:
            vs = [v for v in (get(r) for r in per) if v is not None]
            row[col] = ({"median": statistics.median(vs), "worst": max(vs) if high else min(vs)}
                        if vs else None)
        rows.append(row)

    # Targets: the same target and config in every run's list, run by run.
    targets = {}
    for i, res in enumerate(runs):
        for t in res["targets"]:
            name = re.sub(r" \(vs [^)]*\)$", "", t["target"])
            vs = re.search(r"\(vs ([^)]*)\)$", t["target"])
            e = targets.setdefault((name, t["config"]), [None] * n)
            e[i] = {"measured": t["measured"], "verdict": t["verdict"],
                    "vs": vs.group(1) if vs else ""}
    tg = []
    for (name, cfg), per in targets.items():
        passed = sum(1 for x in per if x and x["verdict"] == "PASS")
        tg.append({"target": name, "config": cfg, "runs": per,
                   "verdict": "PASS" if passed == n else f"MISS ({passed}/{n} passed)"})

    first = runs[0]["meta"]
    md = [f"# thpswap benchmark, {n} runs — {first['date']} to {runs[-1]['meta']['date']}", "",
          f"Command: `{os.environ.get('BENCH_COMMAND', first['command'])}`  ",
          f"Machine: {first['machine'].get('uname')}; {first['machine'].get('cpu')} × "
          f"{first['machine'].get('cpus')}; {first['machine'].get('memory_gib')} GiB", "",
          "## Results (median of the runs, worst in brackets; heapmix)", "",
          "| config | runs | " + " | ".join(c for c, _, _ in MEASURES) + " |",
          "|---|---|" + "---|" * len(MEASURES)]
    for row in rows:
        cells = []
        for col, _, _ in MEASURES:
            v = row[col]
            cells.append("–" if v is None else f"{fmt(v['median'], col)} ({fmt(v['worst'], col)})")
        md.append(f"| {row['config']} | {row['runs']} | " + " | ".join(cells) + " |")
    md += ["", "## Targets, run by run", "",
           "| target | config | " + " | ".join(f"run {i + 1}" for i in range(n)) + " | |",
           "|---|---|" + "---|" * n + "---|"]
    for t in tg:
        cells = ["–" if x is None else f"{x['measured']}" + (f" vs {x['vs']}" if x["vs"] else "")
                 for x in t["runs"]]
        md.append(f"| {t['target']} | {t['config']} | " + " | ".join(cells) +
                  f" | **{t['verdict']}** |")
    md.append("")
    text = "\n".join(md)
    with open(os.path.join(out, "runs.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "runs.json"), "w") as f:
        json.dump({"runs": n, "results": rows, "targets": tg}, f, indent=2)
    print(text)


if __name__ == "__main__":
    main()
