"""Runtime tests on both anyio backends (trio's MockClock for timing logic), fault injection, samna stand-in."""
import threading

import numpy as np
import pytest
import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.runtime import (DeviceDisconnected, DeviceNotFound, SamnaUnavailable, SimFaults, Unwrapper,
                                 find_samna)
from speckstream.runtime.backends.samna_backend import to_samna_config

from speckstream.testing.configs import config, core
from speckstream.testing import samna_standin
from speckstream.testing.backends import collect

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


def relay_cfg(monitor=True):
    """Every input spike fires exactly one output spike at the same place."""
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10, monitor=monitor))


def rand_spikes(n, seed=0, t=0):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=t, core=0, c=rng.integers(0, 2, n), x=rng.integers(0, 8, n), y=rng.integers(0, 8, n))


# ------------------------------------------------------------------ streams
async def test_send_and_receive_every_event_in_batches():
    async with ss.open_device("sim", batch_size=1000) as dev:
        await dev.apply(relay_cfg())
        sp = rand_spikes(25_000)
        async with anyio.create_task_group() as n:
            result = {}

            async def consume():
                result["out"] = await collect(dev, len(sp))
            n.start_soon(consume)
            await anyio.sleep(0)
            assert await dev.send(sp) == len(sp)
        out = result["out"]
        assert len(out) == len(sp)
        assert np.array_equal(out["c"], sp["c"]) and np.array_equal(out["x"], sp["x"])
        assert dev.stats.written == len(sp) and dev.stats.accepted == len(sp)


async def test_several_subscribers_and_a_slow_one_does_not_stall_the_drain():
    async with ss.open_device("sim", batch_size=100) as dev:
        await dev.apply(relay_cfg())
        fast = dev.subscribe("spike", max_batches=10_000)
        slow = dev.subscribe("spike", max_batches=2)  # never read
        await dev.send(rand_spikes(5000))
        await dev.flush()
        await anyio.sleep(0.05)
        got = 0
        while (item := fast.receive_nowait()) is not None:
            got += len(item[1])
        assert got == 5000
        assert slow.dropped_events > 0 and slow.dropped_events + 200 >= 5000 - 200
        stats = dev.stats.subscriptions
        assert any(s.dropped_events > 0 for s in stats)


async def test_drop_policy_counts_instead_of_waiting():
    async with ss.open_device("sim", batch_size=10, input_queue=1, policy="drop") as dev:
        await dev.apply(relay_cfg())
        accepted = await dev.send(rand_spikes(1000))  # no checkpoint: the queue holds one batch
        assert accepted < 1000
        assert dev.stats.dropped_by_policy == 1000 - accepted


async def test_output_timestamps_are_unwrapped_past_32_bits(autojump_clock):
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        # the device clock wraps: feed the simulator virtual times beyond 2**32 µs
        sp = rand_spikes(3, t=[2 ** 32 - 10, 2 ** 32 + 5, 2 ** 32 + 2 ** 31 + 7])
        dev.backend.sim.reset_time()
        task_out = {}
        async with anyio.create_task_group() as n:
            async def consume():
                task_out["o"] = await collect(dev, 3)
            n.start_soon(consume)
            await anyio.sleep(0)
            await dev.backend.write_spikes(sp)  # bypass the 32-bit input check to test unwrapping only
        assert task_out["o"]["t"].tolist() == [2 ** 32 - 10, 2 ** 32 + 5, 2 ** 32 + 2 ** 31 + 7]


def test_pace_splits_a_stream_into_slices_without_a_clock():
    """The pure step of replay: which events go in which write. Slice k holds the events in
    [t0 + k * slice, t0 + (k + 1) * slice): 0, 1000, 4999 | 5000 | (empty 10 ms .. 15 ms skipped) 15000, 15001."""
    from speckstream.runtime.replay import pace

    t = np.array([0, 1000, 4999, 5000, 15000, 15001], np.float64)
    assert pace(t, 0.005) == [(0, 3), (3, 4), (4, 6)]
    assert pace(np.empty(0), 0.005) == []
    assert pace(t + 123, 0.005) == [(0, 3), (3, 4), (4, 6)]  # slices start at the first event


