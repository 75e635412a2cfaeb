"""NIR graph -> a torch module the compiler understands, so models exported from snnTorch, Norse, Lava or
sinabs (``nir``: Input, Output, Conv2d, Linear, Affine, IF, SumPool2d, Flatten) reach the chip.

How a NIR ``IF`` becomes a chip neuron, by default as sinabs' own ``sinabs.from_nir`` deploys it to Speck
(SynSense's NIR-to-Speck tutorial takes exactly that path):

* **reset: subtract the threshold.** NIR up to 1.0.4 (the version sinabs 3.1.3 pins) defines the IF's reset
  as ``v <- v - v_thr``; sinabs (``IAFSqueeze``) and snnTorch (``Leaky(beta=1)``) import it that way. NIR 1.0.5
  added ``v_reset`` (reset *to* a value, 0 when absent), which Norse's importer follows; a file cannot say which
  its exporter meant, so ``reset="zero"`` is the switch for networks trained with reset-to-zero neurons. A
  non-zero ``v_reset`` has no chip equivalent and is refused.
* **vmem floor: minus the threshold.** NIR's IF has no lower bound; ``sinabs.from_nir`` gives each layer
  ``min_v_mem = -v_threshold``. Without any floor, the int16 range [-32768, threshold] would cap the
  discretization factor at about 1 and round typical float weights to zero (a dead network).

``compile(graph_or_path, min_v_mem=..., reset=...)`` overrides either (see :func:`speckstream.compile`).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import CompileError, UnsupportedLayerError, UnsupportedParameterError

__all__ = ['is_nir_graph', 'MembraneReset', 'MembraneSubtract', 'ChipIAF', 'ChipSumPool2d', 'ChipMerge', 'NIRModule',
           'load_nir', 'nir_to_torch']


class MembraneReset:  # names read by the compiler's reset-mode check
    reset_value = 0.0


class MembraneSubtract:
    pass


class ChipIAF(nn.Module):
    """Integrate-and-fire placeholder (shape tracing only; the chip does the dynamics)."""

    def __init__(self, threshold: float, min_v_mem: float | None, reset_to_zero: bool):
        super().__init__()
        self.spike_threshold = float(threshold)
        self.min_v_mem = min_v_mem
        self.reset_fn = MembraneReset() if reset_to_zero else MembraneSubtract()

    def forward(self, x):
        return (x >= self.spike_threshold).to(x.dtype)


class ChipSumPool2d(nn.Module):
    def __init__(self, kernel_size, stride):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x):
        k = self.kernel_size if isinstance(self.kernel_size, tuple) else (self.kernel_size,) * 2
        return nn.functional.avg_pool2d(x, self.kernel_size, self.stride) * (k[0] * k[1])


class ChipMerge(nn.Module):
    def forward(self, a, b):
        return a + b


def _tuple(v):
    v = np.asarray(v).reshape(-1).tolist()
    return tuple(int(x) for x in v) if len(v) > 1 else int(v[0])


class NIRModule(nn.Module):
    """The NIR graph as a torch module whose submodules are named after the NIR nodes (so compile errors
    name the node), merges after the node they feed (``<node>_merge``)."""

    def __init__(self, layers: dict, order: list[str], preds: dict[str, list[str]], merges: dict, output: str):
        super().__init__()
        self._attr: dict[str, str] = {}
        for key, m in layers.items():
            attr = key if not hasattr(nn.Module, key) and key not in self._attr.values() else f"node_{key}"
            self.add_module(attr, m)
            self._attr[key] = attr
        self._merge_attr: dict[str, str] = {}
        for key, m in merges.items():
            self.add_module(f"{self._attr.get(key, key)}_merge", m)
            self._merge_attr[key] = f"{self._attr.get(key, key)}_merge"
        self.order, self.preds, self.output = order, preds, output

    def forward(self, x):
        vals = {"__input__": x}
        for key in self.order:
            ins = [vals[p] for p in self.preds[key]]
            v = getattr(self, self._merge_attr[key])(*ins) if key in self._merge_attr else ins[0]
            vals[key] = getattr(self, self._attr[key])(v) if key in self._attr else v
        return vals[self.output]


def _safe(key: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", key)


def _nir():
    try:
        import nir
    except ImportError:
        raise CompileError("NIR graphs need the 'nir' package: pip install 'speckstream[compile]'") from None
    return nir


def load_nir(path) -> object:
    """Read a ``.nir`` file (NIR's HDF5 format) into a ``nir.NIRGraph``."""
    nir = _nir()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file not found: {path}")
    try:
        return nir.read(str(path))
    except Exception as e:
        raise CompileError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from e


def is_nir_graph(obj) -> bool:
    """A ``nir.NIRGraph`` (checked without importing nir when it was never imported)."""
    import sys

    nir = sys.modules.get("nir")
    return nir is not None and isinstance(obj, nir.NIRGraph)


def _conv(key: str, node) -> nn.Module:
    w = np.asarray(node.weight, np.float32)
    pad = node.padding if isinstance(node.padding, str) else _tuple(node.padding)
    has_bias = node.bias is not None and np.any(np.asarray(node.bias) != 0)
    m = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=_tuple(node.stride), padding=pad,
                  dilation=_tuple(node.dilation), groups=int(node.groups), bias=bool(has_bias))
    m.weight.data = torch.from_numpy(w)
    if m.bias is not None:
        m.bias.data = torch.from_numpy(np.asarray(node.bias, np.float32).reshape(-1))  # type: ignore[union-attr]
    return m


