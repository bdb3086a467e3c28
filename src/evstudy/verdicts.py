"""The one verdict per (event, basket, benchmark, window): which test speaks, its p, and why.

Every place that shows a verdict (report, terminal, results.json, CSVs, API)
reads the record this module writes into ``StudyResults.baskets`` (columns
:data:`evstudy.results.BASKET_COLUMNS`) and the ``headline`` flag of
``StudyResults.tests``; none of them chooses a test or recomputes a p.

The choice rests on measured size and power (``benchmarks/size_power.py``,
shipped as the package data ``evstudy/data/size_power.json``; reading that
table is reading part of the package, not the user's data). A single-stock
basket is judged by the stock's own CAR t (MacKinlay 1997, eq. 10-11).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from evstudy.inference import SMALL_N, TEST_IDS, TEST_LABELS

CAR_T = "car_t"
CAR_T_LABEL = "the stock's own CAR t (MacKinlay 1997)"
HEADLINE_LABELS: dict[str, str] = {**TEST_LABELS, CAR_T: CAR_T_LABEL}
INCONCLUSIVE = "inconclusive: too few stocks / too little evidence"
NO_STOCK = "inconclusive: every ticker of the basket was excluded"
NO_SIGNIFICANT = "no significant effect"
OPPOSITE = "inconclusive: the test's statistic and the CAAR point in opposite directions"
LEVELS = ((0.01, "significant at 1%"), (0.05, "significant at 5%"), (0.10, "significant at 10%"))
PLACEBO_TESTS = ("placebo_caar", "placebo_bmp")
HEADLINE_WINDOW = [0, 0]  # the evidence is read on day 0, where the effect is injected
VERDICT_COLUMNS = [
    "headline_test", "headline_label", "statistic", "p_value", "verdict", "significant", "verdict_reason",
]


@lru_cache(maxsize=1)
def load_evidence() -> Mapping[str, Any] | None:
    """The shipped size/power measurements (package data), or None if the package has none."""
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


def verdict_words(p_value: float, statistic: float, caar: float) -> tuple[str, bool]:
    """The verdict for a headline p: its level, or a refusal when the test points against the CAAR."""
    if not math.isfinite(p_value):
        return INCONCLUSIVE, False
    for level, words in LEVELS:
        if p_value < level:
            if math.isfinite(statistic) and math.isfinite(caar) and statistic * caar < 0:
                return OPPOSITE, False
            return words, True
    return NO_SIGNIFICANT, False


def _single_stock_rows(baskets: pd.DataFrame, cars: pd.DataFrame, memberships: pd.DataFrame) -> pd.DataFrame:
    """For baskets of one included stock: that stock's CAR t and p per window (the ``car_t`` rows)."""
    keys = ["event", "basket", "benchmark"]
    single = baskets.loc[baskets["n"] == 1, [*keys, "window_start", "window_end"]]
    if single.empty:
        return pd.DataFrame(columns=[*keys, "window_start", "window_end", "statistic", "p_value"])
    own = memberships.merge(single[keys].drop_duplicates(), on=keys).merge(
        cars[["event", "ticker", "benchmark", "window_start", "window_end", "t", "p_value"]],
        on=["event", "ticker", "benchmark"],
    )
    return own.rename(columns={"t": "statistic"})[[*keys, "window_start", "window_end", "statistic", "p_value"]]


def headline_verdicts(
    baskets: pd.DataFrame,
    tests: pd.DataFrame,
    cars: pd.DataFrame,
    memberships: pd.DataFrame,
    evidence: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The basket record with its verdict columns filled, and ``tests`` with its ``headline`` flag.

    ``baskets`` holds event, basket, benchmark, window_start, window_end, n,
    caar, se, cs_t, cs_p and note; the result adds :data:`VERDICT_COLUMNS`.
    For single-stock baskets ``tests`` gains one ``car_t`` row per window (the
    stock's own CAR t, flagged as the headline). ``evidence`` defaults to
    the shipped size/power table.
    """
    evidence = load_evidence() if evidence is None else evidence
    keys = ["event", "basket", "benchmark"]
    cells = ["event", "basket", "benchmark", "window_start", "window_end"]
    single = _single_stock_rows(baskets, cars, memberships)
    if len(single):
        extra = single.assign(test=CAR_T, n=1, note="")
        tests = pd.concat([tests, extra[tests.columns.drop("headline", errors="ignore")]], ignore_index=True)
    chosen: dict[tuple, Advice] = {}
    for key, group in tests.groupby(keys, sort=False):
        n = int(group["n"].max()) if len(group) else 0
        if n == 1:
            chosen[key] = Advice(CAR_T, (
                "One stock: the verdict is its own CAR t (MacKinlay 1997), with the standard error from its "
                "estimation window."), True)
        elif n > 1:
            chosen[key] = advise(evidence, n, shared=True, available=set(group.loc[group["statistic"].notna(), "test"]))
    headline_test = [
        chosen[key].test if key in chosen and chosen[key].test else "" for key in zip(*(tests[k] for k in keys))
    ]
    tests = tests.assign(headline=np.asarray(headline_test, dtype=object) == tests["test"].to_numpy(dtype=object))
    picked = tests.loc[tests["headline"], [*cells, "test", "statistic", "p_value"]]
    record = baskets.merge(picked, on=cells, how="left")
    rows = []
    for row in record.itertuples(index=False):
        advice = chosen.get((row.event, row.basket, row.benchmark))
        test = row.test if isinstance(row.test, str) else ""
        stat = float(row.statistic) if pd.notna(row.statistic) else math.nan
        p = float(row.p_value) if pd.notna(row.p_value) else math.nan
        if row.n == 0:
            words, significant, reason = NO_STOCK, False, "Every ticker of the basket was excluded (see exclusions)."
        else:
            words, significant = verdict_words(p, stat, float(row.caar))
            reason = advice.reason if advice else "No test could be computed for this basket."
            if words == OPPOSITE:
                reason += f" Its statistic ({stat:+.2f}) points against the CAAR ({100 * row.caar:+.2f}%)."
        rows.append((test, HEADLINE_LABELS.get(test, ""), stat, p, words, significant, reason))
    verdicts = pd.DataFrame(rows, columns=VERDICT_COLUMNS, index=record.index)
    out = pd.concat([record.drop(columns=["test", "statistic", "p_value"]), verdicts], axis=1)
    return out, tests
