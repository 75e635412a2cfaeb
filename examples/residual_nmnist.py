"""A non-sequential network (skip + Merge) compiled and run on an N-MNIST-like synthetic event stream;
per-class output spike counts printed, spike raster saved.
    python examples/residual_nmnist.py [outdir]
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import trio

import speckstream as ss
from speckstream.demo import nmnist_like, residual_net
from speckstream.plots import spike_raster


def main(outdir="out/residual", samples=5):
    warnings.simplefilter("ignore")
    cfg = ss.compile(residual_net(), input_shape=(2, 34, 34))
    print(cfg.summary())
    spikes, starts = nmnist_like(n_samples=samples)
    out_core = cfg.output_cores[0]
    counts = np.zeros((samples, cfg.cores[out_core].output_shape[0]), int)
    first = []

    async def run():
        async with ss.open_device("sim") as dev:
            await dev.apply(cfg)
            for i, t0 in enumerate(starts):
                sample = spikes[(spikes["t"] >= t0) & (spikes["t"] < t0 + 300_000)].copy()
                sample["t"] -= np.uint64(t0)
                await dev.reset_state()
                await dev.reset_time()
                sub = dev.subscribe("spike", cores=[out_core], max_batches=1 << 14)
                await dev.replay(sample, speed=None)
                dev.unsubscribe(sub)
                async for _, arr in sub.receive:
                    np.add.at(counts[i], arr["c"].astype(int), 1)
                    if i == 0:
                        first.append(arr)

    trio.run(run)
    for i, row in enumerate(counts):
        print(f"sample {i}: per-class output spikes {row.tolist()} -> class {int(row.argmax())}")
    path = spike_raster(np.concatenate(first), Path(outdir) / "raster.png", title="sample 0, output core")
    print("raster:", path)
    return counts


if __name__ == "__main__":
    main(*sys.argv[1:])
