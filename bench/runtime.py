"""Runtime figures on the simulator (wall clock, trio):

* sustained events/s file -> runtime -> sim -> decoded arrays on a 1-core network, against a naive loop
  that writes and polls one event at a time (the style of the seed notebooks), same run;
* closed-loop round-trip latency p50 / p99;
* vmem polling rate of a 16x32x32 core;
* replay pacing error p99 at real time (the simulator holding events until their timestamps), and the real-time
  guard's lag: how far the simulator ran behind the input timestamps (due -> processed).

    python bench/runtime.py [--quick]
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import trio

from common import parse, print_table, rate

import speckstream as ss
from speckstream import codec
from speckstream.runtime import make_backend

from speckstream.testing.configs import config, core


def relay():
    """1 core: every input spike makes exactly one output spike (2 channels, 1x1, 64x64)."""
    return config(core(0, 2, 64, 64, 2, weights=[10, 0, 0, 10], thr=10))


def stream(n, seed=0, t=None):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=0 if t is None else t, core=0, c=rng.integers(0, 2, n), x=rng.integers(0, 64, n),
                        y=rng.integers(0, 64, n))


async def sustained(n: int, path: str) -> tuple[float, int]:
    codec.write_spk(path, stream(n))
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay())
        got = 0
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def consume():
                nonlocal got
                async for b in dev.events("spike", max_batches=1 << 14):
                    got += len(b)
                    if got >= n:
                        done.set()
                        return
            nursery.start_soon(consume)
            await trio.sleep(0)
            t = time.perf_counter()
            await dev.replay(path, speed=None)
            with trio.move_on_after(10):
                await done.wait()
            el = time.perf_counter() - t
        return el, got


async def naive(n: int) -> float:
    """Seed-notebook style: write one event, poll, repeat."""
    be = make_backend("sim", clock="virtual")
    await be.open()
    await be.apply(relay())
    ev = stream(n)
    t = time.perf_counter()
    got = 0
    for i in range(n):
        await be.write_spikes(ev[i:i + 1])
        out = await be.read(0)
        got += 0 if out is None else len(out.spikes)
    el = time.perf_counter() - t
    await be.close()
    return el


async def closed_loop(iterations: int):
    async with ss.open_device("sim") as dev:
        await dev.apply(relay())
        rng = np.random.default_rng(0)

        def controller(batch):
            return codec.spikes(t=0, core=0, c=1, x=int(rng.integers(0, 64)), y=int(rng.integers(0, 64)))

        return await dev.closed_loop(controller, codec.spikes(t=0, core=0), iterations=iterations)


async def vmem_rate(seconds: float) -> tuple[float, int]:
    cfg = config(core(0, 2, 32, 32, 16, k=3, padding=(1, 1), weights=np.ones(16 * 2 * 9), thr=1000))
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        await dev.send(codec.spikes(t=0, core=0, x=np.arange(32), y=np.arange(32)))
        frames = 0
        missing = 0
        t = time.perf_counter()
        async for f in dev.poll_vmem(0, every=0.0):
            frames += 1
            missing += f.missing
            if time.perf_counter() - t > seconds:
                break
        return frames / (time.perf_counter() - t), missing


async def pacing(seconds: float, rate_hz: float = 100_000):
    """A paced replay at real time on the wall-clock simulator: (ReplayResult, the session's statistics)."""
    n = int(seconds * rate_hz)
    rng = np.random.default_rng(2)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    async with ss.open_device("sim", clock="wall") as dev:
        await dev.apply(relay())
        rep = await dev.replay(stream(n, t=t), speed=1.0)
        return rep, dev.stats


def pacing_rows(result) -> list[dict]:
    """The pacing figures: release error, and the real-time guard's lag (how far the simulator ran behind)."""
    rep, stats = result
    return [
        {"what": "replay pacing error p99 (speed 1.0): release into the chip after its timestamp",
         "value": rep.release_error_us.p99, "unit": "µs", "target": "< 1000 µs",
         "baseline": f"host writes late p99 {rep.pacing_error_us.p99:.0f} µs"},
        {"what": "real-time lag, worst (due -> processed, session.stats.lag_max_us)",
         "value": float(stats.lag_max_us), "unit": "µs", "target": "< 50000 µs (the guard warns above)",
         "baseline": f"input {rep.input_rate / 1e3:.0f} k events/s"},
    ]


def run(quick: bool = False) -> list[dict]:
    n = 500_000 if quick else 4_000_000
    with tempfile.TemporaryDirectory() as d:
        el, got = trio.run(sustained, n, os.path.join(d, "in.spk"))
    assert got == n, f"lost events: {got} of {n}"
    n_naive = 5_000
    el_naive = trio.run(naive, n_naive)
    loop = trio.run(closed_loop, 500 if quick else 3000)
    hz, missing = trio.run(vmem_rate, 1.0 if quick else 3.0)
    paced = trio.run(pacing, 0.5 if quick else 2.0)
    return [
        {"what": "file -> runtime -> sim -> arrays (1 core)", "value": rate(n, el), "unit": "events/s",
         "baseline": f"naive write+poll per event {rate(n_naive, el_naive) / 1e3:.1f} k/s",
         "ratio": rate(n, el) / rate(n_naive, el_naive), "target": ">= 5 M/s, >= 20x"},
        {"what": "closed-loop round trip p50", "value": loop.latency_us.p50, "unit": "µs"},
        {"what": "closed-loop round trip p99", "value": loop.latency_us.p99, "unit": "µs",
         "target": "< 1000 µs"},
        {"what": "vmem polling, 16x32x32 core", "value": hz, "unit": f"frames/s ({missing} missing)",
         "target": ">= 100 Hz"},
        *pacing_rows(paced),
    ]


if __name__ == "__main__":
    args = parse(__doc__)
    print_table("runtime (simulator)", run(args.quick))
