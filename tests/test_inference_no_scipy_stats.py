"""The rank, binomial and signed-rank helpers of evstudy.inference give scipy.stats' numbers, bit for bit.

evstudy computes them with numpy and scipy.special so a study never imports
scipy.stats (~0.5 CPU s). Each is checked here against scipy.stats on many
random inputs: ties, zeros, NaN gaps, every regime of the Wilcoxon test
(exact, permutation over tied ranks, normal approximation).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy
from scipy import stats

from evstudy.inference import average_ranks, binomial_pmf, signed_rank_pvalue, wilcoxon

SCIPY_WITH_BOOST_IN_SPECIAL = tuple(int(v) for v in scipy.__version__.split(".")[:2]) >= (1, 15)


def _coarse(rng: np.random.Generator, shape: tuple[int, ...], levels: int) -> np.ndarray:
    """Values on a coarse grid (so ties are common), with NaN gaps and zeros."""
    values = rng.integers(-levels, levels + 1, size=shape).astype(float)
    values[rng.random(shape) < 0.15] = np.nan
    return values


def test_average_ranks_equal_scipy_rankdata_along_any_axis():
    rng = np.random.default_rng(1)
    for shape, axis in [((40,), -1), ((7, 30), -1), ((5, 60, 9), -2), ((3, 4, 25), 0), ((6, 1), -1)]:
        for values in (_coarse(rng, shape, 3), rng.standard_normal(shape), _coarse(rng, shape, 50)):
            values.flat[::7] = np.inf if values.size > 7 else values.flat[::7]
            expected = stats.rankdata(values, axis=axis, nan_policy="omit")
            np.testing.assert_array_equal(average_ranks(values, axis=axis), expected)
    assert average_ranks(np.full((2, 3), np.nan)).shape == (2, 3)
    assert np.isnan(average_ranks(np.full((2, 3), np.nan))).all()


@pytest.mark.skipif(not SCIPY_WITH_BOOST_IN_SPECIAL, reason="scipy < 1.15 falls back to scipy.stats itself")
def test_binomial_pmf_equals_scipy_binom_pmf():
    rng = np.random.default_rng(2)
    n = rng.integers(0, 120, size=300)
    p = rng.uniform(0.01, 0.99, size=300)
    k = np.arange(125)
    np.testing.assert_array_equal(binomial_pmf(k, n[:, None], p[:, None]), stats.binom.pmf(k, n[:, None], p[:, None]))
    w = rng.integers(0, 121, size=300)
    np.testing.assert_array_equal(binomial_pmf(w, n, p), stats.binom.pmf(w, n, p))


def _scipy_wilcoxon_rows(x: np.ndarray) -> np.ndarray:
    """scipy.stats.wilcoxon per row, zeros and NaN dropped first (as evstudy's test sees its CARs)."""
    out = np.full(x.shape[0], np.nan)
    for i, row in enumerate(x):
        kept = row[np.isfinite(row) & (row != 0)]
        if len(kept):
            out[i] = stats.wilcoxon(kept, zero_method="wilcox", method="auto").pvalue
    return out


@pytest.mark.parametrize("width", [1, 2, 5, 9, 13, 14, 20, 40, 50, 51, 80])
def test_signed_rank_pvalue_equals_scipy_wilcoxon_in_every_regime(width):
    rng = np.random.default_rng(width)
    continuous = rng.standard_normal((60, width)) + rng.uniform(-1, 1, size=(60, 1))
    tied = np.round(continuous * 2) / 2  # ties and zeros: the permutation (n <= 13) and tie-corrected normal paths
    for x in (continuous, tied, np.where(rng.random((60, width)) < 0.2, np.nan, continuous)):
        np.testing.assert_array_equal(signed_rank_pvalue(x), _scipy_wilcoxon_rows(x))



def test_signed_rank_pvalue_equals_scipy_on_wide_rows_with_ties_infinities_and_tiny_values():
    """The integer-key sort (bits of |x|, sign in the low bit) ranks inf, subnormal and tied values as rankdata does."""
    rng = np.random.default_rng(11)
    x = np.round(rng.standard_normal((12, 300)) * 4) / 4 + rng.uniform(-0.3, 0.3, size=(12, 1))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, :3] = [np.inf, -np.inf, 5e-324]
    x[1, 3:9] = [-5e-324, 5e-324, -1e-310, 1e-310, np.inf, 0.0]
    with_inf = [stats.wilcoxon(row[~np.isnan(row) & (row != 0)], zero_method="wilcox").pvalue for row in x]
    np.testing.assert_array_equal(signed_rank_pvalue(x), with_inf)
    result = wilcoxon(np.where(np.isfinite(x), x, np.nan))
    kept = np.where(np.isfinite(x) & (x != 0), x, np.nan)
    ranks = stats.rankdata(np.abs(kept), axis=-1, nan_policy="omit")
    np.testing.assert_array_equal(result.statistic, np.where(kept > 0, ranks, 0.0).sum(axis=-1))
    np.testing.assert_array_equal(result.p_value, _scipy_wilcoxon_rows(kept))

def test_signed_rank_pvalue_keeps_the_batch_shape_and_all_zero_rows_are_nan():
    x = np.zeros((2, 3, 4))
    x[0, 1] = [0.5, -0.2, 0.3, 0.1]
    p = signed_rank_pvalue(x)
    assert p.shape == (2, 3)
    assert np.isnan(p[1]).all() and np.isfinite(p[0, 1])
    assert p[0, 1] == stats.wilcoxon([0.5, -0.2, 0.3, 0.1]).pvalue
    assert signed_rank_pvalue(np.empty((3, 0))).shape == (3,)


def test_wilcoxon_test_matches_scipy_on_padded_baskets():
    """Baskets of different sizes padded with NaN along the member axis, as the battery stacks them."""
    rng = np.random.default_rng(7)
    cars = rng.standard_normal((8, 6, 30)) * 0.02
    cars[rng.random(cars.shape) < 0.3] = np.nan
    cars[0, 0, :5] = 0.0
    result = wilcoxon(cars)
    flat = cars.reshape(-1, 30)
    np.testing.assert_array_equal(result.p_value.ravel(), _scipy_wilcoxon_rows(flat))
    ranks = stats.rankdata(np.abs(np.where(flat != 0, flat, np.nan)), axis=-1, nan_policy="omit")
    np.testing.assert_array_equal(result.statistic.ravel(), np.where(flat > 0, ranks, 0.0).sum(axis=-1))


def test_a_study_process_never_imports_scipy_stats():
    """The study engine and the report: importing them and running the battery leaves scipy.stats unloaded."""
    code = (
        "import sys, numpy as np\n"
        "import evstudy.study, evstudy.report.files, evstudy.catalogue, evstudy.compare\n"
        "from evstudy.inference import wilcoxon, sign_binomial, grank_t\n"
        "rng = np.random.default_rng(0)\n"
        "wilcoxon(rng.standard_normal((3, 12)))\n"
        "sign_binomial(rng.standard_normal((3, 12)), rng.standard_normal((50, 12)))\n"
        "grank_t(rng.standard_normal((1, 12)), np.ones((1, 12)), rng.standard_normal((50, 12)), np.full(12, 48))\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_report_t_quantile_equals_scipy_t_ppf():
    from evstudy.report.charts import t_quantile

    df = np.array([1, 2, 3, 5.5, 10, 30, 100, 238, 1e6, np.nan, 0, -1])
    np.testing.assert_array_equal(t_quantile(0.975, df), stats.t.ppf(0.975, df))
