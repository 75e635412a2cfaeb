"""Latency percentiles and result records shared by the runtime's uses."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["percentiles"]


def percentiles(x, ps=(50, 90, 99)) -> dict:
    """``{"p50": .., "p90": .., "p99": .., "max": .., "n": ..}`` of ``x`` (NaN when empty)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {f"p{p}": math.nan for p in ps} | {"max": math.nan, "n": 0}
    return {f"p{p}": float(np.percentile(x, p)) for p in ps} | {"max": float(x.max()), "n": int(x.size)}
