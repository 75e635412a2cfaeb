"""A device session: keeps a device fed and drained, hands out decoded numpy batches.

Structured concurrency (trio): every task lives in the session's nursery; leaving ``async with`` (or
Ctrl-C) stops the pumps, accounts for in-flight events and closes the device - no task or thread
outlives it. The hot path moves whole numpy batches; nothing loops over single events in Python.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
import trio

from ..codec import events as ev
from ..codec import neurons as _neurons
from ..codec.files import EventFileWriter, iter_spikes
from ..codec.samna_events import DecodedOutput
from ..compiler.config import ChipConfig, load_config
from ..compiler.validate import validate
from .errors import DeviceDisconnected, DeviceError
from .timebase import WRAP, Unwrapper

KINDS = ("spike", "neuron_value", "readout", "dvs")
_FIELDS = {"spike": "spikes", "neuron_value": "neuron_values", "readout": "readout", "dvs": "dvs"}


@dataclass
class Subscription:
    """One consumer of output batches; a full buffer drops (and counts) instead of stalling the drain."""

    kinds: frozenset
    cores: frozenset | None
    send: trio.MemorySendChannel
    receive: trio.MemoryReceiveChannel
    dropped_batches: int = 0
    dropped_events: int = 0


@dataclass
class VmemFrame:
    """One vmem poll of a core: ``image`` int16 [C, H, W] (or per-neuron ``values``), host time in µs."""

    t_us: int
    core: int
    image: np.ndarray | None
    values: np.ndarray  # NEURON_STATE_DTYPE of the replies received
    requested: int
    missing: int


@dataclass
class ReplayResult:
    events_in: int
    events_out: int
    duration_s: float
    input_rate: float  # input events / s (wall clock)
    pacing_error_us: dict = field(default_factory=dict)  # p50/p99/max µs a slice reached the device late
    release_error_us: dict = field(default_factory=dict)  # simulator: µs each event entered the chip late
    dropped: dict = field(default_factory=dict)
    record: str | None = None


@dataclass
class LoopResult:
    iterations: int
    latency_us: dict  # round trip input send -> output -> callback -> next input: p50 / p90 / p99 / max (steps
    # that got output; silent steps are counted in ``timeouts``)
    response_us: dict  # input send -> first output batch received
    timeouts: int
    samples_us: np.ndarray = field(default_factory=lambda: np.empty(0))  # every round trip, in order


def percentiles(x, ps=(50, 90, 99)) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {f"p{p}": math.nan for p in ps} | {"max": math.nan, "n": 0}
    return {f"p{p}": float(np.percentile(x, p)) for p in ps} | {"max": float(x.max()), "n": int(x.size)}


class Session:
    """An open device. Create with :func:`speckstream.open_device`."""

    def __init__(self, backend, *, batch_size: int = 65536, input_queue: int = 16, policy: str = "wait",
                 read_timeout_s: float = 0.005):
        if policy not in ("wait", "drop"):
            raise ValueError(f"policy must be 'wait' or 'drop', got {policy!r}")
        self.backend = backend
        self.batch_size = batch_size
        self.policy = policy
        self.read_timeout_s = read_timeout_s
        self.config: ChipConfig | None = None
        self._in_send, self._in_recv = trio.open_memory_channel(input_queue)
        self._subs: list[Subscription] = []
        self._unwrap = Unwrapper()
        self._epoch = 0.0
        self._error: BaseException | None = None
        self._lock = trio.Lock()  # serialises device calls from the pumps and the user
        self.counts = {"accepted": 0, "written": 0, "dropped_policy": 0, "lost_in_flight": 0, "out_spikes": 0,
                       "out_neuron_values": 0, "out_readout": 0, "unknown": 0}
        self._pending = 0  # accepted by send() but not yet written to the device
        self._started = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "Session":
        await self.backend.open()
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._started = trio.current_time()
        self._epoch = self._started
        self._nursery.start_soon(self._writer)
        self._nursery.start_soon(self._drainer)
        return self

    async def __aexit__(self, etype, exc, tb):
        self._nursery.cancel_scope.cancel()
        try:
            if exc is not None and not isinstance(exc, trio.Cancelled):
                # the user's own error: stop the pumps, then let it propagate as it is (no exception group)
                await self._nursery_cm.__aexit__(None, None, None)
                suppressed = False
            else:
                suppressed = await self._nursery_cm.__aexit__(etype, exc, tb)
        finally:
            self._settle_pending()
            with trio.CancelScope(shield=True):
                await self.backend.close()
        if self._error is not None and (exc is None or suppressed):
            raise self._error
        return suppressed

    def _fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        for s in self._subs:
            s.send.close()
        self._nursery.cancel_scope.cancel()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------ time
    def now_us(self) -> int:
        """Session time in µs: host clock since the device's stopwatch was last reset."""
        return int((trio.current_time() - self._epoch) * 1e6)

    # ------------------------------------------------------------------ configuration
    async def apply(self, config) -> None:
        """Validate and apply a ChipConfig (or a path to one); neuron states and the stopwatch are reset."""
        cfg = load_config(config)
        validate(cfg)
        async with self._lock:
            await self.backend.apply(cfg)
            self._epoch = trio.current_time()
            self._unwrap.rebase(0)
            if cfg.slow_clock_hz:
                await self.backend.set_slow_clock(cfg.slow_clock_hz)
        self.config = cfg

    async def slow_clock(self, hz: float | None) -> None:
        """Set the slow clock (leak, readout) rate in Hz; None or 0 stops it."""
        async with self._lock:
            await self.backend.set_slow_clock(hz)

    async def reset_time(self) -> None:
        """Reset the device stopwatch; session time restarts at 0."""
        async with self._lock:
            await self.backend.reset_time()
            self._epoch = trio.current_time()
            self._unwrap.rebase(0)

    async def reset_state(self) -> None:
        """Zero every neuron's membrane potential."""
        async with self._lock:
            await self.backend.reset_state()

    # ------------------------------------------------------------------ input
    async def send(self, spikes: np.ndarray, *, policy: str | None = None) -> int:
        """Queue input spikes (SPIKE_DTYPE; ``t`` in session µs, 0 = now) for the device.

        Any size is accepted and split into batches of ``batch_size``. With the ``"wait"`` policy a full
        input queue makes this wait (backpressure); with ``"drop"`` the batches that do not fit are
        dropped and counted. Returns the number of events accepted.
        """
        self._raise_if_failed()
        spikes = ev.as_events(spikes, "spike")
        policy = policy or self.policy
        accepted = 0
        for start in range(0, len(spikes), self.batch_size):
            batch = spikes[start:start + self.batch_size]
            if policy == "wait":
                try:
                    await self._in_send.send(batch)
                except trio.ClosedResourceError:
                    self._raise_if_failed()
                    raise
                # counted once the queue holds it (the writer may already have run: _pending can dip < 0)
                self._pending += len(batch)
            else:
                try:
                    self._in_send.send_nowait(batch)
                except trio.WouldBlock:
                    self.counts["dropped_policy"] += len(batch)
                    continue
                self._pending += len(batch)
            accepted += len(batch)
            self.counts["accepted"] += len(batch)  # per batch: a failure mid-call keeps the books right
        return accepted

    async def flush(self) -> None:
        """Wait until every queued input batch has been written to the device."""
        while self._pending > 0:
            self._raise_if_failed()
            await trio.sleep(0.0005)
        self._raise_if_failed()

    async def _writer(self) -> None:
        try:
            async for batch in self._in_recv:
                if len(batch) and int(batch["t"][-1]) >= WRAP:
                    raise DeviceError(f"input timestamp {int(batch['t'][-1])} µs is past the chip's 32-bit "
                                      "stopwatch range (71.6 min); call reset_time() between segments")
                async with self._lock:
                    await self.backend.write_spikes(batch)
                self.counts["written"] += len(batch)
                self._pending -= len(batch)
        except DeviceDisconnected as e:
            took = e.accounting.get("written_before_disconnect", self.counts["written"]) - self.counts["written"]
            if took > 0:  # the device took part of the batch in flight before it vanished
                self.counts["written"] += took
                self._pending -= took
            self._fail(DeviceDisconnected(f"{self.backend.name} disconnected mid-stream", self._accounting()))
        except DeviceError as e:
            self._fail(e)
        except Exception as e:  # a backend bug must still end the session cleanly, with accounting
            self._fail(DeviceError(f"{self.backend.name} writer failed: {type(e).__name__}: {e}"))

    def _settle_pending(self) -> None:
        """Events accepted but never written are lost in flight: count them once."""
        self.counts["lost_in_flight"] += self._pending
        self._pending = 0

    def _accounting(self) -> dict:
        self._settle_pending()
        return {"accepted": self.counts["accepted"], "written": self.counts["written"],
                "not_written": self.counts["lost_in_flight"], "dropped_by_policy": self.counts["dropped_policy"],
                "outputs_delivered": self.counts["out_spikes"]}

    # ------------------------------------------------------------------ output
    async def _drainer(self) -> None:
        """Drain the device continuously (outputs may only appear while the host polls)."""
        try:
            while True:
                out = await self.backend.read(self.read_timeout_s)
                if out is None:
                    continue
                self._dispatch(out)
                await trio.lowlevel.checkpoint()
        except DeviceDisconnected:
            self._fail(DeviceDisconnected(f"{self.backend.name} disconnected mid-stream", self._accounting()))
        except DeviceError as e:
            self._fail(e)
        except Exception as e:
            self._fail(DeviceError(f"{self.backend.name} reader failed: {type(e).__name__}: {e}"))

    def _dispatch(self, out: DecodedOutput) -> None:
        host = self.now_us()
        if len(out.spikes):
            out.spikes["t"] = self._unwrap(out.spikes["t"])
        for f in ("neuron_values", "readout"):
            arr = getattr(out, f)
            if len(arr):
                arr["t"] = host
        self.counts["out_spikes"] += len(out.spikes)
        self.counts["out_neuron_values"] += len(out.neuron_values)
        self.counts["out_readout"] += len(out.readout)
        self.counts["unknown"] += out.n_unknown
        for sub in self._subs:
            for kind in sub.kinds:
                arr = getattr(out, _FIELDS[kind])
                if sub.cores is not None and len(arr) and "core" in arr.dtype.names:
                    arr = arr[np.isin(arr["core"], list(sub.cores))]
                if len(arr) == 0:
                    continue
                try:
                    sub.send.send_nowait((kind, arr))
                except trio.WouldBlock:
                    sub.dropped_batches += 1
                    sub.dropped_events += len(arr)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    def subscribe(self, kind="spike", *, cores=None, max_batches: int = 256) -> Subscription:
        """A raw subscription (see :meth:`events`); close it with :meth:`unsubscribe`."""
        kinds = KINDS if kind == "all" else ((kind,) if isinstance(kind, str) else tuple(kind))
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"unknown output kind {k!r}; choose from {KINDS} or 'all'")
        s, r = trio.open_memory_channel(max_batches)
        sub = Subscription(frozenset(kinds), None if cores is None else frozenset(np.atleast_1d(cores).tolist()),
                           s, r)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub.send.close()

    async def events(self, kind="spike", *, cores=None, max_batches: int = 256) -> AsyncIterator[np.ndarray]:
        """Yield decoded output batches of ``kind`` ("spike", "neuron_value", "readout", "dvs"), with 64-bit
        session-µs timestamps. With several kinds (or "all") yields ``(kind, array)`` pairs. Each
        subscriber has its own bound (``max_batches``): a slow one loses (and counts) batches instead of
        stalling the device drain."""
        sub = self.subscribe(kind, cores=cores, max_batches=max_batches)
        single = len(sub.kinds) == 1
        try:
            async for k, arr in sub.receive:
                yield arr if single else (k, arr)
            self._raise_if_failed()
        finally:
            self.unsubscribe(sub)

    # ------------------------------------------------------------------ vmem
    async def read_neurons(self, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
        """Send ReadNeuronValue requests and collect the replies (NEURON_VALUE_DTYPE, stamped on receipt).

        Replies that do not arrive within ``timeout_s`` are missing from the result (compare lengths)."""
        requests = np.asarray(requests, dtype=ev.READ_REQUEST_DTYPE)
        sub = self.subscribe("neuron_value", max_batches=4096)
        got = []
        n = 0
        try:
            async with self._lock:
                await self.backend.write_reads(requests)
            with trio.move_on_after(timeout_s):
                async for _, arr in sub.receive:
                    got.append(arr)
                    n += len(arr)
                    if n >= len(requests):
                        break
        finally:
            self.unsubscribe(sub)
        self._raise_if_failed()
        return np.concatenate(got) if got else np.empty(0, ev.NEURON_VALUE_DTYPE)

    async def write_neurons(self, requests: np.ndarray) -> None:
        async with self._lock:
            await self.backend.write_neurons(np.asarray(requests, dtype=ev.WRITE_REQUEST_DTYPE))

    async def poll_vmem(self, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
                        count: int | None = None) -> AsyncIterator[VmemFrame]:
        """Yield a :class:`VmemFrame` of ``core`` every ``every`` seconds.

        ``neurons``: None for the whole core (dense [C, H, W] ``image``), or ``(c, x, y)`` arrays. A poll
        waits for replies until the next period at most; missing replies are reported in ``missing``.
        """
        if self.config is None:
            raise DeviceError("apply a configuration before polling vmem")
        shape = self.config.core(core).output_shape
        if neurons is None:
            req = _neurons.read_requests_for_core(core, shape, layout=layout)
        else:
            c, x, y = neurons
            req = _neurons.read_requests(core, c, x, y, shape, layout=layout)
        k = 0
        next_t = trio.current_time()
        while count is None or k < count:
            t_us = self.now_us()
            # wait for replies until the next period (0.1 s when polling as fast as possible)
            vals = await self.read_neurons(req, timeout_s=every * 0.9 if every > 0 else 0.1)
            vals = vals[vals["core"] == core]
            states = _neurons.decode_neuron_values(vals, shape, layout=layout, drop_invalid=True)
            image = _neurons.states_to_image(states, shape) if neurons is None else None
            yield VmemFrame(t_us, core, image, states, len(req), len(req) - len(states))
            k += 1
            next_t += every
            await trio.sleep_until(max(next_t, trio.current_time()))

    # ------------------------------------------------------------------ replay
    async def replay(self, source, *, speed: float | None = 1.0, record=None, core: int | None = None,
                     lead_s: float = 0.05, slice_s: float = 0.005, t_offset_us: int = 1000,
                     progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        """Stream an event file (``.spk``, ``.npy``, ``.aedat4``, ...) or a spike array into the device.

        ``speed``: 1.0 = real time, 2.0 = twice as fast, None = as fast as possible (timestamps set to 0:
        each event is released on arrival). Paced replays write slices of ``slice_s`` seconds of events
        ``lead_s`` ahead of their time (never one giant write: the devkit would release a burst).
        ``record``: a ``.spk`` path where all outputs are recorded. Returns a :class:`ReplayResult`.
        """
        if isinstance(source, np.ndarray):
            chunks = [ev.as_events(source, "spike")]
            total = len(source)
        else:
            chunks = iter_spikes(source, core=core or 0)
            total = 0
        writer = EventFileWriter(record, meta={"source": str(source) if not isinstance(source, np.ndarray)
                                               else "array", "speed": speed}) if record else None
        out_before = self.counts["out_spikes"]
        take_release = getattr(self.backend, "take_release_lateness", None)
        if take_release:
            take_release()  # start a fresh record
        dropped_before = self.counts["dropped_policy"]
        lateness: list[float] = []
        n_in = 0
        async with trio.open_nursery() as rec_nursery:
            if writer is not None:
                sub = self.subscribe("all", max_batches=1 << 16)
                rec_nursery.start_soon(self._record, sub, writer)
            t_start = trio.current_time()
            base_us = self.now_us() + t_offset_us
            t_first = None
            last_release = None
            for chunk in chunks:
                if core is not None and isinstance(source, np.ndarray):
                    chunk = chunk.copy()
                    chunk["core"] = core
                if speed is None:
                    chunk = chunk.copy()
                    chunk["t"] = 0
                    await self.send(chunk)
                    n_in += len(chunk)
                else:
                    if t_first is None and len(chunk):
                        t_first = int(chunk["t"][0])
                    t_dev = base_us + (chunk["t"].astype(np.float64) - t_first) / speed
                    chunk = chunk.copy()
                    chunk["t"] = t_dev.astype(np.uint64)
                    # write in slices, each lead_s ahead of its first event's time
                    step = slice_s * 1e6
                    edges = np.arange(t_dev[0], t_dev[-1] + step, step) if len(chunk) else []
                    idx = np.searchsorted(t_dev, edges)
                    bounds = list(idx) + [len(chunk)]
                    for a, b in zip(bounds[:-1], bounds[1:]):
                        if a == b:
                            continue
                        release = self._epoch + int(chunk["t"][a]) / 1e6
                        await trio.sleep_until(release - lead_s)
                        await self.send(chunk[a:b])
                        # pacing error: how late the slice reached the device queue after its release time
                        # (early is fine: the device holds events until their timestamp)
                        lateness.append(max(0.0, (trio.current_time() - release) * 1e6))
                        n_in += b - a
                    if len(chunk):
                        last_release = self._epoch + int(chunk["t"][-1]) / 1e6
                if progress:
                    progress(n_in, total)
            await self.flush()
            if last_release is not None:
                # the device releases the last event at its timestamp: wait for it, then drain
                await trio.sleep_until(last_release)
            await self._quiesce()
            duration = trio.current_time() - t_start
            if writer is not None:
                self.unsubscribe(sub)
        if writer is not None:
            writer.close()
        return ReplayResult(
            events_in=int(n_in), events_out=int(self.counts["out_spikes"] - out_before), duration_s=float(duration),
            input_rate=float(n_in / duration) if duration > 0 else math.inf,
            pacing_error_us=percentiles(lateness) if lateness else {},
            release_error_us=percentiles(take_release()) if take_release and speed is not None else {},
            dropped={"policy": self.counts["dropped_policy"] - dropped_before,
                     "subscriptions": sum(s.dropped_events for s in self._subs)},
            record=str(record) if record else None)

    async def _quiesce(self, quiet_s: float = 0.02, max_s: float = 2.0) -> None:
        """Wait until no output has arrived for ``quiet_s`` (outputs trail inputs on hardware)."""
        deadline = trio.current_time() + max_s
        last = -1
        while trio.current_time() < deadline:
            total = self.counts["out_spikes"] + self.counts["out_neuron_values"]
            if total == last:
                return
            last = total
            await trio.sleep(quiet_s)

    async def _record(self, sub: Subscription, writer: EventFileWriter) -> None:
        async for kind, arr in sub.receive:
            writer.append(arr, kind)

    # ------------------------------------------------------------------ closed loop
    async def closed_loop(self, callback: Callable[[np.ndarray], np.ndarray | None | Awaitable],
                          initial: np.ndarray, *, iterations: int | None = None, duration_s: float | None = None,
                          timeout_s: float = 0.1, cores=None) -> LoopResult:
        """Run a controller: send ``initial``, then for each output batch call ``callback(batch)`` (sync or
        async) and send what it returns (spikes, or None for nothing). If no output arrives within
        ``timeout_s`` the callback gets an empty batch, so silence is a signal too.

        Measures the round trip input send -> output -> callback -> next input send (``latency_us``) and
        input send -> output received (``response_us``).
        """
        if iterations is None and duration_s is None:
            raise ValueError("give iterations or duration_s")
        sub = self.subscribe("spike", cores=cores, max_batches=1024)
        lat, resp = [], []
        timeouts = 0
        k = 0
        end = trio.current_time() + duration_s if duration_s is not None else math.inf
        try:
            t_send = trio.current_time()
            await self.send(initial)
            while (iterations is None or k < iterations) and trio.current_time() < end:
                batch = None
                with trio.move_on_after(timeout_s):
                    _, batch = await sub.receive.receive()
                    # take everything already waiting too
                    while True:
                        try:
                            _, more = sub.receive.receive_nowait()
                        except trio.WouldBlock:
                            break
                        batch = np.concatenate([batch, more])
                if batch is None:
                    timeouts += 1
                    batch = np.empty(0, ev.SPIKE_DTYPE)
                else:
                    resp.append((trio.current_time() - t_send) * 1e6)
                r = callback(batch)
                if hasattr(r, "__await__"):
                    r = await r
                now = trio.current_time()
                if len(batch):  # a silent step (timeout) is not a round trip: counted in `timeouts`
                    lat.append((now - t_send) * 1e6)
                t_send = now
                if r is not None and len(r):
                    await self.send(r)
                k += 1
        finally:
            self.unsubscribe(sub)
        self._raise_if_failed()
        return LoopResult(k, percentiles(lat), percentiles(resp), timeouts, np.asarray(lat))

    # ------------------------------------------------------------------ stats
    @property
    def stats(self) -> dict:
        """Events in/out, rates (events/s since open), drops by cause, queue depths, device counters."""
        elapsed = max(trio.current_time() - self._started, 1e-9)
        return {
            **self.counts,
            "in_rate": self.counts["written"] / elapsed,
            "out_rate": self.counts["out_spikes"] / elapsed,
            "input_queue_batches": self._in_send.statistics().current_buffer_used,
            "subscriptions": [{"kinds": sorted(s.kinds), "queued": s.send.statistics().current_buffer_used,
                               "dropped_batches": s.dropped_batches, "dropped_events": s.dropped_events}
                              for s in self._subs],
            "device": self.backend.stats,
        }
