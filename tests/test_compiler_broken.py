"""Broken models and configs: one CompileError (or ConfigValidationError) naming the module, never garbage,
never a raw numpy / torch error. A fuzz test mutates working models at random to find the next one."""
from __future__ import annotations

import copy
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import sinabs.layers as sl
import speckstream as ss
from speckstream.compiler import ChipConfig, validate
from speckstream.compiler.validate import find_problems
from speckstream.compiler.errors import (CompileError, CompileWarning, ConfigValidationError, GraphStructureError,
                                         InvalidParameterError, ShapeMismatchError, ZeroedWeightsError)
from speckstream.errors import SpeckstreamError

from speckstream.testing import models

pytestmark = pytest.mark.filterwarnings("ignore::speckstream.compiler.errors.CompileWarning")


def iaf(**kw):
    kw.setdefault("min_v_mem", -1.0)
    return sl.IAFSqueeze(batch_size=1, **kw)


def small(**iaf_kw):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), iaf(**iaf_kw), sl.SumPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3), iaf())


def with_bn(var=None, eps=1e-5):
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4, eps=eps)
    bn.eval()
    if var is not None:
        bn.running_var.fill_(var)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), bn, iaf())


def poisoned(param: str, value: float, module: str = "0"):
    m = small()
    with torch.no_grad():
        getattr(dict(m.named_modules())[module], param).view(-1)[1] = value
    return m


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.i1, self.c2, self.i2 = nn.Conv2d(2, 4, 1), iaf(), nn.Conv2d(4, 4, 1), iaf()

    def forward(self, x):
        h = self.i1(self.c1(x))
        h.mul_(3)
        return self.i2(self.c2(h))


def _state(v):
    m = small()
    m[1].v_mem = torch.full((1, 4, 8, 8), v)
    return m


BROKEN = {
    "nan weight": (lambda: poisoned("weight", math.nan), InvalidParameterError, "0", "non-finite weights"),
    "inf weight": (lambda: poisoned("weight", math.inf), InvalidParameterError, "0", "non-finite"),
    "-inf bias": (lambda: poisoned("bias", -math.inf), InvalidParameterError, "0", "non-finite biases"),
    "nan linear bias": (lambda: poisoned("bias", math.nan, "4"), InvalidParameterError, "4", "non-finite"),
    "nan v_mem": (lambda: _state(math.nan), InvalidParameterError, "1", "non-finite v_mem"),
    "bn var < 0": (lambda: with_bn(var=-1.0), InvalidParameterError, "1", "running_var"),
    "bn var + eps = 0": (lambda: with_bn(var=-0.5, eps=0.5), InvalidParameterError, "1", "running_var"),
    "threshold 0": (lambda: small(spike_threshold=0.0), InvalidParameterError, "1", "must be > 0"),
    "threshold < 0": (lambda: small(spike_threshold=-1.0), InvalidParameterError, "1", "must be > 0"),
    "threshold inf": (lambda: small(spike_threshold=math.inf), InvalidParameterError, "1", "finite"),
    "threshold nan": (lambda: small(spike_threshold=math.nan), InvalidParameterError, "1", "finite"),
    "min_v_mem nan": (lambda: small(min_v_mem=math.nan), InvalidParameterError, "1", "finite"),
    "min_v_mem -inf": (lambda: small(min_v_mem=-math.inf), InvalidParameterError, "1", "finite"),
    "min_v_mem = threshold": (lambda: small(min_v_mem=1.0), InvalidParameterError, "1", "floor"),
    "min_v_mem > threshold": (lambda: small(min_v_mem=2.0), InvalidParameterError, "1", "floor"),
    "in-place op": (InPlace, GraphStructureError, "c2", "modified in place"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_models_raise_one_compile_error_naming_the_module(case):
    factory, err, module, words = BROKEN[case]
    shape = (2, 8, 8)
    with pytest.raises(err) as e:
        ss.compile(factory(), shape)
    assert e.value.module == module and f"'{module}'" in str(e.value) and words in str(e.value)
    assert isinstance(e.value, SpeckstreamError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("bad", [(2, 8.5, 8), (2, 8.0, 8), (2, -8, 8), (2, 0, 8), (2, 8), "2,8,8", 5, (True, 8, 8)])
def test_bad_input_shapes(bad):
    with pytest.raises(CompileError, match="input_shape"):
        ss.compile(small(), bad)


@pytest.mark.parametrize("hz", [-1.0, 0.0, 0.5, math.nan, math.inf, 2e6, "10"])
def test_bad_slow_clock(hz):
    with pytest.raises(CompileError, match="slow_clock_hz"):
        ss.compile(small(), (2, 8, 8), slow_clock_hz=hz)


@pytest.mark.parametrize("model", [lambda x: x, "model.pt", "not a model", 42, None])
def test_things_that_are_not_models(model):
    with pytest.raises(CompileError, match="torch.nn.Module"):
        ss.compile(model, (2, 8, 8))


def test_shape_mismatches_name_the_module_and_both_shapes():
    m = nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), nn.Flatten(), nn.Linear(100, 3), iaf())
    with pytest.raises(ShapeMismatchError) as e:
        ss.compile(m, (2, 8, 8))
    assert e.value.module == "3" and "100" in str(e.value) and "(144,)" in str(e.value)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), iaf())
    with pytest.raises(ShapeMismatchError) as e:
        ss.compile(m, (2, 8, 8))
    assert e.value.module == "0" and "3 input channels" in str(e.value) and "(2, 8, 8)" in str(e.value)


