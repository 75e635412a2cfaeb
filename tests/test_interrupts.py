"""Ctrl-C reaches the caller as a plain KeyboardInterrupt, never an exception group, on both event loops and in
the CLI; the interrupted replay still closes its recording. SIGINT goes to a child process at several moments."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from speckstream import codec

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30  # a hang guard, not a timing

REPLAY = """
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when the test runner ignores SIGINT
    import anyio
    import numpy as np
    import speckstream as ss
    from speckstream.testing.configs import config, core

    async def main():
        async with ss.open_device("sim") as dev:
            await dev.apply(config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)))
            n = 400_000
            sp = ss.codec.spikes(t=np.arange(n) * 50, core=0, c=0, x=np.arange(n) % 8, y=0)
            print("ready", flush=True)
            await dev.replay(sp, speed=1.0, record=sys.argv[2])

    try:
        anyio.run(main, backend=sys.argv[1])
    except BaseException as e:
        print("caught", type(e).__name__, flush=True)
        raise
"""


def _interrupt(args: list[str], after_s: float, cwd) -> tuple[str, str, int]:
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        line = p.stdout.readline()
        assert "ready" in line or line == "", line
        time.sleep(after_s)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail("the interrupted process did not exit")
    finally:
        p.kill()
    return line + out, err, p.returncode


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
@pytest.mark.parametrize("after_s", [0.05, 0.3, 0.8])
def test_ctrl_c_during_a_replay_is_a_plain_keyboardinterrupt(loop, after_s, tmp_path):
    rec = tmp_path / "rec.spk"
    out, err, rc = _interrupt(["-c", textwrap.dedent(REPLAY), loop, str(rec)], after_s, tmp_path)
    assert "caught KeyboardInterrupt" in out, (out, err)
    assert "ExceptionGroup" not in err and "ExceptionGroup" not in out
    assert rc != 0
    with codec.EventFileReader(rec) as r:  # the recording was closed with what it held: readable
        r.scan()
        assert not r.truncated


def test_the_cli_says_interrupted_on_ctrl_c(tmp_path):
    n = 400_000
    np.save(tmp_path / "ev.npy", codec.to_xytp(codec.spikes(t=np.arange(n) * 50, core=0, c=0, x=np.arange(n) % 8,
                                                             y=0)))
    from speckstream.testing.configs import config, core

    config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)).save(tmp_path / "net.json")
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); print('ready', flush=True)\n"
            "from speckstream.cli import main; sys.exit(main(sys.argv[1:]))")
    out, err, rc = _interrupt(["-c", code, "run", "net.json", "ev.npy", "--realtime", "-o", "out.spk"], 1.5,
                              tmp_path)
    assert rc == 130, (out, err)
    assert "interrupted" in err and "KeyboardInterrupt:" not in err and "Traceback" not in err
