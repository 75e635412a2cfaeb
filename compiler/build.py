"""Model -> ChipConfig as a list of named passes (each readable and testable alone):

    check_options -> trace (graph.extract) -> group_layers -> resolve_rescales -> check_destinations
    -> plan_readout -> build_layer (per layer: float params, discretize, limits, memory)
    -> assign_cores -> select_monitors -> make_dvs_stage -> assemble -> validate

Entry points: :func:`compile` (torch / sinabs modules, a NIR graph, or a ``.nir`` file) and :func:`compile_nir`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from .advice import ZEROED_FRACTION, bias_note, fit_advice, floor_note, ki, zeroed_weights_message
from .chips import ChipSpec, kernel_memory, neuron_memory
from .config import ChipConfig, CoreConfig, Destination, DVSConfig, Provenance, ReadoutConfig
from .discretize import Discretized, discretize_layer
from .dvs_stage import make_dvs_stage
from .errors import (CompileError, CompileWarning, InvalidParameterError,
                     LayerDoesNotFitError, NoCoreAssignmentError, PoolingConflictError, ShapeMismatchError,
                     TooManyDestinationsError, TooManyLayersError, UnsupportedParameterError, ZeroedWeightsError)
from .graph import as_float32_cpu, extract
from .grouping import Layer, LayerGraph, as_map, group_layers
from .layers import Spiking, conv_geometry, extend_for_readout, fold_bn, initial_vmem, spiking_params
from .mapping import match
from .options import (FloorSpec, Options, ResetSpec, check_layer_keys, check_options, decimator_for, input_shape_of,
                      neuron_for_chip, precision_for)
from .validate import validate

__all__ = ["compile", "compile_nir", "CompileWarning", "Options", "resolve_rescales", "check_destinations",
           "plan_readout", "build_layer", "assign_cores", "select_monitors", "make_dvs_stage", "assemble"]


@dataclass
class Built:
    """A layer's chip form before core assignment."""

    layer: Layer
    kernel: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    out: tuple[int, int, int]
    disc: Discretized
    spiking: Spiking  # the spiking parameters used (model units, overrides applied)
    rescale: float
    feasible: list[int]  # cores whose memory holds the layer
    needs: dict
    bias_range: tuple[float, float] | None = None  # float (min, max) of biases that survive discretization
    zeroed: tuple[str, bool] | None = None  # (message, refuse) when (nearly) all weights quantize to 0


# ----------------------------------------------------------------------------------------------- passes
def resolve_rescales(graph: LayerGraph, rescale: Callable | None) -> dict[int, float]:
    """Per layer, the factor its weights are multiplied by: the average pools in front of it (1/(ky*kx)
    each, chains multiply). Sources with different factors are a conflict (PoolingConflictError) unless
    ``rescale`` resolves it, as sinabs' ``weight_rescaling_fn`` does."""
    incoming: dict[int, dict[float, list[str]]] = {}
    for lay in graph.layers:
        for d in lay.dests:
            if d.target is not None:
                incoming.setdefault(d.target, {}).setdefault(d.rescale, []).append(lay.name)
    if graph.dvs is not None:
        for i in graph.entry_layers:
            incoming.setdefault(i, {}).setdefault(graph.dvs.rescale, []).append("the DVS stage")
    out: dict[int, float] = {}
    for lay in graph.layers:
        facs = incoming.get(lay.index, {})
        if len(facs) > 1:
            if rescale is None:
                detail = "; ".join(f"x{f:g} from {', '.join(srcs)}" for f, srcs in facs.items())
                raise PoolingConflictError(f"layer '{lay.name}' receives from sources with different average-pool "
                                           f"rescale factors ({detail}); use SumPool2d or equal pools, or "
                                           "compile(..., rescale='mean') as sinabs does", lay.name)
            out[lay.index] = float(rescale(set(facs)))
            if not np.isfinite(out[lay.index]) or out[lay.index] <= 0:
                raise CompileError(f"rescale gave {out[lay.index]} for layer '{lay.name}'; it must be > 0", lay.name)
        else:
            out[lay.index] = next(iter(facs)) if facs else 1.0
    return out


