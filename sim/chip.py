"""The software chip: a bit-faithful, event-driven model of a Speck / DYNAP-CNN chip.

:class:`ChipSimulator` is synchronous and pure (no threads, no wall clock): it consumes a ChipConfig and
event arrays and returns event arrays, in virtual time (µs). The runtime's ``"sim"`` device wraps it
with the devkit's behaviour (stopwatch, 32-bit timestamps, real-time pacing, faults).

Where the public material is silent (docs/chip-notes.md; ``speckstream hwcheck`` pins these on a devkit) the
choices are switches in :class:`SimOptions`, with these defaults:

* ``leak_fires=False`` - a slow-clock leak step that crosses the threshold does not fire (spikes are
  documented only as triggered by input events); the neuron fires on its next input.
* vmem saturates at +32767 (counted in ``stats["saturated"]``); it never goes below ``threshold_low``.
* ``address_layout="packed"`` for ReadNeuronValue / WriteNeuronValue addresses (``"sinabs"`` available).
* Pending spikes inside the chip are delivered first-in first-out (the chip's order is undocumented;
  "roughly depth-first"): this only matters for the floor clamp and reset order within one cascade.
* A slow-clock tick due at the same µs as an input is applied before the input.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codec import neurons as _neurons
from ..codec.addresses import decode
from ..codec.errors import AddressError
from ..codec.events import (DVS_EVENT_DTYPE, NEURON_VALUE_DTYPE, READ_REQUEST_DTYPE, READOUT_DTYPE, SPIKE_DTYPE,
                           WRITE_REQUEST_DTYPE)
from ..codec.inputs import check_dvs_events
from ..compiler.chips import get_chip
from ..compiler.config import ChipConfig, load_config
from ..compiler.validate import validate
from .dvs import dvs_stage, dvs_to_spikes
from .readout import ReadoutModel
from .pipeline import Pipeline
from .reference import ReferenceEngine
from ._engine import ALL_KERNELS, ENGINE, PackedState
from ._engine import Core as _CythonCore

__all__ = ['SimOptions', 'ChipSimulator', 'ENGINE']


@dataclass
class SimOptions:
    leak_fires: bool = False
    address_layout: str = "packed"
    max_cascade: int = 100_000_000
    engine: str | None = None  # "cython", "reference", or None (the fastest available)
    #: a pooled spike that lands past the destination's input map (a source with an odd size pooled by 2)
    #: is dropped, as torch / sinabs drop it (counted in stats["off_map"]); False convolves it as if the map
    #: were larger (the behaviour before 0.2; what the silicon does is to be checked with hwcheck)
    drop_off_map: bool = True
    #: the Cython engine's inner loop: "avx512", "avx2", "portable", or None (the fastest this CPU runs;
    #: see speckstream.sim.KERNELS). All give identical results; forcing one is for tests and comparisons.
    kernel: str | None = None
    #: 2: one stream on two CPU cores - a chain network's first layers on the calling thread, the rest on a second
    #: one (feeds of PIPELINE_MIN_INPUTS inputs or more with no slow-clock tick among them; results identical to
    #: 1's spike for spike, see sim/pipeline.py). 1: one thread. Leave 1 where processes already share the CPU
    #: (evaluate's workers).
    threads: int = 1
    #: the chip's SynOps/s limit per core (None: not checked). The runtime's "sim" device warns
    #: (BandwidthWarning, naming the core and the chip time) when a core exceeds it over a 1 ms or 10 ms window;
    #: SynSense publishes no figure (ss.profile gives exact peaks offline)
    synops_limit: float | None = None

    def __post_init__(self) -> None:
        if self.synops_limit is not None and (isinstance(self.synops_limit, bool) or not isinstance(
                self.synops_limit, (int, float)) or not 0 < self.synops_limit < float("inf")):
            raise ValueError(f"SimOptions: synops_limit must be a positive number of SynOps/s or None, got "
                             f"{self.synops_limit!r}")
        # named here, where a typo is made, not later as a silent switch to the slow reference engine
        if self.engine not in (None, "cython", "reference"):
            raise ValueError(f"SimOptions: engine must be 'cython', 'reference' or None, got {self.engine!r}")
        if self.kernel is not None and self.kernel not in ALL_KERNELS:
            raise ValueError(f"SimOptions: kernel must be one of {ALL_KERNELS} or None, got {self.kernel!r}")
        if type(self.threads) is not int or self.threads not in (1, 2):  # not 2.0, not True
            raise ValueError(f"SimOptions: threads must be 1 or 2, got {self.threads!r}")


class _CythonEngine:
    def __init__(self, cfg: ChipConfig, opts: SimOptions):
        self.state = PackedState(cfg)
        self.core = self._core(cfg, opts)
        self.pipeline = Pipeline.plan(cfg, opts, self._core) if opts.threads == 2 else None

    def _core(self, cfg: ChipConfig, opts: SimOptions):
        s = self.state
        return _CythonCore(s.params, s.weights, s.w_off, s.vmem, s.v_off, s.biases, s.b_off, s.decimated,
                           opts.leak_fires,
                           opts.max_cascade, opts.drop_off_map, get_chip(cfg.chip).readout_id, opts.kernel)

    def vmem_view(self, core):
        return self.state.vmem_view(core)

    def reset_vmem(self, initial: bool):
        self.state.vmem[:] = self.state.initial_vmem if initial else 0
        self.state.decimated[:] = 0

    def run(self, spikes, now, next_tick, period, until):
        if self.pipeline is not None:
            return self.pipeline.run(self.core, spikes, now, next_tick, period, until)
        return self.core.run(spikes, now, next_tick, period, until)

    def take_outputs(self):
        out, ro = self.core.take_outputs()
        return out.view(SPIKE_DTYPE), ro.view(SPIKE_DTYPE)

    def _both(self, read):  # a counter of the engine and of the pipeline's second stage, when there is one
        return read(self.core) + (read(self.pipeline.second) if self.pipeline else 0)

    n_updates = property(lambda self: self._both(lambda c: c.n_updates))
    core_updates = property(lambda self: self._both(lambda c: c.updates_per_core()))
    core_spikes = property(lambda self: self._both(lambda c: c.spikes_per_core()))
    n_off_map = property(lambda self: self._both(lambda c: c.n_off_map))
    clamps_arr = property(lambda self: self._both(lambda c: c.clamps_arr))
    n_saturated = property(lambda self: self._both(lambda c: c.n_saturated))
    n_ticks = property(lambda self: self.core.n_ticks)


class ChipSimulator:
    """Event-driven chip model in virtual time.

    >>> sim = ChipSimulator(config)                       # doctest: +SKIP
    >>> out = sim.feed(spikes)                            # monitored output spikes
    >>> sim.set_slow_clock(1.0); sim.advance_to(2_000_000)  # two leak ticks
    >>> values = sim.read_neurons(requests)               # NeuronValue replies
    """

    def __init__(self, config=None, *, options: SimOptions | None = None):
        self.options = options or SimOptions()
        self.config: ChipConfig | None = None
        self._engine: Any = None
        self.now_us = 0
        self._tick_period_us = 0
        self._next_tick_us = 0
        self.readout_spikes: list[np.ndarray] = []  # spikes sent to core 12 when no readout is configured
        self.readout_values: list[np.ndarray] = []
        self.raw_events: list[np.ndarray] = []  # the sensor's own events for the host (DVSConfig.raw_monitor)
        self._readout: ReadoutModel | None = None
        self.inputs = 0
        self.sensor_dropped = 0
        self._busy = threading.Lock()
        if config is not None:
            self.apply(config)

    # ---------------------------------------------------------------- configuration and clocks
    def apply(self, config) -> None:
        """Validate and load a ChipConfig (or a path to one); neuron states start at its initial vmem."""
        cfg = load_config(config)
        validate(cfg)
        kind = self.options.engine or ENGINE
        if kind == "cython" and _CythonCore is None:
            raise RuntimeError("the Cython simulation engine is not built (reinstall speckstream)")
        self._engine = (_CythonEngine(cfg, self.options) if kind == "cython"
                        else ReferenceEngine(cfg, leak_fires=self.options.leak_fires,
                                             max_cascade=self.options.max_cascade,
                                             drop_off_map=self.options.drop_off_map))
        self.config = cfg
        self._readout = ReadoutModel(cfg.readout) if cfg.readout is not None else None
        self.readout_values = []
        if cfg.slow_clock_hz:
            self.set_slow_clock(cfg.slow_clock_hz)

    @property
    def engine(self) -> str:
        return "cython" if isinstance(self._engine, _CythonEngine) else "reference"

    def _require(self):
        if self._engine is None:
            raise RuntimeError("no configuration applied: call apply(config) first")
        return self._engine

    @property
    def _cfg(self) -> ChipConfig:
        if self.config is None:
            raise RuntimeError("no configuration applied: call apply(config) first")
        return self.config

    def set_slow_clock(self, hz: float | None) -> None:
        """Start (or stop, with None/0) the slow clock; the first tick comes one period from now."""
        if not hz:
            self._tick_period_us = 0
            return
        if hz <= 0 or hz > 1_000_000:
            raise ValueError(f"slow clock rate must be in (0, 1e6] Hz, got {hz}")
        self._tick_period_us = max(1, round(1e6 / hz))
        self._next_tick_us = self.now_us + self._tick_period_us

    def reset_time(self) -> None:
        """Virtual clock back to 0 (the devkit's stopwatch reset); the slow clock restarts with it."""
        self.now_us = 0
        if self._tick_period_us:
            self._next_tick_us = self._tick_period_us

    def reset_state(self, *, to_initial: bool = False) -> None:
        """Clear every neuron to 0 (or to the config's initial vmem)."""
        self._require().reset_vmem(to_initial)

    # ---------------------------------------------------------------- events
    def feed(self, spikes: np.ndarray, *, until: int | None = None) -> np.ndarray:
        """Release input spikes in order (each at max(now, t)) and return monitored output spikes.

        Ticks due up to the last release (or ``until``, µs) run in time order. An input that is off its
        core's input map or addressed to an unconfigured core raises :class:`AddressError`; the events
        before it have been processed and their outputs are kept in ``sim.pending_outputs``.
        """
        eng = self._require()
        spikes = np.ascontiguousarray(spikes, dtype=SPIKE_DTYPE)
        until = self.now_us if until is None else until
        if not self._busy.acquire(blocking=False):  # the engine runs without the GIL: refuse, never corrupt
            raise RuntimeError("this ChipSimulator is already running in another thread; use one per thread")
        try:
            return self._feed(eng, spikes, until)
        finally:
            self._busy.release()

    def _feed(self, eng, spikes: np.ndarray, until: int) -> np.ndarray:
        first_tick = self._next_tick_us
        self.now_us, self._next_tick_us, bad = eng.run(spikes, self.now_us, self._next_tick_us,
                                                       self._tick_period_us, until)
        out, ro = eng.take_outputs()
        if self._readout is not None:
            self._readout.add_spikes(ro)
            if self._tick_period_us and self._next_tick_us > first_tick:
                ticks = np.arange(first_tick, self._next_tick_us, self._tick_period_us, dtype=np.uint64)
                self.readout_values.append(self._readout.ticks(ticks))
        elif ro.size:
            self.readout_spikes.append(ro)
        if bad >= 0:
            self.inputs += bad
            self.pending_outputs = out
            e = spikes[bad]
            cc = self._cfg.cores.get(int(e["core"]))
            where = f"input map {cc.input_shape} (C, H, W)" if cc else "an unconfigured core"
            raise AddressError(f"input spike {bad} (core={e['core']}, c={e['c']}, x={e['x']}, y={e['y']}, "
                               f"t={e['t']} µs) is off {where}; {bad} earlier spikes were processed")
        self.inputs += spikes.shape[0]
        return out

    def take_readout(self) -> np.ndarray:
        """ReadoutValue words produced by slow-clock ticks so far (READOUT_DTYPE, ``t`` = tick time, µs)."""
        vals = np.concatenate(self.readout_values) if self.readout_values else np.empty(0, READOUT_DTYPE)
        self.readout_values = []
        return vals

    def feed_dvs(self, events: np.ndarray) -> np.ndarray:
        """Feed host-written DvsEvents (DVS_EVENT_DTYPE, sensor coordinates) through the configured DVS stage
        (polarity, pooling, crop, mirror) into its destination cores. Returns the monitored output spikes, with
        the stage's own events (core 13) when the stage is monitored, in time order."""
        self._require()
        cfg = self._cfg
        if cfg.dvs is None:
            raise RuntimeError("this configuration has no DVS input stage")
        events = check_dvs_events(events, cfg.dvs)
        out = self.feed(dvs_to_spikes(events, cfg.dvs)) if cfg.dvs.destinations else self._advance(events)
        if cfg.dvs.monitor:
            stage = dvs_stage(events, cfg.dvs)
            if len(stage):
                both = np.concatenate([stage, out])
                out = both[np.argsort(both["t"], kind="stable")]
        return out

    def feed_sensor(self, events: np.ndarray) -> np.ndarray:
        """Events from the chip's own camera (DVS_EVENT_DTYPE). They enter the DVS stage only when the
        configuration routes the sensor in (``DVSConfig.pass_sensor_events``); otherwise they are dropped
        (counted in ``stats["sensor_dropped"]``), as on the chip. With ``DVSConfig.raw_monitor`` they are also
        kept, unprocessed, for the host (:meth:`take_raw`)."""
        self._require()
        cfg = self._cfg
        if cfg.dvs is not None and cfg.dvs.raw_monitor and len(events):
            self.raw_events.append(np.array(events, dtype=DVS_EVENT_DTYPE))
        if cfg.dvs is None or not cfg.dvs.pass_sensor_events:
            self.sensor_dropped += len(events)
            return np.empty(0, SPIKE_DTYPE)
        return self.feed_dvs(events)

    def take_raw(self) -> np.ndarray:
        """The sensor's raw events kept for the host since the last call (DVS_EVENT_DTYPE)."""
        raw = np.concatenate(self.raw_events) if self.raw_events else np.empty(0, DVS_EVENT_DTYPE)
        self.raw_events = []
        return raw

    def _advance(self, events: np.ndarray) -> np.ndarray:
        """Advance time over events that reach no core (a DVS-only stage)."""
        return self.advance_to(max(int(events["t"].max()), self.now_us)) if len(events) else np.empty(0, SPIKE_DTYPE)

    def advance_to(self, t_us: int) -> np.ndarray:
        """Advance virtual time to ``t_us`` running due slow-clock ticks; returns spikes they caused."""
        return self.feed(np.empty(0, SPIKE_DTYPE), until=int(t_us))

    def read_neurons(self, requests: np.ndarray) -> np.ndarray:
        """Answer ReadNeuronValue requests with NeuronValue replies stamped at the current time."""
        requests = np.asarray(requests, dtype=READ_REQUEST_DTYPE)
        out = np.empty(requests.shape[0], dtype=NEURON_VALUE_DTYPE)
        out["t"] = self.now_us
        out["core"] = requests["core"]
        out["address"] = requests["address"]
        for sel, v, c, x, y in self._neurons_of(requests):
            out["vmem"][sel] = v[c, y, x]
        return out

    def write_neurons(self, requests: np.ndarray) -> None:
        """Apply WriteNeuronValue requests."""
        requests = np.asarray(requests, dtype=WRITE_REQUEST_DTYPE)
        for sel, v, c, x, y in self._neurons_of(requests):
            v[c, y, x] = requests["vmem"][sel]

    def _neurons_of(self, requests: np.ndarray):
        """Per core in ``requests``: (selection mask, the core's writable [C, H, W] vmem, c, x, y)."""
        for core in np.unique(requests["core"]):
            sel = requests["core"] == core
            v = self._vmem(int(core))
            c, x, y = decode(requests["address"][sel], v.shape, layout=self.options.address_layout)
            yield sel, v, c, x, y

    def vmem(self, core: int) -> np.ndarray:
        """A copy of a core's membrane potentials as int16 [C, H, W]."""
        return self._vmem(core).astype(np.int16)

    def _vmem(self, core: int) -> np.ndarray:
        eng = self._require()
        if core not in self._cfg.cores:
            raise AddressError(f"core {core} is not configured (configured: {sorted(self._cfg.cores)})")
        return eng.vmem_view(core)

    def read_requests_for_core(self, core: int) -> np.ndarray:
        """ReadNeuronValue requests for every neuron of ``core`` in this simulator's address layout."""
        return _neurons.read_requests_for_core(core, self._cfg.core(core).output_shape,
                                               layout=self.options.address_layout)

    @property
    def stats(self) -> dict:
        eng = self._require()
        cores = sorted(self._cfg.cores)
        clamps, synops, spikes = eng.clamps_arr, eng.core_updates, eng.core_spikes  # each read sums two stages
        return {"inputs": self.inputs, "sensor_dropped": self.sensor_dropped, "synaptic_updates": int(eng.n_updates),
                "off_map": int(eng.n_off_map), "clamps": {c: int(clamps[c]) for c in cores},
                "saturated": int(eng.n_saturated), "ticks": int(eng.n_ticks), "now_us": self.now_us,
                # per core, what it costs (profile, Session.power): synaptic updates, spikes that left it
                "synops": {c: int(synops[c]) for c in cores}, "spikes_out": {c: int(spikes[c]) for c in cores}}

