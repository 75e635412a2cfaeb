"""Event files of every supported format read as chip input spikes: one table from file suffix to reader
(as tonic's io), so that what a format holds - chip spikes or a camera's x/y/t/p events - is said once.

``.spk`` is speckstream's own recording format (:mod:`.spk`); the other readers live beside their formats:
:mod:`.fixed_records` (``.dat``, ``.bin``, numpy) and :mod:`.isolated` (AEDAT4 and EVT decoders, run in a
child process so that a corrupt file cannot abort Python).
"""
from __future__ import annotations

import contextlib

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterable, Iterator

import numpy as np

from .convert import from_xytp, spikes_from_array
from .errors import EventFileError
from .events import SPIKE_DTYPE
from .fixed_records import FIXED_RECORD_READERS, dat_header
from .isolated import iter_isolated
from .spk import DEFAULT_CHUNK_EVENTS, EventFileReader

__all__ = ['Reader', 'READERS', 'reader_for', 'count_spikes', 'npy_events_problem', 'iter_spikes', 'read_spikes']

#: the keywords every reader passes on to the converters (core, t_offset, channel_from_polarity)
_Conv = dict
_Chunks = Callable[[Path, _Conv, int, str], Iterator[np.ndarray]]


@dataclass(frozen=True)
class Reader:
    """How one file format becomes chunks of SPIKE_DTYPE input spikes."""

    #: the file suffix, lower case, with its dot
    suffix: str
    #: True: a camera's x/y/t/p events (mapped to a core, polarity as channel); False: chip spikes with their
    #: own cores; None: decided by the file's content (``.npy`` holds either)
    camera: bool | None
    #: ``chunks(path, conv, chunk_events, on_error)`` -> SPIKE_DTYPE arrays
    chunks: _Chunks
    #: how many spikes the file holds without decoding it, when the format says (None: it must be decoded)
    count: Callable[[Path], int] | None = None
    #: the optional decoder package the format needs, and the pip requirement that installs it
    needs: tuple[str, str] | None = None


def _spk_chunks(path: Path, conv: _Conv, chunk_events: int, on_error: str) -> Iterator[np.ndarray]:
    with EventFileReader(path, on_error=on_error) as r:
        yield from (arr for _, arr in r.chunks("spike"))


def _spk_count(path: Path) -> int:
    with EventFileReader(path) as r:
        r.scan()
        return r.counts.get("spike", 0)


def _converted(path: Path, parts: Iterable[np.ndarray], convert: Callable[[np.ndarray], np.ndarray]
               ) -> Iterator[np.ndarray]:
    """``convert`` each part of a file's events in turn; a part that does not convert is an EventFileError naming
    the file and the events' range in it."""
    n = 0
    for part in parts:
        try:
            yield convert(part)
        except (ValueError, TypeError) as e:
            raise EventFileError(f"{path}: events {n}..{n + len(part) - 1}: {e}") from e
        n += len(part)


def _npy_chunks(path: Path, conv: _Conv, chunk_events: int, on_error: str) -> Iterator[np.ndarray]:
    arr = _load_npy(path)
    parts = (np.array(arr[s:s + chunk_events]) for s in range(0, arr.shape[0], chunk_events))
    yield from _converted(path, parts, lambda part: spikes_from_array(part, **conv))


def _fixed_record_chunks(path: Path, conv: _Conv, chunk_events: int, on_error: str) -> Iterator[np.ndarray]:
    raw = FIXED_RECORD_READERS[path.suffix.lower()](path)
    parts = (raw[s:s + chunk_events] for s in range(0, max(len(raw), 1), chunk_events))  # an empty file: one
    yield from _converted(path, parts, lambda part: from_xytp(part, **conv))               # empty chunk


def _isolated_chunks(path: Path, conv: _Conv, chunk_events: int, on_error: str) -> Iterator[np.ndarray]:
    # closed here, not by the garbage collector: an error's traceback would keep the decoder process held
    with contextlib.closing(iter_isolated(path, path.suffix.lower()[1:])) as raws:
        yield from _converted(path, raws, lambda part: from_xytp(part, **conv))


def _dat_count(path: Path) -> int:
    return (path.stat().st_size - dat_header(path)[2]) // 8


