"""The report's estimation-window checks: flags, full-window vs active-part fits, BHARs, robustness cells.

Called by :mod:`evstudy.report.html`; everything shown comes from the results'
``diagnostics``, ``fit_comparison``, ``robustness`` and ``bhars`` tables
(:mod:`evstudy.diagnostics` computes them). User-supplied strings reach the
page through Jinja's autoescape.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
from markupsafe import Markup

from evstudy.config import Window
from evstudy.diagnostics import BREAK_CRITICAL_5PCT, FLAT_RUN_DAYS, NOT_ACTED_ON, OUTLIER_SIGMAS
from evstudy.report.format import MISSING, fmt_int, keyed, fmt_num, fmt_p, fmt_pct, p_key, tuples, verdict, window_words
from evstudy.report.sections import render_section
from evstudy.results import StudyResults

TEMPLATE = "diagnostics_section.html.j2"
FLAG_WORDS = {
    "trimmed": "estimated on the active part only",
    "variance_break": "volatility changed inside the window",
    "mean_break": "average abnormal return shifted inside the window",
    "flat_run": "long run of unchanged prices",
    "few_returns": "too few valid returns",
    "outlier": "extreme days",
}
ROWS_MAX = 300  # rows per table; a larger study lists the rest in results.json, not in the page


def _day(value: Any) -> str:
    return MISSING if value is None or pd.isna(value) else _day_text(value)


@functools.lru_cache(maxsize=4096)
def _day_text(value: Any) -> str:
    """A date as YYYY-MM-DD; cached, as a large study repeats a few window dates thousands of times."""
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def _flag_rows(results: StudyResults) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The flags, one row each in series order, and per series one row listing its extreme days."""
    table = results.diagnostics
    multi = len(results.timelines) > 1
    order = {flag: i for i, flag in enumerate(FLAG_WORDS)}
    series = {key: i for i, key in enumerate(dict.fromkeys(zip(*(table[c].tolist() for c in ("event", "ticker", "benchmark")))))}
    rows, extreme = [], []
    for row in tuples(table):
        key = (row.event, row.ticker, row.benchmark)
        base = {"event": row.event if multi else "", "ticker": row.ticker, "benchmark": row.benchmark,
                "_order": (series[key], order.get(row.flag, 99))}
        if row.flag == "outlier":
            if extreme and extreme[-1]["_order"][0] == series[key]:
                extreme[-1]["days"].append(f"{_day(row.date)}: {row.detail}")
            else:
                extreme.append({**base, "days": [f"{_day(row.date)}: {row.detail}"]})
            continue
        rows.append({**base, "check": FLAG_WORDS.get(row.flag, row.flag), "flag": row.flag, "date": _day(row.date),
                     "detail": row.detail.replace(NOT_ACTED_ON, "")})
    rows.sort(key=lambda r: r["_order"])
    return rows, extreme


def _comparison_rows(results: StudyResults, window: Window) -> list[dict[str, Any]]:
    """Per compared series, its two fits with the day-0 AR and the CAR over ``window`` each implies."""
    cmp = results.fit_comparison
    if cmp.empty:
        return []
    day0 = keyed(cmp[(cmp["window_start"] == 0) & (cmp["window_end"] == 0)], ["event", "ticker", "benchmark", "fit"], "car")
    car = cmp[(cmp["window_start"] == window.start) & (cmp["window_end"] == window.end)]
    out = []
    for row in tuples(car):
        key = (row.event, row.ticker, row.benchmark, row.fit)
        ar0 = day0.get(key)
        words, css = verdict(row.p_value, row.car)
        out.append({
            "series": f"{row.ticker} vs {row.benchmark}",
            "fit": row.fit,
            "used": bool(row.used),
            "span": f"{_day(row.estimation_start)} to {_day(row.estimation_end)}",
            "n": fmt_int(row.n_obs),
            "alpha": fmt_pct(row.alpha),
            "beta": fmt_num(row.beta),
            "r2": fmt_num(row.r2, 3),
            "sigma": fmt_pct(row.sigma, signed=False),
            "ar0": fmt_pct(ar0) if ar0 is not None else MISSING,
            "car": fmt_pct(row.car),
            "t": fmt_num(row.t),
            "p": fmt_p(row.p_value),
            "p_key": p_key("fit_comparison", row.event, row.ticker, row.benchmark, row.fit, window.start, window.end),
            "verdict": words,
            "css": css,
        })
    return out


