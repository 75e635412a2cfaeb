"""Torch modules -> float32 arrays for one core layer: geometry, batch-norm folding, spiking parameters,
initial state, readout remap. Arithmetic is float32 in torch's order, as sinabs does it, so the same model
discretizes to the same integers (see :mod:`.discretize`). Every value is checked finite here, so NaN and
inf never reach the chip as zeros or a zero scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import InvalidParameterError, ShapeMismatchError, UnsupportedParameterError
from .graph import Node
from .grouping import Layer, _pair, as_map

__all__ = ["Geometry", "Spiking", "conv_geometry", "fold_bn", "spiking_params", "initial_vmem",
           "extend_for_readout", "check_finite"]

F32 = np.float32


@dataclass
class Geometry:
    weights: np.ndarray  # float32 [out, in, k, k]
    bias: np.ndarray | None  # float32 [out]
    kernel: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    out: tuple[int, int, int]


@dataclass
class Spiking:
    threshold: float
    min_v_mem: float | None
    return_to_zero: bool


def _f32(t) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t, F32)


def check_finite(what: str, module: str, **arrays) -> None:
    """Refuse NaN / inf in any of ``arrays`` (named in the message), naming the module."""
    for name, a in arrays.items():
        if a is None:
            continue
        a = np.asarray(a)
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(-1))[0])
            raise InvalidParameterError(f"{what} '{module}' has {int(bad.sum())} non-finite {name} value(s) "
                                        f"(first: {a.reshape(-1)[first]} at flat index {first}); the chip needs "
                                        "finite numbers", module)


def conv_geometry(layer: Layer) -> Geometry:
    """float32 weights [out, in, k, k] (a Linear becomes a conv over its whole pre-flatten input map),
    bias, kernel, stride, padding, output map."""
    m, name = layer.weight.module, layer.weight.name
    C, H, W = layer.in_map
    if isinstance(m, nn.Linear):
        if m.in_features != C * H * W:
            raise ShapeMismatchError(f"Linear '{name}' expects {m.in_features} inputs but receives a "
                                     f"{C}x{H}x{W} map ({C * H * W})", name)
        if H != W:
            raise UnsupportedParameterError(f"Linear '{name}' after a non-square {H}x{W} map would need a "
                                            "non-square kernel", name)
        w = _f32(m.weight).reshape(m.out_features, C, H, W)
        b = None if m.bias is None else _f32(m.bias)
        check_finite("Linear", name, weights=w, biases=b)
        return Geometry(w, b, H, (1, 1), (0, 0), (m.out_features, 1, 1))
    k = _pair(m.kernel_size)
    if k[0] != k[1]:
        raise UnsupportedParameterError(f"Conv2d '{name}' has a non-square kernel {k}", name)
    if _pair(m.dilation) != (1, 1):
        raise UnsupportedParameterError(f"Conv2d '{name}' has dilation {m.dilation}; the chip has none", name)
    if m.groups != 1:
        raise UnsupportedParameterError(f"Conv2d '{name}' has groups={m.groups}; the chip has none", name)
    if m.padding_mode != "zeros":
        raise UnsupportedParameterError(f"Conv2d '{name}' pads with '{m.padding_mode}'; the chip pads with zeros",
                                        name)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            pad = (0, 0)
        elif k[0] % 2 == 1:
            pad = (k[0] // 2, k[0] // 2)
        else:
            raise UnsupportedParameterError(f"Conv2d '{name}': padding='same' with an even kernel is asymmetric",
                                            name)
    else:
        pad = _pair(m.padding)
    if m.in_channels != C:
        raise ShapeMismatchError(f"Conv2d '{name}' expects {m.in_channels} channels, receives {C}", name)
    w = _f32(m.weight)
    b = None if m.bias is None else _f32(m.bias)
    check_finite("Conv2d", name, weights=w, biases=b)
    return Geometry(w, b, k[0], _pair(m.stride), pad, as_map(layer.weight.out_shape))


def fold_bn(w: np.ndarray, b: np.ndarray | None, bn_node: Node) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode batch norm into the weights (float32, torch's order of operations):
    ``factor = gamma / sqrt(var + eps)``, ``w' = w * factor``, ``b' = beta + (b - mean) * factor``.

    Unlike sinabs 3.1.3 (which drops ``eps``), this is exactly what torch's BatchNorm computes."""
    bn, name = bn_node.module, bn_node.name
    C = w.shape[0]
    g = _f32(bn.weight) if bn.affine and bn.weight is not None else np.ones(C, F32)
    beta = _f32(bn.bias) if bn.affine and bn.bias is not None else np.zeros(C, F32)
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedParameterError(f"batch norm '{name}' has no running statistics "
                                        "(track_running_stats=False); the chip needs fixed ones", name)
    mean, var = _f32(bn.running_mean), _f32(bn.running_var)
    check_finite("batch norm", name, weight=g, bias=beta, running_mean=mean, running_var=var)
    denom = np.add(var, F32(getattr(bn, "eps")))
    if np.any(var < 0) or np.any(denom <= 0):
        i = int(np.flatnonzero((var < 0) | (denom <= 0))[0])
        raise InvalidParameterError(f"batch norm '{name}' has running_var {var[i]} (+ eps {bn.eps}) <= 0 for channel "
                                    f"{i}; a variance must be positive", name)
    factor = g / np.sqrt(denom)
    w = w * factor.reshape(-1, 1, 1, 1)
    b = beta + ((b if b is not None else F32(0.0)) - mean) * factor
    check_finite("batch norm", name, folded_weights=w, folded_biases=b)
    return w.astype(F32), b.astype(F32)


