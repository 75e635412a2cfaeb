"""The real-time guard: a wall-clock device that falls behind its input timestamps says so.

A devkit's FPGA releases each input event when its stopwatch reaches the event's timestamp; the simulator on the
wall clock (``clock="wall"``, the default) does the same, but it can only process as fast as the CPU allows. When
the input rate is more than it can take, events enter the chip later and later and outputs come late - which a
paced replay used to report only as a large release-error percentile afterwards. The backend measures how late
input enters the chip (``lag_us``: the most recent release, ``lag_max_us``: the worst); the session puts both in
its statistics and warns once, naming the lag and the input rate, when the lag passes ``lag_warn_s``.

A backend that cannot tell (a devkit: its FPGA does not report it) keeps the Backend default ``lag_us = None``; the
statistics then say None.
"""
from __future__ import annotations

import warnings

import anyio

from ..errors import SpeckstreamWarning
from .backends.base import Backend

__all__ = ["RealTimeWarning", "LagGuard"]


class RealTimeWarning(SpeckstreamWarning):
    """A wall-clock device runs behind its input timestamps: it cannot keep up with the input rate."""


class LagGuard:
    """Watches a backend's ``lag_us`` and the session's input rate; warns once per session."""

    def __init__(self, warn_after_s: float | None):
        self.warn_after_us = None if warn_after_s is None else warn_after_s * 1e6
        self.warned = False
        self._first_write: float | None = None

    def wrote(self) -> None:
        """Input events reached the device now (the input rate counts from the first write)."""
        if self._first_write is None:
            self._first_write = anyio.current_time()

    def input_rate(self, written: int) -> float:
        """Input events per second of session time since the first write, ``written`` events in all."""
        if self._first_write is None:
            return 0.0
        return written / max(anyio.current_time() - self._first_write, 1e-6)

    def check(self, backend: Backend, written: int) -> None:
        """Warn once when ``backend`` lags; ``written``: the input events the session has written so far."""
        lag = backend.lag_us
        if lag is None or self.warned or self.warn_after_us is None or lag <= self.warn_after_us:
            return
        self.warned = True
        warnings.warn(
            f"{backend.name} runs {lag / 1e3:,.1f} ms behind the input timestamps at an input rate of "
            f"{self.input_rate(written):,.0f} events/s: it cannot process input in real time, so events enter the chip "
            "late and outputs come late. Lower the rate (replay speed, fewer events), or use clock='virtual' to "
            "run as fast as the CPU allows with the timestamps kept (session.stats.lag_us follows the lag)",
            RealTimeWarning, stacklevel=2)
