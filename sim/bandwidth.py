"""A core's SynOps/s against a bandwidth limit. Each core of the chip can execute only so many synaptic operations
per second; exceeding it "stalls the entire chip" and its behaviour becomes unpredictable, with no way to
diagnose it on the chip except an oscilloscope (sinabs' docs, "Tips for training"). SynSense publishes no figure:
the limit is the user's (``SimOptions.synops_limit``, ``ss.profile(..., synops_limit=)``)."""
from __future__ import annotations

from ..errors import SpeckstreamWarning

__all__ = ["WINDOWS_US", "BandwidthWarning", "BandwidthWatch", "bandwidth_message"]

WINDOWS_US = (1000, 10_000)  # the windows of the peak SynOps/s: 1 ms and 10 ms


class BandwidthWarning(SpeckstreamWarning):
    """A core's SynOps/s over a window exceeds the bandwidth limit: on the chip the whole chip stalls and its
    behaviour is unpredictable (sinabs' docs); the message names the core, the window and when."""


class BandwidthWatch:
    """A running check of each core's SynOps/s against a limit, fed per millisecond of chip time (the runtime's
    simulator feeds it while it runs): a rolling sum over each window; each core's first excess per window is
    reported once, as (core, window µs, window start µs, SynOps/s)."""

    def __init__(self, limit: float, windows_us=WINDOWS_US):
        self.limit = float(limit)
        self.windows = tuple(int(w) for w in windows_us)
        self._recent: dict[int, list[tuple[int, int]]] = {}  # core -> [(ms, SynOps)] of the longest window
        self.reported: dict[tuple[int, int], tuple[int, float]] = {}  # (core, window) -> (start µs, SynOps/s)

    def add(self, ms: int, synops: dict[int, int]) -> list[tuple[int, int, int, float]]:
        span = max(self.windows) // 1000
        new = []
        for core, ops in synops.items():
            if ops <= 0:
                continue
            recent = [(m, o) for m, o in self._recent.get(core, []) if m > ms - span] + [(ms, ops)]
            self._recent[core] = recent
            for w in self.windows:
                if (core, w) in self.reported:
                    continue
                k = max(1, w // 1000)
                rate = sum(o for m, o in recent if m > ms - k) * 1e6 / w
                if rate > self.limit:
                    self.reported[(core, w)] = ((ms - k + 1) * 1000, rate)
                    new.append((core, w, (ms - k + 1) * 1000, rate))
        return new


def bandwidth_message(core: int, window_us: int, start_us: int, rate: float, limit: float,
                      layer: str | None = None) -> str:
    where = f"core {core}" if layer is None else f"core {core} ({layer})"
    return (f"{where} runs {rate:.3g} SynOps/s over the {window_us / 1e3:g} ms from {start_us / 1e3:.1f} ms, "
            f"above the limit of {limit:.3g} SynOps/s: on the chip this stalls the whole chip (fewer input events, "
            "a smaller kernel or fewer channels, or the output decimator of the core feeding it reduce it)")
