"""Device backends behind :class:`speckstream.runtime.Session`: the simulator and samna devkits."""

__all__ = []
