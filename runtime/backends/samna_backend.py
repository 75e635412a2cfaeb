"""Real devkits through samna, written strictly against the public samna and sinabs evidence (docs/chip-notes.md).

NOT TRIED ON HARDWARE: samna cannot be installed where this was written (every PyPI release is a shim
that runs ``pip install`` from SynSense's index when imported). It is tested against a stand-in module with
samna's names and blocking behaviour (tests/fakes/samna_standin.py).

Safety: :func:`find_samna` inspects the installed files and imports samna only when it is the real
library (a compiled extension, no PyPI-shim marker).
"""
from __future__ import annotations

import copy
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import anyio

from ...codec import samna_events
from ...codec.samna_events import DecodedOutput
from ...compiler.config import DECIMATOR_RATES, ChipConfig
from ...sim.energy import RAILS
from ..errors import DeviceClosed, DeviceDisconnected, DeviceError, DeviceNotFound, SamnaUnavailable
from .base import Backend
from .devthread import DeviceThread

__all__ = ['DEVICE_TYPES', 'CHIP_NODES', 'find_samna', 'load_samna', 'to_samna_config', 'SamnaBackend']

#: sinabs device ids -> (samna DeviceInfo.device_type_name, chip)
DEVICE_TYPES = {
    "speck2fmodule": ("Speck2fModuleDevKit", "speck2f"),
    "speck2fdevkit": ("Speck2fDevKit", "speck2f"),
    "speck2edevkit": ("Speck2eDevKit", "speck2e"),
    "speck2e": ("Speck2eTestBoard", "speck2e"),
}
#: boards samna no longer supports (>= 0.46), with what to tell their owners
UNSUPPORTED_DEVICES = {
    "dynapcnndevkit": "the DYNAP-CNN devkit (configuration class DynapcnnConfiguration) was dropped by samna 0.46 "
                      "and sinabs 3.0; use samna < 0.46 with sinabs 2.x for that board",
}
#: chip -> (samna chip namespace, input buffer class, output buffer class), as sinabs names them
CHIP_NODES = {
    "speck2f": ("speck2f", "BasicSourceNode_speck2f_event_input_event", "BasicSinkNode_speck2f_event_output_event"),
    "speck2e": ("speck2e", "BasicSourceNode_speck2e_event_speck2e_input_event",
                "BasicSinkNode_speck2e_event_output_event"),
    "dynapcnn": ("dynapcnn", "BasicSourceNode_dynapcnn_event_input_event",
                 "BasicSinkNode_dynapcnn_event_output_event"),
}


SAMNA_ENV = "SPECKSTREAM_SAMNA"  # "real": trust the installed samna; a path: a samna package folder to use


def find_samna() -> tuple[bool, str]:
    """Is the real samna installed? Decided from its files, without importing it.

    The real library is a compiled extension somewhere inside the package (searched recursively: public code
    does not show the exact layout); the PyPI placeholder is pure Python that installs samna when imported.
    ``SPECKSTREAM_SAMNA=real`` trusts an unusual install; ``SPECKSTREAM_SAMNA=/path/to/samna`` names the package
    folder to check instead of the one Python would import.
    """
    override = os.environ.get(SAMNA_ENV, "").strip()
    if override.lower() == "real":
        return True, f"samna trusted by {SAMNA_ENV}=real"
    if override:
        pkg = Path(override)
        init = pkg / "__init__.py"
        if not pkg.is_dir():
            return False, f"{SAMNA_ENV}={override} is not a folder"
    else:
        try:
            spec = importlib.util.find_spec("samna")  # a top-level find_spec does not execute the package
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return False, f"samna is not installed (or set {SAMNA_ENV})"
        init = Path(spec.origin)
        pkg = init.parent
    text = init.read_text(errors="replace") if init.suffix == ".py" and init.exists() else ""
    if "PYPI_SAMNA" in text or "install_real_samna" in text or "pip install" in text and "samna" in text \
            and len(text) < 20_000 and "import _samna" not in text:
        return False, (f"the samna at {pkg} is the PyPI placeholder, which runs 'pip install' from SynSense's "
                       f"index when imported; install the real samna from SynSense (or set {SAMNA_ENV}=real)")
    binaries = [b for pat in ("*.so", "*.pyd", "*.dylib") for b in pkg.rglob(pat)]
    binaries += [b for pat in ("samna*.so", "samna*.pyd") for b in pkg.parent.glob(pat)]
    if not binaries and init.suffix == ".py":
        return False, (f"the samna at {pkg} has no compiled module anywhere inside; not the real library "
                       f"(set {SAMNA_ENV}=real if it is)")
    return True, f"samna at {pkg} ({len(binaries)} compiled module(s))"


