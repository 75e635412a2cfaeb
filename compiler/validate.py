"""Check a ChipConfig against every hardware rule we know (CHIP.md sections 1.4 and 4). No torch.

Used by the compiler as its last step and by every device before it applies a configuration, so a
hand-edited or loaded config gets the same checks as a compiled one.
"""
from __future__ import annotations

from .chips import get_chip
from .config import ChipConfig


class ConfigValidationError(ValueError):
    """A ChipConfig breaks a hardware rule; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid chip configuration:\n  - " + "\n  - ".join(problems))


def find_problems(cfg: ChipConfig) -> list[str]:
    spec = get_chip(cfg.chip)
    p: list[str] = []
    for c, cc in sorted(cfg.cores.items()):
        where = f"core {c}" + (f" ({' > '.join(cc.provenance.modules)})" if cc.provenance else "")
        if not 0 <= c < spec.n_cores:
            p.append(f"{where}: no such core on {spec.name} (0..{spec.n_cores - 1})")
            continue
        Ci, Hi, Wi = cc.input_shape
        Co, Ho, Wo = cc.output_shape
        k = cc.kernel_size
        if max(Hi, Wi) > spec.max_input_size:
            p.append(f"{where}: input map {Hi}x{Wi} exceeds {spec.max_input_size}x{spec.max_input_size}")
        if max(Ho, Wo) > spec.max_output_size:
            p.append(f"{where}: neuron map {Ho}x{Wo} exceeds {spec.max_output_size}x{spec.max_output_size}")
        if max(Ci, Co) > spec.max_channels:
            p.append(f"{where}: {max(Ci, Co)} channels exceed {spec.max_channels}")
        if not 1 <= k <= spec.max_kernel:
            p.append(f"{where}: kernel {k} not in 1..{spec.max_kernel}")
        for axis, s in zip("yx", cc.stride):
            if s not in spec.strides:
                p.append(f"{where}: stride {s} along {axis} not in {spec.strides}")
        for axis, pad in zip("yx", cc.padding):
            if not 0 <= pad <= spec.max_padding:
                p.append(f"{where}: padding {pad} along {axis} not in 0..{spec.max_padding}")
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
        for name, v in (("threshold_high", cc.threshold_high), ("threshold_low", cc.threshold_low)):
            if not -32768 <= v <= 32767:
                p.append(f"{where}: {name} {v} does not fit int16")
        if cc.threshold_low == 0:
            p.append(f"{where}: threshold_low is 0, which the chip mishandles (hardware bug; use -1)")
        res = spec.cores[c]
        for what, need, have in (("kernel", cc.kernel_memory, res.kernel), ("neuron", cc.neuron_memory, res.neuron),
                                 ("bias", cc.bias_memory, res.bias)):
            if need > have:
                p.append(f"{where}: needs {need} {what} memory words, core {c} has {have}")
        if len(cc.destinations) > spec.max_destinations:
            p.append(f"{where}: {len(cc.destinations)} destinations, the chip allows {spec.max_destinations}")
        for d in cc.destinations:
            if d.pooling not in spec.poolings:
                p.append(f"{where}: destination pooling {d.pooling} not in {spec.poolings}")
            if d.core == spec.readout_id:
                if cfg.readout is None:
                    p.append(f"{where}: sends to the readout layer (12), which is not configured")
                continue
            if d.core not in cfg.cores:
                p.append(f"{where}: destination core {d.core} is not configured")
                continue
            dst = cfg.cores[d.core]
            sent = (Co + d.feature_shift, Ho // d.pooling, Wo // d.pooling)
            if d.feature_shift == 0 and sent != dst.input_shape:
                p.append(f"{where}: sends {sent} (after pooling {d.pooling}) to core {d.core}, whose input is "
                         f"{dst.input_shape}")
            elif d.feature_shift and (sent[0] > dst.input_shape[0] or sent[1:] != dst.input_shape[1:]):
                p.append(f"{where}: sends channels up to {sent[0]} / map {sent[1:]} to core {d.core} "
                         f"(input {dst.input_shape})")
    ro = cfg.readout
    if ro is not None:
        if ro.address_sel not in (0, 1, 2, 3) or ro.output_mode not in (0, 1, 2, 3):
            p.append(f"readout: address_sel {ro.address_sel} / output_mode {ro.output_mode} not in 0..3")
        if ro.average not in (1, 16, 32):
            p.append(f"readout: average over {ro.average} ticks; the chip averages over 1, 16 or 32")
        if not 0 <= ro.threshold <= 0xFFFF or not 0 <= ro.selected_class <= 15:
            p.append("readout: threshold must fit 16 bits and selected_class be 0..15")
    for c in cfg.input_cores:
        if c not in cfg.cores:
            p.append(f"input core {c} is not configured")
    return p


def validate(cfg: ChipConfig) -> None:
    """Raise :class:`ConfigValidationError` listing every rule ``cfg`` breaks."""
    problems = find_problems(cfg)
    if problems:
        raise ConfigValidationError(problems)