@given(st.lists(st.integers(0, 10**7), max_size=300), st.floats(1e-4, 0.1))
@settings(max_examples=200, deadline=None)
def test_pace_partitions_every_stream_into_slices_shorter_than_the_slice(times, slice_s):
    from speckstream.runtime.replay import pace

    t = np.sort(np.array(times, np.float64))
    writes = pace(t, slice_s)
    assert [a for a, _ in writes[:1]] == ([0] if len(t) else [])
    assert all(b0 == a1 for (_, b0), (a1, _) in zip(writes, writes[1:]))  # consecutive, nothing lost or doubled
    assert (writes[-1][1] if writes else 0) == len(t)
    assert all(b > a and t[b - 1] - t[a] < slice_s * 1e6 for a, b in writes)


def test_unwrapper():
    u = Unwrapper()
    a = u(np.array([10, 2 ** 32 - 5, 3, 2, 2 ** 31 + 10, 4], np.uint64))
    assert a.tolist() == [10, 2 ** 32 - 5, 2 ** 32 + 3, 2 ** 32 + 2, 2 ** 32 + 2 ** 31 + 10, 2 ** 33 + 4]
    assert u(np.array([5], np.uint64)).tolist() == [2 ** 33 + 5]
    u.rebase(100)
    assert u(np.array([1], np.uint64)).tolist() == [101]


async def test_input_beyond_the_stopwatch_range_is_refused_clearly():
    with pytest.raises(ss.runtime.DeviceError, match="32-bit"):
        async with ss.open_device("sim") as dev:
            await dev.apply(relay_cfg())
            await dev.send(rand_spikes(1, t=2 ** 32 + 1))
            await dev.flush()


# ------------------------------------------------------------------ vmem polling (mock clock)
async def test_poll_vmem_frames_on_the_mock_clock(autojump_clock):
    cfg = config(core(0, 1, 4, 4, 2, weights=[3, -2], thr=1000, low=-1000))
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        await dev.send(codec.spikes(t=0, core=0, x=[1, 1, 2], y=[0, 0, 3]))
        await dev.flush()
        frames = []
        async for f in dev.poll_vmem(0, every=0.1, count=5):
            frames.append(f)
        assert [f.missing for f in frames] == [0] * 5
        times = np.array([f.t_us for f in frames])
        assert np.allclose(np.diff(times), 100_000, atol=1)
        img = frames[-1].image
        assert img[0, 0, 1] == 6 and img[1, 0, 1] == -4 and img[0, 3, 2] == 3 and img.sum() == 6 - 4 + 3 - 2


async def test_poll_vmem_and_events_are_resources_closed_by_async_with(autojump_clock):
    """Streams are resources, not generators: leaving ``async with`` ends them at once (no garbage collector
    involved), and a stream dropped unclosed stops being fed."""
    cfg = config(core(0, 1, 4, 4, 2, weights=[3, -2], thr=1000, low=-1000))
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        async with dev.poll_vmem(0, every=0.1) as frames:  # no count: until closed
            got = [await frames.receive(), await frames.receive()]
            async for f in frames:
                got.append(f)
                if len(got) == 4:
                    break
        with pytest.raises(anyio.EndOfStream):
            await frames.receive()  # closed with the block
        assert len(got) == 4 and np.allclose(np.diff([f.t_us for f in got]), 100_000, atol=1)
        async with dev.events("spike") as batches:
            assert len(dev.stats.subscriptions) == 1
        assert dev.stats.subscriptions == () and batches.closed
        dev.events("spike")  # dropped unclosed (as a loop left by break drops it): no longer fed or listed
        assert dev.stats.subscriptions == ()


async def test_delayed_replies_are_reported_missing_not_waited_for(autojump_clock):
    faults = SimFaults(reply_delay_s=0.5)
    async with ss.open_device("sim", faults=faults) as dev:
        await dev.apply(relay_cfg())
        t0 = anyio.current_time()
        frames = []
        async for f in dev.poll_vmem(0, every=0.1, count=2):
            frames.append(f)
        assert all(f.missing == f.requested == 128 for f in frames)
        assert anyio.current_time() - t0 < 0.25


