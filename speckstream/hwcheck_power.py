"""hwcheck's power phase: measure the owner's chip, so that ``ss.profile`` uses its constants, not literature.

SynSense publishes neither an energy per synaptic operation nor a per-core SynOps/s limit for Speck
(docs/chip-notes.md). Both can be measured on a devkit with its power monitor:

1. **idle**: a configuration applied, no input; the rails' mean power over ``idle_s``;
2. **known loads**: one core whose every input event updates exactly ``C_out x 3 x 3`` neurons (events away
   from the map's border, 16 channels: 144 SynOps) and fires one monitored neuron; input at a few rates for
   ``load_s`` each. The processor rails' (VDD_RAM + VDD_LOGIC) power above idle, against the SynOps/s, gives the
   energy per SynOp (least squares through the origin; the one spike per event is folded in, 1/144 of the work).
   The SynOps/s are those the chip did while the power was measured: its outputs stamped in that span, x 144;
3. **bandwidth**: at each rate, how late the monitored output spikes come after their input (both stamped by the
   devkit's stopwatch): a core beyond its bandwidth falls behind - its backlog grows, so the outputs at the end
   of the load are later than those at its start by more than ``stall_us`` (or outputs go missing). The first rate
   that falls behind bounds the limit (SynOps/s) from above, the rate before it from below. A constant lateness
   (a busy host reading the devkit) is not a stall.

On the simulator the same phase runs against the energy model's own estimate (a consistency check: the fit
gives back the model's constant) and never stalls unless ``SimOptions.synops_limit`` says so.
"""
from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import anyio
import numpy as np

from .codec import events as ev
from .compiler.config import ChipConfig, CoreConfig
from .sim.energy import EnergyModel

__all__ = ["PowerPhase", "power_phase", "energy_model_from", "power_load_config", "LOAD_RATES", "SYNOPS_PER_EVENT"]

SIDE, CHANNELS = 16, 16
SYNOPS_PER_EVENT = CHANNELS * 9  # a 3x3 kernel with every tap on the map, 16 output channels
LOAD_RATES = (2_000.0, 10_000.0, 50_000.0, 200_000.0)  # input events/s of the known loads


@dataclass
class PowerPhase:
    """What the power phase measured (rails in W, rates in events/s and SynOps/s, lateness in µs)."""

    idle_rails_w: dict[str, float]
    # per rate: events/s, SynOps/s, W above idle, p99 lateness and backlog µs, kept_up
    loads: list[dict] = field(default_factory=list)
    synop_j: float | None = None  # the fitted energy per SynOp (J)
    synops_limit_below: float | None = None  # the highest load that kept up (SynOps/s)
    synops_limit_above: float | None = None  # the first load that fell behind (SynOps/s; None: none did)
    estimated: bool = True  # True on the simulator (the model's own estimate), False from a power monitor

    def to_dict(self) -> dict:
        return asdict(self)


def power_load_config(chip: str) -> ChipConfig:
    """Core 0 (the core the loads address), 1 -> 16 channels of 3x3 on a 16x16 map, padding 1: 144 SynOps per event off the border; the
    centre tap of channel 0 fires its neuron on every event (reset to zero), one monitored spike per event."""
    w = np.zeros((CHANNELS, 1, 3, 3), np.int8)
    w[0, 0, 1, 1] = 100
    cc = CoreConfig(core=0, input_shape=(1, SIDE, SIDE), output_shape=(CHANNELS, SIDE, SIDE), kernel_size=3,
                    stride=(1, 1), padding=(1, 1), weights=w, biases=np.zeros(CHANNELS, np.int16),
                    threshold_high=100, threshold_low=-100, initial_vmem=np.zeros((CHANNELS, SIDE, SIDE), np.int16),
                    return_to_zero=True, monitor=True)
    return ChipConfig(chip=chip, cores={0: cc}, input_cores=[0], layer_order=[0])


def _load(rate: float, duration_s: float, t0_us: int, seed: int = 0) -> np.ndarray:
    """Input events at ``rate`` for ``duration_s``, evenly spaced, off the map's border (every tap on the map)."""
    n = max(1, int(rate * duration_s))
    rng = np.random.default_rng(seed)
    return ev.spikes(t=t0_us + (np.arange(n) * (1e6 / rate)).astype(np.int64), core=0, c=0,
                     x=rng.integers(1, SIDE - 1, n), y=rng.integers(1, SIDE - 1, n))


async def _mean_power(dev, seconds: float, every: float) -> tuple[dict[str, float], bool, tuple[int, int]]:
    """The mean power per rail over ``seconds`` (at least one sample: a busy device may answer late), whether it
    is estimated, and the span of session time the samples cover (µs; each averages the period before it)."""
    got = []
    async with dev.power(every=every) as samples:
        with anyio.move_on_after(seconds):
            async for s in samples:
                got.append(s)
        if not got:
            got.append(await samples.receive())  # the monitor's own silence limit bounds this wait
    rails = {name: float(np.mean([s.rails.get(name, 0.0) for s in got])) for name in got[0].rails}
    span = (int(got[0].t_us - every * 1e6), int(got[-1].t_us))
    return rails, got[0].estimated, span


