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
