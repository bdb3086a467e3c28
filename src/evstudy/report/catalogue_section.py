"""The report's event-catalogue and pre-event-drift sections, and their terminal summary.

Drawn from ``results.extras["catalogue"]`` and ``results.extras["drift"]``
(:mod:`evstudy.catalogue`); nothing is re-estimated. The catalogue section
gives each event's day 0 with the sentence that maps the announcement to it
and its day-0 abnormal returns, then the stacked multi-event CAAR with its
tests and its path. The drift section shows each series' CAR over the drift
window and the day it moved most, where leaks show.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import special

from evstudy.catalogue import Catalogue, DriftSummary
from evstudy.config import Window
from evstudy.report import charts
from evstudy.report.format import (
    MISSING,
    figure_json,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    p_key,
    plural,
    record_verdict,
    sort_key,
    verdict,
    window_words,
)
from evstudy.report.sections import Section, render_section
from evstudy.results import StudyResults
from evstudy.verdicts import HEADLINE_LABELS

CATALOGUE_TEMPLATE = "catalogue_section.html.j2"
DRIFT_TEMPLATE = "drift_section.html.j2"
STOCKS_SHOWN = 10  # a basket with more stocks shows only its day-0 average in the catalogue table
DRIFT_TOP = 15  # drift rows shown before "show all"
DRIFT_LINES = 8  # series drawn in the drift chart
DRIFT_ROWS_MAX = 300  # drift rows in the page; a larger study lists every series in results.json
MANY_EVENTS = 12  # more events than this: the many-event layout (an events table, not a full section per event)
DETAIL_EVENTS = 6  # ... which details in full only the events with the largest and the smallest CAARs
DISTRIBUTION_BINS = 30
FILTER_ROWS = 25  # a longer events table gets a search box (as the main report's tables)
EVENT_ROWS_MAX = 2_000  # event-basket rows in the events table; beyond, the largest and smallest CAARs
TEST_WORDS = {
    "cs_t": "cross-sectional t",
    "bmp_t": "BMP t (standardized)",
    "event_t": "t across event means",
}


def _style(fig: go.Figure, title: str, height: int, y_title: str) -> None:
    charts.plain_style(fig)
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 17}},
        height=height,
        font={"family": charts.FONT, "size": 12, "color": "#1e293b"},
        margin={"l": 64, "r": 20, "t": 80, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0.0},
        hoverlabel={"font": {"family": charts.FONT}},
    )
    fig.update_yaxes(title_text=y_title, ticksuffix="%", zeroline=True, zerolinecolor="#94a3b8")


def _date(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%a %Y-%m-%d}"


# --------------------------------------------------------------------------- catalogue


def stacked_figure(
    results: StudyResults, cat: Catalogue, stack: str, bench: str, lines: list[str] | None = None
) -> go.Figure | None:
    """The stacked CAAR path with its 95% band, over each event's own CAR path (thin lines).

    ``lines`` names the events drawn as thin lines (default: every event).
    """
    path = cat.paths[(cat.paths["stack"] == stack) & (cat.paths["benchmark"] == bench)].sort_values("rel_day")
    if path.empty:
        return None
    members = cat.day0.loc[cat.day0["benchmark"] == bench, ["event", "ticker"]].drop_duplicates()
    if lines is not None:
        members = members[members["event"].isin(lines)]
    cars = results.car_paths[results.car_paths["benchmark"] == bench].merge(members, on=["event", "ticker"])
    means = dict(tuple(cars.groupby("event", sort=False)))  # one pass, not one filter per event
    fig = go.Figure()
    for i, timeline in enumerate(results.timelines):
        part = means.get(timeline.event_id)
        if part is None:
            continue
        mean = part.groupby("rel_day")["car"].mean().sort_index()
        fig.add_trace(go.Scatter(
            x=mean.index.tolist(), y=mean.to_numpy() * 100, mode="lines",
            name=charts.esc(f"{timeline.event_id} (day 0 {timeline.day0:%Y-%m-%d})"),
            line={"color": charts.LINE_COLORS[i % len(charts.LINE_COLORS)], "width": 1.3},
            opacity=0.75, hovertemplate=charts.esc(timeline.event_id) + ": %{y:+.2f}%<extra></extra>",
        ))
    x = path["rel_day"].tolist()
    caar = path["caar"].to_numpy(dtype=float) * 100
    n = path["n"].to_numpy(dtype=float)
    half = np.where(n > 1, special.stdtrit(np.maximum(n - 1, 1), 0.975), np.nan) * path["se"].to_numpy(dtype=float) * 100
    if np.isfinite(half).any():
        fig.add_trace(go.Scatter(
            x=x + x[::-1], y=np.concatenate([caar + half, (caar - half)[::-1]]), fill="toself",
            fillcolor="rgba(15,23,42,0.10)", line={"width": 0}, hoverinfo="skip", showlegend=False,
        ))
    fig.add_trace(go.Scatter(
        x=x, y=caar, mode="lines+markers", name="stacked CAAR", line={"color": "#0f172a", "width": 3},
        marker={"size": 5}, hovertemplate="stacked CAAR %{y:+.2f}%<extra></extra>",
    ))
    fig.add_vline(x=0, line={"color": "#0f172a", "width": 1.5, "dash": "dash"})
    _style(fig, f"Stacked CAAR over {len(results.timelines)} events, vs {charts.esc(bench)}", 500, "CAR (%)")
    fig.update_xaxes(title_text="trading day relative to each event's day 0", showgrid=False, dtick=2)
    fig.update_layout(hovermode="x unified")
    return fig


def _event_blocks(results: StudyResults, cat: Catalogue) -> list[dict[str, Any]]:
    titles = charts.basket_titles(results)
    per_event = dict(tuple(cat.events.groupby("event", sort=False)))
    per_group = dict(tuple(cat.day0.groupby(["event", "basket", "benchmark"], sort=False)))
    record = results.baskets
    record = record[(record["window_start"] == 0) & (record["window_end"] == 0)].set_index(["event", "basket", "benchmark"])
    blocks = []
    for timeline in results.timelines:
        groups = []
        rows = per_event.get(timeline.event_id, cat.events.iloc[0:0])
        for row in rows.itertuples(index=False):
            key = (row.event, row.basket, row.benchmark)
            if key in record.index:  # the day-0 cell of the verdict record: the same test, p and verdict as the summary
                cell = record.loc[key]
                words, css = record_verdict(cell["verdict"], row.aar)
                t, p, test = cell["statistic"], cell["p_value"], cell["headline_label"] or MISSING
                source = p_key("record", *key, 0, 0)
            else:
                words, css = verdict(row.p_value, row.aar)
                t, p, test = row.t, row.p_value, TEST_WORDS.get(row.test, HEADLINE_LABELS.get(row.test, row.test))
                source = p_key("tests", *key, 0, 0, row.test)
            stocks = per_group.get(key, cat.day0.iloc[0:0])
            groups.append({
                "basket": titles.get(row.basket, row.basket),
                "benchmark": row.benchmark,
                "n": fmt_int(row.n),
                "aar": fmt_pct(row.aar),
                "t": fmt_num(t),
                "p": fmt_p(p),
                "p_key": source,
                "test": test,
                "verdict": words,
                "css": css,
                "note": row.note or "",
                "stocks": [
                    {"ticker": s["ticker"], "return": fmt_pct(s["return"]), "ar": fmt_pct(s["abnormal_return"]),
                     "t": fmt_num(s["t"]), "p": fmt_p(s["p_value"]),
                     "p_key": p_key("cars", row.event, s["ticker"], row.benchmark, 0, 0)}
                    for s in stocks.to_dict("records")
                ] if 1 < len(stocks) <= STOCKS_SHOWN else [],
                "single_return": fmt_pct(stocks["return"].iloc[0]) if len(stocks) == 1 else "",
            })
        blocks.append({
            "id": timeline.event_id,
            "label": timeline.label or timeline.event_id,
            "mapping": timeline.mapping,
            "day0": _date(timeline.day0),
            "groups": groups,
        })
    return blocks


def _stack_blocks(results: StudyResults, cat: Catalogue, lines: list[str] | None) -> list[dict[str, Any]]:
    blocks = []
    for index, ((stack, bench), part) in enumerate(cat.stacked.groupby(["stack", "benchmark"], sort=False)):
        tests = cat.tests[(cat.tests["stack"] == stack) & (cat.tests["benchmark"] == bench)]
        names = list(dict.fromkeys(tests["test"]))
        rows = []
        for row in part.itertuples(index=False):
            cells = []
            for name in names:
                hit = tests[(tests["test"] == name) & (tests["window_start"] == row.window_start)
                            & (tests["window_end"] == row.window_end)]
                test = hit.iloc[0] if len(hit) else None
                words, css = verdict(None if test is None else test["p_value"], row.caar)
                cells.append({
                    "statistic": fmt_num(None if test is None else test["statistic"]),
                    "p": fmt_p(None if test is None else test["p_value"]),
                    "p_key": p_key("stack", stack, bench, row.window_start, row.window_end, name),
                    "verdict": words, "css": css,
                    "note": "" if test is None else (test["note"] or ""),
                })
            rows.append({
                "window": window_words(row.window_start, row.window_end),
                "n": fmt_int(row.n),
                "caar": fmt_pct(row.caar),
                "cells": cells,
            })
        fig = stacked_figure(results, cat, stack, bench, lines)
        blocks.append({
            "label": part["label"].iloc[0],
            "benchmark": bench,
            "events": part["events"].iloc[0],
            "n_events": int(part["n_events"].iloc[0]),
            "tests": [TEST_WORDS.get(n, n) for n in names],
            "rows": rows,
            "chart": None if fig is None else {"id": f"catalogue-stack-{index}", "json": figure_json(fig)},
            "lines": "" if lines is None else
                     f"the average CAR of the {plural(len(lines), 'event')} with the largest and smallest CAARs",
        })
    return blocks


def render(
    results: StudyResults, *, headline: Window | None = None, car: Window | None = None,
    detailed: list[str] | None = None,
) -> Section | None:
    """The event-catalogue section, or None for a one-event study.

    In the many-event layout (:func:`many_events`, given the report's
    ``headline`` and ``car`` windows) every event is one row of a searchable
    table instead of a block of its own, and the stacked chart draws the
    ``detailed`` events' own lines only.
    """
    cat: Catalogue | None = results.extras.get("catalogue")
    if cat is None:
        return None
    many = many_events(results) and headline is not None and car is not None
    table, dropped = events_table(results, headline, car) if many else ([], 0)  # type: ignore[arg-type]
    html = render_section(
        CATALOGUE_TEMPLATE,
        events=[] if many else _event_blocks(results, cat),
        table=table,
        table_dropped=dropped,
        headline=window_words(headline.start, headline.end) if headline is not None else "",
        car=window_words(car.start, car.end) if car is not None and car != headline else "",
        stacks=_stack_blocks(results, cat, detailed if many else None),
        notes=list(cat.notes),
        filter_rows=FILTER_ROWS,
    )
    return Section("catalogue", "Event catalogue", html)


# --------------------------------------------------------------------------- many events


def many_events(results: StudyResults) -> bool:
    """Whether the report takes the many-event layout: more than MANY_EVENTS events.

    Then the first screen shows the stacked answer, the distribution of the
    events' CAARs and full sections for the largest and smallest moves only
    (:func:`detail_events`); every event is one row of a searchable table, and
    every number of every event is in the data files.
    """
    return len(results.timelines) > MANY_EVENTS


def _window_rows(results: StudyResults, window: Window) -> pd.DataFrame:
    """The verdict record's rows (event x basket x benchmark) on one window."""
    record = results.baskets
    return record[(record["window_start"] == window.start) & (record["window_end"] == window.end)]


