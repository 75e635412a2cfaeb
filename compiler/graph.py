"""Extract a module graph from a torch model by running one sample input with forward hooks.

Why hooks (not torch.fx, not nirtorch): a real forward pass accepts any harmless Python in ``forward``
(prints, asserts, logging) that symbolic tracing trips over, gives exact tensor shapes, and lets us name
the module that consumes a tensor produced by an untracked operation (``a + b``) - the one mistake users
make most with residual networks (use ``sinabs.layers.Merge``). Views and reshapes (``x.view``,
``torch.flatten``) are followed through shared storage, and tensor version counters reveal in-place
operations between modules (``h.mul_(3)``), which the chip cannot do either.

The model is traced on a float32 CPU copy (:func:`as_float32_cpu`): float64 / float16 / CUDA models compile,
and the user's model is never touched.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import CompileError, GraphStructureError, ShapeMismatchError, UnsupportedLayerError

__all__ = ["INPUT", "Node", "classify", "as_float32_cpu", "extract"]

INPUT = -1  # node id of the network input


@dataclass
class Node:
    id: int
    name: str
    module: nn.Module
    kind: str  # weight | neuron | pool | merge | pass | bn | dvs
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
_SINABS_KINDS = {"IAFSqueeze": "neuron", "IAF": "neuron", "SumPool2d": "pool", "Merge": "merge",
                 "DVSLayer": "dvs"}
#: modules with children that are traced as one unit (their children are implementation details)
_UNITS = {"DVSLayer"}
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
    """Node kind of a traced module, or None for an unsupported type."""
    cls = type(module)
    if cls.__module__.startswith("sinabs."):
        return _SINABS_KINDS.get(cls.__name__)
    if cls.__module__ == "speckstream.compiler.nir_import":
        return _OWN_KINDS.get(cls.__name__)
    return _TORCH_KINDS.get(cls)  # exact type: subclasses may change forward semantics


def _is_unit(module: nn.Module) -> bool:
    return type(module).__module__.startswith("sinabs.") and type(module).__name__ in _UNITS


def as_float32_cpu(model: nn.Module) -> nn.Module:
    """A float32 copy of ``model`` on the CPU (parameters, buffers and neuron states); ``model`` is not
    touched. Chip parameters are read from this copy, so float64 / float16 / CUDA models compile alike."""
    if not isinstance(model, nn.Module):
        raise CompileError(f"expected a torch.nn.Module, a nir.NIRGraph or a path to a .nir file; got "
                           f"{type(model).__name__}")
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        raise GraphStructureError("the model has lazy (uninitialized) parameters; run it once first")
    work = copy.deepcopy(model)
    try:
        work = work.to(device="cpu", dtype=torch.float32)
    except Exception as e:  # pragma: no cover - exotic modules
        raise CompileError(f"cannot copy the model to float32 on the CPU: {type(e).__name__}: {e}") from e
    # neuron states are plain tensor attributes in some sinabs versions: convert those too
    for m in work.modules():
        for attr in ("v_mem", "spike_threshold", "min_v_mem"):
            v = getattr(m, attr, None)
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter) and \
                    (v.dtype != torch.float32 or v.device.type != "cpu") and v.is_floating_point():
                try:
                    setattr(m, attr, v.detach().to("cpu", torch.float32))
                except Exception:  # read-only property: left as it is
                    pass
    return work


def _sample_batch(model: nn.Module) -> int:
    """Batch size for the sample input: sinabs *Squeeze layers need a multiple of batch_size*num_timesteps."""
    b = 1
    for m in model.modules():
        for attr in ("batch_size", "num_timesteps"):
            v = getattr(m, attr, None)
            if isinstance(v, int) and v > 0:
                b = b * v // math.gcd(b, v)
    return b


def _traced_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves and units (a unit's children are not traced separately), in named_modules order."""
    out: list[tuple[str, nn.Module]] = []
    skip: list[str] = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in skip):
            continue
        if _is_unit(m):
            out.append((name, m))
            skip.append(name)
        elif not list(m.children()):
            out.append((name, m))
    return out


def _check_input(name: str, module: nn.Module, args) -> None:
    """Shape checks torch would fail with an anonymous message: name the module and both shapes."""
    t = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if t is None:
        return
    shape = tuple(t.shape[1:])
    if isinstance(module, nn.Linear) and (not shape or shape[-1] != module.in_features):
        raise ShapeMismatchError(f"Linear '{name}' expects {module.in_features} input features but receives a "
                                 f"tensor of shape {shape}", name)
    if isinstance(module, nn.Conv2d):
        if len(shape) != 3:
            raise ShapeMismatchError(f"Conv2d '{name}' expects a (C, H, W) map but receives shape {shape}", name)
        if shape[0] != module.in_channels:
            raise ShapeMismatchError(f"Conv2d '{name}' expects {module.in_channels} input channels but receives "
                                     f"a map of shape {shape}", name)


