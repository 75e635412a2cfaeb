"""Runtime faults: each bug from the reliability issue reproduced, then a fault matrix that cancels or breaks
the device at every await of every use and checks the error type, the accounting, no leaked subscription,
and a prompt exit."""
from __future__ import annotations

import sys

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # anyio's dependency on 3.10

import math

import numpy as np
import pytest
import anyio

import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import AddressError, CodecError, EventFileError
from speckstream.runtime import DeviceClosed, DeviceDisconnected, SimFaults

from speckstream.testing import models
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


def relay_cfg():
    return config(core(0, 2, 16, 16, 2, weights=[[20, 0], [0, 20]], thr=10),
                  core(1, 2, 8, 8, 2, weights=[[20, 0], [0, 20]], thr=10))


def spikes(n, seed=0, t0=0, step=10):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=t0 + np.arange(n) * step, core=0, c=rng.integers(0, 2, n), x=rng.integers(0, 16, n),
                        y=rng.integers(0, 16, n))


def leaves(eg):
    out = []
    for e in eg.exceptions:
        out.extend(leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


# ------------------------------------------------------------------------------ replay input checks
@pytest.mark.parametrize("speed", [0, -1, math.nan, math.inf, "fast", True])
async def test_replay_refuses_bad_speeds(speed):
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(ValueError, match="speed must be a positive number"):
            await dev.replay(spikes(10), speed=speed)


async def test_one_out_of_order_timestamp_is_named_not_a_hang(autojump_clock):
    sp = spikes(100)
    sp["t"][57] = 3
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with anyio.fail_after(1):
            with pytest.raises(CodecError, match="event 57 has timestamp 3 µs, before event 56"):
                await dev.replay(sp, speed=1.0)
            with pytest.raises(CodecError, match="event 1 "):
                await dev.replay(sp[::-1].copy(), speed=1.0)
        assert dev.stats.accepted == 0  # nothing was sent
        res = await dev.replay(sp, speed=1.0, sort=True)
        assert res.events_in == 100
        with pytest.raises(ValueError, match="spike 57 of this send"):
            await dev.send(sp)


async def test_realtime_simulator_gets_ordered_input_only(autojump_clock):
    sp = spikes(20)
    sp["t"][5] = 0
    async with ss.open_device("sim", clock="wall") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(ValueError, match="spike 5 of this send"):
            await dev.send(sp)


# ------------------------------------------------------------------------------ one error, never a group
async def test_replay_of_a_corrupt_file_raises_the_file_error(tmp_path):
    (tmp_path / "bad.spk").write_bytes(b"\x00garbage")
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(EventFileError):
            await dev.replay(tmp_path / "bad.spk")


async def test_replay_to_an_unconfigured_core_raises_the_address_error():
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(AddressError, match="core 7, which is not configured"):
            await dev.replay(spikes(100), core=7, speed=None)


async def test_an_off_map_event_in_a_large_send_names_its_index_in_the_send():
    sp = spikes(200_000)
    sp["x"][123_456] = 16
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(AddressError, match="spike 123456 of this send .*input map \\(2, 16, 16\\)"):
            await dev.send(sp)
        assert dev.stats.accepted == 0
        await dev.send(spikes(100))  # the session is still usable
        await dev.flush()


async def test_disconnect_during_replay_raises_disconnected_with_accounting():
    with pytest.raises(DeviceDisconnected) as e:
        async with ss.open_device("sim", faults=SimFaults(disconnect_after=500), batch_size=100) as dev:
            await dev.apply(relay_cfg())
            await dev.replay(spikes(2000), speed=None)
    acc = e.value.accounting
    assert acc.written == 500 and acc.accepted == acc.written + acc.not_written


async def test_disconnect_during_closed_loop_raises_disconnected():
    with pytest.raises(DeviceDisconnected):
        async with ss.open_device("sim", faults=SimFaults(disconnect_after=50)) as dev:
            await dev.apply(relay_cfg())
            await dev.closed_loop(lambda b: spikes(10, t0=0, step=0), spikes(10, step=0), iterations=100)


async def test_a_users_producer_and_consumer_see_only_the_disconnect():
    got: list[BaseException] = []
    async with ss.open_device("sim", faults=SimFaults(disconnect_after=3000), batch_size=500) as dev:
        await dev.apply(relay_cfg())

        async def producer():
            for i in range(100):
                await dev.send(spikes(500, seed=i, step=0))
                await anyio.sleep(0)

        async def consumer():
            async for _ in dev.events("spike"):
                pass

        try:
            async with anyio.create_task_group() as n:
                n.start_soon(producer)
                n.start_soon(consumer)
        except BaseExceptionGroup as eg:
            got = leaves(eg)
        else:
            pytest.fail("no error")
        with pytest.raises(DeviceDisconnected):
            await dev.send(spikes(1))
    assert got and all(isinstance(e, DeviceDisconnected) for e in got), got  # no Cancelled escapes


CALLS_ON_A_VANISHED_DEVICE = {
    "read_neurons": lambda dev: dev.read_neurons(codec.read_requests_for_core(0, (2, 16, 16))),
    "write_neurons": lambda dev: dev.write_neurons(codec.write_requests(0, [0], [0], [0], [5], (2, 16, 16))),
    "apply": lambda dev: dev.apply(relay_cfg()),
    "reset_state": lambda dev: dev.reset_state(),
    "slow_clock": lambda dev: dev.slow_clock(10.0),
    "send_and_flush": lambda dev: _send_and_flush(dev),
    "poll_vmem": lambda dev: _consume(dev.poll_vmem(0, every=0.01, count=3)),
    "replay": lambda dev: dev.replay(spikes(300), speed=None),
    "closed_loop": lambda dev: dev.closed_loop(lambda b: None, spikes(5, step=0), iterations=3, timeout_s=0.01),
}


async def _send_and_flush(dev):
    await dev.send(spikes(10))
    await dev.flush()


@pytest.mark.parametrize("call", list(CALLS_ON_A_VANISHED_DEVICE))
async def test_every_call_on_a_vanished_device_raises_disconnected_with_the_same_accounting(call):
    """Reproduced first: read_neurons wrote to the backend outside the session's one error path, so its
    DeviceDisconnected carried empty accounting while write_neurons' carried it all."""
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        await dev.send(spikes(200))
        await dev.flush()
        dev.backend.vanish()
        with pytest.raises(DeviceDisconnected) as e:
            with anyio.fail_after(5):
                await CALLS_ON_A_VANISHED_DEVICE[call](dev)
        with pytest.raises(DeviceDisconnected):
            await dev.send(spikes(1))  # the session is failed: every later call says so
    acc = e.value.accounting
    assert acc.written == 200 and acc.accepted == acc.written + acc.not_written, acc
    assert acc.offered == acc.accepted + acc.dropped_by_policy, acc


# ------------------------------------------------------------------------------ leaks, use after close
async def test_a_cancelled_recorded_replay_leaves_no_subscription_and_a_readable_file(tmp_path, autojump_clock):
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with anyio.move_on_after(0.3):
            await dev.replay(spikes(100_000, step=100), speed=1.0, record=tmp_path / "out.spk")
        assert dev.stats.subscriptions == ()  # no subscription left
        await dev.send(spikes(1000))
        await dev.flush()
    rec = codec.read_spikes(tmp_path / "out.spk")
    assert len(rec) > 0


async def test_every_method_after_close_raises_device_closed():
    dev_cm = ss.open_device("sim")
    dev = await dev_cm.__aenter__()
    await dev.apply(relay_cfg())
    await dev_cm.__aexit__(None, None, None)
    with anyio.fail_after(1):
        for call in (lambda: dev.send(spikes(10)), dev.flush, lambda: dev.replay(spikes(10)),
                     lambda: dev.read_neurons(codec.read_requests(0, [0], [0], [0], (2, 16, 16))),
                     lambda: dev.apply(relay_cfg()), dev.reset_time):
            with pytest.raises(DeviceClosed, match="is closed"):
                await call()
        with pytest.raises(DeviceClosed):
            async for _ in dev.events():
                pass
    await dev.__aexit__(None, None, None)  # closing twice is a no-op


# ------------------------------------------------------------------------------ vmem replies
async def test_two_concurrent_polls_never_count_each_others_replies(autojump_clock):
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        frames = {0: [], 1: []}

        async def poll(c):
            async for f in dev.poll_vmem(c, every=0.05, count=20):
                frames[c].append(f)

        async with anyio.create_task_group() as n:
            n.start_soon(poll, 0)
            n.start_soon(poll, 1)
    assert all(f.missing == 0 for c in (0, 1) for f in frames[c])


async def test_delayed_replies_are_missing_and_never_handed_out_as_fresh(autojump_clock):
    cfg = relay_cfg()
    async with ss.open_device("sim", faults=SimFaults(reply_delay_s=0.15)) as dev:
        await dev.apply(cfg)
        frames = []
        async for f in dev.poll_vmem(0, every=0.1, count=6):
            frames.append(f)
            # change the state between polls: a stale reply would show the old value
            await dev.write_neurons(codec.write_requests(0, [0], [0], [0], [len(frames)], (2, 16, 16)))
        assert all(f.missing == f.requested for f in frames)
        assert dev.stats.stale_replies_dropped > 0


# ------------------------------------------------------------------------------ fault matrix
USES = {
    "send": lambda dev: dev.send(spikes(20_000, step=1)),
    "replay": lambda dev: dev.replay(spikes(5000, step=100), speed=1.0),
    "replay_fast": lambda dev: dev.replay(spikes(5000, step=100), speed=None),
    "poll_vmem": lambda dev: _consume(dev.poll_vmem(0, every=0.01, count=20)),
    "closed_loop": lambda dev: dev.closed_loop(lambda b: spikes(5, step=0), spikes(5, step=0), iterations=50,
                                               timeout_s=0.01),
    "read_neurons": lambda dev: dev.read_neurons(codec.read_requests_for_core(0, (2, 16, 16))),
}


async def _consume(agen):
    async for _ in agen:
        pass


@pytest.mark.parametrize("use", list(USES))
@pytest.mark.parametrize("fault", ["cancel", "disconnect", "delay", "drop"])
@pytest.mark.parametrize("at", [0.0, 0.001, 0.02])
async def test_fault_matrix(use, fault, at, autojump_clock):
    faults = {"disconnect": SimFaults(disconnect_after=100), "delay": SimFaults(reply_delay_s=0.05),
              "drop": SimFaults(drop_fraction=0.5)}.get(fault, SimFaults())
    t0 = anyio.current_time()
    t_exit = None
    err = None
    try:
        async with ss.open_device("sim", faults=faults, batch_size=100) as dev:
            await dev.apply(relay_cfg())
            with anyio.move_on_after(at if fault == "cancel" else 5):
                await USES[use](dev)
            subs_left = dev.stats.subscriptions
            t_exit = anyio.current_time()
    except DeviceDisconnected as e:
        err = e
    except BaseException as e:  # anything else is a bug
        pytest.fail(f"{use}/{fault}@{at}: {type(e).__name__}: {e}")
    if err is not None:
        assert fault == "disconnect"
        acc = err.accounting
        assert acc.accepted == acc.written + acc.not_written
    else:
        assert subs_left == ()
        c = dev.stats
        assert c.accepted == c.written + c.not_written
        assert c.offered == c.accepted + c.dropped_by_policy
    assert anyio.current_time() - t0 < 6
    if t_exit is not None:
        assert anyio.current_time() - t_exit < 0.5  # the session closes promptly


# ------------------------------------------------------------------------------ the simulator's clock
async def test_leak_tutorial_loop_on_the_default_sim_sees_the_leak(autojump_clock):
    """sinabs' leak tutorial: write ReadNeuronValue, sleep, read - on plain "sim" the slow clock runs."""
    cfg = ss.compile(models.leak_net(), input_shape=(1, 2, 2), slow_clock_hz=1.0, initial_vmem="model")
    req = codec.read_requests_for_core(0, (1, 2, 2))
    seen = []
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        for _ in range(4):
            vals = await dev.read_neurons(req)
            seen.append(int(vals["vmem"][0]))
            await anyio.sleep(1.0)
    assert seen == [127, 114, 101, 88]


async def test_as_fast_as_possible_replay_on_the_virtual_clock_keeps_relative_timestamps():
    cfg = config(core(0, 1, 1, 1, 1, weights=[[20]], thr=10))
    sp = codec.spikes(t=[0, 1000, 5000, 9000], core=0, c=0, x=0, y=0)
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with dev.subscribe("spike") as sub:
            await dev.replay(sp, speed=None)
            sub.close()
            out = np.concatenate([b async for b in sub])
    t = out["t"].astype(np.int64)
    assert np.array_equal(t - t[0], [0, 1000, 5000, 9000])  # not one vertical line at t = 0


async def test_clock_arguments_are_checked():
    with pytest.raises(ValueError, match="clock must be"):
        async with ss.open_device("sim", clock="fast"):
            pass
    with pytest.raises(TypeError, match="realtime"):  # one switch for the clock: realtime= is gone
        async with ss.open_device("sim", clock="virtual", realtime=True):
            pass


@pytest.mark.parametrize("option, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"), ({"input_queue": True}, "input_queue"),
    ({"policy": "sometimes"}, "policy"), ({"read_timeout_s": 0}, "read_timeout_s"),
    ({"read_timeout_s": math.nan}, "read_timeout_s"), ({"lag_warn_s": -1}, "lag_warn_s"),
])
async def test_session_options_are_typed_and_checked_before_anything_opens(option, match):
    from speckstream.runtime import SessionOptions

    with pytest.raises(ValueError, match=match):
        SessionOptions(**option)
    with pytest.raises(ValueError, match=match):
        async with ss.open_device("sim", **option):
            pass
    with pytest.raises(ValueError, match=match):
        ss.connect("sim", **option)


