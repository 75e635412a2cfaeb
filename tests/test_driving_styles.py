"""One runtime, three ways to drive it: trio (the other runtime tests), asyncio (plain ``asyncio.run``, uvloop),
and the blocking facade ``ss.connect`` - with the same errors and accounting, and no thread left behind."""
import asyncio
import threading
import time

import numpy as np
import pytest

import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import AddressError
from speckstream.runtime import DeviceClosed, DeviceDisconnected, DeviceNotFound, SimFaults
from speckstream.testing.configs import config, core


def relay_cfg():
    """Every input spike fires exactly one output spike at the same place."""
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10))


def spikes(n, seed=0):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=0, core=0, c=rng.integers(0, 2, n), x=rng.integers(0, 8, n), y=rng.integers(0, 8, n))


def _threads() -> set:
    return {t for t in threading.enumerate() if t.is_alive()}


async def _relay_round_trip(n: int) -> np.ndarray:
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with dev.subscribe("spike", max_batches=10_000) as sub:
            await dev.send(spikes(n))
            got = []
            while sum(map(len, got)) < n:
                got.append((await sub.receive())[1])
    return np.concatenate(got)


# ------------------------------------------------------------------ asyncio
def test_asyncio_run_drives_a_session():
    out = asyncio.run(_relay_round_trip(500))
    assert len(out) == 500 and np.array_equal(out["x"], spikes(500)["x"])


def test_uvloop_drives_a_session():
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out = runner.run(_relay_round_trip(300))
    assert len(out) == 300


def test_asyncio_errors_are_the_same_plain_errors():
    async def main():
        async with ss.open_device("sim", faults=SimFaults(disconnect_after=50)) as dev:
            await dev.apply(relay_cfg())
            with pytest.raises(AddressError, match="spike 1 of this send"):
                await dev.send(codec.spikes(t=0, core=0, c=[0, 0], x=[1, 9], y=[0, 0]))
            await dev.send(spikes(200))
            await dev.flush()

    with pytest.raises(DeviceDisconnected) as e:
        asyncio.run(main())
    acc = e.value.accounting
    assert acc.accepted == 200 and acc.written + acc.not_written == 200


# ------------------------------------------------------------------ blocking facade
@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_blocking_facade_round_trip_and_no_thread_left_behind(loop):
    before = _threads()
    with ss.connect("sim", async_backend=loop) as dev:
        dev.apply(relay_cfg())
        with dev.subscribe("spike", timeout_s=1.0) as sub:
            assert dev.send(spikes(1000)) == 1000
            dev.flush()
            got = []
            for batch in sub:
                got.append(batch)
                if sum(map(len, got)) >= 1000:
                    break
        out = np.concatenate(got)
        assert len(out) == 1000 and np.array_equal(out["c"], spikes(1000)["c"])
        assert dev.stats.written == 1000 and dev.accounting().accepted == 1000
        assert dev.now_us() >= 0
    assert _threads() == before  # the loop's thread is joined on exit
    with pytest.raises(DeviceClosed):
        dev.send(spikes(1))


def test_blocking_events_end_after_the_silence_timeout():
    with ss.connect("sim") as dev:
        dev.apply(relay_cfg())
        t0 = time.monotonic()
        assert list(dev.events(timeout_s=0.05)) == []
        assert time.monotonic() - t0 < 2.0
        with pytest.raises(ValueError, match="timeout_s"):
            dev.events(timeout_s=0)


def test_blocking_errors_are_raised_plainly_in_the_callers_thread():
    before = _threads()
    with pytest.raises(DeviceNotFound, match="unknown device"):
        ss.connect("nonsense")  # checked before any thread starts
    with pytest.raises(ValueError, match="policy"):
        ss.connect("sim", policy="sometimes")
    with pytest.raises(ValueError, match="async_backend"):
        ss.connect("sim", async_backend="curio")
    assert _threads() == before

    with ss.connect("sim") as dev:
        dev.apply(relay_cfg())
        with pytest.raises(AddressError, match="nothing of this send was queued"):
            dev.send(codec.spikes(t=0, core=0, c=[0], x=[8], y=[0]))
        assert dev.stats.accepted == 0


def test_blocking_disconnect_mid_stream_raises_disconnected_with_accounting():
    before = _threads()
    with pytest.raises(DeviceDisconnected) as e:
        with ss.connect("sim", faults=SimFaults(disconnect_after=300), batch_size=100) as dev:
            dev.apply(relay_cfg())
            dev.send(spikes(1000))
            dev.flush()
    acc = e.value.accounting  # send() itself may meet the disconnect: what it had accepted is accounted for
    assert acc.written == 300 and acc.accepted == acc.written + acc.not_written
    assert 300 < acc.accepted <= 1000 and acc.accepted % 100 == 0  # whole batches
    assert _threads() == before


def test_an_error_in_the_with_body_propagates_unchanged_and_closes_the_device():
    before = _threads()
    with pytest.raises(KeyError, match="mine"):
        with ss.connect("sim") as dev:
            dev.apply(relay_cfg())
            raise KeyError("mine")
    assert _threads() == before
    with pytest.raises(DeviceClosed):
        dev.apply(relay_cfg())


def test_blocking_vmem_replay_and_closed_loop():
    with ss.connect("sim") as dev:
        cfg = relay_cfg()
        dev.apply(cfg)
        frames = list(dev.poll_vmem(0, every=0.01, count=3))
        assert [f.image.shape for f in frames] == [(2, 8, 8)] * 3 and all(f.missing == 0 for f in frames)
        with dev.poll_vmem(0, every=0.01) as polled:  # a resource: receive() per frame, None once closed
            assert polled.receive() is not None
        assert polled.receive() is None
        res = dev.replay(spikes(400), speed=None)
        assert res.events_in == 400 and res.events_out == 400
        calls = []
        loop = dev.closed_loop(lambda b: calls.append(len(b)) or (spikes(5) if len(calls) < 3 else None),
                               spikes(5), iterations=3, timeout_s=0.2)
        assert loop.iterations == 3 and calls[0] == 5


def test_blocking_session_is_opened_once():
    dev = ss.connect("sim")
    with pytest.raises(Exception, match="not open"):
        dev.apply(relay_cfg())  # not yet opened
    dev.open()
    try:
        dev.apply(relay_cfg())
        with pytest.raises(Exception, match="opened once"):
            dev.open()
    finally:
        dev.close()
    dev.close()  # idempotent
