"""The one interface between a session and its uses (replay, vmem, closed_loop, subscriptions), as asyncpg's
``ConnectionResource`` is to its connection: each use module takes a :class:`DeviceLink` and touches nothing else
of the session.

The link owns what every use shares: the backend and the lock that serialises calls to it; :meth:`DeviceLink.call`,
the one error path (every backend call goes through it, so a device that vanishes during any call - a write, a
read request, a configuration - fails the session once, with the same accounting); the session's state and its
one error (:meth:`~DeviceLink.ensure_usable`); the device's epoch and timestamp unwrapping; the books; the input
queue (``send`` / ``flush``, checked whole before anything is queued); the reply matcher; and the subscriber
registry that every output batch is dispatched to.
"""
from __future__ import annotations

import time
import weakref
from typing import Any, Awaitable, Callable, Literal, TypeVar

import numpy as np

import anyio

from ..codec.samna_events import DecodedOutput
from ..compiler.config import ChipConfig
from .backends.base import Backend
from .errors import DeviceClosed, DeviceDisconnected, DeviceError
from .input_checks import input_shapes, prepared
from .ledger import Ledger
from .options import InputKind, OutputKind, Policy, check_policy
from .replies import ReplyMatcher
from .stats import Accounting
from .subscriptions import FIELDS, OUTPUT_KINDS, Subscription
from .timebase import Unwrapper

__all__ = ["DeviceLink"]

T = TypeVar("T")


