"""The request-file engine: every firm-event at once, cost linear in firm-events.

Pure computation, no I/O. Each firm-event (one row of a request file) gets
its own day 0 on the benchmark's trading days and its own estimation and
event windows, read off a (tickers x days) close matrix. One compiled pass
per firm-event (:mod:`evstudy.kernels`) gathers its closes, divides its
returns, fits the model and measures its CARs with the single-event study's
own formulas (:func:`evstudy.models.fit`, :func:`evstudy.abnormal.car_stats`),
so a request row and ``evstudy run`` of the same firm and date agree.

The work is cut into *blocks* of firm-events (contiguous request dates).
A block needs only its tickers and its dates, so a distributed run can give
each block to a worker that reads only that slice of the price file
(:mod:`evstudy.scale`); the single-machine run processes the same blocks in
the same order, so both give the same numbers. A block returns per-firm-event
numbers and additive per-group sums (ranks for the Corrado test, standardized
residuals per day-0 cluster for the Kolari-Pynnönen r̄); :func:`combine`
turns them into groups.csv and tests.csv.

A firm in several events is one observation per event in every statistic:
the cross-section is the firm-events, never the tickers.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from evstudy._version import __version__
from evstudy import kernels
from evstudy.abnormal import two_sided_t_pvalue, window_selectors
from evstudy.config import Window
from evstudy.diagnostics import EXACT_FIT_REASON, exact_fit, flat_benchmark_reason
from evstudy.errors import DataSourceError, InsufficientDataError
from evstudy.inference import (
    TEST_LABELS, TestArrays, _explain, _finalize, _notes, bmp_t, cs_t, generalized_sign_from_shares, kp_bmp_t,
    kp_patell_z, normal_pvalue, patell_z, standardized_cars, wilcoxon,
)
from evstudy.models import ModelFit, alpha_beta, param_names
from evstudy.prices.base import PriceData
from evstudy.requests import DEFAULT_GROUP, EXCLUDED_COLUMNS, EventRequest, RequestConfig
from evstudy.returns import (
    GLITCH_MIN_CLOSE, GLITCH_SPIKE_FACTOR, price_glitches, trading_days,
)

ALL_GROUPS = "(all)"  # the group of every firm-event, added when the request has several groups
DEFAULT_BLOCK = 5_000  # firm-events per block: (block x 240 days) matrices of ~10 MB each
BLOCK_THREADS = 2  # blocks computed at once on one machine
DATE_MARGIN = 10
REQUEST_TESTS: tuple[str, ...] = (
    "cs_t", "patell_z", "bmp_t", "kp_patell_z", "kp_bmp_t", "corrado_rank", "generalized_sign", "wilcoxon",
    "clustered_cs_t", "clustered_bmp_t",
)
REQUEST_TEST_LABELS: dict[str, str] = {
    **TEST_LABELS,
    "kp_patell_z": "Patell Z, Kolari & Pynnönen (2010) correction for same-day-0 correlation",
    "kp_bmp_t": "BMP t, Kolari & Pynnönen (2010) correction for same-day-0 correlation",
    "clustered_cs_t": "cross-sectional t, variance clustered by day 0 (Cameron & Miller 2015)",
    "clustered_bmp_t": "BMP t, variance clustered by day 0 (Cameron & Miller 2015)",
}
CAR_FILE_COLUMNS = [
    "event_id", "ticker", "date", "day0", "group", "benchmark", "window_start", "window_end", "car", "se", "t",
    "p_value", "alpha", "beta", "sigma", "n_obs", "overlaps", "cluster_size", "label", "row",
]
GROUP_COLUMNS = [
    "group", "window_start", "window_end", "n", "n_firms", "n_days", "caar", "se", "median_car", "share_positive",
    "n_clustered", "largest_cluster",
]
GROUP_PATH_COLUMNS = ["group", "rel_day", "n", "caar", "se"]
REQUEST_TEST_COLUMNS = ["group", "window_start", "window_end", "test", "label", "statistic", "p_value", "n", "note"]


# --------------------------------------------------------------------------- the date range and day 0


def _reason_summary(excluded: pd.DataFrame, shown: int = 3) -> str:
    """The first rows' reasons, for an error when no row is left (no file is written then)."""
    if not len(excluded):
        return "the file has no data rows"
    first = "; ".join(f"row {r}: {why}" for r, why in zip(excluded["row"][:shown], excluded["reason"][:shown]))
    more = f" (and {len(excluded) - shown:,} more)" if len(excluded) > shown else ""
    return first + more


def request_dates(config: RequestConfig, request: EventRequest) -> tuple[dt.date, dt.date]:
    """Calendar dates that surely hold every session the request needs (see :func:`evstudy.scan.scan_dates`)."""
    if not len(request.rows):
        raise InsufficientDataError(
            f"request file {request.file}: no usable row — {_reason_summary(request.excluded)}"
        )
    est, span = config.estimation_window, config.event_span
    dates = request.rows["date"]
    back = (-est.start + 1 + DATE_MARGIN) * 7 // 5 + 21
    ahead = (max(span.end, 0) + DATE_MARGIN) * 7 // 5 + 21
    return (dates.min() - pd.Timedelta(days=back)).date(), (dates.max() + pd.Timedelta(days=ahead)).date()


@dataclass(frozen=True)
class Placed:
    """The request rows that could be placed on the calendar, with their day-0 row; the rest excluded."""

    rows: pd.DataFrame  # the request's ROW_COLUMNS + i0 (row of day 0 in `days`), day0, overlaps
    excluded: pd.DataFrame
    days: pd.DatetimeIndex


def _reasons(n: int) -> np.ndarray:
    return np.full(n, "", dtype=object)


def _set(reason: np.ndarray, mask: np.ndarray, make: Any) -> None:
    for i in np.flatnonzero(np.asarray(mask) & (reason == "")):
        reason[i] = make(i)


