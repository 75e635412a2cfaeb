"""Typed signature of the Cython simulation engine (see _ccore.pyx)."""
import numpy as np

ISAS: dict[str, int]
BEST_ISA: str
PIPELINE: bool

class Core:
    leak_fires: bool
    max_cascade: int
    n_updates: int
    n_saturated: int
    n_ticks: int
    def __init__(self, params: np.ndarray, weights: np.ndarray, w_off: np.ndarray, vmem: np.ndarray,
                 v_off: np.ndarray, biases: np.ndarray, b_off: np.ndarray, decimated: np.ndarray,
                 leak_fires: bool = False,
                 max_cascade: int = 100_000_000, drop_off_map: bool = True, readout_id: int = 12,
                 isa: str | None = None) -> None: ...
    @property
    def isa(self) -> str: ...
    def run(self, spikes: np.ndarray, now: int, next_tick: int, tick_period: int,
            until: int) -> tuple[int, int, int]: ...
    def take_outputs(self) -> tuple[np.ndarray, np.ndarray]: ...
    def run_pipelined(self, second: Core, spikes: np.ndarray, now: int, owned: int) -> tuple[int, int]: ...
    def updates_per_core(self) -> np.ndarray: ...
    def spikes_per_core(self) -> np.ndarray: ...
    clamps_arr: np.ndarray
    n_off_map: int


class PackedState:
    params: np.ndarray
    weights: np.ndarray
    vmem: np.ndarray
    initial_vmem: np.ndarray
    biases: np.ndarray
    w_off: np.ndarray
    v_off: np.ndarray
    b_off: np.ndarray
    decimated: np.ndarray
    shapes: dict[int, tuple[int, int, int]]
    def __init__(self, cfg) -> None: ...
    def vmem_view(self, core: int) -> np.ndarray: ...


def measure_kernels(row_len: int, updates: int = ..., thr_hi: int = ..., thr_lo: int = ...,
                    isa: str | None = None) -> tuple[float, float]:
    """(kernel updates/s, bound updates/s) on rows of ``row_len`` neurons, measured now."""
    ...


def row_update(vmem: np.ndarray, weights: np.ndarray, thr_lo: int, thr_hi: int, rtz: bool,
               isa: str | None = None, pixel: int = 0) -> tuple[np.ndarray, int, int]:
    """One row's update with a chosen inner loop (tests): (fired lanes as collected, floor clamps, saturations)."""
    ...


def dvs_spikes(events: np.ndarray, pool_y: int, pool_x: int, top: int, bottom: int, left: int, right: int,
               merge_polarities: bool, flip_x: bool, flip_y: bool, swap_xy: bool, on_channel: bool,
               off_channel: bool, destinations: list[int]) -> np.ndarray: ...