def check_destinations(graph: LayerGraph, spec: ChipSpec) -> None:
    if len(graph.layers) > spec.n_cores:
        raise TooManyLayersError(f"the model has {len(graph.layers)} core layers ("
                                 f"{', '.join(lay.name for lay in graph.layers)}); {spec.name} has {spec.n_cores} cores")
    for lay in graph.layers:
        real = [d for d in lay.dests if d.target is not None]
        if len(real) > spec.max_destinations:
            names = ", ".join(f"'{graph.by_index(d.target).name}'" for d in real if d.target is not None)
            raise TooManyDestinationsError(f"spiking layer '{lay.neuron.name}' feeds {len(real)} layers ({names}); a "
                                           f"core has {spec.max_destinations} destinations", lay.neuron.name)
        for d in lay.dests:
            where = d.modules[-1] if d.modules else lay.neuron.name
            to = f"'{graph.by_index(d.target).name}'" if d.target is not None else "the output"
            if d.pooling[0] != d.pooling[1]:
                raise UnsupportedParameterError(f"pooling {d.pooling} from '{lay.neuron.name}' to {to} (modules "
                                                f"{d.modules}) is not square; cores pool square (only the DVS stage "
                                                "pools x and y independently)", where)
            if d.target is not None and d.pooling[0] not in spec.poolings:
                raise UnsupportedParameterError(f"pooling {d.pooling[0]} from '{lay.neuron.name}' to {to} (modules "
                                                f"{d.modules}); the chip pools by {spec.poolings}", where)


def plan_readout(graph: LayerGraph, ro: ReadoutConfig | None, spec: ChipSpec) -> Layer | None:
    """The layer routed to the readout (core 12), if a readout is asked for."""
    if ro is None:
        return None
    exits = [lay for lay in graph.layers if lay.exits]
    if len(exits) != 1:
        raise CompileError(f"the readout layer needs exactly one output layer; the model has {len(exits)} "
                           f"({', '.join(lay.name for lay in exits)})")
    lay = exits[0]
    if sum(d.target is not None for d in lay.dests) + 1 > spec.max_destinations:
        raise TooManyDestinationsError(f"'{lay.neuron.name}' has no destination left for the readout", lay.neuron.name)
    return lay


