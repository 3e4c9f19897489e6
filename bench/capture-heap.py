#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The heap of a real program, as a data set for thpswap-bench.

usage: bench/capture-heap.py --program redis|python --size BYTES --out FILE
                             --build DIR

Starts the program, fills it with about --size bytes of data, copies its
private anonymous memory (the mappings of /proc/PID/maps with no file behind
them: malloc's heap and arenas, jemalloc's extents, numpy's buffers) from
/proc/PID/mem into FILE, at most --size bytes cut to whole 2 MiB units, and
stops it.  Captured at run time, never kept with the sources.

  redis   Debian's redis-server on a unix socket of its own, no persistence,
          filled by thpswap-redis-load (1000-byte values of words, numbers
          and hex ids)
  python  python3 with a dict of strings and ints, lists of floats and tuples,
          and numpy arrays (random floats, small ints, a sparse matrix), as a
          service holding its state in memory would

Prints one line: the bytes captured and the share of 4 KiB pages that are
all zero.  Exit status 0, or 1 with the reason.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

UNIT = 2 << 20
PAGE = 4096

PY_HEAP = r"""
import sys, random, numpy as np
size = int(sys.argv[1])
rng = random.Random(7)
words = ["alpha", "beta", "gamma", "delta", "order", "user", "item", "price", "session",
         "token", "cache", "value", "name", "city", "error", "status", "created", "updated"]
state = {}
budget = size // 2
n = 0
while n * 180 < budget:
    key = f"{rng.choice(words)}:{n}:{rng.getrandbits(32):08x}"
    state[key] = (" ".join(rng.choice(words) for _ in range(8)), n, rng.random(),
                  [rng.randint(0, 1000) for _ in range(4)])
    n += 1
np_rng = np.random.default_rng(7)
arrays = [np_rng.random(size // 32 // 8),
          np_rng.integers(0, 100, size // 32 // 8, dtype=np.int64),
          np.where(np_rng.random(size // 16 // 8) < 0.05, np_rng.random(size // 16 // 8), 0.0)]
print("ready", flush=True)
sys.stdin.readline()
"""


def anon_ranges(pid):
    """(start, end) of each private anonymous, readable mapping."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            path = parts[5] if len(parts) > 5 else ""
            if perms[0] != "r" or perms[3] != "p":
                continue
            if path and path != "[heap]":
                continue  # files, the stack, vdso, vvar
            out.append((lo, hi))
    return out


def capture(pid, size, out):
    """Copy up to @size bytes of @pid's anonymous memory to @out: (bytes, zero pages, pages)."""
    got = zero = pages = 0
    zpage = bytes(PAGE)
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem, open(out, "wb") as f:
        for lo, hi in anon_ranges(pid):
            for off in range(lo, hi, UNIT):
                if got >= size:
                    break
                n = min(UNIT, hi - off, size - got)
                try:
                    mem.seek(off)
                    b = mem.read(n)
                except OSError:
                    continue  # a guard page, or unmapped meanwhile
                f.write(b)
                got += len(b)
                for p in range(0, len(b), PAGE):
                    pages += 1
                    zero += b[p:p + PAGE] == zpage
        f.truncate(got - got % UNIT)
    return got - got % UNIT, zero, pages


def redis(a, tmp):
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen(["/usr/bin/redis-server", "--port", "0", "--unixsocket", sock,
                             "--save", "", "--appendonly", "no", "--logfile", ""],
                            stdout=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while subprocess.run(["/usr/bin/redis-cli", "-s", sock, "PING"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.05)
        keys = max(1000, a.size // 1100)
        subprocess.run([f"{a.build}/bench/thpswap-redis-load", "fill", "--socket", sock,
                        "--keys", str(keys)], check=True, stdout=subprocess.DEVNULL)
        return proc, lambda: subprocess.run(["/usr/bin/redis-cli", "-s", sock, "SHUTDOWN",
                                             "NOSAVE"], capture_output=True)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def python(a, tmp):
    proc = subprocess.Popen(["/usr/bin/python3", "-c", PY_HEAP, str(a.size)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError("the python heap did not come up (python3-numpy installed?)")
    return proc, lambda: (proc.stdin.write("\n"), proc.stdin.flush())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--program", choices=("redis", "python"), required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    if a.size < UNIT:
        sys.exit(f"capture-heap.py: --size {a.size}: at least one 2 MiB unit")
    tmp = tempfile.mkdtemp(prefix="thpswap-heap.")
    proc = None
    try:
        proc, stop = (redis if a.program == "redis" else python)(a, tmp)
        n, zero, pages = capture(proc.pid, a.size, a.out)
        stop()
        proc.wait(timeout=30)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        sys.exit(f"capture-heap.py: {a.program}: {e}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if n < UNIT:
        sys.exit(f"capture-heap.py: {a.program}: only {n} bytes of anonymous memory")
    print(f"{a.program}: {n >> 20} MiB of its anonymous memory in {a.out}, "
          f"{100.0 * zero / max(pages, 1):.0f} % of 4 KiB pages all zero")


if __name__ == "__main__":
    main()
