"""A device session: keeps a device fed and drained, hands out decoded numpy batches.

Structured concurrency (anyio, so trio or asyncio): the two pumps (writer, drainer) live in the session's task
group, each inside its own cancel scope, so a device failure stops the pumps without cancelling the caller's code:
every public call then raises the one underlying error (DeviceDisconnected with its accounting,
DeviceError), never an exception group or a Cancelled that escapes its scope. After ``async with`` every
call raises DeviceClosed; closing twice is a no-op. The hot path moves whole numpy batches.

Each use has its own module: subscriptions, vmem (read_neurons / poll_vmem), replay, closed_loop.

Accounting identities (``counts``): ``accepted == written + not_written`` once the session is closed (or
failed), and ``offered == accepted + dropped_by_policy``.
"""
from __future__ import annotations

import sys
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
import anyio

from ..codec import events as ev
from ..codec.errors import AddressError
from ..codec.samna_events import DecodedOutput
from ..compiler.config import ChipConfig, load_config
from ..compiler.validate import validate
from ..codec.inputs import check_dvs_events, is_tonic, to_input
from . import closed_loop as _loop
from . import lag as _lag
from . import replay as _replay
from . import vmem as _vmem
from .errors import DeviceClosed, DeviceDisconnected, DeviceError
from .stats import percentiles
from .subscriptions import FIELDS, KINDS, Subscription
from .timebase import WRAP, Unwrapper

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # anyio's and trio's dependency on 3.10

__all__ = ["Session", "KINDS", "percentiles"]