def test_an_error_inside_a_module_names_it():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("kaboom")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.i = nn.Conv2d(2, 2, 1), iaf()
            self.boom = nn.Sequential(nn.Conv2d(2, 2, 1), iaf())
            self.boom[0].forward = Boom().forward  # a leaf module that fails

        def forward(self, x):
            return self.boom(self.i(self.c(x)))

    with pytest.raises(GraphStructureError, match="kaboom") as e:
        ss.compile(Net(), (2, 4, 4))
    assert e.value.module == "boom.0"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_other_dtypes_compile_like_float32_and_the_model_is_not_touched(dtype):
    base = small()
    want = ss.compile(base, (2, 8, 8))
    m = copy.deepcopy(base).to(dtype)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    got = ss.compile(m, (2, 8, 8))
    assert all(v.dtype == dtype for k, v in m.state_dict().items() if v.is_floating_point() and "weight" in k)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    if dtype == torch.float64:
        assert got == want
    else:  # the same model rounded to fewer bits first
        want = ss.compile(copy.deepcopy(base).to(dtype).float(), (2, 8, 8))
        assert got == want


def test_leftover_vmem_is_kept_as_sinabs_does_but_warned_with_the_count():
    m = small()
    m[1].v_mem = torch.zeros(1, 4, 8, 8)
    m[1].v_mem[0, 0, :3, :2] = 0.5
    with pytest.warns(CompileWarning, match="carries 6 non-zero v_mem.*reset_states.*initial_vmem='zero'"):
        cfg = ss.compile(m, (2, 8, 8))
    assert np.count_nonzero(cfg.cores[cfg.layer_order[0]].initial_vmem) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        warnings.filterwarnings("ignore", ".*vmem floor", CompileWarning)
        warnings.filterwarnings("ignore", ".*have biases", CompileWarning)
        zero = ss.compile(m, (2, 8, 8), initial_vmem="zero")
        kept = ss.compile(m, (2, 8, 8), initial_vmem="model")
    assert not zero.cores[zero.layer_order[0]].initial_vmem.any()
    assert np.count_nonzero(kept.cores[kept.layer_order[0]].initial_vmem) == 6


def test_a_monitored_layer_that_pools_is_warned_about():
    m = small()
    with pytest.warns(CompileWarning, match="'0' is monitored and pools its output by 2"):
        ss.compile(m, (2, 8, 8), monitor="all")


def test_pooled_spikes_off_the_destination_map_are_warned_about():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 4, 3), iaf(), sl.SumPool2d(2), nn.Conv2d(4, 4, 3, padding=1), iaf())
    with pytest.warns(CompileWarning, match="'0' \\(7x7\\) pools by 2.*land off"):
        ss.compile(m, (2, 9, 9))


