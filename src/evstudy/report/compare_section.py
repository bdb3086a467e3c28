"""The report's basket-comparison section, and its terminal summary.

Drawn from ``results.extras["comparisons"]`` (:class:`evstudy.compare.Comparison`)
and ``results.basket_paths``; nothing is re-estimated and no verdict is chosen
here: the pair verdicts and their multiplicity-adjusted p-values are read from
the comparison record. Per event and benchmark: a one-paragraph answer, each
basket's CAAR with its 95% CI as a dot plot (a menu picks the window), the
ranking per window, the pairwise differences with Welch, permutation, Holm and
Benjamini-Hochberg p-values, and the baskets' CAAR paths side by side. The
same section sits in the study report and, first, on compare's own page
(:mod:`evstudy.report.compare_page`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from evstudy.compare import SHARED_TICKER_POLICY, Comparison
from evstudy.config import Window
from evstudy.report import charts
from evstudy.report.format import figure_json, fmt_num, fmt_p, fmt_pct, p_key, tuples, window_words
from evstudy.report.sections import Section, render_section
from evstudy.results import StudyResults

TEMPLATE = "compare_section.html.j2"
SECTION_ID = "compare"


def _headline(results: StudyResults) -> Window:
    windows = results.config.windows
    return Window(0, 0) if Window(0, 0) in windows else windows[0]


def _style(layout: dict[str, Any], title: str, height: int) -> None:
    """plotly's "plotly_white" template, the title, height, fonts and margins (a plain plotly.js layout dict)."""
    layout.update(
        template=charts.plotly_template("plotly_white"),
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 17}},
        height=height,
        font={"family": charts.FONT, "size": 12, "color": "#1e293b"},
        margin={"l": 64, "r": 20, "t": 92, "b": 60},
        hoverlabel={"font": {"family": charts.FONT}},
    )


def forest_figure(results: StudyResults, comparison: Comparison, event: str, bench: str) -> dict[str, Any] | None:
    """Each basket's CAAR (dot) with its 95% CI (bar), one window at a time (menu), best first.

    Baskets keep the order of the headline window's ranking in every window,
    so switching windows shows how each basket's estimate moves. A plotly.js
    figure dict: traces as plain dicts skip plotly's per-trace validation.
    """
    table = comparison.baskets[(comparison.baskets["event"] == event) & (comparison.baskets["benchmark"] == bench)]
    if table.empty:
        return None
    titles, colors = charts.basket_titles(results), charts.basket_colors(results)
    head = _headline(results)
    first = table[(table["window_start"] == head.start) & (table["window_end"] == head.end)]
    order = first.sort_values("caar", ascending=True, kind="stable")["basket"].tolist()  # plotly draws bottom-up
    labels = [charts.esc(titles.get(b, b)) for b in order]
    traces: list[dict[str, Any]] = []
    windows = list(dict.fromkeys(zip(table["window_start"], table["window_end"])))
    for start, end in windows:
        rows = table[(table["window_start"] == start) & (table["window_end"] == end)].set_index("basket").loc[order]
        caar = rows["caar"].to_numpy(dtype=float) * 100
        low = rows["ci_low"].to_numpy(dtype=float) * 100
        high = rows["ci_high"].to_numpy(dtype=float) * 100
        traces.append({
            "type": "scatter", "x": caar, "y": labels, "mode": "markers", "name": window_words(start, end),
            "visible": (start, end) == (head.start, head.end),
            "marker": {"size": 11, "color": [colors.get(b, charts.BASKET_COLORS[0]) for b in order]},
            "error_x": {"type": "data", "symmetric": False, "array": np.nan_to_num(high - caar),
                        "arrayminus": np.nan_to_num(caar - low), "thickness": 2, "width": 6, "color": "#475569"},
            "customdata": np.column_stack([low, high, rows["n"].to_numpy(),
                                           rows["rank"].astype("float").to_numpy()]),
            "hovertemplate": "%{y}<br>CAAR %{x:+.2f}%<br>95% CI %{customdata[0]:+.2f}% to %{customdata[1]:+.2f}%"
            "<br>N = %{customdata[2]}, rank %{customdata[3]}<extra></extra>",
        })
    layout: dict[str, Any] = {"shapes": [{"line": {"color": "#94a3b8", "width": 1}, "type": "line", "x0": 0, "x1": 0,
                                          "xref": "x", "y0": 0, "y1": 1, "yref": "y domain"}]}  # day 0
    _style(layout, f"CAAR with 95% confidence interval, vs {charts.esc(bench)}", 150 + 46 * len(order))
    layout["xaxis"] = {"title": {"text": "CAAR (%)"}, "ticksuffix": "%", "zeroline": False}
    layout["yaxis"] = {"automargin": True}
    buttons = [
        {"label": window_words(s, e), "method": "restyle",
         "args": [{"visible": [k == i for k in range(len(windows))]}]}
        for i, (s, e) in enumerate(windows)
    ]
    layout.update(showlegend=False, updatemenus=[{
        "buttons": buttons, "active": windows.index((head.start, head.end)) if (head.start, head.end) in windows else 0,
        "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom", "pad": {"b": 30},
        "bgcolor": "#ffffff", "bordercolor": "#94a3b8",
    }])
    return {"data": traces, "layout": layout}


