"""Discretization to chip integers, as sinabs 3.1.3 ``discretize.py`` does it (CHIP.md section 2).

Computed in float32 like sinabs' torch code, so the same layer gives the same integers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WEIGHT_BITS = 8
STATE_BITS = 16


def scale_for(t: np.ndarray, bits: int) -> np.float32:
    """The largest factor that maps ``t``'s extreme value onto the signed ``bits`` range exactly
    (127 / -128, 32767 / -32768); +inf for an all-zero tensor (no constraint)."""
    t = np.asarray(t, dtype=np.float32)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    tmin, tmax = np.float32(t.min()), np.float32(t.max())
    ratio = abs(lo / hi)
    with np.errstate(divide="ignore"):
        if abs(tmin) <= abs(tmax) * ratio:
            return np.float32(abs(np.float32(hi) / tmax))
        return np.float32(abs(np.float32(lo) / tmin))


@dataclass
class Discretized:
    weights: np.ndarray  # int8
    biases: np.ndarray  # int16 (8-bit range, as sinabs)
    threshold_high: int
    threshold_low: int
    initial_vmem: np.ndarray | None  # int16 or None
    scale: float
    scales: dict  # the candidate factors: weight, bias, threshold, state
    warnings: list[str]


def discretize_layer(weights: np.ndarray, biases: np.ndarray | None, threshold: float,
                     min_v_mem: float | None, v_mem: np.ndarray | None, *, name: str = "") -> Discretized:
    """One common factor for weights, biases, thresholds and initial state of a core (CHIP.md 2.2)."""
    w = np.asarray(weights, dtype=np.float32)
    b = np.zeros(w.shape[0], np.float32) if biases is None else np.asarray(biases, dtype=np.float32)
    low = np.float32(-(2 ** 15)) if min_v_mem is None else np.float32(min_v_mem)
    scales = {"weight": scale_for(w, WEIGHT_BITS), "bias": scale_for(b, WEIGHT_BITS),
              "threshold": scale_for(np.array([low, threshold], np.float32), STATE_BITS)}
    if v_mem is not None:
        scales["state"] = scale_for(v_mem, STATE_BITS)
    s = min(scales.values())
    if not math.isfinite(s):
        s = np.float32(1.0)
    notes: list[str] = []
    wq = np.round(w * s)
    bq = np.round(b * s)
    thr = int(np.round(np.float32(threshold) * s))
    lowq = int(np.round(low * s))
    vq = None if v_mem is None else np.round(np.asarray(v_mem, np.float32) * s)
    if min_v_mem is None and scales["threshold"] < min(scales["weight"], scales["bias"]):
        notes.append(
            f"layer '{name}': min_v_mem is None, so the threshold range [-32768, {threshold}] limits the "
            f"discretization factor to {float(scales['threshold']):.4g} (weights alone would allow "
            f"{float(min(scales['weight'], scales['bias'])):.4g}); set min_v_mem (e.g. -1.0, as "
            "sinabs.from_torch does) to keep weight precision")
    nz = np.count_nonzero(w)
    lost = nz - np.count_nonzero(wq)
    if nz and lost / nz > 0.5:
        notes.append(f"layer '{name}': quantization zeroes {lost} of {nz} non-zero weights "
                     f"({100 * lost / nz:.0f}%), factor {float(s):.4g}")
    if lowq == 0:
        notes.append(f"layer '{name}': min_v_mem {min_v_mem} discretizes to 0, which the chip mishandles "
                     "(threshold_low = 0 hardware bug); using -1")
        lowq = -1
    return Discretized(
        weights=np.clip(wq, -128, 127).astype(np.int8), biases=np.clip(bq, -128, 127).astype(np.int16),
        threshold_high=int(np.clip(thr, -32768, 32767)), threshold_low=int(np.clip(lowq, -32768, 32767)),
        initial_vmem=None if vq is None else np.clip(vq, -32768, 32767).astype(np.int16),
        scale=float(s), scales={k: float(v) for k, v in scales.items()}, warnings=notes)
