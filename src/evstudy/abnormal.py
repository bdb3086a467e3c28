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

import math
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
    tests). Notes: for T with nu degrees of freedom, 2 P(T > |t|) = I_x(nu/2, 1/2)
    with x = nu / (nu + t^2), the regularized incomplete beta function
    (Abramowitz & Stegun 1972, 26.7.1 and 26.5.2), evaluated by its continued
    fraction (A&S 26.5.8) with the modified Lentz method, the ``betai``/``betacf``
    scheme of Press et al. (2007), *Numerical Recipes*, 3rd ed., section 6.4:
    the fraction for I_x(a, b) where x < (a + 1) / (a + b + 2), else for
    1 - I_{1-x}(b, a). 1 - x = t^2 / (nu + t^2) and ln x = -log1p(t^2 / nu) are
    formed directly, so tail p-values keep their relative precision, and
    B(nu/2, 1/2) = sqrt(pi) Gamma(a) / Gamma(a + 1/2) comes from
    :func:`_half_gamma_ratio`. Agrees with ``scipy.special.stdtr`` to 1e-13
    relative for df <= 500 where p > 1e-100, to 5e-13 deeper in the tail, and to
    1e-11 up to df = 1e5 (tests/test_pvalues.py); written out because importing
    scipy.special costs a whole-market scan ~0.15 s of its ~0.8 s (its
    array-API layer loads numpy.f2py and numpy.testing). NaN t or a df that is
    not a positive finite number gives NaN; |t| = inf gives 0.
    """
    t, df = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(df, dtype=float))
    p = np.full(t.shape, np.nan)
    usable = np.isfinite(df) & (df > 0)
    p[usable & np.isinf(t)] = 0.0
    ok = usable & np.isfinite(t)
    if not ok.any():
        return p
    nu, tsq = df[ok], np.square(t[ok])
    a = nu / 2.0
    x = nu / (nu + tsq)
    one_minus_x = tsq / (nu + tsq)
    values, where = np.unique(a, return_inverse=True)
    ratio = np.array([_half_gamma_ratio(float(v)) for v in values])[where.reshape(a.shape)]
    # x^a (1-x)^(1/2) / B(a, 1/2), the factor both fractions share
    front = np.exp(-a * np.log1p(tsq / nu)) * np.sqrt(one_minus_x) * ratio / math.sqrt(math.pi)
    # I_x(a, 1/2) from its fraction where that converges, else 1 - I_{1-x}(1/2, a): one batch for both
    direct = x < (a + 1.0) / (a + 2.5)
    fraction = _beta_fraction(np.where(direct, x, one_minus_x), np.where(direct, a, 0.5), np.where(direct, 0.5, a))
    p[ok] = np.where(direct, front * fraction / a, 1.0 - front * fraction / 0.5)
    return p


# Gamma(a + 1/2) / Gamma(a) = sqrt(a) (1 - 1/(8a) + 1/(128a^2) + 5/(1024a^3) - 21/(32768a^4) - 399/(262144a^5)
# + 869/(4194304a^6) + O(a^-7)); checked against the exact (2n)! sqrt(pi) / (4^n n! (n-1)!) in 60-digit decimals:
# the truncation error is 3e-17 at a = 100 and falls as a^-7.
_HALF_GAMMA_SERIES = (1.0, -1 / 8, 1 / 128, 5 / 1024, -21 / 32768, -399 / 262144, 869 / 4194304)
_HALF_GAMMA_DIRECT = 100.0  # below this, math.gamma itself (relative error ~1e-16, no overflow)


def _half_gamma_ratio(a: float) -> float:
    """Gamma(a + 1/2) / Gamma(a) for a > 0, to ~1e-16 relative (B(a, 1/2) = sqrt(pi) / this)."""
    if a < _HALF_GAMMA_DIRECT:
        return math.gamma(a + 0.5) / math.gamma(a)
    inverse = 1.0 / a
    series = 0.0
    for coefficient in reversed(_HALF_GAMMA_SERIES):
        series = series * inverse + coefficient
    return math.sqrt(a) * series


_TINY = 1e-300
_EPS = np.finfo(float).eps
_MAX_TERMS = 100_000


def _beta_fraction(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The continued fraction of I_x(a, b) (A&S 26.5.8) by the modified Lentz method, for x < (a+1)/(a+b+2).

    Press et al. (2007), *Numerical Recipes*, 3rd ed., ``betacf``, vectorized:
    each element's value is taken when its last factor is within machine
    epsilon of 1; finished elements leave the arrays once they are half of them.
    The updates run in place (a third faster than fresh temporaries, same bits).
    """
    out = np.empty_like(x)
    index = np.arange(len(x))
    pending = np.ones(len(x), dtype=bool)
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    aa, first, second, tiny = np.empty_like(x), np.empty_like(x), np.empty_like(x), np.empty(len(x), dtype=bool)

    def guard(value: np.ndarray) -> None:  # NR's "if (fabs(d) < FPMIN) d = FPMIN"
        np.less(np.abs(value, out=first), _TINY, out=tiny)
        if tiny.any():
            value[tiny] = _TINY

    def lentz_step() -> None:  # d = 1 / (1 + aa d), c = 1 + aa / c, each guarded
        np.add(np.multiply(d, aa, out=d), 1.0, out=d)
        guard(d)
        np.divide(1.0, d, out=d)
        np.add(np.divide(aa, c, out=c), 1.0, out=c)
        guard(c)

    for m in range(1, _MAX_TERMS + 1):
        if not len(index):
            return out
        m2 = 2 * m
        # even step: aa = m (b - m) x / ((a - 1 + 2m) (a + 2m)); h *= d c
        np.multiply(m, np.subtract(b, m, out=aa), out=aa)
        aa *= x
        np.add(qam, m2, out=first)
        first *= np.add(a, m2, out=second)
        aa /= first
        lentz_step()
        h *= np.multiply(d, c, out=first)
        # odd step: aa = -(a + m) (a + b + m) x / ((a + 2m) (a + 1 + 2m)); h *= d c
        np.negative(np.add(a, m, out=aa), out=aa)
        aa *= np.add(qab, m, out=first)
        aa *= x
        np.add(a, m2, out=first)
        first *= np.add(qap, m2, out=second)
        aa /= first
        lentz_step()
        step = d * c
        h *= step
        step -= 1.0
        done = pending & (np.abs(step, out=step) <= _EPS)
        if done.any():
            out[index[done]] = h[done]
            pending &= ~done
            if 2 * np.count_nonzero(pending) <= len(index):
                index, x, a, b, qab, qap, qam, c, d, h, pending = (
                    v[pending] for v in (index, x, a, b, qab, qap, qam, c, d, h, pending)
                )
                aa, first, second, tiny = np.empty_like(x), np.empty_like(x), np.empty_like(x), np.empty(len(x), bool)
    out[index[pending]] = np.nan  # not reached for any finite x in range: the fraction converges in O(sqrt(max(a, b))) terms
    return out


