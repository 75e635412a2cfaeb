"""Power: the device's rails, sampled while it runs.

On a devkit, samna's power monitor measures five rails (IO, RAM, LOGIC, PIXEL_DIGITAL, PIXEL_ANALOG; sinabs'
power-monitoring notebook) at up to 100 Hz; each sample here is the mean of what it measured per rail since the
previous one (one user found the monitor's own timestamps bursty: averaging per rail is what the notebook does
too). On the simulator there is nothing to measure: each sample is the energy model's estimate
(:class:`~speckstream.sim.energy.EnergyModel`) from the simulator's activity over the interval, marked
``estimated``.
"""
from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream

from ..sim.energy import PowerSample
from .errors import DeviceError
from .link import DeviceLink

__all__ = ["PowerSample", "PowerSamples", "power", "MONITOR_MAX_HZ", "SILENCE_S"]

MONITOR_MAX_HZ = 100.0  # the devkit's power monitor samples at 100 Hz at most (SynSense's devkit datasheet)
SILENCE_S = 2.0  # a power monitor that sends nothing for this long has failed


def power(link: DeviceLink, *, every: float = 0.1, count: int | None = None) -> "PowerSamples":
    """Checked now (a usable device, a period > 0); the samples come from the returned :class:`PowerSamples`."""
    link.ensure_usable()
    if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
        raise ValueError(f"every must be a positive number of seconds, got {every!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a positive number of samples or None, got {count!r}")
    return PowerSamples(link, float(every), count)


class PowerSamples(ObjectReceiveStream[PowerSample]):
    """The samples of one ``power`` call, a resource (anyio's receive stream: ``async for`` and ``async with``): ``async with dev.power(every=0.1) as samples: async for s
    in samples`` (or ``await samples.receive()``; ``anyio.EndOfStream`` after ``count`` samples or once closed).
    The device's monitor starts with the first sample and stops when the samples are closed."""

    def __init__(self, link: DeviceLink, every: float, count: int | None):
        self.every, self.count = every, count
        self._link = link
        self._k = 0
        self._next_t = 0.0
        self._started = False
        self._closed = False

    async def receive(self) -> PowerSample:
        if self._closed or (self.count is not None and self._k >= self.count):
            raise anyio.EndOfStream
        link = self._link
        if not self._started:
            await link.call(link.backend.start_power, min(MONITOR_MAX_HZ, max(1.0, 1.0 / self.every)))
            self._started = True
            self._next_t = anyio.current_time()
        waited = 0.0
        while True:
            self._next_t += self.every
            await anyio.sleep_until(max(self._next_t, anyio.current_time()))
            got = await link.call(link.backend.read_power)
            if got is not None:
                break
            waited += self.every
            if waited >= max(SILENCE_S, 3 * self.every):
                raise DeviceError(f"{link.backend.name}: the power monitor has sent nothing for {waited:.1f} s")
        rails, estimated = got
        self._k += 1
        return PowerSample(link.now_us(), rails, estimated)

    async def aclose(self) -> None:
        """No more samples; the device's monitor stops (idempotent; a failed device is left as it is)."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            with anyio.CancelScope(shield=True):
                try:
                    await self._link.call(self._link.backend.stop_power)
                except DeviceError:
                    pass