def _excluded(rows: pd.DataFrame, reason: np.ndarray) -> pd.DataFrame:
    bad = reason != ""
    sub = rows.loc[bad]
    return pd.DataFrame({
        "row": sub["row"].to_numpy(), "event_id": sub["event_id"].to_numpy(), "ticker": sub["ticker"].to_numpy(),
        "date": pd.DatetimeIndex(sub["date"]).strftime("%Y-%m-%d"), "group": sub["group"].to_numpy(),
        "reason": reason[bad],
    }, columns=EXCLUDED_COLUMNS)


def place(config: RequestConfig, request: EventRequest, days: pd.DatetimeIndex) -> Placed:
    """Day 0 of every row on the benchmark's trading days ``days``; rows whose windows leave the data excluded.

    Day 0 is the first trading day on or after the date (news before the open
    or during the session, or on a non-trading day), or the first trading day
    after it for news after the close: the rule of
    :func:`evstudy.calendar.locate_day_zero`, vectorized. Firm-events that
    overlap another event of the same firm (its event window inside their
    estimation or event window) are counted in ``overlaps``, and excluded
    with ``config.drop_overlaps``.
    """
    rows = request.rows
    n = len(rows)
    dates = rows["date"].to_numpy().astype("datetime64[ns]")
    stamps = days.to_numpy().astype("datetime64[ns]")
    after = (rows["timing"] == "after_close").to_numpy()
    i0 = np.where(after, np.searchsorted(stamps, dates, "right"), np.searchsorted(stamps, dates, "left"))
    est, span = config.estimation_window, config.event_span
    first, last = days[0].date(), days[-1].date()
    reason = _reasons(n)
    _set(reason, (dates < stamps[0]) | (dates > stamps[-1]), lambda i: (
        f"date {pd.Timestamp(dates[i]).date()} is outside the price data ({first} to {last})"
    ))
    _set(reason, i0 >= len(days), lambda i: (
        f"day 0 after {pd.Timestamp(dates[i]).date()} is beyond the data (ends {last})"
    ))
    _set(reason, i0 + span.end >= len(days), lambda i: (
        f"the event window runs to day {span.end:+d} but the data ends {last}, {len(days) - 1 - i0[i]} trading "
        f"days after day 0 {days[i0[i]].date()}"
    ))
    _set(reason, i0 + span.start < 1, lambda i: (
        f"the event window starts at day {span.start:+d} but the data starts {first}, {i0[i]} trading days before "
        f"day 0 {days[i0[i]].date()}"
    ))
    available = i0 + est.end + 1 - np.maximum(i0 + est.start, 1)
    _set(reason, available < config.min_estimation_returns, lambda i: (
        f"the estimation window {est.label} holds only {max(int(available[i]), 0)} trading days of data (the data "
        f"starts {first}), fewer than min_estimation_returns {config.min_estimation_returns}"
    ))
    ok = reason == ""
    overlaps = np.zeros(n, dtype=np.int64)
    overlaps[ok] = _overlap_counts(rows["ticker"].to_numpy()[ok], i0[ok], est, span)
    if config.drop_overlaps:
        _set(reason, overlaps > 0, lambda i: (
            f"overlaps {overlaps[i]} other event(s) of {rows['ticker'].iat[i]} within its estimation or event window "
            f"(drop_overlaps is on)"
        ))
    ok = reason == ""
    kept = rows.loc[ok].reset_index(drop=True)
    kept["i0"] = i0[ok]
    kept["day0"] = stamps[i0[ok]]
    kept["overlaps"] = overlaps[ok]
    excluded = pd.concat([request.excluded, _excluded(rows, reason)], ignore_index=True)
    return Placed(kept, excluded, days)


def _overlap_counts(tickers: np.ndarray, i0: np.ndarray, est: Window, span: Window) -> np.ndarray:
    """Per firm-event, how many other events of the same ticker have an event window inside its own windows.

    Event j overlaps event i when j's event span [i0_j + span.start, i0_j +
    span.end] meets i's estimation-to-event range [i0_i + est.start, i0_i +
    span.end]. One sort by (ticker, day 0) and two binary searches: no pairwise
    comparison.
    """
    if not len(i0):
        return np.zeros(0, dtype=np.int64)
    codes = pd.factorize(tickers)[0].astype(np.int64)
    stride = int(i0.max()) - min(est.start, span.start) * 4 + abs(span.end) * 4 + 10
    keys = codes * stride * 4 + i0
    order = np.sort(keys)
    low = keys + (est.start - span.end)
    high = keys + (span.end - span.start)
    count = np.searchsorted(order, high, "right") - np.searchsorted(order, low, "left")
    return (count - 1).astype(np.int64)


# --------------------------------------------------------------------------- blocks


def date_blocks(placed: Placed, size: int = DEFAULT_BLOCK) -> list[np.ndarray]:
    """Row positions of ``placed.rows`` cut into blocks of at most ``size`` firm-events, in day-0 order.

    A block covers a contiguous range of days 0, so its price slice is short;
    the cut is the same whichever machine runs the blocks.
    """
    order = np.lexsort((placed.rows["row"].to_numpy(), placed.rows["i0"].to_numpy()))
    return [order[start:start + size] for start in range(0, len(order), max(size, 1))]


def block_rows(placed: Placed, positions: np.ndarray, config: RequestConfig) -> tuple[int, int]:
    """The first and last row of ``placed.days`` a block needs (the day before its earliest estimation day on)."""
    i0 = placed.rows["i0"].to_numpy()[positions]
    est, span = config.estimation_window, config.event_span
    return max(int(i0.min()) + est.start - 1, 0), int(i0.max()) + span.end


@dataclass(frozen=True)
class CloseMatrix:
    """Closes as (tickers x source days), from which each block gathers its firm-events' windows.

    ``closes[k, day_cols[t]]`` is the close of ``tickers[k]`` on calendar day
    ``days[t]`` (the benchmark's trading days), row ``first_row + t`` of the
    whole request's calendar. ``closes`` may be a view of a price file's
    memory-mapped index: nothing is pivoted or copied up front, a block reads
    only its firm-events' rows and days.
    """

    days: pd.DatetimeIndex
    tickers: pd.Index
    closes: np.ndarray
    day_cols: np.ndarray
    source: str
    location: str
    first_row: int = 0


