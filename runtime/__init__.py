"""speckstream.runtime - trio sessions on a device (the simulator by default, devkits through samna).

    async with speckstream.open_device("sim") as dev:
        await dev.apply(config)
        await dev.send(spikes)
        async for batch in dev.events("spike"):
            ...
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from .backends.samna_backend import DEVICE_TYPES, SamnaBackend, find_samna
from .backends.sim import SimBackend, SimFaults
from .closed_loop import LoopResult
from .errors import DeviceClosed, DeviceDisconnected, DeviceError, DeviceNotFound, SamnaUnavailable
from .replay import ReplayResult
from .session import Session
from .stats import percentiles
from .subscriptions import Subscription, SubscriptionStatistics
from .timebase import Unwrapper
from .vmem import VmemFrame

__all__ = ["open_device", "Session", "SimBackend", "SimFaults", "SamnaBackend", "find_samna", "DeviceError",
           "DeviceDisconnected", "DeviceClosed", "DeviceNotFound", "SamnaUnavailable", "VmemFrame", "ReplayResult",
           "LoopResult", "Subscription", "SubscriptionStatistics", "Unwrapper", "percentiles", "make_backend"]


def make_backend(spec: str = "sim", *, realtime: bool = False, faults: SimFaults | None = None, samna=None,
                 sim_options=None):
    """Backend for a device spec: ``"sim"``, ``"sim:speck2e"``, ``"speck2fmodule:0"``, ``"speck2fdevkit"``..."""
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "sim":
        from ..compiler.chips import get_chip

        chip = get_chip(rest or "speck2f").name
        return SimBackend(chip, realtime=realtime, faults=faults, options=sim_options)
    if kind in DEVICE_TYPES:
        return SamnaBackend(spec, samna=samna)
    raise DeviceNotFound(f"unknown device {spec!r}; use 'sim' (the simulator) or one of "
                         f"{', '.join(k + '[:N]' for k in DEVICE_TYPES)}")


@asynccontextmanager
async def open_device(spec: str = "sim", *, realtime: bool = False, faults: SimFaults | None = None,
                      samna=None, sim_options=None, **session_kwargs):
    """Open a device as a :class:`Session` (async context manager, trio).

    ``spec``: ``"sim"`` (the software chip, default), ``"sim:speck2e"``, or a devkit ``"speck2fmodule:0"``,
    ``"speck2fdevkit"``, ``"speck2edevkit"``... (needs the real samna). ``realtime`` makes the simulator
    hold inputs until their timestamps on the wall clock; ``faults`` injects simulator faults.
    Session options: ``batch_size``, ``input_queue``, ``policy`` ("wait" or "drop"), ``read_timeout_s``.
    """
    backend = make_backend(spec, realtime=realtime, faults=faults, samna=samna, sim_options=sim_options)
    async with Session(backend, **session_kwargs) as session:
        yield session
