"""Plots an expert can read: a colorbar with units, a scale from the data, every latency sample counted."""
import pathlib

import numpy as np
import pytest

plots = pytest.importorskip("speckstream.plots")
pytest.importorskip("matplotlib")


def test_vmem_heatmap_has_a_labelled_colorbar_and_a_symmetric_scale_from_the_data(tmp_path):
    img = np.zeros((3, 4, 5), np.int16)
    img[1, 2, 3], img[2, 0, 0] = 250, -40
    fig = plots.heatmap_figure(img, title="core 0", threshold=100)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 3 and all(im.get_clim() == (-250.0, 250.0) for im in images)
    cbar_ax = [ax for ax in fig.axes if "vmem (chip units" in ax.get_ylabel()]
    assert len(cbar_ax) == 1  # one shared colorbar, with units
    assert "min -40, max 250" in fig._suptitle.get_text() and "3x4x5" in fig._suptitle.get_text()
    assert plots.vmem_heatmap(img, tmp_path / "v.png", vmin=-10, vmax=10).stat().st_size > 1000
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        plots.heatmap_figure(np.zeros((4, 5)))


def test_latency_histogram_counts_every_sample(tmp_path, monkeypatch):
    import matplotlib.axes

    seen = {}
    real = matplotlib.axes.Axes.hist

    def spy(self, x, *a, **kw):
        seen["n"] = len(x)
        return real(self, x, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "hist", spy)
    lat = np.random.default_rng(0).gamma(2.0, 60.0, 5000)
    assert plots.latency_histogram(lat, tmp_path / "lat.png").stat().st_size > 1000
    assert seen["n"] == 5000
    assert plots.latency_histogram([], tmp_path / "none.png").exists()  # no samples: says so, no crash


# ------------------------------------------------------------------ figures an expert can read
def _texts_overlap(fig, texts) -> bool:
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in texts if t.get_text().strip()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_latency_marker_labels_never_overlap_even_when_p99_is_next_to_max(tmp_path, monkeypatch):
    import matplotlib.figure

    figs = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self) or real(self, *a, **k))
    lat = np.random.default_rng(1).gamma(2.0, 60.0, 2000)
    lat[-1] = np.percentile(lat, 99) * 1.01  # max right next to p99
    plots.latency_histogram(lat, tmp_path / "lat.png")
    ax = figs[0].axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert [s.split()[0] for s in labels] == ["p50", "p99", "max"] and all(s.endswith("µs") for s in labels)
    assert not _texts_overlap(figs[0], _all_texts(ax))


def _all_texts(ax) -> list:
    """Every label a reader reads on an axes: title, axis labels, tick labels, legend entries, free text."""
    legend = ax.get_legend()
    return [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels(), *ax.texts,
            *(legend.get_texts() if legend else [])]


def test_confusion_side_by_side_with_every_tick_and_the_counts_in_the_cells():
    labels = np.repeat(np.arange(10), 5)
    chip = labels.copy()
    chip[:3] = [1, 2, -1]  # two mistakes and one sample with no output
    flt = labels.copy()
    flt[7] = 3
    fig = plots.confusion_figure({"float SNN": plots.confusion(labels, flt, 10),
                                  "chip": plots.confusion(labels, chip, 10)})
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in panels] == ["float SNN", "chip"]
    assert "accuracy 0.980" in panels[0].get_title() and "accuracy 0.940" in panels[1].get_title()
    for ax, n_cols in zip(panels, (10, 11)):
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == [str(k) for k in range(10)] + ["none"] * (n_cols - 10)
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(k) for k in range(10)]
        assert sum(int(t.get_text()) for t in ax.texts) == 50  # every sample counted in a cell
    shared = {im.get_clim() for ax in panels for im in ax.get_images()}
    assert len(shared) == 1  # one colour scale for both


def test_a_raster_of_an_output_core_is_labelled_by_class_with_integer_rows(tmp_path, monkeypatch):
    import matplotlib.figure

    figs = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self) or real(self, *a, **k))
    from speckstream import codec

    sp = codec.spikes(t=[0, 1000, 2000, 9000], core=2, c=[0, 3, 3, 9], x=0, y=0)
    plots.spike_raster(sp, tmp_path / "r.png", class_names=[f"digit {k}" for k in range(10)])
    ax = figs[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["digit 0", "digit 3", "digit 9"]
    assert ax.get_xlabel() == "time (ms)" and max(ax.get_xlim()) >= 9


def test_the_demo_figures(tmp_path, monkeypatch):
    pytest.importorskip("sinabs")
    import matplotlib.figure

    from speckstream import demo

    figs = {}
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda self, path, *a, **k: figs.__setitem__(pathlib.Path(path).name, self) or real(self, path, *a, **k))
    demo.digits_report(show=lambda *a: None, out_dir=tmp_path, n_test=30, executor="serial")
    conf = [ax for ax in figs["confusion.png"].axes if ax.get_images() and ax.get_title()]
    assert len(conf) == 2 and "float SNN" in conf[0].get_title() and "chip" in conf[1].get_title()
    raster = figs["raster.png"].axes
    out = raster[-1]
    assert [t.get_text() for t in out.get_yticklabels()] == [str(k) for k in range(10)] and "class" in out.get_ylabel()
    for ax in raster[:-1]:  # neuron / pixel indices: whole numbers only
        ax.figure.canvas.draw()
        assert all(float(t.get_text().replace("−", "-") or 0).is_integer() for t in ax.get_yticklabels())
    vm = figs["vmem.png"]
    panels = [ax for ax in vm.axes if ax.get_images() and ax.get_title().startswith("channel")]
    assert len(panels) == 16  # one panel per channel of the first core
    cbar = [ax for ax in vm.axes if "vmem (chip units" in ax.get_ylabel()][0]
    thr = int(cbar.get_ylabel().split("threshold ")[1])
    lo, hi = panels[0].get_images()[0].get_clim()
    assert lo <= thr <= hi  # the threshold is on the scale
