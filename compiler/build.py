"""Model -> ChipConfig: graph -> core layers -> discretization -> resources -> core assignment.

Entry points: :func:`compile` (torch / sinabs modules, or a NIR graph) and :func:`compile_nir`.
"""
from __future__ import annotations

import heapq
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .chips import ChipSpec, get_chip, kernel_memory, neuron_memory
from .config import ChipConfig, CoreConfig, Destination, DVSConfig, Provenance, ReadoutConfig
from .discretize import discretize_layer
from .errors import (CompileError, GraphStructureError, LayerDoesNotFitError, MissingSpikingLayerError,
                     NoCoreAssignmentError, PoolingConflictError, ShapeMismatchError, TooManyDestinationsError,
                     TooManyLayersError, UnsupportedParameterError)
from .graph import INPUT, Node, extract
from .mapping import match
from .validate import validate


class _Built(NamedTuple):
    """A layer's chip form before core assignment."""

    kernel: int
    stride: tuple
    padding: tuple
    out: tuple
    disc: object  # Discretized
    rtz: bool
    feasible: list[int]  # cores whose memory holds the layer


class CompileWarning(UserWarning):
    """Something compiled but deserves the user's attention (precision loss, collapsed scale...)."""


@dataclass
class _Dest:
    target: int | None  # layer index, or None for an exit
    pooling: int
    rescale: float
    modules: list[str]


@dataclass
class _Layer:
    index: int
    weight: Node
    neuron: Node
    bn: Node | None = None
    in_map: tuple[int, int, int] = (0, 0, 0)
    dests: list[_Dest] = field(default_factory=list)
    rescale: float = 1.0
    position: int = 0

    @property
    def name(self) -> str:
        return self.weight.name


