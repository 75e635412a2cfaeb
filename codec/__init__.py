"""speckstream.codec - the hot path between numpy and the chip.

Event dtypes, neuron addresses, samna event-object conversion and event files. The kernels are in
Cython (``_ccodec``) with a numpy fallback chosen at import (``SPECKSTREAM_PUREPYTHON=1`` forces it);
``IMPLEMENTATION`` says which one is in use.
"""
from ._impl import IMPLEMENTATION
from .addresses import decode, encode
from .convert import dvs_from_xytp, from_xytp, spikes_from_array, to_xytp
from .errors import AddressError, CodecError, CorruptChunkWarning, EventFileError, TimestampWarning, TruncatedFileWarning
from .events import (DVS_EVENT_DTYPE, INPUT_SPIKE_DTYPE, KINDS, NEURON_STATE_DTYPE, NEURON_VALUE_DTYPE,
                     OUTPUT_SPIKE_DTYPE, READ_REQUEST_DTYPE, READOUT_DTYPE, SPIKE_DTYPE, TONIC_DTYPE, XYTP_DTYPE,
                     WRITE_REQUEST_DTYPE, as_events, decode_readout_fields, empty, spikes)
from .files import iter_spikes, read_spikes
from .spk import EventFileReader, EventFileWriter, write_spk
from .layout import AddressLayout
from .neurons import (decode_neuron_values, read_requests, read_requests_for_core, vmem_image,
                      write_requests)

__all__ = [
    "IMPLEMENTATION", "encode", "decode", "AddressLayout", "from_xytp", "spikes_from_array", "to_xytp", "dvs_from_xytp",
    "AddressError", "CodecError", "EventFileError", "TruncatedFileWarning", "CorruptChunkWarning", "TimestampWarning",
    "SPIKE_DTYPE", "INPUT_SPIKE_DTYPE", "OUTPUT_SPIKE_DTYPE", "DVS_EVENT_DTYPE", "READ_REQUEST_DTYPE",
    "WRITE_REQUEST_DTYPE", "NEURON_VALUE_DTYPE", "NEURON_STATE_DTYPE", "READOUT_DTYPE", "TONIC_DTYPE", "XYTP_DTYPE",
    "KINDS", "empty", "spikes", "as_events", "decode_readout_fields",
    "EventFileReader", "EventFileWriter", "iter_spikes", "read_spikes", "write_spk",
    "read_requests", "read_requests_for_core", "write_requests", "decode_neuron_values", "vmem_image",
]
