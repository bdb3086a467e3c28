"""The study engine: prices in, :class:`StudyResults` out. Pure computation, no I/O.

For each event: place day 0 on the benchmark's trading days, fit the model for
every (ticker, benchmark) series at once on the estimation window, compute
ARs over the event span and CARs per window, exclude series that cannot be
trusted (each with its reason), then aggregate per basket. The basket test
battery then runs once for every event's baskets (:mod:`evstudy.battery`),
and each table is stacked once from every event's rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evstudy._version import __version__
from evstudy.abnormal import CarPath, CarStats, abnormal_returns, car_paths, car_stats
from evstudy.battery import EventArrays, battery_tables, blocked_rows, member_groups, prepare_event
from evstudy.calendar import day_zero_row, locate_day_zero, session_offset
from evstudy.config import EventSpec, StudyConfig
from evstudy.diagnostics import (
    BreakTest, EventWindowInputs, Hygiene, WindowDiagnostics, bhar_table, check_benchmarks_trade, comparison_table,
    estimation_hygiene, flag_table, parameter_table, robustness_table, screen_reasons, trim_reasons,
)
from evstudy.drift import pre_event_drift
from evstudy.errors import CalendarError, ConfigError, DataSourceError, DownloadError, InsufficientDataError
from evstudy.models import ModelFit, ModelInputs, alpha_beta, model_inputs
from evstudy.placebo import lookback_offset
from evstudy.prices.base import PriceData
from evstudy.prices.factors import FactorData
from evstudy.results import (
    AR_COLUMNS, BASKET_COLUMNS, BASKET_PATH_COLUMNS, BATTERY_COLUMNS, BHAR_COLUMNS, CAR_COLUMNS, CAR_PATH_COLUMNS,
    DIAGNOSTIC_COLUMNS, DRIFT_COLUMNS, FIT_COLUMNS, FIT_COMPARISON_COLUMNS, MEMBER_COLUMNS, PARAMETER_COLUMNS,
    PLACEBO_COLUMNS, PRICE_COLUMNS, ROBUSTNESS_COLUMNS, TEST_COLUMNS, EventTimeline, StudyResults,
)
from evstudy.returns import Glitches, ReturnPanel, price_glitches, simple_returns, trading_days
from evstudy.tables import Rows, stack as stack_rows
from evstudy.verdicts import headline_verdicts

HYGIENE_BATCH = 32  # events whose estimation-window hygiene runs in one call (their arrays held at once)
HYGIENE_SERIES = 1024  # and no more events once their series reach this many (a big event is a block alone)

# The basket table before the verdicts are added (evstudy.verdicts fills the rest of BASKET_COLUMNS).
CS_BASKET_COLUMNS = ["event", "basket", "benchmark", "window_start", "window_end", "n", "caar", "se", "cs_t", "cs_p",
                     "note"]


@dataclass(frozen=True)
class Series:
    """The (ticker, benchmark) pairs of one event, in a fixed column order.

    ``benchmarks`` are the labels results show (a ticker; "SPY+REMX" for the
    two-index model; the factor set's name for the factor model); ``markets``
    and ``sectors`` are the tickers whose returns the model uses.
    """

    tickers: list[str]
    benchmarks: list[str]
    markets: list[str] = field(default_factory=list)
    sectors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tickers)


@dataclass(frozen=True)
class _PanelArrays:
    """The return and close panels as numpy matrices with each ticker's column, read once per study.

    Selecting columns of a pandas frame by label costs ~1 ms a call with
    thousands of tickers; a catalogue selects a few per event.
    """

    returns: np.ndarray  # (days x tickers), the panel's own array
    closes: np.ndarray
    return_column: dict[str, int]
    close_column: dict[str, int]
    never_priced: frozenset[str]  # tickers without a single close in the panel
    invalid_prices: dict[str, int]

    @classmethod
    def of(cls, panel: ReturnPanel) -> _PanelArrays:
        closes = panel.closes.to_numpy(dtype=float)
        return cls(
            panel.returns.to_numpy(dtype=float), closes,
            {t: i for i, t in enumerate(panel.returns.columns.tolist())},
            {t: i for i, t in enumerate(panel.closes.columns.tolist())},
            frozenset(panel.closes.columns[np.isnan(closes).all(axis=0)]),
            dict(zip(panel.invalid_prices.index, panel.invalid_prices.to_numpy())),
        )

    def stock_returns(self, tickers: list[str]) -> np.ndarray:
        """(days x tickers) returns, as ``panel.returns[tickers].to_numpy()``."""
        return _select(self.returns, [self.return_column[t] for t in tickers])

    def stock_closes(self, tickers: list[str], rows: slice = slice(None)) -> np.ndarray:
        """(days x tickers) closes on ``rows``, as ``panel.closes[tickers].to_numpy()[rows]``.

        Only those rows are gathered: a ticker's column is scattered across the wide panel.
        """
        return _select(self.closes[rows], [self.close_column[t] for t in tickers])


def _select(matrix: np.ndarray, positions: list[int]) -> np.ndarray:
    """Columns of ``matrix`` laid out as pandas selects them, so every later sum adds in the same order.

    pandas takes evenly spaced columns as a view (a slice) and others as a
    row-major copy; numpy's reductions follow the memory layout.
    """
    if len(positions) > 1:
        step = positions[1] - positions[0]
        if step != 0 and all(b - a == step for a, b in zip(positions, positions[1:])):
            stop = positions[-1] + step
            return matrix[:, positions[0]:(stop if stop >= 0 else None):step]
    elif len(positions) == 1:
        return matrix[:, positions[0]:positions[0] + 1]
    return np.take(matrix, positions, axis=1)


def _series_and_members(config: StudyConfig, event: EventSpec) -> tuple[Series, list[tuple[str, str, str, str]]]:
    """The event's series, and its rows of ``results.memberships`` (event, basket, ticker, benchmark)."""
    pairs: dict[tuple[str, str], tuple[str, str]] = {}
    members = []
    for basket in config.baskets_for(event):
        if config.model == "factor" and config.factors is not None:
            labels = [(config.factors.label, config.benchmark, "")]
        elif config.model == "two_index":
            labels = [(f"{bench}+{basket.sector}", bench, basket.sector) for bench in basket.benchmarks]
        else:
            labels = [(bench, bench, "") for bench in basket.benchmarks]
        for label, market, sector in labels:
            for ticker in basket.tickers:
                pairs.setdefault((ticker, label), (market, sector))
                members.append((event.id, basket.name, ticker, label))
    tickers, benches = (list(x) for x in zip(*pairs)) if pairs else ([], [])
    markets, sectors = (list(x) for x in zip(*pairs.values())) if pairs else ([], [])
    return Series(tickers, benches, markets, sectors), members


def _regressors_present(x: np.ndarray) -> np.ndarray:
    """(days x series): the market returns, or for several regressors 0 where all are present and NaN where not."""
    return x if x.ndim == 2 else np.where(np.isfinite(x).all(axis=-1), 0.0, np.nan)


def _model_inputs(
    config: StudyConfig, days: pd.DatetimeIndex, arrays: _PanelArrays, series: Series, factors: FactorData | None,
    event: EventSpec, est_rows: slice, ev_rows: slice,
) -> tuple[ModelInputs, np.ndarray, np.ndarray, list[str]]:
    """The model's arrays over every trading day, each series' stock and market returns, and notes on factor gaps."""
    stock = arrays.stock_returns(series.tickers)
    market = arrays.stock_returns(series.markets)
    if config.model == "dimson" and ev_rows.stop >= len(days):
        raise CalendarError(
            f"event {event.id!r}: the Dimson model needs the market return of the day after the event window, "
            f"but the data ends {days[-1].date()}; shorten the windows or load more data"
        )
    if config.model == "two_index":
        return model_inputs("two_index", stock, market, sector=arrays.stock_returns(series.sectors)), stock, market, []
    if config.model != "factor":
        return model_inputs(config.model, stock, market), stock, market, []
    if factors is None or config.factors is None:
        raise ConfigError("model \"factor\" needs factor data: pass factors=read_factors(config.factors)")
    table = factors.factors.reindex(days)
    rf = factors.rf.reindex(days)
    have = (table.notna().all(axis=1) & rf.notna()).to_numpy()
    gaps = days[ev_rows][~have[ev_rows]]
    if len(gaps):
        listed = ", ".join(str(d.date()) for d in gaps[:3]) + (f" and {len(gaps) - 3} more" if len(gaps) > 3 else "")
        raise ConfigError(
            f"factor file {factors.file} (key 'file' in [factors]) has no factors for {listed}, in the event "
            f"window of event {event.id!r}; the file covers {factors.first_last()}: use a file that covers it"
        )
    notes = []
    est_gaps = days[est_rows][~have[est_rows]]
    if len(est_gaps):
        notes.append(
            f"event {event.id!r}: the factor file lacks {len(est_gaps)} trading days of the estimation window "
            f"(first {est_gaps[0].date()}); those days are left out of the fit"
        )
    inputs = model_inputs("factor", stock, market, factors=table.to_numpy(), rf=rf.to_numpy())
    return inputs, stock, market, notes


def _check_present(config: StudyConfig, data: PriceData) -> None:
    closes = data.closes
    indexes = (b for basket in config.baskets for b in (*basket.benchmarks, *((basket.sector,) if basket.sector else ())))
    for bench in dict.fromkeys([config.benchmark, *indexes]):
        if bench not in closes.columns or closes[bench].isna().all():
            if bench in data.missing:  # a network source could not deliver it: unavailable, not bad input
                raise DownloadError(
                    f"benchmark {bench}: no prices from {data.source} "
                    f"({data.missing_reasons.get(bench) or 'none in the range'}); every ticker is measured "
                    f"against it: retry later, or read prices from a file with --prices"
                )
            if bench in closes.columns and len(closes.index):  # in the source, but without a close in range
                raise DataSourceError(
                    f"benchmark {bench} has no close in {data.location} between {closes.index[0].date()} and "
                    f"{closes.index[-1].date()}, the dates this study needs; give it closes there or choose "
                    f"another benchmark"
                )
            raise DataSourceError(
                f"benchmark {bench} has no prices in {data.source} data ({data.location}): "
                f"choose a benchmark the source holds (e.g. SPY)"
            )


def _locate(days: pd.DatetimeIndex, event: EventSpec, config: StudyConfig) -> tuple[int, str, str, str]:
    zero = locate_day_zero(event)
    span, est = config.event_span, config.estimation_window
    i0 = day_zero_row(
        days, zero.day0, span_start=span.start, span_end=span.end, estimation_end=est.end,
        who=f"event {event.id!r}", benchmark=config.benchmark,
    )
    return i0, zero.announced, zero.timing, zero.mapping


def _day(offset: int) -> str:
    """A day relative to day 0 as the rest of the output writes it: -1, 0, +1."""
    return f"{offset:+d}" if offset else "0"


def _exclusion_reasons(
    config: StudyConfig,
    series: Series,
    fitted: ModelFit,
    zero_share: np.ndarray,
    stock_event: np.ndarray,
    market_event: np.ndarray,
    event_dates: pd.DatetimeIndex,
    rel_days: np.ndarray,
    missing: dict[str, str],
    never_priced: set[str],
) -> list[str]:
    """Why each series cannot be used ("" when it can), checked in a fixed order."""
    est = config.estimation_window
    with np.errstate(invalid="ignore"):  # each rule once, for every series: most pass them all
        too_few = fitted.n < config.min_estimation_returns
        too_flat = zero_share > config.max_zero_share
        unfitted = ~(np.isfinite(fitted.s2) & (fitted.s2 > 0) & np.isfinite(fitted.params).all(axis=1))
    bench_gap = ~np.isfinite(market_event).all(axis=0)
    stock_gap = ~np.isfinite(stock_event).all(axis=0)
    unpriced = np.array([t in missing or t in never_priced for t in series.tickers], dtype=bool)
    reasons = [""] * len(series.tickers)
    for k in np.flatnonzero(unpriced | too_few | too_flat | unfitted | bench_gap | stock_gap).tolist():
        ticker, bench = series.tickers[k], series.benchmarks[k]
        if unpriced[k]:
            reasons[k] = f"no prices: {missing[ticker]}" if missing.get(ticker) else "no prices in the data source"
        elif too_few[k]:
            reasons[k] = (
                f"only {int(fitted.n[k])} valid returns in the estimation window {est.label} "
                f"(needs {config.min_estimation_returns})"
            )
        elif too_flat[k]:
            reasons[k] = (
                f"{zero_share[k]:.0%} of estimation-window returns are exactly zero (allowed: "
                f"{config.max_zero_share:.0%}): flat, halted or thinly traded"
            )
        elif unfitted[k]:
            reasons[k] = "the model cannot be fitted: no variation in the estimation window"
        elif bench_gap[k]:
            gaps = [f"{event_dates[i].date()} (day {_day(rel_days[i])})" for i in np.flatnonzero(~np.isfinite(market_event[:, k]))]
            reasons[k] = f"benchmark {bench} has no return on {', '.join(gaps[:3])} in the event window"
        else:
            gaps = [f"{event_dates[i].date()} (day {_day(rel_days[i])})" for i in np.flatnonzero(~np.isfinite(stock_event[:, k]))]
            more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
            reasons[k] = f"no return on {', '.join(gaps[:3])}{more} in the event window"
    return reasons


def _basket_tables(
    config: StudyConfig,
    event: EventSpec,
    members: list[tuple[str, str, str, str]],
    included: tuple[np.ndarray, np.ndarray],
    stats: CarStats,
    paths: CarPath,
    rel_days: np.ndarray,
) -> tuple[list[tuple], list[tuple]]:
    """Per basket x benchmark: CAAR and its standard error per window, and the CAAR path.

    ``included`` holds the (tickers, benchmarks) of the columns of ``stats`` and ``paths``. The
    cross-sectional t of each row is the battery's ``cs_t`` (:func:`_with_cs_t`), not computed twice.
    """
    column = {key: i for i, key in enumerate(zip(*included))}
    basket_rows, path_rows = [], []
    windows = config.windows
    for (basket, bench), keys in member_groups(members).items():
        cols = [column[key] for key in keys if key in column]
        n = len(cols)
        cars = stats.car[:, cols]
        # each window's mean row by row: numpy sums a lone row in another order than a row of a matrix
        caars = [float(row.mean()) for row in cars] if n else [np.nan] * len(windows)
        ses = [float(row.std(ddof=1) / np.sqrt(n)) for row in cars] if n > 1 else [np.nan] * len(windows)
        basket_rows.extend(
            (event.id, basket, bench, window.start, window.end, n, caar, se)
            for window, caar, se in zip(windows, caars, ses)
        )
        if n:
            path = paths.car[:, cols]
            path_se = path.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(rel_days), np.nan)
            path_rows.extend(
                (event.id, basket, bench, day, n, mean, se)
                for day, mean, se in zip(rel_days.tolist(), [float(row.mean()) for row in path], path_se.tolist())
            )
    return basket_rows, path_rows


