"""Check a ChipConfig against every hardware rule we know (docs/chip-notes.md; the datasheet's memory table). No torch.

Used by the compiler as its last step and by every device before it applies a configuration, so a
hand-edited or loaded config gets the same checks as a compiled one: every limit the compiler relies on is
checked here too (thresholds ordered, value ranges, shapes, destinations, DVS stage, slow clock).
"""
from __future__ import annotations

import math

from .chips import get_chip
from .config import DECIMATOR_RATES, ChipConfig
from .errors import ConfigValidationError

__all__ = ["ConfigValidationError", "find_problems", "validate"]


def _limits(where: str, spec, cc) -> list[str]:
    """Map sizes, channels, kernel, strides and padding within the chip's per-layer limits."""
    p: list[str] = []
    Ci, Hi, Wi = cc.input_shape
    Co, Ho, Wo = cc.output_shape
    if max(Hi, Wi) > spec.max_input_size:
        p.append(f"{where}: input map {Hi}x{Wi} exceeds {spec.max_input_size}x{spec.max_input_size}")
    if max(Ho, Wo) > spec.max_output_size:
        p.append(f"{where}: neuron map {Ho}x{Wo} exceeds {spec.max_output_size}x{spec.max_output_size}")
    if max(Ci, Co) > spec.max_channels:
        p.append(f"{where}: {max(Ci, Co)} channels exceed {spec.max_channels}")
    if not 1 <= cc.kernel_size <= spec.max_kernel:
        p.append(f"{where}: kernel {cc.kernel_size} not in 1..{spec.max_kernel}")
    for axis, s in zip("yx", cc.stride):
        if s not in spec.strides:
            p.append(f"{where}: stride {s} along {axis} not in {spec.strides}")
    for axis, pad in zip("yx", cc.padding):
        if not 0 <= pad <= spec.max_padding:
            p.append(f"{where}: padding {pad} along {axis} not in 0..{spec.max_padding}")
    return p


def _geometry(where: str, cc) -> list[str]:
    """The output map follows from input, kernel, stride and padding; arrays have the shapes they say."""
    p: list[str] = []
    Ci, Hi, Wi = cc.input_shape
    Co, Ho, Wo = cc.output_shape
    k = cc.kernel_size
    if k >= 1 and all(s >= 1 for s in cc.stride):
        exp_h = (Hi + 2 * cc.padding[0] - k) // cc.stride[0] + 1
        exp_w = (Wi + 2 * cc.padding[1] - k) // cc.stride[1] + 1
        if (exp_h, exp_w) != (Ho, Wo):
            p.append(f"{where}: output map {Ho}x{Wo} does not follow from input {Hi}x{Wi}, kernel {k}, "
                     f"stride {cc.stride}, padding {cc.padding} (expected {exp_h}x{exp_w})")
    if cc.weights.shape != (Co, Ci, k, k):
        p.append(f"{where}: weights shape {cc.weights.shape} != (out, in, k, k) = {(Co, Ci, k, k)}")
    if cc.biases.shape != (Co,):
        p.append(f"{where}: biases shape {cc.biases.shape} != ({Co},)")
    if cc.initial_vmem.shape != (Co, Ho, Wo):
        p.append(f"{where}: initial vmem shape {cc.initial_vmem.shape} != {(Co, Ho, Wo)}")
    return p


def _thresholds(where: str, spec, cc) -> list[str]:
    """Both thresholds fit int16, ordered, the high one >= 1, the low one not 0 (a hardware bug); biases leak."""
    p: list[str] = []
    for name, v in (("threshold_high", cc.threshold_high), ("threshold_low", cc.threshold_low)):
        if not spec.min_state <= v <= spec.max_state:
            p.append(f"{where}: {name} {v} does not fit int16")
    if cc.threshold_high < 1:
        p.append(f"{where}: threshold_high {cc.threshold_high} must be >= 1 (a neuron would fire on every update)")
    if cc.threshold_low >= cc.threshold_high:
        p.append(f"{where}: threshold_low {cc.threshold_low} must lie below threshold_high {cc.threshold_high}")
    if cc.threshold_low == 0:
        p.append(f"{where}: threshold_low is 0, which the chip mishandles (hardware bug; use -1)")
    if cc.leak_enable is False and cc.biases.size and cc.biases.any():
        p.append(f"{where}: non-zero biases with leak_enable off would be ignored by the chip")
    if cc.decimator != 1 and cc.decimator not in DECIMATOR_RATES:
        p.append(f"{where}: output decimator 1 of {cc.decimator}; the chip passes 1 of {DECIMATOR_RATES} (or 1: off)")
    return p


