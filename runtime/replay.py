"""Replaying a recording (or an array) into a device, paced by its timestamps, optionally recording outputs.

Three steps, each on its own: :func:`pace` is the pure part (which events go in which write, and when); :func:`plan`
decides what the source is and how it goes in (DVS stage or core, checked chunks); :func:`stream` writes it through
the session's link, paced. :func:`replay` runs them, recording the outputs meanwhile. Everything the caller can get
wrong (speed, event order, addresses, the source) is checked before the first event is written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterator

import numpy as np
import anyio

from ..codec import events as ev
from ..codec.convert import spikes_from_array, warn_if_short
from ..codec.files import count_spikes, iter_spikes
from ..codec.spk import EventFileWriter
from ..codec.inputs import check_on_input, is_camera
from ..compiler.config import ChipConfig
from .errors import DeviceError
from .link import DeviceLink
from .options import InputKind, Via
from .stats import Percentiles, percentiles

__all__ = ["ReplayResult", "ReplayPlan", "pace", "plan", "stream", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did."""

    events_in: int  #: input events written
    events_out: int  #: output spikes received meanwhile
    duration_s: float  #: from the first write to the last output (session clock)
    input_rate: float  #: input events / s (session clock)
    #: µs each paced slice reached the device queue after its time (n = 0: not paced, ``speed=None``)
    pacing_error_us: Percentiles = field(default_factory=lambda: percentiles([]))
    #: µs each event entered the chip after its timestamp, where the device reports it (a wall-clock simulator)
    release_error_us: Percentiles = field(default_factory=lambda: percentiles([]))
    dropped_by_policy: int = 0  #: input events dropped by ``policy="drop"`` during the replay
    dropped_by_subscriptions: int = 0  #: output events lost by subscriptions too slow to take them
    record: str | None = None  #: the recording's path, if outputs were recorded


def check_order(t: np.ndarray, *, start: int = 0, last: int | None = None) -> None:
    """Refuse decreasing timestamps, naming the first out-of-order event (``start`` = its index offset)."""
    ev.check_time_order(t, start=start, last=last,
                        advice="replay needs events in time order (pass sort=True to sort them)")


def pace(t_dev_us: np.ndarray, slice_s: float) -> list[tuple[int, int]]:
    """Split events (device µs, non-decreasing) into writes covering ``slice_s`` seconds each: [(a, b), ...]."""
    if len(t_dev_us) == 0:
        return []
    step = slice_s * 1e6
    edges = np.arange(t_dev_us[0], t_dev_us[-1] + step, step)
    idx = np.searchsorted(t_dev_us, edges)
    bounds = list(idx) + [len(t_dev_us)]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if a != b]


def resolve_via(cfg: ChipConfig, camera: bool, via: Via, core: int | None) -> Via:
    """"dvs" (into the configuration's DVS stage) or "core" (spikes straight into cores) for a source that is a
    camera recording (``camera``: x/y/t/p events) or chip spikes."""
    if via not in ("auto", "dvs", "core"):
        raise ValueError(f"via must be 'auto', 'dvs' or 'core', got {via!r}")
    has_dvs = cfg.dvs is not None
    if via == "dvs":
        if not has_dvs:
            raise DeviceError("via='dvs' needs a configuration with a DVS stage (compile with dvs=True)")
        if core is not None:
            raise ValueError("core= names the core that spikes go to; DVS events go through the DVS stage (via='dvs')")
        return "dvs"
    if via == "auto" and has_dvs and core is None and camera:
        return "dvs"
    return "core"


def _as_dvs(chunk: np.ndarray) -> np.ndarray:
    """Camera events read as spikes (polarity in ``c``) -> DvsEvents on the sensor."""
    out = np.empty(len(chunk), ev.DVS_EVENT_DTYPE)
    out["t"], out["x"], out["y"] = chunk["t"], chunk["x"], chunk["y"]
    if len(chunk) and int(chunk["c"].max()) > 1:
        i = int(np.argmax(chunk["c"] > 1))
        raise ValueError(f"event {i}: polarity {int(chunk['c'][i])} is not 0 or 1; a DVS stage takes on/off events")
    out["p"] = chunk["c"]
    return out


def _checked_on_input(chunks: Iterator[np.ndarray], cfg, core) -> Iterator[np.ndarray]:
    for chunk in chunks:
        check_on_input(cfg, chunk, core)
        yield chunk


