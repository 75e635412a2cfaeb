"""Compile errors and warnings. Each error names the offending module by its name in the model
(``module`` attribute) whenever one module is to blame."""
from __future__ import annotations

from ..errors import SpeckstreamError, SpeckstreamWarning

__all__ = ["CompileError", "UnsupportedLayerError", "UnsupportedParameterError", "InvalidParameterError", "ZeroedWeightsError",
           "GraphStructureError", "MissingSpikingLayerError", "TooManyDestinationsError", "ShapeMismatchError",
           "PoolingConflictError", "LayerDoesNotFitError", "NoCoreAssignmentError", "TooManyLayersError",
           "ConfigValidationError", "CompileWarning"]


class CompileError(SpeckstreamError, ValueError):
    """Base class: the model cannot be put on the chip as it is."""

    def __init__(self, message: str, module: str | None = None):
        self.module = module
        super().__init__(message)


class UnsupportedLayerError(CompileError):
    """A module type the chip cannot represent (or that must be converted first)."""


class UnsupportedParameterError(CompileError):
    """A supported module with parameters the chip cannot do (dilation, groups, non-square kernel...)."""


class InvalidParameterError(CompileError):
    """A parameter that no chip (and no sane model) can use: NaN / inf values, a threshold <= 0, a vmem floor
    at or above the threshold, a negative batch-norm variance, weights that all quantize to zero."""


class ZeroedWeightsError(InvalidParameterError):
    """Discretization would round (nearly) every weight of a layer to 0, so the core could not work as trained;
    the message names the range that capped the scale and the fix (``compile(..., allow_zeroed_weights=True)``
    compiles it anyway)."""


class GraphStructureError(CompileError):
    """The graph cannot be grouped into cores (weight layer without spiking layer, untracked tensor op...)."""


class MissingSpikingLayerError(GraphStructureError):
    """A weight layer is not followed by a spiking layer."""


class TooManyDestinationsError(CompileError):
    """A core would need more than the chip's 2 destinations."""


class ShapeMismatchError(CompileError):
    """Shapes that must agree (merge inputs, linear in_features) do not."""


class PoolingConflictError(CompileError):
    """Average pools of different sizes feed one core: the weight rescale would be ambiguous (pass
    ``compile(..., rescale="mean")`` to resolve it as sinabs does)."""


class LayerDoesNotFitError(CompileError):
    """One or more layers fit no core; ``layers`` lists (name, needs) for each."""

    def __init__(self, message: str, layers: list[tuple[str, dict]]):
        self.layers = layers
        super().__init__(message, layers[0][0] if layers else None)


class NoCoreAssignmentError(CompileError):
    """Every layer fits some core, but not all at once; ``layers`` is a smallest clashing set found."""

    def __init__(self, message: str, layers: list[str]):
        self.layers = layers
        super().__init__(message, layers[0] if layers else None)


class TooManyLayersError(CompileError):
    """More core layers than the chip has cores."""


class ConfigValidationError(SpeckstreamError, ValueError):
    """A ChipConfig breaks a hardware rule; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid chip configuration:\n  - " + "\n  - ".join(problems))


class CompileWarning(SpeckstreamWarning):
    """Something compiled but deserves the user's attention (precision loss, collapsed scale, a floor close
    to the threshold, spikes that pooling drops...)."""