def build_layer(lay: Layer, rescale: float, spec: ChipSpec, opts: Options, ro_layer: Layer | None,
                notes: list[str]) -> Built:
    """One layer's float parameters -> discretized integers, checked against the chip's limits and memory."""
    g = conv_geometry(lay)
    w, bias, out = g.weights, g.bias, g.out
    if lay.bn is not None:
        w, bias = fold_bn(w, bias, lay.bn)
    if as_map(lay.neuron.out_shape) != out:
        raise ShapeMismatchError(f"spiking layer '{lay.neuron.name}' output {lay.neuron.out_shape} != {out}",
                                 lay.neuron.name)
    sp = neuron_for_chip(spiking_params(lay.neuron), lay.name, lay.neuron.name, opts)
    v0, v_full = (None, None) if opts.initial_vmem == "zero" else initial_vmem(lay.neuron, out)
    if v0 is not None and opts.initial_vmem is None:
        notes.append(f"layer '{lay.name}': spiking layer '{lay.neuron.name}' carries {int(np.count_nonzero(v0))} "
                     "non-zero v_mem values from an earlier forward pass; they become the chip's initial state. Call "
                     "model.reset_states() first, or compile(..., initial_vmem='zero') (or 'model' to keep them "
                     "without this warning)")
    if lay is ro_layer:
        w, bias, v0, out = _readout_remap(lay, opts.readout, w, bias, v0, out, notes)
        v_full = v0
    if rescale != 1.0:
        w = w * np.float32(rescale)  # float32, as torch multiplies a float32 tensor by a Python scalar
    d = discretize_layer(w, bias, sp.threshold, sp.min_v_mem, v0, v_mem_scale_from=v_full, name=lay.name,
                         precision=precision_for(lay.name, lay.neuron.name, opts))
    floor = sp.min_v_mem if sp.min_v_mem is not None else -32768
    if d.threshold_high < 1:
        raise InvalidParameterError(
            f"spiking layer '{lay.neuron.name}': threshold {sp.threshold} discretizes to {d.threshold_high} (factor "
            f"{d.scale:.3g}, limited by the vmem range [{floor}, {sp.threshold}]); a neuron would fire on every "
            "update - set min_v_mem (e.g. -1.0 x threshold) or scale weights and threshold up", lay.neuron.name)
    zeroed = _zeroed(lay, d, sp.threshold, sp.min_v_mem, bias)
    notes.extend(d.warnings if zeroed is None else [n for n in d.warnings if n not in d.scale_notes])
    _check_limits(lay, g, out, spec)
    needs = {"kernel": kernel_memory(lay.in_map[0], out[0], g.kernel), "neuron": neuron_memory(*out),
             "bias": out[0] if np.any(d.biases) else 0}
    feasible = [c.core for c in spec.cores
                if needs["kernel"] <= c.kernel and needs["neuron"] <= c.neuron and needs["bias"] <= c.bias]
    return Built(lay, g.kernel, g.stride, g.padding, out, d, sp, rescale, feasible, needs,
                 None if bias is None or not np.any(d.biases) else (float(bias.min()), float(bias.max())), zeroed)


def _zeroed(lay: Layer, d: Discretized, threshold: float, floor: float | None, bias) -> tuple[str, bool] | None:
    """(message, refuse) for a layer whose weights (nearly) all quantize to 0, else None."""
    frac = d.zeroed_weights / d.nonzero_weights if d.nonzero_weights else 0.0
    if not (d.all_weights_zeroed or frac >= ZEROED_FRACTION):
        return None
    bias_max = float(np.abs(bias).max()) if bias is not None and bias.size else 0.0
    return zeroed_weights_message(lay.name, d, threshold, floor, bias_max)


def check_quantization(built: list[Built], opts: Options, notes: list[str]) -> None:
    """Layers whose weights (nearly) all quantize to 0 cannot work as trained: one ZeroedWeightsError naming
    each (the range that capped its scale, the fix), unless ``allow_zeroed_weights`` makes them warnings. Runs
    after the memory check, which does not depend on the values."""
    bad = [b for b in built if b.zeroed is not None and b.zeroed[1]]
    if bad and not opts.allow_zeroed_weights:
        detail = "\n  ".join(b.zeroed[0] for b in bad if b.zeroed is not None)
        raise ZeroedWeightsError(
            (f"{len(bad)} layers' weights quantize to zero:\n  {detail}" if len(bad) > 1 else detail)
            + "\n(compile(..., allow_zeroed_weights=True) compiles them anyway)", bad[0].layer.name)
    notes.extend(b.zeroed[0] for b in built if b.zeroed is not None)


def _readout_remap(lay, ro, w, bias, v0, out, notes):
    max_classes = 15 if (ro.errata or ro.address_sel != 3) else 16
    if out[1:] != (1, 1) and ro.address_sel == 3:
        raise ShapeMismatchError(f"readout (1x1y16f) needs a 1x1 output map; '{lay.name}' gives {out}", lay.name)
    if ro.address_sel == 3 and out[0] > max_classes:
        raise CompileError(f"'{lay.name}' has {out[0]} outputs; the readout has {max_classes} classes", lay.name)
    if ro.errata and ro.address_sel == 3:
        w, bias, v0 = extend_for_readout(w, bias, v0)
        out = (w.shape[0], out[1], out[2])
        notes.append(f"layer '{lay.name}': readout errata remap, channel i -> 4i ({out[0]} channels)")
    return w, bias, v0, out


