"""Converters between tonic-style x/y/t/p arrays and input-spike arrays. Bad input raises CodecError (a
ValueError): a missing field, a 2-D array, a NaN, negative or fractional timestamp (timestamps are whole µs:
seconds are refused with the conversion named, never rounded to 0), a polarity other than 0/1 or -1/+1."""
from __future__ import annotations

import warnings

import numpy as np

from .errors import CodecError, TimestampWarning
from .events import DVS_EVENT_DTYPE, SPIKE_DTYPE, XYTP_DTYPE, _store_checked, as_events, has_spike_fields

__all__ = ['spikes_from_array', 'from_xytp', 'to_xytp', 'dvs_from_xytp', 'timestamps_us', 'polarity', 'warn_if_short',
           'SHORT_STREAM_US']

#: a whole stream spanning less than this (µs) is most likely not in µs: :func:`warn_if_short`
SHORT_STREAM_US = 1000


def _field(arr: np.ndarray, *names: str) -> np.ndarray:
    for n in names:
        if arr.dtype.names and n in arr.dtype.names:
            return arr[n]
    raise CodecError(f"event array has no field named {' or '.join(names)} (fields: {arr.dtype.names})")


def timestamps_us(t: np.ndarray, *, t_scale: float = 1.0, t_offset: int = 0) -> np.ndarray:
    """Timestamps as int64 µs: ``t * t_scale + t_offset``.

    With ``t_scale=1`` the timestamps must already be whole µs: a float that is not a whole number (17.5, or
    seconds such as 0.0123) raises CodecError saying how to convert, instead of being rounded (t in seconds
    used to all become 0). An explicit ``t_scale`` (1e6 for seconds, 1e3 for ms) is a unit conversion: the
    result is rounded to the nearest µs. NaN, infinite and negative results are refused."""
    t = np.asarray(t)
    if t.dtype.kind not in "iuf":
        raise CodecError(f"timestamps must be numbers (µs), got dtype {t.dtype}")
    if t.dtype.kind == "f" and t.size and not np.all(np.isfinite(t)):
        i = int(np.flatnonzero(~np.isfinite(t))[0])
        raise CodecError(f"t[{i}] = {t[i]} is not a finite timestamp")
    if t_scale == 1.0 and t.dtype.kind == "f" and t.size:
        frac = t != np.floor(t)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            lo, hi = float(t.min()), float(t.max())
            unit = ("these look like seconds: pass t_scale=1e6, or convert with t = np.round(t * 1e6)" if hi < 1e3
                    else "round them first: t = np.round(t).astype(np.int64)")
            raise CodecError(f"t[{i}] = {t[i]} is not a whole number of microseconds: speckstream timestamps are "
                             f"integer µs (this stream spans {lo:g} .. {hi:g}); {unit}")
    if t_scale != 1.0 or t.dtype.kind == "f":
        tt = np.rint(t.astype(np.float64) * t_scale + t_offset)
    else:
        tt = t.astype(np.int64) + t_offset
    if tt.size and tt.min() < 0:
        raise CodecError(f"event {int(np.argmin(tt))}: timestamp becomes negative ({tt.min()} µs) after offset/scale")
    return tt


def warn_if_short(t_us: np.ndarray, *, n: int | None = None, stacklevel: int = 3) -> None:
    """Warn (TimestampWarning) when a whole stream of several events (``n``, default ``len(t_us)``) spans less
    than a millisecond but not 0 (all at t=0 means "now"): most likely its timestamps are in ms or s, not µs."""
    t_us = np.asarray(t_us)
    n = len(t_us) if n is None else n
    if n < 2 or len(t_us) == 0:
        return
    span = int(t_us.max()) - int(t_us.min())
    if 0 < span < SHORT_STREAM_US:
        # one text for every stream, so that the warnings filter shows it once per call site, not once per
        # sample of a data set whose timestamps are all in ms
        warnings.warn("a whole event stream spans less than 1 ms: speckstream timestamps are microseconds - if "
                      "yours are milliseconds or seconds, convert first (t_us = t_ms * 1000, t_us = t_s * 1e6, or "
                      "codec.from_xytp(events, t_scale=...))", TimestampWarning, stacklevel=stacklevel)


def polarity(p: np.ndarray) -> np.ndarray:
    """Polarity (tonic's ``p``: bool or 0/1, or -1/+1 as much event-vision code writes it) -> 0/1 and other
    non-negative channels as they are. -1/+1 becomes 0/1 (off/on); any other negative value raises CodecError
    naming ``p``."""
    p = np.asarray(p)
    if p.dtype.kind == "b":
        return p.astype(np.int64)
    if p.dtype.kind not in "iuf":
        raise CodecError(f"polarity p must hold numbers, got dtype {p.dtype}")
    if p.size and p.min() < 0:
        if np.all((p == -1) | (p == 1)):
            return (p > 0).astype(np.int64)  # -1 -> 0 (off), +1 -> 1 (on)
        i = int(np.flatnonzero(p < 0)[0])
        raise CodecError(f"p[{i}] = {p[i]}: polarity must be 0/1 (or -1/+1, read as off/on; other values are "
                         "input channels >= 0); map it first, e.g. p = (p > 0)")
    return p


def from_xytp(events: np.ndarray, *, core: int = 0, t_offset: int = 0, t_scale: float = 1.0,
              channel_from_polarity: bool = True, channel: int = 0) -> np.ndarray:
    """tonic-style structured array (fields x, y, t, p in any order and integer type) -> spike array.

    ``t_us = t * t_scale + t_offset`` (t_scale converts the source unit to µs: 1e6 for seconds); with the default
    ``t_scale=1`` timestamps that are not whole µs are refused (:func:`timestamps_us`). Polarity becomes the input
    channel (``channel_from_polarity``; -1/+1 read as 0/1), else every event goes to ``channel``. Negative times
    after the offset are refused.
    """
    events = np.asarray(events)
    if events.dtype.names is None:
        raise TypeError(f"expected a structured array with x/y/t/p fields, got dtype {events.dtype}")
    x, y = _field(events, "x"), _field(events, "y")
    t = _field(events, "t", "timestamp")
    if events.ndim != 1:
        raise CodecError(f"event arrays are 1-D; got shape {events.shape}")
    out = np.empty(events.shape[0], dtype=SPIKE_DTYPE)
    _store_checked(out, "t", timestamps_us(t, t_scale=t_scale, t_offset=t_offset))
    out["core"] = core
    if channel_from_polarity:
        _store_checked(out, "c", polarity(_field(events, "p", "on", "polarity")))
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
    _store_checked(out, "t", timestamps_us(_field(events, "t", "timestamp"), t_offset=t_offset))
    _store_checked(out, "x", _field(events, "x"))
    _store_checked(out, "y", _field(events, "y"))
    out["p"] = polarity(_field(events, "p", "on", "polarity")) != 0
    return out
