"""Vectorised neuron-address encode / decode (see :mod:`speckstream.codec.layout` for the layouts)."""
from __future__ import annotations

from typing import Literal, overload

import numpy as np

from . import _impl
from .errors import AddressError
from .layout import AddressLayout

__all__ = ['encode', 'decode', 'encode_reference', 'decode_reference']

_CYTHON_COORD_TYPES = {np.dtype(t) for t in ("u1", "u2", "i2", "i4", "u4", "i8", "u8")}


def _layout(shape, layout) -> AddressLayout:
    if isinstance(shape, AddressLayout):
        return shape
    return AddressLayout.for_shape(shape, layout)


def _coords(c, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrs = [np.atleast_1d(np.asarray(v)) for v in (c, x, y)]
    if not (arrs[0].shape == arrs[1].shape == arrs[2].shape) or arrs[0].ndim != 1:
        raise ValueError(
            f"c, x, y must be 1-D arrays of equal length, got shapes "
            f"{arrs[0].shape}, {arrs[1].shape}, {arrs[2].shape}"
        )
    for name, a in zip("cxy", arrs):
        if a.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    dt = np.result_type(*arrs)
    if dt not in _CYTHON_COORD_TYPES:
        dt = np.dtype(np.int64)
    return tuple(a.astype(dt, copy=False) for a in arrs)  # type: ignore[return-value]


@overload
def encode(c, x, y, shape, *, layout: str = ..., drop_invalid: Literal[False] = ...,
           kernels=...) -> np.ndarray: ...
@overload
def encode(c, x, y, shape, *, layout: str = ..., drop_invalid: Literal[True],
           kernels=...) -> tuple[np.ndarray, np.ndarray]: ...


def encode(c, x, y, shape, *, layout: str = "packed", drop_invalid: bool = False, kernels=None):
    """Encode neuron coordinates of a (C, H, W) map into uint32 addresses.

    An off-map coordinate raises :class:`AddressError` naming the event and the map. With
    ``drop_invalid=True`` off-map events are dropped instead and ``(addresses, kept_mask)`` is returned.
    """
    lay = _layout(shape, layout)
    k = kernels or _impl.kernels
    c, x, y = _coords(c, x, y)
    n = c.shape[0]
    out = np.empty(n, dtype=np.uint32)
    keep = np.empty(n, dtype=np.uint8) if drop_invalid else None
    r = k.encode_into(c, x, y, out, lay.C, lay.H, lay.W, lay.xshift, lay.yshift, keep)
    if drop_invalid:
        return out[:r], keep.view(bool)  # type: ignore[union-attr]
    if r < 0:
        i = -r - 1
        raise AddressError(
            f"event {i}: neuron (c={c[i]}, x={x[i]}, y={y[i]}) is off the feature map "
            f"(C={lay.C}, H={lay.H}, W={lay.W})"
        )
    return out


def decode(addresses, shape, *, layout: str = "packed", drop_invalid: bool = False, kernels=None):
    """Decode uint32 addresses of a (C, H, W) map into ``(c, x, y)`` uint16 arrays.

    An address off the map (or with stray bits) raises :class:`AddressError`; with ``drop_invalid=True``
    such addresses are dropped and ``(c, x, y, kept_mask)`` is returned.
    """
    lay = _layout(shape, layout)
    if lay.is_ambiguous:
        raise AddressError(f"the sinabs address layout is ambiguous on the wider-than-tall map (C={lay.C}, H={lay.H}, "
                           f"W={lay.W}): addresses collide and cannot be decoded; use layout='packed'")
    k = kernels or _impl.kernels
    a = np.atleast_1d(np.asarray(addresses))
    if a.dtype.kind not in "iu":
        raise TypeError(f"addresses must be integers, got dtype {a.dtype}")
    if a.dtype != np.uint32:
        if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
            bad = int(np.flatnonzero((a < 0) | (a > 0xFFFFFFFF))[0])
            raise AddressError(f"address {bad} = {a[bad]} is not a 32-bit neuron address")
        a = a.astype(np.uint32)
    n = a.shape[0]
    c = np.empty(n, np.uint16)
    x = np.empty(n, np.uint16)
    y = np.empty(n, np.uint16)
    keep = np.empty(n, dtype=np.uint8) if drop_invalid else None
    r = k.decode_into(a, c, x, y, lay.C, lay.H, lay.W, lay.xshift, lay.yshift, keep)
    if drop_invalid:
        return c[:r], x[:r], y[:r], keep.view(bool)  # type: ignore[union-attr]
    if r < 0:
        i = -r - 1
        raise AddressError(
            f"event {i}: address {a[i]} is off the feature map (C={lay.C}, H={lay.H}, W={lay.W}, "
            f"{lay.layout} layout)"
        )
    return c, x, y


def encode_reference(c: int, x: int, y: int, shape, layout: str = "packed") -> int:
    """Per-event pure-Python reference (the style of sinabs' io helpers), for tests and benchmarks."""
    lay = _layout(shape, layout)
    if not (0 <= c < lay.C and 0 <= x < lay.W and 0 <= y < lay.H):
        raise AddressError(f"neuron (c={c}, x={x}, y={y}) is off the feature map ({lay.C}, {lay.H}, {lay.W})")
    return (y << lay.yshift) | (x << lay.xshift) | c


def decode_reference(address: int, shape, layout: str = "packed") -> tuple[int, int, int]:
    """Per-event pure-Python reference decode."""
    lay = _layout(shape, layout)
    c = address & ((1 << lay.cbits) - 1)
    x = (address >> lay.xshift) & ((1 << lay.xbits) - 1)
    y = address >> lay.yshift
    if not (c < lay.C and x < lay.W and y < lay.H) or encode_reference(c, x, y, lay) != address:
        raise AddressError(f"address {address} is off the feature map ({lay.C}, {lay.H}, {lay.W})")
    return c, x, y
