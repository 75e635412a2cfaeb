"""Neuron address layouts for ReadNeuronValue / NeuronValue / WriteNeuronValue.

For a core's output map (C, H, W): ``cb, xb, yb = ceil(log2 C), ceil(log2 W), ceil(log2 H)`` (0 bits for
a size of 1), at most 18 bits in all. Channel occupies the low ``cb`` bits, x the next ``xb``.

* ``"packed"`` (default): ``addr = y << (cb + xb) | x << cb | c`` - non-overlapping fields.
* ``"sinabs"``: bit for bit what sinabs 3.1.3 ``io.calculate_neuron_address`` does: y is shifted by
  ``cb + yb``. Identical to packed on maps with ``yb == xb``; on wider-than-tall maps the fields
  overlap and addresses collide (encode still works, decode is ambiguous).

Which layout the silicon uses is not public (docs/chip-notes.md, "Neuron addresses"); both are offered and the
choice is explicit wherever it matters.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import AddressError, CodecError

__all__ = ['MAX_ADDRESS_BITS', 'LAYOUTS', 'bits_for', 'AddressLayout']

MAX_ADDRESS_BITS = 18
LAYOUTS = ("packed", "sinabs")


def _dimension(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not float(v).is_integer():
        raise CodecError(f"feature map size {name} = {v!r} is not a whole number")
    if v < 1:
        raise CodecError(f"feature map size {name} = {v!r} must be at least 1")
    return int(v)


def bits_for(n: int) -> int:
    """ceil(log2(n)) for n >= 1 (0 for n == 1)."""
    if n < 1:
        raise ValueError(f"dimension must be >= 1, got {n}")
    return (int(n) - 1).bit_length()


@dataclass(frozen=True)
class AddressLayout:
    """Bit layout of neuron addresses for one feature map ``shape = (C, H, W)``."""

    C: int
    H: int
    W: int
    layout: str = "packed"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown address layout {self.layout!r}; choose one of {LAYOUTS}")
        total = self.cbits + self.xbits + self.ybits
        if total > MAX_ADDRESS_BITS:
            raise AddressError(
                f"feature map (C={self.C}, H={self.H}, W={self.W}) needs {total} address bits "
                f"(c {self.cbits} + x {self.xbits} + y {self.ybits}); the chip has {MAX_ADDRESS_BITS}"
            )

    @classmethod
    def for_shape(cls, shape, layout: str = "packed") -> "AddressLayout":
        """The layout of a (C, H, W) map; each size a whole number >= 1 (2.7 is refused, never truncated)."""
        dims = tuple(shape)
        if len(dims) != 3:
            raise CodecError(f"a feature map shape is (C, H, W), got {shape!r}")
        C, H, W = (_dimension(n, v) for n, v in zip("CHW", dims))
        return cls(C, H, W, layout)

    @property
    def cbits(self) -> int:
        return bits_for(self.C)

    @property
    def xbits(self) -> int:
        return bits_for(self.W)

    @property
    def ybits(self) -> int:
        return bits_for(self.H)

    @property
    def xshift(self) -> int:
        return self.cbits

    @property
    def yshift(self) -> int:
        # sinabs shifts y by cb + *yb* (see module docstring).
        return self.cbits + (self.ybits if self.layout == "sinabs" else self.xbits)

    @property
    def is_ambiguous(self) -> bool:
        """True when decode cannot invert encode (sinabs layout on a wider-than-tall map)."""
        return self.layout == "sinabs" and self.ybits < self.xbits

    @property
    def n_neurons(self) -> int:
        return self.C * self.H * self.W
