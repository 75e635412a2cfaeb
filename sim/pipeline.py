"""One stream on two CPU cores (``SimOptions(threads=2)``): a chain network's first layers on the calling
thread, the rest on a second thread, with results identical to the single-thread engine's, spike for spike.

Why it is exact. The engine delivers pending spikes first-in first-out. In a chain (every core feeds at most
one core and is fed by at most one; the readout aside), that order finishes a layer's spikes for one input
before it starts the next layer's, and a layer receives the layer before's output in the order it fired. So
each core takes exactly the same spikes in the same order whichever thread runs it, and each input's monitored
output is the first stage's followed by the second's: the pipeline hands the second stage each input's spikes
with the input's release time and cascade steps (``max_cascade`` counts as before), and merges the outputs input
by input. Slow-clock ticks run on one thread between pipelined segments. Which layers go first is chosen from the
synaptic updates measured per core so far (the first ``CALIBRATION_INPUTS`` inputs run on one thread when
nothing is measured yet), to balance the two threads.

What the chip guarantees: nothing public about the order of spikes across cores - its cores work in parallel
and the event router's arbitration is not documented; the first-in first-out order is the simulator's inference
(README: "Left without public evidence"). The pipeline reproduces the simulator's order, not a measured chip's.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..compiler.chips import get_chip
from ..compiler.config import ChipConfig

__all__ = ["Pipeline", "chain_of", "PIPELINE_MIN_INPUTS", "CALIBRATION_INPUTS"]

#: feeds (or segments between slow-clock ticks) shorter than this run on one thread: starting the second
#: thread costs ~0.1 ms
PIPELINE_MIN_INPUTS = 4096
#: inputs run on one thread first when no update has been measured yet (to choose the split)
CALIBRATION_INPUTS = 4096


def chain_of(cfg: ChipConfig) -> list[int] | None:
    """The cores in chain order from the single input core, when the network is a chain of two cores or more
    (each core feeds at most one core and is fed by at most one; destinations to the readout do not count);
    None otherwise."""
    if len(cfg.input_cores) != 1 or len(cfg.cores) < 2:
        return None
    readout = get_chip(cfg.chip).readout_id
    nxt = {c: [d.core for d in cc.destinations[:2] if d.core != readout] for c, cc in cfg.cores.items()}
    fed = Counter(d for ds in nxt.values() for d in ds)
    chain = [cfg.input_cores[0]]
    while True:
        c = chain[-1]
        if len(nxt[c]) > 1 or fed[c] > (0 if len(chain) == 1 else 1):
            return None
        if not nxt[c]:
            break
        if nxt[c][0] in chain or nxt[c][0] not in cfg.cores:
            return None
        chain.append(nxt[c][0])
    return chain if set(chain) == set(cfg.cores) else None


class Pipeline:
    """The second stage of a pipelined engine (a Core over the same state) and the chain it splits."""

    def __init__(self, chain: list[int], second) -> None:
        self.chain = chain
        self.second = second
        self.runs = 0  # pipelined runs so far (segments on two threads)

    @classmethod
    def plan(cls, cfg: ChipConfig, opts, make_core) -> "Pipeline | None":
        """A pipeline for this configuration, or None (not a chain: one thread, as before)."""
        from ._ccore import PIPELINE

        chain = chain_of(cfg)
        return None if chain is None or not PIPELINE else cls(chain, make_core(cfg, opts))

    def run(self, core, spikes: np.ndarray, now: int, next_tick: int, period: int, until: int):
        """As ``Core.run``: (now, next_tick, index of a bad input or -1)."""
        if len(spikes) < PIPELINE_MIN_INPUTS or not np.all(spikes["core"] == self.chain[0]):
            return core.run(spikes, now, next_tick, period, until)
        # each input is released at max(t, the previous release): the running maximum, sorted even where the
        # timestamps are not, computed once (not once per segment: a slow clock makes thousands of segments)
        released = np.maximum.accumulate(np.maximum(spikes["t"], np.uint64(now))) if period else None
        done = 0
        while done < len(spikes):
            # the inputs released before the next tick, or all of them: one segment
            end = len(spikes) if released is None else done + int(np.searchsorted(
                released[done:], next_tick, side="left"))
            now, next_tick, bad = self._segment(core, spikes[done:end], now, next_tick, period)
            if bad >= 0:
                return now, next_tick, done + bad
            done = end
            if period and done < len(spikes):  # the tick(s) due before the next input, on one thread
                t_next = max(int(spikes["t"][done]), now)
                now, next_tick, _ = core.run(spikes[:0], now, next_tick, period, t_next)
        return core.run(spikes[:0], now, next_tick, period, until)  # ticks up to `until`, as run() ends

    def _segment(self, core, spikes: np.ndarray, now: int, next_tick: int, period: int):
        """Inputs among which no tick falls: on two threads when there are enough, split where the updates
        measured so far balance."""
        start = 0
        if (core.updates_per_core() + self.second.updates_per_core())[self.chain].sum() == 0:
            start = min(CALIBRATION_INPUTS, len(spikes))
            now, next_tick, bad = core.run(spikes[:start], now, next_tick, period, now)
            if bad >= 0:
                return now, next_tick, bad
        rest = spikes[start:]
        if len(rest) < PIPELINE_MIN_INPUTS:
            now, next_tick, bad = core.run(rest, now, next_tick, period, now)
        else:
            now, bad = core.run_pipelined(self.second, rest, now, self._first_stage(core))
            self.runs += 1
        return now, next_tick, bad if bad < 0 else start + bad

    def _first_stage(self, core) -> int:
        """The first stage's cores as a bitmask: the chain's head up to where the updates measured so far split in
        two halves as even as the layers allow (at least one layer each)."""
        upd = (core.updates_per_core() + self.second.updates_per_core())[self.chain].astype(np.float64)
        before = np.cumsum(upd)[:-1]  # the first stage's updates when it ends after layer i
        cut = int(np.argmin(np.maximum(before, upd.sum() - before))) + 1
        return sum(1 << c for c in self.chain[:cut])
