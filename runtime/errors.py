"""Runtime errors. All derive from :class:`DeviceError` (a ``RuntimeError`` under
``speckstream.SpeckstreamError``)."""
from __future__ import annotations

from ..errors import SpeckstreamError

__all__ = ["DeviceError", "DeviceNotFound", "SamnaUnavailable", "DeviceDisconnected", "DeviceClosed"]


class DeviceError(SpeckstreamError, RuntimeError):
    """A device failed or refused an operation."""


class DeviceNotFound(DeviceError):
    """No device matches the requested name (or samna sees none)."""


class SamnaUnavailable(DeviceNotFound):
    """A real devkit was requested but the real samna library is not installed."""


class DeviceDisconnected(DeviceError):
    """The device vanished mid-stream ("it broke"). ``accounting`` says what happened to every accepted event:
    ``accepted == written + not_written`` and ``offered == accepted + dropped_by_policy``."""

    def __init__(self, message: str, accounting: dict | None = None):
        self.accounting = accounting or {}
        super().__init__(message + (f" [{_fmt(self.accounting)}]" if accounting else ""))


class DeviceClosed(DeviceError):
    """The session was closed ("you closed it"); open a new one."""


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())
