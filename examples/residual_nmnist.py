"""A non-sequential network (skip + Merge) compiled and run on an N-MNIST-like synthetic event stream;
per-class output spike counts printed (the same as ``ss.simulate`` counts on each sample), spike raster saved.

The device runs on the virtual clock: each sample goes through as fast as the CPU allows with its timestamps
kept (on the wall clock, like a devkit, each sample would take its 300 ms).
    python examples/residual_nmnist.py [outdir]
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import trio

import speckstream as ss
from speckstream.demo import classify_samples, nmnist_like, residual_net
from speckstream.plots import spike_raster


def main(outdir="out/residual", samples=5):
    warnings.simplefilter("ignore")
    cfg = ss.compile(residual_net(), input_shape=(2, 34, 34))
    print(cfg.summary())
    spikes, starts = nmnist_like(n_samples=samples)
    out_core = cfg.output_cores[0]
    first = []

    async def run():
        async with ss.open_device("sim", clock="virtual") as dev:
            await dev.apply(cfg)
            counts, _ = await classify_samples(dev, spikes, starts, out_core, cfg.cores[out_core].output_shape[0],
                                               keep_first=first)
            return counts

    counts = trio.run(run)
    for i, row in enumerate(counts):
        print(f"sample {i}: per-class output spikes {row.tolist()} -> class {int(row.argmax())}")
    path = spike_raster(np.concatenate(first), Path(outdir) / "raster.png", title="sample 0, output core",
                        class_names=[str(k) for k in range(counts.shape[1])])
    print("raster:", path)
    return counts


if __name__ == "__main__":
    main(*sys.argv[1:])
