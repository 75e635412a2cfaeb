"""ss.calibrate: it repairs deliberately mis-set chip parameters, never worsens the held-out figure, gives the
same result on any executor, and refuses bad input with one clear error each."""
from __future__ import annotations

import concurrent.futures as cf
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import speckstream as ss
from speckstream.calibration import SEARCH, CalibrationError
from speckstream.compiler.errors import CompileError, CompileWarning
from speckstream.digits import digits_dataset, digits_net, load_digits_split

pytestmark = pytest.mark.filterwarnings("ignore::speckstream.compiler.errors.CompileWarning")


@pytest.fixture(scope="module")
def small_set():
    _, _, xte, yte = load_digits_split()
    return digits_dataset(xte[:64], yte[:64], seed=7)


def _acc(cfg, data) -> float:
    return ss.evaluate(cfg, data, executor="serial", progress=False).accuracy


def test_calibrate_repairs_a_floor_set_too_high_and_a_scale_set_too_coarse(small_set):
    net = digits_net()
    bad = dict(min_v_mem=-0.05, precision={"7": 0.02})  # floors that clamp all the time; coarse output weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        mis_set = ss.compile(net, (1, 8, 8), **bad)
    good = _acc(ss.compile(net, (1, 8, 8)), small_set)
    assert _acc(mis_set, small_set) < good - 0.2  # the mis-set network really is broken
    cal = ss.calibrate(net, small_set, input_shape=(1, 8, 8), executor="serial", progress=False, **bad)
    rep = cal.report
    assert rep.search_after > rep.search_before + 0.2 and rep.holdout_after >= rep.holdout_before
    assert _acc(cal.config, small_set) > good - 0.1
    changed = {(c.layer, c.option) for c in rep.changes}
    assert ("7", "precision") in changed and {("0", "min_v_mem"), ("3", "min_v_mem")} & changed
    # the options rebuild the config, and the config is valid and saved as any other
    assert ss.compile(net, **cal.options) == cal.config
    assert "held out" in rep.table() and "every 4th sample" in rep.holdout
    assert cal.history[0].option == "baseline" and all(t.step == i for i, t in enumerate(cal.history))
    assert sum(t.kept for t in cal.history) - 1 == len({(t.layer, t.option, t.value) for t in cal.history if t.kept
                                                         and t.option != "baseline"})


def test_calibrate_gives_the_same_result_serially_and_on_a_process_pool(small_set):
    net = digits_net(min_v_mem=-1.0)
    kw = dict(input_shape=(1, 8, 8), progress=False, search=("min_v_mem", "threshold_scale"))
    serial = ss.calibrate(net, small_set[:40], executor="serial", **kw)
    with cf.ProcessPoolExecutor(max_workers=2) as pool:
        pooled = ss.calibrate(net, small_set[:40], executor=pool, **kw)
    assert serial.options == pooled.options and serial.config == pooled.config
    assert [(t.layer, t.option, t.value, t.score, t.kept) for t in serial.history] == \
        [(t.layer, t.option, t.value, t.score, t.kept) for t in pooled.history]


def test_calibrate_never_returns_a_config_worse_on_the_held_out_part(small_set):
    net = digits_net()
    for holdout in (0.25, 0.5):
        cal = ss.calibrate(net, small_set[:24], input_shape=(1, 8, 8), executor="serial", progress=False,
                           holdout=holdout, search=("threshold_scale",))
        rep = cal.report
        assert rep.holdout_after >= rep.holdout_before
        if rep.kept_original:
            assert cal.config == ss.compile(net, (1, 8, 8)) and not rep.changes and "kept" in rep.table()


def test_calibrate_on_agreement_needs_no_labels(small_set):
    net = digits_net(min_v_mem=-1.0)
    unlabelled = [(ev, 0) for ev, _ in small_set[:32]]
    cal = ss.calibrate(net, unlabelled, input_shape=(1, 8, 8), objective="agreement", executor="serial",
                       progress=False, search=("min_v_mem",))
    assert 0.5 < cal.report.search_before <= cal.report.search_after <= 1.0


def test_calibrate_stops_at_its_budget_with_the_best_so_far(small_set):
    cal = ss.calibrate(digits_net(), small_set[:32], input_shape=(1, 8, 8), executor="serial", progress=False,
                       budget_s=0.5)
    assert "budget_s" in cal.report.stopped or cal.report.seconds < 2


@pytest.mark.parametrize("data, kw, match", [
    ("empty", {}, "the data set is empty"),
    (None, {}, "too few to hold out"),
    ("labels", {}, "has label 12: the output layer has 10 channels"),
    ("pairs", {}, "is not an \\(events, label\\) pair"),
    ("ok", {"objective": "loss"}, "objective must be one of"),
    ("ok", {"holdout": 0.9}, "holdout must be a fraction"),
    ("ok", {"budget_s": -1}, "budget_s must be a positive number"),
    ("ok", {"budget_s": 1e-6}, "less than one evaluation"),
    ("ok", {"search": ("floor",)}, "search names 'floor'"),
])
def test_bad_input_is_one_clear_calibration_error(small_set, data, kw, match):
    data = {"empty": [], None: small_set[:1], "labels": [(small_set[0][0], 12)] + small_set[1:8],
            "pairs": [small_set[0][0]] + small_set[1:8], "ok": small_set[:16]}[data]
    with pytest.raises(CalibrationError, match=match):
        ss.calibrate(digits_net(), data, input_shape=(1, 8, 8), executor="serial", progress=False, **kw)


def test_a_model_that_does_not_compile_raises_its_compile_error(small_set):
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(CompileError, match="ReLU"):
        ss.calibrate(m, small_set[:8], input_shape=(1, 8, 8), executor="serial", progress=False)


def test_search_names_every_option_the_compiler_takes():
    import inspect

    params = inspect.signature(ss.compile).parameters
    assert all(o in params for o in SEARCH)
    assert torch is not None and np is not None


def test_spike_count_agreement_is_one_when_every_layer_fires_as_in_the_model():
    from speckstream.calibration import spike_count_agreement

    assert spike_count_agreement([[3, 0], [10, 5]], [[3, 0], [10, 5]]) == 1.0
    assert spike_count_agreement([[2, 0]], [[4, 0]]) == pytest.approx((0.5 + 1.0) / 2)
    assert spike_count_agreement([[0, 8]], [[4, 8]]) == pytest.approx(0.5)


def test_calibrate_on_per_layer_spike_counts_needs_no_labels_and_reports_no_noop_changes(small_set):
    net = digits_net(min_v_mem=-1.0)
    unlabelled = [(ev, 0) for ev, _ in small_set[:24]]
    cal = ss.calibrate(net, unlabelled, input_shape=(1, 8, 8), objective="spike_counts", executor="serial",
                       progress=False, search=("min_v_mem", "precision"))
    rep = cal.report
    assert 0 < rep.search_before <= rep.search_after <= 1 and rep.holdout_after >= rep.holdout_before
    for c in rep.changes:  # a change is a change of what the chip runs, not of how it is spelled
        assert c.before != c.after
