"""speckstream.sim - the software chip behind the ``"sim"`` device (see :mod:`speckstream.sim.chip`)."""
from .chip import ENGINE, ChipSimulator, SimOptions
from .reference import ReferenceEngine

__all__ = ["ChipSimulator", "SimOptions", "ENGINE", "ReferenceEngine"]
