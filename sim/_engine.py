"""Selects the simulation engine at import, as codec/_impl.py selects the codec kernels: the Cython core
(``_ccore``, with its ``PackedState``) or, when the extension is not built, the pure-Python reference."""
from __future__ import annotations

#: every inner-loop name (SimOptions.kernel), built or not, slowest first; _ccore.ISAS holds the same names
#: (a test checks)
ALL_KERNELS = ("portable", "avx2", "avx512")

try:
    from ._ccore import BEST_ISA, ISAS, Core, PackedState

    ENGINE = "cython"
    #: inner loops of the Cython engine this CPU runs, slowest first (SimOptions.kernel); the last is the default
    KERNELS: tuple[str, ...] = tuple(k for k in ALL_KERNELS if ISAS[k] <= ISAS[BEST_ISA])
except ImportError:  # extension not built (SPECKSTREAM_NO_EXT=1): the reference engine only
    Core = PackedState = None  # type: ignore[assignment,misc]
    ENGINE = "reference"
    KERNELS = ()

__all__ = ["Core", "PackedState", "ENGINE", "KERNELS", "ALL_KERNELS"]
