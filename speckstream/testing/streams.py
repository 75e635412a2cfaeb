"""Event streams for sinabs' trained networks: real recordings (vendored in ``tests/data/recordings``) shaped
for their inputs, and the same rate coding sinabs' MNIST example uses. All tonic-style x/y/t/p (t in µs).

* :func:`nmnist_sample` - the one real N-MNIST recording we ship (34x34, 2 polarities, ~311 ms);
* :func:`dvs128_clip` - a 128x128 crop of a real DAVIS346 recording, timestamps from 0: real DVS input for a
  DVS128-sized network (no DVS128 recording we may ship was found);
* :func:`moving_edges` - synthetic DVS events of bars sweeping a 128x128 sensor, plus uniform noise, at a
  chosen rate;
* :func:`mnist_like` / :func:`rate_coded` - sklearn's 8x8 digits enlarged to MNIST's 28x28 layout (a 20x20 digit
  centred in 28x28) and Poisson coded as sinabs' ``examples/mnist`` codes MNIST (one Bernoulli draw per 1 ms
  step with probability grey level / max): labelled input for sinabs' MNIST network when MNIST is not at hand.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..codec.events import XYTP_DTYPE

__all__ = ["XYTP", "recordings_dir", "nmnist_sample", "dvs128_clip", "moving_edges", "jittered_copies", "mnist_like",
           "rate_coded"]

XYTP = XYTP_DTYPE  # tonic's layout, the codec's x/y/t/p dtype


def recordings_dir() -> Path:
    env = os.environ.get("SPECKSTREAM_RECORDINGS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "tests" / "data" / "recordings"


def _xytp(x, y, t, p) -> np.ndarray:
    out = np.empty(len(t), XYTP)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def nmnist_sample() -> np.ndarray:
    """The vendored N-MNIST recording (CC BY-SA 4.0, Orchard et al. 2015), as x/y/t/p."""
    from ..codec.fixed_records import read_nmnist_bin

    ev = read_nmnist_bin(recordings_dir() / "nmnist_sample.bin")
    return _xytp(ev["x"], ev["y"], ev["t"], ev["p"])


def dvs128_clip() -> np.ndarray:
    """The vendored 128x128 crop of a real DAVIS346 recording (MIT; 38,877 events over 1.4 s, timestamps from 0):
    real DVS input at the size of a DVS128 / Speck sensor (provenance in tests/data/recordings/README.md)."""
    ev = np.load(recordings_dir() / "davis346_crop128.npy", allow_pickle=False)
    return _xytp(ev["x"], ev["y"], ev["t"], ev["p"].astype(np.int16))


def moving_edges(rate_hz: float, duration_s: float, *, size: int = 128, bars: int = 2, noise: float = 0.1,
                 seed: int = 0) -> np.ndarray:
    """About ``rate_hz`` events/s for ``duration_s``: ``bars`` vertical and horizontal edges sweeping the
    ``size`` x ``size`` sensor (ON at the leading edge, OFF at the trailing one) and a ``noise`` fraction of
    uniformly random events; time-ordered x/y/t/p."""
    rng = np.random.default_rng(seed)
    n = int(rate_hz * duration_s)
    t = np.sort(rng.integers(0, max(1, int(duration_s * 1e6)), n))
    is_noise = rng.random(n) < noise
    phase = t / 1e6 * 1.5 + rng.integers(0, bars, n) / bars  # each bar crosses the sensor in ~0.67 s
    pos = ((phase % 1.0) * size).astype(np.int64)
    along = rng.integers(0, size, n)
    width = rng.integers(0, 3, n)
    p = rng.integers(0, 2, n)
    edge = np.clip(pos + np.where(p == 1, width, -width - 1), 0, size - 1)
    vertical = rng.random(n) < 0.5
    x = np.where(vertical, edge, along)
    y = np.where(vertical, along, edge)
    x = np.where(is_noise, rng.integers(0, size, n), x)
    y = np.where(is_noise, rng.integers(0, size, n), y)
    return _xytp(x, y, t, p)


def jittered_copies(ev: np.ndarray, n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``ev`` (x/y/t/p on a ``size`` x ``size`` sensor), then n - 1 copies shifted by up to 3 pixels with a fifth
    of the events dropped: a small data set from one real recording."""
    rng = np.random.default_rng(seed)
    out = [ev]
    for _ in range(n - 1):
        e = ev[rng.random(len(ev)) < 0.8].copy()
        dx, dy = rng.integers(-3, 4, 2)
        e["x"], e["y"] = np.clip(e["x"] + dx, 0, size - 1), np.clip(e["y"] + dy, 0, size - 1)
        out.append(e)
    return out


def mnist_like(images8: np.ndarray) -> np.ndarray:
    """sklearn digits [N, 8, 8] (grey 0..16) -> [N, 28, 28] in MNIST's layout (0..255, the digit in the central
    20x20), by bilinear resampling."""
    images8 = np.asarray(images8, np.float64)
    src = (np.arange(20) + 0.5) * 8 / 20 - 0.5
    i0 = np.clip(np.floor(src).astype(int), 0, 7)
    i1 = np.clip(i0 + 1, 0, 7)
    f = np.clip(src - i0, 0, 1)
    rows = images8[:, i0, :] * (1 - f)[None, :, None] + images8[:, i1, :] * f[None, :, None]
    big = rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i1] * f[None, None, :]
    out = np.zeros((len(images8), 28, 28))
    out[:, 4:24, 4:24] = big / 16.0 * 255.0
    return out.astype(np.float32)


def rate_coded(image: np.ndarray, *, t_window_ms: int = 100, seed: int = 0) -> np.ndarray:
    """sinabs ``examples/mnist``'s coding: per 1 ms step a pixel fires with probability grey / 255
    (one channel, p = 0), time-ordered x/y/t/p."""
    rng = np.random.default_rng(seed)
    fire = rng.random((t_window_ms, *image.shape)) < np.asarray(image) / 255.0
    t, y, x = np.nonzero(fire)
    return _xytp(x, y, t * 1000, np.zeros(len(t)))
