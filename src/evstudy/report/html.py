"""The HTML report: one self-contained file that opens offline, written for non-statisticians.

plotly.js is embedded once, inline, and each figure travels as JSON in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&``
written as ``\\u003c`` etc., so no label can close the script element. Every
user-supplied string reaches the page through Jinja's autoescape, and reaches
a figure through :func:`evstudy.report.charts.esc`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, StrictUndefined
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from scipy import stats

from evstudy.config import Window
from evstudy.report import charts
from evstudy.results import EventTimeline, StudyResults

TEMPLATE = "report.html.j2"
MISSING = "—"
KNOWN_PROVENANCE = {"source", "location", "first_date", "last_date", "tickers", "missing", "notes"}
MODEL_WORDS = {
    "market": "market model",
    "market_adjusted": "market-adjusted model",
    "constant_mean": "constant-mean model",
    "two_index": "two-index model (market and sector index)",
    "factor": "factor model",
    "dimson": "market model with Dimson (1979) lag/lead betas",
}
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


# --------------------------------------------------------------------------- number formats


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_pct(value: Any, signed: bool = True) -> str:
    """A return as a percentage with 2 decimals (``+3.21%``); NaN/None as a dash."""
    number = _finite(value)
    if number is None:
        return MISSING
    return f"{number * 100:+.2f}%" if signed else f"{number * 100:.2f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    """A plain number (t statistic, beta, R²) with ``digits`` decimals; NaN/None as a dash."""
    number = _finite(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def fmt_int(value: Any) -> str:
    """A count; NaN/None as a dash."""
    number = _finite(value)
    return MISSING if number is None else str(int(number))


def fmt_p(value: Any) -> str:
    """A p-value with 3 decimals, ``<0.001`` below that; NaN/None as a dash."""
    number = _finite(value)
    if number is None:
        return MISSING
    return "<0.001" if number < 0.001 else f"{number:.3f}"


def verdict(p_value: Any, effect: Any = None) -> tuple[str, str]:
    """Plain words for a p-value, and a CSS class: ("significant at 5%, positive", "sig")."""
    p = _finite(p_value)
    if p is None:
        return "not computed", "na"
    sign = _finite(effect)
    direction = "" if sign is None or sign == 0 else (", positive" if sign > 0 else ", negative")
    for level, words in ((0.01, "1%"), (0.05, "5%")):
        if p < level:
            return f"significant at {words}{direction}", "sig"
    if p < 0.10:
        return f"weak: significant at 10% only{direction}", "weak"
    return "not significant", "ns"


def window_words(start: int, end: int) -> str:
    """``day 0``, ``day +1`` or ``days -1 to +1``."""
    def day(d: int) -> str:
        return "0" if d == 0 else f"{d:+d}"

    if start == end:
        return f"day {day(start)}"
    return f"days {day(start)} to {day(end)}"


def _date(value: Any, weekday: bool = True) -> str:
    """``Mon 2025-10-13`` (or ``2025-10-13``) from a date, Timestamp or ISO string; missing as a dash."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    return f"{pd.Timestamp(value):%a %Y-%m-%d}" if weekday else f"{pd.Timestamp(value):%Y-%m-%d}"


def _sort_key(value: Any) -> str:
    """A numeric sort key for the table sorter; missing values sort last."""
    number = _finite(value)
    return "" if number is None else repr(number)


# --------------------------------------------------------------------------- figures


def figure_json(fig: go.Figure) -> Markup:
    """A figure as JSON safe inside a <script> element (no raw <, > or &)."""
    spec = {**fig.to_plotly_json(), "config": charts.PLOT_CONFIG}
    return Markup(pio.json.to_json_plotly(spec).translate(_JSON_ESCAPES))


# --------------------------------------------------------------------------- sections