async def test_leak_through_the_runtime_realtime_sim(autojump_clock):
    cfg = config(core(0, 1, 2, 2, 1, weights=1, thr=127, low=-127, bias=[-13], vmem=np.full((1, 2, 2), 127)),
                 slow_clock_hz=1.0)
    async with ss.open_device("sim", clock="wall") as dev:
        await dev.apply(cfg)
        vals = []
        async for f in dev.poll_vmem(0, every=0.5, count=8):
            vals.append(int(f.image[0, 0, 0]))
        assert vals == [127, 127, 114, 114, 101, 101, 88, 88]


# ------------------------------------------------------------------ replay (mock clock)
async def test_paced_replay_from_a_file_records_outputs(tmp_path, autojump_clock):
    sp = rand_spikes(2000, seed=3)
    sp["t"] = np.sort(np.random.default_rng(1).integers(0, 2_000_000, 2000))
    codec.write_spk(tmp_path / "in.spk", sp)
    async with ss.open_device("sim", clock="wall") as dev:
        await dev.apply(relay_cfg())
        t0 = anyio.current_time()
        res = await dev.replay(tmp_path / "in.spk", speed=2.0, record=tmp_path / "out.spk")
        elapsed = anyio.current_time() - t0
    assert res.events_in == 2000 and res.events_out == 2000
    assert 0.95 < elapsed < 1.3  # 2 s of events at 2x
    assert res.pacing_error_us.p99 < 1000
    with codec.EventFileReader(tmp_path / "out.spk") as r:
        out = r.read("spike")
    assert len(out) == 2000
    # outputs leave at the time their input was released: (t - t_first) / 2 + offset
    expected = (sp["t"] - sp["t"][0]) // 2
    assert np.abs((out["t"] - out["t"][0]).astype(np.int64) - expected.astype(np.int64)).max() <= 1


async def test_as_fast_as_possible_replay():
    sp = rand_spikes(50_000, seed=4)
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        res = await dev.replay(sp, speed=None)
    assert res.events_in == 50_000 and res.events_out == 50_000 and res.input_rate > 10_000


# ------------------------------------------------------------------ closed loop
async def test_closed_loop_measures_latency(autojump_clock):
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        seen = []

        def controller(batch):
            seen.append(len(batch))
            return codec.spikes(t=0, core=0, c=1, x=len(seen) % 8, y=0)

        res = await dev.closed_loop(controller, codec.spikes(t=0, core=0, x=0, y=0), iterations=50)
    assert res.iterations == 50 and res.timeouts == 0 and all(n == 1 for n in seen)
    assert res.latency_us.n == 50


async def test_closed_loop_calls_back_on_silence():
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg(monitor=False))

        async def controller(batch):
            await anyio.sleep(0)
            return None

        res = await dev.closed_loop(controller, codec.spikes(t=0, core=0), iterations=3, timeout_s=0.01)
    assert res.timeouts == 3


# ------------------------------------------------------------------ faults
async def test_device_drops_are_counted():
    async with ss.open_device("sim", faults=SimFaults(drop_fraction=0.3, seed=1)) as dev:
        await dev.apply(relay_cfg())
        await dev.send(rand_spikes(10_000))
        await dev.flush()
        dropped = dev.stats.device["device_dropped"]
        assert 2500 < dropped < 3500 and dev.stats.device["released"] == 10_000 - dropped


async def test_disconnect_mid_stream_raises_and_accounts_for_every_event():
    with pytest.raises(DeviceDisconnected) as e:
        async with ss.open_device("sim", batch_size=1000, faults=SimFaults(disconnect_after=4500)) as dev:
            await dev.apply(relay_cfg())
            for _ in range(10):
                await dev.send(rand_spikes(1000))
            await dev.flush()
    acc = e.value.accounting
    assert acc.written == 4500
    assert acc.accepted == acc.written + acc.not_written + acc.dropped_by_policy
    assert "disconnected mid-stream" in str(e.value)


async def test_cancel_scope_stops_everything_cleanly():
    before = threading.active_count()
    with anyio.move_on_after(0.05):
        async with ss.open_device("sim") as dev:
            await dev.apply(relay_cfg())
            async for _ in dev.events("spike"):
                pass
    assert threading.active_count() == before


