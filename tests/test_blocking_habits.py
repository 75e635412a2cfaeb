"""The blocking facade where people actually call it: inside a running asyncio loop (a Jupyter cell), inside a
trio task, in a script that never closes its session or crashes (a ROS 2 node), and interrupted by Ctrl-C.

Whatever must exit is run in a child process with a deadline: a hang fails the test instead of the suite."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import speckstream as ss
from speckstream import codec
from speckstream.runtime import DeviceClosed
from speckstream.testing.configs import config, core

ROOT = Path(__file__).resolve().parent.parent
EXIT_DEADLINE_S = 30  # generous for a loaded machine; a process that will not exit never meets it


def relay_cfg():
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10))


def spikes(n, t=0):
    return codec.spikes(t=t, core=0, c=np.arange(n) % 2, x=np.arange(n) % 8, y=(np.arange(n) // 8) % 8)


def _threads() -> set:
    return {t for t in threading.enumerate() if t.is_alive()}


def _round_trip(dev, n=100) -> int:
    dev.apply(relay_cfg())
    got = 0
    with dev.subscribe("spike", timeout_s=1.0) as sub:
        dev.send(spikes(n))
        for batch in sub:
            got += len(batch)
            if got >= n:
                break
    return got


def run_child(code: str, *, timeout: float = EXIT_DEADLINE_S, **kw) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a child still alive after ``timeout`` s fails the test."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, **kw)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the child process did not exit within {timeout} s: {e.stdout!r} {e.stderr!r}")


# ------------------------------------------------------------------ inside an event loop
@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_connect_inside_a_running_asyncio_loop_works(loop):
    """A Jupyter cell (or any ``async def``) calling blocking code: the loop is running in this thread."""
    before = _threads()

    async def cell():
        with ss.connect("sim", async_backend=loop) as dev:
            return _round_trip(dev)

    assert asyncio.run(cell()) == 100
    assert _threads() == before


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_connect_inside_a_trio_task_works_and_never_hangs(loop):
    """In a child process: a hang there (the blocking portal's join used to wait forever) fails this test
    instead of stopping the suite."""
    res = run_child(f"""
        import threading, trio
        import speckstream as ss
        from speckstream.testing.configs import config, core

        async def task():
            with ss.connect("sim", async_backend="{loop}") as dev:
                dev.apply(config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)))
                with dev.subscribe("spike", timeout_s=1.0) as sub:
                    dev.send(ss.codec.spikes(t=0, core=0, c=0, x=[1, 2, 3], y=0))
                    return sum(len(b) for b in sub)

        print("got", trio.run(task), "threads", threading.active_count())
    """)
    assert res.returncode == 0, res.stderr
    assert "got 3 threads 1" in res.stdout  # the runtime's loop thread was joined


def test_a_session_opened_in_one_cell_is_used_in_the_next():
    """Notebook habit: open in one cell, use in later ones (each cell a fresh run on the same loop thread)."""
    loop = asyncio.new_event_loop()
    try:
        async def cell(fn):
            return fn()
        dev = loop.run_until_complete(cell(lambda: ss.connect("sim").open()))
        assert loop.run_until_complete(cell(lambda: _round_trip(dev))) == 100
        loop.run_until_complete(cell(dev.close))
    finally:
        loop.close()
    with pytest.raises(DeviceClosed):
        dev.send(spikes(1))


def test_session_options_are_still_checked_in_the_callers_thread_before_any_thread_starts():
    before = _threads()
    with pytest.raises(ValueError, match="policy"):
        ss.connect("sim", policy="sometimes")
    with pytest.raises(TypeError, match="bach_size"):
        ss.connect("sim", bach_size=3)
    assert _threads() == before


# ------------------------------------------------------------------ processes that must exit
UNCLOSED = """
    import atexit
    import numpy as np
    import speckstream as ss
    from speckstream.testing.configs import config, core

    def report():  # registered before speckstream's own exit hook, so it runs after it (atexit is LIFO)
        acc = dev.session.accounting()  # the closed session's books (the blocking calls refuse after close)
        print("closed at exit:", acc.accepted, acc.written, flush=True)

    atexit.register(report)
    dev = ss.connect("sim", clock="virtual", batch_size=100).open()
    dev.apply(config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)))
    dev.send(ss.codec.spikes(t=np.arange(20_000), core=0, c=0, x=1, y=1))
    {end}
