"""A stand-in for the parts of samna that speckstream uses, with samna's names (shared/spec/SAMNA.md).

Never the real thing: its "chip" is a loopback that answers ReadNeuronValue with a fixed pattern and
echoes input Spikes as monitored output Spikes of the same layer. Buffers block like samna's
(``get_events_blocking(timeout)``, ``get_n_events(n, timeout)``), and a device can be made to vanish.
"""
from __future__ import annotations

import threading
import time
import types
from collections import deque

__all__ = ['CnnLayerDimensions', 'PYPI_SAMNA', 'Spike', 'DvsEvent', 'ReadNeuronValue', 'WriteNeuronValue', 'NeuronValue',
           'ReadoutValue', 'DropNotice', 'CnnLayerDestination', 'CnnLayerConfig',
           'SpeckConfiguration', 'validate_configuration',
           'BasicSourceNode_speck2f_event_input_event', 'BasicSinkNode_speck2f_event_output_event',
           'EventFilterGraph', 'DeviceInfo', 'make_module', 'speck2f']

PYPI_SAMNA = False


class _Event:
    _fields: tuple = ()

    def __init__(self):
        for f in self._fields:
            setattr(self, f, 0)

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)}' for f in self._fields)})"


def _event(name, *fields):
    return type(name, (_Event,), {"_fields": fields})


Spike = _event("Spike", "layer", "feature", "x", "y", "timestamp")
DvsEvent = _event("DvsEvent", "x", "y", "p", "timestamp")
ReadNeuronValue = _event("ReadNeuronValue", "layer", "address")
WriteNeuronValue = _event("WriteNeuronValue", "layer", "address", "neuron_state")
NeuronValue = _event("NeuronValue", "layer", "address", "neuron_state")
ReadoutValue = _event("ReadoutValue", "value")
DropNotice = _event("DropNotice", "count")  # an output variant speckstream does not know


# ---------------------------------------------------------------- configuration objects
class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _xy(x=0, y=0):
    return _Obj(x=x, y=y)


class CnnLayerDestination(_Obj):
    def __init__(self):
        super().__init__(layer=0, enable=False, pooling=1, feature_shift=0)


class CnnLayerDimensions(_Obj):
    def __init__(self):
        super().__init__(input_shape=_Obj(size=_xy(), feature_count=0), output_shape=_Obj(size=_xy(), feature_count=0),
                         padding=_xy(), stride=_xy(1, 1), kernel_size=1)


class CnnLayerConfig(_Obj):
    def __init__(self):
        super().__init__(
            dimensions=_Obj(input_shape=_Obj(size=_xy(), feature_count=0),
                            output_shape=_Obj(size=_xy(), feature_count=0),
                            padding=_xy(), stride=_xy(1, 1), kernel_size=1),
            weights=[], biases=[], neurons_initial_value=[], threshold_high=0, threshold_low=-32768,
            return_to_zero=False, monitor_enable=False, leak_enable=False,
            destinations=[CnnLayerDestination(), CnnLayerDestination()])


class SpeckConfiguration(_Obj):
    def __init__(self):
        super().__init__(cnn_layers=[CnnLayerConfig() for _ in range(9)],
                         dvs_layer=_Obj(pass_sensor_events=True, monitor_enable=False, merge=False,
                                        destinations=[CnnLayerDestination(), CnnLayerDestination()],
                                        pooling=_xy(1, 1), origin=_xy(), cut=_xy(127, 127),
                                        mirror=_xy(False, False), mirror_diagonal=False,
                                        on_channel=True, off_channel=True, raw_monitor_enable=False),
                         readout=_Obj(enable=False, monitor_enable=False))


def validate_configuration(cfg):
    for i, layer in enumerate(cfg.cnn_layers):
        if layer.threshold_low == 0 and layer.weights:
            return False, f"layer {i}: threshold_low must not be 0"
    return True, ""


