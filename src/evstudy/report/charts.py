"""Plotly figures for the HTML report, drawn from the tidy tables of a StudyResults.

Nothing is re-estimated here: paths, CARs and ARs come from the results; only
the 95% bands are drawn from the stored standard errors. Every user-supplied
string (labels, basket names, tickers) is HTML-escaped before it enters a
figure, because plotly renders a subset of HTML tags in titles, legends,
hover labels, menus and annotations.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import math
import textwrap
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import special

from evstudy.report.format import joined_by, values
from evstudy.results import EventTimeline, StudyResults

if TYPE_CHECKING:
    import plotly.graph_objects as go

BASKET_COLORS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
BENCHMARK_COLORS = ("#334155", "#0f766e", "#9a3412", "#6d28d9")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
CONFOUNDER_COLOR = "#b45309"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
SMALL_MULTIPLES_MAX = 16  # more stocks than this: one CAR panel with a stock picker
PICKER_MAX = 100  # more stocks than this: the picker offers the largest and smallest CARs only
LABELLED_BARS_MAX = 120  # more stocks than this: the day-0 bars show the movers, a histogram shows all
MOVER_BARS = 30  # bars each way when the day-0 chart shows movers only
PRICE_LINES_MAX = 24  # lines in one view of the price chart: each its own colour (LINE_COLORS)
END_LABELS_MAX = 10  # a view with at most this many lines also names each line at its right end
# 24 colours a reader can tell apart (plotly's Dark24), so no two lines of one price view share one
LINE_COLORS = (
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B", "#511CFB",
    "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7",
    "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
)
HIST_BINS = 40


def esc(text: object) -> str:
    """Escape text for plotly, which would otherwise render tags such as <b> or <a>."""
    return html.escape(str(text), quote=False)


def tidy_small_multiples(layout: dict[str, Any], cols: int, *, shared_y: bool = True, page_px: int = 1150) -> None:
    """Make a :func:`subplot_grid` layout readable: titles wrapped to their panel, one y range for all panels.

    Subplot titles longer than their panel are broken into lines at word
    boundaries (about 7 px a character at 12 px type), so neighbouring titles
    cannot run into each other; with ``shared_y`` every panel's y axis matches
    the first, so a caption can honestly say "on a common scale" (plotly's
    ``shared_yaxes`` shares a range within a row only).
    """
    chars = max(8, int(page_px / cols / 7.5))
    for note in layout.get("annotations", []):
        text = note.get("text") or ""
        if len(text) > chars and "<br>" not in text:
            note["text"] = "<br>".join(textwrap.wrap(text, chars, break_long_words=False))
    if shared_y:
        update_axes(layout, "y", {"matches": "y", "showticklabels": True})


@functools.cache
def _template_text(name: str) -> str:
    return resources.files("plotly").joinpath("package_data", "templates", f"{name}.json").read_text(encoding="utf-8")


def plotly_template(name: str) -> dict[str, Any]:
    """plotly's named layout template as the plotly.js JSON a figure carries ({"data", "layout"}).

    Read from the template files plotly ships: the same JSON a
    ``go.Figure`` carries (the default "plotly") or gets from
    ``template="plotly_white"``, without building it through plotly's
    validators (~0.1 s a process). A fresh dict each call.
    """
    raw = json.loads(_template_text(name))
    return {"data": raw["data"], "layout": raw["layout"]}


def subplot_grid(rows: int, cols: int, titles: list[str], *, horizontal_spacing: float,
                 vertical_spacing: float) -> dict[str, Any]:
    """The layout ``plotly.subplots.make_subplots(rows, cols, subplot_titles=titles, ...)`` builds, as a plain dict.

    Panels number row by row from the top left (``xaxis``, ``xaxis2``, ...),
    each x axis anchored to its y axis, the domains computed as plotly
    computes them (equal widths and heights, the spacing between), and each
    title centred above its panel in 16 px type. The traces then name
    their panel's axes ("x2", "y2").
    """
    widths = [(1.0 - horizontal_spacing * (cols - 1)) / cols] * cols
    heights = [(1.0 - vertical_spacing * (rows - 1)) / rows] * rows
    layout: dict[str, Any] = {}
    domains = []
    for r in range(rows):
        bottom = sum(heights[:rows - 1 - r]) + (rows - 1 - r) * vertical_spacing
        top = bottom + heights[-1 - r]
        y = [max(0.0, 0.0 if -0.01 < bottom < 0.0 else bottom), min(1.0, 1.0 if 1.0 < top < 1.01 else top)]
        for c in range(cols):
            left = sum(widths[:c]) + c * horizontal_spacing
            x = [max(0.0, left), min(1.0, left + widths[c])]
            k = "" if r == 0 and c == 0 else r * cols + c + 1
            layout[f"xaxis{k}"] = {"anchor": f"y{k}", "domain": x}
            layout[f"yaxis{k}"] = {"anchor": f"x{k}", "domain": y}
            domains.append((x, y))
    layout["annotations"] = [
        {"font": {"size": 16}, "showarrow": False, "text": title, "x": sum(x) / 2.0, "xanchor": "center",
         "xref": "paper", "y": y[1], "yanchor": "bottom", "yref": "paper"}
        for title, (x, y) in zip(titles, domains) if title
    ]
    return layout


def update_axes(layout: dict[str, Any], axis: str, props: dict[str, Any], *, col: int | None = None,
                cols: int = 1) -> None:
    """Set ``props`` on every ``axis`` ("x" or "y") axis of ``layout`` (only column ``col``, 1-based, of a
    ``cols``-wide grid if given), as ``fig.update_xaxes`` / ``update_yaxes`` would; nested dicts are merged."""
    for key in [k for k in layout if k == f"{axis}axis" or (k.startswith(f"{axis}axis") and k[5:].isdigit())]:
        number = int(key[5:] or 1)
        if col is not None and (number - 1) % cols != col - 1:
            continue
        _merge(layout[key], props)


def _merge(target: dict[str, Any], props: dict[str, Any]) -> None:
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def basket_colors(results: StudyResults) -> dict[str, str]:
    """A fixed colour per basket, in config order, shared by every chart."""
    return {b.name: BASKET_COLORS[i % len(BASKET_COLORS)] for i, b in enumerate(results.config.baskets)}


def basket_titles(results: StudyResults) -> dict[str, str]:
    """Basket name → the label a reader sees (unescaped)."""
    return {b.name: b.title for b in results.config.baskets}


def _event_rows(frame: pd.DataFrame, event_id: str) -> pd.DataFrame:
    return frame[frame["event"] == event_id]


def _benchmarks(results: StudyResults, event_id: str) -> list[str]:
    return list(dict.fromkeys(_event_rows(results.memberships, event_id)["benchmark"].tolist()))


def _tickers(results: StudyResults, event_id: str) -> list[str]:
    return list(dict.fromkeys(_event_rows(results.memberships, event_id)["ticker"].tolist()))


def t_quantile(q: float, df: Any) -> np.ndarray:
    """Student t quantile, ``scipy.stats.t.ppf(q, df)``'s numbers (NaN where df is not > 0).

    ``scipy.special.stdtrit`` is what ``t.ppf`` evaluates; calling it
    directly spares the report the import of ``scipy.stats``.
    """
    df = np.asarray(df, dtype=float)
    positive = df > 0
    return np.where(positive, special.stdtrit(np.where(positive, df, 1.0), q), np.nan)


PLAIN_AXIS = {"gridcolor": "#e2e8f0", "zerolinecolor": "#cbd5e1", "linecolor": "#cbd5e1", "ticks": ""}


def plain_style(fig: go.Figure) -> None:
    """White background and light grid, written out instead of plotly's "plotly_white" template.

    A named template is copied into every figure's JSON (about 6.5 kB each)
    and costs ~0.1 s to apply, which a study of many events pays per chart.
    (The figure keeps plotly's default template: ``template={}`` merges nothing.)
    """
    fig.update_layout(template={}, paper_bgcolor="#ffffff", plot_bgcolor="#ffffff", colorway=list(LINE_COLORS))
    fig.update_xaxes(**PLAIN_AXIS)
    fig.update_yaxes(**PLAIN_AXIS)


def plain_layout(layout: dict[str, Any]) -> dict[str, Any]:
    """:func:`plain_style` for a plain plotly.js layout dict: the layout a ``go.Figure`` styled so would carry.

    That is plotly's default template, a white background and light grid on
    every axis of ``layout`` (at least ``xaxis`` and ``yaxis``). Returns a new dict.
    """
    out: dict[str, Any] = {"template": plotly_template("plotly"), **layout}
    out.update(paper_bgcolor="#ffffff", plot_bgcolor="#ffffff", colorway=list(LINE_COLORS))
    out.setdefault("xaxis", {})
    out.setdefault("yaxis", {})
    update_axes(out, "x", PLAIN_AXIS)
    update_axes(out, "y", PLAIN_AXIS)
    return out


def _day_axis(results: StudyResults, event_id: str, rel_days: list[int]) -> dict[str, Any]:
    """The relative-day x axis (plotly.js layout dict): every trading day ticked "+1 / Oct 14"."""
    dates = _event_rows(results.prices, event_id).drop_duplicates("rel_day").set_index("rel_day")["date"]
    ticks = [d for d in rel_days if d in dates.index]
    step = max(1, math.ceil(len(ticks) / 24))
    shown = [int(d) for d in ticks if d % step == 0]
    text = [f"{'0' if d == 0 else f'{d:+d}'}<br>{pd.Timestamp(dates[d]):%b %d}" for d in shown]
    axis: dict[str, Any] = {"tickmode": "array", "tickvals": shown, "ticktext": text, "showgrid": False,
                            "title": {"text": "trading day (relative to day 0)"},
                            "unifiedhovertitle": {"text": "day %{x:+d}"}, "zerolinecolor": "#cbd5e1"}
    if ticks:
        axis["range"] = [float(ticks[0]) - 0.5, float(ticks[-1]) + 0.5]
    return axis


def confounder_note(item: dict[str, Any]) -> str:
    """Plain words for where a confounder falls relative to day 0 (unescaped)."""
    rel = item.get("rel_day")
    if rel is None:
        return "after the price data ends"
    day = "0" if rel == 0 else f"{rel:+d}"
    if item.get("trading_day"):
        return f"on trading day {day}"
    return f"not a trading day: first priced on day {day}"


def _event_marks(timeline: EventTimeline, x_range: tuple[float, float]) -> tuple[list[dict], list[dict]]:
    """Shapes and annotations: day 0 as a dashed line; each confounder as a dotted line with its number.

    A confounder on a non-trading day sits half-way between the sessions before and after it.
    """
    def vline(x: float, line: dict[str, Any]) -> dict[str, Any]:
        return {"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1, "xref": "x", "yref": "paper", "line": line}

    shapes = [vline(0.0, {"color": "#0f172a", "width": 1.5, "dash": "dash"})]
    notes = [{
        "x": 0, "y": 1.0, "xref": "x", "yref": "paper", "yanchor": "bottom", "yshift": 22, "showarrow": False,
        "text": "<b>day 0</b>", "font": {"size": 11, "color": "#0f172a"},
        "hovertext": esc(f"{timeline.label or timeline.event_id}: {timeline.mapping}"),
    }]
    for number, item in enumerate(timeline.confounders, start=1):
        rel = item.get("rel_day")
        if rel is None:
            continue
        x = float(rel) if item.get("trading_day") else float(rel) - 0.5
        if not x_range[0] <= x <= x_range[1]:
            continue
        shapes.append(vline(x, {"color": CONFOUNDER_COLOR, "width": 1.2, "dash": "dot"}))
        notes.append({
            "x": x, "y": 1.0, "xref": "x", "yref": "paper", "yanchor": "bottom", "showarrow": False,
            "text": f"<b>{number}</b>", "font": {"size": 11, "color": "#ffffff"},
            "bgcolor": CONFOUNDER_COLOR, "borderpad": 2,
            "hovertext": esc(f"{item.get('date')}: {item.get('label') or ''} ({confounder_note(item)})"),
        })
    return shapes, notes


def _band(x: list[int], y: np.ndarray, half: np.ndarray, color: str, group: str) -> dict[str, Any]:
    """The filled 95% band y ± half (plotly.js trace), drawn behind its line and toggled with it."""
    return {
        "type": "scatter", "mode": "lines", "x": x + x[::-1], "y": np.concatenate([y + half, (y - half)[::-1]]),
        "fill": "toself", "fillcolor": _rgba(color, 0.13), "line": {"width": 0}, "hoverinfo": "skip",
        "showlegend": False, "legendgroup": group,
    }


def _line_layout(title: str, height: int, y_title: str) -> dict[str, Any]:
    """The report's style for a chart over relative days, as a plotly.js layout dict."""
    layout = _base_layout(title, height)
    layout.update(
        margin={"l": 64, "r": 20, "t": 92, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0.0},
        yaxis={"title": {"text": y_title}, "zeroline": True, "zerolinecolor": "#94a3b8", "gridcolor": "#e2e8f0"},
        hovermode="x unified",
    )
    return layout


def caar_figure(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """Average cumulative abnormal return per basket × benchmark, with its 95% band (plotly.js JSON)."""
    paths = _event_rows(results.basket_paths, event_id)
    if paths.empty:
        return None
    colors, titles = basket_colors(results), basket_titles(results)
    dashes = {b: DASHES[i % len(DASHES)] for i, b in enumerate(_benchmarks(results, event_id))}
    data: list[dict[str, Any]] = []
    lines = 0
    for (basket, bench), group in paths.groupby(["basket", "benchmark"], sort=False):
        group = group.sort_values("rel_day")
        x = [int(d) for d in group["rel_day"]]
        caar = np.round(group["caar"].to_numpy(float) * 100, 3)
        n = group["n"].to_numpy(float)
        quantile = np.where(n > 1, t_quantile(0.975, np.maximum(n - 1, 1)), np.nan)
        half = np.round(quantile * group["se"].to_numpy(float) * 100, 3)
        name = esc(f"{titles.get(basket, basket)} vs {bench} (N={int(n[0])})")
        color = colors.get(basket, BASKET_COLORS[0])
        if np.isfinite(half).any():
            data.append(_band(x, caar, half, color, name))
        data.append({
            "type": "scatter", "x": x, "y": caar, "mode": "lines+markers", "name": name, "legendgroup": name,
            "line": {"color": color, "width": 2.5, "dash": dashes[bench]}, "marker": {"size": 5},
            "customdata": np.column_stack([caar - half, caar + half]),
            "hovertemplate": "CAAR %{y:+.2f}% (95% band %{customdata[0]:+.2f}% to %{customdata[1]:+.2f}%)",
        })
        lines += 1
    rel_days = sorted(int(d) for d in paths["rel_day"].unique())
    layout = _line_layout("Average cumulative abnormal return (CAAR) by basket", 460 + 20 * math.ceil(lines / 2),
                          "CAAR (%)")
    layout["xaxis"] = _day_axis(results, event_id, rel_days)
    layout["shapes"], layout["annotations"] = _event_marks(results.timeline(event_id), (rel_days[0], rel_days[-1]))
    return {"data": data, "layout": layout}


def _runs(keys: list[Any]) -> list[tuple[Any, int, int]]:
    """(key, start, end) of each run of equal consecutive ``keys``: the groups of a table sorted by its keys,
    in order, without a pandas frame per group."""
    starts = [i for i in range(len(keys)) if i == 0 or keys[i] != keys[i - 1]]
    return [(keys[a], a, b) for a, b in zip(starts, [*starts[1:], len(keys)])]


def _car_traces(results: StudyResults, event_id: str, tickers: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Per ticker of ``tickers``: band and line (plotly.js dicts) of its CAR path against each benchmark."""
    paths = _event_rows(results.car_paths, event_id)
    paths = paths[paths["ticker"].isin(tickers)].sort_values(["ticker", "benchmark", "rel_day"], kind="stable")
    df = _event_rows(results.fits, event_id).set_index(["ticker", "benchmark"])["df"]
    bench_color = {b: BENCHMARK_COLORS[i % len(BENCHMARK_COLORS)] for i, b in enumerate(_benchmarks(results, event_id))}
    quantile = t_quantile(0.975, df.reindex(pd.MultiIndex.from_arrays([paths["ticker"], paths["benchmark"]])).to_numpy(float))
    # rounded to 0.001 percentage points: the page carries what a reader can see, not 17 digits
    paths = paths.assign(_car=np.round(paths["car"].to_numpy(float) * 100, 3),
                         _half=np.round(quantile * paths["se"].to_numpy(float) * 100, 3))
    traces: dict[str, list[dict[str, Any]]] = {}
    rel, cars, halves = paths["rel_day"].to_numpy(), paths["_car"].to_numpy(), paths["_half"].to_numpy()
    for (ticker, bench), start, end in _runs(list(zip(paths["ticker"].tolist(), paths["benchmark"].tolist()))):
        x = rel[start:end].tolist()
        car, half = cars[start:end], halves[start:end]
        color = bench_color[bench]
        traces.setdefault(ticker, []).extend([
            {"type": "scatter", "x": x + x[::-1], "y": np.concatenate([car + half, (car - half)[::-1]]),
             "fill": "toself", "fillcolor": _rgba(color, 0.13), "line": {"width": 0}, "hoverinfo": "skip",
             "showlegend": False, "legendgroup": bench, "mode": "lines"},
            {"type": "scatter", "x": x, "y": car, "mode": "lines", "name": esc(f"vs {bench}"), "legendgroup": bench,
             "line": {"color": color, "width": 2}, "customdata": np.column_stack([car - half, car + half]),
             "hovertemplate": esc(f"{ticker} vs {bench}")
             + "<br>day %{x:+d}: CAR %{y:+.2f}%<br>95% band %{customdata[0]:+.2f}% to %{customdata[1]:+.2f}%"
             "<extra></extra>"},
        ])
    return [(ticker, traces[ticker]) for ticker in tickers if ticker in traces]


def _picked_tickers(results: StudyResults, event_id: str) -> list[str]:
    """The stocks the CAR picker offers: all up to PICKER_MAX, else the largest and smallest CARs (CAR window)."""
    tickers = _tickers(results, event_id)
    if len(tickers) <= PICKER_MAX:
        return tickers
    windows = results.config.windows
    window = (-1, 1) if (-1, 1) in [(w.start, w.end) for w in windows] else (windows[0].start, windows[0].end)
    cars = _event_rows(results.cars, event_id)
    cars = cars[(cars["window_start"] == window[0]) & (cars["window_end"] == window[1])].dropna(subset=["car"])
    order = list(dict.fromkeys(cars.sort_values("car", ascending=False)["ticker"].tolist()))
    half = PICKER_MAX // 2
    return list(dict.fromkeys(order[:half] + order[-half:]))


def car_figure(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """Each stock's cumulative abnormal return with its 95% band, as plotly.js JSON.

    Up to SMALL_MULTIPLES_MAX stocks: one small panel each (y axes titled,
    titles inside their panel); beyond that one panel with a stock picker
    whose buttons each carry only their own stock's data, so the page grows
    linearly with the stocks (up to PICKER_MAX, then the largest and smallest
    CARs only).
    """
    tickers = _tickers(results, event_id)
    if len(tickers) > SMALL_MULTIPLES_MAX:
        return _car_picker(results, event_id, _picked_tickers(results, event_id))
    per_ticker = _car_traces(results, event_id, tickers)
    if not per_ticker:
        return None
    cols = min(4, len(per_ticker))
    rows = math.ceil(len(per_ticker) / cols)
    panel, gap = 210, 60  # px: panel height, gap between rows (room for the x tick labels and the next title)
    plot_area = rows * panel + (rows - 1) * gap  # axis domains are fractions of the area inside the margins
    height = 110 + plot_area + 70
    layout = _base_layout("Cumulative abnormal return per stock (shaded: 95% band)", height)
    layout.update(margin={"l": 64, "r": 20, "t": 110, "b": 70}, legend={"orientation": "h", "x": 0.0, "y": 1.0,
                  "yanchor": "bottom", "xanchor": "left"}, annotations=[], shapes=[])
    data: list[dict[str, Any]] = []
    shown: set[str] = set()
    width = (1 - 0.06 * (cols - 1)) / cols
    for k, (ticker, traces) in enumerate(per_ticker):
        row, col = divmod(k, cols)
        suffix = "" if k == 0 else str(k + 1)
        y1 = 1 - row * (panel + gap) / plot_area
        y0 = y1 - panel / plot_area
        x0 = col * (width + 0.06)
        lowest = k + cols >= len(per_ticker)  # no panel below: this one carries the day axis title
        layout[f"xaxis{suffix}"] = {"domain": [x0, x0 + width], "anchor": f"y{suffix}", "showgrid": False, "dtick": 5,
                                    "zeroline": False, "title": {"text": "trading day (relative to day 0)" if lowest
                                                                 else "", "standoff": 4}}
        layout[f"yaxis{suffix}"] = {"domain": [y0, y1], "anchor": f"x{suffix}", "ticksuffix": "%", "zeroline": True,
                                    "zerolinecolor": "#94a3b8", "title": {"text": "CAR (%)" if col == 0 else ""}}
        layout["annotations"].append({
            "text": f"<b>{esc(ticker)}</b>", "x": 0.02, "y": 0.98, "xref": f"x{suffix} domain",
            "yref": f"y{suffix} domain", "xanchor": "left", "yanchor": "top", "showarrow": False,
            "font": {"size": 13}, "bgcolor": "rgba(255,255,255,0.8)",
        })
        layout["shapes"].append({"type": "line", "x0": 0, "x1": 0, "y0": 0, "y1": 1, "xref": f"x{suffix}",
                                 "yref": f"y{suffix} domain", "line": {"color": "#0f172a", "width": 1, "dash": "dash"}})
        for trace in traces:
            trace = {**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
            if trace.get("showlegend") is not False:
                trace["showlegend"] = trace["legendgroup"] not in shown
                shown.add(trace["legendgroup"])
            data.append(trace)
    return {"data": data, "layout": layout}


def _base_layout(title: str, height: int) -> dict[str, Any]:
    """The report's figure style as a plotly.js layout dict."""
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 17}},
        "height": height, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "colorway": list(LINE_COLORS),
        "font": {"family": FONT, "size": 12, "color": "#1e293b"},
        "hoverlabel": {"font": {"family": FONT}},
    }


