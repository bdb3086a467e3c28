"""The report's "Which test to trust" section: every basket test, the one to read, and the placebo chart.

Drawn from ``results.tests`` and ``results.placebo``; nothing is re-estimated.
Per event and basket x benchmark: a compact table (tests x windows:
statistic and p-value), the row of the test the measured size/power table
supports highlighted with its one-sentence reason (read from the verdict record, :mod:`evstudy.verdicts`),
the notes of undefined tests, and one chart per event of each basket's placebo
CAAR distribution with the actual CAAR marked (a menu picks the basket).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from evstudy.inference import SMALL_N, TEST_IDS, TEST_LABELS
from evstudy.report import charts
from evstudy.report.format import (
    MISSING, figure_json, fmt_num, fmt_p, fmt_pct, p_key, records, verdict, window_words,
)
from evstudy.report.sections import Section, render_section
from evstudy.verdicts import load_evidence
from evstudy.results import StudyResults

TEMPLATE = "inference_section.html.j2"
SECTION_ID = "tests"
BINS = 30
ACTUAL_COLOR = "#dc2626"


def _groups(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return _pairs(frame, "basket", "benchmark")


def _pairs(frame: pd.DataFrame, first: str, second: str) -> list[tuple[Any, Any]]:
    """The distinct (first, second) values in order of first appearance (vectorized: the draws run to 10^5 rows)."""
    return list(frame[[first, second]].drop_duplicates().itertuples(index=False, name=None))


def _statistic(test: str, value: Any) -> str:
    """The placebo CAAR test's statistic is a CAAR (a return), Wilcoxon's a rank sum; every other a z or t."""
    if test == "placebo_caar":
        return fmt_pct(value)
    return fmt_num(value, 1) if test == "wilcoxon" else fmt_num(value)


def _cell_html(cell: dict[str, Any], trusted: bool) -> str:
    """One table cell: the statistic, its p-value (``data-p`` names its source) and the verdict as a tooltip.

    Written here, not by a Jinja loop, because the page has ~840 of them; every value is escaped as the
    template would. A trusted test's window that the verdict does not speak for is greyed ("silent").
    """
    silent = trusted and not cell["spoke"]
    return (f'<td class="num{" silent" if silent else ""}" title="'
            f'{"not the verdict for this window (see its reason); " if silent else ""}{escape(cell["title"])}">'
            f'{escape(cell["stat"])}<span class="pv {escape(cell["css"])}">p <span data-p="{escape(cell["key"])}">'
            f'{escape(cell["p"])}</span></span></td>')


def _table(group: list[dict[str, Any]], record: list[dict[str, Any]]) -> dict[str, Any]:
    """Tests x windows for one basket, the verdict record's headline rows marked, with its reasons.

    ``group`` holds this basket's rows of ``results.tests`` and ``record`` its
    rows of the verdict record (``results.baskets``), as :func:`records`.
    """
    windows = list(dict.fromkeys((rec["window_start"], rec["window_end"]) for rec in group))
    n = int(max(rec["n"] for rec in group)) if group else 0
    chosen = {rec["test"] for rec in group if rec.get("headline", False)}
    # one dict per row, keyed by its cell: a lookup per cell, not a scan of the table
    cells = {(rec["test"], rec["window_start"], rec["window_end"]): rec for rec in group}
    present = {rec["test"] for rec in group}
    rows, notes = [], {}
    for test in [t for t in TEST_IDS if t in present]:
        row_cells = []
        for start, end in windows:
            rec = cells[(test, start, end)]
            words, css = verdict(rec["p_value"])
            stat = MISSING if pd.isna(rec["statistic"]) else _statistic(test, rec["statistic"])
            spoke = bool(rec["headline"]) if "headline" in rec else False
            row_cells.append({"stat": stat, "p": fmt_p(rec["p_value"]), "css": css, "title": words, "spoke": spoke,
                              "key": p_key("tests", rec["event"], rec["basket"], rec["benchmark"], start, end, test)})
            note = str(rec["note"]) if isinstance(rec["note"], str) else ""
            if note and test not in notes.setdefault(note, []):
                notes[note].append(test)
        rows.append({"id": test, "label": TEST_LABELS[test], "trusted": test in chosen,
                     "cells_html": Markup("".join(_cell_html(c, test in chosen) for c in row_cells))})
    reasons: dict[str, list[str]] = {}
    for row in record:
        reasons.setdefault(row["verdict_reason"], []).append(window_words(row["window_start"], row["window_end"]))
    # one line per distinct reason, naming its windows: a paragraph of six near-identical sentences is unreadable
    reason = [{"windows": "" if len(reasons) == 1 else ", ".join(w), "text": r} for r, w in reasons.items()]
    return {
        "n": n,
        "windows": [window_words(s, e) for s, e in windows],
        "rows": rows,
        "reason": reason,
        "headline": " / ".join(TEST_LABELS.get(t, t) for t in TEST_IDS if t in chosen),
        "small": n < SMALL_N,
        "notes": [{"tests": tests, "note": note} for note, tests in notes.items()],
    }


def _layout(windows: list[tuple[int, int]], k: int) -> tuple[dict[str, Any], int]:
    """The panels' layout (plotly.js dict) and the number of columns: the grid laid out once, with no traces.

    :func:`charts.subplot_grid` places the axes and panel titles as
    ``make_subplots`` would; the traces and the menu are then added as
    plain dicts, with no plotly figure object to validate them.
    """
    cols = min(3, len(windows))
    nrows = math.ceil(len(windows) / cols)
    layout = charts.plain_layout(charts.subplot_grid(
        nrows, cols, [window_words(s, e) for s, e in windows], horizontal_spacing=0.06, vertical_spacing=0.16))
    layout.update(  # in the order plotly writes them, so the page's JSON is the same text as before
        title={"font": {"size": 16},
               "text": f"Placebo test: the basket's CAAR on {k:,} days without news, and on the event (red)",
               "x": 0.0, "xanchor": "left", "y": 0.98, "yanchor": "top"},
        font={"family": charts.FONT, "size": 12, "color": "#1e293b"},
        margin={"l": 56, "r": 20, "t": 150, "b": 50},
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0.0},
        hoverlabel={"font": {"family": charts.FONT}},
        height=170 + 250 * nrows, bargap=0.02,
    )
    charts.update_axes(layout, "x", {"ticksuffix": "%", "zeroline": True, "zerolinecolor": "#cbd5e1"})
    charts.update_axes(layout, "y", {"title": {"text": "pseudo-days"}}, col=1, cols=cols)
    return layout, cols


def placebo_figure(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """Each basket's CAAR on the placebo days (histogram per window) with the actual CAAR as a red line.

    One panel per window; a menu picks the basket x benchmark. Histograms are
    binned here, so the page carries bar heights, not every draw. Returned as a
    plotly.js figure dict (``{"data", "layout"}``), ready for :func:`figure_json`.
    """
    mine = results.placebo["event"] == event_id
    draws = results.placebo if mine.all() else results.placebo[mine]  # one event: no copy of its 10^5 draws
    if draws.empty:
        return None
    tests = results.tests[(results.tests["event"] == event_id) & (results.tests["test"] == "placebo_caar")]
    titles = charts.basket_titles(results)
    windows = _pairs(draws, "window_start", "window_end")
    layout, cols = _layout(windows, int(draws["draw"].max()) + 1)
    keys = ["basket", "benchmark", "window_start", "window_end"]
    # split once: each (basket, benchmark, window) cell's draws and test row
    caar = draws["caar"].to_numpy(dtype=float)
    draw_cells = {key: caar[rows] for key, rows in draws.groupby(keys, sort=False).indices.items()}
    test_cells = {key: (cell["statistic"].iloc[0], cell["p_value"].iloc[0])
                  for key, cell in tests.groupby(keys, sort=False)}
    groups = _groups(draws)
    traces: list[dict[str, Any]] = []
    per_group, ranges = [], []
    for g, (basket, bench) in enumerate(groups):
        count, axis_ranges = 0, {}
        for w, (start, end) in enumerate(windows):
            values = draw_cells.get((basket, bench, start, end), np.empty(0))
            values = values[np.isfinite(values)] * 100
            cell = test_cells.get((basket, bench, start, end))
            actual = float(cell[0]) * 100 if cell is not None and pd.notna(cell[0]) else None
            p_text = fmt_p(cell[1]) if cell is not None else MISSING
            axes = {"xaxis": f"x{'' if w == 0 else w + 1}", "yaxis": f"y{'' if w == 0 else w + 1}"}
            first = g == 0
            top = 1.0
            if len(values):
                heights, edges = np.histogram(values, bins=BINS)
                traces.append({
                    "type": "bar", "x": (edges[:-1] + edges[1:]) / 2, "y": heights, "width": np.diff(edges),
                    "visible": first, "marker": {"color": "#94a3b8"}, "name": "CAAR on a placebo day",
                    "legendgroup": "placebo", "showlegend": w == 0,
                    "hovertemplate": "CAAR %{x:+.2f}%: %{y} pseudo-days<extra></extra>", **axes,
                })
                top = float(heights.max())
                count += 1
            if actual is not None:
                side = "middle left" if len(values) == 0 or actual >= np.median(values) else "middle right"
                traces.append({
                    "type": "scatter", "x": [actual, actual, actual], "y": [0, top * 0.6, top * 1.1],
                    "mode": "lines+text", "text": ["", f" {actual:+.1f}% ", ""], "textposition": side,
                    "textfont": {"color": ACTUAL_COLOR}, "visible": first,
                    "line": {"color": ACTUAL_COLOR, "width": 3}, "name": "actual CAAR (event)",
                    "legendgroup": "actual", "showlegend": w == 0,
                    "hovertemplate": f"actual CAAR {actual:+.2f}%<br>placebo p {p_text}<extra></extra>", **axes,
                })
                count += 1
            shown = np.concatenate([values, [actual] if actual is not None else []])
            if len(shown):
                low, high = float(shown.min()), float(shown.max())
                pad = 0.06 * (high - low) or 1.0
                axis_ranges[f"xaxis{'' if w == 0 else w + 1}.range"] = [low - pad, high + 2 * pad]
        per_group.append(count)
        ranges.append(axis_ranges)
    for key, value in (ranges[0] if ranges else {}).items():
        layout[key.split(".")[0]]["range"] = value
    if len(groups) > 1:
        visible_sets = [[i == g for i, count in enumerate(per_group) for _ in range(count)]
                        for g in range(len(groups))]
        layout["updatemenus"] = [{
            "buttons": [
                {"label": charts.esc(f"{titles.get(b, b)} vs {bench}"), "method": "update",
                 "args": [{"visible": visible}, axis_ranges]}
                for (b, bench), visible, axis_ranges in zip(groups, visible_sets, ranges)
            ],
            "x": 0.0, "xanchor": "left", "y": 1.09, "yanchor": "bottom", "showactive": True,
        }]
    return {"data": traces, "layout": layout}


def _by_event(frame: pd.DataFrame, results: StudyResults) -> dict[str, pd.DataFrame]:
    """``frame``'s rows per event (one groupby); a one-event study's frame as it is, not copied."""
    if len(results.timelines) == 1:
        return {results.timelines[0].event_id: frame}
    return dict(tuple(frame.groupby("event", sort=False))) if len(frame) else {}


def render(results: StudyResults) -> Section | None:
    """The section, or None when the results hold no basket test beyond the cross-sectional t."""
    if set(results.tests["test"]) <= {"cs_t"}:
        return None
    evidence = load_evidence()
    titles = charts.basket_titles(results)
    # split once, so each event's work follows its own rows (linear in events)
    tests_by_group: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}  # event -> (basket, benchmark)
    for rec in records(results.tests):
        tests_by_group.setdefault(rec["event"], {}).setdefault((rec["basket"], rec["benchmark"]), []).append(rec)
    tests_by_event = _by_event(results.tests, results)
    placebo_by_event = _by_event(results.placebo, results)
    record_by_group: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in records(results.baskets, ["event", "basket", "benchmark", "verdict_reason", "window_start",
                                         "window_end"]):
        record_by_group.setdefault((rec["event"], rec["basket"], rec["benchmark"]), []).append(rec)
    events = []
    for index, timeline in enumerate(results.timelines):
        event_id = timeline.event_id
        event_tests = tests_by_event.get(event_id, results.tests.iloc[0:0])
        groups = []
        for (basket, bench), group in tests_by_group.get(event_id, {}).items():
            groups.append({"basket": titles.get(basket, basket), "benchmark": bench,
                           **_table(group, record_by_group.get((event_id, basket, bench), []))})
        view = dataclasses.replace(results, tests=event_tests,
                                   placebo=placebo_by_event.get(event_id, results.placebo.iloc[0:0]))
        fig = placebo_figure(view, event_id)
        chart = None if fig is None else {"id": f"chart-{index}-placebo", "json": figure_json(fig)}
        events.append({"label": timeline.label or timeline.event_id, "groups": groups, "chart": chart})
    method = (evidence or {}).get("method", {})
    html = render_section(
        TEMPLATE,
        events=events,
        multi_event=len(results.timelines) > 1,
        small_n=SMALL_N,
        n_tests=len(set(results.tests["test"]) & set(TEST_IDS)),  # the rows of each table below
        evidence=bool(evidence),
        samples=f"{int(method.get('samples_per_cell', 0)):,}",
        placebo_dates=f"{results.config.placebo_dates:,}",
        seed=results.config.seed,
    )
    return Section(SECTION_ID, "Which test to trust", html)
