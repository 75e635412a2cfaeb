"""Factories the CLI tests load by MODULE:FACTORY."""
from speckstream.testing import models


def small():
    return models.seq4()


def too_big():
    return models.nine_layer()


not_a_model = 42


def sinabs_converted():
    """A sinabs from_model-style network: min_v_mem = -1 x threshold on every layer (one floor note)."""
    from speckstream.digits import digits_net

    return digits_net(min_v_mem=-1.0)


def digits_sinabs_default():
    """The digits ANN converted as sinabs.from_model converts it (threshold 1, floor -1, no normalisation)."""
    from speckstream.digits import RAW_WEIGHTS, digits_net

    return digits_net(RAW_WEIGHTS, min_v_mem=-1.0)


def digits_small():
    """48 held-out digits as (events, label) pairs."""
    from speckstream.digits import digits_dataset, load_digits_split

    _, _, xte, yte = load_digits_split()
    return digits_dataset(xte[:48], yte[:48], seed=11)


def dvs_pooled():
    """A camera network whose first layer pools 4 x 4: compiled with --dvs, the chip's DVS stage does the pooling
    and its first core takes 32 x 32."""
    import torch
    import torch.nn as nn
    from sinabs.layers import IAFSqueeze, SumPool2d

    torch.manual_seed(0)
    return nn.Sequential(SumPool2d(4), nn.Conv2d(2, 4, 3, padding=1, bias=False),
                         IAFSqueeze(batch_size=1, min_v_mem=-1.0))
