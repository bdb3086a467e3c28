"""A compact plain-text summary for the terminal (and for notebooks' print)."""

from __future__ import annotations

import math

import pandas as pd

from evstudy.results import StudyResults


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:+.2f}%"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return "<.001" if value < 0.001 else f"{value:.3f}".lstrip("0")


def _mark(verdict: str) -> str:
    """The verdict record's words as a mark: ** 1%, * 5%, ? inconclusive."""
    if verdict == "significant at 1%":
        return "**"
    if verdict == "significant at 5%":
        return "* "
    return "? " if verdict.startswith("inconclusive") else "  "


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def summary_text(results: StudyResults, *, top: int = 5) -> str:
    """Day 0, basket CAARs with the verdict record's p and mark per window, top day-0 movers, exclusions."""
    cfg = results.config
    lines = [f"{cfg.title or cfg.name} — model: {cfg.model}, estimation window {cfg.estimation_window.label}"]
    windows = [w.label for w in cfg.windows]
    for timeline in results.timelines:
        lines += ["", f"Event {timeline.event_id}: {timeline.mapping}"]
        baskets = results.baskets[results.baskets["event"] == timeline.event_id]
        rows = []
        for (basket, bench), group in baskets.groupby(["basket", "benchmark"], sort=False):
            cells = [f"{_pct(r.caar)} {_p(r.p_value)}{_mark(r.verdict)}" for r in group.itertuples()]
            tests = "/".join(dict.fromkeys(t for t in group["headline_test"] if t)) or "—"
            rows.append([basket, bench, str(int(group["n"].iloc[0])), tests, *cells])
        lines += _table(["basket", "vs", "N", "test", *windows], rows)
        ars = results.abnormal_returns
        day0 = ars[(ars["event"] == timeline.event_id) & (ars["rel_day"] == 0)]
        day0 = day0[day0["benchmark"] == cfg.benchmark] if (day0["benchmark"] == cfg.benchmark).any() else day0
        ranked = day0.sort_values("abnormal_return", ascending=False)
        movers = pd.concat([ranked.head(top), ranked.tail(top)]).drop_duplicates(subset=["ticker", "benchmark"])
        lines += ["", f"Day-0 abnormal returns, largest and smallest (vs {cfg.benchmark}):"]
        lines += ["  " + "  ".join(f"{r.ticker} {_pct(r.abnormal_return)}" for r in movers.itertuples())]
    lines += ["", "CAAR and p per window; ** significant at 1%, * at 5%, ? inconclusive. The p is the headline test's"]
    lines += ["(the 'test' column, per window where several): the one the size/power measurements of"]
    lines += ["docs/inference.md support for a basket of this size and window (the report says why)."]
    excluded = results.exclusions
    if len(excluded):
        lines += ["", f"Excluded ({len(excluded)}):"]
        lines += [f"  {r.ticker} vs {r.benchmark} [{r.event}]: {r.reason}" for r in excluded.itertuples()]
    flags = results.diagnostics
    trimmed = flags[flags["flag"] == "trimmed"]
    if len(trimmed):
        lines += ["", "Estimated on the active part only:"]
        lines += [f"  {r.ticker} vs {r.benchmark} [{r.event}]: {r.detail}" for r in trimmed.itertuples()]
    breaks = flags[(flags["flag"] == "variance_break") & ~flags["ticker"].isin(trimmed["ticker"])]
    if len(breaks):
        named = ", ".join(f"{t} ({pd.Timestamp(d):%Y-%m-%d})" for t, d in dict(zip(breaks["ticker"], breaks["date"])).items())
        lines += ["", f"Volatility changed inside the estimation window of {breaks['ticker'].nunique()} stocks (not acted on; "
                  f"see the report, set active_from or use --accept-breaks): {named}"]
    return "\n".join(lines)