def detail_events(results: StudyResults, window: Window) -> list[str]:
    """The events a many-event report details in full, largest CAAR first.

    Each event is ranked by the CAAR on ``window`` of its first basket x
    benchmark with a CAAR in the verdict record; the DETAIL_EVENTS / 2 largest
    and smallest are kept (every event when there are no more than DETAIL_EVENTS).
    """
    rows = _window_rows(results, window).dropna(subset=["caar"]).drop_duplicates("event")
    ranked = rows.sort_values("caar", ascending=False, kind="stable")["event"].tolist()
    half = DETAIL_EVENTS // 2
    return ranked if len(ranked) <= DETAIL_EVENTS else ranked[:half] + ranked[-half:]


def detail_view(results: StudyResults, event_ids: list[str]) -> StudyResults:
    """The results restricted to ``event_ids``, in that order: timelines, every per-event table and analysis.

    The sections drawn one event at a time render this view, so their work
    follows the detailed events, not the catalogue's size.
    """
    keep = set(event_ids)

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["event"].isin(keep)] if "event" in frame.columns else frame

    tables = {
        f.name: rows(value) for f in dataclasses.fields(results)
        if isinstance(value := getattr(results, f.name), pd.DataFrame)
    }
    extras = dict(results.extras)
    for name, parts in (("drift", ("series", "baskets")), ("comparisons", ("pairs", "baskets"))):
        if (analysis := extras.get(name)) is not None:
            extras[name] = dataclasses.replace(analysis, **{part: rows(getattr(analysis, part)) for part in parts})
    by_id = {t.event_id: t for t in results.timelines}
    return dataclasses.replace(results, timelines=tuple(by_id[e] for e in event_ids), extras=extras, **tables)


