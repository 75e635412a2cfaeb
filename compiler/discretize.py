"""Discretization to chip integers, bit for bit as sinabs 3.1.3 ``discretize.py`` does it.

Everything is float32 in torch's order of operations: sinabs computes ``127 / tensor``, which torch evaluates
as ``127 * (1 / x)`` (a reciprocal, then a product), and that differs from ``127 / x`` in the last bit for
about a quarter of all x - enough to move a weight by one int8 step now and then. The tests compare this
module with sinabs' own ``discretize.py`` on 10^5 random layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["WEIGHT_BITS", "STATE_BITS", "scale_for", "Discretized", "discretize_layer"]

WEIGHT_BITS = 8
STATE_BITS = 16
F32 = np.float32


def scale_for(t: np.ndarray, bits: int) -> np.float32:
    """The largest factor that maps ``t``'s extreme value onto the signed ``bits`` range exactly
    (127 / -128, 32767 / -32768); +inf for an all-zero tensor (no constraint). sinabs'
    ``determine_discretization_scale``, float32."""
    t = np.asarray(t, dtype=F32)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    tmin, tmax = F32(t.min()), F32(t.max())
    ratio = F32(abs(lo / hi))  # torch multiplies a float32 tensor by a Python float in float32
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if abs(tmin) <= abs(tmax) * ratio:
            return F32(abs(F32(hi) * (F32(1.0) / tmax)))
        return F32(abs(F32(lo) * (F32(1.0) / tmin)))


@dataclass
class Discretized:
    weights: np.ndarray  # int8
    biases: np.ndarray  # int16 (8-bit range, as sinabs)
    threshold_high: int
    threshold_low: int
    initial_vmem: np.ndarray | None  # int16 or None
    scale: float
    scales: dict  # the candidate factors: weight, bias, threshold, state
    warnings: list[str] = field(default_factory=list)
    #: those of ``warnings`` that say the factor lost the weights (capped by the threshold range, weights zeroed):
    #: a layer refused for its zeroed weights says this itself, so the compiler leaves them out then
    scale_notes: list[str] = field(default_factory=list)
    zeroed_weights: int = 0  # non-zero float weights that became 0
    nonzero_weights: int = 0
    precision: float = 1.0  # the fraction of the largest factor used (compile's precision=)

    @property
    def all_weights_zeroed(self) -> bool:
        """Every non-zero weight rounded to 0: the core can never be driven by its inputs."""
        return self.nonzero_weights > 0 and self.zeroed_weights == self.nonzero_weights


def discretize_layer(weights: np.ndarray, biases: np.ndarray | None, threshold: float,
                     min_v_mem: float | None, v_mem: np.ndarray | None, *, v_mem_scale_from: np.ndarray | None = None,
                     name: str = "", precision: float = 1.0) -> Discretized:
    """One common factor for weights, biases, thresholds and initial state of a core: the largest that keeps
    every one of them in its integer range, as sinabs chooses it.

    ``v_mem`` is the state written to the chip; ``v_mem_scale_from`` (default ``v_mem``) is the tensor
    whose range limits the factor (sinabs uses the whole batch of states). ``precision`` (0, 1] uses that
    fraction of the factor instead (1: sinabs' choice, bit for bit); a smaller one leaves headroom and rounds
    differently, which ``ss.calibrate`` may prefer."""
    w = np.asarray(weights, dtype=F32)
    b = np.zeros(w.shape[0], F32) if biases is None else np.asarray(biases, dtype=F32)
    low = F32(-(2 ** 15)) if min_v_mem is None else F32(min_v_mem)
    scales = {"weight": scale_for(w, WEIGHT_BITS), "bias": scale_for(b, WEIGHT_BITS),
              "threshold": scale_for(np.array([low, threshold], F32), STATE_BITS)}
    if v_mem is not None:
        scales["state"] = scale_for(v_mem if v_mem_scale_from is None else v_mem_scale_from, STATE_BITS)
    s = min(scales.values())
    if not np.isfinite(s):
        s = F32(1.0)
    if precision != 1.0:
        s = F32(s * F32(precision))
    notes: list[str] = []
    scale_notes: list[str] = []
    wq = np.round(w * s)
    bq = np.round(b * s)
    thr = int(np.round(F32(threshold) * s))
    lowq = int(np.round(low * s))
    vq = None if v_mem is None else np.round(np.asarray(v_mem, F32) * s)
    if min_v_mem is None and scales["threshold"] < min(scales["weight"], scales["bias"]):
        scale_notes.append(
            f"layer '{name}': min_v_mem is None, so the threshold range [-32768, {threshold}] limits the "
            f"discretization factor to {float(scales['threshold']):.4g} (weights alone would allow "
            f"{float(min(scales['weight'], scales['bias'])):.4g}); set min_v_mem (e.g. -1.0, as "
            "sinabs.from_torch does) to keep weight precision")
    nz = int(np.count_nonzero(w))
    lost = nz - int(np.count_nonzero(wq))
    if nz and lost / nz > 0.5:
        scale_notes.append(f"layer '{name}': quantization zeroes {lost} of {nz} non-zero weights "
                           f"({100 * lost / nz:.0f}%), factor {float(s):.4g}"
                           + ("; the core can never fire - set min_v_mem (e.g. -1.0 x threshold, as sinabs.from_torch "
                              "does)" if lost == nz else ""))
    notes = scale_notes + notes
    if lowq == 0:
        notes.append(f"layer '{name}': min_v_mem {min_v_mem} discretizes to 0, which the chip mishandles "
                     "(threshold_low = 0 hardware bug); using -1")
        lowq = -1
    return Discretized(
        weights=np.clip(wq, -128, 127).astype(np.int8), biases=np.clip(bq, -128, 127).astype(np.int16),
        threshold_high=int(np.clip(thr, -32768, 32767)), threshold_low=int(np.clip(lowq, -32768, 32767)),
        initial_vmem=None if vq is None else np.clip(vq, -32768, 32767).astype(np.int16),
        scale=float(s), scales={k: float(v) for k, v in scales.items()}, warnings=notes, scale_notes=scale_notes,
        zeroed_weights=lost, nonzero_weights=nz, precision=float(precision))
