"""The demo network and event stream used by ``python -m speckstream demo`` and the examples."""
from __future__ import annotations

import numpy as np

from .codec import events as ev


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
    """Replay each sample (state and stopwatch reset between samples) as fast as possible and count the
    output core's spikes per class. Returns (counts [samples, classes], list of ReplayResult).
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
        dev.unsubscribe(sub)
        async for _, arr in sub.receive:
            np.add.at(counts[i], arr["c"].astype(int), 1)
            if i == 0 and keep_first is not None:
                keep_first.append(arr)
    return counts, results
