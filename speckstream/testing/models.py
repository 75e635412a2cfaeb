"""Example networks used by the tests, benchmarks and examples (factories, so each call is fresh)."""
from __future__ import annotations

import torch
from torch import nn

import sinabs.layers as sl

__all__ = ['seq4', 'nine_layer', 'ResidualMerge', 'FanOut', 'leak_net', 'SinabsResidual', 'SinabsMergeSplit',
           'SinabsTwoBranches', 'SinabsComplex', 'sinabs_seq_1', 'sinabs_seq_2', 'sinabs_large_net',
           'SINABS_GRAPH_NETS']


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
        conv.bias.fill_(-0.1)  # type: ignore[union-attr]
    iaf = sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=-1.0)
    iaf.v_mem = torch.nn.Parameter(torch.ones(1, 1, 2, 2), requires_grad=False)
    return nn.Sequential(conv, iaf)


# --------------------------------------------------------------------------------------------------------
# The networks of sinabs 3.1.3's own graph tests (tests/test_dynapcnnnetwork/model_dummy_*.py, the variants in
# tests/test_graph_extractor/, and test_large_net.py's DynapCnnNetA), rebuilt here from their architectures so
# that the compiler can be compared with sinabs' own pipeline on them (tests/sinabs_ref.py).
def _siaf(batch=1, min_v_mem=-1.0):
    return sl.IAFSqueeze(batch_size=batch, min_v_mem=min_v_mem, spike_threshold=1.0)


class SinabsResidual(nn.Module):
    """sinabs#181 'a network with residual connections' (two average pools from one layer, one into a Merge)."""

    def __init__(self, batch=3, pools=(2, 2), conv2_k=1, fc1=(225, 200)):
        super().__init__()
        torch.manual_seed(11)
        self.conv1, self.iaf1 = nn.Conv2d(2, 10, 2, 1, bias=False), _siaf(batch)
        self.pool1, self.pool1a = nn.AvgPool2d(pools[0], pools[0]), nn.AvgPool2d(pools[1], pools[1])
        self.conv2, self.iaf2 = nn.Conv2d(10, 10, conv2_k, 1, bias=False), _siaf(batch)
        self.conv3, self.iaf3 = nn.Conv2d(10, 1, 2, 1, bias=False), _siaf(batch)
        self.flat = nn.Flatten()
        self.fc1, self.iaf4 = nn.Linear(fc1[0], fc1[1], bias=False), _siaf(batch)
        self.fc2, self.iaf5 = nn.Linear(fc1[1], 10, bias=False), _siaf(batch)
        self.adder = sl.Merge()

    def forward(self, x):
        a = self.iaf1(self.conv1(x))
        b = self.iaf2(self.conv2(self.pool1(a)))
        c = self.iaf3(self.conv3(self.adder(self.pool1a(a), b)))
        return self.iaf5(self.fc2(self.iaf4(self.fc1(self.flat(c)))))


class SinabsMergeSplit(nn.Module):
    """sinabs#181 'a network with a merge and a split': a Linear fed by Merge(Flatten(D), Flatten(F))."""

    def __init__(self, batch=8):
        super().__init__()
        torch.manual_seed(12)
        c = lambda cin=4: nn.Conv2d(cin, 4, 2, 1, bias=False)  # noqa: E731
        self.conv_A, self.iaf_A = c(2), _siaf(batch)
        self.conv_B, self.iaf2_B, self.pool_B = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_C, self.iaf_C, self.pool_C = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_D, self.iaf_D = c(), _siaf(batch)
        self.conv_E, self.iaf3_E, self.pool_E = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_F, self.iaf_F = c(), _siaf(batch)
        self.fc3, self.iaf3_fc = nn.Linear(144, 10, bias=False), _siaf(batch)
        self.merge1 = sl.Merge()
        self.flat_D, self.flat_F = nn.Flatten(), nn.Flatten()

    def forward(self, x):
        a = self.iaf_A(self.conv_A(x))
        b = self.pool_B(self.iaf2_B(self.conv_B(a)))
        d = self.iaf_D(self.conv_D(self.pool_C(self.iaf_C(self.conv_C(b)))))
        f = self.iaf_F(self.conv_F(self.pool_E(self.iaf3_E(self.conv_E(b)))))
        return self.iaf3_fc(self.fc3(self.merge1(self.flat_D(d), self.flat_F(f))))


class SinabsTwoBranches(nn.Module):
    """sinabs#181 'two networks with merging outputs': two entry layers, flattened branches merged."""

    def __init__(self, batch=2):
        super().__init__()
        torch.manual_seed(13)
        c = lambda cin=4: nn.Conv2d(cin, 4, 2, 1, bias=False)  # noqa: E731
        self.conv_A, self.iaf_A = c(2), _siaf(batch)
        self.conv_B, self.iaf_B, self.pool_B = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_C, self.iaf_C, self.pool_C = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_D, self.iaf_D = c(2), _siaf(batch)
        self.conv_E, self.iaf_E, self.pool_E = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.conv_F, self.iaf_F, self.pool_F = c(), _siaf(batch), sl.SumPool2d(2, 2)
        self.flat_brach1, self.flat_brach2 = nn.Flatten(), nn.Flatten()
        self.merge = sl.Merge()
        self.fc1, self.iaf1_fc = nn.Linear(196, 100, bias=False), _siaf(batch)
        self.fc2, self.iaf2_fc = nn.Linear(100, 100, bias=False), _siaf(batch)
        self.fc3, self.iaf3_fc = nn.Linear(100, 10, bias=False), _siaf(batch)

    def forward(self, x):
        b1 = self.pool_B(self.iaf_B(self.conv_B(self.iaf_A(self.conv_A(x)))))
        b1 = self.pool_C(self.iaf_C(self.conv_C(b1)))
        b2 = self.pool_E(self.iaf_E(self.conv_E(self.iaf_D(self.conv_D(x)))))
        b2 = self.pool_F(self.iaf_F(self.conv_F(b2)))
        m = self.merge(self.flat_brach1(b1), self.flat_brach2(b2))
        return self.iaf3_fc(self.fc3(self.iaf2_fc(self.fc2(self.iaf1_fc(self.fc1(m))))))


