"""The basket test battery: fourteen tests per event x basket x benchmark x window.

The study engine hands over, event by event, what it already computed for the
included series (fits with their estimation residuals, event-span ARs, CARs
with MacKinlay standard errors) and the return panels; :func:`prepare_event`
runs the event's placebo draws for each basket, then :func:`battery_tables`
runs the portfolio test and :func:`evstudy.inference.cross_section_tests` once
for every event's baskets of one shape (a catalogue's 200 baskets of 20 stocks
in one call, not 200) and the placebo-date tests, and returns per event the
rows of ``results.tests`` plus the placebo distributions (``results.placebo``).
Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evstudy.abnormal import AbnormalReturns, CarStats, window_selectors
from evstudy.calendar import locate_day_zero
from evstudy.config import EventSpec, StudyConfig, Window
from evstudy.inference import (
    TEST_IDS, CrossSection, TestResult, cross_section_tests, equal_weighted, placebo_test,
    portfolio_t, undefined,
)
from evstudy.models import ModelFit
from evstudy.placebo import PLACEBO_LOOKBACK, BasketPlacebo, basket_placebos, candidate_days, draw_days
from evstudy.results import PLACEBO_COLUMNS
from evstudy.tables import Rows


@dataclass(frozen=True)
class EventArrays:
    """One event's arrays for the K included series (columns in ``included`` order).

    ``stock`` and ``regressors`` are the whole return panels (days x K [x q])
    on the study's trading days; ``est_rows`` and ``event_rows`` the slices
    the study fitted and measured on; ``position`` is the event's place in the
    config (its placebo draws' random stream) and ``blocked`` the rows no
    pseudo-event span may contain (:func:`blocked_rows`, found once per study).
    """

    event: EventSpec
    position: int
    blocked: list[int]
    days: pd.DatetimeIndex
    i0: int
    stock: np.ndarray
    regressors: np.ndarray
    est_rows: slice
    event_rows: slice
    fitted: ModelFit
    abnormal: AbnormalReturns
    cars: CarStats
    included: tuple[np.ndarray, np.ndarray]  # (tickers, benchmarks) of the K series


def member_groups(members: Sequence[tuple[str, str, str, str]]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Per (basket, benchmark), in order of first appearance, its members' (ticker, benchmark) keys in row order.

    ``members`` are rows of ``results.memberships`` (event, basket, ticker, benchmark); this is what
    ``memberships.groupby(["basket", "benchmark"], sort=False)`` gives, without a pandas grouping per event.
    """
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for _, basket, ticker, bench in members:
        groups.setdefault((basket, bench), []).append((ticker, bench))
    return groups


def blocked_rows(config: StudyConfig, days: pd.DatetimeIndex) -> list[int]:
    """Rows of every event's day 0 and every confounder (the first session on or after its date), sorted, each once.

    Found once per study and handed to every event (:class:`EventArrays`), not once per event (E²);
    sorted here, so :func:`~evstudy.placebo.candidate_days` need not sort them for each event.
    """
    dates = [locate_day_zero(event).day0 for event in config.events]
    dates += [pd.Timestamp(c.date) for event in config.events for c in event.confounders]
    rows = days.searchsorted(pd.DatetimeIndex(dates))
    return np.unique(rows[rows < len(days)]).tolist()


def _event_placebo(
    config: StudyConfig, data: EventArrays, baskets: list[np.ndarray]
) -> tuple[np.ndarray, list[BasketPlacebo] | None, str]:
    """Draw the pseudo-event days and compute each basket's placebo distribution (``baskets``: column lists)."""
    if config.placebo_dates == 0:
        return np.empty(0, dtype=int), None, "placebo tests switched off (placebo_dates = 0)"
    est, span = config.estimation_window, config.event_span
    candidates = candidate_days(data.i0, est, span, data.blocked)
    if len(candidates) == 0:
        return np.empty(0, dtype=int), None, (
            f"no pseudo-event day available: none of the {PLACEBO_LOOKBACK} sessions before the estimation window "
            f"nor of the estimation window "
            f"is inside the price data with its event span clear of the config's events and confounders"
        )
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(data.position,)))
    draws = draw_days(candidates, config.placebo_dates, rng)
    dists = basket_placebos(
        config.model, data.stock, data.regressors, draws, baskets,
        estimation=est, span=span, windows=config.windows,
        min_returns=config.min_estimation_returns, max_zero_share=config.max_zero_share,
    )
    first, last = data.days[candidates.min()].date(), data.days[candidates.max()].date()
    asked = "" if len(draws) == config.placebo_dates else f" (all of them; {config.placebo_dates:,} were asked for)"
    context = (
        f"{len(draws):,} pseudo-event days drawn without replacement (seed {config.seed}) from {len(candidates):,} "
        f"sessions {first} to {last}{asked}: the {PLACEBO_LOOKBACK} sessions before the estimation window and the "
        f"estimation window, clear of the config's events and confounders"
    )
    return draws, dists, context


