"""compile()'s keyword arguments, checked once up front, and the per-layer neuron overrides they carry.

``min_v_mem`` and ``reset`` override what the model says about its spiking layers, for every layer or per layer
(a dict keyed by layer or spiking-module name). They exist because a model's own values are not always what
the chip should run: a NIR graph has no vmem floor at all, a sinabs ``from_model`` network has a floor of -1
that the event-driven chip clamps at after every inhibitory event, and ``ss.calibrate`` searches them.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Literal, Union

import numpy as np
from torch import nn

from .chips import ChipSpec, get_chip
from .config import DVSConfig, ReadoutConfig
from .errors import CompileError, InvalidParameterError
from .layers import Spiking

__all__ = ["Options", "check_options", "input_shape_of", "FloorSpec", "ResetSpec", "neuron_for_chip",
           "precision_for", "decimator_for", "check_layer_keys"]

#: a vmem floor: "model" (the model's own; for NIR graphs -v_threshold, as sinabs.from_nir), "threshold"
#: (-1 x the layer's threshold), None (no floor: -32768 on the chip) or a number in the model's units
FloorSpec = Union[Literal["model", "threshold"], float, None]
#: a reset: "model" (the model's own; NIR's IF subtracts), "subtract" (the threshold) or "zero"
ResetSpec = Literal["model", "subtract", "zero"]


@dataclass
class Options:
    """compile()'s keyword arguments, checked once up front."""

    chip: ChipSpec
    dvs: object = None  # None | bool | "sensor" | DVSConfig
    monitor: object = "exits"
    core_map: dict | None = None
    slow_clock_hz: float | None = None
    readout: ReadoutConfig | None = None
    rescale: Callable | None = None
    initial_vmem: str | None = None  # None (the model's state, warned) | "model" | "zero"
    min_v_mem: object = "model"  # FloorSpec, or {layer name: FloorSpec}
    reset: object = "model"  # ResetSpec, or {layer name: ResetSpec}
    allow_zeroed_weights: bool = False  # compile layers whose weights (nearly) all quantize to 0, with a warning
    threshold_scale: object = 1.0  # the threshold x this (float > 0, or {layer name: float})
    precision: object = 1.0  # the fraction of sinabs' discretization factor to use (0 < p <= 1, or a dict)
    decimator: object = 1  # the output decimator: 1 (off) or "1 of N" (N in DECIMATOR_RATES), or a dict per layer

    @property
    def wants_dvs(self) -> bool:
        return self.dvs is not None and self.dvs is not False


def _rescale_fn(rescale) -> Callable | None:
    """sinabs' resolutions of conflicting average-pool factors: rescale_method_1 ("mean") and
    rescale_method_2 ("harmonic"): 0.5 x the (harmonic) mean of the distinct factors, rounded to 2 decimals."""
    if rescale is None or callable(rescale):
        return rescale
    if rescale == "mean":
        return lambda f: float(np.round(np.mean(list(f)) * 0.5, 2))
    if rescale == "harmonic":
        return lambda f: float(np.round(statistics.harmonic_mean(list(f)) * 0.5, 2))
    raise CompileError(f"rescale must be None, 'mean', 'harmonic' or a callable(set of factors) -> float; "
                       f"got {rescale!r}")


def _check_floor(v, where: str) -> None:
    if v is None or v in ("model", "threshold"):
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise CompileError(f"min_v_mem{where} must be 'model', 'threshold', None or a finite number; got {v!r}")


def _check_reset(v, where: str) -> None:
    if v not in ("model", "subtract", "zero"):
        raise CompileError(f"reset{where} must be 'model', 'subtract' or 'zero'; got {v!r}")


def _check_positive(name: str, upper: float | None):
    def check(v, where: str) -> None:
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v) \
            and v > 0 and (upper is None or v <= upper)
        if not ok:
            bound = f"in (0, {upper:g}]" if upper is not None else "> 0"
            raise CompileError(f"{name}{where} must be a number {bound}; got {v!r}")
    return check


def _check_decimator(v, where: str) -> None:
    from .config import DECIMATOR_RATES

    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or (v != 1 and v not in DECIMATOR_RATES):
        raise CompileError(f"decimator{where} must be 1 (off) or N of '1 of N' with N in {DECIMATOR_RATES}; got {v!r}")


