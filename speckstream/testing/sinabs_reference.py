"""sinabs 3.1.3's own dynapcnn pipeline, run as a reference for the compiler tests - without samna.

``sinabs.backend.dynapcnn/__init__`` imports samna (whose PyPI release is a shim that runs pip when
imported). Its graph extractor, layer builder, discretizer, rescaling methods and mapper do not: we
register a bare parent package (no ``__init__`` executed) and import those modules from the installed
sinabs. samna is never imported (asserted).
"""
from __future__ import annotations

import importlib
import os
import sys
import types
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ['PKG', 'load', 'RefLayer', 'RefNet', 'reference', 'sinabs_match', 'sinabs_cores']

PKG = "sinabs.backend.dynapcnn"


def load(name: str):
    """``sinabs.backend.dynapcnn.<name>``, its package ``__init__`` not executed."""
    import sinabs

    if PKG not in sys.modules:
        importlib.import_module("sinabs.backend")
        stub = types.ModuleType(PKG)
        stub.__path__ = [os.path.join(os.path.dirname(sinabs.__file__), "backend", "dynapcnn")]
        sys.modules[PKG] = stub
    mod = importlib.import_module(f"{PKG}.{name}")
    assert "samna" not in sys.modules, "the sinabs reference must never import samna"
    return mod


@dataclass
class RefLayer:
    conv: str  # module names as sinabs (nirtorch) reports them, '.' -> '_'
    neuron: str
    in_shape: tuple
    pool: list  # per destination, (ky, kx)
    destinations: list  # layer conv names, or None for an exit
    rescale: float
    weights: np.ndarray  # int [out, in, ky, kx]
    biases: np.ndarray | None
    threshold: int
    min_v_mem: int | None


@dataclass
class RefNet:
    layers: list[RefLayer]  # sinabs' topological order
    entry: set  # conv names of the entry layers (or {"dvs"})
    dvs: dict | None = None  # sinabs DVS layer config dict and destinations
    modules: dict = field(default_factory=dict)  # sinabs layer index -> DynapcnnLayer, topological order

    def by_conv(self, name: str) -> RefLayer:
        return next(lay for lay in self.layers if lay.conv == name)


def reference(model, input_shape, *, dvs_input=None, rescale: str | None = "mean") -> RefNet:
    """What sinabs' DynapcnnNetwork builds from ``model`` (layer grouping, destinations, entry points,
    pooling, rescale factors and discretized parameters)."""
    import sinabs

    ne, ut, wr = load("nir_graph_extractor"), load("utils"), load("weight_rescaling_methods")
    fn = {"mean": wr.rescale_method_1, "harmonic": wr.rescale_method_2, None: None}[rescale]
    batch = sinabs.utils.get_smallest_compatible_time_dimension(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ge = ne.GraphExtractor(model, torch.randn((batch, *input_shape)), dvs_input,
                               ignore_node_types=ut.COMPLETELY_IGNORED_LAYER_TYPES)
        ge.remove_nodes_by_class(ut.IGNORED_LAYER_TYPES)
        mod = ge.get_dynapcnn_network_module(discretize=True, weight_rescaling_fn=fn)
        mod.setup_dynapcnnlayer_graph(index_layers_topologically=False)
    names = {i: n.replace(".", "_") for n, i in ge.name_2_indx_map.items()}
    conv_of = {i: names[info["conv"]["node_id"]] for i, info in ge.dcnnl_info.items()}
    layers = []
    order = [i for i in mod._sorted_nodes if i != "dvs"]
    for i in order:
        lay = mod.dynapcnn_layers[i]
        info = ge.dcnnl_info[i]
        conv = lay.conv_layer
        layers.append(RefLayer(
            conv=conv_of[i], neuron=names[info["neuron"]["node_id"]], in_shape=tuple(lay.in_shape),
            pool=[tuple(p) if not isinstance(p, int) else (p, p) for p in lay.pool],
            destinations=[conv_of[d] if d >= 0 else None for d in mod._destination_map[i]],
            rescale=float(lay.rescale_weights),
            weights=conv.weight.detach().numpy().astype(np.int64),
            biases=None if conv.bias is None else conv.bias.detach().numpy().astype(np.int64),
            threshold=int(lay.spk_layer.spike_threshold),
            min_v_mem=None if lay.spk_layer.min_v_mem is None else int(lay.spk_layer.min_v_mem)))
    entry = {conv_of[i] if i != "dvs" else "dvs" for i in mod._entry_points}
    dvs = None
    if mod.dvs_layer is not None:
        dvs = {"config": mod.dvs_layer.get_config_dict(),
               "destinations": [conv_of[d] for d in mod._destination_map.get("dvs", []) if d >= 0]}
    return RefNet(layers, entry, dvs, {i: mod.dynapcnn_layers[i] for i in order})


def sinabs_match(feasible: list[list[int]]) -> list[int] | None:
    """sinabs' Edmonds-Karp on a feasibility list (None when sinabs finds no complete mapping)."""
    mp = load("mapping")
    graph = mp.edmonds(mp.make_flow_graph(feasible, 9), 0, len(feasible) + 9 + 1)
    try:
        return mp.recover_mapping(graph, len(feasible))
    except ValueError:
        return None


def sinabs_cores(ref: RefNet, chip: str = "speck2f", order: list[str] | None = None) -> dict[str, int]:
    """sinabs' automatic core assignment (``get_valid_mapping``) for a reference net: conv name -> core.
    ``order`` (conv names) feeds the layers in that order instead of sinabs' own topological order."""
    from speckstream.compiler.chips import get_chip

    mp = load("mapping")
    cons = [mp.LayerConstraints(c.kernel, c.neuron, c.bias) for c in get_chip(chip).cores]
    conv = {i: lay.conv for i, lay in zip(ref.modules, ref.layers)}
    layers = ref.modules
    if order is not None:
        idx = {name: i for i, name in conv.items()}
        layers = {idx[name]: ref.modules[idx[name]] for name in order}
    mapping = mp.get_valid_mapping(layers, cons)
    return {conv[i]: core for i, core in mapping.items()}
