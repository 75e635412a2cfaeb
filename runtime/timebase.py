"""Device time: unwrapping the chip's 32-bit µs timestamps into 64-bit session time."""
from __future__ import annotations

import numpy as np

__all__ = ['WRAP', 'HALF', 'Unwrapper']

WRAP = 1 << 32
HALF = 1 << 31


class Unwrapper:
    """Unwraps a stream of 32-bit µs timestamps (wrapping every ~71.6 min) into uint64 µs.

    A backward jump of more than half the range counts as a wrap; smaller backward steps (out-of-order
    events, which SynSense's own logger sees) are kept as they are. ``epoch_us`` is added to every value
    (the session time at which the device's stopwatch was last reset).
    """

    def __init__(self, epoch_us: int = 0):
        self.epoch_us = int(epoch_us)
        self._last = 0
        self._wraps = 0

    def rebase(self, epoch_us: int) -> None:
        """The stopwatch was reset at session time ``epoch_us``."""
        self.epoch_us = int(epoch_us)
        self._last = 0
        self._wraps = 0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.int64)
        if raw.size == 0:
            return raw.astype(np.uint64)
        prev = np.concatenate(([self._last], raw[:-1]))
        wraps = self._wraps + np.cumsum(raw < prev - HALF)
        self._last = int(raw[-1])
        self._wraps = int(wraps[-1])
        return (raw + wraps * WRAP + self.epoch_us).astype(np.uint64)
