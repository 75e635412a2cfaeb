"""Example networks used by the tests, benchmarks and examples (factories, so each call is fresh)."""
from __future__ import annotations

import torch
from torch import nn

import sinabs.layers as sl


def _iaf():
    return sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0)


def seq4() -> nn.Module:
    """4-layer sequential CNN for (2, 34, 34) that fits the chip."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), _iaf(), sl.SumPool2d(2),        # 8x17x17
        nn.Conv2d(8, 16, 3, padding=1, bias=False), _iaf(), sl.SumPool2d(2),       # 16x8x8
        nn.Conv2d(16, 16, 3, padding=1, bias=False), _iaf(), sl.SumPool2d(2),      # 16x4x4
        nn.Flatten(), nn.Linear(256, 10, bias=False), _iaf(),
    )


def nine_layer() -> nn.Module:
    """The 9-layer network the chip cannot hold (3 linear layers fit no core)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 1, 2), sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2),
        nn.Conv2d(1, 8, 2), sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2),
        nn.Conv2d(8, 16, 2), sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2),
        nn.Conv2d(16, 32, 2), sl.IAFSqueeze(batch_size=1),
        nn.Flatten(),
        nn.Linear(128, 1024), sl.IAFSqueeze(batch_size=1),
        nn.Linear(1024, 512), sl.IAFSqueeze(batch_size=1),
        nn.Linear(512, 256), sl.IAFSqueeze(batch_size=1),
        nn.Linear(256, 128), sl.IAFSqueeze(batch_size=1),
        nn.Linear(128, 11), sl.IAFSqueeze(batch_size=1),
    )


class ResidualMerge(nn.Module):
    """conv1 -> [conv2 -> conv3] + skip(conv1) -> Merge -> conv4 -> linear: a residual skip with a Merge."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(2, 8, 3, stride=2, padding=1, bias=False)   # 8x17x17
        self.iaf1 = _iaf()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.iaf2 = _iaf()
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.iaf3 = _iaf()
        self.merge = sl.Merge()
        self.pool = sl.SumPool2d(2)                                          # 8x8x8
        self.conv4 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.iaf4 = _iaf()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16 * 8 * 8, 10, bias=False)
        self.iaf5 = _iaf()

    def forward(self, x):
        a = self.iaf1(self.conv1(x))
        print("harmless python in forward", a.shape)
        b = self.iaf3(self.conv3(self.iaf2(self.conv2(a))))
        m = self.pool(self.merge(a, b))
        return self.iaf5(self.fc(self.flat(self.iaf4(self.conv4(m)))))


class FanOut(nn.Module):
    """One layer feeding two branches with different pooling, merged again."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, bias=False)   # 4x16x16
        self.iaf1 = _iaf()
        self.pool_a = sl.SumPool2d(2)                               # 4x8x8
        self.conv_a = nn.Conv2d(4, 8, 3, padding=1, bias=False)     # 8x8x8
        self.iaf_a = _iaf()
        self.pool_b = sl.SumPool2d(4)                               # 4x4x4
        self.conv_b = nn.Conv2d(4, 8, 1, bias=False)                # 8x4x4
        self.iaf_b = _iaf()
        self.pool_a2 = sl.SumPool2d(2)                              # 8x4x4
        self.merge = sl.Merge()
        self.conv_c = nn.Conv2d(8, 4, 3, padding=1, bias=False)
        self.iaf_c = _iaf()

    def forward(self, x):
        a = self.iaf1(self.conv1(x))
        left = self.pool_a2(self.iaf_a(self.conv_a(self.pool_a(a))))
        right = self.iaf_b(self.conv_b(self.pool_b(a)))
        return self.iaf_c(self.conv_c(self.merge(left, right)))


def leak_net() -> nn.Module:
    """1x1 conv, weight 1.0, bias -0.1, threshold 1.0, min_v_mem -1.0, v_mem 1.0 on (1, 2, 2)."""
    conv = nn.Conv2d(1, 1, 1, bias=True)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-0.1)
    iaf = sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=-1.0)
    iaf.v_mem = torch.nn.Parameter(torch.ones(1, 1, 2, 2), requires_grad=False)
    return nn.Sequential(conv, iaf)
