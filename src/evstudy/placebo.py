"""Placebo-date inference: the study's own procedure re-run on pseudo-event days.

When every stock of a basket shares one event day, their abnormal returns are
cross-correlated and the textbook tests' null distributions are wrong. The
placebo test asks the data instead: how often does the same basket, under the
same model, windows and exclusion rules, show a CAAR (or a BMP t) at least as
large on days when nothing happened? Pseudo-event days are drawn from the
:data:`PLACEBO_LOOKBACK` sessions before the estimation window, skipping any
day whose event span would contain a real event or confounder of the config.

Everything is vectorized over pseudo-dates AND series: the (pseudo-day,
series) pairs become the columns of (days x columns) stacks that go through
:func:`evstudy.models.fit` and :func:`evstudy.abnormal.car_stats` in chunks,
each distinct pair once. Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evstudy.abnormal import abnormal_returns, car_stats
from evstudy.config import ModelName, Window
from evstudy.inference import bmp_t, standardized_cars
from evstudy.models import fit

PLACEBO_LOOKBACK = 504  # two years of trading days before the estimation window
CHUNK_COLUMNS = 8192  # (pseudo-day, series) columns fitted at once: ~300 MB of temporaries


def lookback_offset(estimation: Window, lookback: int = PLACEBO_LOOKBACK) -> int:
    """The earliest trading day, relative to day 0, that the placebo needs: the first pseudo-day's estimation start."""
    return (estimation.start - lookback) + estimation.start


def candidate_days(
    day0: int, estimation: Window, span: Window, blocked: Sequence[int], lookback: int = PLACEBO_LOOKBACK
) -> np.ndarray:
    """Rows that may serve as a pseudo day 0.

    The ``lookback`` rows before the estimation window, [day0 + est.start -
    lookback, day0 + est.start - 1], that have a full event span inside the
    data (first row >= 1) and whose event span [d + span.start, d + span.end]
    contains none of the ``blocked`` rows (events' day 0s and confounders).
    """
    rows = np.arange(day0 + estimation.start - lookback, day0 + estimation.start)
    rows = rows[rows + span.start >= 1]
    blocked_rows = np.asarray(sorted(set(blocked)), dtype=int)
    if blocked_rows.size:
        first = np.searchsorted(blocked_rows, rows + span.start, side="left")
        last = np.searchsorted(blocked_rows, rows + span.end, side="right")
        rows = rows[last == first]
    return rows


