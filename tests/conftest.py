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
