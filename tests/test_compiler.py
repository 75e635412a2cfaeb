import importlib.util
import json
import pathlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sinabs.layers as sl
import speckstream as ss
from speckstream.compiler import ChipConfig, get_chip, validate
from speckstream.compiler.discretize import discretize_layer
from speckstream.compiler.errors import (CompileError, GraphStructureError, InvalidParameterError, LayerDoesNotFitError,
                                         MissingSpikingLayerError, NoCoreAssignmentError, PoolingConflictError,
                                         ShapeMismatchError, TooManyDestinationsError, TooManyLayersError,
                                         UnsupportedLayerError, UnsupportedParameterError)

from speckstream.testing import models

pytestmark = pytest.mark.filterwarnings("ignore::speckstream.compiler.errors.CompileWarning")


def iaf(**kw):
    return sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0, **kw)


# ------------------------------------------------------------------ the required example networks
def test_sequential_cnn_fits_and_maps_in_order():
    cfg = ss.compile(models.seq4(), input_shape=(2, 34, 34))
    assert cfg.layer_order == [0, 1, 2, 3] and cfg.input_cores == [0]
    assert [cfg.cores[c].output_shape for c in cfg.layer_order] == [(8, 34, 34), (16, 17, 17), (16, 8, 8), (10, 1, 1)]
    assert [d.pooling for c in (0, 1, 2) for d in cfg.cores[c].destinations] == [2, 2, 2]
    assert cfg.monitored_cores == [3] and cfg.output_cores == [3]
    assert cfg.cores[3].kernel_size == 4  # Linear over a 16x4x4 map
    text = cfg.summary()
    assert "0 > 1 > 2" in text and "32Ki/64Ki" in text or "32Ki" in text


def test_residual_skip_with_merge():
    cfg = ss.compile(models.ResidualMerge(), input_shape=(2, 34, 34))
    by_name = {cc.provenance.modules[0]: cc for cc in cfg.cores.values()}
    conv1, conv3, conv4 = by_name["conv1"], by_name["conv3"], by_name["conv4"]
    # conv1 fans out to conv2 (unpooled) and through the merge + pool to conv4; conv3 also reaches conv4
    assert sorted((d.core, d.pooling) for d in conv1.destinations) == sorted(
        [(by_name["conv2"].core, 1), (conv4.core, 2)])
    assert [(d.core, d.pooling) for d in conv3.destinations] == [(conv4.core, 2)]
    assert "merge" in conv1.provenance.modules


def test_fan_out_with_different_pooling_per_destination():
    cfg = ss.compile(models.FanOut(), input_shape=(2, 16, 16))
    by_name = {cc.provenance.modules[0]: cc for cc in cfg.cores.values()}
    pools = {cfg.cores[d.core].provenance.modules[0]: d.pooling for d in by_name["conv1"].destinations}
    assert pools == {"conv_a": 2, "conv_b": 4}


def test_nine_layer_network_is_rejected_naming_each_linear_that_fits_no_core():
    with pytest.raises(LayerDoesNotFitError) as e:
        ss.compile(models.nine_layer(), input_shape=(2, 34, 34))
    names = [n for n, _ in e.value.layers]
    assert names == ["12", "14", "16"]  # Linear 128->1024, 1024->512, 512->256
    assert [x["kernel"] for _, x in e.value.layers] == [128 * 1024, 512 * 1024, 128 * 1024]
    msg = str(e.value)
    assert "'12' needs kernel 128 Ki" in msg and "'14' needs kernel 512 Ki" in msg and "largest kernel memory 64 Ki" in msg
    # each with its fix: the layer type, why (power-of-two rounding), the largest size that fits and where
    assert "Linear '12' needs kernel 128 Ki" in msg and "32 x 2^(2+10) = 128 Ki" in msg
    assert "each rounded up to a power of two" in msg and "at most 512 output features fit (cores 5, 6)" in msg
    assert "at most 64 output features fit (cores 5, 6)" in msg and "pool before the Linear" in msg