def _check_limits(lay: Layer, g, out, spec: ChipSpec) -> None:
    for what, val, ok in (("kernel size", g.kernel, 1 <= g.kernel <= spec.max_kernel),
                          ("stride", g.stride, all(s in spec.strides for s in g.stride)),
                          ("padding", g.padding, all(0 <= p <= spec.max_padding for p in g.padding)),
                          ("channels", (lay.in_map[0], out[0]), max(lay.in_map[0], out[0]) <= spec.max_channels),
                          ("input map", lay.in_map[1:], max(lay.in_map[1:]) <= spec.max_input_size),
                          ("neuron map", out[1:], max(out[1:]) <= spec.max_output_size)):
        if not ok:
            raise UnsupportedParameterError(f"layer '{lay.name}': {what} {val} is beyond the chip's limits "
                                            f"({spec.limits_text()})", lay.name)


def check_fit(built: list[Built], spec: ChipSpec) -> None:
    """Every layer must fit some core's memory: else one error with, per layer, why and what would fit."""
    too_big = [b for b in built if not b.feasible]
    if too_big:
        lines = [fit_advice(b.layer.name, type(b.layer.weight.module).__name__, b.out[0], b.kernel,
                            b.layer.in_map, b.out[1:], b.needs, spec) for b in too_big]
        big = spec.largest()
        raise LayerDoesNotFitError(f"{len(too_big)} layer(s) fit no core of {spec.name} (largest kernel memory "
                                   f"{ki(big.kernel)}, largest neuron memory {ki(big.neuron)}, bias {big.bias} words):"
                                   "\n  " + "\n  ".join(lines),
                                   [(b.layer.name, b.needs) for b in too_big])


def assign_cores(built: list[Built], core_map: dict | None, spec: ChipSpec) -> dict[int, int]:
    """Layer index -> core: the user's pins, then sinabs' Edmonds-Karp matching for the rest."""
    pinned: dict[int, int] = {}
    for key, core in (core_map or {}).items():
        pos = next((i for i, b in enumerate(built) if key in (b.layer.name, b.layer.index)), None)
        if pos is None:
            raise CompileError(f"core_map names '{key}', which is not a layer (layers: "
                               f"{', '.join(b.layer.name for b in built)})")
        b = built[pos]
        if not isinstance(core, (int, np.integer)) or core not in b.feasible:
            raise NoCoreAssignmentError(f"core_map pins '{b.layer.name}' to core {core!r}, which it does not fit "
                                        f"(fits {b.feasible})", [b.layer.name])
        if core in pinned.values():
            raise NoCoreAssignmentError(f"core_map pins two layers to core {core}", [b.layer.name])
        pinned[pos] = int(core)
    assignment, culprits = match([b.feasible for b in built], pinned, spec.n_cores)
    if culprits:
        group = [built[i] for i in culprits]
        cores = sorted({c for b in group for c in b.feasible if c not in pinned.values()})
        detail = "; ".join(f"'{b.layer.name}' fits cores {b.feasible}" for b in group)
        raise NoCoreAssignmentError(f"{len(group)} layers compete for {len(cores)} free core(s) {cores}: {detail}",
                                    [b.layer.name for b in group])
    return {b.layer.index: int(assignment[i]) for i, b in enumerate(built)}  # type: ignore[arg-type]


