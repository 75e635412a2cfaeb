"""ss.profile: what a configuration costs on the chip for a given input - per core the events it receives, the
synaptic operations (SynOps) they cause, the spikes it sends, the peak SynOps/s over sliding windows, whether
a bandwidth limit is exceeded (and where, when), and the energy it takes.

The SynOps are exact, not estimated: the input is run through the simulator with every core monitored, every
spike is routed to its destinations as the chip routes it (pooling, feature shift, spikes pooled off a map
dropped), and each event delivered to a core costs one update of every output neuron its kernel reaches -
``C_out x (kernel taps on the map)``, fewer at the borders and with strides - which is exactly what the
simulator computes (the tests check the total against the simulator's own update count). Beside it stands
sinabs' estimate (``N_in/s x C_out x kx x ky / (sx x sy)``, sinabs' docs "Tips for training"), which ignores
the borders, so it overestimates small maps with padding and large kernels.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from .compiler.config import ChipConfig, CoreConfig, load_config
from .sim.energy import EnergyModel
from ._text import text_table
from .errors import SpeckstreamError
from .sim import ChipSimulator, SimOptions
from .sim.bandwidth import WINDOWS_US, BandwidthWarning, BandwidthWatch, bandwidth_message
from .sim.dvs import core_spikes
from .codec.inputs import to_input

__all__ = ["profile", "Profile", "CoreProfile", "BandwidthWarning", "ProfileError", "WINDOWS_US",
           "synops_per_event", "delivered_events", "activity", "BandwidthWatch", "bandwidth_message", "Activity",
           "CoreActivity", "monitor_all", "duration_of"]



class ProfileError(SpeckstreamError, ValueError):
    """profile() was given something it cannot profile (bad windows or limit)."""


@dataclass(frozen=True)
class CoreProfile:
    """One core's activity over the input (counts are totals; rates per second of input time)."""

    core: int
    layer: str  # the layer's modules in the model
    events_in: int  # events delivered to the core (input spikes, DVS events or other cores' spikes, after pooling)
    synops: int  # synaptic operations: neuron updates those events caused (exact)
    spikes_out: int  # spikes the core fired (before pooling)
    peak_synops_per_s: dict[int, float]  # window (µs) -> the largest SynOps in any window of that length, per second
    peak_at_us: dict[int, int]  # window (µs) -> where that window starts
    sinabs_synops: float  # sinabs' estimate of the same total: events_in x C_out x k x k / (sx x sy)
    energy_uj: float  # this core's share of the dynamic energy (µJ)


@dataclass
class Profile:
    """A configuration's activity, bandwidth and energy on one input (see the module docstring)."""

    cores: dict[int, CoreProfile]
    duration_us: int  # the input's time span (first to last event), at least 1 µs
    energy_uj: float  # idle + dynamic energy over the duration (µJ), from ``model``
    model: EnergyModel
    synops_limit: float | None = None  # the bandwidth limit checked against (SynOps/s per core), if any
    over_limit: list[tuple[int, int, int, float]] = field(default_factory=list)  # (core, window µs, start µs, SynOps/s)

    @property
    def synops(self) -> int:
        return sum(c.synops for c in self.cores.values())

    @property
    def mean_power_w(self) -> float:
        """Energy over the duration: the average power in W (an estimate: see EnergyModel)."""
        return self.energy_uj * 1e-6 / (self.duration_us * 1e-6)

    def table(self) -> str:
        w1, w2 = WINDOWS_US
        head = ("core", "layer", "events in", "SynOps", "sinabs est.", "spikes out", f"peak/s {w1 // 1000} ms",
                f"peak/s {w2 // 1000} ms", "energy µJ")
        rows = [head] + [(str(c.core), c.layer, f"{c.events_in:,}", f"{c.synops:,}", f"{c.sinabs_synops:,.0f}",
                          f"{c.spikes_out:,}", f"{c.peak_synops_per_s[w1]:.3g}", f"{c.peak_synops_per_s[w2]:.3g}",
                          f"{c.energy_uj:.3g}") for c in self.cores.values()]
        lines = text_table(rows)
        lines.append(f"{self.synops:,} SynOps over {self.duration_us / 1e3:.1f} ms; energy {self.energy_uj:.3g} µJ, "
                     f"mean power {self.mean_power_w * 1e3:.3g} mW (estimated: {self.model.source_note()})")
        if self.synops_limit is not None:
            lines.append(f"bandwidth limit {self.synops_limit:.3g} SynOps/s per core: " + (
                "not exceeded" if not self.over_limit else "exceeded by " + ", ".join(
                    f"core {c} ({r:.3g}/s over {w // 1000} ms at {t / 1e3:.1f} ms)" for c, w, t, r in self.over_limit)))
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict:
        return {"cores": {c: asdict(p) for c, p in self.cores.items()}, "duration_us": self.duration_us,
                "energy_uj": self.energy_uj, "mean_power_w": self.mean_power_w, "synops": self.synops,
                "synops_limit": self.synops_limit, "over_limit": [list(x) for x in self.over_limit],
                "model": self.model.to_dict()}


