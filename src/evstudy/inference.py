"""Basket-level statistics: is the average abnormal return different from zero?

Each test returns :class:`TestResult` objects; a test that cannot be computed
for the data carries ``statistic=None`` and a ``note`` saying why, so a NaN or
an infinity is never presented as a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evstudy.abnormal import two_sided_t_pvalue


@dataclass(frozen=True)
class TestResult:
    """One test of H0: mean CAR = 0 for one basket and window."""

    test: str
    statistic: float | None
    p_value: float | None
    n: int
    note: str = ""


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def cross_sectional_t(cars: np.ndarray) -> list[TestResult]:
    """Cross-sectional t per window (Brown & Warner 1985).

    t = CAAR / (sd(CAR_i) / sqrt(N)), sd with ddof = 1, p-value from Student's
    t with N - 1 degrees of freedom. ``cars`` is (windows x N). It ignores any
    cross-correlation of CARs that share an event date, so it over-rejects
    when many stocks share one day 0.
    """
    n = cars.shape[1]
    results = []
    for row in cars:
        if n < 2:
            results.append(TestResult("cs_t", None, None, n, f"needs at least 2 tickers; the basket has {n}"))
            continue
        sd = row.std(ddof=1)
        if not sd > 0:
            results.append(TestResult("cs_t", None, None, n, "all CARs are equal: zero cross-sectional variance"))
            continue
        t = row.mean() / (sd / np.sqrt(n))
        results.append(TestResult("cs_t", _finite_or_none(t), _finite_or_none(two_sided_t_pvalue(t, n - 1)), n))
    return results