def _no_calendar(benchmark: str, location: str) -> DataSourceError:
    """The error of a benchmark without prices: it has no trading days to be the request's calendar."""
    return DataSourceError(
        f"benchmark {benchmark} has no prices in {location}: its trading days are the request's calendar; "
        f"choose a benchmark the source holds (e.g. SPY)"
    )


def close_matrix(
    tickers: Sequence[str] | pd.Index,
    dates: pd.DatetimeIndex,
    closes: np.ndarray,
    benchmark: str,
    *,
    source: str,
    location: str,
    first_row: int = 0,
) -> CloseMatrix:
    """The closes ``closes`` (tickers x dates) on the benchmark's trading days: the days it has a valid close."""
    tickers = pd.Index(tickers)
    position = tickers.get_indexer([benchmark])[0]
    bench = np.asarray(closes[position], dtype=float) if position >= 0 else np.full(len(dates), np.nan)
    valid = np.isfinite(bench) & (bench > 0)
    if not valid.any():
        raise _no_calendar(benchmark, location)
    days = pd.DatetimeIndex(dates[valid], name="date")
    return CloseMatrix(days, tickers, closes, np.flatnonzero(valid), source, location, first_row)


def close_matrix_of(data: PriceData, benchmark: str, first_row: int = 0) -> CloseMatrix:
    """:func:`close_matrix` of a :class:`PriceData` frame (dates x tickers)."""
    values = np.ascontiguousarray(data.closes.to_numpy(dtype=float).T)
    return close_matrix(data.closes.columns, pd.DatetimeIndex(data.closes.index), values, benchmark,
                        source=data.source, location=data.location, first_row=first_row)


def _gather_closes(closes: CloseMatrix, ticker_rows: np.ndarray, local_rows: np.ndarray) -> np.ndarray:
    """Closes of ``ticker_rows`` (n,) on calendar rows ``local_rows`` (n, days), NaN before the calendar (-1).

    Invalid closes (zero, negative, non-finite) are NaN, as :func:`evstudy.returns.simple_returns` treats them.
    """
    inside = local_rows >= 0
    everywhere = bool(inside.all())
    if everywhere and closes.day_cols[-1] - closes.day_cols[0] == len(closes.day_cols) - 1:
        columns = local_rows + closes.day_cols[0]  # the calendar is a run of the matrix's days
    else:
        columns = closes.day_cols[np.where(inside, local_rows, 0)]
    values = np.asarray(closes.closes[ticker_rows[:, None], columns], dtype=float)
    with np.errstate(invalid="ignore"):
        valid = values > 0
        valid &= values < np.inf
    if not everywhere:
        valid &= inside
    np.copyto(values, np.nan, where=~valid)
    return values


def _calendar_stamps(closes: CloseMatrix) -> np.ndarray:
    """The calendar's days and a final NaT, so that a gathered row of -1 (before the calendar) reads NaT."""
    return np.append(closes.days.to_numpy(), np.datetime64("NaT", "ns"))


@dataclass(frozen=True)
class GroupSums:
    """Additive per-group pieces of the rank and correlation statistics, summed over blocks.

    ``rank_sum``/``rank_count`` (windows x (L + W)): per window's rank pool,
    the sum and count of the standardized ranks U_it per relative day (Corrado 1989); ``cluster_keys`` (day 0 as
    int64) and ``cluster_sums`` (clusters x L): per day-0 cluster, the sum of
    the firm-events' unit-length centred residual vectors z_i.
    """

    rank_sum: np.ndarray
    rank_count: np.ndarray
    cluster_keys: np.ndarray
    cluster_sums: np.ndarray


@dataclass(frozen=True)
class BlockResult:
    """What a block of firm-events computed: per-firm-event numbers, exclusions, per-group sums."""

    table: pd.DataFrame  # included firm-events: request columns, day0, alpha, beta, sigma, n_obs, df, share_positive
    cars: pa.Table  # their rows of cars.parquet (one per firm-event and window), all columns but cluster_size
    car: np.ndarray  # (windows, n)
    se: np.ndarray
    path: np.ndarray  # (W, n) CAR from the span's first day through each day
    unit_norm: np.ndarray  # (n,) 1 where the residuals vary (they enter r̄), else 0
    excluded: pd.DataFrame
    sums: dict[str, GroupSums] = field(default_factory=dict)


def rank_sums(
    est_ar: np.ndarray, event_ar: np.ndarray, codes: np.ndarray, n_groups: int, selectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per group and window: the column sums of U_it = K_it / (T_i + 1) and the count of ARs per column.

    ``codes`` (n,) gives each firm-event's (row's) group, 0 to ``n_groups`` - 1.
    For each window (a row of ``selectors``, windows x W) separately, K_it
    ranks a row's estimation ARs and that window's event ARs together, ties
    averaged, T_i its number of ARs in that pool (Corrado & Zivney 1992): the
    rank pool of :func:`evstudy.inference.corrado_rank`. Returns two arrays of
    shape (n_groups, windows, L + W).
    """
    combined = np.concatenate([est_ar, event_ar], axis=1)
    return _pooled_rank_sums(combined, np.arange(len(combined)), est_ar.shape[1], np.asarray(codes), n_groups,
                             selectors)


def _pooled_rank_sums(
    combined: np.ndarray, rows: np.ndarray, n_est_days: int, codes: np.ndarray, n_groups: int, selectors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_sums` of the rows ``rows`` of ``combined`` (estimation ARs, then event ARs; left unchanged).

    ``codes`` gives the group of each of ``rows``. Each row is sorted once
    (numpy's argsort, missing ARs last); the compiled
    :func:`evstudy.kernels.pooled_rank_sums` walks the sorted row once for
    every window's pool. Rows sharing a group and a number of estimation ARs
    share 1 / (T + 1), so they are made contiguous (one gathered copy) and
    their ranks summed as integers, weighted once.
    """
    width = combined.shape[1]
    in_pool = selectors > 0
    totals = np.zeros((n_groups, len(in_pool), width))
    present = np.zeros((n_groups, width), dtype=np.int64)
    if len(rows):
        present_est = np.isfinite(combined[:, :n_est_days]).sum(axis=1)[rows]
        key = codes.astype(np.int64) * (n_est_days + 1) + present_est
        order = np.argsort(key, kind="stable")
        ordered = combined[rows[order]]
        # A missing AR (NaN, ±inf) becomes +inf: it sorts last, as NaN would, and numpy's vectorized argsort is
        # faster on rows without NaN.
        np.copyto(ordered, np.inf, where=~np.isfinite(ordered))
        kernels.pooled_rank_sums(ordered, np.argsort(ordered, axis=1), n_est_days, codes[order].astype(np.int64),
                                 in_pool, totals, present)
    pools = np.concatenate([np.ones((len(in_pool), n_est_days), dtype=bool), in_pool], axis=1)
    return totals, present[:, None, :] * pools[None, :, :]


