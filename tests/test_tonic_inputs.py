"""tonic-style (x, y, t, p; t in µs) arrays go in everywhere events go in - send, replay (array and .npy), simulate,
evaluate - with one check against the network's input whose error names tonic's own transforms; and those
transforms, applied as the error says, do fix the input (checked with tonic itself when it is installed)."""
import anyio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import AddressError
from speckstream.testing.backends import collect
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio  # the async ones on trio and asyncio (tests/conftest.py)

W = H = 8


def relay_cfg():
    """2 x 8 x 8 input; every input spike fires one output spike at the same place."""
    return config(core(0, 2, H, W, 2, weights=[10, 0, 0, 10], thr=10))


def camera(n, width=W, height=H, seed=0, dtype=codec.TONIC_DTYPE):
    """What tonic yields: x/y/t/p, t in µs, in time order."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype)
    ev["x"], ev["y"] = rng.integers(0, width, n), rng.integers(0, height, n)
    ev["t"] = np.sort(rng.integers(0, 50_000, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


async def _collect_into(outs, dev, n):
    outs.append(await collect(dev, n))


def as_spikes(ev, core=0):
    return codec.spikes(t=ev["t"], core=core, c=ev["p"].astype(int), x=ev["x"], y=ev["y"])


# ------------------------------------------------------------------ the runtime
@pytest.mark.parametrize("dtype", [codec.TONIC_DTYPE, np.dtype([("t", "<i8"), ("x", "<i8"), ("y", "<i8"), ("p", "<i8")])],
                         ids=["tonic-events_struct", "nmnist-int64"])
async def test_send_takes_tonic_arrays_like_the_spikes_they_stand_for(dtype):
    ev = camera(300, dtype=dtype)
    outs = []
    for arr in (ev, as_spikes(ev)):
        async with ss.open_device("sim", clock="virtual") as dev:
            await dev.apply(relay_cfg())
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _collect_into(outs, dev, 300))
                await anyio.sleep(0)
                assert await dev.send(arr) == 300
    assert len(outs[0]) == 300 and np.array_equal(outs[0], outs[1])


async def test_send_refuses_a_bigger_sensor_naming_tonics_transforms_and_queues_nothing():
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(AddressError) as e:
            await dev.send(camera(100, width=34, height=34))
        msg = str(e.value)
        assert "off the input map (C, H, W) = (2, 8, 8) of core 0" in msg
        assert "tonic.transforms.CenterCrop(sensor_size, size=(8, 8))" in msg
        assert "tonic.transforms.Downsample(sensor_size=sensor_size, target_size=(8, 8))" in msg
        assert dev.stats.accepted == 0 and dev.stats.offered == 0


async def test_a_polarity_beyond_the_input_channels_names_merge_polarities():
    ev = camera(10)
    ev = ev.astype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i2")])
    ev["p"][4] = 2
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(AddressError, match=r"event 4 .*polarity 2 .*MergePolarities"):
            await dev.send(ev)


async def test_replay_takes_tonic_arrays_and_npy_files_and_checks_them_before_writing(tmp_path):
    ev = camera(400)
    np.save(tmp_path / "cam.npy", ev)
    np.save(tmp_path / "big.npy", camera(400, width=64, height=48))
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        for source in (ev, tmp_path / "cam.npy"):
            res = await dev.replay(source, speed=None)
            assert res.events_in == 400 and res.events_out == 400
        before = dev.stats.accepted
        with pytest.raises(AddressError, match=r"sensor is at least \d+ x \d+ .*CenterCrop"):
            await dev.replay(tmp_path / "big.npy", speed=None)
        assert dev.stats.accepted == before  # nothing of the bad file was written


# ------------------------------------------------------------------ the synchronous layer
def test_simulate_and_evaluate_take_tonic_arrays_and_refuse_a_bigger_sensor():
    cfg = relay_cfg()
    ev = camera(200)
    assert np.array_equal(ss.simulate(cfg, ev), ss.simulate(cfg, as_spikes(ev)))
    with pytest.raises(AddressError, match="CenterCrop"):
        ss.simulate(cfg, camera(50, width=16, height=16))
    with pytest.raises(AddressError, match="Downsample"):
        ss.evaluate(cfg, [(ev, 0), (camera(50, width=9), 1)], executor="serial", progress=False)


def test_tonics_transforms_applied_as_the_error_says_make_the_input_fit():
    tonic = pytest.importorskip("tonic")
    cfg = relay_cfg()
    sensor_size = (34, 34, 2)  # an N-MNIST-sized recording
    ev = camera(500, width=34, height=34)
    with pytest.raises(AddressError):
        ss.simulate(cfg, ev)
    cropped = tonic.transforms.CenterCrop(sensor_size, size=(W, H))(ev)
    down = tonic.transforms.Downsample(sensor_size=sensor_size, target_size=(W, H))(ev)
    assert len(cropped) and len(ss.simulate(cfg, cropped)) == len(cropped)
    assert len(ss.simulate(cfg, down)) == len(down) == 500


# ------------------------------------------------------------------ conversions
@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 1023), st.integers(0, 127), st.integers(0, 127)),
                max_size=50), st.integers(0, 8))
def test_to_xytp_keeps_the_channel_and_round_trips(rows, core_id):
    sp = codec.spikes(t=[r[0] for r in rows], core=core_id, c=[r[1] for r in rows], x=[r[2] for r in rows],
                      y=[r[3] for r in rows]) if rows else codec.empty("spike")
    back = codec.to_xytp(sp)
    assert back.dtype == codec.XYTP_DTYPE and back["p"].tolist() == sp["c"].tolist()
    assert np.array_equal(codec.from_xytp(back, core=core_id), sp)


def test_readout_words_decode_into_named_fields():
    ro = np.zeros(3, codec.READOUT_DTYPE)
    ro["value"] = [(1 << 20) | (7 << 16) | 1234, (0 << 20) | (15 << 16) | 0xFFFF, 0]
    codec.decode_readout_fields(ro)
    assert ro["valid"].tolist() == [True, False, False]
    assert ro["class"].tolist() == [7, 15, 0] and ro["data"].tolist() == [1234, 0xFFFF, 0]


async def test_tonic_arrays_into_a_dvs_stage_are_checked_against_its_sensor_with_the_same_advice():
    from speckstream.compiler import DVSConfig

    cfg = config(core(0, 2, 16, 16, 2, weights=[10, 0, 0, 10], thr=10))
    cfg.dvs = DVSConfig(input_size=(32, 32), pooling=(2, 2), destinations=[0])
    small, big = camera(100, width=32, height=32), camera(100, width=128, height=128)
    assert len(ss.simulate(cfg, small)) > 0
    with pytest.raises(AddressError, match=r"32x32 \(H x W\) sensor .*CenterCrop\(sensor_size, size=\(32, 32\)\)"):
        ss.simulate(cfg, big)
    async with ss.open_device("sim") as dev:
        await dev.apply(cfg)
        with pytest.raises(AddressError, match="Downsample"):
            await dev.send(big)  # a tonic array goes to the DVS stage of a config that has one
        assert dev.stats.accepted == 0


@pytest.mark.parametrize("broken, match", [
    ("nan", "not a finite timestamp"), ("unsorted", "before event 0"), ("2-D", "1-D"), ("no-y", r"field.*\by\b"),
    ("negative-x", r"x\[1\] = -3"),
])
async def test_broken_tonic_arrays_raise_one_codec_error_and_queue_nothing(broken, match):
    from speckstream.codec.errors import CodecError

    ev = camera(5).astype([("x", "f8"), ("y", "i2"), ("t", "f8"), ("p", "?")])
    if broken == "nan":
        ev["t"][2] = np.nan
    elif broken == "unsorted":
        ev["t"][:2] = [9, 1]
    elif broken == "2-D":
        ev = ev.reshape(5, 1)
    elif broken == "no-y":
        ev = ev[["x", "t", "p"]]
    else:
        ev["x"][1] = -3
    async with ss.open_device("sim") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(CodecError, match=match):
            await dev.send(ev)
        with pytest.raises(CodecError, match=match):
            ss.simulate(relay_cfg(), ev)
        assert dev.stats.accepted == 0


async def test_replaying_chip_spikes_keeps_their_cores_while_a_camera_array_goes_to_the_input_core():
    from speckstream.testing.backends import relay_config

    cfg = relay_config()  # core 0 -> core 1 (pooling 2); both monitored
    spikes_for_core1 = codec.spikes(t=np.arange(10) * 10, core=1, c=0, x=np.arange(10) % 8, y=0)
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with dev.subscribe("spike", max_batches=1000) as sub:
            await dev.replay(spikes_for_core1, speed=None)
            got = []
            while (b := sub.receive_nowait()) is not None:
                got.append(b[1])
    out = np.concatenate(got)
    assert set(out["core"].tolist()) == {1}  # written into core 1, as the array says; nothing through core 0


def test_whether_a_source_is_a_camera_recording_is_answered_once_from_the_reader_table(tmp_path):
    from speckstream.codec.files import READERS
    from speckstream.codec.inputs import CAMERA_SUFFIXES, is_camera

    assert set(CAMERA_SUFFIXES) == {s for s, r in READERS.items() if r.camera}
    assert {".aedat4", ".dat", ".bin", ".raw", ".es", ".csv"} == set(CAMERA_SUFFIXES)
    assert not is_camera(tmp_path / "rec.spk") and is_camera(tmp_path / "rec.AEDAT4")
    np.save(tmp_path / "cam.npy", camera(3))
    np.save(tmp_path / "chip.npy", codec.spikes(t=[0, 1], core=0))
    assert is_camera(tmp_path / "cam.npy") and not is_camera(tmp_path / "chip.npy")
    assert is_camera(camera(3)) and not is_camera(codec.spikes(t=[0], core=0))


async def test_an_nmnist_bin_recording_is_a_camera_recording_for_replay(tmp_path):
    """N-MNIST .bin files hold a camera's events: replay maps them to the configuration's input core (not core 0)
    and checks them against its input map, as every other camera format."""
    def rec(x, y, p, t):  # x, y, then polarity and a 23-bit timestamp in 3 big-endian bytes
        return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])
    path = tmp_path / "digit.bin"
    path.write_bytes(b"".join(rec(i % W, i % H, i % 2, 100 * i) for i in range(40)))
    cfg = config(core(3, 2, H, W, 2, weights=[10, 0, 0, 10], thr=10))  # the input core is core 3
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with dev.subscribe("spike", max_batches=1000) as sub:
            res = await dev.replay(path, speed=None)
            got = []
            while (b := sub.receive_nowait()) is not None:
                got.append(b[1])
    assert res.events_in == 40 and set(np.concatenate(got)["core"].tolist()) == {3}
    big = tmp_path / "big.bin"
    big.write_bytes(b"".join(rec(30, 30, 0, 10 * i) for i in range(3)))
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(cfg)
        with pytest.raises(AddressError, match="CenterCrop"):
            await dev.replay(big, speed=None)
