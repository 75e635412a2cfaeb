"""Session.power on the simulator (the energy model's estimate from its activity) and on a devkit through samna's
power monitor (the strict stand-in, with the names of sinabs' power-monitoring notebook), on both loops and in the
blocking facade; and the output decimator written by the samna adapter and run by the stand-in's chip."""
from __future__ import annotations

import warnings

import anyio
import numpy as np
import pytest

import speckstream as ss
from speckstream import codec
from speckstream.runtime.backends.samna_backend import to_samna_config
from speckstream.runtime.errors import DeviceClosed
from speckstream.sim.energy import IDLE_RAILS_W, RAILS, EnergyModel
from speckstream.testing import samna_standin
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


def busy_config():
    """One core, 16 channels of a 3x3 kernel: 144 SynOps per event away from the borders."""
    return config(core(0, 1, 16, 16, 16, k=3, padding=(1, 1), weights=np.ones(16 * 9), thr=100, low=-100))


def stream(n: int, span_us: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=np.sort(rng.integers(0, span_us, n)), core=0, c=0, x=rng.integers(1, 15, n),
                        y=rng.integers(1, 15, n))


async def test_the_simulator_estimates_its_power_from_activity(anyio_backend):
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(busy_config())
        async with dev.power(every=0.01) as samples:
            idle = await samples.receive()  # no input yet: the idle rails
            await dev.send(stream(20_000, 100_000))  # 20k events x 144 SynOps over 0.1 s of chip time
            await dev.flush()
            busy = await samples.receive()
    assert idle.estimated and busy.estimated and list(busy.rails) == list(RAILS)
    assert idle.rails == pytest.approx(IDLE_RAILS_W)
    m = EnergyModel()
    # 2.88 M SynOps (at most: fewer at the map's edge) in ~0.1 s of chip time -> ~29 M SynOps/s x 26 pJ = ~0.75 mW
    extra = busy.total_w - idle.total_w
    assert 0.3e-3 < extra < 0.9e-3, extra
    assert busy.rails["VDD_LOGIC"] - IDLE_RAILS_W["VDD_LOGIC"] == pytest.approx(extra / 2, rel=0.2)
    assert m.synop_j == 26e-12


async def test_power_samples_end_after_count_and_bad_arguments_are_refused_at_the_call(anyio_backend):
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(busy_config())
        with pytest.raises(ValueError, match="every must be a positive"):
            dev.power(every=0)
        with pytest.raises(ValueError, match="count must be"):
            dev.power(count=0)
        got = [s async for s in dev.power(every=0.005, count=3)]
        assert len(got) == 3 and all(s.estimated for s in got) and got[0].t_us <= got[-1].t_us
    with pytest.raises(DeviceClosed):
        dev.power()


def test_power_from_the_blocking_facade():
    with ss.connect("sim", clock="virtual") as dev:
        dev.apply(busy_config())
        with dev.power(every=0.005, count=2) as samples:
            got = list(samples)
    assert len(got) == 2 and got[0].rails == pytest.approx(IDLE_RAILS_W)


async def test_a_devkits_power_monitor_is_read_as_sinabs_notebook_reads_it(anyio_backend):
    """Through samna's names (the stand-in refuses any other): the monitor's source node into a measurement sink,
    start_auto_power_measurement(hz), channels 0..4 named as the notebook names them, values in W averaged per
    rail over each period; the monitor stops when the samples are closed."""
    true = EnergyModel(synop_j=50e-12)  # this board's own constants
    samna = samna_standin.make_module(power_model=true)
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        await dev.apply(busy_config())
        handle = samna.device.open_device(samna.device.get_all_devices()[0])
        async with dev.power(every=0.05) as samples:
            idle = await samples.receive()
            assert handle.chip.power_hz == 20.0  # 1 / every, at most the monitor's 100 Hz
            ev = stream(4000, 40_000)
            ev["t"] += dev.now_us() + 5_000
            await dev.send(ev)
            await anyio.sleep(0.1)
            busy = [await samples.receive() for _ in range(2)]
        assert handle.chip.power_hz == 0.0  # stopped with the samples
    assert not idle.estimated and list(idle.rails) == list(RAILS)
    assert idle.rails == pytest.approx(IDLE_RAILS_W)
    assert max(s.total_w for s in busy) > idle.total_w + 1e-5  # the load shows on the rails


async def test_power_on_a_device_without_a_monitor_is_a_device_error(anyio_backend):
    from speckstream.runtime.backends.base import Backend
    from speckstream.runtime.errors import DeviceError

    class NoMonitor(ss.runtime.SimBackend):
        start_power = Backend.start_power

    from speckstream.runtime import Session

    async with Session(NoMonitor()) as dev:
        await dev.apply(busy_config())
        with pytest.raises(DeviceError, match="has no power monitor"):
            await dev.power().receive()


# ---------------------------------------------------------------- the output decimator on a devkit
def test_the_adapter_writes_the_decimator_and_the_standin_reads_it_back():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from speckstream.digits import digits_net

        cfg = ss.compile(digits_net(), (1, 8, 8), decimator={"0": 4, "3": 512})
    sc = to_samna_config(cfg, samna_standin.make_module())
    layers = {c: sc.cnn_layers[c] for c in cfg.cores}
    first, second, last = (layers[c] for c in cfg.layer_order)
    assert (first.output_decimator_enable, first.output_decimator_interval) == (True, 1)  # 1 of 4: code 1
    assert (second.output_decimator_enable, second.output_decimator_interval) == (True, 7)  # 1 of 512: code 7
    assert not last.output_decimator_enable
    assert samna_standin.validate_configuration(sc)[0]
    assert samna_standin.from_samna_config(sc).cores[cfg.layer_order[0]].decimator == 4
    sc.cnn_layers[cfg.layer_order[0]].output_decimator_interval = 8
    ok, msg = samna_standin.validate_configuration(sc)
    assert not ok and "output_decimator_interval 8" in msg


async def test_a_decimating_core_on_the_standin_devkit_passes_one_spike_in_n_as_the_simulator_does(anyio_backend):
    c0 = core(0, 1, 1, 1, 1, weights=[20], thr=10)
    c0.decimator = 4
    cfg = config(c0)
    ev = codec.spikes(t=np.arange(12) * 1000, core=0, c=0, x=0, y=0)
    out = {}
    for name, dev_ctx in (("sim", ss.open_device("sim", clock="virtual")),
                          ("devkit", ss.open_device("speck2fmodule:0", samna=samna_standin.make_module()))):
        async with dev_ctx as dev:
            await dev.apply(cfg)
            async with dev.events("spike") as batches:
                e = ev.copy()
                e["t"] += dev.now_us() + 5_000
                await dev.send(e)
                got = []
                with anyio.move_on_after(0.5):
                    async for b in batches:
                        got.append(b)
                        if sum(len(x) for x in got) >= 3:
                            break
            out[name] = np.concatenate(got) if got else codec.spikes(t=[], core=0)
    assert len(out["sim"]) == len(out["devkit"]) == 3  # the 4th, 8th and 12th of 12 spikes
