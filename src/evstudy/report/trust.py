"""Which basket test to trust, decided by measured size and power, not by a fixed favourite.

``benchmarks/size_power.py`` measures, on random samples of real US stocks,
how often each test rejects a true null at 5% and how often it detects a
+1% / +2% day-0 effect, with the stocks sharing one event day or not, for
N = 10 and 50. It ships the numbers as package data (``evstudy/data/size_power.json``,
identical to ``docs/inference.json``). For a basket, :func:`advise` looks up
the cells of its design (shared date or not) and the measured N nearest to
its own, keeps the tests whose null rejection rate stayed within 5% plus two
binomial standard errors, and picks the one with the highest power at the
smallest effect. Below :data:`~evstudy.inference.SMALL_N` tickers the normal
and t approximations are unreliable, so it leans on the placebo tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from evstudy.inference import SMALL_N, TEST_IDS, TEST_LABELS

PLACEBO_TESTS = ("placebo_caar", "placebo_bmp")
HEADLINE_WINDOW = [0, 0]  # the evidence is read on day 0, where the effect is injected


@lru_cache(maxsize=1)
def load_evidence() -> Mapping[str, Any] | None:
    """The shipped size/power measurements, or None if the package has none."""
    try:
        text = resources.files("evstudy").joinpath("data", "size_power.json").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
    return json.loads(text)


@dataclass(frozen=True)
class Advice:
    """The test to read for one basket, and the one sentence that says why."""

    test: str | None
    reason: str
    small_n: bool = False


def _nearest(sizes: Iterable[int], n: int) -> int:
    """The measured N closest to ``n`` on a log scale (10 and 50 split at about 22)."""
    return min(sizes, key=lambda size: (abs(math.log(size) - math.log(max(n, 1))), size))


def _cell(evidence: Mapping[str, Any], design: str, n: int, effect: float) -> Mapping[str, Any] | None:
    for cell in evidence["cells"]:
        if cell["design"] == design and cell["n"] == n and cell["window"] == HEADLINE_WINDOW \
                and math.isclose(cell["effect"], effect):
            return cell
    return None


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def advise(evidence: Mapping[str, Any] | None, n: int, *, shared: bool = True,
           available: Iterable[str] = TEST_IDS) -> Advice:
    """The test the measured evidence supports for a basket of ``n`` tickers, and why, in one sentence.

    ``available`` are the tests that produced a number for this basket (a
    test with only notes cannot be recommended).
    """
    available = [t for t in TEST_IDS if t in set(available)]
    small = n < SMALL_N
    if evidence is None or not evidence.get("cells") or not available:
        why = "no size/power measurements are installed" if evidence is None else "no test could be computed"
        return Advice(None, f"No test is singled out: {why}.", small)
    design = "shared" if shared else "separate"
    method = evidence["method"]
    sizes = sorted({c["n"] for c in evidence["cells"] if c["design"] == design})
    bucket = min(sizes) if small else _nearest(sizes, n)
    effects = sorted(e for e in method["effects"] if e > 0)
    null = _cell(evidence, design, bucket, 0.0)
    power = [_cell(evidence, design, bucket, e) for e in effects]
    if null is None or any(p is None for p in power):
        return Advice(None, "No test is singled out: the size/power table lacks this design.", small)
    samples = int(null["samples"])
    alpha = float(method["alpha"])
    band = alpha + 2 * math.sqrt(alpha * (1 - alpha) / samples)

    def rate(cell: Mapping[str, Any] | None, test: str) -> float:
        value = cell["rates"].get(test) if cell else None
        return float("nan") if value is None else float(value)

    pool = [t for t in available if t in PLACEBO_TESTS] if small else available
    pool = pool or available
    measured = [t for t in pool if not math.isnan(rate(null, t))]
    if not measured:
        return Advice(None, "No test is singled out: none of this basket's tests was measured.", small)
    held = [t for t in measured if rate(null, t) <= band]
    where = "sharing one event day" if shared else "each on its own event day"
    sample = f"in {samples:,} random samples of {bucket} real US stocks {where}"
    effect = f"+{100 * effects[0]:.0f}%"
    if held:
        best = max(held, key=lambda t: tuple(rate(p, t) for p in power))
        label = TEST_LABELS[best]
        tickers = f"{n} ticker{'s' if n != 1 else ''}"
        if small and best in PLACEBO_TESTS:
            reason = (
                f"With only {tickers}, the normal and t approximations behind the other p-values are unreliable, "
                f"so lean on the {label}: it compares the basket with itself on days without news and, {sample}, "
                f"it rejected a true “no effect” {_pct(rate(null, best))} of the time at the 5% level."
            )
        elif small:
            reason = (
                f"With only {tickers}, the normal and t approximations behind every p-value here are unreliable "
                f"and the placebo tests, which do not need them, were not computed; the {label} is the least bad "
                f"guide: {sample}, it rejected a true “no effect” {_pct(rate(null, best))} of the time at the "
                f"5% level."
            )
        else:
            contrast = ""
            if "cs_t" in available and best != "cs_t" and rate(null, "cs_t") > band:
                contrast = f", while the cross-sectional t did so {_pct(rate(null, 'cs_t'))} of the time"
            reason = (
                f"Trust the {label} here: {sample}, it rejected a true “no effect” {_pct(rate(null, best))} of "
                f"the time at the 5% level and caught a {effect} day-0 move in {_pct(rate(power[0], best))} of "
                f"them, the most of the tests that kept their 5% promise{contrast}."
            )
        return Advice(best, reason, small)
    best = min(measured, key=lambda t: rate(null, t))
    reason = (
        f"No test kept its 5% promise {sample}; the {TEST_LABELS[best]} came closest, rejecting a true "
        f"“no effect” {_pct(rate(null, best))} of the time, so read its p-values as too optimistic."
    )
    return Advice(best, reason, small)


def trusted_tests(results: Any) -> dict[tuple[str, str, str], Advice]:
    """The advised test of every (event, basket, benchmark) of a run, from the run's own tests table.

    The headline verdicts (report summary, basket table, terminal) read their
    p-value from this test, so they agree with the "Which test to trust" section.
    """
    tests = results.tests
    evidence = load_evidence()
    advice = {}
    for key, group in tests.groupby(["event", "basket", "benchmark"], sort=False):
        n = int(group["n"].max()) if len(group) else 0
        available = set(group.loc[group["statistic"].notna(), "test"])
        advice[key] = advise(evidence, n, shared=True, available=available)
    return advice


def trusted_p_values(results: Any) -> dict[tuple[str, str, str, int, int], tuple[str, float | None]]:
    """(event, basket, benchmark, window_start, window_end) → (advised test id, its p-value or None)."""
    advice = trusted_tests(results)
    tests = results.tests
    out: dict[tuple[str, str, str, int, int], tuple[str, float | None]] = {}
    for row in tests.itertuples(index=False):
        chosen = advice.get((row.event, row.basket, row.benchmark))
        if chosen is None or chosen.test is None or row.test != chosen.test:
            continue
        p = None if row.p_value is None or not math.isfinite(float(row.p_value)) else float(row.p_value)
        out[(row.event, row.basket, row.benchmark, int(row.window_start), int(row.window_end))] = (row.test, p)
    return out
