"""A user's own material: sinabs 3.1.3's shipped trained networks and its NIR tutorial file, fed with real
recordings (tests/data), compiled as sinabs' examples deploy them and compared with sinabs' own forward."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import sinabs.layers as sl
import speckstream as ss
from speckstream.comparison import CompareError
from speckstream.compiler.errors import CompileWarning
from speckstream.testing import sinabs_models as sm
from speckstream.testing import sinabs_reference as sinabs_ref
from speckstream.testing import streams
from test_compiler_sinabs import assert_like_sinabs

nir = pytest.importorskip("nir")


def _quiet_compile(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        return ss.compile(*args, **kw)


# ------------------------------------------------------------------------------ bit-equal to sinabs
@pytest.mark.parametrize("name, make, shape, dvs", [
    ("gesture", sm.gesture_snn, sm.GESTURE_INPUT, True),  # gesture_viz.py: dvs_input=True, automatic cores
    ("mnist", sm.mnist_snn, sm.MNIST_INPUT, None),  # examples/mnist/dynapcnn_network.py
])
def test_sinabs_shipped_networks_compile_bit_equal_to_sinabs(name, make, shape, dvs):
    cfg = _quiet_compile(make(), shape, dvs=dvs)
    ref = sinabs_ref.reference(make(), shape, dvs_input=dvs)
    assert_like_sinabs(cfg, ref)
    assert len(cfg.cores) == (9 if name == "gesture" else 5)
    if dvs:
        assert cfg.dvs is not None and cfg.dvs.input_size == (128, 128) and cfg.input_cores == [cfg.layer_order[0]]


# ------------------------------------------------------------------------------ the NIR tutorial file
def _sinabs_from_nir():
    import sinabs

    return sinabs.from_nir(nir.read(str(sm.scnn_nir_path())), batch_size=1)


def _float_counts(model, ev: np.ndarray) -> np.ndarray:
    """sinabs' forward of the events in 1 ms frames, output spike counts per class."""
    import sinabs

    x = np.zeros((int(ev["t"].max() // 1000) + 1, 2, 34, 34), np.float32)
    np.add.at(x, (ev["t"] // 1000, ev["p"].astype(int), ev["y"].astype(int), ev["x"].astype(int)), 1)
    sinabs.reset_states(model)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    return (out[0] if isinstance(out, tuple) else out).sum(0).numpy()


def test_the_nir_tutorial_file_compiles_as_sinabs_deploys_it_and_its_chip_follows_sinabs():
    """Reproduced first: with an IF read as reset-to-zero without a floor, 97-100 % of every layer's weights
    quantized to 0 and no event reached the output."""
    cfg = _quiet_compile(sm.scnn_nir_path())
    assert cfg.layer_order == [0, 1, 2, 3, 4] and cfg.input_shape == (2, 34, 34)
    for c in cfg.layer_order:
        cc = cfg.cores[c]
        assert not cc.return_to_zero and cc.threshold_low == -cc.threshold_high  # subtract, floor -threshold
        assert np.mean(cc.weights != 0) > 0.5
    model = _sinabs_from_nir()
    agree = 0
    for i, ev in enumerate(streams.jittered_copies(streams.nmnist_sample(), 8, 34)):
        chip = np.bincount(ss.simulate(cfg, ev)["c"], minlength=10)
        assert chip.sum() > 100  # the network spikes
        ref = _float_counts(model, ev)
        agree += int(chip.argmax() == ref.argmax())
        if i == 0:
            assert chip.argmax() == ref.argmax() == 4  # the real sample
    assert agree >= 6, f"the chip's prediction followed sinabs.from_nir's on {agree} of 8 inputs"


def test_the_nir_file_compiles_to_the_integers_and_cores_of_sinabs_tutorial_deployment():
    """nir_to_speck.ipynb: sinabs.from_nir, the execution order as a Sequential, one threshold and floor per
    layer, then DynapcnnNetwork. Our compile of the file equals that, and sinabs' pipeline on that Sequential."""
    import sinabs

    seq = torch.nn.Sequential(*(node.elem for node in _sinabs_from_nir().execution_order))
    for mod in seq:
        if isinstance(mod, sinabs.layers.IAF):
            mod.spike_threshold = torch.nn.Parameter(torch.tensor([mod.spike_threshold.flatten()[0]]))
            mod.min_v_mem = torch.nn.Parameter(torch.tensor([mod.min_v_mem.flatten()[0]]))
    tutorial = _quiet_compile(seq, sm.NMNIST_INPUT)
    assert_like_sinabs(tutorial, sinabs_ref.reference(seq, sm.NMNIST_INPUT))
    ours = _quiet_compile(sm.scnn_nir_path())
    assert ours.layer_order == tutorial.layer_order
    for c in ours.layer_order:
        a, b = ours.cores[c], tutorial.cores[c]
        assert np.array_equal(a.weights, b.weights) and (a.threshold_high, a.threshold_low, a.return_to_zero) == \
            (b.threshold_high, b.threshold_low, b.return_to_zero)


def test_compare_on_the_nir_file_reports_per_layer_correlation_with_sinabs():
    cfg = _quiet_compile(sm.scnn_nir_path())
    rep = ss.compare(_sinabs_from_nir(), cfg, streams.nmnist_sample())
    assert [r.core for r in rep.layers] == cfg.layer_order
    assert all(r.float_spikes > 0 and r.chip_spikes > 0 for r in rep.layers)
    assert all(r.correlation > 0.9 for r in rep.layers), rep.table()
    assert "corr" in rep.table()


def test_nir_options_reach_the_chip():
    path = sm.scnn_nir_path()
    rtz = _quiet_compile(path, reset="zero", min_v_mem={"1": -2.0})
    c0 = rtz.cores[rtz.layer_order[0]]
    assert all(cc.return_to_zero for cc in rtz.cores.values())
    assert c0.threshold_low == round(-2.0 * c0.provenance.scale) and c0.provenance.modules[:2] == ["0", "1"]
    graph = nir.read(str(path))
    assert _quiet_compile(graph) == _quiet_compile(path)
    with pytest.raises(ss.CompileError, match="min_v_mem names 'nope'.*layers, by weight and spiking module: 0/1"):
        ss.compile(path, min_v_mem={"nope": -1.0})
    with pytest.raises(ss.CompileError, match="reset must be 'model', 'subtract' or 'zero'"):
        ss.compile(path, reset="sometimes")


# ------------------------------------------------------------------------------ DVS input: the gesture net
def test_compare_runs_the_gesture_net_on_a_real_dvs_clip_through_the_dvs_stage():
    """Reproduced first: compare raised a bare ValueError for any configuration with a DVS stage."""
    cfg = _quiet_compile(sm.gesture_snn(), sm.GESTURE_INPUT, dvs=True)
    ev = streams.dvs128_clip()
    assert len(ev) > 1000 and ev["x"].max() < 128 and ev["y"].max() < 128
    rep = ss.compare(sm.gesture_snn(), cfg, ev)
    assert [r.core for r in rep.layers] == cfg.layer_order and len(rep.layers) == 9
    first = rep.layers[0]
    assert first.chip_spikes > 0 and first.float_spikes > 0 and first.correlation > 0.9, rep.table()
    assert first.neuron_match > 0.95


def test_compare_feeds_a_dvs_stage_that_pools_and_crops_and_refuses_what_it_cannot_relate():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with torch.no_grad():
        net[0].weight.uniform_(0.1, 0.6)
    dvs = ss.compiler.DVSConfig(input_size=(16, 16), pooling=(2, 2), merge_polarities=True)
    cfg = _quiet_compile(net, (1, 8, 8), dvs=dvs)
    ev = streams.moving_edges(20_000, 0.2, size=16)
    rep = ss.compare(net, cfg, ev)  # the model's input (1, 8, 8) is the stage's output
    assert rep.layers[0].chip_spikes > 0 and rep.layers[0].neuron_match > 0.9, rep.table()
    cfg.input_shape = (2, 5, 5)
    with pytest.raises(CompareError, match="compare cannot tell which the model expects"):
        ss.compare(net, cfg, ev)


# ------------------------------------------------------------------------------ biases and the slow clock
def _biased_net():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=True), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0),
                        sl.SumPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 5, bias=False),
                        sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 0.4)
        net[0].bias.fill_(0.12)  # drives the neurons by itself: the bias matters
        net[4].weight.uniform_(0.0, 0.5)
    return net


def _sparse_events(n=150):
    rng = np.random.default_rng(1)
    return ss.codec.spikes(t=np.arange(n) * 2000, core=0, c=0, x=rng.integers(0, 8, n), y=rng.integers(0, 8, n))


def test_biases_without_a_slow_clock_are_warned_about_once_with_the_clock_that_approximates_them():
    with pytest.warns(CompileWarning) as rec:
        ss.compile(_biased_net(), (1, 8, 8))
    notes = [str(w.message) for w in rec if "biases" in str(w.message)]
    assert len(notes) == 1
    assert "'0' (0.12..0.12 -> " in notes[0] and "never act" in notes[0] and "slow_clock_hz=1000" in notes[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        warnings.filterwarnings("ignore", ".*vmem floor", CompileWarning)
        ss.compile(_biased_net(), (1, 8, 8), slow_clock_hz=1000)  # the clock is set: no bias note


def test_compare_names_biases_and_the_slow_clock_as_the_cause_and_the_fix_closes_the_gap():
    """Reproduced first: with biases and no slow clock the chip gave a handful of spikes against hundreds in
    float torch, and compare blamed quantization."""
    net, ev = _biased_net(), _sparse_events()
    cfg = _quiet_compile(net, (1, 8, 8))
    rep = ss.compare(net, cfg, ev)
    assert rep.stage == "bias" and "slow clock" in rep.cause and "slow_clock_hz=1000" in rep.cause, rep.table()
    row = rep.layers[0]
    assert row.chip_spikes < row.bias_step_spikes / 2 and row.quantized_spikes < row.bias_step_spikes / 2
    clocked = _quiet_compile(net, (1, 8, 8), slow_clock_hz=1000)
    rep2 = ss.compare(net, clocked, ev)
    assert rep2.stage != "bias", rep2.table()
    row2 = rep2.layers[0]
    assert abs(row2.quantized_spikes - row2.bias_step_spikes) <= 0.05 * row2.bias_step_spikes
    assert row2.chip_spikes > 3 * row.chip_spikes  # the bias acts on the chip now
    # what is left is event-driven: a leak tick that crosses the threshold does not fire until an input comes
    assert rep2.stage == "event-driven" and "leak" in rep2.cause, rep2.table()