def _model_sentence(results: StudyResults, timeline: EventTimeline) -> str:
    cfg = results.config
    est = cfg.estimation_window
    benches = ", ".join(dict.fromkeys(results.memberships.loc[results.memberships["event"] == timeline.event_id, "benchmark"]))
    dates = f"({_date(timeline.estimation_start, False)} to {_date(timeline.estimation_end, False)})"
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
            "date": _date(item.get("date")),
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


def record_verdict(words: str, caar: Any) -> tuple[str, str]:
    """The verdict record's words (from :mod:`evstudy.verdicts`) with the CAAR's direction, and a CSS class."""
    if not isinstance(words, str) or not words:
        return "not computed", "na"
    if words.startswith("inconclusive"):
        return words, "na"
    if not words.startswith("significant"):
        return words, "ns"
    sign = _finite(caar)
    direction = "" if sign is None or sign == 0 else (", positive" if sign > 0 else ", negative")
    return f"{words}{direction}", "weak" if words.endswith("10%") else "sig"


def _basket_groups(results: StudyResults, event_id: str) -> list[dict[str, Any]]:
    """The basket table, one group per basket × benchmark, one row per window.

    Verdict, headline test and its p come from the verdict record
    (``results.baskets``); the cross-sectional t and p stay alongside for reference.
    """
    titles = charts.basket_titles(results)
    table = results.baskets[results.baskets["event"] == event_id]
    groups = []
    for (basket, bench), group in table.groupby(["basket", "benchmark"], sort=False):
        rows = []
        for row in group.itertuples(index=False):
            words, css = record_verdict(row.verdict, row.caar)
            rows.append({
                "window": window_words(row.window_start, row.window_end),
                "n": fmt_int(row.n),
                "caar": fmt_pct(row.caar),
                "t": fmt_num(row.cs_t),
                "p": fmt_p(row.cs_p),
                "p_trusted": fmt_p(row.p_value) if row.headline_test else MISSING,
                "verdict": words,
                "css": css,
                "note": row.note or "",
            })
        tests = dict.fromkeys(row.headline_label for row in group.itertuples(index=False) if row.headline_test)
        groups.append({
            "basket": titles.get(basket, basket),
            "benchmark": bench,
            "trusted": " / ".join(tests),
            "rows": rows,
        })
    return groups


def _headlines(results: StudyResults, event_id: str) -> list[dict[str, str]]:
    window = _headline_window(results)
    titles = charts.basket_titles(results)
    table = results.baskets[
        (results.baskets["event"] == event_id)
        & (results.baskets["window_start"] == window.start)
        & (results.baskets["window_end"] == window.end)
    ]
    out = []
    for row in table.itertuples(index=False):
        words, css = record_verdict(row.verdict, row.caar)
        out.append({
            "basket": titles.get(row.basket, row.basket),
            "benchmark": row.benchmark,
            "caar": fmt_pct(row.caar),
            "n": fmt_int(row.n),
            "test": row.headline_label,
            "p": fmt_p(row.p_value),
            "verdict": words,
            "css": css,
        })
    return out


