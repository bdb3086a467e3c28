"""The basket test battery of one event: eleven tests per basket x benchmark x window.

The study engine hands over what it already computed for the included series
(fits with their estimation residuals, event-span ARs, CARs with MacKinlay
standard errors) and the return panels; this module runs
:func:`evstudy.inference.cross_section_tests`, the portfolio test and the
placebo-date tests for every basket and returns the rows of
``results.tests`` plus the placebo distributions (``results.placebo``).
Pure computation, no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evstudy.abnormal import AbnormalReturns, CarStats
from evstudy.calendar import locate_day_zero
from evstudy.config import EventSpec, StudyConfig
from evstudy.inference import (
    TEST_IDS, CrossSection, TestArrays, battery_rows, cross_section_tests, equal_weighted, placebo_test,
    portfolio_t, undefined, window_selectors,
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
    the study fitted and measured on.
    """

    event: EventSpec
    days: pd.DatetimeIndex
    i0: int
    stock: np.ndarray
    regressors: np.ndarray
    est_rows: slice
    event_rows: slice
    fitted: ModelFit
    abnormal: AbnormalReturns
    cars: CarStats
    included: pd.DataFrame


def member_groups(members: pd.DataFrame) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Per (basket, benchmark), in order of first appearance, its members' (ticker, benchmark) keys in row order.

    What ``members.groupby(["basket", "benchmark"], sort=False)`` gives, without
    a pandas grouping per event.
    """
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for basket, ticker, bench in zip(members["basket"].tolist(), members["ticker"].tolist(),
                                     members["benchmark"].tolist()):
        groups.setdefault((basket, bench), []).append((ticker, bench))
    return groups


def blocked_rows(config: StudyConfig, days: pd.DatetimeIndex) -> list[int]:
    """Rows of every event's day 0 and every confounder (the first session on or after its date)."""
    rows = days.searchsorted(_blocked_dates(config.events))
    return rows[rows < len(days)].tolist()


@functools.lru_cache(maxsize=4)
def _blocked_dates(events: tuple[EventSpec, ...]) -> pd.DatetimeIndex:
    """Every event's day 0 and every confounder's date, located once per catalogue, not once per event (E²)."""
    dates = [locate_day_zero(event).day0 for event in events]
    dates += [pd.Timestamp(c.date) for event in events for c in event.confounders]
    return pd.DatetimeIndex(dates)


def _event_placebo(
    config: StudyConfig, data: EventArrays, baskets: list[np.ndarray]
) -> tuple[np.ndarray, list[BasketPlacebo] | None, str]:
    """Draw the pseudo-event days and compute each basket's placebo distribution (``baskets``: column lists)."""
    if config.placebo_dates == 0:
        return np.empty(0, dtype=int), None, "placebo tests switched off (placebo_dates = 0)"
    est, span = config.estimation_window, config.event_span
    candidates = candidate_days(data.i0, est, span, blocked_rows(config, data.days))
    if len(candidates) == 0:
        return np.empty(0, dtype=int), None, (
            f"no pseudo-event day available: none of the {PLACEBO_LOOKBACK} sessions before the estimation window "
            f"nor of the estimation window "
            f"is inside the price data with its event span clear of the config's events and confounders"
        )
    index = [e.id for e in config.events].index(data.event.id)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(index,)))
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


def event_tests(config: StudyConfig, data: EventArrays, members: pd.DataFrame) -> tuple[list[tuple], list[Rows]]:
    """Rows of ``results.tests`` (window-major, tests in :data:`TEST_IDS` order) and of the placebo table
    (one :class:`~evstudy.tables.Rows` per basket x benchmark with draws)."""
    windows = config.windows
    n_windows = len(windows)
    column = {key: i for i, key in enumerate(zip(data.included["ticker"], data.included["benchmark"]))}
    selectors = window_selectors(data.abnormal.rel_days, windows)
    groups = [
        (basket, bench, np.array([column[key] for key in keys if key in column], dtype=int))
        for (basket, bench), keys in member_groups(members).items()
    ]
    draws, dists, placebo_context = _event_placebo(config, data, [cols for _, _, cols in groups if len(cols)])
    placebo_of = iter(dists or ())
    stock_est, stock_ev = data.stock[data.est_rows], data.stock[data.event_rows]
    reg_est, reg_ev = data.regressors[data.est_rows], data.regressors[data.event_rows]

    rows: list[tuple] = []
    placebo: list[Rows] = []
    for basket, bench, cols in groups:
        n = len(cols)
        tests: dict[str, TestArrays]
        if n == 0:
            tests = {name: undefined(name, (n_windows,), 0, "every ticker of the basket was excluded") for name in TEST_IDS}
        else:
            car = data.cars.car[:, cols]
            tests = cross_section_tests(CrossSection(
                car, data.cars.se[:, cols], data.fitted.df[cols], data.fitted.residuals[:, cols],
                data.abnormal.abnormal[:, cols], selectors,
            ))
            portfolio = portfolio_t(
                config.model,
                equal_weighted(stock_est[:, cols])[:, None], reg_est[:, cols[:1]],
                equal_weighted(stock_ev[:, cols])[:, None], reg_ev[:, cols[:1]],
                data.abnormal.rel_days, windows, np.array([n]),
            )
            tests["portfolio_t"] = TestArrays(
                "portfolio_t", portfolio.statistic[0], portfolio.p_value[0], portfolio.n[0], portfolio.note[0]
            )
            if dists is None:
                for name in ("placebo_caar", "placebo_bmp"):
                    tests[name] = undefined(name, (n_windows,), n, placebo_context)
            else:
                dist = next(placebo_of)
                context = (
                    f"{placebo_context}; {int(dist.dropped):,} dropped because a member of the basket lacked clean "
                    f"data there (too few estimation-window returns or a gap in its event span)"
                )
                tests["placebo_caar"] = placebo_test("placebo_caar", car.mean(axis=1), dist.caar, n, context)
                tests["placebo_bmp"] = placebo_test("placebo_bmp", tests["bmp_t"].statistic, dist.bmp, n, context)
                k = len(draws)
                placebo.append(Rows.of(PLACEBO_COLUMNS, k * n_windows, {
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
                }))
        for window, results in zip(windows, battery_rows(tests)):
            rows.extend(
                (data.event.id, basket, bench, window.start, window.end, r.test, r.statistic, r.p_value, r.n, r.note)
                for r in results
            )
    return rows, placebo
