"""The DVS input stage of a compiled configuration: from a sinabs DVSLayer in the model, a user's DVSConfig, or
defaults; pooling on the model's input is absorbed into it (x and y independently), as sinabs does."""
from __future__ import annotations

from dataclasses import replace

from .config import DVSConfig
from .errors import CompileError, TooManyDestinationsError, UnsupportedParameterError
from .grouping import LayerGraph
from .options import Options

__all__ = ["make_dvs_stage"]


def _dvs_from_module(node) -> DVSConfig:
    """A sinabs DVSLayer's settings (sinabs ``DVSLayer.get_config_dict``)."""
    m = node.module
    k = m.pool_layer.kernel_size
    pool = (int(k), int(k)) if isinstance(k, int) else (int(k[0]), int(k[1]))
    c = m.crop_layer
    crop = (int(c.top_crop), int(c.bottom_crop), int(c.left_crop), int(c.right_crop))
    H, W = int(m.input_shape[1]) // pool[0], int(m.input_shape[2]) // pool[1]
    f = m.flip_layer
    return DVSConfig(input_size=(int(m.input_shape[1]), int(m.input_shape[2])), pooling=pool,
                     crop=None if crop == (0, H, 0, W) else crop, merge_polarities=bool(m.merge_polarities),
                     flip_x=bool(f.flip_x), flip_y=bool(f.flip_y), swap_xy=bool(f.swap_xy),
                     pass_sensor_events=not bool(m.disable_pixel_array))


def make_dvs_stage(graph: LayerGraph, opts: Options, core_of: dict[int, int], monitored: bool,
                   notes: list[str]) -> DVSConfig | None:
    """The DVS stage: from a sinabs DVSLayer, a user DVSConfig, or defaults; the model's input pools absorbed
    (x and y independently, multiplying the stage's own pooling)."""
    st = graph.dvs
    if st is None:
        return None
    C, H, W = graph.input_shape
    if isinstance(opts.dvs, DVSConfig):
        if st.node is not None:
            raise CompileError(f"the model has a DVS layer '{st.node.name}' and compile() was given a DVSConfig; "
                               "describe the DVS stage once", st.node.name)
        cfg = replace(opts.dvs, destinations=list(opts.dvs.destinations))
        if cfg.input_size is None:
            cfg.input_size = (H, W)
    elif st.node is not None:
        cfg = _dvs_from_module(st.node)
        if opts.dvs is False:
            cfg.pass_sensor_events = False  # as sinabs' dvs_input=False: configured, camera not routed in
    else:
        if C > 2:
            raise CompileError(f"the DVS input stage gives 1 or 2 channels (polarities); input_shape has {C}")
        cfg = DVSConfig(input_size=(H, W), merge_polarities=C == 1)
    if opts.dvs == "sensor":
        cfg.pass_sensor_events = True
    if st.pooling != (1, 1):
        if cfg.crop is not None:
            raise CompileError(f"the DVS stage crops and the model pools its input ({', '.join(st.modules)}); "
                               "give the pooling in the DVS stage instead", st.modules[0])
        cfg.pooling = (cfg.pooling[0] * st.pooling[0], cfg.pooling[1] * st.pooling[1])
        bad = [v for v in cfg.pooling if v not in opts.chip.dvs_poolings]
        if bad:
            raise UnsupportedParameterError(f"input pooling {cfg.pooling} ({', '.join(st.modules)}): the DVS stage "
                                            f"pools by {opts.chip.dvs_poolings} per axis", st.modules[-1])
    cfg.destinations = [core_of[i] for i in graph.entry_layers]
    if len(cfg.destinations) > opts.chip.max_dvs_destinations:
        raise TooManyDestinationsError(f"the DVS stage feeds {len(cfg.destinations)} layers; it has "
                                       f"{opts.chip.max_dvs_destinations} destinations")
    cfg.monitor = bool(cfg.monitor or monitored)
    if cfg.monitor and cfg.pooling != (1, 1):
        notes.append(f"the DVS stage is monitored and pools by {cfg.pooling}: on the chip pooling may not be "
                     "reflected in monitored DVS events (sinabs warns so); the simulator shows pooled coordinates")
    return cfg
