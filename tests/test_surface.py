"""The public surface and the linters: every public module declares __all__ (and it names real things), and
ruff (configured in pyproject.toml) finds nothing."""
from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import speckstream

ROOT = Path(__file__).resolve().parent.parent
NEEDS_TORCH = {"speckstream.compiler.build", "speckstream.compiler.graph", "speckstream.compiler.grouping",
               "speckstream.compiler.layers", "speckstream.compiler.nir_import", "speckstream.testing.models",
               "speckstream.testing.sinabs_reference"}


def public_modules():
    for pkg in ("speckstream", "speckstream.codec", "speckstream.compiler", "speckstream.runtime",
                "speckstream.runtime.backends", "speckstream.sim", "speckstream.testing"):
        mod = importlib.import_module(pkg)
        yield pkg
        for info in pkgutil.iter_modules(mod.__path__):
            if not info.name.startswith("_") and not info.ispkg:
                yield f"{pkg}.{info.name}"


@pytest.mark.parametrize("name", sorted(set(public_modules())))
def test_every_public_module_has_all(name):
    mod = importlib.import_module(name)
    assert hasattr(mod, "__all__"), f"{name} has no __all__"
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.__all__ names {attr!r}, which it does not have"


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extra, which CI installs)")
    r = subprocess.run([ruff, "check", "--output-format", "concise", "speckstream", "codec", "compiler", "runtime", "sim",
                        "tests", "bench", "examples"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean():
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it is in the dev extra, which CI installs)")
    files = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "speckstream").glob("*.py"))]
    # --check-untyped-defs: the bodies of functions without annotations are checked too
    r = subprocess.run([mypy, "--check-untyped-defs", *files, "codec", "compiler", "runtime", "sim",
                        "speckstream/testing"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr


def test_the_error_root_catches_every_stage():
    from speckstream.codec.errors import CodecError
    from speckstream.compiler.errors import CompileError, ConfigValidationError
    from speckstream.runtime.errors import DeviceClosed, DeviceDisconnected, DeviceError

    for cls, builtin in ((CompileError, ValueError), (ConfigValidationError, ValueError), (CodecError, ValueError),
                         (DeviceError, RuntimeError), (DeviceClosed, RuntimeError), (DeviceDisconnected, RuntimeError)):
        assert issubclass(cls, speckstream.SpeckstreamError) and issubclass(cls, builtin)
    assert not issubclass(DeviceClosed, DeviceDisconnected)
