"""speckstream.compiler - torch / sinabs / NIR models -> validated ChipConfig.

Importing this package does not import torch: the config, chip tables and validator are torch-free,
and :func:`compile` loads the torch-based front end on first use.
"""
from __future__ import annotations

from .chips import CHIPS, ChipSpec, get_chip
from .config import ChipConfig, CoreConfig, Destination, DVSConfig, Provenance, ReadoutConfig, load_config
from .errors import CompileError, CompileWarning, ConfigValidationError
from .validate import validate

__all__ = ["compile", "compile_nir", "ChipConfig", "CoreConfig", "Destination", "DVSConfig", "Provenance",
           "ReadoutConfig", "load_config", "CompileError", "CompileWarning", "ConfigValidationError", "validate",
           "CHIPS", "ChipSpec", "get_chip"]


def __getattr__(name: str):
    if name in ("compile", "compile_nir"):
        from ..errors import require

        require("torch", "compile", f"speckstream.{name}")  # the runtime and simulator work without it
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module 'speckstream.compiler' has no attribute {name!r}")
