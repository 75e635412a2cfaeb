"""An energy model of the Speck chip, every constant with its source. SynSense publishes no energy per synaptic
operation or per spike for Speck, and no per-core SynOps/s limit: the defaults below say where each number
comes from and whether it is a Speck measurement or a literature value for a comparable chip.

=============================  ==============  ===================================================================
constant                       default         source
=============================  ==============  ===================================================================
processor resting power        0.42 mW        Speck measurement: Yao, Richter et al., "Spike-based dynamic
                                               computing with asynchronous sensing-computing neuromorphic chip",
                                               Nature Communications 15:4464 (2024), abstract ("the low processor
                                               resting power of 0.42mW"; "real-time power as low as 0.70mW")
idle power per devkit rail     IO 61.7 µW,     Speck2f devkit measurement: sinabs 3.1.3's
                               RAM 51.7 µW,    ``docs/speck/notebooks/power_monitoring.ipynb`` (saved output, 5 s
                               LOGIC 367.0 µW, at 100 Hz). RAM + LOGIC = 418.7 µW, i.e. the paper's 0.42 mW resting
                               PIXEL_DIGITAL   processor power (our reading). The devkit's monitor has about
                               78.9 µW,        +-50 µW offset per rail and samples at most at 100 Hz (SynSense,
                               PIXEL_ANALOG    Speck Dev Kit Datasheet, Aug 2023, section 3.2.6.4)
                               610.9 µW
energy per synaptic operation  26 pJ           ESTIMATE, not Speck: IBM TrueNorth, an asynchronous event-driven
                                               digital chip like Speck, measured 26 pJ per synaptic event
                                               (Merolla et al., Science 345:668 (2014)). Comparable published
                                               figures: 12.7 pJ/SOP (ODIN, Frenkel et al., IEEE TBioCAS 13 (2019)),
                                               23.6 pJ per synaptic spike op (Loihi, Davies et al., IEEE Micro 38
                                               (2018), pre-silicon)
energy per output spike        1.7 pJ          ESTIMATE, not Speck: Loihi's within-tile spike energy (Davies et
                                               al., IEEE Micro 38 (2018), pre-silicon)
=============================  ==============  ===================================================================

``speckstream hwcheck`` on a devkit measures the owner's chip (idle rails, then a known load) and saves
constants that replace these (:meth:`EnergyModel.load`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

__all__ = ["EnergyModel", "PowerSample", "ActivityMeter", "activity_totals", "RAILS", "IDLE_RAILS_W", "RESTING_POWER_W", "SYNOP_J",
           "SPIKE_J"]

#: a count or duration, or an array of them (one per sample): the arithmetic is the same
Amount = TypeVar("Amount", float, np.ndarray)

#: the devkit's five power rails, by the power monitor's channel number (sinabs' power-monitoring notebook)
RAILS = ("VDD_IO", "VDD_RAM", "VDD_LOGIC", "VDD_PIXEL_DIGITAL", "VDD_PIXEL_ANALOG")
IDLE_RAILS_W = {"VDD_IO": 61.7e-6, "VDD_RAM": 51.7e-6, "VDD_LOGIC": 367.0e-6, "VDD_PIXEL_DIGITAL": 78.9e-6,
                "VDD_PIXEL_ANALOG": 610.9e-6}
RESTING_POWER_W = 0.42e-3
SYNOP_J = 26e-12
SPIKE_J = 1.7e-12
_DEFAULT_SOURCES = {
    "idle_w": "Speck measurement: processor resting power, Yao et al., Nat. Commun. 15:4464 (2024)",
    "idle_rails_w": "Speck2f devkit measurement: sinabs 3.1.3 docs/speck/notebooks/power_monitoring.ipynb",
    "synop_j": "estimate (no Speck figure published): TrueNorth's 26 pJ per synaptic event, Merolla et al., "
               "Science 345:668 (2014)",
    "spike_j": "estimate (no Speck figure published): Loihi's within-tile spike energy, Davies et al., IEEE Micro "
               "38 (2018), pre-silicon",
}


@dataclass(frozen=True)
class EnergyModel:
    """Energy = idle power x time + energy per SynOp x SynOps + energy per spike x output spikes.

    ``idle_w`` is the chip's resting processor power (the paper's, without the DVS pixel array, which the
    devkit measures on separate rails: ``idle_rails_w``). ``sources`` says where each constant came from;
    ``measured`` is True for constants fitted on the owner's devkit by ``speckstream hwcheck``."""

    idle_w: float = RESTING_POWER_W
    synop_j: float = SYNOP_J
    spike_j: float = SPIKE_J
    idle_rails_w: dict[str, float] = field(default_factory=lambda: dict(IDLE_RAILS_W))
    sources: dict[str, str] = field(default_factory=lambda: dict(_DEFAULT_SOURCES))
    measured: bool = False

    def __post_init__(self):
        for name in ("idle_w", "synop_j", "spike_j"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v == float("inf"):
                raise ValueError(f"EnergyModel.{name} must be a finite number >= 0, got {v!r}")

    # ------------------------------------------------------------------ arithmetic
    def dynamic_uj(self, synops: Amount, spikes: Amount) -> Amount:
        """Energy of ``synops`` synaptic operations and ``spikes`` output spikes, in µJ (elementwise for arrays)."""
        return (synops * self.synop_j + spikes * self.spike_j) * 1e6

    def idle_uj(self, duration_us: Amount) -> Amount:
        """Resting energy over ``duration_us`` µs, in µJ (elementwise for arrays)."""
        return self.idle_w * duration_us  # W x µs = µJ

    def rails_w(self, synops_per_s: float, spikes_per_s: float) -> dict[str, float]:
        """Estimated power per devkit rail (W) at a given activity: the idle draw of each rail, and the dynamic
        power split evenly between VDD_RAM and VDD_LOGIC (a SynOp reads kernel memory, reads and writes neuron
        memory and runs logic in between, sinabs' docs; the split itself is our assumption)."""
        dyn = synops_per_s * self.synop_j + spikes_per_s * self.spike_j
        rails = dict(self.idle_rails_w)
        rails["VDD_RAM"] = rails.get("VDD_RAM", 0.0) + dyn / 2
        rails["VDD_LOGIC"] = rails.get("VDD_LOGIC", 0.0) + dyn / 2
        return rails

    def source_note(self) -> str:
        if self.measured:
            return "constants measured on this devkit by speckstream hwcheck"
        return "idle power measured on Speck; energy per SynOp / spike are literature values of comparable chips"

    # ------------------------------------------------------------------ persistence (hwcheck writes, profile reads)
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path) -> "EnergyModel":
        """Constants saved by ``speckstream hwcheck`` (or :meth:`save`)."""
        d = json.loads(Path(path).read_text())
        known = {k: d[k] for k in ("idle_w", "synop_j", "spike_j", "idle_rails_w", "sources", "measured") if k in d}
        return cls(**known)

    def with_constants(self, **kw) -> "EnergyModel":
        return replace(self, **kw)


