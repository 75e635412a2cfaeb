"""Packs a ChipConfig into the flat buffers the simulation engine works on.

Layouts (chosen so the engine's innermost loop, over output channels, is contiguous):
weights per core ``[C_in, k, k, C_out]``; vmem per core ``[H_out, W_out, C_out]``.
"""
from __future__ import annotations

import numpy as np

from ..compiler.config import ChipConfig

__all__ = ['P_ENABLED', 'P_CIN', 'P_HIN', 'P_WIN', 'P_COUT', 'P_HOUT', 'P_WOUT', 'P_K', 'P_SY', 'P_SX', 'P_PY',
           'P_PX', 'P_THR_HI', 'P_THR_LO', 'P_RTZ', 'P_LEAK', 'P_MONITOR', 'P_D0_CORE', 'P_D0_POOL',
           'P_D0_SHIFT', 'P_D1_CORE', 'P_D1_POOL', 'P_D1_SHIFT', 'NPARAM', 'N_CORES', 'PackedState']

# parameter indices - keep in sync with sim/_ccore.pyx
(P_ENABLED, P_CIN, P_HIN, P_WIN, P_COUT, P_HOUT, P_WOUT, P_K, P_SY, P_SX, P_PY, P_PX, P_THR_HI, P_THR_LO,
 P_RTZ, P_LEAK, P_MONITOR, P_D0_CORE, P_D0_POOL, P_D0_SHIFT, P_D1_CORE, P_D1_POOL, P_D1_SHIFT) = range(23)
NPARAM = 23
N_CORES = 9


class PackedState:
    """Flat parameter, weight, bias and vmem buffers for all 9 cores."""

    def __init__(self, cfg: ChipConfig):
        self.params = np.zeros((N_CORES, NPARAM), dtype=np.int32)
        self.params[:, P_D0_CORE] = -1
        self.params[:, P_D1_CORE] = -1
        w_parts, v_parts, b_parts = [], [], []
        self.w_off = np.zeros(N_CORES, np.int64)
        self.v_off = np.zeros(N_CORES, np.int64)
        self.b_off = np.zeros(N_CORES, np.int64)
        wo = vo = bo = 0
        self.shapes: dict[int, tuple[int, int, int]] = {}
        for c in range(N_CORES):
            self.w_off[c], self.v_off[c], self.b_off[c] = wo, vo, bo
            cc = cfg.cores.get(c)
            if cc is None:
                continue
            p = self.params[c]
            Ci, Hi, Wi = cc.input_shape
            Co, Ho, Wo = cc.output_shape
            p[[P_ENABLED, P_CIN, P_HIN, P_WIN, P_COUT, P_HOUT, P_WOUT, P_K]] = [1, Ci, Hi, Wi, Co, Ho, Wo,
                                                                                 cc.kernel_size]
            p[[P_SY, P_SX, P_PY, P_PX]] = [*cc.stride, *cc.padding]
            p[[P_THR_HI, P_THR_LO, P_RTZ, P_LEAK, P_MONITOR]] = [cc.threshold_high, cc.threshold_low,
                                                                 cc.return_to_zero, cc.leak_enable, cc.monitor]
            for j, d in enumerate(cc.destinations[:2]):
                p[P_D0_CORE + 3 * j: P_D0_CORE + 3 * j + 3] = [d.core, d.pooling, d.feature_shift]
            w = np.ascontiguousarray(cc.weights.transpose(1, 2, 3, 0)).ravel()  # [in, ky, kx, out]
            v = np.ascontiguousarray(cc.initial_vmem.transpose(1, 2, 0)).ravel()  # [y, x, out]
            w_parts.append(w)
            v_parts.append(v)
            b_parts.append(cc.biases.astype(np.int16))
            wo += w.size
            vo += v.size
            bo += Co
            self.shapes[c] = (Co, Ho, Wo)
        self.weights = np.concatenate(w_parts) if w_parts else np.zeros(0, np.int8)
        self.initial_vmem = np.concatenate(v_parts) if v_parts else np.zeros(0, np.int16)
        self.vmem = self.initial_vmem.copy()
        self.biases = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int16)

    def vmem_view(self, core: int) -> np.ndarray:
        """Core's vmem as a [C, H, W] view (writable) of the engine's buffer."""
        C, H, W = self.shapes[core]
        start = self.v_off[core]
        return self.vmem[start:start + C * H * W].reshape(H, W, C).transpose(2, 0, 1)
