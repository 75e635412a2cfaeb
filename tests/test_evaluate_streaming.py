"""evaluate streams its data set: samples pulled as workers free up, memory flat in the number of samples, a
bounded number of chunks in flight, results identical to the serial run on a list, every sample checked before
it runs (errors name its index), and a progress bar that works without a length."""
from __future__ import annotations

import concurrent.futures as cf
import io
import multiprocessing
import threading
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.api import IN_FLIGHT_PER_WORKER, _Progress
from speckstream.codec.errors import AddressError, CodecError
from speckstream.testing.configs import config, core

N_CLASSES = 4


def classifier():
    """4 x 8 x 8 input -> 4 classes (a 'linear' 8x8 kernel): class k counts the events of channel k, roughly."""
    rng = np.random.default_rng(0)
    w = rng.integers(-2, 12, size=(N_CLASSES, 4, 8, 8))
    w[np.arange(N_CLASSES), np.arange(N_CLASSES)] += 20
    return config(core(0, 4, 8, 8, N_CLASSES, k=8, weights=w, thr=60, low=-60, monitor=True))


def sample(i: int, n: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(i)
    label = i % N_CLASSES
    c = np.where(rng.random(n) < 0.6, label, rng.integers(0, N_CLASSES, n))
    ev = codec.spikes(t=np.sort(rng.integers(0, 100_000, n)), core=0, c=c, x=rng.integers(0, 8, n),
                      y=rng.integers(0, 8, n))
    return ev, label


def samples(count: int, n: int = 200, start: int = 0):
    """A generator: no length, each sample made when it is pulled."""
    for i in range(start, start + count):
        yield sample(i, n)


@pytest.fixture(scope="module")
def cfg():
    return classifier()


@pytest.fixture(scope="module")
def want(cfg):
    return ss.evaluate(cfg, [sample(i, 200) for i in range(60)], executor="serial", progress=False)


def _same(got, want):
    assert np.array_equal(got.counts, want.counts) and np.array_equal(got.labels, want.labels)
    assert np.array_equal(got.predictions, want.predictions) and got.events_in == want.events_in


@settings(max_examples=12, deadline=None)
@given(chunk=st.one_of(st.none(), st.integers(1, 70)), kind=st.sampled_from(["serial", "threads", "generator"]))
def test_results_identical_for_lists_generators_any_chunking_and_executor(cfg, want, chunk, kind):
    data = samples(60) if kind == "generator" else [sample(i, 200) for i in range(60)]
    if kind == "threads":
        with cf.ThreadPoolExecutor(2) as ex:
            got = ss.evaluate(cfg, data, executor=ex, chunk_size=chunk, progress=False)
    else:
        got = ss.evaluate(cfg, data, executor="serial", chunk_size=chunk, progress=False)
    _same(got, want)
    assert want.accuracy > 0.8  # the classifier works: the counts above mean something


def test_a_process_pool_of_its_own_on_a_generator(cfg, want):
    _same(ss.evaluate(cfg, samples(60), max_workers=2, chunk_size=5, progress=False), want)
    assert not multiprocessing.active_children()  # the pool it started is gone


def _peak_traced(cfg, count: int, executor) -> int:
    """Peak bytes allocated (tracemalloc: numpy's buffers included) while evaluating ``count`` samples of
    ~64 KiB that the data set makes as they are pulled."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = ss.evaluate(cfg, samples(count, n=4096), executor=executor, chunk_size=4, progress=False)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(res.labels) == count
    return peak


@pytest.mark.parametrize("threads", [False, True])
def test_memory_is_flat_in_the_number_of_samples(cfg, threads):
    """40 and 160 samples of 64 KiB (10 MiB in all): the peak does not grow with the count (the whole set held at
    once, as evaluate did before it streamed, would be 2.5 - 10 MiB)."""
    ex = cf.ThreadPoolExecutor(2) if threads else "serial"
    try:
        small, big = _peak_traced(cfg, 40, ex), _peak_traced(cfg, 160, ex)
    finally:
        if threads:
            ex.shutdown()
    one = 4096 * codec.SPIKE_DTYPE.itemsize
    assert big < 1.3 * small + 8 * one, (small, big)
    assert big < 40 * one, (small, big)  # ~ chunks in flight x 4 samples, not 160 samples


class CountingExecutor(cf.Executor):
    """A thread pool that records the most chunks ever submitted and not finished."""

    def __init__(self, workers: int):
        self._pool = cf.ThreadPoolExecutor(workers)
        self._max_workers = workers
        self._lock = threading.Lock()
        self.open = self.most = 0

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            self.open += 1
            self.most = max(self.most, self.open)
        fut = self._pool.submit(fn, *args, **kwargs)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, _):
        with self._lock:
            self.open -= 1

    def shutdown(self, wait=True, **kw):
        self._pool.shutdown(wait=wait, **kw)


def test_chunks_in_flight_are_bounded_per_worker(cfg, want):
    pulled = []

    def gen():
        for i, s in enumerate(samples(60)):
            pulled.append(i)
            yield s

    with CountingExecutor(2) as ex:
        got = ss.evaluate(cfg, gen(), executor=ex, chunk_size=3, progress=False)
    _same(got, want)
    assert 1 <= ex.most <= IN_FLIGHT_PER_WORKER * 2
    assert len(pulled) == 60


def test_a_chunk_closes_at_its_byte_limit(cfg, monkeypatch):
    """Samples of any size: a chunk holds at most CHUNK_BYTES of events (or one sample bigger than that)."""
    import speckstream.api as api

    monkeypatch.setattr(api, "CHUNK_BYTES", 3 * 1000 * codec.SPIKE_DTYPE.itemsize)
    sizes = []
    real = api._run_chunk

    def spy(*args):
        sizes.append(len(args[-1]))
        return real(*args)

    monkeypatch.setattr(api, "_run_chunk", spy)
    got = ss.evaluate(cfg, samples(10, n=1000), executor="serial", chunk_size=64, progress=False)
    assert sizes == [3, 3, 3, 1] and len(got.labels) == 10


def test_a_bad_sample_is_named_by_index_after_the_earlier_ones_ran(cfg):
    def gen():
        yield from samples(7)
        ev, _ = sample(7, 50)
        yield ev[::-1], 0  # out of time order
        raise AssertionError("evaluate pulled a sample past the bad one")

    for ex in ("serial", None):
        with pytest.raises(CodecError, match=r"dataset item 7: .*time order"):
            ss.evaluate(cfg, gen(), executor=ex, max_workers=2, chunk_size=2, progress=False)
    assert not multiprocessing.active_children()
    off = sample(0, 10)[0]
    off["x"][3] = 8  # off the 8 x 8 input map
    with pytest.raises(AddressError, match=r"dataset item 2: event 3"):
        ss.evaluate(cfg, [sample(0, 10), sample(1, 10), (codec.to_xytp(off), 0)], executor="serial",
                    progress=False)
    with pytest.raises(ValueError, match="dataset item 1 is not an \\(events, label\\) pair"):
        ss.evaluate(cfg, [sample(0, 10), 5], executor="serial", progress=False)


def test_a_worker_error_stops_the_run_and_cancels_the_rest(cfg, monkeypatch):
    import speckstream.api as api

    calls = []
    real = api._run_chunk  # the patched name would call itself: a chunk already running would recurse ~1000 deep

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker broke")
        return real(*args)

    monkeypatch.setattr(api, "_run_chunk", failing)
    with cf.ThreadPoolExecutor(1) as ex, pytest.raises(RuntimeError, match="worker broke"):
        ss.evaluate(cfg, samples(400), executor=ex, chunk_size=2, progress=False)
    assert len(calls) <= 3 + IN_FLIGHT_PER_WORKER  # not the 200 chunks of the data set


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4"])
def test_chunk_size_and_executor_are_checked(cfg, bad):
    with pytest.raises(ValueError, match="chunk_size must be a positive number"):
        ss.evaluate(cfg, samples(2), chunk_size=bad, progress=False)
    with pytest.raises(ValueError, match="executor must be"):
        ss.evaluate(cfg, samples(2), executor="threads", progress=False)


def test_progress_counts_samples_without_a_length():
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with _Progress(True, None, console=console) as bar:
        bar.advance(3)
        bar._bar.refresh()
    assert "3/?" in out.getvalue() and "samples" in out.getvalue()
    out = io.StringIO()
    with _Progress(True, 10, console=Console(file=out, force_terminal=True, width=100)) as bar:
        bar.advance(4)
        bar._bar.refresh()
    assert " 4/10" in out.getvalue()


def test_evaluate_with_a_progress_bar_on_a_generator(cfg, want):
    _same(ss.evaluate(cfg, samples(60), executor="serial", progress=True), want)