def _as_map(shape: tuple[int, ...]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) > 3:
        raise ShapeMismatchError(f"feature map of shape {shape} has more than 3 dimensions")
    return (shape + (1, 1, 1))[:3]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class _Builder:
    def __init__(self, model: nn.Module, input_shape, chip: ChipSpec, dvs):
        self.chip = chip
        self.input_shape = _as_map(input_shape)
        self.nodes, self.entries = extract(model, self.input_shape)
        self.dvs = dvs
        self.notes: list[str] = []

    # --------------------------------------------------------------- graph walking
    def consumers(self, nid: int) -> list[Node]:
        """Non-pass consumers of a node's output (through Flatten / Identity / Dropout)."""
        ids = [n.id for n in self.nodes if nid in n.inputs] if nid == INPUT else self.nodes[nid].outputs
        out: list[Node] = []
        for i in ids:
            n = self.nodes[i]
            out.extend(self.consumers(n.id) if n.kind == "pass" else [n])
        return out

    def map_shape(self, node: Node) -> tuple[int, int, int]:
        """(C, H, W) map feeding ``node``: walks back through pass nodes (pre-flatten shape)."""
        src = node.inputs[0]
        while src != INPUT and self.nodes[src].kind == "pass":
            src = self.nodes[src].inputs[0]
        return self.input_shape if src == INPUT else _as_map(self.nodes[src].out_shape)

    # --------------------------------------------------------------- grouping
    def group(self) -> list[_Layer]:
        layers: list[_Layer] = []
        by_weight: dict[int, _Layer] = {}
        claimed: set[int] = set()
        for node in self.nodes:
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
            layer = _Layer(len(layers), node, nxt[0], bn, position=node.position)
            claimed.update({node.id, nxt[0].id})
            layers.append(layer)
            by_weight[node.id] = layer
        for n in self.nodes:
            if n.kind == "neuron" and n.id not in claimed:
                raise GraphStructureError(f"spiking layer '{n.name}' is not directly preceded by a weight layer "
                                          "(Conv2d / Linear)", n.name)
            if n.kind == "bn" and n.id not in claimed:
                raise GraphStructureError(f"batch norm '{n.name}' must directly follow a Conv2d / Linear", n.name)
            if n.kind in ("weight", "neuron", "pool", "pass", "bn") and len(n.inputs) > 1:
                raise GraphStructureError(f"module '{n.name}' takes {len(n.inputs)} inputs; only Merge may", n.name)
            if n.kind == "merge" and len(n.inputs) != 2:
                raise GraphStructureError(f"Merge '{n.name}' must take exactly 2 inputs, got {len(n.inputs)}", n.name)
            if n.kind == "merge" and len(set(n.in_shapes)) > 1:
                raise ShapeMismatchError(f"Merge '{n.name}' adds inputs of different shapes {n.in_shapes}; on the "
                                         "chip both sources must send identical maps", n.name)
        for layer in layers:
            layer.in_map = self.map_shape(layer.weight)
            layer.dests = self.walk(layer.neuron, by_weight)
        self.entry_layers, self.dvs_pool = self.walk_input(by_weight)
        return self.order(layers)

    def walk(self, start: Node, by_weight) -> list[_Dest]:
        dests: list[_Dest] = []

        def go(node: Node, pool: int, rescale: float, mods: list[str]) -> None:
            nxt = self.consumers(node.id)
            if not nxt:
                dests.append(_Dest(None, pool, rescale, mods))
            for n in nxt:
                if n.kind == "pool":
                    k, r = self.pool_params(n)
                    go(n, pool * k, rescale * r, mods + [n.name])
                elif n.kind == "merge":
                    go(n, pool, rescale, mods + [n.name])
                elif n.kind == "weight":
                    dests.append(_Dest(by_weight[n.id].index, pool, rescale, mods))
                else:
                    raise GraphStructureError(f"spiking layer '{start.name}' feeds '{n.name}' "
                                              f"({type(n.module).__name__}); a weight layer must come first", n.name)
        go(start, 1, 1.0, [])
        return dests

    def walk_input(self, by_weight):
        layers = []
        frontier = [(c, 1) for c in self.consumers(INPUT)]
        while frontier:
            n, p = frontier.pop(0)
            if n.kind == "weight":
                layers.append((by_weight[n.id].index, p))
            elif n.kind == "pool":
                if self.dvs is None:
                    raise GraphStructureError(f"pooling '{n.name}' on the network input needs the DVS input stage "
                                              "(compile(..., dvs=True)) - cores pool only on their outputs", n.name)
                k, r = self.pool_params(n)
                if r != 1.0:
                    raise UnsupportedParameterError(f"AvgPool2d '{n.name}' on the input: use SumPool2d (the DVS "
                                                    "stage sums)", n.name)
                frontier.extend((c, p * k) for c in self.consumers(n.id))
            else:
                raise GraphStructureError(f"the network input feeds '{n.name}' ({type(n.module).__name__}); "
                                          "it must feed a Conv2d / Linear", n.name)
        pools = {p for _, p in layers}
        if len(pools) > 1:
            raise PoolingConflictError(f"the network input reaches its first layers with different poolings {pools}")
        return [i for i, _ in layers], (pools.pop() if pools else 1)

    def pool_params(self, n: Node) -> tuple[int, float]:
        m = n.module
        k = _pair(m.kernel_size)
        s = _pair(m.stride) if m.stride is not None else k
        if k[0] != k[1]:
            raise UnsupportedParameterError(f"pooling '{n.name}' has a non-square kernel {k}", n.name)
        if s != k:
            raise UnsupportedParameterError(f"pooling '{n.name}' has stride {s} != kernel {k}; the chip pools "
                                            "with stride = kernel", n.name)
        if isinstance(m, nn.AvgPool2d):
            if _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override:
                raise UnsupportedParameterError(f"AvgPool2d '{n.name}': padding, ceil_mode and divisor_override "
                                                "cannot be represented", n.name)
            return k[0], 1.0 / (k[0] * k[1])
        return k[0], 1.0

    def order(self, layers: list[_Layer]) -> list[_Layer]:
        """Topological order of layers, ties broken by position in the model (deterministic)."""
        indeg = {l.index: 0 for l in layers}
        for l in layers:
            for d in l.dests:
                if d.target is not None:
                    indeg[d.target] += 1
        heap = [(l.position, l.index) for l in layers if indeg[l.index] == 0]
        heapq.heapify(heap)
        out: list[_Layer] = []
        while heap:
            _, i = heapq.heappop(heap)
            out.append(layers[i])
            for d in layers[i].dests:
                if d.target is not None:
                    indeg[d.target] -= 1
                    if indeg[d.target] == 0:
                        heapq.heappush(heap, (layers[d.target].position, d.target))
        if len(out) != len(layers):
            raise GraphStructureError("the layer graph has a cycle (recurrence is not supported)")
        return out