def _group_keys(groups: np.ndarray, names: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    keys = [(name, groups == name) for name in names if name != ALL_GROUPS]
    if ALL_GROUPS in names:
        keys.append((ALL_GROUPS, np.ones(len(groups), dtype=bool)))
    return keys


def group_names(request: EventRequest) -> list[str]:
    """The request's groups in first-seen order, plus :data:`ALL_GROUPS` when there are several."""
    names = list(dict.fromkeys(request.rows["group"].tolist())) or [DEFAULT_GROUP]
    return names + [ALL_GROUPS] if len(names) > 1 else names


def compute_block(
    config: RequestConfig,
    rows: pd.DataFrame,
    closes: CloseMatrix,
    groups: Sequence[str],
) -> BlockResult:
    """Fit and measure every firm-event of ``rows`` (placed rows with global ``i0``) on ``closes``.

    Exclusions, in the single-event study's order and with its words: ticker
    or benchmark absent from the prices; a benchmark flat on too much of the
    estimation window (which stops a whole ``run``); a price glitch from the
    close before the estimation window to the last event day; too few valid
    estimation returns; too many zero returns; no variation to fit; a missing
    benchmark or stock return in the event span; an exact fit (a multiple of
    the benchmark). The screens are the run's own functions
    (:func:`evstudy.returns.price_glitches`, :func:`evstudy.diagnostics.exact_fit`),
    applied to all firm-events at once.
    """
    est, span = config.estimation_window, config.event_span
    n = len(rows)
    location = closes.location
    stock_row = closes.tickers.get_indexer(rows["ticker"].to_numpy())
    bench_row = closes.tickers.get_indexer(rows["benchmark"].to_numpy())
    reason = _reasons(n)
    _set(reason, stock_row < 0, lambda i: f"ticker {rows['ticker'].iat[i]} has no prices in {location}")
    _set(reason, bench_row < 0, lambda i: f"benchmark {rows['benchmark'].iat[i]} has no prices in {location}")
    ok = reason == ""
    stock_row = np.where(ok, stock_row, 0)
    bench_row = np.where(ok, bench_row, 0)

    # One compiled pass per firm-event (evstudy.kernels.measure_rows): its closes from the day before its
    # estimation window to its last event day, read off the calendar rows of the (tickers x days) matrix;
    # returns r_t = P_t / P_{t-1} - 1 (evstudy.returns.simple_returns' arithmetic), the model fit, the
    # abnormal returns and every window's CAR with its variance.
    i0 = rows["i0"].to_numpy().astype(np.int64)
    n_est_days = est.length
    event_start = span.start - est.start
    n_event = span.length
    windows = list(config.windows)
    rel_days = np.arange(span.start, span.end + 1)
    selectors = window_selectors(rel_days, windows)
    p = len(param_names(config.model))
    combined = np.empty((n, n_est_days + n_event))
    params, xtx_inv = np.empty((n, p)), np.empty((n, p, p))
    s2, n_obs, r2, flat, zero_share, share = (np.empty(n) for _ in range(6))
    car, se = np.empty((len(windows), n)), np.empty((len(windows), n))
    path = np.empty((n_event, n))
    suspect = np.empty(n, dtype=np.bool_)
    event_ok = np.empty(n, dtype=np.int64)
    # Benchmarks are few: their returns over the whole slice once (NaN on its first day, which has no return).
    benchmarks, bench_of = np.unique(bench_row, return_inverse=True)
    days = np.arange(len(closes.days))
    bench_close = _gather_closes(closes, benchmarks, np.broadcast_to(days, (len(benchmarks), len(days))))
    bench_returns = np.full(bench_close.shape, np.nan)
    with np.errstate(invalid="ignore"):
        np.divide(bench_close[:, 1:], bench_close[:, :-1], out=bench_returns[:, 1:])
        bench_returns[:, 1:] -= 1.0
    kernels.measure_rows(
        np.asarray(closes.closes, dtype=float), closes.day_cols.astype(np.int64), closes.first_row,
        stock_row.astype(np.int64), bench_returns, bench_of.astype(np.int64), i0 + (est.start - 1), n_est_days,
        event_start,
        kernels.MODEL_CODES[config.model], selectors, GLITCH_MIN_CLOSE, GLITCH_SPIKE_FACTOR - 1.0,
        1.0 / GLITCH_SPIKE_FACTOR - 1.0,
        combined, params, xtx_inv, s2, n_obs, r2, car, se, path, flat, zero_share, suspect, event_ok, share,
    )

    if config.model != "constant_mean":  # as run: a beta against a benchmark that does not move is meaningless
        _set(reason, flat > config.max_zero_share, lambda i: flat_benchmark_reason(
            rows["benchmark"].iat[i], flat[i], config.max_zero_share, est))
    # Glitches: closes from the day before the estimation window to the last event day, as run screens them.
    # price_glitches only for the few series with a candidate: a close under GLITCH_MIN_CLOSE or a move by
    # GLITCH_SPIKE_FACTOR or more either way (every jump is one), flagged by the kernel.
    suspects = np.flatnonzero(suspect & ok)
    close_global = i0[suspects, None] + np.arange(est.start - 1, span.end + 1)[None, :]
    close_local = np.where(close_global < 0, -1, close_global - closes.first_row)
    glitches = price_glitches(_gather_closes(closes, stock_row[suspects], close_local).T, event_start + 1)
    found = np.flatnonzero(glitches.found)
    stamps = _calendar_stamps(closes) if len(found) else None
    for k in found:
        if reason[suspects[k]] == "":
            reason[suspects[k]] = glitches.reason(k, pd.DatetimeIndex(stamps[close_local[k]]))

    df = n_obs - p if config.model != "market_adjusted" else n_obs - 1
    fitted = ModelFit(config.model, params, xtx_inv, s2, n_obs, df, r2, combined[:, :n_est_days].T)
    _set(reason, n_obs < config.min_estimation_returns, lambda i: (
        f"only {int(n_obs[i])} valid returns in the estimation window {est.label} "
        f"(needs {config.min_estimation_returns})"
    ))
    _set(reason, zero_share > config.max_zero_share, lambda i: (
        f"{zero_share[i]:.0%} of estimation-window returns are exactly zero (allowed: {config.max_zero_share:.0%}): "
        f"flat, halted or thinly traded"
    ))
    fittable = np.isfinite(s2) & (s2 > 0) & np.isfinite(params).all(axis=1)
    _set(reason, ~fittable, lambda i: "the model cannot be fitted: no variation in the estimation window")
    _set(reason, (event_ok & 1) == 0, lambda i: (
        f"benchmark {rows['benchmark'].iat[i]} has no return on some day of the event window"
    ))
    _set(reason, (event_ok & 2) == 0, lambda i: "a missing return in the event window")
    _set(reason, exact_fit(fitted), lambda i: EXACT_FIT_REASON)
    keep = reason == ""

    kept = np.flatnonzero(keep)
    car, se = car[:, kept], se[:, kept]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = car / se
    alpha, beta = alpha_beta(fitted)
    table = rows.iloc[kept].reset_index(drop=True)
    table["alpha"], table["beta"], table["sigma"] = alpha[kept], beta[kept], np.sqrt(s2[kept])
    table["n_obs"], table["df"], table["share_positive"] = n_obs[kept].astype(np.int64), df[kept], share[kept]

    day0 = table["day0"].to_numpy().astype("datetime64[D]").astype(np.int64)
    if (np.diff(day0) < 0).any():
        raise ValueError("compute_block needs its rows in day-0 order, as date_blocks cuts them")
    named = [name for name in groups if name != ALL_GROUPS]  # disjoint; (all) is their sum
    codes = pd.Index(named).get_indexer(table["group"].to_numpy())
    # Unit residuals summed per (group, day 0) cluster, rows added in day-0 order; (all) clusters after the groups'.
    cluster_days, cluster_of, cluster_all, offset = {}, np.empty(len(kept), dtype=np.int64), np.full(len(kept), -1), 0
    for name in groups:
        member = np.ones(len(kept), dtype=bool) if name == ALL_GROUPS else codes == named.index(name)
        days, inverse = np.unique(day0[member], return_inverse=True)
        cluster_days[name] = (offset, days)
        if name == ALL_GROUPS:
            cluster_all[:] = offset + inverse
        else:
            cluster_of[member] = offset + inverse
        offset += len(days)
    cluster = np.zeros((offset, n_est_days))
    varies = np.empty(len(kept))
    kernels.unit_cluster_sums(combined, n_est_days, kept, cluster_of, cluster_all, cluster, varies)
    rank_sum, rank_count = _pooled_rank_sums(combined, kept, n_est_days, codes, len(named), selectors)
    sums = {}
    for name in groups:
        first, days = cluster_days[name]
        if name == ALL_GROUPS:
            sums[name] = GroupSums(rank_sum.sum(axis=0), rank_count.sum(axis=0), days, cluster[first:first + len(days)])
        else:
            g = named.index(name)
            sums[name] = GroupSums(rank_sum[g], rank_count[g], days, cluster[first:first + len(days)])
    cars = _car_rows(table, windows, car, se, t, two_sided_t_pvalue(t, df[kept][None, :]))
    return BlockResult(table, cars, car, se, path[:, kept], varies, _excluded(rows, reason), sums)


def _car_rows(
    table: pd.DataFrame, windows: Sequence[Window], car: np.ndarray, se: np.ndarray, t: np.ndarray, p: np.ndarray
) -> pa.Table:
    """Rows of cars.parquet for the firm-events of ``table``: one per firm-event and window, firm-event by
    firm-event, :data:`CAR_FILE_COLUMNS` but cluster_size (which needs every block: :func:`combine` adds it).

    Built in the block's thread, by Arrow ``take`` (which releases the GIL) of the columns as they are.
    """
    n, nw = len(table), len(windows)
    each = pa.array(np.repeat(np.arange(n), nw))

    def repeated(column: str) -> pa.Array:
        return pa.array(table[column].array).take(each)

    return pa.table({
        **{c: repeated(c) for c in ("event_id", "ticker", "date", "day0", "group", "benchmark")},
        "window_start": np.tile(np.array([w.start for w in windows], dtype=np.int64), n),
        "window_end": np.tile(np.array([w.end for w in windows], dtype=np.int64), n),
        "car": car.T.ravel(), "se": se.T.ravel(), "t": t.T.ravel(), "p_value": p.T.ravel(),
        **{c: repeated(c) for c in ("alpha", "beta", "sigma", "n_obs", "overlaps", "label", "row")},
    })


# --------------------------------------------------------------------------- group statistics


def clustered_t(x: np.ndarray, clusters: np.ndarray, test: str) -> TestArrays:
    """Mean of ``x`` (windows x N) with a cluster-robust standard error, clusters = ``clusters`` (N,).

    Notes
    -----
    With x̄ the mean over the N firm-events, G clusters (firm-events sharing a
    day 0) and u_g = sum_{i in g} (x_i - x̄),

        Var(x̄) = G / (G - 1) * sum_g u_g^2 / N^2,    t = x̄ / sqrt(Var(x̄)) ~ t(G - 1),

    the CR1 cluster-robust variance of a mean (Liang & Zeger 1986; Cameron &
    Miller 2015, "A practitioner's guide to cluster-robust inference", JHR
    50(2), eq. 11 with K = 1). Firm-events sharing day 0 may be correlated in
    any way; different days are taken as independent. With every firm-event
    on its own day it is the cross-sectional t up to the factor N / (N - 1).
    """
    present = np.isfinite(x)
    codes, _ = pd.factorize(clusters)
    n = present.sum(axis=-1)
    mean = np.where(present, x, 0.0).sum(axis=-1) / np.maximum(n, 1)
    dev = np.where(present, x - mean[:, None], 0.0)
    g = np.array([np.count_nonzero(np.bincount(codes[row], minlength=1)) for row in present])
    u2 = np.array([(np.bincount(codes, weights=d, minlength=codes.max(initial=0) + 1) ** 2).sum() for d in dev])
    var = np.where(g > 1, g / np.maximum(g - 1, 1) * u2 / np.maximum(n, 1) ** 2, np.nan)
    scale = np.abs(np.where(present, x, 0.0)).max(axis=-1, initial=0.0)
    stat = mean / np.sqrt(np.where(var > (1e-12 * scale) ** 2, var, np.nan))
    note = _notes(n.shape)
    _explain(note, n < 2, lambda i: f"needs at least 2 firm-events; the group has {n[i]}")
    _explain(note, g < 2, "every firm-event shares one day 0: a variance clustered by day 0 needs 2 or more days")
    _explain(note, ~(var > (1e-12 * scale) ** 2), "zero clustered variance")
    result = _finalize(test, stat, two_sided_t_pvalue(stat, np.maximum(g - 1, 1)), n, note)
    context = np.array([f"{int(k):,} day-0 clusters, t with {int(k) - 1:,} df" for k in g], dtype=object)
    note = result.note.copy()
    defined = np.isfinite(result.statistic)
    note[defined] = context[defined]
    return TestArrays(result.test, result.statistic, result.p_value, result.n, note)


def corrado_from_sums(sums: GroupSums, n_event: int, width: int, selectors: np.ndarray) -> TestArrays:
    """Corrado (1989) rank test from summed standardized ranks: :func:`evstudy.inference.corrado_rank`'s formula.

    Per window's rank pool (estimation days and that window's days):
    Ū_t = (sum of U_it) / N_t per relative day, S_U = sqrt(mean over pool days with
    N_t >= 1 of (Ū_t - 1/2)^2), T = sqrt(L2) (mean of Ū_t over the window - 1/2) / S_U.
    """
    count = sums.rank_count
    with np.errstate(invalid="ignore", divide="ignore"):
        u_bar = sums.rank_sum / np.where(count > 0, count, np.nan)  # (windows, L + W)
    days = (count > 0).sum(axis=1)
    s_u = np.sqrt(np.nansum((u_bar - 0.5) ** 2, axis=1) / np.maximum(days, 1))
    event_bar = u_bar[:, -width:]
    event_ok = np.isfinite(event_bar) & (selectors > 0)
    l2 = event_ok.sum(axis=1).astype(float)
    mean_u = np.where(event_ok, event_bar, 0.0).sum(axis=1) / np.where(l2 > 0, l2, np.nan)
    stat = np.sqrt(l2) * (mean_u - 0.5) / np.where(s_u > 0, s_u, np.nan)
    n = np.full(stat.shape, n_event)
    note = _notes(stat.shape)
    _explain(note, n < 1, "no firm-event in the group")
    _explain(note, l2 < 1, "no abnormal return in the window")
    _explain(note, ~(s_u > 0), "the mean ranks do not vary: S_U = 0")
    return _finalize("corrado_rank", stat, normal_pvalue(stat), n, note)


def same_day_rbar(sums: GroupSums, n_varying: int) -> tuple[float, int]:
    """Kolari & Pynnönen's r̄ over all pairs of firm-events, pairs on different days 0 taken as uncorrelated.

    Notes
    -----
    KP (2010) correct a test for the average correlation r̄ of the N series'
    estimation residuals: Var(sum SCAR) = N (1 + (N - 1) r̄). In a request file
    firm-events on different days 0 are measured on different calendar days,
    so their event-time residuals are taken as uncorrelated (r_ij = 0); pairs
    sharing day 0 share their estimation days, and with z_i the centred,
    unit-length residual vector, r_ij = z_i'z_j (Pearson's r on common days).
    Summed per day-0 cluster g with S_g = sum_{i in g} z_i,

        sum_{i<j in g} r_ij = (S_g'S_g - n_g) / 2,   r̄ = sum_g (S_g'S_g - n_g) / (N (N - 1)),

    one pass over the firm-events instead of N^2 pairs. Returns (r̄, pairs).
    """
    pairs = n_varying * (n_varying - 1) // 2
    if pairs < 1:
        return float("nan"), 0
    within = float(np.einsum("gl,gl->", sums.cluster_sums, sums.cluster_sums)) - n_varying
    return within / (2.0 * pairs), pairs


@dataclass(frozen=True)
class GroupStatistics:
    """groups.csv, the group CAAR paths and tests.csv as frames (:data:`GROUP_COLUMNS` ...)."""

    groups: pd.DataFrame
    group_paths: pd.DataFrame
    tests: pd.DataFrame


@dataclass(frozen=True)
class RequestResults:
    """Everything a request-file study computed; tables are pandas DataFrames, no I/O.

    ``firm_events`` has one row per included firm-event (request columns, day
    0, fit, overlaps, cluster size); ``cars`` one row per firm-event and
    window (:data:`CAR_FILE_COLUMNS`, keyed by event_id and ticker), built
    from the Arrow table ``car_table`` when first asked for (at 10^5
    firm-events a 6·10^5-row frame the output files do not need);
    ``groups``, ``group_paths`` and ``tests`` the per-group CAARs, CAAR paths
    and test battery, computed by ``statistics`` when one of them is first
    asked for; ``excluded`` every request row left out, with its reason.
    """

    config: RequestConfig
    version: str
    request_file: str
    n_rows: int
    provenance: dict[str, Any]
    firm_events: pd.DataFrame
    car_table: pa.Table
    excluded: pd.DataFrame
    statistics: Callable[[], GroupStatistics] = field(repr=False, compare=False)
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def _statistics(self) -> GroupStatistics:
        return self.statistics()

    @property
    def groups(self) -> pd.DataFrame:
        """Per group and window: N, firms, days 0, CAAR with its SE, median CAR, share positive, clusters."""
        return self._statistics.groups

    @property
    def group_paths(self) -> pd.DataFrame:
        """Per group and relative day: the CAAR path from the span's first day, with its SE."""
        return self._statistics.group_paths

    @property
    def tests(self) -> pd.DataFrame:
        """Per group and window: the test battery (:data:`REQUEST_TESTS`)."""
        return self._statistics.tests

    @cached_property
    def cars(self) -> pd.DataFrame:
        """``car_table`` as a DataFrame (:data:`CAR_FILE_COLUMNS`; dates as datetime64, text as str)."""
        return self.car_table.to_pandas()

    def to_dict(self) -> dict[str, Any]:
        """results.json: settings, counts, groups, tests, exclusion reasons by kind, provenance (no per-row data)."""
        reasons = self.excluded["reason"].str.replace(r"[0-9][0-9,.%]*", "#", regex=True)
        clustered = self.firm_events["cluster_size"] > 1 if len(self.firm_events) else pd.Series(dtype=bool)
        return {
            "evstudy_version": self.version,
            "kind": "request",
            "parameters": self.config.to_dict(),
            "request_file": self.request_file,
            "data": self.provenance,
            "counts": {
                "rows": self.n_rows,
                "included": len(self.firm_events),
                "excluded": len(self.excluded),
                "firms": int(self.firm_events["ticker"].nunique()) if len(self.firm_events) else 0,
                "days0": int(self.firm_events["day0"].nunique()) if len(self.firm_events) else 0,
                "overlapping": int((self.firm_events["overlaps"] > 0).sum()) if len(self.firm_events) else 0,
                "clustered": int(clustered.sum()),
            },
            "excluded_by_reason": {k: int(v) for k, v in reasons.value_counts().items()},
            "groups": _records(self.groups),
            "tests": _records(self.tests),
            "notes": list(self.notes),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    def clean(value: Any) -> Any:
        if isinstance(value, (float, np.floating)):
            return float(value) if np.isfinite(value) else None
        if isinstance(value, np.integer):
            return int(value)
        return value

    return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def combine(
    config: RequestConfig,
    request: EventRequest,
    placed: Placed,
    blocks: Sequence[BlockResult],
    groups: Sequence[str],
    provenance: dict[str, Any],
) -> RequestResults:
    """Per-firm-event tables from the blocks, in block order; per-group CAARs, paths and the test battery."""
    windows = list(config.windows)
    if blocks:
        table = pd.concat([b.table for b in blocks], ignore_index=True)
        car, se, path = (np.concatenate([getattr(b, k) for b in blocks], axis=-1) for k in ("car", "se", "path"))
        varies = np.concatenate([b.unit_norm for b in blocks])
    else:
        table = placed.rows.iloc[:0].copy()
        car = se = np.empty((len(windows), 0))
        path = np.empty((config.event_span.length, 0))
        varies = np.empty(0)
    excluded = pd.concat([placed.excluded, *(b.excluded for b in blocks)], ignore_index=True)
    excluded = excluded.sort_values("row", kind="stable").reset_index(drop=True)
    if not len(table):
        raise InsufficientDataError(
            f"request file {request.file}: every one of its {request.n_rows:,} rows was excluded — "
            f"{_reason_summary(excluded)}"
        )
    day0 = table["day0"].to_numpy()
    table["cluster_size"] = pd.Series(day0).map(pd.Series(day0).value_counts()).to_numpy().astype(np.int64)
    n = len(table)
    # The blocks' rows, in block order. A block left with no firm-event is skipped: with pandas 2's object
    # columns its empty text columns have Arrow's null type, which the other blocks' tables do not share.
    cars = pa.concat_tables([b.cars for b in blocks if b.cars.num_rows]).add_column(
        CAR_FILE_COLUMNS.index("cluster_size"), "cluster_size",
        pa.array(np.repeat(table["cluster_size"].to_numpy(), len(windows))),
    )

    empty = [name for name, member in _group_keys(table["group"].to_numpy(), groups) if not member.any()]
    # The group statistics wait until asked for: a writer encodes cars.parquet/cars.csv in other threads meanwhile.
    # It keeps its own copy of the columns it reads, so a notebook changing results.firm_events changes nothing.
    columns = table[["group", "ticker", "day0", "df", "share_positive"]].copy()
    statistics = partial(_group_statistics, config, columns, car, se, path, varies, [b.sums for b in blocks], groups)
    notes = [
        "returns are close-to-close from adjusted closes; each firm-event is one observation in every statistic "
        "(a firm in several events counts once per event)",
        "portfolio and placebo-date tests are not run on request files: their firm-events have no single shared date",
    ]
    if empty:
        notes.append(f"every firm-event of group(s) {', '.join(map(repr, empty))} was excluded (see excluded.csv)")
    overlapping = int((table["overlaps"] > 0).sum())
    if overlapping and not config.drop_overlaps:
        notes.append(
            f"{overlapping:,} firm-events overlap another event of the same firm within their estimation or event "
            f"window (column 'overlaps'); drop_overlaps = true (--drop-overlaps) excludes them"
        )
    clustered = int((table["cluster_size"] > 1).sum())
    if clustered:
        notes.append(
            f"{clustered:,} of {n:,} firm-events share day 0 with another: their abnormal returns may be correlated; "
            f"the clustered_* tests and the Kolari-Pynnönen tests allow for it"
        )
    return RequestResults(
        config=config,
        version=__version__,
        request_file=request.file,
        n_rows=request.n_rows,
        provenance=provenance,
        firm_events=table,
        car_table=cars,
        excluded=excluded,
        statistics=statistics,
        notes=tuple(notes),
    )


def _group_statistics(
    config: RequestConfig, table: pd.DataFrame, car: np.ndarray, se: np.ndarray, path: np.ndarray,
    varies: np.ndarray, block_sums: Sequence[dict[str, GroupSums]], groups: Sequence[str],
) -> GroupStatistics:
    """Per group: CAARs per window, the CAAR path and the test battery, from the firm-events and the blocks' sums.

    ``table`` holds the firm-events' group, ticker, day0, df and share_positive.
    """
    windows = list(config.windows)
    day0 = table["day0"].to_numpy()
    rel_days = np.arange(config.event_span.start, config.event_span.end + 1)
    selectors = window_selectors(rel_days, windows)
    scar = standardized_cars(car, se)
    group_rows, path_rows, test_rows = [], [], []
    for name, member in _group_keys(table["group"].to_numpy(), groups):
        k = int(member.sum())
        if not k:
            continue
        g_car, g_scar = car[:, member], scar[:, member]
        g_df = table["df"].to_numpy()[member]
        g_day0 = day0[member]
        sums = _sum_blocks([b[name] for b in block_sums if name in b])
        rbar, pairs = same_day_rbar(sums, int(varies[member].sum()))
        sizes = pd.Series(g_day0).value_counts()
        clustered = int(sizes[sizes > 1].sum())
        firms = int(table["ticker"][member].nunique())
        for w, window in enumerate(windows):
            values = g_car[w]
            group_rows.append((
                name, window.start, window.end, k, firms, len(sizes),
                float(values.mean()), float(values.std(ddof=1) / np.sqrt(k)) if k > 1 else np.nan,
                float(np.median(values)), float((values > 0).mean()), clustered, int(sizes.max()),
            ))
        g_path = path[:, member]
        path_se = g_path.std(axis=1, ddof=1) / np.sqrt(k) if k > 1 else np.full(len(rel_days), np.nan)
        means = g_path.mean(axis=1)
        path_rows.extend((name, int(d), k, float(m), float(s)) for d, m, s in zip(rel_days, means, path_se))
        battery = {
            "cs_t": cs_t(g_car),
            "patell_z": patell_z(g_scar, g_df[None, :]),
            "bmp_t": bmp_t(g_scar),
            "kp_patell_z": kp_patell_z(g_scar, g_df[None, :], np.float64(rbar), np.int64(pairs)),
            "kp_bmp_t": kp_bmp_t(g_scar, np.float64(rbar), np.int64(pairs)),
            "corrado_rank": corrado_from_sums(sums, k, len(rel_days), selectors),
            "generalized_sign": generalized_sign_from_shares(
                g_car, table["share_positive"].to_numpy()[member][None, :], "no firm-event in the group"),
            "wilcoxon": wilcoxon(g_car),
            "clustered_cs_t": clustered_t(g_car, g_day0, "clustered_cs_t"),
            "clustered_bmp_t": clustered_t(g_scar, g_day0, "clustered_bmp_t"),
        }
        for test in REQUEST_TESTS:
            for w, result in enumerate(battery[test].results()):
                test_rows.append((
                    name, windows[w].start, windows[w].end, test, REQUEST_TEST_LABELS[test], result.statistic,
                    result.p_value, result.n, result.note,
                ))
    return GroupStatistics(
        pd.DataFrame(group_rows, columns=GROUP_COLUMNS),
        pd.DataFrame(path_rows, columns=GROUP_PATH_COLUMNS),
        pd.DataFrame(test_rows, columns=REQUEST_TEST_COLUMNS),
    )


def _sum_blocks(parts: Sequence[GroupSums]) -> GroupSums:
    """Add the blocks' sums in block order; cluster sums of one day 0 found in several blocks are added up."""
    if not parts:
        return GroupSums(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 0)))
    rank_sum = parts[0].rank_sum.copy()
    rank_count = parts[0].rank_count.copy()
    for part in parts[1:]:
        rank_sum += part.rank_sum
        rank_count += part.rank_count
    keys = np.concatenate([p.cluster_keys for p in parts])
    unique, inverse = np.unique(keys, return_inverse=True)
    cluster = np.zeros((len(unique), parts[0].cluster_sums.shape[1]))
    np.add.at(cluster, inverse, np.concatenate([p.cluster_sums for p in parts]))
    return GroupSums(rank_sum, rank_count, unique, cluster)