def load_samna():
    ok, why = find_samna()
    if not ok:
        raise SamnaUnavailable(f"cannot open a real devkit: {why}. Use open_device('sim') for the simulator.")
    # imported only here, after find_samna() has read the installed files and found the real library
    return importlib.import_module("samna")


# ------------------------------------------------------------------------------ config conversion
def to_samna_config(cfg: ChipConfig, samna):
    """ChipConfig -> samna SpeckConfiguration (as sinabs' config builder writes it; docs/chip-notes.md)."""
    ns = getattr(samna, CHIP_NODES[cfg.chip][0])
    sc = ns.configuration.SpeckConfiguration()
    for c, cc in cfg.cores.items():
        layer = sc.cnn_layers[c]
        Ci, Hi, Wi = cc.input_shape
        Co, Ho, Wo = cc.output_shape
        # a whole CnnLayerDimensions object is assigned, as every public user of samna does
        d = ns.configuration.CnnLayerDimensions()
        d.input_shape.size.x, d.input_shape.size.y, d.input_shape.feature_count = Wi, Hi, Ci
        d.output_shape.size.x, d.output_shape.size.y, d.output_shape.feature_count = Wo, Ho, Co
        d.padding.x, d.padding.y = cc.padding[1], cc.padding[0]
        d.stride.x, d.stride.y = cc.stride[1], cc.stride[0]
        d.kernel_size = cc.kernel_size
        layer.dimensions = d
        layer.weights = cc.weights.transpose(0, 1, 3, 2).tolist()  # samna: [out][in][x][y]
        layer.biases = cc.biases.tolist()
        layer.leak_enable = bool(cc.leak_enable)
        layer.neurons_initial_value = cc.initial_vmem.transpose(0, 2, 1).tolist()  # [f][x][y]
        layer.threshold_high = int(cc.threshold_high)
        layer.threshold_low = int(cc.threshold_low)
        layer.return_to_zero = bool(cc.return_to_zero)
        layer.monitor_enable = bool(cc.monitor)
        if cc.decimator > 1:  # off by default on the chip; written only when asked for
            layer.output_decimator_enable = True
            layer.output_decimator_interval = DECIMATOR_RATES.index(cc.decimator)
        for i, dst in enumerate(cc.destinations[:2]):
            layer.destinations[i].layer = dst.core
            layer.destinations[i].enable = True
            layer.destinations[i].pooling = dst.pooling
            if dst.feature_shift:  # a field without public documentation: touch it only when needed
                layer.destinations[i].feature_shift = dst.feature_shift
    if cfg.readout is not None:
        ro, r = cfg.readout, sc.readout
        r.enable = True
        r.readout_configuration_sel = ro.address_sel
        r.output_mode_sel = ro.output_mode
        r.threshold = ro.threshold
        r.low_pass_filter_disable = ro.average == 1
        r.low_pass_filter32_not16 = ro.average == 32
        r.monitor_enable = ro.monitor
    dv = cfg.dvs
    # without a DVS stage the sensor must not feed the network (replay); with one, the config says
    sc.dvs_layer.pass_sensor_events = bool(dv.pass_sensor_events) if dv is not None else False
    if dv is not None:
        sc.dvs_layer.merge = dv.merge_polarities
        sc.dvs_layer.pooling.y, sc.dvs_layer.pooling.x = dv.pooling
        # always written (sinabs does): samna >= 0.46 checks the DVS output size against the core it feeds
        (ox, oy), (cx, cy) = dv.origin_cut()
        sc.dvs_layer.origin.x, sc.dvs_layer.origin.y = ox, oy
        sc.dvs_layer.cut.x, sc.dvs_layer.cut.y = cx, cy
        sc.dvs_layer.mirror.x, sc.dvs_layer.mirror.y = dv.flip_x, dv.flip_y
        sc.dvs_layer.mirror_diagonal = dv.swap_xy
        sc.dvs_layer.on_channel, sc.dvs_layer.off_channel = dv.on_channel, dv.off_channel
        sc.dvs_layer.monitor_enable = dv.monitor
        sc.dvs_layer.raw_monitor_enable = dv.raw_monitor
        for i, core in enumerate(dv.destinations[:2]):
            sc.dvs_layer.destinations[i].layer = core
            sc.dvs_layer.destinations[i].enable = True
    return sc


