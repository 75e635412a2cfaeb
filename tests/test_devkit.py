"""The devkit path's first-run items (issue: survive a first run on a real Speck2f), against the stand-in."""
from __future__ import annotations

import numpy as np
import pytest
import anyio

import speckstream as ss
from speckstream.runtime import DeviceNotFound, find_samna
from speckstream.runtime.backends.samna_backend import to_samna_config
from speckstream.runtime.errors import DeviceError
from speckstream.testing import samna_standin
from speckstream.testing.backends import relay_config

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


def test_find_samna_searches_the_package_recursively_and_takes_an_override(tmp_path, monkeypatch):
    pkg = tmp_path / "samna"
    (pkg / "lib" / "deep").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .lib.deep._samna import *\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SPECKSTREAM_SAMNA", raising=False)
    ok, why = find_samna()
    assert not ok and "no compiled module anywhere inside" in why and "SPECKSTREAM_SAMNA=real" in why
    (pkg / "lib" / "deep" / "_samna.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    ok, why = find_samna()
    assert ok and "1 compiled module" in why
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "__init__.py").write_text("PYPI_SAMNA = True\n")
    monkeypatch.setenv("SPECKSTREAM_SAMNA", str(other))
    ok, why = find_samna()
    assert not ok and "PyPI placeholder" in why
    monkeypatch.setenv("SPECKSTREAM_SAMNA", "real")
    assert find_samna()[0]


def test_dynapcnn_devkit_is_refused_with_a_reason():
    with pytest.raises(DeviceNotFound, match="dropped by samna 0.46"):
        ss.runtime.make_backend("dynapcnndevkit:0")


def test_layer_dimensions_are_assigned_as_whole_objects():
    sc = to_samna_config(relay_config(), samna_standin.make_module())
    d = sc.cnn_layers[0].dimensions
    assert type(d).__name__ == "CnnLayerDimensions"
    assert (d.input_shape.size.x, d.input_shape.feature_count, d.output_shape.size.y, d.kernel_size) == (16, 2, 16, 1)


async def test_apply_is_confirmed_by_a_round_trip_and_falls_back_to_sinabs_wait():
    samna = samna_standin.make_module()
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        t0 = anyio.current_time()
        await dev.apply(relay_config())
        assert dev.backend.applied_confirmed is True and anyio.current_time() - t0 < 0.5
        await dev.send(ss.codec.spikes(t=0, core=0, c=0, x=1, y=1))  # events read during the round trip stay
        await dev.flush()
        # a chip that never answers: the documented fallback, sinabs' fixed wait
        dev.backend.apply_timeout_s, dev.backend.apply_settle_s = 0.05, 0.2
        chip = dev.backend.handle.chip
        write = chip.write
        chip.write = lambda events: write([e for e in events if type(e).__name__ != "ReadNeuronValue"])
        t0 = anyio.current_time()
        await dev.apply(relay_config())
        assert dev.backend.applied_confirmed is False and anyio.current_time() - t0 >= 0.2


async def test_a_slow_clock_below_1_hz_is_refused_not_rounded_to_zero():
    samna = samna_standin.make_module()
    async with ss.open_device("speck2fmodule:0", samna=samna) as dev:
        with pytest.raises(DeviceError, match="1 Hz or more"):
            await dev.slow_clock(0.5)
        await dev.slow_clock(2)
        assert dev.backend.handle.chip.slow_clk == (True, 2)


async def test_readout_values_reach_the_host_only_when_the_readout_is_monitored(autojump_clock):
    from speckstream.compiler import ReadoutConfig
    from speckstream.testing.configs import config, core

    cfg = config(core(0, 1, 1, 1, 2, weights=[0, 10], thr=10, dests=[(12, 1)]), slow_clock_hz=10.0)
    cfg.readout = ReadoutConfig(average=1, errata=False)  # monitor off: the default
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        with dev.subscribe("all") as sub:
            await dev.send(ss.codec.spikes(t=[50_000, 60_000], core=0))
            await anyio.sleep(0.5)
            sub.close()
            got = [b async for b in sub]
    kinds = {k for k, _ in got}
    assert "spike" in kinds and "readout" not in kinds
    assert np.sum([len(a) for k, a in got if k == "spike"]) == 2
