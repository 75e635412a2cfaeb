"""The blocking facade: a :class:`~speckstream.runtime.Session` for scripts, notebooks, ROS 2 nodes and other
threaded code, run on an event loop in a daemon thread of its own (:mod:`~speckstream.runtime.loop_thread`).

    with ss.connect("sim") as dev:
        dev.apply(config)
        dev.send(spikes)
        for batch in dev.events("spike", timeout_s=0.5):   # ends after 0.5 s without output
            ...

Every call runs on that loop and raises what the async call raises (AddressError, DeviceDisconnected with its
accounting, DeviceClosed...), never an exception group. It works from any thread, also one that is running an
event loop (a Jupyter cell, an ``async def`` calling blocking code, a trio task). Arguments are checked in the
caller's thread before the loop starts. Leaving ``with`` (or :meth:`BlockingSession.close`) closes the session
and joins the loop's thread: no thread is left behind. A session that is never closed (a script that ends or
crashes, a ROS 2 node without ``destroy_node``) is flushed and closed when the interpreter exits: the process
always exits. Ctrl-C during a call cancels it on the loop (a replay closes its recording) and raises
KeyboardInterrupt in the caller.
"""
from __future__ import annotations

import atexit
import math
import sys
import threading
from typing import Any, Callable, Generic, Iterator, TypeVar

import anyio
import numpy as np

from ..sim import SimOptions
from ..sim.energy import PowerSample
from .backends.sim import SimFaults
from .closed_loop import LoopResult
from .errors import DeviceClosed, DeviceError
from .loop_thread import Held, LoopThread
from .options import Clock, InputKind, OutputKind, Policy, SessionOptions, Via
from .power import PowerSamples
from .replay import ReplayResult
from .session import Session
from .stats import Accounting, SessionStatistics
from .subscriptions import Subscription
from .vmem import VmemFrame, VmemFrames

__all__ = ["BlockingSession", "BlockingSubscription", "BlockingVmemFrames", "BlockingPowerSamples", "connect",
           "EXIT_FLUSH_S"]

_BACKENDS = ("trio", "asyncio")
#: at interpreter exit, how long an unclosed session may take to write what it accepted, then to close
EXIT_FLUSH_S = 5.0


def connect(spec: str = "sim", *, async_backend: str = "trio", backend_options: dict | None = None,
            clock: Clock | None = None, faults: SimFaults | None = None, samna=None,
            sim_options: SimOptions | None = None, batch_size: int = SessionOptions.batch_size,
            input_queue: int = SessionOptions.input_queue, policy: Policy = SessionOptions.policy,
            read_timeout_s: float = SessionOptions.read_timeout_s,
            lag_warn_s: float | None = SessionOptions.lag_warn_s) -> "BlockingSession":
    """Open a device for blocking use: ``with ss.connect("sim") as dev: ...``, or ``dev = ss.connect(...).open()``
    and ``dev.close()`` later (a session never closed is flushed and closed at interpreter exit).

    ``spec``, ``clock``, ``faults``, ``samna``, ``sim_options`` and the session options are those of
    :func:`~speckstream.open_device`. ``async_backend``: the loop the runtime runs on in its own thread,
    ``"trio"`` (default) or ``"asyncio"`` (``backend_options={"use_uvloop": True}`` for uvloop).
    Nothing starts until the session is entered (``with``, or :meth:`BlockingSession.open`).
    """
    from . import make_backend

    if async_backend not in _BACKENDS:
        raise ValueError(f"async_backend must be one of {_BACKENDS}, got {async_backend!r}")
    opts = SessionOptions(batch_size=batch_size, input_queue=input_queue, policy=policy,
                          read_timeout_s=read_timeout_s, lag_warn_s=lag_warn_s)  # checked here, in the caller's thread
    backend = make_backend(spec, clock=clock, faults=faults, samna=samna, sim_options=sim_options)

    def make_session() -> Session:
        return Session(backend, batch_size=opts.batch_size, input_queue=opts.input_queue, policy=opts.policy,
                       read_timeout_s=opts.read_timeout_s, lag_warn_s=opts.lag_warn_s)

    return BlockingSession(make_session, async_backend, backend_options or {}, name=backend.name)


