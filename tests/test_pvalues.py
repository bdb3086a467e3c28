"""The Student-t p-value every output reports (evstudy.abnormal.two_sided_t_pvalue), against scipy.

evstudy evaluates 2 P(T_df > |t|) itself, by the incomplete beta function's
continued fraction, so that the whole-market scan need not import scipy.special.
Known answers: scipy.special.stdtr (the CDF scipy.stats.t evaluates) on grids of
t and df covering the scan's (df = estimation returns - 2, 118..238 by default)
and every other test's, and the exact Gamma(n + 1/2) / Gamma(n) of integers.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest
from scipy import special

from evstudy.abnormal import _half_gamma_ratio, two_sided_t_pvalue

T_GRID = np.concatenate([np.linspace(0.0, 6.0, 601), np.linspace(6.0, 80.0, 371), -np.linspace(0.05, 9.0, 60)])


def _scipy(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    return 2.0 * special.stdtr(df, -np.abs(t))


@pytest.mark.parametrize("df", [*range(1, 13), 20, 29.5, 58, 97.25, 118, 119, 150, 178, 200, 237, 238, 239, 250, 400, 498])
def test_p_values_equal_scipy_to_1e_13(df):
    """To 1e-13 relative where p > 1e-100; deeper in the tail, where p = exp(-a log1p(t^2/df)) with an exponent
    of hundreds whose last-bit rounding (in either implementation) shows in the 13th digit, to 5e-13."""
    expected = _scipy(T_GRID, np.full_like(T_GRID, df))
    got = two_sided_t_pvalue(T_GRID, np.full_like(T_GRID, df))
    body, tail = expected > 1e-100, (expected > 1e-250) & (expected <= 1e-100)
    np.testing.assert_allclose(got[body], expected[body], rtol=1e-13, atol=0)
    np.testing.assert_allclose(got[tail], expected[tail], rtol=5e-13, atol=0)
    assert (got[~(body | tail)] < 1e-240).all()


@pytest.mark.parametrize("df", [1000, 1e4, 5e4, 1e5])
def test_p_values_for_very_many_observations_equal_scipy_to_1e_11(df):
    """Up to a cross-section of 10^5 firm-events: the fraction takes hundreds of terms; agreement 1e-11."""
    t = np.linspace(0.0, 12.0, 481)
    np.testing.assert_allclose(two_sided_t_pvalue(t, np.full_like(t, df)), _scipy(t, np.full_like(t, df)), rtol=1e-11)


def test_the_scan_s_shapes_and_edges():
    """(windows x series) t against (1 x series) df, as car_stats calls it; NaN, infinite t and bad df."""
    rng = np.random.default_rng(3)
    t = rng.standard_t(4, (6, 500)) * 4
    df = rng.integers(118, 239, (1, 500)).astype(float)
    np.testing.assert_allclose(two_sided_t_pvalue(t, df), _scipy(t, df), rtol=1e-13, atol=0)
    got = two_sided_t_pvalue(np.array([np.nan, np.inf, -np.inf, 0.0, 2.0, 2.0, 2.0]),
                             np.array([10.0, 10.0, 10.0, 10.0, 0.0, -3.0, np.nan]))
    assert np.isnan(got[0]) and got[1] == got[2] == 0.0 and got[3] == 1.0 and np.isnan(got[4:]).all()
    assert two_sided_t_pvalue(np.float64(1.5), 30).shape == ()


def test_half_gamma_ratio_equals_the_exact_ratio():
    """Gamma(n + 1/2) / Gamma(n) = sqrt(pi) (2n)! / (4^n n! (n-1)!), in 60-digit decimals, either side of the switch."""
    getcontext().prec = 60
    pi = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
    for n in (1, 2, 7, 50, 99, 100, 101, 119, 250, 1000, 20000):
        exact = pi.sqrt() * Decimal(math.factorial(2 * n)) / Decimal(4**n * math.factorial(n) * math.factorial(n - 1))
        assert abs(Decimal(_half_gamma_ratio(float(n))) / exact - 1) < Decimal("4e-16"), n
