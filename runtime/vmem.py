"""Membrane potentials: ReadNeuronValue requests and the NeuronValue replies that answer them.

The chip's replies carry no request id and no timestamp, only (core, address): the link's reply matcher
(:mod:`.replies`) hands each ``read_neurons`` call the replies to its own requests, so that concurrent polls
never mix and a late reply is never handed out as a fresh one.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import anyio
from anyio.abc import ObjectReceiveStream

from ..codec import events as ev
from ..codec import neurons as _neurons
from ..codec.errors import AddressError
from ..compiler.config import ChipConfig
from .errors import DeviceError
from .link import DeviceLink

__all__ = ["VmemFrame", "VmemFrames", "read_neurons", "write_neurons", "poll_vmem"]


@dataclass
class VmemFrame:
    """One vmem poll of a core: ``image`` int16 [C, H, W] (or per-neuron ``values``), host time in µs."""

    t_us: int
    core: int
    image: np.ndarray | None
    values: np.ndarray  # NEURON_STATE_DTYPE of the replies received
    requested: int
    missing: int


def checked_requests(config: ChipConfig | None, requests, kind: str) -> np.ndarray:
    """ReadNeuronValue ("read") / WriteNeuronValue ("write") requests as their dtype, every value range-checked
    (a vmem of 40000 is refused, never wrapped) and every core one the applied configuration has."""
    requests = ev.as_events(np.atleast_1d(np.asarray(requests)), kind)
    if requests.ndim != 1:
        raise ValueError(f"neuron requests are a 1-D array, got shape {requests.shape}")
    if config is None:
        raise DeviceError("apply a configuration before reading or writing neurons")
    if len(requests):
        cores = np.unique(requests["core"])
        missing = [int(c) for c in cores if int(c) not in config.cores]
        if missing:
            i = int(np.flatnonzero(requests["core"] == missing[0])[0])
            raise AddressError(f"request {i} is for core {missing[0]}, which the applied configuration does not "
                               f"use (cores: {sorted(config.cores)}); nothing was sent")
    return requests


async def write_neurons(link: DeviceLink, requests: np.ndarray) -> None:
    """Send WriteNeuronValue requests, checked whole first (see :meth:`Session.write_neurons`)."""
    link.ensure_usable()
    requests = checked_requests(link.config, requests, "write")
    await link.call(link.backend.write_neurons, requests)


async def read_neurons(link: DeviceLink, requests: np.ndarray, *, timeout_s: float = 0.5) -> np.ndarray:
    """Send ReadNeuronValue requests and return the replies received within ``timeout_s``
    (NEURON_VALUE_DTYPE, stamped on receipt); missing replies are absent from the result."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    link.ensure_usable()
    requests = checked_requests(link.config, requests, "read")
    ticket = link.replies.open(requests)
    try:
        await link.call(link.backend.write_reads, requests)
        with anyio.move_on_after(timeout_s):
            await ticket.done.wait()
    finally:
        link.replies.abandon(ticket)
    link.ensure_usable()
    got = ticket.values[ticket.filled]
    return got[np.argsort(ticket.order[ticket.filled], kind="stable")]  # request order


def poll_vmem(link: DeviceLink, core: int, *, every: float = 0.1, neurons=None, layout: str = "packed",
              count: int | None = None) -> VmemFrames:
    """Check everything now (a core the configuration lacks raises AddressError at the call, not at the first
    frame); the frames come from the returned :class:`VmemFrames`."""
    link.ensure_usable()  # and everything else now, not at the first frame
    config = link.config
    if config is None:
        raise DeviceError("apply a configuration before polling vmem")
    if not every >= 0:
        raise ValueError(f"every must be >= 0 seconds, got {every}")
    if isinstance(core, bool) or not isinstance(core, (int, np.integer)) or int(core) not in config.cores:
        raise AddressError(f"poll_vmem: core {core!r} is not a core of the applied configuration "
                           f"(cores: {sorted(config.cores)})")
    shape = config.core(int(core)).output_shape
    if neurons is None:
        req = _neurons.read_requests_for_core(int(core), shape, layout=layout)
    else:
        c, x, y = neurons
        req = _neurons.read_requests(int(core), c, x, y, shape, layout=layout)
    return VmemFrames(link, int(core), shape, req, every=every, layout=layout, count=count, whole=neurons is None)


class VmemFrames(ObjectReceiveStream[VmemFrame]):
    """The frames of one ``poll_vmem`` call: a resource (anyio's receive stream: ``async for`` and ``async
    with``), not a generator (whose clean-up would run whenever the garbage collector gets to it) - ``async with dev.poll_vmem(core) as frames: async for frame in frames``, or
    ``await frames.receive()`` per frame (``anyio.EndOfStream`` after ``count`` frames or once closed)."""

    def __init__(self, link: DeviceLink, core: int, shape, requests: np.ndarray, *, every: float, layout: str,
                 count: int | None, whole: bool):
        self.core, self.every, self.count = core, every, count
        self._link, self._shape, self._req, self._layout, self._whole = link, shape, requests, layout, whole
        self._k = 0
        self._next_t = 0.0
        self._closed = False

    async def receive(self) -> VmemFrame:
        """The next frame, ``every`` seconds after the previous one was due (at once when the reader is late)."""
        if self._closed or (self.count is not None and self._k >= self.count):
            raise anyio.EndOfStream
        if self._k == 0:
            self._next_t = anyio.current_time()
        else:
            await anyio.sleep_until(max(self._next_t, anyio.current_time()))
        link, req = self._link, self._req
        t_us = link.now_us()
        vals = await read_neurons(link, req, timeout_s=self.every * 0.9 if self.every > 0 else 0.1)
        states = _neurons.decode_neuron_values(vals, self._shape, layout=self._layout, drop_invalid=True)
        image = _neurons.states_to_image(states, self._shape) if self._whole else None
        self._k += 1
        self._next_t += self.every
        return VmemFrame(t_us, self.core, image, states, len(req), len(req) - len(states))

    def close(self) -> None:
        """No more frames; idempotent."""
        self._closed = True

    async def aclose(self) -> None:
        self.close()
