"""Every backend passes the same contract (speckstream.testing.backends.check_backend)."""
import pytest

from speckstream.runtime import SamnaBackend, SimBackend
from speckstream.testing import samna_standin
from speckstream.testing.backends import check_backend

pytestmark = pytest.mark.anyio  # every async test on trio and asyncio (tests/conftest.py)


async def test_the_simulator_backend_meets_the_contract():
    await check_backend(lambda: SimBackend(clock="virtual"), vanish=lambda b: b.vanish())


async def test_the_samna_backend_over_the_stand_in_meets_the_contract():
    samna = samna_standin.make_module()

    def make():
        b = SamnaBackend("speck2fmodule:0", samna=samna)
        b.apply_settle_s = 0
        return b

    def vanish(b):
        b.handle.chip.gone = True

    await check_backend(make, vanish=vanish)
