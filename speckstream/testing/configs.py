"""Hand-built ChipConfigs for simulator and runtime tests (no torch)."""
from __future__ import annotations

import numpy as np

from speckstream.compiler.config import ChipConfig, CoreConfig, Destination

__all__ = ['core', 'config']


def core(core, cin, hin, win, cout, k=1, stride=(1, 1), padding=(0, 0), weights=None, thr=10, low=-100,
         rtz=False, bias=None, dests=(), monitor=True, vmem=None):
    hout = (hin + 2 * padding[0] - k) // stride[0] + 1
    wout = (win + 2 * padding[1] - k) // stride[1] + 1
    w = np.zeros((cout, cin, k, k), np.int8) if weights is None else np.asarray(weights, np.int8).reshape(cout, cin, k, k)
    b = np.zeros(cout, np.int16) if bias is None else np.asarray(bias, np.int16)
    v = np.zeros((cout, hout, wout), np.int16) if vmem is None else np.asarray(vmem, np.int16)
    return CoreConfig(core=core, input_shape=(cin, hin, win), output_shape=(cout, hout, wout), kernel_size=k,
                      stride=stride, padding=padding, weights=w, biases=b, threshold_high=thr, threshold_low=low,
                      initial_vmem=v, return_to_zero=rtz, leak_enable=bool(np.any(b)), monitor=monitor,
                      destinations=[Destination(*d) for d in dests])


def config(*cores, inputs=None, slow_clock_hz=None):
    cs = {c.core: c for c in cores}
    return ChipConfig(chip="speck2f", cores=cs, input_cores=inputs if inputs is not None else [cores[0].core],
                      slow_clock_hz=slow_clock_hz, layer_order=[c.core for c in cores])
