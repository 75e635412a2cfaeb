"""Converters between tonic-style x/y/t/p arrays and input-spike arrays. Bad input raises CodecError (a
ValueError): a missing field, a 2-D array, a NaN or negative timestamp."""
from __future__ import annotations

import numpy as np

from .errors import CodecError
from .events import DVS_EVENT_DTYPE, SPIKE_DTYPE, XYTP_DTYPE, _store_checked, as_events, has_spike_fields

__all__ = ['spikes_from_array', 'from_xytp', 'to_xytp', 'dvs_from_xytp']


def _field(arr: np.ndarray, *names: str) -> np.ndarray:
    for n in names:
        if arr.dtype.names and n in arr.dtype.names:
            return arr[n]
    raise CodecError(f"event array has no field named {' or '.join(names)} (fields: {arr.dtype.names})")


def from_xytp(events: np.ndarray, *, core: int = 0, t_offset: int = 0, t_scale: float = 1.0,
              channel_from_polarity: bool = True, channel: int = 0) -> np.ndarray:
    """tonic-style structured array (fields x, y, t, p in any order and integer type) -> spike array.

    ``t_us = t * t_scale + t_offset`` (t_scale converts the source unit to µs). Polarity becomes the input
    channel (``channel_from_polarity``), else every event goes to ``channel``. Negative times after the
    offset are refused.
    """
    events = np.asarray(events)
    if events.dtype.names is None:
        raise TypeError(f"expected a structured array with x/y/t/p fields, got dtype {events.dtype}")
    x, y = _field(events, "x"), _field(events, "y")
    t = _field(events, "t", "timestamp")
    if events.ndim != 1:
        raise CodecError(f"event arrays are 1-D; got shape {events.shape}")
    out = np.empty(events.shape[0], dtype=SPIKE_DTYPE)
    if t.dtype.kind == "f" and t.size and not np.all(np.isfinite(t)):
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise CodecError(f"t[{i}] = {t[i]} is not a finite timestamp")
    tt = np.rint(t.astype(np.float64) * t_scale + t_offset) if (t_scale != 1.0 or t.dtype.kind == "f") \
        else t.astype(np.int64) + t_offset
    if tt.size and tt.min() < 0:
        raise CodecError(f"event {int(np.argmin(tt))}: timestamp becomes negative ({tt.min()} µs) after offset/scale")
    _store_checked(out, "t", tt)
    out["core"] = core
    if channel_from_polarity:
        p = _field(events, "p", "on", "polarity")
        _store_checked(out, "c", p.astype(np.int64) if p.dtype.kind == "b" else p)
    else:
        out["c"] = channel
    _store_checked(out, "x", x)
    _store_checked(out, "y", y)
    return out


def spikes_from_array(events: np.ndarray, **kw) -> np.ndarray:
    """Input spikes from any event array: one with all SPIKE_DTYPE fields (any byte order / layout) is cast
    field by field; anything else is read as tonic-style x/y/t/p (``kw`` as :func:`from_xytp`)."""
    events = np.asarray(events)
    if has_spike_fields(events.dtype):
        return as_events(events, "spike")
    return from_xytp(events, **kw)


def to_xytp(spikes: np.ndarray) -> np.ndarray:
    """Spike array -> tonic-style x/y/t/p (:data:`XYTP_DTYPE`: x, y int16, t int64 µs, p int16 = the channel,
    so ``from_xytp(to_xytp(s), core=k)`` gives ``s`` back for spikes of core k). The core is not kept."""
    spikes = as_events(np.asarray(spikes), "spike")
    out = np.empty(spikes.shape[0], dtype=XYTP_DTYPE)
    _store_checked(out, "x", spikes["x"])
    _store_checked(out, "y", spikes["y"])
    _store_checked(out, "t", spikes["t"])
    _store_checked(out, "p", spikes["c"])
    return out


def dvs_from_xytp(events: np.ndarray, *, t_offset: int = 0) -> np.ndarray:
    """tonic-style x/y/t/p array -> DvsEvent array (for the chip's DVS input stage)."""
    events = np.asarray(events)
    out = np.empty(events.shape[0], dtype=DVS_EVENT_DTYPE)
    t = _field(events, "t", "timestamp")
    _store_checked(out, "t", t + t_offset if t.dtype.kind != "f" else np.rint(t + t_offset))
    _store_checked(out, "x", _field(events, "x"))
    _store_checked(out, "y", _field(events, "y"))
    out["p"] = _field(events, "p", "on", "polarity") != 0
    return out