async def _receive_within(sub: Subscription, timeout_s: float | None):
    """The next (kind, batch), None after ``timeout_s`` of silence, or "end" once the session has closed."""
    try:
        with anyio.move_on_after(math.inf if timeout_s is None else timeout_s):
            return await sub.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        return "end"
    return None


class BlockingSubscription:
    """A subscription read from a plain thread: ``receive(timeout_s)`` or ``for batch in sub``."""

    def __init__(self, owner: "BlockingSession", sub: Subscription, timeout_s: float | None):
        self._owner, self._sub, self.timeout_s = owner, sub, timeout_s

    def receive(self, timeout_s: float | None = None) -> tuple[str, np.ndarray] | None:
        """The next ``(kind, batch)``; None if nothing arrived within ``timeout_s`` (None: wait until the
        session ends); raises the session's error once it has failed, DeviceClosed once it has closed."""
        got = self._owner._call(_receive_within, self._sub, timeout_s)
        if got == "end":
            raise DeviceClosed("the subscription ended: its session is closed")
        return got

    def __iter__(self) -> Iterator[Any]:
        """Batches (or ``(kind, batch)`` for several kinds) until ``timeout_s`` passes without one, the
        session closes, or the caller stops; the session's error if it fails."""
        try:
            while True:
                got = self._owner._call(_receive_within, self._sub, self.timeout_s)
                if got is None or got == "end":
                    return
                kind, arr = got
                yield arr if len(self._sub.kinds) == 1 else (kind, arr)
        finally:
            self.close()

    def statistics(self):
        return self._sub.statistics()

    def close(self) -> None:
        if not self._sub.closed:
            self._owner._call_if_open(self._sub.close)

    def __enter__(self) -> "BlockingSubscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_T = TypeVar("_T")


class _BlockingItems(Generic[_T]):
    """An async resource's items (frames, samples) read from a plain thread: ``receive()`` (None at the end) or
    ``for item in items``; ``close()`` (or leaving ``with``) closes the resource on the session's loop."""

    def __init__(self, owner: "BlockingSession", items):
        self._owner, self._items = owner, items

    def receive(self) -> _T | None:
        """The next item, or None once ``count`` items were read or the items were closed."""
        async def receive():
            try:
                return await self._items.receive()
            except anyio.EndOfStream:
                return None

        return self._owner._call(receive)

    def __iter__(self) -> Iterator[_T]:
        while (item := self.receive()) is not None:
            yield item

    def close(self) -> None:
        self._owner._call_if_open(self._items.aclose)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BlockingVmemFrames(_BlockingItems[VmemFrame]):
    """The frames of a ``poll_vmem`` call read from a plain thread: ``receive()`` or ``for frame in frames``;
    ``close()`` (or leaving ``with``) ends them."""

    def __init__(self, owner: "BlockingSession", frames: VmemFrames):
        super().__init__(owner, frames)


class BlockingPowerSamples(_BlockingItems[PowerSample]):
    """The samples of a ``power`` call read from a plain thread: ``receive()`` or ``for sample in samples``;
    ``close()`` (or leaving ``with``) ends them and stops the device's monitor."""

    def __init__(self, owner: "BlockingSession", samples: PowerSamples):
        super().__init__(owner, samples)