def _car_picker(results: StudyResults, event_id: str, tickers: list[str]) -> dict[str, Any] | None:
    """One panel, one stock at a time: fixed traces (band, line per benchmark) whose data each button replaces."""
    per_ticker = _car_traces(results, event_id, tickers)
    if not per_ticker:
        return None
    benches = _benchmarks(results, event_id)
    slots = [(bench, part) for bench in benches for part in ("band", "line")]

    def slot_data(traces: list[dict[str, Any]]) -> dict[str, list[Any]]:
        found = {(t["legendgroup"], "band" if t.get("fill") else "line"): t for t in traces}
        empty = {"x": [], "y": [], "customdata": [], "hovertemplate": ""}
        picked = [found.get(slot, empty) for slot in slots]
        return {key: [t.get(key, []) for t in picked] for key in ("x", "y", "customdata", "hovertemplate")}

    first = per_ticker[0][1]
    data = []
    for (bench, part), x, y, custom, hover in zip(slots, *slot_data(first).values()):
        template = next((t for t in first if t["legendgroup"] == bench and bool(t.get("fill")) == (part == "band")), None)
        color = BENCHMARK_COLORS[benches.index(bench) % len(BENCHMARK_COLORS)]
        base = template or ({"type": "scatter", "mode": "lines", "fill": "toself", "fillcolor": _rgba(color, 0.13),
                             "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False, "legendgroup": bench}
                            if part == "band" else
                            {"type": "scatter", "mode": "lines", "name": esc(f"vs {bench}"), "legendgroup": bench,
                             "line": {"color": color, "width": 2}})
        data.append({**base, "x": x, "y": y, "customdata": custom, "hovertemplate": hover})
    buttons = [{"label": esc(ticker), "method": "restyle", "args": [slot_data(traces)]} for ticker, traces in per_ticker]
    layout = _base_layout("Cumulative abnormal return per stock (shaded: 95% band)", 490)
    layout.update(
        margin={"l": 64, "r": 20, "t": 116, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0.0},
        yaxis={"title": {"text": "CAR (%)"}, "ticksuffix": "%", "zeroline": True, "zerolinecolor": "#94a3b8",
               "gridcolor": "#e2e8f0"},
        updatemenus=[{"buttons": buttons, "active": 0, "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
                      "pad": {"b": 46}, "bgcolor": "#ffffff", "bordercolor": "#94a3b8"}],
        shapes=[{"type": "line", "x0": 0, "x1": 0, "y0": 0, "y1": 1, "xref": "x", "yref": "paper",
                 "line": {"color": "#0f172a", "width": 1.5, "dash": "dash"}}],
    )
    layout["xaxis"] = _day_axis(results, event_id, sorted(int(d) for d in _event_rows(results.car_paths, event_id)["rel_day"].unique()))
    return {"data": data, "layout": layout}


def _day0_table(results: StudyResults, event_id: str) -> pd.DataFrame:
    """Per stock: its day-0 AR against the first benchmark of its first basket, with basket and hover text."""
    ar = _event_rows(results.abnormal_returns, event_id)
    ar = ar[ar["rel_day"] == 0]
    members = _event_rows(results.memberships, event_id)
    first = members.drop_duplicates("ticker")[["ticker", "basket", "benchmark"]]
    table = first.merge(ar[["ticker", "benchmark", "return", "expected_return", "abnormal_return"]],
                        on=["ticker", "benchmark"], how="inner")
    if table.empty:
        return table
    titles = basket_titles(results)
    pairs = members.drop_duplicates(["ticker", "basket"])
    in_baskets = joined_by(pairs["ticker"], [titles.get(b, b) for b in values(pairs["basket"])], ", ")
    others = joined_by(ar["ticker"], [
        f"vs {esc(b)}: {v * 100:+.2f}%" for b, v in zip(values(ar["benchmark"]), values(ar["abnormal_return"]))
    ], "<br>")
    tickers = values(table["ticker"])
    return table.assign(
        baskets=[esc(in_baskets.get(t, "")) for t in tickers], others=[others.get(t, "") for t in tickers],
    )


def day0_figure(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """Day-0 abnormal return, one bar per stock with every stock labelled, coloured by its first basket.

    The bar is measured against the first benchmark of the stock's first
    basket; the hover lists the stock's day-0 abnormal return against every
    benchmark it was studied with. A single stock gets no chart (its number is
    in the answer table); beyond LABELLED_BARS_MAX stocks only the MOVER_BARS
    largest and smallest are drawn (:func:`day0_histogram` shows them all).
    """
    table = _day0_table(results, event_id).dropna(subset=["abnormal_return"])
    if len(table) < 2:
        return None
    many = len(table) > LABELLED_BARS_MAX
    if many:
        ranked = table.sort_values("abnormal_return", ascending=False)
        table = pd.concat([ranked.head(MOVER_BARS), ranked.tail(MOVER_BARS)])
    titles, colors = basket_titles(results), basket_colors(results)
    basket_rank = {b: i for i, b in enumerate(dict.fromkeys(table["basket"].tolist()))}
    table = table.assign(_b=table["basket"].map(basket_rank)).sort_values(
        ["_b", "abnormal_return"] if not many else ["abnormal_return"], ascending=[True, False] if not many else False,
        kind="stable")
    order = [esc(t) for t in table["ticker"]]
    data = []
    for basket, part in table.groupby("basket", sort=False):
        data.append({
            "type": "bar", "x": [esc(t) for t in part["ticker"]], "y": part["abnormal_return"].to_numpy() * 100,
            "name": esc(titles.get(basket, basket)), "marker": {"color": colors.get(basket, BASKET_COLORS[0])},
            "customdata": np.column_stack([part["baskets"], [esc(b) for b in part["benchmark"]],
                                           part["return"].to_numpy() * 100, part["expected_return"].to_numpy() * 100,
                                           part["others"]]).tolist(),
            "texttemplate": "%{y:+.1f}%" if len(table) > 30 else "%{y:+.2f}%", "textposition": "outside",
            "cliponaxis": False,
            "hovertemplate": "<b>%{x}</b> (%{customdata[0]})<br>actual return %{customdata[2]:+.2f}%"
            "<br>expected vs %{customdata[1]}: %{customdata[3]:+.2f}%<br>abnormal return:<br>%{customdata[4]}"
            "<extra></extra>",
        })
    tick_size = 12 if len(order) <= 40 else 10 if len(order) <= 80 else 9
    title = "Day-0 abnormal return by stock" if not many else \
        f"Day-0 abnormal return: the {MOVER_BARS} largest and {MOVER_BARS} smallest"
    layout = _base_layout(title, 560)
    layout.update(
        margin={"l": 64, "r": 20, "t": 60, "b": 60}, barmode="overlay", bargap=0.25,
        uniformtext={"minsize": 8, "mode": "hide"},
        legend={"orientation": "h", "yanchor": "top", "y": -0.22 if len(order) > 24 else -0.1, "x": 0.0},
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": order, "tickmode": "array",
               "tickvals": order, "ticktext": order, "tickangle": -90 if len(order) > 24 else "auto",
               "tickfont": {"size": tick_size}, "showgrid": False, "automargin": True},
        yaxis={"title": {"text": "abnormal return on day 0 (%)"}, "zeroline": True, "zerolinecolor": "#94a3b8",
               "gridcolor": "#e2e8f0"},
    )
    return {"data": data, "layout": layout}


def day0_histogram(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """How many stocks had each day-0 abnormal return, per basket: drawn only when the bars show movers only."""
    ar = _event_rows(results.abnormal_returns, event_id)
    if ar.loc[ar["rel_day"] == 0, "ticker"].nunique() <= LABELLED_BARS_MAX:
        return None
    table = _day0_table(results, event_id).dropna(subset=["abnormal_return"])
    values = table["abnormal_return"].to_numpy(float) * 100
    low, high = np.quantile(values, [0.005, 0.995])
    edges = np.linspace(low, high if high > low else low + 1, HIST_BINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    titles, colors = basket_titles(results), basket_colors(results)
    data = []
    for basket, part in table.groupby("basket", sort=False):
        counts, _ = np.histogram(np.clip(part["abnormal_return"].to_numpy(float) * 100, edges[0], edges[-1]), edges)
        data.append({"type": "bar", "x": centers, "y": counts, "width": float(edges[1] - edges[0]),
                     "name": esc(f"{titles.get(basket, basket)} ({len(part):,})"),
                     "marker": {"color": colors.get(basket, BASKET_COLORS[0])}, "opacity": 0.75,
                     "hovertemplate": "%{x:+.1f}%: %{y:,} stocks<extra></extra>"})
    layout = _base_layout(f"Day-0 abnormal returns of all {len(table):,} stocks", 420)
    layout.update(margin={"l": 64, "r": 20, "t": 80, "b": 60}, barmode="stack", bargap=0.02,
                  legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
                  xaxis={"title": {"text": "abnormal return on day 0 (%, the outer 1% drawn at the edges)"},
                         "ticksuffix": "%"},
                  yaxis={"title": {"text": "stocks"}, "gridcolor": "#e2e8f0"})
    return {"data": data, "layout": layout}


def _price_views(results: StudyResults, event_id: str, tickers: list[str], last: pd.Series) -> list[tuple[str, list[str]]]:
    """The menu views of the price chart: (label, tickers), each at most PRICE_LINES_MAX lines."""
    members = _event_rows(results.memberships, event_id)

    def capped(names: list[str]) -> list[str]:
        if len(names) <= PRICE_LINES_MAX:
            return names
        ranked = last.reindex(names).dropna().sort_values(ascending=False).index.tolist()
        half = PRICE_LINES_MAX // 2
        keep = set(ranked[:half] + ranked[-half:])
        return [n for n in names if n in keep]

    titles = basket_titles(results)
    baskets = list(dict.fromkeys(members["basket"].tolist()))
    views = []
    if len(tickers) <= PRICE_LINES_MAX or len(baskets) == 1:
        views.append(("All stocks" if len(baskets) > 1 else "", capped(tickers)))
    if len(baskets) > 1:
        drawn = set(tickers)  # once, not once per name
        for basket in baskets:
            names = list(dict.fromkeys(members.loc[members["basket"] == basket, "ticker"].tolist()))
            views.append((titles.get(basket, basket), capped([t for t in names if t in drawn])))
    return views


def price_figure(results: StudyResults, event_id: str) -> dict[str, Any] | None:
    """Closing prices rebased to 100 on day -1, with day 0 and the other news marked, as plotly.js JSON.

    Each menu view (all stocks when they fit, else one basket at a time)
    draws at most PRICE_LINES_MAX stocks, each in its own colour (and, up to
    END_LABELS_MAX lines, named at its right end), with its basket's
    benchmarks dashed.
    """
    prices = _event_rows(results.prices, event_id)
    if prices.empty:
        return None
    members = _event_rows(results.memberships, event_id)
    prices = prices.dropna(subset=["rebased"]).sort_values(["ticker", "rel_day"], kind="stable")
    present = set(prices["ticker"].tolist())
    all_tickers = _tickers(results, event_id)
    tickers = [t for t in all_tickers if t in present]
    benches = [b for b in _benchmarks(results, event_id) if b not in all_tickers and b in present]
    if not tickers and not benches:
        return None
    rel = prices["rel_day"].to_numpy()
    rebased, close = prices["rebased"].to_numpy(dtype=float), prices["close"].to_numpy(dtype=float)
    series = {t: slice(start, end) for t, start, end in _runs(prices["ticker"].tolist())}  # sorted by ticker
    last = prices.groupby("ticker", sort=False)["rebased"].last()
    views = _price_views(results, event_id, tickers, last)
    bench_of: dict[str, set[str]] = {}  # per basket its benchmarks (pandas iterates Arrow text cell by cell)
    for basket, bench in zip(members["basket"].tolist(), members["benchmark"].tolist()):
        bench_of.setdefault(basket, set()).add(bench)
    titles = basket_titles(results)
    label_basket = {titles.get(b, b): b for b in bench_of}
    data: list[dict[str, Any]] = []
    annotations_per_view: list[list[dict[str, Any]]] = []
    trace_view: list[int] = []
    for v, (label, names) in enumerate(views):
        shown_benches = [b for b in benches if label not in label_basket or b in bench_of[label_basket[label]]]
        notes = []
        for i, name in enumerate([*names, *shown_benches]):
            rows = series[name]
            end_row = rows.stop - 1
            is_bench = name in shown_benches
            color = BENCHMARK_COLORS[benches.index(name) % len(BENCHMARK_COLORS)] if is_bench \
                else LINE_COLORS[i % len(LINE_COLORS)]
            data.append({
                "type": "scatter", "x": rel[rows].tolist(), "y": np.round(rebased[rows], 3),
                "mode": "lines",
                "name": esc(name) + (" (benchmark)" if is_bench else ""), "visible": v == 0,
                "line": {"color": color, "width": 3 if is_bench else 1.8, "dash": "dash" if is_bench else "solid"},
                "customdata": np.round(close[rows], 4),
                "hovertemplate": esc(name) + ": %{y:.1f} (close %{customdata:.2f})<extra></extra>",
            })
            trace_view.append(v)
            if len(names) + len(shown_benches) > END_LABELS_MAX:
                continue
            notes.append({"x": float(rel[end_row]), "y": float(rebased[end_row]), "xref": "x",
                          "yref": "y", "text": esc(name), "showarrow": False, "xanchor": "left", "xshift": 4,
                          "font": {"size": 10, "color": color}})
        annotations_per_view.append(notes)
    rel_days = sorted(int(d) for d in prices["rel_day"].unique())
    layout = _line_layout("Prices rebased to 100 at the close of day -1", 560, "price (day -1 close = 100)")
    layout["margin"]["r"] = 64 if any(annotations_per_view) else 20
    layout["xaxis"] = _day_axis(results, event_id, rel_days)
    shapes, marks = _event_marks(results.timeline(event_id), (rel_days[0], rel_days[-1]) if rel_days else (0, 0))
    layout["shapes"] = [{"type": "line", "x0": 0, "x1": 1, "y0": 100, "y1": 100, "xref": "paper", "yref": "y",
                         "line": {"color": "#94a3b8", "width": 1}}, *shapes]
    layout["annotations"] = marks + annotations_per_view[0]
    if len(views) > 1:
        buttons = [{"label": esc(label), "method": "update",
                    "args": [{"visible": [tv == v for tv in trace_view]}, {"annotations": marks + notes}]}
                   for v, ((label, _), notes) in enumerate(zip(views, annotations_per_view))]
        layout["updatemenus"] = [{"buttons": buttons, "active": 0, "x": 1.0, "xanchor": "right", "y": 1.0,
                                  "yanchor": "bottom", "pad": {"b": 46}, "bgcolor": "#ffffff", "bordercolor": "#94a3b8"}]
        layout["margin"] = {**layout.get("margin", {}), "t": 116}
    return {"data": data, "layout": layout}