def _bhar_rows(results: StudyResults) -> list[dict[str, Any]]:
    bh = results.bhars
    if bh.empty:
        return []
    cars = keyed(results.cars, ["event", "ticker", "benchmark", "window_start", "window_end"], "car")
    rows = []
    for row in tuples(bh):
        key = (row.event, row.ticker, row.benchmark, row.window_start, row.window_end)
        rows.append({
            "ticker": row.ticker,
            "benchmark": row.benchmark,
            "window": window_words(row.window_start, row.window_end),
            "bh_return": fmt_pct(row.bh_return),
            "bh_expected": fmt_pct(row.bh_expected),
            "bhar": fmt_pct(row.bhar),
            "car": fmt_pct(cars.get(key)),
        })
    return rows


def robust_cells(results: StudyResults, event_id: str, window: Window) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Per (ticker, benchmark): the market-adjusted day-0 AR and CAR over ``window`` as (text, sort key) cells.

    Empty when the study's own model is market-adjusted (the columns would repeat the main ones).
    """
    if results.config.model == "market_adjusted" or results.robustness.empty:
        return {}
    rob = results.robustness[results.robustness["event"] == event_id]
    table = keyed(rob, ["ticker", "benchmark", "window_start", "window_end"], "car")
    cells = {}
    for ticker, bench in dict.fromkeys(key[:2] for key in table):
        values = [table.get((ticker, bench, 0, 0)), table.get((ticker, bench, window.start, window.end))]
        cells[(ticker, bench)] = [(fmt_pct(v), "" if v is None or pd.isna(v) else repr(float(v))) for v in values]
    return cells


def flag_marks(results: StudyResults, event_id: str) -> dict[tuple[str, str], str]:
    """Per (ticker, benchmark) with an estimation-window flag other than extreme days: a tooltip naming its checks."""
    table = results.diagnostics
    table = table[(table["event"] == event_id) & (table["flag"] != "outlier")]  # extreme days alone are common
    flags: dict[tuple[str, str], dict[str, None]] = {}
    for ticker, bench, flag in tuples(table[["ticker", "benchmark", "flag"]]):
        flags.setdefault((ticker, bench), {})[flag] = None
    return {series: "; ".join(FLAG_WORDS.get(f, f) for f in named) for series, named in flags.items()}


def render(results: StudyResults, window: Window) -> Markup:
    """The HTML of the estimation-window checks (inside the report's Diagnostics card)."""
    flags, extreme = _flag_rows(results)
    trimmed = [r for r in flags if r["flag"] == "trimmed"]
    comparison, bhars = _comparison_rows(results, window), _bhar_rows(results)
    html = render_section(
        TEMPLATE,
        flags=flags[:ROWS_MAX],
        extreme=extreme[:ROWS_MAX],
        trimmed=trimmed[:ROWS_MAX],
        cut={"flags": len(flags), "extreme": len(extreme), "comparison": len(comparison), "bhars": len(bhars)},
        rows_max=ROWS_MAX,
        n_series=len(results.fits),
        n_flagged=len({(r["event"], r["ticker"], r["benchmark"]) for r in flags}),
        n_extreme=len(extreme),
        comparison=comparison[:ROWS_MAX],
        car_window=window_words(window.start, window.end),
        bhars=bhars[:ROWS_MAX],
        model=results.config.model,
        accept_breaks=results.config.accept_breaks,
        critical=BREAK_CRITICAL_5PCT,
        sigmas=f"{OUTLIER_SIGMAS:g}",
        flat_days=FLAT_RUN_DAYS,
        est_window=results.config.estimation_window.label,
    )
    return html
