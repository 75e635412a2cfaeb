"""``speckstream hwcheck``: pin the simulator's inferred behaviours on a real devkit, in one command.

Each check is a tiny configuration and a few events, run through the public Session API on the simulator
and, when samna is there, on the chip, side by side; the observations are compared and written to a JSON
report to attach to an issue. What each check pins, and the public sources behind it: docs/chip-notes.md.

========================  ===============================================================================
``leak_trace``            sinabs' leak tutorial: weight 127, bias -13, threshold 127, start 127, slow clock
                          1 Hz; vmem of the 2x2 map read at addresses 0, 2, 1, 3 once a second: 127 - 13 n.
``one_spike_per_core``    one event into a weight-127 / threshold-127 neuron on each of the 9 cores gives
                          exactly one spike from that core.
``leak_fires``            a leak tick that lifts vmem over the threshold: does the neuron fire? (the
                          simulator says no: spikes are documented only for input events)
``saturation``            300 events of weight 127 into threshold 1 (subtract reset): vmem saturates at
                          the top of the int16 range instead of wrapping.
``floor_clamp``           a weight -128 event into a neuron at 0 with floor -127: vmem stops at -127.
``address_layout``        a 2x2x4 (C x H x W) map with a distinct initial vmem per neuron, read back at the
                          packed addresses: which neuron answers each address.
``cascade_order``         one event into core 0 -> cores 1 and 2, core 1 -> core 3: the order in which the
                          four monitored cores' spikes come out.
``power``                 a measurement, not a comparison: idle rails, then known loads of 144 SynOps per
                          event at rising rates - the energy per SynOp and a bracket on the SynOps/s limit
                          (:mod:`.hwcheck_power`); ``speckstream hwcheck --energy-out`` saves them for
                          ``speckstream profile --energy``.
========================  ===============================================================================

Without the real samna the simulator half runs alone and is compared with what the documentation says.
"""
from __future__ import annotations

import datetime
import json
import platform
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

import numpy as np
import anyio

from .codec import events as ev
from .codec import neurons
from .compiler.chips import get_chip
from .compiler.config import ChipConfig, CoreConfig, Destination

__all__ = ["CHECKS", "CheckResult", "HwcheckReport", "run_hwcheck", "hwcheck"]


def _core(core_id: int, cin: int, h: int, w: int, cout: int, weights, *, thr: int = 127, low: int = -127,
          dests=(), bias=None, vmem=None) -> CoreConfig:
    """A monitored core of 1x1 kernels ``weights`` [cout, cin] (leak on with a non-zero bias), threshold 127 and
    floor -127 unless said; ``dests``: core ids it sends to."""
    w8 = np.asarray(weights, np.int8).reshape(cout, cin, 1, 1)
    b = np.zeros(cout, np.int16) if bias is None else np.asarray(bias, np.int16)
    v = np.zeros((cout, h, w), np.int16) if vmem is None else np.asarray(vmem, np.int16)
    return CoreConfig(core=core_id, input_shape=(cin, h, w), output_shape=(cout, h, w), kernel_size=1,
                      stride=(1, 1), padding=(0, 0), weights=w8, biases=b, threshold_high=thr, threshold_low=low,
                      initial_vmem=v, return_to_zero=False, leak_enable=bool(np.any(b)), monitor=True,
                      destinations=[Destination(d) for d in dests])


def _config(dev, *cores: CoreConfig, inputs: list[int] | None = None, slow_clock_hz: float | None = None
            ) -> ChipConfig:
    """The cores as a configuration for ``dev``'s chip, fed at ``inputs`` (default: the first core)."""
    return ChipConfig(chip=dev.backend.chip, cores={c.core: c for c in cores},
                      input_cores=inputs if inputs is not None else [cores[0].core], slow_clock_hz=slow_clock_hz,
                      layer_order=[c.core for c in cores])


