import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/models.py and tests/fakes


@pytest.fixture(params=["cython", "numpy"], scope="session")
def kernels(request):
    """Both codec implementations (the Cython one is required to be built in CI)."""
    from speckstream.codec import _impl

    if request.param == "numpy":
        return _impl.fallback_kernels
    from speckstream.codec import _ccodec

    return _ccodec