def select_monitors(graph: LayerGraph, monitor) -> tuple[set[int], bool]:
    """(layer indices whose spikes go to the host, whether the DVS stage is monitored)."""
    exits = {lay.index for lay in graph.layers if lay.exits}
    dvs_only = graph.dvs is not None and not graph.entry_layers
    if monitor == "exits":
        return exits, dvs_only
    if monitor == "all":
        return {lay.index for lay in graph.layers}, graph.dvs is not None
    if monitor is None:
        return set(), dvs_only
    mon: set[int] = set()
    dvs = dvs_only
    for key in monitor:
        if key == "dvs":
            if graph.dvs is None:
                raise CompileError("monitor names 'dvs', but the model has no DVS stage")
            dvs = True
            continue
        hit = [lay.index for lay in graph.layers if key in (lay.name, lay.index)]
        if not hit:
            raise CompileError(f"monitor names {key!r}, which is not a layer (layers: "
                               f"{', '.join(lay.name for lay in graph.layers)}, or 'dvs')")
        mon.update(hit)
    return mon, dvs


def _geometry_notes(built: list[Built], core_of, graph: LayerGraph, monitors: set[int], opts: Options,
                    notes: list[str]) -> None:
    """Notes on what compiles but may not behave as trained: pooled monitors, spikes pooled off a map, vmem floors
    near zero (one note for all layers), biases with no slow clock to apply them (one note)."""
    close_floors = [(b.layer.name, b.disc.threshold_low, b.disc.threshold_high) for b in built
                    if (b.disc.weights < 0).any() and (b.disc.weights > 0).any()
                    and -b.disc.threshold_low <= 2 * b.disc.threshold_high]
    biased = [(b.layer.name, *b.bias_range, int(b.disc.biases.min()), int(b.disc.biases.max())) for b in built
              if b.bias_range is not None]
    by_index = {b.layer.index: b for b in built}
    for b in built:
        lay = b.layer
        pools = [d.pooling[0] for d in lay.dests if d.pooling[0] > 1]
        if lay.index in monitors and pools:
            notes.append(f"layer '{lay.name}' is monitored and pools its output by {max(pools)}: the host sees its "
                         "spikes before pooling (as sinabs warns)")
        for d in lay.dests:
            p = d.pooling[0]
            if d.target is not None and p > 1 and (b.out[1] % p or b.out[2] % p):
                notes.append(f"layer '{lay.name}' ({b.out[1]}x{b.out[2]}) pools by {p} into '{by_index[d.target].layer.name}'"
                             f": spikes of its last {b.out[1] % p} row(s) / {b.out[2] % p} column(s) land off the "
                             "destination's map; torch drops them and so does the simulator (SimOptions"
                             "(drop_off_map=True)); check what your chip does with speckstream hwcheck")
    notes.extend(n for n in (floor_note(close_floors), bias_note(biased, opts.slow_clock_hz)) if n)


def assemble(graph: LayerGraph, built: list[Built], core_of: dict[int, int], monitors: set[int],
             ro_layer: Layer | None, dvs_cfg: DVSConfig | None, opts: Options, notes: list[str]) -> ChipConfig:
    spec = opts.chip
    cores = {}
    for pos, b in enumerate(built):
        lay = b.layer
        pools = [m for d in lay.dests for m in d.modules]
        exit_pool = max([d.pooling[0] for d in lay.dests if d.target is None] or [1])
        dests = [Destination(core_of[d.target], d.pooling[0]) for d in lay.dests if d.target is not None]
        if lay is ro_layer:
            dests.append(Destination(spec.readout_id, 1))
        d = b.disc
        cc = CoreConfig(
            core=core_of[lay.index], input_shape=lay.in_map, output_shape=b.out, kernel_size=b.kernel,
            stride=b.stride, padding=b.padding, weights=d.weights, biases=d.biases,
            threshold_high=d.threshold_high, threshold_low=d.threshold_low,
            initial_vmem=d.initial_vmem if d.initial_vmem is not None else np.zeros(b.out, np.int16),
            return_to_zero=b.spiking.return_to_zero, leak_enable=bool(np.any(d.biases)), monitor=lay.index in monitors,
            destinations=dests, decimator=decimator_for(lay.name, lay.neuron.name, opts),
            provenance=Provenance(layer_index=pos, scale=d.scale, weight_rescale=b.rescale,
                                  modules=[lay.weight.name] + ([lay.bn.name] if lay.bn else []) + [lay.neuron.name]
                                  + list(dict.fromkeys(pools)), exit_pooling=exit_pool,
                                  neuron=lay.neuron.name, threshold=b.spiking.threshold,
                                  min_v_mem=b.spiking.min_v_mem))
        cores[cc.core] = cc
    if opts.readout is not None and opts.readout.monitor and monitors:
        notes.append("readout.monitor is on together with spike monitors: on the chip, monitoring the readout "
                     "stops spike monitoring (SynSense's readout notebook)")
    return ChipConfig(chip=spec.name, cores=cores, input_cores=[core_of[i] for i in graph.entry_layers],
                      dvs=dvs_cfg, slow_clock_hz=opts.slow_clock_hz, input_shape=graph.input_shape,
                      layer_order=[core_of[b.layer.index] for b in built], notes=notes, readout=opts.readout)


