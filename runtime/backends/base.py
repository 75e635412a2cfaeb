"""The interface every device backend implements (async; any anyio backend: trio or asyncio).

Like anyio's abstract classes, :class:`Backend` declares every capability the session uses, with a default that
says "this device cannot tell": a backend overrides what it knows. The session reads these attributes directly,
never probing with ``getattr``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ...codec.samna_events import DecodedOutput
from ...compiler.config import ChipConfig

__all__ = ['Backend']


class Backend(ABC):
    """A device. Timestamps going in are device µs (< 2**32); spike and DvsEvent timestamps coming out are the
    device's raw 32-bit µs values; NeuronValue replies come out with ``t = 0`` (the chip gives them no timestamp)
    and are stamped by the session on receipt, as ReadoutValues are unless :attr:`stamps_readout`."""

    #: the device spec it was opened with, for messages ("sim:speck2f", "speck2fmodule:0")
    name: str
    #: the chip ("speck2f", "speck2e")
    chip: str
    #: chip time follows the input timestamps as fast as the CPU allows (the simulator's virtual clock);
    #: False: the device releases input at its timestamps on its own clock, as a devkit's FPGA does
    virtual_clock: bool = False
    #: ReadoutValues leave the device stamped with their slow-clock tick time (32-bit µs, like spikes); False:
    #: they carry no time (a devkit) and the session stamps them on receipt
    stamps_readout: bool = False
    #: ``time.perf_counter()`` read on the thread that last started the device's stopwatch, just before it did;
    #: the session's clock restarts at that moment, not when the call came back to the event loop (a loaded host
    #: takes milliseconds for that hop, and every device stamp would lie that far in the session's future).
    #: None: the stopwatch restarts within the call itself (the simulator), and the session takes the return
    stopwatch_started_at: float | None = None

    @property
    def device_written(self) -> int | None:
        """Input events the device has taken, counted on its side (even for a write whose wait the session
        abandoned); None: the device does not count them."""
        return None

    @property
    def lag_us(self) -> int | None:
        """µs by which the most recently released input entered the chip after its timestamp; None: the device
        cannot tell (a devkit's FPGA does not report it; the virtual clock has no lag)."""
        return None

    @property
    def lag_max_us(self) -> int | None:
        """The largest :attr:`lag_us` since the device opened; None where :attr:`lag_us` is None."""
        return None

    def take_release_lateness(self) -> np.ndarray | None:
        """µs by which each input released since the last call entered the chip after its timestamp (then
        cleared); None: the device cannot tell."""
        return None

    # ------------------------------------------------------------------ power (Session.power)
    async def start_power(self, hz: float) -> None:
        """Start sampling the power rails at ``hz`` (a devkit's power monitor; the simulator's estimate)."""
        from ..errors import DeviceError

        raise DeviceError(f"{self.name} has no power monitor")

    async def read_power(self) -> tuple[dict[str, float], bool] | None:
        """(W per rail since the previous read, estimated?), or None when nothing was measured yet."""
        from ..errors import DeviceError

        raise DeviceError(f"{self.name} has no power monitor")

    async def stop_power(self) -> None:
        """Stop sampling (idempotent)."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def apply(self, config: ChipConfig) -> None: ...

    @abstractmethod
    async def write_spikes(self, spikes: np.ndarray) -> None: ...

    @abstractmethod
    async def write_dvs(self, events: np.ndarray) -> None: ...

    @abstractmethod
    async def write_reads(self, requests: np.ndarray) -> None: ...

    @abstractmethod
    async def write_neurons(self, requests: np.ndarray) -> None: ...

    @abstractmethod
    async def read(self, timeout_s: float) -> DecodedOutput | None: ...

    @abstractmethod
    async def reset_time(self) -> None: ...

    @abstractmethod
    async def reset_state(self) -> None: ...

    @abstractmethod
    async def set_slow_clock(self, hz: float | None) -> None: ...

    @property
    @abstractmethod
    def stats(self) -> dict:
        """The device's own counters (names differ by device)."""
