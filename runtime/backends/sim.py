"""The ``"sim"`` device: the software chip behind the devkit's interface.

It mimics what the runtime must cope with on hardware (docs/chip-notes.md, "Talking to a devkit"): list-in /
list-out buffers, stopwatch-gated release of timestamped input (``clock="wall"``), 32-bit µs output timestamps
that wrap, untimestamped NeuronValue replies, ReadoutValues stamped with their slow-clock tick (on the chip time that
the simulator knows; a devkit sends them without a time) - plus faults on demand for tests (:class:`SimFaults`). On the wall
clock it reports how far it runs behind the input timestamps (:attr:`SimBackend.lag_us`).

``clock="virtual"`` (this class's default) processes input as soon as it is written, in the virtual time of its
timestamps (as fast as possible). ``clock="wall"`` (what ``open_device("sim")`` opens) holds each input until the
session clock reaches its timestamp and lets slow-clock ticks follow it.
"""
from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
import anyio
import sniffio

from ...codec.events import DVS_EVENT_DTYPE, NEURON_VALUE_DTYPE, READOUT_DTYPE, SPIKE_DTYPE
from ...codec.samna_events import DecodedOutput
from ...compiler.config import ChipConfig
from ...sim import ChipSimulator, SimOptions
from ...sim.bandwidth import BandwidthWarning, BandwidthWatch, bandwidth_message
from ...sim.energy import ActivityMeter, EnergyModel, activity_totals
from ...sim.readout import host_output
from ..errors import DeviceClosed, DeviceDisconnected, DeviceError
from ..options import Clock
from .base import Backend

__all__ = ['SimFaults', 'SimBackend']

_MASK32 = 0xFFFFFFFF
_TIMER_RESOLUTION_S = 0.0011  # epoll timeouts are whole milliseconds, rounded up


@dataclass
class SimFaults:
    """Faults on demand: drop a fraction of input events, delay NeuronValue replies (s), or vanish after
    ``disconnect_after`` input events have been written."""

    drop_fraction: float = 0.0
    reply_delay_s: float = 0.0
    disconnect_after: int | None = None
    seed: int = 0