def events_table(results: StudyResults, headline: Window, car: Window) -> tuple[list[dict[str, Any]], int]:
    """One row per event x basket x benchmark, read from the verdict record: the CAAR on the headline window
    with its verdict, test and p, and (when it is another window) the CAAR on the CAR window with its p.

    Beyond EVENT_ROWS_MAX rows, the largest and smallest headline CAARs (half each, in event order);
    returns the rows and how many were left out.
    """
    titles = charts.basket_titles(results)
    timelines = {t.event_id: t for t in results.timelines}
    keys = ["event", "basket", "benchmark"]
    table = _window_rows(results, headline)
    dropped = 0
    if len(table) > EVENT_ROWS_MAX:
        ranked = table["caar"].dropna().sort_values(ascending=False, kind="stable").index
        kept = ranked[:EVENT_ROWS_MAX // 2].union(ranked[-(EVENT_ROWS_MAX // 2):])
        dropped = len(table) - len(kept)
        table = table.loc[kept]
    second = car != headline
    if second:
        table = table.merge(_window_rows(results, car)[[*keys, "caar", "p_value"]], on=keys, how="left",
                            suffixes=("", "_car"))
    out = []
    for row in table.itertuples(index=False):
        timeline = timelines[row.event]
        words, css = record_verdict(row.verdict, row.caar)
        out.append({
            "event": timeline.event_id,
            "label": timeline.label if timeline.label and timeline.label != timeline.event_id else "",
            "day0": f"{pd.Timestamp(timeline.day0):%Y-%m-%d}",
            "basket": titles.get(row.basket, row.basket),
            "benchmark": row.benchmark,
            "n": (fmt_int(row.n), sort_key(row.n)),
            "caar": (fmt_pct(row.caar), sort_key(row.caar)),
            "verdict": words,
            "css": css,
            "test": row.headline_label or "",
            "p": (fmt_p(row.p_value), sort_key(row.p_value)),
            "p_key": p_key("record", row.event, row.basket, row.benchmark, headline.start, headline.end),
            "car": (fmt_pct(row.caar_car), sort_key(row.caar_car)) if second else None,
            "car_p": (fmt_p(row.p_value_car), sort_key(row.p_value_car)) if second else None,
            "car_key": p_key("record", row.event, row.basket, row.benchmark, car.start, car.end) if second else "",
        })
    return out, dropped


def distribution_figure(results: StudyResults, windows: list[Window]) -> dict[str, Any] | None:
    """Histogram of the events' CAARs (event x basket x benchmark rows of the record), one trace per window.

    Binned here (DISTRIBUTION_BINS bars a window), so the page carries bar
    heights, not one point per event; a plotly.js figure dict.
    """
    shown = list(dict.fromkeys(windows))
    caars = [_window_rows(results, window)["caar"].to_numpy(dtype=float) * 100 for window in shown]
    caars = [values[np.isfinite(values)] for values in caars]
    every = np.concatenate(caars)
    if not len(every):
        return None
    edges = np.histogram_bin_edges(every, bins=DISTRIBUTION_BINS)  # one set of bins, so the windows compare
    traces = []
    for k, (window, values) in enumerate(zip(shown, caars)):
        if not len(values):
            continue
        heights = np.histogram(values, bins=edges)[0]
        traces.append({
            "type": "bar", "x": (edges[:-1] + edges[1:]) / 2, "y": heights, "width": np.diff(edges),
            "name": f"CAAR, {window_words(window.start, window.end)}", "opacity": 0.6,
            "marker": {"color": charts.BASKET_COLORS[k % len(charts.BASKET_COLORS)]},
            "hovertemplate": "CAAR %{x:+.2f}%: %{y} event-baskets<extra></extra>",
        })
    axis = {"gridcolor": "#e2e8f0", "zerolinecolor": "#94a3b8", "linecolor": "#cbd5e1", "ticks": ""}
    layout = {
        "template": {}, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "barmode": "overlay", "bargap": 0.02,
        "title": {"text": f"CAAR of each of the {len(results.timelines):,} events", "x": 0.0, "xanchor": "left",
                  "font": {"size": 17}},
        "height": 380, "font": {"family": charts.FONT, "size": 12, "color": "#1e293b"},
        "margin": {"l": 64, "r": 20, "t": 70, "b": 60}, "hoverlabel": {"font": {"family": charts.FONT}},
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0.0},
        "xaxis": {**axis, "title": {"text": "CAAR of the event's basket (%)"}, "ticksuffix": "%", "zeroline": True},
        "yaxis": {**axis, "title": {"text": "event-baskets"}},
    }
    return {"data": traces, "layout": layout}


