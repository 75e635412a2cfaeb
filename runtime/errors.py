"""Runtime errors. All derive from :class:`DeviceError`."""
from __future__ import annotations


class DeviceError(RuntimeError):
    """A device failed or refused an operation."""


class DeviceNotFound(DeviceError):
    """No device matches the requested name (or samna sees none)."""


class SamnaUnavailable(DeviceNotFound):
    """A real devkit was requested but the real samna library is not installed."""


class DeviceDisconnected(DeviceError):
    """The device vanished mid-stream. ``accounting`` says what happened to every accepted event."""

    def __init__(self, message: str, accounting: dict | None = None):
        self.accounting = accounting or {}
        super().__init__(message + (f" [{_fmt(self.accounting)}]" if accounting else ""))


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())