@dataclass(frozen=True)
class PowerSample:
    """Power per devkit rail at one moment: measured by the devkit's power monitor, or ``estimated`` from the
    simulator's activity with an :class:`EnergyModel`."""

    t_us: int  # the session's time of the sample (µs)
    rails: dict[str, float]  # rail name (RAILS) -> W
    estimated: bool

    @property
    def total_w(self) -> float:
        return float(sum(self.rails.values()))


def activity_totals(sim) -> tuple[int, int]:
    """(SynOps, spikes) a ChipSimulator has counted so far, all cores together; (0, 0) before a configuration."""
    if sim is None or sim.config is None:
        return 0, 0
    st = sim.stats
    return int(sum(st["synops"].values())), int(sum(st["spikes_out"].values()))


class ActivityMeter:
    """Turns the simulator's running counters (total SynOps and spikes) into power estimates: each call to
    :meth:`sample` gives the rails' power over the interval since the previous one."""

    def __init__(self, model: EnergyModel | None = None):
        self.model = model or EnergyModel()
        self._last: tuple[int, int, int] | None = None  # (t_us, synops, spikes)

    def sample(self, t_us: int, synops: int, spikes: int) -> PowerSample:
        if self._last is None or t_us <= self._last[0]:
            rates = (0.0, 0.0)
        else:
            dt = (t_us - self._last[0]) * 1e-6
            rates = ((synops - self._last[1]) / dt, (spikes - self._last[2]) / dt)
        self._last = (t_us, synops, spikes)
        return PowerSample(int(t_us), self.model.rails_w(*rates), estimated=True)
