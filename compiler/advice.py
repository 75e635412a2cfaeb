"""What to tell the user when a model does not fit, or fits but will not work as trained: the numbers, why
(which range capped the scale, how memory is rounded), and the usual fix. Pure text builders over the
compiler's numbers, so each message can be read and tested on its own."""
from __future__ import annotations

from .chips import ChipSpec, ceil_log2, kernel_memory
from .discretize import Discretized

__all__ = ["ZEROED_FRACTION", "zeroed_weights_message", "fit_advice", "bias_note", "floor_note", "ki"]

#: a layer whose discretization zeroes at least this fraction of its non-zero weights, with the factor capped by
#: another range than the weights' own (threshold / floor, bias, state), is refused: it cannot work as trained
ZEROED_FRACTION = 0.9


def ki(n: int) -> str:
    return f"{n // 1024} Ki" if n >= 1024 and n % 1024 == 0 else f"{n / 1024:.1f} Ki" if n >= 1024 else str(n)


def _cap_reason(d: Discretized, threshold: float, floor: float | None, bias_max: float) -> tuple[str, str]:
    """(which range capped the discretization factor, the fix for it)."""
    cap = min(d.scales, key=lambda k: d.scales[k])
    if d.precision < 1.0:
        return (f"precision={d.precision:g} (that fraction of the largest factor, {d.scale / d.precision:.4g}, is used)",
                "a precision closer to 1")
    if cap == "threshold":
        low = -32768 if floor is None else floor
        what = (f"the vmem range [{low:g}, {threshold:g}] (threshold and floor must both fit int16"
                + (", and without a min_v_mem the floor is -32768" if floor is None else "") + ")")
        fix = ("a vmem floor closer to zero: min_v_mem = -1 x threshold (sinabs.from_torch's default) on the "
               "spiking layer, or compile(..., min_v_mem='threshold') (a number, or a dict per layer, also work)")
        return what, fix
    if cap == "bias":
        return (f"the bias range (|bias| up to {bias_max:.4g} must fit the 8-bit bias word)",
                "smaller biases (or none: the chip adds biases only on slow-clock ticks anyway)")
    if cap == "state":
        return ("the model's leftover v_mem state (it must fit int16 with the same factor)",
                "model.reset_states() before compiling, or compile(..., initial_vmem='zero')")
    return ("the weights' own range (the largest |weight| lands on 127 and most are below half a step)",
            "weights of a similar magnitude: clip outliers or retrain with weight regularisation")


def zeroed_weights_message(layer: str, d: Discretized, threshold: float, floor: float | None,
                           bias_max: float) -> tuple[str, bool]:
    """(the message, whether to refuse the layer) for a layer whose weights (nearly) all quantize to 0."""
    what, fix = _cap_reason(d, threshold, floor, bias_max)
    frac = d.zeroed_weights / d.nonzero_weights if d.nonzero_weights else 0.0
    refuse = d.all_weights_zeroed or (frac >= ZEROED_FRACTION and (d.precision < 1.0 or
                                                                   min(d.scales, key=lambda k: d.scales[k]) != "weight"))
    best = min((v for k, v in d.scales.items() if k != "threshold"), default=float("inf"))
    msg = (f"layer '{layer}': {d.zeroed_weights} of {d.nonzero_weights} non-zero weights ({100 * frac:.0f}%) quantize "
           f"to 0, so the core {'can never fire' if d.all_weights_zeroed else 'cannot work as trained'}: the "
           f"discretization factor is {d.scale:.4g}, capped by {what}"
           + (f" (the weights alone would allow {best:.4g})" if best != float("inf") and best > d.scale else "")
           + f". Fix: {fix}")
    return msg, refuse


def _largest_out(c_in: int, k: int, hw: tuple[int, int], has_bias: bool, spec: ChipSpec) -> tuple[int, list[int]]:
    """The most output channels a layer of this geometry can have on any core, and the cores that allow it."""
    best, where = 0, []
    for core in spec.cores:
        n = 0
        for b in range(0, 11):  # up to 1024 channels; kernel memory rounds the channel count to 2**b
            c_out = 2 ** b
            if kernel_memory(c_in, c_out, k) > core.kernel:
                break
            n = c_out
        by_neuron = core.neuron // 2 ** (ceil_log2(hw[0]) + ceil_log2(hw[1]))
        n = min(n, by_neuron, spec.max_channels, core.bias if has_bias else spec.max_channels)
        if n > best:
            best, where = n, [core.core]
        elif n == best and n > 0:
            where.append(core.core)
    return best, where


