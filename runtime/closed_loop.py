"""A controller in the loop: output batch -> callback -> input, with round-trip latency."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np
import anyio

from ..codec import events as ev
from .link import DeviceLink
from .stats import Percentiles, percentiles

__all__ = ["LoopResult", "closed_loop"]


@dataclass
class LoopResult:
    iterations: int  #: callback calls
    latency_us: Percentiles  #: round trip input send -> output -> callback -> next input (steps that got output)
    response_us: Percentiles  #: input send -> first output batch received
    timeouts: int  #: steps that got no output within ``timeout_s`` (the callback saw an empty batch)
    samples_us: np.ndarray = field(default_factory=lambda: np.empty(0))  #: every round trip, in order


async def closed_loop(link: DeviceLink, callback: Callable[[np.ndarray], np.ndarray | None | Awaitable],
                      initial: np.ndarray, *, iterations: int | None = None, duration_s: float | None = None,
                      timeout_s: float = 0.1, cores=None) -> LoopResult:
    if iterations is None and duration_s is None:
        raise ValueError("give iterations or duration_s")
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
    link.ensure_usable()
    kind, initial = link.prepared(initial)  # what send takes: spikes, or tonic x/y/t/p arrays
    lat, resp = [], []
    timeouts = k = 0
    end = anyio.current_time() + duration_s if duration_s is not None else math.inf
    with link.subscribe("spike", cores=cores, max_batches=1024) as sub:
        t_send = anyio.current_time()
        await link.send(initial, kind=kind)
        while (iterations is None or k < iterations) and anyio.current_time() < end:
            batch = None
            with anyio.move_on_after(timeout_s):
                _, batch = await sub.receive()
                while (more := sub.receive_nowait()) is not None:  # everything already waiting too
                    batch = np.concatenate([batch, more[1]])
            if batch is None:
                timeouts += 1
                batch = np.empty(0, ev.SPIKE_DTYPE)
            else:
                resp.append((anyio.current_time() - t_send) * 1e6)
            r = callback(batch)
            if hasattr(r, "__await__"):
                r = await r  # type: ignore[misc]
            now = anyio.current_time()
            if len(batch):  # a silent step (timeout) is not a round trip: counted in `timeouts`
                lat.append((now - t_send) * 1e6)
            t_send = now
            if r is not None and len(r):
                await link.send(r)
            k += 1
    link.ensure_usable()
    return LoopResult(k, percentiles(lat), percentiles(resp), timeouts, np.asarray(lat))
