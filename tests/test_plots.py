"""Plots an expert can read: a colorbar with units, a scale from the data, every latency sample counted."""
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