# ------------------------------------------------------------------ devices and samna
async def test_unknown_device_and_missing_samna_are_clear():
    with pytest.raises(DeviceNotFound, match="unknown device 'speck9'"):
        async with ss.open_device("speck9"):
            pass
    ok, why = find_samna()
    if not ok:
        with pytest.raises(SamnaUnavailable, match="open_device\\('sim'\\)"):
            async with ss.open_device("speck2fmodule:0"):
                pass


def test_find_samna_recognises_the_pypi_shim_without_importing_it(tmp_path, monkeypatch):
    pkg = tmp_path / "samna"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("PYPI_SAMNA = True\nraise SystemExit('the shim was imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import sys

    sys.modules.pop("samna", None)
    ok, why = find_samna()
    assert not ok and "PyPI placeholder" in why and "samna" not in sys.modules
    (pkg / "__init__.py").write_text("raise SystemExit('imported')\n")
    ok, why = find_samna()
    assert not ok and "no compiled module" in why


def test_config_conversion_to_samna_layout():
    cfg = config(core(0, 2, 4, 6, 3, k=3, weights=np.arange(54) % 100, thr=50, low=-9, bias=[1, 0, -1],
                      dests=[(1, 2)], vmem=np.arange(3 * 2 * 4).reshape(3, 2, 4)),
                 core(1, 3, 1, 2, 1, weights=[1, 1, 1]))
    sc = to_samna_config(cfg, samna_standin.make_module())
    l0 = sc.cnn_layers[0]
    w = cfg.cores[0].weights
    assert np.array_equal(np.array(l0.weights), w.transpose(0, 1, 3, 2))  # [out][in][x][y]
    assert np.array_equal(np.array(l0.neurons_initial_value), cfg.cores[0].initial_vmem.transpose(0, 2, 1))
    d = l0.dimensions
    assert (d.input_shape.size.x, d.input_shape.size.y, d.input_shape.feature_count) == (6, 4, 2)
    assert (d.output_shape.size.x, d.output_shape.size.y, d.output_shape.feature_count) == (4, 2, 3)
    assert l0.leak_enable and l0.threshold_low == -9 and l0.monitor_enable
    assert (l0.destinations[0].layer, l0.destinations[0].enable, l0.destinations[0].pooling) == (1, True, 2)
    assert not l0.destinations[1].enable and not sc.dvs_layer.pass_sensor_events
    from speckstream.compiler import ReadoutConfig

    cfg.readout = ReadoutConfig(average=32, output_mode=1, threshold=7)
    r = to_samna_config(cfg, samna_standin.make_module()).readout
    assert (r.enable, r.readout_configuration_sel, r.output_mode_sel, r.threshold, r.low_pass_filter32_not16,
            r.low_pass_filter_disable) == (True, 3, 1, 7, True, False)


async def test_samna_backend_against_the_stand_in():
    samna = samna_standin.make_module()
    before = threading.active_count()
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        dev.backend.apply_settle_s = 0
        await dev.apply(relay_cfg())
        handle = dev.backend.handle
        assert handle.chip.config.cnn_layers[0].threshold_high == 10
        assert handle.stopwatch.calls[-2:] == ["reset", "start"]
        await dev.slow_clock(20)
        assert handle.chip.slow_clk == (True, 20)
        sp = rand_spikes(3000, t=np.arange(3000))
        async with anyio.create_task_group() as n:
            res = {}

            async def consume():
                res["o"] = await collect(dev, 3000)
            n.start_soon(consume)
            await anyio.sleep(0)
            await dev.send(sp)
        o = res["o"]
        assert np.array_equal(o["x"], sp["x"]) and np.array_equal(o["c"], sp["c"])
        # the stand-in releases input at its timestamp or, already past, at once: never earlier
        assert np.all(o["t"] >= sp["t"])
        # NeuronValue replies (no timestamp on the chip) are stamped on receipt, decoded from the chip's own state
        req = codec.read_requests(0, [0, 1], [2, 3], [4, 5], (2, 8, 8))
        vals = await dev.read_neurons(req)
        assert np.array_equal(vals["vmem"], handle.chip.sim.read_neurons(req)["vmem"])
        # an output class speckstream does not know is counted, not fatal
        handle.chip.inject([samna_standin.DropNotice()])
        await anyio.sleep(0.05)
        assert dev.stats.unknown_events == 1
        cfg_v = config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10, vmem=np.full((2, 8, 8), 5)))
        await dev.apply(cfg_v)
        assert handle.chip.config.cnn_layers[0].neurons_initial_value[0][0][0] == 5
        await dev.reset_state()  # re-applies with zero initial vmem
        assert not np.any(np.array(handle.chip.config.cnn_layers[0].neurons_initial_value))
        assert threading.active_count() == before + 2  # exactly one device thread (+ the stand-in chip's own)
    assert handle.closed and threading.active_count() == before


