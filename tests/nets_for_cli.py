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