def _with_cs_t(basket_rows: list[tuple], test_rows: list[tuple]) -> list[tuple]:
    """One event's basket rows with the cross-sectional t, its p and note from the battery's ``cs_t`` rows.

    Both list the event's baskets in membership order, window by window; the battery's ``cs_t`` is
    :func:`evstudy.inference.cs_t` of the same CARs, so each value is the one a second call would give.
    """
    cs = [(row[6], row[7], row[9]) for row in test_rows if row[5] == "cs_t"]
    if len(cs) != len(basket_rows):
        raise AssertionError(f"{len(basket_rows)} basket rows but {len(cs)} cs_t rows from the battery")
    return [(*row, *test) for row, test in zip(basket_rows, cs)]


def _long_table(
    event_id: str,
    included: tuple[np.ndarray, np.ndarray],
    row_labels: dict[str, object],
    values: dict[str, np.ndarray],
    columns: list[str],
) -> Rows:
    """A tidy table from (rows x series) matrices: one line per row label and included series.

    ``row_labels`` label the matrices' rows (days or windows), ``included``
    their columns (tickers, benchmarks); the matrices are raveled row-major.
    """
    tickers, benches = included
    n_series = len(tickers)
    n_rows = len(next(iter(values.values())))
    return Rows.of(columns, n_series * n_rows, {
        "event": event_id,
        "ticker": np.tile(tickers, n_rows),
        "benchmark": np.tile(benches, n_rows),
        **{name: np.repeat(np.asarray(labels), n_series) for name, labels in row_labels.items()},
        **{name: matrix.ravel() for name, matrix in values.items()},
    }, repeat_text=True)


