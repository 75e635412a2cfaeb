"""Compile time for the test networks (target: well under 1 s each).

Baseline in the same run: one forward pass of the same model on the compile sample (what any tracer pays).

    python bench/compile.py
"""
from __future__ import annotations

import warnings

import torch

from common import best_of, parse, print_table

from speckstream.testing import models
import speckstream as ss


def run(quick: bool = False) -> list[dict]:
    nets = [("4-layer CNN (2,34,34)", models.seq4, (2, 34, 34)),
            ("residual + Merge (2,34,34)", models.ResidualMerge, (2, 34, 34)),
            ("fan-out, 2 poolings (2,16,16)", models.FanOut, (2, 16, 16)),
            ("9-layer, rejected (2,34,34)", models.nine_layer, (2, 34, 34))]
    rows = []
    warnings.simplefilter("ignore")
    for name, factory, shape in nets:
        model = factory()

        def comp(model=model, shape=shape):
            try:
                ss.compile(model, input_shape=shape)
            except ss.CompileError:
                pass

        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # the residual model prints in forward
            t = best_of(comp, repeat=3)
            fwd = best_of(lambda m=model, s=shape: m(torch.zeros(1, *s)), repeat=3)
        rows.append({"what": f"compile {name}", "value": t * 1e3, "unit": "ms",
                     "baseline": f"forward {fwd * 1e3:.2f} ms", "ratio": t / fwd, "target": "< 1000 ms"})
    return rows


if __name__ == "__main__":
    args = parse(__doc__)
    print_table("compiler", run(args.quick))
