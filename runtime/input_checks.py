"""What a session accepts as input, checked whole before anything is queued: addresses on a configured core's
input map (or the DVS stage's sensor), time order, and the chip's 32-bit stopwatch range. Pure functions of
the applied configuration: the session and every use (replay, closed_loop) call the same ones."""
from __future__ import annotations

import numpy as np

from ..codec import events as ev
from ..codec.errors import AddressError
from ..codec.inputs import check_dvs_events, is_tonic, to_input
from ..compiler.config import ChipConfig
from .errors import DeviceError
from .options import InputKind
from .timebase import WRAP

__all__ = ["input_shapes", "checked_spikes", "checked_dvs", "prepared", "check_times"]


def input_shapes(cfg: ChipConfig) -> np.ndarray:
    """Per core id (0..255): (C, H, W) of its input map; 0 for a core the configuration does not use."""
    shapes = np.zeros((256, 3), np.int64)
    for c, cc in cfg.cores.items():
        shapes[c] = cc.input_shape
    return shapes


def checked_spikes(cfg: ChipConfig | None, shapes: np.ndarray | None, spikes) -> np.ndarray:
    """SPIKE_DTYPE events whose addresses lie on a configured core's input map (else AddressError naming the
    index in the caller's array) and whose timestamps fit the chip's stopwatch."""
    spikes = ev.as_events(spikes, "spike")
    if spikes.ndim != 1:
        raise ValueError(f"spikes must be a 1-D array, got shape {spikes.shape}")
    if shapes is None:
        raise DeviceError("apply a configuration before sending spikes")
    if len(spikes):
        shp = shapes[spikes["core"]]
        bad = (shp[:, 0] == 0) | (spikes["c"] >= shp[:, 0]) | (spikes["y"] >= shp[:, 1]) | \
              (spikes["x"] >= shp[:, 2])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            e = spikes[i]
            where = (f"the input map {tuple(int(v) for v in shp[i])} (C, H, W) of core {e['core']}"
                     if shp[i, 0] else f"core {e['core']}, which is not configured (cores: "
                     f"{sorted(cfg.cores) if cfg else []})")
            raise AddressError(f"spike {i} of this send (core={e['core']}, c={e['c']}, x={e['x']}, y={e['y']}) "
                               f"is off {where}; nothing of this send was queued")
        check_times(spikes["t"], "spike")
    return spikes


def checked_dvs(cfg: ChipConfig | None, events) -> np.ndarray:
    """DVS_EVENT_DTYPE events on the sensor of the configuration's DVS stage, in time order."""
    events = ev.as_events(events, "dvs")
    if events.ndim != 1:
        raise ValueError(f"DVS events must be a 1-D array, got shape {events.shape}")
    if cfg is None:
        raise DeviceError("apply a configuration before sending DVS events")
    dvs = cfg.dvs
    if dvs is None or dvs.input_size is None:
        raise DeviceError("the applied configuration has no DVS stage: send spikes to its input cores "
                          f"{cfg.input_cores} instead (kind='spike'), or compile with dvs=True")
    if len(events):
        check_dvs_events(events, dvs, where=" of this send", after="; nothing of this send was queued")
        check_times(events["t"], "DVS event")
    return events


def prepared(cfg: ChipConfig | None, shapes: np.ndarray | None, events, kind: InputKind = "spike"
             ) -> tuple[InputKind, np.ndarray]:
    """What ``send`` queues for ``events``: ("spike" | "dvs", checked array). tonic-style x/y/t/p arrays go to
    the input core(s), polarity as channel, or into the DVS stage when the configuration has one."""
    if kind == "spike" and is_tonic(np.asarray(events)):
        if cfg is None:
            raise DeviceError("apply a configuration before sending events")
        kind, events = to_input(cfg, events, whole_stream=False)  # a live chunk may be short
    if kind == "spike":
        return "spike", checked_spikes(cfg, shapes, events)
    if kind == "dvs":
        return "dvs", checked_dvs(cfg, events)
    raise ValueError(f"kind must be 'spike' or 'dvs', got {kind!r}")


def check_times(t: np.ndarray, noun: str) -> None:
    """Input timestamps in order (a device releases input in order of arrival at its timestamp) and within
    the chip's 32-bit stopwatch."""
    ev.check_time_order(t, noun=noun, where=" of this send", advice="send events in time order")
    if int(t.max()) >= WRAP:
        raise DeviceError(f"input timestamp {int(t.max())} µs is past the chip's 32-bit stopwatch range (71.6 min); "
                          "call reset_time() between segments")
