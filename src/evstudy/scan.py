"""Whole-market scan: every ticker's abnormal return around one event, ranked.

Pure computation on a :class:`~evstudy.prices.base.PriceData` holding the
whole market (``FileSource.load_all``). The numbers come from the study's own
building blocks — :func:`~evstudy.returns.simple_returns`,
:func:`~evstudy.models.fit`, :func:`~evstudy.abnormal.car_stats`,
:func:`~evstudy.calendar.locate_day_zero` — applied once to a (days x tickers)
matrix, so a scan and a study agree on every AR, CAR, t and p.

Dirty-data filters run in a fixed order, each on the tickers the previous ones
kept, and the count each removed is reported (the funnel):

1. ``benchmark``: the benchmark itself is not scanned against itself.
2. ``invalid_price``: a close <= 0 or non-finite between the day before the
   estimation window and the last event-window day (vendor errors; a return
   across them is meaningless).
3. ``price_glitch``: a vendor glitch between the day before the estimation
   window and the last event-window day (:func:`evstudy.returns.price_glitches`:
   a one-day 5x move before the event span, a 2x spike beyond 10 robust
   sigmas undone the next day, or a close below $0.05).
4. ``min_returns``: fewer than ``min_returns`` valid returns in the
   estimation window (listed late, delisted, or sparse).
5. ``min_price``: the last valid close before day 0 (normally day -1's) or the
   median valid close over the estimation window is below ``min_price``
   (penny stocks: tick-size noise and bid-ask bounce dominate their returns).
6. ``max_zero_share``: more than ``max_zero_share`` of the estimation-window
   returns are exactly zero (flat, halted or thinly traded).
7. ``unfittable``: the model cannot be fitted (no residual variation), or
   fits exactly (R² = 1: the series is a copy or multiple of the benchmark,
   so its "residual sigma" is rounding error and every t would be spurious).
8. ``event_gap``: a return is missing on some day of the event span.

With thousands of tests at once, each window's p-values also get a
Benjamini-Hochberg (1995) q-value.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evstudy._version import __version__
from evstudy.config import (
    DEFAULT_BENCHMARK, DEFAULT_ESTIMATION, DEFAULT_MAX_ZERO_SHARE, DEFAULT_MIN_RETURNS, DEFAULT_WINDOWS,
    EventSpec, ModelName, Window, check_window_layout, normalize_ticker,
)
from evstudy.errors import ConfigError, DataSourceError, InsufficientDataError
from evstudy.models import ModelFit, exact_fit, fit
from evstudy.returns import close_to_close, nan_median, price_glitches, zero_share_of

if TYPE_CHECKING:
    import pandas as pd

    from evstudy.calendar import EventTimeline
    from evstudy.prices.base import PriceData
    from evstudy.prices.dataset import IndexedMarket

# No pandas here: a scan answered from the price index (evstudy.prices.dataset) computes on numpy
# arrays and writes its files without it (~0.3 s of start-up). ScanResults' DataFrames (table, funnel,
# highlights) are built on first use, for notebooks; scipy.special (the t p-values) loads in a thread.
# A dated event is placed on the data's trading days, so exchange_calendars (~0.2 s to import and
# build the NYSE calendar, and pandas) is only loaded for a timestamped event.

SCAN_MODELS: tuple[str, ...] = ("market", "constant_mean", "market_adjusted")  # need only the benchmark
DEFAULT_TOP = 50
DEFAULT_MIN_PRICE = 1.0
DATE_MARGIN = 10  # extra sessions loaded on each side, for benchmarks that miss a day

FILTERS: tuple[tuple[str, str], ...] = (
    ("benchmark", "the benchmark itself"),
    ("invalid_price", "a close <= 0 or non-finite in the estimation or event window"),
    ("price_glitch",
     "a price glitch: a one-day 5x move before the event, a spike undone the next day, or a close below $0.05"),
    ("min_returns", "too few valid returns in the estimation window"),
    ("min_price", "price below the floor (last close before day 0, or median estimation-window close)"),
    ("max_zero_share", "too many zero returns in the estimation window"),
    ("unfittable", "the model cannot be fitted (no variation), or fits exactly (a multiple of the benchmark)"),
    ("event_gap", "a missing return in the event window"),
)
FILTER_CODE = {name: code for code, (name, _) in enumerate(FILTERS)}
NOT_IN_SOURCE = "not in the price source"


@dataclass(frozen=True)
class ScanConfig:
    """Parameters of a whole-market scan; checked once, here.

    ``highlight`` names covered tickers whose rank the report shows (they need
    not be in the data: a missing one is reported as such).
    """

    event: EventSpec
    benchmark: str = DEFAULT_BENCHMARK
    model: ModelName = "market"
    estimation_window: Window = Window(*DEFAULT_ESTIMATION)
    windows: tuple[Window, ...] = tuple(Window(*w) for w in DEFAULT_WINDOWS)
    top: int = DEFAULT_TOP
    min_price: float = DEFAULT_MIN_PRICE
    min_returns: int = DEFAULT_MIN_RETURNS
    max_zero_share: float = DEFAULT_MAX_ZERO_SHARE
    highlight: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "benchmark", normalize_ticker(self.benchmark, " (--benchmark)"))
        object.__setattr__(self, "highlight", tuple(dict.fromkeys(
            normalize_ticker(t, " (--highlight)") for t in self.highlight
        )))
        if self.model not in SCAN_MODELS:
            raise ConfigError(
                f"--model {self.model!r} cannot be used for a scan: choose one of {', '.join(SCAN_MODELS)} "
                f"(models that need only the benchmark's returns)"
            )
        if not self.windows:
            raise ConfigError("no event window given: give at least one --window such as 0,0")
        check_window_layout(self.windows, self.estimation_window, self.span, flag="--window")
        est = self.estimation_window
        if not 3 <= self.min_returns <= est.length:
            raise ConfigError(
                f"--min-returns {self.min_returns}: give 3 to {est.length} (the estimation window {est.label} "
                f"has {est.length} days)"
            )
        if not 0.0 < self.max_zero_share <= 1.0:
            raise ConfigError(f"--max-zero-share {self.max_zero_share}: give a share in (0, 1]")
        if not (math.isfinite(self.min_price) and self.min_price >= 0):
            raise ConfigError(f"--min-price {self.min_price}: give a price >= 0 (0 turns the floor off)")
        if self.top < 1:
            raise ConfigError(f"--top {self.top}: give at least 1")

    @property
    def span(self) -> Window:
        """Every event-window day, and day 0 (whose AR the ranking uses)."""
        return Window(min(0, *(w.start for w in self.windows)), max(0, *(w.end for w in self.windows)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready echo of the parameters, for scan.json."""
        event = self.event
        return {
            "event": {
                "date": event.date.isoformat(),
                "timing": event.timing,
                "timestamp": event.timestamp.isoformat() if event.timestamp else None,
            },
            "benchmark": self.benchmark,
            "model": self.model,
            "estimation_window": [self.estimation_window.start, self.estimation_window.end],
            "windows": [[w.start, w.end] for w in self.windows],
            "top": self.top,
            "min_price": self.min_price,
            "min_returns": self.min_returns,
            "max_zero_share": self.max_zero_share,
            "highlight": list(self.highlight),
        }


