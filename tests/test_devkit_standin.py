"""The devkit path against the strict samna stand-in (issue: survive a first run on a real Speck2f, item 7):
each first-run item is checked where the stand-in is as strict as the public evidence."""
from __future__ import annotations

import numpy as np
import pytest
import anyio

import speckstream as ss
from speckstream.codec.errors import AddressError
from speckstream.compiler import DVSConfig, ReadoutConfig
from speckstream.runtime.backends.samna_backend import to_samna_config
from speckstream.runtime.errors import DeviceError
from speckstream.testing import models, samna_standin
from speckstream.testing.backends import collect, relay_config
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


def dvs_relay(monitor_stage=False, raw=False, pooling=(2, 2)):
    """A DVS stage (32x32 sensor, pooled) feeding a relay core: each DvsEvent comes out of core 0."""
    H, W = 32 // pooling[0], 32 // pooling[1]
    cfg = config(core(0, 2, H, W, 2, weights=[[20, 0], [0, 20]], thr=10, rtz=True))  # one spike per event
    cfg.dvs = DVSConfig(input_size=(32, 32), pooling=pooling, destinations=[0], monitor=monitor_stage,
                        raw_monitor=raw)
    cfg.input_cores = [0]
    return cfg


def dvs_events(n=50, seed=0, t=None):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, ss.codec.DVS_EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 32, n), rng.integers(0, 32, n), rng.integers(0, 2, n)
    ev["t"] = np.arange(n) * 100 if t is None else t
    return ev


def open_standin(**kw):
    samna = samna_standin.make_module(**kw)
    return ss.open_device("speck2fmodule:0", samna=samna)


# ---------------------------------------------------------------- names and validation
def test_a_misspelt_field_raises_like_samna():
    sc = samna_standin.SpeckConfiguration()
    with pytest.raises(AttributeError, match="monitor_enabled"):
        sc.cnn_layers[0].monitor_enabled = True
    with pytest.raises(AttributeError):
        sc.dvs_layer.raw_monitor = True
    with pytest.raises(AttributeError):
        samna_standin.Spike().channel = 1
    assert samna_standin.Spike(layer=3, feature=1, x=2, y=4, timestamp=9).layer == 3  # keyword constructors


@pytest.mark.filterwarnings("ignore::speckstream.compiler.CompileWarning")
@pytest.mark.parametrize("name", ["relay", "digits", "seq4-dvs", "readout", "dvs-cropped"])
def test_the_adapter_writes_only_known_fields_and_round_trips(name):
    """to_samna_config uses only evidenced names (the stand-in raises otherwise), passes samna's validation,
    and reading the samna objects back (written independently from the samna reference) gives the same chip."""
    if name == "relay":
        cfg = relay_config()
    elif name == "digits":
        cfg = ss.compile(ss.digits.digits_net(), (1, 8, 8))
    elif name == "seq4-dvs":
        cfg = ss.compile(models.seq4(), (2, 32, 32), dvs=True)
    elif name == "readout":
        cfg = config(core(0, 16, 1, 1, 16, weights=np.eye(16) * 20, thr=10, dests=[(12, 1)]), slow_clock_hz=20)
        cfg.readout = ReadoutConfig(average=32, output_mode=1, threshold=5, monitor=True)
    else:
        cfg = dvs_relay()
        cfg.cores[0] = core(0, 2, 8, 4, 2, weights=[[20, 0], [0, 20]], thr=10)
        cfg.dvs = DVSConfig(input_size=(32, 32), pooling=(2, 2), crop=(4, 12, 2, 6), flip_x=True, merge_polarities=False,
                            destinations=[0])
    sc = to_samna_config(cfg, samna_standin.make_module())
    ok, msg = samna_standin.validate_configuration(sc)
    assert ok, msg
    back = samna_standin.from_samna_config(sc)
    assert sorted(back.cores) == sorted(cfg.cores)
    for c, cc in cfg.cores.items():
        bc = back.cores[c]
        for f in ("input_shape", "output_shape", "kernel_size", "stride", "padding", "threshold_high",
                  "threshold_low", "return_to_zero", "monitor"):
            assert getattr(bc, f) == getattr(cc, f), (c, f)
        assert np.array_equal(bc.weights, cc.weights) and np.array_equal(bc.initial_vmem, cc.initial_vmem)
        assert [(d.core, d.pooling) for d in bc.destinations] == [(d.core, d.pooling) for d in cc.destinations]
    if cfg.dvs is not None:
        assert back.dvs.output_shape() == cfg.dvs.output_shape() and back.dvs.roi() == cfg.dvs.roi()
        assert (back.dvs.flip_x, back.dvs.destinations) == (cfg.dvs.flip_x, cfg.dvs.destinations)
    if cfg.readout is not None:
        r, b = cfg.readout, back.readout
        assert (b.average, b.output_mode, b.threshold, b.monitor) == (r.average, r.output_mode, r.threshold, r.monitor)