async def _spikes_after(dev, events: np.ndarray, wait_s: float) -> np.ndarray:
    """Send ``events`` (t relative to now + 10 ms) and collect the output spikes for ``wait_s``."""
    with dev.subscribe("spike") as sub:
        events = events.copy()
        events["t"] += dev.now_us() + 10_000
        await dev.send(events)
        await anyio.sleep(wait_s)
        sub.close()
        got = [b async for b in sub]
    return np.concatenate(got) if got else np.empty(0, ev.SPIKE_DTYPE)


# ------------------------------------------------------------------------------------------------ checks
async def leak_trace(dev, *, leak_hz: float = 1.0, reads: int = 4) -> dict:
    cfg = _config(dev, _core(0, 1, 2, 2, 1, [127], bias=[-13], vmem=np.full((1, 2, 2), 127)),
                  slow_clock_hz=leak_hz)
    await dev.apply(cfg)
    req = np.zeros(4, ev.READ_REQUEST_DTYPE)
    req["core"], req["address"] = 0, [0, 2, 1, 3]  # the tutorial's addresses
    trace = []
    t0 = anyio.current_time()
    for k in range(reads):
        await anyio.sleep_until(t0 + (k + 0.5) / leak_hz)
        vals = await dev.read_neurons(req, timeout_s=0.5)
        trace.append([int(v) for v in vals["vmem"]])
    steps = sorted({b[0] - a[0] for a, b in zip(trace, trace[1:])})
    return {"trace": trace, "steps": steps, "equal_across_addresses": all(len(set(r)) == 1 for r in trace)}


async def one_spike_per_core(dev) -> dict:
    n = get_chip(dev.backend.chip).n_cores
    cores = [_core(c, 1, 1, 1, 1, [127]) for c in range(n)]
    await dev.apply(_config(dev, *cores, inputs=list(range(n))))
    out = await _spikes_after(dev, ev.spikes(t=np.arange(n) * 1000, core=np.arange(n)), 0.3)
    return {"spikes_per_core": [int(np.sum(out["core"] == c)) for c in range(n)]}


async def leak_fires(dev, *, leak_hz: float = 10.0) -> dict:
    cfg = _config(dev, _core(0, 1, 1, 1, 1, [0], bias=[13], vmem=[[[120]]]), slow_clock_hz=leak_hz)
    with dev.subscribe("spike") as sub:
        await dev.apply(cfg)
        await anyio.sleep(1.5 / leak_hz)
        sub.close()
        got = [b async for b in sub]
    spikes = int(sum(len(b) for b in got))
    return {"fired": spikes > 0, "spikes": spikes}


async def saturation(dev) -> dict:
    await dev.apply(_config(dev, _core(0, 1, 1, 1, 1, [127], thr=1)))
    n = 300
    out = await _spikes_after(dev, ev.spikes(t=np.arange(n) * 20, core=0), 0.3)
    v = await dev.read_neurons(neurons.read_requests(0, [0], [0], [0], (1, 1, 1)), timeout_s=0.5)
    return {"vmem": [int(x) for x in v["vmem"]], "spikes": int(len(out))}


async def floor_clamp(dev) -> dict:
    await dev.apply(_config(dev, _core(0, 1, 1, 1, 1, [-128])))
    await _spikes_after(dev, ev.spikes(t=0, core=0), 0.1)
    v = await dev.read_neurons(neurons.read_requests(0, [0], [0], [0], (1, 1, 1)), timeout_s=0.5)
    return {"vmem": [int(x) for x in v["vmem"]]}


ADDRESS_SHAPE = (2, 2, 4)  # C, H, W: wider than tall, where sinabs' layout and a packed one part ways


def _address_vmem() -> np.ndarray:
    C, H, W = ADDRESS_SHAPE
    c, y, x = np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij")
    return (100 * c + 10 * y + x + 1).astype(np.int16)  # "cyx" as a number: the reply names its neuron


