"""Abnormal returns, cumulative abnormal returns and their variance.

CAR over a window of L2 days is the sum of the ARs. Its variance includes the
estimation error of the model's parameters (MacKinlay 1997, eq. 10-11):

    S_CAR^2 = s^2 * (L2 + 1' X* (X'X)^-1 X*' 1)

where X* is the event-window design. 1'X* is the column sum v of X*, so the
correction is the quadratic form v' (X'X)^-1 v, computed for every series and
window at once. t = CAR / S_CAR, two-sided p from Student's t with the
model's residual degrees of freedom (L1 - 2 for the market model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evstudy.config import Window
from evstudy.models import ModelFit, design, expected_returns


@dataclass(frozen=True)
class AbnormalReturns:
    """Event-window returns, normal returns and abnormal returns (days x series)."""

    rel_days: np.ndarray  # (W,)
    actual: np.ndarray
    expected: np.ndarray
    abnormal: np.ndarray
    market: np.ndarray


def abnormal_returns(
    fitted: ModelFit, stock: np.ndarray, market: np.ndarray, rel_days: np.ndarray, offset: np.ndarray | None = None
) -> AbnormalReturns:
    """AR = actual - expected, for every event-window day and series.

    ``market`` is the model's regressors (see :func:`evstudy.models.model_inputs`);
    ``offset`` (days x series) is the part of the normal return outside the
    regression, the risk-free rate for the factor model: expected = offset + X b.
    """
    expected = expected_returns(fitted, market)
    if offset is not None:
        expected = expected + offset
    return AbnormalReturns(rel_days, stock, expected, stock - expected, market)


@dataclass(frozen=True)
class CarStats:
    """CAR, its standard error (with estimation error), t and p per (window, series)."""

    car: np.ndarray  # (n_windows, K)
    se: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    days: np.ndarray  # (n_windows,) L2


def two_sided_t_pvalue(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a t statistic with ``df`` degrees of freedom: 2 * P(T_df > |t|).

    The one source of every Student-t p-value evstudy reports (scan, study,
    tests): the Student-t CDF ``scipy.special.stdtr`` (what ``scipy.stats.t.sf``
    evaluates, bit for bit), without importing ``scipy.stats``, which costs
    about a second at start-up. scipy.special itself (~0.1 s, most of it its
    array-API layer) is imported on first use, so a whole-market scan can load it
    in a background thread while its screens run (:func:`evstudy.scan.scan_indexed`).
    A hand-written continued fraction (A&S 26.5.8) was measured instead: it saved
    the scan that import but cost a 200-event catalogue ~3 CPU s in 3,400 small calls.
    """
    from scipy import special

    return 2.0 * special.stdtr(df, -np.abs(t))


@dataclass(frozen=True)
class CarPath:
    """CAR from the first event-window day through each later day, and its standard error (day x series)."""

    car: np.ndarray  # (n_days, K)
    se: np.ndarray


def car_stats(fitted: ModelFit, ar: AbnormalReturns, windows: list[Window]) -> CarStats:
    """CAR per window with MacKinlay's variance (eq. 10-11), vectorized over series."""
    car, se, days = _car_se(fitted, ar, windows)
    # A series with no residual variance (a flat price) gives 0/0 here; it is NaN by design and the
    # study and scan exclude such series with a stated reason before anything is reported.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = car / se
    return CarStats(car, se, t, two_sided_t_pvalue(t, fitted.df[None, :]), days)


def window_selectors(rel_days: np.ndarray, windows: Sequence[Window]) -> np.ndarray:
    """(windows x event days) 0/1 matrix: which event-span days each window sums (one pass for all windows)."""
    rel = np.asarray(rel_days)
    starts, ends = np.array([[w.start, w.end] for w in windows], dtype=np.int64).reshape(-1, 2).T
    return ((rel >= starts[:, None]) & (rel <= ends[:, None])).astype(float)


def _car_se(fitted: ModelFit, ar: AbnormalReturns, windows: list[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CAR, its standard error (MacKinlay 1997, eq. 10-11) and the day count L2, per (window, series)."""
    selector = window_selectors(ar.rel_days, windows)
    car = selector @ ar.abnormal
    days = selector.sum(axis=1)
    X = design(fitted.model, ar.market)
    v = np.einsum("nw,wkp->nkp", selector, X)
    correction = np.einsum("nkp,kpq,nkq->nk", v, fitted.xtx_inv, v)
    var = fitted.s2[None, :] * (days[:, None] + correction)
    return car, np.sqrt(var), days


def car_paths(fitted: ModelFit, ar: AbnormalReturns) -> CarPath:
    """CAR from the first event-window day through each later day, with its SE (as :func:`car_stats` gives
    them for those windows). No t or p: nothing reports a path's, and their Student-t CDF cost a
    200-event catalogue ~0.05 CPU s (benchmarks/README.md, catalogue, tenth round)."""
    rel = ar.rel_days
    car, se, _ = _car_se(fitted, ar, [Window(int(rel[0]), int(day)) for day in rel])
    return CarPath(car, se)


@dataclass(frozen=True)
class BuyAndHold:
    """Compounded actual and normal returns over each window, and their difference (window x series)."""

    bh_return: np.ndarray
    bh_expected: np.ndarray
    bhar: np.ndarray


def buy_and_hold(ar: AbnormalReturns, windows: list[Window]) -> BuyAndHold:
    """Buy-and-hold abnormal returns, BHAR_i = prod(1 + R_it) - prod(1 + E[R_it]) over each window.

    Notes
    -----
    Barber & Lyon (1997), "Detecting long-run abnormal stock returns", JFE
    43(3): compounding, unlike summing ARs into a CAR, is what an investor
    holding the stock over the window earns, which matters over long windows.
    E[R_it] is the study model's normal return on each day. No standard error
    is given: BHARs are skewed, and their t-tests are misspecified (Lyon,
    Barber & Tsai 1999, JF 54(1)).
    """
    selector = window_selectors(ar.rel_days, windows).astype(bool)[:, :, None]  # (nw, W, 1)
    grown = np.where(selector, 1.0 + ar.actual[None], 1.0).prod(axis=1) - 1.0
    normal = np.where(selector, 1.0 + ar.expected[None], 1.0).prod(axis=1) - 1.0
    return BuyAndHold(grown, normal, grown - normal)
