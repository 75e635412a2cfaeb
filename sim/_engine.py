"""Selects the simulation engine at import, as codec/_impl.py selects the codec kernels: the Cython core
(``_ccore``, with its ``PackedState``) or, when the extension is not built, the pure-Python reference."""
from __future__ import annotations

try:
    from ._ccore import Core, PackedState

    ENGINE = "cython"
except ImportError:  # extension not built (SPECKSTREAM_NO_EXT=1): the reference engine only
    Core = PackedState = None  # type: ignore[assignment,misc]
    ENGINE = "reference"

__all__ = ["Core", "PackedState", "ENGINE"]
