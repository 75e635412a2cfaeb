"""Leak: a 1x1 conv with a negative bias leaks under a 1 Hz slow clock; vmem read back with ReadNeuronValue.

Runs in virtual time (trio's mock clock drives the real-time simulator), so 20 s of chip time take a moment.
    python examples/leak.py [outdir]
"""
import sys
from pathlib import Path

import numpy as np
import torch
import trio
import trio.testing
from torch import nn

import sinabs.layers as sl
import speckstream as ss
from speckstream.plots import vmem_trace


def leak_net():
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.1)
    iaf = sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=-1.0)
    iaf.v_mem = nn.Parameter(torch.ones(1, 1, 2, 2), requires_grad=False)
    return nn.Sequential(conv, iaf)


def main(outdir="out/leak"):
    cfg = ss.compile(leak_net(), input_shape=(1, 2, 2), slow_clock_hz=1.0, initial_vmem="model")
    cc = cfg.cores[cfg.input_cores[0]]
    print(f"discretized: weight {cc.weights.item()}, bias {cc.biases.item()}, threshold {cc.threshold_high}, "
          f"floor {cc.threshold_low}, initial vmem {cc.initial_vmem.ravel().tolist()}")

    async def run():
        async with ss.open_device("sim", clock="wall") as dev:
            await dev.apply(cfg)
            async with dev.poll_vmem(cc.core, every=0.5, count=44) as frames:
                return [(f.t_us, int(f.image[0, 0, 0])) async for f in frames]

    trace = trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    t, v = np.array(trace).T
    print("vmem every 0.5 s:", v.tolist())
    path = vmem_trace(t, v, Path(outdir) / "leak.png", title="leak at 1 Hz, bias -13", floor=cc.threshold_low)
    print("plot:", path)
    return t, v


if __name__ == "__main__":
    main(*sys.argv[1:])
