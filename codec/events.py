"""Event array dtypes: one numpy structured dtype per event kind.

Timestamps are host-side ``uint64`` microseconds (µs). The chip's 32-bit µs stamps are unwrapped by the
runtime before they reach these arrays. ``core`` is the chip layer id (0-8 CNN cores, 12 readout,
13 DVS layer) - samna calls it ``layer``.

Field layouts are fixed (``align=True``) so that the Cython kernels, event files and the fallback
agree byte for byte.
"""
from __future__ import annotations

import numpy as np

from .errors import CodecError

__all__ = ['check_time_order', 'has_spike_fields', 'SPIKE_RECORD', 'NV_RECORD', 'SPIKE_DTYPE', 'INPUT_SPIKE_DTYPE', 'OUTPUT_SPIKE_DTYPE', 'DVS_EVENT_DTYPE', 'READ_REQUEST_DTYPE',
           'WRITE_REQUEST_DTYPE', 'NEURON_VALUE_DTYPE', 'READOUT_DTYPE', 'NEURON_STATE_DTYPE',
           'TONIC_DTYPE', 'XYTP_DTYPE', 'decode_readout_fields', 'empty', 'spikes', 'as_events']

#: ``Spike`` into a core (input) or out of a monitored core (output): 16 bytes.
SPIKE_DTYPE = np.dtype(
    [("t", "<u8"), ("core", "u1"), ("c", "<u2"), ("x", "<u2"), ("y", "<u2")], align=True
)
#: Input spikes use the same layout as output spikes (samna's ``Spike`` goes both ways).
INPUT_SPIKE_DTYPE = SPIKE_DTYPE
#: Output spikes of monitored cores (coordinates before destination pooling).
OUTPUT_SPIKE_DTYPE = SPIKE_DTYPE

#: ``DvsEvent`` into the DVS pre-processing layer: 16 bytes.
DVS_EVENT_DTYPE = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")], align=True)

#: ``ReadNeuronValue`` request (no timestamp on the chip): 8 bytes.
READ_REQUEST_DTYPE = np.dtype([("core", "u1"), ("address", "<u4")], align=True)

#: ``WriteNeuronValue`` request: 12 bytes.
WRITE_REQUEST_DTYPE = np.dtype([("core", "u1"), ("address", "<u4"), ("vmem", "<i2")], align=True)

#: ``NeuronValue`` reply. The chip sends no timestamp; ``t`` is stamped on receipt (µs): 16 bytes.
NEURON_VALUE_DTYPE = np.dtype(
    [("t", "<u8"), ("core", "u1"), ("vmem", "<i2"), ("address", "<u4")], align=True
)

#: ``ReadoutValue`` (one per slow-clock tick; ``t`` stamped on receipt or by the simulator's tick, µs): the raw
#: 32-bit ``value`` and its fields (docs/chip-notes.md, "Readout layer"): ``valid`` (bit 20), ``class`` (bits 19:16, the
#: readout neuron with the largest average) and ``data`` (bits 15:0, meaning set by ``output_mode``: 0 clock
#: gating, 1 threshold-compare bits, 2 average of the selected neuron, 3 average of the largest).
READOUT_DTYPE = np.dtype([("t", "<u8"), ("value", "<u4"), ("valid", "?"), ("class", "u1"), ("data", "<u2")],
                         align=True)


def decode_readout_fields(readout: np.ndarray) -> np.ndarray:
    """Fill ``valid`` / ``class`` / ``data`` of a READOUT_DTYPE array from its raw ``value`` words (in place)."""
    v = readout["value"]
    readout["valid"] = (v >> 20) & 1
    readout["class"] = (v >> 16) & 0xF
    readout["data"] = v & 0xFFFF
    return readout

#: Decoded NeuronValue replies with coordinates.
NEURON_STATE_DTYPE = np.dtype(
    [("t", "<u8"), ("core", "u1"), ("c", "<u2"), ("x", "<u2"), ("y", "<u2"), ("vmem", "<i2")], align=True
)

#: Byte-level views of SPIKE_DTYPE / NEURON_VALUE_DTYPE with the padding named: what the Cython extensions'
#: ``spike_rec`` / ``nv_rec`` (codec/_records.pxd) see. Declared once, here.
SPIKE_RECORD = np.dtype([("t", "<u8"), ("core", "u1"), ("_pad", "u1"), ("c", "<u2"), ("x", "<u2"), ("y", "<u2")])
NV_RECORD = np.dtype([("t", "<u8"), ("core", "u1"), ("_pad", "u1"), ("vmem", "<i2"), ("address", "<u4")])

#: tonic's canonical event dtype (``tonic.io.events_struct``), accepted by the converters.
TONIC_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
#: what :func:`~speckstream.codec.to_xytp` returns: tonic's layout with ``p`` an integer (tonic's datasets use
#: integer polarities too), so that input channels beyond 0/1 survive the round trip.
XYTP_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i2")])

