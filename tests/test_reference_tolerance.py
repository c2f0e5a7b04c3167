"""The bounds of ``tests/reference_tolerance.py`` on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.reference_tolerance import (
    EMBEDDING_TOL,
    SPECTRUM_K,
    db_spectrum_excess,
    db_to_power,
    scale_excess,
    spectrum_excess,
)


def test_db_to_power() -> None:
    np.testing.assert_allclose(db_to_power(np.array([10.0, 0.0, -30.0], np.float32)), [10.0, 1.0, 1e-3], rtol=1e-6)


def test_spectrum_bound_grows_as_the_band_gets_quieter() -> None:
    # P_max = 100: the band at 100 may move by k * 100, the band at 1 by k * sqrt(1 * 100) = 10 k
    ref = np.array([[100.0, 1.0]])
    assert spectrum_excess(ref + [[0.0, 5 * SPECTRUM_K]], ref) == pytest.approx(0.5)
    assert spectrum_excess(ref + [[2 * SPECTRUM_K * 100, 0.0]], ref) == pytest.approx(2.0)
    assert spectrum_excess(ref, ref) == 0.0
    assert spectrum_excess(ref[:, :1], ref) == math.inf  # a wrong frame count is no agreement


def test_db_spectrum_passes_the_reported_avx512_difference_and_fails_a_tenth_of_a_db_at_the_peak() -> None:
    # the ECAPA case: 3.7e-4 dB, 60 dB below the utterance's loudest band (24.6 dB)
    ref = np.array([24.6, 24.6 - 60.0])
    excess = db_spectrum_excess(ref + [0.0, 3.7e-4], ref)
    # dP / P = 10^(3.7e-5) - 1 = 8.52e-5; bound / P = k sqrt(P_max / P) = 1e-5 * 1000
    assert excess == pytest.approx((10 ** 3.7e-5 - 1) / (SPECTRUM_K * 1e3), rel=1e-3)
    assert excess < 0.01
    assert db_spectrum_excess(ref + [0.1, 0.0], ref) > 1000  # 2.3 % at the peak


def test_scale_excess_is_relative_to_the_largest_output() -> None:
    ref = np.array([2.0, -4.0])
    bound = EMBEDDING_TOL * 4.0
    assert scale_excess(ref + [0.5 * bound, 0.0], ref) == pytest.approx(0.5)
    assert scale_excess(ref + [0.0, -3 * bound], ref) == pytest.approx(3.0)
    assert scale_excess(ref[:1], ref) == math.inf
