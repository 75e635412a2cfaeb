"""Every example runs on the simulator in seconds and produces what it promises."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_leak_example(tmp_path):
    t, v = load("leak").main(tmp_path)
    assert v[:4].tolist() == [127, 127, 114, 114] and v[-1] == -127
    assert (tmp_path / "leak.png").stat().st_size > 1000


def test_residual_example(tmp_path):
    counts = load("residual_nmnist").main(tmp_path, samples=2)
    assert counts.shape == (2, 10) and counts.sum() > 0 and (tmp_path / "raster.png").exists()


def test_closed_loop_example(tmp_path):
    cart, res = load("closed_loop").main(tmp_path, iterations=300)
    assert abs(cart.x - cart.target) < 0.1  # the controller brought the cart to its target
    assert res.latency_us.n + res.timeouts == 300 and res.latency_us.p99 < 5000
    assert (tmp_path / "latency.png").exists()


def test_replay_example(tmp_path):
    pytest.importorskip("faery")
    res = load("replay_aedat4").main(tmp_path, speed=8.0)
    assert res.events_in == 20_000 and res.events_out > 0 and (tmp_path / "outputs.spk").exists()


def test_vmem_heatmap_example(tmp_path):
    paths = load("vmem_heatmap").main(tmp_path, frames=4)
    assert len(paths) == 4 and all(p.exists() for p in paths)