def overview(results: StudyResults, headline: Window, car: Window, detailed: list[str]) -> dict[str, Any] | None:
    """The many-event layout's first-screen summary, or None for a catalogue of MANY_EVENTS events or fewer.

    How many event-baskets each verdict was given on the headline window (counted from the record), the
    distribution of the events' CAARs, and which events the page details in full.
    """
    if not many_events(results):
        return None
    record = _window_rows(results, headline)
    counts: dict[tuple[str, str], int] = {}
    for words, caar in zip(record["verdict"], record["caar"]):
        shown = record_verdict(words, caar)
        counts[shown] = counts.get(shown, 0) + 1
    fig = distribution_figure(results, [headline, car])
    return {
        "n_events": plural(len(results.timelines), "event"),
        "n_rows": len(record),
        "verdicts": [{"words": words, "css": css, "count": count}
                     for (words, css), count in sorted(counts.items(), key=lambda item: -item[1])],
        "chart": None if fig is None else {"id": "catalogue-distribution", "json": figure_json(fig)},
        "detailed": plural(len(detailed), "event"),
        "half": DETAIL_EVENTS // 2,
    }


# --------------------------------------------------------------------------- drift


def drift_figure(results: StudyResults, drift: DriftSummary) -> dict[str, Any] | None:
    """Cumulative abnormal return through the drift window for the stocks that drifted most, peak day marked.

    One line per stock (its benchmark with the largest drift), so a stock
    studied against two benchmarks is not drawn and labelled twice; its
    largest day is a diamond, named in the legend, not a label over the lines.
    A plotly.js figure dict: traces as plain dicts skip plotly's per-trace validation.
    """
    series = drift.series.dropna(subset=["car"])
    if series.empty:
        return None
    ranked = series.reindex(series["car"].abs().sort_values(ascending=False).index)
    top = ranked.drop_duplicates(["event", "ticker"]).head(DRIFT_LINES)
    daily = results.drift_returns
    daily = daily.set_index(["event", "ticker", "benchmark"]).sort_index()
    multi = len(results.timelines) > 1
    window = drift.window
    traces: list[dict[str, Any]] = []
    for i, row in enumerate(top.itertuples(index=False)):
        key = (row.event, row.ticker, row.benchmark)
        part = daily.loc[key].sort_values("rel_day") if key in daily.index else daily.iloc[0:0]
        cum = part["abnormal_return"].cumsum().to_numpy(dtype=float) * 100
        peak_words = "" if pd.isna(row.peak_date) else \
            f", largest day {pd.Timestamp(row.peak_date):%b %d} {row.peak_return * 100:+.1f}%"
        name = charts.esc(f"{row.ticker} vs {row.benchmark}" + (f" ({row.event})" if multi else "") + peak_words)
        color = charts.LINE_COLORS[i % len(charts.LINE_COLORS)]
        custom = np.column_stack([
            [f"{pd.Timestamp(d):%a %Y-%m-%d}" if pd.notna(d) else "" for d in part["date"]],
            part["return"].to_numpy(dtype=float) * 100, part["abnormal_return"].to_numpy(dtype=float) * 100,
        ])
        traces.append({
            "type": "scatter", "x": part["rel_day"].tolist(), "y": cum, "mode": "lines", "name": name,
            "line": {"color": color, "width": 2}, "legendgroup": name, "customdata": custom,
            "hovertemplate": charts.esc(f"{row.ticker} vs {row.benchmark}") + "<br>day %{x:+d}, %{customdata[0]}"
            "<br>return %{customdata[1]:+.2f}%, AR %{customdata[2]:+.2f}%<br>cumulative AR %{y:+.2f}%<extra></extra>",
        })
        at = np.flatnonzero(part["rel_day"].to_numpy() == row.peak_rel_day)
        if len(at):
            traces.append({
                "type": "scatter", "x": [row.peak_rel_day], "y": [cum[at[0]]], "mode": "markers",
                "showlegend": False, "legendgroup": name,
                "marker": {"color": color, "size": 11, "symbol": "diamond", "line": {"color": "#ffffff", "width": 1}},
                "hoverinfo": "skip",
            })
    # _style's look as a plain dict (no plotly figure object to validate), keys in the order plotly writes them
    layout = charts.plain_layout({})
    layout.update(
        title={"font": {"size": 17},
               "text": f"Cumulative abnormal return before day 0, days {window.start:+d} to {window.end:+d}",
               "x": 0.0, "xanchor": "left"},
        font={"family": charts.FONT, "size": 12, "color": "#1e293b"},
        margin={"l": 64, "r": 20, "t": 80, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.16, "x": 0.0},
        hoverlabel={"font": {"family": charts.FONT}},
        height=520,
    )
    charts.update_axes(layout, "x", {"title": {"text": "trading day relative to day 0"}, "showgrid": False, "dtick": 2})
    charts.update_axes(layout, "y", {"title": {"text": "cumulative AR (%)"}, "ticksuffix": "%", "zeroline": True,
                                     "zerolinecolor": "#94a3b8"})
    return {"data": traces, "layout": layout}


