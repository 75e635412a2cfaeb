"""Module graph -> core layers: each Conv2d/Linear (+ BatchNorm) + spiking layer becomes one core layer,
pooling between layers becomes a per-destination pooling, Merge is two cores sending to one, and pooling on
the network input is absorbed by the DVS stage (the devkit's 128 x 128 camera feeds it). Pure graph work: no parameters are read here.

The layer order is Kahn's topological order with a FIFO queue (as sinabs' ``topological_sorting``), ties
broken by the position of the weight module in the model - deterministic, and equal to sinabs' order
wherever sinabs' own is determined.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from .errors import (GraphStructureError, MissingSpikingLayerError, PoolingConflictError, ShapeMismatchError,
                     UnsupportedParameterError)
from .graph import INPUT, Node

__all__ = ["Dest", "Layer", "DVSStage", "LayerGraph", "group_layers", "as_map", "pool_params"]


@dataclass
class Dest:
    """One destination of a layer's spikes: another layer (or None: an exit), after pooling."""

    target: int | None  # layer index, or None for an exit
    pooling: tuple[int, int]  # (y, x); the chip pools square only
    rescale: float  # product of 1/(ky*kx) of the average pools on the way (1 for sum pools)
    modules: list[str]  # pooling / merge / flatten modules on the way


@dataclass
class Layer:
    """One core's worth of the model: weight module (+ batch norm) -> spiking module -> destinations."""

    index: int
    weight: Node
    neuron: Node
    bn: Node | None = None
    in_map: tuple[int, int, int] = (0, 0, 0)
    dests: list[Dest] = field(default_factory=list)
    position: int = 0

    @property
    def name(self) -> str:
        return self.weight.name

    @property
    def exits(self) -> bool:
        return not any(d.target is not None for d in self.dests)


@dataclass
class DVSStage:
    """What the model says about the DVS stage: a sinabs DVSLayer and / or pooling on the network input."""

    node: Node | None  # the sinabs DVSLayer node, if the model has one
    pooling: tuple[int, int] = (1, 1)  # pooling absorbed from the model's input pools (y, x)
    rescale: float = 1.0  # average pools absorbed: the entry layers' weights are scaled by this
    modules: list[str] = field(default_factory=list)


@dataclass
class LayerGraph:
    layers: list[Layer]  # topological order; Layer.index is the position in model call order
    entry_layers: list[int]  # layer indices fed by the network input (or by the DVS stage)
    dvs: DVSStage | None
    input_shape: tuple[int, int, int]

    def by_index(self, i: int) -> Layer:
        return next(lay for lay in self.layers if lay.index == i)


def as_map(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) > 3:
        raise ShapeMismatchError(f"feature map of shape {shape} has more than 3 dimensions")
    return (shape + (1, 1, 1))[:3]  # type: ignore[return-value]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def pool_params(n: Node) -> tuple[tuple[int, int], float]:
    """((ky, kx), rescale) of a pooling node; refuses what the chip cannot pool."""
    m = n.module
    k = _pair(m.kernel_size)
    s = _pair(m.stride) if getattr(m, "stride", None) is not None else k
    if s != k:
        raise UnsupportedParameterError(f"pooling '{n.name}' has stride {s} != kernel {k}; the chip pools "
                                        "with stride = kernel", n.name)
    if isinstance(m, nn.AvgPool2d):
        if _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
            raise UnsupportedParameterError(f"AvgPool2d '{n.name}': padding, ceil_mode and divisor_override "
                                            "cannot be represented", n.name)
        return k, 1.0 / (k[0] * k[1])
    return k, 1.0


