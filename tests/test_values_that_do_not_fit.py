"""Values that do not fit their field are refused with one error of a documented type (speckstream.SpeckstreamError,
a ValueError here), naming the value, before anything is written: never an OverflowError, a bare KeyError, a
silent rounding (1.5 -> 1, NaN -> 0), a wrap (40000 -> -25536) or a truncation (2.7 -> 2)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream import codec
from speckstream.codec.errors import AddressError, CodecError, EventFileError
from speckstream.testing.configs import config, core

pytestmark = pytest.mark.anyio
SHAPE = (1, 2, 2)


def relay_cfg():
    return config(core(0, 2, 8, 8, 2, weights=[10, 0, 0, 10], thr=10))


@pytest.mark.parametrize("bad", [-1, 300, 2.0, True, "0"])
def test_a_request_core_that_is_not_a_core_id_is_a_codec_error(bad):
    for make in (lambda: codec.read_requests(bad, [0], [0], [0], SHAPE),
                 lambda: codec.write_requests(bad, [0], [0], [0], 5, SHAPE)):
        with pytest.raises(CodecError, match=f"core {bad!r} is not a chip core id"):
            make()


@pytest.mark.parametrize("vmem, match", [(np.nan, r"vmem\[0\] = nan is not an integer"),
                                         (1.5, r"vmem\[0\] = 1.5 is not an integer"),
                                         (40000, r"vmem\[0\] = 40000 does not fit the int16"),
                                         (-40000, r"vmem\[0\] = -40000 does not fit the int16")])
def test_write_requests_refuse_a_vmem_that_is_not_an_int16(vmem, match):
    with pytest.raises(CodecError, match=match):
        codec.write_requests(0, [0], [0], [0], vmem, SHAPE)


@given(st.lists(st.one_of(st.integers(-70_000, 70_000), st.floats(allow_nan=True, allow_infinity=True)),
                min_size=1, max_size=4))
@settings(max_examples=150, deadline=None)
def test_write_requests_either_store_the_exact_value_or_refuse(values):
    n = len(values)
    arr = np.asarray(values, dtype=np.float64 if any(isinstance(v, float) for v in values) else np.int64)
    fits = all(np.isfinite(v) and float(v).is_integer() and -32768 <= v <= 32767 for v in values)
    try:
        req = codec.write_requests(0, np.zeros(n, int), np.arange(n) % 2, np.arange(n) // 2 % 2, arr, SHAPE)
    except CodecError:
        assert not fits, values
        return
    assert fits and [int(v) for v in req["vmem"]] == [int(v) for v in values]


def test_an_unknown_event_kind_is_a_codec_error_naming_the_kinds():
    with pytest.raises(CodecError, match="unknown event kind 'spikes'; known kinds: spike"):
        codec.as_events(np.zeros(1, codec.SPIKE_DTYPE), "spikes")
    with pytest.raises(CodecError, match="unknown event kind"):
        codec.empty("spikes")


@pytest.mark.parametrize("shape", [(2.7, 4, 4), (2, 4.5, 4), (2, 4, float("nan")), (0, 4, 4), ("2", 4, 4), (2, 4)])
def test_a_map_dimension_that_is_not_a_whole_number_is_refused(shape):
    with pytest.raises(CodecError, match="whole number|at least 1|is \\(C, H, W\\)"):
        codec.encode([0], [0], [0], shape)


def test_a_whole_float_map_dimension_is_taken():
    assert np.array_equal(codec.encode([1], [1], [1], (2.0, 4, 4)), codec.encode([1], [1], [1], (2, 4, 4)))


def test_an_spk_header_whose_spike_dtype_differs_is_refused(tmp_path):
    from speckstream.codec import spk

    other = np.dtype([("time", "<u8"), ("layer", "u1"), ("f", "<u2"), ("col", "<u2"), ("row", "<u2")], align=True)
    assert other.itemsize == codec.SPIKE_DTYPE.itemsize
    path = tmp_path / "other.spk"
    with spk.EventFileWriter(path) as w:
        w.append(codec.spikes(t=[1, 2], core=0, c=0, x=1, y=1))
    raw = path.read_bytes()
    import msgpack

    up = msgpack.Unpacker(raw=False)
    up.feed(raw)
    header = up.unpack()
    rest = raw[up.tell():]
    header.pop("header_crc32")
    header["kinds"]["spike"] = spk._descr(other)
    header["header_crc32"] = spk._header_crc(header)
    path.write_bytes(msgpack.packb(header, use_bin_type=True) + rest)
    with pytest.raises(EventFileError, match="'spike'.*not this reader's"):
        codec.read_spikes(path)


# ------------------------------------------------------------------ the session: checked before the first await
async def test_write_neurons_refuses_an_int32_vmem_that_would_wrap_and_writes_nothing():
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        req = np.zeros(2, [("core", "u1"), ("address", "<u4"), ("vmem", "<i4")])
        req["address"], req["vmem"] = [0, 1], [7, 40000]
        with pytest.raises(CodecError, match=r"vmem\[1\] = 40000 does not fit the int16"):
            await dev.write_neurons(req)
        back = await dev.read_neurons(codec.read_requests(0, [0, 1], [0, 0], [0, 0], (2, 8, 8)))
        assert back["vmem"].tolist() == [0, 0]  # the first, valid one was not written either


async def test_neuron_requests_for_a_core_the_config_lacks_raise_addresserror_at_the_call():
    async with ss.open_device("sim", clock="virtual") as dev:
        await dev.apply(relay_cfg())
        with pytest.raises(AddressError, match=r"core 5 is not a core of the applied configuration \(cores: \[0\]\)"):
            dev.poll_vmem(5)  # at the call, not at the first frame
        with pytest.raises(AddressError, match="core 5, which the applied configuration does not use"):
            await dev.read_neurons(np.array([(5, 0)], codec.READ_REQUEST_DTYPE))
        with pytest.raises(AddressError, match="core 5"):
            await dev.write_neurons(np.array([(5, 0, 1)], codec.WRITE_REQUEST_DTYPE))


def test_the_blocking_facade_raises_the_same_errors():
    with ss.connect("sim", clock="virtual") as dev:
        dev.apply(relay_cfg())
        with pytest.raises(AddressError, match="core 5"):
            list(dev.poll_vmem(5, count=1))
        with pytest.raises(CodecError, match="40000"):
            dev.write_neurons(np.array([(0, 0, 40000)], [("core", "u1"), ("address", "<u4"), ("vmem", "<i4")]))
