"""The synchronous layer: does the chip do what my trained model does? No event loop needed.

* :func:`simulate` - one event stream through the simulated chip in virtual time (as fast as the CPU allows).
* :func:`evaluate` - a data set of (events, label) samples, state reset between samples, on any
  ``concurrent.futures.Executor`` (a process pool by default; a ``dask.distributed`` client's executor for a
  cluster). One simulator per worker; the configuration travels once per worker, not per sample.
* :func:`compare` - layer by layer, the spike counts of the torch model (float, and with the chip's integer
  weights and thresholds, time-stepped) against the simulated chip on the same events, naming where they part.

All three run the same engine as the ``"sim"`` device of the streaming runtime.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .compiler.config import ChipConfig, load_config
from .sim import ChipSimulator, SimOptions
from .sim.inputs import to_input

__all__ = ["simulate", "evaluate", "EvalResult", "compare", "CompareReport", "LayerComparison", "to_input"]


def _feed(sim: ChipSimulator, kind: str, events: np.ndarray, until: int | None) -> np.ndarray:
    out = sim.feed_dvs(events) if kind == "dvs" else sim.feed(events)
    if until is not None and until > sim.now_us:
        more = sim.advance_to(int(until))
        out = np.concatenate([out, more]) if len(more) else out
    return out


def simulate(config, events: np.ndarray, *, until: int | None = None, options: SimOptions | None = None
             ) -> np.ndarray:
    """Run ``events`` through a fresh simulated chip; return the monitored output spikes (SPIKE_DTYPE, real
    timestamps in µs). ``events``: SPIKE_DTYPE or tonic-style (x, y, t, p) arrays (DvsEvents for a config
    with a DVS stage). ``until`` (µs) keeps the clock running after the last event (leak ticks)."""
    cfg = load_config(config)
    kind, ev = to_input(cfg, events)
    return _feed(ChipSimulator(cfg, options=options), kind, ev, until)


# --------------------------------------------------------------------------------------------- evaluate
@dataclass
class EvalResult:
    """A data set through the simulated chip. ``counts[i, k]``: output spikes of class k for sample i."""

    predictions: np.ndarray  # int, -1 when a sample produced no output spike
    labels: np.ndarray
    counts: np.ndarray
    events_in: int
    seconds: float  # wall time of the whole evaluation

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else float("nan")

    @property
    def events_per_s(self) -> float:
        """Input events per second of wall time, all workers together."""
        return self.events_in / self.seconds if self.seconds > 0 else float("inf")

    def confusion(self, n_classes: int | None = None) -> np.ndarray:
        """[true class, predicted class] counts (a column for "no output" last when any sample had none)."""
        n = n_classes or self.counts.shape[1]
        none = bool(np.any(self.predictions < 0))
        m = np.zeros((n, n + none), np.int64)
        for t, p in zip(self.labels, self.predictions):
            m[int(t), int(p) if p >= 0 else n] += 1
        return m


_WORKER = threading.local()  # per thread: a simulator is not thread-safe (its engine runs without the GIL)


def _worker_sim(blob: bytes, options: SimOptions | None) -> tuple[ChipSimulator, ChipConfig]:
    """The worker's simulator for a configuration (unpacked once per worker thread, then reused)."""
    key = (hashlib.sha1(blob).hexdigest(), repr(options))
    if getattr(_WORKER, "key", None) != key:
        cfg = ChipConfig.from_msgpack(blob)
        _WORKER.key, _WORKER.cfg, _WORKER.sim = key, cfg, ChipSimulator(cfg, options=options)
    return _WORKER.sim, _WORKER.cfg


def _init_worker(blob: bytes, options: SimOptions | None) -> None:
    _worker_sim(blob, options)


def _run_chunk(blob: bytes, options, readout_core: int, n_classes: int,
               samples: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, int]:
    """Classify samples already converted and checked by ``to_input`` in the caller (kind, events)."""
    sim, _ = _worker_sim(blob, options)
    counts = np.zeros((len(samples), n_classes), np.int64)
    n_in = 0
    for i, (kind, ev) in enumerate(samples):
        sim.reset_state(to_initial=True)  # samples are independent: state and time start afresh
        sim.reset_time()
        n_in += len(ev)
        out = _feed(sim, kind, ev, None)
        out = out[out["core"] == readout_core]
        np.add.at(counts[i], out["c"].astype(np.int64) % n_classes, 1)
    return counts, n_in


