"""Test helpers shipped with speckstream, for its own tests and benchmarks and for yours.

* :mod:`.configs` - ``core()`` / ``config()``: hand-built ChipConfigs (no torch);
* :mod:`.samna_standin` - ``make_module()``: a stand-in with samna's names, to test code that drives a devkit
  without one (never the real library);
* :mod:`.models` - example torch / sinabs networks, among them sinabs' own graph test networks (imports torch);
* :mod:`.sinabs_reference` - sinabs 3.1.3's own dynapcnn pipeline, loaded without samna, to compare a compiled
  network with what sinabs builds (imports torch and sinabs).

``models`` and ``sinabs_reference`` are imported on demand only.
"""
from __future__ import annotations

from .configs import config, core
from .samna_standin import make_module

__all__ = ["config", "core", "make_module"]
