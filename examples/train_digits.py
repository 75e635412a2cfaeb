"""Train the digits network and write speckstream/data/digits_snn.npz (the weights the demo uses).

Why ANN -> SNN conversion (not BPTT): the data set is small and static, an ANN trains in seconds on two
CPU cores, and rate-coded IAF neurons with subtract-reset reproduce ReLU rates once each layer's weights are
normalised by its activation range (Diehl et al. 2015, data-based normalisation, 99.9th percentile). The
converted network then runs time-stepped in sinabs (the float SNN) and event-driven on the chip.

    python examples/train_digits.py            # ~20 s; prints ANN / float SNN / chip accuracy
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speckstream.digits import RAW_WEIGHTS, WEIGHTS, digits_net, load_digits_split

SEED = 0


def train_ann(x: np.ndarray, y: np.ndarray, epochs: int = 60) -> nn.Module:
    torch.manual_seed(SEED)
    ann = digits_net(None, relu=True)
    ann[-1] = nn.Identity()  # logits for the loss; the SNN's last IAF counts relu(logits)
    opt = torch.optim.Adam(ann.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[:, None] / 16.0), torch.from_numpy(y)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        for idx in torch.randperm(len(yt), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(ann(xt[idx]), yt[idx]).backward()
            opt.step()
    return ann


def normalise(ann: nn.Module, x: np.ndarray, pct: float = 99.9) -> dict[str, np.ndarray]:
    """Scale each weight layer so that its activation's ``pct`` percentile maps to the threshold (1)."""
    acts, h = [], torch.from_numpy(x[:, None] / 16.0)
    with torch.no_grad():
        for m in ann:
            h = torch.relu(m(h)) if isinstance(m, (nn.Conv2d, nn.Linear)) else m(h)
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                acts.append(float(np.percentile(h.numpy(), pct)))
    out, prev = {}, 1.0
    for i, lam in zip((0, 3, 7), acts):
        out[f"w{i}"] = (ann[i].weight.detach().numpy() * prev / lam).astype(np.float32)
        prev = lam
    return out


def main() -> int:
    xtr, ytr, xte, yte = load_digits_split()
    ann = train_ann(xtr, ytr)
    with torch.no_grad():
        acc = (ann(torch.from_numpy(xte[:, None] / 16.0)).argmax(1).numpy() == yte).mean()
    print(f"ANN test accuracy {acc:.4f} ({len(yte)} held-out digits)")
    w = normalise(ann, xtr)
    Path(WEIGHTS).parent.mkdir(parents=True, exist_ok=True)
    np.savez(WEIGHTS, **w)
    # the ANN's own weights too: converted as sinabs.from_model converts (no normalisation) they make the busy,
    # poorly matching network that ss.calibrate is measured on
    np.savez(RAW_WEIGHTS, **{f"w{i}": ann[i].weight.detach().numpy().astype(np.float32) for i in (0, 3, 7)})
    print(f"wrote {WEIGHTS} and {RAW_WEIGHTS}")
    from speckstream.demo import digits_report

    digits_report(show=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
