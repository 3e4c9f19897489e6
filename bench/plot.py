#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Plot restore latency distributions from thpswap-bench's CSV files.

usage: bench/plot.py OUT      (Debian: apt-get install python3-matplotlib)

Reads OUT/raw/*.csv (config,data,fault,unit,latency_us) and writes
OUT/restore-latency.png: one panel per fault kind (read, write) for the main
data set and one for the all-zero region, each an empirical CDF per
configuration on a log time axis.
"""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py OUT")
    out = sys.argv[1]
    lat = {}  # (data, fault) -> config -> [ms]
    for p in sorted(glob.glob(os.path.join(out, "raw", "*.csv"))):
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                lat.setdefault((r["data"], r["fault"]), {}).setdefault(r["config"], []).append(
                    float(r["latency_us"]) / 1000.0)
    if not lat:
        sys.exit(f"plot.py: no CSV in {out}/raw")
    datas = sorted({d for d, _ in lat if d != "zero-region"}, key=lambda d: (d != "heapmix", d))
    panels = [(d, f) for d in datas[:1] for f in ("read", "write")]
    panels += [("zero-region", f) for f in ("read", "write") if ("zero-region", f) in lat]
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.5 * rows), squeeze=False)
    flat = [a for r in axes for a in r]
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    for ax, (d, fault) in zip(flat, panels):
        for cfg, v in sorted(lat.get((d, fault), {}).items()):
            v = sorted(x for x in v if x > 0)
            if not v:
                continue
            n = len(v)
            ax.step(v, [(i + 1) / n for i in range(n)], where="post", label=cfg)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("restore latency per 2 MiB unit, first touch (ms)")
        ax.set_ylabel("fraction of units")
        ax.set_title(f"{d}: {fault}-first faults")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    dst = os.path.join(out, "restore-latency.png")
    fig.savefig(dst, dpi=110)
    print(f"plot.py: wrote {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
