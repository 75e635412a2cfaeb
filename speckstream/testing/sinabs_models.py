"""Networks trained by others: sinabs 3.1.3's shipped examples, rebuilt as sinabs' own scripts deploy them.

The weights are vendored in the repository under ``tests/data/sinabs`` (Apache-2.0, provenance in its
README); the architectures below are transcribed from the example scripts that load them:

* :func:`gesture_snn` - ``examples/visualizer/gesture_viz.py``: the 9-core DVS-Gesture CNN, input 2x128x128
  (a DVS camera), 11 classes, converted with ``from_model(ann, add_spiking_output=True, batch_size=1)`` and
  deployed with ``dvs_input=True``;
* :func:`mnist_snn` - ``examples/mnist/dynapcnn_network.py``: an MNIST CNN, input 1x28x28, 10 classes (the
  script halves the first layer's weights before converting);
* :data:`SCNN_NIR` - ``docs/tutorials/scnn_mnist.nir``: the N-MNIST spiking CNN of the NIR-to-Speck tutorial,
  input 2x34x34 (``sinabs.from_nir(graph, batch_size=1)`` in that notebook).

Imports torch and sinabs (``sinabs.from_torch`` only; samna is never imported).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn

__all__ = ["data_dir", "weights_path", "SCNN_NIR", "GESTURE_INPUT", "MNIST_INPUT", "NMNIST_INPUT",
           "gesture_ann", "gesture_snn", "mnist_ann", "mnist_snn", "scnn_nir_path"]

GESTURE_INPUT = (2, 128, 128)
MNIST_INPUT = (1, 28, 28)
NMNIST_INPUT = (2, 34, 34)
SCNN_NIR = "scnn_mnist.nir"


def data_dir() -> Path:
    """Where the vendored sinabs files are: ``$SPECKSTREAM_SINABS_DATA``, else ``tests/data/sinabs`` of the
    source checkout this package runs from."""
    env = os.environ.get("SPECKSTREAM_SINABS_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "sinabs"


def weights_path(name: str) -> Path:
    """A vendored sinabs file by name, with a clear error (and where to get it) when it is missing."""
    path = data_dir() / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: these files ship in speckstream's source repository (tests/data/sinabs), or take "
            "them from sinabs' source distribution (pip download --no-deps --no-binary :all: sinabs==3.1.3) and "
            "point SPECKSTREAM_SINABS_DATA at a folder holding them")
    return path


def scnn_nir_path() -> Path:
    return weights_path(SCNN_NIR)


_M = TypeVar("_M", bound=nn.Module)


def _load(ann: _M, name: str) -> _M:
    state = torch.load(weights_path(name), map_location="cpu", weights_only=True)
    ann.load_state_dict(state, strict=False)  # gesture_viz.py loads with strict=False too (Dropout has no keys)
    return ann.eval()


def gesture_ann() -> nn.Sequential:
    """The DVS-Gesture ANN of sinabs' ``gesture_viz.py`` with its trained weights (ReLU, before conversion)."""
    ann = nn.Sequential(
        nn.Conv2d(2, 16, kernel_size=2, stride=2, bias=False), nn.ReLU(),
        nn.Conv2d(16, 16, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(32, 32, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Dropout2d(0.5),
        nn.Conv2d(64, 256, kernel_size=2, bias=False), nn.ReLU(),
        nn.Dropout2d(0.5),
        nn.Flatten(),
        nn.Linear(256, 128, bias=False), nn.ReLU(),
        nn.Linear(128, 11, bias=False),
    )
    return _load(ann, "dvs_gesture_params.pt")


def mnist_ann(first_layer_scale: float = 0.5) -> nn.Sequential:
    """The MNIST ANN of sinabs' ``examples/mnist`` with its trained weights; ``dynapcnn_network.py`` halves
    the first layer's weights before converting (``first_layer_scale=1`` gives ``specksim_network.py``'s)."""
    ann = nn.Sequential(
        nn.Conv2d(1, 20, 5, 1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(20, 32, 5, 1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(32, 128, 3, 1, bias=False), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(128, 500, bias=False), nn.ReLU(),
        nn.Linear(500, 10, bias=False),
    )
    ann = _load(ann, "mnist_params.pt")
    with torch.no_grad():
        cast(nn.Conv2d, ann[0]).weight.data *= first_layer_scale
    return ann


def _spiking(ann: nn.Module) -> nn.Module:
    from sinabs.from_torch import from_model

    return from_model(ann, add_spiking_output=True, batch_size=1).spiking_model


def gesture_snn() -> nn.Module:
    """``from_model(gesture_ann(), add_spiking_output=True, batch_size=1).spiking_model``, as the script."""
    return _spiking(gesture_ann())


def mnist_snn(first_layer_scale: float = 0.5) -> nn.Module:
    """``from_model(mnist_ann(), add_spiking_output=True, batch_size=1).spiking_model``, as the script."""
    return _spiking(mnist_ann(first_layer_scale))
