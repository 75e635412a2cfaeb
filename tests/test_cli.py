"""The command line, run as a user would (subprocess), checking output and exit codes."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speckstream import codec

HERE = os.path.dirname(__file__)
HERE_DATA = Path(HERE) / "data"


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "speckstream", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = cli("compile", "nets_for_cli:small", "--input-shape", "2,34,34", "-o", str(d / "net.json"))
    assert r.returncode == 0, r.stderr
    return d, r


def test_compile_prints_the_summary_and_saves(compiled):
    d, r = compiled
    assert "ChipConfig for speck2f: 4 core(s)" in r.stdout and (d / "net.json").exists()


def test_compile_says_each_warning_once_and_the_floor_advice_as_one_summary():
    """Reproduced first: every compiler note came twice (the summary's "note:" and the CLI's "warning:"), and a
    sinabs-converted network got one vmem-floor line per layer."""
    r = cli("compile", "nets_for_cli:sinabs_converted", "--input-shape", "1,8,8")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert out.count("vmem floor within 2 thresholds") == 1, out
    assert "3 layer(s) have a vmem floor" in out and "'0' (" in out and "'7' (" in out
    lines = [ln for ln in out.splitlines() if ln.startswith(("note:", "warning:"))]
    assert len(lines) == len(set(ln.split(":", 1)[1] for ln in lines))  # no message twice


def test_compile_errors_and_exit_codes(tmp_path):
    r = cli("compile", "nets_for_cli:too_big", "--input-shape", "2,34,34")
    assert r.returncode == 1 and "LayerDoesNotFitError" in r.stderr and "'14' needs kernel 512 Ki" in r.stderr
    assert "at most 512 output features fit (cores 5, 6)" in r.stderr and "pool before the Linear" in r.stderr
    r = cli("compile", "nets_for_cli:small", "--input-shape", "2,34")
    assert r.returncode == 2 and "C,H,W" in r.stderr
    r = cli("compile", "nets_for_cli:nope", "--input-shape", "2,34,34")
    assert r.returncode == 2 and "no attribute 'nope'" in r.stderr
    r = cli("compile", "nets_for_cli:not_a_model", "--input-shape", "2,34,34")
    assert r.returncode == 2


def _random_spk(path, n: int, span_us: int):
    """n random input spikes on core 0 of the (2, 34, 34) CLI network, written as .spk."""
    rng = np.random.default_rng(0)
    codec.write_spk(path, codec.spikes(t=np.sort(rng.integers(0, span_us, n)), core=0, c=rng.integers(0, 2, n),
                                       x=rng.integers(0, 34, n), y=rng.integers(0, 34, n)))


def test_run_inspect_and_vmem(compiled, tmp_path):
    d, _ = compiled
    _random_spk(tmp_path / "in.spk", 3000, 200_000)
    r = cli("run", str(d / "net.json"), str(tmp_path / "in.spk"), "--speed", "max", "-o", str(tmp_path / "out.spk"))
    assert r.returncode == 0, r.stderr
    assert "input events" in r.stdout and "3,000" in r.stdout and (tmp_path / "out.spk").exists()
    r = cli("inspect", str(tmp_path / "in.spk"))
    assert r.returncode == 0 and "spike: 3,000 events" in r.stdout and "core 0: 3,000 spikes" in r.stdout
    r = cli("vmem", str(d / "net.json"), "--core", "0", "--rate", "20", "--count", "2", "-o", str(tmp_path / "v.npz"))
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "v.npz")["vmem"].shape == (2, 8, 34, 34)
    r = cli("run", str(d / "net.json"), str(tmp_path / "missing.spk"))
    assert r.returncode == 2 and "not found" in r.stderr
    (tmp_path / "bad.spk").write_bytes(b"garbage")
    r = cli("inspect", str(tmp_path / "bad.spk"))
    assert r.returncode == 1 and "EventFileError" in r.stderr
    r = cli("vmem", str(d / "net.json"), "--core", "7")
    assert r.returncode == 2 and "core 7 is not in" in r.stderr


def test_demo_runs(tmp_path):
    r = cli("demo", "--samples", "20", "--serial", "--out", str(tmp_path / "plots"), "-o", str(tmp_path / "demo.json"))
    assert r.returncode == 0, r.stderr
    assert "float SNN (sinabs, 1 ms steps)" in r.stdout and "chip (simulated, event-driven)" in r.stdout
    assert "prediction agreement" in r.stdout and (tmp_path / "demo.json").exists()
    assert all((tmp_path / "plots" / f).stat().st_size > 1000 for f in ("confusion.png", "raster.png", "vmem.png"))
    r = cli("demo", "--samples", "0")
    assert r.returncode == 2 and "--samples" in r.stderr


def test_bad_arguments_and_bad_files_give_one_line(tmp_path, compiled):
    d, _ = compiled
    np.save(tmp_path / "plain.npy", np.arange(10))
    r = cli("run", str(d / "net.json"), str(tmp_path / "plain.npy"))  # an array, but not events: a bad argument
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "plain.npy holds a int64 array" in r.stderr and "x, y, t" in r.stderr
    for args in (["run", str(d / "net.json"), str(tmp_path / "plain.npy"), "--speed", "fast"],
                 ["demo", "--samples", "0"], ["run", str(d / "net.json")], ["compile", "x.py:f", "--input-shape", "1,2"],
                 ["bench", "nonsense"], ["--no-such-option"]):
        r = cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, args
        assert len(r.stderr.strip().splitlines()) == 1 and "--help" in r.stderr, (args, r.stderr)
    assert "speed" in cli(*["run", str(d / "net.json"), str(tmp_path / "plain.npy"), "--speed", "fast"]).stderr
    (tmp_path / "bad.spk").write_bytes(b"junk")
    r = cli("run", str(d / "net.json"), str(tmp_path / "bad.spk"))
    assert r.returncode == 1 and "EventFileError" in r.stderr and "Traceback" not in r.stderr


def test_a_virtual_time_run_shows_no_meaningless_rows(tmp_path, compiled):
    d, _ = compiled
    ev = np.zeros(200, codec.TONIC_DTYPE)
    ev["x"], ev["y"], ev["t"] = np.arange(200) % 34, np.arange(200) % 30, np.arange(200) * 50
    np.save(tmp_path / "cam.npy", ev)
    r = cli("run", str(d / "net.json"), str(tmp_path / "cam.npy"))
    assert r.returncode == 0, r.stderr
    assert "input events" in r.stdout and "200" in r.stdout
    assert "nan" not in r.stdout.lower() and "release error" not in r.stdout  # no wall clock, no release error


def test_version_and_inspect_of_a_compiled_config(compiled):
    d, _ = compiled
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("speckstream ")
    r = cli("inspect", str(d / "net.json"))
    assert r.returncode == 0 and "ChipConfig for speck2f: 4 core(s)" in r.stdout


def test_every_cli_option_has_help():
    from speckstream.cli import build_parser

    parser = build_parser()
    missing = [(name, a.dest) for name, sp in parser._subparsers._group_actions[0].choices.items()
               for a in sp._actions if not a.help and a.dest != "help"]
    assert not missing, missing


def test_calibrate_writes_the_calibrated_config_and_reports_the_held_out_figure(tmp_path):
    out = tmp_path / "cal.json"
    r = cli("calibrate", "nets_for_cli:digits_sinabs_default", "--dataset", "nets_for_cli:digits_small",
            "--input-shape", "1,8,8", "--serial", "--budget", "60", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "calibrate (accuracy): search part" in r.stdout and "held out" in r.stdout and out.exists()
    from speckstream.compiler import load_config

    cfg = load_config(out)
    assert len(cfg.cores) == 3
    r = cli("calibrate", "nets_for_cli:digits_sinabs_default", "--dataset", "nets_for_cli:not_a_model",
            "--input-shape", "1,8,8")
    assert r.returncode == 2 and "not a data set" in r.stderr


def test_profile_prints_per_core_synops_and_warns_over_the_limit(compiled, tmp_path):
    d, _ = compiled
    n = 3000
    _random_spk(tmp_path / "in.spk", n, 100_000)
    r = cli("profile", str(d / "net.json"), str(tmp_path / "in.spk"), "--limit", "1e5", "--json", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    assert "SynOps" in r.stdout and "peak/s 1 ms" in r.stdout and "energy" in r.stdout
    assert "warning:" in r.stderr and "SynOps/s over the 1 ms" in r.stderr
    import json

    prof = json.loads((tmp_path / "p.json").read_text())
    assert prof["synops"] > 0 and prof["cores"]["0"]["events_in"] == n


@pytest.mark.parametrize("speed", ["max", "4"])
def test_run_progress_moves_through_an_npy_file(tmp_path, monkeypatch, speed):
    """The bar is updated after every write, not once per file chunk (which for an array is once at the end)."""
    import rich.progress

    from speckstream.cli import main
    from speckstream.testing.configs import config, core

    config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)).save(tmp_path / "net.json")
    n = 600_000  # "max" writes in batches of 65536 events: ten updates at least
    np.save(tmp_path / "ev.npy", codec.to_xytp(codec.spikes(t=np.arange(n) // 2, core=0, c=0, x=np.arange(n) % 8,
                                                             y=0)))
    seen = []
    real = rich.progress.Progress.update

    def spy(self, task, **kw):
        if "completed" in kw:
            seen.append(kw["completed"])
        return real(self, task, **kw)

    monkeypatch.setattr(rich.progress.Progress, "update", spy)
    assert main(["run", str(tmp_path / "net.json"), str(tmp_path / "ev.npy"), "--speed", speed]) == 0
    assert len(set(seen)) >= 5 and seen == sorted(seen) and seen[-1] == n


def test_run_sends_a_camera_recording_through_the_configs_dvs_stage(tmp_path):
    """Reproduced: 'speckstream run' sent every event straight into the first core, so a 128 x 128 recording on a
    config whose DVS stage pools 4 x 4 was refused as off core 0's 32 x 32 map (with the advice to compile with
    dvs=True, which it was). Also: the recording's events reach the chip as profile counts them."""
    rec = HERE_DATA / "recordings" / "davis346_crop128.npy"
    r = cli("compile", "nets_for_cli:dvs_pooled", "--input-shape", "2,128,128", "--dvs", "-o", str(tmp_path / "n.json"))
    assert r.returncode == 0, r.stderr
    r = cli("run", str(tmp_path / "n.json"), str(rec), "--speed", "max", "-o", str(tmp_path / "o.spk"))
    assert r.returncode == 0, r.stderr
    assert "38,877" in r.stdout or "38877" in r.stdout, r.stdout
    # --core still sends straight into a core: off its 32 x 32 map, one line naming the core
    r = cli("run", str(tmp_path / "n.json"), str(rec), "--speed", "max", "--core", "0")
    assert r.returncode == 1 and "core 0" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_recording_off_the_sensor_fails_in_one_line_and_the_process_exits_cleanly(tmp_path):
    """Reproduced by a new user: a 346 x 260 AEDAT4 recording replayed on a --dvs config said AddressError and
    then aborted the interpreter at exit (rc 134: the file's decoder was closed at shutdown while its reader thread
    waited). The replay now closes the file's reader on every exit path."""
    rec = HERE_DATA / "recordings" / "davis346_clip.aedat4"
    r = cli("compile", "nets_for_cli:dvs_pooled", "--input-shape", "2,128,128", "--dvs", "-o", str(tmp_path / "n.json"))
    assert r.returncode == 0, r.stderr
    for speed in ("1.0", "max"):
        r = cli("run", str(tmp_path / "n.json"), str(rec), "--speed", speed)
        assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
        assert "off the 128x128" in r.stderr and "DVS stage" in r.stderr and "Fatal" not in r.stderr, r.stderr