BATCH_BASKETS = 32  # baskets of one shape whose cross-sectional tests run in one call


@dataclass(frozen=True)
class _PortfolioInputs:
    """One basket's equal-weighted return and its regressors (:func:`~evstudy.inference.portfolio_t`'s columns)."""

    basket_est: np.ndarray  # (L,)
    market_est: np.ndarray  # (L, 1 [, q])
    basket_event: np.ndarray  # (W,)
    market_event: np.ndarray  # (W, 1 [, q])
    rel_days: np.ndarray


@dataclass
class BasketBattery:
    """One basket x benchmark of one event on its way through the battery.

    :func:`prepare_event` fills in the placebo distribution and the portfolio's inputs;
    :func:`battery_tables` adds the portfolio t and the cross-sectional tests, each run for every
    event's baskets of one shape in one batched call, then the placebo tests (which compare with the BMP t).
    """

    event_id: str
    basket: str
    bench: str
    n: int
    section: CrossSection | None  # None: every ticker of the basket was excluded
    caar: np.ndarray | None  # (windows,)
    results: dict[str, list[TestResult]]  # per test, one result per window
    placebo: BasketPlacebo | None
    placebo_context: str  # where the draws came from and how many were dropped
    placebo_rows: Rows | None
    portfolio: _PortfolioInputs | None = None  # None: every ticker of the basket was excluded


def prepare_event(
    config: StudyConfig, data: EventArrays, members: Sequence[tuple[str, str, str, str]]
) -> list[BasketBattery]:
    """One event's baskets with their placebo distributions (one placebo pass per event) and portfolio inputs."""
    windows = config.windows
    n_windows = len(windows)
    column = {key: i for i, key in enumerate(zip(*data.included))}
    selectors = window_selectors(data.abnormal.rel_days, windows)
    groups = [
        (basket, bench, np.array([column[key] for key in keys if key in column], dtype=int))
        for (basket, bench), keys in member_groups(members).items()
    ]
    draws, dists, placebo_context = _event_placebo(config, data, [cols for _, _, cols in groups if len(cols)])
    placebo_of = iter(dists or ())
    stock_est, stock_ev = data.stock[data.est_rows], data.stock[data.event_rows]
    reg_est, reg_ev = data.regressors[data.est_rows], data.regressors[data.event_rows]

    baskets = []
    for basket, bench, cols in groups:
        n = len(cols)
        if n == 0:
            reason = "every ticker of the basket was excluded"
            baskets.append(BasketBattery(
                data.event.id, basket, bench, 0, None, None,
                {name: undefined(name, (n_windows,), 0, reason).results() for name in TEST_IDS}, None, "", None,
            ))
            continue
        car = data.cars.car[:, cols]
        section = CrossSection(
            car, data.cars.se[:, cols], data.fitted.df[cols], data.fitted.residuals[:, cols],
            data.abnormal.abnormal[:, cols], selectors,
        )
        portfolio = _PortfolioInputs(
            equal_weighted(stock_est[:, cols]), reg_est[:, cols[:1]], equal_weighted(stock_ev[:, cols]),
            reg_ev[:, cols[:1]], data.abnormal.rel_days,
        )
        results: dict[str, list[TestResult]] = {}
        dist, rows, context = None, None, ""
        if dists is None:
            for name in ("placebo_caar", "placebo_bmp"):
                results[name] = undefined(name, (n_windows,), n, placebo_context).results()
        else:
            dist = next(placebo_of)
            context = (
                f"{placebo_context}; {int(dist.dropped):,} dropped because a member of the basket lacked clean "
                f"data there (too few estimation-window returns or a gap in its event span)"
            )
            k = len(draws)
            rows = Rows.of(PLACEBO_COLUMNS, k * n_windows, {
                "event": data.event.id,
                "basket": basket,
                "benchmark": bench,
                "window_start": np.tile([w.start for w in windows], k),
                "window_end": np.tile([w.end for w in windows], k),
                "draw": np.repeat(np.arange(k), n_windows),
                "day0": np.repeat(data.days[draws].to_numpy(), n_windows),
                "n": np.repeat(dist.n, n_windows),
                "caar": dist.caar.ravel(),
                "bmp": dist.bmp.ravel(),
            }, repeat_text=True)
        baskets.append(BasketBattery(
            data.event.id, basket, bench, n, section, car.mean(axis=1), results, dist, context, rows, portfolio
        ))
    return baskets


