"""speckstream.runtime - sessions on a device (the simulator by default, devkits through samna), on anyio:
the same code runs under trio (the default) and asyncio; :func:`connect` is the blocking facade for scripts.

    async with speckstream.open_device("sim") as dev:
        await dev.apply(config)
        async with dev.events("spike") as batches:
            await dev.send(spikes)
            async for batch in batches:
                ...
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from ..sim import SimOptions

from .backends.base import Backend
from .backends.samna_backend import DEVICE_TYPES, UNSUPPORTED_DEVICES, SamnaBackend, find_samna
from .backends.sim import SimBackend, SimFaults
from .blocking import BlockingPowerSamples, BlockingSession, BlockingSubscription, BlockingVmemFrames, connect
from .closed_loop import LoopResult
from .lag import RealTimeWarning
from .errors import DeviceClosed, DeviceDisconnected, DeviceError, DeviceNotFound, SamnaUnavailable
from .options import Clock, Policy, SessionOptions
from .power import PowerSample, PowerSamples
from .replay import ReplayResult
from .session import Session
from .stats import Accounting, Percentiles, SessionStatistics
from .subscriptions import Subscription, SubscriptionStatistics
from .timebase import Unwrapper
from .vmem import VmemFrame, VmemFrames

__all__ = ["open_device", "Session", "SimBackend", "SimFaults", "SamnaBackend", "find_samna", "DeviceError",
           "DeviceDisconnected", "DeviceClosed", "DeviceNotFound", "SamnaUnavailable", "VmemFrame", "ReplayResult",
           "LoopResult", "Subscription", "SubscriptionStatistics", "Accounting", "SessionStatistics", "Percentiles",
           "Unwrapper", "make_backend", "SessionOptions", "Backend",
           "connect", "BlockingSession", "BlockingSubscription", "BlockingVmemFrames", "VmemFrames", "RealTimeWarning",
           "PowerSample", "PowerSamples", "BlockingPowerSamples"]


def make_backend(spec: str = "sim", *, clock: Clock | None = None, faults: SimFaults | None = None, samna=None,
                 sim_options: SimOptions | None = None) -> Backend:
    """Backend for a device spec: ``"sim"``, ``"sim:speck2e"``, ``"speck2fmodule:0"``, ``"speckfdevkit"``...
    (``clock``: the simulator's, "wall" by default; a devkit has only its own)."""
    if not isinstance(spec, str):
        raise DeviceNotFound(f"a device spec is a string such as 'sim' or 'speck2fmodule:0', got {spec!r}")
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "sim":
        from ..compiler.chips import get_chip

        try:
            chip = get_chip(rest or "speck2f").name
        except ValueError as e:
            raise DeviceNotFound(str(e)) from None
        return SimBackend(chip, clock=clock or "wall", faults=faults, options=sim_options)
    if kind in DEVICE_TYPES or kind in UNSUPPORTED_DEVICES:
        return SamnaBackend(spec, samna=samna)
    raise DeviceNotFound(f"unknown device {spec!r}; use 'sim' (the simulator) or one of "
                         f"{', '.join(k + '[:N]' for k in DEVICE_TYPES)}")


@asynccontextmanager
async def open_device(spec: str = "sim", *, clock: Clock | None = None, faults: SimFaults | None = None, samna=None,
                      sim_options: SimOptions | None = None, batch_size: int = SessionOptions.batch_size,
                      input_queue: int = SessionOptions.input_queue, policy: Policy = SessionOptions.policy,
                      read_timeout_s: float = SessionOptions.read_timeout_s,
                      lag_warn_s: float | None = SessionOptions.lag_warn_s) -> AsyncIterator[Session]:
    """Open a device as a :class:`Session` (async context manager under trio or asyncio; the blocking
    equivalent is :func:`connect`).

    ``spec``: ``"sim"`` (the software chip, default), ``"sim:speck2e"``, or a devkit ``"speck2fmodule:0"``,
    ``"speck2fdevkit"``, ``"speck2edevkit"``... (needs the real samna).

    ``clock`` (the simulator): ``"wall"`` (default) behaves like a devkit - its clock is the session's clock
    (wall time, or trio's MockClock in tests), inputs are held until their timestamps and slow-clock ticks
    happen as time passes; ``"virtual"`` is the fast path - chip time follows input timestamps, as fast as
    the CPU allows. ``faults`` injects simulator faults. The session options (:class:`~.options.SessionOptions`):
    ``batch_size``, ``input_queue``, ``policy`` ("wait" or "drop"), ``read_timeout_s``, ``lag_warn_s`` (the
    real-time guard: warn once when a wall-clock device runs this many seconds behind its input timestamps;
    None: never; :mod:`.lag`).
    """
    backend = make_backend(spec, clock=clock, faults=faults, samna=samna, sim_options=sim_options)
    async with Session(backend, batch_size=batch_size, input_queue=input_queue, policy=policy,
                       read_timeout_s=read_timeout_s, lag_warn_s=lag_warn_s) as session:
        yield session
