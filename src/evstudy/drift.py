"""Pre-event drift: each series' abnormal returns and CAR over a window before day 0.

News often reaches prices before its official day 0: a leak or a press report
(Lithium Americas rose 95.8% on 2025-09-24, a week before the government stake
was announced). The drift window (``drift_window``, [-20,-1] by default)
applies the event's fitted model to those days, so a run-up shows as a large
pre-event CAR instead of hiding in the estimation window or before the event
windows. Pure computation on arrays the engine already holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evstudy.abnormal import abnormal_returns, car_stats
from evstudy.config import Window
from evstudy.models import ModelFit
from evstudy.results import AR_COLUMNS, DRIFT_COLUMNS
from evstudy.tables import Rows


def pre_event_drift(
    event_id: str,
    window: Window,
    fitted: ModelFit,
    stock: np.ndarray,
    regressors: np.ndarray,
    offset: np.ndarray,
    days: pd.DatetimeIndex,
    i0: int,
    tickers: list[str],
    benchmarks: list[str],
) -> tuple[Rows, Rows]:
    """Daily ARs (``AR_COLUMNS`` layout) and the CAR per series (``DRIFT_COLUMNS``) over ``window``.

    ``stock`` (days x series, in the order of ``fitted``), ``regressors``
    (days x series, or days x series x q) and ``offset`` are the whole panel
    of returns and model inputs (:class:`evstudy.models.ModelInputs`), ``i0``
    the row of day 0. A series with a missing
    return in the window gets no CAR (NaN, shown as null) and a note naming the
    day; days before the data starts count as missing.

    Notes
    -----
    AR_t = R_t - E[R_t | model fitted on the estimation window], CAR = sum of
    AR_t over the window, with MacKinlay's (1997, eq. 10-11) variance
    s^2 (L + 1'X*(X'X)^-1 X*'1). That variance assumes the window lies outside
    the estimation window; where the two overlap the ARs are in-sample
    residuals (pulled towards zero, their variance smaller), which the caller
    states as a caveat (``StudyConfig.drift_overlap``).
    """
    rel = np.arange(window.start, window.end + 1)
    rows = i0 + rel
    present = rows >= 1  # row 0 of the panel has no return
    n_series = stock.shape[1]
    stock_w = np.full((len(rel), n_series), np.nan)
    x_w = np.full((len(rel), *regressors.shape[1:]), np.nan)
    offset_w = np.full((len(rel), n_series), np.nan)
    stock_w[present] = stock[rows[present]]
    x_w[present] = regressors[rows[present]]
    offset_w[present] = offset[rows[present]]
    dates = np.where(present, days.to_numpy()[np.maximum(rows, 0)], np.datetime64("NaT"))  # one take, not 20 boxes

    ar = abnormal_returns(fitted, stock_w, x_w, rel, offset=offset_w)
    stats = car_stats(fitted, ar, [window])
    x_ok = np.isfinite(x_w) if x_w.ndim == 2 else np.isfinite(x_w).all(axis=-1)
    complete = np.isfinite(stock_w) & x_ok & np.isfinite(offset_w)
    ok = complete.all(axis=0)
    notes = [""] * n_series
    for k in np.flatnonzero(~ok):  # only series with a gap, to name its days
        gaps = np.flatnonzero(~complete[:, k])
        named = [
            f"{np.datetime_as_string(dates[i], unit='D')} (day {rel[i]:+d})" if present[i]
            else f"day {rel[i]:+d} (before the data starts)"
            for i in gaps[:3]
        ]
        more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
        notes[k] = f"no CAR: no return on {', '.join(named)}{more} in the drift window {window.label}"

    def masked(values: np.ndarray) -> np.ndarray:
        return np.where(ok, values[0], np.nan)

    drift = Rows.of(DRIFT_COLUMNS, n_series, {
        "event": event_id,
        "ticker": np.array(tickers, dtype=object),
        "benchmark": np.array(benchmarks, dtype=object),
        "window_start": window.start,
        "window_end": window.end,
        "car": masked(stats.car),
        "se": masked(stats.se),
        "t": masked(stats.t),
        "p_value": masked(stats.p_value),
        "note": np.array(notes, dtype=object),
    }, repeat_text=True)
    daily = Rows.of(AR_COLUMNS, n_series * len(rel), {
        "event": event_id,
        "ticker": np.tile(np.array(tickers, dtype=object), len(rel)),
        "benchmark": np.tile(np.array(benchmarks, dtype=object), len(rel)),
        "date": np.repeat(dates, n_series),
        "rel_day": np.repeat(rel, n_series),
        "return": ar.actual.ravel(),
        "expected_return": ar.expected.ravel(),
        "abnormal_return": ar.abnormal.ravel(),
    }, repeat_text=True)
    return daily, drift
