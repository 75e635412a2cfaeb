"""What the chip takes as input from a user's event array or file, for one configuration.

One rule for every entry point (``send``, ``replay``, ``simulate``, ``evaluate``, the CLI), on a devkit as on
the simulator: chip spikes (SPIKE_DTYPE fields, any layout) pass as they are; tonic-style (x, y, t, p; t in
µs) arrays - a camera's events - become spikes into the input core(s), polarity -> channel, or DvsEvents when
the configuration has a DVS stage. tonic events that fall off the network's input (or DvsEvents off the
DVS stage's sensor) are refused with the transforms that fix them named: cropping and downsampling belong to
tonic, not to a copy of it here. Whether a source is a camera recording is answered once, here
(:func:`is_camera`), from the array's fields or the file format's reader (:data:`.files.READERS`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compiler.config import ChipConfig, DVSConfig
from .convert import dvs_from_xytp, spikes_from_array, warn_if_short
from .errors import AddressError, CodecError
from .events import DVS_EVENT_DTYPE, check_time_order, has_spike_fields
from .files import READERS

__all__ = ["to_input", "is_tonic", "is_camera", "CAMERA_SUFFIXES", "check_on_input", "check_dvs_events"]

#: file formats that hold a camera's x/y/t/p events (``.npy`` holds either: its fields say)
CAMERA_SUFFIXES = tuple(s for s, r in READERS.items() if r.camera)


def is_tonic(events: np.ndarray) -> bool:
    """A structured array with x, y, t (or timestamp) fields that is not already chip spikes."""
    names = events.dtype.names or ()
    return not has_spike_fields(events.dtype) and "x" in names and "y" in names and \
        ("t" in names or "timestamp" in names)


def is_camera(source) -> bool:
    """A camera recording (x/y/t/p events on a sensor) rather than chip input spikes (core/c/x/y/t): an array
    by its fields, a ``.npy`` file by its array's fields, any other file by its format."""
    if isinstance(source, np.ndarray):
        return not has_spike_fields(source.dtype)
    suffix = Path(source).suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(source, mmap_mode="r", allow_pickle=False)
        except Exception:
            return False  # the reader names what is wrong with the file
        return not has_spike_fields(arr.dtype)
    return suffix in CAMERA_SUFFIXES


def check_dvs_events(events: np.ndarray, dvs: DVSConfig, *, where: str = "", after: str = "") -> np.ndarray:
    """DvsEvents as DVS_EVENT_DTYPE, refusing coordinates off the sensor (naming the first one; ``where``
    follows its index in the message, ``after`` ends it)."""
    ev = np.asarray(events, dtype=DVS_EVENT_DTYPE)
    H0, W0 = dvs.input_size
    bad = (ev["x"] >= W0) | (ev["y"] >= H0) | (ev["p"] > 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        fix = ("a DVS event's polarity is 0 or 1 (tonic.transforms.MergePolarities() merges more)"
               if ev["p"][i] > 1 else
               f"a bigger recording must be cropped or downsampled to the chip's sensor first, with tonic's "
               f"transforms: tonic.transforms.CenterCrop(sensor_size, size=({W0}, {H0})) or "
               f"tonic.transforms.Downsample(sensor_size=sensor_size, target_size=({W0}, {H0}))")
        raise AddressError(f"DVS event {i}{where} (x={ev['x'][i]}, y={ev['y'][i]}, p={ev['p'][i]}) is off the "
                           f"{H0}x{W0} (H x W) sensor of the DVS stage: {fix}{after}")
    return ev


def check_on_input(config: ChipConfig, spikes: np.ndarray, core: int) -> None:
    """tonic events converted to spikes for ``core``: each must land on its input map (else AddressError
    naming the first event off it, the sensor size it implies and tonic's transforms that crop/downsample)."""
    if not len(spikes):
        return
    C, H, W = config.core(core).input_shape
    bad = (spikes["c"] >= C) | (spikes["y"] >= H) | (spikes["x"] >= W)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    e = spikes[i]
    sensor = (int(spikes["x"].max()) + 1, int(spikes["y"].max()) + 1)
    if e["c"] >= C:
        fix = (f"its polarity {int(e['c'])} is not a channel of the input (channels 0..{C - 1}): merge polarities "
               f"with tonic.transforms.MergePolarities(), or compile the network for {int(e['c']) + 1} input "
               f"channels")
    else:
        fix = (f"the recording's sensor is at least {sensor[0]} x {sensor[1]} (W x H) but the network takes "
               f"{W} x {H}: crop or downsample first with tonic's transforms, e.g. "
               f"tonic.transforms.CenterCrop(sensor_size, size=({W}, {H})) or "
               f"tonic.transforms.Downsample(sensor_size=sensor_size, target_size=({W}, {H})), where sensor_size "
               f"is the recording's (width, height, polarities), e.g. your tonic dataset's .sensor_size "
               f"(or compile with dvs=True: the chip's DVS stage pools and crops)")
    raise AddressError(f"event {i} (x={int(e['x'])}, y={int(e['y'])}, p={int(e['c'])}) is off the input map "
                       f"(C, H, W) = {(C, H, W)} of core {core}: {fix}")


def to_input(config: ChipConfig, events: np.ndarray, *, whole_stream: bool = True) -> tuple[str, np.ndarray]:
    """Events as the chip takes them: ("spike", SPIKE_DTYPE) for a network fed at its input core(s), or
    ("dvs", DVS_EVENT_DTYPE) for a configuration with a DVS stage. tonic-style (x, y, t, p) arrays are
    converted (p -> channel, -1/+1 as 0/1; t in whole µs) and checked against the input map; timestamps must
    not decrease. ``whole_stream`` (a sample, a recording; not a live chunk): a tonic stream spanning less than
    1 ms is warned about (TimestampWarning: its timestamps are probably not µs)."""
    ev = np.asarray(events)
    if ev.dtype.names is None:
        raise CodecError(f"events must be a structured array (SPIKE_DTYPE or tonic-style x, y, t, p); got dtype "
                         f"{ev.dtype}")
    if ev.ndim != 1:
        raise CodecError(f"events must be a 1-D array, got shape {ev.shape}")
    tonic = not has_spike_fields(ev.dtype) and ev.dtype != DVS_EVENT_DTYPE
    if config.dvs is not None:
        out = ev if ev.dtype == DVS_EVENT_DTYPE else dvs_from_xytp(ev)
        kind = "dvs"
    elif has_spike_fields(ev.dtype):  # spike arrays in any layout / byte order
        out, kind = spikes_from_array(ev), "spike"
    else:
        if not config.input_cores:
            raise CodecError("this configuration has no input core")
        out, kind = spikes_from_array(ev, core=config.input_cores[0]), "spike"
        for c in config.input_cores:
            check_on_input(config, out, c)
        if len(config.input_cores) > 1:  # every entry layer gets the input
            out = np.concatenate([_with_core(out, c) for c in config.input_cores])
            out = out[np.argsort(out["t"], kind="stable")]
    check_time_order(out["t"], advice="events must be in time order (sort with np.sort(events, order='t'))")
    if tonic and whole_stream:
        warn_if_short(out["t"], stacklevel=3)
    return kind, out


def _with_core(spikes: np.ndarray, core: int) -> np.ndarray:
    s = spikes.copy()
    s["core"] = core
    return s