def fit_advice(name: str, kind: str, c_out: int, k: int, in_map: tuple[int, int, int],
               out_hw: tuple[int, int], needs: dict, spec: ChipSpec) -> str:
    """Why a layer fits no core, the largest size that would, and the usual fixes."""
    c_in = in_map[0]
    kb, ob = ceil_log2(k * k), ceil_log2(c_out)
    hb, wb = ceil_log2(out_hw[0]), ceil_log2(out_hw[1])
    big = spec.largest()
    unit = "output features" if kind == "Linear" else "output channels"
    lines = [f"{kind} '{name}' needs kernel {ki(needs['kernel'])}, neuron {ki(needs['neuron'])}, bias {needs['bias']} "
             f"words ({c_in}x{in_map[1]}x{in_map[2]} in -> {c_out}x{out_hw[0]}x{out_hw[1]} out)"]
    over = []
    if needs["kernel"] > big.kernel:
        over.append(f"kernel memory = in-channels x 2^(ceil log2(kernel area) + ceil log2(outputs)) = {c_in} x "
                    f"2^({kb}+{ob}) = {ki(needs['kernel'])} (the {k}x{k} kernel area and the {c_out} outputs are each "
                    f"rounded up to a power of two), but the largest core holds {ki(big.kernel)}")
    if needs["neuron"] > big.neuron:
        over.append(f"neuron memory = outputs x 2^(ceil log2 H + ceil log2 W) = {c_out} x 2^({hb}+{wb}) = "
                    f"{ki(needs['neuron'])} (H and W each rounded up to a power of two), but the largest core holds "
                    f"{ki(big.neuron)}")
    if needs["bias"] > big.bias:
        over.append(f"{needs['bias']} biases, but a core holds {big.bias}")
    if not over:  # each memory fits some core, but no core holds all of them
        by = {what: [c.core for c in spec.cores if needs[what] <= getattr(c, what)] for what in ("kernel", "neuron")}
        over.append(f"its kernel memory fits cores {by['kernel']} and its neuron memory cores {by['neuron']}: no "
                    "core has both (big maps go to cores 0-2, big kernels to cores 5-6)")
    lines += over
    n, where = _largest_out(c_in, k, out_hw, needs["bias"] > 0, spec)
    if n >= 1:
        lines.append(f"at most {n} {unit} fit (cores {', '.join(map(str, where))})")
    else:
        max_in = max(core.kernel // 2 ** kb for core in spec.cores)
        lines.append(f"even one output does not fit with {c_in} input channels: at most {max_in} input channels with "
                     f"a {k}x{k} kernel")
    if kind == "Linear":
        lines.append("usual fixes: pool before the Linear (each 2x2 pool of its input map divides its kernel memory by "
                     "4), fewer output features, fewer channels in the layer before it, or fewer layers")
    else:
        lines.append("usual fixes: fewer output channels, a stride or pooling earlier (neuron memory grows with the "
                     "map), fewer input channels, or fewer layers")
    return "\n    ".join(lines)


def bias_note(layers: list[tuple[str, float, float, int, int]], slow_clock_hz: float | None) -> str | None:
    """One note for every layer with biases when no slow clock will apply them. ``layers``: (name, float min,
    float max, chip min, chip max)."""
    if not layers or slow_clock_hz:
        return None
    each = ", ".join(f"'{n}' ({lo:.3g}..{hi:.3g} -> {qlo}..{qhi} per tick)" for n, lo, hi, qlo, qhi in layers)
    return (f"{len(layers)} layer(s) have biases - {each} - but no slow clock is set: on the chip a bias is added "
            "to every neuron of its core once per slow-clock tick (the leak), so without a slow clock these biases "
            "never act. A model stepped every dt adds its bias once per step: compile(..., slow_clock_hz=1000) "
            "approximates a model trained with dt = 1 ms (slow_clock_hz = 1e6 / dt in µs); speckstream.compare "
            "shows what the difference does")


def floor_note(layers: list[tuple[str, int, int]]) -> str | None:
    """One note for every layer whose vmem floor sits within 2 thresholds of zero while its weights have both
    signs. ``layers``: (name, threshold_low, threshold_high) on the chip."""
    if not layers:
        return None
    each = ", ".join(f"'{n}' ({lo}/{hi})" for n, lo, hi in layers)
    same = all(lo == -hi for _, lo, hi in layers)
    return (f"{len(layers)} layer(s) have a vmem floor within 2 thresholds of zero and weights of both signs "
            f"(floor/threshold: {each})"
            + (", i.e. min_v_mem = -1 x threshold, the default of sinabs.from_torch and from_nir" if same else "")
            + ": the chip clamps at the floor after every inhibitory event, time-stepped torch once per step, so "
            "they may part ways (speckstream.compare shows where); a lower floor keeps them together, e.g. "
            "compile(..., min_v_mem={'layer': value}) or min_v_mem = -100 x threshold in the model")
