"""ReadNeuronValue request builders and NeuronValue reply decoders."""
from __future__ import annotations

import numpy as np

from . import addresses
from .errors import CodecError
from .events import NEURON_STATE_DTYPE, NEURON_VALUE_DTYPE, READ_REQUEST_DTYPE, WRITE_REQUEST_DTYPE, _store_checked
from .layout import AddressLayout

__all__ = ['read_requests_for_core', 'read_requests', 'write_requests', 'decode_neuron_values',
           'states_to_image', 'vmem_image']


def read_requests_for_core(core: int, shape, *, layout: str = "packed") -> np.ndarray:
    """ReadNeuronValue requests for every neuron of a core's (C, H, W) map, in (y, x, c) address order."""
    lay = AddressLayout.for_shape(shape, layout)
    if lay.is_ambiguous:
        raise ValueError(
            f"the sinabs address layout is ambiguous on the wider-than-tall map {tuple(shape)}; "
            "use layout='packed' (see speckstream.codec.layout)"
        )
    C, H, W = lay.C, lay.H, lay.W
    yy, xx, cc = np.meshgrid(np.arange(H), np.arange(W), np.arange(C), indexing="ij")
    return read_requests(core, cc.ravel(), xx.ravel(), yy.ravel(), shape, layout=layout)


def _core_id(core) -> int:
    """A chip layer id as the request's ``core`` field holds it (0..255), else CodecError naming it."""
    if isinstance(core, bool) or not isinstance(core, (int, np.integer)) or not 0 <= int(core) <= 255:
        raise CodecError(f"core {core!r} is not a chip core id (an integer: 0-8 are the CNN cores)")
    return int(core)


def read_requests(core: int, c, x, y, shape, *, layout: str = "packed") -> np.ndarray:
    """ReadNeuronValue requests for a list of neurons (c, x, y) of one core."""
    core = _core_id(core)
    addr = addresses.encode(c, x, y, shape, layout=layout)
    out = np.empty(addr.shape[0], dtype=READ_REQUEST_DTYPE)
    out["core"] = core
    out["address"] = addr
    return out


def write_requests(core: int, c, x, y, vmem, shape, *, layout: str = "packed") -> np.ndarray:
    """WriteNeuronValue requests setting neurons (c, x, y) of one core to ``vmem`` (int16: a value that is not a
    whole number or does not fit [-32768, 32767] raises CodecError, never rounded or wrapped)."""
    core = _core_id(core)
    addr = addresses.encode(c, x, y, shape, layout=layout)
    try:
        v = np.broadcast_to(np.asarray(vmem), addr.shape)
    except ValueError:
        raise CodecError(f"vmem of shape {np.shape(vmem)} does not match the {addr.shape[0]} neurons") from None
    out = np.empty(addr.shape[0], dtype=WRITE_REQUEST_DTYPE)
    out["core"] = core
    out["address"] = addr
    _store_checked(out, "vmem", v)
    return out


def decode_neuron_values(values: np.ndarray, shape, *, layout: str = "packed",
                         drop_invalid: bool = False) -> np.ndarray:
    """NeuronValue replies of one core -> NEURON_STATE_DTYPE array with (c, x, y, vmem)."""
    values = np.asarray(values, dtype=NEURON_VALUE_DTYPE)
    if drop_invalid:
        c, x, y, keep = addresses.decode(values["address"], shape, layout=layout, drop_invalid=True)
        values = values[keep]
    else:
        c, x, y = addresses.decode(values["address"], shape, layout=layout)
    out = np.empty(values.shape[0], dtype=NEURON_STATE_DTYPE)
    out["t"] = values["t"]
    out["core"] = values["core"]
    out["c"], out["x"], out["y"] = c, x, y
    out["vmem"] = values["vmem"]
    return out


def states_to_image(states: np.ndarray, shape, fill: int = 0) -> np.ndarray:
    """Decoded neuron states (NEURON_STATE_DTYPE) -> int16 image [C, H, W]; the last state per neuron wins."""
    img = np.full(tuple(int(v) for v in shape), fill, dtype=np.int16)
    img[states["c"], states["y"], states["x"]] = states["vmem"]
    return img


def vmem_image(values: np.ndarray, shape, *, layout: str = "packed", fill: int = 0,
               return_mask: bool = False):
    """NeuronValue replies of one core -> dense int16 image [C, H, W] (the last reply per neuron wins).

    Neurons without a reply hold ``fill``; ``return_mask=True`` also returns the bool mask of neurons seen.
    """
    states = decode_neuron_values(values, shape, layout=layout)
    img = states_to_image(states, shape, fill)
    if return_mask:
        C, H, W = (int(v) for v in shape)
        seen = np.zeros((C, H, W), dtype=bool)
        seen[states["c"], states["y"], states["x"]] = True
        return img, seen
    return img