# ----------------------------------------------------------------------------------------------- entry
def _normalise(model, input_shape):
    """(torch module, input shape) from what compile() was given: a module, a nir.NIRGraph or a .nir path."""
    from .nir_import import is_nir_graph, load_nir, nir_to_torch

    if isinstance(model, (str, Path)):
        if not str(model).lower().endswith(".nir"):
            raise CompileError(f"compile() takes a torch.nn.Module, a nir.NIRGraph or a path to a .nir file; got the "
                               f"string {str(model)!r}")
        model = load_nir(model)
    if is_nir_graph(model):
        return nir_to_torch(model, input_shape)
    if not isinstance(model, nn.Module):
        raise CompileError(f"compile() takes a torch.nn.Module, a nir.NIRGraph or a path to a .nir file; got a "
                           f"{type(model).__name__}")
    return model, input_shape


def compile(model, input_shape=None, *, chip: str = "speck2f", dvs=None, monitor="exits",
            core_map: dict | None = None, slow_clock_hz: float | None = None, readout=None, rescale=None,
            initial_vmem: str | None = None, min_v_mem: FloorSpec | dict = "model",
            reset: ResetSpec | dict = "model", allow_zeroed_weights: bool = False,
            threshold_scale: float | dict = 1.0, precision: float | dict = 1.0,
            decimator: int | dict = 1) -> ChipConfig:
    """Compile a spiking network into a validated :class:`ChipConfig`.

    Args:
        model: a ``torch.nn.Module`` (Conv2d, Linear, AvgPool2d, Flatten, BatchNorm, Identity, Dropout and
            sinabs IAFSqueeze / IAF / SumPool2d / Merge / DVSLayer; sequential or any DAG; any dtype or
            device: parameters are read from a float32 CPU copy), a ``nir.NIRGraph``, or a path to a ``.nir``
            file (read as sinabs.from_nir reads it: IF neurons subtract their threshold and get a vmem floor of
            -threshold; ``min_v_mem`` / ``reset`` change that).
        input_shape: (C, H, W) of what the model receives (the sensor map for a model that starts with
            pooling or a sinabs DVSLayer, from which it can be inferred; a NIR graph's Input node gives it).
        chip: "speck2f" (default), "speck2e" or "dynapcnn".
        dvs: None (a DVS stage only if the model starts with a sinabs DVSLayer), True (a DVS stage fed by
            host-written DvsEvents; it absorbs pooling on the input, x and y independently), "sensor" (the
            same, fed by the chip's own camera: live input), False, or a :class:`DVSConfig`.
        monitor: which layers send their output spikes to the host: "exits" (default), "all", None, or a
            list of layer names / indices (and "dvs").
        core_map: pin layers to cores, ``{layer name or index: core}``; the rest are assigned as sinabs does.
        slow_clock_hz: slow-clock rate stored in the config (needed for leak / biases / readout), 1..1e6 Hz.
            A bias acts once per tick: 1e6 / dt_us Hz approximates a model trained with time step dt.
        readout: None, True or a :class:`ReadoutConfig`: route the single output layer to the readout layer
            (core 12). With the speck2e/2f errata on (default) its channel i is moved to 4i.
        rescale: how to weight a core fed through different average pools: None (refuse:
            PoolingConflictError), "mean" / "harmonic" (sinabs' rescale_method_1 / _2) or a callable taking
            the set of factors and returning one.
        initial_vmem: None (the model's neuron states become the chip's, with a warning when non-zero),
            "model" (the same, silently), or "zero".
        min_v_mem: the vmem floor of every spiking layer, in the model's units: "model" (its own; NIR:
            -threshold), "threshold" (-1 x each layer's threshold), None (no floor: -32768 on the chip), a
            number, or a dict ``{layer or spiking-module name: any of these}`` for some layers.
        reset: "model" (its own; NIR: subtract), "subtract" (the threshold) or "zero", or a dict per layer.
        allow_zeroed_weights: compile layers whose weights (nearly) all quantize to zero, with a warning,
            instead of refusing them (ZeroedWeightsError).
        threshold_scale: multiply each layer's threshold by this (> 0; or a dict per layer): the threshold
            relative to the weights, which ``ss.calibrate`` tunes.
        precision: use this fraction (0, 1] of the discretization factor sinabs would choose (or a dict per
            layer): 1 is sinabs' choice, bit for bit.
        decimator: the output decimator, the chip's documented remedy for a core that overloads the next one's
            bandwidth: 1 (off) or N, the layer passes 1 of every N spikes it fires (N in 2, 4, 8, 16, 32, 128,
            256, 512), or a dict per layer.

    Raises:
        CompileError (a subclass naming the module) when the chip cannot hold the model.
    """
    opts = check_options(chip, dvs, monitor, core_map, slow_clock_hz, readout, rescale, initial_vmem, min_v_mem,
                         reset, allow_zeroed_weights, threshold_scale, precision, decimator)
    model, input_shape = _normalise(model, input_shape)
    work = as_float32_cpu(model)
    shape = input_shape_of(input_shape, work)
    nodes, entries = extract(work, shape)
    graph = group_layers(nodes, entries, shape, opts.wants_dvs)
    if not graph.layers and graph.dvs is None:
        raise CompileError("the model has no weight layer (Conv2d / Linear); a model without one compiles only "
                           "as a DVS stage (dvs=True)")
    check_layer_keys(opts, [(lay.name, lay.neuron.name) for lay in graph.layers])
    notes: list[str] = []
    rescales = resolve_rescales(graph, opts.rescale)
    check_destinations(graph, opts.chip)
    ro_layer = plan_readout(graph, opts.readout, opts.chip)
    built = [build_layer(lay, rescales[lay.index], opts.chip, opts, ro_layer, notes) for lay in graph.layers]
    check_fit(built, opts.chip)
    check_quantization(built, opts, notes)
    core_of = assign_cores(built, opts.core_map, opts.chip)
    monitors, dvs_monitored = select_monitors(graph, opts.monitor)
    dvs_cfg = make_dvs_stage(graph, opts, core_of, dvs_monitored, notes)
    _geometry_notes(built, core_of, graph, monitors, opts, notes)
    cfg = assemble(graph, built, core_of, monitors, ro_layer, dvs_cfg, opts, notes)
    for n in notes:
        warnings.warn(n, CompileWarning, stacklevel=2)
    validate(cfg)
    return cfg


def compile_nir(graph, input_shape=None, **kwargs) -> ChipConfig:
    """Kept for earlier callers: :func:`compile` takes NIR graphs and ``.nir`` paths with the same options."""
    return compile(graph, input_shape, **kwargs)
