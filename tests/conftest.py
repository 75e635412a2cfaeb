import pytest


def _built() -> bool:
    try:
        from speckstream.codec import _ccodec  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(params=[pytest.param("cython", marks=pytest.mark.skipif(not _built(), reason="extension not built")),
                        "numpy"], scope="session")
def kernels(request):
    """Both codec implementations (CI builds the Cython one)."""
    from speckstream.codec import _impl

    if request.param == "numpy":
        return _impl.fallback_kernels
    from speckstream.codec import _ccodec

    return _ccodec


# ------------------------------------------------------------------ async tests: both anyio backends
# Every coroutine test runs on trio (the default backend) and on asyncio; a test that asks for
# ``autojump_clock`` needs trio's MockClock (asyncio has no virtual clock) and runs on trio with a fresh one.
def pytest_generate_tests(metafunc):
    if "anyio_backend" in metafunc.fixturenames:
        params = ["trio+mockclock"] if "autojump_clock" in metafunc.fixturenames else ["trio", "asyncio"]
        metafunc.parametrize("anyio_backend", params, indirect=True)


@pytest.fixture
def anyio_backend(request):
    if request.param == "trio+mockclock":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return request.param


@pytest.fixture
def autojump_clock(anyio_backend):
    """trio's MockClock with autojump: sleeps take no real time."""
    return anyio_backend[1]["clock"]