def _drift_rows(drift: DriftSummary, multi: bool, most: int) -> list[dict[str, Any]]:
    """The first ``most`` series by drift CAR, largest first."""
    series = drift.series.assign(_key=drift.series["car"].astype(float)).sort_values(
        "_key", ascending=False, na_position="last", kind="stable"
    ).head(most)
    rows = []
    for row in series.itertuples(index=False):
        words, css = verdict(row.p_value, row.car)
        rows.append({
            "event": row.event if multi else "",
            "ticker": row.ticker,
            "benchmark": row.benchmark,
            "cells": [
                (fmt_pct(row.car), sort_key(row.car)),
                (fmt_num(row.t), sort_key(row.t)),
            ],
            "p": (fmt_p(row.p_value), sort_key(row.p_value)),
            "p_key": p_key("drift", row.event, row.ticker, row.benchmark),
            "peak": _date(row.peak_date),
            "peak_day": "—" if pd.isna(row.peak_rel_day) else f"{int(row.peak_rel_day):+d}",
            "peak_cells": [
                (fmt_pct(row.peak_return), sort_key(row.peak_return)),
                (fmt_pct(row.peak_abnormal_return), sort_key(row.peak_abnormal_return)),
            ],
            "verdict": words,
            "css": css,
            "note": row.note or "",
        })
    return rows