class SamnaBackend(Backend):
    """A devkit through samna. Every samna call runs on one device thread; reads use short timeouts."""

    def __init__(self, device_id: str, *, samna=None, read_batch: int = 4096, read_timeout_ms: int = 5,
                 apply_settle_s: float = 1.0, apply_confirm: bool = True, apply_timeout_s: float = 1.0,
                 write_slice: int = 4096):
        key, _, index = device_id.partition(":")
        key = key.lower()
        if key in UNSUPPORTED_DEVICES:
            raise DeviceNotFound(f"{device_id}: {UNSUPPORTED_DEVICES[key]}")
        if key not in DEVICE_TYPES:
            raise DeviceNotFound(f"unknown device {device_id!r}; known: sim, {', '.join(DEVICE_TYPES)}")
        self.type_name, self.chip = DEVICE_TYPES[key]
        self.index = int(index or 0)
        self.name = device_id
        self._samna = samna
        self.read_batch = read_batch
        self.read_timeout_ms = read_timeout_ms
        self.apply_settle_s = apply_settle_s  # sinabs' wait after apply: the fallback when no round trip confirms it
        self.apply_confirm = apply_confirm
        self.apply_timeout_s = apply_timeout_s
        self.applied_confirmed: bool | None = None  # how the last apply was known to be done
        self._stash: list = []  # events read during the apply round trip, handed to the next read()
        self.write_slice = write_slice
        self._device_written = 0  # input events samna has taken (counted on the device thread)
        self._thread: DeviceThread | None = None
        self._keep: list = []  # graphs and nodes must stay referenced while in use (sinabs keeps them too)
        self._config: ChipConfig | None = None
        self._power: tuple | None = None  # (power monitor, measurement sink, its graph) while power is sampled
        self.counts = {"unknown_events": 0, "read_calls": 0}

    async def open(self) -> None:
        samna = self._samna = self._samna or load_samna()
        self._events = getattr(samna, CHIP_NODES[self.chip][0]).event
        self._thread = DeviceThread(f"samna-{self.name}")
        try:
            await self._thread.run(self._open_sync, samna)
        except BaseException:
            # failed or cancelled (the open may still be blocked in samna): whatever it opened is closed by a job
            # queued behind it, which runs when it returns even if nobody waits any more
            self._thread.post(self._close_sync)
            await self._thread.stop()
            self._thread = None
            raise

    def _open_sync(self, samna) -> None:
        infos = [d for d in samna.device.get_all_devices() if d.device_type_name == self.type_name]
        infos.sort(key=lambda d: d.usb_device_address)
        if self.index >= len(infos):
            raise DeviceNotFound(f"no {self.type_name} #{self.index} connected (found {len(infos)}); "
                                 "use open_device('sim') for the simulator")
        self.handle = samna.device.open_device(infos[self.index])
        model = self.handle.get_model()
        _, src_name, sink_name = CHIP_NODES[self.chip]
        self.source = getattr(samna, src_name)()
        self.sink = getattr(samna, sink_name)()
        g_in, g_out = samna.graph.EventFilterGraph(), samna.graph.EventFilterGraph()
        g_in.sequential([self.source, model.get_sink_node()])
        g_out.sequential([model.get_source_node(), self.sink])
        g_in.start()
        g_out.start()
        self._keep = [g_in, g_out, self.source, self.sink, model]
        self.model = model
        self.stopwatch = self.handle.get_stop_watch()
        self.io = self.handle.get_io_module()

    async def close(self, timeout_s: float = 0.5) -> None:
        """Stop the graphs and close the device, waiting ``timeout_s`` at most: behind a samna call blocked in
        C the close job stays queued and runs on the device thread once that call returns."""
        if self._thread is None:
            return
        stuck = False
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(timeout_s) as scope:
                await self._thread.run(self._close_sync)
            stuck = scope.cancelled_caught
        except Exception:
            pass  # a vanished device cannot be closed cleanly; the thread still stops
        finally:
            await self._thread.stop(timeout_s=0.0 if stuck else timeout_s)  # stuck: do not wait twice
            self._thread = None

    def _close_sync(self) -> None:
        """Stop the graphs, then close the device - each step tried even when an earlier one fails (a graph that
        will not stop must not leave the device open); idempotent, and a no-op before the open got that far."""
        keep, self._keep = self._keep, []
        handle = getattr(self, "handle", None)
        self.handle = None
        try:
            self._stop_power_sync()  # the power monitor, then its graph
        except Exception:
            pass
        try:
            for g in keep[:2]:
                try:
                    g.stop()  # stop graphs before closing the device
                except Exception:
                    pass
        finally:
            if handle is not None:
                self._samna.device.close_device(handle)

    async def _call(self, fn, *args):
        if self._thread is None:
            raise DeviceClosed(f"{self.name} is closed")
        try:
            return await self._thread.run(fn, *args)
        except (RuntimeError, OSError) as e:
            if isinstance(e, DeviceError):
                raise
            raise DeviceDisconnected(f"{self.name}: {e}") from e

    async def apply(self, config: ChipConfig) -> None:
        if config.chip != self.chip:
            raise DeviceError(f"configuration is for {config.chip}, device {self.name} is a {self.chip}")
        await self._apply_config(config)
        self._config = config
        await self.reset_time()

    async def _apply_config(self, config: ChipConfig) -> None:
        """Validate and apply; then make sure the chip has it. samna applies configurations asynchronously
        (rockpool's devkit utilities say so): a ReadNeuronValue round trip to the first core proves the new
        configuration is in place; without a reply within ``apply_timeout_s`` we fall back to sinabs' fixed wait
        (``apply_settle_s``, 1 s)."""
        ns = getattr(self._samna, CHIP_NODES[self.chip][0])

        def apply_sync() -> bool:
            sc = to_samna_config(config, self._samna)
            ok, msg = ns.validate_configuration(sc)
            if not ok:
                raise DeviceError(f"samna rejected the configuration: {msg}")
            self.model.apply_configuration(sc)
            return self._round_trip(config) if self.apply_confirm and config.cores else False

        self.applied_confirmed = await self._call(apply_sync)
        if not self.applied_confirmed:
            await anyio.sleep(self.apply_settle_s)

    def _round_trip(self, config: ChipConfig) -> bool:
        """On the device thread: ask the first core for neuron 0 and wait for its reply (other events are
        kept for the reader)."""
        core = min(config.cores)
        req = self._events.ReadNeuronValue()
        req.layer, req.address = core, 0
        self.source.write([req])
        deadline = time.monotonic() + self.apply_timeout_s
        nv_cls = getattr(self._events, "NeuronValue", None)
        while time.monotonic() < deadline:
            got = self.sink.get_events_blocking(20)
            for i, e in enumerate(got or []):
                if nv_cls is not None and isinstance(e, nv_cls) and e.layer == core:
                    self._stash.extend(got[:i] + got[i + 1:])
                    return True
            self._stash.extend(got or [])
        return False

    async def reset_time(self) -> None:
        def reset():
            self.stopwatch.reset()
            # stamped before start(): the watch runs from some moment after this, so a device stamp read
            # through it is never later than the host's own clock (closed-loop latencies are not understated)
            self.stopwatch_started_at = time.perf_counter()
            self.stopwatch.start()
        await self._call(reset)

    async def reset_state(self) -> None:
        """Zero every neuron by re-applying the last configuration with zero initial vmem: independent of
        the (unpublished) neuron address layout, and what closed sinabs' chip/sim gap (sinabs#148)."""
        if self._config is None:
            return
        zeroed = copy.deepcopy(self._config)
        for cc in zeroed.cores.values():
            cc.initial_vmem = np.zeros_like(cc.initial_vmem)
        await self._apply_config(zeroed)

    async def set_slow_clock(self, hz: float | None) -> None:
        if hz and not 1 <= hz <= 1_000_000:  # the devkit takes an integer rate: (0, 1) Hz would round to 0
            raise DeviceError(f"slow clock rate {hz} Hz: the devkit takes an integer rate of 1 Hz or more")

        def set_clk():
            if hz:
                self.io.set_slow_clk_rate(int(round(hz)))
                self.io.set_slow_clk(True)
            else:
                self.io.set_slow_clk(False)
        await self._call(set_clk)

    async def write_spikes(self, spikes: np.ndarray) -> None:
        """Write in slices of ``write_slice`` events, one device-thread job each: cancellation takes effect
        between slices, and ``device_written`` counts what the device took, even for a slice whose wait was
        abandoned."""
        for a in range(0, len(spikes), self.write_slice):
            part = samna_events.spikes_to_samna(spikes[a:a + self.write_slice], self._events)
            await self._call(self._write_counted, part)

    async def write_dvs(self, events: np.ndarray) -> None:
        """DvsEvents into the DVS layer (as sinabs feeds a network with a DVS stage from the host), in slices
        like :meth:`write_spikes`."""
        if self._config is None or self._config.dvs is None:
            raise DeviceError(f"{self.name}: the applied configuration has no DVS stage to write DvsEvents into")
        for a in range(0, len(events), self.write_slice):
            part = samna_events.dvs_to_samna(events[a:a + self.write_slice], self._events)
            await self._call(self._write_counted, part)

    def _write_counted(self, events: list) -> None:
        self.source.write(events)
        self._device_written += len(events)  # on the device thread, after samna took them

    async def write_reads(self, requests: np.ndarray) -> None:
        await self._call(lambda: self.source.write(samna_events.read_requests_to_samna(requests, self._events)))

    async def write_neurons(self, requests: np.ndarray) -> None:
        await self._call(lambda: self.source.write(samna_events.write_requests_to_samna(requests, self._events)))

    async def read(self, timeout_s: float) -> DecodedOutput | None:
        ms = max(1, min(int(timeout_s * 1000), self.read_timeout_ms))

        def read_sync():
            self.counts["read_calls"] += 1
            if self._stash:
                got, self._stash = self._stash, []
                return samna_events.split_output(got, self._events, 0)
            if hasattr(self.sink, "get_n_events"):
                got = self.sink.get_n_events(self.read_batch, ms)
            else:
                got = self.sink.get_events_blocking(ms)
            return samna_events.split_output(got, self._events, 0) if got else None

        out = await self._call(read_sync)
        if out is not None:
            self.counts["unknown_events"] += out.n_unknown
        return out

    # ------------------------------------------------------------------ power (samna's power monitor)
    async def start_power(self, hz: float) -> None:
        """Start the devkit's power monitor as sinabs' power-monitoring notebook does: its source node into a
        measurement sink in a graph of its own, then ``start_auto_power_measurement(hz)``."""
        def start():
            if self._power is not None:
                return
            monitor = self.handle.get_power_monitor()
            sink = self._samna.BasicSinkNode_unifirm_modules_events_measurement()
            graph = self._samna.graph.EventFilterGraph()
            graph.sequential([monitor.get_source_node(), sink])
            graph.start()
            sink.get_events()  # what an earlier run left behind
            monitor.start_auto_power_measurement(float(hz))
            self._power = (monitor, sink, graph)
        await self._call(start)

    async def read_power(self) -> tuple[dict[str, float], bool] | None:
        """The mean power per rail (W) of the measurements since the previous read; None when there were none."""
        def read():
            if self._power is None:
                return None
            got = self._power[1].get_events()
            sums: dict[int, list[float]] = {}
            for e in got:
                sums.setdefault(int(e.channel), []).append(float(e.value))
            if not sums:
                return None
            rails = {RAILS[c] if 0 <= c < len(RAILS) else f"channel {c}": sum(v) / len(v) for c, v in sums.items()}
            return rails, False
        return await self._call(read)

    async def stop_power(self) -> None:
        await self._call(self._stop_power_sync)

    def _stop_power_sync(self) -> None:
        """On the device thread: stop the power monitor, then its graph (even when the monitor would not stop)."""
        power, self._power = self._power, None
        if power is not None:
            monitor, _, graph = power
            try:
                monitor.stop_auto_power_measurement()
            finally:
                graph.stop()

    @property
    def device_written(self) -> int:
        """Input events samna has taken, counted on the device thread (also for a write whose wait was abandoned)."""
        return self._device_written

    @property
    def stats(self) -> dict:
        return dict(self.counts)