class Session:
    """An open device. Create with :func:`speckstream.open_device`."""

    def __init__(self, backend, *, batch_size: int = 65536, input_queue: int = 16, policy: str = "wait",
                 read_timeout_s: float = 0.005, lag_warn_s: float | None = 0.05):
        self.check_options(batch_size=batch_size, input_queue=input_queue, policy=policy, lag_warn_s=lag_warn_s)
        self.backend = backend
        self._lag = _lag.LagGuard(lag_warn_s)
        self.batch_size = batch_size
        self.policy = policy
        self.read_timeout_s = read_timeout_s
        self.config: ChipConfig | None = None
        self._in_send, self._in_recv = anyio.create_memory_object_stream[tuple](input_queue)
        self._subs: list[Subscription] = []
        self._replies = _vmem.ReplyMatcher()
        self._unwrap = Unwrapper()
        self._epoch = 0.0
        self._error: BaseException | None = None
        self._error_reported = False  # raised to the caller at least once (then not again at exit)
        self._state = "new"  # new -> open -> closed
        self._lock = anyio.Lock()  # serialises device calls from the pumps and the user
        self._pump_scopes: list[anyio.CancelScope] = []  # one per pump: cancelling them never touches user code
        self._stopping = False
        self._idle = anyio.Event()
        self._idle.set()
        self.counts = {"offered": 0, "accepted": 0, "written": 0, "dropped_policy": 0, "lost_in_flight": 0,
                       "out_spikes": 0, "out_neuron_values": 0, "out_readout": 0, "out_dvs": 0, "unknown": 0}
        self._pending = 0  # accepted by send() but not yet written to the device
        self._started = 0.0
        self._shapes: np.ndarray | None = None  # per core id: (C, H, W) of the input map, 0 = not configured

    @staticmethod
    def check_options(*, batch_size: int = 65536, input_queue: int = 16, policy: str = "wait",
                      read_timeout_s: float = 0.005, lag_warn_s: float | None = 0.05) -> None:
        """Refuse bad session options (ValueError) before anything is opened."""
        if policy not in ("wait", "drop"):
            raise ValueError(f"policy must be 'wait' or 'drop', got {policy!r}")
        if batch_size < 1 or input_queue < 1:
            raise ValueError("batch_size and input_queue must be at least 1")
        if lag_warn_s is not None and not lag_warn_s > 0:
            raise ValueError(f"lag_warn_s must be a positive number of seconds or None, got {lag_warn_s!r}")

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "Session":
        if self._state != "new":
            raise DeviceError("a Session is entered once; open a new one")
        await self.backend.open()
        self._nursery_cm = anyio.create_task_group()
        self._nursery = await self._nursery_cm.__aenter__()
        self._state = "open"
        self._started = self._epoch = anyio.current_time()
        self._nursery.start_soon(self._pump, self._writer)
        self._nursery.start_soon(self._pump, self._drainer)
        return self

    async def __aexit__(self, etype, exc, tb):
        if self._state != "open":
            return False  # closing twice is a no-op
        self._state = "closed"
        self._stop_pumps()
        try:
            try:
                await self._nursery_cm.__aexit__(None, None, None)  # only the pumps live there; they stop
            except BaseExceptionGroup as eg:  # Ctrl-C landed in a pump: the caller gets it plainly, as it came
                raise _plain_interrupt(eg) from None
        finally:
            self._end_subscriptions()
            self._in_send.close()
            self._in_recv.close()
            with anyio.CancelScope(shield=True):
                await self.backend.close()
            self._reconcile()
            self._settle_pending()
        if self._error is not None and exc is None and not self._error_reported:
            raise self._error  # a failure no call has reported yet
        return False

    async def _pump(self, fn) -> None:
        scope = anyio.CancelScope()
        self._pump_scopes.append(scope)
        if self._stopping:
            scope.cancel()
        with scope:
            await fn()

    def _stop_pumps(self) -> None:
        self._stopping = True
        for scope in self._pump_scopes:
            scope.cancel()

    @property
    def usable(self) -> bool:
        """Open and not failed: calls can be made."""
        return self._state == "open" and self._error is None

    def _fail(self, err: BaseException) -> None:
        if self._error is None:
            self._error = err
        self._end_subscriptions()
        self._in_recv.close()  # wakes senders blocked on a full queue
        self._idle.set()  # wakes flush()
        self._stop_pumps()

    def _end_subscriptions(self) -> None:
        for s in self._subs:
            s.end()

    def _raise_if_unusable(self) -> None:
        if self._error is not None:
            self._error_reported = True
            raise self._error
        if self._state == "closed":
            raise DeviceClosed(f"{self.backend.name} is closed; open a new session")
        if self._state == "new":
            raise DeviceError("the session is not open: use 'async with open_device(...) as dev'")

    _check = _raise_if_unusable

    # ------------------------------------------------------------------ time
    def now_us(self) -> int:
        """Session time in µs: host clock since the device's stopwatch was last reset."""
        return int((anyio.current_time() - self._epoch) * 1e6)

    # ------------------------------------------------------------------ configuration
    async def apply(self, config) -> None:
        """Validate and apply a ChipConfig (or a path to one); neuron states and the stopwatch are reset."""
        self._check()
        cfg = load_config(config)
        validate(cfg)
        async with self._lock:
            await self._call(self.backend.apply(cfg))
            self._epoch = anyio.current_time()
            self._unwrap.rebase(0)
            if cfg.slow_clock_hz:
                await self._call(self.backend.set_slow_clock(cfg.slow_clock_hz))
        self.config = cfg
        shapes = np.zeros((256, 3), np.int64)
        for c, cc in cfg.cores.items():
            shapes[c] = cc.input_shape
        self._shapes = shapes

    async def _call(self, coro):
        """A device call from the user's side: its failure is the session's failure, raised once."""
        try:
            return await coro
        except DeviceDisconnected as e:
            err = DeviceDisconnected(f"{self.backend.name} disconnected: {e}", self._accounting())
            self._fail(err)
            raise err from e

    async def slow_clock(self, hz: float | None) -> None:
        """Set the slow clock (leak, readout) rate in Hz; None or 0 stops it."""
        self._check()
        async with self._lock:
            await self._call(self.backend.set_slow_clock(hz))

    async def reset_time(self) -> None:
        """Reset the device stopwatch; session time restarts at 0."""
        self._check()
        async with self._lock:
            await self._call(self.backend.reset_time())
            self._epoch = anyio.current_time()
            self._unwrap.rebase(0)

    async def reset_state(self) -> None:
        """Zero every neuron's membrane potential."""
        self._check()
        async with self._lock:
            await self._call(self.backend.reset_state())

    # ------------------------------------------------------------------ input
    def _validated(self, spikes) -> np.ndarray:
        """SPIKE_DTYPE events whose addresses lie on a configured core's input map (else AddressError
        naming the index in the caller's array) and whose timestamps fit the chip's stopwatch."""
        spikes = ev.as_events(spikes, "spike")
        if spikes.ndim != 1:
            raise ValueError(f"spikes must be a 1-D array, got shape {spikes.shape}")
        if self._shapes is None:
            raise DeviceError("apply a configuration before sending spikes")
        if len(spikes):
            shp = self._shapes[spikes["core"]]
            bad = (shp[:, 0] == 0) | (spikes["c"] >= shp[:, 0]) | (spikes["y"] >= shp[:, 1]) | \
                  (spikes["x"] >= shp[:, 2])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                e = spikes[i]
                where = (f"the input map {tuple(int(v) for v in shp[i])} (C, H, W) of core {e['core']}"
                         if shp[i, 0] else f"core {e['core']}, which is not configured (cores: "
                         f"{sorted(self.config.cores) if self.config else []})")
                raise AddressError(f"spike {i} of this send (core={e['core']}, c={e['c']}, x={e['x']}, y={e['y']}) "
                                   f"is off {where}; nothing of this send was queued")
            _check_times(spikes["t"], "spike")
        return spikes

    def _validated_dvs(self, events) -> np.ndarray:
        """DVS_EVENT_DTYPE events on the sensor of the configuration's DVS stage, in time order."""
        events = ev.as_events(events, "dvs")
        if events.ndim != 1:
            raise ValueError(f"DVS events must be a 1-D array, got shape {events.shape}")
        if self.config is None:
            raise DeviceError("apply a configuration before sending DVS events")
        dvs = self.config.dvs
        if dvs is None or dvs.input_size is None:
            raise DeviceError("the applied configuration has no DVS stage: send spikes to its input cores "
                              f"{self.config.input_cores} instead (kind='spike'), or compile with dvs=True")
        if len(events):
            check_dvs_events(events, dvs, where=" of this send", after="; nothing of this send was queued")
            _check_times(events["t"], "DVS event")
        return events

    async def send(self, spikes: np.ndarray, *, kind: str = "spike", policy: str | None = None) -> int:
        """Queue input events for the device; ``t`` in session µs (0 = now).

        ``kind="spike"``: SPIKE_DTYPE events straight into cores; a tonic-style (x, y, t, p) array goes to the
        configuration's input core(s), polarity as channel (or into its DVS stage when it has one), and must
        fit the input map (the error names tonic's crop / downsample transforms). ``kind="dvs"``: DvsEvents (DVS_EVENT_DTYPE,
        sensor x/y/p) into the configuration's DVS stage, which pools, crops, merges and mirrors them as the chip
        does (:meth:`send_dvs`). The whole array is checked first (addresses, timestamps): a bad event raises
        before anything is queued. Any size is accepted and split into batches of ``batch_size``. With the
        ``"wait"`` policy a full input queue makes this wait (backpressure); with ``"drop"`` the batches that do
        not fit are dropped and counted. Returns the number of events accepted.
        """
        self._check()
        policy = policy or self.policy
        if policy not in ("wait", "drop"):
            raise ValueError(f"policy must be 'wait' or 'drop', got {policy!r}")
        kind, spikes = self._prepared(spikes, kind)
        accepted = 0
        for start in range(0, len(spikes), self.batch_size):
            batch = spikes[start:start + self.batch_size]
            try:  # a batch counts as offered once its fate is known: queued, or dropped by the policy
                if policy == "wait":
                    await self._in_send.send((kind, batch))  # cancelled here: neither offered nor accepted
                else:
                    try:
                        self._in_send.send_nowait((kind, batch))
                    except anyio.WouldBlock:
                        self.counts["offered"] += len(batch)
                        self.counts["dropped_policy"] += len(batch)
                        continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._raise_if_unusable()
                raise
            self.counts["offered"] += len(batch)
            # counted once the queue holds it (the writer may already have run: _pending can dip < 0)
            self._pending += len(batch)
            if self._pending > 0 and self._idle.is_set():
                self._idle = anyio.Event()
            accepted += len(batch)
            self.counts["accepted"] += len(batch)  # per batch: a failure mid-call keeps the books right
        return accepted

    def _prepared(self, events, kind: str = "spike") -> tuple[str, np.ndarray]:
        """What ``send`` queues for ``events``: ("spike" | "dvs", checked array). tonic-style x/y/t/p arrays go to
        the input core(s), polarity as channel, or into the DVS stage when the configuration has one."""
        if kind == "spike" and is_tonic(np.asarray(events)):
            if self.config is None:
                raise DeviceError("apply a configuration before sending events")
            kind, events = to_input(self.config, events, whole_stream=False)  # a live chunk may be short
        if kind == "spike":
            return kind, self._validated(events)
        if kind == "dvs":
            return kind, self._validated_dvs(events)
        raise ValueError(f"kind must be 'spike' or 'dvs', got {kind!r}")

    async def send_dvs(self, events: np.ndarray, *, policy: str | None = None) -> int:
        """Queue DvsEvents (DVS_EVENT_DTYPE: t, x, y, p on the sensor) for the configuration's DVS stage:
        ``send(events, kind="dvs")``. tonic-style x/y/t/p arrays convert with ``codec.dvs_from_xytp``."""
        return await self.send(events, kind="dvs", policy=policy)

    async def flush(self) -> None:
        """Wait until every queued input batch has been written to the device."""
        self._check()
        while self._pending > 0 and self._error is None:
            await self._idle.wait()
        self._raise_if_unusable()

    async def _writer(self) -> None:
        try:
            async for kind, batch in self._in_recv:
                async with self._lock:
                    if kind == "dvs":
                        await self.backend.write_dvs(batch)
                    else:
                        await self.backend.write_spikes(batch)
                self._lag.wrote(len(batch))
                self.counts["written"] += len(batch)
                self._pending -= len(batch)
                if self._pending <= 0:
                    self._idle.set()
        except DeviceDisconnected as e:
            took = e.accounting.get("written_before_disconnect", self.counts["written"]) - self.counts["written"]
            if took > 0:  # the device took part of the batch in flight before it vanished
                self.counts["written"] += took
                self._pending -= took
            self._fail(_caused(DeviceDisconnected(f"{self.backend.name} disconnected mid-stream", self._accounting()), e))
        except DeviceError as e:
            self._fail(e)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        except Exception as e:  # a backend bug must still end the session cleanly, with accounting
            self._fail(_caused(DeviceError(f"{self.backend.name} writer failed: {type(e).__name__}: {e}"), e))

    def _reconcile(self) -> None:
        """A write whose wait was abandoned (cancelled) may still have reached the device: count what the
        backend says it took (samna backends count on their device thread)."""
        took = getattr(self.backend, "device_written", None)
        if took is not None and took > self.counts["written"]:
            extra = took - self.counts["written"]
            self.counts["written"] += extra
            from_pending = min(extra, max(self._pending, 0))
            self._pending -= from_pending
            self.counts["lost_in_flight"] -= extra - from_pending  # settled at close, taken by the device since

    def _settle_pending(self) -> None:
        """Events accepted but never written are lost in flight: count them once."""
        self.counts["lost_in_flight"] += max(self._pending, 0)
        self._pending = 0

    def accounting(self) -> dict:
        """What happened to every accepted event, reconciled with the device now: ``accepted == written +
        not_written`` (closed or failed sessions) and ``offered == accepted + dropped_by_policy``. A write
        abandoned at close that the device completed later counts as written once it has."""
        self._reconcile()
        if self._state == "open" and self._error is None:
            acc = {"accepted": self.counts["accepted"], "written": self.counts["written"],
                   "pending": max(self._pending, 0), "dropped_by_policy": self.counts["dropped_policy"]}
            return acc | {"offered": self.counts["offered"]}
        return self._accounting() | {"offered": self.counts["offered"]}

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
                if out is not None:
                    self._dispatch(out)
                self._lag.check(self.backend)
                await anyio.lowlevel.checkpoint()
        except DeviceDisconnected as e:
            self._fail(_caused(DeviceDisconnected(f"{self.backend.name} disconnected mid-stream", self._accounting()), e))
        except DeviceError as e:
            self._fail(e)
        except Exception as e:
            self._fail(_caused(DeviceError(f"{self.backend.name} reader failed: {type(e).__name__}: {e}"), e))

    def _dispatch(self, out: DecodedOutput) -> None:
        host = self.now_us()
        if len(out.spikes):
            out.spikes["t"] = self._unwrap(out.spikes["t"])
        if len(out.dvs):  # raw sensor events carry the same stopwatch's 32-bit stamps
            out.dvs["t"] = self._unwrap(out.dvs["t"])
        for f in ("neuron_values", "readout"):
            arr = getattr(out, f)
            if len(arr):
                arr["t"] = host
        self.counts["out_spikes"] += len(out.spikes)
        self.counts["out_neuron_values"] += len(out.neuron_values)
        self.counts["out_readout"] += len(out.readout)
        self.counts["out_dvs"] += len(out.dvs)
        self.counts["unknown"] += out.n_unknown
        if len(out.neuron_values):
            self._replies.deliver(out.neuron_values)
        for sub in self._subs:
            for kind in sub.kinds:
                sub.offer(kind, getattr(out, FIELDS[kind]))

    def subscribe(self, kind="spike", *, cores=None, max_batches: int = 256) -> Subscription:
        """A subscription to output batches of ``kind`` ("spike", "neuron_value", "readout", "dvs", or "all"),
        optionally of some ``cores`` only: a resource - ``with dev.subscribe(...) as sub: async for b in sub``.
        Each has its own bound (``max_batches``): a slow one loses (and counts) batches instead of stalling."""
        self._check()
        kinds = KINDS if kind == "all" else ((kind,) if isinstance(kind, str) else tuple(kind))
        for k in kinds:
            if k not in KINDS:
                raise ValueError(f"unknown output kind {k!r}; choose from {KINDS} or 'all'")
        sub = Subscription(self, frozenset(kinds), None if cores is None else frozenset(np.atleast_1d(cores).tolist()),
                           max_batches)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()

    async def events(self, kind="spike", *, cores=None, max_batches: int = 256) -> AsyncIterator[np.ndarray]:
        """Yield decoded output batches of ``kind`` with 64-bit session-µs timestamps; with several kinds (or
        "all") ``(kind, array)`` pairs. Ends with the session's error if the device fails or closes."""
        with self.subscribe(kind, cores=cores, max_batches=max_batches) as sub:
            async for item in sub:
                yield item

    # ------------------------------------------------------------------ uses (one module each)
    async def read_neurons(self, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
        """Send ReadNeuronValue requests and collect their replies (NEURON_VALUE_DTYPE, stamped on receipt, in
        request order); replies that do not arrive within ``timeout_s`` are missing (compare lengths)."""
        return await _vmem.read_neurons(self, requests, timeout_s=timeout_s)

    async def write_neurons(self, requests: np.ndarray) -> None:
        """Send WriteNeuronValue requests (WRITE_REQUEST_DTYPE: core, address, vmem). Checked whole first: a vmem
        that does not fit int16 or a core that is not configured raises (CodecError / AddressError) before
        anything is written."""
        self._check()
        requests = _vmem.checked_requests(self, requests, "write")
        async with self._lock:
            await self._call(self.backend.write_neurons(requests))

    def poll_vmem(self, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
                  count: int | None = None) -> AsyncIterator[_vmem.VmemFrame]:
        """Yield a :class:`VmemFrame` of ``core`` every ``every`` seconds (``neurons``: None for the whole
        core as a dense [C, H, W] image, or ``(c, x, y)`` arrays); missing replies are reported, never
        waited for beyond the period, and a late reply is never handed out as a fresh one."""
        self._check()  # and everything else now, not at the first frame
        return _vmem.poll_vmem(self, core, every=every, neurons=neurons, layout=layout, count=count)

    async def replay(self, source, *, speed: float | None = 1.0, record=None, core: int | None = None,
                     lead_s: float = 0.05, slice_s: float = 0.005, t_offset_us: int = 1000, sort: bool = False,
                     via: str = "auto", progress: Callable[[int, int], None] | None = None) -> _replay.ReplayResult:
        """Stream an event file (``.spk``, ``.npy``, ``.aedat4``, ...) or an array into the device.

        ``speed``: 1.0 = real time, 2.0 = twice as fast, None = written as fast as possible. The relative
        timestamps are always kept: a wall-clock device (a devkit, the simulator's default clock) releases each
        event at its timestamp, so a replay with ``speed=None`` lasts as long as the stream there; on a
        virtual-clock simulator it runs as fast as the CPU allows. Events must be in time order (or
        ``sort=True``); x/y/t/p timestamps in whole µs. Paced replays write slices of ``slice_s`` seconds
        ``lead_s`` ahead of their time. ``record``: a ``.spk`` path where all outputs are recorded (closed with
        what was recorded on every exit path). ``via``: "dvs" sends the events through the configuration's DVS
        stage (pooling, crop, polarity, mirror), "core" straight into ``core``; "auto" takes "dvs" for a camera
        recording (x/y/t/p) when there is a DVS stage. ``progress(events_written, total)`` is called after each
        write (``total`` 0 when the format must be decoded to be counted)."""
        return await _replay.replay(self, source, speed=speed, record=record, core=core, lead_s=lead_s,
                                    slice_s=slice_s, t_offset_us=t_offset_us, sort=sort, via=via, progress=progress)

    async def closed_loop(self, callback: Callable[[np.ndarray], np.ndarray | None | Awaitable],
                          initial: np.ndarray, *, iterations: int | None = None, duration_s: float | None = None,
                          timeout_s: float = 0.1, cores=None) -> _loop.LoopResult:
        """Send ``initial``, then for each output batch call ``callback(batch)`` (sync or async) and send what
        it returns; silence for ``timeout_s`` calls it with an empty batch. Measures round trips."""
        return await _loop.closed_loop(self, callback, initial, iterations=iterations, duration_s=duration_s,
                                       timeout_s=timeout_s, cores=cores)

    async def _quiesce(self, quiet_s: float = 0.02, max_s: float = 2.0) -> None:
        """Wait until no output has arrived for ``quiet_s`` (outputs trail inputs on hardware)."""
        deadline = anyio.current_time() + max_s
        last = -1
        while anyio.current_time() < deadline:
            self._raise_if_unusable()
            total = self.counts["out_spikes"] + self.counts["out_neuron_values"]
            if total == last:
                return
            last = total
            await anyio.sleep(quiet_s)

    # ------------------------------------------------------------------ stats
    @property
    def stats(self) -> dict:
        """Events in/out, rates (events/s since open), drops by cause, queue depths, device counters, and on a
        wall-clock simulator how far it runs behind the input timestamps (``lag_us`` now, ``lag_max_us``; None
        where the device cannot tell)."""
        elapsed = max(anyio.current_time() - self._started, 1e-9)
        return {
            **self.counts,
            "in_rate": self.counts["written"] / elapsed,
            "out_rate": self.counts["out_spikes"] / elapsed,
            "input_queue_batches": self._in_send.statistics().current_buffer_used,
            "stale_replies_dropped": self._replies.stale_dropped,
            **self._lag.stats(self.backend),
            "subscriptions": [s.statistics() for s in self._subs],
            "device": self.backend.stats,
        }


def _check_times(t: np.ndarray, noun: str) -> None:
    """Input timestamps in order (a device releases input in order of arrival at its timestamp) and within
    the chip's 32-bit stopwatch."""
    ev.check_time_order(t, noun=noun, where=" of this send", advice="send events in time order")
    if int(t.max()) >= WRAP:
        raise DeviceError(f"input timestamp {int(t.max())} µs is past the chip's 32-bit stopwatch range (71.6 min); "
                          "call reset_time() between segments")


def _plain_interrupt(eg: BaseExceptionGroup) -> BaseException:
    """The KeyboardInterrupt (or SystemExit) inside a task group's exception group, else the group itself."""
    for kind in (KeyboardInterrupt, SystemExit):
        found: BaseException | None = eg.split(kind)[0]
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is not None:
            return found
    return eg


def _caused(err: BaseException, cause: BaseException) -> BaseException:
    """``err`` with ``cause`` kept (what ``raise err from cause`` does, for errors raised later by another task)."""
    err.__cause__ = cause
    return err
