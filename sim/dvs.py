"""The DVS pre-processing stage in the datasheet's order (docs/chip-notes.md): polarity select / merge -> pooling (x and y
independently) -> crop (ROI) -> mirror / diagonal mirror; then one copy per destination core, and a copy
to the host (the DVS layer's id, :data:`DVS_LAYER`) when the stage is monitored."""
from __future__ import annotations

import numpy as np

from ..codec.events import DVS_EVENT_DTYPE, SPIKE_DTYPE
from ..compiler.chips import get_chip
from ..compiler.config import DVSConfig

__all__ = ["DVS_LAYER", "dvs_stage", "dvs_to_spikes", "dvs_to_spikes_numpy", "core_spikes"]

try:
    from ._ccore import dvs_spikes as _dvs_spikes
except ImportError:  # extension not built (SPECKSTREAM_NO_EXT=1): the numpy stage
    _dvs_spikes = None  # type: ignore[assignment]

#: the DVS layer's id on the event bus (monitored DVS events carry it): the chip table's, the same on every chip
DVS_LAYER = get_chip("speck2f").dvs_id


def dvs_stage(events: np.ndarray, dvs: DVSConfig) -> np.ndarray:
    """DvsEvents (on the sensor) -> the stage's output events as SPIKE_DTYPE with core 13."""
    ev = np.asarray(events, dtype=DVS_EVENT_DTYPE)
    p = ev["p"].astype(np.int64)
    keep = np.where(p == 1, dvs.on_channel, dvs.off_channel).astype(bool)
    ev, p = ev[keep], p[keep]
    c = np.zeros_like(p) if dvs.merge_polarities else p
    y = ev["y"].astype(np.int64) // dvs.pooling[0]
    x = ev["x"].astype(np.int64) // dvs.pooling[1]
    top, bottom, left, right = dvs.roi()
    m = (y >= top) & (y < bottom) & (x >= left) & (x < right)
    ev, c, x, y = ev[m], c[m], x[m] - left, y[m] - top
    H, W = bottom - top, right - left
    if dvs.flip_x:
        x = W - 1 - x
    if dvs.flip_y:
        y = H - 1 - y
    if dvs.swap_xy:
        x, y = y, x
    out = np.empty(ev.shape[0], dtype=SPIKE_DTYPE)
    out["t"], out["core"], out["c"], out["x"], out["y"] = ev["t"], DVS_LAYER, c, x, y
    return out


def dvs_to_spikes(events: np.ndarray, dvs: DVSConfig) -> np.ndarray:
    """The stage's output, one copy per destination core (interleaved per event, in destination order): one C
    pass when the engine is built (~3 ns per event), else the numpy stage (~60 ns); the two are tested equal."""
    if _dvs_spikes is not None:
        top, bottom, left, right = dvs.roi()
        pool_y, pool_x = dvs.pooling
        out = _dvs_spikes(np.asarray(events, dtype=DVS_EVENT_DTYPE), pool_y, pool_x, top, bottom, left, right,
                          dvs.merge_polarities, dvs.flip_x, dvs.flip_y, dvs.swap_xy, dvs.on_channel,
                          dvs.off_channel, list(dvs.destinations or []))
        return out.view(SPIKE_DTYPE)
    return dvs_to_spikes_numpy(events, dvs)


def core_spikes(kind: str, events: np.ndarray, dvs: DVSConfig | None) -> np.ndarray:
    """What the CNN cores receive from an input of ``kind`` (as ``to_input`` returns it): DvsEvents through the
    stage, spikes as they are."""
    return dvs_to_spikes(events, dvs) if kind == "dvs" and dvs is not None else events


def dvs_to_spikes_numpy(events: np.ndarray, dvs: DVSConfig) -> np.ndarray:
    """:func:`dvs_to_spikes` in numpy: the reference for the C pass, and the path without the extension."""
    stage = dvs_stage(events, dvs)
    dests = dvs.destinations or []
    out = np.empty(stage.shape[0] * len(dests), dtype=SPIKE_DTYPE)
    for j, core in enumerate(dests):
        part = out[j::len(dests)]
        part[:] = stage
        part["core"] = core
    return out