class _Tracer:
    """The state of one traced forward pass: nodes in call order, which node produced each tensor (by identity,
    and by storage to follow views and reshapes), the version each output had when produced (to catch in-place
    edits between modules), and the stack of running modules (the innermost is to blame for an error)."""

    def __init__(self, positions: dict[str, int]):
        self.positions = positions
        self.nodes: list[Node] = []
        self.by_tensor: dict[int, int] = {}
        self.by_storage: dict[int, int] = {}
        self.versions: dict[int, int] = {}
        self.keep_alive: list[torch.Tensor] = []
        self.stack: list[str] = []
        self.calls: dict[str, int] = {}

    def produced(self, t: torch.Tensor, node_id: int) -> None:
        self.keep_alive.append(t)
        self.by_tensor[id(t)] = node_id
        self.by_storage[t.untyped_storage().data_ptr()] = node_id
        self.versions[node_id] = t._version

    def producer_of(self, t: torch.Tensor, consumer: str) -> int:
        p = self.by_tensor.get(id(t))
        if p is None:
            p = self.by_storage.get(t.untyped_storage().data_ptr())
        if p is None:
            raise GraphStructureError(
                f"module '{consumer}' receives a tensor made by an operation that is not a module (for "
                "example 'a + b' or torch.cat in forward); the chip can only see modules - use "
                "sinabs.layers.Merge for sums", consumer)
        if t._version != self.versions[p]:
            source = "the network input" if p == INPUT else f"the output of '{self.nodes[p].name}'"
            raise GraphStructureError(
                f"module '{consumer}' receives {source} after it was modified in place (e.g. 'h.mul_(3)' or "
                "'h += x' between modules); the chip applies only modules - remove the operation or make it "
                "part of a module's parameters", consumer)
        return p

    def before(self, name: str):
        def fn(module, args):
            self.stack.append(name)
            _check_input(name, module, args)
        return fn

    def after(self, name: str):
        def fn(module, args, output):
            self.stack.pop()
            self.record(name, module, args, output)
        return fn

    def record(self, name: str, module: nn.Module, args, output) -> None:
        kind = classify(module)
        if kind is None:  # checked on call: modules defined but never used are fine
            advice = _ADVICE.get(type(module).__name__, "supported: Conv2d, Linear, AvgPool2d, Flatten, Identity, "
                                 "Dropout, BatchNorm, sinabs IAF/IAFSqueeze/SumPool2d/Merge/DVSLayer")
            raise UnsupportedLayerError(
                f"module '{name}' ({type(module).__name__}) cannot be put on the chip: {advice}", name)
        if name in self.calls and kind in ("weight", "neuron", "bn", "dvs"):
            raise GraphStructureError(f"module '{name}' is called more than once in forward (weight sharing or "
                                      "recurrence) - each call needs its own core and its own module", name)
        self.calls[name] = self.calls.get(name, 0) + 1
        label = name if self.calls[name] == 1 else f"{name}#{self.calls[name]}"  # reused pooling / flatten modules
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not isinstance(output, torch.Tensor):
            raise GraphStructureError(f"module '{name}' returns {type(output).__name__}, not a tensor", name)
        node = Node(len(self.nodes), label, module, kind, [tuple(t.shape[1:]) for t in tensors],
                    tuple(output.shape[1:]), position=self.positions[name])
        node.inputs = [self.producer_of(t, name) for t in tensors]
        self.nodes.append(node)
        self.produced(output, node.id)

    def run(self, work: nn.Module, x: torch.Tensor) -> None:
        self.produced(x, INPUT)
        with torch.no_grad():
            try:
                work(x)
            except CompileError:
                raise
            except Exception as e:
                where = f"module '{self.stack[-1]}' failed" if self.stack else "running the model failed"
                raise GraphStructureError(f"{where} on a sample input of shape {tuple(x.shape)}: "
                                          f"{type(e).__name__}: {e}", self.stack[-1] if self.stack else None) from e


def extract(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[list[Node], list[int]]:
    """Run a sample through a deep copy of ``model`` (a float32 CPU module, see :func:`as_float32_cpu`);
    return (nodes in call order, entry node ids). Node modules are ``model``'s own (not the traced copy's),
    so parameters and neuron states are read as the user left them."""
    work = copy.deepcopy(model).eval()
    tracer = _Tracer({name: i for i, (name, _) in enumerate(work.named_modules())})
    traced = _traced_modules(work)
    handles = [m.register_forward_pre_hook(tracer.before(n)) for n, m in traced]
    handles += [m.register_forward_hook(tracer.after(n)) for n, m in traced]
    try:
        tracer.run(work, torch.zeros((_sample_batch(work), *input_shape)))
    finally:
        for h in handles:
            h.remove()
    nodes = tracer.nodes
    for n in nodes:
        for i in n.inputs:
            if i != INPUT:
                nodes[i].outputs.append(n.id)
    entries = [n.id for n in nodes if INPUT in n.inputs]
    # map node modules back to the (untraced) model: parameters and states are read as the user left them
    originals = dict(model.named_modules())
    for n in nodes:
        n.module = originals[n.name.split("#")[0]]
    return nodes, entries
