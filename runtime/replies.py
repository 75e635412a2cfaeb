"""Matching NeuronValue replies to the ReadNeuronValue requests that asked for them.

The chip's replies carry no request id and no timestamp, only (core, address). Each ``read_neurons`` call
holds a ticket for the (core, address) pairs it asked for, and a reply fills the oldest ticket still waiting
for its pair. A ticket that timed out stays registered (abandoned) so that its late replies are consumed
and thrown away instead of being handed to the next poll as fresh values; abandoned tickets expire after
``expire_s``. Two concurrent polls of different cores never see each other's replies.
"""
from __future__ import annotations

import numpy as np
import anyio

from ..codec import events as ev

__all__ = ["ReplyMatcher"]


class _Ticket:
    def __init__(self, keys: np.ndarray, born: float):
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.filled = np.zeros(len(keys), bool)
        self.values = np.zeros(len(keys), ev.NEURON_VALUE_DTYPE)
        self.done = anyio.Event()
        self.abandoned = False
        self.born = born

    def take(self, keys: np.ndarray, replies: np.ndarray) -> np.ndarray:
        """Fill from ``replies`` (keys ``keys``); return the mask of replies taken."""
        if len(self.keys) == 0 or len(keys) == 0:
            return np.zeros(len(keys), bool)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = (self.keys[pos] == keys) & ~self.filled[pos]
        # one reply per slot: keep the first of duplicates within this batch
        first = np.zeros(len(keys), bool)
        if hit.any():
            _, idx = np.unique(pos[hit], return_index=True)
            first[np.flatnonzero(hit)[idx]] = True
        self.filled[pos[first]] = True
        self.values[pos[first]] = replies[first]
        if self.filled.all():
            self.done.set()
        return first


def _keys(core, address) -> np.ndarray:
    return (np.asarray(core, np.uint64) << np.uint64(32)) | np.asarray(address, np.uint64)


class ReplyMatcher:
    """Routes NeuronValue replies to the read_neurons calls that asked for them (see the module docstring)."""

    def __init__(self, expire_s: float = 2.0):
        self.tickets: list[_Ticket] = []
        self.expire_s = expire_s
        self.stale_dropped = 0  # late replies of timed-out requests, thrown away
        self.unsolicited = 0  # replies nobody asked for

    def open(self, requests: np.ndarray) -> _Ticket:
        t = _Ticket(_keys(requests["core"], requests["address"]), anyio.current_time())
        self.tickets.append(t)
        return t

    def abandon(self, t: _Ticket) -> None:
        t.abandoned = True
        if t.filled.all() and t in self.tickets:
            self.tickets.remove(t)

    def deliver(self, replies: np.ndarray) -> None:
        now = anyio.current_time()
        self.tickets = [t for t in self.tickets if not (t.abandoned and now - t.born > self.expire_s)]
        keys = _keys(replies["core"], replies["address"])
        rest = np.ones(len(keys), bool)
        for t in list(self.tickets):
            if not rest.any():
                break
            idx = np.flatnonzero(rest)
            took = t.take(keys[idx], replies[idx])
            rest[idx[took]] = False
            if t.abandoned:
                self.stale_dropped += int(took.sum())
            if t.filled.all():
                self.tickets.remove(t)
        self.unsolicited += int(rest.sum())
