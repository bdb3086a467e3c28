"""The HTML report: one self-contained file that opens offline, written for non-statisticians.

The page composer, above every section module: the first screen answers
(per basket its CAAR, the headline verdict and a one-line why, and what could
fool the reader), then the charts that carry the story, then every detail one
click away in a collapsed ``<details>`` block. Numbers come formatted from
:mod:`evstudy.report.format`; verdicts are read from the verdict record
(``results.baskets``), never chosen here.

plotly.js is embedded once, inline, and each figure travels as JSON in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&``
written as ``\\u003c`` etc., so no label can close the script element. Every
user-supplied string reaches the page through Jinja's autoescape, and reaches
a figure through :func:`evstudy.report.charts.esc`. Charts inside a closed
block are drawn when it is opened, so a large report opens fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from evstudy.config import Window
from evstudy.inference import SMALL_N
from evstudy.report import catalogue_section, charts, compare_section, diagnostics_section, inference_charts
from evstudy.report.format import (
    MISSING,
    date_words,
    figure_json,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    joined_by,
    p_key,
    plural,
    record_verdict,
    sort_key,
    tuples,
    values,
    verdict,
    window_words,
)
from evstudy.report.sections import Section, report_template
from evstudy.results import EventTimeline, StudyResults

TEMPLATE = "report.html.j2"
KNOWN_PROVENANCE = {"source", "location", "first_date", "last_date", "tickers", "missing", "notes"}
MODEL_WORDS = {
    "market": "market model",
    "market_adjusted": "market-adjusted model",
    "constant_mean": "constant-mean model",
    "two_index": "two-index model (market and sector index)",
    "factor": "factor model",
    "dimson": "market model with Dimson (1979) lag/lead betas",
}
EVENT_TABLES = (
    "fits", "abnormal_returns", "cars", "car_paths", "baskets", "basket_paths", "tests", "prices", "memberships",
    "placebo", "diagnostics", "robustness", "drift", "drift_returns",
)
STOCK_ROWS_MAX = 400  # more per-stock rows than this: the biggest movers each way, the rest in cars.csv
FIT_ROWS_MAX = 400  # more fitted series than this: the weakest fits, the rest in results.json
SCROLL_ROWS = 15  # a longer table scrolls inside its own box, its header row staying in view
FILTER_ROWS = 25  # a longer table gets a search box
EVENT_CHARTS_MAX = 20  # a catalogue of more events draws its first events' charts; the stacked chart covers all


# --------------------------------------------------------------------------- one event at a time


def _event_views(results: StudyResults) -> Iterator[tuple[int, EventTimeline, StudyResults]]:
    """Each event with a copy of the results restricted to its rows.

    The tables are split once (one groupby each), so the work per event
    follows that event's rows and the whole render stays linear in events.
    """
    split = {
        name: dict(tuple(frame.groupby("event", sort=False))) if len(frame) else {}
        for name in EVENT_TABLES
        if isinstance(frame := getattr(results, name), pd.DataFrame) and "event" in frame.columns
    }
    for index, timeline in enumerate(results.timelines):
        tables = {
            name: groups.get(timeline.event_id, getattr(results, name).iloc[0:0]) for name, groups in split.items()
        }
        yield index, timeline, dataclasses.replace(results, timelines=(timeline,), **tables)


# --------------------------------------------------------------------------- sentences


def _model_sentence(results: StudyResults, timeline: EventTimeline) -> str:
    cfg = results.config
    est = cfg.estimation_window
    benches = ", ".join(dict.fromkeys(values(results.memberships["benchmark"])))
    dates = f"({date_words(timeline.estimation_start, False)} to {date_words(timeline.estimation_end, False)})"
    span = f"trading days {est.start:+d} to {est.end:+d} {dates}"
    if cfg.model == "market":
        return (f"Model: market model vs {benches}, estimated over {span}. A stock's expected return on a day "
                "is what its usual relation to the benchmark predicts from the benchmark's move that day.")
    if cfg.model == "market_adjusted":
        return (f"Model: market-adjusted returns vs {benches} (abnormal return = stock return minus benchmark "
                f"return); {span} are used only to measure each stock's normal volatility.")
    if cfg.model == "two_index":
        return (f"Model: two-index model vs {benches} (market index + sector index), estimated over {span}. A "
                "stock's expected return is what its usual relation to both indexes predicts from their moves that day.")
    if cfg.model == "dimson":
        return (f"Model: market model vs {benches} with Dimson (1979) betas, estimated over {span}: the stock is "
                "related to the benchmark's move the day before, the same day and the day after, so a thinly traded "
                "stock's late reaction counts; its beta is the sum of the three.")
    if cfg.model == "factor":
        names = ", ".join(p for p in dict.fromkeys(results.parameters["param"]) if p != "alpha")
        return (f"Model: factor model ({benches}: {names or 'the factor file'}), estimated over {span}: a stock's "
                "return above the risk-free rate is what its usual exposure to the factors predicts from their "
                "returns that day.")
    return f"Model: constant mean, where a stock's expected return is its average daily return over {span}."


def _confounders(timeline: EventTimeline) -> list[dict[str, str]]:
    return [
        {
            "number": str(i),
            "date": date_words(item.get("date")),
            "label": str(item.get("label") or ""),
            "where": charts.confounder_note(item),
        }
        for i, item in enumerate(timeline.confounders, start=1)
    ]


def _headline_window(results: StudyResults) -> Window:
    windows = results.config.windows
    return Window(0, 0) if Window(0, 0) in windows else windows[0]


def _car_window(results: StudyResults) -> Window:
    windows = results.config.windows
    return Window(-1, 1) if Window(-1, 1) in windows else windows[0]


# --------------------------------------------------------------------------- the answer


def _answer_rows(view: StudyResults, record: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Per basket × benchmark on the headline window: CAAR and verdict from the record, and the reasons.

    Baskets that share a reason (the same test chosen for the same evidence)
    point to one numbered reason under the table instead of repeating it.
    """
    window = _headline_window(view)
    titles = charts.basket_titles(view)
    rows = record[(record["window_start"] == window.start) & (record["window_end"] == window.end)]
    reasons: dict[str, str] = {}
    answers = []
    for row in tuples(rows):
        why = str(row.verdict_reason or "")
        words, css = record_verdict(row.verdict, row.caar)
        mark = reasons.setdefault(why, str(len(reasons) + 1)) if why else ""
        answers.append({
            "basket": titles.get(row.basket, row.basket),
            "benchmark": row.benchmark,
            "n": fmt_int(row.n),
            "n_words": plural(row.n, "stock"),
            "caar": fmt_pct(row.caar),
            "verdict": words,
            "css": css,
            "test": row.headline_label or "",
            "p": fmt_p(row.p_value),
            "p_key": p_key("record", row.event, row.basket, row.benchmark, row.window_start, row.window_end),
            "why": mark,
        })
    return answers, [{"mark": mark, "text": text} for text, mark in reasons.items()]


