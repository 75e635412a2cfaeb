# The C layouts of the event records the extensions read and write, declared once (cimported by
# codec/_ccodec.pyx and sim/_ccore.pyx). They match SPIKE_RECORD / NV_RECORD in codec/events.py byte for byte
# (a test checks itemsize and offsets against SPIKE_DTYPE / NEURON_VALUE_DTYPE).
from libc.stdint cimport uint8_t, uint16_t, int16_t, uint32_t, uint64_t

cdef packed struct spike_rec:
    uint64_t t
    uint8_t core
    uint8_t _pad
    uint16_t c
    uint16_t x
    uint16_t y

cdef packed struct nv_rec:
    uint64_t t
    uint8_t core
    uint8_t _pad
    int16_t vmem
    uint32_t address