def car_stats(fitted: ModelFit, ar: AbnormalReturns, windows: list[Window]) -> CarStats:
    """CAR per window with MacKinlay's variance (eq. 10-11), vectorized over series."""
    rel = ar.rel_days
    selector = np.array([(rel >= w.start) & (rel <= w.end) for w in windows], dtype=float)  # (nw, W)
    car = selector @ ar.abnormal
    days = selector.sum(axis=1)
    X = design(fitted.model, ar.market)
    v = np.einsum("nw,wkp->nkp", selector, X)
    correction = np.einsum("nkp,kpq,nkq->nk", v, fitted.xtx_inv, v)
    var = fitted.s2[None, :] * (days[:, None] + correction)
    se = np.sqrt(var)
    # A series with no residual variance (a flat price) gives 0/0 here; it is NaN by design and the
    # study and scan exclude such series with a stated reason before anything is reported.
    with np.errstate(divide="ignore", invalid="ignore"):
        t = car / se
    return CarStats(car, se, t, two_sided_t_pvalue(t, fitted.df[None, :]), days)


def car_paths(fitted: ModelFit, ar: AbnormalReturns) -> CarStats:
    """CAR from the first event-window day through each later day, with its SE."""
    rel = ar.rel_days
    return car_stats(fitted, ar, [Window(int(rel[0]), int(day)) for day in rel])


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
    rel = ar.rel_days
    selector = np.array([(rel >= w.start) & (rel <= w.end) for w in windows], dtype=bool)[:, :, None]  # (nw, W, 1)
    grown = np.where(selector, 1.0 + ar.actual[None], 1.0).prod(axis=1) - 1.0
    normal = np.where(selector, 1.0 + ar.expected[None], 1.0).prod(axis=1) - 1.0
    return BuyAndHold(grown, normal, grown - normal)