def test_nir_graph_compiles():
    nir = pytest.importorskip("nir")
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(10, 4 * 4 * 4)).astype(np.float32)

    def IF(thr, shape):  # nir >= 1.0.5 has v_reset; nir <= 1.0.4 (sinabs 3.1.3's pin) subtracts the threshold
        kw = {"v_reset": np.zeros(shape)} if "v_reset" in nir.IF.__dataclass_fields__ else {}
        return nir.IF(r=np.ones(shape), v_threshold=np.full(shape, thr), **kw)

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
            "conv": nir.Conv2d(input_shape=(8, 8), weight=w1, stride=1, padding=1, dilation=1, groups=1,
                               bias=np.zeros(4, np.float32)),
            "if1": IF(1.0, (4, 8, 8)),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
            "fc": nir.Linear(weight=w2),
            "if2": IF(2.0, (10,)),
            "output": nir.Output(output_type={"output": np.array([10])}),
        },
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"),
               ("fc", "if2"), ("if2", "output")],
    )
    cfg = ss.compile(graph, min_v_mem=-1.0, reset="zero")
    assert cfg.layer_order == [0, 1]
    c0, c1 = cfg.cores[0], cfg.cores[1]
    assert c0.output_shape == (4, 8, 8) and c0.return_to_zero and c0.destinations[0].pooling == 2
    assert c1.input_shape == (4, 4, 4) and c1.output_shape == (10, 1, 1)
    # weights discretized with the common factor: the largest |w| lands on 127 / -128
    s = c0.provenance.scale
    assert np.array_equal(c0.weights, np.round(w1 * np.float32(s)).astype(np.int8))
    # by default as sinabs.from_nir deploys it: subtract reset, floor -threshold in every layer
    default = ss.compile(graph)
    assert ss.compiler.compile_nir(graph) == default
    for cc, thr in zip((default.cores[0], default.cores[1]), (1.0, 2.0)):
        assert not cc.return_to_zero and cc.threshold_low == -cc.threshold_high
        assert cc.threshold_high == round(thr * cc.provenance.scale)


# ------------------------------------------------------------------ errors, each naming the module
@pytest.mark.parametrize("model, shape, err, name", [
    (nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()), (2, 8, 8), UnsupportedLayerError, "1"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), sl.LIFSqueeze(tau_mem=10.0, batch_size=1)), (2, 8, 8), UnsupportedLayerError, "1"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), nn.Conv2d(4, 4, 3)), (2, 8, 8), MissingSpikingLayerError, "2"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, dilation=2), iaf()), (2, 8, 8), UnsupportedParameterError, "0"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), iaf()), (2, 8, 8), UnsupportedParameterError, "0"),
    (nn.Sequential(nn.Conv2d(2, 4, (3, 5)), iaf()), (2, 8, 8), UnsupportedParameterError, "0"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, padding_mode="reflect", padding=1), iaf()), (2, 8, 8), UnsupportedParameterError, "0"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), nn.AvgPool2d(2, padding=1), nn.Conv2d(4, 4, 1), iaf()), (2, 8, 8),
     UnsupportedParameterError, "2"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), sl.SumPool2d(3), nn.Conv2d(4, 4, 1), iaf()), (2, 12, 12),
     UnsupportedParameterError, "2"),
    (nn.Sequential(nn.Conv2d(2, 4, 3, stride=3), iaf()), (2, 8, 8), UnsupportedParameterError, "0"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), nn.Flatten(), nn.Linear(4 * 6 * 5, 3), iaf()), (2, 8, 7),
     UnsupportedParameterError, "3"),
])
def test_unsupported_models_raise_naming_the_module(model, shape, err, name):
    with pytest.raises(err) as e:
        ss.compile(model, input_shape=shape)
    assert e.value.module == name and f"'{name}'" in str(e.value)
    assert isinstance(e.value, CompileError)


