"""``python -m speckstream`` / ``speckstream``: compile, run, vmem, inspect, bench, demo.

Exit codes: 0 success, 1 the work failed (a model the chip cannot hold, a corrupt file, a device error),
2 bad arguments, 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import sys

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # anyio's and trio's dependency on 3.10

import argparse
import importlib
import importlib.util
import warnings
from typing import Any
from pathlib import Path

import numpy as np

__all__ = ['UsageError', 'build_parser', 'main']


class UsageError(Exception):
    """Bad command-line arguments (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr (what is wrong, and where the help is) and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _shape(text: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape must be C,H,W integers, got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"input shape must be three positive integers C,H,W, got {text!r}")
    return shape


def load_object(spec: str, what: str = "model"):
    """'package.module:name' or 'path/to/file.py:name' -> that object, called if it is a plain function or class
    (a factory)."""
    if ":" not in spec:
        raise UsageError(f"{what} must be MODULE:FACTORY (e.g. mypkg.nets:make_net or nets.py:Net), got {spec!r}")
    mod_name, _, attr = spec.rpartition(":")
    try:
        if mod_name.endswith(".py") or "/" in mod_name:
            path = Path(mod_name)
            if not path.exists():
                raise UsageError(f"{what} file not found: {path}")
            sys.path.insert(0, str(path.parent.resolve()))
            spec_ = importlib.util.spec_from_file_location(path.stem, path)
            if spec_ is None or spec_.loader is None:
                raise UsageError(f"cannot load {path} as a Python module")
            module = importlib.util.module_from_spec(spec_)
            spec_.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ImportError as e:
        raise UsageError(f"cannot import {mod_name!r}: {e}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UsageError(f"{mod_name!r} has no attribute {attr!r}") from None


def load_factory(spec: str):
    """'package.module:factory' or 'path/to/file.py:factory' -> a torch module (factory called if callable)."""
    import torch

    obj = load_object(spec)
    if isinstance(obj, torch.nn.Module):
        model = obj
    elif callable(obj):
        model = obj()
    else:
        raise UsageError(f"{spec} is a {type(obj).__name__}, neither a torch.nn.Module nor a factory")
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{spec} gave a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_dataset(spec: str):
    """'module:name' -> a data set of (events, label) pairs (a factory is called)."""
    obj = load_object(spec, "dataset")
    data = obj() if callable(obj) and not hasattr(obj, "__getitem__") else obj
    if not hasattr(data, "__iter__"):
        raise UsageError(f"{spec} gave a {type(data).__name__}, not a data set of (events, label) pairs")
    return data


# ---------------------------------------------------------------------------------------------- commands
def _model_arg(args):
    """The model a command names: a ``.nir`` path as it is (it must exist), else a torch factory (module:callable),
    which needs ``--input-shape``."""
    if args.model.lower().endswith(".nir"):
        if not Path(args.model).exists():
            raise UsageError(f"NIR file not found: {args.model}")
        return args.model
    if args.input_shape is None:
        raise UsageError("--input-shape C,H,W is required for a torch model")
    return load_factory(args.model)


def cmd_compile(args) -> int:
    import speckstream as ss

    model = _model_arg(args)
    dvs = "sensor" if args.sensor else (True if args.dvs else None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = ss.compile(model, input_shape=args.input_shape, chip=args.chip, dvs=dvs, monitor=args.monitor,
                         slow_clock_hz=args.slow_clock, rescale=args.rescale, initial_vmem=args.initial_vmem)
    print(cfg.summary(notes=False))  # the notes are the warnings below: each said once
    from speckstream.compiler.errors import CompileWarning

    for w in caught:
        if isinstance(w.message, CompileWarning):
            print(f"warning: {w.message}", file=sys.stderr)
    if args.output:
        cfg.save(args.output)
        print(f"saved {args.output}")
    return 0


def cmd_calibrate(args) -> int:
    import speckstream as ss

    model = _model_arg(args)
    data = load_dataset(args.dataset)
    opts: dict[str, Any] = {k: v for k, v in (("chip", args.chip), ("dvs", True if args.dvs else None),
                                              ("slow_clock_hz", args.slow_clock)) if v is not None}
    cal = ss.calibrate(model, data, input_shape=args.input_shape, objective=args.objective,
                       executor="serial" if args.serial else None, budget_s=args.budget, holdout=args.holdout,
                       progress=sys.stderr.isatty(), **opts)
    print(cal.config.summary(notes=False))
    print(cal.report.table())
    if args.output:
        cal.config.save(args.output)
        print(f"saved {args.output}")
    return 0


def _existing(path, what: str) -> Path:
    """``path`` as a Path, or a usage error naming what was expected there."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} not found: {p}")
    return p


def _load_config(path):
    import speckstream as ss

    return ss.load_config(_existing(path, "chip configuration (from 'speckstream compile -o')"))


def cmd_profile(args) -> int:
    import json

    import speckstream as ss
    from speckstream.codec import read_spikes, to_xytp
    from speckstream.codec.inputs import is_camera
    from speckstream.sim.energy import EnergyModel

    cfg = _load_config(args.config)
    path = _event_file(args.events)
    if path.suffix.lower() == ".npy":
        events = np.load(path, allow_pickle=False)  # spikes or tonic x/y/t/p: profile converts either
    else:
        core = args.core if args.core is not None else (cfg.input_cores[0] if cfg.input_cores else 0)
        events = read_spikes(path, core=core)  # camera files land on the input core, .spk keeps its cores
        if cfg.dvs is not None and is_camera(path):
            events = to_xytp(events)  # a camera recording goes through the DVS stage
    energy = EnergyModel.load(_existing(args.energy, "energy constants (from 'speckstream hwcheck --energy-out')")) \
        if args.energy else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof = ss.profile(cfg, events, synops_limit=args.limit, energy=energy)
    print(prof.table())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(prof.to_dict(), indent=2))
        print(f"saved {args.json}")
    return 0


def _profile_parser(sub) -> None:
    c = sub.add_parser("profile", help="per core: events in, exact SynOps, spikes out, peak SynOps/s over 1 and 10 ms, "
                       "bandwidth check and the energy estimate, for a configuration on a recording")
    c.add_argument("config", help="ChipConfig (.json / .msgpack)")
    c.add_argument("events", help="event file: .spk, .npy, .aedat4, .dat, N-MNIST .bin (.raw/.es/.csv with faery)")
    c.add_argument("--limit", type=float, default=None, metavar="SYNOPS_PER_S",
                   help="warn where a core exceeds this many SynOps/s (none is published for Speck)")
    c.add_argument("--core", type=int, default=None, help="input core for camera files (default: the config's)")
    c.add_argument("--energy", default=None, help="energy constants saved by 'speckstream hwcheck' (JSON)")
    c.add_argument("--json", default=None, help="write the profile as JSON")
    c.set_defaults(fn=cmd_profile)


def _calibrate_parser(sub) -> None:
    c = sub.add_parser("calibrate", help="tune a model's chip parameters on a data set (vmem floors, thresholds, "
                       "precision, reset, slow clock) and save the calibrated configuration")
    c.add_argument("model", help="MODULE:FACTORY or path/to/file.py:FACTORY returning a torch.nn.Module, or a .nir file")
    c.add_argument("--dataset", required=True, help="MODULE:NAME of a data set of (events, label) pairs, or of a "
                   "function returning one (e.g. a tonic dataset)")
    c.add_argument("--input-shape", type=_shape, default=None, help="C,H,W of what the model receives")
    c.add_argument("--objective", default="accuracy", choices=["accuracy", "agreement"],
                   help="accuracy on the labels, or agreement with the model's own time-stepped predictions")
    c.add_argument("--budget", type=float, default=None, metavar="S", help="stop searching after S seconds")
    c.add_argument("--holdout", type=float, default=0.25, help="fraction held out for the reported figure")
    c.add_argument("--chip", default=None, choices=["speck2f", "speck2e", "dynapcnn"], help="target chip")
    c.add_argument("--dvs", action="store_true", help="add the DVS input stage")
    c.add_argument("--slow-clock", type=float, default=None, metavar="HZ", help="slow clock to start from")
    c.add_argument("--serial", action="store_true", help="evaluate in this process (no worker pool)")
    c.add_argument("-o", "--output", help="save the calibrated configuration as .json or .msgpack")
    c.set_defaults(fn=cmd_calibrate)


def _stats_table(title: str, rows: dict):
    from rich.table import Table

    t = Table(title=title)
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in rows.items():
        t.add_row(k, f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
    return t


def _event_file(spec) -> Path:
    """The event file a command reads: it must exist, and a ``.npy`` must hold events (codec.files' rule); else
    a usage error (exit 2)."""
    from speckstream.codec.files import npy_events_problem

    path = Path(spec)
    if not path.exists():
        raise UsageError(f"event file not found: {path}")
    if path.suffix.lower() != ".npy":
        return path
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception:
        return path  # unreadable: the reader names what is wrong with the file (exit 1)
    problem = npy_events_problem(arr)
    if problem:
        raise UsageError(f"{path} {problem}")
    return path


def cmd_run(args) -> int:
    import anyio
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    import speckstream as ss
    from speckstream import codec

    cfg = _load_config(args.config)
    # None: camera recordings go through the config's DVS stage (else its input core), chip spikes keep their cores
    core = args.core
    try:
        speed = None if args.speed == "max" else float(args.speed)
    except ValueError:
        raise UsageError(f"--speed must be a number (1.0 = real time) or 'max', got {args.speed!r}") from None
    if speed is not None and not (speed > 0 and speed < float("inf")):
        raise UsageError(f"--speed must be positive, got {args.speed}")
    path = _event_file(args.events)
    total = codec.files.count_spikes(path)  # from headers where the format has them: the replay decodes it once
    console = _console()

    async def main():
        async with ss.open_device(args.device, clock="wall" if args.realtime else "virtual") as dev:
            await dev.apply(cfg)
            with Progress(TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.completed:,}" + ("/{task.total:,}" if total is not None else "") + " events"),
                          TimeElapsedColumn(), console=console, transient=False) as progress:
                task = progress.add_task("replay", total=total)
                res = await dev.replay(path, speed=speed, record=args.output, core=core,
                                       progress=lambda n, _t: progress.update(task, completed=n))
            return res, dev.stats

    res, stats = anyio.run(main, backend="trio")
    rows = {"input events": res.events_in, "output spikes": res.events_out, "duration (s)": res.duration_s,
            "input rate (events/s)": res.input_rate, "dropped (policy)": res.dropped_by_policy,
            "device drops": stats.device.get("device_dropped", 0), "unknown events": stats.unknown_events}
    for k in ("p50", "p99", "max"):  # only a wall-clock replay has release errors (virtual time has none: NaN)
        v = getattr(res.release_error_us, k)
        if np.isfinite(v):
            rows[f"release error {k} (µs)"] = v
    if stats.lag_max_us is not None:  # the real-time guard: how far the device ran behind the timestamps
        rows["real-time lag, worst (µs)"] = float(stats.lag_max_us)
    if res.record:
        rows["recording"] = res.record
    console.print(_stats_table(f"run on {args.device}", rows))
    return 0


def cmd_vmem(args) -> int:
    import anyio

    import speckstream as ss
    from speckstream import codec

    cfg = _load_config(args.config)
    if args.core not in cfg.cores:
        raise UsageError(f"core {args.core} is not in {args.config} (cores: {sorted(cfg.cores)})")
    if args.rate <= 0:
        raise UsageError("--rate must be positive (Hz)")
    console = _console()
    frames = []

    async def main():
        async with ss.open_device(args.device, clock="wall") as dev:
            await dev.apply(cfg)
            if args.events:
                await dev.send(codec.read_spikes(args.events, core=cfg.input_cores[0]))
            async with dev.poll_vmem(args.core, every=1.0 / args.rate, count=args.count) as polled:
                async for f in polled:
                    frames.append(f)
                    img = f.image
                    console.print(f"t={f.t_us / 1e6:8.3f} s  core {f.core}  vmem min {img.min():6d}  "
                                  f"max {img.max():6d}  mean {img.mean():9.2f}  missing {f.missing}")

    anyio.run(main, backend="trio")
    if args.output:
        np.savez_compressed(args.output, t_us=np.array([f.t_us for f in frames]),
                            vmem=np.stack([f.image for f in frames]))
        console.print(f"saved {len(frames)} frames to {args.output}")
    return 0


def cmd_inspect(args) -> int:
    from speckstream import codec

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"file not found: {path}")
    console = _console()
    if path.suffix.lower() in (".json", ".msgpack"):  # a compiled configuration: its core table
        import speckstream as ss

        print(ss.load_config(path).summary())
        return 0
    if path.suffix == ".spk":
        with codec.EventFileReader(path) as r:
            console.print(f"[bold]{path}[/]  speckstream event file v{1}, meta: {r.meta}")
            r.scan()
            for kind, n in r.counts.items():
                console.print(f"  {kind}: {n:,} events")
            spikes = r.read("spike")
            if r.truncated:
                console.print(f"  [yellow]truncated at byte {r.truncated_at}; intact chunks kept[/]")
    else:
        spikes = codec.read_spikes(path)
    if len(spikes):
        span = (int(spikes["t"].min()), int(spikes["t"].max()))
        console.print(f"  spikes: {len(spikes):,}, time span {span[0]} .. {span[1]} µs "
                      f"({(span[1] - span[0]) / 1e6:.3f} s)")
        cores, counts = np.unique(spikes["core"], return_counts=True)
        for c, n in zip(cores, counts):
            sel = spikes[spikes["core"] == c]
            ch, chn = np.unique(sel["c"], return_counts=True)
            per = ", ".join(f"{a}:{b}" for a, b in zip(ch[:16], chn[:16])) + (" ..." if len(ch) > 16 else "")
            console.print(f"  core {c}: {n:,} spikes; per channel {per}")
    return 0


#: the suites ``speckstream bench`` runs (bench/<name>.py); sim runs sim_gesture and evaluate_memory too
BENCH_SUITES = ("codec", "compile", "sim", "runtime", "calibrate")


def cmd_bench(args) -> int:
    """Run the suites in bench/ of a source checkout, each in its own interpreter (no sys.path edits here)."""
    import subprocess

    bench_dir = Path(__file__).resolve().parent.parent / "bench"
    if not bench_dir.is_dir():
        raise UsageError("the benchmarks live in a source checkout's bench/ folder, which this installation does not "
                         "have: clone the repository and run 'speckstream bench' there (pip install -e .)")
    suites = args.suites or list(BENCH_SUITES)
    for name in suites:
        if name not in BENCH_SUITES or not (bench_dir / f"{name}.py").exists():
            raise UsageError(f"no benchmark suite {name!r} (have: {', '.join(BENCH_SUITES)})")
    for name in suites:
        cmd = [sys.executable, str(bench_dir / f"{name}.py")] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd).returncode:
            return 1
    return 0


def cmd_demo(args) -> int:
    """The main job on the simulator: a trained digits SNN, float (sinabs) vs the simulated chip."""
    from speckstream.demo import digits_report

    console = _console()
    if args.samples is not None and args.samples < 1:
        raise UsageError("--samples must be at least 1")
    console.rule("[bold]speckstream demo: a trained SNN on real handwritten digits, sinabs vs the simulated Speck")
    fig = digits_report(show=print, out_dir=args.out, n_test=args.samples,
                        executor="serial" if args.serial else None)
    if args.output:
        import speckstream as ss
        from speckstream.compiler.errors import CompileWarning
        from speckstream.digits import digits_net

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompileWarning)
            ss.compile(digits_net(), input_shape=(1, 8, 8)).save(args.output)
        console.print(f"saved the compiled configuration to {args.output}")
    ok = fig["chip_accuracy"] >= 0.9 and abs(fig["chip_accuracy"] - fig["float_snn_accuracy"]) <= 0.02 + 1e-9  # 0.96 - 0.94 is 0.0200000001
    console.print(("[green]" if ok else "[red]") + f"chip {fig['chip_accuracy']:.3f} vs float SNN "
                  f"{fig['float_snn_accuracy']:.3f}: target (>= 0.90, within 2 points) "
                  + ("met" if ok else "NOT met"))
    return 0


def cmd_hwcheck(args) -> int:
    """The simulator's inferred behaviours, checked on a devkit (or the simulator half alone without samna)."""
    import anyio

    from speckstream.hwcheck import CHECKS, run_hwcheck

    console = _console()
    checks = [c.strip() for c in args.checks.split(",")] if args.checks else None
    if args.leak_hz <= 0:
        raise UsageError("--leak-hz must be positive")
    report = anyio.run(lambda: run_hwcheck(args.device, checks=checks, leak_hz=args.leak_hz,
                                           progress=lambda name: console.print(f"  running {name} ...")),
                       backend="trio")
    if not report.chip_ran:
        console.print(f"[yellow]no devkit: {report.why_not}. Ran the simulator half only "
                      f"({len(report.results)} of {len(CHECKS)} checks), compared with the documentation.[/]")
    print(report.table())
    out = Path(args.json)
    out.write_text(report.to_json())
    console.print(f"report written to {out} (attach it to an issue)")
    if args.energy_out:
        _save_energy(report, args, console)
    return 0 if report.ok else 1


def _save_energy(report, args, console) -> None:
    """The power check's constants of the owner's chip, for ``speckstream profile --energy`` (a devkit only:
    on the simulator they would be the model's own)."""
    from speckstream.hwcheck_power import PowerPhase, energy_model_from

    res = next((r for r in report.results if r.name == "power"), None)
    if res is None or res.chip is None:
        raise UsageError("--energy-out needs the power check run on a devkit (add 'power' to --checks; without "
                         "samna only the simulator half runs, whose figures are the energy model's own)")
    energy_model_from(PowerPhase(**res.chip), args.device).save(args.energy_out)
    console.print(f"measured energy constants written to {args.energy_out} (speckstream profile --energy)")


# ---------------------------------------------------------------------------------------------- parser
def _compile_parser(sub) -> None:
    c = sub.add_parser("compile", help="model -> chip configuration + summary")
    c.add_argument("model", help="MODULE:FACTORY or path/to/file.py:FACTORY returning a torch.nn.Module, or a "
                   "path to a .nir file")
    c.add_argument("--input-shape", type=_shape, default=None,
                   help="C,H,W of what the model receives, e.g. 2,34,34 (optional for .nir files)")
    c.add_argument("--chip", default="speck2f", choices=["speck2f", "speck2e", "dynapcnn"], help="target chip")
    c.add_argument("--dvs", action="store_true", help="add the DVS input stage (fed by host-written DvsEvents; "
                   "absorbs pooling on the input)")
    c.add_argument("--sensor", action="store_true", help="add the DVS input stage fed by the chip's own camera "
                   "(live sensor input; implies --dvs)")
    c.add_argument("--monitor", default="exits", choices=["exits", "all"],
                   help="which layers send their spikes to the host")
    c.add_argument("--slow-clock", type=float, default=None, metavar="HZ", help="slow clock for leak / readout")
    c.add_argument("--rescale", choices=["mean", "harmonic"], default=None,
                   help="resolve average pools of different sizes into one core as sinabs does "
                   "(default: refuse)")
    c.add_argument("--initial-vmem", choices=["model", "zero"], default=None,
                   help="neuron states: the model's (default, warned when non-zero) or zero")
    c.add_argument("-o", "--output", help="save as .json or .msgpack")
    c.set_defaults(fn=cmd_compile)


def _run_parser(sub) -> None:
    r = sub.add_parser("run", help="replay an event file through a compiled config on a device")
    r.add_argument("config", help="ChipConfig (.json / .msgpack)")
    r.add_argument("events", help="event file: .spk, .npy, .aedat4, .dat, N-MNIST .bin (.raw/.es/.csv with faery)")
    r.add_argument("--device", default="sim", help="sim (default), speck2fmodule:0, speck2fdevkit ...")
    r.add_argument("--speed", default="1.0", help="replay speed (1.0 = real time) or 'max'")
    r.add_argument("--realtime", action="store_true", help="simulator on the wall clock (holds events until their "
                   "timestamps, like a devkit); default: virtual time, as fast as possible")
    r.add_argument("--core", type=int, default=None,
                   help="send every event straight into this core (default: a camera recording goes through the "
                        "config's DVS stage, else into its first input core; chip spikes keep their own cores)")
    r.add_argument("-o", "--output", help="record outputs to a .spk file")
    r.set_defaults(fn=cmd_run)


def _vmem_parser(sub) -> None:
    v = sub.add_parser("vmem", help="stream membrane potentials of a core")
    v.add_argument("config", help="ChipConfig (.json / .msgpack)")
    v.add_argument("--core", type=int, required=True, help="the core whose neurons to read")
    v.add_argument("--rate", type=float, default=10.0, help="frames per second")
    v.add_argument("--count", type=int, default=10, help="frames to read (default 10)")
    v.add_argument("--device", default="sim", help="sim (default), speck2fmodule:0, speck2fdevkit ...")
    v.add_argument("--events", help="event file to send first")
    v.add_argument("-o", "--output", help="save frames to .npz")
    v.set_defaults(fn=cmd_vmem)


def _inspect_parser(sub) -> None:
    i = sub.add_parser("inspect", help="an event file's header, counts per core/channel and time span, or a compiled "
                       "configuration's core table (.json / .msgpack)")
    i.add_argument("file", help="event file (.spk, .npy, .aedat4, ...) or configuration (.json / .msgpack)")
    i.set_defaults(fn=cmd_inspect)


def _bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="run the benchmark suites in bench/")
    b.add_argument("suites", nargs="*", help=", ".join(BENCH_SUITES) + " (default: all)")
    b.add_argument("--quick", action="store_true", help="smaller sizes: seconds instead of minutes (smoke runs)")
    b.set_defaults(fn=cmd_bench)


def _demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="the main job: a trained digits SNN, float (sinabs) vs the simulated chip")
    d.add_argument("--samples", type=int, default=None, help="held-out digits to classify (default: all 359)")
    d.add_argument("--out", default="demo_out", help="folder for the plots (confusion, raster, vmem)")
    d.add_argument("--serial", action="store_true", help="evaluate in this process (no worker pool)")
    d.add_argument("-o", "--output", help="save the compiled configuration")
    d.set_defaults(fn=cmd_demo, record=None)


def _hwcheck_parser(sub) -> None:
    h = sub.add_parser("hwcheck", help="check the simulator's inferred chip behaviours on a devkit, side by side "
                       "(simulator half only without samna); writes a JSON report")
    h.add_argument("device", nargs="?", default="speck2fmodule:0",
                   help="devkit to check (default speck2fmodule:0; e.g. speck2fdevkit:0)")
    h.add_argument("--json", default="hwcheck.json", help="where to write the report (default hwcheck.json)")
    h.add_argument("--checks", default=None, help="comma-separated subset: leak_trace, one_spike_per_core, "
                   "leak_fires, saturation, floor_clamp, address_layout, cascade_order, power")
    h.add_argument("--energy-out", default=None, metavar="JSON", help="save the power check's measured constants "
                   "(energy per SynOp, idle rails) for 'speckstream profile --energy'")
    h.add_argument("--leak-hz", type=float, default=1.0, help="slow clock of the leak trace (default 1 Hz, as "
                   "in sinabs' leak tutorial)")
    h.set_defaults(fn=cmd_hwcheck)


#: one parser function per command, in the order ``--help`` lists them
COMMANDS = (_compile_parser, _calibrate_parser, _profile_parser, _run_parser, _vmem_parser, _inspect_parser,
            _bench_parser, _demo_parser, _hwcheck_parser)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="speckstream", description="Compile SNNs for Speck / DYNAP-CNN chips and "
                                "stream events through them (simulator or devkit).")
    from speckstream import __version__

    p.add_argument("--version", action="version", version=f"speckstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def _leaves(eg: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in eg.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from speckstream.codec.errors import CodecError
    from speckstream.compiler.errors import CompileError
    from speckstream.errors import SpeckstreamError
    from speckstream.runtime.errors import DeviceError

    try:
        return args.fn(args)
    except UsageError as e:
        print(f"speckstream {args.command}: error: {e} (see 'speckstream {args.command} --help')", file=sys.stderr)
        return 2
    except (SpeckstreamError, CompileError, CodecError, DeviceError, FileNotFoundError, ValueError, ImportError,
            OSError) as e:
        print(f"speckstream {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as eg:  # last resort: one line per underlying error, never a traceback
        leaves = _leaves(eg)
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            print(f"speckstream {args.command}: interrupted", file=sys.stderr)
            return 130
        for leaf in leaves:
            print(f"speckstream {args.command}: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"speckstream {args.command}: interrupted", file=sys.stderr)
        return 130