async def _measure_load(dev, rate: float, load_s: float, every: float
                        ) -> tuple[dict[str, float], np.ndarray, int, float]:
    """Power during ``load_s`` of input at ``rate``, the outputs' lateness after their inputs (µs), the inputs
    sent, and the input events/s the chip actually processed while the power was measured (its outputs stamped
    inside the measured span: a chip that lags, or a host that delivers in bursts, does not work at ``rate``)."""
    events = _load(rate, load_s, dev.now_us() + 20_000)
    # read at the end: room for every output batch (one per release), so that none is dropped meanwhile
    with dev.subscribe("spike", max_batches=len(events) + 16) as sub:
        await dev.send(events)
        await anyio.sleep(0.02)  # the load starts
        rails, _, (lo_us, hi_us) = await _mean_power(dev, load_s * 0.8, every)
        await anyio.sleep(load_s * 0.2 + 0.1)
        sub.close()
        out = [b async for b in sub]
    spikes = np.concatenate(out) if out else np.empty(0, ev.SPIKE_DTYPE)
    n = min(len(spikes), len(events))  # one spike per event, in order
    late = spikes["t"][:n].astype(np.int64) - events["t"][:n].astype(np.int64)
    t = spikes["t"].astype(np.int64)
    done = int(((t > lo_us) & (t <= hi_us)).sum())
    return rails, late, len(events), done / max(hi_us - lo_us, 1) * 1e6


def kept_up(late_us: np.ndarray, sent: int, stall_us: float) -> tuple[bool, float]:
    """Did the chip keep up with a load? The backlog it built over the load (µs): the median lateness of the
    last tenth of the outputs minus that of the first tenth; it kept up when that stays within ``stall_us`` and
    at least 90 % of the inputs' outputs came back."""
    n = len(late_us)
    if n == 0 or n < 0.9 * sent:
        return False, float("inf")
    tenth = max(n // 10, 1)
    backlog = float(np.median(late_us[-tenth:]) - np.median(late_us[:tenth]))
    return backlog <= stall_us, backlog


def _fit(loads: list[dict]) -> float | None:
    """Energy per SynOp: least squares of (W above idle) against SynOps/s through the origin."""
    x = np.array([ld["synops_per_s"] for ld in loads], float)
    y = np.array([ld["watts_above_idle"] for ld in loads], float)
    return float((x * y).sum() / (x * x).sum()) if len(x) and (x * x).sum() > 0 else None


async def power_phase(dev, *, rates=LOAD_RATES, idle_s: float = 1.0, load_s: float = 0.5, every: float = 0.02,
                      stall_us: float = 2_000.0, progress: Callable[[str], None] | None = None) -> PowerPhase:
    """Run the phase on an open session ``dev`` (a devkit, or the simulator on the wall clock)."""
    await dev.apply(power_load_config(dev.backend.chip))
    if progress:
        progress("power: idle")
    idle, estimated, _ = await _mean_power(dev, idle_s, every)
    phase = PowerPhase(idle_rails_w=idle, estimated=estimated)
    processor = ("VDD_RAM", "VDD_LOGIC")
    for rate in rates:
        if progress:
            progress(f"power: load {rate:,.0f} events/s")
        rails, late, sent, processed = await _measure_load(dev, float(rate), load_s, every)
        above = sum(rails.get(r, 0.0) - idle.get(r, 0.0) for r in processor)
        p99 = float(np.percentile(late, 99)) if len(late) else float("inf")
        ok, backlog = kept_up(late, sent, stall_us)
        # the fit uses the SynOps/s the chip did while measured; the bracket is in the rates it was asked for
        phase.loads.append({"events_per_s": float(rate), "synops_per_s": processed * SYNOPS_PER_EVENT,
                            "watts_above_idle": above, "p99_lateness_us": p99, "backlog_us": backlog,
                            "kept_up": ok, "outputs": int(len(late)), "inputs": int(sent)})
        if ok:
            phase.synops_limit_below = float(rate) * SYNOPS_PER_EVENT
        elif phase.synops_limit_above is None:
            phase.synops_limit_above = float(rate) * SYNOPS_PER_EVENT
            break  # beyond the limit the chip's behaviour is unpredictable: no heavier load
    phase.synop_j = _fit([ld for ld in phase.loads if ld["kept_up"]])
    return phase


def energy_model_from(phase: PowerPhase, device: str) -> EnergyModel:
    """The constants the phase measured, as an EnergyModel ``ss.profile`` can use (``EnergyModel.load``)."""
    base = EnergyModel()
    when = datetime.date.today().isoformat()
    sources = dict(base.sources)
    rails = dict(phase.idle_rails_w)
    idle = rails.get("VDD_RAM", 0.0) + rails.get("VDD_LOGIC", 0.0)
    sources["idle_w"] = f"measured by speckstream hwcheck on {device}, {when}: VDD_RAM + VDD_LOGIC at idle"
    sources["idle_rails_w"] = f"measured by speckstream hwcheck on {device}, {when}"
    kw: dict[str, Any] = {"idle_w": idle, "idle_rails_w": rails, "sources": sources, "measured": not phase.estimated}
    if phase.synop_j is not None and phase.synop_j > 0:
        kw["synop_j"] = phase.synop_j
        sources["synop_j"] = (f"measured by speckstream hwcheck on {device}, {when}: processor rails above idle "
                              f"against known loads of {SYNOPS_PER_EVENT} SynOps per event")
    return base.with_constants(**kw)