class _TensorAdd(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.i1, self.c2, self.i2 = nn.Conv2d(2, 4, 3, padding=1), iaf(), nn.Conv2d(4, 4, 3, padding=1), iaf()
        self.c3, self.i3 = nn.Conv2d(4, 4, 1), iaf()

    def forward(self, x):
        a = self.i1(self.c1(x))
        return self.i3(self.c3(a + self.i2(self.c2(a))))


def test_residual_written_as_tensor_add_is_refused_with_advice():
    with pytest.raises(GraphStructureError, match="'c3'.*Merge"):
        ss.compile(_TensorAdd(), input_shape=(2, 8, 8))


class _ThreeWay(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0, self.i0 = nn.Conv2d(2, 4, 1), iaf()
        self.a, self.ia = nn.Conv2d(4, 4, 1), iaf()
        self.b, self.ib = nn.Conv2d(4, 4, 1), iaf()
        self.c, self.ic = nn.Conv2d(4, 4, 1), iaf()

    def forward(self, x):
        s = self.i0(self.c0(x))
        return self.ia(self.a(s)), self.ib(self.b(s)), self.ic(self.c(s))


def test_more_than_two_destinations():
    with pytest.raises(TooManyDestinationsError, match="'i0' feeds 3 layers"):
        ss.compile(_ThreeWay(), input_shape=(2, 4, 4))


class _MergeMismatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.ia = nn.Conv2d(2, 4, 1), iaf()
        self.b, self.ib = nn.Conv2d(2, 4, 3), iaf()
        self.m = sl.Merge()
        self.c, self.ic = nn.Conv2d(4, 4, 1), iaf()

    def forward(self, x):
        return self.ic(self.c(self.m(self.ia(self.a(x)), self.ib(self.b(x)))))


def test_merge_of_different_shapes():
    with pytest.raises(ShapeMismatchError, match="Merge 'm'"):
        ss.compile(_MergeMismatch(), input_shape=(2, 6, 6))


class _AvgConflict(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.ia, self.pa = nn.Conv2d(2, 4, 1), iaf(), nn.AvgPool2d(2)
        self.b, self.ib, self.pb = nn.Conv2d(2, 4, 3, stride=2, padding=1), iaf(), nn.Identity()
        self.m = sl.Merge()
        self.c, self.ic = nn.Conv2d(4, 4, 1), iaf()

    def forward(self, x):
        return self.ic(self.c(self.m(self.pa(self.ia(self.a(x))), self.pb(self.ib(self.b(x))))))


def test_average_pools_of_different_sizes_into_one_core():
    with pytest.raises(PoolingConflictError, match="'c' receives .* different average-pool"):
        ss.compile(_AvgConflict(), input_shape=(2, 8, 8))


def test_too_many_layers():
    layers = []
    for _ in range(10):
        layers += [nn.Conv2d(2, 2, 1), iaf()]
    with pytest.raises(TooManyLayersError, match="10 core layers"):
        ss.compile(nn.Sequential(*layers), input_shape=(2, 4, 4))


def test_no_core_assignment_names_the_clashing_layers():
    # 4 layers with 64 x 32x32 neurons = 64 Ki neuron words: only cores 0, 1, 2 hold them
    layers = [nn.Conv2d(2, 64, 1), iaf()]
    for _ in range(3):
        layers += [nn.Conv2d(64, 64, 1), iaf()]
    with pytest.raises(NoCoreAssignmentError) as e:
        ss.compile(nn.Sequential(*layers), input_shape=(2, 32, 32))
    assert e.value.layers == ["0", "2", "4", "6"] and "compete for 3 free core(s) [0, 1, 2]" in str(e.value)


def test_core_map_pins_layers_and_is_validated():
    cfg = ss.compile(models.seq4(), input_shape=(2, 34, 34), core_map={"10": 5, 0: 4})
    assert cfg.layer_order[0] == 4 and cfg.layer_order[3] == 5
    with pytest.raises(NoCoreAssignmentError, match="does not fit"):
        ss.compile(models.seq4(), input_shape=(2, 34, 34), core_map={0: 7})  # 32 Ki neurons > 16 Ki
    with pytest.raises(CompileError, match="not a layer"):
        ss.compile(models.seq4(), input_shape=(2, 34, 34), core_map={"nope": 1})


def test_batchnorm_is_folded():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-0.1, 0.1)
    conv = nn.Conv2d(2, 4, 3, bias=False)
    cfg = ss.compile(nn.Sequential(conv, bn, iaf()), input_shape=(2, 6, 6))
    cc = cfg.cores[0]
    assert cc.provenance.modules == ["0", "1", "2"] and cc.leak_enable
    f = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    w = conv.weight.detach().numpy() * f[:, None, None, None]
    s = cc.provenance.scale
    assert np.abs(cc.weights - np.round(w * s)).max() <= 1


def test_dropout_identity_and_print_in_forward_are_harmless():
    m = nn.Sequential(nn.Dropout(0.2), nn.Conv2d(2, 4, 3), nn.Identity(), iaf(), nn.Dropout2d(0.1))
    cfg = ss.compile(m, input_shape=(2, 6, 6))
    assert cfg.cores[0].provenance.modules == ["1", "3"]


# ------------------------------------------------------------------ discretization
def test_leak_test_discretization_golden():
    d = discretize_layer(np.ones((1, 1, 1, 1)), np.array([-0.1]), 1.0, -1.0, np.ones((1, 2, 2)))
    assert (d.weights.ravel().tolist(), d.biases.tolist(), d.threshold_high, d.threshold_low,
            d.initial_vmem.ravel().tolist()) == ([127], [-13], 127, -127, [127] * 4)


def test_min_v_mem_none_collapses_scale_and_warns():
    w = np.array([-0.5, 0.3]).reshape(2, 1, 1, 1)
    d = discretize_layer(w, None, 1.0, None, None, name="conv")
    assert d.weights.ravel().tolist() == [0, 0] and d.scale == 1.0
    assert any("min_v_mem is None" in n for n in d.warnings) and any("zeroes 2 of 2" in n for n in d.warnings)
    d = discretize_layer(w, None, 1.0, -1.0, None)
    assert d.scale == 256 and d.weights.ravel().tolist() == [-128, 77] and d.threshold_high == 256


def test_threshold_low_never_zero():
    d = discretize_layer(np.full((1, 1, 1, 1), 100.0), None, 1000.0, -0.001, None, name="x")
    assert d.threshold_low == -1 and any("hardware bug" in n for n in d.warnings)


def _sinabs_discretize():
    import sinabs

    path = pathlib.Path(sinabs.__file__).parent / "backend" / "dynapcnn" / "discretize.py"
    spec = importlib.util.spec_from_file_location("_sinabs_discretize", path)  # no sinabs.backend import
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10 ** 6), wscale=st.floats(0.01, 10), thr=st.floats(0.1, 50),
       low=st.one_of(st.none(), st.floats(-50, -0.01)), bias=st.booleans())