def _one(arr: np.ndarray) -> Generator[np.ndarray, None, None]:
    yield arr


def _chunks(source, core: int | None, sort: bool) -> tuple[Generator[np.ndarray, None, None], int]:
    if isinstance(source, np.ndarray):
        arr = spikes_from_array(source, core=core or 0)
        if core is not None:
            arr = arr.copy()
            arr["core"] = core
        if sort:
            arr = arr[np.argsort(arr["t"], kind="stable")]
        check_order(arr["t"])
        return _one(arr), len(arr)
    if sort:
        arr = np.concatenate(list(iter_spikes(source, core=core or 0)) or [np.empty(0, ev.SPIKE_DTYPE)])
        return _one(arr[np.argsort(arr["t"], kind="stable")]), len(arr)

    def checked():  # the order is checked chunk by chunk, across chunk edges
        n, last = 0, None
        reader = iter_spikes(source, core=core or 0)
        try:
            for chunk in reader:
                check_order(chunk["t"], start=n, last=last)
                if len(chunk):
                    last = int(chunk["t"][-1])
                n += len(chunk)
                yield chunk
        finally:  # ends the reader now even when an error's traceback keeps this frame
            reader.close()
    return checked(), count_spikes(source) or 0


def check_speed(speed) -> None:
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                              or not math.isfinite(speed) or speed <= 0):
        raise ValueError(f"speed must be a positive number (1.0 = real time) or None (as fast as possible); "
                         f"got {speed!r}")


def _writes(t_dev_us: np.ndarray, speed: float | None, slice_s: float, batch: int) -> list[tuple[int, int]]:
    """The writes of one chunk: paced slices of ``slice_s`` (speed given), else batches of ``batch`` events
    (so that progress moves and the input queue's backpressure applies)."""
    if speed is not None:
        return pace(t_dev_us, slice_s)
    return [(a, min(a + batch, len(t_dev_us))) for a in range(0, len(t_dev_us), batch)]


@dataclass
class ReplayPlan:
    """What a replay will write, decided (and checked) before the first write. The chunks are read lazily."""

    kind: InputKind  #: "dvs" (through the configuration's DVS stage) or "spike" (straight into cores)
    chunks: Iterator[np.ndarray]  #: the events, in time order, checked chunk by chunk as they are read
    total: int  #: how many events (0 when the format must be decoded to be counted)
    camera: bool  #: a camera recording (x/y/t/p), not chip spikes
    source_chunks: Generator[np.ndarray, None, None]  #: the source's own reader, under ``chunks``

    def close(self) -> None:
        """Stop reading: the file's reader (and a decoder process it holds) ends now, on every exit path of a
        replay, not when the garbage collector finds it - an error's traceback keeps the generators alive."""
        self.source_chunks.close()


def plan(cfg: ChipConfig, source, *, core: int | None = None, sort: bool = False, via: Via = "auto") -> ReplayPlan:
    """How ``source`` (an event file or array) goes into a device with configuration ``cfg``: through the DVS
    stage or into which core, read in checked chunks. Raises before anything is written."""
    camera = is_camera(source)
    kind: InputKind = "dvs" if resolve_via(cfg, camera, via, core) == "dvs" else "spike"
    if kind == "spike" and camera and core is None and cfg.input_cores:
        core = cfg.input_cores[0]  # a camera's events go to the input; chip spikes keep their own cores
    source_chunks, total = _chunks(source, core, sort)
    chunks: Iterator[np.ndarray] = source_chunks
    if kind == "dvs":
        chunks = map(_as_dvs, chunks)
    elif camera:  # each chunk, before it is written: off the input map names the tonic transform that fixes it
        chunks = _checked_on_input(chunks, cfg, core)
    return ReplayPlan(kind, chunks, total, camera, source_chunks)


@dataclass
class _Streamed:
    """What :func:`stream` wrote."""

    n_in: int = 0
    lateness_us: list[float] = field(default_factory=list)  # per paced slice: how late it reached the queue
    t_first: int | None = None  # the source's first and last timestamps (µs)
    t_last: int | None = None
    last_release: float | None = None  # loop time at which a wall-clock device releases the last event


