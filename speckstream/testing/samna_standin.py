"""A strict stand-in for the parts of samna that speckstream uses (docs/chip-notes.md), to test the samna
adapter without samna.

Never the real thing, but as unforgiving as the public evidence allows:

* **names**: configuration objects and events accept only the attribute names with public evidence (sinabs
  3.1.3's config builder and tests, the Speck Dev Kit datasheet's configuration tree, SynSense's demos); a
  misspelt field raises ``AttributeError`` as a pybind11 object does.
* **validation**: :func:`validate_configuration` checks shapes the way samna >= 0.46 is known to (a DVS stage
  whose output size differs from the core it feeds is refused - sinabs#274 - and so is a core destination
  whose input shape does not match), plus the field ranges of samna's reference pages.
* **timing**: ``apply_configuration`` returns at once and the chip takes the configuration ``apply_delay_s``
  later (samna applies asynchronously), in order with later input; timestamped input (``Spike``,
  ``DvsEvent``) is held until the stopwatch reaches its timestamp, and nothing timestamped is released while
  the stopwatch is stopped. ReadNeuronValue / WriteNeuronValue requests are not held by waiting spikes
  (their relative order on the FPGA is undocumented).
* **the chip**: behind the buffers runs speckstream's own simulator on the configuration read back from the
  samna objects (:func:`from_samna_config`, written independently of the adapter's ``to_samna_config``), so
  output comes only from monitored layers, ``readout.monitor_enable`` stops spike output, the DVS stage's
  monitor emits layer-13 spikes and ``raw_monitor_enable`` sends the sensor's own events (:meth:`_Chip.see`)
  to the host as ``DvsEvent``.

Buffers block like samna's (``get_events_blocking(timeout)``, ``get_n_events(n, timeout)``); a device can be
made to vanish (``chip.gone = True``) and an output class speckstream does not know can be injected.

* **power**: ``get_power_monitor()`` with the names of sinabs' power-monitoring notebook
  (``start_auto_power_measurement(hz)``, ``stop_auto_power_measurement()``, ``get_source_node()`` into a
  ``BasicSinkNode_unifirm_modules_events_measurement``; events with ``channel``, ``value`` in W and ``timestamp``):
  five rails sampled at ``hz`` (100 Hz at most, as the devkit's datasheet says), their values from an
  :class:`~speckstream.sim.energy.EnergyModel` (``make_module(power_model=...)``: the "true" constants of this
  board, for tests that fit them) over the activity of the simulator behind the buffers.
"""
from __future__ import annotations

import threading
import time
import types
from collections import deque
from typing import Any

import numpy as np

__all__ = ['CnnLayerDimensions', 'PYPI_SAMNA', 'Spike', 'DvsEvent', 'ReadNeuronValue', 'WriteNeuronValue', 'NeuronValue',
           'ReadoutValue', 'DropNotice', 'CnnLayerDestination', 'CnnLayerConfig', 'DvsLayerConfig',
           'SpeckConfiguration', 'validate_configuration', 'from_samna_config',
           'BasicSourceNode_speck2f_event_input_event', 'BasicSinkNode_speck2f_event_output_event',
           'EventFilterGraph', 'DeviceInfo', 'make_module', 'speck2f', 'Measurement',
           'BasicSinkNode_unifirm_modules_events_measurement']

PYPI_SAMNA = False


class _Strict:
    """An object with a fixed set of attribute names (like a pybind11 class without dynamic attributes)."""

    _defaults: dict = {}

    def __init__(self, **kw):
        for name, make in self._defaults.items():
            object.__setattr__(self, name, make() if callable(make) else make)
        for k, v in kw.items():
            setattr(self, k, v)

    def __setattr__(self, name, value):
        if name not in self._defaults:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}' (samna stand-in: "
                                 f"known fields are {', '.join(self._defaults)})")
        object.__setattr__(self, name, value)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._defaults)})"


def _strict(name: str, **defaults) -> Any:
    return type(name, (_Strict,), {"_defaults": defaults})