class DeviceLink:
    """What the runtime's uses may touch of an open session (see the module docstring). ``on_fail`` is the
    session's own reaction to a failure (stopping its pumps)."""

    def __init__(self, backend: Backend, *, batch_size: int, input_queue: int, policy: Policy,
                 on_fail: Callable[[], None]):
        self.backend = backend
        self.batch_size = batch_size
        self.policy: Policy = policy
        self.lock = anyio.Lock()  # serialises device calls from the pumps and the user
        self.books = Ledger()
        self.replies = ReplyMatcher()
        # weakly held: a subscription its reader dropped unclosed is no longer fed (insertion-ordered by number)
        self._subscribers: weakref.WeakValueDictionary[int, Subscription] = weakref.WeakValueDictionary()
        self._next_sub = 0
        self.config: ChipConfig | None = None
        self.epoch = 0.0  # loop time at which the device's stopwatch was last reset
        self.state: Literal["new", "open", "closed"] = "new"
        self.error: BaseException | None = None
        self.error_reported = False  # raised to the caller at least once (then not again at exit)
        self._on_fail = on_fail
        self._shapes: np.ndarray | None = None  # per core id: (C, H, W) of the input map
        self._unwrap = Unwrapper()
        self._in_send, self.inbox = anyio.create_memory_object_stream[tuple[InputKind, np.ndarray]](input_queue)
        self._idle = anyio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ state and the one error path
    def ensure_usable(self) -> None:
        """Raise the session's error, DeviceClosed, or DeviceError (not open yet) unless calls can be made."""
        if self.error is not None:
            self.error_reported = True
            raise self.error
        if self.state == "closed":
            raise DeviceClosed(f"{self.backend.name} is closed; open a new session")
        if self.state == "new":
            raise DeviceError("the session is not open: use 'async with open_device(...) as dev'")

    def fail(self, err: BaseException) -> None:
        """The session failed with ``err`` (the first failure is kept): wake every waiter and stop the pumps."""
        if self.error is None:
            self.error = err
        self.end_subscriptions()
        self.inbox.close()  # wakes senders blocked on a full queue
        self._idle.set()  # wakes flush()
        self._on_fail()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, locked: bool = True,
                   mid_stream: bool = False) -> T:
        """``await fn(*args)``, a backend call, under the lock unless ``locked=False``. A disconnect is the
        session's failure: DeviceDisconnected with the accounting, raised here and by every later call. Other
        DeviceErrors (a refused rate, a rejected configuration) pass through and leave the session usable."""
        try:
            if not locked:
                return await fn(*args)
            async with self.lock:
                return await fn(*args)
        except DeviceDisconnected as e:
            if self.error is None:
                self.settle()  # what the device took before it vanished
                where = " mid-stream" if mid_stream else ""
                err = DeviceDisconnected(f"{self.backend.name} disconnected{where}: {e}", self.books.accounting())
                err.__cause__ = e
                self.fail(err)
            if not mid_stream:  # a pump's failure is reported by the caller's next call
                self.error_reported = True
            raise self.error  # type: ignore[misc]  # set by fail() above, or by an earlier failure

    def settle(self) -> None:
        """Close the books: reconciled with the device's own count, what was never written settled as such."""
        self.books.reconcile(self.backend.device_written)
        self.books.settle()

    def accounting(self) -> Accounting:
        """The books reconciled with the device's own count (settled once the session is closed or failed)."""
        if self.state != "open" or self.error is not None:
            self.settle()
        else:
            self.books.reconcile(self.backend.device_written)
        return self.books.accounting()

    # ------------------------------------------------------------------ time and configuration
    def now_us(self) -> int:
        """Session time in µs: host clock since the device's stopwatch was last reset."""
        return int((anyio.current_time() - self.epoch) * 1e6)

    def restart_clock(self) -> None:
        """The device's stopwatch was reset: session time restarts at 0, at the moment the device thread started
        the watch where the backend says when (:attr:`Backend.stopwatch_started_at`), else now."""
        now = anyio.current_time()
        started = self.backend.stopwatch_started_at
        # perf_counter and the loop's clock (monotonic on asyncio, trio's own origin) run at one rate: the age of
        # the start on one clock is its age on the other
        self.epoch = now if started is None else now - max(0.0, time.perf_counter() - started)
        self._unwrap.rebase(0)

    def configured(self, cfg: ChipConfig) -> None:
        self.config = cfg
        self._shapes = input_shapes(cfg)

    # ------------------------------------------------------------------ input
    def prepared(self, events, kind: InputKind = "spike") -> tuple[InputKind, np.ndarray]:
        """What ``send`` queues for ``events`` (see :func:`.input_checks.prepared`)."""
        return prepared(self.config, self._shapes, events, kind)

    async def send(self, events, *, kind: InputKind = "spike", policy: Policy | None = None) -> int:
        """See :meth:`Session.send`."""
        self.ensure_usable()
        policy = check_policy(policy or self.policy)
        checked_kind, events = self.prepared(events, kind)
        accepted = 0
        for start in range(0, len(events), self.batch_size):
            batch = events[start:start + self.batch_size]
            try:  # a batch counts as offered once its fate is known: queued, or dropped by the policy
                if policy == "wait":
                    await self._in_send.send((checked_kind, batch))  # cancelled here: neither offered nor accepted
                else:
                    try:
                        self._in_send.send_nowait((checked_kind, batch))
                    except anyio.WouldBlock:
                        self.books.dropped(len(batch))
                        continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.ensure_usable()
                raise
            # counted once the queue holds it, per batch: a failure mid-call keeps the books right (the writer
            # may already have run: pending can dip below 0 for a moment)
            self.books.queued(len(batch))
            if self.books.pending > 0 and self._idle.is_set():
                self._idle = anyio.Event()
            accepted += len(batch)
        return accepted

    def wrote(self, n: int) -> None:
        """The writer pump wrote ``n`` queued events to the device."""
        self.books.wrote(n)
        if self.books.pending <= 0:
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued input batch has been written to the device."""
        self.ensure_usable()
        while self.books.pending > 0 and self.error is None:
            await self._idle.wait()
        self.ensure_usable()

    def close_input(self) -> None:
        self._in_send.close()
        self.inbox.close()

    # ------------------------------------------------------------------ output
    def dispatch(self, out: DecodedOutput) -> None:
        """Stamp one batch of device output in session µs and hand it to the reply matcher and the subscribers."""
        host = self.now_us()
        if len(out.spikes):
            out.spikes["t"] = self._unwrap(out.spikes["t"])
        if len(out.dvs):  # raw sensor events carry the same stopwatch's 32-bit stamps
            out.dvs["t"] = self._unwrap(out.dvs["t"])
        if len(out.readout):  # tick times where the device knows them, else the time of receipt
            out.readout["t"] = self._unwrap(out.readout["t"]) if self.backend.stamps_readout else host
        if len(out.neuron_values):  # the chip gives replies no time: stamped on receipt
            out.neuron_values["t"] = host
        self.books.received(out)
        if len(out.neuron_values):
            self.replies.deliver(out.neuron_values)
        for sub in self.subscribers:
            for kind in sub.kinds:
                sub.offer(kind, getattr(out, FIELDS[kind]))

    def subscribe(self, kind: OutputKind | tuple[OutputKind, ...] = "spike", *, cores=None,
                  max_batches: int = 256) -> Subscription:
        """See :meth:`Session.subscribe`."""
        self.ensure_usable()
        kinds = OUTPUT_KINDS if kind == "all" else ((kind,) if isinstance(kind, str) else tuple(kind))
        for k in kinds:
            if k not in OUTPUT_KINDS:
                raise ValueError(f"unknown output kind {k!r}; choose from {OUTPUT_KINDS} or 'all'")
        key = self._next_sub
        self._next_sub += 1

        def unsubscribe(_: Subscription) -> None:
            self._subscribers.pop(key, None)

        sub = Subscription(frozenset(kinds), None if cores is None else frozenset(np.atleast_1d(cores).tolist()),
                           max_batches, raise_if_ended=self.ensure_usable, on_close=unsubscribe)
        self._subscribers[key] = sub
        return sub

    @property
    def subscribers(self) -> list[Subscription]:
        """The open subscriptions, oldest first."""
        return list(self._subscribers.values())

    def end_subscriptions(self) -> None:
        for s in self.subscribers:
            s.end()

    async def quiesce(self, quiet_s: float = 0.02, max_s: float = 2.0) -> None:
        """Wait until no output has arrived for ``quiet_s`` (outputs trail inputs on hardware)."""
        deadline = anyio.current_time() + max_s
        last = -1
        while anyio.current_time() < deadline:
            self.ensure_usable()
            if self.books.outputs == last:
                return
            last = self.books.outputs
            await anyio.sleep(quiet_s)
