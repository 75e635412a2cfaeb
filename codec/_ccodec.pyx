# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython hot loops of the codec: neuron addresses and samna event-object conversion.

Each kernel has a numpy twin in ``_fallback.py`` (addresses) or ``samna_events.py`` (event objects) with
identical results; the property tests check Cython == fallback == a per-event reference.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint8_t, uint16_t, int16_t, uint32_t, int64_t, uint64_t

from speckstream.codec.events import NV_RECORD, SPIKE_RECORD

from _records cimport nv_rec, spike_rec

cnp.import_array()

ctypedef fused coord_t:
    uint8_t
    uint16_t
    int16_t
    int
    unsigned int
    long long
    unsigned long long


cdef inline bint _coords_ok(long long cc, long long xx, long long yy, long long C, long long H,
                            long long W) noexcept nogil:
    # unsigned compare folds the < 0 test into the upper bound
    return (<unsigned long long>cc < <unsigned long long>C and <unsigned long long>xx < <unsigned long long>W
            and <unsigned long long>yy < <unsigned long long>H)


cdef Py_ssize_t _encode_contig(const coord_t* c, const coord_t* x, const coord_t* y, uint32_t* out,
                               Py_ssize_t n, long long C, long long H, long long W, int xshift,
                               int yshift) noexcept nogil:
    """Branch-free pass (vectorisable); the first bad index is searched only if one exists."""
    cdef Py_ssize_t i
    cdef unsigned long long bad = 0
    cdef long long cc, xx, yy
    for i in range(n):
        cc = <long long>c[i]; xx = <long long>x[i]; yy = <long long>y[i]
        bad |= ((<unsigned long long>cc >= <unsigned long long>C) | (<unsigned long long>xx >= <unsigned long long>W)
                | (<unsigned long long>yy >= <unsigned long long>H))
        out[i] = <uint32_t>((yy << yshift) | (xx << xshift) | cc)
    if not bad:
        return n
    for i in range(n):
        if not _coords_ok(<long long>c[i], <long long>x[i], <long long>y[i], C, H, W):
            return -(i + 1)
    return n


def encode_into(coord_t[:] c, coord_t[:] x, coord_t[:] y, uint32_t[:] out,
                long long C, long long H, long long W, int xshift, int yshift, uint8_t[:] keep=None):
    """Encode (c, x, y) into ``out``.

    With ``keep`` None: returns n on success, or -(i+1) for the first off-map event i (out partly
    written). With ``keep``: valid events are written compacted to the front of ``out``, ``keep[i]`` says
    whether event i was kept, and the number kept is returned.
    """
    cdef Py_ssize_t n = c.shape[0], i, k = 0, result
    cdef long long cc, xx, yy
    cdef bint ok
    if x.shape[0] != n or y.shape[0] != n or out.shape[0] < n:
        raise ValueError("c, x, y and out must have the same length")
    if keep is not None and keep.shape[0] < n:
        raise ValueError("keep is shorter than the input")
    if n == 0:
        return 0
    with nogil:
        if keep is None and c.strides[0] == sizeof(coord_t) and x.strides[0] == sizeof(coord_t) \
                and y.strides[0] == sizeof(coord_t) and out.strides[0] == 4:
            result = _encode_contig(&c[0], &x[0], &y[0], &out[0], n, C, H, W, xshift, yshift)
        elif keep is None:
            result = n
            for i in range(n):
                cc = <long long>c[i]; xx = <long long>x[i]; yy = <long long>y[i]
                if not _coords_ok(cc, xx, yy, C, H, W):
                    result = -(i + 1)
                    break
                out[i] = <uint32_t>((yy << yshift) | (xx << xshift) | cc)
        else:
            for i in range(n):
                cc = <long long>c[i]; xx = <long long>x[i]; yy = <long long>y[i]
                ok = _coords_ok(cc, xx, yy, C, H, W)
                keep[i] = ok
                if ok:
                    out[k] = <uint32_t>((yy << yshift) | (xx << xshift) | cc)
                    k += 1
            result = k
    return result


cdef Py_ssize_t _decode_contig(const uint32_t* addr, uint16_t* c, uint16_t* x, uint16_t* y, Py_ssize_t n,
                               uint32_t C, uint32_t H, uint32_t W, int xshift, int yshift,
                               uint32_t xmask) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint32_t a, cc, xx, yy, bad = 0
    cdef uint32_t cmask = (1u << xshift) - 1
    for i in range(n):
        a = addr[i]
        cc = a & cmask
        xx = (a >> xshift) & xmask
        yy = a >> yshift
        bad |= (cc >= C) | (xx >= W) | (yy >= H) | (((yy << yshift) | (xx << xshift) | cc) != a)
        c[i] = <uint16_t>cc; x[i] = <uint16_t>xx; y[i] = <uint16_t>yy
    if not bad:
        return n
    for i in range(n):
        a = addr[i]
        cc = a & cmask
        xx = (a >> xshift) & xmask
        yy = a >> yshift
        if cc >= C or xx >= W or yy >= H or ((yy << yshift) | (xx << xshift) | cc) != a:
            return -(i + 1)
    return n


