"""Membrane potentials: ReadNeuronValue requests and the NeuronValue replies that answer them.

The chip's replies carry no request id and no timestamp, only (core, address). Each ``read_neurons`` call
holds a ticket for the (core, address) pairs it asked for, and a reply fills the oldest ticket still waiting
for its pair. A ticket that timed out stays registered (abandoned) so that its late replies are consumed
and thrown away instead of being handed to the next poll as fresh values; abandoned tickets expire after
``expire_s``. Two concurrent polls of different cores never see each other's replies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator

import numpy as np
import anyio

from ..codec import events as ev
from ..codec import neurons as _neurons
from ..codec.errors import AddressError

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

__all__ = ["VmemFrame", "ReplyMatcher", "read_neurons", "poll_vmem"]


@dataclass
class VmemFrame:
    """One vmem poll of a core: ``image`` int16 [C, H, W] (or per-neuron ``values``), host time in µs."""

    t_us: int
    core: int
    image: np.ndarray | None
    values: np.ndarray  # NEURON_STATE_DTYPE of the replies received
    requested: int
    missing: int


class _Ticket:
    def __init__(self, keys: np.ndarray, born: float):
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.filled = np.zeros(len(keys), bool)
        self.values = np.zeros(len(keys), ev.NEURON_VALUE_DTYPE)
        self.done = anyio.Event()
        self.abandoned = False
        self.born = born

    def take(self, keys: np.ndarray, replies: np.ndarray) -> np.ndarray:
        """Fill from ``replies`` (keys ``keys``); return the mask of replies taken."""
        if len(self.keys) == 0 or len(keys) == 0:
            return np.zeros(len(keys), bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = (self.keys[pos] == keys) & ~self.filled[pos]
        # one reply per slot: keep the first of duplicates within this batch
        first = np.zeros(len(keys), bool)
        if hit.any():
            _, idx = np.unique(pos[hit], return_index=True)
            first[np.flatnonzero(hit)[idx]] = True
        self.filled[pos[first]] = True
        self.values[pos[first]] = replies[first]
        if self.filled.all():
            self.done.set()
        return first


def _keys(core, address) -> np.ndarray:
    return (np.asarray(core, np.uint64) << np.uint64(32)) | np.asarray(address, np.uint64)


class ReplyMatcher:
    """Routes NeuronValue replies to the read_neurons calls that asked for them (see the module docstring)."""

    def __init__(self, expire_s: float = 2.0):
        self.tickets: list[_Ticket] = []
        self.expire_s = expire_s
        self.stale_dropped = 0  # late replies of timed-out requests, thrown away
        self.unsolicited = 0  # replies nobody asked for

    def open(self, requests: np.ndarray) -> _Ticket:
        t = _Ticket(_keys(requests["core"], requests["address"]), anyio.current_time())
        self.tickets.append(t)
        return t

    def abandon(self, t: _Ticket) -> None:
        t.abandoned = True
        if t.filled.all() and t in self.tickets:
            self.tickets.remove(t)

    def deliver(self, replies: np.ndarray) -> None:
        now = anyio.current_time()
        self.tickets = [t for t in self.tickets if not (t.abandoned and now - t.born > self.expire_s)]
        keys = _keys(replies["core"], replies["address"])
        rest = np.ones(len(keys), bool)
        for t in list(self.tickets):
            if not rest.any():
                break
            idx = np.flatnonzero(rest)
            took = t.take(keys[idx], replies[idx])
            rest[idx[took]] = False
            if t.abandoned:
                self.stale_dropped += int(took.sum())
            if t.filled.all():
                self.tickets.remove(t)
        self.unsolicited += int(rest.sum())


def checked_requests(session: "Session", requests, kind: str) -> np.ndarray:
    """ReadNeuronValue ("read") / WriteNeuronValue ("write") requests as their dtype, every value range-checked
    (a vmem of 40000 is refused, never wrapped) and every core one the applied configuration has."""
    requests = ev.as_events(np.atleast_1d(np.asarray(requests)), kind)
    if requests.ndim != 1:
        raise ValueError(f"neuron requests are a 1-D array, got shape {requests.shape}")
    if session.config is None:
        from .errors import DeviceError

        raise DeviceError("apply a configuration before reading or writing neurons")
    if len(requests):
        cores = np.unique(requests["core"])
        missing = [int(c) for c in cores if int(c) not in session.config.cores]
        if missing:
            i = int(np.flatnonzero(requests["core"] == missing[0])[0])
            raise AddressError(f"request {i} is for core {missing[0]}, which the applied configuration does not "
                               f"use (cores: {sorted(session.config.cores)}); nothing was sent")
    return requests


async def read_neurons(session: "Session", requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
    """Send ReadNeuronValue requests and return the replies received within ``timeout_s``
    (NEURON_VALUE_DTYPE, stamped on receipt); missing replies are absent from the result."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    session._check()
    requests = checked_requests(session, requests, "read")
    ticket = session._replies.open(requests)
    try:
        async with session._lock:
            await session.backend.write_reads(requests)
        with anyio.move_on_after(timeout_s):
            await ticket.done.wait()
    finally:
        session._replies.abandon(ticket)
    session._raise_if_unusable()
    got = ticket.values[ticket.filled]
    return got[np.argsort(ticket.order[ticket.filled], kind="stable")]  # request order


def poll_vmem(session: "Session", core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
              count: int | None = None) -> AsyncIterator[VmemFrame]:
    """Check everything now (a core the configuration lacks raises AddressError at the call, not at the first
    frame); the frames come from the returned async iterator."""
    if session.config is None:
        from .errors import DeviceError

        raise DeviceError("apply a configuration before polling vmem")
    if not every >= 0:
        raise ValueError(f"every must be >= 0 seconds, got {every}")
    if isinstance(core, bool) or not isinstance(core, (int, np.integer)) or int(core) not in session.config.cores:
        raise AddressError(f"poll_vmem: core {core!r} is not a core of the applied configuration "
                           f"(cores: {sorted(session.config.cores)})")
    shape = session.config.core(int(core)).output_shape
    if neurons is None:
        req = _neurons.read_requests_for_core(int(core), shape, layout=layout)
    else:
        c, x, y = neurons
        req = _neurons.read_requests(int(core), c, x, y, shape, layout=layout)
    return _frames(session, int(core), shape, req, every, layout, count, whole=neurons is None)


async def _frames(session: "Session", core: int, shape, req: np.ndarray, every: float, layout: str,
                  count: int | None, whole: bool) -> AsyncIterator[VmemFrame]:
    k = 0
    next_t = anyio.current_time()
    while count is None or k < count:
        t_us = session.now_us()
        vals = await read_neurons(session, req, timeout_s=every * 0.9 if every > 0 else 0.1)
        states = _neurons.decode_neuron_values(vals, shape, layout=layout, drop_invalid=True)
        image = _neurons.states_to_image(states, shape) if whole else None
        yield VmemFrame(t_us, core, image, states, len(req), len(req) - len(states))
        k += 1
        next_t += every
        await anyio.sleep_until(max(next_t, anyio.current_time()))
