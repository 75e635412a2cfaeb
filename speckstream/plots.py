"""Plots people would rather look at, saved to files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ['spike_raster', 'vmem_trace', 'vmem_heatmap', 'heatmap_figure', 'latency_histogram', 'confusion',
           'confusion_figure', 'confusion_matrices', 'integer_ticks']


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'speckstream[plots]'") from None
    return plt


def integer_ticks(ax, axis: str = "y") -> None:
    """Ticks on whole numbers only (neuron indices, counts): no 2.5 on an axis of neurons."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(nbins=6, integer=True))


def spike_raster(spikes: np.ndarray, path, *, title: str = "output spikes", class_names=None) -> Path:
    """Raster: time (ms) vs neuron (core, channel), one tick per spike; one row per channel that spiked.

    ``class_names`` (sequence, indexed by channel): label the rows by class instead of ``core:channel`` - for
    an output core whose channels are classes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ids = spikes["core"].astype(np.int64) * 1024 + spikes["c"]
    uniq, row = np.unique(ids, return_inverse=True)
    ax.scatter(spikes["t"] / 1e3, row, s=30, marker="|", lw=1)
    ax.set_yticks(range(len(uniq)))
    if class_names is not None:
        labels = [str(class_names[u % 1024]) if u % 1024 < len(class_names) else f"channel {u % 1024}" for u in uniq]
        ylabel = "class"
    else:
        labels, ylabel = [f"{u // 1024}:{u % 1024}" for u in uniq], "core:channel"
    ax.set_yticklabels(labels, fontsize=7 if len(uniq) > 20 else 9)
    ax.set_ylim(-0.7, max(len(uniq), 1) - 0.3)
    ax.set(xlabel="time (ms)", ylabel=ylabel, title=title)
    return _save(fig, path)


def confusion(labels, predictions, n_classes: int) -> np.ndarray:
    """[true, predicted] counts; a last "no output" column when any prediction is -1 (nothing fired)."""
    labels, predictions = np.asarray(labels, int), np.asarray(predictions, int)
    none = bool(np.any(predictions < 0))
    m = np.zeros((n_classes, n_classes + none), np.int64)
    np.add.at(m, (labels, np.where(predictions < 0, n_classes, predictions)), 1)
    return m


def confusion_figure(matrices: dict, *, class_names=None, title: str | None = None):
    """Confusion matrices side by side (e.g. ``{"float SNN": m1, "chip": m2}``), one shared colour scale, every
    class ticked, the count written in every non-empty cell, accuracy in each panel's title. A matrix with one
    column more than rows has a "none" column (samples with no output at all)."""
    plt = _plt()
    mats = {k: np.asarray(v) for k, v in matrices.items()}
    n = next(iter(mats.values())).shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(n))]
    vmax = max(int(m.max(initial=0)) for m in mats.values()) or 1
    fig, axes = plt.subplots(1, len(mats), figsize=(4.6 * len(mats) + 0.8, 4.6), squeeze=False,
                             layout="constrained")
    im = None
    for ax, (label, m) in zip(axes[0], mats.items()):
        im = ax.imshow(m, cmap="Blues", vmin=0, vmax=vmax)
        cols = names + ["none"] * (m.shape[1] - n)
        ax.set_xticks(range(m.shape[1]), cols)
        ax.set_yticks(range(n), names)
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 * vmax else "black")
        acc = np.trace(m[:, :n]) / max(m.sum(), 1)
        ax.set(xlabel="predicted", ylabel="true class", title=f"{label}: accuracy {acc:.3f} (n = {m.sum()})")
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="samples")
    if title:
        fig.suptitle(title)
    return fig


def confusion_matrices(matrices: dict, path, *, class_names=None, title: str | None = None) -> Path:
    """Save :func:`confusion_figure`."""
    return _save(confusion_figure(matrices, class_names=class_names, title=title), path)


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
    label = "vmem (chip units, int16)"
    if threshold is not None and vmin <= threshold <= vmax:
        cbar.ax.axhline(threshold, c="k", lw=1.5)
        label += f"\nblack line: threshold {threshold}"  # in the label: a text beside the bar would hit it
    cbar.set_label(label)
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
        ax.hist(lat, bins=min(80, max(10, len(lat) // 20)), color="tab:blue")
        # the markers are named in a legend, never beside their lines: close values (p99 near max) cannot overlap
        for (name, v), (style, colour) in zip((("p50", np.percentile(lat, 50)), ("p99", np.percentile(lat, 99)),
                                               ("max", lat.max())),
                                              (("--", "k"), ("-.", "tab:red"), (":", "tab:purple"))):
            ax.axvline(v, ls=style, c=colour, lw=1.2, label=f"{name} {v:,.0f} µs")
        ax.legend(loc="upper right", fontsize=8, frameon=True)
        integer_ticks(ax)
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
