"""Replay an AEDAT4 recording through a compiled network, recording the outputs to a .spk file.

The recording is written here with faery (as the test suite does) so the example is self-contained;
point ``--file`` at your own DVS recording instead.
    python examples/replay_aedat4.py [outdir]
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import trio

import speckstream as ss
from speckstream import codec
from speckstream.demo import residual_net


def write_recording(path: Path, n: int = 20_000, size=(34, 34)) -> Path:
    import faery

    rng = np.random.default_rng(0)
    ev = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 500_000, n))
    ev["x"] = (np.arange(n) * 34 // n + rng.integers(-2, 3, n)).clip(0, size[0] - 1)  # a sweeping edge
    ev["y"] = rng.integers(0, size[1], n)
    ev["on"] = rng.random(n) < 0.5
    faery.events_stream_from_array(ev, dimensions=size).to_file(str(path), zero_t0=False)
    return path


def main(outdir="out/replay", speed=4.0):
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rec = write_recording(out / "edge.aedat4")
    warnings.simplefilter("ignore")
    cfg = ss.compile(residual_net(), input_shape=(2, 34, 34), monitor="all")

    async def run():
        async with ss.open_device("sim", clock="wall") as dev:
            await dev.apply(cfg)
            return await dev.replay(rec, speed=speed, record=out / "outputs.spk", core=cfg.input_cores[0])

    res = trio.run(run)
    print(f"replayed {res.events_in:,} events at {speed}x in {res.duration_s:.2f} s; "
          f"{res.events_out:,} output spikes; release error p99 {res.release_error_us.p99:.0f} µs")
    with codec.EventFileReader(out / "outputs.spk") as r:
        r.scan()
        print("recording:", out / "outputs.spk", r.counts, "meta", r.meta)
    return res


if __name__ == "__main__":
    main(*sys.argv[1:])
