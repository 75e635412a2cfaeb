"""speckstream - compile spiking neural networks for SynSense Speck / DYNAP-CNN chips and stream
events through them (the embedded simulator by default, a devkit through samna).

The facade is lazy: ``import speckstream`` does not import torch (only :func:`compile` needs it, from the
``compile`` extra) nor the event loop.

    import speckstream as ss
    config = ss.compile(model, input_shape=(2, 34, 34))          # -> ChipConfig
    async with ss.open_device("sim") as dev:                      # trio or asyncio (anyio)
        await dev.apply(config)
        ...
    with ss.connect("sim") as dev:                                # blocking: scripts, ROS 2 nodes
        dev.apply(config)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "compile": ("speckstream.compiler", "compile"),
    "simulate": ("speckstream.api", "simulate"),
    "evaluate": ("speckstream.api", "evaluate"),
    "compare": ("speckstream.api", "compare"),
    "EvalResult": ("speckstream.api", "EvalResult"),
    "CompareReport": ("speckstream.api", "CompareReport"),
    "calibrate": ("speckstream.calibration", "calibrate"),
    "profile": ("speckstream.profiling", "profile"),
    "Profile": ("speckstream.profiling", "Profile"),
    "EnergyModel": ("speckstream.sim.energy", "EnergyModel"),
    "Calibration": ("speckstream.calibration", "Calibration"),
    "SpeckstreamError": ("speckstream.errors", "SpeckstreamError"),
    "SpeckstreamWarning": ("speckstream.errors", "SpeckstreamWarning"),
    "MissingExtraError": ("speckstream.errors", "MissingExtraError"),
    "CompileError": ("speckstream.compiler.errors", "CompileError"),
    "ChipConfig": ("speckstream.compiler.config", "ChipConfig"),
    "load_config": ("speckstream.compiler.config", "load_config"),
    "open_device": ("speckstream.runtime", "open_device"),
    "connect": ("speckstream.runtime", "connect"),
    "Session": ("speckstream.runtime", "Session"),
    "ChipSimulator": ("speckstream.sim", "ChipSimulator"),
    "codec": ("speckstream.codec", None),
    "digits": ("speckstream.digits", None),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from speckstream import codec  # noqa: F401
    from speckstream.api import CompareReport, EvalResult, compare, evaluate, simulate  # noqa: F401
    from speckstream.calibration import Calibration, calibrate  # noqa: F401
    from speckstream.sim.energy import EnergyModel  # noqa: F401
    from speckstream.profiling import Profile, profile  # noqa: F401
    from speckstream.compiler import compile  # noqa: F401
    from speckstream.errors import MissingExtraError, SpeckstreamError, SpeckstreamWarning  # noqa: F401
    from speckstream.compiler.config import ChipConfig, load_config  # noqa: F401
    from speckstream.compiler.errors import CompileError  # noqa: F401
    from speckstream.runtime import Session, connect, open_device  # noqa: F401
    from speckstream.sim import ChipSimulator  # noqa: F401


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'speckstream' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value
