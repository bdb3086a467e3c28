"""The HTML report of a market scan: one self-contained file, plotly.js inline once.

Charts are written as plain plotly.js JSON built here from small summaries
(binned counts, the top and bottom movers), never from 9,000-point traces,
and without importing the plotly Python package (about a second of start-up):
plotly.js is read straight from the package's data folder. Rows are read
from the scan's numpy columns (``ScanResults.columns``), without pandas. Text goes through
Jinja2 with autoescaping; JSON in <script> tags has <, > and & escaped.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from evstudy.config import Window
from evstudy.report.template_cache import compiled_template_cache
from evstudy.scan import DAY0_KEY, FILTERS, HIGHLIGHT_COLUMNS, ScanResults, window_key

TEMPLATE_DIR = Path(__file__).with_name("templates")
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
HIGHLIGHT_COLORS = ("#dc2626", "#7c3aed", "#0891b2", "#d97706", "#059669", "#db2777", "#2563eb", "#65a30d")
UP, DOWN, NEUTRAL = "#15803d", "#b91c1c", "#64748b"
BINS = 80
TAIL = 0.005  # histogram range: the 0.5% and 99.5% quantiles (plus highlighted tickers); the rest counted
BARS_PER_SIDE = 20
Q_LEVEL = 0.05
MAX_MARKERS = 8  # highlighted tickers marked on the histogram (more would hide each other)
MAX_TILES = 12  # more highlighted tickers than this: a table instead of tiles
ERRATIC_SIGMA = 0.5  # a residual sd above 50% a day: the estimation window likely holds a data error


# --------------------------------------------------------------------------- formats


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt_pct(value: Any, digits: int = 2) -> str:
    number = _finite(value)
    return "—" if number is None else f"{number * 100:+.{digits}f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    number = _finite(value)
    return "—" if number is None else f"{number:.{digits}f}"


def fmt_p(value: Any) -> str:
    number = _finite(value)
    if number is None:
        return "—"
    return "<0.0001" if number < 1e-4 else f"{number:.4f}"


def fmt_int(value: Any) -> str:
    number = _finite(value)
    return "—" if number is None else f"{int(number):,}"


def _json(spec: dict[str, Any]) -> Markup:
    """A figure spec as JSON safe inside <script type="application/json">."""
    return Markup(json.dumps(spec, allow_nan=False, separators=(",", ":")).translate(_JSON_ESCAPES))


def _esc(text: object) -> str:
    """Escape text for plotly, which renders a subset of HTML tags in labels."""
    return html.escape(str(text), quote=False)


def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package, read without importing plotly."""
    spec = importlib.util.find_spec("plotly")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError("plotly.min.js not found: reinstall the plotly package (pip install plotly)")


# --------------------------------------------------------------------------- figures


def _records(columns: dict[str, np.ndarray], rows: Any) -> list[dict[str, Any]]:
    """The table rows ``rows`` (an index array or slice) as dicts of Python values, in column order."""
    picked = {name: values[rows].tolist() for name, values in columns.items()}
    return [dict(zip(picked, row)) for row in zip(*picked.values())]


def _layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "font": {"family": FONT, "size": 13, "color": "#0f172a"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "hoverlabel": {"font": {"family": FONT}},
    }
    layout.update(extra)
    return layout


def _distributions(results: ScanResults) -> list[tuple[str, str]]:
    """(label, scan-table column) for the day-0 AR and each other window's CAR."""
    pairs = [("Day-0 abnormal return", "ar_day0")]
    for window in results.config.windows:
        if window != Window(0, 0):
            pairs.append((f"CAR {window.label}", f"car_{window_key(window)}"))
    return pairs


