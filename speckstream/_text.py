"""Plain-text tables for the reports (compare, profile, evaluate's activity): a header, a dash rule, and
columns padded to their widest cell."""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["text_table"]


def text_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows[0]`` is the header; returns one line per row, with a dash rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
