"""A device session: keeps a device fed and drained, hands out decoded numpy batches.

Structured concurrency (anyio, so trio or asyncio): the two pumps (writer, drainer) live in the session's task
group, each inside its own cancel scope, so a device failure stops the pumps without cancelling the caller's code:
every public call then raises the one underlying error (DeviceDisconnected with its accounting,
DeviceError), never an exception group or a Cancelled that escapes its scope. After ``async with`` every
call raises DeviceClosed; closing twice is a no-op. The hot path moves whole numpy batches.

The session is the hub: lifecycle, the pumps, configuration and the clock. What its uses share - the backend
and its lock, the one error path, the epoch, the books, the input queue, the reply matcher and the subscribers -
is its :class:`~.link.DeviceLink`; each use has its own module that takes the link (subscriptions, vmem,
replay, closed_loop), as asyncpg's connection hands its resources to a transaction.

Accounting identities (:meth:`Session.accounting`): ``accepted == written + pending + not_written`` (``pending``
is 0 once the session is closed or failed) and ``offered == accepted + dropped_by_policy``.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Awaitable, Callable

import numpy as np
import anyio

from ..compiler.config import ChipConfig, load_config
from ..compiler.validate import validate
from . import closed_loop as _loop
from . import lag as _lag
from . import power as _power
from . import replay as _replay
from . import vmem as _vmem
from .backends.base import Backend
from .errors import DeviceError
from .link import DeviceLink
from .options import InputKind, OutputKind, Policy, SessionOptions, Via
from .stats import Accounting, SessionStatistics
from .subscriptions import Subscription

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # anyio's and trio's dependency on 3.10

__all__ = ["Session"]


class Session:
    """An open device. Create with :func:`speckstream.open_device`."""

    def __init__(self, backend: Backend, *, batch_size: int = SessionOptions.batch_size,
                 input_queue: int = SessionOptions.input_queue, policy: Policy = SessionOptions.policy,
                 read_timeout_s: float = SessionOptions.read_timeout_s,
                 lag_warn_s: float | None = SessionOptions.lag_warn_s):
        """``backend``: the device (``make_backend``); the options are :class:`~.options.SessionOptions`'."""
        self.options = SessionOptions(batch_size=batch_size, input_queue=input_queue, policy=policy,
                                      read_timeout_s=read_timeout_s, lag_warn_s=lag_warn_s)
        self.backend = backend
        self._lag = _lag.LagGuard(lag_warn_s)
        self._link = DeviceLink(backend, batch_size=batch_size, input_queue=input_queue, policy=policy,
                                on_fail=self._stop_pumps)
        self._pump_scopes: list[anyio.CancelScope] = []  # one per pump: cancelling them never touches user code
        self._stopping = False
        self._started = 0.0

    @property
    def config(self) -> ChipConfig | None:
        """The applied configuration (None before :meth:`apply`)."""
        return self._link.config

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "Session":
        if self._link.state != "new":
            raise DeviceError("a Session is entered once; open a new one")
        await self.backend.open()
        self._nursery_cm = anyio.create_task_group()
        self._nursery = await self._nursery_cm.__aenter__()
        self._link.state = "open"
        self._link.restart_clock()
        self._started = self._link.epoch
        self._nursery.start_soon(self._pump, self._writer)
        self._nursery.start_soon(self._pump, self._drainer)
        return self

    async def __aexit__(self, etype, exc, tb):
        link = self._link
        if link.state != "open":
            return False  # closing twice is a no-op
        link.state = "closed"
        self._stop_pumps()
        try:
            try:
                await self._nursery_cm.__aexit__(None, None, None)  # only the pumps live there; they stop
            except BaseExceptionGroup as eg:  # Ctrl-C landed in a pump: the caller gets it plainly, as it came
                raise _plain_interrupt(eg) from None
        finally:
            link.end_subscriptions()
            link.close_input()
            with anyio.CancelScope(shield=True):
                await self.backend.close()
            link.settle()
        if link.error is not None and exc is None and not link.error_reported:
            raise link.error  # a failure no call has reported yet
        return False

    async def _pump(self, fn: Callable[[], Awaitable[None]]) -> None:
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
        return self._link.state == "open" and self._link.error is None

    def ensure_usable(self) -> None:
        """Raise the session's error, DeviceClosed (closed) or DeviceError (not open yet) unless it is usable."""
        self._link.ensure_usable()

    # ------------------------------------------------------------------ the pumps
    async def _writer(self) -> None:
        link = self._link
        try:
            async for kind, batch in link.inbox:
                write = self.backend.write_dvs if kind == "dvs" else self.backend.write_spikes
                await link.call(write, batch, mid_stream=True)
                self._lag.wrote()
                link.wrote(len(batch))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            pass
        except Exception as e:
            self._failed(e, "writer")

    async def _drainer(self) -> None:
        """Drain the device continuously (outputs may only appear while the host polls)."""
        link = self._link
        try:
            while True:
                out = await link.call(self.backend.read, self.options.read_timeout_s, locked=False, mid_stream=True)
                if out is not None:
                    link.dispatch(out)
                self._lag.check(self.backend, link.books.written)
                await anyio.lowlevel.checkpoint()
        except Exception as e:
            self._failed(e, "reader")

    def _failed(self, e: Exception, pump: str) -> None:
        """A pump's failure is the session's (a disconnect has failed it already, in the link's call)."""
        if isinstance(e, DeviceError):
            self._link.fail(e)
        else:  # a backend bug must still end the session cleanly, with accounting
            self._link.fail(_caused(DeviceError(f"{self.backend.name} {pump} failed: {type(e).__name__}: {e}"), e))

    # ------------------------------------------------------------------ configuration and time
    def now_us(self) -> int:
        """Session time in µs: host clock since the device's stopwatch was last reset."""
        return self._link.now_us()

    async def apply(self, config) -> None:
        """Validate and apply a ChipConfig (or a path to one); neuron states and the stopwatch are reset."""
        self._link.ensure_usable()
        cfg = load_config(config)
        validate(cfg)
        link = self._link
        async with link.lock:  # the configuration, the clock restart and the slow clock in one go
            await link.call(self.backend.apply, cfg, locked=False)
            link.restart_clock()
            if cfg.slow_clock_hz:
                await link.call(self.backend.set_slow_clock, cfg.slow_clock_hz, locked=False)
        link.configured(cfg)

    async def slow_clock(self, hz: float | None) -> None:
        """Set the slow clock (leak, readout) rate in Hz; None or 0 stops it."""
        self._link.ensure_usable()
        await self._link.call(self.backend.set_slow_clock, hz)

    async def reset_time(self) -> None:
        """Reset the device stopwatch; session time restarts at 0."""
        self._link.ensure_usable()
        async with self._link.lock:
            await self._link.call(self.backend.reset_time, locked=False)
            self._link.restart_clock()

    async def reset_state(self) -> None:
        """Zero every neuron's membrane potential."""
        self._link.ensure_usable()
        await self._link.call(self.backend.reset_state)

    # ------------------------------------------------------------------ input
    async def send(self, spikes: np.ndarray, *, kind: InputKind = "spike", policy: Policy | None = None) -> int:
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
        return await self._link.send(spikes, kind=kind, policy=policy)

    async def send_dvs(self, events: np.ndarray, *, policy: Policy | None = None) -> int:
        """Queue DvsEvents (DVS_EVENT_DTYPE: t, x, y, p on the sensor) for the configuration's DVS stage:
        ``send(events, kind="dvs")``. tonic-style x/y/t/p arrays convert with ``codec.dvs_from_xytp``."""
        return await self.send(events, kind="dvs", policy=policy)

    async def flush(self) -> None:
        """Wait until every queued input batch has been written to the device."""
        await self._link.flush()

    def accounting(self) -> Accounting:
        """What happened to every accepted event, reconciled with the device now: ``accepted == written +
        pending + not_written`` (``pending`` is 0 once closed or failed) and ``offered == accepted +
        dropped_by_policy``. A write abandoned at close that the device completed later counts as written once
        it has."""
        return self._link.accounting()

    # ------------------------------------------------------------------ uses (one module each)
    def subscribe(self, kind: OutputKind | tuple[OutputKind, ...] = "spike", *, cores=None,
                  max_batches: int = 256) -> Subscription:
        """A subscription to output batches of ``kind`` ("spike", "neuron_value", "readout", "dvs", or "all"),
        optionally of some ``cores`` only: a resource - ``async with dev.subscribe(...) as sub: async for b in
        sub`` (or ``with``), with ``receive()`` / ``receive_nowait()`` for ``(kind, batch)`` pairs. Each has its
        own bound (``max_batches``): a slow one loses (and counts) batches instead of stalling."""
        return self._link.subscribe(kind, cores=cores, max_batches=max_batches)

    def events(self, kind: OutputKind | tuple[OutputKind, ...] = "spike", *, cores=None,
               max_batches: int = 256) -> Subscription:
        """The stream of decoded output batches of ``kind`` with 64-bit session-µs timestamps (with several kinds,
        or "all", ``(kind, array)`` pairs) as a resource: ``async with dev.events("spike") as batches: async for
        b in batches``. It is :meth:`subscribe`'s subscription, made for iterating; it ends with the session's
        error if the device fails or closes."""
        return self.subscribe(kind, cores=cores, max_batches=max_batches)

    async def read_neurons(self, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
        """Send ReadNeuronValue requests and collect their replies (NEURON_VALUE_DTYPE, stamped on receipt, in
        request order); replies that do not arrive within ``timeout_s`` are missing (compare lengths)."""
        return await _vmem.read_neurons(self._link, requests, timeout_s=timeout_s)

    async def write_neurons(self, requests: np.ndarray) -> None:
        """Send WriteNeuronValue requests (WRITE_REQUEST_DTYPE: core, address, vmem). Checked whole first: a vmem
        that does not fit int16 or a core that is not configured raises (CodecError / AddressError) before
        anything is written."""
        await _vmem.write_neurons(self._link, requests)

    def power(self, *, every: float = 0.1, count: int | None = None) -> _power.PowerSamples:
        """A :class:`~speckstream.sim.energy.PowerSample` (W per rail, ``estimated`` or measured) every ``every``
        seconds, as a resource: ``async with dev.power(every=0.1) as samples: async for s in samples``. On a
        devkit, samna's power monitor (up to 100 Hz, averaged per rail over each period); on the simulator, the
        energy model's estimate from its activity (``estimated=True``). ``count`` samples, or until closed."""
        return _power.power(self._link, every=every, count=count)

    def poll_vmem(self, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
                  count: int | None = None) -> _vmem.VmemFrames:
        """A :class:`VmemFrame` of ``core`` every ``every`` seconds, as a resource: ``async with
        dev.poll_vmem(core, every=0.05) as frames: async for frame in frames`` (``neurons``: None for the whole
        core as a dense [C, H, W] image, or ``(c, x, y)`` arrays; ``count`` frames, or until closed). Checked at
        the call; missing replies are reported, never waited for beyond the period, and a late reply is never
        handed out as a fresh one."""
        return _vmem.poll_vmem(self._link, core, every=every, neurons=neurons, layout=layout, count=count)

    async def replay(self, source, *, speed: float | None = 1.0, record=None, core: int | None = None,
                     lead_s: float = 0.05, slice_s: float = 0.005, t_offset_us: int = 1000, sort: bool = False,
                     via: Via = "auto", progress: Callable[[int, int], None] | None = None) -> _replay.ReplayResult:
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
        return await _replay.replay(self._link, source, speed=speed, record=record, core=core, lead_s=lead_s,
                                    slice_s=slice_s, t_offset_us=t_offset_us, sort=sort, via=via, progress=progress)

    async def closed_loop(self, callback: Callable[[np.ndarray], np.ndarray | None | Awaitable],
                          initial: np.ndarray, *, iterations: int | None = None, duration_s: float | None = None,
                          timeout_s: float = 0.1, cores=None) -> _loop.LoopResult:
        """Send ``initial``, then for each output batch call ``callback(batch)`` (sync or async) and send what
        it returns; silence for ``timeout_s`` calls it with an empty batch. Measures round trips."""
        return await _loop.closed_loop(self._link, callback, initial, iterations=iterations, duration_s=duration_s,
                                       timeout_s=timeout_s, cores=cores)

    # ------------------------------------------------------------------ statistics
    @property
    def stats(self) -> SessionStatistics:
        """Events in and out, rates (events/s since open), queue depths, stale replies, the subscriptions', the
        device's own counters, and on a wall-clock simulator how far it runs behind the input timestamps
        (``lag_us`` now, ``lag_max_us``; None where the device cannot tell)."""
        link, books = self._link, self._link.books
        elapsed = max(anyio.current_time() - self._started, 1e-9)
        return SessionStatistics(
            **dataclasses.asdict(books.accounting()), neuron_values=books.out_neuron_values, readout_values=books.out_readout, dvs_events=books.out_dvs,
            unknown_events=books.unknown, in_rate=books.written / elapsed, out_rate=books.out_spikes / elapsed,
            input_queue_batches=link.inbox.statistics().current_buffer_used,
            stale_replies_dropped=link.replies.stale_dropped, lag_us=self.backend.lag_us,
            lag_max_us=self.backend.lag_max_us, subscriptions=tuple(s.statistics() for s in link.subscribers),
            device=self.backend.stats)


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