def decode_into(const uint32_t[:] addr, uint16_t[:] c, uint16_t[:] x, uint16_t[:] y,
                long long C, long long H, long long W, int xshift, int yshift, uint8_t[:] keep=None):
    """Decode addresses into (c, x, y); same return contract as :func:`encode_into`.

    An address is valid when its fields are on the map and it has no stray bits (re-encoding gives it back).
    """
    cdef Py_ssize_t n = addr.shape[0], i, k = 0, result
    cdef uint32_t a, cc, xx, yy
    cdef uint32_t cmask = (1u << xshift) - 1
    cdef int xbits = 0
    cdef uint32_t xmask
    cdef bint ok
    while (1 << xbits) < W:
        xbits += 1
    xmask = (1u << xbits) - 1
    if yshift >= 32:
        raise ValueError("address layout wider than 32 bits")
    if c.shape[0] < n or x.shape[0] < n or y.shape[0] < n:
        raise ValueError("output arrays are shorter than addr")
    if keep is not None and keep.shape[0] < n:
        raise ValueError("keep is shorter than the input")
    if n == 0:
        return 0
    with nogil:
        if keep is None and addr.strides[0] == 4 and c.strides[0] == 2 and x.strides[0] == 2 \
                and y.strides[0] == 2:
            result = _decode_contig(&addr[0], &c[0], &x[0], &y[0], n, <uint32_t>C, <uint32_t>H, <uint32_t>W,
                                    xshift, yshift, xmask)
        else:
            for i in range(n):
                a = addr[i]
                cc = a & cmask
                xx = (a >> xshift) & xmask
                yy = a >> yshift
                ok = cc < C and xx < W and yy < H and ((yy << yshift) | (xx << xshift) | cc) == a
                if keep is None:
                    if not ok:
                        k = -(i + 1)
                        break
                    c[i] = <uint16_t>cc; x[i] = <uint16_t>xx; y[i] = <uint16_t>yy
                    k += 1
                else:
                    keep[i] = ok
                    if ok:
                        c[k] = <uint16_t>cc; x[k] = <uint16_t>xx; y[k] = <uint16_t>yy
                        k += 1
            result = k
    return result


# ---------------------------------------------------------------------------------------------
# samna event objects <-> arrays. The loops are typed; attribute access on the objects is what it is.

def split_samna_events(list events, spike_cls, nv_cls, readout_cls, dvs_cls, uint64_t host_t,
                       spike_out, nv_out, readout_out, dvs_out):
    """Sort a list of samna output events into four preallocated arrays (each len(events) long).

    Returns (n_spike, n_nv, n_readout, n_dvs, n_unknown). NeuronValue and ReadoutValue carry no timestamp
    on the chip and get ``host_t`` (µs).
    """
    cdef spike_rec[:] sp = spike_out.view(np.uint8).view(dtype=SPIKE_RECORD)
    cdef nv_rec[:] nv = nv_out.view(np.uint8).view(dtype=NV_RECORD)
    cdef uint64_t[:] ro_t = readout_out["t"]
    cdef uint32_t[:] ro_v = readout_out["value"]
    cdef uint64_t[:] dv_t = dvs_out["t"]
    cdef uint16_t[:] dv_x = dvs_out["x"]
    cdef uint16_t[:] dv_y = dvs_out["y"]
    cdef uint8_t[:] dv_p = dvs_out["p"]
    cdef Py_ssize_t ns = 0, nn = 0, nr = 0, nd = 0, nu = 0
    cdef object ev, cls
    for ev in events:
        cls = type(ev)
        if cls is spike_cls:
            sp[ns].t = ev.timestamp
            sp[ns].core = ev.layer
            sp[ns]._pad = 0
            sp[ns].c = ev.feature
            sp[ns].x = ev.x
            sp[ns].y = ev.y
            ns += 1
        elif cls is nv_cls:
            nv[nn].t = host_t
            nv[nn].core = ev.layer
            nv[nn]._pad = 0
            nv[nn].vmem = ev.neuron_state
            nv[nn].address = ev.address
            nn += 1
        elif cls is readout_cls:
            ro_t[nr] = host_t
            ro_v[nr] = ev.value
            nr += 1
        elif cls is dvs_cls:
            dv_t[nd] = ev.timestamp
            dv_x[nd] = ev.x
            dv_y[nd] = ev.y
            dv_p[nd] = 1 if ev.p else 0
            nd += 1
        else:
            nu += 1
    return ns, nn, nr, nd, nu


def spikes_to_samna(spikes, spike_cls, uint64_t t_offset=0):
    """Build a list of samna ``Spike`` objects from a spike array; timestamps are shifted by
    ``-t_offset`` and must fit the chip's 32-bit µs field."""
    cdef spike_rec[:] sp = spikes.view(np.uint8).view(dtype=SPIKE_RECORD)
    cdef Py_ssize_t i, n = sp.shape[0]
    cdef uint64_t t
    cdef list out = [None] * n
    cdef object ev
    for i in range(n):
        t = sp[i].t - t_offset
        if sp[i].t < t_offset or t > 0xFFFFFFFFu:
            raise OverflowError(f"spike {i}: timestamp {sp[i].t} µs minus offset {t_offset} "
                                "does not fit the chip's 32-bit µs field")
        ev = spike_cls()
        ev.layer = sp[i].core
        ev.feature = sp[i].c
        ev.x = sp[i].x
        ev.y = sp[i].y
        ev.timestamp = t
        out[i] = ev
    return out


def requests_to_samna(requests, read_cls):
    """Build a list of samna ``ReadNeuronValue`` objects from a read-request array."""
    cdef uint8_t[:] core = requests["core"]
    cdef uint32_t[:] address = requests["address"]
    cdef Py_ssize_t i, n = core.shape[0]
    cdef list out = [None] * n
    cdef object ev
    for i in range(n):
        ev = read_cls()
        ev.layer = core[i]
        ev.address = address[i]
        out[i] = ev
    return out



