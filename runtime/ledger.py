"""A session's books: what happened to every input event and how many outputs came back.

Kept in one place so that every error carries the same accounting (:class:`~.stats.Accounting`) and its two
identities hold on every path: ``offered == accepted + dropped_by_policy`` and ``accepted == written + pending +
not_written``. Events accepted but never written are settled as ``not_written`` once, when the session closes or
fails; a write abandoned at close that the device completed later is moved back to ``written`` by
:meth:`Ledger.reconcile` with the device's own count.
"""
from __future__ import annotations

from ..codec.samna_events import DecodedOutput
from .stats import Accounting

__all__ = ["Ledger"]


class Ledger:
    """Counters of one session (plain integers: the session's tasks update them on one event loop)."""

    def __init__(self) -> None:
        self.offered = self.accepted = self.written = self.not_written = self.dropped_by_policy = 0
        self.pending = 0  # accepted, not yet written; may dip below 0 for a moment (the writer ran first)
        self.out_spikes = self.out_neuron_values = self.out_readout = self.out_dvs = self.unknown = 0

    # ------------------------------------------------------------------ input
    def dropped(self, n: int) -> None:
        """``n`` events offered and dropped by the policy (the input queue was full)."""
        self.offered += n
        self.dropped_by_policy += n

    def queued(self, n: int) -> None:
        """``n`` events offered and accepted into the input queue."""
        self.offered += n
        self.accepted += n
        self.pending += n

    def wrote(self, n: int) -> None:
        """``n`` queued events reached the device."""
        self.written += n
        self.pending -= n

    def reconcile(self, device_written: int | None) -> None:
        """The device counts more events taken than the session saw written (a write whose wait was abandoned,
        or a batch the device took part of before it vanished): count them as written, from what is pending,
        else from what was already settled as not written."""
        if device_written is None or device_written <= self.written:
            return
        extra = device_written - self.written
        self.written += extra
        from_pending = min(extra, max(self.pending, 0))
        self.pending -= from_pending
        self.not_written -= extra - from_pending

    def settle(self) -> None:
        """The session closed or failed: what is still pending is not written (counted once)."""
        self.not_written += max(self.pending, 0)
        self.pending = min(self.pending, 0)  # below 0: a batch written before its send() counted it

    def accounting(self) -> Accounting:
        return Accounting(offered=self.offered, accepted=self.accepted, written=self.written,
                          pending=max(self.pending, 0), not_written=self.not_written,
                          dropped_by_policy=self.dropped_by_policy, delivered=self.out_spikes)

    # ------------------------------------------------------------------ output
    def received(self, out: DecodedOutput) -> None:
        self.out_spikes += len(out.spikes)
        self.out_neuron_values += len(out.neuron_values)
        self.out_readout += len(out.readout)
        self.out_dvs += len(out.dvs)
        self.unknown += out.n_unknown

    @property
    def outputs(self) -> int:
        """Spikes and NeuronValues received so far (what quiescence watches)."""
        return self.out_spikes + self.out_neuron_values
