"""The root of speckstream's errors and warnings.

``except speckstream.SpeckstreamError`` catches every error speckstream raises on purpose. Each stage has
its own base that also derives from the matching builtin, so existing ``except ValueError`` /
``except RuntimeError`` code keeps working:

* :class:`speckstream.compiler.errors.CompileError` (``ValueError``) - the model cannot go on the chip;
* :class:`speckstream.compiler.errors.ConfigValidationError` (``ValueError``) - a ChipConfig breaks a rule;
* :class:`speckstream.codec.errors.CodecError` (``ValueError``) - bad events, addresses or event files;
* :class:`speckstream.runtime.errors.DeviceError` (``RuntimeError``) - a device failed, vanished or is closed;
* :class:`MissingExtraError` (``ImportError``) - a feature needs an optional extra that is not installed.
"""
from __future__ import annotations

__all__ = ["SpeckstreamError", "SpeckstreamWarning", "MissingExtraError", "require"]


class SpeckstreamError(Exception):
    """Base class of every error speckstream raises on purpose."""


class SpeckstreamWarning(UserWarning):
    """Base class of speckstream's warnings (compile notes, truncated files...)."""


class MissingExtraError(SpeckstreamError, ImportError):
    """A feature needs a package from one of speckstream's extras (the message names the pip command)."""


def require(module: str, extra: str, feature: str):
    """Import ``module`` for ``feature``, or raise MissingExtraError naming ``pip install 'speckstream[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
            raise  # a broken installation of something else: not ours to explain
        raise MissingExtraError(f"{feature} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'speckstream[{extra}]'") from None
