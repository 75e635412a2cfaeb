"""The demo network and event stream used by ``python -m speckstream demo`` and the examples."""
from __future__ import annotations

import numpy as np

from .codec import events as ev

__all__ = ['residual_net', 'nmnist_like', 'classify_samples', 'float_snn_predictions', 'digits_report']


def residual_net(n_classes: int = 10):
    """An N-MNIST-sized non-sequential SNN: conv -> (conv, conv) + skip -> Merge -> pool -> conv -> linear."""
    import torch
    from torch import nn

    try:
        import sinabs.layers as sl
    except ImportError:
        raise ImportError("the demo network uses sinabs layers: pip install --no-deps sinabs==3.1.3 "
                          "(see README: sinabs' samna dependency must not be installed)") from None

    def iaf():
        return sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=-1.0)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(7)
            self.conv1 = nn.Conv2d(2, 8, 3, stride=2, padding=1, bias=False)
            self.iaf1 = iaf()
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.iaf2 = iaf()
            self.conv3 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
            self.iaf3 = iaf()
            self.merge = sl.Merge()
            self.pool = sl.SumPool2d(2)
            self.conv4 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
            self.iaf4 = iaf()
            self.flat = nn.Flatten()
            self.fc = nn.Linear(16 * 8 * 8, n_classes, bias=False)
            self.iaf5 = iaf()
            with torch.no_grad():
                for m in (self.conv1, self.conv2, self.conv3, self.conv4, self.fc):
                    # zero-mean weights, slightly excitatory: sparse activity like a trained network
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.25 + 0.03)

        def forward(self, x):
            a = self.iaf1(self.conv1(x))
            b = self.iaf3(self.conv3(self.iaf2(self.conv2(a))))
            m = self.pool(self.merge(a, b))
            return self.iaf5(self.fc(self.flat(self.iaf4(self.conv4(m)))))

    return Residual()


