"""The DVS pre-processing stage as CHIP.md 5.2 orders it: polarity select/merge -> pooling -> crop (ROI)
-> mirror / diagonal mirror; then one copy per destination core."""
from __future__ import annotations

import numpy as np

from ..codec.events import DVS_EVENT_DTYPE, SPIKE_DTYPE
from ..compiler.config import DVSConfig


def dvs_to_spikes(events: np.ndarray, dvs: DVSConfig) -> np.ndarray:
    ev = np.asarray(events, dtype=DVS_EVENT_DTYPE)
    p = ev["p"].astype(np.int64)
    keep = np.where(p == 1, dvs.on_channel, dvs.off_channel)
    H0, W0 = dvs.input_size
    keep &= (ev["x"] < W0) & (ev["y"] < H0)
    ev, p = ev[keep], p[keep]
    c = np.zeros_like(p) if dvs.merge_polarities else p
    y = ev["y"].astype(np.int64) // dvs.pooling[0]
    x = ev["x"].astype(np.int64) // dvs.pooling[1]
    H, W = H0 // dvs.pooling[0], W0 // dvs.pooling[1]
    if dvs.crop is not None:
        top, bottom, left, right = dvs.crop
        m = (y >= top) & (y < bottom) & (x >= left) & (x < right)
        ev, c, x, y = ev[m], c[m], x[m] - left, y[m] - top
        H, W = bottom - top, right - left
    if dvs.flip_x:
        x = W - 1 - x
    if dvs.flip_y:
        y = H - 1 - y
    if dvs.swap_xy:
        x, y = y, x
    n = ev.shape[0]
    dests = dvs.destinations or []
    out = np.empty(n * len(dests), dtype=SPIKE_DTYPE)
    for j, core in enumerate(dests):
        part = out[j::len(dests)] if dests else out
        part["t"], part["core"], part["c"], part["x"], part["y"] = ev["t"], core, c, x, y
    return out
