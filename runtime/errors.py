"""Runtime errors. All derive from :class:`DeviceError` (a ``RuntimeError`` under
``speckstream.SpeckstreamError``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SpeckstreamError

if TYPE_CHECKING:  # pragma: no cover
    from .stats import Accounting

__all__ = ["DeviceError", "DeviceNotFound", "SamnaUnavailable", "DeviceDisconnected", "DeviceClosed"]


class DeviceError(SpeckstreamError, RuntimeError):
    """A device failed or refused an operation."""


class DeviceNotFound(DeviceError):
    """No device matches the requested name (or samna sees none)."""


class SamnaUnavailable(DeviceNotFound):
    """A real devkit was requested but the real samna library is not installed."""


class DeviceDisconnected(DeviceError):
    """The device vanished ("it broke"). ``accounting`` (a session's error; None from a backend) says what
    happened to every accepted event: ``accepted == written + not_written`` and ``offered == accepted +
    dropped_by_policy``."""

    def __init__(self, message: str, accounting: Accounting | None = None):
        self.accounting = accounting
        super().__init__(message + (f" [{accounting}]" if accounting is not None else ""))


class DeviceClosed(DeviceError):
    """The session was closed ("you closed it"); open a new one."""