_FAERY = ("faery", "'speckstream[evt]'")

#: suffix -> reader, in the order the error for an unknown suffix lists them
READERS: dict[str, Reader] = {r.suffix: r for r in (
    Reader(".spk", False, _spk_chunks, _spk_count),
    Reader(".npy", None, _npy_chunks, lambda p: int(_load_npy(p).shape[0])),
    Reader(".aedat4", True, _isolated_chunks, needs=("aedat", "aedat")),
    Reader(".dat", True, _fixed_record_chunks, _dat_count),
    Reader(".bin", True, _fixed_record_chunks),
    Reader(".raw", True, _isolated_chunks, needs=_FAERY),
    Reader(".es", True, _isolated_chunks, needs=_FAERY),
    Reader(".csv", True, _isolated_chunks, needs=_FAERY),
)}


def reader_for(path) -> Reader:
    """The reader of ``path``'s format (EventFileError for a suffix no reader takes)."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise EventFileError(f"{path}: unknown event file type {path.suffix.lower()!r} "
                             "(supported: .spk, .npy, .aedat4, .dat, .bin (N-MNIST), .raw, .es, .csv)")
    return reader


def iter_spikes(path, *, core: int = 0, t_offset: int = 0, chunk_events: int = DEFAULT_CHUNK_EVENTS,
                channel_from_polarity: bool = True, on_error: str = "raise") -> Generator[np.ndarray, None, None]:
    """Yield chunks of input spikes (SPIKE_DTYPE) from an event file of any supported format.

    ``.spk`` (speckstream recordings; its spikes are taken as they are; ``on_error="skip"`` keeps every intact
    chunk of a file with corrupt ones), ``.npy`` (a 1-D SPIKE_DTYPE array or any x/y/t/p structured array),
    ``.aedat4`` (through ``aedat``), ``.raw``/``.es``/``.csv`` (through ``faery``, optional); these two
    decode in a child process, so a corrupt file raises EventFileError instead of aborting Python. ``.dat``
    (Prophesee / Chronocam Event2d or CD, e.g. N-CARS) and ``.bin`` (N-MNIST / N-Caltech101) are read with numpy
    (:mod:`.fixed_records`).
    Non-spike files are mapped to ``core`` with polarity as channel. Every failure is an EventFileError
    naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"event file not found: {path}")
    reader = reader_for(path)
    if reader.needs is not None and importlib.util.find_spec(reader.needs[0]) is None:
        raise ImportError(f"reading {reader.suffix} files needs the '{reader.needs[0]}' package: "
                          f"pip install {reader.needs[1]}")
    conv: _Conv = dict(core=core, t_offset=t_offset, channel_from_polarity=channel_from_polarity)
    yield from reader.chunks(path, conv, chunk_events, on_error)


def _load_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as e:  # numpy's header parser raises ValueError, EOFError, SyntaxError, TokenError...
        raise EventFileError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    problem = npy_events_problem(arr)
    if problem:
        raise EventFileError(f"{path}: {problem}")
    return arr


def npy_events_problem(arr: np.ndarray) -> str | None:
    """Why an array loaded from a ``.npy`` file is not events (None when it is): events are 1-D and structured,
    with x, y and t (or timestamp) fields - tonic's layout, or chip spikes."""
    names = set(arr.dtype.names or ())
    if arr.ndim == 1 and {"x", "y"} <= names and {"t", "timestamp"} & names:
        return None
    return (f"holds a {arr.dtype} array of shape {arr.shape}, not events: give a 1-D structured array with x, y, "
            "t (µs) and p fields (tonic's layout) or chip spikes")


def count_spikes(path) -> int | None:
    """How many input spikes a file holds, when that is known without decoding it: a ``.spk`` file's chunk
    headers, a ``.npy`` array's shape, a ``.dat`` file's size; None for formats that must be decoded to be
    counted."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    return reader.count(path) if reader is not None and reader.count is not None else None


def read_spikes(path, **kwargs) -> np.ndarray:
    """All input spikes of an event file as one SPIKE_DTYPE array (see :func:`iter_spikes`)."""
    parts = list(iter_spikes(path, **kwargs))
    return np.concatenate(parts) if parts else np.empty(0, dtype=SPIKE_DTYPE)
