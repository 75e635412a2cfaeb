"""Codec throughput: neuron-address encode+decode and event-file write/read.

Baselines measured in the same run: a per-event pure-Python reference (the style of sinabs' io helpers)
and a plain numpy copy of the same bytes (the memory-bandwidth floor).

    python bench/codec.py [--quick]
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from common import best_of, parse, print_table, rate

from speckstream import codec
from speckstream.codec import _impl
from speckstream.codec.addresses import decode_reference, encode_reference


def run(quick: bool = False) -> list[dict]:
    n = 1_000_000 if quick else 10_000_000
    shape = (16, 64, 64)
    rng = np.random.default_rng(0)
    c = rng.integers(0, 16, n).astype(np.uint16)
    x = rng.integers(0, 64, n).astype(np.uint16)
    y = rng.integers(0, 64, n).astype(np.uint16)
    addr = codec.encode(c, x, y, shape)

    def roundtrip(kernels):
        a = codec.encode(c, x, y, shape, kernels=kernels)
        codec.decode(a, shape, kernels=kernels)

    t_cy = best_of(lambda: roundtrip(_impl.kernels))
    t_np = best_of(lambda: roundtrip(_impl.fallback_kernels))
    # the same bytes moved: read c, x, y + write addresses, read addresses + write c, x, y
    t_copy = best_of(lambda: (c.copy(), x.copy(), y.copy(), addr.copy()))
    m = 100_000
    cl, xl, yl = c[:m].tolist(), x[:m].tolist(), y[:m].tolist()

    def reference():
        for ci, xi, yi in zip(cl, xl, yl):
            decode_reference(encode_reference(ci, xi, yi, shape), shape)

    t_ref = best_of(reference, repeat=1) * n / m
    rows = [
        {"what": f"address encode+decode, {_impl.IMPLEMENTATION} ({n:,} events)", "value": rate(n, t_cy),
         "unit": "events/s", "baseline": f"per-event Python {rate(n, t_ref) / 1e6:.2f} M/s",
         "ratio": t_ref / t_cy, "target": ">= 100x"},
        {"what": "  vs numpy copy of the same bytes (floor)", "value": rate(n, t_copy), "unit": "events/s",
         "baseline": "copy", "ratio": t_cy / t_copy, "target": "<= 3x the floor's time"},
        {"what": "address encode+decode, numpy fallback", "value": rate(n, t_np), "unit": "events/s",
         "baseline": "per-event Python", "ratio": t_ref / t_np},
    ]
    sp = codec.spikes(t=np.arange(n), core=rng.integers(0, 9, n), c=c, x=x, y=y)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        path = os.path.join(d, "bench.spk")
        t_w = best_of(lambda: codec.write_spk(path, sp))

        def read():
            with codec.EventFileReader(path) as r:
                r.read("spike")

        t_r = best_of(read)
        t_np_w = best_of(lambda: np.save(os.path.join(d, "b.npy"), sp))
    rows += [
        {"what": "event file write (.spk, crc32)", "value": rate(n, t_w), "unit": "events/s",
         "baseline": f"np.save {rate(n, t_np_w) / 1e6:.0f} M/s", "ratio": t_np_w / t_w, "target": ">= 50 M/s"},
        {"what": "event file read (.spk, crc32)", "value": rate(n, t_r), "unit": "events/s",
         "target": ">= 50 M/s"},
    ]
    return rows


if __name__ == "__main__":
    args = parse(__doc__)
    print_table("codec", run(args.quick))
