"""The root of speckstream's errors and warnings.

``except speckstream.SpeckstreamError`` catches every error speckstream raises on purpose. Each stage has
its own base that also derives from the matching builtin, so existing ``except ValueError`` /
``except RuntimeError`` code keeps working:

* :class:`speckstream.compiler.errors.CompileError` (``ValueError``) - the model cannot go on the chip;
* :class:`speckstream.compiler.errors.ConfigValidationError` (``ValueError``) - a ChipConfig breaks a rule;
* :class:`speckstream.codec.errors.CodecError` (``ValueError``) - bad events, addresses or event files;
* :class:`speckstream.runtime.errors.DeviceError` (``RuntimeError``) - a device failed, vanished or is closed.
"""
from __future__ import annotations

__all__ = ["SpeckstreamError", "SpeckstreamWarning"]


class SpeckstreamError(Exception):
    """Base class of every error speckstream raises on purpose."""


class SpeckstreamWarning(UserWarning):
    """Base class of speckstream's warnings (compile notes, truncated files...)."""