@dataclass(frozen=True)
class _EventInputs:
    """One event's day 0, series and model arrays: what its estimation-window hygiene and the rest start from."""

    event: EventSpec
    i0: int
    announced: str
    timing: str
    mapping: str
    series: Series
    members: list[tuple[str, str, str, str]]
    est_rows: slice
    ev_rows: slice
    inputs: ModelInputs
    stock_all: np.ndarray
    market_all: np.ndarray
    model_notes: list[str]
    window_rows: slice  # the glitch screen's rows: the close before the estimation window to the last event day
    window_closes: np.ndarray  # (rows x series) closes on them


def _event_inputs(
    config: StudyConfig, event: EventSpec, days: pd.DatetimeIndex, arrays: _PanelArrays, factors: FactorData | None,
) -> _EventInputs:
    """Place the event's day 0, list its series and gather their model arrays; raise typed errors on unusable input."""
    i0, announced, timing, mapping = _locate(days, event, config)
    span, est = config.event_span, config.estimation_window
    series, members = _series_and_members(config, event)

    est_rows = slice(max(i0 + est.start, 1), i0 + est.end + 1)
    ev_rows = slice(i0 + span.start, i0 + span.end + 1)
    if config.model not in ("constant_mean", "factor"):
        indexes = [b for b in dict.fromkeys([*series.markets, *series.sectors]) if b in arrays.return_column]
        check_benchmarks_trade(arrays.stock_returns(indexes)[est_rows], indexes, config.max_zero_share,
                               f"event {event.id!r}", est)
    inputs, stock_all, market_all, model_notes = _model_inputs(
        config, days, arrays, series, factors, event, est_rows, ev_rows
    )
    window_rows = slice(est_rows.start - 1, ev_rows.stop)  # glitches: from the close before the estimation window
    return _EventInputs(event, i0, announced, timing, mapping, series, members, est_rows, ev_rows, inputs, stock_all,
                        market_all, model_notes, window_rows, arrays.stock_closes(series.tickers, window_rows))