def window_key(window: Window) -> str:
    """The column suffix of a window in scan.csv, readable in a spreadsheet: ``day0``, ``day+1``,
    ``days_-1_to_+1``, ``days_0_to_+5`` (so columns read car_day0, p_days_-1_to_+1, ...)."""
    def day(d: int) -> str:
        return "0" if d == 0 else f"{d:+d}"

    if window.start == window.end:
        return f"day{day(window.start)}"
    return f"days_{day(window.start)}_to_{day(window.end)}"


DAY0_KEY = "day0"  # window_key(Window(0, 0)): the day-0 columns the scan report and summary read


HIGHLIGHT_COLUMNS = ("ticker", "status", "rank", "percentile", "ar_day0", "reason")


@dataclass(frozen=True)
class ScanResults:
    """What a scan computed: the ranked table, the filter funnel, the highlighted tickers.

    ``columns`` is the ranked table column by column (numpy arrays, one row per
    qualifying ticker, ranked by day-0 AR, rank 1 = largest), with per window
    ``car_<key>``, ``t_<key>``, ``p_<key>`` and the Benjamini-Hochberg
    ``q_<key>`` (see :func:`window_key`); ``table`` is the same as a pandas
    DataFrame. ``removed`` counts, per filter of FILTERS, the tickers it
    removed from the ``n_tickers`` in the data; ``funnel`` is that as a
    DataFrame. ``highlight_rows`` (and the ``highlights`` frame) place every
    highlighted ticker: its rank, or the filter that removed it. The frames are
    built on first use (importing pandas), so the CLI writes its files without.
    """

    config: ScanConfig
    version: str
    provenance: dict[str, Any]
    timeline: EventTimeline
    columns: dict[str, np.ndarray]
    removed: tuple[int, ...]
    n_tickers: int
    highlight_rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_ranked(self) -> int:
        return len(self.columns["rank"])

    @cached_property
    def table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.columns)

    @cached_property
    def funnel(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.funnel_rows(), columns=["filter", "description", "rule", "start", "removed", "remaining"])

    @cached_property
    def highlights(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(list(self.highlight_rows), columns=list(HIGHLIGHT_COLUMNS))

    def funnel_rows(self) -> list[dict[str, Any]]:
        """One record per filter, in order: how many tickers it removed and how many remained."""
        config = self.config
        limits = {
            "min_returns": f">= {config.min_returns} valid returns in {config.estimation_window.label}",
            "min_price": f">= ${config.min_price:g}",
            "max_zero_share": f"<= {config.max_zero_share:.0%} zero returns",
        }
        rows, remaining = [], self.n_tickers
        for (name, text), removed in zip(FILTERS, self.removed):
            remaining -= removed
            rows.append({
                "filter": name, "description": text, "rule": limits.get(name, ""), "start": self.n_tickers,
                "removed": removed, "remaining": remaining,
            })
        return rows

    def highlight_records(self) -> list[dict[str, Any]]:
        """The highlighted tickers as scan.json lists them.

        A rank column holding a missing rank is written as floats (2127.0),
        as scan.json has always written it (pandas' NaN-able column).
        """
        rows = [dict(zip(HIGHLIGHT_COLUMNS, row)) for row in self.highlight_rows]
        ranks = [row["rank"] for row in rows]
        if None in ranks and any(rank is not None for rank in ranks):
            for row in rows:
                row["rank"] = None if row["rank"] is None else float(row["rank"])
        return rows

    def window_rows(self, alpha: float = 0.05) -> list[dict[str, Any]]:
        """Per window: tickers with p < alpha, with q < alpha (BH), positive and negative."""
        rows = []
        for window in self.config.windows:
            key = window_key(window)
            car, p, q = (self.columns[f"{c}_{key}"] for c in ("car", "p", "q"))
            rows.append({
                "window": window.label,
                "window_start": window.start,
                "window_end": window.end,
                "n": len(car),
                "mean_car": float(car.mean()) if len(car) else None,
                "median_car": float(np.median(car)) if len(car) else None,
                "p_below": int((p < alpha).sum()),
                "q_below": int((q < alpha).sum()),
                "q_below_up": int(((q < alpha) & (car > 0)).sum()),
                "q_below_down": int(((q < alpha) & (car < 0)).sum()),
                "expected_false_p": alpha * len(car),
            })
        return rows

    def window_summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """:meth:`window_rows` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.window_rows(alpha))

    def to_dict(self) -> dict[str, Any]:
        """scan.json: parameters, day 0, the funnel, highlighted ranks, per-window counts, provenance."""
        return {
            "evstudy_version": self.version,
            "kind": "scan",
            "parameters": self.config.to_dict(),
            "data": self.provenance,
            "event": self.timeline.to_dict(),
            "n_ranked": self.n_ranked,
            "ranking": "day-0 abnormal return, largest first (rank 1); percentile = rank / n_ranked * 100",
            "filters": self.funnel_rows(),
            "highlights": [{k: _json_value(v) for k, v in row.items()} for row in self.highlight_records()],
            "windows": [{k: _json_value(v) for k, v in row.items()} for row in self.window_rows()],
            "columns": list(self.columns),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        return (
            f"<ScanResults day 0 {self.timeline.day0.date()}: {self.n_ranked} tickers ranked, "
            f"{sum(self.removed)} filtered out; model {self.config.model} vs {self.config.benchmark}>"
        )


def _json_value(value: Any) -> Any:
    """A float that JSON can hold (non-finite as None); other values as they are."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------- statistics


def bh_qvalues(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) along the last axis.

    Notes
    -----
    Benjamini & Hochberg (1995), step-up procedure: with the m finite p-values
    sorted ascending, p_(1) <= ... <= p_(m),

        q_(i) = min_{j >= i} min(1, m / j * p_(j)),

    so rejecting every hypothesis with q <= alpha controls the false discovery
    rate at alpha (independent or positively dependent tests). NaN p-values are
    left out of m and stay NaN. Vectorized: one sort per row, a reversed
    running minimum, no Python loop over tests.
    """
    p = np.asarray(p_values, dtype=float)
    flat = p.reshape(-1, p.shape[-1]) if p.ndim else p.reshape(1, 1)
    finite = np.isfinite(flat)
    m = finite.sum(axis=1, keepdims=True)
    order = np.argsort(np.where(finite, flat, np.inf), axis=1, kind="stable")
    ranked = np.take_along_axis(flat, order, axis=1)
    ranks = np.arange(1, flat.shape[1] + 1)[None, :]
    with np.errstate(invalid="ignore"):
        scaled = np.where(ranks <= m, ranked * m / ranks, np.inf)
    running = np.minimum.accumulate(scaled[:, ::-1], axis=1)[:, ::-1]
    q_sorted = np.where(ranks <= m, np.minimum(running, 1.0), np.nan)
    q = np.empty_like(flat)
    np.put_along_axis(q, order, q_sorted, axis=1)
    return q.reshape(p.shape)


# --------------------------------------------------------------------------- data range


def scan_dates(config: ScanConfig) -> tuple[dt.date, dt.date]:
    """Calendar dates that surely hold every session a scan needs, found without the NYSE calendar.

    The scan needs the sessions from the day before the estimation window to
    the end of the event span, plus DATE_MARGIN on each side. NYSE trades at
    least 5 sessions in 7 days outside holiday weeks, so n sessions fit in
    n * 7 / 5 calendar days plus three weeks of slack (holidays; day 0 lying
    up to 4 days after the announced date). Loading a few extra days changes
    nothing: run_scan places day 0 on the benchmark's trading days.
    """
    est, span = config.estimation_window, config.span
    event = config.event
    day = event.timestamp.date() if event.timestamp is not None else event.date
    back = (-est.start + 1 + DATE_MARGIN) * 7 // 5 + 21
    ahead = (span.end + DATE_MARGIN) * 7 // 5 + 21
    return day - dt.timedelta(days=back), day + dt.timedelta(days=ahead)


# --------------------------------------------------------------------------- the scan


def _midnight(day: np.datetime64) -> dt.datetime:
    return dt.datetime.combine(day.item(), dt.time())


def _locate(days: np.ndarray, config: ScanConfig) -> tuple[int, EventTimeline, slice, slice]:
    """Day 0's row in the benchmark's trading days (datetime64[D]), and the estimation and event rows."""
    from evstudy.calendar import EventTimeline, TradingDays, day_zero_row, locate_day_zero

    event, est, span = config.event, config.estimation_window, config.span
    # A dated event is placed on the benchmark's trading days (the NYSE sessions in the data), by the
    # study's own rule, without building the NYSE calendar; a timestamp needs the calendar's hours.
    zero = locate_day_zero(event, TradingDays(days, f"the trading days of {config.benchmark} in the price data"))
    first = days[0].item()
    i0 = day_zero_row(
        days, zero.day0, span_start=span.start, span_end=span.end, estimation_end=est.end,
        who=f"--event {event.date}", benchmark=config.benchmark,
    )
    est_rows = slice(max(i0 + est.start, 1), i0 + est.end + 1)
    ev_rows = slice(i0 + span.start, i0 + span.end + 1)
    available = est_rows.stop - est_rows.start
    if available < config.min_returns:
        raise InsufficientDataError(
            f"--event {event.date}: the estimation window {est.label} starts before the data ({first}): only "
            f"{available} trading days are available, fewer than --min-returns {config.min_returns}; "
            f"choose a later event, a shorter --estimation-window or a lower --min-returns"
        )
    timeline = EventTimeline(
        event_id=event.id,
        label=event.label,
        announced=zero.announced,
        timing=zero.timing,
        day0=_midnight(days[i0]),
        mapping=zero.mapping,
        estimation_start=_midnight(days[est_rows.start]),
        estimation_end=_midnight(days[est_rows.stop - 1]),
        span_start=_midnight(days[ev_rows.start]),
        span_end=_midnight(days[ev_rows.stop - 1]),
    )
    return i0, timeline, est_rows, ev_rows


def _check_benchmark_trades(market_est: np.ndarray, config: ScanConfig) -> None:
    """A benchmark flat on most estimation days cannot carry a beta: refused, not scanned against."""
    share = zero_share_of(market_est[:, None])[0]
    if share > config.max_zero_share:
        raise InsufficientDataError(
            f"--benchmark {config.benchmark} is flat on {share:.0%} of the estimation window "
            f"{config.estimation_window.label} (exactly-zero returns; allowed: {config.max_zero_share:.0%}): "
            f"its betas would be meaningless; "
            f"check its prices or choose a benchmark that trades (e.g. SPY)"
        )


def _last_valid(values: np.ndarray) -> np.ndarray:
    """Per column, the last non-NaN value of ``values`` (rows x columns); NaN where none."""
    valid = ~np.isnan(values)
    row = len(values) - 1 - valid[::-1].argmax(axis=0)  # the last valid row (or row 0 if there is none)
    cols = np.arange(values.shape[1])
    return np.where(valid[row, cols], values[row, cols], np.nan)


def run_scan(config: ScanConfig, data: PriceData) -> ScanResults:
    """Scan every ticker of ``data`` around ``config.event``; rank by day-0 AR.

    See :func:`scan_closes`, which this calls with the frame's values.
    """
    closes = data.closes
    return scan_closes(
        config, closes.to_numpy(dtype=float), closes.index.to_numpy().astype("datetime64[D]"), list(closes.columns),
        location=data.location, provenance=_provenance(data),
    )


def scan_closes(
    config: ScanConfig,
    closes: np.ndarray,
    dates: np.ndarray,
    tickers: list[str],
    *,
    location: str,
    provenance: dict[str, Any],
    columns: np.ndarray | None = None,
    workers: int | None = None,
) -> ScanResults:
    """Scan ``closes`` (dates x columns) of ``tickers`` around ``config.event``; rank by day-0 AR.

    ``dates`` are the rows' days (datetime64[D], ascending); ``columns``, if
    given, picks the tickers' columns out of a wider ``closes`` (a view of the
    price index), so only the rows and columns used are copied. ``workers``
    column blocks are screened in threads (default: one per core, up to 4, of
    at least 2,000 tickers each); the numbers do not depend on it.

    Raises DataSourceError if the benchmark has no prices, CalendarError if the
    event windows do not fit in the data, InsufficientDataError if no ticker
    passes the filters.

    Notes
    -----
    AR_it = R_it - (alpha_i + beta_i R_mt) (market model; MacKinlay 1997,
    eq. 7), CAR_i = sum of AR over the window, its variance
    s_i^2 (L2 + v' (X'X)^-1 v) with the estimation error (eq. 10-11),
    t = CAR / SE and two-sided p from Student's t with L1 - 2 degrees of
    freedom: exactly :func:`evstudy.abnormal.car_stats`, for every ticker at
    once. q-values: :func:`bh_qvalues`.
    """
    from evstudy.abnormal import abnormal_returns, car_stats

    # The t p-values' scipy.special (~0.1 s of imports) loads in a thread while the screens' numpy work runs.
    importing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evstudy-import")
    t_distribution = importing.submit(importlib.import_module, "scipy.special")
    importing.shutdown(wait=False)

    bench = config.benchmark
    if not len(dates) or not len(tickers):
        raise DataSourceError(
            f"{location} has no prices for the dates a scan of --event {config.event.date} needs; "
            f"choose an event inside the data"
        )
    where = {name: i for i, name in enumerate(tickers)}
    bench_col = where.get(bench, -1)
    bench_closes = closes[:, bench_col if columns is None else columns[bench_col]] if bench_col >= 0 else None
    if bench_closes is None or not np.isfinite(bench_closes).any():
        # load_all leaves out a ticker without closes in range: absent here may mean "in the file, but empty there"
        hint = "give it closes there" + (
            "" if bench == DEFAULT_BENCHMARK else f" or choose a benchmark the source holds (e.g. {DEFAULT_BENCHMARK})"
        )
        raise DataSourceError(
            f"--benchmark {bench} has no close in {location} between {dates[0].item()} and "
            f"{dates[-1].item()}, the dates a scan of --event {config.event.date} needs; {hint}"
        )
    # The benchmark's trading days: its valid (positive, finite) closes, as evstudy.returns.trading_days.
    trading = np.flatnonzero(np.isfinite(bench_closes) & (bench_closes > 0))
    days = dates[trading]
    if len(days) < 2:
        raise InsufficientDataError(f"benchmark {bench} has fewer than 2 valid closes in {location}")
    i0, timeline, est_rows, ev_rows = _locate(days, config)

    # Returns only on the rows used: from the day before the estimation window to the last event day.
    base = est_rows.start - 1
    rows = trading[base : ev_rows.stop]
    est = slice(est_rows.start - base, est_rows.stop - base)
    ev = slice(ev_rows.start - base, ev_rows.stop - base)
    position = np.arange(len(tickers)) if columns is None else columns
    market = close_to_close(closes[np.ix_(rows, position[[bench_col]])])[0][:, 0]
    _check_benchmark_trades(market[est], config)

    # Every ticker's filters and fit, column block by column block: each block's numpy work releases the
    # GIL, so on a machine with idle cores the blocks run side by side (a whole-market scan's ~0.2 s).
    edges = np.linspace(0, len(tickers), min(workers or _workers(len(tickers)), len(tickers)) + 1).astype(int)
    screen = partial(_screen, config, closes, position, rows, est, ev, i0 - base, market, bench_col)
    with ThreadPoolExecutor(max_workers=len(edges) - 2 or 1, thread_name_prefix="evstudy-scan") as pool:
        others = [pool.submit(screen, start, stop) for start, stop in zip(edges[1:-1], edges[2:])]
        blocks = [screen(edges[0], edges[1]), *(block.result() for block in others)]
    dropped_by = np.concatenate([b.dropped_by for b in blocks])
    zero_share = np.concatenate([b.zero_share for b in blocks])
    close_before = np.concatenate([b.close_before for b in blocks])
    cols = np.concatenate([b.cols for b in blocks])
    tickers = np.array(tickers, dtype=object)
    if not len(cols):
        raise InsufficientDataError(
            f"no ticker in {location} passes the filters for day 0 {timeline.day0.date()}: "
            f"{_funnel_words(dropped_by, len(tickers))}"
        )
    sub = ModelFit(config.model, *(
        np.concatenate([getattr(b.fitted, name) for b in blocks], axis=1 if name == "residuals" else 0)
        for name in ("params", "xtx_inv", "s2", "n", "df", "r2", "residuals")
    ))
    stock_ev = np.concatenate([b.stock_ev for b in blocks], axis=1)

    rel_days = np.arange(config.span.start, config.span.end + 1)
    market_ev = np.broadcast_to(market[ev, None], (len(rel_days), len(cols)))
    ar = abnormal_returns(sub, stock_ev, market_ev, rel_days)
    t_distribution.result()
    stats = car_stats(sub, ar, list(config.windows))
    q = bh_qvalues(stats.p_value)

    day0 = int(np.flatnonzero(rel_days == 0)[0])
    ar0 = ar.abnormal[day0]
    order = np.lexsort((cols, -ar0))  # ties: source column order
    n = len(cols)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    table: dict[str, Any] = {
        "ticker": tickers[cols],
        "rank": rank,
        "percentile": rank / n * 100.0,
        "ar_day0": ar0,
        "return_day0": ar.actual[day0],
    }
    for w, window in enumerate(config.windows):
        key = window_key(window)
        table[f"car_{key}"] = stats.car[w]
        table[f"t_{key}"] = stats.t[w]
        table[f"p_{key}"] = stats.p_value[w]
        table[f"q_{key}"] = q[w]
    if config.model in ("market", "constant_mean"):
        table["alpha"] = sub.params[:, 0]
    if config.model == "market":
        table["beta"] = sub.params[:, 1]
    table.update({
        "sigma": sub.sigma,
        "n_obs": sub.n.astype(np.int64),
        "zero_share": zero_share[cols],
        "close_before": close_before[cols],
        "highlighted": np.isin(tickers[cols], list(config.highlight)),
    })
    ranked = {name: values[order] for name, values in table.items()}
    removed = np.bincount(dropped_by[dropped_by >= 0], minlength=len(FILTERS))
    notes = [
        "returns are close-to-close from adjusted closes; intraday moves quoted in the news can differ",
        f"{n:,} tests per window: use the BH q-value, not p, to pick out movers "
        f"(at p < 0.05 about {0.05 * n:,.0f} would pass by chance alone)",
    ]
    return ScanResults(
        config=config,
        version=__version__,
        provenance=provenance,
        timeline=timeline,
        columns=ranked,
        removed=tuple(int(k) for k in removed),
        n_tickers=len(tickers),
        highlight_rows=_highlights(config, where, dropped_by, cols, rank, ar0, n),
        notes=tuple(notes),
    )


def _workers(n_tickers: int) -> int:
    """Column blocks for a scan of ``n_tickers``: one per core (up to 4), each of at least 2,000 tickers."""
    return max(1, min(os.cpu_count() or 1, 4, n_tickers // 2000))


@dataclass(frozen=True)
class _Block:
    """What :func:`_screen` found for one block of tickers (arrays over the block; ``cols`` global)."""

    dropped_by: np.ndarray  # filter code per ticker, -1 if it passed
    zero_share: np.ndarray
    close_before: np.ndarray
    cols: np.ndarray  # the tickers that passed (positions in the whole scan)
    fitted: ModelFit  # their fit
    stock_ev: np.ndarray  # their event-window returns


def _screen(
    config: ScanConfig,
    closes: np.ndarray,
    position: np.ndarray,
    rows: np.ndarray,
    est: slice,
    ev: slice,
    before_day0: int,
    market: np.ndarray,
    bench_col: int,
    start: int,
    stop: int,
) -> _Block:
    """Returns, the dirty-data filters and the model fit for tickers [start, stop) of a scan.

    Every step works column by column, so blocks give the same numbers as the
    whole matrix at once: one copy of the block's closes on ``rows``, returns by
    :func:`evstudy.returns.close_to_close` (simple_returns' arithmetic), then the
    filters in FILTERS order and :func:`evstudy.models.fit` on the survivors.
    """
    prices = closes[np.ix_(rows, position[start:stop])]
    returns, invalid_prices, _ = close_to_close(prices)
    stock_est = returns[est]
    n_valid = np.isfinite(stock_est).sum(axis=0)
    zero_share = (stock_est == 0.0).sum(axis=0) / np.maximum(n_valid, 1)
    close_before = _last_valid(prices[:before_day0])  # rows up to day -1
    glitches = price_glitches(prices, jump_rows=ev.start)
    fails = [
        np.arange(start, stop) == bench_col,
        invalid_prices > 0,
        glitches.found,
        n_valid < config.min_returns,
    ]
    dropped_by = np.full(stop - start, -1, dtype=np.int8)
    for code, failed in enumerate(fails):
        dropped_by[(dropped_by < 0) & failed] = code
    # The price floor needs a median, computed only where the cheaper filters passed.
    alive = np.flatnonzero(dropped_by < 0)
    cheap = (close_before[alive] < config.min_price) | (nan_median(prices[est][:, alive], in_place=True) < config.min_price)  # a copy
    dropped_by[alive[cheap]] = FILTER_CODE["min_price"]
    dropped_by[(dropped_by < 0) & (zero_share > config.max_zero_share)] = FILTER_CODE["max_zero_share"]

    cand = np.flatnonzero(dropped_by < 0)
    # numpy sums a lone column pairwise but several columns row by row: a block left with one candidate
    # fits it twice, so that every split of the tickers gives the bits of the whole matrix at once.
    picked = np.repeat(cand, 2) if len(cand) == 1 else cand
    market_est = np.broadcast_to(market[est, None], (est.stop - est.start, len(picked)))
    fitted = fit(config.model, stock_est[:, picked], market_est)
    if len(cand) == 1:
        fitted = fitted.series(np.array([True, False]))
    fittable = np.isfinite(fitted.s2) & (fitted.s2 > 0) & np.isfinite(fitted.params).all(axis=1)
    fittable &= ~exact_fit(fitted)
    dropped_by[cand[~fittable]] = FILTER_CODE["unfittable"]
    stock_ev = returns[ev][:, cand]
    gap = ~np.isfinite(stock_ev).all(axis=0)
    dropped_by[cand[fittable & gap]] = FILTER_CODE["event_gap"]
    keep = fittable & ~gap
    return _Block(dropped_by, zero_share, close_before, start + cand[keep], fitted.series(keep), stock_ev[:, keep])


def _provenance(data: PriceData) -> dict[str, Any]:
    """PriceData.provenance() with the ticker count instead of the list (10,000 names, 40 ms to copy)."""
    index = data.closes.index
    return {
        "source": data.source,
        "location": data.location,
        "first_date": index[0].date().isoformat() if len(index) else None,
        "last_date": index[-1].date().isoformat() if len(index) else None,
        "n_tickers": data.closes.shape[1],
        "missing": list(data.missing),
        "notes": list(data.notes),
        **data.details,
    }


def _funnel_words(dropped_by: np.ndarray, total: int) -> str:
    removed = np.bincount(dropped_by[dropped_by >= 0], minlength=len(FILTERS))
    return f"{total:,} tickers; " + ", ".join(f"{name} removed {k:,}" for (name, _), k in zip(FILTERS, removed) if k)


def _highlights(
    config: ScanConfig,
    where: dict[str, int],
    dropped_by: np.ndarray,
    cols: np.ndarray,
    rank: np.ndarray,
    ar0: np.ndarray,
    n: int,
) -> tuple[tuple[Any, ...], ...]:
    """Each highlighted ticker's (ticker, status, rank, percentile, day-0 AR, reason): ranked, or why not."""
    position = {int(c): i for i, c in enumerate(cols)}
    rows = []
    for ticker in config.highlight:
        col = where.get(ticker)
        if col is None:
            rows.append((ticker, "missing", None, None, None, NOT_IN_SOURCE))
        elif int(col) in position:
            i = position[int(col)]
            rows.append((ticker, "ranked", int(rank[i]), float(rank[i] / n * 100.0), float(ar0[i]), ""))
        else:
            name, text = FILTERS[int(dropped_by[col])]
            rows.append((ticker, "filtered", None, None, None, f"{name}: {text}"))
    return tuple(rows)


def scan_indexed(config: ScanConfig, market: IndexedMarket, location: str) -> ScanResults:
    """:func:`scan_closes` on the market read from a file's local index, described as its reader would."""
    provenance = {  # what FileSource.load_all's PriceData gives (_provenance)
        "source": "files",
        "location": location,
        "first_date": market.days[0].item().isoformat() if len(market.days) else None,
        "last_date": market.days[-1].item().isoformat() if len(market.days) else None,
        "n_tickers": len(market.tickers),
        "missing": [],
        "notes": [],
    }
    return scan_closes(
        config, market.closes, market.days, market.tickers, location=location, provenance=provenance,
        columns=market.columns,
    )


def load_scan_prices(config: ScanConfig, prices: str | os.PathLike[str]) -> PriceData:
    """Every ticker's closes over the dates the scan needs, from a local file or folder."""
    from evstudy.prices.files import FileSource

    return FileSource(prices).load_all(*scan_dates(config))


def _prepare_statistics(config: ScanConfig) -> None:
    """Import what run_scan needs, and build the NYSE calendar for a timestamped event."""
    from evstudy import abnormal, calendar  # noqa: F401

    if config.event.timestamp is not None:
        from evstudy.calendar import nyse_calendar

        nyse_calendar()


def scan_market(config: ScanConfig, prices: str | os.PathLike[str]) -> ScanResults:
    """Load the whole market from ``prices`` and scan it (the CLI's one library call).

    From a long price file's second read on, its local index answers
    (:func:`evstudy.prices.dataset.indexed_market`): memory-mapped, only the
    rows and columns the scan uses are copied, and neither the file's reader
    nor pandas is imported. Otherwise the file is read in a worker thread —
    Arrow decodes it in C++ threads that release the GIL — while this thread
    imports the statistics (and builds the NYSE calendar for a timestamped
    event), so on an idle two-core machine the two costs overlap.
    """
    from evstudy.prices.dataset import indexed_market

    market = indexed_market(prices, *scan_dates(config))
    if market is not None:
        return scan_indexed(config, market, str(Path(prices).expanduser()))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evstudy-read") as pool:
        loading = pool.submit(load_scan_prices, config, prices)
        _prepare_statistics(config)
        data = loading.result()
    return run_scan(config, data)
