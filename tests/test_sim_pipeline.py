"""One stream on two threads (SimOptions(threads=2), sim/pipeline.py): identical to the single-thread engine,
spike for spike - outputs in the same order, vmem, every counter, readout spikes, the index of a bad input and
the outputs before it, the cascade limit - on random chain networks (with leak ticks between pipelined segments),
on every kernel, and on sinabs' 9-core DVS-Gesture network; networks that are not chains run on one thread."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec import AddressError
from speckstream.sim import KERNELS, ChipSimulator, SimOptions
from speckstream.sim import pipeline
from speckstream.testing.configs import config, core

from test_sim import networks

pytestmark = pytest.mark.skipif(not KERNELS, reason="the Cython engine is not built")


@pytest.fixture
def small_segments(monkeypatch):
    """Pipeline feeds of a few inputs (the defaults wait for thousands), after a calibration of two (the same
    for every example hypothesis draws: nothing else is patched)."""
    monkeypatch.setattr(pipeline, "PIPELINE_MIN_INPUTS", 3)
    monkeypatch.setattr(pipeline, "CALIBRATION_INPUTS", 2)


def run_both(cfg, feeds, kernel=None, hz=0, leak_fires=False, until=None):
    """The same feeds through a one-thread and a two-thread simulator; both results (outputs per feed, vmem,
    stats, readout spikes)."""
    got = []
    for threads in (1, 2):
        s = ChipSimulator(cfg, options=SimOptions(kernel=kernel, threads=threads, leak_fires=leak_fires))
        if hz or not cfg.slow_clock_hz:
            s.set_slow_clock(hz)
        outs = [s.feed(f) for f in feeds]
        if until is not None:
            outs.append(s.advance_to(until))
        got.append((outs, {c: s.vmem(c) for c in cfg.cores}, s.stats, s.readout_spikes + [s.take_readout()], s))
    return got


def assert_same(one, two):
    for a, b in zip(one[0], two[0]):
        assert np.array_equal(a, b)
    for c in one[1]:
        assert np.array_equal(one[1][c], two[1][c]), c
    assert one[2] == two[2]
    assert len(one[3]) == len(two[3]) and all(np.array_equal(a, b) for a, b in zip(one[3], two[3]))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=networks(), leak_fires=st.booleans(), parts=st.integers(1, 3))
def test_random_chains_on_two_threads_equal_one_thread(small_segments, kernel, case, leak_fires, parts):
    cfg, ev, hz = case
    feeds = np.array_split(ev, parts)
    one, two = run_both(cfg, feeds, kernel=kernel, hz=hz, leak_fires=leak_fires, until=8000)
    assert_same(one, two)
    if len(cfg.cores) >= 2 and not hz and len(ev) // parts >= 5:
        assert two[4]._engine.pipeline.runs > 0  # a chain, feeds long enough (2 to calibrate, 3 more): pipelined


def chain3(monitor=True, last_to_readout=False):
    rng = np.random.default_rng(0)
    c0 = core(0, 2, 10, 10, 16, k=3, padding=(1, 1), weights=rng.integers(-20, 60, 16 * 2 * 9), thr=50, low=-60,
              dests=[(1, 2)], monitor=monitor)
    c1 = core(1, 16, 5, 5, 8, k=3, padding=(1, 1), weights=rng.integers(-10, 40, 8 * 16 * 9), thr=60, low=-60,
              dests=[(2, 1)], monitor=monitor)
    c2 = core(2, 8, 5, 5, 4, k=5, weights=rng.integers(-5, 30, 4 * 8 * 25), thr=40, low=-40,
              dests=[(12, 1)] if last_to_readout else [], monitor=True)
    cfg = config(c0, c1, c2)
    if last_to_readout:  # the readout counts the last layer's spikes per 100 ms tick
        from speckstream.compiler.config import ReadoutConfig

        cfg.readout, cfg.slow_clock_hz = ReadoutConfig(average=1), 10.0
    return cfg


def stream(n, seed=0, size=10):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=np.sort(rng.integers(0, 10 * n, n)), core=0, c=rng.integers(0, 2, n),
                        x=rng.integers(0, size, n), y=rng.integers(0, size, n))


@pytest.mark.parametrize("monitor", [True, False])
@pytest.mark.parametrize("readout", [True, False])
def test_a_long_stream_with_default_thresholds(monitor, readout):
    cfg = chain3(monitor, readout)
    ev = stream(30_000)
    one, two = run_both(cfg, [ev[:5000], ev[5000:]])
    assert_same(one, two)
    assert sum(len(o) for o in one[0]) > 1000 and two[4]._engine.pipeline.runs > 0
    assert not readout or (len(one[3][-1]) >= 2 and (one[3][-1]["value"] & 0xFFFF).sum() > 0)  # readout values


def test_an_out_of_order_stream_with_ticks_equals_one_thread(small_segments):
    """Inputs out of time order are released at the running maximum of their timestamps: the segments between
    ticks are cut at those release times (a search over the raw timestamps assumed them sorted)."""
    cfg = chain3()
    cfg.slow_clock_hz = 1000.0
    ev = stream(3000)
    rng = np.random.default_rng(1)
    swap = rng.integers(0, len(ev) - 40, 200)
    ev["t"][swap] += rng.integers(1000, 20_000, 200).astype(np.uint64)  # late stamps among earlier ones
    one, two = run_both(cfg, [ev[:1000], ev[1000:]], hz=1000.0)
    assert_same(one, two)
    assert two[4]._engine.pipeline.runs > 0


def test_a_bad_input_has_the_same_index_and_earlier_outputs(small_segments):
    cfg = chain3()
    ev = stream(400)
    ev["x"][250] = 10  # off the 10 x 10 input map
    caught = []
    for threads in (1, 2):
        s = ChipSimulator(cfg, options=SimOptions(threads=threads))
        with pytest.raises(AddressError, match="input spike 250 "):
            s.feed(ev)
        caught.append((s.pending_outputs, s.vmem(2), s.stats))
    assert np.array_equal(caught[0][0], caught[1][0]) and np.array_equal(caught[0][1], caught[1][1])
    assert caught[0][2] == caught[1][2]


def test_the_cascade_limit_is_the_same(small_segments):
    cfg = chain3()
    for threads in (1, 2):
        s = ChipSimulator(cfg, options=SimOptions(threads=threads, max_cascade=5))
        with pytest.raises(RuntimeError, match="did not go quiet after 5 internal events"):
            s.feed(stream(400))


def test_ticks_between_segments_leak_and_fire(small_segments):
    cfg = chain3()
    for cc in cfg.cores.values():
        cc.biases = np.full(cc.output_shape[0], 7, np.int16)
        cc.leak_enable = True
    for leak_fires in (False, True):
        one, two = run_both(cfg, [stream(600)], hz=2000, leak_fires=leak_fires, until=9000)
        assert_same(one, two)
        assert one[2]["ticks"] > 5 and two[4]._engine.pipeline.runs > 5  # segments between ticks


def test_what_is_not_a_chain_runs_on_one_thread():
    a = core(0, 2, 6, 6, 4, k=3, padding=(1, 1), weights=np.ones(4 * 2 * 9), thr=5, dests=[(1, 1), (2, 1)])
    b = core(1, 4, 6, 6, 2, k=1, weights=np.ones(8), thr=3)
    c = core(2, 4, 6, 6, 2, k=1, weights=np.ones(8), thr=3)
    assert pipeline.chain_of(config(a, b, c)) is None  # fan-out
    assert pipeline.chain_of(config(b)) is None  # one core
    assert pipeline.chain_of(chain3()) == [0, 1, 2]
    s = ChipSimulator(config(a, b, c), options=SimOptions(threads=2))
    assert s._engine.pipeline is None
    one, two = run_both(config(a, b, c), [stream(5000, size=6)])
    assert_same(one, two)


def test_inputs_into_another_core_run_on_one_thread(small_segments):
    cfg = chain3()
    ev = stream(300)
    ev["core"][::7] = 1  # straight into the second layer
    ev["c"][::7] %= 16
    ev["x"][::7] %= 5
    ev["y"][::7] %= 5
    one, two = run_both(cfg, [ev])
    assert_same(one, two)


@pytest.mark.parametrize("bad", [0, 3, "2", 2.0, True])
def test_threads_option_is_checked(bad):
    with pytest.raises(ValueError, match="threads must be 1 or 2"):
        SimOptions(threads=bad)


def test_gesture_network_on_two_threads_equals_one_thread():
    pytest.importorskip("sinabs")
    import speckstream as ss
    from speckstream.compiler.config import ChipConfig
    from speckstream.testing.sinabs_models import gesture_snn

    from test_sim_dvs128 import sensor_events

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(gesture_snn(), input_shape=(2, 128, 128), dvs=True)
    mon = ChipConfig.from_msgpack(cfg.to_msgpack())
    for cc in mon.cores.values():
        cc.monitor = True
    assert pipeline.chain_of(mon) is not None
    ev = sensor_events(40_000, seed=5)
    outs = []
    for threads in (1, 2):
        s = ChipSimulator(mon, options=SimOptions(threads=threads))
        outs.append((s.feed_dvs(ev[:10_000]), s.feed_dvs(ev[10_000:]), s.stats,
                     [s.vmem(c) for c in sorted(mon.cores)]))
    (a1, a2, sa, va), (b1, b2, sb, vb) = outs
    assert np.array_equal(a1, b1) and np.array_equal(a2, b2) and sa == sb
    assert all(np.array_equal(x, y) for x, y in zip(va, vb))
    assert len(set(np.unique(a2["core"]).tolist())) >= 5  # deep layers took part
