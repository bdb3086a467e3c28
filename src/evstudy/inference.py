"""Basket-level statistics: is the average abnormal return different from zero?

Every test is a pure, vectorized function over arrays whose LAST axis is the
basket's members (a NaN marks a member absent from that row); any leading axes
(windows, samples, pseudo-dates) are batch axes. Each returns a
:class:`TestArrays`: statistic and p-value arrays with NaN where the test is
undefined, plus a ``note`` array saying why (or giving context), so
:meth:`TestArrays.results` never presents a NaN or an infinity as a result.

The battery (test ids as in ``tests.csv``):

========================  =========================================================  ====================
id                        statistic                                                  p-value
========================  =========================================================  ====================
``cs_t``                  Brown & Warner (1985) cross-sectional t on CARs            Student t(N-1)
``patell_z``              Patell (1976) Z on standardized CARs                       standard normal
``bmp_t``                 Boehmer, Musumeci & Poulsen (1991) t on standardized CARs  Student t(N-1)
``kp_patell_z``           Kolari & Pynnönen (2010, eq. 13) adjusted Patell Z         standard normal
``kp_bmp_t``              BMP t x Kolari & Pynnönen (2010) correction                Student t(N-1)
``corrado_rank``          Corrado (1989) rank test, Corrado & Zivney (1992) ranks,   standard normal
                          Campbell & Wasley (1993) multi-day form
``grank_t``               Kolari & Pynnönen (2011) generalized rank test, GRANK-T    Student t(T-2)
``generalized_sign``      Cowan (1992) generalized sign test                         standard normal
``sign_binomial``         exact sign test, Cowan's (1992) share of positive ARs      exact binomial
``wilcoxon``              Wilcoxon (1945) signed-rank test on CARs                   exact (N <= 50)
``portfolio_t``           Jaffe (1974) portfolio time-series t                       Student t(model df)
``std_portfolio_t``       inverse-variance portfolio t with an event-induced         Student t (Welch-
                          variance term (Brown & Warner 1985; BMP 1991)              Satterthwaite df)
``placebo_caar``          CAAR against its placebo-date distribution                 empirical
``placebo_bmp``           BMP t against its placebo-date distribution                empirical
========================  =========================================================  ====================

All p-values are two-sided. ``scipy.stats`` is not imported (it costs about
half a CPU second at start-up): ranks, the binomial and the signed-rank null
distributions are computed here with numpy and ``scipy.special``, to the
same numbers.
"""

from __future__ import annotations

import contextvars
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import special

from evstudy.abnormal import abnormal_returns, car_stats, two_sided_t_pvalue
from evstudy.config import ModelName, Window
from evstudy.models import fit

TEST_IDS: tuple[str, ...] = (
    "cs_t", "patell_z", "bmp_t", "kp_patell_z", "kp_bmp_t", "corrado_rank", "grank_t",
    "generalized_sign", "sign_binomial", "wilcoxon", "portfolio_t", "std_portfolio_t", "placebo_caar",
    "placebo_bmp",
)
TEST_LABELS: dict[str, str] = {
    "cs_t": "cross-sectional t (Brown & Warner 1985)",
    "patell_z": "Patell Z (1976)",
    "bmp_t": "BMP t (Boehmer, Musumeci & Poulsen 1991)",
    "kp_patell_z": "adjusted Patell Z (Kolari & Pynnönen 2010)",
    "kp_bmp_t": "BMP t with the Kolari & Pynnönen (2010) correction",
    "corrado_rank": "Corrado rank test (1989)",
    "grank_t": "generalized rank test (Kolari & Pynnönen 2011)",
    "generalized_sign": "generalized sign test (Cowan 1992)",
    "sign_binomial": "exact binomial sign test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "portfolio_t": "portfolio t (Jaffe 1974)",
    "std_portfolio_t": "inverse-variance portfolio t with event-induced variance",
    "placebo_caar": "placebo-date test of the CAAR",
    "placebo_bmp": "placebo-date test of the BMP t",
}
# A pair of residual series counts towards r̄ only over at least this many common estimation days: a
# quarter of the default 240-day window. One pair's r from n days has standard error ~1/sqrt(n), 0.13 at
# 60 days, already twice the r̄ ~ 0.06 of unrelated stocks; fewer days would also cover another regime.
MIN_COMMON_DAYS = 60
# Below this many tickers the asymptotic (normal / t) approximations are unreliable.
SMALL_N = 10


@dataclass(frozen=True)
class TestResult:
    """One test of H0: mean CAR = 0 for one basket and window."""

    test: str
    statistic: float | None
    p_value: float | None
    n: int
    note: str = ""


@dataclass(frozen=True)
class TestArrays:
    """One test over a batch (e.g. windows, or samples x windows).

    ``statistic`` and ``p_value`` are NaN exactly where ``note`` explains why
    the test is undefined; a defined cell may still carry a context note
    (e.g. the r̄ of a Kolari-Pynnönen test).
    """

    test: str
    statistic: np.ndarray
    p_value: np.ndarray
    n: np.ndarray
    note: np.ndarray  # object array of str

    def results(self) -> list[TestResult]:
        """One :class:`TestResult` per cell (C order); undefined cells get None and their note."""
        finite = (np.isfinite(self.statistic) & np.isfinite(self.p_value)).ravel().tolist()
        return [
            TestResult(self.test, stat if ok else None, p if ok else None, n,
                       str(note) if (note or ok) else "the statistic is not finite")
            for stat, p, n, note, ok in zip(
                np.ravel(self.statistic).astype(float).tolist(), np.ravel(self.p_value).astype(float).tolist(),
                np.ravel(self.n).astype(int).tolist(), np.ravel(self.note).tolist(), finite,
            )
        ]


# --------------------------------------------------------------------------- helpers


def _notes(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, "", dtype=object)


def _explain(note: np.ndarray, where: np.ndarray, text: str | Callable[[tuple[int, ...]], str]) -> None:
    """Write ``text`` into the cells of ``note`` selected by ``where`` that have no reason yet."""
    if not np.any(where):  # the common case: nothing to explain, no scan of the notes
        return
    mask = np.broadcast_to(where, note.shape) & (note == "")
    if mask.any():
        for index in map(tuple, np.argwhere(mask)):
            note[index] = text(index) if callable(text) else text


def _finalize(test: str, stat: np.ndarray, p: np.ndarray, n: np.ndarray, note: np.ndarray) -> TestArrays:
    """Blank the statistic and p wherever a reason was given or the numbers are not finite."""
    stat = np.asarray(stat, dtype=float)
    p = np.asarray(p, dtype=float)
    _explain(note, ~(np.isfinite(stat) & np.isfinite(p)), "the statistic is not finite")
    bad = note != ""
    return TestArrays(test, np.where(bad, np.nan, stat), np.where(bad, np.nan, p), np.asarray(n, dtype=int), note)


def _with_context(result: TestArrays, context: np.ndarray) -> TestArrays:
    """Attach context notes to the defined cells of ``result``."""
    note = result.note.copy()
    defined = np.isfinite(result.statistic)
    note[defined] = np.broadcast_to(context, note.shape)[defined]
    return TestArrays(result.test, result.statistic, result.p_value, result.n, note)