async def address_layout(dev) -> dict:
    C, H, W = ADDRESS_SHAPE
    await dev.apply(_config(dev, _core(0, 1, H, W, C, np.zeros(C), vmem=_address_vmem(), thr=1000, low=-1000)))
    c, y, x = (a.ravel() for a in np.meshgrid(np.arange(C), np.arange(H), np.arange(W), indexing="ij"))
    req = neurons.read_requests(0, c, x, y, ADDRESS_SHAPE, layout="packed")
    vals = await dev.read_neurons(req, timeout_s=0.5)
    got = dict(zip(vals["address"].tolist(), vals["vmem"].tolist()))
    return {"layout": "packed", "address_to_cyx": {str(a): got.get(a) for a in req["address"].tolist()}}


async def cascade_order(dev) -> dict:
    cfg = _config(dev, _core(0, 1, 1, 1, 1, [127], dests=(1, 2)), _core(1, 1, 1, 1, 1, [127], dests=(3,)),
                  _core(2, 1, 1, 1, 1, [127]), _core(3, 1, 1, 1, 1, [127]))
    await dev.apply(cfg)
    out = await _spikes_after(dev, ev.spikes(t=0, core=0), 0.3)
    return {"order": [int(c) for c in out["core"]]}


async def power(dev) -> dict:
    from .hwcheck_power import power_phase

    return (await power_phase(dev)).to_dict()


@dataclass
class Check:
    name: str
    run: Callable[..., Awaitable[dict]]
    documented: Callable[[dict], bool | None]  # does an observation agree with the documentation? None: silent
    evidence: str
    compared: tuple[str, ...] = ()  # the observation's fields chip and simulator must agree on (all if empty)
    measurement: bool = False  # a measurement of the owner's chip (verdict "measured"), not a comparison

    def agree(self, sim: dict, chip: dict) -> bool:
        keys = self.compared or tuple(sim)
        return all(sim.get(k) == chip.get(k) for k in keys)


CHECKS = [
    Check("leak_trace", leak_trace, lambda o: o["steps"] == [-13] and o["equal_across_addresses"],
          "sinabs' leak tutorial (docs/speck/notebooks/leak_neuron.ipynb): 101, 88, 75... one -13 step per second "
          "at 1 Hz",
          ("steps", "equal_across_addresses")),  # the first value depends on how long deploying took
    Check("one_spike_per_core", one_spike_per_core, lambda o: set(o["spikes_per_core"]) == {1},
          "one input event fires a neuron at most once (sinabs tests/test_dynapcnn/test_single_neuron_hardware.py; "
          "Speck Dev Kit Datasheet)"),
    Check("leak_fires", leak_fires, lambda o: None,
          "undocumented: spikes are described only for input events; the simulator assumes a leak step never fires "
          "(docs/chip-notes.md)"),
    Check("saturation", saturation, lambda o: None if not o["vmem"] else o["vmem"][0] > 0,
          "undocumented above +32767; the simulator saturates (docs/chip-notes.md)"),
    Check("floor_clamp", floor_clamp, lambda o: o["vmem"] == [-127],
          "Speck Dev Kit Datasheet: vmem never goes below threshold_low"),
    Check("address_layout", address_layout, lambda o: None,
          "not public: which neuron answers each address on a non-square map (sinabs' io.py layout collides there; "
          "docs/chip-notes.md)"),
    Check("cascade_order", cascade_order, lambda o: sorted(o["order"]) == [0, 1, 2, 3],
          "cores work asynchronously; the order of a cascade's spikes is not documented (sinabs Speck overview; "
          "Yao et al., Nat. Commun. 15, 4464, 2024)"),
    Check("power", power, lambda o: None,
          "not published: Speck's energy per SynOp and per-core SynOps/s limit (sinabs' tips for training; the "
          "power rails as sinabs' power_monitoring.ipynb reads them); measured here", measurement=True),
]


