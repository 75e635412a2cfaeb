"""``evaluate``'s memory against the number of samples: a generator of samples of ~1 MB each (tonic-style
x, y, t, p events, made as they are pulled), evaluated in a fresh process; the figure is that process's peak
resident memory minus its memory just before the call (the samples, the conversions, the results, the work in
flight), read from /proc (Linux). Serially and on a pool of 2 worker processes (the caller's memory; each
worker holds one chunk at a time).

    python bench/evaluate_memory.py [--quick]
"""
from __future__ import annotations

import json
import subprocess
import sys

from common import parse, print_table

_CHILD = r"""
import json, sys
import numpy as np
import speckstream as ss
from speckstream import codec
from speckstream.testing.configs import config, core

n, events, executor = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
cfg = config(core(0, 2, 16, 16, 4, k=16, weights=rng.integers(-3, 8, 4 * 2 * 16 * 16), thr=400, low=-400))


def sample(i):
    r = np.random.default_rng(i)
    ev = np.zeros(events, codec.TONIC_DTYPE)
    ev["x"], ev["y"], ev["p"] = r.integers(0, 16, events), r.integers(0, 16, events), r.integers(0, 2, events)
    ev["t"] = np.sort(r.integers(0, 1_000_000, events))
    return ev, i % 4


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


kw = dict(progress=False, executor="serial") if executor == "serial" else dict(progress=False, max_workers=2)
ss.evaluate(cfg, (sample(i) for i in range(3)), **kw)  # imports, first allocations
with open("/proc/self/clear_refs", "w") as f:  # peak RSS (VmHWM) back to the current RSS: this call's peak alone
    f.write("5")
before = status("VmRSS")
res = ss.evaluate(cfg, (sample(i) for i in range(n)), **kw)
peak = status("VmHWM")  # not ru_maxrss: that one keeps the parent's peak from before exec
assert len(res.labels) == n
print(json.dumps({"grew": peak - before, "sample": sample(0)[0].nbytes, "events_per_s": res.events_per_s}))
"""


def measure(n: int, events: int, executor: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(n), str(events), executor], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    small, big = (30, 150) if quick else (100, 1000)
    events = 80_000  # ~1 MB of tonic-style events per sample
    rows = []
    for executor in ("serial", "pool"):
        a, b = measure(small, events, executor), measure(big, events, executor)
        mb = a["sample"] / 1e6
        rows.append({"what": f"evaluate memory, {big} vs {small} samples of {mb:.2f} MB ({executor})",
                     "value": b["grew"] / 1e6, "unit": "MB",
                     "baseline": f"{small} samples: +{a['grew'] / 1e6:.0f} MB; the data set itself {big * mb:.0f} MB",
                     "ratio": b["grew"] / max(a["grew"], 1), "target": "<= 1.5x (flat)"})
    return rows


if __name__ == "__main__":
    args = parse(__doc__)
    print_table("evaluate: memory against the number of samples", run(args.quick))