def evaluate(config, dataset: Iterable, *, executor: cf.Executor | None = None, readout: str = "count",
             progress: bool = True, chunk_size: int | None = None, options: SimOptions | None = None,
             max_workers: int | None = None) -> EvalResult:
    """Classify every (events, label) sample of ``dataset`` (exactly what a tonic dataset yields) on the
    simulated chip and return an :class:`EvalResult`.

    The prediction is the class with the most output spikes (``readout="count"``; ties go to the lowest
    class, no spike at all predicts -1). ``executor``: any ``concurrent.futures.Executor`` (default: a
    process pool over the machine's cores; pass ``dask.distributed.Client(...).get_executor()`` for a
    cluster, or ``"serial"`` to run in this process). Predictions do not depend on the executor.
    """
    if readout != "count":
        raise ValueError(f"readout must be 'count' (the only readout so far), got {readout!r}")
    cfg = load_config(config)
    if len(cfg.output_cores) != 1:
        raise ValueError(f"evaluate needs one output layer to read classes from; the config has "
                         f"{len(cfg.output_cores)} ({cfg.output_cores})")
    out_core = cfg.output_cores[0]
    if not cfg.cores[out_core].monitor:
        raise ValueError(f"the output core {out_core} is not monitored: compile with monitor='exits'")
    n_classes = cfg.cores[out_core].output_shape[0]
    samples, labels = [], []
    for k, item in enumerate(dataset):
        try:
            events, label = item
        except (TypeError, ValueError):
            raise ValueError(f"dataset item {k} is not an (events, label) pair") from None
        # converted and checked here, once, before any work is sent anywhere; the workers take them as they are
        samples.append(to_input(cfg, events))
        labels.append(int(label))
    blob = cfg.to_msgpack()
    workers = max_workers or os.cpu_count() or 1
    chunk = chunk_size or max(1, min(64, len(samples) // (4 * workers) or 1))
    parts = [samples[i:i + chunk] for i in range(0, len(samples), chunk)]
    t0 = time.perf_counter()
    own = None
    if executor is None and len(parts) > 1 and workers > 1:
        own = executor = cf.ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                                initargs=(blob, options))
    try:
        if executor is None or executor == "serial":
            results = [_run_chunk(blob, options, out_core, n_classes, p) for p in _progress(parts, progress)]
        else:
            futs = [executor.submit(_run_chunk, blob, options, out_core, n_classes, p) for p in parts]
            results = [f.result() for f in _progress(futs, progress)]
    finally:
        if own is not None:
            own.shutdown(wait=True)
    seconds = time.perf_counter() - t0
    counts = np.concatenate([r[0] for r in results]) if results else np.zeros((0, n_classes), np.int64)
    pred = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), -1) if len(counts) else np.zeros(0, int)
    return EvalResult(pred, np.asarray(labels), counts, int(sum(r[1] for r in results)), seconds)


def _progress(items, enabled: bool):
    if not enabled or len(items) < 2:
        return items
    try:
        from rich.progress import track
    except ImportError:  # pragma: no cover
        return items
    return track(items, description="evaluate", transient=True)


# --------------------------------------------------------------------------------------------- compare
@dataclass
class LayerComparison:
    core: int
    name: str  # the layer's modules in the model
    float_spikes: int  # the torch model as trained, time-stepped
    quantized_spikes: int  # the torch model with the chip's integers, time-stepped
    chip_spikes: int  # the simulated chip, event-driven
    neuron_match: float  # fraction of neurons whose spike count is the same in quantized torch and on chip
    chip_clamps: int  # floor clamps on the chip (one per inhibitory update that hits the floor)
    torch_clamps: int  # floor clamps in the quantized time-stepped model (at most one per neuron per step)


@dataclass
class CompareReport:
    layers: list[LayerComparison]
    dt_us: int
    cause: str  # where and why the chip and the model part ways (or that they agree)
    first_divergent: str | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        head = ("core", "layer", "float", "quantized", "chip", "match", "clamps chip/torch")
        rows = [head] + [(str(r.core), r.name, str(r.float_spikes), str(r.quantized_spikes), str(r.chip_spikes),
                          f"{100 * r.neuron_match:.1f}%", f"{r.chip_clamps}/{r.torch_clamps}") for r in self.layers]
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        return "\n".join([f"spike counts per layer, torch time-stepped at {self.dt_us} µs vs the simulated chip"]
                         + lines + [self.cause])

    __str__ = table


