"""Plots people would rather look at, saved to files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['spike_raster', 'vmem_trace', 'vmem_heatmap', 'heatmap_figure', 'latency_histogram']


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


def vmem_heatmap(image: np.ndarray, path, *, title: str = "vmem", vmin=None, vmax=None,
                 threshold: int | None = None) -> Path:
    """One [C, H, W] frame as a grid of channel heatmaps with one shared colorbar (vmem in chip units).

    The scale comes from the data - symmetric around 0 over all channels (pass the same ``vmin``/``vmax``
    for every frame of an animation) - and ``threshold`` marks where neurons fire on the colorbar."""
    return _save(heatmap_figure(image, title=title, vmin=vmin, vmax=vmax, threshold=threshold), path)


def heatmap_figure(image: np.ndarray, *, title: str = "vmem", vmin=None, vmax=None, threshold: int | None = None):
    """The figure :func:`vmem_heatmap` saves (for notebooks: display it instead)."""
    plt = _plt()
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"a vmem frame is [C, H, W]; got shape {image.shape}")
    if vmin is None or vmax is None:
        lim = float(max(np.abs(image).max(initial=0), abs(threshold or 0), 1))
        vmin, vmax = (-lim if vmin is None else vmin), (lim if vmax is None else vmax)
    C, H, W = image.shape
    cols = min(C, 4)
    rows = (C + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols + 1.2, 2.2 * rows + 0.4), squeeze=False,
                             layout="constrained")
    im = None
    for k, ax in enumerate(axes.ravel()):
        if k >= C:
            ax.axis("off")
            continue
        im = ax.imshow(image[k], cmap="RdBu_r", vmin=vmin, vmax=vmax, origin="upper")
        ax.set_title(f"channel {k}", fontsize=8)
        ax.tick_params(labelsize=6)
        if k % cols == 0:
            ax.set_ylabel("y (pixel)", fontsize=7)
        if k // cols == rows - 1:
            ax.set_xlabel("x (pixel)", fontsize=7)
    cbar = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9)
    cbar.set_label("vmem (chip units, int16)")
    if threshold is not None and vmin <= threshold <= vmax:
        cbar.ax.axhline(threshold, c="k", lw=1.5)
        cbar.ax.text(1.6, threshold, f"threshold {threshold}", transform=cbar.ax.get_yaxis_transform(),
                     fontsize=7, va="center")
    fig.suptitle(f"{title}  [{C}x{H}x{W}; min {int(image.min())}, max {int(image.max())}]", fontsize=9)
    return fig


def latency_histogram(latency_us, path, *, title: str = "closed-loop round trip") -> Path:
    """Histogram of every latency sample (µs), with p50 / p99 / max marked and the sample count in the title."""
    plt = _plt()
    lat = np.asarray(latency_us, dtype=np.float64)
    lat = lat[np.isfinite(lat)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if len(lat) == 0:
        ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.hist(lat, bins=min(80, max(10, len(lat) // 20)))
        for name, v in (("p50", np.percentile(lat, 50)), ("p99", np.percentile(lat, 99)), ("max", lat.max())):
            ax.axvline(v, ls="--", c="k", lw=0.8)
            ax.text(v, 0.92, f" {name} {v:,.0f}", fontsize=7, transform=ax.get_xaxis_transform())
    ax.set(xlabel="latency (µs)", ylabel="samples", title=f"{title} (n = {len(lat):,})")
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not fig.get_layout_engine():  # figures with a colorbar lay themselves out
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