def _diagnostics_columns(diag: WindowDiagnostics, cols: slice) -> WindowDiagnostics:
    def breaks(test: BreakTest) -> BreakTest:
        return BreakTest(test.statistic[cols], test.start[cols], test.before[cols], test.after[cols])

    return WindowDiagnostics(diag.n[cols], breaks(diag.variance), breaks(diag.mean), diag.zero_run[cols],
                             diag.zero_run_start[cols], diag.center[cols], diag.scale[cols],
                             np.ascontiguousarray(diag.outliers[:, cols]))


def _hygiene_columns(hyg: Hygiene, cols: slice, dates: pd.DatetimeIndex) -> Hygiene:
    """One event's :class:`~evstudy.diagnostics.Hygiene` from that of several events' series side by side."""
    full = hyg.full.series(cols, contiguous=True)
    full_diag = _diagnostics_columns(hyg.full_diag, cols)
    return Hygiene(
        hyg.tickers[cols], full, hyg.fitted.series(cols, contiguous=True),
        full if hyg.active is hyg.full else hyg.active.series(cols, contiguous=True), full_diag,
        full_diag if hyg.used_diag is hyg.full_diag else _diagnostics_columns(hyg.used_diag, cols),
        hyg.first_row[cols], hyg.active_row[cols], hyg.how[cols], hyg.compare[cols],
        np.ascontiguousarray(hyg.used_stock[:, cols]), dates,
    )


