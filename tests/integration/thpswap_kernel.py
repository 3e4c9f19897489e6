# SPDX-License-Identifier: MIT
"""The kernel check the Python integration tests share with the C harness.

require_kernel() exits 77 (a meson SKIP), printing one "skip: <reason>" line
per item the probe finds missing, unless thpswap can run on this kernel: the
verdict of `thpswapctl kernel --json` ("usable", "missing"), which is the
probe's thp_probe_required().  $THPSWAP_TEST_KERNEL_JSON names a saved
report to use instead, so that the skip path can be tested on a kernel that
has everything (test_skip.py).
"""
import json
import os
import subprocess
import sys

SKIP = 77


def kernel_report(ctl=None):
    """The probe's report as a dict; exits 1 if it cannot be had."""
    saved = os.environ.get("THPSWAP_TEST_KERNEL_JSON")
    try:
        if saved:
            with open(saved, encoding="utf-8") as f:
                return json.load(f)
        ctl = ctl or os.environ["THPSWAPCTL"]
        p = subprocess.run([ctl, "kernel", "--json"], capture_output=True, text=True,
                           timeout=30, check=False)
        if p.returncode != 0:
            print(f"{ctl} kernel --json exited {p.returncode}:\n{p.stderr}")
            sys.exit(1)
        return json.loads(p.stdout)
    except (OSError, KeyError, ValueError, subprocess.TimeoutExpired) as e:
        print(f"cannot get the kernel report: {e!r}")
        sys.exit(1)


def require_kernel(ctl=None):
    """Returns if thpswap can run here; else prints why and exits 77."""
    report = kernel_report(ctl)
    if report.get("usable"):
        return
    for line in report.get("missing") or ["the probe says thpswap cannot run here"]:
        print(f"skip: {line}")
    sys.exit(SKIP)
