"""The HTML report of a request-file study: small at any number of firm-events.

Summaries only: per-group CAARs and p-values, group CAAR paths, binned CAR
distributions (from :data:`MIN_DISTRIBUTION` firm-events), the top and bottom movers
(or every firm-event, up to :data:`ALL_MOVERS`), what was excluded and why, the
largest day-0 clusters, and a searchable table of at most
:data:`TABLE_ROWS` firm-events. Every chart is plotly.js JSON built from
those summaries (never one trace or row per firm-event); the full detail is
in cars.parquet / cars.csv. plotly.js is inline once, read without importing
the plotly package.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from evstudy.firm_events import RequestResults
from evstudy.report.scan_html import plotly_js
from evstudy.report.sections import report_template

_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
COLORS = ("#2563eb", "#dc2626", "#059669", "#7c3aed", "#d97706", "#0891b2", "#db2777", "#65a30d")
HEADLINE_TESTS = ("cs_t", "bmp_t", "kp_bmp_t", "clustered_bmp_t", "corrado_rank")
TABLE_ROWS = 2_000  # firm-events in the searchable table (the largest |t| in the headline window)
MOVERS = 25  # firm-events in each of the largest / smallest lists
ALL_MOVERS = 2 * MOVERS  # up to this many firm-events, one table of them all instead of two lists
MIN_DISTRIBUTION = 30  # fewer firm-events than this: no histogram (too few to show a distribution)
BINS = 60
MIN_BINS = 10
FENCE = 3.0  # Tukey's far fence: the histogram axis ends 3 IQR beyond the quartiles
MAX_GROUP_LINES = 8


def _json(spec: Any) -> Markup:
    return Markup(json.dumps(spec, allow_nan=False).translate(_JSON_ESCAPES))


def _pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x * 100:+.{digits}f}%"


def _p(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _layout(**extra: Any) -> dict[str, Any]:
    return {"font": {"family": FONT, "size": 13, "color": "#0f172a"}, "paper_bgcolor": "#fff", "plot_bgcolor": "#fff",
            "margin": {"l": 60, "r": 20, "t": 30, "b": 50}, **extra}


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def path_figure(results: RequestResults) -> dict[str, Any]:
    """Each group's CAAR path over the event span with a ±1.96 SE band."""
    traces = []
    for i, (name, path) in enumerate(list(results.group_paths.groupby("group", sort=False))[:MAX_GROUP_LINES]):
        color = COLORS[i % len(COLORS)]
        x = path["rel_day"].tolist()
        mean, se = path["caar"].to_numpy(), path["se"].to_numpy()
        band = np.where(np.isfinite(se), se, 0.0) * 1.96
        traces.append({"x": x + x[::-1], "y": _finite(np.concatenate([mean + band, (mean - band)[::-1]])),
                       "fill": "toself", "fillcolor": color + "22", "line": {"width": 0}, "hoverinfo": "skip",
                       "showlegend": False, "type": "scatter"})
        traces.append({"x": x, "y": _finite(mean), "name": f"{name} (N={int(path['n'].iloc[0]):,})",
                       "line": {"color": color, "width": 2}, "type": "scatter", "mode": "lines+markers",
                       "hovertemplate": "day %{x}: CAAR %{y:.3%}<extra>" + name + "</extra>"})
    return {"data": traces, "layout": _layout(
        xaxis={"title": {"text": "trading day relative to day 0"}, "zeroline": False},
        yaxis={"title": {"text": "CAAR"}, "tickformat": ".1%"}, height=420, legend={"orientation": "h", "y": -0.2},
        shapes=[{"type": "line", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1, "line": {"dash": "dot"}}])}


