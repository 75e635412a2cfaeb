"""The runtime's statistics as frozen records with documented fields (as trio's ``MemoryChannelStatistics``):
latency percentiles, the accounting of a session's input, and a session's statistics. One vocabulary: the
names here are the names everywhere (DeviceDisconnected's accounting, ``Session.accounting()``,
``Session.stats``); dicts appear only where things are printed (``dataclasses.asdict``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .subscriptions import SubscriptionStatistics

__all__ = ["Percentiles", "percentiles", "Accounting", "SessionStatistics"]


@dataclass(frozen=True)
class Percentiles:
    """Percentiles of a sample (µs where the field's name says so); NaN with ``n == 0`` when nothing was measured."""

    p50: float  #: the median
    p90: float  #: 90th percentile
    p99: float  #: 99th percentile
    max: float  #: the largest value
    n: int  #: how many values were measured


def percentiles(x) -> Percentiles:
    """The :class:`Percentiles` of the values ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return Percentiles(math.nan, math.nan, math.nan, math.nan, 0)
    p50, p90, p99 = (float(v) for v in np.percentile(x, (50, 90, 99)))
    return Percentiles(p50, p90, p99, float(x.max()), int(x.size))


@dataclass(frozen=True)
class Accounting:
    """What happened to every input event of a session. Identities: ``offered == accepted + dropped_by_policy``
    and ``accepted == written + pending + not_written`` (``pending`` is 0 once the session is closed or failed,
    ``not_written`` is 0 while it is open)."""

    offered: int  #: events given to ``send`` whose fate is known: queued or dropped (a send cancelled while waiting is neither)
    accepted: int  #: events queued for the device
    written: int  #: events the device took (reconciled with the device's own count where it keeps one)
    pending: int  #: accepted, not yet written (an open session)
    not_written: int  #: accepted but never written: the session closed or failed first
    dropped_by_policy: int  #: refused by ``policy="drop"`` because the input queue was full
    delivered: int  #: output spikes received from the device and handed to subscribers

    def __str__(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.__dataclass_fields__)


@dataclass(frozen=True)
class SessionStatistics:
    """A session's statistics at one moment: its input (the :class:`Accounting` fields), its outputs by kind,
    rates, queues, and what the device itself reports."""

    offered: int  #: see :class:`Accounting`
    accepted: int  #: see :class:`Accounting`
    written: int  #: see :class:`Accounting`
    pending: int  #: see :class:`Accounting`
    not_written: int  #: see :class:`Accounting`
    dropped_by_policy: int  #: see :class:`Accounting`
    delivered: int  #: output spikes received (see :class:`Accounting`)
    neuron_values: int  #: NeuronValue replies received
    readout_values: int  #: ReadoutValues received
    dvs_events: int  #: raw sensor events (DvsEvents) received
    unknown_events: int  #: output events of a type the decoder does not know (counted, dropped)
    in_rate: float  #: input events written per second since the session opened
    out_rate: float  #: output spikes received per second since the session opened
    input_queue_batches: int  #: batches waiting in the input queue
    stale_replies_dropped: int  #: NeuronValue replies that came after their request timed out, thrown away
    lag_us: int | None  #: wall-clock simulator: µs the latest input waited past its timestamp (None: the device cannot tell)
    lag_max_us: int | None  #: the largest ``lag_us`` since the device opened (None: the device cannot tell)
    subscriptions: tuple[SubscriptionStatistics, ...]  #: one record per open subscription
    device: Mapping[str, Any]  #: the backend's own counters (names differ by device: printed, not computed with)
