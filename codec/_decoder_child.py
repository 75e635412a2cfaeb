"""The isolated decoder process of ``isolated.py``, run as a script (``python _decoder_child.py``), never imported.

It needs numpy and the decoder only (not speckstream): a request is one JSON line on stdin,
``{"path": ..., "fmt": "aedat4" | a faery format}``; the answer is a run of frames on the process's original
stdout, each ``type (1 byte) | header length (uint32 LE) | JSON header | payload``:

* ``C`` a chunk of events: header ``{"descr": numpy dtype descr, "n": events}``, payload ``n`` records;
* ``D`` done: the file was read to its end;
* ``E`` an error the decoder raised (pyo3 panics too): header ``{"message": ...}``.

The process then waits for the next request; it exits at the end of stdin (its parent closed it or died).
Anything the decoders print goes to stderr, never into the frames.
"""
import json
import os
import signal
import struct
import sys

import numpy as np

_LEN = struct.Struct("<I")


def _frame(out, kind: bytes, header: dict, payload=b"") -> None:
    head = json.dumps(header).encode()
    out.write(kind + _LEN.pack(len(head)) + head)
    if len(payload):
        out.write(payload)


def _chunks(path: str, fmt: str):
    if fmt == "aedat4":
        import aedat

        for packet in aedat.Decoder(path):
            if "events" in packet:
                yield np.asarray(packet["events"])
    else:
        import faery

        for chunk in faery.events_stream_from_file(path):
            yield np.asarray(chunk)


def _serve(out, path: str, fmt: str) -> None:
    try:
        for arr in _chunks(path, fmt):
            arr = np.ascontiguousarray(arr)
            descr = np.lib.format.dtype_to_descr(arr.dtype)
            _frame(out, b"C", {"descr": descr, "n": int(arr.shape[0])}, arr.data.cast("B"))
        _frame(out, b"D", {})
    except BaseException as e:  # noqa: BLE001 - pyo3 panics are BaseExceptions; each becomes one message
        _frame(out, b"E", {"message": f"{type(e).__name__}: {e}"})
    out.flush()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle (it ends this process)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the decoders' own prints go to stderr, not into the frames
    sys.stdout = sys.stderr
    for line in sys.stdin.buffer:
        request = json.loads(line)
        _serve(out, request["path"], request["fmt"])


if __name__ == "__main__":
    main()