def robust_axis(values: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Histogram bin edges for ``values`` and how many fall below / above them.

    The axis spans Tukey's far fences (quartiles ∓ 3×IQR, Tukey 1977), cut to
    the data's range, so one glitch-sized CAR cannot squash the rest; the bin
    width is Freedman–Diaconis (2·IQR·n^(-1/3), Freedman and Diaconis 1981),
    between :data:`MIN_BINS` and :data:`BINS` bins. Values outside the axis are
    counted, not piled into the end bins.
    """
    values = values[np.isfinite(values)]
    if not len(values):
        return np.linspace(0.0, 1e-6, MIN_BINS + 1), 0, 0
    q1, q3 = np.quantile(values, [0.25, 0.75])
    iqr = q3 - q1
    low, high = float(values.min()), float(values.max())
    if iqr > 0:
        low, high = max(low, q1 - FENCE * iqr), min(high, q3 + FENCE * iqr)
    if high <= low:
        high = low + 1e-6
    width = 2 * iqr * len(values) ** (-1 / 3)
    bins = int(np.clip(np.ceil((high - low) / width), MIN_BINS, BINS)) if width > 0 else MIN_BINS
    return np.linspace(low, high, bins + 1), int((values < low).sum()), int((values > high).sum())


def _outside_text(below: int, above: int) -> str:
    if not below and not above:
        return "CAR (every firm-event on the axis)"
    verb = "is" if below + above == 1 else "are"
    return f"CAR ({below:,} below and {above:,} above the axis {verb} not drawn)"


def window_values(results: RequestResults, column: str) -> np.ndarray:
    """A numeric column of ``results.car_table`` as a (firm-events x windows) matrix.

    The table's rows run firm-event by firm-event (the order of
    ``results.firm_events``), each in the config's window order.
    """
    values = results.car_table.column(column).to_numpy()
    return values.reshape(len(results.firm_events), len(results.config.windows))


def histogram_figure(results: RequestResults, car: np.ndarray) -> dict[str, Any]:
    """Binned CAR counts per window (a menu picks the window), one bar trace per group; ``car`` is
    :func:`window_values` of "car".

    Each window has its own robust axis (:func:`robust_axis`); its title says
    how many firm-events lie outside it.
    """
    windows = results.config.windows
    groups = [g for g in results.groups["group"].unique() if g != "(all)"][:MAX_GROUP_LINES]
    # Plain arrays, (firm-events x windows): selecting 10^5-row frames per window and group would copy every column.
    codes, names = pd.factorize(results.firm_events["group"])
    group_code = {name: i for i, name in enumerate(names)}
    traces, buttons, titles = [], [], []
    for w, window in enumerate(windows):
        edges, below, above = robust_axis(car[:, w])
        centres = (edges[:-1] + edges[1:]) / 2
        for i, group in enumerate(groups):
            counts, _ = np.histogram(car[codes == group_code.get(group, -2), w], edges)
            traces.append({"x": _finite(centres), "y": counts.tolist(), "type": "bar", "name": group,
                           "marker": {"color": COLORS[i % len(COLORS)]}, "opacity": 0.6, "visible": w == 0,
                           "hovertemplate": "CAR %{x:.2%}: %{y:,} firm-events<extra>" + group + "</extra>"})
        titles.append(_outside_text(below, above))
        visible = [j // len(groups) == w for j in range(len(windows) * len(groups))]
        buttons.append({"label": f"CAR {window.label}", "method": "update",
                        "args": [{"visible": visible}, {"xaxis.title.text": titles[-1]}]})
    return {"data": traces, "layout": _layout(
        barmode="overlay", bargap=0.05, height=380, xaxis={"title": {"text": titles[0]}, "tickformat": ".1%"},
        yaxis={"title": {"text": "firm-events"}},
        updatemenus=[{"buttons": buttons, "x": 0, "y": 1.18, "xanchor": "left", "showactive": True}])}


def split_movers(ordered: pd.DataFrame | pd.Series, cap: int = MOVERS) -> tuple[Any, Any]:
    """The largest and smallest CARs of a list sorted by CAR, descending (rows of a frame or positions).

    Each list holds at most ``cap`` and at most half the firm-events, so no
    firm-event is in both.
    """
    k = min(cap, len(ordered) // 2)
    return ordered.head(k), ordered.iloc[len(ordered) - k:].iloc[::-1]


def _headline_rows(results: RequestResults) -> list[dict[str, Any]]:
    columns = ["group", "window_start", "window_end", "test", "p_value"]
    p_of = {(g, start, end, test): p for g, start, end, test, p in results.tests[columns].itertuples(index=False)}
    rows = []
    for r in results.groups.to_dict(orient="records"):
        key = (r["group"], r["window_start"], r["window_end"])
        cells = {test: _p(p_of.get((*key, test))) for test in HEADLINE_TESTS}
        rows.append({"group": r["group"], "window": f"[{r['window_start']:+d},{r['window_end']:+d}]".replace("+0", "0"),
                     "n": f"{r['n']:,}", "firms": f"{r['n_firms']:,}", "caar": _pct(r["caar"]), "se": _pct(r["se"]),
                     "median": _pct(r["median_car"]), "positive": f"{r['share_positive']:.0%}", "p": cells})
    return rows


EVENT_COLUMNS = ["event_id", "ticker", "date", "day0", "group", "car", "t", "p_value", "overlaps", "cluster_size"]


def _event_frame(results: RequestResults, values: dict[str, np.ndarray], positions: np.ndarray) -> pd.DataFrame:
    """:data:`EVENT_COLUMNS` of the firm-events at ``positions``, with the CAR, t and p of the first window
    (``values``: :func:`window_values` of each)."""
    fe = results.firm_events.iloc[positions]
    head = {c: values[c][positions, 0] for c in ("car", "t", "p_value")}
    return pd.DataFrame({c: head[c] if c in head else fe[c].to_numpy() for c in EVENT_COLUMNS})


def _event_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    dates, days0 = (pd.DatetimeIndex(frame[c]).strftime("%Y-%m-%d") for c in ("date", "day0"))
    columns = [frame[c].tolist() for c in ("event_id", "ticker", "group", "car", "t", "p_value", "overlaps",
                                             "cluster_size")]
    return [{"event_id": e, "ticker": ticker, "date": date, "day0": day0, "group": group, "car": _pct(car),
             "t": _num(t), "p": _p(p), "overlaps": str(overlaps), "cluster": f"{cluster:,}"}
            for date, day0, e, ticker, group, car, t, p, overlaps, cluster in zip(dates, days0, *columns)]


def render_request_html(results: RequestResults, *, generated_at: dt.datetime | None = None) -> str:
    """The request-file report as one HTML document (plotly.js inline, no external URL)."""
    cfg = results.config
    head = cfg.windows[0]
    fe = results.firm_events
    n_main = len(fe)
    # Positions of the firm-events by CAR and by |t| in the first window, descending, ties in firm-event order:
    # only the listed rows become frames.
    values = {c: window_values(results, c) for c in ("car", "t", "p_value")}  # each column copied out once
    by_car = np.argsort(-values["car"][:, 0], kind="stable")
    top, bottom = split_movers(pd.Series(by_car)) if n_main > ALL_MOVERS else (by_car[:0], by_car[:0])
    strongest = _event_frame(results, values, np.argsort(-np.abs(values["t"][:, 0]), kind="stable")[:TABLE_ROWS])
    excluded = results.excluded
    kinds = excluded["reason"].str.replace(r"[0-9][0-9,.%-]*", "#", regex=True)
    reasons = [{"kind": kind, "count": f"{count:,}", "example": excluded.loc[kinds == kind, "reason"].iat[0]}
               for kind, count in kinds.value_counts().head(12).items()]
    sizes = fe.groupby("day0").size().sort_values(ascending=False, kind="stable").head(10)
    clustered = int((fe["cluster_size"] > 1).sum())
    est = cfg.estimation_window
    context = {
        "version": results.version,
        "generated": (generated_at or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip(),
        "title": cfg.title or f"Event study of {results.n_rows:,} firm-events",
        "request_file": results.request_file,
        "n_rows": f"{results.n_rows:,}",
        "n_included": f"{len(fe):,}",
        "n_excluded": f"{len(excluded):,}",
        "n_firms": f"{fe['ticker'].nunique():,}",
        "n_days": f"{fe['day0'].nunique():,}",
        "n_overlap": f"{int((fe['overlaps'] > 0).sum()):,}",
        "drop_overlaps": cfg.drop_overlaps,
        "n_clustered": f"{clustered:,}",
        "share_clustered": f"{clustered / max(len(fe), 1):.0%}",
        "clusters": [{"day": f"{pd.Timestamp(d):%a %Y-%m-%d}", "n": f"{n:,}"} for d, n in sizes.items()],
        "model": cfg.model.replace("_", "-"),
        "benchmark": cfg.benchmark,
        "estimation": est.label,
        "windows": ", ".join(w.label for w in cfg.windows),
        "head_window": head.label,
        "headline": _headline_rows(results),
        "headline_tests": [(t, results.tests.loc[results.tests["test"] == t, "label"].iat[0]) for t in HEADLINE_TESTS],
        "tests": [{**r, "statistic": _num(r["statistic"], 3), "p_value": _p(r["p_value"]), "n": f"{r['n']:,}",
                   "window": f"[{r['window_start']:+d},{r['window_end']:+d}]".replace("+0", "0")}
                  for r in results.tests.to_dict(orient="records")],
        "movers_all": _event_rows(_event_frame(results, values, by_car)) if n_main <= ALL_MOVERS else None,
        "top": _event_rows(_event_frame(results, values, np.asarray(top))),
        "bottom": _event_rows(_event_frame(results, values, np.asarray(bottom))),
        "table": _event_rows(strongest),
        "table_rows": f"{len(strongest):,}",
        "table_total": f"{n_main:,}",
        "reasons": reasons,
        "path_json": _json(path_figure(results)),
        "hist_json": _json(histogram_figure(results, values["car"])) if n_main >= MIN_DISTRIBUTION else None,
        "min_distribution": MIN_DISTRIBUTION,
        "n_main": f"{n_main:,}",
        "notes": list(results.notes),
        "provenance": results.provenance,
        "parameters": json.dumps(cfg.to_dict(), indent=2),
        "plotly_js": Markup(plotly_js().replace("</script", "<\\/script")),
    }
    return report_template("request.html.j2").render(**context)
