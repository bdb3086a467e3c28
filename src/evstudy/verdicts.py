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

from evstudy.inference import TEST_LABELS

CAR_T = "car_t"
CAR_T_LABEL = "the stock's own CAR t (MacKinlay 1997)"
HEADLINE_LABELS: dict[str, str] = {**TEST_LABELS, CAR_T: CAR_T_LABEL}
INCONCLUSIVE = "inconclusive: too few stocks / too little evidence"
NO_STOCK = "inconclusive: every ticker of the basket was excluded"
NO_SIGNIFICANT = "no significant effect"
OPPOSITE = "inconclusive: the test and the CAAR disagree in direction"
LEVELS = ((0.01, "significant at 1%"), (0.05, "significant at 5%"), (0.10, "significant at 10%"))
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


# The rule (docs/inference.md): a test qualifies for (N, window) when its worst-case size, the highest of its
# rejection rates under the three nulls, lies in SIZE_BAND and it was defined in MIN_DEFINED of the samples; the qualifying test with the highest
# mean power over the four alternatives gives the verdict, unless its power at +2% is below POWER_FLOOR.
NULLS = ("plain", "eiv", "correlated")
NULL_WORDS = {
    "plain": "random stocks", "eiv": "doubled event-day variance", "correlated": "sector-like correlated stocks",
}
ALTERNATIVES = ("+0.5%", "+1%", "+2%", "+2% σ-scaled")
SIZE_BAND = (0.035, 0.065)
MIN_DEFINED = 0.95
POWER_FLOOR = 0.5


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def signed_statistic(test: str, statistic: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The statistic centred on its null value, so its sign is the direction the test sees.

    Every test's statistic is centred on 0 except Wilcoxon's W+, whose null mean is N (N + 1) / 4.
    """
    statistic = np.asarray(statistic, dtype=float)
    if test == "wilcoxon":
        n = np.asarray(n, dtype=float)
        return statistic - n * (n + 1) / 4
    return statistic


class EvidenceTable:
    """The shipped size/power cells, indexed by (N, window, scenario)."""

    def __init__(self, evidence: Mapping[str, Any]):
        self.method = evidence["method"]
        self.cells = {(c["n"], tuple(c["window"]), c["scenario"]): c for c in evidence["cells"]}
        self.sizes = sorted({key[0] for key in self.cells})
        self.windows = [tuple(w) for w in self.method["windows"]]

    def rate(self, n: int, window: tuple[int, int], scenario: str, test: str) -> float | None:
        """Under a null: the share of samples the test rejected at 5% (its size). Under an alternative: the
        share it rejected with its statistic pointing the CAAR's way (a significant verdict: its power)."""
        cell = self.cells.get((n, window, scenario))
        key = "rates" if scenario in NULLS else "rates_same_sign"
        value = cell[key].get(test) if cell else None
        return None if value is None else float(value)

    def defined_share(self, n: int, window: tuple[int, int], scenario: str, test: str) -> float:
        cell = self.cells.get((n, window, scenario))
        return cell["defined"].get(test, 0) / cell["samples"] if cell else 0.0

    def samples(self, n: int, window: tuple[int, int]) -> int:
        return int(self.cells[(n, window, "plain")]["samples"])

    def rbar(self, n: int, window: tuple[int, int]) -> float:
        cell = self.cells.get((n, window, "correlated"))
        return float(cell.get("rbar_median", math.nan)) if cell else math.nan

    def measured_window(self, window: tuple[int, int]) -> tuple[int, int]:
        """``window`` if measured, else the measured window of the nearest length (ties: the nearer start)."""
        if window in self.windows:
            return window
        length = window[1] - window[0]
        return min(self.windows, key=lambda w: (abs((w[1] - w[0]) - length), abs(w[0] - window[0])))

    def neighbours(self, n: int) -> tuple[int, int]:
        """The measured N just below (or at) ``n`` and just above (or at) it; the extremes clamp."""
        below = max((s for s in self.sizes if s <= n), default=self.sizes[0])
        above = min((s for s in self.sizes if s >= n), default=self.sizes[-1])
        return below, above

    def worst_null(self, n: int, window: tuple[int, int], test: str) -> tuple[str, float | None]:
        """The null under which ``test`` rejected a true null most often (its worst-case size), and that rate."""
        rates = [(null, self.rate(n, window, null, test)) for null in NULLS]
        known = [(null, r) for null, r in rates if r is not None]
        if len(known) < len(rates):
            return next(null for null, r in rates if r is None), None
        return max(known, key=lambda item: item[1])

    def miss(self, n: int, window: tuple[int, int], test: str) -> tuple[float, str, float]:
        """How far ``test``'s worst-case size strays outside SIZE_BAND: (distance, its null, its rate)."""
        null, rate = self.worst_null(n, window, test)
        if rate is None:
            return math.inf, null, math.nan
        return max(SIZE_BAND[0] - rate, rate - SIZE_BAND[1], 0.0), null, rate

    def qualifies(self, n: int, window: tuple[int, int], test: str) -> bool:
        """Whether ``test``'s worst-case size (its highest rejection rate over the three nulls) lies in
        SIZE_BAND, every null measured and the test defined in MIN_DEFINED of each null's samples."""
        rates = [self.rate(n, window, null, test) for null in NULLS]
        if any(r is None for r in rates) or not SIZE_BAND[0] <= max(rates) <= SIZE_BAND[1]:
            return False
        return all(self.defined_share(n, window, null, test) >= MIN_DEFINED for null in NULLS)

    def mean_power(self, n: int, window: tuple[int, int], test: str) -> float:
        rates = [self.rate(n, window, alt, test) for alt in ALTERNATIVES]
        return float(np.mean([r or 0.0 for r in rates]))


@lru_cache(maxsize=1)
def shipped_table() -> EvidenceTable | None:
    """The shipped evidence as a table, or None when the package has none in the current format."""
    evidence = load_evidence()
    if evidence is None or evidence.get("format") != 2:
        return None
    return EvidenceTable(evidence)


@dataclass(frozen=True)
class Pick:
    """The rule's answer for one (N, window): the test to read (None: inconclusive) and the evidence behind it."""

    test: str | None
    best: str | None  # the most powerful qualifying test, also when the power floor rejects it
    n_used: int  # the measured N whose power is quoted
    n_checked: int  # the measured N above, where the size also had to hold (= n_used on a grid point)
    window_used: tuple[int, int]
    worst_null: str = ""
    worst_size: float | None = None
    power2: float | None = None
    mean_power: float | None = None
    samples: int = 0
    considered: tuple[str, ...] = ()  # the tests computed for the basket that the evidence measured


def pick_test(table: EvidenceTable, n: int, window: tuple[int, int], available: Iterable[str]) -> Pick:
    """The rule of docs/inference.md for a basket of ``n`` stocks (2 or more) and ``window``."""
    used = table.measured_window(tuple(window))
    below, above = table.neighbours(n)
    tests = [t for t in available if table.rate(below, used, "plain", t) is not None]
    held = [t for t in tests if table.qualifies(below, used, t) and table.qualifies(above, used, t)]
    samples = table.samples(below, used)
    if not held:
        return Pick(None, None, below, above, used, samples=samples, considered=tuple(tests))
    best = max(held, key=lambda t: table.mean_power(below, used, t))
    null, size = table.worst_null(below, used, best)
    if above != below:
        null_above, size_above = table.worst_null(above, used, best)
        if size_above is not None and size is not None and size_above > size:
            null, size = null_above, size_above
    power2 = table.rate(below, used, "+2%", best) or 0.0
    test = best if power2 >= POWER_FLOOR else None
    return Pick(test, best, below, above, used, null, size, power2, table.mean_power(below, used, best), samples,
                tuple(tests))


def _words(window: tuple[int, int]) -> str:
    start, end = window
    day = lambda d: "0" if d == 0 else f"{d:+d}"  # noqa: E731
    return f"day {day(start)}" if start == end else f"days {day(start)} to {day(end)}"


def _reason(pick: Pick, n: int, window: tuple[int, int], table: EvidenceTable, p_best: float | None) -> str:
    """One sentence that quotes the evidence cell used: N, window, null, size, power."""
    where = f"{pick.samples:,} random samples of {pick.n_used} real US stocks sharing one event day, {_words(pick.window_used)}"
    if pick.window_used != tuple(window):
        where += f" (the measured window nearest to {_words(window)})"
    between = (f"; a basket of {n} sits between the measured {pick.n_used} and {pick.n_checked}, so its size "
               f"also had to hold at N = {pick.n_checked}") if pick.n_checked != pick.n_used else ""
    if pick.best is None:
        misses = [table.miss(pick.n_used, pick.window_used, t) + (t,) for t in pick.considered]
        hint = ""
        if misses:
            _, null, size, t = min(misses)
            hint = (f"; the closest, the {HEADLINE_LABELS.get(t, t)}, rejected a true “no effect” "
                    f"{_pct(size)} of the time with {NULL_WORDS.get(null, null)}")
        return (f"Inconclusive: in {where}, no test computed here kept its 5% error rate (3.5–6.5%) under all "
                f"three nulls (random stocks, doubled event-day variance, sector-like correlated stocks){hint}{between}.")
    label = HEADLINE_LABELS.get(pick.best, pick.best)
    size_words = (f"its worst rejection rate of a true “no effect” was {_pct(pick.worst_size or math.nan)} "
                  f"with {NULL_WORDS.get(pick.worst_null, pick.worst_null)}")
    if pick.test is None:
        p_words = "" if p_best is None or not math.isfinite(p_best) else f" (its p here: {p_best:.3g})"
        return (f"Inconclusive: in {where}, the best test that kept its 5% error rate, the {label}{p_words}, "
                f"caught a +2% move in only {_pct(pick.power2 or 0.0)} of them (the floor is "
                f"{_pct(POWER_FLOOR)}); {size_words}{between}.")
    return (f"Read the {label}: in {where}, it kept its 5% error rate under all three nulls ({size_words}) "
            f"and caught a +2% move in {_pct(pick.power2 or 0.0)} of them (mean over +0.5%, +1%, +2% and "
            f"σ-scaled +2%: {_pct(pick.mean_power or 0.0)}), the most of the tests that qualified{between}.")


def verdict_words(p_value: float, statistic: float, caar: float) -> tuple[str, bool]:
    """The verdict for a headline p, and whether it is significant (p < 5%, the level the evidence measured).

    ``statistic`` is the signed statistic (:func:`signed_statistic`): a test
    that points against the CAAR cannot call it significant.
    """
    if not math.isfinite(p_value):
        return INCONCLUSIVE, False
    for level, words in LEVELS:
        if p_value < level:
            if math.isfinite(statistic) and math.isfinite(caar) and statistic * caar < 0:
                return OPPOSITE, False
            return words, level <= 0.05
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
    table: EvidenceTable | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The basket record with its verdict columns filled, and ``tests`` with its ``headline`` flag.

    ``baskets`` holds event, basket, benchmark, window_start, window_end, n,
    caar, se, cs_t, cs_p and note; the result adds :data:`VERDICT_COLUMNS`.
    Per cell: one included stock → its own CAR t (``tests`` gains that
    ``car_t`` row); two or more → :func:`pick_test` on ``table`` (default:
    the shipped evidence) among the tests that produced a number in that
    cell. ``significant`` is true for p < 5%, the level the evidence measured.
    """
    table = shipped_table() if table is None else table
    single = _single_stock_rows(baskets, cars, memberships)
    if len(single):
        extra = single.assign(test=CAR_T, n=1, note="")
        tests = pd.concat([tests, extra[tests.columns.drop("headline", errors="ignore")]], ignore_index=True)
    available: dict[tuple, list[str]] = {}
    values: dict[tuple, tuple[float, float, float]] = {}
    columns = ["event", "basket", "benchmark", "window_start", "window_end", "test", "statistic", "p_value", "n"]
    for *key, test, statistic, p_value, n in zip(*(tests[name].tolist() for name in columns)):
        key = tuple(key)
        if pd.notna(statistic) and pd.notna(p_value):
            available.setdefault(key, []).append(test)
            values[(*key, test)] = (float(statistic), float(p_value), float(n))
    picks: dict[tuple, Pick] = {}  # pick_test depends only on (n, window, available): a few cells, many events
    reasons: dict[tuple, str] = {}
    rows, chosen = [], set()
    for row in baskets.itertuples(index=False):
        key = (row.event, row.basket, row.benchmark, row.window_start, row.window_end)
        window = (int(row.window_start), int(row.window_end))
        caar = float(row.caar)
        note = row.note if isinstance(row.note, str) else ""
        if row.n == 0:
            rows.append(("", "", math.nan, math.nan, NO_STOCK, False,
                         "Every ticker of the basket was excluded (see exclusions).", note))
            continue
        if row.n == 1:
            test, reason = CAR_T, ("One stock: the verdict is its own CAR t (MacKinlay 1997), with the standard "
                                   "error from its estimation window.")
        elif table is None:
            test, reason = None, "Inconclusive: no size/power measurements are installed with this copy of evstudy."
        else:
            pick_key = (int(row.n), window, tuple(available.get(key, [])))
            if pick_key not in picks:
                picks[pick_key] = pick_test(table, *pick_key)
            pick = picks[pick_key]
            best = values.get((*key, pick.best)) if pick.best else None
            p_best = best[1] if best else None
            reason_key = (pick_key, p_best if pick.best is not None and pick.test is None else None)
            if reason_key not in reasons:  # _reason reads p_best only for a best test too weak to headline
                reasons[reason_key] = _reason(pick, int(row.n), window, table, p_best)
            test, reason = pick.test, reasons[reason_key]
        if test is None or (*key, test) not in values:
            rows.append(("", "", math.nan, math.nan, INCONCLUSIVE, False, reason, note))
            continue
        stat, p, n_used = values[(*key, test)]
        words, significant = verdict_words(p, float(signed_statistic(test, stat, n_used)), caar)
        if words == OPPOSITE:
            flip = (f"the {HEADLINE_LABELS[test]} points the other way ({stat:+.2f}, p {p:.3g}) from the "
                    f"equal-weighted CAAR ({100 * caar:+.2f}%): a few stocks weigh differently in it")
            reason = f"{reason} But {flip}, so it cannot call the CAAR significant."
            note = "; ".join(filter(None, [note, flip]))
        chosen.add((*key, test))
        rows.append((test, HEADLINE_LABELS[test], stat, p, words, significant, reason, note))
    record = pd.DataFrame(rows, columns=[*VERDICT_COLUMNS, "note"], index=baskets.index)
    out = pd.concat([baskets.drop(columns=["note"]), record], axis=1)
    keys = zip(*(tests[name].tolist() for name in ("event", "basket", "benchmark", "window_start", "window_end",
                                                    "test")))  # lists: iterating Arrow-backed columns is per cell
    return out, tests.assign(headline=[key in chosen for key in keys])