def render_drift(results: StudyResults) -> Section | None:
    """The pre-event drift section, or None when the study has no drift summary."""
    drift: DriftSummary | None = results.extras.get("drift")
    if drift is None or drift.series.empty:
        return None
    multi = len(results.timelines) > 1
    titles = charts.basket_titles(results)
    # each event's drift dates, from one grouping (a filter per event would grow with events squared); the
    # many-event layout leaves the list of dates to the data files
    dates = results.drift_returns.dropna(subset=["date"]).groupby("event", sort=False)["date"].agg(["min", "max"])
    spans = [] if many_events(results) else [
        {"event": t.label or t.event_id,
         "first": _date(dates["min"].get(t.event_id)), "last": _date(dates["max"].get(t.event_id))}
        for t in results.timelines
    ]
    rows_shown = drift.baskets
    if len(rows_shown) > DRIFT_ROWS_MAX:  # the largest drifts either way; every row is in results.json
        rows_shown = rows_shown.loc[rows_shown["caar"].abs().sort_values(ascending=False).index[:DRIFT_ROWS_MAX]]
    baskets = []
    for row in rows_shown.itertuples(index=False):
        words, css = verdict(row.p_value, row.caar)
        baskets.append({
            "event": row.event if multi else "", "basket": titles.get(row.basket, row.basket),
            "benchmark": row.benchmark, "n": fmt_int(row.n), "caar": fmt_pct(row.caar), "t": fmt_num(row.t),
            "p": fmt_p(row.p_value), "verdict": words, "css": css, "note": row.note or "",
            "p_key": p_key("drift_baskets", row.event, row.basket, row.benchmark),
        })
    fig = drift_figure(results, drift)
    rows = _drift_rows(drift, multi, DRIFT_TOP + DRIFT_ROWS_MAX)
    html = render_section(
        DRIFT_TEMPLATE,
        window=window_words(drift.window.start, drift.window.end),
        caveat=drift.caveat,
        spans=spans,
        multi=multi,
        rows=rows[:DRIFT_TOP],
        more=rows[DRIFT_TOP:DRIFT_TOP + DRIFT_ROWS_MAX],
        n_rows=len(drift.series),
        baskets=baskets,
        baskets_dropped=len(drift.baskets) - len(rows_shown),
        chart=None if fig is None else {"id": "drift-chart", "json": figure_json(fig)},
        lines=DRIFT_LINES,
    )
    return Section("drift", "Pre-event drift", html)


