"""Chip resource tables (pure data, no torch): per-core memory and layer limits from the Speck devkit datasheet (Table 1) and sinabs.

speck2f, speck2e and dynapcnn share one constraint table in sinabs 3.1.3; they differ only in the samna
module and buffer names, which live in the runtime's samna adapter.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Ki", "CoreResources", "ChipSpec", "CHIPS", "get_chip", "ceil_log2", "kernel_memory", "neuron_memory"]

Ki = 1024


@dataclass(frozen=True)
class CoreResources:
    """Memory of one core, in words: kernel (8-bit), neuron (16-bit), bias (16-bit)."""

    core: int
    kernel: int
    neuron: int
    bias: int


@dataclass(frozen=True)
class ChipSpec:
    name: str
    cores: tuple[CoreResources, ...]
    max_input_size: int = 128  # input feature map <= 128 x 128
    max_output_size: int = 64  # neuron map <= 64 x 64
    max_channels: int = 1024
    max_kernel: int = 16
    strides: tuple[int, ...] = (1, 2, 4, 8)
    max_padding: int = 7
    poolings: tuple[int, ...] = (1, 2, 4)
    max_destinations: int = 2
    readout_id: int = 12
    dvs_id: int = 13
    max_dvs_input: int = 128  # the sensor / DVS stage input is at most 128 x 128
    dvs_poolings: tuple[int, ...] = (1, 2, 4)  # per axis
    max_dvs_destinations: int = 2
    max_state: int = 32767  # int16 vmem / thresholds
    min_state: int = -32768
    slow_clock_hz: tuple[float, float] = (1.0, 1_000_000.0)  # the devkit takes an integer rate in Hz

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    def limits_text(self) -> str:
        """The per-layer limits, for error messages."""
        return (f"kernel<={self.max_kernel}, stride {self.strides}, padding<={self.max_padding}, "
                f"channels<={self.max_channels}, input<={self.max_input_size}x{self.max_input_size}, "
                f"neurons<={self.max_output_size}x{self.max_output_size}")

    def largest(self) -> CoreResources:
        return CoreResources(-1, max(c.kernel for c in self.cores), max(c.neuron for c in self.cores),
                             max(c.bias for c in self.cores))


_SPECK_CORES = tuple(
    CoreResources(i, k * Ki, n * Ki, 1 * Ki)
    for i, (k, n) in enumerate([(16, 64), (16, 64), (16, 64), (32, 32), (32, 32), (64, 16), (64, 16),
                                (16, 16), (16, 16)])
)

CHIPS: dict[str, ChipSpec] = {
    "speck2f": ChipSpec("speck2f", _SPECK_CORES),
    "speck2e": ChipSpec("speck2e", _SPECK_CORES),
    "dynapcnn": ChipSpec("dynapcnn", _SPECK_CORES),
}


def get_chip(name: str) -> ChipSpec:
    if not isinstance(name, str):
        raise ValueError(f"chip must be a name such as 'speck2f', got {name!r}")
    key = name.lower().replace("module", "").replace("devkit", "").replace("testboard", "")
    try:
        return CHIPS[key]
    except KeyError:
        raise ValueError(f"unknown chip {name!r}; known chips: {', '.join(CHIPS)}") from None


def ceil_log2(n: int) -> int:
    return (int(n) - 1).bit_length() if n > 1 else 0


def kernel_memory(c_in: int, c_out: int, k: int) -> int:
    """Kernel words exactly as sinabs computes them: c * 2**(ceil(log2(k*k)) + ceil(log2(f)))."""
    return c_in * 2 ** (ceil_log2(k * k) + ceil_log2(c_out))


def neuron_memory(c_out: int, h: int, w: int) -> int:
    """Neuron words: f * 2**(ceil(log2 H) + ceil(log2 W)) (channels not rounded)."""
    return c_out * 2 ** (ceil_log2(h) + ceil_log2(w))