def _scalar(v, what: str, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        flat = v.detach().reshape(-1)
        if flat.numel() == 0:
            return None
        if flat.numel() > 1 and not torch.all(flat == flat[0]):
            raise UnsupportedParameterError(f"spiking layer '{name}' has per-neuron {what}s; the chip has one "
                                            "per core", name)
        v = flat[0].item()
    v = float(F32(v))
    if not np.isfinite(v):
        raise InvalidParameterError(f"spiking layer '{name}' has {what} {v}; the chip needs a finite value", name)
    return v


def spiking_params(node: Node) -> Spiking:
    m, name = node.module, node.name
    thr = _scalar(m.spike_threshold, "threshold", name)
    if thr is None or thr <= 0:
        raise InvalidParameterError(f"spiking layer '{name}' has threshold {thr}; it must be > 0", name)
    low = _scalar(getattr(m, "min_v_mem", None), "min_v_mem", name)
    if low is not None and low >= thr:
        raise InvalidParameterError(f"spiking layer '{name}' has min_v_mem {low} >= threshold {thr}; the floor "
                                    "must lie below the threshold", name)
    reset = type(getattr(m, "reset_fn", None)).__name__
    if reset == "MembraneSubtract":
        sub = getattr(m.reset_fn, "subtract_value", None)
        if sub is not None and float(sub) != thr:
            raise UnsupportedParameterError(f"spiking layer '{name}' subtracts {sub} on a spike; the chip "
                                            f"subtracts the threshold ({thr})", name)
        rtz = False
    elif reset == "MembraneReset":
        if float(getattr(m.reset_fn, "reset_value", 0.0)) != 0.0:
            raise UnsupportedParameterError(f"spiking layer '{name}': the chip resets to 0 only", name)
        rtz = True
    else:
        raise UnsupportedParameterError(f"spiking layer '{name}' has reset function {reset}; the chip supports "
                                        "MembraneSubtract and MembraneReset", name)
    if getattr(m, "tau_syn", None) is not None:
        raise UnsupportedParameterError(f"spiking layer '{name}' has synaptic dynamics (tau_syn)", name)
    return Spiking(thr, low, rtz)


def initial_vmem(node: Node, shape: tuple[int, int, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(the first sample's state as float32 [C, H, W], the whole state tensor) of a spiking layer that
    carries one, else (None, None). sinabs takes its discretization scale from the whole state tensor and
    writes the first sample to the chip; so do we."""
    v = getattr(node.module, "v_mem", None)
    if not isinstance(v, torch.Tensor) or v.numel() == 0:
        return None, None
    full = _f32(v)
    check_finite("spiking layer", node.name, v_mem=full)
    n = int(np.prod(shape))
    v0 = full.reshape(-1)[:n] if full.size % n == 0 else None
    if v0 is None:
        raise ShapeMismatchError(f"spiking layer '{node.name}' has a v_mem state of shape {tuple(v.shape)} that "
                                 f"does not match its map {shape}", node.name)
    if not np.any(full):
        return None, None
    return v0.reshape(shape), full


def extend_for_readout(w, bias, v0):
    """speck2e/2f readout errata: class k is fed by channel 4(k-1), so channel i moves to 4i
    (sinabs ``utils.extend_readout_layer``); the channels in between stay silent (zero weights)."""
    C = w.shape[0]
    n = (C - 1) * 4 + 1
    w2 = np.zeros((n, *w.shape[1:]), F32)
    w2[::4] = w
    b2 = None
    if bias is not None:
        b2 = np.zeros(n, F32)
        b2[::4] = bias
    v2 = None
    if v0 is not None:
        v2 = np.zeros((n, *v0.shape[1:]), F32)
        v2[::4] = v0
    return w2, b2, v2
