"""The Backend contract (runtime/backends/base.py) as one check any backend can be run through, like trio's
``check_one_way_stream``: open and close (twice), apply, write then read back, a read that times out, the declared
capabilities, use after close, and a device that vanishes - after which every call raises DeviceDisconnected."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import numpy as np
import anyio

from ..codec import events as ev
from ..runtime.backends.base import Backend
from ..runtime.errors import DeviceClosed, DeviceDisconnected, DeviceError
from .configs import config, core

__all__ = ["check_backend", "collect", "relay_config"]


def relay_config():
    """Core 0 -> core 1 (pooling 2) with weight 20 over threshold 10: every input spike comes back out of
    both monitored cores."""
    return config(core(0, 2, 16, 16, 2, weights=[[20, 0], [0, 20]], thr=10, dests=[(1, 2)]),
                  core(1, 2, 8, 8, 2, weights=[[20, 0], [0, 20]], thr=10))


async def collect(dev, n: int, kind: str = "spike", timeout: float = 5.0) -> np.ndarray:
    """Output events of ``kind`` from a session until ``n`` have arrived or ``timeout`` s have passed."""
    got: list[np.ndarray] = []
    async with dev.events(kind) as batches:
        with anyio.move_on_after(timeout):
            async for b in batches:
                got.append(b)
                if sum(map(len, got)) >= n:
                    break
    return np.concatenate(got) if got else np.empty(0, ev.DVS_EVENT_DTYPE if kind == "dvs" else ev.SPIKE_DTYPE)


async def _read_until(backend, n: int, timeout_s: float = 5.0) -> np.ndarray:
    got: list[np.ndarray] = []
    with anyio.move_on_after(timeout_s):
        while sum(int(len(g)) for g in got) < n:
            out = await backend.read(0.01)
            if out is not None and len(out.spikes):
                got.append(out.spikes)
    return np.concatenate(got) if got else np.empty(0, ev.SPIKE_DTYPE)


async def check_backend(make: Callable[[], Any], *, vanish: Callable[[Any], Awaitable[None] | None]) -> None:
    """Run the contract against backends made by ``make()``; ``vanish(backend)`` makes an open one disappear."""
    b = make()
    await b.open()
    await b.apply(relay_config())
    sp = ev.spikes(t=0, core=0, c=np.arange(4) % 2, x=np.arange(4), y=np.arange(4))
    await b.write_spikes(sp)
    out = await _read_until(b, 4)
    assert len(out[out["core"] == 0]) == 4, f"{b.name}: wrote 4 spikes into a relay core, read {len(out)} back"
    _check_capabilities(b, written=4)
    quiet = await b.read(0.01)
    assert quiet is None or len(quiet.spikes) == 0, f"{b.name}: a read with nothing to read must time out with None"
    await b.close()
    await b.close()  # closing twice is a no-op
    for call in (lambda: b.write_spikes(sp), lambda: b.read(0.01)):
        try:
            await call()
        except DeviceClosed:
            pass
        else:
            raise AssertionError(f"{b.name}: use after close must raise DeviceClosed")
    b = make()
    await b.open()
    await b.apply(relay_config())
    r = vanish(b)
    if r is not None:
        await r
    try:
        with anyio.fail_after(5):
            for _ in range(100):
                await b.write_spikes(sp)
                await b.read(0.01)
    except DeviceDisconnected:
        pass
    except DeviceError as e:
        raise AssertionError(f"{b.name}: a vanished device must raise DeviceDisconnected, got {e!r}") from e
    else:
        raise AssertionError(f"{b.name}: a vanished device went unnoticed")
    try:
        await _every_call_fails(b, sp)
    finally:
        await b.close()


def _check_capabilities(b, written: int) -> None:
    """What a backend declares (Backend's defaults say "cannot tell") must be true of it."""
    assert isinstance(b, Backend), f"{type(b).__name__} must subclass runtime.backends.base.Backend"
    assert isinstance(b.virtual_clock, bool) and isinstance(b.stamps_readout, bool)
    assert b.device_written is None or b.device_written >= written, \
        f"{b.name}: device_written {b.device_written} after {written} events were written"
    late = b.take_release_lateness()
    assert late is None or isinstance(late, np.ndarray), f"{b.name}: take_release_lateness gave {late!r}"
    for lag in (b.lag_us, b.lag_max_us):
        assert lag is None or lag >= 0, f"{b.name}: lag {lag}"


async def _every_call_fails(b, sp) -> None:
    """After the device vanished, every call raises DeviceDisconnected (none succeeds in silence, none hangs)."""
    req = np.zeros(1, ev.READ_REQUEST_DTYPE)
    wreq = np.zeros(1, ev.WRITE_REQUEST_DTYPE)
    calls = {"write_spikes": lambda: b.write_spikes(sp), "read": lambda: b.read(0.01),
             "write_reads": lambda: b.write_reads(req), "write_neurons": lambda: b.write_neurons(wreq),
             "reset_time": b.reset_time, "reset_state": b.reset_state, "set_slow_clock": lambda: b.set_slow_clock(10),
             "apply": lambda: b.apply(relay_config())}
    for name, call in calls.items():
        try:
            with anyio.fail_after(5):
                await call()
        except DeviceDisconnected:
            continue
        except Exception as e:
            raise AssertionError(f"{b.name}: {name} on a vanished device must raise DeviceDisconnected, got {e!r}") \
                from e
        raise AssertionError(f"{b.name}: {name} on a vanished device succeeded")