# ---------------------------------------------------------------- events (samna's Speck event classes)
Spike = _strict("Spike", layer=0, feature=0, x=0, y=0, timestamp=0)
DvsEvent = _strict("DvsEvent", x=0, y=0, p=False, timestamp=0)
ReadNeuronValue = _strict("ReadNeuronValue", layer=0, address=0)
WriteNeuronValue = _strict("WriteNeuronValue", layer=0, address=0, neuron_state=0)
NeuronValue = _strict("NeuronValue", layer=0, address=0, neuron_state=0)
ReadoutValue = _strict("ReadoutValue", value=0)
Measurement = _strict("Measurement", channel=0, value=0.0, timestamp=0)  # a power monitor sample (W)
DropNotice = _strict("DropNotice", count=0)  # an output variant speckstream does not know

# ---------------------------------------------------------------- configuration objects (samna's configuration tree)
_XY = _strict("Vec2", x=0, y=0)
_Shape = _strict("CnnLayerShape", size=_XY, feature_count=0)
CnnLayerDimensions = _strict("CnnLayerDimensions", input_shape=_Shape, output_shape=_Shape, padding=_XY,
                             stride=lambda: _XY(x=1, y=1), kernel_size=1)
CnnLayerDestination = _strict("CnnLayerDestination", layer=0, enable=False, pooling=1, feature_shift=0)
DvsDestination = _strict("DvsDestination", layer=0, enable=False)
# names from the Speck Dev Kit datasheet's configuration tree and sinabs' config builder
CnnLayerConfig = _strict(
    "CnnLayerConfig", dimensions=CnnLayerDimensions, weights=list, biases=list, neurons_initial_value=list,
    threshold_high=0, threshold_low=-32768, return_to_zero=False, monitor_enable=False, leak_enable=False,
    leak_internal_slow_clk_enable=False, input_congestion_balancer_enable=False, output_decimator_enable=False,
    output_decimator_interval=0, destinations=lambda: [CnnLayerDestination(), CnnLayerDestination()])
DvsLayerConfig = _strict(
    "DvsLayerConfig", pass_sensor_events=True, monitor_enable=False, raw_monitor_enable=False, merge=False,
    destinations=lambda: [DvsDestination(), DvsDestination()], pooling=lambda: _XY(x=1, y=1), origin=_XY,
    cut=lambda: _XY(x=127, y=127), mirror=_XY, mirror_diagonal=False, on_channel=True, off_channel=True)
DvsFilterConfig = _strict("DvsFilterConfig", enable=False, filter_size=_XY, hot_pixel_filter_enable=False,
                          internal_slow_clk=False, low_pass_mode_enable=False, threshold=0)
ReadoutLayerConfig = _strict(
    "ReadoutConfig", enable=False, internal_slow_clk=False, low_pass_filter32_not16=False,
    low_pass_filter_disable=False, monitor_enable=False, output_mode_sel=0, output_neuron_num=0,
    override_threshold_max=False, readout_configuration_sel=0, readout_pin_monitor_enable=False, threshold=0)
FactoryConfig = _strict("FactoryConfig", io_sel=0, fast_output=False)
SpeckConfiguration = _strict(
    "SpeckConfiguration", cnn_layers=lambda: [CnnLayerConfig() for _ in range(9)], dvs_layer=DvsLayerConfig,
    dvs_filter=DvsFilterConfig, readout=ReadoutLayerConfig, factory_config=FactoryConfig)


def _dims(layer):
    d = layer.dimensions
    return ((d.input_shape.feature_count, d.input_shape.size.y, d.input_shape.size.x),
            (d.output_shape.feature_count, d.output_shape.size.y, d.output_shape.size.x))


def _configured(layer) -> bool:
    return bool(layer.weights)


def dvs_output_size(dvs) -> tuple[int, int, int]:
    """(features, y, x) the DVS stage sends its destinations: cut - origin + 1 after pooling, swapped by the
    diagonal mirror; one feature when polarities are merged."""
    x, y = dvs.cut.x - dvs.origin.x + 1, dvs.cut.y - dvs.origin.y + 1
    if dvs.mirror_diagonal:
        x, y = y, x
    return (1 if dvs.merge else 2), y, x


