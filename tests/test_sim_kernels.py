"""The engine's inner loops (sim/_row_kernel.h: avx512, avx2, portable) against the update rule written out in
numpy int64 - every lane, every overflow corner, every tail length - and against each other.

The int16 vector paths are exact only by an argument about overflow (see the header); these tests are that
argument's check: sums past +32767 and below -32768, subtract-reset that saturates, thresholds at their
extremes, rows whose length is not a multiple of the vector width.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speckstream.sim import KERNELS

pytestmark = pytest.mark.skipif(not KERNELS, reason="the Cython engine is not built")

if KERNELS:
    from speckstream.sim._ccore import row_update


def rule(v, w, thr_lo, thr_hi, rtz):
    """The chip's per-neuron update, one line per step (docs/chip-notes.md): returns new vmem, fired, clamps, saturations."""
    x = v.astype(np.int64) + w
    lo = x < thr_lo
    x = np.where(lo, thr_lo, x)
    fired = x >= thr_hi
    x = np.where(fired, 0 if rtz else x - thr_hi, x)
    sat = x > 32767
    x = np.where(sat, 32767, x)
    return x.astype(np.int16), fired, int(lo.sum()), int(sat.sum())


def check(kernel, v, w, thr_lo, thr_hi, rtz, pixel=0):
    want_v, want_f, want_lo, want_sat = rule(v, w, thr_lo, thr_hi, rtz)
    got_v = v.copy()
    lanes, got_lo, got_sat = row_update(got_v, w, thr_lo, thr_hi, rtz, isa=kernel, pixel=pixel)
    got_f = np.zeros(len(v), bool)
    got_f[lanes] = True
    bad = np.flatnonzero((got_v != want_v) | (got_f != want_f))
    assert bad.size == 0, (f"{kernel}: lane {bad[0]} v={v[bad[0]]} w={w[bad[0]]} thr=({thr_lo}, {thr_hi}) "
                           f"rtz={rtz}: got {got_v[bad[0]]}/{got_f[bad[0]]}, want {want_v[bad[0]]}/{want_f[bad[0]]}")
    # collected pixel by pixel, channel ascending: the fired lanes in ascending order, each once
    assert np.array_equal(lanes, np.flatnonzero(want_f))
    assert (got_lo, got_sat) == (want_lo, want_sat)


EDGES = [-32768, -32767, -32700, -329, -328, -327, -1, 0, 1, 126, 127, 128, 327, 328, 32640, 32641, 32700,
         32766, 32767]

vmem_values = st.one_of(st.sampled_from(EDGES), st.integers(-32768, 32767))


@st.composite
def rows(draw):
    n = draw(st.integers(1, 130))  # every tail length of the 16- and 32-lane blocks, and several blocks
    v = np.array(draw(st.lists(vmem_values, min_size=n, max_size=n)), np.int16)
    w = np.array(draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n)), np.int8)
    thr_hi = draw(st.one_of(st.sampled_from([1, 2, 127, 128, 328, 32640, 32766, 32767]), st.integers(1, 32767)))
    thr_lo = draw(st.one_of(st.sampled_from([-32768, -32767, -328, -1, thr_hi - 1]),
                            st.integers(-32768, thr_hi - 1)))
    # read back as pixels of C_out channels: C_out = 10, 16, 32 ... puts pixel edges inside and across words
    return v, w, thr_lo, thr_hi, draw(st.booleans()), draw(st.sampled_from([0, 1, 3, 10, 16, 17, 32, 48]))


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=400, deadline=None)
@given(row=rows())
def test_kernel_matches_the_rule_lane_for_lane(kernel, row):
    check(kernel, *row)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rtz", [False, True])
@pytest.mark.parametrize("thr", [(-32768, 1), (-32768, 32767), (-1, 1), (-328, 328), (32766, 32767),
                                 (-32767, 127), (0, 128)])
def test_kernel_on_every_weight_at_every_edge(kernel, rtz, thr):
    """Every int8 weight against every edge value of vmem: 256 x 19 lanes in rows of 4864 (whole blocks)."""
    v, w = np.meshgrid(np.array(EDGES, np.int16), np.arange(-128, 128, dtype=np.int8))
    check(kernel, v.ravel().copy(), w.ravel().copy(), *thr, rtz)


@pytest.mark.parametrize("kernel", KERNELS)
def test_thresholds_outside_the_chip_range_take_the_exact_path(kernel):
    """threshold_low >= threshold_high (which validate() refuses) must still follow the rule, not the int16
    shortcut's assumptions."""
    rng = np.random.default_rng(5)
    v = rng.integers(-32768, 32768, 300).astype(np.int16)
    w = rng.integers(-128, 128, 300).astype(np.int8)
    check(kernel, v, w, 50, 10, False)
    check(kernel, v, w, 10, 10, True)


def test_unknown_or_unavailable_kernel_is_refused():
    v, w = np.zeros(4, np.int16), np.zeros(4, np.int8)
    with pytest.raises(ValueError, match="unknown kernel 'sse9'"):
        row_update(v, w, -1, 1, False, isa="sse9")
    from speckstream.sim._ccore import ISAS
    from speckstream.sim._engine import ALL_KERNELS

    assert sorted(ISAS) == sorted(ALL_KERNELS)  # the names SimOptions accepts are the ones the engine has


@pytest.mark.parametrize("opts, match", [(dict(engine="fast"), "engine must be"),
                                         (dict(engine="Cython"), "engine must be"),
                                         (dict(kernel=3), "kernel must be"),
                                         (dict(kernel="AVX2"), "kernel must be")])
def test_bad_engine_or_kernel_names_are_refused_when_the_options_are_made(opts, match):
    """engine="fast" used to run the reference engine without a word (anything not "cython" did)."""
    from speckstream.sim import SimOptions

    with pytest.raises(ValueError, match=match):
        SimOptions(**opts)
