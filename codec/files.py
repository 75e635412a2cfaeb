"""Event files: the streaming msgpack recording format (``.spk``) and readers for .npy / AEDAT4 / EVT.

``.spk`` layout - a valid msgpack stream of objects:

1. header map ``{"format": "speckstream-events", "version": 1, "kinds": {kind: numpy descr},
   "meta": {...}}``;
2. any number of chunks, each a 4-array ``[kind: str, n: uint64, crc32: uint32, payload: bin32]`` where
   the payload is ``n`` little-endian records of that kind's dtype.

Chunks are framed by hand with fixed-width msgpack headers so that the payload is written straight from
the array and read straight into one (msgpack's own ``packb`` copies and runs at ~0.3 GB/s here). A file
can be appended to while recording; a reader stops at a truncated last chunk, warns, and keeps the intact
chunks. Nothing is ever unpickled; header sizes and chunk sizes are bounded.
"""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Iterator

import msgpack
import numpy as np

from .convert import from_xytp
from .errors import EventFileError, TruncatedFileWarning
from .events import KINDS, SPIKE_DTYPE

FORMAT_NAME = "speckstream-events"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # 1 MiB of header (meta) at most
MAX_CHUNK_BYTES = 1 << 28  # 256 MiB per chunk at most
DEFAULT_CHUNK_EVENTS = 1 << 20

_DTYPE_TO_KIND = {dt: k for k, dt in KINDS.items()}
_U64 = struct.Struct(">BQ")
_U32 = struct.Struct(">BI")


def kind_of(arr: np.ndarray) -> str:
    """The event kind of an array, from its dtype."""
    try:
        return _DTYPE_TO_KIND[arr.dtype]
    except KeyError:
        raise TypeError(
            f"dtype {arr.dtype} is not an event dtype; use speckstream.codec.events.as_events first"
        ) from None


def _descr(dtype: np.dtype) -> list:
    return [list(d) for d in np.lib.format.dtype_to_descr(dtype)]


def _chunk_prefix(kind: str, n: int, crc: int, nbytes: int) -> bytes:
    k = kind.encode()
    if len(k) > 31:
        raise ValueError(f"kind name {kind!r} too long")
    return (bytes([0x94, 0xA0 | len(k)]) + k + _U64.pack(0xCF, n) + _U32.pack(0xCE, crc)
            + _U32.pack(0xC6, nbytes))


