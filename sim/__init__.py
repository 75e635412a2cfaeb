"""speckstream.sim - the software chip behind the ``"sim"`` device (see :mod:`speckstream.sim.chip`)."""
from ._engine import KERNELS
from .chip import ENGINE, ChipSimulator, SimOptions
from .reference import ReferenceEngine

__all__ = ["ChipSimulator", "SimOptions", "ENGINE", "KERNELS", "ReferenceEngine"]