def _glitches(prepared: list[_EventInputs]) -> list[Glitches]:
    """:func:`~evstudy.returns.price_glitches` of each event's window closes, events of one window shape in one call.

    Every rule is column by column (the robust scale a median per column), so each event's
    glitches are those of its own closes alone.
    """
    shapes: dict[tuple, list[int]] = {}
    for i, item in enumerate(prepared):
        shapes.setdefault((item.window_closes.shape[0], item.ev_rows.start - item.window_rows.start), []).append(i)
    out: list[Glitches | None] = [None] * len(prepared)
    for (_, jump_rows), members in shapes.items():
        found = price_glitches(np.concatenate([prepared[i].window_closes for i in members], axis=1), jump_rows)
        start = 0
        for i in members:
            cols = slice(start, start + prepared[i].window_closes.shape[1])
            out[i] = Glitches(found.kind[cols], found.row[cols], found.before[cols], found.after[cols])
            start = cols.stop
    return out  # type: ignore[return-value]


def _hygienes(config: StudyConfig, days: pd.DatetimeIndex, prepared: list[_EventInputs]) -> list[Hygiene]:
    """:func:`~evstudy.diagnostics.estimation_hygiene` of each event, for events of one window shape in one call.

    Every fit, break test and robust scale is column by column, and the events' series side by side
    are laid out as each event's alone (row-major, so each column sums in row order), so each event's
    values are the same, bit for bit; an event of one series, whose lone column numpy would sum
    pairwise, runs alone. One call instead of one per event saves ~0.4 ms an event of numpy call
    overhead. ``active_from`` dates are placed on each event's own dates: with any, one call per event.
    """
    def alone(item: _EventInputs) -> Hygiene:
        rows = item.est_rows
        return estimation_hygiene(config, item.series.tickers, item.inputs.y[rows], item.inputs.x[rows],
                                  item.stock_all[rows], days[rows])

    if config.active_from or len(prepared) < 2:
        return [alone(item) for item in prepared]
    shapes: dict[tuple, list[int]] = {}
    out: list[Hygiene | None] = [None] * len(prepared)
    for i, item in enumerate(prepared):
        rows = item.est_rows
        if len(item.series) < 2:  # numpy sums a lone column pairwise, a column of a matrix in row order
            out[i] = alone(item)
            continue
        shapes.setdefault((rows.stop - rows.start, item.inputs.x.shape[2:]), []).append(i)
    for members in shapes.values():
        if len(members) == 1:
            out[members[0]] = alone(prepared[members[0]])
            continue
        group = [prepared[i] for i in members]
        batched = estimation_hygiene(
            config, [t for item in group for t in item.series.tickers],
            np.concatenate([item.inputs.y[item.est_rows] for item in group], axis=1),
            np.concatenate([item.inputs.x[item.est_rows] for item in group], axis=1),
            np.concatenate([item.stock_all[item.est_rows] for item in group], axis=1),
            days[group[0].est_rows],  # read for active_from only, which takes the per-event path above
        )
        start = 0
        for i, item in zip(members, group):
            cols = slice(start, start + len(item.series))
            out[i] = _hygiene_columns(batched, cols, days[item.est_rows])
            start = cols.stop
    return out  # type: ignore[return-value]


