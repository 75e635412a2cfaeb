"""Animate the membrane potentials of a core as PNG frames while an event stream runs.
    python examples/vmem_heatmap.py [outdir]
"""
import sys
import warnings
from pathlib import Path

import trio

import speckstream as ss
from speckstream.demo import nmnist_like, residual_net
from speckstream.plots import vmem_heatmap


def main(outdir="out/vmem", frames=8):
    warnings.simplefilter("ignore")
    cfg = ss.compile(residual_net(), input_shape=(2, 34, 34))
    core = cfg.layer_order[1]  # the second layer: 8 x 17 x 17
    spikes, _ = nmnist_like(n_samples=1)
    polled = []

    async def run():
        async with ss.open_device("sim", clock="wall") as dev:
            await dev.apply(cfg)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(dev.replay, spikes)  # 300 ms of events in real time
                async with dev.poll_vmem(core, every=0.04, count=frames) as frames_in:
                    async for f in frames_in:
                        polled.append(f)  # render afterwards: plotting inside the loop would stall trio

    trio.run(run)
    lim = max(int(abs(f.image).max()) for f in polled) or 1  # one scale for every frame, from the data
    thr = cfg.cores[core].threshold_high
    paths = [vmem_heatmap(f.image, Path(outdir) / f"frame_{i:03d}.png", title=f"core {core} at {f.t_us / 1e3:.0f} ms",
                          vmin=-max(lim, thr), vmax=max(lim, thr), threshold=thr) for i, f in enumerate(polled)]
    print(f"{len(paths)} frames in {outdir}/")
    return paths


if __name__ == "__main__":
    main(*sys.argv[1:])
