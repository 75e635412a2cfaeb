import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec import AddressError, AddressLayout
from speckstream.codec.addresses import decode_reference, encode_reference


@st.composite
def maps_and_coords(draw, layout="packed"):
    while True:
        C, H, W = (draw(st.integers(1, 300)) for _ in range(3))
        bits = sum((v - 1).bit_length() for v in (C, H, W))
        if bits <= 18:
            break
    n = draw(st.integers(0, 50))
    c = draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n))
    x = draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n))
    y = draw(st.lists(st.integers(0, H - 1), min_size=n, max_size=n))
    return (C, H, W), np.array(c, np.int64), np.array(x, np.int64), np.array(y, np.int64)


@settings(max_examples=300, deadline=None)
@given(maps_and_coords(), st.sampled_from(["packed", "sinabs"]))
def test_encode_matches_reference_and_fallback(case, layout):
    shape, c, x, y = case
    from speckstream.codec import _impl

    expected = np.array([encode_reference(int(a), int(b), int(d), shape, layout) for a, b, d in zip(c, x, y)],
                        dtype=np.uint32)
    for k in (_impl.kernels, _impl.fallback_kernels):
        for dt in (np.int64, np.uint16, np.int32):
            got = codec.encode(c.astype(dt), x.astype(dt), y.astype(dt), shape, layout=layout, kernels=k)
            assert np.array_equal(got, expected)


@settings(max_examples=300, deadline=None)
@given(maps_and_coords())
def test_packed_round_trip(case):
    shape, c, x, y = case
    a = codec.encode(c, x, y, shape)
    from speckstream.codec import _impl

    for k in (_impl.kernels, _impl.fallback_kernels):
        c2, x2, y2 = codec.decode(a, shape, kernels=k)
        assert np.array_equal(c2, c) and np.array_equal(x2, x) and np.array_equal(y2, y)
        for ai, ci, xi, yi in zip(a.tolist(), c2.tolist(), x2.tolist(), y2.tolist()):
            assert decode_reference(ai, shape) == (ci, xi, yi)
    # packed addresses are dense: below 2**bits
    lay = AddressLayout.for_shape(shape)
    assert (a < 2 ** (lay.cbits + lay.xbits + lay.ybits)).all()


@settings(max_examples=200, deadline=None)
@given(C=st.integers(1, 64), H=st.integers(1, 64), W=st.integers(1, 64),
       addrs=st.lists(st.integers(0, 2 ** 20), max_size=40))
def test_decode_random_addresses_agree_and_never_garbage(C, H, W, addrs, kernels):
    shape = (C, H, W)
    a = np.array(addrs, dtype=np.uint32)
    c, x, y, keep = codec.decode(a, shape, drop_invalid=True, kernels=kernels)
    ref = []
    for v in addrs:
        try:
            ref.append(decode_reference(v, shape))
        except AddressError:
            pass
    assert list(zip(c.tolist(), x.tolist(), y.tolist())) == ref
    assert keep.sum() == len(ref)
    assert (c < C).all() and (x < W).all() and (y < H).all()


def test_sinabs_layout_reproduces_sinabs_bug_for_bug():
    # sinabs io.calculate_neuron_address on (2, 4, 16): (x=4, y=0) and (x=0, y=1) collide at 8 (docs/chip-notes.md)
    a = codec.encode([0, 0], [4, 0], [0, 1], (2, 4, 16), layout="sinabs")
    assert a.tolist() == [8, 8]
    assert AddressLayout.for_shape((2, 4, 16), "sinabs").is_ambiguous
    # square maps: both layouts agree; notebook 2x2 C=1 example y*2+x
    assert codec.encode([0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], (1, 2, 2), layout="sinabs").tolist() == [0, 2, 1, 3]
    assert np.array_equal(codec.encode([1, 5], [3, 7], [2, 6], (16, 32, 32), layout="sinabs"),
                          codec.encode([1, 5], [3, 7], [2, 6], (16, 32, 32)))
    # taller than wide: gap bits, max address 487 for (2, 16, 4)
    assert codec.encode([1], [3], [15], (2, 16, 4), layout="sinabs").tolist() == [487]