def _study_event(
    config: StudyConfig, prepared: _EventInputs, hyg: Hygiene, glitches: Glitches, data: PriceData,
    panel: ReturnPanel, factors: FactorData | None, arrays: _PanelArrays, position: int, blocked: list[int],
) -> dict[str, object]:
    """One event's results and timeline; its tables as :class:`~evstudy.tables.Rows`, row tuples or frames
    (``compute_study`` stacks every event's into one frame per table), and under "battery" its baskets
    prepared for the test battery, which ``compute_study`` runs for every event at once. ``prepared``,
    ``hyg`` and ``glitches`` are the event's inputs, estimation-window hygiene and price glitches
    (found for several events at once), ``position`` its place in the config,
    ``blocked`` the rows of every event's day 0 and confounder."""
    days = panel.returns.index
    event, i0, series, members = prepared.event, prepared.i0, prepared.series, prepared.members
    announced, timing, mapping = prepared.announced, prepared.timing, prepared.mapping
    est_rows, ev_rows = prepared.est_rows, prepared.ev_rows
    inputs, stock_all, market_all = prepared.inputs, prepared.stock_all, prepared.market_all
    model_notes = prepared.model_notes
    span = config.event_span
    rel_days = np.arange(span.start, span.end + 1)
    fitted = hyg.fitted

    valid = np.isfinite(hyg.used_stock) & np.isfinite(_regressors_present(inputs.x[est_rows]))
    zero_share = np.where(valid, hyg.used_stock == 0.0, False).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)

    stock_ev = stock_all[ev_rows]
    x_ev = inputs.x[ev_rows]
    market_ev = _regressors_present(x_ev)
    event_dates = days[ev_rows]
    never_priced = arrays.never_priced.intersection(series.tickers)
    reasons = _exclusion_reasons(
        config, series, fitted, zero_share, stock_ev, market_ev, event_dates, rel_days,
        {t: data.missing_reasons.get(t, "") for t in data.missing}, never_priced,
    )
    reasons = [t if t and not r.startswith("no prices") else r for t, r in zip(trim_reasons(config, hyg), reasons)]
    window_rows = prepared.window_rows
    reasons = screen_reasons(reasons, glitches, days[window_rows], fitted)
    keep = np.array([r == "" for r in reasons], dtype=bool)
    if not keep.any():
        summary = "; ".join(f"{t}: {r}" for t, r in zip(series.tickers, reasons) if r)
        if set(series.tickers) <= set(data.missing):  # nothing delivered: the source is unavailable, not the input bad
            raise DownloadError(f"event {event.id!r}: no ticker has prices from {data.source} — {summary}")
        raise InsufficientDataError(f"event {event.id!r}: every ticker was excluded — {summary}")

    est_dates = days[est_rows]
    alpha, beta = alpha_beta(fitted)
    tickers, benches = np.array(series.tickers, dtype=object), np.array(series.benchmarks, dtype=object)
    fits = Rows.of(FIT_COLUMNS, len(series), {
        "event": event.id,
        "ticker": tickers,
        "benchmark": benches,
        "model": config.model,
        "alpha": alpha,
        "beta": beta,
        "r2": fitted.r2,
        "sigma": fitted.sigma,
        "n_obs": fitted.n.astype(int),
        "df": fitted.df.astype(int),
        "zero_share": zero_share,
        "invalid_prices": _invalid_prices(panel, arrays, series.tickers),
        "estimation_start": _estimation_starts(est_dates, hyg.first_row),
        "estimation_end": est_dates[-1] if len(est_dates) else pd.NaT,
        "status": np.where(keep, "included", "excluded").astype(object),
        "reason": np.array(reasons, dtype=object),
    }, repeat_text=True)

    sub = fitted.series(keep)
    ar = abnormal_returns(sub, stock_ev[:, keep], x_ev[:, keep], rel_days, offset=inputs.offset[ev_rows][:, keep])
    stats = car_stats(sub, ar, list(config.windows))
    paths = car_paths(sub, ar)
    kept_pairs = (tickers[keep], benches[keep])

    windows = config.windows
    ar_table = _long_table(event.id, kept_pairs, {"date": event_dates.to_numpy(), "rel_day": rel_days}, {
        "return": ar.actual, "expected_return": ar.expected, "abnormal_return": ar.abnormal,
    }, AR_COLUMNS)
    car_table = _long_table(event.id, kept_pairs, {
        "window_start": [w.start for w in windows], "window_end": [w.end for w in windows],
    }, {"car": stats.car, "se": stats.se, "t": stats.t, "p_value": stats.p_value}, CAR_COLUMNS)
    path_table = _long_table(event.id, kept_pairs, {"rel_day": rel_days}, {"car": paths.car, "se": paths.se},
                             CAR_PATH_COLUMNS)

    basket_rows, basket_path_rows = _basket_tables(config, event, members, kept_pairs, stats, paths, rel_days)
    kept_cols = slice(None) if keep.all() else keep  # every series kept: whole-panel views, not ~50 MB copies
    battery = prepare_event(config, EventArrays(
        event=event, position=position, blocked=blocked, days=days, i0=i0,
        stock=hyg.panel(inputs.y, est_rows.start)[:, kept_cols],  # the model's y: R, or R - RF; trimmed days NaN
        regressors=inputs.x[:, kept_cols],
        est_rows=est_rows, event_rows=ev_rows, fitted=sub, abnormal=ar, cars=stats, included=kept_pairs,
    ), members)
    drift_returns, drift = pre_event_drift(
        event.id, config.drift_window, sub, stock_all[:, kept_cols], inputs.x[:, kept_cols],
        inputs.offset[:, kept_cols], days, i0, kept_pairs[0].tolist(), kept_pairs[1].tolist(),
    )

    kept_tickers, kept_benches = kept_pairs[0].tolist(), kept_pairs[1].tolist()
    every = EventWindowInputs(stock_ev, x_ev, inputs.offset[ev_rows], market_all[ev_rows], rel_days)
    kept = EventWindowInputs(stock_ev[:, keep], x_ev[:, keep], every.offset[:, keep], every.market[:, keep], rel_days)
    hygiene_tables = {
        "diagnostics": flag_table(config, event.id, series.tickers, series.benchmarks, hyg),
        "fit_comparison": comparison_table(config, event.id, series.tickers, series.benchmarks, hyg, every),
        "robustness": robustness_table(
            config, event.id, kept_tickers, kept_benches, hyg.used_stock[:, keep], market_all[est_rows][:, keep], kept
        ),
        "bhars": bhar_table(config, event.id, kept_tickers, kept_benches, ar),
        "parameters": parameter_table(
            event.id, kept_tickers, kept_benches, sub, factors.names if factors is not None else ()
        ),
    }

    price_rows = slice(i0 + span.start - 1, i0 + span.end + 1)
    shown = list(dict.fromkeys([*series.tickers, *series.markets, *filter(None, series.sectors)]))
    # only the window's closes and day -1's, the base of the rebased prices (none when day 0 is the first row)
    first = min(price_rows.start, i0 - 1) if i0 >= 1 else price_rows.start
    shown_closes = arrays.stock_closes(shown, slice(first, price_rows.stop))
    window_closes = shown_closes[price_rows.start - first:price_rows.stop - first]
    base = shown_closes[i0 - 1 - first] if i0 >= 1 else np.full(len(shown), np.nan)
    rebased = window_closes / np.where(base > 0, base, np.nan) * 100.0
    price_rel = np.arange(span.start - 1, span.end + 1)
    prices = Rows.of(PRICE_COLUMNS, len(shown) * len(price_rel), {
        "event": event.id,
        "ticker": np.tile(np.array(shown, dtype=object), len(price_rel)),
        "date": np.repeat(panel.closes.index[price_rows].to_numpy(), len(shown)),
        "rel_day": np.repeat(price_rel, len(shown)),
        "close": window_closes.ravel(),
        "rebased": rebased.ravel(),
    }, repeat_text=True)

    timeline = EventTimeline(
        event_id=event.id,
        label=event.label,
        announced=announced,
        timing=timing,
        day0=days[i0],
        mapping=mapping,
        estimation_start=est_dates[0] if len(est_dates) else None,
        estimation_end=est_dates[-1] if len(est_dates) else None,
        span_start=event_dates[0],
        span_end=event_dates[-1],
        confounders=tuple(_place_confounders(event, days, i0)),
    )
    return {
        "timeline": timeline,
        "fits": fits,
        "abnormal_returns": ar_table,
        "cars": car_table,
        "car_paths": path_table,
        "baskets": basket_rows,
        "basket_paths": basket_path_rows,
        "battery": battery,
        "prices": prices,
        "memberships": members,
        **hygiene_tables,
        "model_notes": model_notes,
        "drift": drift,
        "drift_returns": drift_returns,
    }


