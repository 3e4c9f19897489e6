#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The integration tests skip, with the probe's reason, on a kernel thpswap
cannot run on -- tested here on one that can.

argv: THPSWAPCTL FIXTURES TEST_DAEMON_REFUSES_PY ITEST...

C tests (the harness calls thp_probe_required): each ITEST runs with
$THPSWAP_TEST_SYSROOT set to a fixture sysroot whose /sys says transparent
huge pages are off ("never") or the PMD is 4 MiB ("4m"); it must exit 77 and
print "skip: " with the probe's reason, and start no daemon.  The probe's
userfaultfd, UFFDIO_MOVE and PAGEMAP_SCAN checks are live syscalls with no
override, so a kernel without them cannot be faked for the C side.

Python tests (thpswap_kernel.require_kernel reads `thpswapctl kernel
--json`): TEST_DAEMON_REFUSES_PY runs with $THPSWAP_TEST_KERNEL_JSON naming
this machine's report edited to say what Debian 12's own kernel (6.1) lacks;
it must exit 77 and print each missing item after "skip: ".
Exit 0 pass, 1 fail, 77 skip (not root).
"""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77
TIMEOUT = 60
failures = []

# What the probe says on a 6.1 kernel (the verdict's wording, as
# thp_probe_required writes it).
OLD_KERNEL_MISSING = [
    "UFFDIO_MOVE is not available (kernel 6.1.0-28-amd64: Invalid argument): "
    "upgrade to Linux 6.8 or later",
    "the PAGEMAP_SCAN ioctl is not available (kernel 6.1.0-28-amd64: Inappropriate ioctl "
    "for device): upgrade to Linux 6.7 or later",
]


def run(argv, env):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                              env={**os.environ, **env}, check=False)
    except subprocess.TimeoutExpired:
        failures.append(f"{' '.join(argv)}: still running after {TIMEOUT} s")
        return None


def expect_skip(argv, env, reasons):
    """@argv must exit 77 and print "skip: R" for every R in @reasons."""
    what = f"{' '.join(f'{k}={v}' for k, v in env.items())} {' '.join(argv)}"
    p = run(argv, env)
    if p is None:
        return
    out = p.stdout + p.stderr
    if p.returncode != SKIP:
        failures.append(f"{what}: exit status {p.returncode}, want {SKIP}; output:\n{out}")
        return
    lines = [l for l in p.stdout.splitlines() if l.startswith("skip: ")]
    for r in reasons:
        if not [l for l in lines if r in l]:
            failures.append(f"{what}: no 'skip: ...{r}...' line; output:\n{out}")
    if "thpswapd" in out and "skip:" not in out:
        failures.append(f"{what}: looks like it started the daemon:\n{out}")


def main():
    if len(sys.argv) < 5:
        print("usage: test_skip.py THPSWAPCTL FIXTURES TEST_DAEMON_REFUSES_PY ITEST...",
              file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("skip: needs root")
        return SKIP
    ctl, fixtures, refuses, itests = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

    for itest in itests:
        expect_skip([itest], {"THPSWAP_TEST_SYSROOT": f"{fixtures}/sysroot-never"},
                    ["transparent huge pages are disabled"])
        expect_skip([itest], {"THPSWAP_TEST_SYSROOT": f"{fixtures}/sysroot-4m"},
                    ["the huge page (PMD) size is 4096 KiB"])

    p = subprocess.run([ctl, "kernel", "--json"], capture_output=True, text=True,
                       timeout=TIMEOUT, check=False)
    if p.returncode != 0:
        failures.append(f"{ctl} kernel --json exited {p.returncode}:\n{p.stderr}")
    else:
        report = json.loads(p.stdout)
        report["userfaultfd"]["features"]["move"]["usable"] = False
        report["pagemap_scan"]["available"] = False
        report["usable"] = False
        report["missing"] = OLD_KERNEL_MISSING
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="thpswap-6.1-") as f:
            json.dump(report, f)
            f.flush()
            expect_skip([sys.executable, refuses, os.environ.get("THPSWAPD", "thpswapd")],
                        {"THPSWAP_TEST_KERNEL_JSON": f.name}, OLD_KERNEL_MISSING)

    for f in failures:
        print("FAIL:", f)
    print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