async def test_samna_device_vanishing_mid_stream():
    samna = samna_standin.make_module()
    with pytest.raises(DeviceDisconnected, match="disconnected mid-stream"):
        async with ss.open_device("speck2fmodule", samna=samna) as dev:
            dev.backend.apply_settle_s = 0
            await dev.apply(relay_cfg())
            dev.backend.handle.chip.gone = True
            await dev.send(rand_spikes(10))
            await anyio.sleep(1)


async def test_samna_open_missing_board():
    samna = samna_standin.make_module()
    with pytest.raises(DeviceNotFound, match="no Speck2fDevKit #0 connected"):
        async with ss.open_device("speck2fdevkit:0", samna=samna):
            pass


async def test_readout_values_reach_subscribers_one_per_tick(autojump_clock):
    from speckstream.compiler import ReadoutConfig

    c = core(0, 1, 1, 1, 2, weights=[0, 10], thr=10, dests=[(12, 1)])  # fires channel 1 = class 1
    cfg = config(c, slow_clock_hz=10.0)
    cfg.readout = ReadoutConfig(average=1, errata=False, monitor=True)  # ReadoutValue events to the host
    async with ss.open_device("sim", clock="wall") as dev:
        await dev.apply(cfg)
        got = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as n:
                async def consume():
                    async for arr in dev.events("readout"):
                        got.append(arr)
                        if sum(map(len, got)) >= 3:
                            return
                n.start_soon(consume)
                await dev.send(codec.spikes(t=[50_000, 60_000], core=0))
        assert dev.backend.counts.get("spikes_not_monitored", 0) > 0  # readout monitoring stops spike output
    vals = np.concatenate(got)
    assert ((vals["value"][:1] >> 16) & 0xF).tolist() == [1] and (vals["value"][0] >> 20) & 1 == 1
    assert (vals["value"][:3] & 0xFFFF).tolist() == [2, 0, 0]  # 2 spikes in the first 100 ms window
    assert vals["class"][0] == 1 and vals["valid"][0] and vals["data"][:3].tolist() == [2, 0, 0]  # named fields
    assert np.all(np.diff(vals["t"].astype(np.int64)) >= 90_000)  # one per 100 ms tick, stamped with its time
    assert vals["t"][:3].tolist() == [100_000, 200_000, 300_000]  # the simulator's tick times, not receipt times



async def test_readout_values_on_the_virtual_clock_carry_their_tick_times():
    """Reproduced first (issue 21): on the virtual clock every ReadoutValue of a replay carried the same
    timestamp (its receipt); the simulator knows each tick's time, and the session keeps it."""
    import warnings

    from speckstream.compiler import ReadoutConfig
    from speckstream.digits import digits_dataset, digits_net, load_digits_split

    _, _, xte, yte = load_digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(digits_net(), (1, 8, 8), readout=ReadoutConfig(monitor=True), slow_clock_hz=20)
    (a, _), (b, _) = digits_dataset(xte[:2], yte[:2])
    b = b.copy()
    b["t"] += 100_000
    ev = np.concatenate([a, b])  # two samples of ~100 ms each, one after the other: ticks at 50, 100, 150 ms
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with dev.subscribe("readout", max_batches=1000) as sub:
            await dev.send(ev)
            await dev.flush()
            await anyio.sleep(0.05)
            got = []
            while (b := sub.receive_nowait()) is not None:
                got.append(b[1])
    t = np.concatenate(got)["t"]
    want = ss.simulate(cfg, ev, until=int(ev["t"].max()), output="readout")["t"]
    assert len(t) == 3 and len(set(t.tolist())) == 3  # distinct, one per tick
    assert t.tolist() == want.tolist()
