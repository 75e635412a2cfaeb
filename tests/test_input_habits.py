"""Event arrays as readers and event-vision code really write them: timestamps in seconds (floats), in ms
(integers), polarity in {-1, +1}; tonic arrays into closed_loop as into send; a progress callback that moves;
and replay(speed=None) on a wall-clock device that keeps the stream's relative time."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import CodecError, TimestampWarning
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio

XYTP_F = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<f8"), ("p", "<i1")])


def relay_cfg():
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10))


def camera(n=300, span_us=300_000, seed=0, dtype=codec.XYTP_DTYPE):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 8, n), rng.integers(0, 8, n), rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, span_us, n))
    return ev


def in_seconds(ev):
    out = ev.astype(XYTP_F)
    out["t"] = ev["t"] / 1e6
    return out


# ------------------------------------------------------------------ timestamps in seconds: refused, with the fix
def test_timestamps_in_seconds_are_refused_naming_microseconds_and_the_conversion():
    ev = in_seconds(camera())  # 0 .. 0.3 s, as some readers give them
    for call in (lambda: codec.from_xytp(ev), lambda: codec.dvs_from_xytp(ev), lambda: ss.simulate(relay_cfg(), ev),
                 lambda: codec.spikes_from_array(ev)):
        with pytest.raises(CodecError, match=r"not a whole number of microseconds.*seconds.*t_scale=1e6"):
            call()


def test_an_explicit_unit_converts_and_simulate_keeps_the_time_spread():
    ev = camera()
    sec = in_seconds(ev)
    assert np.array_equal(codec.from_xytp(sec, t_scale=1e6)["t"], ev["t"])
    out = ss.simulate(relay_cfg(), codec.from_xytp(sec, t_scale=1e6))
    assert len(out) == len(ev) and np.array_equal(out["t"], ev["t"])  # not every output at t = 0


@pytest.mark.parametrize("t", [17.5, 0.25, 1e9 + 0.5])
def test_a_fractional_microsecond_is_refused_not_rounded(t):
    ev = np.zeros(1, XYTP_F)
    ev["t"] = t
    with pytest.raises(CodecError, match=r"t\[0\] = .* not a whole number of microseconds"):
        codec.from_xytp(ev)
    spk = np.zeros(1, [("t", "f8"), ("core", "u1"), ("c", "u2"), ("x", "u2"), ("y", "u2")])
    spk["t"] = t
    with pytest.raises(CodecError, match="µs"):
        codec.as_events(spk, "spike")


def test_whole_microseconds_as_floats_are_taken_as_they_are():
    ev = camera().astype(XYTP_F)
    assert np.array_equal(codec.from_xytp(ev)["t"], camera()["t"])


async def test_send_and_replay_refuse_seconds_and_queue_nothing():
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(CodecError, match="microseconds"):
            await dev.send(in_seconds(camera()))
        with pytest.raises(CodecError, match="microseconds"):
            await dev.replay(in_seconds(camera()), speed=None)
        assert dev.stats.offered == 0


def test_a_whole_stream_shorter_than_a_millisecond_is_warned_about():
    ev = camera(span_us=300)  # 0..300 "ms" as integers: 300 µs
    with pytest.warns(TimestampWarning, match=r"spans less than 1 ms.*milliseconds or seconds"):
        ss.simulate(relay_cfg(), ev)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TimestampWarning)
        ss.simulate(relay_cfg(), camera())  # 300 ms: no word
        ss.simulate(relay_cfg(), camera(span_us=1))  # everything at t = 0: "now", deliberate


async def test_a_live_chunk_sent_is_not_warned_about_but_a_replayed_stream_is():
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        with warnings.catch_warnings():
            warnings.simplefilter("error", TimestampWarning)
            await dev.send(camera(span_us=500))  # a 0.5 ms chunk of a live camera is normal
        with pytest.warns(TimestampWarning):
            await dev.replay(camera(span_us=500), speed=None)


# ------------------------------------------------------------------ polarity -1 / +1
@given(st.lists(st.sampled_from([-1, 1]), min_size=1, max_size=40))
@settings(max_examples=30, deadline=None)
def test_polarity_minus_one_plus_one_is_off_on(ps):
    ev = np.zeros(len(ps), [("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")])
    ev["p"] = ps
    ev["t"] = np.arange(len(ps))
    want = (np.asarray(ps) > 0).astype(int)
    assert np.array_equal(codec.from_xytp(ev)["c"], want)
    assert np.array_equal(codec.dvs_from_xytp(ev)["p"], want)  # -1 was "on" here before: != 0


def test_simulate_gives_the_same_for_minus_one_and_zero_polarity():
    ev01 = camera()
    evpm = ev01.copy()
    evpm["p"] = np.where(ev01["p"] > 0, 1, -1)
    assert np.array_equal(ss.simulate(relay_cfg(), evpm), ss.simulate(relay_cfg(), ev01))


@pytest.mark.parametrize("ps", [[-1, 0, 1], [-3, 1], [0, -2]])
def test_other_negative_polarities_name_p_and_the_fix(ps):
    ev = np.zeros(len(ps), [("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1")])
    ev["p"] = ps
    with pytest.raises(CodecError, match=r"p\[\d\] = -\d.*polarity.*p = \(p > 0\)"):
        codec.from_xytp(ev)


# ------------------------------------------------------------------ closed_loop takes what send takes
async def test_closed_loop_takes_tonic_arrays_like_send():
    seen = []
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        ev = camera(20, span_us=1)  # all at t = 0: "now"
        res = await dev.closed_loop(lambda b: seen.append(len(b)) or None, ev, iterations=1, timeout_s=0.5)
    assert res.iterations == 1 and seen == [20]


# ------------------------------------------------------------------ progress that moves
@pytest.mark.parametrize("source", ["array", "npy"])
async def test_replay_progress_moves_through_an_array_or_npy_file(source, tmp_path):
    n = 200_000
    ev = camera(n, span_us=2_000_000)
    src = ev
    if source == "npy":
        src = tmp_path / "ev.npy"
        np.save(src, ev)
    calls = []
    async with ss.open_device("sim", clock="virtual", batch_size=10_000) as dev:
        await dev.apply(relay_cfg())
        await dev.replay(src, speed=None, progress=lambda k, total: calls.append((k, total)))
    done = [k for k, _ in calls]
    assert len(calls) >= 10 and done == sorted(done) and done[-1] == n
    assert all(total == n for _, total in calls)


# ------------------------------------------------------------------ speed=None on a wall-clock device
async def test_replay_as_fast_as_possible_on_the_wall_clock_keeps_relative_time(autojump_clock):
    t = np.array([0, 1000, 5000, 9000])
    sp = codec.spikes(t=t, core=0, c=0, x=[0, 1, 2, 3], y=0)
    async with ss.open_device("sim") as dev:  # the wall clock (here trio's mock clock), like a devkit
        await dev.apply(relay_cfg())
        with dev.subscribe("spike") as sub:
            res = await dev.replay(sp, speed=None)
            sub.close()
            out = np.concatenate([b async for b in sub])
    got = out["t"].astype(np.int64)
    assert np.array_equal(got - got[0], t)  # not one column at t = 0
    assert res.duration_s >= 0.009


def test_the_residual_example_keeps_time_and_counts_what_simulate_counts(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "residual_example", Path(__file__).resolve().parent.parent / "examples" / "residual_nmnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    plotted = []
    real = mod.spike_raster
    monkeypatch.setattr(mod, "spike_raster", lambda spikes, *a, **k: plotted.append(spikes) or real(spikes, *a, **k))
    counts = mod.main(tmp_path, samples=2)
    t = plotted[0]["t"].astype(np.int64)
    assert t.max() - t.min() > 200_000  # the raster spans the sample's 300 ms, not one column at t = 0
    from speckstream.demo import nmnist_like, residual_net

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(residual_net(), input_shape=(2, 34, 34))
    spikes, starts = nmnist_like(n_samples=2)
    out_core = cfg.output_cores[0]
    for i, t0 in enumerate(starts):
        sample = spikes[(spikes["t"] >= t0) & (spikes["t"] < t0 + 300_000)].copy()
        sample["t"] -= np.uint64(t0)
        out = ss.simulate(cfg, sample)
        out = out[out["core"] == out_core]
        assert np.array_equal(counts[i], np.bincount(out["c"], minlength=counts.shape[1]))