def _portfolio_results(model: str, windows: Sequence[Window], baskets: list[BasketBattery]) -> None:
    """Add :func:`~evstudy.inference.portfolio_t` to each basket's results, one call per shape of inputs.

    Each basket is a column of the fit (the test is column by column), so every event's baskets of one
    estimation-window length go through one fit instead of one fit each; the column sums of a stacked
    matrix add in another order than those of a lone column, so a statistic may differ from the
    basket-by-basket one in its last bits (at most a few 1e-15, relative; tests/test_battery.py).
    """
    shapes: dict[tuple, list[BasketBattery]] = {}
    for b in baskets:
        inputs = b.portfolio
        assert inputs is not None
        key = (inputs.market_est.shape, inputs.market_event.shape, tuple(inputs.rel_days.tolist()))
        shapes.setdefault(key, []).append(b)
    for group in shapes.values():
        parts = [b.portfolio for b in group]
        portfolio = portfolio_t(
            model,  # type: ignore[arg-type]
            np.column_stack([p.basket_est for p in parts]), np.concatenate([p.market_est for p in parts], axis=1),
            np.column_stack([p.basket_event for p in parts]), np.concatenate([p.market_event for p in parts], axis=1),
            parts[0].rel_days, windows, np.array([b.n for b in group]),
        )
        cells = portfolio.results()  # (baskets x windows), basket-major
        n_windows = len(windows)
        for position, b in enumerate(group):
            b.results["portfolio_t"] = cells[position * n_windows:(position + 1) * n_windows]


@dataclass(frozen=True)
class _CrossResults:
    """One basket's cross-sectional tests: per test its results (one per window), and its BMP t per window."""

    results: dict[str, list[TestResult]]
    bmp: np.ndarray


def _cross_section_results(sections: list[CrossSection]) -> list[_CrossResults]:
    """:func:`~evstudy.inference.cross_section_tests` of each basket's ``sections``, those of one shape stacked.

    Stacking baskets along a leading axis runs each test, and turns its arrays into results, once per
    :data:`BATCH_BASKETS` baskets instead of once per basket (blocks of that size keep the rank tests'
    temporaries in cache: 25-50 were ~20% faster than 200 at once). The statistics are the same up to
    the summation order of a few sums: Corrado's rank statistic differs by at most a few 1e-13,
    relative. A shape held by one basket alone is run unstacked, as before.
    """
    shapes: dict[tuple, list[int]] = {}
    for i, s in enumerate(sections):
        shapes.setdefault((s.car.shape, s.est_ar.shape, s.event_ar.shape), []).append(i)
    out: list[_CrossResults | None] = [None] * len(sections)
    for same_shape in shapes.values():
        if len(same_shape) == 1:
            alone = cross_section_tests(sections[same_shape[0]])
            out[same_shape[0]] = _CrossResults({name: t.results() for name, t in alone.items()},
                                               alone["bmp_t"].statistic)
            continue
        for start in range(0, len(same_shape), BATCH_BASKETS):
            members = same_shape[start:start + BATCH_BASKETS]
            block = [sections[i] for i in members]
            stacked = cross_section_tests(CrossSection(
                *(np.stack([getattr(s, name) for s in block]) for name in ("car", "se", "df", "est_ar", "event_ar")),
                block[0].selectors,
            ))
            per_test = {name: t.results() for name, t in stacked.items()}  # (baskets x windows), basket-major
            n_windows = stacked["bmp_t"].statistic.shape[-1]
            for position, i in enumerate(members):
                cells = slice(position * n_windows, (position + 1) * n_windows)
                out[i] = _CrossResults({name: r[cells] for name, r in per_test.items()},
                                       stacked["bmp_t"].statistic[position])
    return out  # type: ignore[return-value]


def battery_tables(config: StudyConfig, events: list[list[BasketBattery]]) -> list[tuple[list[tuple], list[Rows]]]:
    """Per event, the rows of ``results.tests`` (window-major, tests in :data:`TEST_IDS` order) and of the
    placebo table (one :class:`~evstudy.tables.Rows` per basket x benchmark with draws).

    The cross-sectional tests run batched across events (:func:`_cross_section_results`).
    """
    windows = config.windows
    tested = [b for baskets in events for b in baskets if b.section is not None]
    _portfolio_results(config.model, windows, tested)
    for basket, cross in zip(tested, _cross_section_results([b.section for b in tested])):
        basket.results.update(cross.results)
        if basket.placebo is not None:
            dist = basket.placebo
            basket.results["placebo_caar"] = placebo_test(
                "placebo_caar", basket.caar, dist.caar, basket.n, basket.placebo_context
            ).results()
            basket.results["placebo_bmp"] = placebo_test(
                "placebo_bmp", cross.bmp, dist.bmp, basket.n, basket.placebo_context
            ).results()
    out = []
    for baskets in events:
        rows: list[tuple] = []
        for b in baskets:
            per_test = [b.results[name] for name in TEST_IDS]
            for w, window in enumerate(windows):
                rows.extend(
                    (b.event_id, b.basket, b.bench, window.start, window.end, r.test, r.statistic, r.p_value, r.n,
                     r.note)
                    for r in (results[w] for results in per_test)
                )
        out.append((rows, [b.placebo_rows for b in baskets if b.placebo_rows is not None]))
    return out