def _nir_conv_graph(nir, w):
    kw = {"v_reset": np.zeros((4, 8, 8))} if "v_reset" in nir.IF.__dataclass_fields__ else {}
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
               "conv": nir.Conv2d(input_shape=(8, 8), weight=w, stride=1, padding=1, dilation=1, groups=1,
                                  bias=np.zeros(4, np.float32)),
               "if1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.full((4, 8, 8), 1.0), **kw),
               "output": nir.Output(output_type={"output": np.array([4, 8, 8])})},
        edges=[("input", "conv"), ("conv", "if1"), ("if1", "output")])


def test_nir_graph_without_a_floor_whose_weights_all_quantize_to_zero_is_refused_naming_min_v_mem(tmp_path):
    nir = pytest.importorskip("nir")
    graph = _nir_conv_graph(nir, np.full((4, 2, 3, 3), 0.01, np.float32))
    with pytest.raises(ZeroedWeightsError, match=r"min_v_mem.*\[-32768, 1\]|\[-32768, 1\].*min_v_mem") as e:
        ss.compile(graph, min_v_mem=None)  # no floor: the int16 range caps the factor at 1
    assert e.value.module == "conv" and isinstance(e.value, InvalidParameterError)
    assert "allow_zeroed_weights=True" in str(e.value) and "72 of 72" in str(e.value)
    cfg = ss.compile(graph, min_v_mem=-1.0)
    assert cfg.cores[0].weights.any()
    path = tmp_path / "net.nir"
    nir.write(str(path), graph)
    assert ss.compile(path, min_v_mem=-1.0) == cfg
    assert ss.compile(path) == ss.compile(graph)  # NIR's default floor: -threshold, as sinabs.from_nir
    assert ss.compile(path).cores[0].weights.any()
    with pytest.raises(ZeroedWeightsError):
        ss.compile(path, min_v_mem=None)
    with pytest.warns(CompileWarning, match="72 of 72 non-zero weights"):
        forced = ss.compile(path, min_v_mem=None, allow_zeroed_weights=True)
    assert not forced.cores[0].weights.any()
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(CompileError, match="not a readable NIR file"):
        ss.compile(tmp_path / "bad.nir")


# ------------------------------------------------------------------------------ hand-edited configs
def _edit(cfg: ChipConfig, fn) -> dict:
    d = json.loads(cfg.to_json())
    fn(d)
    return d


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["cores"]["0"].update(threshold_low=200, threshold_high=100), "must lie below threshold_high"),
    (lambda d: d["cores"]["0"].update(threshold_high=0), "must be >= 1"),
    (lambda d: d["cores"]["0"].update(threshold_low=0), "threshold_low is 0"),
    (lambda d: d["cores"]["0"].update(threshold_high=40000), "does not fit int16"),
    (lambda d: d.update(slow_clock_hz=0.5), "slow_clock_hz"),
    (lambda d: d.update(slow_clock_hz=float("nan")), "slow_clock_hz"),
    (lambda d: d.update(input_cores=[7]), "input core 7 is not configured"),
    (lambda d: d.update(input_cores=[]), "no input core"),
    (lambda d: d["cores"]["1"]["destinations"].append({"core": 0, "pooling": 1, "feature_shift": 0}), "loop"),
    (lambda d: d["cores"]["0"]["destinations"][0].update(pooling=3), "pooling 3"),
    (lambda d: d["cores"]["0"].update(stride=[3, 1]), "stride 3"),
    (lambda d: d.update(layer_order=[0]), "layer_order"),
])
def test_validate_catches_hand_edited_configs(edit, words):
    cfg = ss.compile(small(), (2, 8, 8))
    d = _edit(cfg, edit)
    with pytest.raises(ConfigValidationError, match=words):
        validate(ChipConfig.from_dict(d, binary=False))