# ---------------------------------------------------------------- buffers and the loopback chip
class _Chip:
    def __init__(self):
        self.out: deque = deque()
        self.cond = threading.Condition()
        self.config = None
        self.gone = False
        self.written: list = []
        self.stopwatch_running = False
        self.slow_clk = (False, 0)
        self.write_block_s = 0.0  # a write that blocks in "C" (the FPGA queue is full)

    def write(self, events):
        if self.gone:
            raise RuntimeError("device disconnected")
        if not isinstance(events, list):
            raise TypeError("write() takes a list of events")
        if self.write_block_s:
            time.sleep(self.write_block_s)
        self.written.extend(events)
        replies = []
        for ev in events:
            if isinstance(ev, ReadNeuronValue):
                r = NeuronValue()
                r.layer, r.address, r.neuron_state = ev.layer, ev.address, (ev.address % 100) - 50
                replies.append(r)
            elif isinstance(ev, Spike):
                s = Spike()
                s.layer, s.feature, s.x, s.y, s.timestamp = ev.layer, ev.feature, ev.x, ev.y, ev.timestamp
                replies.append(s)
        with self.cond:
            self.out.extend(replies)
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


class BasicSourceNode_speck2f_event_input_event:
    def __init__(self):
        self.chip: _Chip | None = None

    def write(self, events):
        self.chip.write(events)


class BasicSinkNode_speck2f_event_output_event:
    def __init__(self):
        self.chip: _Chip | None = None

    def get_events(self):
        return self.chip.take(None, 0)

    def get_events_blocking(self, timeout=1000):
        return self.chip.take(None, timeout)

    def get_n_events(self, n, timeout=10):
        return self.chip.take(n, timeout)


class _Node:  # the model's own source/sink nodes
    def __init__(self, chip):
        self.chip = chip


class EventFilterGraph:
    def __init__(self):
        self.started = False

    def sequential(self, nodes):
        a, b = nodes
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
        ok, msg = validate_configuration(cfg)
        if not ok:
            raise RuntimeError(msg)
        self.chip.config = cfg

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
        self.chip.stopwatch_running = True

    def stop(self):
        self.calls.append("stop")
        self.chip.stopwatch_running = False

    def reset(self):
        self.calls.append("reset")


class _IO:
    def __init__(self, chip):
        self.chip = chip

    def set_slow_clk(self, on):
        self.chip.slow_clk = (bool(on), self.chip.slow_clk[1])

    def set_slow_clk_rate(self, hz):
        self.chip.slow_clk = (self.chip.slow_clk[0], int(hz))


class DeviceInfo:
    def __init__(self, name, address):
        self.device_type_name = name
        self.serial_number = ""
        self.usb_bus_number = 1
        self.usb_device_address = address
        self.logic_version = 0


class _Handle:
    def __init__(self, info):
        self.info = info
        self.chip = _Chip()
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

    def reset_board_soft(self, flag=True):
        pass


class _DeviceModule:
    def __init__(self):
        self.connected = [DeviceInfo("Speck2fModuleDevKit", 5)]
        self.open: dict = {}

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
        h = self.open.get(id(info)) or _Handle(info)
        self.open[id(info)] = h
        return h

    def close_device(self, handle):
        handle.closed = True
        self.open.pop(id(handle.info), None)


def make_module():
    """A fresh stand-in ``samna`` module object (state is per module)."""
    mod = types.SimpleNamespace()
    mod.PYPI_SAMNA = False
    mod.device = _DeviceModule()
    mod.graph = types.SimpleNamespace(EventFilterGraph=EventFilterGraph)
    event = types.SimpleNamespace(Spike=Spike, DvsEvent=DvsEvent, ReadNeuronValue=ReadNeuronValue,
                                  WriteNeuronValue=WriteNeuronValue, NeuronValue=NeuronValue,
                                  ReadoutValue=ReadoutValue)
    configuration = types.SimpleNamespace(SpeckConfiguration=SpeckConfiguration, CnnLayerDimensions=CnnLayerDimensions)
    mod.speck2f = types.SimpleNamespace(event=event, configuration=configuration,
                                        validate_configuration=validate_configuration)
    mod.BasicSourceNode_speck2f_event_input_event = BasicSourceNode_speck2f_event_input_event
    mod.BasicSinkNode_speck2f_event_output_event = BasicSinkNode_speck2f_event_output_event
    return mod


speck2f = make_module().speck2f