def paths_figure(results: StudyResults, event: str, bench: str, baskets: list[str]) -> dict[str, Any] | None:
    """The baskets' CAAR paths side by side (one panel each, common y axis), 95% band CAAR ± t(N-1) x SE.

    A plotly.js figure dict: the grid is laid out by :func:`charts.subplot_grid`
    (``make_subplots``' layout) and the traces added as plain dicts, with no plotly figure object.
    """
    paths = results.basket_paths
    paths = paths[(paths["event"] == event) & (paths["benchmark"] == bench) & paths["basket"].isin(baskets)]
    drawn = [b for b in baskets if (paths["basket"] == b).any()]
    if not drawn:
        return None
    titles, colors = charts.basket_titles(results), charts.basket_colors(results)
    cols = min(4, len(drawn))
    rows = math.ceil(len(drawn) / cols)
    height = 150 + 240 * rows
    layout = charts.subplot_grid(
        rows, cols, [charts.esc(titles.get(b, b)) for b in drawn], horizontal_spacing=0.03,
        vertical_spacing=min(0.2, 80 / height),
    )
    traces: list[dict[str, Any]] = []
    by_basket = dict(tuple(paths.groupby("basket", sort=False)))
    for k, basket in enumerate(drawn):
        group = by_basket[basket].sort_values("rel_day")
        x = group["rel_day"].tolist()
        caar = group["caar"].to_numpy(dtype=float) * 100
        n = group["n"].to_numpy(dtype=float)
        quantile = np.where(n > 1, special.stdtrit(np.maximum(n - 1, 1), 0.975), np.nan)
        half = quantile * group["se"].to_numpy(dtype=float) * 100
        color = colors.get(basket, charts.BASKET_COLORS[0])
        axes = {"xaxis": f"x{k + 1 if k else ''}", "yaxis": f"y{k + 1 if k else ''}"}  # panels number row by row
        if np.isfinite(half).any():
            traces.append({
                "type": "scatter", "x": x + x[::-1], "y": np.concatenate([caar + half, (caar - half)[::-1]]),
                "fill": "toself", "fillcolor": _rgba(color, 0.15), "line": {"width": 0}, "hoverinfo": "skip",
                "showlegend": False, **axes,
            })
        traces.append({
            "type": "scatter", "x": x, "y": caar, "mode": "lines", "line": {"color": color, "width": 2.4},
            "showlegend": False, "name": charts.esc(titles.get(basket, basket)),
            "hovertemplate": charts.esc(titles.get(basket, basket)) + f" (N={int(n[0])})"
            + "<br>day %{x:+d}: CAAR %{y:+.2f}%<extra></extra>", **axes,
        })
    # day 0 in every panel, as one list of shapes (add_vline per subplot is slow with many panels)
    layout["shapes"] = [
        {"type": "line", "x0": 0, "x1": 0, "y0": 0, "y1": 1, "xref": f"x{k + 1 if k else ''}",
         "yref": f"y{k + 1 if k else ''} domain", "line": {"color": "#0f172a", "width": 1, "dash": "dash"}}
        for k in range(len(drawn))
    ]
    _style(layout, f"CAAR paths side by side, vs {charts.esc(bench)}", height)
    charts.update_axes(layout, "y", {"ticksuffix": "%", "zeroline": True, "zerolinecolor": "#94a3b8"})
    charts.update_axes(layout, "x", {"showgrid": False, "dtick": 5})
    for note in layout["annotations"]:
        note["font"]["size"] = 12
    charts.tidy_small_multiples(layout, cols)  # titles wrapped to their panel; one y range, as the caption says
    return {"data": traces, "layout": layout}


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def sort_key(value: Any) -> str:
    """A numeric key for the page's table sorter (``data-sort``); missing values sort last."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return repr(number) if math.isfinite(number) else ""


def verdict_css(words: str) -> str:
    """The badge style of a pair verdict from the comparison record."""
    if words.startswith("significant"):
        return "sig"
    return "na" if words.startswith(("inconclusive", "not computed")) else "ns"


def _pair_rows(results: StudyResults, pairs: pd.DataFrame) -> list[dict[str, Any]]:
    titles = charts.basket_titles(results)
    rows = []
    pairs = pairs.assign(_p=pairs["p_holm"].astype(float)).sort_values(["_p"], kind="stable", na_position="last")
    for row in tuples(pairs):
        def source(column: str) -> str:
            return p_key("comparisons", row.event, row.basket_a, row.basket_b, row.benchmark, row.window_start,
                         row.window_end, column)

        rows.append({
            "a": titles.get(row.basket_a, row.basket_a),
            "b": titles.get(row.basket_b, row.basket_b),
            "window": window_words(row.window_start, row.window_end),
            "n": f"{row.n_a} vs {row.n_b}",
            "cells": [
                (fmt_pct(row.diff), sort_key(row.diff), ""),
                (fmt_num(row.t), sort_key(row.t), ""),
                (fmt_p(row.p_welch), sort_key(row.p_welch), source("p_welch")),
                (fmt_p(row.p_permutation), sort_key(row.p_permutation), source("p_permutation")),
                (fmt_p(row.p_holm), sort_key(row.p_holm), source("p_holm")),
                (fmt_p(row.q_bh), sort_key(row.q_bh), source("q_bh")),
            ],
            "verdict": row.verdict,
            "css": verdict_css(row.verdict),
            "note": row.note or "",
        })
    return rows


def _ranking(results: StudyResults, table: pd.DataFrame) -> dict[str, Any]:
    """Rows = rank positions, columns = windows; each cell the basket at that rank and its CAAR."""
    titles = charts.basket_titles(results)
    windows = list(dict.fromkeys(zip(table["window_start"], table["window_end"])))
    columns = []
    for start, end in windows:
        part = table[(table["window_start"] == start) & (table["window_end"] == end)]
        part = part.sort_values(["rank", "caar"], ascending=[True, False], na_position="last", kind="stable")
        columns.append([
            {"basket": titles.get(r.basket, r.basket), "caar": fmt_pct(r.caar),
             "rank": "—" if pd.isna(r.rank) else str(int(r.rank))}
            for r in tuples(part)
        ])
    depth = max((len(c) for c in columns), default=0)
    return {
        "windows": [window_words(s, e) for s, e in windows],
        "rows": [[c[i] if i < len(c) else None for c in columns] for i in range(depth)],
    }


def answer(results: StudyResults, comparison: Comparison, event: str, bench: str) -> str:
    """The comparison's answer in two sentences: who moved most on the headline window, and which pairs
    differ once the p-values are corrected for the number of pairs (read from the record)."""
    head = _headline(results)
    titles = charts.basket_titles(results)
    table = comparison.baskets
    ranked = table[(table["event"] == event) & (table["benchmark"] == bench)
                   & (table["window_start"] == head.start) & (table["window_end"] == head.end)].dropna(subset=["rank"])
    pairs = comparison.pairs
    part = pairs[(pairs["event"] == event) & (pairs["benchmark"] == bench)
                 & (pairs["window_start"] == head.start) & (pairs["window_end"] == head.end)]
    when = window_words(head.start, head.end)
    if ranked.empty or part.empty:
        return f"Nothing to compare on {when}."
    order = ranked.sort_values("rank", kind="stable")
    top, bottom = order.iloc[0], order.iloc[-1]
    size = int(part["family_size"].max())
    tests = f"{size} pairwise test{'s' if size != 1 else ''}"
    first = (f"On {when}, {titles.get(top.basket, top.basket)} moved most (CAAR {fmt_pct(top.caar)}) and "
             f"{titles.get(bottom.basket, bottom.basket)} least ({fmt_pct(bottom.caar)}).")
    called = part[part["verdict"].str.startswith("significant")]
    if called.empty:
        smallest = part.assign(_p=part["p_permutation"].astype(float)).sort_values("_p").iloc[0]
        second = (f"No pair differs once the {tests} are corrected for (Holm): the smallest permutation p, "
                  f"{fmt_p(smallest.p_permutation)} ({titles.get(smallest.basket_a, smallest.basket_a)} vs "
                  f"{titles.get(smallest.basket_b, smallest.basket_b)}), becomes {fmt_p(smallest.p_holm)}.")
        if part["verdict"].str.startswith("inconclusive").all():
            second += " With so few stocks per basket no pair could have shown a difference: inconclusive."
        return f"{first} {second}"
    listed = "; ".join(
        f"{titles.get(r.basket_a, r.basket_a)} vs {titles.get(r.basket_b, r.basket_b)} {fmt_pct(r.diff)} "
        f"({r.verdict.split(',')[0]}, Holm p {fmt_p(r.p_holm)})"
        for r in tuples(called.assign(_p=called["p_holm"].astype(float)).sort_values("_p"))
    )
    n = len(called)
    return (f"{first} Corrected for the {tests} (Holm), {n} pair{'s' if n != 1 else ''} "
            f"differ{'s' if n == 1 else ''}: {listed}.")


def render(results: StudyResults) -> Section | None:
    """The comparison section, or None when the study has no two baskets to compare."""
    comparison: Comparison | None = results.extras.get("comparisons")
    if comparison is None or comparison.pairs.empty:
        return None
    head = _headline(results)
    labels = {t.event_id: t.label or t.event_id for t in results.timelines}
    multi_event = len(results.timelines) > 1
    groups = []
    index = 0
    for (event, bench), pairs in comparison.pairs.groupby(["event", "benchmark"], sort=False):
        table = comparison.baskets[(comparison.baskets["event"] == event) & (comparison.baskets["benchmark"] == bench)]
        names = list(dict.fromkeys([*pairs["basket_a"], *pairs["basket_b"]]))
        figures = []
        for kind, fig in (("forest", forest_figure(results, comparison, event, bench)),
                          ("paths", paths_figure(results, event, bench, names))):
            if fig is not None:
                figures.append({"id": f"compare-{index}-{kind}", "json": figure_json(fig), "kind": kind})
        headline = pairs[(pairs["window_start"] == head.start) & (pairs["window_end"] == head.end)]
        groups.append({
            "title": (f"{labels.get(event, event)}: baskets" if multi_event else "Baskets") + f" vs {bench}",
            "answer": answer(results, comparison, event, bench),
            "family_size": int(headline["family_size"].max()) if len(headline) else 0,
            "figures": figures,
            "ranking": _ranking(results, table),
            "headline_window": window_words(head.start, head.end),
            "headline": _pair_rows(results, headline),
            "all": _pair_rows(results, pairs),
        })
        index += 1
    html = render_section(
        TEMPLATE, groups=groups, n_permutations=f"{comparison.n_permutations:,}", seed=comparison.seed,
        policy=SHARED_TICKER_POLICY, notes=list(comparison.notes),
    )
    return Section(SECTION_ID, "Baskets compared", html)


def comparison_text(results: StudyResults, *, top: int | None = None) -> str:
    """Terminal lines: per event, benchmark and headline window, the ranking and the pairwise differences.

    ``top`` keeps only the pairs with the smallest permutation p (the rest are in comparisons.csv).
    """
    comparison: Comparison | None = results.extras.get("comparisons")
    if comparison is None or comparison.pairs.empty:
        return ""
    head = _headline(results)
    lines = [
        f"Baskets compared on {window_words(head.start, head.end)} (diff = mean CAR only-in-A minus only-in-B; "
        f"permutation p from {comparison.n_permutations:,} shuffles, seed {comparison.seed}; verdicts on Holm's "
        f"p, corrected for every pair of the window):"
    ]
    for (event, bench), pairs in comparison.pairs.groupby(["event", "benchmark"], sort=False):
        table = comparison.baskets
        ranked = table[(table["event"] == event) & (table["benchmark"] == bench)
                       & (table["window_start"] == head.start) & (table["window_end"] == head.end)]
        ranked = ranked.sort_values("rank", kind="stable")
        order = ", ".join(f"{r.basket} {fmt_pct(r.caar)}" for r in tuples(ranked))
        lines.append(f"  [{event}] vs {bench}, ranking: {order}")
        part = pairs[(pairs["window_start"] == head.start) & (pairs["window_end"] == head.end)]
        part = part.assign(_p=part["p_permutation"].astype(float)).sort_values("_p", kind="stable")
        if len(part):
            size = int(part["family_size"].max())
            lines.append(f"  {size} pairwise test{'s' if size != 1 else ''} on this window: "
                         f"{(part['verdict'].str.startswith('significant')).sum()} significant after Holm's correction")
        shown = part if top is None else part.head(top)
        for r in tuples(shown):
            lines.append(
                f"    {r.basket_a} - {r.basket_b}: {fmt_pct(r.diff)}  Welch p {fmt_p(r.p_welch)}; permutation p "
                f"{fmt_p(r.p_permutation)}, Holm {fmt_p(r.p_holm)}, BH q {fmt_p(r.q_bh)}: {r.verdict}"
                + (f" ({r.shared} in both: left out)" if r.shared else "")
            )
        if len(shown) < len(part):
            lines.append(f"    ... {len(part) - len(shown)} more pairs in comparisons.csv")
    return "\n".join(lines)
