"""Selects the codec implementation at import: the Cython extension, or the numpy fallback when the
extension is missing or ``SPECKSTREAM_PUREPYTHON=1`` is set (msgpack-python's convention)."""
from __future__ import annotations

import os

FORCED_FALLBACK = os.environ.get("SPECKSTREAM_PUREPYTHON", "") not in ("", "0")

if FORCED_FALLBACK:
    from . import _fallback as kernels

    IMPLEMENTATION = "numpy"
else:
    try:
        from . import _ccodec as kernels  # type: ignore[no-redef]

        IMPLEMENTATION = "cython"
    except ImportError:  # not built (SPECKSTREAM_NO_EXT=1 or a source checkout without build_ext)
        from . import _fallback as kernels  # type: ignore[no-redef]

        IMPLEMENTATION = "numpy"

from . import _fallback as fallback_kernels  # noqa: E402 - always importable, for tests and benchmarks

__all__ = ["kernels", "fallback_kernels", "IMPLEMENTATION"]