def _basket_groups(view: StudyResults, record: pd.DataFrame) -> list[dict[str, Any]]:
    """The full basket table: one group per basket × benchmark, one row per window, read from the record."""
    titles = charts.basket_titles(view)
    groups = []
    for (basket, bench), group in record.groupby(["basket", "benchmark"], sort=False):
        rows = []
        for row in tuples(group):
            words, css = record_verdict(row.verdict, row.caar)
            cell = (row.event, row.basket, row.benchmark, row.window_start, row.window_end)
            rows.append({
                "window": window_words(row.window_start, row.window_end),
                "n": fmt_int(row.n),
                "caar": fmt_pct(row.caar),
                "test": row.headline_label or MISSING,
                "statistic": fmt_num(row.statistic),
                "p": fmt_p(row.p_value),
                "cs_t": fmt_num(row.cs_t),
                "cs_p": fmt_p(row.cs_p),
                "p_key": p_key("record", *cell),
                "cs_key": p_key("cs", *cell),
                "verdict": words,
                "css": css,
                "note": row.note or "",
            })
        groups.append({"basket": titles.get(basket, basket), "benchmark": bench, "rows": rows})
    return groups


def _caveats(results: StudyResults, view: StudyResults, timeline: EventTimeline) -> list[dict[str, str]]:
    """What could fool a reader of this event's answer: other news, leaks, regime breaks, small N, exclusions."""
    out = []
    if timeline.confounders:
        listed = "; ".join(f"{c['number']} = {c['date']}: {c['label']}" for c in _confounders(timeline))
        out.append({"title": "Other news in the same days",
                    "text": f"{plural(len(timeline.confounders), 'item')} can move the same stocks ({listed}); "
                            "they are numbered on the charts.", "link": ""})
    drift = results.extras.get("drift")
    if drift is not None and not drift.series.empty:
        series = drift.series[drift.series["event"] == timeline.event_id]
        moved = series[series["p_value"] < 0.05].sort_values("car", key=abs, ascending=False)
        if len(moved):
            first = moved.drop_duplicates("ticker").head(3)
            top = ", ".join(f"{r.ticker} {fmt_pct(r.car)} vs {r.benchmark}" for r in tuples(first))
            out.append({"title": "Moves before the news",
                        "text": f"{plural(moved['ticker'].nunique(), 'stock')} moved significantly before day 0, "
                                f"a sign of a leak or of earlier news (largest: {top}).", "link": "#drift"})
    flags = view.diagnostics[view.diagnostics["flag"] != "outlier"]
    if len(flags):
        series = list(dict.fromkeys(flags["ticker"]))
        named = ", ".join(series[:5]) + (f" and {len(series) - 5} more" if len(series) > 5 else "")
        out.append({"title": "Changed behaviour before the event",
                    "text": f"{plural(len(series), 'stock')} ({named}) changed regime, traded flat or had few "
                            "returns in the estimation window, so their expected returns may be off.",
                    "link": "#hygiene"})
    window = _headline_window(results)
    small = view.baskets[(view.baskets["window_start"] == window.start) & (view.baskets["window_end"] == window.end)
                         & (view.baskets["n"] < SMALL_N)].drop_duplicates("basket")
    titles = charts.basket_titles(results)
    several = small[small["n"] > 1]
    if len(several):
        named = ", ".join(f"{titles.get(r.basket, r.basket)} ({plural(r.n, 'stock')})" for r in several.itertuples())
        out.append({"title": "Few stocks",
                    "text": f"{named}: with fewer than {SMALL_N} stocks one stock's news can be the whole "
                            "result and approximate p-values are unreliable.", "link": "#tests"})
    alone = small[small["n"] == 1]
    if len(alone):
        named = ", ".join(titles.get(r.basket, r.basket) for r in alone.itertuples())
        out.append({"title": "One stock",
                    "text": f"{named}: the result is one stock's own move, and its p assumes the stock's abnormal "
                            "returns are roughly normal with the spread of its estimation window; fat tails, or an "
                            "estimation window calmer than the event days, make that p too small.", "link": "#hygiene"})
    n_tickers = view.memberships["ticker"].nunique()
    if n_tickers > 1:
        out.append({"title": "One day for every stock",
                    "text": "All stocks react on the same date, so a market- or sector-wide shock that day moves "
                            "them together and looks like an effect; the verdicts use tests measured to allow "
                            "for that where the evidence supports one.", "link": "#tests"})
    excluded = int((view.fits["status"] == "excluded").sum())
    if excluded:
        out.append({"title": "Left out",
                    "text": f"{plural(excluded, 'stock–benchmark series', 'stock–benchmark series')} had too "
                            "little clean data and are not in any result.", "link": "#exclusions"})
    return out