# --------------------------------------------------------------------------------------------- SynOps
def _taps(n_in: int, k: int, pad: int, stride: int, n_out: int) -> np.ndarray:
    """Per input coordinate, how many kernel taps reach an output neuron on the map."""
    pos = np.arange(n_in)[:, None] + pad - np.arange(k)[None, :]
    ok = (pos >= 0) & (pos % stride == 0) & (pos // stride < n_out)
    return ok.sum(axis=1)


def synops_per_event(cc: CoreConfig) -> np.ndarray:
    """[H_in, W_in]: the neuron updates one event at (x, y) of the core's input map causes (any channel)."""
    _, H, W = cc.input_shape
    C_out, Ho, Wo = cc.output_shape
    ny = _taps(H, cc.kernel_size, cc.padding[0], cc.stride[0], Ho)
    nx = _taps(W, cc.kernel_size, cc.padding[1], cc.stride[1], Wo)
    return C_out * ny[:, None] * nx[None, :]


def delivered_events(cfg: ChipConfig, kind: str, inputs: np.ndarray, spikes: np.ndarray,
                     drop_off_map: bool = True) -> dict[int, np.ndarray]:
    """Per core, the events it received (SPIKE_DTYPE, time-ordered): the input (or the DVS stage's output) and
    every other core's spikes routed through its destinations, as the chip routes them."""
    parts: dict[int, list[np.ndarray]] = {c: [] for c in cfg.cores}
    ext = core_spikes(kind, inputs, cfg.dvs)
    for c in cfg.cores:
        parts[c].append(ext[ext["core"] == c])
    for src, cc in cfg.cores.items():
        out = spikes[spikes["core"] == src]
        for d in cc.destinations:
            if d.core not in cfg.cores:
                continue  # the readout layer: no SynOps of a CNN core
            ev = out.copy()
            ev["core"], ev["c"] = d.core, ev["c"] + d.feature_shift
            ev["x"] //= d.pooling
            ev["y"] //= d.pooling
            if drop_off_map:
                _, H, W = cfg.cores[d.core].input_shape
                ev = ev[(ev["x"] < W) & (ev["y"] < H)]
            parts[d.core].append(ev)
    return {c: _sorted(np.concatenate(p)) for c, p in parts.items()}


def _sorted(ev: np.ndarray) -> np.ndarray:
    return ev[np.argsort(ev["t"], kind="stable")]


def _peak(t: np.ndarray, ops: np.ndarray, window_us: int) -> tuple[float, int]:
    """The largest sum of ``ops`` in any window [s, s + window_us), per second, and its start s."""
    if not len(t):
        return 0.0, 0
    cum = np.concatenate([[0], np.cumsum(ops, dtype=np.int64)])
    end = np.searchsorted(t, t.astype(np.int64) + window_us, side="left")
    sums = cum[end] - cum[np.arange(len(t))]
    i = int(np.argmax(sums))
    return float(sums[i]) * 1e6 / window_us, int(t[i])


def monitor_all(cfg: ChipConfig) -> ChipConfig:
    """A copy of ``cfg`` with every core monitored: the simulator then shows every spike, which is what the
    SynOps of the next cores are computed from."""
    mon = ChipConfig.from_msgpack(cfg.to_msgpack())
    for cc in mon.cores.values():
        cc.monitor = True
    return mon


@dataclass(frozen=True)
class CoreActivity:
    """One core's raw activity on one input: the delivered events' times and SynOps, and its output spikes."""

    t: np.ndarray  # times of the events delivered to the core (µs, ordered)
    ops: np.ndarray  # SynOps each of them caused
    spikes_out: int

    @property
    def synops(self) -> int:
        return int(self.ops.sum())

    def peak(self, window_us: int) -> tuple[float, int]:
        return _peak(self.t, self.ops, window_us)


def activity(cfg: ChipConfig, kind: str, inputs: np.ndarray, spikes: np.ndarray, *, drop_off_map: bool = True,
             tables: dict[int, np.ndarray] | None = None) -> dict[int, CoreActivity]:
    """Per core, the activity of one input (``spikes``: what a simulator with every core monitored returned).
    ``tables``: :func:`synops_per_event` per core, when the caller keeps them."""
    delivered = delivered_events(cfg, kind, inputs, spikes, drop_off_map=drop_off_map)
    out = {}
    for c in cfg.layer_order:
        d = delivered[c]
        table = tables[c] if tables is not None else synops_per_event(cfg.cores[c])
        out[c] = CoreActivity(d["t"], table[d["y"].astype(np.int64), d["x"].astype(np.int64)],
                              int(np.count_nonzero(spikes["core"] == c)))
    return out


@dataclass
class Activity:
    """Per sample and core (``cores``, in layer order), what a data set costs on the chip: arrays
    [n_samples, n_cores] of events in, SynOps, spikes out and the peak SynOps/s over 1 ms; each sample's
    duration (µs); and the energy per inference from ``model``."""

    cores: list[int]
    events_in: np.ndarray
    synops: np.ndarray
    spikes_out: np.ndarray
    peak_synops_per_s: np.ndarray
    duration_us: np.ndarray
    model: EnergyModel

    @classmethod
    def from_rows(cls, cores: list[int], rows: np.ndarray, model: EnergyModel) -> "Activity":
        return cls(cores, rows[:, :, 0].astype(np.int64), rows[:, :, 1].astype(np.int64),
                   rows[:, :, 2].astype(np.int64), rows[:, :, 3], rows[:, 0, 4].astype(np.int64) if rows.size
                   else np.zeros(0, np.int64), model)

    @property
    def energy_uj(self) -> np.ndarray:
        """Energy per sample (µJ): idle power over its duration plus every core's SynOps and spikes."""
        return self.model.idle_uj(self.duration_us) + self.model.dynamic_uj(self.synops.sum(axis=1),
                                                                            self.spikes_out.sum(axis=1))

    @property
    def energy_per_inference_uj(self) -> float:
        return float(self.energy_uj.mean()) if len(self.duration_us) else float("nan")

    def table(self) -> str:
        """Per core: mean and max over the samples of SynOps, spikes out and peak SynOps/s (1 ms)."""
        if not len(self.duration_us):
            return "no samples"
        head = ("core", "SynOps mean", "SynOps max", "spikes mean", "spikes max", "peak/s 1 ms max")
        rows = [head] + [(str(c), f"{self.synops[:, k].mean():,.0f}", f"{self.synops[:, k].max():,}",
                          f"{self.spikes_out[:, k].mean():,.1f}", f"{self.spikes_out[:, k].max():,}",
                          f"{self.peak_synops_per_s[:, k].max():.3g}") for k, c in enumerate(self.cores)]
        lines = text_table(rows)
        e = self.energy_uj
        lines.append(f"energy per inference {e.mean():.3g} µJ (max {e.max():.3g}) over {len(e)} samples, mean "
                     f"{self.duration_us.mean() / 1e3:.1f} ms each (estimated: {self.model.source_note()})")
        return "\n".join(lines)

    __str__ = table


def duration_of(events: np.ndarray) -> int:
    """An input's time span (first to last event) in µs, at least 1."""
    return max(1, int(events["t"].max()) - int(events["t"].min())) if len(events) else 1


# --------------------------------------------------------------------------------------------- entry
def profile(config, events: np.ndarray, *, synops_limit: float | None = None, windows_us=WINDOWS_US,
            energy: EnergyModel | None = None, options: SimOptions | None = None) -> Profile:
    """Run ``events`` through the simulated chip and return its :class:`Profile` (per core events in, SynOps,
    spikes out, peak SynOps/s over 1 ms and 10 ms windows, energy). ``synops_limit`` (SynOps/s per core):
    warn (BandwidthWarning) for each core whose peak over a window exceeds it, naming the core and the time.
    ``energy``: the energy model (default :class:`EnergyModel()`, every constant cited there)."""
    windows = tuple(int(w) for w in windows_us)
    if not windows or min(windows) < 1:
        raise ProfileError(f"windows_us must be positive µs, got {windows_us!r}")
    if synops_limit is not None and not (np.isfinite(synops_limit) and synops_limit > 0):
        raise ProfileError(f"synops_limit must be a positive number of SynOps/s per core, got {synops_limit!r}")
    cfg = load_config(config)
    kind, ev = to_input(cfg, events)
    opts = options or SimOptions()
    sim = ChipSimulator(monitor_all(cfg), options=opts)
    out = sim.feed_dvs(ev) if kind == "dvs" else sim.feed(ev)
    model = energy or EnergyModel()
    acts = activity(cfg, kind, ev, out, drop_off_map=opts.drop_off_map)
    cores, over = {}, []
    for c, a in acts.items():
        cc = cfg.cores[c]
        peaks = {w: a.peak(w) for w in windows}
        sy, sx = cc.stride
        est = len(a.t) * cc.output_shape[0] * cc.kernel_size ** 2 / (sy * sx)
        name = " > ".join(cc.provenance.modules[:2]) if cc.provenance else str(c)
        cores[c] = CoreProfile(c, name, len(a.t), a.synops, a.spikes_out, {w: p[0] for w, p in peaks.items()},
                               {w: p[1] for w, p in peaks.items()}, float(est),
                               model.dynamic_uj(a.synops, a.spikes_out))
        over += [(c, w, at, rate) for w, (rate, at) in peaks.items() if synops_limit is not None and rate > synops_limit]
    for c, w, at, rate in over:
        assert synops_limit is not None
        warnings.warn(bandwidth_message(c, w, at, rate, float(synops_limit), layer=cores[c].layer), BandwidthWarning,
                      stacklevel=2)
    duration = duration_of(ev)
    total = model.idle_uj(duration) + sum(p.energy_uj for p in cores.values())
    return Profile(cores, duration, total, model, synops_limit, over)
