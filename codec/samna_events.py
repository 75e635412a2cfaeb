"""samna event objects <-> event arrays, written against the event names of samna's public reference and
sinabs' use of them (docs/chip-notes.md).

``event_module`` is a chip's samna event namespace (``samna.speck2f.event``) or any object with classes
``Spike``, ``NeuronValue``, ``ReadoutValue``, ``DvsEvent``, ``ReadNeuronValue`` of the same attribute
names (the tests use stand-ins). The loops are the codec kernels' (Cython, or the pure-Python twin in ``_fallback``: ``kernels=`` picks).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _impl
from .events import (DVS_EVENT_DTYPE, NEURON_VALUE_DTYPE, READ_REQUEST_DTYPE, READOUT_DTYPE, SPIKE_DTYPE,
                     decode_readout_fields)

__all__ = ['DecodedOutput', 'split_output', 'spikes_to_samna', 'read_requests_to_samna',
           'write_requests_to_samna', 'dvs_to_samna']


@dataclass
class DecodedOutput:
    """One batch of device output, split by kind. Spike/DVS timestamps are the device's (32-bit µs)."""

    spikes: np.ndarray
    neuron_values: np.ndarray
    readout: np.ndarray
    dvs: np.ndarray
    n_unknown: int = 0


def _cls(mod, name):
    return getattr(mod, name, None)


def split_output(events: list, event_module, host_t: int = 0, *, kernels=None) -> DecodedOutput:
    """Sort a list of samna output events by class into arrays; unknown classes are counted, not fatal."""
    events = list(events)
    n = len(events)
    sp = np.zeros(n, SPIKE_DTYPE)
    nv = np.zeros(n, NEURON_VALUE_DTYPE)
    ro = np.zeros(n, READOUT_DTYPE)
    dv = np.zeros(n, DVS_EVENT_DTYPE)
    classes = [_cls(event_module, k) for k in ("Spike", "NeuronValue", "ReadoutValue", "DvsEvent")]
    # None never matches type(ev): use a private sentinel class for missing names
    classes = [c if c is not None else type("_Missing", (), {}) for c in classes]
    ns, nn, nr, nd, nu = (kernels or _impl.kernels).split_samna_events(events, *classes, host_t, sp, nv, ro, dv)
    return DecodedOutput(sp[:ns], nv[:nn], decode_readout_fields(ro[:nr]), dv[:nd], nu)


def spikes_to_samna(spikes: np.ndarray, event_module, t_offset: int = 0, *, kernels=None) -> list:
    """Spike array -> list of ``event_module.Spike`` (timestamps minus ``t_offset``, 32-bit µs)."""
    spikes = np.ascontiguousarray(spikes, dtype=SPIKE_DTYPE)
    return (kernels or _impl.kernels).spikes_to_samna(spikes, event_module.Spike, t_offset)


def read_requests_to_samna(requests: np.ndarray, event_module, *, kernels=None) -> list:
    """ReadNeuronValue request array -> list of ``event_module.ReadNeuronValue``."""
    requests = np.ascontiguousarray(requests, dtype=READ_REQUEST_DTYPE)
    return (kernels or _impl.kernels).requests_to_samna(requests, event_module.ReadNeuronValue)


def write_requests_to_samna(requests: np.ndarray, event_module) -> list:
    """WriteNeuronValue request array -> list of ``event_module.WriteNeuronValue`` (rare; plain loop)."""
    cls = event_module.WriteNeuronValue
    out = []
    for core, address, vmem in np.asarray(requests).tolist():
        ev = cls()
        ev.layer, ev.address, ev.neuron_state = core, address, vmem
        out.append(ev)
    return out


def dvs_to_samna(events: np.ndarray, event_module, t_offset: int = 0) -> list:
    """DvsEvent array (DVS_EVENT_DTYPE) -> list of ``event_module.DvsEvent`` (x, y, p as bool, timestamp in
    32-bit µs minus ``t_offset``), what sinabs writes to feed a network's DVS layer from the host."""
    events = np.asarray(events, dtype=DVS_EVENT_DTYPE)
    t = events["t"].astype(np.int64) - t_offset
    if len(t) and (t.min() < 0 or t.max() > 0xFFFFFFFF):
        i = int(np.flatnonzero((t < 0) | (t > 0xFFFFFFFF))[0])
        raise OverflowError(f"DVS event {i}: timestamp {int(events['t'][i])} µs minus offset {t_offset} does not "
                            "fit the chip's 32-bit µs field")
    cls = event_module.DvsEvent
    out = []
    for tt, x, y, p in zip(t.tolist(), events["x"].tolist(), events["y"].tolist(), events["p"].tolist()):
        e = cls()
        e.x, e.y, e.p, e.timestamp = x, y, bool(p), tt
        out.append(e)
    return out
