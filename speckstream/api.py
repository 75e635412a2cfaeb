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
import functools
import hashlib
import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .compiler.config import ChipConfig, load_config
from .errors import SpeckstreamError
from .sim import ChipSimulator, SimOptions
from .comparison import CompareReport, LayerComparison, compare
from .codec.inputs import to_input
from .sim.energy import EnergyModel
from .profiling import Activity, activity, duration_of, monitor_all, synops_per_event

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
    activity: Activity | None = None  # per sample and core: SynOps, spikes, peak SynOps/s, energy (activity=True)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else float("nan")

    @property
    def events_per_s(self) -> float:
        """Input events per second of wall time, all workers together."""
        return self.events_in / self.seconds if self.seconds > 0 else float("inf")

    def confusion(self, n_classes: int | None = None) -> np.ndarray:
        """[true class, predicted class] counts (a column for "no output" last when any sample had none)."""
        from .plots import confusion  # numpy only: matplotlib is imported when a figure is drawn

        return confusion(self.labels, self.predictions, n_classes or self.counts.shape[1])


_WORKER = threading.local()  # per thread: a simulator is not thread-safe (its engine runs without the GIL)


def _worker_sim(blob: bytes, options: SimOptions | None) -> tuple[ChipSimulator, ChipConfig]:
    """The worker's simulator for a configuration (unpacked once per worker thread, then reused)."""
    key = (hashlib.sha1(blob).hexdigest(), repr(options))
    if getattr(_WORKER, "key", None) != key:
        cfg = ChipConfig.from_msgpack(blob)
        _WORKER.key, _WORKER.cfg, _WORKER.sim = key, cfg, ChipSimulator(cfg, options=options)
        _WORKER.tables = None  # SynOps per input pixel, per core: made on the first activity=True chunk
    return _WORKER.sim, _WORKER.cfg


def _tables(cfg: ChipConfig) -> dict[int, np.ndarray]:
    if _WORKER.tables is None:
        _WORKER.tables = {c: synops_per_event(cfg.cores[c]) for c in cfg.layer_order}
    return _WORKER.tables


def _init_worker(blob: bytes, options: SimOptions | None) -> None:
    _worker_sim(blob, options)