class _Grouper:
    def __init__(self, nodes: list[Node], entries: list[int], input_shape: tuple[int, int, int],
                 dvs_requested: bool):
        self.nodes = nodes
        self.entries = entries
        self.input_shape = input_shape
        self.dvs_requested = dvs_requested

    def consumers(self, nid: int) -> list[Node]:
        """Non-pass consumers of a node's output (through Flatten / Identity / Dropout)."""
        ids = [n.id for n in self.nodes if nid in n.inputs] if nid == INPUT else self.nodes[nid].outputs
        out: list[Node] = []
        for i in ids:
            n = self.nodes[i]
            out.extend(self.consumers(n.id) if n.kind == "pass" else [n])
        return out

    def source_map(self, src: int) -> tuple[int, int, int]:
        """(C, H, W) map produced by node ``src``, looking through Flatten / Identity and Merge: a layer fed
        through a Flatten sees the pre-flatten map, and a Merge of two such maps must agree on it."""
        if src == INPUT:
            return self.input_shape
        n = self.nodes[src]
        if n.kind == "pass":
            return self.source_map(n.inputs[0])
        if n.kind == "merge":
            maps = [self.source_map(i) for i in n.inputs]
            if len(set(maps)) > 1:
                raise ShapeMismatchError(f"Merge '{n.name}' adds maps of different shapes {maps}; on the chip both "
                                         "sources send to one core, so their maps must be identical", n.name)
            return maps[0]
        return as_map(n.out_shape)

    # ------------------------------------------------------------------ layers
    def group(self) -> LayerGraph:
        nodes = self.nodes
        layers: list[Layer] = []
        by_weight: dict[int, Layer] = {}
        claimed: set[int] = set()
        for node in nodes:
            if node.kind != "weight":
                continue
            nxt = self.consumers(node.id)
            bn = None
            if len(nxt) == 1 and nxt[0].kind == "bn":
                bn = nxt[0]
                claimed.add(bn.id)
                nxt = self.consumers(bn.id)
            if len(nxt) != 1 or nxt[0].kind != "neuron":
                what = ("nothing" if not nxt else ", ".join(f"'{n.name}' ({type(n.module).__name__})" for n in nxt))
                raise MissingSpikingLayerError(
                    f"weight layer '{node.name}' must be followed by exactly one spiking layer (IAFSqueeze); "
                    f"it feeds {what}", node.name)
            layer = Layer(len(layers), node, nxt[0], bn, position=node.position)
            claimed.update({node.id, nxt[0].id})
            layers.append(layer)
            by_weight[node.id] = layer
        for n in nodes:
            if n.kind == "neuron" and n.id not in claimed:
                raise GraphStructureError(f"spiking layer '{n.name}' is not directly preceded by a weight layer "
                                          "(Conv2d / Linear)", n.name)
            if n.kind == "bn" and n.id not in claimed:
                raise GraphStructureError(f"batch norm '{n.name}' must directly follow a Conv2d / Linear", n.name)
            if n.kind in ("weight", "neuron", "pool", "pass", "bn", "dvs") and len(n.inputs) > 1:
                raise GraphStructureError(f"module '{n.name}' takes {len(n.inputs)} inputs; only Merge may", n.name)
            if n.kind == "merge" and len(n.inputs) != 2:
                raise GraphStructureError(f"Merge '{n.name}' must take exactly 2 inputs, got {len(n.inputs)}", n.name)
            if n.kind == "merge" and len(set(n.in_shapes)) > 1:
                raise ShapeMismatchError(f"Merge '{n.name}' adds inputs of different shapes {n.in_shapes}; on the "
                                         "chip both sources must send identical maps", n.name)
            if n.kind == "dvs" and n.inputs != [INPUT]:
                raise GraphStructureError(f"DVS layer '{n.name}' must be the first module, fed by the network input",
                                          n.name)
        for layer in layers:
            layer.in_map = self.source_map(layer.weight.inputs[0])
            layer.dests = self.walk(layer.neuron, by_weight)
        entry_layers, dvs = self.walk_input(by_weight)
        return LayerGraph(self.order(layers), entry_layers, dvs, self.input_shape)

    def walk(self, start: Node, by_weight) -> list[Dest]:
        dests: list[Dest] = []

        def go(node: Node, pool: tuple[int, int], rescale: float, mods: list[str]) -> None:
            nxt = self.consumers(node.id)
            if not nxt:
                dests.append(Dest(None, pool, rescale, mods))
            for n in nxt:
                if n.kind == "pool":
                    k, r = pool_params(n)
                    go(n, (pool[0] * k[0], pool[1] * k[1]), rescale * r, mods + [n.name])
                elif n.kind == "merge":
                    go(n, pool, rescale, mods + [n.name])
                elif n.kind == "weight":
                    dests.append(Dest(by_weight[n.id].index, pool, rescale, mods))
                else:
                    raise GraphStructureError(f"spiking layer '{start.name}' feeds '{n.name}' "
                                              f"({type(n.module).__name__}); a weight layer must come first", n.name)
        go(start, (1, 1), 1.0, [])
        return dests

    def walk_input(self, by_weight) -> tuple[list[int], DVSStage | None]:
        """Entry layers, and the DVS stage: a sinabs DVSLayer and / or pooling on the network input (only the
        DVS stage pools there; x and y independently)."""
        start = self.consumers(INPUT)
        dvs_node = None
        if len(start) == 1 and start[0].kind == "dvs":
            dvs_node = start[0]
            start = self.consumers(dvs_node.id)
        elif any(n.kind == "dvs" for n in start):
            n = next(n for n in start if n.kind == "dvs")
            raise GraphStructureError(f"DVS layer '{n.name}' must be the only module fed by the network input",
                                      n.name)
        found: list[tuple[int | None, tuple[int, int], float, list[str]]] = []
        frontier: list[tuple[Node, tuple[int, int], float, list[str]]] = [(c, (1, 1), 1.0, []) for c in start]
        while frontier:
            n, p, r, mods = frontier.pop(0)
            if n.kind == "weight":
                found.append((by_weight[n.id].index, p, r, mods))
            elif n.kind == "pool":
                if not self.dvs_requested and dvs_node is None:
                    raise GraphStructureError(f"pooling '{n.name}' on the network input needs the DVS input stage "
                                              "(compile(..., dvs=True)) - cores pool only on their outputs", n.name)
                if dvs_node is not None and _has_crop(dvs_node):
                    raise GraphStructureError(
                        f"pooling '{n.name}' follows DVS layer '{dvs_node.name}', which crops; define the pooling "
                        "in the DVSLayer (pool=...) instead (as sinabs requires)", n.name)
                k, rr = pool_params(n)
                nxt = self.consumers(n.id)
                if not nxt:  # pooled input straight to the output: a DVS-only network
                    found.append((None, (p[0] * k[0], p[1] * k[1]), r * rr, mods + [n.name]))
                frontier.extend((c, (p[0] * k[0], p[1] * k[1]), r * rr, mods + [n.name]) for c in nxt)
            else:
                raise GraphStructureError(f"the network input feeds '{n.name}' ({type(n.module).__name__}); "
                                          "it must feed a Conv2d / Linear", n.name)
        if len({(p, r) for _, p, r, _ in found}) > 1:
            detail = ", ".join(f"'{by_weight_name(by_weight, i)}' pooled {p} x{r:g}" for i, p, r, _ in found)
            raise PoolingConflictError(f"the network input reaches its first layers with different poolings "
                                       f"({detail}); the DVS stage pools once for all of them")
        pooling, rescale = (found[0][1], found[0][2]) if found else ((1, 1), 1.0)
        modules = list(dict.fromkeys(m for *_, mods in found for m in mods))
        dvs = None
        if dvs_node is not None or self.dvs_requested:
            dvs = DVSStage(dvs_node, pooling, rescale, modules)
        return [i for i, *_ in found if i is not None], dvs

    def order(self, layers: list[Layer]) -> list[Layer]:
        """Kahn's algorithm with a FIFO queue (as sinabs); ties by model position."""
        indeg = {lay.index: 0 for lay in layers}
        for lay in layers:
            for d in lay.dests:
                if d.target is not None:
                    indeg[d.target] += 1
        queue = deque(sorted((lay for lay in layers if indeg[lay.index] == 0), key=lambda lay: lay.position))
        out: list[Layer] = []
        while queue:
            lay = queue.popleft()
            out.append(lay)
            ready = []
            for d in lay.dests:
                if d.target is not None:
                    indeg[d.target] -= 1
                    if indeg[d.target] == 0:
                        ready.append(layers[d.target])
            queue.extend(sorted(ready, key=lambda x: x.position))
        if len(out) != len(layers):
            raise GraphStructureError("the layer graph has a cycle (recurrence is not supported)")
        return out


def by_weight_name(by_weight, index: int | None) -> str:
    if index is None:
        return "the output"
    return next(lay.name for lay in by_weight.values() if lay.index == index)


def _has_crop(dvs_node: Node) -> bool:
    crop = getattr(dvs_node.module, "crop_layer", None)
    if crop is None:
        return False
    _, h, w = dvs_node.module.get_output_shape_after_pooling()  # type: ignore[operator]
    return (crop.top_crop, crop.bottom_crop, crop.left_crop, crop.right_crop) != (0, h, 0, w)


def group_layers(nodes: list[Node], entries: list[int], input_shape: tuple[int, int, int],
                 dvs_requested: bool = False) -> LayerGraph:
    """Group traced modules into core layers (see the module docstring)."""
    return _Grouper(nodes, entries, input_shape, dvs_requested).group()
