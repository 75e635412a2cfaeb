"""compare(): layer by layer, where the simulated chip and the torch model part ways on the same events, and why.

Four runs of the same input, each a step closer to the chip:

1. ``float``: the user's torch model as trained, time-stepped in ``dt_us`` bins (batch 1), as sinabs runs it;
2. ``quantized``, bias per step: the ChipConfig's integer weights and thresholds in the same time-stepped loop,
   the bias added every step as the model does (only computed when the config has biases);
3. ``quantized``: the same, with the bias added as the chip adds it - once per slow-clock tick (never
   without a slow clock);
4. ``chip``: the event-driven simulator, every core monitored.

The gap between 1 and 2 is quantization, between 2 and 3 the bias / slow-clock rate, between 3 and 4
event-driven dynamics (the vmem floor clamped after every inhibitory event, one spike per input event, the
order of events within a step). The report names the first layer with a gap above ``tolerance`` and, there,
the stage with the largest gap. Per layer it also gives the correlation of per-neuron spike counts between
the chip and the float model (the figure the NIR paper reports between sinabs and a real Speck: 0.761 on the
first layer of an N-MNIST CNN).

A configuration with a DVS stage is compared too: the chip is fed the DvsEvents, the quantized model the
stage's output (pooling, crop, polarity merge and mirroring applied), and the float model either the sensor
frames or the stage's output, whichever matches the model's input shape.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .compiler.config import ChipConfig, load_config
from .sim import ChipSimulator
from .sim.dvs import core_spikes, dvs_stage
from ._text import text_table
from .errors import SpeckstreamError
from .codec.inputs import to_input
from .profiling import monitor_all

__all__ = ["compare", "CompareReport", "LayerComparison", "CompareError"]


class CompareError(SpeckstreamError, ValueError):
    """compare() was given something it cannot compare: a bad ``dt_us``, or a DVS stage whose output matches
    neither the sensor nor the model's input shape."""


@dataclass
class LayerComparison:
    core: int
    name: str  # the layer's modules in the model
    float_spikes: int  # the torch model as trained, time-stepped (-1 without a model)
    quantized_spikes: int  # the chip's integers, time-stepped, bias per slow-clock tick as on the chip
    chip_spikes: int  # the simulated chip, event-driven
    neuron_match: float  # fraction of neurons whose spike count is the same in quantized torch and on chip
    chip_clamps: int  # floor clamps on the chip (one per inhibitory update that hits the floor)
    torch_clamps: int  # floor clamps in the quantized time-stepped model (at most one per neuron per step)
    correlation: float = float("nan")  # Pearson r of per-neuron spike counts, chip vs float model
    bias_step_spikes: int = -1  # the chip's integers with the bias added every step, as the model does (-1: no bias)


@dataclass
class CompareReport:
    layers: list[LayerComparison]
    dt_us: int
    cause: str  # where and why the chip and the model part ways (or that they agree)
    first_divergent: str | None = None
    notes: list[str] = field(default_factory=list)
    stage: str | None = None  # "quantization", "bias", "event-driven" at the first divergent layer

    def table(self) -> str:
        biased = any(r.bias_step_spikes >= 0 for r in self.layers)
        head = ("core", "layer", "float") + (("bias/step",) if biased else ()) + (
            "quantized", "chip", "match", "corr", "clamps chip/torch")
        rows = [head]
        for r in self.layers:
            rows.append((str(r.core), r.name, str(r.float_spikes) if r.float_spikes >= 0 else "-")
                        + ((str(r.bias_step_spikes) if r.bias_step_spikes >= 0 else "-",) if biased else ())
                        + (str(r.quantized_spikes), str(r.chip_spikes), f"{100 * r.neuron_match:.1f}%",
                           "-" if np.isnan(r.correlation) else f"{r.correlation:.3f}",
                           f"{r.chip_clamps}/{r.torch_clamps}"))
        lines = text_table(rows)
        return "\n".join([f"spike counts per layer, torch time-stepped at {self.dt_us} µs vs the simulated chip"]
                         + lines + [self.cause] + [f"note: {n}" for n in self.notes])

    __str__ = table


