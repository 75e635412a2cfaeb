"""ss.calibrate: tune a trained model's chip parameters for the chip, after training, on a data set.

What the chip lets us choose without retraining, per layer: the vmem floor (``min_v_mem``), the threshold
relative to the weights (``threshold_scale``), the fraction of the discretization factor (``precision``:
weights and thresholds together, within int8 / int16), the reset mode, and for networks with biases the
slow-clock rate (one per chip). Each is a ``compile`` option, so a calibration is a set of compile options:
``ss.compile(model, **calibration.options)`` rebuilds its config.

The search is a greedy coordinate search in layer order (a layer's input depends on the layers before it,
so earlier layers are settled first), over a short list of candidates per option ordered from the model's
own value outwards; a candidate is kept only if it improves the objective on the search part of the data set,
so ties keep the value closest to the model. Passes repeat until one changes nothing (or the budget runs
out). It is deterministic: ``ss.evaluate`` gives the same predictions on any executor, and candidates are
tried in a fixed order. Why not something cleverer: every evaluation is a full simulation of the search set,
the options interact mostly along the layer order, and the candidate lists are short, so coordinate search
reaches the good region in a few dozen evaluations, each of which the history records.

A part of the data set (every k-th sample) is held out of the search and gives the reported figure; if the
calibrated config scores lower there than the uncalibrated one, the uncalibrated one is returned (and the
report says so), so calibrating never makes the held-out figure worse.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .compiler.config import ChipConfig
from .errors import SpeckstreamError

__all__ = ["calibrate", "Calibration", "CalibrationReport", "LayerChange", "Trial", "CalibrationError",
           "OBJECTIVES", "SEARCH", "spike_count_agreement"]

OBJECTIVES = ("accuracy", "agreement", "spike_counts")
#: the options searched, in the order tried within a layer
SEARCH = ("min_v_mem", "threshold_scale", "precision", "reset", "slow_clock_hz")
_FLOOR_MULTIPLES = (-1, -2, -4, -8, -16, -32, -64, -128, -256)  # x the layer's threshold
_THRESHOLD_SCALES = (1.25, 0.8, 1.6, 0.6, 2.5, 4.0)  # x the current one: passes compound them
_PRECISIONS = (0.75, 0.5)
_SLOW_CLOCKS = (1000.0, 500.0, 2000.0, 200.0, 5000.0)


class CalibrationError(SpeckstreamError, ValueError):
    """calibrate() cannot run: an empty or too small data set, labels outside the output channels, an unknown
    objective or option, a budget too small for one evaluation."""


@dataclass(frozen=True)
class Trial:
    """One evaluation of the search (``score`` on the search part; NaN when the candidate does not compile)."""

    step: int
    layer: str | None  # None: the baseline and chip-wide options (slow clock)
    option: str
    value: Any
    score: float
    kept: bool
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class LayerChange:
    layer: str
    core: int
    option: str
    before: Any
    after: Any


@dataclass
class CalibrationReport:
    objective: str
    search_before: float  # the objective on the search part, uncalibrated / calibrated
    search_after: float
    holdout_before: float  # ... and on the held-out part: the figure to trust
    holdout_after: float
    holdout: str  # which samples were held out
    changes: list[LayerChange]
    evaluations: int
    seconds: float
    stopped: str  # why the search ended
    kept_original: bool = False  # the calibrated config was worse on the held-out part: the original is returned

    def table(self) -> str:
        lines = [f"calibrate ({self.objective}): search part {self.search_before:.3f} -> {self.search_after:.3f}, "
                 f"held out {self.holdout_before:.3f} -> {self.holdout_after:.3f} ({self.holdout}); "
                 f"{self.evaluations} evaluations in {self.seconds:.1f} s; {self.stopped}"]
        if self.kept_original:
            lines.append("the calibrated options scored lower on the held-out part: the uncalibrated config is kept")
        if not self.changes:
            lines.append("no option changed")
        for c in self.changes:
            lines.append(f"  layer {c.layer} (core {c.core}): {c.option} {_fmt(c.before)} -> {_fmt(c.after)}")
        return "\n".join(lines)

    __str__ = table


@dataclass
class Calibration:
    """The calibrated config, the compile options that rebuild it, the report and every evaluation."""

    config: ChipConfig
    options: dict  # ss.compile(model, **options) rebuilds config
    report: CalibrationReport
    history: list[Trial] = field(default_factory=list)


def _name(cfg: ChipConfig, core: int) -> str:
    """A layer's name as compile's per-layer options take it: its weight module."""
    prov = cfg.cores[core].provenance
    return prov.modules[0] if prov else str(core)


def _fmt(v) -> str:
    return "model" if v == "model" else "no floor" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------- data
def _materialise(dataset) -> list:
    """The data set as a sequence: a sized, indexable one is kept as it is (samples are read on demand)."""
    if isinstance(dataset, Sequence) or (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        return dataset  # type: ignore[return-value]
    return list(dataset)


def _split(n: int, holdout: float) -> tuple[list[int], list[int], str]:
    k = max(2, int(round(1 / holdout)))
    held = [i for i in range(n) if i % k == k - 1]
    search = [i for i in range(n) if i % k != k - 1]
    if not held or not search:
        raise CalibrationError(f"the data set has {n} sample(s): too few to hold out every {k}th one for the "
                               "reported figure and search on the rest (give at least "
                               f"{k} samples, or a larger holdout)")
    shown = ", ".join(map(str, held[:4])) + (", ..." if len(held) > 4 else "")
    return search, held, f"every {k}th sample held out (indices {shown}): {len(held)} of {n}"


class _View(Sequence):
    """Samples ``idx`` of a sequence, read on demand (evaluate streams them)."""

    def __init__(self, data, idx: list[int]):
        self.data, self.idx = data, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self.data[j] for j in self.idx[i]]
        return self.data[self.idx[i]]


# ---------------------------------------------------------------------------------------------- scoring
class _Scorer:
    """The objective of a config on a part of the data set, through ss.evaluate: the share of samples whose
    prediction equals the target (labels, or the model's predictions), or for "spike_counts" the mean over samples
    and layers of min(chip, model) / max(chip, model) spike counts (1 where both are 0)."""

    def __init__(self, objective: str, executor, targets: dict[str, np.ndarray]):
        self.objective, self.executor, self.targets = objective, executor, targets

    def __call__(self, cfg: ChipConfig, part: str, samples) -> float:
        from .api import evaluate

        counts = self.objective == "spike_counts"
        res = evaluate(cfg, samples, executor=self.executor, progress=False, activity=counts)
        if not counts:
            return float(np.mean(res.predictions == self.targets[part]))
        assert res.activity is not None
        return spike_count_agreement(res.activity.spikes_out, self.targets[part])


def spike_count_agreement(chip: np.ndarray, model: np.ndarray) -> float:
    """Mean over samples and layers of min / max of the two spike counts (1 where both are 0): 1 when every
    layer of every sample fires as often on the chip as in the model."""
    chip, model = np.asarray(chip, np.float64), np.asarray(model, np.float64)
    hi = np.maximum(chip, model)
    return float(np.mean(np.where(hi > 0, np.minimum(chip, model) / np.where(hi > 0, hi, 1), 1.0)))


def _float_counts(model, cfg: ChipConfig, samples) -> list[dict[int, np.ndarray]]:
    """The torch model time-stepped in 1 ms bins on each sample: its spike counts per core's spiking layer."""
    from .comparison import _core_inputs, _float_torch, _model_input
    from .codec.inputs import to_input

    out = []
    for events, _ in samples:
        kind, ev = to_input(cfg, events)
        T = int(ev["t"].max() // 1000) + 1 if len(ev) else 1
        x = _model_input(cfg, kind, ev, _core_inputs(cfg, kind, ev, T, 1000), T, 1000)
        out.append(_float_torch(model, cfg, x))
    return out


def _float_targets(objective: str, model, cfg: ChipConfig, samples) -> np.ndarray:
    """The model's own predictions ("agreement"), or its spike counts per sample and layer ("spike_counts")."""
    counts = _float_counts(model, cfg, samples)
    if objective == "spike_counts":
        return np.asarray([[float(f[c].sum()) if c in f else 0.0 for c in cfg.layer_order] for f in counts])
    out_core = cfg.output_cores[0]
    preds = []
    for f in counts:
        c = f.get(out_core)
        c = np.zeros(1) if c is None else c.reshape(-1)
        preds.append(int(np.argmax(c)) if c.max() > 0 else -1)
    return np.asarray(preds)


# ---------------------------------------------------------------------------------------------- search
def _candidates(option: str, current, threshold: float | None, has_bias: bool) -> list:
    if option == "min_v_mem":
        if threshold is None:
            return []
        return [float(k * threshold) for k in _FLOOR_MULTIPLES]
    if option == "threshold_scale":
        return [float(current * g) for g in _THRESHOLD_SCALES]
    if option == "precision":
        return [float(p) for p in _PRECISIONS]
    if option == "reset":
        return ["subtract", "zero"]
    if option == "slow_clock_hz":
        return list(_SLOW_CLOCKS) if has_bias else []
    raise CalibrationError(f"unknown option {option!r}; search options are {SEARCH}")


_PER_LAYER_DEFAULTS = {"min_v_mem": "model", "reset": "model", "threshold_scale": 1.0, "precision": 1.0}


def _per_layer(options: dict, names: list[str]) -> dict:
    """The per-layer options as dicts over every layer (a scalar the user gave applies to each)."""
    out = dict(options)
    for option, default in _PER_LAYER_DEFAULTS.items():
        v = options.get(option, default)
        out[option] = {n: v.get(n, default) for n in names} if isinstance(v, dict) else {n: v for n in names}
    return out


def _with(options: dict, option: str, layer: str | None, value) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}
    if layer is None:
        out[option] = value
    else:
        out[option][layer] = value
    return out


def _value(options: dict, option: str, layer: str | None, default):
    v = options.get(option, default)
    return v.get(layer, default) if isinstance(v, dict) and layer is not None else v


@dataclass
class _State:
    options: dict
    config: ChipConfig
    score: float
    history: list[Trial]
    t0: float
    budget_s: float | None
    stopped: str = "searched every option until a pass changed nothing"

    def out_of_time(self) -> bool:
        return self.budget_s is not None and time.perf_counter() - self.t0 >= self.budget_s


def _try(state: _State, compile_fn, score_fn, option: str, layer: str | None, value, progress) -> None:
    from .compiler.errors import CompileError

    trial = _with(state.options, option, layer, value)
    t = time.perf_counter()
    try:
        cfg = compile_fn(trial)
    except CompileError as e:
        state.history.append(Trial(len(state.history), layer, option, value, float("nan"), False,
                                   time.perf_counter() - t, f"does not compile: {type(e).__name__}"))
        progress()
        return
    if cfg == state.config:  # e.g. reset="subtract" for a model that subtracts: nothing to evaluate
        state.history.append(Trial(len(state.history), layer, option, value, state.score, False,
                                   time.perf_counter() - t, "same config as the current one"))
        progress()
        return
    score = score_fn(cfg)
    kept = score > state.score + 1e-12
    state.history.append(Trial(len(state.history), layer, option, value, score, kept, time.perf_counter() - t))
    if kept:
        state.options, state.config, state.score = trial, cfg, score
    progress()


def _one_pass(state: _State, layers: list[tuple[str, int]], search: tuple[str, ...], compile_fn, score_fn,
              has_bias: bool, progress) -> bool:
    before = state.score
    if "slow_clock_hz" in search and has_bias:
        for v in _candidates("slow_clock_hz", None, None, has_bias):
            if state.out_of_time():
                return False
            if v != state.options.get("slow_clock_hz"):
                _try(state, compile_fn, score_fn, "slow_clock_hz", None, v, progress)
    for name, core in layers:
        for option in (o for o in search if o != "slow_clock_hz"):
            thr = state.config.cores[core].provenance.threshold if state.config.cores[core].provenance else None
            current = _value(state.options, option, name, _PER_LAYER_DEFAULTS[option])
            for v in _candidates(option, current, thr, has_bias):
                if state.out_of_time():
                    state.stopped = f"stopped by budget_s={state.budget_s:g} s"
                    return False
                if v != current:
                    _try(state, compile_fn, score_fn, option, name, v, progress)
    return state.score > before


def _effective(option: str, value, prov, cc):
    """A per-layer option's value with "model" resolved to what the model compiled to, so a candidate equal to
    the model's own value is not reported as a change."""
    if value != "model":
        return value
    if option == "min_v_mem":
        return prov.min_v_mem if prov else value
    if option == "reset":
        return "zero" if cc.return_to_zero else "subtract"
    return 1.0


def _changes(before: ChipConfig, options: dict, base: dict) -> list[LayerChange]:
    out = []
    for c in before.layer_order:
        cc = before.cores[c]
        name = _name(before, c)
        for option, default in _PER_LAYER_DEFAULTS.items():
            old = _effective(option, _value(base, option, name, default), cc.provenance, cc)
            new = _effective(option, _value(options, option, name, default), cc.provenance, cc)
            if new != old:
                out.append(LayerChange(name, c, option, old, new))
    if options.get("slow_clock_hz") != base.get("slow_clock_hz"):
        out.append(LayerChange("(chip)", -1, "slow_clock_hz", base.get("slow_clock_hz"), options.get("slow_clock_hz")))
    return out


# ---------------------------------------------------------------------------------------------- entry
def _check_args(objective, holdout, budget_s, search) -> None:
    if objective not in OBJECTIVES:
        raise CalibrationError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout <= 0.5:
        raise CalibrationError(f"holdout must be a fraction in (0, 0.5], got {holdout!r}")
    if budget_s is not None and (isinstance(budget_s, bool) or not isinstance(budget_s, (int, float))
                                 or not math.isfinite(budget_s) or budget_s <= 0):
        raise CalibrationError(f"budget_s must be a positive number of seconds or None, got {budget_s!r}")
    bad = [o for o in search if o not in SEARCH]
    if bad:
        raise CalibrationError(f"search names {bad[0]!r}; the options are {SEARCH}")


def _labels(data, idx: list[int], n_classes: int) -> np.ndarray:
    labels = []
    for i in idx:
        try:
            _, label = data[i]
        except (TypeError, ValueError):
            raise CalibrationError(f"dataset item {i} is not an (events, label) pair") from None
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
            raise CalibrationError(f"dataset item {i} has label {label!r}: the output layer has {n_classes} "
                                   f"channels (classes 0..{n_classes - 1})")
        labels.append(int(label))
    return np.asarray(labels)


def calibrate(model, dataset, *, input_shape=None, objective: str = "accuracy", executor=None,
              budget_s: float | None = None, holdout: float = 0.25, search: tuple[str, ...] = SEARCH,
              progress: bool = True, **compile_options) -> Calibration:
    """Tune the chip parameters of ``model`` on ``dataset`` ((events, label) pairs, as for ``ss.evaluate``)
    and return a :class:`Calibration` (see the module docstring for the search).

    ``objective``: "accuracy" (labels needed), "agreement" (the share of samples where the chip predicts
    what the torch model predicts, time-stepped in 1 ms steps; labels are ignored) or "spike_counts" (how
    closely every layer's spike count on the chip follows the torch model's, per sample; labels ignored). ``executor``: as for
    ``ss.evaluate`` (default: one process pool for the whole search; "serial"; a Dask client's executor).
    ``budget_s``: stop searching after this many seconds, keeping the best so far. ``holdout``: the fraction
    held out for the reported figure (every k-th sample). ``search``: which options to tune.
    ``compile_options``: passed to ``ss.compile`` (chip, dvs, slow_clock_hz, min_v_mem, ...); the search starts
    from them.

    Raises CalibrationError (an empty or too small data set, labels outside the output channels, a budget too
    small for one evaluation, unknown arguments) and CompileError when the model does not compile as given.
    """
    from .compiler import compile as ss_compile

    _check_args(objective, holdout, budget_s, search)
    data = _materialise(dataset)
    if len(data) == 0:
        raise CalibrationError("the data set is empty: calibrate needs (events, label) samples to evaluate on")
    search_idx, held_idx, held_text = _split(len(data), holdout)
    base = dict(compile_options)
    base.setdefault("input_shape", input_shape)
    bad = [k for k in base if k in ("model", "dataset")]
    if bad:
        raise CalibrationError(f"{bad[0]} is given twice")

    def compile_fn(options: dict) -> ChipConfig:
        import warnings

        from .compiler.errors import CompileWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompileWarning)
            return ss_compile(model, **options)

    config0 = compile_fn(base)
    base = _per_layer(base, [_name(config0, c) for c in config0.layer_order])
    if len(config0.output_cores) != 1:
        raise CalibrationError(f"calibrate needs one output layer to read classes from; the config has "
                               f"{len(config0.output_cores)}")
    n_classes = config0.cores[config0.output_cores[0]].output_shape[0]
    parts = {"search": _View(data, search_idx), "holdout": _View(data, held_idx)}
    if objective == "accuracy":
        targets = {"search": _labels(data, search_idx, n_classes), "holdout": _labels(data, held_idx, n_classes)}
    else:
        targets = {k: _float_targets(objective, model, config0, v) for k, v in parts.items()}
    own = None
    if executor is None and len(search_idx) > 1 and (os.cpu_count() or 1) > 1:
        own = executor = cf.ProcessPoolExecutor(max_workers=os.cpu_count())
    try:
        return _search(model, config0, base, parts, targets, objective, executor, budget_s, search, progress,
                       held_text, compile_fn)
    finally:
        if own is not None:
            own.shutdown(wait=True)