def normal_pvalue(z: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a standard normal statistic, 2 Φ(-|z|)."""
    return 2.0 * special.ndtr(-np.abs(z))


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean, sample sd (ddof=1) and max |x| over the present members (last axis)."""
    present = np.isfinite(x)
    n = present.sum(axis=-1)
    values = np.where(present, x, 0.0)
    mean = values.sum(axis=-1) / np.maximum(n, 1)
    dev = np.where(present, x - mean[..., None], 0.0)
    sd = np.sqrt((dev**2).sum(axis=-1) / np.maximum(n - 1, 1))
    return n, mean, sd, np.abs(values).max(axis=-1, initial=0.0)


def _zero_spread(sd: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A spread that is zero up to rounding (equal values give sd ~ 1e-18, not 0)."""
    return ~(sd > 1e-12 * scale)


def _mean_t(x: np.ndarray, test: str, what: str) -> TestArrays:
    """t = mean / (sd / sqrt(n)) over the last axis, Student t(n - 1)."""
    n, sd, scale, t = _mean_t_parts(x)
    note = _notes(n.shape)
    _explain(note, n < 2, lambda i: f"needs at least 2 tickers; the basket has {n[i]}")
    _explain(note, _zero_spread(sd, scale), f"all {what} are equal: zero cross-sectional variance")
    return _finalize(test, t, two_sided_t_pvalue(t, np.maximum(n - 1, 1)), n, note)


def _mean_t_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count, sd, max |x| and t = mean / (sd / sqrt(n)) over the last axis, before any cell is blanked."""
    n, mean, sd, scale = _moments(x)
    return n, sd, scale, mean / np.where(sd > 0, sd, np.nan) * np.sqrt(n)


# --------------------------------------------------------------------------- parametric tests


def cs_t(cars: np.ndarray) -> TestArrays:
    """Cross-sectional t test of the CAAR (Brown & Warner 1985), which assumes independent CARs.

    Notes
    -----
    t = CAAR / (s(CAR) / sqrt(N)), CAAR = mean_i CAR_i, s with ddof = 1;
    p from Student's t with N - 1 degrees of freedom. ``cars`` is (..., N).
    It ignores any cross-correlation of CARs that share an event date, so it
    over-rejects when many stocks share one day 0.
    """
    return _mean_t(cars, "cs_t", "CARs")


def standardized_cars(car: np.ndarray, se: np.ndarray) -> np.ndarray:
    """SCAR_i = CAR_i / S_CAR_i, S_CAR the MacKinlay (1997, eq. 10-11) standard error with estimation error."""
    return car / np.where(se > 0, se, np.nan)


def _patell(scar: np.ndarray, df: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    present = np.isfinite(scar)
    df = np.broadcast_to(df, scar.shape)
    n = present.sum(axis=-1)
    low = (present & ~(df > 2)).sum(axis=-1)
    var = np.where(present & (df > 2), df / np.where(df > 2, df - 2, 1.0), 0.0).sum(axis=-1)
    z = np.where(present, scar, 0.0).sum(axis=-1) / np.sqrt(np.where(var > 0, var, np.nan))
    note = _notes(n.shape)
    _explain(note, n < 1, "no ticker in the basket")
    _explain(note, low > 0, lambda i: (
        f"Patell's variance df/(df-2) needs more than 2 residual degrees of freedom per ticker; "
        f"{low[i]} ticker(s) have 2 or fewer"
    ))
    return z, n, note


def patell_z(scar: np.ndarray, df: np.ndarray) -> TestArrays:
    """Patell (1976) Z on standardized CARs, with MacKinlay's S_CAR.

    Notes
    -----
    SCAR_i = CAR_i / S_CAR_i (:func:`standardized_cars`); under H0 each SCAR_i
    is Student t with df_i = L1_i - p residual degrees of freedom, variance
    df_i / (df_i - 2) (= (L1_i - 2)/(L1_i - 4) for the market model), so

        Z = sum_i SCAR_i / sqrt( sum_i df_i / (df_i - 2) ),   Z ~ N(0, 1).

    ``scar`` is (..., N); ``df`` broadcasts against it.
    """
    z, n, note = _patell(scar, df)
    return _finalize("patell_z", z, normal_pvalue(z), n, note)


def bmp_t(scar: np.ndarray) -> TestArrays:
    """Boehmer, Musumeci & Poulsen (1991) standardized cross-sectional t.

    Notes
    -----
    t = mean_i SCAR_i / (s(SCAR) / sqrt(N)), s with ddof = 1, SCAR_i as in
    :func:`patell_z`; p from Student's t with N - 1 degrees of freedom. Robust
    to event-induced variance, not to cross-correlation.
    """
    return _mean_t(scar, "bmp_t", "standardized CARs")


def bmp_t_statistic(scar: np.ndarray) -> np.ndarray:
    """:func:`bmp_t`'s statistic alone, bit for bit and NaN in the same cells: for the placebo, which draws
    ~300 pseudo-days an event and keeps no p-value or note (their Student-t CDF and text cost a
    200-event catalogue ~0.08 CPU s; benchmarks/README.md, catalogue, tenth round). NaN where :func:`_mean_t`
    gives none: fewer than 2 values, zero spread, not finite (a finite t has a finite p)."""
    n, sd, scale, t = _mean_t_parts(scar)
    return np.where((n < 2) | _zero_spread(sd, scale) | ~np.isfinite(t), np.nan, t)


def mean_residual_correlation(
    residuals: np.ndarray, min_days: int = MIN_COMMON_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """r̄: mean pairwise Pearson correlation of estimation-window residuals (Kolari & Pynnönen 2010), floored at 0.

    Notes
    -----
    ``residuals`` is (..., L, N) with NaN on days a series does not use. Each
    pair (i, j), i < j, is correlated over the days both have, via the sums
    over common days n_ij, S_i, S_j, S_ii, S_jj, S_ij:

        r_ij = (S_ij - S_i S_j / n_ij) / sqrt((S_ii - S_i^2/n_ij)(S_jj - S_j^2/n_ij)).

    Only pairs with at least ``min_days`` (:data:`MIN_COMMON_DAYS`) common days
    and some variation count. The mean over those pairs is floored at 0: a
    negative r̄ among stocks that share an event day is estimation noise, and it
    would shrink the Kolari-Pynnönen denominator 1 + (N-1) r̄ below 1 and
    inflate the statistic. Returns (r̄, number of pairs used), each (...); r̄ is
    NaN where no pair is usable.

    Cost O(L·N) rather than O(L·N²): for the series present on every day (nearly
    all), r_ij = Σ_t z_it z_jt with z_i the series centred and scaled to unit
    length, so their pair sum is Σ_{i<j} z_i·z_j = (‖Σ_i z_i‖² − Σ_i ‖z_i‖²) / 2;
    only pairs involving a series with gaps (or next to no variation) are
    correlated pair by pair (:func:`_pairwise_correlations`).
    """
    residuals = np.asarray(residuals, dtype=float)
    lead = residuals.shape[:-2]
    rbar = np.full(lead, np.nan)
    pairs = np.zeros(lead, dtype=np.int64)
    for index in np.ndindex(lead):
        total, count = _correlation_sum(residuals[index], min_days)
        pairs[index] = count
        if count > 0:
            rbar[index] = max(total / count, 0.0)
    return rbar, pairs


def _correlation_sum(x: np.ndarray, min_days: int) -> tuple[float, int]:
    """Sum and number of the usable pairwise correlations among the columns of one (L, N) residual matrix."""
    length = x.shape[0]
    present = np.isfinite(x)
    full = present.all(axis=0)
    if length >= max(min_days, 3) and full.any():
        xf = x[:, full]
        sums = xf.sum(axis=0)
        sxx = np.einsum("ij,ij->j", xf, xf)
        var = sxx - sums**2 / length
        # A full pair (i, j) counts when both variances exceed 1e-12 · max(S_ii, S_jj); above 1e-12 times the
        # largest S_ii of all full series, that holds for every partner.
        clean_full = var > 1e-12 * sxx.max()
        clean = np.zeros(x.shape[1], dtype=bool)
        clean[np.flatnonzero(full)[clean_full]] = True
        dev = xf[:, clean_full] - sums[clean_full] / length
        z = dev / np.sqrt(np.einsum("ij,ij->j", dev, dev))
        column_sum = z.sum(axis=1)
        k = int(clean.sum())
        total = (column_sum @ column_sum - np.einsum("ij,ij->", z, z)) / 2.0
        count = k * (k - 1) // 2
    else:
        clean = np.zeros(x.shape[1], dtype=bool)
        total, count = 0.0, 0
    others = np.flatnonzero(~clean & present.any(axis=0))
    if others.size:
        r, usable = _pairwise_correlations(x, others, clean, min_days)
        total += float(r.sum())
        count += int(usable.sum())
    return float(total), count


def _pairwise_correlations(
    x: np.ndarray, rows: np.ndarray, clean: np.ndarray, min_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """r_ij over common days for each column i in ``rows`` and every column j, each pair counted once.

    A pair counts when j is in ``clean`` (their mutual pairs are summed elsewhere) or when both are in ``rows``
    and j > i; returns (r with 0 where a pair does not count, the usable mask), each (len(rows), N).
    """
    present = np.isfinite(x)
    m = present.astype(float)
    v = np.where(present, x, 0.0)
    mr, vr = m[:, rows], v[:, rows]
    n = mr.T @ m
    s_row = vr.T @ m  # sum of x_i over the days i and j share
    s_col = mr.T @ v  # sum of x_j over the same days
    sxx_row = (vr * vr).T @ m
    sxx_col = mr.T @ (v * v)
    sxy = vr.T @ v
    nn = np.where(n > 0, n, np.nan)
    cov = sxy - s_row * s_col / nn
    var_row = sxx_row - s_row**2 / nn
    var_col = sxx_col - s_col**2 / nn
    columns = np.arange(x.shape[1])
    counted = clean[None, :] | (~clean[None, :] & (columns[None, :] > rows[:, None]))
    scale = np.maximum(sxx_row, sxx_col)
    with np.errstate(invalid="ignore"):
        usable = (
            counted & (n >= max(min_days, 3)) & (var_row > 1e-12 * scale) & (var_col > 1e-12 * scale)
        )
        r = np.where(usable, cov / np.sqrt(np.where(usable, var_row * var_col, 1.0)), 0.0)
    return r, usable


def _kp_factor(
    rbar: np.ndarray, pairs: np.ndarray, n: np.ndarray, note: np.ndarray, numerator: np.ndarray | float
) -> np.ndarray:
    """sqrt(numerator / (1 + (N - 1) r̄)), explaining in ``note`` where it is undefined (r̄ >= 0 by construction)."""
    rbar = np.broadcast_to(rbar, n.shape)
    pairs = np.broadcast_to(pairs, n.shape)
    denominator = 1.0 + (n - 1) * rbar
    _explain(note, n < 2, lambda i: f"needs at least 2 tickers to measure their correlation; the basket has {n[i]}")
    _explain(note, pairs < 1, (
        f"no pair of tickers shares {MIN_COMMON_DAYS} or more estimation days: r̄ cannot be measured"
    ))
    # 1e-12: a perfect correlation computed in floating point can land a rounding error either side of 1.
    _explain(note, rbar >= 1 - 1e-12, "the residuals are perfectly correlated (r̄ >= 1): the correction is undefined")
    ok = (rbar < 1 - 1e-12) & (denominator > 0)
    return np.sqrt(np.where(ok, numerator / np.where(ok, denominator, 1.0), np.nan))


def _kp_context(rbar: np.ndarray, pairs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    rbar = np.broadcast_to(rbar, shape)
    pairs = np.broadcast_to(pairs, shape)
    context = _notes(shape)
    for index in np.ndindex(shape):
        if np.isfinite(rbar[index]):
            context[index] = (
                f"mean residual correlation r̄ = {rbar[index]:.3f} over {pairs[index]} pair(s) of tickers with "
                f"{MIN_COMMON_DAYS}+ common estimation days (a negative mean counts as 0)"
            )
    return context


def kp_patell_z(scar: np.ndarray, df: np.ndarray, rbar: np.ndarray, pairs: np.ndarray) -> TestArrays:
    """Kolari & Pynnönen (2010) adjusted Patell Z, their eq. 13.

    Notes
    -----
    ``scar`` (..., N); ``df`` broadcasts against it; ``rbar`` and ``pairs``
    (from :func:`mean_residual_correlation`) against ``scar[..., 0]``.

        Z_KP = Z_Patell / sqrt(1 + (N - 1) r̄),

    Z_Patell from :func:`patell_z`; p from the standard normal. Patell's
    variance of the sum of N standardized CARs assumes independence; with
    pairwise correlation r̄ the variance of the sum is N (1 + (N - 1) r̄)
    (in SCAR units), hence the divisor. Unlike :func:`kp_bmp_t` there is no
    (1 - r̄) factor: that one undoes the downward bias of a cross-sectional
    variance, and Patell's variance is not cross-sectional. Undefined for
    r̄ >= 1.
    """
    z, n, note = _patell(scar, df)
    z = z * _kp_factor(rbar, pairs, n, note, 1.0)
    result = _finalize("kp_patell_z", z, normal_pvalue(z), n, note)
    return _with_context(result, _kp_context(rbar, pairs, n.shape))


def kp_bmp_t(scar: np.ndarray, rbar: np.ndarray, pairs: np.ndarray) -> TestArrays:
    """BMP t with the Kolari & Pynnönen (2010) cross-correlation correction (their adjusted BMP).

    Notes
    -----
    t_KP = t_BMP * sqrt((1 - r̄) / (1 + (N - 1) r̄)), r̄ from
    :func:`mean_residual_correlation` (>= 0); p from Student's t with N - 1
    degrees of freedom. ``scar`` is (..., N), ``rbar`` and ``pairs`` broadcast
    against ``scar[..., 0]``. Undefined for r̄ >= 1.
    """
    base = bmp_t(scar)
    note = base.note.copy()
    t = base.statistic * _kp_factor(rbar, pairs, base.n, note, 1.0 - np.broadcast_to(rbar, base.n.shape))
    result = _finalize("kp_bmp_t", t, two_sided_t_pvalue(t, np.maximum(base.n - 1, 1)), base.n, note)
    return _with_context(result, _kp_context(rbar, pairs, base.n.shape))


# --------------------------------------------------------------------------- ranks and null distributions
# numpy and scipy.special in place of scipy.stats, whose import costs ~0.5 CPU s of every study.


def _run_bounds(new_run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of sorted values, ``new_run`` marking each run's first position: the sorted position f where
    each position's run of equal values starts and the position e where it ends (exclusive), per row."""
    width = new_run.shape[-1]
    position = np.arange(width)
    start = np.maximum.accumulate(np.where(new_run, position, 0), axis=-1)
    run_end = np.ones(new_run.shape, dtype=bool)
    run_end[:, :-1] = new_run[:, 1:]
    end = np.flip(np.minimum.accumulate(np.flip(np.where(run_end, position + 1, width), -1), axis=-1), -1)
    return start, end


def _row_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis of a 2-D array, NaN omitted (and left NaN).

    A run of equal values starting at sorted position f and ending before e
    gets (f + 1 + e) / 2, the rule of ``scipy.stats.rankdata``.
    """
    rows, width = values.shape
    order = np.argsort(values, axis=-1)  # NaN sorts last; the order within ties does not change an average rank
    sorted_at = (order + (np.arange(rows, dtype=np.int64) * width)[:, None]).ravel()  # flat gathers: no fancy indices
    ordered = np.take(values.ravel(), sorted_at).reshape(rows, width)
    new_run = np.ones((rows, width), dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]  # NaN != NaN: each NaN its own run
    start, end = _run_bounds(new_run)
    ranks = np.empty(rows * width)
    ranks[sorted_at] = np.where(~np.isnan(ordered), 0.5 * (start + end + 1), np.nan).ravel()
    return ranks.reshape(rows, width)


def average_ranks(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks along ``axis``, ties averaged, NaN omitted (and left NaN).

    Equals ``scipy.stats.rankdata(values, axis=axis, nan_policy="omit")``
    (method "average") without importing ``scipy.stats``.
    """
    moved = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    if moved.size == 0:
        return np.moveaxis(np.full(moved.shape, np.nan), -1, axis)
    ranks = _row_ranks(moved.reshape(-1, moved.shape[-1]))
    return np.moveaxis(ranks.reshape(moved.shape), -1, axis)


def binomial_pmf(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Binomial(n, p) probability of k successes, 0 outside 0 <= k <= n; ``scipy.stats.binom.pmf``'s numbers.

    scipy >= 1.15 evaluates ``binom.pmf`` with Boost's binomial density, which
    scipy.special carries as ``_binom_pmf``; older versions have it only
    under scipy.stats.
    """
    try:
        from scipy.special._ufuncs import _binom_pmf
    except ImportError:  # scipy < 1.15
        from scipy.stats import binom

        return binom.pmf(k, n, p)
    k, n, p = np.broadcast_arrays(np.asarray(k), np.asarray(n), np.asarray(p, dtype=float))
    inside = (k >= 0) & (k <= n)
    return np.where(inside, np.clip(_binom_pmf(np.where(inside, k, 0), n, p), 0.0, 1.0), 0.0)


@functools.cache
def _signed_rank_tails(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P(W+ <= k) and P(W+ >= k), k = 0 .. n(n+1)/2, for n untied non-zero values under H0.

    The null distribution by the recursion of ``scipy.stats``' exact test
    (each rank positive with probability 1/2); each tail summed as it sums
    it, the short side directly and the long side as 1 minus the other.
    """
    pmf = np.ones(1)
    for k in range(1, n + 1):
        previous = pmf
        pmf = np.zeros(k * (k + 1) // 2 + 1)
        pmf[:len(previous)] = previous * 0.5
        pmf[-len(previous):] += previous * 0.5
    mean = n * (n + 1) / 4
    ks = range(len(pmf))
    lower = np.array([pmf[:k + 1].sum() if k <= mean else 1 - pmf[k + 1:].sum() for k in ks])
    upper = np.array([pmf[k:].sum() if k <= mean else 1 - pmf[:k].sum() for k in ks])
    return lower, upper


def signed_rank_pvalue(x: np.ndarray) -> np.ndarray:
    """Two-sided p-value of Wilcoxon's (1945) signed-rank test of each row (last axis) of ``x``.

    NaN and zero values are dropped (Wilcoxon's treatment of zeros); with n
    the values left, W+ the sum of the ranks of |x| over the positive values
    (ties averaged), and per row, as ``scipy.stats.wilcoxon(zero_method=
    "wilcox", method="auto")`` decides for one sample:

    * n <= 50 and no ties: the exact null distribution of W+,
      p = 2 min(P(W+ >= floor w), P(W+ <= ceil w));
    * ties and n <= 13: the exact permutation distribution of W+ over all
      2^n sign flips of the tied ranks, p = 2 min(P(W+ >= w), P(W+ <= w));
    * otherwise the normal approximation with the tie correction (and no
      continuity correction, scipy's default): z = (W+ - n(n+1)/4) / sigma,
      sigma^2 = (n(n+1)(2n+1) - sum_g (t_g^3 - t_g) / 2) / 24, p = 2 Phi(-|z|).

    NaN for a row with no value left.
    """
    values = np.asarray(x, dtype=float)
    if values.shape[-1] == 0:
        return np.full(values.shape[:-1], np.nan)
    rows = values.reshape(-1, values.shape[-1])
    _, p = _signed_rank(np.where(rows == 0, np.nan, rows))
    return p.reshape(values.shape[:-1])


_MISSING_KEY = np.uint64(np.iinfo(np.uint64).max)


def _signed_rank(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W+ and the two-sided p of :func:`signed_rank_pvalue` for each row of a 2-D ``d`` with zeros already NaN.

    One sort per row, of integer keys: the bits of |d| (which order as the
    values do, |d| being non-negative) shifted left one place, the low bit
    set for a positive value, NaN last. Equal |d| form a run whose average
    rank (f + 1 + e) / 2 is ``scipy.stats.rankdata``'s; W+ adds the ranks at
    the keys with the low bit set. Ranks are half-integers and W+ < 2^52, so
    every sum is exact, in any order.
    """
    missing = np.isnan(d)
    keys = (np.abs(d).view(np.uint64) << np.uint64(1)) | (d > 0).astype(np.uint64)
    keys[missing] = _MISSING_KEY
    keys.sort(axis=-1)
    magnitude = keys >> np.uint64(1)
    valid = keys != _MISSING_KEY
    new_run = np.ones(keys.shape, dtype=bool)
    new_run[:, 1:] = magnitude[:, 1:] != magnitude[:, :-1]
    start, end = _run_bounds(new_run)
    positive = valid & ((keys & np.uint64(1)) == 1)
    w_plus = np.where(positive, 0.5 * (start + end + 1), 0.0).sum(axis=-1)
    size = np.where(new_run & valid, end - start, 0).astype(float)
    tie_term, tied = (size**3 - size).sum(axis=-1), (size > 1).any(axis=-1)
    count = valid.sum(axis=-1)
    c = count.astype(float)
    se = np.sqrt((c * (c + 1.0) * (2.0 * c + 1.0) - tie_term / 2) / 24)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (w_plus - c * (c + 1.0) * 0.25) / se
    p = np.where(count >= 1, 2 * special.ndtr(-np.abs(z)), np.nan)
    exact = (count >= 1) & (count <= 50) & ~tied
    for n in np.unique(count[exact]):
        lower, upper = _signed_rank_tails(int(n))
        at = exact & (count == n)
        w = w_plus[at]
        p[at] = np.minimum(1.0, 2 * np.minimum(upper[np.floor(w).astype(int)], lower[np.ceil(w).astype(int)]))
    permuted = np.flatnonzero((count >= 1) & (count <= 13) & tied)
    if len(permuted):
        ranks = _row_ranks(np.abs(d[permuted]))
        for i, row in enumerate(permuted):
            n = int(count[row])
            flips = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # every sign pattern of the n ranks
            null = flips @ ranks[i][~missing[row]]
            w = w_plus[row]
            gamma = abs(np.finfo(float).eps * 100 * w)  # scipy.stats.permutation_test's tolerance
            share = min(np.count_nonzero(null <= w + gamma), np.count_nonzero(null >= w - gamma)) / 2**n
            p[row] = min(1.0, 2 * share)
    return w_plus, p


# --------------------------------------------------------------------------- rank and sign tests


def _flat_positions(index: np.ndarray) -> np.ndarray:
    """Positions in a C-ordered array of ``index``'s shape (..., T, N) of the cells [..., index[..., t, j], j].

    ``np.take(values, _flat_positions(index))`` is ``np.take_along_axis(values, index, axis=-2)``, several
    times faster (one flat gather instead of broadcast fancy indexing) and reusable across gathers.
    """
    *lead, rows, columns = index.shape
    batch = np.arange(int(np.prod(lead, dtype=np.int64)), dtype=np.int64).reshape(*lead, 1, 1) * (rows * columns)
    return batch + index * columns + np.arange(columns)


def _subset_ranks(
    ordered: np.ndarray, inverse: np.ndarray, tied: np.ndarray, member: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (ties averaged) of the members of a subset, from one sort of the whole set.

    ``ordered`` holds the values sorted along axis -2, ``inverse`` the flat
    position (:func:`_flat_positions`) in that sorted array of each value in
    its original place, and ``tied`` whether each sorted value equals the one
    before it; ``member`` (in sorted order) marks the subset. Returns the
    ranks in the original order (NaN off the subset) and each column's
    subset size, (..., 1, N). Within a run of equal values holding k
    members, each gets (members before the run) + (k + 1) / 2, as
    ``scipy.stats.rankdata``; without ties that is the running member count.
    """
    taken = member.astype(float)
    through = np.cumsum(taken, axis=-2)  # members up to and including each position
    rank = through
    tied_columns = tied.any(axis=-2)
    if tied_columns.any():
        # The run rule only on the columns holding a tie (residuals seldom tie: ~1 column in 600): in a
        # column without one every run is one value, for which the rule gives (through - 1 + 1 + through) / 2,
        # ``through`` itself, exactly (small integers).
        lead, n_rows, n_cols = ordered.shape[:-2], ordered.shape[-2], ordered.shape[-1]
        batch, column = np.nonzero(tied_columns.reshape(-1, n_cols))

        def picked(values: np.ndarray) -> np.ndarray:  # (tied columns, rows)
            return values.reshape(-1, values.shape[-2], n_cols)[batch, :, column]

        tie, sub_taken, sub_through = picked(tied), picked(taken), picked(through)
        new_run = np.ones(sub_through.shape, dtype=bool)
        new_run[:, 1:] = ~tie
        run_end = np.ones(sub_through.shape, dtype=bool)
        run_end[:, :-1] = ~tie
        before_run = np.maximum.accumulate(np.where(new_run, sub_through - sub_taken, 0.0), axis=-1)
        through_run = np.flip(np.minimum.accumulate(np.flip(np.where(run_end, sub_through, np.inf), -1), axis=-1), -1)
        rank = through.copy().reshape(-1, n_rows, n_cols)
        rank[batch, :, column] = (before_run + 1.0 + through_run) / 2.0
        rank = rank.reshape(*lead, n_rows, n_cols)
    ranks = np.take(np.where(member, rank, np.nan), inverse)
    return ranks, through[..., -1:, :]


def corrado_rank(est_ar: np.ndarray, event_ar: np.ndarray, selectors: np.ndarray) -> TestArrays:
    """Corrado (1989) rank test with Corrado & Zivney (1992) standardized ranks; Campbell & Wasley (1993) windows.

    Notes
    -----
    Shapes: ``est_ar`` (..., L, N) and ``event_ar`` (..., W, N), NaN where
    missing; ``selectors`` (windows x W) from :func:`~evstudy.abnormal.window_selectors`.
    Returns (..., windows). For each window separately, each series' ARs
    over the estimation window and THAT window's days (the rank pool of R's
    estudy2, so a window's statistic does not depend on which other windows
    the config has) are ranked (ties averaged), K_it, and standardized by
    the number T_i of ARs the series has there: U_it = K_it / (T_i + 1),
    uniform on (0, 1) with mean 1/2 under H0 whatever the missing days. With
    Ū_t the mean of U_it over the N_t series present on day t, and

        S_U = sqrt( (1/T) sum_t (Ū_t - 1/2)^2 )   over the T pool days with N_t >= 1,

    the statistic for a window of L2 days is

        T_rank = sqrt(L2) * (mean_{t in window} Ū_t - 1/2) / S_U  ~  N(0, 1),

    which for day 0 alone is Corrado's (Ū_0 - 1/2) / S_U. S_U is measured on
    the time series of cross-sectional mean ranks, so it carries the
    cross-correlation of same-day ranks.
    """
    n_windows = selectors.shape[0]
    length = est_ar.shape[-2]
    combined = np.concatenate([est_ar, event_ar], axis=-2)
    order = np.argsort(combined, axis=-2, kind="stable")  # sorted once; each window's pool is a subset
    sorted_at = _flat_positions(order)  # where each sorted value sits in the original array
    ordered = np.take(combined, sorted_at)
    inverse = np.empty(order.size, dtype=np.int64)  # where each original value sits in the sorted array
    inverse[sorted_at.ravel()] = np.arange(order.size)
    inverse = inverse.reshape(order.shape)
    tied = ordered[..., 1:, :] == ordered[..., :-1, :]
    present_sorted = np.isfinite(ordered)
    shape = (*combined.shape[:-2], n_windows)
    stat = np.full(shape, np.nan)
    l2 = np.zeros(shape)
    s_u = np.zeros(shape)
    for w in range(n_windows):  # one rank pool per window: windows are few
        in_pool = np.concatenate([np.ones(length, dtype=bool), selectors[w] > 0])
        ranks, count = _subset_ranks(ordered, inverse, tied, in_pool[order] & present_sorted)
        u = ranks / (count + 1.0)
        present = np.isfinite(u)
        n_t = present.sum(axis=-1)
        u_bar = np.where(present, u, 0.0).sum(axis=-1) / np.where(n_t > 0, n_t, np.nan)
        pool_days = (n_t > 0).sum(axis=-1)
        s_u[..., w] = np.sqrt(np.nansum((u_bar - 0.5) ** 2, axis=-1) / np.maximum(pool_days, 1))
        window_bar = u_bar[..., length:][..., selectors[w] > 0]
        l2[..., w] = np.isfinite(window_bar).sum(axis=-1)
        mean_u = np.nansum(window_bar, axis=-1) / np.where(l2[..., w] > 0, l2[..., w], np.nan)
        stat[..., w] = np.sqrt(l2[..., w]) * (mean_u - 0.5) / np.where(s_u[..., w] > 0, s_u[..., w], np.nan)
    n = np.broadcast_to(np.isfinite(event_ar).any(axis=-2).sum(axis=-1)[..., None], stat.shape)
    note = _notes(stat.shape)
    _explain(note, n < 1, "no ticker in the basket")
    _explain(note, l2 < 1, "no abnormal return in the window")
    _explain(note, ~(s_u > 0), "the mean ranks do not vary: S_U = 0")
    return _finalize("corrado_rank", stat, normal_pvalue(stat), n, note)


def grank_t(car: np.ndarray, se: np.ndarray, est_ar: np.ndarray, df: np.ndarray) -> TestArrays:
    """Kolari & Pynnönen (2011) generalized rank test (GRANK-T) for CARs.

    Notes
    -----
    Shapes: ``car`` and ``se`` (..., windows, N); ``est_ar`` the
    estimation-window residuals (..., L, N), NaN on unused days; ``df``
    (..., N). Returns (..., windows). Kolari, J. W. and Pynnönen, S. (2011),
    "Nonparametric rank tests for event studies", Journal of Empirical
    Finance 18(5), 953-971, section 2:

    * standardized abnormal returns SAR_it = e_it / s_i on the estimation
      days, s_i^2 = sum_t e_it^2 / df_i; SCAR_i = CAR_i / S_CAR_i
      (:func:`standardized_cars`);
    * re-standardized for event-induced volatility, SCAR*_i = SCAR_i / S_SCAR,
      S_SCAR the cross-sectional sd (ddof 1) of the SCAR_i;
    * generalized standardized abnormal returns: GSAR_it = SAR_it on the
      estimation days and GSAR_i0 = SCAR*_i, the whole window as one day 0;
    * demeaned standardized ranks over each series' T_i = L_i + 1 values,
      U_it = rank(GSAR_it) / (T_i + 1) - 1/2 (ties averaged);
    * with Ū_t the mean of U_it over the n_t members present on day t, N the
      members and T the days with n_t >= 1 (estimation days and day 0),

        S_Ū = sqrt( (1/T) sum_t (n_t / N) Ū_t^2 ),   Z = Ū_0 / S_Ū,
        t_grank = Z sqrt( (T - 2) / (T - 1 - Z^2) )  ~  Student t(T - 2).

    S_Ū comes from the time series of cross-sectional mean ranks, so it
    carries the cross-correlation of same-day ranks; SCAR* makes the event
    rank immune to event-induced volatility; one rank per window makes
    multi-day CARs as well specified as day 0. The rank pool is the
    estimation window plus this window only, whatever other windows the
    config has.
    """
    s = np.sqrt(np.nansum(est_ar**2, axis=-2) / np.where(df > 0, df, np.nan))  # (..., N)
    sar = est_ar / np.where(s > 0, s, np.nan)[..., None, :]
    scar = standardized_cars(car, se)
    n, _, sd_scar, _ = _moments(scar)  # (..., windows)
    gsar0 = scar / np.where(sd_scar > 0, sd_scar, np.nan)[..., None]  # (..., windows, N)
    est_rank = average_ranks(sar, axis=-2)  # (..., L, N), NaN where missing
    stat = np.full(n.shape, np.nan)
    days = np.zeros(n.shape, dtype=int)
    valid_any = np.isfinite(sar)
    last_member = None
    for w in range(n.shape[-1]):  # one small pass per window: windows are few
        g = gsar0[..., w, :]  # (..., N)
        member = np.isfinite(g)
        if last_member is None or not np.array_equal(member, last_member):  # mostly the same members every window
            valid = valid_any & member[..., None, :]
            count = valid.sum(axis=-2) + 1  # T_i
            valid_days = valid.sum(axis=-1)
            last_member = member
        lower = sar < g[..., None, :]
        equal = sar == g[..., None, :]
        below = (valid & lower).sum(axis=-2)
        # Adding day 0 lifts every estimation rank above it by one (by a half for a tie: seldom any).
        if equal.any():
            ties = (valid & equal).sum(axis=-2)
            shift = np.where(lower, 0.0, np.where(equal, 0.5, 1.0))
        else:
            ties = np.zeros_like(below)
            shift = np.where(lower, 0.0, 1.0)
        u_est = np.where(valid, (est_rank + shift) / (count[..., None, :] + 1.0) - 0.5, 0.0)  # 0 where missing
        u0 = np.where(member, (1.0 + below + 0.5 * ties) / (count + 1.0) - 0.5, 0.0)
        # per day t (the estimation days, then day 0): the members present and the mean of their U_it
        n_t = np.concatenate([valid_days, member.sum(axis=-1)[..., None]], axis=-1)
        u_sum = np.concatenate([u_est, u0[..., None, :]], axis=-2).sum(axis=-1)  # one array: its layout sets the order
        u_bar = u_sum / np.where(n_t > 0, n_t, np.nan)
        n_members = member.sum(axis=-1)
        t_days = (n_t > 0).sum(axis=-1)
        s_u = np.sqrt(
            np.nansum(n_t / np.where(n_members > 0, n_members, np.nan)[..., None] * u_bar**2, axis=-1)
            / np.maximum(t_days, 1)
        )
        z = u_bar[..., -1] / np.where(s_u > 0, s_u, np.nan)
        room = t_days - 1 - z**2
        stat[..., w] = z * np.sqrt((t_days - 2) / np.where(room > 0, room, np.nan))
        days[..., w] = t_days
    note = _notes(n.shape)
    _explain(note, n < 2, lambda i: f"needs at least 2 tickers to re-standardize their CARs; the basket has {n[i]}")
    _explain(note, _zero_spread(sd_scar, np.nanmax(np.abs(scar), axis=-1, initial=0.0)),
             "all standardized CARs are equal: zero cross-sectional variance")
    _explain(note, days < 3, "fewer than 3 days with a rank")
    return _finalize("grank_t", stat, two_sided_t_pvalue(stat, np.maximum(days - 2, 1)), n, note)


def _positive_share(est_ar: np.ndarray) -> np.ndarray:
    """Each series' share of positive estimation-window ARs, (..., 1, N) for ``est_ar`` (..., L, N)."""
    valid = np.isfinite(est_ar)
    days = valid.sum(axis=-2)
    share = (valid & (est_ar > 0)).sum(axis=-2) / np.where(days > 0, days, np.nan)
    return share[..., None, :]


def generalized_sign(cars: np.ndarray, est_ar: np.ndarray) -> TestArrays:
    """Cowan (1992) generalized sign test.

    Notes
    -----
    p̂ = (1/N) sum_i (1/L_i) sum_t 1[AR_it > 0] over each series' L_i
    estimation-window ARs (``est_ar`` (..., L, N)) is the share of positive
    ARs expected without an event; with w the number of the N CARs
    (``cars`` (..., windows, N)) that are positive,

        Z = (w - N p̂) / sqrt(N p̂ (1 - p̂))  ~  N(0, 1).
    """
    return generalized_sign_from_shares(cars, _positive_share(est_ar), "no ticker in the basket")


def generalized_sign_from_shares(cars: np.ndarray, share: np.ndarray, empty: str) -> TestArrays:
    """Cowan's (1992) generalized sign test from each series' share of positive estimation-window ARs.

    ``share`` (..., 1, N) broadcasts against ``cars`` (..., windows, N);
    :func:`generalized_sign` computes it from the ARs, the request engine from
    its block sums. ``empty`` explains a cell with no series.
    """
    present = np.isfinite(cars) & np.isfinite(share)
    n = present.sum(axis=-1)
    p_hat = np.where(present, share, 0.0).sum(axis=-1) / np.maximum(n, 1)
    w = (present & (cars > 0)).sum(axis=-1)
    var = n * p_hat * (1.0 - p_hat)
    z = (w - n * p_hat) / np.sqrt(np.where(var > 0, var, np.nan))
    note = _notes(n.shape)
    _explain(note, n < 1, empty)
    _explain(note, ~(var > 0), lambda i: (
        f"the estimation-window share of positive abnormal returns is {p_hat[i]:.0%}: the sign test needs it "
        f"strictly between 0% and 100%"
    ))
    return _finalize("generalized_sign", z, normal_pvalue(z), n, note)


def sign_binomial(cars: np.ndarray, est_ar: np.ndarray) -> TestArrays:
    """Exact binomial sign test of the CARs, with Cowan's (1992) estimation-window share p̂.

    Notes
    -----
    Inputs as :func:`generalized_sign`: ``cars`` (..., windows, N),
    ``est_ar`` (..., L, N). Under H0 the number w of positive CARs among the
    N present is Binomial(N, p̂), p̂ the mean share of positive
    estimation-window ARs (which allows for the skew of daily returns, where
    0.5 would not). The two-sided p-value is exact, the total probability of
    the outcomes no more likely than w (the rule of
    ``scipy.stats.binomtest``):

        p = sum_{k=0..N} P(k) 1[P(k) <= P(w) (1 + 1e-7)],  P = Binomial(N, p̂) pmf,

    so it is valid at any N, where :func:`generalized_sign`'s normal
    approximation is not (it cannot reach 5% below N = 5). The statistic is
    the signed excess w - N p̂, so its direction compares with the CAAR's.
    """
    share = _positive_share(est_ar)
    present = np.isfinite(cars) & np.isfinite(share)
    n = present.sum(axis=-1)
    p_hat = np.where(present, share, 0.0).sum(axis=-1) / np.maximum(n, 1)
    w = (present & (cars > 0)).sum(axis=-1)
    ok = (n >= 1) & (p_hat > 0) & (p_hat < 1)
    p_null = np.where(ok, p_hat, 0.5)[..., None]
    k = np.arange(int(n.max(initial=0)) + 1)
    pmf = binomial_pmf(k, n[..., None], p_null)  # zero for k > n
    observed = binomial_pmf(w, n, p_null[..., 0])
    p = np.minimum(np.where(pmf <= observed[..., None] * (1 + 1e-7), pmf, 0.0).sum(axis=-1), 1.0)
    note = _notes(n.shape)
    _explain(note, n < 1, "no ticker in the basket")
    _explain(note, ~ok, lambda i: (
        f"the estimation-window share of positive abnormal returns is {p_hat[i]:.0%}: the sign test needs it "
        f"strictly between 0% and 100%"
    ))
    return _finalize("sign_binomial", w - n * p_hat, p, n, note)


def wilcoxon(cars: np.ndarray) -> TestArrays:
    """Wilcoxon (1945) signed-rank test of H0: the CARs are symmetric about 0.

    Notes
    -----
    Statistic W+ = sum of the ranks of |CAR_i| over the positive CARs (zero
    CARs dropped, ties averaged), mean N(N+1)/4 under H0. p-value from
    :func:`signed_rank_pvalue`, as ``scipy.stats.wilcoxon`` (zero_method
    "wilcox", method "auto") gives it for each cell: the exact null
    distribution for up to 50 untied non-zero CARs, the normal approximation
    above that. ``cars`` is (..., N).
    """
    present = np.isfinite(cars)
    nonzero = present & (cars != 0)
    count = nonzero.sum(axis=-1)
    if cars.shape[-1]:
        w_plus, p = _signed_rank(np.where(nonzero, cars, np.nan).reshape(-1, cars.shape[-1]))
        w_plus, p = w_plus.reshape(count.shape), p.reshape(count.shape)
    else:
        w_plus, p = np.zeros(count.shape), np.full(count.shape, np.nan)
    ok = count >= 1
    note = _notes(count.shape)
    _explain(note, present.sum(axis=-1) < 1, "no ticker in the basket")
    _explain(note, ~ok, "every CAR is exactly zero")
    return _finalize("wilcoxon", w_plus, p, present.sum(axis=-1), note)


# --------------------------------------------------------------------------- portfolio test


def equal_weighted(returns: np.ndarray) -> np.ndarray:
    """The equal-weighted basket return per row: the mean over the members with a return that day (last axis)."""
    present = np.isfinite(returns)
    count = present.sum(axis=-1)
    return np.where(present, returns, 0.0).sum(axis=-1) / np.where(count > 0, count, np.nan)


def portfolio_t(
    model: ModelName,
    basket_est: np.ndarray,
    market_est: np.ndarray,
    basket_event: np.ndarray,
    market_event: np.ndarray,
    rel_days: np.ndarray,
    windows: Sequence[Window],
    members: np.ndarray,
) -> TestArrays:
    """Portfolio time-series t test (Jaffe 1974), immune to cross-correlation.

    Notes
    -----
    The equal-weighted basket return R_p,t (:func:`equal_weighted`) is run
    through the same model as the stocks: fitted on the estimation window
    (``basket_est`` (L x B), regressors ``market_est`` (L x B [x q])), its
    CAR_p over each window has MacKinlay's (1997, eq. 10-11) variance
    S_p^2 (L2 + v'(X'X)^-1 v), and t = CAR_p / S_p ~ Student t with the
    portfolio fit's residual degrees of freedom. A shared shock moves R_p on
    that day only, so S_p, measured on R_p's own history, already contains
    the stocks' covariance. ``basket_event`` is (W x B) over ``rel_days``;
    ``members`` (B,) the N of each basket. Returns arrays of shape (B, windows).
    """
    fitted = fit(model, basket_est, market_est)
    ar = abnormal_returns(fitted, basket_event, market_event, rel_days)
    with np.errstate(divide="ignore", invalid="ignore"):  # an unfittable basket: explained in its note below
        stats = car_stats(fitted, ar, list(windows))
        t = (stats.car / stats.se).T
    df = np.broadcast_to(fitted.df[:, None], t.shape)
    n = np.broadcast_to(np.asarray(members)[:, None], t.shape)
    note = _notes(t.shape)
    # A residual variance that is zero up to rounding (a flat basket) is no variance.
    size = np.nanmean(np.where(np.isfinite(basket_est), basket_est, np.nan) ** 2, axis=0)
    fitted_ok = (
        np.isfinite(fitted.s2) & (fitted.s2 > 1e-20 * size) & np.isfinite(fitted.params).all(axis=1) & (fitted.df > 0)
    )
    _explain(note, n < 1, "no ticker in the basket")
    _explain(note, ~fitted_ok[:, None], lambda i: (
        f"the basket's return series cannot be fitted over the estimation window ({int(fitted.n[i[0]])} valid days)"
    ))
    _explain(note, ~np.isfinite(stats.car.T), "the basket's return series has a gap in the window")
    result = _finalize("portfolio_t", t, two_sided_t_pvalue(t, np.where(df > 0, df, 1)), n, note)
    context = np.array([f"{int(d)} residual degrees of freedom" for d in fitted.df], dtype=object)[:, None]
    return _with_context(result, context)


def std_portfolio_t(car: np.ndarray, se: np.ndarray, est_ar: np.ndarray, df: np.ndarray) -> TestArrays:
    """Inverse-variance portfolio t with an event-induced variance term.

    Notes
    -----
    Shapes: ``car`` and ``se`` (..., windows, N), MacKinlay (1997) S_CAR as
    in :func:`standardized_cars`; ``est_ar`` the estimation-window residuals
    (..., L, N), NaN on unused days; ``df`` (..., N) their residual degrees of
    freedom. Returns (..., windows).

    The portfolio weights each member by its inverse residual variance,
    w_i = s_i^-2 / sum_j s_j^-2, s_i^2 = sum_t e_it^2 / df_i (the weights of
    the minimum-variance portfolio of independent stocks, as Patell's
    standardization), so CAR_p = sum_i w_i CAR_i. Its variance has two parts:

    * from the portfolio's own estimation-window series (Brown & Warner 1985,
      "crude dependence adjustment"): e_p,t = sum_i w_i e_it / sum_i w_i over
      the members present on day t, s_p^2 its sample variance (ddof 1) over
      its L_p days, which contains the members' covariances whatever they
      are; scaled to the window by H = sum w_i^2 S_CAR_i^2 / sum w_i^2 s_i^2
      (the window's length in days, inflated for estimation error as in
      S_CAR): V_base = H s_p^2;
    * the event-induced variance (Boehmer, Musumeci & Poulsen 1991): the
      cross-sectional variance D_event of SCAR_i = CAR_i / S_CAR_i (ddof 1)
      against the same on the estimation days, D_est = mean_t of the
      cross-sectional variance of e_it / sqrt(sum_t e_it^2 / L_i) (days with
      2+ members). Without an event both are 1 - (correlation), since a
      shared shock does not spread the cross-section; the excess is the
      event's extra variance per unit of S_CAR^2, floored at zero:
      V_event = max(D_event - D_est, 0) sum_i w_i^2 S_CAR_i^2.

        t = CAR_p / sqrt(V_base + V_event),

    p from Student's t with Welch-Satterthwaite (1946) degrees of freedom

        nu = (V_base + V_event)^2 / (V_base^2 / (L_p - 1) + (D_event sum_i w_i^2 S_CAR_i^2)^2 / (N - 1)),

    the second term only where the excess is positive: D_event, a variance
    over N - 1 degrees of freedom, carries V_event's noise. The
    statistic's sign is the weighted CAR_p's, which can differ from the
    equal-weighted CAAR's.
    """
    present_est = np.isfinite(est_ar)
    sq = np.where(present_est, est_ar, 0.0) ** 2
    days_i = present_est.sum(axis=-2)
    s2 = sq.sum(axis=-2) / np.where(df > 0, df, np.nan)  # (..., N)
    member = np.isfinite(car) & np.isfinite(se) & (se > 0) & (s2 > 0)[..., None, :]  # (..., windows, N)
    n = member.sum(axis=-1)
    u = np.where(member, 1.0 / np.where(s2 > 0, s2, 1.0)[..., None, :], 0.0)
    w = u / np.where(n > 0, u.sum(axis=-1), 1.0)[..., None]
    car_p = (w * np.where(member, car, 0.0)).sum(axis=-1)
    se2 = np.where(member, se, 0.0) ** 2
    w2_se2 = (w**2 * se2).sum(axis=-1)
    w2_s2 = (w**2 * np.where(member, s2[..., None, :], 0.0)).sum(axis=-1)

    # The portfolio's estimation-window series, per window (its members may differ by window).
    e = np.where(present_est, est_ar, 0.0)
    weight_sum = u @ np.swapaxes(present_est, -1, -2).astype(float)  # (..., windows, L)
    e_p = (u @ np.swapaxes(e, -1, -2)) / np.where(weight_sum > 0, weight_sum, np.nan)
    days_p = np.isfinite(e_p).sum(axis=-1)
    e_mean = np.nansum(e_p, axis=-1) / np.maximum(days_p, 1)
    s2_p = np.nansum((e_p - e_mean[..., None]) ** 2, axis=-1) / np.maximum(days_p - 1, 1)
    v_base = w2_se2 / np.where(w2_s2 > 0, w2_s2, np.nan) * s2_p

    # Excess cross-sectional dispersion of the standardized CARs over the estimation window's.
    _, _, sd_scar, _ = _moments(np.where(member, car / np.where(member, se, 1.0), np.nan))
    z = np.where(present_est, est_ar / np.sqrt(sq.sum(axis=-2) / np.maximum(days_i, 1))[..., None, :], np.nan)
    day_n, _, day_sd, _ = _moments(z)  # per estimation day: (..., L)
    enough = day_n >= 2
    spread_days = enough.sum(axis=-1)
    d_est = np.where(enough, day_sd**2, 0.0).sum(axis=-1) / np.where(spread_days > 0, spread_days, np.nan)
    excess = np.maximum(sd_scar**2 - d_est[..., None], 0.0)
    v_event = excess * w2_se2
    v = v_base + v_event
    t = car_p / np.sqrt(np.where(v > 0, v, np.nan))
    event_spread = np.where(excess > 0, sd_scar**2 * w2_se2, 0.0)  # D_event sum w^2 S_CAR^2: V_event's noise
    dof = v**2 / (v_base**2 / np.maximum(days_p - 1, 1) + event_spread**2 / np.maximum(n - 1, 1))
    note = _notes(t.shape)
    _explain(note, n < 2, lambda i: (
        f"needs at least 2 tickers to measure the event's dispersion; the basket has {n[i]}"
    ))
    _explain(note, days_p < 3, "the portfolio has fewer than 3 estimation-window returns")
    _explain(note, ~(v > 0), "the portfolio's estimation-window residuals do not vary: zero variance")
    result = _finalize("std_portfolio_t", t, two_sided_t_pvalue(t, np.where(dof > 0, dof, 1.0)), n, note)
    context = np.empty(t.shape, dtype=object)
    for index in np.ndindex(t.shape):
        context[index] = (
            f"event-induced variance term {v_event[index] / v[index]:.0%} of the total; "
            f"{dof[index]:.0f} degrees of freedom" if np.isfinite(t[index]) else ""
        )
    return _with_context(result, context)


# --------------------------------------------------------------------------- placebo tests


def placebo_test(test: str, actual: np.ndarray, draws: np.ndarray, n: np.ndarray, context: str = "") -> TestArrays:
    """Empirical two-sided p-value of ``actual`` against its placebo-date distribution.

    Notes
    -----
    With K_valid pseudo-event days on which the statistic is defined (NaN
    draws are skipped), ``draws`` (K, ...):

        p = (1 + #{k : |stat_k| >= |stat_actual|}) / (K_valid + 1),

    the Monte Carlo p-value that counts the actual date as one more draw
    (Davison & Hinkley 1997, ch. 4), so it is never 0. The pseudo-days are
    distinct (drawn without replacement, :func:`evstudy.placebo.draw_days`),
    so the floor 1 / (K_valid + 1) is set by real evidence. The reported
    statistic is the actual one. ``actual`` (...), ``draws`` (K, ...).
    """
    actual = np.asarray(actual, dtype=float)
    valid = np.isfinite(draws)
    k = valid.sum(axis=0)
    exceed = (valid & (np.abs(np.where(valid, draws, 0.0)) >= np.abs(actual))).sum(axis=0)
    p = (1.0 + exceed) / (k + 1.0)
    note = _notes(actual.shape)
    n = np.broadcast_to(n, actual.shape)
    _explain(note, n < 1, "no ticker in the basket")
    _explain(note, ~np.isfinite(actual), "the actual statistic is undefined (see its own test row)")
    _explain(note, k < 1, (
        "no usable pseudo-event day: on none of the days drawn did the basket have tickers with enough clean "
        "data (the prices may not reach far enough back)"
    ))
    result = _finalize(test, actual, p, n, note)
    contexts = np.array([
        f"{context}; {int(v):,} draw{'' if v == 1 else 's'} usable" if context
        else f"{int(v):,} usable pseudo-event day{'' if v == 1 else 's'}"
        for v in np.ravel(k)
    ], dtype=object).reshape(np.shape(k))
    return _with_context(result, contexts)


def undefined(test: str, shape: tuple[int, ...], n: np.ndarray | int, reason: str) -> TestArrays:
    """A test that was not run, e.g. the placebo tests when ``placebo_dates = 0``."""
    return TestArrays(test, np.full(shape, np.nan), np.full(shape, np.nan), np.broadcast_to(n, shape).astype(int),
                      np.full(shape, reason, dtype=object))


# --------------------------------------------------------------------------- the battery


@dataclass(frozen=True)
class CrossSection:
    """What the cross-sectional tests need for one basket (or a batch of baskets).

    The last axis is the members (NaN = absent). ``car`` and ``se`` are
    (..., windows, N); ``df`` (..., N); ``est_ar`` the estimation-window
    residuals (..., L, N); ``event_ar`` the event-span ARs (..., W, N);
    ``selectors`` (windows x W) from :func:`~evstudy.abnormal.window_selectors`.
    """

    car: np.ndarray
    se: np.ndarray
    df: np.ndarray
    est_ar: np.ndarray
    event_ar: np.ndarray
    selectors: np.ndarray

    @property
    def scar(self) -> np.ndarray:
        return standardized_cars(self.car, self.se)


# From this many estimation-window residuals (series x days; ~1,000 tickers) Corrado's rank test runs in a
# thread beside the rest of the battery: its sort and gathers release the GIL, and a thread's start-up
# (~0.1 ms) is nothing next to its ~0.25 s at 5,000 tickers. One thread, not one per test: more threads
# traded the GIL back and forth for no gain (benchmarks/README.md).
THREADED_RESIDUALS = 250_000


def cross_section_tests(data: CrossSection) -> dict[str, TestArrays]:
    """The tests computed from the members' own CARs and residuals, each (..., windows).

    For a large basket (:data:`THREADED_RESIDUALS`) on two CPUs or more, Corrado's test runs in a
    second thread while this one computes the others: the same numbers, sooner on a machine with a
    free core.
    """
    corrado = (data.est_ar, data.event_ar, data.selectors)
    if data.est_ar.size >= THREADED_RESIDUALS and _cpus() >= 2:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # in a copy of this context: the caller's np.errstate holds there too
            pending = pool.submit(contextvars.copy_context().run, corrado_rank, *corrado)
            tests = _other_cross_section_tests(data)
            tests["corrado_rank"] = pending.result()
    else:
        tests = _other_cross_section_tests(data)
        tests["corrado_rank"] = corrado_rank(*corrado)
    return {name: tests[name] for name in TEST_IDS if name in tests}  # in the battery's order


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _other_cross_section_tests(data: CrossSection) -> dict[str, TestArrays]:
    """:func:`cross_section_tests` but Corrado's test."""
    scar = data.scar
    df = data.df[..., None, :]
    rbar, pairs = mean_residual_correlation(data.est_ar)
    rbar, pairs = rbar[..., None], pairs[..., None]
    return {
        "cs_t": cs_t(data.car),
        "patell_z": patell_z(scar, df),
        "bmp_t": bmp_t(scar),
        "kp_patell_z": kp_patell_z(scar, df, rbar, pairs),
        "kp_bmp_t": kp_bmp_t(scar, rbar, pairs),
        "grank_t": grank_t(data.car, data.se, data.est_ar, data.df),
        "generalized_sign": generalized_sign(data.car, data.est_ar),
        "sign_binomial": sign_binomial(data.car, data.est_ar),
        "wilcoxon": wilcoxon(data.car),
        "std_portfolio_t": std_portfolio_t(data.car, data.se, data.est_ar, data.df),
    }
