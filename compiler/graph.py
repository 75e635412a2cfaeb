"""Extract a module graph from a torch model by running one sample input with forward hooks.

Why hooks (not torch.fx, not nirtorch): a real forward pass accepts any harmless Python in ``forward``
(prints, asserts, logging) that symbolic tracing trips over, gives exact tensor shapes, and lets us name
the module that consumes a tensor produced by an untracked operation (``a + b``) - the one mistake users
make most with residual networks (use ``sinabs.layers.Merge``). Views and reshapes (``x.view``,
``torch.flatten``) are followed through shared storage.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import CompileError, GraphStructureError, UnsupportedLayerError

INPUT = -1  # node id of the network input


@dataclass
class Node:
    id: int
    name: str
    module: nn.Module
    kind: str  # weight | neuron | pool | merge | pass | bn
    in_shapes: list[tuple[int, ...]]
    out_shape: tuple[int, ...]
    inputs: list[int] = field(default_factory=list)  # producer node ids (INPUT for the network input)
    outputs: list[int] = field(default_factory=list)
    position: int = 0  # position in model.named_modules()


_TORCH_KINDS = {
    nn.Conv2d: "weight", nn.Linear: "weight", nn.AvgPool2d: "pool", nn.Flatten: "pass",
    nn.Identity: "pass", nn.Dropout: "pass", nn.Dropout2d: "pass", nn.BatchNorm2d: "bn", nn.BatchNorm1d: "bn",
}
_OWN_KINDS = {"ChipIAF": "neuron", "ChipSumPool2d": "pool", "ChipMerge": "merge"}  # NIR import
_SINABS_KINDS = {"IAFSqueeze": "neuron", "IAF": "neuron", "SumPool2d": "pool", "Merge": "merge"}
_ADVICE = {
    "LIF": "leaky dynamics are not supported on the chip; use IAF / IAFSqueeze (leak = bias + slow clock)",
    "LIFSqueeze": "leaky dynamics are not supported on the chip; use IAFSqueeze",
    "ExpLeak": "leaky dynamics are not supported on the chip",
    "ExpLeakSqueeze": "leaky dynamics are not supported on the chip",
    "ALIF": "adaptive neurons are not supported on the chip",
    "IAFRecurrent": "recurrent layers are not supported (recurrence can deadlock the chip)",
    "ReLU": "convert the ANN first, e.g. with sinabs.from_torch.from_model(..., min_v_mem=-1.0)",
    "Sigmoid": "convert the ANN first with sinabs.from_torch", "Tanh": "convert the ANN first with sinabs.from_torch",
    "NeuromorphicReLU": "convert first with sinabs.from_torch", "MaxPool2d": "use sinabs SumPool2d or AvgPool2d",
    "SpikingMaxPooling2dLayer": "max pooling is not supported; use SumPool2d",
    "Conv1d": "only 2-D convolutions map to the chip", "Cropping2dLayer": "crop in the DVS stage instead",
}


def classify(module: nn.Module) -> str | None:
    """Node kind of a leaf module, or None for an unsupported type."""
    cls = type(module)
    if cls.__module__.startswith("sinabs."):
        return _SINABS_KINDS.get(cls.__name__)
    if cls.__module__ == "speckstream.compiler.nir_import":
        return _OWN_KINDS.get(cls.__name__)
    return _TORCH_KINDS.get(cls)  # exact type: subclasses may change forward semantics


def _sample_batch(model: nn.Module) -> int:
    """Batch size for the sample input: sinabs *Squeeze layers need a multiple of batch_size*num_timesteps."""
    b = 1
    for m in model.modules():
        for attr in ("batch_size", "num_timesteps"):
            v = getattr(m, attr, None)
            if isinstance(v, int) and v > 0:
                b = b * v // math.gcd(b, v)
    return b


def extract(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[Node], list[int]]:
    """Run a sample through a deep copy of ``model``; return (nodes in call order, entry node ids)."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        raise GraphStructureError("the model has lazy (uninitialized) parameters; run it once first")
    work = copy.deepcopy(model).eval()
    positions = {name: i for i, (name, _) in enumerate(work.named_modules())}
    leaves = [(n, m) for n, m in work.named_modules() if not list(m.children()) and n]

    nodes: list[Node] = []
    by_tensor: dict[int, int] = {}  # id(tensor) -> producer node id
    by_storage: dict[int, int] = {}  # storage pointer -> producer node id (follows views / reshapes)
    keep_alive: list[torch.Tensor] = []
    called: set[str] = set()
    calls: dict[str, int] = {}

    def producer_of(t: torch.Tensor, consumer: str) -> int:
        if id(t) in by_tensor:
            return by_tensor[id(t)]
        ptr = t.untyped_storage().data_ptr()
        if ptr in by_storage:
            return by_storage[ptr]
        raise GraphStructureError(
            f"module '{consumer}' receives a tensor made by an operation that is not a module (for example "
            "'a + b' or torch.cat in forward); the chip can only see modules - use sinabs.layers.Merge for sums",
            consumer)

    def hook(name):
        def fn(module, args, output):
            kind = classify(module)
            if kind is None:  # checked on call: modules defined but never used are fine
                advice = _ADVICE.get(type(module).__name__, "supported: Conv2d, Linear, AvgPool2d, Flatten, Identity, "
                                     "Dropout, BatchNorm, sinabs IAF/IAFSqueeze/SumPool2d/Merge")
                raise UnsupportedLayerError(
                    f"module '{name}' ({type(module).__name__}) cannot be put on the chip: {advice}", name)
            if name in called and kind in ("weight", "neuron", "bn"):
                raise GraphStructureError(f"module '{name}' is called more than once in forward (weight sharing or "
                                          "recurrence) - each call needs its own core and its own module", name)
            calls[name] = calls.get(name, 0) + 1
            called.add(name)
            label = name if calls[name] == 1 else f"{name}#{calls[name]}"  # reused pooling / flatten modules
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if not isinstance(output, torch.Tensor):
                raise GraphStructureError(f"module '{name}' returns {type(output).__name__}, not a tensor", name)
            node = Node(len(nodes), label, module, kind, [tuple(t.shape[1:]) for t in tensors],
                        tuple(output.shape[1:]), position=positions[name])
            node.inputs = [producer_of(t, name) for t in tensors]
            nodes.append(node)
            keep_alive.append(output)
            by_tensor[id(output)] = node.id
            by_storage[output.untyped_storage().data_ptr()] = node.id
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        x = torch.zeros((_sample_batch(work), *input_shape))
        by_tensor[id(x)] = INPUT
        by_storage[x.untyped_storage().data_ptr()] = INPUT
        with torch.no_grad():
            try:
                work(x)
            except CompileError:
                raise
            except Exception as e:
                raise GraphStructureError(f"running the model on a sample of shape {tuple(x.shape)} failed: "
                                          f"{type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
    if not nodes:
        raise GraphStructureError("the model called no modules on the sample input")
    for n in nodes:
        for i in n.inputs:
            if i != INPUT:
                nodes[i].outputs.append(n.id)
    entries = [n.id for n in nodes if INPUT in n.inputs]
    # map node modules back to the user's model (parameters are read from the original, not the copy)
    originals = dict(model.named_modules())
    for n in nodes:
        n.module = originals[n.name.split("#")[0]]
    return nodes, entries
