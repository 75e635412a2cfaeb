
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec import EventFileError, EventFileReader, EventFileWriter, TruncatedFileWarning


def _spikes(n, seed=0):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=np.sort(rng.integers(0, 10 ** 9, n)), core=rng.integers(0, 9, n),
                        c=rng.integers(0, 16, n), x=rng.integers(0, 64, n), y=rng.integers(0, 64, n))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 5000), chunk=st.integers(1, 2000))
def test_round_trip_any_chunking(tmp_path_factory, n, chunk):
    path = tmp_path_factory.mktemp("f") / "rec.spk"
    sp = _spikes(n)
    nv = np.zeros(3, codec.NEURON_VALUE_DTYPE)
    nv["vmem"] = [-3, 0, 7]
    with EventFileWriter(path, meta={"rate_hz": 10.5, "who": "test"}, chunk_events=chunk) as w:
        w.append(sp[: n // 2])
        w.append(nv)
        w.append(sp[n // 2:])
    with EventFileReader(path) as r:
        assert r.meta == {"rate_hz": 10.5, "who": "test"}
        assert np.array_equal(r.read("spike"), sp)
        assert np.array_equal(r.read("neuron_value"), nv)
        assert not r.truncated


def test_append_while_recording(tmp_path):
    path = tmp_path / "rec.spk"
    a, b = _spikes(100, 1), _spikes(50, 2)
    with EventFileWriter(path) as w:
        w.append(a)
    with EventFileWriter(path, mode="a") as w:
        w.append(b)
    with EventFileReader(path) as r:
        assert np.array_equal(r.read(), np.concatenate([a, b]))
        assert r.scan() == path.stat().st_size and r.counts == {"spike": 150}


def test_truncated_last_chunk_keeps_the_intact_ones(tmp_path):
    path = tmp_path / "rec.spk"
    sp = _spikes(1000)
    with EventFileWriter(path, chunk_events=300) as w:
        w.append(sp)
    data = path.read_bytes()
    path.write_bytes(data[:-100])  # cut into the 4th chunk
    with pytest.warns(TruncatedFileWarning, match="truncated"):
        with EventFileReader(path) as r:
            got = r.read()
            assert r.truncated
    assert np.array_equal(got, sp[:900])
    # appending to a truncated recording cuts the broken chunk first
    with pytest.warns(TruncatedFileWarning):
        with EventFileWriter(path, mode="a") as w:
            w.append(sp[900:])
    with EventFileReader(path) as r:
        assert np.array_equal(r.read(), sp)


def test_corrupt_payload_fails_its_checksum(tmp_path):
    path = tmp_path / "rec.spk"
    with EventFileWriter(path) as w:
        w.append(_spikes(100))
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match="checksum"):
        EventFileReader(path).read()


@pytest.mark.parametrize("blob, msg", [
    (b"", "empty file"),
    (b"\x00\x01garbage", "not a speckstream event file"),
    (b"\x81\xa6format\xa3xyz", "missing format marker"),
])
def test_garbage_files_get_clear_errors(tmp_path, blob, msg):
    path = tmp_path / "bad.spk"
    path.write_bytes(blob)
    with pytest.raises(EventFileError, match=msg):
        EventFileReader(path)


def test_corrupt_chunk_header_and_oversize_claims(tmp_path):
    path = tmp_path / "rec.spk"
    with EventFileWriter(path) as w:
        w.append(_spikes(10))
    data = bytearray(path.read_bytes())
    start = len(data) - 10 * 16 - 26  # chunk prefix: 0x94, 0xa5 'spike', u64, u32, bin32 = 2+5+9+5+5
    assert data[start] == 0x94
    bad = bytearray(data)
    bad[start + 8: start + 16] = (10 ** 12).to_bytes(8, "big")  # claim 1e12 events
    path.write_bytes(bytes(bad))
    with pytest.raises(EventFileError, match="do not match"):
        EventFileReader(path).read()
    bad = bytearray(data)
    bad[start] = 0x95
    path.write_bytes(bytes(bad))
    with pytest.raises(EventFileError, match="corrupt chunk header"):
        EventFileReader(path).read()


def test_npy_readers(tmp_path):
    sp = _spikes(20)
    np.save(tmp_path / "sp.npy", sp)
    assert np.array_equal(codec.read_spikes(tmp_path / "sp.npy"), sp)
    xytp = codec.to_xytp(sp)
    np.save(tmp_path / "xytp.npy", xytp)
    got = codec.read_spikes(tmp_path / "xytp.npy", core=4)
    assert (got["core"] == 4).all() and np.array_equal(got["x"], sp["x"])
    np.save(tmp_path / "obj.npy", np.array([object()], dtype=object))
    with pytest.raises(EventFileError, match="not a readable .npy"):
        codec.read_spikes(tmp_path / "obj.npy")
    with pytest.raises(EventFileError, match="unknown event file type"):
        codec.read_spikes(_touch(tmp_path / "a.txt"))


def _touch(p):
    p.write_text("x")
    return p


def write_aedat4(path, n=500, size=(34, 34), seed=0):
    """An AEDAT4 file written with faery (the test suite's own recording)."""
    faery = pytest.importorskip("faery")
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=faery.EVENTS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 100_000, n))
    ev["x"], ev["y"], ev["on"] = rng.integers(0, size[0], n), rng.integers(0, size[1], n), rng.integers(0, 2, n)
    faery.events_stream_from_array(ev, dimensions=size).to_file(str(path), zero_t0=False)
    return ev


def test_aedat4_reader(tmp_path):
    pytest.importorskip("aedat")
    path = tmp_path / "rec.aedat4"
    ev = write_aedat4(path)
    got = codec.read_spikes(path, core=2)
    assert len(got) == len(ev)
    assert np.array_equal(got["t"], ev["t"]) and np.array_equal(got["x"], ev["x"])
    assert np.array_equal(got["c"], ev["on"].astype(np.uint16)) and (got["core"] == 2).all()
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(EventFileError, match="corrupt aedat4"):
        codec.read_spikes(path)


def test_evt3_raw_through_faery(tmp_path):
    faery = pytest.importorskip("faery")
    rng = np.random.default_rng(5)
    ev = np.zeros(300, dtype=faery.EVENTS_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 50_000, 300))
    ev["x"], ev["y"], ev["on"] = rng.integers(0, 64, 300), rng.integers(0, 48, 300), rng.integers(0, 2, 300)
    path = tmp_path / "rec.raw"
    faery.events_stream_from_array(ev, dimensions=(64, 48)).to_file(str(path), zero_t0=False)
    got = codec.read_spikes(path, core=1)
    assert np.array_equal(got["x"], ev["x"]) and np.array_equal(got["t"], ev["t"]) and (got["core"] == 1).all()