def _search(model, config0, base, parts, targets, objective, executor, budget_s, search, progress, held_text,
            compile_fn) -> Calibration:
    scorer = _Scorer(objective, executor, targets)
    t0 = time.perf_counter()
    probe = _View(parts["search"].data, parts["search"].idx[:4])
    tp = time.perf_counter()
    _Scorer(objective, "serial", {"search": targets["search"][:len(probe)]})(config0, "search", probe)
    one = (time.perf_counter() - tp) * len(parts["search"]) / len(probe)
    if budget_s is not None and one > budget_s:
        raise CalibrationError(f"budget_s={budget_s:g} s is less than one evaluation of the {len(parts['search'])} "
                               f"search samples (about {one:.1f} s, measured on {len(probe)}): give more time or "
                               "fewer samples")
    before = scorer(config0, "search", parts["search"])
    state = _State(base, config0, before, [Trial(0, None, "baseline", None, before, True, time.perf_counter() - t0)],
                   t0, budget_s)
    has_bias = any(np.any(cc.biases) for cc in config0.cores.values())
    layers = [(_name(config0, c), c) for c in config0.layer_order]
    per_pass = len(layers) * (len(_FLOOR_MULTIPLES) + len(_THRESHOLD_SCALES) + len(_PRECISIONS) + 1) \
        + (len(_SLOW_CLOCKS) if has_bias else 0)
    with _Progress(progress, per_pass, objective) as bar:
        for k in range(3):
            bar.new_pass(k)
            changed = _one_pass(state, layers, search, compile_fn,
                                lambda cfg: scorer(cfg, "search", parts["search"]),
                                has_bias, lambda: bar.step(state.score))
            if not changed or state.out_of_time():
                break
    hold_before = scorer(config0, "holdout", parts["holdout"])
    hold_after = scorer(state.config, "holdout", parts["holdout"]) if state.config is not config0 else hold_before
    kept_original = hold_after < hold_before
    config, options = (config0, base) if kept_original else (state.config, state.options)
    report = CalibrationReport(objective, before, state.score, hold_before, hold_before if kept_original else hold_after,
                               held_text, _changes(config0, options, base), len(state.history),
                               time.perf_counter() - t0, state.stopped, kept_original)
    return Calibration(config, options, report, state.history)


class _Progress:
    """A rich progress bar over the evaluations of a pass (silent when ``enabled`` is False)."""

    def __init__(self, enabled: bool, total: int, objective: str):
        self.enabled, self.total, self.objective = enabled, total, objective
        self.bar: Any = None  # a rich Progress once entered (rich is imported only then)
        self.task: Any = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task(f"calibrate ({self.objective})", total=self.total)
        return self

    def new_pass(self, k: int) -> None:
        if self.bar is not None:
            self.bar.reset(self.task, total=self.total, description=f"calibrate ({self.objective}) pass {k + 1}")

    def step(self, best: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=f"calibrate ({self.objective}: best {best:.3f})")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