def test_samna_refuses_a_dvs_stage_whose_output_does_not_fit_its_core():
    """sinabs#274: with the cut left at samna's default, a pooled DVS input is 128x128 to a 16x16 core."""
    sc = to_samna_config(dvs_relay(), samna_standin.make_module())
    assert samna_standin.validate_configuration(sc)[0]
    sc.dvs_layer.origin.x = sc.dvs_layer.origin.y = 0
    sc.dvs_layer.cut.x = sc.dvs_layer.cut.y = 127
    ok, msg = samna_standin.validate_configuration(sc)
    assert not ok and "DVS output has x: 128, y: 128" in msg


async def test_a_configuration_samna_refuses_is_a_device_error_naming_the_reason():
    cfg = relay_config()
    cfg.cores[0].destinations[0].pooling = 1  # core 0's 16x16 output into core 1's 8x8 input
    async with open_standin() as dev:
        dev.backend.apply_settle_s = 0
        with pytest.raises(DeviceError, match="input and target shape do not match"):
            await dev.backend.apply(cfg)


# ---------------------------------------------------------------- timing
async def test_apply_waits_until_the_chip_has_the_configuration():
    """samna applies asynchronously: without the round trip (and with no settle wait) the chip would still
    run the old configuration when the first spikes arrive."""
    async with open_standin(apply_delay_s=0.3) as dev:
        chip = dev.backend.handle.chip
        t0 = anyio.current_time()
        await dev.apply(relay_config())
        assert dev.backend.applied_confirmed and chip.config is not None and anyio.current_time() - t0 >= 0.3
        dev.backend.apply_confirm, dev.backend.apply_settle_s = False, 0.0
        cfg2 = relay_config()
        cfg2.cores[0].threshold_high = 77
        await dev.apply(cfg2)
        assert chip.config.cnn_layers[0].threshold_high == 10  # not yet: the unconfirmed path must wait
        await anyio.sleep(0.4)
        assert chip.config.cnn_layers[0].threshold_high == 77


async def test_timestamped_input_is_held_until_the_stopwatch_reaches_it():
    async with open_standin() as dev:
        await dev.apply(relay_config())
        t_send = dev.now_us() + 300_000
        with dev.subscribe("spike") as sub:
            await dev.send(ss.codec.spikes(t=t_send, core=0, c=0, x=1, y=1))
            with anyio.move_on_after(0.2):
                async for b in sub:
                    pytest.fail(f"released before its timestamp: {b}")
            with anyio.fail_after(2):
                async for b in sub:
                    break
        assert dev.now_us() >= t_send and int(b["t"][0]) >= t_send
        assert int(b["t"][0]) - t_send < 50_000  # stamped by the chip when it took it


# ---------------------------------------------------------------- monitors
async def test_output_comes_only_from_monitored_layers():
    cfg = relay_config()
    cfg.cores[0].monitor = False
    async with open_standin() as dev:
        await dev.apply(cfg)
        await dev.send(ss.codec.spikes(t=0, core=0, c=[0, 1], x=[2, 4], y=[2, 4]))
        out = await collect(dev, 2, timeout=1.0)
    assert len(out) == 2 and set(out["core"].tolist()) == {1}


async def test_readout_monitoring_stops_spike_output_on_the_stand_in_and_the_simulator():
    cfg = config(core(0, 16, 1, 1, 16, weights=np.eye(16) * 20, thr=10, dests=[(12, 1)]), slow_clock_hz=20)
    cfg.readout = ReadoutConfig(average=1, monitor=True)
    for name in ("speck2fmodule:0", "sim"):
        kw = {"samna": samna_standin.make_module()} if name != "sim" else {}
        async with ss.open_device(name, **kw) as dev:
            await dev.apply(cfg)
            await dev.slow_clock(20)
            with dev.subscribe("all") as sub:
                await dev.send(ss.codec.spikes(t=dev.now_us() + 1000, core=0, c=4, x=0, y=0))
                await anyio.sleep(0.3)
                sub.close()
                got = [b async for b in sub]
        kinds = {k for k, a in got if len(a)}
        assert kinds == {"readout"}, (name, kinds)


# ---------------------------------------------------------------- DVS input
async def run_dvs(device: str, cfg, events, **kw):
    async with ss.open_device(device, **kw) as dev:
        await dev.apply(cfg)
        base = dev.now_us() + 20_000
        ev = events.copy()
        ev["t"] += base
        await dev.send_dvs(ev)
        out = await collect(dev, 10**9, timeout=0.6)
    out = out.copy()
    out["t"] -= base
    return out


