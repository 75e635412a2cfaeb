"""Plots people would rather look at, saved to files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['spike_raster', 'vmem_trace', 'vmem_heatmap', 'latency_histogram']


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'speckstream[plots]'") from None
    return plt


def spike_raster(spikes: np.ndarray, path, *, title: str = "output spikes") -> Path:
    """Raster: time (s) vs neuron (core, channel), one dot per spike."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ids = spikes["core"].astype(np.int64) * 1024 + spikes["c"]
    uniq, row = np.unique(ids, return_inverse=True)
    ax.scatter(spikes["t"] / 1e6, row, s=1, marker="|")
    ax.set_yticks(range(len(uniq)))
    ax.set_yticklabels([f"{u // 1024}:{u % 1024}" for u in uniq], fontsize=6)
    ax.set(xlabel="time (s)", ylabel="core:channel", title=title)
    return _save(fig, path)


def vmem_trace(t_us, vmem, path, *, title: str = "membrane potential", floor: int | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.step(np.asarray(t_us) / 1e6, vmem, where="post")
    if floor is not None:
        ax.axhline(floor, ls="--", c="gray", label=f"threshold_low {floor}")
        ax.legend()
    ax.set(xlabel="time (s)", ylabel="vmem (chip units)", title=title)
    return _save(fig, path)


def vmem_heatmap(image: np.ndarray, path, *, title: str = "vmem", vmin=None, vmax=None) -> Path:
    """One [C, H, W] frame as a grid of channel heatmaps."""
    plt = _plt()
    C = image.shape[0]
    cols = min(C, 4)
    rows = (C + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k < C:
            ax.imshow(image[k], cmap="coolwarm", vmin=vmin, vmax=vmax)
            ax.set_title(f"c{k}", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def latency_histogram(latency_us, path, *, title: str = "closed-loop round trip") -> Path:
    plt = _plt()
    lat = np.asarray(latency_us)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=50)
    for p in (50, 99):
        ax.axvline(np.percentile(lat, p), ls="--", c="k")
        ax.text(np.percentile(lat, p), ax.get_ylim()[1] * 0.9, f" p{p}", fontsize=8)
    ax.set(xlabel="latency (µs)", ylabel="count", title=title)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
