"""Plotly figures for the HTML report, drawn from the tidy tables of a StudyResults.

Nothing is re-estimated here: paths, CARs and ARs come from the results; only
the 95% bands are drawn from the stored standard errors. Every user-supplied
string (labels, basket names, tickers) is HTML-escaped before it enters a
figure, because plotly renders a subset of HTML tags in titles, legends,
hover labels, menus and annotations.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from evstudy.results import EventTimeline, StudyResults

BASKET_COLORS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
TICKER_COLORS = (
    "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
    "#9333ea", "#ea580c", "#0d9488", "#4f46e5", "#be123c", "#a16207",
)
BENCHMARK_COLORS = ("#334155", "#0f766e", "#9a3412", "#6d28d9")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
CONFOUNDER_COLOR = "#b45309"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
SMALL_MULTIPLES_MAX = 16  # more stocks than this: one CAR panel with a stock picker
ALL_PRICES_MAX = 15  # more stocks than this: the price chart opens on the first basket

# Toolbar without the plotly logo; "responsive" makes figures follow the page width.
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def esc(text: object) -> str:
    """Escape text for plotly, which would otherwise render tags such as <b> or <a>."""
    return html.escape(str(text), quote=False)


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
    return list(dict.fromkeys(_event_rows(results.memberships, event_id)["benchmark"]))


def _tickers(results: StudyResults, event_id: str) -> list[str]:
    return list(dict.fromkeys(_event_rows(results.memberships, event_id)["ticker"]))


def _layout(fig: go.Figure, title: str, height: int, y_title: str) -> None:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 17}},
        height=height,
        font={"family": FONT, "size": 12, "color": "#1e293b"},
        margin={"l": 64, "r": 20, "t": 92, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0.0},
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_yaxes(title_text=y_title, zeroline=True, zerolinecolor="#94a3b8")


def _day_axis(fig: go.Figure, results: StudyResults, event_id: str, rel_days: list[int]) -> None:
    """Tick every trading day as "+1 / Oct 14" so readers see relative days and dates together."""
    dates = _event_rows(results.prices, event_id).drop_duplicates("rel_day").set_index("rel_day")["date"]
    ticks = [d for d in rel_days if d in dates.index]
    step = max(1, math.ceil(len(ticks) / 24))
    shown = [d for d in ticks if d % step == 0]
    text = [f"{'0' if d == 0 else f'{d:+d}'}<br>{pd.Timestamp(dates[d]):%b %d}" for d in shown]
    fig.update_xaxes(tickmode="array", tickvals=shown, ticktext=text, title_text="trading day (relative to day 0)",
                     showgrid=False, unifiedhovertitle={"text": "day %{x:+d}"})
    fig.update_layout(legend={"y": -0.3})
    if ticks:
        fig.update_xaxes(range=[ticks[0] - 0.5, ticks[-1] + 0.5])


def confounder_note(item: dict[str, Any]) -> str:
    """Plain words for where a confounder falls relative to day 0 (unescaped)."""
    rel = item.get("rel_day")
    if rel is None:
        return "after the price data ends"
    day = "0" if rel == 0 else f"{rel:+d}"
    if item.get("trading_day"):
        return f"on trading day {day}"
    return f"not a trading day: first priced on day {day}"


def _mark_event(fig: go.Figure, timeline: EventTimeline, x_range: tuple[float, float]) -> None:
    """Day 0 as a dashed line; each confounder as a dotted line with its number from the report's list.

    A confounder on a non-trading day sits half-way between the sessions before and after it.
    """
    fig.add_vline(x=0, line={"color": "#0f172a", "width": 1.5, "dash": "dash"})
    fig.add_annotation(
        x=0, y=1.0, xref="x", yref="paper", yanchor="bottom", yshift=22, showarrow=False,
        text="<b>day 0</b>", font={"size": 11, "color": "#0f172a"},
        hovertext=esc(f"{timeline.label or timeline.event_id}: {timeline.mapping}"),
    )
    for number, item in enumerate(timeline.confounders, start=1):
        rel = item.get("rel_day")
        if rel is None:
            continue
        x = float(rel) if item.get("trading_day") else float(rel) - 0.5
        if not x_range[0] <= x <= x_range[1]:
            continue
        fig.add_vline(x=x, line={"color": CONFOUNDER_COLOR, "width": 1.2, "dash": "dot"})
        fig.add_annotation(
            x=x, y=1.0, xref="x", yref="paper", yanchor="bottom", showarrow=False,
            text=f"<b>{number}</b>", font={"size": 11, "color": "#ffffff"},
            bgcolor=CONFOUNDER_COLOR, borderpad=2,
            hovertext=esc(f"{item.get('date')}: {item.get('label') or ''} ({confounder_note(item)})"),
        )


def _menu(fig: go.Figure, buttons: list[dict[str, Any]], active: int) -> None:
    """A dropdown at the top right, above the day-0 and news markers and below the toolbar."""
    fig.update_layout(
        updatemenus=[{
            "buttons": buttons, "active": active, "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
            "pad": {"b": 46}, "bgcolor": "#ffffff", "bordercolor": "#94a3b8",
        }],
        margin={"t": 116},
    )


def _band(x: list[int], y: np.ndarray, half: np.ndarray, color: str, group: str) -> go.Scatter:
    """The filled 95% band y ± half, drawn behind its line and toggled with it."""
    return go.Scatter(
        x=x + x[::-1], y=np.concatenate([y + half, (y - half)[::-1]]),
        fill="toself", fillcolor=_rgba(color, 0.13), line={"width": 0}, hoverinfo="skip",
        showlegend=False, legendgroup=group,
    )


def caar_figure(results: StudyResults, event_id: str) -> go.Figure | None:
    """Average cumulative abnormal return per basket × benchmark, with its 95% band."""
    paths = _event_rows(results.basket_paths, event_id)
    if paths.empty:
        return None
    colors, titles = basket_colors(results), basket_titles(results)
    dashes = {b: DASHES[i % len(DASHES)] for i, b in enumerate(_benchmarks(results, event_id))}
    fig = go.Figure()
    for (basket, bench), group in paths.groupby(["basket", "benchmark"], sort=False):
        group = group.sort_values("rel_day")
        x = group["rel_day"].tolist()
        caar = group["caar"].to_numpy() * 100
        n = group["n"].to_numpy()
        quantile = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
        half = quantile * group["se"].to_numpy() * 100
        name = esc(f"{titles.get(basket, basket)} vs {bench} (N={int(n[0])})")
        color = colors.get(basket, BASKET_COLORS[0])
        if np.isfinite(half).any():
            fig.add_trace(_band(x, caar, half, color, name))
        fig.add_trace(go.Scatter(
            x=x, y=caar, mode="lines+markers", name=name, legendgroup=name,
            line={"color": color, "width": 2.5, "dash": dashes[bench]}, marker={"size": 5},
            customdata=np.column_stack([caar - half, caar + half]),
            hovertemplate="CAAR %{y:+.2f}% (95% band %{customdata[0]:+.2f}% to %{customdata[1]:+.2f}%)",
        ))
    rel_days = sorted(paths["rel_day"].unique())
    lines = len(fig.data) - sum(trace.hoverinfo == "skip" for trace in fig.data)
    _layout(fig, "Average cumulative abnormal return (CAAR) by basket", 460 + 20 * math.ceil(lines / 2), "CAAR (%)")
    _day_axis(fig, results, event_id, rel_days)
    fig.update_layout(hovermode="x unified")
    _mark_event(fig, results.timeline(event_id), (rel_days[0], rel_days[-1]))
    return fig


def _car_traces(results: StudyResults, event_id: str) -> list[tuple[str, list[go.Scatter]]]:
    """Per ticker (membership order): band and line of its CAR path against each benchmark."""
    paths = _event_rows(results.car_paths, event_id)
    fits = _event_rows(results.fits, event_id).set_index(["ticker", "benchmark"])["df"]
    bench_color = {b: BENCHMARK_COLORS[i % len(BENCHMARK_COLORS)] for i, b in enumerate(_benchmarks(results, event_id))}
    out = []
    for ticker in _tickers(results, event_id):
        traces = []
        for bench, group in paths[paths["ticker"] == ticker].groupby("benchmark", sort=False):
            group = group.sort_values("rel_day")
            x = group["rel_day"].tolist()
            car = group["car"].to_numpy() * 100
            half = stats.t.ppf(0.975, float(fits.get((ticker, bench), np.nan))) * group["se"].to_numpy() * 100
            color = bench_color[bench]
            traces.append(_band(x, car, half, color, bench))
            traces.append(go.Scatter(
                x=x, y=car, mode="lines", name=esc(f"vs {bench}"), legendgroup=bench,
                line={"color": color, "width": 2},
                customdata=np.column_stack([car - half, car + half]),
                hovertemplate=esc(f"{ticker} vs {bench}")
                + "<br>day %{x:+d}: CAR %{y:+.2f}%<br>95% band %{customdata[0]:+.2f}% to %{customdata[1]:+.2f}%"
                "<extra></extra>",
            ))
        if traces:
            out.append((ticker, traces))
    return out


def car_figure(results: StudyResults, event_id: str) -> go.Figure | None:
    """Each stock's cumulative abnormal return with its 95% band.

    Up to SMALL_MULTIPLES_MAX stocks: one small panel each; beyond that one
    panel with a stock picker, which stays readable (and fast) for large studies.
    """
    per_ticker = _car_traces(results, event_id)
    if not per_ticker:
        return None
    title = "Cumulative abnormal return per stock (shaded: 95% band)"
    if len(per_ticker) > SMALL_MULTIPLES_MAX:
        fig = go.Figure()
        spans = []
        for k, (_, traces) in enumerate(per_ticker):
            spans.append((len(fig.data), len(traces)))
            for trace in traces:
                trace.visible = k == 0
                fig.add_trace(trace)
        buttons = [
            {"label": esc(ticker), "method": "restyle",
             "args": [{"visible": [start <= i < start + count for i in range(len(fig.data))]}]}
            for (ticker, _), (start, count) in zip(per_ticker, spans)
        ]
        _layout(fig, title, 490, "CAR (%)")
        _menu(fig, buttons, 0)
        fig.update_yaxes(ticksuffix="%")
        fig.add_vline(x=0, line={"color": "#0f172a", "width": 1.5, "dash": "dash"})
        _day_axis(fig, results, event_id, sorted(_event_rows(results.car_paths, event_id)["rel_day"].unique()))
        return fig

    cols = min(4, len(per_ticker))
    rows = math.ceil(len(per_ticker) / cols)
    height = 150 + 230 * rows
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[esc(t) for t, _ in per_ticker],
        horizontal_spacing=0.06, vertical_spacing=min(0.25, 70 / height),
    )
    shown: set[str] = set()
    for k, (_, traces) in enumerate(per_ticker):
        row, col = divmod(k, cols)
        for trace in traces:
            if trace.showlegend is not False:
                trace.showlegend = trace.legendgroup not in shown
                shown.add(trace.legendgroup)
            fig.add_trace(trace, row=row + 1, col=col + 1)
    fig.add_vline(x=0, line={"color": "#0f172a", "width": 1, "dash": "dash"}, row="all", col="all")
    _layout(fig, title, height, "")
    fig.update_layout(legend={"y": -60 / height}, margin={"l": 50, "r": 20, "t": 90, "b": 50})
    fig.update_yaxes(ticksuffix="%", zeroline=True, zerolinecolor="#94a3b8")
    fig.update_xaxes(showgrid=False, dtick=5)
    fig.update_annotations(font={"size": 13})
    return fig


def day0_figure(results: StudyResults, event_id: str) -> go.Figure | None:
    """Day-0 abnormal return, one bar per stock, coloured by its first basket, biggest first within a basket.

    The bar is measured against the first benchmark of the stock's first
    basket; the hover lists the stock's day-0 abnormal return against every
    benchmark it was studied with.
    """
    ar = _event_rows(results.abnormal_returns, event_id)
    ar = ar[ar["rel_day"] == 0].set_index(["ticker", "benchmark"])
    if ar.empty:
        return None
    members = _event_rows(results.memberships, event_id)
    first = members.drop_duplicates("ticker").set_index("ticker")
    titles, colors = basket_titles(results), basket_colors(results)
    in_baskets = members.drop_duplicates(["ticker", "basket"]).groupby("ticker", sort=False)["basket"].agg(
        lambda names: ", ".join(titles.get(n, n) for n in names)
    )
    against = members.drop_duplicates(["ticker", "benchmark"]).groupby("ticker", sort=False)["benchmark"].agg(list)
    fig = go.Figure()
    order: list[str] = []
    for basket in dict.fromkeys(first["basket"]):
        bars = []
        for ticker, bench in first.loc[first["basket"] == basket, "benchmark"].items():
            if (ticker, bench) not in ar.index:
                continue
            row = ar.loc[(ticker, bench)]
            others = "<br>".join(
                f"vs {esc(b)}: {ar.loc[(ticker, b), 'abnormal_return'] * 100:+.2f}%"
                for b in against.get(ticker, []) if (ticker, b) in ar.index
            )
            bars.append((row["abnormal_return"] * 100, esc(ticker), esc(in_baskets.get(ticker, "")), esc(bench),
                         row["return"] * 100, row["expected_return"] * 100, others))
        if not bars:
            continue
        bars.sort(key=lambda bar: -bar[0])
        order.extend(bar[1] for bar in bars)
        fig.add_trace(go.Bar(
            x=[bar[1] for bar in bars], y=[bar[0] for bar in bars], name=esc(titles.get(basket, basket)),
            marker={"color": colors.get(basket, BASKET_COLORS[0])},
            customdata=[bar[2:] for bar in bars],
            texttemplate="%{y:+.1f}%" if len(ar) > 30 else "%{y:+.2f}%", textposition="outside", cliponaxis=False,
            hovertemplate="<b>%{x}</b> (%{customdata[0]})<br>actual return %{customdata[2]:+.2f}%"
            "<br>expected vs %{customdata[1]}: %{customdata[3]:+.2f}%<br>abnormal return:<br>%{customdata[4]}"
            "<extra></extra>",
        ))
    _layout(fig, "Day-0 abnormal return by stock", 480, "abnormal return on day 0 (%)")
    fig.update_layout(barmode="overlay", bargap=0.25, uniformtext={"minsize": 8, "mode": "hide"})
    fig.update_xaxes(categoryorder="array", categoryarray=order, showgrid=False)
    return fig


def price_figure(results: StudyResults, event_id: str) -> go.Figure | None:
    """Closing prices rebased to 100 on day -1, with day 0 and the other news marked.

    With several baskets a menu shows one basket at a time (benchmarks always
    shown); a large study opens on its first basket rather than a tangle of lines.
    """
    prices = _event_rows(results.prices, event_id)
    if prices.empty:
        return None
    members = _event_rows(results.memberships, event_id)
    tickers = _tickers(results, event_id)
    benches = [b for b in _benchmarks(results, event_id) if b not in tickers]
    fig = go.Figure()
    drawn: list[str] = []
    for i, ticker in enumerate([*tickers, *benches]):
        rows = prices[prices["ticker"] == ticker].sort_values("rel_day")
        if rows["rebased"].notna().sum() == 0:
            continue
        is_bench = ticker in benches
        color = BENCHMARK_COLORS[benches.index(ticker) % len(BENCHMARK_COLORS)] if is_bench \
            else TICKER_COLORS[i % len(TICKER_COLORS)]
        fig.add_trace(go.Scatter(
            x=rows["rel_day"], y=rows["rebased"], mode="lines",
            name=esc(ticker) + (" (benchmark)" if is_bench else ""),
            line={"color": color, "width": 3 if is_bench else 1.8, "dash": "dash" if is_bench else "solid"},
            customdata=rows["close"].to_numpy(),
            hovertemplate=esc(ticker) + ": %{y:.1f} (close %{customdata:.2f})<extra></extra>",
        ))
        drawn.append(ticker)
    fig.add_hline(y=100, line={"color": "#94a3b8", "width": 1})
    _layout(fig, "Prices rebased to 100 at the close of day -1", 540, "price (day -1 close = 100)")
    rel_days = sorted(prices["rel_day"].unique())
    _day_axis(fig, results, event_id, rel_days)
    fig.update_layout(hovermode="x unified")
    _mark_event(fig, results.timeline(event_id), (rel_days[0], rel_days[-1]))

    baskets = list(dict.fromkeys(members["basket"]))
    if len(baskets) > 1:
        titles = basket_titles(results)
        shown_with = {b: set(m["ticker"]) | set(m["benchmark"]) for b, m in members.groupby("basket")}
        choices = [("All stocks", set(drawn)), *((titles.get(b, b), shown_with[b]) for b in baskets)]
        active = 0 if len(tickers) <= ALL_PRICES_MAX else 1
        for trace, ticker in zip(fig.data, drawn):
            trace.visible = ticker in choices[active][1]
        _menu(fig, [
            {"label": esc(label), "method": "restyle", "args": [{"visible": [t in chosen for t in drawn]}]}
            for label, chosen in choices
        ], active)
    return fig
