"""A real data set for the demo: scikit-learn's bundled handwritten digits (1797 images, 8x8, grey levels
0..16, from the UCI 'Optical Recognition of Handwritten Digits' set), as event streams, and the small
trained spiking network that fits the chip.

Encoding (documented and seeded): Poisson rate coding in 1 ms bins, one input channel. A pixel of grey level
g fires in each bin with probability ``g / 16 * max_rate_hz / 1000`` (at most one event per pixel per bin),
for ``duration_ms`` bins; events are tonic-style structured arrays (x, y, t in µs, p = 0). With the defaults
(250 Hz, 100 ms) a digit gives about 500 events.

The network (``digits_net``): conv 1->16 3x3 -> IAF -> avg-pool 2 -> conv 16->32 3x3 -> IAF -> avg-pool 2 ->
linear 128->10 -> IAF, converted from an ANN (ReLU) trained on the grey levels, with data-based weight
normalisation (see examples/train_digits.py, which reproduces the committed weights).

``digits_net(RAW_WEIGHTS, min_v_mem=-1.0)`` is the same trained ANN converted as ``sinabs.from_model`` converts it
by default (threshold 1, vmem floor -1, no weight normalisation): its hidden layers are busy and it reaches only
about 0.6 on the chip against 0.99 for the ANN - the network ``ss.calibrate`` is measured on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_digits_split", "encode", "digits_dataset", "digits_net", "WEIGHTS", "RAW_WEIGHTS", "TONIC_XYTP"]

WEIGHTS = Path(__file__).with_name("data") / "digits_snn.npz"
RAW_WEIGHTS = Path(__file__).with_name("data") / "digits_ann_raw.npz"  # the ANN as trained, before normalisation
TONIC_XYTP = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])  # tonic.io.events_struct


def load_digits_split(test_fraction: float = 0.2, seed: int = 0):
    """(train images, train labels, test images, test labels); images float32 [N, 8, 8] in 0..16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the digits data set ships with scikit-learn: pip install scikit-learn "
                          "(or 'speckstream[demo]')") from None
    d = load_digits()
    x, y = d.images.astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = order[:n_test], order[n_test:]
    return x[tr], y[tr], x[te], y[te]


def encode(image: np.ndarray, *, seed: int, duration_ms: int = 100, max_rate_hz: float = 250.0) -> np.ndarray:
    """One 8x8 image (0..16) -> Poisson events in 1 ms bins (tonic-style x, y, t µs, p), time-ordered."""
    rng = np.random.default_rng(seed)
    p = np.clip(np.asarray(image, np.float64) / 16.0, 0, 1) * max_rate_hz / 1000.0
    fire = rng.random((duration_ms, *p.shape)) < p  # [t, y, x]
    t, y, x = np.nonzero(fire)
    ev = np.zeros(len(t), TONIC_XYTP)
    ev["x"], ev["y"], ev["t"] = x, y, t * 1000
    return ev


def digits_dataset(images, labels, *, seed: int = 0, **kw) -> list[tuple[np.ndarray, int]]:
    """[(events, label)] for every image; sample i is encoded with seed ``seed + i``."""
    return [(encode(img, seed=seed + i, **kw), int(lab)) for i, (img, lab) in enumerate(zip(images, labels))]


def to_frames(events: np.ndarray, duration_ms: int = 100) -> np.ndarray:
    """Events -> [T, 1, 8, 8] float32 counts per 1 ms bin (the time-stepped model's input)."""
    x = np.zeros((duration_ms, 1, 8, 8), np.float32)
    np.add.at(x, (events["t"] // 1000, 0, events["y"], events["x"]), 1)  # type: ignore[arg-type]
    return x


def digits_net(weights: str | Path | None = WEIGHTS, *, min_v_mem: float = -100.0, relu: bool = False,
               batch_size: int = 1):
    """The digits network; with ``weights`` the committed trained parameters. ``relu=True`` gives the ANN
    it was trained as; ``batch_size`` is sinabs' IAFSqueeze batch (time-stepped runs of several samples)."""
    from .errors import require

    torch = require("torch", "compile", "the digits network")
    from torch import nn

    def act():
        if relu:
            return nn.ReLU()
        import sinabs.layers as sl

        return sl.IAFSqueeze(batch_size=batch_size, spike_threshold=1.0, min_v_mem=min_v_mem)

    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), act(), nn.AvgPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1, bias=False), act(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(128, 10, bias=False), act())
    if weights is not None:
        w = np.load(weights)
        with torch.no_grad():
            for i in (0, 3, 7):
                net[i].weight.copy_(torch.from_numpy(w[f"w{i}"]))  # type: ignore[operator]
    return net