"""


def test_a_script_that_never_closes_its_session_exits_and_flushes_what_was_accepted():
    res = run_child(UNCLOSED.format(end="print('end of script')"))
    assert res.returncode == 0, res.stderr
    assert "end of script" in res.stdout
    assert "closed at exit: 20000 20000" in res.stdout  # accepted events were written before the close


def test_a_script_that_crashes_with_an_open_session_exits_with_its_error():
    res = run_child(UNCLOSED.format(end="raise RuntimeError('the node crashed')"))
    assert res.returncode == 1
    assert "RuntimeError: the node crashed" in res.stderr
    assert "closed at exit: 20000 20000" in res.stdout


def test_sys_exit_with_an_open_asyncio_backed_session_exits():
    code = """
        import sys
        import speckstream as ss
        dev = ss.connect("sim", async_backend="asyncio").open()
        sys.exit(3)
    """
    assert run_child(code).returncode == 3


def test_ctrl_c_during_a_blocking_replay_raises_keyboardinterrupt_and_the_process_exits():
    code = """
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import numpy as np
        import speckstream as ss
        from speckstream.testing.configs import config, core
        with ss.connect("sim") as dev:
            dev.apply(config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10)))
            n = 200_000
            print("ready", flush=True)
            try:
                dev.replay(ss.codec.spikes(t=np.arange(n) * 50, core=0, c=0, x=np.arange(n) % 8, y=0), speed=1.0,
                           record="interrupted.spk")
            except KeyboardInterrupt:
                print("KeyboardInterrupt", flush=True)
                raise
    """
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=os.environ.get("TMPDIR", "/tmp"))
    try:
        assert p.stdout.readline().strip() == "ready"
        import time
        time.sleep(0.5)  # inside the replay (10 s of events)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=EXIT_DEADLINE_S)
    finally:
        p.kill()
    assert "KeyboardInterrupt" in out
    assert "ExceptionGroup" not in err and p.returncode != 0


# ------------------------------------------------------------------ the README's patterns, run
README = (ROOT / "README.md").read_text()


def _readme_block(marker: str) -> str:
    """The python block of the README whose first line is the comment ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    found = [b for b in blocks if b.startswith(marker)]
    assert len(found) == 1, f"README has no single python block starting with {marker!r}"
    return found[0]


def test_readme_jupyter_pattern_runs_inside_a_running_loop(capsys):
    code = _readme_block("# Jupyter")
    cells = [c for c in code.split("# --- next cell") if c.strip()]
    assert len(cells) >= 2  # open in one cell, use in another
    scope: dict = {"__name__": "__readme__"}

    async def run_cell(src):  # as IPython runs a cell: on the kernel's running asyncio loop
        exec(compile(src, "README: Jupyter", "exec"), scope)

    loop = asyncio.new_event_loop()
    try:
        for c in cells:
            loop.run_until_complete(run_cell(c))
    finally:
        loop.close()
    assert capsys.readouterr().out.strip()


def _ros_child(body: str) -> subprocess.CompletedProcess:
    code = _readme_block("# ROS 2")
    return run_child(code + "\n" + textwrap.dedent(body))


def test_readme_ros2_node_lifecycle_runs():
    res = _ros_child("""
        node = DigitsNode()
        for events, _ in node.test[:5]:
            node.on_events(events)          # what rclpy's executor would call
        node.destroy_node()
        print("classified", node.classified)
    """)
    assert res.returncode == 0, res.stderr
    assert "classified 5" in res.stdout


def test_readme_ros2_node_that_crashes_without_destroy_node_exits():
    res = _ros_child("""
        node = DigitsNode()
        node.on_events(node.test[0][0])
        raise RuntimeError("the callback crashed")     # no destroy_node, no close
    """)
    assert res.returncode == 1 and "the callback crashed" in res.stderr


# ------------------------------------------------------------------ every call in every state: one documented error
def _calls(dev):
    req = codec.read_requests(0, [0], [0], [0], (2, 8, 8))
    return {
        "apply": lambda: dev.apply(relay_cfg()), "send": lambda: dev.send(spikes(3)), "flush": lambda: dev.flush(),
        "reset_time": dev.reset_time, "reset_state": dev.reset_state, "slow_clock": lambda: dev.slow_clock(1),
        "read_neurons": lambda: dev.read_neurons(req), "now_us": dev.now_us, "accounting": dev.accounting,
        "write_neurons": lambda: dev.write_neurons(np.array([(0, 0, 1)], codec.WRITE_REQUEST_DTYPE)),
        "subscribe": lambda: dev.subscribe(), "events": lambda: list(dev.events(timeout_s=0.01)),
        "poll_vmem": lambda: list(dev.poll_vmem(0, count=1)), "replay": lambda: dev.replay(spikes(3), speed=None),
        "closed_loop": lambda: dev.closed_loop(lambda b: None, spikes(1), iterations=1), "stats": lambda: dev.stats,
    }


@pytest.mark.parametrize("state", ["never opened", "closed", "failed"])
def test_every_blocking_call_in_a_state_where_it_cannot_run_raises_one_device_error(state):
    from speckstream.runtime import DeviceDisconnected, DeviceError, SimFaults

    dev = ss.connect("sim", faults=SimFaults(disconnect_after=5))
    if state != "never opened":
        dev.open()
        dev.apply(relay_cfg())
        if state == "failed":
            dev.send(spikes(10))
            with pytest.raises(DeviceDisconnected):
                dev.flush()
        else:
            dev.close()
    want = {"never opened": "not open", "closed": "closed", "failed": "disconnected"}[state]
    for name, call in _calls(dev).items():
        if state == "failed" and name in ("now_us", "accounting", "stats"):
            call()  # a failed session can still be asked what happened
            continue
        with pytest.raises(DeviceError, match=want):
            call()
    dev.close()  # the failure was reported already: not raised again
    dev.close()  # idempotent in every state
