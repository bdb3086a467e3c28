"""The Student-t p-value every output reports (evstudy.abnormal.two_sided_t_pvalue), against scipy.stats.

It is scipy.special.stdtr, the CDF scipy.stats.t evaluates, without importing
scipy.stats: the two must agree bit for bit on the scan's degrees of freedom
(estimation returns - 2, 118..238 by default) and every other test's.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evstudy.abnormal import two_sided_t_pvalue

T_GRID = np.concatenate([np.linspace(0.0, 6.0, 601), np.linspace(6.0, 80.0, 371), -np.linspace(0.05, 9.0, 60)])


@pytest.mark.parametrize("df", [1, 2, 3, 7, 20, 29.5, 58, 118, 178, 237, 238, 498, 1e5])
def test_p_values_are_scipy_stats_t_bit_for_bit(df):
    expected = 2.0 * stats.t.sf(np.abs(T_GRID), df)
    np.testing.assert_array_equal(two_sided_t_pvalue(T_GRID, np.full(T_GRID.shape, float(df))), expected)


def test_undefined_inputs_give_nan_and_infinite_t_gives_zero():
    p = two_sided_t_pvalue(np.array([np.nan, np.inf, -np.inf, 1.0]), np.array([10.0, 10.0, 10.0, np.nan]))
    assert np.isnan(p[0]) and p[1] == 0.0 and p[2] == 0.0 and np.isnan(p[3])
