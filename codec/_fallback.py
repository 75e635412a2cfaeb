"""Pure-numpy / pure-Python implementation of the codec kernels: a complete twin of ``_ccodec`` (the same
five functions, names and results).

Selected at import when the Cython extension is missing or ``SPECKSTREAM_PUREPYTHON=1`` (the
msgpack-python convention); callers who need a specific set pass ``kernels=``.
"""
from __future__ import annotations

import numpy as np


def encode_into(c, x, y, out, C, H, W, xshift, yshift, keep):
    """Encode (c, x, y) into ``out`` (uint32). See ``_ccodec.encode_into`` for the contract."""
    c = np.asarray(c).astype(np.int64, copy=False)
    x = np.asarray(x).astype(np.int64, copy=False)
    y = np.asarray(y).astype(np.int64, copy=False)
    ok = (c >= 0) & (c < C) & (x >= 0) & (x < W) & (y >= 0) & (y < H)
    if keep is None:
        if not ok.all():
            return -(int(np.argmin(ok)) + 1)
        out[:] = (y << yshift) | (x << xshift) | c
        return c.shape[0]
    keep[:] = ok
    n = int(ok.sum())
    out[:n] = (y[ok] << yshift) | (x[ok] << xshift) | c[ok]
    return n


def decode_into(addr, c, x, y, C, H, W, xshift, yshift, keep):
    """Decode uint32 addresses into (c, x, y) uint16 arrays. See ``_ccodec.decode_into``."""
    a = np.asarray(addr).astype(np.int64, copy=False)
    cb = xshift
    xb = max((W - 1).bit_length(), 0)
    cc = a & ((1 << cb) - 1)
    xx = (a >> xshift) & ((1 << xb) - 1)
    yy = a >> yshift
    # An address decodes validly only if re-encoding it gives it back (no stray bits) and it is on the map.
    ok = (cc < C) & (xx < W) & (yy < H) & (((yy << yshift) | (xx << xshift) | cc) == a) & (a >= 0)
    if keep is None:
        if not ok.all():
            return -(int(np.argmin(ok)) + 1)
        c[:] = cc
        x[:] = xx
        y[:] = yy
        return a.shape[0]
    keep[:] = ok
    n = int(ok.sum())
    c[:n] = cc[ok]
    x[:n] = xx[ok]
    y[:n] = yy[ok]
    return n


def split_samna_events(events, spike_cls, nv_cls, readout_cls, dvs_cls, host_t, sp, nv, ro, dv):
    """Sort samna output objects by class into the four arrays; returns (spikes, nv, readout, dvs, unknown)."""
    ns = nn = nr = nd = nu = 0
    for ev in events:
        cls = type(ev)
        if cls is spike_cls:
            sp[ns] = (ev.timestamp, ev.layer, ev.feature, ev.x, ev.y)
            ns += 1
        elif cls is nv_cls:
            nv[nn] = (host_t, ev.layer, ev.neuron_state, ev.address)
            nn += 1
        elif cls is readout_cls:
            ro["t"][nr], ro["value"][nr] = host_t, ev.value  # named fields: decode_readout_fields
            nr += 1
        elif cls is dvs_cls:
            dv[nd] = (ev.timestamp, ev.x, ev.y, 1 if ev.p else 0)
            nd += 1
        else:
            nu += 1
    return ns, nn, nr, nd, nu


def spikes_to_samna(spikes, spike_cls, t_offset=0):
    """Spike array -> list of ``spike_cls`` objects (timestamps minus ``t_offset``, 32-bit µs)."""
    out = []
    for i, (t, core, c, x, y) in enumerate(spikes.tolist()):
        if t < t_offset or t - t_offset > 0xFFFFFFFF:
            raise OverflowError(f"spike {i}: timestamp {t} µs minus offset {t_offset} "
                                "does not fit the chip's 32-bit µs field")
        ev = spike_cls()
        ev.layer, ev.feature, ev.x, ev.y, ev.timestamp = core, c, x, y, t - t_offset
        out.append(ev)
    return out


def requests_to_samna(requests, read_cls):
    """ReadNeuronValue request array -> list of ``read_cls`` objects."""
    out = []
    for core, address in requests.tolist():
        ev = read_cls()
        ev.layer, ev.address = core, address
        out.append(ev)
    return out
