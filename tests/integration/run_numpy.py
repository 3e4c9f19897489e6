#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A numpy program that never heard of thpswap, for the run-numpy test.

It makes 288 MiB of arrays and a dict of two million entries, prints
"ready CHECKSUMS", and on the line "check" computes them again: "ok
CHECKSUMS" when they are the same, "bad: ..." when not.  Without numpy it
prints "skip: ..." and exits 77.
"""
import hashlib
import sys

try:
    import numpy as np
except ImportError as e:
    print(f"skip: python3 has no numpy ({e}); apt-get install python3-numpy", flush=True)
    sys.exit(77)

N = 12 << 20                                      # 96 MiB per int64 array
a = np.arange(N, dtype=np.int64)
b = (a % 1000).astype(np.float64) * 0.5
c = np.repeat(np.arange(N // 512, dtype=np.int64), 512)[::-1].copy()
d = {i: f"value {i}" for i in range(2_000_000)}


def sums():
    out = []
    for x in (a, b, c):
        out.append(hashlib.sha256(memoryview(x)).hexdigest()[:16])
    h = hashlib.sha256()
    for k, v in d.items():
        h.update(k.to_bytes(8, "little"))
        h.update(v.encode())
    out.append(h.hexdigest()[:16])
    return " ".join(out)


before = sums()
print(f"ready {before}", flush=True)
for line in sys.stdin:
    if line.strip() == "check":
        after = sums()
        print(f"ok {after}" if after == before else f"bad: {after} (was {before})", flush=True)
        break
