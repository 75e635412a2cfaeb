"""Golden tests for the software chip: hand-computed expectations, not the simulator's own output."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec import AddressError
from speckstream.sim import KERNELS, ChipSimulator, SimOptions

from speckstream.testing.configs import config, core

# the reference, and the Cython engine with each inner loop this CPU runs (avx512 / avx2 / portable)
ENGINES = ["reference", *(f"cython:{k}" for k in KERNELS)]


def options(engine, **kw):
    kind, _, kernel = engine.partition(":")
    return SimOptions(engine=kind, kernel=kernel or None, **kw)


def sim(cfg, engine, **kw):
    return ChipSimulator(cfg, options=options(engine, **kw))


def feed(s, t, c=0, x=0, y=0, core_id=0):
    return s.feed(codec.spikes(t=t, core=core_id, c=c, x=x, y=y))


@pytest.mark.parametrize("engine", ENGINES)
def test_single_neuron_fires_on_the_nth_input_subtract(engine):
    s = sim(config(core(0, 1, 1, 1, 1, weights=3, thr=10)), engine)
    out = feed(s, t=np.arange(1, 11) * 100)
    # v: 3 6 9 12->2* 5 8 11->1* 4 7 10->0*
    assert out["t"].tolist() == [400, 700, 1000]
    assert s.vmem(0).item() == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_return_to_zero(engine):
    s = sim(config(core(0, 1, 1, 1, 1, weights=3, thr=10, rtz=True)), engine)
    out = feed(s, t=np.arange(1, 11) * 100)
    # v: 3 6 9 12->0* 3 6 9 12->0* 3 6
    assert out["t"].tolist() == [400, 800] and s.vmem(0).item() == 6


@pytest.mark.parametrize("engine", ENGINES)
def test_weight_above_threshold_fires_once_per_event(engine):
    s = sim(config(core(0, 1, 1, 1, 1, weights=100, thr=30)), engine)
    out = feed(s, t=[1, 2])
    assert len(out) == 2 and s.vmem(0).item() == 140  # 100-30=70, 170-30=140: one spike each


@pytest.mark.parametrize("engine", ENGINES)
def test_floor_at_threshold_low(engine):
    s = sim(config(core(0, 1, 1, 1, 1, weights=-5, thr=10, low=-12)), engine)
    vals = []
    for t in range(4):
        feed(s, t=[t])
        vals.append(s.vmem(0).item())
    assert vals == [-5, -10, -12, -12]


@pytest.mark.parametrize("engine", ENGINES)
def test_stride_two_with_padding_uses_cross_correlation_orientation(engine):
    w = (10 * np.arange(3)[:, None] + np.arange(3)[None, :] + 1).reshape(1, 1, 3, 3)  # W[ky,kx] = 10ky+kx+1
    s = sim(config(core(0, 1, 5, 5, 1, k=3, stride=(2, 2), padding=(1, 1), weights=w, thr=1000)), engine)
    assert s.config.cores[0].output_shape == (1, 3, 3)
    feed(s, t=[0], x=1, y=0)
    v = s.vmem(0)[0]
    # oy = (0+1-ky)/2 -> ky=1, oy=0; ox = (1+1-kx)/2 -> kx=0: ox=1, kx=2: ox=0
    expected = np.zeros((3, 3), int)
    expected[0, 1] = w[0, 0, 1, 0]
    expected[0, 0] = w[0, 0, 1, 2]
    assert np.array_equal(v, expected)
    feed(s, t=[1], x=2, y=2)  # only the centre tap reaches (1, 1)
    expected[1, 1] = w[0, 0, 1, 1]
    assert np.array_equal(s.vmem(0)[0], expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_pooling_before_a_second_core_and_monitor_is_pre_pooling(engine):
    a = core(0, 1, 4, 4, 1, weights=10, thr=10, dests=[(1, 2)])  # every input fires
    b = core(1, 1, 2, 2, 1, weights=1, thr=100)
    s = sim(config(a, b), engine)
    xs, ys = np.meshgrid(np.arange(4), np.arange(4))
    out = feed(s, t=np.arange(16), x=xs.ravel(), y=ys.ravel())
    mon_a = out[out["core"] == 0]
    assert len(mon_a) == 16 and set(zip(mon_a["x"].tolist(), mon_a["y"].tolist())) == {(x, y) for x in range(4) for y in range(4)}
    assert np.array_equal(s.vmem(1)[0], np.full((2, 2), 4))  # 2x2 sum pooling: 4 spikes per pooled neuron
    assert np.array_equal(mon_a["t"], np.arange(16))  # each output carries its input's timestamp


@pytest.mark.parametrize("engine", ENGINES)
def test_two_destinations(engine):
    a = core(0, 1, 4, 4, 2, weights=[10, 10], thr=10, dests=[(1, 1), (2, 4)])
    b = core(1, 2, 4, 4, 1, weights=[1, 2], thr=1000)
    c = core(2, 2, 1, 1, 1, weights=[1, 3], thr=1000)
    s = sim(config(a, b, c), engine)
    feed(s, t=[0, 1], x=[0, 3], y=[0, 2])
    vb = s.vmem(1)[0]
    assert vb[0, 0] == 3 and vb[2, 3] == 3 and vb.sum() == 6  # both channels, weights 1 + 2
    assert s.vmem(2).item() == 8  # pooled to 1x1 twice, weights 1 + 3


@pytest.mark.parametrize("engine", ENGINES)
def test_two_cores_merging_into_one(engine):
    a = core(0, 1, 2, 2, 1, weights=10, thr=10, dests=[(2, 1)])
    b = core(1, 1, 2, 2, 1, weights=10, thr=10, dests=[(2, 1)])
    c = core(2, 1, 2, 2, 1, weights=7, thr=1000)
    s = sim(config(a, b, c, inputs=[0, 1]), engine)
    s.feed(codec.spikes(t=[0, 1, 2], core=[0, 1, 1], x=[1, 1, 0], y=[1, 1, 0]))
    assert s.vmem(2)[0].tolist() == [[7, 0], [0, 14]]


@pytest.mark.parametrize("engine", ENGINES)
def test_input_held_until_its_time_and_released_late_when_past(engine):
    s = sim(config(core(0, 1, 1, 1, 1, weights=10, thr=10)), engine)
    out = feed(s, t=[50, 20])  # the second is already past when released: goes in at 50
    assert out["t"].tolist() == [50, 50] and s.now_us == 50


@pytest.mark.parametrize("engine", ENGINES)
def test_off_map_input_raises_after_processing_the_earlier_ones(engine):
    s = sim(config(core(0, 1, 2, 2, 1, weights=10, thr=10)), engine)
    with pytest.raises(AddressError, match=r"input spike 2 \(core=0, c=0, x=5, y=0.*off input map \(1, 2, 2\)"):
        feed(s, t=[0, 1, 2], x=[0, 1, 5])
    assert len(s.pending_outputs) == 2 and s.stats["inputs"] == 2
    with pytest.raises(AddressError, match="unconfigured core"):
        s.feed(codec.spikes(t=[3], core=4))


@pytest.mark.parametrize("engine", ENGINES)
def test_slow_clock_leak_and_saturation(engine):
    c = core(0, 1, 1, 2, 1, weights=0, thr=30000, low=-20, bias=[-7], vmem=[[[3, 32760]]])
    s = sim(config(c), engine)
    s.reset_state(to_initial=True)
    s.set_slow_clock(10.0)  # one tick per 100 ms
    s.advance_to(250_000)
    assert s.vmem(0)[0, 0].tolist() == [-11, 32746] and s.stats["ticks"] == 2
    s.advance_to(1_000_000)
    assert s.vmem(0)[0, 0, 0] == -20  # stops at the floor
    c2 = core(0, 1, 1, 1, 1, weights=0, thr=32767, low=-20, bias=[100], vmem=[[[32700]]])
    s2 = sim(config(c2), engine)
    s2.reset_state(to_initial=True)
    s2.set_slow_clock(1000)
    out = s2.advance_to(1000)
    assert s2.vmem(0).item() == 32767 and s2.stats["saturated"] == 1 and len(out) == 0  # leak does not fire


@pytest.mark.parametrize("engine", ENGINES)
def test_leak_fires_switch(engine):
    c = core(0, 1, 1, 1, 1, weights=0, thr=10, bias=[6])
    s = sim(config(c), engine, leak_fires=True)
    s.set_slow_clock(1000)
    out = s.advance_to(3000)  # 6, 12->2*, 8
    assert out["t"].tolist() == [2000] and s.vmem(0).item() == 8


@pytest.mark.parametrize("engine", ENGINES)
def test_read_and_write_neuron_values(engine):
    s = sim(config(core(0, 1, 2, 3, 2, weights=[1, 2], thr=100)), engine)
    feed(s, t=[0], x=2, y=1)
    req = codec.read_requests_for_core(0, (2, 2, 3))
    vals = s.read_neurons(req)
    img = codec.vmem_image(vals, (2, 2, 3))
    assert img[:, 1, 2].tolist() == [1, 2] and img.sum() == 3
    s.write_neurons(codec.write_requests(0, [1], [0], [0], [-9], (2, 2, 3)))
    assert s.vmem(0)[1, 0, 0] == -9
    s.reset_state()
    assert not s.vmem(0).any()


def test_leak_case_from_the_issue():
    """1x1 conv w=1, b=-0.1, thr=1, min -1, v0=1 on (1,2,2); 1 Hz slow clock; read every 0.5 s."""
    import speckstream as ss
    from speckstream.testing import models

    cfg = ss.compile(models.leak_net(), input_shape=(1, 2, 2), initial_vmem="model")
    cc = cfg.cores[0]
    assert (cc.weights.item(), cc.biases.item(), cc.threshold_high, cc.threshold_low) == (127, -13, 127, -127)
    s = ChipSimulator(cfg)
    s.reset_state(to_initial=True)
    s.set_slow_clock(1.0)
    req = s.read_requests_for_core(0)
    trace = []
    for k in range(1, 45):
        s.advance_to(k * 500_000)
        v = s.read_neurons(req)
        assert (v["t"] == k * 500_000).all()
        trace.append(int(v["vmem"][0]))
        assert (v["vmem"] == v["vmem"][0]).all()
    expected = [max(127 - 13 * (k // 2), -127) for k in range(1, 45)]
    assert trace == expected  # one -13 step per second, stopping at threshold_low


# ------------------------------------------------------------------ Cython == reference, spike for spike
@st.composite
def networks(draw):
    n = draw(st.integers(1, 3))
    C, H = draw(st.integers(1, 3)), draw(st.sampled_from([3, 4, 6, 8]))
    W = draw(st.sampled_from([3, 4, 6, 8]))
    cores, shape = [], (C, H, W)
    for i in range(n):
        k = draw(st.sampled_from([1, 2, 3]))
        stride = draw(st.sampled_from([1, 2]))
        pad = draw(st.integers(0, k - 1))
        # narrow cores (scalar tail of the vectorised kernel) and wide ones (its bulk and 16-wide block)
        cout = draw(st.sampled_from([1, 2, 3, 4, 16, 17, 33]))
        cin, hin, win = shape
        hout, wout = (hin + 2 * pad - k) // stride + 1, (win + 2 * pad - k) // stride + 1
        if hout < 1 or wout < 1:
            break
        nw = cout * cin * k * k
        if cout <= 4:
            w = draw(st.lists(st.integers(-128, 127), min_size=nw, max_size=nw))
        else:  # too many for hypothesis to draw one by one: seeded
            w = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(-128, 128, nw).tolist()
        thr = draw(st.integers(1, 200))
        pool = draw(st.sampled_from([1, 2])) if min(hout, wout) >= 2 else 1
        bias = draw(st.lists(st.integers(-20, 20), min_size=cout, max_size=cout))
        cores.append(dict(core=i, cin=cin, hin=hin, win=win, cout=cout, k=k, stride=(stride, stride),
                          padding=(pad, pad), weights=w, thr=thr, low=-draw(st.integers(1, 300)),
                          rtz=draw(st.booleans()), bias=bias, pool=pool, monitor=draw(st.booleans())))
        shape = (cout, hout // pool, wout // pool)
    built = []
    for j, c in enumerate(cores):
        pool = c.pop("pool")
        dests = [(j + 1, pool)] if j + 1 < len(cores) else []
        built.append(core(dests=dests, **c))
    built[-1].monitor = True
    for b in built:  # the output decimator (off on most cores): its counters are engine state too
        b.decimator = draw(st.sampled_from([1, 1, 1, 2, 4]))
    n_in = draw(st.integers(0, 60))
    c0 = built[0]
    ev = codec.spikes(t=sorted(draw(st.lists(st.integers(0, 5000), min_size=n_in, max_size=n_in))), core=0,
                      c=draw(st.lists(st.integers(0, c0.input_shape[0] - 1), min_size=n_in, max_size=n_in)),
                      x=draw(st.lists(st.integers(0, c0.input_shape[2] - 1), min_size=n_in, max_size=n_in)),
                      y=draw(st.lists(st.integers(0, c0.input_shape[1] - 1), min_size=n_in, max_size=n_in)))
    cfg = config(*built)
    from speckstream.compiler.validate import find_problems

    assume(not find_problems(cfg))  # wide cores can exceed a core's kernel memory: the chip would refuse them
    return cfg, ev, draw(st.sampled_from([0, 1000]))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=150, deadline=None)
@given(case=networks(), leak_fires=st.booleans())
def test_cython_engine_matches_reference_spike_for_spike(kernel, case, leak_fires):
    cfg, ev, hz = case
    a = ChipSimulator(cfg, options=SimOptions(engine="cython", kernel=kernel, leak_fires=leak_fires))
    b = ChipSimulator(cfg, options=SimOptions(engine="reference", leak_fires=leak_fires))
    for s in (a, b):
        s.set_slow_clock(hz)
    oa, ob = a.feed(ev), b.feed(ev)
    oa2, ob2 = a.advance_to(8000), b.advance_to(8000)
    assert np.array_equal(oa, ob) and np.array_equal(oa2, ob2)
    for c in cfg.cores:
        assert np.array_equal(a.vmem(c), b.vmem(c))
    assert a.stats == b.stats


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("cout", [10, 16, 32, 48, 50])
@pytest.mark.parametrize("stride", [1, 2])
def test_vectorised_rows_saturate_clamp_and_fire_like_the_reference(cout, stride, kernel):
    """Wide rows near both ends of the int16 range: saturation at +32767, the floor clamp, firing with
    subtract and return-to-zero, on every part of the kernel (bulk, 16-wide block, scalar tail)."""
    rng = np.random.default_rng(cout * 10 + stride)
    for rtz in (False, True):
        vmem = rng.choice([32700, 32760, -290, 0, 100], size=(cout, 6, 6)).astype(np.int16)
        c0 = core(0, 3, 12, 12, cout, k=3, stride=(stride, stride), padding=(1, 1), thr=rng.integers(1, 60),
                  low=-300, rtz=rtz, weights=rng.integers(-128, 128, cout * 27), vmem=vmem[:, :12 // stride, :12 // stride]
                  if stride == 2 else np.resize(vmem, (cout, 12, 12)))
        cfg = config(c0)
        ev = codec.spikes(t=np.arange(400), core=0, c=rng.integers(0, 3, 400), x=rng.integers(0, 12, 400),
                          y=rng.integers(0, 12, 400))
        a = ChipSimulator(cfg, options=SimOptions(engine="cython", kernel=kernel))
        b = ChipSimulator(cfg, options=SimOptions(engine="reference"))
        for s in (a, b):
            s.reset_state(to_initial=True)
        assert np.array_equal(a.feed(ev), b.feed(ev))
        assert np.array_equal(a.vmem(0), b.vmem(0))
        assert a.stats == b.stats and a.stats["clamps"][0] > 0
        assert rtz or a.stats["saturated"] > 0  # subtract reset above 32767 + threshold saturates


def test_dvs_stage_pooling_crop_mirror_and_polarity():
    from speckstream.compiler.config import DVSConfig

    cfg = config(core(0, 2, 4, 4, 2, weights=[10, 0, 0, 10], thr=10))
    cfg.dvs = DVSConfig(input_size=(16, 16), pooling=(2, 2), crop=(2, 6, 1, 5), flip_x=True, destinations=[0])
    s = ChipSimulator(cfg)
    ev = np.zeros(4, codec.DVS_EVENT_DTYPE)
    # (x, y, p): pooled (x//2, y//2), cropped to rows 2..5 / cols 1..4, then x mirrored in the 4-wide crop
    ev["x"], ev["y"], ev["p"], ev["t"] = [2, 9, 0, 15], [4, 11, 4, 4], [1, 0, 1, 1], [1, 2, 3, 4]
    out = s.feed_dvs(ev)
    # event 0: pooled (1, 2) -> crop (0, 0) -> mirror x=3, channel 1; event 1: (4, 5) -> (3, 3) -> x=0, c 0
    # event 2: pooled x=0 < left 1: cropped away; event 3: pooled x=7 >= right 5: cropped away
    assert list(zip(out["x"].tolist(), out["y"].tolist(), out["c"].tolist())) == [(3, 0, 1), (0, 3, 0)]


def test_readout_layer_values_per_tick():
    """A 3-class output layer with the speck2e/2f errata: class k is fed by channel 4(k-1)."""
    import torch
    from torch import nn

    import sinabs.layers as sl
    import speckstream as ss
    from speckstream.compiler import ReadoutConfig

    fc = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(3))
    net = nn.Sequential(nn.Flatten(), fc, sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=-1.0))
    from speckstream.compiler.build import CompileWarning

    with pytest.warns(CompileWarning, match="readout errata remap"):
        cfg = ss.compile(net, input_shape=(3, 1, 1), readout=ReadoutConfig(average=1), slow_clock_hz=10.0)
    cc = cfg.cores[cfg.layer_order[0]]
    assert cc.output_shape == (9, 1, 1) and [d.core for d in cc.destinations] == [12]
    assert np.array_equal(np.flatnonzero(cc.weights[:, :, 0, 0].any(axis=1)), [0, 4, 8])
    s = ChipSimulator(cfg)
    # ticks at 100 ms, 200 ms, 300 ms; class 2 (channel 1 -> 4) gets 3 spikes before the first tick,
    # class 3 (channel 2 -> 8) 5 spikes in the second window, nothing in the third
    s.feed(codec.spikes(t=[10, 20, 30], core=cc.core, c=1))
    s.feed(codec.spikes(t=[150_000] * 5, core=cc.core, c=2))
    s.advance_to(300_000)
    vals = s.take_readout()
    assert vals["t"].tolist() == [100_000, 200_000, 300_000]
    word = vals["value"].astype(int)
    assert ((word >> 20) & 1).tolist() == [1, 1, 0]
    assert ((word >> 16) & 0xF).tolist()[:2] == [2, 3]
    assert (word & 0xFFFF).tolist() == [3, 5, 0]
    # moving average over 16 ticks, threshold-compare mode
    cfg.readout = ReadoutConfig(average=16, output_mode=1, threshold=1)
    s = ChipSimulator(cfg)
    s.feed(codec.spikes(t=np.full(32, 10), core=cc.core, c=0))
    s.advance_to(100_000)
    w = int(s.take_readout()["value"][0])
    assert (w >> 16) & 0xF == 1 and w & 0xFFFF == 0b10  # avg 32 // 16 = 2 >= 1 for class 1 only


def test_the_output_decimator_passes_every_nth_spike_to_monitor_and_destinations_alike():
    # core 0: weight 20, threshold 10: every input fires its one neuron; 1 of 4 spikes leaves it, to the host and
    # to core 1 (weight 10, threshold 10: fires on each spike it gets)
    c0 = core(0, 1, 1, 1, 1, weights=[20], thr=10, dests=[(1, 1)])
    c1 = core(1, 1, 1, 1, 1, weights=[10], thr=10)
    c0.decimator = 4
    cfg = config(c0, c1)
    for engine in ("cython", "reference"):
        sim = ChipSimulator(cfg, options=SimOptions(engine=engine))
        out = sim.feed(codec.spikes(t=np.arange(10) * 10, core=0, c=0, x=0, y=0))
        assert out["t"][out["core"] == 0].tolist() == [30, 70]  # the 4th and 8th spikes
        assert out["t"][out["core"] == 1].tolist() == [30, 70]
        sim.reset_state()  # the counter is state: it starts again with the neurons
        out = sim.feed(codec.spikes(t=100 + np.arange(4) * 10, core=0, c=0, x=0, y=0))
        assert out["t"][out["core"] == 0].tolist() == [130]