# --------------------------------------------------------------------------- the single-machine run


def provenance_of(data: PriceData | CloseMatrix, days: pd.DatetimeIndex) -> dict[str, Any]:
    """Where the prices came from and the calendar's first and last trading day (the same however the run is split)."""
    return {
        "source": data.source, "location": data.location,
        "first_date": days[0].date().isoformat() if len(days) else None,
        "last_date": days[-1].date().isoformat() if len(days) else None,
    }


def calendar_days(data: PriceData, benchmark: str) -> pd.DatetimeIndex:
    """The benchmark's trading days in ``data``: the calendar of every firm-event's windows."""
    days = trading_days(data.closes, benchmark) if benchmark in data.closes.columns else pd.DatetimeIndex([])
    if days.empty:  # no valid (positive, finite) close: the same rule and error as close_matrix
        raise _no_calendar(benchmark, data.location)
    return days


def run_request(
    config: RequestConfig, request: EventRequest, data: PriceData, block_size: int = DEFAULT_BLOCK
) -> RequestResults:
    """Every firm-event of ``request`` on prices ``data`` (every ticker and benchmark it needs), on one machine."""
    return run_on_closes(config, request, close_matrix_of(data, config.benchmark), block_size)


def run_on_closes(
    config: RequestConfig, request: EventRequest, closes: CloseMatrix, block_size: int = DEFAULT_BLOCK
) -> RequestResults:
    """:func:`run_request` on a :class:`CloseMatrix` (e.g. a view of a price file's index)."""
    placed = place(config, request, closes.days)
    groups = group_names(request)

    def one(positions: np.ndarray) -> BlockResult:
        return compute_block(config, placed.rows.iloc[positions], closes, groups)

    # Blocks are independent, and their compiled kernels and numpy's sorts release the GIL: two at a time use
    # both cores of a small machine; map keeps the block order, so the results do not change. (No matrix
    # product is left in a block or the group tests, so no BLAS thread pool wakes up to compete.)
    with ThreadPoolExecutor(max_workers=min(BLOCK_THREADS, os.cpu_count() or 1)) as pool:
        blocks = list(pool.map(one, date_blocks(placed, block_size)))
    return combine(config, request, placed, blocks, groups, provenance_of(closes, closes.days))