def test_off_map_coordinates_raise_with_the_event_named(kernels):
    with pytest.raises(AddressError, match=r"event 2: neuron \(c=0, x=8, y=0\) is off the feature map \(C=2, H=8, W=8\)"):
        codec.encode([0, 1, 0], [0, 1, 8], [0, 0, 0], (2, 8, 8), kernels=kernels)
    with pytest.raises(AddressError, match="event 0"):
        codec.encode([-1], [0], [0], (2, 8, 8), kernels=kernels)
    with pytest.raises(AddressError, match="address 1024 is off"):
        codec.decode([1024], (2, 8, 8), kernels=kernels)


def test_drop_invalid_counts_instead_of_raising(kernels):
    a, keep = codec.encode([0, 5, 1], [0, 0, 9], [0, 0, 0], (2, 8, 8), drop_invalid=True, kernels=kernels)
    assert keep.tolist() == [True, False, False] and a.tolist() == [0]


def test_one_wide_dimensions_use_zero_bits():
    lay = AddressLayout.for_shape((1, 1, 1))
    assert (lay.cbits, lay.xbits, lay.ybits) == (0, 0, 0)
    assert codec.encode([0], [0], [0], (1, 1, 1)).tolist() == [0]
    assert codec.encode([0, 0], [0, 0], [0, 1], (1, 2, 1)).tolist() == [0, 1]


def test_eighteen_bit_limit():
    AddressLayout.for_shape((4, 64, 64))  # 2 + 6 + 6 = 14
    AddressLayout.for_shape((64, 64, 64))  # 18 bits: allowed
    with pytest.raises(AddressError, match="needs 19 address bits"):
        AddressLayout.for_shape((128, 64, 64))


def test_type_errors_are_clear():
    with pytest.raises(TypeError, match="integers"):
        codec.encode([0.5], [0], [0], (2, 8, 8))
    with pytest.raises(ValueError, match="equal length"):
        codec.encode([0, 1], [0], [0], (2, 8, 8))


def test_read_requests_and_vmem_image_round_trip():
    shape = (3, 4, 5)
    req = codec.read_requests_for_core(2, shape)
    assert len(req) == 60 and (req["core"] == 2).all()
    vals = np.zeros(60, codec.NEURON_VALUE_DTYPE)
    vals["core"], vals["address"] = 2, req["address"]
    c, x, y = codec.decode(req["address"], shape)
    vals["vmem"] = c * 100 + y * 10 + x
    img = codec.vmem_image(vals, shape)
    C, H, W = np.meshgrid(np.arange(3), np.arange(4), np.arange(5), indexing="ij")
    assert np.array_equal(img, C * 100 + H * 10 + W)
    states = codec.decode_neuron_values(vals, shape)
    assert set(states.dtype.names) >= {"c", "x", "y", "vmem"}
    with pytest.raises(ValueError, match="ambiguous"):
        codec.read_requests_for_core(0, (2, 4, 16), layout="sinabs")


def test_xytp_conversion():
    ev = np.zeros(3, dtype=[("x", "i8"), ("y", "i8"), ("t", "i8"), ("p", "i8")])  # NMNIST style
    ev["x"], ev["y"], ev["t"], ev["p"] = [1, 2, 3], [4, 5, 6], [10, 20, 30], [0, 1, 1]
    sp = codec.from_xytp(ev, core=3, t_offset=5)
    assert sp["core"].tolist() == [3, 3, 3] and sp["c"].tolist() == [0, 1, 1] and sp["t"].tolist() == [15, 25, 35]
    back = codec.to_xytp(sp)
    assert back.dtype == codec.XYTP_DTYPE and back["p"].tolist() == [0, 1, 1]
    assert np.array_equal(codec.from_xytp(back, core=3), sp)  # the round trip keeps every field
    ms = codec.from_xytp(ev, t_scale=1000.0)
    assert ms["t"].tolist() == [10000, 20000, 30000]
    ev["x"][0] = -1
    with pytest.raises(ValueError, match=r"x\[0\] = -1"):
        codec.from_xytp(ev)