# --------------------------------------------------------------------------------------------- inputs
def _dense(spikes: np.ndarray, shape: tuple[int, int, int], T: int, dt_us: int) -> np.ndarray:
    """Spikes (c, x, y, t) -> dense [T, C, H, W] counts in ``dt_us`` bins."""
    x = np.zeros((T, *shape), np.float32)
    np.add.at(x, ((spikes["t"] // dt_us).astype(np.int64), spikes["c"].astype(np.int64),
                  spikes["y"].astype(np.int64), spikes["x"].astype(np.int64)), 1)
    return x


def _core_inputs(cfg: ChipConfig, kind: str, ev: np.ndarray, T: int, dt_us: int) -> dict[int, np.ndarray]:
    """What each input core receives, binned: the spikes as given, or the DVS stage's output."""
    spikes = core_spikes(kind, ev, cfg.dvs)
    return {c: _dense(spikes[spikes["core"] == c], cfg.cores[c].input_shape, T, dt_us) for c in cfg.input_cores}


def _model_input(cfg: ChipConfig, kind: str, ev: np.ndarray, cores: dict, T: int, dt_us: int) -> np.ndarray:
    """The float model's input, binned: the input core's map, or for a DVS stage the sensor frames (when the
    model takes the sensor's shape: it pools / crops itself) or the stage's output."""
    if kind != "dvs" or cfg.dvs is None:
        return cores[cfg.input_cores[0]]
    shape = tuple(cfg.input_shape or ())
    H, W = cfg.dvs.input_size or (0, 0)
    if shape[1:] == (H, W):
        p = ev["p"].astype(np.int64) if shape[0] == 2 else np.zeros(len(ev), np.int64)
        sensor = np.empty(len(ev), [("t", "<u8"), ("c", "<i8"), ("x", "<i8"), ("y", "<i8")])
        sensor["t"], sensor["c"], sensor["x"], sensor["y"] = ev["t"], p, ev["x"], ev["y"]
        return _dense(sensor, shape, T, dt_us)  # type: ignore[arg-type]
    stage = dvs_stage(ev, cfg.dvs)
    if shape == cfg.dvs.output_shape():
        return _dense(stage, shape, T, dt_us)  # type: ignore[arg-type]
    raise CompareError(f"the model takes {shape} (C, H, W), but the DVS stage's sensor is {H}x{W} and its output "
                       f"{cfg.dvs.output_shape()}: compare cannot tell which the model expects")


def _ticks_per_step(cfg: ChipConfig, T: int, dt_us: int) -> np.ndarray:
    """Slow-clock ticks in each step (the simulator ticks at k x period, k >= 1, after a time reset)."""
    if not cfg.slow_clock_hz:
        return np.zeros(T, np.float32)
    period = max(1, round(1e6 / cfg.slow_clock_hz))
    ticks = np.arange(period, T * dt_us, period) // dt_us
    return np.bincount(ticks, minlength=T)[:T].astype(np.float32)


# --------------------------------------------------------------------------------------------- torch runs
def _quantized_torch(cfg: ChipConfig, inputs: dict[int, np.ndarray], bias_steps: np.ndarray) -> tuple[dict, dict]:
    """The ChipConfig run as sinabs runs a network: per step v += conv(x) + bias x bias_steps[t] (integer
    weights), MultiSpike floor(v / thr) spikes, subtract (or reset), then one clamp at the floor. Returns per-core
    spike counts [C, H, W] and clamp counts."""
    import torch
    import torch.nn.functional as F

    T = len(bias_steps)
    drive_in = {c: torch.zeros((T, *cfg.cores[c].input_shape)) for c in cfg.cores}
    for c, x in inputs.items():
        drive_in[c] += torch.from_numpy(x)
    counts, clamps = {}, {}
    steps = torch.from_numpy(bias_steps)
    for c in cfg.layer_order:
        cc = cfg.cores[c]
        w = torch.from_numpy(cc.weights.astype(np.float32))
        drive = F.conv2d(drive_in[c], w, stride=cc.stride, padding=cc.padding)
        if np.any(cc.biases):
            drive += steps.reshape(-1, 1, 1, 1) * torch.from_numpy(cc.biases.astype(np.float32)).reshape(1, -1, 1, 1)
        v = torch.from_numpy(cc.initial_vmem.astype(np.float32)).clone()
        thr, low = float(cc.threshold_high), float(cc.threshold_low)
        spikes = torch.zeros_like(drive)
        n_clamp = 0
        for t in range(T):
            v = v + drive[t]
            s = torch.where(v >= thr, torch.floor(v / thr), torch.zeros_like(v))
            v = torch.where(s > 0, torch.zeros_like(v), v) if cc.return_to_zero else v - s * thr
            n_clamp += int((v < low).sum())
            v = torch.clamp(v, min=low)
            spikes[t] = s
        counts[c], clamps[c] = spikes.sum(0).numpy(), n_clamp
        for d in cc.destinations:
            if d.core in drive_in:
                Hd, Wd = cfg.cores[d.core].input_shape[1:]
                pooled = F.avg_pool2d(spikes, d.pooling) * d.pooling ** 2 if d.pooling > 1 else spikes
                drive_in[d.core] += pooled[:, :, :Hd, :Wd]
    return counts, clamps


def _float_torch(model, cfg: ChipConfig, x: np.ndarray) -> dict:
    """The user's torch model, time-stepped on the binned input: spike counts per core's spiking module."""
    import torch

    from .compiler.graph import as_float32_cpu

    m = as_float32_cpu(model)
    for mod in m.modules():
        if hasattr(mod, "reset_states"):
            mod.reset_states()
    names = {cc.provenance.neuron: c for c, cc in cfg.cores.items() if cc.provenance and cc.provenance.neuron}
    got: dict = {}
    hooks = []
    for name, mod in m.named_modules():
        if name in names:
            hooks.append(mod.register_forward_hook(
                lambda _m, _a, out, c=names[name]: got.__setitem__(c, out.detach().sum(0).numpy())))
    try:
        with torch.no_grad():
            copy.copy(m)(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return got


# --------------------------------------------------------------------------------------------- report
def _gap(a: int, b: int) -> float:
    return abs(a - b) / max(a, b, 1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    if a.size != b.size or a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _cause(row: LayerComparison, cc, name: str, dt_us: int, slow_clock_hz: float | None, tolerance: float
           ) -> tuple[str, str] | None:
    """(stage, explanation) of the largest gap above tolerance at this layer, or None."""
    gaps = {"event-driven": _gap(row.chip_spikes, row.quantized_spikes)}
    if row.bias_step_spikes >= 0:
        gaps["bias"] = _gap(row.bias_step_spikes, row.quantized_spikes)
    ref = row.bias_step_spikes if row.bias_step_spikes >= 0 else row.quantized_spikes
    if row.float_spikes >= 0:
        gaps["quantization"] = _gap(row.float_spikes, ref)
    stage = max(gaps, key=lambda k: gaps[k])
    if gaps[stage] <= tolerance:
        return None
    where = f"at layer {name} (core {cc.core})"
    if stage == "quantization":
        return stage, (f"quantization: {where} the float model gives {row.float_spikes} spikes, the chip's integers "
                       f"{ref} (scale {cc.provenance.scale:.4g})")
    if stage == "bias":
        rate = (f"once per slow-clock tick ({slow_clock_hz:g} Hz: {slow_clock_hz * dt_us / 1e6:.3g} ticks per step)"
                if slow_clock_hz else "never: no slow clock is set")
        return stage, (f"biases and the slow clock: {where} the model adds its bias every {dt_us} µs step "
                       f"({row.bias_step_spikes} spikes), the chip {rate} ({row.quantized_spikes} spikes); "
                       f"compile(..., slow_clock_hz={1e6 / dt_us:g}) adds it once per {dt_us} µs")
    if row.chip_clamps > row.torch_clamps:
        return stage, (f"the chip and the time-stepped model part ways {where}: {row.chip_spikes} vs "
                       f"{row.quantized_spikes} spikes. The vmem floor ({cc.threshold_low}) clamps after every "
                       f"inhibitory event on the chip ({row.chip_clamps} clamps) but once per step in torch "
                       f"({row.torch_clamps}): lower min_v_mem (e.g. -100 x threshold)")
    leak = ""
    if slow_clock_hz and np.any(cc.biases > 0):
        leak = ("; with positive biases, also the leak: a slow-clock tick that lifts vmem over the threshold does "
                "not fire until the next input event (SimOptions(leak_fires=False); speckstream hwcheck measures "
                "what your chip does)")
    return stage, (f"the chip and the time-stepped model part ways {where}: {row.chip_spikes} vs "
                   f"{row.quantized_spikes} spikes, not from floor clamps: event-driven dynamics (one spike per input "
                   f"event, the order of events within a {dt_us} µs step){leak}; a smaller dt_us or weights below the "
                   "threshold bring them closer")


def compare(model, config, events: np.ndarray, *, dt_us: int = 1000, tolerance: float = 0.02) -> CompareReport:
    """Layer by layer, where the chip and the torch model part ways on ``events`` (see the module docstring).

    ``model``: the torch model the config was compiled from (None compares the chip with the quantized model
    only). ``events``: what the chip takes (chip spikes, tonic x/y/t/p arrays, or DvsEvents for a DVS stage).
    ``dt_us``: the time step of the torch runs (µs). Raises CompareError when the model's input cannot be
    derived from the events (a DVS stage whose output matches neither the sensor nor the model's input).
    """
    from .errors import require

    require("torch", "compile", "speckstream.compare (it runs the torch model)")
    if not isinstance(dt_us, (int, np.integer)) or isinstance(dt_us, bool) or dt_us < 1:
        raise CompareError(f"dt_us must be a positive integer number of µs, got {dt_us!r}")
    cfg = load_config(config)
    kind, ev = to_input(cfg, events)
    sim = ChipSimulator(monitor_all(cfg))
    out = sim.feed_dvs(ev) if kind == "dvs" else sim.feed(ev)
    T = int(ev["t"].max() // dt_us) + 1 if len(ev) else 1
    cores_in = _core_inputs(cfg, kind, ev, T, dt_us)
    ticks = _ticks_per_step(cfg, T, dt_us)
    q, q_clamps = _quantized_torch(cfg, cores_in, ticks)
    biased = any(np.any(cc.biases) for cc in cfg.cores.values())
    q_step = _quantized_torch(cfg, cores_in, np.ones(T, np.float32))[0] if biased else {}
    f = _float_torch(model, cfg, _model_input(cfg, kind, ev, cores_in, T, dt_us)) if model is not None else {}
    layers, first, stage = [], None, None
    cause = "the chip and the model agree within tolerance on every layer"
    for c in cfg.layer_order:
        cc = cfg.cores[c]
        chip = np.zeros(cc.output_shape, np.int64)
        o = out[out["core"] == c]
        np.add.at(chip, (o["c"].astype(np.int64), o["y"].astype(np.int64), o["x"].astype(np.int64)), 1)
        qc = np.rint(q[c]).astype(np.int64)
        name = " > ".join(cc.provenance.modules[:2]) if cc.provenance else str(c)
        row = LayerComparison(c, name, int(round(float(f[c].sum()))) if c in f else -1, int(qc.sum()),
                              int(chip.sum()), float(np.mean(qc == chip)), sim.stats["clamps"][c], q_clamps[c],
                              _correlation(chip, f[c]) if c in f else float("nan"),
                              int(np.rint(q_step[c]).sum()) if biased else -1)
        layers.append(row)
        found = None if first is not None else _cause(row, cc, name, dt_us, cfg.slow_clock_hz, tolerance)
        if found is not None:
            first, (stage, cause) = name, found
    return CompareReport(layers, dt_us, cause, first, stage=stage)
