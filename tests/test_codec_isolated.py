"""The isolated decoder process (codec/isolated.py): started once and reused from file to file, replaced after a
crash, a timeout or a reader that stopped early; one per reader in flight; never re-running the user's script."""
from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from speckstream import codec
from speckstream.codec import isolated
from speckstream.codec.errors import EventFileError

from test_codec_files import write_aedat4

pytest.importorskip("aedat")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    files = []
    for i in range(6):
        p = d / f"r{i}.aedat4"
        files.append((p, write_aedat4(p, n=300 + 50 * i, size=(64, 48), seed=i)))
    big = d / "big.aedat4"
    return files, (big, write_aedat4(big, n=20_000, size=(64, 48), seed=9))


@pytest.fixture
def started(monkeypatch):
    """Every decoder process started during the test (none idle at its start)."""
    isolated._close_idle()
    made = []
    real = isolated._Decoder

    def make():
        made.append(real())
        return made[-1]

    monkeypatch.setattr(isolated, "_Decoder", make)
    return made


def _pids():
    return [dec.proc.pid for dec in isolated._IDLE]


def _check(path, ev, core=0):
    got = codec.read_spikes(path, core=core)
    assert np.array_equal(got["t"], ev["t"]) and np.array_equal(got["x"], ev["x"])
    assert np.array_equal(got["y"], ev["y"]) and np.array_equal(got["c"], ev["on"].astype(np.uint16))


def test_one_decoder_process_serves_file_after_file(recordings):
    files, _ = recordings
    _check(*files[0])
    first = _pids()
    assert len(first) == 1
    for _ in range(3):
        for p, ev in files:
            _check(p, ev)
    assert _pids() == first


def test_a_crash_is_an_error_naming_the_file_and_the_next_file_reads(recordings, tmp_path, monkeypatch):
    files, _ = recordings
    crash = tmp_path / "crash.py"
    crash.write_text("import os, sys\nsys.stdin.buffer.readline()\nos.abort()\n")
    monkeypatch.setattr(isolated, "_CHILD", crash)
    isolated._close_idle()
    with pytest.raises(EventFileError, match=r"r0.aedat4: the aedat4 decoder crashed on r0.aedat4 \(exit code -6\)"):
        codec.read_spikes(files[0][0])
    assert not isolated._IDLE
    monkeypatch.undo()
    _check(*files[1])


def test_a_decoder_that_hangs_is_ended_after_the_timeout(recordings, tmp_path, monkeypatch, started):
    files, _ = recordings
    hang = tmp_path / "hang.py"
    hang.write_text("import sys, time\nsys.stdin.buffer.readline()\ntime.sleep(60)\n")
    monkeypatch.setattr(isolated, "_CHILD", hang)
    isolated._close_idle()
    reader = isolated.iter_isolated(files[0][0], "aedat4", chunk_timeout_s=0.3)
    with pytest.raises(EventFileError, match="produced nothing for 0.3 s"):
        next(reader)
    assert not isolated._IDLE and len(started) == 1 and started[0].proc.poll() is not None


def test_a_reader_that_stops_early_does_not_leave_its_chunks_to_the_next(recordings, started):
    files, (big, big_ev) = recordings
    chunks = codec.iter_spikes(big)
    first = next(chunks)
    assert 0 < len(first) < len(big_ev)
    chunks.close()  # the decoder still had chunks to send: it is ended, not reused
    assert started and started[-1].proc.poll() is not None
    _check(*files[2])
    _check(big, big_ev)


def test_interleaved_readers_each_have_their_own_process(recordings):
    files, (big, big_ev) = recordings
    a, b = codec.iter_spikes(big), codec.iter_spikes(files[3][0])
    got_a, got_b = [next(a)], list(b)
    got_a += list(a)
    assert np.array_equal(np.concatenate(got_a)["t"], big_ev["t"])
    assert np.array_equal(np.concatenate(got_b)["t"], files[3][1]["t"])
    assert len(isolated._IDLE) <= isolated.MAX_IDLE


def _read_count(path):
    return len(codec.read_spikes(path))


def test_a_forked_process_starts_its_own_decoder(recordings):
    files, _ = recordings
    _check(*files[0])  # this process has an idle decoder; the fork must not use its pipes
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.map(_read_count, [p for p, _ in files]) == [len(ev) for _, ev in files]
    _check(*files[4])


def test_a_script_without_a_main_guard_reads_aedat4_once(recordings, tmp_path):
    """The decoder process must not re-import the user's script (multiprocessing's spawn did: every read
    re-ran an unguarded script's top level in the child, and failed)."""
    files, _ = recordings
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(f"""
        print("top level ran")
        from speckstream import codec
        print(len(codec.read_spikes({str(files[5][0])!r})))
        print(len(codec.read_spikes({str(files[5][0])!r})))
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split().count("ran") == 1 and r.stdout.split()[-2:] == [str(len(files[5][1]))] * 2


def test_a_reader_left_mid_file_until_the_interpreter_exits_does_not_abort_it(tmp_path):
    """A generator of an AEDAT4 file left after its last chunk (as the frames of an error's traceback keep one
    alive until exit) used to abort the interpreter at shutdown (exit 134, "could not acquire lock for
    BufferedReader ... possibly due to daemon threads"): its decoder was closed while the reader thread sat in
    read()."""
    script = tmp_path / "held.py"
    script.write_text(
        "import sys, time\n"
        "from speckstream.codec import isolated\n"
        "n = len(list(isolated.iter_isolated(sys.argv[1], 'aedat4')))\n"
        "g = isolated.iter_isolated(sys.argv[1], 'aedat4')\n"
        "for _ in range(n):\n"
        "    next(g)\n"
        "time.sleep(0.3)\n"
        "print('left mid-file')\n")
    real = Path(__file__).parent / "data" / "recordings" / "davis346_clip.aedat4"  # 17 chunks: several frames
    r = subprocess.run([sys.executable, str(script), str(real)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Fatal" not in r.stderr, r.stderr[-2000:]
    assert "left mid-file" in r.stdout