def _invalid_prices(panel: ReturnPanel, arrays: _PanelArrays, tickers: list[str]) -> np.ndarray:
    """Per ticker, its count of invalid closes (as ``panel.invalid_prices.reindex(tickers)``)."""
    if all(t in arrays.invalid_prices for t in tickers):
        return np.array([arrays.invalid_prices[t] for t in tickers], dtype=panel.invalid_prices.dtype)
    return panel.invalid_prices.reindex(tickers).to_numpy()


def _place_confounders(event: EventSpec, days: pd.DatetimeIndex, i0: int) -> list[dict[str, object]]:
    """Each confounder with the trading day it falls on (or first affects), relative to day 0."""
    placed = []
    for conf in event.confounders:
        position = int(days.searchsorted(pd.Timestamp(conf.date)))
        rel = position - i0 if position < len(days) else None
        trading = position < len(days) and days[position] == pd.Timestamp(conf.date)
        placed.append({
            "date": conf.date.isoformat(),
            "label": conf.label,
            "rel_day": rel,
            "trading_day": bool(trading),
        })
    return placed


def _estimation_starts(est_dates: pd.DatetimeIndex, first_row: np.ndarray) -> np.ndarray | pd.Timestamp:
    """Per series, the first estimation-window date used (later than the window's start where trimmed)."""
    if not len(est_dates):
        return pd.NaT
    dates = np.asarray(est_dates)
    return np.where(first_row < len(dates), dates[np.minimum(first_row, len(dates) - 1)], np.datetime64("NaT"))


