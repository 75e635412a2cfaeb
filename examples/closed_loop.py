"""Closed loop: a 1-D plant (a cart on a rail) is steered toward a target by an SNN on the simulator.

The plant's position error is encoded as input spikes (channel 0 = target is left, 1 = right, rate ~ |error|);
the network's output spikes (channel 0 push left, 1 push right) set the cart's velocity. Latency percentiles
of the round trip (input send -> output -> controller -> next input) are printed and plotted.
    python examples/closed_loop.py [outdir]
"""
import sys
from pathlib import Path

import numpy as np
import trio

import speckstream as ss
from speckstream import codec
from speckstream.compiler.config import ChipConfig, CoreConfig
from speckstream.plots import latency_histogram


def controller_config() -> ChipConfig:
    """One core, 2 -> 2 channels over a 1x8 population: each input spike drives its own channel."""
    w = np.zeros((2, 2, 1, 1), np.int8)
    w[0, 0], w[1, 1] = 100, 100  # every input spike fires its neuron once
    core = CoreConfig(core=0, input_shape=(2, 1, 8), output_shape=(2, 1, 8), kernel_size=1, stride=(1, 1),
                      padding=(0, 0), weights=w, biases=np.zeros(2, np.int16), threshold_high=100,
                      threshold_low=-100, initial_vmem=np.zeros((2, 1, 8), np.int16), monitor=True)
    return ChipConfig(chip="speck2f", cores={0: core}, input_cores=[0], input_shape=(2, 1, 8), layer_order=[0])


class Cart:
    def __init__(self, target=0.8):
        self.x, self.target, self.dt = 0.0, target, 0.01
        self.rng = np.random.default_rng(0)
        self.history = []

    def step(self, out: np.ndarray) -> np.ndarray:
        push = (np.count_nonzero(out["c"] == 1) - np.count_nonzero(out["c"] == 0)) if len(out) else 0
        self.x += 0.02 * push
        self.history.append(self.x)
        err = self.target - self.x
        if abs(err) < 0.01:
            return None  # on target: silence (the loop calls back again after timeout_s)
        n = int(np.ceil(min(8, abs(err) * 20)))  # spike count ~ error magnitude
        return codec.spikes(t=0, core=0, c=1 if err > 0 else 0, x=self.rng.integers(0, 8, n), y=0)


def main(outdir="out/closed_loop", iterations=400):
    cart = Cart()

    async def run():
        async with ss.open_device("sim") as dev:
            await dev.apply(controller_config())
            first = cart.step(np.empty(0, codec.SPIKE_DTYPE))
            return await dev.closed_loop(cart.step, first, iterations=iterations, timeout_s=0.01)

    res = trio.run(run)
    print(f"cart position after {res.iterations} steps: {cart.x:.3f} (target {cart.target})")
    lat, resp = res.latency_us, res.response_us
    print(f"round trip µs over {lat.n} steps with output: p50 {lat.p50:.1f}, p90 {lat.p90:.1f}, p99 {lat.p99:.1f}, "
          f"max {lat.max:.1f} ({res.timeouts} silent steps)")
    print(f"response µs:   p50 {resp.p50:.1f}, p90 {resp.p90:.1f}, p99 {resp.p99:.1f}, max {resp.max:.1f}")
    path = latency_histogram(res.samples_us, Path(outdir) / "latency.png")
    print("plot:", path)
    return cart, res


if __name__ == "__main__":
    main(*sys.argv[1:])
