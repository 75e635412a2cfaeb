"""ss.profile: exact SynOps (equal to the simulator's own update count), peak SynOps/s over sliding windows on a
hand-computed stream, the bandwidth warning, sinabs' estimate beside it, and the energy model's arithmetic."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.compiler.validate import find_problems
from speckstream.sim.energy import IDLE_RAILS_W, RAILS, EnergyModel
from speckstream.profiling import BandwidthWarning, ProfileError, profile, synops_per_event
from speckstream.sim import ChipSimulator
from speckstream.testing.configs import config, core


def test_synops_per_event_counts_the_kernel_taps_on_the_map():
    cc = core(0, 1, 4, 4, 3, k=3, padding=(1, 1))  # 3 out channels, 3x3 kernel, 4x4 map, padding 1
    per = synops_per_event(cc)
    # a corner input reaches 2x2 of the 3x3 taps on the map, an edge 2x3, the middle 3x3; x 3 channels
    assert per[0, 0] == 3 * 4 and per[0, 1] == 3 * 6 and per[1, 1] == 3 * 9
    strided = synops_per_event(core(0, 1, 5, 5, 2, k=3, stride=(2, 2)))  # 2x2 output map
    assert strided[2, 2] == 2 * 4 and strided[0, 0] == 2 and strided[1, 1] == 2


def test_window_peaks_on_a_hand_computed_stream():
    cfg = config(core(0, 1, 4, 4, 2, weights=np.zeros(2)))  # 1x1 kernel, 2 channels: 2 SynOps per event
    t = [0, 100, 200, 5_000, 5_000, 5_000, 5_500, 12_000]
    ev = codec.spikes(t=t, core=0, c=0, x=1, y=1)
    p = profile(cfg, ev)
    c0 = p.cores[0]
    assert c0.events_in == 8 and c0.synops == 16 and c0.spikes_out == 0
    # 1 ms: the busiest window starts at 5000 µs and holds 4 events (8 SynOps) -> 8000 SynOps/s
    assert c0.peak_synops_per_s[1000] == pytest.approx(8 * 1e6 / 1000) and c0.peak_at_us[1000] == 5_000
    # 10 ms: the window from 0 holds the first 7 events (14 SynOps) -> 1400 SynOps/s
    assert c0.peak_synops_per_s[10_000] == pytest.approx(14 * 1e6 / 10_000) and c0.peak_at_us[10_000] == 0
    assert p.duration_us == 12_000 and c0.sinabs_synops == 16


def test_a_window_over_the_bandwidth_limit_is_warned_naming_the_core_and_the_time():
    cfg = config(core(0, 1, 4, 4, 2, weights=np.zeros(2)))
    ev = codec.spikes(t=[0, 100, 200, 5_000, 5_000, 5_000, 5_500, 12_000], core=0, c=0, x=1, y=1)
    with pytest.warns(BandwidthWarning, match=r"core 0 .* 8e\+03 SynOps/s over the 1 ms from 5.0 ms"):
        p = profile(cfg, ev, synops_limit=5_000)
    assert p.over_limit == [(0, 1000, 5000, 8000.0)] and "exceeded by core 0" in p.table()
    with warnings.catch_warnings():
        warnings.simplefilter("error", BandwidthWarning)
        assert profile(cfg, ev, synops_limit=10_000).over_limit == []
    with pytest.raises(ProfileError, match="synops_limit"):
        profile(cfg, ev, synops_limit=-1)
    with pytest.raises(ProfileError, match="windows_us"):
        profile(cfg, ev, windows_us=(0,))


@st.composite
def _networks(draw):
    """Two or three cores with kernels, strides, padding and pooling, spikes pooled off maps included."""
    k1 = draw(st.sampled_from([1, 2, 3]))
    s1 = draw(st.sampled_from([1, 2]))
    p1 = draw(st.integers(0, k1 - 1))
    H = draw(st.integers(4, 9))
    c1 = core(0, 2, H, H, 3, k=k1, stride=(s1, s1), padding=(p1, p1), thr=3, low=-20,
              weights=np.asarray(draw(st.lists(st.integers(-2, 4), min_size=6 * k1 * k1, max_size=6 * k1 * k1))))
    pool = draw(st.sampled_from([1, 2])) if c1.output_shape[1] >= 2 else 1
    Hd = c1.output_shape[1] // pool
    k2 = draw(st.sampled_from([1, 3]))
    c2 = core(1, 3, Hd, Hd, 2, k=k2, padding=((k2 - 1) // 2,) * 2, thr=2, low=-10,
              weights=np.asarray(draw(st.lists(st.integers(-1, 3), min_size=6 * k2 * k2, max_size=6 * k2 * k2))))
    c1.destinations.append(ss.compiler.Destination(1, pool))
    n = draw(st.integers(1, 60))
    t = np.sort(np.asarray(draw(st.lists(st.integers(0, 20_000), min_size=n, max_size=n))))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    ev = codec.spikes(t=t, core=0, c=rng.integers(0, 2, n), x=rng.integers(0, H, n), y=rng.integers(0, H, n))
    cfg = config(c1, c2)
    assume(not find_problems(cfg))
    return cfg, ev


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_networks())
def test_profile_synops_equal_the_simulators_update_count(net):
    cfg, ev = net
    p = profile(cfg, ev)
    sim = ChipSimulator(cfg)
    sim.feed(ev)
    assert p.synops == sim.stats["synaptic_updates"]
    assert {c: p.cores[c].synops for c in cfg.cores} == sim.stats["synops"]  # per core, too
    assert p.cores[0].events_in == len(ev)
    ref = ChipSimulator(cfg, options=ss.sim.SimOptions(engine="reference"))
    ref.feed(ev)
    assert p.synops == ref.stats["synaptic_updates"] and ref.stats["synops"] == sim.stats["synops"]
    mon = ChipSimulator(ss.profiling.monitor_all(cfg))
    mon.feed(ev)
    assert {c: p.cores[c].spikes_out for c in cfg.cores} == mon.stats["spikes_out"]


def test_profile_of_sinabs_gesture_net_on_a_real_dvs_clip_matches_the_engine_and_sinabs_estimate_differs():
    from speckstream.testing import sinabs_models as sm
    from speckstream.testing import streams

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(sm.gesture_snn(), sm.GESTURE_INPUT, dvs=True)
    clip = streams.dvs128_clip()
    p = ss.profile(cfg, clip)
    from speckstream.codec.inputs import to_input

    sim = ChipSimulator(cfg)
    sim.feed_dvs(to_input(cfg, clip)[1])
    assert p.synops == sim.stats["synaptic_updates"] and len(p.cores) == 9
    assert p.cores[cfg.layer_order[0]].events_in == len(clip)
    # sinabs' estimate ignores the borders: it overestimates the padded small maps deep in the network
    deep = p.cores[cfg.layer_order[6]]
    assert deep.sinabs_synops > 2 * deep.synops
    assert all(c.peak_synops_per_s[1000] >= c.peak_synops_per_s[10_000] for c in p.cores.values())
    json.dumps(p.to_dict())  # plain data


def test_the_energy_model_adds_idle_and_dynamic_energy_with_its_sources():
    m = EnergyModel()
    assert m.idle_uj(1_000_000) == pytest.approx(420.0)  # 0.42 mW for 1 s = 420 µJ
    assert m.dynamic_uj(1_000_000, 0) == pytest.approx(26.0)  # 1 M SynOps x 26 pJ
    rails = m.rails_w(0, 0)
    assert list(rails) == list(RAILS) and rails == IDLE_RAILS_W
    busy = m.rails_w(1e8, 0)
    assert busy["VDD_LOGIC"] - rails["VDD_LOGIC"] == pytest.approx(1.3e-3)  # half of 1e8 x 26 pJ/s
    assert "Nat. Commun. 15:4464" in m.sources["idle_w"] and "estimate" in m.sources["synop_j"]
    cfg = config(core(0, 1, 4, 4, 2, weights=np.zeros(2)))
    p = profile(cfg, codec.spikes(t=[0, 1000], core=0, c=0, x=1, y=1), energy=m.with_constants(idle_w=0.0))
    assert p.energy_uj == pytest.approx(4 * 26e-6) and p.mean_power_w == pytest.approx(4 * 26e-12 / 1e-3)
    with pytest.raises(ValueError, match="synop_j"):
        EnergyModel(synop_j=-1)


def test_an_energy_model_saved_by_hwcheck_is_loaded_back(tmp_path):
    m = EnergyModel().with_constants(synop_j=3e-12, measured=True, sources={"synop_j": "hwcheck 2026-12-06"})
    m.save(tmp_path / "energy.json")
    assert EnergyModel.load(tmp_path / "energy.json") == m


@pytest.mark.parametrize("executor", ["serial", None])
def test_evaluate_gives_each_samples_activity_and_energy_as_profile_does(executor):
    from speckstream.digits import digits_dataset, digits_net, load_digits_split

    _, _, xte, yte = load_digits_split()
    data = digits_dataset(xte[:12], yte[:12], seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(digits_net(), (1, 8, 8))
    plain = ss.evaluate(cfg, data, executor="serial", progress=False)
    res = ss.evaluate(cfg, data, executor=executor, progress=False, activity=True, chunk_size=5)
    assert np.array_equal(res.predictions, plain.predictions) and plain.activity is None
    act = res.activity
    assert act.cores == cfg.layer_order and act.synops.shape == (12, 3)
    for i in (0, 7, 11):
        p = ss.profile(cfg, data[i][0])
        assert act.synops[i].tolist() == [p.cores[c].synops for c in cfg.layer_order]
        assert act.spikes_out[i].tolist() == [p.cores[c].spikes_out for c in cfg.layer_order]
        assert act.peak_synops_per_s[i].tolist() == [p.cores[c].peak_synops_per_s[1000] for c in cfg.layer_order]
        assert act.energy_uj[i] == pytest.approx(p.energy_uj)
    assert act.energy_per_inference_uj == pytest.approx(act.energy_uj.mean())
    assert "energy per inference" in act.table() and "SynOps mean" in act.table()


def test_the_activity_meter_estimates_rail_power_from_the_simulators_counters():
    from speckstream.sim.energy import ActivityMeter

    m = ActivityMeter()
    first = m.sample(0, 0, 0)
    assert first.estimated and first.rails == IDLE_RAILS_W  # no interval yet: idle
    s = m.sample(1_000_000, 100_000_000, 0)  # 1e8 SynOps in one second
    assert s.rails["VDD_LOGIC"] - IDLE_RAILS_W["VDD_LOGIC"] == pytest.approx(1.3e-3)
    assert s.total_w == pytest.approx(sum(IDLE_RAILS_W.values()) + 2.6e-3)


@pytest.mark.anyio
async def test_the_runtimes_sim_device_warns_while_it_runs_when_a_core_exceeds_the_bandwidth(anyio_backend):
    from speckstream.sim import SimOptions
    from speckstream.sim.bandwidth import BandwidthWarning as Warned

    cfg = config(core(0, 1, 4, 4, 2, weights=np.zeros(2)))  # 2 SynOps per event
    busy = codec.spikes(t=np.r_[np.arange(0, 2000, 100), 5000 + np.arange(40)], core=0, c=0, x=1, y=1)
    # the densest millisecond (5.000-5.999 ms) holds 40 events: 80 SynOps in 1 ms = 8e4 SynOps/s
    for limit, warned in ((5e4, True), (1e5, False)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with ss.open_device("sim", clock="virtual", sim_options=SimOptions(synops_limit=limit)) as dev:
                await dev.apply(cfg)
                await dev.send(busy)
                await dev.flush()
                exceeded = dev.stats.device.get("bandwidth_exceeded", [])
        msgs = [str(w.message) for w in caught if issubclass(w.category, Warned)]
        assert bool(msgs) == warned and bool(exceeded) == warned
        if warned:
            assert exceeded[0][:3] == (0, 1000, 5000) and exceeded[0][3] == pytest.approx(8e4)
            assert "core 0 runs 8e+04 SynOps/s over the 1 ms from 5.0 ms" in msgs[0] and "sim:speck2f" in msgs[0]
    with pytest.raises(ValueError, match="synops_limit"):
        SimOptions(synops_limit=0)