def _run_chunk(blob: bytes, options, readout_core: int, n_classes: int, want_activity: bool,
               samples: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Classify samples already converted and checked by ``to_input`` in the caller (kind, events); with
    ``want_activity`` (a config with every core monitored) also each sample's activity per core:
    [sample, core, (events in, SynOps, spikes out, peak SynOps/s over 1 ms, duration µs)]."""
    sim, cfg = _worker_sim(blob, options)
    counts = np.zeros((len(samples), n_classes), np.int64)
    act = np.zeros((len(samples), len(cfg.layer_order), 5), np.float64) if want_activity else None
    n_in = 0
    for i, (kind, ev) in enumerate(samples):
        sim.reset_state(to_initial=True)  # samples are independent: state and time start afresh
        sim.reset_time()
        n_in += len(ev)
        out = _feed(sim, kind, ev, None)
        if act is not None:
            acts = activity(cfg, kind, ev, out, drop_off_map=sim.options.drop_off_map, tables=_tables(cfg))
            dur = duration_of(ev)
            act[i] = [(len(a.t), a.synops, a.spikes_out, a.peak(1000)[0], dur) for a in acts.values()]
        out = out[out["core"] == readout_core]
        np.add.at(counts[i], out["c"].astype(np.int64) % n_classes, 1)
    return counts, n_in, act


#: a chunk of samples closes at ``chunk_size`` samples or at this many bytes of events, whichever comes first:
#: what one worker holds at a time, whatever the size of a sample
CHUNK_BYTES = 8 << 20
#: chunks submitted and not finished, per worker: enough to keep every worker busy while the next chunk is
#: validated, few enough that memory does not grow with the data set
IN_FLIGHT_PER_WORKER = 2


def evaluate(config, dataset: Iterable, *, executor: cf.Executor | str | None = None, readout: str = "count",
             progress: bool = True, chunk_size: int | None = None, options: SimOptions | None = None,
             max_workers: int | None = None, activity: bool = False,
             energy: EnergyModel | None = None) -> EvalResult:
    """Classify every (events, label) sample of ``dataset`` (exactly what a tonic dataset yields) on the
    simulated chip and return an :class:`EvalResult`.

    The prediction is the class with the most output spikes (``readout="count"``, the only rule so far: it
    names how spikes become a decision, not the chip's readout layer; ties go to the lowest class, no spike at
    all predicts -1). ``executor``: any ``concurrent.futures.Executor`` (default: a
    process pool over the machine's cores; pass ``dask.distributed.Client(...).get_executor()`` for a
    cluster, or ``"serial"`` to run in this process). Predictions do not depend on the executor.

    The data set is streamed: samples are pulled as workers free up, each converted and checked in this
    process before it is sent (an error names the sample's index; the samples before it have run), in chunks
    of ``chunk_size`` samples or 8 MiB of events, with at most two chunks per worker in flight: memory does not
    grow with the number of samples, so a generator over thousands of recordings is fine. ``progress`` shows
    a bar of samples done (out of ``len(dataset)`` when the data set has a length).

    ``activity=True`` also measures each sample's cost on the chip, as :func:`speckstream.profile` does (exact
    SynOps, spikes, peak SynOps/s over 1 ms per core) and its energy (``energy``, default
    :class:`~speckstream.sim.energy.EnergyModel`): ``EvalResult.activity`` (mean / max per core, energy per
    inference). Every core is then monitored inside the simulator, which costs some speed.
    """
    if readout != "count":
        raise ValueError(f"readout must be 'count' (the only readout so far), got {readout!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive number of samples (or None), got {chunk_size!r}")
    if isinstance(executor, str) and executor != "serial":
        raise ValueError(f"executor must be a concurrent.futures.Executor, 'serial' or None, got {executor!r}")
    cfg = load_config(config)
    if len(cfg.output_cores) != 1:
        raise ValueError(f"evaluate needs one output layer to read classes from; the config has "
                         f"{len(cfg.output_cores)} ({cfg.output_cores})")
    out_core = cfg.output_cores[0]
    if not cfg.cores[out_core].monitor:
        raise ValueError(f"the output core {out_core} is not monitored: compile with monitor='exits'")
    n_classes = cfg.cores[out_core].output_shape[0]
    total = _known_length(dataset)
    workers = max_workers or getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    chunk = chunk_size or (max(1, min(64, total // (4 * workers) or 1)) if total is not None else 16)
    labels: list[int] = []
    chunks = _validated_chunks(cfg, dataset, chunk, labels)
    blob = (monitor_all(cfg) if activity else cfg).to_msgpack()
    run = functools.partial(_run_chunk, blob, options, out_core, n_classes, bool(activity))
    t0 = time.perf_counter()
    with _Progress(progress, total) as bar:
        if executor == "serial" or (executor is None and workers <= 1):
            results = _run_serial(run, chunks, bar)
        else:
            results = _run_on(executor, run, chunks, bar, workers, blob, options)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    counts = np.concatenate([r[0] for r in results]) if results else np.zeros((0, n_classes), np.int64)
    pred = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), -1) if len(counts) else np.zeros(0, int)
    act = None
    if activity:
        rows = np.concatenate([r[2] for r in results]) if results else np.zeros((0, len(cfg.layer_order), 5))
        act = Activity.from_rows(list(cfg.layer_order), rows, energy or EnergyModel())
    return EvalResult(pred, np.asarray(labels), counts, int(sum(r[1] for r in results)), seconds, act)


def _known_length(dataset) -> int | None:
    """``len(dataset)`` when it has one (a list, a tonic dataset), None for a generator."""
    try:
        return len(dataset)
    except TypeError:
        return None


def _validated_chunks(cfg: ChipConfig, dataset: Iterable, chunk: int, labels: list[int]
                      ) -> Iterator[list[tuple[str, np.ndarray]]]:
    """The data set pulled one sample at a time, each converted and checked by ``to_input`` here, once, before
    it is sent anywhere (the workers take them as they are), its label appended to ``labels``. A chunk closes
    at ``chunk`` samples or CHUNK_BYTES of events."""
    part: list[tuple[str, np.ndarray]] = []
    size = 0
    for k, item in enumerate(dataset):
        try:
            events, label = item
        except (TypeError, ValueError):
            raise ValueError(f"dataset item {k} is not an (events, label) pair") from None
        try:
            sample = to_input(cfg, events)
        except SpeckstreamError as e:
            raise _naming_item(e, k) from None
        labels.append(int(label))
        part.append(sample)
        size += sample[1].nbytes
        if len(part) >= chunk or size >= CHUNK_BYTES:
            yield part
            part, size = [], 0
    if part:
        yield part


def _naming_item(e: SpeckstreamError, k: int) -> SpeckstreamError:
    """The same error (same type) with the sample's index in front of its message."""
    try:
        return type(e)(f"dataset item {k}: {e}")
    except Exception:  # an error type with another signature: the original, with a note
        e.add_note(f"(dataset item {k})")
        return e


def _run_serial(run, chunks: Iterator, bar: "_Progress") -> list[tuple]:
    results = []
    for samples in chunks:
        results.append(run(samples))
        bar.advance(len(samples))
    return results


def _run_on(executor: cf.Executor | None, run, chunks: Iterator, bar: "_Progress", workers: int, blob: bytes,
            options) -> list[tuple]:
    """Chunks through ``executor`` (None: a process pool of our own, when there is more than one chunk), at most
    IN_FLIGHT_PER_WORKER per worker submitted and unfinished; results in chunk order."""
    first = list(itertools.islice(chunks, 2))
    if executor is None and len(first) < 2:  # one chunk: starting interpreters would cost more than it saves
        return _run_serial(run, iter(first), bar)
    chunks = itertools.chain(first, chunks)
    del first
    own = None
    if executor is None:
        own = executor = cf.ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                                initargs=(blob, options))
    window = IN_FLIGHT_PER_WORKER * workers
    done: dict[int, tuple] = {}
    pending: dict[cf.Future, tuple[int, int]] = {}  # future -> (chunk index, samples in it)
    try:
        for i, samples in enumerate(chunks):
            while len(pending) >= window:
                _collect(pending, done, bar)
            pending[executor.submit(run, samples)] = (i, len(samples))
            del samples  # held by the executor until it has run, not here
        while pending:
            _collect(pending, done, bar)
    finally:
        for f in pending:
            f.cancel()
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
    return [done[i] for i in range(len(done))]


def _collect(pending: dict, done: dict, bar: "_Progress") -> None:
    """Wait for at least one pending chunk and move the finished ones to ``done`` (a worker's error is raised)."""
    finished, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
    for f in finished:
        i, n = pending.pop(f)
        done[i] = f.result()
        bar.advance(n)


class _Progress:
    """A transient rich progress bar counting samples, of a total that may be unknown (a generator: "n/?").
    Does nothing when disabled, for fewer than 2 samples, or without rich."""

    def __init__(self, enabled: bool, total: int | None, console=None):
        self._bar = None
        if not enabled or (total is not None and total < 2):
            return
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:  # pragma: no cover
            return
        self._bar = Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                             TimeElapsedColumn(), transient=True, console=console)
        self._task = self._bar.add_task("evaluate", total=total)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __enter__(self) -> "_Progress":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
