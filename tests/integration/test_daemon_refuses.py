#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""thpswapd refuses to start on a kernel without what it needs (exit 69).

argv[1] = path of thpswapd.  A sysroot copied from this machine, with
transparent huge pages set to "never", must make
`thpswapd --sysroot DIR --socket DIR/s` (and `--check --sysroot DIR`) exit 69
with "thpswapd: cannot start: ..." naming transparent huge pages and the fix;
`thpswapd --check` on the real machine must exit 0.
Exit 0 pass, 1 fail, 77 skip (not root, or a kernel thpswap cannot run on:
then nothing here can pass, and the probe's reasons are printed).
"""
import glob
import os
import subprocess
import sys
import tempfile

from thpswap_kernel import require_kernel

EX_UNAVAILABLE = 69
TIMEOUT = 30
THP = "/sys/kernel/mm/transparent_hugepage"
PREFIX = "thpswapd: cannot start: "
THP_FIX = f"echo madvise > {THP}/enabled"

# What thp_probe() reads below a sysroot (src/probe.h).
FILES = [
    "/proc/swaps", "/proc/vmstat", "/proc/pressure/memory",
    "/proc/sys/kernel/io_uring_disabled", "/proc/sys/vm/unprivileged_userfaultfd",
]
GLOBS = [f"{THP}/*", f"{THP}/khugepaged/*", f"{THP}/hugepages-*kB/enabled",
         "/sys/module/zswap/parameters/*"]

failures = []


def copy_tree(root):
    paths = list(FILES)
    for g in GLOBS:
        paths += glob.glob(g)
    for src in paths:
        if not os.path.isfile(src):
            continue
        try:
            with open(src, "rb") as f:   # /proc and /sys report size 0: read, don't copy
                data = f.read()
        except OSError:
            continue                     # write-only or gone: thp_probe records it
        dst = root + src
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(data)


def run(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:   # run() has killed it by now
        failures.append(f"{' '.join(argv)}: still running after {TIMEOUT} s "
                        f"(stderr: {e.stderr!r})")
        return None


def run_unavailable(argv):
    """Runs @argv, which must exit 69; returns the result or None."""
    p = run(argv)
    if p is not None and p.returncode != EX_UNAVAILABLE:
        failures.append(f"{' '.join(argv)}: exit status {p.returncode}, want {EX_UNAVAILABLE}; "
                        f"stderr:\n{p.stderr}")
    return p


def expect_refusal(argv, real_usable):
    """Start-up refusal: exit 69, one stderr line per missing item."""
    p = run_unavailable(argv)
    if p is None:
        return
    what = " ".join(argv)
    lines = [l for l in p.stderr.splitlines() if l.startswith(PREFIX)]
    if not [l for l in lines if "transparent huge pages" in l and THP_FIX in l]:
        failures.append(f"{what}: no '{PREFIX}' line naming transparent huge pages "
                        f"and '{THP_FIX}'; stderr:\n{p.stderr}")
    # Everything else was copied from a usable machine: THP is all that is missing.
    if real_usable and len(lines) != 1:
        failures.append(f"{what}: want exactly one '{PREFIX}' line, got {len(lines)}:\n"
                        + "\n".join(lines))


def expect_check_refusal(argv):
    """--check: exit 69 and the report says what is missing and the fix."""
    p = run_unavailable(argv)
    if p is None:
        return
    out = p.stdout + p.stderr
    if "transparent huge pages are disabled" not in out or THP_FIX not in out:
        failures.append(f"{' '.join(argv)}: the report does not name transparent huge pages "
                        f"and '{THP_FIX}':\n{out}")


def main():
    if len(sys.argv) != 2:
        print("usage: test_daemon_refuses.py THPSWAPD", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("skip: needs root")
        return 77
    require_kernel()
    daemon = sys.argv[1]

    real = run([daemon, "--check"])
    real_usable = real is not None and real.returncode == 0
    if real is not None and real.returncode != 0:
        failures.append(f"{daemon} --check on this machine: exit status {real.returncode}, "
                        f"want 0; stderr:\n{real.stderr}")

    with tempfile.TemporaryDirectory(prefix="thpswap-refuses-") as root:
        copy_tree(root)
        with open(f"{root}{THP}/enabled", "w") as f:
            f.write("always madvise [never]\n")
        # A PMD-size setting other than "inherit" would override "never".
        for per_size in glob.glob(f"{root}{THP}/hugepages-*kB/enabled"):
            with open(per_size, "w") as f:
                f.write("always [inherit] madvise never\n")
        expect_refusal([daemon, "--sysroot", root, "--socket", f"{root}/s"], real_usable)
        expect_check_refusal([daemon, "--check", "--sysroot", root])

    for f in failures:
        print("FAIL:", f)
    print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