async def test_dvs_input_goes_through_the_dvs_stage_on_the_stand_in_as_on_the_simulator():
    cfg = dvs_relay(monitor_stage=True)
    ev = dvs_events(40)
    on_sim = await run_dvs("sim", cfg, ev)
    on_standin = await run_dvs("speck2fmodule:0", cfg, ev, samna=samna_standin.make_module())
    # pooled by 2 into core 0, plus the stage's own monitored events (layer 13)
    assert np.sum(on_sim["core"] == 0) == 40 and np.sum(on_sim["core"] == 13) == 40
    assert on_sim["x"].max() < 16
    key = lambda a: sorted(zip(a["core"].tolist(), a["c"].tolist(), a["x"].tolist(), a["y"].tolist()))  # noqa: E731
    assert key(on_sim) == key(on_standin)
    direct = ss.sim.ChipSimulator(cfg).feed_dvs(ev)
    assert key(direct) == key(on_sim)


async def test_dvs_sends_are_checked_before_anything_is_queued():
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_config())
        with pytest.raises(DeviceError, match="no DVS stage"):
            await dev.send_dvs(dvs_events(3))
        await dev.apply(dvs_relay())
        bad = dvs_events(5)
        bad["x"][3] = 40
        with pytest.raises(AddressError, match=r"DVS event 3 .*x=40.* off the 32x32"):
            await dev.send_dvs(bad)
        with pytest.raises(ValueError, match="kind"):
            await dev.send(dvs_events(2), kind="camera")
        assert dev.stats.accepted == 0


async def test_replay_of_a_camera_recording_goes_through_the_dvs_stage(tmp_path):
    cfg = dvs_relay()
    rec = np.zeros(30, [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])  # tonic's events_struct
    ev = dvs_events(30)
    rec["x"], rec["y"], rec["t"], rec["p"] = ev["x"], ev["y"], ev["t"], ev["p"].astype(bool)
    np.save(tmp_path / "cam.npy", rec)
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with dev.subscribe("spike") as sub:
            res = await dev.replay(tmp_path / "cam.npy", speed=None)
            sub.close()
            out = np.concatenate([b async for b in sub])
        assert res.events_in == 30 and len(out) == 30 and out["x"].max() < 16  # pooled by the stage
        with pytest.raises(AddressError):  # straight into core 0 the 32x32 events are off its 16x16 map
            await dev.replay(rec, speed=None, via="core")
        with pytest.raises(ValueError, match="via"):
            await dev.replay(rec, via="sensor")


# ---------------------------------------------------------------- raw sensor monitoring
@pytest.mark.parametrize("device", ["sim", "speck2fmodule:0"])
async def test_raw_sensor_events_reach_the_host_with_session_timestamps(device):
    kw = {"samna": samna_standin.make_module()} if device != "sim" else {"clock": "wall"}
    cfg = dvs_relay(raw=True)
    async with ss.open_device(device, **kw) as dev:
        await dev.apply(cfg)
        await anyio.sleep(0.05)
        before = dev.now_us()
        camera = dev.backend if device == "sim" else dev.backend.handle.chip
        camera.see(dvs_events(7))
        got = await collect(dev, 7, "dvs", timeout=2)
        after = dev.now_us()
    assert len(got) == 7 and got.dtype == ss.codec.DVS_EVENT_DTYPE
    assert np.all((got["t"] >= before - 2000) & (got["t"] <= after))  # session µs, unwrapped like spikes
    assert np.array_equal(got["x"], dvs_events(7)["x"])


@pytest.mark.parametrize("reset_via", ["apply", "reset_time"])
async def test_device_stamps_never_lie_in_the_sessions_future_when_the_host_is_slow(reset_via, monkeypatch):
    """Reproduced under load: the stopwatch was reset on the device thread and the session's clock restarted
    only when the call came back to the loop, so a loaded host (here: 30 ms between the stopwatch's start and
    the call's return) put every device stamp that far in the session's future. The session now takes the
    moment the device thread started the stopwatch."""
    async with open_standin() as dev:
        watch = dev.backend.stopwatch
        start = watch.start

        def slow_start():
            start()
            import time
            time.sleep(0.03)  # the thread hop back to a loaded event loop

        monkeypatch.setattr(watch, "start", slow_start)
        cfg = dvs_relay(raw=True)
        await dev.apply(cfg)
        if reset_via == "reset_time":
            await dev.reset_time()
        before = dev.now_us()
        dev.backend.handle.chip.see(dvs_events(7))
        got = await collect(dev, 7, "dvs", timeout=2)
        after = dev.now_us()
    assert len(got) == 7
    assert np.all(got["t"] <= after), (got["t"], after)  # never stamped after it was received
    assert np.all(got["t"] >= before - 5000), (got["t"], before)
