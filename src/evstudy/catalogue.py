"""An event catalogue: several events on different dates, each with its own stocks, studied together.

Pure computation on a :class:`StudyResults` (nothing is re-estimated):

* per event: day 0 with the sentence that maps the announcement to it, and the
  day-0 abnormal return of each basket and stock;
* a **stacked** CAAR per window: the CARs of every event pooled, with the
  cross-sectional t (Brown & Warner 1985), the BMP t (Boehmer, Musumeci &
  Poulsen 1991) and, when an event contributes several stocks, a t across the
  per-event means. Events on different dates do not share a day-0 shock, so
  the independence these tests assume is far more plausible than within one
  event — except where two events' windows overlap in calendar time, which a
  note names;
* the pre-event drift (:class:`DriftSummary`): each series' CAR over the drift
  window, its largest day, and per basket the drift CAAR — where leaks show.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evstudy.config import Window
from evstudy.inference import TestArrays, TestResult, bmp_t, cs_t, standardized_cars
from evstudy.results import StudyResults, records

OWN_STACK = "event_tickers"
OWN_STACK_LABEL = "Each event's own stocks"

DRIFT_SERIES_COLUMNS = [
    "event", "ticker", "benchmark", "window_start", "window_end", "car", "se", "t", "p_value",
    "peak_date", "peak_rel_day", "peak_return", "peak_abnormal_return", "note",
]
DRIFT_BASKET_COLUMNS = [
    "event", "basket", "benchmark", "window_start", "window_end", "n", "caar", "se", "t", "p_value", "note",
]
EVENT_COLUMNS = [
    "event", "label", "day0", "mapping", "basket", "benchmark", "n", "aar", "t", "p_value", "test", "verdict", "note",
]
DAY0_COLUMNS = ["event", "basket", "ticker", "benchmark", "date", "return", "abnormal_return", "t", "p_value"]
STACK_COLUMNS = [
    "stack", "label", "benchmark", "window_start", "window_end", "n_events", "events", "n", "caar", "se",
]
STACK_TEST_COLUMNS = ["stack", "benchmark", "window_start", "window_end", "test", "statistic", "p_value", "n", "note"]
STACK_PATH_COLUMNS = ["stack", "benchmark", "rel_day", "n_events", "n", "caar", "se"]


def _test_rows(result: TestArrays, prefix: tuple, windows: list[tuple[int, int]], name: str | None = None) -> list[tuple]:
    """Rows (prefix..., window_start, window_end, test, statistic, p, n, note) from a per-window test."""
    return [
        (*prefix, start, end, name or r.test, r.statistic, r.p_value, r.n, r.note)
        for (start, end), r in zip(windows, result.results())
    ]


# --------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class DriftSummary:
    """Pre-event drift: per series its drift CAR and largest day; per basket the drift CAAR."""

    window: Window
    caveat: str
    series: pd.DataFrame
    baskets: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": [self.window.start, self.window.end],
            "caveat": self.caveat or None,
            "series": records(self.series),
            "baskets": records(self.baskets),
        }


def drift_caveat(results: StudyResults) -> str:
    """Why the drift is biased when its window overlaps the estimation window ("" when they are apart)."""
    cfg = results.config
    overlap = cfg.drift_overlap
    if overlap is None:
        return ""
    est, drift = cfg.estimation_window, cfg.drift_window
    end = drift.start - 1
    start = end - (est.end - est.start)
    days = "day" if overlap.start == overlap.end else "days"
    span = f"{overlap.start:+d}" if overlap.start == overlap.end else f"{overlap.start:+d} to {overlap.end:+d}"
    return (
        f"the drift window {drift.label} overlaps the estimation window {est.label} on {days} {span}: the model "
        f"was fitted on those days, so their abnormal returns are in-sample residuals, pulled towards zero, and "
        f"the drift's t and p are approximate; a leak on those days is understated. For a clean drift, end the "
        f"estimation window before the drift window, e.g. estimation_window = [{start}, {end}]"
    )


def drift_summary(results: StudyResults) -> DriftSummary:
    """Each series' drift CAR with its largest-|AR| day, and each basket's drift CAAR with its cross-sectional t.

    The largest day shows *where* a run-up happened (LAC: 2025-09-24, day -5,
    +95.8% raw return). The basket CAAR averages the member drift CARs with
    equal weights; t = CAAR / (s(CAR)/sqrt(N)) (Brown & Warner 1985).
    """
    window = results.config.drift_window
    daily = results.drift_returns
    keys = ["event", "ticker", "benchmark"]
    finite = daily[np.isfinite(daily["abnormal_return"].to_numpy(dtype=float))]
    peak_rows = finite.assign(_abs=finite["abnormal_return"].abs()).sort_values("_abs", ascending=False, kind="stable")
    peaks = peak_rows.drop_duplicates(keys).set_index(keys)
    series = results.drift.join(peaks[["date", "rel_day", "return", "abnormal_return"]], on=keys).rename(columns={
        "date": "peak_date", "rel_day": "peak_rel_day", "return": "peak_return",
        "abnormal_return": "peak_abnormal_return",
    })
    series["peak_rel_day"] = series["peak_rel_day"].astype("Int64")
    series = series[DRIFT_SERIES_COLUMNS].reset_index(drop=True)

    members = results.memberships.merge(results.drift[[*keys, "car", "t", "p_value"]], on=keys, how="inner")
    groups = _groups(members, ["event", "basket", "benchmark"])
    car_all = members["car"].to_numpy(dtype=float)
    t_all, p_all = members["t"].to_numpy(dtype=float), members["p_value"].to_numpy(dtype=float)
    present_cars = [car_all[rows][np.isfinite(car_all[rows])] for _, rows in groups]
    tests = _cs_t_by_size(present_cars)
    out = []
    for ((event, basket, bench), rows), cars, test in zip(groups, present_cars, tests):
        n = len(cars)
        if n == 1:  # one stock: its own drift t (MacKinlay 1997), as in the series table
            one = rows[np.isfinite(car_all[rows])][0]
            stat, p, test_note = t_all[one], p_all[one], "one stock: its own t-test"
        else:
            stat, p, test_note = test.statistic, test.p_value, test.note
        se = float(cars.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
        missing = len(rows) - n
        note = "; ".join(filter(None, [
            test_note, f"{missing} stock(s) without a drift CAR (missing returns)" if missing else "",
        ]))
        out.append((event, basket, bench, window.start, window.end, n,
                    float(cars.mean()) if n else np.nan, se, stat, p, note))
    return DriftSummary(window, drift_caveat(results), series, pd.DataFrame(out, columns=DRIFT_BASKET_COLUMNS))


def _groups(frame: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, np.ndarray]]:
    """Each group of ``frame`` by ``keys`` with its row positions, in order of first appearance (as
    ``groupby(keys, sort=False)``), from one grouping pass instead of a sub-frame per group."""
    codes = frame.groupby(keys, sort=False).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    columns = [frame[k].to_numpy() for k in keys]
    return [(tuple(c[rows[0]] for c in columns), rows) for rows in np.split(order, bounds)] if len(order) else []


def _cs_t_by_size(samples: list[np.ndarray]) -> list[TestResult]:
    """:func:`~evstudy.inference.cs_t` of each sample, every sample of one size in one call."""
    by_size: dict[int, list[int]] = {}
    for i, sample in enumerate(samples):
        by_size.setdefault(len(sample), []).append(i)
    out: list[TestResult] = [None] * len(samples)  # type: ignore[list-item]
    for size, members in by_size.items():
        matrix = np.stack([samples[i] for i in members]) if size else np.empty((len(members), 0))
        for i, result in zip(members, cs_t(matrix).results()):
            out[i] = result
    return out


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Catalogue:
    """Per-event day-0 results and the stacked multi-event CAAR with its tests.

    ``events``: per event x basket x benchmark, the day-0 average AR with its
    test; ``day0``: per stock; ``stacked``/``tests``/``paths``: the stacked
    CAAR per window, its tests and its path over event time; ``notes``: which
    events' windows overlap in calendar time.
    """

    events: pd.DataFrame
    day0: pd.DataFrame
    stacked: pd.DataFrame
    tests: pd.DataFrame
    paths: pd.DataFrame
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": records(self.events),
            "day0": records(self.day0),
            "stacked": records(self.stacked),
            "tests": records(self.tests),
            "notes": list(self.notes),
        }


def stack_of(results: StudyResults) -> dict[str, tuple[str, str]]:
    """Basket name → (stack id, stack label): an event's own tickers stack together; a shared basket by its name."""
    return {
        b.name: (OWN_STACK, OWN_STACK_LABEL) if b.event else (b.name, b.title)
        for b in results.config.baskets
    }


