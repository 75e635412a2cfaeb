"""The synchronous layer: simulate, evaluate (any executor), compare; and the simulator's off-map drop."""
from __future__ import annotations

import concurrent.futures as cf
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sinabs.layers as sl
import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import CodecError
from speckstream.digits import digits_dataset, digits_net, load_digits_split
from speckstream.sim import ChipSimulator, SimOptions

from speckstream.testing import models

pytestmark = pytest.mark.filterwarnings("ignore::speckstream.compiler.errors.CompileWarning")


def _stream(cfg, n, seed):
    rng = np.random.default_rng(seed)
    C, H, W = cfg.cores[cfg.input_cores[0]].input_shape
    return codec.spikes(t=np.sort(rng.integers(0, 50_000, n)), core=cfg.input_cores[0], c=rng.integers(0, C, n),
                        x=rng.integers(0, W, n), y=rng.integers(0, H, n))


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["seq4", "residual", "fanout"]), st.integers(0, 1000))
def test_simulate_equals_the_engine(name, seed):
    factory, shape = {"seq4": (models.seq4, (2, 34, 34)), "residual": (models.ResidualMerge, (2, 34, 34)),
                      "fanout": (models.FanOut, (2, 16, 16))}[name]
    cfg = ss.compile(factory(), shape, monitor="all")
    ev = _stream(cfg, 400, seed)
    want = ChipSimulator(cfg).feed(ev)
    assert np.array_equal(ss.simulate(cfg, ev), want)
    xytp = codec.to_xytp(ev)  # tonic-style input: x, y, t (µs), p -> channel
    assert np.array_equal(ss.simulate(cfg, xytp), want)


def test_simulate_refuses_unsorted_events_naming_the_index_and_runs_until():
    cfg = ss.compile(models.leak_net(), input_shape=(1, 2, 2), slow_clock_hz=1000, initial_vmem="zero")
    ev = codec.spikes(t=[10, 20, 15, 30], core=0, c=0, x=0, y=0)
    with pytest.raises(CodecError, match="event 2 has timestamp 15 µs, before event 1 \\(20 µs\\)"):
        ss.simulate(cfg, ev)
    with pytest.raises(CodecError, match="structured array"):
        ss.simulate(cfg, np.zeros(3))
    out = ss.simulate(cfg, codec.spikes(t=[0], core=0, c=0, x=0, y=0), until=5_000)
    assert out.dtype == codec.SPIKE_DTYPE


@pytest.fixture(scope="module")
def digits():
    _, _, xte, yte = load_digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(digits_net(), input_shape=(1, 8, 8))
    return cfg, digits_dataset(xte[:40], yte[:40], seed=7)


def test_evaluate_gives_identical_predictions_serially_and_in_a_process_pool(digits):
    cfg, data = digits
    serial = ss.evaluate(cfg, data, executor="serial", progress=False)
    assert serial.counts.shape == (40, 10) and serial.accuracy > 0.85
    assert np.array_equal(serial.predictions, np.where(serial.counts.max(1) > 0, serial.counts.argmax(1), -1))
    # the simulator's own answer for one sample, by hand
    sim = ChipSimulator(cfg)
    out = sim.feed(ss.api.to_input(cfg, data[3][0])[1])
    assert np.array_equal(np.bincount(out["c"], minlength=10), serial.counts[3])
    pooled = ss.evaluate(cfg, data, progress=False, max_workers=2)
    with cf.ProcessPoolExecutor(2) as ex:
        given_pool = ss.evaluate(cfg, data, executor=ex, progress=False, chunk_size=7)
    with cf.ThreadPoolExecutor(2) as ex:
        threads = ss.evaluate(cfg, data, executor=ex, progress=False)
    for r in (pooled, given_pool, threads):
        assert np.array_equal(r.counts, serial.counts) and np.array_equal(r.labels, serial.labels)
    assert serial.events_in == sum(len(e) for e, _ in data) and serial.events_per_s > 0


