"""The real-time guard: a wall-clock device that falls behind its input timestamps says so - a lag statistic in
the session's statistics and one RealTimeWarning naming the lag and the input rate - instead of releasing late in
silence. A deliberately slow simulator (each event costs mock-clock time) must trigger it; the real one, on the
same input, must not."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from speckstream import codec
from speckstream.runtime import Session, SimBackend
from speckstream.runtime.lag import RealTimeWarning
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio


def relay_cfg():
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10))


def stream(n=2000, span_us=200_000):
    """``n`` events over ``span_us``: 10 k events/s by default."""
    return codec.spikes(t=np.linspace(0, span_us, n).astype(np.int64), core=0, c=0, x=np.arange(n) % 8, y=0)


class SlowSim(SimBackend):
    """A simulator that needs ``cost_s`` of (mock) wall time per event it processes: 2 k events/s at 0.5 ms."""

    def __init__(self, clock, cost_s: float):
        super().__init__(clock="wall")
        self._mock, self._cost_s = clock, cost_s

    def _process(self, kind, spikes, until=None):
        super()._process(kind, spikes, until)
        self._mock.jump(self._cost_s * len(spikes))


async def test_a_simulator_that_cannot_keep_up_warns_once_naming_lag_and_rate(autojump_clock):
    async with Session(SlowSim(autojump_clock, cost_s=0.0005)) as dev:
        await dev.apply(relay_cfg())
        with pytest.warns(RealTimeWarning) as caught:
            res = await dev.replay(stream(), speed=1.0)
        stats = dev.stats
    assert len(caught) == 1  # once per session, not once per batch
    msg = str(caught[0].message)
    assert "ms behind the input timestamps" in msg and "events/s" in msg and "clock='virtual'" in msg
    assert stats.lag_max_us > 100_000  # 2000 events at 0.5 ms each, arriving over 0.2 s: ~0.8 s behind
    assert stats.lag_us is not None and res.events_in == 2000


async def test_a_simulator_that_keeps_up_stays_silent_and_reports_a_small_lag(autojump_clock):
    async with Session(SimBackend(clock="wall")) as dev:
        await dev.apply(relay_cfg())
        with warnings.catch_warnings():
            warnings.simplefilter("error", RealTimeWarning)
            await dev.replay(stream(), speed=1.0)
            await dev.send(codec.spikes(t=0, core=0, c=0, x=1, y=1))  # t = 0: "now", late by design: not lag
            await dev.flush()
        stats = dev.stats
    assert 0 <= stats.lag_max_us < 1000


async def test_the_threshold_is_a_session_option_and_none_switches_the_warning_off(autojump_clock):
    async with Session(SlowSim(autojump_clock, cost_s=0.0005), lag_warn_s=None) as dev:
        await dev.apply(relay_cfg())
        with warnings.catch_warnings():
            warnings.simplefilter("error", RealTimeWarning)
            await dev.replay(stream(), speed=1.0)
        assert dev.stats.lag_max_us > 100_000  # still measured
    with pytest.raises(ValueError, match="lag_warn_s"):
        Session(SimBackend(), lag_warn_s=0)


async def test_a_virtual_clock_has_no_lag():
    async with Session(SimBackend(clock="virtual")) as dev:
        await dev.apply(relay_cfg())
        await dev.replay(stream(), speed=None)
        assert dev.stats.lag_us is None and dev.stats.lag_max_us is None


def test_the_runtime_benchmark_reports_the_lag():
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("bench_runtime", bench / "runtime.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        rows = mod.pacing_rows(mod.trio.run(mod.pacing, 0.05))
    finally:
        sys.path.remove(str(bench))
    lag = [r for r in rows if "lag" in r["what"]]
    assert len(lag) == 1 and lag[0]["unit"] == "µs" and lag[0]["value"] >= 0
