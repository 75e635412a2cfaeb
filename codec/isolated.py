"""Decoders that may crash, run in a separate process: a corrupt AEDAT4 file can make the Rust ``aedat`` decoder
panic twice and abort the whole process (SIGABRT, even under ``except Exception``), or raise pyo3's
PanicException (a BaseException). Reading such formats in another process turns every failure - an
exception, a panic, a crash - into one :class:`EventFileError` naming the file; this process survives.

The decoder process (``_decoder_child.py``, started with this interpreter) is kept and reused from file to
file, so its start (~0.1-0.3 s) is paid once, not per file: a data set of thousands of small recordings costs
a pipe round trip per file. A process that crashed, timed out or was left mid-file (a reader that stopped
early) is ended and replaced by a fresh one on the next read. Each reader in flight has its own process
(two interleaved readers never share one); at most ``MAX_IDLE`` wait between reads, and they exit with this
interpreter (or as soon as it dies: their stdin closes).
"""
from __future__ import annotations

import atexit
import io
import json
import os
import queue
import struct
import sys
import threading
import weakref
from pathlib import Path
from typing import Generator, cast

import numpy as np

from .errors import EventFileError

__all__ = ["iter_isolated", "MAX_IDLE"]

#: decoder processes kept waiting between reads (more are started while several readers run at once)
MAX_IDLE = 2
_CHILD = Path(__file__).with_name("_decoder_child.py")
_LEN = struct.Struct("<I")
_MAX_HEADER = 1 << 16
_QUEUED = 4  # decoded chunks read ahead of the consumer, at most (then the decoder waits: bounded memory)


class _Decoder:
    """One decoder process and the thread that reads its frames into a bounded queue."""

    def __init__(self) -> None:
        import subprocess  # here, not at import: most users of speckstream.codec never read these formats

        self.proc = subprocess.Popen([sys.executable, str(_CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     close_fds=True)
        self.replies: queue.Queue = queue.Queue(maxsize=_QUEUED)
        self.closed = threading.Event()
        self._done = False
        self._reader = threading.Thread(target=self._read_frames, daemon=True, name="speckstream-decoder-reader")
        self._reader.start()
        self.owner_pid = os.getpid()  # a forked child must not end its parent's decoders
        _LIVE.add(self)

    def _read_frames(self) -> None:
        src = cast(io.BufferedReader, self.proc.stdout)  # Popen's pipes are buffered binary files
        try:
            while True:
                head = src.read(5)
                if len(head) < 5:
                    break
                kind, (hlen,) = head[:1], _LEN.unpack(head[1:])
                if hlen > _MAX_HEADER:
                    break
                header = json.loads(src.read(hlen))
                payload = None
                if kind == b"C":
                    dtype = _dtype(header["descr"])
                    payload = np.empty(int(header["n"]), dtype)
                    if src.readinto(payload.data.cast("B")) < payload.nbytes:
                        break
                if not self._put((kind, header, payload)):
                    return
        except (OSError, ValueError):  # the pipe closed under us (the process was ended), or a garbled frame
            pass
        self._put((b"", {}, None))  # end of output: the process exited or broke the protocol

    def _put(self, item) -> bool:
        while not self.closed.is_set():
            try:
                self.replies.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def request(self, path: str, fmt: str) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps({"path": path, "fmt": fmt}).encode() + b"\n")
        stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.closed.is_set()

    def close(self) -> None:
        """End the process, then its reader thread (it sees the pipe's end), then the pipes. Idempotent. The order
        matters: a buffered pipe closed while the reader sits in read() aborts an interpreter that is shutting
        down; if the reader does not end, the pipes are left for the OS to close at exit."""
        if self._done:
            return
        self._done = True
        self.closed.set()
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except Exception:  # TimeoutExpired: a process that ignores SIGKILL for 5 s; its pipes stay open
            pass
        if threading.current_thread() is not self._reader:
            self._reader.join(2)
        if self._reader.is_alive():
            return
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


def _dtype(descr) -> np.dtype:
    """A numpy dtype descr back from JSON, which turned its tuples into lists: a field is (name, type) or
    (name, type, shape), a name may be a (title, name) pair, a type may itself be a descr."""
    if isinstance(descr, str):
        return np.dtype(descr)

    def field(f):
        name = tuple(f[0]) if isinstance(f[0], list) else f[0]
        typ = [field(g) for g in f[1]] if isinstance(f[1], list) else f[1]
        return (name, typ, tuple(f[2])) if len(f) > 2 else (name, typ)

    return np.lib.format.descr_to_dtype([field(f) for f in descr])


_LOCK = threading.Lock()
_IDLE: list[_Decoder] = []
_LIVE: "weakref.WeakSet[_Decoder]" = weakref.WeakSet()  # every decoder not yet closed


def _take() -> _Decoder:
    """An idle decoder process of this interpreter, or a new one."""
    with _LOCK:
        # after a fork, the idle processes and their pipes belong to the parent: forget them, never end them
        _IDLE[:] = [d for d in _IDLE if d.owner_pid == os.getpid()]
        while _IDLE:
            dec = _IDLE.pop()
            if dec.alive():
                return dec
            dec.close()
    try:
        return _Decoder()
    except OSError as e:
        raise EventFileError(f"could not start the isolated decoder process ({e})") from None


def _give_back(dec: _Decoder) -> None:
    with _LOCK:
        if dec.alive() and len(_IDLE) < MAX_IDLE and dec.owner_pid == os.getpid():
            _IDLE.append(dec)
            return
    dec.close()


def _close_idle() -> None:
    with _LOCK:
        idle = [d for d in _IDLE if d.owner_pid == os.getpid()]
        _IDLE.clear()
    for dec in idle:
        dec.close()


@atexit.register
def _close_all() -> None:
    """Every decoder of this interpreter, idle or held by a reader not finished (a generator an error's
    traceback keeps alive): at exit, while the reader threads can still run and see their pipes end."""
    with _LOCK:
        _IDLE.clear()  # the idle ones are live too: closed below with the rest
    for dec in list(_LIVE):
        if dec.owner_pid == os.getpid():
            dec.close()


def iter_isolated(path, fmt: str, *, chunk_timeout_s: float = 120.0) -> Generator[np.ndarray, None, None]:
    """Raw event chunks of ``path`` decoded in a separate process (``fmt``: "aedat4", or a faery format):
    numpy structured arrays as the decoder gives them (t, x, y, on)."""
    name = Path(path).name
    dec = _take()
    reusable = False
    try:
        dec.request(str(Path(path).resolve()), fmt)
        while True:
            try:
                kind, header, payload = dec.replies.get(timeout=chunk_timeout_s)
            except queue.Empty:
                raise EventFileError(f"{path}: the {fmt} decoder produced nothing for {chunk_timeout_s:g} s") from None
            if kind == b"C":
                yield payload
            elif kind == b"D":
                reusable = True
                return
            elif kind == b"E":
                reusable = True  # the decoder raised and said so: its process is fine
                raise EventFileError(f"{path}: corrupt {fmt} file ({header.get('message', '')})")
            else:
                try:
                    code = dec.proc.wait(2)
                except Exception:  # still running after closing its output (TimeoutExpired): no code to show
                    code = None
                raise EventFileError(f"{path}: the {fmt} decoder crashed on {name} (exit code {code}); the file "
                                     "is corrupt")
    except OSError as e:  # BrokenPipeError among them
        raise EventFileError(f"{path}: the isolated {fmt} decoder process failed ({e})") from None
    finally:
        if reusable:
            _give_back(dec)
        else:  # crashed, timed out, or left mid-file (its remaining chunks would come first next time)
            dec.close()
