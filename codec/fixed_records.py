"""Readers for the two classic fixed-record event formats of public neuromorphic data sets, in numpy (no
decoder library, no child process: a fixed-size record cannot crash a reader, and a broken file is refused
by its size and field ranges before anything is returned).

* Prophesee / Chronocam ``.dat`` (ATIS; N-CARS, the Prophesee automotive data sets): ASCII header lines
  starting with ``%`` (``% Data file containing Event2d events.``, ``% Version 2``, optionally ``% Height`` /
  ``% Width``), then one byte event type (0x00 Event2d, 0x0C CD) and one byte event size (8), then 8-byte
  little-endian records: uint32 timestamp (µs) and uint32 with x in bits 0-13, y in bits 14-27, polarity in
  bits 28-31. The layout of Prophesee's own ``dat_events_tools.py`` and of expelliarmus; the 32-bit
  timestamp wraps after 71.6 min and is unwrapped here.
* N-MNIST / N-Caltech101 ``.bin`` (Orchard et al. 2015): 5-byte big-endian records, x (8 bits), y (8 bits),
  polarity (1 bit), timestamp (23 bits, µs); a record with y == 240 marks a 2^23 µs timestamp overflow.

Both return tonic's x/y/t/p layout (XYTP_DTYPE-compatible fields), the chip's input converters take it from
there. faery also reads ``.dat``, but only the CD (0x0C) record type, not the Event2d files of N-CARS.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import CodecError, EventFileError, TruncatedFileWarning
from .events import check_time_order

__all__ = ["RECORD_EVENTS_DTYPE", "read_dat", "read_nmnist_bin", "dat_header", "FIXED_RECORD_READERS"]

#: what these readers return: tonic's field names, timestamps in µs
RECORD_EVENTS_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])

_DAT_TYPES = {0x00: "Event2d", 0x0C: "CD"}
_MAX_HEADER = 1 << 16


def dat_header(path) -> tuple[dict, int, int]:
    """(header fields {"Version": "2", "Height": "240", ...}, event type byte, offset of the first record)."""
    fields: dict[str, str] = {}
    with open(path, "rb") as f:
        while True:
            pos = f.tell()
            first = f.read(1)
            if first != b"%":
                break
            line = f.readline(_MAX_HEADER)
            if not line.endswith(b"\n") or f.tell() > _MAX_HEADER:
                raise EventFileError(f"{path}: a .dat header line at byte {pos} does not end (not a Prophesee .dat file?)")
            words = line.decode("ascii", "replace").strip().split(" ", 1)
            if words and words[0]:
                fields[words[0]] = words[1] if len(words) > 1 else ""
        f.seek(pos)
        head = f.read(2)
    if pos == 0:
        raise EventFileError(f"{path}: no '%' header lines: not a Prophesee / Chronocam .dat event file")
    if len(head) < 2:
        raise EventFileError(f"{path}: the .dat header ends without the event type and size bytes")
    ev_type, ev_size = head[0], head[1]
    if ev_type not in _DAT_TYPES:
        raise EventFileError(f"{path}: .dat event type 0x{ev_type:02x} is not supported (0x00 Event2d and 0x0C CD are)")
    if ev_size != 8:
        raise EventFileError(f"{path}: .dat event size {ev_size} bytes; Event2d / CD records are 8 bytes")
    return fields, ev_type, pos + 2


def _records(path: Path, offset: int, size: int, what: str) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8, offset=offset)
    whole = raw.size - raw.size % size
    if whole != raw.size:
        warnings.warn(f"{path}: the last {what} record is cut off after {raw.size % size} of {size} bytes (a truncated "
                      f"recording); the {whole // size} whole records before it are kept", TruncatedFileWarning,
                      stacklevel=3)
    return raw[:whole]


def _unwrap32(t: np.ndarray) -> np.ndarray:
    """uint32 µs timestamps that wrap (after 2^32 µs = 71.6 min) -> int64: a step back by more than half the
    range is a wrap (2^32 added from there on); a small step back is left for the time-order check to name."""
    t = t.astype(np.int64)
    wraps = np.concatenate([[0], np.cumsum(np.diff(t) < -(1 << 31))])
    return t + (wraps << 32)


def read_dat(path) -> np.ndarray:
    """A Prophesee / Chronocam ``.dat`` file (Event2d or CD) as x/y/t/p events (RECORD_EVENTS_DTYPE)."""
    path = Path(path)
    fields, _, offset = dat_header(path)
    raw = _records(path, offset, 8, ".dat").view("<u4").reshape(-1, 2)
    w = raw[:, 1]
    out = np.empty(len(raw), RECORD_EVENTS_DTYPE)
    out["t"] = _unwrap32(raw[:, 0])
    out["x"], out["y"] = w & 0x3FFF, (w >> 14) & 0x3FFF
    p = w >> 28
    bad = np.flatnonzero(p > 1)
    if bad.size:
        i = int(bad[0])
        raise EventFileError(f"{path}: record {i} has polarity {int(p[i])} (bits 28-31 must be 0 or 1): not an "
                             "Event2d / CD .dat file, or a corrupt one")
    out["p"] = p
    _check_geometry(path, out, fields)
    return out


def _check_geometry(path: Path, ev: np.ndarray, fields: dict) -> None:
    for axis, key in (("x", "Width"), ("y", "Height")):
        size = fields.get(key, "")
        if size.isdigit() and len(ev) and int(ev[axis].max()) >= int(size):
            i = int(np.argmax(ev[axis] >= int(size)))
            raise EventFileError(f"{path}: record {i} has {axis}={int(ev[axis][i])}, off the {key.lower()} "
                                 f"{size} the header gives (a corrupt file)")


def read_nmnist_bin(path) -> np.ndarray:
    """An N-MNIST / N-Caltech101 ``.bin`` file (40-bit ATIS records) as x/y/t/p events (RECORD_EVENTS_DTYPE);
    the 2^23 µs overflow records are consumed, not returned."""
    path = Path(path)
    raw = _records(path, 0, 5, ".bin").reshape(-1, 5).astype(np.int64)
    overflow = raw[:, 1] == 240
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    t = t + (np.cumsum(overflow) << 23)
    keep = ~overflow
    out = np.empty(int(keep.sum()), RECORD_EVENTS_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = raw[keep, 0], raw[keep, 1], t[keep], raw[keep, 2] >> 7
    try:
        check_time_order(out["t"], advice="not an N-MNIST-style .bin file, or a corrupt one")
    except CodecError as e:
        raise EventFileError(f"{path}: {e}") from None
    return out


#: suffix -> reader of the whole file (x/y/t/p events)
FIXED_RECORD_READERS = {".dat": read_dat, ".bin": read_nmnist_bin}
