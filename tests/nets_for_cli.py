"""Factories the CLI tests load by MODULE:FACTORY."""
from speckstream.testing import models


def small():
    return models.seq4()


def too_big():
    return models.nine_layer()


not_a_model = 42