def _spiking_params(node: Node) -> tuple[float, float | None, bool]:
    m = node.module
    thr = m.spike_threshold
    thr = float(thr.reshape(-1)[0]) if isinstance(thr, torch.Tensor) else float(thr)
    if isinstance(m.spike_threshold, torch.Tensor) and m.spike_threshold.numel() > 1 and \
            not torch.all(m.spike_threshold == m.spike_threshold.reshape(-1)[0]):
        raise UnsupportedParameterError(f"spiking layer '{node.name}' has per-neuron thresholds; the chip has one "
                                        "threshold per core", node.name)
    low = m.min_v_mem
    low = None if low is None else float(low.reshape(-1)[0] if isinstance(low, torch.Tensor) else low)
    reset = type(getattr(m, "reset_fn", None)).__name__
    if reset == "MembraneSubtract":
        rtz = False
    elif reset == "MembraneReset":
        if float(getattr(m.reset_fn, "reset_value", 0.0)) != 0.0:
            raise UnsupportedParameterError(f"spiking layer '{node.name}': the chip resets to 0 only", node.name)
        rtz = True
    else:
        raise UnsupportedParameterError(f"spiking layer '{node.name}' has reset function {reset}; the chip supports "
                                        "MembraneSubtract and MembraneReset", node.name)
    if getattr(m, "tau_syn", None) is not None:
        raise UnsupportedParameterError(f"spiking layer '{node.name}' has synaptic dynamics (tau_syn)", node.name)
    return thr, low, rtz


def _conv_geometry(layer: _Layer) -> tuple[np.ndarray, np.ndarray | None, int, tuple, tuple, tuple]:
    """float weights [out, in, k, k], bias, kernel, stride, padding, output map."""
    m, name = layer.weight.module, layer.weight.name
    C, H, W = layer.in_map
    if isinstance(m, nn.Linear):
        if m.in_features != C * H * W:
            raise ShapeMismatchError(f"Linear '{name}' expects {m.in_features} inputs but receives a "
                                     f"{C}x{H}x{W} map ({C * H * W})", name)
        if H != W:
            raise UnsupportedParameterError(f"Linear '{name}' after a non-square {H}x{W} map would need a "
                                            "non-square kernel", name)
        w = m.weight.detach().cpu().double().numpy().reshape(m.out_features, C, H, W)
        b = None if m.bias is None else m.bias.detach().cpu().double().numpy()
        return w, b, H, (1, 1), (0, 0), (m.out_features, 1, 1)
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
    w = m.weight.detach().cpu().double().numpy()
    b = None if m.bias is None else m.bias.detach().cpu().double().numpy()
    out = _as_map(layer.weight.out_shape)
    return w, b, k[0], _pair(m.stride), pad, out


def _fold_bn(w, b, bn: nn.Module):
    g = bn.weight.detach().double().numpy() if bn.weight is not None else np.ones(w.shape[0])
    beta = bn.bias.detach().double().numpy() if bn.bias is not None else np.zeros(w.shape[0])
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    factor = g / np.sqrt(var + bn.eps)
    w = w * factor.reshape(-1, 1, 1, 1)
    b = beta + ((b if b is not None else 0.0) - mean) * factor
    return w, b


def _initial_vmem(node: Node, shape) -> np.ndarray | None:
    v = getattr(node.module, "v_mem", None)
    if not isinstance(v, torch.Tensor) or v.numel() == 0:
        return None
    v0 = v.detach().cpu().double().numpy()
    v0 = v0[0] if v0.ndim >= 2 and v0.size != int(np.prod(shape)) else v0
    if v0.size != int(np.prod(shape)):
        raise ShapeMismatchError(f"spiking layer '{node.name}' has a v_mem state of shape {tuple(v.shape)} that "
                                 f"does not match its map {shape}", node.name)
    if not np.any(v0):
        return None
    return v0.reshape(shape)


def _extend_for_readout(w, bias, v0):
    """speck2e/2f readout errata: class k is fed by channel 4(k-1), so channel i moves to 4i
    (sinabs ``utils.extend_readout_layer``); the channels in between stay silent (zero weights)."""
    C = w.shape[0]
    n = (C - 1) * 4 + 1
    w2 = np.zeros((n, *w.shape[1:]))
    w2[::4] = w
    b2 = None if bias is None else np.zeros(n)
    if b2 is not None:
        b2[::4] = bias
    v2 = None
    if v0 is not None:
        v2 = np.zeros((n, *v0.shape[1:]))
        v2[::4] = v0
    return w2, b2, v2


