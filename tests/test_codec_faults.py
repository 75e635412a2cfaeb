"""Event files and values that are broken on purpose: each bug from the reliability issue reproduced, then a
fuzz suite that mutates valid files of every format and reads them through every public reader."""
from __future__ import annotations

import json
import signal
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speckstream import codec
from speckstream.codec.errors import AddressError, CorruptChunkWarning, EventFileError, TruncatedFileWarning
from speckstream.codec.spk import EventFileReader, EventFileWriter

from test_codec_files import write_aedat4


def sp(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return codec.spikes(t=np.sort(rng.integers(0, 10**6, n)), core=rng.integers(0, 9, n), c=rng.integers(0, 4, n),
                        x=rng.integers(0, 64, n), y=rng.integers(0, 64, n))


def test_read_write_read_round_trip_keeps_spike_dtype(tmp_path):
    codec.write_spk(tmp_path / "a.spk", sp())
    got = codec.read_spikes(tmp_path / "a.spk")
    assert got.dtype == codec.SPIKE_DTYPE
    codec.write_spk(tmp_path / "b.spk", got)  # used to fail: a packed 15-byte dtype came back
    assert np.array_equal(codec.read_spikes(tmp_path / "b.spk"), sp())


def _header_end(path: Path) -> int:
    up = msgpack.Unpacker(raw=False)
    up.feed(path.read_bytes()[:1 << 20])
    up.unpack()
    return up.tell()


def test_a_bit_flip_in_the_header_is_caught_not_a_retyped_field(tmp_path):
    p = tmp_path / "a.spk"
    codec.write_spk(p, sp())
    data = bytearray(p.read_bytes())
    i = data.index(b"<u2")
    data[i] = ord(">")
    p.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match="header fails its checksum"):
        codec.read_spikes(p)


def _raw_file(path, header: dict, chunks: bytes = b"") -> None:
    path.write_bytes(msgpack.packb(header, use_bin_type=True) + chunks)


def test_bad_headers_are_event_file_errors(tmp_path):
    base = {"format": "speckstream-events", "version": 1}
    _raw_file(tmp_path / "k.spk", {**base, "kinds": [1, 2]})
    with pytest.raises(EventFileError, match="not a map"):
        codec.read_spikes(tmp_path / "k.spk")
    # a zero-size custom kind with a chunk claiming 2^62 events: refused at once, not a hang
    from speckstream.codec.spk import _chunk_prefix

    _raw_file(tmp_path / "z.spk", {**base, "kinds": {"blob": [["a", "|V0"]]}}, _chunk_prefix("blob", 1 << 62, 0, 0))
    with pytest.raises(EventFileError):
        with EventFileReader(tmp_path / "z.spk") as r:
            list(r.chunks())


def test_interleaved_lazy_reads_lose_no_chunk(tmp_path):
    p = tmp_path / "a.spk"
    with EventFileWriter(p, chunk_events=100) as w:
        w.append(sp(1000))
    with EventFileReader(p) as r:
        a, b = r.chunks("spike"), r.chunks("spike")
        got_a, got_b = [], []
        for x, y in zip(a, b):
            got_a.append(x)
            got_b.append(y)
        assert len(got_a) == len(got_b) == 10
        first = next(r.chunks("spike"))
        assert len(r.read("spike")) == 1000 and len(first[1]) == 100


def _corrupt_payload(p: Path, which: int) -> int:
    """Flip a payload byte of chunk ``which`` (framing intact); returns that chunk's offset."""
    data = bytearray(p.read_bytes())
    pos = _header_end(p)
    for _ in range(which):
        klen = data[pos + 1] & 0x1F
        nbytes = int.from_bytes(data[pos + 2 + klen + 15: pos + 2 + klen + 19], "big")
        pos += 2 + klen + 19 + nbytes
    klen = data[pos + 1] & 0x1F
    data[pos + 2 + klen + 19 + 3] ^= 0xFF
    p.write_bytes(bytes(data))
    return pos


def test_a_corrupt_chunk_fails_by_default_and_is_skipped_on_request(tmp_path):
    p = tmp_path / "a.spk"
    events = sp(1000)
    with EventFileWriter(p, chunk_events=100) as w:
        w.append(events)
    at = _corrupt_payload(p, 3)
    with pytest.raises(EventFileError, match=f"chunk at byte {at} .* fails its checksum"):
        codec.read_spikes(p)
    with pytest.warns(CorruptChunkWarning, match=f"skipped 1 corrupt chunk\\(s\\), 100 events lost \\(at bytes {at}\\)"):
        got = codec.read_spikes(p, on_error="skip")
    assert np.array_equal(got, np.concatenate([events[:300], events[400:]]))
    with EventFileReader(p, on_error="skip") as r, pytest.warns(CorruptChunkWarning):
        assert len(r.read("spike")) == 900 and r.skipped == [(at, "spike", 100)]


def test_the_writer_checks_before_writing_anything(tmp_path):
    with pytest.raises(ValueError, match="chunk_events"):
        EventFileWriter(tmp_path / "a.spk", chunk_events=0)
    with pytest.raises(ValueError, match="meta cannot be stored"):
        EventFileWriter(tmp_path / "b.spk", meta={"x": object()})
    assert not (tmp_path / "a.spk").exists() and not (tmp_path / "b.spk").exists()
    with EventFileWriter(tmp_path / "c.spk") as w:
        with pytest.raises(ValueError, match="1-D"):
            w.append(np.zeros((2, 3), codec.SPIKE_DTYPE))
    assert len(codec.read_spikes(tmp_path / "c.spk")) == 0