async def test_an_unknown_option_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="bach_size"):  # explicit keywords: no **kwargs to swallow a typo
        async with ss.open_device("sim", bach_size=3):
            pass


async def test_a_blocking_samna_write_is_cancelled_promptly_and_counted_as_the_device_took_it():
    from speckstream.testing import samna_standin

    samna = samna_standin.make_module()
    t0 = anyio.current_time()
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        dev.backend.apply_settle_s = 0
        dev.backend.write_slice = 100
        await dev.apply(relay_cfg())
        chip = dev.backend.handle.chip
        chip.write_block_s = 3.0
        with anyio.move_on_after(0.2):
            await dev.send(spikes(100))
            await dev.flush()
        t_cancel = anyio.current_time()
    exit_s = anyio.current_time() - t_cancel
    assert exit_s < 1.0, exit_s  # not the 2.7 s of the blocked write
    import time
    time.sleep(3.2)  # the blocked samna call returns on its own thread...
    # ...and the books count what the device took
    acc = dev.accounting()
    assert acc.written == 100 and acc.not_written == 0 and acc.accepted == 100
    assert anyio.current_time() - t0 < 5


async def test_a_cancelled_samna_open_leaves_no_device_open_and_no_chip_thread_running():
    """The open call blocks on the device thread (samna's open_device in C); the caller gives up and closes: the
    device it opened afterwards is closed again, and the stand-in's chip thread ends with it."""
    import threading
    import time

    from speckstream.testing import samna_standin

    samna = samna_standin.make_module()
    opened = threading.Event()
    real = samna.device.open_device

    def slow_open(info):
        time.sleep(0.5)
        handle = real(info)
        opened.set()
        return handle

    samna.device.open_device = slow_open
    with anyio.move_on_after(0.1):
        async with ss.open_device("speck2fmodule:0", samna=samna):
            pytest.fail("the open should have been cancelled")
    assert opened.wait(5)  # the blocked call did return, on the device thread
    for _ in range(100):  # bounded: the close queued behind it runs as soon as it returns
        if not samna.device.open and not any(t.name == "samna-standin-chip" and t.is_alive()
                                             for t in threading.enumerate()):
            break
        time.sleep(0.05)
    assert samna.device.open == {}
    assert not any(t.name == "samna-standin-chip" and t.is_alive() for t in threading.enumerate())


async def test_a_samna_close_whose_graph_stop_fails_still_closes_the_device():
    from speckstream.testing import samna_standin

    samna = samna_standin.make_module()
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        handle = dev.backend.handle

        def broken_stop():
            raise RuntimeError("graph already stopped")

        dev.backend._keep[0].stop = broken_stop
    assert handle.closed and samna.device.open == {}