class BlockingSession:
    """A :class:`Session` driven from plain (non-async) code. Made by :func:`connect`."""

    def __init__(self, make_session: Callable[[], Session] | Session, async_backend: str = "trio",
                 backend_options: dict | None = None, *, name: str = "device"):
        # called on the loop's thread, so that the Session's primitives belong to that loop (a Session made
        # inside a running asyncio loop would take that loop's); a ready Session is taken as it is
        self._make_session = make_session if callable(make_session) else (lambda: make_session)
        self.session: Session | None = None
        self.name = name
        self._backend_name = async_backend
        self._backend_options = backend_options or {}
        self._loop: LoopThread | None = None
        self._held: Held | None = None
        self._opened = False

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> "BlockingSession":
        """Start the loop thread and open the device (what ``with`` does)."""
        if self._opened:
            raise DeviceError("a blocking session is opened once; connect() again for a new one")
        self._opened = True
        loop = LoopThread(self._backend_name, self._backend_options, name=f"speckstream-{self.name}")
        try:
            self.session = loop.call(self._make_session)
            self._held = loop.hold(self.session)
        except BaseException:
            loop.stop()
            raise
        self._loop = loop
        _OPEN.append(self)
        _register_exit_hook()
        return self

    def close(self) -> None:
        """Close the session (its pending error, if no call has reported it, is raised here) and join the
        loop's thread. Events accepted but not yet written are counted as not written (``flush()`` first to
        write them). Idempotent."""
        self._exit(None, None, None)

    def _exit(self, etype, exc, tb, timeout_s: float | None = None) -> None:
        loop, held = self._loop, self._held
        if loop is None or held is None:
            return
        self._loop = self._held = None
        if self in _OPEN:
            _OPEN.remove(self)
        try:
            held.exit(etype, exc, tb, timeout_s=timeout_s)
        finally:
            loop.stop()

    def _close_at_exit(self) -> None:
        """Interpreter exit with the session still open: write what it accepted, then close, bounded."""
        try:
            if self.session is not None and self.session.usable:
                self.flush(timeout_s=EXIT_FLUSH_S)
        finally:
            self._exit(None, None, None, timeout_s=EXIT_FLUSH_S)

    def __enter__(self) -> "BlockingSession":
        return self.open()

    def __exit__(self, etype, exc, tb) -> None:
        self._exit(etype, exc, tb)

    def _call(self, fn: Callable, *args):
        if self._loop is None:
            self._live.ensure_usable()  # the session's error, or DeviceClosed
            raise DeviceClosed("the blocking session is closed")
        return self._loop.call(fn, *args)

    def _call_if_open(self, fn: Callable, *args) -> None:
        if self._loop is not None:
            self._loop.call(fn, *args)

    # ------------------------------------------------------------------ the Session's calls, blocking
    @property
    def _live(self) -> Session:
        if self.session is None:
            raise DeviceError("the session is not open: use 'with ss.connect(...) as dev', or "
                              "dev = ss.connect(...).open()")
        return self.session

    @property
    def config(self):
        return self.session.config if self.session is not None else None

    @property
    def stats(self) -> SessionStatistics:
        """:attr:`Session.stats`."""
        return self._call(lambda: self._live.stats)

    def accounting(self) -> Accounting:
        """:meth:`Session.accounting`."""
        return self._call(self._live.accounting)

    def now_us(self) -> int:
        """Session time in µs."""
        return self._call(self._live.now_us)

    def apply(self, config) -> None:
        """Validate and apply a ChipConfig (or a path to one)."""
        self._call(self._live.apply, config)

    def send(self, events, *, kind: InputKind = "spike", policy: Policy | None = None) -> int:
        """Queue input events (see :meth:`Session.send`); returns the number accepted."""
        return self._call(lambda: self._live.send(events, kind=kind, policy=policy))

    def send_dvs(self, events, *, policy: Policy | None = None) -> int:
        return self.send(events, kind="dvs", policy=policy)

    def flush(self, timeout_s: float | None = 10.0) -> None:
        """Wait until every queued input batch has reached the device: TimeoutError after ``timeout_s``."""
        async def flush():
            with anyio.move_on_after(math.inf if timeout_s is None else timeout_s) as scope:
                await self._live.flush()
            if scope.cancelled_caught:
                raise TimeoutError(f"flush: queued input was not all written to {self.name} within {timeout_s} s "
                                   f"({self._live.accounting().pending} events still queued)")

        self._call(flush)

    def reset_time(self) -> None:
        self._call(self._live.reset_time)

    def reset_state(self) -> None:
        self._call(self._live.reset_state)

    def slow_clock(self, hz: float | None) -> None:
        self._call(self._live.slow_clock, hz)

    def read_neurons(self, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
        return self._call(lambda: self._live.read_neurons(requests, timeout_s=timeout_s))

    def write_neurons(self, requests: np.ndarray) -> None:
        self._call(self._live.write_neurons, requests)

    def subscribe(self, kind: OutputKind | tuple[OutputKind, ...] = "spike", *, cores=None, max_batches: int = 256,
                  timeout_s: float | None = None) -> BlockingSubscription:
        """A subscription (``with dev.subscribe() as sub: for batch in sub``); iteration ends after
        ``timeout_s`` without output (None: when the session closes)."""
        sub = self._call(lambda: self._live.subscribe(kind, cores=cores, max_batches=max_batches))
        return BlockingSubscription(self, sub, timeout_s)

    def events(self, kind: OutputKind | tuple[OutputKind, ...] = "spike", *, cores=None, timeout_s: float | None = 1.0,
               max_batches: int = 256) -> Iterator[Any]:
        """Output batches of ``kind`` (as :meth:`Session.events`) until ``timeout_s`` passes without one
        (default 1 s; None: until the session closes). Batches that arrived before this call are not
        included: subscribe first when the output of the next ``send`` matters."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number of seconds or None, got {timeout_s}")
        return iter(self.subscribe(kind, cores=cores, max_batches=max_batches, timeout_s=timeout_s))

    def power(self, *, every: float = 0.1, count: int | None = None) -> "BlockingPowerSamples":
        """Power samples every ``every`` seconds (see :meth:`Session.power`), checked at the call:
        ``with dev.power(every=0.1, count=10) as samples: for s in samples``."""
        samples = self._call(lambda: self._live.power(every=every, count=count))
        return BlockingPowerSamples(self, samples)

    def poll_vmem(self, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
                  count: int | None = None) -> "BlockingVmemFrames":
        """:class:`VmemFrame` of ``core`` every ``every`` seconds (see :meth:`Session.poll_vmem`), checked at the
        call: ``with dev.poll_vmem(core, count=10) as frames: for frame in frames``."""
        frames = self._call(lambda: self._live.poll_vmem(core, every=every, neurons=neurons, layout=layout,
                                                           count=count))
        return BlockingVmemFrames(self, frames)

    def replay(self, source, *, speed: float | None = 1.0, record=None, core: int | None = None,
               lead_s: float = 0.05, slice_s: float = 0.005, t_offset_us: int = 1000, sort: bool = False,
               via: Via = "auto", progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        """Stream an event file or array into the device (:meth:`Session.replay`; ``progress`` runs on the
        runtime's loop thread)."""
        return self._call(lambda: self._live.replay(source, speed=speed, record=record, core=core, lead_s=lead_s,
                                                    slice_s=slice_s, t_offset_us=t_offset_us, sort=sort, via=via,
                                                    progress=progress))

    def closed_loop(self, callback: Callable[[np.ndarray], np.ndarray | None], initial: np.ndarray, *,
                    iterations: int | None = None, duration_s: float | None = None, timeout_s: float = 0.1,
                    cores=None) -> LoopResult:
        """:meth:`Session.closed_loop`; ``callback`` runs on the runtime's loop thread."""
        return self._call(lambda: self._live.closed_loop(callback, initial, iterations=iterations,
                                                         duration_s=duration_s, timeout_s=timeout_s, cores=cores))


# ------------------------------------------------------------------ sessions still open at interpreter exit
_OPEN: list[BlockingSession] = []  # strong references: an open session is closed at exit even if unreferenced
_hook = threading.Lock()
_hooked = False


def _register_exit_hook() -> None:
    """Registered on the first open (not at import), so that hooks a program registers earlier run after it."""
    global _hooked
    with _hook:
        if not _hooked:
            atexit.register(_close_all_at_exit)
            _hooked = True


def _close_all_at_exit() -> None:
    for dev in reversed(list(_OPEN)):
        try:
            dev._close_at_exit()
        except BaseException as e:  # exit goes on; the error is said, once, on stderr
            print(f"speckstream: closing {dev.name} at exit: {type(e).__name__}: {e}", file=sys.stderr)
