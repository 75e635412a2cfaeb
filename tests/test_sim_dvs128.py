"""The simulator at DVS scale: a 128x128 sensor through the DVS stage into all nine cores.

* the stage (polarity, pooling, crop, mirrors, swap) against a per-event reading of its documented order, on a
  128x128 sensor;
* small networks behind a random 128x128 stage, Cython engine (every kernel) == reference, spike for spike;
* sinabs' trained DVS-Gesture network, deployed as its example deploys it (9 cores, dvs=True), with every core
  monitored and its neurons started near threshold so that every layer fires: the engine on every kernel ==
  the reference engine, spike for spike, vmem for vmem.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.compiler.config import ChipConfig, DVSConfig
from speckstream.sim import KERNELS, ChipSimulator, SimOptions
from speckstream.sim import dvs as dvs_module
from speckstream.sim.dvs import DVS_LAYER, dvs_stage, dvs_to_spikes, dvs_to_spikes_numpy
from speckstream.testing.configs import config, core

SENSOR = 128


def sensor_events(n: int, seed: int, size: int = SENSOR) -> np.ndarray:
    """A bar sweeping across the sensor plus 20 % noise, both polarities (DVS_EVENT_DTYPE, t in µs)."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, codec.DVS_EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 20_000, n))
    x = (ev["t"] * size // 20_000 + rng.integers(-2, 3, n)).clip(0, size - 1)
    noise = rng.random(n) < 0.2
    x[noise] = rng.integers(0, size, noise.sum())
    ev["x"], ev["y"], ev["p"] = x, rng.integers(0, size, n), rng.integers(0, 2, n)
    return ev


def stage_by_hand(events: np.ndarray, dvs: DVSConfig) -> list[tuple[int, int, int, int]]:
    """The stage event by event, in its documented order: polarity select / merge -> pooling -> crop -> mirror
    x / mirror y -> swap; (t, c, x, y) of what leaves it."""
    top, bottom, left, right = dvs.roi()
    out = []
    for t, x, y, p in zip(events["t"].tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        if not (dvs.on_channel if p == 1 else dvs.off_channel):
            continue
        c = 0 if dvs.merge_polarities else p
        x, y = x // dvs.pooling[1], y // dvs.pooling[0]
        if not (top <= y < bottom and left <= x < right):
            continue
        x, y = x - left, y - top
        if dvs.flip_x:
            x = right - left - 1 - x
        if dvs.flip_y:
            y = bottom - top - 1 - y
        if dvs.swap_xy:
            x, y = y, x
        out.append((t, c, x, y))
    return out


@st.composite
def stages(draw, max_side: int | None = None):
    pool = (draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 2, 4])))
    H, W = SENSOR // pool[0], SENSOR // pool[1]
    top = draw(st.integers(0, H - 1))
    left = draw(st.integers(0, W - 1))
    hi_h = H if max_side is None else min(H, top + max_side)
    hi_w = W if max_side is None else min(W, left + max_side)
    crop = (top, draw(st.integers(top + 1, hi_h)), left, draw(st.integers(left + 1, hi_w)))
    if max_side is None and draw(st.booleans()):
        crop = None
    on, off = draw(st.sampled_from([(True, True), (True, False), (False, True)]))
    return DVSConfig(input_size=(SENSOR, SENSOR), pooling=pool, crop=crop, merge_polarities=draw(st.booleans()),
                     flip_x=draw(st.booleans()), flip_y=draw(st.booleans()), swap_xy=draw(st.booleans()),
                     on_channel=on, off_channel=off)


@settings(max_examples=150, deadline=None)
@given(dvs=stages(), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400))
def test_stage_at_128x128_matches_the_stage_event_by_event(dvs, seed, n):
    ev = sensor_events(n, seed)
    got = dvs_stage(ev, dvs)
    assert (got["core"] == DVS_LAYER).all()
    assert list(zip(*(got[f].tolist() for f in ("t", "c", "x", "y")))) == stage_by_hand(ev, dvs)
    C, H, W = dvs.output_shape()
    assert (got["c"] < C).all() and (got["y"] < H).all() and (got["x"] < W).all()


