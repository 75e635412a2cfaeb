"""Output subscriptions: a resource per consumer (``async with`` or ``with``, or ``close()``), fed by the
dispatcher - a resource rather than a generator, as trio's memory channels are: its end is explicit, not left to
the garbage collector.

A slow subscriber loses (and counts) batches instead of stalling the device drain. When the session fails
or closes, a subscription's iteration ends with the session's error (DeviceDisconnected, DeviceError,
DeviceClosed), never with a bare channel exception. The session holds its subscriptions weakly: one that its
reader dropped without closing (a ``break`` out of ``async for b in dev.events()``) stops being fed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import anyio
from anyio.abc import AsyncResource

__all__ = ["OUTPUT_KINDS", "FIELDS", "Subscription", "SubscriptionStatistics"]

#: the kinds of device output a subscription can take (codec.KINDS names every event dtype, input ones too)
OUTPUT_KINDS: tuple[str, ...] = ("spike", "neuron_value", "readout", "dvs")
#: output kind -> the field of a decoded batch (codec.samna_events.DecodedOutput) that holds it
FIELDS = {"spike": "spikes", "neuron_value": "neuron_values", "readout": "readout", "dvs": "dvs"}


@dataclass(frozen=True)
class SubscriptionStatistics:
    kinds: tuple  #: output kinds delivered
    queued: int  #: batches waiting to be read
    dropped_batches: int  #: batches lost because the subscriber was too slow (its bound was full)
    dropped_events: int  #: events in those batches


class Subscription(AsyncResource):
    """One consumer of output batches. ``async for batch in sub`` (single kind) or ``(kind, batch)``."""

    def __init__(self, kinds: frozenset, cores: frozenset | None, max_batches: int, *,
                 raise_if_ended: Callable[[], None], on_close: Callable[["Subscription"], None]):
        # the session's two hooks: its error (or DeviceClosed) once it has ended, and removal from its registry
        self._raise_if_ended, self._on_close = raise_if_ended, on_close
        self.kinds, self.cores = kinds, cores
        self._send, self._recv = anyio.create_memory_object_stream[tuple](max_batches)
        self.dropped_batches = self.dropped_events = 0
        self.closed = False

    # ------------------------------------------------------------------ fed by the dispatcher
    def offer(self, kind: str, arr: np.ndarray) -> None:
        if self.cores is not None and len(arr) and "core" in (arr.dtype.names or ()):
            arr = arr[np.isin(arr["core"], list(self.cores))]
        if len(arr) == 0:
            return
        try:
            self._send.send_nowait((kind, arr))
        except anyio.WouldBlock:
            self.dropped_batches += 1
            self.dropped_events += len(arr)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def end(self) -> None:
        """No more batches (the session failed or closed): readers drain what is queued, then get its error."""
        self._send.close()

    # ------------------------------------------------------------------ consumer side
    async def receive(self) -> tuple[str, np.ndarray]:
        """The next (kind, batch); the session's error once it has failed or closed and the queue is empty."""
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._raise_if_ended()
            raise

    def receive_nowait(self) -> tuple[str, np.ndarray] | None:
        try:
            return self._recv.receive_nowait()
        except anyio.WouldBlock:
            return None
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> np.ndarray | tuple[str, np.ndarray]:
        try:
            kind, arr = await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        return arr if len(self.kinds) == 1 else (kind, arr)

    def close(self) -> None:
        """Stop receiving; idempotent."""
        if not self.closed:
            self.closed = True
            self._on_close(self)
            self._send.close()

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def statistics(self) -> SubscriptionStatistics:
        return SubscriptionStatistics(tuple(sorted(self.kinds)), self._send.statistics().current_buffer_used,
                                      self.dropped_batches, self.dropped_events)
