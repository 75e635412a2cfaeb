"""The blocking facade: a :class:`~speckstream.runtime.Session` for scripts, ROS 2 nodes and other
threaded code, over anyio's blocking portal (an event loop in one thread of its own).

    with ss.connect("sim") as dev:
        dev.apply(config)
        dev.send(spikes)
        for batch in dev.events("spike", timeout_s=0.5):   # ends after 0.5 s without output
            ...

Every call runs on the portal's loop and raises what the async call raises (AddressError,
DeviceDisconnected with its accounting, DeviceClosed...), never an exception group. Arguments are checked
in the caller's thread before the loop starts. Leaving ``with`` (or :meth:`BlockingSession.close`) closes
the session and joins the loop's thread: no thread is left behind.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import anyio
import anyio.from_thread
import numpy as np

from .closed_loop import LoopResult
from .errors import DeviceClosed, DeviceError
from .replay import ReplayResult
from .session import Session
from .subscriptions import Subscription
from .vmem import VmemFrame

__all__ = ["BlockingSession", "BlockingSubscription", "connect"]

_BACKENDS = ("trio", "asyncio")


def connect(spec: str = "sim", *, async_backend: str = "trio", backend_options: dict | None = None,
            clock: str | None = None, faults=None, samna=None, sim_options=None,
            **session_kwargs) -> "BlockingSession":
    """Open a device for blocking use: ``with ss.connect("sim") as dev: ...``.

    ``spec``, ``clock``, ``faults``, ``samna``, ``sim_options`` and the session options are those of
    :func:`~speckstream.open_device`. ``async_backend``: the loop the runtime runs on in its own thread,
    ``"trio"`` (default) or ``"asyncio"`` (``backend_options={"use_uvloop": True}`` for uvloop).
    Nothing starts until the session is entered (``with``, or :meth:`BlockingSession.open`).
    """
    from . import make_backend

    if async_backend not in _BACKENDS:
        raise ValueError(f"async_backend must be one of {_BACKENDS}, got {async_backend!r}")
    backend = make_backend(spec, clock=clock, faults=faults, samna=samna, sim_options=sim_options)
    return BlockingSession(Session(backend, **session_kwargs), async_backend, backend_options or {})


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
        if not self._sub.closed and self._owner._portal is not None:
            self._owner._portal.call(self._sub.close)

    def __enter__(self) -> "BlockingSubscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BlockingSession:
    """A :class:`Session` driven from plain (non-async) code. Made by :func:`connect`."""

    def __init__(self, session: Session, async_backend: str = "trio", backend_options: dict | None = None):
        self.session = session
        self._backend_name = async_backend
        self._backend_options = backend_options or {}
        self._portal_cm: Any = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._session_cm: Any = None

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> "BlockingSession":
        """Start the loop thread and open the device (what ``with`` does)."""
        if self._portal is not None or self._portal_cm is not None:
            raise DeviceError("a blocking session is opened once; connect() again for a new one")
        self._portal_cm = anyio.from_thread.start_blocking_portal(self._backend_name, self._backend_options)
        self._portal = self._portal_cm.__enter__()
        try:
            self._session_cm = self._portal.wrap_async_context_manager(self.session)
            self._session_cm.__enter__()
        except BaseException as e:
            portal_cm, self._portal, self._portal_cm = self._portal_cm, None, None
            portal_cm.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def close(self) -> None:
        """Close the session (its pending error, if no call has reported it, is raised here) and join the
        loop's thread. Idempotent."""
        self._exit(None, None, None)

    def _exit(self, etype, exc, tb) -> None:
        if self._portal_cm is None:
            return
        session_cm, portal_cm = self._session_cm, self._portal_cm
        self._session_cm = self._portal_cm = None
        try:
            if session_cm is not None:
                session_cm.__exit__(etype, exc, tb)
        finally:
            self._portal = None
            portal_cm.__exit__(None, None, None)

    def __enter__(self) -> "BlockingSession":
        return self.open()

    def __exit__(self, etype, exc, tb) -> None:
        self._exit(etype, exc, tb)

    def _call(self, fn: Callable, *args):
        if self._portal is None:
            self.session._raise_if_unusable()  # DeviceClosed after close, "not open" before open
            raise DeviceClosed("the blocking session is closed")
        return self._portal.call(fn, *args)

    # ------------------------------------------------------------------ the Session's calls, blocking
    @property
    def config(self):
        return self.session.config

    @property
    def counts(self) -> dict:
        return dict(self.session.counts)

    @property
    def stats(self) -> dict:
        return self._call(lambda: self.session.stats)

    def accounting(self) -> dict:
        return self._call(self.session.accounting)

    def now_us(self) -> int:
        """Session time in µs."""
        return self._call(self.session.now_us)

    def apply(self, config) -> None:
        """Validate and apply a ChipConfig (or a path to one)."""
        self._call(self.session.apply, config)

    def send(self, events, *, kind: str = "spike", policy: str | None = None) -> int:
        """Queue input events (see :meth:`Session.send`); returns the number accepted."""
        return self._call(lambda: self.session.send(events, kind=kind, policy=policy))

    def send_dvs(self, events, *, policy: str | None = None) -> int:
        return self.send(events, kind="dvs", policy=policy)

    def flush(self, timeout_s: float | None = 10.0) -> None:
        """Wait until every queued input batch has reached the device: TimeoutError after ``timeout_s``."""
        async def flush():
            with anyio.fail_after(math.inf if timeout_s is None else timeout_s):
                await self.session.flush()

        self._call(flush)

    def reset_time(self) -> None:
        self._call(self.session.reset_time)

    def reset_state(self) -> None:
        self._call(self.session.reset_state)

    def slow_clock(self, hz: float | None) -> None:
        self._call(self.session.slow_clock, hz)

    def read_neurons(self, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
        return self._call(lambda: self.session.read_neurons(requests, timeout_s=timeout_s))

    def write_neurons(self, requests: np.ndarray) -> None:
        self._call(self.session.write_neurons, requests)

    def subscribe(self, kind="spike", *, cores=None, max_batches: int = 256,
                  timeout_s: float | None = None) -> BlockingSubscription:
        """A subscription (``with dev.subscribe() as sub: for batch in sub``); iteration ends after
        ``timeout_s`` without output (None: when the session closes)."""
        sub = self._call(lambda: self.session.subscribe(kind, cores=cores, max_batches=max_batches))
        return BlockingSubscription(self, sub, timeout_s)

    def events(self, kind="spike", *, cores=None, timeout_s: float | None = 1.0,
               max_batches: int = 256) -> Iterator[Any]:
        """Output batches of ``kind`` (as :meth:`Session.events`) until ``timeout_s`` passes without one
        (default 1 s; None: until the session closes). Batches that arrived before this call are not
        included: subscribe first when the output of the next ``send`` matters."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number of seconds or None, got {timeout_s}")
        return iter(self.subscribe(kind, cores=cores, max_batches=max_batches, timeout_s=timeout_s))

    def poll_vmem(self, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
                  count: int | None = None) -> Iterator[VmemFrame]:
        """:class:`VmemFrame` of ``core`` every ``every`` seconds (see :meth:`Session.poll_vmem`)."""
        agen = self._call(lambda: self.session.poll_vmem(core, every=every, neurons=neurons, layout=layout,
                                                         count=count))

        async def step():
            try:
                return await agen.__anext__()
            except StopAsyncIteration:
                return None

        try:
            while (frame := self._call(step)) is not None:
                yield frame
        finally:
            if self._portal is not None:
                self._portal.call(agen.aclose)

    def replay(self, source, **kwargs) -> ReplayResult:
        """Stream an event file or array into the device (keywords of :meth:`Session.replay`)."""
        return self._call(lambda: self.session.replay(source, **kwargs))

    def closed_loop(self, callback: Callable[[np.ndarray], np.ndarray | None], initial: np.ndarray,
                    **kwargs) -> LoopResult:
        """:meth:`Session.closed_loop`; ``callback`` runs on the runtime's loop thread."""
        return self._call(lambda: self.session.closed_loop(callback, initial, **kwargs))