def _bin(cfg: ChipConfig, events: np.ndarray, dt_us: int) -> tuple[np.ndarray, int]:
    """Input spikes (one core's input map) -> dense [T, C, H, W] counts in ``dt_us`` bins."""
    core = cfg.input_cores[0]
    C, H, W = cfg.cores[core].input_shape
    ev = events[events["core"] == core]
    T = int(ev["t"].max() // dt_us) + 1 if len(ev) else 1
    x = np.zeros((T, C, H, W), np.float32)
    np.add.at(x, ((ev["t"] // dt_us).astype(np.int64), ev["c"].astype(np.int64), ev["y"].astype(np.int64),
                  ev["x"].astype(np.int64)), 1)
    return x, T


def _quantized_torch(cfg: ChipConfig, x: np.ndarray) -> tuple[dict, dict]:
    """The ChipConfig run as sinabs runs a network: per step v += conv(x) (integer weights), MultiSpike
    floor(v / thr) spikes, subtract (or reset), then one clamp at the floor. Returns per-core spike counts
    [C, H, W] and clamp counts."""
    import torch
    import torch.nn.functional as F

    T = x.shape[0]
    inputs = {c: torch.zeros((T, *cfg.cores[c].input_shape)) for c in cfg.cores}
    for c in cfg.input_cores:
        inputs[c] += torch.from_numpy(x)
    counts, clamps = {}, {}
    for c in cfg.layer_order:
        cc = cfg.cores[c]
        w = torch.from_numpy(cc.weights.astype(np.float32))
        drive = F.conv2d(inputs[c], w, stride=cc.stride, padding=cc.padding)
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
            if d.core in inputs:
                Hd, Wd = cfg.cores[d.core].input_shape[1:]
                pooled = F.avg_pool2d(spikes, d.pooling) * d.pooling ** 2 if d.pooling > 1 else spikes
                inputs[d.core] += pooled[:, :, :Hd, :Wd]
    return counts, clamps


def _float_torch(model, cfg: ChipConfig, x: np.ndarray) -> dict:
    """The user's torch model, time-stepped on the binned input: spike counts per core's spiking module."""
    import copy

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
                lambda _m, _a, out, c=names[name]: got.__setitem__(c, out.detach().reshape(
                    out.shape[0], *cfg.cores[c].output_shape).sum(0).numpy())))
    try:
        with torch.no_grad():
            copy.copy(m)(torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return got


def compare(model, config, events: np.ndarray, *, dt_us: int = 1000, tolerance: float = 0.02) -> CompareReport:
    """Layer by layer, where the chip and the torch model part ways on ``events``.

    Three runs on the same input: the torch ``model`` as it is (float, time-stepped in ``dt_us`` bins, batch
    1), the same network with the chip's integer weights and thresholds (time-stepped), and the simulated chip
    (event-driven, every core monitored). A gap between float and quantized comes from quantization; a gap
    between quantized and chip from event-driven dynamics: the vmem floor clamped after every inhibitory
    event (``clamps``), one spike per input event, event order. The report names the first layer whose
    spike counts differ by more than ``tolerance`` (relative) and the likely cause.
    """
    from .errors import require

    require("torch", "compile", "speckstream.compare (it runs the torch model)")
    cfg = load_config(config)
    if cfg.dvs is not None:
        raise ValueError("compare takes networks fed at their input core (no DVS stage) for now")
    kind, ev = to_input(cfg, events)
    mon = ChipConfig.from_msgpack(cfg.to_msgpack())
    for cc in mon.cores.values():
        cc.monitor = True
    sim = ChipSimulator(mon)
    out = sim.feed(ev)
    x, _ = _bin(cfg, ev, dt_us)
    q, q_clamps = _quantized_torch(cfg, x)
    f = _float_torch(model, cfg, x) if model is not None else {}
    layers, first, cause = [], None, "the chip and the model agree within tolerance on every layer"
    for c in cfg.layer_order:
        cc = cfg.cores[c]
        chip = np.zeros(cc.output_shape, np.int64)
        o = out[out["core"] == c]
        np.add.at(chip, (o["c"].astype(np.int64), o["y"].astype(np.int64), o["x"].astype(np.int64)), 1)
        qc = np.rint(q[c]).astype(np.int64)
        name = " > ".join(cc.provenance.modules[:2]) if cc.provenance else str(c)
        row = LayerComparison(c, name, int(round(float(f[c].sum()))) if c in f else -1, int(qc.sum()),
                              int(chip.sum()), float(np.mean(qc == chip)), sim.stats["clamps"][c], q_clamps[c])
        layers.append(row)
        gap = abs(row.chip_spikes - row.quantized_spikes) / max(row.chip_spikes, row.quantized_spikes, 1)
        if first is None and gap > tolerance:
            first = name
            if row.chip_clamps > row.torch_clamps:
                cause = (f"the chip and the time-stepped model part ways at layer {name} (core {c}): "
                         f"{row.chip_spikes} vs {row.quantized_spikes} spikes. The vmem floor ({cc.threshold_low}) "
                         f"clamps after every inhibitory event on the chip ({row.chip_clamps} clamps) but once per "
                         f"step in torch ({row.torch_clamps}): lower min_v_mem (e.g. -100 x threshold)")
            else:
                cause = (f"the chip and the time-stepped model part ways at layer {name} (core {c}): "
                         f"{row.chip_spikes} vs {row.quantized_spikes} spikes, not from floor clamps: event-driven "
                         "dynamics (one spike per input event, the order of events within a "
                         f"{dt_us} µs step); a smaller dt_us or weights below the threshold bring them closer")
        if first is None and row.float_spikes >= 0:
            qgap = abs(row.float_spikes - row.quantized_spikes) / max(row.float_spikes, row.quantized_spikes, 1)
            if qgap > tolerance:
                first = name
                cause = (f"quantization: at layer {name} (core {c}) the float model gives {row.float_spikes} spikes, "
                         f"the integer weights {row.quantized_spikes} (scale {cc.provenance.scale:.4g})")
    return CompareReport(layers, dt_us, cause, first)