def compile(model, input_shape=None, *, chip: str = "speck2f", dvs=None, monitor="exits",
            core_map: dict | None = None, slow_clock_hz: float | None = None, readout=None) -> ChipConfig:
    """Compile a spiking network into a validated :class:`ChipConfig`.

    Args:
        model: a ``torch.nn.Module`` (Conv2d, Linear, AvgPool2d, Flatten, BatchNorm, Identity, Dropout and
            sinabs IAFSqueeze / IAF / SumPool2d / Merge; sequential or any DAG), or a ``nir.NIRGraph``.
        input_shape: (C, H, W) of the network input.
        chip: "speck2f" (default), "speck2e" or "dynapcnn".
        dvs: None, True (add a DVS input stage feeding the first layers), or a :class:`DVSConfig`.
        monitor: which cores send their output spikes to the host: "exits" (default), "all", None, or a list
            of layer names / layer indices.
        core_map: pin layers to cores, ``{layer name or index: core}``; the rest are assigned automatically.
        slow_clock_hz: slow-clock rate stored in the config (needed for leak / biases / readout).
        readout: None, True or a :class:`ReadoutConfig`: route the single output layer to the readout layer
            (core 12). With the speck2e/2f errata on (default) its channel i is moved to 4i.

    Raises:
        CompileError (a subclass naming the module) when the chip cannot hold the model.
    """
    if type(model).__module__.startswith("nir"):
        return compile_nir(model, input_shape, chip=chip, dvs=dvs, monitor=monitor, core_map=core_map,
                           slow_clock_hz=slow_clock_hz, readout=readout)
    if input_shape is None:
        raise CompileError("input_shape (C, H, W) is required")
    if len(tuple(input_shape)) != 3:
        raise CompileError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    spec = get_chip(chip)
    b = _Builder(model, input_shape, spec, dvs)
    layers = b.group()
    if not layers:
        raise CompileError("the model has no weight layer")
    notes: list[str] = []

    # avg-pool rescale factors per destination layer
    incoming: dict[int, dict[float, list[str]]] = {}
    for l in layers:
        for d in l.dests:
            if d.target is not None:
                incoming.setdefault(d.target, {}).setdefault(d.rescale, []).append(l.name)
    for l in layers:
        facs = incoming.get(l.index, {})
        if len(facs) > 1:
            detail = "; ".join(f"x{f:g} from {', '.join(srcs)}" for f, srcs in facs.items())
            raise PoolingConflictError(f"layer '{l.name}' receives from sources with different average-pool "
                                       f"rescale factors ({detail}); use SumPool2d or equal pools", l.name)
        l.rescale = next(iter(facs)) if facs else 1.0

    # destinations and merges
    for l in layers:
        real = [d for d in l.dests if d.target is not None]
        if len(real) > spec.max_destinations:
            names = ", ".join(f"'{layers[d.target].name}'" for d in real)
            raise TooManyDestinationsError(f"spiking layer '{l.neuron.name}' feeds {len(real)} layers ({names}); a "
                                           f"core has {spec.max_destinations} destinations", l.neuron.name)
        for d in real:
            if d.pooling not in spec.poolings:
                raise UnsupportedParameterError(f"pooling {d.pooling} from '{l.neuron.name}' to "
                                                f"'{layers[d.target].name}' (modules {d.modules}); the chip pools "
                                                f"by {spec.poolings}", d.modules[-1] if d.modules else l.name)

    ro_cfg = (ReadoutConfig() if readout is True else readout) or None
    ro_layer = None
    if ro_cfg is not None:
        exits = [l for l in layers if not any(d.target is not None for d in l.dests)]
        if len(exits) != 1:
            raise CompileError(f"the readout layer needs exactly one output layer; the model has {len(exits)} "
                               f"({', '.join(l.name for l in exits)})")
        ro_layer = exits[0]
        if sum(d.target is not None for d in ro_layer.dests) + 1 > spec.max_destinations:
            raise TooManyDestinationsError(f"'{ro_layer.neuron.name}' has no destination left for the readout",
                                           ro_layer.neuron.name)

    if len(layers) > spec.n_cores:
        raise TooManyLayersError(f"the model has {len(layers)} core layers ("
                                 f"{', '.join(l.name for l in layers)}); {spec.name} has {spec.n_cores} cores")

    # per-layer geometry, discretization, resources
    built = {}
    too_big = []
    for l in layers:
        w, bias, k, stride, pad, out = _conv_geometry(l)
        if l.bn is not None:
            w, bias = _fold_bn(w, bias, l.bn.module)
        if _as_map(l.neuron.out_shape) != out:
            raise ShapeMismatchError(f"spiking layer '{l.neuron.name}' output {l.neuron.out_shape} != {out}",
                                     l.neuron.name)
        thr, low, rtz = _spiking_params(l.neuron)
        v0 = _initial_vmem(l.neuron, out)
        if l is ro_layer:
            max_classes = 15 if (ro_cfg.errata or ro_cfg.address_sel != 3) else 16
            if out[1:] != (1, 1) and ro_cfg.address_sel == 3:
                raise ShapeMismatchError(f"readout (1x1y16f) needs a 1x1 output map; '{l.name}' gives {out}", l.name)
            if ro_cfg.address_sel == 3 and out[0] > max_classes:
                raise CompileError(f"'{l.name}' has {out[0]} outputs; the readout has {max_classes} classes", l.name)
            if ro_cfg.errata and ro_cfg.address_sel == 3:
                w, bias, v0 = _extend_for_readout(w, bias, v0)
                out = (w.shape[0], out[1], out[2])
                notes.append(f"layer '{l.name}': readout errata remap, channel i -> 4i ({out[0]} channels)")
        d = discretize_layer(w * l.rescale, bias, thr, low, v0, name=l.name)
        notes.extend(d.warnings)
        for what, val, ok in (("kernel size", k, 1 <= k <= spec.max_kernel),
                              ("stride", stride, all(s in spec.strides for s in stride)),
                              ("padding", pad, all(0 <= p <= spec.max_padding for p in pad)),
                              ("channels", (l.in_map[0], out[0]), max(l.in_map[0], out[0]) <= spec.max_channels),
                              ("input map", l.in_map[1:], max(l.in_map[1:]) <= spec.max_input_size),
                              ("neuron map", out[1:], max(out[1:]) <= spec.max_output_size)):
            if not ok:
                raise UnsupportedParameterError(f"layer '{l.name}': {what} {val} is beyond the chip's limits "
                                                f"(kernel<=16, stride {spec.strides}, padding<=7, channels<=1024, "
                                                f"input<=128x128, neurons<=64x64)", l.name)
        need = {"kernel": kernel_memory(l.in_map[0], out[0], k), "neuron": neuron_memory(*out),
                "bias": out[0] if np.any(d.biases) else 0}
        feasible = [c.core for c in spec.cores
                    if need["kernel"] <= c.kernel and need["neuron"] <= c.neuron and need["bias"] <= c.bias]
        if not feasible:
            too_big.append((l.name, need))
        built[l.index] = _Built(k, stride, pad, out, d, rtz, feasible)
    if too_big:
        big = spec.largest()
        lines = [f"'{n}' needs kernel {_ki(x['kernel'])}, neuron {_ki(x['neuron'])}, bias {x['bias']}"
                 for n, x in too_big]
        raise LayerDoesNotFitError(
            f"{len(too_big)} layer(s) fit no core of {spec.name} (largest kernel memory {_ki(big.kernel)}, "
            f"largest neuron memory {_ki(big.neuron)}, bias {big.bias} words):\n  " + "\n  ".join(lines), too_big)

    # core assignment
    order = layers
    pinned: dict[int, int] = {}
    for key, core in (core_map or {}).items():
        pos = next((i for i, l in enumerate(order) if key in (l.name, l.index)), None)
        if pos is None:
            raise CompileError(f"core_map names '{key}', which is not a layer (layers: "
                               f"{', '.join(l.name for l in order)})")
        if core not in built[order[pos].index].feasible:
            raise NoCoreAssignmentError(f"core_map pins '{order[pos].name}' to core {core}, which it does not fit "
                                        f"(fits {built[order[pos].index].feasible})", [order[pos].name])
        if core in pinned.values():
            raise NoCoreAssignmentError(f"core_map pins two layers to core {core}", [order[pos].name])
        pinned[pos] = core
    assignment, culprits = match([built[l.index].feasible for l in order], pinned)
    if culprits:
        group = [order[i] for i in culprits]
        cores = sorted({c for l in group for c in built[l.index].feasible})
        detail = "; ".join(f"'{l.name}' fits cores {built[l.index].feasible}" for l in group)
        raise NoCoreAssignmentError(f"{len(group)} layers compete for {len(cores)} core(s) {cores}: {detail}",
                                    [l.name for l in group])
    core_of = {l.index: assignment[i] for i, l in enumerate(order)}

    # monitors
    exits = {l.index for l in layers if not any(d.target is not None for d in l.dests)}
    if monitor == "exits":
        mon = exits
    elif monitor == "all":
        mon = {l.index for l in layers}
    elif monitor is None:
        mon = set()
    else:
        mon = set()
        for key in monitor:
            hit = [l.index for l in layers if key in (l.name, l.index)]
            if not hit:
                raise CompileError(f"monitor names '{key}', which is not a layer")
            mon.update(hit)

    cores = {}
    for l in order:
        k, stride, pad, out, d, rtz, _ = built[l.index]
        pools = [m for dd in l.dests for m in dd.modules]
        exit_pool = max([dd.pooling for dd in l.dests if dd.target is None] or [1])
        cc = CoreConfig(
            core=core_of[l.index], input_shape=l.in_map, output_shape=out, kernel_size=k, stride=stride,
            padding=pad, weights=d.weights, biases=d.biases, threshold_high=d.threshold_high,
            threshold_low=d.threshold_low,
            initial_vmem=d.initial_vmem if d.initial_vmem is not None else np.zeros(out, np.int16),
            return_to_zero=rtz, leak_enable=bool(np.any(d.biases)), monitor=l.index in mon,
            destinations=[Destination(core_of[dd.target], dd.pooling) for dd in l.dests if dd.target is not None]
            + ([Destination(spec.readout_id, 1)] if l is ro_layer else []),
            provenance=Provenance(layer_index=order.index(l), scale=d.scale, weight_rescale=l.rescale,
                                  modules=[l.weight.name] + ([l.bn.name] if l.bn else []) + [l.neuron.name]
                                  + list(dict.fromkeys(pools)), exit_pooling=exit_pool))
        if exit_pool > 1:
            notes.append(f"layer '{l.name}': pooling {exit_pool} after the last layer is not applied on chip "
                         "(monitored spikes are pre-pooling)")
        cores[cc.core] = cc

    dvs_cfg = None
    if b.dvs is not None and b.dvs is not False:
        C, H, W = b.input_shape
        if C > 2:
            raise CompileError(f"the DVS input stage gives 1 or 2 channels; input_shape has {C}")
        # the model's input is the sensor map; pooling on it is done by the DVS stage
        dvs_cfg = b.dvs if isinstance(b.dvs, DVSConfig) else DVSConfig(
            input_size=(H, W), pooling=(b.dvs_pool, b.dvs_pool), merge_polarities=C == 1)
        dvs_cfg.destinations = [core_of[i] for i in b.entry_layers]
        for core in dvs_cfg.destinations:
            if cores[core].input_shape != dvs_cfg.output_shape():
                raise ShapeMismatchError(f"the DVS stage sends {dvs_cfg.output_shape()} but core {core} "
                                         f"({cores[core].provenance.modules[0]}) takes {cores[core].input_shape}")
    cfg = ChipConfig(chip=spec.name, cores=cores, input_cores=[core_of[i] for i in b.entry_layers], dvs=dvs_cfg,
                     slow_clock_hz=slow_clock_hz, input_shape=b.input_shape,
                     layer_order=[core_of[l.index] for l in order], notes=notes, readout=ro_cfg)
    for n in notes:
        warnings.warn(n, CompileWarning, stacklevel=2)
    validate(cfg)
    return cfg


def _ki(n: int) -> str:
    return f"{n // 1024} Ki" if n >= 1024 else str(n)


def compile_nir(graph, input_shape=None, *, min_v_mem: float | None = None, **kwargs) -> ChipConfig:
    """Compile a NIR graph (Conv2d, Linear, Affine, IF, SumPool2d, Flatten) - see :mod:`.nir_import`.

    ``min_v_mem`` sets the chip's vmem floor (NIR's IF has none)."""
    from .nir_import import nir_to_torch

    module, shape = nir_to_torch(graph, input_shape, min_v_mem=min_v_mem)
    return compile(module, shape, **kwargs)