def validate_configuration(cfg):
    """``(ok, message)`` like ``samna.speck2f.validate_configuration``."""
    for i, layer in enumerate(cfg.cnn_layers):
        if not _configured(layer):
            continue
        (ci, hi, wi), (co, ho, wo) = _dims(layer)
        d = layer.dimensions
        k = d.kernel_size
        if not 1 <= k <= 16 or d.stride.x not in (1, 2, 4, 8) or d.stride.y not in (1, 2, 4, 8) \
                or not (0 <= d.padding.x <= 7 and 0 <= d.padding.y <= 7):
            return False, f"layer {i}: kernel/stride/padding out of range"
        if (ho, wo) != ((hi + 2 * d.padding.y - k) // d.stride.y + 1, (wi + 2 * d.padding.x - k) // d.stride.x + 1):
            return False, f"layer {i}: output shape {(ho, wo)} does not follow from the input shape and kernel"
        w = np.asarray(layer.weights)
        if w.shape != (co, ci, k, k):
            return False, f"layer {i}: weights have shape {w.shape}, dimensions say {(co, ci, k, k)}"
        if w.min() < -128 or w.max() > 127:
            return False, f"layer {i}: weights out of int8 range"
        if len(layer.biases) not in (0, co):
            return False, f"layer {i}: {len(layer.biases)} biases for {co} features"
        if np.asarray(layer.neurons_initial_value).shape != (co, wo, ho):  # [feature][x][y]
            return False, f"layer {i}: neurons_initial_value shape does not match the output shape"
        if not -32768 <= layer.threshold_low < layer.threshold_high <= 32767:
            return False, f"layer {i}: thresholds out of range (low {layer.threshold_low}, high {layer.threshold_high})"
        if not isinstance(layer.output_decimator_interval, int) or not 0 <= layer.output_decimator_interval <= 7:
            return False, f"layer {i}: output_decimator_interval {layer.output_decimator_interval!r} not in 0..7"
        for j, dst in enumerate(layer.destinations):
            if not dst.enable:
                continue
            if dst.pooling not in (1, 2, 4):
                return False, f"layer {i} destination {j}: pooling {dst.pooling} not in (1, 2, 4)"
            if dst.layer == 12:
                continue
            if not 0 <= dst.layer <= 8 or not _configured(cfg.cnn_layers[dst.layer]):
                return False, f"layer {i} destination {j}: layer {dst.layer} is not configured"
            (tc, th, tw), _ = _dims(cfg.cnn_layers[dst.layer])
            if (th, tw) != (ho // dst.pooling, wo // dst.pooling) or tc < co + dst.feature_shift:
                return False, (f"layer {i} destination {j}: input and target shape do not match "
                               f"(sends {co} features of {ho // dst.pooling}x{wo // dst.pooling}, layer {dst.layer} "
                               f"takes {tc} of {th}x{tw})")
    dvs = cfg.dvs_layer
    for j, dst in enumerate(dvs.destinations):
        if not dst.enable:
            continue
        if not 0 <= dst.layer <= 8 or not _configured(cfg.cnn_layers[dst.layer]):
            return False, f"dvs destination {j}: layer {dst.layer} is not configured"
        f, y, x = dvs_output_size(dvs)
        (tc, th, tw), _ = _dims(cfg.cnn_layers[dst.layer])
        if (th, tw) != (y, x) or tc < f:
            return False, (f"dvs destination {j}: input and target shape do not match. DVS output has x: {x}, "
                           f"y: {y}, features: {f}; layer {dst.layer} input has x: {tw}, y: {th}, features: {tc}")
    return True, ""


def from_samna_config(sc, chip: str = "speck2f"):
    """Read a ChipConfig back from samna configuration objects (the stand-in's chip runs it).

    Written from samna's configuration tree independently of ``to_samna_config`` (weights ``[out][in][x][y]``, initial vmem
    ``[feature][x][y]``, DVS origin / inclusive cut), so a round trip checks the adapter's layout."""
    from ..compiler.config import ChipConfig, CoreConfig, Destination, DVSConfig, ReadoutConfig

    cores = {}
    for i, layer in enumerate(sc.cnn_layers):
        if not _configured(layer):
            continue
        ins, outs = _dims(layer)
        d = layer.dimensions
        dests = [Destination(core=dst.layer, pooling=dst.pooling, feature_shift=dst.feature_shift)
                 for dst in layer.destinations if dst.enable]
        from ..compiler.config import DECIMATOR_RATES
        cores[i] = CoreConfig(
            core=i, input_shape=ins, output_shape=outs, kernel_size=d.kernel_size,
            stride=(d.stride.y, d.stride.x), padding=(d.padding.y, d.padding.x),
            weights=np.asarray(layer.weights, dtype=np.int8).transpose(0, 1, 3, 2),
            biases=np.asarray(layer.biases or [0] * outs[0], dtype=np.int16),
            threshold_high=layer.threshold_high, threshold_low=layer.threshold_low,
            initial_vmem=np.asarray(layer.neurons_initial_value, dtype=np.int16).transpose(0, 2, 1),
            return_to_zero=layer.return_to_zero, leak_enable=layer.leak_enable, monitor=layer.monitor_enable,
            destinations=dests,
            decimator=DECIMATOR_RATES[layer.output_decimator_interval] if layer.output_decimator_enable else 1)
    dv = sc.dvs_layer
    dvs_dests = [d.layer for d in dv.destinations if d.enable]
    dvs = None
    if dvs_dests or dv.monitor_enable or dv.raw_monitor_enable:
        px, py = dv.pooling.x, dv.pooling.y
        # the sensor is 128x128; the crop is in pooled coordinates (origin, inclusive cut)
        crop = (dv.origin.y, dv.cut.y + 1, dv.origin.x, dv.cut.x + 1)
        dvs = DVSConfig(input_size=(128, 128), pooling=(py, px), crop=crop, merge_polarities=dv.merge,
                        flip_x=dv.mirror.x, flip_y=dv.mirror.y, swap_xy=dv.mirror_diagonal,
                        on_channel=dv.on_channel, off_channel=dv.off_channel, monitor=dv.monitor_enable,
                        destinations=dvs_dests, pass_sensor_events=dv.pass_sensor_events,
                        raw_monitor=dv.raw_monitor_enable)
    readout = None
    r = sc.readout
    if r.enable:
        average = 1 if r.low_pass_filter_disable else (32 if r.low_pass_filter32_not16 else 16)
        readout = ReadoutConfig(address_sel=r.readout_configuration_sel, output_mode=r.output_mode_sel,
                                average=average, threshold=r.threshold, monitor=r.monitor_enable)
    order = sorted(cores)
    fed = {d.core for cc in cores.values() for d in cc.destinations} | set(dvs_dests)
    return ChipConfig(chip=chip, cores=cores, input_cores=[c for c in order if c not in fed] or order[:1],
                      dvs=dvs, readout=readout, layer_order=order)


# ---------------------------------------------------------------- the chip behind the buffers
class _Chip:
    """FIFO from the host -> (configuration after ``apply_delay_s``; timestamped input held until the stopwatch
    reaches it) -> speckstream's simulator -> output buffer. One worker thread per open device."""

    def __init__(self, chip: str = "speck2f", apply_delay_s: float = 0.05, sim_options=None, power_model=None):
        self.chip = chip
        self.power_model = power_model  # EnergyModel behind the power monitor's values (None: the default)
        self.power_hz = 0.0  # the power monitor's rate while it measures
        self.power_out: deque = deque()
        self._power_next = 0.0
        self._power_meter: Any = None
        self.sim_options = sim_options  # a chip that behaves differently (SimOptions), e.g. leak_fires=True
        self.apply_delay_s = apply_delay_s
        self.cond = threading.Condition()
        self.fifo: deque = deque()  # ("config", cfg, due) | ("timed", event) | ("request", event)
        self.held: deque = deque()  # timestamped input waiting for the stopwatch
        self.out: deque = deque()
        self.config: Any = None  # the samna configuration the chip has taken
        self.sim: Any = None  # a ChipSimulator once a configuration is taken
        self.gone = False
        self.written: list = []
        self.slow_clk = (False, 0)
        self.write_block_s = 0.0  # a write that blocks in "C" (the FPGA queue is full)
        self.stopwatch_running = False
        self._sw_base = 0.0  # monotonic time of stopwatch 0 (while running)
        self._sw_frozen = 0  # µs shown while stopped
        self.counts = {"applied": 0, "released": 0, "requests": 0, "spikes_not_monitored": 0}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="samna-standin-chip", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- host side
    def _alive(self) -> None:
        """An unplugged board fails every call to it."""
        if self.gone:
            raise RuntimeError("device disconnected")

    def write(self, events):
        self._alive()
        if not isinstance(events, list):
            raise TypeError("write() takes a list of events")
        if self.write_block_s:
            time.sleep(self.write_block_s)
        for ev in events:
            if not isinstance(ev, (Spike, DvsEvent, ReadNeuronValue, WriteNeuronValue)):
                raise TypeError(f"write(): {type(ev).__name__} is not an input event of this chip")
        with self.cond:
            self.written.extend(events)
            for ev in events:
                self.fifo.append(("timed" if isinstance(ev, (Spike, DvsEvent)) else "request", ev))
            self.cond.notify_all()

    def apply(self, cfg) -> None:
        self._alive()
        ok, msg = validate_configuration(cfg)
        if not ok:
            raise RuntimeError(msg)
        import copy

        with self.cond:
            self.fifo.append(("config", copy.deepcopy(cfg), time.monotonic() + self.apply_delay_s))
            self.cond.notify_all()

    def see(self, events: np.ndarray) -> None:
        """The chip's own camera sees ``events`` (DVS_EVENT_DTYPE; timestamps ignored: they happen now)."""
        with self.cond:
            now = self.stopwatch_us()
            raw = [] if self.config is None or not self.config.dvs_layer.raw_monitor_enable else [
                DvsEvent(x=int(e["x"]), y=int(e["y"]), p=bool(e["p"]), timestamp=now & 0xFFFFFFFF) for e in events]
            self.out.extend(raw)
            if self.sim is not None:
                ev = np.array(events, copy=True)
                ev["t"] = max(now, self.sim.now_us)
                self._emit(self.sim.feed_sensor(ev))
            self.cond.notify_all()

    def inject(self, events):
        with self.cond:
            self.out.extend(events)
            self.cond.notify_all()

    def take(self, n, timeout_ms):
        deadline = time.monotonic() + timeout_ms / 1000
        with self.cond:
            while not self.out:
                if self.gone:
                    raise RuntimeError("device disconnected")
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self.cond.wait(left)
            k = len(self.out) if n is None else min(n, len(self.out))
            return [self.out.popleft() for _ in range(k)]

    # -------------------------------------------------------------- stopwatch
    def stopwatch_us(self) -> int:
        if not self.stopwatch_running:
            return self._sw_frozen
        return int((time.monotonic() - self._sw_base) * 1e6)

    def stopwatch(self, action: str) -> None:
        self._alive()
        with self.cond:
            if action == "start" and not self.stopwatch_running:
                self._sw_base = time.monotonic() - self._sw_frozen / 1e6
                self.stopwatch_running = True
            elif action == "stop" and self.stopwatch_running:
                self._sw_frozen = self.stopwatch_us()
                self.stopwatch_running = False
            elif action == "reset":
                self._sw_frozen = 0
                self._sw_base = time.monotonic()
                if self.sim is not None:
                    self.sim.reset_time()
            self.cond.notify_all()

    # -------------------------------------------------------------- the worker
    def close(self) -> None:
        with self.cond:
            self._stop = True
            self.cond.notify_all()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        with self.cond:
            while not self._stop:
                wait = self._step()
                if wait != 0:
                    self.cond.wait(wait)

    def _step(self) -> float | None:
        """Process what is due; returns how long to wait (None: until notified, 0: go on at once)."""
        now = time.monotonic()
        if self.power_hz and now >= self._power_next:  # the monitor measures however busy the chip is
            self._measure_power(now)
        if self.fifo:
            kind, item, *rest = self.fifo[0]
            if kind == "config":
                if now < rest[0]:
                    return rest[0] - now
                self.fifo.popleft()
                self._take_config(item)
                return 0
            self.fifo.popleft()
            if kind == "timed":
                self.held.append(item)
            else:
                self._request(item)
            return 0
        while self.held and self.stopwatch_running and self.held[0].timestamp <= self.stopwatch_us():
            self._release(self.held.popleft())
        if self.sim is not None and self.stopwatch_running and self.slow_clk[0]:
            self._emit(self.sim.advance_to(max(self.stopwatch_us(), self.sim.now_us)))
        waits = [self._measure_power(now)] if self.power_hz else []
        if self.held and self.stopwatch_running:
            waits.append(max(self.held[0].timestamp - self.stopwatch_us(), 0) / 1e6 + 1e-4)
        if self.slow_clk[0]:
            waits.append(0.01)
        return min(waits) if waits else None

    # -------------------------------------------------------------- the power monitor
    def start_power(self, hz) -> None:
        from ..sim.energy import ActivityMeter

        self._alive()
        if not isinstance(hz, (int, float)) or isinstance(hz, bool) or not 0 < hz <= 100:
            raise ValueError(f"start_auto_power_measurement(): the rate must be in (0, 100] Hz, got {hz!r}")
        with self.cond:
            self.power_hz = float(hz)
            self._power_meter = ActivityMeter(self.power_model)
            self._power_meter.sample(*self._activity())
            self._power_next = time.monotonic() + 1 / self.power_hz
            self.cond.notify_all()

    def stop_power(self) -> None:
        with self.cond:
            self.power_hz = 0.0

    def _activity(self) -> tuple[int, int, int]:
        """(µs of wall time, SynOps so far, spikes so far) of the chip behind the buffers."""
        from ..sim.energy import activity_totals

        return (int(time.monotonic() * 1e6), *activity_totals(self.sim))

    def _measure_power(self, now: float) -> float:
        """Emit the five rails when a sample is due; returns how long until the next one."""
        if now >= self._power_next:
            from ..sim.energy import RAILS

            sample = self._power_meter.sample(*self._activity())
            stamp = self.stopwatch_us() & 0xFFFFFFFF
            self.power_out.extend(Measurement(channel=c, value=float(sample.rails[name]), timestamp=stamp)
                                  for c, name in enumerate(RAILS))
            self._power_next = now + 1 / self.power_hz
        return max(self._power_next - now, 0.0)

    def _take_config(self, cfg) -> None:
        from ..sim import ChipSimulator

        self.config = cfg
        self.counts["applied"] += 1
        self.sim = ChipSimulator(from_samna_config(cfg, self.chip), options=self.sim_options)
        self.sim.reset_state(to_initial=True)
        if self.slow_clk[0]:
            self.sim.set_slow_clock(self.slow_clk[1])

    def set_slow_clk(self, on: bool | None = None, hz: int | None = None) -> None:
        self._alive()
        with self.cond:
            self.slow_clk = (self.slow_clk[0] if on is None else bool(on), self.slow_clk[1] if hz is None else int(hz))
            if self.sim is not None:
                self.sim.set_slow_clock(self.slow_clk[1] if self.slow_clk[0] and self.slow_clk[1] else None)
            self.cond.notify_all()

    def _release(self, ev) -> None:
        from ..codec.events import DVS_EVENT_DTYPE, SPIKE_DTYPE

        self.counts["released"] += 1
        if self.sim is None:
            return  # an unconfigured chip drops input
        # released now: a chip that has fallen behind stamps its output later than the input asked for
        t = max(int(ev.timestamp), self.stopwatch_us(), self.sim.now_us)
        if isinstance(ev, Spike):
            if ev.layer not in self.sim.config.cores:
                return
            self._emit(self.sim.feed(np.array([(t, ev.layer, ev.feature, ev.x, ev.y)], SPIKE_DTYPE)))
        elif self.sim.config.dvs is not None:
            self._emit(self.sim.feed_dvs(np.array([(t, ev.x, ev.y, int(bool(ev.p)))], DVS_EVENT_DTYPE)))

    def _request(self, ev) -> None:
        from ..codec.events import READ_REQUEST_DTYPE, WRITE_REQUEST_DTYPE

        self.counts["requests"] += 1
        if self.sim is None or ev.layer not in self.sim.config.cores:
            return  # no reply from an unconfigured core
        if isinstance(ev, ReadNeuronValue):
            r = self.sim.read_neurons(np.array([(ev.layer, ev.address)], READ_REQUEST_DTYPE))[0]
            self.out.append(NeuronValue(layer=int(r["core"]), address=int(r["address"]), neuron_state=int(r["vmem"])))
        else:
            self.sim.write_neurons(np.array([(ev.layer, ev.address, ev.neuron_state)], WRITE_REQUEST_DTYPE))
        self.cond.notify_all()

    def _emit(self, spikes: np.ndarray) -> None:
        """Monitored output of the simulator -> output events (readout monitoring stops spike output)."""
        from ..sim.readout import host_output

        shown, readout = host_output(self.sim.config.readout, spikes, self.sim.take_readout())
        self.counts["spikes_not_monitored"] += len(spikes) - len(shown)
        self.out.extend(ReadoutValue(value=int(v)) for v in readout["value"].tolist())
        self.out.extend(Spike(layer=c, feature=f, x=x, y=y, timestamp=t & 0xFFFFFFFF)
                        for t, c, f, x, y in shown.tolist())
        self.cond.notify_all()


class _BufferNode:
    """A host-side buffer node: usable once an EventFilterGraph has connected it to a device's model."""

    def __init__(self):
        self.chip: _Chip | None = None

    def _chip(self) -> _Chip:
        if self.chip is None:
            raise RuntimeError(f"{type(self).__name__} is not connected to a device: put it in an "
                               "EventFilterGraph with the model's nodes (graph.sequential) first")
        return self.chip


class BasicSourceNode_speck2f_event_input_event(_BufferNode):
    def write(self, events):
        self._chip().write(events)


class BasicSinkNode_speck2f_event_output_event(_BufferNode):
    def get_events(self):
        return self._chip().take(None, 0)

    def get_events_blocking(self, timeout=1000):
        return self._chip().take(None, timeout)

    def get_n_events(self, n, timeout=10):
        return self._chip().take(n, timeout)


class _Node:  # the model's own source/sink nodes
    def __init__(self, chip):
        self.chip = chip


class _PowerNode:  # the power monitor's source node
    def __init__(self, chip):
        self.chip = chip


class BasicSinkNode_unifirm_modules_events_measurement:
    """The host-side buffer of power measurements (connected to a power monitor's source node by a graph)."""

    def __init__(self):
        self.chip: _Chip | None = None

    def get_events(self):
        if self.chip is None:
            raise RuntimeError("BasicSinkNode_unifirm_modules_events_measurement is not connected: put it in an "
                               "EventFilterGraph after the power monitor's source node first")
        with self.chip.cond:
            got, self.chip.power_out = list(self.chip.power_out), deque()
        return got


class _PowerMonitor:
    def __init__(self, chip):
        self.chip = chip

    def get_source_node(self):
        return _PowerNode(self.chip)

    def start_auto_power_measurement(self, rate):
        self.chip.start_power(rate)

    def stop_auto_power_measurement(self):
        self.chip.stop_power()


class EventFilterGraph:
    def __init__(self):
        self.started = False

    def sequential(self, nodes):
        a, b = nodes
        if isinstance(a, _PowerNode):  # power monitor -> measurement sink
            if not isinstance(b, BasicSinkNode_unifirm_modules_events_measurement):
                raise TypeError(f"a power monitor's source node feeds a measurement sink, not a {type(b).__name__}")
            b.chip = a.chip
            return nodes
        if isinstance(a, _Node):  # model source -> our sink
            b.chip = a.chip
        else:  # our source -> model sink
            a.chip = b.chip
        return nodes

    def start(self):
        self.started = True
        return True

    def stop(self):
        self.started = False


class _Model:
    def __init__(self, chip):
        self.chip = chip

    def apply_configuration(self, cfg):
        """Validates, then returns at once: the chip takes the configuration later (asynchronously)."""
        self.chip.apply(cfg)

    def get_configuration(self):
        return self.chip.config

    def get_source_node(self):
        return _Node(self.chip)

    def get_sink_node(self):
        return _Node(self.chip)


class _StopWatch:
    def __init__(self, chip):
        self.chip = chip
        self.calls: list[str] = []

    def start(self):
        self.calls.append("start")
        self.chip.stopwatch("start")

    def stop(self):
        self.calls.append("stop")
        self.chip.stopwatch("stop")

    def reset(self):
        self.calls.append("reset")
        self.chip.stopwatch("reset")


class _IO:
    def __init__(self, chip):
        self.chip = chip

    def set_slow_clk(self, on):
        self.chip.set_slow_clk(on=on)

    def set_slow_clk_rate(self, hz):
        if not isinstance(hz, int):
            raise TypeError(f"set_slow_clk_rate(): incompatible function arguments (an int is required, got {hz!r})")
        self.chip.set_slow_clk(hz=hz)


class DeviceInfo:
    def __init__(self, name, address):
        self.device_type_name = name
        self.serial_number = ""
        self.usb_bus_number = 1
        self.usb_device_address = address
        self.logic_version = 0


class _Handle:
    def __init__(self, info, apply_delay_s, sim_options, power_model=None):
        self.info = info
        self.chip = _Chip(apply_delay_s=apply_delay_s, sim_options=sim_options, power_model=power_model)
        self.power_monitor = _PowerMonitor(self.chip)
        self.model = _Model(self.chip)
        self.stopwatch = _StopWatch(self.chip)
        self.io = _IO(self.chip)
        self.closed = False

    def get_model(self):
        return self.model

    def get_model_source_node(self):
        return self.model.get_source_node()

    def get_model_sink_node(self):
        return self.model.get_sink_node()

    def get_stop_watch(self):
        return self.stopwatch

    def get_io_module(self):
        return self.io

    def get_power_monitor(self):
        return self.power_monitor

    def reset_board_soft(self, flag=True):
        pass


class _DeviceModule:
    def __init__(self, apply_delay_s, sim_options, power_model=None):
        self.connected = [DeviceInfo("Speck2fModuleDevKit", 5)]
        self.open: dict = {}
        self.apply_delay_s = apply_delay_s
        self.sim_options = sim_options
        self.power_model = power_model

    def get_all_devices(self):
        return list(self.connected)

    def get_unopened_devices(self):
        return [d for d in self.connected if id(d) not in self.open]

    def open_device(self, info):
        if isinstance(info, str):
            name, _, idx = info.partition(":")
            matches = [d for d in self.connected if d.device_type_name == name]
            if not matches:
                raise RuntimeError(f"no device {info}")
            info = matches[int(idx or 0)]
        h = self.open.get(id(info)) or _Handle(info, self.apply_delay_s, self.sim_options, self.power_model)
        self.open[id(info)] = h
        return h

    def close_device(self, handle):
        handle.closed = True
        handle.chip.close()
        self.open.pop(id(handle.info), None)


def make_module(*, apply_delay_s: float = 0.05, sim_options=None, power_model=None):
    """A fresh stand-in ``samna`` module object (state is per module). ``apply_delay_s``: how long after
    ``apply_configuration`` returns the chip takes the configuration; ``sim_options``: a
    :class:`~speckstream.sim.SimOptions` for the chip behind the buffers (a chip that behaves differently);
    ``power_model``: the :class:`~speckstream.sim.energy.EnergyModel` behind the power monitor's values."""
    mod = types.SimpleNamespace()
    mod.PYPI_SAMNA = False
    mod.device = _DeviceModule(apply_delay_s, sim_options, power_model)
    mod.graph = types.SimpleNamespace(EventFilterGraph=EventFilterGraph)
    event = types.SimpleNamespace(Spike=Spike, DvsEvent=DvsEvent, ReadNeuronValue=ReadNeuronValue,
                                  WriteNeuronValue=WriteNeuronValue, NeuronValue=NeuronValue,
                                  ReadoutValue=ReadoutValue)
    configuration = types.SimpleNamespace(SpeckConfiguration=SpeckConfiguration, CnnLayerDimensions=CnnLayerDimensions,
                                          CnnLayerDestination=CnnLayerDestination)
    mod.speck2f = types.SimpleNamespace(event=event, configuration=configuration,
                                        validate_configuration=validate_configuration)
    mod.BasicSourceNode_speck2f_event_input_event = BasicSourceNode_speck2f_event_input_event
    mod.BasicSinkNode_speck2f_event_output_event = BasicSinkNode_speck2f_event_output_event
    mod.BasicSinkNode_unifirm_modules_events_measurement = BasicSinkNode_unifirm_modules_events_measurement
    return mod


speck2f = make_module().speck2f
