"""A straightforward pure-Python event-by-event model of the chip: the oracle for the Cython engine.

Written for clarity, not speed, and deliberately independent of the engine's data layout: weights stay in
torch order [out, in, ky, kx], vmem in [out, y, x], the model is read directly from the ChipConfig.
Semantics (same switches as the engine, see sim/chip.py):

* a spike (c, x, y) into a core updates every output neuron (o, ox, oy) that a kernel tap (ky, kx)
  reaches with ``oy = (y + pad_y - ky) / stride_y`` integral and on the map (ky, kx, then o ascending);
* per update: ``v += w``; ``v < low -> v = low``; ``v >= high`` -> one spike, ``v = 0`` or ``v -= high``;
  ``v > 32767 -> 32767`` (counted);
* output spikes: with an output decimator of N, only every N-th spike the core fires leaves it (a counter per
  core, reset with the neuron states); then the monitor copy (pre-pooling) and per destination
  ``(o + shift, x // pool, y // pool)``
  (dropped and counted when that lands off the destination's input map, unless ``drop_off_map=False``)
  queued FIFO and delivered until the network is quiet, with the timestamp of the releasing input;
* slow-clock tick: each leaking core adds ``bias[o]`` to all neurons with the same floor/saturation
  rules; it fires only when ``leak_fires`` is set.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from ..codec.events import SPIKE_DTYPE
from ..compiler.chips import get_chip
from ..compiler.config import ChipConfig

__all__ = ['ReferenceEngine']



class ReferenceEngine:
    def __init__(self, cfg: ChipConfig, *, leak_fires: bool = False, max_cascade: int = 100_000_000,
                 drop_off_map: bool = True):
        self.cfg = cfg
        spec = get_chip(cfg.chip)
        self.readout_id = spec.readout_id
        self.leak_fires = leak_fires
        self.drop_off_map = drop_off_map
        self.n_off_map = 0
        self.clamps_arr = np.zeros(spec.n_cores, np.int64)
        self.max_cascade = max_cascade
        self.vmem = {c: cc.initial_vmem.astype(np.int64).copy() for c, cc in cfg.cores.items()}
        self.decimated = {c: 0 for c in cfg.cores}  # spikes fired since the last one the decimator passed
        self.n_updates = self.n_saturated = self.n_ticks = 0
        self.core_updates = np.zeros(16, np.int64)  # per core: synaptic updates, spikes that left it
        self.core_spikes = np.zeros(16, np.int64)
        self._out: list[tuple] = []
        self._readout: list[tuple] = []

    def vmem_view(self, core: int) -> np.ndarray:
        return self.vmem[core]

    def reset_vmem(self, initial: bool) -> None:
        for c, cc in self.cfg.cores.items():
            self.vmem[c][...] = cc.initial_vmem if initial else 0
            self.decimated[c] = 0

    def _update(self, t, core, o, ox, oy, w, queue) -> None:
        cc = self.cfg.cores[core]
        v = int(self.vmem[core][o, oy, ox]) + int(w)
        if v < cc.threshold_low:
            v = cc.threshold_low
            self.clamps_arr[core] += 1
        if v >= cc.threshold_high:
            v = 0 if cc.return_to_zero else v - cc.threshold_high
            self._fire(t, core, o, ox, oy, queue)
        if v > 32767:
            v = 32767
            self.n_saturated += 1
        self.vmem[core][o, oy, ox] = v

    def _fire(self, t, core, o, ox, oy, queue) -> None:
        cc = self.cfg.cores[core]
        if cc.decimator > 1:
            self.decimated[core] += 1
            if self.decimated[core] < cc.decimator:
                return
            self.decimated[core] = 0
        self.core_spikes[core] += 1
        if cc.monitor:
            self._out.append((t, core, o, ox, oy))
        for d in cc.destinations[:2]:
            ev = (d.core, o + d.feature_shift, ox // d.pooling, oy // d.pooling)
            if d.core == self.readout_id:
                self._readout.append((t, *ev))
            elif self.drop_off_map and (ev[2] >= self.cfg.cores[d.core].input_shape[2]
                                        or ev[3] >= self.cfg.cores[d.core].input_shape[1]):
                self.n_off_map += 1  # a pooled spike past the destination's map: torch / sinabs drop it
            else:
                queue.append(ev)

    def _convolve(self, t, core, c, x, y, queue) -> None:
        cc = self.cfg.cores[core]
        k = cc.kernel_size
        (sy, sx), (py, px) = cc.stride, cc.padding
        Co, Ho, Wo = cc.output_shape
        for ky in range(k):
            if (y + py - ky) < 0 or (y + py - ky) % sy:
                continue
            oy = (y + py - ky) // sy
            if oy >= Ho:
                continue
            for kx in range(k):
                if (x + px - kx) < 0 or (x + px - kx) % sx:
                    continue
                ox = (x + px - kx) // sx
                if ox >= Wo:
                    continue
                for o in range(Co):
                    self.n_updates += 1
                    self.core_updates[core] += 1
                    self._update(t, core, o, ox, oy, cc.weights[o, c, ky, kx], queue)

    def _drain(self, t, queue) -> None:
        steps = 0
        while queue:
            core, c, x, y = queue.popleft()
            self._convolve(t, core, c, x, y, queue)
            steps += 1
            if steps > self.max_cascade:
                raise RuntimeError(f"network did not go quiet after {self.max_cascade} internal events")

    def _tick(self, t) -> None:
        self.n_ticks += 1
        queue: deque = deque()
        for core in sorted(self.cfg.cores):
            cc = self.cfg.cores[core]
            if not cc.leak_enable:
                continue
            Co, Ho, Wo = cc.output_shape
            for oy in range(Ho):
                for ox in range(Wo):
                    for o in range(Co):
                        v = int(self.vmem[core][o, oy, ox]) + int(cc.biases[o])
                        if v < cc.threshold_low:
                            v = cc.threshold_low
                        if self.leak_fires and v >= cc.threshold_high:
                            v = 0 if cc.return_to_zero else v - cc.threshold_high
                            self._fire(t, core, o, ox, oy, queue)
                        if v > 32767:
                            v = 32767
                            self.n_saturated += 1
                        self.vmem[core][o, oy, ox] = v
        self._drain(t, queue)

    def run(self, spikes, now, next_tick, tick_period, until):
        for i, (t, core, c, x, y) in enumerate(np.asarray(spikes).tolist()):
            t = max(t, now)
            while tick_period and next_tick <= t:
                self._tick(next_tick)
                next_tick += tick_period
            now = t
            cc = self.cfg.cores.get(core)
            if cc is None or not (c < cc.input_shape[0] and y < cc.input_shape[1] and x < cc.input_shape[2]):
                return now, next_tick, i
            queue: deque = deque()
            self._convolve(now, core, c, x, y, queue)
            self._drain(now, queue)
        while tick_period and next_tick <= until:
            self._tick(next_tick)
            next_tick += tick_period
        return max(now, until), next_tick, -1

    def take_outputs(self):
        out = np.array(self._out, dtype=[("t", "<u8"), ("core", "u1"), ("c", "<u2"), ("x", "<u2"), ("y", "<u2")])
        ro = np.array(self._readout, dtype=out.dtype)
        self._out, self._readout = [], []
        return _as_spikes(out), _as_spikes(ro)


def _as_spikes(a: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape[0], dtype=SPIKE_DTYPE)
    for n in SPIKE_DTYPE.names:
        out[n] = a[n]
    return out
