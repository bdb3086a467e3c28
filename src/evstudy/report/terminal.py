"""A compact plain-text summary for the terminal (and for notebooks' print)."""

from __future__ import annotations

import math

import pandas as pd

from evstudy.report import trust
from evstudy.results import StudyResults


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:+.2f}%"


def _stars(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "  "
    return "**" if p < 0.01 else "* " if p < 0.05 else "  "


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def summary_text(results: StudyResults, *, top: int = 5) -> str:
    """Day 0, basket CAARs per window (stars from the trusted test), top day-0 movers, exclusions."""
    cfg = results.config
    advice, trusted = trust.trusted_tests(results), trust.trusted_p_values(results)
    lines = [f"{cfg.title or cfg.name} — model: {cfg.model}, estimation window {cfg.estimation_window.label}"]
    windows = [w.label for w in cfg.windows]
    for timeline in results.timelines:
        lines += ["", f"Event {timeline.event_id}: {timeline.mapping}"]
        baskets = results.baskets[results.baskets["event"] == timeline.event_id]
        rows = []
        for (basket, bench), group in baskets.groupby(["basket", "benchmark"], sort=False):
            cells = []
            for r in group.itertuples():
                key = (timeline.event_id, basket, bench, r.window_start, r.window_end)
                test, p_value = trusted.get(key, (None, r.p_value))
                cells.append(f"{_pct(r.caar)}{_stars(p_value)}")
            chosen = advice.get((timeline.event_id, basket, bench))
            rows.append([basket, bench, str(int(group["n"].iloc[0])), chosen.test if chosen and chosen.test else "cs_t", *cells])
        lines += _table(["basket", "vs", "N", "test", *windows], rows)
        ars = results.abnormal_returns
        day0 = ars[(ars["event"] == timeline.event_id) & (ars["rel_day"] == 0)]
        day0 = day0[day0["benchmark"] == cfg.benchmark] if (day0["benchmark"] == cfg.benchmark).any() else day0
        ranked = day0.sort_values("abnormal_return", ascending=False)
        movers = pd.concat([ranked.head(top), ranked.tail(top)]).drop_duplicates(subset=["ticker", "benchmark"])
        lines += ["", f"Day-0 abnormal returns, largest and smallest (vs {cfg.benchmark}):"]
        lines += ["  " + "  ".join(f"{r.ticker} {_pct(r.abnormal_return)}" for r in movers.itertuples())]
    lines += ["", "CAAR per window; ** p<0.01, * p<0.05 by the test in the 'test' column: the one that kept its"]
    lines += ["5% error rate in the size/power measurements of docs/inference.md for a basket of this size"]
    lines += ["sharing one event day (the report's 'Which test to trust' says why)."]
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
        count = breaks["ticker"].nunique()
        lines += ["", f"Volatility changed inside the estimation window of {count} stock{'' if count == 1 else 's'} (not acted on; "
                  f"see the report, set active_from or use --accept-breaks): {named}"]
    return "\n".join(lines)
