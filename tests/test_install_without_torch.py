"""The robot's install: `pip install speckstream` (no extras) in a fresh venv, without torch, replays a saved
configuration through the simulator - and classifies held-out digits exactly as this environment does.

Slow (it builds a wheel and a venv; pip fetches numpy/anyio/trio/msgpack/rich from the package index), so it
runs in CI and where SPECKSTREAM_INSTALL_TEST=1; otherwise it is skipped with that reason.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import speckstream as ss

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("SPECKSTREAM_INSTALL_TEST")),
    reason="builds a wheel and a fresh venv (minutes): runs in CI or with SPECKSTREAM_INSTALL_TEST=1")]

SCRIPT = textwrap.dedent('''
    import asyncio, importlib.util, json, subprocess, sys
    import numpy as np
    import speckstream as ss

    assert importlib.util.find_spec("torch") is None, "torch must not be installed here"
    data = np.load(sys.argv[2])
    cfg = ss.load_config(sys.argv[1])
    samples = [(data[f"ev{i}"], int(data["labels"][i])) for i in range(len(data["labels"]))]
    res = ss.evaluate(cfg, samples, executor="serial", progress=False)

    async def stream():  # the runtime on asyncio, no torch anywhere
        async with ss.open_device("sim", clock="virtual") as dev:
            await dev.apply(cfg)
            r = await dev.replay(samples[0][0], speed=None)
            return r.events_in, r.events_out

    events_in, events_out = asyncio.run(stream())
    try:
        ss.compile
    except ss.MissingExtraError as e:
        missing = str(e)
    else:
        missing = ""
    cli = subprocess.run([sys.executable, "-m", "speckstream", "inspect", sys.argv[1]], capture_output=True, text=True)
    print(json.dumps({"predictions": res.predictions.tolist(), "events_in": events_in, "events_out": events_out,
                      "missing": missing, "inspect_rc": cli.returncode, "inspect": cli.stdout[:200]}))
''')


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd[:4]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def test_a_fresh_venv_without_torch_replays_a_saved_config(tmp_path):
    from speckstream.digits import digits_dataset, digits_net, load_digits_split

    cfg = ss.compile(digits_net(), input_shape=(1, 8, 8))
    cfg.save(tmp_path / "digits.json")
    _, _, images, labels = load_digits_split()
    test = digits_dataset(images[:40], labels[:40])
    np.savez(tmp_path / "digits_events.npz", labels=np.array([lab for _, lab in test]),
             **{f"ev{i}": ev for i, (ev, _) in enumerate(test)})
    want = ss.evaluate(cfg, test, executor="serial", progress=False).predictions.tolist()

    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "dist"), str(ROOT)])
    wheel = next((tmp_path / "dist").glob("speckstream-*.whl"))
    venv = tmp_path / "robot"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", str(wheel)])
    assert "torch" not in _run([py, "-m", "pip", "list"]).stdout
    _run([py, "-m", "pip", "check"])
    (tmp_path / "robot.py").write_text(SCRIPT)
    out = json.loads(_run([py, str(tmp_path / "robot.py"), str(tmp_path / "digits.json"),
                           str(tmp_path / "digits_events.npz")], cwd=tmp_path).stdout.strip().splitlines()[-1])
    assert out["predictions"] == want  # the same chip, the same answers
    assert out["events_in"] == len(test[0][0]) and out["events_out"] > 0
    assert "pip install 'speckstream[compile]'" in out["missing"]
    assert out["inspect_rc"] == 0 and "ChipConfig for speck2f" in out["inspect"]
