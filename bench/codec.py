"""Codec throughput: neuron-address encode+decode, event-file write/read, and the per-file cost of reading
camera recordings (AEDAT4) through the isolated decoder process.

Baselines measured in the same run: a per-event pure-Python reference (the style of sinabs' io helpers),
a plain numpy copy of the same bytes (the memory-bandwidth floor), and the ``aedat`` decoder itself, in
this process, on the same files.

    python bench/codec.py [--quick]
"""
from __future__ import annotations

import os
import tempfile
import time

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
    return rows + file_rows(quick)


def _aedat4(path: str, n: int, seed: int) -> None:
    """An AEDAT4 recording of n events on a 128x128 sensor over 1 s, written with faery."""
    import faery

    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 1_000_000, n))
    ev["x"], ev["y"], ev["on"] = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
    faery.events_stream_from_array(ev, dimensions=(128, 128)).to_file(path, zero_t0=False)


def file_rows(quick: bool = False) -> list[dict]:
    """Per-file cost of codec.read_spikes on AEDAT4 files (a decoder process, reused) against the aedat
    decoder alone in this process: one 112 k-event file, and a data set of small (500-event) files."""
    try:
        import aedat
    except ImportError:  # pragma: no cover
        return [{"what": "AEDAT4 reads: skipped (pip install aedat faery)", "value": float("nan")}]
    from speckstream.codec import isolated

    def decode(path):
        return [np.asarray(p["events"]) for p in aedat.Decoder(path) if "events" in p]

    n_small = 50 if quick else 300
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as d:
        big = os.path.join(d, "big.aedat4")
        _aedat4(big, 112_000, 0)
        small = [os.path.join(d, f"s{i}.aedat4") for i in range(n_small)]
        for i, p in enumerate(small):
            _aedat4(p, 500, i + 1)
        isolated._close_idle()
        t0 = time.perf_counter()
        codec.read_spikes(big)  # starts the decoder process
        t_first = time.perf_counter() - t0
        t_read = best_of(lambda: codec.read_spikes(big), 5)
        t_dec = best_of(lambda: decode(big), 5)
        t_small = best_of(lambda: [codec.read_spikes(p) for p in small], 3) / n_small
        t_small_dec = best_of(lambda: [decode(p) for p in small], 3) / n_small
    lim, lim_small = 3 * t_dec + 0.03, 3 * t_small_dec + 0.03
    return [
        {"what": "AEDAT4 file of 112 k events: codec.read_spikes (isolated decoder process)",
         "value": t_read * 1e3, "unit": "ms",
         "baseline": f"aedat decoder alone {t_dec * 1e3:.1f} ms ({t_read / t_dec:.1f}x); limit {lim * 1e3:.0f} ms",
         "ratio": t_read / lim, "target": "<= 1x the limit (3x decoder + 30 ms)"},
        {"what": f"  {n_small} files of 500 events: per file", "value": t_small * 1e3, "unit": "ms",
         "baseline": f"aedat decoder alone {t_small_dec * 1e3:.2f} ms; limit {lim_small * 1e3:.0f} ms",
         "ratio": t_small / lim_small, "target": "<= 1x the limit (3x decoder + 30 ms)"},
        {"what": "  the first read of a process (starts the decoder process, once)", "value": t_first * 1e3,
         "unit": "ms", "baseline": f"later reads of the same file {t_read * 1e3:.1f} ms"},
    ]


if __name__ == "__main__":
    args = parse(__doc__)
    print_table("codec", run(args.quick))
