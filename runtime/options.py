"""The runtime's options, typed once: the words each switch takes (``Literal`` types, so a type checker catches a
misspelt policy or clock) and the session options with their defaults and checks (:class:`SessionOptions`), which
``Session``, ``open_device`` and ``connect`` all take as the same explicit keywords."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

__all__ = ["Clock", "Policy", "InputKind", "OutputKind", "Via", "SessionOptions"]

#: the simulator's clock: "wall" holds input until the session clock reaches its timestamps, as a devkit does;
#: "virtual" lets chip time follow the input timestamps, as fast as the CPU allows
Clock = Literal["wall", "virtual"]
#: what ``send`` does when the input queue is full: wait for room (backpressure), or drop and count
Policy = Literal["wait", "drop"]
#: what ``send`` writes: spikes straight into cores, or DvsEvents into the configuration's DVS stage
InputKind = Literal["spike", "dvs"]
#: one kind of device output, or "all" of them
OutputKind = Literal["spike", "neuron_value", "readout", "dvs", "all"]
#: how ``replay`` feeds a recording: through the DVS stage, straight into a core, or chosen by the source
Via = Literal["auto", "dvs", "core"]


def check_policy(policy) -> Policy:
    """``policy`` if it is one of the words ``send`` takes, else ValueError."""
    if policy not in ("wait", "drop"):
        raise ValueError(f"policy must be 'wait' or 'drop', got {policy!r}")
    return policy


@dataclass(frozen=True)
class SessionOptions:
    """How a session moves events; checked when made (ValueError), before anything is opened."""

    batch_size: int = 65536  #: events per input batch (``send`` splits bigger arrays)
    input_queue: int = 16  #: input batches queued for the device at most (then the policy applies)
    policy: Policy = "wait"  #: what ``send`` does when the input queue is full
    read_timeout_s: float = 0.005  #: the longest one device read waits for output (s)
    #: the real-time guard: warn once when a wall-clock device runs this many seconds behind its input
    #: timestamps (None: never)
    lag_warn_s: float | None = 0.05

    def __post_init__(self) -> None:
        check_policy(self.policy)
        for name in ("batch_size", "input_queue"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {v!r}")
        if isinstance(self.read_timeout_s, bool) or not isinstance(self.read_timeout_s, numbers.Real) \
                or not (self.read_timeout_s > 0 and math.isfinite(self.read_timeout_s)):
            raise ValueError(f"read_timeout_s must be a positive number of seconds, got {self.read_timeout_s!r}")
        if self.lag_warn_s is not None and not self.lag_warn_s > 0:
            raise ValueError(f"lag_warn_s must be a positive number of seconds or None, got {self.lag_warn_s!r}")