class EventFileWriter:
    """Append-only writer of ``.spk`` recordings. Use as a context manager.

    ``mode="a"`` appends to an existing recording (its header must match), cutting off a truncated last
    chunk first. Each :meth:`append` writes whole chunks; :meth:`flush` pushes them to the OS.
    """

    def __init__(self, path, *, meta: dict | None = None, mode: str = "w",
                 chunk_events: int = DEFAULT_CHUNK_EVENTS, checksum: bool = True):
        self.path = Path(path)
        self.chunk_events = int(chunk_events)
        self.checksum = checksum
        self.counts: dict[str, int] = {}
        if mode == "a" and self.path.exists() and self.path.stat().st_size > 0:
            reader = EventFileReader(self.path)
            end = reader.scan()
            self.meta = reader.meta
            self.counts = dict(reader.counts)
            self._f = open(self.path, "r+b")
            self._f.truncate(end)
            self._f.seek(end)
        elif mode in ("w", "a"):
            self.meta = dict(meta or {})
            self._f = open(self.path, "wb")
            header = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                      "kinds": {k: _descr(dt) for k, dt in KINDS.items()}, "meta": self.meta}
            blob = msgpack.packb(header, use_bin_type=True)
            if len(blob) > MAX_HEADER_BYTES:
                raise ValueError(f"metadata too large ({len(blob)} bytes > {MAX_HEADER_BYTES})")
            self._f.write(blob)
        else:
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")

    def append(self, events: np.ndarray, kind: str | None = None) -> None:
        """Append an event array (any length; split into chunks of ``chunk_events``)."""
        events = np.asarray(events)
        kind = kind or kind_of(events)
        if events.dtype != KINDS[kind]:
            raise TypeError(f"array of dtype {events.dtype} is not of kind {kind!r}")
        events = np.ascontiguousarray(events)
        for start in range(0, events.shape[0], self.chunk_events):
            part = events[start:start + self.chunk_events]
            buf = memoryview(part).cast("B")
            crc = zlib.crc32(buf) if self.checksum else 0
            self._f.write(_chunk_prefix(kind, part.shape[0], crc, buf.nbytes))
            self._f.write(buf)
        self.counts[kind] = self.counts.get(kind, 0) + events.shape[0]

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "EventFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventFileReader:
    """Lazy, chunked reader of ``.spk`` recordings.

    >>> with EventFileReader("rec.spk") as r:          # doctest: +SKIP
    ...     for kind, arr in r.chunks(): ...
    ...     spikes = r.read("spike")
    """

    def __init__(self, path, *, max_chunk_bytes: int = MAX_CHUNK_BYTES):
        self.path = Path(path)
        self.max_chunk_bytes = max_chunk_bytes
        self._f = open(self.path, "rb")
        self.truncated = False
        self.truncated_at: int | None = None
        self.counts: dict[str, int] = {}
        self._read_header()

    def _fail(self, msg: str):
        raise EventFileError(f"{self.path}: {msg}")

    def _read_header(self) -> None:
        head = self._f.read(MAX_HEADER_BYTES)
        if not head:
            self._fail("empty file, not a speckstream event file")
        up = msgpack.Unpacker(max_buffer_size=MAX_HEADER_BYTES, raw=False, strict_map_key=True,
                              max_bin_len=0, max_ext_len=0)
        up.feed(head)
        try:
            header = up.unpack()
        except msgpack.OutOfData:
            self._fail("header is cut short or larger than 1 MiB")
        except Exception as e:  # msgpack raises several types on garbage
            self._fail(f"not a speckstream event file (header does not decode: {e})")
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            self._fail("not a speckstream event file (missing format marker)")
        if header.get("version") != FORMAT_VERSION:
            self._fail(f"format version {header.get('version')} is not supported (this reader: {FORMAT_VERSION})")
        self.meta = header.get("meta") or {}
        self.dtypes: dict[str, np.dtype] = {}
        for kind, descr in (header.get("kinds") or {}).items():
            try:
                dt = np.lib.format.descr_to_dtype([tuple(d) for d in descr])
            except Exception as e:
                self._fail(f"kind {kind!r} has an invalid dtype description: {e}")
            if dt.hasobject:
                self._fail(f"kind {kind!r} declares object fields, refused")
            self.dtypes[kind] = dt
        self.data_start = up.tell()

    def _iter_raw(self, want: set[str] | None, dest: np.ndarray | None = None
                  ) -> Iterator[tuple[str, int, np.ndarray | None]]:
        """Walk the chunks. With ``dest`` (one array of the single wanted kind), payloads are read straight
        into consecutive slices of it (no per-chunk allocation, no concatenation)."""
        f = self._f
        filled = 0
        f.seek(self.data_start)
        while True:
            pos = f.tell()
            b = f.read(2)
            if not b:
                return
            if len(b) < 2 or b[0] != 0x94 or (b[1] & 0xE0) != 0xA0:
                if len(b) < 2:
                    self._truncate(pos)
                    return
                self._fail(f"corrupt chunk header at byte {pos}")
            klen = b[1] & 0x1F
            rest = f.read(klen + 9 + 5 + 5)
            if len(rest) < klen + 19:
                self._truncate(pos)
                return
            kind = rest[:klen].decode("utf-8", "replace")
            t1, n = _U64.unpack_from(rest, klen)
            t2, crc = _U32.unpack_from(rest, klen + 9)
            t3, nbytes = _U32.unpack_from(rest, klen + 14)
            if (t1, t2, t3) != (0xCF, 0xCE, 0xC6):
                self._fail(f"corrupt chunk header at byte {pos}")
            dt = self.dtypes.get(kind)
            if dt is None:
                self._fail(f"chunk at byte {pos} has unknown kind {kind!r}")
            if nbytes != n * dt.itemsize or nbytes > self.max_chunk_bytes:
                self._fail(f"chunk at byte {pos}: {n} {kind} events do not match {nbytes} payload bytes "
                           f"(or exceed the {self.max_chunk_bytes}-byte chunk limit)")
            if f.tell() + nbytes > self._size():  # payload cut short: the last chunk is truncated
                self._truncate(pos)
                return
            if want is not None and kind not in want:
                f.seek(nbytes, os.SEEK_CUR)
                self.counts[kind] = self.counts.get(kind, 0) + n
                yield kind, n, None
                continue
            if dest is not None:
                if filled + n > len(dest):
                    self._fail(f"chunk at byte {pos} holds more events than the file's headers announced")
                arr = dest[filled:filled + n]
                filled += n
            else:
                arr = np.empty(n, dtype=dt)
            got = f.readinto(memoryview(arr).cast("B")) if n else 0
            if got < nbytes:
                self._truncate(pos)
                return
            if crc and zlib.crc32(memoryview(arr).cast("B")) != crc:
                self._fail(f"chunk at byte {pos} ({n} {kind} events) fails its checksum: data corrupt")
            self.counts[kind] = self.counts.get(kind, 0) + n
            yield kind, n, arr

    def _size(self) -> int:
        return os.fstat(self._f.fileno()).st_size

    def _truncate(self, pos: int) -> None:
        self.truncated = True
        self.truncated_at = pos
        warnings.warn(
            f"{self.path}: last chunk truncated at byte {pos}; the intact chunks before it were kept",
            TruncatedFileWarning, stacklevel=4,
        )

    def chunks(self, kinds=None) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(kind, array)`` per chunk in file order; ``kinds`` restricts to those kinds."""
        self.counts = {}
        want = None if kinds is None else ({kinds} if isinstance(kinds, str) else set(kinds))
        for kind, _, arr in self._iter_raw(want):
            if arr is not None:
                yield kind, arr

    def read(self, kind: str = "spike") -> np.ndarray:
        """All events of one kind in one array (a header scan sizes it; payloads are read into it)."""
        self.scan()
        dt = self.dtypes.get(kind, KINDS.get(kind))
        if dt is None:
            return np.empty(0, dtype=KINDS.get(kind, KINDS["spike"]))
        out = np.empty(self.counts.get(kind, 0), dtype=dt)
        self.counts = {}
        filled = 0
        for _, n, _ in self._iter_raw({kind}, dest=out):
            filled += n
        return out[:filled]

    def scan(self) -> int:
        """Walk all chunk headers (no payload reads); fills ``counts``; returns the end of the last intact chunk."""
        self.counts = {}
        for _ in self._iter_raw(set()):
            pass
        return self.truncated_at if self.truncated else self._size()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "EventFileReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -------------------------------------------------------------------------------------------------
# Generic input readers: anything -> chunks of spike arrays


def iter_spikes(path, *, core: int = 0, t_offset: int = 0, chunk_events: int = DEFAULT_CHUNK_EVENTS,
                channel_from_polarity: bool = True) -> Iterator[np.ndarray]:
    """Yield chunks of input spikes (SPIKE_DTYPE) from an event file of any supported format.

    ``.spk`` (speckstream recordings; its spikes are taken as they are), ``.npy`` (a SPIKE_DTYPE array or
    any x/y/t/p structured array), ``.aedat4`` (through ``aedat``), ``.raw``/``.dat``/``.es``/``.csv``
    (through ``faery``, optional). Non-spike files are mapped to ``core`` with polarity as channel.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"event file not found: {path}")
    suffix = path.suffix.lower()
    conv = dict(core=core, t_offset=t_offset, channel_from_polarity=channel_from_polarity)
    if suffix == ".spk":
        with EventFileReader(path) as r:
            for _, arr in r.chunks("spike"):
                yield arr
    elif suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False, mmap_mode="r")
        except ValueError as e:
            raise EventFileError(f"{path}: not a plain .npy array ({e})") from None
        if arr.dtype == SPIKE_DTYPE:
            for s in range(0, arr.shape[0], chunk_events):
                yield np.array(arr[s:s + chunk_events])
        else:
            for s in range(0, arr.shape[0], chunk_events):
                yield from_xytp(np.array(arr[s:s + chunk_events]), **conv)
    elif suffix == ".aedat4":
        try:
            import aedat
        except ImportError:
            raise ImportError("reading AEDAT4 needs the 'aedat' package: pip install aedat") from None
        try:
            decoder = aedat.Decoder(str(path))
            for packet in decoder:
                if "events" in packet:
                    yield from_xytp(packet["events"], **conv)
        except (OSError, RuntimeError) as e:
            raise EventFileError(f"{path}: corrupt AEDAT4 file ({e})") from None
    elif suffix in (".raw", ".dat", ".es", ".csv"):
        try:
            import faery
        except ImportError:
            raise ImportError(f"reading {suffix} files needs the optional 'faery' package: "
                              "pip install 'speckstream[evt]'") from None
        for chunk in faery.events_stream_from_file(path):
            yield from_xytp(chunk, **conv)
    else:
        raise EventFileError(f"{path}: unknown event file type {suffix!r} "
                             "(supported: .spk, .npy, .aedat4, .raw, .dat, .es, .csv)")


def read_spikes(path, **kwargs) -> np.ndarray:
    """All input spikes of an event file (see :func:`iter_spikes`)."""
    parts = list(iter_spikes(path, **kwargs))
    return np.concatenate(parts) if parts else np.empty(0, dtype=SPIKE_DTYPE)


def write_spk(path, *arrays: np.ndarray, meta: dict | None = None) -> None:
    """Write arrays (of any event kinds) to a new ``.spk`` recording in one call."""
    with EventFileWriter(path, meta=meta) as w:
        for a in arrays:
            w.append(a)
