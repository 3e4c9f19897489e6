#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`thpswapctl kernel --json` against independent reads of /proc and /sys.

argv[1] = path of thpswapctl.  Exit 0 pass, 1 fail, 77 skip (not root).
Prints every value that differs.  Unlike the other integration tests this
one runs on a kernel thpswap cannot use: the report must be right there
above all (its "usable" and "missing" are what the others skip on).
"""
import json
import os
import re
import stat
import subprocess
import sys

THP = "/sys/kernel/mm/transparent_hugepage"
ZSWAP = "/sys/module/zswap/parameters"
TIMEOUT = 30

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: thpswapctl says {got!r}, the system says {want!r}")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def first_line(path):
    s = read(path)
    if s is None:
        return None
    s = s.split("\n", 1)[0]
    return s or None


def mode(path):
    s = read(path)
    m = re.search(r"\[([^\]\s]+)\]", s) if s is not None else None
    return m.group(1) if m else None


def number(path):
    s = first_line(path)
    return int(s) if s is not None and s.isdigit() else None


def yn(path):
    s = first_line(path)
    return {"Y": True, "N": False, "1": True, "0": False}.get(s) if s else None


def unescape(name):
    return re.sub(r"\\([0-3][0-7][0-7])",
                  lambda m: chr(int(m.group(1), 8)), name)


def swaps():
    devs = []
    for line in read("/proc/swaps").splitlines()[1:]:
        f = line.split()
        if len(f) != 5:
            continue
        devs.append({"filename": unescape(f[0]), "type": f[1], "size_kib": int(f[2]),
                     "used_kib": int(f[3]), "priority": int(f[4])})
    return devs


def vmstat():
    out = {}
    for line in read("/proc/vmstat").splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v) if v.isdigit() else v
    return out


def capeff():
    for line in read("/proc/self/status").splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def run(ctl, *args):
    return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=TIMEOUT)


def main():
    if len(sys.argv) != 2:
        print("usage: test_kernel_json.py THPSWAPCTL", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("skip: needs root")
        return 77
    ctl = sys.argv[1]

    # A swap device in use (another program's, a test's of its own) changes
    # its used size from one moment to the next, up and down: /proc/swaps is
    # read just before and after each call, up to five calls, until one
    # falls inside its bracket (see the swap checks below).
    seen = {}
    for attempt in range(5):
        swaps_before = swaps()
        p = run(ctl, "kernel", "--json")
        swaps_after = swaps()
        if p.returncode != 0:
            print(f"thpswapctl kernel --json exited {p.returncode}; stderr:\n{p.stderr}")
            return 1
        try:
            d = json.loads(p.stdout)
        except json.JSONDecodeError as e:
            print(f"not JSON ({e}):\n{p.stdout}")
            return 1
        for dev in swaps_before + swaps_after:
            seen.setdefault(dev["filename"], set()).add(dev["used_kib"])
        if len(d["swap"]) == len(swaps_after) and all(
                min(a["used_kib"], b["used_kib"]) <= g["used_kib"] <= max(a["used_kib"], b["used_kib"])
                for g, a, b in zip(d["swap"], swaps_before, swaps_after)):
            break

    # kernel
    check("kernel.release", d["kernel"]["release"], os.uname().release)
    check("kernel.machine", d["kernel"]["machine"], os.uname().machine)

    # THP
    t = d["thp"]
    check("thp.enabled", t["enabled"], mode(f"{THP}/enabled"))
    check("thp.defrag", t["defrag"], mode(f"{THP}/defrag"))
    check("thp.shmem_enabled", t["shmem_enabled"], mode(f"{THP}/shmem_enabled"))
    check("thp.use_zero_page", t["use_zero_page"], number(f"{THP}/use_zero_page"))
    pmd = number(f"{THP}/hpage_pmd_size")
    check("thp.pmd_size", t["pmd_size"], pmd)
    for k in ("max_ptes_none", "max_ptes_swap", "max_ptes_shared"):
        check(f"thp.khugepaged.{k}", t["khugepaged"][k], number(f"{THP}/khugepaged/{k}"))
    pmd_enabled = mode(f"{THP}/hugepages-{pmd >> 10}kB/enabled") if pmd else None
    check("thp.pmd_enabled", t["pmd_enabled"], pmd_enabled)
    effective = pmd_enabled if pmd_enabled not in (None, "inherit") else mode(f"{THP}/enabled")
    check("thp.effective", t["effective"], effective)

    # swap: /proc/swaps read just before and after (used may move in between)
    got = d["swap"]
    check("swap_error", d["swap_error"], None)
    check("swap count", len(got), len(swaps_after))
    for i, (g, a, b) in enumerate(zip(got, swaps_before, swaps_after)):
        for k in ("filename", "type", "size_kib", "priority"):
            check(f"swap[{i}].{k}", g[k], b[k])
        lo, hi = sorted((a["used_kib"], b["used_kib"]))
        busy = len(seen.get(b["filename"], ())) > 1
        if busy and 0 <= g["used_kib"] <= g["size_kib"]:
            continue  # in use all along: only a size it can have
        if not lo <= g["used_kib"] <= hi:
            check(f"swap[{i}].used_kib", g["used_kib"], b["used_kib"])

    # zswap
    z = d["zswap"]
    present = os.path.exists(f"{ZSWAP}/enabled")
    check("zswap.present", z["present"], present)
    if present:
        check("zswap.enabled", z["enabled"], yn(f"{ZSWAP}/enabled"))
        check("zswap.compressor", z["compressor"], first_line(f"{ZSWAP}/compressor"))
        check("zswap.zpool", z["zpool"], first_line(f"{ZSWAP}/zpool"))
        check("zswap.max_pool_percent", z["max_pool_percent"], number(f"{ZSWAP}/max_pool_percent"))
        check("zswap.accept_threshold_percent", z["accept_threshold_percent"],
              number(f"{ZSWAP}/accept_threshold_percent"))
        check("zswap.shrinker_enabled", z["shrinker_enabled"], yn(f"{ZSWAP}/shrinker_enabled"))
        vm = vmstat()
        used = vm.get("zswpout", 0) > 0 or vm.get("zswpin", 0) > 0
        check("zswap.latched", z["latched"], bool(z["enabled"]) or used)

    # PMD swap entries: the patched kernel's vmstat line
    check("pmd_swap_entries.present", d["pmd_swap_entries"]["present"], "thp_swpout_pmd" in vmstat())

    # userfaultfd
    u = d["userfaultfd"]
    try:
        st = os.stat("/dev/userfaultfd")
        dev = stat.S_ISCHR(st.st_mode)
    except OSError:
        dev = False
    check("userfaultfd.dev.present", u["dev"]["present"], dev)
    check("userfaultfd.unprivileged_userfaultfd", u["unprivileged_userfaultfd"],
          number("/proc/sys/vm/unprivileged_userfaultfd"))
    check("userfaultfd.usable", u["usable"], u["syscall"]["available"] or u["dev"]["usable"])
    check("userfaultfd.event_fork_for_caller", u["event_fork_for_caller"],
          u["features"]["event_fork"]["usable"])
    # EVENT_FORK is granted to a caller with CAP_SYS_PTRACE (19), and thpswapctl
    # runs with our capabilities.
    if u["api"]["error"] is None and u["features"]["event_fork"]["offered"]:
        check("userfaultfd.event_fork_for_caller (CAP_SYS_PTRACE)", u["event_fork_for_caller"],
              bool(capeff() >> 19 & 1))
    for name, f in u["features"].items():
        if u["api"]["error"] is None:
            bits = {"move": 1 << 16, "event_fork": 1 << 1, "event_remove": 1 << 3,
                    "event_unmap": 1 << 6, "event_remap": 1 << 2, "wp": 1 << 0,
                    "wp_async": 1 << 15, "poison": 1 << 14}
            check(f"userfaultfd.features.{name}.offered", f["offered"],
                  bool(u["api"]["features"] & bits[name]))
        check(f"userfaultfd.features.{name}.usable", f["usable"], f["error"] is None)
    rel = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    if u["usable"] and rel >= (6, 8):
        check("userfaultfd.features.move.usable (Linux >= 6.8)", u["features"]["move"]["usable"], True)
    if rel >= (6, 7):
        check("pagemap_scan.available (Linux >= 6.7)", d["pagemap_scan"]["available"], True)

    # io_uring and PSI
    check("io_uring.disabled", d["io_uring"]["disabled"], number("/proc/sys/kernel/io_uring_disabled"))
    check("psi.memory", d["psi"]["memory"], read("/proc/pressure/memory") is not None)

    # verdict
    check("usable == (missing == [])", d["usable"], d["missing"] == [])

    # the other forms of the command
    h = run(ctl, "kernel")
    check("thpswapctl kernel: exit status", h.returncode, 0)
    if "usable by thpswap?" not in h.stdout or "without it thpswap loses" not in h.stdout:
        failures.append(f"thpswapctl kernel: no table header in:\n{h.stdout}")
    j2 = run(ctl, "--json", "kernel")
    check("thpswapctl --json kernel: exit status", j2.returncode, 0)
    try:
        check("thpswapctl --json kernel: thp", json.loads(j2.stdout)["thp"], d["thp"])
    except (json.JSONDecodeError, KeyError) as e:
        failures.append(f"thpswapctl --json kernel: not the report ({e})")
    bad = run(ctl, "kernel", "--no-such-option")
    check("thpswapctl kernel --no-such-option: exit status", bad.returncode, 2)

    for f in failures:
        print("DIFFERS:", f)
    print(f"{'FAIL' if failures else 'PASS'}: {len(failures)} difference(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