def draw_days(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` pseudo day-0 rows drawn uniformly with replacement from ``candidates``.

    With replacement, so that K may exceed the (at most ``PLACEBO_LOOKBACK``)
    candidates: the empirical p-value is then a Monte Carlo estimate of the
    p-value over all candidate days, and a different seed gives a different
    estimate.
    """
    if len(candidates) == 0 or k <= 0:
        return np.empty(0, dtype=int)
    return rng.choice(candidates, size=k, replace=True)


@dataclass(frozen=True)
class SeriesPlacebo:
    """Per (pseudo-day, series): CAR and SCAR per window, NaN where the series is excluded that day.

    ``car`` and ``scar`` are (D, windows, S) for ``day0`` (D, S).
    """

    day0: np.ndarray
    car: np.ndarray
    scar: np.ndarray

    @property
    def usable(self) -> np.ndarray:
        """(D, S): whether each series passes the study's exclusion rules at each pseudo-day."""
        return np.isfinite(self.car[:, 0, :])


def _gather(panel: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """panel[rows, cols] for rows (R x C) and cols (C,), NaN where a row is before the data."""
    out = panel[np.clip(rows, 0, None), cols[None, :]]
    before = rows < 0
    if before.any():
        out = out.copy()
        out[before] = np.nan
    return out


def series_placebo(
    model: ModelName,
    stock: np.ndarray,
    regressors: np.ndarray,
    stock_cols: np.ndarray,
    regressor_cols: np.ndarray,
    day0: np.ndarray,
    *,
    estimation: Window,
    span: Window,
    windows: Sequence[Window],
    min_returns: int,
    max_zero_share: float,
    chunk: int = CHUNK_COLUMNS,
) -> SeriesPlacebo:
    """CAR and SCAR of every series at every pseudo day 0, by the study's own procedure.

    ``stock`` is a (days x M) return panel and ``regressors`` the model's
    (days x M' [x q]) regressor panel; series s uses ``stock[:, stock_cols[s]]``
    and ``regressors[:, regressor_cols[s]]``. ``day0`` holds row positions:
    (D,) shared by every series or (D, S) per series. For each (day, series):
    fit ``model`` on the rows [d + est.start, d + est.end]; exclude the
    series, as the study does, if it has fewer than ``min_returns`` valid
    returns there, more than ``max_zero_share`` zero returns, an unfittable
    model, or a missing stock or regressor return in the event span; else
    CAR and S_CAR (MacKinlay 1997, eq. 10-11) per window and SCAR = CAR / S_CAR.
    Each distinct (day, stock column, regressor column) is computed once.
    """
    stock_cols = np.asarray(stock_cols, dtype=np.int64)
    regressor_cols = np.asarray(regressor_cols, dtype=np.int64)
    n_series = len(stock_cols)
    day0 = np.asarray(day0, dtype=np.int64)
    day0 = np.broadcast_to(day0[:, None] if day0.ndim == 1 else day0, (day0.shape[0], n_series))
    n_windows = len(windows)

    flat_day = day0.ravel()
    flat_stock = np.broadcast_to(stock_cols, day0.shape).ravel()
    flat_reg = np.broadcast_to(regressor_cols, day0.shape).ravel()
    key = (flat_day * (stock.shape[1] + 1) + flat_stock) * (regressors.shape[1] + 1) + flat_reg
    unique_key, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    u_day, u_stock, u_reg = flat_day[first], flat_stock[first], flat_reg[first]

    est_offsets = np.arange(estimation.start, estimation.end + 1)
    rel_days = np.arange(span.start, span.end + 1)
    car = np.full((n_windows, len(unique_key)), np.nan)
    se = np.full((n_windows, len(unique_key)), np.nan)
    for start in range(0, len(unique_key), chunk):
        part = slice(start, start + chunk)
        est_rows = u_day[part][None, :] + est_offsets[:, None]
        ev_rows = u_day[part][None, :] + rel_days[:, None]
        y_est = _gather(stock, est_rows, u_stock[part])
        x_est = _gather(regressors, est_rows, u_reg[part])
        y_ev = _gather(stock, ev_rows, u_stock[part])
        x_ev = _gather(regressors, ev_rows, u_reg[part])
        fitted = fit(model, y_est, x_est)
        valid = np.isfinite(y_est) & (np.isfinite(x_est) if x_est.ndim == 2 else np.isfinite(x_est).all(axis=-1))
        zero_share = (valid & (y_est == 0.0)).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
        x_ev_ok = np.isfinite(x_ev) if x_ev.ndim == 2 else np.isfinite(x_ev).all(axis=-1)
        usable = (
            (fitted.n >= min_returns)
            & (zero_share <= max_zero_share)
            & np.isfinite(fitted.s2) & (fitted.s2 > 0) & np.isfinite(fitted.params).all(axis=1)
            & x_ev_ok.all(axis=0) & np.isfinite(y_ev).all(axis=0)
        )
        stats = car_stats(fitted, abnormal_returns(fitted, y_ev, x_ev, rel_days), list(windows))
        car[:, part] = np.where(usable, stats.car, np.nan)
        se[:, part] = np.where(usable, stats.se, np.nan)

    shape = (day0.shape[0], n_series, n_windows)
    car_full = car.T[inverse].reshape(shape).transpose(0, 2, 1)
    se_full = se.T[inverse].reshape(shape).transpose(0, 2, 1)
    return SeriesPlacebo(day0, car_full, standardized_cars(car_full, se_full))


@dataclass(frozen=True)
class BasketPlacebo:
    """A basket's placebo distribution: per draw, the CAAR and BMP t per window and the tickers used."""

    caar: np.ndarray  # (D, windows), NaN where no member is usable
    bmp: np.ndarray  # (D, windows), NaN where the BMP t is undefined
    n: np.ndarray  # (D,)


def basket_placebo(series: SeriesPlacebo, columns: np.ndarray) -> BasketPlacebo:
    """Aggregate per-series placebo CARs into one basket's CAAR and BMP t per draw (last axis = members)."""
    car = series.car[..., columns]
    present = np.isfinite(car)
    count = present.sum(axis=-1)
    caar = np.where(present, car, 0.0).sum(axis=-1) / np.where(count > 0, count, np.nan)
    return BasketPlacebo(caar, bmp_t(series.scar[..., columns]).statistic, count[:, 0])