def _linear(key: str, node) -> nn.Module:
    w = np.asarray(node.weight, np.float32)
    bias = getattr(node, "bias", None)  # nir.Linear has none, nir.Affine has one
    has_bias = bias is not None and np.any(np.asarray(bias) != 0)
    m = nn.Linear(w.shape[1], w.shape[0], bias=bool(has_bias))
    m.weight.data = torch.from_numpy(w)
    if has_bias:
        m.bias.data = torch.from_numpy(np.asarray(bias, np.float32).reshape(-1))  # type: ignore[union-attr]
    return m


def _if(key: str, node) -> nn.Module:
    thr = np.asarray(node.v_threshold, np.float64).reshape(-1) / np.asarray(node.r, np.float64).reshape(-1)
    v_reset = np.asarray(getattr(node, "v_reset", 0.0), np.float64).reshape(-1)  # nir >= 1.0.5 only
    if not np.allclose(thr, thr[0]):
        raise UnsupportedParameterError(f"NIR node '{key}': thresholds differ per neuron; the chip has one per core",
                                        key)
    if np.any(v_reset != 0):
        raise UnsupportedParameterError(f"NIR node '{key}': v_reset {v_reset[v_reset != 0][0]} != 0; the chip resets "
                                        "to 0 or subtracts the threshold", key)
    return ChipIAF(float(thr[0]), -float(thr[0]), reset_to_zero=False)


def _sum_pool(key: str, node) -> nn.Module:
    if np.any(np.asarray(node.padding) != 0):
        raise UnsupportedParameterError(f"NIR node '{key}': pooling with padding", key)
    return ChipSumPool2d(_tuple(node.kernel_size), _tuple(node.stride))


def _builders(nir) -> dict:
    """NIR node type -> the function that builds its torch module (the table of what NIR can reach the chip)."""
    return {nir.Conv2d: _conv, nir.Linear: _linear, nir.Affine: _linear, nir.IF: _if, nir.SumPool2d: _sum_pool,
            nir.Flatten: lambda key, node: nn.Flatten()}


def _topological(graph, preds: dict[str, list[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(k):
        if k in seen:
            return
        seen.add(k)
        for p in preds[k]:
            visit(p)
        order.append(k)

    for k in graph.nodes:
        visit(k)
    return order


def nir_to_torch(graph, input_shape=None):
    """Convert a ``nir.NIRGraph`` as the module docstring says (subtract reset, floor -v_threshold); returns
    (module, input_shape). ``compile``'s ``min_v_mem`` / ``reset`` options override both afterwards."""
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise CompileError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    preds: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        preds[b].append(a)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise CompileError(f"the NIR graph needs exactly one Input and one Output node, has {len(inputs)} / "
                           f"{len(outputs)}")
    if input_shape is None:
        input_shape = tuple(int(s) for s in np.asarray(graph.nodes[inputs[0]].input_type["input"]).reshape(-1))
    builders = _builders(nir)
    layers, merges = {}, {}
    for key, node in graph.nodes.items():
        if isinstance(node, (nir.Input, nir.Output)):
            continue
        build = builders.get(type(node))
        if build is None:
            raise UnsupportedLayerError(f"NIR node '{key}' ({type(node).__name__}) cannot be put on the chip", key)
        layers[_safe(key)] = build(key, node)
        if len(preds[key]) == 2:
            merges[_safe(key)] = ChipMerge()
        elif len(preds[key]) > 2:
            raise UnsupportedLayerError(f"NIR node '{key}' has {len(preds[key])} inputs; at most 2 merge", key)
    sp = {_safe(k): ["__input__" if p == inputs[0] else _safe(p) for p in preds[k]] for k in graph.nodes}
    body = [_safe(k) for k in _topological(graph, preds) if k not in inputs]
    return NIRModule(layers, body, sp, merges, _safe(outputs[0])), tuple(input_shape)