def compute_study(config: StudyConfig, data: PriceData, factors: FactorData | None = None) -> StudyResults:
    """Run every event of ``config`` on ``data``; raise typed errors on unusable input.

    ``factors`` (from :func:`evstudy.prices.factors.read_factors`) is needed by model "factor" only.
    """
    _check_present(config, data)
    days = trading_days(data.closes, config.benchmark)
    needed = list(dict.fromkeys(t for t in config.tickers() if t in data.closes.columns))
    absent = [t for t in config.tickers() if t not in data.closes.columns]
    closes = data.closes[needed].reindex(columns=[*needed, *absent])
    panel = simple_returns(closes, days)
    arrays = _PanelArrays.of(panel)
    blocked = blocked_rows(config, panel.returns.index) if config.placebo_dates else []
    parts = []
    index = panel.returns.index  # the study's trading days, as each event reads them
    position = 0
    while position < len(config.events):  # blocks of events whose arrays are held together
        prepared: list[_EventInputs] = []
        failure: Exception | None = None
        held = 0
        while position + len(prepared) < len(config.events) and len(prepared) < HYGIENE_BATCH and (
                held < HYGIENE_SERIES):
            try:
                prepared.append(_event_inputs(config, config.events[position + len(prepared)], index, arrays, factors))
            except Exception as error:  # raised after the events before it, as event by event would
                failure = error
                break
            held += len(prepared[-1].series)
        screened = zip(prepared, _hygienes(config, index, prepared), _glitches(prepared))
        for offset, (item, hyg, glitches) in enumerate(screened):
            parts.append(_study_event(config, item, hyg, glitches, data, panel, factors, arrays, position + offset,
                                      blocked))
        if failure is not None:
            raise failure
        position += len(prepared)
    for part, (test_rows, placebo) in zip(parts, battery_tables(config, [p.pop("battery") for p in parts])):
        part["tests"], part["placebo"] = test_rows, placebo
        part["baskets"] = _with_cs_t(part["baskets"], test_rows)
    row_columns = {"baskets": CS_BASKET_COLUMNS, "basket_paths": BASKET_PATH_COLUMNS, "tests": BATTERY_COLUMNS,
                   "memberships": MEMBER_COLUMNS}
    table_columns = {
        "fits": FIT_COLUMNS, "abnormal_returns": AR_COLUMNS, "cars": CAR_COLUMNS, "car_paths": CAR_PATH_COLUMNS,
        "prices": PRICE_COLUMNS, "fit_comparison": FIT_COMPARISON_COLUMNS, "robustness": ROBUSTNESS_COLUMNS,
        "bhars": BHAR_COLUMNS, "parameters": PARAMETER_COLUMNS, "drift": DRIFT_COLUMNS, "drift_returns": AR_COLUMNS,
        "placebo": PLACEBO_COLUMNS, "diagnostics": DIAGNOSTIC_COLUMNS,
    }

    stacked: dict[str, pd.DataFrame] = {}

    def stack(key: str) -> pd.DataFrame:  # once per table: the verdicts read cars and memberships too
        if key not in stacked:
            stacked[key] = _stack_parts(key)
        return stacked[key]

    def _stack_parts(key: str) -> pd.DataFrame:
        frames = [p[key] for p in parts]
        if key in row_columns:  # lists of row tuples: one frame of every event's rows
            return pd.DataFrame([row for rows in frames for row in rows], columns=row_columns[key])
        if key in table_columns:  # Rows (a list of them for the placebo): one frame, columns joined once
            flat = [rows for part in frames for rows in (part if isinstance(part, list) else [part])]
            return stack_rows(flat, table_columns[key])
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    notes = []
    nonpositive = panel.invalid_prices - panel.nonfinite_prices
    for counts, what in ((nonpositive, "zero or negative"), (panel.nonfinite_prices, "non-finite (inf)")):
        if (counts > 0).any():
            listed = ", ".join(f"{t} ({n})" for t, n in counts[counts > 0].items())
            notes.append(f"{what} closes treated as missing: {listed}")
    est = config.estimation_window
    for timeline in (p["timeline"] for p in parts):
        start, end = timeline.estimation_start, timeline.estimation_end
        used = int(((days >= start) & (days <= end)).sum()) if start is not None else 0
        if used < est.length:
            notes.append(
                f"event {timeline.event_id!r}: the estimation window {est.label} reaches before the "
                f"benchmark's first close ({days[0].date()}): only its last {used} of {est.length} trading days are used"
            )
    notes.append("returns are close-to-close from adjusted closes; intraday moves quoted in the news can differ")
    baskets, tests = headline_verdicts(stack("baskets"), stack("tests"), stack("cars"), stack("memberships"))
    notes.extend(note for part in parts for note in part["model_notes"])  # type: ignore[attr-defined]
    return StudyResults(
        config=config,
        version=__version__,
        provenance=data.provenance(),
        timelines=tuple(p["timeline"] for p in parts),  # type: ignore[misc]
        fits=stack("fits"),
        abnormal_returns=stack("abnormal_returns"),
        cars=stack("cars"),
        car_paths=stack("car_paths"),
        baskets=baskets[BASKET_COLUMNS],
        basket_paths=stack("basket_paths"),
        tests=tests[TEST_COLUMNS],
        prices=stack("prices"),
        memberships=stack("memberships"),
        diagnostics=stack("diagnostics"),
        fit_comparison=stack("fit_comparison"),
        robustness=stack("robustness"),
        bhars=stack("bhars"),
        parameters=stack("parameters"),
        placebo=stack("placebo"),
        notes=tuple(notes),
        drift=stack("drift"),
        drift_returns=stack("drift_returns"),
    )


def required_dates(config: StudyConfig) -> tuple[dt.datetime, dt.datetime]:
    """The calendar range of prices a study needs, with a margin for missing days.

    With placebo tests, back to the estimation window of the earliest pseudo-event
    day (:func:`evstudy.placebo.lookback_offset`).
    """
    day0s = [locate_day_zero(event).day0 for event in config.events]
    margin = 10
    first = lookback_offset(config.estimation_window) if config.placebo_dates else config.estimation_window.start
    start = session_offset(min(day0s), first - margin)
    end = session_offset(max(day0s), config.event_span.end + margin)
    return start, end