def _ticker_rows(results: StudyResults, event_id: str) -> list[dict[str, Any]]:
    window = _car_window(results)
    titles = charts.basket_titles(results)
    members = results.memberships[results.memberships["event"] == event_id]
    robust = diagnostics_section().robust_cells(results, event_id, window)
    marks = diagnostics_section().flag_marks(results, event_id)
    baskets = members.drop_duplicates(["ticker", "basket"]).groupby("ticker", sort=False)["basket"].agg(
        lambda names: ", ".join(titles.get(n, n) for n in names)
    )
    ar = results.abnormal_returns
    day0 = ar[(ar["event"] == event_id) & (ar["rel_day"] == 0)].set_index(["ticker", "benchmark"])
    cars = results.cars[
        (results.cars["event"] == event_id)
        & (results.cars["window_start"] == window.start)
        & (results.cars["window_end"] == window.end)
    ]
    ticker_rank = {t: i for i, t in enumerate(dict.fromkeys(members["ticker"]))}
    bench_rank = {b: i for i, b in enumerate(dict.fromkeys(members["benchmark"]))}
    cars = cars.assign(_t=cars["ticker"].map(ticker_rank), _b=cars["benchmark"].map(bench_rank)).sort_values(["_t", "_b"])
    rows = []
    for row in cars.itertuples(index=False):
        key = (row.ticker, row.benchmark)
        actual = day0["return"].get(key) if key in day0.index else None
        abnormal = day0["abnormal_return"].get(key) if key in day0.index else None
        words, css = verdict(row.p_value, row.car)
        rows.append({
            "ticker": row.ticker,
            "baskets": baskets.get(row.ticker, ""),
            "benchmark": row.benchmark,
            "cells": [
                (fmt_pct(actual), _sort_key(actual)),
                (fmt_pct(abnormal), _sort_key(abnormal)),
                (fmt_pct(row.car), _sort_key(row.car)),
                (fmt_num(row.t), _sort_key(row.t)),
                (fmt_p(row.p_value), _sort_key(row.p_value)),
            ],
            "robust": robust.get(key, []),
            "flag": marks.get(key, ""),
            "verdict": words,
            "css": css,
        })
    return rows


def _car_band_words(results: StudyResults, event_id: str) -> str:
    fits = results.fits[(results.fits["event"] == event_id) & (results.fits["status"] == "included")]
    df = int(np.median(fits["df"])) if len(fits) else 0
    if df < 1:
        return "CAR ± t(df, 0.975) × SE"
    return f"CAR ± t({df}, 0.975) × SE = CAR ± {stats.t.ppf(0.975, df):.2f} × SE"


def _confounder_key(timeline: EventTimeline) -> str:
    """The numbered markers of a chart spelled out, for its caption."""
    if not timeline.confounders:
        return ""
    listed = "; ".join(f"{c['number']} = {c['date']}: {c['label']}" for c in _confounders(timeline))
    return f" Numbered amber markers, other news: {listed}."


def _charts(results: StudyResults, timeline: EventTimeline, index: int) -> list[dict[str, Any]]:
    event_id = timeline.event_id
    start = results.config.event_span.start
    key = _confounder_key(timeline)
    n_tickers = len(dict.fromkeys(results.memberships.loc[results.memberships["event"] == event_id, "ticker"]))
    n_baskets = len(dict.fromkeys(results.memberships.loc[results.memberships["event"] == event_id, "basket"]))
    picker = "Pick a stock with the menu at the top right. " if n_tickers > charts.SMALL_MULTIPLES_MAX else \
        "One panel per stock. "
    specs: list[tuple[str, Callable[[StudyResults, str], go.Figure | None], str]] = [
        ("caar", charts.caar_figure,
         f"Each line adds up a basket's average abnormal return day by day from day {start:+d}. "
         "Shaded: 95% band, CAAR ± t(N−1, 0.975) × cross-sectional standard error; where the band "
         f"includes 0, the move is within normal noise. Dashed line: day 0.{key}"),
        ("car", charts.car_figure,
         f"{picker}Each line adds up the stock's abnormal returns from day {start:+d}, one line per "
         f"benchmark. Shaded: 95% band, {_car_band_words(results, event_id)}, where SE includes the "
         "estimation error of the model (MacKinlay 1997) and t uses the estimation window's degrees of freedom."),
        ("day0", charts.day0_figure,
         "The stock's actual return on day 0 minus the return the model expected, against the first "
         "benchmark of its basket. Colour: the stock's basket (a stock in several baskets takes the colour "
         "of its first). Hover for the actual and expected return and the abnormal return against every benchmark."),
        ("prices", charts.price_figure,
         "Closing prices divided by the close of day -1, times 100: a value of 110 means 10% above "
         "the last close before the event. Benchmarks are dashed."
         + (" The menu at the top right shows one basket at a time." if n_baskets > 1 else "") + key),
    ]
    out = []
    for name, build, caption in specs:
        fig = build(results, event_id)
        if fig is not None:
            out.append({"id": f"chart-{index}-{name}", "caption": caption, "json": figure_json(fig)})
    return out