async def stream(link: DeviceLink, p: ReplayPlan, *, speed: float | None, lead_s: float, slice_s: float,
                 t_offset_us: int, on_write: Callable[[int], None]) -> _Streamed:
    """Write the plan's events with their relative timestamps kept, from ``t_offset_us`` after now: paced slices
    of ``slice_s`` written ``lead_s`` ahead of their time (``speed`` given), else batches as fast as the queue
    takes them. ``on_write(events_written)`` after each write."""
    out = _Streamed()
    base_us = link.now_us() + t_offset_us
    for chunk in p.chunks:
        if not len(chunk):
            continue
        if out.t_first is None:
            out.t_first = int(chunk["t"][0])
        out.t_last = int(chunk["t"][-1])
        chunk = chunk.copy()
        t_dev = base_us + (chunk["t"].astype(np.float64) - out.t_first) / (speed or 1.0)
        chunk["t"] = t_dev.astype(np.uint64)
        for a, b in _writes(t_dev, speed, slice_s, link.batch_size):
            release = link.epoch + int(chunk["t"][a]) / 1e6
            if speed is not None:
                await anyio.sleep_until(release - lead_s)
            await link.send(chunk[a:b], kind=p.kind)
            if speed is not None:  # how late the slice reached the device queue (early is fine)
                out.lateness_us.append(max(0.0, (anyio.current_time() - release) * 1e6))
            out.n_in += b - a
            on_write(out.n_in)
        if not link.backend.virtual_clock:  # the device releases the last event at its timestamp
            out.last_release = link.epoch + int(chunk["t"][-1]) / 1e6
    return out


class _Recorder:
    """Every output of the session into a ``.spk`` file while the replay runs; closed with what it holds."""

    def __init__(self, link: DeviceLink, path, meta: dict):
        self.sub = link.subscribe("all", max_batches=1 << 16)
        try:
            self.writer = EventFileWriter(path, meta=meta)
        except BaseException:
            self.sub.close()
            raise

    def drain(self) -> None:
        while (got := self.sub.receive_nowait()) is not None:
            self.writer.append(got[1], got[0])

    def close(self) -> None:
        self.sub.close()
        self.drain()
        self.writer.close()


async def replay(link: DeviceLink, source, *, speed: float | None = 1.0, record=None, core: int | None = None,
                 lead_s: float = 0.05, slice_s: float = 0.005, t_offset_us: int = 1000, sort: bool = False,
                 via: Via = "auto", progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """See :meth:`Session.replay`: :func:`plan`, then :func:`stream`, recording the outputs meanwhile."""
    check_speed(speed)
    link.ensure_usable()
    if link.config is None:
        raise DeviceError("apply a configuration before replaying")
    p = plan(link.config, source, core=core, sort=sort, via=via)
    out_before, dropped_before = link.books.out_spikes, link.books.dropped_by_policy
    link.backend.take_release_lateness()  # start a fresh record
    recorder = _Recorder(link, record, {"source": "array" if isinstance(source, np.ndarray) else str(source),
                                        "speed": speed}) if record else None

    def on_write(n: int) -> None:
        if recorder is not None:
            recorder.drain()
        if progress:
            progress(n, p.total)

    try:
        t_start = anyio.current_time()
        done = await stream(link, p, speed=speed, lead_s=lead_s, slice_s=slice_s, t_offset_us=t_offset_us,
                            on_write=on_write)
        if p.camera and done.t_first is not None and done.t_last is not None:
            warn_if_short(np.array([done.t_first, done.t_last]), n=done.n_in, stacklevel=3)
        await link.flush()
        if done.last_release is not None:
            await anyio.sleep_until(done.last_release)
        await link.quiesce()
        duration = anyio.current_time() - t_start
    finally:
        p.close()
        if recorder is not None:
            recorder.close()  # with what was recorded, on every exit path
    released = link.backend.take_release_lateness()
    return ReplayResult(
        events_in=int(done.n_in), events_out=int(link.books.out_spikes - out_before), duration_s=float(duration),
        input_rate=float(done.n_in / duration) if duration > 0 else math.inf,
        pacing_error_us=percentiles(done.lateness_us),
        release_error_us=percentiles(released if released is not None and not link.backend.virtual_clock else []),
        dropped_by_policy=link.books.dropped_by_policy - dropped_before,
        dropped_by_subscriptions=sum(s.dropped_events for s in link.subscribers),
        record=str(record) if record else None)
