"""Errors raised by the codec. All derive from :class:`CodecError` (a ``ValueError`` under
``speckstream.SpeckstreamError``)."""
from ..errors import SpeckstreamError, SpeckstreamWarning

__all__ = ["CodecError", "AddressError", "EventFileError", "TruncatedFileWarning", "CorruptChunkWarning",
           "TimestampWarning"]


class CodecError(SpeckstreamError, ValueError):
    """Base class of every codec error."""


class AddressError(CodecError):
    """A neuron coordinate or address lies off the feature map it is encoded for."""


class EventFileError(CodecError):
    """An event file is corrupt, of an unknown format, or exceeds the reader's safety limits."""


class TruncatedFileWarning(SpeckstreamWarning):
    """The last chunk of an event file was cut short; the intact chunks before it were kept."""


class CorruptChunkWarning(SpeckstreamWarning):
    """``on_error="skip"``: chunks whose payload failed its checksum were skipped (counted, with offsets)."""


class TimestampWarning(SpeckstreamWarning):
    """A whole event stream spans less than a millisecond: its timestamps are probably not in µs."""