def _day0_tables(results: StudyResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per stock and per event x basket x benchmark: the day-0 abnormal return and its test."""
    keys = ["event", "ticker", "benchmark"]
    ar = results.abnormal_returns
    day0 = ar.loc[ar["rel_day"] == 0, [*keys, "date", "return", "abnormal_return"]]
    cars = results.cars
    single = cars.loc[(cars["window_start"] == 0) & (cars["window_end"] == 0), [*keys, "t", "p_value"]]
    table = results.memberships.merge(day0, on=keys, how="inner").merge(single, on=keys, how="left")
    table = table[DAY0_COLUMNS].reset_index(drop=True)
    has_day0_window = Window(0, 0) in results.config.windows
    record = results.baskets
    record = record[(record["window_start"] == 0) & (record["window_end"] == 0)]
    fields = ["statistic", "p_value", "headline_test", "verdict", "verdict_reason"]
    # the day-0 cells of the verdict record, looked up by key (one .loc per event x basket cost more than the rest)
    day0_cells = dict(zip(zip(record["event"], record["basket"], record["benchmark"]),
                          zip(*(record[f].tolist() for f in fields))))
    timelines = {t.event_id: t for t in results.timelines}
    groups = _groups(table, ["event", "basket", "benchmark"])
    ar_all = table["abnormal_return"].to_numpy(dtype=float)
    t_all, p_all = table["t"].to_numpy(dtype=float), table["p_value"].to_numpy(dtype=float)
    samples = [ar_all[rows] for _, rows in groups]
    tests = [None] * len(groups) if has_day0_window else _cs_t_by_size(samples)
    out = []
    for ((event, basket, bench), rows), ars, test in zip(groups, samples, tests):
        timeline = timelines[event]
        verdict = ""
        if has_day0_window:  # the verdict record's day-0 cell: the same test and p as every other section
            stat, p, name, verdict, reason = day0_cells[(event, basket, bench)]
            note = "" if name else reason
        elif len(ars) >= 2:
            stat, p, name, note = test.statistic, test.p_value, "cs_t", test.note
        else:
            stat, p = t_all[rows[0]], p_all[rows[0]]
            name = "single-stock t (MacKinlay 1997)"
            note = "add the window [0, 0] to get the stock's own t-test"
        out.append((event, timeline.label or event, timeline.day0, timeline.mapping, basket, bench, len(ars),
                    float(ars.mean()), stat, p, name, verdict, note))
    return pd.DataFrame(out, columns=EVENT_COLUMNS), table


def _overlapping_pairs(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of intervals [starts, ends] that share a point, by one sort (E log E + pairs found)."""
    order = np.argsort(starts, kind="stable")
    low, high = starts[order], ends[order]
    # In start order, interval k overlaps each later one that starts by the time k ends.
    stop = np.searchsorted(low, high, side="right")
    counts = np.maximum(stop - np.arange(len(order)) - 1, 0)
    first = np.repeat(np.arange(len(order)), counts)
    second = first + 1 + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    a, b = order[first], order[second]
    return np.minimum(a, b), np.maximum(a, b)


def _window_overlaps(results: StudyResults) -> list[str]:
    """Pairs of events whose event windows share calendar days (their CARs can share a shock).

    One sort per window finds the overlapping pairs, so the cost follows the
    events and the pairs reported, not every pair of events.
    """
    timelines = results.timelines
    prices = results.prices.drop_duplicates(["event", "rel_day"])
    dates = prices.pivot(index="event", columns="rel_day", values="date").reindex([t.event_id for t in timelines])
    windows = sorted(results.config.windows, key=lambda w: (w.length, w.start))
    shared: dict[tuple[int, int], list[str]] = {}
    for w in windows:  # a handful of windows, never a loop over events
        starts = dates[w.start].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        ends = dates[w.end].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        for i, j in zip(*_overlapping_pairs(starts, ends)):
            shared.setdefault((int(i), int(j)), []).append(w.label)
    notes = []
    for (i, j), labels in sorted(shared.items()):
        first, second = timelines[i], timelines[j]
        notes.append(
            f"events {first.event_id} (day 0 {first.day0.date()}) and {second.event_id} "
            f"(day 0 {second.day0.date()}) share calendar days in the window(s) {', '.join(labels)}: "
            f"a shock on those days enters both, so their CARs there are not independent"
        )
    return notes


def _stack_members(results: StudyResults) -> pd.DataFrame:
    """(stack, label, benchmark, event, ticker) for every stack that spans two events or more."""
    stacks = stack_of(results)
    members = results.memberships.copy()
    members["stack"] = members["basket"].map(lambda b: stacks[b][0])
    members["label"] = members["basket"].map(lambda b: stacks[b][1])
    members = members.drop_duplicates(["stack", "benchmark", "event", "ticker"])
    spans = members.groupby(["stack", "benchmark"])["event"].transform("nunique")
    return members[spans >= 2][["stack", "label", "benchmark", "event", "ticker"]]


def catalogue(results: StudyResults) -> Catalogue:
    """Per-event day-0 results and the stacked CAAR with its tests, for a study of two events or more.

    Notes
    -----
    Stacked CAAR over the pooled CARs of all events of a stack, equal weights
    per stock. Tests per window: the cross-sectional t (Brown & Warner 1985)
    and the BMP t on standardized CARs SCAR_i = CAR_i / S_CAR_i (Boehmer,
    Musumeci & Poulsen 1991), both over all pooled stocks; and, when some
    event contributes more than one stock, ``event_t``: the cross-sectional t
    over the per-event mean CARs (one observation per event, so stocks that
    share a date count once; Brown & Warner 1985 applied to event portfolios).
    """
    events, day0 = _day0_tables(results)
    windows = [(w.start, w.end) for w in results.config.windows]
    keys = ["event", "ticker", "benchmark"]
    members = _stack_members(results)
    event_rank = {t.event_id: i for i, t in enumerate(results.timelines)}
    cars = results.cars.merge(members, on=["event", "ticker", "benchmark"], how="inner")
    cars = cars.assign(_rank=cars["event"].map(event_rank)).sort_values("_rank", kind="stable")
    stacked_rows: list[tuple] = []
    test_rows: list[tuple] = []
    for (stack, bench), group in members.groupby(["stack", "benchmark"], sort=False):
        part = cars[(cars["stack"] == stack) & (cars["benchmark"] == bench)]
        if part.empty:
            continue
        order = list(dict.fromkeys(zip(part["event"].tolist(), part["ticker"].tolist())))  # events in config order
        car = part.pivot(index=["event", "ticker"], columns=["window_start", "window_end"], values="car")
        car = car.loc[order, windows]
        se = part.pivot(index=["event", "ticker"], columns=["window_start", "window_end"], values="se")
        se = se.loc[order, windows]
        matrix = car.to_numpy().T  # (windows x stocks)
        event_ids = list(dict.fromkeys(car.index.get_level_values("event").tolist()))
        per_event = car.groupby(level="event", sort=False).mean().loc[event_ids].to_numpy().T
        n = matrix.shape[1]
        caar = matrix.mean(axis=1)
        spread = matrix.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(windows), np.nan)
        label = group["label"].iloc[0]
        for w, (start, end) in enumerate(windows):
            stacked_rows.append((stack, label, bench, start, end, len(event_ids), ", ".join(event_ids), n,
                                 caar[w], spread[w]))
        prefix = (stack, bench)
        test_rows += _test_rows(cs_t(matrix), prefix, windows)
        test_rows += _test_rows(bmp_t(standardized_cars(matrix, se.to_numpy().T)), prefix, windows)
        if n > len(event_ids):
            test_rows += _test_rows(cs_t(per_event), prefix, windows, name="event_t")

    paths = results.car_paths.merge(members, on=keys, how="inner")
    path_table = (
        paths.groupby(["stack", "benchmark", "rel_day"], sort=False)
        .agg(n_events=("event", "nunique"), n=("car", "size"), caar=("car", "mean"), sd=("car", "std"))
        .reset_index()
    )
    path_table["se"] = path_table["sd"] / np.sqrt(path_table["n"])
    notes = _window_overlaps(results)
    if not stacked_rows:
        notes.insert(0, "no basket or set of event tickers spans two events under one benchmark: nothing to stack")
    return Catalogue(
        events=events,
        day0=day0,
        stacked=pd.DataFrame(stacked_rows, columns=STACK_COLUMNS),
        tests=pd.DataFrame(test_rows, columns=STACK_TEST_COLUMNS),
        paths=path_table[STACK_PATH_COLUMNS],
        notes=tuple(notes),
    )


def attach_catalogue(results: StudyResults) -> StudyResults:
    """``results`` with ``extras["drift"]`` and, for two events or more, ``extras["catalogue"]``."""
    extras = {**results.extras, "drift": drift_summary(results)}
    if len(results.timelines) > 1:
        extras["catalogue"] = catalogue(results)
    return dataclasses.replace(results, extras=extras)