def _memory(where: str, spec, c: int, cc) -> list[str]:
    """Kernel, neuron and bias memory within the core's."""
    res = spec.cores[c]
    return [f"{where}: needs {need} {what} memory words, core {c} has {have}"
            for what, need, have in (("kernel", cc.kernel_memory, res.kernel), ("neuron", cc.neuron_memory, res.neuron),
                                     ("bias", cc.bias_memory, res.bias)) if need > have]


def _destinations(where: str, cfg: ChipConfig, spec, cc) -> list[str]:
    """At most two destinations, each a configured core (or the configured readout) whose input map takes what
    is sent, after pooling and feature shift."""
    p: list[str] = []
    Co, Ho, Wo = cc.output_shape
    if len(cc.destinations) > spec.max_destinations:
        p.append(f"{where}: {len(cc.destinations)} destinations, the chip allows {spec.max_destinations}")
    for d in cc.destinations:
        if d.pooling not in spec.poolings:
            p.append(f"{where}: destination pooling {d.pooling} not in {spec.poolings}")
            continue
        if d.core == spec.readout_id:
            if cfg.readout is None:
                p.append(f"{where}: sends to the readout layer ({spec.readout_id}), which is not configured")
            continue
        if d.core not in cfg.cores:
            p.append(f"{where}: destination core {d.core} is not configured")
            continue
        dst = cfg.cores[d.core]
        sent = (Co + d.feature_shift, Ho // d.pooling, Wo // d.pooling)
        if d.feature_shift < 0:
            p.append(f"{where}: negative feature_shift {d.feature_shift}")
        elif d.feature_shift == 0 and sent != dst.input_shape:
            p.append(f"{where}: sends {sent} (after pooling {d.pooling}) to core {d.core}, whose input is "
                     f"{dst.input_shape}")
        elif d.feature_shift and (sent[0] > dst.input_shape[0] or sent[1:] != dst.input_shape[1:]):
            p.append(f"{where}: sends channels up to {sent[0]} / map {sent[1:]} to core {d.core} "
                     f"(input {dst.input_shape})")
    return p


def _core_problems(cfg: ChipConfig, spec, c: int, cc) -> list[str]:
    p: list[str] = []
    where = f"core {c}" + (f" ({' > '.join(cc.provenance.modules)})" if cc.provenance else "")
    if c != cc.core:
        p.append(f"{where}: stored under key {c} but says core {cc.core}")
    if not 0 <= c < spec.n_cores:
        return p + [f"{where}: no such core on {spec.name} (0..{spec.n_cores - 1})"]
    if min(cc.input_shape + cc.output_shape) < 1:
        return p + [f"{where}: shapes {cc.input_shape} -> {cc.output_shape} must be positive"]
    return (p + _limits(where, spec, cc) + _geometry(where, cc) + _thresholds(where, spec, cc)
            + _memory(where, spec, c, cc) + _destinations(where, cfg, spec, cc))


def _dvs_problems(cfg: ChipConfig, spec) -> list[str]:
    d = cfg.dvs
    assert d is not None
    p: list[str] = []
    if d.input_size is None or len(d.input_size) != 2 or min(d.input_size) < 1:
        return [f"DVS stage: input_size {d.input_size} must be (H, W) of positive sizes"]
    if max(d.input_size) > spec.max_dvs_input:
        p.append(f"DVS stage: input {d.input_size} exceeds {spec.max_dvs_input}x{spec.max_dvs_input}")
    if any(v not in spec.dvs_poolings for v in d.pooling):
        return p + [f"DVS stage: pooling {d.pooling} not in {spec.dvs_poolings} per axis"]
    H, W = d.pooled_size()
    if d.crop is not None:
        top, bottom, left, right = d.crop
        if not (0 <= top < bottom <= H and 0 <= left < right <= W):
            p.append(f"DVS stage: crop {d.crop} (top, bottom, left, right) is not a non-empty region of the "
                     f"pooled {H}x{W} map")
            return p
    if len(d.destinations) > spec.max_dvs_destinations:
        p.append(f"DVS stage: {len(d.destinations)} destinations, the chip allows {spec.max_dvs_destinations}")
    for core in d.destinations:
        if core not in cfg.cores:
            p.append(f"DVS stage: destination core {core} is not configured")
        elif cfg.cores[core].input_shape != d.output_shape():
            p.append(f"DVS stage: sends {d.output_shape()} to core {core}, whose input is "
                     f"{cfg.cores[core].input_shape}")
    if not d.destinations and not d.monitor:
        p.append("DVS stage: no destination core and no monitor - its events would go nowhere")
    return p


def _cycle(cfg: ChipConfig) -> list[int] | None:
    """A cycle of cores (recurrence), if any."""
    state: dict[int, int] = {}

    def visit(c: int, path: list[int]) -> list[int] | None:
        state[c] = 1
        for d in cfg.cores[c].destinations:
            if d.core not in cfg.cores:
                continue
            if state.get(d.core) == 1:
                return path[path.index(d.core):] + [d.core]
            if d.core not in state:
                found = visit(d.core, path + [d.core])
                if found:
                    return found
        state[c] = 2
        return None

    for c in sorted(cfg.cores):
        if c not in state:
            found = visit(c, [c])
            if found:
                return found
    return None


def _network_problems(cfg: ChipConfig) -> list[str]:
    """Something to configure, an input that feeds it, a layer order over the configured cores, no loop."""
    p: list[str] = []
    if not cfg.cores and cfg.dvs is None:
        p.append("no core and no DVS stage: nothing to configure")
    if cfg.cores and not cfg.input_cores and not (cfg.dvs and cfg.dvs.destinations):
        p.append("no input core: nothing feeds the network")
    for c in cfg.input_cores:
        if c not in cfg.cores:
            p.append(f"input core {c} is not configured")
    if len(set(cfg.input_cores)) != len(cfg.input_cores):
        p.append(f"input cores {cfg.input_cores} repeat a core")
    if cfg.layer_order and sorted(cfg.layer_order) != sorted(cfg.cores):
        p.append(f"layer_order {cfg.layer_order} is not an ordering of the configured cores {sorted(cfg.cores)}")
    cyc = _cycle(cfg) if cfg.cores else None
    if cyc:
        p.append(f"cores {' -> '.join(map(str, cyc))} form a loop; recurrence is not supported (it can "
                 "deadlock the chip)")
    return p


def _slow_clock_problems(cfg: ChipConfig, spec) -> list[str]:
    hz = cfg.slow_clock_hz
    if hz is None:
        return []
    lo, hi = spec.slow_clock_hz
    if not isinstance(hz, (int, float)) or not math.isfinite(hz) or not lo <= hz <= hi:
        return [f"slow_clock_hz {hz!r} must be a number of Hz in [{lo:g}, {hi:g}] (the devkit takes an integer "
                "rate; use None for no slow clock)"]
    return []


def _readout_problems(cfg: ChipConfig) -> list[str]:
    ro = cfg.readout
    if ro is None:
        return []
    p: list[str] = []
    if ro.address_sel not in (0, 1, 2, 3) or ro.output_mode not in (0, 1, 2, 3):
        p.append(f"readout: address_sel {ro.address_sel} / output_mode {ro.output_mode} not in 0..3")
    if ro.average not in (1, 16, 32):
        p.append(f"readout: average over {ro.average} ticks; the chip averages over 1, 16 or 32")
    if not 0 <= ro.threshold <= 0xFFFF or not 0 <= ro.selected_class <= 15:
        p.append("readout: threshold must fit 16 bits and selected_class be 0..15")
    return p


def find_problems(cfg: ChipConfig) -> list[str]:
    """Every rule ``cfg`` breaks, as readable lines (empty when valid)."""
    try:
        spec = get_chip(cfg.chip)
    except ValueError as e:
        return [str(e)]
    p: list[str] = []
    for c, cc in sorted(cfg.cores.items()):
        p.extend(_core_problems(cfg, spec, c, cc))
    if cfg.dvs is not None:
        p.extend(_dvs_problems(cfg, spec))
    return p + _network_problems(cfg) + _slow_clock_problems(cfg, spec) + _readout_problems(cfg)


def validate(cfg: ChipConfig) -> None:
    """Raise :class:`ConfigValidationError` listing every rule ``cfg`` breaks."""
    problems = find_problems(cfg)
    if problems:
        raise ConfigValidationError(problems)