@dataclass
class CheckResult:
    name: str
    evidence: str
    simulator: dict | None = None
    chip: dict | None = None
    verdict: str = "not run"  # "pass" | "differs" | "as documented" | "differs from the documentation" | "measured"
    #                           | "error"
    error: str | None = None


@dataclass
class HwcheckReport:
    device: str
    chip_ran: bool
    why_not: str | None
    results: list[CheckResult] = field(default_factory=list)
    created: str = ""
    speckstream: str = ""
    python: str = ""

    @property
    def ok(self) -> bool:
        return all(r.verdict in ("pass", "as documented", "documentation silent", "measured") for r in self.results)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def table(self) -> str:
        head = (f"hwcheck on {self.device}" if self.chip_ran else
                f"hwcheck: simulator only ({self.why_not})")
        rows = [head, f"{'check':<20} {'verdict':<32} simulator / chip"]
        for r in self.results:
            sim = json.dumps(r.simulator, separators=(",", ":")) if r.simulator is not None else "-"
            chip = json.dumps(r.chip, separators=(",", ":")) if r.chip is not None else "-"
            detail = r.error or (f"{sim} / {chip}" if self.chip_ran else sim)
            rows.append(f"{r.name:<20} {r.verdict:<32} {detail[:160]}")
        return "\n".join(rows)


async def _observe(open_dev: Callable[[], Any], check: Check, kw: dict, timeout_s: float) -> dict:
    with anyio.fail_after(timeout_s):
        async with open_dev() as dev:
            return await check.run(dev, **kw)


async def run_hwcheck(device: str = "speck2fmodule:0", *, samna=None, checks: list[str] | None = None,
                      leak_hz: float = 1.0, timeout_s: float = 30.0,
                      progress: Callable[[str], None] | None = None) -> HwcheckReport:
    """Run the checks on the simulator and (when samna is usable or a stand-in is given) on ``device``."""
    from . import __version__
    from .runtime import open_device
    from .runtime.backends.samna_backend import DEVICE_TYPES, find_samna

    chip_ok, why = (True, None) if samna is not None else find_samna()
    # the simulator half runs the device's chip (its configurations are built for the chip they run on)
    sim = "sim:" + DEVICE_TYPES.get(device.partition(":")[0].lower(), ("", "speck2f"))[1]
    names = [c.name for c in CHECKS]
    unknown = sorted(set(checks or []) - set(names))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; choose from {names}")
    report = HwcheckReport(device=device, chip_ran=bool(chip_ok), why_not=None if chip_ok else why,
                           created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           speckstream=__version__, python=platform.python_version())
    for check in CHECKS:
        if checks and check.name not in checks:
            continue
        kw = {"leak_hz": leak_hz} if check.name == "leak_trace" else {}
        res = CheckResult(check.name, check.evidence)
        if progress:
            progress(check.name)
        try:
            res.simulator = await _observe(lambda: open_device(sim, clock="wall"), check, kw, timeout_s)
            if chip_ok:
                res.chip = await _observe(lambda: open_device(device, samna=samna), check, kw, timeout_s)
        except Exception as e:  # one failing check must not hide the others: reported, with its type
            res.verdict, res.error = "error", f"{type(e).__name__}: {e}"
            report.results.append(res)
            continue
        if check.measurement:
            res.verdict = "measured"
        elif chip_ok:
            res.verdict = "pass" if check.agree(res.simulator or {}, res.chip or {}) else "differs"
        else:
            agrees = check.documented(res.simulator or {})
            res.verdict = {True: "as documented", False: "differs from the documentation",
                           None: "documentation silent"}[agrees]
        report.results.append(res)
    return report


def hwcheck(device: str = "speck2fmodule:0", **kw) -> HwcheckReport:
    """Blocking :func:`run_hwcheck`."""
    return anyio.run(lambda: run_hwcheck(device, **kw), backend="trio")