#: Event kind name -> dtype; the names are used in event files and by the runtime.
KINDS: dict[str, np.dtype] = {
    "spike": SPIKE_DTYPE,
    "dvs": DVS_EVENT_DTYPE,
    "read": READ_REQUEST_DTYPE,
    "write": WRITE_REQUEST_DTYPE,
    "neuron_value": NEURON_VALUE_DTYPE,
    "readout": READOUT_DTYPE,
    "neuron_state": NEURON_STATE_DTYPE,
}


def empty(kind: str, n: int = 0) -> np.ndarray:
    """An array of ``n`` zeroed events of ``kind`` (a key of :data:`KINDS`)."""
    return np.zeros(n, dtype=_dtype_of(kind))


def _dtype_of(kind: str) -> np.dtype:
    try:
        return KINDS[kind]
    except KeyError:
        raise CodecError(f"unknown event kind {kind!r}; known kinds: {', '.join(KINDS)}") from None


def spikes(t=0, core=0, c=0, x=0, y=0) -> np.ndarray:
    """Build a spike array from scalars or equal-length arrays (broadcast), timestamps in µs."""
    t, core, c, x, y = np.broadcast_arrays(*(np.asarray(v) for v in (t, core, c, x, y)))
    out = np.empty(t.shape[0] if t.ndim else 1, dtype=SPIKE_DTYPE)
    for name, v in (("t", t), ("core", core), ("c", c), ("x", x), ("y", y)):
        _store_checked(out, name, v.reshape(-1))
    return out


def _store_checked(out: np.ndarray, name: str, values) -> None:
    """Store ``values`` into field ``name``, refusing (never truncating or wrapping) values the field cannot
    hold: non-integral or non-finite floats, and integers out of its range. The error names field and index."""
    values = np.asarray(values)
    target = out.dtype[name]
    if values.size and target.kind in "iu":
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values) | (values != np.round(values))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                hint = (": timestamps are whole microseconds (µs); convert seconds with np.round(t * 1e6)"
                        if name == "t" else "")
                raise CodecError(f"{name}[{i}] = {values[i]} is not an integer (the {target} field holds integers)"
                                 f"{hint}")
        elif values.dtype.kind not in "iub":
            raise CodecError(f"field {name!r} must hold numbers, got dtype {values.dtype}")
        info = np.iinfo(target)
        lo, hi = values.min(), values.max()
        if lo < info.min or hi > info.max:
            bad = int(np.flatnonzero((values < info.min) | (values > info.max))[0])
            raise CodecError(f"{name}[{bad}] = {values[bad]} does not fit the {target} field [{info.min}, {info.max}]")
    out[name] = values


def has_spike_fields(dtype: np.dtype) -> bool:
    """Does a structured dtype carry every input-spike field (t, core, c, x, y), in any layout or byte order?
    Such arrays are chip spikes; others with x/y/t/p are camera (tonic-style) events."""
    return set(SPIKE_DTYPE.names or ()) <= set(np.dtype(dtype).names or ())


def check_time_order(t, *, start: int = 0, last: int | None = None, noun: str = "event", where: str = "",
                     advice: str = "events must be in time order") -> None:
    """Refuse decreasing timestamps, naming the first out-of-order one (``start`` offsets its index, ``last`` is
    the timestamp before this array, ``where`` follows the index, e.g. " of this send")."""
    from .errors import CodecError

    t = np.asarray(t)
    if len(t) and last is not None and int(t[0]) < last:
        raise CodecError(f"{noun} {start}{where} has timestamp {int(t[0])} µs, before the previous {noun} ({last} µs): "
                         f"{advice}")
    if len(t) > 1:
        back = np.flatnonzero(t[1:] < t[:-1])
        if back.size:
            i = int(back[0]) + 1
            raise CodecError(f"{noun} {start + i}{where} has timestamp {int(t[i])} µs, before {noun} {start + i - 1} "
                             f"({int(t[i - 1])} µs): {advice}")


def as_events(arr: np.ndarray, kind: str) -> np.ndarray:
    """Return ``arr`` as an array of ``kind``: same dtype passes through; other structured arrays
    with the same field names are cast field by field (with range checks)."""
    dtype = _dtype_of(kind)
    arr = np.asarray(arr)
    if arr.dtype == dtype:
        return arr
    if arr.ndim != 1:
        raise CodecError(f"event arrays are 1-D; got shape {arr.shape}")
    names = arr.dtype.names
    if names is None:
        raise TypeError(f"expected a structured array of {kind!r} events, got dtype {arr.dtype}")
    missing = [n for n in dtype.names or () if n not in names and n != "t"]
    if missing:
        tonic = " (or x, y, t, p for tonic-style events)" if kind == "spike" else ""
        raise CodecError(f"array lacks field(s) {missing} needed for {kind!r} events{tonic}; it has {names}")
    out = np.zeros(arr.shape[0], dtype=dtype)
    for name in dtype.names or ():
        if name in names:
            _store_checked(out, name, arr[name])
    return out