@pytest.mark.parametrize("field, value, words", [("x", 3.7, "x\\[0\\] = 3.7 is not an integer"),
                                                  ("t", float("nan"), "t\\[0\\] = nan is not an integer"),
                                                  ("c", -1, "c\\[0\\] = -1 does not fit"),
                                                  ("y", 70000, "y\\[0\\] = 70000 does not fit")])
def test_values_are_never_truncated_or_wrapped(field, value, words):
    kw = dict(t=0, core=0, c=0, x=0, y=0)
    kw[field] = [value]
    with pytest.raises(ValueError, match=words):
        codec.spikes(**kw)
    with pytest.raises(ValueError, match="vmem"):
        codec.write_requests(0, [0], [0], [0], np.array([40000], np.int32), (1, 2, 2))
    x = np.zeros(2, codec.TONIC_DTYPE.descr and [("x", "f8"), ("y", "i2"), ("t", "f8"), ("p", "?")])
    x["x"] = [1.0, 2.5]
    with pytest.raises(ValueError, match="x\\[1\\] = 2.5"):
        codec.from_xytp(x)


def test_decode_refuses_the_ambiguous_sinabs_layout():
    with pytest.raises(AddressError, match="ambiguous"):
        codec.decode([3], (2, 4, 16), layout="sinabs")


def test_npy_edge_cases(tmp_path):
    np.save(tmp_path / "zero_d.npy", np.array(5))
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "two_d.npy", np.zeros((3, 2), codec.SPIKE_DTYPE))
    for name in ("zero_d", "empty", "two_d"):
        with pytest.raises(EventFileError, match=f"{name}.npy"):
            codec.read_spikes(tmp_path / f"{name}.npy")
    big = sp(50).astype(codec.SPIKE_DTYPE.newbyteorder(">"))
    np.save(tmp_path / "big.npy", big)
    assert np.array_equal(codec.read_spikes(tmp_path / "big.npy"), sp(50))


# ------------------------------------------------------------------------------ fuzz: every format, every reader
@contextmanager
def bounded(seconds: int = 20, megabytes: int = 512):
    def boom(*_):
        raise TimeoutError("reader hung")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak < megabytes * 2**20, f"reader allocated {peak / 2**20:.0f} MiB"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _valid(fmt: str, d: Path) -> tuple[Path, int]:
    p = d / f"valid.{fmt}"
    if fmt == "spk":
        with EventFileWriter(p, chunk_events=64) as w:
            w.append(sp(500))
        return p, 500
    if fmt == "npy":
        np.save(p, codec.to_xytp(sp(300)))
        return p, 300
    pytest.importorskip("faery")
    if fmt == "aedat4":
        pytest.importorskip("aedat")
    return p, len(write_aedat4(p, n=400, size=(64, 48)))


def _mutate(data: bytes, draw) -> bytes:
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            b = b[:i]
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif b:
            b[i:i + 8] = bytes(min(8, len(b) - i))
    return bytes(b)


def _read_all(p: Path, fmt: str):
    """Every public reader; returns what read_spikes gave."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedFileWarning)
        warnings.simplefilter("ignore", CorruptChunkWarning)
        got = codec.read_spikes(p)
        if fmt == "spk":
            with EventFileReader(p) as r:
                r.scan()
                list(r.chunks())
                r.read("spike")
        return got


@pytest.mark.parametrize("fmt, examples", [("spk", 150), ("npy", 100), ("aedat4", 25), ("raw", 25)])
def test_fuzz_mutated_files_give_only_documented_errors(fmt, examples, tmp_path_factory):
    d = tmp_path_factory.mktemp(fmt)
    valid, n = _valid(fmt, d)
    data = valid.read_bytes()

    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.data())
    def run(dd):
        p = d / f"mut.{fmt}"
        p.write_bytes(_mutate(data, dd.draw))
        with bounded():
            try:
                got = _read_all(p, fmt)
            except EventFileError:
                return
            assert got.dtype == codec.SPIKE_DTYPE and len(got) <= 10 * n + 1000
        if fmt == "spk":  # whatever chunks are intact are still readable with on_error="skip"
            with bounded(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    codec.read_spikes(p, on_error="skip")
                except EventFileError:
                    pass

    run()


def test_skip_keeps_every_intact_chunk_of_a_file_with_random_corrupt_chunks(tmp_path):
    p = tmp_path / "a.spk"
    events = sp(2000)
    with EventFileWriter(p, chunk_events=100) as w:
        w.append(events)
    bad = [2, 7, 11, 19]
    for k in bad:
        _corrupt_payload(p, k)
    with pytest.warns(CorruptChunkWarning, match="skipped 4"):
        got = codec.read_spikes(p, on_error="skip")
    keep = np.concatenate([events[k * 100:(k + 1) * 100] for k in range(20) if k not in bad])
    assert np.array_equal(got, keep)
    json.dumps(str(p))  # path names stay printable