class SinabsComplex(nn.Module):
    """sinabs#181 'a complex network structure': one layer pooled twice to two places, two merges."""

    def __init__(self, batch=2, pools=(2, 2, 2, 2), fc_in=49, pool5=True):
        super().__init__()
        torch.manual_seed(14)
        c = lambda cin=1: nn.Conv2d(cin, 1, 2, 1, bias=False)  # noqa: E731
        self.conv1, self.iaf1 = c(2), _siaf(batch)
        self.conv2, self.iaf2, self.pool2 = c(), _siaf(batch), sl.SumPool2d(pools[0], pools[0])
        self.conv3, self.iaf3 = c(), _siaf(batch)
        self.pool3, self.pool3a = sl.SumPool2d(pools[1], pools[1]), sl.SumPool2d(pools[2], pools[2])
        self.conv4, self.iaf4, self.pool4 = c(), _siaf(batch), sl.SumPool2d(pools[3], pools[3])
        self.flat1, self.flat2 = nn.Flatten(), nn.Flatten()
        self.conv5, self.iaf5 = c(), _siaf(batch)
        self.pool5 = sl.SumPool2d(2, 2) if pool5 else nn.Identity()
        self.fc2, self.iaf2_fc = nn.Linear(fc_in, 10, bias=False), _siaf(batch)
        self.merge1, self.merge2 = sl.Merge(), sl.Merge()

    def forward(self, x):
        a = self.iaf1(self.conv1(x))
        p2 = self.pool2(self.iaf2(self.conv2(a)))
        i3 = self.iaf3(self.conv3(a))
        f1 = self.flat1(self.pool4(self.iaf4(self.conv4(self.merge1(p2, self.pool3(i3))))))
        f2 = self.flat2(self.pool5(self.iaf5(self.conv5(self.pool3a(i3)))))
        return self.iaf2_fc(self.fc2(self.merge2(f2, f1)))


def sinabs_seq_1() -> nn.Module:
    torch.manual_seed(15)
    return nn.Sequential(nn.Conv2d(2, 8, 3, 1, bias=False), sl.IAFSqueeze(batch_size=1),
                         nn.Conv2d(8, 2, 3, 1, bias=False), sl.IAFSqueeze(batch_size=1))


def sinabs_seq_2() -> nn.Module:
    """Sum pool then average pool (chained pooling 4, rescale 1/4), Dropout, Identity, Linear with bias."""
    torch.manual_seed(16)
    return nn.Sequential(
        nn.Conv2d(2, 2, 3, 1, bias=False), sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2), nn.AvgPool2d(2),
        nn.Dropout(0.5), nn.Conv2d(2, 8, 3, 1, bias=False), sl.IAFSqueeze(batch_size=1),
        nn.Conv2d(8, 2, 3, 1, bias=False), sl.IAFSqueeze(batch_size=1), nn.Flatten(), nn.Linear(3 * 3 * 2, 5),
        nn.Identity(), sl.IAFSqueeze(batch_size=1))


def sinabs_large_net() -> nn.Module:
    """test_large_net.py's DynapCnnNetA as sinabs.from_torch converts it (ReLU -> IAFSqueeze, min_v_mem -1)."""
    torch.manual_seed(17)
    i = lambda: sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(2, 16, 2, 2, bias=False), i(), nn.Identity(),
        nn.Conv2d(16, 16, 3, padding=1, bias=False), i(), nn.AvgPool2d(2, 2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), i(), nn.AvgPool2d(2, 2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), i(), nn.AvgPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), i(), nn.AvgPool2d(2, 2),
        nn.Conv2d(64, 64, 3, padding=1, bias=False), i(), nn.AvgPool2d(2, 2),
        nn.Dropout2d(0.5), nn.Conv2d(64, 256, 2, bias=False), i(),
        nn.Dropout2d(0.5), nn.Conv2d(256, 128, 1, bias=False), i(),
        nn.Conv2d(128, 1, 1, bias=False), i(), nn.Flatten())


#: (factory, input shape, compiles on the chip) for every sinabs graph test network
SINABS_GRAPH_NETS = {
    "residual": (lambda: SinabsResidual(), (2, 34, 34), True),
    "merge_split": (lambda: SinabsMergeSplit(), (2, 34, 34), True),
    "two_branches": (lambda: SinabsTwoBranches(), (2, 34, 34), True),
    "complex": (lambda: SinabsComplex(), (2, 34, 34), True),
    "seq_1": (sinabs_seq_1, (2, 30, 30), True),
    "seq_2": (sinabs_seq_2, (2, 30, 30), True),
    "large_net": (sinabs_large_net, (2, 128, 128), True),
    # tests/test_graph_extractor variants: pools of 3, 4 and 5 (the chip pools by 1, 2, 4)
    "ge_residual": (lambda: SinabsResidual(pools=(3, 4), conv2_k=4, fc1=(49, 500)), (2, 34, 34), False),
    "ge_complex": (lambda: SinabsComplex(pools=(2, 2, 5, 3), fc_in=25, pool5=False), (2, 34, 34), False),
}