@pytest.mark.skipif(dvs_module._dvs_spikes is None, reason="the engine extension is not built")
@settings(max_examples=150, deadline=None)
@given(dvs=stages(), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), dests=st.sampled_from([[0], [3, 1], []]))
def test_the_stage_in_one_c_pass_equals_the_numpy_stage(dvs, seed, n, dests):
    dvs.destinations = dests
    ev = sensor_events(n, seed)
    got, want = dvs_to_spikes(ev, dvs), dvs_to_spikes_numpy(ev, dvs)
    assert got.dtype == want.dtype == codec.SPIKE_DTYPE and np.array_equal(got, want)
    ro = ev.copy()
    ro.flags.writeable = False  # a recording loaded read-only (np.load mmap) goes through as well
    assert np.array_equal(dvs_to_spikes(ro[::2], dvs), dvs_to_spikes_numpy(ev[::2], dvs))


@st.composite
def networks_behind_a_stage(draw):
    """One or two cores behind a random 128x128 stage (its output at most 16 x 16 after pooling and crop)."""
    dvs = draw(stages(max_side=16))
    C, H, W = dvs.output_shape()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.sampled_from([1, 2, 3]))
    pad = draw(st.integers(0, k - 1))
    if H + 2 * pad < k or W + 2 * pad < k:
        pad = k - 1
    cout = draw(st.sampled_from([2, 16, 33]))
    thr = draw(st.integers(1, 60))
    two = draw(st.booleans()) and (H + 2 * pad - k + 1) >= 2 and (W + 2 * pad - k + 1) >= 2
    c0 = core(0, C, H, W, cout, k=k, padding=(pad, pad), weights=rng.integers(-40, 100, cout * C * k * k),
              thr=thr, low=-draw(st.integers(1, 200)), rtz=draw(st.booleans()),
              dests=[(1, 2)] if two else [], monitor=True)
    cores = [c0]
    if two:
        _, h1, w1 = c0.output_shape
        c1 = core(1, cout, h1 // 2, w1 // 2, 4, k=1, weights=rng.integers(-20, 80, 4 * cout), thr=40, low=-50)
        cores.append(c1)
    cfg = config(*cores)
    dvs.destinations = [0]
    cfg.dvs = dvs
    return cfg, sensor_events(draw(st.integers(0, 300)), draw(st.integers(0, 2**32 - 1)))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=40, deadline=None)
@given(case=networks_behind_a_stage())
def test_networks_behind_a_128x128_stage_engine_equals_reference(kernel, case):
    cfg, ev = case
    a = ChipSimulator(cfg, options=SimOptions(engine="cython", kernel=kernel))
    b = ChipSimulator(cfg, options=SimOptions(engine="reference"))
    assert np.array_equal(a.feed_dvs(ev), b.feed_dvs(ev))
    for c in cfg.cores:
        assert np.array_equal(a.vmem(c), b.vmem(c))
    assert a.stats == b.stats


@pytest.fixture(scope="module")
def gesture():
    """sinabs' trained DVS-Gesture CNN compiled as its example deploys it; every core monitored and started
    near threshold (seeded), so that a few hundred sensor events reach every layer."""
    pytest.importorskip("sinabs")
    import speckstream as ss
    from speckstream.testing.sinabs_models import gesture_snn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(gesture_snn(), input_shape=(2, 128, 128), dvs=True)
    cfg = ChipConfig.from_msgpack(cfg.to_msgpack())
    rng = np.random.default_rng(0)
    for cc in cfg.cores.values():
        cc.monitor = True
        cc.initial_vmem = rng.integers(0, cc.threshold_high, cc.output_shape).astype(np.int16)
    return cfg


def test_the_gesture_network_is_nine_cores_behind_a_128x128_stage(gesture):
    assert len(gesture.cores) == 9 and gesture.dvs.input_size == (128, 128) and gesture.dvs.destinations


@pytest.mark.parametrize("kernel", KERNELS)
def test_gesture_network_engine_equals_reference_spike_for_spike(gesture, kernel):
    ev = sensor_events(250, seed=3)
    a = ChipSimulator(gesture, options=SimOptions(engine="cython", kernel=kernel))
    b = ChipSimulator(gesture, options=SimOptions(engine="reference"))
    for s in (a, b):
        s.reset_state(to_initial=True)
    out_a, out_b = a.feed_dvs(ev), b.feed_dvs(ev)
    assert np.array_equal(out_a, out_b)
    fired = set(np.unique(out_a["core"]).tolist())
    assert fired == set(gesture.cores), f"layers that fired: {sorted(fired)}"  # every layer took part
    for c in gesture.cores:
        assert np.array_equal(a.vmem(c), b.vmem(c)), c
    assert a.stats == b.stats and sum(a.stats["clamps"].values()) > 0