def check_options(chip, dvs, monitor, core_map, slow_clock_hz, readout, rescale, initial_vmem,
                  min_v_mem="model", reset="model", allow_zeroed_weights=False, threshold_scale=1.0,
                  precision=1.0, decimator=1) -> Options:
    try:
        spec = get_chip(chip)
    except ValueError as e:
        raise CompileError(str(e)) from None
    if not (dvs is None or isinstance(dvs, (bool, DVSConfig)) or dvs == "sensor"):
        raise CompileError(f"dvs must be None, True, False, 'sensor' or a DVSConfig; got {dvs!r}")
    if slow_clock_hz is not None:
        lo, hi = spec.slow_clock_hz
        if isinstance(slow_clock_hz, bool) or not isinstance(slow_clock_hz, (int, float, np.integer, np.floating)) \
                or not np.isfinite(slow_clock_hz) or not lo <= slow_clock_hz <= hi:
            raise CompileError(f"slow_clock_hz must be a number of Hz in [{lo:g}, {hi:g}] or None; got "
                               f"{slow_clock_hz!r}")
        slow_clock_hz = float(slow_clock_hz)
    if initial_vmem not in (None, "model", "zero"):
        raise CompileError(f"initial_vmem must be None, 'model' or 'zero'; got {initial_vmem!r}")
    if not (monitor in ("exits", "all", None) or isinstance(monitor, (list, tuple, set))):
        raise CompileError(f"monitor must be 'exits', 'all', None or a list of layer names / indices; got {monitor!r}")
    if core_map is not None and not isinstance(core_map, dict):
        raise CompileError(f"core_map must be a dict {{layer name or index: core}}; got {type(core_map).__name__}")
    if readout is not None and not isinstance(readout, (bool, ReadoutConfig)):
        raise CompileError(f"readout must be None, True or a ReadoutConfig; got {readout!r}")
    for value, check in ((min_v_mem, _check_floor), (reset, _check_reset),
                         (threshold_scale, _check_positive("threshold_scale", None)),
                         (precision, _check_positive("precision", 1.0)), (decimator, _check_decimator)):
        if isinstance(value, dict):
            for k, v in value.items():
                check(v, f"[{k!r}]")
        else:
            check(value, "")
    if not isinstance(allow_zeroed_weights, bool):
        raise CompileError(f"allow_zeroed_weights must be True or False; got {allow_zeroed_weights!r}")
    ro = (ReadoutConfig() if readout is True else readout) or None
    return Options(spec, dvs, monitor, core_map, slow_clock_hz, ro, _rescale_fn(rescale), initial_vmem,
                   min_v_mem, reset, allow_zeroed_weights, threshold_scale, precision, decimator)


def input_shape_of(input_shape, model: nn.Module) -> tuple[int, int, int]:
    if input_shape is None:
        dvs = [m for m in model.modules() if type(m).__name__ == "DVSLayer"]
        if dvs and hasattr(dvs[0], "input_shape"):
            return tuple(int(v) for v in dvs[0].input_shape)  # type: ignore[return-value,union-attr]
        raise CompileError("input_shape (C, H, W) is required (it can be inferred only from a sinabs DVSLayer)")
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise CompileError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shape):
        raise CompileError(f"input_shape must be three integers (C, H, W), got {shape!r}")
    if min(shape) < 1:
        raise CompileError(f"input_shape sizes must be positive, got {tuple(int(v) for v in shape)}")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def check_layer_keys(opts: Options, names: list[tuple[str, str]]) -> None:
    """Per-layer option dicts must name layers of the model: (weight module, spiking module) pairs."""
    known = {n for pair in names for n in pair}
    for what in ("min_v_mem", "reset", "threshold_scale", "precision", "decimator"):
        value = getattr(opts, what)
        if isinstance(value, dict):
            unknown = [k for k in value if k not in known]
            if unknown:
                raise CompileError(f"{what} names {unknown[0]!r}, which is not a layer of the model (layers, by weight "
                                   f"and spiking module: {', '.join(f'{w}/{n}' for w, n in names)})")


def _pick(value, weight: str, neuron: str, default="model"):
    if isinstance(value, dict):
        return value.get(weight, value.get(neuron, default))
    return value


def decimator_for(weight: str, neuron: str, opts: Options) -> int:
    """A layer's output decimator (compile's ``decimator``): 1 (off) or N."""
    return int(_pick(opts.decimator, weight, neuron, 1))


def precision_for(weight: str, neuron: str, opts: Options) -> float:
    """The fraction of the discretization factor a layer uses (compile's ``precision``)."""
    return float(_pick(opts.precision, weight, neuron, 1.0))


def neuron_for_chip(sp: Spiking, weight: str, neuron: str, opts: Options) -> Spiking:
    """The model's spiking parameters with compile()'s min_v_mem / reset / threshold_scale overrides applied
    (the floor in the model's units; "threshold" means -1 x the scaled threshold)."""
    gain = float(_pick(opts.threshold_scale, weight, neuron, 1.0))
    if gain != 1.0:
        sp = Spiking(sp.threshold * gain, sp.min_v_mem, sp.return_to_zero)
    floor = _pick(opts.min_v_mem, weight, neuron)
    low = sp.min_v_mem if floor == "model" else -sp.threshold if floor == "threshold" else \
        None if floor is None else float(floor)
    if low is not None and low >= sp.threshold:
        raise InvalidParameterError(f"min_v_mem {low} for layer '{weight}' is not below its threshold "
                                    f"{sp.threshold}; the floor must lie below the threshold", neuron)
    reset = _pick(opts.reset, weight, neuron)
    rtz = sp.return_to_zero if reset == "model" else reset == "zero"
    return Spiking(sp.threshold, low, rtz)
