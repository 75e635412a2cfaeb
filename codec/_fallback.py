"""Pure-numpy implementation of the codec kernels (same results as ``_ccodec``).

Selected at import when the Cython extension is missing or ``SPECKSTREAM_PUREPYTHON=1`` (the
msgpack-python convention). Every function mirrors a function of ``_ccodec`` one to one.
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
