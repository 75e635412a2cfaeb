"""The readout layer model (docs/chip-notes.md, "Readout layer"). What the datasheet leaves open is
our choice, written here:

* class of an input spike (c, x, y) by ``address_sel``: 3 = 1x1y16f -> c; 2 = 4x4y1f -> 4y + x;
  1 = 2x4y2f -> 2(2y + x) + c; 0 = 2x2y4f -> 4(2y + x) + c (row-major order assumed);
  with ``errata`` (speck2e/2f) and 1x1y16f, class k (1..15) is fed by channel 4(k-1), other channels by none;
* a tick's window holds the spikes that arrived after the previous tick and before this one;
* the moving average is the integer mean of the last ``average`` tick counts (missing ticks count 0);
* the max class is the lowest index among the largest averages of classes 1..15 (0 = idle);
  the value is valid (bit 20) when that average is above 0.
"""
from __future__ import annotations

import numpy as np

from ..codec.events import READOUT_DTYPE, decode_readout_fields
from ..compiler.config import ReadoutConfig

__all__ = ['class_of', 'host_output', 'ReadoutModel']


def host_output(ro: ReadoutConfig | None, spikes: np.ndarray, readout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(spikes, ReadoutValues) that reach a devkit's host: ReadoutValues only when the readout is monitored,
    and then no spikes - with ``readout.monitor_enable`` on, CNN-layer spikes are no longer monitored
    (SynSense's readout notebook)."""
    if ro is None or not ro.monitor:
        return spikes, readout[:0]
    return spikes[:0], readout


def class_of(c, x, y, ro: ReadoutConfig) -> np.ndarray:
    c, x, y = (np.asarray(v, dtype=np.int64) for v in (c, x, y))
    if ro.address_sel == 3:
        k = np.where((x == 0) & (y == 0), c, -1)
        if ro.errata:
            k = np.where((c % 4 == 0) & (k >= 0), c // 4 + 1, -1)
    elif ro.address_sel == 2:
        k = np.where((c == 0) & (x < 4) & (y < 4), 4 * y + x, -1)
    elif ro.address_sel == 1:
        k = np.where((c < 2) & (x < 2) & (y < 4), 2 * (2 * y + x) + c, -1)
    else:
        k = np.where((c < 4) & (x < 2) & (y < 2), 4 * (2 * y + x) + c, -1)
    return np.where((k >= 0) & (k <= 15), k, -1)


class ReadoutModel:
    def __init__(self, ro: ReadoutConfig):
        self.ro = ro
        self.history = np.zeros((ro.average, 16), np.int64)
        self.n_ticks = 0
        self._pending: list[np.ndarray] = []  # readout spikes not yet in a tick window

    def add_spikes(self, spikes: np.ndarray) -> None:
        if len(spikes):
            self._pending.append(spikes)

    def tick(self, t_us: int) -> int:
        """Close the window ending at ``t_us`` and return the ReadoutValue word."""
        ro = self.ro
        spikes = np.concatenate(self._pending) if self._pending else np.empty(0, dtype=[("t", "<u8")])
        inside = spikes["t"] < t_us if len(spikes) else np.zeros(0, bool)
        counts = np.zeros(16, np.int64)
        if inside.any():
            k = class_of(spikes["c"][inside], spikes["x"][inside], spikes["y"][inside], ro)
            np.add.at(counts, k[k >= 0], 1)
        self._pending = [spikes[~inside]] if (~inside).any() else []
        self.history[self.n_ticks % ro.average] = np.minimum(counts, 0xFFFF)
        self.n_ticks += 1
        avg = self.history.sum(axis=0) // ro.average
        best = int(np.argmax(avg[1:])) + 1
        valid = avg[best] > 0
        if ro.output_mode == 0:
            low = 0
        elif ro.output_mode == 1:
            low = int(sum(1 << k for k in range(16) if avg[k] >= ro.threshold and ro.threshold > 0))
        elif ro.output_mode == 2:
            low = int(avg[ro.selected_class])
        else:
            low = int(avg[best])
        return (int(valid) << 20) | (best << 16) | (min(low, 0xFFFF))

    def ticks(self, times) -> np.ndarray:
        out = np.zeros(len(times), READOUT_DTYPE)
        for i, t in enumerate(times):
            out["t"][i], out["value"][i] = t, self.tick(int(t))
        return decode_readout_fields(out)