def test_evaluate_on_a_local_dask_cluster(digits):
    distributed = pytest.importorskip("distributed")
    cfg, data = digits
    serial = ss.evaluate(cfg, data[:16], executor="serial", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        res = ss.evaluate(cfg, data[:16], executor=client.get_executor(), progress=False, chunk_size=4)
    assert np.array_equal(res.predictions, serial.predictions) and np.array_equal(res.counts, serial.counts)


def test_evaluate_validates_before_any_work(digits):
    cfg, data = digits
    bad = list(data[:3]) + [(data[3][0][::-1], 3)]
    with pytest.raises(CodecError, match="time order"):
        ss.evaluate(cfg, bad, executor="serial", progress=False)
    with pytest.raises(ValueError, match="not an \\(events, label\\) pair"):
        ss.evaluate(cfg, [data[0][0]], executor="serial", progress=False)


def _coinciding_net():
    """Non-negative weights below the threshold, no floor reached: chip and time-stepped torch coincide."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0),
                        sl.SumPool2d(2), nn.Conv2d(4, 6, 3, padding=1, bias=False),
                        sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0), nn.Flatten(), nn.Linear(6 * 4 * 4, 5, bias=False),
                        sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.rand(m.weight.shape) * 0.45)  # below threshold 1
    return net


def test_compare_reports_full_agreement_where_the_semantics_coincide():
    net = _coinciding_net()
    cfg = ss.compile(net, (1, 8, 8))
    rng = np.random.default_rng(1)
    n = 300  # one event per 1 ms step
    ev = codec.spikes(t=np.arange(n) * 1000, core=0, c=0, x=rng.integers(0, 8, n), y=rng.integers(0, 8, n))
    rep = ss.compare(net, cfg, ev)
    assert rep.first_divergent is None and "agree" in rep.cause
    assert all(r.neuron_match == 1.0 and r.chip_spikes == r.quantized_spikes > 0 for r in rep.layers)
    assert all(r.chip_clamps == 0 for r in rep.layers)
    assert "core" in rep.table() and str(rep).count("\n") >= 4


def test_compare_names_the_floor_clamps_of_a_close_floor():
    """The measured case from the issue: the digits network with min_v_mem = -1 (a floor one threshold below
    zero) parts ways with time-stepped torch because the chip clamps after every inhibitory event."""
    _, _, xte, yte = load_digits_split()
    net = digits_net(min_v_mem=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(net, (1, 8, 8))
    events = np.concatenate([e for e, _ in digits_dataset(xte[:1], yte[:1], seed=3)])
    rep = ss.compare(net, cfg, events)
    assert rep.first_divergent is not None
    assert "clamps after every inhibitory event" in rep.cause and "min_v_mem" in rep.cause
    row = next(r for r in rep.layers if r.name.startswith(rep.first_divergent.split(" > ")[0]))
    assert row.chip_clamps > row.torch_clamps


def test_pooled_spikes_off_the_map_are_dropped_like_torch_and_counted():
    """A 7x7 map pooled by 2 into a 3x3 input: the 7th row / column would land on x or y = 3."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0), sl.SumPool2d(2),
                        nn.Conv2d(2, 2, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.rand(m.weight.shape) * 0.45)
    cfg = ss.compile(net, (1, 8, 8))
    ev = codec.spikes(t=np.arange(200) * 1000, core=0, c=0, x=np.arange(200) % 8, y=(np.arange(200) // 8) % 8)
    rep = ss.compare(net, cfg, ev)
    assert all(r.neuron_match == 1.0 for r in rep.layers), rep.table()
    sim = ChipSimulator(cfg)
    sim.feed(ev)
    assert sim.stats["off_map"] > 0
    old = ChipSimulator(cfg, options=SimOptions(drop_off_map=False))
    old.feed(ev)
    assert old.stats["off_map"] == 0 and old.stats["synaptic_updates"] > sim.stats["synaptic_updates"]
    ref = ChipSimulator(cfg, options=SimOptions(engine="reference"))
    assert np.array_equal(ref.feed(ev), ChipSimulator(cfg).feed(ev)) and ref.stats["off_map"] == sim.stats["off_map"]


def test_spike_arrays_in_another_layout_are_spikes_everywhere(tmp_path):
    cfg = ss.compile(models.seq4(), (2, 34, 34), monitor="all")
    ev = _stream(cfg, 300, 5)
    big = ev.astype(codec.SPIKE_DTYPE.newbyteorder(">"))
    want = ss.simulate(cfg, ev)
    assert np.array_equal(ss.simulate(cfg, big), want)  # not misread as tonic x/y/t/p
    assert np.array_equal(codec.spikes_from_array(big), ev)
    np.save(tmp_path / "big.npy", big)
    assert np.array_equal(codec.read_spikes(tmp_path / "big.npy"), ev)


def test_simulate_gives_the_readout_layers_values_one_per_tick_with_their_tick_times():
    """Reproduced first: with the readout monitored, ReadoutValues came out with one timestamp and
    valid=False while the spikes said otherwise; simulate could not give them at all."""
    from speckstream.compiler import ReadoutConfig

    _, _, xte, yte = load_digits_split()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = ss.compile(digits_net(), (1, 8, 8), readout=ReadoutConfig(average=1, monitor=True), slow_clock_hz=10)
    right = 0
    for ev, label in digits_dataset(xte[:10], yte[:10], seed=5):
        ro = ss.simulate(cfg, ev, until=300_000, output="readout")
        assert ro["t"].tolist() == [100_000, 200_000, 300_000]  # one per 100 ms tick, stamped with its time
        spikes = ss.simulate(cfg, ev)  # the output layer's spikes (what the readout counts, channel i -> 4i)
        first = spikes[spikes["t"] < 100_000]
        counts = np.bincount(first["c"] // 4, minlength=10)
        assert bool(ro["valid"][0]) == (counts.max() > 0)
        if counts.max() > 0:  # the class of the first tick: the lowest class among the most spiking (1-based)
            assert ro["class"][0] == int(np.argmax(counts)) + 1 and ro["data"][0] == counts.max()
            right += int(ro["class"][0] - 1 == label)
        assert not ro["valid"][-1]  # the third window (200-300 ms) is past the 100 ms sample: nothing to count
    assert right >= 7
    with pytest.raises(ValueError, match="readout layer and a slow clock"):
        ss.simulate(ss.compile(digits_net(), (1, 8, 8)), ev, output="readout")
    with pytest.raises(ValueError, match="output must be"):
        ss.simulate(cfg, ev, output="readouts")