def _stacked_answers(results: StudyResults) -> list[dict[str, str]]:
    """The stacked CAAR of a multi-event catalogue on the headline window (its tests stay in the catalogue)."""
    cat = results.extras.get("catalogue")
    if cat is None or cat.stacked.empty:
        return []
    window = _headline_window(results)
    rows = cat.stacked[(cat.stacked["window_start"] == window.start) & (cat.stacked["window_end"] == window.end)]
    return [
        {"label": str(row.label), "benchmark": row.benchmark, "events": plural(row.n_events, "event"),
         "n": fmt_int(row.n), "caar": fmt_pct(row.caar)}
        for row in tuples(rows)
    ]


# --------------------------------------------------------------------------- per stock


def _ticker_rows(view: StudyResults) -> tuple[list[dict[str, Any]], int]:
    """The per-stock rows (CAR window), and how many were left out for size (biggest movers each way kept)."""
    window = _car_window(view)
    event_id = view.timelines[0].event_id
    titles = charts.basket_titles(view)
    members = view.memberships
    robust = diagnostics_section.robust_cells(view, event_id, window)
    marks = diagnostics_section.flag_marks(view, event_id)
    pairs = members.drop_duplicates(["ticker", "basket"])
    baskets = joined_by(pairs["ticker"], [titles.get(n, n) for n in values(pairs["basket"])], ", ")
    ar = view.abnormal_returns
    day0 = ar[ar["rel_day"] == 0].set_index(["ticker", "benchmark"])[["return", "abnormal_return"]]
    day0 = day0.rename(columns={"return": "day0_return"})
    cars = view.cars[(view.cars["window_start"] == window.start) & (view.cars["window_end"] == window.end)]
    ticker_rank = {t: i for i, t in enumerate(dict.fromkeys(values(members["ticker"])))}
    bench_rank = {b: i for i, b in enumerate(dict.fromkeys(values(members["benchmark"])))}
    cars = cars.assign(_t=cars["ticker"].map(ticker_rank), _b=cars["benchmark"].map(bench_rank)).sort_values(["_t", "_b"])
    dropped = 0
    if len(cars) > STOCK_ROWS_MAX:
        by_car = cars.dropna(subset=["car"]).sort_values("car", ascending=False)
        keep = pd.concat([by_car.head(STOCK_ROWS_MAX // 2), by_car.tail(STOCK_ROWS_MAX // 2)])
        dropped = len(cars) - len(keep)
        cars = keep
    cars = cars.join(day0, on=["ticker", "benchmark"])
    rows = []
    for row in tuples(cars):
        key = (row.ticker, row.benchmark)
        words, css = verdict(row.p_value, row.car)
        rows.append({
            "ticker": row.ticker,
            "baskets": baskets.get(row.ticker, ""),
            "benchmark": row.benchmark,
            "cells": [
                (fmt_pct(row.day0_return), sort_key(row.day0_return)),
                (fmt_pct(row.abnormal_return), sort_key(row.abnormal_return)),
                (fmt_pct(row.car), sort_key(row.car)),
                (fmt_num(row.t), sort_key(row.t)),
            ],
            "p": (fmt_p(row.p_value), sort_key(row.p_value)),
            "p_key": p_key("cars", event_id, row.ticker, row.benchmark, window.start, window.end),
            "robust": robust.get(key, []),
            "flag": marks.get(key, ""),
            "verdict": words,
            "css": css,
        })
    return rows, dropped


# --------------------------------------------------------------------------- charts


def _car_band_words(view: StudyResults) -> str:
    fits = view.fits[view.fits["status"] == "included"]
    df = int(np.median(fits["df"])) if len(fits) else 0
    if df < 1:
        return "CAR ± t(df, 0.975) × SE"
    return f"CAR ± t({df}, 0.975) × SE = CAR ± {float(charts.t_quantile(0.975, df)):.2f} × SE"


def _confounder_key(timeline: EventTimeline) -> str:
    """The numbered markers of a chart spelled out, for its caption."""
    if not timeline.confounders:
        return ""
    listed = "; ".join(f"{c['number']} = {c['date']}: {c['label']}" for c in _confounders(timeline))
    return f" Numbered amber markers, other news: {listed}."


def _charts(view: StudyResults, timeline: EventTimeline, index: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The charts that carry the story (CAAR, day 0), and the rest (per-stock CAR, prices)."""
    event_id = timeline.event_id
    start = view.config.event_span.start
    key = _confounder_key(timeline)
    n_tickers = view.memberships["ticker"].nunique()
    n_baskets = view.memberships["basket"].nunique()
    n_measured = view.abnormal_returns.loc[view.abnormal_returns["rel_day"] == 0, "ticker"].nunique()
    if n_tickers <= charts.SMALL_MULTIPLES_MAX:
        picker = "One panel per stock, each on its own scale. " if n_tickers > 1 else ""
    elif n_tickers <= charts.PICKER_MAX:
        picker = "Pick a stock with the menu at the top right. "
    else:
        picker = (f"Pick a stock with the menu at the top right: the {charts.PICKER_MAX // 2} largest and "
                  f"{charts.PICKER_MAX // 2} smallest CARs of {n_measured:,} stocks (all of them in cars.csv). ")
    bars = ("One bar per stock, every stock labelled. " if n_measured <= charts.LABELLED_BARS_MAX else
            f"The {charts.MOVER_BARS} largest and {charts.MOVER_BARS} smallest of {n_measured:,} stocks; the "
            "histogram below shows them all. ")
    lines = ("" if n_tickers <= charts.PRICE_LINES_MAX else
             f" A basket of more than {charts.PRICE_LINES_MAX} stocks shows its {charts.PRICE_LINES_MAX // 2} "
             "biggest gainers and losers by the last day.")
    key_specs = [
        ("caar", charts.caar_figure,
         f"Each line adds up a basket's average abnormal return day by day from day {start:+d}. "
         "Shaded: 95% band, CAAR ± t(N−1, 0.975) × cross-sectional standard error; where the band "
         f"includes 0, the move is within normal noise. Dashed line: day 0.{key}"),
        ("day0", charts.day0_figure,
         f"{bars}The stock's actual return on day 0 minus the return the model expected, against the first "
         "benchmark of its basket. Colour: the stock's basket (a stock in several baskets takes the colour "
         "of its first). Hover for the actual and expected return and the abnormal return against every benchmark."),
        ("day0hist", charts.day0_histogram,
         "How many stocks had each day-0 abnormal return, per basket (against the first benchmark of the basket)."),
    ]
    more_specs = [
        ("car", charts.car_figure,
         f"{picker}Each line adds up the stock's abnormal returns from day {start:+d}, one line per "
         f"benchmark. Shaded: 95% band, {_car_band_words(view)}, where SE includes the "
         "estimation error of the model (MacKinlay 1997) and t uses the estimation window's degrees of freedom."),
        ("prices", charts.price_figure,
         "Closing prices divided by the close of day -1, times 100: a value of 110 means 10% above "
         "the last close before the event; every line of a view has its own colour. Benchmarks are dashed."
         + (" The menu at the top right shows one basket at a time." if n_baskets > 1 else "") + lines + key),
    ]

    def build(specs: list[tuple[str, Any, str]]) -> list[dict[str, Any]]:
        out = []
        for name, make, caption in specs:
            fig = make(view, event_id)
            if fig is not None:
                out.append({"id": f"chart-{index}-{name}", "caption": caption, "json": figure_json(fig)})
        return out

    return build(key_specs), build(more_specs)


# --------------------------------------------------------------------------- details


def _fit_rows(results: StudyResults) -> tuple[list[dict[str, Any]], int]:
    """The estimation diagnostics rows (event and ticker order); beyond FIT_ROWS_MAX the weakest fits by R²."""
    fits = results.fits[results.fits["status"] == "included"]
    event_rank = {t.event_id: i for i, t in enumerate(results.timelines)}
    ticker_rank = {t: i for i, t in enumerate(dict.fromkeys(values(results.memberships["ticker"])))}
    fits = fits.assign(_e=fits["event"].map(event_rank), _t=fits["ticker"].map(ticker_rank))
    dropped = 0
    if len(fits) > FIT_ROWS_MAX:
        dropped = len(fits) - FIT_ROWS_MAX
        fits = fits.sort_values("r2", na_position="first", kind="stable").head(FIT_ROWS_MAX)
    fits = fits.sort_values(["_e", "_t"], kind="stable")
    rows = [
        {
            "event": row.event,
            "ticker": row.ticker,
            "benchmark": row.benchmark,
            "alpha": fmt_pct(row.alpha),
            "beta": fmt_num(row.beta),
            "r2": fmt_num(row.r2),
            "sigma": fmt_pct(row.sigma, signed=False),
            "n": fmt_int(row.n_obs),
            "zero_share": fmt_pct(row.zero_share, signed=False),
            "invalid": fmt_int(row.invalid_prices),
        }
        for row in tuples(fits)
    ]
    return rows, dropped


def _provenance(results: StudyResults) -> dict[str, Any]:
    prov = results.provenance
    extras = []
    for key, value in prov.items():
        if key in KNOWN_PROVENANCE or value is None or value == "" or value == [] or value == {}:
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        extras.append((key.replace("_", " "), text))
    return {
        "source": str(prov.get("source") or MISSING),
        "location": str(prov.get("location") or MISSING),
        "first": date_words(prov.get("first_date")),
        "last": date_words(prov.get("last_date")),
        "tickers": plural(len(prov.get("tickers") or []), "ticker"),
        "missing": ", ".join(map(str, prov.get("missing") or [])),
        "notes": [str(n) for n in prov.get("notes") or []],
        "extras": extras,
    }


def _reproduce(results: StudyResults) -> dict[str, str]:
    cfg = results.config
    path = cfg.source_file if cfg.source_file and not cfg.source_file.startswith("<") else ""
    prov = results.provenance
    call = ""
    if path:
        prices = f", prices={json.dumps(str(prov.get('location')))}" if prov.get("source") == "files" else ""
        call = f"import evstudy\nresults = evstudy.run_study({json.dumps(path)}{prices})"
    return {"path": path, "call": call, "parameters": json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False)}


def _events(results: StudyResults) -> list[dict[str, Any]]:
    headline, car = _headline_window(results), _car_window(results)
    events = []
    for index, timeline, view in _event_views(results):
        key_charts, more_charts = _charts(view, timeline, index) if index < EVENT_CHARTS_MAX else ([], [])
        stocks, dropped = _ticker_rows(view)
        # view.baskets is this event's part of the verdict record: verdicts, tests and p-values are read, never chosen
        answers, reasons = _answer_rows(view, view.baskets)
        events.append({
            "label": timeline.label or timeline.event_id,
            "mapping": timeline.mapping,
            "model": _model_sentence(view, timeline),
            "confounders": _confounders(timeline),
            "caveats": _caveats(results, view, timeline),
            "headline_window": window_words(headline.start, headline.end),
            "answers": answers,
            "reasons": reasons,
            "baskets": _basket_groups(view, view.baskets),
            "car_window": window_words(car.start, car.end),
            "tickers": stocks,
            "tickers_dropped": dropped,
            "key_charts": key_charts,
            "more_charts": more_charts,
        })
    return events


def _analysis_sections(
    results: StudyResults, view: StudyResults | None = None, detailed: list[str] | None = None
) -> list[Section]:
    """Sections of the analyses attached to the results (tests, event catalogue, basket comparison, drift).

    The per-event sections (tests, comparison) draw ``view``: in the many-event
    layout, the ``detailed`` events only (:func:`catalogue_section.detail_view`).
    """
    view = results if view is None else view
    built = (
        inference_charts.render(view),
        catalogue_section.render(results, headline=_headline_window(results), car=_car_window(results),
                                 detailed=detailed),
        compare_section.render(view), catalogue_section.render_drift(results),
    )
    return [section for section in built if section is not None]


def render_html(results: StudyResults, *, generated_at: dt.datetime | None = None) -> str:
    """The full report as one HTML document (plotly.js inline, no external URL).

    ``generated_at`` defaults to now (UTC); pass a fixed time to make two renders comparable.
    """
    template = report_template(TEMPLATE)
    cfg = results.config
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    fits, fits_dropped = _fit_rows(results)
    exclusions = results.exclusions
    # many events: full per-event sections for the largest and smallest moves, every event in the catalogue's table
    detailed = catalogue_section.detail_events(results, _headline_window(results)) \
        if catalogue_section.many_events(results) else None
    view = results if detailed is None else catalogue_section.detail_view(results, detailed)
    return template.render(
        title=cfg.title or cfg.name,
        name=cfg.name,
        description=cfg.description,
        version=results.version,
        generated=f"{when:%Y-%m-%d %H:%M} UTC",
        model_name=MODEL_WORDS.get(cfg.model, cfg.model),
        events=_events(view),
        overview=catalogue_section.overview(results, _headline_window(results), _car_window(results), detailed or []),
        stacked=_stacked_answers(results),
        headline_window=window_words(_headline_window(results).start, _headline_window(results).end),
        multi_event=len(results.timelines) > 1,
        provenance=_provenance(results),
        notes=list(results.notes),
        fits=fits,
        fits_dropped=fits_dropped,
        n_fits=len(fits) + fits_dropped,
        exclusions=[
            {"event": r.event, "ticker": r.ticker, "benchmark": r.benchmark, "reason": r.reason}
            for r in tuples(exclusions)
        ],
        reproduce=_reproduce(results),
        est_window=f"{cfg.estimation_window.start:+d} to {cfg.estimation_window.end:+d}",
        robust_columns=cfg.model != "market_adjusted" and not results.robustness.empty,
        hygiene=diagnostics_section.render(view, _car_window(results)),
        sections=_analysis_sections(results, view, detailed),
        charts_left_out=max(0, len(view.timelines) - EVENT_CHARTS_MAX),
        scroll_rows=SCROLL_ROWS,
        filter_rows=FILTER_ROWS,
        plotly_js=Markup(get_plotlyjs().replace("</script", "<\\/script")),
    )
