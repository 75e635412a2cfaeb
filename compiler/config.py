"""ChipConfig: the compiler's output and the devices' input. Pure data - no torch import here.

Round-trips bit-exactly through JSON (:meth:`ChipConfig.to_json`) and msgpack (:meth:`ChipConfig.to_msgpack`).
Arrays are stored as ``{"dtype", "shape", "data"}`` with little-endian bytes (base64 in JSON).
"""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import msgpack
import numpy as np

from .chips import get_chip, kernel_memory, neuron_memory
from .errors import ConfigValidationError

__all__ = ["DECIMATOR_RATES", "Destination", "Provenance", "CoreConfig", "DVSConfig", "ReadoutConfig", "ChipConfig", "load_config",
           "CONFIG_FORMAT", "CONFIG_VERSION"]

CONFIG_FORMAT = "speckstream-chipconfig"
CONFIG_VERSION = 1


@dataclass
class Destination:
    """Where a core's output spikes go: a core (0-8) or the readout layer (12), with sum pooling."""

    core: int
    pooling: int = 1
    feature_shift: int = 0


@dataclass
class Provenance:
    """Where a core came from in the user's model."""

    layer_index: int  # position of the layer in the model (topological, by module order)
    modules: list[str]  # module names in the model: weight, [batchnorm], spiking, pooling...
    scale: float = 1.0  # discretization factor applied to weights, biases and thresholds
    weight_rescale: float = 1.0  # avg-pool rescale multiplied into the weights before discretizing
    exit_pooling: int = 1  # pooling after the last layer (not on chip: monitors see pre-pool spikes)
    neuron: str | None = None  # the spiking module's name
    threshold: float | None = None  # the threshold in the model's units (after compile's threshold_scale)
    min_v_mem: float | None = None  # the vmem floor in the model's units (None: no floor)


#: the decimator's "1 of N" rates by samna's interval code 0..7 (SynSense's Speck devkit datasheet and sinabs'
#: overview: 64 is not among them)
DECIMATOR_RATES = (2, 4, 8, 16, 32, 128, 256, 512)


@dataclass
class CoreConfig:
    """One CNN core: conv -> IAF neurons -> per-destination sum pooling."""

    core: int
    input_shape: tuple[int, int, int]  # (C, H, W) of the input map
    output_shape: tuple[int, int, int]  # (C, H, W) of the neuron map, before pooling
    kernel_size: int
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x)
    weights: np.ndarray  # int8 [out, in, ky, kx] (torch order)
    biases: np.ndarray  # int16 [out]
    threshold_high: int
    threshold_low: int
    initial_vmem: np.ndarray  # int16 [out, H, W]
    return_to_zero: bool = False
    leak_enable: bool = False
    monitor: bool = False
    destinations: list[Destination] = field(default_factory=list)
    provenance: Provenance | None = None
    #: the output decimator: 1 (off) or N, the core passes 1 of every N spikes it fires (to the monitor and its
    #: destinations alike); N in DECIMATOR_RATES, samna's output_decimator_interval codes 0..7
    decimator: int = 1

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(v) for v in self.input_shape)  # type: ignore[assignment]
        self.output_shape = tuple(int(v) for v in self.output_shape)  # type: ignore[assignment]
        self.stride = tuple(int(v) for v in self.stride)  # type: ignore[assignment]
        self.padding = tuple(int(v) for v in self.padding)  # type: ignore[assignment]
        where = f"core {self.core}"
        self.weights = _int_array(self.weights, np.int8, f"{where} weights")
        self.biases = _int_array(self.biases, np.int16, f"{where} biases")
        self.initial_vmem = _int_array(self.initial_vmem, np.int16, f"{where} initial_vmem")

    @property
    def kernel_memory(self) -> int:
        return kernel_memory(self.input_shape[0], self.output_shape[0], self.kernel_size)

    @property
    def neuron_memory(self) -> int:
        return neuron_memory(*self.output_shape)

    @property
    def bias_memory(self) -> int:
        return self.output_shape[0] if np.any(self.biases != 0) or self.leak_enable else 0