def test_missing_config_and_energy_files_are_usage_errors(tmp_path, compiled):
    d, _ = compiled
    _random_spk(tmp_path / "in.spk", 10, 1000)
    for args in (["run", str(tmp_path / "nope.json"), str(tmp_path / "in.spk")],
                 ["profile", str(tmp_path / "nope.json"), str(tmp_path / "in.spk")],
                 ["profile", str(d / "net.json"), str(tmp_path / "in.spk"), "--energy", str(tmp_path / "e.json")]):
        r = cli(*args)
        assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_profile_checks_its_event_file_as_run_does(tmp_path, compiled):
    """The same event-file rules for every command that reads one: a missing file, or a .npy that holds no
    events, is a usage error (exit 2) - profile let FileNotFoundError / CodecError through (exit 1)."""
    d, _ = compiled
    np.save(tmp_path / "ints.npy", np.arange(10))
    for cmd in ("run", "profile"):
        for events in (tmp_path / "nope.spk", tmp_path / "ints.npy"):
            r = cli(cmd, str(d / "net.json"), str(events))
            assert r.returncode == 2 and "Traceback" not in r.stderr, (cmd, events, r.returncode, r.stderr)


def test_calibrate_names_a_missing_nir_file_as_compile_does(tmp_path):
    for cmd in (["compile", str(tmp_path / "nope.nir")],
                ["calibrate", str(tmp_path / "nope.nir"), "--dataset", "nets_for_cli:dataset"]):
        r = cli(*cmd)
        assert r.returncode == 2 and "NIR file not found" in r.stderr, (cmd, r.returncode, r.stderr)