def test_discretization_equals_sinabs(seed, wscale, thr, low, bias):
    mod = _sinabs_discretize()
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 5, 3, bias=bias)
    with torch.no_grad():
        conv.weight.mul_(wscale)
    spk = sl.IAFSqueeze(batch_size=1, spike_threshold=thr, min_v_mem=low)
    c2, s2 = mod.discretize_conv_spike(conv, spk, to_int=False)
    if int(s2.spike_threshold) < 1:  # sinabs writes a threshold of 0: garbage we refuse, naming the layer
        with pytest.raises(InvalidParameterError, match="'1'.*discretizes to 0"):
            ss.compile(nn.Sequential(conv, spk), input_shape=(3, 5, 5))
        return
    ours = ss.compile(nn.Sequential(conv, spk), input_shape=(3, 5, 5), allow_zeroed_weights=True).cores[0]
    assert np.array_equal(ours.weights, c2.weight.detach().numpy().astype(np.int8))
    if bias:
        assert np.array_equal(ours.biases, c2.bias.detach().numpy().astype(np.int16))
    assert ours.threshold_high == int(s2.spike_threshold)
    exp_low = -32768 if low is None else int(s2.min_v_mem)
    assert ours.threshold_low == (exp_low if exp_low != 0 else -1)


# ------------------------------------------------------------------ properties of compiled configs
@st.composite
def random_models(draw):
    n = draw(st.integers(1, 4))
    C = draw(st.integers(1, 4))
    H = draw(st.sampled_from([4, 8, 16]))
    layers, c, h = [], C, H
    for _ in range(n):
        out = draw(st.integers(1, 8))
        k = draw(st.sampled_from([1, 3]))
        layers += [nn.Conv2d(c, out, k, padding=k // 2, bias=draw(st.booleans())), iaf()]
        if draw(st.booleans()) and h >= 4:
            layers.append(sl.SumPool2d(2))
            h //= 2
        c = out
    torch.manual_seed(draw(st.integers(0, 1000)))
    return nn.Sequential(*layers), (C, H, H)


@settings(max_examples=30, deadline=None)
@given(random_models())
def test_compiled_configs_satisfy_every_limit_and_round_trip(case):
    model, shape = case
    a = ss.compile(model, input_shape=shape)
    b = ss.compile(model, input_shape=shape)
    assert a == b  # deterministic
    validate(a)  # every checked limit holds
    spec = get_chip(a.chip)
    for c, cc in a.cores.items():
        assert cc.kernel_memory <= spec.cores[c].kernel and cc.neuron_memory <= spec.cores[c].neuron
        assert cc.weights.dtype == np.int8 and cc.threshold_low != 0 and len(cc.destinations) <= 2
    assert ChipConfig.from_json(a.to_json()) == a
    assert ChipConfig.from_msgpack(a.to_msgpack()) == a
    j = json.loads(a.to_json())
    assert j["format"] == "speckstream-chipconfig"


def test_config_save_load_and_bad_files(tmp_path):
    cfg = ss.compile(models.ResidualMerge(), input_shape=(2, 34, 34))
    for name in ("net.json", "net.msgpack"):
        cfg.save(tmp_path / name)
        assert ss.load_config(tmp_path / name) == cfg
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a speckstream ChipConfig"):
        ss.load_config(tmp_path / "bad.json")


def test_importing_config_and_runtime_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, speckstream, speckstream.compiler, speckstream.compiler.config, speckstream.sim, "
            "speckstream.codec, speckstream.runtime; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_average_pool_rescales_the_next_layers_weights():
    torch.manual_seed(3)
    conv2 = nn.Conv2d(4, 4, 1, bias=False)
    m = nn.Sequential(nn.Conv2d(2, 4, 1, bias=False), iaf(), nn.AvgPool2d(2), conv2, iaf())
    cfg = ss.compile(m, input_shape=(2, 4, 4))
    cc = cfg.cores[cfg.layer_order[1]]
    assert cc.provenance.weight_rescale == 0.25
    # the same integers as discretizing weights / 4 directly
    d = discretize_layer(conv2.weight.detach().numpy() * 0.25, None, 1.0, -1.0, None)
    assert np.array_equal(cc.weights, d.weights) and cc.threshold_high == d.threshold_high
    assert cfg.cores[cfg.layer_order[0]].destinations[0].pooling == 2


def test_dvs_input_stage_absorbs_input_pooling():
    m = nn.Sequential(sl.SumPool2d(2), nn.Conv2d(2, 4, 3, padding=1, bias=False), iaf())
    with pytest.raises(GraphStructureError, match="DVS input stage"):
        ss.compile(m, input_shape=(2, 64, 64))
    cfg = ss.compile(m, input_shape=(2, 64, 64), dvs=True)
    assert cfg.dvs.pooling == (2, 2) and cfg.dvs.input_size == (64, 64)
    assert cfg.dvs.destinations == cfg.input_cores and cfg.cores[cfg.input_cores[0]].input_shape == (2, 32, 32)
    assert ChipConfig.from_json(cfg.to_json()) == cfg


def test_a_layer_whose_memories_fit_different_cores_is_told_so_with_the_size_that_fits():
    # kernel 32 Ki fits cores 3-6, neuron 64 Ki (16 x 64x64) only cores 0-2: no core holds both
    m = nn.Sequential(nn.Conv2d(128, 16, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0))
    with pytest.raises(LayerDoesNotFitError) as e:
        ss.compile(m, (128, 64, 64))
    msg = str(e.value)
    assert "kernel memory fits cores [3, 4, 5, 6] and its neuron memory cores [0, 1, 2]: no core has both" in msg
    assert "at most 8 output channels fit (cores 0, 1, 2, 3, 4)" in msg and "fewer output channels" in msg