def nmnist_like(n_samples: int = 10, events_per_sample: int = 3000, size: int = 34, duration_us: int = 300_000,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic N-MNIST-like stream: per sample, a digit-sized blob of class-dependent shape swept by three
    saccades. Returns (spikes, sample start times in µs)."""
    rng = np.random.default_rng(seed)
    parts, starts = [], []
    for s in range(n_samples):
        label = s % 10
        t0 = s * duration_us
        starts.append(t0)
        t = np.sort(rng.integers(0, duration_us, events_per_sample))
        phase = (t * 3 // duration_us) % 3
        ang = rng.random(events_per_sample) * 2 * np.pi
        r = 6 + 4 * np.sin(ang * (1 + label % 4))
        x = 17 + r * np.cos(ang) + np.where(phase == 0, t % 100_000 / 25_000, 0)
        y = 17 + r * np.sin(ang) + np.where(phase == 1, t % 100_000 / 25_000, 0)
        x = np.clip(x.astype(int), 0, size - 1)
        y = np.clip(y.astype(int), 0, size - 1)
        p = (rng.random(events_per_sample) < 0.5).astype(int)
        parts.append(ev.spikes(t=t + t0, core=0, c=p, x=x, y=y))
    return np.concatenate(parts), np.array(starts)


async def classify_samples(dev, spikes: np.ndarray, starts, out_core: int, n_classes: int,
                           duration_us: int = 300_000, keep_first: list | None = None):
    """Replay each sample (state and stopwatch reset between samples, timestamps kept: as fast as the CPU
    allows on a virtual-clock device, in real time on a wall-clock one) and count the output core's spikes per
    class. Returns (counts [samples, classes], list of ReplayResult).
    ``keep_first``: a list that receives the first sample's output spike arrays."""
    counts = np.zeros((len(starts), n_classes), int)
    results = []
    for i, t0 in enumerate(starts):
        sample = spikes[(spikes["t"] >= t0) & (spikes["t"] < t0 + duration_us)].copy()
        sample["t"] -= np.uint64(t0)
        await dev.reset_state()
        await dev.reset_time()
        sub = dev.subscribe("spike", cores=[out_core], max_batches=1 << 14)
        results.append(await dev.replay(sample, speed=None))
        sub.close()  # no more batches; those queued are still read below
        async for arr in sub:
            np.add.at(counts[i], arr["c"].astype(int), 1)
            if i == 0 and keep_first is not None:
                keep_first.append(arr)
    return counts, results


# ------------------------------------------------------------------------------------------ the digits demo
def float_snn_predictions(model, dataset) -> np.ndarray:
    """The float SNN as sinabs runs it: time-stepped in 1 ms bins, batch 1, state reset per sample; the
    class with the most output spikes (-1 when none)."""
    import torch

    from .digits import to_frames

    preds = []
    with torch.no_grad():
        for events, _ in dataset:
            for m in model.modules():
                if hasattr(m, "reset_states"):
                    m.reset_states()
            counts = model(torch.from_numpy(to_frames(events))).sum(0).numpy()
            preds.append(int(counts.argmax()) if counts.max() > 0 else -1)
    return np.asarray(preds)


def digits_report(show=print, out_dir=None, n_test: int | None = None, executor=None) -> dict:
    """Compile the trained digits network, classify the held-out digits on the simulated chip and in sinabs
    (float, time-stepped), and report both side by side. Returns the figures; saves plots to ``out_dir``."""
    import time
    import warnings

    import speckstream as ss

    from .compiler.errors import CompileWarning
    from .digits import digits_dataset, digits_net, load_digits_split

    _, _, xte, yte = load_digits_split()
    if n_test is not None:
        xte, yte = xte[:n_test], yte[:n_test]
    test = digits_dataset(xte, yte, seed=100_000)
    model = digits_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        cfg = ss.compile(model, input_shape=(1, 8, 8))
    show(cfg.summary())
    t0 = time.perf_counter()
    float_pred = float_snn_predictions(digits_net(), test)
    t_float = time.perf_counter() - t0
    res = ss.evaluate(cfg, test, executor=executor, progress=False, activity=True)
    labels = np.asarray(yte)
    float_acc = float(np.mean(float_pred == labels))
    agree = float(np.mean(float_pred == res.predictions))
    n_events = sum(len(e) for e, _ in test)
    figures = {"samples": len(labels), "float_snn_accuracy": float_acc, "chip_accuracy": res.accuracy,
               "agreement": agree, "input_events": n_events, "chip_events_per_s": res.events_per_s,
               "float_snn_events_per_s": n_events / t_float, "confusion": res.confusion(10)}
    show(f"\nheld-out digits: {len(labels)} (scikit-learn load_digits, Poisson 250 Hz, 100 ms, "
         f"{n_events / len(labels):.0f} events per digit)")
    show(f"float SNN (sinabs, 1 ms steps)  accuracy {float_acc:.4f}   ({figures['float_snn_events_per_s']:,.0f} "
         "input events/s)")
    show(f"chip (simulated, event-driven)  accuracy {res.accuracy:.4f}   ({res.events_per_s:,.0f} input events/s)")
    show(f"prediction agreement            {agree:.4f}")
    show("\nper class   n   float   chip")
    for k in range(10):
        sel = labels == k
        if sel.any():  # a small --samples may leave a class out
            show(f"    {k}     {sel.sum():3d}   {np.mean(float_pred[sel] == k):.3f}   "
                 f"{np.mean(res.predictions[sel] == k):.3f}")
    if res.activity is not None:
        show("\nwhat a digit costs on the chip (exact SynOps per core, ss.profile / evaluate(activity=True)):")
        show(res.activity.table())
        figures["energy_per_digit_uj"] = res.activity.energy_per_inference_uj
    figures.update(_calibration_figures(show, test, labels, executor))
    if out_dir is not None:
        figures["plots"] = _digits_plots(cfg, test, res, float_pred, out_dir)
        show(f"\nplots: {', '.join(str(p) for p in figures['plots'])}")  # type: ignore[attr-defined]
    return figures


def _calibration_figures(show, test, labels, executor, n_calibration: int = 160) -> dict:
    """The same ANN converted as sinabs.from_model converts it by default (no weight normalisation, floor -1),
    on the chip before and after ss.calibrate, which tunes it on training digits (never the test digits)."""
    import time
    import warnings

    import speckstream as ss

    from .compiler.errors import CompileWarning
    from .digits import RAW_WEIGHTS, digits_dataset, digits_net, load_digits_split

    xtr, ytr, _, _ = load_digits_split()
    calib = digits_dataset(xtr[:n_calibration], ytr[:n_calibration], seed=200_000)
    raw = digits_net(RAW_WEIGHTS, min_v_mem=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        before = ss.evaluate(ss.compile(raw, input_shape=(1, 8, 8)), test, executor=executor, progress=False)
    t0 = time.perf_counter()
    cal = ss.calibrate(raw, calib, input_shape=(1, 8, 8), executor=executor, progress=False)
    seconds = time.perf_counter() - t0
    after = ss.evaluate(cal.config, test, executor=executor, progress=False)
    show(f"\nthe same ANN as sinabs.from_model converts it (no normalisation, min_v_mem=-1): chip accuracy "
         f"{before.accuracy:.4f}; after ss.calibrate on {n_calibration} training digits ({seconds:.0f} s, "
         f"{len(cal.report.changes)} options changed): {after.accuracy:.4f} on the same held-out digits")
    return {"sinabs_default_chip_accuracy": before.accuracy, "calibrated_chip_accuracy": after.accuracy,
            "calibration_seconds": seconds}


def _digits_plots(cfg, test, res, float_pred, out_dir) -> list:
    """The demo's figures: float vs chip confusion, one digit's raster through every layer, the first layer's
    vmem after it."""
    from pathlib import Path

    from . import plots
    from .profiling import monitor_all

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(res.labels)
    paths = [plots.confusion_matrices(
        {"float SNN (sinabs)": plots.confusion(labels, float_pred, 10), "chip (simulated)": res.confusion(10)},
        out / "confusion.png", title=f"{len(labels)} held-out digits")]
    mon = monitor_all(cfg)  # every layer's spikes, for the raster
    sim, label = _raster(mon, test[0], out / "raster.png")
    paths.append(out / "raster.png")
    first = mon.layer_order[0]
    v = sim.vmem(first)
    fig = plots.heatmap_figure(v, title=f"core {first} (first layer) vmem after digit {label}",
                               threshold=int(mon.cores[first].threshold_high))
    paths.append(plots._save(fig, out / "vmem.png"))
    return paths


def _raster(mon, sample, path):
    """One sample's input events and every layer's output spikes (real timestamps); the output layer's rows are
    its classes. Returns (the simulator after the sample, the label)."""
    from . import plots
    from .api import to_input
    from .sim import ChipSimulator

    plt = plots._plt()
    events, label = sample
    sim = ChipSimulator(mon)
    _, ev = to_input(mon, events)
    spikes = sim.feed(ev)
    fig, axes = plt.subplots(len(mon.layer_order) + 1, 1, figsize=(7.5, 7), sharex=True,
                             gridspec_kw={"height_ratios": [1] * len(mon.layer_order) + [1.3]})
    axes[0].plot(ev["t"] / 1000, ev["y"].astype(int) * mon.input_shape[2] + ev["x"], "|", ms=3)
    axes[0].set_ylabel("input\npixel")
    for ax, c in zip(axes[1:], mon.layer_order):
        s = spikes[spikes["core"] == c]
        C, H, W = mon.cores[c].output_shape
        if c in mon.output_cores:  # the classes: one row each
            ax.plot(s["t"] / 1000, s["c"], "|", ms=6, c="tab:red")
            ax.set_yticks(range(C), [f"{k}" for k in range(C)], fontsize=8)
            ax.set_ylim(-0.7, C - 0.3)
            ax.set_ylabel(f"core {c}\nclass")
        else:
            ax.plot(s["t"] / 1000, (s["c"].astype(int) * H + s["y"]) * W + s["x"], "|", ms=3)
            ax.set_ylabel(f"core {c}\nneuron")
            plots.integer_ticks(ax)
    plots.integer_ticks(axes[0])
    counts = np.bincount(spikes["c"][spikes["core"] == mon.output_cores[0]].astype(int), minlength=10)
    axes[-1].set_xlabel("time (ms)")
    axes[0].set_title(f"digit {label}: {len(ev)} input events, {len(spikes)} spikes on chip, "
                      f"class {int(counts.argmax())} fires most ({int(counts.max())})")
    plots._save(fig, path)
    return sim, label