def _fit_rows(results: StudyResults) -> list[dict[str, Any]]:
    fits = results.fits[results.fits["status"] == "included"]
    event_rank = {t.event_id: i for i, t in enumerate(results.timelines)}
    ticker_rank = {t: i for i, t in enumerate(dict.fromkeys(results.memberships["ticker"]))}
    fits = fits.assign(_e=fits["event"].map(event_rank), _t=fits["ticker"].map(ticker_rank))
    fits = fits.sort_values(["_e", "_t"], kind="stable")
    return [
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
        for row in fits.itertuples(index=False)
    ]


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
        "first": _date(prov.get("first_date")),
        "last": _date(prov.get("last_date")),
        "n_tickers": len(prov.get("tickers") or []),
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
    for index, timeline in enumerate(results.timelines):
        event_id = timeline.event_id
        excluded = results.exclusions[results.exclusions["event"] == event_id]
        events.append({
            "label": timeline.label or event_id,
            "mapping": timeline.mapping,
            "model": _model_sentence(results, timeline),
            "confounders": _confounders(timeline),
            "headline_window": window_words(headline.start, headline.end),
            "headlines": _headlines(results, event_id),
            "baskets": _basket_groups(results, event_id),
            "tests": not set(results.tests.loc[results.tests["event"] == event_id, "test"]) <= {"cs_t"},
            "car_window": window_words(car.start, car.end),
            "tickers": _ticker_rows(results, event_id),
            "charts": _charts(results, timeline, index),
            "n_excluded": len(excluded),
        })
    return events


def diagnostics_section() -> Any:
    """The estimation-window checks module (imported late: it uses this module's formatters)."""
    from evstudy.report import diagnostics_section as section

    return section


def render_html(results: StudyResults, *, generated_at: dt.datetime | None = None) -> str:
    """The full report as one HTML document (plotly.js inline, no external URL).

    ``generated_at`` defaults to now (UTC); pass a fixed time to make two renders comparable.
    """
    source = resources.files("evstudy.report").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(source)
    cfg = results.config
    when = (generated_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return template.render(
        title=cfg.title or cfg.name,
        name=cfg.name,
        description=cfg.description,
        version=results.version,
        generated=f"{when:%Y-%m-%d %H:%M} UTC",
        model_name=MODEL_WORDS.get(cfg.model, cfg.model),
        events=_events(results),
        multi_event=len(results.timelines) > 1,
        provenance=_provenance(results),
        notes=list(results.notes),
        fits=_fit_rows(results),
        exclusions=[
            {"event": r.event, "ticker": r.ticker, "benchmark": r.benchmark, "reason": r.reason}
            for r in results.exclusions.itertuples(index=False)
        ],
        reproduce=_reproduce(results),
        est_window=f"{cfg.estimation_window.start:+d} to {cfg.estimation_window.end:+d}",
        robust_columns=cfg.model != "market_adjusted" and not results.robustness.empty,
        hygiene=diagnostics_section().render(results, _car_window(results)),
        sections=_analysis_sections(results),
        plotly_js=Markup(get_plotlyjs().replace("</script", "<\\/script")),
    )


def _analysis_sections(results: StudyResults) -> list[Any]:
    """Sections of the analyses attached to the results (event catalogue, basket comparison, pre-event drift)."""
    from evstudy.report import catalogue_section, compare_section, inference_charts  # they use this module's formatters

    built = (
        inference_charts.render(results), catalogue_section.render(results), compare_section.render(results),
        catalogue_section.render_drift(results),
    )
    return [section for section in built if section is not None]