def histogram_figure(results: ScanResults) -> dict[str, Any]:
    """Binned distribution (counts only) of day-0 AR and each window's CAR, highlighted tickers marked."""
    columns = results.columns
    marked = np.flatnonzero(columns["highlighted"])[:MAX_MARKERS]
    traces, panels = [], []
    for i, (label, column) in enumerate(_distributions(results)):
        values = columns[column]
        low, high = np.quantile(values, [TAIL, 1 - TAIL])
        picks = values[marked]
        if len(picks):
            low, high = min(low, picks.min()), max(high, picks.max())
        pad = (high - low) * 0.02 or 0.01
        low, high = low - pad, high + pad
        counts, edges = np.histogram(values, bins=BINS, range=(low, high))
        below, above = int((values < low).sum()), int((values > high).sum())
        centers = (edges[:-1] + edges[1:]) / 2
        traces.append({
            "type": "bar",
            "x": [round(float(c) * 100, 6) for c in centers],
            "y": counts.tolist(),
            "width": float(edges[1] - edges[0]) * 100,
            "marker": {"color": "#94a3b8", "line": {"width": 0}},
            "name": _esc(label),
            "visible": i == 0,
            "hovertemplate": "%{x:.2f}%: %{y:,} tickers<extra></extra>",
        })
        shapes, notes = [], []
        for j, (ticker, value) in enumerate(zip(columns["ticker"][marked], picks)):
            color = HIGHLIGHT_COLORS[j % len(HIGHLIGHT_COLORS)]
            shapes.append({
                "type": "line", "xref": "x", "yref": "paper", "x0": value * 100, "x1": value * 100,
                "y0": 0, "y1": 1, "line": {"color": color, "width": 2, "dash": "dot"},
            })
            rank = int((values > value).sum()) + 1
            notes.append({
                "x": value * 100, "y": 1 - 0.07 * (j % 8), "xref": "x", "yref": "paper", "showarrow": False,
                "xanchor": "left", "text": f"<b>{_esc(ticker)}</b> #{rank:,}", "font": {"color": color, "size": 12},
                "bgcolor": "rgba(255,255,255,0.85)",
            })
        outside = []
        if below:
            outside.append(f"{below:,} below {low * 100:.1f}%")
        if above:
            outside.append(f"{above:,} above {high * 100:.1f}%")
        panels.append({
            "label": label,
            "shapes": shapes,
            "annotations": notes,
            "title": f"{_esc(label)} across {len(values):,} tickers"
            + (f" <span style='font-size:11px'>(not shown: {', '.join(outside)})</span>" if outside else ""),
        })
    n = len(traces)
    buttons = [
        {
            "label": _esc(panel["label"]),
            "method": "update",
            "args": [
                {"visible": [k == i for k in range(n)]},
                {"shapes": panel["shapes"], "annotations": panel["annotations"], "title.text": panel["title"]},
            ],
        }
        for i, panel in enumerate(panels)
    ]
    scale = [
        {"label": "Linear count", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
        {"label": "Log count", "method": "relayout", "args": [{"yaxis.type": "log"}]},
    ]
    layout = _layout(
        title={"text": panels[0]["title"], "x": 0.01, "xanchor": "left", "y": 0.97, "yanchor": "top",
               "font": {"size": 15}},
        xaxis={"title": {"text": "abnormal return (%)"}, "ticksuffix": "%", "zeroline": True, "gridcolor": "#e2e8f0"},
        yaxis={"title": {"text": "tickers"}, "gridcolor": "#e2e8f0"},
        bargap=0.02,
        showlegend=False,
        shapes=panels[0]["shapes"],
        annotations=panels[0]["annotations"],
        height=480,
        margin={"l": 60, "r": 20, "t": 100, "b": 50},
        updatemenus=[
            {"buttons": buttons, "direction": "down", "x": 0.0, "xanchor": "left", "y": 1.04, "yanchor": "bottom",
             "showactive": True},
            {"buttons": scale, "type": "buttons", "direction": "right", "x": 1.0, "xanchor": "right", "y": 1.04,
             "yanchor": "bottom", "showactive": True},
        ],
    )
    return {"data": traces, "layout": layout, "config": PLOT_CONFIG}


def movers_figure(results: ScanResults) -> dict[str, Any]:
    """Day-0 AR of the top and bottom movers; faded bars have a BH q-value above 5%."""
    n = results.n_ranked
    k = min(BARS_PER_SIDE, n // 2 or n)
    rows = np.r_[0:k, n - k : n] if n > 2 * k else np.arange(n)
    picked = _records(results.columns, rows)
    has_q = f"q_{DAY0_KEY}" in results.columns
    colors, opacity = [], []
    for r in picked:
        q = r[f"q_{DAY0_KEY}"] if has_q else None
        significant = not has_q or (_finite(q) is not None and q < Q_LEVEL)
        colors.append(UP if r["ar_day0"] > 0 else DOWN)
        opacity.append(1.0 if significant else 0.35)
    hover = [
        f"<b>{_esc(r['ticker'])}</b> #{int(r['rank']):,}<br>day-0 AR {fmt_pct(r['ar_day0'])}"
        f"<br>return {fmt_pct(r['return_day0'])}" + (f"<br>q {fmt_p(r[f'q_{DAY0_KEY}'])}" if has_q else "")
        for r in picked
    ]
    values = results.columns["ar_day0"][rows].astype(float) * 100
    # A vendor error (an unadjusted split) can give one AR of -10,000%: clip the axis, print the true value.
    limit = float(np.quantile(np.abs(values), 0.9)) * 1.5 if len(values) else 1.0
    clipped = np.abs(values) > limit
    trace = {
        "type": "bar",
        "x": [_esc(r["ticker"]) for r in picked],
        "y": [round(float(v), 6) for v in values],
        "text": [f"{v:+,.0f}%" if c else "" for v, c in zip(values, clipped)],
        "textposition": "inside",
        "insidetextanchor": "middle",
        "textangle": -90,
        "textfont": {"color": "#0f172a", "size": 11},
        "marker": {"color": colors, "opacity": opacity},
        "hovertext": hover,
        "hoverinfo": "text",
    }
    yaxis: dict[str, Any] = {"title": {"text": "day-0 abnormal return (%)"}, "ticksuffix": "%", "gridcolor": "#e2e8f0"}
    if clipped.any():
        yaxis["range"] = [max(values.min(), -limit) * 1.05, min(values.max(), limit) * 1.05]
    layout = _layout(
        xaxis={"type": "category", "tickangle": -60, "tickfont": {"size": 11}},
        yaxis=yaxis,
        showlegend=False,
        height=420,
        margin={"l": 70, "r": 20, "t": 20, "b": 90},
    )
    return {"data": [trace], "layout": layout, "config": PLOT_CONFIG}


def funnel_figure(results: ScanResults) -> dict[str, Any]:
    """Tickers left after each filter, in the order the filters run."""
    funnel = results.funnel_rows()
    labels = ["in the price data", *(f"after {row['filter']}" for row in funnel)]
    values = [results.n_tickers, *(row["remaining"] for row in funnel)]
    trace = {
        "type": "funnel",
        "y": labels,
        "x": values,
        "texttemplate": "%{value:,} (%{percentInitial:.0%})",
        "marker": {"color": "#2563eb"},
        "connector": {"line": {"color": "#cbd5e1"}},
    }
    layout = _layout(height=360, margin={"l": 170, "r": 20, "t": 10, "b": 30}, showlegend=False)
    return {"data": [trace], "layout": layout, "config": PLOT_CONFIG}


# --------------------------------------------------------------------------- tables


def _car_windows(results: ScanResults) -> list[Window]:
    """The windows with their own CAR column in the tables ([0,0] is the day-0 AR column)."""
    return [w for w in results.config.windows if w != Window(0, 0)]


def _sig_css(q: float | None, value: float | None) -> str:
    if q is None or value is None or not q < Q_LEVEL:
        return ""
    return "sig up" if value > 0 else "sig down"


def _mover_rows(results: ScanResults, rows: Any) -> list[dict[str, Any]]:
    """The table rows ``rows`` (indices in rank order) as the mover tables show them."""
    has_day0 = f"q_{DAY0_KEY}" in results.columns
    out = []
    for record in _records(results.columns, rows):
        cells = []
        for window in _car_windows(results):
            key = window_key(window)
            q = _finite(record[f"q_{key}"])
            car = _finite(record[f"car_{key}"])
            cells.append({
                "text": fmt_pct(car),
                "sort": car,
                "css": _sig_css(q, car),
                "title": f"t {fmt_num(record[f't_{key}'])}, p {fmt_p(record[f'p_{key}'])}, q {fmt_p(record[f'q_{key}'])}",
            })
        out.append({
            "rank": int(record["rank"]),
            "ticker": record["ticker"],
            "highlighted": bool(record["highlighted"]),
            "sigma": f"{record['sigma'] * 100:,.1f}%",
            "sigma_sort": _finite(record["sigma"]),
            "sigma_css": "warn" if record["sigma"] > ERRATIC_SIGMA else "",
            "close": fmt_num(record["close_before"]),
            "close_sort": _finite(record["close_before"]),
            "ret": fmt_pct(record["return_day0"]),
            "ret_sort": _finite(record["return_day0"]),
            "ar": fmt_pct(record["ar_day0"]),
            "ar_sort": _finite(record["ar_day0"]),
            "t": fmt_num(record[f"t_{DAY0_KEY}"]) if has_day0 else "—",
            "t_sort": _finite(record[f"t_{DAY0_KEY}"]) if has_day0 else None,
            "q": fmt_p(record[f"q_{DAY0_KEY}"]) if has_day0 else "—",
            "q_sort": _finite(record[f"q_{DAY0_KEY}"]) if has_day0 else None,
            "q_css": _sig_css(_finite(record[f"q_{DAY0_KEY}"]), _finite(record["ar_day0"])) if has_day0 else "",
            "cells": cells,
        })
    return out


def _highlight_rows(results: ScanResults) -> list[dict[str, Any]]:
    n = results.n_ranked
    columns = results.columns
    q_day0 = columns.get(f"q_{DAY0_KEY}")
    rows = []
    for values in results.highlight_rows:
        record = dict(zip(HIGHLIGHT_COLUMNS, values))
        row: dict[str, Any] = {"ticker": record["ticker"], "status": record["status"], "reason": record["reason"]}
        if record["status"] == "ranked":
            rank = int(record["rank"])  # the table is in rank order: its row is rank - 1
            row.update({
                "rank": f"{rank:,} of {n:,}",
                "rank_sort": rank,
                "ar_sort": record["ar_day0"],
                "top": f"top {record['percentile']:.2f}%",
                "css": "sig up" if record["percentile"] <= 5 else "",
                "ar": fmt_pct(record["ar_day0"]),
                "ret": fmt_pct(columns["return_day0"][rank - 1]),
                "q": fmt_p(q_day0[rank - 1]) if q_day0 is not None else "—",
            })
        rows.append(row)
    return rows


def _fdr_rows(results: ScanResults) -> list[dict[str, str]]:
    rows = []
    for record in results.window_rows(Q_LEVEL):
        rows.append({
            "window": record["window"],
            "n": fmt_int(record["n"]),
            "median": fmt_pct(record["median_car"]),
            "p": fmt_int(record["p_below"]),
            "expected": fmt_int(round(record["expected_false_p"])),
            "q": fmt_int(record["q_below"]),
            "up": fmt_int(record["q_below_up"]),
            "down": fmt_int(record["q_below_down"]),
        })
    return rows


def _command(results: ScanResults) -> str:
    cfg = results.config
    event = cfg.event
    when = event.timestamp.isoformat() if event.timestamp else event.date.isoformat() + (
        f":{event.timing}" if event.timing else ""
    )
    parts = ["evstudy scan", f"--event {when}", f"--prices {results.provenance.get('location', 'PATH')}"]
    parts.append(f"--benchmark {cfg.benchmark} --model {cfg.model}")
    parts.append(f"--estimation-window {cfg.estimation_window.start},{cfg.estimation_window.end}")
    parts.extend(f"--window {w.start},{w.end}" for w in cfg.windows)
    parts.append(f"--min-price {cfg.min_price:g} --min-returns {cfg.min_returns} --max-zero-share {cfg.max_zero_share:g}")
    parts.append(f"--top {cfg.top}")
    if cfg.highlight:
        parts.append(f"--highlight {','.join(cfg.highlight)}")
    return " \\\n    ".join(parts)


METHODS = {
    "market": "Abnormal return AR = R − (α + β·Rₘ), α and β from the estimation window; CAR sums the ARs of a "
              "window; its variance s²·(L + v′(X′X)⁻¹v) includes the estimation error of α and β, and t has "
              "L₁ − 2 degrees of freedom",
    "constant_mean": "Abnormal return AR = R − μ, μ the estimation-window mean return; CAR sums the ARs of a window; "
                     "its variance s²·(L + L²/L₁) includes the estimation error of μ, and t has L₁ − 1 degrees of "
                     "freedom",
    "market_adjusted": "Abnormal return AR = R − Rₘ (no parameter to estimate); CAR sums the ARs of a window; its "
                       "variance is s²·L with s² the estimation-window variance of R − Rₘ, and t has L₁ − 1 degrees "
                       "of freedom",
}


def render_scan_html(results: ScanResults, *, generated_at: dt.datetime | None = None) -> str:
    """The scan report as one HTML document (plotly.js inline, no external URL)."""
    cfg = results.config
    timeline = results.timeline
    n = results.n_ranked
    n_highlighted = int(results.columns["highlighted"].sum())
    top = min(cfg.top, n)
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.bytecode_cache = compiled_template_cache(env)
    generated = (generated_at or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    charts = [
        {"id": "scan-hist", "json": _json(histogram_figure(results)),
         "caption": "How the whole market moved: counts of tickers per bin of abnormal return (choose the "
                    "window in the menu). Dotted lines mark the highlighted tickers and their rank"
                    + (f" (the {MAX_MARKERS} best-ranked of {n_highlighted})."
                       if n_highlighted > MAX_MARKERS else ".")},
        {"id": "scan-movers", "json": _json(movers_figure(results)),
         "caption": f"The {min(BARS_PER_SIDE, top)} largest and smallest day-0 abnormal returns. Faded bars: "
                    f"Benjamini–Hochberg q-value of 5% or more (not a discovery once {n:,} tests are "
                    "taken into account)."},
    ]
    funnel = [
        {"name": r["filter"], "description": r["description"], "rule": r["rule"],
         "removed": fmt_int(r["removed"]), "remaining": fmt_int(r["remaining"])}
        for r in results.funnel_rows()
    ]
    est = cfg.estimation_window
    context = {
        "version": results.version,
        "generated": generated,
        "title": f"Market scan around {timeline.day0:%a %Y-%m-%d}",
        "label": timeline.label,
        "mapping": timeline.mapping,
        "n_ranked": fmt_int(n),
        "n_tickers": fmt_int(results.n_tickers),
        "benchmark": cfg.benchmark,
        "model": cfg.model.replace("_", "-"),
        "method": METHODS[cfg.model],
        "estimation": f"{est.label} ({timeline.estimation_start:%Y-%m-%d} to {timeline.estimation_end:%Y-%m-%d})",
        "windows": ", ".join(w.label for w in cfg.windows),
        "highlights": _highlight_rows(results),
        "tiles": len(results.highlight_rows) <= MAX_TILES,
        "top_n": top,
        "window_labels": [w.label for w in _car_windows(results)],
        "top_rows": _mover_rows(results, np.arange(top)),
        "bottom_rows": _mover_rows(results, np.arange(n - 1, n - top - 1, -1)),
        "fdr": _fdr_rows(results),
        "funnel": funnel,
        "funnel_json": _json(funnel_figure(results)),
        "charts": charts,
        "has_day0": f"q_{DAY0_KEY}" in results.columns,
        "filters": [{"name": name, "text": text} for name, text in FILTERS],
        "provenance": results.provenance,
        "notes": list(results.notes),
        "command": _command(results),
        "parameters": json.dumps(cfg.to_dict(), indent=2),
        "plotly_js": Markup(plotly_js().replace("</script", "<\\/script")),
    }
    return env.get_template("scan.html.j2").render(**context)