# --------------------------------------------------------------------------- terminal


def catalogue_text(results: StudyResults, *, top: int = 5) -> str:
    """Terminal lines: the stacked CAAR with its tests (multi-event) and the largest pre-event drifts."""
    lines: list[str] = []
    cat: Catalogue | None = results.extras.get("catalogue")
    if cat is not None and not cat.stacked.empty:
        lines.append("Stacked CAAR over the events (tests: p-values):")
        for row in cat.stacked.itertuples(index=False):
            tests = cat.tests[(cat.tests["stack"] == row.stack) & (cat.tests["benchmark"] == row.benchmark)
                              & (cat.tests["window_start"] == row.window_start)
                              & (cat.tests["window_end"] == row.window_end)]
            words = ", ".join(f"{t.test} p {fmt_p(t.p_value)}" for t in tests.itertuples(index=False))
            lines.append(
                f"  {row.label} vs {row.benchmark}, {window_words(row.window_start, row.window_end)}: "
                f"CAAR {fmt_pct(row.caar)} (N={row.n}, {row.n_events} events; {words})"
            )
        lines += [f"  note: {note}" for note in cat.notes]
    drift: DriftSummary | None = results.extras.get("drift")
    if drift is not None and not drift.series.empty:
        series = drift.series.dropna(subset=["car"])
        series = series.reindex(series["car"].abs().sort_values(ascending=False).index).head(top)
        if lines:
            lines.append("")
        lines.append(f"Largest pre-event drifts, CAR over {window_words(drift.window.start, drift.window.end)}:")
        for row in series.itertuples(index=False):
            lines.append(
                f"  {row.ticker} vs {row.benchmark} [{row.event}]: {fmt_pct(row.car)} (p {fmt_p(row.p_value)}); "
                f"largest day {_date(row.peak_date)} (day {int(row.peak_rel_day):+d}): return "
                f"{fmt_pct(row.peak_return)}, AR {fmt_pct(row.peak_abnormal_return)}"
            )
        if drift.caveat:
            lines.append(f"  caveat: {drift.caveat}")
    return "\n".join(lines)
