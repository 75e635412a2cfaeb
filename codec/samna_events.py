"""samna event objects <-> event arrays, written against the names in shared/spec/SAMNA.md section 3.

``event_module`` is a chip's samna event namespace (``samna.speck2f.event``) or any object with classes
``Spike``, ``NeuronValue``, ``ReadoutValue``, ``DvsEvent``, ``ReadNeuronValue`` of the same attribute
names (the tests use stand-ins). The Cython kernels do the loops; a pure-Python twin gives the same result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _impl
from .events import DVS_EVENT_DTYPE, NEURON_VALUE_DTYPE, READ_REQUEST_DTYPE, READOUT_DTYPE, SPIKE_DTYPE

__all__ = ['DecodedOutput', 'split_output', 'spikes_to_samna', 'read_requests_to_samna',
           'write_requests_to_samna']


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


def split_output(events: list, event_module, host_t: int = 0, *, pure_python: bool = False) -> DecodedOutput:
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
    fn = _split_python if (pure_python or _impl.IMPLEMENTATION != "cython") else _impl.kernels.split_samna_events
    ns, nn, nr, nd, nu = fn(events, *classes, host_t, sp, nv, ro, dv)
    return DecodedOutput(sp[:ns], nv[:nn], ro[:nr], dv[:nd], nu)


def _split_python(events, spike_cls, nv_cls, ro_cls, dvs_cls, host_t, sp, nv, ro, dv):
    ns = nn = nr = nd = nu = 0
    for ev in events:
        cls = type(ev)
        if cls is spike_cls:
            sp[ns] = (ev.timestamp, ev.layer, ev.feature, ev.x, ev.y)
            ns += 1
        elif cls is nv_cls:
            nv[nn] = (host_t, ev.layer, ev.neuron_state, ev.address)
            nn += 1
        elif cls is ro_cls:
            ro[nr] = (host_t, ev.value)
            nr += 1
        elif cls is dvs_cls:
            dv[nd] = (ev.timestamp, ev.x, ev.y, 1 if ev.p else 0)
            nd += 1
        else:
            nu += 1
    return ns, nn, nr, nd, nu


def spikes_to_samna(spikes: np.ndarray, event_module, t_offset: int = 0, *, pure_python: bool = False) -> list:
    """Spike array -> list of ``event_module.Spike`` (timestamps minus ``t_offset``, 32-bit µs)."""
    spikes = np.ascontiguousarray(spikes, dtype=SPIKE_DTYPE)
    cls = event_module.Spike
    if not pure_python and _impl.IMPLEMENTATION == "cython":
        return _impl.kernels.spikes_to_samna(spikes, cls, t_offset)
    out = []
    for i, (t, core, c, x, y) in enumerate(spikes.tolist()):
        if t < t_offset or t - t_offset > 0xFFFFFFFF:
            raise OverflowError(f"spike {i}: timestamp {t} µs minus offset {t_offset} "
                                "does not fit the chip's 32-bit µs field")
        ev = cls()
        ev.layer, ev.feature, ev.x, ev.y, ev.timestamp = core, c, x, y, t - t_offset
        out.append(ev)
    return out


def read_requests_to_samna(requests: np.ndarray, event_module, *, pure_python: bool = False) -> list:
    """ReadNeuronValue request array -> list of ``event_module.ReadNeuronValue``."""
    requests = np.ascontiguousarray(requests, dtype=READ_REQUEST_DTYPE)
    cls = event_module.ReadNeuronValue
    if not pure_python and _impl.IMPLEMENTATION == "cython":
        return _impl.kernels.requests_to_samna(requests, cls)
    out = []
    for core, address in requests.tolist():
        ev = cls()
        ev.layer, ev.address = core, address
        out.append(ev)
    return out


def write_requests_to_samna(requests: np.ndarray, event_module) -> list:
    """WriteNeuronValue request array -> list of ``event_module.WriteNeuronValue`` (rare; plain loop)."""
    cls = event_module.WriteNeuronValue
    out = []
    for core, address, vmem in np.asarray(requests).tolist():
        ev = cls()
        ev.layer, ev.address, ev.neuron_state = core, address, vmem
        out.append(ev)
    return out
