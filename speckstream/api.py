"""The synchronous layer: does the chip do what my trained model does? No event loop needed.

* :func:`simulate` - one event stream through the simulated chip in virtual time (as fast as the CPU allows).
* :func:`evaluate` - a data set of (events, label) samples, state reset between samples, on any
  ``concurrent.futures.Executor`` (a process pool by default; a ``dask.distributed`` client's executor for a
  cluster). One simulator per worker; the configuration travels once per worker, not per sample.
* :func:`compare` - layer by layer, the spike counts of the torch model (float, and with the chip's integer
  weights and thresholds, time-stepped) against the simulated chip on the same events, naming where they part
  (:mod:`speckstream.comparison`).

All three run the same engine as the ``"sim"`` device of the streaming runtime.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .compiler.config import ChipConfig, load_config
from .sim import ChipSimulator, SimOptions
from .comparison import CompareReport, LayerComparison, compare
from .sim.inputs import to_input

__all__ = ["simulate", "evaluate", "EvalResult", "compare", "CompareReport", "LayerComparison", "to_input"]


def _feed(sim: ChipSimulator, kind: str, events: np.ndarray, until: int | None) -> np.ndarray:
    out = sim.feed_dvs(events) if kind == "dvs" else sim.feed(events)
    if until is not None and until > sim.now_us:
        more = sim.advance_to(int(until))
        out = np.concatenate([out, more]) if len(more) else out
    return out


def simulate(config, events: np.ndarray, *, until: int | None = None, options: SimOptions | None = None,
             output: str = "spikes") -> np.ndarray:
    """Run ``events`` through a fresh simulated chip in virtual time and return what it sent out.

    ``events``: SPIKE_DTYPE or tonic-style (x, y, t, p) arrays (DvsEvents for a config with a DVS stage).
    ``until`` (µs) keeps the clock running after the last event: slow-clock ticks (leak, readout) happen only
    while chip time passes, and in virtual time it passes with the input. ``output``: "spikes" (the monitored
    output spikes, SPIKE_DTYPE, real timestamps in µs) or "readout" (the ReadoutValues of a config with a readout
    layer, READOUT_DTYPE stamped with their slow-clock tick time in µs; one per tick up to ``until``).
    """
    if output not in ("spikes", "readout"):
        raise ValueError(f"output must be 'spikes' or 'readout', got {output!r}")
    cfg = load_config(config)
    if output == "readout" and (cfg.readout is None or not cfg.slow_clock_hz):
        raise ValueError("output='readout' needs a configuration with a readout layer and a slow clock: "
                         "compile(..., readout=True, slow_clock_hz=...) (the readout acts once per tick)")
    kind, ev = to_input(cfg, events)
    sim = ChipSimulator(cfg, options=options)
    spikes = _feed(sim, kind, ev, until)
    return sim.take_readout() if output == "readout" else spikes


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