class SimBackend(Backend):
    #: the simulator knows each slow-clock tick's time: its ReadoutValues carry it (32-bit µs, like spikes)
    stamps_readout = True

    def __init__(self, chip: str = "speck2f", *, clock: Clock = "virtual", faults: SimFaults | None = None,
                 options: SimOptions | None = None, time_source: Callable[[], float] = anyio.current_time,
                 energy: EnergyModel | None = None):
        """``clock``: "wall" or "virtual" (see the module docstring); ``time_source``: the session clock in seconds
        (anyio's: wall time, or trio's MockClock in tests); ``energy``: the model behind power estimates."""
        if clock not in ("wall", "virtual"):
            raise ValueError(f"clock must be 'wall' (the session's clock, like a devkit) or 'virtual' (chip time "
                             f"follows input timestamps, as fast as the CPU allows); got {clock!r}")
        realtime = clock == "wall"
        self.name = f"sim:{chip}"
        self.chip = chip
        self.realtime = realtime
        self.virtual_clock = not realtime  # chip time follows input timestamps, as fast as the CPU allows
        self.faults = faults or SimFaults()
        self.sim = ChipSimulator(options=options)
        limit = self.sim.options.synops_limit
        self._bandwidth = None if limit is None else BandwidthWatch(limit)
        self._clock = time_source
        self._t0 = 0.0
        # realtime: (kind "spike" | "dvs", events written but not released, µs when they were written)
        self._pending: deque[tuple[str, np.ndarray, int]] = deque()
        self._out: deque[DecodedOutput] = deque()
        self._delayed: deque[tuple[float, np.ndarray]] = deque()
        self._wake = anyio.Event()
        self._rng = np.random.default_rng(self.faults.seed)
        self._written = 0
        self._lateness: list[np.ndarray] = []
        self._lateness_n = 0
        self._lag_us = 0  # how late the most recently released input entered the chip (µs)
        self._lag_max_us = 0
        self._gone = False
        self._opened = False
        self._spin: bool | None = None  # decided on first use, inside the event loop
        self.counts = {"device_dropped": 0, "released": 0}
        self.energy = energy or EnergyModel()
        self._meter: ActivityMeter | None = None
        self.bandwidth_exceeded: list[tuple[int, int, int, float]] = []  # (core, window µs, start µs, SynOps/s)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        self._opened = True
        self._t0 = self._clock()

    async def close(self) -> None:
        self._opened = False

    def _check(self) -> None:
        if self._gone:
            raise DeviceDisconnected(f"{self.name} disconnected (fault injection)")
        if not self._opened:
            raise DeviceClosed(f"{self.name} is closed")

    def _now_us(self) -> int:
        return int((self._clock() - self._t0) * 1e6)

    async def apply(self, config: ChipConfig) -> None:
        self._check()
        self.sim.apply(config)
        self.sim.reset_state(to_initial=True)
        await self.reset_time()

    async def reset_time(self) -> None:
        self._check()
        self._t0 = self._clock()
        self.sim.reset_time()

    async def reset_state(self) -> None:
        self._check()
        self.sim.reset_state()

    async def set_slow_clock(self, hz: float | None) -> None:
        self._check()
        self._release()
        self.sim.set_slow_clock(hz)

    # ------------------------------------------------------------------ input
    def vanish(self) -> None:
        """Fault injection: the device disappears now (every later call raises DeviceDisconnected)."""
        self._gone = True
        self._wake.set()

    async def write_spikes(self, spikes: np.ndarray) -> None:
        await self._write("spike", np.asarray(spikes, dtype=SPIKE_DTYPE))

    async def write_dvs(self, events: np.ndarray) -> None:
        """DvsEvents (DVS_EVENT_DTYPE, sensor coordinates) into the configuration's DVS stage."""
        self._check()
        if self.sim.config is None or self.sim.config.dvs is None:
            raise DeviceError(f"{self.name}: the applied configuration has no DVS stage to write DvsEvents into")
        await self._write("dvs", np.asarray(events, dtype=DVS_EVENT_DTYPE))

    def see(self, events: np.ndarray) -> None:
        """The chip's own camera sees ``events`` now (DVS_EVENT_DTYPE; their timestamps are ignored): they
        reach the DVS stage only with ``pass_sensor_events``, and the host as DvsEvents with ``raw_monitor``."""
        self._check()
        self._release()
        ev = np.array(events, dtype=DVS_EVENT_DTYPE)
        ev["t"] = max(self._now_us() if self.realtime else 0, self.sim.now_us)
        out = self.sim.feed_sensor(ev)
        raw = self.sim.take_raw()
        if len(raw):
            raw = raw.copy()
            raw["t"] &= _MASK32
        self._finish(out, raw)

    async def _write(self, kind: str, spikes: np.ndarray) -> None:
        self._check()
        if self.faults.disconnect_after is not None and self._written + len(spikes) > self.faults.disconnect_after:
            # the device takes what fits, then vanishes
            take = self.faults.disconnect_after - self._written
            self._accept(kind, spikes[:take])
            self._gone = True
            self._wake.set()
            raise DeviceDisconnected(f"{self.name} disconnected after {self.faults.disconnect_after} input events")
        self._accept(kind, spikes)

    def _accept(self, kind: str, spikes: np.ndarray) -> None:
        self._written += len(spikes)
        if self.faults.drop_fraction > 0 and len(spikes):
            keep = self._rng.random(len(spikes)) >= self.faults.drop_fraction
            self.counts["device_dropped"] += int((~keep).sum())
            spikes = spikes[keep]
        if len(spikes) == 0:
            return
        if self.realtime:
            self._pending.append((kind, spikes, self._now_us()))
            self._release()
            self._wake.set()  # the reader recomputes when the next input is due
        else:
            self._process(kind, spikes)

    def _process(self, kind: str, spikes: np.ndarray, until: int | None = None) -> None:
        """Feed released input; ``until`` (advance the chip to a time) comes only with an empty spike batch.
        With a bandwidth limit (SimOptions.synops_limit) the input goes in one millisecond of chip time at a time,
        each core's SynOps counted per millisecond and checked (:meth:`_watch`)."""
        if self._bandwidth is None or not len(spikes):
            self._feed(kind, spikes, until)
            return
        ms = np.maximum(spikes["t"].astype(np.int64), self.sim.now_us) // 1000
        for part in np.split(spikes, np.flatnonzero(np.diff(ms)) + 1):
            before = self.sim.stats["synops"]
            self._feed(kind, part, None)
            after = self.sim.stats["synops"]
            self._watch(int(max(int(part["t"][-1]), self.sim.now_us)) // 1000,
                        {c: after[c] - before.get(c, 0) for c in after})

    def _feed(self, kind: str, spikes: np.ndarray, until: int | None) -> None:
        out = self.sim.feed_dvs(spikes) if kind == "dvs" else self.sim.feed(spikes, until=until)
        self.counts["released"] += len(spikes)
        self._finish(out)

    def _watch(self, ms: int, synops: dict[int, int]) -> None:
        """One millisecond's SynOps per core against the bandwidth limit: each core's first excess per window is
        warned about once (BandwidthWarning) and kept in stats["bandwidth_exceeded"]."""
        assert self._bandwidth is not None
        for core, w, start, rate in self._bandwidth.add(ms, synops):
            self.bandwidth_exceeded.append((core, w, start, rate))
            warnings.warn(f"{self.name}: " + bandwidth_message(core, w, start, rate, self._bandwidth.limit),
                          BandwidthWarning, stacklevel=2)

    def _finish(self, out: np.ndarray, raw: np.ndarray | None = None) -> None:
        """Monitored simulator output -> host output, as the devkit delivers it."""
        shown, readout = host_output(self.sim.config.readout if self.sim.config is not None else None, out,
                                     self.sim.take_readout())
        if len(shown) < len(out):
            self.counts["spikes_not_monitored"] = self.counts.get("spikes_not_monitored", 0) + len(out) - len(shown)
        out = shown
        if len(readout):  # stamped with its tick's chip time (a devkit's carry none: the session stamps those)
            readout["t"] &= _MASK32
        if len(out) or len(readout) or (raw is not None and len(raw)):
            out = out.copy()
            out["t"] &= _MASK32  # the chip's 32-bit µs stamps leave the device
            self._emit(_output(spikes=out, readout=readout, dvs=raw))

    def _release(self) -> None:
        """Realtime: release pending input whose time has come and advance the chip to now."""
        if not self.realtime or self.sim.config is None:
            return
        now = self._now_us()
        oldest = None  # when the oldest input released now became due
        while self._pending:
            kind, batch, written = self._pending[0]
            due = int(np.searchsorted(batch["t"], now, side="right"))
            if due == 0:
                break
            if oldest is None:  # input written after its timestamp (t=0: "now") is due from its writing: the
                oldest = max(int(batch["t"][0]), written)  # host's lateness is not the chip's lag
            if self._lateness_n < 1 << 22:  # bounded record: how late each event entered the chip (µs)
                self._lateness.append(now - batch["t"][:due].astype(np.int64))
                self._lateness_n += due
            self._process(kind, batch[:due])
            if due == len(batch):
                self._pending.popleft()
            else:
                self._pending[0] = (kind, batch[due:], written)
                break
        if oldest is not None:  # lag: from due to processed, processing time included (what falling behind is)
            self._lag_us = max(0, self._now_us() - oldest)
            self._lag_max_us = max(self._lag_max_us, self._lag_us)
        if now > self.sim.now_us:
            self._process("spike", np.empty(0, SPIKE_DTYPE), until=now)

    def _next_due_s(self) -> float | None:
        times = []
        if self._pending:
            # +1 µs: at this wake time the truncated µs clock has surely reached the event (no busy loop)
            times.append(self._t0 + (int(self._pending[0][1]["t"][0]) + 1) / 1e6)
        if self._delayed:
            times.append(self._delayed[0][0])
        return min(times) if times else None

    async def write_reads(self, requests: np.ndarray) -> None:
        self._check()
        self._release()
        replies = self.sim.read_neurons(requests)
        replies["t"] = 0  # no timestamp on the chip
        if self.faults.reply_delay_s > 0:
            self._delayed.append((self._clock() + self.faults.reply_delay_s, replies))
        else:
            self._emit(_output(neuron_values=replies))

    async def write_neurons(self, requests: np.ndarray) -> None:
        self._check()
        self._release()
        self.sim.write_neurons(requests)

    def _emit(self, out: DecodedOutput) -> None:
        self._out.append(out)
        self._wake.set()

    # ------------------------------------------------------------------ power (estimated from activity)
    async def start_power(self, hz: float) -> None:
        """Power samples are the energy model's estimate from the simulator's own counters (SynOps and spikes
        per interval of chip time, :class:`~speckstream.sim.energy.ActivityMeter`): there is nothing to measure."""
        self._check()
        self._meter = ActivityMeter(self.energy)
        self._meter.sample(*self._activity())

    async def read_power(self) -> tuple[dict[str, float], bool] | None:
        self._check()
        self._release()
        if self._meter is None:
            return None
        return self._meter.sample(*self._activity()).rails, True

    async def stop_power(self) -> None:
        self._meter = None

    def _activity(self) -> tuple[int, int, int]:
        """(chip time µs, SynOps so far, spikes so far) of the simulator (zeros before a configuration)."""
        return (self.sim.now_us, *activity_totals(self.sim))

    # ------------------------------------------------------------------ output
    async def read(self, timeout_s: float) -> DecodedOutput | None:
        """Everything produced so far (merged), waiting up to ``timeout_s`` for something."""
        self._check()
        deadline = self._clock() + timeout_s
        while True:
            self._release()
            now = self._clock()
            while self._delayed and self._delayed[0][0] <= now:
                _, r = self._delayed.popleft()
                self._emit(_output(neuron_values=r))
            if self._out:
                parts = list(self._out)
                self._out.clear()
                if len(parts) == 1:
                    return parts[0]
                return DecodedOutput(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                                       ("spikes", "neuron_values", "readout", "dvs")))
            if self._gone:
                raise DeviceDisconnected(f"{self.name} disconnected (fault injection)")
            now = self._clock()
            if now >= deadline:
                return None
            wake_at = deadline
            due = self._next_due_s()
            if due is not None:
                spin = self._real_clock()
                if spin and due - now < _TIMER_RESOLUTION_S:
                    # the event loop's timers wake up to ~1 ms late (epoll's resolution): an input due sooner
                    # is waited for by yielding, as a devkit's FPGA releases it on the µs
                    await anyio.lowlevel.checkpoint()
                    continue
                wake_at = min(wake_at, max(due - _TIMER_RESOLUTION_S if spin else due, now))
            self._wake = anyio.Event()
            with anyio.CancelScope(deadline=wake_at):
                await self._wake.wait()

    def _real_clock(self) -> bool:
        """Spinning to a due time only makes sense on a real clock: a mock clock moves only when all sleep."""
        if self._spin is None:
            self._spin = self._clock is anyio.current_time and not _mock_clock()
        return self._spin

    @property
    def device_written(self) -> int:
        """Input events the simulator has taken (those its faults then drop included)."""
        return self._written

    def take_release_lateness(self) -> np.ndarray:
        """Real-time mode: µs by which each released input entered the chip after its timestamp (then clear)."""
        out = np.concatenate(self._lateness) if self._lateness else np.empty(0, np.int64)
        self._lateness, self._lateness_n = [], 0
        return out

    @property
    def lag_us(self) -> int | None:
        """Wall clock: µs by which the most recently released input entered the chip after its timestamp (grows
        while the simulator cannot keep up with the input rate); None on the virtual clock, which has no lag."""
        return self._lag_us if self.realtime else None

    @property
    def lag_max_us(self) -> int | None:
        """The largest :attr:`lag_us` since the device was opened (None on the virtual clock)."""
        return self._lag_max_us if self.realtime else None

    @property
    def stats(self) -> dict:
        s: dict = dict(self.counts)
        if self.bandwidth_exceeded:
            s["bandwidth_exceeded"] = list(self.bandwidth_exceeded)
        if self.sim.config is not None:
            s.update(self.sim.stats)
        s["pending_release"] = int(sum(len(b) for _, b, _ in self._pending))
        return s


def _mock_clock() -> bool:
    """trio's MockClock drives this loop (asyncio has none). By class name: importing trio.testing inside a
    running loop would stall it for ~40 ms."""
    if sniffio.current_async_library() != "trio":
        return False
    import trio

    return type(trio.lowlevel.current_clock()).__name__ == "MockClock"


def _output(spikes=None, neuron_values=None, readout=None, dvs=None) -> DecodedOutput:
    """A DecodedOutput holding the given arrays and empty ones for the rest."""
    return DecodedOutput(spikes if spikes is not None else np.empty(0, SPIKE_DTYPE),
                         neuron_values if neuron_values is not None else np.empty(0, NEURON_VALUE_DTYPE),
                         readout if readout is not None else np.empty(0, READOUT_DTYPE),
                         dvs if dvs is not None else np.empty(0, DVS_EVENT_DTYPE))
