"""Shared helpers for the benchmarks: best-of-N timing and a result table with ratios."""
from __future__ import annotations

import argparse
import time


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time (s) of ``repeat`` runs of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def fmt(v: float) -> str:
    if v != v:
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.3g}"


_SCALE = {"G": 1e9, "M": 1e6, "k": 1e3, "": 1.0}


def verdict(row: dict) -> str:
    """"met" / "NOT met" for a target like ">= 8x" (the ratio), ">= 3 G/s" or "< 10 %" (the value); "" if none."""
    import re

    m = re.fullmatch(r"\s*(>=|<=|<|>)\s*([\d.]+)\s*(x|[GMk]?)\b.*", row.get("target") or "")
    if not m:
        return ""
    op, num, suffix = m.group(1), float(m.group(2)), m.group(3)
    got = row.get("ratio") if suffix == "x" else row.get("value")
    if got is None:
        return ""
    want = num if suffix == "x" else num * _SCALE[suffix]
    ok = {">=": got >= want, ">": got > want, "<=": got <= want, "<": got < want}[op]
    return "met" if ok else "NOT met"


def print_table(title: str, rows: list[dict]) -> None:
    """rows: {"what", "value", "unit", "baseline" (optional), "ratio" (optional), "target" (optional)}."""
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for col in ("measure", "value", "baseline (same run)", "ratio", "target", ""):
            t.add_column(col, justify="right" if col != "measure" else "left")
        for r in rows:
            v = verdict(r)
            t.add_row(r["what"], f"{fmt(r['value'])} {r.get('unit', '')}",
                      r.get("baseline", ""), f"{r['ratio']:.2g}x" if r.get("ratio") is not None else "",
                      r.get("target", ""), f"[green]{v}[/]" if v == "met" else f"[red]{v}[/]" if v else "")
        Console(width=150).print(t)
    except ImportError:  # pragma: no cover
        print(title)
        for r in rows:
            print(f"  {r['what']}: {fmt(r['value'])} {r.get('unit', '')} {r.get('ratio', '')} {verdict(r)}")


def parse(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes (seconds, for smoke runs)")
    return p.parse_args()
