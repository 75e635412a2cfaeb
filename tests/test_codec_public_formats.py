"""Event files of public data sets: Prophesee / Chronocam .dat (N-CARS' Event2d, the automotive sets' CD) and
N-MNIST .bin, read with numpy; checked on a real N-MNIST sample, on .dat files written with N-CARS' exact header
and record layout, and on broken and random bytes (one EventFileError, never a crash or silent garbage)."""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import speckstream as ss
from speckstream.codec.errors import EventFileError, TruncatedFileWarning
from speckstream.codec.fixed_records import dat_header, read_dat, read_nmnist_bin

DATA = Path(__file__).parent / "data" / "recordings"
# the header of N-CARS' sample files as they are (a C++-mangled type name, no geometry lines)
NCARS_HEADER = (b"% Data file containing N9Chronocam7Event2dE events.\n% Version 2\n"
                b"% Date 2017-10-31 11:29:21\n")


def _dat(path: Path, t, x, y, p, *, header: bytes = NCARS_HEADER, ev_type: int = 0, tail: bytes = b"") -> Path:
    w = (np.asarray(x, np.uint32) | (np.asarray(y, np.uint32) << 14) | (np.asarray(p, np.uint32) << 28))
    rec = np.empty((len(w), 2), "<u4")
    rec[:, 0], rec[:, 1] = np.asarray(t, np.uint32), w
    path.write_bytes(header + bytes([ev_type, 8]) + rec.tobytes() + tail)
    return path


def test_an_ncars_event2d_file_is_read_with_its_own_header(tmp_path):
    # the first records of N-CARS' sample: (t, x, y, p) = (0,25,8,0) (35,67,35,0) (152,56,27,1) (202,74,39,1)
    t, x, y, p = [0, 35, 152, 202], [25, 67, 56, 74], [8, 35, 27, 39], [0, 0, 1, 1]
    path = _dat(tmp_path / "obj_004396_td.dat", t, x, y, p)
    fields, ev_type, offset = dat_header(path)
    assert fields["Version"] == "2" and ev_type == 0 and offset == len(NCARS_HEADER) + 2 == 93
    ev = read_dat(path)
    assert ev["t"].tolist() == t and ev["x"].tolist() == x and ev["y"].tolist() == y and ev["p"].tolist() == p
    spikes = ss.codec.read_spikes(path, core=3)
    assert spikes["t"].tolist() == t and set(spikes["core"]) == {3} and spikes["c"].tolist() == p
    assert ss.codec.files.count_spikes(path) == 4


def test_a_cd_dat_file_with_geometry_lines_is_read_and_checked_against_it(tmp_path):
    head = b"% Height 240\n% Version 2\n% Width 304\n% date 2019-04-18 10:00:00\n"
    ev = read_dat(_dat(tmp_path / "cd.dat", [5, 9], [303, 0], [239, 1], [1, 0], header=head, ev_type=0x0C))
    assert ev["x"].tolist() == [303, 0] and ev["y"].tolist() == [239, 1]
    with pytest.raises(EventFileError, match="record 1 has x=304, off the width 304"):
        read_dat(_dat(tmp_path / "off.dat", [5, 9], [3, 304], [1, 1], [1, 0], header=head, ev_type=0x0C))


def test_dat_timestamps_that_wrap_after_71_minutes_are_unwrapped(tmp_path):
    t = [2**32 - 20, 2**32 - 1, 3, 50]
    ev = read_dat(_dat(tmp_path / "wrap.dat", t, [1] * 4, [1] * 4, [0] * 4))
    assert ev["t"].tolist() == [2**32 - 20, 2**32 - 1, 2**32 + 3, 2**32 + 50]


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_bytes(b"\x00\x08" + b"\x00" * 16), "no '%' header lines"),
    (lambda p: p.write_bytes(NCARS_HEADER), "without the event type and size"),
    (lambda p: p.write_bytes(NCARS_HEADER + bytes([0x0E, 8]) + b"\x00" * 8), "type 0x0e is not supported"),
    (lambda p: p.write_bytes(NCARS_HEADER + bytes([0, 12]) + b"\x00" * 12), "event size 12"),
    (lambda p: p.write_bytes(b"% Version 2" + b"x" * 70000), "does not end"),
    (lambda p: _dat(p, [1, 2], [1, 1], [1, 1], [0, 2]), "record 1 has polarity 2"),
])
def test_broken_dat_files_raise_one_event_file_error_naming_the_problem(tmp_path, make, match):
    path = tmp_path / "broken.dat"
    make(path)
    with pytest.raises(EventFileError, match=match) as e:
        ss.codec.read_spikes(path)
    assert str(path) in str(e.value)


def test_a_truncated_dat_file_keeps_its_whole_records_and_warns(tmp_path):
    path = _dat(tmp_path / "cut.dat", [1, 2, 3], [1, 2, 3], [0, 0, 0], [1, 1, 0], tail=b"\x07\x00\x00")
    with pytest.warns(TruncatedFileWarning, match="cut off after 3 of 8 bytes.*3 whole records"):
        ev = read_dat(path)
    assert ev["x"].tolist() == [1, 2, 3]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200), with_header=st.booleans())
def test_random_bytes_never_crash_the_dat_and_bin_readers(tmp_path, body, with_header):
    for name, reader in (("r.dat", read_dat), ("r.bin", read_nmnist_bin)):
        path = tmp_path / name
        path.write_bytes((NCARS_HEADER + b"\x00\x08" if with_header and name == "r.dat" else b"") + body)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedFileWarning)
            try:
                ev = reader(path)
            except EventFileError:
                continue
        assert ev.dtype.names == ("x", "y", "t", "p") and (len(ev) == 0 or ev["p"].max() <= 1)


def test_the_real_nmnist_sample_decodes_as_tonic_reads_it():
    ev = read_nmnist_bin(DATA / "nmnist_sample.bin")
    assert len(ev) == 4325 and ev["x"].max() == 33 and ev["y"].max() == 33
    assert ev[:3].tolist() == [(7, 15, 654, 1), (19, 18, 2999, 0), (21, 17, 3017, 0)]
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"][-1] == 311175
    tonic_io = pytest.importorskip("tonic.io")
    ref = tonic_io.read_mnist_file(str(DATA / "nmnist_sample.bin"),
                                   dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
    assert all(np.array_equal(ref[k], ev[k]) for k in "xytp")


def test_nmnist_overflow_records_extend_the_23_bit_timestamp(tmp_path):
    def rec(x, y, p, t):  # x, y, then polarity and a 23-bit timestamp in 3 big-endian bytes
        return bytes([x, y]) + struct.pack(">I", p << 23 | t)[1:]
    path = tmp_path / "o.bin"
    path.write_bytes(rec(1, 2, 1, 8_388_600) + rec(0, 240, 0, 0) + rec(3, 4, 0, 5))
    ev = read_nmnist_bin(path)
    assert ev.tolist() == [(1, 2, 8_388_600, 1), (3, 4, 2**23 + 5, 0)]