@dataclass
class DVSConfig:
    """The DVS pre-processing stage (docs/chip-notes.md): polarity select / merge -> pooling (x and y
    independently) -> crop -> mirror; then up to two destination cores, and / or the host (``monitor``).

    ``pass_sensor_events``: the chip's own camera feeds the stage (live sensor input). Off, the stage takes
    only DvsEvents written by the host (replay); the sensor's events are dropped.
    ``input_size`` None is filled by the compiler from the model's input shape.
    ``raw_monitor``: the sensor's own events go to the host as DvsEvents (samna's ``raw_monitor_enable``),
    before any of the stage's processing; ``monitor`` sends the stage's output (layer 13 spikes).
    """

    input_size: tuple[int, int] | None = None  # (H, W) of the events entering the stage (the sensor)
    pooling: tuple[int, int] = (1, 1)  # (y, x), each 1, 2 or 4
    crop: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) after pooling, exclusive end
    merge_polarities: bool = False
    flip_x: bool = False
    flip_y: bool = False
    swap_xy: bool = False
    on_channel: bool = True
    off_channel: bool = True
    monitor: bool = False
    destinations: list[int] = field(default_factory=list)
    pass_sensor_events: bool = False
    raw_monitor: bool = False

    def pooled_size(self) -> tuple[int, int]:
        """(H, W) after pooling, before the crop."""
        if self.input_size is None:
            raise ValueError("DVSConfig.input_size is not set")
        return self.input_size[0] // self.pooling[0], self.input_size[1] // self.pooling[1]

    def roi(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) of the region kept after pooling (the whole pooled map without a crop)."""
        H, W = self.pooled_size()
        return tuple(self.crop) if self.crop is not None else (0, H, 0, W)  # type: ignore[return-value]

    def origin_cut(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """samna's ``origin`` (x, y) and inclusive ``cut`` (x, y), as sinabs writes them: always set, since
        samna >= 0.46 checks the DVS output size against the core it feeds (sinabs#274)."""
        top, bottom, left, right = self.roi()
        return (left, top), (right - 1, bottom - 1)

    def output_shape(self) -> tuple[int, int, int]:
        top, bottom, left, right = self.roi()
        H, W = bottom - top, right - left
        C = 1 if self.merge_polarities else 2
        return (C, W, H) if self.swap_xy else (C, H, W)


@dataclass
class ReadoutConfig:
    """The readout layer (core id 12; docs/chip-notes.md). Fed by pointing a core destination at 12.

    Per slow-clock tick it counts input spikes per class (16 classes, 0 = idle), keeps a moving average
    over ``average`` ticks, finds the max class and emits one ReadoutValue: bit 20 valid, bits 19..16 max
    class, bits 15..0 by ``output_mode`` (0: 0, 1: threshold-compare bits, 2: average of
    ``selected_class``, 3: average of the max class).
    """

    address_sel: int = 3  # readout_configuration_sel: 0 = 2x2y4f, 1 = 2x4y2f, 2 = 4x4y1f, 3 = 1x1y16f
    output_mode: int = 3  # output_mode_sel
    average: int = 16  # ticks: 1 (low-pass filter off), 16 or 32
    threshold: int = 0
    selected_class: int = 0
    errata: bool = True  # speck2e/2f: class k (1..15) is driven by CNN channel 4(k-1)
    monitor: bool = False  # ReadoutValue events to the host; on the chip this stops spike monitoring


@dataclass
class ChipConfig:
    """A complete chip configuration."""

    chip: str
    cores: dict[int, CoreConfig]
    input_cores: list[int]
    dvs: DVSConfig | None = None
    slow_clock_hz: float | None = None
    input_shape: tuple[int, int, int] | None = None
    layer_order: list[int] = field(default_factory=list)  # cores in model (topological) order
    notes: list[str] = field(default_factory=list)
    readout: ReadoutConfig | None = None

    # ------------------------------------------------------------------ views
    def core(self, core: int) -> CoreConfig:
        try:
            return self.cores[core]
        except KeyError:
            raise KeyError(f"core {core} is not used by this configuration (used: {sorted(self.cores)})") from None

    @property
    def monitored_cores(self) -> list[int]:
        return sorted(c for c, cc in self.cores.items() if cc.monitor)

    @property
    def output_cores(self) -> list[int]:
        """Cores with no core destination (the network's exits)."""
        return [c for c in self.layer_order if not any(d.core < 12 for d in self.cores[c].destinations)]

    @property
    def dvs_only(self) -> bool:
        """A DVS stage and no core: sensor / DVS events go through the stage straight to the host."""
        return not self.cores and self.dvs is not None

    def summary(self, *, notes: bool = True) -> str:
        """A table of cores: source modules, shapes, memory used/available, destinations, scale; then the
        compiler's notes (``notes=False`` leaves them out, e.g. where they were already shown as warnings)."""
        spec = get_chip(self.chip)
        rows = [("core", "layer", "modules", "in (C,H,W)", "out (C,H,W)", "k/s/p", "kernel", "neuron",
                 "bias", "dest (core/pool)", "thr hi/lo", "scale")]
        for c in self.layer_order:
            cc = self.cores[c]
            res = spec.cores[c]
            prov = cc.provenance
            dests = ", ".join(f"{d.core}/{d.pooling}" for d in cc.destinations) or "-"
            if cc.decimator > 1:
                dests += f" 1of{cc.decimator}"
            if cc.monitor:
                dests += " +mon"
            rows.append((
                str(c), str(prov.layer_index if prov else "?"),
                " > ".join(prov.modules) if prov else "?",
                "x".join(map(str, cc.input_shape)), "x".join(map(str, cc.output_shape)),
                f"{cc.kernel_size}/{cc.stride[0]}x{cc.stride[1]}/{cc.padding[0]}x{cc.padding[1]}",
                f"{_k(cc.kernel_memory)}/{_k(res.kernel)}", f"{_k(cc.neuron_memory)}/{_k(res.neuron)}",
                f"{cc.bias_memory}/{res.bias}", dests, f"{cc.threshold_high}/{cc.threshold_low}",
                f"{prov.scale:.4g}" if prov else "?",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"ChipConfig for {self.chip}: {len(self.cores)} core(s), input {self.input_shape} -> cores "
                 f"{self.input_cores}" + (" via DVS layer" if self.dvs else "")]
        if self.dvs is not None:
            d = self.dvs
            lines.append(f"DVS stage: sensor {d.input_size} -> pool {d.pooling[0]}x{d.pooling[1]} -> roi {d.roi()} -> "
                         f"{d.output_shape()} -> cores {d.destinations or '-'}" + (" +mon" if d.monitor else "")
                         + (" [live sensor]" if d.pass_sensor_events else " [host input]"))
        for j, r in enumerate(rows):
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        if notes:
            lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, *, binary: bool) -> dict:
        def arr(a: np.ndarray):
            raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            return {"dtype": a.dtype.str.lstrip("<|"), "shape": list(a.shape),
                    "data": raw if binary else base64.b64encode(raw).decode("ascii")}

        cores = {}
        for c, cc in self.cores.items():
            d = {f.name: getattr(cc, f.name) for f in fields(cc)}
            d["weights"], d["biases"], d["initial_vmem"] = arr(cc.weights), arr(cc.biases), arr(cc.initial_vmem)
            d["destinations"] = [asdict(x) for x in cc.destinations]
            d["provenance"] = asdict(cc.provenance) if cc.provenance else None
            d["input_shape"], d["output_shape"] = list(cc.input_shape), list(cc.output_shape)
            d["stride"], d["padding"] = list(cc.stride), list(cc.padding)
            cores[str(c)] = d
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "chip": self.chip, "cores": cores,
                "input_cores": list(self.input_cores), "dvs": asdict(self.dvs) if self.dvs else None,
                "slow_clock_hz": self.slow_clock_hz,
                "input_shape": list(self.input_shape) if self.input_shape else None,
                "layer_order": list(self.layer_order), "notes": list(self.notes),
                "readout": asdict(self.readout) if self.readout else None}

    @classmethod
    def from_dict(cls, d: dict, *, binary: bool) -> "ChipConfig":
        if not isinstance(d, dict) or d.get("format") != CONFIG_FORMAT:
            raise ConfigValidationError(["not a speckstream ChipConfig (missing format marker)"])
        if d.get("version") != CONFIG_VERSION:
            raise ConfigValidationError([f"ChipConfig version {d.get('version')} not supported "
                                         f"(reader: {CONFIG_VERSION})"])

        def arr(a):
            raw = a["data"] if binary else base64.b64decode(a["data"])
            dt = np.dtype(a["dtype"]).newbyteorder("<")
            return np.frombuffer(raw, dtype=dt).reshape(a["shape"]).astype(dt.newbyteorder("="))

        cores = {}
        for c, cd in d["cores"].items():
            cd = dict(cd)
            cd["weights"], cd["biases"], cd["initial_vmem"] = arr(cd["weights"]), arr(cd["biases"]), arr(cd["initial_vmem"])
            cd["destinations"] = [Destination(**x) for x in cd["destinations"]]
            cd["provenance"] = Provenance(**cd["provenance"]) if cd.get("provenance") else None
            cores[int(c)] = CoreConfig(**cd)
        dvs = d.get("dvs")
        if dvs:
            dvs = dict(dvs)
            for k in ("input_size", "pooling", "crop"):
                if dvs.get(k) is not None:
                    dvs[k] = tuple(dvs[k])
            dvs = DVSConfig(**dvs)
        return cls(chip=d["chip"], cores=cores, input_cores=list(d["input_cores"]), dvs=dvs,
                   slow_clock_hz=d.get("slow_clock_hz"),
                   input_shape=tuple(d["input_shape"]) if d.get("input_shape") else None,
                   layer_order=list(d.get("layer_order") or sorted(cores)), notes=list(d.get("notes") or []),
                   readout=ReadoutConfig(**d["readout"]) if d.get("readout") else None)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(binary=False), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ChipConfig":
        return cls.from_dict(json.loads(text), binary=False)

    def to_msgpack(self) -> bytes:
        return msgpack.packb(self.to_dict(binary=True), use_bin_type=True)

    @classmethod
    def from_msgpack(cls, blob: bytes) -> "ChipConfig":
        return cls.from_dict(msgpack.unpackb(blob, raw=False, strict_map_key=False), binary=True)

    def save(self, path) -> None:
        """Save as JSON (``.json``) or msgpack (any other suffix, e.g. ``.msgpack``)."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            path.write_text(self.to_json())
        else:
            path.write_bytes(self.to_msgpack())

    def __eq__(self, other) -> bool:
        if not isinstance(other, ChipConfig):
            return NotImplemented
        return _canonical(self) == _canonical(other)


def _int_array(values, dtype, what: str) -> np.ndarray:
    """``values`` as ``dtype``, refusing (never wrapping or truncating) values the dtype cannot hold."""
    a = np.asarray(values)
    if a.dtype == dtype:
        return a
    if a.size:
        if a.dtype.kind not in "iub":
            if a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise ConfigValidationError([f"{what}: values must be integers (got dtype {a.dtype})"])
        info = np.iinfo(dtype)
        lo, hi = a.min(), a.max()
        if lo < info.min or hi > info.max:
            raise ConfigValidationError([f"{what}: values {lo}..{hi} do not fit {np.dtype(dtype).name} "
                                         f"[{info.min}, {info.max}]"])
    return a.astype(dtype)


def _canonical(cfg: ChipConfig) -> bytes:
    return msgpack.packb(cfg.to_dict(binary=True), use_bin_type=True)


def _k(n: int) -> str:
    return f"{n // 1024}Ki" if n >= 1024 and n % 1024 == 0 else str(n)


def load_config(path_or_config) -> ChipConfig:
    """A ChipConfig from a path (.json or msgpack) or a ChipConfig (returned as is)."""
    if isinstance(path_or_config, ChipConfig):
        return path_or_config
    path = Path(path_or_config)
    if not path.exists():
        raise FileNotFoundError(f"chip configuration not found: {path}")
    data = path.read_bytes()
    try:
        if path.suffix.lower() == ".json" or data[:1] == b"{":
            return ChipConfig.from_json(data.decode("utf-8"))
        return ChipConfig.from_msgpack(data)
    except ConfigValidationError as e:
        raise ConfigValidationError([f"{path}: {p}" for p in e.problems]) from e
    except (ValueError, KeyError, TypeError, AttributeError, msgpack.ExtraData) as e:
        raise ConfigValidationError([f"{path}: not a valid speckstream ChipConfig "
                                     f"({type(e).__name__}: {e})"]) from e