def test_out_of_range_arrays_are_refused_not_wrapped(tmp_path):
    cfg = ss.compile(small(), (2, 8, 8))
    w = cfg.cores[0].weights.astype(np.int16)
    w[0, 0, 0, 0] = 300
    with pytest.raises(ConfigValidationError, match="core 0 weights: values .*300 do not fit int8"):
        ss.compiler.CoreConfig(**{**cfg.cores[0].__dict__, "weights": w})
    with pytest.raises(ConfigValidationError, match="must be integers"):
        ss.compiler.CoreConfig(**{**cfg.cores[0].__dict__, "biases": cfg.cores[0].biases + 0.5})
    (tmp_path / "c.json").write_text(json.dumps({"format": "speckstream-chipconfig", "version": 1, "cores": 3}))
    with pytest.raises(ConfigValidationError, match="c.json: not a valid"):
        ss.load_config(tmp_path / "c.json")


def test_dvs_config_problems():
    cfg = ss.compile(nn.Sequential(nn.Conv2d(2, 4, 1), iaf()), (2, 16, 16), dvs=True)
    cfg.dvs.crop = (0, 20, 0, 16)
    assert any("crop" in p for p in find_problems(cfg))
    cfg.dvs.crop, cfg.dvs.pooling = None, (3, 1)
    assert any("pooling (3, 1)" in p for p in find_problems(cfg))
    cfg.dvs.pooling = (2, 1)
    assert any("sends (2, 8, 16) to core" in p for p in find_problems(cfg))


# ------------------------------------------------------------------------------ fuzz: random breakage
def _mutations(draw, model: nn.Module):
    """Break one thing in a working model; return (what, the module to blame or None)."""
    mods = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    weights = [(n, m) for n, m in mods if isinstance(m, (nn.Conv2d, nn.Linear))]
    neurons = [(n, m) for n, m in mods if isinstance(m, sl.IAFSqueeze)]
    kind = draw(st.sampled_from(["param", "threshold", "floor", "state", "huge"]))
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    with torch.no_grad():
        if kind in ("param", "huge"):
            name, m = draw(st.sampled_from(weights))
            p = m.weight if (m.bias is None or draw(st.booleans())) else m.bias
            i = draw(st.integers(0, p.numel() - 1))
            p.view(-1)[i] = bad if kind == "param" else draw(st.sampled_from([1e30, -1e30, 1e-30]))
            return kind, name
        name, m = draw(st.sampled_from(neurons))
        if kind == "threshold":
            m.spike_threshold = nn.Parameter(torch.tensor(draw(st.sampled_from([bad, 0.0, -1.0]))),
                                             requires_grad=False)
        elif kind == "floor":
            m.min_v_mem = nn.Parameter(torch.tensor(draw(st.sampled_from([bad, 1.0, 5.0]))), requires_grad=False)
        else:
            m.v_mem = torch.full((1, 1), bad)
        return kind, name


BASES = {"seq4": (models.seq4, (2, 34, 34)), "residual": (models.ResidualMerge, (2, 34, 34)),
         "fanout": (models.FanOut, (2, 16, 16)), "merge_split": (models.SinabsMergeSplit, (2, 34, 34))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(BASES)), st.data())
def test_fuzz_randomly_broken_models_give_a_compile_error_naming_a_module(base, data):
    factory, shape = BASES[base]
    model = factory()
    kind, blamed = _mutations(data.draw, model)
    try:
        cfg = ss.compile(model, shape)
    except CompileError as e:
        assert e.module is not None and f"'{e.module}'" in str(e), str(e)
        if kind in ("param", "threshold", "floor", "state"):
            assert e.module == blamed or blamed.startswith(e.module) or isinstance(e, InvalidParameterError)
        return
    except Exception as e:  # any other type is a bug
        raise AssertionError(f"{kind} on '{blamed}' raised {type(e).__name__}: {e}") from e
    assert kind == "huge", f"{kind} on '{blamed}' compiled silently"
    for cc in cfg.cores.values():  # a model that compiles gives a sane config
        assert math.isfinite(cc.provenance.scale) and cc.provenance.scale > 0
        assert cc.threshold_low < cc.threshold_high
    validate(cfg)
